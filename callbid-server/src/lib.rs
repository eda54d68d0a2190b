//! # callbid-server
//!
//! callbid's servers as a library: axum routers an embedder mounts in an app of their
//! own (`Router::nest("/callbid", …)`), and the `callbid` binary built from the same
//! routers. One module per resource, each exposing a `Router`:
//!
//! | module | what |
//! |---|---|
//! | [`ivr`] | seed 002 option 1: prompts, service menu, tracking number → campaign/source, auction, `<Dial>`, fallback chain, dial-result / status / recording callbacks |
//! | [`agent`] | seed 002 option 2: the agent desk (`/agent`) and its API |
//! | [`dashboard`] | operator pages, JSON API, SSE live feed, CSV / XLSX export |
//! | [`auth`] | operator token, `/login`, session cookie |
//! | [`settle`] | call-log events, billing, duration history, cap release |
//! | [`sim`] | drive N simulated calls against a base URL |
//! | [`demo`] | the demo buyer network (and a fake Twilio REST API for the agent desk) |
//! | [`serve`] | serving a router until the shutdown signal |
//!
//! [`router`] merges the ones a server mounts into one `Router`.
//!
//! **Prefixes and URLs.** Every URL a router generates (Gather and Dial actions, status
//! callbacks) is absolute under its configured public URL, and signatures are checked
//! against that public URL plus the path *inside* the router. So a router nested under
//! `/callbid` is configured with the public URL of its mount point, e.g.
//! `https://app.example.com/callbid`.
//!
//! **Dependencies** (why each): `axum` + `tower` are the HTTP framework and middleware
//! (the realworld-axum-sqlx shape); `indicatif` draws the simulator's progress bar;
//! `quick-xml` escapes HTML; `hmac`, `sha2`, `subtle` sign and compare the session
//! cookie in constant time; `percent-encoding` encodes the login redirect; `anyhow`
//! carries context through configuration loading and the demo network.
#![deny(missing_docs)]

pub mod agent;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod ivr;
pub mod run;
pub mod serve;
pub mod settle;
pub mod sim;

use std::sync::Arc;

use axum::Router;

/// What one server mounts: each part is optional except operator access, which guards
/// the dashboard and the agent desk.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Mounts {
    /// The IVR webhooks (`/voice`, `/ivr/*`, `/healthz`).
    pub ivr: Option<Arc<ivr::App>>,
    /// The agent desk and its webhooks (`/agent`, `/agent/api/*`, `/twilio/*`).
    pub agent: Option<agent::AgentConfig>,
    /// The operator dashboard (`/`, `/dashboard`, `/api/*`).
    pub dashboard: Option<dashboard::DashboardState>,
    /// Who may open the dashboard and the agent desk.
    pub operator: auth::OperatorAuth,
}

impl Mounts {
    /// Nothing mounted yet, with the given operator access.
    pub fn new(operator: auth::OperatorAuth) -> Self {
        Mounts {
            ivr: None,
            agent: None,
            dashboard: None,
            operator,
        }
    }

    /// Mounts the IVR.
    pub fn with_ivr(mut self, app: Arc<ivr::App>) -> Self {
        self.ivr = Some(app);
        self
    }

    /// Mounts the agent desk.
    pub fn with_agent(mut self, cfg: agent::AgentConfig) -> Self {
        self.agent = Some(cfg);
        self
    }

    /// Mounts the dashboard.
    pub fn with_dashboard(mut self, state: dashboard::DashboardState) -> Self {
        self.dashboard = Some(state);
        self
    }
}

/// One router with every mounted part merged: webhooks outside the operator layer
/// (they are signature-checked), the dashboard and agent desk behind it plus `/login`.
pub fn router(m: Mounts) -> Router {
    let mut app = Router::new();
    if let Some(ivr) = m.ivr {
        app = app.merge(ivr::router(ivr));
    }
    if let Some(agent) = m.agent {
        app = app.merge(agent::router_with(agent, &m.operator));
    } else if let Some(dash) = m.dashboard {
        app = app.merge(auth::protect(dashboard::router(dash), &m.operator));
    }
    app
}

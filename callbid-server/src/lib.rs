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
//! | [`pool`] | seed 003: number pools for call tracking (the public lease API, `callbid-dni.js`, call attribution, pool health) |
//! | [`agents_file`] | seed 001: the `agents.toml` of `callbid serve`'s agent pool (offers in [`ivr::offer`], the desk in [`ivr::desk`]) |
//! | [`campaign`] | seed 004: outbound campaigns (CSV upload, lifecycle, pacing loop, provider callbacks, `/campaigns` page) |
//! | [`postback`] | issue 12: signed, retried, idempotent publisher postbacks when a call becomes billable |
//! | [`settle`] | call-log events, billing, duration history, cap release |
//! | [`explain`] | "why this buyer won" and replay (`callbid replay`, `/api/calls/{id}/replay`) from the logged auction inputs |
//! | [`sim`] | drive N simulated calls against a base URL |
//! | [`demo`] | the demo buyer network (and a fake Twilio REST API for the agent desk) |
//! | [`metrics`] | `GET /metrics` (Prometheus text) and what is recorded |
//! | [`logline`] | rate-limited log lines |
//! | [`error`] | [`error::ApiError`], the one error type of the JSON routes |
//! | [`serve`] | serving a router until the shutdown signal |
//!
//! [`router`] merges the ones a server mounts into one `Router`.
//!
//! Mounting the IVR under `/callbid` in an app of your own:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use axum::routing::get;
//! use axum::Router;
//! use callbid_core::auction::Strategy;
//! use callbid_core::billing::PayoutRule;
//! use callbid_core::inprocess::InProcessBuyer;
//! use callbid_core::state::{
//!     MemoryCallLog, MemoryCapStore, MemoryDurationHistory, MemoryRoutingStore,
//! };
//! use callbid_core::{BuyerEntry, BuyerId, Destination, Money};
//! use callbid_server::ivr::fallback::{FallbackChain, DEFAULT_MESSAGE};
//! use callbid_server::ivr::menu::{Campaigns, Menu};
//! use callbid_server::ivr::{self, App, IvrConfig, Stores};
//! use callbid_twilio::signature::WebhookVerifier;
//! use rust_decimal::Decimal;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // callbid's public URL is the mount point's: generated URLs and signature checks use it.
//! let public = "https://app.example.com/callbid";
//! let history = Arc::new(MemoryDurationHistory::new());
//! let buyer = InProcessBuyer::new(
//!     BuyerId::new("acme")?,
//!     Money::usd(Decimal::new(4500, 2)),
//!     Destination::parse("+15125550111")?,
//! );
//! let auction = callbid_server::settle::build_auction(
//!     vec![BuyerEntry::new(Arc::new(buyer))],
//!     history.clone(),
//!     Strategy::HighestScore,
//!     Duration::from_millis(1500),
//! )?;
//! let config = IvrConfig {
//!     public_url: public.to_owned(),
//!     menu: Menu::parse("1=Plumbing,2=Roofing")?,
//!     campaigns: Campaigns::demo(),
//!     fallback: FallbackChain::parse(
//!         "voicemail,message",
//!         None,
//!         DEFAULT_MESSAGE,
//!         &format!("{public}/ivr/fallback"),
//!     )?,
//!     payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
//!     dial_timeout: 25,
//!     record: true,
//!     greeting: "Thanks for calling.".to_owned(),
//!     log_calls: false,
//! };
//! let stores = Stores {
//!     log: Arc::new(MemoryCallLog::new()),
//!     caps: Arc::new(MemoryCapStore::new()),
//!     history,
//!     routing: Arc::new(MemoryRoutingStore::new()),
//!        agents: None,
//!        pools: None,
//! };
//! let verifier = WebhookVerifier::new(public, "your-twilio-auth-token")?;
//! let ivr_app = App::new(config, stores, auction, Some(verifier));
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "the host app" }))
//!     .nest("/callbid", ivr::router(ivr_app));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
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
//! carries context through configuration loading and the demo network; `governor`
//! (GCRA, keyed) rate-limits repeated log lines ([`logline`]).
#![deny(missing_docs)]

pub mod agent;
pub mod agents_file;
pub mod auth;
pub mod campaign;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod explain;
pub mod ivr;
pub mod logline;
pub mod metrics;
pub mod outbound_file;
pub mod pool;
pub mod postback;
pub mod quality;
pub mod quality_file;
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
    /// Outbound campaigns: the provider's webhooks (`/campaigns/{id}/*`) and, behind
    /// operator access, the API and page (`/api/campaigns*`, `/campaigns`).
    pub campaigns: Option<Arc<campaign::CampaignApp>>,
    /// `GET /metrics` (Prometheus text), behind the operator token when one is required.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Quality evidence: buyers' conversion postbacks (`POST /api/conversions`, their
    /// own bearer tokens) and Twilio's transcription callback (`/twilio/transcription`,
    /// signed), both outside operator access. See [`quality`].
    pub quality: Option<Arc<quality::QualityApp>>,
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
            campaigns: None,
            metrics: None,
            quality: None,
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

    /// Mounts outbound campaigns (run [`campaign::spawn_pacer`] to dial).
    pub fn with_campaigns(mut self, app: Arc<campaign::CampaignApp>) -> Self {
        self.campaigns = Some(app);
        self
    }

    /// Mounts `GET /metrics` ([`metrics::prometheus`] installs the recorder and gives
    /// the handle).
    pub fn with_metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Mounts the quality routes ([`quality::api_router`], [`quality::webhook_router`]).
    pub fn with_quality(mut self, app: Arc<quality::QualityApp>) -> Self {
        self.quality = Some(app);
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
    let login_mounted = m.agent.is_some() || m.dashboard.is_some();
    if let Some(agent) = m.agent {
        app = app.merge(agent::router_with(agent, &m.operator));
    } else if let Some(dash) = m.dashboard {
        app = app.merge(auth::protect(dashboard::router(dash), &m.operator));
    }
    if let Some(c) = m.campaigns {
        let api = campaign::api_router(c.clone());
        let api = if login_mounted {
            auth::guard_only(api, &m.operator)
        } else {
            auth::protect(api, &m.operator)
        };
        app = app.merge(campaign::webhook_router(c)).merge(api);
    }
    if let Some(h) = m.metrics {
        app = app.merge(auth::guard_only(metrics::router(h), &m.operator));
    }
    if let Some(q) = m.quality {
        app = app
            .merge(quality::api_router(q.clone()))
            .merge(quality::webhook_router(q));
    }
    app
}

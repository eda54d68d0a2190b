//! The host app of `examples/embed_axum`: an axum app with its own routes and state that
//! mounts callbid's IVR and dashboard under `/callbid`, with buyers built in code.
//! (In your own app: `callbid = { version = "0.1", features = ["server"] }` and
//! `callbid::server` instead of `callbid_server`.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use callbid::core::auction::Strategy;
use callbid::core::billing::PayoutRule;
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::{BuyerEntry, BuyerId, Destination, Money};
use callbid::store::Store;
use callbid::twilio::signature::WebhookVerifier;
use callbid_server::auth::OperatorAuth;
use callbid_server::dashboard::DashboardState;
use callbid_server::ivr::fallback::{FallbackChain, DEFAULT_MESSAGE};
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::ivr::{App, IvrConfig, Stores};
use rust_decimal::Decimal;

/// Where callbid is mounted in the host app.
pub const PREFIX: &str = "/callbid";

/// The host's own state.
#[derive(Debug, Default)]
pub struct HostState {
    /// Visits of `/hello`.
    pub hellos: AtomicU64,
}

async fn hello(State(s): State<Arc<HostState>>) -> String {
    let n = s.hellos.fetch_add(1, Ordering::Relaxed) + 1;
    format!("hello from the host app ({n})")
}

/// Buyers built in code: two in-process buyers with fixed prices.
pub fn buyers() -> anyhow::Result<Vec<BuyerEntry>> {
    let mk = |id: &str, cents: i64, dest: &str| -> anyhow::Result<BuyerEntry> {
        let b = InProcessBuyer::new(
            BuyerId::new(id)?,
            Money::usd(Decimal::new(cents, 2)),
            Destination::parse(dest)?,
        )
        .with_min_duration(Duration::from_secs(60));
        Ok(BuyerEntry::new(Arc::new(b)))
    };
    Ok(vec![
        mk("acme-plumbing", 4500, "+15125550111")?,
        mk("budget-leads", 3000, "+15125550122")?,
    ])
}

/// The host app: its own `/hello` plus callbid under [`PREFIX`]. `public_url` is the
/// host's public URL (`http://127.0.0.1:3200`); callbid's is that plus the prefix.
pub async fn app(
    public_url: &str,
    database_url: &str,
    auth_token: &str,
) -> anyhow::Result<(Router, Arc<App>)> {
    let store = Store::open(database_url).await?;
    let h = store.handles();
    let callbid_url = format!("{}{PREFIX}", public_url.trim_end_matches('/'));
    let auction = callbid_server::settle::build_auction(
        buyers()?,
        h.history.clone(),
        Strategy::HighestScore,
        Duration::from_millis(1500),
    )?;
    let config = IvrConfig {
        public_url: callbid_url.clone(),
        menu: Menu::parse("1=Plumbing,2=Roofing")?,
        campaigns: Campaigns::demo(),
        fallback: FallbackChain::parse(
            "voicemail,message",
            None,
            DEFAULT_MESSAGE,
            &format!("{callbid_url}/ivr/fallback"),
        )?,
        payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
        dial_timeout: 25,
        record: true,
        greeting: "Thanks for calling the host app's line.".to_owned(),
        log_calls: false,
    };
    let stores = Stores {
        log: h.log.clone(),
        caps: h.caps.clone(),
        history: h.history.clone(),
        routing: h.routing.clone(),
        agents: None,
        pools: None,
    };
    let verifier = WebhookVerifier::new(&callbid_url, auth_token)?;
    let ivr = App::new(config, stores, auction.clone(), Some(verifier));
    let mounts = callbid_server::Mounts::new(OperatorAuth::open())
        .with_ivr(ivr.clone())
        .with_dashboard(DashboardState {
            store,
            auction,
            title: "callbid in the host app".to_owned(),
        });
    let host = Router::new()
        .route("/hello", get(hello))
        .with_state(Arc::new(HostState::default()))
        .nest(PREFIX, callbid_server::router(mounts));
    Ok((host, ivr))
}

//! Running a whole server from a [`ServerConfig`]: what `callbid serve` and the
//! `ivr_auction` example do (open the store, load the buyers or start the demo network,
//! mount the IVR and the dashboard, serve until the shutdown signal, optionally drive
//! simulated calls through it first).

mod agent_desk;
mod outbound;
mod pool;
mod postbacks;
mod tracking;

pub use agent_desk::{agent_desk, AgentDeskArgs};

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::Router;
use callbid_buyers::BuyersLoader;
use callbid_core::auction::Auction;
use callbid_core::BuyerId;
use callbid_store::Store;
use callbid_twilio::signature::WebhookVerifier;
use rand::Rng;
use tokio::sync::watch;

use crate::config::{redact, Resolved, ServerConfig};
use crate::ivr::menu::Campaigns;
use crate::ivr::{self as app, App, IvrConfig, Stores};
use crate::settle::build_auction;
use crate::{auth as operator_auth, dashboard, demo as mock_network, serve};

/// Serves the IVR (and the dashboard unless `cfg.dashboard` is off) until the shutdown
/// signal; with `simulate: Some(n)`, drives `n` simulated calls through it first, prints
/// the summary and stops. Every value of `cfg` is validated before anything starts.
pub async fn ivr(cfg: ServerConfig, simulate: Option<usize>) -> anyhow::Result<ExitCode> {
    let checked = check(&cfg, simulate)?;
    let operator = operator_access(&cfg)?;
    let store = open_store(&cfg.database_url).await?;
    let buyers = buyers(&cfg, &store, &checked).await?;
    let endpoint = bind(&cfg).await?;
    let postbacks = postbacks::setup(&cfg, &store)?;
    let built = build_app(
        &cfg,
        &store,
        &checked,
        &buyers,
        &endpoint,
        simulate,
        postbacks.as_ref(),
    );
    let (app, tracking) = built.await?;
    let outbound = outbound::setup(
        &cfg,
        &store,
        &endpoint.public_url,
        endpoint.verifier.as_ref(),
        &endpoint.token,
    )
    .await?;
    let postbacks = match postbacks {
        Some(p) => Some((p.start(store.handles().log)?, p.summary)),
        None => None,
    };
    let extras = Extras {
        tracking,
        outbound,
        postbacks,
    };
    let router = mount(&cfg, &app, &store, &buyers, &extras, &operator);
    let banner = (&store, &buyers, &endpoint, &extras);
    print_banner(&cfg, &app, banner, &operator, simulate);
    let running = start(app.clone(), endpoint.listener, router);
    let code = match simulate {
        Some(n) => simulate_calls(&cfg, &app, &checked, &endpoint.token, endpoint.local, n).await,
        None => ExitCode::SUCCESS,
    };
    if simulate.is_some() {
        let _ = running.stop.send(true);
    }
    drain(running).await;
    close(app, buyers, extras, store, simulate).await;
    Ok(code)
}

/// Phase 1: every configuration value, the campaigns file and the simulate options.
struct Checked {
    resolved: Resolved,
    campaigns: Campaigns,
}

fn check(cfg: &ServerConfig, simulate: Option<usize>) -> anyhow::Result<Checked> {
    // Configuration first: every bad value is reported before anything starts.
    let resolved = cfg.validate()?;
    let campaigns = match &cfg.campaigns {
        Some(p) => Campaigns::load(p)?,
        None => Campaigns::demo(),
    };
    if simulate == Some(0) {
        bail!("invalid simulate 0: simulate at least one call");
    }
    if simulate.is_some() && (cfg.public_url.is_some() || cfg.insecure_skip_signature) {
        // The simulator signs for the local URL and the server verifies against it.
        bail!("simulating cannot be combined with public_url or insecure_skip_signature");
    }
    Ok(Checked {
        resolved,
        campaigns,
    })
}

/// Phase 2: the dashboard shows callers' numbers, so no token on a public address is
/// refused.
fn operator_access(cfg: &ServerConfig) -> anyhow::Result<operator_auth::OperatorAuth> {
    if !cfg.dashboard {
        return Ok(operator_auth::OperatorAuth::open());
    }
    let auth = operator_auth::check_exposure(
        cfg.listen,
        cfg.dashboard_token.as_deref(),
        cfg.insecure_open_dashboard,
    )?;
    if !auth.token_required() && !cfg.listen.ip().to_canonical().is_loopback() {
        eprintln!("{}", operator_auth::insecure_warning(cfg.listen));
    }
    Ok(auth)
}

/// Phase 3: the store.
async fn open_store(database_url: &str) -> anyhow::Result<Store> {
    Store::open(database_url).await.with_context(|| {
        let hint = if database_url.starts_with("postgres") && !cfg!(feature = "postgres") {
            " (PostgreSQL needs `cargo run --example ivr_auction --features postgres`)"
        } else {
            ""
        };
        format!("cannot open database_url {}{hint}", redact(database_url))
    })
}

/// Phase 4: the buyers (a buyers.toml, or the demo network on loopback), the agent pool
/// bidding next to them when its file has bids, and the auction over them all.
struct Buyers {
    auction: Auction,
    count: usize,
    network: Option<mock_network::MockNetwork>,
    pool: Option<pool::PoolSetup>,
    /// The `quality` key's file and every buyer's zone (for the quality routes).
    quality: Option<(
        crate::quality_file::QualityFile,
        BTreeMap<BuyerId, chrono_tz::Tz>,
    )>,
}

async fn buyers(cfg: &ServerConfig, store: &Store, checked: &Checked) -> anyhow::Result<Buyers> {
    let handles = store.handles();
    let loader = BuyersLoader::new(handles.caps.clone(), handles.seen.clone());
    let (mut entries, network) =
        mock_network::load_buyers_or_demo(loader, cfg.buyers.as_deref(), cfg.seed).await?;
    let pool = pool::setup(cfg, store, checked.resolved.in_house.as_ref()).await?;
    if let Some(e) = pool.as_ref().and_then(|p| p.entry.clone()) {
        entries.push(e);
    }
    let count = entries.len();
    let deadline = Duration::from_millis(cfg.deadline_ms);
    let quality = match &cfg.quality {
        None => None,
        Some(path) => {
            let file = crate::quality_file::load(path, |v| std::env::var(v).ok())?;
            let zones = entries
                .iter()
                .map(|e| (e.profile.id.clone(), e.profile.time_zone))
                .collect();
            Some((file, zones))
        }
    };
    let auction = match &quality {
        None => build_auction(
            entries,
            handles.history.clone(),
            checked.resolved.strategy,
            deadline,
        )?,
        Some((file, _)) => crate::settle::build_auction_with_quality(
            entries,
            handles.history.clone(),
            Arc::new(store.clone()),
            file.scoring.clone(),
            checked.resolved.strategy,
            deadline,
        )?,
    };
    Ok(Buyers {
        auction,
        count,
        network,
        pool,
        quality,
    })
}

/// Phase 5: the listening socket, the public URL, the auth token and the signature
/// verifier for it.
struct Endpoint {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    public_url: String,
    token: String,
    generated: bool,
    verifier: Option<WebhookVerifier>,
}

async fn bind(cfg: &ServerConfig) -> anyhow::Result<Endpoint> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on listen {}", cfg.listen))?;
    let local = listener.local_addr()?;
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let (token, generated) = match &cfg.auth_token {
        Some(t) if !t.trim().is_empty() => (t.clone(), false),
        _ => (format!("{:032x}", rand::rng().random::<u128>()), true),
    };
    let verifier = if cfg.insecure_skip_signature {
        eprintln!("{}", "!".repeat(78));
        eprintln!("!! --insecure-skip-signature: Twilio signatures are NOT checked.");
        eprintln!("!! Anyone who can reach this server can fake calls, bill buyers and read");
        eprintln!("!! routing decisions. Use it only for local curl experiments.");
        eprintln!("{}", "!".repeat(78));
        None
    } else {
        Some(
            WebhookVerifier::new(&public_url, &token)
                .with_context(|| format!("invalid public_url {public_url}"))?,
        )
    };
    Ok(Endpoint {
        listener,
        local,
        public_url: public_url.trim_end_matches('/').to_owned(),
        token,
        generated,
        verifier,
    })
}

/// Phase 6: the IVR application over the stores, with the number pools when configured.
async fn build_app(
    cfg: &ServerConfig,
    store: &Store,
    checked: &Checked,
    buyers: &Buyers,
    endpoint: &Endpoint,
    simulate: Option<usize>,
    postbacks: Option<&postbacks::Postbacks>,
) -> anyhow::Result<(Arc<App>, Option<tracking::Tracking>)> {
    let public_url = &endpoint.public_url;
    let r = &checked.resolved;
    let config = IvrConfig {
        public_url: public_url.clone(),
        menu: r.menu.clone(),
        campaigns: checked.campaigns.clone(),
        fallback: r
            .fallback
            .clone()
            .with_prefix(&format!("{public_url}/ivr/fallback")),
        payout: r.payout,
        dial_timeout: cfg.dial_timeout,
        record: cfg.record,
        log_calls: simulate.is_none(),
        greeting: "Thanks for calling. We will connect you with a local professional.".to_owned(),
    };
    let tracking = tracking::setup(cfg, store, public_url).await?;
    let handles = store.handles();
    // With postbacks, a billable settlement enqueues its postback before it is logged.
    let log = match postbacks {
        Some(p) => p.wrap(handles.log.clone()),
        None => handles.log.clone(),
    };
    let stores = Stores {
        log,
        caps: handles.caps.clone(),
        history: handles.history.clone(),
        routing: handles.routing.clone(),
        agents: buyers.pool.as_ref().map(|p| p.offers.clone()),
        pools: tracking.as_ref().map(|t| t.app.clone()),
    };
    let verifier = endpoint.verifier.clone();
    let app = App::new(config, stores, buyers.auction.clone(), verifier);
    Ok((app, tracking))
}

/// What a server may add to the IVR: number pools, outbound campaigns and the
/// publisher postbacks' delivery worker (with its banner line).
struct Extras {
    tracking: Option<tracking::Tracking>,
    outbound: Option<outbound::Outbound>,
    postbacks: Option<(crate::postback::worker::PostbackTask, String)>,
}

/// Phase 7: the routes: the IVR, the lease API, the desk, the dashboard and the metrics,
/// each behind the operator access it needs.
fn mount(
    cfg: &ServerConfig,
    app: &Arc<App>,
    store: &Store,
    buyers: &Buyers,
    extras: &Extras,
    operator: &operator_auth::OperatorAuth,
) -> Router {
    let mut router = app::router(app.clone());
    if let Some((file, zones)) = &buyers.quality {
        app.transcribe(file.transcribe);
        let q = Arc::new(crate::quality::QualityApp {
            log: app.stores.log.clone(),
            quality: Arc::new(store.clone()),
            tokens: file.tokens.clone(),
            classifier: file.classifier.clone(),
            zones: zones.clone(),
            verifier: app.verifier.clone(),
        });
        router = router
            .merge(crate::quality::api_router(q.clone()))
            .merge(crate::quality::webhook_router(q));
    }
    if let Some(o) = &extras.outbound {
        // The provider's webhooks are public (signature-checked for Twilio).
        router = router.merge(crate::campaign::webhook_router(o.app.clone()));
        let api = crate::campaign::api_router(o.app.clone());
        router = router.merge(operator_auth::guard_only(api, operator));
    }
    if let Some(t) = &extras.tracking {
        // Public: the sites' pages call it (its own limits and CORS apply).
        router = router.merge(crate::pool::router(t.app.clone()));
        let health = crate::pool::operator_router(t.app.clone(), store.handles().log.clone());
        router = router.merge(operator_auth::guard_only(health, operator));
    }
    if buyers.pool.is_some() {
        let desk = crate::ivr::desk::router(app.clone());
        router = router.merge(operator_auth::guard_only(desk, operator));
    }
    if cfg.dashboard {
        let dash = dashboard::router(dashboard::DashboardState {
            store: store.clone(),
            auction: buyers.auction.clone(),
            title: "callbid IVR".to_owned(),
        });
        router = router.merge(operator_auth::protect(dash, operator));
    }
    if cfg.metrics {
        if let Some(h) = crate::metrics::prometheus() {
            let metrics = crate::metrics::router(h);
            router = router.merge(operator_auth::guard_only(metrics, operator));
        }
    }
    router
}

/// Phase 8: what is where, on stdout.
fn print_banner(
    cfg: &ServerConfig,
    app: &Arc<App>,
    (store, buyers, endpoint, extras): (&Store, &Buyers, &Endpoint, &Extras),
    operator: &operator_auth::OperatorAuth,
    simulate: Option<usize>,
) {
    let (local, public_url) = (endpoint.local, &endpoint.public_url);
    println!("callbid IVR listening on http://{local}");
    println!("  Twilio voice webhook:   POST {public_url}/voice");
    println!("  status callback:        POST {public_url}/ivr/status");
    if cfg.dashboard {
        let login = if operator.token_required() {
            "  (operator token required: log in at /login)"
        } else {
            ""
        };
        println!("  dashboard:              http://{local}/{login}");
    }
    let demo = buyers
        .network
        .as_ref()
        .map(|n| format!(" (demo network at {})", n.base_url()))
        .unwrap_or_default();
    println!(
        "  store: {} ({})   buyers: {}{demo}   fallback: {}   payout: {}",
        store.backend(),
        redact(&cfg.database_url),
        buyers.count,
        app.config.fallback,
        cfg.payout
    );
    if let Some(p) = &buyers.pool {
        println!("  {}   desk: http://{local}/desk", p.summary);
    }
    if let Some(t) = &extras.tracking {
        println!("  {}   script: {public_url}/pool/callbid-dni.js", t.summary);
    }
    if let Some(o) = &extras.outbound {
        println!("  {}   campaigns: http://{local}/campaigns", o.summary);
    }
    if let Some((_, summary)) = &extras.postbacks {
        println!("  {summary}");
    }
    if let Some((q, _)) = &buyers.quality {
        println!(
            "  quality factor: {}   exploration: {}   transcription: {}   conversions: POST {public_url}/api/conversions",
            if q.scoring.use_quality { "on" } else { "off" },
            q.scoring.exploration,
            if q.transcribe { "on" } else { "off" },
        );
    }
    if endpoint.generated && simulate.is_none() && !cfg.insecure_skip_signature {
        let token = &endpoint.token;
        println!("  no TWILIO_AUTH_TOKEN / --auth-token given; development token: {token}");
    }
}

/// Phase 9: the server task, the sweeper of forgotten calls and old routing decisions,
/// and the switch that stops them.
struct Running {
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<bool>>,
    sweeper: tokio::task::JoinHandle<()>,
}

fn start(app: Arc<App>, listener: tokio::net::TcpListener, router: Router) -> Running {
    // Shutdown: Ctrl-C, SIGTERM, or the end of the simulation.
    let (stop, mut signal_rx) = watch::channel(false);
    let shutdown = async move {
        tokio::select! {
            _ = serve::shutdown_signal() => eprintln!("shutting down: finishing in-flight requests…"),
            Ok(_) = signal_rx.wait_for(|s| *s) => {}
        }
    };
    let sweeper = tokio::spawn(sweep_forever(app));
    let server = tokio::spawn(serve::serve_gracefully(
        listener,
        router,
        shutdown,
        Duration::from_secs(10),
    ));
    Running {
        stop,
        server,
        sweeper,
    }
}

async fn sweep_forever(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        let n = app.sweep(Duration::from_secs(6 * 3600));
        if n > 0 {
            eprintln!("INFO ivr: forgot {n} calls with no status callback for 6 h");
        }
        // Twilio's retries stop within minutes: a day of decisions is plenty.
        let day_ago = chrono::Utc::now() - chrono::Duration::days(1);
        if let Err(e) = app.stores.routing.prune_routes(day_ago).await {
            eprintln!("WARN ivr: cannot prune routing decisions: {e}");
        }
    }
}

/// Phase 10 (with `simulate`): `n` signed calls through the running server, and the
/// summary on stdout.
async fn simulate_calls(
    cfg: &ServerConfig,
    app: &Arc<App>,
    checked: &Checked,
    token: &str,
    local: SocketAddr,
    n: usize,
) -> ExitCode {
    let opts = crate::sim::SimOptions {
        calls: n,
        concurrency: cfg.concurrency,
        seed: cfg.seed,
        base_url: format!("http://{local}"),
        auth_token: token.to_owned(),
        tracking_numbers: checked.campaigns.numbers().cloned().collect(),
        menu_keys: checked.resolved.menu.entries().map(|(d, _, _)| d).collect(),
        progress: std::io::stderr().is_terminal(),
    };
    let report = match crate::sim::run(app, &opts).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: simulation failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match crate::sim::summary(&report, &opts, &cfg.payout) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Phase 11: wait for the server to drain; streams that never end (the dashboard's live
/// feed) get 10 s after the shutdown signal.
async fn drain(running: Running) {
    match running.server.await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            eprintln!("warning: requests still open 10 s after shutdown were closed")
        }
        Ok(Err(e)) => eprintln!("error: server: {e}"),
        Err(e) => eprintln!("error: server task: {e}"),
    }
    running.sweeper.abort();
    let _ = running.sweeper.await;
}

/// Phase 12: stop the helpers. Every acknowledged event is already committed; dropping
/// the last handles closes the database connections.
async fn close(
    app: Arc<App>,
    buyers: Buyers,
    extras: Extras,
    store: Store,
    simulate: Option<usize>,
) {
    if let Some(o) = extras.outbound {
        o.pacer.abort();
        let _ = o.pacer.await;
        if let Some(f) = &o.fake {
            f.stop();
        }
    }
    if let Some((worker, _)) = extras.postbacks {
        // Finishes the round in flight (bounded by the per-attempt timeout).
        worker.stop().await;
    }
    if let Some(t) = extras.tracking {
        t.maintenance.abort();
        let _ = t.maintenance.await;
    } // its clone of the app is dropped once it has stopped
    if let Some(net) = &buyers.network {
        net.stop();
    }
    if let Some(f) = buyers.pool.as_ref().and_then(|p| p.fake.as_ref()) {
        f.stop();
    }
    let live = app.live_calls();
    drop(app);
    drop(buyers);
    drop(store);
    if live > 0 && simulate.is_none() {
        eprintln!("note: {live} calls were still between webhooks at shutdown (their state is in the call log)");
    }
}

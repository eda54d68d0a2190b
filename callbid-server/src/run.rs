//! Running a whole server from a [`ServerConfig`]: what `callbid serve` and the
//! `ivr_auction` example do (open the store, load the buyers or start the demo network,
//! mount the IVR and the dashboard, serve until the shutdown signal, optionally drive
//! simulated calls through it first).

mod agent_desk;
mod pool;
mod tracking;

pub use agent_desk::{agent_desk, AgentDeskArgs};

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use callbid_buyers::BuyersLoader;
use callbid_store::Store;
use callbid_twilio::signature::WebhookVerifier;
use rand::Rng;
use tokio::sync::watch;

use crate::config::{redact, ServerConfig};
use crate::ivr::menu::Campaigns;
use crate::ivr::{self as app, App, IvrConfig, Stores};
use crate::settle::build_auction;
use crate::{auth as operator_auth, dashboard, demo as mock_network, serve};

/// Serves the IVR (and the dashboard unless `cfg.dashboard` is off) until the shutdown
/// signal; with `simulate: Some(n)`, drives `n` simulated calls through it first, prints
/// the summary and stops. Every value of `cfg` is validated before anything starts.
pub async fn ivr(cfg: ServerConfig, simulate: Option<usize>) -> anyhow::Result<ExitCode> {
    let args = cfg;
    // Configuration first: every bad value is reported before anything starts.
    let resolved = args.validate()?;
    let (menu, fallback, payout, strategy) = (
        resolved.menu,
        resolved.fallback,
        resolved.payout,
        resolved.strategy,
    );
    let campaigns = match &args.campaigns {
        Some(p) => Campaigns::load(p)?,
        None => Campaigns::demo(),
    };
    if simulate == Some(0) {
        bail!("invalid simulate 0: simulate at least one call");
    }
    if simulate.is_some() && (args.public_url.is_some() || args.insecure_skip_signature) {
        // The simulator signs for the local URL and the server verifies against it.
        bail!("simulating cannot be combined with public_url or insecure_skip_signature");
    }
    let listen = args.listen;
    // The dashboard shows callers' numbers: no token on a public address is refused.
    let operator = if !args.dashboard {
        operator_auth::OperatorAuth::open()
    } else {
        let auth = operator_auth::check_exposure(
            listen,
            args.dashboard_token.as_deref(),
            args.insecure_open_dashboard,
        )?;
        if !auth.token_required() && !listen.ip().to_canonical().is_loopback() {
            eprintln!("{}", operator_auth::insecure_warning(listen));
        }
        auth
    };

    let store = Store::open(&args.database_url).await.with_context(|| {
        let hint = if args.database_url.starts_with("postgres") && !cfg!(feature = "postgres") {
            " (PostgreSQL needs `cargo run --example ivr_auction --features postgres`)"
        } else {
            ""
        };
        format!(
            "cannot open database_url {}{hint}",
            redact(&args.database_url)
        )
    })?;
    let handles = store.handles();

    // Buyers: a buyers.toml, or the demo network on loopback.
    let loader = BuyersLoader::new(handles.caps.clone(), handles.seen.clone());
    let (mut entries, network) =
        mock_network::load_buyers_or_demo(loader, args.buyers.as_deref(), args.seed).await?;
    // The agent pool (agents.toml), bidding next to the buyers when it has bids.
    let pool = pool::setup(&args, &store, resolved.in_house.as_ref()).await?;
    if let Some(e) = pool.as_ref().and_then(|p| p.entry.clone()) {
        entries.push(e);
    }
    let buyer_count = entries.len();
    let auction = build_auction(
        entries,
        handles.history.clone(),
        strategy,
        Duration::from_millis(args.deadline_ms),
    )?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on listen {listen}"))?;
    let local = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let (token, generated) = match &args.auth_token {
        Some(t) if !t.trim().is_empty() => (t.clone(), false),
        _ => {
            let mut rng = rand::rng();
            (format!("{:032x}", rng.random::<u128>()), true)
        }
    };
    let verifier = if args.insecure_skip_signature {
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

    let public_url = public_url.trim_end_matches('/').to_owned();
    let fallback = fallback.with_prefix(&format!("{public_url}/ivr/fallback"));
    let config = IvrConfig {
        public_url: public_url.clone(),
        menu: menu.clone(),
        campaigns: campaigns.clone(),
        fallback,
        payout,
        dial_timeout: args.dial_timeout,
        record: args.record,
        log_calls: simulate.is_none(),
        greeting: "Thanks for calling. We will connect you with a local professional.".to_owned(),
    };
    let tracking = tracking::setup(&args, &store, &public_url).await?;
    let stores = Stores {
        log: handles.log.clone(),
        caps: handles.caps.clone(),
        history: handles.history.clone(),
        routing: handles.routing.clone(),
        agents: pool.as_ref().map(|p| p.offers.clone()),
        pools: tracking.as_ref().map(|t| t.app.clone()),
    };
    let app = App::new(config, stores, auction.clone(), verifier);
    let mut router = app::router(app.clone());
    if let Some(t) = &tracking {
        // Public: the sites' pages call it (its own limits and CORS apply).
        router = router.merge(crate::pool::router(t.app.clone()));
        let health = crate::pool::operator_router(t.app.clone(), handles.log.clone());
        router = router.merge(operator_auth::guard_only(health, &operator));
    }
    if pool.is_some() {
        let desk = crate::ivr::desk::router(app.clone());
        router = router.merge(operator_auth::guard_only(desk, &operator));
    }
    if args.dashboard {
        let dash = dashboard::router(dashboard::DashboardState {
            store: store.clone(),
            auction: auction.clone(),
            title: "callbid IVR".to_owned(),
        });
        router = router.merge(operator_auth::protect(dash, &operator));
    }
    if args.metrics {
        if let Some(h) = crate::metrics::prometheus() {
            router = router.merge(operator_auth::guard_only(
                crate::metrics::router(h),
                &operator,
            ));
        }
    }

    println!("callbid IVR listening on http://{local}");
    println!("  Twilio voice webhook:   POST {public_url}/voice");
    println!("  status callback:        POST {public_url}/ivr/status");
    if args.dashboard {
        println!(
            "  dashboard:              http://{local}/{}",
            if operator.token_required() {
                "  (operator token required: log in at /login)"
            } else {
                ""
            }
        );
    }
    println!(
        "  store: {} ({})   buyers: {buyer_count}{}   fallback: {}   payout: {}",
        store.backend(),
        redact(&args.database_url),
        network
            .as_ref()
            .map(|n| format!(" (demo network at {})", n.base_url()))
            .unwrap_or_default(),
        app.config.fallback,
        args.payout
    );
    if let Some(p) = &pool {
        println!("  {}   desk: http://{local}/desk", p.summary);
    }
    if let Some(t) = &tracking {
        println!("  {}   script: {public_url}/pool/callbid-dni.js", t.summary);
    }
    if generated && simulate.is_none() && !args.insecure_skip_signature {
        println!("  no TWILIO_AUTH_TOKEN / --auth-token given; development token: {token}");
    }

    // Shutdown: Ctrl-C, SIGTERM, or the end of the simulation.
    let (stop_tx, mut signal_rx) = watch::channel(false);
    let shutdown = async move {
        tokio::select! {
            _ = serve::shutdown_signal() => eprintln!("shutting down: finishing in-flight requests…"),
            Ok(_) = signal_rx.wait_for(|s| *s) => {}
        }
    };
    let sweeper = {
        let app = app.clone();
        tokio::spawn(async move {
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
        })
    };
    let server = tokio::spawn(serve::serve_gracefully(
        listener,
        router,
        shutdown,
        Duration::from_secs(10),
    ));

    let mut code = ExitCode::SUCCESS;
    if let Some(n) = simulate {
        let opts = crate::sim::SimOptions {
            calls: n,
            concurrency: args.concurrency,
            seed: args.seed,
            base_url: format!("http://{local}"),
            auth_token: token.clone(),
            tracking_numbers: campaigns.numbers().cloned().collect(),
            menu_keys: menu.entries().map(|(d, _, _)| d).collect(),
            progress: std::io::stderr().is_terminal(),
        };
        match crate::sim::run(&app, &opts).await {
            Ok(report) => {
                print!("{}", crate::sim::summary(&report, &opts, &args.payout)?);
                if !report.errors.is_empty() {
                    code = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("error: simulation failed: {e:#}");
                code = ExitCode::FAILURE;
            }
        }
        let _ = stop_tx.send(true);
    }

    // Wait for the server to drain; streams that never end (the dashboard's live feed)
    // get 10 s after the shutdown signal.
    match server.await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            eprintln!("warning: requests still open 10 s after shutdown were closed")
        }
        Ok(Err(e)) => eprintln!("error: server: {e}"),
        Err(e) => eprintln!("error: server task: {e}"),
    }
    sweeper.abort();
    let _ = sweeper.await;
    if let Some(t) = tracking {
        t.maintenance.abort();
        let _ = t.maintenance.await;
    } // its clone of the app is dropped once it has stopped
    if let Some(net) = &network {
        net.stop();
    }
    if let Some(f) = pool.as_ref().and_then(|p| p.fake.as_ref()) {
        f.stop();
    }
    // Every acknowledged event is already committed; dropping the last handles closes
    // the database connections.
    let live = app.live_calls();
    drop(app);
    drop(auction);
    drop(handles);
    drop(store);
    if live > 0 && simulate.is_none() {
        eprintln!("note: {live} calls were still between webhooks at shutdown (their state is in the call log)");
    }
    Ok(code)
}

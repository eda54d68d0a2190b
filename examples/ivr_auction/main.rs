//! IVR auto-routing server (seed 002, option 1).
//!
//! Twilio calls `POST /voice`; the caller enters a ZIP and picks a service; every buyer
//! network is pinged at once; the winner's DID or SIP URI is `<Dial>`ed with the caller's
//! number, recording and an action callback; nobody buying (or any internal error) goes
//! to the fallback chain. Every step is a call-log event in SQLite (default) or
//! PostgreSQL; completed calls feed duration history and billing. The operator
//! dashboard is mounted at `/`, behind `--dashboard-token` when set (required on a
//! non-loopback `--listen` address; see `callbid_server::auth`).
//!
//! ```sh
//! cargo run --example ivr_auction                      # serve on 127.0.0.1:3000, demo buyers
//! cargo run --example ivr_auction -- --simulate 50     # 50 simulated calls, summary, exit
//! cargo run --example ivr_auction -- --buyers buyers.toml --public-url https://ivr.example.com
//! cargo run --example ivr_auction --features postgres -- --database-url postgres://…
//! ```
//!
//! Without `--buyers`, the local demo buyer network (`callbid_server::demo`,
//! 8 buyers speaking Service Direct and Ringba RTB) starts on a free loopback port.

mod args;

use callbid_server::ivr::fallback::FallbackChain;
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::ivr::{self as app, App, IvrConfig, Stores};
use callbid_server::settle::{build_auction, parse_payout, parse_strategy};
use callbid_server::{
    auth as operator_auth, dashboard, demo as mock_network, serve, sim as simulate,
};

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use callbid::buyers::BuyersLoader;
use callbid::core::PhoneNumber;
use callbid::store::Store;
use callbid_twilio::signature::WebhookVerifier;
use clap::Parser;
use rand::Rng;
use tokio::sync::watch;

use crate::args::Args;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Configuration first: every bad value is reported before anything starts.
    let menu = Menu::parse(&args.menu).context("invalid --menu")?;
    let campaigns = match &args.campaigns {
        Some(p) => Campaigns::load(p)?,
        None => Campaigns::demo(),
    };
    let in_house = args
        .in_house_number
        .as_deref()
        .map(|n| PhoneNumber::parse_field("--in-house-number", n))
        .transpose()?;
    let fallback = FallbackChain::parse(
        &args.fallback,
        in_house.as_ref(),
        &args.fallback_message,
        "/ivr/fallback",
    )
    .context("invalid --fallback")?;
    let payout = parse_payout(&args.payout).context("invalid --payout")?;
    let strategy = parse_strategy(&args.strategy).context("invalid --strategy")?;
    if args.deadline_ms == 0 {
        bail!("invalid --deadline-ms 0: must be positive");
    }
    if args.dial_timeout == 0 || args.dial_timeout > 600 {
        bail!(
            "invalid --dial-timeout {}: must be 1 to 600 seconds",
            args.dial_timeout
        );
    }
    if args.concurrency == 0 {
        bail!("invalid --concurrency 0: must be at least 1");
    }
    if args.simulate == Some(0) {
        bail!("invalid --simulate 0: simulate at least one call");
    }
    if args.simulate.is_some() && (args.public_url.is_some() || args.insecure_skip_signature) {
        // The simulator signs for the local URL and the server verifies against it.
        bail!("--simulate cannot be combined with --public-url or --insecure-skip-signature");
    }

    let listen = args.listen.unwrap_or_else(|| {
        let port = if args.simulate.is_some() { 0 } else { 3000 };
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    });
    // The dashboard shows callers' numbers: no token on a public address is refused.
    let operator = if args.no_dashboard {
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
            "cannot open --database-url {}{hint}",
            redact(&args.database_url)
        )
    })?;
    let handles = store.handles();

    // Buyers: a buyers.toml, or the demo network on loopback.
    let loader = BuyersLoader::new(handles.caps.clone(), handles.seen.clone());
    let (entries, network) =
        mock_network::load_buyers_or_demo(loader, args.buyers.as_deref(), args.seed).await?;
    let buyer_count = entries.len();
    let auction = build_auction(
        entries,
        handles.history.clone(),
        strategy,
        Duration::from_millis(args.deadline_ms),
    )?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on --listen {listen}"))?;
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
                .with_context(|| format!("invalid --public-url {public_url}"))?,
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
        log_calls: args.simulate.is_none(),
        greeting: "Thanks for calling. We will connect you with a local professional.".to_owned(),
    };
    let stores = Stores {
        log: handles.log.clone(),
        caps: handles.caps.clone(),
        history: handles.history.clone(),
    };
    let app = App::new(config, stores, auction.clone(), verifier);
    let mut router = app::router(app.clone());
    if !args.no_dashboard {
        let dash = dashboard::router(dashboard::DashboardState {
            store: store.clone(),
            auction: auction.clone(),
            title: "callbid IVR".to_owned(),
        });
        router = router.merge(operator_auth::protect(dash, &operator));
    }

    println!("callbid IVR listening on http://{local}");
    println!("  Twilio voice webhook:   POST {public_url}/voice");
    println!("  status callback:        POST {public_url}/ivr/status");
    if !args.no_dashboard {
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
    if generated && args.simulate.is_none() && !args.insecure_skip_signature {
        println!("  no TWILIO_AUTH_TOKEN / --auth-token given; development token: {token}");
    }

    // Shutdown: Ctrl-C, SIGTERM, or the end of --simulate.
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
    if let Some(n) = args.simulate {
        let opts = simulate::SimOptions {
            calls: n,
            concurrency: args.concurrency,
            seed: args.seed,
            base_url: format!("http://{local}"),
            auth_token: token.clone(),
            tracking_numbers: campaigns.numbers().cloned().collect(),
            menu_keys: menu.entries().map(|(d, _, _)| d).collect(),
            progress: std::io::stderr().is_terminal(),
        };
        match simulate::run(&app, &opts).await {
            Ok(report) => {
                print!("{}", simulate::summary(&report, &opts, &args.payout)?);
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
    let _ = sweeper.await; // its clone of the app is dropped once it has stopped
    if let Some(net) = &network {
        net.stop();
    }
    // Every acknowledged event is already committed; dropping the last handles closes
    // the database connections.
    let live = app.live_calls();
    drop(app);
    drop(auction);
    drop(handles);
    drop(store);
    if live > 0 && args.simulate.is_none() {
        eprintln!("note: {live} calls were still between webhooks at shutdown (their state is in the call log)");
    }
    Ok(code)
}

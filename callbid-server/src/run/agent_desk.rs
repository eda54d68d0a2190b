//! The agent desk server (seed 002, option 2) as a library function: what
//! `examples/agent_assist` runs. [`AgentDeskArgs`] is its command line (clap), so an
//! embedder can parse it, build it in code, or take it apart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use callbid_buyers::BuyersLoader;
use callbid_core::auction::Strategy;
use callbid_core::state::CallLog;
use callbid_store::Store;
use callbid_twilio::rest::Client as TwilioClient;
use callbid_twilio::signature::WebhookVerifier;
use clap::Parser;

use crate::agent::{self as app, AgentConfig, AgentTarget, Mode};
use crate::demo::fake_twilio;
use crate::{auth as operator_auth, demo as mock_network, serve};

/// Agent-assisted pay-per-call routing over Twilio.
#[derive(Debug, Parser)]
#[command(
    name = "agent_assist",
    version,
    about = "Agent-assisted pay-per-call routing over Twilio (seed 002, option 2): the agent desk, live bids, REST bridge."
)]
pub struct AgentDeskArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3100")]
    pub listen: SocketAddr,
    /// The public base URL Twilio calls (signatures are computed over it; also used for
    /// the `<Dial action>` of forwarded calls). Required unless --insecure-skip-signature.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Do NOT check X-Twilio-Signature. Only for local curl experiments.
    #[arg(long)]
    pub insecure_skip_signature: bool,
    /// Who answers calls: `client:IDENTITY` (Twilio Client) or an E.164 number.
    #[arg(long, default_value = "client:agent")]
    pub agent: String,
    /// buyers.toml; default: the demo buyer network started in-process.
    #[arg(long)]
    pub buyers: Option<PathBuf>,
    /// Seed of the demo buyer network.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Call log store: sqlite://PATH, a path, sqlite::memory: or postgres://….
    #[arg(long, default_value = "sqlite://callbid.db")]
    pub database_url: String,
    /// A `postbacks.toml` (format: `callbid_server::postback::file`): publisher
    /// postbacks for billable calls, as `callbid serve`'s `postbacks` key.
    #[arg(long)]
    pub postbacks: Option<PathBuf>,
    /// Twilio REST API base URL (e.g. the Prism mock's $TWILIO_PRISM_API_URL).
    #[arg(long)]
    pub twilio_api_url: Option<String>,
    /// Twilio account SID (default $TWILIO_ACCOUNT_SID).
    #[arg(long)]
    pub account_sid: Option<String>,
    /// Twilio auth token (default $TWILIO_AUTH_TOKEN); also verifies webhooks.
    #[arg(long)]
    pub auth_token: Option<String>,
    /// The form's default forwarding mode: manual or auto.
    #[arg(long, default_value = "manual")]
    pub mode: String,
    /// Auction deadline in milliseconds (pings and accept).
    #[arg(long, default_value_t = 2500)]
    pub deadline_ms: u64,
    /// Publisher payout per billable call: a percentage of revenue (70%) or a fixed
    /// USD amount (12.50).
    #[arg(long, default_value = "70%")]
    pub payout: String,
    /// Page title.
    #[arg(long, default_value = "callbid agent desk")]
    pub title: String,
    /// Operator token for the dashboard, the agent desk and their APIs: API clients send
    /// `Authorization: Bearer <token>`, browsers log in at /login. Required when --listen
    /// is not a loopback address. Unset on loopback: they are open.
    #[arg(long, env = "CALLBID_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,
    /// DANGEROUS: serve the dashboard and the agent API (start auction, forward) without
    /// a token on a non-loopback --listen address.
    #[arg(long)]
    pub insecure_open_dashboard: bool,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Serves the agent desk, its Twilio webhooks and the operator dashboard from `args`
/// until the shutdown signal (what `examples/agent_assist` runs). Every value is
/// validated first; errors name the flag and the value.
pub async fn agent_desk(args: AgentDeskArgs) -> Result<(), String> {
    let mode = Mode::parse("--mode", &args.mode).map_err(|e| e.to_string())?;
    let payout =
        crate::settle::parse_payout(&args.payout).map_err(|e| format!("invalid --payout: {e}"))?;
    let agent = AgentTarget::parse(&args.agent).map_err(|e| format!("--agent: {e}"))?;
    if !(100..=60_000).contains(&args.deadline_ms) {
        return Err(format!(
            "invalid --deadline-ms {}: must be 100 to 60000",
            args.deadline_ms
        ));
    }
    // The dashboard shows callers' numbers and the agent API moves calls: no token on a
    // public address is refused.
    let operator = operator_auth::check_exposure(
        args.listen,
        args.dashboard_token.as_deref(),
        args.insecure_open_dashboard,
    )
    .map_err(|e| e.to_string())?;
    if !operator.token_required() && !args.listen.ip().to_canonical().is_loopback() {
        eprintln!("{}", operator_auth::insecure_warning(args.listen));
    }
    let account_sid = non_empty(args.account_sid.clone())
        .or_else(|| non_empty(std::env::var("TWILIO_ACCOUNT_SID").ok()));
    let auth_token = non_empty(args.auth_token.clone())
        .or_else(|| non_empty(std::env::var("TWILIO_AUTH_TOKEN").ok()));

    // Webhook signatures.
    let verifier = if args.insecure_skip_signature {
        eprintln!("{}", "!".repeat(78));
        eprintln!("!! --insecure-skip-signature: Twilio signatures are NOT checked. Anyone who");
        eprintln!("!! can reach this server can fake calls. Use it only for local curl.");
        eprintln!("{}", "!".repeat(78));
        None
    } else {
        let public = args.public_url.as_deref().ok_or(
            "--public-url is required to check Twilio signatures (or pass --insecure-skip-signature for local curl)",
        )?;
        let token = auth_token.as_deref().ok_or(
            "checking Twilio signatures needs the auth token: set TWILIO_AUTH_TOKEN or --auth-token (or pass --insecure-skip-signature for local curl)",
        )?;
        Some(WebhookVerifier::new(public, token).map_err(|e| format!("--public-url: {e}"))?)
    };

    // The REST client: real credentials (Twilio or a mock at --twilio-api-url), or the
    // built-in fake of the Calls update endpoint.
    let mut fake = None;
    let twilio = match (&account_sid, &auth_token) {
        (Some(sid), Some(token)) => {
            let mut b = TwilioClient::builder(sid.clone()).auth_token(token.clone());
            if let Some(url) = &args.twilio_api_url {
                b = b.api_base_url(url.clone());
            }
            let c = b.build().map_err(|e| format!("Twilio client: {e}"))?;
            eprintln!(
                "Twilio REST API: {}",
                args.twilio_api_url
                    .as_deref()
                    .unwrap_or("https://api.twilio.com")
            );
            c
        }
        _ => {
            if args.twilio_api_url.is_some() {
                return Err("--twilio-api-url needs --account-sid and --auth-token (or TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN)".into());
            }
            let sid = "AC00000000000000000000000000000000";
            let token = "fake-auth-token";
            let f = fake_twilio::FakeTwilio::start(
                "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
                sid,
                token,
            )
            .await
            .map_err(|e| format!("cannot start the fake Twilio API: {e}"))?;
            eprintln!(
                "no Twilio credentials: call updates go to a built-in fake at {} (see {}/fake/requests)",
                f.base_url, f.base_url
            );
            let c = TwilioClient::builder(sid)
                .auth_token(token)
                .api_base_url(f.base_url.clone())
                .build()
                .map_err(|e| format!("Twilio client: {e}"))?;
            fake = Some(f);
            c
        }
    };

    let store = Store::open(&args.database_url)
        .await
        .map_err(|e| format!("cannot open --database-url: {e}"))?;
    let handles = store.handles();
    let postbacks = match &args.postbacks {
        Some(path) => {
            Some(super::postbacks::load(path, &store).map_err(|e| format!("--postbacks: {e:#}"))?)
        }
        None => None,
    };
    let loader = BuyersLoader::new(handles.caps.clone(), handles.seen.clone());
    let (entries, network) =
        mock_network::load_buyers_or_demo(loader, args.buyers.as_deref(), args.seed)
            .await
            .map_err(|e| format!("{e:#}"))?;
    if let Some(net) = &network {
        eprintln!(
            "demo buyer network: {} buyers at {}",
            net.buyers.len(),
            net.base_url()
        );
    }
    // Scored over the store's duration history, which settled calls feed.
    let auction = crate::settle::build_auction(
        entries,
        handles.history.clone(),
        Strategy::HighestScore,
        Duration::from_millis(args.deadline_ms),
    )
    .map_err(|e| format!("auction: {e:#}"))?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on --listen {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("listener: {e}"))?;
    let public_url = args
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string());
    let log: Arc<dyn CallLog> = Arc::new(store.clone());
    let settle_log = postbacks.as_ref().map(|p| p.wrap(log.clone()));
    let worker = match &postbacks {
        Some(p) => {
            eprintln!("{}", p.summary);
            Some(p.start(log).map_err(|e| format!("postbacks: {e:#}"))?)
        }
        None => None,
    };
    let app = app::router_with(
        AgentConfig {
            store,
            auction,
            history: handles.history.clone(),
            payout,
            twilio,
            verifier,
            public_url,
            agent,
            default_mode: mode,
            title: args.title.clone(),
            settle_log,
        },
        &operator,
    );
    eprintln!("agent desk:          http://{local}/agent");
    if operator.token_required() {
        eprintln!("operator token required: log in at http://{local}/login");
    }
    eprintln!("operator dashboard:  http://{local}/");
    eprintln!("Twilio voice webhook: POST /twilio/voice");
    eprintln!("call status callback: POST /twilio/status (gives unforwarded wins back)");
    // Graceful shutdown on Ctrl-C or SIGTERM; live feeds (SSE) never end by themselves,
    // so open connections get a few seconds and are then closed.
    let served = serve::serve_gracefully(
        listener,
        app,
        serve::shutdown_signal(),
        Duration::from_secs(3),
    )
    .await;
    if let Ok(false) = served {
        eprintln!("agent_assist: connections still open after 3 s were closed");
    }
    if let Some(w) = worker {
        w.stop().await;
    }
    if let Some(n) = network {
        n.stop();
    }
    if let Some(f) = fake {
        f.stop();
    }
    served.map(|_| ()).map_err(|e| format!("server: {e}"))
}

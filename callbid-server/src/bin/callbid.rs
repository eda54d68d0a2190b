//! The `callbid` binary: serve, simulate, check a `buyers.toml`, sign a webhook.
//!
//! ```sh
//! callbid serve [--config callbid.toml]
//! callbid simulate 50                        # a temporary server + temporary database
//! callbid simulate 50 --against http://127.0.0.1:3000   # signed with auth_token
//! callbid check buyers.toml
//! callbid sign http://127.0.0.1:3000/voice CallSid=CA123 From=+15125550123
//! callbid replay CA123                      # confirm the logged auction, bit for bit
//! callbid replay CA123 --strategy highest-bid --floor 20.00   # what-if
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use callbid_buyers::BuyersLoader;
use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
use callbid_server::config::ServerConfig;
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::sim::{self, SimOptions};
use callbid_twilio::signature::RequestValidator;
use clap::{Parser, Subcommand};

/// callbid: pay-per-call routing servers (IVR auction, dashboard) from one configuration.
#[derive(Debug, Parser)]
#[command(name = "callbid", version)]
struct Cli {
    /// callbid.toml (default: ./callbid.toml when it exists); CALLBID_* variables
    /// override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the IVR webhooks and the operator dashboard until Ctrl-C / SIGTERM.
    Serve,
    /// Drive N simulated, signed calls through an IVR and print a summary. Without
    /// --against: a temporary in-process server with its own temporary database (never
    /// the configured database).
    Simulate {
        /// How many calls.
        calls: usize,
        /// Base URL of a running callbid IVR (its mount point); signed with auth_token.
        #[arg(long)]
        against: Option<String>,
    },
    /// Load and validate a buyers.toml; print each buyer with its rules.
    Check {
        /// The buyers.toml.
        buyers: PathBuf,
    },
    /// Print the X-Twilio-Signature of a form POST to URL with KEY=VALUE parameters,
    /// under the configured auth_token.
    Sign {
        /// The full URL Twilio would call.
        url: String,
        /// Form parameters.
        params: Vec<String>,
    },
    /// Re-run a call's logged auction (validation, scoring, selection) from its logged
    /// inputs in the configured database: with no option it confirms the same winner
    /// and breakdowns bit for bit (exit 1 if not); with options it shows what that
    /// configuration would have done.
    Replay(ReplayArgs),
}

/// `callbid replay`'s arguments (the what-if options of `callbid_server::explain`).
#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The call (its CallSid).
    call_id: String,
    /// Another strategy: highest-score, highest-bid, priority-weighted[:SEED], first-accept.
    #[arg(long)]
    strategy: Option<String>,
    /// Another floor in the auction's currency, or `none`.
    #[arg(long)]
    floor: Option<String>,
    /// Another duration prior (0 to 1).
    #[arg(long)]
    prior: Option<String>,
    /// Another prior strength (calls of evidence, > 0).
    #[arg(long)]
    prior_strength: Option<String>,
    /// Duration history on or off.
    #[arg(long)]
    duration_history: Option<String>,
    /// H=W: the weight of local hour H (repeatable).
    #[arg(long)]
    hour_weight: Vec<String>,
    /// KEY=W: the global weight of state:TX or ac:512 (repeatable).
    #[arg(long)]
    geo_weight: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config(path: Option<&Path>) -> anyhow::Result<ServerConfig> {
    let default = PathBuf::from("callbid.toml");
    let required = path.is_some();
    Ok(ServerConfig::load(
        Some(path.unwrap_or(&default)),
        required,
    )?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = config(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => callbid_server::run::ivr(cfg, None).await,
        Command::Simulate { calls, against } => simulate(cfg, calls, against).await,
        Command::Check { buyers } => check(&buyers),
        Command::Sign { url, params } => sign(&cfg, &url, &params),
        Command::Replay(args) => replay(&cfg, args).await,
    }
}

/// The what-if pairs `callbid_server::explain::WhatIfParams::parse` reads.
fn what_if_pairs(a: &ReplayArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let named = [
        ("strategy", &a.strategy),
        ("floor", &a.floor),
        ("prior", &a.prior),
        ("prior_strength", &a.prior_strength),
        ("duration_history", &a.duration_history),
    ];
    for (k, v) in named {
        if let Some(v) = v {
            pairs.push((k.to_owned(), v.clone()));
        }
    }
    for (prefix, list) in [
        ("hour_weight", &a.hour_weight),
        ("geo_weight", &a.geo_weight),
    ] {
        for kv in list {
            let Some((k, v)) = kv.split_once('=') else {
                bail!(
                    "invalid --{} {kv:?}: expected KEY=WEIGHT",
                    prefix.replace('_', "-")
                );
            };
            pairs.push((format!("{prefix}.{k}"), v.to_owned()));
        }
    }
    Ok(pairs)
}

async fn replay(cfg: &ServerConfig, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use callbid_server::explain::{render_text, replay_call, WhatIfParams};
    let call = callbid_core::CallId::new(&args.call_id)
        .map_err(|e| anyhow::anyhow!("invalid call id {:?}: {}", args.call_id, e.reason))?;
    let params = WhatIfParams::parse(&what_if_pairs(&args)?)?;
    let store = callbid_store::Store::open(&cfg.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open database_url {}",
                callbid_server::config::redact(&cfg.database_url)
            )
        })?;
    let report = replay_call(&store, &call, &params).await?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{}", render_text(&report)),
    }
    Ok(match report.agrees {
        Some(false) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

async fn simulate(
    mut cfg: ServerConfig,
    calls: usize,
    against: Option<String>,
) -> anyhow::Result<ExitCode> {
    if calls == 0 {
        bail!("invalid calls 0: simulate at least one call");
    }
    let Some(base) = against else {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let db = dir.path().join("simulate.db");
        cfg.set(
            "database_url",
            &format!("sqlite://{}", db.display()),
            "simulate",
        )?;
        cfg.set("listen", "127.0.0.1:0", "simulate")?;
        cfg.public_url = None;
        cfg.insecure_skip_signature = false;
        println!(
            "simulating against a temporary server (database {})",
            db.display()
        );
        return callbid_server::run::ivr(cfg, Some(calls)).await;
    };
    let Some(token) = cfg.auth_token.clone() else {
        bail!("--against needs the server's auth_token (CALLBID_AUTH_TOKEN or TWILIO_AUTH_TOKEN)");
    };
    let menu = Menu::parse(&cfg.menu)?;
    let campaigns = match &cfg.campaigns {
        Some(p) => Campaigns::load(p)?,
        None => Campaigns::demo(),
    };
    let opts = SimOptions {
        calls,
        concurrency: cfg.concurrency,
        seed: cfg.seed,
        base_url: base.trim_end_matches('/').to_owned(),
        auth_token: token,
        tracking_numbers: campaigns.numbers().cloned().collect(),
        menu_keys: menu.entries().map(|(d, _, _)| d).collect(),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let (transcripts, errors, elapsed) = sim::drive(&opts).await?;
    println!(
        "{} calls against {} in {:.1} s: {} completed by the simulator, {} errors",
        calls,
        opts.base_url,
        elapsed.as_secs_f64(),
        transcripts.len(),
        errors.len()
    );
    println!("(the server's own dashboard has the outcome of each call)");
    for e in &errors {
        println!("  error: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let loader = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    );
    let entries = loader
        .load_file(path)
        .with_context(|| format!("invalid buyers file {}", path.display()))?;
    println!("{}: {} buyers", path.display(), entries.len());
    for e in &entries {
        let p = &e.profile;
        println!(
            "- {} (zone {}, priority {}, weight {}, currency {}, minimum duration {} s, timeout {})",
            p.id,
            p.time_zone,
            p.priority,
            p.weight,
            p.currency,
            p.default_min_duration.as_secs(),
            e.timeout
                .map_or_else(|| "auction deadline".to_owned(), |t| format!("{} ms", t.as_millis()))
        );
        if e.rules.is_empty() {
            println!("    no rules");
        }
        for r in &e.rules {
            println!("    rule: {r:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn sign(cfg: &ServerConfig, url: &str, params: &[String]) -> anyhow::Result<ExitCode> {
    let Some(token) = &cfg.auth_token else {
        bail!("no auth_token configured (callbid.toml, CALLBID_AUTH_TOKEN or TWILIO_AUTH_TOKEN)");
    };
    let mut pairs = Vec::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("invalid parameter {p:?}: expected KEY=VALUE");
        };
        pairs.push((k.to_owned(), v.to_owned()));
    }
    let sig = RequestValidator::new(token).compute_signature(url, &pairs);
    println!("{sig}");
    Ok(ExitCode::SUCCESS)
}

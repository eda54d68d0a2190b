//! The command line of the IVR server.

use std::net::SocketAddr;
use std::path::PathBuf;

use callbid_server::config::{ConfigError, ServerConfig};
use clap::Parser;

/// IVR auto-routing server: Twilio webhooks → ZIP and service menu → auction → <Dial>
/// the winning buyer, or the fallback chain.
#[derive(Debug, Clone, Parser)]
#[command(name = "ivr_auction", version)]
pub struct Args {
    /// callbid.toml to read first (flags and CALLBID_* variables override it). Default:
    /// ./callbid.toml when it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Address to listen on (port 0: any free port). Default 127.0.0.1:3000, or a free
    /// loopback port with --simulate.
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// The base URL Twilio calls (what webhook signatures are computed over), e.g.
    /// https://ivr.example.com. Default: http://<listen address>.
    #[arg(long)]
    pub public_url: Option<String>,

    /// Twilio auth token for X-Twilio-Signature (default: $TWILIO_AUTH_TOKEN; when unset a
    /// random development token is generated and printed).
    #[arg(long)]
    pub auth_token: Option<String>,

    /// DANGEROUS, local curl experiments only: accept webhooks without checking their
    /// Twilio signature. Anyone who can reach the server can then fake calls.
    #[arg(long)]
    pub insecure_skip_signature: bool,

    /// Database: sqlite://PATH (created if missing), sqlite::memory: or postgres://…
    /// (PostgreSQL needs `--features postgres`).
    #[arg(long)]
    pub database_url: Option<String>,

    /// buyers.toml describing the buyer networks. Default: start the local demo buyer
    /// network (8 buyers) on loopback and route to it.
    #[arg(long)]
    pub buyers: Option<PathBuf>,

    /// Seed of the demo buyer network and of --simulate.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Service menu: DIGIT=Service pairs, comma separated.
    #[arg(long)]
    pub menu: Option<String>,

    /// Tracking numbers → campaign/source, a TOML file (`["+18005550100"]` tables with
    /// `campaign` and `source`; see examples/ivr_auction/campaigns.toml). Default: the
    /// three demo tracking numbers of that file.
    #[arg(long)]
    pub campaigns: Option<PathBuf>,

    /// Fallback chain, tried in order: voicemail, in-house, message.
    #[arg(long)]
    pub fallback: Option<String>,

    /// In-house call center number for the `in-house` fallback step (E.164).
    #[arg(long)]
    pub in_house_number: Option<String>,

    /// What the `message` fallback step says.
    #[arg(long)]
    pub fallback_message: Option<String>,

    /// Publisher payout per billable call: a percentage of revenue (70%) or a fixed
    /// USD amount (12.50).
    #[arg(long)]
    pub payout: Option<String>,

    /// Auction strategy: highest-score, highest-bid, priority-weighted[:SEED], first-accept.
    #[arg(long)]
    pub strategy: Option<String>,

    /// Overall auction deadline (pings, selection and accepts), milliseconds.
    #[arg(long)]
    pub deadline_ms: Option<u64>,

    /// Seconds the buyer's phone rings before the call falls back.
    #[arg(long)]
    pub dial_timeout: Option<u32>,

    /// Record bridged calls (record-from-answer).
    #[arg(long)]
    pub record: Option<bool>,

    /// Start this server (on a free loopback port unless --listen is given), drive N
    /// signed simulated calls through its own webhooks, print a summary from the call log
    /// and exit. The calls are written to the configured database (default callbid.db,
    /// so the dashboard shows them later); `callbid simulate N` uses a temporary one.
    #[arg(long, value_name = "N")]
    pub simulate: Option<usize>,

    /// Simulated calls in flight at once.
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// Do not mount the operator dashboard at /.
    #[arg(long)]
    pub no_dashboard: bool,

    /// Operator token for the dashboard and its /api routes: API clients send
    /// `Authorization: Bearer <token>`, browsers log in at /login. Required when --listen
    /// is not a loopback address. Unset on loopback: the dashboard is open.
    #[arg(long)]
    pub dashboard_token: Option<String>,

    /// DANGEROUS: serve the dashboard (callers' numbers, exports) without a token on a
    /// non-loopback --listen address.
    #[arg(long)]
    pub insecure_open_dashboard: bool,
}

impl Args {
    /// The configuration: the file, the environment, then these flags, validated.
    pub fn config(&self) -> Result<ServerConfig, ConfigError> {
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("callbid.toml"));
        let mut cfg = ServerConfig::load(Some(&path), self.config.is_some())?;
        let mut set = |key: &str, value: Option<String>| match value {
            Some(v) => cfg.set(key, &v, &format!("--{}", key.replace('_', "-"))),
            None => Ok(()),
        };
        let flag = |on: bool| on.then(|| "true".to_owned());
        set("listen", self.listen.map(|l| l.to_string()))?;
        set("public_url", self.public_url.clone())?;
        set("auth_token", self.auth_token.clone())?;
        set(
            "insecure_skip_signature",
            flag(self.insecure_skip_signature),
        )?;
        set("database_url", self.database_url.clone())?;
        set(
            "buyers",
            self.buyers.as_ref().map(|p| p.display().to_string()),
        )?;
        set("seed", self.seed.map(|v| v.to_string()))?;
        set("menu", self.menu.clone())?;
        set(
            "campaigns",
            self.campaigns.as_ref().map(|p| p.display().to_string()),
        )?;
        set("fallback", self.fallback.clone())?;
        set("in_house_number", self.in_house_number.clone())?;
        set("fallback_message", self.fallback_message.clone())?;
        set("payout", self.payout.clone())?;
        set("strategy", self.strategy.clone())?;
        set("deadline_ms", self.deadline_ms.map(|v| v.to_string()))?;
        set("dial_timeout", self.dial_timeout.map(|v| v.to_string()))?;
        set("record", self.record.map(|v| v.to_string()))?;
        set("concurrency", self.concurrency.map(|v| v.to_string()))?;
        set("dashboard", self.no_dashboard.then(|| "false".to_owned()))?;
        set("dashboard_token", self.dashboard_token.clone())?;
        set(
            "insecure_open_dashboard",
            flag(self.insecure_open_dashboard),
        )?;
        if self.simulate.is_some() && self.listen.is_none() {
            // A simulation serves on a free loopback port unless told otherwise.
            set("listen", Some("127.0.0.1:0".to_owned()))?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

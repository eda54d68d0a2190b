//! The command line of the IVR server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// IVR auto-routing server: Twilio webhooks → ZIP and service menu → auction → <Dial>
/// the winning buyer, or the fallback chain.
#[derive(Debug, Clone, Parser)]
#[command(name = "ivr_auction", version)]
pub struct Args {
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
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// DANGEROUS, local curl experiments only: accept webhooks without checking their
    /// Twilio signature. Anyone who can reach the server can then fake calls.
    #[arg(long)]
    pub insecure_skip_signature: bool,

    /// Database: sqlite://PATH (created if missing), sqlite::memory: or postgres://…
    /// (PostgreSQL needs `--features postgres`).
    #[arg(long, default_value = "sqlite://callbid.db")]
    pub database_url: String,

    /// buyers.toml describing the buyer networks. Default: start the local demo buyer
    /// network (8 buyers) on loopback and route to it.
    #[arg(long)]
    pub buyers: Option<PathBuf>,

    /// Seed of the demo buyer network and of --simulate.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Service menu: DIGIT=Service pairs, comma separated.
    #[arg(
        long,
        default_value = "1=Plumbing,2=Pest Control,3=Roofing,4=Electrician,5=Air Conditioning"
    )]
    pub menu: String,

    /// Tracking numbers → campaign/source, a TOML file (`["+18005550100"]` tables with
    /// `campaign` and `source`; see examples/ivr_auction/campaigns.toml). Default: the
    /// three demo tracking numbers of that file.
    #[arg(long)]
    pub campaigns: Option<PathBuf>,

    /// Fallback chain, tried in order: voicemail, in-house, message.
    #[arg(long, default_value = "voicemail,message")]
    pub fallback: String,

    /// In-house call center number for the `in-house` fallback step (E.164).
    #[arg(long)]
    pub in_house_number: Option<String>,

    /// What the `message` fallback step says.
    #[arg(
        long,
        default_value = "Sorry, we cannot help with your request at this time. Goodbye."
    )]
    pub fallback_message: String,

    /// Publisher payout per billable call: a percentage of revenue (70%) or a fixed
    /// USD amount (12.50).
    #[arg(long, default_value = "70%")]
    pub payout: String,

    /// Auction strategy: highest-score, highest-bid, priority[:SEED], first-accept.
    #[arg(long, default_value = "highest-score")]
    pub strategy: String,

    /// Overall auction deadline (pings, selection and accepts), milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub deadline_ms: u64,

    /// Seconds the buyer's phone rings before the call falls back.
    #[arg(long, default_value_t = 25)]
    pub dial_timeout: u32,

    /// Record bridged calls (record-from-answer).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub record: bool,

    /// Drive N simulated calls through the running server, print a summary and exit.
    #[arg(long, value_name = "N")]
    pub simulate: Option<usize>,

    /// Simulated calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,

    /// Do not mount the operator dashboard at /.
    #[arg(long)]
    pub no_dashboard: bool,

    /// Operator token for the dashboard and its /api routes: API clients send
    /// `Authorization: Bearer <token>`, browsers log in at /login. Required when --listen
    /// is not a loopback address. Unset on loopback: the dashboard is open.
    #[arg(long, env = "CALLBID_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,

    /// DANGEROUS: serve the dashboard (callers' numbers, exports) without a token on a
    /// non-loopback --listen address.
    #[arg(long)]
    pub insecure_open_dashboard: bool,
}

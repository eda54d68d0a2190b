//! The `buyers.toml` schema: serde structs, every table `deny_unknown_fields`.
//!
//! No secret is ever written in the file: credentials are named by environment variable
//! (`api_key_env = "SD_API_KEY"`), so these structs hold no secrets and their `Debug`
//! is safe to print.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::http::ExecutorConfig;
use crate::ping_post::{AcceptSpec, AuthSpec, CapabilitiesSpec, PingSpec};

/// A whole `buyers.toml`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BuyersFile {
    /// Settings of the shared HTTP executor.
    #[serde(default)]
    pub http: Option<ExecutorConfig>,
    /// Defaults for every buyer.
    #[serde(default)]
    pub defaults: Defaults,
    /// The buyers.
    #[serde(default, rename = "buyer")]
    pub buyers: Vec<BuyerConfig>,
}

/// Values buyers inherit unless they set their own.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Defaults {
    /// IANA time zone (default `America/New_York`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// ISO 4217 currency (default `USD`).
    #[serde(default)]
    pub currency: Option<String>,
    /// Ping timeout in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Default minimum billable duration in seconds (default 60).
    #[serde(default)]
    pub min_duration_secs: Option<u64>,
}

/// Which protocol a buyer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdapterKind {
    /// Service Direct's partner API (`[buyer.service_direct]`).
    ServiceDirect,
    /// A config-driven ping-post protocol (`[buyer.ping_post]`).
    PingPost,
}

/// One `[[buyer]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BuyerConfig {
    /// The buyer id (printable ASCII, no spaces).
    pub id: String,
    /// The protocol.
    pub adapter: AdapterKind,
    /// Set to false to keep the buyer in the file but out of auctions.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Priority (lower first) for priority routing.
    #[serde(default)]
    pub priority: Option<u32>,
    /// Weight within a priority.
    #[serde(default)]
    pub weight: Option<u32>,
    /// IANA time zone for hours and caps.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Currency of the bids.
    #[serde(default)]
    pub currency: Option<String>,
    /// Ping timeout in milliseconds (within the auction deadline).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Minimum billable duration when a bid states none, in seconds.
    #[serde(default)]
    pub min_duration_secs: Option<u64>,
    /// Service types bought (absent: all).
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Lowest acceptable bid (decimal string).
    #[serde(default)]
    pub floor: Option<String>,
    /// Highest acceptable bid (decimal string).
    #[serde(default)]
    pub ceiling: Option<String>,
    /// The same caller is not sent again within this many days.
    #[serde(default)]
    pub duplicate_caller_days: Option<u32>,
    /// Hours of operation.
    #[serde(default)]
    pub hours: Option<HoursConfig>,
    /// Geographic targeting.
    #[serde(default)]
    pub geo: Option<GeoConfig>,
    /// Caps.
    #[serde(default)]
    pub caps: Option<CapsConfig>,
    /// Ping rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Retries of requests that never reached the buyer (connection failures, connect timeouts).
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Service Direct settings (with `adapter = "service_direct"`).
    #[serde(default)]
    pub service_direct: Option<ServiceDirectConfig>,
    /// Ping-post settings (with `adapter = "ping_post"`).
    #[serde(default)]
    pub ping_post: Option<PingPostConfig>,
}

fn yes() -> bool {
    true
}

/// Local opening hours per weekday, as `"HH:MM-HH:MM"` ranges. Days not listed are
/// closed; `weekdays`, `weekend` and `every_day` set several days at once (a named day
/// overrides them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct HoursConfig {
    /// A zone other than the buyer's, for hours only.
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub every_day: Option<Vec<String>>,
    #[serde(default)]
    pub weekdays: Option<Vec<String>>,
    #[serde(default)]
    pub weekend: Option<Vec<String>>,
    #[serde(default)]
    pub monday: Option<Vec<String>>,
    #[serde(default)]
    pub tuesday: Option<Vec<String>>,
    #[serde(default)]
    pub wednesday: Option<Vec<String>>,
    #[serde(default)]
    pub thursday: Option<Vec<String>>,
    #[serde(default)]
    pub friday: Option<Vec<String>>,
    #[serde(default)]
    pub saturday: Option<Vec<String>>,
    #[serde(default)]
    pub sunday: Option<Vec<String>>,
}

/// Geo allow- and deny-lists. A call must match an allow entry (when any is given) and
/// no deny entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GeoConfig {
    /// ZIP codes allowed.
    #[serde(default)]
    pub allow_zips: Vec<String>,
    /// States allowed (two-letter codes).
    #[serde(default)]
    pub allow_states: Vec<String>,
    /// Caller area codes allowed.
    #[serde(default)]
    pub allow_area_codes: Vec<u16>,
    /// ZIP codes refused.
    #[serde(default)]
    pub deny_zips: Vec<String>,
    /// States refused.
    #[serde(default)]
    pub deny_states: Vec<String>,
    /// Caller area codes refused.
    #[serde(default)]
    pub deny_area_codes: Vec<u16>,
}

/// Caps: counts of won calls per window, spend per window (decimal strings in the
/// buyer's currency), and live calls at once.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct CapsConfig {
    #[serde(default)]
    pub hourly: Option<u64>,
    #[serde(default)]
    pub daily: Option<u64>,
    #[serde(default)]
    pub monthly: Option<u64>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub hourly_spend: Option<String>,
    #[serde(default)]
    pub daily_spend: Option<String>,
    #[serde(default)]
    pub monthly_spend: Option<String>,
    #[serde(default)]
    pub total_spend: Option<String>,
    /// Live calls at the same time.
    #[serde(default)]
    pub concurrency: Option<u64>,
}

/// At most `pings` pings per `per_secs` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Pings allowed per period.
    pub pings: u32,
    /// The period in seconds (default 60).
    #[serde(default = "sixty")]
    pub per_secs: u64,
}

fn sixty() -> u64 {
    60
}

/// Retries of requests that never reached the buyer (connection failures, connect timeouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// How many retries (0–5).
    pub max_retries: u32,
    /// First backoff in milliseconds (default 25; doubles).
    #[serde(default = "twenty_five")]
    pub backoff_ms: u64,
}

fn twenty_five() -> u64 {
    25
}

/// `[buyer.service_direct]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceDirectConfig {
    /// The environment variable holding the partner API key.
    pub api_key_env: String,
    /// Base URL (default the production API).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Default `source` (sub id).
    #[serde(default)]
    pub source: Option<String>,
    /// Send `test_mode: true`.
    #[serde(default)]
    pub test_mode: bool,
    /// Send the caller id at accept time instead of in the ping.
    #[serde(default)]
    pub caller_id_in_post: bool,
    /// Ask for every answer as 200 with `x-original-status-code`.
    #[serde(default)]
    pub suppress_response_codes: bool,
    /// Service slug → `service_category` id (over the published defaults).
    #[serde(default)]
    pub categories: BTreeMap<String, u32>,
}

/// `[buyer.ping_post]`: a preset, or an inline protocol (`ping`, optional `accept`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PingPostConfig {
    /// A shipped preset (`ringba`, `retreaver`, `trackdrive`, `callgrid`).
    #[serde(default)]
    pub preset: Option<String>,
    /// Overrides the protocol's base URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the API key / password the auth uses.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Authentication (over the preset's).
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// Parameter values (`{param.NAME}`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Extra headers (value templates).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Capabilities (inline protocols only).
    #[serde(default)]
    pub capabilities: Option<CapabilitiesSpec>,
    /// The ping step (inline protocols only).
    #[serde(default)]
    pub ping: Option<PingSpec>,
    /// The accept step (inline protocols only).
    #[serde(default)]
    pub accept: Option<AcceptSpec>,
}

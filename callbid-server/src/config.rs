//! One configuration for every callbid server: [`ServerConfig`], loaded from a
//! `callbid.toml` with `CALLBID_*` environment overrides and validated at load.
//!
//! Sources, later ones winning: the defaults, the TOML file (unknown keys are refused),
//! the environment (`CALLBID_<KEY>` with the key upper-cased, e.g.
//! `CALLBID_DATABASE_URL`; plus Twilio's own `TWILIO_AUTH_TOKEN` for `auth_token`),
//! then whatever the caller sets with [`ServerConfig::set`] (the examples map their
//! command-line flags onto keys this way). Every value is checked by
//! [`ServerConfig::validate`]; a bad one is a [`ConfigError`] naming the key, the value
//! and why. Every key is documented in README.md's configuration reference (a test
//! keeps the table and [`KEYS`] in step with the struct).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use callbid_core::auction::Strategy;
use callbid_core::billing::PayoutRule;
use callbid_core::{PhoneNumber, ValidationError};
use serde::{Deserialize, Serialize};

use crate::ivr::fallback::FallbackChain;
use crate::ivr::menu::Menu;
use crate::settle::{parse_payout, parse_strategy};

/// Every configuration key, in the order of README.md's reference table.
pub const KEYS: &[&str] = &[
    "listen",
    "public_url",
    "auth_token",
    "insecure_skip_signature",
    "database_url",
    "buyers",
    "seed",
    "menu",
    "campaigns",
    "fallback",
    "in_house_number",
    "fallback_message",
    "payout",
    "strategy",
    "deadline_ms",
    "dial_timeout",
    "record",
    "concurrency",
    "dashboard",
    "dashboard_token",
    "insecure_open_dashboard",
    "metrics",
    "agents",
    "account_sid",
    "twilio_api_url",
    "pools",
    "outbound",
    "quality",
    "pool_cors_origins",
    "pool_visitor_per_minute",
    "pool_ip_per_minute",
    "pool_trust_forwarded_for",
    "postbacks",
];

/// The default database: the same file for every server, so one dashboard shows every
/// call.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://callbid.db";

/// A server's configuration (see the module docs for the sources and README.md for
/// each key).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to serve (`127.0.0.1:3000`).
    pub listen: SocketAddr,
    /// The public URL Twilio calls, of the routers' mount point (default
    /// `http://<listen>`); signatures are checked and action URLs built against it.
    pub public_url: Option<String>,
    /// Twilio auth token (the signature key); a development token is generated when
    /// absent.
    pub auth_token: Option<String>,
    /// Do not check signatures (local curl experiments only).
    pub insecure_skip_signature: bool,
    /// `sqlite://FILE` or `postgres://…`.
    pub database_url: String,
    /// `buyers.toml`; `None`: the demo buyer network.
    pub buyers: Option<PathBuf>,
    /// Seed of the demo network and the simulator.
    pub seed: u64,
    /// Service menu: `digit=Name,…`.
    pub menu: String,
    /// Tracking numbers file (`None`: the built-in demo table).
    pub campaigns: Option<PathBuf>,
    /// Fallback chain order from `voicemail`, `in-house`, `message`.
    pub fallback: String,
    /// The number the `in-house` fallback dials (E.164).
    pub in_house_number: Option<String>,
    /// What the `message` fallback says.
    pub fallback_message: String,
    /// Publisher payout: `70%` or a fixed amount `12.50`.
    pub payout: String,
    /// Auction strategy: `highest-score`, `highest-bid`, `priority-weighted[:SEED]`,
    /// `first-accept` ([`crate::settle::parse_strategy`]).
    pub strategy: String,
    /// Auction deadline in milliseconds (1 to 60000).
    pub deadline_ms: u64,
    /// `<Dial>` ring timeout in seconds (1 to 600).
    pub dial_timeout: u32,
    /// Record bridged calls.
    pub record: bool,
    /// Simulated calls in flight at once (`callbid simulate`).
    pub concurrency: usize,
    /// Mount the operator dashboard.
    pub dashboard: bool,
    /// Operator token of the dashboard and agent desk.
    pub dashboard_token: Option<String>,
    /// Serve the dashboard without a token on a non-loopback address.
    pub insecure_open_dashboard: bool,
    /// Serve `GET /metrics` (Prometheus text; behind the operator token when one is
    /// required).
    pub metrics: bool,
    /// `agents.toml`: the agent pool calls are offered to (the `in-house` fallback step
    /// and, when it bids, the auction), and the agent-pool desk at `/desk`. `None`: no
    /// pool.
    pub agents: Option<PathBuf>,
    /// Twilio account SID (`AC…`) of the REST client an Accept click in the desk moves
    /// calls with (default `$TWILIO_ACCOUNT_SID`); without it a built-in fake of the
    /// Calls endpoint records the moves (local demos).
    pub account_sid: Option<String>,
    /// Twilio REST API base URL (default `https://api.twilio.com`; e.g. the Prism mock).
    pub twilio_api_url: Option<String>,
    /// `pools.toml`: number pools for call tracking (format: [`crate::pool::spec`]);
    /// mounts the public lease API and `callbid-dni.js` under `/pool`. `None`: no pools.
    pub pools: Option<PathBuf>,
    /// `outbound.toml`: outbound campaigns (format: [`crate::outbound_file`]); mounts the
    /// campaign API and page behind operator access, the provider's webhooks under
    /// `/campaigns/{id}/*`, and runs the pacer. `None`: no campaigns.
    pub outbound: Option<PathBuf>,
    /// `quality.toml`: the quality factor, exploration, transcription and the buyers'
    /// postback tokens (format: [`crate::quality_file`]); mounts `POST /api/conversions`
    /// and `/twilio/transcription`. `None`: scoring without quality or exploration.
    pub quality: Option<PathBuf>,
    /// `postbacks.toml`: publisher postbacks when a call becomes billable (format:
    /// [`crate::postback::file`]); runs the delivery worker. `None`: no postbacks.
    pub postbacks: Option<PathBuf>,
    /// Browser origins allowed to call the lease API, comma-separated
    /// (`https://www.example.com`); this server's own origin is always allowed.
    pub pool_cors_origins: String,
    /// Lease / renew requests per minute per visitor (per pool).
    pub pool_visitor_per_minute: u32,
    /// Lease / renew requests per minute per client IP.
    pub pool_ip_per_minute: u32,
    /// Take the client IP from the last `X-Forwarded-For` entry (behind a proxy).
    pub pool_trust_forwarded_for: bool,
    /// Where each key that is not a default came from (`callbid.toml`, `CALLBID_SEED`,
    /// `--seed`), so [`ServerConfig::validate`] names the real source of a bad value.
    #[serde(skip)]
    origins: BTreeMap<String, String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: None,
            auth_token: None,
            insecure_skip_signature: false,
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            buyers: None,
            seed: 7,
            menu: "1=Plumbing,2=Pest Control,3=Roofing,4=Electrician,5=Air Conditioning".to_owned(),
            campaigns: None,
            fallback: "voicemail,message".to_owned(),
            in_house_number: None,
            fallback_message: "Sorry, we cannot help with your request at this time. Goodbye."
                .to_owned(),
            payout: "70%".to_owned(),
            strategy: "highest-score".to_owned(),
            deadline_ms: 2000,
            dial_timeout: 25,
            record: true,
            concurrency: 8,
            dashboard: true,
            dashboard_token: None,
            insecure_open_dashboard: false,
            metrics: true,
            agents: None,
            account_sid: None,
            twilio_api_url: None,
            pools: None,
            outbound: None,
            quality: None,
            postbacks: None,
            pool_cors_origins: String::new(),
            pool_visitor_per_minute: 60,
            pool_ip_per_minute: 600,
            pool_trust_forwarded_for: false,
            origins: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("auth_token", &secret(&self.auth_token))
            .field("insecure_skip_signature", &self.insecure_skip_signature)
            .field("database_url", &crate::config::redact(&self.database_url))
            .field("buyers", &self.buyers)
            .field("seed", &self.seed)
            .field("menu", &self.menu)
            .field("campaigns", &self.campaigns)
            .field("fallback", &self.fallback)
            .field("in_house_number", &self.in_house_number)
            .field("fallback_message", &self.fallback_message)
            .field("payout", &self.payout)
            .field("strategy", &self.strategy)
            .field("deadline_ms", &self.deadline_ms)
            .field("dial_timeout", &self.dial_timeout)
            .field("record", &self.record)
            .field("concurrency", &self.concurrency)
            .field("dashboard", &self.dashboard)
            .field("dashboard_token", &secret(&self.dashboard_token))
            .field("insecure_open_dashboard", &self.insecure_open_dashboard)
            .field("metrics", &self.metrics)
            .field("agents", &self.agents)
            .field("account_sid", &self.account_sid)
            .field("twilio_api_url", &self.twilio_api_url)
            .field("pools", &self.pools)
            .field("outbound", &self.outbound)
            .field("quality", &self.quality)
            .field("postbacks", &self.postbacks)
            .field("pool_cors_origins", &self.pool_cors_origins)
            .field("pool_visitor_per_minute", &self.pool_visitor_per_minute)
            .field("pool_ip_per_minute", &self.pool_ip_per_minute)
            .field("pool_trust_forwarded_for", &self.pool_trust_forwarded_for)
            .finish()
    }
}

/// A configuration that cannot be used: which key (and from which source), which value,
/// and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct (unknown key, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (names the key and line).
        message: String,
    },
    /// A key's value is invalid.
    #[error("invalid {key} {value:?} (from {origin}): {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// Where it came from: `callbid.toml`, `CALLBID_SEED`, `--seed`, ….
        origin: String,
        /// Why it is refused.
        reason: String,
    },
    /// An unknown key.
    #[error("unknown configuration key {key:?} (from {origin}); known keys: {known}")]
    UnknownKey {
        /// The key.
        key: String,
        /// Where it came from.
        origin: String,
        /// The known keys, comma-separated.
        known: String,
    },
}

/// The values a valid configuration resolves to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolved {
    /// The service menu.
    pub menu: Menu,
    /// The fallback chain (step URLs relative; prefix them with the public URL).
    pub fallback: FallbackChain,
    /// The payout rule.
    pub payout: PayoutRule,
    /// The auction strategy.
    pub strategy: Strategy,
    /// The in-house number.
    pub in_house: Option<PhoneNumber>,
}

fn invalid(key: &str, value: &str, origin: &str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        origin: origin.to_owned(),
        reason: reason.to_string(),
    }
}

fn parse_bool(key: &str, value: &str, origin: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, value, origin, "expected true or false")),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str, origin: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| invalid(key, value, origin, e))
}

fn opt(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

impl ServerConfig {
    /// The file (if it exists; `required` makes a missing file an error), then the
    /// environment, validated.
    pub fn load(path: Option<&Path>, required: bool) -> Result<ServerConfig, ConfigError> {
        let mut cfg = match path {
            Some(p) if p.exists() || required => Self::from_file(p)?,
            _ => ServerConfig::default(),
        };
        cfg.apply_env(std::env::vars())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a `callbid.toml` (unknown keys refused), without validating values.
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text (`path` only names the origin in errors).
    pub fn from_toml(text: &str, path: &Path) -> Result<ServerConfig, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut cfg: ServerConfig = toml::from_str(text).map_err(parse_error)?;
        let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        let origin = path.display().to_string();
        cfg.origins = table.keys().map(|k| (k.clone(), origin.clone())).collect();
        Ok(cfg)
    }

    /// Where `key`'s value came from: the file, the variable or the flag that set it
    /// last, or `default`.
    pub fn origin(&self, key: &str) -> &str {
        self.origins.get(key).map_or("default", String::as_str)
    }

    fn bad(&self, key: &str, value: &str, reason: impl fmt::Display) -> ConfigError {
        invalid(key, value, self.origin(key), reason)
    }

    /// An error of a parse of `key` that also reads other keys: blamed on the other key
    /// its field names (`fallback message` is `fallback_message`), with that key's value
    /// and origin; on `key` (holding `value`) otherwise.
    fn blame(&self, key: &str, value: &str, e: ValidationError) -> ConfigError {
        let named = e.field.replace([' ', '-'], "_");
        match KEYS.iter().copied().find(|k| *k == named && *k != key) {
            Some(other) => {
                let v = serde_json::to_value(self).ok();
                let text = v
                    .as_ref()
                    .and_then(|v| v[other].as_str())
                    .unwrap_or(&e.value);
                self.bad(other, text, &e.reason)
            }
            None => self.bad(key, value, e),
        }
    }

    /// Applies `CALLBID_<KEY>` variables (and `TWILIO_AUTH_TOKEN` for `auth_token`
    /// when `CALLBID_AUTH_TOKEN` is not set) from `vars`.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        for key in KEYS {
            let name = format!("CALLBID_{}", key.to_ascii_uppercase());
            if let Some(v) = get(&name) {
                self.set(key, v, &name)?;
            } else if *key == "auth_token" {
                if let Some(v) = get("TWILIO_AUTH_TOKEN") {
                    self.set(key, v, "TWILIO_AUTH_TOKEN")?;
                }
            } else if *key == "account_sid" {
                if let Some(v) = get("TWILIO_ACCOUNT_SID") {
                    self.set(key, v, "TWILIO_ACCOUNT_SID")?;
                }
            }
        }
        Ok(())
    }

    /// Sets one key from its text form; `origin` names the source in errors
    /// (`--seed`, `CALLBID_SEED`). An empty value clears an optional key.
    pub fn set(&mut self, key: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        self.set_value(key, value, origin)?;
        self.origins.insert(key.to_owned(), origin.to_owned());
        Ok(())
    }

    fn set_value(&mut self, key: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        match key {
            "listen" => self.listen = parse_num(key, value, origin)?,
            "public_url" => self.public_url = opt(value),
            "auth_token" => self.auth_token = opt(value),
            "insecure_skip_signature" => {
                self.insecure_skip_signature = parse_bool(key, value, origin)?
            }
            "database_url" => self.database_url = value.trim().to_owned(),
            "buyers" => self.buyers = opt(value).map(PathBuf::from),
            "seed" => self.seed = parse_num(key, value, origin)?,
            "menu" => self.menu = value.to_owned(),
            "campaigns" => self.campaigns = opt(value).map(PathBuf::from),
            "fallback" => self.fallback = value.to_owned(),
            "in_house_number" => self.in_house_number = opt(value),
            "fallback_message" => self.fallback_message = value.to_owned(),
            "payout" => self.payout = value.trim().to_owned(),
            "strategy" => self.strategy = value.trim().to_owned(),
            "deadline_ms" => self.deadline_ms = parse_num(key, value, origin)?,
            "dial_timeout" => self.dial_timeout = parse_num(key, value, origin)?,
            "record" => self.record = parse_bool(key, value, origin)?,
            "concurrency" => self.concurrency = parse_num(key, value, origin)?,
            "dashboard" => self.dashboard = parse_bool(key, value, origin)?,
            "dashboard_token" => self.dashboard_token = opt(value),
            "insecure_open_dashboard" => {
                self.insecure_open_dashboard = parse_bool(key, value, origin)?
            }
            "metrics" => self.metrics = parse_bool(key, value, origin)?,
            "agents" => self.agents = opt(value).map(PathBuf::from),
            "account_sid" => self.account_sid = opt(value),
            "twilio_api_url" => self.twilio_api_url = opt(value),
            "pools" => self.pools = opt(value).map(PathBuf::from),
            "outbound" => self.outbound = opt(value).map(PathBuf::from),
            "quality" => self.quality = opt(value).map(PathBuf::from),
            "postbacks" => self.postbacks = opt(value).map(PathBuf::from),
            "pool_cors_origins" => self.pool_cors_origins = value.trim().to_owned(),
            "pool_visitor_per_minute" => {
                self.pool_visitor_per_minute = parse_num(key, value, origin)?
            }
            "pool_ip_per_minute" => self.pool_ip_per_minute = parse_num(key, value, origin)?,
            "pool_trust_forwarded_for" => {
                self.pool_trust_forwarded_for = parse_bool(key, value, origin)?
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                    origin: origin.to_owned(),
                    known: KEYS.join(", "),
                })
            }
        }
        Ok(())
    }

    /// Checks every value; the first bad one is reported with its key and value.
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        let menu = Menu::parse(&self.menu).map_err(|e| self.bad("menu", &self.menu, e))?;
        let in_house = self
            .in_house_number
            .as_deref()
            .map(|n| {
                PhoneNumber::parse_field("in_house_number", n)
                    .map_err(|e| self.bad("in_house_number", n, e))
            })
            .transpose()?;
        let fallback = FallbackChain::parse(
            &self.fallback,
            in_house.as_ref(),
            &self.fallback_message,
            "/ivr/fallback",
        )
        .map_err(|e| self.blame("fallback", &self.fallback, e))?;
        let payout = parse_payout(&self.payout).map_err(|e| self.bad("payout", &self.payout, e))?;
        let strategy =
            parse_strategy(&self.strategy).map_err(|e| self.bad("strategy", &self.strategy, e))?;
        self.check_ranges()?;
        if let Some(url) = &self.public_url {
            callbid_twilio::signature::WebhookVerifier::new(url, "check")
                .map_err(|e| self.bad("public_url", url, e))?;
        }
        if let Some(sid) = &self.account_sid {
            let ok = sid.len() == 34
                && sid.starts_with("AC")
                && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(self.bad("account_sid", sid, "expected AC followed by 32 hex digits"));
            }
        }
        if let Some(url) = &self.twilio_api_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(self.bad("twilio_api_url", url, "expected an http:// or https:// URL"));
            }
        }
        if self.database_url.is_empty() {
            return Err(self.bad("database_url", "", "must not be empty"));
        }
        Ok(Resolved {
            menu,
            fallback,
            payout,
            strategy,
            in_house,
        })
    }

    fn check_ranges(&self) -> Result<(), ConfigError> {
        if !(1..=60_000).contains(&self.deadline_ms) {
            let v = self.deadline_ms.to_string();
            return Err(self.bad("deadline_ms", &v, "must be 1 to 60000 ms"));
        }
        if !(1..=600).contains(&self.dial_timeout) {
            let v = self.dial_timeout.to_string();
            return Err(self.bad("dial_timeout", &v, "must be 1 to 600 seconds"));
        }
        if self.concurrency == 0 {
            return Err(self.bad("concurrency", "0", "must be at least 1"));
        }
        for (key, v) in [
            ("pool_visitor_per_minute", self.pool_visitor_per_minute),
            ("pool_ip_per_minute", self.pool_ip_per_minute),
        ] {
            if v == 0 {
                return Err(self.bad(key, "0", "must be at least 1"));
            }
        }
        crate::pool::parse_origins(&self.pool_cors_origins)
            .map_err(|e| self.bad("pool_cors_origins", &self.pool_cors_origins, e.reason))?;
        Ok(())
    }
}

/// Hides a password in a database URL.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value read by a parse over several keys is blamed on its own key and origin.
    #[test]
    fn an_error_names_the_key_that_holds_the_bad_value() {
        let file = Path::new("c.toml");
        let c = ServerConfig::from_toml("fallback_message = \"\"\n", file).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fallback_message") && e.contains("c.toml") && !e.contains("default"),
            "{e}"
        );
        let c = ServerConfig::from_toml("fallback = \"voicemail,pigeon\"\n", file).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("fallback") && e.contains("pigeon") && e.contains("c.toml"),
            "{e}"
        );
    }

    #[test]
    fn keys_are_exactly_the_struct_fields() {
        let v = serde_json::to_value(ServerConfig::default()).unwrap();
        let mut fields: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut keys = KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }

    #[test]
    fn every_key_is_in_the_readme_reference_table() {
        let readme = include_str!("../../README.md");
        // `postbacks` (issue 12, item 5) gets its README row with the docs update that
        // follows its merge; remove it from here then.
        let missing: Vec<&&str> = KEYS
            .iter()
            .filter(|k| !readme.lines().any(|l| l.starts_with(&format!("| `{k}` |"))))
            .collect();
        assert!(missing.is_empty(), "README.md's table lacks {missing:?}");
    }

    #[test]
    fn every_key_can_be_set_from_text() {
        let d = ServerConfig::default();
        for key in KEYS {
            let v = serde_json::to_value(&d).unwrap()[key].clone();
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            let mut c = d.clone();
            c.set(key, &text, "test")
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(c.origin(key), "test");
            c.origins.clear();
            assert_eq!(c, d, "{key}");
        }
        assert!(d.validate().is_ok());
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let mut c = ServerConfig::default();
        let e = c
            .set("seed", "seven", "CALLBID_SEED")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("seed") && e.contains("seven") && e.contains("CALLBID_SEED"),
            "{e}"
        );
        let e = c.set("sede", "1", "--sede").unwrap_err().to_string();
        assert!(e.contains("sede"), "{e}");
        for (key, value) in [
            ("menu", "x=Plumbing"),
            ("fallback", "voicemail,carrier-pigeon"),
            ("fallback", "in-house"),
            ("payout", "seventy"),
            ("strategy", "loudest"),
            ("deadline_ms", "0"),
            ("dial_timeout", "601"),
            ("concurrency", "0"),
            ("public_url", "ftp://x"),
            ("in_house_number", "555"),
            ("account_sid", "AC123"),
            ("twilio_api_url", "api.twilio.com"),
            ("pool_cors_origins", "www.example.com"),
            ("pool_ip_per_minute", "0"),
        ] {
            let mut c = ServerConfig::default();
            c.set(key, value, "test").unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(value), "{key}={value}: {e}");
        }
    }

    #[test]
    fn file_then_environment() {
        let mut c = ServerConfig::from_toml(
            "seed = 3\ndatabase_url = \"sqlite://x.db\"\n",
            Path::new("callbid.toml"),
        )
        .unwrap();
        assert_eq!(c.seed, 3);
        c.apply_env([
            ("CALLBID_SEED".to_owned(), "9".to_owned()),
            ("TWILIO_AUTH_TOKEN".to_owned(), "tok".to_owned()),
        ])
        .unwrap();
        assert_eq!((c.seed, c.auth_token.as_deref()), (9, Some("tok")));
        assert_eq!(c.database_url, "sqlite://x.db");
        assert!(format!("{c:?}").contains("<redacted>"));
        assert!(!format!("{c:?}").contains("tok\""));
        let e = ServerConfig::from_toml("sede = 1\n", Path::new("callbid.toml")).unwrap_err();
        assert!(e.to_string().contains("sede"), "{e}");
    }

    #[test]
    fn validation_errors_name_where_the_bad_value_came_from() {
        let file = Path::new("/etc/callbid/callbid.toml");
        let c = ServerConfig::from_toml("deadline_ms = 0\n", file).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("deadline_ms") && e.contains("/etc/callbid/callbid.toml"),
            "{e}"
        );
        let mut c = ServerConfig::from_toml("strategy = \"loudest\"\n", file).unwrap();
        c.apply_env([("CALLBID_STRATEGY".to_owned(), "bogus".to_owned())])
            .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("\"bogus\"") && e.contains("CALLBID_STRATEGY"),
            "{e}"
        );
        c.set("strategy", "loudest", "--strategy").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("--strategy"), "{e}");
        let c = ServerConfig {
            concurrency: 0,
            ..ServerConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("concurrency") && e.contains("(from default)"),
            "{e}"
        );
        let mut c = ServerConfig::default();
        c.apply_env([("TWILIO_ACCOUNT_SID".to_owned(), "AC1".to_owned())])
            .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("TWILIO_ACCOUNT_SID") && e.contains("AC1"), "{e}");
    }
}

//! Loading `buyers.toml` into ready-to-run [`BuyerEntry`]s: buyers (with their rate limit
//! and retry wrappers) and their routing rules (hours, geo, services, bid bounds,
//! duplicate-caller window, caps).
//!
//! ## Schema (see `examples/buyers.toml` for a complete file)
//! - `[http]`: the shared executor ([`ExecutorConfig`]): `max_body_bytes`,
//!   `follow_redirects`, `capture`, `connect_timeout_ms`, `pool_max_idle_per_host`.
//! - `[defaults]`: `time_zone`, `currency`, `timeout_ms`, `min_duration_secs`.
//! - `[[buyer]]`: `id`, `adapter` (`service_direct` | `ping_post`), `enabled`,
//!   `priority`, `weight`, `time_zone`, `currency`, `timeout_ms`, `min_duration_secs`,
//!   `services`, `floor`, `ceiling` (decimal strings), `duplicate_caller_days`,
//!   `hours` (`monday`…`sunday`, `weekdays`, `weekend`, `every_day`: lists of
//!   `"HH:MM-HH:MM"`, optional `time_zone`), `geo` (`allow_`/`deny_` + `zips`, `states`,
//!   `area_codes`), `caps` (`hourly`, `daily`, `monthly`, `total` counts; the same with
//!   `_spend` as decimal strings; `concurrency`), `rate_limit` (`pings`, `per_secs`),
//!   `retry` (`max_retries`, `backoff_ms`);
//! - `[buyer.service_direct]`: `api_key_env`, `base_url`, `source`, `test_mode`,
//!   `caller_id_in_post`, `suppress_response_codes`, `categories` (slug → id);
//! - `[buyer.ping_post]`: `preset` or an inline `ping` (+ optional `accept`,
//!   `capabilities`), `base_url`, `params`, `headers`, `auth` (`header` | `basic` |
//!   `query`), `api_key_env` (see [`crate::ping_post`]).
//!
//! Secrets are never written in the file: fields ending in `_env` name environment
//! variables, read when the file is loaded.
//!
//! Every invalid field is reported with the buyer, the field and the value:
//!
//! ```
//! use std::sync::Arc;
//! use callbid_buyers::config::{BuyersLoader, ConfigError};
//! use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
//!
//! let loader = BuyersLoader::new(Arc::new(MemoryCapStore::new()), Arc::new(MemorySeenCallers::new()));
//! let err = loader.load_str(r#"
//!     [[buyer]]
//!     id = "acme"
//!     adapter = "ping_post"
//!     time_zone = "Mars/Olympus_Mons"
//! "#).unwrap_err();
//! assert!(matches!(&err, ConfigError::Invalid { buyer, field, .. } if buyer == "acme" && field == "time_zone"));
//! ```

mod schema;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use callbid_core::rules::{
    BidBoundsRule, Cap, CapRule, CapWindow, DuplicateCallerRule, GeoRule, HoursRule, RoutingRule,
    ServiceRule, TimeRange,
};
use callbid_core::state::{CapStore, SeenCallers};
use callbid_core::{
    Buyer, BuyerEntry, BuyerId, BuyerProfile, Currency, Money, ServiceType, UsState, Zip,
};
use chrono_tz::Tz;
use serde::Deserialize;

pub use schema::{
    AdapterKind, BuyerConfig, BuyersFile, CapsConfig, Defaults, GeoConfig, HoursConfig,
    PingPostConfig, RateLimitConfig, RetryConfig, ServiceDirectConfig,
};

use crate::adapter::HttpBuyer;
use crate::http::{ExecutorConfig, HttpExecutor};
use crate::layers::{RateLimit, Retry};
use crate::ping_post::{load_preset, Auth, AuthSpec, PingPost, PingPostSettings, ProtocolSpec};
use crate::secret::Secret;
use crate::service_direct::ServiceDirect;

/// A `buyers.toml` that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not TOML.
    #[error("buyers file is not valid TOML: {0}")]
    Syntax(String),
    /// A field outside any buyer (`[http]`, `[defaults]`) is invalid.
    #[error("{section}: {field} = {value}: {reason}")]
    Section {
        /// The table.
        section: String,
        /// The field.
        field: String,
        /// The value found (`(missing)` when absent).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A buyer's field is invalid.
    #[error("buyer {buyer}: {field} = {value}: {reason}")]
    Invalid {
        /// The buyer's id (or `#N` when it has none).
        buyer: String,
        /// The field (dotted path inside the buyer, e.g. `caps.daily`).
        field: String,
        /// The value found (`(missing)` when absent).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        message: String,
    },
}

type EnvFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds [`BuyerEntry`]s from `buyers.toml`, given the state stores the rules use.
#[derive(Clone)]
pub struct BuyersLoader {
    caps: Arc<dyn CapStore>,
    seen: Arc<dyn SeenCallers>,
    env: EnvFn,
    executor: Option<HttpExecutor>,
}

impl fmt::Debug for BuyersLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuyersLoader")
            .field("caps", &self.caps)
            .field("seen", &self.seen)
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

impl BuyersLoader {
    /// A loader whose cap rules count in `caps` and whose duplicate-caller rules look in
    /// `seen`; credentials are read from the process environment.
    pub fn new(caps: Arc<dyn CapStore>, seen: Arc<dyn SeenCallers>) -> Self {
        BuyersLoader {
            caps,
            seen,
            env: Arc::new(|k| std::env::var(k).ok()),
            executor: None,
        }
    }

    /// Reads credentials from `vars` instead of the process environment.
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.env = Arc::new(move |k| map.get(k).cloned());
        self
    }

    /// Sends through `executor` (sharing its pool) instead of one built from `[http]`.
    pub fn with_executor(mut self, executor: HttpExecutor) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Loads a file.
    pub fn load_file(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Vec<BuyerEntry>, ConfigError> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Io {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        self.load_str(&text)
    }

    /// Loads TOML text.
    pub fn load_str(&self, text: &str) -> Result<Vec<BuyerEntry>, ConfigError> {
        let value: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        self.load_value(value)
    }

    /// Loads an already parsed TOML document.
    pub fn load_value(&self, value: toml::Value) -> Result<Vec<BuyerEntry>, ConfigError> {
        let file = parse_file(value)?;
        let executor =
            match &self.executor {
                Some(e) => e.clone(),
                None => HttpExecutor::with_config(file.http.clone().unwrap_or_default()).map_err(
                    |e| ConfigError::Section {
                        section: "http".into(),
                        field: "(client)".into(),
                        value: String::new(),
                        reason: e.to_string(),
                    },
                )?,
            };
        let mut seen_ids = BTreeSet::new();
        let mut out = Vec::new();
        for b in &file.buyers {
            if !seen_ids.insert(b.id.clone()) {
                return Err(invalid(&b.id, "id", &b.id, "another buyer has the same id"));
            }
            if !b.enabled {
                continue;
            }
            out.push(self.build(b, &file.defaults, &executor)?);
        }
        Ok(out)
    }

    fn build(
        &self,
        b: &BuyerConfig,
        d: &Defaults,
        executor: &HttpExecutor,
    ) -> Result<BuyerEntry, ConfigError> {
        let name = b.id.as_str();
        let id = BuyerId::new(name).map_err(|e| invalid(name, "id", name, e.reason))?;
        let tz_text = b
            .time_zone
            .clone()
            .or_else(|| d.time_zone.clone())
            .unwrap_or_else(|| "America/New_York".into());
        let tz = parse_tz(&tz_text).map_err(|r| invalid(name, "time_zone", &tz_text, r))?;
        let cur_text = b
            .currency
            .clone()
            .or_else(|| d.currency.clone())
            .unwrap_or_else(|| "USD".into());
        let currency = Currency::parse(&cur_text)
            .map_err(|e| invalid(name, "currency", &cur_text, e.reason))?;
        let priority = b.priority.unwrap_or(1);
        let weight = b.weight.unwrap_or(1);
        if weight == 0 {
            return Err(invalid(name, "weight", "0", "must be at least 1"));
        }
        let timeout_ms = b.timeout_ms.or(d.timeout_ms);
        if let Some(t) = timeout_ms {
            if t == 0 || t > 30_000 {
                return Err(invalid(
                    name,
                    "timeout_ms",
                    &t.to_string(),
                    "must be between 1 and 30000 ms",
                ));
            }
        }
        let min_dur = b.min_duration_secs.or(d.min_duration_secs).unwrap_or(60);
        if min_dur > 86_400 {
            return Err(invalid(
                name,
                "min_duration_secs",
                &min_dur.to_string(),
                "more than a day",
            ));
        }
        let profile = BuyerProfile::new(id.clone())
            .with_time_zone(tz)
            .with_priority(priority, weight)
            .with_currency(currency)
            .with_default_min_duration(Duration::from_secs(min_dur));
        let timeout = timeout_ms.map(Duration::from_millis);

        let mut buyer: Arc<dyn Buyer> = match b.adapter {
            AdapterKind::ServiceDirect => {
                if b.ping_post.is_some() {
                    return Err(invalid(
                        name,
                        "ping_post",
                        "(table)",
                        "adapter is service_direct: use [buyer.service_direct]",
                    ));
                }
                let sd = b.service_direct.as_ref().ok_or_else(|| {
                    invalid(
                        name,
                        "service_direct",
                        "(missing)",
                        "required with adapter = \"service_direct\"",
                    )
                })?;
                let a = self.service_direct(name, sd, currency)?;
                let mut hb = HttpBuyer::new(id.clone(), a, executor.clone());
                if let Some(t) = timeout {
                    hb = hb.with_timeout(t);
                }
                Arc::new(hb)
            }
            AdapterKind::PingPost => {
                if b.service_direct.is_some() {
                    return Err(invalid(
                        name,
                        "service_direct",
                        "(table)",
                        "adapter is ping_post: use [buyer.ping_post]",
                    ));
                }
                let pp = b.ping_post.as_ref().ok_or_else(|| {
                    invalid(
                        name,
                        "ping_post",
                        "(missing)",
                        "required with adapter = \"ping_post\"",
                    )
                })?;
                let a = self.ping_post(name, pp, currency)?;
                let mut hb = HttpBuyer::new(id.clone(), a, executor.clone());
                if let Some(t) = timeout {
                    hb = hb.with_timeout(t);
                }
                Arc::new(hb)
            }
        };
        // The rate limit wraps the buyer itself, so every HTTP attempt a retry makes
        // counts against it; a rate-limit refusal is `Refused`, which is never retried.
        if let Some(r) = &b.rate_limit {
            if r.pings == 0 {
                return Err(invalid(name, "rate_limit.pings", "0", "must be at least 1"));
            }
            if r.per_secs == 0 || r.per_secs > 86_400 {
                return Err(invalid(
                    name,
                    "rate_limit.per_secs",
                    &r.per_secs.to_string(),
                    "must be between 1 and 86400",
                ));
            }
            buyer = Arc::new(RateLimit::new(
                buyer,
                r.pings,
                Duration::from_secs(r.per_secs),
            ));
        }

        if let Some(r) = &b.retry {
            if r.max_retries > 5 {
                return Err(invalid(
                    name,
                    "retry.max_retries",
                    &r.max_retries.to_string(),
                    "at most 5",
                ));
            }
            if r.backoff_ms == 0 || r.backoff_ms > 5_000 {
                return Err(invalid(
                    name,
                    "retry.backoff_ms",
                    &r.backoff_ms.to_string(),
                    "must be between 1 and 5000 ms",
                ));
            }
            buyer = Arc::new(Retry::new(
                buyer,
                r.max_retries,
                Duration::from_millis(r.backoff_ms),
            ));
        }
        let mut entry = BuyerEntry::new(buyer).with_profile(profile);
        if let Some(t) = timeout {
            entry = entry.with_timeout(t);
        }
        for rule in self.rules(name, b, currency)? {
            entry = entry.with_rule(rule);
        }
        Ok(entry)
    }

    fn secret(&self, buyer: &str, field: &str, var: &str) -> Result<Secret, ConfigError> {
        if var.is_empty() {
            return Err(invalid(buyer, field, var, "name an environment variable"));
        }
        match (self.env)(var) {
            Some(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(invalid(
                buyer,
                field,
                var,
                "environment variable is not set (or empty)",
            )),
        }
    }

    fn service_direct(
        &self,
        name: &str,
        c: &ServiceDirectConfig,
        currency: Currency,
    ) -> Result<ServiceDirect, ConfigError> {
        // Service Direct quotes and reports prices in US dollars only: a bid read as
        // another currency would be mispriced, and its loss reports could never be sent.
        if currency != Currency::USD {
            return Err(invalid(
                name,
                "currency",
                &currency.to_string(),
                "Service Direct prices are in USD; this adapter accepts only USD",
            ));
        }
        let key = self.secret(name, "service_direct.api_key_env", &c.api_key_env)?;
        let mut a = ServiceDirect::new(key)
            .with_test_mode(c.test_mode)
            .with_caller_id_in_post(c.caller_id_in_post)
            .with_suppress_response_codes(c.suppress_response_codes)
            .with_currency(currency);
        if let Some(u) = &c.base_url {
            a = a
                .with_base_url(u)
                .map_err(|e| invalid(name, "service_direct.base_url", u, e.message))?;
        }
        if let Some(s) = &c.source {
            if s.is_empty() {
                return Err(invalid(
                    name,
                    "service_direct.source",
                    s,
                    "must not be empty",
                ));
            }
            a = a.with_source(s.clone());
        }
        for (k, v) in &c.categories {
            let field = format!("service_direct.categories.{k}");
            let s = ServiceType::new(k).map_err(|e| invalid(name, &field, k, e.reason))?;
            if *v == 0 {
                return Err(invalid(name, &field, "0", "category ids start at 1"));
            }
            a = a.with_category(s, *v);
        }
        Ok(a)
    }

    fn ping_post(
        &self,
        name: &str,
        c: &PingPostConfig,
        currency: Currency,
    ) -> Result<PingPost, ConfigError> {
        let spec: ProtocolSpec = match &c.preset {
            Some(p) => {
                if c.ping.is_some() || c.accept.is_some() || c.capabilities.is_some() {
                    return Err(invalid(
                        name,
                        "ping_post.preset",
                        p,
                        "a preset cannot be combined with inline ping/accept/capabilities",
                    ));
                }
                load_preset(p).map_err(|e| invalid(name, "ping_post.preset", p, e.to_string()))?
            }
            None => {
                let ping = c.ping.clone().ok_or_else(|| {
                    invalid(
                        name,
                        "ping_post.ping",
                        "(missing)",
                        "give a preset or an inline ping",
                    )
                })?;
                ProtocolSpec {
                    description: None,
                    base_url: None,
                    required_params: Vec::new(),
                    params: Default::default(),
                    auth: None,
                    capabilities: c.capabilities.unwrap_or_default(),
                    ping,
                    accept: c.accept.clone(),
                }
            }
        };
        let auth_spec = c.auth.clone().or_else(|| spec.auth.clone());
        let auth = match auth_spec {
            None => {
                if let Some(v) = &c.api_key_env {
                    return Err(invalid(
                        name,
                        "ping_post.api_key_env",
                        v,
                        "set, but no auth says where the key goes (add ping_post.auth)",
                    ));
                }
                None
            }
            Some(a) => Some(self.auth(name, &a, c.api_key_env.as_deref())?),
        };
        let settings = PingPostSettings {
            base_url: c.base_url.clone(),
            params: c.params.clone(),
            auth,
            headers: c.headers.clone(),
            currency,
        };
        PingPost::new(&spec, settings)
            .map_err(|e| invalid(name, &format!("ping_post.{}", e.field), &e.value, e.reason))
    }

    fn auth(&self, name: &str, a: &AuthSpec, key_env: Option<&str>) -> Result<Auth, ConfigError> {
        let pick = |own: &Option<String>, field: &str| -> Result<(String, String), ConfigError> {
            match (own, key_env) {
                (Some(v), _) => Ok((format!("ping_post.auth.{field}"), v.clone())),
                (None, Some(v)) => Ok(("ping_post.api_key_env".into(), v.to_string())),
                (None, None) => Err(invalid(
                    name,
                    "ping_post.api_key_env",
                    "(missing)",
                    "the auth needs a key: set api_key_env",
                )),
            }
        };
        Ok(match a {
            AuthSpec::Header {
                name: h,
                prefix,
                value_env,
            } => {
                if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(invalid(
                        name,
                        "ping_post.auth.name",
                        h,
                        "not a valid header name",
                    ));
                }
                let (f, var) = pick(value_env, "value_env")?;
                Auth::Header {
                    name: h.clone(),
                    prefix: prefix.clone().unwrap_or_default(),
                    value: self.secret(name, &f, &var)?,
                }
            }
            AuthSpec::Basic {
                username,
                username_env,
                password_env,
            } => {
                let user = match (username, username_env) {
                    (Some(u), None) => u.clone(),
                    (None, Some(e)) => self
                        .secret(name, "ping_post.auth.username_env", e)?
                        .expose()
                        .to_string(),
                    _ => {
                        return Err(invalid(
                            name,
                            "ping_post.auth.username",
                            "(missing)",
                            "give exactly one of username, username_env",
                        ))
                    }
                };
                if user.contains(':') {
                    return Err(invalid(
                        name,
                        "ping_post.auth.username",
                        &user,
                        "a basic-auth user name cannot contain ':'",
                    ));
                }
                let (f, var) = pick(password_env, "password_env")?;
                Auth::Basic {
                    username: user,
                    password: self.secret(name, &f, &var)?,
                }
            }
            AuthSpec::Query { name: q, value_env } => {
                if q.is_empty() {
                    return Err(invalid(name, "ping_post.auth.name", q, "must not be empty"));
                }
                let (f, var) = pick(value_env, "value_env")?;
                Auth::Query {
                    name: q.clone(),
                    value: self.secret(name, &f, &var)?,
                }
            }
        })
    }

    fn rules(
        &self,
        name: &str,
        b: &BuyerConfig,
        currency: Currency,
    ) -> Result<Vec<Arc<dyn RoutingRule>>, ConfigError> {
        let mut rules: Vec<Arc<dyn RoutingRule>> = Vec::new();
        if let Some(h) = &b.hours {
            rules.push(Arc::new(hours_rule(name, h)?));
        }
        if let Some(g) = &b.geo {
            rules.extend(geo_rules(name, g)?);
        }
        if let Some(s) = &b.services {
            if s.is_empty() {
                return Err(invalid(
                    name,
                    "services",
                    "[]",
                    "an empty list buys nothing; remove it to buy every service",
                ));
            }
            let mut set = Vec::new();
            for (i, x) in s.iter().enumerate() {
                set.push(
                    ServiceType::new(x)
                        .map_err(|e| invalid(name, &format!("services[{i}]"), x, e.reason))?,
                );
            }
            rules.push(Arc::new(ServiceRule::new(set)));
        }
        let money = |field: &str, v: &Option<String>| -> Result<Option<Money>, ConfigError> {
            match v {
                None => Ok(None),
                Some(t) => {
                    let m = Money::parse_amount("amount", t, currency)
                        .map_err(|e| invalid(name, field, t, e.reason))?;
                    if !m.is_positive() {
                        return Err(invalid(name, field, t, "must be greater than zero"));
                    }
                    Ok(Some(m))
                }
            }
        };
        let floor = money("floor", &b.floor)?;
        let ceiling = money("ceiling", &b.ceiling)?;
        if floor.is_some() || ceiling.is_some() {
            let r = BidBoundsRule::new(floor, ceiling).map_err(|e| {
                invalid(
                    name,
                    "ceiling",
                    b.ceiling.as_deref().unwrap_or(""),
                    e.reason,
                )
            })?;
            rules.push(Arc::new(r));
        }
        if let Some(days) = b.duplicate_caller_days {
            if days == 0 || days > 3650 {
                return Err(invalid(
                    name,
                    "duplicate_caller_days",
                    &days.to_string(),
                    "must be between 1 and 3650",
                ));
            }
            rules.push(Arc::new(DuplicateCallerRule::days(self.seen.clone(), days)));
        }
        if let Some(c) = &b.caps {
            let mut caps = Vec::new();
            for (field, window, v) in [
                ("caps.hourly", CapWindow::Hourly, c.hourly),
                ("caps.daily", CapWindow::Daily, c.daily),
                ("caps.monthly", CapWindow::Monthly, c.monthly),
                ("caps.total", CapWindow::Total, c.total),
                ("caps.concurrency", CapWindow::Concurrent, c.concurrency),
            ] {
                if let Some(n) = v {
                    if n == 0 {
                        return Err(invalid(
                            name,
                            field,
                            "0",
                            "a cap of 0 would never route; use enabled = false",
                        ));
                    }
                    caps.push(Cap::count(window, n));
                }
            }
            for (field, window, v) in [
                ("caps.hourly_spend", CapWindow::Hourly, &c.hourly_spend),
                ("caps.daily_spend", CapWindow::Daily, &c.daily_spend),
                ("caps.monthly_spend", CapWindow::Monthly, &c.monthly_spend),
                ("caps.total_spend", CapWindow::Total, &c.total_spend),
            ] {
                if let Some(m) = money(field, v)? {
                    caps.push(Cap::spend(window, m));
                }
            }
            if caps.is_empty() {
                return Err(invalid(name, "caps", "{}", "no cap given"));
            }
            let r = CapRule::new(self.caps.clone(), caps)
                .map_err(|e| invalid(name, "caps", &e.value, e.reason))?;
            rules.push(Arc::new(r));
        }
        Ok(rules)
    }
}

fn invalid(buyer: &str, field: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        buyer: buyer.to_string(),
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_tz(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>()
        .map_err(|_| "not an IANA time zone (e.g. America/Chicago)".to_string())
}

fn hours_rule(name: &str, h: &HoursConfig) -> Result<HoursRule, ConfigError> {
    use chrono::Weekday::*;
    let tz = match &h.time_zone {
        Some(t) => Some(parse_tz(t).map_err(|r| invalid(name, "hours.time_zone", t, r))?),
        None => None,
    };
    let ranges =
        |field: &str, v: &Option<Vec<String>>| -> Result<Option<Vec<TimeRange>>, ConfigError> {
            match v {
                None => Ok(None),
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        TimeRange::parse(s)
                            .map_err(|e| invalid(name, &format!("hours.{field}[{i}]"), s, e.reason))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
            }
        };
    let mut days: [Option<Vec<TimeRange>>; 7] = Default::default();
    let all = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];
    if let Some(r) = ranges("every_day", &h.every_day)? {
        for d in &mut days {
            *d = Some(r.clone());
        }
    }
    if let Some(r) = ranges("weekdays", &h.weekdays)? {
        for d in days.iter_mut().take(5) {
            *d = Some(r.clone());
        }
    }
    if let Some(r) = ranges("weekend", &h.weekend)? {
        for d in days.iter_mut().skip(5) {
            *d = Some(r.clone());
        }
    }
    for (i, (field, v)) in [
        ("monday", &h.monday),
        ("tuesday", &h.tuesday),
        ("wednesday", &h.wednesday),
        ("thursday", &h.thursday),
        ("friday", &h.friday),
        ("saturday", &h.saturday),
        ("sunday", &h.sunday),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(r) = ranges(field, v)? {
            days[i] = Some(r);
        }
    }
    if days.iter().all(|d| d.is_none()) {
        return Err(invalid(
            name,
            "hours",
            "{}",
            "no day given (list ranges per day, weekdays, weekend or every_day)",
        ));
    }
    let mut rule = HoursRule::new(tz);
    for (d, r) in all.into_iter().zip(days) {
        rule = rule.with_day(d, r.unwrap_or_default());
    }
    Ok(rule)
}

fn geo_rules(name: &str, g: &GeoConfig) -> Result<Vec<Arc<dyn RoutingRule>>, ConfigError> {
    let zips = |field: &str, v: &[String]| -> Result<Vec<Zip>, ConfigError> {
        v.iter()
            .enumerate()
            .map(|(i, z)| {
                Zip::parse(z).map_err(|e| invalid(name, &format!("geo.{field}[{i}]"), z, e.reason))
            })
            .collect()
    };
    let states = |field: &str, v: &[String]| -> Result<Vec<UsState>, ConfigError> {
        v.iter()
            .enumerate()
            .map(|(i, s)| {
                UsState::parse(s)
                    .map_err(|e| invalid(name, &format!("geo.{field}[{i}]"), s, e.reason))
            })
            .collect()
    };
    let acs = |field: &str, v: &[u16]| -> Result<Vec<u16>, ConfigError> {
        for (i, a) in v.iter().enumerate() {
            if !(200..=999).contains(a) {
                return Err(invalid(
                    name,
                    &format!("geo.{field}[{i}]"),
                    &a.to_string(),
                    "not a NANP area code (200-999)",
                ));
            }
        }
        Ok(v.to_vec())
    };
    let mut out: Vec<Arc<dyn RoutingRule>> = Vec::new();
    if !(g.allow_zips.is_empty() && g.allow_states.is_empty() && g.allow_area_codes.is_empty()) {
        out.push(Arc::new(
            GeoRule::allow()
                .with_zips(zips("allow_zips", &g.allow_zips)?)
                .with_states(states("allow_states", &g.allow_states)?)
                .with_area_codes(acs("allow_area_codes", &g.allow_area_codes)?),
        ));
    }
    if !(g.deny_zips.is_empty() && g.deny_states.is_empty() && g.deny_area_codes.is_empty()) {
        out.push(Arc::new(
            GeoRule::deny()
                .with_zips(zips("deny_zips", &g.deny_zips)?)
                .with_states(states("deny_states", &g.deny_states)?)
                .with_area_codes(acs("deny_area_codes", &g.deny_area_codes)?),
        ));
    }
    if out.is_empty() {
        return Err(invalid(
            name,
            "geo",
            "{}",
            "no ZIP, state or area code listed",
        ));
    }
    Ok(out)
}

/// Parses the document structure (no environment, no network), reporting the buyer,
/// field and value of the first invalid entry.
pub fn parse_file(value: toml::Value) -> Result<BuyersFile, ConfigError> {
    let toml::Value::Table(mut root) = value else {
        return Err(ConfigError::Syntax("the document is not a table".into()));
    };
    let buyers = root.remove("buyer");
    let mut file: BuyersFile = de(toml::Value::Table(root.clone())).map_err(|(field, msg)| {
        let section = field.split('.').next().unwrap_or("").to_string();
        ConfigError::Section {
            value: lookup(&toml::Value::Table(root.clone()), &field),
            section,
            field,
            reason: msg,
        }
    })?;
    if let Some(list) = buyers {
        let toml::Value::Array(items) = list else {
            return Err(ConfigError::Section {
                section: "buyer".into(),
                field: "buyer".into(),
                value: list.to_string(),
                reason: "write buyers as [[buyer]] tables".into(),
            });
        };
        for (i, item) in items.into_iter().enumerate() {
            let label = item
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| format!("#{}", i + 1));
            let b: BuyerConfig = de(item.clone()).map_err(|(field, msg)| ConfigError::Invalid {
                buyer: label.clone(),
                value: lookup(&item, &field),
                field,
                reason: msg,
            })?;
            file.buyers.push(b);
        }
    }
    Ok(file)
}

/// Deserializes, returning the failing field path and message.
fn de<T: for<'de> Deserialize<'de>>(v: toml::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let msg = e.inner().to_string();
        // serde names unknown / missing fields only in the message: add them to the path.
        for marker in ["unknown field `", "missing field `"] {
            if let Some(rest) = msg.strip_prefix(marker) {
                if let Some(end) = rest.find('`') {
                    let f = &rest[..end];
                    if !path.ends_with(f) {
                        path = if path.is_empty() {
                            f.to_string()
                        } else {
                            format!("{path}.{f}")
                        };
                    }
                }
            }
        }
        (path, msg)
    })
}

/// The value at a dotted path (`caps.daily`, `services[1]`), as TOML text.
fn lookup(root: &toml::Value, path: &str) -> String {
    let mut cur = root;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (key, idx) = match seg.find('[') {
            Some(i) => (
                &seg[..i],
                seg[i + 1..].trim_end_matches(']').parse::<usize>().ok(),
            ),
            None => (seg, None),
        };
        let next = if key.is_empty() {
            Some(cur)
        } else {
            cur.get(key)
        };
        let next = match (next, idx) {
            (Some(v), Some(i)) => v.get(i),
            (v, None) => v,
            (None, _) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return "(missing)".into(),
        }
    }
    cur.to_string()
}

/// The executor settings of a file (`[http]`), or the defaults.
pub fn executor_config(file: &BuyersFile) -> ExecutorConfig {
    file.http.clone().unwrap_or_default()
}

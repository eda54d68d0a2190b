//! The `outbound` key's file: how `callbid serve` places outbound campaign calls
//! (seed 004). See `examples/outbound.toml`.
//!
//! ```toml
//! provider = "twilio"        # or "exotel"
//! calls_per_second = 1       # Twilio: the account's CPS (1 unless raised)
//! free_agents = 2            # lines (or agents) free for answered calls
//! suppression = ["+15125550100"]
//!
//! [[caller_id]]
//! number = "+15125559000"
//! daily_limit = 300
//! ```
//!
//! - `provider = "twilio"` uses the server's `account_sid`, `auth_token` and
//!   `twilio_api_url`; without an account it uses the built-in fake of Twilio's Calls
//!   API, whose simulated callees answer (see [`crate::demo::fake_twilio`]).
//! - `provider = "exotel"` needs an `[exotel]` table: `account_sid`, `api_key`,
//!   `api_token` (or the `EXOTEL_API_TOKEN` variable), optional `region`
//!   (`singapore`, `mumbai`), `base_url` and `currency` (ISO 4217, `INR` by default).
//!   Its limit is `requests_per_minute` (200, Exotel's documented default).
//!
//! Errors name the file, the key and the value.

use std::path::{Path, PathBuf};

use callbid_core::campaign::{RateWindow, SuppressionList};
use callbid_core::{Currency, PhoneNumber};
use serde::Deserialize;

/// Which provider places the calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderKind {
    /// Twilio's `Calls.create` (or its local fake without an account).
    Twilio,
    /// Exotel's `Calls/connect`.
    Exotel(ExotelAccount),
}

/// An Exotel account.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExotelAccount {
    /// The account SID.
    pub account_sid: String,
    /// The API key (HTTP Basic user).
    pub api_key: String,
    /// The API token (HTTP Basic password).
    pub api_token: String,
    /// `true` for `api.in.exotel.com` (Mumbai), `false` for `api.exotel.com`.
    pub mumbai: bool,
    /// Another API base (a mock), when set.
    pub base_url: Option<String>,
    /// The account's currency.
    pub currency: Currency,
}

impl std::fmt::Debug for ExotelAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExotelAccount")
            .field("account_sid", &self.account_sid)
            .field("api_key", &self.api_key)
            .field("api_token", &"<redacted>")
            .field("mumbai", &self.mumbai)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// A loaded, validated outbound file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutboundFile {
    /// Who places the calls.
    pub provider: ProviderKind,
    /// The provider's request limit.
    pub rate: RateWindow,
    /// Free agents (or lines) for answered calls.
    pub free_agents: u32,
    /// Caller IDs with their daily limits.
    pub caller_ids: Vec<(PhoneNumber, u32)>,
    /// Numbers never called.
    pub suppression: SuppressionList,
    /// How often the pacer runs (milliseconds).
    pub pacer_interval_ms: u64,
}

/// A file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundFileError {
    /// The file could not be read.
    #[error("cannot read outbound {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML for this shape (names the key and line).
    #[error("outbound {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is invalid.
    #[error("invalid {key} {value:?} in outbound {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key (`caller_id[2].number`).
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    provider: String,
    calls_per_second: Option<u32>,
    requests_per_minute: Option<u32>,
    #[serde(default = "one")]
    free_agents: u32,
    #[serde(default = "second")]
    pacer_interval_ms: u64,
    #[serde(default)]
    caller_id: Vec<RawCallerId>,
    #[serde(default)]
    suppression: Vec<String>,
    exotel: Option<RawExotel>,
}

fn one() -> u32 {
    1
}

fn second() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallerId {
    number: String,
    #[serde(default = "daily")]
    daily_limit: u32,
}

fn daily() -> u32 {
    500
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExotel {
    account_sid: String,
    api_key: String,
    #[serde(default)]
    api_token: String,
    region: Option<String>,
    base_url: Option<String>,
    currency: Option<String>,
}

impl OutboundFile {
    /// Reads and validates `path`; `env` supplies `EXOTEL_API_TOKEN` when the file has
    /// no token.
    pub fn load(path: &Path, env: Option<String>) -> Result<OutboundFile, OutboundFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| OutboundFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, env)
    }

    /// Parses and validates TOML text (`path` names the file in errors).
    pub fn parse(
        text: &str,
        path: &Path,
        env: Option<String>,
    ) -> Result<OutboundFile, OutboundFileError> {
        let raw: Raw = toml::from_str(text).map_err(|e| OutboundFileError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let bad =
            |key: &str, value: &str, reason: &dyn std::fmt::Display| OutboundFileError::Invalid {
                path: path.to_owned(),
                key: key.to_owned(),
                value: value.to_owned(),
                reason: reason.to_string(),
            };
        let (provider, rate) = provider(&raw, env, &bad)?;
        if raw.free_agents == 0 {
            return Err(bad("free_agents", "0", &"must be at least 1"));
        }
        if !(100..=60_000).contains(&raw.pacer_interval_ms) {
            let v = raw.pacer_interval_ms.to_string();
            return Err(bad("pacer_interval_ms", &v, &"must be 100 to 60000 ms"));
        }
        let mut caller_ids = Vec::new();
        for (i, c) in raw.caller_id.iter().enumerate() {
            let key = format!("caller_id[{i}].number");
            let n = PhoneNumber::parse_field("number", &c.number)
                .map_err(|e| bad(&key, &c.number, &e))?;
            if c.daily_limit == 0 {
                let key = format!("caller_id[{i}].daily_limit");
                return Err(bad(&key, "0", &"must be at least 1"));
            }
            caller_ids.push((n, c.daily_limit));
        }
        if caller_ids.is_empty() {
            return Err(bad(
                "caller_id",
                "",
                &"give at least one caller ID to call from",
            ));
        }
        let mut suppression = SuppressionList::new();
        for (i, s) in raw.suppression.iter().enumerate() {
            let n = PhoneNumber::parse_field("suppression", s)
                .map_err(|e| bad(&format!("suppression[{i}]"), s, &e))?;
            suppression.add(&n, format!("{} suppression", path.display()));
        }
        Ok(OutboundFile {
            provider,
            rate,
            free_agents: raw.free_agents,
            caller_ids,
            suppression,
            pacer_interval_ms: raw.pacer_interval_ms,
        })
    }
}

type Bad<'a> = dyn Fn(&str, &str, &dyn std::fmt::Display) -> OutboundFileError + 'a;

fn provider(
    raw: &Raw,
    env: Option<String>,
    bad: &Bad<'_>,
) -> Result<(ProviderKind, RateWindow), OutboundFileError> {
    match raw.provider.trim() {
        "twilio" => {
            if raw.exotel.is_some() || raw.requests_per_minute.is_some() {
                return Err(bad(
                    "provider",
                    "twilio",
                    &"[exotel] and requests_per_minute are for provider = \"exotel\"",
                ));
            }
            let cps = raw.calls_per_second.unwrap_or(1);
            let rate = RateWindow::twilio(cps)
                .map_err(|e| bad("calls_per_second", &cps.to_string(), &e))?;
            Ok((ProviderKind::Twilio, rate))
        }
        "exotel" => {
            let Some(e) = &raw.exotel else {
                return Err(bad(
                    "exotel",
                    "",
                    &"provider = \"exotel\" needs an [exotel] table",
                ));
            };
            let per_minute = raw.requests_per_minute.unwrap_or(200);
            let rate = RateWindow::new(per_minute, std::time::Duration::from_secs(60))
                .map_err(|err| bad("requests_per_minute", &per_minute.to_string(), &err))?;
            Ok((ProviderKind::Exotel(exotel_account(e, env, bad)?), rate))
        }
        other => Err(bad("provider", other, &"expected twilio or exotel")),
    }
}

fn exotel_account(
    e: &RawExotel,
    env: Option<String>,
    bad: &Bad<'_>,
) -> Result<ExotelAccount, OutboundFileError> {
    let token = Some(e.api_token.trim().to_owned())
        .filter(|t| !t.is_empty())
        .or(env.filter(|t| !t.trim().is_empty()))
        .ok_or_else(|| {
            bad(
                "exotel.api_token",
                "",
                &"set it here or in EXOTEL_API_TOKEN",
            )
        })?;
    for (key, v) in [
        ("exotel.account_sid", &e.account_sid),
        ("exotel.api_key", &e.api_key),
    ] {
        if v.trim().is_empty() {
            return Err(bad(key, v, &"must not be empty"));
        }
    }
    let mumbai = match e.region.as_deref().map(str::trim) {
        None | Some("singapore") => false,
        Some("mumbai") => true,
        Some(other) => return Err(bad("exotel.region", other, &"expected singapore or mumbai")),
    };
    if let Some(url) = &e.base_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(
                "exotel.base_url",
                url,
                &"expected an http:// or https:// URL",
            ));
        }
    }
    let code = e.currency.as_deref().unwrap_or("INR");
    let currency = Currency::parse(code).map_err(|err| bad("exotel.currency", code, &err))?;
    Ok(ExotelAccount {
        account_sid: e.account_sid.trim().to_owned(),
        api_key: e.api_key.trim().to_owned(),
        api_token: token,
        mumbai,
        base_url: e.base_url.clone(),
        currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "provider = \"twilio\"\n[[caller_id]]\nnumber = \"+15125559000\"\n";

    fn parse(text: &str) -> Result<OutboundFile, OutboundFileError> {
        OutboundFile::parse(text, Path::new("outbound.toml"), None)
    }

    #[test]
    fn a_twilio_file_loads_with_defaults() {
        let f = parse(OK).unwrap();
        assert_eq!(f.provider, ProviderKind::Twilio);
        assert_eq!((f.free_agents, f.caller_ids.len()), (1, 1));
        assert_eq!(f.caller_ids[0].1, 500);
    }

    #[test]
    fn the_example_file_loads() {
        let text = include_str!("../../examples/outbound.toml");
        parse(text).unwrap();
    }

    #[test]
    fn an_exotel_file_takes_its_token_from_the_environment() {
        let text = "provider = \"exotel\"\n[[caller_id]]\nnumber = \"+918047101234\"\n[exotel]\naccount_sid = \"acme\"\napi_key = \"k\"\nregion = \"mumbai\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("exotel.api_token") && e.contains("EXOTEL_API_TOKEN"),
            "{e}"
        );
        let f = OutboundFile::parse(text, Path::new("o.toml"), Some("t".into())).unwrap();
        let ProviderKind::Exotel(a) = &f.provider else {
            panic!("{:?}", f.provider)
        };
        assert!(a.mumbai && a.api_token == "t");
        assert!(!format!("{a:?}").contains("\"t\""));
    }

    #[test]
    fn bad_values_name_the_file_the_key_and_the_value() {
        for (text, key, value) in [
            ("provider = \"vonage\"\n", "provider", "vonage"),
            ("provider = \"twilio\"\n", "caller_id", ""),
            (
                "provider = \"twilio\"\n[[caller_id]]\nnumber = \"555\"\n",
                "caller_id[0].number",
                "555",
            ),
            (
                "provider = \"twilio\"\nfree_agents = 0\n[[caller_id]]\nnumber = \"+15125559000\"\n",
                "free_agents",
                "0",
            ),
            (
                "provider = \"twilio\"\ncalls_per_second = 0\n[[caller_id]]\nnumber = \"+15125559000\"\n",
                "calls_per_second",
                "0",
            ),
            ("provider = \"exotel\"\n", "exotel", ""),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains(&format!("{value:?}")) && e.contains("outbound.toml"),
                "{key}: {e}"
            );
        }
        let text = "provider = \"twilio\"\nsuppression = [\"+15125550100\", \"call me\"]\n[[caller_id]]\nnumber = \"+15125559000\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("suppression[1]") && e.contains("call me"), "{e}");
        let e = parse("provider = \"twilio\"\nsped = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sped"), "{e}");
    }
}

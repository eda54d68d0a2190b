//! The pools file (`pools` configuration key): each pool's settings, numbers, default
//! campaign and publisher, and optional provisioning watermarks.
//!
//! ```toml
//! [[pool]]
//! id = "cars"
//! mode = "visitor_listing"        # or "listing"
//! lock_key = "number"             # or "number_and_caller"
//! lease_secs = 600                # session length
//! heartbeat_secs = 60
//! lock_days = 30
//! exhaustion = "overflow"         # or "reclaim_oldest", "provision"
//! overflow_number = "+15125550199"
//! max_leases_per_visitor = 20
//! campaign = "cars-dealers"       # campaign of calls to this pool's numbers
//! publisher = "cars-site"         # publisher when the page names none
//! numbers = ["+15125550101", "+15125550102"]
//!
//! [pool.provision]                # buy and release with Twilio (needs credentials)
//! area_code = 512
//! state = "TX"
//! low_watermark = 5
//! high_watermark = 20
//! idle_after_days = 30
//! max_buy_per_step = 10
//! ```

use std::path::Path;
use std::time::Duration;

use callbid_core::pool::provision::ProvisionConfig;
use callbid_core::pool::{ExhaustionPolicy, LockKey, NumberPool, PoolId, PoolMode, PoolNumber};
use callbid_core::{CampaignId, PhoneNumber, SourceId, UsState, ValidationError};
use serde::Deserialize;

/// A pools file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read pools file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML for the format (names the key and line).
    #[error("pools file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A value is invalid (names the pool and the field).
    #[error("pools file {path}, pool {pool:?}: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// The pool.
        pool: String,
        /// The field, value and reason.
        error: ValidationError,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    pool: Vec<RawPool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    id: String,
    #[serde(default)]
    mode: Option<PoolMode>,
    #[serde(default)]
    lock_key: Option<LockKey>,
    #[serde(default)]
    lease_secs: Option<u64>,
    #[serde(default)]
    heartbeat_secs: Option<u64>,
    #[serde(default)]
    lock_days: Option<u64>,
    #[serde(default)]
    exhaustion: Option<ExhaustionPolicy>,
    #[serde(default)]
    overflow_number: Option<String>,
    #[serde(default)]
    max_leases_per_visitor: Option<u32>,
    #[serde(default)]
    campaign: Option<String>,
    #[serde(default)]
    publisher: Option<String>,
    #[serde(default)]
    numbers: Vec<String>,
    #[serde(default)]
    provision: Option<RawProvision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvision {
    area_code: u16,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    low_watermark: Option<u64>,
    #[serde(default)]
    high_watermark: Option<u64>,
    #[serde(default)]
    idle_after_days: Option<u64>,
    #[serde(default)]
    max_buy_per_step: Option<u64>,
}

/// Provisioning of one pool (the voice URL is filled in from the public URL).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionSpec {
    /// Preferred area code.
    pub area_code: u16,
    /// Fallback state.
    pub state: Option<UsState>,
    /// Buy below this many free numbers.
    pub low_watermark: u64,
    /// Buy up to this many; release idle numbers above it.
    pub high_watermark: u64,
    /// A free number is idle after this long.
    pub idle_after: Duration,
    /// Most numbers one step buys.
    pub max_buy_per_step: u64,
}

impl ProvisionSpec {
    /// The core planner's configuration, with bought numbers pointing at `voice_url`.
    pub fn config(&self, voice_url: &str) -> ProvisionConfig {
        let mut c = ProvisionConfig::new(self.area_code, voice_url);
        c.state = self.state;
        c.low_watermark = self.low_watermark;
        c.high_watermark = self.high_watermark;
        c.idle_after = self.idle_after;
        c.max_buy_per_step = self.max_buy_per_step;
        c
    }
}

/// One configured pool.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSpec {
    /// The pool's settings and numbers.
    pub pool: NumberPool,
    /// Campaign of calls to its numbers.
    pub campaign: Option<CampaignId>,
    /// Publisher when the page names none.
    pub publisher: Option<SourceId>,
    /// Provisioning, if any.
    pub provision: Option<ProvisionSpec>,
}

impl PoolSpec {
    /// A pool with no default campaign, publisher or provisioning.
    pub fn new(pool: NumberPool) -> Self {
        PoolSpec {
            pool,
            campaign: None,
            publisher: None,
            provision: None,
        }
    }
    /// With a default campaign.
    pub fn with_campaign(mut self, c: CampaignId) -> Self {
        self.campaign = Some(c);
        self
    }
    /// With a default publisher.
    pub fn with_publisher(mut self, p: SourceId) -> Self {
        self.publisher = Some(p);
        self
    }
    /// With provisioning.
    pub fn with_provision(mut self, p: ProvisionSpec) -> Self {
        self.provision = Some(p);
        self
    }
}

/// Reads a pools file.
pub fn load(path: &Path) -> Result<Vec<PoolSpec>, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses a pools file's text (`origin` names it in errors).
pub fn parse(text: &str, origin: &str) -> Result<Vec<PoolSpec>, SpecError> {
    let file: File = toml::from_str(text).map_err(|e| SpecError::Parse {
        path: origin.to_owned(),
        message: e.to_string(),
    })?;
    let mut out: Vec<PoolSpec> = Vec::new();
    for raw in file.pool {
        let name = raw.id.clone();
        let spec = build(raw).map_err(|error| SpecError::Invalid {
            path: origin.to_owned(),
            pool: name.clone(),
            error,
        })?;
        if out.iter().any(|s| s.pool.id == spec.pool.id) {
            return Err(SpecError::Invalid {
                path: origin.to_owned(),
                pool: name.clone(),
                error: ValidationError::new("id", &name, "pool listed twice"),
            });
        }
        out.push(spec);
    }
    Ok(out)
}

fn build(raw: RawPool) -> Result<PoolSpec, ValidationError> {
    let id = PoolId::new(&raw.id).map_err(|e| ValidationError::new("id", &raw.id, e.reason))?;
    let mut b = NumberPool::builder(id);
    if let Some(m) = raw.mode {
        b = b.mode(m);
    }
    if let Some(k) = raw.lock_key {
        b = b.lock_key(k);
    }
    if let Some(s) = raw.lease_secs {
        b = b.lease_length(Duration::from_secs(s));
    }
    if let Some(s) = raw.heartbeat_secs {
        b = b.heartbeat(Duration::from_secs(s));
    }
    if let Some(d) = raw.lock_days {
        b = b.lock_period(Duration::from_secs(d.saturating_mul(86_400)));
    }
    if let Some(e) = raw.exhaustion {
        b = b.exhaustion(e);
    }
    if let Some(o) = &raw.overflow_number {
        b = b.overflow_number(PhoneNumber::parse_field("overflow_number", o)?);
    }
    if let Some(n) = raw.max_leases_per_visitor {
        b = b.max_leases_per_visitor(n);
    }
    let numbers = raw
        .numbers
        .iter()
        .map(|n| PhoneNumber::parse_field("numbers", n).map(PoolNumber::new))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = b.numbers(numbers).build()?;
    let campaign = raw
        .campaign
        .as_deref()
        .map(|c| CampaignId::new(c).map_err(|e| ValidationError::new("campaign", c, e.reason)))
        .transpose()?;
    let publisher = raw
        .publisher
        .as_deref()
        .map(|p| SourceId::new(p).map_err(|e| ValidationError::new("publisher", p, e.reason)))
        .transpose()?;
    let provision = raw.provision.map(provision).transpose()?;
    if provision.is_none() && pool.exhaustion == ExhaustionPolicy::Provision {
        return Err(ValidationError::new(
            "exhaustion",
            "provision",
            "needs a [pool.provision] section",
        ));
    }
    Ok(PoolSpec {
        pool,
        campaign,
        publisher,
        provision,
    })
}

fn provision(raw: RawProvision) -> Result<ProvisionSpec, ValidationError> {
    let state = raw
        .state
        .as_deref()
        .map(|s| {
            UsState::parse(s).map_err(|e| ValidationError::new("provision.state", s, e.reason))
        })
        .transpose()?;
    let spec = ProvisionSpec {
        area_code: raw.area_code,
        state,
        low_watermark: raw.low_watermark.unwrap_or(5),
        high_watermark: raw.high_watermark.unwrap_or(20),
        idle_after: Duration::from_secs(raw.idle_after_days.unwrap_or(30).saturating_mul(86_400)),
        max_buy_per_step: raw.max_buy_per_step.unwrap_or(10),
    };
    if !(200..=999).contains(&spec.area_code) {
        return Err(ValidationError::new(
            "provision.area_code",
            spec.area_code.to_string(),
            "must be a three-digit NANP area code",
        ));
    }
    spec.config("https://check.invalid/voice").validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pool_with_provisioning() {
        let specs = parse(
            r#"
[[pool]]
id = "cars"
mode = "listing"
lease_secs = 300
heartbeat_secs = 30
overflow_number = "+15125550199"
campaign = "cars-dealers"
numbers = ["+15125550101", "+15125550102"]
[pool.provision]
area_code = 512
state = "TX"
"#,
            "pools.toml",
        )
        .unwrap();
        assert_eq!(specs.len(), 1);
        let s = &specs[0];
        assert_eq!(s.pool.mode, PoolMode::Listing);
        assert_eq!(s.pool.numbers.len(), 2);
        assert_eq!(s.campaign.as_ref().unwrap().as_str(), "cars-dealers");
        let p = s.provision.as_ref().unwrap();
        assert_eq!(
            (p.area_code, p.low_watermark, p.high_watermark),
            (512, 5, 20)
        );
    }

    #[test]
    fn errors_name_the_pool_field_and_value() {
        for (text, field, value) in [
            (
                "[[pool]]\nid = \"a\"\nnumbers = [\"555\"]\n",
                "numbers",
                "555",
            ),
            ("[[pool]]\nid = \"a b\"\n", "id", "a b"),
            (
                "[[pool]]\nid = \"a\"\nheartbeat_secs = 900\n",
                "heartbeat",
                "900s",
            ),
            (
                "[[pool]]\nid = \"a\"\n[pool.provision]\narea_code = 12\n",
                "provision.area_code",
                "12",
            ),
            (
                "[[pool]]\nid = \"a\"\nexhaustion = \"provision\"\n",
                "exhaustion",
                "provision",
            ),
        ] {
            let e = parse(text, "pools.toml").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(value), "{text}: {e}");
        }
        let e = parse("[[pool]]\nid = \"a\"\nsize = 3\n", "pools.toml").unwrap_err();
        assert!(e.to_string().contains("size"), "{e}");
    }
}

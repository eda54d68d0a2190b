//! Keeping the pool stocked: a stockpile of free numbers between a low and a high
//! watermark, bought ahead of need (buying a local number takes minutes: Invoca quotes
//! about 10) and released when idle past an age (Twilio's number-management advice:
//! reclaim long-idle numbers).
//!
//! [`plan`] is pure; [`replenish`] runs one step against a store and a
//! [`NumberProvisioner`] (the Twilio implementation over `AvailablePhoneNumbers` /
//! `IncomingPhoneNumbers` lives in `callbid-twilio`). No visitor waits on it: run it
//! from a timer or after a lease answered `Overflow`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{chrono_dur, NumberPoolStore, NumberState, NumberStatus, PoolId, PoolNumber};
use crate::error::{StateError, ValidationError};
use crate::geo::UsState;
use crate::phone::PhoneNumber;

/// A failure of a provisioner (the carrier's API).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The provider refused or failed; `step` is `search`, `buy` or `release`.
    #[error("number provisioning failed during {step} ({number}): {message}")]
    Provider {
        /// The step.
        step: &'static str,
        /// The number or search concerned.
        number: String,
        /// The provider's message.
        message: String,
    },
    /// The pool store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Searches, buys and releases numbers at a carrier.
#[async_trait]
pub trait NumberProvisioner: Send + Sync + std::fmt::Debug {
    /// Up to `limit` available numbers in an area code.
    async fn search_area_code(
        &self,
        area_code: u16,
        limit: usize,
    ) -> Result<Vec<PoolNumber>, ProvisionError>;
    /// Up to `limit` available numbers anywhere in a state (the local fallback).
    async fn search_state(
        &self,
        state: UsState,
        limit: usize,
    ) -> Result<Vec<PoolNumber>, ProvisionError>;
    /// Buys a number and points its voice webhook at `voice_url`.
    async fn buy(&self, number: &PoolNumber, voice_url: &str)
        -> Result<PoolNumber, ProvisionError>;
    /// Releases a number back to the carrier.
    async fn release(&self, number: &PhoneNumber) -> Result<(), ProvisionError>;
}

/// Watermarks and where to buy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionConfig {
    /// Buy when free numbers fall below this.
    pub low_watermark: u64,
    /// Buy up to this many free numbers; release idle ones above it.
    pub high_watermark: u64,
    /// A free number is idle (releasable) when its last activity is older than this.
    pub idle_after: Duration,
    /// Preferred area code of new numbers.
    pub area_code: u16,
    /// Fallback state when the area code has too few.
    pub state: Option<UsState>,
    /// The voice webhook bought numbers point at (the server's `/voice`).
    pub voice_url: String,
    /// Most numbers one step may buy (a spend guard).
    pub max_buy_per_step: u64,
}

impl ProvisionConfig {
    /// Buys in `area_code` with webhooks at `voice_url`; defaults: watermarks 5 and 20, no
    /// state fallback, idle after 30 days, at most 10 numbers per step. Adjust the public
    /// fields, then [`Self::validate`].
    pub fn new(area_code: u16, voice_url: impl Into<String>) -> Self {
        ProvisionConfig {
            low_watermark: 5,
            high_watermark: 20,
            idle_after: Duration::from_secs(30 * 86_400),
            area_code,
            state: None,
            voice_url: voice_url.into(),
            max_buy_per_step: 10,
        }
    }

    /// Checks `low_watermark <= high_watermark`, `max_buy_per_step >= 1` and a non-empty
    /// `voice_url`; errors name the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.low_watermark > self.high_watermark {
            return Err(ValidationError::new(
                "low_watermark",
                self.low_watermark.to_string(),
                format!("above high_watermark {}", self.high_watermark),
            ));
        }
        if self.max_buy_per_step == 0 {
            return Err(ValidationError::new(
                "max_buy_per_step",
                "0",
                "must be at least 1",
            ));
        }
        if self.voice_url.trim().is_empty() {
            return Err(ValidationError::new(
                "voice_url",
                &self.voice_url,
                "must not be empty",
            ));
        }
        Ok(())
    }
}

/// What one step should do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Plan {
    /// How many numbers to buy.
    pub buy: u64,
    /// Which free, idle numbers to release (oldest activity first).
    pub release: Vec<PhoneNumber>,
}

/// Plans a step: below the low watermark buy up to the high one (at most
/// `max_buy_per_step`); above the high watermark release free numbers idle past
/// `idle_after`, oldest activity first, never going below the high watermark.
pub fn plan(numbers: &[NumberStatus], config: &ProvisionConfig, now: DateTime<Utc>) -> Plan {
    let free: Vec<&NumberStatus> = numbers
        .iter()
        .filter(|n| n.state == NumberState::Free)
        .collect();
    let n_free = free.len() as u64;
    if n_free < config.low_watermark {
        return Plan {
            buy: (config.high_watermark - n_free).min(config.max_buy_per_step),
            release: Vec::new(),
        };
    }
    let surplus = n_free.saturating_sub(config.high_watermark);
    let cutoff = now
        .checked_sub_signed(chrono_dur(config.idle_after))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut idle: Vec<&NumberStatus> = free
        .into_iter()
        .filter(|n| n.last_active < cutoff)
        .collect();
    idle.sort_by(|a, b| {
        (a.last_active, a.number.number.as_str()).cmp(&(b.last_active, b.number.number.as_str()))
    });
    Plan {
        buy: 0,
        release: idle
            .into_iter()
            .take(usize::try_from(surplus).unwrap_or(usize::MAX))
            .map(|n| n.number.number.clone())
            .collect(),
    }
}

/// What a [`replenish`] step did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReplenishReport {
    /// Numbers bought and added to the pool.
    pub bought: Vec<PhoneNumber>,
    /// Numbers retired from the pool and released.
    pub released: Vec<PhoneNumber>,
    /// Numbers planned for release that were leased meanwhile (kept).
    pub kept: Vec<PhoneNumber>,
    /// Numbers the plan asked for that the carrier could not supply.
    pub short: u64,
}

/// One provisioning step: plan, search (area code, then the state), buy, add to the
/// pool; retire then release idle numbers (a number leased since the plan is kept).
pub async fn replenish(
    store: &dyn NumberPoolStore,
    provisioner: &dyn NumberProvisioner,
    pool: &PoolId,
    config: &ProvisionConfig,
    now: DateTime<Utc>,
) -> Result<ReplenishReport, ProvisionError> {
    config.validate().map_err(StateError::from)?;
    let numbers = store.numbers(pool, now).await?;
    let plan = plan(&numbers, config, now);
    let mut report = ReplenishReport::default();
    buy_phase(store, provisioner, pool, config, plan.buy, now, &mut report).await?;
    release_phase(store, provisioner, pool, &plan.release, now, &mut report).await?;
    Ok(report)
}

async fn find_candidates(
    provisioner: &dyn NumberProvisioner,
    config: &ProvisionConfig,
    want: usize,
) -> Result<Vec<PoolNumber>, ProvisionError> {
    let mut found = provisioner.search_area_code(config.area_code, want).await?;
    if found.len() < want {
        if let Some(state) = config.state {
            let more = provisioner.search_state(state, want - found.len()).await?;
            for n in more {
                if !found.iter().any(|f| f.number == n.number) {
                    found.push(n);
                }
            }
        }
    }
    found.truncate(want);
    Ok(found)
}

async fn buy_phase(
    store: &dyn NumberPoolStore,
    provisioner: &dyn NumberProvisioner,
    pool: &PoolId,
    config: &ProvisionConfig,
    want: u64,
    now: DateTime<Utc>,
    report: &mut ReplenishReport,
) -> Result<(), ProvisionError> {
    if want == 0 {
        return Ok(());
    }
    let want_n = usize::try_from(want).unwrap_or(usize::MAX);
    let candidates = find_candidates(provisioner, config, want_n).await?;
    let mut bought = Vec::new();
    for c in candidates {
        let n = provisioner.buy(&c, &config.voice_url).await?;
        // Added one by one: a number bought is in the pool even if a later buy fails.
        store
            .add_numbers(pool, std::slice::from_ref(&n), now)
            .await?;
        bought.push(n.number);
    }
    report.short = want.saturating_sub(bought.len() as u64);
    report.bought = bought;
    Ok(())
}

async fn release_phase(
    store: &dyn NumberPoolStore,
    provisioner: &dyn NumberProvisioner,
    pool: &PoolId,
    release: &[PhoneNumber],
    now: DateTime<Utc>,
    report: &mut ReplenishReport,
) -> Result<(), ProvisionError> {
    for n in release {
        if store.retire_number(pool, n, now).await? {
            provisioner.release(n).await?;
            report.released.push(n.clone());
        } else {
            report.kept.push(n.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::TimeZone;

    use super::*;
    use crate::pool::{LeaseRequest, ListingId, MemoryNumberPoolStore, NumberPool, VisitorId};

    /// A carrier with a fixed inventory per area code and per state.
    #[derive(Debug, Default)]
    struct FakeCarrier {
        by_area: Mutex<Vec<PoolNumber>>,
        by_state: Mutex<Vec<PoolNumber>>,
        bought: Mutex<Vec<(String, String)>>,
        released: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl NumberProvisioner for FakeCarrier {
        async fn search_area_code(
            &self,
            area: u16,
            limit: usize,
        ) -> Result<Vec<PoolNumber>, ProvisionError> {
            let v = self.by_area.lock().unwrap();
            Ok(v.iter()
                .filter(|n| n.area_code == Some(area))
                .take(limit)
                .cloned()
                .collect())
        }
        async fn search_state(
            &self,
            state: UsState,
            limit: usize,
        ) -> Result<Vec<PoolNumber>, ProvisionError> {
            let v = self.by_state.lock().unwrap();
            Ok(v.iter()
                .filter(|n| n.state == Some(state))
                .take(limit)
                .cloned()
                .collect())
        }
        async fn buy(&self, n: &PoolNumber, url: &str) -> Result<PoolNumber, ProvisionError> {
            self.bought
                .lock()
                .unwrap()
                .push((n.number.to_string(), url.to_string()));
            Ok(n.clone())
        }
        async fn release(&self, n: &PhoneNumber) -> Result<(), ProvisionError> {
            self.released.lock().unwrap().push(n.to_string());
            Ok(())
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn cfg(low: u64, high: u64) -> ProvisionConfig {
        ProvisionConfig {
            low_watermark: low,
            high_watermark: high,
            idle_after: Duration::from_secs(86_400),
            area_code: 512,
            state: Some(UsState::parse("TX").unwrap()),
            voice_url: "https://example.com/voice".into(),
            max_buy_per_step: 10,
        }
    }

    fn n(s: &str) -> PoolNumber {
        PoolNumber::parse(s).unwrap()
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(cfg(5, 4).validate().unwrap_err().field, "low_watermark");
        let mut c = cfg(1, 2);
        c.max_buy_per_step = 0;
        assert_eq!(c.validate().unwrap_err().field, "max_buy_per_step");
        c.max_buy_per_step = 1;
        c.voice_url = " ".into();
        assert_eq!(c.validate().unwrap_err().field, "voice_url");
    }

    #[tokio::test]
    async fn buys_below_low_watermark_with_state_fallback_and_releases_idle_surplus() {
        let store = MemoryNumberPoolStore::new();
        let pool = NumberPool::builder(PoolId::new("p").unwrap())
            .numbers([n("+15125550100")])
            .build()
            .unwrap();
        store.put_pool(&pool, t(0)).await.unwrap();
        // One free number, low 2, high 4: buy 3 — one in 512, two from TX (Houston 713).
        let carrier = FakeCarrier::default();
        *carrier.by_area.lock().unwrap() = vec![n("+15125550200")];
        *carrier.by_state.lock().unwrap() =
            vec![n("+17135550300"), n("+17135550301"), n("+17135550302")];
        let r = replenish(&store, &carrier, &pool.id, &cfg(2, 4), t(10))
            .await
            .unwrap();
        assert_eq!(r.bought.len(), 3, "{r:?}");
        assert_eq!(r.bought[0].as_str(), "+15125550200");
        assert_eq!(r.short, 0);
        assert!(carrier
            .bought
            .lock()
            .unwrap()
            .iter()
            .all(|(_, u)| u == "https://example.com/voice"));
        assert_eq!(store.numbers(&pool.id, t(10)).await.unwrap().len(), 4);
        // Between the watermarks: nothing to do.
        let r = replenish(&store, &carrier, &pool.id, &cfg(2, 4), t(20))
            .await
            .unwrap();
        assert_eq!(r, ReplenishReport::default());
        // High watermark lowered to 2 two days later: release the 2 idle longest, but one
        // of them is leased first and kept.
        let lease = LeaseRequest::new(
            pool.id.clone(),
            VisitorId::new("v").unwrap(),
            ListingId::new("l").unwrap(),
            t(2 * 86_400),
        );
        let got = store.lease(&lease).await.unwrap();
        let leased = got.number().unwrap().clone();
        let plan = plan(
            &store.numbers(&pool.id, t(2 * 86_400)).await.unwrap(),
            &cfg(1, 2),
            t(2 * 86_400),
        );
        assert_eq!(plan.buy, 0);
        assert_eq!(plan.release.len(), 1, "3 free, high 2: {plan:?}");
        assert!(!plan.release.contains(&leased));
        let r = replenish(&store, &carrier, &pool.id, &cfg(1, 2), t(2 * 86_400))
            .await
            .unwrap();
        assert_eq!(r.released, plan.release);
        assert_eq!(carrier.released.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn short_when_the_carrier_has_too_few() {
        let store = MemoryNumberPoolStore::new();
        let pool = NumberPool::builder(PoolId::new("p").unwrap())
            .build()
            .unwrap();
        store.put_pool(&pool, t(0)).await.unwrap();
        let carrier = FakeCarrier::default();
        let r = replenish(&store, &carrier, &pool.id, &cfg(1, 3), t(1))
            .await
            .unwrap();
        assert_eq!((r.bought.len(), r.short), (0, 3));
    }

    #[test]
    fn plan_never_releases_busy_or_recent_numbers() {
        let status = |num: &str, state, last: i64| NumberStatus {
            number: n(num),
            state,
            added_at: t(0),
            last_active: t(last),
        };
        let numbers = vec![
            status("+15125550100", NumberState::Free, 0),
            status("+15125550101", NumberState::Leased, 0),
            status("+15125550102", NumberState::Locked, 0),
            status("+15125550103", NumberState::Free, 200_000),
            status("+15125550104", NumberState::Free, 10),
        ];
        let p = plan(&numbers, &cfg(0, 1), t(200_000));
        let r: Vec<&str> = p.release.iter().map(|n| n.as_str()).collect();
        assert_eq!(r, ["+15125550100", "+15125550104"]);
    }
}

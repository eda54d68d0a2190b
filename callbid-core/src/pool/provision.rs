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

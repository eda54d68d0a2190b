//! Quality history: per buyer × area × hour-of-week bucket, how many calls have a known
//! outcome, how many of them converted, and which signal said so.
//!
//! # One outcome per call, whatever the order
//!
//! A call's outcome is counted once. Each call keeps one stored [`QualityObservation`];
//! recording another observation for the same call replaces it only when it *outranks*
//! the stored one, in this total order (weakest first):
//!
//! 1. transcript, not converted (a junk classification);
//! 2. transcript, converted;
//! 3. postback, not converted;
//! 4. postback, converted.
//!
//! So a buyer's conversion postback overrides any transcript classification of the same
//! call (the buyer knows whether it sold), a conversion is never taken back by a later
//! signal of the same kind, and the stored outcome is the maximum of everything ever
//! recorded for the call: it depends on the *set* of observations, not on the order
//! webhooks arrive in, and recording the same observation twice changes nothing. On a
//! replacement the buckets move the call from its old outcome to its new one (its
//! `calls` count stays 1). The buckets a call counts in are the ones given when it was
//! first recorded.
//!
//! Implementations make `record` atomic per call: of two handles recording the same
//! call at once (two instances sharing a database), the call is still counted once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::HistoryKey;
use crate::error::StateError;
use crate::ids::CallId;

/// Where a call's outcome came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QualitySignal {
    /// A phrase rule matched the call's transcript.
    Transcript,
    /// The buyer's conversion postback.
    Postback,
}

impl QualitySignal {
    /// The stored name (`transcript`, `postback`).
    pub fn as_str(&self) -> &'static str {
        match self {
            QualitySignal::Transcript => "transcript",
            QualitySignal::Postback => "postback",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<QualitySignal> {
        match s {
            "transcript" => Some(QualitySignal::Transcript),
            "postback" => Some(QualitySignal::Postback),
            _ => None,
        }
    }
}

impl fmt::Display for QualitySignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal's verdict on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QualityObservation {
    /// Which signal.
    pub signal: QualitySignal,
    /// Whether the call converted.
    pub converted: bool,
}

impl QualityObservation {
    /// A postback's verdict.
    pub fn postback(converted: bool) -> Self {
        QualityObservation {
            signal: QualitySignal::Postback,
            converted,
        }
    }

    /// A transcript classification's verdict.
    pub fn transcript(converted: bool) -> Self {
        QualityObservation {
            signal: QualitySignal::Transcript,
            converted,
        }
    }

    /// The observation's rank (module docs): higher replaces lower.
    pub fn rank(&self) -> u8 {
        let s = match self.signal {
            QualitySignal::Transcript => 0,
            QualitySignal::Postback => 2,
        };
        s + u8::from(self.converted)
    }

    /// Whether `self` replaces `stored`.
    pub fn outranks(&self, stored: &QualityObservation) -> bool {
        self.rank() > stored.rank()
    }
}

/// Counts in a quality bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QualityStats {
    /// Calls with a known outcome.
    pub calls: u64,
    /// Of those, how many converted.
    pub converted: u64,
    /// How many outcomes came from a postback.
    pub postback: u64,
    /// How many outcomes came from a transcript.
    pub transcript: u64,
}

impl QualityStats {
    /// Adds (`sign` 1) or removes (`sign` -1) one call's outcome.
    pub fn apply(&mut self, obs: &QualityObservation, sign: i8) {
        let step = |v: &mut u64, on: bool| {
            if on {
                *v = if sign >= 0 {
                    v.saturating_add(1)
                } else {
                    v.saturating_sub(1)
                };
            }
        };
        step(&mut self.calls, true);
        step(&mut self.converted, obs.converted);
        step(&mut self.postback, obs.signal == QualitySignal::Postback);
        step(
            &mut self.transcript,
            obs.signal == QualitySignal::Transcript,
        );
    }
}

/// What [`QualityHistory::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityRecorded {
    /// The call's outcome after the call (the stored one).
    pub stored: QualityObservation,
    /// Whether the buckets changed (a first outcome, or one that outranked the stored one).
    pub changed: bool,
}

/// Quality history (module docs for the one-outcome-per-call rule).
#[async_trait]
pub trait QualityHistory: Send + Sync + fmt::Debug {
    /// Records `obs` for `call` in every key (the call's buckets, as
    /// [`history_keys`](super::history_keys) gives them). Atomic and idempotent per call.
    async fn record(
        &self,
        call: &CallId,
        keys: &[HistoryKey],
        obs: QualityObservation,
    ) -> Result<QualityRecorded, StateError>;
    /// The outcome stored for `call`, if any.
    async fn outcome(&self, call: &CallId) -> Result<Option<QualityObservation>, StateError>;
    /// Counts for each key, in order (zeros for unknown keys).
    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<QualityStats>, StateError>;
}

#[derive(Debug, Default)]
struct Inner {
    calls: HashMap<CallId, (QualityObservation, Vec<HistoryKey>)>,
    buckets: HashMap<HistoryKey, QualityStats>,
}

/// [`QualityHistory`] in memory; one mutex makes `record` atomic.
#[derive(Debug, Default)]
pub struct MemoryQualityHistory {
    inner: Mutex<Inner>,
}

impl MemoryQualityHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned(operation: &'static str) -> StateError {
    StateError::Unavailable {
        store: "memory",
        operation,
        message: "lock poisoned by a panic in another thread".into(),
    }
}

#[async_trait]
impl QualityHistory for MemoryQualityHistory {
    async fn record(
        &self,
        call: &CallId,
        keys: &[HistoryKey],
        obs: QualityObservation,
    ) -> Result<QualityRecorded, StateError> {
        let mut guard = self.inner.lock().map_err(|_| poisoned("record_quality"))?;
        let inner = &mut *guard;
        let (old, keys) = match inner.calls.get(call) {
            Some((stored, _)) if !obs.outranks(stored) => {
                return Ok(QualityRecorded {
                    stored: *stored,
                    changed: false,
                })
            }
            Some((stored, k)) => (Some(*stored), k.clone()),
            None => (None, keys.to_vec()),
        };
        for k in &keys {
            let s = inner.buckets.entry(k.clone()).or_default();
            if let Some(o) = &old {
                s.apply(o, -1);
            }
            s.apply(&obs, 1);
        }
        inner.calls.insert(call.clone(), (obs, keys));
        Ok(QualityRecorded {
            stored: obs,
            changed: true,
        })
    }

    async fn outcome(&self, call: &CallId) -> Result<Option<QualityObservation>, StateError> {
        let inner = self.inner.lock().map_err(|_| poisoned("quality_outcome"))?;
        Ok(inner.calls.get(call).map(|(o, _)| *o))
    }

    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<QualityStats>, StateError> {
        let inner = self.inner.lock().map_err(|_| poisoned("quality_stats"))?;
        Ok(keys
            .iter()
            .map(|k| inner.buckets.get(k).copied().unwrap_or_default())
            .collect())
    }
}

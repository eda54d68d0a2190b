//! In-memory implementations of the state traits: for tests, examples and single-process
//! deployments that can lose state on restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::calllog::{AppendOutcome, CallEvent, CallLog, CallRecord};
use super::{
    AreaKey, CapStore, ClaimOutcome, DurationHistory, HistoryKey, HistoryKeyRef, HistoryStats,
    ReservationId, ReservationRequest, ReserveOutcome, SeenCallers, SeenClaim,
};
use crate::error::StateError;
use crate::ids::{BuyerId, CallId};
use crate::phone::PhoneNumber;

fn poisoned(operation: &'static str) -> StateError {
    StateError::Unavailable {
        store: "memory",
        operation,
        message: "lock poisoned by a panic in another thread".into(),
    }
}

#[derive(Debug)]
struct Held {
    increments: Vec<(String, Decimal)>,
}

/// One reservation's share of a counter: who, how much, until when.
type Share = (ReservationId, Decimal, Option<DateTime<Utc>>);

#[derive(Debug, Default)]
struct CapInner {
    /// Every live reservation.
    held: HashMap<ReservationId, Held>,
    /// Per counter key, the reservations that add to it: usage reads only these.
    by_key: HashMap<String, Vec<Share>>,
}

impl CapInner {
    /// Usage of `key` at `now`; drops reservations that expired by then, so a counter's
    /// list holds only what can still count (one process, one clock: an expired
    /// reservation never counts again).
    fn usage(&mut self, key: &str, now: DateTime<Utc>) -> Decimal {
        let Some(list) = self.by_key.get_mut(key) else {
            return Decimal::ZERO;
        };
        let mut expired = Vec::new();
        list.retain(|(id, _, exp)| {
            let live = exp.is_none_or(|e| e > now);
            if !live {
                expired.push(id.clone());
            }
            live
        });
        let used = list.iter().map(|(_, a, _)| *a).sum();
        if list.is_empty() {
            self.by_key.remove(key);
        }
        for id in expired {
            self.remove(&id);
        }
        used
    }

    fn remove(&mut self, id: &ReservationId) -> bool {
        let Some(h) = self.held.remove(id) else {
            return false;
        };
        for (key, _) in &h.increments {
            if let Some(list) = self.by_key.get_mut(key) {
                list.retain(|(rid, _, _)| rid != id);
                if list.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
        true
    }
}

/// [`CapStore`] in memory. One mutex makes `reserve` atomic; usage reads only the
/// reservations of the counter asked for, and expired ones are dropped as they are met.
#[derive(Debug, Default)]
pub struct MemoryCapStore {
    inner: Mutex<CapInner>,
}

impl MemoryCapStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CapStore for MemoryCapStore {
    async fn usage(&self, key: &str, now: DateTime<Utc>) -> Result<Decimal, StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("usage"))?;
        Ok(inner.usage(key, now))
    }

    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("reserve"))?;
        if inner.held.contains_key(&request.id) {
            return Ok(ReserveOutcome::Reserved);
        }
        // A counter named more than once in one request is checked against the sum of
        // its amounts, and the strictest of its limits.
        let mut wanted: BTreeMap<&str, (Decimal, Decimal)> = BTreeMap::new();
        for inc in &request.increments {
            let e = wanted
                .entry(inc.key.as_str())
                .or_insert((Decimal::ZERO, inc.limit));
            e.0 += inc.amount;
            e.1 = e.1.min(inc.limit);
        }
        for (key, (amount, limit)) in wanted {
            let used = inner.usage(key, request.now);
            if used + amount > limit {
                return Ok(ReserveOutcome::Exceeded {
                    key: key.to_string(),
                    used,
                    limit,
                });
            }
        }
        for inc in &request.increments {
            inner.by_key.entry(inc.key.clone()).or_default().push((
                request.id.clone(),
                inc.amount,
                request.expires_at,
            ));
        }
        inner.held.insert(
            request.id.clone(),
            Held {
                increments: request
                    .increments
                    .iter()
                    .map(|i| (i.key.clone(), i.amount))
                    .collect(),
            },
        );
        Ok(ReserveOutcome::Reserved)
    }

    async fn release(&self, id: &ReservationId) -> Result<bool, StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("release"))?;
        Ok(inner.remove(id))
    }
}

/// [`SeenCallers`] in memory. One lock covers the seen records and the claims, so a
/// claim's check and its write are one step.
#[derive(Debug, Default)]
pub struct MemorySeenCallers {
    inner: Mutex<SeenInner>,
}

#[derive(Debug, Default)]
struct SeenInner {
    seen: HashMap<(BuyerId, PhoneNumber), DateTime<Utc>>,
    /// Unconfirmed claims: holder and expiry.
    claims: HashMap<(BuyerId, PhoneNumber), (ReservationId, DateTime<Utc>)>,
}

impl MemorySeenCallers {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SeenCallers for MemorySeenCallers {
    async fn last_seen(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        let inner = self.inner.lock().map_err(|_| poisoned("last_seen"))?;
        Ok(inner.seen.get(&(buyer.clone(), caller.clone())).copied())
    }

    async fn record(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("record"))?;
        let e = inner
            .seen
            .entry((buyer.clone(), caller.clone()))
            .or_insert(at);
        if at > *e {
            *e = at;
        }
        Ok(())
    }

    async fn claim(&self, claim: &SeenClaim) -> Result<ClaimOutcome, StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("claim"))?;
        let key = (claim.buyer.clone(), claim.caller.clone());
        if let Some(at) = inner.seen.get(&key).copied().filter(|at| *at > claim.since) {
            return Ok(ClaimOutcome::Seen { at });
        }
        if let Some((holder, expires)) = inner.claims.get(&key) {
            if *holder != claim.holder && *expires > claim.now {
                return Ok(ClaimOutcome::Held {
                    holder: holder.clone(),
                });
            }
        }
        inner
            .claims
            .insert(key, (claim.holder.clone(), claim.expires_at));
        Ok(ClaimOutcome::Claimed)
    }

    async fn confirm_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("confirm_claim"))?;
        let key = (buyer.clone(), caller.clone());
        let e = inner.seen.entry(key.clone()).or_insert(at);
        if at > *e {
            *e = at;
        }
        if inner.claims.get(&key).is_some_and(|(h, _)| h == holder) {
            inner.claims.remove(&key);
        }
        Ok(())
    }

    async fn release_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
    ) -> Result<bool, StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("release_claim"))?;
        let key = (buyer.clone(), caller.clone());
        if inner.claims.get(&key).is_some_and(|(h, _)| h == holder) {
            inner.claims.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// [`DurationHistory`] in memory.
#[derive(Debug, Default)]
pub struct MemoryDurationHistory {
    /// Per buyer, its buckets: keyed by buyer first, so that a borrowed key
    /// ([`HistoryKeyRef`]) is looked up without cloning its id.
    inner: Mutex<Buckets>,
}

/// Per buyer: counts per (area, hour of week).
type Buckets = HashMap<BuyerId, HashMap<(AreaKey, Option<u8>), HistoryStats>>;

/// The counts of one bucket (zeros when it is unknown).
fn bucket(map: &Buckets, key: HistoryKeyRef<'_>) -> HistoryStats {
    map.get(key.buyer)
        .and_then(|b| b.get(&(key.area, key.hour_of_week)))
        .copied()
        .unwrap_or_default()
}

impl MemoryDurationHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DurationHistory for MemoryDurationHistory {
    async fn record(&self, keys: &[HistoryKey], billable: bool) -> Result<(), StateError> {
        let mut map = self.inner.lock().map_err(|_| poisoned("record"))?;
        for k in keys {
            let buyer = map.entry(k.buyer.clone()).or_default();
            let s = buyer.entry((k.area, k.hour_of_week)).or_default();
            s.calls += 1;
            if billable {
                s.billable += 1;
            }
        }
        Ok(())
    }

    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<HistoryStats>, StateError> {
        let map = self.inner.lock().map_err(|_| poisoned("stats"))?;
        Ok(keys.iter().map(|k| bucket(&map, k.into())).collect())
    }

    async fn stats_into(
        &self,
        keys: &[HistoryKey],
        out: &mut Vec<HistoryStats>,
    ) -> Result<(), StateError> {
        let map = self.inner.lock().map_err(|_| poisoned("stats"))?;
        out.clear();
        out.extend(keys.iter().map(|k| bucket(&map, k.into())));
        Ok(())
    }

    async fn stats_of(
        &self,
        keys: &[HistoryKeyRef<'_>],
        out: &mut Vec<HistoryStats>,
    ) -> Result<(), StateError> {
        let map = self.inner.lock().map_err(|_| poisoned("stats"))?;
        out.clear();
        out.extend(keys.iter().map(|k| bucket(&map, *k)));
        Ok(())
    }
}

#[derive(Debug, Default)]
struct LogInner {
    events: HashMap<CallId, Vec<CallEvent>>,
    keys: HashSet<(CallId, String)>,
}

/// [`CallLog`] in memory (not durable).
#[derive(Debug, Default)]
pub struct MemoryCallLog {
    inner: Mutex<LogInner>,
}

impl MemoryCallLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call's record, newest first (for small demos; durable stores have reports).
    pub fn records(&self) -> Result<Vec<CallRecord>, StateError> {
        let inner = self.inner.lock().map_err(|_| poisoned("records"))?;
        let mut v: Vec<CallRecord> = inner
            .events
            .values()
            .filter_map(|e| CallRecord::from_events(e))
            .collect();
        v.sort_by(|a, b| {
            b.received_at
                .cmp(&a.received_at)
                .then(a.call_id.cmp(&b.call_id))
        });
        Ok(v)
    }
}

#[async_trait]
impl CallLog for MemoryCallLog {
    async fn append(&self, event: &CallEvent) -> Result<AppendOutcome, StateError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned("append"))?;
        if !inner
            .keys
            .insert((event.call_id.clone(), event.idempotency_key.clone()))
        {
            return Ok(AppendOutcome::Duplicate);
        }
        inner
            .events
            .entry(event.call_id.clone())
            .or_default()
            .push(event.clone());
        Ok(AppendOutcome::Recorded)
    }

    async fn events(&self, call: &CallId) -> Result<Vec<CallEvent>, StateError> {
        let inner = self.inner.lock().map_err(|_| poisoned("events"))?;
        Ok(inner.events.get(call).cloned().unwrap_or_default())
    }

    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError> {
        let events = self.events(call).await?;
        Ok(CallRecord::from_events(&events))
    }
}

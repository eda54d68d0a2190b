//! The in-memory [`NumberPoolStore`]: one mutex over every pool (single process).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::*;
use super::{chrono_dur, NumberPoolStore};
use crate::error::{StateError, ValidationError};
use crate::phone::PhoneNumber;

#[derive(Debug, Clone)]
struct NumRow {
    number: PoolNumber,
    added_at: DateTime<Utc>,
    /// End of the last exclusive lease (kept after it ends: the free-longest order).
    leased_until: Option<DateTime<Utc>>,
    /// The exclusive lease that set `leased_until`.
    lease_id: Option<LeaseId>,
    /// End of a number-wide lock.
    locked_until: Option<DateTime<Utc>>,
    last_active: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct LockRow {
    lease: LeaseId,
    key: String,
    visitor: VisitorId,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

#[derive(Debug)]
struct PoolState {
    settings: NumberPool,
    numbers: BTreeMap<String, NumRow>,
    leases: HashMap<LeaseId, (String, Lease)>,
    /// Lease ids by key, by visitor and by number (indexes over `leases`).
    by_key: HashMap<String, Vec<LeaseId>>,
    by_visitor: HashMap<VisitorId, Vec<LeaseId>>,
    by_number: HashMap<String, Vec<LeaseId>>,
    /// Locks by (number, caller or "" for number-wide).
    locks: BTreeMap<(String, String), LockRow>,
    calls: HashMap<String, (DateTime<Utc>, Attribution)>,
    overflows: Vec<DateTime<Utc>>,
    grants: Vec<DateTime<Utc>>,
}

/// [`NumberPoolStore`] in memory, for tests, demos and the simulation.
#[derive(Debug, Default)]
pub struct MemoryNumberPoolStore {
    pools: Mutex<HashMap<super::PoolId, PoolState>>,
}

impl MemoryNumberPoolStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<super::PoolId, PoolState>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn unknown_pool(pool: &super::PoolId) -> StateError {
    StateError::Invalid(ValidationError::new("pool", pool.as_str(), "no such pool"))
}

fn after(d: DateTime<Utc>, len: Duration) -> DateTime<Utc> {
    d.checked_add_signed(chrono_dur(len))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl PoolState {
    fn indexed<'a>(
        &'a self,
        ids: Option<&'a Vec<LeaseId>>,
    ) -> impl Iterator<Item = &'a (String, Lease)> + 'a {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.leases.get(id))
    }

    /// Whether an exclusive lease still holds its number's row (a lease whose number
    /// went to another lease, e.g. under clock skew between servers, is over).
    fn owns(&self, l: &Lease) -> bool {
        !l.exclusive
            || self
                .numbers
                .get(l.number.as_str())
                .is_some_and(|r| r.lease_id.as_ref() == Some(&l.id))
    }

    fn live_lease_for_key(&self, key: &str, now: DateTime<Utc>) -> Option<LeaseId> {
        self.indexed(self.by_key.get(key))
            .filter(|(_, l)| l.is_live(now) && self.owns(l))
            .max_by_key(|(_, l)| (l.exclusive, l.created_at, l.id.clone()))
            .map(|(_, l)| l.id.clone())
    }

    fn live_for_visitor(&self, visitor: &VisitorId, now: DateTime<Utc>) -> u32 {
        let n = self
            .indexed(self.by_visitor.get(visitor))
            .filter(|(_, l)| l.is_live(now))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn locks_on<'a>(
        &'a self,
        number: &str,
    ) -> impl Iterator<Item = (&'a (String, String), &'a LockRow)> + 'a {
        let n = number.to_string();
        self.locks
            .range((n.clone(), String::new())..)
            .take_while(move |((k, _), _)| *k == n)
    }

    fn lock_for_key(&self, key: &str, now: DateTime<Utc>) -> Option<String> {
        self.indexed(self.by_key.get(key))
            .flat_map(|(_, l)| self.locks_on(l.number.as_str()))
            .filter(|(_, r)| r.key == key && r.until > now)
            .max_by_key(|(_, r)| r.from)
            .map(|((n, _), _)| n.clone())
    }

    fn is_free(&self, row: &NumRow, visitor: &VisitorId, now: DateTime<Utc>) -> bool {
        let num = row.number.number.as_str();
        row.leased_until.is_none_or(|u| u <= now)
            && row.locked_until.is_none_or(|u| u <= now)
            && !self
                .locks_on(num)
                .any(|(_, r)| &r.visitor == visitor && r.until > now)
    }

    fn pick_free(&self, visitor: &VisitorId, now: DateTime<Utc>) -> Option<String> {
        self.numbers
            .values()
            .filter(|r| self.is_free(r, visitor, now))
            .min_by_key(|r| (r.leased_until, r.number.number.as_str()))
            .map(|r| r.number.number.as_str().to_string())
    }

    fn pick_reclaim(&self, now: DateTime<Utc>) -> Option<String> {
        self.numbers
            .values()
            .filter(|r| r.leased_until.is_none_or(|u| u <= now))
            .filter(|r| r.locked_until.is_some_and(|u| u > now))
            .min_by_key(|r| (r.leased_until, r.number.number.as_str()))
            .map(|r| r.number.number.as_str().to_string())
    }

    fn break_locks(&mut self, number: &str) -> Option<LeaseId> {
        let keys: Vec<_> = self.locks_on(number).map(|(k, _)| k.clone()).collect();
        let mut broken = None;
        for k in keys {
            if let Some(r) = self.locks.remove(&k) {
                broken = Some(r.lease);
            }
        }
        if let Some(row) = self.numbers.get_mut(number) {
            row.locked_until = None;
        }
        broken
    }

    fn grant(
        &mut self,
        req: &LeaseRequest,
        key: String,
        number: &str,
        grant: Grant,
    ) -> LeaseOutcome {
        let now = req.now;
        let expires_at = after(now, self.settings.lease_length);
        let Some(row) = self.numbers.get_mut(number) else {
            return LeaseOutcome::Exhausted;
        };
        let exclusive = row.leased_until.is_none_or(|u| u <= now);
        if exclusive {
            row.leased_until = Some(expires_at);
            row.lease_id = Some(req.lease_id.clone());
        }
        row.last_active = row.last_active.max(expires_at);
        let lease = Lease {
            id: req.lease_id.clone(),
            pool: req.pool.clone(),
            number: row.number.number.clone(),
            visitor: req.visitor.clone(),
            listing: req.listing.clone(),
            context: req.context.clone(),
            created_at: now,
            expires_at,
            exclusive,
        };
        self.by_key
            .entry(key.clone())
            .or_default()
            .push(lease.id.clone());
        self.by_visitor
            .entry(lease.visitor.clone())
            .or_default()
            .push(lease.id.clone());
        self.by_number
            .entry(number.to_string())
            .or_default()
            .push(lease.id.clone());
        self.leases.insert(lease.id.clone(), (key, lease.clone()));
        self.grants.push(now);
        LeaseOutcome::Leased { lease, grant }
    }

    fn extend(&mut self, id: &LeaseId, now: DateTime<Utc>) -> Option<Lease> {
        let len = self.settings.lease_length;
        let (_, lease) = self.leases.get_mut(id)?;
        let new_end = lease.expires_at.max(after(now, len));
        lease.expires_at = new_end;
        let lease = lease.clone();
        if let Some(row) = self.numbers.get_mut(lease.number.as_str()) {
            if lease.exclusive {
                row.leased_until = Some(row.leased_until.map_or(new_end, |u| u.max(new_end)));
            }
            row.last_active = row.last_active.max(new_end);
        }
        Some(lease)
    }

    fn lease(&mut self, req: &LeaseRequest) -> LeaseOutcome {
        let now = req.now;
        let key = self.settings.lease_key(&req.visitor, &req.listing);
        if let Some(id) = self.live_lease_for_key(&key, now) {
            if let Some(lease) = self.extend(&id, now) {
                return LeaseOutcome::Leased {
                    lease,
                    grant: Grant::Existing,
                };
            }
        }
        let limit = self.settings.max_leases_per_visitor;
        if self.live_for_visitor(&req.visitor, now) >= limit {
            return LeaseOutcome::VisitorCap { limit };
        }
        if let Some(n) = self.lock_for_key(&key, now) {
            if self.numbers.contains_key(&n) {
                return self.grant(req, key, &n, Grant::Locked);
            }
        }
        if let Some(n) = self.pick_free(&req.visitor, now) {
            return self.grant(req, key, &n, Grant::Fresh);
        }
        if self.settings.exhaustion == ExhaustionPolicy::ReclaimOldest {
            if let Some(n) = self.pick_reclaim(now) {
                if let Some(from) = self.break_locks(&n) {
                    return self.grant(req, key, &n, Grant::Reclaimed { from });
                }
            }
        }
        self.overflows.push(now);
        match &self.settings.overflow_number {
            Some(number) => LeaseOutcome::Overflow {
                number: number.clone(),
            },
            None => LeaseOutcome::Exhausted,
        }
    }

    fn attribute(&self, call: &InboundCall) -> Attribution {
        let at = call.at;
        let num = call.dialed.as_str();
        if self.settings.overflow_number.as_ref() == Some(&call.dialed) {
            return Attribution::Overflow {
                number: call.dialed.clone(),
            };
        }
        if !self.numbers.contains_key(num) {
            return Attribution::UnknownNumber {
                number: call.dialed.clone(),
            };
        }
        let caller = call.caller.as_ref().map(|c| c.as_str()).unwrap_or("");
        let lock = [caller, ""]
            .iter()
            .filter_map(|c| self.locks.get(&(num.to_string(), c.to_string())))
            .find(|r| r.from <= at && at < r.until);
        let on_number = || self.indexed(self.by_number.get(num));
        if let Some(lock) = lock {
            let same_key_live = on_number()
                .filter(|(k, l)| *k == lock.key && l.is_live(at))
                .max_by_key(|(_, l)| (l.created_at, l.id.clone()));
            if let Some((_, l)) = same_key_live {
                return Attribution::Attributed {
                    lease: l.clone(),
                    via: Via::Lease,
                };
            }
            if let Some((_, l)) = self.leases.get(&lock.lease) {
                return Attribution::Attributed {
                    lease: l.clone(),
                    via: Via::Lock,
                };
            }
        }
        let live = on_number()
            .filter(|(_, l)| l.is_live(at))
            .max_by_key(|(_, l)| (l.exclusive, l.created_at, l.id.clone()));
        if let Some((_, l)) = live {
            return Attribution::Attributed {
                lease: l.clone(),
                via: Via::Lease,
            };
        }
        let last = on_number()
            .filter(|(_, l)| l.created_at <= at)
            .max_by_key(|(_, l)| (l.created_at, l.id.clone()))
            .map(|(_, l)| l.clone());
        Attribution::ExpiredLease { last }
    }

    fn record_call(&mut self, call: &InboundCall) -> Attribution {
        if let Some((_, a)) = self.calls.get(&call.call_sid) {
            return a.clone();
        }
        let a = self.attribute(call);
        if let Attribution::Attributed { lease, .. } = &a {
            self.lock_number(call, lease);
        }
        self.calls
            .insert(call.call_sid.clone(), (call.at, a.clone()));
        a
    }

    fn lock_number(&mut self, call: &InboundCall, lease: &Lease) {
        let until = after(call.at, self.settings.lock_period);
        let caller = match (&self.settings.lock_key, &call.caller) {
            (LockKey::NumberAndCaller, Some(c)) => c.as_str().to_string(),
            _ => String::new(),
        };
        let key = self.settings.lease_key(&lease.visitor, &lease.listing);
        let num = lease.number.as_str().to_string();
        let entry = self.locks.entry((num.clone(), caller.clone()));
        let row = LockRow {
            lease: lease.id.clone(),
            key,
            visitor: lease.visitor.clone(),
            from: call.at,
            until,
        };
        match entry {
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let old = o.get().until;
                let mut row = row;
                row.until = row.until.max(old);
                o.insert(row);
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(row);
            }
        }
        if let Some(r) = self.numbers.get_mut(&num) {
            if caller.is_empty() {
                r.locked_until = Some(r.locked_until.map_or(until, |u| u.max(until)));
            }
            r.last_active = r.last_active.max(call.at);
        }
    }

    fn state_of(&self, r: &NumRow, now: DateTime<Utc>) -> NumberState {
        if r.leased_until.is_some_and(|u| u > now) {
            NumberState::Leased
        } else if r.locked_until.is_some_and(|u| u > now) {
            NumberState::Locked
        } else {
            NumberState::Free
        }
    }

    fn health(&self, since: DateTime<Utc>, now: DateTime<Utc>, idle_after: Duration) -> PoolHealth {
        let mut h = PoolHealth {
            numbers: self.numbers.len() as u64,
            ..PoolHealth::default()
        };
        let idle_before = now
            .checked_sub_signed(chrono_dur(idle_after))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        for r in self.numbers.values() {
            match self.state_of(r, now) {
                NumberState::Leased => h.leased += 1,
                NumberState::Locked => h.locked += 1,
                _ => {
                    h.free += 1;
                    if r.last_active < idle_before {
                        h.idle += 1;
                    }
                }
            }
        }
        h.peak_leased = peak_concurrency(
            self.leases
                .values()
                .filter(|(_, l)| l.exclusive && l.created_at <= now && l.expires_at > since)
                .map(|(_, l)| (l.created_at.max(since), l.expires_at.min(now))),
        );
        let in_window = |t: &DateTime<Utc>| *t >= since && *t <= now;
        h.leases_granted = self.grants.iter().filter(|t| in_window(t)).count() as u64;
        h.lease_overflows = self.overflows.iter().filter(|t| in_window(t)).count() as u64;
        for (at, a) in self.calls.values() {
            if in_window(at) {
                *h.calls.entry(a.kind().to_string()).or_default() += 1;
            }
        }
        h
    }

    fn purge(&mut self, before: DateTime<Utc>) -> u64 {
        self.locks.retain(|_, r| r.until >= before);
        let locked: std::collections::HashSet<LeaseId> =
            self.locks.values().map(|r| r.lease.clone()).collect();
        let n = self.leases.len();
        self.leases
            .retain(|id, (_, l)| l.expires_at >= before || locked.contains(id));
        let leases = &self.leases;
        for ids in self
            .by_key
            .values_mut()
            .chain(self.by_visitor.values_mut())
            .chain(self.by_number.values_mut())
        {
            ids.retain(|id| leases.contains_key(id));
        }
        self.calls.retain(|_, (at, _)| *at >= before);
        self.overflows.retain(|t| *t >= before);
        self.grants.retain(|t| *t >= before);
        (n - self.leases.len()) as u64
    }
}

#[async_trait]
impl NumberPoolStore for MemoryNumberPoolStore {
    async fn put_pool(&self, pool: &NumberPool, now: DateTime<Utc>) -> Result<(), StateError> {
        let mut g = self.lock();
        let mut settings = pool.clone();
        settings.numbers.clear();
        let st = g.entry(pool.id.clone()).or_insert_with(|| PoolState {
            settings: settings.clone(),
            numbers: BTreeMap::new(),
            leases: HashMap::new(),
            by_key: HashMap::new(),
            by_visitor: HashMap::new(),
            by_number: HashMap::new(),
            locks: BTreeMap::new(),
            calls: HashMap::new(),
            overflows: Vec::new(),
            grants: Vec::new(),
        });
        st.settings = settings;
        add(st, &pool.numbers, now);
        Ok(())
    }

    async fn pool(&self, pool: &super::PoolId) -> Result<Option<NumberPool>, StateError> {
        let g = self.lock();
        Ok(g.get(pool).map(|st| {
            let mut p = st.settings.clone();
            p.numbers = st.numbers.values().map(|r| r.number.clone()).collect();
            p
        }))
    }

    async fn add_numbers(
        &self,
        pool: &super::PoolId,
        numbers: &[PoolNumber],
        now: DateTime<Utc>,
    ) -> Result<u64, StateError> {
        let mut g = self.lock();
        let st = g.get_mut(pool).ok_or_else(|| unknown_pool(pool))?;
        Ok(add(st, numbers, now))
    }

    async fn retire_number(
        &self,
        pool: &super::PoolId,
        number: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let mut g = self.lock();
        let Some(st) = g.get_mut(pool) else {
            return Ok(false);
        };
        let Some(row) = st.numbers.get(number.as_str()) else {
            return Ok(false);
        };
        let any_lock = st.locks_on(number.as_str()).any(|(_, r)| r.until > now);
        if st.state_of(row, now) != NumberState::Free || any_lock {
            return Ok(false);
        }
        st.numbers.remove(number.as_str());
        Ok(true)
    }

    async fn numbers(
        &self,
        pool: &super::PoolId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NumberStatus>, StateError> {
        let g = self.lock();
        let Some(st) = g.get(pool) else {
            return Ok(Vec::new());
        };
        Ok(st
            .numbers
            .values()
            .map(|r| NumberStatus {
                number: r.number.clone(),
                state: st.state_of(r, now),
                added_at: r.added_at,
                last_active: r.last_active,
            })
            .collect())
    }

    async fn lease(&self, request: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
        request.context.validate()?;
        let mut g = self.lock();
        Ok(match g.get_mut(&request.pool) {
            Some(st) => st.lease(request),
            None => LeaseOutcome::UnknownPool,
        })
    }

    async fn renew(
        &self,
        pool: &super::PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<RenewOutcome, StateError> {
        let mut g = self.lock();
        let Some(st) = g.get_mut(pool) else {
            return Ok(RenewOutcome::Unknown);
        };
        let Some((_, l)) = st.leases.get(lease) else {
            return Ok(RenewOutcome::Unknown);
        };
        if l.expires_at <= now || !st.owns(l) {
            return Ok(RenewOutcome::Ended { at: l.expires_at });
        }
        Ok(match st.extend(lease, now) {
            Some(l) => RenewOutcome::Renewed {
                expires_at: l.expires_at,
            },
            None => RenewOutcome::Unknown,
        })
    }

    async fn release(
        &self,
        pool: &super::PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let mut g = self.lock();
        let Some(st) = g.get_mut(pool) else {
            return Ok(false);
        };
        match st.leases.get(lease) {
            Some((_, l)) if l.is_live(now) && st.owns(l) => {}
            _ => return Ok(false),
        }
        let Some((_, l)) = st.leases.get_mut(lease) else {
            return Ok(false);
        };
        l.expires_at = now;
        let (num, exclusive) = (l.number.as_str().to_string(), l.exclusive);
        if let Some(row) = st.numbers.get_mut(&num) {
            if exclusive {
                row.leased_until = Some(now);
            }
        }
        Ok(true)
    }

    async fn attribute(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        let g = self.lock();
        Ok(match g.get(&call.pool) {
            Some(st) => st.attribute(call),
            None => Attribution::UnknownNumber {
                number: call.dialed.clone(),
            },
        })
    }

    async fn record_call(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        let mut g = self.lock();
        Ok(match g.get_mut(&call.pool) {
            Some(st) => st.record_call(call),
            None => Attribution::UnknownNumber {
                number: call.dialed.clone(),
            },
        })
    }

    async fn purge(&self, pool: &super::PoolId, before: DateTime<Utc>) -> Result<u64, StateError> {
        let mut g = self.lock();
        Ok(g.get_mut(pool).map_or(0, |st| st.purge(before)))
    }

    async fn health(
        &self,
        pool: &super::PoolId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        idle_after: Duration,
    ) -> Result<PoolHealth, StateError> {
        let g = self.lock();
        Ok(g.get(pool)
            .map(|st| st.health(since, now, idle_after))
            .unwrap_or_default())
    }

    async fn leases_created(
        &self,
        pool: &super::PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Lease>, StateError> {
        let g = self.lock();
        let mut out: Vec<Lease> = g
            .get(pool)
            .map(|st| {
                st.leases
                    .values()
                    .map(|(_, l)| l)
                    .filter(|l| l.created_at >= since && l.created_at < until)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn calls_recorded(
        &self,
        pool: &super::PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<super::RecordedCall>, StateError> {
        let g = self.lock();
        let mut out: Vec<super::RecordedCall> = g
            .get(pool)
            .map(|st| {
                st.calls
                    .iter()
                    .filter(|(_, (at, _))| *at >= since && *at < until)
                    .map(|(sid, (at, a))| super::RecordedCall::new(sid.clone(), *at, a.clone()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (a.at, &a.call_sid).cmp(&(b.at, &b.call_sid)));
        Ok(out)
    }
}

fn add(st: &mut PoolState, numbers: &[PoolNumber], now: DateTime<Utc>) -> u64 {
    let mut added = 0;
    for n in numbers {
        if st.settings.overflow_number.as_ref() == Some(&n.number) {
            continue;
        }
        st.numbers
            .entry(n.number.as_str().to_string())
            .or_insert_with(|| {
                added += 1;
                NumRow {
                    number: n.clone(),
                    added_at: now,
                    leased_until: None,
                    lease_id: None,
                    locked_until: None,
                    last_active: now,
                }
            });
    }
    added
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pool::conformance;

    #[tokio::test]
    async fn memory_passes_the_suite() {
        conformance::pool_store(&MemoryNumberPoolStore::new(), "m")
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_concurrency() {
        let s: Arc<dyn NumberPoolStore> = Arc::new(MemoryNumberPoolStore::new());
        let leases = conformance::pool_concurrency(s.clone(), s, "m", 500, 20)
            .await
            .unwrap();
        assert!(leases.len() > 100);
    }
}

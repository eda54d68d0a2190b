//! The per-listing report of call tracking (seed 003): for each listing, publisher and
//! traffic source (UTM source, else the referrer's host, else `direct`), how many visitor
//! sessions saw a tracking number (views), how many of those called and how many did not,
//! the calls' total talk time and revenue. Views come from the pool store's leases,
//! calls from its recorded calls, durations and revenue from the call log.

use std::collections::{BTreeMap, BTreeSet};

use callbid_core::pool::{Lease, LeaseId, NumberPoolStore, PoolId};
use callbid_core::state::CallLog;
use callbid_core::{CallId, Money, StateError};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// One row of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    /// The listing, publisher or source.
    pub key: String,
    /// Visitor sessions shown a number (leases created in the window).
    pub views: u64,
    /// Of those, how many called at least once.
    pub called_views: u64,
    /// Views that were not called.
    pub not_called: u64,
    /// Calls attributed to these views (a view can be called more than once).
    pub calls: u64,
    /// Calls that were bridged (a talk time above zero).
    pub connected: u64,
    /// Calls billable to the buyer.
    pub billable: u64,
    /// Total talk time, seconds.
    pub duration_secs: u64,
    /// Total revenue (USD, to the cent); `"0"` without billable calls.
    pub revenue: String,
}

/// The report over one pool and window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolReport {
    /// The pool.
    pub pool: String,
    /// Rows by listing, by views then key.
    pub listings: Vec<ReportRow>,
    /// Rows by publisher (`none` when the lease named none).
    pub publishers: Vec<ReportRow>,
    /// Rows by traffic source.
    pub sources: Vec<ReportRow>,
    /// Calls in the window the pool could not attribute, by kind (`overflow`,
    /// `expired_lease`, `unknown_number`).
    pub unattributed: BTreeMap<String, u64>,
}

/// What one call contributed.
#[derive(Debug, Default, Clone, Copy)]
struct CallFacts {
    connected: bool,
    billable: bool,
    duration: u64,
    revenue: Decimal,
}

#[derive(Debug, Default)]
struct Acc {
    views: BTreeSet<LeaseId>,
    called: BTreeSet<LeaseId>,
    calls: u64,
    connected: u64,
    billable: u64,
    duration: u64,
    revenue: Decimal,
}

impl Acc {
    fn add_call(&mut self, lease: &LeaseId, f: CallFacts) {
        self.called.insert(lease.clone());
        self.calls += 1;
        self.connected += u64::from(f.connected);
        self.billable += u64::from(f.billable);
        self.duration += f.duration;
        self.revenue += f.revenue;
    }

    fn row(self, key: String) -> ReportRow {
        let views = self.views.len() as u64;
        let called_views = self.called.intersection(&self.views).count() as u64;
        ReportRow {
            key,
            views,
            called_views,
            not_called: views - called_views,
            calls: self.calls,
            connected: self.connected,
            billable: self.billable,
            duration_secs: self.duration,
            revenue: self.revenue.round_dp(2).to_string(),
        }
    }
}

/// The three groupings of one lease.
fn keys(l: &Lease) -> [String; 3] {
    let publisher = l
        .context
        .publisher
        .as_ref()
        .map_or_else(|| "none".to_owned(), ToString::to_string);
    let source = l
        .context
        .source
        .clone()
        .or_else(|| l.context.utm.source.clone())
        .unwrap_or_else(|| "direct".to_owned());
    [l.listing.to_string(), publisher, source]
}

async fn facts(log: &dyn CallLog, sid: &str) -> Result<CallFacts, StateError> {
    let Ok(id) = CallId::new(sid) else {
        return Ok(CallFacts::default());
    };
    let Some(r) = log.record(&id).await? else {
        return Ok(CallFacts::default());
    };
    let duration = r.duration_secs.unwrap_or(0);
    let billable = r.billable.unwrap_or(false);
    Ok(CallFacts {
        connected: duration > 0,
        billable,
        duration,
        revenue: if billable {
            // USD only: callbid's buyers bid in dollars; another currency is not summed.
            r.revenue
                .filter(|m: &Money| m.currency.as_str() == "USD")
                .map_or(Decimal::ZERO, |m| m.amount)
        } else {
            Decimal::ZERO
        },
    })
}

/// Builds the report of `pool` over `[since, until)`: views are the leases created in
/// the window; calls are the calls recorded in it (a call attributed to a lease from
/// before the window counts for the lease's listing, not as a view).
pub async fn build(
    store: &dyn NumberPoolStore,
    log: &dyn CallLog,
    pool: &PoolId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<PoolReport, StateError> {
    let mut groups: [BTreeMap<String, Acc>; 3] = Default::default();
    for l in store.leases_created(pool, since, until).await? {
        for (g, k) in groups.iter_mut().zip(keys(&l)) {
            g.entry(k).or_default().views.insert(l.id.clone());
        }
    }
    let mut unattributed = BTreeMap::new();
    for c in store.calls_recorded(pool, since, until).await? {
        let Some(lease) = c.attribution.lease() else {
            *unattributed
                .entry(c.attribution.kind().to_owned())
                .or_insert(0) += 1;
            continue;
        };
        let f = facts(log, &c.call_sid).await?;
        for (g, k) in groups.iter_mut().zip(keys(lease)) {
            g.entry(k).or_default().add_call(&lease.id, f);
        }
    }
    let [listings, publishers, sources] = groups.map(rows);
    Ok(PoolReport {
        pool: pool.to_string(),
        listings,
        publishers,
        sources,
        unattributed,
    })
}

fn rows(g: BTreeMap<String, Acc>) -> Vec<ReportRow> {
    let mut v: Vec<ReportRow> = g.into_iter().map(|(k, a)| a.row(k)).collect();
    v.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.key.cmp(&b.key)));
    v
}

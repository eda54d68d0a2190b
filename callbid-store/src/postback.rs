//! Row mapping of the `postbacks` table (migration `0012_postbacks`), shared by the
//! SQLite and PostgreSQL [`PostbackOutbox`](callbid_core::state::PostbackOutbox)
//! implementations: both store a [`PostbackDelivery`] column by column and decide an
//! attempt with core's [`PostbackDelivery::apply`] under the row's lock.

use callbid_core::state::{DeliveryState, PostbackDelivery};
use callbid_core::CallId;

use crate::codec::{from_ns, to_ns};
use crate::error::{Result, StoreError};

/// The columns, in [`Raw`]'s order.
pub(crate) const COLUMNS: &str = "call_id, publisher, state, created_ns, attempts, next_ns, \
     last_attempt_ns, last_status, last_error, url, delivered_ns, holder, lease_until_ns";

/// One row as stored (times in ns since the epoch).
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) call_id: String,
    pub(crate) publisher: String,
    pub(crate) state: String,
    pub(crate) created_ns: i64,
    pub(crate) attempts: i64,
    pub(crate) next_ns: Option<i64>,
    pub(crate) last_attempt_ns: Option<i64>,
    pub(crate) last_status: Option<i64>,
    pub(crate) last_error: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) delivered_ns: Option<i64>,
    pub(crate) holder: Option<String>,
    pub(crate) lease_until_ns: Option<i64>,
}

fn opt_ns(field: &'static str, t: Option<chrono::DateTime<chrono::Utc>>) -> Result<Option<i64>> {
    t.map(|t| to_ns(field, t)).transpose()
}

impl Raw {
    /// The row of `d`.
    pub(crate) fn of(d: &PostbackDelivery) -> Result<Raw> {
        Ok(Raw {
            call_id: d.call.as_str().to_owned(),
            publisher: d.publisher.clone(),
            state: d.state.as_str().to_owned(),
            created_ns: to_ns("created_at", d.created_at)?,
            attempts: i64::from(d.attempts),
            next_ns: opt_ns("next_attempt_at", d.next_attempt_at)?,
            last_attempt_ns: opt_ns("last_attempt_at", d.last_attempt_at)?,
            last_status: d.last_status.map(i64::from),
            last_error: d.last_error.clone(),
            url: d.url.clone(),
            delivered_ns: opt_ns("delivered_at", d.delivered_at)?,
            holder: d.holder.clone(),
            lease_until_ns: opt_ns("lease_until", d.lease_until)?,
        })
    }

    /// The delivery this row stores.
    pub(crate) fn delivery(self, op: &'static str) -> Result<PostbackDelivery> {
        let bad = |what: &str, v: &dyn std::fmt::Display| {
            StoreError::corrupt(op, format!("postback {what} {v} of call {}", self.call_id))
        };
        let call = CallId::new(self.call_id.clone()).map_err(|e| bad("call id", &e))?;
        let state = DeliveryState::parse(&self.state).map_err(|e| bad("state", &e))?;
        let attempts = u32::try_from(self.attempts).map_err(|_| bad("attempts", &self.attempts))?;
        let last_status = self
            .last_status
            .map(|s| u16::try_from(s).map_err(|_| bad("status", &s)))
            .transpose()?;
        let mut d =
            PostbackDelivery::new(call, self.publisher, from_ns(self.created_ns), from_ns(0));
        d.state = state;
        d.attempts = attempts;
        d.next_attempt_at = self.next_ns.map(from_ns);
        d.last_attempt_at = self.last_attempt_ns.map(from_ns);
        d.last_status = last_status;
        d.last_error = self.last_error;
        d.url = self.url;
        d.delivered_at = self.delivered_ns.map(from_ns);
        d.holder = self.holder;
        d.lease_until = self.lease_until_ns.map(from_ns);
        Ok(d)
    }
}

/// Sorts claimed deliveries earliest due first (then by call and publisher).
pub(crate) fn sort_due(v: &mut [PostbackDelivery]) {
    v.sort_by(|a, b| {
        (a.next_attempt_at, a.call.as_str(), &a.publisher).cmp(&(
            b.next_attempt_at,
            b.call.as_str(),
            &b.publisher,
        ))
    });
}

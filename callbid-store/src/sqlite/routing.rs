//! [`RoutingStore`] on SQLite: each claim and decision runs under SQLite's write lock
//! (in the call log's group commit, see `appends::Job`: a savepoint of a shared
//! `BEGIN IMMEDIATE` transaction on the writer connection), so two processes sharing
//! the file never both claim a step or both decide it, and a claim or decision is
//! answered only once it is synced.

use async_trait::async_trait;
use callbid_core::state::routing::{claim_on, ClaimStep};
use callbid_core::state::{RouteClaim, RouteDecision, RoutingStore};
use callbid_core::{CallId, StateError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::codec::{from_ns, to_ns};
use crate::error::{Result, StoreError};

type RouteRow = (String, i64, Option<String>);

fn row(tx: &Connection, op: &'static str, call: &str, step: &str) -> Result<Option<RouteRow>> {
    tx.prepare_cached(
        "SELECT holder, lease_until_ns, twiml FROM routes WHERE call_id = ?1 AND step = ?2",
    )
    .and_then(|mut st| {
        st.query_row(params![call, step], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
    })
    .map_err(StoreError::sqlite(op))
}

#[async_trait]
impl RoutingStore for SqliteStore {
    async fn claim_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<RouteClaim, StateError> {
        const OP: &str = "claim_route";
        let conv = || Ok::<_, StoreError>((to_ns("now", now)?, to_ns("lease_until", lease_until)?));
        let (now_ns, until_ns) = conv().map_err(|e| e.into_state(OP))?;
        let (call, step, holder) = (call.as_str().to_owned(), step.to_owned(), holder.to_owned());
        self.write_grouped(OP, move |tx| {
            let out = match row(tx, OP, &call, &step)? {
                None => {
                    tx.prepare_cached(
                        "INSERT INTO routes (call_id, step, holder, lease_until_ns, at_ns) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .and_then(|mut st| st.execute(params![call, step, holder, until_ns, now_ns]))
                    .map_err(StoreError::sqlite(OP))?;
                    RouteClaim::Claimed { took_over: false }
                }
                Some((h, until, twiml)) => {
                    match claim_on(
                        &holder,
                        from_ns(now_ns),
                        &h,
                        from_ns(until),
                        twiml.as_deref(),
                    ) {
                        ClaimStep::Decided(t) => RouteClaim::Decided(t),
                        ClaimStep::Busy => RouteClaim::Busy {
                            holder: h,
                            until: from_ns(until),
                        },
                        ClaimStep::Take { took_over } => {
                            tx.prepare_cached(
                                "UPDATE routes SET holder = ?3, lease_until_ns = ?4, at_ns = ?5 \
                                 WHERE call_id = ?1 AND step = ?2",
                            )
                            .and_then(|mut st| {
                                st.execute(params![call, step, holder, until_ns, now_ns])
                            })
                            .map_err(StoreError::sqlite(OP))?;
                            RouteClaim::Claimed { took_over }
                        }
                    }
                }
            };
            Ok(out)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn decide_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        twiml: &str,
        now: DateTime<Utc>,
    ) -> Result<RouteDecision, StateError> {
        const OP: &str = "decide_route";
        let now_ns = to_ns("now", now).map_err(|e| e.into_state(OP))?;
        let (call, step) = (call.as_str().to_owned(), step.to_owned());
        let (holder, twiml) = (holder.to_owned(), twiml.to_owned());
        self.write_grouped(OP, move |tx| {
            if let Some((_, _, Some(earlier))) = row(tx, OP, &call, &step)? {
                return Ok(RouteDecision::Earlier(earlier));
            }
            tx.prepare_cached(
                "INSERT INTO routes (call_id, step, holder, lease_until_ns, twiml, at_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4) \
                 ON CONFLICT (call_id, step) DO UPDATE SET holder = excluded.holder, \
                 twiml = excluded.twiml, at_ns = excluded.at_ns",
            )
            .and_then(|mut st| st.execute(params![call, step, holder, now_ns, twiml]))
            .map_err(StoreError::sqlite(OP))?;
            Ok(RouteDecision::Mine)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn release_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
    ) -> Result<bool, StateError> {
        const OP: &str = "release_route";
        let (call, step, holder) = (call.as_str().to_owned(), step.to_owned(), holder.to_owned());
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "DELETE FROM routes WHERE call_id = ?1 AND step = ?2 AND holder = ?3 \
                     AND twiml IS NULL",
                    params![call, step, holder],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn route_decision(
        &self,
        call: &CallId,
        step: &str,
    ) -> Result<Option<String>, StateError> {
        const OP: &str = "route_decision";
        let (call, step) = (call.as_str().to_owned(), step.to_owned());
        self.read_point(OP, move |c| {
            c.query_row(
                "SELECT twiml FROM routes WHERE call_id = ?1 AND step = ?2",
                params![call, step],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(StoreError::sqlite(OP))
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn prune_routes(&self, before: DateTime<Utc>) -> Result<u64, StateError> {
        const OP: &str = "prune_routes";
        let b = to_ns("before", before).map_err(|e| e.into_state(OP))?;
        self.write(OP, move |c| {
            let n = c
                .execute("DELETE FROM routes WHERE at_ns < ?1", [b])
                .map_err(StoreError::sqlite(OP))?;
            Ok(n as u64)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }
}

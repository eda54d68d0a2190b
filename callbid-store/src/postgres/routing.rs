//! [`RoutingStore`] on PostgreSQL. A claim or decision inserts the row if it is missing
//! (`ON CONFLICT DO NOTHING`: of concurrent inserts exactly one lands, the others wait
//! for it), else locks it (`SELECT … FOR UPDATE`) and decides under the lock, so
//! instances sharing one database never both claim or both decide a step.

use async_trait::async_trait;
use callbid_core::state::routing::{claim_on, ClaimStep};
use callbid_core::state::{RouteClaim, RouteDecision, RoutingStore};
use callbid_core::{CallId, StateError};
use chrono::{DateTime, Utc};

use super::{pg, PgStore};
use crate::codec::{from_ns, to_ns};
use crate::error::{Result, StoreError};

#[async_trait]
impl RoutingStore for PgStore {
    async fn claim_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<RouteClaim, StateError> {
        const OP: &str = "claim_route";
        async {
            let (now_ns, until_ns) = (to_ns("now", now)?, to_ns("lease_until", lease_until)?);
            let mut c = self.client(OP).await?;
            // The common case, a step nobody holds, is one autocommit statement; a step
            // already held is looked at under its row lock in a transaction.
            let insert = c
                .prepare_cached(
                    "INSERT INTO routes (call_id, step, holder, lease_until_ns, at_ns) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_id, step) DO NOTHING",
                )
                .await
                .map_err(pg(OP))?;
            let inserted = c
                .execute(
                    &insert,
                    &[&call.as_str(), &step, &holder, &until_ns, &now_ns],
                )
                .await
                .map_err(pg(OP))?;
            if inserted == 1 {
                return Ok(RouteClaim::Claimed { took_over: false });
            }
            let tx = c.transaction().await.map_err(pg(OP))?;
            let r = tx
                .query_one(
                    "SELECT holder, lease_until_ns, twiml FROM routes \
                     WHERE call_id = $1 AND step = $2 FOR UPDATE",
                    &[&call.as_str(), &step],
                )
                .await
                .map_err(pg(OP))?;
            let (h, until, twiml): (String, i64, Option<String>) = (
                r.try_get(0).map_err(pg(OP))?,
                r.try_get(1).map_err(pg(OP))?,
                r.try_get(2).map_err(pg(OP))?,
            );
            let out = match claim_on(holder, now, &h, from_ns(until), twiml.as_deref()) {
                ClaimStep::Decided(t) => RouteClaim::Decided(t),
                ClaimStep::Busy => RouteClaim::Busy {
                    holder: h,
                    until: from_ns(until),
                },
                ClaimStep::Take { took_over } => {
                    tx.execute(
                        "UPDATE routes SET holder = $3, lease_until_ns = $4, at_ns = $5 \
                         WHERE call_id = $1 AND step = $2",
                        &[&call.as_str(), &step, &holder, &until_ns, &now_ns],
                    )
                    .await
                    .map_err(pg(OP))?;
                    RouteClaim::Claimed { took_over }
                }
            };
            tx.commit().await.map_err(pg(OP))?;
            Ok::<_, StoreError>(out)
        }
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
        async {
            let now_ns = to_ns("now", now)?;
            let mut c = self.client(OP).await?;
            // The common case, deciding a step this request claimed, is one autocommit
            // statement: the row exists and holds no decision yet. (A concurrent decision
            // makes it wait on the row lock and then find `twiml` set: 0 rows.) Anything
            // else goes through the transaction below.
            let fast = c
                .prepare_cached(
                    "UPDATE routes SET holder = $3, twiml = $4, at_ns = $5 \
                     WHERE call_id = $1 AND step = $2 AND twiml IS NULL",
                )
                .await
                .map_err(pg(OP))?;
            let updated = c
                .execute(&fast, &[&call.as_str(), &step, &holder, &twiml, &now_ns])
                .await
                .map_err(pg(OP))?;
            if updated == 1 {
                return Ok(RouteDecision::Mine);
            }
            let tx = c.transaction().await.map_err(pg(OP))?;
            let inserted = tx
                .execute(
                    "INSERT INTO routes (call_id, step, holder, lease_until_ns, twiml, at_ns) \
                     VALUES ($1, $2, $3, $4, $5, $4) ON CONFLICT (call_id, step) DO NOTHING",
                    &[&call.as_str(), &step, &holder, &now_ns, &twiml],
                )
                .await
                .map_err(pg(OP))?;
            if inserted == 0 {
                let earlier: Option<String> = tx
                    .query_one(
                        "SELECT twiml FROM routes WHERE call_id = $1 AND step = $2 FOR UPDATE",
                        &[&call.as_str(), &step],
                    )
                    .await
                    .map_err(pg(OP))?
                    .try_get(0)
                    .map_err(pg(OP))?;
                if let Some(t) = earlier {
                    return Ok(RouteDecision::Earlier(t));
                }
                tx.execute(
                    "UPDATE routes SET holder = $3, twiml = $4, at_ns = $5 \
                     WHERE call_id = $1 AND step = $2",
                    &[&call.as_str(), &step, &holder, &twiml, &now_ns],
                )
                .await
                .map_err(pg(OP))?;
            }
            tx.commit().await.map_err(pg(OP))?;
            Ok::<_, StoreError>(RouteDecision::Mine)
        }
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
        async {
            let c = self.client(OP).await?;
            let n = c
                .execute(
                    "DELETE FROM routes WHERE call_id = $1 AND step = $2 AND holder = $3 \
                     AND twiml IS NULL",
                    &[&call.as_str(), &step, &holder],
                )
                .await
                .map_err(pg(OP))?;
            Ok::<_, StoreError>(n == 1)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn route_decision(
        &self,
        call: &CallId,
        step: &str,
    ) -> Result<Option<String>, StateError> {
        const OP: &str = "route_decision";
        async {
            let c = self.client(OP).await?;
            let r = c
                .query_opt(
                    "SELECT twiml FROM routes WHERE call_id = $1 AND step = $2",
                    &[&call.as_str(), &step],
                )
                .await
                .map_err(pg(OP))?;
            match r {
                Some(r) => r.try_get::<_, Option<String>>(0).map_err(pg(OP)),
                None => Ok(None),
            }
        }
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn prune_routes(&self, before: DateTime<Utc>) -> Result<u64, StateError> {
        const OP: &str = "prune_routes";
        async {
            let b = to_ns("before", before)?;
            let c = self.client(OP).await?;
            c.execute("DELETE FROM routes WHERE at_ns < $1", &[&b])
                .await
                .map_err(pg(OP))
        }
        .await
        .map_err(|e| e.into_state(OP))
    }
}

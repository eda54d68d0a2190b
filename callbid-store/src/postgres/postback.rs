//! [`PostbackOutbox`] on PostgreSQL. A claim is one `UPDATE … FROM (SELECT … FOR UPDATE
//! SKIP LOCKED)`: rows another instance is claiming are skipped, and a row it claimed
//! meanwhile is re-checked against its new lease, so no two instances sharing one
//! database hold the same delivery at once. An attempt is recorded under the row's lock
//! (`SELECT … FOR UPDATE`) with core's `PostbackDelivery::apply`.

use async_trait::async_trait;
use callbid_core::state::{DeliveryState, PostbackAttempt, PostbackDelivery, PostbackOutbox};
use callbid_core::{CallId, StateError};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{pg, PgStore};
use crate::codec::to_ns;
use crate::error::{Result, StoreError};
use crate::postback::{sort_due, Raw, COLUMNS};

fn raw(r: &Row) -> Result<Raw> {
    const OP: &str = "postbacks";
    let int = |i: usize| -> Result<Option<i64>> {
        Ok(r.try_get::<_, Option<i32>>(i)
            .map_err(pg(OP))?
            .map(i64::from))
    };
    Ok(Raw {
        call_id: r.try_get(0).map_err(pg(OP))?,
        publisher: r.try_get(1).map_err(pg(OP))?,
        state: r.try_get(2).map_err(pg(OP))?,
        created_ns: r.try_get(3).map_err(pg(OP))?,
        attempts: int(4)?.unwrap_or(0),
        next_ns: r.try_get(5).map_err(pg(OP))?,
        last_attempt_ns: r.try_get(6).map_err(pg(OP))?,
        last_status: int(7)?,
        last_error: r.try_get(8).map_err(pg(OP))?,
        url: r.try_get(9).map_err(pg(OP))?,
        delivered_ns: r.try_get(10).map_err(pg(OP))?,
        holder: r.try_get(11).map_err(pg(OP))?,
        lease_until_ns: r.try_get(12).map_err(pg(OP))?,
    })
}

fn int4(op: &'static str, v: Option<i64>) -> Result<Option<i32>> {
    v.map(|v| {
        i32::try_from(v).map_err(|_| StoreError::corrupt(op, format!("{v} overflows INTEGER")))
    })
    .transpose()
}

impl PgStore {
    async fn pb_enqueue(&self, d: &PostbackDelivery) -> Result<bool> {
        const OP: &str = "enqueue_postback";
        let r = Raw::of(d)?;
        let c = self.client(OP).await?;
        let (attempts, status) = (int4(OP, Some(r.attempts))?, int4(OP, r.last_status)?);
        let n = c
            .execute(
                &format!(
                    "INSERT INTO postbacks ({COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (call_id, publisher) DO NOTHING"
                ),
                &[
                    &r.call_id,
                    &r.publisher,
                    &r.state,
                    &r.created_ns,
                    &attempts,
                    &r.next_ns,
                    &r.last_attempt_ns,
                    &status,
                    &r.last_error,
                    &r.url,
                    &r.delivered_ns,
                    &r.holder,
                    &r.lease_until_ns,
                ],
            )
            .await
            .map_err(pg(OP))?;
        Ok(n == 1)
    }

    async fn pb_claim(&self, holder: &str, now: i64, until: i64, limit: i64) -> Result<Vec<Raw>> {
        const OP: &str = "claim_postbacks";
        let c = self.client(OP).await?;
        let cols = COLUMNS
            .split(", ")
            .map(|col| format!("p.{col}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = c
            .query(
                &format!(
                    "UPDATE postbacks p SET holder = $1, lease_until_ns = $2 FROM ( \
                     SELECT call_id, publisher FROM postbacks WHERE state = 'pending' \
                     AND next_ns <= $3 AND (lease_until_ns IS NULL OR lease_until_ns <= $3) \
                     ORDER BY next_ns, call_id, publisher LIMIT $4 FOR UPDATE SKIP LOCKED) d \
                     WHERE p.call_id = d.call_id AND p.publisher = d.publisher RETURNING {cols}"
                ),
                &[&holder, &until, &now, &limit],
            )
            .await
            .map_err(pg(OP))?;
        rows.iter().map(raw).collect()
    }

    async fn pb_record(
        &self,
        call: &str,
        publisher: &str,
        holder: &str,
        attempt: &PostbackAttempt,
    ) -> Result<bool> {
        const OP: &str = "record_postback_attempt";
        let mut c = self.client(OP).await?;
        let tx = c.transaction().await.map_err(pg(OP))?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM postbacks WHERE call_id = $1 AND publisher = $2 \
                     FOR UPDATE"
                ),
                &[&call, &publisher],
            )
            .await
            .map_err(pg(OP))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let mut d = raw(&row)?.delivery(OP)?;
        if d.state != DeliveryState::Pending || d.holder.as_deref() != Some(holder) {
            return Ok(false);
        }
        d.apply(attempt);
        let r = Raw::of(&d)?;
        let (attempts, status) = (int4(OP, Some(r.attempts))?, int4(OP, r.last_status)?);
        tx.execute(
            "UPDATE postbacks SET state = $3, attempts = $4, next_ns = $5, last_attempt_ns = $6, \
             last_status = $7, last_error = $8, url = $9, delivered_ns = $10, holder = $11, \
             lease_until_ns = $12 WHERE call_id = $1 AND publisher = $2",
            &[
                &r.call_id,
                &r.publisher,
                &r.state,
                &attempts,
                &r.next_ns,
                &r.last_attempt_ns,
                &status,
                &r.last_error,
                &r.url,
                &r.delivered_ns,
                &r.holder,
                &r.lease_until_ns,
            ],
        )
        .await
        .map_err(pg(OP))?;
        tx.commit().await.map_err(pg(OP))?;
        Ok(true)
    }

    async fn pb_list(&self, call: &str) -> Result<Vec<PostbackDelivery>> {
        const OP: &str = "postbacks";
        let c = self.client(OP).await?;
        let rows = c
            .query(
                &format!("SELECT {COLUMNS} FROM postbacks WHERE call_id = $1 ORDER BY publisher"),
                &[&call],
            )
            .await
            .map_err(pg(OP))?;
        rows.iter().map(|r| raw(r)?.delivery(OP)).collect()
    }
}

#[async_trait]
impl PostbackOutbox for PgStore {
    async fn enqueue_postback(&self, delivery: &PostbackDelivery) -> Result<bool, StateError> {
        self.pb_enqueue(delivery)
            .await
            .map_err(|e| e.into_state("enqueue_postback"))
    }

    async fn claim_postbacks(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PostbackDelivery>, StateError> {
        const OP: &str = "claim_postbacks";
        async {
            let (now_ns, until_ns) = (to_ns("now", now)?, to_ns("lease_until", lease_until)?);
            let rows = self
                .pb_claim(holder, now_ns, until_ns, i64::from(limit))
                .await?;
            let mut out = rows
                .into_iter()
                .map(|r| r.delivery(OP))
                .collect::<Result<Vec<_>>>()?;
            sort_due(&mut out);
            Ok::<_, StoreError>(out)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn record_postback_attempt(
        &self,
        call: &CallId,
        publisher: &str,
        holder: &str,
        attempt: &PostbackAttempt,
    ) -> Result<bool, StateError> {
        self.pb_record(call.as_str(), publisher, holder, attempt)
            .await
            .map_err(|e| e.into_state("record_postback_attempt"))
    }

    async fn postbacks(&self, call: &CallId) -> Result<Vec<PostbackDelivery>, StateError> {
        self.pb_list(call.as_str())
            .await
            .map_err(|e| e.into_state("postbacks"))
    }
}

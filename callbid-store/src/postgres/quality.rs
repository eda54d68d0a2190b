//! [`QualityHistory`] on PostgreSQL. A record inserts the call's outcome row if it is
//! missing (`ON CONFLICT DO NOTHING`: of concurrent inserts exactly one lands, the others
//! wait for it), else locks it (`SELECT … FOR UPDATE`) and decides under the lock; the
//! buckets move in the same transaction, so instances sharing one database count each
//! call once.

use async_trait::async_trait;
use callbid_core::state::{
    HistoryKey, QualityHistory, QualityObservation, QualityRecorded, QualitySignal, QualityStats,
};
use callbid_core::{CallId, StateError};
use tokio_postgres::Transaction;

use super::{pg, PgStore};
use crate::codec::{area_text, hour_value};
use crate::error::{Result, StoreError};

fn decode(op: &'static str, signal: &str, converted: bool) -> Result<QualityObservation> {
    let signal = QualitySignal::parse(signal)
        .ok_or_else(|| StoreError::corrupt(op, format!("unknown quality signal {signal:?}")))?;
    Ok(QualityObservation { signal, converted })
}

/// Adds (`sign` 1) or removes (`sign` -1) one outcome in every bucket of `keys`.
async fn bump(
    tx: &Transaction<'_>,
    op: &'static str,
    keys: &[HistoryKey],
    obs: &QualityObservation,
    sign: i64,
) -> Result<()> {
    let st = tx
        .prepare(
            "INSERT INTO quality_history \
             (buyer, area, hour_of_week, calls, converted, postback, transcript) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (buyer, area, hour_of_week) \
             DO UPDATE SET calls = quality_history.calls + excluded.calls, \
             converted = quality_history.converted + excluded.converted, \
             postback = quality_history.postback + excluded.postback, \
             transcript = quality_history.transcript + excluded.transcript",
        )
        .await
        .map_err(pg(op))?;
    let conv = sign * i64::from(obs.converted);
    let post = sign * i64::from(obs.signal == QualitySignal::Postback);
    let tran = sign * i64::from(obs.signal == QualitySignal::Transcript);
    for k in keys {
        let (area, hour) = (area_text(&k.area), hour_value(k.hour_of_week));
        tx.execute(
            &st,
            &[&k.buyer.as_str(), &area, &hour, &sign, &conv, &post, &tran],
        )
        .await
        .map_err(pg(op))?;
    }
    Ok(())
}

async fn record_tx(
    tx: &Transaction<'_>,
    op: &'static str,
    call: &str,
    keys: &[HistoryKey],
    obs: QualityObservation,
) -> Result<QualityRecorded> {
    let keys_json = serde_json::to_string(keys).map_err(|e| StoreError::corrupt(op, e))?;
    let inserted = tx
        .execute(
            "INSERT INTO quality_calls (call_id, signal, converted, keys) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (call_id) DO NOTHING",
            &[&call, &obs.signal.as_str(), &obs.converted, &keys_json],
        )
        .await
        .map_err(pg(op))?;
    if inserted == 1 {
        bump(tx, op, keys, &obs, 1).await?;
        return Ok(QualityRecorded {
            stored: obs,
            changed: true,
        });
    }
    let r = tx
        .query_one(
            "SELECT signal, converted, keys FROM quality_calls WHERE call_id = $1 FOR UPDATE",
            &[&call],
        )
        .await
        .map_err(pg(op))?;
    let (s, c, k): (String, bool, String) = (
        r.try_get(0).map_err(pg(op))?,
        r.try_get(1).map_err(pg(op))?,
        r.try_get(2).map_err(pg(op))?,
    );
    let old = decode(op, &s, c)?;
    if !obs.outranks(&old) {
        return Ok(QualityRecorded {
            stored: old,
            changed: false,
        });
    }
    let keys: Vec<HistoryKey> = serde_json::from_str(&k).map_err(|e| StoreError::corrupt(op, e))?;
    bump(tx, op, &keys, &old, -1).await?;
    bump(tx, op, &keys, &obs, 1).await?;
    tx.execute(
        "UPDATE quality_calls SET signal = $2, converted = $3 WHERE call_id = $1",
        &[&call, &obs.signal.as_str(), &obs.converted],
    )
    .await
    .map_err(pg(op))?;
    Ok(QualityRecorded {
        stored: obs,
        changed: true,
    })
}

#[async_trait]
impl QualityHistory for PgStore {
    async fn record(
        &self,
        call: &CallId,
        keys: &[HistoryKey],
        obs: QualityObservation,
    ) -> Result<QualityRecorded, StateError> {
        const OP: &str = "record_quality";
        async {
            let mut c = self.client(OP).await?;
            let tx = c.transaction().await.map_err(pg(OP))?;
            let out = record_tx(&tx, OP, call.as_str(), keys, obs).await?;
            tx.commit().await.map_err(pg(OP))?;
            Ok::<_, StoreError>(out)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn outcome(&self, call: &CallId) -> Result<Option<QualityObservation>, StateError> {
        const OP: &str = "quality_outcome";
        async {
            let c = self.client(OP).await?;
            let row = c
                .query_opt(
                    "SELECT signal, converted FROM quality_calls WHERE call_id = $1",
                    &[&call.as_str()],
                )
                .await
                .map_err(pg(OP))?;
            match row {
                None => Ok(None),
                Some(r) => {
                    let s: String = r.try_get(0).map_err(pg(OP))?;
                    let conv: bool = r.try_get(1).map_err(pg(OP))?;
                    decode(OP, &s, conv).map(Some)
                }
            }
        }
        .await
        .map_err(|e: StoreError| e.into_state(OP))
    }

    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<QualityStats>, StateError> {
        const OP: &str = "quality_stats";
        async {
            let c = self.client(OP).await?;
            let st = c
                .prepare_cached(
                    "SELECT calls, converted, postback, transcript FROM quality_history \
                     WHERE buyer = $1 AND area = $2 AND hour_of_week = $3",
                )
                .await
                .map_err(pg(OP))?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                let (area, hour) = (area_text(&k.area), hour_value(k.hour_of_week));
                let row = c
                    .query_opt(&st, &[&k.buyer.as_str(), &area, &hour])
                    .await
                    .map_err(pg(OP))?;
                out.push(match row {
                    None => QualityStats::default(),
                    Some(r) => QualityStats {
                        calls: n(r.try_get(0).map_err(pg(OP))?),
                        converted: n(r.try_get(1).map_err(pg(OP))?),
                        postback: n(r.try_get(2).map_err(pg(OP))?),
                        transcript: n(r.try_get(3).map_err(pg(OP))?),
                    },
                });
            }
            Ok::<_, StoreError>(out)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }
}

//! [`QualityHistory`] on SQLite: each record is one `BEGIN IMMEDIATE` transaction on the
//! writer connection (read the call's stored outcome, decide, move the buckets), so two
//! processes sharing the file never count a call twice.

use async_trait::async_trait;
use callbid_core::state::{
    HistoryKey, QualityHistory, QualityObservation, QualityRecorded, QualitySignal, QualityStats,
};
use callbid_core::{CallId, StateError};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::SqliteStore;
use crate::codec::{area_text, hour_value};
use crate::error::{Result, StoreError};

/// A stored outcome and its keys' JSON.
type Stored = (QualityObservation, String);

fn decode(op: &'static str, signal: &str, converted: bool) -> Result<QualityObservation> {
    let signal = QualitySignal::parse(signal)
        .ok_or_else(|| StoreError::corrupt(op, format!("unknown quality signal {signal:?}")))?;
    Ok(QualityObservation { signal, converted })
}

fn stored(tx: &Transaction<'_>, op: &'static str, call: &str) -> Result<Option<Stored>> {
    let row: Option<(String, bool, String)> = tx
        .query_row(
            "SELECT signal, converted, keys FROM quality_calls WHERE call_id = ?1",
            params![call],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(StoreError::sqlite(op))?;
    row.map(|(s, c, k)| Ok((decode(op, &s, c)?, k))).transpose()
}

/// Adds (`sign` 1) or removes (`sign` -1) one outcome in every bucket of `keys`.
fn bump(
    tx: &Transaction<'_>,
    op: &'static str,
    keys: &[HistoryKey],
    obs: &QualityObservation,
    sign: i64,
) -> Result<()> {
    let mut st = tx
        .prepare_cached(
            "INSERT INTO quality_history \
             (buyer, area, hour_of_week, calls, converted, postback, transcript) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (buyer, area, hour_of_week) \
             DO UPDATE SET calls = calls + excluded.calls, \
             converted = converted + excluded.converted, \
             postback = postback + excluded.postback, \
             transcript = transcript + excluded.transcript",
        )
        .map_err(StoreError::sqlite(op))?;
    let conv = sign * i64::from(obs.converted);
    let post = sign * i64::from(obs.signal == QualitySignal::Postback);
    let tran = sign * i64::from(obs.signal == QualitySignal::Transcript);
    for k in keys {
        let (area, hour) = (area_text(&k.area), hour_value(k.hour_of_week));
        st.execute(params![
            k.buyer.as_str(),
            area,
            hour,
            sign,
            conv,
            post,
            tran
        ])
        .map_err(StoreError::sqlite(op))?;
    }
    Ok(())
}

fn record_tx(
    tx: &Transaction<'_>,
    op: &'static str,
    call: &str,
    keys: &[HistoryKey],
    obs: QualityObservation,
) -> Result<QualityRecorded> {
    let old = stored(tx, op, call)?;
    let keys_json = match &old {
        Some((o, _)) if !obs.outranks(o) => {
            return Ok(QualityRecorded {
                stored: *o,
                changed: false,
            })
        }
        Some((o, k)) => {
            let keys: Vec<HistoryKey> =
                serde_json::from_str(k).map_err(|e| StoreError::corrupt(op, e))?;
            bump(tx, op, &keys, o, -1)?;
            bump(tx, op, &keys, &obs, 1)?;
            k.clone()
        }
        None => {
            bump(tx, op, keys, &obs, 1)?;
            serde_json::to_string(keys).map_err(|e| StoreError::corrupt(op, e))?
        }
    };
    tx.execute(
        "INSERT INTO quality_calls (call_id, signal, converted, keys) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (call_id) DO UPDATE SET signal = excluded.signal, \
         converted = excluded.converted",
        params![call, obs.signal.as_str(), obs.converted, keys_json],
    )
    .map_err(StoreError::sqlite(op))?;
    Ok(QualityRecorded {
        stored: obs,
        changed: true,
    })
}

#[async_trait]
impl QualityHistory for SqliteStore {
    async fn record(
        &self,
        call: &CallId,
        keys: &[HistoryKey],
        obs: QualityObservation,
    ) -> Result<QualityRecorded, StateError> {
        const OP: &str = "record_quality";
        let (call, keys) = (call.as_str().to_owned(), keys.to_vec());
        self.write(OP, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(OP))?;
            let out = record_tx(&tx, OP, &call, &keys, obs)?;
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(out)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn outcome(&self, call: &CallId) -> Result<Option<QualityObservation>, StateError> {
        const OP: &str = "quality_outcome";
        let call = call.as_str().to_owned();
        self.read(OP, move |c| {
            let row: Option<(String, bool)> = c
                .query_row(
                    "SELECT signal, converted FROM quality_calls WHERE call_id = ?1",
                    params![call],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(StoreError::sqlite(OP))?;
            row.map(|(s, conv)| decode(OP, &s, conv)).transpose()
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<QualityStats>, StateError> {
        const OP: &str = "quality_stats";
        let keys = keys.to_vec();
        self.read(OP, move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT calls, converted, postback, transcript FROM quality_history \
                     WHERE buyer = ?1 AND area = ?2 AND hour_of_week = ?3",
                )
                .map_err(StoreError::sqlite(OP))?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                let (area, hour) = (area_text(&k.area), hour_value(k.hour_of_week));
                let s = st
                    .query_row(params![k.buyer.as_str(), area, hour], |r| {
                        Ok(QualityStats {
                            calls: n(r.get(0)?),
                            converted: n(r.get(1)?),
                            postback: n(r.get(2)?),
                            transcript: n(r.get(3)?),
                        })
                    })
                    .optional()
                    .map_err(StoreError::sqlite(OP))?;
                out.push(s.unwrap_or_default());
            }
            Ok(out)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }
}

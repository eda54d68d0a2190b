//! The conformance suite every implementation of the state traits must pass.
//!
//! Each function exercises one trait and returns `Err(description)` on the first
//! deviation. Keys and ids are prefixed with `prefix`, so the suite can run repeatedly
//! against a shared database. `callbid-core` runs it against the in-memory stores;
//! `callbid-store` runs it against SQLite and PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

use super::calllog::{AppendOutcome, CallEvent, CallEventKind, CallLog, CallRecord, CallStatus};
use super::postback::{
    AttemptOutcome, DeliveryState, PostbackAttempt, PostbackDelivery, PostbackOutbox,
};
use super::quality::{QualityHistory, QualityObservation, QualityStats};
use super::routing::{RouteClaim, RouteDecision, RoutingStore};
use super::{
    AreaKey, CapStore, CounterIncrement, DurationHistory, HistoryKey, HistoryKeyRef, HistoryStats,
    ReservationId, ReservationRequest, ReserveOutcome, SeenCallers,
};
use super::{ClaimOutcome, SeenClaim};
use crate::geo::UsState;
use crate::ids::{BuyerId, CallId, ServiceType};
use crate::money::Money;
use crate::phone::{Destination, PhoneNumber};
use crate::zip::Zip;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0)
        .single()
        .unwrap_or_default()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn req(
    id: &str,
    incs: &[(&str, Decimal, Decimal)],
    expires_at: Option<DateTime<Utc>>,
) -> ReservationRequest {
    ReservationRequest {
        id: ReservationId(id.to_string()),
        increments: incs
            .iter()
            .map(|(k, a, l)| CounterIncrement {
                key: k.to_string(),
                amount: *a,
                limit: *l,
            })
            .collect(),
        expires_at,
        now: t0(),
        deadline: None,
    }
}

/// Single-handle semantics of a [`CapStore`].
pub async fn cap_store(store: &dyn CapStore, prefix: &str) -> Result<(), String> {
    let k1 = format!("{prefix}|count");
    let k2 = format!("{prefix}|spend");
    let one = Decimal::ONE;
    let now = t0();
    ensure!(
        store.usage(&k1, now).await.map_err(err)? == Decimal::ZERO,
        "unknown counter must read 0"
    );

    let r = store
        .reserve(&req(
            &format!("{prefix}-a"),
            &[
                (&k1, one, Decimal::from(2)),
                (&k2, Decimal::new(1234, 2), Decimal::from(20)),
            ],
            None,
        ))
        .await
        .map_err(err)?;
    ensure!(
        r == ReserveOutcome::Reserved,
        "first reservation must succeed, got {r:?}"
    );
    let r = store
        .reserve(&req(
            &format!("{prefix}-a"),
            &[
                (&k1, one, Decimal::from(2)),
                (&k2, Decimal::new(1234, 2), Decimal::from(20)),
            ],
            None,
        ))
        .await
        .map_err(err)?;
    ensure!(
        r == ReserveOutcome::Reserved,
        "repeating a reservation id must succeed idempotently, got {r:?}"
    );
    ensure!(
        store.usage(&k1, now).await.map_err(err)? == one,
        "a repeated reservation id must count once"
    );
    ensure!(
        store.usage(&k2, now).await.map_err(err)? == Decimal::new(1234, 2),
        "spend must be exact"
    );

    // k1 has room (1 of 2) but k2 would exceed (12.34 + 8.00 > 20): nothing is taken.
    let r = store
        .reserve(&req(
            &format!("{prefix}-b"),
            &[
                (&k1, one, Decimal::from(2)),
                (&k2, Decimal::from(8), Decimal::from(20)),
            ],
            None,
        ))
        .await
        .map_err(err)?;
    match r {
        ReserveOutcome::Exceeded {
            ref key,
            used,
            limit,
        } => {
            ensure!(
                key == &k2 && used == Decimal::new(1234, 2) && limit == Decimal::from(20),
                "wrong exceeded report {r:?}"
            );
        }
        other => return Err(format!("expected Exceeded, got {other:?}")),
    }
    ensure!(
        store.usage(&k1, now).await.map_err(err)? == one,
        "a refused reservation must not increment any counter"
    );

    let r = store
        .reserve(&req(
            &format!("{prefix}-c"),
            &[(&k2, Decimal::new(766, 2), Decimal::from(20))],
            None,
        ))
        .await
        .map_err(err)?;
    ensure!(
        r == ReserveOutcome::Reserved,
        "filling exactly to the limit must succeed, got {r:?}"
    );
    ensure!(
        store.usage(&k2, now).await.map_err(err)? == Decimal::from(20),
        "usage must be exactly the limit"
    );

    ensure!(
        store
            .release(&ReservationId(format!("{prefix}-a")))
            .await
            .map_err(err)?,
        "release of a held reservation must return true"
    );
    ensure!(
        !store
            .release(&ReservationId(format!("{prefix}-a")))
            .await
            .map_err(err)?,
        "a second release must return false"
    );
    ensure!(
        store.usage(&k1, now).await.map_err(err)? == Decimal::ZERO,
        "release must give the count back"
    );
    ensure!(
        store.usage(&k2, now).await.map_err(err)? == Decimal::new(766, 2),
        "release must give the spend back"
    );

    // A counter named twice in one request counts both amounts: 1 + 1 > 1.
    let k4 = format!("{prefix}|twice");
    let r = store
        .reserve(&req(
            &format!("{prefix}-f"),
            &[(&k4, one, one), (&k4, one, one)],
            None,
        ))
        .await
        .map_err(err)?;
    ensure!(
        matches!(r, ReserveOutcome::Exceeded { .. }),
        "a counter listed twice must be checked against the sum, got {r:?}"
    );
    ensure!(
        store.usage(&k4, now).await.map_err(err)? == Decimal::ZERO,
        "a refused request must take nothing"
    );

    // Expiry: a live-call reservation that expired no longer counts.
    let k3 = format!("{prefix}|live");
    let r = store
        .reserve(&req(
            &format!("{prefix}-d"),
            &[(&k3, one, one)],
            Some(now + chrono::Duration::seconds(60)),
        ))
        .await
        .map_err(err)?;
    ensure!(
        r == ReserveOutcome::Reserved,
        "live reservation must succeed"
    );
    let mut second = req(
        &format!("{prefix}-e"),
        &[(&k3, one, one)],
        Some(now + chrono::Duration::seconds(60)),
    );
    let r = store.reserve(&second).await.map_err(err)?;
    ensure!(
        matches!(r, ReserveOutcome::Exceeded { .. }),
        "concurrency limit 1 must refuse a second live call, got {r:?}"
    );
    second.now = now + chrono::Duration::seconds(61);
    second.expires_at = Some(now + chrono::Duration::seconds(121));
    let r = store.reserve(&second).await.map_err(err)?;
    ensure!(
        r == ReserveOutcome::Reserved,
        "after expiry the slot must be free again, got {r:?}"
    );
    ensure!(
        store
            .usage(&k3, now + chrono::Duration::seconds(61))
            .await
            .map_err(err)?
            == one,
        "only the unexpired reservation counts"
    );
    held_reservation_repeats_whatever_its_request(store, prefix).await
}

/// A repeated reservation counts once, whatever the repeat's amounts and limits say:
/// even an amount above its limit (refused outright for a new id) is `Reserved`, and
/// usage does not change.
async fn held_reservation_repeats_whatever_its_request(
    store: &dyn CapStore,
    prefix: &str,
) -> Result<(), String> {
    let key = format!("{prefix}|repeat");
    let id = format!("{prefix}-repeat");
    let first = req(&id, &[(&key, Decimal::ONE, Decimal::from(5))], None);
    ensure!(
        store.reserve(&first).await.map_err(err)? == ReserveOutcome::Reserved,
        "a first reservation within its limit must succeed"
    );
    for (amount, limit) in [
        (Decimal::from(3), Decimal::ONE),
        (Decimal::ONE, Decimal::ZERO),
    ] {
        let r = store
            .reserve(&req(&id, &[(&key, amount, limit)], None))
            .await
            .map_err(err)?;
        ensure!(
            r == ReserveOutcome::Reserved,
            "repeating a held id (amount {amount}, limit {limit}) must be Reserved, got {r:?}"
        );
    }
    let fresh = req(
        &format!("{id}-new"),
        &[(&key, Decimal::from(3), Decimal::ONE)],
        None,
    );
    let r = store.reserve(&fresh).await.map_err(err)?;
    ensure!(
        matches!(r, ReserveOutcome::Exceeded { .. }),
        "a new id whose amount is above its limit must be refused, got {r:?}"
    );
    let used = store.usage(&key, t0()).await.map_err(err)?;
    ensure!(used == Decimal::ONE, "usage must stay 1, got {used}");
    Ok(())
}

/// Atomicity: `attempts` concurrent reservations through two handles on the same backing
/// store never take a counter over `limit`, and exactly `limit` succeed.
pub async fn cap_store_concurrency(
    a: Arc<dyn CapStore>,
    b: Arc<dyn CapStore>,
    prefix: &str,
    attempts: usize,
    limit: u32,
) -> Result<(), String> {
    let key = format!("{prefix}|race");
    let mut tasks = Vec::with_capacity(attempts);
    for i in 0..attempts {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let r = req(
            &format!("{prefix}-race-{i}"),
            &[(&key, Decimal::ONE, Decimal::from(limit))],
            None,
        );
        tasks.push(tokio::spawn(async move { store.reserve(&r).await }));
    }
    let mut won = 0u32;
    for t in tasks {
        match t.await.map_err(err)?.map_err(err)? {
            ReserveOutcome::Reserved => won += 1,
            ReserveOutcome::Exceeded { .. } => {}
        }
    }
    ensure!(
        won == limit,
        "expected exactly {limit} reservations to succeed, got {won}"
    );
    let used = a.usage(&key, t0()).await.map_err(err)?;
    ensure!(
        used == Decimal::from(limit),
        "usage must equal the limit, got {used}"
    );
    let used_b = b.usage(&key, t0()).await.map_err(err)?;
    ensure!(
        used_b == used,
        "both handles must see the same usage ({used} vs {used_b})"
    );
    Ok(())
}

/// A burst of concurrent reservations on one handle (a store may decide them together,
/// e.g. PostgreSQL's group commit): `ids` distinct ids, some asked for two or three
/// times, each for 1 on one counter of limit `limit` (< `ids`). The outcomes must be
/// those of the same requests one at a time in some order: every ask of one id gets
/// the same answer, exactly `limit` ids are granted (each counted once), and every
/// refusal reports the full counter.
pub async fn cap_store_burst(
    store: Arc<dyn CapStore>,
    prefix: &str,
    ids: usize,
    limit: u32,
) -> Result<(), String> {
    let key = format!("{prefix}|burst");
    let mut tasks = Vec::new();
    for i in 0..ids {
        for _ in 0..(1 + i % 3) {
            let store = store.clone();
            let r = req(
                &format!("{prefix}-burst-{i}"),
                &[(&key, Decimal::ONE, Decimal::from(limit))],
                None,
            );
            tasks.push(tokio::spawn(async move { (i, store.reserve(&r).await) }));
        }
    }
    let mut answers: Vec<Option<ReserveOutcome>> = vec![None; ids];
    for t in tasks {
        let (i, got) = t.await.map_err(err)?;
        let got = got.map_err(err)?;
        if let ReserveOutcome::Exceeded { used, limit: l, .. } = &got {
            ensure!(
                *used == Decimal::from(limit) && *l == Decimal::from(limit),
                "a refusal must report the full counter, got {got:?}"
            );
        }
        match &answers[i] {
            Some(before) => ensure!(
                *before == got,
                "id {i} was answered {before:?} and then {got:?}"
            ),
            None => answers[i] = Some(got),
        }
    }
    let granted = answers
        .iter()
        .filter(|a| **a == Some(ReserveOutcome::Reserved))
        .count();
    ensure!(
        granted == limit as usize,
        "expected exactly {limit} ids granted, got {granted}"
    );
    let used = store.usage(&key, t0()).await.map_err(err)?;
    ensure!(
        used == Decimal::from(limit),
        "usage must equal the limit (each id once), got {used}"
    );
    Ok(())
}

/// Semantics of [`SeenCallers`].
pub async fn seen_callers(store: &dyn SeenCallers, prefix: &str) -> Result<(), String> {
    let b1 = BuyerId::new(format!("{prefix}-b1")).map_err(err)?;
    let b2 = BuyerId::new(format!("{prefix}-b2")).map_err(err)?;
    let caller = PhoneNumber::parse("+15125550123").map_err(err)?;
    ensure!(
        store.last_seen(&b1, &caller).await.map_err(err)?.is_none(),
        "unknown caller must be unseen"
    );
    store.record(&b1, &caller, t0()).await.map_err(err)?;
    ensure!(
        store.last_seen(&b1, &caller).await.map_err(err)? == Some(t0()),
        "recorded instant must be returned"
    );
    store
        .record(&b1, &caller, t0() - chrono::Duration::days(3))
        .await
        .map_err(err)?;
    ensure!(
        store.last_seen(&b1, &caller).await.map_err(err)? == Some(t0()),
        "an older record must not move last_seen back"
    );
    let later = t0() + chrono::Duration::hours(5);
    store.record(&b1, &caller, later).await.map_err(err)?;
    ensure!(
        store.last_seen(&b1, &caller).await.map_err(err)? == Some(later),
        "a newer record must move last_seen forward"
    );
    ensure!(
        store.last_seen(&b2, &caller).await.map_err(err)?.is_none(),
        "buyers must be independent"
    );
    Ok(())
}

/// Semantics of [`DurationHistory`].
pub async fn duration_history(history: &dyn DurationHistory, prefix: &str) -> Result<(), String> {
    let buyer = BuyerId::new(format!("{prefix}-hist")).map_err(err)?;
    let tx = UsState::parse("TX").map_err(err)?;
    let keys = vec![
        HistoryKey {
            buyer: buyer.clone(),
            area: AreaKey::AreaCode(512),
            hour_of_week: Some(15),
        },
        HistoryKey {
            buyer: buyer.clone(),
            area: AreaKey::State(tx),
            hour_of_week: Some(15),
        },
        HistoryKey {
            buyer: buyer.clone(),
            area: AreaKey::Any,
            hour_of_week: None,
        },
    ];
    let zero = history.stats(&keys).await.map_err(err)?;
    ensure!(
        zero == vec![HistoryStats::default(); 3],
        "unknown keys must read zero, got {zero:?}"
    );
    history.record(&keys, true).await.map_err(err)?;
    history.record(&keys, false).await.map_err(err)?;
    history.record(&keys[1..], true).await.map_err(err)?;
    let s = history.stats(&keys).await.map_err(err)?;
    ensure!(
        s[0] == HistoryStats {
            calls: 2,
            billable: 1
        },
        "area-code bucket wrong: {:?}",
        s[0]
    );
    ensure!(
        s[1] == HistoryStats {
            calls: 3,
            billable: 2
        },
        "state bucket wrong: {:?}",
        s[1]
    );
    ensure!(
        s[2] == HistoryStats {
            calls: 3,
            billable: 2
        },
        "overall bucket wrong: {:?}",
        s[2]
    );
    let mut into = vec![HistoryStats::default(); 7];
    history.stats_into(&keys, &mut into).await.map_err(err)?;
    ensure!(
        into == s,
        "stats_into must give what stats gives (and clear its buffer first), got {into:?}"
    );
    let borrowed: Vec<HistoryKeyRef<'_>> = keys.iter().map(HistoryKeyRef::from).collect();
    let mut of = vec![HistoryStats::default(); 7];
    history.stats_of(&borrowed, &mut of).await.map_err(err)?;
    ensure!(
        of == s,
        "stats_of must give what stats gives (and clear its buffer first), got {of:?}"
    );
    let reversed: Vec<HistoryKey> = keys.iter().rev().cloned().collect();
    let r = history.stats(&reversed).await.map_err(err)?;
    ensure!(
        r == s.iter().rev().copied().collect::<Vec<_>>(),
        "stats must follow the order of the keys"
    );
    let other = HistoryKey {
        buyer,
        area: AreaKey::AreaCode(512),
        hour_of_week: Some(16),
    };
    ensure!(
        history.stats(&[other]).await.map_err(err)?[0] == HistoryStats::default(),
        "hours must be independent"
    );
    Ok(())
}

fn quality_keys(prefix: &str, name: &str) -> Result<Vec<HistoryKey>, String> {
    let buyer = BuyerId::new(format!("{prefix}-{name}")).map_err(err)?;
    let tx = UsState::parse("TX").map_err(err)?;
    let k = |area, hour_of_week| HistoryKey {
        buyer: buyer.clone(),
        area,
        hour_of_week,
    };
    Ok(vec![
        k(AreaKey::AreaCode(512), Some(15)),
        k(AreaKey::State(tx), Some(15)),
        k(AreaKey::Any, None),
    ])
}

fn qstats(calls: u64, converted: u64, postback: u64, transcript: u64) -> QualityStats {
    QualityStats {
        calls,
        converted,
        postback,
        transcript,
    }
}

/// Semantics of [`QualityHistory`]: one outcome per call, replaced only by one that
/// outranks it (a postback beats a transcript), whatever the order; buckets independent.
pub async fn quality_history(history: &dyn QualityHistory, prefix: &str) -> Result<(), String> {
    let keys = quality_keys(prefix, "quality")?;
    let call = |n: u32| CallId::new(format!("{prefix}-q{n}")).map_err(err);
    let zero = history.stats(&keys).await.map_err(err)?;
    ensure!(
        zero == vec![QualityStats::default(); 3],
        "unknown keys must read zero, got {zero:?}"
    );
    ensure!(
        history.outcome(&call(1)?).await.map_err(err)?.is_none(),
        "an unknown call has no outcome"
    );
    let t_junk = QualityObservation::transcript(false);
    let t_conv = QualityObservation::transcript(true);
    let p_no = QualityObservation::postback(false);
    let p_yes = QualityObservation::postback(true);
    // Call 1: a transcript says junk, twice; then the buyer's postback says converted.
    let r = history
        .record(&call(1)?, &keys, t_junk)
        .await
        .map_err(err)?;
    ensure!(r.changed && r.stored == t_junk, "first outcome: {r:?}");
    let r = history
        .record(&call(1)?, &keys, t_junk)
        .await
        .map_err(err)?;
    ensure!(
        !r.changed && r.stored == t_junk,
        "same outcome twice: {r:?}"
    );
    let s = history.stats(&keys).await.map_err(err)?;
    ensure!(s[0] == qstats(1, 0, 0, 1), "junk counted once: {:?}", s[0]);
    let r = history.record(&call(1)?, &keys, p_yes).await.map_err(err)?;
    ensure!(r.changed && r.stored == p_yes, "postback replaces: {r:?}");
    // Call 2: the postback (not converted) comes first; a later transcript is ignored.
    history.record(&call(2)?, &keys, p_no).await.map_err(err)?;
    let r = history
        .record(&call(2)?, &keys, t_conv)
        .await
        .map_err(err)?;
    ensure!(
        !r.changed && r.stored == p_no,
        "a transcript never beats a postback: {r:?}"
    );
    // Call 3: only in the overall bucket; converted postback then not converted.
    history
        .record(&call(3)?, &keys[2..], p_yes)
        .await
        .map_err(err)?;
    let r = history.record(&call(3)?, &keys, p_no).await.map_err(err)?;
    ensure!(
        !r.changed && r.stored == p_yes,
        "a conversion is not taken back: {r:?}"
    );
    let s = history.stats(&keys).await.map_err(err)?;
    ensure!(s[0] == qstats(2, 1, 2, 0), "area-code bucket: {:?}", s[0]);
    ensure!(s[1] == qstats(2, 1, 2, 0), "state bucket: {:?}", s[1]);
    ensure!(s[2] == qstats(3, 2, 3, 0), "overall bucket: {:?}", s[2]);
    ensure!(
        history.outcome(&call(1)?).await.map_err(err)? == Some(p_yes),
        "stored outcome of call 1"
    );
    let reversed: Vec<HistoryKey> = keys.iter().rev().cloned().collect();
    let r = history.stats(&reversed).await.map_err(err)?;
    ensure!(
        r == s.iter().rev().copied().collect::<Vec<_>>(),
        "stats must follow the order of the keys"
    );
    let mut other = keys[0].clone();
    other.hour_of_week = Some(16);
    ensure!(
        history.stats(&[other]).await.map_err(err)?[0] == QualityStats::default(),
        "hours must be independent"
    );
    Ok(())
}

/// Two handles on one store record the same calls at once, with every signal in
/// shuffled orders: each call is counted once, with the strongest outcome.
pub async fn quality_history_concurrency(
    a: Arc<dyn QualityHistory>,
    b: Arc<dyn QualityHistory>,
    prefix: &str,
    calls: u32,
) -> Result<(), String> {
    let keys = quality_keys(prefix, "qrace")?;
    let all = [
        QualityObservation::transcript(false),
        QualityObservation::transcript(true),
        QualityObservation::postback(false),
        QualityObservation::postback(true),
    ];
    let mut tasks = Vec::new();
    for n in 0..calls {
        let id = CallId::new(format!("{prefix}-qr{n}")).map_err(err)?;
        for (i, h) in [a.clone(), b.clone()].into_iter().enumerate() {
            let (id, keys) = (id.clone(), keys.clone());
            // Handle 0 sends the signals forwards, handle 1 backwards; call n keeps the
            // first `n % 4 + 1` of them.
            let mut obs: Vec<_> = all[..(n as usize % 4) + 1].to_vec();
            if i == 1 {
                obs.reverse();
            }
            tasks.push(tokio::spawn(async move {
                for o in obs {
                    h.record(&id, &keys, o).await.map_err(err)?;
                }
                Ok::<_, String>(())
            }));
        }
    }
    for t in tasks {
        t.await.map_err(err)??;
    }
    let (mut want, mut stats) = (QualityStats::default(), Vec::new());
    for n in 0..calls {
        let best = all[n as usize % 4];
        want.apply(&best, 1);
        let id = CallId::new(format!("{prefix}-qr{n}")).map_err(err)?;
        let got = a.outcome(&id).await.map_err(err)?;
        ensure!(got == Some(best), "call {n}: stored {got:?}, want {best:?}");
    }
    stats.extend(b.stats(&keys).await.map_err(err)?);
    ensure!(
        stats.iter().all(|s| *s == want),
        "every bucket must count each call once: {stats:?}, want {want:?}"
    );
    Ok(())
}

/// Semantics of [`CallLog`]: idempotent appends, order, derived status, exact money.
pub async fn call_log(log: &dyn CallLog, prefix: &str) -> Result<(), String> {
    let call = CallId::new(format!("{prefix}-CA1")).map_err(err)?;
    let buyer = BuyerId::new("buyer-a").map_err(err)?;
    let price = Money::usd(Decimal::new(4250, 2));
    let dest = Destination::Phone(PhoneNumber::parse("+15125550199").map_err(err)?);
    let at = |s: i64| t0() + chrono::Duration::seconds(s);
    let events = vec![
        CallEvent::new(
            call.clone(),
            at(0),
            "incoming",
            CallEventKind::Incoming {
                caller: Some(PhoneNumber::parse("+15125550123").map_err(err)?),
                dialed: Some(PhoneNumber::parse("+18005551212").map_err(err)?),
                campaign: Some(crate::ids::CampaignId::new("spring").map_err(err)?),
                source: None,
            },
        ),
        CallEvent::new(
            call.clone(),
            at(5),
            "ivr:zip",
            CallEventKind::IvrInput {
                step: "zip".into(),
                value: "78701".into(),
            },
        ),
        CallEvent::new(
            call.clone(),
            at(9),
            "auction",
            CallEventKind::AuctionStarted {
                zip: Zip::parse("78701").map_err(err)?,
                service: ServiceType::new("plumbing").map_err(err)?,
                eligible: 2,
                excluded: 1,
            },
        ),
        CallEvent::new(
            call.clone(),
            at(9),
            "ping:buyer-a",
            CallEventKind::PingResult {
                buyer: buyer.clone(),
                latency_ms: 120,
                price: Some(price),
                reason: None,
            },
        ),
        CallEvent::new(
            call.clone(),
            at(9),
            "ping:buyer-b",
            CallEventKind::PingResult {
                buyer: BuyerId::new("buyer-b").map_err(err)?,
                latency_ms: 80,
                price: None,
                reason: Some("no buyer".into()),
            },
        ),
        CallEvent::new(
            call.clone(),
            at(10),
            "winner",
            CallEventKind::Winner {
                buyer: buyer.clone(),
                price,
                score: Decimal::new(3825, 2),
            },
        ),
        CallEvent::new(
            call.clone(),
            at(10),
            "accepted",
            CallEventKind::Accepted {
                buyer: buyer.clone(),
                destination: dest.clone(),
            },
        ),
        CallEvent::new(
            call.clone(),
            at(10),
            "forwarded",
            CallEventKind::Forwarded {
                buyer: buyer.clone(),
                destination: dest.clone(),
            },
        ),
        CallEvent::new(
            call.clone(),
            at(15),
            "connected",
            CallEventKind::Connected {
                buyer: Some(buyer.clone()),
            },
        ),
        CallEvent::new(
            call.clone(),
            at(200),
            "status:completed",
            CallEventKind::Completed { duration_secs: 185 },
        ),
        CallEvent::new(
            call.clone(),
            at(201),
            "recording",
            CallEventKind::Recording {
                url: "https://api.twilio.com/rec/RE1".into(),
            },
        ),
        CallEvent::new(
            call.clone(),
            at(201),
            "billing",
            CallEventKind::Billing {
                billable: true,
                revenue: price,
                payout: Money::usd(Decimal::new(2975, 2)),
            },
        ),
    ];
    for e in &events {
        let r = log.append(e).await.map_err(err)?;
        ensure!(
            r == AppendOutcome::Recorded,
            "first append of {} must be recorded, got {r:?}",
            e.idempotency_key
        );
    }
    // Twilio retries the status callback: recorded once.
    let r = log.append(&events[9]).await.map_err(err)?;
    ensure!(
        r == AppendOutcome::Duplicate,
        "a repeated idempotency key must be a duplicate, got {r:?}"
    );
    let back = log.events(&call).await.map_err(err)?;
    ensure!(
        back == events,
        "events must come back in append order and unchanged"
    );
    let rec = log
        .record(&call)
        .await
        .map_err(err)?
        .ok_or("record missing")?;
    ensure!(
        rec.status == CallStatus::Completed,
        "status must be completed, got {:?}",
        rec.status
    );
    ensure!(
        rec.revenue == Some(price) && rec.payout == Some(Money::usd(Decimal::new(2975, 2))),
        "money must be exact"
    );
    ensure!(
        rec.duration_secs == Some(185) && rec.bids == 1 && rec.pinged == 2,
        "record fields wrong: {rec:?}"
    );
    ensure!(
        rec.zip.map(|z| z.as_u32()) == Some(78701),
        "zip must be derived"
    );
    ensure!(
        log.record(&CallId::new(format!("{prefix}-none")).map_err(err)?)
            .await
            .map_err(err)?
            .is_none(),
        "unknown call has no record"
    );

    // A call nobody bought goes to fallback.
    let call2 = CallId::new(format!("{prefix}-CA2")).map_err(err)?;
    log.append(&CallEvent::new(
        call2.clone(),
        at(0),
        "incoming",
        CallEventKind::Incoming {
            caller: None,
            dialed: None,
            campaign: None,
            source: None,
        },
    ))
    .await
    .map_err(err)?;
    log.append(&CallEvent::new(
        call2.clone(),
        at(3),
        "fallback",
        CallEventKind::Fallback {
            kind: "voicemail".into(),
            reason: "no bids".into(),
        },
    ))
    .await
    .map_err(err)?;
    let rec2 = log
        .record(&call2)
        .await
        .map_err(err)?
        .ok_or("record 2 missing")?;
    ensure!(
        rec2.status == CallStatus::Fallback && rec2.fallback.as_deref() == Some("voicemail"),
        "fallback status wrong: {rec2:?}"
    );
    key_prefixes(log, &call).await
}

/// [`CallLog::has_key_prefix`] on a call whose keys are `incoming`, `ivr:zip`, …: a
/// whole key and a start of one are found, a longer string, a middle, another call's
/// key and an unknown call are not, and the empty prefix matches any call with events.
async fn key_prefixes(log: &dyn CallLog, call: &CallId) -> Result<(), String> {
    let other = CallId::new(format!("{call}-other")).map_err(err)?;
    for (id, prefix, want) in [
        (call, "incoming", true),
        (call, "ivr:", true),
        (call, "", true),
        (call, "incoming:more", false),
        (call, "coming", false),
        (call, "no-such-key:", false),
        (&other, "", false),
        (&other, "incoming", false),
    ] {
        let got = log.has_key_prefix(id, prefix).await.map_err(err)?;
        ensure!(
            got == want,
            "has_key_prefix({id}, {prefix:?}) = {got}, expected {want}"
        );
    }
    Ok(())
}

fn claim(
    buyer: &BuyerId,
    caller: &PhoneNumber,
    holder: &str,
    now: DateTime<Utc>,
    window_days: i64,
) -> SeenClaim {
    SeenClaim {
        buyer: buyer.clone(),
        caller: caller.clone(),
        holder: ReservationId(holder.to_string()),
        since: now - chrono::Duration::days(window_days),
        now,
        expires_at: now + chrono::Duration::minutes(10),
    }
}

/// Single-handle semantics of [`SeenCallers::claim`], `confirm_claim` and
/// `release_claim`.
pub async fn seen_claims(store: &dyn SeenCallers, prefix: &str) -> Result<(), String> {
    let buyer = BuyerId::new(format!("{prefix}-claims")).map_err(err)?;
    let caller = PhoneNumber::parse("+15125550177").map_err(err)?;
    let t = t0();
    let a = claim(&buyer, &caller, "a", t, 1);
    ensure!(
        store.claim(&a).await.map_err(err)? == ClaimOutcome::Claimed,
        "first claim"
    );
    ensure!(
        store.claim(&a).await.map_err(err)? == ClaimOutcome::Claimed,
        "claim is idempotent per holder"
    );
    let b = claim(&buyer, &caller, "b", t, 1);
    let got = store.claim(&b).await.map_err(err)?;
    ensure!(
        got == ClaimOutcome::Held {
            holder: ReservationId("a".into())
        },
        "a second holder is refused while the first holds: {got:?}"
    );
    ensure!(
        store
            .last_seen(&buyer, &caller)
            .await
            .map_err(err)?
            .is_none(),
        "a claim is not a send"
    );
    // Releasing frees it; a wrong holder releases nothing.
    ensure!(
        !store
            .release_claim(&buyer, &caller, &b.holder)
            .await
            .map_err(err)?,
        "b held nothing"
    );
    ensure!(
        store
            .release_claim(&buyer, &caller, &a.holder)
            .await
            .map_err(err)?,
        "a held it"
    );
    ensure!(
        !store
            .release_claim(&buyer, &caller, &a.holder)
            .await
            .map_err(err)?,
        "release is idempotent"
    );
    ensure!(
        store.claim(&b).await.map_err(err)? == ClaimOutcome::Claimed,
        "released: b gets it"
    );
    // Confirming makes it the lasting record and removes the claim.
    store
        .confirm_claim(&buyer, &caller, &b.holder, t)
        .await
        .map_err(err)?;
    ensure!(
        store.last_seen(&buyer, &caller).await.map_err(err)? == Some(t),
        "confirmed send recorded"
    );
    let c = claim(&buyer, &caller, "c", t + chrono::Duration::hours(1), 1);
    ensure!(
        store.claim(&c).await.map_err(err)? == ClaimOutcome::Seen { at: t },
        "inside the window: seen"
    );
    let d = claim(&buyer, &caller, "d", t + chrono::Duration::days(1), 1);
    ensure!(
        store.claim(&d).await.map_err(err)? == ClaimOutcome::Claimed,
        "window over: claimable"
    );
    // An unconfirmed claim lapses at its expiry.
    let late = claim(&buyer, &caller, "e", d.expires_at, 1);
    ensure!(
        store.claim(&late).await.map_err(err)? == ClaimOutcome::Claimed,
        "expired claim replaced"
    );
    ensure!(
        !store
            .release_claim(&buyer, &caller, &d.holder)
            .await
            .map_err(err)?,
        "d's claim was replaced"
    );
    // Another buyer, or another caller, is independent.
    let other = BuyerId::new(format!("{prefix}-claims-2")).map_err(err)?;
    ensure!(
        store
            .claim(&claim(&other, &caller, "f", t, 1))
            .await
            .map_err(err)?
            == ClaimOutcome::Claimed,
        "other buyer"
    );
    let caller2 = PhoneNumber::parse("+15125550178").map_err(err)?;
    ensure!(
        store
            .claim(&claim(&buyer, &caller2, "g", t, 1))
            .await
            .map_err(err)?
            == ClaimOutcome::Claimed,
        "other caller"
    );
    Ok(())
}

/// Atomicity of [`SeenCallers::claim`] across two handles (two processes on one
/// database): `rounds` times, `per_round` claims from distinct holders race on one
/// caller × buyer, half through each handle; exactly one wins each round.
pub async fn seen_claims_concurrency(
    a: Arc<dyn SeenCallers>,
    b: Arc<dyn SeenCallers>,
    prefix: &str,
    rounds: usize,
    per_round: usize,
) -> Result<(), String> {
    let buyer = BuyerId::new(format!("{prefix}-race")).map_err(err)?;
    for round in 0..rounds {
        let caller = PhoneNumber::parse(&format!("+1512555{:04}", round % 10_000)).map_err(err)?;
        let mut tasks = Vec::with_capacity(per_round);
        for i in 0..per_round {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let c = claim(&buyer, &caller, &format!("{round}-{i}"), t0(), 1);
            tasks.push(tokio::spawn(async move { store.claim(&c).await }));
        }
        let mut won = 0;
        for t in tasks {
            if t.await.map_err(err)?.map_err(err)? == ClaimOutcome::Claimed {
                won += 1;
            }
        }
        ensure!(
            won == 1,
            "round {round}: {won} of {per_round} racing claims won (want 1)"
        );
    }
    Ok(())
}

/// The event sequences the examples and end-to-end tests produce for one call (IVR and
/// agent-assisted), named, for call `call`. Used by [`call_log_order`] and by the
/// order-independence proptests.
///
/// Each sequence is in the order the router would log it in; the record folded from
/// it in this order is the canonical record the log must report for any arrival
/// order, with or without redelivered duplicates.
pub fn call_sequences(call: &CallId) -> Result<Vec<(&'static str, Vec<CallEvent>)>, String> {
    let b = |s: &str| BuyerId::new(s).map_err(err);
    let top = b("top")?;
    let second = b("second")?;
    let dest = Destination::Phone(PhoneNumber::parse("+15125550199").map_err(err)?);
    let price = Money::usd(Decimal::new(4250, 2));
    let ev = |s: i64, key: &str, kind: CallEventKind| {
        CallEvent::new(call.clone(), t0() + chrono::Duration::seconds(s), key, kind)
    };
    let incoming = ev(
        0,
        "incoming",
        CallEventKind::Incoming {
            caller: Some(PhoneNumber::parse("+15125550123").map_err(err)?),
            dialed: Some(PhoneNumber::parse("+18005551212").map_err(err)?),
            campaign: None,
            source: None,
        },
    );
    let zip = Zip::parse("78701").map_err(err)?;
    let service = ServiceType::new("plumbing").map_err(err)?;
    let auction = |s, key: &str| {
        ev(
            s,
            key,
            CallEventKind::AuctionStarted {
                zip,
                service: service.clone(),
                eligible: 2,
                excluded: 0,
            },
        )
    };
    let ping = |s, buyer: &BuyerId, bid: bool| {
        ev(
            s,
            &format!("ping:{buyer}:{s}"),
            CallEventKind::PingResult {
                buyer: buyer.clone(),
                latency_ms: 90,
                price: bid.then_some(price),
                reason: (!bid).then(|| "no bid".to_string()),
            },
        )
    };
    let winner = |s, buyer: &BuyerId| {
        ev(
            s,
            &format!("winner:{buyer}"),
            CallEventKind::Winner {
                buyer: buyer.clone(),
                price,
                score: Decimal::new(40, 0),
            },
        )
    };
    let accepted = |s, buyer: &BuyerId| {
        ev(
            s,
            &format!("accepted:{buyer}"),
            CallEventKind::Accepted {
                buyer: buyer.clone(),
                destination: dest.clone(),
            },
        )
    };
    let forwarded = |s, key: &str, buyer: &BuyerId| {
        ev(
            s,
            key,
            CallEventKind::Forwarded {
                buyer: buyer.clone(),
                destination: dest.clone(),
            },
        )
    };
    let connected = |s, key: &str| {
        ev(
            s,
            key,
            CallEventKind::Connected {
                buyer: Some(top.clone()),
            },
        )
    };
    let completed = |s, key: &str, secs| {
        ev(
            s,
            key,
            CallEventKind::Completed {
                duration_secs: secs,
            },
        )
    };
    let missed = |s, key: &str, reason: &str| {
        ev(
            s,
            key,
            CallEventKind::Missed {
                reason: reason.into(),
            },
        )
    };
    let billing = |s, key: &str, billable, revenue: i64| {
        ev(
            s,
            key,
            CallEventKind::Billing {
                billable,
                revenue: Money::usd(Decimal::new(revenue, 0)),
                payout: Money::usd(Decimal::new(revenue / 2, 0)),
            },
        )
    };
    let fallback = |s, key: &str, kind: &str| {
        ev(
            s,
            key,
            CallEventKind::Fallback {
                kind: kind.into(),
                reason: "no buyer".into(),
            },
        )
    };
    let rejected = |s| {
        ev(
            s,
            "rejected",
            CallEventKind::Rejected {
                reason: "no valid ZIP code after 3 attempts".into(),
            },
        )
    };
    let ivr = |s, step: &str, value: &str| {
        ev(
            s,
            &format!("ivr:{step}:{s}"),
            CallEventKind::IvrInput {
                step: step.into(),
                value: value.into(),
            },
        )
    };
    let recording = |s| {
        ev(
            s,
            "recording:https://api.twilio.com/rec/RE1",
            CallEventKind::Recording {
                url: "https://api.twilio.com/rec/RE1".into(),
            },
        )
    };
    let accepted_auction = vec![
        incoming.clone(),
        ivr(3, "zip", "78701"),
        ivr(6, "service", "plumbing"),
        auction(7, "auction:1"),
        ping(7, &top, true),
        ping(7, &second, true),
        winner(8, &top),
        accepted(8, &top),
        forwarded(8, "forwarded", &top),
    ];
    let with = |base: &[CallEvent], more: Vec<CallEvent>| {
        let mut v = base.to_vec();
        v.extend(more);
        v
    };
    Ok(vec![
        (
            "accepted, completed, billed, recorded",
            with(
                &accepted_auction,
                vec![
                    connected(20, "connected"),
                    completed(115, "completed", 95),
                    billing(115, "billing", true, 40),
                    recording(120),
                ],
            ),
        ),
        (
            // The hardening issue's input: the parent call's `completed` status callback
            // arrives before the Dial action, so a provisional Missed is logged first.
            "parent status callback before the Dial action",
            with(
                &accepted_auction,
                vec![
                    missed(
                        115,
                        "status:completed",
                        "call ended before the bridge reported back",
                    ),
                    connected(116, "connected"),
                    completed(116, "completed", 95),
                    billing(116, "billing", true, 40),
                ],
            ),
        ),
        (
            "accepted, no answer, voicemail with a recording",
            with(
                &accepted_auction,
                vec![
                    missed(38, "dial:no-answer", "buyer top did not answer (no-answer)"),
                    fallback(38, "fallback:voicemail", "voicemail"),
                    recording(90),
                    missed(
                        91,
                        "status:completed",
                        "call ended before the bridge reported back",
                    ),
                ],
            ),
        ),
        (
            "accepted, busy, message fallback",
            with(
                &accepted_auction,
                vec![
                    missed(9, "dial:busy", "buyer top did not answer (busy)"),
                    fallback(9, "fallback:message", "message"),
                ],
            ),
        ),
        (
            "no buyer: fallback to in-house",
            vec![
                incoming.clone(),
                ivr(3, "zip", "78701"),
                auction(7, "auction:1"),
                ping(7, &top, false),
                ping(7, &second, false),
                fallback(8, "fallback:in_house", "in_house"),
            ],
        ),
        (
            "accept failed, next bid accepted, not billable",
            vec![
                incoming.clone(),
                auction(7, "auction:1"),
                ping(7, &top, true),
                ping(7, &second, true),
                winner(8, &top),
                ev(
                    8,
                    "accept_failed:top",
                    CallEventKind::AcceptFailed {
                        buyer: top.clone(),
                        reason: "timeout".into(),
                    },
                ),
                winner(9, &second),
                accepted(9, &second),
                forwarded(9, "forwarded", &second),
                completed(30, "completed", 21),
                billing(30, "billing", false, 0),
            ],
        ),
        (
            "invalid ZIP three times: rejected",
            vec![
                incoming.clone(),
                ivr(3, "zip_invalid", "1234"),
                ivr(6, "zip_invalid", "999"),
                ivr(9, "zip_invalid", "0"),
                rejected(9),
            ],
        ),
        (
            "caller left during the IVR",
            vec![
                incoming.clone(),
                missed(
                    4,
                    "status:completed",
                    "caller left during the IVR (call completed after 4s)",
                ),
            ],
        ),
        (
            "agent assist: first leg missed, second leg completed",
            vec![
                incoming.clone(),
                auction(10, "auction:1"),
                forwarded(11, "forwarded-1", &top),
                missed(30, "missed:1", "no-answer"),
                auction(40, "auction:2"),
                forwarded(41, "forwarded-2", &second),
                connected(45, "connected:2"),
                completed(200, "completed:2", 155),
                billing(200, "billing:2", true, 55),
            ],
        ),
        (
            "agent assist: no buyer, then a retried auction forwards",
            vec![
                incoming.clone(),
                auction(10, "auction:1"),
                fallback(11, "fallback:agent:1", "agent"),
                auction(40, "auction:2"),
                forwarded(41, "forwarded-2", &second),
            ],
        ),
        (
            "agent assist: second leg still ringing after a missed first leg",
            vec![
                incoming,
                forwarded(11, "forwarded-1", &top),
                missed(30, "missed:1", "busy"),
                forwarded(41, "forwarded-2", &second),
            ],
        ),
    ])
}

/// The status each of [`call_sequences`] must fold to, in the same order.
pub const SEQUENCE_STATUSES: [CallStatus; 11] = [
    CallStatus::Completed,
    CallStatus::Completed,
    CallStatus::Fallback,
    CallStatus::Fallback,
    CallStatus::Fallback,
    CallStatus::Completed,
    CallStatus::Rejected,
    CallStatus::Missed,
    CallStatus::Completed,
    CallStatus::Forwarded,
    CallStatus::Forwarded,
];

/// `events` in a shuffled arrival order with redeliveries: each event appears 1–3
/// times, positions drawn from `seed` (deterministic per seed).
pub fn shuffled_with_duplicates(events: &[CallEvent], seed: u64) -> Vec<CallEvent> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out: Vec<(u64, CallEvent)> = Vec::with_capacity(events.len() * 2);
    for e in events {
        for _ in 0..rng.random_range(1..=3) {
            out.push((rng.random(), e.clone()));
        }
    }
    out.sort_by_key(|(k, _)| *k);
    out.into_iter().map(|(_, e)| e).collect()
}

/// Order independence of a [`CallLog`]: for every one of [`call_sequences`], appending
/// it shuffled and with redeliveries (`rounds` arrival orders, seeds from `seed`) gives
/// the record folded from the sequence in its logged order, and the expected status.
/// Durable stores keep a summary row that this checks too (it is what `record` reads).
pub async fn call_log_order(
    log: &dyn CallLog,
    prefix: &str,
    seed: u64,
    rounds: u64,
) -> Result<(), String> {
    for round in 0..rounds {
        let call = CallId::new(format!("{prefix}-order-{seed}-{round}")).map_err(err)?;
        let sequences = call_sequences(&call)?;
        for (i, ((name, events), want)) in sequences.iter().zip(SEQUENCE_STATUSES).enumerate() {
            let call = CallId::new(format!("{call}-{i}")).map_err(err)?;
            let events: Vec<CallEvent> = events
                .iter()
                .map(|e| CallEvent {
                    call_id: call.clone(),
                    ..e.clone()
                })
                .collect();
            let canonical = CallRecord::from_events(&events).ok_or("empty sequence")?;
            ensure!(
                canonical.status == want,
                "{name}: canonical status {} (want {want})",
                canonical.status
            );
            for e in shuffled_with_duplicates(&events, seed.wrapping_add(round * 31 + i as u64)) {
                log.append(&e).await.map_err(err)?;
            }
            let got = log.record(&call).await.map_err(err)?;
            ensure!(
                got.as_ref() == Some(&canonical),
                "{name} (round {round}): shuffled, duplicated append gave {got:?}, canonical {canonical:?}"
            );
            let n = log.events(&call).await.map_err(err)?.len();
            ensure!(
                n == events.len(),
                "{name}: {n} events stored, {} distinct",
                events.len()
            );
        }
    }
    Ok(())
}

/// Concurrency of a [`CallLog`] (what group commit must keep): `tasks` concurrent
/// writers share `calls` calls of every [`call_sequences`] shape, each writer sending
/// the calls' events shuffled, with redeliveries, alternately one by one
/// ([`CallLog::append`]) and in slices ([`CallLog::append_all`]). Then every distinct
/// event is recorded exactly once over all writers (each `append_all` answers one
/// outcome per event, in order), and every call's record and events are the canonical
/// ones. `log_b` may be a second handle on the same store (another "instance").
pub async fn call_log_concurrency(
    log_a: Arc<dyn CallLog>,
    log_b: Arc<dyn CallLog>,
    prefix: &str,
    calls: usize,
    tasks: usize,
) -> Result<(), String> {
    let mut all: Vec<Vec<CallEvent>> = Vec::new();
    for c in 0..calls {
        let base = CallId::new(format!("{prefix}-conc-{c}")).map_err(err)?;
        for (i, (_, events)) in call_sequences(&base)?.into_iter().enumerate() {
            let call = CallId::new(format!("{base}-{i}")).map_err(err)?;
            all.push(
                events
                    .into_iter()
                    .map(|e| CallEvent {
                        call_id: call.clone(),
                        ..e
                    })
                    .collect(),
            );
        }
    }
    let flat: Vec<CallEvent> = all.iter().flatten().cloned().collect();
    let mut writers = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let log = if t % 2 == 0 {
            log_a.clone()
        } else {
            log_b.clone()
        };
        let mine = shuffled_with_duplicates(&flat, 7 + t as u64);
        writers.push(tokio::spawn(
            async move { write_mixed(&*log, &mine, t).await },
        ));
    }
    let mut recorded: std::collections::HashMap<(CallId, String), u32> = Default::default();
    for w in writers {
        for (e, outcome) in w.await.map_err(err)?? {
            if outcome == AppendOutcome::Recorded {
                *recorded.entry((e.call_id, e.idempotency_key)).or_default() += 1;
            }
        }
    }
    ensure!(
        recorded.len() == flat.len() && recorded.values().all(|n| *n == 1),
        "{} distinct events, {} recorded, some more than once: {:?}",
        flat.len(),
        recorded.len(),
        recorded
            .iter()
            .filter(|(_, n)| **n > 1)
            .take(3)
            .collect::<Vec<_>>()
    );
    check_canonical(&*log_a, &all).await
}

/// Sends `events` through `log`, alternating single appends and slices of up to 5;
/// returns each event with its outcome.
async fn write_mixed(
    log: &dyn CallLog,
    events: &[CallEvent],
    seed: usize,
) -> Result<Vec<(CallEvent, AppendOutcome)>, String> {
    let mut out = Vec::with_capacity(events.len());
    let mut rest = events;
    let mut i = seed;
    while !rest.is_empty() {
        let single = i.is_multiple_of(2);
        let n = if single {
            1
        } else {
            (i % 5 + 1).min(rest.len())
        };
        let (sent, later) = rest.split_at(n);
        let outcomes = if single {
            vec![log.append(&sent[0]).await.map_err(err)?]
        } else {
            log.append_all(sent).await.map_err(err)?
        };
        ensure!(
            outcomes.len() == sent.len(),
            "append_all answered {} outcomes for {} events",
            outcomes.len(),
            sent.len()
        );
        out.extend(sent.iter().cloned().zip(outcomes));
        rest = later;
        i += 1;
    }
    Ok(out)
}

/// Every call of `all` has its canonical record and exactly its distinct events.
async fn check_canonical(log: &dyn CallLog, all: &[Vec<CallEvent>]) -> Result<(), String> {
    for events in all {
        let call = &events[0].call_id;
        let canonical = CallRecord::from_events(events).ok_or("empty sequence")?;
        let got = log.record(call).await.map_err(err)?;
        ensure!(
            got.as_ref() == Some(&canonical),
            "{call}: concurrent appends gave {got:?}, canonical {canonical:?}"
        );
        let n = log.events(call).await.map_err(err)?.len();
        ensure!(
            n == events.len(),
            "{call}: {n} events stored, {} distinct",
            events.len()
        );
    }
    Ok(())
}

/// `append_all` answers one outcome per event in order, a duplicate inside the slice
/// included, and an empty slice is a no-op.
pub async fn call_log_append_all(log: &dyn CallLog, prefix: &str) -> Result<(), String> {
    let call = CallId::new(format!("{prefix}-all-CA1")).map_err(err)?;
    let ev = |key: &str, value: &str| {
        CallEvent::new(
            call.clone(),
            t0(),
            key,
            CallEventKind::IvrInput {
                step: "zip".into(),
                value: value.into(),
            },
        )
    };
    ensure!(
        log.append_all(&[]).await.map_err(err)?.is_empty(),
        "an empty append_all must answer no outcomes"
    );
    let got = log
        .append_all(&[ev("a", "78701"), ev("b", "78702"), ev("a", "78703")])
        .await
        .map_err(err)?;
    use AppendOutcome::{Duplicate, Recorded};
    ensure!(
        got == [Recorded, Recorded, Duplicate],
        "append_all with a repeated key answered {got:?}"
    );
    let again = log
        .append_all(&[ev("b", "x"), ev("c", "78704")])
        .await
        .map_err(err)?;
    ensure!(
        again == [Duplicate, Recorded],
        "a second append_all answered {again:?}"
    );
    let n = log.events(&call).await.map_err(err)?.len();
    ensure!(n == 3, "{n} events stored, 3 distinct");
    let first = &log.events(&call).await.map_err(err)?[0];
    ensure!(
        matches!(&first.kind, CallEventKind::IvrInput { value, .. } if value == "78701"),
        "the first append of a key wins, got {first:?}"
    );
    Ok(())
}

/// [`RoutingStore`]: claims, busy leases, take-over after a lease ends, the first
/// decision standing, release, and pruning.
pub async fn routing_store(store: &dyn RoutingStore, prefix: &str) -> Result<(), String> {
    let call = CallId::new(format!("{prefix}-route")).map_err(err)?;
    let (now, lease) = (t0(), t0() + chrono::Duration::seconds(10));
    let claim = store
        .claim_route(&call, "service:1", "a", now, lease)
        .await
        .map_err(err)?;
    ensure!(
        claim == RouteClaim::Claimed { took_over: false },
        "first claim: {claim:?}"
    );
    let again = store
        .claim_route(&call, "service:1", "a", now, lease)
        .await
        .map_err(err)?;
    ensure!(
        again == RouteClaim::Claimed { took_over: false },
        "the holder claiming again: {again:?}"
    );
    let busy = store
        .claim_route(&call, "service:1", "b", now, lease)
        .await
        .map_err(err)?;
    ensure!(
        matches!(&busy, RouteClaim::Busy { holder, until } if holder == "a" && *until == lease),
        "a second holder inside the lease: {busy:?}"
    );
    let other_step = store
        .claim_route(&call, "service:2", "b", now, lease)
        .await
        .map_err(err)?;
    ensure!(
        matches!(other_step, RouteClaim::Claimed { .. }),
        "another step is independent: {other_step:?}"
    );
    ensure!(
        store
            .route_decision(&call, "service:1")
            .await
            .map_err(err)?
            .is_none(),
        "no decision before one is made"
    );
    // The lease ends without a decision: b takes over; a's late decision still stands
    // because it is the first.
    let later = lease + chrono::Duration::seconds(1);
    let took = store
        .claim_route(
            &call,
            "service:1",
            "b",
            later,
            later + chrono::Duration::seconds(10),
        )
        .await
        .map_err(err)?;
    ensure!(
        took == RouteClaim::Claimed { took_over: true },
        "claim after the lease ended: {took:?}"
    );
    let mine = store
        .decide_route(&call, "service:1", "a", "<Response>A</Response>", later)
        .await
        .map_err(err)?;
    ensure!(mine == RouteDecision::Mine, "first decision: {mine:?}");
    let earlier = store
        .decide_route(&call, "service:1", "b", "<Response>B</Response>", later)
        .await
        .map_err(err)?;
    ensure!(
        earlier == RouteDecision::Earlier("<Response>A</Response>".into()),
        "second decision: {earlier:?}"
    );
    let decided = store
        .claim_route(&call, "service:1", "c", later, later)
        .await
        .map_err(err)?;
    ensure!(
        decided == RouteClaim::Decided("<Response>A</Response>".into()),
        "claim after the decision: {decided:?}"
    );
    let stored = store
        .route_decision(&call, "service:1")
        .await
        .map_err(err)?;
    ensure!(
        stored.as_deref() == Some("<Response>A</Response>"),
        "stored decision: {stored:?}"
    );
    // Release: only the holder, only undecided; then anyone may claim at once.
    ensure!(
        !store
            .release_route(&call, "service:1", "a")
            .await
            .map_err(err)?,
        "a decided step is never released"
    );
    ensure!(
        !store
            .release_route(&call, "service:2", "a")
            .await
            .map_err(err)?,
        "only the holder releases"
    );
    ensure!(
        store
            .release_route(&call, "service:2", "b")
            .await
            .map_err(err)?,
        "the holder releases"
    );
    ensure!(
        !store
            .release_route(&call, "service:2", "b")
            .await
            .map_err(err)?,
        "releasing twice"
    );
    let fresh = store
        .claim_route(&call, "service:2", "c", now, lease)
        .await
        .map_err(err)?;
    ensure!(
        fresh == RouteClaim::Claimed { took_over: false },
        "claim after a release: {fresh:?}"
    );
    // A decision without a claim (the row was pruned) is stored.
    let bare = CallId::new(format!("{prefix}-bare")).map_err(err)?;
    let d = store
        .decide_route(&bare, "x", "z", "<Response/>", now)
        .await
        .map_err(err)?;
    ensure!(d == RouteDecision::Mine, "decision without a claim: {d:?}");
    // Pruning drops rows older than the bound and keeps the rest.
    let old = CallId::new(format!("{prefix}-old")).map_err(err)?;
    let long_ago = now - chrono::Duration::days(3);
    store
        .decide_route(&old, "service:1", "o", "<Response/>", long_ago)
        .await
        .map_err(err)?;
    let pruned = store
        .prune_routes(now - chrono::Duration::days(1))
        .await
        .map_err(err)?;
    ensure!(
        pruned >= 1,
        "pruned {pruned} rows (want at least the old one)"
    );
    ensure!(
        store
            .route_decision(&old, "service:1")
            .await
            .map_err(err)?
            .is_none(),
        "the old decision is pruned"
    );
    ensure!(
        store
            .route_decision(&call, "service:1")
            .await
            .map_err(err)?
            .is_some(),
        "a recent decision is kept"
    );
    Ok(())
}

/// [`RoutingStore`] under contention: in each of `rounds`, `per_round` holders claim the
/// same step at once through two handles (two instances); exactly one gets it.
pub async fn routing_concurrency(
    a: Arc<dyn RoutingStore>,
    b: Arc<dyn RoutingStore>,
    prefix: &str,
    rounds: usize,
    per_round: usize,
) -> Result<(), String> {
    for round in 0..rounds {
        let call = CallId::new(format!("{prefix}-race-{round}")).map_err(err)?;
        let mut tasks = Vec::with_capacity(per_round);
        for i in 0..per_round {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let call = call.clone();
            tasks.push(tokio::spawn(async move {
                let lease = t0() + chrono::Duration::seconds(10);
                store
                    .claim_route(&call, "service:1", &format!("h{i}"), t0(), lease)
                    .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            if matches!(
                t.await.map_err(err)?.map_err(err)?,
                RouteClaim::Claimed { .. }
            ) {
                won += 1;
            }
        }
        ensure!(
            won == 1,
            "round {round}: {won} of {per_round} racing claims won (want 1)"
        );
    }
    Ok(())
}

fn ours<'a>(
    claimed: &'a [PostbackDelivery],
    prefix: &'a str,
) -> impl Iterator<Item = &'a PostbackDelivery> + 'a {
    claimed
        .iter()
        .filter(move |d| d.call.as_str().starts_with(prefix))
}

/// [`PostbackOutbox`]: idempotent enqueue, due times, leases (busy, taken over after
/// they end), only the holder recording, retries, delivery and abandonment for good,
/// and a call's deliveries listed by publisher. Claims may return other callers' rows
/// in a shared database; only this run's (by `prefix`) are checked.
pub async fn postback_outbox(store: &dyn PostbackOutbox, prefix: &str) -> Result<(), String> {
    let prefix = &format!("{prefix}-pb-");
    let call = CallId::new(format!("{prefix}1")).map_err(err)?;
    postback_enqueue(store, &call).await?;
    postback_claims(store, prefix).await?;
    postback_failed_attempt(store, prefix, &call).await?;
    postback_takeover_and_end(store, prefix, &call).await?;
    postback_limit(store, prefix).await
}

/// The suite's two instants: when deliveries are enqueued, and when they fall due.
fn postback_times() -> (DateTime<Utc>, DateTime<Utc>) {
    (t0(), t0() + chrono::Duration::seconds(5))
}

/// The end of a lease taken at `t`.
fn postback_lease(t: DateTime<Utc>) -> DateTime<Utc> {
    t + chrono::Duration::seconds(30)
}

/// Phase 1: enqueueing is idempotent per call × publisher; listing by publisher.
async fn postback_enqueue(store: &dyn PostbackOutbox, call: &CallId) -> Result<(), String> {
    let (now, due) = postback_times();
    let d = PostbackDelivery::new(call.clone(), "pub-a", now, due);
    ensure!(
        store.enqueue_postback(&d).await.map_err(err)?,
        "first enqueue is new"
    );
    ensure!(
        !store.enqueue_postback(&d).await.map_err(err)?,
        "enqueue twice is a no-op"
    );
    let other = PostbackDelivery::new(call.clone(), "pub-b", now, due);
    ensure!(
        store.enqueue_postback(&other).await.map_err(err)?,
        "another publisher is new"
    );
    let listed = store.postbacks(call).await.map_err(err)?;
    ensure!(
        listed.len() == 2 && listed[0].publisher == "pub-a" && listed[1].publisher == "pub-b",
        "listed by publisher: {listed:?}"
    );
    ensure!(
        listed[0] == d,
        "stored as enqueued: {:?} vs {d:?}",
        listed[0]
    );
    Ok(())
}

/// Phase 2: nothing is claimed before it is due, or while leased.
async fn postback_claims(store: &dyn PostbackOutbox, prefix: &str) -> Result<(), String> {
    let (now, due) = postback_times();
    let lease = postback_lease;
    let early = store
        .claim_postbacks("a", now, lease(now), 100)
        .await
        .map_err(err)?;
    ensure!(
        ours(&early, prefix).count() == 0,
        "nothing is due before its time: {early:?}"
    );
    let claimed = store
        .claim_postbacks("a", due, lease(due), 100)
        .await
        .map_err(err)?;
    let mine: Vec<_> = ours(&claimed, prefix).collect();
    ensure!(
        mine.len() == 2,
        "both due deliveries are claimed: {claimed:?}"
    );
    ensure!(
        mine.iter()
            .all(|d| d.holder.as_deref() == Some("a") && d.lease_until == Some(lease(due))),
        "claimed with the holder and lease: {mine:?}"
    );
    let busy = store
        .claim_postbacks("b", due, lease(due), 100)
        .await
        .map_err(err)?;
    ensure!(
        ours(&busy, prefix).count() == 0,
        "leased deliveries are not claimed again: {busy:?}"
    );
    Ok(())
}

/// Phase 3: only the holder records a failed attempt, once, and the retry waits.
async fn postback_failed_attempt(
    store: &dyn PostbackOutbox,
    prefix: &str,
    call: &CallId,
) -> Result<(), String> {
    let (_, due) = postback_times();
    let lease = postback_lease;
    // A failed attempt: only the holder records it.
    let retry_at = due + chrono::Duration::seconds(10);
    let failed = PostbackAttempt::new(
        due,
        "https://p.example/x",
        AttemptOutcome::RetryAt(retry_at),
    )
    .with_status(500)
    .with_error("HTTP 500");
    ensure!(
        !store
            .record_postback_attempt(call, "pub-a", "b", &failed)
            .await
            .map_err(err)?,
        "a non-holder cannot record"
    );
    ensure!(
        store
            .record_postback_attempt(call, "pub-a", "a", &failed)
            .await
            .map_err(err)?,
        "the holder records"
    );
    let after = store.postbacks(call).await.map_err(err)?;
    let a = &after[0];
    ensure!(
        a.state == DeliveryState::Pending
            && a.attempts == 1
            && a.next_attempt_at == Some(retry_at)
            && a.last_status == Some(500)
            && a.last_error.as_deref() == Some("HTTP 500")
            && a.url.as_deref() == Some("https://p.example/x")
            && a.last_attempt_at == Some(due)
            && a.holder.is_none()
            && a.lease_until.is_none(),
        "a failed attempt is recorded: {a:?}"
    );
    ensure!(
        !store
            .record_postback_attempt(call, "pub-a", "a", &failed)
            .await
            .map_err(err)?,
        "recording twice needs a new claim"
    );
    let before_retry = due + chrono::Duration::seconds(9);
    let c = store
        .claim_postbacks("b", before_retry, lease(before_retry), 100)
        .await
        .map_err(err)?;
    ensure!(
        ours(&c, prefix).count() == 0,
        "not claimed before the retry is due (pub-b is still leased): {c:?}"
    );
    Ok(())
}

/// Phase 4: a lapsed lease is taken over; delivered and abandoned deliveries are done.
async fn postback_takeover_and_end(
    store: &dyn PostbackOutbox,
    prefix: &str,
    call: &CallId,
) -> Result<(), String> {
    let (_, due) = postback_times();
    let lease = postback_lease;
    // pub-b's lease (a's) ends: b takes it over; a can no longer record it.
    let late = lease(due) + chrono::Duration::seconds(1);
    let taken = store
        .claim_postbacks("b", late, lease(late), 100)
        .await
        .map_err(err)?;
    let taken: Vec<_> = ours(&taken, prefix).map(|d| d.publisher.clone()).collect();
    ensure!(
        taken == vec!["pub-b".to_owned(), "pub-a".to_owned()],
        "the lapsed lease (due first) and the retry are claimed, earliest due first: {taken:?}"
    );
    let ok = PostbackAttempt::new(late, "https://p.example/x", AttemptOutcome::Delivered)
        .with_status(200);
    ensure!(
        !store
            .record_postback_attempt(call, "pub-b", "a", &ok)
            .await
            .map_err(err)?,
        "the holder whose lease was taken over cannot record"
    );
    ensure!(
        store
            .record_postback_attempt(call, "pub-b", "b", &ok)
            .await
            .map_err(err)?,
        "the new holder records the delivery"
    );
    let gave_up = PostbackAttempt::new(late, "https://p.example/x", AttemptOutcome::GiveUp)
        .with_error("timed out");
    ensure!(
        store
            .record_postback_attempt(call, "pub-a", "b", &gave_up)
            .await
            .map_err(err)?,
        "giving up is recorded"
    );
    let end = store.postbacks(call).await.map_err(err)?;
    ensure!(
        end[0].state == DeliveryState::Abandoned
            && end[0].attempts == 2
            && end[0].next_attempt_at.is_none()
            && end[0].last_status.is_none()
            && end[0].last_error.as_deref() == Some("timed out"),
        "abandoned: {:?}",
        end[0]
    );
    ensure!(
        end[1].state == DeliveryState::Delivered
            && end[1].delivered_at == Some(late)
            && end[1].attempts == 1
            && end[1].next_attempt_at.is_none(),
        "delivered: {:?}",
        end[1]
    );
    let much_later = late + chrono::Duration::days(1);
    let never = store
        .claim_postbacks("c", much_later, lease(much_later), 100)
        .await
        .map_err(err)?;
    ensure!(
        ours(&never, prefix).count() == 0,
        "done deliveries are never claimed: {never:?}"
    );
    ensure!(
        !store
            .record_postback_attempt(call, "pub-b", "b", &ok)
            .await
            .map_err(err)?,
        "a delivered delivery records nothing more"
    );
    let again = PostbackDelivery::new(call.clone(), "pub-b", much_later, much_later);
    ensure!(
        !store.enqueue_postback(&again).await.map_err(err)?,
        "re-enqueue after delivery"
    );
    ensure!(
        store.postbacks(call).await.map_err(err)?[1] == end[1],
        "re-enqueue leaves the delivered delivery as it was"
    );
    Ok(())
}

/// Phase 5: the claim limit takes the earliest due; a call without deliveries.
async fn postback_limit(store: &dyn PostbackOutbox, prefix: &str) -> Result<(), String> {
    let (now, _) = postback_times();
    let lease = postback_lease;
    // The limit, and earliest-due first.
    let l1 = CallId::new(format!("{prefix}lim1")).map_err(err)?;
    let l2 = CallId::new(format!("{prefix}lim2")).map_err(err)?;
    let far = t0() + chrono::Duration::days(30);
    let (e1, e2) = (far, far - chrono::Duration::seconds(1));
    store
        .enqueue_postback(&PostbackDelivery::new(l1, "p", now, e1))
        .await
        .map_err(err)?;
    store
        .enqueue_postback(&PostbackDelivery::new(l2.clone(), "p", now, e2))
        .await
        .map_err(err)?;
    let one = store
        .claim_postbacks("d", e1, lease(e1), 1)
        .await
        .map_err(err)?;
    ensure!(
        one.len() <= 1 && ours(&one, prefix).all(|d| d.call == l2),
        "limit 1 takes the earliest due: {one:?}"
    );
    let none = store
        .postbacks(&CallId::new(format!("{prefix}none")).map_err(err)?)
        .await
        .map_err(err)?;
    ensure!(none.is_empty(), "a call without deliveries: {none:?}");
    Ok(())
}

/// [`PostbackOutbox`] under contention: `deliveries` due deliveries, `claimers` holders
/// per handle claiming at once through two handles (two instances); every delivery is
/// claimed by exactly one holder.
pub async fn postback_concurrency(
    a: Arc<dyn PostbackOutbox>,
    b: Arc<dyn PostbackOutbox>,
    prefix: &str,
    deliveries: usize,
    claimers: usize,
) -> Result<(), String> {
    let prefix = format!("{prefix}-pbrace-");
    let now = t0() + chrono::Duration::days(60);
    for i in 0..deliveries {
        let call = CallId::new(format!("{prefix}{i}")).map_err(err)?;
        a.enqueue_postback(&PostbackDelivery::new(call, "p", now, now))
            .await
            .map_err(err)?;
    }
    let until = now + chrono::Duration::seconds(30);
    let mut tasks = Vec::new();
    for i in 0..claimers * 2 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.claim_postbacks(&format!("h{i}"), now, until, 3).await
        }));
    }
    let mut seen = std::collections::HashMap::new();
    for t in tasks {
        let claimed = t.await.map_err(err)?.map_err(err)?;
        for d in ours(&claimed, &prefix) {
            if let Some(h) = seen.insert(d.call.clone(), d.holder.clone()) {
                return Err(format!(
                    "{} claimed twice ({h:?} and {:?})",
                    d.call, d.holder
                ));
            }
        }
    }
    // Whatever was not claimed yet is claimed now, once.
    let rest = a
        .claim_postbacks("last", now, until, 10_000)
        .await
        .map_err(err)?;
    for d in ours(&rest, &prefix) {
        if seen.insert(d.call.clone(), d.holder.clone()).is_some() {
            return Err(format!("{} claimed twice", d.call));
        }
    }
    ensure!(
        seen.len() == deliveries,
        "claimed {} of {deliveries}",
        seen.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemoryCallLog, MemoryCapStore, MemoryDurationHistory, MemorySeenCallers};

    #[tokio::test]
    async fn memory_cap_store() {
        cap_store(&MemoryCapStore::new(), "t").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_cap_store_concurrency() {
        let s: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
        cap_store_concurrency(s.clone(), s, "t", 1000, 100)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn memory_seen_callers() {
        seen_callers(&MemorySeenCallers::new(), "t").await.unwrap();
        seen_claims(&MemorySeenCallers::new(), "t").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_seen_claims_concurrency() {
        let s: Arc<dyn SeenCallers> = Arc::new(MemorySeenCallers::new());
        seen_claims_concurrency(s.clone(), s, "t", 20, 8)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn memory_duration_history() {
        duration_history(&MemoryDurationHistory::new(), "t")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn memory_quality_history() {
        quality_history(&crate::state::MemoryQualityHistory::new(), "t")
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_quality_history_concurrency() {
        let h: Arc<dyn QualityHistory> = Arc::new(crate::state::MemoryQualityHistory::new());
        quality_history_concurrency(h.clone(), h, "t", 40)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn memory_call_log() {
        call_log(&MemoryCallLog::new(), "t").await.unwrap();
    }

    #[tokio::test]
    async fn memory_call_log_append_all() {
        call_log_append_all(&MemoryCallLog::new(), "t")
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_call_log_concurrency() {
        let log: Arc<dyn CallLog> = Arc::new(MemoryCallLog::new());
        call_log_concurrency(log.clone(), log, "t", 3, 6)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn memory_call_log_order() {
        call_log_order(&MemoryCallLog::new(), "t", 7, 8)
            .await
            .unwrap();
    }
}

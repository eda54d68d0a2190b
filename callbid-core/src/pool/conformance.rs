//! The conformance suite every [`NumberPoolStore`] must pass. Pools are named with
//! `prefix`, so the suite can run repeatedly against a shared database. Each function
//! returns `Err(description)` on the first deviation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn secs(s: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(s)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn id<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(err)
}

fn num(i: usize) -> Result<PoolNumber, String> {
    PoolNumber::parse(&format!("+1512555{:04}", 1000 + i)).map_err(err)
}

fn phone(s: &str) -> Result<PhoneNumber, String> {
    PhoneNumber::parse(s).map_err(err)
}

/// A pool of `n` numbers with 600 s leases, 60 s heartbeat, a 1-day lock.
fn pool(
    name: &str,
    n: usize,
    mode: PoolMode,
    lock: LockKey,
    exhaustion: ExhaustionPolicy,
) -> Result<NumberPool, String> {
    let numbers = (0..n).map(num).collect::<Result<Vec<_>, _>>()?;
    NumberPool::builder(id(name)?)
        .mode(mode)
        .lock_key(lock)
        .exhaustion(exhaustion)
        .lock_period(Duration::from_secs(86_400))
        .overflow_number(phone("+15125559999")?)
        .max_leases_per_visitor(3)
        .numbers(numbers)
        .build()
        .map_err(err)
}

fn req(p: &NumberPool, v: &str, l: &str, at: DateTime<Utc>) -> Result<LeaseRequest, String> {
    Ok(LeaseRequest::new(p.id.clone(), id(v)?, id(l)?, at))
}

async fn leased(s: &dyn NumberPoolStore, r: &LeaseRequest) -> Result<(Lease, Grant), String> {
    match s.lease(r).await.map_err(err)? {
        LeaseOutcome::Leased { lease, grant } => Ok((lease, grant)),
        other => Err(format!("expected a lease for {r:?}, got {other:?}")),
    }
}

fn call(
    p: &NumberPool,
    sid: &str,
    dialed: &PhoneNumber,
    caller: &str,
    at: DateTime<Utc>,
) -> Result<InboundCall, String> {
    InboundCall::new(p.id.clone(), sid, dialed.clone(), Some(phone(caller)?), at).map_err(err)
}

/// The whole single-handle suite.
pub async fn pool_store(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    leasing(s, prefix).await?;
    renewal(s, prefix).await?;
    attribution_and_locks(s, prefix).await?;
    caller_locks(s, prefix).await?;
    exhaustion(s, prefix).await?;
    listing_mode(s, prefix).await?;
    numbers_and_health(s, prefix).await?;
    Ok(())
}

/// Leasing: distinct numbers, same lease for the same key, visitor cap, unknown pool,
/// oversized context refused.
pub async fn leasing(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    let p = pool(
        &format!("{prefix}-lease"),
        4,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    s.put_pool(&p, t0()).await.map_err(err)?;
    let got = s.pool(&p.id).await.map_err(err)?.ok_or("pool not stored")?;
    ensure!(
        got.numbers.len() == 4 && got.lease_length == p.lease_length,
        "pool read back wrong: {got:?}"
    );
    let mut ctx = LeaseContext {
        search_term: Some("used civic".into()),
        ..LeaseContext::default()
    };
    ctx.tags.insert("listingId".into(), "123".into());
    let (a, g) = leased(s, &req(&p, "v1", "l1", t0())?.with_context(ctx.clone())).await?;
    ensure!(
        g == Grant::Fresh && a.exclusive,
        "first lease must be fresh, exclusive: {g:?}"
    );
    ensure!(a.context == ctx, "context must travel with the lease");
    ensure!(
        a.expires_at == secs(600),
        "lease must last lease_length: {}",
        a.expires_at
    );
    ensure!(
        a.number == num(0)?.number,
        "the free-longest (never used) lowest number first: {}",
        a.number
    );
    let (a2, g2) = leased(s, &req(&p, "v1", "l1", secs(100))?).await?;
    ensure!(
        g2 == Grant::Existing && a2.id == a.id && a2.expires_at == secs(700),
        "same key gives the same lease, renewed: {g2:?} {a2:?}"
    );
    let (b, _) = leased(s, &req(&p, "v1", "l2", secs(100))?).await?;
    let (c, _) = leased(s, &req(&p, "v2", "l1", secs(100))?).await?;
    ensure!(
        b.number != a.number && c.number != a.number && b.number != c.number,
        "live leases must hold distinct numbers"
    );
    leased(s, &req(&p, "v1", "l3", secs(100))?).await?;
    let capped = s
        .lease(&req(&p, "v1", "l4", secs(100))?)
        .await
        .map_err(err)?;
    ensure!(
        capped == LeaseOutcome::VisitorCap { limit: 3 },
        "4th live lease of a visitor must hit the cap: {capped:?}"
    );
    let unknown = s
        .lease(&LeaseRequest::new(
            id(&format!("{prefix}-nope"))?,
            id("v1")?,
            id("l1")?,
            t0(),
        ))
        .await
        .map_err(err)?;
    ensure!(
        unknown == LeaseOutcome::UnknownPool,
        "unknown pool: {unknown:?}"
    );
    let big = LeaseContext {
        referrer: Some("x".repeat(MAX_CONTEXT_TEXT + 1)),
        ..LeaseContext::default()
    };
    let e = s
        .lease(&req(&p, "v9", "l1", secs(100))?.with_context(big))
        .await;
    ensure!(
        matches!(&e, Err(StateError::Invalid(v)) if v.field == "referrer"),
        "oversized referrer must be refused naming the field: {e:?}"
    );
    // After expiry, the number goes to someone else; the old lease is not revived.
    let (d, g) = leased(s, &req(&p, "v3", "l9", secs(800))?).await?;
    ensure!(g == Grant::Fresh, "{g:?}");
    ensure!(
        d.number == a.number,
        "the number free longest (a's, ended at 700) comes first: {}",
        d.number
    );
    Ok(())
}

/// Renewal: idempotent, never shortens, ended leases stay ended; release.
pub async fn renewal(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    let p = pool(
        &format!("{prefix}-renew"),
        2,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    s.put_pool(&p, t0()).await.map_err(err)?;
    let (a, _) = leased(s, &req(&p, "v1", "l1", t0())?).await?;
    for _ in 0..2 {
        let r = s.renew(&p.id, &a.id, secs(300)).await.map_err(err)?;
        ensure!(
            r == RenewOutcome::Renewed {
                expires_at: secs(900)
            },
            "renew twice at 300 → 900: {r:?}"
        );
    }
    let r = s.renew(&p.id, &a.id, secs(100)).await.map_err(err)?;
    ensure!(
        r == RenewOutcome::Renewed {
            expires_at: secs(900)
        },
        "an older heartbeat never shortens: {r:?}"
    );
    let r = s.renew(&p.id, &a.id, secs(900)).await.map_err(err)?;
    ensure!(
        r == RenewOutcome::Ended { at: secs(900) },
        "renewal at the end instant is too late: {r:?}"
    );
    let r = s
        .renew(&p.id, &id("LSnope")?, secs(10))
        .await
        .map_err(err)?;
    ensure!(r == RenewOutcome::Unknown, "{r:?}");
    let r = s
        .renew(&id(&format!("{prefix}-renew-other"))?, &a.id, secs(10))
        .await
        .map_err(err)?;
    ensure!(
        r == RenewOutcome::Unknown,
        "a lease is only found in its own pool: {r:?}"
    );
    let (b, _) = leased(s, &req(&p, "v2", "l1", secs(1000))?).await?;
    ensure!(
        s.release(&p.id, &b.id, secs(1100)).await.map_err(err)?,
        "release of a live lease"
    );
    ensure!(
        !s.release(&p.id, &b.id, secs(1100)).await.map_err(err)?,
        "release is idempotent"
    );
    let r = s.renew(&p.id, &b.id, secs(1101)).await.map_err(err)?;
    ensure!(
        r == RenewOutcome::Ended { at: secs(1100) },
        "a released lease ends at release: {r:?}"
    );
    // Its number is free again at once (both numbers free: b's ended first? a ended 900).
    let (c, g) = leased(s, &req(&p, "v3", "l1", secs(1100))?).await?;
    ensure!(
        g == Grant::Fresh && c.number == a.number,
        "free longest first (a ended at 900, b at 1100): {}",
        c.number
    );
    Ok(())
}

/// Attribution by lease and by number lock; idempotent recording; the locked number
/// comes back to its visitor and is withheld from others.
pub async fn attribution_and_locks(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    let p = pool(
        &format!("{prefix}-attr"),
        2,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    s.put_pool(&p, t0()).await.map_err(err)?;
    let (a, _) = leased(s, &req(&p, "v1", "l1", t0())?).await?;
    let c1 = call(&p, "CA1", &a.number, "+12125550100", secs(60))?;
    let r = s.attribute(&c1).await.map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, via: Via::Lease } if lease.id == a.id),
        "live lease: {r:?}"
    );
    let r1 = s.record_call(&c1).await.map_err(err)?;
    ensure!(r1 == r, "record_call resolves as attribute: {r1:?}");
    // Idempotent per call sid, even asked later.
    let mut again = c1.clone();
    again.at = secs(5000);
    ensure!(
        s.record_call(&again).await.map_err(err)? == r1,
        "record_call idempotent per sid"
    );
    // Lease expired at 600; the lock keeps the number; another caller's call still goes to the lock (number-wide).
    let late = call(&p, "CA2", &a.number, "+13105550100", secs(7200))?;
    let r = s.record_call(&late).await.map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, via: Via::Lock } if lease.id == a.id),
        "lock on the number: {r:?}"
    );
    // Others get the other number; with it taken the pool is exhausted (the locked one is withheld).
    let (b, _) = leased(s, &req(&p, "v2", "l1", secs(7200))?).await?;
    ensure!(
        b.number != a.number,
        "a locked number is not leased to others"
    );
    let o = s
        .lease(&req(&p, "v3", "l1", secs(7200))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(o, LeaseOutcome::Overflow { .. }),
        "exhausted → overflow: {o:?}"
    );
    // The visitor comes back: same number.
    let (back, g) = leased(s, &req(&p, "v1", "l1", secs(8000))?).await?;
    ensure!(
        g == Grant::Locked && back.number == a.number && back.exclusive,
        "returning visitor sees the locked number: {g:?} {back:?}"
    );
    let c3 = call(&p, "CA3", &a.number, "+12125550100", secs(8100))?;
    let r = s.record_call(&c3).await.map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, via: Via::Lease } if lease.id == back.id),
        "the fresher lease of the same key wins: {r:?}"
    );
    // After the lock period (1 day after the last call at 8100) and lease end: expired.
    let after_lock = secs(8100 + 86_400 + 1);
    let r = s
        .attribute(&call(&p, "CA4", &a.number, "+12125550100", after_lock)?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(&r, Attribution::ExpiredLease { last: Some(l) } if l.id == back.id),
        "after the lock: expired lease, last one named: {r:?}"
    );
    // Overflow and unknown numbers.
    let o = s
        .record_call(&call(
            &p,
            "CA5",
            &phone("+15125559999")?,
            "+12125550100",
            secs(10),
        )?)
        .await
        .map_err(err)?;
    ensure!(matches!(o, Attribution::Overflow { .. }), "{o:?}");
    let u = s
        .attribute(&call(
            &p,
            "CA6",
            &phone("+15125550001")?,
            "+12125550100",
            secs(10),
        )?)
        .await
        .map_err(err)?;
    ensure!(matches!(u, Attribution::UnknownNumber { .. }), "{u:?}");
    // A call before any lease on a pool number.
    let p2 = pool(
        &format!("{prefix}-attr2"),
        1,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    s.put_pool(&p2, t0()).await.map_err(err)?;
    let r = s
        .attribute(&call(
            &p2,
            "CA7",
            &num(0)?.number,
            "+12125550100",
            secs(10),
        )?)
        .await
        .map_err(err)?;
    ensure!(
        r == Attribution::ExpiredLease { last: None },
        "never leased: {r:?}"
    );
    Ok(())
}

/// (number, caller) locks: the number serves another visitor while the caller's lock
/// still resolves; a call without caller id locks the whole number.
pub async fn caller_locks(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    let p = pool(
        &format!("{prefix}-proxy"),
        1,
        PoolMode::VisitorListing,
        LockKey::NumberAndCaller,
        ExhaustionPolicy::Overflow,
    )?;
    s.put_pool(&p, t0()).await.map_err(err)?;
    let (a, _) = leased(s, &req(&p, "v1", "l1", t0())?).await?;
    s.record_call(&call(&p, "CB1", &a.number, "+12125550100", secs(60))?)
        .await
        .map_err(err)?;
    // Lease ends at 600; the number is leasable by v2 (not by v1 for another listing).
    let o = s
        .lease(&req(&p, "v1", "l2", secs(700))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(o, LeaseOutcome::Overflow { .. }),
        "a visitor is not leased a number it holds a lock on: {o:?}"
    );
    let (b, g) = leased(s, &req(&p, "v2", "l7", secs(700))?).await?;
    ensure!(
        g == Grant::Fresh && b.number == a.number && b.exclusive,
        "the number serves another visitor: {g:?}"
    );
    let r = s
        .attribute(&call(&p, "CB2", &a.number, "+12125550100", secs(800))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, via: Via::Lock } if lease.id == a.id),
        "the locked caller still reaches v1: {r:?}"
    );
    let r = s
        .attribute(&call(&p, "CB3", &a.number, "+13105550199", secs(800))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, via: Via::Lease } if lease.id == b.id),
        "another caller reaches v2: {r:?}"
    );
    // v1 returns to l1 while v2 holds the number: a shared (non-exclusive) lease.
    let (back, g) = leased(s, &req(&p, "v1", "l1", secs(900))?).await?;
    ensure!(
        g == Grant::Locked && back.number == a.number && !back.exclusive,
        "resumed lock shares the number: {g:?} {back:?}"
    );
    // Withheld caller id: the whole number is locked.
    let nocid =
        InboundCall::new(p.id.clone(), "CB4", a.number.clone(), None, secs(950)).map_err(err)?;
    let r = s.record_call(&nocid).await.map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, .. } if lease.id == b.id),
        "no caller id: live exclusive lease: {r:?}"
    );
    let o = s
        .lease(&req(&p, "v3", "l1", secs(2000))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(o, LeaseOutcome::Overflow { .. }),
        "number-wide lock after a call without caller id: {o:?}"
    );
    Ok(())
}

/// Exhaustion: overflow, exhausted without an overflow number, reclaim the oldest lock.
pub async fn exhaustion(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    let p = pool(
        &format!("{prefix}-reclaim"),
        2,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::ReclaimOldest,
    )?;
    s.put_pool(&p, t0()).await.map_err(err)?;
    let (a, _) = leased(s, &req(&p, "v1", "l1", t0())?).await?;
    let (b, _) = leased(s, &req(&p, "v2", "l1", secs(10))?).await?;
    s.record_call(&call(&p, "CR1", &a.number, "+12125550100", secs(20))?)
        .await
        .map_err(err)?;
    s.record_call(&call(&p, "CR2", &b.number, "+12125550101", secs(30))?)
        .await
        .map_err(err)?;
    // Both locked, both leases ended: reclaim the one whose lease ended first (a).
    let (c, g) = leased(s, &req(&p, "v3", "l1", secs(1000))?).await?;
    ensure!(
        g == Grant::Reclaimed { from: a.id.clone() } && c.number == a.number,
        "reclaim the oldest: {g:?} {c:?}"
    );
    let r = s
        .attribute(&call(&p, "CR3", &a.number, "+12125550100", secs(1100))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, .. } if lease.id == c.id),
        "a reclaimed number belongs to its new lease: {r:?}"
    );
    let (d, _) = leased(s, &req(&p, "v4", "l1", secs(1000))?).await?;
    ensure!(d.number == b.number, "then the next oldest");
    let o = s
        .lease(&req(&p, "v5", "l1", secs(1000))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(o, LeaseOutcome::Overflow { .. }),
        "only live leases left → overflow: {o:?}"
    );
    let mut p2 = pool(
        &format!("{prefix}-nooverflow"),
        1,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    p2.overflow_number = None;
    s.put_pool(&p2, t0()).await.map_err(err)?;
    leased(s, &req(&p2, "v1", "l1", t0())?).await?;
    let o = s.lease(&req(&p2, "v2", "l1", t0())?).await.map_err(err)?;
    ensure!(o == LeaseOutcome::Exhausted, "{o:?}");
    let h = s
        .health(&p2.id, t0(), secs(10), Duration::from_secs(3600))
        .await
        .map_err(err)?;
    ensure!(
        h.lease_overflows == 1 && h.leases_granted == 1 && h.lease_overflow_permille() == 500,
        "{h:?}"
    );
    Ok(())
}

/// Listing mode: every visitor of a listing shares its one lease.
pub async fn listing_mode(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    let p = pool(
        &format!("{prefix}-listing"),
        2,
        PoolMode::Listing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    s.put_pool(&p, t0()).await.map_err(err)?;
    let (a, _) = leased(s, &req(&p, "v1", "l1", t0())?).await?;
    let (b, g) = leased(s, &req(&p, "v2", "l1", secs(100))?).await?;
    ensure!(
        g == Grant::Existing && b.id == a.id && b.expires_at == secs(700),
        "listing lease shared and renewed: {g:?}"
    );
    let (c, _) = leased(s, &req(&p, "v2", "l2", secs(100))?).await?;
    ensure!(c.number != a.number, "another listing, another number");
    Ok(())
}

/// Number states, retiring, health (peak use, locked, calls by kind, idle), purge.
pub async fn numbers_and_health(s: &dyn NumberPoolStore, prefix: &str) -> Result<(), String> {
    let p = pool(
        &format!("{prefix}-health"),
        3,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    s.put_pool(&p, t0()).await.map_err(err)?;
    ensure!(
        s.add_numbers(&p.id, &[num(0)?, num(3)?], t0())
            .await
            .map_err(err)?
            == 1,
        "only new numbers are added"
    );
    let e = s
        .add_numbers(&id(&format!("{prefix}-nope"))?, &[num(0)?], t0())
        .await;
    ensure!(
        matches!(&e, Err(StateError::Invalid(v)) if v.field == "pool"),
        "{e:?}"
    );
    let (a, _) = leased(s, &req(&p, "v1", "l1", t0())?).await?;
    let (b, _) = leased(s, &req(&p, "v2", "l1", secs(300))?).await?;
    s.record_call(&call(&p, "CH1", &a.number, "+12125550100", secs(100))?)
        .await
        .map_err(err)?;
    s.record_call(&call(
        &p,
        "CH2",
        &phone("+15125559999")?,
        "+12125550100",
        secs(100),
    )?)
    .await
    .map_err(err)?;
    // The report's raw material: leases by creation time, calls by arrival.
    let made = s
        .leases_created(&p.id, t0(), secs(301))
        .await
        .map_err(err)?;
    ensure!(
        made.iter().map(|l| l.id.clone()).collect::<Vec<_>>() == [a.id.clone(), b.id.clone()],
        "leases_created: {made:?}"
    );
    let later = s
        .leases_created(&p.id, secs(1), secs(300))
        .await
        .map_err(err)?;
    ensure!(later.is_empty(), "the window is [since, until): {later:?}");
    let calls = s
        .calls_recorded(&p.id, t0(), secs(101))
        .await
        .map_err(err)?;
    let kinds: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.call_sid.as_str(), c.attribution.kind()))
        .collect();
    ensure!(
        kinds == [("CH1", "attributed"), ("CH2", "overflow")],
        "calls_recorded: {kinds:?}"
    );
    ensure!(
        calls[0].attribution.lease().map(|l| &l.id) == Some(&a.id),
        "the recorded call keeps its lease"
    );
    let at = secs(650); // a ended at 600 (locked); b live until 900
    let st = s.numbers(&p.id, at).await.map_err(err)?;
    let states: HashMap<String, NumberState> = st
        .iter()
        .map(|n| (n.number.number.to_string(), n.state))
        .collect();
    ensure!(states.len() == 4, "{states:?}");
    ensure!(
        states[a.number.as_str()] == NumberState::Locked
            && states[b.number.as_str()] == NumberState::Leased,
        "{states:?}"
    );
    ensure!(
        !s.retire_number(&p.id, &a.number, at).await.map_err(err)?,
        "a locked number is not retired"
    );
    ensure!(
        !s.retire_number(&p.id, &b.number, at).await.map_err(err)?,
        "a leased number is not retired"
    );
    let free = st
        .iter()
        .find(|n| n.state == NumberState::Free)
        .ok_or("a free number")?
        .number
        .number
        .clone();
    ensure!(
        s.retire_number(&p.id, &free, at).await.map_err(err)?,
        "a free number is retired"
    );
    ensure!(
        s.numbers(&p.id, at).await.map_err(err)?.len() == 3,
        "retired numbers leave the pool"
    );
    let r = s
        .attribute(&call(&p, "CH3", &free, "+12125550100", at)?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(r, Attribution::UnknownNumber { .. }),
        "retired number is unknown: {r:?}"
    );
    let h = s
        .health(&p.id, t0(), at, Duration::from_secs(60))
        .await
        .map_err(err)?;
    ensure!(
        h.numbers == 3 && h.leased == 1 && h.locked == 1 && h.free == 1,
        "{h:?}"
    );
    ensure!(
        h.peak_leased == 2 && h.leases_granted == 2,
        "peak 2 (a and b overlap 300..600): {h:?}"
    );
    ensure!(
        h.calls.get("attributed") == Some(&1)
            && h.calls.get("overflow") == Some(&1)
            && h.call_overflow_permille() == 500,
        "{h:?}"
    );
    ensure!(
        h.idle == 1,
        "the never-used free number is idle after 60 s: {h:?}"
    );
    let h = s
        .health(&p.id, t0(), at, Duration::from_secs(7200))
        .await
        .map_err(err)?;
    ensure!(h.idle == 0, "{h:?}");
    // Purge keeps the locked lease (a) and removes nothing live.
    s.purge(&p.id, secs(10_000)).await.map_err(err)?;
    let r = s
        .attribute(&call(&p, "CH4", &a.number, "+12125550100", secs(10_000))?)
        .await
        .map_err(err)?;
    ensure!(
        matches!(&r, Attribution::Attributed { lease, via: Via::Lock } if lease.id == a.id),
        "purge keeps locked leases: {r:?}"
    );
    Ok(())
}

/// Two handles on one store race `ops` lease / renew / release operations each on a
/// pool of `numbers` numbers (virtual time advancing with each op, so leases expire
/// while others are being granted). Checks from the answers that no number was ever on
/// two live exclusive leases at once. Returns every granted exclusive lease, for a store
/// to check against its own invariant query too.
pub async fn pool_concurrency(
    a: Arc<dyn NumberPoolStore>,
    b: Arc<dyn NumberPoolStore>,
    prefix: &str,
    ops: usize,
    numbers: usize,
) -> Result<Vec<Lease>, String> {
    let mut p = pool(
        &format!("{prefix}-race"),
        numbers,
        PoolMode::VisitorListing,
        LockKey::Number,
        ExhaustionPolicy::Overflow,
    )?;
    p.max_leases_per_visitor = 1000;
    p.lease_length = Duration::from_secs(30);
    p.heartbeat = Duration::from_secs(10);
    a.put_pool(&p, t0()).await.map_err(err)?;
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let ta = tokio::spawn(race_worker(a, p.clone(), "a", ops, clock.clone()));
    let tb = tokio::spawn(race_worker(b, p.clone(), "b", ops, clock));
    let mut leases = ta.await.map_err(err)??;
    leases.extend(tb.await.map_err(err)??);
    check_disjoint(&leases)?;
    Ok(leases)
}

async fn race_worker(
    s: Arc<dyn NumberPoolStore>,
    p: NumberPool,
    side: &str,
    ops: usize,
    clock: Arc<std::sync::atomic::AtomicI64>,
) -> Result<Vec<Lease>, String> {
    let mut mine: Vec<Lease> = Vec::new();
    let mut x: u64 = if side == "a" { 7 } else { 13 };
    for _ in 0..ops {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // One virtual clock for both handles, as servers share wall-clock time.
        let now = secs(clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst) / 8);
        let pick = (x >> 33) % 10;
        if pick < 6 || mine.is_empty() {
            let v = format!("{side}{}", (x >> 40) % 50);
            let r = LeaseRequest::new(
                p.id.clone(),
                id(&v)?,
                id(&format!("l{}", (x >> 20) % 5))?,
                now,
            );
            if let LeaseOutcome::Leased { lease, .. } = s.lease(&r).await.map_err(err)? {
                mine.push(lease);
            }
        } else {
            let k = ((x >> 24) as usize) % mine.len();
            let l = mine[k].clone();
            if pick < 9 {
                if let RenewOutcome::Renewed { expires_at } =
                    s.renew(&p.id, &l.id, now).await.map_err(err)?
                {
                    mine.push(Lease { expires_at, ..l });
                }
            } else if s.release(&p.id, &l.id, now).await.map_err(err)? {
                mine.push(Lease {
                    expires_at: now,
                    ..l
                });
            }
        }
    }
    Ok(mine)
}

/// A lease's `[created_at, expires_at)` and its id.
type Interval = (DateTime<Utc>, DateTime<Utc>, LeaseId);

/// Each lease id's final interval is its last answer (renewals only extend; a release
/// ends it). Checks no two exclusive leases' intervals on one number overlap.
fn check_disjoint(answers: &[Lease]) -> Result<(), String> {
    let mut last: HashMap<LeaseId, Lease> = HashMap::new();
    for l in answers.iter().filter(|l| l.exclusive) {
        let e = last.entry(l.id.clone()).or_insert_with(|| l.clone());
        // Releases shorten; renewals lengthen; answers of one handle are in order.
        *e = l.clone();
    }
    let mut by_number: HashMap<String, Vec<Interval>> = HashMap::new();
    for l in last.values() {
        by_number.entry(l.number.to_string()).or_default().push((
            l.created_at,
            l.expires_at,
            l.id.clone(),
        ));
    }
    for (n, mut v) in by_number {
        v.sort();
        for w in v.windows(2) {
            ensure!(
                w[0].1 <= w[1].0,
                "number {n} on two live leases: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
    Ok(())
}

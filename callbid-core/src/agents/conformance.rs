//! The conformance suite every [`AgentStore`] must pass. Pools are named with `prefix`,
//! so the suite can run repeatedly against a shared database. Each function returns
//! `Err(description)` on the first deviation.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::future::join_all;

use super::*;
use crate::geo::UsState;
use crate::ids::{BuyerId, CallId, ServiceType};
use crate::money::Money;
use crate::phone::PhoneNumber;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn t0() -> DateTime<Utc> {
    // A Saturday noon in UTC.
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

fn aid(s: &str) -> Result<AgentId, String> {
    AgentId::new(s).map_err(err)
}

fn oid(s: &str) -> Result<OfferId, String> {
    OfferId::new(s).map_err(err)
}

/// Agent `name` in `tier`, reached at a distinct phone number.
pub fn agent(name: &str, tier: u8, i: usize) -> Result<Agent, String> {
    let phone = PhoneNumber::parse(&format!("+1512555{:04}", 2000 + i)).map_err(err)?;
    Agent::new(aid(name)?, name, Reach::Phone(phone))
        .and_then(|a| a.with_tier(tier))
        .map_err(err)
}

fn plumbing() -> Result<Needs, String> {
    Ok(Needs::new(
        ServiceType::new("plumbing").map_err(err)?,
        "78701".parse().map_err(err)?,
    ))
}

/// A pool with a 20 s TTL, `legs` agents per round, a 30 s wrap-up and a 40 USD bid.
async fn pool(s: &dyn AgentStore, name: &str, legs: u8) -> Result<AgentPool, String> {
    let p = AgentPool::new(
        AgentPoolId::new(name).map_err(err)?,
        BuyerId::new("in-house").map_err(err)?,
    )
    .with_offer_ttl(Duration::from_secs(20))
    .and_then(|p| p.with_max_legs(legs))
    .and_then(|p| p.with_wrap_up(Duration::from_secs(30)))
    .and_then(|p| {
        p.with_bid(
            ServiceType::new("plumbing")?,
            Money::usd(rust_decimal::Decimal::new(4000, 2)),
        )
    })
    .map_err(err)?;
    s.put_pool(&p).await.map_err(err)?;
    Ok(p)
}

async fn add_online(s: &dyn AgentStore, p: &AgentPool, agents: &[Agent]) -> Result<(), String> {
    for a in agents {
        s.put_agent(&p.id, a, t0()).await.map_err(err)?;
        s.set_presence(&p.id, &a.id, PresenceChange::LogIn, t0())
            .await
            .map_err(err)?;
    }
    Ok(())
}

async fn presence(
    s: &dyn AgentStore,
    p: &AgentPool,
    a: &str,
    now: DateTime<Utc>,
) -> Result<Presence, String> {
    let all = s.agents(&p.id, now).await.map_err(err)?;
    all.into_iter()
        .find(|x| x.agent.id.as_str() == a)
        .map(|x| x.presence)
        .ok_or_else(|| format!("agent {a} missing"))
}

async fn start(
    s: &dyn AgentStore,
    p: &AgentPool,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Offer, String> {
    let req = OfferRequest::new(
        oid(id)?,
        p.id.clone(),
        CallId::new(id).map_err(err)?,
        plumbing()?,
        at,
    )
    .with_context(format!("ctx:{id}"));
    s.start_offer(&req).await.map_err(err)
}

fn ringing(o: &Offer) -> BTreeSet<String> {
    o.current_legs()
        .filter(|l| l.outcome == LegOutcome::Ringing)
        .map(|l| l.agent.to_string())
        .collect()
}

/// The whole single-handle suite.
pub async fn agent_store(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    agents_and_presence(s, prefix).await?;
    accept_once(s, prefix).await?;
    concurrent_accepts(s, s, prefix, 20).await?;
    tiers_and_fallback(s, prefix).await?;
    busy_tier_skipped(s, prefix).await?;
    caller_hangs_up(s, prefix).await?;
    declines_advance(s, prefix).await?;
    stale_offer_released(s, prefix).await?;
    matching(s, prefix).await?;
    metrics(s, prefix).await?;
    Ok(())
}

/// Profiles, unknown pools, log in/out, wrap-up, profile updates keep presence.
pub async fn agents_and_presence(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-presence"), 10).await?;
    let got = s.pool(&p.id).await.map_err(err)?;
    ensure!(got.as_ref() == Some(&p), "pool read back wrong: {got:?}");
    let nowhere = AgentPoolId::new(format!("{prefix}-nowhere")).map_err(err)?;
    let a = agent("ana", 1, 0)?;
    match s.put_agent(&nowhere, &a, t0()).await {
        Err(StateError::Invalid(v)) => ensure!(v.field == "pool", "wrong field: {v}"),
        other => return Err(format!("unknown pool accepted: {other:?}")),
    }
    s.put_agent(&p.id, &a, t0()).await.map_err(err)?;
    ensure!(
        presence(s, &p, "ana", t0()).await? == Presence::Offline,
        "a new agent is not offline"
    );
    let on = s
        .set_presence(&p.id, &a.id, PresenceChange::LogIn, t0())
        .await
        .map_err(err)?;
    ensure!(on == Presence::Available, "log in gave {on:?}");
    let renamed = Agent::new(a.id.clone(), "Ana María", a.reach.clone()).map_err(err)?;
    s.put_agent(&p.id, &renamed, secs(1)).await.map_err(err)?;
    let all = s.agents(&p.id, secs(1)).await.map_err(err)?;
    ensure!(
        all.len() == 1
            && all[0].agent.name == "Ana María"
            && all[0].presence == Presence::Available,
        "profile update lost presence or name: {all:?}"
    );
    let o = start(s, &p, &format!("{prefix}-presence-call"), secs(10)).await?;
    match s.accept(&p.id, &o.id, &a.id, secs(12)).await.map_err(err)? {
        AcceptOutcome::Won { .. } => {}
        other => return Err(format!("the only agent did not win: {other:?}")),
    }
    match s
        .set_presence(&p.id, &a.id, PresenceChange::LogOut, secs(13))
        .await
    {
        Err(StateError::Invalid(v)) => ensure!(v.field == "agent", "wrong field: {v}"),
        other => return Err(format!("log out during a call accepted: {other:?}")),
    }
    let w = s
        .set_presence(&p.id, &a.id, PresenceChange::EndCall, secs(72))
        .await
        .map_err(err)?;
    ensure!(
        w == Presence::WrapUp { until: secs(102) },
        "end of call gave {w:?}"
    );
    ensure!(
        presence(s, &p, "ana", secs(101)).await? == w,
        "wrap-up not in effect before its end"
    );
    ensure!(
        presence(s, &p, "ana", secs(102)).await? == Presence::Available,
        "wrap-up timer did not free the agent"
    );
    let off = s
        .set_presence(&p.id, &a.id, PresenceChange::LogOut, secs(200))
        .await
        .map_err(err)?;
    ensure!(off == Presence::Offline, "log out gave {off:?}");
    ensure!(
        s.remove_agent(&p.id, &a.id, secs(201)).await.map_err(err)?,
        "remove failed"
    );
    ensure!(
        s.agents(&p.id, secs(201)).await.map_err(err)?.is_empty(),
        "removed agent still listed"
    );
    Ok(())
}

/// One accept wins; later ones are told who took it; the winner's repeat is idempotent;
/// a second start for the same id returns the same offer.
pub async fn accept_once(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-once"), 10).await?;
    let agents = [agent("a", 1, 1)?, agent("b", 1, 2)?, agent("c", 1, 3)?];
    add_online(s, &p, &agents).await?;
    let id = format!("{prefix}-once-call");
    let o = start(s, &p, &id, secs(0)).await?;
    ensure!(
        ringing(&o) == ["a", "b", "c"].map(String::from).into(),
        "not all three rung: {o:?}"
    );
    ensure!(
        presence(s, &p, "a", secs(1)).await?.name() == "offered",
        "a not offered"
    );
    let again = start(s, &p, &id, secs(1)).await?;
    ensure!(again == o, "a repeated start changed the offer: {again:?}");
    let b = aid("b")?;
    match s.accept(&p.id, &o.id, &b, secs(3)).await.map_err(err)? {
        AcceptOutcome::Won { offer } => ensure!(
            offer.state
                == OfferState::Accepted {
                    agent: b.clone(),
                    at: secs(3)
                },
            "won offer in state {:?}",
            offer.state
        ),
        other => return Err(format!("b did not win: {other:?}")),
    }
    let stored = s.offer(&p.id, &o.id).await.map_err(err)?;
    match stored {
        Some(x) if x.context == format!("ctx:{id}") => {}
        other => return Err(format!("the offer's context was not kept: {other:?}")),
    }
    match s
        .accept(&p.id, &o.id, &aid("a")?, secs(4))
        .await
        .map_err(err)?
    {
        AcceptOutcome::Taken { by } => ensure!(by == b, "taken by {by}"),
        other => return Err(format!("a was not told taken: {other:?}")),
    }
    match s.accept(&p.id, &o.id, &b, secs(5)).await.map_err(err)? {
        AcceptOutcome::Won { .. } => {}
        other => return Err(format!("the winner's repeat: {other:?}")),
    }
    ensure!(
        presence(s, &p, "b", secs(6)).await?.name() == "on_call",
        "winner not on call"
    );
    for x in ["a", "c"] {
        ensure!(
            presence(s, &p, x, secs(6)).await? == Presence::Available,
            "{x} not freed after the win"
        );
    }
    let stored = s
        .offer(&p.id, &o.id)
        .await
        .map_err(err)?
        .ok_or("offer lost")?;
    let outcomes: Vec<_> = stored
        .legs
        .iter()
        .map(|l| (l.agent.to_string(), l.outcome))
        .collect();
    ensure!(
        outcomes
            == vec![
                ("a".into(), LegOutcome::Taken),
                ("b".into(), LegOutcome::Accepted),
                ("c".into(), LegOutcome::Taken)
            ],
        "leg outcomes {outcomes:?}"
    );
    match s
        .accept(&p.id, &oid(&format!("{prefix}-none"))?, &b, secs(5))
        .await
    {
        Err(StateError::Invalid(v)) => ensure!(v.field == "offer", "wrong field {v}"),
        other => return Err(format!("unknown offer accepted: {other:?}")),
    }
    Ok(())
}

/// `n` agents accept the same offer at once, half through `a`, half through `b`: one
/// wins, `n - 1` are told it was taken by the winner.
pub async fn concurrent_accepts(
    a: &dyn AgentStore,
    b: &dyn AgentStore,
    prefix: &str,
    n: usize,
) -> Result<(), String> {
    let name = format!("{prefix}-race");
    let p = pool(a, &name, n.min(50) as u8).await?;
    let agents = (0..n)
        .map(|i| agent(&format!("r{i:02}"), 1, 100 + i))
        .collect::<Result<Vec<_>, _>>()?;
    if a.agents(&p.id, t0()).await.map_err(err)?.len() != n {
        add_online(a, &p, &agents).await?;
    }
    let id = format!("{name}-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
    let o = start(a, &p, &id, Utc::now()).await?;
    ensure!(
        ringing(&o).len() == n,
        "only {} of {n} offered",
        ringing(&o).len()
    );
    race(a, b, &p, &o, &agents).await
}

/// Every agent of `agents` accepts `o` at once, alternating handles; checks the result.
pub async fn race(
    a: &dyn AgentStore,
    b: &dyn AgentStore,
    p: &AgentPool,
    o: &Offer,
    agents: &[Agent],
) -> Result<(), String> {
    let at = Utc::now();
    let results = join_all(agents.iter().enumerate().map(|(i, x)| {
        let s = if i % 2 == 0 { a } else { b };
        s.accept(&p.id, &o.id, &x.id, at)
    }))
    .await;
    let mut winners = Vec::new();
    let mut taken = 0;
    for (x, r) in agents.iter().zip(results) {
        match r.map_err(err)? {
            AcceptOutcome::Won { .. } => winners.push(x.id.clone()),
            AcceptOutcome::Taken { by } => {
                taken += 1;
                ensure!(
                    agents.iter().any(|y| y.id == by),
                    "taken by a stranger {by}"
                );
            }
            other => return Err(format!("{} got {other:?}", x.id)),
        }
    }
    ensure!(
        winners.len() == 1 && taken == agents.len() - 1,
        "winners {winners:?}, taken {taken}"
    );
    let stored = a
        .offer(&p.id, &o.id)
        .await
        .map_err(err)?
        .ok_or("offer lost")?;
    ensure!(
        matches!(&stored.state, OfferState::Accepted { agent, .. } if *agent == winners[0]),
        "stored state {:?} but winner {}",
        stored.state,
        winners[0]
    );
    // Free the winner for the next repetition.
    a.set_presence(&p.id, &winners[0], PresenceChange::EndCall, at)
        .await
        .map_err(err)?;
    Ok(())
}

/// A round's TTL moves the offer to the next tier, the last one to the fallback; missed
/// agents are available again.
pub async fn tiers_and_fallback(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-tiers"), 10).await?;
    add_online(
        s,
        &p,
        &[
            agent("t1a", 1, 10)?,
            agent("t1b", 1, 11)?,
            agent("t2", 2, 12)?,
        ],
    )
    .await?;
    let o = start(s, &p, &format!("{prefix}-tiers-call"), secs(0)).await?;
    ensure!(
        ringing(&o) == ["t1a", "t1b"].map(String::from).into(),
        "tier 1: {o:?}"
    );
    let same = s.tick(&p.id, &o.id, secs(19)).await.map_err(err)?;
    ensure!(same == o, "tick before the TTL changed the offer");
    match s
        .accept(&p.id, &o.id, &aid("t1a")?, secs(20))
        .await
        .map_err(err)?
    {
        AcceptOutcome::Expired => {}
        other => return Err(format!("accept at the TTL: {other:?}")),
    }
    let o2 = s.tick(&p.id, &o.id, secs(21)).await.map_err(err)?;
    ensure!(
        matches!(
            o2.state,
            OfferState::Offered {
                tier: 2,
                round: 2,
                ..
            }
        ) && ringing(&o2) == ["t2"].map(String::from).into(),
        "tier 2 not offered: {o2:?}"
    );
    let missed = o2
        .legs
        .iter()
        .filter(|l| l.outcome == LegOutcome::Missed)
        .count();
    ensure!(missed == 2, "{missed} legs missed");
    ensure!(
        o2.legs
            .iter()
            .filter(|l| l.round == 1)
            .all(|l| l.ended_at == Some(secs(20))),
        "missed legs end at the TTL"
    );
    for x in ["t1a", "t1b"] {
        ensure!(
            presence(s, &p, x, secs(21)).await? == Presence::Available,
            "{x} not freed by the TTL"
        );
    }
    let again = s.tick(&p.id, &o.id, secs(22)).await.map_err(err)?;
    ensure!(again == o2, "a repeated tick changed the offer");
    let o3 = s.tick(&p.id, &o.id, secs(41)).await.map_err(err)?;
    ensure!(
        matches!(o3.state, OfferState::Fallback { .. }),
        "no fallback: {o3:?}"
    );
    ensure!(
        presence(s, &p, "t2", secs(41)).await? == Presence::Available,
        "t2 not freed"
    );
    Ok(())
}

/// A tier with nobody available is skipped; nobody anywhere is the fallback at once.
pub async fn busy_tier_skipped(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-busy"), 10).await?;
    let t1 = agent("busy1", 1, 20)?;
    add_online(s, &p, &[t1.clone(), agent("free2", 2, 21)?]).await?;
    let first = start(s, &p, &format!("{prefix}-busy-1"), secs(0)).await?;
    ensure!(
        ringing(&first) == ["busy1"].map(String::from).into(),
        "first call: {first:?}"
    );
    let o = start(s, &p, &format!("{prefix}-busy-2"), secs(1)).await?;
    ensure!(
        matches!(o.state, OfferState::Offered { tier: 2, .. })
            && ringing(&o) == ["free2"].map(String::from).into(),
        "busy tier 1 not skipped: {o:?}"
    );
    let none = start(s, &p, &format!("{prefix}-busy-3"), secs(2)).await?;
    ensure!(
        matches!(none.state, OfferState::Fallback { .. }) && none.legs.is_empty(),
        "all busy is not the fallback: {none:?}"
    );
    Ok(())
}

/// The caller hangs up: every leg cancelled, every agent available, accepts refused.
pub async fn caller_hangs_up(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-hangup"), 10).await?;
    add_online(
        s,
        &p,
        &[
            agent("h1", 1, 30)?,
            agent("h2", 1, 31)?,
            agent("h3", 1, 32)?,
        ],
    )
    .await?;
    let o = start(s, &p, &format!("{prefix}-hangup-call"), secs(0)).await?;
    let gone = s.caller_hung_up(&p.id, &o.id, secs(4)).await.map_err(err)?;
    ensure!(
        gone.state == OfferState::CallerGone { at: secs(4) }
            && gone.legs.iter().all(|l| l.outcome == LegOutcome::Cancelled),
        "hang-up: {gone:?}"
    );
    let again = s.caller_hung_up(&p.id, &o.id, secs(5)).await.map_err(err)?;
    ensure!(again == gone, "a repeated hang-up changed the offer");
    for x in ["h1", "h2", "h3"] {
        ensure!(
            presence(s, &p, x, secs(5)).await? == Presence::Available,
            "{x} not freed after the hang-up"
        );
    }
    match s
        .accept(&p.id, &o.id, &aid("h1")?, secs(5))
        .await
        .map_err(err)?
    {
        AcceptOutcome::CallerGone => Ok(()),
        other => Err(format!("accept after the hang-up: {other:?}")),
    }
}

/// When every leg of a round declined, the next tier is offered without waiting.
pub async fn declines_advance(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-decline"), 10).await?;
    add_online(
        s,
        &p,
        &[
            agent("d1", 1, 40)?,
            agent("d2", 1, 41)?,
            agent("d3", 2, 42)?,
        ],
    )
    .await?;
    let o = start(s, &p, &format!("{prefix}-decline-call"), secs(0)).await?;
    let o1 = s
        .decline(&p.id, &o.id, &aid("d1")?, secs(2))
        .await
        .map_err(err)?;
    ensure!(
        ringing(&o1) == ["d2"].map(String::from).into(),
        "after one decline: {o1:?}"
    );
    ensure!(
        presence(s, &p, "d1", secs(2)).await? == Presence::Available,
        "a decliner is not available"
    );
    let o2 = s
        .decline(&p.id, &o.id, &aid("d2")?, secs(3))
        .await
        .map_err(err)?;
    ensure!(
        matches!(o2.state, OfferState::Offered { tier: 2, .. })
            && ringing(&o2) == ["d3"].map(String::from).into(),
        "after both declined: {o2:?}"
    );
    Ok(())
}

/// An agent left `offered` by an offer nobody ticks (a crashed instance) is free at the
/// TTL; the old offer's later clean-up never touches the agent's new offer.
pub async fn stale_offer_released(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-stale"), 10).await?;
    add_online(s, &p, &[agent("st", 1, 50)?]).await?;
    let old = start(s, &p, &format!("{prefix}-stale-1"), secs(0)).await?;
    ensure!(ringing(&old).len() == 1, "old offer: {old:?}");
    ensure!(
        presence(s, &p, "st", secs(20)).await? == Presence::Available,
        "the TTL did not release the agent"
    );
    let new = start(s, &p, &format!("{prefix}-stale-2"), secs(25)).await?;
    ensure!(
        ringing(&new).len() == 1,
        "released agent not offered again: {new:?}"
    );
    s.tick(&p.id, &old.id, secs(26)).await.map_err(err)?;
    match presence(s, &p, "st", secs(26)).await? {
        Presence::Offered { offer, .. } if offer == new.id => Ok(()),
        other => Err(format!("old offer's clean-up changed the agent: {other:?}")),
    }
}

/// Services, states, ZIPs, languages and hours decide who is offered.
pub async fn matching(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-match"), 10).await?;
    let svc = |x: &str| ServiceType::new(x).map_err(err);
    let tx = UsState::parse("TX").map_err(err)?;
    let ca = UsState::parse("CA").map_err(err)?;
    let es = Language::new("es").map_err(err)?;
    let closed = AgentHours::closed();
    let agents = vec![
        agent("m-plumb-tx", 1, 60)?
            .with_service(svc("plumbing")?)
            .with_state(tx),
        agent("m-roof", 1, 61)?.with_service(svc("roofing")?),
        agent("m-ca", 1, 62)?.with_state(ca),
        agent("m-zip", 1, 63)?.with_zip("78701".parse().map_err(err)?),
        agent("m-es", 1, 64)?.with_language(es.clone()),
        agent("m-closed", 1, 65)?.with_hours(chrono_tz::America::Chicago, closed),
    ];
    add_online(s, &p, &agents).await?;
    let n = plumbing()?;
    let count = s.available(&p.id, &n, secs(0)).await.map_err(err)?;
    ensure!(
        count == 3,
        "{count} available for plumbing in 78701 (want plumb-tx, zip, es)"
    );
    let en = n.clone().with_language(Language::new("en").map_err(err)?);
    let count = s.available(&p.id, &en, secs(0)).await.map_err(err)?;
    ensure!(
        count == 2,
        "{count} available for an English caller (want plumb-tx, zip)"
    );
    let o = start(s, &p, &format!("{prefix}-match-call"), secs(0)).await?;
    ensure!(
        ringing(&o) == ["m-es", "m-plumb-tx", "m-zip"].map(String::from).into(),
        "offered {:?}",
        ringing(&o)
    );
    Ok(())
}

/// Latency per agent, missed legs, hang-ups and utilisation.
pub async fn metrics(s: &dyn AgentStore, prefix: &str) -> Result<(), String> {
    let p = pool(s, &format!("{prefix}-metrics"), 10).await?;
    add_online(s, &p, &[agent("x1", 1, 70)?, agent("x2", 1, 71)?]).await?;
    let a = start(s, &p, &format!("{prefix}-metrics-a"), secs(0)).await?;
    s.accept(&p.id, &a.id, &aid("x1")?, secs(4))
        .await
        .map_err(err)?;
    let b = start(s, &p, &format!("{prefix}-metrics-b"), secs(5)).await?;
    s.tick(&p.id, &b.id, secs(25)).await.map_err(err)?;
    let c = start(s, &p, &format!("{prefix}-metrics-c"), secs(30)).await?;
    s.caller_hung_up(&p.id, &c.id, secs(32))
        .await
        .map_err(err)?;
    s.set_presence(&p.id, &aid("x1")?, PresenceChange::EndCall, secs(64))
        .await
        .map_err(err)?;
    let m = s.metrics(&p.id, t0(), secs(100)).await.map_err(err)?;
    ensure!(
        (m.offers, m.accepted, m.fallbacks, m.caller_hung_up) == (3, 1, 1, 1),
        "totals {m:?}"
    );
    let x1 = &m.agents[0];
    let x2 = &m.agents[1];
    ensure!(
        x1.agent.as_str() == "x1" && x1.accepted == 1 && x1.accept_ms_median == Some(4000),
        "x1 {x1:?}"
    );
    ensure!(
        x2.offered == 3 && x2.taken == 1 && x2.missed == 1 && x2.cancelled == 1,
        "x2 {x2:?}"
    );
    // x1: on a call 4 s → 64 s, wrap-up 64 → 94 s, online 100 s: (60 + 30) / 100.
    ensure!(
        x1.utilisation == Some(rust_decimal::Decimal::new(9, 1)) && x1.on_call_secs == 60,
        "x1 utilisation {x1:?}"
    );
    ensure!(
        x2.utilisation == Some(rust_decimal::Decimal::ZERO),
        "x2 {x2:?}"
    );
    Ok(())
}

/// Two handles on one store: concurrent offers of different calls never share an
/// agent, and concurrent accepts across handles have one winner.
pub async fn two_handles(
    a: &dyn AgentStore,
    b: &dyn AgentStore,
    prefix: &str,
) -> Result<(), String> {
    let p = pool(a, &format!("{prefix}-share"), 3).await?;
    let agents = (0..12)
        .map(|i| agent(&format!("s{i:02}"), 1, 200 + i))
        .collect::<Result<Vec<_>, _>>()?;
    add_online(a, &p, &agents).await?;
    let offers = join_all((0..6).map(|i| {
        let s = if i % 2 == 0 { a } else { b };
        let p = &p;
        async move { start(s, p, &format!("{prefix}-share-{i}"), secs(0)).await }
    }))
    .await;
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for o in offers {
        for x in ringing(&o?) {
            total += 1;
            ensure!(
                seen.insert(x.clone()),
                "agent {x} offered two calls at once"
            );
        }
    }
    ensure!(
        total == 12,
        "{total} of 12 agents offered to 6 calls of 3 legs"
    );
    concurrent_accepts(a, b, &format!("{prefix}-2h"), 20).await
}

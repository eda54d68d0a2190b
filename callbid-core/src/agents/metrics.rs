//! Agent-pool metrics: offer-to-accept latency per agent, missed offers, callers who hung
//! up while being offered, utilisation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::model::{AgentId, AgentRecord, LegOutcome, Offer, OfferState, Presence};

/// One agent's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentStats {
    /// The agent.
    pub agent: AgentId,
    /// Display name.
    pub name: String,
    /// Presence at the time asked.
    pub presence: Presence,
    /// Legs offered to them.
    pub offered: u64,
    /// Offers they won.
    pub accepted: u64,
    /// Legs whose round ran out without their accept.
    pub missed: u64,
    /// Legs they declined.
    pub declined: u64,
    /// Legs someone else won first.
    pub taken: u64,
    /// Legs cancelled by the caller hanging up.
    pub cancelled: u64,
    /// Median offer-to-accept time of their wins, in milliseconds.
    pub accept_ms_median: Option<u64>,
    /// Slowest offer-to-accept time of their wins, in milliseconds.
    pub accept_ms_max: Option<u64>,
    /// Time logged in, in seconds.
    pub online_secs: u64,
    /// Time on calls, in seconds.
    pub on_call_secs: u64,
    /// (on call + wrap-up) / logged in, 0 to 1 with 4 decimals; none before any login.
    pub utilisation: Option<Decimal>,
}

/// A pool's figures over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentMetrics {
    /// Offers created in the window.
    pub offers: u64,
    /// Offers an agent accepted.
    pub accepted: u64,
    /// Offers that went to the fallback.
    pub fallbacks: u64,
    /// Offers whose caller hung up while being offered.
    pub caller_hung_up: u64,
    /// Offers still ringing.
    pub live: u64,
    /// Per agent, by id (every agent of the pool, plus agents since removed who had legs).
    pub agents: Vec<AgentStats>,
}

fn median(v: &mut [u64]) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

fn blank(agent: AgentId, name: String, presence: Presence) -> AgentStats {
    AgentStats {
        agent,
        name,
        presence,
        offered: 0,
        accepted: 0,
        missed: 0,
        declined: 0,
        taken: 0,
        cancelled: 0,
        accept_ms_median: None,
        accept_ms_max: None,
        online_secs: 0,
        on_call_secs: 0,
        utilisation: None,
    }
}

/// Folds offers and agent records into metrics at `now`.
pub fn metrics_of(offers: &[Offer], agents: &[AgentRecord], now: DateTime<Utc>) -> AgentMetrics {
    let mut per: BTreeMap<AgentId, AgentStats> = BTreeMap::new();
    for r in agents {
        let mut s = blank(r.agent.id.clone(), r.agent.name.clone(), r.presence.at(now));
        let t = r.tally_at(now);
        s.online_secs = (t.online_ms / 1000) as u64;
        s.on_call_secs = (t.on_call_ms / 1000) as u64;
        if t.online_ms > 0 {
            let busy = Decimal::from(t.on_call_ms + t.wrap_up_ms);
            s.utilisation = Some((busy / Decimal::from(t.online_ms)).round_dp(4));
        }
        per.insert(r.agent.id.clone(), s);
    }
    let mut latencies: BTreeMap<AgentId, Vec<u64>> = BTreeMap::new();
    let mut m = AgentMetrics {
        offers: offers.len() as u64,
        accepted: 0,
        fallbacks: 0,
        caller_hung_up: 0,
        live: 0,
        agents: Vec::new(),
    };
    for o in offers {
        match o.state {
            OfferState::Accepted { .. } => m.accepted += 1,
            OfferState::Fallback { .. } => m.fallbacks += 1,
            OfferState::CallerGone { .. } => m.caller_hung_up += 1,
            OfferState::Offered { .. } => m.live += 1,
        }
        for l in &o.legs {
            let s = per
                .entry(l.agent.clone())
                .or_insert_with(|| blank(l.agent.clone(), l.agent.to_string(), Presence::Offline));
            s.offered += 1;
            match l.outcome {
                LegOutcome::Accepted => {
                    s.accepted += 1;
                    let end = l.ended_at.unwrap_or(l.offered_at);
                    let ms = (end - l.offered_at).num_milliseconds().max(0) as u64;
                    latencies.entry(l.agent.clone()).or_default().push(ms);
                }
                LegOutcome::Missed => s.missed += 1,
                LegOutcome::Declined => s.declined += 1,
                LegOutcome::Taken => s.taken += 1,
                LegOutcome::Cancelled => s.cancelled += 1,
                LegOutcome::Ringing => {}
            }
        }
    }
    for (a, mut v) in latencies {
        if let Some(s) = per.get_mut(&a) {
            s.accept_ms_max = v.iter().copied().max();
            s.accept_ms_median = median(&mut v);
        }
    }
    m.agents = per.into_values().collect();
    m
}

//! The agent pool `callbid serve` offers calls to (issue 10, seed 001): an `agents.toml`
//! named by the `agents` configuration key, validated at load with errors that name the
//! entry, the field and the value.
//!
//! ```toml
//! [pool]
//! id = "in-house"            # required
//! buyer = "in-house-agents"  # the buyer id it bids under in the auction (default)
//! offer_ttl_secs = 20        # one tier's round (1 to 600)
//! max_legs = 10              # agents rung at once (1 to 10, Twilio's <Dial> limit)
//! wrap_up_secs = 30          # after-call work (0 to 3600)
//! bid = "15.00"              # USD bid for any service when an agent is available;
//!                            # omit it (and `bids`) and the pool only takes the
//!                            # fallback's `in-house` step
//! line = "+15125550999"      # where a pool win is sent if no offer can be made
//!                            # (default: in_house_number)
//! [pool.bids]
//! Plumbing = "18.00"
//!
//! [[agent]]
//! id = "alice"               # required
//! name = "Alice"             # default: the id
//! reach = "+15125550001"     # E.164, sip:…, or client:NAME (required)
//! tier = 1                   # 1 rings first (1 to 20)
//! services = ["Plumbing"]    # empty: every service
//! states = ["TX"]            # with zips empty too: everywhere
//! zips = ["78701"]
//! languages = ["en"]         # empty: any caller
//! time_zone = "America/Chicago"
//! hours = { mon = ["08:00-17:00"], tue = ["08:00-17:00"] }  # default: always
//! logged_in = true           # log in at start (when offline)
//! ```
//!
//! Loading writes the pool and every agent to the shared store ([`AgentsFile::install`]);
//! presence is kept for agents already there, and agents in the store but not in the
//! file are left alone (remove them through [`callbid_core::agents::AgentStore::remove_agent`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use callbid_core::agents::{
    Agent, AgentHours, AgentId, AgentPool, AgentPoolId, AgentStore, Language, PresenceChange, Reach,
};
use callbid_core::geo::UsState;
use callbid_core::{BuyerId, Destination, Money, ServiceType, StateError, Zip};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::Deserialize;

/// A bad `agents.toml`: the file, where in it, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {place}: {reason}")]
pub struct AgentsFileError {
    /// The file.
    pub path: String,
    /// `pool.bid`, `agent[2] (bob).reach`, or the TOML parser's position.
    pub place: String,
    /// Why.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    pool: PoolDoc,
    #[serde(default)]
    agent: Vec<AgentDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolDoc {
    id: String,
    buyer: Option<String>,
    offer_ttl_secs: Option<u64>,
    max_legs: Option<u8>,
    wrap_up_secs: Option<u64>,
    bid: Option<String>,
    #[serde(default)]
    bids: BTreeMap<String, String>,
    line: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentDoc {
    id: String,
    name: Option<String>,
    reach: String,
    tier: Option<u8>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    states: Vec<String>,
    #[serde(default)]
    zips: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    time_zone: Option<String>,
    hours: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    logged_in: bool,
}

/// A validated `agents.toml`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentsFile {
    /// The pool's settings.
    pub pool: AgentPool,
    /// Every agent, with whether to log them in at start.
    pub agents: Vec<(Agent, bool)>,
    /// Where a pool win goes when no offer can be made (`pool.line`).
    pub line: Option<Destination>,
}

/// The default buyer id of a pool.
pub const DEFAULT_POOL_BUYER: &str = "in-house-agents";

impl AgentsFile {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<AgentsFile, AgentsFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AgentsFileError {
            path: name.clone(),
            place: "file".into(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &name)
    }

    /// Validates TOML text (`origin` names the file in errors).
    pub fn parse(text: &str, origin: &str) -> Result<AgentsFile, AgentsFileError> {
        let err = |place: String, reason: String| AgentsFileError {
            path: origin.to_owned(),
            place,
            reason,
        };
        let doc: FileDoc = toml::from_str(text).map_err(|e| err("toml".into(), e.to_string()))?;
        let pool = pool_of(&doc.pool).map_err(|(f, r)| err(format!("pool.{f}"), r))?;
        let line = match &doc.pool.line {
            Some(l) => {
                Some(Destination::parse(l).map_err(|e| err("pool.line".into(), e.to_string()))?)
            }
            None => None,
        };
        let mut agents = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, a) in doc.agent.iter().enumerate() {
            let place = |f: &str| format!("agent[{i}] ({}).{f}", a.id);
            let agent = agent_of(a).map_err(|(f, r)| err(place(f), r))?;
            if !seen.insert(agent.id.clone()) {
                return Err(err(place("id"), "listed twice".into()));
            }
            agents.push((agent, a.logged_in));
        }
        Ok(AgentsFile { pool, agents, line })
    }

    /// Writes the pool and its agents to `store`; logs in the agents marked
    /// `logged_in` who are offline.
    pub async fn install(&self, store: &dyn AgentStore) -> Result<(), StateError> {
        let now = Utc::now();
        store.put_pool(&self.pool).await?;
        for (agent, _) in &self.agents {
            store.put_agent(&self.pool.id, agent, now).await?;
        }
        let status = store.agents(&self.pool.id, now).await?;
        for (agent, log_in) in &self.agents {
            let offline = status
                .iter()
                .any(|s| s.agent.id == agent.id && s.presence.name() == "offline");
            if *log_in && offline {
                store
                    .set_presence(&self.pool.id, &agent.id, PresenceChange::LogIn, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether the pool bids in auctions (a `bid` or any `bids`).
    pub fn bids(&self) -> bool {
        self.pool.default_bid.is_some() || !self.pool.bids.is_empty()
    }
}

type FieldResult<T> = Result<T, (&'static str, String)>;

fn money(field: &'static str, s: &str) -> FieldResult<Money> {
    Decimal::from_str(s.trim())
        .map(Money::usd)
        .map_err(|e| (field, format!("{s:?}: not an amount ({e})")))
}

fn pool_of(p: &PoolDoc) -> FieldResult<AgentPool> {
    let id = AgentPoolId::new(&p.id).map_err(|e| ("id", e.to_string()))?;
    let buyer = BuyerId::new(p.buyer.as_deref().unwrap_or(DEFAULT_POOL_BUYER))
        .map_err(|e| ("buyer", e.to_string()))?;
    let mut pool = AgentPool::new(id, buyer);
    if let Some(t) = p.offer_ttl_secs {
        pool = pool
            .with_offer_ttl(Duration::from_secs(t))
            .map_err(|e| ("offer_ttl_secs", e.to_string()))?;
    }
    if let Some(n) = p.max_legs {
        pool = pool
            .with_max_legs(n)
            .map_err(|e| ("max_legs", e.to_string()))?;
    }
    if let Some(w) = p.wrap_up_secs {
        pool = pool
            .with_wrap_up(Duration::from_secs(w))
            .map_err(|e| ("wrap_up_secs", e.to_string()))?;
    }
    if let Some(b) = &p.bid {
        pool = pool
            .with_default_bid(money("bid", b)?)
            .map_err(|e| ("bid", e.to_string()))?;
    }
    for (service, price) in &p.bids {
        let s = ServiceType::new(service).map_err(|e| ("bids", e.to_string()))?;
        pool = pool
            .with_bid(s, money("bids", price)?)
            .map_err(|e| ("bids", e.to_string()))?;
    }
    Ok(pool)
}

fn agent_of(a: &AgentDoc) -> FieldResult<Agent> {
    let id = AgentId::new(&a.id).map_err(|e| ("id", e.to_string()))?;
    let reach = Reach::parse(&a.reach).map_err(|e| ("reach", e.to_string()))?;
    let name = a.name.clone().unwrap_or_else(|| a.id.clone());
    let mut agent = Agent::new(id, &name, reach).map_err(|e| ("name", e.to_string()))?;
    if let Some(t) = a.tier {
        agent = agent.with_tier(t).map_err(|e| ("tier", e.to_string()))?;
    }
    for s in &a.services {
        agent = agent.with_service(ServiceType::new(s).map_err(|e| ("services", e.to_string()))?);
    }
    for s in &a.states {
        agent = agent.with_state(UsState::parse(s).map_err(|e| ("states", e.to_string()))?);
    }
    for z in &a.zips {
        agent = agent.with_zip(Zip::parse(z).map_err(|e| ("zips", e.to_string()))?);
    }
    for l in &a.languages {
        agent = agent.with_language(Language::new(l).map_err(|e| ("languages", e.to_string()))?);
    }
    let tz = match &a.time_zone {
        Some(z) => z
            .parse::<chrono_tz::Tz>()
            .map_err(|e| ("time_zone", format!("{z:?}: {e}")))?,
        None => agent.time_zone,
    };
    let hours = match &a.hours {
        Some(h) => AgentHours::try_from(h.clone()).map_err(|e| ("hours", e.to_string()))?,
        None => agent.hours.clone(),
    };
    Ok(agent.with_hours(tz, hours))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[pool]
id = "in-house"
bid = "15.00"
offer_ttl_secs = 15
[pool.bids]
Plumbing = "18.50"

[[agent]]
id = "alice"
reach = "+15125550001"
services = ["Plumbing"]
states = ["TX"]
time_zone = "America/Chicago"
hours = { mon = ["08:00-17:00"] }
logged_in = true

[[agent]]
id = "bob"
name = "Bob"
reach = "sip:bob@pbx.example.com"
tier = 2
"#;

    #[test]
    fn a_good_file_loads() {
        let f = AgentsFile::parse(GOOD, "agents.toml").unwrap();
        assert_eq!(f.pool.id.as_str(), "in-house");
        assert_eq!(f.pool.buyer.as_str(), DEFAULT_POOL_BUYER);
        assert_eq!(f.pool.offer_ttl, Duration::from_secs(15));
        assert!(f.bids());
        assert_eq!(f.agents.len(), 2);
        assert!(f.agents[0].1 && !f.agents[1].1);
        assert_eq!(f.agents[1].0.tier, 2);
        assert_eq!(f.agents[0].0.time_zone, chrono_tz::America::Chicago);
    }

    #[test]
    fn errors_name_the_entry_the_field_and_the_value() {
        for (bad, place, value) in [
            (GOOD.replace("\"15.00\"", "\"lots\""), "pool.bid", "lots"),
            (
                GOOD.replace("offer_ttl_secs = 15", "offer_ttl_secs = 0"),
                "pool.offer_ttl_secs",
                "0",
            ),
            (
                GOOD.replace("+15125550001", "555-0001"),
                "agent[0] (alice).reach",
                "555-0001",
            ),
            (
                GOOD.replace("tier = 2", "tier = 40"),
                "agent[1] (bob).tier",
                "40",
            ),
            (
                GOOD.replace("[\"TX\"]", "[\"ZZ\"]"),
                "agent[0] (alice).states",
                "ZZ",
            ),
            (
                GOOD.replace("America/Chicago", "Mars/Olympus"),
                "agent[0] (alice).time_zone",
                "Mars/Olympus",
            ),
            (
                GOOD.replace("08:00-17:00", "8 to 5"),
                "agent[0] (alice).hours",
                "8 to 5",
            ),
            (
                GOOD.replace("id = \"bob\"", "id = \"alice\""),
                "agent[1] (alice).id",
                "twice",
            ),
            (GOOD.replace("logged_in", "loged_in"), "toml", "loged_in"),
        ] {
            let e = AgentsFile::parse(&bad, "agents.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(place) && e.contains(value), "{place}: {e}");
        }
    }

    #[tokio::test]
    async fn install_writes_the_pool_and_logs_agents_in() {
        let f = AgentsFile::parse(GOOD, "agents.toml").unwrap();
        let store = callbid_core::agents::MemoryAgentStore::new();
        f.install(&store).await.unwrap();
        f.install(&store).await.unwrap();
        let now = Utc::now();
        let status = store.agents(&f.pool.id, now).await.unwrap();
        let names: Vec<(&str, &str)> = status
            .iter()
            .map(|s| (s.agent.id.as_str(), s.presence.name()))
            .collect();
        assert_eq!(names, [("alice", "available"), ("bob", "offline")]);
    }
}

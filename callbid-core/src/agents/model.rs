//! The agent-pool model: agents, presence, pools and the per-call [`Offer`] state machine.
//! Pure data and transitions; the stores only make each change atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::geo::UsState;
use crate::ids::{BuyerId, CallId, ServiceType};
use crate::money::Money;
use crate::phone::{PhoneNumber, SipUri};
use crate::rules::{HoursRule, TimeRange};
use crate::zip::Zip;

/// Twilio rings at most this many legs in one `<Dial>`.
pub const MAX_DIAL_LEGS: u8 = 10;
/// The highest tier an agent can be in (tiers ring one after another: 1, then 2, …).
pub const MAX_TIER: u8 = 20;

/// Most agents one round offers a call to (TaskRouter's multi-reservation limit). Past
/// [`MAX_DIAL_LEGS`] the extra agents see the offer in the agent desk only.
pub const MAX_ROUND_AGENTS: u8 = 50;

fn validate_id(field: &'static str, id: &str) -> Result<(), ValidationError> {
    if id.is_empty() || id.len() > 128 {
        return Err(ValidationError::new(
            field,
            id,
            "must be 1 to 128 characters",
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')))
    {
        return Err(ValidationError::new(
            field,
            id,
            format!("character {c:?} not allowed (letters, digits, - _ . : @)"),
        ));
    }
    Ok(())
}

macro_rules! agent_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);
        impl $name {
            /// Validates an id: 1 to 128 letters, digits or `- _ . : @`.
            pub fn new(id: impl AsRef<str>) -> Result<Self, ValidationError> {
                validate_id($field, id.as_ref())?;
                Ok(Self(id.as_ref().to_string()))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

agent_id!(
    /// Identifies an agent within a pool, e.g. `ana`.
    AgentId,
    "agent id"
);
agent_id!(
    /// Identifies an agent pool, e.g. `in-house`.
    AgentPoolId,
    "agent pool id"
);
agent_id!(
    /// Identifies an offer: usually the caller's `CallSid`, so a retried webhook finds it.
    OfferId,
    "offer id"
);

/// A Twilio Client identity (`<Client><Identity>`): 1 to 121 letters, digits or `_`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientIdentity(String);

impl ClientIdentity {
    /// Validates an identity.
    pub fn new(id: impl AsRef<str>) -> Result<Self, ValidationError> {
        let id = id.as_ref();
        let ok = !id.is_empty()
            && id.len() <= 121
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(ValidationError::new(
                "client identity",
                id,
                "must be 1 to 121 letters, digits or underscores",
            ));
        }
        Ok(Self(id.to_string()))
    }
    /// The identity.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientIdentity({})", self.0)
    }
}
impl TryFrom<String> for ClientIdentity {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}
impl From<ClientIdentity> for String {
    fn from(v: ClientIdentity) -> String {
        v.0
    }
}

/// How an agent is rung: one `<Dial>` leg.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reach {
    /// A phone number (`<Number>`).
    Phone(PhoneNumber),
    /// A SIP endpoint (`<Sip>`).
    Sip(SipUri),
    /// A Twilio Client (`<Client><Identity>`), e.g. a browser softphone.
    Client(ClientIdentity),
}

impl Reach {
    /// Parses `client:NAME`, a `sip:` URI or an E.164 phone number.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let s = input.trim();
        if let Some(name) = s.strip_prefix("client:") {
            return Ok(Reach::Client(ClientIdentity::new(name)?));
        }
        if s.starts_with("sip:") || s.starts_with("sips:") {
            return Ok(Reach::Sip(SipUri::parse(s)?));
        }
        PhoneNumber::parse_field("reach", s).map(Reach::Phone)
    }
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reach::Phone(p) => f.write_str(p.as_str()),
            Reach::Sip(s) => f.write_str(s.as_str()),
            Reach::Client(c) => write!(f, "client:{}", c.as_str()),
        }
    }
}

/// A spoken language, as a lowercase ISO 639-1 or 639-2 code (`en`, `es`, `haw`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

impl Language {
    /// Validates a code (2 or 3 ASCII letters, case-insensitive).
    pub fn new(code: impl AsRef<str>) -> Result<Self, ValidationError> {
        let c = code.as_ref().trim().to_ascii_lowercase();
        if !(2..=3).contains(&c.len()) || !c.chars().all(|ch| ch.is_ascii_lowercase()) {
            return Err(ValidationError::new(
                "language",
                code.as_ref(),
                "expected an ISO 639 code of 2 or 3 letters",
            ));
        }
        Ok(Self(c))
    }
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Language({})", self.0)
    }
}
impl TryFrom<String> for Language {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}
impl From<Language> for String {
    fn from(v: Language) -> String {
        v.0
    }
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// An agent's working hours per weekday, in the agent's own zone. Stored as
/// `{"mon": ["08:00-17:00"], …}`; a missing day is closed. [`AgentHours::always`] is every
/// day, all day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, Vec<String>>",
    into = "BTreeMap<String, Vec<String>>"
)]
pub struct AgentHours {
    days: [Vec<TimeRange>; 7],
}

impl AgentHours {
    /// Every day, all day.
    pub fn always() -> Self {
        let all = TimeRange::new(chrono::NaiveTime::MIN, chrono::NaiveTime::MIN);
        AgentHours {
            days: std::array::from_fn(|_| vec![all]),
        }
    }
    /// Closed every day until days are set.
    pub fn closed() -> Self {
        AgentHours {
            days: Default::default(),
        }
    }
    /// Sets one weekday's ranges.
    pub fn with_day(mut self, day: Weekday, ranges: Vec<TimeRange>) -> Self {
        self.days[day.num_days_from_monday() as usize] = ranges;
        self
    }
    /// Whether the agent works at `at`, evaluated in `tz` (overnight ranges and DST as
    /// [`HoursRule`] does).
    pub fn is_open(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let rule = WEEKDAYS
            .iter()
            .zip(self.days.iter())
            .fold(HoursRule::new(Some(tz)), |r, (d, ranges)| {
                r.with_day(*d, ranges.clone())
            });
        rule.is_open(at, tz)
    }
}

fn day_key(d: Weekday) -> String {
    d.to_string().to_ascii_lowercase()
}

impl TryFrom<BTreeMap<String, Vec<String>>> for AgentHours {
    type Error = ValidationError;
    fn try_from(map: BTreeMap<String, Vec<String>>) -> Result<Self, Self::Error> {
        let mut h = AgentHours::closed();
        for (day, ranges) in map {
            let d: Weekday = day
                .parse()
                .map_err(|_| ValidationError::new("hours", &day, "not a weekday (mon … sun)"))?;
            let parsed = ranges
                .iter()
                .map(|r| TimeRange::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            h.days[d.num_days_from_monday() as usize] = parsed;
        }
        Ok(h)
    }
}

impl From<AgentHours> for BTreeMap<String, Vec<String>> {
    fn from(h: AgentHours) -> Self {
        WEEKDAYS
            .iter()
            .zip(h.days.iter())
            .filter(|(_, r)| !r.is_empty())
            .map(|(d, r)| (day_key(*d), r.iter().map(|t| t.to_string()).collect()))
            .collect()
    }
}

/// What a call needs from an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Needs {
    /// The service the caller asked for.
    pub service: ServiceType,
    /// The caller's ZIP.
    pub zip: Zip,
    /// The caller's language, when known.
    pub language: Option<Language>,
    /// The caller's number, when known (shown to the agent).
    pub caller: Option<PhoneNumber>,
}

impl Needs {
    /// A call for `service` from `zip`.
    pub fn new(service: ServiceType, zip: Zip) -> Self {
        Needs {
            service,
            zip,
            language: None,
            caller: None,
        }
    }
    /// Sets the caller's language.
    pub fn with_language(mut self, l: Language) -> Self {
        self.language = Some(l);
        self
    }
    /// Sets the caller's number.
    pub fn with_caller(mut self, c: PhoneNumber) -> Self {
        self.caller = Some(c);
        self
    }
}

/// An agent: how to reach them, what they handle, when, and their tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Agent {
    /// The agent.
    pub id: AgentId,
    /// A display name (at most 100 characters).
    pub name: String,
    /// The leg that rings them.
    pub reach: Reach,
    /// Services handled; empty: every service.
    pub services: BTreeSet<ServiceType>,
    /// States covered; with `zips` empty too: everywhere.
    pub states: BTreeSet<UsState>,
    /// ZIPs covered (in addition to `states`).
    pub zips: BTreeSet<Zip>,
    /// Languages spoken; empty: any caller.
    pub languages: BTreeSet<Language>,
    /// The agent's time zone (hours are local to it).
    pub time_zone: Tz,
    /// Working hours.
    pub hours: AgentHours,
    /// Tier: 1 rings first, then 2, …
    pub tier: u8,
}

impl Agent {
    /// An agent in tier 1 handling everything, always, in `America/New_York` until set.
    pub fn new(id: AgentId, name: &str, reach: Reach) -> Result<Self, ValidationError> {
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(ValidationError::new(
                "name",
                name,
                "must be 1 to 100 characters",
            ));
        }
        Ok(Agent {
            id,
            name: name.trim().to_string(),
            reach,
            services: BTreeSet::new(),
            states: BTreeSet::new(),
            zips: BTreeSet::new(),
            languages: BTreeSet::new(),
            time_zone: chrono_tz::America::New_York,
            hours: AgentHours::always(),
            tier: 1,
        })
    }
    /// Sets the tier (1 to [`MAX_TIER`]).
    pub fn with_tier(mut self, tier: u8) -> Result<Self, ValidationError> {
        if !(1..=MAX_TIER).contains(&tier) {
            return Err(ValidationError::new(
                "tier",
                tier.to_string(),
                format!("must be 1 to {MAX_TIER}"),
            ));
        }
        self.tier = tier;
        Ok(self)
    }
    /// Adds a service.
    pub fn with_service(mut self, s: ServiceType) -> Self {
        self.services.insert(s);
        self
    }
    /// Adds a state.
    pub fn with_state(mut self, s: UsState) -> Self {
        self.states.insert(s);
        self
    }
    /// Adds a ZIP.
    pub fn with_zip(mut self, z: Zip) -> Self {
        self.zips.insert(z);
        self
    }
    /// Adds a language.
    pub fn with_language(mut self, l: Language) -> Self {
        self.languages.insert(l);
        self
    }
    /// Sets zone and hours.
    pub fn with_hours(mut self, tz: Tz, hours: AgentHours) -> Self {
        self.time_zone = tz;
        self.hours = hours;
        self
    }

    /// Whether the agent handles this call at `at` (service, area, language, hours).
    pub fn handles(&self, needs: &Needs, at: DateTime<Utc>) -> bool {
        let service = self.services.is_empty() || self.services.contains(&needs.service);
        let area = (self.states.is_empty() && self.zips.is_empty())
            || self.zips.contains(&needs.zip)
            || needs.zip.state().is_some_and(|s| self.states.contains(&s));
        let language = match &needs.language {
            Some(l) => self.languages.is_empty() || self.languages.contains(l),
            None => true,
        };
        service && area && language && self.hours.is_open(at, self.time_zone)
    }
}

/// An agent's presence. `Offered` and `WrapUp` carry their end: past it the agent is
/// [`Presence::Available`] again (see [`Presence::at`]), so a crashed instance never
/// leaves an agent stuck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Presence {
    /// Logged out.
    Offline,
    /// Waiting for a call.
    Available,
    /// Being offered a call until `until`.
    Offered {
        /// The offer.
        offer: OfferId,
        /// The offer's TTL for this agent.
        until: DateTime<Utc>,
    },
    /// Talking.
    OnCall {
        /// The offer they accepted.
        offer: OfferId,
        /// Since when.
        since: DateTime<Utc>,
    },
    /// After-call work until `until`.
    WrapUp {
        /// End of the wrap-up timer.
        until: DateTime<Utc>,
    },
}

impl Presence {
    /// The presence in effect at `now` (expired offers and wrap-ups are `Available`).
    pub fn at(&self, now: DateTime<Utc>) -> Presence {
        match self {
            Presence::Offered { until, .. } | Presence::WrapUp { until } if now >= *until => {
                Presence::Available
            }
            p => p.clone(),
        }
    }
    /// The state's name (`offline`, `available`, `offered`, `on_call`, `wrap_up`).
    pub fn name(&self) -> &'static str {
        match self {
            Presence::Offline => "offline",
            Presence::Available => "available",
            Presence::Offered { .. } => "offered",
            Presence::OnCall { .. } => "on_call",
            Presence::WrapUp { .. } => "wrap_up",
        }
    }
}

/// Time an agent spent logged in and busy, in milliseconds (for utilisation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Not offline.
    pub online_ms: i64,
    /// On a call.
    pub on_call_ms: i64,
    /// In wrap-up.
    pub wrap_up_ms: i64,
}

/// An agent as stored: profile, presence since when, and time tallies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentRecord {
    /// The profile.
    pub agent: Agent,
    /// Presence as last written (read it through [`Presence::at`]).
    pub presence: Presence,
    /// When `presence` was written.
    pub since: DateTime<Utc>,
    /// Time accounted up to `since`.
    pub tally: Tally,
}

fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (b - a).num_milliseconds().max(0)
}

impl AgentRecord {
    /// A new agent, offline since `at`.
    pub fn new(agent: Agent, at: DateTime<Utc>) -> Self {
        AgentRecord {
            agent,
            presence: Presence::Offline,
            since: at,
            tally: Tally::default(),
        }
    }

    /// The tally including the current presence up to `now`.
    pub fn tally_at(&self, now: DateTime<Utc>) -> Tally {
        let mut t = self.tally;
        let d = ms_between(self.since, now);
        match &self.presence {
            Presence::Offline => {}
            Presence::Available | Presence::Offered { .. } => t.online_ms += d,
            Presence::OnCall { .. } => {
                t.online_ms += d;
                t.on_call_ms += d;
            }
            Presence::WrapUp { until } => {
                t.online_ms += d;
                t.wrap_up_ms += ms_between(self.since, (*until).min(now).max(self.since));
            }
        }
        t
    }

    /// Moves to `presence` at `at`, accounting the time spent in the previous one.
    pub fn set_presence(&mut self, presence: Presence, at: DateTime<Utc>) {
        let at = at.max(self.since);
        self.tally = self.tally_at(at);
        self.presence = presence;
        self.since = at;
    }
}

/// A pool of agents and how calls are offered to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentPool {
    /// The pool.
    pub id: AgentPoolId,
    /// The buyer id it bids under in auctions.
    pub buyer: BuyerId,
    /// How long one tier is offered before the next is tried.
    #[serde(with = "duration_ms")]
    pub offer_ttl: Duration,
    /// Agents offered per round (1 to 50); the first 10 are rung in one `<Dial>`.
    pub max_legs: u8,
    /// Wrap-up time after a call.
    #[serde(with = "duration_ms")]
    pub wrap_up: Duration,
    /// What the pool bids per service when an agent is available.
    pub bids: BTreeMap<ServiceType, Money>,
    /// What it bids for other services (none: no bid).
    pub default_bid: Option<Money>,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u128::from(u64::MAX)) as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl AgentPool {
    /// A pool with a 20 s offer TTL, 10 legs, 30 s wrap-up and no bids.
    pub fn new(id: AgentPoolId, buyer: BuyerId) -> Self {
        AgentPool {
            id,
            buyer,
            offer_ttl: Duration::from_secs(20),
            max_legs: MAX_DIAL_LEGS,
            wrap_up: Duration::from_secs(30),
            bids: BTreeMap::new(),
            default_bid: None,
        }
    }
    /// Sets the TTL of one tier's offer (1 s to 600 s).
    pub fn with_offer_ttl(mut self, ttl: Duration) -> Result<Self, ValidationError> {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(600) {
            return Err(ValidationError::new(
                "offer_ttl",
                format!("{}ms", ttl.as_millis()),
                "must be 1 s to 600 s",
            ));
        }
        self.offer_ttl = ttl;
        Ok(self)
    }
    /// Sets the agents offered per round (1 to 50; 10 of them ring in one `<Dial>`).
    pub fn with_max_legs(mut self, n: u8) -> Result<Self, ValidationError> {
        if !(1..=MAX_ROUND_AGENTS).contains(&n) {
            return Err(ValidationError::new(
                "max_legs",
                n.to_string(),
                "must be 1 to 50 (the first 10 ring in one <Dial>)",
            ));
        }
        self.max_legs = n;
        Ok(self)
    }
    /// Sets the wrap-up time (at most 1 hour).
    pub fn with_wrap_up(mut self, d: Duration) -> Result<Self, ValidationError> {
        if d > Duration::from_secs(3600) {
            return Err(ValidationError::new(
                "wrap_up",
                format!("{}s", d.as_secs()),
                "must be at most 3600 s",
            ));
        }
        self.wrap_up = d;
        Ok(self)
    }
    /// Bids `price` for `service` (must be positive).
    pub fn with_bid(mut self, service: ServiceType, price: Money) -> Result<Self, ValidationError> {
        positive(&price)?;
        self.bids.insert(service, price);
        Ok(self)
    }
    /// Bids `price` for services without their own bid.
    pub fn with_default_bid(mut self, price: Money) -> Result<Self, ValidationError> {
        positive(&price)?;
        self.default_bid = Some(price);
        Ok(self)
    }
    /// The bid for `service`, if any.
    pub fn bid_for(&self, service: &ServiceType) -> Option<Money> {
        self.bids.get(service).copied().or(self.default_bid)
    }
}

fn positive(m: &Money) -> Result<(), ValidationError> {
    if !m.is_positive() {
        return Err(ValidationError::new(
            "bid",
            m.to_string(),
            "must be positive",
        ));
    }
    Ok(())
}

/// How one leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LegOutcome {
    /// Still ringing / whispering.
    Ringing,
    /// This agent won the offer.
    Accepted,
    /// The agent declined (hung up on the whisper, clicked Decline).
    Declined,
    /// The tier's TTL passed without an accept.
    Missed,
    /// Another agent accepted first.
    Taken,
    /// The caller hung up.
    Cancelled,
}

/// One agent's leg of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Leg {
    /// The agent.
    pub agent: AgentId,
    /// How they were rung.
    pub reach: Reach,
    /// Their tier.
    pub tier: u8,
    /// Which round of the offer (1 for the first tier offered).
    pub round: u32,
    /// When the leg was offered.
    pub offered_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: LegOutcome,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
}

/// Where an offer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OfferState {
    /// Ringing round `round` (tier `tier`) until `until`.
    Offered {
        /// The tier being rung.
        tier: u8,
        /// The round number.
        round: u32,
        /// End of this round.
        until: DateTime<Utc>,
    },
    /// Won by `agent` at `at`.
    Accepted {
        /// The winner.
        agent: AgentId,
        /// When.
        at: DateTime<Utc>,
    },
    /// No tier accepted: the call goes to the fallback.
    Fallback {
        /// When.
        at: DateTime<Utc>,
    },
    /// The caller hung up before anyone accepted.
    CallerGone {
        /// When.
        at: DateTime<Utc>,
    },
}

/// An offer of one call to a pool's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Offer {
    /// The offer (usually the `CallSid`).
    pub id: OfferId,
    /// The pool.
    pub pool: AgentPoolId,
    /// The caller's call.
    pub call: CallId,
    /// What the call needs.
    pub needs: Needs,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Every leg of every round.
    pub legs: Vec<Leg>,
    /// Where it stands.
    pub state: OfferState,
    /// The embedder's note on the offer, stored with it and never read by the engine
    /// (callbid-server keeps where the caller returns to when nobody accepts, so an
    /// accept on any instance can move the call on). Empty by default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context: String,
}

/// The answer to an accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AcceptOutcome {
    /// This agent won (also the answer to a repeated accept by the winner).
    Won {
        /// The offer, accepted.
        offer: Box<Offer>,
    },
    /// Someone else won first.
    Taken {
        /// The winner.
        by: AgentId,
    },
    /// The round expired, or the offer went to the fallback.
    Expired,
    /// The caller hung up.
    CallerGone,
    /// This agent has no ringing leg in the current round.
    NotOffered,
}

/// What an offer needs from the store after a transition: nothing, or the next round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Still ringing.
    Wait,
    /// The round is over (TTL, or every leg declined): offer the next tier.
    Advance,
    /// Decided (accepted, fallback, caller gone).
    Done,
}

impl Offer {
    /// A new offer with no legs yet; [`Offer::start_round`] or [`Offer::fall_back`] next.
    pub fn new(
        id: OfferId,
        pool: AgentPoolId,
        call: CallId,
        needs: Needs,
        at: DateTime<Utc>,
    ) -> Self {
        Offer {
            id,
            pool,
            call,
            needs,
            created_at: at,
            legs: Vec::new(),
            state: OfferState::Fallback { at },
            context: String::new(),
        }
    }

    /// The current round, if ringing.
    pub fn round(&self) -> Option<(u8, u32, DateTime<Utc>)> {
        match self.state {
            OfferState::Offered { tier, round, until } => Some((tier, round, until)),
            _ => None,
        }
    }

    /// The highest tier offered so far (0 before the first round).
    pub fn last_tier(&self) -> u8 {
        self.legs.iter().map(|l| l.tier).max().unwrap_or(0)
    }

    /// Legs of the current round.
    pub fn current_legs(&self) -> impl Iterator<Item = &Leg> {
        let round = self.round().map(|r| r.1);
        self.legs.iter().filter(move |l| Some(l.round) == round)
    }

    /// Whether the offer is decided.
    pub fn is_done(&self) -> bool {
        self.round().is_none()
    }

    /// What should happen next at `now`.
    pub fn next(&self, now: DateTime<Utc>) -> Next {
        let Some((_, round, until)) = self.round() else {
            return Next::Done;
        };
        let ringing = self
            .legs
            .iter()
            .any(|l| l.round == round && l.outcome == LegOutcome::Ringing);
        if now >= until || !ringing {
            Next::Advance
        } else {
            Next::Wait
        }
    }

    /// When the ringing legs of the current round are missed if the round ends at `at`:
    /// at the round's end if that came first.
    fn missed_at(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self.state {
            OfferState::Offered { until, .. } => at.min(until),
            _ => at,
        }
    }

    fn end_ringing(&mut self, outcome: LegOutcome, at: DateTime<Utc>) {
        for l in self
            .legs
            .iter_mut()
            .filter(|l| l.outcome == LegOutcome::Ringing)
        {
            l.outcome = outcome;
            l.ended_at = Some(at);
        }
    }

    /// Starts a new round on tier `tier` with these agents, ending any ringing legs as
    /// missed. `agents` must not be empty.
    pub fn start_round(
        &mut self,
        tier: u8,
        agents: &[(AgentId, Reach)],
        at: DateTime<Utc>,
        ttl: Duration,
    ) {
        self.end_ringing(LegOutcome::Missed, self.missed_at(at));
        let round = self.legs.iter().map(|l| l.round).max().unwrap_or(0) + 1;
        for (agent, reach) in agents {
            self.legs.push(Leg {
                agent: agent.clone(),
                reach: reach.clone(),
                tier,
                round,
                offered_at: at,
                outcome: LegOutcome::Ringing,
                ended_at: None,
            });
        }
        let until = at + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        self.state = OfferState::Offered { tier, round, until };
    }

    /// No (more) tier to offer: the fallback.
    pub fn fall_back(&mut self, at: DateTime<Utc>) {
        self.end_ringing(LegOutcome::Missed, self.missed_at(at));
        self.state = OfferState::Fallback { at };
    }

    /// `agent` accepts at `at`. Decides the offer when it is theirs to take.
    pub fn accept(&mut self, agent: &AgentId, at: DateTime<Utc>) -> AcceptOutcome {
        match &self.state {
            OfferState::Accepted { agent: a, .. } if a == agent => {
                return AcceptOutcome::Won {
                    offer: Box::new(self.clone()),
                }
            }
            OfferState::Accepted { agent: a, .. } => return AcceptOutcome::Taken { by: a.clone() },
            OfferState::CallerGone { .. } => return AcceptOutcome::CallerGone,
            OfferState::Fallback { .. } => return AcceptOutcome::Expired,
            OfferState::Offered { until, .. } if at >= *until => return AcceptOutcome::Expired,
            OfferState::Offered { .. } => {}
        }
        let round = self.round().map(|r| r.1);
        let Some(i) = self.legs.iter().position(|l| {
            Some(l.round) == round && &l.agent == agent && l.outcome == LegOutcome::Ringing
        }) else {
            return AcceptOutcome::NotOffered;
        };
        self.end_ringing(LegOutcome::Taken, at);
        self.legs[i].outcome = LegOutcome::Accepted;
        self.state = OfferState::Accepted {
            agent: agent.clone(),
            at,
        };
        AcceptOutcome::Won {
            offer: Box::new(self.clone()),
        }
    }

    /// `agent` declines at `at`; returns whether anything changed.
    pub fn decline(&mut self, agent: &AgentId, at: DateTime<Utc>) -> bool {
        let Some((_, round, _)) = self.round() else {
            return false;
        };
        let mut changed = false;
        for l in self.legs.iter_mut() {
            if l.round == round && &l.agent == agent && l.outcome == LegOutcome::Ringing {
                l.outcome = LegOutcome::Declined;
                l.ended_at = Some(at);
                changed = true;
            }
        }
        changed
    }

    /// The caller hung up at `at`; returns whether anything changed.
    pub fn caller_hung_up(&mut self, at: DateTime<Utc>) -> bool {
        if self.is_done() {
            return false;
        }
        self.end_ringing(LegOutcome::Cancelled, at);
        self.state = OfferState::CallerGone { at };
        true
    }

    /// What `agent`'s presence should be given this offer, if the offer decides it: the
    /// winner is on the call, everyone else whose leg ended is free.
    pub fn presence_for(&self, agent: &AgentId) -> Option<Presence> {
        let leg = self.legs.iter().rev().find(|l| &l.agent == agent)?;
        match leg.outcome {
            LegOutcome::Ringing => None,
            LegOutcome::Accepted => Some(Presence::OnCall {
                offer: self.id.clone(),
                since: leg.ended_at.unwrap_or(self.created_at),
            }),
            _ => Some(Presence::Available),
        }
    }

    /// The whisper for an agent: "a plumbing call from 78701".
    pub fn summary(&self) -> String {
        format!(
            "a {} call from {}",
            self.needs.service.as_str().replace('_', " "),
            self.needs.zip
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn offer(n: usize) -> Offer {
        let needs = Needs::new(
            ServiceType::new("plumbing").unwrap(),
            "78701".parse().unwrap(),
        );
        let mut o = Offer::new(
            OfferId::new("CA1").unwrap(),
            AgentPoolId::new("p").unwrap(),
            CallId::new("CA1").unwrap(),
            needs,
            t(0),
        );
        let agents: Vec<_> = (0..n)
            .map(|i| {
                let reach = Reach::parse(&format!("client:a{i}")).unwrap();
                (AgentId::new(format!("a{i}")).unwrap(), reach)
            })
            .collect();
        o.start_round(1, &agents, t(0), Duration::from_secs(20));
        o
    }

    #[test]
    fn edge_validation_names_the_field() {
        assert_eq!(
            Reach::parse("client:bad name").unwrap_err().field,
            "client identity"
        );
        assert_eq!(Reach::parse("12").unwrap_err().field, "reach");
        assert!(matches!(
            Reach::parse("sip:ana@pbx.example.com").unwrap(),
            Reach::Sip(_)
        ));
        let p = AgentPool::new(AgentPoolId::new("p").unwrap(), BuyerId::new("b").unwrap());
        assert_eq!(p.clone().with_max_legs(51).unwrap_err().field, "max_legs");
        assert_eq!(p.clone().with_max_legs(0).unwrap_err().value, "0");
        assert_eq!(
            p.with_offer_ttl(Duration::ZERO).unwrap_err().field,
            "offer_ttl"
        );
        assert_eq!(Language::new("english").unwrap_err().field, "language");
        assert_eq!(AgentId::new("a b").unwrap_err().field, "agent id");
    }

    #[test]
    fn hours_round_trip_and_apply_in_the_agents_zone() {
        let h = AgentHours::closed()
            .with_day(Weekday::Sat, vec![TimeRange::parse("08:00-17:00").unwrap()]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"sat":["08:00-17:00"]}"#);
        assert_eq!(serde_json::from_str::<AgentHours>(&json).unwrap(), h);
        // 12:00 UTC on Saturday is 06:00 in Chicago: closed; 15:00 UTC is 09:00: open.
        assert!(!h.is_open(t(0), chrono_tz::America::Chicago));
        assert!(h.is_open(t(3 * 3600), chrono_tz::America::Chicago));
        assert!(serde_json::from_str::<AgentHours>(r#"{"caturday":[]}"#).is_err());
    }

    #[test]
    fn answering_is_not_accepting_and_the_winner_is_final() {
        let mut o = offer(3);
        let a1 = AgentId::new("a1").unwrap();
        assert!(matches!(o.accept(&a1, t(2)), AcceptOutcome::Won { .. }));
        assert_eq!(o.presence_for(&a1).unwrap().name(), "on_call");
        assert_eq!(
            o.presence_for(&AgentId::new("a0").unwrap()),
            Some(Presence::Available)
        );
        assert!(!o.caller_hung_up(t(3)));
        assert_eq!(o.next(t(100)), Next::Done);
        assert_eq!(o.summary(), "a plumbing call from 78701");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Accept(usize, i64),
        Decline(usize, i64),
        HangUp(i64),
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..5usize, 0..60i64).prop_map(|(a, s)| Op::Accept(a, s)),
            (0..5usize, 0..60i64).prop_map(|(a, s)| Op::Decline(a, s)),
            (0..60i64).prop_map(Op::HangUp),
            (0..60i64).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Whatever happens in whatever order, at most one leg is ever accepted, and once
        /// an offer is decided it stays decided the same way.
        #[test]
        fn at_most_one_winner(ops in proptest::collection::vec(op(), 1..40)) {
            let mut o = offer(5);
            let mut decided: Option<OfferState> = None;
            for op in ops {
                match op {
                    Op::Accept(a, s) => {
                        let id = AgentId::new(format!("a{a}")).unwrap();
                        let _ = o.accept(&id, t(s));
                    }
                    Op::Decline(a, s) => {
                        let _ = o.decline(&AgentId::new(format!("a{a}")).unwrap(), t(s));
                    }
                    Op::HangUp(s) => { o.caller_hung_up(t(s)); }
                    Op::Advance(s) => {
                        if o.next(t(s)) == Next::Advance { o.fall_back(t(s)); }
                    }
                }
                let wins = o.legs.iter().filter(|l| l.outcome == LegOutcome::Accepted).count();
                prop_assert!(wins <= 1);
                if let Some(d) = &decided {
                    prop_assert_eq!(d, &o.state);
                } else if o.is_done() {
                    decided = Some(o.state.clone());
                }
                if let OfferState::Accepted { agent, .. } = &o.state {
                    prop_assert_eq!(o.presence_for(agent).map(|p| p.name()), Some("on_call"));
                }
            }
        }
    }
}

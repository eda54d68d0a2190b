//! The pool model: numbers, pools and their settings, leases, inbound calls and
//! attributions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::geo::UsState;
use crate::ids::{CampaignId, SourceId};
use crate::phone::PhoneNumber;

fn validate(field: &'static str, input: &str) -> Result<(), ValidationError> {
    if input.is_empty() {
        return Err(ValidationError::new(field, input, "must not be empty"));
    }
    if input.len() > 128 {
        return Err(ValidationError::new(field, input, "longer than 128 bytes"));
    }
    if let Some(c) = input
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '"' || *c == '\\')
    {
        return Err(ValidationError::new(
            field,
            input,
            format!(
                "character {c:?} not allowed (printable ASCII, no spaces, quotes or backslashes)"
            ),
        ));
    }
    Ok(())
}

macro_rules! pool_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps an identifier: 1 to 128 bytes of printable ASCII without
            /// spaces, quotes or backslashes.
            pub fn new(id: impl AsRef<str>) -> Result<Self, ValidationError> {
                let id = id.as_ref();
                validate($field, id)?;
                Ok(Self(Arc::from(id)))
            }
            /// The identifier as text.
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
                v.0.to_string()
            }
        }
    };
}

pool_id!(
    /// Identifies a number pool, e.g. `cars-listings` (the `{pool}` of `POST /pool/{pool}/lease`).
    PoolId,
    "pool id"
);
pool_id!(
    /// Identifies a visitor session (the page's cookie), e.g. `v-3f2a…`.
    VisitorId,
    "visitor id"
);
pool_id!(
    /// Identifies a listing (a dealer's car, a contractor's profile), e.g. `listing-123`.
    ListingId,
    "listing id"
);
pool_id!(
    /// Identifies a lease: the handle the page's script renews by heartbeat.
    LeaseId,
    "lease id"
);

impl LeaseId {
    /// A fresh random lease id (`LS` + 32 hex digits, 128 random bits from the thread's
    /// OS-seeded generator), unique across processes.
    pub fn random() -> Self {
        let bits: u128 = rand::random();
        Self(Arc::from(format!("LS{bits:032x}")))
    }
}

/// What a tracking number can do (Twilio's `capabilities` of an incoming number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Receives voice calls.
    pub voice: bool,
    /// Receives SMS.
    pub sms: bool,
    /// Receives MMS.
    pub mms: bool,
}

impl Capabilities {
    /// Voice only.
    pub fn voice() -> Self {
        Self {
            voice: true,
            sms: false,
            mms: false,
        }
    }
}

/// One tracking number of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolNumber {
    /// The number, E.164.
    pub number: PhoneNumber,
    /// Its NANP area code (`None` outside NANP).
    pub area_code: Option<u16>,
    /// The state its area code serves (from [`crate::geo::area_code_info`]), if known.
    pub state: Option<UsState>,
    /// What it can receive.
    pub capabilities: Capabilities,
}

impl PoolNumber {
    /// A voice number; area code and state are derived from the number.
    pub fn new(number: PhoneNumber) -> Self {
        let info = number.area_info();
        Self {
            area_code: number.area_code(),
            state: info.map(|i| i.state),
            number,
            capabilities: Capabilities::voice(),
        }
    }

    /// Parses an E.164 number (field `number`).
    pub fn parse(number: &str) -> Result<Self, ValidationError> {
        Ok(Self::new(PhoneNumber::parse_field("number", number)?))
    }

    /// With other capabilities.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }
}

/// What a lease is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PoolMode {
    /// Seed part 4: one number per visitor × listing (visitor-level attribution).
    VisitorListing,
    /// Seed part 3: one number per listing, shared by every visitor viewing it at the
    /// same time (listing-level attribution). The lease records the visitor that took it.
    Listing,
}

/// What a call lock is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LockKey {
    /// The number alone: once called, it serves only that visitor × listing for the lock
    /// period (seed's pool 2).
    Number,
    /// The number and the caller's number (Twilio Proxy's approach): the number goes back
    /// into circulation when the lease ends; a later call from the same caller still
    /// resolves to the locked lease, calls from other callers to the live lease. A call
    /// without caller id locks the whole number. A visitor is never leased a number it
    /// holds a lock on for another key.
    NumberAndCaller,
}

/// What a lease request gets when no number is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExhaustionPolicy {
    /// Break the call lock of the locked number whose last lease expired longest ago and
    /// lease it; when no locked number is idle, answer with the overflow number.
    ReclaimOldest,
    /// Answer with the pool's overflow number (calls to it are attributed as overflow).
    Overflow,
    /// Answer with the overflow number now and let [`super::provision::replenish`] buy
    /// more (buying takes minutes; no visitor waits for it).
    Provision,
}

/// A pool of tracking numbers and how it leases them. Build with [`NumberPool::builder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NumberPool {
    /// The pool.
    pub id: PoolId,
    /// Per visitor × listing or per listing.
    pub mode: PoolMode,
    /// What a call lock is keyed on.
    pub lock_key: LockKey,
    /// How long a lease lives without a renewal (the session length); each renewal
    /// extends it to `now + lease_length`.
    pub lease_length: Duration,
    /// How often the page's script should renew (must be shorter than `lease_length`).
    pub heartbeat: Duration,
    /// How long a called number stays locked after the call (seed: 30 days).
    pub lock_period: Duration,
    /// What to do when no number is free.
    pub exhaustion: ExhaustionPolicy,
    /// The number shown when the pool is exhausted (not itself in the pool); `None`: the
    /// lease request is answered `Exhausted` and the site keeps its own number.
    pub overflow_number: Option<PhoneNumber>,
    /// Abuse limit: live leases one visitor may hold at once.
    pub max_leases_per_visitor: u32,
    /// The pool's numbers (what [`super::NumberPoolStore::put_pool`] adds).
    pub numbers: Vec<PoolNumber>,
}

/// Builds a [`NumberPool`]; defaults: visitor × listing, lock on the number, 10-minute
/// leases renewed every 60 s, 30-day locks, overflow, 20 live leases per visitor.
#[derive(Debug, Clone)]
pub struct NumberPoolBuilder(NumberPool);

impl NumberPool {
    /// Starts a builder with the defaults of [`NumberPoolBuilder`].
    pub fn builder(id: PoolId) -> NumberPoolBuilder {
        NumberPoolBuilder(NumberPool {
            id,
            mode: PoolMode::VisitorListing,
            lock_key: LockKey::Number,
            lease_length: Duration::from_secs(600),
            heartbeat: Duration::from_secs(60),
            lock_period: Duration::from_secs(30 * 86_400),
            exhaustion: ExhaustionPolicy::Overflow,
            overflow_number: None,
            max_leases_per_visitor: 20,
            numbers: Vec::new(),
        })
    }

    /// The key a lease of `visitor` on `listing` is held under in this pool's mode.
    pub fn lease_key(&self, visitor: &VisitorId, listing: &ListingId) -> String {
        match self.mode {
            PoolMode::VisitorListing => format!("{visitor}|{listing}"),
            PoolMode::Listing => format!("|{listing}"),
        }
    }

    /// Whether `number` is one of the pool's numbers as given here.
    pub fn contains(&self, number: &PhoneNumber) -> bool {
        self.numbers.iter().any(|n| &n.number == number)
    }
}

impl NumberPoolBuilder {
    /// Per visitor × listing or per listing.
    pub fn mode(mut self, mode: PoolMode) -> Self {
        self.0.mode = mode;
        self
    }
    /// What a call lock is keyed on.
    pub fn lock_key(mut self, key: LockKey) -> Self {
        self.0.lock_key = key;
        self
    }
    /// Lease length (session length).
    pub fn lease_length(mut self, d: Duration) -> Self {
        self.0.lease_length = d;
        self
    }
    /// Heartbeat interval.
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.0.heartbeat = d;
        self
    }
    /// Lock period after a call.
    pub fn lock_period(mut self, d: Duration) -> Self {
        self.0.lock_period = d;
        self
    }
    /// Exhaustion policy.
    pub fn exhaustion(mut self, p: ExhaustionPolicy) -> Self {
        self.0.exhaustion = p;
        self
    }
    /// Overflow number.
    pub fn overflow_number(mut self, n: PhoneNumber) -> Self {
        self.0.overflow_number = Some(n);
        self
    }
    /// Live leases one visitor may hold.
    pub fn max_leases_per_visitor(mut self, n: u32) -> Self {
        self.0.max_leases_per_visitor = n;
        self
    }
    /// Adds numbers.
    pub fn numbers(mut self, numbers: impl IntoIterator<Item = PoolNumber>) -> Self {
        self.0.numbers.extend(numbers);
        self
    }

    /// Validates: positive lease length, heartbeat shorter than it, lock period at least
    /// a lease, a visitor cap of at least 1, the overflow number not in the pool, no
    /// duplicate numbers, every duration below 100 years. Errors name the field.
    pub fn build(self) -> Result<NumberPool, ValidationError> {
        let p = self.0;
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        let century = Duration::from_secs(100 * 365 * 86_400);
        for (field, d) in [
            ("lease_length", p.lease_length),
            ("heartbeat", p.heartbeat),
            ("lock_period", p.lock_period),
        ] {
            if d.is_zero() || d > century {
                return Err(ValidationError::new(
                    field,
                    secs(d),
                    "must be positive and under 100 years",
                ));
            }
        }
        if p.heartbeat >= p.lease_length {
            return Err(ValidationError::new(
                "heartbeat",
                secs(p.heartbeat),
                format!("must be shorter than lease_length {}", secs(p.lease_length)),
            ));
        }
        if p.lock_period < p.lease_length {
            return Err(ValidationError::new(
                "lock_period",
                secs(p.lock_period),
                "must be at least lease_length",
            ));
        }
        if p.max_leases_per_visitor == 0 {
            return Err(ValidationError::new(
                "max_leases_per_visitor",
                "0",
                "must be at least 1",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &p.numbers {
            if !seen.insert(n.number.as_str()) {
                return Err(ValidationError::new(
                    "numbers",
                    n.number.as_str(),
                    "listed twice",
                ));
            }
        }
        if let Some(o) = &p.overflow_number {
            if seen.contains(o.as_str()) {
                return Err(ValidationError::new(
                    "overflow_number",
                    o.as_str(),
                    "must not be one of the pool's numbers",
                ));
            }
        }
        Ok(p)
    }
}

/// UTM parameters of the landing page.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Utm {
    /// `utm_source`.
    pub source: Option<String>,
    /// `utm_medium`.
    pub medium: Option<String>,
    /// `utm_campaign`.
    pub campaign: Option<String>,
    /// `utm_term`.
    pub term: Option<String>,
    /// `utm_content`.
    pub content: Option<String>,
}

/// Where a visitor came from and what they looked at: travels with the lease to the
/// call (Telmetrics-style `tag_data`, e.g. `listingId=123`, goes in `tags`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeaseContext {
    /// The publisher (traffic source / affiliate).
    pub publisher: Option<SourceId>,
    /// The campaign.
    pub campaign: Option<CampaignId>,
    /// The source (e.g. `google`, `facebook`, `direct`).
    pub source: Option<String>,
    /// The landing page URL.
    pub landing_page: Option<String>,
    /// The referrer URL.
    pub referrer: Option<String>,
    /// UTM parameters.
    pub utm: Utm,
    /// The search term that brought the visitor.
    pub search_term: Option<String>,
    /// Free tags.
    pub tags: BTreeMap<String, String>,
}

/// Longest accepted free-text field of a [`LeaseContext`], in bytes.
pub const MAX_CONTEXT_TEXT: usize = 2048;
/// Most tags a [`LeaseContext`] may carry.
pub const MAX_CONTEXT_TAGS: usize = 32;

impl LeaseContext {
    /// Checks sizes (each text at most [`MAX_CONTEXT_TEXT`] bytes, at most
    /// [`MAX_CONTEXT_TAGS`] tags with keys of 1–64 bytes) and refuses control
    /// characters; errors name the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let texts = [
            ("source", &self.source),
            ("landing_page", &self.landing_page),
            ("referrer", &self.referrer),
            ("utm_source", &self.utm.source),
            ("utm_medium", &self.utm.medium),
            ("utm_campaign", &self.utm.campaign),
            ("utm_term", &self.utm.term),
            ("utm_content", &self.utm.content),
            ("search_term", &self.search_term),
        ];
        for (field, v) in texts {
            if let Some(v) = v {
                check_text(field, v)?;
            }
        }
        if self.tags.len() > MAX_CONTEXT_TAGS {
            return Err(ValidationError::new(
                "tags",
                format!("{} tags", self.tags.len()),
                format!("at most {MAX_CONTEXT_TAGS}"),
            ));
        }
        for (k, v) in &self.tags {
            if k.is_empty() || k.len() > 64 {
                return Err(ValidationError::new("tag key", k, "must be 1 to 64 bytes"));
            }
            check_text("tag key", k)?;
            check_text("tag value", v)?;
        }
        Ok(())
    }
}

fn check_text(field: &'static str, v: &str) -> Result<(), ValidationError> {
    if v.len() > MAX_CONTEXT_TEXT {
        return Err(ValidationError::new(
            field,
            v,
            format!("longer than {MAX_CONTEXT_TEXT} bytes"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            v,
            "control characters not allowed",
        ));
    }
    Ok(())
}

/// A number leased to a visitor session for a listing. A plain record (stores build it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lease (what the page renews).
    pub id: LeaseId,
    /// The pool.
    pub pool: PoolId,
    /// The number shown.
    pub number: PhoneNumber,
    /// The visitor session that took it.
    pub visitor: VisitorId,
    /// The listing it is shown on.
    pub listing: ListingId,
    /// Publisher, campaign, source, landing page, referrer, UTM, search term, tags.
    pub context: LeaseContext,
    /// When it was granted.
    pub created_at: DateTime<Utc>,
    /// When it ends unless renewed (a release sets it to the release instant).
    pub expires_at: DateTime<Utc>,
    /// Whether it holds the number exclusively. `false` only for a lease resumed from a
    /// (number, caller) lock, which shares the number with another visitor's lease.
    pub exclusive: bool,
}

impl Lease {
    /// Whether the lease is live at `at` (`created_at <= at < expires_at`).
    pub fn is_live(&self, at: DateTime<Utc>) -> bool {
        self.created_at <= at && at < self.expires_at
    }
}

/// A request for a number to show a visitor on a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseRequest {
    /// The pool.
    pub pool: PoolId,
    /// The visitor session.
    pub visitor: VisitorId,
    /// The listing.
    pub listing: ListingId,
    /// Attribution context.
    pub context: LeaseContext,
    /// The id a new lease gets (ignored when the visitor already holds one for the key).
    pub lease_id: LeaseId,
    /// The current instant.
    pub now: DateTime<Utc>,
}

impl LeaseRequest {
    /// A request with a fresh random lease id and an empty context.
    pub fn new(pool: PoolId, visitor: VisitorId, listing: ListingId, now: DateTime<Utc>) -> Self {
        Self {
            pool,
            visitor,
            listing,
            context: LeaseContext::default(),
            lease_id: LeaseId::random(),
            now,
        }
    }
    /// With a context.
    pub fn with_context(mut self, context: LeaseContext) -> Self {
        self.context = context;
        self
    }
    /// With a chosen lease id.
    pub fn with_lease_id(mut self, id: LeaseId) -> Self {
        self.lease_id = id;
        self
    }
}

/// How a granted lease came about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Grant {
    /// The visitor already held a live lease for this key: the same one, renewed.
    Existing,
    /// The visitor (listing) holds a call lock: the locked number is shown again.
    Locked,
    /// A free number (the one free longest).
    Fresh,
    /// The pool was exhausted; the lock of the locked number idle longest was broken.
    Reclaimed {
        /// The lease whose lock was broken.
        from: LeaseId,
    },
}

/// The answer to [`super::NumberPoolStore::lease`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
// One answer per request, moved once: boxing the lease would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum LeaseOutcome {
    /// A number was leased.
    Leased {
        /// The lease.
        lease: Lease,
        /// How.
        grant: Grant,
    },
    /// The pool is exhausted: show the overflow number (calls to it are "overflow").
    Overflow {
        /// The overflow number.
        number: PhoneNumber,
    },
    /// The pool is exhausted and has no overflow number: keep the site's own number.
    Exhausted,
    /// The visitor already holds the most live leases allowed.
    VisitorCap {
        /// The limit.
        limit: u32,
    },
    /// No such pool.
    UnknownPool,
}

impl LeaseOutcome {
    /// The number to show, if any.
    pub fn number(&self) -> Option<&PhoneNumber> {
        match self {
            LeaseOutcome::Leased { lease, .. } => Some(&lease.number),
            LeaseOutcome::Overflow { number } => Some(number),
            _ => None,
        }
    }
    /// The lease, if one was granted.
    pub fn lease(&self) -> Option<&Lease> {
        match self {
            LeaseOutcome::Leased { lease, .. } => Some(lease),
            _ => None,
        }
    }
}

/// The answer to [`super::NumberPoolStore::renew`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RenewOutcome {
    /// Renewed: live until `expires_at` (never earlier than before).
    Renewed {
        /// The new end.
        expires_at: DateTime<Utc>,
    },
    /// It had already ended (expired or released); ask for a new lease.
    Ended {
        /// When it ended.
        at: DateTime<Utc>,
    },
    /// No such lease in this pool.
    Unknown,
}

/// An inbound call to a tracking number (Twilio's `CallSid`, `To`, `From`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InboundCall {
    /// The pool the dialed number belongs to.
    pub pool: PoolId,
    /// The call (Twilio `CallSid`); recording is idempotent per call.
    pub call_sid: String,
    /// The number dialed (`To`).
    pub dialed: PhoneNumber,
    /// The caller (`From`), if presented.
    pub caller: Option<PhoneNumber>,
    /// When the call arrived.
    pub at: DateTime<Utc>,
}

impl InboundCall {
    /// A call; the call sid is checked like an id (field `call_sid`).
    pub fn new(
        pool: PoolId,
        call_sid: &str,
        dialed: PhoneNumber,
        caller: Option<PhoneNumber>,
        at: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        validate("call_sid", call_sid)?;
        Ok(Self {
            pool,
            call_sid: call_sid.to_string(),
            dialed,
            caller,
            at,
        })
    }
}

/// How an attributed call found its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Via {
    /// The lease live on the number at the call's time.
    Lease,
    /// A call lock (an earlier call on that number, within the lock period).
    Lock,
}

/// What a call resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "attribution", rename_all = "snake_case")]
#[non_exhaustive]
// One answer per request, moved once: boxing the lease would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Attribution {
    /// The lease the call belongs to.
    Attributed {
        /// The lease (visitor, listing, context).
        lease: Lease,
        /// How it was found.
        via: Via,
    },
    /// The pool's overflow number was dialed: no visitor can be told apart.
    Overflow {
        /// The overflow number.
        number: PhoneNumber,
    },
    /// A pool number with no live lease or lock at the call's time.
    ExpiredLease {
        /// The number's last lease before the call, if it ever had one.
        last: Option<Lease>,
    },
    /// The dialed number is not in the pool (or the pool is unknown).
    UnknownNumber {
        /// The number dialed.
        number: PhoneNumber,
    },
}

impl Attribution {
    /// `attributed`, `overflow`, `expired_lease` or `unknown_number` (how calls are counted
    /// in [`PoolHealth::calls`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Attribution::Attributed { .. } => "attributed",
            Attribution::Overflow { .. } => "overflow",
            Attribution::ExpiredLease { .. } => "expired_lease",
            Attribution::UnknownNumber { .. } => "unknown_number",
        }
    }
    /// The lease, when attributed.
    pub fn lease(&self) -> Option<&Lease> {
        match self {
            Attribution::Attributed { lease, .. } => Some(lease),
            _ => None,
        }
    }
}

/// Where a pool number stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NumberState {
    /// Shown on a live exclusive lease (pool 1).
    Leased,
    /// Locked after a call, no live lease (pool 2).
    Locked,
    /// Neither: can be leased.
    Free,
}

/// One number of a pool and its state (see [`super::NumberPoolStore::numbers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberStatus {
    /// The number.
    pub number: PoolNumber,
    /// Its state at the instant asked.
    pub state: NumberState,
    /// When it was added to the pool.
    pub added_at: DateTime<Utc>,
    /// Its last activity (a lease ending or a call), or when it was added.
    pub last_active: DateTime<Utc>,
}

/// A pool's health (see [`super::NumberPoolStore::health`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolHealth {
    /// Numbers in the pool.
    pub numbers: u64,
    /// Pool 1 now: numbers on a live exclusive lease.
    pub leased: u64,
    /// Pool 2 now: numbers locked after a call (with no live lease).
    pub locked: u64,
    /// Free numbers now.
    pub free: u64,
    /// Most exclusive leases live at once during the window (peak use of pool 1).
    pub peak_leased: u64,
    /// Leases granted during the window.
    pub leases_granted: u64,
    /// Lease requests answered with the overflow number or `Exhausted` in the window.
    pub lease_overflows: u64,
    /// Calls recorded in the window, by [`Attribution::kind`].
    pub calls: BTreeMap<String, u64>,
    /// Free numbers whose last activity is older than the idle age asked for.
    pub idle: u64,
}

impl PoolHealth {
    /// Overflowed lease requests ÷ all lease requests in the window, in per mille
    /// (integer, rounded down; 0 with no requests).
    pub fn lease_overflow_permille(&self) -> u64 {
        let all = self.leases_granted + self.lease_overflows;
        (self.lease_overflows * 1000).checked_div(all).unwrap_or(0)
    }
    /// Calls to the overflow number ÷ all calls in the window, in per mille.
    pub fn call_overflow_permille(&self) -> u64 {
        let all: u64 = self.calls.values().sum();
        let o = self.calls.get("overflow").copied().unwrap_or(0);
        (o * 1000).checked_div(all).unwrap_or(0)
    }
}

/// Most intervals `[start, end)` overlapping at once (an interval ending at `t` does not
/// overlap one starting at `t`). Used for [`PoolHealth::peak_leased`].
pub fn peak_concurrency(
    intervals: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>,
) -> u64 {
    let mut edges: Vec<(DateTime<Utc>, i64)> = Vec::new();
    for (s, e) in intervals {
        if s < e {
            edges.push((s, 1));
            edges.push((e, -1));
        }
    }
    // Ends sort before starts at the same instant.
    edges.sort();
    let (mut cur, mut peak) = (0i64, 0i64);
    for (_, d) in edges {
        cur += d;
        peak = peak.max(cur);
    }
    peak.max(0) as u64
}

/// `d` as a chrono duration (saturating; pool durations are validated below 100 years).
pub(crate) fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

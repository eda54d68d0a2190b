//! Call tracking with number pools over HTTP (seed 003): the public lease API a site's
//! `callbid-dni.js` calls, its abuse limits, the inbound-call attribution step the IVR
//! runs first, and the background task that keeps pools stocked.
//!
//! | route | what |
//! |---|---|
//! | `POST /pool/{pool}/lease` | JSON `{visitor, listing, page?, referrer?, utm?, search_term?, publisher?, source?, tags?}` → the number to show |
//! | `POST /pool/{pool}/renew` | JSON `{lease}` → the lease's new end (the page's heartbeat) |
//! | `POST /pool/{pool}/release` | JSON `{lease}` → ends the lease (the page was closed) |
//! | `GET /pool/callbid-dni.js` | the dynamic number insertion script (no build step) |
//!
//! Answers: `200 {"outcome": "leased", "number", "display", "lease", "expires_at",
//! "heartbeat_ms"}`, `200 {"outcome": "overflow", "number", "display"}` (pool exhausted:
//! the overflow number), `200 {"outcome": "exhausted"}` (keep the site's own number);
//! `400 {"error", "field", "value"}` for bad input, naming the field and the value; `403`
//! for an origin not allow-listed; `404` for an unknown pool or lease; `410` for an ended
//! lease; `429` (with `Retry-After`) past a rate limit or the per-visitor lease cap.
//!
//! Abuse limits ([`PoolLimits`]): requests per minute per visitor and per client IP
//! (GCRA limiters of the `governor` crate), the pool's cap on live leases per visitor
//! ([`callbid_core::pool::NumberPool::max_leases_per_visitor`]), a 16 KiB body limit, and CORS origins
//! allow-listed (`tower-http`'s `CorsLayer`; other browser origins get `403`).

pub mod report;
pub mod spec;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callbid_core::pool::provision::{replenish, NumberProvisioner};
use callbid_core::pool::{
    Attribution, InboundCall, LeaseContext, LeaseId, LeaseOutcome, LeaseRequest, ListingId,
    NumberPoolStore, PoolId, RenewOutcome, Utm, Via, VisitorId,
};
use callbid_core::state::CallLog;
use callbid_core::{CallContext, CampaignId, PhoneNumber, SourceId, StateError, ValidationError};
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use spec::{PoolSpec, ProvisionSpec, SpecError};

/// The DNI script served at `GET /pool/callbid-dni.js`.
pub const DNI_JS: &str = include_str!("pool/callbid-dni.js");

/// How long lease history is kept for pools without provisioning (30 days).
const DEFAULT_IDLE_KEEP: Duration = Duration::from_secs(30 * 86_400);

/// Largest lease / renew body read.
pub const MAX_BODY: usize = 16 * 1024;

/// Abuse limits and CORS of the public lease API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolLimits {
    /// Lease and renew requests one visitor may make per minute (per pool).
    pub visitor_per_minute: u32,
    /// Lease and renew requests one client IP may make per minute.
    pub ip_per_minute: u32,
    /// Take the client IP from the last `X-Forwarded-For` entry (behind a proxy that
    /// appends it) instead of the connection's peer address.
    pub trust_forwarded_for: bool,
    /// Browser origins allowed to call the API (`https://www.example.com`); an empty list
    /// allows only pages served from this server.
    pub cors_origins: Vec<String>,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            visitor_per_minute: 60,
            ip_per_minute: 600,
            trust_forwarded_for: false,
            cors_origins: Vec::new(),
        }
    }
}

/// Parses a comma-separated origin list (`https://a.example,https://b.example`): each an
/// `http(s)://host[:port]` without a path; errors name the field `pool_cors_origins`.
pub fn parse_origins(list: &str) -> Result<Vec<String>, ValidationError> {
    let mut out = Vec::new();
    for o in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        let ok = rest.is_some_and(|r| {
            !r.is_empty()
                && !r.contains('/')
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
        if !ok || HeaderValue::from_str(o).is_err() {
            return Err(ValidationError::new(
                "pool_cors_origins",
                o,
                "expected an origin such as https://www.example.com (no path)",
            ));
        }
        out.push(o.to_owned());
    }
    Ok(out)
}

/// The lease API's state: the store, the configured pools and the limiters.
pub struct PoolApp {
    store: Arc<dyn NumberPoolStore>,
    pools: BTreeMap<PoolId, PoolSpec>,
    limits: PoolLimits,
    own_origin: Option<String>,
    visitor_limiter: DefaultKeyedRateLimiter<String>,
    ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for PoolApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolApp")
            .field("store", &self.store)
            .field("pools", &self.pools.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .field("own_origin", &self.own_origin)
            .finish_non_exhaustive()
    }
}

/// A call resolved against a pool: what the IVR carries into the context, the call log
/// and the auction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallAttribution {
    /// The pool the dialed number belongs to.
    pub pool: PoolId,
    /// The resolution.
    pub attribution: Attribution,
    /// The campaign: the lease's, else the pool's.
    pub campaign: Option<CampaignId>,
    /// The publisher: the lease's, else the pool's.
    pub publisher: Option<SourceId>,
}

impl CallAttribution {
    /// The attributes the context and the call log carry: `pool`, `attribution`, and for
    /// an attributed call `listing`, `visitor`, `lease`, `via`, `source`, `utm_*`,
    /// `search_term`, `landing_page`, `referrer`, `tag.<key>`.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert("pool".to_owned(), self.pool.to_string());
        a.insert("attribution".to_owned(), self.attribution.kind().to_owned());
        if let Some(p) = &self.publisher {
            a.insert("publisher".to_owned(), p.to_string());
        }
        if let Attribution::Attributed { lease, via } = &self.attribution {
            a.insert("listing".to_owned(), lease.listing.to_string());
            a.insert("visitor".to_owned(), lease.visitor.to_string());
            a.insert("lease".to_owned(), lease.id.to_string());
            a.insert(
                "via".to_owned(),
                match via {
                    Via::Lease => "lease",
                    Via::Lock => "lock",
                    _ => "other",
                }
                .to_owned(),
            );
            let c = &lease.context;
            let texts = [
                ("source", &c.source),
                ("utm_source", &c.utm.source),
                ("utm_medium", &c.utm.medium),
                ("utm_campaign", &c.utm.campaign),
                ("utm_term", &c.utm.term),
                ("utm_content", &c.utm.content),
                ("search_term", &c.search_term),
                ("landing_page", &c.landing_page),
                ("referrer", &c.referrer),
            ];
            for (k, v) in texts {
                if let Some(v) = v {
                    a.insert(k.to_owned(), v.clone());
                }
            }
            for (k, v) in &c.tags {
                a.insert(format!("tag.{k}"), v.clone());
            }
        }
        a
    }

    /// The context with the campaign, source (publisher) and attributes applied; a
    /// campaign or source already set by the static tracking table is replaced.
    pub fn apply(&self, mut ctx: CallContext) -> CallContext {
        if let Some(c) = &self.campaign {
            ctx.campaign = Some(c.clone());
        }
        if let Some(p) = &self.publisher {
            ctx.source = Some(p.clone());
        }
        for (k, v) in self.attributes() {
            ctx.attributes.insert(k, v);
        }
        ctx
    }
}

/// A failure of the pool app (the store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Invalid limits.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl PoolApp {
    /// Creates (or updates) every configured pool in `store` and builds the limiters.
    /// `public_url` is this server's own origin (its pages may always call the API).
    pub async fn new(
        store: Arc<dyn NumberPoolStore>,
        specs: Vec<PoolSpec>,
        limits: PoolLimits,
        public_url: Option<&str>,
    ) -> Result<Arc<PoolApp>, PoolError> {
        let per_min = |field: &'static str, n: u32| {
            NonZeroU32::new(n)
                .map(Quota::per_minute)
                .ok_or_else(|| ValidationError::new(field, "0", "must be at least 1"))
        };
        let visitor_quota = per_min("pool_visitor_per_minute", limits.visitor_per_minute)?;
        let ip_quota = per_min("pool_ip_per_minute", limits.ip_per_minute)?;
        let now = Utc::now();
        let mut pools = BTreeMap::new();
        for s in specs {
            store.put_pool(&s.pool, now).await?;
            pools.insert(s.pool.id.clone(), s);
        }
        Ok(Arc::new(PoolApp {
            store,
            pools,
            own_origin: public_url.and_then(origin_of),
            limits,
            visitor_limiter: RateLimiter::keyed(visitor_quota),
            ip_limiter: RateLimiter::keyed(ip_quota),
        }))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn NumberPoolStore> {
        &self.store
    }

    /// The configured pools.
    pub fn pools(&self) -> impl Iterator<Item = &PoolSpec> {
        self.pools.values()
    }

    /// The pool `dialed` belongs to (one of its numbers or its overflow number).
    pub async fn pool_of(&self, dialed: &PhoneNumber) -> Result<Option<PoolId>, StateError> {
        for (id, spec) in &self.pools {
            if spec.pool.overflow_number.as_ref() == Some(dialed) {
                return Ok(Some(id.clone()));
            }
            if let Some(p) = self.store.pool(id).await? {
                if p.contains(dialed) {
                    return Ok(Some(id.clone()));
                }
            }
        }
        Ok(None)
    }

    /// Resolves and records an inbound call (idempotent per `call_sid`); `None` when the
    /// dialed number belongs to no pool (the static tracking table applies).
    pub async fn resolve_call(
        &self,
        call_sid: &str,
        dialed: &PhoneNumber,
        caller: Option<&PhoneNumber>,
        at: DateTime<Utc>,
    ) -> Result<Option<CallAttribution>, PoolError> {
        let Some(pool) = self.pool_of(dialed).await? else {
            return Ok(None);
        };
        let call = InboundCall::new(pool.clone(), call_sid, dialed.clone(), caller.cloned(), at)?;
        let attribution = self.store.record_call(&call).await?;
        let spec = self.pools.get(&pool);
        let lease_ctx = attribution.lease().map(|l| &l.context);
        let campaign = lease_ctx
            .and_then(|c| c.campaign.clone())
            .or_else(|| spec.and_then(|s| s.campaign.clone()));
        let publisher = lease_ctx
            .and_then(|c| c.publisher.clone())
            .or_else(|| spec.and_then(|s| s.publisher.clone()));
        Ok(Some(CallAttribution {
            pool,
            attribution,
            campaign,
            publisher,
        }))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.own_origin.as_deref() == Some(origin)
            || self.limits.cors_origins.iter().any(|o| o == origin)
    }

    fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if self.limits.trust_forwarded_for {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .next_back();
            if forwarded.is_some() {
                return forwarded;
            }
        }
        peer.map(|p| p.ip().to_canonical())
    }

    /// Checks the per-IP and per-visitor limits; `Err` is the 429 answer.
    #[allow(clippy::result_large_err)] // the answer itself; built only when refusing
    fn check_rate(
        &self,
        ip: Option<IpAddr>,
        pool: &PoolId,
        visitor: &VisitorId,
    ) -> Result<(), Response> {
        let clock = DefaultClock::default();
        if let Some(ip) = ip {
            if let Err(not_until) = self.ip_limiter.check_key(&ip) {
                let wait = not_until.wait_time_from(clock.now());
                return Err(too_many("client IP", &ip.to_string(), wait));
            }
        }
        let key = format!("{pool}|{visitor}");
        if let Err(not_until) = self.visitor_limiter.check_key(&key) {
            let wait = not_until.wait_time_from(clock.now());
            return Err(too_many("visitor", visitor.as_str(), wait));
        }
        // Forget idle keys now and then, so the limiters' memory stays bounded.
        if self.visitor_limiter.len() > 100_000 {
            self.visitor_limiter.retain_recent();
        }
        if self.ip_limiter.len() > 100_000 {
            self.ip_limiter.retain_recent();
        }
        Ok(())
    }
}

fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

fn too_many(what: &str, value: &str, wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        Json(json!({
            "error": format!("too many requests for {what} {value:?}; retry in {secs} s"),
            "field": what,
            "value": value,
        })),
    )
        .into_response()
}

fn bad_request(e: &ValidationError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": e.to_string(), "field": e.field, "value": e.value})),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    eprintln!("WARN pool: {e}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the number pool is unavailable; keep the page's own number"})),
    )
        .into_response()
}

fn state_error(e: StateError) -> Response {
    match e {
        StateError::Invalid(v) => bad_request(&v),
        other => internal(other),
    }
}

/// Re-labels an id's validation error with the JSON field name.
fn field(name: &'static str, e: ValidationError) -> ValidationError {
    ValidationError::new(name, e.value, e.reason)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UtmBody {
    source: Option<String>,
    medium: Option<String>,
    campaign: Option<String>,
    term: Option<String>,
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    visitor: Option<String>,
    listing: Option<String>,
    page: Option<String>,
    referrer: Option<String>,
    #[serde(default)]
    utm: Option<UtmBody>,
    search_term: Option<String>,
    publisher: Option<String>,
    source: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewBody {
    lease: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// The traffic source when the page names none: `utm_source`, else the referrer's host,
/// else `direct`.
fn default_source(utm: &Utm, referrer: Option<&str>) -> String {
    if let Some(s) = &utm.source {
        return s.clone();
    }
    if let Some(host) = referrer
        .and_then(|r| r.split_once("://"))
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .filter(|h| !h.is_empty())
    {
        return host.to_owned();
    }
    "direct".to_owned()
}

/// One parsed request: the body as JSON, with errors as 400s.
async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        bad_request(&ValidationError::new(
            "body",
            "(too long)",
            format!("at most {MAX_BODY} bytes"),
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let shown: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
        bad_request(&ValidationError::new(
            "body",
            shown,
            format!("not the expected JSON object: {e}"),
        ))
    })
}

/// What every API request checks first: the pool id, the origin and the body.
struct Parsed<T> {
    pool: PoolId,
    ip: Option<IpAddr>,
    body: T,
}

async fn parse<T: serde::de::DeserializeOwned>(
    app: &PoolApp,
    pool: &str,
    req: Request,
) -> Result<Parsed<T>, Response> {
    let (parts, body) = req.into_parts();
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        if !app.origin_allowed(o) {
            return Err((
                StatusCode::FORBIDDEN,
                Json(json!({
                    "error": format!("origin {o:?} is not allowed (pool_cors_origins)"),
                    "field": "origin",
                    "value": o,
                })),
            )
                .into_response());
        }
    }
    let pool = PoolId::new(pool).map_err(|e| bad_request(&field("pool", e)))?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = app.client_ip(&parts.headers, peer);
    let body = read_json(body).await?;
    Ok(Parsed { pool, ip, body })
}

fn display(n: &PhoneNumber) -> String {
    match n.nanp_national() {
        Some(d) if d.len() == 10 => format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..]),
        _ => n.as_str().to_owned(),
    }
}

fn lease_context(
    app: &PoolApp,
    pool: &PoolId,
    b: LeaseBody,
) -> Result<LeaseContext, ValidationError> {
    let spec = app.pools.get(pool);
    let mut c = LeaseContext::default();
    let u = b.utm.unwrap_or_default();
    c.utm.source = non_empty(u.source);
    c.utm.medium = non_empty(u.medium);
    c.utm.campaign = non_empty(u.campaign);
    c.utm.term = non_empty(u.term);
    c.utm.content = non_empty(u.content);
    c.landing_page = non_empty(b.page);
    c.referrer = non_empty(b.referrer);
    c.search_term = non_empty(b.search_term).or_else(|| c.utm.term.clone());
    c.source =
        Some(non_empty(b.source).unwrap_or_else(|| default_source(&c.utm, c.referrer.as_deref())));
    c.publisher = match non_empty(b.publisher) {
        Some(p) => Some(SourceId::new(&p).map_err(|e| field("publisher", e))?),
        None => spec.and_then(|s| s.publisher.clone()),
    };
    c.campaign = spec.and_then(|s| s.campaign.clone());
    c.tags = b.tags;
    c.validate()?;
    Ok(c)
}

async fn lease(
    State(app): State<Arc<PoolApp>>,
    Path(pool): Path<String>,
    req: Request,
) -> Response {
    let p = match parse::<LeaseBody>(&app, &pool, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut body = p.body;
    let visitor = match body.visitor.take() {
        Some(v) => VisitorId::new(&v).map_err(|e| field("visitor", e)),
        None => Err(ValidationError::new("visitor", "", "is required")),
    };
    let listing = match body.listing.take() {
        Some(v) => ListingId::new(&v).map_err(|e| field("listing", e)),
        None => Err(ValidationError::new("listing", "", "is required")),
    };
    let (visitor, listing) = match (visitor, listing) {
        (Ok(v), Ok(l)) => (v, l),
        (Err(e), _) | (_, Err(e)) => return bad_request(&e),
    };
    let context = match lease_context(&app, &p.pool, body) {
        Ok(c) => c,
        Err(e) => return bad_request(&e),
    };
    if let Err(r) = app.check_rate(p.ip, &p.pool, &visitor) {
        return r;
    }
    let Some(spec) = app.pools.get(&p.pool) else {
        return unknown_pool(&p.pool);
    };
    let heartbeat_ms = spec.pool.heartbeat.as_millis() as u64;
    let request = LeaseRequest::new(p.pool.clone(), visitor.clone(), listing, Utc::now())
        .with_context(context);
    match app.store.lease(&request).await {
        Ok(LeaseOutcome::Leased { lease, grant }) => Json(json!({
            "outcome": "leased",
            "number": lease.number.as_str(),
            "display": display(&lease.number),
            "lease": lease.id.as_str(),
            "expires_at": lease.expires_at.to_rfc3339(),
            "heartbeat_ms": heartbeat_ms,
            "grant": grant,
        }))
        .into_response(),
        Ok(LeaseOutcome::Overflow { number }) => Json(json!({
            "outcome": "overflow",
            "number": number.as_str(),
            "display": display(&number),
        }))
        .into_response(),
        Ok(LeaseOutcome::VisitorCap { limit }) => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "error": format!("visitor {:?} already holds {limit} live leases", visitor.as_str()),
                "field": "visitor",
                "value": visitor.as_str(),
            })),
        )
            .into_response(),
        Ok(LeaseOutcome::UnknownPool) => unknown_pool(&p.pool),
        Ok(_) => Json(json!({"outcome": "exhausted"})).into_response(),
        Err(e) => state_error(e),
    }
}

fn unknown_pool(pool: &PoolId) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no pool {:?}", pool.as_str()), "field": "pool", "value": pool.as_str()})),
    )
        .into_response()
}

fn parse_lease(b: RenewBody) -> Result<LeaseId, ValidationError> {
    match b.lease {
        Some(l) => LeaseId::new(&l).map_err(|e| field("lease", e)),
        None => Err(ValidationError::new("lease", "", "is required")),
    }
}

async fn renew(
    State(app): State<Arc<PoolApp>>,
    Path(pool): Path<String>,
    req: Request,
) -> Response {
    let p = match parse::<RenewBody>(&app, &pool, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = match parse_lease(p.body) {
        Ok(id) => id,
        Err(e) => return bad_request(&e),
    };
    // Renewals are keyed on the lease (its visitor is not sent again).
    let key = match VisitorId::new(format!("lease:{id}")) {
        Ok(k) => k,
        Err(e) => return bad_request(&field("lease", e)),
    };
    if let Err(r) = app.check_rate(p.ip, &p.pool, &key) {
        return r;
    }
    if !app.pools.contains_key(&p.pool) {
        return unknown_pool(&p.pool);
    }
    match app.store.renew(&p.pool, &id, Utc::now()).await {
        Ok(RenewOutcome::Renewed { expires_at }) => Json(json!({
            "outcome": "renewed",
            "lease": id.as_str(),
            "expires_at": expires_at.to_rfc3339(),
        }))
        .into_response(),
        Ok(RenewOutcome::Ended { at }) => (
            StatusCode::GONE,
            Json(json!({"outcome": "ended", "lease": id.as_str(), "ended_at": at.to_rfc3339()})),
        )
            .into_response(),
        Ok(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no lease {:?} in pool {:?}", id.as_str(), p.pool.as_str()), "field": "lease", "value": id.as_str()})),
        )
            .into_response(),
        Err(e) => state_error(e),
    }
}

async fn release(
    State(app): State<Arc<PoolApp>>,
    Path(pool): Path<String>,
    req: Request,
) -> Response {
    let p = match parse::<RenewBody>(&app, &pool, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = match parse_lease(p.body) {
        Ok(id) => id,
        Err(e) => return bad_request(&e),
    };
    if !app.pools.contains_key(&p.pool) {
        return unknown_pool(&p.pool);
    }
    match app.store.release(&p.pool, &id, Utc::now()).await {
        Ok(was_live) => Json(json!({"outcome": "released", "was_live": was_live})).into_response(),
        Err(e) => state_error(e),
    }
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        DNI_JS,
    )
        .into_response()
}

/// The lease API's routes (see the module docs), with CORS for the allow-listed origins.
pub fn router(app: Arc<PoolApp>) -> Router {
    let origins: Vec<HeaderValue> = app
        .limits
        .cors_origins
        .iter()
        .chain(app.own_origin.iter())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::GET])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    let api = Router::new()
        .route("/pool/{pool}/lease", post(lease))
        .route("/pool/{pool}/renew", post(renew))
        .route("/pool/{pool}/release", post(release))
        .with_state(app)
        .layer(cors);
    Router::new()
        .route("/pool/callbid-dni.js", get(script))
        .merge(api)
}

/// The operator's view of the pools (mount it behind operator access): `GET
/// /pool/api/health?hours=H` → every pool's [`callbid_core::pool::PoolHealth`] over the
/// last `H` hours (default 24, 1 to 2160): numbers, leased, locked, free, peak use of pool
/// 1, leases granted, overflowed requests and their per-mille rate, calls by attribution,
/// numbers idle past 30 days.
///
/// `GET /pool/api/report?pool=P&hours=H` → the per-listing, per-publisher and per-source
/// report ([`report::PoolReport`]) of pool `P` (default: the first) over the last `H`
/// hours (default 24): views, views not called, calls, connected and billable calls, talk
/// time and revenue, read from the pool store and `log`.
pub fn operator_router(app: Arc<PoolApp>, log: Arc<dyn CallLog>) -> Router {
    Router::new()
        .route("/pool/api/health", get(health))
        .route("/pool/api/report", get(report_route))
        .with_state(Arc::new(Operator { app, log }))
}

/// The operator routes' state.
struct Operator {
    app: Arc<PoolApp>,
    log: Arc<dyn CallLog>,
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    pool: Option<String>,
    hours: Option<String>,
}

fn window_hours(h: Option<&str>) -> Result<i64, ValidationError> {
    match h.map(str::trim) {
        None | Some("") => Ok(24),
        Some(h) => h
            .parse::<i64>()
            .ok()
            .filter(|h| (1..=2160).contains(h))
            .ok_or_else(|| ValidationError::new("hours", h, "expected 1 to 2160")),
    }
}

async fn report_route(
    State(op): State<Arc<Operator>>,
    axum::extract::Query(q): axum::extract::Query<ReportQuery>,
) -> Response {
    let hours = match window_hours(q.hours.as_deref()) {
        Ok(h) => h,
        Err(e) => return bad_request(&e),
    };
    let pool = match q.pool.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => match PoolId::new(p) {
            Ok(id) if op.app.pools.contains_key(&id) => id,
            Ok(id) => return unknown_pool(&id),
            Err(e) => return bad_request(&field("pool", e)),
        },
        None => match op.app.pools.keys().next() {
            Some(id) => id.clone(),
            None => {
                return Json(json!({"error": "no number pools are configured"})).into_response()
            }
        },
    };
    let now = Utc::now();
    let since = now - chrono::Duration::hours(hours);
    match report::build(op.app.store.as_ref(), op.log.as_ref(), &pool, since, now).await {
        Ok(r) => Json(json!({"hours": hours, "report": r})).into_response(),
        Err(e) => state_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct HealthQuery {
    hours: Option<String>,
}

async fn health(
    State(op): State<Arc<Operator>>,
    axum::extract::Query(q): axum::extract::Query<HealthQuery>,
) -> Response {
    let app = &op.app;
    let hours = match window_hours(q.hours.as_deref()) {
        Ok(h) => h,
        Err(e) => return bad_request(&e),
    };
    let now = Utc::now();
    let since = now - chrono::Duration::hours(hours);
    let idle_after = Duration::from_secs(30 * 86_400);
    let mut pools = Vec::new();
    for spec in app.pools() {
        let id = &spec.pool.id;
        match app.store.health(id, since, now, idle_after).await {
            Ok(h) => pools.push(json!({
                "pool": id.as_str(),
                "health": h,
                "lease_overflow_permille": h.lease_overflow_permille(),
                "call_overflow_permille": h.call_overflow_permille(),
            })),
            Err(e) => return state_error(e),
        }
    }
    Json(json!({ "hours": hours, "pools": pools })).into_response()
}

/// The background maintenance of every configured pool, every `every`: purges leases,
/// locks and call records older than the lock period plus a day, and, for pools with
/// provisioning when `provisioner` is given, runs one replenish step (buy below the low
/// watermark, release numbers idle past the age above the high one) with bought numbers
/// pointing at `voice_url`. Failures are logged and retried at the next tick.
pub fn spawn_maintenance(
    app: Arc<PoolApp>,
    provisioner: Option<Arc<dyn NumberProvisioner>>,
    voice_url: String,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            maintain(&app, provisioner.as_deref(), &voice_url).await;
        }
    })
}

/// One maintenance step over every pool (what [`spawn_maintenance`] runs per tick).
pub async fn maintain(app: &PoolApp, provisioner: Option<&dyn NumberProvisioner>, voice_url: &str) {
    let now = Utc::now();
    for spec in app.pools() {
        let id = &spec.pool.id;
        // Keep history at least as long as numbers may sit idle before release (the
        // idle check reads it), and never less than the lock period.
        let keep = spec
            .provision
            .as_ref()
            .map_or(DEFAULT_IDLE_KEEP, |p| p.idle_after);
        let horizon = spec.pool.lock_period.max(keep) + Duration::from_secs(86_400);
        let before = now - chrono::Duration::from_std(horizon).unwrap_or(chrono::Duration::MAX);
        if let Err(e) = app.store.purge(id, before).await {
            eprintln!("WARN pool {id}: purge failed: {e}");
        }
        if let (Some(p), Some(prov)) = (&spec.provision, provisioner) {
            match replenish(app.store.as_ref(), prov, id, &p.config(voice_url), now).await {
                Ok(r) => {
                    if !r.bought.is_empty() || !r.released.is_empty() || r.short > 0 {
                        eprintln!(
                            "INFO pool {id}: bought {}, released {}, short {}",
                            r.bought.len(),
                            r.released.len(),
                            r.short
                        );
                    }
                }
                Err(e) => eprintln!("WARN pool {id}: replenish failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            parse_origins("https://a.example, http://localhost:8080").unwrap(),
            vec!["https://a.example", "http://localhost:8080"]
        );
        for bad in ["a.example", "https://a.example/path", "ftp://x"] {
            let e = parse_origins(bad).unwrap_err();
            assert_eq!((e.field, e.value.as_str()), ("pool_cors_origins", bad));
        }
        assert_eq!(
            origin_of("https://x.example/callbid").as_deref(),
            Some("https://x.example")
        );
    }

    #[test]
    fn source_defaults_to_utm_then_referrer_host() {
        let mut u = Utm::default();
        assert_eq!(default_source(&u, None), "direct");
        assert_eq!(
            default_source(&u, Some("https://www.google.com/search?q=x")),
            "www.google.com"
        );
        u.source = Some("fb".into());
        assert_eq!(default_source(&u, Some("https://www.google.com/")), "fb");
    }
}

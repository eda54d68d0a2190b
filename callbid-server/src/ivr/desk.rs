//! The agent-pool desk (issue 10, seed 001): agents see the pool's live offers over SSE
//! and click Accept; the first click wins the offer's compare-and-set (the same one a
//! whisper's `1` goes through), and the caller's call is moved to the winner with the
//! Twilio REST client (`Calls/{CallSid}` update, `Url` = `/ivr/offer/connect`), which
//! also cancels every other agent's ringing leg.
//!
//! | route | does |
//! |---|---|
//! | `GET /desk?agent=A` | the page (`A` preselected) |
//! | `GET /desk/assets/desk.js` | its script |
//! | `GET /desk/api/agents` | every agent with their presence |
//! | `POST /desk/api/agents/{agent}/presence` | `{"change": "log_in" \| "log_out" \| "end_call"}` → the presence now in effect |
//! | `GET /desk/api/offers?agent=A` | the live offers ([`DeskView`]) |
//! | `GET /desk/api/offers/stream?agent=A` | SSE: `event: offers` with a [`DeskView`] whenever it changes, `event: decided` with a [`Decided`] when an offer shown leaves |
//! | `POST /desk/api/offers/{offer}/accept` | `{"agent": A}` → `200 {"result":"won"}`, `409 {"result":"taken","by":…}`, `410 {"result":"expired" \| "caller_gone" \| "not_offered"}` |
//! | `POST /desk/api/offers/{offer}/decline` | `{"agent": A}` → `200` |
//! | `GET /desk/api/metrics?hours=H` | [`AgentMetrics`] over the last `H` hours (default 24, at most 2160) |
//!
//! Every answer comes from the shared [`callbid_core::agents::AgentStore`], so a desk on
//! one instance sees offers started on another, and a click on any instance is decided
//! by the one compare-and-set. The stream polls the store every [`POLL`] (no instance
//! holds state another would need). Mount it behind operator access
//! ([`crate::auth::guard_only`]): it names callers' areas and moves calls. Bad input is
//! an [`ApiError`] naming the field and the value.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callbid_core::agents::{
    AcceptOutcome, AgentId, AgentMetrics, LegOutcome, Offer, OfferId, OfferState, Presence,
    PresenceChange,
};
use callbid_twilio::rest::UpdateCall;
use chrono::{DateTime, Utc};
use futures::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::offer::{caller_url, log_decision, AgentOffers, Via};
use super::App;
use crate::dashboard::{mount_prefix, prefixed_page};
use crate::error::ApiError;

const DESK_HTML: &str = include_str!("desk/desk.html");
const DESK_JS: &str = include_str!("desk/desk.js");

/// How often the SSE stream reads the store.
pub const POLL: Duration = Duration::from_millis(250);
/// How far back the desk looks for live offers.
const LOOKBACK_HOURS: i64 = 2;
/// Longest metrics window, in hours (90 days).
pub const MAX_METRICS_HOURS: i64 = 2160;

/// The desk's routes over the IVR's app (which must have an agent pool; without one
/// every API route answers `404` naming it).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/desk", get(page))
        .route("/desk/assets/desk.js", get(script))
        .route("/desk/api/agents", get(agents))
        .route("/desk/api/agents/{agent}/presence", post(presence))
        .route("/desk/api/offers", get(offers))
        .route("/desk/api/offers/stream", get(stream_offers))
        .route("/desk/api/offers/{offer}/accept", post(accept))
        .route("/desk/api/offers/{offer}/decline", post(decline))
        .route("/desk/api/metrics", get(metrics))
        .with_state(app)
}

// ---------------------------------------------------------------------------------------
// Views

/// One live offer as the desk shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeskOffer {
    /// The offer (the caller's `CallSid`).
    pub id: String,
    /// The service asked for.
    pub service: String,
    /// The caller's ZIP.
    pub zip: String,
    /// Tier being rung.
    pub tier: u8,
    /// Round number (1 for the first tier rung).
    pub round: u32,
    /// End of the round (RFC 3339).
    pub until: String,
    /// Agents whose leg is ringing.
    pub ringing: Vec<String>,
    /// Whether the agent asking has a ringing leg (can accept).
    pub mine: bool,
}

/// What an agent's desk shows: their presence and the pool's live offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeskView {
    /// The agent asking, if one was named.
    pub agent: Option<String>,
    /// Their presence (`offline`, `available`, `offered`, `on_call`, `wrap_up`).
    pub presence: Option<String>,
    /// Live offers, oldest first.
    pub offers: Vec<DeskOffer>,
}

/// How an offer the desk showed was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decided {
    /// The offer.
    pub offer: String,
    /// `accepted`, `fallback`, `caller_gone`, or `next_tier` (still live, no longer
    /// ringing this agent).
    pub outcome: String,
    /// The winner, when accepted.
    pub by: Option<String>,
    /// Whether the agent asking is the winner.
    pub you: bool,
}

fn desk_offer(o: &Offer, agent: Option<&AgentId>, now: DateTime<Utc>) -> Option<DeskOffer> {
    let (tier, round, until) = o.round()?;
    if until <= now {
        return None;
    }
    let ringing: Vec<String> = o
        .current_legs()
        .filter(|l| l.outcome == LegOutcome::Ringing)
        .map(|l| l.agent.to_string())
        .collect();
    let mine = agent.is_some_and(|a| ringing.iter().any(|r| r == a.as_str()));
    Some(DeskOffer {
        id: o.id.to_string(),
        service: o.needs.service.to_string(),
        zip: o.needs.zip.to_string(),
        tier,
        round,
        until: until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ringing,
        mine,
    })
}

fn pool_of(app: &App) -> Result<&AgentOffers, ApiError> {
    app.stores
        .agents
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("no agent pool is configured (agents)".into()))
}

fn agent_param(value: Option<&str>) -> Result<Option<AgentId>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => AgentId::new(v).map(Some).map_err(ApiError::from),
    }
}

async fn view(app: &App, agent: Option<&AgentId>) -> Result<(DeskView, Vec<Offer>), ApiError> {
    let pool = pool_of(app)?;
    let now = Utc::now();
    let since = now - chrono::Duration::hours(LOOKBACK_HOURS);
    let live = pool.store.live_offers(&pool.pool, since).await?;
    let presence = match agent {
        Some(a) => Some(presence_of(pool, a, now).await?.name().to_owned()),
        None => None,
    };
    let offers = live
        .iter()
        .filter_map(|o| desk_offer(o, agent, now))
        .collect();
    let view = DeskView {
        agent: agent.map(ToString::to_string),
        presence,
        offers,
    };
    Ok((view, live))
}

async fn presence_of(
    pool: &AgentOffers,
    agent: &AgentId,
    now: DateTime<Utc>,
) -> Result<Presence, ApiError> {
    pool.store
        .agents(&pool.pool, now)
        .await?
        .into_iter()
        .find(|s| &s.agent.id == agent)
        .map(|s| s.presence)
        .ok_or_else(|| ApiError::bad("agent", agent.as_str(), "no such agent in the pool"))
}

// ---------------------------------------------------------------------------------------
// Handlers

async fn page(State(_): State<Arc<App>>, OriginalUri(original): OriginalUri, uri: Uri) -> Response {
    prefixed_page(
        DESK_HTML,
        "callbid agent desk",
        &mount_prefix(&original, &uri),
    )
}

async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        DESK_JS,
    )
        .into_response()
}

/// One agent in `GET /desk/api/agents`.
#[derive(Debug, Serialize)]
struct AgentRow {
    id: String,
    name: String,
    reach: String,
    tier: u8,
    presence: String,
}

async fn agents(State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, ApiError> {
    let pool = pool_of(&app)?;
    let rows: Vec<AgentRow> = pool
        .store
        .agents(&pool.pool, Utc::now())
        .await?
        .into_iter()
        .map(|s| AgentRow {
            id: s.agent.id.to_string(),
            name: s.agent.name.clone(),
            reach: s.agent.reach.to_string(),
            tier: s.agent.tier,
            presence: s.presence.name().to_owned(),
        })
        .collect();
    Ok(Json(
        json!({ "pool": pool.pool.to_string(), "agents": rows }),
    ))
}

#[derive(Debug, Deserialize)]
struct PresenceBody {
    change: String,
}

fn parse_change(s: &str) -> Result<PresenceChange, ApiError> {
    match s {
        "log_in" => Ok(PresenceChange::LogIn),
        "log_out" => Ok(PresenceChange::LogOut),
        "end_call" => Ok(PresenceChange::EndCall),
        other => Err(ApiError::bad(
            "change",
            other,
            "expected log_in, log_out or end_call",
        )),
    }
}

async fn presence(
    State(app): State<Arc<App>>,
    Path(agent): Path<String>,
    body: Result<Json<PresenceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pool = pool_of(&app)?;
    let agent = AgentId::new(&agent)?;
    let Json(body) =
        body.map_err(|e| ApiError::bad("body", &e.body_text(), "expected {\"change\": …}"))?;
    let change = parse_change(body.change.trim())?;
    let now = Utc::now();
    presence_of(pool, &agent, now).await?;
    let p = pool
        .store
        .set_presence(&pool.pool, &agent, change, now)
        .await?;
    Ok(Json(
        json!({ "agent": agent.to_string(), "presence": p.name() }),
    ))
}

#[derive(Debug, Deserialize)]
struct AgentQuery {
    agent: Option<String>,
}

async fn offers(
    State(app): State<Arc<App>>,
    Query(q): Query<AgentQuery>,
) -> Result<Json<DeskView>, ApiError> {
    let agent = agent_param(q.agent.as_deref())?;
    Ok(Json(view(&app, agent.as_ref()).await?.0))
}

#[derive(Debug, Deserialize)]
struct AcceptBody {
    agent: String,
    /// Move the call again when this agent already won (after a failed move).
    #[serde(default)]
    retry: bool,
}

fn body_agent(
    body: Result<Json<AcceptBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(AgentId, bool), ApiError> {
    let Json(body) =
        body.map_err(|e| ApiError::bad("body", &e.body_text(), "expected {\"agent\": …}"))?;
    Ok((AgentId::new(body.agent.trim())?, body.retry))
}

async fn accept(
    State(app): State<Arc<App>>,
    Path(offer): Path<String>,
    body: Result<Json<AcceptBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let pool = pool_of(&app)?;
    let offer_id = OfferId::new(&offer)?;
    let (agent, retry) = body_agent(body)?;
    let now = Utc::now();
    presence_of(pool, &agent, now).await?;
    let Some(twilio) = pool.twilio.as_ref() else {
        return Err(ApiError::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "desk accepts need the Twilio REST client (twilio_account_sid, twilio_auth_token); press 1 on the phone instead"}),
        ));
    };
    let outcome = pool
        .store
        .accept(&pool.pool, &offer_id, &agent, now)
        .await?;
    let offer = match outcome {
        AcceptOutcome::Won { offer } => offer,
        other => return Ok(refused(&other)),
    };
    // A repeated click by the winner (the offer was won before this request) does not
    // move the call again, which would re-run the connect step under a live bridge;
    // `"retry": true` does, after a failed move.
    let first = matches!(&offer.state, OfferState::Accepted { at, .. } if *at == now);
    if first || retry {
        log_decision(&app, &offer)
            .await
            .map_err(|e| ApiError::Internal(format!("offer {offer_id}: {}", e.0)))?;
        move_call(&app, twilio, &offer).await?;
    }
    Ok(Json(json!({
        "result": "won",
        "offer": offer_id.to_string(),
        "agent": agent.to_string(),
        "moved": first || retry,
    }))
    .into_response())
}

/// Why an accept did not win, as `409` / `410`.
fn refused(outcome: &AcceptOutcome) -> Response {
    let (status, body) = match outcome {
        AcceptOutcome::Taken { by } => (
            StatusCode::CONFLICT,
            json!({"result": "taken", "by": by.to_string(), "error": format!("another agent ({by}) took this call")}),
        ),
        AcceptOutcome::CallerGone => (
            StatusCode::GONE,
            json!({"result": "caller_gone", "error": "the caller hung up"}),
        ),
        AcceptOutcome::NotOffered => (
            StatusCode::GONE,
            json!({"result": "not_offered", "error": "this call is not ringing you"}),
        ),
        _ => (
            StatusCode::GONE,
            json!({"result": "expired", "error": "the offer expired"}),
        ),
    };
    (status, Json(body)).into_response()
}

/// Redirects the caller's call to `/ivr/offer/connect` (which dials the winner). A
/// repeated accept by the winner redirects again, so a failed redirect can be retried.
async fn move_call(
    app: &App,
    twilio: &callbid_twilio::rest::Client,
    offer: &Offer,
) -> Result<(), ApiError> {
    let via = Via::from_context(&offer.context).ok_or_else(|| {
        ApiError::Internal(format!(
            "offer {}: stored context {:?} names no way back (via)",
            offer.id, offer.context
        ))
    })?;
    let url = caller_url(app, "connect", &offer.id, via);
    twilio
        .calls()
        .update(offer.call.as_str(), &UpdateCall::redirect(url))
        .await
        .map(|_| ())
        .map_err(|e| {
            ApiError::Status(
                StatusCode::BAD_GATEWAY,
                json!({"result": "won", "retry": true, "error": format!("won, but Twilio did not move call {}: {e}; click Accept again to retry", offer.call)}),
            )
        })
}

async fn decline(
    State(app): State<Arc<App>>,
    Path(offer): Path<String>,
    body: Result<Json<AcceptBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pool = pool_of(&app)?;
    let offer_id = OfferId::new(&offer)?;
    let (agent, _) = body_agent(body)?;
    presence_of(pool, &agent, Utc::now()).await?;
    let o = pool
        .store
        .decline(&pool.pool, &offer_id, &agent, Utc::now())
        .await?;
    Ok(Json(
        json!({"result": "declined", "offer": o.id.to_string()}),
    ))
}

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    hours: Option<String>,
}

async fn metrics(
    State(app): State<Arc<App>>,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<AgentMetrics>, ApiError> {
    let pool = pool_of(&app)?;
    let hours = match q.hours.as_deref().map(str::trim) {
        None | Some("") => 24,
        Some(h) => h
            .parse::<i64>()
            .ok()
            .filter(|h| (1..=MAX_METRICS_HOURS).contains(h))
            .ok_or_else(|| {
                ApiError::bad("hours", h, &format!("expected 1 to {MAX_METRICS_HOURS}"))
            })?,
    };
    let now = Utc::now();
    let since = now - chrono::Duration::hours(hours);
    Ok(Json(pool.store.metrics(&pool.pool, since, now).await?))
}

// ---------------------------------------------------------------------------------------
// The live stream

struct Feed {
    app: Arc<App>,
    agent: Option<AgentId>,
    last: String,
    /// Offers shown last time, and whether they were ringing this agent.
    shown: BTreeMap<String, bool>,
    queue: Vec<Event>,
    first: bool,
}

async fn stream_offers(
    State(app): State<Arc<App>>,
    Query(q): Query<AgentQuery>,
) -> Result<Response, ApiError> {
    let pool = pool_of(&app)?;
    let agent = agent_param(q.agent.as_deref())?;
    if let Some(a) = &agent {
        presence_of(pool, a, Utc::now()).await?;
    }
    let feed = Feed {
        app,
        agent,
        last: String::new(),
        shown: BTreeMap::new(),
        queue: Vec::new(),
        first: true,
    };
    Ok(Sse::new(feed_events(feed))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The stream of `offers` and `decided` events for one desk.
fn feed_events(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    stream::unfold(feed, |mut feed| async move {
        loop {
            if !feed.queue.is_empty() {
                let ev = feed.queue.remove(0);
                return Some((Ok(ev), feed));
            }
            if !feed.first {
                tokio::time::sleep(POLL).await;
            }
            feed.first = false;
            if let Err(e) = poll(&mut feed).await {
                let msg = json!({"error": e.to_string()}).to_string();
                feed.queue.push(Event::default().event("problem").data(msg));
            }
        }
    })
}

/// Reads the store once; queues what changed since the last read.
async fn poll(feed: &mut Feed) -> Result<(), ApiError> {
    let (view, _) = view(&feed.app, feed.agent.as_ref()).await?;
    let now: BTreeMap<String, bool> = view.offers.iter().map(|o| (o.id.clone(), o.mine)).collect();
    let left: Vec<String> = feed
        .shown
        .iter()
        .filter(|(id, mine)| **mine && now.get(*id) != Some(&true))
        .map(|(id, _)| id.clone())
        .collect();
    for id in left {
        if let Some(d) = decided(feed, &id).await? {
            feed.queue
                .push(Event::default().event("decided").data(json_of(&d)));
        }
    }
    feed.shown = now;
    let data = json_of(&view);
    if data != feed.last {
        feed.queue
            .push(Event::default().event("offers").data(data.clone()));
        feed.last = data;
    }
    Ok(())
}

fn json_of<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string())
}

/// How an offer that rang this agent ended for them.
async fn decided(feed: &Feed, id: &str) -> Result<Option<Decided>, ApiError> {
    let pool = pool_of(&feed.app)?;
    let offer_id = OfferId::new(id)?;
    let Some(o) = pool.store.offer(&pool.pool, &offer_id).await? else {
        return Ok(None);
    };
    let me = feed.agent.as_ref();
    let (outcome, by) = match &o.state {
        OfferState::Accepted { agent, .. } => ("accepted", Some(agent.to_string())),
        OfferState::Fallback { .. } => ("fallback", None),
        OfferState::CallerGone { .. } => ("caller_gone", None),
        OfferState::Offered { .. } => ("next_tier", None),
        _ => ("ended", None),
    };
    let you = matches!((&by, me), (Some(b), Some(m)) if b == m.as_str());
    Ok(Some(Decided {
        offer: id.to_owned(),
        outcome: outcome.to_owned(),
        by,
        you,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_and_name_bad_values() {
        assert_eq!(parse_change("log_in").ok(), Some(PresenceChange::LogIn));
        let e = parse_change("nap").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("change \"nap\"")));
    }

    #[test]
    fn via_round_trips_through_the_context() {
        assert_eq!(Via::from_context("via=auction"), Some(Via::Auction));
        assert_eq!(
            Via::from_context("via=fallback&step=2"),
            Some(Via::Fallback(2))
        );
        assert_eq!(Via::from_context(""), None);
        assert_eq!(Via::from_context("via=fallback&step=x"), None);
    }
}

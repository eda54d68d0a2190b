//! The operator dashboard: the call log with filters, sorting and key-set pagination,
//! a live auction feed, CSV / Excel export of the current filter and a small chart, all
//! served by one axum [`Router`] over a `callbid-store` [`Store`] and an [`Auction`].
//!
//! Mount it with `router(DashboardState { store, auction, title })`. It owns these routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `GET /dashboard` | the page (HTML; JS and CSS below, no build step, no CDN) |
//! | `GET /dashboard/assets/dashboard.js`, `…/dashboard.css` | embedded static assets |
//! | `GET /api/meta` | title, statuses, sort keys, time zones, buyers, known services / campaigns / sources |
//! | `GET /api/calls?…` | one page of calls: filter + `sort`, `order`, `limit`, `cursor`, `tz` |
//! | `GET /api/calls/{call_id}` | one call's record and events |
//! | `GET /api/calls/{call_id}/postbacks` | the call's publisher postbacks and their delivery state ([`crate::postback`]) |
//! | `GET /api/summary?…` | totals, calls by status, revenue by buyer, calls and revenue per UTC day (`by_day`) (filtered) |
//! | `GET /api/export.csv?…`, `GET /api/export.xlsx?…` | the filtered calls, streamed |
//! | `GET /api/auctions/stream` | server-sent events: every [`AuctionEvent`] as JSON |
//!
//! The example servers put all of these behind the operator token when one is set
//! (`operator_auth::protect`, `examples/common/operator_auth.rs`).
//!
//! Filter keys are the store's ([`ReportFilter::from_pairs`]): `from`, `to`, `zip`,
//! `service`, `buyer`, `status`, `campaign`, `source`, `min_price`, `max_price`,
//! `currency`. Dates given as `YYYY-MM-DD` are days in the selected zone (`tz`, an IANA
//! name, default `UTC`); `to` includes its whole day. Every invalid value is answered
//! with `400 {"error", "field", "value"}` naming the field and the value.
//!
//! Money is exact decimal text; times are RFC 3339 UTC plus a local rendering labelled
//! with the zone's abbreviation.

use std::convert::Infallible;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use callbid_core::auction::{Auction, AuctionEvent};
use callbid_core::state::{CallEvent, CallEventKind, CallLog, CallRecord, CallStatus};
use callbid_core::{CallId, ValidationError};
use callbid_store::{
    AggregateRow, CallReports, Cursor, GroupBy, ReportFilter, ReportQuery, SortKey, SortOrder,
    Store,
};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use futures::stream::{self, Stream};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");

/// Time zones offered in the page's selector (any IANA name is accepted by the API).
pub const TIME_ZONES: [&str; 8] = [
    "UTC",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
];

/// Page size when the request does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page the dashboard serves.
pub const MAX_LIMIT: u32 = 500;

/// What the dashboard reads from.
#[derive(Debug, Clone)]
pub struct DashboardState {
    /// The call log, reports and exports (cheap to clone; shared internally).
    pub store: Store,
    /// The auction whose live events the feed shows.
    pub auction: Auction,
    /// Shown in the page header and the browser tab.
    pub title: String,
}

/// The dashboard's routes (see the module docs), ready to merge or nest.
pub fn router(state: DashboardState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route("/", get(index))
        .route("/dashboard", get(index))
        .route("/dashboard/assets/dashboard.js", get(script))
        .route("/dashboard/assets/dashboard.css", get(style))
        .route("/api/meta", get(meta))
        .route("/api/calls", get(calls))
        .route("/api/calls/{call_id}", get(call_detail))
        .route("/api/calls/{call_id}/replay", get(call_replay))
        .route("/api/calls/{call_id}/postbacks", get(call_postbacks))
        .route("/api/summary", get(summary))
        .route("/api/export.csv", get(export_csv))
        .route("/api/export.xlsx", get(export_xlsx))
        .route("/api/auctions/stream", get(auction_stream))
        .with_state(state)
}

type Shared = Arc<DashboardState>;

// ---------------------------------------------------------------------------------------
// Errors

pub use crate::error::ApiError;

// ---------------------------------------------------------------------------------------
// Query parsing

/// A parsed dashboard query string: the store's filter, sort and page, and the zone.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// The report query (filter, sort, order, limit, cursor).
    pub query: ReportQuery,
    /// The display zone (and the zone `YYYY-MM-DD` dates are read in).
    pub tz: Tz,
}

fn parse_tz(value: &str) -> Result<Tz, ValidationError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(Tz::UTC);
    }
    Tz::from_str(v).map_err(|_| {
        ValidationError::new(
            "tz",
            value,
            "expected an IANA time zone such as UTC or America/Chicago",
        )
    })
}

/// A `YYYY-MM-DD` day in `tz` becomes the RFC 3339 instant its local midnight is (the
/// next day's for `to`, which includes its whole day); anything else is passed through for
/// the store to parse (and reject with the field named).
fn localize_date(
    field: &'static str,
    value: &str,
    tz: Tz,
    end_of_day: bool,
) -> Result<String, ValidationError> {
    let t = value.trim();
    let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") else {
        return Ok(value.to_string());
    };
    let date = if end_of_day {
        date.succ_opt()
            .ok_or_else(|| ValidationError::new(field, value, "date out of range"))?
    } else {
        date
    };
    // Midnight may not exist (a DST gap at 00:00): take the first instant of the day.
    let local = date.and_time(NaiveTime::MIN);
    let instant = tz
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            (1..=3)
                .filter_map(|h| {
                    tz.from_local_datetime(&(local + chrono::Duration::hours(h)))
                        .earliest()
                })
                .next()
        })
        .ok_or_else(|| ValidationError::new(field, value, "no such local time in this zone"))?;
    Ok(instant
        .with_timezone(&Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A reversed range is reported with the values the user typed (not the internal
/// exclusive bound `to` becomes): `(typed, localized)` for each end.
fn check_range(
    from: Option<&(String, String)>,
    to: Option<&(String, String)>,
) -> Result<(), ValidationError> {
    let (Some((from_typed, from_at)), Some((to_typed, to_at))) = (from, to) else {
        return Ok(());
    };
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).ok();
    if let (Some(f), Some(t)) = (parse(from_at), parse(to_at)) {
        if t <= f {
            return Err(ValidationError::new(
                "to",
                to_typed,
                format!("is before from {from_typed:?}"),
            ));
        }
    }
    Ok(())
}

/// Parses a dashboard query string. `page` says whether `limit` and `cursor` apply
/// (exports and summaries refuse them rather than ignoring them silently).
pub fn parse_query(pairs: Vec<(String, String)>, page: bool) -> Result<DashboardQuery, ApiError> {
    let mut tz = Tz::UTC;
    for (k, v) in &pairs {
        if k == "tz" {
            tz = parse_tz(v)?;
        }
    }
    let mut filter_pairs: Vec<(String, String)> = Vec::new();
    let mut sort = SortKey::default();
    let mut order = SortOrder::default();
    let mut limit = DEFAULT_LIMIT;
    let mut cursor: Option<Cursor> = None;
    let (mut typed_from, mut typed_to) = (None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "tz" => {}
            "sort" if !v.trim().is_empty() => sort = v.trim().parse::<SortKey>()?,
            "order" if !v.trim().is_empty() => order = v.trim().parse::<SortOrder>()?,
            "sort" | "order" => {}
            "limit" | "cursor" if !page => {
                return Err(ValidationError::new(
                    "filter",
                    &k,
                    "not accepted here (exports and summaries cover every matching call)",
                )
                .into())
            }
            "limit" if !v.trim().is_empty() => {
                limit = v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ValidationError::new(
                            "limit",
                            &v,
                            format!("expected a whole number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" if !v.trim().is_empty() => cursor = Some(v.trim().parse::<Cursor>()?),
            "limit" | "cursor" => {}
            "from" => {
                let local = localize_date("from", &v, tz, false)?;
                typed_from = Some((v, local.clone()));
                filter_pairs.push((k, local));
            }
            "to" => {
                let local = localize_date("to", &v, tz, true)?;
                typed_to = Some((v, local.clone()));
                filter_pairs.push((k, local));
            }
            _ => filter_pairs.push((k, v)),
        }
    }
    check_range(typed_from.as_ref(), typed_to.as_ref())?;
    let filter = ReportFilter::from_pairs(filter_pairs)?;
    let query = ReportQuery::new(filter)
        .sorted_by(sort, order)
        .with_limit(limit)
        .after(cursor);
    query.validate()?;
    Ok(DashboardQuery { query, tz })
}

// ---------------------------------------------------------------------------------------
// Views

/// A call as the dashboard shows it. Money is exact decimal text.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    /// The call id.
    pub call_id: String,
    /// When it arrived, RFC 3339 UTC.
    pub received_at: String,
    /// The same instant in the selected zone, labelled (`2026-11-21 09:15:02 CST`).
    pub received_local: String,
    /// Derived status.
    pub status: &'static str,
    /// Caller id.
    pub caller: Option<String>,
    /// Tracking number dialed.
    pub dialed: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// ZIP.
    pub zip: Option<String>,
    /// Service.
    pub service: Option<String>,
    /// Winning buyer.
    pub buyer: Option<String>,
    /// Winning price.
    pub price: Option<String>,
    /// Currency of the call's money.
    pub currency: Option<String>,
    /// Where it was sent.
    pub destination: Option<String>,
    /// Talk time.
    pub duration_secs: Option<u64>,
    /// Billable?
    pub billable: Option<bool>,
    /// Buyer revenue.
    pub revenue: Option<String>,
    /// Publisher payout.
    pub payout: Option<String>,
    /// Which fallback.
    pub fallback: Option<String>,
    /// Recording.
    pub recording_url: Option<String>,
    /// Buyers pinged.
    pub pinged: u32,
    /// Bids received.
    pub bids: u32,
}

/// Formats an instant in a zone with the zone's abbreviation.
pub fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

impl CallRow {
    /// The view of a record in a zone.
    pub fn new(r: &CallRecord, tz: Tz) -> Self {
        let s = |v: Option<&dyn std::fmt::Display>| v.map(|v| v.to_string());
        CallRow {
            call_id: r.call_id.to_string(),
            received_at: r
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            received_local: local_time(r.received_at, tz),
            status: r.status.as_str(),
            caller: s(r.caller.as_ref().map(|v| v as _)),
            dialed: s(r.dialed.as_ref().map(|v| v as _)),
            campaign: s(r.campaign.as_ref().map(|v| v as _)),
            source: s(r.source.as_ref().map(|v| v as _)),
            zip: r.zip.as_ref().map(|z| z.as_str().to_string()),
            service: s(r.service.as_ref().map(|v| v as _)),
            buyer: s(r.buyer.as_ref().map(|v| v as _)),
            price: r.price.map(|m| m.amount.to_string()),
            currency: r
                .price
                .or(r.revenue)
                .or(r.payout)
                .map(|m| m.currency.as_str().to_string()),
            destination: s(r.destination.as_ref().map(|v| v as _)),
            duration_secs: r.duration_secs,
            billable: r.billable,
            revenue: r.revenue.map(|m| m.amount.to_string()),
            payout: r.payout.map(|m| m.amount.to_string()),
            fallback: r.fallback.clone(),
            recording_url: r.recording_url.clone(),
            pinged: r.pinged,
            bids: r.bids,
        }
    }
}

/// One aggregate group as JSON (money as decimal text).
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// The group (`null` for calls without one).
    pub group: Option<String>,
    /// Calls.
    pub calls: u64,
    /// Accepted calls.
    pub accepted: u64,
    /// Fallbacks.
    pub fallbacks: u64,
    /// Accept rate (0–1, 4 places).
    pub accept_rate: String,
    /// Revenue.
    pub revenue: String,
    /// Payout.
    pub payout: String,
    /// Margin.
    pub margin: String,
    /// Average winning bid.
    pub average_bid: Option<String>,
    /// Currency.
    pub currency: Option<String>,
}

impl From<&AggregateRow> for GroupView {
    fn from(a: &AggregateRow) -> Self {
        GroupView {
            group: a.group.clone(),
            calls: a.calls,
            accepted: a.accepted,
            fallbacks: a.fallbacks,
            accept_rate: a.accept_rate.to_string(),
            revenue: a.revenue.to_string(),
            payout: a.payout.to_string(),
            margin: a.margin.to_string(),
            average_bid: a.average_bid.map(|d| d.to_string()),
            currency: a.currency.map(|c| c.as_str().to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

/// An HTML page from `template` with every `{{title}}` replaced by `title`, escaped
/// (`&`, `<`, `>`, `"`, `'`), and not cached (it is small and names the live setup).
pub fn titled_page(template: &str, title: &str) -> Response {
    prefixed_page(template, title, "")
}

/// [`titled_page`] for a router mounted under `prefix` (see [`mount_prefix`]): every
/// `{{base}}` becomes the prefix (escaped), so the page's links, assets and API calls
/// stay under it.
pub fn prefixed_page(template: &str, title: &str, prefix: &str) -> Response {
    let page = template
        .replace("{{title}}", &quick_xml::escape::escape(title))
        .replace("{{base}}", &quick_xml::escape::escape(prefix));
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(page),
    )
        .into_response()
}

/// The path prefix a router is nested under (`Router::nest("/callbid", …)` →
/// `"/callbid"`; `""` when not nested): the request's original path minus the path the
/// nested router saw.
pub fn mount_prefix(original: &axum::http::Uri, inner: &axum::http::Uri) -> String {
    let (o, i) = (original.path(), inner.path());
    let prefix = if i == "/" {
        o.trim_end_matches('/')
    } else {
        o.strip_suffix(i).unwrap_or("")
    };
    prefix.to_owned()
}

async fn index(
    State(s): State<Shared>,
    axum::extract::OriginalUri(original): axum::extract::OriginalUri,
    uri: axum::http::Uri,
) -> Response {
    prefixed_page(INDEX_HTML, &s.title, &mount_prefix(&original, &uri))
}

async fn script() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        DASHBOARD_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        DASHBOARD_CSS,
    )
        .into_response()
}

async fn groups(
    store: &Store,
    filter: &ReportFilter,
    by: GroupBy,
) -> Result<Vec<String>, ApiError> {
    Ok(store
        .aggregate(filter, by)
        .await?
        .into_iter()
        .filter_map(|r| r.group)
        .collect())
}

async fn meta(State(s): State<Shared>) -> Result<Json<serde_json::Value>, ApiError> {
    let all = ReportFilter::new();
    let mut buyers: Vec<String> = s
        .auction
        .entries()
        .iter()
        .map(|e| e.buyer.id().to_string())
        .collect();
    for b in groups(&s.store, &all, GroupBy::Buyer).await? {
        if !buyers.contains(&b) {
            buyers.push(b);
        }
    }
    buyers.sort();
    Ok(Json(json!({
        "title": s.title,
        "statuses": CallStatus::ALL.iter().map(|st| st.as_str()).collect::<Vec<_>>(),
        "sort_keys": ["received_at", "price", "revenue", "duration"],
        "time_zones": TIME_ZONES,
        "buyers": buyers,
        "services": groups(&s.store, &all, GroupBy::Service).await?,
        "campaigns": groups(&s.store, &all, GroupBy::Campaign).await?,
        "sources": groups(&s.store, &all, GroupBy::Source).await?,
        "max_limit": MAX_LIMIT,
    })))
}

async fn calls(
    State(s): State<Shared>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = parse_query(pairs, true)?;
    let page = s.store.page(&q.query).await?;
    let rows: Vec<CallRow> = page.rows.iter().map(|r| CallRow::new(r, q.tz)).collect();
    Ok(Json(json!({
        "rows": rows,
        "next": page.next.map(|c| c.to_string()),
        "tz": q.tz.name(),
        "sort": q.query.sort.as_str(),
        "order": match q.query.order { SortOrder::Asc => "asc", SortOrder::Desc => "desc" },
    })))
}

#[derive(Serialize)]
struct EventView {
    at: String,
    at_local: String,
    #[serde(rename = "type")]
    kind: &'static str,
    detail: serde_json::Value,
}

async fn call_detail(
    State(s): State<Shared>,
    Path(call_id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut tz = Tz::UTC;
    for (k, v) in pairs {
        match k.as_str() {
            "tz" => tz = parse_tz(&v)?,
            other => {
                return Err(ValidationError::new("parameter", other, "expected only tz").into())
            }
        }
    }
    let id =
        CallId::new(&call_id).map_err(|e| ValidationError::new("call_id", &call_id, e.reason))?;
    let record = CallLog::record(&s.store, &id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no call {call_id:?}")))?;
    let raw: Vec<CallEvent> = CallLog::events(&s.store, &id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let quality = quality_view(&raw);
    let events: Vec<EventView> = raw
        .iter()
        .map(|e| EventView {
            at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            at_local: local_time(e.at, tz),
            kind: e.kind.type_name(),
            detail: serde_json::to_value(&e.kind).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(Json(json!({
        "call": CallRow::new(&record, tz),
        "why": why_json(&id, &raw),
        "events": events,
        "quality": quality,
        "tz": tz.name(),
    })))
}

/// "Why this buyer won" for the call detail: the verified replay of the latest logged
/// auction (`null` when the call has none).
fn why_json(id: &CallId, events: &[CallEvent]) -> serde_json::Value {
    let Some(expl) = crate::explain::latest_explanation(events) else {
        return serde_json::Value::Null;
    };
    match crate::explain::report(id, expl, &Default::default()) {
        Ok(r) => json!({
            "rows": r.rows,
            "agrees": r.agrees,
            "mismatches": r.mismatches,
            "strategy": r.logged_strategy,
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// `GET /api/calls/{call_id}/replay?strategy=…&floor=…`: the replay of the call's
/// logged auction, as logged or with the what-if parameters of [`crate::explain`].
async fn call_replay(
    State(s): State<Shared>,
    Path(call_id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<crate::explain::ReplayReport>, ApiError> {
    use crate::explain::{replay_call, ReplayCallError, WhatIfParams};
    let id =
        CallId::new(&call_id).map_err(|e| ValidationError::new("call_id", &call_id, e.reason))?;
    let params = WhatIfParams::parse(&pairs)?;
    match replay_call(&s.store, &id, &params).await {
        Ok(r) => Ok(Json(r)),
        Err(ReplayCallError::Invalid(e)) => Err(e.into()),
        Err(e @ ReplayCallError::NoExplanation(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// The call detail's quality section (issue 12): the transcript, its fragments in
/// `(TranscriptionSid, SequenceId)` order whatever order their callbacks arrived in, the
/// call's transcript class (the strongest of its fragments': `converted` over `junk`) and
/// the buyer's conversion postbacks. `null` when the call has neither.
fn quality_view(events: &[CallEvent]) -> serde_json::Value {
    use callbid_core::quality::TranscriptClass;
    let mut fragments = Vec::new();
    let mut class = None;
    let mut postbacks = Vec::new();
    for e in events {
        match &e.kind {
            CallEventKind::Transcript {
                transcription,
                sequence,
                track,
                text,
                class: c,
                phrase,
            } => {
                let parsed = c.as_deref().and_then(TranscriptClass::parse);
                class = TranscriptClass::strongest(class, parsed);
                fragments.push((
                    transcription.clone(),
                    *sequence,
                    json!({
                        "track": track, "text": text, "class": c, "phrase": phrase,
                    }),
                ));
            }
            CallEventKind::Conversion {
                buyer,
                converted,
                value,
            } => postbacks.push(json!({
                "buyer": buyer.as_str(),
                "converted": converted,
                "value": value.map(|v| v.amount.to_string()),
                "currency": value.map(|v| v.currency.to_string()),
            })),
            _ => {}
        }
    }
    if fragments.is_empty() && postbacks.is_empty() {
        return serde_json::Value::Null;
    }
    fragments.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let transcript: Vec<serde_json::Value> = fragments.into_iter().map(|(_, _, f)| f).collect();
    json!({
        "transcript": transcript,
        "transcript_class": class.map(|c| c.as_str()),
        "postbacks": postbacks,
    })
}

// --- Publisher postbacks of one call (issue 12, item 5); shown by the page's
// `showPostbacks`, apart from the call detail itself. ---

/// `GET /api/calls/{call_id}/postbacks`: `{"postbacks": [{publisher, state, url,
/// attempts, last_status, last_error, last_attempt_at, next_attempt_at, delivered_at,
/// idempotency_key}]}` (times RFC 3339 UTC; the URL is the last attempt's, secret-free).
async fn call_postbacks(
    State(s): State<Shared>,
    Path(call_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use callbid_core::state::PostbackOutbox;
    let id =
        CallId::new(&call_id).map_err(|e| ValidationError::new("call_id", &call_id, e.reason))?;
    let deliveries = PostbackOutbox::postbacks(&s.store, &id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    let rows: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|d| {
            json!({
                "publisher": d.publisher,
                "state": d.state.as_str(),
                "url": d.url,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "last_attempt_at": time(d.last_attempt_at),
                "next_attempt_at": time(d.next_attempt_at),
                "delivered_at": time(d.delivered_at),
                "idempotency_key": d.idempotency_key(),
            })
        })
        .collect();
    Ok(Json(json!({ "postbacks": rows })))
}

async fn summary(
    State(s): State<Shared>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = parse_query(pairs, false)?;
    let f = &q.query.filter;
    let total = s.store.aggregate(f, GroupBy::Total).await?;
    let by_status = s.store.aggregate(f, GroupBy::Status).await?;
    let by_buyer = s.store.aggregate(f, GroupBy::Buyer).await?;
    let by_day = s.store.aggregate(f, GroupBy::Day).await?;
    let view = |rows: &[AggregateRow]| rows.iter().map(GroupView::from).collect::<Vec<_>>();
    Ok(Json(json!({
        "total": total.first().map(GroupView::from),
        "by_status": view(&by_status),
        "by_buyer": view(&by_buyer),
        "by_day": view(&by_day),
    })))
}

// ---------------------------------------------------------------------------------------
// Streaming export

/// A `Write` that hands 64 KiB chunks to an async body through a bounded channel; used
/// from a blocking thread, so a slow client slows the export instead of growing memory.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // `blocking_send` refuses to run inside `Handle::block_on`; this thread is a
        // blocking-pool thread, so waiting here is what we want.
        futures::executor::block_on(self.tx.send(Ok(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

#[derive(Debug, Clone, Copy)]
enum ExportFormat {
    Csv,
    Xlsx,
}

async fn export(
    s: Shared,
    pairs: Vec<(String, String)>,
    format: ExportFormat,
) -> Result<Response, ApiError> {
    let q = parse_query(pairs, false)?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    let store = s.store.clone();
    let query = q.query.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = handle.block_on(async {
            match format {
                ExportFormat::Csv => store.export_csv(&query, &mut w).await,
                ExportFormat::Xlsx => store.export_xlsx(&query, &mut w).await,
            }
        });
        let result = result
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|_| w.flush());
        if let Err(e) = result {
            eprintln!("dashboard: export failed: {e}");
            // Ends the body with an error: the client sees a broken download, never a
            // silently truncated file that looks complete.
            let _ = futures::executor::block_on(tx.send(Err(e)));
        }
    });
    let body = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let (content_type, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", format!("calls-{stamp}.csv")),
        ExportFormat::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            format!("calls-{stamp}.xlsx"),
        ),
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

async fn export_csv(
    State(s): State<Shared>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    export(s, pairs, ExportFormat::Csv).await
}

async fn export_xlsx(
    State(s): State<Shared>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    export(s, pairs, ExportFormat::Xlsx).await
}

// ---------------------------------------------------------------------------------------
// Live auction feed

/// The SSE stream of an auction's events: `event: auction` with the [`AuctionEvent`] as
/// JSON plus the server time `at`; `event: lagged` with `{"missed": n}` when this client
/// fell behind.
pub fn auction_events(
    rx: broadcast::Receiver<AuctionEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(ev) => {
                let mut v = serde_json::to_value(&ev).unwrap_or(serde_json::Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "at".into(),
                        json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                    );
                }
                Event::default().event("auction").data(v.to_string())
            }
            Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(json!({ "missed": n }).to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    })
}

async fn auction_stream(State(s): State<Shared>) -> impl IntoResponse {
    let rx = s.auction.subscribe();
    Sse::new(auction_events(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quality_section_orders_fragments_and_keeps_the_strongest_class() {
        let call = CallId::new("CA1").unwrap();
        let at = chrono::Utc::now();
        let frag = |seq: u64, text: &str, class: Option<&str>| {
            CallEvent::new(
                call.clone(),
                at,
                format!("transcript:GT1:{seq}"),
                CallEventKind::Transcript {
                    transcription: "GT1".into(),
                    sequence: seq,
                    track: Some("inbound_track".into()),
                    text: text.into(),
                    class: class.map(str::to_owned),
                    phrase: class.map(|_| "x".to_owned()),
                },
            )
        };
        let events = [
            frag(2, "wrong number", Some("junk")),
            frag(1, "booked", Some("converted")),
            frag(3, "bye", None),
        ];
        let v = quality_view(&events);
        assert_eq!(v["transcript_class"], json!("converted"));
        let texts: Vec<&str> = v["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["booked", "wrong number", "bye"]);
        assert_eq!(quality_view(&events[..0]), serde_json::Value::Null);
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_reversed_range_names_what_the_user_typed() {
        for (from, to, tz) in [
            ("2026-11-05", "2026-11-01", "UTC"),
            ("2026-11-05", "2026-11-04", "America/Chicago"),
            ("2026-11-05T10:00:00Z", "2026-11-05T09:00:00Z", "UTC"),
        ] {
            let e =
                parse_query(pairs(&[("from", from), ("to", to), ("tz", tz)]), true).unwrap_err();
            let ApiError::Invalid(e) = e else {
                panic!("{e:?}")
            };
            let text = e.to_string();
            assert!(text.contains(to) && text.contains(from), "{text}");
            assert!(!text.contains("T00:00:00+00:00"), "{text}");
        }
        // One day (from = to) is a valid range.
        assert!(parse_query(pairs(&[("from", "2026-11-05"), ("to", "2026-11-05")]), true).is_ok());
    }
}

//! The IVR webhook app: routes, handlers, per-call state and the guard that turns every
//! internal error or panic into fallback TwiML.
//!
//! | route | Twilio sends | answers |
//! |---|---|---|
//! | `POST /voice` | the incoming call | greeting + `<Gather>` ZIP |
//! | `POST /ivr/zip?attempt=N` | the ZIP digits | service menu, a re-prompt, or the fallback chain |
//! | `POST /ivr/service?zip=Z&attempt=N` | the menu digit | auction → `<Dial>` the winner, or the fallback chain |
//! | `POST /ivr/dial-result` | `<Dial>` action (DialCallStatus, DialCallDuration) | goodbye, or the fallback chain |
//! | `POST /ivr/fallback/voicemail?step=N` | `<Record>` action | thanks + hangup, or the next step |
//! | `POST /ivr/fallback/next?step=N` | in-house `<Dial>` action | hangup, or the next step |
//! | `POST /ivr/status` | call status callback | `204` (`400` naming a bad field) |
//! | `POST /ivr/recording` | recording status callback | `204` (`400` naming a bad field) |
//! | `GET /healthz` | — | `ok` |
//!
//! Every webhook's `X-Twilio-Signature` is checked against the public base URL before
//! anything else (`403` when it does not match) unless the app was built without a
//! verifier (`--insecure-skip-signature`).
//!
//! The first result of a step (dial result, voicemail, in-house dial) decides it
//! (`outcome:{step}` events): a retry is answered the same, a conflicting later one
//! changes nothing and hangs up. After the final status callback (`status:{CallStatus}`,
//! always recorded) every step hangs up; a first dial result still records its facts.

pub mod desk;
pub mod fallback;
pub mod menu;
pub mod offer;
mod replay;

pub use offer::AgentOffers;

use replay::Routed;
pub use replay::ROUTE_LEASE;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use callbid_core::auction::{Auction, AuctionResult, NoBuyerReason};
use callbid_core::billing::PayoutRule;
use callbid_core::rules::Hold;
#[cfg(doc)]
use callbid_core::state::MemoryRoutingStore;
use callbid_core::state::{
    CallEventKind, CallLog, CallStatus as LogStatus, CapStore, DurationHistory, RoutingStore,
};
use callbid_core::{
    Bid, BuyerId, CallContext, CallId, CampaignId, Destination, PhoneNumber, ServiceType, SourceId,
    Zip,
};
use callbid_twilio::signature::{WebhookVerifier, SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER};
use callbid_twilio::twiml::{
    Dial, DialRecord, Gather, GatherInput, Number, Redirect, Say, Sip, VoiceResponse,
};
use callbid_twilio::webhook::{
    form_pairs, parse_form, CallFields, CallStatus as TwilioStatus, DialActionRequest,
    DialCallStatus, GatherRequest, RecordActionRequest, RecordingStatus, RecordingStatusRequest,
    StatusCallbackRequest, VoiceRequest,
};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::ivr::fallback::FallbackChain;
use crate::ivr::menu::{Campaigns, Menu};
use crate::settle::{call_over, log, log_auction, profile_of, release_live_slot, settle_call};

/// Largest webhook body read (Twilio's are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// Calls whose state one instance keeps in memory between webhooks; beyond it the least
/// recently touched is forgotten (and rebuilt from the stores if it calls back).
pub const MAX_LIVE_CALLS: usize = 10_000;
/// ZIP / menu attempts before the call falls back (the first prompt and two re-prompts).
pub const MAX_ATTEMPTS: u8 = 3;

/// What the IVR says and how it routes.
#[derive(Debug, Clone)]
pub struct IvrConfig {
    /// The public base URL Twilio calls (no trailing slash): TwiML action URLs are
    /// absolute under it, so they survive a proxy that mounts the app under a path.
    pub public_url: String,
    /// Digit → service.
    pub menu: Menu,
    /// Tracking number → campaign / source.
    pub campaigns: Campaigns,
    /// What happens when nobody buys or something fails.
    pub fallback: FallbackChain,
    /// Publisher payout per billable call.
    pub payout: PayoutRule,
    /// Seconds the buyer's phone rings.
    pub dial_timeout: u32,
    /// Record bridged calls.
    pub record: bool,
    /// Greeting.
    pub greeting: String,
    /// Print one line per settled call.
    pub log_calls: bool,
}

/// The state traits the app writes to (one store in production; tests swap parts).
#[derive(Debug, Clone)]
pub struct Stores {
    /// Call log.
    pub log: Arc<dyn CallLog>,
    /// Caps (live-call slots are released here).
    pub caps: Arc<dyn CapStore>,
    /// Duration history.
    pub history: Arc<dyn DurationHistory>,
    /// Routing decisions: a retried webhook is answered the same on any instance that
    /// shares this store (use the durable store's; [`MemoryRoutingStore`] serves one
    /// process).
    pub routing: Arc<dyn RoutingStore>,
    /// The agent pool calls are offered to (seed 001), when there is one: the IVR's
    /// `in_house` fallback step offers the call to it (the in-house number is dialled
    /// only when nobody in the pool can take the call at all), and a win of the pool's buyer id in the auction offers it instead of
    /// dialling. See [`offer`].
    pub agents: Option<AgentOffers>,
    /// Number pools (call tracking, seed 003), when there are any: `/voice` resolves the
    /// dialed number to the lease it was shown under first, and the call's campaign,
    /// publisher, listing, visitor and UTM come from it. See [`crate::pool`].
    pub pools: Option<Arc<crate::pool::PoolApp>>,
}

#[derive(Debug)]
struct Won {
    bid: Bid,
    holds: Vec<Hold>,
}

#[derive(Debug)]
struct LiveCall {
    received_at: DateTime<Utc>,
    ctx: Option<CallContext>,
    won: Option<Won>,
    touched: Instant,
}

impl LiveCall {
    fn new(received_at: DateTime<Utc>) -> Self {
        LiveCall {
            received_at,
            ctx: None,
            won: None,
            touched: Instant::now(),
        }
    }
}

/// The app: configuration, stores, auction, verifier and per-call state.
#[derive(Debug)]
pub struct App {
    /// IVR configuration.
    pub config: IvrConfig,
    /// Stores.
    pub stores: Stores,
    /// The auction.
    pub auction: Auction,
    /// `None`: signatures are not checked (`--insecure-skip-signature`).
    pub verifier: Option<WebhookVerifier>,
    calls: Mutex<HashMap<String, LiveCall>>,
    latencies: Mutex<Latencies>,
    /// Whether forwarded calls start Twilio real-time transcription ([`App::transcribe`]).
    transcribe: std::sync::atomic::AtomicBool,
}

/// The most recent auction latencies (bounded), and how many auctions ran in total.
#[derive(Debug, Default)]
struct Latencies {
    recent: std::collections::VecDeque<Duration>,
    total: u64,
}

/// How many recent auction latencies are kept.
pub const LATENCY_WINDOW: usize = 10_000;

impl App {
    /// A new app.
    pub fn new(
        config: IvrConfig,
        mut stores: Stores,
        auction: Auction,
        verifier: Option<WebhookVerifier>,
    ) -> Arc<App> {
        // Appends are timed for `/metrics`.
        stores.log = Arc::new(crate::metrics::TimedCallLog(stores.log));
        Arc::new(App {
            config,
            stores,
            auction,
            verifier,
            calls: Mutex::new(HashMap::new()),
            latencies: Mutex::new(Latencies::default()),
            transcribe: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// How many auctions have run (a mark for [`App::auction_latencies_since`]).
    pub fn auctions_run(&self) -> u64 {
        self.latencies.lock().map(|l| l.total).unwrap_or(0)
    }

    /// Total time of the auctions run after `mark` (at most the last
    /// [`LATENCY_WINDOW`]), in order.
    pub fn auction_latencies_since(&self, mark: u64) -> Vec<Duration> {
        let Ok(l) = self.latencies.lock() else {
            return Vec::new();
        };
        let n = usize::try_from(l.total.saturating_sub(mark)).unwrap_or(usize::MAX);
        let skip = l.recent.len().saturating_sub(n);
        l.recent.iter().skip(skip).copied().collect()
    }

    fn note_latency(&self, d: Duration) {
        if let Ok(mut l) = self.latencies.lock() {
            if l.recent.len() == LATENCY_WINDOW {
                l.recent.pop_front();
            }
            l.recent.push_back(d);
            l.total += 1;
        }
    }

    /// Calls with state in memory (between webhooks).
    pub fn live_calls(&self) -> usize {
        self.calls.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Forgets per-call state untouched for `max_age` (calls whose status callback never
    /// came). Returns how many were dropped; their live-call cap slots expire by TTL.
    pub fn sweep(&self, max_age: Duration) -> usize {
        let Ok(mut calls) = self.calls.lock() else {
            return 0;
        };
        let before = calls.len();
        calls.retain(|_, c| c.touched.elapsed() < max_age);
        before - calls.len()
    }

    /// Keeps a forwarded call's context and win for its dial result and status callback
    /// (both rebuild them from the call log when this instance does not have them).
    fn remember(&self, sid: &str, ctx: CallContext, won: Won) {
        self.upsert_call(sid, ctx.received_at, |c| {
            c.ctx = Some(ctx);
            c.won = Some(won);
        });
    }

    /// Inserts or updates a call's state. At [`MAX_LIVE_CALLS`] the least recently
    /// touched call is forgotten first: everything here can be rebuilt from the stores
    /// (call log, cap reservations by call and buyer), so a `/voice` flood costs bounded
    /// memory rather than hours of state.
    fn upsert_call(&self, sid: &str, received_at: DateTime<Utc>, f: impl FnOnce(&mut LiveCall)) {
        let Ok(mut calls) = self.calls.lock() else {
            return;
        };
        if calls.len() >= MAX_LIVE_CALLS && !calls.contains_key(sid) {
            let oldest = calls
                .iter()
                .min_by_key(|(_, c)| c.touched)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                calls.remove(&k);
            }
        }
        let c = calls
            .entry(sid.to_owned())
            .or_insert_with(|| LiveCall::new(received_at));
        c.touched = Instant::now();
        f(c);
    }

    fn with_call<R>(&self, sid: &str, f: impl FnOnce(&mut LiveCall) -> R) -> Option<R> {
        let mut calls = self.calls.lock().ok()?;
        let c = calls.get_mut(sid)?;
        c.touched = Instant::now();
        Some(f(c))
    }

    fn take_call(&self, sid: &str) -> Option<LiveCall> {
        self.calls.lock().ok()?.remove(sid)
    }

    fn received_at(&self, sid: &str) -> DateTime<Utc> {
        self.with_call(sid, |c| c.received_at)
            .unwrap_or_else(Utc::now)
    }

    /// The fallback TwiML for an internal failure; logs it when the call is known.
    async fn emergency(&self, call_sid: Option<String>, path: &str, reason: String) -> Response {
        eprintln!(
            "ERROR ivr: {path} (call {}) failed, answering fallback TwiML: {reason}",
            call_sid.as_deref().unwrap_or("?")
        );
        let chain = &self.config.fallback;
        let in_fallback = path.starts_with("/ivr/fallback");
        let twiml = if in_fallback {
            chain.terminal()
        } else {
            chain.twiml(0, Some("We're sorry, something went wrong on our side."))
        };
        if let Some(call) = call_sid.and_then(|s| CallId::new(s).ok()) {
            let kind = if in_fallback {
                "message"
            } else {
                chain.kind_at(0)
            };
            let event = callbid_core::state::CallEvent::new(
                call,
                Utc::now(),
                format!("fallback:error:{path}"),
                CallEventKind::Fallback {
                    kind: kind.to_owned(),
                    reason: format!("internal error: {reason}"),
                },
            );
            // Best effort: the store may be what failed.
            match tokio::time::timeout(Duration::from_secs(2), self.stores.log.append(&event)).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("ERROR ivr: cannot log the fallback either: {e}"),
                Err(_) => eprintln!("ERROR ivr: logging the fallback timed out"),
            }
        }
        Twiml::from(twiml).into_response()
    }
}

/// A TwiML answer (`text/xml`).
#[derive(Debug, Clone)]
pub struct Twiml(pub String);

impl From<VoiceResponse> for Twiml {
    fn from(r: VoiceResponse) -> Self {
        Twiml(r.to_xml())
    }
}

impl IntoResponse for Twiml {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], self.0).into_response()
    }
}

/// An internal failure of a handler: answered `500` with the reason in an extension,
/// which the guard turns into fallback TwiML (TwiML routes) or leaves as `500` so
/// Twilio retries (callbacks, which are idempotent).
#[derive(Debug)]
pub struct IvrError(pub anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for IvrError {
    fn from(e: E) -> Self {
        IvrError(e.into())
    }
}

#[derive(Debug, Clone)]
struct Failure(String);

/// Bad input in a webhook (a field Twilio would never send so): answered `400` naming
/// the field and the value, so Twilio does not retry it (a TwiML route's guard still
/// answers fallback TwiML to the caller).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl IvrError {
    /// A `400` naming the field and the value ([`BadInput`]).
    pub fn bad_input(message: impl Into<String>) -> Self {
        IvrError(BadInput(message.into()).into())
    }
}

impl IntoResponse for IvrError {
    fn into_response(self) -> Response {
        let status = if self.0.downcast_ref::<BadInput>().is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        failure(status, format!("{:#}", self.0))
    }
}

/// A failure answer: `status` with the reason, tagged for the guards.
fn failure(status: StatusCode, reason: String) -> Response {
    let mut r = (status, reason.clone()).into_response();
    tag_failure(&mut r, reason);
    r
}

/// Tags a failure response with its reason, so that a TwiML route's guard answers
/// fallback TwiML for it (and logs the reason) whatever its status.
pub(crate) fn tag_failure(res: &mut Response, reason: String) {
    res.extensions_mut().insert(Failure(reason));
}

type IvrResult<T = Twiml> = Result<T, IvrError>;

/// A webhook whose signature was checked (when the app has a verifier), parsed into `T`.
#[derive(Debug)]
pub struct Signed<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for Signed<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let bytes = read_capped(&parts.headers, body).await?;
        if let Some(v) = &app.verifier {
            let header = |n: &str| parts.headers.get(n).and_then(|h| h.to_str().ok());
            if let Err(e) = v.verify(
                &path_and_query,
                header(SIGNATURE_HEADER),
                header(SIGNATURE_SETTINGS_HEADER),
                &bytes,
                true,
            ) {
                crate::logline::warn_limited("ivr:signature", || {
                    format!("WARN ivr: refused {path_and_query}: {e}")
                });
                return Err((StatusCode::FORBIDDEN, "invalid Twilio signature").into_response());
            }
        }
        // Signed but malformed: 400 naming the field (the TwiML guard still answers
        // fallback TwiML to the caller).
        parse_webhook::<T>(&bytes)
            .map(Signed)
            .map_err(|e| failure(StatusCode::BAD_REQUEST, format!("{path_and_query}: {e}")))
    }
}

/// Wraps the TwiML routes: errors (5xx, or a malformed webhook) and panics become
/// fallback TwiML with status 200, so the caller never hears dead air or Twilio's
/// "application error". A refused signature stays `403`.
async fn twiml_guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    // Size first: a body over MAX_BODY cannot be Twilio's (theirs are a few KiB), so it
    // is refused with 413 before anything else, never answered with TwiML.
    let bytes = match read_capped(&parts.headers, body).await {
        Ok(b) => b,
        Err(res) => {
            crate::logline::warn_limited("ivr:body", || {
                format!("WARN ivr: refused {path}: body over {MAX_BODY} bytes")
            });
            return res;
        }
    };
    let call_sid = call_sid_of(&bytes);
    let req = Request::from_parts(parts, Body::from(bytes));
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(res)
            if !res.status().is_server_error() && res.extensions().get::<Failure>().is_none() =>
        {
            res
        }
        Ok(res) => {
            let reason = res
                .extensions()
                .get::<Failure>()
                .map_or_else(|| format!("HTTP {}", res.status()), |f| f.0.clone());
            app.emergency(call_sid, &path, reason).await
        }
        Err(panic) => {
            let reason = format!("panic: {}", panic_message(panic.as_ref()));
            app.emergency(call_sid, &path, reason).await
        }
    }
}

/// Wraps the status / recording callbacks: a store failure or panic is `500` (Twilio may
/// retry; every callback event has an idempotency key, so a retry is recorded once); a
/// malformed callback is `400` naming the field.
async fn callback_guard(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(res) => {
            if let Some(f) = res.extensions().get::<Failure>() {
                let retry = if res.status().is_server_error() {
                    " (Twilio may retry)"
                } else {
                    ""
                };
                eprintln!("ERROR ivr: {path} failed{retry}: {}", f.0);
            }
            res
        }
        Err(panic) => {
            let reason = panic_message(panic.as_ref());
            eprintln!("ERROR ivr: {path} panicked: {reason}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Parses a webhook form into `T`. `AccountSid` is optional for callbid (nothing reads
/// it, and a curl experiment often leaves it out): when it is missing it is taken as
/// empty rather than failing the call, on every route. Any other missing required field
/// (`CallSid`, `RecordingSid`) is an error naming it, never `AccountSid`.
pub(crate) fn parse_webhook<T: DeserializeOwned>(
    body: &[u8],
) -> Result<T, callbid_twilio::webhook::WebhookError> {
    if form_pairs(body).iter().any(|(k, _)| k == "AccountSid") {
        return parse_form::<T>(body);
    }
    let mut padded = body.to_vec();
    if !padded.is_empty() {
        padded.push(b'&');
    }
    padded.extend_from_slice(b"AccountSid=");
    parse_form::<T>(&padded)
}

/// Reads a webhook body of at most [`MAX_BODY`] bytes: a larger `Content-Length`, or a
/// body that turns out larger, is `413 Payload Too Large`.
async fn read_capped(headers: &header::HeaderMap, body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("webhook body over {MAX_BODY} bytes"),
        )
            .into_response()
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

fn call_sid_of(body: &Bytes) -> Option<String> {
    form_pairs(body)
        .into_iter()
        .find(|(k, _)| k == "CallSid")
        .map(|(_, v)| v)
}

/// The app's routes (without the dashboard).
pub fn router(app: Arc<App>) -> Router {
    let twiml = Router::new()
        .route("/voice", post(voice))
        .route("/ivr/zip", post(zip_step))
        .route("/ivr/service", post(service_step))
        .route("/ivr/dial-result", post(dial_result))
        .route("/ivr/fallback/voicemail", post(voicemail_done))
        .route("/ivr/fallback/next", post(fallback_next))
        .route_layer(middleware::from_fn_with_state(app.clone(), twiml_guard))
        .route_layer(middleware::from_fn(crate::metrics::time_webhooks));
    let legs = Router::new()
        .route("/ivr/offer/whisper", post(offer::whisper))
        .route("/ivr/offer/press", post(offer::press))
        .route_layer(middleware::from_fn(offer::leg_guard))
        .route_layer(middleware::from_fn(crate::metrics::time_webhooks));
    let twiml = twiml.merge(
        Router::new()
            .route("/ivr/offer/dial-result", post(offer::dial_result))
            .route("/ivr/offer/connect", post(offer::connect))
            .route_layer(middleware::from_fn_with_state(app.clone(), twiml_guard))
            .route_layer(middleware::from_fn(crate::metrics::time_webhooks)),
    );
    let callbacks = Router::new()
        .route("/ivr/status", post(status_callback))
        .route("/ivr/recording", post(recording_callback))
        .route_layer(middleware::from_fn(callback_guard))
        .route_layer(middleware::from_fn(crate::metrics::time_webhooks));
    Router::new()
        .merge(twiml)
        .merge(legs)
        .merge(callbacks)
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app)
}

// ---------------------------------------------------------------------------------
// Helpers

fn call_id(call: &CallFields) -> IvrResult<CallId> {
    CallId::new(&call.call_sid)
        .map_err(|e| IvrError::bad_input(format!("webhook field CallSid: {e}")))
}

/// A phone number from a webhook field; `None` for withheld / non-phone callers
/// (`anonymous`, `client:…`, empty).
fn phone(field: &'static str, value: Option<&str>) -> Option<PhoneNumber> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    match PhoneNumber::parse_field(field, v) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("INFO ivr: {e}; treating the {field} as unknown");
            None
        }
    }
}

fn say(app: &App, text: impl Into<String>) -> Say {
    app.config.fallback.say(text)
}

fn zip_prompt(app: &App, attempt: u8, intro: Option<&str>) -> Twiml {
    let mut r = VoiceResponse::new();
    if let Some(t) = intro {
        r = r.say(say(app, t));
    }
    let action = format!("{}/ivr/zip?attempt={attempt}", app.config.public_url);
    r.gather(
        Gather::new()
            .input(GatherInput::Dtmf)
            .num_digits(5u32)
            .timeout(6u32)
            .action(action.clone())
            .action_on_empty_result(true)
            .say(say(
                app,
                "Please enter the five digit ZIP code where you need service.",
            )),
    )
    // Only reached if Twilio does not post the empty result: never leave silence.
    .redirect(Redirect::new(action))
    .into()
}

fn service_prompt(app: &App, zip: &Zip, attempt: u8, intro: Option<&str>) -> Twiml {
    let mut r = VoiceResponse::new();
    if let Some(t) = intro {
        r = r.say(say(app, t));
    }
    let action = format!(
        "{}/ivr/service?zip={}&attempt={attempt}",
        app.config.public_url,
        zip.as_str()
    );
    r.gather(
        Gather::new()
            .input(GatherInput::Dtmf)
            .num_digits(1u32)
            .timeout(6u32)
            .action(action.clone())
            .action_on_empty_result(true)
            .say(say(app, app.config.menu.prompt())),
    )
    .redirect(Redirect::new(action))
    .into()
}

/// Logs that the call was refused (invalid input, no eligible buyer); the fallback
/// chain still answers the caller.
async fn reject(app: &App, call: &CallId, reason: &str) -> IvrResult<()> {
    log(
        app.stores.log.as_ref(),
        call,
        "rejected",
        CallEventKind::Rejected {
            reason: reason.to_owned(),
        },
    )
    .await?;
    Ok(())
}

/// Enters the fallback chain at step 0 and logs it.
async fn enter_fallback(
    app: &App,
    call: &CallId,
    reason: String,
    intro: Option<&str>,
) -> IvrResult {
    let chain = &app.config.fallback;
    let kind = chain.kind_at(0);
    crate::metrics::record_fallback(kind);
    let e = callbid_core::state::CallEvent::new(
        call.clone(),
        Utc::now(),
        "fallback:0",
        CallEventKind::Fallback {
            kind: kind.to_owned(),
            reason,
        },
    );
    app.stores.log.append(&e).await?;
    if let Some(t) = offer_in_house(app, call, 0).await? {
        return Ok(t);
    }
    Ok(chain.twiml(0, intro).into())
}

/// At an `in_house` step with an agent pool: the offer's TwiML, when someone can take it.
async fn offer_in_house(app: &App, call: &CallId, step: usize) -> IvrResult<Option<Twiml>> {
    let in_house = matches!(
        app.config.fallback.step(step),
        Some(fallback::FallbackStep::InHouse { .. })
    );
    if !in_house || app.stores.agents.is_none() {
        return Ok(None);
    }
    offer::start(app, call, call.as_str(), offer::Via::Fallback(step)).await
}

/// Moves to fallback step `step` (after step `step - 1` did not end the call) and logs it.
async fn next_fallback(app: &App, call: &CallId, step: usize, reason: String) -> IvrResult {
    let chain = &app.config.fallback;
    crate::metrics::record_fallback(chain.kind_at(step));
    let e = callbid_core::state::CallEvent::new(
        call.clone(),
        Utc::now(),
        format!("fallback:{step}"),
        CallEventKind::Fallback {
            kind: chain.kind_at(step).to_owned(),
            reason,
        },
    );
    app.stores.log.append(&e).await?;
    if let Some(t) = offer_in_house(app, call, step).await? {
        return Ok(t);
    }
    Ok(chain.twiml(step, None).into())
}

/// Resolves the dialed number against the number pools and logs the result (an
/// `attributed` event, once per call); `None` when there are no pools or the number is
/// in none of them. A failing pool store never fails the call: it is logged, and the
/// static tracking table applies.
async fn attribute(
    app: &App,
    call: &CallId,
    dialed: Option<&PhoneNumber>,
    caller: Option<&PhoneNumber>,
    now: DateTime<Utc>,
) -> IvrResult<Option<crate::pool::CallAttribution>> {
    let (Some(pools), Some(dialed)) = (app.stores.pools.as_ref(), dialed) else {
        return Ok(None);
    };
    let a = match pools.resolve_call(call.as_str(), dialed, caller, now).await {
        Ok(Some(a)) => a,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("WARN ivr: call {call}: number pool attribution failed: {e}");
            return Ok(None);
        }
    };
    let e = callbid_core::state::CallEvent::new(
        call.clone(),
        now,
        "attributed",
        CallEventKind::Attributed {
            pool: a.pool.to_string(),
            attribution: a.attribution.kind().to_owned(),
            attributes: a.attributes(),
        },
    );
    app.stores.log.append(&e).await?;
    Ok(Some(a))
}

/// Where the call came from and whether it is over, from the log (so the service step
/// may run on another instance than `/voice` and the status callback).
#[derive(Debug, Default)]
struct Recorded {
    /// The campaign and source of the `incoming` event, when there is one.
    origin: Option<(Option<CampaignId>, Option<SourceId>)>,
    /// The caller of the `incoming` event (for a step whose request lacks `From`).
    caller: Option<PhoneNumber>,
    /// The dialed number of the `incoming` event (for a step whose request lacks `To`).
    dialed: Option<PhoneNumber>,
    /// The attributes of the `attributed` event (number pools).
    attributes: BTreeMap<String, String>,
    /// The status callback already reported the call over (a late or reordered step
    /// webhook must not start an auction, a fallback or a prompt for a caller who is
    /// gone; see [`END_KEY`]).
    ended: bool,
}

/// The prefix of the idempotency key of the event a final status callback always
/// records (`status:{CallStatus}`): the mark that the call is over.
const END_KEY: &str = "status:";

/// Whether the status callback already reported the call over (see [`END_KEY`]),
/// asked of the call log's key index: no events are read or parsed.
pub(crate) async fn ended(app: &App, call: &CallId) -> IvrResult<bool> {
    Ok(app.stores.log.has_key_prefix(call, END_KEY).await?)
}

async fn recorded(app: &App, call: &CallId) -> IvrResult<Recorded> {
    let mut r = Recorded::default();
    for e in app.stores.log.events(call).await? {
        r.ended |= e.idempotency_key.starts_with(END_KEY);
        match e.kind {
            CallEventKind::Incoming {
                caller,
                dialed,
                campaign,
                source,
            } => {
                r.origin = Some((campaign, source));
                (r.caller, r.dialed) = (caller, dialed);
            }
            CallEventKind::Attributed { attributes: a, .. } => r.attributes = a,
            _ => {}
        }
    }
    Ok(r)
}

/// The call's context as the service step sees it: the caller and the dialed number of
/// the request, or else of the call's `incoming` event (a request without `From`/`To`,
/// or on another instance, still routes as the call came in).
fn context(
    app: &App,
    fields: &CallFields,
    facts: &Recorded,
    call: CallId,
    (zip, service): (Zip, ServiceType),
) -> CallContext {
    let received_at = app.received_at(&fields.call_sid);
    let mut ctx = CallContext::new(call, zip, service, received_at);
    // Withheld caller IDs (Twilio stand-ins such as +266696687) are no caller.
    let caller = fields.caller_number().or_else(|| facts.caller.clone());
    let dialed = phone("dialed number", fields.to.as_deref()).or_else(|| facts.dialed.clone());
    let tracking = app.config.campaigns.lookup(dialed.as_ref());
    if let Some(c) = caller {
        ctx = ctx.with_caller(c);
    }
    if let Some(d) = dialed {
        ctx = ctx.with_dialed(d);
    }
    if let Some(c) = tracking.campaign {
        ctx = ctx.with_campaign(c);
    }
    if let Some(s) = tracking.source {
        ctx = ctx.with_source(s);
    }
    ctx
}

/// The prefix of a `forwarded` event's idempotency key that carries the winning bid's
/// own minimum duration (the event kinds have no field for it), so that [`recover`]
/// bills by the bid's terms, not the profile default, after a restart.
const FORWARDED_MIN_DURATION: &str = "forwarded:min_duration_ms=";

/// The idempotency key of the `forwarded` event for `bid`: `forwarded`, or
/// `forwarded:min_duration_ms=N` when the bid named its own minimum duration.
fn forwarded_key(bid: &Bid) -> String {
    match bid.min_duration {
        Some(d) => format!("{FORWARDED_MIN_DURATION}{}", d.as_millis()),
        None => "forwarded".to_owned(),
    }
}

/// The bid's minimum duration recorded in a `forwarded` event's key, if any.
fn min_duration_of_forwarded_key(key: &str) -> Option<Duration> {
    key.strip_prefix(FORWARDED_MIN_DURATION)?
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

/// Rebuilds a forwarded call's context and winning bid from the call log (after a
/// restart lost the in-memory state).
async fn recover(app: &App, call: &CallId) -> IvrResult<Option<(CallContext, Bid)>> {
    let events = app.stores.log.events(call).await?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let (mut caller, mut dialed, mut campaign, mut source) = (None, None, None, None);
    let (mut zip, mut service, mut bid) = (None, None, None);
    let mut min_duration = None;
    for e in &events {
        match &e.kind {
            CallEventKind::Incoming {
                caller: c,
                dialed: d,
                campaign: ca,
                source: s,
            } => {
                (caller, dialed, campaign, source) = (c.clone(), d.clone(), ca.clone(), s.clone());
            }
            CallEventKind::AuctionStarted {
                zip: z, service: s, ..
            } => {
                (zip, service) = (Some(*z), Some(s.clone()));
            }
            CallEventKind::Winner { buyer, price, .. } => {
                bid = Some(Bid::new(buyer.clone(), *price))
            }
            CallEventKind::Forwarded { .. } => {
                min_duration = min_duration_of_forwarded_key(&e.idempotency_key);
            }
            _ => {}
        }
    }
    let (Some(zip), Some(service), Some(mut bid)) = (zip, service, bid) else {
        return Ok(None);
    };
    bid.min_duration = min_duration;
    let mut ctx = CallContext::new(call.clone(), zip, service, first.at);
    ctx.caller = caller;
    ctx.dialed = dialed;
    ctx.campaign = campaign;
    ctx.source = source;
    Ok(Some((ctx, bid)))
}

// ---------------------------------------------------------------------------------
// Handlers

async fn voice(State(app): State<Arc<App>>, Signed(req): Signed<VoiceRequest>) -> IvrResult {
    let call = call_id(&req.call)?;
    let now = Utc::now();
    let caller = req.call.caller_number();
    let dialed = phone("dialed number", req.call.to.as_deref());
    let mut tracking = app.config.campaigns.lookup(dialed.as_ref());
    // Call tracking first: a pool number names the lease (visitor, listing, publisher)
    // it was shown under, which outranks the static tracking table.
    if let Some(a) = attribute(&app, &call, dialed.as_ref(), caller.as_ref(), now).await? {
        tracking.campaign = a.campaign.clone().or(tracking.campaign);
        tracking.source = a.publisher.clone().or(tracking.source);
    }
    let e = callbid_core::state::CallEvent::new(
        call,
        now,
        "incoming",
        CallEventKind::Incoming {
            caller,
            dialed,
            campaign: tracking.campaign,
            source: tracking.source,
        },
    );
    app.stores.log.append(&e).await?;
    app.upsert_call(&req.call.call_sid, now, |_| {});
    Ok(zip_prompt(&app, 1, Some(&app.config.greeting)))
}

#[derive(Debug, Deserialize)]
struct AttemptQuery {
    #[serde(default = "one")]
    attempt: u8,
}

fn one() -> u8 {
    1
}

fn query<T: DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> IvrResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| IvrError::bad_input(format!("invalid query parameters: {e}")))
}

async fn zip_step(
    State(app): State<Arc<App>>,
    q: Result<Query<AttemptQuery>, axum::extract::rejection::QueryRejection>,
    Signed(req): Signed<GatherRequest>,
) -> IvrResult {
    let attempt = query(q)?.attempt;
    let call = call_id(&req.call)?;
    if ended(&app, &call).await? {
        eprintln!("INFO ivr: call {call}: ZIP after the call ended; ignored");
        return Ok(hangup());
    }
    let digits = req.digits.as_deref().unwrap_or("").trim().to_owned();
    let valid = (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| Zip::parse(&digits).ok())
        .flatten();
    match valid {
        Some(zip) => {
            log(
                app.stores.log.as_ref(),
                &call,
                "ivr:zip",
                CallEventKind::IvrInput {
                    step: "zip".into(),
                    value: zip.as_str().to_owned(),
                },
            )
            .await?;
            Ok(service_prompt(&app, &zip, 1, None))
        }
        None => {
            // No key pressed is not a wrong ZIP: the re-prompt says so.
            let intro = if digits.is_empty() {
                "Sorry, we did not hear a ZIP code."
            } else {
                "Sorry, that is not a valid ZIP code."
            };
            let shown = if digits.is_empty() {
                "(nothing)".to_owned()
            } else {
                digits
            };
            log(
                app.stores.log.as_ref(),
                &call,
                format!("ivr:zip_invalid:{attempt}"),
                CallEventKind::IvrInput {
                    step: "zip_invalid".into(),
                    value: shown,
                },
            )
            .await?;
            if attempt >= MAX_ATTEMPTS {
                let reason = format!("no valid ZIP code after {attempt} attempts");
                reject(&app, &call, &reason).await?;
                enter_fallback(
                    &app,
                    &call,
                    reason,
                    Some("Sorry, we could not understand your ZIP code."),
                )
                .await
            } else {
                Ok(zip_prompt(&app, attempt + 1, Some(intro)))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ServiceQuery {
    zip: String,
    #[serde(default = "one")]
    attempt: u8,
}

async fn service_step(
    State(app): State<Arc<App>>,
    q: Result<Query<ServiceQuery>, axum::extract::rejection::QueryRejection>,
    Signed(req): Signed<GatherRequest>,
) -> IvrResult {
    let q = query(q)?;
    let call = call_id(&req.call)?;
    let zip =
        Zip::parse(&q.zip).map_err(|e| IvrError::bad_input(format!("query parameter zip: {e}")))?;
    // Routed at most once on any instance: a retry answers the persisted TwiML.
    let step = format!("service:{}", q.attempt);
    replay::once(&app, &call, &step, |took_over| {
        route_service(&app, &req, &call, zip, q.attempt, took_over)
    })
    .await
}

/// The service step's routing: a re-prompt, the fallback chain, or an auction and the
/// `<Dial>` of its winner.
async fn route_service(
    app: &Arc<App>,
    req: &GatherRequest,
    call: &CallId,
    zip: Zip,
    attempt: u8,
    took_over: bool,
) -> IvrResult<Routed> {
    let facts = recorded(app, call).await?;
    if facts.ended {
        eprintln!("INFO ivr: call {call}: menu choice after the call ended; no auction");
        return Ok(Routed::plain(hangup()));
    }
    let digits = req.digits.as_deref().unwrap_or("").trim().to_owned();
    let choice = app
        .config
        .menu
        .service(&digits)
        .map(|(n, s)| (n.to_owned(), s.clone()));
    let Some((name, service)) = choice else {
        return invalid_choice(app, call, &zip, attempt, digits)
            .await
            .map(Routed::plain);
    };
    if took_over {
        // The request that held this step died: if it forwarded the call, answer that.
        if let Some(twiml) = forwarded_before(app, call, &name).await? {
            return Ok(Routed::plain(twiml));
        }
    }
    let mut ctx = context(app, &req.call, &facts, call.clone(), (zip, service.clone()));
    if let Some((campaign, source)) = facts.origin.filter(|_| app.stores.pools.is_some()) {
        ctx.campaign = campaign.or(ctx.campaign);
        ctx.source = source.or(ctx.source);
        ctx.attributes.extend(facts.attributes);
    }
    log(
        app.stores.log.as_ref(),
        call,
        "ivr:service",
        CallEventKind::IvrInput {
            step: "service".into(),
            value: service.as_str().to_owned(),
        },
    )
    .await?;
    auction_and_dial(app, &req.call.call_sid, ctx, &name).await
}

/// A menu choice that is not one: a re-prompt, or the fallback after the last attempt.
async fn invalid_choice(
    app: &App,
    call: &CallId,
    zip: &Zip,
    attempt: u8,
    digits: String,
) -> IvrResult {
    let intro = if digits.is_empty() {
        "Sorry, we did not hear your choice."
    } else {
        "Sorry, that is not one of the choices."
    };
    let shown = if digits.is_empty() {
        "(nothing)".to_owned()
    } else {
        digits
    };
    log(
        app.stores.log.as_ref(),
        call,
        format!("ivr:service_invalid:{attempt}"),
        CallEventKind::IvrInput {
            step: "service_invalid".into(),
            value: shown,
        },
    )
    .await?;
    if attempt >= MAX_ATTEMPTS {
        let reason = format!("no valid service choice after {attempt} attempts");
        reject(app, call, &reason).await?;
        enter_fallback(
            app,
            call,
            reason,
            Some("Sorry, we could not understand your choice."),
        )
        .await
    } else {
        Ok(service_prompt(app, zip, attempt + 1, Some(intro)))
    }
}

/// The `<Dial>` a request that died had already answered, rebuilt from the call log's
/// `forwarded` event, if there is one.
async fn forwarded_before(app: &App, call: &CallId, name: &str) -> IvrResult<Option<Twiml>> {
    let events = app.stores.log.events(call).await?;
    let dest = events.iter().rev().find_map(|e| match &e.kind {
        CallEventKind::Forwarded { destination, .. } => Some(destination.clone()),
        _ => None,
    });
    let (Some(dest), Some((ctx, _))) = (dest, recover(app, call).await?) else {
        return Ok(None);
    };
    dial_twiml(app, &ctx, &dest, name).map(Some)
}

/// Runs the auction and answers its winner's `<Dial>` (logged as forwarded), or the
/// fallback chain when nobody buys.
async fn auction_and_dial(
    app: &Arc<App>,
    sid: &str,
    ctx: CallContext,
    name: &str,
) -> IvrResult<Routed> {
    let call = ctx.call_id.clone();
    let outcome = app.auction.run(&ctx).await;
    app.note_latency(outcome.timings.total);
    match outcome.result.clone() {
        AuctionResult::Won(w) => {
            let w = *w;
            let result = async {
                log_auction(app.stores.log.as_ref(), &app.auction, &ctx, &outcome).await?;
                let pool_won = app
                    .stores
                    .agents
                    .as_ref()
                    .is_some_and(|a| a.buyer == w.buyer);
                let offered = if pool_won {
                    offer::start(app, &call, sid, offer::Via::Auction).await?
                } else {
                    None
                };
                let twiml = match offered {
                    Some(t) => t,
                    None => dial_twiml(app, &ctx, &w.destination, name)?,
                };
                log(
                    app.stores.log.as_ref(),
                    &call,
                    forwarded_key(&w.bid),
                    CallEventKind::Forwarded {
                        buyer: w.buyer.clone(),
                        destination: w.destination.clone(),
                    },
                )
                .await?;
                Ok::<_, IvrError>(twiml)
            }
            .await;
            let twiml = match result {
                Ok(t) => t,
                Err(e) => {
                    // Not delivered: give the buyer's cap slots back before falling back.
                    replay::release(&w.holds).await;
                    return Err(e);
                }
            };
            let (app2, sid) = (app.clone(), sid.to_owned());
            let won = Won {
                bid: w.bid.clone(),
                holds: w.holds.clone(),
            };
            Ok(Routed {
                twiml,
                holds: w.holds,
                on_decided: Some(Box::new(move || app2.remember(&sid, ctx, won))),
            })
        }
        AuctionResult::NoBuyer { reason } => {
            log_auction(app.stores.log.as_ref(), &app.auction, &ctx, &outcome).await?;
            if reason == NoBuyerReason::NoEligibleBuyers {
                // Nobody could even be asked (rules, caps, hours): a rejected call.
                reject(app, &call, &format!("no buyer: {reason}")).await?;
            }
            enter_fallback(
                app,
                &call,
                format!("no buyer: {reason}"),
                Some("Sorry, no provider is available for your request right now."),
            )
            .await
            .map(Routed::plain)
        }
        other => Err(IvrError(anyhow::anyhow!(
            "unexpected auction result {other:?}"
        ))),
    }
}

impl App {
    /// Turns real-time transcription of forwarded calls on or off (default off): with it
    /// on, the `<Dial>` to a winner is preceded by `<Start><Transcription
    /// statusCallbackUrl="{public_url}/twilio/transcription"/></Start>`, whose callbacks
    /// [`crate::quality::webhook_router`] serves (mount it with [`crate::Mounts::with_quality`]).
    pub fn transcribe(&self, on: bool) {
        self.transcribe
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn transcribing(&self) -> bool {
        self.transcribe.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn dial_twiml(app: &App, ctx: &CallContext, dest: &Destination, service_name: &str) -> IvrResult {
    let cfg = &app.config;
    let mut dial = Dial::new()
        .action(format!("{}/ivr/dial-result", cfg.public_url))
        .timeout(cfg.dial_timeout)
        .answer_on_bridge(true);
    if let Some(id) = ctx.caller.as_ref().or(ctx.dialed.as_ref()) {
        dial = dial.caller_id(id.as_str());
    }
    if cfg.record {
        dial = dial
            .record(DialRecord::RecordFromAnswer)
            .recording_status_callback(format!("{}/ivr/recording", cfg.public_url));
    }
    dial = match dest {
        Destination::Phone(p) => dial.number(Number::new(p.as_str())),
        Destination::Sip(s) => dial.sip(Sip::new(s.as_str())),
        other => return Err(IvrError(anyhow::anyhow!("cannot dial destination {other}"))),
    };
    let mut twiml = VoiceResponse::new().say(say(
        app,
        format!(
            "Thank you. Connecting you with a {} professional now.",
            service_name.to_lowercase()
        ),
    ));
    if app.transcribing() {
        let callback = format!("{}/twilio/transcription", cfg.public_url);
        twiml = twiml.start(crate::quality::transcription_start(&callback));
    }
    Ok(twiml.dial(dial).into())
}

fn connected(status: Option<&DialCallStatus>) -> bool {
    matches!(
        status,
        Some(DialCallStatus::Completed | DialCallStatus::Answered)
    )
}

/// `<Response><Hangup/></Response>`: the answer to a step webhook that comes too late to
/// change anything.
fn hangup() -> Twiml {
    VoiceResponse::new().hangup().into()
}

/// The outcome of a `<Dial>` (or an in-house `<Dial>`) as a step's outcome: `connected`
/// (`completed` and `answered` alike) or Twilio's `DialCallStatus`.
fn dial_outcome(status: Option<&DialCallStatus>) -> String {
    if connected(status) {
        "connected".to_owned()
    } else {
        status.map_or_else(|| "unknown".to_owned(), ToString::to_string)
    }
}

/// Records `outcome` as the outcome of `step` of the call, unless one is recorded: the
/// first result of a step (on any instance: the append is idempotent per key, so one
/// wins) decides it. `None` when `outcome` is the step's outcome (the first, or a retry
/// of it, which is answered the same); the outcome that stands when this one conflicts.
///
/// The record is an `ivr_input` event with step `outcome:{step}` under the idempotency
/// key `outcome:{step}` (the call's record ignores it).
async fn first_outcome(
    app: &App,
    call: &CallId,
    step: &str,
    outcome: &str,
) -> IvrResult<Option<String>> {
    let key = format!("outcome:{step}");
    let kind = CallEventKind::IvrInput {
        step: key.clone(),
        value: outcome.to_owned(),
    };
    if log(app.stores.log.as_ref(), call, key.clone(), kind).await? {
        return Ok(None);
    }
    let stands = app
        .stores
        .log
        .events(call)
        .await?
        .into_iter()
        .find(|e| e.idempotency_key == key)
        .and_then(|e| match e.kind {
            CallEventKind::IvrInput { value, .. } => Some(value),
            _ => None,
        });
    Ok(stands.filter(|v| v != outcome))
}

/// The context, winning bid and (when this instance took them) cap holds of a
/// forwarded call, from memory or the call log.
async fn forwarded_call(
    app: &App,
    call: &CallId,
    sid: &str,
) -> IvrResult<(CallContext, Bid, Option<Vec<Hold>>)> {
    let memory = app.with_call(sid, |c| {
        (
            c.ctx.clone(),
            c.won.as_ref().map(|w| (w.bid.clone(), w.holds.clone())),
        )
    });
    if let Some((Some(ctx), Some((bid, holds)))) = memory {
        return Ok((ctx, bid, Some(holds)));
    }
    match recover(app, call).await? {
        Some((ctx, bid)) => Ok((ctx, bid, None)),
        None => Err(IvrError(anyhow::anyhow!(
            "dial result for call {sid}, which was never forwarded"
        ))),
    }
}

/// The `<Dial>` action. The first dial result of a call decides it: a retry of it is
/// answered the same, a different one later changes nothing and hangs up. After the
/// status callback reported the call over, the first result's facts are still recorded
/// (the talk time bills the call whatever the order) but the answer is a hangup: no
/// goodbye or fallback for a caller who is gone.
async fn dial_result(
    State(app): State<Arc<App>>,
    Signed(req): Signed<DialActionRequest>,
) -> IvrResult {
    let call = call_id(&req.call)?;
    let sid = req.call.call_sid.clone();
    let (ctx, bid, holds) = forwarded_call(&app, &call, &sid).await?;
    let outcome = dial_outcome(req.dial_call_status.as_ref());
    if let Some(stands) = first_outcome(&app, &call, "dial", &outcome).await? {
        eprintln!("INFO ivr: call {sid}: dial result {outcome} after {stands}; ignored");
        return Ok(hangup());
    }
    let logs = app.stores.log.as_ref();
    if let Some(url) = req.recording_url.as_deref().filter(|u| !u.is_empty()) {
        log(
            logs,
            &call,
            format!("recording:{url}"),
            CallEventKind::Recording {
                url: url.to_owned(),
            },
        )
        .await?;
    }
    // The bridge is over either way: give back the buyer's live-call slot.
    release_live(&app, &call, &bid.buyer, holds.as_deref()).await;
    let ended = ended(&app, &call).await?;
    if connected(req.dial_call_status.as_ref()) {
        let duration = Duration::from_secs(req.dial_call_duration.unwrap_or(0));
        settle_bridged(&app, &ctx, &bid, duration).await;
        if ended {
            return Ok(hangup());
        }
        Ok(VoiceResponse::new()
            .say(say(&app, "Thank you for calling. Goodbye."))
            .hangup()
            .into())
    } else {
        let reason = format!("buyer {} did not answer ({outcome})", bid.buyer);
        let kind = CallEventKind::Missed {
            reason: reason.clone(),
        };
        log(logs, &call, format!("dial:{outcome}"), kind).await?;
        if ended {
            return Ok(hangup());
        }
        let intro = Some("Sorry, the provider is not available right now.");
        enter_fallback(&app, &call, reason, intro).await
    }
}

/// Settles a bridged call at its dial result. A store failure is logged, not answered:
/// the caller was served, and the status callback settles the call later (it retries).
async fn settle_bridged(app: &App, ctx: &CallContext, bid: &Bid, duration: Duration) {
    let sid = ctx.call_id.as_str();
    let profile = profile_of(&app.auction, &bid.buyer);
    let settled = settle_call(
        app.stores.log.as_ref(),
        app.stores.history.as_ref(),
        ctx,
        bid,
        &profile,
        duration,
        &app.config.payout,
    )
    .await;
    match settled {
        Ok(s) if app.config.log_calls => eprintln!(
            "INFO ivr: call {sid} with {} lasted {}s: billable={} revenue={:.2} {} payout={:.2} {}",
            bid.buyer,
            s.duration.as_secs(),
            s.billable,
            s.revenue.amount,
            s.revenue.currency,
            s.payout.amount,
            s.payout.currency
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "ERROR ivr: cannot settle call {sid} with {} ({}s); the status callback retries: {e:#}",
            bid.buyer,
            duration.as_secs()
        ),
    }
}

/// Gives back the buyer's live-call slot of `call`. `holds` are the cap holds this
/// instance took for the winner, when it knows them: then only their live ones are
/// released (none when the buyer has no concurrency cap: no store round trip). Without
/// them (a restarted or another instance), the slot's deterministic reservation id is
/// released, which is a no-op when it is not held.
async fn release_live(app: &App, call: &CallId, buyer: &BuyerId, holds: Option<&[Hold]>) {
    let result = if let Some(holds) = holds {
        let mut r = Ok(());
        for h in holds.iter().filter(|h| h.live) {
            if let Err(e) = h.release().await {
                r = Err(e);
            }
        }
        r
    } else {
        release_live_slot(app.stores.caps.as_ref(), call, buyer)
            .await
            .map(|_| ())
    };
    if let Err(e) = result {
        // The slot expires by its TTL; routing continues.
        eprintln!("WARN ivr: cannot release the live-call slot of {buyer} for {call}: {e}");
    }
}

#[derive(Debug, Deserialize)]
struct StepQuery {
    step: usize,
}

/// The voicemail step's `<Record>` action: thanks when a message was recorded, the next
/// step otherwise. Decided by its first result (a conflicting later one hangs up); after
/// the call ended, only a recording is kept.
async fn voicemail_done(
    State(app): State<Arc<App>>,
    q: Result<Query<StepQuery>, axum::extract::rejection::QueryRejection>,
    Signed(req): Signed<RecordActionRequest>,
) -> IvrResult {
    let step = query(q)?.step;
    let call = call_id(&req.call)?;
    let recorded_secs = req.recording_duration.unwrap_or(0) > 0;
    let url = req
        .recording_url
        .as_deref()
        .filter(|u| !u.is_empty() && recorded_secs);
    let ended = ended(&app, &call).await?;
    if !ended {
        let outcome = if url.is_some() {
            "recorded"
        } else {
            "no recording"
        };
        let step_key = format!("fallback:{step}");
        if let Some(stands) = first_outcome(&app, &call, &step_key, outcome).await? {
            eprintln!("INFO ivr: call {call}: voicemail {outcome} after {stands}; ignored");
            return Ok(hangup());
        }
    }
    match url {
        Some(url) => {
            let e = callbid_core::state::CallEvent::new(
                call,
                Utc::now(),
                format!("recording:{url}"),
                CallEventKind::Recording {
                    url: url.to_owned(),
                },
            );
            app.stores.log.append(&e).await?;
            if ended {
                return Ok(hangup());
            }
            Ok(app.config.fallback.voicemail_thanks().into())
        }
        None if ended => Ok(hangup()),
        None => {
            let reason = "no voicemail was recorded".to_owned();
            next_fallback(&app, &call, step + 1, reason).await
        }
    }
}

/// The in-house `<Dial>` action: hang up when it connected, the next step otherwise.
/// Decided by its first result; after the call ended, nothing changes.
async fn fallback_next(
    State(app): State<Arc<App>>,
    q: Result<Query<StepQuery>, axum::extract::rejection::QueryRejection>,
    Signed(req): Signed<DialActionRequest>,
) -> IvrResult {
    let step = query(q)?.step;
    let call = call_id(&req.call)?;
    if ended(&app, &call).await? {
        eprintln!("INFO ivr: call {call}: in-house dial result after the call ended; ignored");
        return Ok(hangup());
    }
    let outcome = dial_outcome(req.dial_call_status.as_ref());
    let step_key = format!("fallback:{step}");
    if let Some(stands) = first_outcome(&app, &call, &step_key, &outcome).await? {
        eprintln!("INFO ivr: call {call}: in-house dial {outcome} after {stands}; ignored");
        return Ok(hangup());
    }
    if connected(req.dial_call_status.as_ref()) {
        return Ok(hangup());
    }
    let reason = format!("in-house line did not answer ({outcome})");
    next_fallback(&app, &call, step + 1, reason).await
}

/// The call status callback. A final status is always recorded, under
/// `status:{CallStatus}` ([`END_KEY`]): as `missed` when the caller left during the IVR
/// or before the bridge reported back, or when the log has never seen the call (out of
/// order, or another deployment's number: the callback is kept, and the call's row says
/// `missed`, not `incoming`); as an `ivr_input` event of step `call_status` otherwise
/// (the record's status stands). A missing or unknown `CallStatus` is a `400` naming it.
async fn status_callback(
    State(app): State<Arc<App>>,
    Signed(req): Signed<StatusCallbackRequest>,
) -> IvrResult<StatusCode> {
    let call = call_id(&req.call)?;
    let Some(status) = final_status(req.call.call_status.as_ref())? else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let secs = req.call_duration.or(req.duration).unwrap_or(0);
    offer::caller_left(&app, &req.call.call_sid).await?;
    let live = app.take_call(&req.call.call_sid);
    let kind = match app.stores.log.record(&call).await? {
        None => CallEventKind::Missed {
            reason: format!(
                "status callback for a call with no incoming event (call {status} after {secs}s)"
            ),
        },
        Some(record) => {
            // Release the live-call slot whatever happened (idempotent).
            if let Some(buyer) = &record.buyer {
                let holds = live
                    .as_ref()
                    .and_then(|c| c.won.as_ref())
                    .map(|w| w.holds.clone());
                release_live(&app, &call, buyer, holds.as_deref()).await;
            }
            settle_unbilled(&app, &call, &record, live.as_ref()).await?;
            end_kind(record.status, &status, secs)
        }
    };
    log(
        app.stores.log.as_ref(),
        &call,
        format!("{END_KEY}{status}"),
        kind,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The event a final status records on a logged call: `missed` while the caller was
/// still in the IVR or the bridge had not reported back, else an `ivr_input` the
/// record ignores.
fn end_kind(was: LogStatus, status: &str, secs: u64) -> CallEventKind {
    match was {
        LogStatus::Incoming => CallEventKind::Missed {
            reason: format!("caller left during the IVR (call {status} after {secs}s)"),
        },
        LogStatus::Forwarded => CallEventKind::Missed {
            reason: format!(
                "call ended before the bridge reported back (call {status} after {secs}s)"
            ),
        },
        _ => CallEventKind::IvrInput {
            step: "call_status".to_owned(),
            value: format!("{status} after {secs}s"),
        },
    }
}

/// The callback's `CallStatus` when it is final (`None` for a call still going); a
/// missing or unknown value is bad input, named.
fn final_status(status: Option<&TwilioStatus>) -> IvrResult<Option<String>> {
    match status {
        None => Err(IvrError::bad_input(
            "webhook field CallStatus is missing (a status callback always carries it)",
        )),
        Some(s) if !s.is_known() => {
            let known: Vec<&str> = TwilioStatus::ALL.iter().map(TwilioStatus::as_str).collect();
            Err(IvrError::bad_input(format!(
                "webhook field CallStatus: unknown value `{s}` (expected one of {})",
                known.join(", ")
            )))
        }
        Some(s) if call_over(Some(s)) => Ok(Some(s.to_string())),
        Some(_) => Ok(None),
    }
}

/// A bridged call whose settlement failed at the Dial action: settle it now (a store
/// failure answers 500, so Twilio retries; idempotency keys keep it single).
async fn settle_unbilled(
    app: &App,
    call: &CallId,
    record: &callbid_core::state::CallRecord,
    live: Option<&LiveCall>,
) -> IvrResult<()> {
    let unbilled = matches!(record.status, LogStatus::Completed) && record.billable.is_none();
    let (true, Some(secs)) = (unbilled, record.duration_secs) else {
        return Ok(());
    };
    let memory = live.and_then(|c| {
        let won = c.won.as_ref()?;
        Some((c.ctx.clone()?, won.bid.clone()))
    });
    let found = match memory {
        Some(found) => Some(found),
        None => recover(app, call).await?,
    };
    let Some((ctx, bid)) = found else {
        eprintln!(
            "WARN ivr: call {call} completed without billing and cannot be recovered from the log"
        );
        return Ok(());
    };
    let profile = profile_of(&app.auction, &bid.buyer);
    settle_call(
        app.stores.log.as_ref(),
        app.stores.history.as_ref(),
        &ctx,
        &bid,
        &profile,
        Duration::from_secs(secs),
        &app.config.payout,
    )
    .await?;
    Ok(())
}

/// The recording status callback. A recording for a call the log has never seen is
/// kept all the same, with a `missed` event saying so (as a status callback for an
/// unknown call is), so the call's row is never a phantom `incoming` call.
async fn recording_callback(
    State(app): State<Arc<App>>,
    Signed(req): Signed<RecordingStatusRequest>,
) -> IvrResult<StatusCode> {
    if req.recording_status != RecordingStatus::Completed {
        return Ok(StatusCode::NO_CONTENT);
    }
    let (Some(sid), Some(url)) = (req.call_sid.as_deref(), req.recording_url.as_deref()) else {
        return Err(IvrError::bad_input(format!(
            "recording callback {} without CallSid or RecordingUrl",
            req.recording_sid
        )));
    };
    let call =
        CallId::new(sid).map_err(|e| IvrError::bad_input(format!("webhook field CallSid: {e}")))?;
    let known = app.stores.log.record(&call).await?.is_some();
    let mut events = vec![callbid_core::state::CallEvent::new(
        call.clone(),
        Utc::now(),
        format!("recording:{url}"),
        CallEventKind::Recording {
            url: url.to_owned(),
        },
    )];
    if !known {
        let reason = format!(
            "recording callback {} for a call with no incoming event",
            req.recording_sid
        );
        let kind = CallEventKind::Missed { reason };
        events.push(callbid_core::state::CallEvent::new(
            call,
            Utc::now(),
            "unknown:recording",
            kind,
        ));
    }
    app.stores.log.append_all(&events).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::Money;
    use rust_decimal::Decimal;

    #[test]
    fn forwarded_key_carries_the_bids_min_duration() {
        let buyer = BuyerId::new("acme").expect("valid buyer id");
        let bid = Bid::new(buyer, Money::usd(Decimal::new(4500, 2)));
        assert_eq!(forwarded_key(&bid), "forwarded");
        assert_eq!(min_duration_of_forwarded_key("forwarded"), None);
        let bid = bid.with_min_duration(Duration::from_millis(90_500));
        let key = forwarded_key(&bid);
        assert_eq!(
            min_duration_of_forwarded_key(&key),
            Some(Duration::from_millis(90_500))
        );
    }
}

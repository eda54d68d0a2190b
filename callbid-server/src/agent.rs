//! Agent-assisted routing (seed 002, Option 2) as an axum app.
//!
//! 1. A call arrives: Twilio posts `/twilio/voice` (signature checked with
//!    callbid-twilio's extractor unless signatures are switched off for local curl).
//!    The answer is TwiML dialing the agent (`<Dial><Client>` or `<Dial><Number>`); the
//!    call is logged (`incoming`) and listed for the agent.
//! 2. The agent, talking to the caller, fills the form on `/agent` (the live call's
//!    CallSid, ZIP, service, campaign/source, manual or auto) which posts
//!    `/agent/api/auctions`: an auction runs for the call; bids show up live (the
//!    operator dashboard's SSE feed `/api/auctions/stream`) and every step goes to the
//!    call log exactly as the IVR writes it (`ivr_support::log_auction_attempt`:
//!    auction started, one ping result per buyer, failed accepts, winner, accepted),
//!    then the in-house fallback when nobody buys.
//! 3. Manual mode: the agent presses Forward (`POST /agent/api/auctions/{id}/forward`);
//!    auto mode forwards as soon as a buyer wins. Forwarding is a REST update of the live
//!    call (`calls().update(sid, Twiml=<Dial>…)`) that moves the caller from the agent to
//!    the buyer's DID or SIP URI; the call log gets `forwarded`.
//! 4. Twilio posts the buyer leg's end to `/twilio/dial-status`: `completed` with the
//!    talk time, settled like the IVR's calls (duration history and `billing`), or
//!    `missed`; the buyer's live-call slot is given back.
//! 5. The number's call status callback (`/twilio/status`): when the call is over, a win
//!    never forwarded gives every cap hold back and can no longer be forwarded
//!    (`ended`). A new auction for the same call does the same to the win it replaces
//!    (`superseded`), and so does forgetting an old win.
//!
//! The operator dashboard (call log, filters, exports, chart, live feed) is mounted at `/`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use callbid_core::auction::{AcceptRecord, Auction, BuyerRecord, BuyerReply, Eligibility};
use callbid_core::billing::PayoutRule;
use callbid_core::rules::Hold;
use callbid_core::state::{CallEvent, CallEventKind, CallLog, DurationHistory};
use callbid_core::{
    Bid, CallContext, CallId, CampaignId, Destination, PhoneNumber, ServiceType, SourceId,
    ValidationError, Zip,
};
use callbid_store::Store;
use callbid_twilio::extract::TwilioWebhook;
use callbid_twilio::rest::{Client as TwilioClient, UpdateCall};
use callbid_twilio::signature::WebhookVerifier;
use callbid_twilio::twiml::{Client as TwimlClient, Dial, Number, Say, Sip, VoiceResponse};
use callbid_twilio::webhook::{
    DialActionRequest, DialCallStatus, StatusCallbackRequest, VoiceRequest,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::auth::{self as operator_auth, OperatorAuth};
use crate::dashboard::{self, ApiError, DashboardState};
use crate::settle::{call_over, log_auction_attempt, profile_of, release_live_slot, settle_leg};

const AGENT_HTML: &str = include_str!("agent/agent.html");
const AGENT_JS: &str = include_str!("agent/agent.js");

/// How many recent inbound calls the agent page lists.
const LIVE_CALLS: usize = 50;

/// How many finished auctions are kept in memory (the call log keeps everything).
const KEPT_SESSIONS: usize = 1_000;

/// Seconds the buyer's side may ring.
pub const DIAL_TIMEOUT: u32 = 30;

/// Who takes the call first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTarget {
    /// A Twilio Client identity (`client:alice`).
    Client(String),
    /// A phone number.
    Number(PhoneNumber),
}

impl AgentTarget {
    /// Parses `client:IDENTITY` or an E.164 number.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let t = s.trim();
        if let Some(id) = t.strip_prefix("client:") {
            let ok = !id.is_empty()
                && id.len() <= 121
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            if ok {
                Ok(AgentTarget::Client(id.to_string()))
            } else {
                Err(ValidationError::new(
                    "agent",
                    s,
                    "client identity must be 1-121 letters, digits, '_', '-' or '.'",
                ))
            }
        } else {
            PhoneNumber::parse_field("agent", t).map(AgentTarget::Number)
        }
    }
}

/// Forward at once when a buyer wins, or wait for the agent's click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The agent presses Forward.
    Manual,
    /// Forward as soon as a buyer wins.
    Auto,
}

impl Mode {
    /// Parses `manual` or `auto`.
    pub fn parse(field: &'static str, s: &str) -> Result<Mode, ValidationError> {
        match s.trim() {
            "manual" => Ok(Mode::Manual),
            "auto" => Ok(Mode::Auto),
            _ => Err(ValidationError::new(field, s, "expected manual or auto")),
        }
    }
}

/// Everything the app needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The call log and reports.
    pub store: Store,
    /// The auction (its events feed the live bids); build it with
    /// `ivr_support::build_auction` over `history` so scoring uses settled calls.
    pub auction: Auction,
    /// Duration history, fed by every settled (completed) buyer leg.
    pub history: Arc<dyn DurationHistory>,
    /// Publisher payout per billable call.
    pub payout: PayoutRule,
    /// The Twilio REST client used to bridge live calls.
    pub twilio: TwilioClient,
    /// Checks webhook signatures; `None` only for local curl (`--insecure-skip-signature`).
    pub verifier: Option<WebhookVerifier>,
    /// The public base URL Twilio reaches this server at (for `<Dial action>`).
    pub public_url: Option<String>,
    /// Who answers calls.
    pub agent: AgentTarget,
    /// The form's default mode.
    pub default_mode: Mode,
    /// Page title.
    pub title: String,
    /// The log settlements (the `billing` event) are written through; `None`: `store`.
    /// Set it to a [`PostbackLog`](crate::postback::PostbackLog) over the store to send
    /// publisher postbacks for billable calls (what `agent_assist --postbacks` does).
    pub settle_log: Option<Arc<dyn CallLog>>,
}

/// A call that reached the voice webhook.
#[derive(Debug, Clone, Serialize)]
pub struct LiveCall {
    /// `CallSid`.
    pub call_sid: String,
    /// Caller.
    pub from: Option<String>,
    /// Dialled number.
    pub to: Option<String>,
    /// When it arrived.
    pub at: DateTime<Utc>,
}

/// Where an agent's auction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Pinging buyers.
    Running,
    /// A buyer won; waiting for Forward (manual mode).
    Won,
    /// Nobody bought; the caller stays with the agent.
    NoBuyer,
    /// The REST update is in flight.
    Forwarding,
    /// The call was sent to the buyer.
    Forwarded,
    /// The REST update failed (see `error`); Forward can be retried.
    ForwardFailed,
    /// A newer auction for the same call replaced this one before it was forwarded; its
    /// cap holds were given back.
    Superseded,
    /// The call ended (Twilio's call status callback) before this auction's winner was
    /// forwarded; its cap holds were given back.
    Ended,
}

/// One buyer's answer, for the page.
#[derive(Debug, Clone, Serialize)]
pub struct BidView {
    /// Buyer id.
    pub buyer: String,
    /// `bid`, `invalid_bid`, `no_bid`, `failed`, `timed_out`, `not_pinged`, `cancelled`.
    pub reply: &'static str,
    /// Price (exact decimal text).
    pub price: Option<String>,
    /// Currency.
    pub currency: Option<String>,
    /// Score (exact decimal text).
    pub score: Option<String>,
    /// Why not, when it did not bid (or its bid was refused).
    pub reason: Option<String>,
    /// Ping latency.
    pub latency_ms: Option<u64>,
}

/// The winner, for the page.
#[derive(Debug, Clone, Serialize)]
pub struct WinnerView {
    /// Buyer id.
    pub buyer: String,
    /// Price.
    pub price: String,
    /// Currency.
    pub currency: String,
    /// Score.
    pub score: String,
    /// Where the call goes.
    pub destination: String,
}

/// One auction started by the agent.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// `{CallSid}-{attempt}`.
    pub id: String,
    /// The live call.
    pub call_sid: String,
    /// 1 for the first auction of this call, 2 for a retry, ….
    pub attempt: u32,
    /// Manual or auto.
    pub mode: Mode,
    /// Where it is.
    pub status: SessionStatus,
    /// ZIP auctioned.
    pub zip: String,
    /// Service auctioned.
    pub service: String,
    /// Campaign.
    pub campaign: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Every buyer's answer (once the auction finished).
    pub bids: Vec<BidView>,
    /// The winner.
    pub winner: Option<WinnerView>,
    /// Why nobody bought.
    pub no_buyer_reason: Option<String>,
    /// The last forwarding error.
    pub error: Option<String>,
    /// The TwiML sent to bridge the call.
    pub twiml: Option<String>,
    /// Call-log writes that failed for this auction (the call went on regardless).
    pub log_errors: Vec<String>,
    /// When the agent started it.
    pub started_at: DateTime<Utc>,
    #[serde(skip)]
    destination: Option<Destination>,
    #[serde(skip)]
    buyer_id: Option<callbid_core::BuyerId>,
    /// The winner's cap holds: its live-call slot is given back when the forwarded leg
    /// ends, and every hold when the win is never forwarded (the call ends, a newer
    /// auction replaces it, or it is forgotten).
    #[serde(skip)]
    holds: Vec<Hold>,
    /// The winning bid (its terms bill the call).
    #[serde(skip)]
    bid: Option<Bid>,
    /// The auctioned call (settlement records duration history against it).
    #[serde(skip)]
    ctx: Option<CallContext>,
}

impl Session {
    /// The `attempt`-th auction of the form's call, started at `started_at`.
    fn running(form: &AuctionForm, attempt: u32, started_at: DateTime<Utc>) -> Session {
        Session {
            id: format!("{}-{attempt}", form.call_sid),
            call_sid: form.call_sid.to_string(),
            attempt,
            mode: form.mode,
            status: SessionStatus::Running,
            zip: form.zip.as_str().to_string(),
            service: form.service.to_string(),
            campaign: form.campaign.as_ref().map(|c| c.to_string()),
            source: form.source.as_ref().map(|c| c.to_string()),
            bids: Vec::new(),
            winner: None,
            no_buyer_reason: None,
            error: None,
            twiml: None,
            log_errors: Vec::new(),
            started_at,
            destination: None,
            buyer_id: None,
            holds: Vec::new(),
            bid: None,
            ctx: None,
        }
    }
}

/// Shared state.
#[derive(Debug)]
pub struct App {
    cfg: AgentConfig,
    live: Mutex<Vec<LiveCall>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// CallSid → forwarded session id (to settle when the buyer leg ends).
    forwarded: Mutex<BTreeMap<String, String>>,
    /// Calls whose status callback said they are over (most recent [`KEPT_ENDED`]).
    ended: Mutex<std::collections::VecDeque<String>>,
}

/// How many ended calls are remembered (older ones are still refused once the call log
/// says they completed).
const KEPT_ENDED: usize = 10_000;

type Shared = Arc<App>;

/// A Twilio webhook parsed into `T`. Its signature is checked with callbid-twilio's
/// extractor (`403` when it does not match) unless the app has no verifier
/// (`--insecure-skip-signature`).
struct Webhook<T>(T);

impl<T: DeserializeOwned> FromRequest<Shared> for Webhook<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &Shared) -> Result<Self, Response> {
        match &app.cfg.verifier {
            Some(verifier) => TwilioWebhook::<T>::from_request(req, verifier)
                .await
                .map(|TwilioWebhook(t)| Webhook(t))
                .map_err(IntoResponse::into_response),
            None => {
                let body = Bytes::from_request(req, app)
                    .await
                    .map_err(IntoResponse::into_response)?;
                crate::ivr::parse_webhook(&body)
                    .map(Webhook)
                    .map_err(|e| bad_webhook(e.to_string()))
            }
        }
    }
}

/// The whole server with the operator routes open (no token; what a loopback-only
/// server without `--dashboard-token` serves). See [`router_with`].
pub fn router(cfg: AgentConfig) -> Router {
    router_with(cfg, &OperatorAuth::open())
}

/// The whole server: Twilio webhooks (signature-checked, never behind the operator
/// token), and behind `operator` the agent page and API and the operator dashboard at
/// `/`, with `/login` and `/logout`.
pub fn router_with(cfg: AgentConfig, operator: &OperatorAuth) -> Router {
    let dash = dashboard::router(DashboardState {
        store: cfg.store.clone(),
        auction: cfg.auction.clone(),
        title: cfg.title.clone(),
    });
    let app = Arc::new(App {
        cfg,
        live: Mutex::new(Vec::new()),
        sessions: Mutex::new(HashMap::new()),
        forwarded: Mutex::new(BTreeMap::new()),
        ended: Mutex::new(std::collections::VecDeque::new()),
    });
    let webhooks = Router::new()
        .route("/twilio/voice", post(voice))
        .route("/twilio/dial-status", post(dial_status))
        .route("/twilio/status", post(call_status))
        .route_layer(axum::middleware::from_fn(crate::metrics::time_webhooks))
        .with_state(app.clone());
    let agent = Router::new()
        .route("/agent", get(agent_page))
        .route("/agent/assets/agent.js", get(agent_js))
        .route("/agent/api/config", get(agent_config))
        .route("/agent/api/live-calls", get(live_calls))
        .route("/agent/api/auctions", post(start_auction))
        .route("/agent/api/auctions/{id}", get(get_session))
        .route("/agent/api/auctions/{id}/forward", post(forward))
        .with_state(app);
    operator_auth::protect(dash.merge(agent), operator).merge(webhooks)
}

// ---------------------------------------------------------------------------------------
// Call-log helpers

impl App {
    /// Appends one event to the call log; the error names the event and the call.
    async fn log(
        &self,
        call: &CallId,
        at: DateTime<Utc>,
        key: String,
        kind: CallEventKind,
    ) -> Result<(), String> {
        let ev = CallEvent::new(call.clone(), at, key, kind);
        CallLog::append(&self.cfg.store, &ev)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot log {} for {call}: {e}", ev.kind.type_name()))
    }

    /// Like [`App::log`] for the agent's auction path: the call goes on, and a failure
    /// is printed and kept on the session so the agent page shows it.
    async fn log_for_session(
        &self,
        id: &str,
        call: &CallId,
        at: DateTime<Utc>,
        key: String,
        kind: CallEventKind,
    ) {
        if let Err(e) = self.log(call, at, key, kind).await {
            self.session_log_error(id, e);
        }
    }

    fn session(&self, id: &str) -> Option<Session> {
        self.sessions.lock().ok()?.get(id).cloned()
    }

    fn update_session(&self, id: &str, f: impl FnOnce(&mut Session)) -> Option<Session> {
        self.with_session(id, |s| {
            f(s);
            s.clone()
        })
    }

    fn with_session<R>(&self, id: &str, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let mut map = self.sessions.lock().ok()?;
        map.get_mut(id).map(f)
    }

    /// Prints a call-log write failure of the agent's auction path and keeps it on the
    /// session so the agent page shows it.
    fn session_log_error(&self, id: &str, e: String) {
        eprintln!("agent_assist: {e}");
        self.update_session(id, |s| s.log_errors.push(e));
    }
}

/// Gives up `session`'s win if it was not forwarded: it becomes `status` and its holds
/// are returned for [`release_holds`] (none when it was forwarded, or is being).
fn give_up_win(session: &mut Session, status: SessionStatus) -> Vec<Hold> {
    match session.status {
        SessionStatus::Running | SessionStatus::Won | SessionStatus::ForwardFailed => {
            session.status = status;
            std::mem::take(&mut session.holds)
        }
        _ => Vec::new(),
    }
}

/// Gives cap holds back (idempotent); a failure is printed and the hold expires by its
/// TTL.
async fn release_holds(holds: &[Hold]) {
    for h in holds {
        if let Err(e) = h.release().await {
            eprintln!(
                "agent_assist: cannot release cap hold {} ({}): {e}",
                h.reservation, h.rule
            );
        }
    }
}

fn twiml_response(xml: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        xml,
    )
        .into_response()
}

fn bad_webhook(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

// ---------------------------------------------------------------------------------------
// Twilio webhooks

/// A call arrives: log it, list it for the agent, and ring the agent.
async fn voice(State(app): State<Shared>, Webhook(req): Webhook<VoiceRequest>) -> Response {
    let call = match CallId::new(&req.call.call_sid) {
        Ok(c) => c,
        Err(e) => return bad_webhook(e.to_string()),
    };
    let now = Utc::now();
    let caller = req
        .call
        .from
        .as_deref()
        .and_then(|f| PhoneNumber::parse(f).ok());
    let dialed = req
        .call
        .to
        .as_deref()
        .and_then(|t| PhoneNumber::parse(t).ok());
    if let Err(e) = app
        .log(
            &call,
            now,
            "incoming".into(),
            CallEventKind::Incoming {
                caller,
                dialed,
                campaign: None,
                source: None,
            },
        )
        .await
    {
        // The caller must still reach the agent; the failure is reported loudly.
        eprintln!("agent_assist: {e}");
    }
    if let Ok(mut live) = app.live.lock() {
        if !live.iter().any(|c| c.call_sid == req.call.call_sid) {
            live.insert(
                0,
                LiveCall {
                    call_sid: req.call.call_sid.clone(),
                    // The number, or "withheld (…)" / "no caller ID" (never parsed as a caller).
                    from: Some(req.call.caller_id().to_string()),
                    to: req.call.to.clone(),
                    at: now,
                },
            );
            live.truncate(LIVE_CALLS);
        }
    }
    let dial = match &app.cfg.agent {
        AgentTarget::Client(id) => Dial::new().client(TwimlClient::new(id.clone())),
        AgentTarget::Number(n) => Dial::new().number(Number::new(n.to_string())),
    };
    twiml_response(
        VoiceResponse::new()
            .say(Say::new("Please hold while we connect you to an agent."))
            .dial(dial.timeout(DIAL_TIMEOUT))
            .say(Say::new(
                "Sorry, no agent is available right now. Please call again later.",
            ))
            .hangup()
            .to_xml(),
    )
}

/// The buyer's leg ended: completed (with talk time) or missed; release live-call holds.
async fn dial_status(
    State(app): State<Shared>,
    Webhook(req): Webhook<DialActionRequest>,
) -> Response {
    let call = match CallId::new(&req.call.call_sid) {
        Ok(c) => c,
        Err(e) => return bad_webhook(e.to_string()),
    };
    let now = Utc::now();
    let leg = req
        .dial_call_sid
        .clone()
        .unwrap_or_else(|| "unknown-leg".to_string());
    let session_id = app
        .forwarded
        .lock()
        .ok()
        .and_then(|m| m.get(&req.call.call_sid).cloned());
    let session = session_id.as_deref().and_then(|id| app.session(id));
    let buyer = session.as_ref().and_then(|s| s.buyer_id.clone());
    let mut completed = false;
    let logged = match (req.dial_call_status, req.dial_call_duration) {
        (Some(DialCallStatus::Completed), Some(secs)) if secs > 0 => {
            completed = true;
            let won = session
                .as_ref()
                .and_then(|s| Some((s.ctx.clone()?, s.bid.clone()?)));
            log_completed_leg(&app, &call, won, buyer, &leg, secs, now).await
        }
        (status, _) => {
            let reason = status.map_or_else(|| "unknown".to_string(), |s| s.to_string());
            app.log(
                &call,
                now,
                format!("missed:{leg}"),
                CallEventKind::Missed { reason },
            )
            .await
        }
    };
    if let Some(s) = session {
        for h in s.holds.iter().filter(|h| h.live) {
            if let Err(e) = h.release().await {
                eprintln!(
                    "agent_assist: cannot release live-call hold {}: {e}",
                    h.rule
                );
            }
        }
    }
    if let Err(e) = logged {
        // 500 so Twilio retries the callback; every event has an idempotency key, so a
        // retry records nothing twice.
        eprintln!("agent_assist: dial status of {call}: {e} (Twilio may retry)");
        return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response();
    }
    if completed {
        return twiml_response(VoiceResponse::new().hangup().to_xml());
    }
    // Busy, no answer, failed: tell the caller before hanging up.
    twiml_response(
        VoiceResponse::new()
            .say(Say::new(
                "Sorry, we could not connect your call to the provider. Please call again later. Goodbye.",
            ))
            .hangup()
            .to_xml(),
    )
}

/// A completed buyer leg of `call` that lasted `secs`: settled (connected, completed,
/// duration history, billing) when this process forwarded it (`won`), else only the leg
/// is logged (e.g. after a restart).
async fn log_completed_leg(
    app: &App,
    call: &CallId,
    won: Option<(CallContext, Bid)>,
    buyer: Option<callbid_core::BuyerId>,
    leg: &str,
    secs: u64,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let Some((ctx, bid)) = won else {
        app.log(
            call,
            now,
            format!("connected:{leg}"),
            CallEventKind::Connected { buyer },
        )
        .await?;
        return app
            .log(
                call,
                now,
                format!("completed:{leg}"),
                CallEventKind::Completed {
                    duration_secs: secs,
                },
            )
            .await;
    };
    let profile = profile_of(&app.cfg.auction, &bid.buyer);
    let settle_log: &dyn CallLog = match &app.cfg.settle_log {
        Some(log) => log.as_ref(),
        None => &app.cfg.store,
    };
    settle_leg(
        settle_log,
        app.cfg.history.as_ref(),
        &ctx,
        &bid,
        &profile,
        Duration::from_secs(secs),
        &app.cfg.payout,
        Some(leg),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("cannot settle {call}: {e:#}"))
}

/// The caller's call status callback (the number's "call status changes" webhook):
/// when the call is over, it leaves the live list, wins never forwarded become `ended`
/// and give every cap hold back, and forwarded ones give back their live-call slot
/// (the dial-status callback normally did already; releasing is idempotent).
async fn call_status(
    State(app): State<Shared>,
    Webhook(req): Webhook<StatusCallbackRequest>,
) -> Response {
    if !call_over(req.call.call_status.as_ref()) {
        return StatusCode::NO_CONTENT.into_response();
    }
    let sid = req.call.call_sid.as_str();
    if let Ok(mut live) = app.live.lock() {
        live.retain(|c| c.call_sid != sid);
    }
    if let Ok(mut ended) = app.ended.lock() {
        if !ended.iter().any(|c| c == sid) {
            ended.push_back(sid.to_owned());
            while ended.len() > KEPT_ENDED {
                ended.pop_front();
            }
        }
    }
    let mut holds = Vec::new();
    if let Ok(mut map) = app.sessions.lock() {
        for s in map.values_mut().filter(|s| s.call_sid == sid) {
            let given_up = give_up_win(s, SessionStatus::Ended);
            if given_up.is_empty() {
                holds.extend(s.holds.iter().filter(|h| h.live).cloned());
            } else {
                holds.extend(given_up);
            }
        }
    }
    release_holds(&holds).await;
    // A forwarded call whose auction this process no longer has (forgotten, or started
    // before a restart): its buyer's live-call slot is found through the call log.
    if let Ok(call) = CallId::new(sid) {
        let buyer = CallLog::record(&app.cfg.store, &call)
            .await
            .map(|r| r.and_then(|r| r.buyer));
        let released = match buyer {
            Ok(Some(buyer)) => release_live_slot(&app.cfg.store, &call, &buyer)
                .await
                .map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = released {
            eprintln!("agent_assist: cannot release the live-call slot of {call}: {e}");
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------
// The agent's page and API

async fn agent_page(
    State(app): State<Shared>,
    axum::extract::OriginalUri(original): axum::extract::OriginalUri,
    uri: axum::http::Uri,
) -> Response {
    let prefix = dashboard::mount_prefix(&original, &uri);
    dashboard::prefixed_page(AGENT_HTML, &app.cfg.title, &prefix)
}

async fn agent_js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        AGENT_JS,
    )
        .into_response()
}

async fn agent_config(State(app): State<Shared>) -> Json<serde_json::Value> {
    Json(json!({
        "title": app.cfg.title,
        "default_mode": app.cfg.default_mode,
        "agent": match &app.cfg.agent {
            AgentTarget::Client(id) => format!("client:{id}"),
            AgentTarget::Number(n) => n.to_string(),
        },
        "buyers": app.cfg.auction.entries().len(),
    }))
}

async fn live_calls(State(app): State<Shared>) -> Json<Vec<LiveCall>> {
    Json(app.live.lock().map(|l| l.clone()).unwrap_or_default())
}

async fn get_session(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    app.session(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no auction {id:?}")))
}

/// Twilio's CallSid shape: `CA` and 32 hex digits.
fn parse_call_sid(v: &str) -> Result<CallId, ValidationError> {
    let t = v.trim();
    let ok = t.len() == 34 && t.starts_with("CA") && t[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(ValidationError::new(
            "call_sid",
            v,
            "expected a Twilio CallSid: CA followed by 32 hex digits",
        ));
    }
    CallId::new(t).map_err(|e| ValidationError::new("call_sid", v, e.reason))
}

/// The agent's form, validated.
#[derive(Debug, Clone)]
pub struct AuctionForm {
    /// The live call.
    pub call_sid: CallId,
    /// ZIP.
    pub zip: Zip,
    /// Service.
    pub service: ServiceType,
    /// Campaign.
    pub campaign: Option<CampaignId>,
    /// Source.
    pub source: Option<SourceId>,
    /// Manual or auto.
    pub mode: Mode,
}

impl AuctionForm {
    /// Parses form pairs; every error names the field and the value.
    pub fn parse(pairs: &[(String, String)], default_mode: Mode) -> Result<Self, ValidationError> {
        let mut call_sid = None;
        let mut zip = None;
        let mut service = None;
        let mut campaign = None;
        let mut source = None;
        let mut mode = default_mode;
        for (k, v) in pairs {
            let empty = v.trim().is_empty();
            match k.as_str() {
                "call_sid" => call_sid = Some(parse_call_sid(v)?),
                "zip" => {
                    zip = Some(Zip::parse(v).map_err(|e| ValidationError::new("zip", v, e.reason))?)
                }
                "service" => {
                    service = Some(
                        ServiceType::new(v)
                            .map_err(|e| ValidationError::new("service", v, e.reason))?,
                    )
                }
                "campaign" if !empty => {
                    campaign = Some(
                        CampaignId::new(v.trim())
                            .map_err(|e| ValidationError::new("campaign", v, e.reason))?,
                    )
                }
                "source" if !empty => {
                    source = Some(
                        SourceId::new(v.trim())
                            .map_err(|e| ValidationError::new("source", v, e.reason))?,
                    )
                }
                "campaign" | "source" => {}
                "mode" if !empty => mode = Mode::parse("mode", v)?,
                "mode" => {}
                other => {
                    return Err(ValidationError::new(
                        "form",
                        other,
                        "unknown field (call_sid, zip, service, campaign, source, mode)",
                    ))
                }
            }
        }
        let missing = |f: &'static str| ValidationError::new(f, "", "required");
        Ok(AuctionForm {
            call_sid: call_sid.ok_or_else(|| missing("call_sid"))?,
            zip: zip.ok_or_else(|| missing("zip"))?,
            service: service.ok_or_else(|| missing("service"))?,
            campaign,
            source,
            mode,
        })
    }
}

/// `None` when `call` is live: in the call log (its voice webhook arrived) and not
/// ended (no status callback said it is over, and no buyer leg completed). Otherwise
/// the `404` to answer: an auction for a call that is not on the line would bill buyers
/// for nothing.
async fn not_live(app: &App, call: &CallId) -> Result<Option<Response>, ApiError> {
    let sid = call.as_str();
    let ended = app
        .ended
        .lock()
        .map(|e| e.iter().any(|c| c == sid))
        .unwrap_or(false);
    let record = CallLog::record(&app.cfg.store, call)
        .await
        .map_err(|e| ApiError::Internal(format!("call log: {e}")))?;
    let reason = match record {
        None => "is not a call this server received",
        Some(_) if ended => "has ended",
        Some(r) if r.status == callbid_core::state::CallStatus::Completed => "has ended",
        Some(_) => return Ok(None),
    };
    Ok(Some(
        (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": format!("call {sid} {reason}"),
                "field": "call_sid",
                "value": sid,
            })),
        )
            .into_response(),
    ))
}

/// A new auction for a call with campaign and source left empty keeps the call's
/// latest earlier attempt's: the call log's record keeps the campaign it was given
/// (an empty one does not clear it), so the new auction is run and logged with it too
/// instead of pinging buyers without it next to a record that shows it.
fn inherit_tracking<'a>(form: &mut AuctionForm, earlier: impl Iterator<Item = &'a Session>) {
    let Some(last) = earlier.max_by_key(|s| s.attempt) else {
        return;
    };
    if form.campaign.is_none() {
        form.campaign = last
            .campaign
            .as_deref()
            .and_then(|c| CampaignId::new(c).ok());
    }
    if form.source.is_none() {
        form.source = last.source.as_deref().and_then(|c| SourceId::new(c).ok());
    }
}

async fn start_auction(
    State(app): State<Shared>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let mut form = AuctionForm::parse(&pairs, app.cfg.default_mode)?;
    let call_sid = form.call_sid.to_string();
    if let Some(refused) = not_live(&app, &form.call_sid).await? {
        return Ok(refused);
    }
    let caller = app.live.lock().ok().and_then(|l| {
        l.iter()
            .find(|c| c.call_sid == call_sid)
            .and_then(|c| c.from.as_deref().and_then(|f| PhoneNumber::parse(f).ok()))
    });
    let (session, given_up) = {
        let mut map = app
            .sessions
            .lock()
            .map_err(|_| ApiError::Internal("session table poisoned".into()))?;
        if let Some(busy) = map.values().find(|s| {
            s.call_sid == call_sid
                && matches!(
                    s.status,
                    SessionStatus::Running | SessionStatus::Forwarding | SessionStatus::Forwarded
                )
        }) {
            return Ok((
                StatusCode::CONFLICT,
                Json(json!({
                    "error": format!("call {call_sid} already has auction {} ({:?})", busy.id, busy.status),
                    "field": "call_sid",
                    "value": call_sid,
                })),
            )
                .into_response());
        }
        let attempt = 1 + map.values().filter(|s| s.call_sid == call_sid).count() as u32;
        inherit_tracking(&mut form, map.values().filter(|s| s.call_sid == call_sid));
        // This auction replaces the call's earlier win if it was not forwarded: that
        // winner's holds go back before the new auction reserves (a live-call slot's id
        // is per call and buyer, so the same buyer winning again reuses it).
        let mut given_up = Vec::new();
        for old in map.values_mut().filter(|s| s.call_sid == call_sid) {
            given_up.extend(give_up_win(old, SessionStatus::Superseded));
        }
        let s = Session::running(&form, attempt, Utc::now());
        map.insert(s.id.clone(), s.clone());
        given_up.extend(prune(&mut map));
        (s, given_up)
    };
    release_holds(&given_up).await;
    if let Ok(mut f) = app.forwarded.lock() {
        if let Ok(map) = app.sessions.lock() {
            f.retain(|_, id| map.contains_key(id));
        }
    }
    let mut ctx = CallContext::new(
        form.call_sid.clone(),
        form.zip,
        form.service.clone(),
        session.started_at,
    );
    if let Some(c) = caller {
        ctx = ctx.with_caller(c);
    }
    if let Some(c) = form.campaign.clone() {
        ctx = ctx.with_campaign(c);
    }
    if let Some(s) = form.source.clone() {
        ctx = ctx.with_source(s);
    }
    let a = app.clone();
    let id = session.id.clone();
    let attempt = session.attempt;
    tokio::spawn(async move {
        run_auction(a, id, attempt, ctx, form).await;
    });
    Ok((StatusCode::ACCEPTED, Json(session)).into_response())
}

/// Forgets the oldest settled auctions beyond [`KEPT_SESSIONS`] (running and forwarding
/// ones stay); returns the holds of forgotten wins that were never forwarded, to be
/// released (nothing would forward them any more).
fn prune(map: &mut HashMap<String, Session>) -> Vec<Hold> {
    let mut given_up = Vec::new();
    if map.len() <= KEPT_SESSIONS {
        return given_up;
    }
    let mut settled: Vec<(DateTime<Utc>, String)> = map
        .values()
        .filter(|s| !matches!(s.status, SessionStatus::Running | SessionStatus::Forwarding))
        .map(|s| (s.started_at, s.id.clone()))
        .collect();
    settled.sort();
    let excess = map.len() - KEPT_SESSIONS;
    for (_, id) in settled.into_iter().take(excess) {
        if let Some(mut s) = map.remove(&id) {
            given_up.extend(give_up_win(&mut s, SessionStatus::Ended));
        }
    }
    given_up
}

/// One buyer's answer as the agent page shows it.
fn bid_view(rec: &BuyerRecord) -> BidView {
    let latency_ms = rec
        .latency
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (reply, price, reason) = match &rec.reply {
        BuyerReply::NotPinged => (
            "not_pinged",
            None,
            match &rec.eligibility {
                Eligibility::Excluded { rule, reason } => Some(format!("{rule}: {reason}")),
                _ => None,
            },
        ),
        BuyerReply::Bid { bid } => ("bid", Some(bid.price), None),
        BuyerReply::InvalidBid { bid, reason } => {
            ("invalid_bid", Some(bid.price), Some(reason.clone()))
        }
        BuyerReply::NoBid { reason } => ("no_bid", None, Some(reason.clone())),
        BuyerReply::Failed { kind, message } => {
            ("failed", None, Some(format!("{kind}: {message}")))
        }
        BuyerReply::TimedOut => ("timed_out", None, Some("timed out".into())),
        BuyerReply::Cancelled => ("cancelled", None, Some("cancelled".into())),
        _ => ("other", None, None),
    };
    let accept_note = match &rec.accept {
        Some(AcceptRecord::Refused { reason }) => Some(format!("accept refused: {reason}")),
        Some(AcceptRecord::Failed { message, .. }) => Some(format!("accept failed: {message}")),
        _ => None,
    };
    BidView {
        buyer: rec.buyer.to_string(),
        reply,
        price: price.map(|p| p.amount.to_string()),
        currency: price.map(|p| p.currency.as_str().to_string()),
        score: rec.score.as_ref().map(|s| s.score.to_string()),
        reason: reason.or(accept_note),
        latency_ms,
    }
}

/// Runs the auction, logs every step, and forwards at once in auto mode.
///
/// The auction's events are written by `ivr_support::log_auction_attempt`, the IVR's
/// own function: the same kinds, fields and keys (a retry's keys end in `:{attempt}`),
/// so the dashboard shows both servers' calls alike.
async fn run_auction(app: Shared, id: String, attempt: u32, ctx: CallContext, form: AuctionForm) {
    let call = ctx.call_id.clone();
    app.log_for_session(
        &id,
        &call,
        ctx.received_at,
        format!("agent_form:{attempt}"),
        CallEventKind::Incoming {
            caller: None,
            dialed: None,
            campaign: form.campaign.clone(),
            source: form.source.clone(),
        },
    )
    .await;
    let outcome = app.cfg.auction.run(&ctx).await;
    if let Err(e) =
        log_auction_attempt(&app.cfg.store, &app.cfg.auction, &ctx, &outcome, attempt).await
    {
        app.session_log_error(&id, format!("cannot log auction {id} for {call}: {e}"));
    }
    let bids: Vec<BidView> = outcome.buyers.iter().map(bid_view).collect();
    let auto = match outcome.winner() {
        Some(w) => {
            // A win the call ended before (or that a newer auction replaced) is given up.
            let kept = app.with_session(&id, |s| {
                s.bids = bids;
                s.winner = Some(WinnerView {
                    buyer: w.buyer.to_string(),
                    price: w.bid.price.amount.to_string(),
                    currency: w.bid.price.currency.as_str().to_string(),
                    score: w.score.score.to_string(),
                    destination: w.destination.to_string(),
                });
                if s.status != SessionStatus::Running {
                    return false;
                }
                s.status = SessionStatus::Won;
                s.destination = Some(w.destination.clone());
                s.buyer_id = Some(w.buyer.clone());
                s.holds = w.holds.clone();
                s.bid = Some(w.bid.clone());
                s.ctx = Some(ctx.clone());
                true
            });
            if kept != Some(true) {
                release_holds(&w.holds).await;
            }
            kept == Some(true) && form.mode == Mode::Auto
        }
        None => {
            let reason = outcome
                .no_buyer_reason()
                .map_or_else(|| "no buyer".to_string(), |r| r.to_string());
            app.log_for_session(
                &id,
                &call,
                Utc::now(),
                format!("fallback:agent:{attempt}"),
                CallEventKind::Fallback {
                    kind: "agent".into(),
                    reason: format!("no buyer: {reason}"),
                },
            )
            .await;
            app.update_session(&id, |s| {
                s.bids = bids;
                if s.status == SessionStatus::Running {
                    s.status = SessionStatus::NoBuyer;
                }
                s.no_buyer_reason = Some(reason);
            });
            false
        }
    };
    if auto {
        if let Err(e) = bridge(&app, &id).await {
            eprintln!("agent_assist: auto forward of {id} failed: {}", e.1);
        }
    }
}

/// The TwiML that moves the caller to the buyer.
pub fn bridge_twiml(destination: &Destination, public_url: Option<&str>) -> String {
    let mut dial = Dial::new().timeout(DIAL_TIMEOUT).answer_on_bridge(true);
    if let Some(base) = public_url {
        dial = dial.action(format!("{}/twilio/dial-status", base.trim_end_matches('/')));
    }
    let dial = match destination {
        Destination::Sip(uri) => dial.sip(Sip::new(uri.to_string())),
        other => dial.number(Number::new(other.to_string())),
    };
    VoiceResponse::new().dial(dial).to_xml()
}

/// Bridges a won session's call; on failure returns the HTTP status and message.
async fn bridge(app: &App, id: &str) -> Result<Session, (StatusCode, String)> {
    // Claim the session: only a won (or failed) one can be forwarded, once at a time.
    let (call_sid, destination, buyer, attempt) = {
        let mut map = app.sessions.lock().map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "session table poisoned".to_string(),
            )
        })?;
        let s = map
            .get_mut(id)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no auction {id:?}")))?;
        let (Some(dest), Some(buyer)) = (s.destination.clone(), s.buyer_id.clone()) else {
            return Err((
                StatusCode::CONFLICT,
                format!("auction {id} has no winner to forward to ({:?})", s.status),
            ));
        };
        if !matches!(s.status, SessionStatus::Won | SessionStatus::ForwardFailed) {
            return Err((
                StatusCode::CONFLICT,
                format!("auction {id} cannot be forwarded now ({:?})", s.status),
            ));
        }
        s.status = SessionStatus::Forwarding;
        (s.call_sid.clone(), dest, buyer, s.attempt)
    };
    let twiml = bridge_twiml(&destination, app.cfg.public_url.as_deref());
    let result = app
        .cfg
        .twilio
        .calls()
        .update(&call_sid, &UpdateCall::twiml(twiml.clone()))
        .await;
    match result {
        Ok(_) => {
            if let Ok(call) = CallId::new(&call_sid) {
                app.log_for_session(
                    id,
                    &call,
                    Utc::now(),
                    format!("forwarded-{attempt}"),
                    CallEventKind::Forwarded { buyer, destination },
                )
                .await;
            }
            if let Ok(mut f) = app.forwarded.lock() {
                f.insert(call_sid.clone(), id.to_string());
            }
            app.update_session(id, |s| {
                s.status = SessionStatus::Forwarded;
                s.error = None;
                s.twiml = Some(twiml);
            })
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no auction {id:?}")))
        }
        Err(e) => {
            let message = format!("Twilio refused the call update: {e}");
            app.update_session(id, |s| {
                s.status = SessionStatus::ForwardFailed;
                s.error = Some(message.clone());
            });
            Err((StatusCode::BAD_GATEWAY, message))
        }
    }
}

async fn forward(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    bridge(&app, &id)
        .await
        .map(Json)
        .map_err(|(status, message)| {
            // The session rides along so the page can show what was tried.
            let session = app.session(&id);
            ApiError::Status(status, json!({ "error": message, "auction": session }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::state::{CapStore, MemoryCapStore, ReservationId};

    /// Auction `s{n}` (call `CA…{n}`, started `n` seconds after a fixed instant).
    fn session(n: usize, status: SessionStatus, holds: Vec<Hold>) -> Session {
        let pairs = [
            ("call_sid".to_string(), format!("CA{n:032x}")),
            ("zip".to_string(), "78701".to_string()),
            ("service".to_string(), "plumbing".to_string()),
        ];
        let form = AuctionForm::parse(&pairs, Mode::Manual).unwrap();
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000 + n as i64, 0).unwrap();
        let mut s = Session::running(&form, 1, at);
        s.id = format!("s{n}");
        s.status = status;
        s.holds = holds;
        s
    }

    #[test]
    fn forgetting_a_win_never_forwarded_gives_its_holds_back() {
        let caps: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
        let hold = |id: &str| Hold::new("caps", ReservationId(id.into()), caps.clone()).live();
        let mut map = HashMap::new();
        // The three oldest are forgotten: a win never forwarded, a forwarded call (its
        // slot goes back when its leg or the call ends) and a no-buyer auction.
        for (n, status, holds) in [
            (0, SessionStatus::Won, vec![hold("won")]),
            (1, SessionStatus::Forwarded, vec![hold("forwarded")]),
            (2, SessionStatus::NoBuyer, Vec::new()),
        ] {
            map.insert(format!("s{n}"), session(n, status, holds));
        }
        for n in 3..KEPT_SESSIONS + 3 {
            map.insert(format!("s{n}"), session(n, SessionStatus::Won, Vec::new()));
        }
        let given_up = prune(&mut map);
        assert_eq!(map.len(), KEPT_SESSIONS);
        assert!(["s0", "s1", "s2"].iter().all(|id| !map.contains_key(*id)));
        let ids: Vec<&str> = given_up.iter().map(|h| h.reservation.0.as_str()).collect();
        assert_eq!(ids, ["won"]);
    }

    #[test]
    fn only_a_win_not_yet_forwarded_is_given_up() {
        let caps: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
        let hold = Hold::new("caps", ReservationId("h".into()), caps).live();
        for (status, given_up) in [
            (SessionStatus::Running, true),
            (SessionStatus::Won, true),
            (SessionStatus::ForwardFailed, true),
            (SessionStatus::Forwarding, false),
            (SessionStatus::Forwarded, false),
        ] {
            let mut s = session(0, status, vec![hold.clone()]);
            let holds = give_up_win(&mut s, SessionStatus::Ended);
            assert_eq!(holds.len(), usize::from(given_up), "{status:?}");
            let now = if given_up {
                SessionStatus::Ended
            } else {
                status
            };
            assert_eq!(s.status, now);
            assert_eq!(s.holds.len(), usize::from(!given_up), "{status:?}");
        }
    }
}

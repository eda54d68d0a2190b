//! Outbound campaigns (seed 004) in the server: the operator API, the provider's
//! webhooks, the pacing loop and the campaigns page.
//!
//! Two routers over one [`CampaignApp`]:
//! - [`api_router`] (mount it behind operator access, [`crate::auth::protect`]):
//!   - `POST /api/campaigns/preview` (body: the contact list as CSV): how many rows are
//!     valid, and how many the suppression list and the calling windows would exclude if
//!     the campaign launched now;
//!   - `POST /api/campaigns?id=&name=&flow=&message=&number_column=&mode=` (body: CSV):
//!     creates a draft campaign. Every bad row is reported with its row number and column
//!     (`422`, nothing created: a list is loaded whole or not at all);
//!   - `GET /api/campaigns`, `GET /api/campaigns/{id}`: campaigns with their progress,
//!     the last pace, and completion / abandon rates;
//!   - `POST /api/campaigns/{id}/start|pause|resume|stop`: lifecycle (`409` when the
//!     transition is not allowed, e.g. resuming a stopped campaign);
//!   - `GET /campaigns`: the page.
//! - [`webhook_router`] (outside operator access; Twilio's callbacks are
//!   signature-checked when the app has a verifier):
//!   - `POST /campaigns/{id}/answer?number=&attempt=`: the TwiML an answered call runs
//!     (the recorded message, or a `<Redirect>` into the IVR and its auction);
//!   - `POST /campaigns/{id}/status?number=&attempt=`: the provider's status callback,
//!     parsed by the provider ([`OutboundProvider::parse_status_callback`]: Twilio's or
//!     Exotel's form) and applied idempotently.
//!
//! [`spawn_pacer`] runs the pacing loop: every tick, each running campaign gets one
//! [`CampaignRunner::tick`]. All state is in the [`CampaignStore`]: a restarted server,
//! or a second instance on the same database, continues the same campaigns, and the
//! store's atomic claims mean nobody is dialed twice. The pacer's own memory (completion
//! and abandon rates) is per instance and starts afresh after a restart.
//!
//! **Dependency**: `csv` (already in the tree through callbid-store) parses uploads, so
//! quoting and embedded commas follow RFC 4180.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callbid_core::campaign::{
    contacts_from_rows, preview, AnsweredFlow, CallbackUrls, CallerIdConfig, CallerIdPool,
    Campaign, CampaignRunner, CampaignStatus, CampaignStore, Contact, LaunchPreview, NumberRegion,
    OutboundProvider, Pacer, PacingMode, RateWindow, RowError, SuppressionList, TickReport,
};
use callbid_core::{CampaignId, PhoneNumber, ServiceType};
use callbid_twilio::signature::{WebhookVerifier, SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER};
use callbid_twilio::twiml::{Play, Redirect, Say, VoiceResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use crate::ivr::Twiml;

/// The largest contact list accepted in one upload (bytes).
pub const MAX_UPLOAD: usize = 16 * 1024 * 1024;

/// How many free agents (or lines, for a recorded-message campaign) there are now.
pub type FreeAgents = Arc<dyn Fn() -> u32 + Send + Sync>;

/// What the campaign routes need.
#[non_exhaustive]
pub struct CampaignSettings {
    /// The public URL of the routers' mount point (callbacks are built under it).
    pub public_url: String,
    /// Where campaigns and contacts live.
    pub store: Arc<dyn CampaignStore>,
    /// Who places the calls.
    pub provider: Arc<dyn OutboundProvider>,
    /// The provider's request limit (Exotel: 200 per minute; Twilio: its CPS).
    pub rate: RateWindow,
    /// Caller IDs to present: number, region, daily limit.
    pub caller_ids: Vec<(PhoneNumber, NumberRegion, u32)>,
    /// How caller IDs are picked.
    pub caller_id_config: CallerIdConfig,
    /// Numbers never to call.
    pub suppression: SuppressionList,
    /// Free agents now.
    pub free_agents: FreeAgents,
    /// Checks Twilio's signature on the webhooks (`None`: unchecked, e.g. Exotel, which
    /// does not sign its callbacks).
    pub verifier: Option<WebhookVerifier>,
}

impl CampaignSettings {
    /// Settings with no caller IDs, no suppression, the default caller-ID rules and a
    /// fixed number of free agents.
    pub fn new(
        public_url: impl Into<String>,
        store: Arc<dyn CampaignStore>,
        provider: Arc<dyn OutboundProvider>,
        rate: RateWindow,
        free_agents: u32,
    ) -> Self {
        CampaignSettings {
            public_url: public_url.into(),
            store,
            provider,
            rate,
            caller_ids: Vec::new(),
            caller_id_config: CallerIdConfig::default(),
            suppression: SuppressionList::new(),
            free_agents: Arc::new(move || free_agents),
            verifier: None,
        }
    }

    /// Adds a caller ID.
    pub fn caller_id(mut self, number: PhoneNumber, daily_limit: u32) -> Self {
        let region = NumberRegion::of_nanp(&number);
        self.caller_ids.push((number, region, daily_limit));
        self
    }

    /// Sets the suppression list.
    pub fn suppression(mut self, list: SuppressionList) -> Self {
        self.suppression = list;
        self
    }

    /// Sets the free-agent source.
    pub fn free_agents(mut self, f: FreeAgents) -> Self {
        self.free_agents = f;
        self
    }

    /// Checks Twilio signatures on the webhooks.
    pub fn verifier(mut self, v: WebhookVerifier) -> Self {
        self.verifier = Some(v);
        self
    }
}

impl std::fmt::Debug for CampaignSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignSettings")
            .field("public_url", &self.public_url)
            .field("provider", &self.provider.name())
            .field("caller_ids", &self.caller_ids.len())
            .finish_non_exhaustive()
    }
}

/// The campaign routes' shared state: the settings and one runner per campaign this
/// instance has dialed or received callbacks for.
#[derive(Debug)]
pub struct CampaignApp {
    settings: CampaignSettings,
    runners: Mutex<HashMap<String, Arc<CampaignRunner>>>,
    last_ticks: Mutex<HashMap<String, (DateTime<Utc>, TickReport)>>,
}

/// A campaign route's failure: the crate's one JSON error type.
pub type CampaignError = crate::error::ApiError;

trait CampaignErrors {
    fn not_found(id: &str) -> Self;
    fn store(e: impl std::fmt::Display) -> Self;
}

impl CampaignErrors for CampaignError {
    fn not_found(id: &str) -> Self {
        CampaignError::Status(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no campaign {id:?}"), "field": "campaign"}),
        )
    }
    fn store(e: impl std::fmt::Display) -> Self {
        CampaignError::Internal(format!("store: {e}"))
    }
}

type ApiResult<T> = Result<T, CampaignError>;

impl CampaignApp {
    /// The app over `settings`.
    pub fn new(settings: CampaignSettings) -> Arc<Self> {
        Arc::new(CampaignApp {
            settings,
            runners: Mutex::new(HashMap::new()),
            last_ticks: Mutex::new(HashMap::new()),
        })
    }

    /// The runner of campaign `id`, built from the store the first time this instance
    /// needs it (so a restarted instance or another one picks the campaign up).
    pub async fn runner(&self, id: &CampaignId) -> ApiResult<Arc<CampaignRunner>> {
        if let Some(r) = self.runners.lock().await.get(id.as_str()) {
            return Ok(r.clone());
        }
        let campaign = self
            .settings
            .store
            .campaign(id)
            .await
            .map_err(CampaignError::store)?
            .ok_or_else(|| CampaignError::not_found(id.as_str()))?;
        let runner = Arc::new(self.build_runner(campaign)?);
        let mut runners = self.runners.lock().await;
        Ok(runners
            .entry(id.as_str().to_owned())
            .or_insert(runner)
            .clone())
    }

    fn build_runner(&self, campaign: Campaign) -> ApiResult<CampaignRunner> {
        let s = &self.settings;
        let pacer = Pacer::new(campaign.pacer.clone(), s.rate.clone())
            .map_err(|e| CampaignError::bad(e.field, &e.value, &e.reason))?;
        let mut ids = CallerIdPool::new(s.caller_id_config.clone());
        for (n, region, limit) in &s.caller_ids {
            ids.add(n.clone(), region.clone(), *limit)
                .map_err(|e| CampaignError::bad(e.field, &e.value, &e.reason))?;
        }
        let base = s.public_url.trim_end_matches('/');
        let urls = CallbackUrls {
            flow: format!(
                "{base}/campaigns/{{campaign}}/answer?number={{number}}&attempt={{attempt}}"
            ),
            status: format!(
                "{base}/campaigns/{{campaign}}/status?number={{number}}&attempt={{attempt}}&cid={{caller_id}}"
            ),
        };
        Ok(CampaignRunner::new(
            campaign,
            s.store.clone(),
            s.provider.clone(),
            pacer,
            ids,
            s.suppression.clone(),
            urls,
        ))
    }

    /// One pacing round over every running campaign at `now`. Returns what each did.
    pub async fn tick_all(&self, now: DateTime<Utc>) -> ApiResult<Vec<(CampaignId, TickReport)>> {
        let store = &self.settings.store;
        let running: Vec<Campaign> = store
            .campaigns()
            .await
            .map_err(CampaignError::store)?
            .into_iter()
            .filter(|c| c.status == CampaignStatus::Running)
            .collect();
        let mut out = Vec::new();
        for c in running {
            let report = self.tick_one(&c.id, now).await?;
            out.push((c.id, report));
        }
        Ok(out)
    }

    async fn tick_one(&self, id: &CampaignId, now: DateTime<Utc>) -> ApiResult<TickReport> {
        let runner = self.runner(id).await?;
        let progress = self
            .settings
            .store
            .progress(id)
            .await
            .map_err(CampaignError::store)?;
        runner
            .sync_ringing(u32::try_from(progress.dialing).unwrap_or(u32::MAX))
            .await;
        let report = runner
            .tick(now, (self.settings.free_agents)())
            .await
            .map_err(CampaignError::store)?;
        self.last_ticks
            .lock()
            .await
            .insert(id.as_str().to_owned(), (now, report.clone()));
        Ok(report)
    }

    async fn summary(&self, c: &Campaign, now: DateTime<Utc>) -> ApiResult<CampaignSummary> {
        let progress = self
            .settings
            .store
            .progress(&c.id)
            .await
            .map_err(CampaignError::store)?;
        let runner = self.runner(&c.id).await?;
        let (answer, completion, abandon) = runner.rates(now).await;
        let last = self.last_ticks.lock().await.get(c.id.as_str()).cloned();
        let caller_ids = runner
            .caller_id_rates()
            .await
            .into_iter()
            .map(|(n, rate)| CallerIdRow {
                number: n.number.as_str().to_owned(),
                attempts: n.attempts,
                answered: n.answered,
                answer_rate: rate.to_string(),
            })
            .collect();
        Ok(CampaignSummary {
            id: c.id.as_str().to_owned(),
            name: c.name.clone(),
            status: c.status,
            flow: c.flow.clone(),
            mode: c.pacer.mode,
            progress: serde_json::to_value(&progress).unwrap_or_default(),
            answer_rate: answer.to_string(),
            completion_rate: completion.to_string(),
            abandon_rate_30d: abandon.to_string(),
            last_tick: last.map(|(at, r)| LastTick {
                at,
                allowed: r.allowed,
                placed: r.placed,
                refused: r.refused,
            }),
            caller_ids,
        })
    }
}

/// A campaign as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignSummary {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its lifecycle state.
    pub status: CampaignStatus,
    /// What an answered call does.
    pub flow: AnsweredFlow,
    /// Progressive or predictive.
    pub mode: PacingMode,
    /// Contacts by state ([`callbid_core::campaign::store::CampaignProgress`]).
    pub progress: serde_json::Value,
    /// Live answers over ended calls seen by this instance (a decimal fraction).
    pub answer_rate: String,
    /// Completion (pickup) rate over the recent sample (a decimal fraction).
    pub completion_rate: String,
    /// Abandoned over live answers in the rolling 30 days (a decimal fraction).
    pub abandon_rate_30d: String,
    /// The last pacing round on this instance.
    pub last_tick: Option<LastTick>,
    /// Each caller ID: ended calls, person answers, smoothed answer rate (learned by this
    /// instance from the status callbacks it received).
    pub caller_ids: Vec<CallerIdRow>,
}

/// One caller ID's record.
#[derive(Debug, Clone, Serialize)]
pub struct CallerIdRow {
    /// The number presented.
    pub number: String,
    /// Calls placed with it that ended.
    pub attempts: u64,
    /// Of those, answered by a person.
    pub answered: u64,
    /// Smoothed answer rate (a decimal fraction).
    pub answer_rate: String,
}

/// One pacing round.
#[derive(Debug, Clone, Serialize)]
pub struct LastTick {
    /// When.
    pub at: DateTime<Utc>,
    /// Calls the pacer allowed.
    pub allowed: u32,
    /// Calls placed.
    pub placed: u32,
    /// Calls the provider refused.
    pub refused: u32,
}

/// Runs [`CampaignApp::tick_all`] every `every` until the task is aborted. A failing
/// round is logged and the next one runs.
pub fn spawn_pacer(app: Arc<CampaignApp>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            if let Err(e) = app.tick_all(Utc::now()).await {
                eprintln!("ERROR campaign: pacing round failed: {}", e);
            }
        }
    })
}

// ---------------------------------------------------------------------------------------
// Operator API

/// The operator API and the page (mount behind operator access).
pub fn api_router(app: Arc<CampaignApp>) -> Router {
    Router::new()
        .route("/campaigns", get(page))
        .route("/api/campaigns", get(list).post(create))
        .route("/api/campaigns/preview", post(preview_upload))
        .route("/api/campaigns/{id}", get(one))
        .route("/api/campaigns/{id}/report", get(report))
        .route("/api/campaigns/{id}/{action}", post(lifecycle))
        .with_state(app)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("campaign/campaigns.html"))
}

/// How an upload is read.
#[derive(Debug, Deserialize)]
struct UploadParams {
    id: Option<String>,
    name: Option<String>,
    /// `message` (default), `ivr` or `agents`.
    flow: Option<String>,
    /// For `flow=message`: the text to say, or an https URL to play.
    message: Option<String>,
    /// For `flow=ivr`: the service sold when a row has none.
    service: Option<String>,
    /// For `flow=agents`: the agent pool's name.
    pool: Option<String>,
    /// The column holding the number (default `number`).
    number_column: Option<String>,
    /// `predictive` (default) or `progressive`.
    mode: Option<String>,
}

fn parse_csv(body: &[u8]) -> ApiResult<Vec<Vec<(String, String)>>> {
    if body.len() > MAX_UPLOAD {
        return Err(CampaignError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": format!("contact list over {MAX_UPLOAD} bytes")}),
        ));
    }
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body);
    let headers: Vec<String> = rd
        .headers()
        .map_err(|e| CampaignError::bad("csv", "header", &e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| {
            CampaignError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": format!("row {}: {e}", i + 1), "errors": [{"row": i + 1, "column": "", "error": e.to_string()}]}),
            )
        })?;
        rows.push(
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_owned))
                .collect(),
        );
    }
    Ok(rows)
}

fn row_errors(errors: &[RowError]) -> CampaignError {
    let list: Vec<_> = errors
        .iter()
        .map(|e| json!({"row": e.row, "column": e.column, "error": e.error.to_string()}))
        .collect();
    CampaignError::Status(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({
            "error": format!("{} row(s) are invalid; nothing was created", errors.len()),
            "errors": list,
        }),
    )
}

fn flow_of(p: &UploadParams) -> ApiResult<AnsweredFlow> {
    match p.flow.as_deref().unwrap_or("message") {
        "message" => {
            let text = p.message.clone().unwrap_or_default();
            if text.trim().is_empty() {
                return Err(CampaignError::bad(
                    "message",
                    "",
                    "a message campaign needs the text to say or a URL to play",
                ));
            }
            Ok(AnsweredFlow::Message { text_or_url: text })
        }
        "ivr" => {
            let default_service = match p.service.as_deref() {
                None | Some("") => None,
                Some(s) => Some(
                    ServiceType::new(s)
                        .map_err(|e| CampaignError::bad("service", s, &e.to_string()))?,
                ),
            };
            Ok(AnsweredFlow::IvrAuction { default_service })
        }
        "agents" => match p.pool.as_deref() {
            Some(pool) if !pool.trim().is_empty() => Ok(AnsweredFlow::AgentPool {
                pool: pool.trim().to_owned(),
            }),
            other => Err(CampaignError::bad(
                "pool",
                other.unwrap_or(""),
                "an agents campaign needs the pool's name",
            )),
        },
        other => Err(CampaignError::bad(
            "flow",
            other,
            "must be message, ivr or agents",
        )),
    }
}

fn mode_of(p: &UploadParams) -> ApiResult<PacingMode> {
    match p.mode.as_deref().unwrap_or("predictive") {
        "predictive" => Ok(PacingMode::Predictive),
        "progressive" => Ok(PacingMode::Progressive),
        other => Err(CampaignError::bad(
            "mode",
            other,
            "must be predictive or progressive",
        )),
    }
}

fn contacts_of(p: &UploadParams, body: &[u8]) -> ApiResult<Vec<Contact>> {
    let rows = parse_csv(body)?;
    if rows.is_empty() {
        return Err(CampaignError::bad(
            "csv",
            "",
            "the contact list has no rows",
        ));
    }
    let column = p.number_column.as_deref().unwrap_or("number");
    if !rows[0].iter().any(|(k, _)| k == column) {
        let have: Vec<&str> = rows[0].iter().map(|(k, _)| k.as_str()).collect();
        return Err(CampaignError::bad(
            "number_column",
            column,
            &format!("no such column (the header has {have:?})"),
        ));
    }
    let (contacts, errors) = contacts_from_rows(&rows, column);
    if !errors.is_empty() {
        return Err(row_errors(&errors));
    }
    Ok(contacts)
}

async fn create(
    State(app): State<Arc<CampaignApp>>,
    Query(p): Query<UploadParams>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<CampaignSummary>)> {
    let id_text =
        p.id.clone()
            .unwrap_or_else(|| format!("cmp-{}", Utc::now().format("%Y%m%d%H%M%S%3f")));
    let id = CampaignId::new(&id_text)
        .map_err(|e| CampaignError::bad("id", &id_text, &e.to_string()))?;
    let name = p.name.clone().unwrap_or_else(|| id_text.clone());
    let mut campaign = Campaign::new(id.clone(), name, flow_of(&p)?);
    campaign.pacer.mode = mode_of(&p)?;
    let mut contacts = contacts_of(&p, &body)?;
    // Numbers on the suppression list are final from the start: never dialed, and the
    // campaign can finish without them.
    for c in &mut contacts {
        if let Some(reason) = app.settings.suppression.reason(&c.number) {
            let event = callbid_core::campaign::ContactEvent::Suppressed {
                reason: reason.to_owned(),
            };
            c.apply(&event, &campaign.retry);
        }
    }
    let store = &app.settings.store;
    if store
        .campaign(&id)
        .await
        .map_err(CampaignError::store)?
        .is_some()
    {
        return Err(CampaignError::Status(
            StatusCode::CONFLICT,
            json!({"error": format!("campaign {id_text:?} already exists"), "field": "id"}),
        ));
    }
    // The check above answers the common case; two uploads of one id at the same moment
    // are decided by the store, which refuses the second atomically.
    store
        .create(&campaign, &contacts)
        .await
        .map_err(|e| match e {
            callbid_core::StateError::Invalid(v) if v.field == "campaign" => CampaignError::Status(
                StatusCode::CONFLICT,
                json!({"error": format!("campaign {id_text:?} already exists"), "field": "id"}),
            ),
            other => CampaignError::store(other),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(app.summary(&campaign, Utc::now()).await?),
    ))
}

/// What a launch now would do with an uploaded list.
#[derive(Debug, Serialize)]
struct PreviewAnswer {
    rows: usize,
    invalid: Vec<serde_json::Value>,
    #[serde(flatten)]
    launch: LaunchPreview,
    at: DateTime<Utc>,
}

async fn preview_upload(
    State(app): State<Arc<CampaignApp>>,
    Query(p): Query<UploadParams>,
    body: Bytes,
) -> ApiResult<Json<PreviewAnswer>> {
    let rows = parse_csv(&body)?;
    let column = p.number_column.as_deref().unwrap_or("number");
    let (contacts, errors) = contacts_from_rows(&rows, column);
    let now = Utc::now();
    let rules = callbid_core::campaign::CallingRules::default();
    let launch = preview(
        contacts.iter().map(|c| &c.number),
        &rules,
        &app.settings.suppression,
        now,
    );
    Ok(Json(PreviewAnswer {
        rows: rows.len(),
        invalid: errors
            .iter()
            .map(|e| json!({"row": e.row, "column": e.column, "error": e.error.to_string()}))
            .collect(),
        launch,
        at: now,
    }))
}

async fn list(State(app): State<Arc<CampaignApp>>) -> ApiResult<Json<Vec<CampaignSummary>>> {
    let now = Utc::now();
    let all = app
        .settings
        .store
        .campaigns()
        .await
        .map_err(CampaignError::store)?;
    let mut out = Vec::with_capacity(all.len());
    for c in &all {
        out.push(app.summary(c, now).await?);
    }
    Ok(Json(out))
}

fn campaign_id(id: &str) -> ApiResult<CampaignId> {
    CampaignId::new(id).map_err(|e| CampaignError::bad("campaign", id, &e.to_string()))
}

async fn one(
    State(app): State<Arc<CampaignApp>>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignSummary>> {
    let cid = campaign_id(&id)?;
    let c = app
        .settings
        .store
        .campaign(&cid)
        .await
        .map_err(CampaignError::store)?
        .ok_or_else(|| CampaignError::not_found(&id))?;
    Ok(Json(app.summary(&c, Utc::now()).await?))
}

/// Answer rates per region and attempts ending per hour, from the contacts' state.
#[derive(Debug, Serialize)]
struct Report {
    /// Per US state (`unknown` when the area code has none): attempts and live answers.
    regions: Vec<RegionRow>,
    /// Contacts whose last attempt ended in each hour (UTC, RFC 3339 hour start).
    hourly: Vec<HourRow>,
}

#[derive(Debug, Serialize)]
struct RegionRow {
    region: String,
    attempts: u64,
    answered: u64,
    answer_rate: String,
}

#[derive(Debug, Serialize)]
struct HourRow {
    hour: String,
    ended: u64,
}

fn report_of(contacts: &[Contact]) -> Report {
    use callbid_core::campaign::OutcomeKind;
    use std::collections::BTreeMap;
    let mut regions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut hourly: BTreeMap<String, u64> = BTreeMap::new();
    for c in contacts {
        let region = NumberRegion::of_nanp(&c.number)
            .state
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        let e = regions.entry(region).or_default();
        e.0 += u64::from(c.attempts);
        e.1 += u64::from(
            c.outcomes
                .get(&OutcomeKind::Completed)
                .copied()
                .unwrap_or(0),
        ) + u64::from(
            c.outcomes
                .get(&OutcomeKind::Abandoned)
                .copied()
                .unwrap_or(0),
        );
        if let Some(at) = c.last_ended {
            *hourly
                .entry(at.format("%Y-%m-%dT%H:00:00Z").to_string())
                .or_default() += 1;
        }
    }
    Report {
        regions: regions
            .into_iter()
            .filter(|(_, (a, _))| *a > 0)
            .map(|(region, (attempts, answered))| RegionRow {
                answer_rate: (rust_decimal::Decimal::from(answered)
                    / rust_decimal::Decimal::from(attempts))
                .round_dp(4)
                .to_string(),
                region,
                attempts,
                answered,
            })
            .collect(),
        hourly: hourly
            .into_iter()
            .map(|(hour, ended)| HourRow { hour, ended })
            .collect(),
    }
}

async fn report(
    State(app): State<Arc<CampaignApp>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Report>> {
    let cid = campaign_id(&id)?;
    let contacts = match app.settings.store.contacts(&cid).await {
        Ok(c) => c,
        Err(callbid_core::StateError::Invalid(_)) => return Err(CampaignError::not_found(&id)),
        Err(e) => return Err(CampaignError::store(e)),
    };
    Ok(Json(report_of(&contacts)))
}

async fn lifecycle(
    State(app): State<Arc<CampaignApp>>,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<CampaignSummary>> {
    let next = match action.as_str() {
        "start" | "resume" => CampaignStatus::Running,
        "pause" => CampaignStatus::Paused,
        "stop" => CampaignStatus::Stopped,
        other => {
            return Err(CampaignError::Status(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no action {other:?} (start, pause, resume, stop)"), "field": "action"}),
            ))
        }
    };
    let cid = campaign_id(&id)?;
    let store = &app.settings.store;
    let before = store
        .campaign(&cid)
        .await
        .map_err(CampaignError::store)?
        .ok_or_else(|| CampaignError::not_found(&id))?;
    if !store
        .set_status(&cid, next)
        .await
        .map_err(CampaignError::store)?
    {
        return Err(CampaignError::Status(
            StatusCode::CONFLICT,
            json!({"error": format!("campaign {id:?} is {:?}: cannot {action}", before.status), "field": "action"}),
        ));
    }
    let after = store
        .campaign(&cid)
        .await
        .map_err(CampaignError::store)?
        .ok_or_else(|| CampaignError::not_found(&id))?;
    Ok(Json(app.summary(&after, Utc::now()).await?))
}

// ---------------------------------------------------------------------------------------
// Provider webhooks

/// The provider's webhooks (outside operator access).
pub fn webhook_router(app: Arc<CampaignApp>) -> Router {
    Router::new()
        .route("/campaigns/{id}/answer", post(answer))
        .route("/campaigns/{id}/status", post(status))
        .route_layer(axum::middleware::from_fn(crate::metrics::time_webhooks))
        .with_state(app)
}

/// Which attempt a callback is about (from the URL the runner built).
#[derive(Debug, Deserialize)]
struct AttemptParams {
    number: Option<String>,
    attempt: Option<String>,
    /// The caller ID presented (status callbacks only).
    cid: Option<String>,
}

struct Attempt {
    campaign: CampaignId,
    number: PhoneNumber,
    attempt: u32,
}

fn attempt_of(id: &str, q: &AttemptParams) -> ApiResult<Attempt> {
    let number = q.number.as_deref().unwrap_or("");
    let number = PhoneNumber::parse_field("number", number)
        .map_err(|e| CampaignError::bad("number", number, &e.to_string()))?;
    let attempt_text = q.attempt.as_deref().unwrap_or("");
    let attempt = attempt_text
        .parse::<u32>()
        .ok()
        .filter(|a| *a >= 1)
        .ok_or_else(|| {
            CampaignError::bad("attempt", attempt_text, "must be a whole number from 1")
        })?;
    Ok(Attempt {
        campaign: campaign_id(id)?,
        number,
        attempt,
    })
}

fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    callbid_twilio::webhook::form_pairs(body)
}

fn check_signature(
    app: &CampaignApp,
    headers: &HeaderMap,
    path_and_query: &str,
    body: &[u8],
) -> ApiResult<()> {
    let Some(v) = &app.settings.verifier else {
        return Ok(());
    };
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    v.verify(
        path_and_query,
        h(SIGNATURE_HEADER),
        h(SIGNATURE_SETTINGS_HEADER),
        body,
        true,
    )
    .map_err(|e| {
        CampaignError::Status(
            StatusCode::FORBIDDEN,
            json!({"error": format!("invalid Twilio signature: {e}")}),
        )
    })
}

async fn status(
    State(app): State<Arc<CampaignApp>>,
    Path(id): Path<String>,
    Query(q): Query<AttemptParams>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    check_signature(&app, &headers, pq, &body)?;
    let a = attempt_of(&id, &q)?;
    let fields = form_fields(&body);
    let call = app
        .settings
        .provider
        .parse_status_callback(&fields)
        .map_err(|e| CampaignError::bad("status callback", "", &e.to_string()))?;
    let runner = app.runner(&a.campaign).await?;
    let applied = runner
        .on_status(&a.number, a.attempt, &call, false, Utc::now())
        .await
        .map_err(|e| match e {
            callbid_core::StateError::Invalid(v) => {
                CampaignError::bad(v.field, &v.value, &v.reason)
            }
            other => CampaignError::store(other),
        })?;
    if applied == callbid_core::campaign::ApplyResult::Changed {
        learn_caller_id(&runner, q.cid.as_deref(), &call).await;
    }
    Ok(Json(json!({"applied": format!("{applied:?}")})))
}

/// Feeds a final outcome to the caller-ID pool's answer rates (a missing or bad `cid`
/// only skips the learning: the callback itself was applied).
async fn learn_caller_id(
    runner: &CampaignRunner,
    cid: Option<&str>,
    call: &callbid_core::campaign::ProviderCall,
) {
    use callbid_core::campaign::CallOutcome;
    let Some(outcome) = call.outcome() else {
        return;
    };
    let Some(cid) = cid.and_then(|c| PhoneNumber::parse(c).ok()) else {
        return;
    };
    let person =
        matches!(outcome, CallOutcome::Completed { answered_by, .. } if answered_by.is_live());
    runner.record_caller_id(&cid, person).await;
}

async fn answer(
    State(app): State<Arc<CampaignApp>>,
    Path(id): Path<String>,
    Query(q): Query<AttemptParams>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if let Err(e) = check_signature(&app, &headers, pq, &body) {
        return e.into_response();
    }
    // Whatever goes wrong below, the callee hears something and the call ends cleanly.
    let sorry = || {
        Twiml::from(
            VoiceResponse::new()
                .say(Say::new("Sorry, we cannot continue this call. Goodbye."))
                .hangup(),
        )
        .into_response()
    };
    let Ok(a) = attempt_of(&id, &q) else {
        return sorry();
    };
    let campaign = match app.settings.store.campaign(&a.campaign).await {
        Ok(Some(c)) => c,
        _ => return sorry(),
    };
    let base = app.settings.public_url.trim_end_matches('/');
    Twiml::from(flow_twiml(&campaign.flow, base)).into_response()
}

/// The TwiML an answered campaign call runs.
fn flow_twiml(flow: &AnsweredFlow, base: &str) -> VoiceResponse {
    match flow {
        AnsweredFlow::Message { text_or_url } if text_or_url.starts_with("https://") => {
            VoiceResponse::new()
                .play(Play::new(text_or_url.clone()))
                .hangup()
        }
        AnsweredFlow::Message { text_or_url } => VoiceResponse::new()
            .say(Say::new(text_or_url.clone()))
            .hangup(),
        // The IVR asks for the ZIP and service, then the auction sells the call. An
        // agent-pool campaign goes the same way until the pool has its own route: the
        // IVR's fallback chain reaches the in-house team.
        AnsweredFlow::IvrAuction { .. } | AnsweredFlow::AgentPool { .. } => {
            VoiceResponse::new().redirect(Redirect::new(format!("{base}/voice")))
        }
        _ => VoiceResponse::new().say(Say::new("Goodbye.")).hangup(),
    }
}

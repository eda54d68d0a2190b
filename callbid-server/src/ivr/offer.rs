//! Offering a call to an agent pool (issue 10, seed 001): every available agent of the
//! lowest tier is rung at once, each leg with a whisper, and the first to press `1` (or
//! to click Accept in the agent desk) wins the offer's compare-and-set.
//!
//! | route | Twilio sends | answers |
//! |---|---|---|
//! | `POST /ivr/offer/whisper?offer=O&agent=A` | an agent's leg answered (`<Number url>`) | `<Gather>` "a plumbing call from 7 8 7 0 1, press 1" |
//! | `POST /ivr/offer/press?offer=O&agent=A` | the agent's digit | empty (the leg is bridged), or "taken" + hangup |
//! | `POST /ivr/offer/dial-result?offer=O&via=…` | the caller's `<Dial>` action | goodbye, the next tier's `<Dial>`, or the way back to the fallback |
//! | `POST /ivr/offer/connect?offer=O&via=…` | the caller's call, redirected by the REST client after a desk accept | `<Dial>` the winner |
//!
//! `via` is `auction` when the pool won the auction (its bid is settled like any
//! buyer's through `/ivr/dial-result`) or `fallback` with `step=N` when the IVR's
//! `in_house` step offered the call (`/ivr/fallback/next?step=N` moves on).
//!
//! Every decision is made by the [`AgentStore`], so the legs' webhooks may reach any
//! instance, late or twice: a repeated press by the winner is still `Won`, every other
//! press is `Taken`, `Expired` or `CallerGone`, and answering a phone accepts nothing
//! (voicemail never presses `1`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use callbid_core::agents::{
    AcceptOutcome, AgentId, AgentPoolId, AgentStore, LegOutcome, Needs, Offer, OfferId,
    OfferRequest, OfferState, Presence, PresenceChange, Reach, MAX_DIAL_LEGS,
};
use callbid_core::state::CallEventKind;
use callbid_core::{BuyerId, CallId, StateError};
use callbid_twilio::rest::Client as TwilioClient;
use callbid_twilio::twiml::{
    Client, Dial, Gather, GatherInput, Number, Redirect, Sip, VoiceResponse,
};
use callbid_twilio::webhook::{DialActionRequest, DialCallStatus, GatherRequest, VoiceRequest};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{call_id, connected, query, say, App, IvrError, IvrResult, Signed, Twiml};
use crate::settle::log;

/// The agent pool the IVR offers calls to: its store and its id.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentOffers {
    /// Pools, presence and offers (shared by every instance).
    pub store: Arc<dyn AgentStore>,
    /// The pool calls are offered to.
    pub pool: AgentPoolId,
    /// The buyer id the pool bids under ([`callbid_core::agents::AgentPoolBuyer`]): when
    /// it wins an auction, the call is offered to the pool instead of dialled.
    pub buyer: BuyerId,
    /// The REST client an Accept click in the agent desk moves the caller's call with
    /// (`Calls/{CallSid}` update with `Url` = `/ivr/offer/connect`); without one the desk
    /// shows offers but refuses clicks (agents accept by pressing `1`).
    pub twilio: Option<TwilioClient>,
}

impl AgentOffers {
    /// Offers to `pool` in `store`; the pool bids in auctions as `buyer`.
    pub fn new(store: Arc<dyn AgentStore>, pool: AgentPoolId, buyer: BuyerId) -> Self {
        AgentOffers {
            store,
            pool,
            buyer,
            twilio: None,
        }
    }

    /// With the REST client desk accepts redirect the caller's call with.
    pub fn with_twilio(mut self, client: TwilioClient) -> Self {
        self.twilio = Some(client);
        self
    }
}

/// Where an offer came from, and so where the caller goes when nobody accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The pool won the auction.
    Auction,
    /// The IVR's fallback step `N` (`in_house`).
    Fallback(usize),
}

impl Via {
    fn query(self) -> String {
        match self {
            Via::Auction => "via=auction".to_owned(),
            Via::Fallback(step) => format!("via=fallback&step={step}"),
        }
    }

    /// The `via` an offer was started with, from its stored context (see [`start`]).
    pub(crate) fn from_context(context: &str) -> Option<Via> {
        match context.strip_prefix("via=")? {
            "auction" => Some(Via::Auction),
            rest => {
                let step = rest.strip_prefix("fallback&step=")?;
                step.parse().ok().map(Via::Fallback)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct OfferQuery {
    offer: String,
    via: String,
    #[serde(default)]
    step: Option<usize>,
    /// The round the `<Dial>` rang (absent: any).
    #[serde(default)]
    round: Option<u32>,
}

impl OfferQuery {
    fn parse(&self) -> IvrResult<(OfferId, Via)> {
        let offer =
            OfferId::new(&self.offer).map_err(|e| IvrError(anyhow::anyhow!("query offer: {e}")))?;
        let via = match (self.via.as_str(), self.step) {
            ("auction", _) => Via::Auction,
            ("fallback", Some(step)) => Via::Fallback(step),
            (v, s) => {
                return Err(IvrError(anyhow::anyhow!(
                    "query via={v:?} step={s:?}: expected via=auction or via=fallback&step=N"
                )))
            }
        };
        Ok((offer, via))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LegQuery {
    offer: String,
    agent: String,
}

impl LegQuery {
    fn parse(&self) -> IvrResult<(OfferId, AgentId)> {
        let offer =
            OfferId::new(&self.offer).map_err(|e| IvrError(anyhow::anyhow!("query offer: {e}")))?;
        let agent =
            AgentId::new(&self.agent).map_err(|e| IvrError(anyhow::anyhow!("query agent: {e}")))?;
        Ok((offer, agent))
    }
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn offers(app: &App) -> IvrResult<&AgentOffers> {
    app.stores
        .agents
        .as_ref()
        .ok_or_else(|| IvrError(anyhow::anyhow!("no agent pool is configured")))
}

/// What the call needs, from its log (ZIP and service are known once it was routed).
async fn needs_of(app: &App, call: &CallId) -> IvrResult<Option<Needs>> {
    let Some(record) = app.stores.log.record(call).await? else {
        return Ok(None);
    };
    let (Some(zip), Some(service)) = (record.zip, record.service) else {
        return Ok(None);
    };
    let mut needs = Needs::new(service, zip);
    if let Some(c) = record.caller {
        needs = needs.with_caller(c);
    }
    Ok(Some(needs))
}

/// Offers the call to the pool. `None` when nobody in the pool can take it now (or the
/// call's ZIP and service are not known yet): the caller goes on as without a pool.
pub(crate) async fn start(
    app: &App,
    call: &CallId,
    sid: &str,
    via: Via,
) -> IvrResult<Option<Twiml>> {
    let Some(agents) = app.stores.agents.as_ref() else {
        return Ok(None);
    };
    let Some(needs) = needs_of(app, call).await? else {
        return Ok(None);
    };
    let id = OfferId::new(sid).map_err(|e| IvrError(anyhow::anyhow!("CallSid: {e}")))?;
    let request = OfferRequest::new(id, agents.pool.clone(), call.clone(), needs, Utc::now())
        .with_context(via.query());
    let offer = agents.store.start_offer(&request).await?;
    if matches!(offer.state, OfferState::Fallback { .. }) {
        log_decision(app, &offer).await?;
        return Ok(None);
    }
    Ok(Some(answer(app, &offer, via).await?))
}

/// The caller's TwiML for where the offer stands.
async fn answer(app: &App, offer: &Offer, via: Via) -> IvrResult<Twiml> {
    Ok(match &offer.state {
        OfferState::Offered { .. } => ring(app, offer, via),
        OfferState::Accepted { agent, .. } => connect_to(app, offer, agent, via)?,
        OfferState::Fallback { .. } => {
            log_decision(app, offer).await?;
            back_to_fallback(app, via)
        }
        _ => VoiceResponse::new().hangup().into(),
    })
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn leg_url(app: &App, route: &str, offer: &OfferId, agent: &AgentId) -> String {
    format!(
        "{}/ivr/offer/{route}?offer={}&agent={}",
        app.config.public_url,
        enc(offer.as_str()),
        enc(agent.as_str())
    )
}

pub(crate) fn caller_url(app: &App, route: &str, offer: &OfferId, via: Via) -> String {
    format!(
        "{}/ivr/offer/{route}?offer={}&{}",
        app.config.public_url,
        enc(offer.as_str()),
        via.query()
    )
}

/// Seconds the round's `<Dial>` rings: until the round's end, at least 5, and never
/// longer than the round itself lasts (`until` − the round's start). A round that
/// follows one ended early (every leg busy, or a voicemail hung up) starts at the old
/// round's end, ahead of the clock; without the cap its `<Dial>` would ring for two
/// rounds.
fn ring_secs(offer: &Offer, until: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
    let started = offer
        .current_legs()
        .map(|l| l.offered_at)
        .max()
        .unwrap_or(now);
    let round = (until - started).num_seconds();
    let left = (until - now).num_seconds().min(round).max(5);
    u32::try_from(left).unwrap_or(u32::MAX)
}

/// One `<Dial>` ringing the round's legs (at most [`MAX_DIAL_LEGS`]), each with a whisper.
fn ring(app: &App, offer: &Offer, via: Via) -> Twiml {
    let (round, until) = offer
        .round()
        .map_or_else(|| (0, Utc::now()), |r| (r.1, r.2));
    let action = format!(
        "{}&round={round}",
        caller_url(app, "dial-result", &offer.id, via)
    );
    let mut dial = Dial::new()
        .action(action)
        .timeout(ring_secs(offer, until, Utc::now()))
        .answer_on_bridge(true);
    if let Some(c) = &offer.needs.caller {
        dial = dial.caller_id(c.as_str());
    }
    let ringing = offer
        .current_legs()
        .filter(|l| l.outcome == LegOutcome::Ringing)
        .take(usize::from(MAX_DIAL_LEGS));
    for leg in ringing {
        let url = leg_url(app, "whisper", &offer.id, &leg.agent);
        dial = add_leg(dial, &leg.reach, Some(url));
    }
    VoiceResponse::new()
        .say(say(
            app,
            "Please hold while we connect you with one of our agents.",
        ))
        .dial(dial)
        .into()
}

/// Adds the `<Number>`, `<Sip>` or `<Client>` noun that rings `reach`, with a whisper.
fn add_leg(dial: Dial, reach: &Reach, whisper: Option<String>) -> Dial {
    match reach {
        Reach::Phone(p) => {
            let n = Number::new(p.as_str());
            dial.number(whisper.map_or_else(|| n.clone(), |u| n.clone().url(u)))
        }
        Reach::Sip(s) => {
            let n = Sip::new(s.as_str());
            dial.sip(whisper.map_or_else(|| n.clone(), |u| n.clone().url(u)))
        }
        Reach::Client(c) => {
            let n = Client::new(c.as_str());
            dial.client(whisper.map_or_else(|| n.clone(), |u| n.clone().url(u)))
        }
        other => {
            eprintln!("WARN ivr: cannot ring agent reach {other:?}");
            dial
        }
    }
}

/// `<Dial>` the winner, without a whisper (they accepted in the agent desk).
fn connect_to(app: &App, offer: &Offer, agent: &AgentId, via: Via) -> IvrResult<Twiml> {
    let leg = offer
        .legs
        .iter()
        .find(|l| &l.agent == agent)
        .ok_or_else(|| IvrError(anyhow::anyhow!("offer {} has no leg for {agent}", offer.id)))?;
    let dial = Dial::new()
        .action(caller_url(app, "dial-result", &offer.id, via))
        .timeout(app.config.dial_timeout)
        .answer_on_bridge(true);
    let dial = add_leg(dial, &leg.reach, None);
    Ok(VoiceResponse::new()
        .say(say(app, "Connecting you with an agent now."))
        .dial(dial)
        .into())
}

/// Where a caller goes when the pool did not take the call.
fn back_to_fallback(app: &App, via: Via) -> Twiml {
    let url = match via {
        Via::Auction => format!("{}/ivr/dial-result", app.config.public_url),
        Via::Fallback(step) => format!("{}/ivr/fallback/next?step={step}", app.config.public_url),
    };
    VoiceResponse::new().redirect(Redirect::new(url)).into()
}

/// Logs how the offer was decided (once per offer: the key is the offer's state).
pub(crate) async fn log_decision(app: &App, offer: &Offer) -> IvrResult<()> {
    let (outcome, agent, latency_ms) = match &offer.state {
        OfferState::Accepted { agent, at } => {
            let offered = offer
                .legs
                .iter()
                .find(|l| &l.agent == agent)
                .map(|l| l.offered_at);
            let ms = offered.and_then(|o| u64::try_from((*at - o).num_milliseconds()).ok());
            ("accepted", Some(agent.to_string()), ms)
        }
        OfferState::Fallback { .. } => ("fallback", None, None),
        OfferState::CallerGone { .. } => ("caller_gone", None, None),
        _ => return Ok(()),
    };
    let rounds = offer.legs.iter().map(|l| l.round).max().unwrap_or(0);
    log(
        app.stores.log.as_ref(),
        &offer.call,
        format!("offer:{outcome}"),
        CallEventKind::AgentOffer {
            pool: offer.pool.to_string(),
            outcome: outcome.to_owned(),
            agent,
            legs: u32::try_from(offer.legs.len()).unwrap_or(u32::MAX),
            rounds,
            latency_ms,
        },
    )
    .await?;
    Ok(())
}

/// An agent's leg answered: the whisper, or "taken" when the offer is no longer theirs.
pub(crate) async fn whisper(
    State(app): State<Arc<App>>,
    q: QueryResult<LegQuery>,
    Signed(_leg): Signed<VoiceRequest>,
) -> IvrResult {
    let (offer_id, agent) = query(q)?.parse()?;
    let agents = offers(&app)?;
    let offer = agents
        .store
        .tick(&agents.pool, &offer_id, Utc::now())
        .await?;
    let ringing = offer
        .current_legs()
        .any(|l| l.agent == agent && l.outcome == LegOutcome::Ringing);
    if !ringing {
        return Ok(gone(
            &app,
            "Sorry, this call was taken or is no longer available.",
        ));
    }
    let zip: Vec<String> = offer
        .needs
        .zip
        .to_string()
        .chars()
        .map(String::from)
        .collect();
    let prompt = format!(
        "A {} call from {}. Press 1 to take it.",
        offer.needs.service.to_string().to_lowercase(),
        zip.join(" ")
    );
    let gather = Gather::new()
        .input(GatherInput::Dtmf)
        .num_digits(1u32)
        .timeout(5u32)
        // No key pressed is a decline too: the leg stops counting as ringing at once
        // (the desk and the round's end see it), not at the TTL.
        .action_on_empty_result(true)
        .action(leg_url(&app, "press", &offer_id, &agent))
        .say(say(&app, prompt));
    Ok(VoiceResponse::new()
        .gather(gather)
        .say(say(&app, "Goodbye."))
        .hangup()
        .into())
}

fn gone(app: &App, text: &str) -> Twiml {
    VoiceResponse::new().say(say(app, text)).hangup().into()
}

/// The agent's digit: `1` accepts (the compare-and-set decides), anything else declines.
pub(crate) async fn press(
    State(app): State<Arc<App>>,
    q: QueryResult<LegQuery>,
    Signed(req): Signed<GatherRequest>,
) -> IvrResult {
    let (offer_id, agent) = query(q)?.parse()?;
    let agents = offers(&app)?;
    let now = Utc::now();
    if req.digits.as_deref().map(str::trim) != Some("1") {
        agents
            .store
            .decline(&agents.pool, &offer_id, &agent, now)
            .await?;
        return Ok(gone(&app, "Goodbye."));
    }
    match agents
        .store
        .accept(&agents.pool, &offer_id, &agent, now)
        .await?
    {
        AcceptOutcome::Won { offer } => {
            log_decision(&app, &offer).await?;
            // An empty document ends the whisper: Twilio bridges this leg and cancels
            // the others.
            Ok(VoiceResponse::new().say(say(&app, "Connecting.")).into())
        }
        AcceptOutcome::Taken { .. } => Ok(gone(&app, "Sorry, another agent took this call.")),
        _ => Ok(gone(&app, "Sorry, this call is no longer available.")),
    }
}

/// The caller's `<Dial>` ended: bridged (goodbye, or the auction's settlement), or the
/// round is over and the next tier is rung, or the caller goes back to the fallback.
pub(crate) async fn dial_result(
    State(app): State<Arc<App>>,
    q: QueryResult<OfferQuery>,
    Signed(req): Signed<DialActionRequest>,
) -> IvrResult {
    let q = query(q)?;
    let (offer_id, via) = q.parse()?;
    let agents = offers(&app)?.clone();
    let call = call_id(&req.call)?;
    // After the final status callback the caller is gone: no redirect, goodbye or new
    // round (a bridged auction win still records its talk time in `dial_result`).
    let ended = super::ended(&app, &call).await?;
    let offer = agents
        .store
        .offer(&agents.pool, &offer_id)
        .await?
        .ok_or_else(|| IvrError(anyhow::anyhow!("no offer {offer_id}")))?;
    if let OfferState::Accepted { agent, .. } = &offer.state {
        if req.dial_call_status == Some(DialCallStatus::Canceled) && !ended {
            // The agent desk's accept moved the call with the REST client (which cancels
            // this <Dial>): the winner is about to be connected, not done.
            let url = caller_url(&app, "connect", &offer_id, via);
            return Ok(VoiceResponse::new().redirect(Redirect::new(url)).into());
        }
        end_call(&agents, &offer_id, agent).await?;
        let connected = connected(req.dial_call_status.as_ref());
        return match via {
            Via::Auction if connected => super::dial_result(State(app.clone()), Signed(req)).await,
            _ if ended => Ok(super::hangup()),
            Via::Fallback(_) if connected => Ok(VoiceResponse::new()
                .say(say(&app, "Thank you for calling. Goodbye."))
                .hangup()
                .into()),
            // The winner's leg dropped before the bridge: the caller is not left waiting.
            _ => Ok(back_to_fallback(&app, via)),
        };
    }
    if ended {
        return Ok(super::hangup());
    }
    let rang = q.round;
    let offer = match offer.round() {
        // The Dial rang out: its round is over whatever the clock says.
        Some((_, round, until)) if rang.is_none_or(|r| r == round) => {
            agents
                .store
                .tick(&agents.pool, &offer_id, Utc::now().max(until))
                .await?
        }
        // The round already moved on (its last leg declined while the Dial was still
        // ending): ring the new round, never cut it short.
        _ => offer,
    };
    answer(&app, &offer, via).await
}

/// The caller's call after a desk accept (the REST client redirected it here).
pub(crate) async fn connect(
    State(app): State<Arc<App>>,
    q: QueryResult<OfferQuery>,
    Signed(req): Signed<VoiceRequest>,
) -> IvrResult {
    let (offer_id, via) = query(q)?.parse()?;
    let agents = offers(&app)?;
    if super::ended(&app, &call_id(&req.call)?).await? {
        return Ok(super::hangup());
    }
    let offer = agents
        .store
        .tick(&agents.pool, &offer_id, Utc::now())
        .await?;
    answer(&app, &offer, via).await
}

/// The winner's call is over: wrap-up (only if they are still on this offer's call).
async fn end_call(
    agents: &AgentOffers,
    offer: &OfferId,
    agent: &AgentId,
) -> Result<(), StateError> {
    let now = Utc::now();
    let status = agents.store.agents(&agents.pool, now).await?;
    let on_this = status.iter().any(|s| {
        &s.agent.id == agent
            && matches!(&s.presence, Presence::OnCall { offer: o, .. } if o == offer)
    });
    if on_this {
        agents
            .store
            .set_presence(&agents.pool, agent, PresenceChange::EndCall, now)
            .await?;
    }
    Ok(())
}

/// The caller's call is over (status callback): cancels a ringing offer (every agent is
/// available again) or ends the winner's call. A call never offered is left alone.
pub(crate) async fn caller_left(app: &App, sid: &str) -> Result<(), IvrError> {
    let Some(agents) = app.stores.agents.as_ref() else {
        return Ok(());
    };
    let Ok(offer_id) = OfferId::new(sid) else {
        return Ok(());
    };
    let Some(offer) = agents.store.offer(&agents.pool, &offer_id).await? else {
        return Ok(());
    };
    match &offer.state {
        OfferState::Offered { .. } => {
            let offer = agents
                .store
                .caller_hung_up(&agents.pool, &offer_id, Utc::now())
                .await?;
            log_decision(app, &offer).await?;
        }
        OfferState::Accepted { agent, .. } => end_call(agents, &offer_id, agent).await?,
        _ => {}
    }
    Ok(())
}

/// Wraps the agents' leg routes: a failure is a short apology and `<Hangup/>` on that
/// leg (never the caller's fallback chain, which belongs to the caller's call).
pub(crate) async fn leg_guard(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let res = AssertUnwindSafe(next.run(req)).catch_unwind().await;
    match res {
        Ok(res) if res.status().is_success() => return res,
        Ok(res) if res.status() == StatusCode::FORBIDDEN => return res,
        Ok(res) => eprintln!("WARN ivr: agent leg {path} failed ({})", res.status()),
        Err(_) => eprintln!("ERROR ivr: agent leg {path} panicked"),
    }
    let twiml = VoiceResponse::new()
        .say(callbid_twilio::twiml::Say::new(
            "Sorry, this call is no longer available.",
        ))
        .hangup();
    (StatusCode::OK, Twiml::from(twiml)).into_response()
}

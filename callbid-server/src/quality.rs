//! Call quality evidence for the scoring engine's quality factor (issue 12, item 1): the
//! buyers' conversion postbacks and Twilio real-time transcription callbacks, both
//! written to the call log and fed to a [`QualityHistory`].
//!
//! # Conversion postbacks: `POST /api/conversions` ([`api_router`])
//!
//! The buyer that won a call posts a JSON body
//! `{"call_id": "CA…", "converted": true, "value": "125.00", "currency": "USD"}` (`value`
//! and `currency` optional; `value` is a decimal *string*, never a float; currency
//! defaults to USD) with `Authorization: Bearer <token>`, its own token from
//! [`BuyerTokens`] (the per-buyer postback secret pay-per-call networks hand out). Tokens
//! are compared in constant time (SHA-256 of both sides, compared with `subtle`).
//!
//! Answers: `200` `{"call_id", "buyer", "stored": {"signal", "converted"}, "changed"}`
//! (the call's stored outcome; posting the same postback again changes nothing and
//! answers the same); `401` without a known token; `403` when the call was not won by
//! the token's buyer; `404` for an unknown call; `409` when a conversion postback for the
//! call already stands and this one says otherwise (the stored result is in the body);
//! `422` `{"error": {"field", "value", "reason"}}` for bad input; `503` when a store fails.
//! The postback is logged as a `conversion` call-log event (idempotency key
//! `conversion:<converted>`) and recorded in the quality history with signal `postback`,
//! which overrides a transcript classification of the same call (see
//! [`callbid_core::state::quality`] for the rule).
//!
//! # Transcripts: `POST /twilio/transcription` ([`webhook_router`])
//!
//! The status callback of `<Start><Transcription statusCallbackUrl=…/>` (see
//! [`transcription_start`]), signed like every Twilio webhook and checked with the IVR's
//! [`WebhookVerifier`]. Fields, as Twilio names them: `CallSid`, `TranscriptionSid`,
//! `TranscriptionEvent` (`transcription-started`, `transcription-content`,
//! `transcription-stopped`, `transcription-error`), `SequenceId`, `Track`
//! (`inbound_track` / `outbound_track`), `Final` (`true` / `false`) and `TranscriptionData`
//! (JSON: `{"transcript": "…", "confidence": 0.9}`). Only final `transcription-content`
//! fragments are used: each is classified by the [`PhraseClassifier`], logged as a
//! `transcript` call-log event (idempotency key `transcript:<TranscriptionSid>:<SequenceId>`,
//! so a retried callback is a duplicate) and, when a rule matched and the call has a
//! winner, recorded in the quality history with signal `transcript`. The quality history
//! keeps the strongest outcome per call, so fragments arriving late, twice or out of order
//! give the same result. Every other event is acknowledged and ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use callbid_core::quality::PhraseClassifier;
use callbid_core::state::{
    history_keys, AreaKey, CallEvent, CallEventKind, CallLog, CallRecord, HistoryKey,
    QualityHistory, QualityObservation, QualityRecorded,
};
use callbid_core::{BuyerId, CallContext, CallId, Currency, Money, ServiceType, ValidationError};
use callbid_twilio::signature::{WebhookVerifier, SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER};
use callbid_twilio::twiml::{Start, Transcription};
use chrono::Utc;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest postback token accepted (characters).
pub const MIN_TOKEN_LEN: usize = 24;

/// Per-buyer postback tokens (kept as SHA-256 digests).
#[derive(Clone, Default)]
pub struct BuyerTokens {
    tokens: Vec<(BuyerId, [u8; 32])>,
}

impl std::fmt::Debug for BuyerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.tokens.iter().map(|(b, _)| b.as_str()).collect();
        f.debug_struct("BuyerTokens").field("buyers", &ids).finish()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl BuyerTokens {
    /// Tokens per buyer. Errors: a token shorter than [`MIN_TOKEN_LEN`], or one shared
    /// by two buyers (field `conversion_token`, the buyer id as value).
    pub fn new(
        tokens: impl IntoIterator<Item = (BuyerId, String)>,
    ) -> Result<Self, ValidationError> {
        let mut out: Vec<(BuyerId, [u8; 32])> = Vec::new();
        for (buyer, token) in tokens {
            if token.chars().count() < MIN_TOKEN_LEN {
                let why = format!("must be at least {MIN_TOKEN_LEN} characters");
                return Err(ValidationError::new(
                    "conversion_token",
                    buyer.as_str(),
                    why,
                ));
            }
            let d = digest(&token);
            if out.iter().any(|(_, o)| *o == d) {
                let why = "the same token is configured for another buyer";
                return Err(ValidationError::new(
                    "conversion_token",
                    buyer.as_str(),
                    why,
                ));
            }
            out.push((buyer, d));
        }
        Ok(BuyerTokens { tokens: out })
    }

    /// The buyer whose token `candidate` is (every token is compared, in constant time).
    pub fn buyer(&self, candidate: &str) -> Option<&BuyerId> {
        let d = digest(candidate);
        let mut found = None;
        for (b, t) in &self.tokens {
            if bool::from(t.ct_eq(&d)) {
                found = Some(b);
            }
        }
        found
    }
}

/// What the quality routes need.
#[derive(Debug)]
pub struct QualityApp {
    /// The call log (the calls' winners are read from it; events are written to it).
    pub log: Arc<dyn CallLog>,
    /// The quality history the scoring engine reads.
    pub quality: Arc<dyn QualityHistory>,
    /// Postback tokens.
    pub tokens: BuyerTokens,
    /// Transcript rules.
    pub classifier: PhraseClassifier,
    /// Each buyer's time zone (hour-of-week buckets; buyers not listed: New York, the
    /// profile default).
    pub zones: BTreeMap<BuyerId, Tz>,
    /// `None`: transcription callbacks are not signature-checked (tests, `--insecure-…`).
    pub verifier: Option<WebhookVerifier>,
}

/// An error answer: status and JSON body.
#[derive(Debug)]
pub struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn invalid(field: &'static str, value: &str, reason: &str) -> ApiError {
    let e = ValidationError::new(field, value, reason);
    ApiError(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": {"field": e.field, "value": e.value, "reason": e.reason}}),
    )
}

fn status(code: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(code, json!({"error": {"reason": message.into()}}))
}

fn store(e: impl std::fmt::Display) -> ApiError {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("store failed: {e}"),
    )
}

/// `POST /api/conversions` (module docs). Outside the operator layer: buyers
/// authenticate with their own tokens.
pub fn api_router(app: Arc<QualityApp>) -> Router {
    Router::new()
        .route("/api/conversions", post(conversion))
        .with_state(app)
}

/// `POST /twilio/transcription` (module docs).
pub fn webhook_router(app: Arc<QualityApp>) -> Router {
    Router::new()
        .route("/twilio/transcription", post(transcription))
        .route_layer(axum::middleware::from_fn(crate::metrics::time_webhooks))
        .with_state(app)
}

/// `<Start><Transcription statusCallbackUrl=…/></Start>` to put before the `<Dial>`:
/// `callback` is the absolute URL of this module's `/twilio/transcription`.
pub fn transcription_start(callback: &str) -> Start {
    Start::new().child(Transcription::new().status_callback_url(callback))
}

/// A posted conversion, validated.
struct Postback {
    call: CallId,
    converted: bool,
    value: Option<Money>,
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn parse_postback(body: &[u8]) -> Result<Postback, ApiError> {
    let text = String::from_utf8_lossy(body);
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", &text, &format!("not JSON: {e}")))?;
    let call = match field(&v, "call_id") {
        Some(Value::String(s)) => CallId::new(s).map_err(|e| invalid("call_id", s, &e.reason))?,
        other => return Err(invalid("call_id", &shown(other), "required, a string")),
    };
    let converted = match field(&v, "converted") {
        Some(Value::Bool(b)) => *b,
        other => {
            return Err(invalid(
                "converted",
                &shown(other),
                "required, true or false",
            ))
        }
    };
    let currency = match field(&v, "currency") {
        None => Currency::USD,
        Some(Value::String(s)) => s
            .parse::<Currency>()
            .map_err(|_| invalid("currency", s, "an ISO 4217 code such as USD"))?,
        Some(other) => return Err(invalid("currency", &other.to_string(), "a string")),
    };
    let value = match field(&v, "value") {
        None => None,
        Some(Value::String(s)) => Some(parse_value(s, currency)?),
        Some(other) => {
            let why = "a decimal string such as \"125.00\" (not a JSON number)";
            return Err(invalid("value", &other.to_string(), why));
        }
    };
    Ok(Postback {
        call,
        converted,
        value,
    })
}

fn shown(v: Option<&Value>) -> String {
    v.map_or_else(String::new, Value::to_string)
}

fn parse_value(s: &str, currency: Currency) -> Result<Money, ApiError> {
    let amount: Decimal = s
        .trim()
        .parse()
        .map_err(|_| invalid("value", s, "a decimal string such as \"125.00\""))?;
    if amount < Decimal::ZERO {
        return Err(invalid("value", s, "cannot be negative"));
    }
    Ok(Money::new(amount, currency))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn conversion(
    State(app): State<Arc<QualityApp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let buyer = bearer(&headers)
        .and_then(|t| app.tokens.buyer(t))
        .cloned()
        .ok_or_else(|| {
            status(
                StatusCode::UNAUTHORIZED,
                "a buyer's bearer token is required",
            )
        })?;
    let p = parse_postback(&body)?;
    let record = app.log.record(&p.call).await.map_err(store)?;
    let record = record.ok_or_else(|| status(StatusCode::NOT_FOUND, "unknown call_id"))?;
    if record.buyer.as_ref() != Some(&buyer) {
        let why = "only the buyer that won the call may post its conversion";
        return Err(status(StatusCode::FORBIDDEN, why));
    }
    let kind = CallEventKind::Conversion {
        buyer: buyer.clone(),
        converted: p.converted,
        value: p.value,
    };
    let key = format!("conversion:{}", p.converted);
    let event = CallEvent::new(p.call.clone(), Utc::now(), key, kind);
    app.log.append(&event).await.map_err(store)?;
    let keys = app.keys(&record, &buyer);
    let obs = QualityObservation::postback(p.converted);
    let r = app
        .quality
        .record(&p.call, &keys, obs)
        .await
        .map_err(store)?;
    let body = answer(&p.call, &buyer, &r);
    if r.stored.signal == obs.signal && r.stored.converted != p.converted {
        return Err(ApiError(StatusCode::CONFLICT, body));
    }
    Ok(Json(body))
}

fn answer(call: &CallId, buyer: &BuyerId, r: &QualityRecorded) -> Value {
    json!({
        "call_id": call.as_str(),
        "buyer": buyer.as_str(),
        "stored": {"signal": r.stored.signal.as_str(), "converted": r.stored.converted},
        "changed": r.changed,
    })
}

impl QualityApp {
    /// The quality buckets of a call won by `buyer`: the duration history's buckets
    /// ([`history_keys`] over the call's ZIP, caller and arrival), or the buyer overall
    /// when the call has no ZIP.
    fn keys(&self, record: &CallRecord, buyer: &BuyerId) -> Vec<HistoryKey> {
        let tz = self
            .zones
            .get(buyer)
            .copied()
            .unwrap_or(chrono_tz::America::New_York);
        let overall = || HistoryKey {
            buyer: buyer.clone(),
            area: AreaKey::Any,
            hour_of_week: None,
        };
        let (Some(zip), Ok(unknown)) = (record.zip, ServiceType::new("unknown")) else {
            return vec![overall()];
        };
        let service = record.service.clone().unwrap_or(unknown);
        let mut call = CallContext::new(record.call_id.clone(), zip, service, record.received_at);
        if let Some(c) = &record.caller {
            call = call.with_caller(c.clone());
        }
        history_keys(buyer, &call, tz)
    }
}

/// The transcription callback's fields (Twilio's names).
#[derive(Debug, Deserialize)]
struct TranscriptionCallback {
    #[serde(rename = "CallSid")]
    call_sid: String,
    #[serde(rename = "TranscriptionSid", default)]
    transcription_sid: String,
    #[serde(rename = "TranscriptionEvent", default)]
    event: String,
    #[serde(rename = "SequenceId", default)]
    sequence_id: Option<String>,
    #[serde(rename = "Track", default)]
    track: Option<String>,
    #[serde(rename = "Final", default)]
    is_final: Option<String>,
    #[serde(rename = "TranscriptionData", default)]
    data: Option<String>,
}

fn check_signature(
    app: &QualityApp,
    headers: &HeaderMap,
    pq: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let Some(v) = &app.verifier else {
        return Ok(());
    };
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    v.verify(
        pq,
        h(SIGNATURE_HEADER),
        h(SIGNATURE_SETTINGS_HEADER),
        body,
        true,
    )
    .map_err(|_| status(StatusCode::FORBIDDEN, "invalid Twilio signature"))
}

/// The fragment's text, from `TranscriptionData`'s `transcript`.
fn fragment_text(data: Option<&str>) -> Result<String, ApiError> {
    let raw = data.unwrap_or("");
    let v: Value = serde_json::from_str(raw)
        .map_err(|_| invalid("TranscriptionData", raw, "must be JSON with a transcript"))?;
    match v.get("transcript") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(invalid(
            "TranscriptionData",
            raw,
            "must have a transcript string",
        )),
    }
}

async fn transcription(
    State(app): State<Arc<QualityApp>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    check_signature(&app, &headers, pq, &body)?;
    let cb: TranscriptionCallback = callbid_twilio::webhook::parse_form(&body)
        .map_err(|e| invalid("body", "", &e.to_string()))?;
    let is_final = cb.is_final.as_deref() == Some("true");
    if cb.event != "transcription-content" || !is_final {
        return Ok(Json(json!({"ignored": cb.event})));
    }
    let call =
        CallId::new(&cb.call_sid).map_err(|e| invalid("CallSid", &cb.call_sid, &e.reason))?;
    let seq_text = cb.sequence_id.clone().unwrap_or_default();
    let sequence: u64 = seq_text
        .parse()
        .map_err(|_| invalid("SequenceId", &seq_text, "a whole number"))?;
    let text = fragment_text(cb.data.as_deref())?;
    let hit = app.classifier.classify(&text);
    let kind = CallEventKind::Transcript {
        transcription: cb.transcription_sid.clone(),
        sequence,
        track: cb.track.clone(),
        text,
        class: hit.as_ref().map(|h| h.class.as_str().to_owned()),
        phrase: hit.as_ref().map(|h| h.phrase.clone()),
    };
    let key = format!("transcript:{}:{sequence}", cb.transcription_sid);
    let event = CallEvent::new(call.clone(), Utc::now(), key, kind);
    app.log.append(&event).await.map_err(store)?;
    let Some(hit) = hit else {
        return Ok(Json(json!({"call_id": call.as_str(), "class": null})));
    };
    let record = app.log.record(&call).await.map_err(store)?;
    let Some((record, buyer)) = record.and_then(|r| r.buyer.clone().map(|b| (r, b))) else {
        return Ok(Json(
            json!({"call_id": call.as_str(), "class": hit.class.as_str()}),
        ));
    };
    let keys = app.keys(&record, &buyer);
    let r = app
        .quality
        .record(&call, &keys, hit.class.observation())
        .await
        .map_err(store)?;
    let mut out = answer(&call, &buyer, &r);
    out["class"] = json!(hit.class.as_str());
    Ok(Json(out))
}

#[cfg(test)]
mod tests;

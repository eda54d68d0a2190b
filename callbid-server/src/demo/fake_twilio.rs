//! A tiny in-process stand-in for Twilio's Calls update endpoint
//! (`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`), used when no Twilio
//! credentials are set and by the tests. It checks what Twilio checks first (HTTP Basic
//! auth for the account, SID patterns, one of `Url` / `Twiml` / `Status`), records every
//! request, and answers like Twilio: a Call resource, or Twilio's error JSON.
//!
//! `GET /fake/requests` lists what was recorded, for local curl experiments.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Serialize;
use serde_json::json;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    /// The request path.
    pub path: String,
    /// The account SID in the path.
    pub account_sid: String,
    /// The call SID in the path.
    pub call_sid: String,
    /// The form parameters, in order.
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of a form parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A failure to answer instead of success (once).
#[derive(Debug, Clone)]
pub struct InjectedError {
    /// HTTP status.
    pub status: u16,
    /// Twilio error code.
    pub code: u32,
    /// Message.
    pub message: String,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Mutex<Vec<RecordedRequest>>,
    fail_next: Mutex<Option<InjectedError>>,
    account_sid: String,
    auth_token: String,
}

/// The running fake.
#[derive(Debug, Clone)]
pub struct FakeTwilio {
    /// Its base URL (use as the REST client's API base).
    pub base_url: String,
    inner: Arc<Inner>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl FakeTwilio {
    /// Starts the fake on `addr` (port 0: any free port), accepting `account_sid` with
    /// `auth_token` (HTTP Basic).
    pub async fn start(
        addr: SocketAddr,
        account_sid: &str,
        auth_token: &str,
    ) -> std::io::Result<FakeTwilio> {
        let inner = Arc::new(Inner {
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
            ..Default::default()
        });
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls/{call}", post(update))
            .route("/fake/requests", get(list))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake Twilio stopped: {e}");
            }
        });
        Ok(FakeTwilio {
            base_url: format!("http://{local}"),
            inner,
            task: Arc::new(task),
        })
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Makes the next update fail with this Twilio error.
    pub fn fail_next(&self, error: InjectedError) {
        if let Ok(mut f) = self.inner.fail_next.lock() {
            *f = Some(error);
        }
    }

    /// Stops the server.
    pub fn stop(&self) {
        self.task.abort();
    }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn is_sid(prefix: &str, s: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    use base64_lite::decode;
    let v = headers.get("authorization")?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let text = String::from_utf8(decode(b64.trim())?).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

async fn update(
    State(inner): State<Arc<Inner>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some(call_sid) = call.strip_suffix(".json") else {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    match basic_auth(&headers) {
        Some((user, pass)) if user == inner.account_sid && pass == inner.auth_token => {}
        _ => return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate"),
    }
    if account != inner.account_sid {
        return twilio_error(StatusCode::FORBIDDEN, 20003, "Permission denied");
    }
    if !is_sid("CA", call_sid) {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    }
    let has = |k: &str| form.iter().any(|(n, _)| n == k);
    if !(has("Twiml") || has("Url") || has("Status")) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21201,
            "One of Url, Twiml or Status is required",
        );
    }
    let recorded = RecordedRequest {
        path: format!("/2010-04-01/Accounts/{account}/Calls/{call}"),
        account_sid: account.clone(),
        call_sid: call_sid.to_string(),
        form,
    };
    if let Ok(mut r) = inner.requests.lock() {
        r.push(recorded);
    }
    let injected = inner.fail_next.lock().ok().and_then(|mut f| f.take());
    if let Some(e) = injected {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        return twilio_error(status, e.code, &e.message);
    }
    Json(json!({
        "sid": call_sid,
        "account_sid": account,
        "status": "in-progress",
        "direction": "inbound",
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{account}/Calls/{call_sid}.json"),
    }))
    .into_response()
}

async fn list(State(inner): State<Arc<Inner>>) -> Response {
    let r = inner.requests.lock().map(|r| r.clone()).unwrap_or_default();
    Json(r).into_response()
}

/// Standard base64 decoding, enough for a Basic auth header.
mod base64_lite {
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        fn val(c: u8) -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'a'..=b'z' => u32::from(c - b'a') + 26,
                b'0'..=b'9' => u32::from(c - b'0') + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            })
        }
        let s = s.trim_end_matches('=').as_bytes();
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        let mut acc = 0u32;
        let mut bits = 0;
        for &c in s {
            acc = (acc << 6) | val(c)?;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }
}

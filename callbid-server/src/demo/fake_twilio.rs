//! A tiny in-process stand-in for Twilio's Calls update endpoint
//! (`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`), used when no Twilio
//! credentials are set and by the tests. It checks what Twilio checks first (HTTP Basic
//! auth for the account, SID patterns, one of `Url` / `Twiml` / `Status`), records every
//! request, and answers like Twilio: a Call resource, or Twilio's error JSON.
//!
//! `GET /fake/requests` lists what was recorded, for local curl experiments.
//!
//! It also stands in for `Calls.create` (`POST …/Calls.json`) and call fetch
//! (`GET …/Calls/{CallSid}.json`), so an outbound campaign runs locally: each created
//! call is played out by a simulated callee a moment later. The callee's answer follows
//! the number's last digit: `8` is `busy`, `9` is `no-answer`, anything else answers
//! (`AnsweredBy=human`): the fake fetches the call's `Url` (the flow's TwiML), sends the
//! `AsyncAmdStatusCallback` when machine detection was asked for, then `completed` with
//! `CallDuration=20` to the `StatusCallback`. Callbacks are signed like Twilio's
//! (`X-Twilio-Signature`) with the token given to [`FakeTwilio::sign_callbacks_with`].

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

/// A created call's status, duration (seconds) and `AnsweredBy`.
type CallState = (String, Option<u32>, Option<String>);

#[derive(Debug, Default)]
struct Inner {
    requests: Mutex<Vec<RecordedRequest>>,
    /// Created calls by SID.
    calls: Mutex<std::collections::HashMap<String, CallState>>,
    callback_token: Mutex<Option<String>>,
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
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(create))
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                post(update).get(fetch),
            )
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

    /// Signs the simulated callee's webhooks (the created calls' `Url` and callbacks)
    /// with `token`, the auth token the receiving server checks signatures with.
    pub fn sign_callbacks_with(&self, token: &str) {
        if let Ok(mut t) = self.inner.callback_token.lock() {
            *t = Some(token.to_owned());
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
    if let Err(r) = authorize(&inner, &headers, &account) {
        return *r;
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

fn authorize(inner: &Inner, headers: &HeaderMap, account: &str) -> Result<(), Box<Response>> {
    let authenticated = matches!(basic_auth(headers),
        Some((user, pass)) if user == inner.account_sid && pass == inner.auth_token);
    if !authenticated {
        let e = twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
        return Err(Box::new(e));
    }
    if account != inner.account_sid {
        let e = twilio_error(StatusCode::FORBIDDEN, 20003, "Permission denied");
        return Err(Box::new(e));
    }
    Ok(())
}

fn call_json(
    account: &str,
    sid: &str,
    status: &str,
    duration: Option<u32>,
    by: Option<&str>,
) -> Response {
    let code = if status == "queued" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        code,
        Json(json!({
            "sid": sid,
            "account_sid": account,
            "status": status,
            "direction": "outbound-api",
            "duration": duration.map(|d| d.to_string()),
            "answered_by": by,
            "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json"),
        })),
    )
        .into_response()
}

/// `POST …/Calls.json`: records the call, answers `queued`, and plays the callee out.
async fn create(
    State(inner): State<Arc<Inner>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = authorize(&inner, &headers, &account) {
        return *r;
    }
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(to), Some(from)) = (get("To"), get("From")) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21201, "To and From are required");
    };
    if get("Url").is_none() && get("Twiml").is_none() {
        return twilio_error(StatusCode::BAD_REQUEST, 21205, "Url or Twiml is required");
    }
    let sid = format!("CA{:032x}", rand::random::<u128>());
    if let Ok(mut r) = inner.requests.lock() {
        r.push(RecordedRequest {
            path: format!("/2010-04-01/Accounts/{account}/Calls.json"),
            account_sid: account.clone(),
            call_sid: sid.clone(),
            form: form.clone(),
        });
    }
    let injected = inner.fail_next.lock().ok().and_then(|mut f| f.take());
    if let Some(e) = injected {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        return twilio_error(status, e.code, &e.message);
    }
    set_status(&inner, &sid, "queued", None, None);
    let callee = Callee {
        inner: inner.clone(),
        account: account.clone(),
        sid: sid.clone(),
        to,
        from,
        form,
    };
    tokio::spawn(callee.play_out());
    call_json(&account, &sid, "queued", None, None)
}

/// `GET …/Calls/{CallSid}.json`: a created call's current state.
async fn fetch(
    State(inner): State<Arc<Inner>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&inner, &headers, &account) {
        return *r;
    }
    let sid = call.strip_suffix(".json").unwrap_or(&call);
    let known = inner.calls.lock().ok().and_then(|c| c.get(sid).cloned());
    match known {
        Some((status, duration, by)) => call_json(&account, sid, &status, duration, by.as_deref()),
        None => twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        ),
    }
}

fn set_status(inner: &Inner, sid: &str, status: &str, duration: Option<u32>, by: Option<&str>) {
    if let Ok(mut c) = inner.calls.lock() {
        c.insert(
            sid.to_owned(),
            (status.to_owned(), duration, by.map(str::to_owned)),
        );
    }
}

/// The simulated callee of one created call.
struct Callee {
    inner: Arc<Inner>,
    account: String,
    sid: String,
    to: String,
    from: String,
    form: Vec<(String, String)>,
}

impl Callee {
    fn param(&self, k: &str) -> Option<String> {
        self.form
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }

    async fn play_out(self) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (status, by) = match self.to.chars().last() {
            Some('8') => ("busy", None),
            Some('9') => ("no-answer", None),
            _ => ("completed", Some("human")),
        };
        if by.is_some() {
            set_status(&self.inner, &self.sid, "in-progress", None, by);
            if let Some(url) = self.param("Url") {
                self.post(&url, &[("CallStatus", "in-progress")]).await;
            }
            if self.param("AsyncAmd").as_deref() == Some("true") {
                if let Some(url) = self.param("AsyncAmdStatusCallback") {
                    self.post(&url, &[("AnsweredBy", "human")]).await;
                }
            }
        }
        let duration = if by.is_some() { 20 } else { 0 };
        set_status(&self.inner, &self.sid, status, Some(duration), by);
        if let Some(url) = self.param("StatusCallback") {
            let d = duration.to_string();
            let mut extra = vec![("CallStatus", status), ("CallDuration", d.as_str())];
            if let Some(by) = by {
                extra.push(("AnsweredBy", by));
            }
            self.post(&url, &extra).await;
        }
    }

    /// A signed form POST like Twilio's webhooks; failures are printed, not retried.
    async fn post(&self, url: &str, extra: &[(&str, &str)]) {
        let mut params: Vec<(&str, &str)> = vec![
            ("AccountSid", self.account.as_str()),
            ("CallSid", self.sid.as_str()),
            ("From", self.from.as_str()),
            ("To", self.to.as_str()),
            ("Direction", "outbound-api"),
        ];
        params.extend_from_slice(extra);
        let token = self
            .inner
            .callback_token
            .lock()
            .ok()
            .and_then(|t| t.clone());
        let token = token.unwrap_or_else(|| self.inner.auth_token.clone());
        let signature = callbid_twilio::signature::RequestValidator::new(&token)
            .compute_signature(url, &params);
        let res = reqwest::Client::new()
            .post(url)
            .header(callbid_twilio::signature::SIGNATURE_HEADER, signature)
            .form(&params)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => eprintln!("fake Twilio: {url} answered {}", r.status()),
            Err(e) => eprintln!("fake Twilio: cannot reach {url}: {e}"),
        }
    }
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

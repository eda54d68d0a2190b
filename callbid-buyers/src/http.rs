//! The one HTTP executor every HTTP buyer goes through.
//!
//! Adapters describe requests ([`HttpRequest`]) and parse answers ([`HttpResponse`]);
//! [`HttpExecutor`] sends them, so every buyer gets the same behaviour:
//! - one shared connection pool (cloning an executor shares it);
//! - each exchange, body included, bounded by the auction [`Deadline`] (and an optional
//!   per-buyer timeout, whichever comes first);
//! - a response-body cap (default 64 KiB): the body is streamed and reading stops as soon
//!   as the cap is passed;
//! - no redirect following by default (a 3xx is handed to the adapter, which rejects it);
//! - `Accept-Encoding: gzip, deflate, br`, and gzip/deflate/brotli answers decoded within
//!   the body cap, counting decoded bytes ([`crate::encoding`]);
//! - HTTP 429 handling shared by every buyer: [`HttpExecutor::rate_limited`] turns a 429
//!   into [`BuyerErrorKind::RateLimited`] and pauses the buyer until its `Retry-After`;
//!   [`HttpExecutor::check_paused`] refuses requests until then (see [`HttpBuyer`]);
//! - an optional capture of each exchange for debugging, secrets redacted;
//! - a `tracing` span per exchange (`buyer_http`, with buyer, step, method, status, time).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use callbid_core::buyer::Delivery;
use callbid_core::{BuyerError, BuyerErrorKind, BuyerId, BuyerStep, Deadline};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::encoding;
use crate::secret::Secret;

#[cfg(doc)]
use crate::adapter::HttpBuyer;

/// An HTTP method an adapter may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    #[default]
    Post,
    /// `PUT`.
    Put,
}

impl Method {
    /// The method as sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }

    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request an adapter wants sent. It does no I/O itself.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The full URL, query included.
    pub url: url::Url,
    /// Headers, in order (names as written).
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Bytes,
    /// Values that must never appear in captures or logs (API keys, passwords).
    pub secrets: Vec<Secret>,
}

impl HttpRequest {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: url::Url) -> Self {
        HttpRequest {
            method,
            url,
            headers: Vec::new(),
            body: Bytes::new(),
            secrets: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body and `Content-Type: application/json` (unless a content type is
    /// already set).
    pub fn with_json(mut self, body: &serde_json::Value) -> Self {
        self.body = Bytes::from(body.to_string());
        if self.header("content-type").is_none() {
            self.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        self
    }

    /// Sets a form body (`application/x-www-form-urlencoded`, unless a content type is
    /// already set).
    pub fn with_form(mut self, pairs: &[(String, String)]) -> Self {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, v);
        }
        self.body = Bytes::from(ser.finish());
        if self.header("content-type").is_none() {
            self.headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        self
    }

    /// Marks a value as secret: it is redacted from captures and logs.
    pub fn with_secret(mut self, secret: Secret) -> Self {
        if !secret.expose().is_empty() {
            self.secrets.push(secret);
        }
        self
    }

    /// The value of a header (case-insensitive name), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every secret (and its percent-encoded form) in `text` with `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            let raw = s.expose();
            out = out.replace(raw, "[REDACTED]");
            let enc: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
            if enc != raw {
                out = out.replace(&enc, "[REDACTED]");
            }
            let json = serde_json::Value::String(raw.to_string()).to_string();
            let json_inner = &json[1..json.len() - 1];
            if json_inner != raw {
                out = out.replace(json_inner, "[REDACTED]");
            }
        }
        out
    }

    fn redacted_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| {
                let sensitive = ["authorization", "proxy-authorization", "cookie"]
                    .iter()
                    .any(|s| k.eq_ignore_ascii_case(s));
                let v = if sensitive {
                    "[REDACTED]".to_string()
                } else {
                    self.redact(v)
                };
                (k.clone(), v)
            })
            .collect()
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.redact(self.url.as_str()))
            .field("headers", &self.redacted_headers())
            .field("body", &self.redact(&String::from_utf8_lossy(&self.body)))
            .finish()
    }
}

/// A response as the executor read it (the body is complete and within the cap).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers (names lowercased).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response (mostly for adapter tests and fuzzing).
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Bytes>) -> Self {
        HttpResponse {
            status,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body: body.into(),
        }
    }

    /// The value of a header (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy), truncated to `max` bytes for error reports.
    pub fn body_excerpt(&self, max: usize) -> String {
        let end = self.body.len().min(max);
        let mut s = String::from_utf8_lossy(&self.body[..end]).into_owned();
        if self.body.len() > max {
            s.push('…');
        }
        s
    }

    /// Whether the content type is JSON (`application/json` or `…+json`), or absent.
    pub fn is_json_or_untyped(&self) -> bool {
        match self.header("content-type") {
            None => true,
            Some(ct) => {
                let mime = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json") || mime == "text/json"
            }
        }
    }
}

/// One captured exchange, secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Exchange {
    /// The buyer.
    pub buyer: String,
    /// The step.
    pub step: BuyerStep,
    /// The method.
    pub method: Method,
    /// The URL, redacted.
    pub url: String,
    /// Request headers, redacted.
    pub request_headers: Vec<(String, String)>,
    /// Request body, redacted and truncated.
    pub request_body: String,
    /// Response status, when one arrived.
    pub status: Option<u16>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Response body, redacted and truncated.
    pub response_body: String,
    /// How long the exchange took.
    pub elapsed: Duration,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// Settings of the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ExecutorConfig {
    /// Largest response body read, in bytes (default 65 536). Larger answers fail as
    /// `BadResponse` without being read further.
    pub max_body_bytes: usize,
    /// Follow redirects (default false: a 3xx is returned to the adapter as is).
    pub follow_redirects: bool,
    /// Keep the last `capture` exchanges for debugging (0, the default, keeps none).
    pub capture: usize,
    /// Connect timeout in milliseconds (default 1000; the deadline still applies).
    pub connect_timeout_ms: u64,
    /// Idle pooled connections kept per host (default 32).
    pub pool_max_idle_per_host: usize,
    /// `User-Agent` header.
    pub user_agent: String,
    /// How long a buyer is paused after an HTTP 429 without a usable `Retry-After`
    /// (absent, or neither delta-seconds nor an HTTP-date), in seconds (default 60).
    pub rate_limit_default_pause_secs: u64,
    /// The longest pause a `Retry-After` can impose, in seconds (default 3600): a
    /// mistyped header cannot silence a buyer for days.
    pub rate_limit_max_pause_secs: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            max_body_bytes: 64 * 1024,
            follow_redirects: false,
            capture: 0,
            connect_timeout_ms: 1000,
            pool_max_idle_per_host: 32,
            user_agent: concat!("callbid/", env!("CARGO_PKG_VERSION")).to_string(),
            rate_limit_default_pause_secs: 60,
            rate_limit_max_pause_secs: 3600,
        }
    }
}

impl ExecutorConfig {
    /// Sets the body cap.
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
    /// Sets redirect following.
    pub fn with_follow_redirects(mut self, yes: bool) -> Self {
        self.follow_redirects = yes;
        self
    }
    /// Keeps the last `n` exchanges.
    pub fn with_capture(mut self, n: usize) -> Self {
        self.capture = n;
        self
    }
    /// Sets the pause after a 429 without a usable `Retry-After`, in seconds.
    pub fn with_rate_limit_default_pause_secs(mut self, secs: u64) -> Self {
        self.rate_limit_default_pause_secs = secs;
        self
    }
}

/// Why an exchange failed, before an adapter saw a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
#[non_exhaustive]
pub struct ExchangeError {
    /// The kind (`Timeout`, `Transport` when the request did not arrive, `BadResponse`).
    pub kind: BuyerErrorKind,
    /// Detail.
    pub message: String,
    /// Whether the request may have reached the buyer: `NotSent` only when the
    /// connection was never established (or the deadline passed before sending).
    pub delivery: Delivery,
}

/// Sends adapters' requests. Cheap to clone; clones share the connection pool and capture.
#[derive(Clone)]
pub struct HttpExecutor {
    client: reqwest::Client,
    config: Arc<ExecutorConfig>,
    captured: Arc<Mutex<VecDeque<Exchange>>>,
    /// Buyers paused after an HTTP 429, until when (shared by clones).
    paused: Arc<Mutex<HashMap<BuyerId, DateTime<Utc>>>>,
}

impl fmt::Debug for HttpExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpExecutor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A failure to build the HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ExecutorBuildError(String);

impl HttpExecutor {
    /// An executor with default settings.
    pub fn new() -> Result<Self, ExecutorBuildError> {
        Self::with_config(ExecutorConfig::default())
    }

    /// An executor with `config`.
    pub fn with_config(config: ExecutorConfig) -> Result<Self, ExecutorBuildError> {
        let redirect = if config.follow_redirects {
            reqwest::redirect::Policy::limited(5)
        } else {
            reqwest::redirect::Policy::none()
        };
        let client = reqwest::Client::builder()
            .redirect(redirect)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| ExecutorBuildError(e.to_string()))?;
        Ok(HttpExecutor {
            client,
            config: Arc::new(config),
            captured: Arc::new(Mutex::new(VecDeque::new())),
            paused: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// The captured exchanges, oldest first (empty unless `capture > 0`).
    pub fn captured(&self) -> Vec<Exchange> {
        self.captured
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Until when `buyer` is paused after an HTTP 429, while that time is ahead.
    pub fn paused_until(&self, buyer: &BuyerId) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let mut map = self.paused.lock().ok()?;
        match map.get(buyer).copied() {
            Some(until) if until > now => Some(until),
            Some(_) => {
                map.remove(buyer);
                None
            }
            None => None,
        }
    }

    /// Refuses `buyer`'s `step` while the buyer is paused after a 429: a
    /// [`BuyerErrorKind::RateLimited`] error with `skipped: true` and
    /// [`Delivery::NotSent`] (nothing is sent), saying until when.
    pub fn check_paused(&self, buyer: &BuyerId, step: BuyerStep) -> Result<(), BuyerError> {
        match self.paused_until(buyer) {
            None => Ok(()),
            Some(until) => Err(BuyerError::new(
                buyer.clone(),
                step,
                BuyerErrorKind::RateLimited {
                    until,
                    skipped: true,
                },
                format!(
                    "not sent: paused until {} after an HTTP 429 (Retry-After)",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )
            .with_delivery(Delivery::NotSent)),
        }
    }

    /// Reads the `Retry-After` of `buyer`'s HTTP 429 answer `response` to its `step`,
    /// pauses the buyer until then (a later pause already in force is kept), and
    /// returns the [`BuyerErrorKind::RateLimited`] error (`skipped: false`,
    /// [`Delivery::MaybeDelivered`]: the request reached the buyer).
    ///
    /// `Retry-After` is delta-seconds or an HTTP-date (RFC 9110 §10.2.3, parsed by
    /// `httpdate`); absent or unreadable, the pause is
    /// [`rate_limit_default_pause_secs`](ExecutorConfig::rate_limit_default_pause_secs);
    /// it never exceeds
    /// [`rate_limit_max_pause_secs`](ExecutorConfig::rate_limit_max_pause_secs).
    pub fn rate_limited(
        &self,
        buyer: &BuyerId,
        step: BuyerStep,
        response: &HttpResponse,
    ) -> BuyerError {
        let now = Utc::now();
        let default = secs(self.config.rate_limit_default_pause_secs);
        let max = now + secs(self.config.rate_limit_max_pause_secs);
        let header = response.header("retry-after");
        let (until, why) = match header.map(|v| (v, parse_retry_after(v, now))) {
            Some((v, Some(t))) => (t.clamp(now, max), format!("Retry-After {v:?}")),
            Some((v, None)) => (
                now + default,
                format!(
                    "Retry-After {v:?} is neither delta-seconds nor an HTTP-date; default pause of {} s",
                    self.config.rate_limit_default_pause_secs
                ),
            ),
            None => (
                now + default,
                format!(
                    "no Retry-After; default pause of {} s",
                    self.config.rate_limit_default_pause_secs
                ),
            ),
        };
        let until = until.min(max);
        let until = match self.paused.lock() {
            Ok(mut map) => {
                let e = map.entry(buyer.clone()).or_insert(until);
                *e = (*e).max(until);
                *e
            }
            Err(_) => until,
        };
        tracing::warn!(buyer = %buyer, step = %step, until = %until, "buyer answered HTTP 429: paused");
        BuyerError::new(
            buyer.clone(),
            step,
            BuyerErrorKind::RateLimited {
                until,
                skipped: false,
            },
            format!(
                "HTTP 429 Too Many Requests ({why}): paused until {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )
        .with_delivery(Delivery::MaybeDelivered)
        .with_raw_body(response.body_excerpt(crate::adapter::RAW_BODY_EXCERPT))
    }

    /// Sends `request` for `buyer`'s `step`, reading the whole (capped) body, finishing by
    /// `deadline` or after `timeout`, whichever comes first.
    pub async fn send(
        &self,
        buyer: &BuyerId,
        step: BuyerStep,
        request: &HttpRequest,
        deadline: Deadline,
        timeout: Option<Duration>,
    ) -> Result<HttpResponse, BuyerError> {
        let mut until = deadline.0;
        if let Some(t) = timeout {
            until = until.min(tokio::time::Instant::now() + t);
        }
        let span = tracing::info_span!(
            "buyer_http",
            buyer = %buyer,
            step = %step,
            method = %request.method,
            url = %request.redact(request.url.as_str()),
            status = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let started = tokio::time::Instant::now();
        let result = async {
            if tokio::time::Instant::now() >= until {
                return Err(ExchangeError {
                    kind: BuyerErrorKind::Timeout,
                    message: "deadline passed before the request was sent".into(),
                    delivery: Delivery::NotSent,
                });
            }
            match tokio::time::timeout_at(until, self.exchange(request)).await {
                Ok(r) => r,
                Err(_) => Err(ExchangeError {
                    kind: BuyerErrorKind::Timeout,
                    message: format!(
                        "no complete answer within {} ms",
                        until.saturating_duration_since(started).as_millis()
                    ),
                    // Still connecting, or waiting after the request was written: we
                    // cannot tell which, so the buyer may have it.
                    delivery: Delivery::MaybeDelivered,
                }),
            }
        }
        .instrument(span.clone())
        .await;
        let elapsed = started.elapsed();
        span.record("elapsed_ms", elapsed.as_millis() as u64);
        if let Ok(r) = &result {
            span.record("status", r.status);
        }
        if self.config.capture > 0 {
            self.capture(buyer, step, request, &result, elapsed);
        }
        match &result {
            Ok(r) => {
                tracing::debug!(parent: &span, status = r.status, bytes = r.body.len(), "buyer answered")
            }
            Err(e) => tracing::debug!(parent: &span, error = %e, "buyer exchange failed"),
        }
        result.map_err(|e| {
            BuyerError::new(buyer.clone(), step, e.kind, request.redact(&e.message))
                .with_delivery(e.delivery)
        })
    }

    async fn exchange(&self, request: &HttpRequest) -> Result<HttpResponse, ExchangeError> {
        let mut builder = self
            .client
            .request(request.method.to_reqwest(), request.url.clone());
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if request.header("accept-encoding").is_none() {
            builder = builder.header("Accept-Encoding", encoding::ACCEPT_ENCODING);
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body.clone());
        }
        let mut resp = builder.send().await.map_err(|e| classify(&e, request))?;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let cap = self.config.max_body_bytes;
        if let Some(len) = resp.content_length() {
            if len > cap as u64 {
                return Err(ExchangeError {
                    kind: BuyerErrorKind::BadResponse,
                    message: format!(
                        "response body of {len} bytes exceeds the {cap}-byte limit (status {status})"
                    ),
                    delivery: Delivery::MaybeDelivered,
                });
            }
        }
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > cap {
                        return Err(ExchangeError {
                            kind: BuyerErrorKind::BadResponse,
                            message: format!(
                                "response body exceeds the {cap}-byte limit (status {status}); stopped reading"
                            ),
                            delivery: Delivery::MaybeDelivered,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    if e.is_timeout() {
                        return Err(ExchangeError {
                            kind: BuyerErrorKind::Timeout,
                            message: format!("timed out reading the body: {e}"),
                            delivery: Delivery::MaybeDelivered,
                        });
                    }
                    return Err(ExchangeError {
                        kind: BuyerErrorKind::BadResponse,
                        message: format!(
                            "response body broken off after {} bytes (status {status}): {}",
                            body.len(),
                            error_chain(&e)
                        ),
                        delivery: Delivery::MaybeDelivered,
                    });
                }
            }
        }
        let (headers, body) = decode_body(headers, body, cap, status)?;
        Ok(HttpResponse {
            status,
            headers,
            body: Bytes::from(body),
        })
    }

    fn capture(
        &self,
        buyer: &BuyerId,
        step: BuyerStep,
        request: &HttpRequest,
        result: &Result<HttpResponse, ExchangeError>,
        elapsed: Duration,
    ) {
        const MAX: usize = 4096;
        let trunc = |s: String| -> String {
            if s.len() > MAX {
                let mut end = MAX;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}…", &s[..end])
            } else {
                s
            }
        };
        let (status, response_headers, response_body, error) = match result {
            Ok(r) => (
                Some(r.status),
                r.headers.clone(),
                trunc(request.redact(&String::from_utf8_lossy(&r.body))),
                None,
            ),
            Err(e) => (
                None,
                Vec::new(),
                String::new(),
                Some(request.redact(&e.to_string())),
            ),
        };
        let ex = Exchange {
            buyer: buyer.to_string(),
            step,
            method: request.method,
            url: request.redact(request.url.as_str()),
            request_headers: request.redacted_headers(),
            request_body: trunc(request.redact(&String::from_utf8_lossy(&request.body))),
            status,
            response_headers,
            response_body,
            elapsed,
            error,
        };
        if let Ok(mut q) = self.captured.lock() {
            while q.len() >= self.config.capture {
                q.pop_front();
            }
            q.push_back(ex);
        }
    }
}

fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX).min(10 * 365 * 86_400))
}

/// A `Retry-After` value (RFC 9110 §10.2.3) as the instant it names: delta-seconds
/// (`120`, saturating) after `now`, or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`,
/// and the obsolete forms `httpdate` reads). `None` for anything else.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let n = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(now + secs(n));
    }
    httpdate::parse_http_date(v).ok().map(DateTime::<Utc>::from)
}

type Headers = Vec<(String, String)>;

/// Undoes the response's `Content-Encoding` within `cap` decoded bytes; the decoded
/// response no longer carries `content-encoding` or `content-length`.
fn decode_body(
    headers: Headers,
    body: Vec<u8>,
    cap: usize,
    status: u16,
) -> Result<(Headers, Vec<u8>), ExchangeError> {
    let codings = encoding::codings(
        headers
            .iter()
            .filter(|(k, _)| k == "content-encoding")
            .map(|(_, v)| v.as_str()),
    );
    if codings.is_empty() {
        return Ok((headers, body));
    }
    let body = encoding::decode(&codings, body, cap).map_err(|e| ExchangeError {
        kind: BuyerErrorKind::BadResponse,
        message: format!("{e} (status {status})"),
        delivery: Delivery::MaybeDelivered,
    })?;
    let headers = headers
        .into_iter()
        .filter(|(k, _)| k != "content-encoding" && k != "content-length")
        .collect();
    Ok((headers, body))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Maps a send error: connection failures are `Transport` and `NotSent` (the request did
/// not arrive, a retry is safe); timeouts are `Timeout`, `NotSent` only when connecting
/// timed out; anything after the request may have been written is `BadResponse` and
/// `MaybeDelivered` (it may have been received: never retried).
fn classify(e: &reqwest::Error, request: &HttpRequest) -> ExchangeError {
    let detail = request.redact(&error_chain(e));
    if e.is_timeout() {
        ExchangeError {
            kind: BuyerErrorKind::Timeout,
            message: format!("timed out: {detail}"),
            // reqwest's connect timeout: the request never left.
            delivery: if e.is_connect() {
                Delivery::NotSent
            } else {
                Delivery::MaybeDelivered
            },
        }
    } else if e.is_connect() {
        ExchangeError {
            kind: BuyerErrorKind::Transport,
            message: format!("connection failed: {detail}"),
            delivery: Delivery::NotSent,
        }
    } else if e.is_builder() {
        ExchangeError {
            kind: BuyerErrorKind::Config,
            message: format!("invalid request: {detail}"),
            delivery: Delivery::NotSent,
        }
    } else {
        ExchangeError {
            kind: BuyerErrorKind::BadResponse,
            message: format!("no usable answer (the request may have been received): {detail}"),
            delivery: Delivery::MaybeDelivered,
        }
    }
}

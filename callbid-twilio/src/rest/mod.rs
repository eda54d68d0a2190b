//! A hand-written client for the parts of Twilio's REST API callbid uses:
//! calls, a call's recordings, phone number search and purchase, and Lookup v2.
//!
//! Requests are form encoded with PascalCase keys and arrays as repeated keys;
//! authentication is HTTP Basic with the auth token or an API key (`SK…`), the
//! account SID always in the path. Failed calls return [`RestError`] with
//! Twilio's code, message, more_info and status, or the raw body. Retries follow
//! [`RetryConfig`]. Lists are `Stream`s that follow `next_page_uri`, but only
//! on the API base URL's own scheme, host, port and path: any other target ends
//! the stream with [`RestError::UntrustedNextPage`] instead of sending the
//! account's credentials elsewhere. Twilio's server-relative URIs
//! (`next_page_uri`, `uri`, `subresource_uris`) are relative to the API root, so
//! they are placed under the base URL's path ([`Client::resolve_uri`]), which
//! makes a base such as `http://proxy/twilio/` work page after page. Response bodies are read incrementally up to
//! [`ClientBuilder::max_response_bytes`] ([`RestError::ResponseTooLarge`] past it).
//!
//! ```no_run
//! # async fn demo() -> Result<(), callbid_twilio::rest::RestError> {
//! use callbid_twilio::rest::{Client, CreateCall, CallInstructions};
//! let client = Client::builder("AC0123456789abcdef0123456789abcdef")
//!     .auth_token("your_auth_token")
//!     .build()?;
//! let call = client
//!     .calls()
//!     .create(&CreateCall::new("+15551230000", "+15557650000", CallInstructions::Url("https://example.com/voice".into())))
//!     .await?;
//! println!("{:?} {:?}", call.sid, call.status);
//! # Ok(()) }
//! ```

mod calls;
mod error;
mod lookups;
mod numbers;
mod retry;

pub use calls::{
    Call, CallInstructions, Calls, CreateCall, ListCalls, Recording, UpdateCall, UpdateStatus,
};
pub use error::{RestError, TwilioApiError};
pub use lookups::{LineTypeIntelligence, Lookups, PhoneNumberLookup};
pub use numbers::{
    AvailablePhoneNumber, AvailablePhoneNumbers, AvailableSearch, Capabilities,
    IncomingPhoneNumber, IncomingPhoneNumberParams, IncomingPhoneNumbers, ListIncomingPhoneNumbers,
};
pub use retry::{parse_retry_after, RetryConfig};

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

/// Twilio's REST API base URL.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// Twilio's Lookup API base URL.
pub const DEFAULT_LOOKUPS_BASE: &str = "https://lookups.twilio.com";
/// The API version path segment.
pub const API_VERSION: &str = "2010-04-01";
/// Default cap on a response body ([`ClientBuilder::max_response_bytes`]): 8 MiB,
/// room for a full 1,000-item page (a Call is about 2 KB of JSON).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 << 20;

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// The account SID and its auth token.
    AuthToken(String),
    /// An API key (`SK…`) and its secret.
    ApiKey {
        /// The key SID (`SK…`).
        sid: String,
        /// The key secret.
        secret: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::AuthToken(_) => f.write_str("AuthToken(<redacted>)"),
            Credentials::ApiKey { sid, .. } => {
                write!(f, "ApiKey {{ sid: {sid:?}, secret: <redacted> }}")
            }
        }
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    account_sid: String,
    credentials: Option<Credentials>,
    api_base: String,
    lookups_base: String,
    retry: RetryConfig,
    timeout: Duration,
    max_response_bytes: usize,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Authenticate with the account's auth token.
    #[must_use]
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::AuthToken(token.into()));
        self
    }

    /// Authenticate with an API key (`SK…`) and its secret.
    #[must_use]
    pub fn api_key(mut self, sid: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::ApiKey {
            sid: sid.into(),
            secret: secret.into(),
        });
        self
    }

    /// Base URL for the 2010-04-01 API (default `https://api.twilio.com`).
    #[must_use]
    pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
        self.api_base = url.into();
        self
    }

    /// Base URL for Lookup v2 (default `https://lookups.twilio.com`).
    #[must_use]
    pub fn lookups_base_url(mut self, url: impl Into<String>) -> Self {
        self.lookups_base = url.into();
        self
    }

    /// Retry policy (default [`RetryConfig::default`]).
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Per-request timeout (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body read, in bytes (default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`]). The body is read chunk by chunk and the
    /// request fails with [`RestError::ResponseTooLarge`] as soon as it goes over;
    /// a larger `Content-Length` is refused before reading. Must be at least 1.
    #[must_use]
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Use this reqwest client (its own timeout and redirect settings then apply;
    /// the default client follows no redirects).
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Validates the configuration and builds the client.
    pub fn build(self) -> Result<Client, RestError> {
        check_sid("AccountSid", "AC", &self.account_sid).map_err(|e| match e {
            RestError::InvalidArgument {
                field,
                value,
                reason,
            } => RestError::Config {
                field,
                value,
                reason,
            },
            other => other,
        })?;
        let credentials = self.credentials.ok_or_else(|| RestError::Config {
            field: "credentials",
            value: String::new(),
            reason: "set an auth token or an API key".to_owned(),
        })?;
        if let Credentials::ApiKey { sid, .. } = &credentials {
            if !sid.starts_with("SK") {
                return Err(RestError::Config {
                    field: "api_key",
                    value: sid.clone(),
                    reason: "API key SIDs start with SK".to_owned(),
                });
            }
        }
        if self.max_response_bytes == 0 {
            return Err(RestError::Config {
                field: "max_response_bytes",
                value: "0".to_owned(),
                reason: "must be at least 1".to_owned(),
            });
        }
        let api_base = parse_base("api_base_url", &self.api_base)?;
        let lookups_base = parse_base("lookups_base_url", &self.lookups_base)?;
        let http = match self.http {
            Some(h) => h,
            // Twilio's API does not redirect; following one would replay the
            // request, credentials included, to wherever the Location points.
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.timeout)
                .user_agent(concat!("callbid-twilio/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| RestError::Config {
                    field: "http_client",
                    value: String::new(),
                    reason: e.to_string(),
                })?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                account_sid: self.account_sid,
                credentials,
                api_base,
                lookups_base,
                retry: self.retry,
                max_response_bytes: self.max_response_bytes,
            }),
        })
    }
}

fn parse_base(field: &'static str, value: &str) -> Result<Url, RestError> {
    let url = Url::parse(value).map_err(|e| RestError::Config {
        field,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(RestError::Config {
            field,
            value: value.to_owned(),
            reason: "must be an absolute http(s) URL".to_owned(),
        });
    }
    // A query would be sent with (and merged into) every request, and user
    // information would sit beside the Basic credentials: both are refused.
    let reason = if url.query().is_some() || url.fragment().is_some() {
        Some("must not have a query or fragment")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("must not carry user information (set credentials with auth_token or api_key)")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(RestError::Config {
            field,
            // Never echo a password.
            value: redact_userinfo(&url),
            reason: reason.to_owned(),
        });
    }
    Ok(url)
}

/// `url` with any password replaced by `<redacted>`.
fn redact_userinfo(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("<redacted>"));
    }
    shown.to_string()
}

/// `base` with its path ending in `/`: the directory Twilio's URIs live under.
fn api_root(base: &Url) -> Url {
    let mut root = base.clone();
    if !root.path().ends_with('/') {
        let path = format!("{}/", root.path());
        root.set_path(&path);
    }
    root.set_query(None);
    root.set_fragment(None);
    root
}

/// Places a Twilio URI under `base` and checks that it stays there.
///
/// The input is first cleaned the way the WHATWG URL parser cleans it (ASCII
/// tab and newline removed, C0 controls and spaces trimmed), so the shape
/// tested here is the shape `url` parses. Then:
/// - an absolute URL (`https://…`) is taken as it is;
/// - a scheme-relative one (`//host/…`, also with `\`) is resolved against the
///   base, which only supplies the scheme;
/// - anything else is relative to the API root: one leading `/` is dropped and
///   the rest is appended under the base's path (Twilio's URIs are relative to
///   the API root, not to the host; `Url::join` would drop the base's path).
///
/// The result must have the base's scheme, host and port, no user information,
/// and a path under the base's path (so `..` cannot climb out of it), else the
/// reason is returned.
pub(crate) fn resolve_under(base: &Url, uri: &str) -> Result<Url, String> {
    let cleaned: String = uri
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| c <= ' ');
    let root = api_root(base);
    let slash = |c: char| c == '/' || c == '\\';
    let mut lead = cleaned.chars();
    let scheme_relative = lead.next().is_some_and(slash) && lead.next().is_some_and(slash);
    let resolved = if Url::parse(cleaned).is_ok() || scheme_relative {
        root.join(cleaned)
    } else {
        let rest = cleaned.strip_prefix(slash).unwrap_or(cleaned);
        root.join(rest)
    }
    .map_err(|e| format!("does not resolve: {e}"))?;
    let same_origin = resolved.scheme() == root.scheme()
        && resolved.host() == root.host()
        && resolved.port_or_known_default() == root.port_or_known_default();
    if !same_origin {
        return Err(format!(
            "points outside the API base URL {}",
            root.origin().ascii_serialization()
        ));
    }
    if !resolved.username().is_empty() || resolved.password().is_some() {
        return Err("carries user information".to_owned());
    }
    let under = resolved.path().starts_with(root.path())
        || resolved.path() == root.path().trim_end_matches('/');
    if !under {
        return Err(format!(
            "path `{}` is outside the API base URL's path `{}`",
            resolved.path(),
            root.path()
        ));
    }
    Ok(resolved)
}

/// Checks a Twilio SID: `prefix` plus 32 hex digits.
pub(crate) fn check_sid(field: &'static str, prefix: &str, sid: &str) -> Result<(), RestError> {
    let ok = sid.len() == 34
        && sid.starts_with(prefix)
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(RestError::InvalidArgument {
            field,
            value: sid.to_owned(),
            reason: format!("expected {prefix} followed by 32 hex digits"),
        })
    }
}

/// Checks `PageSize` (Twilio accepts 1–1000).
pub(crate) fn check_page_size(page_size: Option<u32>) -> Result<(), RestError> {
    match page_size {
        Some(n) if n == 0 || n > 1000 => Err(RestError::InvalidArgument {
            field: "PageSize",
            value: n.to_string(),
            reason: "must be between 1 and 1000".into(),
        }),
        _ => Ok(()),
    }
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    account_sid: String,
    credentials: Credentials,
    api_base: Url,
    lookups_base: Url,
    retry: RetryConfig,
    max_response_bytes: usize,
}

/// The Twilio REST client. Cheap to clone (shared connection pool).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A form body: PascalCase keys, arrays as repeated keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Form(Vec<(&'static str, String)>);

impl Form {
    pub(crate) fn set(&mut self, key: &'static str, value: impl ToString) {
        self.0.push((key, value.to_string()));
    }
    pub(crate) fn opt<T: ToString>(&mut self, key: &'static str, value: &Option<T>) {
        if let Some(v) = value {
            self.set(key, v.to_string());
        }
    }
    pub(crate) fn list<T: ToString>(&mut self, key: &'static str, values: &[T]) {
        for v in values {
            self.set(key, v.to_string());
        }
    }
    pub(crate) fn pairs(&self) -> &[(&'static str, String)] {
        &self.0
    }
    pub(crate) fn encode(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// One logical request, re-sent on retry.
pub(crate) struct Request {
    pub(crate) operation: &'static str,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) form: Option<Form>,
}

impl Client {
    /// Starts building a client for `account_sid` (`AC…`).
    pub fn builder(account_sid: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            account_sid: account_sid.into(),
            credentials: None,
            api_base: DEFAULT_API_BASE.to_owned(),
            lookups_base: DEFAULT_LOOKUPS_BASE.to_owned(),
            retry: RetryConfig::default(),
            timeout: Duration::from_secs(30),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            http: None,
        }
    }

    /// The account SID used in paths.
    pub fn account_sid(&self) -> &str {
        &self.inner.account_sid
    }

    /// Calls: create, fetch, update, list, recordings.
    pub fn calls(&self) -> Calls<'_> {
        Calls::new(self)
    }

    /// Search available numbers in `country` (ISO 3166-1 alpha-2, e.g. `US`).
    pub fn available_phone_numbers(&self, country: &str) -> AvailablePhoneNumbers<'_> {
        AvailablePhoneNumbers::new(self, country)
    }

    /// The account's numbers: buy, list, update, release.
    pub fn incoming_phone_numbers(&self) -> IncomingPhoneNumbers<'_> {
        IncomingPhoneNumbers::new(self)
    }

    /// Lookup v2.
    pub fn lookups(&self) -> Lookups<'_> {
        Lookups::new(self)
    }

    /// `{api_base}/2010-04-01/Accounts/{AccountSid}/{segments…}`.
    pub(crate) fn account_url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.api_base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty()
                .extend([API_VERSION, "Accounts", self.inner.account_sid.as_str()])
                .extend(segments);
        }
        url
    }

    /// `{lookups_base}/{segments…}`.
    pub(crate) fn lookups_url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.lookups_base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        url
    }

    /// Resolves a `next_page_uri` under the API base URL (see [`resolve_under`])
    /// and refuses anything that would leave it: the request carries the
    /// account's credentials.
    pub(crate) fn resolve_api_uri(
        &self,
        uri: &str,
        operation: &'static str,
    ) -> Result<Url, RestError> {
        resolve_under(&self.inner.api_base, uri).map_err(|reason| RestError::UntrustedNextPage {
            operation,
            next_page_uri: uri.to_owned(),
            reason,
        })
    }

    /// The URL of a URI Twilio returned in a 2010-04-01 resource (`uri`, a
    /// `subresource_uris` value, `next_page_uri`), e.g.
    /// `/2010-04-01/Accounts/AC…/Calls/CA…/Recordings.json`.
    ///
    /// Twilio's documentation gives these as "relative to
    /// `https://api.twilio.com`", the API root, so a server-relative URI is
    /// placed under the configured API base URL's path (with
    /// `api_base_url("http://proxy/twilio")` the URI above becomes
    /// `http://proxy/twilio/2010-04-01/…`), not resolved against its host as a
    /// browser would. An absolute (or `//host`) URL is kept as it is. Either way
    /// the result must stay on the base URL's scheme, host, port and path and
    /// carry no user information, or [`RestError::UntrustedUri`] is returned.
    pub fn resolve_uri(&self, uri: &str) -> Result<Url, RestError> {
        resolve_under(&self.inner.api_base, uri).map_err(|reason| RestError::UntrustedUri {
            operation: "resolve_uri",
            uri: uri.to_owned(),
            reason,
        })
    }

    /// Reads a response body, refusing it once it exceeds the configured cap.
    async fn read_body(
        &self,
        operation: &'static str,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, RestError> {
        let limit = self.inner.max_response_bytes;
        let status = resp.status().as_u16();
        let too_large = || RestError::ResponseTooLarge {
            operation,
            status,
            limit,
        };
        let declared = resp.content_length().unwrap_or(0);
        if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(too_large());
        }
        // Never pre-allocate more than the cap, whatever the header claims.
        let mut body = Vec::with_capacity(usize::try_from(declared).unwrap_or(0).min(limit));
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|source| RestError::Transport { operation, source })?
        {
            if chunk.len() > limit.saturating_sub(body.len()) {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.inner.credentials {
            Credentials::AuthToken(token) => rb.basic_auth(&self.inner.account_sid, Some(token)),
            Credentials::ApiKey { sid, secret } => rb.basic_auth(sid, Some(secret)),
        }
    }

    /// Sends with retries; returns the status and body of a success response.
    pub(crate) async fn send(&self, req: &Request) -> Result<(u16, Vec<u8>), RestError> {
        let retry = &self.inner.retry;
        let idempotent = matches!(req.method, Method::GET | Method::DELETE | Method::HEAD);
        let body = req.form.as_ref().map(Form::encode);
        let mut attempt: u32 = 0;
        loop {
            let mut rb = self.inner.http.request(req.method.clone(), req.url.clone());
            rb = self
                .authorize(rb)
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(b) = &body {
                rb = rb
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(b.clone());
            }
            let may_retry = attempt < retry.max_retries;
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    // A connect error means nothing reached Twilio.
                    let safe = e.is_connect() || idempotent;
                    if may_retry && safe {
                        tokio::time::sleep(retry.backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(RestError::Transport {
                        operation: req.operation,
                        source: e,
                    });
                }
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let bytes = self.read_body(req.operation, resp).await?;
            if status.is_success() {
                return Ok((status.as_u16(), bytes));
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || (status == StatusCode::SERVICE_UNAVAILABLE && idempotent);
            if retryable && may_retry {
                let wait = match retry_after {
                    Some(d) if d > retry.max_retry_after => {
                        return Err(error::from_response(req.operation, status.as_u16(), &bytes));
                    }
                    Some(d) => d,
                    None => retry.backoff(attempt),
                };
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Err(error::from_response(req.operation, status.as_u16(), &bytes));
        }
    }

    /// Sends and decodes a JSON response.
    pub(crate) async fn json<T: DeserializeOwned>(&self, req: &Request) -> Result<T, RestError> {
        let (status, body) = self.send(req).await?;
        decode(req.operation, status, &body)
    }

    /// A stream over every item of a paged list, following `next_page_uri`.
    pub(crate) fn paginate<T>(
        &self,
        first: Url,
        key: &'static str,
        operation: &'static str,
    ) -> BoxStream<'static, Result<T, RestError>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let client = self.clone();
        // The state is the next page to fetch: a refused `next_page_uri` is kept
        // as an error so the current page's items are yielded before it.
        stream::try_unfold(
            Some(Ok(first)),
            move |next: Option<Result<Url, RestError>>| {
                let client = client.clone();
                async move {
                    let url = match next {
                        None => return Ok(None),
                        Some(next) => next?,
                    };
                    let req = Request {
                        operation,
                        method: Method::GET,
                        url,
                        form: None,
                    };
                    let (status, body) = client.send(&req).await?;
                    let mut page: serde_json::Value = decode(operation, status, &body)?;
                    let items: Vec<T> = serde_json::from_value(
                        page.get_mut(key)
                            .map(serde_json::Value::take)
                            .unwrap_or_default(),
                    )
                    .map_err(|source| RestError::Decode {
                        operation,
                        status,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        source,
                    })?;
                    let next = match page
                        .get("next_page_uri")
                        .and_then(serde_json::Value::as_str)
                    {
                        Some(uri) if !uri.is_empty() => {
                            Some(client.resolve_api_uri(uri, operation))
                        }
                        _ => None,
                    };
                    Ok(Some((items, next)))
                }
            },
        )
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    operation: &'static str,
    status: u16,
    body: &[u8],
) -> Result<T, RestError> {
    serde_json::from_slice(body).map_err(|source| RestError::Decode {
        operation,
        status,
        body: String::from_utf8_lossy(body).into_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_bad_config_by_name() {
        let e = Client::builder("AC123")
            .auth_token("t")
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("AccountSid") && e.contains("AC123"), "{e}");
        let sid = "AC0123456789abcdef0123456789abcdef";
        let e = Client::builder(sid).build().unwrap_err().to_string();
        assert!(e.contains("credentials"), "{e}");
        let e = Client::builder(sid)
            .api_key("XX1", "s")
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("SK"), "{e}");
        let e = Client::builder(sid)
            .auth_token("t")
            .api_base_url("ftp://x")
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("api_base_url") && e.contains("ftp://x"), "{e}");
        let c = Client::builder(sid)
            .auth_token("t")
            .api_base_url("http://127.0.0.1:9/prefix/")
            .build()
            .unwrap();
        assert_eq!(
            c.account_url(&["Calls.json"]).as_str(),
            format!("http://127.0.0.1:9/prefix/2010-04-01/Accounts/{sid}/Calls.json")
        );
        assert!(!format!("{c:?}").contains("\"t\""));
    }

    proptest::proptest! {
        /// Whatever a server sends as a URI, a resolved URL never leaves the
        /// base's scheme, host, port or path, and never carries user information.
        #[test]
        fn resolved_uris_never_leave_the_base(
            uri in "[/\\\\.%2eE:@?#a-z0-9 \t\n-]{0,24}",
            base in proptest::sample::select(vec![
                "http://127.0.0.1:9", "http://127.0.0.1:9/", "http://127.0.0.1:9/twilio",
                "https://h.example/a/b/", "http://[::1]:8080/x",
            ]),
        ) {
            let base = Url::parse(base).unwrap();
            let root = api_root(&base);
            if let Ok(u) = resolve_under(&base, &uri) {
                proptest::prop_assert_eq!(u.origin(), base.origin());
                proptest::prop_assert!(u.username().is_empty() && u.password().is_none());
                proptest::prop_assert!(
                    u.path().starts_with(root.path())
                        || u.path() == root.path().trim_end_matches('/'),
                    "{} escaped {}", u, root
                );
            }
        }
    }

    #[test]
    fn twilio_uris_are_relative_to_the_api_root() {
        let base = Url::parse("http://127.0.0.1:9/twilio").unwrap();
        for uri in [
            "/2010-04-01/Accounts/AC1/Calls.json?Page=1",
            "2010-04-01/Accounts/AC1/Calls.json?Page=1",
            "http://127.0.0.1:9/twilio/2010-04-01/Accounts/AC1/Calls.json?Page=1",
            "//127.0.0.1:9/twilio/2010-04-01/Accounts/AC1/Calls.json?Page=1",
        ] {
            assert_eq!(
                resolve_under(&base, uri).unwrap().as_str(),
                "http://127.0.0.1:9/twilio/2010-04-01/Accounts/AC1/Calls.json?Page=1",
                "{uri}"
            );
        }
        let e = resolve_under(&base, "/../x").unwrap_err();
        assert!(e.contains("/twilio/"), "{e}");
    }

    #[test]
    fn form_repeats_array_keys() {
        let mut f = Form::default();
        f.set("To", "+1 555");
        f.list("StatusCallbackEvent", &["initiated", "answered"]);
        f.opt("Record", &Some(true));
        f.opt::<u32>("Timeout", &None);
        assert_eq!(
            f.encode(),
            "To=%2B1+555&StatusCallbackEvent=initiated&StatusCallbackEvent=answered&Record=true"
        );
    }
}

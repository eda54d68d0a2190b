//! Operator access to the dashboard and the agent API: one shared operator token.
//!
//! The Twilio webhooks are protected by their signatures; everything an operator uses
//! (the call log with callers' numbers, the exports, the live auction feed, the agent
//! desk's "start auction" and "forward") is protected by this module when a token is
//! configured (`--dashboard-token` / `CALLBID_DASHBOARD_TOKEN`):
//!
//! - API clients send `Authorization: Bearer <token>`.
//! - Browsers log in at `GET /login` (a small form); `POST /login` with the right token
//!   sets the `callbid_session` cookie — `HttpOnly`, `SameSite=Strict`, `Path=/`, and
//!   `Secure` when the request came through an HTTPS proxy (`X-Forwarded-Proto: https`).
//!   The cookie is axum-extra's signed cookie (HMAC-SHA256 by the `cookie` crate) of
//!   when the session began and when it was last used, never the token. Its key is
//!   derived from the token (SHA-512 of a label and the token), so every instance that
//!   shares the token accepts it, and changing the token ends every session.
//! - A session ends after [`SessionPolicy::idle_timeout`] without a request (default
//!   30 minutes; each request at least a minute after the last renews the cookie) and
//!   [`SessionPolicy::lifetime`] after the login whatever happens (default 12 hours).
//!   `POST /logout` clears the cookie.
//! - Wrong tokens (login form or bearer) are counted per client IP: after
//!   [`FREE_ATTEMPTS`] failures in a row, that IP is locked out for 1 s, doubling with
//!   each further failure up to [`MAX_LOCKOUT`]; while locked, every attempt is `429` with
//!   `Retry-After`, even with the right token. A success clears the count. The IP is the
//!   TCP peer (`ConnectInfo`, which [`crate::serve::serve_gracefully`] provides; an app
//!   serving without it shares one count among all clients).
//! - A token shorter than [`MIN_TOKEN_LEN`] characters is refused on a non-loopback
//!   listen address ([`check_exposure`]).
//! - Without either, a page (`GET` of anything not under an `/api/` path) is answered
//!   with `303 See Other` to `/login?next=<the page>`, anything else with
//!   `401 {"error": …, "login": "/login"}` and `WWW-Authenticate: Bearer`.
//!
//! Tokens are compared in constant time (HMACs of both sides, compared with `subtle`).
//! State-changing routes are safe against CSRF because a `SameSite=Strict` cookie is
//! never sent on a request another site starts, and a bearer token is never sent by a
//! browser on its own.
//!
//! With no token the routes stay open — allowed only on a loopback listen address (see
//! [`check_exposure`]), or with the explicit `--insecure-open-dashboard` opt-out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "callbid_session";
/// The command-line flag that sets the token.
pub const TOKEN_FLAG: &str = "--dashboard-token";
/// The environment variable that sets the token.
pub const TOKEN_ENV: &str = "CALLBID_DASHBOARD_TOKEN";
/// The opt-out flag for an open dashboard on a non-loopback address.
pub const INSECURE_FLAG: &str = "--insecure-open-dashboard";

const MAC_LABEL: &[u8] = b"callbid operator token compare v1\0";
const COOKIE_KEY_LABEL: &[u8] = b"callbid operator session cookie v2\0";

/// Shortest token accepted on a non-loopback listen address.
pub const MIN_TOKEN_LEN: usize = 32;
/// Wrong tokens from one IP before it is locked out.
pub const FREE_ATTEMPTS: u32 = 5;
/// Longest lockout (the doubling stops there).
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// IPs whose failures are remembered at once (the stalest are forgotten first).
const MAX_TRACKED_IPS: usize = 10_000;
/// How stale a session's last use may be before a request renews the cookie.
const RENEW_AFTER: Duration = Duration::from_secs(60);

/// How long an operator session lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ends a session this long after its last request.
    pub idle_timeout: Duration,
    /// Ends a session this long after the login.
    pub lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_timeout: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// Why the operator access configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
    /// A token shorter than [`MIN_TOKEN_LEN`] on a non-loopback listen address.
    #[error(
        "refusing a {length}-character {TOKEN_FLAG} on --listen {listen} (not a loopback \
         address): use at least {MIN_TOKEN_LEN} random characters (e.g. `openssl rand -hex 32`)"
    )]
    ShortToken {
        /// The configured listen address.
        listen: SocketAddr,
        /// The token's length in characters.
        length: usize,
    },
    /// A non-loopback listen address without a token (and without the opt-out).
    #[error(
        "refusing to serve the operator dashboard and API without a token on --listen {listen} \
         (not a loopback address): set {TOKEN_FLAG} (or ${TOKEN_ENV}) to a long random secret, \
         listen on 127.0.0.1, or pass {INSECURE_FLAG} to serve them to anyone who can reach {listen}"
    )]
    OpenOnPublicAddress {
        /// The configured listen address.
        listen: SocketAddr,
    },
}

/// How the operator routes are protected: open (no token) or by a token.
#[derive(Clone)]
pub struct OperatorAuth {
    inner: Option<Arc<Keys>>,
}

struct Keys {
    /// Random per-process HMAC key (for the constant-time comparison).
    key: [u8; 32],
    /// HMAC of the configured token.
    token_mac: [u8; 32],
    /// Signs session cookies; derived from the token.
    cookie_key: Key,
    policy: SessionPolicy,
    failures: Mutex<HashMap<Option<IpAddr>, Failures>>,
}

/// Wrong tokens in a row from one IP.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

impl std::fmt::Debug for OperatorAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints the token or the key.
        f.debug_struct("OperatorAuth")
            .field("token_required", &self.inner.is_some())
            .finish()
    }
}

fn mac(key: &[u8; 32], value: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; a 32-byte key cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC-SHA256 takes any key length"));
    m.update(MAC_LABEL);
    m.update(value);
    m.finalize().into_bytes().into()
}

fn cookie_key(token: &str) -> Key {
    let mut h = Sha512::new();
    h.update(COOKIE_KEY_LABEL);
    h.update(token.as_bytes());
    Key::from(&h.finalize())
}

/// How a request proved operator access.
enum Access {
    Bearer,
    /// A valid session cookie; `renew` with its start when its last use is stale.
    Session {
        renew: Option<i64>,
    },
    None,
}

impl OperatorAuth {
    /// No token: every operator route is open.
    pub fn open() -> OperatorAuth {
        OperatorAuth { inner: None }
    }

    /// Operator routes need `token`. An empty or all-blank token means none (open).
    pub fn with_token(token: &str) -> OperatorAuth {
        if token.trim().is_empty() {
            return OperatorAuth::open();
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let token_mac = mac(&key, token.as_bytes());
        OperatorAuth {
            inner: Some(Arc::new(Keys {
                key,
                token_mac,
                cookie_key: cookie_key(token),
                policy: SessionPolicy::default(),
                failures: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// The same access with another session policy.
    pub fn with_sessions(self, policy: SessionPolicy) -> OperatorAuth {
        let Some(k) = self.inner else {
            return self;
        };
        OperatorAuth {
            inner: Some(Arc::new(Keys {
                key: k.key,
                token_mac: k.token_mac,
                cookie_key: k.cookie_key.clone(),
                policy,
                failures: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// Whether a token is required.
    pub fn token_required(&self) -> bool {
        self.inner.is_some()
    }

    fn token_matches(&self, candidate: &str) -> bool {
        match &self.inner {
            None => true,
            Some(k) => bool::from(mac(&k.key, candidate.as_bytes()).ct_eq(&k.token_mac)),
        }
    }

    /// Whether a request carries the right bearer token or a live session cookie
    /// (always true when no token is configured).
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        !matches!(self.access(headers, now_unix()), Access::None)
    }

    fn access(&self, headers: &HeaderMap, now: i64) -> Access {
        let Some(k) = &self.inner else {
            return Access::Bearer;
        };
        for v in headers.get_all(header::AUTHORIZATION) {
            if let Some(t) = v.to_str().ok().and_then(bearer) {
                if self.token_matches(t) {
                    return Access::Bearer;
                }
            }
        }
        let jar = SignedCookieJar::from_headers(headers, k.cookie_key.clone());
        let Some((start, last)) = jar
            .get(SESSION_COOKIE)
            .and_then(|c| parse_session(c.value()))
        else {
            return Access::None;
        };
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let alive = now >= start
            && now - start < secs(k.policy.lifetime)
            && now - last < secs(k.policy.idle_timeout);
        if !alive {
            return Access::None;
        }
        let renew = (now - last >= secs(RENEW_AFTER)).then_some(start);
        Access::Session { renew }
    }

    /// A bearer token was sent and was wrong.
    fn wrong_bearer(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::AUTHORIZATION)
            .into_iter()
            .filter_map(|v| v.to_str().ok().and_then(bearer))
            .any(|t| !self.token_matches(t))
    }

    /// `Err(retry after)` while `ip` is locked out.
    fn locked(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(k) = &self.inner else {
            return Ok(());
        };
        let now = Instant::now();
        let Ok(f) = k.failures.lock() else {
            return Ok(());
        };
        match f.get(&ip).and_then(|x| x.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `ip`; from the [`FREE_ATTEMPTS`]-th on, locks it out.
    fn failed(&self, ip: Option<IpAddr>) {
        let Some(k) = &self.inner else {
            return;
        };
        let now = Instant::now();
        let Ok(mut f) = k.failures.lock() else {
            return;
        };
        if f.len() >= MAX_TRACKED_IPS && !f.contains_key(&ip) {
            let stalest = f.iter().min_by_key(|(_, x)| x.last).map(|(ip, _)| *ip);
            if let Some(s) = stalest {
                f.remove(&s);
            }
        }
        let e = f.entry(ip).or_insert(Failures {
            count: 0,
            locked_until: None,
            last: now,
        });
        e.count = e.count.saturating_add(1);
        e.last = now;
        if e.count >= FREE_ATTEMPTS {
            let doublings = (e.count - FREE_ATTEMPTS).min(20);
            let lock = Duration::from_secs(1u64 << doublings).min(MAX_LOCKOUT);
            e.locked_until = Some(now + lock);
        }
    }

    fn succeeded(&self, ip: Option<IpAddr>) {
        if let Some(k) = &self.inner {
            if let Ok(mut f) = k.failures.lock() {
                f.remove(&ip);
            }
        }
    }

    /// A signed session cookie begun at `start`, last used `now`.
    fn session_cookie(&self, start: i64, now: i64, headers: &HeaderMap) -> Option<SignedCookieJar> {
        let k = self.inner.as_ref()?;
        let jar = SignedCookieJar::from_headers(&HeaderMap::new(), k.cookie_key.clone());
        let mut c = Cookie::new(SESSION_COOKIE, format!("v2.{start}.{now}"));
        c.set_path("/");
        c.set_http_only(true);
        c.set_same_site(SameSite::Strict);
        c.set_secure(behind_https(headers));
        Some(jar.add(c))
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `v2.<start>.<last>` (Unix seconds).
fn parse_session(v: &str) -> Option<(i64, i64)> {
    let mut parts = v.strip_prefix("v2.")?.split('.');
    let start = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((start, last))
}

fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The client's IP: the TCP peer when the server provides `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(peer_ip(&parts.extensions)))
    }
}

fn peer_ip(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

/// The path this router is nested under (`""` at the root): the original URI's path
/// minus the path the router sees.
fn mount_prefix_of(ext: &axum::http::Extensions, inner: &str) -> String {
    ext.get::<axum::extract::OriginalUri>()
        .and_then(|o| o.0.path().strip_suffix(inner).map(str::to_owned))
        .map(|p| p.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

fn mount_prefix(req: &Request) -> String {
    mount_prefix_of(req.extensions(), req.uri().path())
}

/// The mount prefix seen from a handler.
#[derive(Debug, Clone)]
struct Prefix(String);

impl<S: Send + Sync> FromRequestParts<S> for Prefix {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Prefix(mount_prefix_of(&parts.extensions, parts.uri.path())))
    }
}

/// `429` with `Retry-After` for a locked-out IP.
fn too_many(retry: Duration) -> Response {
    let secs = retry.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, HeaderValue::from(secs))],
        Json(json!({
            "error": format!("too many wrong operator tokens from this address: try again in {secs} s"),
        })),
    )
        .into_response()
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the listen address against the token: with no token (`None` or blank) a
/// non-loopback address is refused unless `insecure_open` (the
/// `--insecure-open-dashboard` opt-out). Returns the protection to apply.
pub fn check_exposure(
    listen: SocketAddr,
    token: Option<&str>,
    insecure_open: bool,
) -> Result<OperatorAuth, ExposureError> {
    let auth = token.map_or_else(OperatorAuth::open, OperatorAuth::with_token);
    let public = !listen.ip().to_canonical().is_loopback();
    if !auth.token_required() && public && !insecure_open {
        return Err(ExposureError::OpenOnPublicAddress { listen });
    }
    let length = token.map_or(0, |t| t.trim().chars().count());
    if auth.token_required() && public && length < MIN_TOKEN_LEN {
        return Err(ExposureError::ShortToken { listen, length });
    }
    Ok(auth)
}

/// The warning printed when the operator routes are served open on a non-loopback
/// address through `--insecure-open-dashboard`.
pub fn insecure_warning(listen: SocketAddr) -> String {
    let bar = "!".repeat(78);
    format!(
        "{bar}\n!! {INSECURE_FLAG}: the dashboard (callers' numbers, exports) and the agent API\n\
         !! are served WITHOUT a token on {listen}. Anyone who can reach it can read\n\
         !! the call log and start or forward calls. Set {TOKEN_FLAG} instead.\n{bar}"
    )
}

/// Puts `routes` (dashboard pages, `/api/*`, agent routes) behind `auth` and adds
/// `GET`/`POST /login` and `POST /logout`. With no token the routes are returned as
/// they are and `/login` just leads to the dashboard.
pub fn protect(routes: Router, auth: &OperatorAuth) -> Router {
    let login = Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .with_state(auth.clone());
    if !auth.token_required() {
        return routes.merge(login);
    }
    routes
        .layer(middleware::from_fn_with_state(auth.clone(), guard))
        .merge(login)
}

/// Puts `routes` behind operator access without adding `/login` (for routers merged next
/// to one that [`protect`] already carries the login routes for).
pub fn guard_only(routes: Router, auth: &OperatorAuth) -> Router {
    if !auth.token_required() {
        return routes;
    }
    routes.layer(middleware::from_fn_with_state(auth.clone(), guard))
}

/// Machine clients get `401`, never the login redirect: the JSON API and the
/// Prometheus scrape endpoint.
fn is_api(path: &str) -> bool {
    path.contains("/api/") || path.ends_with("/metrics")
}

async fn guard(State(auth): State<OperatorAuth>, req: Request, next: Next) -> Response {
    let ip = peer_ip(req.extensions());
    if let Err(retry) = auth.locked(ip) {
        return too_many(retry);
    }
    let now = now_unix();
    match auth.access(req.headers(), now) {
        Access::Bearer => return next.run(req).await,
        Access::Session { renew: None } => return next.run(req).await,
        Access::Session { renew: Some(start) } => {
            let jar = auth.session_cookie(start, now, req.headers());
            let res = next.run(req).await;
            return (jar, res).into_response();
        }
        Access::None => {}
    }
    if auth.wrong_bearer(req.headers()) {
        auth.failed(ip);
    }
    let path = req.uri().path();
    if req.method() == Method::GET && !is_api(path) {
        // Under a prefix (`Router::nest("/callbid", …)`) the login page and the page to
        // come back to are the outer URLs.
        let prefix = mount_prefix(&req);
        let target = format!(
            "{prefix}{}",
            req.uri().path_and_query().map_or(path, |pq| pq.as_str())
        );
        let to = format!(
            "{prefix}/login?next={}",
            percent_encoding::utf8_percent_encode(&target, NEXT_KEEP)
        );
        return Redirect::to(&to).into_response();
    }
    unauthorized(&mount_prefix(&req))
}

/// `401` with a JSON body naming the login page.
fn unauthorized(prefix: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"callbid operator\""),
        )],
        Json(json!({
            "error": format!(
                "operator token required: send Authorization: Bearer <token> (the server's {TOKEN_FLAG}) or log in at /login"
            ),
            "login": format!("{prefix}/login"),
        })),
    )
        .into_response()
}

/// Bytes a `next` value keeps as they are in the login redirect's query; every other
/// byte is percent-encoded (paths stay readable: `/login?next=/agent`).
const NEXT_KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Only a local absolute path may be a redirect target (no `//host`, no scheme, no
/// backslashes), so the login cannot become an open redirect.
/// [`safe_next_under`]: only a local absolute path may be a redirect target, for a router mounted under `prefix` (its login page is never a target;
/// the default target is the mount point).
fn safe_next_under(next: Option<&str>, prefix: &str) -> String {
    let login = format!("{prefix}/login");
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/login")
                && !n.starts_with(&login)
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_owned()
        }
        _ => format!("{prefix}/"),
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

fn login_form(status: StatusCode, prefix: &str, next: &str, error: Option<&str>) -> Response {
    let next = quick_xml::escape::escape(next);
    let action = quick_xml::escape::escape(format!("{prefix}/login"));
    let error = error
        .map(|e| {
            format!(
                "<p id=\"login-error\" role=\"alert\">{}</p>",
                quick_xml::escape::escape(e)
            )
        })
        .unwrap_or_default();
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>callbid — operator login</title>
<style>body{{font:15px system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}
input,button{{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}}
#login-error{{color:#b00020}}</style></head>
<body><h1>Operator login</h1>{error}
<form method="post" action="{action}" id="login-form">
<label for="login-token">Operator token</label>
<input type="password" id="login-token" name="token" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit" id="login-submit">Log in</button>
</form></body></html>
"#
    );
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(page),
    )
        .into_response()
}

async fn login_page(
    State(auth): State<OperatorAuth>,
    Prefix(prefix): Prefix,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let next = safe_next_under(q.next.as_deref(), &prefix);
    if auth.authorized(&headers) {
        return Redirect::to(&next).into_response();
    }
    login_form(StatusCode::OK, &prefix, &next, None)
}

async fn login_submit(
    State(auth): State<OperatorAuth>,
    PeerIp(ip): PeerIp,
    Prefix(prefix): Prefix,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next_under(form.next.as_deref(), &prefix);
    if !auth.token_required() {
        return Redirect::to(&next).into_response();
    }
    if let Err(retry) = auth.locked(ip) {
        let secs = retry.as_secs().max(1);
        let mut res = login_form(
            StatusCode::TOO_MANY_REQUESTS,
            &prefix,
            &next,
            Some(&format!(
                "Too many wrong tokens from your address. Try again in {secs} seconds."
            )),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    if form.token.is_empty() || !auth.token_matches(&form.token) {
        auth.failed(ip);
        return login_form(
            StatusCode::UNAUTHORIZED,
            &prefix,
            &next,
            Some("Wrong operator token."),
        );
    }
    auth.succeeded(ip);
    let now = now_unix();
    (auth.session_cookie(now, now, &headers), Redirect::to(&next)).into_response()
}

async fn logout(Prefix(prefix): Prefix, headers: HeaderMap) -> Response {
    let mut c = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if behind_https(&headers) {
        c.push_str("; Secure");
    }
    (
        [(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("")),
        )],
        Redirect::to(&format!("{prefix}/login")),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next_under(Some("/agent?x=1"), ""), "/agent?x=1");
        assert_eq!(safe_next_under(None, "/callbid"), "/callbid/");
        assert_eq!(
            safe_next_under(Some("/callbid/login"), "/callbid"),
            "/callbid/"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "",
            "/login",
        ] {
            assert_eq!(safe_next_under(Some(bad), ""), "/", "{bad}");
        }
    }

    const TOKEN: &str = "a-long-operator-token-0123456789abcdef";

    /// The request headers a browser sends back after `jar` was set.
    fn cookie_headers(jar: SignedCookieJar) -> HeaderMap {
        let res = (jar, ()).into_response();
        let set = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        let pair = set.split(';').next().unwrap().to_owned();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        h
    }

    #[test]
    fn sessions_end_when_idle_and_at_their_lifetime() {
        let auth = OperatorAuth::with_token(TOKEN).with_sessions(SessionPolicy {
            idle_timeout: Duration::from_secs(600),
            lifetime: Duration::from_secs(3600),
        });
        let t0 = 1_800_000_000;
        let h = cookie_headers(auth.session_cookie(t0, t0, &HeaderMap::new()).unwrap());
        assert!(matches!(
            auth.access(&h, t0 + 30),
            Access::Session { renew: None }
        ));
        assert!(matches!(
            auth.access(&h, t0 + 120),
            Access::Session { renew: Some(s) } if s == t0
        ));
        assert!(matches!(auth.access(&h, t0 + 600), Access::None), "idle");
        // Renewed every few minutes, it still ends at the lifetime.
        let h = cookie_headers(
            auth.session_cookie(t0, t0 + 3500, &HeaderMap::new())
                .unwrap(),
        );
        assert!(matches!(auth.access(&h, t0 + 3550), Access::Session { .. }));
        assert!(
            matches!(auth.access(&h, t0 + 3600), Access::None),
            "lifetime"
        );
    }

    #[test]
    fn cookies_are_signed_and_shared_by_instances_with_the_token() {
        let a = OperatorAuth::with_token(TOKEN);
        let b = OperatorAuth::with_token(TOKEN);
        let other = OperatorAuth::with_token("another-long-operator-token-0123456789");
        let now = now_unix();
        let h = cookie_headers(a.session_cookie(now, now, &HeaderMap::new()).unwrap());
        assert!(b.authorized(&h), "another instance with the same token");
        assert!(!other.authorized(&h), "a changed token ends the session");
        // A forged (unsigned) value is refused.
        let mut forged = HeaderMap::new();
        forged.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}=v2.{now}.{now}")).unwrap(),
        );
        assert!(!a.authorized(&forged));
        for bad in ["", "v2.1", "v1.1.2", "v2.x.1", "v2.1.2.3"] {
            assert_eq!(parse_session(bad), None, "{bad}");
        }
    }

    #[test]
    fn repeated_failures_lock_an_ip_out_with_backoff() {
        let auth = OperatorAuth::with_token(TOKEN);
        let ip = Some(IpAddr::from([203, 0, 113, 9]));
        let other = Some(IpAddr::from([203, 0, 113, 10]));
        for _ in 0..FREE_ATTEMPTS - 1 {
            auth.failed(ip);
            assert!(auth.locked(ip).is_ok());
        }
        auth.failed(ip);
        let first = auth.locked(ip).unwrap_err();
        assert!(first <= Duration::from_secs(1), "{first:?}");
        auth.failed(ip);
        auth.failed(ip);
        let third = auth.locked(ip).unwrap_err();
        assert!(third > Duration::from_secs(3), "doubles: {third:?}");
        assert!(auth.locked(other).is_ok(), "other addresses are not locked");
        for _ in 0..40 {
            auth.failed(ip);
        }
        assert!(auth.locked(ip).unwrap_err() <= MAX_LOCKOUT);
        auth.succeeded(ip);
        assert!(auth.locked(ip).is_ok());
    }

    #[test]
    fn short_tokens_are_refused_on_public_addresses_only() {
        let public: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert!(matches!(
            check_exposure(public, Some("short-secret"), false),
            Err(ExposureError::ShortToken { length: 12, .. })
        ));
        assert!(check_exposure(public, Some(TOKEN), false).is_ok());
        assert!(check_exposure(local, Some("short-secret"), false).is_ok());
        let msg = check_exposure(public, Some("short"), false)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("5-character") && msg.contains("32"), "{msg}");
    }
}

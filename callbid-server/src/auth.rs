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
//!   The cookie holds an HMAC-SHA256 of the token under a key drawn at random when the
//!   server starts, never the token itself, so restarting the server (or changing the
//!   token) ends every session. `POST /logout` clears it.
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

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "callbid_session";
/// The command-line flag that sets the token.
pub const TOKEN_FLAG: &str = "--dashboard-token";
/// The environment variable that sets the token.
pub const TOKEN_ENV: &str = "CALLBID_DASHBOARD_TOKEN";
/// The opt-out flag for an open dashboard on a non-loopback address.
pub const INSECURE_FLAG: &str = "--insecure-open-dashboard";

const MAC_LABEL: &[u8] = b"callbid operator session v1\0";

/// Why the operator access configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
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
    /// Random per-process HMAC key.
    key: [u8; 32],
    /// HMAC of the configured token.
    token_mac: [u8; 32],
    /// The cookie value a logged-in browser holds (hex of `token_mac`).
    session: String,
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
                session: hex(&token_mac),
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

    /// Whether a request carries the right bearer token or session cookie (always
    /// true when no token is configured).
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(k) = &self.inner else {
            return true;
        };
        for v in headers.get_all(header::AUTHORIZATION) {
            if let Some(t) = v.to_str().ok().and_then(bearer) {
                if self.token_matches(t) {
                    return true;
                }
            }
        }
        cookies(headers, SESSION_COOKIE)
            .any(|v| bool::from(v.as_bytes().ct_eq(k.session.as_bytes())))
    }
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Every value of cookie `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
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
    if !auth.token_required() && !listen.ip().to_canonical().is_loopback() && !insecure_open {
        return Err(ExposureError::OpenOnPublicAddress { listen });
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
    if auth.authorized(req.headers()) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if req.method() == Method::GET && !is_api(path) {
        let target = req
            .uri()
            .path_and_query()
            .map_or(path, |pq| pq.as_str())
            .to_owned();
        let to = format!(
            "/login?next={}",
            percent_encoding::utf8_percent_encode(&target, NEXT_KEEP)
        );
        return Redirect::to(&to).into_response();
    }
    unauthorized()
}

/// `401` with a JSON body naming the login page.
fn unauthorized() -> Response {
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
            "login": "/login",
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
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/login")
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
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

fn login_form(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let next = quick_xml::escape::escape(next);
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
<form method="post" action="/login" id="login-form">
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
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if auth.authorized(&headers) {
        return Redirect::to(&next).into_response();
    }
    login_form(StatusCode::OK, &next, None)
}

fn session_cookie(value: &str, headers: &HeaderMap, max_age: Option<u32>) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let mut c = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    // Hex and fixed text only: always a valid header value.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn login_submit(
    State(auth): State<OperatorAuth>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(k) = &auth.inner else {
        return Redirect::to(&next).into_response();
    };
    if form.token.is_empty() || !auth.token_matches(&form.token) {
        return login_form(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong operator token."),
        );
    }
    (
        [(
            header::SET_COOKIE,
            session_cookie(&k.session, &headers, None),
        )],
        Redirect::to(&next),
    )
        .into_response()
}

async fn logout(headers: HeaderMap) -> Response {
    (
        [(header::SET_COOKIE, session_cookie("", &headers, Some(0)))],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/agent?x=1")), "/agent?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "",
            "/login",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
    }
}

//! The generic, config-driven ping-post buyer: a [`ProtocolSpec`] (a preset file or an
//! inline table) says how to build the ping, read the answer by JSON pointer, and
//! optionally accept; no code per network.
//!
//! Presets shipped: `ringba` (Ringba RTB), `retreaver` (Retreaver RTB), `trackdrive`
//! (TrackDrive ping/post) and `callgrid` (CallGrid bid API); see [`preset`].

mod presets;
mod spec;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use callbid_core::{
    Bid, BuyerErrorKind, BuyerId, CallContext, Capabilities, Currency, Destination, PingReply,
};
use chrono::Utc;
use rust_decimal::Decimal;

pub use presets::{load_preset, preset, preset_names, preset_source, PresetError};
pub use spec::{
    AcceptResponseSpec, AcceptSpec, AuthSpec, CapabilitiesSpec, PingResponseSpec, PingSpec,
    Predicate, ProtocolSpec, RequestSpec,
};

use self::template::{JsonTemplate, Scope, Template, Var, Vars};
use crate::adapter::{redirect_error, require_json, AdapterError, HttpAdapter, RAW_BODY_EXCERPT};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::json::{parse_decimal, parse_price, parse_seconds, parse_timestamp, Doc, Leaf};
use crate::secret::Secret;

/// Longest bid lifetime or minimum duration accepted, in seconds (one day).
const MAX_SECONDS: u64 = 86_400;

/// An invalid protocol description: the field (a dotted path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason} (value {value:?})")]
#[non_exhaustive]
pub struct SpecError {
    /// The field, e.g. `ping.request.url`.
    pub field: String,
    /// The value found there.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

impl SpecError {
    fn new(field: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Credentials, resolved.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// A header carrying the key.
    Header {
        /// Header name.
        name: String,
        /// Written before the key.
        prefix: String,
        /// The key.
        value: Secret,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// A query parameter carrying the key.
    Query {
        /// Parameter name.
        name: String,
        /// The key.
        value: Secret,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Header { name, .. } => write!(f, "Header({name}: [REDACTED])"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}:[REDACTED])"),
            Auth::Query { name, .. } => write!(f, "Query({name}=[REDACTED])"),
        }
    }
}

/// What a buyer sets on top of a protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PingPostSettings {
    /// Overrides the protocol's base URL.
    pub base_url: Option<String>,
    /// Parameter values (over the protocol's defaults).
    pub params: BTreeMap<String, String>,
    /// Credentials.
    pub auth: Option<Auth>,
    /// Extra headers (value templates) sent with every request.
    pub headers: BTreeMap<String, String>,
    /// The currency bids are in.
    pub currency: Currency,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(JsonTemplate),
    Form(Vec<(String, Template)>),
}

#[derive(Debug, Clone)]
struct CompiledRequest {
    method: Method,
    url: Template,
    query: Vec<(String, Template)>,
    headers: Vec<(String, Template)>,
    body: Body,
}

#[derive(Debug, Clone)]
struct CompiledAccept {
    request: CompiledRequest,
    response: AcceptResponseSpec,
}

/// An authentication header, built once when the buyer is loaded.
#[derive(Clone)]
struct AuthHeader {
    name: String,
    /// The whole header value (`Bearer …`, `Basic …`).
    value: Secret,
    /// What captures and errors must redact (the key, the password, the token).
    redact: Vec<Secret>,
}

/// The generic ping-post adapter.
pub struct PingPost {
    description: String,
    base: String,
    params: BTreeMap<String, String>,
    auth: Option<Auth>,
    auth_header: Option<AuthHeader>,
    headers: Vec<(String, Template)>,
    capabilities: CapabilitiesSpec,
    ping: CompiledRequest,
    response: PingResponseSpec,
    accept: Option<CompiledAccept>,
    /// `keep` names the accept URL uses: a ping reply without them is refused.
    keep_required: BTreeSet<String>,
    currency: Currency,
}

impl fmt::Debug for PingPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PingPost")
            .field("description", &self.description)
            .field("base", &self.base)
            .field("params", &self.params)
            .field("auth", &self.auth)
            .field("ping_url", &self.ping.url)
            .field("has_accept", &self.accept.is_some())
            .finish_non_exhaustive()
    }
}

fn check_pointer(field: &str, p: &str) -> Result<(), SpecError> {
    if p.is_empty() || p.starts_with('/') {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            p,
            "a JSON pointer must start with '/'",
        ))
    }
}

fn check_predicates(field: &str, preds: &[Predicate]) -> Result<(), SpecError> {
    for (i, p) in preds.iter().enumerate() {
        let f = format!("{field}[{i}]");
        check_pointer(&format!("{f}.pointer"), &p.pointer)?;
        let n = [
            p.equals.is_some(),
            p.one_of.is_some(),
            p.exists.is_some(),
            p.nonzero.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            return Err(SpecError::new(
                f,
                &p.pointer,
                "give exactly one of equals, one_of, exists, nonzero",
            ));
        }
    }
    Ok(())
}

fn compile_request(
    field: &str,
    spec: &RequestSpec,
    scope: Scope,
) -> Result<CompiledRequest, SpecError> {
    let t = |f: String, s: &str| Template::parse(s, scope).map_err(|e| SpecError::new(f, s, e));
    let url = t(format!("{field}.url"), &spec.url)?;
    let query = spec
        .query
        .iter()
        .map(|(k, v)| Ok((k.clone(), t(format!("{field}.query.{k}"), v)?)))
        .collect::<Result<Vec<_>, SpecError>>()?;
    let headers = spec
        .headers
        .iter()
        .map(|(k, v)| {
            check_header_name(&format!("{field}.headers"), k)?;
            Ok((k.clone(), t(format!("{field}.headers.{k}"), v)?))
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    let body = match (&spec.json, &spec.form) {
        (Some(_), Some(_)) => {
            return Err(SpecError::new(
                field,
                "json + form",
                "give either a json or a form body, not both",
            ))
        }
        (Some(j), None) => Body::Json(
            JsonTemplate::from_toml(j, scope, &format!("{field}.json"))
                .map_err(|e| SpecError::new(format!("{field}.json"), j.to_string(), e))?,
        ),
        (None, Some(f)) => Body::Form(
            f.iter()
                .map(|(k, v)| Ok((k.clone(), t(format!("{field}.form.{k}"), v)?)))
                .collect::<Result<Vec<_>, SpecError>>()?,
        ),
        (None, None) => Body::None,
    };
    if spec.method == Method::Get && !matches!(body, Body::None) {
        return Err(SpecError::new(
            format!("{field}.method"),
            "GET",
            "a GET request cannot carry a body",
        ));
    }
    Ok(CompiledRequest {
        method: spec.method,
        url,
        query,
        headers,
        body,
    })
}

fn check_header_name(field: &str, name: &str) -> Result<(), SpecError> {
    if reqwest::header::HeaderName::from_str(name).is_err() {
        return Err(SpecError::new(field, name, "not a valid header name"));
    }
    Ok(())
}

fn all_templates(req: &CompiledRequest) -> Vec<&Template> {
    let mut out = vec![&req.url];
    out.extend(req.query.iter().chain(req.headers.iter()).map(|(_, t)| t));
    match &req.body {
        Body::Json(j) => out.extend(j.templates()),
        Body::Form(f) => out.extend(f.iter().map(|(_, t)| t)),
        Body::None => {}
    }
    out
}

/// A URL template is `{base}` followed by nothing, `/…` or `?…` (the base URL's own path
/// is kept whether or not it ends in `/`: `{base}` renders without its trailing
/// slashes), or an absolute `http(s)://` URL. A relative template (`/ping`, `ping`) or
/// `{base}` glued to a word (`{base}ping`) or placed mid-URL is refused at load time,
/// naming the field: it would drop or mangle the base URL's path.
fn check_url_template(field: &str, source: &str) -> Result<(), SpecError> {
    let bad = |reason: &str| Err(SpecError::new(field, source, reason.to_string()));
    let rest = match source.strip_prefix("{base}") {
        Some(rest) => {
            if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
                return bad(
                    "{base} must be followed by \"/\", \"?\" or nothing (write {base}/path)",
                );
            }
            rest
        }
        None => {
            let lower = source.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return bad("must start with {base}/ or be an absolute http(s):// URL");
            }
            source
        }
    };
    if rest.contains("{base}") {
        return bad("{base} may only start the URL");
    }
    Ok(())
}

/// A base URL must be an absolute `http`/`https` URL with a host and no query or
/// fragment (templates append paths to it).
fn check_base_url(base: &str) -> Result<(), SpecError> {
    let bad = |reason: String| SpecError::new("base_url", base, reason);
    if base.trim().is_empty() {
        return Err(bad("must not be empty".into()));
    }
    let u = url::Url::parse(base).map_err(|e| bad(format!("not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} must be http or https",
            u.scheme()
        )));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host".into()));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad(
            "must not have a query or fragment (put parameters in the query table)".into(),
        ));
    }
    Ok(())
}

/// The authentication header, computed once (`None` for query-parameter auth).
fn auth_header(auth: &Auth) -> Option<AuthHeader> {
    match auth {
        Auth::Header {
            name,
            prefix,
            value,
        } => Some(AuthHeader {
            name: name.clone(),
            value: Secret::new(format!("{prefix}{}", value.expose())),
            redact: vec![value.clone()],
        }),
        Auth::Basic { username, password } => {
            let token = base64(format!("{username}:{}", password.expose()).as_bytes());
            Some(AuthHeader {
                name: "Authorization".into(),
                value: Secret::new(format!("Basic {token}")),
                redact: vec![password.clone(), Secret::new(token)],
            })
        }
        Auth::Query { .. } => None,
    }
}

impl PingPost {
    /// Compiles `spec` with a buyer's `settings`, checking every template, pointer and
    /// required parameter.
    pub fn new(spec: &ProtocolSpec, settings: PingPostSettings) -> Result<PingPost, SpecError> {
        let base = settings
            .base_url
            .clone()
            .or_else(|| spec.base_url.clone())
            .unwrap_or_default();
        // Checked whenever one is given, whether or not a template uses it yet.
        if settings.base_url.is_some() || spec.base_url.is_some() {
            check_base_url(&base)?;
        }
        let mut params = spec.params.clone();
        params.extend(settings.params.clone());
        for p in &spec.required_params {
            if params.get(p).is_none_or(|v| v.is_empty()) {
                return Err(SpecError::new(
                    format!("params.{p}"),
                    "",
                    "required by this protocol",
                ));
            }
        }
        let ping = compile_request("ping.request", &spec.ping.request, Scope::Ping)?;
        let r = &spec.ping.response;
        check_pointer("ping.response.price", &r.price)?;
        for (i, d) in r.destination.iter().enumerate() {
            check_pointer(&format!("ping.response.destination[{i}]"), d)?;
        }
        for (f, p) in [
            ("bid_id", &r.bid_id),
            ("expires_in", &r.expires_in),
            ("expires_at", &r.expires_at),
            ("min_duration", &r.min_duration),
            ("reject_reason", &r.reject_reason),
            ("error_message", &r.error_message),
        ] {
            if let Some(p) = p {
                check_pointer(&format!("ping.response.{f}"), p)?;
            }
        }
        for (k, p) in &r.keep {
            check_pointer(&format!("ping.response.keep.{k}"), p)?;
        }
        check_predicates("ping.response.accepted", &r.accepted)?;
        for s in &r.no_bid_statuses {
            if !(100..600).contains(s) {
                return Err(SpecError::new(
                    "ping.response.no_bid_statuses",
                    s.to_string(),
                    "not an HTTP status",
                ));
            }
        }
        let keep_names: BTreeSet<&str> = r.keep.keys().map(String::as_str).collect();
        let accept = match &spec.accept {
            None => None,
            Some(a) => {
                let request = compile_request("accept.request", &a.request, Scope::Accept)?;
                if a.response.destination.is_empty() {
                    return Err(SpecError::new(
                        "accept.response.destination",
                        "[]",
                        "an accept step must say where the destination is",
                    ));
                }
                for (i, d) in a.response.destination.iter().enumerate() {
                    check_pointer(&format!("accept.response.destination[{i}]"), d)?;
                }
                if let Some(p) = &a.response.reject_reason {
                    check_pointer("accept.response.reject_reason", p)?;
                }
                check_predicates("accept.response.accepted", &a.response.accepted)?;
                if let Some(t) = all_templates(&request).into_iter().find(|t| {
                    t.vars()
                        .any(|v| matches!(v, Var::Reply(n) if !keep_names.contains(n.as_str())))
                }) {
                    return Err(SpecError::new(
                        "accept.request",
                        t.source(),
                        format!(
                            "uses a {{reply.NAME}} that ping.response.keep does not keep (kept: {})",
                            keep_names.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                Some(CompiledAccept {
                    request,
                    response: a.response.clone(),
                })
            }
        };
        if accept.is_none() && r.destination.is_empty() {
            return Err(SpecError::new(
                "ping.response.destination",
                "[]",
                "without an accept step the ping answer must carry the destination",
            ));
        }
        let guaranteed = |v: &Var| match v {
            Var::Zip | Var::Service | Var::CallId | Var::Base | Var::Param(_) | Var::Price => true,
            Var::Caller | Var::CallerNational => spec.capabilities.needs_caller_id,
            Var::BidId => r.bid_id.is_some(),
            Var::Reply(n) => keep_names.contains(n.as_str()),
            _ => false,
        };
        let mut urls = vec![("ping.request.url", &ping.url)];
        if let Some(a) = &accept {
            urls.push(("accept.request.url", &a.request.url));
        }
        for (field, t) in &urls {
            check_url_template(field, t.source())?;
            if let Some(v) = t.vars().find(|v| !guaranteed(v)) {
                return Err(SpecError::new(
                    *field,
                    t.source(),
                    format!(
                        "{{{}}} may have no value for a call, and a URL cannot leave it out; move it to the query table (where an absent value drops the parameter){}",
                        v.name(),
                        match v {
                            Var::Caller | Var::CallerNational => " or set capabilities.needs_caller_id",
                            Var::BidId => " or set ping.response.bid_id",
                            _ => "",
                        }
                    ),
                ));
            }
            if base.is_empty() && t.vars().any(|v| *v == Var::Base) {
                return Err(SpecError::new(
                    "base_url",
                    "",
                    "this protocol needs a base_url",
                ));
            }
        }
        let keep_required: BTreeSet<String> = accept
            .as_ref()
            .map(|a| {
                a.request
                    .url
                    .vars()
                    .filter_map(|v| match v {
                        Var::Reply(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let auth_header = settings.auth.as_ref().and_then(auth_header);
        let headers = settings
            .headers
            .iter()
            .map(|(k, v)| {
                check_header_name("headers", k)?;
                Ok((
                    k.clone(),
                    Template::parse(v, Scope::Ping)
                        .map_err(|e| SpecError::new(format!("headers.{k}"), v, e))?,
                ))
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        // Every `{param.X}` used must have a value.
        let mut used = all_templates(&ping);
        if let Some(a) = &accept {
            used.extend(all_templates(&a.request));
        }
        used.extend(headers.iter().map(|(_, t)| t));
        for t in used {
            for p in t.params() {
                if !params.contains_key(p) {
                    return Err(SpecError::new(
                        format!("params.{p}"),
                        t.source(),
                        "used by a template but not set",
                    ));
                }
            }
        }
        Ok(PingPost {
            description: spec.description.clone().unwrap_or_default(),
            base,
            params,
            auth: settings.auth,
            auth_header,
            headers,
            capabilities: spec.capabilities,
            ping,
            response: spec.ping.response.clone(),
            accept,
            keep_required,
            currency: settings.currency,
        })
    }

    fn build(&self, req: &CompiledRequest, vars: &Vars<'_>) -> Result<HttpRequest, AdapterError> {
        let text = req.url.render_url(vars).map_err(AdapterError::config)?;
        let mut url = url::Url::parse(&text)
            .map_err(|e| AdapterError::config(format!("URL {text:?}: {e}")))?;
        let mut pairs: Vec<(String, String)> = req
            .query
            .iter()
            .filter_map(|(k, t)| t.render_value(vars).map(|v| (k.clone(), v)))
            .collect();
        let mut out_secrets = Vec::new();
        if let Some(Auth::Query { name, value }) = &self.auth {
            pairs.push((name.clone(), value.expose().to_string()));
            out_secrets.push(value.clone());
        }
        if !pairs.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &pairs {
                q.append_pair(k, v);
            }
        }
        let mut http = HttpRequest::new(req.method, url);
        for s in out_secrets {
            http = http.with_secret(s);
        }
        for (k, t) in req.headers.iter().chain(self.headers.iter()) {
            // A header whose value needs an absent placeholder is left out.
            let Some(v) = t.render_value(vars) else {
                continue;
            };
            if v.chars().any(|c| c.is_control()) {
                return Err(AdapterError::new(
                    BuyerErrorKind::Refused,
                    format!("header {k}: value {v:?} holds control characters"),
                ));
            }
            http = http.with_header(k.clone(), v);
        }
        if let Some(h) = &self.auth_header {
            http = http.with_header(h.name.clone(), h.value.expose().to_string());
            for s in &h.redact {
                http = http.with_secret(s.clone());
            }
        }
        if http.header("accept").is_none() {
            http = http.with_header("Accept", "application/json");
        }
        Ok(match &req.body {
            Body::None => http,
            Body::Json(j) => http.with_json(&j.render(vars)),
            Body::Form(f) => {
                let pairs: Vec<(String, String)> = f
                    .iter()
                    .filter_map(|(k, t)| t.render_value(vars).map(|v| (k.clone(), v)))
                    .collect();
                http.with_form(&pairs)
            }
        })
    }

    fn vars<'a>(
        &'a self,
        call: &'a CallContext,
        bid: Option<&'a Bid>,
        reply: Option<&'a BTreeMap<String, String>>,
    ) -> Vars<'a> {
        Vars {
            call,
            params: &self.params,
            base: &self.base,
            bid,
            reply,
        }
    }

    fn find_destination(
        &self,
        doc: &Doc,
        pointers: &[String],
        resp: &HttpResponse,
    ) -> Result<Option<Destination>, AdapterError> {
        for p in pointers {
            let leaf = doc
                .pointer(p)
                .map_err(|e| AdapterError::bad_response(e, resp))?;
            let text = match leaf {
                None | Some(Leaf::Null) => continue,
                Some(Leaf::String(s)) if s.trim().is_empty() => continue,
                Some(Leaf::String(s)) => s,
                Some(Leaf::Number(n)) => n,
                Some(other) => {
                    return Err(AdapterError::bad_response(
                        format!("destination {p}: unexpected value {}", other.describe()),
                        resp,
                    ))
                }
            };
            let d = Destination::parse(&text)
                .map_err(|e| AdapterError::bad_response(format!("destination {p}: {e}"), resp))?;
            if d.is_sip() && !self.capabilities.accepts_sip {
                return Err(AdapterError::bad_response(
                    format!("destination {p}: SIP address {text:?} but this buyer is configured without SIP"),
                    resp,
                ));
            }
            return Ok(Some(d));
        }
        Ok(None)
    }

    fn status_errors(
        &self,
        resp: &HttpResponse,
        error_pointer: Option<&str>,
    ) -> Result<(), AdapterError> {
        if let Some(e) = redirect_error(resp) {
            return Err(e);
        }
        let s = resp.status;
        if (400..500).contains(&s) {
            let msg = Doc::parse(&resp.body)
                .ok()
                .and_then(|d| {
                    d.pointer(error_pointer.unwrap_or("/message"))
                        .ok()
                        .flatten()
                })
                .and_then(|l| l.as_text())
                .unwrap_or_else(|| resp.body_excerpt(200));
            return Err(AdapterError {
                kind: BuyerErrorKind::Rejected,
                message: format!("HTTP {s}: {msg}"),
                raw_body: Some(resp.body_excerpt(RAW_BODY_EXCERPT)),
            });
        }
        if !(200..300).contains(&s) {
            return Err(AdapterError::bad_response(format!("HTTP {s}"), resp));
        }
        Ok(())
    }
}

fn all_hold(doc: &Doc, preds: &[Predicate], resp: &HttpResponse) -> Result<bool, AdapterError> {
    for p in preds {
        if !eval(doc, p).map_err(|e| AdapterError::bad_response(e, resp))? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn eval(doc: &Doc, p: &Predicate) -> Result<bool, String> {
    let v = doc.pointer(&p.pointer)?;
    let present = matches!(&v, Some(l) if *l != Leaf::Null);
    if let Some(want) = p.exists {
        return Ok(present == want);
    }
    if let Some(want) = p.nonzero {
        let nonzero = match &v {
            None | Some(Leaf::Null) => false,
            Some(l) => !parse_decimal(&p.pointer, l)?.is_zero(),
        };
        return Ok(nonzero == want);
    }
    let Some(l) = v else { return Ok(false) };
    if let Some(eq) = &p.equals {
        return Ok(leaf_eq(&l, eq));
    }
    if let Some(list) = &p.one_of {
        return Ok(list.iter().any(|x| leaf_eq(&l, x)));
    }
    Ok(false)
}

fn dec(s: &str) -> Option<Decimal> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    Decimal::from_str_exact(t).ok()
}

fn leaf_eq(l: &Leaf, want: &toml::Value) -> bool {
    match (l, want) {
        (Leaf::String(s), toml::Value::String(w)) => {
            s == w || matches!((dec(s), dec(w)), (Some(a), Some(b)) if a == b)
        }
        (Leaf::Number(n), toml::Value::String(w)) => {
            matches!((dec(n), dec(w)), (Some(a), Some(b)) if a == b)
        }
        (Leaf::Bool(b), toml::Value::Boolean(w)) => b == w,
        (Leaf::Number(n) | Leaf::String(n), toml::Value::Integer(i)) => {
            dec(n) == Some(Decimal::from(*i))
        }
        (Leaf::Number(n) | Leaf::String(n), toml::Value::Float(f)) => {
            matches!((dec(n), Decimal::from_str(&f.to_string()).ok()), (Some(a), Some(b)) if a == b)
        }
        _ => false,
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

impl HttpAdapter for PingPost {
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            .with_needs_caller_id(self.capabilities.needs_caller_id)
            .with_accepts_sip(self.capabilities.accepts_sip)
            .with_has_accept(self.accept.is_some())
    }

    fn ping_request(&self, call: &CallContext) -> Result<HttpRequest, AdapterError> {
        if self.capabilities.needs_caller_id && call.caller.is_none() {
            return Err(AdapterError::new(
                BuyerErrorKind::Refused,
                "this buyer needs the caller id and the call has none",
            ));
        }
        self.build(&self.ping, &self.vars(call, None, None))
    }

    fn parse_ping(
        &self,
        buyer: &BuyerId,
        _call: &CallContext,
        resp: &HttpResponse,
    ) -> Result<PingReply, AdapterError> {
        let r = &self.response;
        if r.no_bid_statuses.contains(&resp.status) {
            return Ok(PingReply::NoBid {
                reason: format!("HTTP {}", resp.status),
            });
        }
        self.status_errors(resp, r.error_message.as_deref())?;
        let doc = require_json(resp)?;
        let get = |p: &str| {
            doc.pointer(p)
                .map_err(|e| AdapterError::bad_response(e, resp))
        };
        if !all_hold(&doc, &r.accepted, resp)? {
            let reason = match &r.reject_reason {
                Some(p) => get(p)?.and_then(|l| l.as_text()),
                None => None,
            }
            .unwrap_or_else(|| "not accepted".into());
            return Ok(PingReply::NoBid { reason });
        }
        let price = match get(&r.price)? {
            Some(l) => parse_price(&r.price, &l, self.currency)
                .map_err(|e| AdapterError::bad_response(format!("price {e}"), resp))?,
            None => {
                return Err(AdapterError::bad_response(
                    format!("price {} missing", r.price),
                    resp,
                ))
            }
        };
        let mut bid = Bid::new(buyer.clone(), price);
        if let Some(p) = &r.bid_id {
            match get(p)? {
                Some(l) => match l.as_text() {
                    Some(t) if !t.is_empty() => bid = bid.with_bid_id(t),
                    _ => {
                        return Err(AdapterError::bad_response(
                            format!("bid id {p}: unexpected value {}", l.describe()),
                            resp,
                        ))
                    }
                },
                None if self.accept.is_some() => {
                    return Err(AdapterError::bad_response(
                        format!("bid id {p} missing (the accept step needs it)"),
                        resp,
                    ))
                }
                None => {}
            }
        }
        match self.find_destination(&doc, &r.destination, resp)? {
            Some(d) => bid = bid.with_destination(d),
            None if self.accept.is_none() => {
                return Err(AdapterError::bad_response(
                    format!(
                        "no destination in the answer (looked at {})",
                        r.destination.join(", ")
                    ),
                    resp,
                ))
            }
            None => {}
        }
        let now = Utc::now();
        if let Some(p) = &r.expires_in {
            if let Some(l) = get(p)?.filter(|l| *l != Leaf::Null) {
                let d = parse_seconds(p, &l, MAX_SECONDS)
                    .map_err(|e| AdapterError::bad_response(format!("expiry {e}"), resp))?;
                if d.is_zero() {
                    return Err(AdapterError::bad_response(
                        format!("bid expired: {p} is {}", l.describe()),
                        resp,
                    ));
                }
                let at = now
                    + chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero());
                bid = bid.with_expiry(at);
            }
        }
        if let Some(p) = &r.expires_at {
            if let Some(l) = get(p)?.filter(|l| *l != Leaf::Null) {
                let at = parse_timestamp(p, &l)
                    .map_err(|e| AdapterError::bad_response(format!("expiry {e}"), resp))?;
                if at <= now {
                    return Err(AdapterError::bad_response(
                        format!(
                            "bid expired: {p} is {} (now {})",
                            l.describe(),
                            now.to_rfc3339()
                        ),
                        resp,
                    ));
                }
                let at = bid.expires_at.map_or(at, |e| e.min(at));
                bid = bid.with_expiry(at);
            }
        }
        if let Some(p) = &r.min_duration {
            if let Some(l) = get(p)?.filter(|l| *l != Leaf::Null) {
                let d = parse_seconds(p, &l, MAX_SECONDS).map_err(|e| {
                    AdapterError::bad_response(format!("minimum duration {e}"), resp)
                })?;
                bid = bid.with_min_duration(d);
            }
        }
        if self.accept.is_some() && !r.keep.is_empty() {
            // Kept on the bid itself: it lives exactly as long as the bid does.
            let mut kept = serde_json::Map::new();
            for (k, p) in &r.keep {
                match get(p)?.and_then(|l| l.as_text()) {
                    Some(t) => {
                        kept.insert(k.clone(), serde_json::Value::String(t));
                    }
                    None if self.keep_required.contains(k) => {
                        return Err(AdapterError::bad_response(
                            format!("keep.{k} {p} missing (the accept URL needs it)"),
                            resp,
                        ))
                    }
                    None => {}
                }
            }
            bid = bid.with_adapter_data(serde_json::Value::Object(kept));
        }
        Ok(PingReply::Bid(bid))
    }

    fn accept_request(
        &self,
        call: &CallContext,
        bid: &Bid,
    ) -> Result<Option<HttpRequest>, AdapterError> {
        let Some(a) = &self.accept else {
            return Ok(None);
        };
        let reply: BTreeMap<String, String> = match bid.adapter_data.as_deref() {
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect(),
            _ if self.response.keep.is_empty() => BTreeMap::new(),
            // Sending the accept without the values its ping reply gave would post
            // garbage: this bid did not come from this buyer's ping in this process.
            _ => {
                return Err(AdapterError::new(
                    BuyerErrorKind::Refused,
                    format!(
                        "bid {:?} of call {} carries no values kept from its ping reply; cannot build the accept request",
                        bid.bid_id.as_deref().unwrap_or(""),
                        call.call_id,
                    ),
                ))
            }
        };
        self.build(&a.request, &self.vars(call, Some(bid), Some(&reply)))
            .map(Some)
    }

    fn parse_accept(
        &self,
        _call: &CallContext,
        _bid: &Bid,
        resp: &HttpResponse,
    ) -> Result<Destination, AdapterError> {
        let Some(a) = &self.accept else {
            return Err(AdapterError::bad_response("no accept step", resp));
        };
        self.status_errors(resp, None)?;
        let doc = require_json(resp)?;
        if !all_hold(&doc, &a.response.accepted, resp)? {
            let reason = a
                .response
                .reject_reason
                .as_deref()
                .and_then(|p| doc.pointer(p).ok().flatten())
                .and_then(|l| l.as_text())
                .unwrap_or_else(|| "not accepted".into());
            return Err(AdapterError {
                kind: BuyerErrorKind::Rejected,
                message: format!("accept refused: {reason}"),
                raw_body: Some(resp.body_excerpt(RAW_BODY_EXCERPT)),
            });
        }
        self.find_destination(&doc, &a.response.destination, resp)?
            .ok_or_else(|| {
                AdapterError::bad_response(
                    format!(
                        "no destination in the accept answer (looked at {})",
                        a.response.destination.join(", ")
                    ),
                    resp,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn every_preset_compiles_and_names_missing_params() {
        for name in preset_names() {
            let spec = preset(name).unwrap();
            let err = PingPost::new(&spec, PingPostSettings::default());
            if spec.required_params.is_empty() && spec.base_url.is_some() {
                assert!(err.is_ok(), "{name}: {err:?}");
            } else {
                assert!(err.is_err(), "{name}");
            }
            let mut s = PingPostSettings {
                base_url: Some("http://127.0.0.1:1".into()),
                ..Default::default()
            };
            for p in &spec.required_params {
                s.params.insert(p.clone(), "x".into());
            }
            PingPost::new(&spec, s).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    fn inline_spec(toml_text: &str) -> ProtocolSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn call() -> CallContext {
        use chrono::TimeZone;
        CallContext::new(
            callbid_core::CallId::new("CA1").unwrap(),
            "78701".parse().unwrap(),
            callbid_core::ServiceType::new("plumbing").unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    #[test]
    fn basic_auth_header_is_built_once_at_load() {
        let spec = inline_spec(
            "[ping.request]\nurl = \"http://127.0.0.1:9/p\"\n[ping.response]\nprice = \"/p\"\ndestination = [\"/d\"]\n",
        );
        let pp = PingPost::new(
            &spec,
            PingPostSettings {
                auth: Some(Auth::Basic {
                    username: "user".into(),
                    password: Secret::new("pass"),
                }),
                ..Default::default()
            },
        )
        .unwrap();
        let h = pp
            .auth_header
            .as_ref()
            .expect("computed when the buyer is loaded");
        assert_eq!(h.name, "Authorization");
        assert_eq!(h.value.expose(), "Basic dXNlcjpwYXNz");
        let req = pp.ping_request(&call()).unwrap();
        assert_eq!(req.header("authorization"), Some("Basic dXNlcjpwYXNz"));
        // The password and the token are both redacted from captures and errors.
        assert_eq!(
            req.redact("dXNlcjpwYXNz pass"),
            "[REDACTED] [REDACTED]",
            "{req:?}"
        );
        assert!(!format!("{pp:?}").contains("dXNlcjpwYXNz"));
    }

    #[test]
    fn ping_reply_values_travel_on_the_bid() {
        let spec = inline_spec(
            r#"
            [ping.request]
            url = "http://127.0.0.1:9/p"
            [ping.response]
            price = "/p"
            bid_id = "/id"
            keep = { token = "/t" }
            [accept.request]
            url = "http://127.0.0.1:9/a/{bid_id}"
            json = { token = "{reply.token}" }
            [accept.response]
            destination = ["/d"]
            "#,
        );
        let pp = PingPost::new(&spec, PingPostSettings::default()).unwrap();
        let buyer = BuyerId::new("b").unwrap();
        let resp = HttpResponse::new(200, vec![], r#"{"p": 10, "id": "B1", "t": "tok"}"#);
        let PingReply::Bid(bid) = pp.parse_ping(&buyer, &call(), &resp).unwrap() else {
            panic!()
        };
        assert_eq!(
            bid.adapter_data.as_deref(),
            Some(&serde_json::json!({"token": "tok"}))
        );
        let req = pp.accept_request(&call(), &bid).unwrap().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body, serde_json::json!({"token": "tok"}));
        // A bid that did not come from this buyer's ping carries nothing: refused,
        // never posted with the reply values missing.
        let bare = Bid::new(buyer, bid.price).with_bid_id("B1");
        let e = pp.accept_request(&call(), &bare).unwrap_err();
        assert_eq!(e.kind, BuyerErrorKind::Refused);
        assert!(e.message.contains("carries no values"), "{e}");
    }

    #[test]
    fn a_reply_without_a_value_the_accept_url_needs_is_refused_at_the_ping() {
        let spec = inline_spec(
            r#"
            [ping.request]
            url = "http://127.0.0.1:9/p"
            [ping.response]
            price = "/p"
            bid_id = "/id"
            keep = { slot = "/slot" }
            [accept.request]
            url = "http://127.0.0.1:9/a/{reply.slot}"
            [accept.response]
            destination = ["/d"]
            "#,
        );
        let pp = PingPost::new(&spec, PingPostSettings::default()).unwrap();
        let resp = HttpResponse::new(200, vec![], r#"{"p": 10, "id": "B1"}"#);
        let e = pp
            .parse_ping(&BuyerId::new("b").unwrap(), &call(), &resp)
            .unwrap_err();
        assert_eq!(e.kind, BuyerErrorKind::BadResponse);
        assert!(e.message.contains("keep.slot"), "{e}");
    }

    #[test]
    fn every_preset_keeps_a_base_path_with_or_without_a_trailing_slash() {
        let call = call().with_caller("+15125550123".parse().unwrap());
        for name in preset_names() {
            let spec = preset(name).unwrap();
            let mut want = None;
            for base in [
                "https://proxy.example/rtb/v2",
                "https://proxy.example/rtb/v2/",
                "https://proxy.example/rtb/v2//",
            ] {
                let mut s = PingPostSettings {
                    base_url: Some(base.into()),
                    ..Default::default()
                };
                for p in &spec.required_params {
                    s.params.insert(p.clone(), "x".into());
                }
                let pp = PingPost::new(&spec, s).unwrap();
                let url = pp.ping_request(&call).unwrap().url;
                assert!(
                    url.path().starts_with("/rtb/v2/") && !url.path().contains("//"),
                    "{name} {base}: {url}"
                );
                // Same URL whatever the trailing slashes.
                let w = want.get_or_insert_with(|| url.clone());
                assert_eq!(w, &url, "{name} {base}");
            }
        }
    }

    #[test]
    fn url_templates_that_would_drop_the_base_path_are_refused() {
        for (url, why) in [
            ("/ping", "must start with {base}/"),
            ("ping/{zip}", "must start with {base}/"),
            ("{base}ping", "must be followed by"),
            ("https://x.example/{base}/p", "may only start"),
            ("{base}/a{base}", "may only start"),
        ] {
            let spec = inline_spec(&format!(
                r#"
base_url = "https://h.example/api"
[ping.request]
url = "{url}"
[ping.response]
price = "/p"
destination = ["/d"]
"#
            ));
            let e = PingPost::new(&spec, PingPostSettings::default()).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("ping.request.url") && text.contains(why) && text.contains(url),
                "{url}: {text}"
            );
        }
        for url in [
            "{base}",
            "{base}/p/{zip}",
            "{base}?z={zip}",
            "HTTPS://other.example/p",
        ] {
            let spec = inline_spec(&format!(
                r#"
base_url = "https://h.example/api"
[ping.request]
url = "{url}"
[ping.response]
price = "/p"
destination = ["/d"]
"#
            ));
            PingPost::new(&spec, PingPostSettings::default())
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }
}

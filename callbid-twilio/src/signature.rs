//! Verifying `X-Twilio-Signature`, exactly as Twilio's helper libraries do.
//!
//! The signed string is the full URL Twilio requested followed, for form POSTs,
//! by every parameter name in sorted order, each followed by its values (sorted,
//! de-duplicated) with no separators. It is signed with HMAC-SHA1 and the auth
//! token (or HMAC-SHA256 and a SharedKey secret, see [`SignatureAlgorithm`]) and
//! base64-encoded with padding. Because Twilio's own signing is inconsistent
//! about ports and query encoding, a signature is accepted for any of:
//! the URL with its port removed, the URL with the scheme's default port added
//! (`:443` / `:80`), and each of those with the query re-encoded the WHATWG way
//! (`'` → `%27`, as twilio-node does). Signatures are compared in constant time.
//!
//! JSON bodies: Twilio appends `bodySHA256=<hex sha256 of the body>` to the query
//! and signs the URL with no parameters; [`RequestValidator::validate_body`] also
//! checks the hash.
//!
//! Which checks run depends only on what the signature covers, never on what
//! the sender may change freely (Content-Type, the method, an empty body):
//! [`RequestValidator::check_request`] (and so [`WebhookVerifier::verify`])
//! goes into body mode whenever the signed URL's query has a `bodySHA256`
//! parameter, and then always hashes the raw body — or `{}` when it is empty,
//! as twilio-node's `validateIncomingRequest` does (`request.rawBody || "{}"`)
//! — and compares it with every `bodySHA256` value in the query. A body the
//! signature does not cover (no `bodySHA256`, not a form) must be empty.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Digest as _;
use std::fmt;
use subtle::ConstantTimeEq;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// The header naming the SharedKey and algorithm, when Twilio signs with a SharedKey.
pub const SIGNATURE_SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The URL to check is not an absolute http(s) URL.
    #[error("cannot verify signature: invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No signature header was present.
    #[error("request has no X-Twilio-Signature header")]
    MissingSignature,
    /// The signature matches none of the accepted URL variants.
    #[error("X-Twilio-Signature `{signature}` does not match the request to `{url}`")]
    Mismatch {
        /// The URL the signature was checked against.
        url: String,
        /// The signature received.
        signature: String,
    },
    /// JSON body: the query has no `bodySHA256` parameter.
    #[error("JSON webhook URL `{url}` has no bodySHA256 query parameter")]
    MissingBodyHash {
        /// The URL given.
        url: String,
    },
    /// JSON body: `bodySHA256` does not match the body.
    #[error("bodySHA256 `{expected}` in the URL does not match the body's SHA-256 `{actual}`")]
    BodyHashMismatch {
        /// The hash from the URL.
        expected: String,
        /// The hash of the body received.
        actual: String,
    },
    /// The settings header names an algorithm this validator does not implement.
    #[error(
        "unsupported webhook signature algorithm `{algorithm}` (supported: HMAC_SHA1, HMAC_SHA256)"
    )]
    UnsupportedAlgorithm {
        /// The algorithm named.
        algorithm: String,
    },
    /// The request is signed with a SharedKey but none is configured.
    #[error("request is signed with {algorithm} (SharedKey `{key_id}`) but no SharedKey secret is configured")]
    NoSharedKey {
        /// The algorithm named in the settings header.
        algorithm: SignatureAlgorithm,
        /// The `key=` value of the settings header, if any.
        key_id: String,
    },
}

/// The HMAC used to sign a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// Legacy: HMAC-SHA1 with the account's auth token.
    #[default]
    HmacSha1,
    /// HMAC-SHA256 with a SharedKey secret.
    HmacSha256,
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureAlgorithm::HmacSha1 => "HMAC_SHA1",
            SignatureAlgorithm::HmacSha256 => "HMAC_SHA256",
        })
    }
}

impl SignatureAlgorithm {
    /// Parses an algorithm name (case-insensitive), e.g. `HMAC_SHA256`.
    pub fn from_name(name: &str) -> Result<Self, SignatureError> {
        match name.trim().to_ascii_uppercase().as_str() {
            "HMAC_SHA1" => Ok(SignatureAlgorithm::HmacSha1),
            "HMAC_SHA256" => Ok(SignatureAlgorithm::HmacSha256),
            _ => Err(SignatureError::UnsupportedAlgorithm {
                algorithm: name.to_owned(),
            }),
        }
    }

    /// Reads the `X-Twilio-Webhooks-Signature-Settings` header
    /// (`key=<id>,algorithm=<name>`). A missing header, or one without a
    /// non-empty `algorithm=`, means HMAC-SHA1 with the auth token; an unknown
    /// algorithm is an error (twilio-python 9.13 `get_signature_algorithm`).
    pub fn from_settings_header(header: Option<&str>) -> Result<Self, SignatureError> {
        match settings_field(header, "algorithm") {
            Some(name) => Self::from_name(name),
            None => Ok(SignatureAlgorithm::HmacSha1),
        }
    }
}

/// The value of `name=` in a settings header, trimmed, if present and non-empty.
pub(crate) fn settings_field<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim() == name && !v.trim().is_empty()).then(|| v.trim())
    })
}

/// Computes and checks Twilio webhook signatures with one secret (the auth
/// token, or a SharedKey secret for HMAC-SHA256).
///
/// ```
/// use callbid_twilio::signature::RequestValidator;
/// let v = RequestValidator::new("12345");
/// let params = [
///     ("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
///     ("From", "+14158675309"), ("To", "+18005551212"),
/// ];
/// assert!(v.validate("https://mycompany.com/myapp.php?foo=1&bar=2", &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
/// ```
#[derive(Clone)]
pub struct RequestValidator {
    /// HMAC-SHA1 with the secret already keyed in (cloned for each signature, so the
    /// key's two padded blocks are hashed once, not per request).
    sha1: Hmac<sha1::Sha1>,
    /// The same for HMAC-SHA256.
    sha256: Hmac<sha2::Sha256>,
}

impl fmt::Debug for RequestValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestValidator")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl RequestValidator {
    /// A validator for webhooks signed with `secret` (the auth token, or a
    /// SharedKey secret).
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        // HMAC takes keys of any length (longer ones are hashed first), so keying
        // cannot fail; `new_from_slice` is `KeyInit`'s fallible form of that.
        let secret = secret.as_ref();
        RequestValidator {
            sha1: <Hmac<sha1::Sha1> as hmac::digest::KeyInit>::new_from_slice(secret)
                .unwrap_or_else(|_| keyed_empty()),
            sha256: <Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(secret)
                .unwrap_or_else(|_| keyed_empty()),
        }
    }

    /// The signature Twilio sends for a request to exactly `url` with form
    /// `params` (HMAC-SHA1).
    pub fn compute_signature<K, V>(&self, url: &str, params: &[(K, V)]) -> String
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.compute_signature_with(url, params, SignatureAlgorithm::HmacSha1)
    }

    /// [`compute_signature`](Self::compute_signature) with a chosen algorithm.
    pub fn compute_signature_with<K, V>(
        &self,
        url: &str,
        params: &[(K, V)],
        algorithm: SignatureAlgorithm,
    ) -> String
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.sign(url, signed_params(params).as_bytes(), algorithm)
    }

    /// The base64 HMAC of `url` followed by `params` (the sorted name/value text of
    /// [`signed_string`] after the URL).
    fn sign(&self, url: &str, params: &[u8], algorithm: SignatureAlgorithm) -> String {
        match algorithm {
            SignatureAlgorithm::HmacSha1 => mac_base64(self.sha1.clone(), url, params),
            SignatureAlgorithm::HmacSha256 => mac_base64(self.sha256.clone(), url, params),
        }
    }

    /// `true` when `signature` is valid for a form request to `url` (HMAC-SHA1).
    pub fn validate<K, V>(&self, url: &str, params: &[(K, V)], signature: &str) -> bool
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.check(url, params, signature, SignatureAlgorithm::HmacSha1)
            .is_ok()
    }

    /// Checks a form request's signature, saying why it failed.
    pub fn check<K, V>(
        &self,
        url: &str,
        params: &[(K, V)],
        signature: &str,
        algorithm: SignatureAlgorithm,
    ) -> Result<(), SignatureError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let parsed = parse_http_url(url)?;
        self.check_parsed(url, &parsed, params, signature, algorithm)
    }

    /// [`check`](Self::check) of a URL already parsed.
    fn check_parsed<K, V>(
        &self,
        url: &str,
        parsed: &url::Url,
        params: &[(K, V)],
        signature: &str,
        algorithm: SignatureAlgorithm,
    ) -> Result<(), SignatureError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let variants = variants_of(url, parsed)?;
        let tail = signed_params(params);
        let mut ok = subtle::Choice::from(0u8);
        for candidate in &variants {
            let expected = self.sign(candidate, tail.as_bytes(), algorithm);
            ok |= ct_eq(&expected, signature);
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch {
                url: url.to_owned(),
                signature: signature.to_owned(),
            })
        }
    }

    /// `true` when `signature` and the `bodySHA256` query parameter are valid
    /// for a JSON request to `url` with raw `body` (HMAC-SHA1).
    pub fn validate_body(&self, url: &str, body: &[u8], signature: &str) -> bool {
        self.check_body(url, body, signature, SignatureAlgorithm::HmacSha1)
            .is_ok()
    }

    /// Checks a JSON request: every `bodySHA256` value in the URL's query must
    /// equal the hex SHA-256 of `body` (of `{}` when `body` is empty, as
    /// twilio-node hashes `rawBody || "{}"`), and the signature must be valid
    /// for the URL with no parameters. Errors: [`SignatureError::MissingBodyHash`]
    /// when the query has no `bodySHA256`, [`SignatureError::BodyHashMismatch`]
    /// naming the first value that differs, [`SignatureError::Mismatch`].
    pub fn check_body(
        &self,
        url: &str,
        body: &[u8],
        signature: &str,
        algorithm: SignatureAlgorithm,
    ) -> Result<(), SignatureError> {
        let parsed = parse_http_url(url)?;
        let expected = body_hashes(&parsed);
        if expected.is_empty() {
            return Err(SignatureError::MissingBodyHash {
                url: url.to_owned(),
            });
        }
        let actual = body_sha256(hashed_body(body));
        // Every value is compared (constant time), so a duplicated
        // `bodySHA256` cannot smuggle in a second, unchecked hash.
        let mut first_bad = None;
        for value in &expected {
            if !bool::from(ct_eq(&actual, value)) && first_bad.is_none() {
                first_bad = Some(value.clone());
            }
        }
        let sig = self.check_parsed(url, &parsed, &[] as &[(&str, &str)], signature, algorithm);
        if let Some(expected) = first_bad {
            return Err(SignatureError::BodyHashMismatch { expected, actual });
        }
        sig
    }

    /// Checks one whole request, choosing the checks from what the signature
    /// covers only:
    ///
    /// 1. the URL's query has `bodySHA256` (even with an empty body, a form
    ///    Content-Type or a GET): [`check_body`](Self::check_body);
    /// 2. otherwise a form POST (`form_body`): the signature over the URL and
    ///    the form parameters of `body` ([`check`](Self::check));
    /// 3. otherwise the signature over the URL alone, and `body` must be empty
    ///    (a body the signature does not cover is refused with
    ///    [`SignatureError::MissingBodyHash`]).
    ///
    /// `form_body` (from the Content-Type) only says how to read a body the
    /// signature covers; it never turns a check off.
    pub fn check_request(
        &self,
        url: &str,
        body: &[u8],
        form_body: bool,
        signature: &str,
        algorithm: SignatureAlgorithm,
    ) -> Result<(), SignatureError> {
        let parsed = parse_http_url(url)?;
        if !body_hashes(&parsed).is_empty() {
            self.check_body(url, body, signature, algorithm)
        } else if form_body {
            let params: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> =
                form_urlencoded::parse(body).collect();
            self.check_parsed(url, &parsed, &params, signature, algorithm)
        } else if body.is_empty() {
            self.check_parsed(url, &parsed, &[] as &[(&str, &str)], signature, algorithm)
        } else {
            Err(SignatureError::MissingBodyHash {
                url: url.to_owned(),
            })
        }
    }
}

/// Every `bodySHA256` value in `url`'s query (percent-decoded), in order.
fn body_hashes(url: &url::Url) -> Vec<String> {
    url.query_pairs()
        .filter(|(k, _)| k == BODY_HASH_PARAM)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The bytes `bodySHA256` is checked against: the raw body, or `{}` when it is
/// empty (twilio-node `validateIncomingRequest`: `request.rawBody || "{}"`).
/// Only a truly empty body is replaced; whitespace is hashed as received.
fn hashed_body(body: &[u8]) -> &[u8] {
    if body.is_empty() {
        b"{}"
    } else {
        body
    }
}

/// The query parameter carrying the body's hash.
pub const BODY_HASH_PARAM: &str = "bodySHA256";

/// Hex SHA-256 of a request body, as Twilio puts in `bodySHA256`.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(body))
}

fn ct_eq(a: &str, b: &str) -> subtle::Choice {
    if a.len() != b.len() {
        return subtle::Choice::from(0u8);
    }
    a.as_bytes().ct_eq(b.as_bytes())
}

/// The string Twilio signs: URL, then sorted names each with sorted unique values.
pub fn signed_string<K, V>(url: &str, params: &[(K, V)]) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut s = String::from(url);
    s.push_str(&signed_params(params));
    s
}

/// What [`signed_string`] puts after the URL: sorted names each with sorted unique
/// values.
fn signed_params<K, V>(params: &[(K, V)]) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut s = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len()).sum());
    for (k, v) in pairs {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

/// The base64 of `m` (already keyed) over `url` then `params`.
fn mac_base64<M: Mac>(mut m: M, url: &str, params: &[u8]) -> String {
    m.update(url.as_bytes());
    m.update(params);
    BASE64.encode(m.finalize().into_bytes())
}

/// An HMAC keyed with the empty key (never used: keying takes any length).
fn keyed_empty<M: hmac::digest::KeyInit>() -> M {
    M::new(&Default::default())
}

fn parse_http_url(url: &str) -> Result<url::Url, SignatureError> {
    let parsed = url::Url::parse(url).map_err(|e| SignatureError::InvalidUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(SignatureError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("scheme `{}` is not http or https", parsed.scheme()),
        });
    }
    Ok(parsed)
}

/// The URL split at the port, keeping every other byte as given.
struct Split<'a> {
    /// `scheme://userinfo@host`
    head: &'a str,
    /// The port digits, if present.
    port: Option<&'a str>,
    /// Path, query and fragment.
    tail: &'a str,
}

fn split_port(url: &str) -> Option<Split<'_>> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let hostport = &authority[host_start..];
    // IPv6 literals: the port colon comes after `]`.
    let search_from = hostport.rfind(']').map_or(0, |i| i + 1);
    let port_colon = hostport[search_from..].rfind(':').map(|i| i + search_from);
    let authority_start = scheme_end + host_start;
    match port_colon {
        Some(c) => {
            let port = &hostport[c + 1..];
            Some(Split {
                head: &url[..authority_start + c],
                port: (!port.is_empty()).then_some(port),
                tail: &url[scheme_end + auth_len..],
            })
        }
        None => Some(Split {
            head: &url[..authority_start + hostport.len()],
            port: None,
            tail: &url[scheme_end + auth_len..],
        }),
    }
}

/// The URL strings a signature is checked against: without port, with the
/// default port, and each with the WHATWG-re-encoded query.
pub fn url_variants(url: &str) -> Result<Vec<String>, SignatureError> {
    let parsed = parse_http_url(url)?;
    variants_of(url, &parsed)
}

/// [`url_variants`] of a URL already parsed (`parsed` is `url`).
fn variants_of(url: &str, parsed: &url::Url) -> Result<Vec<String>, SignatureError> {
    let split = split_port(url).ok_or_else(|| SignatureError::InvalidUrl {
        url: url.to_owned(),
        reason: "no `://` after the scheme".to_owned(),
    })?;
    let default_port = if parsed.scheme() == "https" {
        "443"
    } else {
        "80"
    };
    let (without, with) = match split.port {
        Some(_) => (format!("{}{}", split.head, split.tail), url.to_owned()),
        None => (
            url.to_owned(),
            format!("{}:{}{}", split.head, default_port, split.tail),
        ),
    };
    let mut out = vec![without, with];
    // twilio-node also accepts the query as `new URL()` re-encodes it.
    if let Some(q) = parsed.query() {
        let reencoded: Vec<String> = out.iter().filter_map(|u| replace_query(u, q)).collect();
        for r in reencoded {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// `url` with its raw query replaced by `query`.
fn replace_query(url: &str, query: &str) -> Option<String> {
    let q = url.find('?')?;
    let end = url[q..].find('#').map_or(url.len(), |i| q + i);
    Some(format!("{}?{}{}", &url[..q], query, &url[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_cover_ports_and_userinfo() {
        let v = url_variants("https://user:pass@mycompany.com/myapp.php?foo=1").unwrap();
        assert_eq!(v[0], "https://user:pass@mycompany.com/myapp.php?foo=1");
        assert_eq!(v[1], "https://user:pass@mycompany.com:443/myapp.php?foo=1");
        let v = url_variants("http://[::1]:8080/x").unwrap();
        assert_eq!(v, ["http://[::1]/x", "http://[::1]:8080/x"]);
        let v = url_variants("http://h/x?a='b'#f").unwrap();
        assert!(v.contains(&"http://h/x?a=%27b%27#f".to_owned()), "{v:?}");
    }

    #[test]
    fn bad_urls_and_algorithms_are_named() {
        let e = url_variants("ftp://x/").unwrap_err();
        assert!(e.to_string().contains("ftp://x/"), "{e}");
        assert!(url_variants("not a url").is_err());
        let e = SignatureAlgorithm::from_settings_header(Some("key=k1,algorithm=HMAC_MD5"))
            .unwrap_err();
        assert!(e.to_string().contains("HMAC_MD5"), "{e}");
        assert_eq!(
            SignatureAlgorithm::from_settings_header(Some("key=k1")).unwrap(),
            SignatureAlgorithm::HmacSha1
        );
        assert_eq!(
            SignatureAlgorithm::from_settings_header(Some("key=k1, algorithm=hmac_sha256"))
                .unwrap(),
            SignatureAlgorithm::HmacSha256
        );
        assert_eq!(
            SignatureAlgorithm::from_settings_header(None).unwrap(),
            SignatureAlgorithm::HmacSha1
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", RequestValidator::new("topsecret")).contains("topsecret"));
    }
}

/// Checks whole webhook requests for an app behind a proxy: the URL Twilio
/// called is rebuilt from a configured public base URL plus the request's path
/// and query (the request's own Host and scheme are not trusted).
///
/// Chooses the algorithm from `X-Twilio-Webhooks-Signature-Settings`: HMAC-SHA1
/// with the auth token, or HMAC-SHA256 with the SharedKey secret when one is
/// configured. Form bodies are signed with their parameters; JSON bodies via
/// `bodySHA256`; GET requests by URL alone.
#[derive(Clone)]
pub struct WebhookVerifier {
    base: String,
    auth_token: RequestValidator,
    shared_key: Option<RequestValidator>,
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("public_base_url", &self.base)
            .field("shared_key", &self.shared_key.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookVerifier {
    /// `public_base_url` is what Twilio calls, e.g. `https://ivr.example.com`
    /// or `https://example.com/app` when a proxy strips `/app`.
    pub fn new(
        public_base_url: &str,
        auth_token: impl AsRef<[u8]>,
    ) -> Result<Self, SignatureError> {
        let parsed = parse_http_url(public_base_url)?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(SignatureError::InvalidUrl {
                url: public_base_url.to_owned(),
                reason: "a public base URL cannot have a query or fragment".to_owned(),
            });
        }
        Ok(WebhookVerifier {
            base: public_base_url.trim_end_matches('/').to_owned(),
            auth_token: RequestValidator::new(auth_token),
            shared_key: None,
        })
    }

    /// Also accept HMAC-SHA256 signatures made with this SharedKey secret.
    #[must_use]
    pub fn with_shared_key(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.shared_key = Some(RequestValidator::new(secret));
        self
    }

    /// The URL Twilio called for a request whose path and query are `path_and_query`.
    pub fn public_url(&self, path_and_query: &str) -> String {
        if path_and_query.starts_with('/') {
            format!("{}{}", self.base, path_and_query)
        } else {
            format!("{}/{}", self.base, path_and_query)
        }
    }

    /// Verifies one request. `signature` and `settings` are the
    /// `X-Twilio-Signature` and `X-Twilio-Webhooks-Signature-Settings` headers;
    /// `form_body` is `true` for `application/x-www-form-urlencoded` POSTs,
    /// `false` for JSON bodies and GET requests. Whatever `form_body` says, a
    /// URL whose query has `bodySHA256` is checked in body mode (the raw body's
    /// hash, even when the body is empty); see
    /// [`RequestValidator::check_request`] for the exact rule.
    pub fn verify(
        &self,
        path_and_query: &str,
        signature: Option<&str>,
        settings: Option<&str>,
        body: &[u8],
        form_body: bool,
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::MissingSignature)?;
        let algorithm = SignatureAlgorithm::from_settings_header(settings)?;
        let validator = match algorithm {
            SignatureAlgorithm::HmacSha1 => &self.auth_token,
            SignatureAlgorithm::HmacSha256 => {
                self.shared_key
                    .as_ref()
                    .ok_or_else(|| SignatureError::NoSharedKey {
                        algorithm,
                        key_id: settings_field(settings, "key")
                            .unwrap_or_default()
                            .to_owned(),
                    })?
            }
        };
        let url = self.public_url(path_and_query);
        validator.check_request(&url, body, form_body, signature, algorithm)
    }
}

#[cfg(test)]
mod verifier_tests {
    use super::*;

    #[test]
    fn verifies_against_the_public_url_not_the_local_one() {
        let v = WebhookVerifier::new("https://ivr.example.com/app/", "tok").unwrap();
        assert_eq!(
            v.public_url("/voice?x=1"),
            "https://ivr.example.com/app/voice?x=1"
        );
        let body = b"CallSid=CA1&From=%2B15551230000";
        let params = [("CallSid", "CA1"), ("From", "+15551230000")];
        let sig = RequestValidator::new("tok")
            .compute_signature("https://ivr.example.com/app/voice?x=1", &params);
        assert!(v.verify("/voice?x=1", Some(&sig), None, body, true).is_ok());
        assert!(v
            .verify("/voice?x=2", Some(&sig), None, body, true)
            .is_err());
        assert_eq!(
            v.verify("/voice?x=1", None, None, body, true),
            Err(SignatureError::MissingSignature)
        );
    }

    #[test]
    fn shared_key_requests_need_a_configured_key() {
        let settings = Some("key=webhooks_sharedkey_7,algorithm=HMAC_SHA256");
        let url = "https://ivr.example.com/voice";
        let sig = RequestValidator::new("shared").compute_signature_with(
            url,
            &[("A", "1")],
            SignatureAlgorithm::HmacSha256,
        );
        let v = WebhookVerifier::new("https://ivr.example.com", "tok").unwrap();
        let e = v
            .verify("/voice", Some(&sig), settings, b"A=1", true)
            .unwrap_err();
        assert!(e.to_string().contains("webhooks_sharedkey_7"), "{e}");
        let v = v.with_shared_key("shared");
        assert!(v
            .verify("/voice", Some(&sig), settings, b"A=1", true)
            .is_ok());
        assert!(v
            .verify(
                "/voice",
                Some(&sig),
                Some("algorithm=HMAC_SHA512"),
                b"A=1",
                true
            )
            .is_err());
    }

    const BASE: &str = "https://ivr.example.com";

    fn sign_url(url: &str) -> String {
        RequestValidator::new("tok").compute_signature(url, &[] as &[(&str, &str)])
    }

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(BASE, "tok").unwrap()
    }

    /// Regression: a signed URL carrying `bodySHA256`, replayed with an empty
    /// body, used to pass without the hash being checked.
    #[test]
    fn body_hash_in_the_url_is_checked_even_for_an_empty_body() {
        let body = br#"{"CallSid":"CA1"}"#;
        let pq = format!("/hook?bodySHA256={}", body_sha256(body));
        let sig = sign_url(&format!("{BASE}{pq}"));
        let v = verifier();
        assert_eq!(v.verify(&pq, Some(&sig), None, body, false), Ok(()));
        for form_body in [false, true] {
            let e = v.verify(&pq, Some(&sig), None, b"", form_body).unwrap_err();
            assert!(
                matches!(e, SignatureError::BodyHashMismatch { .. }),
                "form_body={form_body}: {e}"
            );
            // Whitespace is hashed as received, not taken for an empty body.
            for ws in [&b" "[..], b"\n", b"\r\n", b"\t "] {
                let e = v.verify(&pq, Some(&sig), None, ws, form_body).unwrap_err();
                assert!(matches!(e, SignatureError::BodyHashMismatch { .. }), "{e}");
            }
        }
        // The same request sent as a form still has its body hashed.
        assert_eq!(v.verify(&pq, Some(&sig), None, body, true), Ok(()));
    }

    #[test]
    fn an_empty_body_is_hashed_as_braces_like_twilio_node() {
        let pq = format!("/hook?bodySHA256={}", body_sha256(b"{}"));
        let sig = sign_url(&format!("{BASE}{pq}"));
        let v = verifier();
        assert_eq!(v.verify(&pq, Some(&sig), None, b"", false), Ok(()));
        assert_eq!(v.verify(&pq, Some(&sig), None, b"{}", true), Ok(()));
        assert!(v.verify(&pq, Some(&sig), None, b" ", false).is_err());
        let pq = format!("/hook?bodySHA256={}", body_sha256(b" "));
        let sig = sign_url(&format!("{BASE}{pq}"));
        assert_eq!(v.verify(&pq, Some(&sig), None, b" ", false), Ok(()));
        assert!(v.verify(&pq, Some(&sig), None, b"", false).is_err());
    }

    #[test]
    fn a_form_body_under_a_body_hash_url_is_hashed_not_taken_as_params() {
        let form = b"CallSid=CA1&From=%2B15551230000";
        let pq = format!("/voice?bodySHA256={}", body_sha256(form));
        let url = format!("{BASE}{pq}");
        let v = verifier();
        // Signed over the URL alone, as Twilio signs body-hash requests.
        assert_eq!(
            v.verify(&pq, Some(&sign_url(&url)), None, form, true),
            Ok(())
        );
        // A signature over URL + parameters is not what Twilio sends here.
        let params = [("CallSid", "CA1"), ("From", "+15551230000")];
        let with_params = RequestValidator::new("tok").compute_signature(&url, &params);
        assert!(v.verify(&pq, Some(&with_params), None, form, true).is_err());
        // Another form body under the same URL fails the hash.
        let e = v
            .verify(&pq, Some(&sign_url(&url)), None, b"CallSid=CA2", true)
            .unwrap_err();
        assert!(matches!(e, SignatureError::BodyHashMismatch { .. }), "{e}");
    }

    #[test]
    fn every_duplicated_body_hash_must_match() {
        let body = br#"{"a":1}"#;
        let good = body_sha256(body);
        let bad = body_sha256(b"other");
        let v = verifier();
        for (q, ok) in [
            (format!("bodySHA256={good}&bodySHA256={good}"), true),
            (format!("bodySHA256={good}&bodySHA256={bad}"), false),
            (format!("bodySHA256={bad}&bodySHA256={good}"), false),
            (format!("bodySHA256={good}&bodySHA256="), false),
            (format!("x=1&bodySHA256={good}&bodySHA256={bad}&y=2"), false),
        ] {
            let pq = format!("/hook?{q}");
            let sig = sign_url(&format!("{BASE}{pq}"));
            for form_body in [false, true] {
                let r = v.verify(&pq, Some(&sig), None, body, form_body);
                assert_eq!(r.is_ok(), ok, "{q} form_body={form_body}: {r:?}");
                let r = v.verify(&pq, Some(&sig), None, b"", form_body);
                assert!(r.is_err(), "{q}: empty body");
            }
        }
    }

    #[test]
    fn wrong_or_malformed_body_hashes_fail() {
        let body = br#"{"a":1}"#;
        let good = body_sha256(body);
        let v = verifier();
        for value in [
            body_sha256(b"{}"),
            good.to_uppercase(),
            good[..63].to_owned(),
            format!("{good}0"),
            String::new(),
            "not-hex".to_owned(),
        ] {
            let pq = format!("/hook?bodySHA256={value}");
            let sig = sign_url(&format!("{BASE}{pq}"));
            let e = v.verify(&pq, Some(&sig), None, body, false).unwrap_err();
            assert!(
                matches!(e, SignatureError::BodyHashMismatch { .. }),
                "{value}: {e}"
            );
        }
        // A percent-encoded key is still `bodySHA256` once decoded.
        let pq = format!("/hook?body%53HA256={}", body_sha256(b"other"));
        let sig = sign_url(&format!("{BASE}{pq}"));
        assert!(v.verify(&pq, Some(&sig), None, body, false).is_err());
        assert!(v.verify(&pq, Some(&sig), None, b"", true).is_err());
        // The right hash with a wrong signature is still refused.
        let pq = format!("/hook?bodySHA256={good}");
        let e = v
            .verify(
                &pq,
                Some(&sign_url("https://other.example/hook")),
                None,
                body,
                false,
            )
            .unwrap_err();
        assert!(matches!(e, SignatureError::Mismatch { .. }), "{e}");
    }

    #[test]
    fn body_mode_holds_on_every_port_variant() {
        let body = br#"{"a":1}"#;
        let v = WebhookVerifier::new("https://ivr.example.com:443", "tok").unwrap();
        let pq = format!("/hook?bodySHA256={}", body_sha256(body));
        for signed in [
            format!("https://ivr.example.com{pq}"),
            format!("https://ivr.example.com:443{pq}"),
        ] {
            let sig = sign_url(&signed);
            assert_eq!(
                v.verify(&pq, Some(&sig), None, body, false),
                Ok(()),
                "{signed}"
            );
            assert!(
                v.verify(&pq, Some(&sig), None, b"", true).is_err(),
                "{signed}"
            );
            assert!(
                v.verify(&pq, Some(&sig), None, b"", false).is_err(),
                "{signed}"
            );
        }
    }

    #[test]
    fn an_uncovered_body_is_refused_and_a_body_hash_name_elsewhere_is_not_body_mode() {
        let v = verifier();
        // No bodySHA256, not a form: the body is not covered, so it must be empty.
        let sig = sign_url(&format!("{BASE}/hook"));
        assert_eq!(v.verify("/hook", Some(&sig), None, b"", false), Ok(()));
        let e = v
            .verify("/hook", Some(&sig), None, b"{}", false)
            .unwrap_err();
        assert!(matches!(e, SignatureError::MissingBodyHash { .. }), "{e}");
        // `bodySHA256` in the path or in a value is not the parameter.
        for pq in ["/bodySHA256/x", "/x?note=bodySHA256", "/x?xbodySHA256=1"] {
            let params = [("CallSid", "CA1")];
            let sig =
                RequestValidator::new("tok").compute_signature(&format!("{BASE}{pq}"), &params);
            assert_eq!(
                v.verify(pq, Some(&sig), None, b"CallSid=CA1", true),
                Ok(()),
                "{pq}"
            );
        }
    }

    #[test]
    fn base_url_errors_name_the_value() {
        let e = WebhookVerifier::new("ivr.example.com", "t").unwrap_err();
        assert!(e.to_string().contains("ivr.example.com"), "{e}");
        assert!(WebhookVerifier::new("https://x.com/?a=1", "t").is_err());
    }
}

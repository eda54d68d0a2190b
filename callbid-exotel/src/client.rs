//! The HTTP client: base URL by region, Basic auth, bounded bodies, typed errors.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use url::Url;

use callbid_core::PhoneNumber;

use crate::error::ExotelError;
use crate::types::{CallEnvelope, ConnectToFlow, ExotelCall, NumberMetadata, NumbersEnvelope};

/// Exotel's regional API hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Region {
    /// `api.exotel.com`.
    Singapore,
    /// `api.in.exotel.com`.
    Mumbai,
}

impl Region {
    fn base(self) -> &'static str {
        match self {
            Region::Singapore => "https://api.exotel.com/",
            Region::Mumbai => "https://api.in.exotel.com/",
        }
    }
}

/// Largest answer body read (1 MiB): Exotel's answers are a few KiB.
const MAX_BODY: usize = 1 << 20;

/// Builds an [`ExotelClient`].
pub struct ExotelClientBuilder {
    account_sid: String,
    api_key: String,
    api_token: String,
    base: Option<String>,
    region: Region,
    timeout: Duration,
}

impl fmt::Debug for ExotelClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExotelClientBuilder")
            .field("account_sid", &self.account_sid)
            .field("api_key", &"<redacted>")
            .field("region", &self.region)
            .field("base", &self.base)
            .finish()
    }
}

impl ExotelClientBuilder {
    /// The region (default Singapore).
    pub fn region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// Overrides the base URL (a local mock in tests). A path is kept: requests go under
    /// it.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base = Some(url.into());
        self
    }

    /// Per-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Validates and builds. Errors name the field.
    pub fn build(self) -> Result<ExotelClient, ExotelError> {
        for (field, v) in [
            ("account_sid", &self.account_sid),
            ("api_key", &self.api_key),
            ("api_token", &self.api_token),
        ] {
            if v.trim().is_empty() {
                return Err(ExotelError::invalid(field, "", "must not be empty"));
            }
        }
        if self.account_sid.contains(['/', '?', '#']) {
            return Err(ExotelError::invalid(
                "account_sid",
                self.account_sid,
                "must not contain / ? #",
            ));
        }
        let raw = self.base.unwrap_or_else(|| self.region.base().to_string());
        let mut base = Url::parse(&raw)
            .map_err(|e| ExotelError::invalid("base_url", raw.clone(), &e.to_string()))?;
        if base.host_str().is_none() || base.query().is_some() {
            return Err(ExotelError::invalid(
                "base_url",
                raw,
                "needs a host and no query",
            ));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ExotelError::invalid("http", "", &e.to_string()))?;
        Ok(ExotelClient {
            http,
            base,
            account_sid: self.account_sid,
            api_key: self.api_key,
            api_token: self.api_token,
        })
    }
}

/// The Exotel REST client. Cheap to clone.
#[derive(Clone)]
pub struct ExotelClient {
    http: reqwest::Client,
    base: Url,
    account_sid: String,
    api_key: String,
    api_token: String,
}

impl fmt::Debug for ExotelClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExotelClient")
            .field("base", &self.base.as_str())
            .field("account_sid", &self.account_sid)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

impl ExotelClient {
    /// A builder for `account_sid` with the API key and token (HTTP Basic auth).
    pub fn builder(
        account_sid: impl Into<String>,
        api_key: impl Into<String>,
        api_token: impl Into<String>,
    ) -> ExotelClientBuilder {
        ExotelClientBuilder {
            account_sid: account_sid.into(),
            api_key: api_key.into(),
            api_token: api_token.into(),
            base: None,
            region: Region::Singapore,
            timeout: Duration::from_secs(10),
        }
    }

    /// `…/v1/Accounts/{sid}/{tail}` under the base's path (segments percent-encoded).
    fn url(&self, segments: &[&str]) -> Result<Url, ExotelError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                ExotelError::invalid("base_url", self.base.as_str(), "cannot be a base")
            })?;
            path.pop_if_empty();
            path.extend(["v1", "Accounts", self.account_sid.as_str()]);
            path.extend(segments);
        }
        Ok(url)
    }

    /// `POST Calls/connect.json`: calls `From`, then runs the flow at `Url`.
    pub async fn connect_to_flow(&self, req: &ConnectToFlow) -> Result<ExotelCall, ExotelError> {
        let url = self.url(&["Calls", "connect.json"])?;
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(req.form())
            .finish();
        let request = self
            .http
            .post(url)
            .basic_auth(&self.api_key, Some(&self.api_token))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let env: CallEnvelope = self.send("Calls/connect", request).await?;
        Ok(env.call)
    }

    /// `GET Calls/{CallSid}.json?details=true`.
    pub async fn call_details(&self, call_sid: &str) -> Result<ExotelCall, ExotelError> {
        if call_sid.is_empty() || call_sid.contains(['/', '?', '#']) {
            return Err(ExotelError::invalid("CallSid", call_sid, "not a call id"));
        }
        let mut url = self.url(&["Calls", &format!("{call_sid}.json")])?;
        url.query_pairs_mut().append_pair("details", "true");
        let request = self
            .http
            .get(url)
            .basic_auth(&self.api_key, Some(&self.api_token));
        let env: CallEnvelope = self.send("call details", request).await?;
        Ok(env.call)
    }

    /// `GET Numbers/{number}.json`: telecom circle, operator, type, DND.
    pub async fn number_metadata(
        &self,
        number: &PhoneNumber,
    ) -> Result<NumberMetadata, ExotelError> {
        let url = self.url(&["Numbers", &format!("{}.json", number.as_str())])?;
        let request = self
            .http
            .get(url)
            .basic_auth(&self.api_key, Some(&self.api_token));
        let env: NumbersEnvelope = self.send("number metadata", request).await?;
        Ok(env.numbers)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ExotelError> {
        let response = request
            .send()
            .await
            .map_err(|source| ExotelError::Transport { operation, source })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_capped(operation, response).await?;
        if status == 429 {
            return Err(ExotelError::RateLimited {
                operation,
                retry_after,
                body,
            });
        }
        if !(200..300).contains(&status) {
            return Err(ExotelError::Api {
                operation,
                status,
                message: rest_exception_message(&body).unwrap_or_else(|| truncate(&body)),
                body,
            });
        }
        serde_json::from_str(&body).map_err(|e| ExotelError::Decode {
            operation,
            reason: e.to_string(),
            body: truncate(&body),
        })
    }
}

async fn read_capped(
    operation: &'static str,
    mut response: reqwest::Response,
) -> Result<String, ExotelError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| ExotelError::Transport { operation, source })?
    {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(ExotelError::Decode {
                operation,
                reason: format!("body larger than {MAX_BODY} bytes"),
                body: String::new(),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ExotelError::Decode {
        operation,
        reason: "body is not UTF-8".into(),
        body: String::new(),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(2000).collect()
}

/// `RestException.Message` from an error body, if it has one.
fn rest_exception_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let e = v.get("RestException")?;
    let msg = e.get("Message")?.as_str()?.to_string();
    match e.get("Code") {
        Some(code) if !code.is_null() => Some(format!("{msg} (code {code})")),
        _ => Some(msg),
    }
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path() {
        for base in ["http://127.0.0.1:9/exotel", "http://127.0.0.1:9/exotel/"] {
            let c = ExotelClient::builder("acme", "k", "t")
                .base_url(base)
                .build()
                .unwrap();
            assert_eq!(
                c.url(&["Calls", "connect.json"]).unwrap().as_str(),
                "http://127.0.0.1:9/exotel/v1/Accounts/acme/Calls/connect.json"
            );
        }
        let c = ExotelClient::builder("acme", "k", "t")
            .region(Region::Mumbai)
            .build()
            .unwrap();
        assert_eq!(
            c.url(&["Numbers", "+919812345678.json"]).unwrap().as_str(),
            "https://api.in.exotel.com/v1/Accounts/acme/Numbers/+919812345678.json"
        );
    }

    #[test]
    fn builder_errors_name_the_field() {
        let e = ExotelClient::builder("", "k", "t").build().unwrap_err();
        assert!(matches!(
            e,
            ExotelError::Invalid {
                field: "account_sid",
                ..
            }
        ));
        let e = ExotelClient::builder("a/b", "k", "t").build().unwrap_err();
        assert!(matches!(
            e,
            ExotelError::Invalid {
                field: "account_sid",
                ..
            }
        ));
        let e = ExotelClient::builder("a", "k", "t")
            .base_url("nope")
            .build()
            .unwrap_err();
        assert!(matches!(
            e,
            ExotelError::Invalid {
                field: "base_url",
                ..
            }
        ));
        let dbg = format!(
            "{:?}",
            ExotelClient::builder("a", "secret-key", "secret-token")
        );
        assert!(!dbg.contains("secret"), "{dbg}");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}

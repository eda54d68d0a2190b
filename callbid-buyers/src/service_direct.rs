//! Service Direct's partner ("Earn") API, as its public PHP SDK speaks it.
//!
//! - ping: `POST {base}request` with `sd_api_key` in the JSON body, `zip_code`,
//!   `service_category` (from a configurable table), optional `source`, `caller_id`,
//!   `tracking_id` (our call id), `test_mode`, `suppress_response_codes`;
//!   `200 {"data":{"available_buyer":1,"request_id":…,"bid":…,"min_duration":…}}` is a bid,
//!   HTTP 404 is "no buyer", HTTP 400 `{"message":…}` a rejected request. With
//!   `suppress_response_codes` the real status is read from `x-original-status-code`;
//! - accept: `POST {base}request/{request_id}/accept` → `{"data":{"phone_number":"5125550123"}}`
//!   (10-digit NANP, turned into E.164);
//! - loss: `POST {base}request/{request_id}/sold_price` with `sold_price` (US dollars; a
//!   sale in another currency is not reported, the step fails as `Refused`).
//!
//! `test_mode: true` (when configured) goes on all three requests, as the SDK's
//! `examples/request-bid.php`, `request-accept.php` and `request-sold-price.php` send it,
//! so a test setup's accepts and loss reports are not taken as live.
//!
//! `sold_price`'s optional `duration` (`/*?*/'duration' => 60` in
//! `examples/request-sold-price.php`; the SDK documents no more) describes the sale that
//! was made to the *other* buyer: the billable duration its price was for, in seconds.
//! A loss report knows only the sold price ([`Buyer::report_loss`] carries no winner's
//! terms), so `duration` is left out rather than filled with Service Direct's own
//! `min_duration`, which would misstate the winning sale.
//!
//! URLs: the base URL always ends in `/` (added when missing) and every path joined to
//! it is relative without a leading `/`, so a base with a path
//! (`https://proxy.example/sd/partners`) keeps it: `…/sd/partners/request`.
//!
//! [`Buyer::report_loss`]: callbid_core::Buyer::report_loss

use std::collections::BTreeMap;
use std::fmt;

use callbid_core::{
    Bid, BuyerErrorKind, BuyerId, CallContext, Capabilities, Currency, Destination, Money,
    PhoneNumber, PingReply, ServiceType,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::adapter::{redirect_error, require_json, AdapterError, HttpAdapter};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::json::{parse_price, parse_seconds, Doc, Leaf};
use crate::secret::Secret;

/// The production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.servicedirect.com/partners/";

/// Service Direct's published `service_category` ids for our service slugs, as in the
/// SDK's `src/ServiceCategories.php` (`AirConditioning = 2`, `Electrician = 9`,
/// `Plumbing = 20`, `Roofing = 24`, `PestControl = 42`; e.g. `Gutters = 96`,
/// `Heating = 14` for slugs configured in `categories`).
pub fn default_categories() -> BTreeMap<String, u32> {
    [
        ("air_conditioning", 2),
        ("electrician", 9),
        ("plumbing", 20),
        ("roofing", 24),
        ("pest_control", 42),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The Service Direct adapter.
#[derive(Clone)]
pub struct ServiceDirect {
    api_key: Secret,
    base: url::Url,
    categories: BTreeMap<ServiceType, u32>,
    source: Option<String>,
    test_mode: bool,
    caller_id_in_post: bool,
    suppress_response_codes: bool,
    currency: Currency,
}

impl fmt::Debug for ServiceDirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDirect")
            .field("api_key", &self.api_key)
            .field("base", &self.base.as_str())
            .field("categories", &self.categories)
            .field("source", &self.source)
            .field("test_mode", &self.test_mode)
            .field("suppress_response_codes", &self.suppress_response_codes)
            .finish()
    }
}

impl ServiceDirect {
    /// An adapter with the production base URL and the published category table.
    pub fn new(api_key: Secret) -> Self {
        #[allow(clippy::expect_used)]
        let base = url::Url::parse(DEFAULT_BASE_URL).expect("DEFAULT_BASE_URL is a valid URL");
        let categories = default_categories()
            .into_iter()
            .filter_map(|(k, v)| ServiceType::new(k).ok().map(|s| (s, v)))
            .collect();
        ServiceDirect {
            api_key,
            base,
            categories,
            source: None,
            test_mode: false,
            caller_id_in_post: false,
            suppress_response_codes: false,
            currency: Currency::USD,
        }
    }

    /// Sets the base URL (a trailing `/` is added when missing).
    pub fn with_base_url(mut self, base: &str) -> Result<Self, AdapterError> {
        let mut b = base.trim().to_string();
        if !b.ends_with('/') {
            b.push('/');
        }
        let u = url::Url::parse(&b)
            .map_err(|e| AdapterError::config(format!("base_url {base:?}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(AdapterError::config(format!(
                "base_url {base:?}: scheme must be http or https"
            )));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(AdapterError::config(format!(
                "base_url {base:?}: has no host"
            )));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(AdapterError::config(format!(
                "base_url {base:?}: must not have a query or fragment"
            )));
        }
        self.base = u;
        Ok(self)
    }

    /// Maps a service to a `service_category` id (adds or overrides).
    pub fn with_category(mut self, service: ServiceType, id: u32) -> Self {
        self.categories.insert(service, id);
        self
    }

    /// Sets the default `source` (sub id), used when the call has no source.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sends `test_mode: true`.
    pub fn with_test_mode(mut self, yes: bool) -> Self {
        self.test_mode = yes;
        self
    }

    /// Sends `caller_id_in_post: true` (the caller id is then given at accept time).
    pub fn with_caller_id_in_post(mut self, yes: bool) -> Self {
        self.caller_id_in_post = yes;
        self
    }

    /// Asks for `suppress_response_codes` (every answer 200, real code in a header).
    pub fn with_suppress_response_codes(mut self, yes: bool) -> Self {
        self.suppress_response_codes = yes;
        self
    }

    /// The currency bids are in (USD).
    pub fn with_currency(mut self, c: Currency) -> Self {
        self.currency = c;
        self
    }

    fn url(&self, path: &str) -> Result<url::Url, AdapterError> {
        self.base
            .join(path)
            .map_err(|e| AdapterError::config(format!("cannot join {path:?} to the base URL: {e}")))
    }

    fn request(&self, path: &str, body: String) -> Result<HttpRequest, AdapterError> {
        let mut req = HttpRequest::new(Method::Post, self.url(path)?)
            .with_header("Content-Type", "application/json")
            .with_header("Accept", "application/json")
            .with_secret(self.api_key.clone());
        req.body = body.into();
        Ok(req)
    }

    fn bid_path(bid: &Bid, suffix: &str) -> Result<String, AdapterError> {
        let id = bid.bid_id.as_deref().ok_or_else(|| {
            AdapterError::new(BuyerErrorKind::BadResponse, "bid has no request_id")
        })?;
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AdapterError::new(
                BuyerErrorKind::BadResponse,
                format!("request_id {id:?} is not a plain id"),
            ));
        }
        Ok(format!("request/{id}/{suffix}"))
    }

    /// The status Service Direct meant (honours `x-original-status-code`).
    fn status(resp: &HttpResponse) -> u16 {
        resp.header("x-original-status-code")
            .and_then(|s| s.trim().parse::<u16>().ok())
            .filter(|s| (100..600).contains(s))
            .unwrap_or(resp.status)
    }

    fn message(resp: &HttpResponse) -> String {
        Doc::parse(&resp.body)
            .ok()
            .and_then(|d| d.pointer("/message").ok().flatten())
            .and_then(|l| l.as_text())
            .unwrap_or_else(|| resp.body_excerpt(200))
    }

    fn check_status(resp: &HttpResponse, what: &str) -> Result<Option<PingReply>, AdapterError> {
        if let Some(e) = redirect_error(resp) {
            return Err(e);
        }
        let status = Self::status(resp);
        match status {
            200 => Ok(None),
            204 => Ok(Some(PingReply::NoBid {
                reason: "no content".into(),
            })),
            404 => Ok(Some(PingReply::NoBid {
                reason: format!(
                    "no buyer for this ZIP and category ({})",
                    Self::message(resp)
                ),
            })),
            400 | 422 => Err(AdapterError {
                kind: BuyerErrorKind::Rejected,
                message: format!("{what} rejected (HTTP {status}): {}", Self::message(resp)),
                raw_body: Some(resp.body_excerpt(crate::adapter::RAW_BODY_EXCERPT)),
            }),
            401 | 403 => Err(AdapterError {
                kind: BuyerErrorKind::Config,
                message: format!("API key refused (HTTP {status}): {}", Self::message(resp)),
                raw_body: Some(resp.body_excerpt(crate::adapter::RAW_BODY_EXCERPT)),
            }),
            s => Err(AdapterError::bad_response(
                format!("{what} answered HTTP {s}"),
                resp,
            )),
        }
    }
}

#[derive(Serialize)]
struct PingBody<'a> {
    sd_api_key: &'a str,
    zip_code: &'a str,
    service_category: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_id: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    caller_id_in_post: bool,
    tracking_id: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    test_mode: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    suppress_response_codes: bool,
}

#[derive(Serialize)]
struct KeyBody<'a> {
    sd_api_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_id: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    test_mode: bool,
}

#[derive(Serialize)]
struct SoldPriceBody<'a> {
    sd_api_key: &'a str,
    sold_price: Box<RawValue>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    test_mode: bool,
}

fn caller_digits(p: &PhoneNumber) -> &str {
    p.nanp_national().unwrap_or(p.as_str())
}

fn to_json<T: Serialize>(v: &T) -> Result<String, AdapterError> {
    serde_json::to_string(v).map_err(|e| AdapterError::config(format!("cannot encode body: {e}")))
}

impl HttpAdapter for ServiceDirect {
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            .with_has_accept(true)
            .with_reports_loss(true)
            .with_accepts_sip(false)
    }

    fn ping_request(&self, call: &CallContext) -> Result<HttpRequest, AdapterError> {
        let category = self.categories.get(&call.service).copied().ok_or_else(|| {
            AdapterError::new(
                BuyerErrorKind::Refused,
                format!(
                    "service {} has no Service Direct service_category (configure one)",
                    call.service
                ),
            )
        })?;
        let source = call
            .source
            .as_ref()
            .map(|s| s.as_str())
            .or(self.source.as_deref());
        let caller = if self.caller_id_in_post {
            None
        } else {
            call.caller.as_ref().map(caller_digits)
        };
        let body = PingBody {
            sd_api_key: self.api_key.expose(),
            zip_code: call.zip.as_str(),
            service_category: category,
            source,
            caller_id: caller,
            caller_id_in_post: self.caller_id_in_post,
            tracking_id: call.call_id.as_str(),
            test_mode: self.test_mode,
            suppress_response_codes: self.suppress_response_codes,
        };
        self.request("request", to_json(&body)?)
    }

    fn parse_ping(
        &self,
        buyer: &BuyerId,
        _call: &CallContext,
        resp: &HttpResponse,
    ) -> Result<PingReply, AdapterError> {
        if let Some(r) = Self::check_status(resp, "ping")? {
            return Ok(r);
        }
        let doc = require_json(resp)?;
        let get = |p: &str| {
            doc.pointer(p)
                .map_err(|e| AdapterError::bad_response(e, resp))
        };
        let available = get("/data/available_buyer")?;
        let available = match &available {
            Some(Leaf::Number(n)) if n == "1" => true,
            Some(Leaf::Number(n)) if n == "0" => false,
            Some(Leaf::String(s)) if s == "1" => true,
            Some(Leaf::String(s)) if s == "0" => false,
            Some(Leaf::Bool(b)) => *b,
            Some(other) => {
                return Err(AdapterError::bad_response(
                    format!(
                        "data.available_buyer: unexpected value {}",
                        other.describe()
                    ),
                    resp,
                ))
            }
            None => {
                return Err(AdapterError::bad_response(
                    "data.available_buyer missing",
                    resp,
                ))
            }
        };
        if !available {
            return Ok(PingReply::NoBid {
                reason: "no buyer available".into(),
            });
        }
        let price = match get("/data/bid")? {
            Some(l) => parse_price("data.bid", &l, self.currency)
                .map_err(|e| AdapterError::bad_response(e, resp))?,
            None => return Err(AdapterError::bad_response("data.bid missing", resp)),
        };
        let request_id = match get("/data/request_id")? {
            Some(l @ (Leaf::Number(_) | Leaf::String(_))) => l.as_text().unwrap_or_default(),
            Some(other) => {
                return Err(AdapterError::bad_response(
                    format!("data.request_id: unexpected value {}", other.describe()),
                    resp,
                ))
            }
            None => return Err(AdapterError::bad_response("data.request_id missing", resp)),
        };
        if request_id.is_empty() {
            return Err(AdapterError::bad_response("data.request_id is empty", resp));
        }
        let mut bid = Bid::new(buyer.clone(), price).with_bid_id(request_id);
        if let Some(l) = get("/data/min_duration")? {
            if l != Leaf::Null {
                let d = parse_seconds("data.min_duration", &l, 86_400)
                    .map_err(|e| AdapterError::bad_response(e, resp))?;
                bid = bid.with_min_duration(d);
            }
        }
        Ok(PingReply::Bid(bid))
    }

    fn accept_request(
        &self,
        call: &CallContext,
        bid: &Bid,
    ) -> Result<Option<HttpRequest>, AdapterError> {
        let caller = if self.caller_id_in_post {
            call.caller.as_ref().map(caller_digits)
        } else {
            None
        };
        let body = KeyBody {
            sd_api_key: self.api_key.expose(),
            caller_id: caller,
            test_mode: self.test_mode,
        };
        self.request(&Self::bid_path(bid, "accept")?, to_json(&body)?)
            .map(Some)
    }

    fn parse_accept(
        &self,
        _call: &CallContext,
        _bid: &Bid,
        resp: &HttpResponse,
    ) -> Result<Destination, AdapterError> {
        if let Some(r) = Self::check_status(resp, "accept")? {
            let why = match r {
                PingReply::NoBid { reason } => reason,
                _ => String::new(),
            };
            return Err(AdapterError::bad_response(
                format!("accept gave no number: {why}"),
                resp,
            ));
        }
        let doc = require_json(resp)?;
        let number = doc
            .pointer("/data/phone_number")
            .map_err(|e| AdapterError::bad_response(e, resp))?;
        let text = match number {
            Some(Leaf::String(s)) => s,
            Some(Leaf::Number(n)) => n,
            Some(other) => {
                return Err(AdapterError::bad_response(
                    format!("data.phone_number: unexpected value {}", other.describe()),
                    resp,
                ))
            }
            None => {
                return Err(AdapterError::bad_response(
                    "data.phone_number missing",
                    resp,
                ))
            }
        };
        let phone = if text.trim_start().starts_with('+') {
            PhoneNumber::parse_field("data.phone_number", &text)
        } else {
            PhoneNumber::from_nanp_field("data.phone_number", &text)
        }
        .map_err(|e| AdapterError::bad_response(e.to_string(), resp))?;
        Ok(Destination::Phone(phone))
    }

    fn loss_request(
        &self,
        _call: &CallContext,
        bid: &Bid,
        sold: &Money,
    ) -> Result<Option<HttpRequest>, AdapterError> {
        // `sold_price` is in US dollars: another currency's amount must not be sent as if
        // it were dollars. Refused before anything is sent; the error says why (the
        // auction logs failed loss reports).
        if sold.currency != Currency::USD {
            tracing::warn!(
                sold = %sold,
                request_id = bid.bid_id.as_deref().unwrap_or(""),
                "Service Direct loss report not sent: sold price is not in USD"
            );
            return Err(AdapterError::new(
                BuyerErrorKind::Refused,
                format!(
                    "sold price {sold} is in {}, but Service Direct's sold_price is in USD; loss report not sent",
                    sold.currency
                ),
            ));
        }
        // Cents, written exactly (`30.50`), never through a float.
        let mut cents = sold.round_dp(2).amount;
        cents.rescale(2);
        let price = RawValue::from_string(cents.to_string())
            .map_err(|e| AdapterError::config(format!("sold price {sold}: {e}")))?;
        let body = SoldPriceBody {
            sd_api_key: self.api_key.expose(),
            sold_price: price,
            test_mode: self.test_mode,
        };
        self.request(&Self::bid_path(bid, "sold_price")?, to_json(&body)?)
            .map(Some)
    }

    fn effective_status(&self, resp: &HttpResponse) -> u16 {
        Self::status(resp)
    }

    fn parse_loss(&self, resp: &HttpResponse) -> Result<(), AdapterError> {
        match Self::check_status(resp, "sold_price")? {
            None => Ok(()),
            Some(_) => Err(AdapterError::bad_response(
                format!("sold_price answered HTTP {}", Self::status(resp)),
                resp,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::CallId;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn call() -> CallContext {
        CallContext::new(
            CallId::new("CA1").unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )
        .with_caller("+15125550123".parse().unwrap())
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(
            status,
            vec![("Content-Type".into(), "application/json".into())],
            body.to_string(),
        )
    }

    #[test]
    fn ping_body_and_bid() {
        let sd = ServiceDirect::new(Secret::new("k\"ey"))
            .with_base_url("http://127.0.0.1:9/partners")
            .unwrap();
        let req = sd.ping_request(&call()).unwrap();
        assert_eq!(req.url.as_str(), "http://127.0.0.1:9/partners/request");
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["sd_api_key"], "k\"ey");
        assert_eq!(body["service_category"], 20);
        assert_eq!(body["caller_id"], "5125550123");
        assert!(!format!("{req:?}").contains("k\\\"ey"));
        let b = BuyerId::new("sd").unwrap();
        let r = sd
            .parse_ping(
                &b,
                &call(),
                &resp(200, r#"{"data":{"available_buyer":1,"request_id":7,"bid":30.10,"min_duration":90}}"#),
            )
            .unwrap();
        let PingReply::Bid(bid) = r else { panic!() };
        assert_eq!(bid.price.amount, dec!(30.10));
        assert_eq!(bid.bid_id.as_deref(), Some("7"));
        let suppressed = HttpResponse::new(
            200,
            vec![("x-original-status-code".into(), "404".into())],
            "{}",
        );
        assert!(matches!(
            sd.parse_ping(&b, &call(), &suppressed).unwrap(),
            PingReply::NoBid { .. }
        ));
    }

    #[test]
    fn loss_report_refuses_a_non_usd_price() {
        let sd = ServiceDirect::new(Secret::new("key"))
            .with_base_url("http://127.0.0.1:9/partners")
            .unwrap();
        let bid = Bid::new(BuyerId::new("sd").unwrap(), Money::usd(dec!(30))).with_bid_id("7");
        let eur = Money::new(dec!(30.5), Currency::parse("EUR").unwrap());
        let e = sd.loss_request(&call(), &bid, &eur).unwrap_err();
        assert_eq!(e.kind, BuyerErrorKind::Refused);
        assert!(
            e.message.contains("EUR") && e.message.contains("USD"),
            "{e}"
        );
        let req = sd
            .loss_request(&call(), &bid, &Money::usd(dec!(30.5)))
            .unwrap()
            .unwrap();
        let body = String::from_utf8(req.body.to_vec()).unwrap();
        assert!(body.contains(r#""sold_price":30.50"#), "{body}");
    }

    fn bid() -> Bid {
        Bid::new(BuyerId::new("sd").unwrap(), Money::usd(dec!(30)))
            .with_bid_id("7")
            .with_min_duration(std::time::Duration::from_secs(90))
    }

    #[test]
    fn every_url_keeps_the_base_path_with_or_without_a_trailing_slash() {
        for (base, prefix) in [
            ("http://127.0.0.1:9", "http://127.0.0.1:9/"),
            ("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
            (
                "http://127.0.0.1:9/partners",
                "http://127.0.0.1:9/partners/",
            ),
            (
                "http://127.0.0.1:9/partners/",
                "http://127.0.0.1:9/partners/",
            ),
            (
                "https://proxy.example/sd/partners",
                "https://proxy.example/sd/partners/",
            ),
            (
                "https://proxy.example/sd/partners/",
                "https://proxy.example/sd/partners/",
            ),
        ] {
            let sd = ServiceDirect::new(Secret::new("k"))
                .with_base_url(base)
                .unwrap();
            let ping = sd.ping_request(&call()).unwrap();
            assert_eq!(ping.url.as_str(), format!("{prefix}request"), "{base}");
            let accept = sd.accept_request(&call(), &bid()).unwrap().unwrap();
            assert_eq!(
                accept.url.as_str(),
                format!("{prefix}request/7/accept"),
                "{base}"
            );
            let loss = sd
                .loss_request(&call(), &bid(), &Money::usd(dec!(20)))
                .unwrap()
                .unwrap();
            assert_eq!(
                loss.url.as_str(),
                format!("{prefix}request/7/sold_price"),
                "{base}"
            );
        }
        // The production default.
        let sd = ServiceDirect::new(Secret::new("k"));
        assert_eq!(
            sd.ping_request(&call()).unwrap().url.as_str(),
            "https://api.servicedirect.com/partners/request"
        );
    }

    #[test]
    fn a_request_id_cannot_change_the_path() {
        let sd = ServiceDirect::new(Secret::new("k"))
            .with_base_url("https://proxy.example/sd/partners")
            .unwrap();
        for id in ["/7", "../7", "7/../../x", "7?x=1", "", "a b"] {
            let b = bid().with_bid_id(id);
            assert!(sd.accept_request(&call(), &b).is_err(), "{id:?}");
        }
    }

    fn json_body(req: &HttpRequest) -> serde_json::Value {
        serde_json::from_slice(&req.body).unwrap()
    }

    #[test]
    fn test_mode_goes_on_ping_accept_and_sold_price_and_only_when_set() {
        for on in [true, false] {
            let sd = ServiceDirect::new(Secret::new("k")).with_test_mode(on);
            let bodies = [
                json_body(&sd.ping_request(&call()).unwrap()),
                json_body(&sd.accept_request(&call(), &bid()).unwrap().unwrap()),
                json_body(
                    &sd.loss_request(&call(), &bid(), &Money::usd(dec!(20)))
                        .unwrap()
                        .unwrap(),
                ),
            ];
            for b in bodies {
                if on {
                    assert_eq!(b["test_mode"], true, "{b}");
                } else {
                    assert!(b.get("test_mode").is_none(), "{b}");
                }
            }
        }
    }

    #[test]
    fn sold_price_does_not_claim_our_min_duration_for_the_winner() {
        let sd = ServiceDirect::new(Secret::new("k"));
        let b = json_body(
            &sd.loss_request(&call(), &bid(), &Money::usd(dec!(20)))
                .unwrap()
                .unwrap(),
        );
        assert_eq!(b.get("duration"), None, "{b}");
        assert_eq!(b["sold_price"], serde_json::json!(20.00));
    }

    /// `src/ServiceCategories.php` of github.com/Service-Direct/php-partners-sdk (commit
    /// 4235285), the slugs callbid names.
    const SDK_CATEGORIES: &[(&str, u32)] = &[
        ("air_conditioning", 2),
        ("electrician", 9),
        ("heating", 14),
        ("plumbing", 20),
        ("roofing", 24),
        ("pest_control", 42),
        ("gutters", 96),
    ];

    fn sdk_id(slug: &str) -> Option<u32> {
        SDK_CATEGORIES
            .iter()
            .find(|(s, _)| *s == slug)
            .map(|(_, id)| *id)
    }

    #[test]
    fn default_categories_match_the_sdk() {
        for (slug, id) in default_categories() {
            assert_eq!(sdk_id(&slug), Some(id), "{slug}");
        }
    }

    #[test]
    fn category_ids_in_the_example_config_match_the_sdk() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/buyers.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut seen = 0;
        for line in text.lines().filter(|l| l.contains("categories")) {
            let Some(inner) = line.split_once('{').and_then(|(_, r)| r.split_once('}')) else {
                continue;
            };
            for pair in inner.0.split(',') {
                let (slug, id) = pair.split_once('=').unwrap();
                let (slug, id) = (slug.trim().trim_matches('"'), id.trim());
                assert_eq!(sdk_id(slug), id.parse().ok(), "{path}: {line}");
                seen += 1;
            }
        }
        assert!(seen > 0, "{path} names no category id");
    }
}

//! Lookup v2: line type intelligence for a phone number.

use super::{Client, Request, RestError};
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// `line_type_intelligence` of a lookup.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LineTypeIntelligence {
    /// `mobile`, `landline`, `fixedVoip`, `nonFixedVoip`, `tollFree`, ….
    #[serde(rename = "type")]
    pub line_type: Option<String>,
    /// Carrier.
    pub carrier_name: Option<String>,
    /// MCC.
    pub mobile_country_code: Option<String>,
    /// MNC.
    pub mobile_network_code: Option<String>,
    /// Error code when the data is unavailable.
    pub error_code: Option<i64>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A Lookup v2 result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PhoneNumberLookup {
    /// E.164 number.
    pub phone_number: Option<String>,
    /// National format.
    pub national_format: Option<String>,
    /// ISO country.
    pub country_code: Option<String>,
    /// Calling code, e.g. `1`.
    pub calling_country_code: Option<String>,
    /// Whether the number is valid.
    pub valid: Option<bool>,
    /// Why it is not.
    pub validation_errors: Option<Vec<String>>,
    /// Line type data, when requested and available.
    pub line_type_intelligence: Option<LineTypeIntelligence>,
    /// Resource URL.
    pub url: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `client.lookups()`.
#[derive(Debug, Clone, Copy)]
pub struct Lookups<'a> {
    client: &'a Client,
}

impl<'a> Lookups<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Lookups { client }
    }

    /// `GET /v2/PhoneNumbers/{number}?Fields=line_type_intelligence`.
    pub async fn line_type(&self, phone_number: &str) -> Result<PhoneNumberLookup, RestError> {
        let ok = !phone_number.is_empty()
            && phone_number
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+'));
        if !ok {
            return Err(RestError::InvalidArgument {
                field: "PhoneNumber",
                value: phone_number.to_owned(),
                reason: "expected E.164 (`+` and digits) or national digits".into(),
            });
        }
        let mut url = self
            .client
            .lookups_url(&["v2", "PhoneNumbers", phone_number]);
        url.query_pairs_mut()
            .append_pair("Fields", "line_type_intelligence");
        let req = Request {
            operation: "lookups.line_type",
            method: Method::GET,
            url,
            form: None,
        };
        self.client.json(&req).await
    }
}

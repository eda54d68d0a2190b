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

/// Checks an E.164 number: `+`, then 7 to 15 digits, the first not 0.
pub(crate) fn check_e164(field: &'static str, value: &str) -> Result<(), RestError> {
    let digits = value.strip_prefix('+').unwrap_or("");
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(RestError::InvalidArgument {
            field,
            value: value.to_owned(),
            reason: "expected E.164: `+`, then 7 to 15 digits, the first not 0".into(),
        })
    }
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
    ///
    /// `phone_number` must be E.164 (`+`, a country code not starting with 0,
    /// 7 to 15 digits in all); anything else is refused before sending.
    pub async fn line_type(&self, phone_number: &str) -> Result<PhoneNumberLookup, RestError> {
        check_e164("PhoneNumber", phone_number)?;
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

#[cfg(test)]
mod tests {
    use super::check_e164;

    #[test]
    fn e164_is_required() {
        for ok in [
            "+15108675310",
            "+6834002",
            "+447911123456",
            "+123456789012345",
        ] {
            assert!(check_e164("PhoneNumber", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "+",
            "++1",
            "15108675310",
            "+0108675310",
            "+1 510 867 5310",
            "+1-510-867-5310",
            "+123456",
            "+1234567890123456",
            "+1510867531a",
            "+１５１０８６７５３１０",
            "+1510/../x",
        ] {
            let e = check_e164("PhoneNumber", bad).unwrap_err().to_string();
            assert!(
                e.contains("PhoneNumber") && e.contains(&format!("`{bad}`")),
                "{e}"
            );
        }
    }
}

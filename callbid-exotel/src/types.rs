//! Request and response types, as Exotel spells them on the wire.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use callbid_core::PhoneNumber;

use crate::error::ExotelError;

/// Exotel's maximum `TimeLimit`: 14,400 s (4 hours).
pub const MAX_TIME_LIMIT: u32 = 14_400;

/// `Calls/connect` to a call flow: Exotel dials `From` (the customer), then runs `Url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectToFlow {
    /// `From`: the customer, called first.
    pub from: PhoneNumber,
    /// `CallerId`: your ExoPhone.
    pub caller_id: PhoneNumber,
    /// `Url`: `http://my.exotel.com/{sid}/exoml/start_voice/{app_id}`.
    pub url: String,
    /// `CallType` (`trans`).
    pub call_type: Option<String>,
    /// `TimeLimit`, seconds (≤ 14,400).
    pub time_limit: Option<u32>,
    /// `TimeOut`: ring timeout, seconds.
    pub time_out: Option<u32>,
    /// `StatusCallback` URL.
    pub status_callback: Option<String>,
    /// `StatusCallbackEvents[0]`… (`terminal`, `answered`).
    pub status_callback_events: Vec<String>,
    /// `CustomField` (≤ 128 characters), echoed to the flow and callbacks.
    pub custom_field: Option<String>,
}

impl ConnectToFlow {
    /// A request with the three mandatory fields.
    pub fn new(from: PhoneNumber, caller_id: PhoneNumber, url: impl Into<String>) -> Self {
        ConnectToFlow {
            from,
            caller_id,
            url: url.into(),
            call_type: Some("trans".into()),
            time_limit: None,
            time_out: None,
            status_callback: None,
            status_callback_events: Vec::new(),
            custom_field: None,
        }
    }

    /// Sets `StatusCallback` and subscribes to the `terminal` event.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        if self.status_callback_events.is_empty() {
            self.status_callback_events.push("terminal".into());
        }
        self
    }

    /// Sets `TimeLimit`; errors above 14,400 s or at 0.
    pub fn time_limit(mut self, secs: u32) -> Result<Self, ExotelError> {
        if secs == 0 || secs > MAX_TIME_LIMIT {
            return Err(ExotelError::invalid(
                "TimeLimit",
                secs.to_string(),
                "must be 1..=14400 seconds",
            ));
        }
        self.time_limit = Some(secs);
        Ok(self)
    }

    /// Sets `TimeOut` (ring timeout).
    pub fn time_out(mut self, secs: u32) -> Self {
        self.time_out = Some(secs);
        self
    }

    /// Sets `CustomField`; errors above 128 characters.
    pub fn custom_field(mut self, value: impl Into<String>) -> Result<Self, ExotelError> {
        let value = value.into();
        if value.chars().count() > 128 {
            return Err(ExotelError::invalid(
                "CustomField",
                value,
                "at most 128 characters",
            ));
        }
        self.custom_field = Some(value);
        Ok(self)
    }

    /// The form fields, in a stable order.
    pub fn form(&self) -> Vec<(String, String)> {
        let mut f = vec![
            ("From".to_string(), self.from.to_string()),
            ("CallerId".to_string(), self.caller_id.to_string()),
            ("Url".to_string(), self.url.clone()),
        ];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                f.push((k.to_string(), v));
            }
        };
        opt("CallType", self.call_type.clone());
        opt("TimeLimit", self.time_limit.map(|v| v.to_string()));
        opt("TimeOut", self.time_out.map(|v| v.to_string()));
        opt("StatusCallback", self.status_callback.clone());
        opt("CustomField", self.custom_field.clone());
        for (i, e) in self.status_callback_events.iter().enumerate() {
            f.push((format!("StatusCallbackEvents[{i}]"), e.clone()));
        }
        f
    }
}

/// Accepts a JSON string, number or null as an optional string.
fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s.is_empty() => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// A `Call` object (Calls/connect answer, call details).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ExotelCall {
    /// `Sid`: the CallSid.
    pub sid: String,
    /// `Status`: `queued`, `in-progress`, `completed`, `failed`, `busy`, `no-answer`.
    #[serde(default, deserialize_with = "loose_string")]
    pub status: Option<String>,
    /// `To`.
    #[serde(default, deserialize_with = "loose_string")]
    pub to: Option<String>,
    /// `From`.
    #[serde(default, deserialize_with = "loose_string")]
    pub from: Option<String>,
    /// `DateCreated` (`YYYY-MM-DD HH:mm:ss`, account zone).
    #[serde(default, deserialize_with = "loose_string")]
    pub date_created: Option<String>,
    /// `StartTime`.
    #[serde(default, deserialize_with = "loose_string")]
    pub start_time: Option<String>,
    /// `EndTime`.
    #[serde(default, deserialize_with = "loose_string")]
    pub end_time: Option<String>,
    /// `Duration`, seconds (a string; null until known).
    #[serde(default, deserialize_with = "loose_string")]
    pub duration: Option<String>,
    /// `Price` (a decimal string, account currency; null until known).
    #[serde(default, deserialize_with = "loose_string")]
    pub price: Option<String>,
    /// `AnsweredBy` (`human`, …; may be null).
    #[serde(default, deserialize_with = "loose_string")]
    pub answered_by: Option<String>,
    /// `Direction` (`outbound-api`).
    #[serde(default, deserialize_with = "loose_string")]
    pub direction: Option<String>,
    /// `RecordingUrl`.
    #[serde(default, deserialize_with = "loose_string")]
    pub recording_url: Option<String>,
    /// `Details` (with `?details=true`).
    #[serde(default)]
    pub details: Option<CallDetails>,
}

impl ExotelCall {
    /// `Duration` as seconds.
    pub fn duration_secs(&self) -> Option<u32> {
        self.duration.as_deref().and_then(|d| d.trim().parse().ok())
    }

    /// `Price` as a decimal (never through a float).
    pub fn price_decimal(&self) -> Option<Decimal> {
        self.price.as_deref().and_then(|p| p.trim().parse().ok())
    }
}

/// `Details` of a call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CallDetails {
    /// `ConversationDuration`: seconds both legs talked.
    #[serde(default)]
    pub conversation_duration: Option<u32>,
    /// `Leg1Status`.
    #[serde(default, deserialize_with = "loose_string")]
    pub leg1_status: Option<String>,
    /// `Leg2Status`.
    #[serde(default, deserialize_with = "loose_string")]
    pub leg2_status: Option<String>,
    /// `Legs`: `[{"Leg": {"Id": "1", "OnCallDuration": 21}}, …]`.
    #[serde(default)]
    pub legs: Vec<LegWrapper>,
}

/// `{"Leg": {…}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct LegWrapper {
    /// The leg.
    #[serde(rename = "Leg")]
    pub leg: Leg,
}

/// One leg of a call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Leg {
    /// `Id` (`"1"`, `"2"`; a string or a number).
    #[serde(deserialize_with = "loose_string")]
    pub id: Option<String>,
    /// `OnCallDuration`, seconds.
    #[serde(default)]
    pub on_call_duration: Option<u32>,
}

/// `Numbers` metadata of a phone number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NumberMetadata {
    /// `PhoneNumber`.
    #[serde(default, deserialize_with = "loose_string")]
    pub phone_number: Option<String>,
    /// `Circle` (e.g. `GJ`).
    #[serde(default, deserialize_with = "loose_string")]
    pub circle: Option<String>,
    /// `CircleName`.
    #[serde(default, deserialize_with = "loose_string")]
    pub circle_name: Option<String>,
    /// `Type` (`Mobile`, `Landline`).
    #[serde(default, deserialize_with = "loose_string", rename = "Type")]
    pub number_type: Option<String>,
    /// `Operator`.
    #[serde(default, deserialize_with = "loose_string")]
    pub operator: Option<String>,
    /// `OperatorName`.
    #[serde(default, deserialize_with = "loose_string")]
    pub operator_name: Option<String>,
    /// `DND` (`Yes` / `No`): on India's do-not-disturb registry.
    #[serde(default, deserialize_with = "loose_string", rename = "DND")]
    pub dnd: Option<String>,
}

impl NumberMetadata {
    /// Whether the number is on the DND registry.
    pub fn is_dnd(&self) -> bool {
        self.dnd
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case("yes"))
    }
}

#[derive(Deserialize)]
pub(crate) struct CallEnvelope {
    #[serde(rename = "Call")]
    pub call: ExotelCall,
}

#[derive(Deserialize)]
pub(crate) struct NumbersEnvelope {
    #[serde(rename = "Numbers")]
    pub numbers: NumberMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call-details answer from the seed (with its missing comma mended).
    const SEED_DETAILS: &str = r#"{"Call": {"Sid": "b6cfaf5f5cef3ca0fc937749ef96d245",
        "ParentCallSid": "", "DateCreated": "2016-11-29 15:58:45", "DateUpdated": "2016-11-29 16:00:09",
        "AccountSid": "Exotel", "To": "0XXXXX30240", "From": "0XXXXX85175", "PhoneNumberSid": "0XXXXXX4890",
        "Status": "completed", "StartTime": "2016-11-29 15:59:10", "EndTime": "2016-11-29 15:59:27",
        "Duration": "17", "Price": "1.500", "Direction": "outbound-api", "AnsweredBy": "human",
        "ForwardedFrom": "", "CallerName": "", "Uri": "/v1/Accounts/Exotel/Calls/b6cf",
        "RecordingUrl": "https://example.com/rec.mp3",
        "Details": {"ConversationDuration": 8, "Leg1Status": "completed", "Leg2Status": "completed",
          "Legs": [{"Leg": {"Id": "1", "OnCallDuration": 21}}, {"Leg": {"Id": "2", "OnCallDuration": 8}}]}}}"#;

    #[test]
    fn parses_the_seeds_call_details() {
        let c: CallEnvelope = serde_json::from_str(SEED_DETAILS).unwrap();
        let c = c.call;
        assert_eq!(c.duration_secs(), Some(17));
        assert_eq!(c.price_decimal(), Some(Decimal::new(1500, 3)));
        let d = c.details.unwrap();
        assert_eq!(d.conversation_duration, Some(8));
        assert_eq!(d.legs[0].leg.on_call_duration, Some(21));
        assert_eq!(d.legs[1].leg.id.as_deref(), Some("2"));
    }

    #[test]
    fn parses_an_in_progress_call_with_nulls() {
        let body = r#"{"Call": {"Sid": "80bf", "ParentCallSid": null, "Status": "in-progress",
            "Duration": null, "Price": null, "AnsweredBy": null, "EndTime": null}}"#;
        let c: CallEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(c.call.duration_secs(), None);
        assert_eq!(c.call.price_decimal(), None);
        assert_eq!(c.call.status.as_deref(), Some("in-progress"));
    }

    #[test]
    fn parses_number_metadata() {
        let body = r#"{"Numbers": {"PhoneNumber": "0XXXXX30240", "Circle": "GJ",
            "CircleName": "Gujarat Telecom Circle", "Type": "Mobile", "Operator": "R",
            "OperatorName": "Reliance", "DND": "Yes"}}"#;
        let n: NumbersEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(n.numbers.circle.as_deref(), Some("GJ"));
        assert!(n.numbers.is_dnd());
    }

    #[test]
    fn limits_are_checked() {
        let r = ConnectToFlow::new(
            PhoneNumber::parse("+919812345678").unwrap(),
            PhoneNumber::parse("+918039591234").unwrap(),
            "http://my.exotel.com/x/exoml/start_voice/1",
        );
        assert!(matches!(
            r.clone().time_limit(14_401),
            Err(ExotelError::Invalid {
                field: "TimeLimit",
                ..
            })
        ));
        assert!(r.clone().time_limit(14_400).is_ok());
        assert!(r.custom_field("x".repeat(129)).is_err());
    }
}

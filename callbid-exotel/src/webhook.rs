//! Exotel's status callback: a form posted once the call completes (and on `answered` when
//! subscribed with `StatusCallbackEvents`). Answer 200 within 15 s; Exotel retries at most
//! twice, so a lost callback is reconciled with the call details.

use crate::error::ExotelError;

/// The fields callbid uses; unknown fields are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StatusCallback {
    /// `CallSid`.
    pub call_sid: String,
    /// `Status`: `completed`, `failed`, `busy`, `no-answer`.
    pub status: String,
    /// `EventType`: `terminal` or `answered` (when subscribed).
    pub event_type: Option<String>,
    /// `DateUpdated` (`YYYY-MM-DD HH:mm:ss`).
    pub date_updated: Option<String>,
    /// `RecordingUrl`.
    pub recording_url: Option<String>,
    /// `ConversationDuration`, seconds (terminal events).
    pub conversation_duration: Option<u32>,
    /// `CustomField`, echoed from the request.
    pub custom_field: Option<String>,
    /// Every other field.
    pub extra: Vec<(String, String)>,
}

impl StatusCallback {
    /// Parses the form fields. Errors name the missing field (`CallSid`, `Status`).
    pub fn from_fields(fields: &[(String, String)]) -> Result<Self, ExotelError> {
        let mut cb = StatusCallback::default();
        for (k, v) in fields {
            let v = v.trim();
            let opt = || (!v.is_empty()).then(|| v.to_string());
            match k.as_str() {
                "CallSid" => cb.call_sid = v.to_string(),
                "Status" => cb.status = v.to_string(),
                "EventType" => cb.event_type = opt(),
                "DateUpdated" => cb.date_updated = opt(),
                "RecordingUrl" => cb.recording_url = opt(),
                "ConversationDuration" => cb.conversation_duration = v.parse().ok(),
                "CustomField" => cb.custom_field = opt(),
                _ => cb.extra.push((k.clone(), v.to_string())),
            }
        }
        if cb.call_sid.is_empty() {
            return Err(ExotelError::invalid(
                "CallSid",
                "",
                "missing from the status callback",
            ));
        }
        if cb.status.is_empty() {
            return Err(ExotelError::invalid(
                "Status",
                "",
                "missing from the status callback",
            ));
        }
        Ok(cb)
    }

    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn from_form(body: &[u8]) -> Result<Self, ExotelError> {
        let fields: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        Self::from_fields(&fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_terminal_callback() {
        let cb = StatusCallback::from_form(
            b"CallSid=b6cf&Status=completed&EventType=terminal&DateUpdated=2016-11-29+16%3A00%3A09&CustomField=c1%3A%2B91981&Foo=bar",
        )
        .unwrap();
        assert_eq!(cb.status, "completed");
        assert_eq!(cb.date_updated.as_deref(), Some("2016-11-29 16:00:09"));
        assert_eq!(cb.custom_field.as_deref(), Some("c1:+91981"));
        assert_eq!(cb.extra, vec![("Foo".to_string(), "bar".to_string())]);
    }

    #[test]
    fn missing_fields_are_named() {
        let e = StatusCallback::from_form(b"Status=busy").unwrap_err();
        assert!(e.to_string().contains("CallSid"), "{e}");
        let e = StatusCallback::from_form(b"CallSid=x").unwrap_err();
        assert!(e.to_string().contains("Status"), "{e}");
    }
}

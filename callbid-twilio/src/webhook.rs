//! Typed voice webhook requests as Twilio posts them
//! (`application/x-www-form-urlencoded`, PascalCase names).
//!
//! Every type keeps the parameters it does not name in `extra`, so nothing
//! Twilio sends is lost. Parse a body with [`parse_form`]; get the raw pairs for
//! signature checking with [`form_pairs`].

use crate::twiml::UnknownValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Longest value kept in an `Other` variant.
pub const MAX_OTHER_VALUE_LEN: usize = 64;

/// Whether `s` may be kept as a value this version does not know: 1 to
/// [`MAX_OTHER_VALUE_LEN`] ASCII letters, digits, `-`, `_` or `.`, as Twilio's
/// own values are.
fn plausible_wire_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_OTHER_VALUE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Defines an open enum of Twilio wire strings: the known values as variants, and
/// `Other(String)` for a value Twilio adds later, so a new value does not make a
/// whole webhook fail to parse. Parsing maps known values to their variant, so
/// `Other` never holds one; equality and hashing go by the wire string.
macro_rules! open_wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $variant:ident = $wire:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        ///
        /// Values this version does not know parse into `Other`, kept as sent
        /// (1 to 64 ASCII letters, digits, `-`, `_` or `.`; anything else is refused).
        /// Match with a wildcard arm: new known variants may be added.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum $name {
            $( #[doc = concat!("`", $wire, "`")] $variant, )+
            /// A value this version does not know, exactly as Twilio sent it.
            Other(String),
        }

        impl $name {
            /// Every known value, in declaration order (`Other` excluded).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value exactly as Twilio spells it on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s,
                }
            }

            /// Whether this is one of the known values (not `Other`).
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_str().hash(state);
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    _ if plausible_wire_value(s) => Ok($name::Other(s.to_owned())),
                    _ => Err(UnknownValue {
                        kind: stringify!($name),
                        value: s.to_owned(),
                        expected: concat!(
                            $($wire, " "),+,
                            "(or a new value of 1 to 64 ASCII letters, digits, `-`, `_` or `.`)"
                        ),
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl crate::twiml::AttrValue for $name {
            fn render(&self) -> String {
                self.as_str().to_owned()
            }
        }
    };
}

open_wire_enum! {
    /// A call's status, as in `CallStatus` (note the hyphens).
    pub enum CallStatus {
        Queued = "queued", Initiated = "initiated", Ringing = "ringing", InProgress = "in-progress",
        Completed = "completed", Busy = "busy", Failed = "failed", NoAnswer = "no-answer",
        Canceled = "canceled",
    }
}

open_wire_enum! {
    /// The outcome of a `<Dial>` (`DialCallStatus` posted to its action).
    pub enum DialCallStatus {
        Completed = "completed", Answered = "answered", Busy = "busy", NoAnswer = "no-answer",
        Failed = "failed", Canceled = "canceled",
    }
}

open_wire_enum! {
    /// `Direction` of a call.
    pub enum Direction {
        Inbound = "inbound", OutboundApi = "outbound-api", OutboundDial = "outbound-dial",
        TrunkingOriginating = "trunking-originating", TrunkingTerminating = "trunking-terminating",
    }
}

open_wire_enum! {
    /// `RecordingStatus` in a recording status callback.
    pub enum RecordingStatus {
        InProgress = "in-progress", Completed = "completed", Absent = "absent", Failed = "failed",
    }
}

/// Why a webhook body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The form did not match the expected request type.
    #[error("invalid {kind} webhook form: {message}")]
    InvalidForm {
        /// The request type being parsed, e.g. `GatherRequest`.
        kind: &'static str,
        /// What was wrong (names the field and value where known).
        message: String,
    },
}

/// Parses a form body into one of the request types here (or your own serde type).
///
/// ```
/// use callbid_twilio::webhook::{parse_form, GatherRequest, CallStatus};
/// let g: GatherRequest = parse_form(b"CallSid=CA1&AccountSid=AC1&CallStatus=in-progress&Digits=78701&Foo=bar").unwrap();
/// assert_eq!(g.digits.as_deref(), Some("78701"));
/// assert_eq!(g.call.call_status, Some(CallStatus::InProgress));
/// assert_eq!(g.extra["Foo"], "bar");
/// ```
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebhookError> {
    serde_urlencoded::from_bytes(body).map_err(|e| WebhookError::InvalidForm {
        kind: short_type_name::<T>(),
        message: e.to_string(),
    })
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// The decoded `(name, value)` pairs of a form body, duplicates kept in order,
/// as the signature check needs them.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Deserializes an optional number that arrives as a form string; errors name
/// the parameter and the value.
fn opt_num<'de, D, T>(d: D, name: &'static str) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{name}: invalid number `{v}`: {e}"))),
    }
}

/// One deserializer per numeric parameter, so errors can name it.
mod num {
    use super::*;

    pub(super) fn confidence<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        opt_num(d, "Confidence")
    }

    pub(super) fn dial_call_duration<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u64>, D::Error> {
        opt_num(d, "DialCallDuration")
    }

    pub(super) fn recording_duration<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u64>, D::Error> {
        opt_num(d, "RecordingDuration")
    }

    pub(super) fn call_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        opt_num(d, "CallDuration")
    }

    pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        opt_num(d, "Duration")
    }

    pub(super) fn sequence_number<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u64>, D::Error> {
        opt_num(d, "SequenceNumber")
    }

    pub(super) fn sip_response_code<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u16>, D::Error> {
        opt_num(d, "SipResponseCode")
    }

    pub(super) fn recording_channels<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u8>, D::Error> {
        opt_num(d, "RecordingChannels")
    }
}

/// Parameters Twilio sends with every voice request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CallFields {
    /// `CallSid`.
    pub call_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `From` (caller).
    pub from: Option<String>,
    /// `To` (dialled number).
    pub to: Option<String>,
    /// `CallStatus`.
    pub call_status: Option<CallStatus>,
    /// `ApiVersion`.
    pub api_version: Option<String>,
    /// `Direction`.
    pub direction: Option<Direction>,
    /// `ForwardedFrom`.
    pub forwarded_from: Option<String>,
    /// `CallerName` (CNAM, when enabled).
    pub caller_name: Option<String>,
    /// `ParentCallSid` (for child legs).
    pub parent_call_sid: Option<String>,
    /// `CallToken`.
    pub call_token: Option<String>,
}

/// The initial voice webhook (a call arrives).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VoiceRequest {
    /// Common call parameters.
    #[serde(flatten)]
    pub call: CallFields,
    /// Every other parameter (FromCity, ToZip, StirVerstat, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

/// What `<Gather>` posts to its action.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct GatherRequest {
    /// `Digits` pressed (DTMF input).
    pub digits: Option<String>,
    /// `FinishedOnKey`: the key that ended input, if any.
    pub finished_on_key: Option<String>,
    /// `SpeechResult` (speech input).
    pub speech_result: Option<String>,
    /// `Confidence` of the speech result, 0.0–1.0.
    #[serde(default, deserialize_with = "num::confidence")]
    pub confidence: Option<f64>,
    /// Common call parameters.
    #[serde(flatten)]
    pub call: CallFields,
    /// Every other parameter.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

/// What `<Dial action>` receives when the dialled leg ends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct DialActionRequest {
    /// `DialCallStatus`.
    pub dial_call_status: Option<DialCallStatus>,
    /// `DialCallSid` of the dialled leg.
    pub dial_call_sid: Option<String>,
    /// `DialCallDuration` in seconds.
    #[serde(default, deserialize_with = "num::dial_call_duration")]
    pub dial_call_duration: Option<u64>,
    /// `RecordingUrl`, when the Dial was recorded.
    pub recording_url: Option<String>,
    /// Common call parameters.
    #[serde(flatten)]
    pub call: CallFields,
    /// Every other parameter.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

/// What `<Record action>` receives.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RecordActionRequest {
    /// `RecordingUrl` (append `.mp3` or `.wav` to download).
    pub recording_url: Option<String>,
    /// `RecordingSid`.
    pub recording_sid: Option<String>,
    /// `RecordingDuration` in seconds.
    #[serde(default, deserialize_with = "num::recording_duration")]
    pub recording_duration: Option<u64>,
    /// `Digits`: the key that ended the recording, or `hangup`.
    pub digits: Option<String>,
    /// Common call parameters.
    #[serde(flatten)]
    pub call: CallFields,
    /// Every other parameter.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

/// A call status callback (`statusCallback`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct StatusCallbackRequest {
    /// `CallDuration` in seconds (on `completed`).
    #[serde(default, deserialize_with = "num::call_duration")]
    pub call_duration: Option<u64>,
    /// `Duration` in minutes (rounded up, legacy).
    #[serde(default, deserialize_with = "num::duration")]
    pub duration: Option<u64>,
    /// `Timestamp` (RFC 2822).
    pub timestamp: Option<String>,
    /// `CallbackSource`, e.g. `call-progress-events`.
    pub callback_source: Option<String>,
    /// `SequenceNumber` of this event.
    #[serde(default, deserialize_with = "num::sequence_number")]
    pub sequence_number: Option<u64>,
    /// `SipResponseCode`.
    #[serde(default, deserialize_with = "num::sip_response_code")]
    pub sip_response_code: Option<u16>,
    /// Common call parameters.
    #[serde(flatten)]
    pub call: CallFields,
    /// Every other parameter.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

/// A recording status callback (`recordingStatusCallback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RecordingStatusRequest {
    /// `AccountSid`.
    pub account_sid: String,
    /// `CallSid`.
    pub call_sid: Option<String>,
    /// `RecordingSid`.
    pub recording_sid: String,
    /// `RecordingUrl`.
    pub recording_url: Option<String>,
    /// `RecordingStatus`.
    pub recording_status: RecordingStatus,
    /// `RecordingDuration` in seconds.
    #[serde(default, deserialize_with = "num::recording_duration")]
    pub recording_duration: Option<u64>,
    /// `RecordingChannels`.
    #[serde(default, deserialize_with = "num::recording_channels")]
    pub recording_channels: Option<u8>,
    /// `RecordingSource`, e.g. `DialVerb`, `RecordVerb`.
    pub recording_source: Option<String>,
    /// `RecordingStartTime`.
    pub recording_start_time: Option<String>,
    /// `ErrorCode` when the recording failed.
    pub error_code: Option<String>,
    /// Every other parameter.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: &[u8] = b"AccountSid=AC0123&ApiVersion=2010-04-01&CallSid=CA42&CallStatus=ringing&Called=%2B18005551212&Caller=%2B14158675309&Direction=inbound&From=%2B14158675309&FromCity=AUSTIN&To=%2B18005551212";

    #[test]
    fn initial_call_keeps_unknown_fields() {
        let r: VoiceRequest = parse_form(INITIAL).unwrap();
        assert_eq!(r.call.call_sid, "CA42");
        assert_eq!(r.call.from.as_deref(), Some("+14158675309"));
        assert_eq!(r.call.call_status, Some(CallStatus::Ringing));
        assert_eq!(r.call.direction, Some(Direction::Inbound));
        assert_eq!(r.extra.get("FromCity").map(String::as_str), Some("AUSTIN"));
        assert_eq!(
            r.extra.get("Caller").map(String::as_str),
            Some("+14158675309")
        );
        assert!(!r.extra.contains_key("CallSid"));
    }

    #[test]
    fn every_call_status_including_hyphenated() {
        for s in CallStatus::ALL {
            let body = format!("CallSid=CA1&AccountSid=AC1&CallStatus={s}&CallDuration=17");
            let r: StatusCallbackRequest = parse_form(body.as_bytes()).unwrap();
            assert_eq!(r.call.call_status.as_ref(), Some(s));
            assert!(matches!(r.call.call_status, Some(ref v) if v.is_known()));
            assert_eq!(r.call_duration, Some(17));
        }
        assert_eq!("no-answer".parse::<CallStatus>(), Ok(CallStatus::NoAnswer));
        assert_eq!(
            "in-progress".parse::<CallStatus>(),
            Ok(CallStatus::InProgress)
        );
    }

    #[test]
    fn dial_action_and_record_action() {
        let d: DialActionRequest = parse_form(
            b"CallSid=CA1&AccountSid=AC1&DialCallStatus=no-answer&DialCallSid=CA2&DialCallDuration=0",
        )
        .unwrap();
        assert_eq!(d.dial_call_status, Some(DialCallStatus::NoAnswer));
        assert_eq!(d.dial_call_duration, Some(0));
        let r: RecordActionRequest = parse_form(
            b"CallSid=CA1&AccountSid=AC1&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Fr%2FRE1&RecordingDuration=12&Digits=hangup",
        )
        .unwrap();
        assert_eq!(
            r.recording_url.as_deref(),
            Some("https://api.twilio.com/r/RE1")
        );
        assert_eq!(r.recording_duration, Some(12));
        let g: GatherRequest =
            parse_form(b"CallSid=CA1&AccountSid=AC1&SpeechResult=plumbing+please&Confidence=0.93")
                .unwrap();
        assert_eq!(g.speech_result.as_deref(), Some("plumbing please"));
        assert_eq!(g.confidence, Some(0.93));
        let rs: RecordingStatusRequest = parse_form(
            b"AccountSid=AC1&CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed&RecordingDuration=3&RecordingChannels=2&RecordingSource=DialVerb",
        )
        .unwrap();
        assert_eq!(rs.recording_status, RecordingStatus::Completed);
        assert_eq!(rs.recording_channels, Some(2));
    }

    #[test]
    fn bad_input_names_type_field_and_value() {
        for bad in ["ringing ish", "ringing%2Fish", "", "%E2%9C%93"] {
            let body = format!("CallSid=CA1&AccountSid=AC1&CallStatus={bad}");
            let e = parse_form::<StatusCallbackRequest>(body.as_bytes())
                .unwrap_err()
                .to_string();
            let shown: String = form_urlencoded::parse(format!("v={bad}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect();
            assert!(
                e.contains("StatusCallbackRequest")
                    && e.contains("CallStatus")
                    && e.contains(&format!("`{shown}`")),
                "{e}"
            );
        }
        let long = "a".repeat(MAX_OTHER_VALUE_LEN + 1);
        let e = parse_form::<StatusCallbackRequest>(
            format!("CallSid=CA1&AccountSid=AC1&CallStatus={long}").as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(&long), "{e}");
        let e = parse_form::<StatusCallbackRequest>(b"CallSid=CA1&AccountSid=AC1&CallDuration=abc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("CallDuration") && e.contains("`abc`"), "{e}");
        let e = parse_form::<VoiceRequest>(b"AccountSid=AC1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("CallSid"), "{e}");
    }

    #[test]
    fn typed_requests_round_trip_through_a_form() {
        let g: GatherRequest = parse_form(
            b"CallSid=CA1&AccountSid=AC1&CallStatus=in-progress&Direction=outbound-dial&Digits=7&FinishedOnKey=%23&Confidence=0.5&X=y",
        )
        .unwrap();
        let body = serde_urlencoded::to_string(&g).unwrap();
        let back: GatherRequest = parse_form(body.as_bytes()).unwrap();
        assert_eq!(back, g);
        let s: StatusCallbackRequest = parse_form(
            b"CallSid=CA1&AccountSid=AC1&CallStatus=no-answer&CallDuration=0&SipResponseCode=486",
        )
        .unwrap();
        let back: StatusCallbackRequest =
            parse_form(serde_urlencoded::to_string(&s).unwrap().as_bytes()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.sip_response_code, Some(486));
    }

    #[test]
    fn values_twilio_adds_later_are_kept_not_refused() {
        let r: StatusCallbackRequest = parse_form(
            b"CallSid=CA1&AccountSid=AC1&CallStatus=on-hold&Direction=outbound-trunk&CallDuration=3",
        )
        .unwrap();
        assert_eq!(
            r.call.call_status,
            Some(CallStatus::Other("on-hold".into()))
        );
        assert_eq!(
            r.call.direction,
            Some(Direction::Other("outbound-trunk".into()))
        );
        assert_eq!(r.call_duration, Some(3));
        let d: DialActionRequest =
            parse_form(b"CallSid=CA1&AccountSid=AC1&DialCallStatus=machine_answered").unwrap();
        let status = d.dial_call_status.clone().unwrap();
        assert!(!status.is_known());
        assert_eq!(status.as_str(), "machine_answered");
        let rs: RecordingStatusRequest =
            parse_form(b"AccountSid=AC1&RecordingSid=RE1&RecordingStatus=processing.v2").unwrap();
        assert_eq!(rs.recording_status.to_string(), "processing.v2");
        // Unknown values go back on the wire unchanged.
        let back: StatusCallbackRequest =
            parse_form(serde_urlencoded::to_string(&r).unwrap().as_bytes()).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            "MixedCase-1".parse::<CallStatus>().map(|s| s.to_string()),
            Ok("MixedCase-1".to_owned())
        );
    }

    #[test]
    fn known_values_round_trip_and_never_land_in_other() {
        fn check<T>(all: &[T])
        where
            T: FromStr<Err = UnknownValue> + fmt::Display + PartialEq + fmt::Debug + Clone,
        {
            for v in all {
                let parsed: T = v.to_string().parse().unwrap();
                assert_eq!(&parsed, v);
                assert_eq!(parsed.to_string(), v.to_string());
            }
        }
        check(CallStatus::ALL);
        check(DialCallStatus::ALL);
        check(Direction::ALL);
        check(RecordingStatus::ALL);
        for s in CallStatus::ALL {
            assert!(s.to_string().parse::<CallStatus>().unwrap().is_known());
        }
        // A hand-made Other holding a known value still equals (and hashes like) it.
        let mut set = std::collections::HashSet::new();
        set.insert(CallStatus::Completed);
        assert!(set.contains(&CallStatus::Other("completed".into())));
        assert_eq!(CallStatus::Other("completed".into()), CallStatus::Completed);
        assert_ne!(CallStatus::Other("complete".into()), CallStatus::Completed);
    }

    #[test]
    fn form_pairs_keep_duplicates() {
        let p = form_pairs(b"Digits=1&Digits=2&A=%2B1+2");
        assert_eq!(
            p,
            [
                ("Digits".into(), "1".into()),
                ("Digits".into(), "2".into()),
                ("A".into(), "+1 2".into())
            ]
        );
    }
}

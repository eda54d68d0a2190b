//! Typed voice webhook requests as Twilio posts them
//! (`application/x-www-form-urlencoded`, PascalCase names).
//!
//! Every type keeps the parameters it does not name in `extra`, so nothing
//! Twilio sends is lost. Parse a body with [`parse_form`]; get the raw pairs for
//! signature checking with [`form_pairs`].

use crate::twiml::UnknownValue;
use callbid_core::PhoneNumber;
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
///
/// A parameter repeated with different values is refused, naming it and both
/// values: Twilio's signature sorts parameters (and de-duplicates values), so
/// it does not cover their order, and "the last one wins" would let whoever
/// replays a signed request pick the value by reordering it.
///
/// A name or value that is not UTF-8 once percent-decoded is refused too, naming the
/// parameter and showing the bytes escaped (a lossy decoding would turn it into a
/// different value).
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebhookError> {
    let kind = short_type_name::<T>();
    refuse_undecodable(body)
        .and_then(|()| refuse_conflicting_repeats(body))
        .map_err(|message| WebhookError::InvalidForm { kind, message })?;
    serde_urlencoded::from_bytes(body).map_err(|e| WebhookError::InvalidForm {
        kind,
        message: e.to_string(),
    })
}

/// Errs when a parameter's name or value is not UTF-8 once percent-decoded.
fn refuse_undecodable(body: &[u8]) -> Result<(), String> {
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let name = percent_decode_form(name);
        let Ok(name) = std::str::from_utf8(&name) else {
            return Err(format!(
                "parameter name `{}` is not UTF-8",
                name.escape_ascii()
            ));
        };
        let value = percent_decode_form(value);
        if std::str::from_utf8(&value).is_err() {
            return Err(format!(
                "parameter `{name}`: value `{}` is not UTF-8",
                value.escape_ascii()
            ));
        }
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` decoding to bytes: `+` is a space, `%XX` a byte
/// (a `%` not followed by two hex digits stays as it is, as `form_urlencoded` does).
fn percent_decode_form(raw: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// Errs when one parameter name carries two different values.
fn refuse_conflicting_repeats(body: &[u8]) -> Result<(), String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        match seen.get(k.as_ref()) {
            Some(first) if *first != v => {
                return Err(format!(
                    "parameter `{k}` is repeated with different values `{first}` and `{v}`"
                ))
            }
            Some(_) => {}
            None => {
                seen.insert(k.into_owned(), v.into_owned());
            }
        }
    }
    Ok(())
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
    /// `From` (caller), exactly as sent: an E.164 number, a withheld-caller
    /// stand-in (`+266696687`, `Anonymous`, …), `client:…` or `sip:…`. Use
    /// [`CallFields::caller_id`] / [`CallFields::caller_number`] instead of
    /// parsing it: a stand-in parses as a phone number.
    pub from: Option<String>,
    /// `Caller`: Twilio's older name for `From`, sent beside it. Read through
    /// [`CallFields::caller_id`] like `From`.
    pub caller: Option<String>,
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

/// Why a call has no caller ID, as Twilio says it in `From` / `Caller`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WithheldReason {
    /// `Anonymous`, or its keypad digits `+266696687`.
    Anonymous,
    /// `Restricted` / `+7378742833`.
    Restricted,
    /// `Blocked` / `+2562533`.
    Blocked,
    /// `Unknown` / `+8656696`.
    Unknown,
    /// `Unavailable` / `+86282452253`.
    Unavailable,
    /// `Private` / `+7748283`.
    Private,
    /// `Withheld` / `+94844353`.
    Withheld,
    /// `From` and `Caller` absent or empty.
    Empty,
}

impl WithheldReason {
    /// Every reason that Twilio spells as a word (all but [`WithheldReason::Empty`]).
    pub const WORDS: &'static [WithheldReason] = &[
        WithheldReason::Anonymous,
        WithheldReason::Restricted,
        WithheldReason::Blocked,
        WithheldReason::Unknown,
        WithheldReason::Unavailable,
        WithheldReason::Private,
        WithheldReason::Withheld,
    ];

    /// The word, in lower case (`anonymous`, …; `empty` for [`WithheldReason::Empty`]).
    pub fn as_str(&self) -> &'static str {
        match self {
            WithheldReason::Anonymous => "anonymous",
            WithheldReason::Restricted => "restricted",
            WithheldReason::Blocked => "blocked",
            WithheldReason::Unknown => "unknown",
            WithheldReason::Unavailable => "unavailable",
            WithheldReason::Private => "private",
            WithheldReason::Withheld => "withheld",
            WithheldReason::Empty => "empty",
        }
    }

    /// The word as a phone keypad spells it (ITU-T E.161: `abc`→2 … `wxyz`→9),
    /// the digits Twilio puts after `+` in place of the word, e.g. `266696687`
    /// for `anonymous`. `None` for [`WithheldReason::Empty`].
    pub fn keypad_digits(&self) -> Option<String> {
        if *self == WithheldReason::Empty {
            return None;
        }
        Some(self.as_str().bytes().map(keypad_digit).collect())
    }
}

impl fmt::Display for WithheldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The E.161 keypad digit of a lower-case ASCII letter.
fn keypad_digit(letter: u8) -> char {
    match letter {
        b'a'..=b'c' => '2',
        b'd'..=b'f' => '3',
        b'g'..=b'i' => '4',
        b'j'..=b'l' => '5',
        b'm'..=b'o' => '6',
        b'p'..=b's' => '7',
        b't'..=b'v' => '8',
        _ => '9',
    }
}

/// Who called, read from a webhook's `From` / `Caller`: the one place that
/// tells a real number from the stand-ins Twilio sends when the caller ID is
/// withheld.
///
/// When a caller withholds their number, Twilio does not leave `From` empty:
/// it sends a word (`Anonymous`, `Restricted`, `Unavailable`, …) or, on many
/// calls, the word spelled on a phone keypad as a number: `+266696687`
/// (ANONYMOUS), `+7378742833` (RESTRICTED), `+2562533` (BLOCKED), `+8656696`
/// (UNKNOWN), `+86282452253` (UNAVAILABLE). Several of these parse as E.164,
/// so taken as data every withheld caller would be the same "number" (one
/// duplicate-caller entry for all of them, a buyer that needs caller ID
/// receiving a fake one). Twilio's changelog "Upcoming changes to withheld
/// caller ID behavior for `<Dial>` calls" (2022-11-16) documents both forms:
/// "where the inbound caller ID is withheld; e.g. ANONYMOUS, RESTRICTED, etc.
/// Today Programmable Voice translates the alpha string into digits", and
/// warns that `To`/`From` will carry the alpha string. The rule here:
///
/// - absent, empty or blank: [`CallerId::Withheld`] with [`WithheldReason::Empty`];
/// - one of the [`WithheldReason::WORDS`], any case, alone or as the user of a
///   `sip:`/`sips:` URI (`sip:anonymous@anonymous.invalid`, RFC 3261 §8.1.1.3):
///   withheld with that reason (the keypad digits below also count as a SIP user);
/// - `+` (optional) and exactly the word's [`keypad digits`](WithheldReason::keypad_digits)
///   (with the spaces, dots, dashes and parentheses `PhoneNumber::parse`
///   tolerates): withheld with that reason (none of these is a valid number of its country
///   code: each is too short for it);
/// - a valid E.164 number ([`PhoneNumber::parse`]): [`CallerId::Number`];
/// - anything else (`client:alice`, a SIP URI, garbage): [`CallerId::NotANumber`].
///
/// Only [`CallerId::Number`] is a caller ID; everything else means "no caller ID".
///
/// ```
/// use callbid_twilio::webhook::{CallerId, WithheldReason};
/// assert_eq!(CallerId::classify(Some("+266696687")).withheld(), Some(WithheldReason::Anonymous));
/// assert_eq!(CallerId::classify(Some("Restricted")).withheld(), Some(WithheldReason::Restricted));
/// assert_eq!(CallerId::classify(None).number(), None);
/// assert_eq!(CallerId::classify(Some("+15125550123")).number().unwrap().as_str(), "+15125550123");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallerId {
    /// A real caller number.
    Number(PhoneNumber),
    /// No caller ID: withheld by the caller or the network, or not sent.
    Withheld {
        /// Which stand-in Twilio used.
        reason: WithheldReason,
        /// The value exactly as sent (empty when absent).
        sent: String,
    },
    /// Not a phone number (`client:alice`, `sip:…`, malformed), as sent.
    NotANumber(String),
}

impl CallerId {
    /// Classifies one `From` or `Caller` value (see the type's rule).
    pub fn classify(value: Option<&str>) -> CallerId {
        let sent = value.unwrap_or_default();
        let v = sent.trim();
        if v.is_empty() {
            return CallerId::Withheld {
                reason: WithheldReason::Empty,
                sent: sent.to_owned(),
            };
        }
        if let Some(reason) = stand_in(v) {
            return CallerId::Withheld {
                reason,
                sent: sent.to_owned(),
            };
        }
        match PhoneNumber::parse_field("From", v) {
            Ok(n) => CallerId::Number(n),
            Err(_) => CallerId::NotANumber(sent.to_owned()),
        }
    }

    /// Classifies a call from both `From` and `Caller`: withheld if either is
    /// a withheld stand-in (a stand-in in one is never outvoted by the other);
    /// otherwise `From`'s number, else `Caller`'s; otherwise what `From` (or
    /// `Caller`) holds; withheld ([`WithheldReason::Empty`]) when both are absent
    /// or empty.
    pub fn from_fields(from: Option<&str>, caller: Option<&str>) -> CallerId {
        let all: Vec<CallerId> = [from, caller]
            .into_iter()
            .flatten()
            .filter(|v| !v.trim().is_empty())
            .map(|v| CallerId::classify(Some(v)))
            .collect();
        if let Some(w) = all.iter().find(|c| c.withheld().is_some()) {
            return w.clone();
        }
        if let Some(n) = all.iter().find(|c| c.number().is_some()) {
            return n.clone();
        }
        all.into_iter()
            .next()
            .unwrap_or_else(|| CallerId::classify(None))
    }

    /// The caller's number; `None` unless this is [`CallerId::Number`].
    pub fn number(&self) -> Option<&PhoneNumber> {
        match self {
            CallerId::Number(n) => Some(n),
            _ => None,
        }
    }

    /// Consumes `self` into the caller's number (for `CallContext::caller`).
    pub fn into_number(self) -> Option<PhoneNumber> {
        match self {
            CallerId::Number(n) => Some(n),
            _ => None,
        }
    }

    /// Why there is no caller ID, when it was withheld (or not sent).
    pub fn withheld(&self) -> Option<WithheldReason> {
        match self {
            CallerId::Withheld { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Shows what an operator should see: the number, `withheld (anonymous)`,
/// `no caller ID` (absent or empty), or `not a number: client:alice`.
impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerId::Number(n) => f.write_str(n.as_str()),
            CallerId::Withheld {
                reason: WithheldReason::Empty,
                ..
            } => f.write_str("no caller ID"),
            CallerId::Withheld { reason, .. } => write!(f, "withheld ({reason})"),
            CallerId::NotANumber(s) => write!(f, "not a number: {s}"),
        }
    }
}

/// The withheld-caller stand-in `v` (trimmed, non-empty) is, if any.
fn stand_in(v: &str) -> Option<WithheldReason> {
    let lower = v.to_ascii_lowercase();
    let word = ["sip:", "sips:"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .map_or(lower.as_str(), |rest| {
            rest.split(['@', ';']).next().unwrap_or_default()
        });
    if let Some(r) = WithheldReason::WORDS.iter().find(|r| r.as_str() == word) {
        return Some(*r);
    }
    // The same punctuation `PhoneNumber::parse` tolerates, so anything that
    // would parse to a stand-in's digits is caught here first.
    let digits: String = word
        .strip_prefix('+')
        .unwrap_or(word)
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    WithheldReason::WORDS
        .iter()
        .find(|r| r.keypad_digits().as_deref() == Some(digits.as_str()))
        .copied()
}

impl CallFields {
    /// Who called, from `From` and `Caller` ([`CallerId::from_fields`]).
    pub fn caller_id(&self) -> CallerId {
        CallerId::from_fields(self.from.as_deref(), self.caller.as_deref())
    }

    /// The caller's number for `CallContext::caller`: `None` for every
    /// withheld-caller stand-in, a missing `From`, or a non-number.
    pub fn caller_number(&self) -> Option<PhoneNumber> {
        self.caller_id().into_number()
    }

    /// Why the caller ID is withheld, when it is (`None` for a real number and
    /// for non-numbers such as `client:alice`).
    pub fn caller_withheld(&self) -> Option<WithheldReason> {
        self.caller_id().withheld()
    }
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
        assert_eq!(r.call.caller.as_deref(), Some("+14158675309"));
        assert!(!r.extra.contains_key("Caller"));
        assert_eq!(
            r.call.caller_number().map(|n| n.as_str().to_owned()),
            Some("+14158675309".to_owned())
        );
        assert_eq!(r.call.caller_withheld(), None);
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
    fn bytes_that_are_not_utf8_are_refused_naming_the_parameter() {
        for (body, field) in [
            (&b"CallSid=CA50\xff&AccountSid=AC1"[..], "CallSid"),
            (b"CallSid=CA50%FF&AccountSid=AC1", "CallSid"),
            (b"CallSid=CA1&AccountSid=AC1&From=%C3%28", "From"),
            (b"CallSid=CA1&AccountSid=AC1&Caller%FE=x", "Caller"),
        ] {
            let e = parse_form::<VoiceRequest>(body).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("not UTF-8"), "{e}");
        }
        // Encoded UTF-8 (and a stray `%`) still parse.
        let v: VoiceRequest =
            parse_form(b"CallSid=CA1&AccountSid=AC1&CallerName=Jos%C3%A9+%25&Foo=100%").unwrap();
        assert_eq!(v.extra["Foo"], "100%");
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

    /// The stand-ins Twilio documents, spelled out (not computed), so the
    /// keypad rule is checked against the documentation.
    const DOCUMENTED: [(&str, WithheldReason); 5] = [
        ("+266696687", WithheldReason::Anonymous),
        ("+7378742833", WithheldReason::Restricted),
        ("+2562533", WithheldReason::Blocked),
        ("+8656696", WithheldReason::Unknown),
        ("+86282452253", WithheldReason::Unavailable),
    ];

    #[test]
    fn documented_numeric_stand_ins_are_withheld_not_numbers() {
        for (sent, reason) in DOCUMENTED {
            assert_eq!(reason.keypad_digits().as_deref(), Some(&sent[1..]));
            for v in [
                sent.to_owned(),
                sent[1..].to_owned(),
                format!(" {sent} "),
                format!("{} {}", &sent[..4], &sent[4..]),
            ] {
                let c = CallerId::classify(Some(&v));
                assert_eq!(c.withheld(), Some(reason), "{v:?}: {c:?}");
                assert_eq!(c.number(), None, "{v:?}");
            }
        }
        // Regression: this one parses as E.164, which is how it was taken for a caller.
        assert!(PhoneNumber::parse("+266696687").is_ok());
        assert_eq!(
            WithheldReason::Private.keypad_digits().as_deref(),
            Some("7748283")
        );
        assert_eq!(WithheldReason::Empty.keypad_digits(), None);
    }

    #[test]
    fn withheld_words_in_any_case_and_sip_form() {
        for reason in WithheldReason::WORDS {
            let w = reason.as_str();
            let mut title = w.to_owned();
            title[..1].make_ascii_uppercase();
            for v in [
                w.to_owned(),
                w.to_ascii_uppercase(),
                title.clone(),
                format!("  {title}\t"),
                format!("sip:{w}@anonymous.invalid"),
                format!("SIPS:{title}@example.com;user=phone"),
                format!("sip:{w}"),
                format!(
                    "sip:+{}@pstn.example;user=phone",
                    reason.keypad_digits().unwrap()
                ),
            ] {
                let c = CallerId::classify(Some(&v));
                assert_eq!(c.withheld(), Some(*reason), "{v:?}: {c:?}");
                assert_eq!(c.to_string(), format!("withheld ({w})"));
            }
        }
        for v in [None, Some(""), Some("   "), Some("\t")] {
            let c = CallerId::classify(v);
            assert_eq!(c.withheld(), Some(WithheldReason::Empty), "{v:?}");
            assert_eq!(c.to_string(), "no caller ID");
        }
    }

    #[test]
    fn real_numbers_and_non_numbers_are_not_taken_for_stand_ins() {
        for v in [
            "+15125550123",
            "+14158675309",
            "+442071838750",
            "+2666966870",
            "+72666966877",
            "+26669668",
        ] {
            match CallerId::classify(Some(v)) {
                CallerId::Number(n) => assert_eq!(n, PhoneNumber::parse(v).unwrap()),
                other => {
                    // Not withheld either way: a near miss is never a stand-in.
                    assert_eq!(other.withheld(), None, "{v}: {other:?}");
                }
            }
        }
        assert_eq!(
            CallerId::classify(Some("+15125550123")).to_string(),
            "+15125550123"
        );
        for v in [
            "client:alice",
            "sip:alice@example.com",
            "anonymous1",
            "not anonymous",
            "2666966877",
            "+1266696687",
        ] {
            let c = CallerId::classify(Some(v));
            assert_eq!(c, CallerId::NotANumber(v.to_owned()), "{v}");
            assert_eq!(c.to_string(), format!("not a number: {v}"));
        }
    }

    #[test]
    fn from_and_caller_both_go_through_the_rule() {
        let f = |from: Option<&str>, caller: Option<&str>| CallFields {
            from: from.map(str::to_owned),
            caller: caller.map(str::to_owned),
            ..Default::default()
        };
        let real = Some("+15125550123");
        for (sent, reason) in DOCUMENTED {
            // A stand-in in either field is never outvoted by the other.
            for fields in [
                f(Some(sent), None),
                f(None, Some(sent)),
                f(Some(sent), Some(sent)),
                f(real, Some(sent)),
                f(Some(sent), real),
                f(Some(""), Some(sent)),
            ] {
                assert_eq!(fields.caller_withheld(), Some(reason), "{fields:?}");
                assert_eq!(fields.caller_number(), None, "{fields:?}");
            }
        }
        assert_eq!(
            f(real, None).caller_number(),
            PhoneNumber::parse("+15125550123").ok()
        );
        assert_eq!(
            f(None, real).caller_number(),
            PhoneNumber::parse("+15125550123").ok()
        );
        assert_eq!(
            f(Some(""), real).caller_number(),
            PhoneNumber::parse("+15125550123").ok()
        );
        assert_eq!(
            f(Some("client:alice"), real).caller_number(),
            PhoneNumber::parse("+15125550123").ok()
        );
        assert_eq!(
            f(Some("client:alice"), None).caller_id(),
            CallerId::NotANumber("client:alice".into())
        );
        assert_eq!(f(None, None).caller_withheld(), Some(WithheldReason::Empty));
        assert_eq!(
            f(Some(""), Some(" ")).caller_withheld(),
            Some(WithheldReason::Empty)
        );
    }

    #[test]
    fn every_webhook_type_reads_withheld_callers_the_same_way() {
        let body =
            "CallSid=CA1&AccountSid=AC1&From=%2B266696687&Caller=%2B266696687&To=%2B18005551212";
        let calls: [CallFields; 5] = [
            parse_form::<VoiceRequest>(body.as_bytes()).unwrap().call,
            parse_form::<GatherRequest>(format!("{body}&Digits=1").as_bytes())
                .unwrap()
                .call,
            parse_form::<DialActionRequest>(body.as_bytes())
                .unwrap()
                .call,
            parse_form::<RecordActionRequest>(body.as_bytes())
                .unwrap()
                .call,
            parse_form::<StatusCallbackRequest>(body.as_bytes())
                .unwrap()
                .call,
        ];
        for c in calls {
            assert_eq!(c.caller_withheld(), Some(WithheldReason::Anonymous));
            assert_eq!(c.caller_number(), None);
            // The raw values are kept as sent.
            assert_eq!(c.from.as_deref(), Some("+266696687"));
            assert_eq!(c.caller.as_deref(), Some("+266696687"));
        }
        let r: VoiceRequest = parse_form(b"CallSid=CA1&AccountSid=AC1&From=Anonymous").unwrap();
        assert_eq!(r.call.caller_id().to_string(), "withheld (anonymous)");
        let back: VoiceRequest = parse_form(
            serde_urlencoded::to_string(parse_form::<VoiceRequest>(body.as_bytes()).unwrap())
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(back.call.caller.as_deref(), Some("+266696687"));
    }

    proptest::proptest! {
        /// A value is a caller number only when it parses as E.164 and is no
        /// stand-in; a number equal to a stand-in's digits is always withheld.
        #[test]
        fn numbers_are_numbers_and_stand_ins_never_are(
            v in "[+]?[0-9 ().-]{0,16}|[A-Za-z:@.]{0,14}",
        ) {
            let c = CallerId::classify(Some(&v));
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            let is_keypad = WithheldReason::WORDS
                .iter()
                .any(|r| r.keypad_digits().as_deref() == Some(digits.as_str()))
                && v.chars().all(|ch| ch.is_ascii_digit() || "+ -.()".contains(ch))
                && v.trim().strip_prefix('+').unwrap_or(v.trim()).chars().all(|ch| ch != '+');
            if let Some(n) = c.number() {
                proptest::prop_assert!(!is_keypad, "{v:?} taken for a number");
                proptest::prop_assert_eq!(Some(n.clone()), PhoneNumber::parse(&v).ok());
            }
            if is_keypad {
                proptest::prop_assert!(c.withheld().is_some(), "{v:?}: {c:?}");
            }
        }
    }

    /// The signature does not cover parameter order, so a parameter repeated
    /// with different values must not resolve to "whichever came last".
    #[test]
    fn parameters_repeated_with_different_values_are_refused() {
        for body in [
            "CallSid=CA1&AccountSid=AC1&X=1&X=2",
            "CallSid=CA1&AccountSid=AC1&X=2&X=1",
            "CallSid=CA1&AccountSid=AC1&From=%2B15125550123&From=Anonymous",
            "CallSid=CA1&AccountSid=AC1&Digits=1&Digits=2",
            "CallSid=CA1&CallSid=CA2&AccountSid=AC1",
        ] {
            let e = parse_form::<GatherRequest>(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains("GatherRequest") && e.contains("repeated"), "{e}");
        }
        let e = parse_form::<GatherRequest>(b"CallSid=CA1&AccountSid=AC1&X=1&X=2")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`X`") && e.contains("`1`") && e.contains("`2`"),
            "{e}"
        );
        // An exact repeat in an unnamed parameter is harmless and kept once.
        let g: GatherRequest = parse_form(b"CallSid=CA1&AccountSid=AC1&X=1&X=1").unwrap();
        assert_eq!(g.extra["X"], "1");
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

//! Typed TwiML attribute values: the enums for Twilio's fixed value sets and the
//! conversion of every attribute type to its wire text.

use std::fmt;
use std::str::FromStr;

/// Renders a typed attribute value as Twilio's libraries do: booleans `true` /
/// `false`, numbers in decimal, lists space-separated, enums by their wire name.
pub trait AttrValue {
    /// The attribute text before XML escaping.
    fn render(&self) -> String;
}

impl AttrValue for String {
    fn render(&self) -> String {
        self.clone()
    }
}

impl AttrValue for bool {
    fn render(&self) -> String {
        if *self { "true" } else { "false" }.to_owned()
    }
}

impl AttrValue for u32 {
    fn render(&self) -> String {
        self.to_string()
    }
}

/// Money (`<Pay chargeAmount>`): the decimal as written, scale kept (`10.00`),
/// as Python's `str(Decimal("10.00"))`.
impl AttrValue for rust_decimal::Decimal {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl<T: AttrValue> AttrValue for Vec<T> {
    fn render(&self) -> String {
        let mut out = String::new();
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&v.render());
        }
        out
    }
}

/// The wire name of an attribute set through the escape hatch (`.attr()` on
/// every element): an XML name, checked once here so a rendered document is
/// always well-formed.
///
/// Accepted: a first character that is a letter, `_` or `:`, then letters,
/// digits, `_`, `:`, `-` or `.` (the XML 1.0 `Name` production, restricted to
/// Unicode letters and digits), and not starting with `xml` in any case
/// except the reserved `xml:lang`/`xml:space` (as in SSML's `xml:lang`).
/// The name is used as given: no snake_case to camelCase conversion.
///
/// ```
/// use callbid_twilio::twiml::{AttrName, Say};
/// let say = Say::new("Hi").attr(AttrName::new("newFeature")?, "on");
/// assert_eq!(say.attributes()[0].0, "newFeature");
/// assert!(AttrName::new("bad name").is_err());
/// # Ok::<(), callbid_twilio::twiml::InvalidAttrName>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrName(String);

/// Error returned by [`AttrName::new`] for a string that is not a usable
/// attribute name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TwiML attribute name `{name}`: {reason}")]
#[non_exhaustive]
pub struct InvalidAttrName {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl AttrName {
    /// Checks `name` (see the type docs for the rules).
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidAttrName> {
        let name = name.into();
        let fail = |reason| {
            Err(InvalidAttrName {
                name: name.clone(),
                reason,
            })
        };
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return fail("it is empty");
        };
        if !(first.is_alphabetic() || first == '_' || first == ':') {
            return fail("it must start with a letter, `_` or `:`");
        }
        if !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.')) {
            return fail("it may only contain letters, digits, `_`, `:`, `-` and `.`");
        }
        let reserved = name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("xml"));
        if reserved && name != "xml:lang" && name != "xml:space" {
            return fail("names starting with `xml` are reserved");
        }
        Ok(AttrName(name))
    }

    /// The name as it is rendered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for AttrName {
    type Error = InvalidAttrName;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        AttrName::new(s)
    }
}

impl fmt::Display for AttrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Error returned when a string is not one of an enum's wire values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} `{value}`: expected one of {expected}")]
pub struct UnknownValue {
    /// Which value set was being parsed (e.g. `CallStatus`).
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// The accepted values, comma separated.
    pub expected: &'static str,
}

/// Defines a closed enum of wire strings with `as_str`, `Display`, `FromStr`,
/// serde (by wire name) and [`AttrValue`].
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* #[doc = concat!("`", $wire, "`")] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value exactly as Twilio spells it on the wire.
            pub fn as_str(&self) -> &'static str {
                match self { $( $name::$variant => $wire, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = $crate::twiml::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    _ => Err($crate::twiml::UnknownValue {
                        kind: stringify!($name),
                        value: s.to_owned(),
                        expected: concat!($($wire, " "),+),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl $crate::twiml::AttrValue for $name {
            fn render(&self) -> String {
                self.as_str().to_owned()
            }
        }
    };
}

wire_enum! {
    /// HTTP method Twilio uses for a callback (`method`, `*Method` attributes).
    pub enum Method { Get = "GET", Post = "POST" }
}

wire_enum! {
    /// `<Gather input>`: which kinds of caller input to collect.
    pub enum GatherInput { Dtmf = "dtmf", Speech = "speech", DtmfSpeech = "dtmf speech" }
}

wire_enum! {
    /// `<Dial record>`: whether and from when to record the bridged call.
    pub enum DialRecord {
        /// Do not record (default).
        DoNotRecord = "do-not-record",
        /// Mono recording from when the callee answers.
        RecordFromAnswer = "record-from-answer",
        /// Mono recording from when ringing starts.
        RecordFromRinging = "record-from-ringing",
        /// Dual-channel recording from answer.
        RecordFromAnswerDual = "record-from-answer-dual",
        /// Dual-channel recording from ringing.
        RecordFromRingingDual = "record-from-ringing-dual",
    }
}

wire_enum! {
    /// `trim` on `<Dial>`, `<Record>`, `<Conference>`: whether to trim silence.
    pub enum Trim { TrimSilence = "trim-silence", DoNotTrim = "do-not-trim" }
}

wire_enum! {
    /// `<Dial recordingTrack>`: which audio track to record.
    pub enum RecordingTrack { Both = "both", Inbound = "inbound", Outbound = "outbound" }
}

wire_enum! {
    /// `recordingStatusCallbackEvent` values.
    pub enum RecordingEvent { InProgress = "in-progress", Completed = "completed", Absent = "absent" }
}

wire_enum! {
    /// `statusCallbackEvent` values on `<Number>`, `<Sip>`, `<Client>`.
    pub enum CallProgressEvent {
        Initiated = "initiated", Ringing = "ringing", Answered = "answered", Completed = "completed",
    }
}

wire_enum! {
    /// `<Conference statusCallbackEvent>` values.
    pub enum ConferenceEvent {
        Start = "start", End = "end", Join = "join", Leave = "leave", Mute = "mute", Hold = "hold",
        Modify = "modify", Speaker = "speaker", Announcement = "announcement",
    }
}

wire_enum! {
    /// `<Conference beep>`: when to play the entry/exit beep.
    pub enum ConferenceBeep { True = "true", False = "false", OnEnter = "onEnter", OnExit = "onExit" }
}

wire_enum! {
    /// `<Conference record>`.
    pub enum ConferenceRecord { DoNotRecord = "do-not-record", RecordFromStart = "record-from-start" }
}

wire_enum! {
    /// `<Reject reason>`.
    pub enum RejectReason { Rejected = "rejected", Busy = "busy" }
}

wire_enum! {
    /// `machineDetection` on `<Number>` and `<Sip>`.
    pub enum MachineDetection { Enable = "Enable", DetectMessageEnd = "DetectMessageEnd" }
}

/// `<Gather speechTimeout>`: `auto` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpeechTimeout {
    /// Stop at the first pause in speech (`auto`).
    Auto,
    /// Stop after this many seconds of silence.
    Seconds(u32),
}

impl AttrValue for SpeechTimeout {
    fn render(&self) -> String {
        match self {
            SpeechTimeout::Auto => "auto".to_owned(),
            SpeechTimeout::Seconds(s) => s.to_string(),
        }
    }
}

impl From<u32> for SpeechTimeout {
    fn from(s: u32) -> Self {
        SpeechTimeout::Seconds(s)
    }
}

// Allow `vec![...]` of events to be passed where a list is expected, and one event
// where a list is expected.
macro_rules! one_into_list {
    ($($t:ty),*) => {$(
        impl From<$t> for Vec<$t> {
            fn from(v: $t) -> Self { vec![v] }
        }
    )*};
}
one_into_list!(RecordingEvent, CallProgressEvent, ConferenceEvent);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_their_wire_names() {
        for v in DialRecord::ALL {
            assert_eq!(v.as_str().parse::<DialRecord>(), Ok(*v));
        }
        let err = "record".parse::<DialRecord>().unwrap_err();
        assert!(err.to_string().contains("DialRecord"), "{err}");
        assert!(err.to_string().contains("`record`"), "{err}");
    }

    #[test]
    fn lists_and_booleans_render_like_twilio() {
        let v = vec![CallProgressEvent::Initiated, CallProgressEvent::Completed];
        assert_eq!(v.render(), "initiated completed");
        assert_eq!(true.render(), "true");
        assert_eq!(SpeechTimeout::Auto.render(), "auto");
        assert_eq!(GatherInput::DtmfSpeech.render(), "dtmf speech");
    }
}

//! TwiML for voice: a typed builder whose output matches Twilio's own helper
//! libraries byte for byte, and a parser ([`parse`]) for reading TwiML back.
//!
//! # Coverage (twilio-python 9.x `twilio/twiml/voice_response.py`)
//!
//! - Verbs in `<Response>` ([`Verb`]): `<Say>`, `<Play>`, `<Pause>`, `<Gather>`,
//!   `<Dial>`, `<Record>`, `<Redirect>`, `<Reject>`, `<Hangup>`, `<Leave>`,
//!   `<Enqueue>`, `<Connect>`, `<Start>`, `<Stop>`, `<Pay>`, `<Refer>`, `<Echo>`.
//! - `<Say>`: SSML [`SsmlNode`] — `<break>`, `<emphasis>`, `<lang>`, `<p>`,
//!   `<phoneme>`, `<prosody>`, `<s>`, `<say-as>`, `<sub>`, `<w>`, nested as
//!   twilio-python allows ([`SsmlPChild`], [`SsmlInline`], [`SsmlWChild`]), and
//!   text between them.
//! - `<Gather>`: [`GatherChild`] (Say, Play, Pause). `<Enqueue>`: [`Task`].
//! - `<Dial>`: [`DialNoun`] — `<Number>`, `<Sip>` (with `<Uri>` and
//!   `<Headers><Header>`), `<Client>` (with `<Identity>`, `<Parameter>`),
//!   `<Conference>`, `<Queue>`, `<Application>` (with `<ApplicationSid>`,
//!   `<Parameter>`), `<Sim>`, `<WhatsApp>`.
//! - `<Connect>`: [`ConnectNoun`] — `<Room>`, `<Stream>` (with `<Parameter>`),
//!   `<VirtualAgent>` (with `<Config>`, `<Parameter>`), `<Conversation>`,
//!   `<ConversationRelay>` (with `<Language>`, `<Parameter>`).
//! - `<Start>`: [`StartNoun`] — `<Stream>`, `<Siprec>`, `<Transcription>` (with
//!   `<Config>`, `<Parameter>`), `<Recording>`. `<Stop>`: [`StopNoun`] —
//!   `<Stream>`, `<Siprec>`, `<Transcription>`.
//! - `<Pay>`: [`PayChild`] — `<Prompt>` (Say, Play, Pause), `<Parameter>`.
//!   `<Refer>`: `<Sip>` ([`ReferSip`]). `<Hangup>`, `<Reject>`: `<Parameter>`.
//!
//! Not covered: what twilio-python marks deprecated or has no voice use for —
//! `<Sms>`, `<Connect><Autopilot>`, `<Connect><AiSession>`,
//! `<Connect><ConversationRelaySession>`, and top-level `<Prompt>` / `<Queue>`
//! (twilio-python lets them be appended to `<Response>`; Twilio reads them only
//! inside `<Pay>` / `<Dial>`). Any attribute without a setter can be written
//! with the escape hatch below.
//!
//! Nesting is enforced by the types: each element's children are an enum of
//! exactly the children twilio-python lets it nest, so `<Stop>` cannot hold a
//! `<Recording>` and `<w>` cannot hold a `<p>`.
//!
//! # Attributes
//!
//! Each attribute setter is named after twilio-python's keyword argument and
//! writes its wire name: snake_case to lowerCamelCase
//! (`status_callback_event` → `statusCallbackEvent`), with twilio-python's
//! special cases `for_` → `for`, `xml_lang` → `xml:lang`,
//! `interpret_as` → `interpret-as`; keyword arguments twilio-python already
//! spells in camelCase (`ConversationRelay`'s `speechTimeout`, …) keep that
//! wire name. Every element also has `.attr(AttrName, value)` for attributes
//! the builder does not know yet: the name is used as given, must be an XML
//! name ([`AttrName`] refuses others with [`InvalidAttrName`]), replaces a
//! typed attribute or an earlier `.attr` of the same name, and sorts with the
//! rest.
//!
//! # Rendering
//!
//! Rendering follows twilio-python (`xml.etree.ElementTree`): the declaration
//! `<?xml version="1.0" encoding="UTF-8"?>` with no newline, attributes sorted by
//! their wire name (code point order, as Python's `sorted`), empty elements as
//! `<Hangup />`, an empty text written as none, text escaped `&` `<` `>`,
//! attributes additionally `"` and CR/LF/TAB as numeric references.
//! `tests/golden/` holds twilio-python's output for every element and
//! attribute style, compared byte for byte in `tests/twiml_golden.rs`.

#[macro_use]
mod macros;
mod attr;
mod elements;
mod escape;
pub mod parse;
mod ssml;

pub use attr::{
    AttrName, AttrValue, CallProgressEvent, ConferenceBeep, ConferenceEvent, ConferenceRecord,
    DialRecord, GatherInput, InvalidAttrName, MachineDetection, Method, RecordingEvent,
    RecordingTrack, RejectReason, SpeechTimeout, Trim, UnknownValue,
};
pub use elements::{
    Application, ApplicationChild, ApplicationSid, ClientChild, Config, ConfigChild, Connect,
    ConnectNoun, Conversation, ConversationRelay, ConversationRelayChild, Echo, Header, Headers,
    Identity, Language, Parameter, Pay, PayChild, Prompt, PromptChild, Recording, Refer, ReferSip,
    Room, Sim, SipChild, SipUri, Siprec, Start, StartNoun, Stop, StopNoun, Stream, Transcription,
    VirtualAgent, WhatsApp,
};
pub use escape::{escape_attr, escape_text};
pub use ssml::{
    SsmlBreak, SsmlEmphasis, SsmlInline, SsmlLang, SsmlNode, SsmlP, SsmlPChild, SsmlPhoneme,
    SsmlProsody, SsmlS, SsmlSayAs, SsmlSub, SsmlW, SsmlWChild,
};

use std::borrow::Cow;
use std::fmt;

/// The XML declaration Twilio's libraries put before `<Response>`.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// An attribute list as elements collect it: `(wire name, value before escaping)`.
type Attrs = Vec<(Cow<'static, str>, String)>;

/// Adds the escape-hatch attributes to the typed ones (same name: the extra
/// value wins) and sorts the list by wire name, as twilio-python sorts its
/// attribute dict (`sorted(keys)`, code point order = UTF-8 byte order).
pub(crate) fn merge_extra(out: &mut Attrs, extra: &[(AttrName, String)]) {
    for (name, value) in extra {
        match out.iter_mut().find(|(n, _)| n.as_ref() == name.as_str()) {
            Some(slot) => slot.1 = value.clone(),
            None => out.push((Cow::Owned(name.as_str().to_owned()), value.clone())),
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
}

/// Writes `<tag a="v" …` with attributes sorted by wire name.
fn open_tag(out: &mut String, tag: &str, attrs: &mut [(Cow<'static, str>, String)]) {
    attrs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.push('<');
    out.push_str(tag);
    for (name, value) in attrs.iter() {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape::push_escaped_attr(out, value);
        out.push('"');
    }
}

/// Writes a complete element: text first, then children, or the ` />` form
/// when there is neither (an empty text counts as none, as in ElementTree).
pub(crate) fn write_element(
    out: &mut String,
    tag: &str,
    attrs: &mut [(Cow<'static, str>, String)],
    text: Option<&str>,
    children: &[&dyn Render],
) {
    open_tag(out, tag, attrs);
    let text = text.filter(|t| !t.is_empty());
    if text.is_none() && children.is_empty() {
        out.push_str(" />");
        return;
    }
    out.push('>');
    if let Some(t) = text {
        out.push_str(&escape_text(t));
    }
    for c in children {
        c.render(out);
    }
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// Something that renders itself as TwiML into a buffer.
pub(crate) trait Render {
    fn render(&self, out: &mut String);
}

element! {
    /// `<Say>`: reads text to the caller with text-to-speech; SSML elements
    /// (and text between them) follow the message as children.
    Say = "Say";
    fields { message: String, children: Vec<SsmlNode> }
    attrs {
        /// Voice, e.g. `alice`, `man`, `woman`, `Polly.Joanna`, `Google.en-US-Neural2-A`.
        voice: String => "voice",
        /// How many times to repeat (0 = until the call ends).
        loop_count: u32 => "loop",
        /// Language and locale, e.g. `en-US`.
        language: String => "language",
    }
}

impl Say {
    /// `<Say>` with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Say {
            message: message.into(),
            ..Default::default()
        }
    }
    /// The text to speak.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl_render!(Say, text: message, children: children);
children!(Say.children: SsmlNode {
    break_(SsmlBreak), emphasis(SsmlEmphasis), lang(SsmlLang), p(SsmlP), phoneme(SsmlPhoneme),
    prosody(SsmlProsody), s(SsmlS), say_as(SsmlSayAs), sub(SsmlSub), w(SsmlW),
});

element! {
    /// `<Play>`: plays an audio file, or sends DTMF digits.
    Play = "Play";
    fields { url: Option<String> }
    attrs {
        /// How many times to repeat (0 = until the call ends).
        loop_count: u32 => "loop",
        /// DTMF digits to play (`w` waits half a second).
        digits: String => "digits",
    }
}

impl Play {
    /// `<Play>` of the audio at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Play {
            url: Some(url.into()),
            ..Default::default()
        }
    }
    /// `<Play digits="…"/>` with no URL.
    pub fn digits_only(digits: impl Into<String>) -> Self {
        Play::default().digits(digits)
    }
    /// The audio URL, if any.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

impl Render for Play {
    fn render(&self, out: &mut String) {
        write_element(
            out,
            Self::TAG,
            &mut self.attributes(),
            self.url.as_deref(),
            &[],
        );
    }
}

element! {
    /// `<Pause>`: silence for `length` seconds (default 1).
    Pause = "Pause";
    fields {}
    attrs {
        /// Seconds of silence.
        length: u32 => "length",
    }
}

impl Pause {
    /// `<Pause />` (one second).
    pub fn new() -> Self {
        Pause::default()
    }
}

impl_render!(Pause);

child_enum! {
    /// What `<Gather>` may contain: `<Say>`, `<Play>`, `<Pause>`.
    GatherChild { Say, Play, Pause }
}

element! {
    /// `<Gather>`: collects DTMF digits or speech and posts them to `action`.
    Gather = "Gather";
    fields { children: Vec<GatherChild> }
    attrs {
        /// Input kinds to collect.
        input: GatherInput => "input",
        /// URL that receives the result (default: the current document's URL).
        action: String => "action",
        /// Method for `action`.
        method: Method => "method",
        /// Seconds to wait for input.
        timeout: u32 => "timeout",
        /// Silence that ends speech input.
        speech_timeout: SpeechTimeout => "speechTimeout",
        /// Maximum seconds of speech.
        max_speech_time: u32 => "maxSpeechTime",
        /// Filter profanity from speech results.
        profanity_filter: bool => "profanityFilter",
        /// Key that ends input (default `#`; empty string for none).
        finish_on_key: String => "finishOnKey",
        /// Digits to collect before posting.
        num_digits: u32 => "numDigits",
        /// URL for partial speech results.
        partial_result_callback: String => "partialResultCallback",
        /// Method for `partialResultCallback`.
        partial_result_callback_method: Method => "partialResultCallbackMethod",
        /// Speech recognition language.
        language: String => "language",
        /// Speech hints, comma separated.
        hints: String => "hints",
        /// Stop nested audio when input starts.
        barge_in: bool => "bargeIn",
        /// Debug mode.
        debug: bool => "debug",
        /// Post to `action` even when nothing was collected.
        action_on_empty_result: bool => "actionOnEmptyResult",
        /// Speech model, e.g. `phone_call`.
        speech_model: String => "speechModel",
        /// Enhanced speech model.
        enhanced: bool => "enhanced",
    }
}

impl Gather {
    /// An empty `<Gather>`.
    pub fn new() -> Self {
        Gather::default()
    }
    /// Appends a nested `<Say>`.
    #[must_use]
    pub fn say(self, say: Say) -> Self {
        self.child(say)
    }
    /// Appends a nested `<Play>`.
    #[must_use]
    pub fn play(self, play: Play) -> Self {
        self.child(play)
    }
    /// Appends a nested `<Pause>`.
    #[must_use]
    pub fn pause(self, pause: Pause) -> Self {
        self.child(pause)
    }
    /// Appends any allowed child.
    #[must_use]
    pub fn child(mut self, child: impl Into<GatherChild>) -> Self {
        self.children.push(child.into());
        self
    }
    /// The nested elements.
    pub fn children(&self) -> &[GatherChild] {
        &self.children
    }
}

impl_render!(Gather, children: children);

element! {
    /// `<Number>` inside `<Dial>`: a phone number to call.
    Number = "Number";
    fields { phone_number: String }
    attrs {
        /// DTMF to send after the call connects.
        send_digits: String => "sendDigits",
        /// TwiML URL run for the callee before bridging (whisper).
        url: String => "url",
        /// Method for `url`.
        method: Method => "method",
        /// Which progress events to report to `statusCallback`.
        status_callback_event: Vec<CallProgressEvent> => "statusCallbackEvent",
        /// URL for call progress events.
        status_callback: String => "statusCallback",
        /// Method for `statusCallback`.
        status_callback_method: Method => "statusCallbackMethod",
        /// BYOC trunk SID.
        byoc: String => "byoc",
        /// Answering-machine detection.
        machine_detection: MachineDetection => "machineDetection",
        /// Method for `amdStatusCallback`.
        amd_status_callback_method: Method => "amdStatusCallbackMethod",
        /// URL for asynchronous AMD results.
        amd_status_callback: String => "amdStatusCallback",
        /// AMD timeout in seconds.
        machine_detection_timeout: u32 => "machineDetectionTimeout",
        /// AMD speech threshold (ms).
        machine_detection_speech_threshold: u32 => "machineDetectionSpeechThreshold",
        /// AMD speech end threshold (ms).
        machine_detection_speech_end_threshold: u32 => "machineDetectionSpeechEndThreshold",
        /// AMD silence timeout (ms).
        machine_detection_silence_timeout: u32 => "machineDetectionSilenceTimeout",
    }
}

impl Number {
    /// `<Number>` for `phone_number` (E.164).
    pub fn new(phone_number: impl Into<String>) -> Self {
        Number {
            phone_number: phone_number.into(),
            ..Default::default()
        }
    }
    /// The number dialled.
    pub fn phone_number(&self) -> &str {
        &self.phone_number
    }
}

impl_render!(Number, text: phone_number);

element! {
    /// `<Sip>` inside `<Dial>`: a SIP URI to call, as text or as nested
    /// `<Uri>`s, with optional `<Headers>`. Custom `X-` headers can also ride
    /// in the URI's query (`sip:a@b?X-Name=v`), which is plain text here.
    Sip = "Sip";
    fields { sip_url: String, children: Vec<SipChild> }
    attrs {
        /// SIP auth user name.
        username: String => "username",
        /// SIP auth password.
        password: String => "password",
        /// TwiML URL run for the callee before bridging.
        url: String => "url",
        /// Method for `url`.
        method: Method => "method",
        /// Which progress events to report.
        status_callback_event: Vec<CallProgressEvent> => "statusCallbackEvent",
        /// URL for call progress events.
        status_callback: String => "statusCallback",
        /// Method for `statusCallback`.
        status_callback_method: Method => "statusCallbackMethod",
        /// Answering-machine detection.
        machine_detection: MachineDetection => "machineDetection",
        /// Method for `amdStatusCallback`.
        amd_status_callback_method: Method => "amdStatusCallbackMethod",
        /// URL for asynchronous AMD results.
        amd_status_callback: String => "amdStatusCallback",
        /// AMD timeout in seconds.
        machine_detection_timeout: u32 => "machineDetectionTimeout",
        /// AMD speech threshold (ms).
        machine_detection_speech_threshold: u32 => "machineDetectionSpeechThreshold",
        /// AMD speech end threshold (ms).
        machine_detection_speech_end_threshold: u32 => "machineDetectionSpeechEndThreshold",
        /// AMD silence timeout (ms).
        machine_detection_silence_timeout: u32 => "machineDetectionSilenceTimeout",
    }
}

impl Sip {
    /// `<Sip>` for `sip_url` (e.g. `sip:buyer@example.com`; an empty string
    /// writes no text, for use with [`SipUri`] children).
    pub fn new(sip_url: impl Into<String>) -> Self {
        Sip {
            sip_url: sip_url.into(),
            ..Default::default()
        }
    }
    /// The SIP URI dialled.
    pub fn sip_url(&self) -> &str {
        &self.sip_url
    }
}

impl_render!(Sip, text: sip_url, children: children);
children!(Sip.children: SipChild { uri(SipUri), headers(Headers) });

element! {
    /// `<Client>` inside `<Dial>`: a Twilio Client identity, as text or in a
    /// nested `<Identity>`, with optional `<Parameter>`s.
    Client = "Client";
    fields { identity: String, children: Vec<ClientChild> }
    attrs {
        /// TwiML URL run for the callee before bridging.
        url: String => "url",
        /// Method for `url`.
        method: Method => "method",
        /// Which progress events to report.
        status_callback_event: Vec<CallProgressEvent> => "statusCallbackEvent",
        /// URL for call progress events.
        status_callback: String => "statusCallback",
        /// Method for `statusCallback`.
        status_callback_method: Method => "statusCallbackMethod",
    }
}

impl Client {
    /// `<Client>` for `identity` (an empty string writes no text; then add an
    /// [`Identity`]).
    pub fn new(identity: impl Into<String>) -> Self {
        Client {
            identity: identity.into(),
            ..Default::default()
        }
    }
}

impl_render!(Client, text: identity, children: children);
children!(Client.children: ClientChild { identity(Identity), parameter(Parameter) });

element! {
    /// `<Conference>` inside `<Dial>`: joins a named conference room.
    Conference = "Conference";
    fields { name: String }
    attrs {
        /// Join muted.
        muted: bool => "muted",
        /// Entry/exit beep.
        beep: ConferenceBeep => "beep",
        /// Start the conference when this participant enters.
        start_conference_on_enter: bool => "startConferenceOnEnter",
        /// End the conference when this participant leaves.
        end_conference_on_exit: bool => "endConferenceOnExit",
        /// Hold music TwiML URL.
        wait_url: String => "waitUrl",
        /// Method for `waitUrl`.
        wait_method: Method => "waitMethod",
        /// Maximum participants (2–250).
        max_participants: u32 => "maxParticipants",
        /// Record the conference.
        record: ConferenceRecord => "record",
        /// Recording configuration SID.
        recording_configuration_id: String => "recordingConfigurationId",
        /// Media region.
        region: String => "region",
        /// Call SID of the participant to coach.
        coach: String => "coach",
        /// Trim silence from the recording.
        trim: Trim => "trim",
        /// Conference events to report.
        status_callback_event: Vec<ConferenceEvent> => "statusCallbackEvent",
        /// URL for conference events.
        status_callback: String => "statusCallback",
        /// Method for `statusCallback`.
        status_callback_method: Method => "statusCallbackMethod",
        /// URL for recording status.
        recording_status_callback: String => "recordingStatusCallback",
        /// Method for `recordingStatusCallback`.
        recording_status_callback_method: Method => "recordingStatusCallbackMethod",
        /// Recording events to report.
        recording_status_callback_event: Vec<RecordingEvent> => "recordingStatusCallbackEvent",
        /// Event callback URL.
        event_callback_url: String => "eventCallbackUrl",
        /// Jitter buffer size (`off`, `small`, `medium`, `large`).
        jitter_buffer_size: String => "jitterBufferSize",
        /// Participant label.
        participant_label: String => "participantLabel",
    }
}

impl Conference {
    /// `<Conference>` named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Conference {
            name: name.into(),
            ..Default::default()
        }
    }
}

impl_render!(Conference, text: name);

element! {
    /// `<Queue>` inside `<Dial>`: dequeues the first caller of a queue.
    Queue = "Queue";
    fields { name: String }
    attrs {
        /// TwiML URL played to the dequeued caller.
        url: String => "url",
        /// Method for `url`.
        method: Method => "method",
        /// TaskRouter reservation SID.
        reservation_sid: String => "reservationSid",
        /// TaskRouter post-work activity SID.
        post_work_activity_sid: String => "postWorkActivitySid",
    }
}

impl Queue {
    /// `<Queue>` named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Queue {
            name: name.into(),
            ..Default::default()
        }
    }
}

impl_render!(Queue, text: name);

child_enum! {
    /// What `<Dial>` may contain: `<Number>`, `<Sip>`, `<Client>`, `<Conference>`,
    /// `<Queue>`, `<Application>`, `<Sim>`, `<WhatsApp>`.
    DialNoun { Number, Sip, Client, Conference, Queue, Application, Sim, WhatsApp }
}

element! {
    /// `<Dial>`: bridges the caller to another party.
    Dial = "Dial";
    fields { number: Option<String>, nouns: Vec<DialNoun> }
    attrs {
        /// URL that receives DialCallStatus etc. when the dialled party hangs up.
        action: String => "action",
        /// Method for `action`.
        method: Method => "method",
        /// Seconds to ring before giving up (default 30).
        timeout: u32 => "timeout",
        /// Let the caller hang up the callee with `*`.
        hangup_on_star: bool => "hangupOnStar",
        /// Maximum call length in seconds.
        time_limit: u32 => "timeLimit",
        /// Caller ID presented to the callee.
        caller_id: String => "callerId",
        /// Recording mode.
        record: DialRecord => "record",
        /// Trim silence from the recording.
        trim: Trim => "trim",
        /// URL for recording status.
        recording_status_callback: String => "recordingStatusCallback",
        /// Recording configuration SID.
        recording_configuration_id: String => "recordingConfigurationId",
        /// Method for `recordingStatusCallback`.
        recording_status_callback_method: Method => "recordingStatusCallbackMethod",
        /// Recording events to report.
        recording_status_callback_event: Vec<RecordingEvent> => "recordingStatusCallbackEvent",
        /// Keep the caller ringing until the callee answers.
        answer_on_bridge: bool => "answerOnBridge",
        /// Ringback tone country code.
        ring_tone: String => "ringTone",
        /// Which track to record.
        recording_track: RecordingTrack => "recordingTrack",
        /// Dial nouns one after another instead of simultaneously.
        sequential: bool => "sequential",
        /// SIP REFER URL.
        refer_url: String => "referUrl",
        /// Method for `referUrl`.
        refer_method: Method => "referMethod",
        /// Call progress events (`call-progress-event`).
        events: String => "events",
        /// Passports (STIR/SHAKEN).
        passports: String => "passports",
    }
}

impl Dial {
    /// An empty `<Dial>`; add nouns with [`Dial::number`], [`Dial::sip`], ….
    pub fn new() -> Self {
        Dial::default()
    }
    /// `<Dial>+1555…</Dial>`: dial one number given as text.
    pub fn to(number: impl Into<String>) -> Self {
        Dial {
            number: Some(number.into()),
            ..Default::default()
        }
    }
    /// Appends `<Number>`.
    #[must_use]
    pub fn number(self, number: Number) -> Self {
        self.noun(number)
    }
    /// Appends `<Sip>`.
    #[must_use]
    pub fn sip(self, sip: Sip) -> Self {
        self.noun(sip)
    }
    /// Appends `<Client>`.
    #[must_use]
    pub fn client(self, client: Client) -> Self {
        self.noun(client)
    }
    /// Appends `<Conference>`.
    #[must_use]
    pub fn conference(self, conference: Conference) -> Self {
        self.noun(conference)
    }
    /// Appends `<Queue>`.
    #[must_use]
    pub fn queue(self, queue: Queue) -> Self {
        self.noun(queue)
    }
    /// Appends `<Application>`.
    #[must_use]
    pub fn application(self, application: Application) -> Self {
        self.noun(application)
    }
    /// Appends `<Sim>`.
    #[must_use]
    pub fn sim(self, sim: Sim) -> Self {
        self.noun(sim)
    }
    /// Appends `<WhatsApp>`.
    #[must_use]
    pub fn whats_app(self, whats_app: WhatsApp) -> Self {
        self.noun(whats_app)
    }
    /// Appends any allowed noun.
    #[must_use]
    pub fn noun(mut self, noun: impl Into<DialNoun>) -> Self {
        self.nouns.push(noun.into());
        self
    }
    /// The nested nouns.
    pub fn nouns(&self) -> &[DialNoun] {
        &self.nouns
    }
}

impl Render for Dial {
    fn render(&self, out: &mut String) {
        let kids: Vec<&dyn Render> = self.nouns.iter().map(|c| c as &dyn Render).collect();
        write_element(
            out,
            Self::TAG,
            &mut self.attributes(),
            self.number.as_deref(),
            &kids,
        );
    }
}

element! {
    /// `<Record>`: records the caller and posts the RecordingUrl to `action`.
    Record = "Record";
    fields {}
    attrs {
        /// URL that receives RecordingUrl (default: the current document's URL).
        action: String => "action",
        /// Method for `action`.
        method: Method => "method",
        /// Seconds of silence that end the recording.
        timeout: u32 => "timeout",
        /// Keys that end the recording.
        finish_on_key: String => "finishOnKey",
        /// Maximum length in seconds.
        max_length: u32 => "maxLength",
        /// Beep before recording.
        play_beep: bool => "playBeep",
        /// Trim silence.
        trim: Trim => "trim",
        /// URL for recording status.
        recording_status_callback: String => "recordingStatusCallback",
        /// Method for `recordingStatusCallback`.
        recording_status_callback_method: Method => "recordingStatusCallbackMethod",
        /// Recording events to report.
        recording_status_callback_event: Vec<RecordingEvent> => "recordingStatusCallbackEvent",
        /// Transcribe the recording.
        transcribe: bool => "transcribe",
        /// URL for the transcription.
        transcribe_callback: String => "transcribeCallback",
        /// Recording configuration SID.
        recording_configuration_id: String => "recordingConfigurationId",
    }
}

impl Record {
    /// `<Record />` with Twilio's defaults.
    pub fn new() -> Self {
        Record::default()
    }
}

impl_render!(Record);

element! {
    /// `<Redirect>`: continues with the TwiML at another URL.
    Redirect = "Redirect";
    fields { url: String }
    attrs {
        /// Method for the URL (default POST).
        method: Method => "method",
    }
}

impl Redirect {
    /// `<Redirect>` to `url` (absolute or relative to the current document).
    pub fn new(url: impl Into<String>) -> Self {
        Redirect {
            url: url.into(),
            ..Default::default()
        }
    }
    /// The target URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl_render!(Redirect, text: url);

element! {
    /// `<Reject>`: refuses an incoming call without answering (no billing).
    Reject = "Reject";
    fields { children: Vec<Parameter> }
    attrs {
        /// Signal `rejected` (default) or `busy`.
        reason: RejectReason => "reason",
    }
}

impl Reject {
    /// `<Reject />`.
    pub fn new() -> Self {
        Reject::default()
    }
}

impl_render!(Reject, children: children);

impl Reject {
    /// Appends a `<Parameter>`.
    #[must_use]
    pub fn parameter(mut self, p: Parameter) -> Self {
        self.children.push(p);
        self
    }
    /// The nested parameters.
    pub fn parameters(&self) -> &[Parameter] {
        &self.children
    }
}

element! {
    /// `<Hangup>`: ends the call.
    Hangup = "Hangup";
    fields { children: Vec<Parameter> }
    attrs {}
}
empty_new!(Hangup);
impl_render!(Hangup, children: children);

impl Hangup {
    /// Appends a `<Parameter>`.
    #[must_use]
    pub fn parameter(mut self, p: Parameter) -> Self {
        self.children.push(p);
        self
    }
    /// The nested parameters.
    pub fn parameters(&self) -> &[Parameter] {
        &self.children
    }
}

element! {
    /// `<Leave>`: takes the caller out of the queue (in an `<Enqueue>` wait URL).
    Leave = "Leave";
    fields {}
    attrs {}
}
empty_new!(Leave);
impl_render!(Leave);

element! {
    /// `<Task>` inside `<Enqueue>`: TaskRouter task attributes (JSON text).
    Task = "Task";
    fields { body: String }
    attrs {
        /// Task priority.
        priority: u32 => "priority",
        /// Task timeout in seconds.
        timeout: u32 => "timeout",
    }
}

impl Task {
    /// `<Task>` with a JSON `body`.
    pub fn new(body: impl Into<String>) -> Self {
        Task {
            body: body.into(),
            ..Default::default()
        }
    }
}

impl_render!(Task, text: body);

element! {
    /// `<Enqueue>`: puts the caller into a queue.
    Enqueue = "Enqueue";
    fields { name: Option<String>, tasks: Vec<Task> }
    attrs {
        /// URL called when the caller leaves the queue.
        action: String => "action",
        /// Maximum queue size.
        max_queue_size: u32 => "maxQueueSize",
        /// Method for `action`.
        method: Method => "method",
        /// Hold music TwiML URL.
        wait_url: String => "waitUrl",
        /// Method for `waitUrl`.
        wait_url_method: Method => "waitUrlMethod",
        /// TaskRouter workflow SID.
        workflow_sid: String => "workflowSid",
    }
}

impl Enqueue {
    /// `<Enqueue>` into the queue `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Enqueue {
            name: Some(name.into()),
            ..Default::default()
        }
    }
    /// `<Enqueue>` with no queue name (TaskRouter: use with a `workflowSid` and `<Task>`).
    pub fn unnamed() -> Self {
        Enqueue::default()
    }
    /// Appends a `<Task>`.
    #[must_use]
    pub fn task(mut self, task: Task) -> Self {
        self.tasks.push(task);
        self
    }
}

impl Render for Enqueue {
    fn render(&self, out: &mut String) {
        let kids: Vec<&dyn Render> = self.tasks.iter().map(|c| c as &dyn Render).collect();
        write_element(
            out,
            Self::TAG,
            &mut self.attributes(),
            self.name.as_deref(),
            &kids,
        );
    }
}

/// A top-level voice verb inside `<Response>`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Verb {
    /// `<Say>`.
    Say(Say),
    /// `<Play>`.
    Play(Play),
    /// `<Pause>`.
    Pause(Pause),
    /// `<Gather>`.
    Gather(Gather),
    /// `<Dial>`.
    Dial(Dial),
    /// `<Record>`.
    Record(Record),
    /// `<Redirect>`.
    Redirect(Redirect),
    /// `<Reject>`.
    Reject(Reject),
    /// `<Hangup>`.
    Hangup(Hangup),
    /// `<Leave>`.
    Leave(Leave),
    /// `<Enqueue>`.
    Enqueue(Enqueue),
    /// `<Connect>`.
    Connect(Connect),
    /// `<Start>`.
    Start(Start),
    /// `<Stop>`.
    Stop(Stop),
    /// `<Pay>`.
    Pay(Pay),
    /// `<Refer>`.
    Refer(Refer),
    /// `<Echo>`.
    Echo(Echo),
}

impl Render for Verb {
    fn render(&self, out: &mut String) {
        match self {
            Verb::Say(v) => v.render(out),
            Verb::Play(v) => v.render(out),
            Verb::Pause(v) => v.render(out),
            Verb::Gather(v) => v.render(out),
            Verb::Dial(v) => v.render(out),
            Verb::Record(v) => v.render(out),
            Verb::Redirect(v) => v.render(out),
            Verb::Reject(v) => v.render(out),
            Verb::Hangup(v) => v.render(out),
            Verb::Leave(v) => v.render(out),
            Verb::Enqueue(v) => v.render(out),
            Verb::Connect(v) => v.render(out),
            Verb::Start(v) => v.render(out),
            Verb::Stop(v) => v.render(out),
            Verb::Pay(v) => v.render(out),
            Verb::Refer(v) => v.render(out),
            Verb::Echo(v) => v.render(out),
        }
    }
}

macro_rules! from_impls {
    ($enum:ident: $($v:ident),*) => {$(
        impl From<$v> for $enum {
            fn from(v: $v) -> Self { $enum::$v(v) }
        }
    )*};
}
from_impls!(
    Verb: Say, Play, Pause, Gather, Dial, Record, Redirect, Reject, Hangup, Leave, Enqueue, Connect,
    Start, Stop, Pay, Refer, Echo
);

/// A `<Response>` document for a voice webhook.
///
/// ```
/// use callbid_twilio::twiml::{VoiceResponse, Say};
/// let xml = VoiceResponse::new().say(Say::new("Hi")).hangup().to_xml();
/// assert_eq!(xml, r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hi</Say><Hangup /></Response>"#);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VoiceResponse {
    verbs: Vec<Verb>,
}

impl VoiceResponse {
    /// An empty `<Response />`.
    pub fn new() -> Self {
        VoiceResponse::default()
    }
    /// Appends any verb.
    #[must_use]
    pub fn verb(mut self, verb: impl Into<Verb>) -> Self {
        self.verbs.push(verb.into());
        self
    }
    /// Appends `<Say>`.
    #[must_use]
    pub fn say(self, v: Say) -> Self {
        self.verb(v)
    }
    /// Appends `<Play>`.
    #[must_use]
    pub fn play(self, v: Play) -> Self {
        self.verb(v)
    }
    /// Appends `<Pause>`.
    #[must_use]
    pub fn pause(self, v: Pause) -> Self {
        self.verb(v)
    }
    /// Appends `<Gather>`.
    #[must_use]
    pub fn gather(self, v: Gather) -> Self {
        self.verb(v)
    }
    /// Appends `<Dial>`.
    #[must_use]
    pub fn dial(self, v: Dial) -> Self {
        self.verb(v)
    }
    /// Appends `<Record>`.
    #[must_use]
    pub fn record(self, v: Record) -> Self {
        self.verb(v)
    }
    /// Appends `<Redirect>`.
    #[must_use]
    pub fn redirect(self, v: Redirect) -> Self {
        self.verb(v)
    }
    /// Appends `<Reject>`.
    #[must_use]
    pub fn reject(self, v: Reject) -> Self {
        self.verb(v)
    }
    /// Appends `<Hangup />` (see [`Hangup`] for one with parameters).
    #[must_use]
    pub fn hangup(self) -> Self {
        self.verb(Hangup::new())
    }
    /// Appends `<Leave />`.
    #[must_use]
    pub fn leave(self) -> Self {
        self.verb(Leave::new())
    }
    /// Appends `<Enqueue>`.
    #[must_use]
    pub fn enqueue(self, v: Enqueue) -> Self {
        self.verb(v)
    }
    /// Appends `<Connect>`.
    #[must_use]
    pub fn connect(self, v: Connect) -> Self {
        self.verb(v)
    }
    /// Appends `<Start>`.
    #[must_use]
    pub fn start(self, v: Start) -> Self {
        self.verb(v)
    }
    /// Appends `<Stop>`.
    #[must_use]
    pub fn stop(self, v: Stop) -> Self {
        self.verb(v)
    }
    /// Appends `<Pay>`.
    #[must_use]
    pub fn pay(self, v: Pay) -> Self {
        self.verb(v)
    }
    /// Appends `<Refer>`.
    #[must_use]
    pub fn refer(self, v: Refer) -> Self {
        self.verb(v)
    }
    /// Appends `<Echo />`.
    #[must_use]
    pub fn echo(self) -> Self {
        self.verb(Echo::new())
    }
    /// The verbs in order.
    pub fn verbs(&self) -> &[Verb] {
        &self.verbs
    }
    /// Renders the document, declaration included, exactly as twilio-python's
    /// `VoiceResponse.to_xml()`.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(64 + 96 * self.verbs.len());
        self.write_xml(&mut out);
        out
    }
    /// Appends the rendered document to `out` (reuse a buffer in hot paths).
    pub fn write_xml(&self, out: &mut String) {
        out.push_str(XML_DECLARATION);
        if self.verbs.is_empty() {
            out.push_str("<Response />");
            return;
        }
        out.push_str("<Response>");
        for v in &self.verbs {
            v.render(out);
        }
        out.push_str("</Response>");
    }
}

impl fmt::Display for VoiceResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example document from TWILIO.md.
    #[test]
    fn renders_the_reference_example() {
        let doc = VoiceResponse::new()
            .gather(
                Gather::new()
                    .input(GatherInput::Dtmf)
                    .num_digits(5u32)
                    .action("/ivr/zip")
                    .timeout(5u32)
                    .say(Say::new("Please enter your <zip> & code").voice("alice")),
            )
            .dial(
                Dial::new()
                    .caller_id("+15551234567")
                    .timeout(20u32)
                    .record(DialRecord::RecordFromAnswer)
                    .sip(Sip::new("sip:buyer@example.com")),
            )
            .hangup();
        assert_eq!(
            doc.to_xml(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/ivr/zip" input="dtmf" numDigits="5" timeout="5"><Say voice="alice">Please enter your &lt;zip&gt; &amp; code</Say></Gather><Dial callerId="+15551234567" record="record-from-answer" timeout="20"><Sip>sip:buyer@example.com</Sip></Dial><Hangup /></Response>"#
        );
    }

    #[test]
    fn empty_response_and_empty_text_use_short_form() {
        assert_eq!(
            VoiceResponse::new().to_xml(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response />"#
        );
        let xml = VoiceResponse::new().say(Say::new("")).to_xml();
        assert!(xml.ends_with("<Response><Say /></Response>"), "{xml}");
    }

    #[test]
    fn attr_names_are_checked() {
        for ok in [
            "a",
            "newFeature",
            "_u",
            ":x",
            "a-b.c_d:e",
            "xml:lang",
            "xml:space",
            "ñame",
        ] {
            assert_eq!(AttrName::new(ok).map(|n| n.to_string()), Ok(ok.to_owned()));
        }
        for bad in [
            "", " a", "a b", "1a", "-a", "a=b", "a\"", "a<", "a>", "a/", "xmlns", "XMLfoo",
            "é\u{0}",
        ] {
            let err = AttrName::new(bad).unwrap_err();
            assert_eq!(err.name, bad);
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        assert!(AttrName::try_from("ok").is_ok());
    }

    #[test]
    fn extra_attributes_replace_typed_ones_and_each_other() {
        let name = |s| AttrName::new(s).unwrap();
        let say = Say::new("x")
            .voice("alice")
            .attr(name("voice"), "man")
            .attr(name("zz"), "1")
            .attr(name("zz"), "2")
            .attr(name("B"), "3");
        assert_eq!(
            say.attributes(),
            [
                (Cow::Borrowed("B"), "3".to_owned()),
                (Cow::Borrowed("voice"), "man".to_owned()),
                (Cow::Borrowed("zz"), "2".to_owned()),
            ]
        );
        assert!(VoiceResponse::new()
            .say(say)
            .to_xml()
            .ends_with(r#"<Say B="3" voice="man" zz="2">x</Say></Response>"#));
    }

    #[test]
    fn nesting_is_typed() {
        // Each child list takes only its own enum; `child` converts what fits.
        let _: StartNoun = Recording::new().into();
        let _: StopNoun = Stream::new().into();
        let _: ConnectNoun = Room::new("r").into();
        let _: SsmlWChild = "text".into();
        let doc = VoiceResponse::new()
            .start(Start::new().child(Transcription::new().status_callback_url("/t")))
            .dial(Dial::new().client(Client::new("").identity(Identity::new("a"))))
            .to_xml();
        assert!(
            doc.contains(r#"<Start><Transcription statusCallbackUrl="/t" /></Start>"#),
            "{doc}"
        );
        assert!(
            doc.contains("<Client><Identity>a</Identity></Client>"),
            "{doc}"
        );
    }

    #[test]
    fn attributes_are_sorted_by_wire_name() {
        let n = Number::new("+15550001111")
            .status_callback_method(Method::Post)
            .status_callback("https://x/cb")
            .status_callback_event(vec![
                CallProgressEvent::Initiated,
                CallProgressEvent::Completed,
            ])
            .url("/whisper");
        let names: Vec<_> = n.attributes().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "statusCallback",
                "statusCallbackEvent",
                "statusCallbackMethod",
                "url"
            ]
        );
    }
}

//! An offline call simulator (feature `sim`): drives a webhook app over HTTP the
//! way Twilio does, so IVR flows can be tested end to end without a phone.
//!
//! It sends a signed initial POST to the voice URL, then follows the TwiML it
//! gets back: `<Say>`/`<Play>`/`<Pause>` are noted; `<Gather>` consumes the next
//! scripted input (digits, speech or a timeout) and posts to its action;
//! `<Redirect>` is followed; `<Dial>` resolves by the next scripted
//! [`DialOutcome`] and posts `DialCallStatus`/`DialCallDuration` to its action;
//! `<Record>` yields a `RecordingUrl`; `<Hangup>`, `<Reject>` or the end of the
//! document end the call; a final status callback carries `CallDuration`.
//!
//! Relative URLs resolve against the current document's URL, as Twilio does; a
//! `<Gather>` or `<Record>` without `action` posts to the current URL. Time is
//! virtual: a Dial answered after 5 s lasting 2 minutes adds 125 s to the call's
//! clock without sleeping.
//!
//! Hostile TwiML cannot hang or crash it: the virtual clock saturates instead of
//! overflowing (`loop`, `length`, `timeout`, `maxLength` of any size), a call stops
//! with an error after [`Simulator::max_requests`] webhook requests (redirect
//! loops) or [`Simulator::max_steps`] verbs, response bodies over
//! [`Simulator::max_response_bytes`] are refused, and the TwiML parser refuses
//! documents nested deeper than [`MAX_DEPTH`](crate::twiml::parse::MAX_DEPTH).
//!
//! ```no_run
//! # async fn demo() -> Result<(), callbid_twilio::sim::SimError> {
//! use callbid_twilio::sim::{CallScript, DialOutcome, Simulator};
//!
//! // An IVR running locally, verifying signatures made with "auth-token".
//! let sim = Simulator::new("http://127.0.0.1:3000", "auth-token")?.status_callback("/status");
//! let transcript = sim
//!     .run(
//!         CallScript::new("+15125550000", "+18005551212")
//!             .press("78701") // ZIP at the first <Gather>
//!             .dial(DialOutcome::answered(5, 120)), // the buyer answers after 5 s, talks 2 min
//!     )
//!     .await?;
//! println!("{}", transcript.render());
//! # Ok(()) }
//! ```

use crate::signature::{RequestValidator, SIGNATURE_HEADER};
use crate::twiml::parse::{parse, Element, TwimlParseError};
use crate::webhook::{CallStatus, DialCallStatus};
use std::collections::VecDeque;
use std::time::Duration;
use url::Url;

/// Why a simulation stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A URL (base, path or action) is invalid.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidUrl {
        /// Which setting or attribute.
        field: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The app could not be reached.
    #[error("simulated Twilio request {method} {url} failed: {source}")]
    Transport {
        /// Method used.
        method: &'static str,
        /// URL requested.
        url: String,
        /// Underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The app answered a webhook with a non-2xx status.
    #[error("webhook {method} {url} answered HTTP {status}: {body}")]
    Http {
        /// Method used.
        method: &'static str,
        /// URL requested.
        url: String,
        /// Status received.
        status: u16,
        /// Body received.
        body: String,
    },
    /// The app answered with something that is not TwiML.
    #[error("webhook {url} returned invalid TwiML: {source}")]
    Twiml {
        /// URL requested.
        url: String,
        /// Parse error.
        #[source]
        source: TwimlParseError,
    },
    /// The script ran out of dial outcomes at a `<Dial>`.
    #[error("call script has no dial outcome left for <Dial> to `{target}`")]
    NoDialOutcome {
        /// What the Dial was calling.
        target: String,
    },
    /// More webhook requests than the configured limit (a redirect loop?).
    #[error("more than {limit} webhook requests in one call (loop?)")]
    TooManyRequests {
        /// The limit.
        limit: usize,
    },
    /// More TwiML verbs executed than [`Simulator::max_steps`] in one call.
    #[error("more than {limit} TwiML verbs executed in one call (max_steps)")]
    TooManySteps {
        /// The limit.
        limit: usize,
    },
    /// A webhook response body went over [`Simulator::max_response_bytes`].
    #[error("webhook {url} answered with a body over the {limit}-byte limit (max_response_bytes)")]
    ResponseTooLarge {
        /// URL requested.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
}

/// What the caller does at a `<Gather>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallerInput {
    /// Presses these keys (posted as `Digits`).
    Digits(String),
    /// Says this (posted as `SpeechResult`, `Confidence=0.9`).
    Speech(String),
    /// Stays silent until the Gather times out.
    Silence,
}

/// How a `<Dial>` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialOutcome {
    /// Answered after `after`; the bridged call lasts `duration`.
    Answered {
        /// Ringing time before answer.
        after: Duration,
        /// Talk time.
        duration: Duration,
    },
    /// The callee is busy.
    Busy,
    /// Nobody answers before the Dial's timeout.
    NoAnswer,
    /// The call cannot be placed.
    Failed,
}

impl DialOutcome {
    /// Answered after `after_secs`, lasting `duration_secs`.
    pub fn answered(after_secs: u64, duration_secs: u64) -> Self {
        DialOutcome::Answered {
            after: Duration::from_secs(after_secs),
            duration: Duration::from_secs(duration_secs),
        }
    }
}

/// How one leg of a multi-leg `<Dial>` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegAnswer {
    /// A person answers after this long and runs the whisper with their scripted input.
    After(Duration),
    /// Voicemail picks up after this long: it hears the whisper but never presses a key.
    Voicemail(Duration),
    /// Rings until the Dial's `timeout`.
    NoAnswer,
    /// Busy at once.
    Busy,
    /// Cannot be placed.
    Failed,
}

/// One leg (`<Number>`, `<Sip>` or `<Client>`) of a multi-leg `<Dial>`: when it answers,
/// and what its person presses at the Gathers of the leg's whisper (`url`) TwiML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialLeg {
    answer: LegAnswer,
    inputs: VecDeque<CallerInput>,
    talk: Duration,
}

impl DialLeg {
    fn with(answer: LegAnswer) -> Self {
        DialLeg {
            answer,
            inputs: VecDeque::new(),
            talk: Duration::from_secs(60),
        }
    }
    /// A person answers after `secs` seconds.
    pub fn answers_after(secs: u64) -> Self {
        DialLeg::with(LegAnswer::After(Duration::from_secs(secs)))
    }
    /// A person answers after this long (sub-second delays for benches).
    pub fn answers_after_duration(after: Duration) -> Self {
        DialLeg::with(LegAnswer::After(after))
    }
    /// Voicemail answers after `secs` seconds (never presses a key).
    pub fn voicemail_after(secs: u64) -> Self {
        DialLeg::with(LegAnswer::Voicemail(Duration::from_secs(secs)))
    }
    /// Nobody answers.
    pub fn no_answer() -> Self {
        DialLeg::with(LegAnswer::NoAnswer)
    }
    /// The line is busy.
    pub fn busy() -> Self {
        DialLeg::with(LegAnswer::Busy)
    }
    /// The leg cannot be placed.
    pub fn failed() -> Self {
        DialLeg::with(LegAnswer::Failed)
    }
    /// At the leg's next whisper Gather, press `digits`.
    #[must_use]
    pub fn press(mut self, digits: impl Into<String>) -> Self {
        self.inputs.push_back(CallerInput::Digits(digits.into()));
        self
    }
    /// At the leg's next whisper Gather, stay silent (timeout).
    #[must_use]
    pub fn stay_silent(mut self) -> Self {
        self.inputs.push_back(CallerInput::Silence);
        self
    }
    /// Talk time once bridged (default 60 s).
    #[must_use]
    pub fn talk_for(mut self, secs: u64) -> Self {
        self.talk = Duration::from_secs(secs);
        self
    }
    /// How the leg answers.
    pub fn answer(&self) -> LegAnswer {
        self.answer
    }
}

/// The legs of one multi-leg `<Dial>`, matched to its nouns in order (nouns without a
/// scripted leg ring unanswered), and when the caller gives up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialLegs {
    legs: Vec<DialLeg>,
    caller_hangs_up_after: Option<Duration>,
}

impl DialLegs {
    /// These legs, in the order of the Dial's nouns.
    pub fn new(legs: impl IntoIterator<Item = DialLeg>) -> Self {
        DialLegs {
            legs: legs.into_iter().collect(),
            caller_hangs_up_after: None,
        }
    }
    /// The caller hangs up `secs` seconds into the Dial if nobody is bridged by then.
    #[must_use]
    pub fn caller_hangs_up_after(mut self, secs: u64) -> Self {
        self.caller_hangs_up_after = Some(Duration::from_secs(secs));
        self
    }
    /// The caller hangs up this long into the Dial if nobody is bridged by then.
    #[must_use]
    pub fn caller_hangs_up_after_duration(mut self, d: Duration) -> Self {
        self.caller_hangs_up_after = Some(d);
        self
    }
}

/// What the script does at one `<Dial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DialPlan {
    Outcome(DialOutcome),
    Legs(DialLegs),
}

/// A scripted caller: who calls whom, and what happens at each Gather, Dial and Record.
#[derive(Debug, Clone, Default)]
pub struct CallScript {
    from: String,
    to: String,
    call_sid: Option<String>,
    inputs: VecDeque<CallerInput>,
    dials: VecDeque<DialPlan>,
    recordings: VecDeque<Duration>,
    extra_params: Vec<(String, String)>,
}

impl CallScript {
    /// A call from `from` to `to` (E.164).
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        CallScript {
            from: from.into(),
            to: to.into(),
            ..Default::default()
        }
    }
    /// Use this CallSid instead of a random one.
    #[must_use]
    pub fn call_sid(mut self, sid: impl Into<String>) -> Self {
        self.call_sid = Some(sid.into());
        self
    }
    /// At the next Gather, press `digits`.
    #[must_use]
    pub fn press(mut self, digits: impl Into<String>) -> Self {
        self.inputs.push_back(CallerInput::Digits(digits.into()));
        self
    }
    /// At the next Gather, say `speech`.
    #[must_use]
    pub fn speak(mut self, speech: impl Into<String>) -> Self {
        self.inputs.push_back(CallerInput::Speech(speech.into()));
        self
    }
    /// At the next Gather, do nothing (timeout).
    #[must_use]
    pub fn stay_silent(mut self) -> Self {
        self.inputs.push_back(CallerInput::Silence);
        self
    }
    /// The next Dial ends like this.
    #[must_use]
    pub fn dial(mut self, outcome: DialOutcome) -> Self {
        self.dials.push_back(DialPlan::Outcome(outcome));
        self
    }
    /// The next Dial rings every noun as its own leg, scripted by `legs`: each leg that
    /// answers runs its whisper (`url`) TwiML, and the first whose whisper completes
    /// without hanging up is bridged (Twilio's semantics); the other legs are cancelled.
    #[must_use]
    pub fn dial_legs(mut self, legs: DialLegs) -> Self {
        self.dials.push_back(DialPlan::Legs(legs));
        self
    }
    /// The next Record captures `secs` seconds (default 5, capped by `maxLength`).
    #[must_use]
    pub fn record_for(mut self, secs: u64) -> Self {
        self.recordings.push_back(Duration::from_secs(secs));
        self
    }
    /// Extra parameter on the initial request (e.g. `FromZip`).
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }
}

/// One thing that happened on the simulated call, at virtual time `at`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SimEvent {
    /// A webhook request the simulator made.
    Request {
        /// `GET` or `POST`.
        method: &'static str,
        /// URL requested (for GET, with the parameters in the query).
        url: String,
        /// Parameters sent.
        params: Vec<(String, String)>,
    },
    /// `<Say>` text and voice.
    Say {
        /// Text spoken.
        text: String,
        /// `voice` attribute.
        voice: Option<String>,
    },
    /// `<Play>` URL (or `digits`).
    Play {
        /// What was played.
        url: String,
    },
    /// `<Pause>`.
    Pause {
        /// Seconds.
        seconds: u64,
    },
    /// The caller's answer to a `<Gather>`.
    Gather {
        /// What the caller did.
        input: CallerInput,
    },
    /// A `<Redirect>` was followed.
    Redirect {
        /// Resolved target.
        url: String,
    },
    /// A `<Dial>` was resolved.
    Dial {
        /// The numbers/SIP URIs/clients dialled, in order.
        targets: Vec<String>,
        /// `DialCallStatus`.
        status: DialCallStatus,
        /// `DialCallDuration` in seconds.
        duration: u64,
    },
    /// A `<Record>` produced a recording.
    Record {
        /// `RecordingUrl`.
        recording_url: String,
        /// Seconds recorded.
        duration: u64,
    },
    /// `<Enqueue>` (the simulated caller hangs up while waiting).
    Enqueue {
        /// Queue name.
        name: String,
    },
    /// `<Leave>`.
    Leave,
    /// A verb the simulator does not model (ignored, as Twilio would error).
    Unsupported {
        /// Element name.
        verb: String,
    },
    /// `<Hangup>`.
    Hangup,
    /// Something that happened on one leg of a multi-leg Dial (its whisper's requests,
    /// `<Say>`s and Gathers), at the leg's virtual time.
    Leg {
        /// The leg's target (number, SIP URI or client identity).
        target: String,
        /// What happened.
        event: Box<SimEvent>,
    },
    /// A leg of a multi-leg Dial answered.
    LegAnswered {
        /// The leg's target.
        target: String,
        /// Whether a voicemail picked up.
        voicemail: bool,
    },
    /// A leg of a multi-leg Dial ended without being bridged.
    LegEnded {
        /// The leg's target.
        target: String,
        /// How.
        end: LegEnd,
    },
    /// The caller was bridged to this leg.
    Bridged {
        /// The leg's target.
        target: String,
    },
    /// The caller hung up during a Dial, before anyone was bridged.
    CallerHungUp,
    /// `<Reject>`.
    Reject {
        /// `reason` attribute.
        reason: String,
    },
    /// The final status callback.
    StatusCallback {
        /// URL posted to.
        url: String,
        /// `CallStatus` sent.
        status: CallStatus,
        /// `CallDuration` sent.
        duration: u64,
    },
}

/// How a leg of a multi-leg Dial ended without being bridged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegEnd {
    /// Rang until the Dial's timeout.
    NoAnswer,
    /// Busy.
    Busy,
    /// Could not be placed.
    Failed,
    /// Its whisper hung up (`<Hangup>`, `<Reject>`).
    HungUp,
    /// Cancelled: another leg was bridged or the caller hung up.
    Cancelled,
}

/// The record of one simulated call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Transcript {
    /// The CallSid used.
    pub call_sid: String,
    /// What happened, with the virtual time of each event.
    pub events: Vec<(Duration, SimEvent)>,
    /// Final call status.
    pub status: CallStatus,
    /// Call duration (virtual).
    pub duration: Duration,
}

impl Transcript {
    /// Every `<Say>` text, in order.
    pub fn said(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                SimEvent::Say { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
    /// The webhook URLs requested, in order (status callback excluded).
    pub fn requested_urls(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                SimEvent::Request { url, .. } => Some(url.as_str()),
                _ => None,
            })
            .collect()
    }
    /// Every resolved Dial: targets, status, duration.
    pub fn dials(&self) -> Vec<(&[String], DialCallStatus, u64)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                SimEvent::Dial {
                    targets,
                    status,
                    duration,
                } => Some((targets.as_slice(), status.clone(), *duration)),
                _ => None,
            })
            .collect()
    }
    /// The target the caller was bridged to by a multi-leg Dial, if any (the last one).
    pub fn bridged(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|(_, e)| match e {
            SimEvent::Bridged { target } => Some(target.as_str()),
            _ => None,
        })
    }
    /// The virtual time of the last bridge of a multi-leg Dial.
    pub fn bridged_at(&self) -> Option<Duration> {
        self.events.iter().rev().find_map(|(at, e)| match e {
            SimEvent::Bridged { .. } => Some(*at),
            _ => None,
        })
    }
    /// What happened on the leg to `target`, in order.
    pub fn leg_events(&self, target: &str) -> Vec<&SimEvent> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                SimEvent::Leg { target: t, event } if t == target => Some(event.as_ref()),
                SimEvent::LegAnswered { target: t, .. }
                | SimEvent::LegEnded { target: t, .. }
                | SimEvent::Bridged { target: t }
                    if t == target =>
                {
                    Some(e)
                }
                _ => None,
            })
            .collect()
    }
    /// A readable one-line-per-event rendering for logs and snapshots.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (at, e) in &self.events {
            out.push_str(&format!("[{:>4}s] {e:?}\n", at.as_secs()));
        }
        out.push_str(&format!(
            "status={} duration={}s\n",
            self.status,
            self.duration.as_secs()
        ));
        out
    }
}

/// Drives a webhook app the way Twilio does. See the module docs.
#[derive(Debug, Clone)]
pub struct Simulator {
    http: reqwest::Client,
    base: Url,
    voice_path: String,
    status_callback: Option<String>,
    account_sid: String,
    validator: RequestValidator,
    max_requests: usize,
    max_steps: usize,
    max_response_bytes: usize,
    say_chars_per_second: u64,
    play_seconds: u64,
}

fn random_sid(prefix: &str) -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    let mut s = String::with_capacity(34);
    s.push_str(prefix);
    for _ in 0..32 {
        let d: u8 = rng.random_range(0..16);
        s.push(char::from_digit(u32::from(d), 16).unwrap_or('0'));
    }
    s
}

impl Simulator {
    /// A simulator for the app at `base_url` whose webhooks are signed with `auth_token`.
    pub fn new(base_url: &str, auth_token: impl AsRef<[u8]>) -> Result<Self, SimError> {
        let base = Url::parse(base_url).map_err(|e| SimError::InvalidUrl {
            field: "base_url",
            value: base_url.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SimError::InvalidUrl {
                field: "base_url",
                value: base_url.to_owned(),
                reason: "must be http or https".into(),
            });
        }
        Ok(Simulator {
            http: reqwest::Client::new(),
            base,
            voice_path: "/voice".into(),
            status_callback: None,
            account_sid: random_sid("AC"),
            validator: RequestValidator::new(auth_token),
            max_requests: 100,
            max_steps: 10_000,
            max_response_bytes: 1 << 20,
            say_chars_per_second: 15,
            play_seconds: 3,
        })
    }
    /// Path (or absolute URL) of the voice webhook (default `/voice`).
    #[must_use]
    pub fn voice_path(mut self, path: impl Into<String>) -> Self {
        self.voice_path = path.into();
        self
    }
    /// Path (or absolute URL) that receives the final status callback (none by default).
    #[must_use]
    pub fn status_callback(mut self, path: impl Into<String>) -> Self {
        self.status_callback = Some(path.into());
        self
    }
    /// AccountSid sent with every request (random by default).
    #[must_use]
    pub fn account_sid(mut self, sid: impl Into<String>) -> Self {
        self.account_sid = sid.into();
        self
    }
    /// Stop after this many webhook requests in one call (default 100).
    #[must_use]
    pub fn max_requests(mut self, n: usize) -> Self {
        self.max_requests = n;
        self
    }
    /// Stop with [`SimError::TooManySteps`] after this many TwiML verbs (nested
    /// ones included) in one call (default 10,000).
    #[must_use]
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }
    /// Refuse webhook response bodies over this many bytes with
    /// [`SimError::ResponseTooLarge`] (default 1 MiB).
    #[must_use]
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }
    /// Virtual speaking rate for `<Say>` (default 15 characters per second).
    #[must_use]
    pub fn say_chars_per_second(mut self, n: u64) -> Self {
        self.say_chars_per_second = n.max(1);
        self
    }
    /// Virtual length of one `<Play>` (default 3 s).
    #[must_use]
    pub fn play_seconds(mut self, n: u64) -> Self {
        self.play_seconds = n;
        self
    }

    fn resolve(&self, current: &Url, target: &str, field: &'static str) -> Result<Url, SimError> {
        current
            .join(target.trim())
            .map_err(|e| SimError::InvalidUrl {
                field,
                value: target.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Runs one call to completion.
    pub async fn run(&self, script: CallScript) -> Result<Transcript, SimError> {
        let mut run = Run {
            sim: self,
            call_sid: script.call_sid.clone().unwrap_or_else(|| random_sid("CA")),
            clock: Duration::ZERO,
            events: Vec::new(),
            requests: 0,
            steps: 0,
            from: script.from.clone(),
            to: script.to.clone(),
            script,
        };
        let status = run.drive().await?;
        let duration = if matches!(status, CallStatus::Completed) {
            run.clock
        } else {
            Duration::ZERO
        };
        if let Some(cb) = &self.status_callback {
            let url = self.resolve(&self.base, cb, "status_callback")?;
            let mut params = run.common_params(status.clone());
            params.push(("CallDuration".into(), duration.as_secs().to_string()));
            params.push(("CallbackSource".into(), "call-progress-events".into()));
            params.push(("SequenceNumber".into(), "0".into()));
            run.post(&url, &params, false).await?;
            run.note(SimEvent::StatusCallback {
                url: url.to_string(),
                status: status.clone(),
                duration: duration.as_secs(),
            });
        }
        Ok(Transcript {
            call_sid: run.call_sid,
            events: run.events,
            status,
            duration,
        })
    }
}

/// State of one simulated call.
struct Run<'a> {
    sim: &'a Simulator,
    call_sid: String,
    clock: Duration,
    events: Vec<(Duration, SimEvent)>,
    requests: usize,
    steps: usize,
    from: String,
    to: String,
    script: CallScript,
}

/// A character count as `u64` (saturating; `usize` is at most 64 bits anyway).
fn chars_u64(s: &str) -> u64 {
    u64::try_from(s.chars().count()).unwrap_or(u64::MAX)
}

/// A numeric attribute; absent or not a `u64` (negative, garbage) gives `default`,
/// and a number too large for `u64` saturates.
fn attr_u64(el: &Element, name: &str, default: u64) -> u64 {
    if let Some(v) = el.attr(name).map(str::trim) {
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return v.parse().unwrap_or(u64::MAX);
        }
    }
    default
}

/// What Twilio posts for keys pressed at a `<Gather>`: input stops at the first
/// `finishOnKey` key (default `#`, which is not included) or after `numDigits`.
fn gathered_digits(gather: &Element, pressed: &str) -> (String, String) {
    let finish = gather.attr("finishOnKey").unwrap_or("#");
    let max = gather
        .attr("numDigits")
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut digits = String::new();
    for c in pressed.chars() {
        if finish.contains(c) {
            return (digits, c.to_string());
        }
        digits.push(c);
        if max.is_some_and(|m| digits.chars().count() >= m) {
            break;
        }
    }
    (digits, String::new())
}

/// Where one leg of a multi-leg Dial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Ringing,
    Whisper,
    Ended(LegEnd),
}

/// A request to send later: its URL, its form parameters, and whether it is a GET.
type PendingRequest = (Url, Vec<(String, String)>, bool);

/// One leg of a multi-leg Dial being simulated.
#[derive(Debug)]
struct LegRun {
    sid: String,
    target: String,
    voicemail: bool,
    get: bool,
    url: Option<Url>,
    state: LegState,
    /// The leg's own virtual clock (when its next step happens).
    at: Duration,
    verbs: VecDeque<Element>,
    doc_url: Option<Url>,
    leg: DialLeg,
    /// A Gather's request, sent at `at` (when the key press or the timeout happens),
    /// so legs' requests reach the server in virtual-time order.
    pending: Option<PendingRequest>,
}

/// What a Dial noun calls: its text, or a nested `<Uri>` / `<Identity>`.
fn noun_target(noun: &Element) -> String {
    let text = noun.trimmed_text();
    if !text.is_empty() {
        return text.to_owned();
    }
    noun.children
        .iter()
        .find(|c| matches!(c.name.as_str(), "Uri" | "Identity"))
        .map(|c| c.trimmed_text().to_owned())
        .unwrap_or_default()
}

fn is_get(el: &Element) -> bool {
    el.attr("method")
        .is_some_and(|m| m.eq_ignore_ascii_case("GET"))
}

impl Run<'_> {
    fn note(&mut self, e: SimEvent) {
        self.events.push((self.clock, e));
    }

    /// Moves the virtual clock on, saturating rather than overflowing.
    fn advance(&mut self, by: Duration) {
        self.clock = self.clock.saturating_add(by);
    }

    /// Counts one executed verb against [`Simulator::max_steps`].
    fn step(&mut self) -> Result<(), SimError> {
        self.steps = self.steps.saturating_add(1);
        if self.steps > self.sim.max_steps {
            return Err(SimError::TooManySteps {
                limit: self.sim.max_steps,
            });
        }
        Ok(())
    }

    fn common_params(&self, status: CallStatus) -> Vec<(String, String)> {
        vec![
            ("AccountSid".into(), self.sim.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("CallSid".into(), self.call_sid.clone()),
            ("CallStatus".into(), status.to_string()),
            ("Called".into(), self.to.clone()),
            ("Caller".into(), self.from.clone()),
            ("Direction".into(), "inbound".into()),
            ("From".into(), self.from.clone()),
            ("To".into(), self.to.clone()),
        ]
    }

    /// Signed webhook request; returns the response body.
    async fn post(
        &mut self,
        url: &Url,
        params: &[(String, String)],
        get: bool,
    ) -> Result<String, SimError> {
        self.requests += 1;
        if self.requests > self.sim.max_requests {
            return Err(SimError::TooManyRequests {
                limit: self.sim.max_requests,
            });
        }
        let (method, req, shown) = if get {
            let mut u = url.clone();
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            let sig = self
                .sim
                .validator
                .compute_signature(u.as_str(), &[] as &[(&str, &str)]);
            (
                "GET",
                self.sim.http.get(u.clone()).header(SIGNATURE_HEADER, sig),
                u.to_string(),
            )
        } else {
            let sig = self.sim.validator.compute_signature(url.as_str(), params);
            let body = serde_urlencoded::to_string(params).unwrap_or_default();
            (
                "POST",
                self.sim
                    .http
                    .post(url.clone())
                    .header(SIGNATURE_HEADER, sig)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
                url.to_string(),
            )
        };
        self.note(SimEvent::Request {
            method,
            url: shown.clone(),
            params: params.to_vec(),
        });
        let resp = req.send().await.map_err(|source| SimError::Transport {
            method,
            url: shown.clone(),
            source,
        })?;
        let status = resp.status();
        let body = self.read_body(resp, method, &shown).await?;
        if !status.is_success() {
            return Err(SimError::Http {
                method,
                url: shown,
                status: status.as_u16(),
                body,
            });
        }
        Ok(body)
    }

    /// Reads a response body chunk by chunk, refusing it past the cap.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        method: &'static str,
        url: &str,
    ) -> Result<String, SimError> {
        let limit = self.sim.max_response_bytes;
        let too_large = || SimError::ResponseTooLarge {
            url: url.to_owned(),
            limit,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|source| SimError::Transport {
            method,
            url: url.to_owned(),
            source,
        })? {
            if chunk.len() > limit.saturating_sub(body.len()) {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn fetch_twiml(
        &mut self,
        url: &Url,
        params: Vec<(String, String)>,
        get: bool,
    ) -> Result<Element, SimError> {
        let body = self.post(url, &params, get).await?;
        parse(&body).map_err(|source| SimError::Twiml {
            url: url.to_string(),
            source,
        })
    }

    fn speak(&mut self, el: &Element) {
        let text = el.trimmed_text().to_owned();
        let loops = attr_u64(el, "loop", 1).max(1);
        let secs = chars_u64(&text)
            .div_ceil(self.sim.say_chars_per_second)
            .saturating_mul(loops);
        self.note(SimEvent::Say {
            text,
            voice: el.attr("voice").map(str::to_owned),
        });
        self.advance(Duration::from_secs(secs));
    }

    fn play(&mut self, el: &Element) {
        let url = match el.attr("digits") {
            Some(d) if el.trimmed_text().is_empty() => format!("digits:{d}"),
            _ => el.trimmed_text().to_owned(),
        };
        let loops = attr_u64(el, "loop", 1).max(1);
        self.note(SimEvent::Play { url });
        self.advance(Duration::from_secs(
            self.sim.play_seconds.saturating_mul(loops),
        ));
    }

    fn pause(&mut self, el: &Element) {
        let seconds = attr_u64(el, "length", 1);
        self.note(SimEvent::Pause { seconds });
        self.advance(Duration::from_secs(seconds));
    }

    /// Follows TwiML until the call ends; returns the final status.
    async fn drive(&mut self) -> Result<CallStatus, SimError> {
        let mut current = self
            .sim
            .resolve(&self.sim.base, &self.sim.voice_path, "voice_path")?;
        let mut params = self.common_params(CallStatus::Ringing);
        params.extend(self.script.extra_params.iter().cloned());
        let mut doc = self.fetch_twiml(&current, params, false).await?;
        'document: loop {
            let verbs = std::mem::take(&mut doc.children);
            for verb in verbs {
                self.step()?;
                match verb.name.as_str() {
                    "Say" => self.speak(&verb),
                    "Play" => self.play(&verb),
                    "Pause" => self.pause(&verb),
                    "Gather" => {
                        for child in &verb.children {
                            self.step()?;
                            match child.name.as_str() {
                                "Say" => self.speak(child),
                                "Play" => self.play(child),
                                "Pause" => self.pause(child),
                                other => self.note(SimEvent::Unsupported {
                                    verb: format!("Gather/{other}"),
                                }),
                            }
                        }
                        let input = self
                            .script
                            .inputs
                            .pop_front()
                            .unwrap_or(CallerInput::Silence);
                        self.note(SimEvent::Gather {
                            input: input.clone(),
                        });
                        let mut params = self.common_params(CallStatus::InProgress);
                        match &input {
                            CallerInput::Digits(d) => {
                                self.advance(Duration::from_secs(chars_u64(d)));
                                let (digits, finished_on) = gathered_digits(&verb, d);
                                params.push(("Digits".into(), digits));
                                params.push(("FinishedOnKey".into(), finished_on));
                            }
                            CallerInput::Speech(s) => {
                                self.advance(Duration::from_secs(
                                    chars_u64(s).div_ceil(self.sim.say_chars_per_second),
                                ));
                                params.push(("SpeechResult".into(), s.clone()));
                                params.push(("Confidence".into(), "0.9".into()));
                            }
                            CallerInput::Silence => {
                                self.advance(Duration::from_secs(attr_u64(&verb, "timeout", 5)));
                                let post_empty = verb
                                    .attr("actionOnEmptyResult")
                                    .is_some_and(|v| v == "true");
                                if !post_empty {
                                    continue; // Twilio falls through to the next verb.
                                }
                            }
                        }
                        let target = match verb.attr("action") {
                            Some(a) => self.sim.resolve(&current, a, "Gather action")?,
                            None => current.clone(),
                        };
                        doc = self.fetch_twiml(&target, params, is_get(&verb)).await?;
                        current = target;
                        continue 'document;
                    }
                    "Redirect" => {
                        let target =
                            self.sim
                                .resolve(&current, verb.trimmed_text(), "Redirect URL")?;
                        self.note(SimEvent::Redirect {
                            url: target.to_string(),
                        });
                        let params = self.common_params(CallStatus::InProgress);
                        doc = self.fetch_twiml(&target, params, is_get(&verb)).await?;
                        current = target;
                        continue 'document;
                    }
                    "Dial" => {
                        let mut targets: Vec<String> = verb
                            .children
                            .iter()
                            .map(|c| c.trimmed_text().to_owned())
                            .collect();
                        if !verb.trimmed_text().is_empty() {
                            targets.insert(0, verb.trimmed_text().to_owned());
                        }
                        let plan = self.script.dials.pop_front().ok_or_else(|| {
                            SimError::NoDialOutcome {
                                target: targets.join(", "),
                            }
                        })?;
                        let ring_limit = Duration::from_secs(attr_u64(&verb, "timeout", 30));
                        let (status, talk) = match plan {
                            DialPlan::Legs(legs) => {
                                match self.ring_legs(&verb, &current, legs, ring_limit).await? {
                                    Some(done) => done,
                                    None => {
                                        self.note(SimEvent::CallerHungUp);
                                        return Ok(CallStatus::Completed);
                                    }
                                }
                            }
                            DialPlan::Outcome(outcome) => match outcome {
                                DialOutcome::Answered { after, duration }
                                    if after <= ring_limit =>
                                {
                                    self.advance(after);
                                    (DialCallStatus::Completed, duration)
                                }
                                DialOutcome::Answered { .. } | DialOutcome::NoAnswer => {
                                    self.advance(ring_limit);
                                    (DialCallStatus::NoAnswer, Duration::ZERO)
                                }
                                DialOutcome::Busy => {
                                    self.advance(Duration::from_secs(2));
                                    (DialCallStatus::Busy, Duration::ZERO)
                                }
                                DialOutcome::Failed => (DialCallStatus::Failed, Duration::ZERO),
                            },
                        };
                        let talk = match verb
                            .attr("timeLimit")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                        {
                            Some(limit) => talk.min(Duration::from_secs(limit)),
                            None => talk,
                        };
                        self.advance(talk);
                        self.note(SimEvent::Dial {
                            targets,
                            status: status.clone(),
                            duration: talk.as_secs(),
                        });
                        if let Some(action) = verb.attr("action") {
                            let target = self.sim.resolve(&current, action, "Dial action")?;
                            let mut params = self.common_params(CallStatus::InProgress);
                            params.push(("DialCallStatus".into(), status.to_string()));
                            params.push(("DialCallSid".into(), random_sid("CA")));
                            params.push(("DialCallDuration".into(), talk.as_secs().to_string()));
                            let recorded = verb
                                .attr("record")
                                .is_some_and(|r| r.starts_with("record-from"));
                            if recorded && status == DialCallStatus::Completed {
                                params.push(("RecordingUrl".into(), self.recording_url()));
                            }
                            doc = self.fetch_twiml(&target, params, is_get(&verb)).await?;
                            current = target;
                            continue 'document;
                        }
                    }
                    "Record" => {
                        let max = Duration::from_secs(attr_u64(&verb, "maxLength", 3600));
                        let length = self
                            .script
                            .recordings
                            .pop_front()
                            .unwrap_or(Duration::from_secs(5))
                            .min(max);
                        self.advance(length);
                        let recording_url = self.recording_url();
                        self.note(SimEvent::Record {
                            recording_url: recording_url.clone(),
                            duration: length.as_secs(),
                        });
                        let target = match verb.attr("action") {
                            Some(a) => self.sim.resolve(&current, a, "Record action")?,
                            None => current.clone(),
                        };
                        let mut params = self.common_params(CallStatus::InProgress);
                        params.push(("RecordingUrl".into(), recording_url));
                        params.push(("RecordingSid".into(), random_sid("RE")));
                        params.push(("RecordingDuration".into(), length.as_secs().to_string()));
                        params.push(("Digits".into(), "hangup".into()));
                        doc = self.fetch_twiml(&target, params, is_get(&verb)).await?;
                        current = target;
                        continue 'document;
                    }
                    "Hangup" => {
                        self.note(SimEvent::Hangup);
                        return Ok(CallStatus::Completed);
                    }
                    "Reject" => {
                        let reason = verb.attr("reason").unwrap_or("rejected").to_owned();
                        let status = if reason == "busy" {
                            CallStatus::Busy
                        } else {
                            CallStatus::NoAnswer
                        };
                        self.note(SimEvent::Reject { reason });
                        return Ok(status);
                    }
                    "Enqueue" => {
                        self.note(SimEvent::Enqueue {
                            name: verb.trimmed_text().to_owned(),
                        });
                        return Ok(CallStatus::Completed);
                    }
                    "Leave" => self.note(SimEvent::Leave),
                    other => self.note(SimEvent::Unsupported {
                        verb: other.to_owned(),
                    }),
                }
            }
            // The document ran out of verbs: Twilio hangs up.
            return Ok(CallStatus::Completed);
        }
    }

    /// Params of a request made on a dialled leg (the whisper).
    fn leg_params(&self, leg: &LegRun) -> Vec<(String, String)> {
        vec![
            ("AccountSid".into(), self.sim.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("CallSid".into(), leg.sid.clone()),
            ("ParentCallSid".into(), self.call_sid.clone()),
            ("CallStatus".into(), CallStatus::InProgress.to_string()),
            ("Called".into(), leg.target.clone()),
            ("Caller".into(), self.from.clone()),
            ("Direction".into(), "outbound-dial".into()),
            ("From".into(), self.from.clone()),
            ("To".into(), leg.target.clone()),
        ]
    }

    /// Rings every noun of `dial` at once, runs each answered leg's whisper in virtual
    /// time order, and bridges the first whose whisper completes without hanging up.
    /// `None` when the caller hung up first; otherwise the Dial's status and talk time.
    async fn ring_legs(
        &mut self,
        dial: &Element,
        current: &Url,
        script: DialLegs,
        ring_limit: Duration,
    ) -> Result<Option<(DialCallStatus, Duration)>, SimError> {
        let start = self.clock;
        let mark = self.events.len();
        let mut scripted = script.legs.into_iter();
        let mut legs: Vec<LegRun> = Vec::new();
        for noun in &dial.children {
            let target = noun_target(noun);
            let leg = scripted.next().unwrap_or_else(DialLeg::no_answer);
            let url = match noun.attr("url") {
                Some(u) if !u.trim().is_empty() => {
                    Some(self.sim.resolve(current, u, "Dial leg url")?)
                }
                _ => None,
            };
            let (state, at) = match leg.answer {
                LegAnswer::After(d) | LegAnswer::Voicemail(d) if d <= ring_limit => {
                    (LegState::Ringing, start.saturating_add(d))
                }
                LegAnswer::After(_) | LegAnswer::Voicemail(_) | LegAnswer::NoAnswer => (
                    LegState::Ended(LegEnd::NoAnswer),
                    start.saturating_add(ring_limit),
                ),
                LegAnswer::Busy => (LegState::Ended(LegEnd::Busy), start),
                LegAnswer::Failed => (LegState::Ended(LegEnd::Failed), start),
            };
            legs.push(LegRun {
                sid: random_sid("CA"),
                target,
                voicemail: matches!(leg.answer, LegAnswer::Voicemail(_)),
                get: is_get(noun),
                url,
                state,
                at,
                verbs: VecDeque::new(),
                doc_url: None,
                leg,
                pending: None,
            });
        }
        for l in &legs {
            if let LegState::Ended(end @ (LegEnd::Busy | LegEnd::Failed)) = l.state {
                self.events.push((
                    l.at,
                    SimEvent::LegEnded {
                        target: l.target.clone(),
                        end,
                    },
                ));
            }
        }
        let hang_up_at = script
            .caller_hangs_up_after
            .map(|d| start.saturating_add(d));
        let mut winner = None;
        let mut caller_gone = false;
        loop {
            let next = legs
                .iter()
                .enumerate()
                .filter(|(_, l)| matches!(l.state, LegState::Ringing | LegState::Whisper))
                .min_by_key(|(i, l)| (l.at, *i))
                .map(|(i, l)| (i, l.at));
            let Some((i, at)) = next else { break };
            if hang_up_at.is_some_and(|h| h <= at) {
                caller_gone = true;
                break;
            }
            if self.step_leg(&mut legs[i]).await? {
                winner = Some(i);
                break;
            }
        }
        // Legs still ringing or whispering are cancelled; unanswered ones rang out.
        let end_at = match (winner, caller_gone) {
            (Some(i), _) => legs[i].at,
            (None, true) => hang_up_at.unwrap_or(self.clock),
            (None, false) => legs.iter().map(|l| l.at).max().unwrap_or(start),
        };
        for (i, l) in legs.iter_mut().enumerate() {
            if Some(i) == winner {
                continue;
            }
            let end = match l.state {
                LegState::Ringing | LegState::Whisper => LegEnd::Cancelled,
                LegState::Ended(LegEnd::NoAnswer) if winner.is_some() || caller_gone => {
                    LegEnd::Cancelled
                }
                LegState::Ended(LegEnd::NoAnswer) => LegEnd::NoAnswer,
                _ => continue,
            };
            l.state = LegState::Ended(end);
            self.events.push((
                end_at,
                SimEvent::LegEnded {
                    target: l.target.clone(),
                    end,
                },
            ));
        }
        self.clock = end_at;
        // Legs were stepped one at a time; their events interleave by virtual time.
        self.events[mark..].sort_by_key(|(at, _)| *at);
        if caller_gone {
            return Ok(None);
        }
        if let Some(i) = winner {
            self.note(SimEvent::Bridged {
                target: legs[i].target.clone(),
            });
            return Ok(Some((DialCallStatus::Completed, legs[i].leg.talk)));
        }
        let all =
            |e: LegEnd| !legs.is_empty() && legs.iter().all(|l| l.state == LegState::Ended(e));
        let status = if all(LegEnd::Busy) {
            DialCallStatus::Busy
        } else if all(LegEnd::Failed) || legs.is_empty() {
            DialCallStatus::Failed
        } else {
            DialCallStatus::NoAnswer
        };
        Ok(Some((status, Duration::ZERO)))
    }

    /// Runs one step of a leg at its own virtual time; `true` when its whisper completed
    /// (the leg is to be bridged). Events noted meanwhile are tagged with the leg.
    async fn step_leg(&mut self, leg: &mut LegRun) -> Result<bool, SimError> {
        let saved = self.clock;
        self.clock = leg.at;
        let mark = self.events.len();
        let done = self.step_leg_inner(leg).await;
        leg.at = self.clock;
        let target = leg.target.clone();
        let tagged: Vec<(Duration, SimEvent)> = self
            .events
            .drain(mark..)
            .map(|(at, e)| match e {
                e @ (SimEvent::LegAnswered { .. } | SimEvent::LegEnded { .. }) => (at, e),
                e => (
                    at,
                    SimEvent::Leg {
                        target: target.clone(),
                        event: Box::new(e),
                    },
                ),
            })
            .collect();
        self.events.extend(tagged);
        self.clock = saved;
        done
    }

    async fn step_leg_inner(&mut self, leg: &mut LegRun) -> Result<bool, SimError> {
        if leg.state == LegState::Ringing {
            self.note(SimEvent::LegAnswered {
                target: leg.target.clone(),
                voicemail: leg.voicemail,
            });
            let Some(url) = leg.url.clone() else {
                return Ok(true); // no whisper: answering bridges
            };
            let params = self.leg_params(leg);
            let doc = self.fetch_twiml(&url, params, leg.get).await?;
            leg.verbs = doc.children.into();
            leg.doc_url = Some(url);
            leg.state = LegState::Whisper;
            return Ok(false);
        }
        if let Some((target, params, get)) = leg.pending.take() {
            let doc = self.fetch_twiml(&target, params, get).await?;
            leg.verbs = doc.children.into();
            leg.doc_url = Some(target);
            return Ok(false);
        }
        let Some(verb) = leg.verbs.pop_front() else {
            return Ok(true); // the whisper ran out of verbs: bridge
        };
        self.step()?;
        let current = leg.doc_url.clone().unwrap_or_else(|| self.sim.base.clone());
        match verb.name.as_str() {
            "Say" => self.speak(&verb),
            "Play" => self.play(&verb),
            "Pause" => self.pause(&verb),
            "Gather" => {
                for child in &verb.children {
                    self.step()?;
                    match child.name.as_str() {
                        "Say" => self.speak(child),
                        "Play" => self.play(child),
                        "Pause" => self.pause(child),
                        other => self.note(SimEvent::Unsupported {
                            verb: format!("Gather/{other}"),
                        }),
                    }
                }
                let input = if leg.voicemail {
                    CallerInput::Silence
                } else {
                    leg.leg.inputs.pop_front().unwrap_or(CallerInput::Silence)
                };
                self.note(SimEvent::Gather {
                    input: input.clone(),
                });
                let mut params = self.leg_params(leg);
                match &input {
                    CallerInput::Digits(d) => {
                        self.advance(Duration::from_secs(chars_u64(d)));
                        let (digits, finished_on) = gathered_digits(&verb, d);
                        params.push(("Digits".into(), digits));
                        params.push(("FinishedOnKey".into(), finished_on));
                    }
                    CallerInput::Speech(sp) => {
                        self.advance(Duration::from_secs(
                            chars_u64(sp).div_ceil(self.sim.say_chars_per_second),
                        ));
                        params.push(("SpeechResult".into(), sp.clone()));
                        params.push(("Confidence".into(), "0.9".into()));
                    }
                    CallerInput::Silence => {
                        self.advance(Duration::from_secs(attr_u64(&verb, "timeout", 5)));
                        if verb.attr("actionOnEmptyResult").is_none_or(|v| v != "true") {
                            return Ok(false);
                        }
                    }
                }
                let target = match verb.attr("action") {
                    Some(a) => self.sim.resolve(&current, a, "Gather action")?,
                    None => current.clone(),
                };
                leg.pending = Some((target, params, is_get(&verb)));
            }
            "Redirect" => {
                let target = self
                    .sim
                    .resolve(&current, verb.trimmed_text(), "Redirect URL")?;
                self.note(SimEvent::Redirect {
                    url: target.to_string(),
                });
                let params = self.leg_params(leg);
                let doc = self.fetch_twiml(&target, params, is_get(&verb)).await?;
                leg.verbs = doc.children.into();
                leg.doc_url = Some(target);
            }
            "Hangup" | "Reject" => {
                self.note(SimEvent::Hangup);
                self.note(SimEvent::LegEnded {
                    target: leg.target.clone(),
                    end: LegEnd::HungUp,
                });
                leg.state = LegState::Ended(LegEnd::HungUp);
            }
            other => self.note(SimEvent::Unsupported {
                verb: other.to_owned(),
            }),
        }
        Ok(false)
    }

    fn recording_url(&self) -> String {
        format!(
            "https://api.twilio.com/2010-04-01/Accounts/{}/Recordings/{}",
            self.sim.account_sid,
            random_sid("RE")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gather(attrs: &[(&str, &str)]) -> Element {
        Element {
            name: "Gather".into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Element::default()
        }
    }

    #[test]
    fn gather_digits_stop_at_finish_key_or_num_digits() {
        assert_eq!(
            gathered_digits(&gather(&[]), "123#45"),
            ("123".into(), "#".into())
        );
        assert_eq!(
            gathered_digits(&gather(&[("numDigits", "2")]), "12345"),
            ("12".into(), String::new())
        );
        assert_eq!(
            gathered_digits(&gather(&[("finishOnKey", "*")]), "12#*9"),
            ("12#".into(), "*".into())
        );
        assert_eq!(
            gathered_digits(&gather(&[("finishOnKey", "")]), "1#"),
            ("1#".into(), String::new())
        );
    }
}

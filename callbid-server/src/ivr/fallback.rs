//! The fallback chain of a call nobody bought (or that failed inside the app): a list
//! of steps tried in order, each rendered as TwiML that never leaves the caller in
//! silence.
//!
//! - `voicemail`: a prompt, then `<Record>`; the recording is posted to
//!   `{prefix}/voicemail?step=N`, which thanks the caller and hangs up (or moves on to
//!   the next step when nothing was recorded).
//! - `in_house`: `<Dial>` the in-house call center; the result is posted to
//!   `{prefix}/next?step=N`, which hangs up after a completed call or moves on.
//! - `message`: `<Say>` the message, then `<Hangup/>` (terminal).
//!
//! Past the last step the caller always hears the closing message and the call hangs
//! up, so a chain without a terminal step still ends cleanly.
//!
//! Shared by the IVR server (`examples/ivr_auction`) and any other server that needs
//! fallback TwiML.

use std::fmt;

use callbid_core::{PhoneNumber, ValidationError};
use callbid_twilio::twiml::{Dial, Number, Record, Say, VoiceResponse};

/// The message of the `message` step unless configured otherwise.
pub const DEFAULT_MESSAGE: &str = "Sorry, we cannot help with your request at this time. Goodbye.";

/// One step of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackStep {
    /// Record a voicemail.
    Voicemail {
        /// What the caller hears before the beep.
        prompt: String,
        /// Longest recording, seconds.
        max_length_secs: u32,
    },
    /// Dial the in-house call center.
    InHouse {
        /// Its number.
        number: PhoneNumber,
        /// Seconds to ring.
        timeout_secs: u32,
    },
    /// Say a message and hang up.
    Message {
        /// The message.
        text: String,
    },
}

impl FallbackStep {
    /// The stored kind (`voicemail`, `in_house`, `message`), as in the call log.
    pub fn kind(&self) -> &'static str {
        match self {
            FallbackStep::Voicemail { .. } => "voicemail",
            FallbackStep::InHouse { .. } => "in_house",
            FallbackStep::Message { .. } => "message",
        }
    }
}

/// The ordered fallback steps plus the voice and URL prefix used to render them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackChain {
    steps: Vec<FallbackStep>,
    message: String,
    voice: String,
    prefix: String,
}

impl fmt::Display for FallbackChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.steps.iter().map(FallbackStep::kind).collect();
        f.write_str(&kinds.join(" → "))
    }
}

impl FallbackChain {
    /// Parses a comma-separated list of steps (`voicemail`, `in-house` / `in_house`,
    /// `message`). `in_house` needs `in_house_number`; `message` uses `message`.
    /// Action URLs are `{prefix}/voicemail` and `{prefix}/next`.
    pub fn parse(
        spec: &str,
        in_house_number: Option<&PhoneNumber>,
        message: &str,
        prefix: &str,
    ) -> Result<FallbackChain, ValidationError> {
        let mut steps = Vec::new();
        for raw in spec.split(',') {
            let name = raw.trim().to_ascii_lowercase().replace('-', "_");
            let step = match name.as_str() {
                "voicemail" => FallbackStep::Voicemail {
                    prompt: "Sorry, no one is available to take your call right now. \
                             Please leave your name, number and a short message after the beep."
                        .to_owned(),
                    max_length_secs: 120,
                },
                "in_house" => match in_house_number {
                    Some(n) => FallbackStep::InHouse {
                        number: n.clone(),
                        timeout_secs: 25,
                    },
                    None => {
                        return Err(ValidationError::new(
                            "fallback",
                            spec,
                            "step `in_house` needs an in-house number (--in-house-number)",
                        ))
                    }
                },
                "message" => FallbackStep::Message {
                    text: message.to_owned(),
                },
                _ => {
                    return Err(ValidationError::new(
                        "fallback",
                        raw.trim(),
                        "unknown step; expected voicemail, in-house or message",
                    ))
                }
            };
            if steps.contains(&step) {
                return Err(ValidationError::new(
                    "fallback",
                    spec,
                    format!("step `{name}` is listed twice"),
                ));
            }
            steps.push(step);
        }
        if message.trim().is_empty() {
            return Err(ValidationError::new(
                "fallback message",
                message,
                "cannot be empty",
            ));
        }
        Ok(FallbackChain {
            steps,
            message: message.to_owned(),
            voice: "Polly.Joanna".to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }

    /// Uses `prefix` for the action URLs instead (e.g. an absolute
    /// `https://ivr.example.com/app/ivr/fallback`, so the chain works behind a proxy that
    /// mounts the app under a path).
    #[must_use]
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[FallbackStep] {
        &self.steps
    }

    /// The step at `index`, if any.
    pub fn step(&self, index: usize) -> Option<&FallbackStep> {
        self.steps.get(index)
    }

    /// The kind logged for entering step `index` (`message` past the end).
    pub fn kind_at(&self, index: usize) -> &'static str {
        self.step(index).map_or("message", FallbackStep::kind)
    }

    /// The voice used for `<Say>`.
    pub fn voice(&self) -> &str {
        &self.voice
    }

    /// A `<Say>` in the chain's voice.
    pub fn say(&self, text: impl Into<String>) -> Say {
        Say::new(text).voice(self.voice.clone())
    }

    /// TwiML for step `index`, optionally preceded by `intro` (e.g. "Sorry, that is not
    /// a valid ZIP code."). Past the last step: the closing message and `<Hangup/>`.
    pub fn twiml(&self, index: usize, intro: Option<&str>) -> VoiceResponse {
        let mut r = VoiceResponse::new();
        if let Some(text) = intro {
            r = r.say(self.say(text));
        }
        match self.step(index) {
            Some(FallbackStep::Voicemail {
                prompt,
                max_length_secs,
            }) => r
                .say(self.say(prompt.clone()))
                .record(
                    Record::new()
                        .action(format!("{}/voicemail?step={index}", self.prefix))
                        .max_length(*max_length_secs)
                        .play_beep(true)
                        .timeout(5u32)
                        .finish_on_key("#"),
                )
                // Reached only if <Record> ends without posting (Twilio then continues).
                .say(self.say(self.message.clone()))
                .hangup(),
            Some(FallbackStep::InHouse {
                number,
                timeout_secs,
            }) => r
                .say(self.say("Please hold while we connect you with our team."))
                .dial(
                    Dial::new()
                        .action(format!("{}/next?step={index}", self.prefix))
                        .timeout(*timeout_secs)
                        .number(Number::new(number.as_str())),
                ),
            Some(FallbackStep::Message { text }) => r.say(self.say(text.clone())).hangup(),
            None => self.terminal_into(r),
        }
    }

    /// The closing message and `<Hangup/>`: what a caller hears when nothing else can run.
    pub fn terminal(&self) -> VoiceResponse {
        self.terminal_into(VoiceResponse::new())
    }

    fn terminal_into(&self, r: VoiceResponse) -> VoiceResponse {
        r.say(self.say(self.message.clone())).hangup()
    }

    /// After a voicemail: thanks and goodbye.
    pub fn voicemail_thanks(&self) -> VoiceResponse {
        VoiceResponse::new()
            .say(self.say("Thank you. We received your message and will call you back. Goodbye."))
            .hangup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_each_step() {
        let n = PhoneNumber::parse("+15125550000").unwrap();
        let c = FallbackChain::parse(
            "voicemail, in-house ,message",
            Some(&n),
            DEFAULT_MESSAGE,
            "/ivr/fallback/",
        )
        .unwrap();
        assert_eq!(c.to_string(), "voicemail → in_house → message");
        let vm = c.twiml(0, None).to_xml();
        assert!(
            vm.contains(r#"<Record action="/ivr/fallback/voicemail?step=0""#),
            "{vm}"
        );
        let ih = c.twiml(1, Some("Sorry.")).to_xml();
        assert!(ih.contains("<Number>+15125550000</Number>"), "{ih}");
        assert!(ih.contains(r#"action="/ivr/fallback/next?step=1""#), "{ih}");
        assert!(c.twiml(2, None).to_xml().ends_with("<Hangup /></Response>"));
        assert!(c.twiml(9, None).to_xml().ends_with("<Hangup /></Response>"));
    }

    #[test]
    fn refuses_bad_chains_naming_the_value() {
        let e = FallbackChain::parse("voicemail,fax", None, DEFAULT_MESSAGE, "/f").unwrap_err();
        assert!(e.to_string().contains("fax"), "{e}");
        let e = FallbackChain::parse("in-house", None, DEFAULT_MESSAGE, "/f").unwrap_err();
        assert!(e.to_string().contains("in-house number"), "{e}");
        assert!(FallbackChain::parse("message,message", None, DEFAULT_MESSAGE, "/f").is_err());
    }
}

//! Telephony providers that place outbound calls, behind one trait.
//!
//! Each provider (Twilio in `callbid-twilio`, Exotel in `callbid-exotel`) places a call,
//! parses its status callbacks and fetches call details; every answer is normalised into
//! one [`ProviderCall`]: status, who answered, durations per leg, price. Status callbacks
//! can be lost (Exotel retries at most twice), so a campaign reconciles calls left
//! unfinished with [`OutboundProvider::details`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::contact::{AnsweredBy, CallOutcome};
use crate::money::Money;
use crate::phone::PhoneNumber;

/// A call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    /// The callee.
    pub to: PhoneNumber,
    /// The caller ID to present (one of the account's numbers).
    pub caller_id: PhoneNumber,
    /// Where the provider fetches the call flow once the callee answers (TwiML or an
    /// Exotel flow URL).
    pub flow_url: String,
    /// Where the provider posts status callbacks.
    pub status_callback: String,
    /// Ring for at most this many seconds (the TSR asks for at least 15 s).
    pub ring_timeout_secs: u32,
    /// Hang up after this many seconds (Exotel: at most 14,400).
    pub time_limit_secs: Option<u32>,
    /// Ask for answering-machine detection (Twilio `MachineDetection`, asynchronous).
    pub machine_detection: bool,
    /// An opaque tag echoed in callbacks (campaign, contact, attempt).
    pub tag: String,
}

/// A provider's call status, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderCallStatus {
    /// Accepted, not dialed yet.
    Queued,
    /// Ringing.
    Ringing,
    /// Answered, in progress.
    InProgress,
    /// Ended after an answer.
    Completed,
    /// Busy.
    Busy,
    /// Not answered.
    NoAnswer,
    /// Could not be placed.
    Failed,
    /// Cancelled before it was answered.
    Canceled,
}

impl ProviderCallStatus {
    /// Whether the call has ended.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ProviderCallStatus::Queued
                | ProviderCallStatus::Ringing
                | ProviderCallStatus::InProgress
        )
    }

    /// Parses the lowercase status both Twilio and Exotel send (`queued`, `ringing`,
    /// `in-progress`, `completed`, `busy`, `no-answer`, `failed`, `canceled`).
    pub fn parse(value: &str) -> Option<ProviderCallStatus> {
        Some(match value {
            "queued" | "initiated" => ProviderCallStatus::Queued,
            "ringing" => ProviderCallStatus::Ringing,
            "in-progress" | "answered" => ProviderCallStatus::InProgress,
            "completed" => ProviderCallStatus::Completed,
            "busy" => ProviderCallStatus::Busy,
            "no-answer" => ProviderCallStatus::NoAnswer,
            "failed" => ProviderCallStatus::Failed,
            "canceled" | "cancelled" => ProviderCallStatus::Canceled,
            _ => return None,
        })
    }
}

/// One leg's time on the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegDuration {
    /// The leg (1: the callee, 2: the flow or agent).
    pub leg: u32,
    /// Seconds on the call.
    pub seconds: u32,
}

/// What a provider says about a call, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderCall {
    /// The provider's id (`CallSid`).
    pub id: String,
    /// Its status.
    pub status: ProviderCallStatus,
    /// Who answered, when known.
    pub answered_by: Option<AnsweredBy>,
    /// Total duration, seconds (fills in after the call; Exotel may take minutes).
    pub duration_secs: Option<u32>,
    /// Talk time between the parties (Exotel `ConversationDuration`).
    pub conversation_secs: Option<u32>,
    /// Per-leg durations.
    pub legs: Vec<LegDuration>,
    /// The price, when known.
    pub price: Option<Money>,
}

impl ProviderCall {
    /// The campaign outcome of a final call (`None` while it is in flight).
    pub fn outcome(&self) -> Option<CallOutcome> {
        Some(match self.status {
            ProviderCallStatus::Completed => CallOutcome::Completed {
                answered_by: self.answered_by.unwrap_or(AnsweredBy::Unknown),
                talk_seconds: self.conversation_secs.or(self.duration_secs).unwrap_or(0),
            },
            ProviderCallStatus::Busy => CallOutcome::Busy,
            ProviderCallStatus::NoAnswer | ProviderCallStatus::Canceled => CallOutcome::NoAnswer,
            ProviderCallStatus::Failed => CallOutcome::Failed {
                reason: "provider reported failed".into(),
            },
            _ => return None,
        })
    }
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider's rate limit: wait before the next request.
    #[error("{provider}: rate limited (retry after {retry_after_secs:?} s)")]
    RateLimited {
        /// Which provider.
        provider: &'static str,
        /// Its `Retry-After`, when given.
        retry_after_secs: Option<u64>,
    },
    /// The provider refused the request; not retried.
    #[error("{provider}: {operation} refused with HTTP {status}: {message}")]
    Refused {
        /// Which provider.
        provider: &'static str,
        /// What was asked.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The provider's message (its error body).
        message: String,
    },
    /// Network failure or a 5xx: the call may or may not have been placed.
    #[error("{provider}: {operation} failed: {message}")]
    Unavailable {
        /// Which provider.
        provider: &'static str,
        /// What was asked.
        operation: &'static str,
        /// What happened.
        message: String,
    },
    /// An answer or callback that does not parse.
    #[error("{provider}: bad {operation} response: {message}")]
    BadResponse {
        /// Which provider.
        provider: &'static str,
        /// What was asked.
        operation: &'static str,
        /// What is wrong (with the raw body).
        message: String,
    },
}

/// A telephony provider that places outbound calls.
#[async_trait]
pub trait OutboundProvider: Send + Sync + std::fmt::Debug {
    /// A short name (`twilio`, `exotel`).
    fn name(&self) -> &'static str;

    /// Places a call; returns the provider's view right after.
    async fn place(&self, call: &OutboundCall) -> Result<ProviderCall, ProviderError>;

    /// Fetches a call's details (durations per leg, price).
    async fn details(&self, id: &str) -> Result<ProviderCall, ProviderError>;

    /// Parses a status callback's form fields.
    fn parse_status_callback(
        &self,
        fields: &[(String, String)],
    ) -> Result<ProviderCall, ProviderError>;
}

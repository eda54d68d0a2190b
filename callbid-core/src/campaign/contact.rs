//! A campaign contact and its state machine.
//!
//! ```text
//! queued ──launch──▶ dialing ──answered(human|machine)──▶ answered ──ended──▶ outcome
//!    ▲                  │                                                      │
//!    │                  └──────────ended (busy / no-answer / failed)──────────▶│
//!    │                                                                         ▼
//!    └──────── retry-scheduled ◀── retry policy (per outcome, min gap) ──  completed / busy /
//!                                                                         no-answer / failed
//!                                         done ◀── no retries left, or a completed human call
//! suppressed: on the do-not-call list (never dialed)
//! ```
//!
//! Every event names the attempt it belongs to. An event for another attempt, or a second
//! end of the same attempt, changes nothing, so status callbacks that arrive late, twice
//! or out of order cannot move a contact backwards ([`ApplyResult::Ignored`]).

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::phone::PhoneNumber;

/// Who answered a call (Twilio's `AnsweredBy`, Exotel's answered legs), reduced to what a
/// campaign acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// A live person (`human`).
    Human,
    /// An answering machine, voicemail or fax (`machine_start`, `machine_end_*`, `fax`).
    Machine,
    /// Detection did not decide (`unknown`) or was off: treated as a person.
    Unknown,
}

impl AnsweredBy {
    /// Twilio's `AnsweredBy` values
    /// (`human`, `machine_start`, `machine_end_beep`, `machine_end_silence`,
    /// `machine_end_other`, `fax`, `unknown`).
    pub fn from_twilio(value: &str) -> AnsweredBy {
        match value {
            "human" => AnsweredBy::Human,
            "machine_start"
            | "machine_end_beep"
            | "machine_end_silence"
            | "machine_end_other"
            | "fax" => AnsweredBy::Machine,
            _ => AnsweredBy::Unknown,
        }
    }

    /// A person (or possibly one) is on the line.
    pub fn is_live(self) -> bool {
        !matches!(self, AnsweredBy::Machine)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallOutcome {
    /// Answered and connected to the campaign's flow.
    Completed {
        /// Who answered.
        answered_by: AnsweredBy,
        /// Talk time, seconds.
        talk_seconds: u32,
    },
    /// A live answer with no agent within the abandon limit (2 s): the recorded message
    /// played and the call counts as abandoned.
    Abandoned,
    /// Busy signal.
    Busy,
    /// Rang out.
    NoAnswer,
    /// The provider could not place it (invalid number, carrier error…).
    Failed {
        /// The provider's reason.
        reason: String,
    },
}

/// Which retry rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// A live person talked: done.
    Completed,
    /// A machine answered.
    Machine,
    /// Abandoned (no agent in time).
    Abandoned,
    /// Busy.
    Busy,
    /// No answer.
    NoAnswer,
    /// Failed.
    Failed,
}

impl CallOutcome {
    /// The retry rule this outcome falls under.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            CallOutcome::Completed { answered_by, .. } if !answered_by.is_live() => {
                OutcomeKind::Machine
            }
            CallOutcome::Completed { .. } => OutcomeKind::Completed,
            CallOutcome::Abandoned => OutcomeKind::Abandoned,
            CallOutcome::Busy => OutcomeKind::Busy,
            CallOutcome::NoAnswer => OutcomeKind::NoAnswer,
            CallOutcome::Failed { .. } => OutcomeKind::Failed,
        }
    }
}

/// How often and how soon to retry after one kind of outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Retries after this outcome (not counting the first attempt).
    pub times: u32,
    /// Wait before the retry.
    pub after: StdDuration,
}

/// Retries per outcome, and the minimum gap between two calls to one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// After a busy signal (default 3 × 15 min).
    pub busy: Retry,
    /// After no answer (default 3 × 2 h).
    pub no_answer: Retry,
    /// After a failure (default 1 × 30 min).
    pub failed: Retry,
    /// After a machine answered (default 2 × 4 h).
    pub machine: Retry,
    /// After an abandoned call (default 1 × 1 h).
    pub abandoned: Retry,
    /// Never call one contact twice within this gap (default 10 min).
    pub min_gap: StdDuration,
    /// At most this many attempts in all (default 6).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = |mins: u64| StdDuration::from_secs(mins * 60);
        RetryPolicy {
            busy: Retry {
                times: 3,
                after: m(15),
            },
            no_answer: Retry {
                times: 3,
                after: m(120),
            },
            failed: Retry {
                times: 1,
                after: m(30),
            },
            machine: Retry {
                times: 2,
                after: m(240),
            },
            abandoned: Retry {
                times: 1,
                after: m(60),
            },
            min_gap: m(10),
            max_attempts: 6,
        }
    }
}

impl RetryPolicy {
    fn rule(&self, kind: OutcomeKind) -> Option<Retry> {
        match kind {
            OutcomeKind::Completed => None,
            OutcomeKind::Machine => Some(self.machine),
            OutcomeKind::Abandoned => Some(self.abandoned),
            OutcomeKind::Busy => Some(self.busy),
            OutcomeKind::NoAnswer => Some(self.no_answer),
            OutcomeKind::Failed => Some(self.failed),
        }
    }
}

/// Where a contact stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ContactState {
    /// Waiting for its first call.
    Queued,
    /// A call is being placed (attempt `attempt`).
    Dialing {
        /// The attempt number (1-based).
        attempt: u32,
        /// When it was launched.
        since: DateTime<Utc>,
    },
    /// Answered, the call is in progress.
    Answered {
        /// The attempt number.
        attempt: u32,
        /// Who answered.
        by: AnsweredBy,
        /// When.
        at: DateTime<Utc>,
    },
    /// Waiting for a retry at `at`.
    RetryScheduled {
        /// Earliest time of the next attempt.
        at: DateTime<Utc>,
        /// The outcome of the last attempt.
        last: OutcomeKind,
    },
    /// No more calls: a person talked, or the retries ran out.
    Done {
        /// The last attempt's outcome.
        last: OutcomeKind,
    },
    /// On the suppression (do-not-call) list; never dialed.
    Suppressed {
        /// Why (list name, opt-out…).
        reason: String,
    },
}

/// An event in a contact's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ContactEvent {
    /// The pacer launched attempt `attempt`.
    Launched {
        /// The attempt number (the contact's attempts + 1).
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider reported an answer.
    Answered {
        /// The attempt.
        attempt: u32,
        /// Who answered.
        by: AnsweredBy,
        /// When.
        at: DateTime<Utc>,
    },
    /// The attempt ended.
    Ended {
        /// The attempt.
        attempt: u32,
        /// How.
        outcome: CallOutcome,
        /// When.
        at: DateTime<Utc>,
    },
    /// The number was put on the suppression list (opt-out, DNC).
    Suppressed {
        /// Why.
        reason: String,
    },
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyResult {
    /// The state changed.
    Changed,
    /// A duplicate, late or foreign event: nothing changed.
    Ignored,
}

/// One person a campaign calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The number to call (E.164).
    pub number: PhoneNumber,
    /// Where it stands.
    pub state: ContactState,
    /// Attempts launched so far.
    pub attempts: u32,
    /// When the last attempt ended (for the minimum gap).
    pub last_ended: Option<DateTime<Utc>>,
    /// How many attempts ended with each outcome (retries are counted per outcome).
    #[serde(default)]
    pub outcomes: BTreeMap<OutcomeKind, u32>,
    /// Free fields from the upload (name, lead id…), kept for the call flow.
    #[serde(default)]
    pub fields: Vec<(String, String)>,
}

impl Contact {
    /// A queued contact.
    pub fn new(number: PhoneNumber) -> Self {
        Contact {
            number,
            state: ContactState::Queued,
            attempts: 0,
            last_ended: None,
            outcomes: BTreeMap::new(),
            fields: Vec::new(),
        }
    }

    /// Whether the pacer may launch a call to it at `now` (window and suppression are
    /// checked separately, at launch).
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        match &self.state {
            ContactState::Queued => true,
            ContactState::RetryScheduled { at, .. } => *at <= now,
            _ => false,
        }
    }

    /// Whether no more calls will be made.
    pub fn is_final(&self) -> bool {
        matches!(
            self.state,
            ContactState::Done { .. } | ContactState::Suppressed { .. }
        )
    }

    /// The attempt in flight, if any.
    pub fn attempt_in_flight(&self) -> Option<u32> {
        match self.state {
            ContactState::Dialing { attempt, .. } | ContactState::Answered { attempt, .. } => {
                Some(attempt)
            }
            _ => None,
        }
    }

    /// Applies an event under `policy`.
    pub fn apply(&mut self, event: &ContactEvent, policy: &RetryPolicy) -> ApplyResult {
        if matches!(self.state, ContactState::Suppressed { .. }) {
            return ApplyResult::Ignored;
        }
        match event {
            ContactEvent::Suppressed { reason } => {
                self.state = ContactState::Suppressed {
                    reason: reason.clone(),
                };
                ApplyResult::Changed
            }
            ContactEvent::Launched { attempt, at } => self.launch(*attempt, *at),
            ContactEvent::Answered { attempt, by, at } => self.answered(*attempt, *by, *at),
            ContactEvent::Ended {
                attempt,
                outcome,
                at,
            } => self.ended(*attempt, outcome, *at, policy),
        }
    }

    fn launch(&mut self, attempt: u32, at: DateTime<Utc>) -> ApplyResult {
        if attempt != self.attempts + 1 || self.attempt_in_flight().is_some() || self.is_final() {
            return ApplyResult::Ignored;
        }
        self.attempts = attempt;
        self.state = ContactState::Dialing { attempt, since: at };
        ApplyResult::Changed
    }

    fn answered(&mut self, attempt: u32, by: AnsweredBy, at: DateTime<Utc>) -> ApplyResult {
        match self.state {
            ContactState::Dialing { attempt: a, .. } if a == attempt => {
                self.state = ContactState::Answered { attempt, by, at };
                ApplyResult::Changed
            }
            // A later AMD result refines who answered.
            ContactState::Answered {
                attempt: a,
                by: old,
                at: t,
            } if a == attempt && old != by && by != AnsweredBy::Unknown => {
                self.state = ContactState::Answered { attempt, by, at: t };
                ApplyResult::Changed
            }
            _ => ApplyResult::Ignored,
        }
    }

    fn ended(
        &mut self,
        attempt: u32,
        outcome: &CallOutcome,
        at: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> ApplyResult {
        if self.attempt_in_flight() != Some(attempt) {
            return ApplyResult::Ignored;
        }
        let kind = outcome.kind();
        self.last_ended = Some(at);
        *self.outcomes.entry(kind).or_insert(0) += 1;
        self.state = match self.retry_at(kind, at, policy) {
            Some(next) => ContactState::RetryScheduled {
                at: next,
                last: kind,
            },
            None => ContactState::Done { last: kind },
        };
        ApplyResult::Changed
    }

    /// When to retry after an outcome of `kind` that ended at `at`, or `None` when done.
    fn retry_at(
        &self,
        kind: OutcomeKind,
        at: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Option<DateTime<Utc>> {
        let rule = policy.rule(kind)?;
        // The n-th attempt that ended with `kind` is retried while n ≤ times.
        let seen = self.outcomes.get(&kind).copied().unwrap_or(0);
        if self.attempts >= policy.max_attempts || seen > rule.times {
            return None;
        }
        let wait = rule.after.max(policy.min_gap);
        let wait = Duration::from_std(wait).unwrap_or(Duration::days(36_500));
        Some(
            at.checked_add_signed(wait)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        "2026-12-07T15:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(min)
    }

    fn contact() -> Contact {
        Contact::new(PhoneNumber::parse("+15125550123").unwrap())
    }

    #[test]
    fn a_completed_human_call_is_done() {
        let p = RetryPolicy::default();
        let mut c = contact();
        assert!(c.is_due(t(0)));
        assert_eq!(
            c.apply(
                &ContactEvent::Launched {
                    attempt: 1,
                    at: t(0)
                },
                &p
            ),
            ApplyResult::Changed
        );
        assert!(!c.is_due(t(0)));
        c.apply(
            &ContactEvent::Answered {
                attempt: 1,
                by: AnsweredBy::Human,
                at: t(1),
            },
            &p,
        );
        let end = ContactEvent::Ended {
            attempt: 1,
            outcome: CallOutcome::Completed {
                answered_by: AnsweredBy::Human,
                talk_seconds: 95,
            },
            at: t(3),
        };
        assert_eq!(c.apply(&end, &p), ApplyResult::Changed);
        assert_eq!(
            c.state,
            ContactState::Done {
                last: OutcomeKind::Completed
            }
        );
        // A duplicate callback changes nothing.
        assert_eq!(c.apply(&end, &p), ApplyResult::Ignored);
        assert!(c.is_final());
    }

    #[test]
    fn busy_retries_after_the_interval_and_the_min_gap() {
        let p = RetryPolicy {
            busy: Retry {
                times: 2,
                after: StdDuration::from_secs(60),
            },
            min_gap: StdDuration::from_secs(600),
            ..Default::default()
        };
        let mut c = contact();
        c.apply(
            &ContactEvent::Launched {
                attempt: 1,
                at: t(0),
            },
            &p,
        );
        c.apply(
            &ContactEvent::Ended {
                attempt: 1,
                outcome: CallOutcome::Busy,
                at: t(1),
            },
            &p,
        );
        assert_eq!(
            c.state,
            ContactState::RetryScheduled {
                at: t(11),
                last: OutcomeKind::Busy
            }
        );
        assert!(!c.is_due(t(10)));
        assert!(c.is_due(t(11)));
        c.apply(
            &ContactEvent::Launched {
                attempt: 2,
                at: t(11),
            },
            &p,
        );
        c.apply(
            &ContactEvent::Ended {
                attempt: 2,
                outcome: CallOutcome::Busy,
                at: t(12),
            },
            &p,
        );
        c.apply(
            &ContactEvent::Launched {
                attempt: 3,
                at: t(22),
            },
            &p,
        );
        c.apply(
            &ContactEvent::Ended {
                attempt: 3,
                outcome: CallOutcome::Busy,
                at: t(23),
            },
            &p,
        );
        assert_eq!(
            c.state,
            ContactState::Done {
                last: OutcomeKind::Busy
            }
        );
        assert_eq!(c.attempts, 3);
    }

    #[test]
    fn late_and_out_of_order_events_are_ignored() {
        let p = RetryPolicy::default();
        let mut c = contact();
        // An end for an attempt never launched.
        assert_eq!(
            c.apply(
                &ContactEvent::Ended {
                    attempt: 1,
                    outcome: CallOutcome::Busy,
                    at: t(0)
                },
                &p
            ),
            ApplyResult::Ignored
        );
        c.apply(
            &ContactEvent::Launched {
                attempt: 1,
                at: t(0),
            },
            &p,
        );
        // A second launch of the same attempt (a retried request) is a no-op.
        assert_eq!(
            c.apply(
                &ContactEvent::Launched {
                    attempt: 1,
                    at: t(0)
                },
                &p
            ),
            ApplyResult::Ignored
        );
        c.apply(
            &ContactEvent::Ended {
                attempt: 1,
                outcome: CallOutcome::NoAnswer,
                at: t(1),
            },
            &p,
        );
        // The answered callback arrives after the end: ignored.
        assert_eq!(
            c.apply(
                &ContactEvent::Answered {
                    attempt: 1,
                    by: AnsweredBy::Human,
                    at: t(0)
                },
                &p
            ),
            ApplyResult::Ignored
        );
        assert!(matches!(c.state, ContactState::RetryScheduled { .. }));
    }

    #[test]
    fn machine_answers_are_retried_and_amd_refines() {
        let p = RetryPolicy::default();
        let mut c = contact();
        c.apply(
            &ContactEvent::Launched {
                attempt: 1,
                at: t(0),
            },
            &p,
        );
        c.apply(
            &ContactEvent::Answered {
                attempt: 1,
                by: AnsweredBy::Unknown,
                at: t(1),
            },
            &p,
        );
        c.apply(
            &ContactEvent::Answered {
                attempt: 1,
                by: AnsweredBy::Machine,
                at: t(1),
            },
            &p,
        );
        assert!(matches!(
            c.state,
            ContactState::Answered {
                by: AnsweredBy::Machine,
                ..
            }
        ));
        c.apply(
            &ContactEvent::Ended {
                attempt: 1,
                outcome: CallOutcome::Completed {
                    answered_by: AnsweredBy::Machine,
                    talk_seconds: 20,
                },
                at: t(2),
            },
            &p,
        );
        assert!(matches!(
            c.state,
            ContactState::RetryScheduled {
                last: OutcomeKind::Machine,
                ..
            }
        ));
    }

    #[test]
    fn suppression_is_final() {
        let p = RetryPolicy::default();
        let mut c = contact();
        c.apply(
            &ContactEvent::Suppressed {
                reason: "opt-out".into(),
            },
            &p,
        );
        assert!(!c.is_due(t(0)));
        assert_eq!(
            c.apply(
                &ContactEvent::Launched {
                    attempt: 1,
                    at: t(0)
                },
                &p
            ),
            ApplyResult::Ignored
        );
    }

    #[test]
    fn twilio_answered_by_values() {
        assert_eq!(AnsweredBy::from_twilio("human"), AnsweredBy::Human);
        for m in [
            "machine_start",
            "machine_end_beep",
            "machine_end_silence",
            "machine_end_other",
            "fax",
        ] {
            assert_eq!(AnsweredBy::from_twilio(m), AnsweredBy::Machine, "{m}");
        }
        assert_eq!(AnsweredBy::from_twilio("unknown"), AnsweredBy::Unknown);
    }
}

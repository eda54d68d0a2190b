//! Outbound campaigns (seed 004): call a contact list, present a local caller ID, pace by
//! the completion rate and agent availability, and keep the calling rules.
//!
//! A pay-per-call platform uses the same machinery to call leads back and sell the
//! connected call through the auction. The pieces, all pure (no I/O):
//! - [`Campaign`]: its contacts' rules (calling windows, retries, pacing) and what an
//!   answered call does ([`AnsweredFlow`]: the IVR and auction, an offer to an agent pool,
//!   or a recorded message);
//! - [`contact`]: the [`Contact`] state machine, retries per outcome, the minimum gap;
//! - [`window`]: calling windows in the callee's local time, checked at launch;
//! - [`SuppressionList`]: do-not-call numbers, never dialed;
//! - [`caller_id`]: [`CallerIdPool`], local caller ID by area code → state → region
//!   (NANP) or telecom circle (India), least-recently-used rotation, daily limits, learned
//!   answer rates;
//! - [`pacer`]: progressive and predictive pacing under a 30-day abandon ceiling, the
//!   seed's completion-rate pacing and the provider's rate limit;
//! - [`provider`]: [`OutboundProvider`], the one trait Twilio and Exotel implement (place a
//!   call, parse status callbacks, fetch call details), with results normalised into
//!   [`ProviderCall`];
//! - [`store`]: the [`CampaignStore`] trait (contacts claimed atomically, events applied
//!   idempotently), its in-memory implementation and conformance suite;
//! - [`sim`]: a deterministic, seeded campaign simulator that compares pacers.
//!
//! Facts and their sources are in `../shared/docs/DOMAIN.md` ("Outbound campaigns").

pub mod caller_id;
pub mod contact;
pub mod pacer;
pub mod provider;
pub mod runner;
pub mod sim;
pub mod store;
pub mod window;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{CampaignId, ServiceType};
use crate::phone::PhoneNumber;

pub use caller_id::{CallerIdConfig, CallerIdPick, CallerIdPool, MatchLevel, NumberRegion};
pub use contact::{
    AnsweredBy, ApplyResult, CallOutcome, Contact, ContactEvent, ContactState, OutcomeKind, Retry,
    RetryPolicy,
};
pub use pacer::{
    AbandonLedger, CompletionThrottle, Pacer, PacerConfig, PacerInput, PacingDecision, PacingMode,
    RateWindow, ABANDON_AFTER,
};
pub use provider::{
    LegDuration, OutboundCall, OutboundProvider, ProviderCall, ProviderCallStatus, ProviderError,
};
pub use runner::{CallbackUrls, CampaignRunner, TickReport};
pub use store::{CampaignStore, ClaimedContact, MemoryCampaignStore};
pub use window::{CallingRules, LocalWindow, WeeklyWindow, WindowVerdict};

/// What happens when a person answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AnsweredFlow {
    /// The IVR qualifies the call and the auction sells it.
    IvrAuction {
        /// The service to sell when the contact list says none.
        default_service: Option<ServiceType>,
    },
    /// Offered to an agent pool (first explicit accept wins).
    AgentPool {
        /// The pool's name.
        pool: String,
    },
    /// A recorded message (a URL to `<Play>` or text to `<Say>`).
    Message {
        /// What to play or say.
        text_or_url: String,
    },
}

/// A campaign's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Created, not started.
    Draft,
    /// Dialing.
    Running,
    /// Paused by the operator (calls in flight finish).
    Paused,
    /// Stopped for good.
    Stopped,
    /// Every contact is final.
    Completed,
}

impl CampaignStatus {
    /// Whether `self → next` is allowed: draft → running; running ⇄ paused; running or
    /// paused → stopped or completed.
    pub fn can_become(self, next: CampaignStatus) -> bool {
        use CampaignStatus::*;
        matches!(
            (self, next),
            (Draft, Running)
                | (Draft, Stopped)
                | (Running, Paused)
                | (Paused, Running)
                | (Running, Stopped)
                | (Paused, Stopped)
                | (Running, Completed)
        )
    }
}

/// An outbound campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// Its id.
    pub id: CampaignId,
    /// A display name.
    pub name: String,
    /// Its lifecycle state.
    pub status: CampaignStatus,
    /// What an answered call does.
    pub flow: AnsweredFlow,
    /// Calling windows.
    pub rules: CallingRules,
    /// Retries.
    pub retry: RetryPolicy,
    /// Pacing.
    pub pacer: PacerConfig,
    /// Don't dial before this instant.
    pub starts_at: Option<DateTime<Utc>>,
    /// Don't dial after this instant.
    pub ends_at: Option<DateTime<Utc>>,
}

impl Campaign {
    /// A draft campaign with the default rules, retries and pacing.
    pub fn new(id: CampaignId, name: impl Into<String>, flow: AnsweredFlow) -> Self {
        Campaign {
            id,
            name: name.into(),
            status: CampaignStatus::Draft,
            flow,
            rules: CallingRules::default(),
            retry: RetryPolicy::default(),
            pacer: PacerConfig::default(),
            starts_at: None,
            ends_at: None,
        }
    }

    /// Whether the schedule allows dialing at `now`.
    pub fn in_schedule(&self, now: DateTime<Utc>) -> bool {
        self.status == CampaignStatus::Running
            && self.starts_at.is_none_or(|s| now >= s)
            && self.ends_at.is_none_or(|e| now < e)
    }
}

/// Numbers never to call, with why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressionList {
    numbers: BTreeMap<String, String>,
}

impl SuppressionList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a number (DNC registry, opt-out…).
    pub fn add(&mut self, number: &PhoneNumber, reason: impl Into<String>) {
        self.numbers
            .insert(number.as_str().to_string(), reason.into());
    }

    /// Why `number` is suppressed, if it is.
    pub fn reason(&self, number: &PhoneNumber) -> Option<&str> {
        self.numbers.get(number.as_str()).map(String::as_str)
    }

    /// How many numbers.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

/// Why a contact is not called now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exclusion {
    /// On the suppression list.
    Suppressed(String),
    /// Outside its calling window (or no zone known).
    Window(WindowVerdict),
}

/// Checks a contact at the moment of launch: suppression first, then the window in the
/// callee's local time at `now`.
pub fn launch_check(
    number: &PhoneNumber,
    rules: &CallingRules,
    suppression: &SuppressionList,
    now: DateTime<Utc>,
) -> Result<(), Exclusion> {
    if let Some(reason) = suppression.reason(number) {
        return Err(Exclusion::Suppressed(reason.to_string()));
    }
    match rules.check(number, now) {
        WindowVerdict::Open => Ok(()),
        other => Err(Exclusion::Window(other)),
    }
}

/// The pre-launch preview: how many contacts the suppression list and the calling
/// windows exclude at `at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPreview {
    /// Contacts that could be called at `at`.
    pub callable: usize,
    /// Excluded by the suppression list.
    pub suppressed: usize,
    /// Outside their window at `at`.
    pub outside_window: usize,
    /// No rule or zone known for the number.
    pub unknown_zone: usize,
}

/// Counts, for `numbers`, who would be excluded at `at` and why.
pub fn preview<'a>(
    numbers: impl IntoIterator<Item = &'a PhoneNumber>,
    rules: &CallingRules,
    suppression: &SuppressionList,
    at: DateTime<Utc>,
) -> LaunchPreview {
    let mut p = LaunchPreview::default();
    for n in numbers {
        match launch_check(n, rules, suppression, at) {
            Ok(()) => p.callable += 1,
            Err(Exclusion::Suppressed(_)) => p.suppressed += 1,
            Err(Exclusion::Window(WindowVerdict::Unknown { .. })) => p.unknown_zone += 1,
            Err(Exclusion::Window(_)) => p.outside_window += 1,
        }
    }
    p
}

/// A contact-list row that failed validation: which row (1-based, after the header) and
/// which column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row}, column {column:?}: {error}")]
#[non_exhaustive]
pub struct RowError {
    /// The row number.
    pub row: usize,
    /// The column name.
    pub column: String,
    /// What is wrong.
    pub error: ValidationError,
}

/// Builds contacts from rows of `(column, value)` pairs (a parsed CSV). The number is in
/// `number_column` (E.164, or 10-digit NANP); other columns are kept as the contact's
/// fields. Every bad row is reported, none is dropped silently; duplicates of a number
/// already seen are reported too.
pub fn contacts_from_rows(
    rows: &[Vec<(String, String)>],
    number_column: &str,
) -> (Vec<Contact>, Vec<RowError>) {
    let mut contacts = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let row_no = i + 1;
        let value = row
            .iter()
            .find(|(k, _)| k == number_column)
            .map(|(_, v)| v.trim());
        let parsed = match value {
            None | Some("") => Err(ValidationError::new("number", "", "missing")),
            Some(v) if v.starts_with('+') => PhoneNumber::parse_field("number", v),
            Some(v) => PhoneNumber::from_nanp_field("number", v),
        };
        match parsed {
            Ok(n) if !seen.insert(n.as_str().to_string()) => errors.push(RowError {
                row: row_no,
                column: number_column.to_string(),
                error: ValidationError::new("number", n.as_str(), "duplicate of an earlier row"),
            }),
            Ok(n) => {
                let mut c = Contact::new(n);
                c.fields = row
                    .iter()
                    .filter(|(k, _)| k != number_column)
                    .cloned()
                    .collect();
                contacts.push(c);
            }
            Err(error) => errors.push(RowError {
                row: row_no,
                column: number_column.to_string(),
                error,
            }),
        }
    }
    (contacts, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    #[test]
    fn suppressed_numbers_are_never_launched() {
        let mut dnc = SuppressionList::new();
        dnc.add(&n("+15125550123"), "opt-out");
        let at: DateTime<Utc> = "2026-12-07T17:00:00Z".parse().unwrap();
        let rules = CallingRules::default();
        assert_eq!(
            launch_check(&n("+15125550123"), &rules, &dnc, at),
            Err(Exclusion::Suppressed("opt-out".into()))
        );
        assert_eq!(launch_check(&n("+15125550124"), &rules, &dnc, at), Ok(()));
    }

    #[test]
    fn preview_counts_exclusions() {
        let mut dnc = SuppressionList::new();
        dnc.add(&n("+15125550123"), "dnc");
        // 14:30 UTC: 08:30 CST (Texas: closed until 09:00), 09:30 EST (NY open).
        let at: DateTime<Utc> = "2026-12-07T14:30:00Z".parse().unwrap();
        let numbers = [
            n("+15125550123"),
            n("+15125550124"),
            n("+12125550123"),
            n("+14165550123"),
        ];
        let p = preview(numbers.iter(), &CallingRules::default(), &dnc, at);
        assert_eq!(
            p,
            LaunchPreview {
                callable: 1,
                suppressed: 1,
                outside_window: 1,
                unknown_zone: 1
            }
        );
    }

    #[test]
    fn rows_report_row_and_column() {
        let row = |v: &str| {
            vec![
                ("phone".to_string(), v.to_string()),
                ("name".into(), "Ann".into()),
            ]
        };
        let rows = vec![
            row("+15125550123"),
            row("512555"),
            row(""),
            row("(512) 555-0123"),
            row("2125550199"),
        ];
        let (contacts, errors) = contacts_from_rows(&rows, "phone");
        assert_eq!(contacts.len(), 2);
        assert_eq!(contacts[1].number.as_str(), "+12125550199");
        assert_eq!(
            contacts[0].fields,
            vec![("name".to_string(), "Ann".to_string())]
        );
        let rows_in_error: Vec<usize> = errors.iter().map(|e| e.row).collect();
        assert_eq!(rows_in_error, [2, 3, 4]);
        assert!(errors[2].to_string().contains("duplicate"), "{}", errors[2]);
        assert!(
            errors[0].to_string().contains("row 2, column \"phone\""),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn status_transitions() {
        use CampaignStatus::*;
        assert!(Draft.can_become(Running));
        assert!(Running.can_become(Paused) && Paused.can_become(Running));
        assert!(!Stopped.can_become(Running));
        assert!(!Completed.can_become(Running));
    }
}

//! Campaign state behind a trait, so several instances can share one campaign.
//!
//! The rule that makes sharing safe: a contact is **claimed** (moved to `dialing` with
//! its next attempt number) atomically, before any call is placed, by exactly one
//! instance. Events are applied through [`Contact::apply`], which ignores duplicates and
//! events of other attempts, so status callbacks that arrive twice, late, or at another
//! instance change nothing. After a restart the store still holds every contact's state:
//! none is called twice and none is skipped. A contact whose call was placed but whose
//! callbacks never came stays `dialing`; [`CampaignStore::stale`] lists those for
//! reconciliation with the provider's call details.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::contact::{ApplyResult, Contact, ContactEvent, ContactState};
use super::{Campaign, CampaignStatus};
use crate::error::{StateError, ValidationError};
use crate::ids::CampaignId;
use crate::phone::PhoneNumber;

/// A contact claimed for a call: place attempt `attempt` to `number`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedContact {
    /// Who to call.
    pub number: PhoneNumber,
    /// The attempt number the call is for (quote it in the status callback URL).
    pub attempt: u32,
}

/// The caller's launch check, run on each due contact inside the claim (calling window
/// and suppression at the moment of launch).
pub type LaunchFilter<'f> = dyn for<'c> Fn(&'c Contact) -> bool + Send + Sync + 'f;

/// Counts of contacts by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignProgress {
    /// Not yet called.
    pub queued: u64,
    /// A call in flight.
    pub dialing: u64,
    /// Waiting for a retry.
    pub retry_scheduled: u64,
    /// No more calls.
    pub done: u64,
    /// On the suppression list.
    pub suppressed: u64,
    /// Attempts launched in all.
    pub attempts: u64,
}

/// The state of outbound campaigns. Implementations: [`MemoryCampaignStore`] here;
/// conformance: [`conformance::run`].
#[async_trait]
pub trait CampaignStore: Send + Sync + std::fmt::Debug {
    /// Creates a campaign with its contacts. Errors (`Invalid`, field `campaign`) if the
    /// id exists.
    async fn create(&self, campaign: &Campaign, contacts: &[Contact]) -> Result<(), StateError>;

    /// The campaign, if it exists.
    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StateError>;

    /// Moves the campaign to `status` if the transition is allowed; returns whether it
    /// changed.
    async fn set_status(&self, id: &CampaignId, status: CampaignStatus)
        -> Result<bool, StateError>;

    /// Atomically claims up to `limit` contacts that are due at `now` and pass `accept`
    /// (the caller's launch check: window and suppression), in queue order, and marks
    /// them dialing. No contact is ever claimed by two callers. Nothing is claimed unless
    /// the campaign is running.
    async fn claim_due(
        &self,
        id: &CampaignId,
        now: DateTime<Utc>,
        limit: usize,
        accept: &LaunchFilter<'_>,
    ) -> Result<Vec<ClaimedContact>, StateError>;

    /// Applies an event to a contact (idempotent).
    async fn apply(
        &self,
        id: &CampaignId,
        number: &PhoneNumber,
        event: &ContactEvent,
    ) -> Result<ApplyResult, StateError>;

    /// One contact.
    async fn contact(
        &self,
        id: &CampaignId,
        number: &PhoneNumber,
    ) -> Result<Option<Contact>, StateError>;

    /// Counts by state.
    async fn progress(&self, id: &CampaignId) -> Result<CampaignProgress, StateError>;

    /// Every campaign, by id.
    async fn campaigns(&self) -> Result<Vec<Campaign>, StateError>;

    /// Every contact of a campaign, in queue order (`Invalid`, field `campaign`, if it
    /// does not exist).
    async fn contacts(&self, id: &CampaignId) -> Result<Vec<Contact>, StateError>;

    /// Contacts dialing since before `before` (callbacks lost: reconcile them).
    async fn stale(
        &self,
        id: &CampaignId,
        before: DateTime<Utc>,
    ) -> Result<Vec<Contact>, StateError>;
}

#[derive(Debug, Default)]
struct Entry {
    campaign: Option<Campaign>,
    order: Vec<String>,
    contacts: BTreeMap<String, Contact>,
}

/// The in-memory [`CampaignStore`] (one process).
#[derive(Debug, Default)]
pub struct MemoryCampaignStore {
    inner: Mutex<BTreeMap<String, Entry>>,
}

impl MemoryCampaignStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Entry>) -> T) -> Result<T, StateError> {
        let mut g = self.inner.lock().map_err(|_| StateError::Unavailable {
            store: "memory",
            operation: "campaign",
            message: "lock poisoned".into(),
        })?;
        Ok(f(&mut g))
    }
}

fn unknown(id: &CampaignId) -> StateError {
    StateError::Invalid(ValidationError::new(
        "campaign",
        id.as_str(),
        "no such campaign",
    ))
}

#[async_trait]
impl CampaignStore for MemoryCampaignStore {
    async fn create(&self, campaign: &Campaign, contacts: &[Contact]) -> Result<(), StateError> {
        self.with(|m| {
            if m.contains_key(campaign.id.as_str()) {
                return Err(StateError::Invalid(ValidationError::new(
                    "campaign",
                    campaign.id.as_str(),
                    "already exists",
                )));
            }
            let mut e = Entry {
                campaign: Some(campaign.clone()),
                ..Entry::default()
            };
            for c in contacts {
                let key = c.number.as_str().to_string();
                if e.contacts.insert(key.clone(), c.clone()).is_none() {
                    e.order.push(key);
                }
            }
            m.insert(campaign.id.as_str().to_string(), e);
            Ok(())
        })?
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StateError> {
        self.with(|m| m.get(id.as_str()).and_then(|e| e.campaign.clone()))
    }

    async fn set_status(
        &self,
        id: &CampaignId,
        status: CampaignStatus,
    ) -> Result<bool, StateError> {
        self.with(|m| {
            let c = m
                .get_mut(id.as_str())
                .and_then(|e| e.campaign.as_mut())
                .ok_or_else(|| unknown(id))?;
            if c.status.can_become(status) {
                c.status = status;
                Ok(true)
            } else {
                Ok(false)
            }
        })?
    }

    async fn claim_due(
        &self,
        id: &CampaignId,
        now: DateTime<Utc>,
        limit: usize,
        accept: &LaunchFilter<'_>,
    ) -> Result<Vec<ClaimedContact>, StateError> {
        self.with(|m| {
            let e = m.get_mut(id.as_str()).ok_or_else(|| unknown(id))?;
            let Some(campaign) = e.campaign.clone() else {
                return Err(unknown(id));
            };
            if !campaign.in_schedule(now) {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for key in &e.order {
                if out.len() >= limit {
                    break;
                }
                let Some(c) = e.contacts.get_mut(key) else {
                    continue;
                };
                if !c.is_due(now) || !accept(c) {
                    continue;
                }
                let attempt = c.attempts + 1;
                let ev = ContactEvent::Launched { attempt, at: now };
                if c.apply(&ev, &campaign.retry) == ApplyResult::Changed {
                    out.push(ClaimedContact {
                        number: c.number.clone(),
                        attempt,
                    });
                }
            }
            Ok(out)
        })?
    }

    async fn apply(
        &self,
        id: &CampaignId,
        number: &PhoneNumber,
        event: &ContactEvent,
    ) -> Result<ApplyResult, StateError> {
        self.with(|m| {
            let e = m.get_mut(id.as_str()).ok_or_else(|| unknown(id))?;
            let policy = e
                .campaign
                .as_ref()
                .map(|c| c.retry.clone())
                .ok_or_else(|| unknown(id))?;
            let c = e.contacts.get_mut(number.as_str()).ok_or_else(|| {
                StateError::Invalid(ValidationError::new(
                    "number",
                    number.as_str(),
                    "not a contact of this campaign",
                ))
            })?;
            Ok(c.apply(event, &policy))
        })?
    }

    async fn contact(
        &self,
        id: &CampaignId,
        number: &PhoneNumber,
    ) -> Result<Option<Contact>, StateError> {
        self.with(|m| {
            m.get(id.as_str())
                .and_then(|e| e.contacts.get(number.as_str()).cloned())
        })
    }

    async fn progress(&self, id: &CampaignId) -> Result<CampaignProgress, StateError> {
        self.with(|m| {
            let e = m.get(id.as_str()).ok_or_else(|| unknown(id))?;
            Ok(progress_of(e.contacts.values()))
        })?
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, StateError> {
        self.with(|m| m.values().filter_map(|e| e.campaign.clone()).collect())
    }

    async fn contacts(&self, id: &CampaignId) -> Result<Vec<Contact>, StateError> {
        self.with(|m| {
            let e = m.get(id.as_str()).ok_or_else(|| unknown(id))?;
            Ok(e.order
                .iter()
                .filter_map(|k| e.contacts.get(k).cloned())
                .collect())
        })?
    }

    async fn stale(
        &self,
        id: &CampaignId,
        before: DateTime<Utc>,
    ) -> Result<Vec<Contact>, StateError> {
        self.with(|m| {
            let e = m.get(id.as_str()).ok_or_else(|| unknown(id))?;
            Ok(e.contacts
                .values()
                .filter(
                    |c| matches!(c.state, ContactState::Dialing { since, .. } if since < before),
                )
                .cloned()
                .collect())
        })?
    }
}

/// Counts contacts by state (shared by every implementation).
pub fn progress_of<'a>(contacts: impl Iterator<Item = &'a Contact>) -> CampaignProgress {
    let mut p = CampaignProgress::default();
    for c in contacts {
        p.attempts += u64::from(c.attempts);
        match c.state {
            ContactState::Queued => p.queued += 1,
            ContactState::Dialing { .. } | ContactState::Answered { .. } => p.dialing += 1,
            ContactState::RetryScheduled { .. } => p.retry_scheduled += 1,
            ContactState::Done { .. } => p.done += 1,
            ContactState::Suppressed { .. } => p.suppressed += 1,
        }
    }
    p
}

/// The conformance suite every [`CampaignStore`] must pass. Ids are prefixed with
/// `prefix` so it can run repeatedly against one database.
pub mod conformance {
    use std::collections::HashSet;
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::campaign::contact::{AnsweredBy, CallOutcome};
    use crate::campaign::AnsweredFlow;

    macro_rules! ensure {
        ($cond:expr, $($msg:tt)+) => {
            if !$cond {
                return Err(format!($($msg)+));
            }
        };
    }

    fn t0() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_796_655_600, 0).unwrap_or_default() // 2026-12-07T15:00Z
    }

    fn err(e: impl std::fmt::Display) -> String {
        e.to_string()
    }

    fn campaign(prefix: &str, name: &str) -> Result<Campaign, String> {
        let id = CampaignId::new(format!("{prefix}-{name}")).map_err(err)?;
        let mut c = Campaign::new(
            id,
            name,
            AnsweredFlow::Message {
                text_or_url: "hello".into(),
            },
        );
        c.status = CampaignStatus::Running;
        Ok(c)
    }

    fn contacts(n: usize) -> Result<Vec<Contact>, String> {
        (0..n)
            .map(|i| {
                PhoneNumber::parse(&format!("+1512555{:04}", 1000 + i))
                    .map(Contact::new)
                    .map_err(err)
            })
            .collect()
    }

    /// Runs every check.
    pub async fn run(store: Arc<dyn CampaignStore>, prefix: &str) -> Result<(), String> {
        lifecycle(store.as_ref(), prefix).await?;
        claims_are_exclusive(store.clone(), prefix).await?;
        events_are_idempotent(store.as_ref(), prefix).await?;
        Ok(())
    }

    /// Create, read, status transitions, duplicate ids refused, paused claims nothing.
    pub async fn lifecycle(store: &dyn CampaignStore, prefix: &str) -> Result<(), String> {
        let mut c = campaign(prefix, "life")?;
        c.status = CampaignStatus::Draft;
        store.create(&c, &contacts(3)?).await.map_err(err)?;
        ensure!(
            store.create(&c, &[]).await.is_err(),
            "a duplicate id was accepted"
        );
        let got = store.campaign(&c.id).await.map_err(err)?;
        ensure!(got.as_ref() == Some(&c), "read back {got:?}");
        let listed = store.campaigns().await.map_err(err)?;
        ensure!(
            listed.iter().filter(|x| x.id == c.id).count() == 1,
            "campaigns() lists {c:?} once: {listed:?}"
        );
        let ids: Vec<&str> = listed.iter().map(|x| x.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        ensure!(ids == sorted, "campaigns() is by id: {ids:?}");
        let in_order: Vec<String> = store
            .contacts(&c.id)
            .await
            .map_err(err)?
            .iter()
            .map(|x| x.number.as_str().to_string())
            .collect();
        let want: Vec<String> = contacts(3)?
            .iter()
            .map(|x| x.number.as_str().to_string())
            .collect();
        ensure!(in_order == want, "contacts() in queue order: {in_order:?}");
        let missing = CampaignId::new(format!("{prefix}-none")).map_err(err)?;
        ensure!(
            store.contacts(&missing).await.is_err(),
            "contacts() of an unknown campaign is an error"
        );
        let all = |_: &Contact| true;
        let claimed = store.claim_due(&c.id, t0(), 10, &all).await.map_err(err)?;
        ensure!(claimed.is_empty(), "a draft campaign claimed {claimed:?}");
        ensure!(
            store
                .set_status(&c.id, CampaignStatus::Running)
                .await
                .map_err(err)?,
            "start"
        );
        ensure!(
            store
                .set_status(&c.id, CampaignStatus::Paused)
                .await
                .map_err(err)?,
            "pause"
        );
        let claimed = store.claim_due(&c.id, t0(), 10, &all).await.map_err(err)?;
        ensure!(claimed.is_empty(), "a paused campaign claimed {claimed:?}");
        ensure!(
            store
                .set_status(&c.id, CampaignStatus::Running)
                .await
                .map_err(err)?,
            "resume"
        );
        ensure!(
            store
                .set_status(&c.id, CampaignStatus::Stopped)
                .await
                .map_err(err)?,
            "stop"
        );
        ensure!(
            !store
                .set_status(&c.id, CampaignStatus::Running)
                .await
                .map_err(err)?,
            "a stopped campaign restarted"
        );
        let p = store.progress(&c.id).await.map_err(err)?;
        ensure!(p.queued == 3, "progress {p:?}");
        Ok(())
    }

    /// Eight concurrent claimers over 40 contacts: each contact claimed once; the accept
    /// filter is honoured; a restart (a fresh claim) claims nothing already dialing.
    pub async fn claims_are_exclusive(
        store: Arc<dyn CampaignStore>,
        prefix: &str,
    ) -> Result<(), String> {
        let c = campaign(prefix, "claims")?;
        let list = contacts(40)?;
        let skipped = list[0].number.clone();
        store.create(&c, &list).await.map_err(err)?;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            let id = c.id.clone();
            let skipped = skipped.clone();
            tasks.push(tokio::spawn(async move {
                let accept = move |k: &Contact| k.number != skipped;
                let mut mine = Vec::new();
                for _ in 0..10 {
                    let got = store.claim_due(&id, t0(), 3, &accept).await.map_err(err)?;
                    mine.extend(got);
                    tokio::task::yield_now().await;
                }
                Ok::<_, String>(mine)
            }));
        }
        let mut seen = HashSet::new();
        for t in tasks {
            for claim in t.await.map_err(err)?? {
                ensure!(claim.attempt == 1, "attempt {}", claim.attempt);
                ensure!(
                    seen.insert(claim.number.clone()),
                    "{} claimed twice",
                    claim.number
                );
            }
        }
        ensure!(seen.len() == 39, "{} of 39 claimed", seen.len());
        ensure!(!seen.contains(&skipped), "the filtered contact was claimed");
        let again = store
            .claim_due(&c.id, t0(), 100, &|_| true)
            .await
            .map_err(err)?;
        ensure!(
            again.len() == 1 && again[0].number == skipped,
            "a second pass claimed {again:?}"
        );
        let stale = store
            .stale(&c.id, t0() + Duration::minutes(5))
            .await
            .map_err(err)?;
        ensure!(stale.len() == 40, "stale {}", stale.len());
        Ok(())
    }

    /// Duplicated and out-of-order callbacks; retries become due again; unknown contacts
    /// are an error naming the number.
    pub async fn events_are_idempotent(
        store: &dyn CampaignStore,
        prefix: &str,
    ) -> Result<(), String> {
        let c = campaign(prefix, "events")?;
        let list = contacts(2)?;
        store.create(&c, &list).await.map_err(err)?;
        let all = |_: &Contact| true;
        let claimed = store.claim_due(&c.id, t0(), 1, &all).await.map_err(err)?;
        ensure!(claimed.len() == 1, "claimed {claimed:?}");
        let who = &claimed[0].number;
        let end = ContactEvent::Ended {
            attempt: 1,
            outcome: CallOutcome::Busy,
            at: t0() + Duration::seconds(20),
        };
        ensure!(
            store.apply(&c.id, who, &end).await.map_err(err)? == ApplyResult::Changed,
            "first end ignored"
        );
        ensure!(
            store.apply(&c.id, who, &end).await.map_err(err)? == ApplyResult::Ignored,
            "duplicate end applied"
        );
        let late = ContactEvent::Answered {
            attempt: 1,
            by: AnsweredBy::Human,
            at: t0() + Duration::seconds(5),
        };
        ensure!(
            store.apply(&c.id, who, &late).await.map_err(err)? == ApplyResult::Ignored,
            "a late answer moved the contact back"
        );
        let contact = store.contact(&c.id, who).await.map_err(err)?;
        let Some(contact) = contact else {
            return Err("contact missing".into());
        };
        let ContactState::RetryScheduled { at, .. } = contact.state else {
            return Err(format!("state {:?}", contact.state));
        };
        let only = |k: &Contact| k.number == *who;
        let early = store.claim_due(&c.id, at - Duration::seconds(1), 10, &only);
        ensure!(
            early.await.map_err(err)?.is_empty(),
            "retried before its time"
        );
        let due = store.claim_due(&c.id, at, 10, &only).await.map_err(err)?;
        ensure!(due.len() == 1 && due[0].attempt == 2, "retry claim {due:?}");
        let stranger = PhoneNumber::parse("+15125559999").map_err(err)?;
        ensure!(
            store.apply(&c.id, &stranger, &end).await.is_err(),
            "an unknown contact was accepted"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_store_passes_conformance() {
        let store: Arc<dyn CampaignStore> = Arc::new(MemoryCampaignStore::new());
        conformance::run(store, "mem").await.unwrap();
    }
}

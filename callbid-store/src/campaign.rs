//! [`CampaignStore`] on SQLite and PostgreSQL.
//!
//! Both backends keep a campaign as a JSON document (`campaigns`) and each contact as a
//! row (`campaign_contacts`: state, due time, dialing time, a version, and the contact as
//! JSON). The state machine runs in core ([`Contact::apply`]); the stores only make each
//! change atomic, the same way on both: read the row with its `version`, apply the event
//! in Rust, then `UPDATE … WHERE version = $read` (compare-and-set). A writer that lost
//! the race re-reads and re-applies, so a contact is claimed by exactly one instance and a
//! callback delivered to two instances at once is applied once. Claims read due rows in
//! queue order, run the caller's launch check (window, suppression) on each, and CAS the
//! accepted ones to `dialing`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use callbid_core::campaign::store::{progress_of, CampaignProgress, ClaimedContact, LaunchFilter};
use callbid_core::campaign::{
    ApplyResult, Campaign, CampaignStatus, CampaignStore, Contact, ContactEvent, ContactState,
};
use callbid_core::{CampaignId, PhoneNumber, StateError, ValidationError};

use crate::error::{Result, StoreError};

/// How often a compare-and-set is retried after losing a race before giving up.
const CAS_ATTEMPTS: usize = 16;

/// A contact row as stored.
#[derive(Debug, Clone)]
pub(crate) struct ContactRow {
    pub number: String,
    pub seq: i64,
    pub state: &'static str,
    pub due_ms: Option<i64>,
    pub dialing_since_ms: Option<i64>,
    pub doc: String,
}

/// What a backend provides; the logic below is shared.
#[async_trait]
pub(crate) trait CampaignRows: Send + Sync {
    /// Inserts the campaign and its contacts in one transaction; `false` if the id exists.
    async fn insert(&self, id: &str, doc: String, contacts: Vec<ContactRow>) -> Result<bool>;
    /// `(version, doc)` of a campaign.
    async fn load_campaign(&self, id: &str) -> Result<Option<(i64, String)>>;
    /// Replaces a campaign's doc if its version is still `version`.
    async fn cas_campaign(&self, id: &str, version: i64, doc: String) -> Result<bool>;
    /// Due rows `(version, doc)` in queue order: `due_ms <= now_ms`, at most `limit`,
    /// starting after `after_seq`.
    async fn due(
        &self,
        id: &str,
        now_ms: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, String)>>;
    /// `(version, doc)` of one contact.
    async fn load_contact(&self, id: &str, number: &str) -> Result<Option<(i64, String)>>;
    /// Replaces a contact row if its version is still `version`.
    async fn cas_contact(&self, id: &str, version: i64, row: ContactRow) -> Result<bool>;
    /// Every contact's doc.
    async fn all(&self, id: &str) -> Result<Vec<String>>;
    /// Docs of contacts dialing since before `before_ms`.
    async fn dialing_before(&self, id: &str, before_ms: i64) -> Result<Vec<String>>;
    /// Every campaign's doc, by id.
    async fn list_campaigns(&self) -> Result<Vec<String>>;
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The row of a contact at queue position `seq`.
pub(crate) fn row_of(contact: &Contact, seq: i64) -> Result<ContactRow> {
    let (state, due_ms, dialing_since_ms) = match &contact.state {
        ContactState::Queued => ("queued", Some(i64::MIN), None),
        ContactState::Dialing { since, .. } => ("dialing", None, Some(ms(*since))),
        ContactState::Answered { .. } => ("answered", None, None),
        ContactState::RetryScheduled { at, .. } => ("retry_scheduled", Some(ms(*at)), None),
        ContactState::Done { .. } => ("done", None, None),
        ContactState::Suppressed { .. } => ("suppressed", None, None),
    };
    Ok(ContactRow {
        number: contact.number.as_str().to_string(),
        seq,
        state,
        due_ms,
        dialing_since_ms,
        doc: serde_json::to_string(contact).map_err(|e| StoreError::corrupt("campaign", e))?,
    })
}

fn contact_of(doc: &str) -> Result<Contact> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt("campaign contact", e))
}

fn campaign_of(doc: &str) -> Result<Campaign> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt("campaign", e))
}

fn unknown(id: &CampaignId) -> StoreError {
    StoreError::Invalid(ValidationError::new(
        "campaign",
        id.as_str(),
        "no such campaign",
    ))
}

pub(crate) async fn create(
    rows: &dyn CampaignRows,
    campaign: &Campaign,
    contacts: &[Contact],
) -> Result<()> {
    let doc = serde_json::to_string(campaign).map_err(|e| StoreError::corrupt("campaign", e))?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for c in contacts {
        if seen.insert(c.number.as_str().to_string()) {
            out.push(row_of(c, out.len() as i64)?);
        }
    }
    if rows.insert(campaign.id.as_str(), doc, out).await? {
        Ok(())
    } else {
        Err(StoreError::Invalid(ValidationError::new(
            "campaign",
            campaign.id.as_str(),
            "already exists",
        )))
    }
}

pub(crate) async fn campaign(rows: &dyn CampaignRows, id: &CampaignId) -> Result<Option<Campaign>> {
    match rows.load_campaign(id.as_str()).await? {
        Some((_, doc)) => Ok(Some(campaign_of(&doc)?)),
        None => Ok(None),
    }
}

pub(crate) async fn set_status(
    rows: &dyn CampaignRows,
    id: &CampaignId,
    status: CampaignStatus,
) -> Result<bool> {
    for _ in 0..CAS_ATTEMPTS {
        let (version, doc) = rows
            .load_campaign(id.as_str())
            .await?
            .ok_or_else(|| unknown(id))?;
        let mut c = campaign_of(&doc)?;
        if !c.status.can_become(status) {
            return Ok(false);
        }
        c.status = status;
        let doc = serde_json::to_string(&c).map_err(|e| StoreError::corrupt("campaign", e))?;
        if rows.cas_campaign(id.as_str(), version, doc).await? {
            return Ok(true);
        }
    }
    Err(contended("set_status"))
}

fn contended(operation: &'static str) -> StoreError {
    StoreError::corrupt(
        operation,
        format!("lost {CAS_ATTEMPTS} compare-and-set races in a row"),
    )
}

pub(crate) async fn claim_due(
    rows: &dyn CampaignRows,
    id: &CampaignId,
    now: DateTime<Utc>,
    limit: usize,
    accept: &LaunchFilter<'_>,
) -> Result<Vec<ClaimedContact>> {
    let c = campaign(rows, id).await?.ok_or_else(|| unknown(id))?;
    if !c.in_schedule(now) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut after = -1;
    while out.len() < limit {
        let batch = rows
            .due(id.as_str(), ms(now), after, (limit * 2 + 8) as i64)
            .await?;
        if batch.is_empty() {
            break;
        }
        for (seq, version, doc) in batch {
            after = seq;
            if out.len() >= limit {
                break;
            }
            let mut contact = contact_of(&doc)?;
            if !contact.is_due(now) || !accept(&contact) {
                continue;
            }
            let attempt = contact.attempts + 1;
            let ev = ContactEvent::Launched { attempt, at: now };
            if contact.apply(&ev, &c.retry) != ApplyResult::Changed {
                continue;
            }
            // Losing the CAS means another instance claimed (or changed) it: skip it.
            if rows
                .cas_contact(id.as_str(), version, row_of(&contact, seq)?)
                .await?
            {
                out.push(ClaimedContact {
                    number: contact.number.clone(),
                    attempt,
                });
            }
        }
    }
    Ok(out)
}

pub(crate) async fn apply(
    rows: &dyn CampaignRows,
    id: &CampaignId,
    number: &PhoneNumber,
    event: &ContactEvent,
) -> Result<ApplyResult> {
    let c = campaign(rows, id).await?.ok_or_else(|| unknown(id))?;
    for _ in 0..CAS_ATTEMPTS {
        let (version, doc) = rows
            .load_contact(id.as_str(), number.as_str())
            .await?
            .ok_or_else(|| {
                StoreError::Invalid(ValidationError::new(
                    "number",
                    number.as_str(),
                    "not a contact of this campaign",
                ))
            })?;
        let mut contact = contact_of(&doc)?;
        if contact.apply(event, &c.retry) == ApplyResult::Ignored {
            return Ok(ApplyResult::Ignored);
        }
        // The queue position never changes: keep the stored seq (the backend ignores it).
        if rows
            .cas_contact(id.as_str(), version, row_of(&contact, -1)?)
            .await?
        {
            return Ok(ApplyResult::Changed);
        }
    }
    Err(contended("apply"))
}

pub(crate) async fn contact(
    rows: &dyn CampaignRows,
    id: &CampaignId,
    number: &PhoneNumber,
) -> Result<Option<Contact>> {
    match rows.load_contact(id.as_str(), number.as_str()).await? {
        Some((_, doc)) => Ok(Some(contact_of(&doc)?)),
        None => Ok(None),
    }
}

pub(crate) async fn progress(rows: &dyn CampaignRows, id: &CampaignId) -> Result<CampaignProgress> {
    if rows.load_campaign(id.as_str()).await?.is_none() {
        return Err(unknown(id));
    }
    let contacts = rows
        .all(id.as_str())
        .await?
        .iter()
        .map(|d| contact_of(d))
        .collect::<Result<Vec<_>>>()?;
    Ok(progress_of(contacts.iter()))
}

pub(crate) async fn campaigns(rows: &dyn CampaignRows) -> Result<Vec<Campaign>> {
    rows.list_campaigns()
        .await?
        .iter()
        .map(|d| campaign_of(d))
        .collect()
}

pub(crate) async fn contacts(rows: &dyn CampaignRows, id: &CampaignId) -> Result<Vec<Contact>> {
    if rows.load_campaign(id.as_str()).await?.is_none() {
        return Err(unknown(id));
    }
    rows.all(id.as_str())
        .await?
        .iter()
        .map(|d| contact_of(d))
        .collect()
}

pub(crate) async fn stale(
    rows: &dyn CampaignRows,
    id: &CampaignId,
    before: DateTime<Utc>,
) -> Result<Vec<Contact>> {
    rows.dialing_before(id.as_str(), ms(before))
        .await?
        .iter()
        .map(|d| contact_of(d))
        .collect()
}

/// Implements [`CampaignStore`] for a backend through the functions above.
macro_rules! campaign_store_via_rows {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl callbid_core::campaign::CampaignStore for $ty {
            async fn create(
                &self,
                campaign: &callbid_core::campaign::Campaign,
                contacts: &[callbid_core::campaign::Contact],
            ) -> std::result::Result<(), callbid_core::StateError> {
                crate::campaign::create(self, campaign, contacts)
                    .await
                    .map_err(|e| e.into_state("campaign create"))
            }
            async fn campaign(
                &self,
                id: &callbid_core::CampaignId,
            ) -> std::result::Result<
                Option<callbid_core::campaign::Campaign>,
                callbid_core::StateError,
            > {
                crate::campaign::campaign(self, id)
                    .await
                    .map_err(|e| e.into_state("campaign read"))
            }
            async fn set_status(
                &self,
                id: &callbid_core::CampaignId,
                status: callbid_core::campaign::CampaignStatus,
            ) -> std::result::Result<bool, callbid_core::StateError> {
                crate::campaign::set_status(self, id, status)
                    .await
                    .map_err(|e| e.into_state("campaign set_status"))
            }
            async fn claim_due(
                &self,
                id: &callbid_core::CampaignId,
                now: chrono::DateTime<chrono::Utc>,
                limit: usize,
                accept: &callbid_core::campaign::store::LaunchFilter<'_>,
            ) -> std::result::Result<
                Vec<callbid_core::campaign::ClaimedContact>,
                callbid_core::StateError,
            > {
                crate::campaign::claim_due(self, id, now, limit, accept)
                    .await
                    .map_err(|e| e.into_state("campaign claim_due"))
            }
            async fn apply(
                &self,
                id: &callbid_core::CampaignId,
                number: &callbid_core::PhoneNumber,
                event: &callbid_core::campaign::ContactEvent,
            ) -> std::result::Result<callbid_core::campaign::ApplyResult, callbid_core::StateError>
            {
                crate::campaign::apply(self, id, number, event)
                    .await
                    .map_err(|e| e.into_state("campaign apply"))
            }
            async fn contact(
                &self,
                id: &callbid_core::CampaignId,
                number: &callbid_core::PhoneNumber,
            ) -> std::result::Result<
                Option<callbid_core::campaign::Contact>,
                callbid_core::StateError,
            > {
                crate::campaign::contact(self, id, number)
                    .await
                    .map_err(|e| e.into_state("campaign contact"))
            }
            async fn progress(
                &self,
                id: &callbid_core::CampaignId,
            ) -> std::result::Result<
                callbid_core::campaign::store::CampaignProgress,
                callbid_core::StateError,
            > {
                crate::campaign::progress(self, id)
                    .await
                    .map_err(|e| e.into_state("campaign progress"))
            }
            async fn campaigns(
                &self,
            ) -> std::result::Result<
                Vec<callbid_core::campaign::Campaign>,
                callbid_core::StateError,
            > {
                crate::campaign::campaigns(self)
                    .await
                    .map_err(|e| e.into_state("campaign list"))
            }
            async fn contacts(
                &self,
                id: &callbid_core::CampaignId,
            ) -> std::result::Result<Vec<callbid_core::campaign::Contact>, callbid_core::StateError>
            {
                crate::campaign::contacts(self, id)
                    .await
                    .map_err(|e| e.into_state("campaign contacts"))
            }
            async fn stale(
                &self,
                id: &callbid_core::CampaignId,
                before: chrono::DateTime<chrono::Utc>,
            ) -> std::result::Result<Vec<callbid_core::campaign::Contact>, callbid_core::StateError>
            {
                crate::campaign::stale(self, id, before)
                    .await
                    .map_err(|e| e.into_state("campaign stale"))
            }
        }
    };
}
pub(crate) use campaign_store_via_rows;

/// [`CampaignStore`] for [`crate::Store`], delegating to its backend.
#[async_trait]
impl CampaignStore for crate::Store {
    async fn create(&self, campaign: &Campaign, contacts: &[Contact]) -> Result<(), StateError> {
        create(self.rows(), campaign, contacts)
            .await
            .map_err(|e| e.into_state("campaign create"))
    }
    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StateError> {
        campaign(self.rows(), id)
            .await
            .map_err(|e| e.into_state("campaign read"))
    }
    async fn set_status(
        &self,
        id: &CampaignId,
        status: CampaignStatus,
    ) -> Result<bool, StateError> {
        set_status(self.rows(), id, status)
            .await
            .map_err(|e| e.into_state("campaign set_status"))
    }
    async fn claim_due(
        &self,
        id: &CampaignId,
        now: DateTime<Utc>,
        limit: usize,
        accept: &LaunchFilter<'_>,
    ) -> Result<Vec<ClaimedContact>, StateError> {
        claim_due(self.rows(), id, now, limit, accept)
            .await
            .map_err(|e| e.into_state("campaign claim_due"))
    }
    async fn apply(
        &self,
        id: &CampaignId,
        number: &PhoneNumber,
        event: &ContactEvent,
    ) -> Result<ApplyResult, StateError> {
        apply(self.rows(), id, number, event)
            .await
            .map_err(|e| e.into_state("campaign apply"))
    }
    async fn contact(
        &self,
        id: &CampaignId,
        number: &PhoneNumber,
    ) -> Result<Option<Contact>, StateError> {
        contact(self.rows(), id, number)
            .await
            .map_err(|e| e.into_state("campaign contact"))
    }
    async fn progress(&self, id: &CampaignId) -> Result<CampaignProgress, StateError> {
        progress(self.rows(), id)
            .await
            .map_err(|e| e.into_state("campaign progress"))
    }
    async fn campaigns(&self) -> Result<Vec<Campaign>, StateError> {
        campaigns(self.rows())
            .await
            .map_err(|e| e.into_state("campaign list"))
    }
    async fn contacts(&self, id: &CampaignId) -> Result<Vec<Contact>, StateError> {
        contacts(self.rows(), id)
            .await
            .map_err(|e| e.into_state("campaign contacts"))
    }
    async fn stale(
        &self,
        id: &CampaignId,
        before: DateTime<Utc>,
    ) -> Result<Vec<Contact>, StateError> {
        stale(self.rows(), id, before)
            .await
            .map_err(|e| e.into_state("campaign stale"))
    }
}

impl crate::Store {
    fn rows(&self) -> &dyn CampaignRows {
        match self {
            crate::Store::Sqlite(s) => s,
            #[cfg(feature = "postgres")]
            crate::Store::Postgres(p) => p,
        }
    }
}

//! The campaign loop: pace, claim, place, and settle callbacks.
//!
//! [`CampaignRunner::tick`] runs one pacing round:
//! 1. [`Pacer::decide`] says how many calls may start now (agents, abandon ceiling,
//!    completion pacing, the provider's bucket);
//! 2. the store claims that many due contacts atomically, each passing the launch check
//!    **at this moment**: suppression, then the calling window in the callee's zones;
//! 3. each call gets a local caller ID from the [`CallerIdPool`] and is placed with the
//!    [`OutboundProvider`]; a call the provider refuses ends its attempt as `failed`, a
//!    rate-limited one gives its attempt back as `failed` with the provider's reason (it
//!    is retried by policy).
//!
//! [`CampaignRunner::on_status`] applies a status callback (idempotent: a duplicate or a
//! callback delivered to another instance changes nothing), and
//! [`CampaignRunner::reconcile`] fetches details for contacts whose callbacks were lost.
//! Several runners (instances) may share one store: claims are atomic there.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Mutex;

use super::caller_id::{CallerIdPool, NumberRegion};
use super::contact::{AnsweredBy, ApplyResult, CallOutcome, ContactEvent};
use super::pacer::{Pacer, PacerInput};
use super::provider::{OutboundCall, OutboundProvider, ProviderCall, ProviderCallStatus};
use super::store::CampaignStore;
use super::{launch_check, Campaign, SuppressionList};
use crate::error::StateError;
use crate::ids::CampaignId;
use crate::phone::PhoneNumber;

/// Where the provider calls back; `{campaign}`, `{number}`, `{attempt}` and
/// `{caller_id}` (the caller ID presented) are filled in, percent-encoded.
#[derive(Debug, Clone)]
pub struct CallbackUrls {
    /// The call flow to run once answered.
    pub flow: String,
    /// The status callback.
    pub status: String,
}

impl CallbackUrls {
    fn fill(
        template: &str,
        campaign: &CampaignId,
        number: &PhoneNumber,
        attempt: u32,
        caller_id: &PhoneNumber,
    ) -> String {
        let enc = |s: &str| s.replace('+', "%2B");
        template
            .replace("{campaign}", campaign.as_str())
            .replace("{number}", &enc(number.as_str()))
            .replace("{attempt}", &attempt.to_string())
            .replace("{caller_id}", &enc(caller_id.as_str()))
    }
}

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Calls the pacer allowed.
    pub allowed: u32,
    /// Calls placed.
    pub placed: u32,
    /// Calls the provider refused (attempt ended as failed).
    pub refused: u32,
}

/// Runs one campaign on one instance.
#[derive(Debug)]
pub struct CampaignRunner {
    campaign: Campaign,
    store: Arc<dyn CampaignStore>,
    provider: Arc<dyn OutboundProvider>,
    suppression: SuppressionList,
    caller_ids: Mutex<CallerIdPool>,
    pacer: Mutex<Pacer>,
    urls: CallbackUrls,
    ringing: Mutex<u32>,
}

impl CampaignRunner {
    /// A runner for `campaign` (already created in `store`).
    pub fn new(
        campaign: Campaign,
        store: Arc<dyn CampaignStore>,
        provider: Arc<dyn OutboundProvider>,
        pacer: Pacer,
        caller_ids: CallerIdPool,
        suppression: SuppressionList,
        urls: CallbackUrls,
    ) -> Self {
        CampaignRunner {
            campaign,
            store,
            provider,
            suppression,
            caller_ids: Mutex::new(caller_ids),
            pacer: Mutex::new(pacer),
            urls,
            ringing: Mutex::new(0),
        }
    }

    /// One pacing round at `now` with `free_agents` ready (for a recorded-message flow,
    /// the number of lines to keep busy).
    pub async fn tick(
        &self,
        now: DateTime<Utc>,
        free_agents: u32,
    ) -> Result<TickReport, StateError> {
        let allowed = self.allowed(now, free_agents).await;
        let mut report = TickReport {
            allowed,
            ..TickReport::default()
        };
        if allowed == 0 {
            return Ok(report);
        }
        let rules = self.campaign.rules.clone();
        let suppression = self.suppression.clone();
        let accept = move |c: &super::contact::Contact| {
            launch_check(&c.number, &rules, &suppression, now).is_ok()
        };
        let claims = self
            .store
            .claim_due(&self.campaign.id, now, allowed as usize, &accept)
            .await?;
        for claim in claims {
            if self.place(&claim.number, claim.attempt, now).await? {
                report.placed += 1;
            } else {
                report.refused += 1;
            }
        }
        Ok(report)
    }

    /// Sets how many calls are in flight, from the store's count of dialing contacts.
    /// Several instances share one campaign and a status callback may reach any of
    /// them, so an instance's own count drifts; the server syncs it before each tick.
    pub async fn sync_ringing(&self, dialing: u32) {
        *self.ringing.lock().await = dialing;
    }

    /// The pacer's current rates: `(answer rate, completion rate, abandon rate over the
    /// rolling 30 days at now)`, each a fraction.
    pub async fn rates(
        &self,
        now: DateTime<Utc>,
    ) -> (
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
    ) {
        let p = self.pacer.lock().await;
        (p.answer_rate(), p.completion_rate(), p.ledger().rate(now))
    }

    /// Learns how a call presented with `caller_id` ended (a person answered or not), for
    /// the caller-ID pool's answer rates. Call it once per final outcome (when
    /// [`CampaignRunner::on_status`] answered `Changed`).
    pub async fn record_caller_id(&self, caller_id: &PhoneNumber, answered_by_person: bool) {
        self.caller_ids
            .lock()
            .await
            .record_result(caller_id, answered_by_person);
    }

    /// Each caller ID with its smoothed answer rate, as this instance learned them.
    pub async fn caller_id_rates(
        &self,
    ) -> Vec<(super::caller_id::CallerIdNumber, rust_decimal::Decimal)> {
        let pool = self.caller_ids.lock().await;
        pool.numbers()
            .map(|n| (n.clone(), pool.answer_rate(n)))
            .collect()
    }

    /// The campaign this runner dials.
    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    async fn allowed(&self, now: DateTime<Utc>, free_agents: u32) -> u32 {
        let ringing = *self.ringing.lock().await;
        let pacer = self.pacer.lock().await;
        pacer
            .decide(PacerInput {
                now,
                free_agents,
                ringing,
                due: u32::MAX,
            })
            .launch
    }

    /// Places one claimed call; `false` when the provider refused it (the attempt is
    /// ended as failed so the retry policy decides).
    async fn place(
        &self,
        number: &PhoneNumber,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let region = NumberRegion::of_nanp(number);
        let caller_id = self.caller_ids.lock().await.pick(&region, now);
        let outcome = match caller_id {
            None => Err("no caller ID left under its daily limit".to_string()),
            Some(pick) => {
                if !self.pacer.lock().await.launched(now) {
                    Err("provider rate limit reached".to_string())
                } else {
                    let call = self.outbound_call(number, pick.number, attempt);
                    self.provider.place(&call).await.map_err(|e| e.to_string())
                }
            }
        };
        match outcome {
            Ok(_) => {
                *self.ringing.lock().await += 1;
                Ok(true)
            }
            Err(reason) => {
                let ev = ContactEvent::Ended {
                    attempt,
                    outcome: CallOutcome::Failed { reason },
                    at: now,
                };
                self.store.apply(&self.campaign.id, number, &ev).await?;
                Ok(false)
            }
        }
    }

    fn outbound_call(
        &self,
        number: &PhoneNumber,
        caller_id: PhoneNumber,
        attempt: u32,
    ) -> OutboundCall {
        let id = &self.campaign.id;
        OutboundCall {
            to: number.clone(),
            flow_url: CallbackUrls::fill(&self.urls.flow, id, number, attempt, &caller_id),
            status_callback: CallbackUrls::fill(&self.urls.status, id, number, attempt, &caller_id),
            caller_id,
            ring_timeout_secs: 25,
            time_limit_secs: Some(3600),
            machine_detection: true,
            tag: format!("{}:{}:{attempt}", id.as_str(), number.as_str()),
        }
    }

    /// Applies a provider's status for `number`'s attempt `attempt` (parsed from the
    /// callback URL). `abandoned` when the call flow found no agent in time.
    pub async fn on_status(
        &self,
        number: &PhoneNumber,
        attempt: u32,
        call: &ProviderCall,
        abandoned: bool,
        now: DateTime<Utc>,
    ) -> Result<ApplyResult, StateError> {
        let id = &self.campaign.id;
        if call.status == ProviderCallStatus::InProgress {
            let by = call.answered_by.unwrap_or(AnsweredBy::Unknown);
            let ev = ContactEvent::Answered {
                attempt,
                by,
                at: now,
            };
            return self.store.apply(id, number, &ev).await;
        }
        let Some(mut outcome) = call.outcome() else {
            return Ok(ApplyResult::Ignored);
        };
        if abandoned {
            outcome = CallOutcome::Abandoned;
        }
        let ev = ContactEvent::Ended {
            attempt,
            outcome: outcome.clone(),
            at: now,
        };
        let applied = self.store.apply(id, number, &ev).await?;
        if applied == ApplyResult::Changed {
            self.settle(&outcome, now).await;
        }
        Ok(applied)
    }

    async fn settle(&self, outcome: &CallOutcome, now: DateTime<Utc>) {
        let live = match outcome {
            CallOutcome::Completed { answered_by, .. } => answered_by.is_live(),
            CallOutcome::Abandoned => true,
            _ => false,
        };
        let abandoned = matches!(outcome, CallOutcome::Abandoned);
        self.pacer.lock().await.ended(now, live, abandoned);
        let mut r = self.ringing.lock().await;
        *r = r.saturating_sub(1);
    }

    /// Fetches details for contacts dialing for longer than `after` (callbacks lost) and
    /// applies them. Returns how many changed.
    pub async fn reconcile(
        &self,
        now: DateTime<Utc>,
        after: Duration,
        call_ids: &(dyn Fn(&PhoneNumber, u32) -> Option<String> + Send + Sync),
    ) -> Result<u32, StateError> {
        let stale = self.store.stale(&self.campaign.id, now - after).await?;
        let mut changed = 0;
        for contact in stale {
            let attempt = contact.attempts;
            let Some(call_id) = call_ids(&contact.number, attempt) else {
                continue;
            };
            let Ok(call) = self.provider.details(&call_id).await else {
                continue;
            };
            if self
                .on_status(&contact.number, attempt, &call, false, now)
                .await?
                == ApplyResult::Changed
            {
                changed += 1;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex as StdMutex;

    use async_trait::async_trait;

    use super::super::caller_id::CallerIdConfig;
    use super::super::pacer::{PacerConfig, PacingMode, RateWindow};
    use super::super::provider::ProviderError;
    use super::super::store::MemoryCampaignStore;
    use super::super::{AnsweredFlow, CampaignStatus, Contact, ContactState};
    use super::*;

    /// A provider that records each placed call and its time.
    #[derive(Debug, Default)]
    struct FakeProvider {
        placed: StdMutex<Vec<(DateTime<Utc>, OutboundCall)>>,
        clock: StdMutex<Option<DateTime<Utc>>>,
    }

    #[async_trait]
    impl OutboundProvider for FakeProvider {
        fn name(&self) -> &'static str {
            "fake"
        }
        async fn place(&self, call: &OutboundCall) -> Result<ProviderCall, ProviderError> {
            let at = self.clock.lock().unwrap().unwrap_or_default();
            let mut placed = self.placed.lock().unwrap();
            placed.push((at, call.clone()));
            Ok(ProviderCall {
                id: format!("CA{}", placed.len()),
                status: ProviderCallStatus::Queued,
                answered_by: None,
                duration_secs: None,
                conversation_secs: None,
                legs: Vec::new(),
                price: None,
            })
        }
        async fn details(&self, id: &str) -> Result<ProviderCall, ProviderError> {
            Ok(ProviderCall {
                id: id.to_string(),
                status: ProviderCallStatus::NoAnswer,
                answered_by: None,
                duration_secs: None,
                conversation_secs: None,
                legs: Vec::new(),
                price: None,
            })
        }
        fn parse_status_callback(
            &self,
            _: &[(String, String)],
        ) -> Result<ProviderCall, ProviderError> {
            Err(ProviderError::BadResponse {
                provider: "fake",
                operation: "cb",
                message: "n/a".into(),
            })
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    async fn runner(
        store: Arc<dyn CampaignStore>,
        provider: Arc<FakeProvider>,
        numbers: &[&str],
        dnc: &[&str],
        create: bool,
    ) -> CampaignRunner {
        let mut c = Campaign::new(
            CampaignId::new("c1").unwrap(),
            "c",
            AnsweredFlow::Message {
                text_or_url: "hi".into(),
            },
        );
        c.status = CampaignStatus::Running;
        if create {
            let contacts: Vec<Contact> = numbers.iter().map(|s| Contact::new(n(s))).collect();
            store.create(&c, &contacts).await.unwrap();
        }
        let pacer = Pacer::new(
            PacerConfig {
                mode: PacingMode::Progressive,
                ..Default::default()
            },
            RateWindow::twilio(2).unwrap(),
        )
        .unwrap();
        let mut ids = CallerIdPool::new(CallerIdConfig::default());
        ids.add(
            n("+15125559000"),
            NumberRegion::of_nanp(&n("+15125559000")),
            1000,
        )
        .unwrap();
        let mut dnc_list = SuppressionList::new();
        for d in dnc {
            dnc_list.add(&n(d), "dnc");
        }
        let urls = CallbackUrls {
            flow: "https://x.example/campaigns/{campaign}/answer".into(),
            status:
                "https://x.example/campaigns/{campaign}/status?number={number}&attempt={attempt}"
                    .into(),
        };
        CampaignRunner::new(c, store, provider, pacer, ids, dnc_list, urls)
    }

    #[tokio::test]
    async fn windows_suppression_and_rate_limit_are_kept_at_launch() {
        let store: Arc<dyn CampaignStore> = Arc::new(MemoryCampaignStore::new());
        let provider = Arc::new(FakeProvider::default());
        let nums: Vec<String> = (0..30)
            .map(|i| format!("+1512555{:04}", 3000 + i))
            .collect();
        let refs: Vec<&str> = nums.iter().map(String::as_str).collect();
        let r = runner(store.clone(), provider.clone(), &refs, &[refs[0]], true).await;
        // 20:59:59 CST on a Monday (Texas window ends at 21:00): due contacts are claimed
        // at 20:59:59; the tick one second later launches nothing.
        let t = at("2026-12-08T02:59:59Z");
        *provider.clock.lock().unwrap() = Some(t);
        let rep = r.tick(t, 100).await.unwrap();
        assert_eq!(
            rep.placed, 2,
            "the provider bucket allows 2 per second: {rep:?}"
        );
        let t2 = at("2026-12-08T03:00:00Z");
        *provider.clock.lock().unwrap() = Some(t2);
        assert_eq!(
            r.tick(t2, 100).await.unwrap().placed,
            0,
            "21:00 is outside the window"
        );
        // The next morning at 09:00 CST calls resume at the provider's pace.
        let mut now = at("2026-12-08T15:00:00Z");
        for _ in 0..20 {
            *provider.clock.lock().unwrap() = Some(now);
            r.tick(now, 100).await.unwrap();
            now += Duration::milliseconds(500);
        }
        let placed = provider.placed.lock().unwrap().clone();
        let mut per_second: BTreeMap<i64, u32> = BTreeMap::new();
        for (t, call) in &placed {
            *per_second.entry(t.timestamp()).or_default() += 1;
            assert_ne!(call.to.as_str(), refs[0], "a suppressed number was called");
            assert!(
                CallingRulesCheck::open(&call.to, *t),
                "{} called at {t} outside its window",
                call.to
            );
            assert!(
                call.status_callback.contains("number=%2B1512555"),
                "{}",
                call.status_callback
            );
        }
        assert!(per_second.values().all(|n| *n <= 2), "{per_second:?}");
        assert_eq!(placed.len(), 22, "{per_second:?}");
    }

    struct CallingRulesCheck;
    impl CallingRulesCheck {
        fn open(n: &PhoneNumber, t: DateTime<Utc>) -> bool {
            super::super::CallingRules::default().check(n, t).is_open()
        }
    }

    #[tokio::test]
    async fn callbacks_are_idempotent_and_a_restart_resumes() {
        let store: Arc<dyn CampaignStore> = Arc::new(MemoryCampaignStore::new());
        let provider = Arc::new(FakeProvider::default());
        let nums = ["+15125554000", "+15125554001", "+15125554002"];
        let r = runner(store.clone(), provider.clone(), &nums, &[], true).await;
        let t = at("2026-12-07T17:00:00Z");
        r.tick(t, 1).await.unwrap();
        let first = provider.placed.lock().unwrap()[0].1.to.clone();
        let done = ProviderCall {
            id: "CA1".into(),
            status: ProviderCallStatus::Completed,
            answered_by: Some(AnsweredBy::Human),
            duration_secs: Some(40),
            conversation_secs: None,
            legs: vec![],
            price: None,
        };
        assert_eq!(
            r.on_status(&first, 1, &done, false, t).await.unwrap(),
            ApplyResult::Changed
        );
        assert_eq!(
            r.on_status(&first, 1, &done, false, t).await.unwrap(),
            ApplyResult::Ignored
        );
        // "Restart": a new runner over the same store claims only the others.
        drop(r);
        let r2 = runner(store.clone(), provider.clone(), &nums, &[], false).await;
        r2.tick(t + Duration::seconds(5), 10).await.unwrap();
        let called: Vec<String> = provider
            .placed
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.to.to_string())
            .collect();
        assert_eq!(called.len(), 3, "{called:?}");
        let unique: std::collections::HashSet<_> = called.iter().collect();
        assert_eq!(unique.len(), 3, "someone was called twice: {called:?}");
        let c = store
            .contact(&CampaignId::new("c1").unwrap(), &first)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(c.state, ContactState::Done { .. }));
        // Lost callbacks: reconcile fetches details for calls dialing over 2 minutes.
        let later = t + Duration::minutes(10);
        let changed = r2
            .reconcile(later, Duration::minutes(2), &|_, _| Some("CA9".into()))
            .await
            .unwrap();
        assert_eq!(changed, 2);
    }
}

//! Core's campaign conformance suite on SQLite and PostgreSQL, and two instances sharing
//! one campaign: every contact claimed exactly once, callbacks applied once, a restart
//! resumes where the campaign stopped.

use std::collections::HashSet;
use std::sync::Arc;

use callbid_core::campaign::store::conformance;
use callbid_core::campaign::{
    AnsweredFlow, ApplyResult, CallOutcome, Campaign, CampaignStatus, CampaignStore, Contact,
    ContactEvent,
};
use callbid_core::{CampaignId, PhoneNumber};
use callbid_store::SqliteStore;
use chrono::{DateTime, Duration, Utc};

mod common;

fn t0() -> DateTime<Utc> {
    "2026-12-07T15:00:00Z".parse().unwrap()
}

fn campaign(id: &str) -> Campaign {
    let mut c = Campaign::new(
        CampaignId::new(id).unwrap(),
        "shared",
        AnsweredFlow::Message {
            text_or_url: "hi".into(),
        },
    );
    c.status = CampaignStatus::Running;
    c
}

fn contacts(n: usize) -> Vec<Contact> {
    (0..n)
        .map(|i| Contact::new(PhoneNumber::parse(&format!("+1512555{:04}", 2000 + i)).unwrap()))
        .collect()
}

/// Two instances claim and settle one campaign until it is done: no contact is dialed
/// twice for one attempt, none is skipped, and every callback applied on one instance is
/// seen by the other.
async fn two_instances_share(a: Arc<dyn CampaignStore>, b: Arc<dyn CampaignStore>, id: &str) {
    let c = campaign(id);
    a.create(&c, &contacts(120)).await.unwrap();
    let mut tasks = Vec::new();
    for (k, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(&id, t0(), 5, &|_| true).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for claim in got {
                    // Every callback is delivered twice, once to each instance's peer.
                    let ev = ContactEvent::Ended {
                        attempt: claim.attempt,
                        outcome: CallOutcome::Completed {
                            answered_by: callbid_core::campaign::AnsweredBy::Human,
                            talk_seconds: 30,
                        },
                        at: t0() + Duration::seconds(60),
                    };
                    let first = store.apply(&id, &claim.number, &ev).await.unwrap();
                    assert_eq!(first, ApplyResult::Changed, "instance {k}");
                    mine.push(claim);
                }
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for claim in t.await.unwrap() {
            assert!(
                seen.insert(claim.number.clone()),
                "{} claimed twice",
                claim.number
            );
        }
    }
    assert_eq!(seen.len(), 120);
    let p = b.progress(&c.id).await.unwrap();
    assert_eq!((p.done, p.attempts), (120, 120), "{p:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_campaign_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s: Arc<dyn CampaignStore> = Arc::new(SqliteStore::open(&path).unwrap());
    conformance::run(s, "sq").await.unwrap();
    let mem: Arc<dyn CampaignStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
    conformance::run(mem, "mem").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_handles_share_a_campaign_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let a: Arc<dyn CampaignStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn CampaignStore> = Arc::new(SqliteStore::open(&path).unwrap());
    two_instances_share(a.clone(), b, "shared").await;

    // Restart: claim half of a new campaign, drop the handle, reopen, claim the rest.
    let c = campaign("restart");
    a.create(&c, &contacts(20)).await.unwrap();
    let first = a.claim_due(&c.id, t0(), 10, &|_| true).await.unwrap();
    drop(a);
    let reopened = SqliteStore::open(&path).unwrap();
    let rest = reopened
        .claim_due(&c.id, t0(), 100, &|_| true)
        .await
        .unwrap();
    let all: HashSet<_> = first
        .iter()
        .chain(rest.iter())
        .map(|c| c.number.clone())
        .collect();
    assert_eq!((first.len(), rest.len(), all.len()), (10, 10, 20));
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_campaign_suite_and_shares_across_instances() {
    let Some(url) = common::database_url("postgres_passes_the_campaign_suite") else {
        return;
    };
    let db = common::fresh_pg_database(&url, "campaign").await;
    let a = callbid_store::PgStore::connect(&db).await.unwrap();
    let b = callbid_store::PgStore::connect(&db).await.unwrap();
    let a: Arc<dyn CampaignStore> = Arc::new(a);
    let b: Arc<dyn CampaignStore> = Arc::new(b);
    conformance::run(a.clone(), "pg").await.unwrap();
    two_instances_share(a, b, "pg-shared").await;
}

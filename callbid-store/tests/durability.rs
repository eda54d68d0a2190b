//! Durability: a process killed with SIGKILL while appending events loses nothing it
//! acknowledged and corrupts nothing.
//!
//! The test re-runs its own binary (`std::env::current_exe()`) in a hidden child mode
//! (the ignored test `durability_child`, selected by an environment variable) that
//! appends events from several tasks as fast as it can and prints `ACK <call> <key>`
//! after each append returns. The parent kills it mid-stream, several times over, then
//! reopens the database and checks every acknowledged event, the derived call rows and
//! `PRAGMA integrity_check`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use callbid_core::state::{CallEvent, CallEventKind, CallLog, CallRecord};
use callbid_core::CallId;
use callbid_store::SqliteStore;

const CHILD_DB: &str = "CALLBID_STORE_DURABILITY_DB";
const CHILD_ROUND: &str = "CALLBID_STORE_DURABILITY_ROUND";

fn event(round: &str, task: usize, i: usize) -> CallEvent {
    let call = CallId::new(format!("{round}-t{task}-CA{}", i / 4)).unwrap();
    let kind = match i % 4 {
        0 => CallEventKind::Incoming {
            caller: None,
            dialed: None,
            campaign: None,
            source: None,
        },
        1 => CallEventKind::IvrInput {
            step: "zip".into(),
            value: "78701".into(),
        },
        2 => CallEventKind::Fallback {
            kind: "voicemail".into(),
            reason: "no bids".into(),
        },
        _ => CallEventKind::Recording {
            url: format!("https://example.invalid/rec/{i}"),
        },
    };
    CallEvent::new(call, chrono::Utc::now(), format!("k{i}"), kind)
}

/// The child: appends until killed. Ignored so a normal test run skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of sigkill_loses_nothing_acknowledged"]
async fn durability_child() {
    let (Ok(path), Ok(round)) = (std::env::var(CHILD_DB), std::env::var(CHILD_ROUND)) else {
        return;
    };
    let store = SqliteStore::open(&path).unwrap();
    let mut tasks = Vec::new();
    for task in 0..4 {
        let store = store.clone();
        let round = round.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let e = event(&round, task, i);
                store.append_event(&e).await.unwrap();
                // Acknowledge only after the append returned (committed).
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {} {}", e.call_id, e.idempotency_key).unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeSet<(String, String)> = BTreeSet::new();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "durability_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &path)
            .env(CHILD_ROUND, format!("r{round}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let target = 150 + 100 * round;
        let mut seen = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (call, key) = rest.split_once(' ').unwrap();
                acked.insert((call.to_string(), key.to_string()));
                seen += 1;
                if seen >= target {
                    break;
                }
            }
        }
        assert!(seen >= target, "child stopped early after {seen} acks");
        child.kill().unwrap(); // SIGKILL: no destructors, no flush, mid-transaction
                               // Acknowledgements already in the pipe were made before the kill: they count.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                if let Some((call, key)) = rest.split_once(' ') {
                    acked.insert((call.to_string(), key.to_string()));
                }
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child must have been killed");
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        let calls: BTreeSet<&String> = acked.iter().map(|(c, _)| c).collect();
        for call in calls {
            let id = CallId::new(call).unwrap();
            let events = store.events(&id).await.unwrap();
            let keys: BTreeSet<&str> = events.iter().map(|e| e.idempotency_key.as_str()).collect();
            for (c, k) in acked.iter().filter(|(c, _)| c == call) {
                assert!(keys.contains(k.as_str()), "acknowledged event {c} {k} lost");
            }
            // The summary row was written in the same transaction as the events.
            let record = store.record(&id).await.unwrap().unwrap();
            assert_eq!(Some(record), CallRecord::from_events(&events), "{call}");
        }
        assert!(acked.len() >= 600);
    });
}

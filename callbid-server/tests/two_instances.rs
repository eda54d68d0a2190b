//! Two `callbid serve` processes on one PostgreSQL database (issue 14, items 5 and 6).
//!
//! Both instances sit behind one public URL, as behind a load balancer: every webhook of
//! a call goes to whichever instance the test picks (they alternate), signed for the
//! shared public URL. The buyers are a local demo network: a capped buyer (`total = 5`)
//! that outbids two others, all three with a 30-day duplicate-caller window, and callers
//! who call twice. Checked:
//! - exactly the cap's number of wins for the capped buyer, and no caller sold twice to
//!   one buyer;
//! - a retried `/ivr/service` sent to the other instance, and later to a restarted one,
//!   is answered with the same TwiML, and every call has one auction in the log;
//! - one instance is killed (SIGKILL) mid-run: requests it did not answer are retried on
//!   the other (as Twilio retries through the balancer), the other keeps serving, and
//!   every call ends with one consistent final status, with the same totals on both
//!   dashboards;
//! - no acknowledged event is lost: every call whose webhooks were answered has its
//!   incoming, forwarded and completed events.

#![cfg(feature = "postgres")]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use callbid_core::state::{CallLog, CallStatus};
use callbid_core::CallId;
use callbid_server::demo::{MockBuyer, MockKind, MockNetwork};
use callbid_store::Store;
use callbid_twilio::signature::{RequestValidator, SIGNATURE_HEADER};

const PUBLIC: &str = "https://callbid.test";
const TOKEN: &str = "two-instance-test-token-0123456789abcdef";
const CAP: usize = 5;
const CALLS: usize = 24;

/// `DATABASE_URL` with a fresh database of this run's own.
async fn fresh_database() -> String {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect("DATABASE_URL (source .ci/postgres.sh)");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to DATABASE_URL");
    let task = tokio::spawn(conn);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = format!("two_instances_{}_{nanos}", std::process::id());
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("CREATE DATABASE");
    drop(client);
    let _ = task.await;
    let (base, query) = url
        .split_once('?')
        .map_or((url.as_str(), String::new()), |(b, q)| (b, format!("?{q}")));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}

fn buyer(name: &str, cents: u32, dest: &str, i: usize) -> MockBuyer {
    MockBuyer {
        name: name.to_owned(),
        kind: MockKind::ServiceDirect,
        price_min_cents: cents,
        price_max_cents: cents,
        no_bid_rate: 0.0,
        accept_rate: 1.0,
        latency_min_ms: 2,
        latency_max_ms: 8,
        failure_rate: 0.0,
        destination: dest.to_owned(),
        min_duration_secs: 60,
        api_key: format!("two-instances-key-{i}"),
    }
}

/// The network's `buyers.toml` with the rules under test added to each buyer.
fn buyers_toml(net: &MockNetwork) -> String {
    let mut out = String::new();
    for block in net.buyers_toml().split("\n[[buyer]]\n") {
        if out.is_empty() {
            out.push_str(block);
            continue;
        }
        out.push_str("\n[[buyer]]\n");
        let (head, rest) = block.split_once('\n').unwrap();
        out.push_str(head);
        out.push_str("\nduplicate_caller_days = 30\n");
        if head.contains("\"capped\"") {
            out.push_str(&format!("caps = {{ total = {CAP} }}\n"));
        }
        out.push_str(rest);
    }
    out
}

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `callbid serve` and waits for its listening line.
fn spawn(dir: &Path, config: &Path, keys: &[(String, String)]) -> Instance {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callbid"));
    cmd.current_dir(dir)
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLBID_")) {
        cmd.env_remove(k);
    }
    for (k, v) in keys {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn callbid serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("callbid IVR listening on http://") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("callbid serve did not print its listening address within 60 s");
    let addr: SocketAddr = addr.parse().unwrap();
    Instance {
        child,
        base: format!("http://{addr}"),
    }
}

fn write_config(dir: &Path, name: &str, db: &str, buyers: &Path) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "listen = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC}\"\nauth_token = \"{TOKEN}\"\n\
             database_url = \"{db}\"\nbuyers = \"{}\"\ndeadline_ms = 3000\nrecord = false\n",
            buyers.display()
        ),
    )
    .unwrap();
    p
}

fn encode(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let v = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Posts a webhook signed for the public URL to `base` (one instance). `Err` when the
/// instance did not answer (killed).
async fn post(
    http: &reqwest::Client,
    base: &str,
    path_and_query: &str,
    params: &[(&str, String)],
) -> Result<(u16, String), reqwest::Error> {
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sig = RequestValidator::new(TOKEN)
        .compute_signature(&format!("{PUBLIC}{path_and_query}"), &pairs);
    let res = http
        .post(format!("{base}{path_and_query}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(SIGNATURE_HEADER, sig)
        .body(encode(params))
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.text().await?))
}

/// The live instances; `post_any` tries the preferred one first, then the others (the
/// balancer's retry after a connection failure).
struct Fleet {
    http: reqwest::Client,
    bases: Vec<String>,
    /// Webhooks answered.
    answered: std::sync::atomic::AtomicUsize,
    /// Webhooks the preferred instance did not answer, answered by another.
    failovers: std::sync::atomic::AtomicUsize,
    /// Signalled when `answered` reaches `kill_at`.
    kill_at: usize,
    kill: tokio::sync::Notify,
}

impl Fleet {
    async fn post_any(&self, prefer: usize, path: &str, params: &[(&str, String)]) -> String {
        use std::sync::atomic::Ordering::SeqCst;
        let bases = &self.bases;
        let mut last = None;
        for k in 0..bases.len() {
            let base = &bases[(prefer + k) % bases.len()];
            match post(&self.http, base, path, params).await {
                Ok((status, body)) => {
                    assert!(status < 300, "{path} on {base}: {status} {body}");
                    if k > 0 {
                        self.failovers.fetch_add(1, SeqCst);
                    }
                    if self.answered.fetch_add(1, SeqCst) + 1 == self.kill_at {
                        self.kill.notify_one();
                    }
                    return body;
                }
                Err(e) => last = Some(e),
            }
        }
        panic!("no instance answered {path}: {last:?}");
    }
}

fn base_params(sid: &str, caller: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CallSid", sid.to_owned()),
        (
            "AccountSid",
            "AC00000000000000000000000000000000".to_owned(),
        ),
        ("From", caller.to_owned()),
        ("To", "+15125550100".to_owned()),
        ("CallStatus", "in-progress".to_owned()),
    ]
}

fn with(
    mut p: Vec<(&'static str, String)>,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    p.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    p
}

/// The service request of a call (what a retry resends verbatim).
fn service_request(sid: &str, caller: &str) -> (String, Vec<(&'static str, String)>) {
    (
        "/ivr/service?zip=78701&attempt=1".to_owned(),
        with(base_params(sid, caller), &[("Digits", "1")]),
    )
}

/// One whole call, webhooks alternating between instances from `first`. Returns the
/// TwiML answered to its service step.
async fn call(fleet: &Fleet, i: usize, sid: &str, caller: &str) -> String {
    let p = base_params(sid, caller);
    fleet.post_any(i, "/voice", &p).await;
    fleet
        .post_any(
            i + 1,
            "/ivr/zip?attempt=1",
            &with(p.clone(), &[("Digits", "78701")]),
        )
        .await;
    let (path, sp) = service_request(sid, caller);
    let twiml = fleet.post_any(i, &path, &sp).await;
    if twiml.contains("<Dial") {
        let dr = with(
            p.clone(),
            &[("DialCallStatus", "completed"), ("DialCallDuration", "90")],
        );
        fleet.post_any(i + 1, "/ivr/dial-result", &dr).await;
    }
    let mut done = base_params(sid, caller);
    done.retain(|(k, _)| *k != "CallStatus");
    let done = with(
        done,
        &[("CallStatus", "completed"), ("CallDuration", "100")],
    );
    fleet.post_any(i, "/ivr/status", &done).await;
    twiml
}

fn caller_of(i: usize) -> String {
    // Calls 16.. repeat the callers of calls 0..: each caller calls at most twice.
    format!("+1512555{:04}", 2000 + i % 16)
}

#[cfg_attr(
    callbid_no_postgres,
    ignore = "needs PostgreSQL: DATABASE_URL was not set when the tests were built (source .ci/postgres.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_agree_and_survive_a_kill() {
    let db = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let net = MockNetwork::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        vec![
            buyer("capped", 9000, "5125550101", 0),
            buyer("second", 4000, "5125550102", 1),
            buyer("third", 2000, "5125550103", 2),
        ],
        7,
    )
    .await
    .unwrap();
    let buyers = dir.path().join("buyers.toml");
    std::fs::write(&buyers, buyers_toml(&net)).unwrap();
    let keys = net.env_keys();
    let cfg = write_config(dir.path(), "callbid.toml", &db, &buyers);
    let a = spawn(dir.path(), &cfg, &keys);
    let mut b = Some(spawn(dir.path(), &cfg, &keys));
    let fleet = Arc::new(Fleet {
        http: reqwest::Client::new(),
        bases: vec![a.base.clone(), b.as_ref().unwrap().base.clone()],
        answered: Default::default(),
        failovers: Default::default(),
        // Five webhooks a call: B dies a third of the way into the second half.
        kill_at: CALLS / 2 * 5 + CALLS / 2 * 5 / 3,
        kill: tokio::sync::Notify::new(),
    });
    let sid = |i: usize| format!("CA{:032}", 7_000_000 + i);

    // First half across both instances, four calls at a time.
    let mut twiml: HashMap<usize, String> = HashMap::new();
    for chunk in (0..CALLS / 2).collect::<Vec<_>>().chunks(4) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let f = fleet.clone();
                let (s, c) = (sid(i), caller_of(i));
                tokio::spawn(async move { (i, call(&f, i, &s, &c).await) })
            })
            .collect();
        for t in tasks {
            let (i, t) = t.await.unwrap();
            twiml.insert(i, t);
        }
    }

    // A retried service step on the other instance: the same TwiML, no second auction.
    let http = reqwest::Client::new();
    let b_base = b.as_ref().unwrap().base.clone();
    for i in [0usize, 1, 2, 3] {
        let (path, p) = service_request(&sid(i), &caller_of(i));
        // Call i's service step went to instance i % 2; retry on the other one.
        let other = if i % 2 == 0 { &b_base } else { &a.base };
        let (status, body) = post(&http, other, &path, &p).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, twiml[&i], "retry of call {i} on the other instance");
    }

    // Kill B while the second half is in flight; the balancer retries on A.
    let tasks: Vec<_> = (CALLS / 2..CALLS)
        .map(|i| {
            let f = fleet.clone();
            let (s, c) = (sid(i), caller_of(i));
            tokio::spawn(async move { (i, call(&f, i, &s, &c).await) })
        })
        .collect();
    fleet.kill.notified().await;
    drop(b.take()); // SIGKILL
    for t in tasks {
        let (i, t) = t.await.unwrap();
        twiml.insert(i, t);
    }

    let failovers = fleet.failovers.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("webhooks answered by A after B was killed: {failovers}");
    assert!(failovers > 0, "the kill came after the last webhook to B");

    // A restarted instance answers a retry with the same TwiML.
    let b2 = spawn(dir.path(), &cfg, &keys);
    for i in [4usize, 5, CALLS - 1] {
        let (path, p) = service_request(&sid(i), &caller_of(i));
        let (status, body) = post(&http, &b2.base, &path, &p).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, twiml[&i], "retry of call {i} on a restarted instance");
    }

    check_log(&db, &sid).await;
    same_dashboards(&http, &a.base, &b2.base).await;
    net.stop();
}

/// The store's view: one auction per call, the cap's number of wins, nobody sold twice to
/// one buyer, every acknowledged call complete.
async fn check_log(db: &str, sid: &dyn Fn(usize) -> String) {
    let store = Store::open(db).await.unwrap();
    let mut capped = 0;
    let mut sold: HashSet<(String, String)> = HashSet::new();
    for i in 0..CALLS {
        let id = CallId::new(sid(i)).unwrap();
        let events = store.events(&id).await.unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind.type_name()).collect();
        let auctions = kinds.iter().filter(|k| **k == "auction_started").count();
        assert_eq!(auctions, 1, "call {i}: {auctions} auctions in {kinds:?}");
        for k in ["incoming", "forwarded", "completed"] {
            assert!(kinds.contains(&k), "call {i} lost its {k} event: {kinds:?}");
        }
        let r = store.record(&id).await.unwrap().unwrap();
        assert_eq!(r.status, CallStatus::Completed, "call {i}: {r:?}");
        let buyer = r.buyer.as_ref().expect("a buyer").as_str().to_owned();
        if buyer == "capped" {
            capped += 1;
        }
        let caller = r.caller.as_ref().unwrap().as_str().to_owned();
        assert!(
            sold.insert((caller.clone(), buyer.clone())),
            "caller {caller} sold twice to {buyer} (call {i})"
        );
    }
    assert_eq!(capped, CAP, "wins of the capped buyer");
}

async fn same_dashboards(http: &reqwest::Client, a: &str, b: &str) {
    let get = |base: String| {
        let http = http.clone();
        async move {
            http.get(format!("{base}/api/summary"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let (sa, sb) = (get(a.to_owned()).await, get(b.to_owned()).await);
    assert_eq!(sa, sb, "the two dashboards' summaries");
    let calls = sa["total"]["calls"].as_u64();
    assert_eq!(calls, Some(CALLS as u64), "summary: {sa}");
}

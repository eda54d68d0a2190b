//! Server throughput (issue 13): complete, correctly signed calls against the real IVR
//! router, over real HTTP on loopback, from a Rust client, against the same requests
//! answered by a bare axum handler with fixed TwiML (the floor).
//!
//! Each call is five webhooks, as Twilio sends them: `POST /voice`, the ZIP Gather
//! (`/ivr/zip?attempt=1`), the menu Gather (`/ivr/service?zip=78701&attempt=1`, which
//! runs the auction over four in-process buyers that answer at once and answers the
//! `<Dial>`), the Dial action (`/ivr/dial-result`, completed after 90 s) and the status
//! callback (`/ivr/status`, which settles the call). Every request carries a valid
//! `X-Twilio-Signature`; every answer is checked (a `<Dial>` for the menu step).
//!
//! The server runs in a child process (this same binary, re-executed), so its CPU time is
//! read from `/proc/<pid>/task/*/schedstat` apart from the client's. Reported per store and
//! concurrency: calls/s, p50 and p99 per webhook, server CPU per call, and the ratio of
//! the server's CPU per call to the floor's.
//!
//! Memory under load: `cargo bench --bench ivr_server -- memory [CALLS] [FLOOD]` drives
//! CALLS complete calls (default 100,000) at concurrency 32 against the IVR on in-memory
//! SQLite (the call log grows in memory there, so it is the worst case for the process),
//! printing the server's resident memory (`VmRSS`, and its peak `VmHWM`, from
//! `/proc/<pid>/status`) every tenth of the run, then sends FLOOD `/voice`-only requests
//! (default 100,000: calls that never get a status callback) to a fresh server on a
//! SQLite file and prints the same figures.
//!
//! Run: `cargo bench --bench ivr_server -- [CALLS] [sqlite|postgres]` (default 400 calls
//! per concurrency; `sqlite` or `postgres` runs that store only); with
//! `DATABASE_URL=postgres://…` it also runs on PostgreSQL (build with
//! `--features postgres`). `IVR_BENCH_CONCURRENCY=64` (a comma list) runs only those
//! concurrencies, for profiling one of them. This measures a server, not a function, so it has its own
//! harness instead of criterion's.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbid::core::auction::Strategy;
use callbid::core::billing::PayoutRule;
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::{BuyerEntry, BuyerId, Destination, Money};
use callbid::store::Store;
use callbid_server::ivr::fallback::{FallbackChain, DEFAULT_MESSAGE};
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::ivr::{self as app, App, IvrConfig, Stores};
use callbid_server::settle::build_auction;
use callbid_twilio::signature::{RequestValidator, WebhookVerifier};
use rust_decimal::Decimal;

const TOKEN: &str = "ivr-server-bench-token";
const ROLE: &str = "IVR_BENCH_ROLE";
const DB: &str = "IVR_BENCH_DB";
const FLOOR_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Thanks for calling.</Say><Gather input="dtmf" numDigits="5" action="/ivr/zip?attempt=1"><Say>Please enter your ZIP code.</Say></Gather></Response>"#;

// ---------------------------------------------------------------------------------------
// The child: the IVR (or the floor) on a free port; prints its base URL.

fn child_main(role: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = if role == "floor" {
            floor_router()
        } else {
            let url = std::env::var(DB).expect("IVR_BENCH_DB");
            ivr_router(&base, &url).await
        };
        println!("listening {base}");
        axum::serve(listener, router).await.expect("serve");
    });
}

fn floor_router() -> axum::Router {
    axum::Router::new().fallback(|| async {
        (
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            FLOOR_TWIML,
        )
    })
}

async fn ivr_router(base: &str, url: &str) -> axum::Router {
    let store = Store::open(url).await.expect("store");
    let h = store.handles();
    let entries = (0..4)
        .map(|i| {
            let b = InProcessBuyer::new(
                BuyerId::new(format!("buyer{i}")).expect("id"),
                Money::usd(Decimal::new(2000 + 100 * i, 2)),
                Destination::parse(&format!("+1512555077{i}")).expect("destination"),
            );
            BuyerEntry::new(Arc::new(b))
        })
        .collect();
    let auction = build_auction(
        entries,
        h.history.clone(),
        Strategy::HighestScore,
        Duration::from_millis(2000),
    )
    .expect("auction");
    let config = IvrConfig {
        public_url: base.to_owned(),
        menu: Menu::parse("1=Plumbing,2=Pest Control").expect("menu"),
        campaigns: Campaigns::demo(),
        fallback: FallbackChain::parse(
            "message",
            None,
            DEFAULT_MESSAGE,
            &format!("{base}/ivr/fallback"),
        )
        .expect("fallback"),
        payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
        dial_timeout: 25,
        record: false,
        greeting: "Thanks for calling.".to_owned(),
        log_calls: false,
    };
    let stores = Stores {
        log: h.log.clone(),
        caps: h.caps.clone(),
        history: h.history.clone(),
        routing: h.routing.clone(),
        agents: None,
        pools: None,
    };
    let verifier = WebhookVerifier::new(base, TOKEN).expect("verifier");
    app::router(App::new(config, stores, auction, Some(verifier)))
}

// ---------------------------------------------------------------------------------------
// The parent: starts a child, drives calls, reads the child's CPU time.

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(role: &str, db: &str) -> Server {
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .env(ROLE, role)
        .env(DB, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the server");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("banner");
    let base = line
        .trim()
        .strip_prefix("listening ")
        .expect("a listening line")
        .to_owned();
    Server { child, base }
}

/// The child's CPU time, summed over its threads, in nanoseconds: the first field of
/// each `/proc/<pid>/task/<tid>/schedstat` (time on a CPU), which has none of the 10 ms
/// granularity of `stat`'s clock ticks. Threads that ended are not counted (the server's
/// runtime keeps its workers).
fn cpu(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    Duration::from_nanos(ns)
}

struct Client {
    http: reqwest::Client,
    base: String,
    signer: RequestValidator,
}

impl Client {
    /// One signed webhook; its latency, or why it failed.
    async fn post(
        &self,
        path: &str,
        params: &[(&str, String)],
        expect: &str,
    ) -> Result<Duration, String> {
        let url = format!("{}{path}", self.base);
        let mut sorted: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sorted.sort();
        let sig = self.signer.compute_signature(&url, &sorted);
        let t = Instant::now();
        let res = self
            .http
            .post(&url)
            .header("X-Twilio-Signature", sig)
            .form(&sorted)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| format!("{path}: {e}"))?;
        let took = t.elapsed();
        if !status.is_success() || !body.contains(expect) {
            return Err(format!("{path}: {status} {}", &body[..body.len().min(200)]));
        }
        Ok(took)
    }

    /// One complete call; the latency of each webhook.
    async fn call(&self, sid: String, floor: bool) -> Result<[Duration; 5], String> {
        let base = |status: &str| {
            vec![
                (
                    "AccountSid",
                    "AC0123456789abcdef0123456789abcdef".to_owned(),
                ),
                ("ApiVersion", "2010-04-01".to_owned()),
                ("CallSid", sid.clone()),
                ("CallStatus", status.to_owned()),
                ("Direction", "inbound".to_owned()),
                ("From", "+15125550123".to_owned()),
                ("To", "+18005550100".to_owned()),
            ]
        };
        let with = |status: &str, extra: &[(&'static str, &str)]| {
            let mut p = base(status);
            p.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            p
        };
        let (gather, dial) = if floor {
            ("Gather", "Response")
        } else {
            ("<Gather", "<Dial")
        };
        Ok([
            self.post("/voice", &base("ringing"), gather).await?,
            self.post(
                "/ivr/zip?attempt=1",
                &with("in-progress", &[("Digits", "78701")]),
                "Response",
            )
            .await?,
            self.post(
                "/ivr/service?zip=78701&attempt=1",
                &with("in-progress", &[("Digits", "1")]),
                dial,
            )
            .await?,
            self.post(
                "/ivr/dial-result",
                &with(
                    "in-progress",
                    &[
                        ("DialCallStatus", "completed"),
                        ("DialCallDuration", "90"),
                        ("DialCallSid", "CAffffffffffffffffffffffffffffffff"),
                    ],
                ),
                "",
            )
            .await?,
            self.post(
                "/ivr/status",
                &with(
                    "completed",
                    &[("CallDuration", "95"), ("SequenceNumber", "0")],
                ),
                "",
            )
            .await?,
        ])
    }
}

impl Client {
    /// One `/voice` webhook only (a call that never gets another one).
    async fn voice(&self, sid: String) -> Result<Duration, String> {
        let params = vec![
            (
                "AccountSid",
                "AC0123456789abcdef0123456789abcdef".to_owned(),
            ),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("CallSid", sid),
            ("CallStatus", "ringing".to_owned()),
            ("Direction", "inbound".to_owned()),
            ("From", "+15125550123".to_owned()),
            ("To", "+18005550100".to_owned()),
        ];
        self.post("/voice", &params, "<Gather").await
    }
}

/// `VmRSS` and `VmHWM` of `pid` in MiB.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn memory(calls: usize, flood: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = spawn("ivr", "sqlite::memory:");
    let pid = server.child.id();
    let (r0, _) = rss(pid);
    println!(
        "memory under load: the IVR on in-memory SQLite, {calls} complete calls at concurrency 32"
    );
    println!("| calls done | calls/s (this tenth) | VmRSS | VmHWM | errors |");
    println!("|---:|---:|---:|---:|---:|");
    println!("| 0 | | {r0:.1} MiB | | |");
    let step = (calls / 10).max(1);
    let mut done = 0;
    let mut i = 0u64;
    while done < calls {
        let n = step.min(calls - done);
        let run = drive(&server, n, 32, false, (1 << 40) + i * 10_000_000).await;
        done += n;
        i += 1;
        let (now, peak) = rss(pid);
        println!(
            "| {done} | {:.0} | {now:.1} MiB | {peak:.1} MiB | {} |",
            run.calls_per_sec, run.errors
        );
    }
    drop(server);
    let db = format!("sqlite://{}", dir.path().join("flood.db").display());
    let server = spawn("ivr", &db);
    let pid = server.child.id();
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        base: server.base.clone(),
        signer: RequestValidator::new(TOKEN),
    });
    println!();
    println!("`/voice` flood: {flood} calls that never get a status callback, SQLite file, concurrency 64");
    println!("| requests done | VmRSS | VmHWM | errors |");
    println!("|---:|---:|---:|---:|");
    let (r0, _) = rss(pid);
    println!("| 0 | {r0:.1} MiB | | |");
    let step = (flood / 10).max(1);
    let mut sent = 0;
    while sent < flood {
        let n = step.min(flood - sent);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (client, next) = (client.clone(), next.clone());
                let base = sent;
                tokio::spawn(async move {
                    let mut errors = 0usize;
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= n {
                            break;
                        }
                        let sid = format!("CA{:016x}{:016x}", 7u64 << 40, base + k);
                        if client.voice(sid).await.is_err() {
                            errors += 1;
                        }
                    }
                    errors
                })
            })
            .collect();
        let mut errors = 0;
        for t in tasks {
            errors += t.await.expect("task");
        }
        sent += n;
        let (now, peak) = rss(pid);
        println!("| {sent} | {now:.1} MiB | {peak:.1} MiB | {errors} |");
    }
}

struct Run {
    calls_per_sec: f64,
    p50: Duration,
    p99: Duration,
    cpu_per_call: Duration,
    errors: usize,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn drive(server: &Server, calls: usize, concurrency: usize, floor: bool, tag: u64) -> Run {
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .expect("client"),
        base: server.base.clone(),
        signer: RequestValidator::new(TOKEN),
    });
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu0 = cpu(server.child.id());
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= calls {
                        break;
                    }
                    let sid = format!("CA{tag:016x}{n:016x}");
                    match client.call(sid, floor).await {
                        Ok(l) => lat.extend(l),
                        Err(e) => errors.push(e),
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (l, e) = t.await.expect("task");
        lat.extend(l);
        errors.extend(e);
    }
    let wall = t0.elapsed();
    let used = cpu(server.child.id()).saturating_sub(cpu0);
    if let Some(e) = errors.first() {
        eprintln!("{} failed calls, first: {e}", errors.len());
    }
    lat.sort();
    Run {
        calls_per_sec: calls as f64 / wall.as_secs_f64(),
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        cpu_per_call: used / calls as u32,
        errors: errors.len(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The concurrencies to run: 1, 8, 32 and 64, or those listed in `IVR_BENCH_CONCURRENCY`.
fn concurrencies() -> Vec<usize> {
    let listed: Vec<usize> = std::env::var("IVR_BENCH_CONCURRENCY")
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| c > 0)
        .collect();
    if listed.is_empty() {
        vec![1, 8, 32, 64]
    } else {
        listed
    }
}

async fn parent(calls: usize, only: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stores = vec![(
        "SQLite file".to_owned(),
        format!("sqlite://{}", dir.path().join("bench.db").display()),
    )];
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if cfg!(feature = "postgres") {
            stores.push(("PostgreSQL".to_owned(), url));
        } else {
            eprintln!("DATABASE_URL is set but the bench was built without --features postgres: SQLite only");
        }
    }
    if let Some(only) = only {
        stores.retain(|(name, _)| name.to_lowercase().starts_with(only));
    }
    let floor = spawn("floor", "");
    let tag = u64::from(std::process::id()) << 20;
    println!("{calls} complete calls (5 signed webhooks each) per row");
    println!("| store | concurrency | calls/s | p50 per webhook | p99 per webhook | server CPU per call | floor CPU per call | ratio | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, url) in &stores {
        let server = spawn("ivr", url);
        for (i, c) in concurrencies().into_iter().enumerate() {
            let n = if c == 1 { calls / 4 } else { calls };
            let run = drive(&server, n, c, false, tag + (i as u64) * 1_000_000).await;
            let base = drive(&floor, n, c, true, tag).await;
            let ratio = run.cpu_per_call.as_secs_f64() / base.cpu_per_call.as_secs_f64().max(1e-9);
            println!(
                "| {name} | {c} | {:.0} | {} | {} | {} | {} | {ratio:.1}× | {} |",
                run.calls_per_sec,
                ms(run.p50),
                ms(run.p99),
                ms(run.cpu_per_call),
                ms(base.cpu_per_call),
                run.errors
            );
        }
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child_main(&role);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.iter().any(|a| a == "memory") {
        let calls = numbers.first().copied().unwrap_or(100_000);
        let flood = numbers.get(1).copied().unwrap_or(100_000);
        rt.block_on(memory(calls, flood));
    } else {
        let only = args
            .iter()
            .map(String::as_str)
            .find(|a| *a == "sqlite" || *a == "postgres");
        rt.block_on(parent(numbers.first().copied().unwrap_or(400), only));
    }
}

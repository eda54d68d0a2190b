//! Cap reservations on one hot counter across two processes sharing PostgreSQL, against
//! the floor: a bare `UPDATE … SET used = used + 1 WHERE used + 1 <= limit RETURNING`
//! on one row, with the same processes, tasks and connections.
//!
//!     DATABASE_URL=postgres://… cargo bench --features postgres --bench cap_counter [-- ROUNDS LIMIT]
//!
//! Each round runs the floor and then `PgStore::reserve`, each as two child processes
//! (this binary re-run) that start at one instant, with 50 tasks each over 16
//! connections (`PgStore`'s default pool), reserving 1 on one counter until it refuses.
//! The round checks that exactly LIMIT (default 6,000) were granted in all, and prints
//! reservations per second (LIMIT over the time from the start to the last refusal) for
//! both and their ratio. Without `DATABASE_URL` it says so and does nothing.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callbid::core::state::{
    CapStore, CounterIncrement, ReservationId, ReservationRequest, ReserveOutcome,
};
use callbid::store::{PgOptions, PgStore};
use chrono::Utc;
use rust_decimal::Decimal;

const TASKS: usize = 50;
const CONNECTIONS: usize = 16;

fn unix_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Sleeps until the shared start instant (unix µs).
async fn wait_for(start_us: u128) {
    let now = unix_us();
    if start_us > now {
        let us = u64::try_from(start_us - now).unwrap_or(0);
        tokio::time::sleep(Duration::from_micros(us)).await;
    }
}

/// Child, store mode: reserve on `key` through `PgStore` until refused. Prints
/// `GRANTS n END_US`.
async fn child_store(url: &str, key: &str, name: &str, limit: i64, start_us: u128) {
    let store = PgStore::connect_with(url, PgOptions::default().with_max_connections(CONNECTIONS))
        .await
        .expect("connect");
    let store = Arc::new(store);
    let grants = Arc::new(AtomicU64::new(0));
    wait_for(start_us).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, grants, key) = (store.clone(), grants.clone(), key.to_string());
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let req = ReservationRequest {
                    id: ReservationId(format!("{key}-{name}-{t}-{i}")),
                    increments: vec![CounterIncrement {
                        key: key.clone(),
                        amount: Decimal::ONE,
                        limit: Decimal::from(limit),
                    }],
                    expires_at: None,
                    now: Utc::now(),
                    deadline: None,
                };
                match store.reserve(&req).await.expect("reserve") {
                    ReserveOutcome::Reserved => grants.fetch_add(1, Ordering::Relaxed),
                    _ => break,
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    println!("GRANTS {} {}", grants.load(Ordering::Relaxed), unix_us());
}

/// Child, floor mode: the bare conditional `UPDATE` on one row until it updates nothing.
async fn child_floor(url: &str, key: &str, limit: i64, start_us: u128) {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        clients.push(Arc::new(client));
    }
    let grants = Arc::new(AtomicU64::new(0));
    wait_for(start_us).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (client, grants, key) = (
            clients[t % CONNECTIONS].clone(),
            grants.clone(),
            key.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let st = client
                .prepare(
                    "UPDATE bench_hot_counters SET used = used + 1 \
                     WHERE counter = $1 AND used + 1 <= $2 RETURNING used",
                )
                .await
                .expect("prepare");
            let limit = Decimal::from(limit);
            while !client
                .query(&st, &[&key, &limit])
                .await
                .expect("update")
                .is_empty()
            {
                grants.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    println!("GRANTS {} {}", grants.load(Ordering::Relaxed), unix_us());
}

/// Runs one mode as two children; returns reservations per second.
fn run_pair(mode: &str, url: &str, key: &str, limit: i64) -> f64 {
    let exe = std::env::current_exe().expect("exe");
    let start = unix_us() + 1_500_000;
    let children: Vec<_> = ["A", "B"]
        .iter()
        .map(|name| {
            Command::new(&exe)
                .args([
                    "child",
                    mode,
                    url,
                    key,
                    name,
                    &limit.to_string(),
                    &start.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    let (mut grants, mut end) = (0u64, 0u128);
    for c in children {
        let out = c.wait_with_output().expect("child");
        assert!(out.status.success(), "{mode} child failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("GRANTS"))
            .expect("GRANTS line");
        let mut it = line.split_whitespace().skip(1);
        grants += it
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .expect("grants");
        end = end.max(it.next().and_then(|s| s.parse().ok()).expect("end"));
    }
    assert_eq!(
        grants, limit as u64,
        "{mode}: granted {grants}, the cap is {limit}"
    );
    limit as f64 / ((end - start) as f64 / 1e6)
}

async fn prepare_floor(url: &str, key: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_hot_counters (counter TEXT PRIMARY KEY, used NUMERIC NOT NULL)",
        )
        .await
        .expect("create");
    client
        .execute(
            "INSERT INTO bench_hot_counters (counter, used) VALUES ($1, 0)",
            &[&key],
        )
        .await
        .expect("insert");
    // Migrate before the race.
    drop(PgStore::connect(url).await.expect("connect store"));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if let Some(i) = args.iter().position(|a| a == "child") {
        let a = &args[i + 1..];
        let (mode, url, key, name) = (&a[0], &a[1], &a[2], &a[3]);
        let limit: i64 = a[4].parse().expect("limit");
        let start: u128 = a[5].parse().expect("start");
        match mode.as_str() {
            "floor" => rt.block_on(child_floor(url, key, limit, start)),
            _ => rt.block_on(child_store(url, key, name, limit, start)),
        }
        return;
    }
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("cap_counter: DATABASE_URL is not set; nothing measured");
        return;
    };
    let nums: Vec<i64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rounds = nums.first().copied().unwrap_or(3);
    let limit = nums.get(1).copied().unwrap_or(6_000);
    println!("one hot counter, 2 processes × {TASKS} tasks over {CONNECTIONS} connections each, cap {limit}");
    println!("| round | floor: bare UPDATE (res/s) | PgStore::reserve (res/s) | store / floor |");
    println!("|---:|---:|---:|---:|");
    for round in 0..rounds {
        let key = format!("hot-{}-{round}-{}", std::process::id(), unix_us());
        rt.block_on(prepare_floor(&url, &key));
        let floor = run_pair("floor", &url, &key, limit);
        let store = run_pair("store", &url, &key, limit);
        println!(
            "| {round} | {floor:.0} | {store:.0} | {:.2} |",
            store / floor
        );
    }
}

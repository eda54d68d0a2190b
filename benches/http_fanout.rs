//! HTTP fan-out: an auction over 16 HTTP buyers (loaded from a `buyers.toml` string,
//! sent through callbid-buyers' shared executor) against a tiny axum server on loopback,
//! beside the floor: a bare concurrent reqwest fan-out of the same 16 requests (same
//! bodies, same pooled client settings, answers read and parsed as JSON).
//!
//! Run: `cargo bench --bench http_fanout`. After criterion's group it prints, from one
//! interleaved run, the mean of each and the ratio auction ÷ floor.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use callbid::buyers::config::BuyersLoader;
use callbid::core::auction::Auction;
use callbid::core::state::{MemoryCapStore, MemorySeenCallers};
use callbid::core::*;
use criterion::{criterion_group, Criterion};

const BUYERS: usize = 16;

async fn ping(Path(n): Path<u32>) -> impl IntoResponse {
    let body = format!(
        r#"{{"result":{{"accepted":true,"payout":"{}.{:02}","did":"+1800555{:04}","id":"bid-{n}"}}}}"#,
        10 + n,
        n % 100,
        n
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn start_server() -> SocketAddr {
    let app = Router::new().route("/ping/{n}", post(ping));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

fn buyers_toml(addr: SocketAddr) -> String {
    (0..BUYERS)
        .map(|i| {
            format!(
                r#"
[[buyer]]
id = "buyer-{i:02}"
adapter = "ping_post"
[buyer.ping_post]
base_url = "http://{addr}"
params = {{ n = "{i}" }}
[buyer.ping_post.ping.request]
url = "{{base}}/ping/{{param.n}}"
json = {{ caller = "{{caller}}", zip = "{{zip}}", state = "{{state}}", service = "{{service}}" }}
[buyer.ping_post.ping.response]
accepted = [{{ pointer = "/result/accepted", equals = true }}]
price = "/result/payout"
destination = ["/result/did"]
bid_id = "/result/id"
"#
            )
        })
        .collect()
}

struct Setup {
    auction: Auction,
    buyers: Vec<Arc<dyn Buyer>>,
    client: reqwest::Client,
    addr: SocketAddr,
    call: CallContext,
}

fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    let addr = rt.block_on(start_server());
    let entries = rt.block_on(async {
        BuyersLoader::new(
            Arc::new(MemoryCapStore::new()),
            Arc::new(MemorySeenCallers::new()),
        )
        .load_str(&buyers_toml(addr))
        .unwrap()
    });
    let buyers: Vec<Arc<dyn Buyer>> = entries.iter().map(|e| e.buyer.clone()).collect();
    let auction = Auction::builder()
        .buyers(entries)
        .report_losses(false)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    // The same client settings as the executor's defaults.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(32)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let call = CallContext::new(
        CallId::new("CA0123456789abcdef").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
    .with_caller(PhoneNumber::parse("+15125550123").unwrap());
    Setup {
        auction,
        buyers,
        client,
        addr,
        call,
    }
}

/// The floor: 16 concurrent POSTs of the same bodies, answers read and parsed.
async fn floor(s: &Setup) -> usize {
    let reqs = (0..BUYERS).map(|i| {
        let body = serde_json::json!({
            "caller": "+15125550123", "zip": "78701", "state": "TX", "service": "plumbing"
        });
        let url = format!("http://{}/ping/{i}", s.addr);
        let client = &s.client;
        async move {
            let resp = client
                .post(url)
                .timeout(Duration::from_secs(2))
                .json(&body)
                .send()
                .await
                .unwrap();
            let bytes = resp.bytes().await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        }
    });
    futures::future::join_all(reqs).await.len()
}

/// The same 16 HTTP buyers pinged with a bare `join_all` (no auction): separates the
/// adapters' and executor's cost from the auction's.
async fn buyers_only(s: &Setup) -> usize {
    let d = Deadline::after(Duration::from_secs(2));
    let replies = futures::future::join_all(s.buyers.iter().map(|b| b.ping(&s.call, d))).await;
    assert!(replies.iter().all(|r| matches!(r, Ok(PingReply::Bid(_)))));
    replies.len()
}

async fn auction(s: &Setup) -> bool {
    let o = s.auction.run(&s.call).await;
    assert!(o.winner().is_some());
    true
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn http_fanout(c: &mut Criterion) {
    let rt = runtime();
    let s = setup(&rt);
    let mut g = c.benchmark_group("http_fanout_16");
    g.bench_function("auction", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(auction(&s).await) })
    });
    g.bench_function("buyers_join_all", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(buyers_only(&s).await) })
    });
    g.bench_function("floor_reqwest_join_all", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(floor(&s).await) })
    });
    g.finish();
}

/// One interleaved run: mean auction ÷ mean floor (and the buyers alone ÷ floor). The
/// order of the three rotates every round so none always runs on a warmer pool.
fn summary() {
    let rt = runtime();
    let s = setup(&rt);
    let rounds = 2000u32;
    let mut t = [Duration::ZERO; 3];
    rt.block_on(async {
        for _ in 0..100 {
            black_box(auction(&s).await);
            black_box(buyers_only(&s).await);
            black_box(floor(&s).await);
        }
        for i in 0..rounds {
            for k in 0..3 {
                let which = (i as usize + k) % 3;
                let start = Instant::now();
                match which {
                    0 => {
                        black_box(auction(&s).await);
                    }
                    1 => {
                        black_box(buyers_only(&s).await);
                    }
                    _ => {
                        black_box(floor(&s).await);
                    }
                }
                t[which] += start.elapsed();
            }
        }
    });
    let [ta, tb, tf] = t;
    println!("\n== summary (one interleaved run, {rounds} rounds, {BUYERS} buyers) ==");
    println!(
        "auction {:>10.2?}  buyers only {:>10.2?}  floor {:>10.2?}",
        ta / rounds,
        tb / rounds,
        tf / rounds
    );
    println!(
        "ratio auction/floor {:.3}  buyers/floor {:.3}",
        ta.as_secs_f64() / tf.as_secs_f64(),
        tb.as_secs_f64() / tf.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = http_fanout
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}

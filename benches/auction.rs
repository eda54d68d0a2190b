//! Auction latency: an in-process auction over N instant buyers beside the floor, a bare
//! `join_all` over the same buyers' ping futures; heap bytes per auction; scores per second.
//!
//! Run: `cargo bench --bench auction`. After criterion's groups it prints, from one
//! interleaved run, the ratio auction ÷ floor per N and the allocation counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbid::core::auction::Auction;
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::scoring::{Scorer, ScoringEngine};
use callbid::core::*;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use rust_decimal::Decimal;

struct Counting;
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn setup(n: usize) -> (Auction, Vec<Arc<dyn Buyer>>, CallContext) {
    let buyers: Vec<Arc<dyn Buyer>> = (0..n)
        .map(|i| {
            let b = InProcessBuyer::new(
                BuyerId::new(format!("buyer-{i:03}")).unwrap(),
                Money::usd(Decimal::new(1000 + (i as i64 * 37) % 5000, 2)),
                Destination::parse(&format!("+1512555{:04}", i % 10_000)).unwrap(),
            );
            Arc::new(b) as Arc<dyn Buyer>
        })
        .collect();
    let auction = Auction::builder()
        .buyers(buyers.iter().cloned().map(BuyerEntry::new))
        .report_losses(false)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let call = CallContext::new(
        CallId::new("CA0123456789abcdef").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
    .with_caller(PhoneNumber::parse("+15125550123").unwrap());
    (auction, buyers, call)
}

async fn floor(buyers: &[Arc<dyn Buyer>], call: &CallContext) -> usize {
    let d = Deadline::after(Duration::from_secs(2));
    let replies = futures::future::join_all(buyers.iter().map(|b| b.ping(call, d))).await;
    replies.len()
}

const SIZES: [usize; 4] = [1, 8, 64, 512];

fn auction_vs_floor(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("auction_vs_floor");
    for n in SIZES {
        let (auction, buyers, call) = setup(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("auction", n), &n, |b, _| {
            b.to_async(&rt)
                .iter(|| async { black_box(auction.run(&call).await) })
        });
        g.bench_with_input(BenchmarkId::new("floor_join_all", n), &n, |b, _| {
            b.to_async(&rt)
                .iter(|| async { black_box(floor(&buyers, &call).await) })
        });
    }
    g.finish();
}

fn scoring(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = ScoringEngine::default();
    let (_, buyers, call) = setup(64);
    let profiles: Vec<BuyerProfile> = buyers
        .iter()
        .map(|b| BuyerProfile::new(b.id().clone()))
        .collect();
    let bids: Vec<Bid> = buyers
        .iter()
        .enumerate()
        .map(|(i, b)| Bid::new(b.id().clone(), Money::usd(Decimal::new(1000 + i as i64, 2))))
        .collect();
    let pairs: Vec<(&BuyerProfile, &Bid)> = profiles.iter().zip(bids.iter()).collect();
    let mut g = c.benchmark_group("scoring");
    g.throughput(Throughput::Elements(pairs.len() as u64));
    g.bench_function("score_64_bids", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.score(&call, &pairs).await.unwrap()) })
    });
    g.finish();
}

/// What the explanation costs (issue 12): a run alone, a run plus `Auction::explain` and
/// its JSON (what the servers log per auction), and a replay of that JSON (`verify`).
fn explanation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("explanation");
    for n in [4, 64] {
        let (auction, _, call) = setup(n);
        g.bench_with_input(BenchmarkId::new("run", n), &n, |b, _| {
            b.to_async(&rt)
                .iter(|| async { black_box(auction.run(&call).await) })
        });
        g.bench_with_input(BenchmarkId::new("run_explain_json", n), &n, |b, _| {
            b.to_async(&rt).iter(|| async {
                let out = auction.run(&call).await;
                black_box(serde_json::to_string(&auction.explain(&call, &out)).unwrap())
            })
        });
        let out = rt.block_on(auction.run(&call));
        let json = serde_json::to_string(&auction.explain(&call, &out)).unwrap();
        g.bench_with_input(BenchmarkId::new("parse_and_verify", n), &n, |b, _| {
            b.iter(|| {
                let e: callbid::core::auction::AuctionExplanation =
                    serde_json::from_str(&json).unwrap();
                black_box(callbid::core::auction::verify(&e).unwrap().agrees())
            })
        });
        println!("explanation of {n} buyers: {} bytes of JSON", json.len());
    }
    g.finish();
}

/// One interleaved run per N: mean auction time ÷ mean floor time, and heap use.
fn summary() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("\n== summary (one interleaved run) ==");
    // `AUCTION_SUMMARY_SIZES=64` restricts the summary to some sizes;
    // `AUCTION_SUMMARY_ROUNDS=1000` fixes the rounds per size.
    let sizes: Vec<usize> = std::env::var("AUCTION_SUMMARY_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec());
    let fixed_rounds: Option<usize> = std::env::var("AUCTION_SUMMARY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok());
    // `AUCTION_SUMMARY_SIDE=auction` (or `floor`) runs only that side, so that an
    // instruction count (callgrind) is not moved by the allocator state the other side
    // leaves behind; the printed ratio is then meaningless.
    let side = std::env::var("AUCTION_SUMMARY_SIDE").unwrap_or_default();
    let (with_auction, with_floor) = (side != "floor", side != "auction");
    for n in sizes {
        let (auction, buyers, call) = setup(n);
        let rounds = fixed_rounds.unwrap_or((200_000 / n).clamp(200, 20_000));
        let (mut ta, mut tf) = (Duration::ZERO, Duration::ZERO);
        rt.block_on(async {
            for _ in 0..50 {
                if with_auction {
                    black_box(auction.run(&call).await);
                }
                if with_floor {
                    black_box(floor(&buyers, &call).await);
                }
            }
            for _ in 0..rounds {
                if with_auction {
                    let t = Instant::now();
                    black_box(auction.run(&call).await);
                    ta += t.elapsed();
                }
                if with_floor {
                    let t = Instant::now();
                    black_box(floor(&buyers, &call).await);
                    tf += t.elapsed();
                }
            }
        });
        let (a, f) = (ta / rounds as u32, tf / rounds as u32);
        println!(
            "N={n:>3}: auction {a:>10.2?}  floor {f:>10.2?}  ratio {:.2}",
            ta.as_secs_f64() / tf.as_secs_f64()
        );
    }
    let (auction, buyers, call) = setup(64);
    rt.block_on(async {
        black_box(auction.run(&call).await);
        let (b0, n0) = (ALLOCATED.load(Ordering::Relaxed), ALLOCATIONS.load(Ordering::Relaxed));
        black_box(auction.run(&call).await);
        let (b1, n1) = (ALLOCATED.load(Ordering::Relaxed), ALLOCATIONS.load(Ordering::Relaxed));
        black_box(floor(&buyers, &call).await);
        let (b2, n2) = (ALLOCATED.load(Ordering::Relaxed), ALLOCATIONS.load(Ordering::Relaxed));
        println!(
            "N= 64 heap per auction: {} bytes in {} allocations (floor: {} bytes in {} allocations)",
            b1 - b0,
            n1 - n0,
            b2 - b1,
            n2 - n1
        );
    });
}

criterion_group!(benches, auction_vs_floor, scoring, explanation);

fn main() {
    // `AUCTION_SUMMARY_ONLY=1` skips criterion's groups and prints only the interleaved
    // summary (used to profile one run, e.g. under `valgrind --tool=callgrind`).
    let summary_only = std::env::var_os("AUCTION_SUMMARY_ONLY").is_some();
    if !summary_only {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        summary();
    }
}

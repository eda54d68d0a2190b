//! An auction over 20 HTTP buyers, many of them hostile (hanging after the headers,
//! trickling bytes, sending 10 MB, closing mid-body, speaking garbage, refusing
//! connections, answering 429, a gzip bomb, a fake gzip header), finishes by its
//! deadline, records each failure kind, and never panics. Accepts that hang or trickle
//! end by their deadline too.

mod common;

use std::sync::Arc;
use std::time::Duration;

use callbid_buyers::config::BuyersLoader;
use callbid_core::auction::{Auction, BuyerReply};
use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
use callbid_core::{BuyerErrorKind, BuyerId, CallContext, CallId, ServiceType};
use common::{misbehaving, ping_then_misbehave, refused, Misbehaviour};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn buyer_toml(id: &str, base: &str) -> String {
    format!(
        r#"
[[buyer]]
id = "{id}"
adapter = "ping_post"
[buyer.ping_post]
base_url = "{base}"
params = {{ n = "{id}" }}
[buyer.ping_post.ping.request]
url = "{{base}}/ping/{{param.n}}"
json = {{ caller = "{{caller}}", zip = "{{zip}}" }}
[buyer.ping_post.ping.response]
accepted = [{{ pointer = "/result/accepted", equals = true }}]
price = "/result/payout"
destination = ["/result/did"]
"#
    )
}

fn bid(payout: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "result": {"accepted": true, "payout": payout, "did": "+18005550100"}
    }))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Bid,
    NoBid,
    Failed(BuyerErrorKind),
    TimedOut,
    /// Answered 429 in the first round, skipped (nothing sent) after.
    RateLimited,
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn encoded(coding: &str, body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_raw(body, "application/json")
        .insert_header("content-encoding", coding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_endpoints_do_not_hold_the_auction() {
    let good = MockServer::start().await;
    for (id, resp) in [
        ("good-20", bid("20.00")),
        ("good-35", bid("35.00")),
        ("good-50", bid("50.00")),
        ("good-15", bid("15.00")),
        ("nobid-204", ResponseTemplate::new(204)),
        ("error-500", ResponseTemplate::new(500)),
        ("slow-5s", bid("90.00").set_delay(Duration::from_secs(5))),
        (
            "malformed",
            ResponseTemplate::new(200)
                .set_body_raw(b"{\"result\": {\"payout\": ".to_vec(), "application/json"),
        ),
        (
            "rate-limited",
            ResponseTemplate::new(429).insert_header("retry-after", "120"),
        ),
        (
            "gzip-ok-25",
            encoded(
                "gzip",
                gzip(br#"{"result":{"accepted":true,"payout":"25.00","did":"+18005550100"}}"#),
            ),
        ),
        ("gzip-bomb", encoded("gzip", gzip(&vec![b' '; 20_000_000]))),
        (
            "fake-gzip",
            encoded(
                "gzip",
                br#"{"result":{"accepted":true,"payout":"95.00","did":"+18005550100"}}"#.to_vec(),
            ),
        ),
    ] {
        Mock::given(method("POST"))
            .and(path(format!("/ping/{id}")))
            .respond_with(resp)
            .mount(&good)
            .await;
    }
    let mut cases: Vec<(String, String, Want)> = [
        ("good-20", Want::Bid),
        ("good-35", Want::Bid),
        ("good-50", Want::Bid),
        ("good-15", Want::Bid),
        ("nobid-204", Want::NoBid),
        ("error-500", Want::Failed(BuyerErrorKind::BadResponse)),
        ("slow-5s", Want::TimedOut),
        ("malformed", Want::Failed(BuyerErrorKind::BadResponse)),
        ("rate-limited", Want::RateLimited),
        ("gzip-ok-25", Want::Bid),
        ("gzip-bomb", Want::Failed(BuyerErrorKind::BadResponse)),
        ("fake-gzip", Want::Failed(BuyerErrorKind::BadResponse)),
    ]
    .into_iter()
    .map(|(id, w)| (id.to_string(), good.uri(), w))
    .collect();
    for (id, how, want) in [
        (
            "hang-after-headers",
            Misbehaviour::HangAfterHeaders,
            Want::TimedOut,
        ),
        (
            "hang-before-headers",
            Misbehaviour::HangBeforeHeaders,
            Want::TimedOut,
        ),
        ("trickle", Misbehaviour::Trickle, Want::TimedOut),
        (
            "ten-mb-chunked",
            Misbehaviour::TenMegabytesChunked,
            Want::Failed(BuyerErrorKind::BadResponse),
        ),
        (
            "ten-mb-sized",
            Misbehaviour::TenMegabytesSized,
            Want::Failed(BuyerErrorKind::BadResponse),
        ),
        (
            "close-mid-body",
            Misbehaviour::CloseMidBody,
            Want::Failed(BuyerErrorKind::BadResponse),
        ),
        (
            "garbage",
            Misbehaviour::Garbage,
            Want::Failed(BuyerErrorKind::BadResponse),
        ),
    ] {
        let addr = misbehaving(how).await;
        cases.push((id.to_string(), format!("http://{addr}"), want));
    }
    cases.push((
        "refused".into(),
        format!("http://{}", refused().await),
        Want::Failed(BuyerErrorKind::Transport),
    ));
    assert_eq!(cases.len(), 20);

    let toml: String = cases
        .iter()
        .map(|(id, base, _)| buyer_toml(id, base))
        .collect();
    let entries = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .load_str(&toml)
    .unwrap();
    let deadline = Duration::from_millis(800);
    let auction = Auction::builder()
        .buyers(entries)
        .deadline(deadline)
        .build()
        .unwrap();

    for round in 0..3 {
        let call = CallContext::new(
            CallId::new(format!("CA-hostile-{round}")).unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            chrono::Utc::now(),
        )
        .with_caller("+15125550123".parse().unwrap());
        let started = std::time::Instant::now();
        let outcome = auction.run(&call).await;
        let took = started.elapsed();
        assert!(
            took <= deadline + Duration::from_millis(500),
            "round {round}: took {took:?}"
        );

        let winner = outcome.winner().expect("the best good buyer wins");
        assert_eq!(winner.buyer.as_str(), "good-50");
        assert_eq!(winner.bid.price.amount, rust_decimal::Decimal::new(50, 0));

        for (id, _, want) in &cases {
            let rec = outcome
                .record(&BuyerId::new(id).unwrap())
                .unwrap_or_else(|| panic!("no record for {id}"));
            let ok = match (&rec.reply, want) {
                (BuyerReply::Bid { .. }, Want::Bid) => true,
                (BuyerReply::NoBid { .. }, Want::NoBid) => true,
                (BuyerReply::Failed { kind, .. }, Want::Failed(k)) => kind == k,
                (BuyerReply::TimedOut, Want::TimedOut) => true,
                (BuyerReply::Failed { kind, .. }, Want::RateLimited) => {
                    kind.as_str()
                        == if round == 0 {
                            "rate_limited"
                        } else {
                            "rate_limit_skipped"
                        }
                }
                (
                    BuyerReply::Failed {
                        kind: BuyerErrorKind::Timeout,
                        ..
                    },
                    Want::TimedOut,
                ) => true,
                _ => false,
            };
            assert!(
                ok,
                "round {round}: {id}: expected {want:?}, got {:?}",
                rec.reply
            );
        }
    }
}

/// A TrackDrive-preset buyer whose ping is answered and whose accept misbehaves.
async fn accept_against(how: Misbehaviour) -> (callbid_core::BuyerEntry, CallContext) {
    let addr = ping_then_misbehave(
        br#"{"status":"success","try_all_buyers_ping_id":"P-1","buyers":[{"buyer_id":7,"bid":30,"ping_id":"BP-1"}]}"#,
        how,
    )
    .await;
    let toml = format!(
        r#"
[[buyer]]
id = "td"
adapter = "ping_post"
ping_post = {{ preset = "trackdrive", base_url = "http://{addr}", params = {{ vanity = "v", traffic_source_id = "1" }} }}
"#
    );
    let mut entries = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .load_str(&toml)
    .unwrap();
    let call = CallContext::new(
        CallId::new("CA-hostile-accept").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
    .with_caller("+15125550123".parse().unwrap());
    (entries.remove(0), call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_and_trickling_accepts_end_by_their_deadline() {
    for how in [
        Misbehaviour::HangBeforeHeaders,
        Misbehaviour::HangAfterHeaders,
        Misbehaviour::Trickle,
    ] {
        let (entry, call) = accept_against(how).await;
        let deadline = || callbid_core::Deadline::after(Duration::from_millis(500));
        let callbid_core::PingReply::Bid(bid) = entry.buyer.ping(&call, deadline()).await.unwrap()
        else {
            panic!("{how:?}: no bid")
        };
        let started = std::time::Instant::now();
        let e = entry
            .buyer
            .accept(&call, &bid, deadline())
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_millis(900), "{how:?}: took {took:?}");
        assert_eq!(e.kind, BuyerErrorKind::Timeout, "{how:?}: {e}");
        assert_eq!(e.step, callbid_core::BuyerStep::Accept, "{how:?}");
        // The accept may have arrived: it must never be resent.
        assert!(e.may_have_reached_buyer(), "{how:?}: {e}");
        assert!(!e.is_safe_to_retry(), "{how:?}: {e}");
    }
}

const SD_PING: &[u8] =
    br#"{"data":{"available_buyer":1,"request_id":77,"bid":90.00,"min_duration":60}}"#;
const SD_ACCEPT: &[u8] = br#"{"data":{"phone_number":"5125550199"}}"#;

/// An auction with a Service Direct buyer that bids highest and then misbehaves on
/// accept (its `timeout_ms` above the auction deadline), and two ping-post buyers with
/// valid bids and their destination in the bid. Returns the auction and a call.
async fn auction_with_bad_accept(
    how: Misbehaviour,
    deadline: Duration,
    good: &MockServer,
) -> (Auction, CallContext) {
    let sd = common::misbehave_on("/accept", SD_PING, how).await;
    let toml = format!(
        r#"
[[buyer]]
id = "sd-bad-accept"
adapter = "service_direct"
timeout_ms = {timeout}
service_direct = {{ api_key_env = "SD_API_KEY", base_url = "http://{sd}/partners/" }}
{good50}
{good40}
"#,
        timeout = deadline.as_millis() * 2,
        good50 = buyer_toml("good-50", &good.uri()),
        good40 = buyer_toml("good-40", &good.uri()),
    );
    let entries = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .with_env([("SD_API_KEY", "k")])
    .load_str(&toml)
    .unwrap();
    let auction = Auction::builder()
        .buyers(entries)
        .strategy(callbid_core::auction::Strategy::HighestBid)
        .deadline(deadline)
        .build()
        .unwrap();
    let call = CallContext::new(
        CallId::new("CA-bad-accept").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
    .with_caller("+15125550123".parse().unwrap());
    (auction, call)
}

async fn good_buyers() -> MockServer {
    let good = MockServer::start().await;
    for (n, payout) in [("good-50", "50.00"), ("good-40", "40.00")] {
        Mock::given(method("POST"))
            .and(path(format!("/ping/{n}")))
            .respond_with(bid(payout))
            .mount(&good)
            .await;
    }
    good
}

/// The hardening issue's item 5: a buyer that bids and then hangs, trickles or is slow on
/// accept gets only its share of the deadline; the next valid bid is sold, by the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_accept_leaves_time_to_sell_the_next_bid() {
    let deadline = Duration::from_millis(600);
    let good = good_buyers().await;
    for how in [
        Misbehaviour::HangBeforeHeaders,
        Misbehaviour::HangAfterHeaders,
        Misbehaviour::Trickle,
        // Slower than its share (about half of the ~580 ms accept window), faster than
        // the whole deadline.
        Misbehaviour::Late {
            after_ms: 450,
            body: SD_ACCEPT,
        },
    ] {
        let (auction, call) = auction_with_bad_accept(how, deadline, &good).await;
        let started = std::time::Instant::now();
        let out = auction.run(&call).await;
        let took = started.elapsed();
        let winner = out.winner().map(|w| w.buyer.as_str().to_string());
        assert_eq!(
            winner.as_deref(),
            Some("good-50"),
            "{how:?}: {:?}",
            out.buyers
        );
        let sd = out.record(&BuyerId::new("sd-bad-accept").unwrap()).unwrap();
        assert!(
            matches!(
                &sd.accept,
                Some(callbid_core::auction::AcceptRecord::Failed {
                    kind: BuyerErrorKind::Timeout,
                    ..
                })
            ),
            "{how:?}: {:?}",
            sd.accept
        );
        assert!(took <= deadline, "{how:?}: took {took:?}");
    }
    // Within its share, the same buyer wins.
    let (auction, call) = auction_with_bad_accept(
        Misbehaviour::Late {
            after_ms: 50,
            body: SD_ACCEPT,
        },
        deadline,
        &good,
    )
    .await;
    let out = auction.run(&call).await;
    assert_eq!(
        out.winner().map(|w| w.buyer.as_str()),
        Some("sd-bad-accept")
    );
}

/// Measures when auctions end relative to their deadline with a hanging accept, for
/// docs/BENCHMARKS.md (not a timing assertion; run by hand):
/// `cargo test -p callbid-buyers --test hostile --release -- --ignored --nocapture deadline_overshoot`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement for docs/BENCHMARKS.md; run by hand with --ignored --nocapture"]
async fn deadline_overshoot_with_a_hanging_accept() {
    let deadline = Duration::from_millis(300);
    let good = good_buyers().await;
    let rounds = 200;
    for (label, with_good) in [("hang + two good bids", true), ("hang only", false)] {
        let mut ends = Vec::with_capacity(rounds);
        let mut sold = 0;
        for _ in 0..rounds {
            let (auction, call) = if with_good {
                auction_with_bad_accept(Misbehaviour::HangBeforeHeaders, deadline, &good).await
            } else {
                let empty = MockServer::start().await;
                auction_with_bad_accept(Misbehaviour::HangBeforeHeaders, deadline, &empty).await
            };
            let started = std::time::Instant::now();
            let out = auction.run(&call).await;
            let took = started.elapsed().as_secs_f64() * 1000.0;
            sold += usize::from(out.winner().is_some());
            ends.push(took - deadline.as_secs_f64() * 1000.0);
        }
        ends.sort_by(f64::total_cmp);
        let q = |p: f64| ends[((ends.len() - 1) as f64 * p).round() as usize];
        println!(
            "{label}: {rounds} auctions, deadline {} ms, sold {sold}; end - deadline: p50 {:+.2} ms, p99 {:+.2} ms, max {:+.2} ms",
            deadline.as_millis(),
            q(0.5),
            q(0.99),
            ends[ends.len() - 1]
        );
    }
}

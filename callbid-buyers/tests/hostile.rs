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

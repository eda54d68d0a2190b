//! HTTP 429 across auctions: a buyer that answers 429 is not sent another request until
//! its `Retry-After` has passed (the auction records the skip as `rate_limit_skipped`,
//! nothing sent), and is pinged again after; an accept answered 429 is never resent,
//! even under `Retry` with accept retries on.

use std::sync::Arc;
use std::time::Duration;

use callbid_buyers::config::BuyersLoader;
use callbid_buyers::layers::Retry;
use callbid_buyers::ping_post::{preset, PingPostSettings};
use callbid_buyers::{HttpBuyer, HttpExecutor, PingPost};
use callbid_core::auction::{Auction, BuyerReply};
use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
use callbid_core::{
    Buyer, BuyerErrorKind, BuyerId, CallContext, CallId, Deadline, PingReply, ServiceType,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn call(id: &str) -> CallContext {
    CallContext::new(
        CallId::new(id).unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
    .with_caller("+15125550123".parse().unwrap())
}

fn ringba_bid(amount: &str, number: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        format!(r#"{{"bidId":"B-{amount}","bidAmount":{amount},"expireInSeconds":30,"phoneNumber":"{number}"}}"#),
        "application/json",
    )
}

async fn auction(server: &MockServer) -> Auction {
    let toml = format!(
        r#"
[[buyer]]
id = "limited"
adapter = "ping_post"
ping_post = {{ preset = "ringba", base_url = "{s}/limited", params = {{ rtb_id = "R1" }} }}

[[buyer]]
id = "steady"
adapter = "ping_post"
ping_post = {{ preset = "ringba", base_url = "{s}/steady", params = {{ rtb_id = "R2" }} }}
"#,
        s = server.uri()
    );
    let entries = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .load_str(&toml)
    .unwrap();
    Auction::builder()
        .buyers(entries)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn limited_reply(o: &callbid_core::auction::AuctionOutcome) -> BuyerReply {
    o.buyers
        .iter()
        .find(|r| r.buyer.as_str() == "limited")
        .expect("a record for the limited buyer")
        .reply
        .clone()
}

/// One run: `retry_after` is the header value (`None`: absent), `window` how long the
/// pause should be.
async fn paused_then_pinged_again(retry_after: Option<String>, window: Duration) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/steady/v1/production/R2.json"))
        .respond_with(ringba_bid("20", "+18005550122"))
        .mount(&server)
        .await;
    let auction = auction(&server).await;
    let ping = "/limited/v1/production/R1.json";

    // Auction 1: the limited buyer answers 429.
    let mut r429 = ResponseTemplate::new(429);
    if let Some(v) = &retry_after {
        r429 = r429.insert_header("retry-after", v.as_str());
    }
    let scoped = Mock::given(method("POST"))
        .and(path(ping))
        .respond_with(r429)
        .expect(1)
        .mount_as_scoped(&server)
        .await;
    let o = auction.run(&call("CA-rl-1")).await;
    assert_eq!(o.winner().expect("steady wins").buyer.as_str(), "steady");
    let until = match limited_reply(&o) {
        BuyerReply::Failed {
            kind:
                BuyerErrorKind::RateLimited {
                    until,
                    skipped: false,
                },
            message,
        } => {
            assert!(message.contains("HTTP 429"), "{message}");
            until
        }
        other => panic!("{retry_after:?}: expected rate_limited, got {other:?}"),
    };
    let left = until - chrono::Utc::now();
    assert!(
        left <= chrono::Duration::from_std(window).unwrap()
            && left > chrono::Duration::from_std(window).unwrap() - chrono::Duration::seconds(2),
        "{retry_after:?}: paused until {until}, {left} from now"
    );

    // Auction 2, within the window: no request reaches the buyer (the scoped mock's
    // expect(1) is checked when it drops), and the record says it was skipped.
    let o = auction.run(&call("CA-rl-2")).await;
    match limited_reply(&o) {
        BuyerReply::Failed {
            kind:
                BuyerErrorKind::RateLimited {
                    until: u2,
                    skipped: true,
                },
            message,
        } => {
            assert_eq!(u2, until, "{retry_after:?}");
            assert!(message.contains("not sent: paused until"), "{message}");
        }
        other => panic!("{retry_after:?}: expected rate_limit_skipped, got {other:?}"),
    }
    assert_eq!(
        o.winner().expect("steady still wins").buyer.as_str(),
        "steady"
    );
    drop(scoped);

    if window > Duration::from_secs(5) {
        return;
    }
    // After the window: pinged again, and it bids.
    let wait = (until - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
        .saturating_add(Duration::from_millis(100));
    tokio::time::sleep(wait).await;
    let _again = Mock::given(method("POST"))
        .and(path(ping))
        .respond_with(ringba_bid("50", "+18005550111"))
        .expect(1)
        .mount_as_scoped(&server)
        .await;
    let o = auction.run(&call("CA-rl-3")).await;
    assert_eq!(
        o.winner().expect("a winner").buyer.as_str(),
        "limited",
        "{retry_after:?}: {:?}",
        limited_reply(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_seconds() {
    paused_then_pinged_again(Some("1".into()), Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_http_date() {
    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    paused_then_pinged_again(Some(httpdate::fmt_http_date(at)), Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_missing_is_the_default_pause() {
    paused_then_pinged_again(None, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_garbage_is_the_default_pause() {
    paused_then_pinged_again(Some("in a while".into()), Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_answered_429_is_never_resent_and_pauses_the_buyer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/inbound_webhooks/ping/v1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": "success", "try_all_buyers_ping_id": "P-1",
            "buyers": [{"buyer_id": 7, "bid": 30, "ping_id": "BP-1"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/inbound_webhooks/post/v1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&server)
        .await;
    let mut settings = PingPostSettings::default();
    settings.base_url = Some(server.uri());
    settings.params.insert("vanity".into(), "v1".into());
    settings
        .params
        .insert("traffic_source_id".into(), "9".into());
    let adapter = PingPost::new(&preset("trackdrive").unwrap(), settings).unwrap();
    let id = BuyerId::new("td").unwrap();
    let http = HttpBuyer::new(id, adapter, HttpExecutor::new().unwrap());
    // Accept retries on, generous budget: still one accept on the wire.
    let buyer = Retry::new(Arc::new(http), 3, Duration::from_millis(10)).with_accept_retries(true);
    let c = call("CA-rl-acc");
    let deadline = || Deadline::after(Duration::from_secs(2));
    let PingReply::Bid(bid) = buyer.ping(&c, deadline()).await.unwrap() else {
        panic!("no bid")
    };
    let e = buyer.accept(&c, &bid, deadline()).await.unwrap_err();
    assert!(
        matches!(e.kind, BuyerErrorKind::RateLimited { skipped: false, .. }),
        "{e}"
    );
    assert!(e.may_have_reached_buyer(), "a 429 answer arrived: {e}");
    assert!(!e.message.contains("retries"), "not retried: {e}");
    // Within the pause, neither a ping nor another accept is sent.
    let e = buyer.ping(&c, deadline()).await.unwrap_err();
    assert!(
        matches!(e.kind, BuyerErrorKind::RateLimited { skipped: true, .. }),
        "{e}"
    );
    assert!(!e.may_have_reached_buyer(), "{e}");
    let e = buyer.accept(&c, &bid, deadline()).await.unwrap_err();
    assert_eq!(e.kind.as_str(), "rate_limit_skipped", "{e}");
    // expect(1) on both mocks is verified when the server drops.
}

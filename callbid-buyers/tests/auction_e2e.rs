//! Service Direct and a Ringba preset buyer, loaded from `buyers.toml`, in a real auction:
//! the winner's accept step yields the destination, a losing Service Direct bid hears the
//! sold price.

use std::sync::Arc;
use std::time::Duration;

use callbid_buyers::config::BuyersLoader;
use callbid_core::auction::Auction;
use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
use callbid_core::{CallContext, CallId, ServiceType};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn toml(server: &str) -> String {
    format!(
        r#"
[[buyer]]
id = "sd"
adapter = "service_direct"
service_direct = {{ api_key_env = "SD_API_KEY", base_url = "{server}/partners/" }}

[[buyer]]
id = "ringba"
adapter = "ping_post"
ping_post = {{ preset = "ringba", base_url = "{server}", params = {{ rtb_id = "R1" }} }}
"#
    )
}

fn call(id: &str) -> CallContext {
    CallContext::new(
        CallId::new(id).unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
    .with_caller("+15125550123".parse().unwrap())
}

async fn setup(sd_bid: &str, ringba_bid: &str) -> (MockServer, Auction) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/partners/request"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"data":{{"available_buyer":1,"request_id":77,"bid":{sd_bid},"min_duration":60}}}}"#),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/partners/request/77/accept"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"data": {"phone_number": "5125550199"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/partners/request/77/sold_price"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": {"success": 1}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/production/R1.json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"bidId":"B1","bidAmount":{ringba_bid},"expireInSeconds":30,"phoneNumber":"+18005550111"}}"#),
            "application/json",
        ))
        .mount(&server)
        .await;
    let entries = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .with_env([("SD_API_KEY", "k")])
    .load_str(&toml(&server.uri()))
    .unwrap();
    let auction = Auction::builder()
        .buyers(entries)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    (server, auction)
}

async fn paths(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect()
}

#[tokio::test]
async fn service_direct_wins_through_its_accept_step() {
    let (server, auction) = setup("40.00", "30").await;
    let o = auction.run(&call("CA-e2e-1")).await;
    let w = o.winner().expect("a winner");
    assert_eq!(w.buyer.as_str(), "sd");
    assert_eq!(w.destination.to_string(), "+15125550199");
    assert_eq!(w.bid.bid_id.as_deref(), Some("77"));
    let p = paths(&server).await;
    assert!(
        p.contains(&"/partners/request/77/accept".to_string()),
        "{p:?}"
    );
    assert!(!p.iter().any(|x| x.ends_with("sold_price")), "{p:?}");
}

#[tokio::test]
async fn losing_service_direct_hears_the_sold_price() {
    let (server, auction) = setup("20.00", "30.5").await;
    let o = auction.run(&call("CA-e2e-2")).await;
    let w = o.winner().expect("a winner");
    assert_eq!(w.buyer.as_str(), "ringba");
    assert_eq!(w.destination.to_string(), "+18005550111");
    // The loss report is sent in the background: wait for it briefly.
    let mut sold = None;
    for _ in 0..50 {
        let reqs = server.received_requests().await.unwrap();
        if let Some(r) = reqs
            .iter()
            .find(|r| r.url.path() == "/partners/request/77/sold_price")
        {
            sold = Some(String::from_utf8(r.body.clone()).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sold = sold.expect("sold_price was reported");
    // The exact decimal text goes on the wire.
    assert!(sold.contains(r#""sold_price":30.50"#), "{sold}");
    // No `duration`: the winner's terms are not known to a loss report (see service_direct docs).
    assert!(!sold.contains("duration"), "{sold}");
    assert!(!paths(&server).await.iter().any(|x| x.ends_with("/accept")));
}

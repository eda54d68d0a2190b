//! The operator dashboard (examples/common/dashboard.rs), end to end: its JSON API over a
//! temporary SQLite store seeded through the CallLog API, and the page itself in a real
//! headless Chromium driven through WebDriver (chromedriver).
//!
//! The browser test needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`; `source .ci/chromium.sh` installs them). Without
//! them it prints why it skips; with `CI=true` it fails instead.

mod common;

use callbid_server::auth as operator_auth;
use callbid_server::dashboard;
use common::browser::*;

use std::net::SocketAddr;
use std::sync::Arc;

use callbid::core::auction::Auction;
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::state::{CallEvent, CallEventKind, CallLog};
use callbid::core::{
    BuyerEntry, BuyerId, CallId, CampaignId, Destination, Money, PhoneNumber, ServiceType,
    SourceId, Zip,
};
use callbid::store::Store;
use chrono::{DateTime, Duration, TimeZone, Utc};
use dashboard::{router, DashboardState};
use rust_decimal::Decimal;

/// One seeded call: enough variety for every filter.
#[derive(Debug, Clone)]
struct Seed {
    id: String,
    at: DateTime<Utc>,
    zip: &'static str,
    service: &'static str,
    campaign: &'static str,
    source: &'static str,
    /// Winner and price in cents; `None` = nobody bought.
    winner: Option<(&'static str, i64)>,
    /// What happened after: "completed", "missed", "fallback", "rejected", "forwarded".
    outcome: &'static str,
}

const BUYERS: [&str; 3] = ["acme-home", "bolt-leads", "cedar<b>x</b>&co"];
const SERVICES: [&str; 3] = ["plumbing", "pest_control", "roofing"];
const ZIPS: [&str; 4] = ["78701", "10001", "60601", "94105"];

fn seeds() -> Vec<Seed> {
    let base = Utc.with_ymd_and_hms(2026, 11, 10, 14, 0, 0).unwrap();
    (0..36)
        .map(|i: i64| {
            let outcome = [
                "completed",
                "missed",
                "fallback",
                "completed",
                "rejected",
                "forwarded",
            ][(i % 6) as usize];
            let winner = match outcome {
                "fallback" | "rejected" => None,
                _ => Some((BUYERS[((i / 6) % 3) as usize], 1500 + 275 * (i % 11))),
            };
            Seed {
                id: format!("CA{:032x}", 0x5eed_0000 + i),
                at: base + Duration::hours(7 * i),
                zip: ZIPS[(i % 4) as usize],
                service: SERVICES[(i % 3) as usize],
                campaign: ["fall-promo", "tv-spot"][(i % 2) as usize],
                source: ["google", "radio", "partner"][(i % 3) as usize],
                winner,
                outcome,
            }
        })
        .collect()
}

async fn seed_store(store: &Store, seeds: &[Seed]) {
    for s in seeds {
        let call = CallId::new(&s.id).unwrap();
        let mut at = s.at;
        let mut n = 0;
        let mut push = |kind: CallEventKind| {
            n += 1;
            at += Duration::seconds(2);
            CallEvent::new(call.clone(), at, format!("seed-{n}"), kind)
        };
        let mut events = vec![
            push(CallEventKind::Incoming {
                caller: Some(PhoneNumber::parse("+15125550123").unwrap()),
                dialed: Some(PhoneNumber::parse("+18005550100").unwrap()),
                campaign: Some(CampaignId::new(s.campaign).unwrap()),
                source: Some(SourceId::new(s.source).unwrap()),
            }),
            push(CallEventKind::AuctionStarted {
                zip: Zip::parse(s.zip).unwrap(),
                service: ServiceType::new(s.service).unwrap(),
                eligible: 3,
                excluded: 0,
            }),
        ];
        match s.winner {
            Some((buyer, cents)) => {
                let buyer = BuyerId::new(buyer).unwrap();
                let price = Money::usd(Decimal::new(cents, 2));
                let dest = Destination::parse("+15125550199").unwrap();
                events.push(push(CallEventKind::PingResult {
                    buyer: buyer.clone(),
                    latency_ms: 120,
                    price: Some(price),
                    reason: None,
                }));
                events.push(push(CallEventKind::Winner {
                    buyer: buyer.clone(),
                    price,
                    score: Decimal::new(cents, 2),
                }));
                events.push(push(CallEventKind::Forwarded {
                    buyer: buyer.clone(),
                    destination: dest,
                }));
                match s.outcome {
                    "completed" => {
                        events.push(push(CallEventKind::Connected { buyer: Some(buyer) }));
                        events.push(push(CallEventKind::Completed { duration_secs: 95 }));
                        events.push(push(CallEventKind::Billing {
                            billable: true,
                            revenue: price,
                            payout: Money::usd(Decimal::new(cents * 7 / 10, 2)),
                        }));
                    }
                    "missed" => events.push(push(CallEventKind::Missed {
                        reason: "no-answer".into(),
                    })),
                    _ => {}
                }
            }
            None if s.outcome == "fallback" => events.push(push(CallEventKind::Fallback {
                kind: "voicemail".into(),
                reason: "no bids".into(),
            })),
            None => events.push(push(CallEventKind::Rejected {
                reason: "no eligible buyers".into(),
            })),
        }
        for e in &events {
            store.append(e).await.unwrap();
        }
    }
}

fn auction() -> Auction {
    let mut b = Auction::builder();
    for (i, id) in BUYERS.iter().enumerate() {
        let buyer = InProcessBuyer::new(
            BuyerId::new(*id).unwrap(),
            Money::usd(Decimal::new(2000 + 100 * i as i64, 2)),
            Destination::parse("+15125550199").unwrap(),
        );
        b = b.buyer(BuyerEntry::new(Arc::new(buyer)));
    }
    b.build().unwrap()
}

struct Running {
    addr: SocketAddr,
    auction: Auction,
    seeds: Vec<Seed>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    start_as(&operator_auth::OperatorAuth::open()).await
}

/// The dashboard behind `auth` (as the example servers mount it).
async fn start_as(auth: &operator_auth::OperatorAuth) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let store = Store::open(&url).await.unwrap();
    let seeds = seeds();
    seed_store(&store, &seeds).await;
    let auction = auction();
    let app = router(DashboardState {
        store,
        auction: auction.clone(),
        title: "Ops <dashboard> & co".into(),
    });
    let app = operator_auth::protect(app, auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Running {
        addr,
        auction,
        seeds,
        _dir: dir,
    }
}

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    let body = res.json::<serde_json::Value>().await.unwrap();
    (status, body)
}

fn ids(body: &serde_json::Value) -> Vec<String> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn api_filters_sorts_paginates_and_names_bad_input() {
    let r = start().await;
    let base = format!("http://{}", r.addr);

    // Filter by status and service: exactly the seeded calls that match, newest first.
    let (st, body) = get_json(&format!(
        "{base}/api/calls?status=completed&service=plumbing&limit=500"
    ))
    .await;
    assert_eq!(st, 200, "{body}");
    let mut want: Vec<&Seed> = r
        .seeds
        .iter()
        .filter(|s| s.outcome == "completed" && s.service == "plumbing")
        .collect();
    want.sort_by_key(|s| std::cmp::Reverse(s.at));
    let want: Vec<String> = want.iter().map(|s| s.id.clone()).collect();
    assert!(!want.is_empty());
    assert_eq!(ids(&body), want);

    // Price range and buyer; money is exact decimal text.
    let (st, body) = get_json(&format!(
        "{base}/api/calls?min_price=20&max_price=30.25&buyer=acme-home&limit=500"
    ))
    .await;
    assert_eq!(st, 200, "{body}");
    let want = r
        .seeds
        .iter()
        .filter(|s| matches!(s.winner, Some(("acme-home", c)) if (2000..=3025).contains(&c)))
        .count();
    assert_eq!(ids(&body).len(), want);
    for row in body["rows"].as_array().unwrap() {
        let p: Decimal = row["price"].as_str().unwrap().parse().unwrap();
        assert!(
            p >= Decimal::new(20, 0) && p <= Decimal::new(3025, 2),
            "{row}"
        );
    }

    // A day in a zone: calls on 2026-11-11 in Chicago (UTC-6).
    let (st, body) = get_json(&format!(
        "{base}/api/calls?from=2026-11-11&to=2026-11-11&tz=America/Chicago&limit=500"
    ))
    .await;
    assert_eq!(st, 200, "{body}");
    let start = Utc.with_ymd_and_hms(2026, 11, 11, 6, 0, 0).unwrap();
    let end = start + Duration::days(1);
    let want = r
        .seeds
        .iter()
        .filter(|s| s.at + Duration::seconds(2) >= start && s.at + Duration::seconds(2) < end)
        .count();
    assert_eq!(ids(&body).len(), want);
    let first = &body["rows"][0]["received_local"];
    assert!(first.as_str().unwrap().ends_with("CST"), "{first}");

    // Key-set pagination by price ascending covers every priced call exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/calls?sort=price&order=asc&limit=7&min_price=0");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(&urlencode(c));
        }
        let (st, body) = get_json(&url).await;
        assert_eq!(st, 200, "{body}");
        let prices: Vec<Decimal> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["price"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
        seen.extend(ids(&body));
        match body["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let priced = r.seeds.iter().filter(|s| s.winner.is_some()).count();
    assert_eq!(seen.len(), priced);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), priced);

    // Bad input: 400 naming the field and the value.
    for (query, field, value) in [
        ("zip=7870", "zip", "7870"),
        ("status=done", "status", "done"),
        ("min_price=abc", "min_price", "abc"),
        ("from=yesterday", "from", "yesterday"),
        ("tz=Mars/Olympus", "tz", "Mars/Olympus"),
        ("sort=colour", "sort", "colour"),
        ("limit=100000", "limit", "100000"),
        ("cursor=garbage", "cursor", "garbage"),
        ("min_price=5&max_price=4", "max_price", "4"),
        ("colour=red", "filter", "colour"),
    ] {
        let (st, body) = get_json(&format!("{base}/api/calls?{query}")).await;
        assert_eq!(st, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
        assert_eq!(body["value"], value, "{query}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(field) && msg.contains(value), "{msg}");
    }
    let (st, body) = get_json(&format!("{base}/api/export.csv?limit=5")).await;
    assert_eq!((st, body["field"].as_str()), (400, Some("filter")));

    // Summary: totals and revenue by buyer agree with the seeds, exactly.
    let (st, body) = get_json(&format!("{base}/api/summary")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["total"]["calls"], r.seeds.len());
    for b in BUYERS {
        let want: i64 = r
            .seeds
            .iter()
            .filter(|s| s.outcome == "completed" && matches!(s.winner, Some((w, _)) if w == b))
            .map(|s| s.winner.map_or(0, |(_, c)| c))
            .sum();
        let got = body["by_buyer"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == b)
            .unwrap_or_else(|| panic!("{b} missing: {body}"));
        let got: Decimal = got["revenue"].as_str().unwrap().parse().unwrap();
        assert_eq!(got, Decimal::new(want, 2), "{b}");
    }
    let statuses: u64 = body["by_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(statuses, r.seeds.len() as u64);

    // The page escapes the title; one call's detail lists its events.
    let html = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<title>Ops &lt;dashboard&gt; &amp; co</title>"));
    let (st, body) = get_json(&format!("{base}/api/calls/{}", r.seeds[0].id)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["call"]["status"], "completed");
    assert_eq!(body["events"][0]["type"], "incoming");
    let (st, _) = get_json(&format!("{base}/api/calls/CAnope")).await;
    assert_eq!(st, 404);

    // CSV export of a filter: header + exactly the filtered calls.
    let csv = reqwest::get(format!("{base}/api/export.csv?status=fallback"))
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"calls-"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("call_id,received_at,status"));
    let want = r.seeds.iter().filter(|s| s.outcome == "fallback").count();
    assert_eq!(lines.len() - 1, want);
    assert!(lines[1..].iter().all(|l| l.contains(",fallback,")));

    // Excel export: a real zip (xlsx) container.
    let xlsx = reqwest::get(format!("{base}/api/export.xlsx?service=roofing"))
        .await
        .unwrap();
    assert_eq!(xlsx.status(), 200);
    let bytes = xlsx.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"), "not an xlsx");
}

#[tokio::test]
async fn live_feed_streams_auction_events() {
    use futures::StreamExt;
    let r = start().await;
    let base = format!("http://{}", r.addr);
    let res = reqwest::get(format!("{base}/api/auctions/stream"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = res.bytes_stream();
    // The handler subscribed before answering; run an auction and read its events.
    let call = callbid::core::CallContext::new(
        CallId::new("CAfeedtest").unwrap(),
        Zip::parse("78701").unwrap(),
        ServiceType::new("plumbing").unwrap(),
        Utc::now(),
    );
    let outcome = r.auction.run(&call).await;
    let winner = outcome
        .winner()
        .expect("in-process buyers always bid")
        .buyer
        .to_string();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains("\"won\"") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("feed delivered the auction within 10 s")
            .expect("stream open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter(|frame| frame.contains("event: auction"))
        .map(|frame| {
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "bid_received").count(),
        BUYERS.len()
    );
    let won = events.last().unwrap();
    assert_eq!(won["kind"]["event"], "won");
    assert_eq!(won["kind"]["buyer"], winner.as_str());
    assert!(events
        .iter()
        .all(|e| e["call_id"] == "CAfeedtest" && e["at"].is_string()));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The page in a real browser (helpers in tests/common/browser.rs).

#[cfg_attr(
    callbid_no_browser,
    ignore = "needs chromium and chromedriver (/usr/bin or CHROMIUM_BIN / CHROMEDRIVER_BIN; source .ci/chromium.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_filters_and_exports_csv() {
    use fantoccini::Locator;
    let Some(b) = browser().await else {
        return;
    };
    let c = &b.c;
    // Behind an operator token: the browser is sent to the login form first.
    const OPERATOR: &str = "browser-operator-token-7e2";
    let r = start_as(&operator_auth::OperatorAuth::with_token(OPERATOR)).await;
    let base = format!("http://{}", r.addr);
    c.goto(&format!("{base}/")).await.unwrap();
    c.wait()
        .for_element(Locator::Id("login-token"))
        .await
        .unwrap();
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{base}/login?next=/")
    );
    // A wrong token: the form again, with the error.
    type_into(c, "login-token", "not-the-token").await;
    click(c, "login-submit").await;
    let err = wait_text(c, "login-error", "login error", |t: &String| !t.is_empty()).await;
    assert!(err.contains("Wrong operator token"), "{err}");
    // The right one: the dashboard, with a session cookie page scripts cannot read.
    type_into(c, "login-token", OPERATOR).await;
    click(c, "login-submit").await;
    c.wait()
        .for_element(Locator::Css("body[data-ready='true']"))
        .await
        .unwrap();
    // At 1400 px wide every column of the call log fits without a scrollbar, and the
    // page itself does not scroll sideways (issue 14).
    c.set_window_size(1400, 1000).await.unwrap();
    let overflow = eventually(
        "the call log fits at 1400 px",
        || async {
            let v = c
                .execute(
                    "const w = document.querySelector('.table-wrap'); \
                     return [document.querySelectorAll('#calls tbody tr').length, \
                             w.scrollWidth - w.clientWidth, \
                             document.documentElement.scrollWidth - document.documentElement.clientWidth];",
                    vec![],
                )
                .await
                .unwrap();
            serde_json::from_value::<Vec<i64>>(v).unwrap()
        },
        |v| v[0] > 0 && v[1] <= 1 && v[2] <= 0,
    )
    .await;
    assert!(overflow[1] <= 1, "{overflow:?}");
    if let Ok(path) = std::env::var("DASHBOARD_SCREENSHOT") {
        // For a look at the layout: DASHBOARD_SCREENSHOT=/tmp/dash.png cargo test …
        std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    }
    c.set_window_size(1440, 1250).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    let js_cookies = c.execute("return document.cookie;", vec![]).await.unwrap();
    assert_eq!(
        js_cookies,
        serde_json::json!(""),
        "the session cookie is HttpOnly"
    );
    let cookie = c.get_named_cookie("callbid_session").await.unwrap();
    assert_ne!(cookie.value(), OPERATOR, "the cookie is not the token");
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_eq!(cookie.http_only(), Some(true));
    open(c, &format!("{base}/")).await;

    // Everything seeded is listed, newest first; markup in data stays text.
    let mut all: Vec<&Seed> = r.seeds.iter().collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.at));
    let all: Vec<String> = all.iter().map(|s| s.id.clone()).collect();
    assert_eq!(shown_ids(c).await, all);
    assert_eq!(text_of(c, "title").await, "Ops <dashboard> & co");
    // Everything fits on one page: no "Load more", no empty note, no error banner.
    for hidden in ["load-more", "empty", "error", "detail"] {
        assert!(!displayed(c, hidden).await, "#{hidden} should be hidden");
    }
    assert!(c
        .find_all(Locator::Css("#calls tbody b"))
        .await
        .unwrap()
        .is_empty());
    // Read every cell in one script, not element by element: the table may re-render
    // between reads.
    let cells = c
        .execute(
            "return [...document.querySelectorAll('#calls tbody td')].map(td => td.textContent)",
            vec![],
        )
        .await
        .unwrap();
    let found = cells
        .as_array()
        .is_some_and(|a| a.iter().any(|t| t == "cedar<b>x</b>&co"));
    assert!(
        found,
        "the buyer with markup in its id is shown as text: {cells}"
    );
    let chart_bars = c
        .find_all(Locator::Css("#chart-status rect"))
        .await
        .unwrap();
    let statuses: std::collections::BTreeSet<&str> = r.seeds.iter().map(|s| s.outcome).collect();
    assert_eq!(
        chart_bars.len(),
        statuses.len(),
        "one bar per seeded status"
    );
    // The time series: one column per UTC day from the first call to the last, gaps
    // included, each titled with its calls and revenue; one revenue line.
    let first = r.seeds.iter().map(|s| s.at.date_naive()).min().unwrap();
    let last = r.seeds.iter().map(|s| s.at.date_naive()).max().unwrap();
    let days = c
        .execute(
            "return [...document.querySelectorAll('#chart-days rect.day')].map(r => [r.dataset.day, r.textContent]);",
            vec![],
        )
        .await
        .unwrap();
    let days = days.as_array().unwrap();
    assert_eq!(
        days.len() as i64,
        (last - first).num_days() + 1,
        "one column per day: {days:?}"
    );
    assert_eq!(days[0][0], serde_json::json!(first.to_string()));
    let per_day: usize = r
        .seeds
        .iter()
        .filter(|s| s.at.date_naive() == first)
        .count();
    let title = days[0][1].as_str().unwrap();
    assert!(
        title.contains(&format!("{per_day} call")) && title.contains("revenue"),
        "{title}"
    );
    assert_eq!(
        c.find_all(Locator::Css("#chart-days polyline.revenue"))
            .await
            .unwrap()
            .len(),
        1
    );

    // A live auction shows up in the feed.
    let call = callbid::core::CallContext::new(
        CallId::new("CAlivefeed01").unwrap(),
        Zip::parse("78701").unwrap(),
        ServiceType::new("plumbing").unwrap(),
        Utc::now(),
    );
    let winner = r
        .auction
        .run(&call)
        .await
        .winner()
        .unwrap()
        .buyer
        .to_string();
    let feed = wait_text(c, "feed", "feed shows the auction", |t: &String| {
        t.contains("won by")
    })
    .await;
    assert!(
        feed.contains("CAlivefeed01")
            && feed.contains(&format!("won by {winner}"))
            && feed.contains("→ +15125550199"),
        "{feed}"
    );

    if let Ok(path) = std::env::var("DASHBOARD_SCREENSHOT") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {path}");
    }

    // A bad ZIP: the server's 400 is shown, naming the field and value.
    type_into(c, "f-zip", "7870").await;
    click(c, "apply").await;
    let err = wait_text(c, "error", "error banner", |t: &String| !t.is_empty()).await;
    assert!(err.contains("zip") && err.contains("7870"), "{err}");
    let zip_input = by_id(c, "f-zip").await;
    assert_eq!(
        zip_input.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );

    // Status completed + ZIP 78701: the rows change to exactly those calls.
    zip_input.clear().await.unwrap();
    zip_input.send_keys("78701").await.unwrap();
    click(c, "status-completed").await;
    click(c, "apply").await;
    let mut want: Vec<&Seed> = r
        .seeds
        .iter()
        .filter(|s| s.outcome == "completed" && s.zip == "78701")
        .collect();
    want.sort_by_key(|s| std::cmp::Reverse(s.at));
    let want: Vec<String> = want.iter().map(|s| s.id.clone()).collect();
    assert!(!want.is_empty() && want.len() < all.len());
    let shown = eventually(
        "filtered rows",
        || shown_ids(c),
        |ids: &Vec<String>| *ids == want,
    )
    .await;
    assert!(by_id(c, "error")
        .await
        .attr("hidden")
        .await
        .unwrap()
        .is_some());
    let kpi = text_of(c, "k-calls").await;
    assert_eq!(kpi, want.len().to_string());

    // Times in another zone, labelled.
    by_id(c, "tz")
        .await
        .select_by_value("America/Chicago")
        .await
        .unwrap();
    let first_time = eventually(
        "times in Chicago",
        || text_at(c, Locator::Css("#calls tbody tr td")),
        |t: &String| t.ends_with("CST"),
    )
    .await;
    let expected = dashboard::local_time(
        r.seeds.iter().find(|s| s.id == want[0]).unwrap().at + Duration::seconds(2),
        chrono_tz::America::Chicago,
    );
    assert_eq!(first_time, expected);

    // Export CSV: a real download of exactly the rows shown.
    click(c, "export-csv").await;
    let file = eventually(
        "downloaded CSV",
        || async {
            std::fs::read_dir(b.downloads.path())
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "csv"))
        },
        // Chromium may show the file before it has written it: wait for whole lines.
        |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .is_some_and(|t| t.contains('\n') && t.ends_with('\n'))
        },
    )
    .await
    .unwrap();
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("calls-"), "{name}");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], &["call_id", "received_at", "status"]);
    let zip_col = header.iter().position(|h| *h == "zip").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let exported: Vec<String> = rows.iter().map(|r| r[0].to_string()).collect();
    assert_eq!(
        exported, shown,
        "the CSV holds the rows the page shows, in order"
    );
    assert!(rows
        .iter()
        .all(|r| r[2] == "completed" && r[zip_col] == "78701"));

    b.c.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// The agent desk of examples/agent_assist in the browser: the form starts an auction,
// bids appear, Forward bridges the live call through the (fake) Calls endpoint.

use callbid_server::agent as app;
use callbid_server::demo::fake_twilio;

#[cfg_attr(
    callbid_no_browser,
    ignore = "needs chromium and chromedriver (/usr/bin or CHROMIUM_BIN / CHROMEDRIVER_BIN; source .ci/chromium.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_desk_pings_buyers_and_forwards_in_the_browser() {
    use fantoccini::Locator;
    let Some(b) = browser().await else {
        return;
    };
    let c = &b.c;
    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    let fake = fake_twilio::FakeTwilio::start("127.0.0.1:0".parse().unwrap(), ACCOUNT, "tok")
        .await
        .unwrap();
    let twilio = callbid::twilio::rest::Client::builder(ACCOUNT)
        .auth_token("tok")
        .api_base_url(fake.base_url.clone())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("a.db").display()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app::router(app::AgentConfig {
        history: store.handles().history.clone(),
        payout: callbid::core::billing::PayoutRule::PercentOfRevenue(70.into()),
        store,
        auction: auction(),
        twilio,
        verifier: None,
        public_url: None,
        agent: app::AgentTarget::parse("client:alice").unwrap(),
        default_mode: app::Mode::Manual,
        title: "Agent <desk>".into(),
        settle_log: None,
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let sid = "CA0000000000000000000000000000a0b1";
    let res = reqwest::Client::new()
        .post(format!("{base}/twilio/voice"))
        .form(&[
            ("CallSid", sid),
            ("AccountSid", ACCOUNT),
            ("From", "+15125550123"),
            ("To", "+18005550100"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    open(c, &format!("{base}/agent")).await;
    assert_eq!(c.title().await.unwrap(), "Agent <desk> · agent");
    // The live call is listed and prefilled.
    let sid_input = by_id(c, "call_sid").await;
    assert_eq!(sid_input.prop("value").await.unwrap().as_deref(), Some(sid));
    let live = text_of(c, "live-calls").await;
    assert!(
        live.contains(sid) && live.contains("+15125550123"),
        "{live}"
    );
    assert!(!displayed(c, "forward").await);

    // A bad ZIP is refused by the server, named.
    type_into(c, "zip", "7870").await;
    type_into(c, "service", "plumbing").await;
    click(c, "start").await;
    let err = wait_text(c, "error", "error banner", |t: &String| !t.is_empty()).await;
    assert!(err.contains("zip") && err.contains("7870"), "{err}");

    // The real auction: three bids, the best wins, Forward appears.
    let zip = by_id(c, "zip").await;
    zip.clear().await.unwrap();
    zip.send_keys("78701").await.unwrap();
    type_into(c, "campaign", "tv-spot").await;
    click(c, "start").await;
    let result = wait_text(c, "result", "winner shown", |t: &String| {
        t.contains("Winner")
    })
    .await;
    // In-process buyers bid 20.00, 21.00 and 22.00: the third wins.
    assert!(
        result.contains("Winner: cedar<b>x</b>&co at $22.00"),
        "{result}"
    );
    let rows = c.find_all(Locator::Css("#bids tbody tr")).await.unwrap();
    assert_eq!(rows.len(), BUYERS.len());
    assert!(fake.requests().is_empty(), "manual mode waits for Forward");

    click(c, "forward").await;
    let sent = wait_text(c, "twiml", "TwiML shown", |t: &String| t.contains("<Dial")).await;
    let want = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial answerOnBridge="true" timeout="30"><Number>+15125550199</Number></Dial></Response>"#;
    assert!(sent.ends_with(want), "{sent}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].call_sid, sid);
    assert_eq!(reqs[0].param("Twiml"), Some(want));
    let state = text_of(c, "state").await;
    assert!(
        state.starts_with("forwarded to cedar<b>x</b>&co"),
        "{state}"
    );
    assert!(!displayed(c, "forward").await);

    if let Ok(path) = std::env::var("AGENT_SCREENSHOT") {
        std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
        eprintln!("screenshot: {path}");
    }
    b.c.close().await.unwrap();
}

/// An outbound provider that only records what it is asked to place.
#[derive(Debug, Default)]
struct NullProvider(std::sync::Mutex<u32>);

#[async_trait::async_trait]
impl callbid::core::campaign::OutboundProvider for NullProvider {
    fn name(&self) -> &'static str {
        "null"
    }
    async fn place(
        &self,
        _: &callbid::core::campaign::OutboundCall,
    ) -> Result<callbid::core::campaign::ProviderCall, callbid::core::campaign::ProviderError> {
        *self.0.lock().unwrap() += 1;
        Err(callbid::core::campaign::ProviderError::Unavailable {
            provider: "null",
            operation: "place",
            message: "the browser test places no calls".into(),
        })
    }
    async fn details(
        &self,
        id: &str,
    ) -> Result<callbid::core::campaign::ProviderCall, callbid::core::campaign::ProviderError> {
        Err(callbid::core::campaign::ProviderError::Unavailable {
            provider: "null",
            operation: "details",
            message: id.to_owned(),
        })
    }
    fn parse_status_callback(
        &self,
        _: &[(String, String)],
    ) -> Result<callbid::core::campaign::ProviderCall, callbid::core::campaign::ProviderError> {
        Err(callbid::core::campaign::ProviderError::BadResponse {
            provider: "null",
            operation: "status callback",
            message: "not used".into(),
        })
    }
}

/// The campaigns page in Chromium: a bad upload shows each row and column in error, a
/// preview counts what a launch would exclude, a good upload appears in the table, and
/// its Start button starts it.
#[cfg_attr(
    callbid_no_browser,
    ignore = "needs chromium and chromedriver (/usr/bin or CHROMIUM_BIN / CHROMEDRIVER_BIN; source .ci/chromium.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_page_uploads_previews_and_starts() {
    use callbid_server::campaign::{self, CampaignApp, CampaignSettings};
    use fantoccini::Locator;
    let Some(b) = browser().await else {
        return;
    };
    let c = &b.c;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(callbid::store::SqliteStore::open(dir.path().join("c.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = CampaignApp::new(CampaignSettings::new(
        format!("http://{addr}/callbid"),
        store,
        Arc::new(NullProvider::default()),
        callbid::core::campaign::RateWindow::twilio(1).unwrap(),
        2,
    ));
    // Mounted under a prefix, as an embedder would.
    let routes = axum::Router::new().nest(
        "/callbid",
        campaign::api_router(app.clone()).merge(campaign::webhook_router(app)),
    );
    tokio::spawn(async move { axum::serve(listener, routes).await });
    open(c, &format!("http://{addr}/callbid/campaigns")).await;
    assert!(displayed(c, "empty").await, "an empty list says so");

    let set_csv = |csv: &'static str| async move {
        c.execute(
            "document.getElementById('f-csv').value = arguments[0]",
            vec![serde_json::json!(csv)],
        )
        .await
        .unwrap();
    };
    type_into(c, "f-id", "browser-dec").await;
    type_into(c, "f-message", "Your quote is ready").await;
    set_csv("number,name\n+15125550101,Ann\n512555,Bob\n").await;
    click(c, "create").await;
    let err = wait_text(c, "form-error", "row errors shown", |t: &String| {
        t.contains("row 2, column number")
    })
    .await;
    assert!(err.contains("nothing was created"), "{err}");

    set_csv("number,name\n+15125550101,Ann\n+12125550102,Bob\n+44205550103,Cy\n").await;
    click(c, "preview").await;
    let p = wait_text(c, "preview-out", "preview counts", |t: &String| {
        t.contains("3 rows")
    })
    .await;
    assert!(p.contains("with no known time zone"), "{p}");
    click(c, "create").await;
    wait_text(c, "preview-out", "created", |t: &String| t == "Created.").await;
    eventually(
        "the campaign row",
        || {
            text_at(
                c,
                Locator::Css("#campaigns tbody tr[data-id='browser-dec']"),
            )
        },
        |t: &String| t.contains("draft"),
    )
    .await;
    c.find(Locator::Css(
        "#campaigns tbody tr[data-id='browser-dec'] button[data-action='start']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    eventually(
        "started",
        || {
            text_at(
                c,
                Locator::Css("#campaigns tbody tr[data-id='browser-dec'] td:nth-child(2)"),
            )
        },
        |t: &String| t == "running",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// "Why this buyer won" (issue 12, item 3): a real auction logged through the servers'
// `settle::log_auction`, its call detail in the browser, and its replay over the API.

/// A store holding one auctioned call, "CAwhy": "proven" (20.00, 20 billable calls of
/// history) beats "newcomer" (21.00, none) on score; "far-away" is excluded by a geo
/// rule; "sleepy" declines.
async fn start_explained() -> (SocketAddr, tempfile::TempDir) {
    use callbid::core::inprocess::PingBehavior;
    use callbid::core::rules::GeoRule;
    use callbid::core::scoring::{ScoringConfig, ScoringEngine};
    use callbid::core::state::{history_keys, DurationHistory, MemoryDurationHistory};
    use callbid::core::{BuyerProfile, CallContext};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let store = Store::open(&url).await.unwrap();
    let call = CallContext::new(
        CallId::new("CAwhy").unwrap(),
        Zip::parse("78701").unwrap(),
        ServiceType::new("plumbing").unwrap(),
        Utc::now(),
    )
    .with_caller(PhoneNumber::parse("+15125550123").unwrap());
    let history = Arc::new(MemoryDurationHistory::new());
    let dest = Destination::parse("+15125550199").unwrap();
    let mut b = Auction::builder();
    for (id, cents, billable) in [
        ("proven", 2000, 20),
        ("newcomer", 2100, 0),
        ("far-away", 3000, 0),
        ("sleepy", 0, 0),
    ] {
        let buyer = BuyerId::new(id).unwrap();
        let profile = BuyerProfile::new(buyer.clone());
        for _ in 0..billable {
            history
                .record(&history_keys(&buyer, &call, profile.time_zone), true)
                .await
                .unwrap();
        }
        let mut ib = InProcessBuyer::new(buyer, Money::usd(Decimal::new(cents, 2)), dest.clone());
        if id == "sleepy" {
            ib = ib.with_ping(PingBehavior::NoBid("closed for the day".into()));
        }
        let mut e = BuyerEntry::new(Arc::new(ib)).with_profile(profile);
        if id == "far-away" {
            let ny = GeoRule::allow().with_states([callbid::core::UsState::parse("NY").unwrap()]);
            e = e.with_rule(Arc::new(ny));
        }
        b = b.buyer(e);
    }
    let scorer = ScoringEngine::new(history, ScoringConfig::default()).unwrap();
    let auction = b.scorer(Arc::new(scorer)).build().unwrap();
    let outcome = auction.run(&call).await;
    callbid_server::settle::log_auction(&store, &auction, &call, &outcome)
        .await
        .unwrap();
    let app = router(DashboardState {
        store,
        auction,
        title: "why".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, dir)
}

#[tokio::test]
async fn replay_api_confirms_and_answers_what_if() {
    let (addr, _dir) = start_explained().await;
    let base = format!("http://{addr}/api/calls/CAwhy");
    let (status, body) = get_json(&format!("{base}/replay")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agrees"], true, "{body}");
    assert_eq!(body["logged_winner"], "proven");
    assert_eq!(body["replay"]["winner"], "proven");
    // What-if: by price alone the newcomer would have been tried first.
    let (status, body) = get_json(&format!("{base}/replay?strategy=highest-bid")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replay"]["winner"], "newcomer");
    assert_eq!(body["replay"]["winner_assumed"], true);
    assert_eq!(body["agrees"], serde_json::Value::Null);
    // A floor above the proven bid.
    let (_, body) = get_json(&format!("{base}/replay?floor=20.50")).await;
    assert_eq!(body["replay"]["winner"], "newcomer");
    // Bad input names the parameter and the value.
    for (q, field) in [
        ("strategy=cheapest", "strategy"),
        ("floor=ten", "floor"),
        ("floor=-1", "floor"),
        ("geo_weight.state:XX=1", "state"),
        ("hour_weight.9=-2", "weight"),
        ("hour_weight.25=1", "hour_weight"),
        ("prior=2", "prior"),
        ("colour=red", "parameter"),
    ] {
        let (status, body) = get_json(&format!("{base}/replay?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["field"], field, "{q}: {body}");
    }
    let (status, _) = get_json(&format!("http://{addr}/api/calls/CAnone/replay")).await;
    assert_eq!(status, 404);
}

#[cfg_attr(
    callbid_no_browser,
    ignore = "needs chromium and chromedriver (/usr/bin or CHROMIUM_BIN / CHROMEDRIVER_BIN; source .ci/chromium.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_why_this_buyer_won() {
    use fantoccini::Locator;
    let Some(b) = browser().await else {
        return;
    };
    let c = &b.c;
    let (addr, _dir) = start_explained().await;
    open(c, &format!("http://{addr}/")).await;
    eventually(
        "the call is listed",
        || shown_ids(c),
        |ids| ids == &["CAwhy"],
    )
    .await;
    c.find(Locator::Css("#calls tbody tr button.link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verdict = wait_text(c, "why-verdict", "the replay verdict", |t| !t.is_empty()).await;
    assert!(verdict.contains("same winner, same scores"), "{verdict}");
    let rows = eventually(
        "one row per buyer",
        || async {
            let v = c
                .execute(
                    "return [...document.querySelectorAll('#why-table tbody tr')].map(tr => \
                     [tr.dataset.buyer, tr.className, ...[...tr.cells].map(td => td.textContent)]);",
                    vec![],
                )
                .await
                .unwrap();
            serde_json::from_value::<Vec<Vec<String>>>(v).unwrap()
        },
        |rows| rows.len() == 4,
    )
    .await;
    let row = |id: &str| rows.iter().find(|r| r[0] == id).unwrap().clone();
    let proven = row("proven");
    assert_eq!(proven[1], "winner", "{proven:?}");
    assert_eq!(proven[2], "1", "tried first: {proven:?}");
    assert_eq!(proven[4], "won");
    assert!(
        proven[9].starts_with("all 20/20"),
        "history counts: {proven:?}"
    );
    let newcomer = row("newcomer");
    assert_eq!(newcomer[4], "outbid");
    assert_eq!(
        newcomer[8], "0.5",
        "a new buyer scores the prior: {newcomer:?}"
    );
    assert!(row("far-away")[4].starts_with("excluded: geo"), "{rows:?}");
    assert!(row("sleepy")[4].contains("closed for the day"), "{rows:?}");
    if let Ok(path) = std::env::var("WHY_SCREENSHOT") {
        std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    }
    // The raw explanation event is listed but not dumped.
    let events = text_of(c, "detail-events").await;
    assert!(events.contains("auction_explained"), "{events}");
    assert!(!events.contains("duration_evidence"), "{events}");
    b.c.close().await.unwrap();
}

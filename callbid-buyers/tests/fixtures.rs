//! The fixture runner, in the spirit of prebid-server's adapter tests: every
//! `tests/fixtures/<adapter>/{exemplary,supplemental}/*.json` holds a buyer config, a call,
//! and steps (ping, accept, report_loss), each with the expected outgoing request(s), the
//! canned response and the expected bid, destination or error. One harness runs them all
//! against a wiremock server on 127.0.0.1.
//!
//! Exemplary fixtures must not expect errors; supplemental ones cover failures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callbid_buyers::config::BuyersLoader;
use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
use callbid_core::{
    Bid, BuyerError, CallContext, CallId, Currency, Deadline, Money, PingReply, ServiceType,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    description: String,
    buyer: Value,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    http: Option<Value>,
    call: CallSpec,
    #[serde(default = "default_deadline")]
    deadline_ms: u64,
    steps: Vec<Step>,
}

fn default_deadline() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    call_id: String,
    zip: String,
    service: String,
    #[serde(default)]
    caller: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    campaign: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    received_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    step: String,
    #[serde(default)]
    sold: Option<String>,
    /// The sold price's currency (default USD).
    #[serde(default)]
    sold_currency: Option<String>,
    expected_requests: Vec<ExpectedRequest>,
    #[serde(default)]
    response: Option<CannedResponse>,
    expect: Value,
    /// Wait this long before the step (e.g. for a rate-limit pause to lapse).
    #[serde(default)]
    wait_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedRequest {
    method: String,
    path: String,
    #[serde(default)]
    query: Option<BTreeMap<String, String>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Headers that must not be sent at all.
    #[serde(default)]
    headers_absent: Vec<String>,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    form: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedResponse {
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_repeat: Option<(String, usize)>,
    /// A binary body (e.g. gzip), base64 (RFC 4648, standard alphabet).
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

fn call_of(c: &CallSpec) -> CallContext {
    let mut call = CallContext::new(
        CallId::new(&c.call_id).unwrap(),
        c.zip.parse().unwrap(),
        ServiceType::new(&c.service).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&c.received_at)
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    if let Some(p) = &c.caller {
        call = call.with_caller(p.parse().unwrap());
    }
    if let Some(s) = &c.source {
        call = call.with_source(s.parse().unwrap());
    }
    if let Some(s) = &c.campaign {
        call = call.with_campaign(s.parse().unwrap());
    }
    for (k, v) in &c.attributes {
        call = call.with_attribute(k, v);
    }
    call
}

fn response_of(r: &CannedResponse, server: &str) -> ResponseTemplate {
    let mut t = ResponseTemplate::new(r.status);
    // Set the body first: wiremock's body setters also set a content type, which explicit
    // headers below may then override.
    if let Some(j) = &r.json {
        t = t.set_body_json(j);
    }
    let mime = r.content_type.as_deref().unwrap_or("application/json");
    if let Some(b) = &r.body {
        t = t.set_body_raw(b.clone().into_bytes(), mime);
    }
    if let Some((text, times)) = &r.body_repeat {
        t = t.set_body_raw(text.repeat(*times).into_bytes(), mime);
    }
    if let Some(b) = &r.body_base64 {
        t = t.set_body_raw(base64_decode(b), mime);
    }
    for (k, v) in &r.headers {
        t = t.insert_header(k.as_str(), header_value(v, server).as_str());
    }
    if let Some(d) = r.delay_ms {
        t = t.set_delay(Duration::from_millis(d));
    }
    t
}

/// `{{server}}` is the mock's base URL; `{{http_date+N}}` the HTTP-date N seconds from
/// now (RFC 9110 §5.6.7).
fn header_value(v: &str, server: &str) -> String {
    let v = v.replace("{{server}}", server);
    match v
        .strip_prefix("{{http_date+")
        .and_then(|r| r.strip_suffix("}}"))
    {
        Some(n) => httpdate::fmt_http_date(
            std::time::SystemTime::now() + Duration::from_secs(n.parse().unwrap()),
        ),
        None => v,
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut n) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = acc << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
    }
    out
}

fn check_requests(ctx: &str, got: &[wiremock::Request], want: &[ExpectedRequest]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{ctx}: expected {} request(s), got {}: {:?}",
        want.len(),
        got.len(),
        got.iter().map(|r| r.url.to_string()).collect::<Vec<_>>()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ctx = format!("{ctx} request {i}");
        assert_eq!(g.method.as_str(), w.method, "{ctx}: method");
        assert_eq!(g.url.path(), w.path, "{ctx}: path");
        if let Some(q) = &w.query {
            let got_q: BTreeMap<String, String> = g.url.query_pairs().into_owned().collect();
            assert_eq!(&got_q, q, "{ctx}: query");
        }
        for (k, v) in &w.headers {
            let got_h = g
                .headers
                .get(k.as_str())
                .map(|h| h.to_str().unwrap_or("").to_string());
            assert_eq!(got_h.as_deref(), Some(v.as_str()), "{ctx}: header {k}");
        }
        for k in &w.headers_absent {
            assert!(
                g.headers.get(k.as_str()).is_none(),
                "{ctx}: header {k} must not be sent, got {:?}",
                g.headers.get(k.as_str())
            );
        }
        if let Some(j) = &w.json {
            let body: Value = serde_json::from_slice(&g.body).unwrap_or_else(|e| {
                panic!(
                    "{ctx}: body is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&g.body)
                )
            });
            assert_eq!(&body, j, "{ctx}: JSON body");
        }
        if let Some(f) = &w.form {
            let got_f: BTreeMap<String, String> =
                url::form_urlencoded::parse(&g.body).into_owned().collect();
            assert_eq!(&got_f, f, "{ctx}: form body");
        }
        if w.json.is_none() && w.form.is_none() {
            assert!(
                g.body.is_empty(),
                "{ctx}: unexpected body {:?}",
                String::from_utf8_lossy(&g.body)
            );
        }
    }
}

fn check_error(ctx: &str, e: &BuyerError, want: &Value) {
    let kind = want["kind"].as_str().expect("error.kind");
    assert_eq!(e.kind.as_str(), kind, "{ctx}: error kind ({e})");
    assert_eq!(
        e.step.to_string(),
        want.get("step")
            .and_then(Value::as_str)
            .unwrap_or(e.step.to_string().as_str()),
        "{ctx}: step"
    );
    if let Some(m) = want.get("message_contains").and_then(Value::as_str) {
        assert!(
            e.message.contains(m),
            "{ctx}: error message {:?} lacks {m:?}",
            e.message
        );
    }
    if let Some(range) = want.get("until_secs").and_then(Value::as_array) {
        let (lo, hi) = (range[0].as_i64().unwrap(), range[1].as_i64().unwrap());
        let callbid_core::BuyerErrorKind::RateLimited { until, .. } = e.kind else {
            panic!("{ctx}: {e} is not rate limited");
        };
        let left = (until - chrono::Utc::now()).num_milliseconds();
        assert!(
            left >= lo * 1000 - 1000 && left <= hi * 1000,
            "{ctx}: paused until {until}, {left} ms from now, not within {lo}..={hi} s"
        );
        let want_sent = e.kind.as_str() == "rate_limited";
        assert_eq!(
            e.may_have_reached_buyer(),
            want_sent,
            "{ctx}: delivery of {e}"
        );
    }
    if let Some(s) = want.get("message_excludes").and_then(Value::as_str) {
        assert!(
            !e.message.contains(s),
            "{ctx}: error message {:?} leaks {s:?}",
            e.message
        );
    }
}

fn check_bid(ctx: &str, bid: &Bid, want: &Value) {
    let price: Decimal = want["price"].as_str().expect("bid.price").parse().unwrap();
    assert_eq!(bid.price.amount, price, "{ctx}: price");
    let cur = want
        .get("currency")
        .and_then(Value::as_str)
        .unwrap_or("USD");
    assert_eq!(
        bid.price.currency,
        Currency::parse(cur).unwrap(),
        "{ctx}: currency"
    );
    assert_eq!(
        bid.bid_id.as_deref(),
        want.get("bid_id").and_then(Value::as_str),
        "{ctx}: bid id"
    );
    assert_eq!(
        bid.destination.as_ref().map(|d| d.to_string()),
        want.get("destination")
            .and_then(Value::as_str)
            .map(str::to_string),
        "{ctx}: destination"
    );
    assert_eq!(
        bid.min_duration.map(|d| d.as_secs()),
        want.get("min_duration_secs").and_then(Value::as_u64),
        "{ctx}: min duration"
    );
    match want.get("expires_within_secs").and_then(Value::as_i64) {
        Some(n) => {
            let at = bid.expires_at.unwrap_or_else(|| panic!("{ctx}: no expiry"));
            let left = at - chrono::Utc::now();
            assert!(
                left > chrono::Duration::zero() && left <= chrono::Duration::seconds(n),
                "{ctx}: expiry {at} not within {n}s"
            );
        }
        None => match want.get("expires_at").and_then(Value::as_str) {
            Some(t) => assert_eq!(
                bid.expires_at.map(|d| d.to_rfc3339()),
                Some(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .unwrap()
                        .with_timezone(&chrono::Utc)
                        .to_rfc3339()
                ),
                "{ctx}: expires_at"
            ),
            None => assert_eq!(bid.expires_at, None, "{ctx}: unexpected expiry"),
        },
    }
}

async fn run_fixture(path: &Path, exemplary: bool) {
    let text = std::fs::read_to_string(path).unwrap();
    let server = MockServer::start().await;
    let base = server.uri();
    let fx: Fixture = serde_json::from_str(&text.replace("{{server}}", &base))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ctx0 = format!("{} ({})", path.display(), fx.description);
    let mut doc = serde_json::json!({ "buyer": [fx.buyer] });
    if let Some(h) = &fx.http {
        doc["http"] = h.clone();
    }
    let toml_doc = toml::Value::try_from(&doc).unwrap();
    let entries = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .with_env(fx.env.clone())
    .load_value(toml_doc)
    .unwrap_or_else(|e| panic!("{ctx0}: buyer config: {e}"));
    assert_eq!(entries.len(), 1, "{ctx0}");
    let buyer = entries[0].buyer.clone();
    let call = call_of(&fx.call);
    let mut last_bid: Option<Bid> = None;
    for (i, step) in fx.steps.iter().enumerate() {
        let ctx = format!("{ctx0} step {i} ({})", step.step);
        if let Some(ms) = step.wait_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        server.reset().await;
        if let Some(r) = &step.response {
            Mock::given(any())
                .respond_with(response_of(r, &base))
                .mount(&server)
                .await;
        }
        let deadline = Deadline::after(Duration::from_millis(fx.deadline_ms));
        let started = tokio::time::Instant::now();
        let expect = &step.expect;
        if exemplary {
            assert!(
                expect.get("error").is_none(),
                "{ctx}: exemplary fixtures expect no errors"
            );
        }
        match step.step.as_str() {
            "ping" => {
                let r = buyer.ping(&call, deadline).await;
                match (r, expect) {
                    (Ok(PingReply::Bid(b)), e) if e.get("bid").is_some() => {
                        check_bid(&ctx, &b, &e["bid"]);
                        last_bid = Some(b);
                    }
                    (Ok(PingReply::NoBid { reason }), e) if e.get("no_bid").is_some() => {
                        if let Some(m) = e["no_bid"].get("reason_contains").and_then(Value::as_str)
                        {
                            assert!(
                                reason.contains(m),
                                "{ctx}: no-bid reason {reason:?} lacks {m:?}"
                            );
                        }
                    }
                    (Err(err), e) if e.get("error").is_some() => {
                        check_error(&ctx, &err, &e["error"])
                    }
                    (got, e) => panic!("{ctx}: expected {e}, got {got:?}"),
                }
            }
            "accept" => {
                let bid = last_bid
                    .clone()
                    .unwrap_or_else(|| panic!("{ctx}: no bid to accept"));
                let r = buyer.accept(&call, &bid, deadline).await;
                match (r, expect) {
                    (Ok(d), e) if e.get("destination").is_some() => {
                        assert_eq!(
                            Some(d.to_string().as_str()),
                            e["destination"].as_str(),
                            "{ctx}: destination"
                        )
                    }
                    (Err(err), e) if e.get("error").is_some() => {
                        check_error(&ctx, &err, &e["error"])
                    }
                    (got, e) => panic!("{ctx}: expected {e}, got {got:?}"),
                }
            }
            "report_loss" => {
                let bid = last_bid.clone().unwrap_or_else(|| panic!("{ctx}: no bid"));
                let currency = Currency::parse(step.sold_currency.as_deref().unwrap_or("USD"))
                    .unwrap_or_else(|e| panic!("{ctx}: sold_currency: {e}"));
                let sold =
                    Money::parse_amount("sold", step.sold.as_deref().unwrap_or("1"), currency)
                        .unwrap();
                let r = buyer.report_loss(&call, &bid, &sold).await;
                match (r, expect) {
                    (Ok(()), e) if e.get("ok").is_some() => {}
                    (Err(err), e) if e.get("error").is_some() => {
                        check_error(&ctx, &err, &e["error"])
                    }
                    (got, e) => panic!("{ctx}: expected {e}, got {got:?}"),
                }
            }
            other => panic!("{ctx}: unknown step {other}"),
        }
        let elapsed = started.elapsed();
        if step.step != "report_loss" {
            assert!(
                elapsed < Duration::from_millis(fx.deadline_ms + 500),
                "{ctx}: took {elapsed:?}, deadline {} ms",
                fx.deadline_ms
            );
        }
        let got = server.received_requests().await.unwrap_or_default();
        check_requests(&ctx, &got, &step.expected_requests);
    }
}

async fn run_adapter(adapter: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(adapter);
    let mut count = 0;
    for (kind, exemplary) in [("exemplary", true), ("supplemental", false)] {
        let dir = root.join(kind);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no fixtures", dir.display());
        for f in files {
            run_fixture(&f, exemplary).await;
            count += 1;
        }
    }
    assert!(count >= 10, "{adapter}: only {count} fixtures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_direct() {
    run_adapter("service_direct").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringba() {
    run_adapter("ringba").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retreaver() {
    run_adapter("retreaver").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trackdrive() {
    run_adapter("trackdrive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callgrid() {
    run_adapter("callgrid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_ping_post() {
    run_adapter("inline").await;
}

//! A local buyer network for demos, tests and benches: Service Direct-compatible
//! endpoints and Ringba-style RTB endpoints for N buyers, each with its own price range,
//! no-bid rate, accept rate, latency range and failure rate. Randomness is seeded, so a
//! run is reproducible for a given seed and request order.
//!
//! Routes (one server, every buyer under its own prefix):
//! - `POST /sd/{buyer}/request` — Service Direct ping (`sd_api_key`, `zip_code`,
//!   `service_category`, …) → `200 {"data":{"available_buyer":1,"request_id":…,"bid":…,
//!   "min_duration":…}}`, `404` (no buyer), `400 {"message":…}`.
//! - `POST /sd/{buyer}/request/{id}/accept` → `{"data":{"phone_number":"5125550123"}}`.
//! - `POST /sd/{buyer}/request/{id}/sold_price` → `{"data":{"success":1,…}}`.
//! - `POST /rtb/v1/production/{buyer}.json` — Ringba-style ping → `bidId`, `bidAmount`
//!   (0 with `rejectReason` when declining), `expireInSeconds`, `phoneNumber` or
//!   `sipAddress`, `bidTerms[{callMinDuration}]`.
//! - `GET /stats` — counts per buyer (pings, bids, accepts, failures).
//!
//! The servers start it with [`load_buyers_or_demo`] (or [`start_demo`]), which also
//! loads its `buyers.toml` into auction entries.

pub mod fake_twilio;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callbid_buyers::BuyersLoader;
use callbid_core::BuyerEntry;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which wire format a mock buyer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MockKind {
    /// Service Direct partner API (ping, accept, sold_price).
    ServiceDirect,
    /// Ringba-style RTB (destination in the ping answer, no post step).
    Rtb,
}

/// One mock buyer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MockBuyer {
    /// Path segment and buyer id.
    pub name: String,
    /// Wire format.
    pub kind: MockKind,
    /// Lowest bid, in cents.
    pub price_min_cents: u32,
    /// Highest bid, in cents.
    pub price_max_cents: u32,
    /// Probability of declining a ping (0–1).
    pub no_bid_rate: f64,
    /// Probability that an accept succeeds (0–1).
    pub accept_rate: f64,
    /// Fastest answer, ms.
    pub latency_min_ms: u64,
    /// Slowest answer, ms.
    pub latency_max_ms: u64,
    /// Probability of answering HTTP 500 (0–1).
    pub failure_rate: f64,
    /// Where won calls go: 10-digit NANP for Service Direct, E.164 or `sip:` for RTB.
    pub destination: String,
    /// Minimum billable duration stated in bids, seconds.
    pub min_duration_secs: u32,
    /// Service Direct API key the mock expects (`sd_api_key`).
    pub api_key: String,
}

/// Per-buyer counters, served at `/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MockStats {
    /// Pings received.
    pub pings: u64,
    /// Bids made.
    pub bids: u64,
    /// Accepts that succeeded.
    pub accepts: u64,
    /// Accepts refused.
    pub accept_failures: u64,
    /// HTTP 500s sent.
    pub failures: u64,
    /// Loss reports received.
    pub losses: u64,
}

struct Shared {
    buyers: BTreeMap<String, MockBuyer>,
    rng: Mutex<ChaCha8Rng>,
    stats: Mutex<BTreeMap<String, MockStats>>,
    next_request: Mutex<u64>,
}

/// The demo network: eight buyers with different prices, speeds and habits.
pub fn demo_buyers(n: usize) -> Vec<MockBuyer> {
    let templates = [
        (
            "sd-acme-home",
            MockKind::ServiceDirect,
            2500,
            6000,
            0.15,
            0.95,
            40,
            250,
            0.02,
            "5125550101",
            60,
        ),
        (
            "rtb-lonestar",
            MockKind::Rtb,
            3000,
            7000,
            0.25,
            1.0,
            60,
            400,
            0.03,
            "sip:inbound@lonestar.example.com",
            90,
        ),
        (
            "sd-bluewater",
            MockKind::ServiceDirect,
            2000,
            4500,
            0.10,
            0.90,
            30,
            180,
            0.02,
            "2125550102",
            60,
        ),
        (
            "rtb-pinnacle",
            MockKind::Rtb,
            3500,
            8000,
            0.35,
            1.0,
            80,
            600,
            0.05,
            "+13125550103",
            120,
        ),
        (
            "sd-redline",
            MockKind::ServiceDirect,
            1500,
            3500,
            0.05,
            0.85,
            20,
            120,
            0.01,
            "4155550104",
            45,
        ),
        (
            "rtb-summit",
            MockKind::Rtb,
            2800,
            5200,
            0.20,
            1.0,
            50,
            300,
            0.02,
            "+16175550105",
            60,
        ),
        (
            "sd-keystone",
            MockKind::ServiceDirect,
            4000,
            9000,
            0.50,
            0.80,
            100,
            900,
            0.05,
            "7135550106",
            90,
        ),
        (
            "rtb-harbor",
            MockKind::Rtb,
            2200,
            4800,
            0.15,
            1.0,
            40,
            260,
            0.02,
            "+12065550107",
            60,
        ),
    ];
    (0..n)
        .map(|i| {
            let t = templates[i % templates.len()];
            let suffix = if i < templates.len() {
                String::new()
            } else {
                format!("-{}", i / templates.len())
            };
            MockBuyer {
                name: format!("{}{suffix}", t.0),
                kind: t.1,
                price_min_cents: t.2,
                price_max_cents: t.3,
                no_bid_rate: t.4,
                accept_rate: t.5,
                latency_min_ms: t.6,
                latency_max_ms: t.7,
                failure_rate: t.8,
                destination: t.9.to_string(),
                min_duration_secs: t.10,
                api_key: format!("demo-key-{i}"),
            }
        })
        .collect()
}

/// The axum router of the network.
pub fn router(buyers: Vec<MockBuyer>, seed: u64) -> Router {
    let shared = Arc::new(Shared {
        stats: Mutex::new(
            buyers
                .iter()
                .map(|b| (b.name.clone(), MockStats::default()))
                .collect(),
        ),
        buyers: buyers.into_iter().map(|b| (b.name.clone(), b)).collect(),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        next_request: Mutex::new(1000),
    });
    Router::new()
        .route("/sd/{buyer}/request", post(sd_ping))
        .route("/sd/{buyer}/request/{id}/accept", post(sd_accept))
        .route("/sd/{buyer}/request/{id}/sold_price", post(sd_sold))
        .route("/rtb/v1/production/{file}", post(rtb_ping).get(rtb_ping))
        .route("/stats", get(stats))
        .with_state(shared)
}

/// A running network.
pub struct MockNetwork {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its buyers.
    pub buyers: Vec<MockBuyer>,
    task: tokio::task::JoinHandle<()>,
}

impl MockNetwork {
    /// Starts the network on `addr` (port 0: any free port).
    pub async fn start(
        addr: SocketAddr,
        buyers: Vec<MockBuyer>,
        seed: u64,
    ) -> std::io::Result<MockNetwork> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(buyers.clone(), seed);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("mock buyer network stopped: {e}");
            }
        });
        Ok(MockNetwork { addr, buyers, task })
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `buyers.toml` describing this network for `callbid-buyers`. API keys are read
    /// from environment variables named `MOCK_SD_KEY_<N>`; [`MockNetwork::env_keys`]
    /// lists them (they are demo keys, not secrets).
    pub fn buyers_toml(&self) -> String {
        buyers_toml(&self.base_url(), &self.buyers)
    }

    /// The `MOCK_SD_KEY_<N>` variables the generated `buyers.toml` names, with their
    /// values, for [`BuyersLoader::with_env`] (or for printing as `export` lines).
    pub fn env_keys(&self) -> Vec<(String, String)> {
        self.buyers
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("MOCK_SD_KEY_{i}"), b.api_key.clone()))
            .collect()
    }

    /// This network's buyers as auction entries: its `buyers.toml` loaded through
    /// `loader` (which supplies the cap and seen-caller stores) with the demo keys.
    pub fn entries(&self, loader: BuyersLoader) -> anyhow::Result<Vec<BuyerEntry>> {
        loader
            .with_env(self.env_keys())
            .load_str(&self.buyers_toml())
            .context("the demo network's buyers.toml")
    }

    /// Stops the server.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// The demo network ([`demo_buyers`]`(n)`, seeded with `seed`) started on a free
/// loopback port, and its buyers loaded through `loader` as auction entries. Stop the
/// network when the server stops.
pub async fn start_demo(
    loader: BuyersLoader,
    n: usize,
    seed: u64,
) -> anyhow::Result<(MockNetwork, Vec<BuyerEntry>)> {
    let net = MockNetwork::start(SocketAddr::from(([127, 0, 0, 1], 0)), demo_buyers(n), seed)
        .await
        .context("cannot start the demo buyer network")?;
    let entries = net.entries(loader)?;
    Ok((net, entries))
}

/// How many buyers the servers' demo network has.
pub const DEMO_BUYERS: usize = 8;

/// A server's buyers: the `buyers.toml` at `path`, or without one the demo network of
/// [`DEMO_BUYERS`] buyers seeded with `seed` (see [`start_demo`]), which is returned so
/// that the server can print where it is and stop it at shutdown.
pub async fn load_buyers_or_demo(
    loader: BuyersLoader,
    path: Option<&std::path::Path>,
    seed: u64,
) -> anyhow::Result<(Vec<BuyerEntry>, Option<MockNetwork>)> {
    match path {
        Some(path) => {
            let entries = loader
                .load_file(path)
                .with_context(|| format!("invalid --buyers {}", path.display()))?;
            Ok((entries, None))
        }
        None => {
            let (net, entries) = start_demo(loader, DEMO_BUYERS, seed).await?;
            Ok((entries, Some(net)))
        }
    }
}

/// See [`MockNetwork::buyers_toml`].
pub fn buyers_toml(base: &str, buyers: &[MockBuyer]) -> String {
    let mut out = String::from(
        "# Generated for the local demo buyer network (examples/mock_buyers).\n\
         [defaults]\ntime_zone = \"America/Chicago\"\ncurrency = \"USD\"\ntimeout_ms = 1200\nmin_duration_secs = 60\n",
    );
    for (i, b) in buyers.iter().enumerate() {
        out.push_str(&format!("\n[[buyer]]\nid = \"{}\"\n", b.name));
        match b.kind {
            MockKind::ServiceDirect => out.push_str(&format!(
                "adapter = \"service_direct\"\n\n[buyer.service_direct]\nbase_url = \"{base}/sd/{}/\"\napi_key_env = \"MOCK_SD_KEY_{i}\"\n",
                b.name
            )),
            MockKind::Rtb => out.push_str(&format!(
                "adapter = \"ping_post\"\n\n[buyer.ping_post]\npreset = \"ringba\"\nbase_url = \"{base}/rtb\"\n\n[buyer.ping_post.params]\nrtb_id = \"{}\"\n",
                b.name
            )),
        }
    }
    out
}

impl Shared {
    fn buyer(&self, name: &str) -> Option<MockBuyer> {
        self.buyers.get(name).cloned()
    }

    fn roll(&self) -> f64 {
        self.rng
            .lock()
            .map(|mut r| r.random::<f64>())
            .unwrap_or(0.5)
    }

    fn between(&self, lo: u64, hi: u64) -> u64 {
        self.rng
            .lock()
            .map(|mut r| r.random_range(lo..=hi.max(lo)))
            .unwrap_or(lo)
    }

    fn count(&self, name: &str, f: impl FnOnce(&mut MockStats)) {
        if let Ok(mut s) = self.stats.lock() {
            if let Some(e) = s.get_mut(name) {
                f(e);
            }
        }
    }

    fn request_id(&self) -> u64 {
        self.next_request
            .lock()
            .map(|mut n| {
                *n += 1;
                *n
            })
            .unwrap_or(0)
    }

    async fn delay(&self, b: &MockBuyer) {
        let ms = self.between(b.latency_min_ms, b.latency_max_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn price(&self, b: &MockBuyer) -> String {
        let cents = self.between(u64::from(b.price_min_cents), u64::from(b.price_max_cents));
        format!("{}.{:02}", cents / 100, cents % 100)
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "unknown buyer"})),
    )
        .into_response()
}

async fn sd_ping(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let Some(b) = s.buyer(&name) else {
        return not_found();
    };
    s.count(&name, |c| c.pings += 1);
    s.delay(&b).await;
    let Some(Json(body)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "body must be JSON"})),
        )
            .into_response();
    };
    if body.get("sd_api_key").and_then(Value::as_str) != Some(b.api_key.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Invalid sd_api_key"})),
        )
            .into_response();
    }
    let zip = body.get("zip_code").and_then(Value::as_str).unwrap_or("");
    if zip.len() != 5 || !zip.bytes().all(|c| c.is_ascii_digit()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "The zip code field is invalid."})),
        )
            .into_response();
    }
    if s.roll() < b.failure_rate {
        s.count(&name, |c| c.failures += 1);
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream error").into_response();
    }
    if zip == "11111" || s.roll() < b.no_bid_rate {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "No buyer available"})),
        )
            .into_response();
    }
    s.count(&name, |c| c.bids += 1);
    let id = s.request_id();
    let price = s.price(&b);
    let bid: Value = serde_json::from_str(&price).unwrap_or(json!(0));
    Json(json!({"data": {
        "available_buyer": 1,
        "request_id": id,
        "bid": bid,
        "min_duration": b.min_duration_secs,
        "tracking_id": body.get("tracking_id").cloned().unwrap_or(Value::Null),
        "test_mode": body.get("test_mode").cloned().unwrap_or(json!(false)),
    }}))
    .into_response()
}

async fn sd_accept(
    State(s): State<Arc<Shared>>,
    Path((name, _id)): Path<(String, String)>,
) -> Response {
    let Some(b) = s.buyer(&name) else {
        return not_found();
    };
    s.delay(&b).await;
    if s.roll() < b.accept_rate {
        s.count(&name, |c| c.accepts += 1);
        Json(json!({"data": {"phone_number": b.destination, "success": 1}})).into_response()
    } else {
        s.count(&name, |c| c.accept_failures += 1);
        (
            StatusCode::GONE,
            Json(json!({"message": "Request is no longer available"})),
        )
            .into_response()
    }
}

async fn sd_sold(
    State(s): State<Arc<Shared>>,
    Path((name, _id)): Path<(String, String)>,
) -> Response {
    if s.buyer(&name).is_none() {
        return not_found();
    }
    s.count(&name, |c| c.losses += 1);
    Json(json!({"data": {"success": 1, "message": "Sold price received successfully"}}))
        .into_response()
}

async fn rtb_ping(State(s): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let name = file.strip_suffix(".json").unwrap_or(&file).to_string();
    let Some(b) = s.buyer(&name) else {
        return not_found();
    };
    s.count(&name, |c| c.pings += 1);
    s.delay(&b).await;
    if s.roll() < b.failure_rate {
        s.count(&name, |c| c.failures += 1);
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream error").into_response();
    }
    let id = format!("RTB{}", s.request_id());
    if s.roll() < b.no_bid_rate {
        return Json(json!({"bidId": id, "bidAmount": 0, "rejectReason": "No capacity"}))
            .into_response();
    }
    s.count(&name, |c| c.bids += 1);
    let price: Value = serde_json::from_str(&s.price(&b)).unwrap_or(json!(0));
    let mut answer = json!({
        "bidId": id,
        "bidAmount": price,
        "expireInSeconds": 60,
        "bidTerms": [{"code": "min", "callMinDuration": b.min_duration_secs}],
    });
    if b.destination.starts_with("sip:") {
        answer["sipAddress"] = json!(b.destination);
    } else {
        answer["phoneNumber"] = json!(b.destination);
        answer["phoneNumberNoPlus"] = json!(b.destination.trim_start_matches('+'));
    }
    Json(answer).into_response()
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    let snapshot = s.stats.lock().map(|m| m.clone()).unwrap_or_default();
    Json(snapshot).into_response()
}

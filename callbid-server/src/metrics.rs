//! `GET /metrics` in the Prometheus text exposition format, and what callbid records.
//!
//! Recording goes through the `metrics` facade; [`prometheus`] installs the
//! `metrics-exporter-prometheus` recorder as the process's global recorder (once; an
//! embedder that installed its own recorder keeps it, and callbid's metrics flow into
//! theirs). [`router`] serves the recorder's text.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `callbid_auctions_total` | counter | `result` (`won`, `no_buyer`), `reason` | auctions run |
//! | `callbid_auction_duration_seconds` | histogram | — | an auction's wall time |
//! | `callbid_pings_total` | counter | `buyer`, `reply` (`bid`, `no_bid`, `invalid_bid`, `failed`, `timeout`, `cancelled`, `not_pinged`) | each buyer's answer to each auction |
//! | `callbid_ping_duration_seconds` | histogram | `buyer` | ping latency of the buyers that were pinged |
//! | `callbid_accept_failures_total` | counter | `buyer`, `kind` (`refused` or the error kind) | accepts that failed or were refused |
//! | `callbid_fallbacks_total` | counter | `kind` (`voicemail`, `in-house`, `message`, …) | calls sent to a fallback step |
//! | `callbid_webhook_duration_seconds` | histogram | `route`, `status` | webhook handling time per route (the route template, never a call id) |
//! | `callbid_call_log_append_duration_seconds` | histogram | `outcome` (`ok`, `error`) | call-log appends |
//!
//! Histogram buckets (seconds): [`BUCKETS`].

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use callbid_core::auction::{AcceptRecord, AuctionOutcome, AuctionResult, BuyerReply};
use callbid_core::state::{AppendOutcome, CallEvent, CallLog, CallRecord};
use callbid_core::{CallId, StateError};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, in seconds: 1 ms to 10 s.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The Prometheus recorder's handle, installing the recorder globally on first use.
/// `None` when another global recorder was installed first (the embedder's own).
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?;
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    eprintln!("WARN metrics: not serving /metrics: {e}");
                    None
                }
            }
        })
        .clone()
}

/// `GET /metrics`: the text exposition format (`text/plain; version=0.0.4`).
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let h = handle.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    h.render(),
                )
                    .into_response()
            }
        }),
    )
}

/// Records one auction: its result, each buyer's reply and ping latency, failed accepts.
pub fn record_auction(outcome: &AuctionOutcome) {
    let (result, reason) = match &outcome.result {
        AuctionResult::Won(_) => ("won", String::new()),
        AuctionResult::NoBuyer { reason } => ("no_buyer", reason.to_string()),
        _ => ("other", String::new()),
    };
    metrics::counter!("callbid_auctions_total", "result" => result, "reason" => reason)
        .increment(1);
    metrics::histogram!("callbid_auction_duration_seconds")
        .record(outcome.timings.total.as_secs_f64());
    for b in &outcome.buyers {
        let buyer = b.buyer.as_str().to_owned();
        metrics::counter!("callbid_pings_total", "buyer" => buyer.clone(), "reply" => reply_name(&b.reply))
            .increment(1);
        if let Some(d) = b.latency {
            metrics::histogram!("callbid_ping_duration_seconds", "buyer" => buyer.clone())
                .record(d.as_secs_f64());
        }
        let failed = match &b.accept {
            Some(AcceptRecord::Failed { kind, .. }) => Some(kind.to_string()),
            Some(AcceptRecord::Refused { .. }) => Some("refused".to_owned()),
            _ => None,
        };
        if let Some(kind) = failed {
            metrics::counter!("callbid_accept_failures_total", "buyer" => buyer, "kind" => kind)
                .increment(1);
        }
    }
}

fn reply_name(r: &BuyerReply) -> &'static str {
    match r {
        BuyerReply::NotPinged => "not_pinged",
        BuyerReply::Bid { .. } => "bid",
        BuyerReply::InvalidBid { .. } => "invalid_bid",
        BuyerReply::NoBid { .. } => "no_bid",
        BuyerReply::Failed { .. } => "failed",
        BuyerReply::TimedOut => "timeout",
        BuyerReply::Cancelled => "cancelled",
        _ => "other",
    }
}

/// Records a call sent to a fallback step of `kind`.
pub fn record_fallback(kind: &str) {
    metrics::counter!("callbid_fallbacks_total", "kind" => kind.to_owned()).increment(1);
}

/// Middleware timing every request by its matched route template.
pub async fn time_webhooks(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let res = next.run(req).await;
    metrics::histogram!(
        "callbid_webhook_duration_seconds",
        "route" => route,
        "status" => res.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    res
}

/// A [`CallLog`] that times its appends (`callbid_call_log_append_duration_seconds`).
#[derive(Debug, Clone)]
pub struct TimedCallLog(pub Arc<dyn CallLog>);

#[async_trait]
impl CallLog for TimedCallLog {
    async fn append(&self, event: &CallEvent) -> Result<AppendOutcome, StateError> {
        let started = Instant::now();
        let r = self.0.append(event).await;
        let outcome = if r.is_ok() { "ok" } else { "error" };
        metrics::histogram!("callbid_call_log_append_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        r
    }
    async fn append_all(&self, events: &[CallEvent]) -> Result<Vec<AppendOutcome>, StateError> {
        let started = Instant::now();
        let r = self.0.append_all(events).await;
        let outcome = if r.is_ok() { "ok" } else { "error" };
        let per_event = started.elapsed().as_secs_f64();
        for _ in events {
            metrics::histogram!("callbid_call_log_append_duration_seconds", "outcome" => outcome)
                .record(per_event);
        }
        r
    }
    async fn events(&self, call: &CallId) -> Result<Vec<CallEvent>, StateError> {
        self.0.events(call).await
    }
    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError> {
        self.0.record(call).await
    }
    async fn has_key_prefix(&self, call: &CallId, prefix: &str) -> Result<bool, StateError> {
        self.0.has_key_prefix(call, prefix).await
    }
}

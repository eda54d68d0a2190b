//! A tracing span per buyer exchange (`buyer_http`). Alone in its test binary: tracing
//! caches callsite interest process-wide, so a scoped subscriber must not race other
//! tests hitting the same callsites.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callbid_buyers::config::BuyersLoader;
use callbid_core::auction::Auction;
use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
use callbid_core::{CallContext, CallId, ServiceType};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Counts `buyer_http` spans.
struct SpanCounter(Arc<AtomicUsize>);

impl tracing::Subscriber for SpanCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if span.metadata().name() == "buyer_http" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn one_span_per_exchange() {
    let count = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(SpanCounter(count.clone()), || {
        rt.block_on(async {
            let server = MockServer::start().await;
            Mock::given(any())
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "bidId": "B1", "bidAmount": 30, "phoneNumber": "+18005550111"
                })))
                .mount(&server)
                .await;
            let toml: String = ["r1", "r2"]
                .iter()
                .map(|id| format!(
                    "[[buyer]]\nid = \"{id}\"\nadapter = \"ping_post\"\nping_post = {{ preset = \"ringba\", base_url = \"{}\", params = {{ rtb_id = \"{id}\" }} }}\n",
                    server.uri()
                ))
                .collect();
            let entries = BuyersLoader::new(Arc::new(MemoryCapStore::new()), Arc::new(MemorySeenCallers::new()))
                .load_str(&toml)
                .unwrap();
            let auction = Auction::builder().buyers(entries).deadline(Duration::from_secs(2)).build().unwrap();
            let call = CallContext::new(
                CallId::new("CA-span").unwrap(),
                "78701".parse().unwrap(),
                ServiceType::new("plumbing").unwrap(),
                chrono::Utc::now(),
            )
            .with_caller("+15125550123".parse().unwrap());
            assert!(auction.run(&call).await.winner().is_some());
        })
    });
    // Two pings; Ringba has no accept step, so no third exchange.
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

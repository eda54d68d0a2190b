//! The Buyer wrappers: rate limit, retry, fault injection.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use callbid_buyers::layers::{Fault, FaultInjection, RateLimit, Retry};
use callbid_core::buyer::Delivery;
use callbid_core::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerId, BuyerStep, CallContext, CallId, Deadline,
    Destination, Money, PingReply, ServiceType,
};

/// One scripted answer: success, or an error kind with what the error says about
/// delivery (`None`: what `BuyerError::new` assumes for the kind).
type Step = Option<(BuyerErrorKind, Option<Delivery>)>;

#[derive(Debug)]
struct Scripted {
    id: BuyerId,
    script: Mutex<Vec<Step>>,
    calls: AtomicU32,
    accepts: AtomicU32,
}

impl Scripted {
    fn new(script: Vec<Option<BuyerErrorKind>>) -> Arc<Self> {
        Self::delivering(script.into_iter().map(|k| k.map(|k| (k, None))).collect())
    }

    /// Errors that say whether the request reached the buyer (`None`: what `new`
    /// assumes for the kind).
    fn delivering(script: Vec<Step>) -> Arc<Self> {
        Arc::new(Scripted {
            id: BuyerId::new("scripted").unwrap(),
            script: Mutex::new(script),
            calls: AtomicU32::new(0),
            accepts: AtomicU32::new(0),
        })
    }

    fn next(&self, step: BuyerStep) -> Result<(), BuyerError> {
        let mut s = self.script.lock().unwrap();
        let r = if s.is_empty() { None } else { s.remove(0) };
        match r {
            None => Ok(()),
            Some((k, None)) => Err(BuyerError::new(self.id.clone(), step, k, "scripted")),
            Some((k, Some(d))) => {
                Err(BuyerError::new(self.id.clone(), step, k, "scripted").with_delivery(d))
            }
        }
    }
}

#[async_trait]
impl Buyer for Scripted {
    fn id(&self) -> &BuyerId {
        &self.id
    }
    async fn ping(&self, _: &CallContext, _: Deadline) -> Result<PingReply, BuyerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.next(BuyerStep::Ping)?;
        Ok(PingReply::Bid(
            Bid::new(self.id.clone(), Money::usd(10.into()))
                .with_destination(Destination::parse("+15125550100").unwrap()),
        ))
    }
    async fn accept(
        &self,
        _: &CallContext,
        bid: &Bid,
        _: Deadline,
    ) -> Result<Destination, BuyerError> {
        self.accepts.fetch_add(1, Ordering::SeqCst);
        self.next(BuyerStep::Accept)?;
        Ok(bid.destination.clone().unwrap())
    }
}

fn call() -> CallContext {
    CallContext::new(
        CallId::new("CA1").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
}

fn far() -> Deadline {
    Deadline::after(Duration::from_secs(10))
}

#[tokio::test(start_paused = true)]
async fn rate_limit_refuses_at_once_then_recovers() {
    let inner = Scripted::new(vec![]);
    let rl = RateLimit::new(inner.clone(), 3, Duration::from_secs(60));
    for _ in 0..3 {
        assert!(rl.ping(&call(), far()).await.is_ok());
    }
    let started = tokio::time::Instant::now();
    let e = rl.ping(&call(), far()).await.unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::Refused);
    assert!(e.message.contains("3 pings per 60000 ms"), "{e}");
    assert_eq!(started.elapsed(), Duration::ZERO, "refusing must not wait");
    assert_eq!(
        inner.calls.load(Ordering::SeqCst),
        3,
        "a refused ping never reaches the buyer"
    );
    // Accepts are not counted.
    assert!(rl.ping(&call(), far()).await.is_err());
    let bid = Bid::new(inner.id.clone(), Money::usd(1.into()))
        .with_destination(Destination::parse("+15125550100").unwrap());
    assert!(rl.accept(&call(), &bid, far()).await.is_ok());
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(rl.ping(&call(), far()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn retry_only_connection_failures() {
    let t = Some(BuyerErrorKind::Transport);
    let inner = Scripted::new(vec![t, t]);
    let r = Retry::new(inner.clone(), 2, Duration::from_millis(10));
    assert!(r.ping(&call(), far()).await.is_ok());
    assert_eq!(inner.calls.load(Ordering::SeqCst), 3);

    let inner = Scripted::new(vec![t, t, t]);
    let r = Retry::new(inner.clone(), 2, Duration::from_millis(10));
    let e = r.ping(&call(), far()).await.unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::Transport);
    assert!(e.message.contains("after 2 retries"), "{e}");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 3);

    for kind in [
        BuyerErrorKind::Timeout,
        BuyerErrorKind::BadResponse,
        BuyerErrorKind::Rejected,
    ] {
        let inner = Scripted::new(vec![Some(kind)]);
        let r = Retry::new(inner.clone(), 3, Duration::from_millis(10));
        assert_eq!(r.ping(&call(), far()).await.unwrap_err().kind, kind);
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            1,
            "{kind} must not be retried"
        );
    }

    // No retry when the deadline leaves no room for the backoff.
    let inner = Scripted::new(vec![t, t]);
    let r = Retry::new(inner.clone(), 2, Duration::from_millis(100));
    let e = r
        .ping(&call(), Deadline::after(Duration::from_millis(150)))
        .await
        .unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::Transport);
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);

    // Accepts are retried only when asked.
    let inner = Scripted::new(vec![None, t]);
    let r = Retry::new(inner.clone(), 2, Duration::from_millis(10));
    let PingReply::Bid(bid) = r.ping(&call(), far()).await.unwrap() else {
        panic!()
    };
    assert!(r.accept(&call(), &bid, far()).await.is_err());
    let inner = Scripted::new(vec![None, t]);
    let r = Retry::new(inner.clone(), 2, Duration::from_millis(10)).with_accept_retries(true);
    let PingReply::Bid(bid) = r.ping(&call(), far()).await.unwrap() else {
        panic!()
    };
    assert!(r.accept(&call(), &bid, far()).await.is_ok());
    assert_eq!(inner.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_only_what_never_reached_the_buyer() {
    use BuyerErrorKind::{Timeout, Transport};
    // A timeout while connecting never left: retried, for pings and (when asked) accepts.
    let inner = Scripted::delivering(vec![Some((Timeout, Some(Delivery::NotSent)))]);
    let r = Retry::new(inner.clone(), 2, Duration::from_millis(10));
    assert!(r.ping(&call(), far()).await.is_ok());
    assert_eq!(inner.calls.load(Ordering::SeqCst), 2);

    // A timeout after the request was written, or a connection that broke after it:
    // the buyer may have it, so it is not sent again.
    for (kind, delivery) in [
        (Timeout, Some(Delivery::MaybeDelivered)),
        (Timeout, None),
        (Transport, Some(Delivery::MaybeDelivered)),
    ] {
        let inner = Scripted::delivering(vec![Some((kind, delivery))]);
        let r = Retry::new(inner.clone(), 3, Duration::from_millis(10));
        let e = r.ping(&call(), far()).await.unwrap_err();
        assert_eq!((e.kind, e.may_have_reached_buyer()), (kind, true));
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1, "{kind} {delivery:?}");

        // Nor an accept, even with accept retries on: it could sell the call twice.
        let inner = Scripted::delivering(vec![None, Some((kind, delivery))]);
        let r = Retry::new(inner.clone(), 3, Duration::from_millis(10)).with_accept_retries(true);
        let PingReply::Bid(bid) = r.ping(&call(), far()).await.unwrap() else {
            panic!()
        };
        assert!(r.accept(&call(), &bid, far()).await.is_err());
        assert_eq!(
            inner.accepts.load(Ordering::SeqCst),
            1,
            "{kind} {delivery:?}"
        );
    }

    // An accept whose connection failed is retried when asked.
    let inner = Scripted::delivering(vec![None, Some((Transport, Some(Delivery::NotSent)))]);
    let r = Retry::new(inner.clone(), 3, Duration::from_millis(10)).with_accept_retries(true);
    let PingReply::Bid(bid) = r.ping(&call(), far()).await.unwrap() else {
        panic!()
    };
    assert!(r.accept(&call(), &bid, far()).await.is_ok());
    assert_eq!(inner.accepts.load(Ordering::SeqCst), 2);
}

/// Over real HTTP: a request the buyer received and did not answer in time is sent once;
/// a connection that could not be made is retried.
#[tokio::test]
async fn retry_over_http_knows_what_was_sent() {
    use callbid_buyers::config::BuyersLoader;
    use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
    use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)))
        .mount(&server)
        .await;
    let toml = format!(
        r#"
        [[buyer]]
        id = "slow"
        adapter = "ping_post"
        timeout_ms = 150
        retry = {{ max_retries = 3, backoff_ms = 10 }}
        [buyer.ping_post]
        base_url = "{}"
        ping = {{ request = {{ url = "{{base}}/p" }}, response = {{ price = "/p", destination = ["/d"] }} }}
        "#,
        server.uri()
    );
    let e = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .load_str(&toml)
    .unwrap();
    let err = e[0].buyer.ping(&call(), far()).await.unwrap_err();
    assert_eq!(err.kind, BuyerErrorKind::Timeout, "{err}");
    assert!(err.may_have_reached_buyer(), "{err:?}");
    assert!(!err.message.contains("retries"), "{err}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "a timed-out request that reached the buyer must not be sent again"
    );
}

#[tokio::test]
async fn retry_over_real_refused_connections() {
    use callbid_buyers::config::BuyersLoader;
    use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
    let addr = common::refused().await;
    let toml = format!(
        r#"
        [[buyer]]
        id = "gone"
        adapter = "ping_post"
        retry = {{ max_retries = 2, backoff_ms = 10 }}
        [buyer.ping_post]
        base_url = "http://{addr}"
        ping = {{ request = {{ url = "{{base}}/p" }}, response = {{ price = "/p", destination = ["/d"] }} }}
        "#
    );
    let e = BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .load_str(&toml)
    .unwrap();
    let err = e[0].buyer.ping(&call(), far()).await.unwrap_err();
    assert_eq!(err.kind, BuyerErrorKind::Transport, "{err}");
    assert!(!err.may_have_reached_buyer(), "{err:?}");
    assert!(err.message.contains("after 2 retries"), "{err}");
}

fn outcomes(seed: u64) -> Vec<Option<BuyerErrorKind>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = FaultInjection::new(Scripted::new(vec![]), seed)
            .with(Fault::Error(BuyerErrorKind::Transport), 0.3)
            .with(Fault::Error(BuyerErrorKind::BadResponse), 0.3);
        let mut v = Vec::new();
        for _ in 0..50 {
            v.push(f.ping(&call(), far()).await.err().map(|e| e.kind));
        }
        v
    })
}

#[test]
fn faults_are_reproducible_by_seed() {
    let a = outcomes(7);
    assert_eq!(a, outcomes(7));
    assert_ne!(a, outcomes(8));
    let errors = a.iter().filter(|x| x.is_some()).count();
    assert!((10..=40).contains(&errors), "{errors} of 50 with p≈0.51");
    assert!(a.contains(&Some(BuyerErrorKind::Transport)));
    assert!(a.contains(&Some(BuyerErrorKind::BadResponse)));
    assert!(a.contains(&None));
}

#[tokio::test(start_paused = true)]
async fn latency_hang_and_panic_faults() {
    let f = FaultInjection::new(Scripted::new(vec![]), 1)
        .with(Fault::Latency(Duration::from_millis(250)), 1.0);
    let started = tokio::time::Instant::now();
    assert!(f.ping(&call(), far()).await.is_ok());
    assert_eq!(started.elapsed(), Duration::from_millis(250));

    let f = FaultInjection::new(Scripted::new(vec![]), 1).with(Fault::Hang, 1.0);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), f.ping(&call(), far()))
            .await
            .is_err()
    );

    let f = Arc::new(FaultInjection::new(Scripted::new(vec![]), 1).with(Fault::Panic, 1.0));
    let j = tokio::spawn({
        let f = f.clone();
        async move { f.ping(&call(), far()).await }
    });
    assert!(j.await.unwrap_err().is_panic());

    let f = FaultInjection::new(Scripted::new(vec![]), 1).with(Fault::Panic, 0.0);
    assert!(f.ping(&call(), far()).await.is_ok());
}

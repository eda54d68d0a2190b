//! Fault injection for tests: latency, errors, hangs and panics, each with a probability,
//! drawn from a seeded generator so a test run is reproducible.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use callbid_core::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerId, BuyerStep, CallContext, Capabilities,
    Deadline, Destination, Money, PingReply,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long before calling the wrapped buyer (adds to whatever follows).
    Latency(Duration),
    /// Fail with this kind without calling the wrapped buyer.
    Error(BuyerErrorKind),
    /// Never answer (the auction's deadline must cut it off).
    Hang,
    /// Panic (the auction must survive it).
    Panic,
}

/// Wraps a buyer and injects [`Fault`]s into its pings and accepts. Each fault fires with
/// its own probability; the draws come from a ChaCha8 generator seeded by the caller.
pub struct FaultInjection {
    inner: Arc<dyn Buyer>,
    faults: Vec<(Fault, f64)>,
    rng: Mutex<ChaCha8Rng>,
}

impl fmt::Debug for FaultInjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjection")
            .field("inner", &self.inner)
            .field("faults", &self.faults)
            .finish()
    }
}

impl FaultInjection {
    /// No faults yet; add them with [`FaultInjection::with`].
    pub fn new(inner: Arc<dyn Buyer>, seed: u64) -> Self {
        FaultInjection {
            inner,
            faults: Vec::new(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// Adds `fault`, firing with `probability` (clamped to 0..=1; NaN counts as 0).
    pub fn with(mut self, fault: Fault, probability: f64) -> Self {
        let p = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        self.faults.push((fault, p));
        self
    }

    fn draw(&self) -> Vec<Fault> {
        let Ok(mut rng) = self.rng.lock() else {
            return Vec::new();
        };
        let mut fired = Vec::new();
        for (f, p) in &self.faults {
            // Always draw, so the sequence does not depend on which faults fired.
            let x: f64 = rng.random();
            if x < *p {
                fired.push(f.clone());
            }
        }
        fired
    }

    async fn inject(&self, step: BuyerStep) -> Result<(), BuyerError> {
        for f in self.draw() {
            match f {
                Fault::Latency(d) => tokio::time::sleep(d).await,
                Fault::Error(kind) => {
                    return Err(BuyerError::new(
                        self.id().clone(),
                        step,
                        kind,
                        format!("injected {kind} fault"),
                    ))
                }
                Fault::Hang => std::future::pending::<()>().await,
                Fault::Panic => panic!("injected panic in buyer {}", self.id()),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Buyer for FaultInjection {
    fn id(&self) -> &BuyerId {
        self.inner.id()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn ping(&self, call: &CallContext, deadline: Deadline) -> Result<PingReply, BuyerError> {
        self.inject(BuyerStep::Ping).await?;
        self.inner.ping(call, deadline).await
    }

    async fn accept(
        &self,
        call: &CallContext,
        bid: &Bid,
        deadline: Deadline,
    ) -> Result<Destination, BuyerError> {
        self.inject(BuyerStep::Accept).await?;
        self.inner.accept(call, bid, deadline).await
    }

    async fn report_loss(
        &self,
        call: &CallContext,
        bid: &Bid,
        sold: &Money,
    ) -> Result<(), BuyerError> {
        self.inner.report_loss(call, bid, sold).await
    }
}

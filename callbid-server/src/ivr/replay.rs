//! Routing steps answered once, on any instance (issue 14 item 6).
//!
//! Twilio retries a webhook that timed out, and the retry may reach another instance or
//! a restarted one. [`once`] runs a routing step (the service step's auction) under a
//! claim in the app's [`RoutingStore`] and persists the TwiML it decided *before* it is
//! answered; a retry, wherever it lands, answers the stored TwiML and runs nothing:
//! no second auction, no second ping to the buyers, no second cap slot.
//!
//! - A retry that arrives while the first request still routes waits for its decision
//!   (polling the store), at most until the first holder's lease ends.
//! - A holder that fails gives its claim back, so a retry routes at once.
//! - A holder that died leaves its claim to lapse ([`ROUTE_LEASE`]); the next retry takes
//!   the step over and first asks the call log whether the dead holder had already
//!   forwarded the call (its events are there), answering that rather than routing
//!   again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use callbid_core::rules::Hold;
use callbid_core::state::{RouteClaim, RouteDecision};
use callbid_core::CallId;
use chrono::Utc;

use super::{App, IvrError, IvrResult, Twiml};

/// How long a claim on a routing step lasts: longer than any auction (its deadline is a
/// few seconds) plus logging, shorter than Twilio's 15-second webhook timeout, so a
/// retry of a request whose instance died is routed before Twilio gives up again.
pub const ROUTE_LEASE: Duration = Duration::from_secs(10);

/// How often a retry polls for the decision of a step another request is routing.
const POLL: Duration = Duration::from_millis(50);

/// What a routing step decided: the TwiML, and what to give back if an earlier decision
/// stands instead (cap holds taken for this routing's winner).
pub(crate) struct Routed {
    pub(crate) twiml: Twiml,
    pub(crate) holds: Vec<Hold>,
    /// Run once this routing's TwiML is the decision (e.g. keep the call's state).
    pub(crate) on_decided: Option<Box<dyn FnOnce() + Send>>,
}

impl Routed {
    /// A decision that holds nothing.
    pub(crate) fn plain(twiml: Twiml) -> Self {
        Routed {
            twiml,
            holds: Vec::new(),
            on_decided: None,
        }
    }
}

/// A holder id unique per request across instances: process, start time, sequence.
pub(crate) fn holder() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let instance = INSTANCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{:x}-{nanos:x}", std::process::id())
    });
    format!("{instance}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Runs `route` for `step` of `call` at most once across instances and retries (see the
/// module docs). `route` is told whether it took the step over from a holder whose lease
/// lapsed.
pub(crate) async fn once<F, Fut>(app: &App, call: &CallId, step: &str, route: F) -> IvrResult
where
    F: FnOnce(bool) -> Fut,
    Fut: Future<Output = IvrResult<Routed>>,
{
    let holder = holder();
    let took_over = match claim(app, call, step, &holder).await? {
        Claimed::Yes { took_over } => took_over,
        Claimed::Decided(twiml) => return Ok(Twiml(twiml)),
    };
    let routed = match route(took_over).await {
        Ok(r) => r,
        Err(e) => {
            give_back(app, call, step, &holder).await;
            return Err(e);
        }
    };
    decide(app, call, step, &holder, routed).await
}

enum Claimed {
    Yes { took_over: bool },
    Decided(String),
}

/// Claims the step, waiting out another request's routing (at most its lease).
async fn claim(app: &App, call: &CallId, step: &str, holder: &str) -> IvrResult<Claimed> {
    let started = Utc::now();
    let give_up = started + chrono::Duration::from_std(ROUTE_LEASE * 2).unwrap_or_default();
    loop {
        let now = Utc::now();
        let lease = now + chrono::Duration::from_std(ROUTE_LEASE).unwrap_or_default();
        match app
            .stores
            .routing
            .claim_route(call, step, holder, now, lease)
            .await?
        {
            RouteClaim::Claimed { took_over } => return Ok(Claimed::Yes { took_over }),
            RouteClaim::Decided(t) => return Ok(Claimed::Decided(t)),
            RouteClaim::Busy { .. } if now >= give_up => {
                return Err(IvrError(anyhow::anyhow!(
                    "{step} of call {call} is still being routed by another request after {:?}",
                    ROUTE_LEASE * 2
                )))
            }
            RouteClaim::Busy { .. } => tokio::time::sleep(POLL).await,
            other => {
                return Err(IvrError(anyhow::anyhow!(
                    "unexpected routing claim {other:?} for {step} of call {call}"
                )))
            }
        }
    }
}

/// Persists the decision; answers the earlier one if another holder decided first (and
/// gives back this routing's holds).
async fn decide(app: &App, call: &CallId, step: &str, holder: &str, routed: Routed) -> IvrResult {
    let decided = app
        .stores
        .routing
        .decide_route(call, step, holder, &routed.twiml.0, Utc::now())
        .await;
    match decided {
        Ok(RouteDecision::Mine) => {
            if let Some(f) = routed.on_decided {
                f();
            }
            Ok(routed.twiml)
        }
        Ok(RouteDecision::Earlier(t)) => {
            eprintln!("WARN ivr: {step} of call {call} was decided by another request first; answering that");
            release(&routed.holds).await;
            Ok(Twiml(t))
        }
        Ok(other) => {
            release(&routed.holds).await;
            Err(IvrError(anyhow::anyhow!(
                "unexpected routing decision {other:?} for {step} of call {call}"
            )))
        }
        Err(e) => {
            // Not persisted, so not answered: the fallback TwiML answers, and the
            // winner's cap slots go back.
            release(&routed.holds).await;
            give_back(app, call, step, holder).await;
            Err(e.into())
        }
    }
}

pub(crate) async fn release(holds: &[Hold]) {
    for h in holds {
        if let Err(e) = h.release().await {
            eprintln!("WARN ivr: cannot release hold {}: {e}", h.reservation);
        }
    }
}

async fn give_back(app: &App, call: &CallId, step: &str, holder: &str) {
    if let Err(e) = app.stores.routing.release_route(call, step, holder).await {
        eprintln!("WARN ivr: cannot give back {step} of call {call} (its lease lapses): {e}");
    }
}

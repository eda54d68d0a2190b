//! One ping in flight, as the ping phase polls it.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::time::{Instant, Sleep};

use crate::buyer::{Buyer, BuyerError, Deadline, PingReply};
use crate::call::CallContext;

/// What one ping produced: `None` when the buyer's own timer fired, `Err` on a panic.
pub(super) type PingResult = Option<Result<Result<PingReply, BuyerError>, Box<dyn Any + Send>>>;

/// A buyer's ping future with its panic isolation and, when the buyer's own timeout
/// ends before the ping phase does, its own timer. It yields the buyer's index with the
/// result. (The phase's deadline is one timer for every ping; see `ping_all`.)
pub(super) struct Ping<'a> {
    idx: usize,
    state: State<'a>,
    /// The buyer's own deadline, polled after its future (as `timeout_at` does).
    own: Option<Pin<Box<Sleep>>>,
}

enum State<'a> {
    Running(BoxFuture<'a, Result<PingReply, BuyerError>>),
    /// Making the future panicked; the payload is reported at the first poll.
    Panicked(Option<Box<dyn Any + Send>>),
}

impl<'a> Ping<'a> {
    /// Starts pinging `buyer` (entry `idx`) under `deadline`, cut at `own` if given.
    pub(super) fn new(
        idx: usize,
        buyer: &'a dyn Buyer,
        call: &'a CallContext,
        deadline: Deadline,
        own: Option<Instant>,
    ) -> Self {
        let state = match catch_unwind(AssertUnwindSafe(|| buyer.ping(call, deadline))) {
            Ok(fut) => State::Running(fut),
            Err(p) => State::Panicked(Some(p)),
        };
        Ping {
            idx,
            state,
            own: own.map(|at| Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

impl Future for Ping<'_> {
    type Output = (usize, PingResult);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let idx = this.idx;
        let fut = match &mut this.state {
            State::Running(fut) => fut,
            State::Panicked(p) => {
                let payload = p.take().unwrap_or_else(|| Box::new("ping polled again"));
                return Poll::Ready((idx, Some(Err(payload))));
            }
        };
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(r)) => return Poll::Ready((idx, Some(Ok(r)))),
            Err(p) => return Poll::Ready((idx, Some(Err(p)))),
            Ok(Poll::Pending) => {}
        }
        match this.own.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready((idx, None)),
            _ => Poll::Pending,
        }
    }
}

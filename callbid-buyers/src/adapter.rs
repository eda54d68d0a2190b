//! The adapter pattern (as in prebid-server): an adapter builds request descriptions and
//! parses responses, and does no I/O; [`HttpBuyer`] pairs an adapter with the shared
//! [`HttpExecutor`] and implements [`Buyer`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use callbid_core::buyer::Delivery;
use callbid_core::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerId, BuyerStep, CallContext, Capabilities,
    Deadline, Destination, Money, PingReply,
};

use crate::http::{HttpExecutor, HttpRequest, HttpResponse};

/// Longest raw body kept on an error.
pub const RAW_BODY_EXCERPT: usize = 2048;

/// An adapter's failure, before the buyer id and step are attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
#[non_exhaustive]
pub struct AdapterError {
    /// What kind of failure.
    pub kind: BuyerErrorKind,
    /// Detail (names the field and value when a response field is wrong).
    pub message: String,
    /// An excerpt of the response body, when it could not be used.
    pub raw_body: Option<String>,
}

impl AdapterError {
    /// A new error.
    pub fn new(kind: BuyerErrorKind, message: impl Into<String>) -> Self {
        AdapterError {
            kind,
            message: message.into(),
            raw_body: None,
        }
    }

    /// A `BadResponse` error keeping an excerpt of `resp`'s body.
    pub fn bad_response(message: impl Into<String>, resp: &HttpResponse) -> Self {
        AdapterError {
            kind: BuyerErrorKind::BadResponse,
            message: message.into(),
            raw_body: Some(resp.body_excerpt(RAW_BODY_EXCERPT)),
        }
    }

    /// A `Config` error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(BuyerErrorKind::Config, message)
    }

    /// Attaches the buyer and step. The error's delivery is what its kind suggests
    /// ([`Delivery::assumed_for`]); [`HttpBuyer`] sets it exactly (not sent when building
    /// the request failed, maybe delivered when the answer could not be used).
    pub fn into_buyer_error(self, buyer: &BuyerId, step: BuyerStep) -> BuyerError {
        let e = BuyerError::new(buyer.clone(), step, self.kind, self.message);
        match self.raw_body {
            Some(b) => e.with_raw_body(b),
            None => e,
        }
    }
}

/// A buyer protocol over HTTP, without I/O.
pub trait HttpAdapter: Send + Sync + fmt::Debug + 'static {
    /// What the buyer can do (whether it has an accept step, reports losses, …).
    fn capabilities(&self) -> Capabilities;

    /// The ping request for `call`.
    fn ping_request(&self, call: &CallContext) -> Result<HttpRequest, AdapterError>;

    /// Reads the ping response into a bid or a no-bid.
    fn parse_ping(
        &self,
        buyer: &BuyerId,
        call: &CallContext,
        response: &HttpResponse,
    ) -> Result<PingReply, AdapterError>;

    /// The accept request for `bid`, or `None` when the buyer has no accept step.
    fn accept_request(
        &self,
        call: &CallContext,
        bid: &Bid,
    ) -> Result<Option<HttpRequest>, AdapterError> {
        let _ = (call, bid);
        Ok(None)
    }

    /// Reads the accept response into the destination.
    fn parse_accept(
        &self,
        call: &CallContext,
        bid: &Bid,
        response: &HttpResponse,
    ) -> Result<Destination, AdapterError> {
        let _ = (call, bid);
        Err(AdapterError::bad_response(
            "this buyer has no accept step",
            response,
        ))
    }

    /// The loss report for `bid` (the call sold elsewhere for `sold`), or `None`.
    fn loss_request(
        &self,
        call: &CallContext,
        bid: &Bid,
        sold: &Money,
    ) -> Result<Option<HttpRequest>, AdapterError> {
        let _ = (call, bid, sold);
        Ok(None)
    }

    /// The status the buyer meant, for the shared HTTP 429 handling: the status line,
    /// unless the protocol carries the real one elsewhere (Service Direct's
    /// `suppress_response_codes` puts it in `x-original-status-code`).
    fn effective_status(&self, response: &HttpResponse) -> u16 {
        response.status
    }

    /// Checks the loss-report response.
    fn parse_loss(&self, response: &HttpResponse) -> Result<(), AdapterError> {
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(AdapterError::bad_response(
                format!("loss report answered HTTP {}", response.status),
                response,
            ))
        }
    }
}

/// A [`Buyer`] speaking HTTP through an adapter and the shared executor.
pub struct HttpBuyer<A> {
    id: BuyerId,
    adapter: A,
    executor: HttpExecutor,
    timeout: Option<Duration>,
}

impl<A: fmt::Debug> fmt::Debug for HttpBuyer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBuyer")
            .field("id", &self.id)
            .field("adapter", &self.adapter)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<A: HttpAdapter> HttpBuyer<A> {
    /// A buyer `id` speaking through `adapter`, sending with `executor`.
    pub fn new(id: BuyerId, adapter: A, executor: HttpExecutor) -> Self {
        HttpBuyer {
            id,
            adapter,
            executor,
            timeout: None,
        }
    }

    /// Bounds every request to `timeout` as well as the deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The adapter.
    pub fn adapter(&self) -> &A {
        &self.adapter
    }

    /// The executor.
    pub fn executor(&self) -> &HttpExecutor {
        &self.executor
    }

    /// Sends `req` unless the buyer is paused after an HTTP 429 (then nothing is sent:
    /// `RateLimited { skipped: true }`, [`Delivery::NotSent`]); an answer that is a 429
    /// pauses the buyer until its `Retry-After` and fails as `RateLimited { skipped:
    /// false }` ([`Delivery::MaybeDelivered`], so no layer resends it). Every step of
    /// every adapter goes through here, so all buyers handle 429 the same way.
    async fn send(
        &self,
        step: BuyerStep,
        req: &HttpRequest,
        deadline: Deadline,
    ) -> Result<HttpResponse, BuyerError> {
        self.executor.check_paused(&self.id, step)?;
        let resp = self
            .executor
            .send(&self.id, step, req, deadline, self.timeout)
            .await?;
        if self.adapter.effective_status(&resp) == 429 {
            return Err(self.executor.rate_limited(&self.id, step, &resp));
        }
        Ok(resp)
    }
}

#[async_trait]
impl<A: HttpAdapter> Buyer for HttpBuyer<A> {
    fn id(&self) -> &BuyerId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        self.adapter.capabilities()
    }

    async fn ping(&self, call: &CallContext, deadline: Deadline) -> Result<PingReply, BuyerError> {
        let step = BuyerStep::Ping;
        let req = self.adapter.ping_request(call).map_err(|e| {
            e.into_buyer_error(&self.id, step)
                .with_delivery(Delivery::NotSent)
        })?;
        let resp = self.send(step, &req, deadline).await?;
        self.adapter.parse_ping(&self.id, call, &resp).map_err(|e| {
            e.into_buyer_error(&self.id, step)
                .with_delivery(Delivery::MaybeDelivered)
        })
    }

    async fn accept(
        &self,
        call: &CallContext,
        bid: &Bid,
        deadline: Deadline,
    ) -> Result<Destination, BuyerError> {
        let step = BuyerStep::Accept;
        let req = self.adapter.accept_request(call, bid).map_err(|e| {
            e.into_buyer_error(&self.id, step)
                .with_delivery(Delivery::NotSent)
        })?;
        let Some(req) = req else {
            return bid.destination.clone().ok_or_else(|| {
                BuyerError::new(
                    self.id.clone(),
                    step,
                    BuyerErrorKind::BadResponse,
                    "bid has no destination and the buyer has no accept step",
                )
            });
        };
        let resp = self.send(step, &req, deadline).await?;
        self.adapter.parse_accept(call, bid, &resp).map_err(|e| {
            e.into_buyer_error(&self.id, step)
                .with_delivery(Delivery::MaybeDelivered)
        })
    }

    async fn report_loss(
        &self,
        call: &CallContext,
        bid: &Bid,
        sold: &Money,
    ) -> Result<(), BuyerError> {
        let step = BuyerStep::ReportLoss;
        let req = self.adapter.loss_request(call, bid, sold).map_err(|e| {
            e.into_buyer_error(&self.id, step)
                .with_delivery(Delivery::NotSent)
        })?;
        let Some(req) = req else { return Ok(()) };
        // Loss reports are not on the caller's clock; give them a few seconds.
        let deadline = Deadline::after(Duration::from_secs(5));
        let resp = self.send(step, &req, deadline).await?;
        self.adapter.parse_loss(&resp).map_err(|e| {
            e.into_buyer_error(&self.id, step)
                .with_delivery(Delivery::MaybeDelivered)
        })
    }
}

/// Common status handling for JSON APIs: a redirect, a non-JSON body or a 5xx becomes a
/// `BadResponse`; returns the parsed document otherwise.
pub(crate) fn redirect_error(resp: &HttpResponse) -> Option<AdapterError> {
    if (300..400).contains(&resp.status) {
        let to = resp.header("location").unwrap_or("(no Location)");
        return Some(AdapterError::bad_response(
            format!("HTTP {} redirect to {to} not followed", resp.status),
            resp,
        ));
    }
    None
}

/// A `BadResponse` when the content type is present and not JSON.
pub(crate) fn require_json(resp: &HttpResponse) -> Result<crate::json::Doc, AdapterError> {
    if !resp.is_json_or_untyped() {
        return Err(AdapterError::bad_response(
            format!(
                "HTTP {} with content type {:?}, expected JSON",
                resp.status,
                resp.header("content-type").unwrap_or("")
            ),
            resp,
        ));
    }
    crate::json::Doc::parse(&resp.body).map_err(|e| AdapterError::bad_response(e, resp))
}

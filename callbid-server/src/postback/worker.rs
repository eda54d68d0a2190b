//! The delivery worker: claims due postbacks under a lease, sends them, records the
//! results (see the [parent module](super)).

use std::sync::Arc;

use callbid_core::state::{
    AttemptOutcome, CallLog, PostbackAttempt, PostbackDelivery, PostbackOutbox,
};
use callbid_core::StateError;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::sign::{sign, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::template::redact_userinfo;
use super::{value_of, Endpoint, PostbackConfig};

/// Sends the postbacks of one outbox (see the [parent module](super)).
#[derive(Debug, Clone)]
pub struct PostbackWorker {
    config: Arc<PostbackConfig>,
    outbox: Arc<dyn PostbackOutbox>,
    log: Arc<dyn CallLog>,
    client: reqwest::Client,
    holder: String,
}

/// What a delivery is missing before a request can be made.
enum Unready {
    /// Try again later (the call's billing is not logged yet).
    Later(String),
    /// Never (not billable, or the publisher's endpoint is gone).
    Never(String),
}

impl PostbackWorker {
    /// A worker over `outbox`, reading calls from `log`. Its lease holder name is
    /// unique (process id and a random part).
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS backend).
    pub fn new(
        config: Arc<PostbackConfig>,
        outbox: Arc<dyn PostbackOutbox>,
        log: Arc<dyn CallLog>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .user_agent(concat!("callbid-postback/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let holder = format!(
            "postback-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        Ok(PostbackWorker {
            config,
            outbox,
            log,
            client,
            holder,
        })
    }

    /// This worker's lease holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// One round: claims up to a batch of deliveries due at `now`, sends them all at once
    /// (each bounded by the timeout) and records each result. Returns how many were
    /// attempted.
    ///
    /// # Errors
    /// The outbox's, when the claim fails (a failed record is reported on stderr and its
    /// delivery retried when its lease ends).
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<usize, StateError> {
        let lease = chrono::Duration::from_std(self.config.lease()).unwrap_or_default();
        let claimed = self
            .outbox
            .claim_postbacks(&self.holder, now, now + lease, self.config.batch)
            .await?;
        let n = claimed.len();
        futures::future::join_all(claimed.iter().map(|d| self.deliver(d))).await;
        Ok(n)
    }

    async fn deliver(&self, d: &PostbackDelivery) {
        let attempt = self.attempt(d).await;
        let recorded = self
            .outbox
            .record_postback_attempt(&d.call, &d.publisher, &self.holder, &attempt)
            .await;
        match recorded {
            Ok(true) => {}
            Ok(false) => eprintln!(
                "WARN postback: lease on call {} to {} was lost before its attempt was recorded",
                d.call, d.publisher
            ),
            Err(e) => eprintln!(
                "ERROR postback: cannot record the attempt of call {} to {}: {e}",
                d.call, d.publisher
            ),
        }
    }

    /// Makes attempt `d.attempts + 1` of `d` and says what it decided.
    async fn attempt(&self, d: &PostbackDelivery) -> PostbackAttempt {
        let now = Utc::now();
        let n = d.attempts.saturating_add(1);
        let last_url = d.url.clone().unwrap_or_default();
        match self.prepare(d).await {
            Ok((endpoint, url)) => self.send(d, endpoint, &url, n).await,
            Err(Unready::Later(why)) => {
                PostbackAttempt::new(now, last_url, self.config.backoff.after_failure(n, now))
                    .with_error(why)
            }
            Err(Unready::Never(why)) => {
                PostbackAttempt::new(now, last_url, AttemptOutcome::GiveUp).with_error(why)
            }
        }
    }

    /// The endpoint and the rendered URL of `d`, from the call's record.
    async fn prepare(&self, d: &PostbackDelivery) -> Result<(&Endpoint, String), Unready> {
        let endpoint = self.config.endpoints.get(&d.publisher).ok_or_else(|| {
            Unready::Never(format!("publisher {} is not configured", d.publisher))
        })?;
        let record = self
            .log
            .record(&d.call)
            .await
            .map_err(|e| Unready::Later(format!("cannot read the call: {e}")))?
            .ok_or_else(|| Unready::Later("the call is not in the log".to_owned()))?;
        match record.billable {
            Some(true) => {}
            Some(false) => return Err(Unready::Never("the call is not billable".to_owned())),
            None => {
                return Err(Unready::Later(
                    "the call's billing is not logged yet".to_owned(),
                ))
            }
        }
        let rendered = endpoint.url.render(&|t| value_of(&record, &d.publisher, t));
        // Sent, signed and stored as parsed (reqwest sends the parsed form).
        let url = reqwest::Url::parse(&rendered)
            .map_err(|e| Unready::Never(format!("rendered URL is invalid: {e}")))?;
        Ok((endpoint, url.to_string()))
    }

    /// Sends attempt `n` of `d` to `url`.
    async fn send(
        &self,
        d: &PostbackDelivery,
        endpoint: &Endpoint,
        url: &str,
        n: u32,
    ) -> PostbackAttempt {
        let at = Utc::now();
        let ts = at.timestamp().to_string();
        let signature = sign(endpoint.secret.expose(), &ts, "GET", url, b"");
        let request = self
            .client
            .get(url)
            .header(TIMESTAMP_HEADER, &ts)
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, d.idempotency_key())
            .send();
        let shown = redact_userinfo(url);
        let failed = |status: Option<u16>, why: String| {
            let a =
                PostbackAttempt::new(at, shown.clone(), self.config.backoff.after_failure(n, at))
                    .with_error(why);
            match status {
                Some(s) => a.with_status(s),
                None => a,
            }
        };
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, request).await {
            Err(_) => failed(None, format!("timed out after {} ms", timeout.as_millis())),
            Ok(Err(e)) if e.is_timeout() => {
                failed(None, format!("timed out after {} ms", timeout.as_millis()))
            }
            Ok(Err(e)) => failed(None, format!("request failed: {e}")),
            Ok(Ok(resp)) if resp.status().is_success() => {
                PostbackAttempt::new(at, shown.clone(), AttemptOutcome::Delivered)
                    .with_status(resp.status().as_u16())
            }
            Ok(Ok(resp)) => {
                let status = resp.status();
                failed(Some(status.as_u16()), format!("HTTP {status}"))
            }
        }
    }

    /// Runs rounds until `stop` turns true: another round at once after a full batch,
    /// else after the poll interval. A failing claim is reported and retried after the
    /// poll interval.
    pub fn spawn(self) -> PostbackTask {
        let (stop, mut rx) = watch::channel(false);
        let handle = tokio::spawn(async move {
            loop {
                if *rx.borrow() {
                    return;
                }
                let full = match self.run_once(Utc::now()).await {
                    Ok(n) => n >= self.config.batch as usize,
                    Err(e) => {
                        eprintln!("WARN postback: cannot claim due postbacks: {e}");
                        false
                    }
                };
                if !full {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll) => {}
                        _ = rx.wait_for(|s| *s) => return,
                    }
                }
            }
        });
        PostbackTask { stop, handle }
    }
}

/// A running [`PostbackWorker`].
#[derive(Debug)]
pub struct PostbackTask {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl PostbackTask {
    /// Stops after the round in flight (bounded by the per-attempt timeout): nothing is
    /// cut off between a send and its record.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await {
            eprintln!("WARN postback: worker task: {e}");
        }
    }

    /// Stops at once, mid-round if need be (a delivery whose attempt was not recorded
    /// is taken over when its lease ends; receivers deduplicate on `Idempotency-Key`).
    pub fn abort(self) {
        self.handle.abort();
    }
}

//! The queue behind group commit of call-log appends (both backends).
//!
//! Every append joins the queue as one unit (an event, or one `append_all` slice). The
//! submitter that finds no leader at work becomes responsible for starting one; the
//! leader takes what is queued, writes it in **one** transaction, answers each unit
//! only after that transaction committed (and, on a durable store, synced), then takes
//! what queued up meanwhile, until the queue is empty, and steps down. So concurrent
//! appends share a commit, and an append is still acknowledged only once the commit
//! that holds it is durable. No append waits for a timer: a lone append is written at
//! once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use callbid_core::state::{AppendOutcome, CallEvent};
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

/// One unit waiting for its commit: its events, in order, and where its answer goes.
#[derive(Debug)]
pub(crate) struct Pending {
    pub events: Vec<CallEvent>,
    done: oneshot::Sender<Result<Vec<AppendOutcome>>>,
}

impl Pending {
    /// Answers the unit's append (which may have been cancelled: then nobody listens,
    /// and its events stay committed).
    pub fn answer(self, outcome: Result<Vec<AppendOutcome>>) {
        let _ = self.done.send(outcome);
    }
}

/// The answer a submitter waits for.
pub(crate) type Answer = oneshot::Receiver<Result<Vec<AppendOutcome>>>;

/// Queued units and whether a leader is writing them.
#[derive(Debug, Default)]
pub(crate) struct GroupQueue {
    queue: Mutex<Vec<Pending>>,
    leading: AtomicBool,
}

impl GroupQueue {
    /// Queues `events` as one unit. The flag says whether the caller must start a
    /// leader (no leader was at work).
    pub fn push(&self, events: Vec<CallEvent>) -> (Answer, bool) {
        let (done, answer) = oneshot::channel();
        self.lock().push(Pending { events, done });
        let start = !self.leading.swap(true, Ordering::SeqCst);
        (answer, start)
    }

    /// The next batch for the leader: queued units in order, up to `max_events` events
    /// (always the first unit, however large). Empty when nothing is queued.
    pub fn take(&self, max_events: usize) -> Vec<Pending> {
        let mut q = self.lock();
        let mut events = 0;
        let n = q
            .iter()
            .take_while(|p| {
                let first = events == 0;
                events += p.events.len().max(1);
                first || events <= max_events
            })
            .count();
        q.drain(..n).collect()
    }

    /// Called by the leader after an empty [`take`](Self::take): steps down, or returns
    /// `true` when a unit queued in between and the leader must go on. (Its submitter
    /// saw a leader at work and started none; if it instead started a new leader, this
    /// one steps down.)
    pub fn step_down(&self) -> bool {
        self.leading.store(false, Ordering::SeqCst);
        !self.lock().is_empty() && !self.leading.swap(true, Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        // Pushing and draining a Vec cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits for a unit's answer.
pub(crate) async fn wait(answer: Answer, operation: &'static str) -> Result<Vec<AppendOutcome>> {
    answer.await.map_err(|_| StoreError::Task {
        operation,
        message: "the call-log writer stopped before answering (the transaction holding \
                  this append was rolled back)"
            .to_owned(),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::state::CallEventKind;
    use callbid_core::CallId;
    use chrono::Utc;

    fn ev(key: &str) -> CallEvent {
        CallEvent::new(
            CallId::new("CA1").expect("id"),
            Utc::now(),
            key,
            CallEventKind::IvrInput {
                step: "zip".to_owned(),
                value: key.to_owned(),
            },
        )
    }

    #[test]
    fn only_the_first_submitter_starts_a_leader_until_it_steps_down() {
        let q = GroupQueue::default();
        let (_a, start) = q.push(vec![ev("a")]);
        assert!(start);
        let (_b, start) = q.push(vec![ev("b")]);
        assert!(!start);
        assert_eq!(q.take(10).len(), 2);
        assert!(q.take(10).is_empty());
        assert!(!q.step_down());
        let (_c, start) = q.push(vec![ev("c")]);
        assert!(
            start,
            "after stepping down, the next submitter starts a leader"
        );
    }

    #[test]
    fn a_unit_queued_before_stepping_down_keeps_the_leader() {
        let q = GroupQueue::default();
        let (_a, _) = q.push(vec![ev("a")]);
        assert_eq!(q.take(10).len(), 1);
        let (_b, start) = q.push(vec![ev("b")]);
        assert!(!start);
        assert!(q.step_down(), "the leader goes on with b");
        assert_eq!(q.take(10).len(), 1);
    }

    #[test]
    fn a_batch_stops_at_its_event_budget_but_always_takes_one_unit() {
        let q = GroupQueue::default();
        let (_a, _) = q.push(vec![ev("a"), ev("b"), ev("c")]);
        let (_b, _) = q.push(vec![ev("d")]);
        assert_eq!(
            q.take(2).len(),
            1,
            "the first unit alone is over the budget"
        );
        assert_eq!(q.take(2).len(), 1);
    }

    #[tokio::test]
    async fn a_dropped_unit_answers_with_an_error() {
        let q = GroupQueue::default();
        let (answer, _) = q.push(vec![ev("a")]);
        drop(q.take(10));
        let err = wait(answer, "append").await.expect_err("no answer");
        assert!(err.to_string().contains("rolled back"), "{err}");
    }
}

//! The queue behind group commit of call-log appends (both backends), and on SQLite of
//! other small writes too (route claims and decisions, duration history: *jobs*).
//!
//! Every append joins the queue as one unit (an event, or one `append_all` slice); a
//! job is a unit of its own. The
//! submitter that finds no leader at work becomes responsible for starting one; the
//! leader takes what is queued, writes it in **one** transaction, answers each unit
//! only after that transaction committed (and, on a durable store, synced), then takes
//! what queued up meanwhile, until the queue is empty, and steps down. So concurrent
//! appends share a commit, and an append is still acknowledged only once the commit
//! that holds it is durable. No append waits for a timer: a lone append is written at
//! once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use callbid_core::state::{AppendOutcome, CallEvent};
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

/// No job: the queue of a backend that groups call-log appends only.
#[derive(Debug)]
pub(crate) enum NoJob {}

/// One unit waiting for its commit: its events, in order (none for a job), or its job,
/// and where its answer goes. A job keeps its own result; its unit's answer only says
/// whether the commit that holds it is done (`Ok`, with no outcomes) or failed.
#[derive(Debug)]
pub(crate) struct Pending<J = NoJob> {
    pub events: Vec<CallEvent>,
    pub job: Option<J>,
    done: oneshot::Sender<Result<Vec<AppendOutcome>>>,
}

impl<J> Pending<J> {
    /// Answers the unit's append (which may have been cancelled: then nobody listens,
    /// and its events stay committed).
    pub fn answer(self, outcome: Result<Vec<AppendOutcome>>) {
        let _ = self.done.send(outcome);
    }
}

/// The answer a submitter waits for.
pub(crate) type Answer = oneshot::Receiver<Result<Vec<AppendOutcome>>>;

/// Queued units and whether a leader is writing them.
#[derive(Debug)]
pub(crate) struct GroupQueue<J = NoJob> {
    queue: Mutex<Vec<Pending<J>>>,
    leading: AtomicBool,
}

impl<J> Default for GroupQueue<J> {
    fn default() -> Self {
        GroupQueue {
            queue: Mutex::new(Vec::new()),
            leading: AtomicBool::new(false),
        }
    }
}

impl<J> GroupQueue<J> {
    /// Queues `events` as one unit. With no leader at work, the caller gets the
    /// [`Leader`] it must start.
    pub fn push(self: &Arc<Self>, events: Vec<CallEvent>) -> (Answer, Option<Leader<J>>) {
        self.push_unit(events, None)
    }

    /// Queues `job` as one unit (see [`push`](Self::push)).
    pub fn push_job(self: &Arc<Self>, job: J) -> (Answer, Option<Leader<J>>) {
        self.push_unit(Vec::new(), Some(job))
    }

    fn push_unit(
        self: &Arc<Self>,
        events: Vec<CallEvent>,
        job: Option<J>,
    ) -> (Answer, Option<Leader<J>>) {
        let (done, answer) = oneshot::channel();
        self.lock().push(Pending { events, job, done });
        let start = !self.leading.swap(true, Ordering::SeqCst);
        let leader = start.then(|| Leader {
            queue: self.clone(),
            stepped_down: false,
        });
        (answer, leader)
    }

    /// The next batch for the leader: queued units in order, up to `max_events` events
    /// (always the first unit, however large). Empty when nothing is queued.
    pub fn take(&self, max_events: usize) -> Vec<Pending<J>> {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending<J>>> {
        // Pushing and draining a Vec cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The right to write the queue's batches, held by one leader at a time. Dropped
/// before it stepped down (its task cancelled, never run, or unwound), it steps down,
/// so the next submitter starts a new leader for whatever is still queued.
#[derive(Debug)]
pub(crate) struct Leader<J = NoJob> {
    queue: Arc<GroupQueue<J>>,
    stepped_down: bool,
}

impl<J> Leader<J> {
    /// The next batch (see [`GroupQueue::take`]), or `None` once the queue is empty
    /// and this leader has stepped down.
    pub fn next_batch(&mut self, max_events: usize) -> Option<Vec<Pending<J>>> {
        loop {
            let batch = self.queue.take(max_events);
            if !batch.is_empty() {
                return Some(batch);
            }
            if !self.queue.step_down() {
                self.stepped_down = true;
                return None;
            }
        }
    }
}

impl<J> Drop for Leader<J> {
    fn drop(&mut self) {
        if !self.stepped_down {
            self.queue.leading.store(false, Ordering::SeqCst);
        }
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
        let q: Arc<GroupQueue> = Arc::new(GroupQueue::default());
        let (_a, start) = q.push(vec![ev("a")]);
        let mut leader = start.expect("the first submitter leads");
        let (_b, start) = q.push(vec![ev("b")]);
        assert!(start.is_none());
        assert_eq!(q.take(10).len(), 2);
        assert!(q.take(10).is_empty());
        assert!(
            leader.next_batch(10).is_none(),
            "nothing queued: it steps down"
        );
        drop(leader);
        let (_c, start) = q.push(vec![ev("c")]);
        assert!(
            start.is_some(),
            "after stepping down, the next submitter starts a leader"
        );
        let (_d, start) = q.push(vec![ev("d")]);
        assert!(
            start.is_none(),
            "a leader that stepped down does not clear its successor"
        );
    }

    #[test]
    fn a_leader_dropped_before_stepping_down_lets_the_next_submitter_lead() {
        let q: Arc<GroupQueue> = Arc::new(GroupQueue::default());
        let (_a, leader) = q.push(vec![ev("a")]);
        drop(leader); // as when its task is cancelled or never runs
        let (_b, start) = q.push(vec![ev("b")]);
        let mut next = start.expect("a new leader");
        assert_eq!(
            next.next_batch(10).map(|b| b.len()),
            Some(2),
            "a is not stranded"
        );
    }

    #[test]
    fn a_unit_queued_before_stepping_down_keeps_the_leader() {
        let q: Arc<GroupQueue> = Arc::new(GroupQueue::default());
        let (_a, _leader) = q.push(vec![ev("a")]);
        assert_eq!(q.take(10).len(), 1);
        let (_b, start) = q.push(vec![ev("b")]);
        assert!(start.is_none());
        assert!(q.step_down(), "the leader goes on with b");
        assert_eq!(q.take(10).len(), 1);
    }

    #[test]
    fn a_batch_stops_at_its_event_budget_but_always_takes_one_unit() {
        let q: Arc<GroupQueue> = Arc::new(GroupQueue::default());
        let (_a, _leader) = q.push(vec![ev("a"), ev("b"), ev("c")]);
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
        let q: Arc<GroupQueue> = Arc::new(GroupQueue::default());
        let (answer, _leader) = q.push(vec![ev("a")]);
        drop(q.take(10));
        let err = wait(answer, "append").await.expect_err("no answer");
        assert!(err.to_string().contains("rolled back"), "{err}");
    }
}

//! The queue behind group commit, for call-log appends (both backends) and PostgreSQL
//! cap reservations.
//!
//! Every request joins the queue as one unit (an event, one `append_all` slice, or one
//! cap reservation). The submitter that finds no leader at work becomes responsible for
//! starting one; the leader takes what is queued, writes it in **one** transaction,
//! answers each unit only after that transaction committed (and, on a durable store,
//! synced), then takes what queued up meanwhile, until the queue is empty, and steps
//! down. So concurrent requests share a commit, and each is still acknowledged only once
//! the commit that holds it is durable. No request waits for a timer: a lone one is
//! written at once. A unit not yet taken by a leader can be withdrawn (a reservation
//! whose deadline passed while it was queued; PostgreSQL's, so tickets exist only with
//! the `postgres` feature).

#[cfg(feature = "postgres")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use callbid_core::state::{AppendOutcome, CallEvent};
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

/// What one queued request carries, and the answer it waits for.
pub(crate) trait Unit: Send + std::fmt::Debug + 'static {
    /// What the leader answers.
    type Answer: Send + std::fmt::Debug + 'static;
    /// How much of a batch's budget the unit takes (at least 1).
    fn weight(&self) -> usize;
}

/// One append: its events, in order.
pub(crate) type Events = Vec<CallEvent>;

impl Unit for Events {
    type Answer = Vec<AppendOutcome>;
    fn weight(&self) -> usize {
        self.len().max(1)
    }
}

/// One unit waiting for its commit, and where its answer goes.
#[derive(Debug)]
pub(crate) struct Pending<U: Unit> {
    pub unit: U,
    #[cfg(feature = "postgres")]
    ticket: u64,
    done: oneshot::Sender<Result<U::Answer>>,
}

impl<U: Unit> Pending<U> {
    /// Answers the unit's request (which may have been cancelled: then nobody listens,
    /// and what was written stays committed).
    pub fn answer(self, outcome: Result<U::Answer>) {
        let _ = self.done.send(outcome);
    }
}

/// The answer a submitter waits for.
pub(crate) type Answer<A> = oneshot::Receiver<Result<A>>;

/// A queued unit, as its submitter holds it.
#[derive(Debug)]
pub(crate) struct Queued<A> {
    /// Where the answer comes.
    pub answer: Answer<A>,
    /// Names the unit for [`GroupQueue::withdraw`].
    #[cfg(feature = "postgres")]
    pub ticket: u64,
}

/// Queued units and whether a leader is writing them.
#[derive(Debug)]
pub(crate) struct GroupQueue<U: Unit> {
    queue: Mutex<Vec<Pending<U>>>,
    leading: AtomicBool,
    #[cfg(feature = "postgres")]
    tickets: AtomicU64,
}

impl<U: Unit> Default for GroupQueue<U> {
    fn default() -> Self {
        GroupQueue {
            queue: Mutex::new(Vec::new()),
            leading: AtomicBool::new(false),
            #[cfg(feature = "postgres")]
            tickets: AtomicU64::new(0),
        }
    }
}

impl<U: Unit> GroupQueue<U> {
    /// Queues `unit`. With no leader at work, the caller gets the [`Leader`] it must
    /// start.
    pub fn push(self: &Arc<Self>, unit: U) -> (Queued<U::Answer>, Option<Leader<U>>) {
        let (done, answer) = oneshot::channel();
        #[cfg(feature = "postgres")]
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Pending {
            unit,
            #[cfg(feature = "postgres")]
            ticket,
            done,
        });
        let start = !self.leading.swap(true, Ordering::SeqCst);
        let leader = start.then(|| Leader {
            queue: self.clone(),
            stepped_down: false,
        });
        let queued = Queued {
            answer,
            #[cfg(feature = "postgres")]
            ticket,
        };
        (queued, leader)
    }

    /// Takes the unit `ticket` back out of the queue if no leader took it yet; returns
    /// whether it did (then it will never be written nor answered).
    #[cfg(feature = "postgres")]
    pub fn withdraw(&self, ticket: u64) -> bool {
        let mut q = self.lock();
        match q.iter().position(|p| p.ticket == ticket) {
            Some(i) => {
                q.remove(i);
                true
            }
            None => false,
        }
    }

    /// The next batch for the leader: queued units in order, up to `max_weight` in all
    /// (always the first unit, however heavy). Empty when nothing is queued.
    pub fn take(&self, max_weight: usize) -> Vec<Pending<U>> {
        let mut q = self.lock();
        let mut weight = 0;
        let n = q
            .iter()
            .take_while(|p| {
                let first = weight == 0;
                weight += p.unit.weight().max(1);
                first || weight <= max_weight
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending<U>>> {
        // Pushing and draining a Vec cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The right to write the queue's batches, held by one leader at a time. Dropped
/// before it stepped down (its task cancelled, never run, or unwound), it steps down,
/// so the next submitter starts a new leader for whatever is still queued.
#[derive(Debug)]
pub(crate) struct Leader<U: Unit> {
    queue: Arc<GroupQueue<U>>,
    stepped_down: bool,
}

impl<U: Unit> Leader<U> {
    /// The next batch (see [`GroupQueue::take`]), or `None` once the queue is empty
    /// and this leader has stepped down.
    pub fn next_batch(&mut self, max_weight: usize) -> Option<Vec<Pending<U>>> {
        loop {
            let batch = self.queue.take(max_weight);
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

impl<U: Unit> Drop for Leader<U> {
    fn drop(&mut self) {
        if !self.stepped_down {
            self.queue.leading.store(false, Ordering::SeqCst);
        }
    }
}

/// Waits for a unit's answer.
pub(crate) async fn wait<A>(answer: Answer<A>, operation: &'static str) -> Result<A> {
    received(answer.await, operation)
}

/// A unit's answer as received: a dropped sender (its batch dropped unanswered) is an
/// error naming `operation`.
pub(crate) fn received<A>(
    got: std::result::Result<Result<A>, oneshot::error::RecvError>,
    operation: &'static str,
) -> Result<A> {
    got.map_err(|_| StoreError::Task {
        operation,
        message: "the group-commit writer stopped before answering (the transaction \
                  holding this request was rolled back)"
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
        let q: Arc<GroupQueue<Events>> = Arc::default();
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
        let q: Arc<GroupQueue<Events>> = Arc::default();
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
        let q: Arc<GroupQueue<Events>> = Arc::default();
        let (_a, _leader) = q.push(vec![ev("a")]);
        assert_eq!(q.take(10).len(), 1);
        let (_b, start) = q.push(vec![ev("b")]);
        assert!(start.is_none());
        assert!(q.step_down(), "the leader goes on with b");
        assert_eq!(q.take(10).len(), 1);
    }

    #[test]
    fn a_batch_stops_at_its_event_budget_but_always_takes_one_unit() {
        let q: Arc<GroupQueue<Events>> = Arc::default();
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
        let q: Arc<GroupQueue<Events>> = Arc::default();
        let (queued, _leader) = q.push(vec![ev("a")]);
        drop(q.take(10));
        let err = wait(queued.answer, "append").await.expect_err("no answer");
        assert!(err.to_string().contains("rolled back"), "{err}");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_unit_can_be_withdrawn_only_until_a_leader_takes_it() {
        let q: Arc<GroupQueue<Events>> = Arc::default();
        let (a, _leader) = q.push(vec![ev("a")]);
        let (b, _) = q.push(vec![ev("b")]);
        assert!(q.withdraw(b.ticket), "b is still queued");
        assert!(!q.withdraw(b.ticket), "and withdrawn once");
        let batch = q.take(10);
        assert_eq!(batch.len(), 1, "a withdrawn unit is never taken");
        assert!(!q.withdraw(a.ticket), "a was taken: too late");
    }
}

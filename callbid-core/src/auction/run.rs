//! One auction run, one named function per phase (see [`Auction::run`]).
//!
//! The phases share a [`RunState`]: the call, the clock readings, the deadlines, one
//! [`BuyerRecord`] per buyer, the valid candidates and, once found, the winner.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::time::Instant;

use super::order::Ordered;
use super::ping::{Ping, PingResult};
use super::{
    bid_of, millis, panic_message, recycle, unscored, AcceptRecord, Auction, AuctionEventKind,
    AuctionOutcome, AuctionResult, BuyerRecord, BuyerReply, Candidate, Eligibility, NoBuyerReason,
    Scratch, Strategy, Timings, Winner,
};
use crate::buyer::{Bid, BuyerErrorKind, BuyerProfile, Deadline, PingReply};
use crate::call::CallContext;
use crate::entry::BuyerEntry;
use crate::phone::Destination;
use crate::rules::Hold;
use crate::scoring::ScoreBreakdown;

/// Everything one run accumulates as it goes through the phases.
pub(super) struct RunState<'c> {
    pub(super) call: &'c CallContext,
    pub(super) t_start: Instant,
    pub(super) started_at: DateTime<Utc>,
    pub(super) deadline: Deadline,
    pub(super) ping_deadline: Deadline,
    pub(super) records: Vec<BuyerRecord>,
    /// The valid candidates (in `scratch.cands`) and the other working vectors, taken
    /// from the auction's kept ones and given back at the end.
    pub(super) scratch: Scratch,
    pub(super) won: Option<(usize, Destination, Vec<Hold>)>,
    /// How far the candidates are ordered (see [`Auction::order_first`]).
    pub(super) ordered: Ordered,
    pub(super) any_pinged: bool,
    /// How many buyers are pinged.
    pub(super) eligible: usize,
    pub(super) any_bid: bool,
    /// Answers received so far (each record's `arrival`).
    pub(super) answers: u32,
    pub(super) ping_phase_timed_out: bool,
    pub(super) deadline_hit: bool,
    pub(super) t_eligible: Duration,
    pub(super) ping_time: Duration,
    pub(super) select_time: Duration,
    pub(super) accept_time: Duration,
}

impl Auction {
    /// Runs one auction for `call`. Never panics and returns by the deadline (plus the
    /// time the store-backed rules and scorer take): each accept gets a bounded share of
    /// what is left (see [`AuctionBuilder::accept_share`](super::AuctionBuilder::accept_share)).
    pub async fn run(&self, call: &CallContext) -> AuctionOutcome {
        let mut st = self.start(call);
        self.check_eligibility(&mut st).await;
        self.ping_all(&mut st).await;
        self.score_bids(&mut st).await;
        self.cascade(&mut st).await;
        self.conclude(st)
    }

    /// Phase 0: the clock readings and both deadlines.
    fn start<'c>(&self, call: &'c CallContext) -> RunState<'c> {
        let inner = &self.inner;
        let t_start = Instant::now();
        inner.has_subscribers.store(
            inner.events.receiver_count() > 0,
            std::sync::atomic::Ordering::Relaxed,
        );
        RunState {
            call,
            t_start,
            started_at: inner.clock.now(),
            deadline: Deadline(t_start + inner.deadline),
            ping_deadline: Deadline(t_start + inner.ping_timeout),
            records: Vec::new(),
            scratch: inner.scratch.take(),
            won: None,
            ordered: Ordered::All,
            any_pinged: false,
            eligible: 0,
            any_bid: false,
            answers: 0,
            ping_phase_timed_out: false,
            deadline_hit: false,
            t_eligible: Duration::ZERO,
            ping_time: Duration::ZERO,
            select_time: Duration::ZERO,
            accept_time: Duration::ZERO,
        }
    }

    /// Phase 1: which buyers may be pinged (rules' `check`, capabilities).
    async fn check_eligibility(&self, st: &mut RunState<'_>) {
        let inner = &self.inner;
        let (call, now) = (st.call, st.started_at);
        let mut records = Vec::with_capacity(inner.entries.len());
        if inner.has_rules {
            let eligibility = futures::future::join_all(
                inner.entries.iter().map(|e| self.eligibility(e, call, now)),
            )
            .await;
            records.extend(inner.entries.iter().zip(eligibility).map(new_record));
        } else {
            // Without rules nothing awaits: the capability check is all there is.
            records.extend(
                inner
                    .entries
                    .iter()
                    .map(|e| new_record((e, Self::capable(e, call)))),
            );
        }
        st.eligible = records
            .iter()
            .filter(|r| r.eligibility == Eligibility::Eligible)
            .count();
        st.records = records;
        st.t_eligible = st.t_start.elapsed();
        self.emit_started(st);
    }

    fn emit_started(&self, st: &RunState<'_>) {
        self.emit(st.call, || AuctionEventKind::Started {
            eligible: st
                .records
                .iter()
                .filter(|r| r.eligibility == Eligibility::Eligible)
                .map(|r| r.buyer.clone())
                .collect(),
            excluded: st
                .records
                .iter()
                .filter_map(|r| match &r.eligibility {
                    Eligibility::Excluded { rule, reason } => {
                        Some((r.buyer.clone(), format!("{rule}: {reason}")))
                    }
                    Eligibility::Eligible => None,
                })
                .collect(),
        });
    }

    /// Phase 2: ping every eligible buyer at once, validating each bid as it arrives.
    /// Each ping is polled once as it goes out, so an answer that is ready at once (an
    /// in-process buyer, a cached reply) is taken without a task of its own; the others
    /// wait together in one [`FuturesUnordered`]. One timer bounds the phase; buyers with
    /// a shorter timeout of their own get their own timer. Under
    /// [`Strategy::FirstAccept`] each valid bid is accepted at once and the first success
    /// ends the phase.
    async fn ping_all(&self, st: &mut RunState<'_>) {
        let inner = &self.inner;
        let t_ping = Instant::now();
        let (call, t_start, ping_deadline) = (st.call, st.t_start, st.ping_deadline);
        let mut pending = FuturesUnordered::new();
        let mut won = false;
        for (idx, e) in inner.entries.iter().enumerate() {
            if !matches!(st.records[idx].eligibility, Eligibility::Eligible) {
                continue;
            }
            st.any_pinged = true;
            let own = e
                .timeout
                .map(|t| t_start + t)
                .filter(|t| *t < ping_deadline.0);
            let buyer_deadline = Deadline(own.unwrap_or(ping_deadline.0));
            let mut ping = Ping::new(idx, &*e.buyer, call, buyer_deadline, own);
            // Polled with a no-op waker: a ping still pending is polled again, with the
            // phase's waker, as soon as it joins `pending`.
            let Some((idx, r)) = (&mut ping).now_or_never() else {
                pending.push(ping);
                continue;
            };
            if let Some(cand) = self.take_reply(st, idx, t_ping, r) {
                if self.accept_first(st, cand).await {
                    won = true;
                    break;
                }
            }
        }
        if !won && !pending.is_empty() {
            self.wait_pending(st, &mut pending, t_ping).await;
        }
        // Whatever is still pending was cut by the ping deadline, or cancelled by a
        // FirstAccept win.
        drop(pending);
        st.ping_time = t_ping.elapsed();
        self.mark_unanswered(st);
    }

    /// The pings that did not answer at once, until the last answers or the phase ends.
    async fn wait_pending(
        &self,
        st: &mut RunState<'_>,
        pending: &mut FuturesUnordered<Ping<'_>>,
        t_ping: Instant,
    ) {
        let phase_end = tokio::time::sleep_until(st.ping_deadline.0);
        tokio::pin!(phase_end);
        loop {
            let next = tokio::select! {
                biased;
                next = pending.next() => next,
                _ = &mut phase_end => {
                    st.ping_phase_timed_out = true;
                    None
                }
            };
            let Some((idx, r)) = next else { break };
            if let Some(cand) = self.take_reply(st, idx, t_ping, r) {
                if self.accept_first(st, cand).await {
                    break;
                }
            }
        }
    }

    /// Takes one answer: records it, and keeps a valid bid as a candidate. Under
    /// FirstAccept the valid bid is returned instead, for [`Auction::accept_first`].
    fn take_reply(
        &self,
        st: &mut RunState<'_>,
        idx: usize,
        t_ping: Instant,
        r: PingResult,
    ) -> Option<Candidate> {
        // Latency counts from the start of the phase, when every ping went out.
        let cand = self.record_reply(st, idx, t_ping.elapsed(), r)?;
        if self.inner.strategy == Strategy::FirstAccept {
            return Some(cand);
        }
        st.scratch.cands.push(cand);
        None
    }

    /// FirstAccept: tries to accept `cand` while the other pings wait. Returns whether
    /// that won.
    async fn accept_first(&self, st: &mut RunState<'_>, cand: Candidate) -> bool {
        let still_pinging = st.eligible.saturating_sub(st.answers as usize);
        self.accept_at_once(st, cand, still_pinging).await
    }

    /// Records one ping's result; returns the candidate when it is a valid bid.
    #[inline]
    fn record_reply(
        &self,
        st: &mut RunState<'_>,
        idx: usize,
        latency: Duration,
        r: PingResult,
    ) -> Option<Candidate> {
        let call = st.call;
        let rec = &mut st.records[idx];
        rec.latency = Some(latency);
        rec.arrival = Some(st.answers);
        st.answers += 1;
        let failed = |kind: BuyerErrorKind, message: String| BuyerReply::Failed { kind, message };
        match r {
            None => {
                self.emit_failed(call, rec, "timeout", "no answer before its timeout");
                rec.reply = BuyerReply::TimedOut;
            }
            Some(Err(p)) => {
                let message = panic_message(p.as_ref());
                self.emit_failed(call, rec, "panicked", &message);
                rec.reply = failed(BuyerErrorKind::Panicked, message);
            }
            Some(Ok(Err(e))) => {
                self.emit_failed(call, rec, e.kind.as_str(), &e.message);
                rec.reply = failed(e.kind, e.message);
            }
            Some(Ok(Ok(PingReply::NoBid { reason }))) => {
                self.emit(call, || AuctionEventKind::NoBid {
                    buyer: rec.buyer.clone(),
                    reason: reason.clone(),
                    latency_ms: millis(latency),
                });
                rec.reply = BuyerReply::NoBid { reason };
            }
            Some(Ok(Ok(PingReply::Bid(bid)))) => {
                st.any_bid = true;
                // Into its record at once: the bid is moved once, then checked there.
                rec.reply = BuyerReply::Bid { bid };
                return self.check_recorded_bid(call, idx, latency, rec, st.started_at);
            }
        }
        None
    }

    /// Validates the bid just recorded in `rec`; an invalid one becomes
    /// [`BuyerReply::InvalidBid`]. Returns the candidate when it is valid.
    fn check_recorded_bid(
        &self,
        call: &CallContext,
        idx: usize,
        latency: Duration,
        rec: &mut BuyerRecord,
        now: DateTime<Utc>,
    ) -> Option<Candidate> {
        let BuyerReply::Bid { bid } = &rec.reply else {
            return None;
        };
        let valid = self.validate(&self.inner.entries[idx], call, bid, now);
        self.emit(call, || AuctionEventKind::BidReceived {
            buyer: rec.buyer.clone(),
            price: bid.price,
            latency_ms: millis(latency),
            invalid: valid.as_ref().err().cloned(),
        });
        let price = bid.price.amount;
        let Err(reason) = valid else {
            return Some(Candidate::new(idx, price));
        };
        if let BuyerReply::Bid { bid } = std::mem::replace(&mut rec.reply, BuyerReply::TimedOut) {
            rec.reply = BuyerReply::InvalidBid { bid, reason };
        }
        None
    }

    fn emit_failed(&self, call: &CallContext, rec: &BuyerRecord, kind: &str, message: &str) {
        self.emit(call, || AuctionEventKind::BuyerFailed {
            buyer: rec.buyer.clone(),
            kind: kind.to_string(),
            message: message.to_string(),
        });
    }

    /// FirstAccept: scores and accepts one valid bid while other pings may still come
    /// in (`still_pinging` of them). Returns whether it won.
    async fn accept_at_once(
        &self,
        st: &mut RunState<'_>,
        cand: Candidate,
        still_pinging: usize,
    ) -> bool {
        let t_acc = Instant::now();
        let idx = cand.idx;
        let Some(bid) = bid_of(&st.records, idx) else {
            return false;
        };
        let entry = &self.inner.entries[idx];
        let scored = self
            .inner
            .scorer
            .score(st.call, &[(&entry.profile, bid)])
            .await;
        let score = scored.ok().and_then(|mut v| v.pop());
        let share = self.accept_budget(st.deadline, still_pinging);
        let attempt = self.try_win(st.call, idx, bid, share, st.started_at).await;
        st.records[idx].score = score;
        st.accept_time += t_acc.elapsed();
        self.settle_attempt(st, idx, attempt)
    }

    /// Records an accept attempt; returns whether it won.
    fn settle_attempt(
        &self,
        st: &mut RunState<'_>,
        idx: usize,
        attempt: Result<(Destination, Vec<Hold>), AcceptRecord>,
    ) -> bool {
        match attempt {
            Ok((d, holds)) => {
                st.records[idx].accept = Some(AcceptRecord::Accepted {
                    destination: d.clone(),
                });
                st.won = Some((idx, d, holds));
                true
            }
            Err(ar) => {
                self.emit_accept_failed(st.call, &st.records[idx].buyer, &ar);
                st.records[idx].accept = Some(ar);
                false
            }
        }
    }

    /// Eligible buyers that never answered: cancelled by a FirstAccept win, or cut by
    /// the ping deadline.
    fn mark_unanswered(&self, st: &mut RunState<'_>) {
        let (won, timed_out, ping_time) = (st.won.is_some(), st.ping_phase_timed_out, st.ping_time);
        for i in 0..st.records.len() {
            let r = &mut st.records[i];
            if r.eligibility != Eligibility::Eligible || r.latency.is_some() {
                continue;
            }
            if won {
                r.reply = BuyerReply::Cancelled;
                continue;
            }
            r.latency = Some(ping_time);
            if timed_out {
                self.emit_failed(st.call, r, "timeout", "no answer before the ping deadline");
            }
        }
    }

    /// Phases 3 and 4: score every candidate in one call to the scorer, then order them
    /// by the strategy (FirstAccept already decided, or found nothing that accepted).
    async fn score_bids(&self, st: &mut RunState<'_>) {
        let t_select = Instant::now();
        if self.inner.strategy != Strategy::FirstAccept && !st.scratch.cands.is_empty() {
            self.apply_scores(st).await;
            st.ordered = self.order_first(st.call, &mut st.scratch.cands);
        }
        st.select_time = t_select.elapsed();
    }

    /// Scores every valid bid in one batch, each breakdown written straight into its
    /// record. The batch is in entry order: the candidates are exactly the records
    /// holding a valid bid (under every strategy but FirstAccept, which does not come
    /// here), whatever order they arrived in.
    async fn apply_scores(&self, st: &mut RunState<'_>) {
        let inner = &self.inner;
        let scratch = &mut st.scratch;
        let mut pairs: Vec<(&BuyerProfile, &Bid)> = recycle(std::mem::take(&mut scratch.pairs));
        let mut slots: Vec<&mut Option<ScoreBreakdown>> =
            recycle(std::mem::take(&mut scratch.slots));
        for (rec, e) in st.records.iter_mut().zip(&inner.entries) {
            let BuyerRecord { reply, score, .. } = rec;
            if let BuyerReply::Bid { bid } = reply {
                pairs.push((&e.profile, bid));
                slots.push(score);
            }
        }
        let scored = inner
            .scorer
            .score_in_place(st.call, &pairs, &mut slots)
            .await;
        scratch.pairs = recycle(pairs);
        scratch.slots = recycle(slots);
        match scored {
            Ok(()) => {
                for c in scratch.cands.iter_mut() {
                    if let Some(s) = &st.records[c.idx].score {
                        c.score = s.score;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "scoring failed; ordering by price"),
        }
    }

    /// Phase 5: reserve and accept with the best candidate, cascading to the next on
    /// failure while the deadline allows. Each attempt gets its share of the time left
    /// ([`Auction::accept_budget`]), so a hanging accept cannot use up the auction.
    async fn cascade(&self, st: &mut RunState<'_>) {
        let t_accept = Instant::now();
        if st.won.is_none() {
            let mut cands = std::mem::take(&mut st.scratch.cands);
            for i in 0..cands.len() {
                if i == 1 && st.ordered == Ordered::First {
                    self.order_rest(&mut cands);
                }
                let cand = cands[i];
                if st.deadline.passed() {
                    st.deadline_hit = true;
                    break;
                }
                let Some(bid) = bid_of(&st.records, cand.idx) else {
                    continue;
                };
                let share = self.accept_budget(st.deadline, cands.len() - i - 1);
                let attempt = self
                    .try_win(st.call, cand.idx, bid, share, st.started_at)
                    .await;
                if self.settle_attempt(st, cand.idx, attempt) {
                    break;
                }
            }
            st.scratch.cands = cands;
        }
        st.accept_time += t_accept.elapsed();
    }

    /// The end of one accept attempt's share of the deadline: the budget rule.
    ///
    /// The accept window ends `accept_margin` before the auction deadline (time kept
    /// for releasing holds and answering, as Prebid Server keeps a buffer out of
    /// `tmax`). The last candidate may use all of what is left of the window; while
    /// `others_left` candidates wait behind it, an attempt gets `accept_share` of it
    /// (default one half), so with three candidates and a hanging first accept the
    /// second still gets a quarter of the window and the third the rest. The share
    /// bounds the cap and duplicate-caller reservations as well as the buyer's accept.
    pub(super) fn accept_budget(&self, deadline: Deadline, others_left: usize) -> Deadline {
        let inner = &self.inner;
        let now = Instant::now();
        let window_end = deadline
            .0
            .checked_sub(inner.accept_margin)
            .filter(|e| *e > now)
            .unwrap_or(deadline.0);
        if others_left == 0 {
            return Deadline(window_end);
        }
        let left = window_end.saturating_duration_since(now);
        Deadline(now + left.mul_f64(inner.accept_share))
    }

    /// Phase 6: the result, its events and the loss reports.
    fn conclude(&self, st: RunState<'_>) -> AuctionOutcome {
        let call = st.call;
        let records = st.records;
        let mut scratch = st.scratch;
        scratch.clear();
        self.inner.scratch.give(scratch);
        let won = st
            .won
            .and_then(|(idx, d, h)| bid_of(&records, idx).cloned().map(|b| (idx, b, d, h)));
        let result = match won {
            Some((idx, bid, destination, holds)) => {
                let score = records[idx].score.clone().unwrap_or_else(|| unscored(&bid));
                self.emit(call, || AuctionEventKind::Won {
                    buyer: bid.buyer.clone(),
                    price: bid.price,
                    score: score.score,
                    destination: destination.clone(),
                });
                if self.inner.report_losses {
                    self.report_losses(call, &records, &bid);
                }
                AuctionResult::Won(Box::new(Winner {
                    buyer: bid.buyer.clone(),
                    bid,
                    score,
                    destination,
                    holds,
                }))
            }
            None => {
                let reason = no_buyer_reason(
                    &records,
                    st.any_pinged,
                    st.any_bid,
                    st.deadline_hit || st.deadline.passed(),
                );
                self.emit(call, || AuctionEventKind::NoBuyer {
                    reason: reason.to_string(),
                });
                AuctionResult::NoBuyer { reason }
            }
        };
        AuctionOutcome {
            call_id: call.call_id.clone(),
            result,
            buyers: records,
            timings: Timings {
                started_at: st.started_at,
                eligibility: st.t_eligible,
                ping: st.ping_time,
                select: st.select_time,
                accept: st.accept_time,
                total: st.t_start.elapsed(),
            },
        }
    }
}

/// A buyer's record before its ping: eligible ones start as timed out (what they stay
/// if they never answer), excluded ones as not pinged.
fn new_record((entry, eligibility): (&BuyerEntry, Eligibility)) -> BuyerRecord {
    BuyerRecord {
        buyer: entry.buyer.id().clone(),
        reply: match eligibility {
            Eligibility::Eligible => BuyerReply::TimedOut,
            Eligibility::Excluded { .. } => BuyerReply::NotPinged,
        },
        eligibility,
        latency: None,
        arrival: None,
        score: None,
        accept: None,
    }
}

fn no_buyer_reason(
    records: &[BuyerRecord],
    any_pinged: bool,
    any_bid: bool,
    deadline_passed: bool,
) -> NoBuyerReason {
    let any_valid = records
        .iter()
        .any(|r| matches!(r.reply, BuyerReply::Bid { .. }));
    if !any_pinged {
        NoBuyerReason::NoEligibleBuyers
    } else if !any_bid {
        NoBuyerReason::NoBids
    } else if !any_valid {
        NoBuyerReason::NoValidBids
    } else if deadline_passed {
        NoBuyerReason::DeadlineExceeded
    } else {
        NoBuyerReason::AllAcceptsFailed
    }
}

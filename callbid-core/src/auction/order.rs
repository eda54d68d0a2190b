//! Ordering the candidates by the strategy (phase 4 of [`Auction::run`]).
//!
//! Every strategy ends on the buyer id, which is unique, so each order is total and
//! arrival never matters. `HighestScore` orders by score, then price (higher first);
//! `HighestBid` by price, then score; then both by priority (lower first) and buyer id.
//! The two decimals are not compared in the sort: each candidate's value is brought once
//! to an integer at the largest scale among all candidates' values, and integers at one
//! scale compare as the decimals do. When that is not possible (a negative value from a
//! custom scorer, or an integer too large at that scale) the sort compares the decimals
//! themselves; both ways give the same order (see the proptest below).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

use super::{Auction, Candidate, Strategy};
use crate::call::CallContext;
use crate::entry::BuyerEntry;

/// Each entry's place in buyer-id order.
pub(super) fn id_ranks(entries: &[BuyerEntry]) -> Vec<usize> {
    let ids: Vec<&crate::ids::BuyerId> = entries.iter().map(|e| e.buyer.id()).collect();
    ranks_of(&ids)
}

/// Each key's place in sorted order (keys are unique buyer ids).
pub(super) fn ranks_of<T: Ord>(keys: &[T]) -> Vec<usize> {
    let mut by_key: Vec<usize> = (0..keys.len()).collect();
    by_key.sort_unstable_by(|a, b| keys[*a].cmp(&keys[*b]));
    let mut rank = vec![0; keys.len()];
    for (r, idx) in by_key.into_iter().enumerate() {
        rank[idx] = r;
    }
    rank
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The two decimals a strategy orders by, most significant first.
trait Pick: Fn(&Candidate) -> (Decimal, Decimal) + Copy {}
impl<F: Fn(&Candidate) -> (Decimal, Decimal) + Copy> Pick for F {}

/// Powers of ten up to the largest decimal scale (28).
const POW10: [u128; 29] = {
    let mut p = [1u128; 29];
    let mut i = 1;
    while i < 29 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// The largest scales among the candidates' two values, or `None` when a value is
/// negative.
fn common_scales(cands: &[Candidate], pick: impl Pick) -> Option<(u32, u32)> {
    cands.iter().try_fold((0, 0), |(s1, s2), c| {
        let (a, b) = pick(c);
        let non_negative = !a.is_sign_negative() && !b.is_sign_negative();
        non_negative.then(|| (s1.max(a.scale()), s2.max(b.scale())))
    })
}

/// `v` (not negative) as an integer count of `10^-scale` (`scale` at least `v`'s own).
fn at_scale(v: Decimal, scale: u32) -> Option<u128> {
    let pow = POW10.get(usize::try_from(scale.checked_sub(v.scale())?).ok()?)?;
    v.mantissa().unsigned_abs().checked_mul(*pow)
}

/// Sets every candidate's integer keys for the decimals `pick` gives; false when one
/// of them has none (the keys are then not to be used).
fn set_keys(cands: &mut [Candidate], pick: impl Pick) -> bool {
    let Some((first, second)) = common_scales(cands, pick) else {
        return false;
    };
    for c in cands.iter_mut() {
        let (a, b) = pick(c);
        match (at_scale(a, first), at_scale(b, second)) {
            (Some(a), Some(b)) => c.key = (a, b),
            _ => return false,
        }
    }
    true
}

/// Higher first by the decimals `pick` gives, then by `tie` (lower first).
fn sort_desc<T: Ord>(cands: &mut [Candidate], pick: impl Pick, tie: impl Fn(&Candidate) -> T) {
    if set_keys(cands, pick) {
        cands.sort_unstable_by(|a, b| b.key.cmp(&a.key).then_with(|| tie(a).cmp(&tie(b))));
    } else {
        sort_desc_by_decimals(cands, pick, tie);
    }
}

/// [`sort_desc`] comparing the decimals in the sort (the fallback, and the reference).
fn sort_desc_by_decimals<T: Ord>(
    cands: &mut [Candidate],
    pick: impl Pick,
    tie: impl Fn(&Candidate) -> T,
) {
    cands.sort_unstable_by(|a, b| {
        let ((a1, a2), (b1, b2)) = (pick(a), pick(b));
        b1.cmp(&a1)
            .then_with(|| b2.cmp(&a2))
            .then_with(|| tie(a).cmp(&tie(b)))
    });
}

/// The index drawn from `weights` (proportionally; the first when all weigh 0).
fn draw(rng: &mut ChaCha8Rng, weights: impl Iterator<Item = u64> + Clone) -> usize {
    let total: u64 = weights.clone().sum();
    if total == 0 {
        return 0;
    }
    let mut r = rng.random_range(0..total);
    for (j, w) in weights.enumerate() {
        if r < w {
            return j;
        }
        r -= w;
    }
    0
}

/// How far [`Auction::order_first`] ordered the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ordered {
    /// All of them, in the strategy's order.
    All,
    /// Only the first is in place (the best); the rest follow once
    /// [`Auction::order_rest`] sorts them.
    First,
}

impl Auction {
    /// Each candidate's tie-break key: priority (lower first), then buyer-id order.
    fn tie(&self) -> impl Fn(&Candidate) -> (u32, usize) + '_ {
        let inner = &self.inner;
        move |c| (inner.entries[c.idx].profile.priority, inner.id_rank[c.idx])
    }

    /// Orders the candidates by the strategy (see the module docs), as far as the first
    /// accept attempt needs: under `HighestScore` and `HighestBid` only the best is put
    /// first (one pass instead of a sort; most auctions sell to it), and
    /// [`Auction::order_rest`] orders the others if it does not accept. The order is
    /// total, so this gives the same sequence as [`order_candidates`].
    pub(super) fn order_first(&self, call: &CallContext, cands: &mut [Candidate]) -> Ordered {
        let inner = &self.inner;
        if let Strategy::PriorityWeighted { .. } = inner.strategy {
            let profile = |idx: usize| {
                let p = &inner.entries[idx].profile;
                (p.priority, p.weight)
            };
            order_candidates(inner.strategy, call, profile, &inner.id_rank, cands);
            return Ordered::All;
        }
        best_first(cands, self.pick(), self.tie())
    }

    /// Orders the candidates after the first (see [`Auction::order_first`]).
    pub(super) fn order_rest(&self, cands: &mut [Candidate]) {
        sort_rest(cands, self.pick(), self.tie());
    }

    /// The two decimals the strategy orders by (`HighestScore` and `HighestBid`).
    fn pick(&self) -> fn(&Candidate) -> (Decimal, Decimal) {
        match self.inner.strategy {
            Strategy::HighestBid => |c| (c.price, c.score),
            _ => |c| (c.score, c.price),
        }
    }
}

/// Puts the best candidate by [`sort_desc`]'s order first ([`Ordered::All`] when there
/// is only one).
fn best_first<T: Ord>(
    cands: &mut [Candidate],
    pick: impl Pick,
    tie: impl Fn(&Candidate) -> T,
) -> Ordered {
    if cands.len() < 2 {
        return Ordered::All;
    }
    // One pass comparing the values pairwise: cheaper than setting integer keys.
    let before = |a: &Candidate, b: &Candidate| {
        let ((a1, a2), (b1, b2)) = (pick(a), pick(b));
        cmp_values(b1, a1)
            .then_with(|| cmp_values(b2, a2))
            .then_with(|| tie(a).cmp(&tie(b)))
            .is_lt()
    };
    let best = (1..cands.len()).fold(0, |best, i| match before(&cands[i], &cands[best]) {
        true => i,
        false => best,
    });
    cands.swap(0, best);
    Ordered::First
}

/// `a.cmp(&b)`, in integers when both are non-negative with mantissas below 2^64 and
/// scales of at most 19 (the usual prices and scores): each brought to the larger
/// scale fits a `u128`, and integers at one scale compare as the decimals do.
fn cmp_values(a: Decimal, b: Decimal) -> std::cmp::Ordering {
    let small = |d: Decimal| {
        let m = d.mantissa();
        (m >= 0 && m >> 64 == 0 && d.scale() <= 19).then_some((m as u128, d.scale()))
    };
    match (small(a), small(b)) {
        (Some((ma, sa)), Some((mb, sb))) => {
            let s = sa.max(sb);
            // 10^19 × (2^64 − 1) < 2^128: no overflow.
            let at = |m: u128, from: u32| m * POW10[(s - from) as usize];
            at(ma, sa).cmp(&at(mb, sb))
        }
        _ => a.cmp(&b),
    }
}

/// After [`best_first`] gave [`Ordered::First`]: the others in order.
fn sort_rest<T: Ord>(cands: &mut [Candidate], pick: impl Pick, tie: impl Fn(&Candidate) -> T) {
    if let Some(rest) = cands.get_mut(1..) {
        sort_desc(rest, pick, tie);
    }
}

/// Orders `cands` by `strategy` (see the module docs): what [`Auction::order`] and the
/// replay share. `profile(idx)` gives candidate `idx`'s (priority, weight) and
/// `id_rank[idx]` its place in buyer-id order.
pub(super) fn order_candidates(
    strategy: Strategy,
    call: &CallContext,
    profile: impl Fn(usize) -> (u32, u32) + Copy,
    id_rank: &[usize],
    cands: &mut [Candidate],
) {
    let tie = |c: &Candidate| (profile(c.idx).0, id_rank[c.idx]);
    match strategy {
        Strategy::HighestScore | Strategy::FirstAccept => {
            sort_desc(cands, |c| (c.score, c.price), tie)
        }
        Strategy::HighestBid => sort_desc(cands, |c| (c.price, c.score), tie),
        Strategy::PriorityWeighted { seed } => order_weighted(call, seed, profile, id_rank, cands),
    }
}

/// Lowest priority number first; within a priority, drawn one by one by weight
/// (without replacement) from ChaCha8 seeded with `seed` and the call id, the draw
/// starting from buyer-id order so that equal seeds give equal orders.
fn order_weighted(
    call: &CallContext,
    seed: u64,
    profile: impl Fn(usize) -> (u32, u32) + Copy,
    id_rank: &[usize],
    cands: &mut [Candidate],
) {
    let prio = |c: &Candidate| profile(c.idx).0;
    let weight = |c: &Candidate| u64::from(profile(c.idx).1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(call.call_id.as_str()));
    cands.sort_unstable_by_key(|c| (prio(c), id_rank[c.idx]));
    let mut start = 0;
    while start < cands.len() {
        let p = prio(&cands[start]);
        let end = start + cands[start..].iter().take_while(|c| prio(c) == p).count();
        for i in start..end {
            let pick = draw(&mut rng, cands[i..end].iter().map(weight));
            // The drawn one comes next; the rest keep their order.
            cands[i..=i + pick].rotate_right(1);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::{
        best_first, cmp_values, id_ranks, set_keys, sort_desc, sort_desc_by_decimals, sort_rest,
        BuyerEntry, Candidate, Decimal, Ordered,
    };
    use proptest::prelude::*;

    fn cand(idx: usize, price: Decimal, score: Decimal) -> Candidate {
        Candidate {
            score,
            ..Candidate::new(idx, price)
        }
    }

    fn decimal() -> impl proptest::strategy::Strategy<Value = Decimal> {
        // Few distinct mantissas so that equal values (ties) are common; scales 0 to 12.
        (0i64..40, 0u32..=12).prop_map(|(m, s)| Decimal::new(m * 25, s))
    }

    fn idx_order(cands: &[Candidate]) -> Vec<usize> {
        cands.iter().map(|c| c.idx).collect()
    }

    proptest! {
        /// Integer keys at a common scale give exactly the order of comparing the
        /// decimals (the comparator the auction used before), for both strategies.
        #[test]
        fn integer_keys_order_as_decimals_do(
            values in proptest::collection::vec((decimal(), decimal(), 0u32..3), 1..40),
            by_price in any::<bool>(),
        ) {
            let cands: Vec<Candidate> = values
                .iter()
                .enumerate()
                .map(|(i, (p, s, _))| cand(i, *p, *s))
                .collect();
            let tie = |c: &Candidate| (values[c.idx].2, c.idx);
            let pick: fn(&Candidate) -> (Decimal, Decimal) =
                if by_price { |c| (c.price, c.score) } else { |c| (c.score, c.price) };
            let mut keyed = cands.clone();
            prop_assert!(set_keys(&mut keyed, pick), "non-negative small values have keys");
            sort_desc(&mut keyed, pick, tie);
            let mut reference = cands.clone();
            sort_desc_by_decimals(&mut reference, pick, tie);
            prop_assert_eq!(idx_order(&keyed), idx_order(&reference));
        }

        /// The best first, then the rest sorted, is the full order.
        #[test]
        fn best_first_then_the_rest_is_the_order(
            values in proptest::collection::vec((decimal(), decimal(), 0u32..3), 1..40),
        ) {
            let cands: Vec<Candidate> = values
                .iter()
                .enumerate()
                .map(|(i, (p, s, _))| cand(i, *p, *s))
                .collect();
            let tie = |c: &Candidate| (values[c.idx].2, c.idx);
            let pick = |c: &Candidate| (c.score, c.price);
            let mut reference = cands.clone();
            sort_desc_by_decimals(&mut reference, pick, tie);
            let mut lazy = cands.clone();
            let ordered = best_first(&mut lazy, pick, tie);
            prop_assert_eq!(lazy[0].idx, reference[0].idx);
            if ordered == Ordered::First {
                sort_rest(&mut lazy, pick, tie);
            }
            prop_assert_eq!(idx_order(&lazy), idx_order(&reference));
        }

        /// The integer comparison is the decimals' comparison.
        #[test]
        fn integer_comparison_is_the_decimal_one(
            a in (any::<i64>(), 0u32..=28),
            b in (any::<i64>(), 0u32..=28),
        ) {
            let (a, b) = (Decimal::new(a.0, a.1), Decimal::new(b.0, b.1));
            prop_assert_eq!(cmp_values(a, b), a.cmp(&b));
            prop_assert_eq!(cmp_values(a, a), std::cmp::Ordering::Equal);
        }

        /// A negative value (a custom scorer may give one) falls back to the decimals.
        #[test]
        fn negative_values_fall_back(values in proptest::collection::vec(decimal(), 1..20)) {
            let mut cands: Vec<Candidate> = values
                .iter()
                .enumerate()
                .map(|(i, s)| cand(i, Decimal::ONE, if i == 0 { -*s - Decimal::ONE } else { *s }))
                .collect();
            prop_assert!(!set_keys(&mut cands, |c| (c.score, c.price)));
            let mut reference = cands.clone();
            sort_desc(&mut cands, |c| (c.score, c.price), |c| c.idx);
            sort_desc_by_decimals(&mut reference, |c| (c.score, c.price), |c| c.idx);
            prop_assert_eq!(idx_order(&cands), idx_order(&reference));
        }
    }

    #[test]
    fn an_integer_too_large_at_the_common_scale_falls_back() {
        let mut cands = vec![
            cand(0, Decimal::MAX, Decimal::ONE),
            cand(1, Decimal::new(1, 28), Decimal::ONE),
        ];
        assert!(!set_keys(&mut cands, |c| (c.price, c.score)));
        sort_desc(&mut cands, |c| (c.price, c.score), |c| c.idx);
        assert_eq!(idx_order(&cands), vec![0, 1]);
    }

    #[test]
    fn ranks_follow_buyer_ids() {
        use crate::inprocess::InProcessBuyer;
        use crate::{BuyerId, Destination, Money};
        use std::sync::Arc;
        let entry = |id: &str| {
            BuyerEntry::new(Arc::new(InProcessBuyer::new(
                BuyerId::new(id).unwrap(),
                Money::usd(Decimal::ONE),
                Destination::parse("+15125550100").unwrap(),
            )))
        };
        assert_eq!(
            id_ranks(&[entry("c"), entry("a"), entry("b")]),
            vec![2, 0, 1]
        );
    }
}

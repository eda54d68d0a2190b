//! A deterministic, seeded campaign simulator, to compare pacers.
//!
//! It runs a campaign second by second in virtual time: contacts spread over several US
//! area codes (and zones), each launch checked against the callee's calling window at
//! that moment; each call rings, then is answered by a person or a machine, is busy, or
//! rings out, with a pickup probability that depends on the callee's local hour; a person
//! who answers is connected to a free agent, or is abandoned when no agent is free within
//! [`ABANDON_AFTER`](super::ABANDON_AFTER); agents talk for a drawn talk time, then wrap
//! up. The same seed gives the same run, bit for bit.
//!
//! Three pacers ([`SimPacer`]): this crate's predictive [`Pacer`], the progressive
//! baseline (one call per free agent), and a VICIdial-style adaptive dial level that
//! steers towards a drop target measured per day.
//!
//! Run `cargo run --release -p callbid-core --example campaign_sim` for the comparison
//! recorded in `docs/BENCHMARKS.md`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use chrono::{DateTime, Timelike, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use super::contact::{AnsweredBy, CallOutcome, Contact, ContactEvent, RetryPolicy};
use super::pacer::{Pacer, PacerConfig, PacerInput, PacingMode, RateWindow};
use super::window::{CallingRules, WindowVerdict};
use crate::phone::PhoneNumber;

/// Which pacer drives the simulated campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimPacer {
    /// [`Pacer`] in predictive mode (the 30-day abandon ceiling).
    Predictive,
    /// One call per free agent.
    Progressive,
    /// A VICIdial-style adaptive dial level with a per-day drop target.
    DailyDropTarget,
}

/// The simulated world.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// Contacts in the list.
    pub contacts: usize,
    /// Agents logged in during calling hours.
    pub agents: u32,
    /// Probability that a call is answered (person or machine), by the callee's local
    /// hour (0–23).
    pub pickup_by_hour: [f64; 24],
    /// Share of answered calls taken by a machine.
    pub machine_share: f64,
    /// Share of unanswered calls that are busy (the rest ring out).
    pub busy_share: f64,
    /// Mean talk time, seconds (exponentially distributed, at least 20 s).
    pub mean_talk_secs: f64,
    /// Agent wrap-up after each call, seconds.
    pub wrap_up_secs: u32,
    /// The campaign starts at this instant.
    pub start: DateTime<Utc>,
    /// Stop after this many days even if contacts remain.
    pub max_days: u32,
    /// The abandon target (0.03).
    pub abandon_target: Decimal,
    /// The provider's calls per second.
    pub provider_cps: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        let mut pickup = [0.0; 24];
        for (h, p) in pickup.iter_mut().enumerate() {
            *p = match h {
                8..=9 => 0.25,
                10..=11 => 0.30,
                12..=13 => 0.38,
                14..=16 => 0.28,
                17..=19 => 0.42,
                20 => 0.33,
                _ => 0.15,
            };
        }
        SimConfig {
            seed: 7,
            contacts: 10_000,
            agents: 10,
            pickup_by_hour: pickup,
            machine_share: 0.25,
            busy_share: 0.15,
            mean_talk_secs: 150.0,
            wrap_up_secs: 15,
            start: DateTime::<Utc>::from_timestamp(1_796_637_600, 0).unwrap_or_default(), // 2026-12-07T10:00Z
            max_days: 30,
            abandon_target: Decimal::new(3, 2),
            provider_cps: 5,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// The pacer.
    pub pacer: SimPacer,
    /// Calls launched.
    pub launches: u64,
    /// Calls answered by a person.
    pub live_answers: u64,
    /// Of those, abandoned.
    pub abandoned: u64,
    /// Contacts a person talked with.
    pub contacts_reached: u64,
    /// Talk seconds ÷ (agents × staffed seconds).
    pub agent_utilisation: f64,
    /// The highest abandon rate over any trailing 30 days, at each day's end.
    pub max_abandon_rate_30d: f64,
    /// The highest abandon rate of a single day.
    pub max_abandon_rate_day: f64,
    /// Launches per staffed hour.
    pub calls_per_hour: f64,
    /// Staffed hours (time with contacts callable or calls in flight).
    pub staffed_hours: f64,
    /// Days simulated.
    pub days: u32,
    /// Launches found outside the callee's window by an independent re-check (must be 0).
    pub window_violations: u64,
    /// The most launches in any one second (the provider's limit bounds it).
    pub max_launches_per_second: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The call to contact `i` (attempt) is answered / fails / rings out.
    Resolve(usize, u32),
    /// A waiting person gives up: abandoned if still waiting.
    AbandonCheck(usize, u32),
    /// The agent's call with contact `i` ends.
    TalkEnd(usize, u32),
    /// An agent finishes wrap-up.
    AgentFree,
}

struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    rules: CallingRules,
    policy: RetryPolicy,
    contacts: Vec<Contact>,
    due: BinaryHeap<Reverse<(i64, usize)>>,
    events: BinaryHeap<Reverse<(i64, Ev)>>,
    free_agents: u32,
    ringing: u32,
    waiting: VecDeque<(usize, u32)>,
    talk_secs: u64,
    staffed_secs: u64,
    launches: Vec<(i64, usize)>,
    daily: BTreeMap<i64, (u64, u64)>,
    reached: u64,
    dial_level: f64,
}

/// Runs one campaign with `pacer`.
pub fn run(cfg: &SimConfig, pacer: SimPacer) -> SimReport {
    let mut w = World::new(cfg.clone());
    let mut ours = make_pacer(cfg, pacer);
    let end = cfg.start.timestamp() + i64::from(cfg.max_days) * 86_400;
    let mut now = cfg.start.timestamp();
    while now < end && !w.finished() {
        w.process_events(now, ours.as_mut());
        let active = w.launch_round(now, pacer, ours.as_mut());
        if active {
            w.staffed_secs += 1;
            now += 1;
        } else {
            now = w.next_interesting(now).min(end);
        }
    }
    w.report(pacer, now)
}

fn make_pacer(cfg: &SimConfig, pacer: SimPacer) -> Option<Pacer> {
    let mode = match pacer {
        SimPacer::Predictive => PacingMode::Predictive,
        SimPacer::Progressive => PacingMode::Progressive,
        SimPacer::DailyDropTarget => return None,
    };
    let config = PacerConfig {
        mode,
        abandon_target: cfg.abandon_target,
        completion_throttle: None,
        ..PacerConfig::default()
    };
    let bucket = RateWindow::twilio(cfg.provider_cps.max(1)).ok()?;
    Pacer::new(config, bucket).ok()
}

const AREA_CODES: [u16; 8] = [212, 305, 512, 312, 303, 602, 213, 208];

impl World {
    fn new(cfg: SimConfig) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let start = cfg.start.timestamp();
        let mut contacts = Vec::with_capacity(cfg.contacts);
        let mut due = BinaryHeap::new();
        for i in 0..cfg.contacts {
            let ac = AREA_CODES[rng.random_range(0..AREA_CODES.len())];
            let text = format!("+1{ac}{:07}", 2_000_000 + i);
            if let Ok(n) = PhoneNumber::parse(&text) {
                due.push(Reverse((start, contacts.len())));
                contacts.push(Contact::new(n));
            }
        }
        World {
            free_agents: cfg.agents,
            cfg,
            rng,
            rules: CallingRules::us_default(),
            policy: RetryPolicy::default(),
            contacts,
            due,
            events: BinaryHeap::new(),
            ringing: 0,
            waiting: VecDeque::new(),
            talk_secs: 0,
            staffed_secs: 0,
            launches: Vec::new(),
            daily: BTreeMap::new(),
            reached: 0,
            dial_level: 1.0,
        }
    }

    fn finished(&self) -> bool {
        self.due.is_empty() && self.events.is_empty() && self.waiting.is_empty()
    }

    fn next_interesting(&self, now: i64) -> i64 {
        let e = self.events.peek().map(|Reverse((t, _))| *t);
        let d = self.due.peek().map(|Reverse((t, _))| *t);
        [e, d]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + 3600)
            .max(now + 1)
    }

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default()
    }

    fn process_events(&mut self, now: i64, mut pacer: Option<&mut Pacer>) {
        while let Some(Reverse((t, ev))) = self.events.peek().copied() {
            if t > now {
                break;
            }
            self.events.pop();
            match ev {
                Ev::Resolve(i, a) => self.resolve(now, i, a, pacer.as_deref_mut()),
                Ev::AbandonCheck(i, a) => self.abandon_check(now, i, a, pacer.as_deref_mut()),
                Ev::TalkEnd(i, a) => self.talk_end(now, i, a),
                Ev::AgentFree => self.agent_free(now, pacer.as_deref_mut()),
            }
        }
    }

    fn launch_round(&mut self, now: i64, kind: SimPacer, pacer: Option<&mut Pacer>) -> bool {
        let in_flight =
            self.ringing > 0 || !self.waiting.is_empty() || self.free_agents < self.cfg.agents;
        let ready = self.due.peek().is_some_and(|Reverse((t, _))| *t <= now);
        if !ready {
            return in_flight;
        }
        let want = match (kind, pacer.as_deref()) {
            (SimPacer::DailyDropTarget, _) => self.vicidial_want(now),
            (_, Some(p)) => {
                p.decide(PacerInput {
                    now: Self::at(now),
                    free_agents: self.free_agents,
                    // Answered calls waiting for an agent may still be abandoned.
                    ringing: self.ringing + self.waiting.len() as u32,
                    due: u32::MAX,
                })
                .launch
            }
            (_, None) => 0,
        };
        let launched = self.launch_up_to(now, want, pacer);
        in_flight || launched > 0 || self.due.peek().is_some_and(|Reverse((t, _))| *t <= now)
    }

    fn vicidial_want(&mut self, now: i64) -> u32 {
        if now % 15 == 0 {
            let (live, ab) = self
                .daily
                .get(&now.div_euclid(86_400))
                .copied()
                .unwrap_or((0, 0));
            let drop = if live == 0 {
                0.0
            } else {
                ab as f64 / live as f64
            };
            let target = self.cfg.abandon_target.to_f64().unwrap_or(0.03);
            self.dial_level = if drop < target {
                (self.dial_level + 0.1).min(4.0)
            } else {
                (self.dial_level - 0.3).max(1.0)
            };
        }
        let busy = self.cfg.agents - self.free_agents;
        let lines = (self.dial_level * f64::from(self.cfg.agents)).floor() as i64;
        let in_progress = i64::from(self.ringing) + i64::from(busy) + self.waiting.len() as i64;
        (lines - in_progress).max(0) as u32
    }

    /// Launches up to `want` due contacts, checking each one's window now; closed ones
    /// wait for their window to open.
    fn launch_up_to(&mut self, now: i64, want: u32, mut pacer: Option<&mut Pacer>) -> u32 {
        let mut launched = 0;
        while launched < want {
            let Some(Reverse((t, i))) = self.due.peek().copied() else {
                break;
            };
            if t > now {
                break;
            }
            self.due.pop();
            match self.rules.check(&self.contacts[i].number, Self::at(now)) {
                WindowVerdict::Open => {}
                WindowVerdict::Closed {
                    opens_at: Some(o), ..
                } => {
                    self.due.push(Reverse((o.timestamp(), i)));
                    continue;
                }
                _ => continue, // no zone known: never called
            }
            if let Some(p) = pacer.as_deref_mut() {
                if !p.launched(Self::at(now)) {
                    self.due.push(Reverse((now + 1, i)));
                    break;
                }
            } else if launched >= self.cfg.provider_cps {
                self.due.push(Reverse((now + 1, i)));
                break;
            }
            self.launch(now, i);
            launched += 1;
        }
        launched
    }

    fn launch(&mut self, now: i64, i: usize) {
        let attempt = self.contacts[i].attempts + 1;
        let ev = ContactEvent::Launched {
            attempt,
            at: Self::at(now),
        };
        self.contacts[i].apply(&ev, &self.policy);
        self.launches.push((now, i));
        self.ringing += 1;
        let delay = self.rng.random_range(4..=20);
        self.events
            .push(Reverse((now + delay, Ev::Resolve(i, attempt))));
    }

    fn local_hour(&self, i: usize, now: i64) -> usize {
        let zone = self.contacts[i]
            .number
            .area_info()
            .map(|a| a.time_zone)
            .unwrap_or(chrono_tz::America::New_York);
        Self::at(now).with_timezone(&zone).hour() as usize
    }

    fn resolve(&mut self, now: i64, i: usize, attempt: u32, pacer: Option<&mut Pacer>) {
        self.ringing = self.ringing.saturating_sub(1);
        let p = self.cfg.pickup_by_hour[self.local_hour(i, now) % 24];
        let roll: f64 = self.rng.random();
        if roll < p {
            if self.rng.random::<f64>() < self.cfg.machine_share {
                self.end(
                    now + 20,
                    i,
                    attempt,
                    CallOutcome::Completed {
                        answered_by: AnsweredBy::Machine,
                        talk_seconds: 20,
                    },
                    pacer,
                    false,
                    false,
                );
            } else {
                self.human_answered(now, i, attempt, pacer);
            }
        } else {
            let outcome = if self.rng.random::<f64>() < self.cfg.busy_share {
                CallOutcome::Busy
            } else {
                CallOutcome::NoAnswer
            };
            self.end(now + 10, i, attempt, outcome, pacer, false, false);
        }
    }

    fn human_answered(&mut self, now: i64, i: usize, attempt: u32, pacer: Option<&mut Pacer>) {
        let ev = ContactEvent::Answered {
            attempt,
            by: AnsweredBy::Human,
            at: Self::at(now),
        };
        self.contacts[i].apply(&ev, &self.policy);
        if self.free_agents > 0 {
            self.connect(now, i, attempt);
            self.count_live(now, false, pacer);
        } else {
            self.waiting.push_back((i, attempt));
            let limit = super::pacer::ABANDON_AFTER.as_secs() as i64;
            self.events
                .push(Reverse((now + limit, Ev::AbandonCheck(i, attempt))));
        }
    }

    fn connect(&mut self, now: i64, i: usize, attempt: u32) {
        self.free_agents -= 1;
        let u: f64 = self.rng.random::<f64>().max(1e-9);
        let talk = (-u.ln() * self.cfg.mean_talk_secs).max(20.0).round() as i64;
        self.talk_secs += talk as u64;
        self.events
            .push(Reverse((now + talk, Ev::TalkEnd(i, attempt))));
    }

    fn abandon_check(&mut self, now: i64, i: usize, attempt: u32, pacer: Option<&mut Pacer>) {
        if let Some(pos) = self.waiting.iter().position(|w| *w == (i, attempt)) {
            self.waiting.remove(pos);
            self.end(
                now + 10,
                i,
                attempt,
                CallOutcome::Abandoned,
                pacer,
                true,
                true,
            );
        }
    }

    fn talk_end(&mut self, now: i64, i: usize, attempt: u32) {
        let talk = CallOutcome::Completed {
            answered_by: AnsweredBy::Human,
            talk_seconds: 0,
        };
        self.reached += 1;
        self.end(now, i, attempt, talk, None, false, false);
        self.events.push(Reverse((
            now + i64::from(self.cfg.wrap_up_secs),
            Ev::AgentFree,
        )));
    }

    fn agent_free(&mut self, now: i64, pacer: Option<&mut Pacer>) {
        self.free_agents += 1;
        if let Some((i, attempt)) = self.waiting.pop_front() {
            self.connect(now, i, attempt);
            self.count_live(now, false, pacer);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn end(
        &mut self,
        at: i64,
        i: usize,
        attempt: u32,
        outcome: CallOutcome,
        pacer: Option<&mut Pacer>,
        live: bool,
        abandoned: bool,
    ) {
        let human_talked = matches!(
            outcome,
            CallOutcome::Completed {
                answered_by: AnsweredBy::Human,
                ..
            }
        );
        let ev = ContactEvent::Ended {
            attempt,
            outcome,
            at: Self::at(at),
        };
        self.contacts[i].apply(&ev, &self.policy);
        if let Some(next) = self.retry_time(i) {
            self.due.push(Reverse((next, i)));
        }
        if human_talked {
            return; // counted as live when connected
        }
        if live {
            self.count_live(at, abandoned, pacer);
        } else if let Some(p) = pacer {
            p.ended(Self::at(at), false, false);
        }
    }

    /// Counts a live answer (connected or abandoned) in the pacer and the daily ledger.
    fn count_live(&mut self, at: i64, abandoned: bool, pacer: Option<&mut Pacer>) {
        if let Some(p) = pacer {
            p.ended(Self::at(at), true, abandoned);
        }
        let e = self.daily.entry(at.div_euclid(86_400)).or_insert((0, 0));
        e.0 += 1;
        if abandoned {
            e.1 += 1;
        }
    }

    fn retry_time(&self, i: usize) -> Option<i64> {
        match self.contacts[i].state {
            super::contact::ContactState::RetryScheduled { at, .. } => Some(at.timestamp()),
            _ => None,
        }
    }

    fn report(&self, pacer: SimPacer, now: i64) -> SimReport {
        let live: u64 = self.daily.values().map(|d| d.0).sum();
        let abandoned: u64 = self.daily.values().map(|d| d.1).sum();
        let days: Vec<i64> = self.daily.keys().copied().collect();
        let mut max30 = 0.0f64;
        let mut max_day = 0.0f64;
        for &d in &days {
            let (l, a) = self
                .daily
                .range(d - 29..=d)
                .fold((0u64, 0u64), |(x, y), (_, (l, a))| (x + l, y + a));
            if l > 0 {
                max30 = max30.max(a as f64 / l as f64);
            }
            let (l, a) = self.daily[&d];
            if l >= 50 {
                max_day = max_day.max(a as f64 / l as f64);
            }
        }
        let mut per_second: BTreeMap<i64, u32> = BTreeMap::new();
        let mut violations = 0;
        for &(t, i) in &self.launches {
            *per_second.entry(t).or_insert(0) += 1;
            if !self
                .rules
                .check(&self.contacts[i].number, Self::at(t))
                .is_open()
            {
                violations += 1;
            }
        }
        let staffed_hours = self.staffed_secs as f64 / 3600.0;
        SimReport {
            pacer,
            launches: self.launches.len() as u64,
            live_answers: live,
            abandoned,
            contacts_reached: self.reached,
            agent_utilisation: if self.staffed_secs == 0 {
                0.0
            } else {
                self.talk_secs as f64 / (f64::from(self.cfg.agents) * self.staffed_secs as f64)
            },
            max_abandon_rate_30d: max30,
            max_abandon_rate_day: max_day,
            calls_per_hour: if staffed_hours > 0.0 {
                self.launches.len() as f64 / staffed_hours
            } else {
                0.0
            },
            staffed_hours,
            days: ((now - self.cfg.start.timestamp()) / 86_400 + 1) as u32,
            window_violations: violations,
            max_launches_per_second: per_second.values().copied().max().unwrap_or(0),
        }
    }
}

/// Runs the three pacers on the same world.
pub fn compare(cfg: &SimConfig) -> Vec<SimReport> {
    [
        SimPacer::Predictive,
        SimPacer::Progressive,
        SimPacer::DailyDropTarget,
    ]
    .into_iter()
    .map(|p| run(cfg, p))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig {
            contacts: 1500,
            agents: 6,
            max_days: 10,
            ..SimConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let a = run(&small(), SimPacer::Predictive);
        let b = run(&small(), SimPacer::Predictive);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn predictive_keeps_the_abandon_rule_and_beats_progressive() {
        let reports = compare(&small());
        let (ours, progressive, vici) = (&reports[0], &reports[1], &reports[2]);
        for r in &reports {
            assert_eq!(r.window_violations, 0, "{r:?}");
            assert!(r.max_launches_per_second <= 5, "{r:?}");
        }
        assert!(ours.max_abandon_rate_30d <= 0.03, "{ours:?}");
        assert!(progressive.abandoned == 0, "{progressive:?}");
        assert!(
            ours.agent_utilisation > progressive.agent_utilisation,
            "{ours:?} vs {progressive:?}"
        );
        assert!(vici.launches > 0, "{vici:?}");
    }
}

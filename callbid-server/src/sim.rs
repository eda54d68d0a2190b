//! `--simulate N`: drives N calls through the running server with callbid-twilio's call
//! simulator (signed webhooks, virtual time), with seeded random ZIPs, services, caller
//! mistakes and dial outcomes; then summarizes from the call log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use callbid_core::state::{CallRecord, CallStatus};
use callbid_core::{CallId, Currency, Money, PhoneNumber};
use callbid_twilio::sim::{CallScript, DialOutcome, SimError, Simulator, Transcript};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ivr::App;

/// ZIP codes the simulated callers enter (spread over several states and zones).
pub const ZIPS: [&str; 12] = [
    "78701", "75201", "77002", "10001", "60601", "94103", "02108", "98101", "33101", "30303",
    "85004", "80202",
];
const AREA_CODES: [&str; 10] = [
    "512", "214", "713", "212", "312", "415", "617", "206", "305", "404",
];

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of calls.
    pub calls: usize,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Seed for ZIPs, services, mistakes and outcomes.
    pub seed: u64,
    /// The server's base URL.
    pub base_url: String,
    /// The auth token the server verifies.
    pub auth_token: String,
    /// Numbers the callers dial (tracking numbers).
    pub tracking_numbers: Vec<PhoneNumber>,
    /// Menu keys that select a service.
    pub menu_keys: Vec<char>,
    /// Show a progress bar.
    pub progress: bool,
}

/// The scripted calls of a run: same seed, same scripts (CallSids are made unique per run
/// with `run_id` so repeated runs against one database do not collide).
pub fn scripts(opts: &SimOptions, run_id: u32) -> Vec<CallScript> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    (0..opts.calls)
        .map(|_| {
            let sid = format!(
                "CA{run_id:08x}{:016x}{:08x}",
                rng.random::<u64>(),
                rng.random::<u32>()
            );
            let ac = AREA_CODES[rng.random_range(0..AREA_CODES.len())];
            let from = format!("+1{ac}555{:04}", rng.random_range(100..10_000));
            let to = if opts.tracking_numbers.is_empty() {
                "+18005550100".to_owned()
            } else {
                opts.tracking_numbers[rng.random_range(0..opts.tracking_numbers.len())]
                    .as_str()
                    .to_owned()
            };
            let mut s = CallScript::new(from, to).call_sid(sid);
            // ZIP: mostly right the first time; some callers mistype, a few never manage.
            let zip_roll = rng.random::<f64>();
            if zip_roll < 0.02 {
                s = s.press("12").stay_silent().press("9999");
            } else if zip_roll < 0.08 {
                s = s.press("123");
            }
            s = s.press(ZIPS[rng.random_range(0..ZIPS.len())]);
            if rng.random::<f64>() < 0.04 {
                s = s.press("*");
            }
            if let Some(k) = opts
                .menu_keys
                .get(rng.random_range(0..opts.menu_keys.len().max(1)))
            {
                s = s.press(k.to_string());
            }
            let roll = rng.random::<f64>();
            let buyer_dial = if roll < 0.70 {
                DialOutcome::answered(rng.random_range(2..12), rng.random_range(15..420))
            } else if roll < 0.82 {
                DialOutcome::Busy
            } else if roll < 0.94 {
                DialOutcome::NoAnswer
            } else {
                DialOutcome::Failed
            };
            // A second Dial (the in-house line, when the fallback chain has one).
            s.dial(buyer_dial)
                .dial(DialOutcome::answered(4, 90))
                .record_for(rng.random_range(8..45))
        })
        .collect()
}

/// Result of a run.
#[derive(Debug)]
pub struct SimReport {
    /// Transcripts of the calls that ran.
    pub transcripts: Vec<Transcript>,
    /// Simulator errors (a webhook failed or answered non-TwiML).
    pub errors: Vec<String>,
    /// Call records from the log.
    pub records: Vec<CallRecord>,
    /// Auction latencies of this run.
    pub latencies: Vec<Duration>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs the simulation against `app`'s server (its call log and auction latencies feed
/// the report).
pub async fn run(app: &App, opts: &SimOptions) -> anyhow::Result<SimReport> {
    let mark = app.auctions_run();
    let (transcripts, errors, elapsed) = drive(opts).await?;
    let mut records = Vec::new();
    for t in &transcripts {
        let id = CallId::new(&t.call_sid)?;
        if let Some(r) = app.stores.log.record(&id).await? {
            records.push(r);
        }
    }
    let latencies = app.auction_latencies_since(mark);
    Ok(SimReport {
        transcripts,
        errors,
        records,
        latencies,
        elapsed,
    })
}

/// The `p`-th percentile (0–1) of `values` (nearest rank).
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn sum(records: &[CallRecord], f: impl Fn(&CallRecord) -> Option<Money>) -> anyhow::Result<Money> {
    let mut total = Money::zero(Currency::USD);
    for r in records {
        if let Some(m) = f(r) {
            total = total.checked_add(&m)?;
        }
    }
    Ok(total)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0),
    )
}

/// The summary table.
pub fn summary(report: &SimReport, opts: &SimOptions, payout: &str) -> anyhow::Result<String> {
    let r = &report.records;
    let count = |f: &dyn Fn(&CallRecord) -> bool| r.iter().filter(|x| f(x)).count();
    let won = count(&|x| x.destination.is_some());
    let completed = count(&|x| x.status == CallStatus::Completed);
    // Forwarded but never completed: the buyer's side was busy, did not answer or failed.
    let missed = count(&|x| x.destination.is_some() && x.status != CallStatus::Completed);
    let fallback = count(&|x| x.fallback.is_some());
    let billable = count(&|x| x.billable == Some(true));
    let mut fallback_kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wins: BTreeMap<String, usize> = BTreeMap::new();
    for x in r {
        if let Some(k) = &x.fallback {
            *fallback_kinds.entry(k.as_str()).or_default() += 1;
        }
        if let (Some(b), Some(_)) = (&x.buyer, &x.destination) {
            *wins.entry(b.to_string()).or_default() += 1;
        }
    }
    let revenue = sum(r, |x| x.revenue)?;
    let paid = sum(r, |x| x.payout)?;
    let margin = revenue.checked_sub(&paid)?;
    let kinds = fallback_kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = String::new();
    writeln!(
        out,
        "Simulated {} calls (seed {}, {} at a time) in {:.1} s against {}",
        opts.calls,
        opts.seed,
        opts.concurrency,
        report.elapsed.as_secs_f64(),
        opts.base_url
    )?;
    let row = |out: &mut String, k: &str, v: String| writeln!(out, "  {k:<24} {v:>14}");
    row(&mut out, "calls logged", r.len().to_string())?;
    row(&mut out, "won (forwarded)", won.to_string())?;
    row(&mut out, "completed", completed.to_string())?;
    row(&mut out, "buyer did not answer", missed.to_string())?;
    row(&mut out, "fallback", fallback.to_string())?;
    if !kinds.is_empty() {
        writeln!(out, "  {:<24} {kinds:>14}", "  by last step")?;
    }
    row(&mut out, "billable", billable.to_string())?;
    row(
        &mut out,
        "revenue",
        format!("{} {:.2}", revenue.currency, revenue.amount),
    )?;
    row(
        &mut out,
        &format!("payout ({payout})"),
        format!("{} {:.2}", paid.currency, paid.amount),
    )?;
    row(
        &mut out,
        "margin",
        format!("{} {:.2}", margin.currency, margin.amount),
    )?;
    row(
        &mut out,
        "auction latency p50",
        ms(percentile(&report.latencies, 0.50)),
    )?;
    row(
        &mut out,
        "auction latency p99",
        ms(percentile(&report.latencies, 0.99)),
    )?;
    row(
        &mut out,
        "simulator errors",
        report.errors.len().to_string(),
    )?;
    if !wins.is_empty() {
        writeln!(out, "  wins by buyer:")?;
        for (b, n) in &wins {
            writeln!(out, "    {b:<22} {n:>14}")?;
        }
    }
    for e in report.errors.iter().take(5) {
        writeln!(out, "  error: {e}")?;
    }
    Ok(out)
}

/// Drives the simulated calls against `opts.base_url` (any callbid IVR, local or not):
/// the transcripts, the simulator's errors and the wall time.
pub async fn drive(opts: &SimOptions) -> anyhow::Result<(Vec<Transcript>, Vec<String>, Duration)> {
    let sim = Simulator::new(&opts.base_url, &opts.auth_token)
        .context("simulator base URL")?
        // Absolute, so a base URL with a path (a router nested under a prefix) keeps it.
        .voice_path(format!("{}/voice", opts.base_url.trim_end_matches('/')))
        .status_callback(format!(
            "{}/ivr/status",
            opts.base_url.trim_end_matches('/')
        ))
        .account_sid(format!("AC{:032x}", opts.seed));
    let run_id = u32::try_from(chrono::Utc::now().timestamp().rem_euclid(1 << 32)).unwrap_or(0);
    let scripts = scripts(opts, run_id);
    let bar = if opts.progress {
        let bar = indicatif::ProgressBar::new(scripts.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} simulating calls [{bar:30}] {pos}/{len} {elapsed_precise}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let results: Vec<Result<Transcript, SimError>> = futures::stream::iter(scripts)
        .map(|script| {
            let sim = &sim;
            let bar = &bar;
            async move {
                let r = sim.run(script).await;
                bar.inc(1);
                r
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let mut transcripts = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(t) => transcripts.push(t),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok((transcripts, errors, elapsed))
}

//! Time from a call's arrival to a bridged agent (issue 10, seed 001): ten agents rung
//! at once (one tier, one `<Dial>` with ten whispered legs) against the seed's baseline,
//! the same ten agents rung one at a time (ten tiers of one).
//!
//! Every call runs through the real IVR router over HTTP on 127.0.0.1 with the in-memory
//! agent store, driven by callbid-twilio's call simulator in **virtual time** (the figures
//! are seconds of the simulated call, so machine load does not change them). Both modes
//! get the same seeded agents per trial:
//! - 50% pick up after 4–18 s, hear the whisper and press 1;
//! - 25% do not answer (the leg rings out after the round's 20 s);
//! - 10% are busy;
//! - 15% have voicemail answer after 2–6 s (it never presses 1).
//!
//! Run: `cargo bench --bench agent_ringing -- [TRIALS] [SEED]` (default 300 trials, seed 7);
//! `RINGING_DEBUG=1` prints the transcript of every call bridged after more than 250 s.
//! This is a simulation, not a CPU timing, so it has its own harness instead of
//! criterion's.

use std::sync::Arc;
use std::time::Duration;

use callbid::core::agents::{
    Agent, AgentId, AgentPool, AgentPoolId, AgentStore, MemoryAgentStore, PresenceChange, Reach,
};
use callbid::core::auction::Strategy;
use callbid::core::billing::PayoutRule;
use callbid::core::state::{
    MemoryCallLog, MemoryCapStore, MemoryDurationHistory, MemoryRoutingStore,
};
use callbid::core::{BuyerId, PhoneNumber};
use callbid_server::ivr::fallback::{FallbackChain, DEFAULT_MESSAGE};
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::ivr::{self as app, AgentOffers, App, IvrConfig, Stores};
use callbid_server::settle::build_auction;
use callbid_twilio::signature::WebhookVerifier;
use callbid_twilio::sim::{CallScript, DialLeg, DialLegs, SimEvent, Simulator};
use chrono::Utc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

const TOKEN: &str = "agent-ringing-bench";
const AGENTS: usize = 10;
const ROUND_SECS: u64 = 20;

/// One agent's behaviour in one trial.
fn leg(rng: &mut ChaCha8Rng) -> DialLeg {
    let roll: f64 = rng.random();
    if roll < 0.50 {
        DialLeg::answers_after(rng.random_range(4..=18)).press("1")
    } else if roll < 0.75 {
        DialLeg::no_answer()
    } else if roll < 0.85 {
        DialLeg::busy()
    } else {
        DialLeg::voicemail_after(rng.random_range(2..=6))
    }
}

struct Server {
    sim: Simulator,
    task: tokio::task::JoinHandle<()>,
    store: Arc<MemoryAgentStore>,
    pool: AgentPoolId,
}

/// The IVR with an agent pool of ten agents, each in tier 1 (`simultaneous`) or in tiers
/// 1 to 10.
async fn server(simultaneous: bool) -> Server {
    let store = Arc::new(MemoryAgentStore::new());
    let pool = AgentPoolId::new("bench").expect("pool id");
    let buyer = BuyerId::new("in-house").expect("buyer id");
    let settings = AgentPool::new(pool.clone(), buyer.clone())
        .with_offer_ttl(Duration::from_secs(ROUND_SECS))
        .and_then(|p| p.with_wrap_up(Duration::ZERO))
        .expect("pool");
    store.put_pool(&settings).await.expect("put pool");
    for i in 0..AGENTS {
        let id = AgentId::new(format!("agent{i}")).expect("agent id");
        let reach = Reach::parse(&format!("+1512555{:04}", 100 + i)).expect("reach");
        let tier = if simultaneous { 1 } else { i as u8 + 1 };
        let a = Agent::new(id.clone(), &format!("Agent {i}"), reach)
            .and_then(|a| a.with_tier(tier))
            .expect("agent");
        store
            .put_agent(&pool, &a, Utc::now())
            .await
            .expect("put agent");
    }
    let history = Arc::new(MemoryDurationHistory::new());
    let auction = build_auction(
        Vec::new(),
        history.clone(),
        Strategy::HighestBid,
        Duration::from_millis(200),
    )
    .expect("auction");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let number = PhoneNumber::parse("+15125550999").expect("number");
    let config = IvrConfig {
        public_url: base.clone(),
        menu: Menu::parse("1=Plumbing").expect("menu"),
        campaigns: Campaigns::demo(),
        fallback: FallbackChain::parse(
            "in-house,message",
            Some(&number),
            DEFAULT_MESSAGE,
            &format!("{base}/ivr/fallback"),
        )
        .expect("fallback"),
        payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
        dial_timeout: 25,
        record: false,
        greeting: "Thanks for calling.".to_owned(),
        log_calls: false,
    };
    let stores = Stores {
        log: Arc::new(MemoryCallLog::new()),
        caps: Arc::new(MemoryCapStore::new()),
        history,
        routing: Arc::new(MemoryRoutingStore::new()),
        agents: Some(AgentOffers::new(store.clone(), pool.clone(), buyer)),
        pools: None,
    };
    let verifier = WebhookVerifier::new(&base, TOKEN).expect("verifier");
    let app: Arc<App> = App::new(config, stores, auction, Some(verifier));
    let router = app::router(app);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let sim = Simulator::new(&base, TOKEN)
        .expect("simulator")
        .voice_path("/voice")
        .status_callback("/ivr/status");
    Server {
        sim,
        task,
        store,
        pool,
    }
}

/// Every agent available again (the previous call's winner ends their call).
async fn reset(store: &MemoryAgentStore, pool: &AgentPoolId) {
    let now = Utc::now();
    for s in store.agents(pool, now).await.expect("agents") {
        let _ = store
            .set_presence(pool, &s.agent.id, PresenceChange::EndCall, now)
            .await;
        let _ = store
            .set_presence(pool, &s.agent.id, PresenceChange::LogIn, now)
            .await;
    }
}

/// Seconds from arrival to the bridge and from the menu choice (the offer starts) to
/// the bridge, or `None` when nobody took the call.
async fn one_call(
    s: &Server,
    legs: &[DialLeg],
    simultaneous: bool,
    n: usize,
) -> Option<(f64, f64)> {
    let mut script = CallScript::new("+15125550123", "+18005550100")
        .call_sid(format!(
            "CA{:032x}",
            n + if simultaneous { 0 } else { 1 << 40 }
        ))
        .press("78701")
        .press("1");
    if simultaneous {
        script = script.dial_legs(DialLegs::new(legs.to_vec()));
    } else {
        for l in legs {
            script = script.dial_legs(DialLegs::new([l.clone()]));
        }
    }
    let t = s.sim.run(script).await.expect("simulated call");
    let offered = t.events.iter().find_map(|(at, e)| match e {
        SimEvent::Request { url, .. } if url.contains("/ivr/service") => Some(*at),
        _ => None,
    })?;
    let bridged = t.bridged_at()?;
    if std::env::var("RINGING_DEBUG").is_ok() && bridged.as_secs() > 250 {
        eprintln!("{}", t.render());
    }
    Some((
        bridged.as_secs_f64(),
        bridged.saturating_sub(offered).as_secs_f64(),
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Default)]
struct Summary {
    /// Arrival → bridge, seconds.
    bridged: Vec<f64>,
    /// Offer → bridge, seconds.
    waited: Vec<f64>,
    unbridged: usize,
}

impl Summary {
    fn row(&mut self, name: &str, trials: usize) -> String {
        self.bridged.sort_by(f64::total_cmp);
        self.waited.sort_by(f64::total_cmp);
        let within = self.waited.iter().filter(|s| **s <= 20.0).count();
        format!(
            "| {name} | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1}% | {} |",
            percentile(&self.bridged, 0.5),
            percentile(&self.bridged, 0.99),
            percentile(&self.waited, 0.5),
            percentile(&self.waited, 0.99),
            self.waited.last().copied().unwrap_or(f64::NAN),
            100.0 * within as f64 / trials as f64,
            self.unbridged
        )
    }
}

async fn run(trials: usize, seed: u64) {
    let together = server(true).await;
    let one_by_one = server(false).await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sums = [Summary::default(), Summary::default()];
    for n in 0..trials {
        let legs: Vec<DialLeg> = (0..AGENTS).map(|_| leg(&mut rng)).collect();
        for (i, (s, simultaneous)) in [(&together, true), (&one_by_one, false)]
            .into_iter()
            .enumerate()
        {
            // Every agent logged in and free before each call.
            reset(&s.store, &s.pool).await;
            match one_call(s, &legs, simultaneous, n).await {
                Some((arrival, offer)) => {
                    sums[i].bridged.push(arrival);
                    sums[i].waited.push(offer);
                }
                None => sums[i].unbridged += 1,
            }
        }
    }
    println!("{trials} calls per mode, seed {seed}, {AGENTS} agents, {ROUND_SECS} s rounds");
    println!(
        "| ringing | arrival → bridge, median | p99 | offer → bridge, median | p99 | worst | bridged within 20 s of the offer | never bridged |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("{}", sums[0].row("all 10 at once (callbid)", trials));
    println!("{}", sums[1].row("one at a time (baseline)", trials));
    together.task.abort();
    one_by_one.task.abort();
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let trials = args.first().and_then(|a| a.parse().ok()).unwrap_or(300);
    let seed = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(trials, seed));
}

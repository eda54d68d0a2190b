//! Compares three pacers on a seeded 10,000-contact campaign (see `campaign::sim`).
//!
//!     cargo run --release -p callbid-core --example campaign_sim [SEED] [CONTACTS] [AGENTS]
use callbid_core::campaign::sim::{compare, SimConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut cfg = SimConfig::default();
    if let Some(seed) = args.next().and_then(|s| s.parse().ok()) {
        cfg.seed = seed;
    }
    if let Some(n) = args.next().and_then(|s| s.parse().ok()) {
        cfg.contacts = n;
    }
    if let Some(a) = args.next().and_then(|s| s.parse().ok()) {
        cfg.agents = a;
    }
    println!(
        "seed {} contacts {} agents {} provider {} cps, abandon target {}",
        cfg.seed, cfg.contacts, cfg.agents, cfg.provider_cps, cfg.abandon_target
    );
    println!(
        "{:<18} {:>9} {:>8} {:>6} {:>8} {:>7} {:>9} {:>9} {:>9} {:>6} {:>4}",
        "pacer",
        "launches",
        "live",
        "aband",
        "reached",
        "util",
        "max30d",
        "maxday",
        "calls/h",
        "days",
        "viol"
    );
    for r in compare(&cfg) {
        println!(
            "{:<18} {:>9} {:>8} {:>6} {:>8} {:>6.1}% {:>8.2}% {:>8.2}% {:>9.1} {:>6} {:>4}",
            format!("{:?}", r.pacer),
            r.launches,
            r.live_answers,
            r.abandoned,
            r.contacts_reached,
            r.agent_utilisation * 100.0,
            r.max_abandon_rate_30d * 100.0,
            r.max_abandon_rate_day * 100.0,
            r.calls_per_hour,
            r.days,
            r.window_violations
        );
    }
}

//! IVR auto-routing server (seed 002, option 1).
//!
//! Twilio calls `POST /voice`; the caller enters a ZIP and picks a service; every buyer
//! network is pinged at once; the winner's DID or SIP URI is `<Dial>`ed with the caller's
//! number, recording and an action callback; nobody buying (or any internal error) goes
//! to the fallback chain. Every step is a call-log event in SQLite (default) or
//! PostgreSQL; completed calls feed duration history and billing. The operator
//! dashboard is mounted at `/`, behind `--dashboard-token` when set (required on a
//! non-loopback `--listen` address; see `callbid_server::auth`).
//!
//! ```sh
//! cargo run --example ivr_auction                      # serve on 127.0.0.1:3000, demo buyers
//! cargo run --example ivr_auction -- --simulate 50     # 50 simulated calls, summary, exit
//! cargo run --example ivr_auction -- --buyers buyers.toml --public-url https://ivr.example.com
//! cargo run --example ivr_auction --features postgres -- --database-url postgres://…
//! ```
//!
//! The flags map onto `callbid_server::config::ServerConfig` keys (also read from
//! `callbid.toml` and `CALLBID_*` variables); the server itself is
//! `callbid_server::run::ivr`, the same code `callbid serve` runs.
//!
//! Without `--buyers`, the local demo buyer network (`callbid_server::demo`,
//! 8 buyers speaking Service Direct and Ringba RTB) starts on a free loopback port.

mod args;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = args::Args::parse();
    let run = async {
        let cfg = args.config()?;
        callbid_server::run::ivr(cfg, args.simulate).await
    };
    match run.await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

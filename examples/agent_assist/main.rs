//! Agent-assisted routing (seed 002, Option 2): calls ring an agent; while talking, the
//! agent enters ZIP, service and campaign/source on `/agent`, buyers bid live, and the
//! call is bridged to the winner through Twilio's REST API (a Forward click, or at once
//! in auto mode). The operator dashboard is served at `/`. The server is
//! `callbid_server::run::agent_desk`; this is its command line.
//!
//! ```sh
//! # Everything local: demo buyer network, SQLite file, built-in fake of Twilio's Calls
//! # update endpoint (no credentials set), unsigned webhooks for curl:
//! cargo run --example agent_assist -- --insecure-skip-signature
//! curl -d CallSid=CA0123456789abcdef0123456789abcdef --data-urlencode From=+15125550123 \
//!      --data-urlencode To=+18005550100 -d AccountSid=AC00000000000000000000000000000000 \
//!      http://127.0.0.1:3100/twilio/voice
//! # then open http://127.0.0.1:3100/agent, ping buyers, press Forward.
//!
//! # Against the Prism mock of Twilio's API (see .ci/twilio.sh):
//! cargo run --example agent_assist -- --insecure-skip-signature \
//!     --twilio-api-url "$TWILIO_PRISM_API_URL" \
//!     --account-sid AC0123456789abcdef0123456789abcdef --auth-token test
//!
//! # Real Twilio: TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN set, signatures checked, the
//! # agent desk and dashboard behind an operator token (log in at /login):
//! CALLBID_DASHBOARD_TOKEN=$(openssl rand -hex 32) \
//! cargo run --example agent_assist -- --listen 0.0.0.0:3100 --public-url https://agent.example.com \
//!     --agent client:alice --buyers buyers.toml --database-url sqlite://calls.db
//! ```

use std::process::ExitCode;

use callbid_server::run::{agent_desk, AgentDeskArgs};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match agent_desk(AgentDeskArgs::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent_assist: {e}");
            ExitCode::FAILURE
        }
    }
}

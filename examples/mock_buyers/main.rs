//! A local buyer network: Service Direct-compatible and Ringba-style RTB endpoints for N
//! buyers with configurable prices, accept rates, latencies and failures.
//!
//! `cargo run --example mock_buyers -- --port 8089 --buyers 8 --seed 1`
//!
//! It prints a `buyers.toml` for `callbid-buyers` that points at itself (use it with the
//! IVR server's `--buyers` option), and serves until Ctrl-C or SIGTERM. `GET /stats` shows counts.
//! With `--config FILE` the buyers come from a JSON file (an array of `MockBuyer`s).

use callbid_server::{demo as mock_network, serve};

use std::net::SocketAddr;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = arg("--port")
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(8089);
    let n: usize = arg("--buyers").map(|p| p.parse()).transpose()?.unwrap_or(8);
    let seed: u64 = arg("--seed").map(|p| p.parse()).transpose()?.unwrap_or(1);
    let buyers = match arg("--config") {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(&path)?)
            .map_err(|e| format!("--config {path}: {e}"))?,
        None => mock_network::demo_buyers(n),
    };
    let net =
        mock_network::MockNetwork::start(SocketAddr::from(([127, 0, 0, 1], port)), buyers, seed)
            .await?;
    println!("# demo buyer network on {}", net.base_url());
    println!("# export the demo keys first:");
    for (b, (name, key)) in net.buyers.iter().zip(net.env_keys()) {
        if b.kind == mock_network::MockKind::ServiceDirect {
            println!("#   export {name}={key}");
        }
    }
    println!("{}", net.buyers_toml());
    serve::shutdown_signal().await;
    net.stop();
    Ok(())
}

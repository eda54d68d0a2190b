//! An existing axum app mounts callbid's IVR and dashboard under `/callbid`.
//!
//! ```sh
//! cargo run --example embed_axum
//! curl http://127.0.0.1:3200/hello                 # the host's own route
//! # Twilio voice webhook: POST http://127.0.0.1:3200/callbid/voice (signed)
//! # dashboard:            http://127.0.0.1:3200/callbid/dashboard
//! ```
//!
//! The wiring is in `host.rs` (`tests/embed_axum_e2e.rs` drives a signed simulated call
//! through it).

mod host;

use callbid_server::serve;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = "127.0.0.1:3200";
    let token = std::env::var("TWILIO_AUTH_TOKEN").unwrap_or_else(|_| "dev-token".to_owned());
    let public = format!("http://{listen}");
    let (app, _ivr) = host::app(&public, "sqlite://callbid.db", &token).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "host app on {public}: /hello, callbid under {public}{}",
        host::PREFIX
    );
    println!("  voice webhook: POST {public}{}/voice", host::PREFIX);
    println!("  dashboard:     {public}{}/dashboard", host::PREFIX);
    serve::serve_gracefully(
        listener,
        app,
        serve::shutdown_signal(),
        std::time::Duration::from_secs(10),
    )
    .await?;
    Ok(())
}

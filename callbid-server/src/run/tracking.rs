//! `callbid serve`'s number pools (call tracking, seed 003): the `pools` key's file
//! installed in the store, the lease API's limits, and the maintenance task (purging old
//! leases and, with a Twilio account, buying and releasing numbers).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use callbid_core::pool::provision::NumberProvisioner;
use callbid_core::pool::NumberPoolStore;
use callbid_store::Store;
use callbid_twilio::provision::TwilioProvisioner;
use callbid_twilio::rest::Client as TwilioClient;

use crate::config::ServerConfig;
use crate::pool::{self, PoolApp, PoolLimits};

/// The pools and their maintenance task.
pub(crate) struct Tracking {
    /// For [`crate::ivr::Stores::pools`] and [`pool::router`].
    pub(crate) app: Arc<PoolApp>,
    /// Purges and provisioning, every minute.
    pub(crate) maintenance: tokio::task::JoinHandle<()>,
    /// One line for the startup banner.
    pub(crate) summary: String,
}

/// Loads the pools named by `cfg.pools`; `None` without one.
pub(crate) async fn setup(
    cfg: &ServerConfig,
    store: &Store,
    public_url: &str,
) -> anyhow::Result<Option<Tracking>> {
    let Some(path) = &cfg.pools else {
        return Ok(None);
    };
    let specs = pool::spec::load(path)?;
    let limits = PoolLimits {
        visitor_per_minute: cfg.pool_visitor_per_minute,
        ip_per_minute: cfg.pool_ip_per_minute,
        trust_forwarded_for: cfg.pool_trust_forwarded_for,
        cors_origins: pool::parse_origins(&cfg.pool_cors_origins)?,
    };
    let provisioned = specs.iter().filter(|s| s.provision.is_some()).count();
    let names: Vec<String> = specs.iter().map(|s| s.pool.id.to_string()).collect();
    let backend: Arc<dyn NumberPoolStore> = Arc::new(store.clone());
    let app = PoolApp::new(backend, specs, limits, Some(public_url))
        .await
        .with_context(|| format!("cannot store the number pools of pools {}", path.display()))?;
    let provisioner = provisioner(cfg, provisioned)?;
    let voice_url = format!("{public_url}/voice");
    let maintenance =
        pool::spawn_maintenance(app.clone(), provisioner, voice_url, Duration::from_secs(60));
    let summary = format!("number pools: {} (lease API under /pool)", names.join(", "));
    Ok(Some(Tracking {
        app,
        maintenance,
        summary,
    }))
}

/// Twilio's number search and purchase, when an account is configured and a pool asks
/// for provisioning.
fn provisioner(
    cfg: &ServerConfig,
    provisioned: usize,
) -> anyhow::Result<Option<Arc<dyn NumberProvisioner>>> {
    if provisioned == 0 {
        return Ok(None);
    }
    let token = cfg.auth_token.as_deref().filter(|t| !t.trim().is_empty());
    let (Some(sid), Some(token)) = (&cfg.account_sid, token) else {
        eprintln!(
            "WARN pools: {provisioned} pool(s) ask for provisioning, but account_sid and auth_token are not both set: no numbers will be bought"
        );
        return Ok(None);
    };
    let mut b = TwilioClient::builder(sid.clone()).auth_token(token);
    if let Some(url) = &cfg.twilio_api_url {
        b = b.api_base_url(url.clone());
    }
    let client = b.build().context("Twilio REST client")?;
    Ok(Some(Arc::new(TwilioProvisioner::new(client))))
}

//! `callbid serve`'s outbound campaigns: the `outbound` key's file, the provider it names
//! (Twilio, its local fake, or Exotel), the campaign app over the shared store, and the
//! pacer.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use callbid_core::campaign::{CampaignStore, OutboundProvider};
use callbid_exotel::{ExotelClient, ExotelProvider, Region};
use callbid_store::Store;
use callbid_twilio::outbound::TwilioProvider;
use callbid_twilio::signature::WebhookVerifier;

use crate::campaign::{spawn_pacer, CampaignApp, CampaignSettings};
use crate::config::ServerConfig;
use crate::demo::fake_twilio::FakeTwilio;
use crate::outbound_file::{ExotelAccount, OutboundFile, ProviderKind};

/// The campaigns and their pacer.
pub(crate) struct Outbound {
    /// For [`crate::campaign::api_router`] and [`crate::campaign::webhook_router`].
    pub(crate) app: Arc<CampaignApp>,
    /// The pacing loop.
    pub(crate) pacer: tokio::task::JoinHandle<()>,
    /// The fake Twilio Calls API, when no account was configured.
    pub(crate) fake: Option<FakeTwilio>,
    /// One line for the startup banner.
    pub(crate) summary: String,
}

/// Loads the file named by `cfg.outbound` and starts the pacer; `None` without one.
/// `public_url` is where the provider's webhooks reach this server, `verifier` checks
/// Twilio's signatures on them, and `token` signs the fake's callbacks.
pub(crate) async fn setup(
    cfg: &ServerConfig,
    store: &Store,
    public_url: &str,
    verifier: Option<&WebhookVerifier>,
    token: &str,
) -> anyhow::Result<Option<Outbound>> {
    let Some(path) = &cfg.outbound else {
        return Ok(None);
    };
    let file = OutboundFile::load(path, std::env::var("EXOTEL_API_TOKEN").ok())?;
    let (provider, fake, verifier) = match &file.provider {
        ProviderKind::Twilio => {
            let (client, fake) = super::pool::rest_client(cfg, "campaign calls go").await?;
            if let Some(f) = &fake {
                f.sign_callbacks_with(token);
            }
            let p: Arc<dyn OutboundProvider> = Arc::new(TwilioProvider::new(client));
            (p, fake, verifier.cloned())
        }
        // Exotel does not sign its callbacks.
        ProviderKind::Exotel(account) => (exotel(account)?, None, None),
    };
    let store: Arc<dyn CampaignStore> = Arc::new(store.clone());
    let mut settings = CampaignSettings::new(
        public_url,
        store,
        provider.clone(),
        file.rate,
        file.free_agents,
    )
    .suppression(file.suppression.clone());
    for (number, limit) in &file.caller_ids {
        settings = settings.caller_id(number.clone(), *limit);
    }
    if let Some(v) = verifier {
        settings = settings.verifier(v);
    }
    let app = CampaignApp::new(settings);
    let pacer = spawn_pacer(app.clone(), Duration::from_millis(file.pacer_interval_ms));
    let summary = format!(
        "outbound: {}{} with {} caller IDs, {} free agents, {} suppressed",
        provider.name(),
        fake.as_ref()
            .map(|f| format!(" (fake at {})", f.base_url))
            .unwrap_or_default(),
        file.caller_ids.len(),
        file.free_agents,
        file.suppression.len()
    );
    Ok(Some(Outbound {
        app,
        pacer,
        fake,
        summary,
    }))
}

fn exotel(account: &ExotelAccount) -> anyhow::Result<Arc<dyn OutboundProvider>> {
    let mut b = ExotelClient::builder(
        account.account_sid.clone(),
        account.api_key.clone(),
        account.api_token.clone(),
    );
    if account.mumbai {
        b = b.region(Region::Mumbai);
    }
    if let Some(url) = &account.base_url {
        b = b.base_url(url.clone());
    }
    let client = b.build().context("Exotel client")?;
    Ok(Arc::new(ExotelProvider::new(client, account.currency)))
}

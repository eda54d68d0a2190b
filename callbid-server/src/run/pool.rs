//! `callbid serve`'s agent pool: the `agents` key's file installed in the store, the
//! REST client desk accepts move calls with, and the pool as an auction buyer.

use std::sync::Arc;

use anyhow::{bail, Context};
use callbid_core::agents::{AgentPoolBuyer, AgentStore};
use callbid_core::{BuyerEntry, Destination, PhoneNumber};
use callbid_store::Store;
use callbid_twilio::rest::Client as TwilioClient;

use crate::agents_file::AgentsFile;
use crate::config::ServerConfig;
use crate::demo::fake_twilio::FakeTwilio;
use crate::ivr::AgentOffers;

/// What the pool adds to a server.
pub(crate) struct PoolSetup {
    /// For [`crate::ivr::Stores::agents`].
    pub(crate) offers: AgentOffers,
    /// The pool's auction entry, when it bids.
    pub(crate) entry: Option<BuyerEntry>,
    /// The fake Twilio Calls endpoint, when no account was configured.
    pub(crate) fake: Option<FakeTwilio>,
    /// One line for the startup banner.
    pub(crate) summary: String,
}

/// Loads and installs the pool named by `cfg.agents`; `None` without one.
pub(crate) async fn setup(
    cfg: &ServerConfig,
    store: &Store,
    in_house: Option<&PhoneNumber>,
) -> anyhow::Result<Option<PoolSetup>> {
    let Some(path) = &cfg.agents else {
        return Ok(None);
    };
    let file = AgentsFile::load(path)?;
    let agents: Arc<dyn AgentStore> = Arc::new(store.clone());
    file.install(agents.as_ref())
        .await
        .with_context(|| format!("cannot store the agent pool of agents {}", path.display()))?;
    let (twilio, fake) = rest_client(cfg, "desk accepts move calls").await?;
    let entry = if file.bids() {
        let line = match (&file.line, in_house) {
            (Some(l), _) => l.clone(),
            (None, Some(n)) => Destination::Phone(n.clone()),
            (None, None) => bail!(
                "invalid agents {}: a pool that bids needs pool.line or in_house_number",
                path.display()
            ),
        };
        let b = AgentPoolBuyer::new(
            file.pool.buyer.clone(),
            file.pool.id.clone(),
            line,
            agents.clone(),
        );
        Some(BuyerEntry::new(Arc::new(b)))
    } else {
        None
    };
    if entry.is_none()
        && !cfg
            .fallback
            .split(',')
            .any(|s| matches!(s.trim(), "in-house" | "in_house"))
    {
        eprintln!(
            "WARN agents {}: the pool has no bid and the fallback {:?} has no in-house step, so no call will ever be offered to it (add in-house to fallback, or bid in the pool file)",
            path.display(),
            cfg.fallback
        );
    }
    if file.agents.is_empty() {
        eprintln!("WARN agents {}: the pool has no agents", path.display());
    }
    let logged_in = file.agents.iter().filter(|(_, l)| *l).count();
    let summary = format!(
        "agent pool {}: {} agents ({logged_in} logged in at start){}",
        file.pool.id,
        file.agents.len(),
        if entry.is_some() {
            ", bidding in the auction"
        } else {
            ""
        }
    );
    let offers =
        AgentOffers::new(agents, file.pool.id.clone(), file.pool.buyer.clone()).with_twilio(twilio);
    Ok(Some(PoolSetup {
        offers,
        entry,
        fake,
        summary,
    }))
}

/// The configured Twilio account, or the built-in fake of the Calls endpoint.
pub(super) async fn rest_client(
    cfg: &ServerConfig,
    purpose: &str,
) -> anyhow::Result<(TwilioClient, Option<FakeTwilio>)> {
    let token = cfg.auth_token.as_deref().filter(|t| !t.trim().is_empty());
    match (&cfg.account_sid, token) {
        (Some(sid), Some(token)) => {
            let mut b = TwilioClient::builder(sid.clone()).auth_token(token);
            if let Some(url) = &cfg.twilio_api_url {
                b = b.api_base_url(url.clone());
            }
            Ok((b.build().context("Twilio REST client")?, None))
        }
        (Some(sid), None) => bail!("invalid account_sid {sid:?}: the REST client also needs auth_token (or TWILIO_AUTH_TOKEN)"),
        (None, _) => {
            if let Some(url) = &cfg.twilio_api_url {
                bail!("invalid twilio_api_url {url:?}: it needs account_sid and auth_token");
            }
            let (sid, token) = ("AC00000000000000000000000000000000", "fake-auth-token");
            let f = FakeTwilio::start(([127, 0, 0, 1], 0).into(), sid, token)
                .await
                .context("cannot start the fake Twilio API")?;
            eprintln!(
                "no account_sid: {purpose} through a built-in fake of Twilio's Calls API at {} (see {}/fake/requests)",
                f.base_url, f.base_url
            );
            let c = TwilioClient::builder(sid)
                .auth_token(token)
                .api_base_url(f.base_url.clone())
                .build()
                .context("Twilio REST client")?;
            Ok((c, Some(f)))
        }
    }
}

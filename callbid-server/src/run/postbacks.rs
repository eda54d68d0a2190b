//! `callbid serve`'s publisher postbacks: the `postbacks` key's file, the call log that
//! enqueues a delivery with each billable settlement, and the delivery worker.

use std::sync::Arc;

use anyhow::Context;
use callbid_core::state::{CallLog, PostbackOutbox};
use callbid_store::Store;

use crate::config::ServerConfig;
use crate::postback::worker::{PostbackTask, PostbackWorker};
use crate::postback::{file, PostbackConfig, PostbackLog};

/// The loaded postback configuration over the store's outbox.
pub(crate) struct Postbacks {
    config: Arc<PostbackConfig>,
    outbox: Arc<dyn PostbackOutbox>,
    /// One line for the startup banner.
    pub(crate) summary: String,
}

/// Loads the file named by `cfg.postbacks`; `None` without one.
pub(crate) fn setup(cfg: &ServerConfig, store: &Store) -> anyhow::Result<Option<Postbacks>> {
    let Some(path) = &cfg.postbacks else {
        return Ok(None);
    };
    load(path, store).map(Some)
}

/// Loads the `postbacks.toml` at `path` over `store`'s outbox.
pub(crate) fn load(path: &std::path::Path, store: &Store) -> anyhow::Result<Postbacks> {
    let config = file::load(path).with_context(|| "invalid postbacks".to_owned())?;
    let names: Vec<&str> = config.endpoints.keys().map(String::as_str).collect();
    let summary = format!("postbacks to: {}", names.join(", "));
    Ok(Postbacks {
        config: Arc::new(config),
        outbox: Arc::new(store.clone()),
        summary,
    })
}

impl Postbacks {
    /// `log`, enqueueing a postback before each billable `billing` event.
    pub(crate) fn wrap(&self, log: Arc<dyn CallLog>) -> Arc<dyn CallLog> {
        Arc::new(PostbackLog::new(
            log,
            self.outbox.clone(),
            self.config.clone(),
        ))
    }

    /// Starts the delivery worker, reading calls from `log`.
    pub(crate) fn start(&self, log: Arc<dyn CallLog>) -> anyhow::Result<PostbackTask> {
        let w = PostbackWorker::new(self.config.clone(), self.outbox.clone(), log)
            .context("cannot build the postback HTTP client")?;
        Ok(w.spawn())
    }
}

//! What a dispatcher needs of the bridge — its configuration, the stores, its wake-up, the
//! waiting reasons it reports, its metrics and the shutdown signal — and nothing of the HTTP
//! side, so a dispatcher can be built (and its pieces tested) without the web application.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use openclaw_common::store::Stores;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::BridgeConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct DispatchContext {
    pub config: Arc<BridgeConfig>,
    pub client: async_nats::Client,
    pub stores: Arc<OnceLock<Stores>>,
    /// Wakes the dispatcher when a task was queued, so it does not wait for its next poll.
    pub dispatch_wakeup: Arc<Notify>,
    /// Why each agent's tasks wait, as the dispatcher last saw it (`/ready` reports these).
    pub dispatch_waiting: Arc<Mutex<BTreeMap<String, String>>>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

impl DispatchContext {
    /// The stores, or why they cannot be used now.
    pub fn stores(&self) -> Result<&Stores, ApiError> {
        ready_stores(&self.client, &self.stores)
    }
}

/// The stores, or 503 while NATS is down or JetStream is not set up yet: the one rule every
/// user of the stores in the bridge follows.
pub fn ready_stores<'a>(
    client: &async_nats::Client,
    stores: &'a OnceLock<Stores>,
) -> Result<&'a Stores, ApiError> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return Err(ApiError::Unavailable(
            "NATS is not connected; retry later".into(),
        ));
    }
    stores.get().ok_or_else(|| {
        ApiError::Unavailable("JetStream streams are not set up yet; retry later".into())
    })
}

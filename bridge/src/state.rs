//! State shared by every handler.

use std::sync::{Arc, OnceLock};

use openclaw_common::store::Stores;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::BridgeConfig;
use crate::error::ApiError;

/// What every handler and background task shares. Cloned per request by each middleware
/// layer and handler, so it is one reference count, not a dozen.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// Read-only configuration.
    pub config: Arc<BridgeConfig>,
    /// The NATS connection; its state is checked per request so an outage answers 503 at once
    /// instead of waiting for a timeout.
    pub client: async_nats::Client,
    /// The stores, set once JetStream setup has succeeded (it retries in the background while
    /// NATS is unreachable at start).
    pub stores: Arc<OnceLock<Stores>>,
    /// Wakes the dispatcher when a task was queued, so it does not wait for its next poll.
    pub dispatch_wakeup: Arc<Notify>,
    /// Wakes the JetStream set-up loop (when `/ready` finds a stream missing).
    pub setup_wakeup: Arc<Notify>,
    /// Cancelled at shutdown; ends open SSE streams so graceful shutdown can complete.
    pub shutdown: CancellationToken,
    /// When the bridge started, for `/status`'s uptime.
    pub started: std::time::Instant,
    /// The same as a Unix time, for `/v1/models`.
    pub started_unix: i64,
    /// GitHub, when configured: webhook answers and permission checks.
    pub github: Option<Arc<crate::webhooks::door::GitHubDoor>>,
    /// GitLab, when configured.
    pub gitlab: Option<Arc<crate::webhooks::door::GitLabDoor>>,
    /// Counters and gauges served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Why each agent's tasks wait, as the dispatcher last saw it (empty: nothing in the way);
    /// `/ready` reports dispatch as degraded with these.
    pub dispatch_waiting: Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
    /// Spans of task submissions, when tracing is configured (`LANGFUSE_*`, `OTEL_*`).
    pub tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
    /// When a task was last submitted (or the bridge started), for `/status`.
    pub last_activity: Arc<std::sync::Mutex<time::OffsetDateTime>>,
    /// Who may call: the gateway token and the tokens file.
    pub principals: Arc<crate::principals::Principals>,
}

impl Shared {
    /// Records activity now (for `/status`).
    pub fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = openclaw_common::now();
        }
    }

    /// The stores, or 503 while NATS is down or JetStream is not set up yet.
    pub fn stores(&self) -> Result<&Stores, ApiError> {
        crate::dispatch::context::ready_stores(&self.client, &self.stores)
    }
}

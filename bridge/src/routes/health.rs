use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process answers. Never authenticated, never touches NATS.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness (no token needed): NATS connected and the streams and buckets exist (a bucket is a stream named
/// `KV_<bucket>`); 503 with the reason otherwise.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stores = state.stores()?;
    stores.check_streams().await.map_err(|e| {
        // Have what is missing recreated now rather than at the next periodic check.
        state.setup_wakeup.notify_one();
        ApiError::Unavailable(e.to_string())
    })?;
    // Dispatch trouble does not make the bridge unready (a restart would not help); it is
    // reported, with the reasons the waiting tasks were given.
    let waiting = state
        .dispatch_waiting
        .lock()
        .map(|w| w.clone())
        .unwrap_or_default();
    if waiting.is_empty() {
        Ok(Json(json!({ "status": "ready", "dispatch": "ok" })))
    } else {
        Ok(Json(
            json!({ "status": "ready", "dispatch": "degraded", "waiting": waiting }),
        ))
    }
}

/// Prometheus metrics (text format).
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let connected = state.client.connection_state() == async_nats::connection::State::Connected;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(connected),
    )
}

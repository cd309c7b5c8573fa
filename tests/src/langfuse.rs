//! A stand-in for Langfuse's ingestion API (Langfuse itself needs Postgres and ClickHouse and
//! cannot run here): records every batch and the credentials it came with, answers 207 as
//! Langfuse does.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
struct Recorded {
    batches: Vec<Value>,
    auth: Vec<Option<String>>,
}

pub struct FakeLangfuse {
    pub url: String,
    recorded: Arc<Mutex<Recorded>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeLangfuse {
    pub async fn start() -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let app = axum::Router::new()
            .route("/api/public/ingestion", post(ingest))
            .with_state(recorded.clone());
        let (url, server) = crate::serve(app).await;
        Self {
            url,
            recorded,
            server,
        }
    }

    /// Every event of every batch, in order.
    pub fn events(&self) -> Vec<Value> {
        let r = self.recorded.lock().expect("lock");
        r.batches
            .iter()
            .flat_map(|b| b["batch"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    pub fn auth_headers(&self) -> Vec<Option<String>> {
        self.recorded.lock().expect("lock").auth.clone()
    }
}

impl Drop for FakeLangfuse {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn ingest(
    State(recorded): State<Arc<Mutex<Recorded>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let ids: Vec<Value> = body["batch"]
        .as_array()
        .map(|b| {
            b.iter()
                .map(|e| json!({"id": e["id"], "status": 201}))
                .collect()
        })
        .unwrap_or_default();
    let mut r = recorded.lock().expect("lock");
    r.auth.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    r.batches.push(body);
    (
        StatusCode::MULTI_STATUS,
        Json(json!({"successes": ids, "errors": []})),
    )
}

/// Standard base64 (for expected Basic auth headers).
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

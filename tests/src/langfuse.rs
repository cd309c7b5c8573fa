//! A stand-in for an OTLP trace receiver — Langfuse v4's (`/api/public/otel/v1/traces`) or any
//! collector's (`/v1/traces`); Langfuse itself needs Postgres and ClickHouse and cannot run
//! here. It decodes what it receives with the OTLP protobuf definitions (`opentelemetry-proto`),
//! records each request's path and headers, and answers as a receiver does (200), or with a
//! status a test chooses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde_json::Value;

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// Attribute values as JSON (strings, numbers, booleans, arrays).
    pub attributes: HashMap<String, Value>,
    /// 2 for an error status.
    pub status_code: i32,
    pub status_message: String,
    pub events: Vec<String>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    pub fn str(&self, key: &str) -> &str {
        self.attr(key).and_then(Value::as_str).unwrap_or_default()
    }

    /// Langfuse's observation type (`agent`, `generation`, `tool`, `span`).
    pub fn kind(&self) -> &str {
        self.str("langfuse.observation.type")
    }
}

/// One export request as received.
#[derive(Debug, Clone)]
pub struct Export {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub spans: Vec<ReceivedSpan>,
}

#[derive(Default)]
struct Recorded {
    exports: Vec<Export>,
    /// The status answered (200 unless a test sets another).
    answer: Option<StatusCode>,
}

pub struct FakeLangfuse {
    pub url: String,
    recorded: Arc<Mutex<Recorded>>,
    server: tokio::task::JoinHandle<()>,
}

fn value(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Value {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::from(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::BoolValue(b)) => Value::from(*b),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| value(&Some(v.clone()))).collect())
        }
        _ => Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FakeLangfuse {
    pub async fn start() -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let app = axum::Router::new()
            .route("/api/public/otel/v1/traces", post(receive))
            .route("/v1/traces", post(receive))
            .with_state(recorded.clone());
        let (url, server) = crate::serve(app).await;
        Self {
            url,
            recorded,
            server,
        }
    }

    /// Answers every later export with `status` (a refusing Langfuse).
    pub fn answer(&self, status: u16) {
        self.recorded.lock().expect("lock").answer = StatusCode::from_u16(status).ok();
    }

    /// Every export request received, in order.
    pub fn exports(&self) -> Vec<Export> {
        self.recorded.lock().expect("lock").exports.clone()
    }

    /// Every span received, in order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.exports().into_iter().flat_map(|e| e.spans).collect()
    }
}

impl Drop for FakeLangfuse {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(recorded): State<Arc<Mutex<Recorded>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = Vec::new();
    for resource in &request.resource_spans {
        for scope in &resource.scope_spans {
            for s in &scope.spans {
                spans.push(ReceivedSpan {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), value(&kv.value)))
                        .collect(),
                    status_code: s.status.as_ref().map_or(0, |st| st.code),
                    status_message: s
                        .status
                        .as_ref()
                        .map(|st| st.message.clone())
                        .unwrap_or_default(),
                    events: s.events.iter().map(|e| e.name.clone()).collect(),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                });
            }
        }
    }
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut recorded = recorded.lock().expect("lock");
    recorded.exports.push(Export {
        path: uri.path().to_owned(),
        headers,
        spans,
    });
    recorded.answer.unwrap_or(StatusCode::OK)
}

/// Standard base64, for the expected Basic credentials.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

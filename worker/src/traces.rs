//! Traces of task attempts over OpenTelemetry (OTLP over HTTP, protobuf), to Langfuse and/or any
//! OTLP collector, in Langfuse v4's observations-first shape:
//!
//! - one trace per task: its id is the task's UUID, so every attempt (and the bridge's submit
//!   span, whose `traceparent` travels on the task message) lands in one trace;
//! - a root observation per attempt (`agent`), with the prompt as input and the summary as
//!   output, the session, the tags (agent, model), environment and release;
//! - a `generation` per model call (model, input and output — cut to [`MAX_IO_BYTES`] —, usage
//!   and cost details, completion start time, `ERROR` level when it failed), a `tool` per tool
//!   call (`WARNING` when refused), and spans for clone, commit and push.
//!
//! Spans are exported in batches while the task runs (every second), flushed when the attempt
//! ends; the queue is bounded and a full one drops spans rather than wait. Tracing never blocks
//! or fails a task: an endpoint that refuses or cannot be reached is logged once per attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use openclaw_common::config::Secret;
use openclaw_common::task::TaskSpec;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

/// Longest input or output text put on an observation; longer ones are cut with a marker.
pub const MAX_IO_BYTES: usize = 16 * 1024;

/// One place traces go.
#[derive(Clone)]
pub struct TraceTarget {
    /// For logs: `langfuse` or `otlp`.
    pub name: &'static str,
    /// The traces endpoint; `None`: the exporter's own `OTEL_EXPORTER_OTLP_*` settings.
    pub endpoint: Option<String>,
    /// Headers sent with every export (Langfuse: Basic auth and the ingestion version).
    pub headers: Vec<(String, Secret)>,
}

impl std::fmt::Debug for TraceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceTarget")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Where traces go: Langfuse (`LANGFUSE_HOST` and keys), any OTLP collector
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` / `_TRACES_ENDPOINT`, with `OTEL_EXPORTER_OTLP_HEADERS`), or
/// both.
#[derive(Debug, Clone, Default)]
pub struct TracingConfig {
    pub targets: Vec<TraceTarget>,
    /// `OPENCLAW_ENVIRONMENT` (Langfuse's environment), e.g. `production`.
    pub environment: Option<String>,
}

impl TracingConfig {
    /// Langfuse v4 takes OTLP at `/api/public/otel/v1/traces` with Basic auth (public:secret)
    /// and `x-langfuse-ingestion-version: 4`.
    pub fn langfuse(host: &str, public_key: &str, secret_key: &Secret) -> TraceTarget {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{public_key}:{}", secret_key.expose()));
        TraceTarget {
            name: "langfuse",
            endpoint: Some(format!(
                "{}/api/public/otel/v1/traces",
                host.trim_end_matches('/')
            )),
            headers: vec![
                (
                    "authorization".into(),
                    Secret::new(format!("Basic {basic}")),
                ),
                ("x-langfuse-ingestion-version".into(), Secret::new("4")),
            ],
        }
    }

    pub fn is_on(&self) -> bool {
        !self.targets.is_empty()
    }
}

/// Sends the exporter's requests with the worker's reqwest client on the tokio runtime (the
/// batch processor exports from its own thread), and logs a refusing or unreachable endpoint
/// once per attempt, with its status code.
#[derive(Debug, Clone)]
struct Transport {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    target: &'static str,
    reported: Arc<AtomicBool>,
    /// The target's own headers, which replace all others but the content ones: the exporter
    /// adds `OTEL_EXPORTER_OTLP_HEADERS` to every target, and a collector's credentials must
    /// not travel to Langfuse.
    fixed_headers: Option<Vec<(String, Secret)>>,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Transport {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let fixed = self.fixed_headers.clone();
        let (parts, body) = request.into_parts();
        let sent = self
            .runtime
            .spawn(async move {
                let mut req = client
                    .request(parts.method, parts.uri.to_string())
                    .body(body);
                for (name, value) in &parts.headers {
                    if fixed.is_none() || name.as_str().starts_with("content-") {
                        req = req.header(name, value);
                    }
                }
                for (name, value) in fixed.iter().flatten() {
                    req = req.header(name.as_str(), value.expose());
                }
                let response = req.send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await;
        let once = |what: String| {
            if !self.reported.swap(true, Ordering::SeqCst) {
                tracing::warn!(target_name = self.target, "traces not delivered: {what}");
            }
        };
        match sent {
            Ok(Ok((status, body))) => {
                if !status.is_success() {
                    once(format!("HTTP {status}"));
                }
                let mut response = http::Response::new(body);
                *response.status_mut() = status;
                Ok(response)
            }
            Ok(Err(e)) => {
                once(format!("cannot reach the endpoint: {e}"));
                Err(Box::new(e))
            }
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// The spans of one task attempt.
pub struct Tracer {
    /// `None`: tracing is off, and every call is a no-op.
    inner: Option<Inner>,
}

struct Inner {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    /// The attempt's root observation, ended at [`Tracer::finish`].
    root: opentelemetry_sdk::trace::Span,
    /// The context children hang from.
    parent: Context,
}

/// `text` cut to [`MAX_IO_BYTES`], with a marker when cut.
fn cut(text: &str) -> String {
    let mut out = text.to_owned();
    openclaw_common::event::truncate_marked(&mut out, MAX_IO_BYTES);
    out
}

fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

fn iso(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A W3C `traceparent` header value: `00-<trace id>-<span id>-<flags>`.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

impl Tracer {
    /// Whether anything is recorded (inputs worth serializing).
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// A tracer that records nothing.
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// Starts the trace of one attempt of `spec`: the root observation, in the task's trace
    /// (its UUID), under the bridge's submit span when the message carried its `traceparent`.
    pub fn start(
        config: &TracingConfig,
        spec: &TaskSpec,
        attempt: u32,
        model: &str,
        traceparent: Option<SpanContext>,
    ) -> Self {
        if !config.is_on() {
            return Self::off();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Self::off();
        };
        let Ok(client) = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        else {
            return Self::off();
        };
        let mut builder = SdkTracerProvider::builder().with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("openclaw-worker")
                .with_attribute(kv("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        for target in &config.targets {
            let transport = Transport {
                client: client.clone(),
                runtime: runtime.clone(),
                target: target.name,
                reported: Arc::new(AtomicBool::new(false)),
                fixed_headers: (!target.headers.is_empty()).then(|| target.headers.clone()),
            };
            let headers: HashMap<String, String> = target
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect();
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(transport)
                .with_timeout(Duration::from_secs(10));
            if !headers.is_empty() {
                exporter = exporter.with_headers(headers);
            }
            if let Some(endpoint) = &target.endpoint {
                exporter = exporter.with_endpoint(endpoint.clone());
            }
            match exporter.build() {
                Ok(exporter) => {
                    let processor = BatchSpanProcessor::builder(exporter)
                        .with_batch_config(
                            BatchConfigBuilder::default()
                                .with_scheduled_delay(Duration::from_secs(1))
                                .with_max_queue_size(4096)
                                .build(),
                        )
                        .build();
                    builder = builder.with_span_processor(processor);
                }
                Err(e) => tracing::warn!(target_name = target.name, error = %e, "traces are off"),
            }
        }
        let provider = builder.build();
        let tracer = provider.tracer("openclaw-worker");
        let task_trace = TraceId::from_bytes(spec.id.to_bytes());
        let parent = match traceparent.filter(|p| p.trace_id() == task_trace) {
            Some(remote) => Context::new().with_remote_span_context(remote),
            None => Context::new(),
        };
        let mut attributes = vec![
            kv("langfuse.observation.type", "agent"),
            kv("langfuse.observation.input", cut(&spec.prompt)),
            kv("langfuse.release", env!("CARGO_PKG_VERSION")),
            kv("openclaw.task_id", spec.id.to_string()),
            kv("openclaw.attempt", i64::from(attempt)),
            KeyValue::new(
                "langfuse.trace.tags",
                Value::Array(opentelemetry::Array::String(vec![
                    spec.agent.to_string().into(),
                    model.to_owned().into(),
                ])),
            ),
            kv("langfuse.trace.name", format!("openclaw {}", spec.agent)),
        ];
        if let Some(env) = &config.environment {
            attributes.push(kv("langfuse.environment", env.clone()));
        }
        if let Some(session) = spec.metadata.get("session").and_then(|v| v.as_str()) {
            attributes.push(kv("session.id", session.to_owned()));
        }
        if let Some(user) = spec.metadata.get("user").and_then(|v| v.as_str()) {
            attributes.push(kv("user.id", user.to_owned()));
        }
        let mut span_builder = tracer
            .span_builder(format!("openclaw {} (attempt {attempt})", spec.agent))
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes);
        span_builder.trace_id = Some(task_trace);
        let root = tracer.build_with_context(span_builder, &parent);
        let parent = Context::new().with_remote_span_context(root.span_context().clone());
        Self {
            inner: Some(Inner {
                provider,
                tracer,
                root,
                parent,
            }),
        }
    }

    /// A finished child observation of `kind` (`generation`, `tool`, `span`).
    fn child(
        &self,
        name: String,
        kind: &'static str,
        start: SystemTime,
        end: SystemTime,
        mut attributes: Vec<KeyValue>,
        problem: Option<(&'static str, String)>,
    ) {
        let Some(inner) = &self.inner else { return };
        attributes.push(kv("langfuse.observation.type", kind));
        if let Some((level, message)) = &problem {
            attributes.push(kv("langfuse.observation.level", *level));
            attributes.push(kv("langfuse.observation.status_message", message.clone()));
        }
        let builder = inner
            .tracer
            .span_builder(name)
            .with_start_time(start)
            .with_attributes(attributes);
        let mut span = inner.tracer.build_with_context(builder, &inner.parent);
        if let Some(("ERROR", message)) = problem {
            span.set_status(Status::error(message));
        }
        span.end_with_timestamp(end);
    }

    /// One model call: what it was asked (the messages, cut) and answered, its usage and cost.
    #[allow(clippy::too_many_arguments)]
    pub fn generation(
        &self,
        model: &str,
        started: SystemTime,
        latency: Duration,
        first_token: Option<Duration>,
        input: &str,
        output: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_usd: Option<f64>,
        error: Option<&str>,
    ) {
        if self.inner.is_none() {
            return;
        }
        let mut attributes = vec![
            kv("gen_ai.request.model", model.to_owned()),
            kv("langfuse.observation.model.name", model.to_owned()),
            kv("langfuse.observation.input", cut(input)),
            kv("langfuse.observation.output", cut(output)),
            kv("gen_ai.usage.input_tokens", prompt_tokens as i64),
            kv("gen_ai.usage.output_tokens", completion_tokens as i64),
            kv(
                "langfuse.observation.usage_details",
                serde_json::json!({"input": prompt_tokens, "output": completion_tokens,
                                   "total": prompt_tokens + completion_tokens})
                .to_string(),
            ),
        ];
        if let Some(cost) = cost_usd {
            attributes.push(kv(
                "langfuse.observation.cost_details",
                serde_json::json!({"total": cost}).to_string(),
            ));
        }
        if let Some(first) = first_token {
            attributes.push(kv(
                "langfuse.observation.completion_start_time",
                iso(started + first),
            ));
        }
        self.child(
            format!("chat {model}"),
            "generation",
            started,
            started + latency,
            attributes,
            error.map(|e| ("ERROR", e.to_owned())),
        );
    }

    /// One tool call; a refused or failed one is a `WARNING`.
    pub fn tool(&self, name: &str, arguments: &str, output: &str, ok: bool, started: SystemTime) {
        self.child(
            format!("tool {name}"),
            "tool",
            started,
            SystemTime::now(),
            vec![
                kv("langfuse.observation.input", cut(arguments)),
                kv("langfuse.observation.output", cut(output)),
            ],
            (!ok).then(|| ("WARNING", cut(output))),
        );
    }

    /// A step of the attempt (clone, commit, push) from `started` until now.
    pub fn step(&self, name: &str, started: SystemTime, error: Option<&str>) {
        self.child(
            name.to_owned(),
            "span",
            started,
            SystemTime::now(),
            Vec::new(),
            error.map(|e| ("ERROR", e.to_owned())),
        );
    }

    /// Ends the attempt's root observation with its output (the summary) or its error, and
    /// sends what is still queued. Bounded: a stuck endpoint cannot hold the worker.
    pub async fn finish(self, output: Result<&str, &str>) {
        let Some(mut inner) = self.inner else { return };
        match output {
            Ok(summary) => inner
                .root
                .set_attribute(kv("langfuse.observation.output", cut(summary))),
            Err(reason) => {
                inner
                    .root
                    .set_attribute(kv("langfuse.observation.level", "ERROR"));
                inner
                    .root
                    .set_attribute(kv("langfuse.observation.status_message", cut(reason)));
                inner
                    .root
                    .add_event("failed", vec![kv("reason", cut(reason))]);
                inner.root.set_status(Status::error(cut(reason)));
            }
        }
        inner.root.end();
        let provider = inner.provider;
        let flushed = tokio::task::spawn_blocking(move || {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        });
        if tokio::time::timeout(Duration::from_secs(15), flushed)
            .await
            .is_err()
        {
            tracing::warn!("traces: the last batch did not go out in time");
        }
    }
}

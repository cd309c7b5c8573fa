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

use std::time::{Duration, SystemTime};

pub use openclaw_common::otel::{TracingConfig, parse_traceparent};
use openclaw_common::task::TaskSpec;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceId, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Longest input or output text put on an observation; longer ones are cut with a marker.
pub const MAX_IO_BYTES: usize = 16 * 1024;

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
        let Some(provider) = config.provider("openclaw-worker") else {
            return Self::off();
        };
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
        // Langfuse's user: who asked (the user acted for, else the principal).
        if let Some(by) = &spec.submitted_by {
            attributes.push(kv("user.id", by.who().to_owned()));
            attributes.push(kv("openclaw.principal", by.principal.clone()));
        } else if let Some(user) = spec.metadata.get("user").and_then(|v| v.as_str()) {
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
        attributes: Vec<KeyValue>,
        problem: Option<(&'static str, String)>,
    ) {
        self.child_with_events(name, kind, start, end, attributes, Vec::new(), problem);
    }

    /// [`Self::child`] with events (a generation's retries).
    #[allow(clippy::too_many_arguments)]
    fn child_with_events(
        &self,
        name: String,
        kind: &'static str,
        start: SystemTime,
        end: SystemTime,
        mut attributes: Vec<KeyValue>,
        events: Vec<(&'static str, Vec<KeyValue>)>,
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
        for (name, attributes) in events {
            span.add_event(name, attributes);
        }
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
        retries: &[String],
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
        let events = retries
            .iter()
            .map(|why| ("retry", vec![kv("reason", cut(why))]))
            .collect();
        self.child_with_events(
            format!("chat {model}"),
            "generation",
            started,
            started + latency,
            attributes,
            events,
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

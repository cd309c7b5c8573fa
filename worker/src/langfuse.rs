//! Langfuse tracing, when `LANGFUSE_HOST`, `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` are
//! set: a trace per task (its id is the task id, so attempts add to one trace), a generation
//! per model call with model, tokens and latency, and errors as events. Sent through Langfuse's
//! ingestion API (`POST /api/public/ingestion`, Basic auth) in one batch when the attempt ends.
//! Tracing never fails a task: a refused or unreachable Langfuse is logged and skipped.

use std::time::Duration;

use openclaw_common::config::Secret;
use openclaw_common::task::TaskSpec;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where traces go.
#[derive(Debug, Clone)]
pub struct LangfuseConfig {
    pub host: String,
    pub public_key: String,
    pub secret_key: Secret,
}

/// The observations of one task attempt, sent at [`Tracer::flush`].
pub struct Tracer {
    /// `None`: tracing is off; every call is a no-op.
    target: Option<(LangfuseConfig, reqwest::Client)>,
    trace_id: String,
    batch: Vec<Value>,
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn event(kind: &str, body: Value) -> Value {
    json!({"id": uuid::Uuid::now_v7().to_string(), "timestamp": ts(openclaw_common::now()),
           "type": kind, "body": body})
}

impl Tracer {
    /// Starts the trace of `spec` (or a no-op tracer without configuration).
    pub fn start(config: Option<&LangfuseConfig>, spec: &TaskSpec, attempt: u32) -> Self {
        let target = config.and_then(|c| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .ok()
                .map(|http| (c.clone(), http))
        });
        let mut tracer = Self {
            target,
            trace_id: spec.id.to_string(),
            batch: Vec::new(),
        };
        if tracer.target.is_some() {
            tracer.batch.push(event(
                "trace-create",
                json!({"id": tracer.trace_id, "name": format!("openclaw {}", spec.agent),
                       "timestamp": ts(spec.created_at), "input": spec.prompt,
                       "tags": ["openclaw", spec.agent.as_str()],
                       "metadata": {"repo": spec.repo, "push_branch": spec.push_branch, "attempt": attempt}}),
            ));
        }
        tracer
    }

    /// One model call.
    #[allow(clippy::too_many_arguments)]
    pub fn generation(
        &mut self,
        model: &str,
        started: OffsetDateTime,
        latency: Duration,
        prompt_tokens: u64,
        completion_tokens: u64,
        output: &str,
        tool_calls: &[String],
    ) {
        if self.target.is_none() {
            return;
        }
        let end = started + latency;
        self.batch.push(event(
            "generation-create",
            json!({"id": uuid::Uuid::now_v7().to_string(), "traceId": self.trace_id, "name": "chat-completion",
                   "model": model, "startTime": ts(started), "endTime": ts(end),
                   "completionStartTime": ts(started),
                   "usage": {"input": prompt_tokens, "output": completion_tokens,
                             "total": prompt_tokens + completion_tokens, "unit": "TOKENS"},
                   "output": {"content": output, "tool_calls": tool_calls}}),
        ));
    }

    /// An error of the task, as an event.
    pub fn error(&mut self, message: &str) {
        if self.target.is_none() {
            return;
        }
        self.batch.push(event(
            "event-create",
            json!({"id": uuid::Uuid::now_v7().to_string(), "traceId": self.trace_id, "name": "error",
                   "level": "ERROR", "statusMessage": message, "startTime": ts(openclaw_common::now())}),
        ));
    }

    /// The task's result on the trace.
    pub fn output(&mut self, output: &str) {
        if self.target.is_none() {
            return;
        }
        self.batch.push(event(
            "trace-create",
            json!({"id": self.trace_id, "output": output}),
        ));
    }

    /// Sends what was recorded. Failures are logged, never returned.
    pub async fn flush(&mut self) {
        let Some((config, http)) = &self.target else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let url = format!("{}/api/public/ingestion", config.host.trim_end_matches('/'));
        let sent = http
            .post(&url)
            .basic_auth(&config.public_key, Some(config.secret_key.expose()))
            .json(&json!({"batch": batch}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(events = batch.len(), "sent to Langfuse")
            }
            Ok(r) => tracing::warn!(status = %r.status(), "Langfuse refused the trace"),
            Err(e) => tracing::warn!(error = %e.without_url(), "Langfuse is unreachable"),
        }
    }
}

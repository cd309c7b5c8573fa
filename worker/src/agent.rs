//! The agent loop: ask the model, run the tools it calls, feed the results back, until it
//! answers without tool calls, a limit is reached, or the task is told to stop.

use std::time::Instant;

use openclaw_common::agents::Limits;
use openclaw_common::event::EventKind;
use openclaw_common::ids::TaskId;
use openclaw_common::store::{EventWriter, StatusStore, StoreError};
use tokio_util::sync::CancellationToken;

use crate::llm::{ChatMessage, LlmClient, LlmError, Turn};
use crate::secrets::Secrets;
use crate::tools::{MAX_ARGUMENT_BYTES, Toolbox};
use crate::traces::Tracer;

/// Why the loop stopped before the model finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `POST /v1/tasks/{id}/cancel`.
    Canceled,
    /// SIGTERM (spot interruption, scale-down): checkpoint and hand the task back.
    Terminated,
}

/// How the loop ended.
#[derive(Debug)]
pub enum LoopEnd {
    /// The model answered without tool calls; its answer is the summary.
    Answered(String),
    Stopped(Stop),
    /// A profile limit (steps, tokens, wall time) was reached.
    LimitReached(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where stop requests come from, checked between steps.
pub struct StopSignals {
    /// Cancelled by the SIGTERM handler.
    pub terminate: CancellationToken,
    /// Holds the cancel flag set by the bridge, and which attempt holds the task.
    pub status: StatusStore,
    pub task: TaskId,
    /// This attempt: a record claimed by a later one means stop, writing nothing more.
    pub attempt: u32,
}

impl StopSignals {
    pub async fn check(&self) -> Result<Option<Stop>, StoreError> {
        if self.terminate.is_cancelled() {
            return Ok(Some(Stop::Terminated));
        }
        let record = self.status.get(&self.task).await?;
        if record.as_ref().is_some_and(|s| s.attempts > self.attempt) {
            return Err(StoreError::Superseded(self.task));
        }
        let canceled = record.is_some_and(|s| s.cancel_requested);
        Ok(canceled.then_some(Stop::Canceled))
    }
}

/// One task's conversation with the model.
pub struct AgentLoop<'a> {
    pub llm: &'a LlmClient,
    pub tools: &'a Toolbox,
    pub events: &'a mut EventWriter,
    pub model: String,
    pub limits: &'a Limits,
    pub stop: &'a StopSignals,
    /// Records each model call as a generation and each tool call as a tool observation (a
    /// no-op when tracing is off).
    pub tracer: &'a Tracer,
    /// The worker's secrets: taken out of tool calls, tool output, streamed text and traces
    /// before they are published or sent on.
    pub secrets: &'a Secrets,
    /// This attempt's model calls, tokens and cost, added to as the loop goes.
    pub usage: &'a std::sync::Mutex<openclaw_common::status::Usage>,
}

impl AgentLoop<'_> {
    pub async fn run(&mut self, mut messages: Vec<ChatMessage>) -> Result<LoopEnd, AgentError> {
        let started = Instant::now();
        let tool_defs = self.tools.definitions();
        let mut tokens = 0u64;
        for _step in 0..self.limits.max_steps {
            if let Some(stop) = self.stop.check().await? {
                return Ok(LoopEnd::Stopped(stop));
            }
            if started.elapsed() > self.limits.max_wall() {
                return Ok(LoopEnd::LimitReached(format!(
                    "wall-time limit of {}s reached",
                    self.limits.max_wall_secs
                )));
            }
            let asked_at = std::time::SystemTime::now();
            let asked = std::time::Instant::now();
            let input = if self.tracer.is_on() {
                self.secrets
                    .redact(&serde_json::to_string(&messages).unwrap_or_default())
            } else {
                String::new()
            };
            let completion = match self.ask(&messages, &tool_defs).await {
                Ok(c) => c,
                Err(e) => {
                    self.tracer.generation(
                        &self.model,
                        asked_at,
                        asked.elapsed(),
                        None,
                        &input,
                        "",
                        0,
                        0,
                        None,
                        &[],
                        Some(&e.to_string()),
                    );
                    return Err(e);
                }
            };
            tokens += completion.prompt_tokens + completion.completion_tokens;
            if let Ok(mut usage) = self.usage.lock() {
                usage.model = Some(self.model.clone());
                usage.call(
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.cost_usd,
                );
            }
            let output = if completion.tool_calls.is_empty() {
                completion.content.clone()
            } else {
                serde_json::to_string(&completion.tool_calls).unwrap_or_default()
            };
            self.tracer.generation(
                &self.model,
                asked_at,
                completion.latency,
                completion.first_token,
                &input,
                &self.secrets.redact(&output),
                completion.prompt_tokens,
                completion.completion_tokens,
                completion.cost_usd,
                &completion.retries,
                None,
            );
            self.events
                .publish(EventKind::LlmUsage {
                    model: self.model.clone(),
                    prompt_tokens: completion.prompt_tokens,
                    completion_tokens: completion.completion_tokens,
                    latency_ms: completion.latency.as_millis() as u64,
                    cost_usd: completion.cost_usd,
                })
                .await?;
            messages.push(ChatMessage {
                role: "assistant".into(),
                content: (!completion.content.is_empty()).then(|| completion.content.clone()),
                // Arguments too large to run are not sent back with every later request.
                tool_calls: completion
                    .tool_calls
                    .iter()
                    .cloned()
                    .map(|mut call| {
                        let len = call.function.arguments.len();
                        if len > MAX_ARGUMENT_BYTES {
                            call.function.arguments = serde_json::json!({
                                "omitted": format!("arguments of {len} bytes, too large to run")
                            })
                            .to_string();
                        }
                        call
                    })
                    .collect(),
                tool_call_id: None,
            });
            if completion.tool_calls.is_empty() {
                // The answer becomes the summary, the status and the commit message.
                return Ok(LoopEnd::Answered(self.secrets.redact(&completion.content)));
            }
            if tokens > self.limits.max_tokens {
                return Ok(LoopEnd::LimitReached(format!(
                    "token limit of {} reached ({tokens} used)",
                    self.limits.max_tokens
                )));
            }
            let allowed = self.limits.max_tool_calls_per_answer as usize;
            if completion.tool_calls.len() > allowed {
                tracing::warn!(
                    calls = completion.tool_calls.len(),
                    allowed,
                    "the model asked for more tool calls in one answer than its profile allows"
                );
            }
            for (n, call) in completion.tool_calls.iter().enumerate() {
                if n >= allowed {
                    // Every call gets an answer (the protocol wants one per id); these are not
                    // run, nor recorded as events.
                    messages.push(ChatMessage::tool(
                        &call.id,
                        format!(
                            "error: not run: at most {allowed} tool calls per answer; ask again for what is still needed"
                        ),
                    ));
                    continue;
                }
                let shown_arguments = self.secrets.redact(&call.function.arguments);
                self.events
                    .publish(EventKind::ToolCall {
                        call_id: call.id.clone(),
                        name: call.function.name.clone(),
                        arguments: shown_arguments.clone(),
                    })
                    .await?;
                let tool_started = std::time::SystemTime::now();
                let result = self
                    .tools
                    .call(&call.function.name, &call.function.arguments)
                    .await;
                let (ok, output) = match result {
                    Ok(out) => (true, self.secrets.redact(&out)),
                    Err(err) => (false, self.secrets.redact(&format!("error: {err}"))),
                };
                self.events
                    .publish(EventKind::ToolResult {
                        call_id: call.id.clone(),
                        name: call.function.name.clone(),
                        ok,
                        output: output.clone(),
                    })
                    .await?;
                self.tracer.tool(
                    &call.function.name,
                    &shown_arguments,
                    &output,
                    ok,
                    tool_started,
                );
                messages.push(ChatMessage::tool(&call.id, output));
            }
        }
        Ok(LoopEnd::LimitReached(format!(
            "step limit of {} reached",
            self.limits.max_steps
        )))
    }

    /// One model call, relaying text deltas as `message` events while it streams. Deltas that
    /// arrive together are published as one event.
    async fn ask(
        &mut self,
        messages: &[ChatMessage],
        tool_defs: &[serde_json::Value],
    ) -> Result<crate::llm::Completion, AgentError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let llm = self.llm;
        let model = self.model.clone();
        let call = async move {
            let r = llm
                .complete(
                    Turn {
                        model: &model,
                        messages,
                        tools: tool_defs,
                    },
                    &tx,
                )
                .await;
            drop(tx);
            r
        };
        let events = &mut *self.events;
        // One redactor for the whole answer: a secret split across deltas is still found.
        let mut redactor = self.secrets.stream();
        let relay = async move {
            while let Some(mut delta) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    delta.push_str(&more);
                }
                let delta = redactor.push(&delta);
                if !delta.is_empty() {
                    events.publish(EventKind::Message { delta }).await?;
                }
            }
            let rest = redactor.finish();
            if !rest.is_empty() {
                events.publish(EventKind::Message { delta: rest }).await?;
            }
            Ok::<_, StoreError>(())
        };
        let (completion, relayed) = tokio::join!(call, relay);
        relayed?;
        Ok(completion?)
    }
}

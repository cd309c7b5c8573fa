//! The agent loop: ask the model, run the tools it calls, feed the results back, until it
//! answers without tool calls, a limit is reached, or the task is told to stop.

use std::time::Instant;

use openclaw_common::agents::Limits;
use openclaw_common::event::EventKind;
use openclaw_common::ids::TaskId;
use openclaw_common::store::{EventWriter, StatusStore, StoreError};
use tokio_util::sync::CancellationToken;

use openclaw_common::agents::Check;

use crate::budget::{Budget, Circling, StuckDetector};
use crate::context::{CONDENSE_AT, Conversation, ELIDE_AT};
use crate::git::TaskRepo;
use crate::llm::{ChatMessage, Completion, LlmClient, LlmError, Turn};
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
    /// A profile limit (steps, tokens, cost, wall time) was reached, or the model went in
    /// circles.
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
    /// The model's context window in tokens (the profile's, the gateway's, or the default).
    pub context_window: u64,
    /// Run when the model says it is done ([`crate::checks`]).
    pub checks: &'a [Check],
    /// The checkout whose diff the model reviews once before it is done, when the profile
    /// asks for that (`review_diff`).
    pub review: Option<&'a TaskRepo>,
}

/// Rounds of check failures sent back to the model before its answer is taken as it is.
const CHECK_ROUNDS: u32 = 2;
/// Most bytes of the diff shown for review.
const MAX_REVIEW_DIFF: usize = 12 * 1024;

impl AgentLoop<'_> {
    pub async fn run(&mut self, messages: Vec<ChatMessage>) -> Result<LoopEnd, AgentError> {
        let started = Instant::now();
        let tool_defs = self.tools.definitions();
        let mut convo = Conversation::new(messages);
        let mut budget = Budget::new(self.limits);
        let mut stuck = StuckDetector::default();
        let mut told_to_finish = false;
        let mut overflow_retried = false;
        let mut check_rounds = CHECK_ROUNDS;
        let mut reviewed = false;
        let max_steps = self.limits.max_steps;
        for step in 0..max_steps {
            if let Some(stop) = self.stop.check().await? {
                return Ok(LoopEnd::Stopped(stop));
            }
            if started.elapsed() > self.limits.max_wall() {
                return Ok(LoopEnd::LimitReached(format!(
                    "wall-time limit of {}s reached",
                    self.limits.max_wall_secs
                )));
            }
            // Two steps before a limit the model hears it, once: an answer beats a cut.
            let steps_left = max_steps - step;
            if !told_to_finish && (steps_left <= 2 || budget.nearly_spent()) {
                told_to_finish = true;
                convo.messages.push(ChatMessage::note(format!(
                    "You are close to this task's limits ({}). Finish now: make only the changes still needed, then answer with your summary of what you did and what is left, without calling tools.",
                    if steps_left <= 2 {
                        format!("{steps_left} model calls left")
                    } else {
                        "most of the token or cost budget is spent".to_owned()
                    }
                )));
            }
            self.fit(&mut convo, &mut budget, false).await?;
            let completion = match self.ask_traced(&convo.messages, &tool_defs).await {
                Err(AgentError::Llm(e)) if e.is_context_overflow() && !overflow_retried => {
                    // The estimate was wrong: shrink for real and ask again, once.
                    tracing::warn!(error = %e, "the gateway found the conversation too long; condensing and retrying");
                    overflow_retried = true;
                    self.fit(&mut convo, &mut budget, true).await?;
                    self.ask_traced(&convo.messages, &tool_defs).await?
                }
                other => other?,
            };
            convo.calibrate(completion.prompt_tokens);
            budget.conversation_call(&completion);
            self.count(&completion).await?;
            let reasoning =
                (!completion.reasoning.is_empty()).then(|| completion.reasoning.clone());
            if completion.cut_off() {
                // Cut at max_tokens: a half-written tool call must not run, a half-written
                // answer must not become the commit message.
                convo.messages.push(ChatMessage {
                    reasoning_content: reasoning,
                    ..ChatMessage::assistant(completion.content.clone())
                });
                convo.messages.push(ChatMessage::note(cut_off_note(
                    &completion,
                    self.limits.max_output_tokens,
                )));
                continue;
            }
            convo.messages.push(ChatMessage {
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
                reasoning_content: reasoning,
            });
            if completion.tool_calls.is_empty() {
                let problems =
                    crate::checks::run(self.tools, self.checks, &self.tools.touched()).await;
                if !problems.is_empty() && check_rounds > 0 {
                    check_rounds -= 1;
                    tracing::info!(problems = problems.len(), "the checks sent the work back");
                    convo.messages.push(ChatMessage::note(format!(
                        "Before this is committed, the checks found problems. Fix them, then answer again with your summary:\n{}",
                        crate::tools::output::head_and_tail(&problems.join("\n"), 8 * 1024)
                    )));
                    continue;
                }
                if let Some(repo) = self.review.filter(|_| !reviewed && problems.is_empty()) {
                    reviewed = true;
                    let repo = repo.clone();
                    let diff = tokio::task::spawn_blocking(move || {
                        crate::git::diff_text(&repo, MAX_REVIEW_DIFF)
                    })
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                    if !diff.trim().is_empty() {
                        convo.messages.push(ChatMessage::note(format!(
                            "Review your change before it is committed. If it is right, answer again with your final summary; if not, fix it first.\n```diff\n{}\n```",
                            self.secrets.redact(&diff)
                        )));
                        continue;
                    }
                }
                // The answer becomes the summary, the status and the commit message; checks
                // that still fail after their rounds are said in it.
                let mut summary = self.secrets.redact(&completion.content);
                if !problems.is_empty() {
                    summary.push_str(&format!(
                        "\n\nChecks still failing:\n{}",
                        crate::tools::output::head_and_tail(&problems.join("\n"), 2048)
                    ));
                }
                return Ok(LoopEnd::Answered(summary));
            }
            if let Some(reason) = budget.exceeded() {
                return Ok(LoopEnd::LimitReached(reason));
            }
            let mut nudges = Vec::new();
            for verdict in self.run_tools(&completion, &mut convo, &mut stuck).await? {
                match verdict {
                    Circling::Stop(reason) => return Ok(LoopEnd::LimitReached(reason)),
                    Circling::Nudge(text) => nudges.push(text),
                    Circling::No => {}
                }
            }
            if !nudges.is_empty() {
                convo.messages.push(ChatMessage::note(nudges.join("\n")));
            }
        }
        Ok(LoopEnd::LimitReached(format!(
            "step limit of {max_steps} reached"
        )))
    }

    /// Runs the answer's tool calls (at most the profile's number), each result recorded as
    /// an event and added to the conversation; what the stuck detector made of each.
    async fn run_tools(
        &mut self,
        completion: &Completion,
        convo: &mut Conversation,
        stuck: &mut StuckDetector,
    ) -> Result<Vec<Circling>, AgentError> {
        let allowed = self.limits.max_tool_calls_per_answer as usize;
        if completion.tool_calls.len() > allowed {
            tracing::warn!(
                calls = completion.tool_calls.len(),
                allowed,
                "the model asked for more tool calls in one answer than its profile allows"
            );
        }
        let mut verdicts = Vec::new();
        for (n, call) in completion.tool_calls.iter().enumerate() {
            if n >= allowed {
                // Every call gets an answer (the protocol wants one per id); these are not
                // run, nor recorded as events.
                convo.messages.push(ChatMessage::tool(
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
            let tools = self.tools;
            let result = crate::live::publishing(self.events, self.secrets, &call.id, |live| {
                tools.call_live(&call.function.name, &call.function.arguments, Some(live))
            })
            .await?;
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
            verdicts.push(stuck.observe(
                &call.function.name,
                &call.function.arguments,
                ok,
                &output,
            ));
            convo.messages.push(ChatMessage::tool(&call.id, output));
        }
        Ok(verdicts)
    }

    /// Keeps the conversation inside the context window: old tool results elided above
    /// [`ELIDE_AT`], the middle condensed above [`CONDENSE_AT`]; both at once when `forced`
    /// (the gateway refused the last request as too long).
    async fn fit(
        &mut self,
        convo: &mut Conversation,
        budget: &mut Budget,
        forced: bool,
    ) -> Result<(), AgentError> {
        let window = self.context_window as f64;
        if forced || convo.estimated_tokens() as f64 > ELIDE_AT * window {
            let saved = convo.elide_old_tool_results();
            tracing::info!(saved, "elided old tool results");
        }
        if !(forced || convo.estimated_tokens() as f64 > CONDENSE_AT * window) {
            return Ok(());
        }
        let Some(range) = convo.condense_range() else {
            return Ok(());
        };
        // The transcript fits a third of the window whatever it holds.
        let room = (window / 3.0 * 3.5) as usize;
        let each = (room / range.len().max(1)).clamp(200, 4000);
        let transcript =
            crate::tools::output::head_and_tail(&convo.transcript(range.clone(), each), room);
        let summary_request = [
            ChatMessage::system(CONDENSE_PROMPT),
            ChatMessage::user(transcript),
        ];
        let (tx, _ignored) = tokio::sync::mpsc::unbounded_channel();
        let completion = self
            .llm
            .complete(
                Turn {
                    model: &self.model,
                    messages: &summary_request,
                    tools: &[],
                    max_tokens: Some(self.limits.max_output_tokens.min(4096)),
                },
                &tx,
            )
            .await?;
        budget.side_call(&completion);
        self.count(&completion).await?;
        let before = convo.messages.len();
        convo.replace_with_summary(range, &self.secrets.redact(&completion.content));
        tracing::info!(
            messages_before = before,
            messages_after = convo.messages.len(),
            "condensed the conversation"
        );
        Ok(())
    }

    /// Adds a call to the attempt's usage and publishes its `llm_usage` event.
    async fn count(&mut self, completion: &Completion) -> Result<(), AgentError> {
        if let Ok(mut usage) = self.usage.lock() {
            usage.model = Some(self.model.clone());
            usage.call(
                completion.prompt_tokens,
                completion.completion_tokens,
                completion.cost_usd,
            );
        }
        self.events
            .publish(EventKind::LlmUsage {
                model: self.model.clone(),
                prompt_tokens: completion.prompt_tokens,
                completion_tokens: completion.completion_tokens,
                latency_ms: completion.latency.as_millis() as u64,
                cost_usd: completion.cost_usd,
                cached_tokens: completion.cached_tokens,
            })
            .await?;
        Ok(())
    }

    /// [`Self::ask`], recorded as a generation of the attempt's trace.
    async fn ask_traced(
        &mut self,
        messages: &[ChatMessage],
        tool_defs: &[serde_json::Value],
    ) -> Result<Completion, AgentError> {
        let asked_at = std::time::SystemTime::now();
        let asked = std::time::Instant::now();
        let input = if self.tracer.is_on() {
            self.secrets
                .redact(&serde_json::to_string(messages).unwrap_or_default())
        } else {
            String::new()
        };
        let completion = match self.ask(messages, tool_defs).await {
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
        Ok(completion)
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
        let max_tokens = self.limits.max_output_tokens;
        let call = async move {
            let r = llm
                .complete(
                    Turn {
                        model: &model,
                        messages,
                        tools: tool_defs,
                        max_tokens: Some(max_tokens),
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

/// What the model is told when its answer was cut at `max_tokens`.
fn cut_off_note(completion: &Completion, max_tokens: u32) -> String {
    if completion.tool_calls.is_empty() {
        format!(
            "Your answer was cut off at the output limit ({max_tokens} tokens). Answer again, shorter."
        )
    } else {
        let names: Vec<&str> = completion
            .tool_calls
            .iter()
            .map(|c| c.function.name.as_str())
            .collect();
        format!(
            "Your answer was cut off at the output limit ({max_tokens} tokens) while it was writing a call of {}; it was not run. Do the work in smaller pieces: several edit_file calls, or a file written in parts.",
            names.join(", ")
        )
    }
}

/// The instructions of the call that condenses a conversation.
const CONDENSE_PROMPT: &str = "You condense the working history of a coding agent so that it can continue its task with less context. Write a summary of the history you are given: what was asked, which files were read and what matters in them (paths, names, facts, line numbers), what was changed and how, what failed and why, and what is left to do. Keep exact paths and identifiers. Do not invent anything. Write plain text, at most about 600 words.";

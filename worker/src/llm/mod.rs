//! Client of an OpenAI-compatible chat-completions API (the LiteLLM gateway): streaming with
//! usage, tool calls, and retries with exponential backoff and jitter on 429, 5xx and
//! connection errors, honouring `Retry-After`.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::LlmConfig;

mod wire;

use wire::{parse_full, read_stream};

/// Streamed after the text of an answer that broke off and is asked again.
pub const BROKE_OFF: &str = "\n[… the answer broke off here; asking the model again …]\n";

/// Where an attempt's text deltas go, remembering whether any went.
pub struct DeltaSink<'a> {
    tx: &'a UnboundedSender<String>,
    sent: std::sync::atomic::AtomicBool,
}

impl<'a> DeltaSink<'a> {
    pub fn new(tx: &'a UnboundedSender<String>) -> Self {
        Self {
            tx,
            sent: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn send(&self, text: String) {
        self.sent.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send(text);
    }
}

/// How the worker's own messages to the model begin ([`ChatMessage::note`]).
pub const NOTE_PREFIX: &str = "[OpenClaw]";

/// One message of the conversation, in the OpenAI wire format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The model's reasoning that came with this (assistant) message, sent back with it:
    /// providers that think between tool calls want to see it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

impl ChatMessage {
    pub fn system(text: impl Into<String>) -> Self {
        Self::plain("system", text)
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self::plain("user", text)
    }
    /// A message of the worker's own to the model (a limit coming, a call cut off, a loop,
    /// a condensed history): a user message marked [`NOTE_PREFIX`], so that it reads as the
    /// harness's, not the person's.
    pub fn note(text: impl Into<String>) -> Self {
        Self::plain("user", format!("{NOTE_PREFIX} {}", text.into()))
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::plain("assistant", text)
    }
    pub fn tool(call_id: &str, text: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.to_owned()),
            ..Self::plain("tool", text)
        }
    }
    fn plain(role: &str, text: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning_content: None,
        }
    }
}

/// A tool call requested by the model. `arguments` is the raw JSON text the model produced,
/// which may be malformed: the tool layer reports that back to the model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// The model's answer to one request.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The call's price as the gateway reported it: `usage.cost` in a stream's final chunk
    /// (LiteLLM, asked with `include_usage`), or the `x-litellm-response-cost` header of a
    /// non-streamed answer. `None`: not reported.
    pub cost_usd: Option<f64>,
    pub latency: Duration,
    /// When the first streamed token came, from the request's start.
    pub first_token: Option<Duration>,
    /// The failures retried before this answer came, in order.
    pub retries: Vec<String>,
    /// Why the model stopped: `stop`, `tool_calls`, `length` (cut at `max_tokens`), …
    pub finish_reason: Option<String>,
    /// Prompt tokens the provider read from its prompt cache, when the gateway says.
    pub cached_tokens: Option<u64>,
    /// The model's reasoning text, when the provider returns it.
    pub reasoning: String,
}

impl Completion {
    /// Whether the answer was cut at the output limit.
    pub fn cut_off(&self) -> bool {
        self.finish_reason.as_deref() == Some("length")
    }
}

/// The cost LiteLLM puts in a non-streamed answer's headers.
pub fn cost_from_headers(headers: &reqwest::header::HeaderMap) -> Option<f64> {
    headers
        .get("x-litellm-response-cost")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|c| c.is_finite() && *c >= 0.0)
}

/// Why a model call failed. The variant names double as metric labels.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// 408, 409, 429, 5xx, connection trouble or a broken stream: worth another try.
    #[error("the model gateway at {gateway} (LITELLM_BASE_URL) is unavailable: {message}")]
    Transient {
        gateway: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx: the request itself is wrong (bad key, unknown model…).
    #[error(
        "the model gateway at {gateway} (LITELLM_BASE_URL) refused the request (HTTP {status}): {message}"
    )]
    Rejected {
        gateway: String,
        status: u16,
        message: String,
    },
    /// The response does not follow the API.
    #[error(
        "the model gateway at {gateway} (LITELLM_BASE_URL) sent an unreadable response: {message}"
    )]
    Malformed { gateway: String, message: String },
}

impl LlmError {
    /// A refusal because the request is longer than the model's context window (LiteLLM's
    /// `ContextWindowExceededError`, OpenAI's `context_length_exceeded`, Anthropic's and
    /// Bedrock's "prompt is too long" / "input is too long").
    pub fn is_context_overflow(&self) -> bool {
        let Self::Rejected {
            status: 400 | 413,
            message,
            ..
        } = self
        else {
            return false;
        };
        let m = message.to_ascii_lowercase();
        m.contains("contextwindowexceeded")
            || m.contains("context_length_exceeded")
            || m.contains("context window")
            || m.contains("maximum context length")
            || m.contains("prompt is too long")
            || m.contains("input is too long")
            || (m.contains("context") && m.contains("exceed"))
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    fn transient(message: String) -> Self {
        Self::Transient {
            gateway: String::new(),
            message,
            retry_after: None,
        }
    }

    fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed {
            gateway: String::new(),
            message: message.into(),
        }
    }

    /// The same error, naming the gateway it came from.
    fn at(mut self, base_url: &str) -> Self {
        let (Self::Transient { gateway, .. }
        | Self::Rejected { gateway, .. }
        | Self::Malformed { gateway, .. }) = &mut self;
        gateway.clear();
        gateway.push_str(base_url);
        self
    }
}

/// Asks the gateway what the worker would ask of it before a task, without spending tokens:
/// its model list (`GET /models`, OpenAI's contract, which LiteLLM serves), with the worker's
/// key. `Ok`: a line saying the gateway answers and serves `config.default_model`; `Err`: a line
/// saying what is wrong and which setting to look at. The key never appears in either.
pub async fn check_gateway(config: &LlmConfig) -> Result<String, String> {
    let url = format!("{}/models", config.base_url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut request = http.get(&url);
    if let Some(key) = &config.api_key {
        request = request.bearer_auth(key.expose());
    }
    let gateway = &config.base_url;
    let response = request.send().await.map_err(|e| {
        format!("gateway {gateway}: cannot connect ({e}); check LITELLM_BASE_URL, that the gateway runs, and that this pod may reach it (NetworkPolicy)")
    })?;
    let status = response.status();
    if !status.is_success() {
        // The gateway's own words, short. GET /models takes nothing but the key, so a 4xx
        // is about the key whatever it says (LiteLLM without a database answers an unknown
        // key "400 No connected db.").
        let body = response.text().await.unwrap_or_default();
        let said = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        let said: String = said.chars().take(300).collect();
        let about_key = status.is_client_error();
        return Err(format!(
            "gateway {gateway}: answered {status} to GET /models ({said}){}",
            if about_key {
                "; check LITELLM_API_KEY"
            } else {
                ""
            }
        ));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("gateway {gateway}: GET /models did not answer JSON ({e}): is LITELLM_BASE_URL a model gateway?"))?;
    let models: Vec<&str> = body["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    let model = &config.default_model;
    if models.iter().any(|m| m == model) {
        Ok(format!(
            "gateway {gateway}: answers, key accepted, serves {} models including {model}",
            models.len()
        ))
    } else {
        Err(format!(
            "gateway {gateway}: answers and accepts the key, but {model} is not one of its models ({}); check LITELLM_MODEL_NAME",
            models.join(", ")
        ))
    }
}

/// The chat-completions client.
#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
    /// Who the requests are for: OpenAI's `user` and LiteLLM's `metadata`, so the gateway's
    /// own spend tracking attributes them.
    requester: Option<(String, Value)>,
}

/// What one model turn is asked: the model, the conversation so far, the tools it may call.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    pub model: &'a str,
    pub messages: &'a [ChatMessage],
    pub tools: &'a [Value],
    /// Most tokens the answer may have (`max_tokens`); `None`: the provider's default.
    pub max_tokens: Option<u32>,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| LlmError::malformed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            config,
            requester: None,
        })
    }

    /// Requests name `task`'s requester: `user` is the user acted for (else the principal),
    /// `metadata` the task, principal, user and team.
    pub fn for_task(mut self, task: &openclaw_common::task::TaskSpec) -> Self {
        if let Some(by) = &task.submitted_by {
            let metadata = json!({
                "openclaw_task_id": task.id.to_string(),
                "openclaw_agent": task.agent.to_string(),
                "openclaw_principal": by.principal,
                "openclaw_user": by.user,
                "openclaw_team": by.team,
            });
            self.requester = Some((by.who().to_owned(), metadata));
        }
        self
    }

    /// The context window of `model` as LiteLLM's `/model/info` gives it (`max_input_tokens`
    /// of the entry named `model`), when the gateway answers that within a few seconds.
    pub async fn context_window(&self, model: &str) -> Option<u64> {
        let mut req = self
            .http
            .get(format!("{}/model/info", self.config.base_url))
            .timeout(Duration::from_secs(3));
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose());
        }
        let info: Value = req
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        info["data"]
            .as_array()?
            .iter()
            .find(|m| m["model_name"] == model)?
            .get("model_info")?
            .get("max_input_tokens")?
            .as_u64()
            .filter(|n| *n > 1000)
    }

    /// One model turn, retried on transient failure. Text deltas are sent to `deltas` as they
    /// stream in.
    pub async fn complete(
        &self,
        turn: Turn<'_>,
        deltas: &UnboundedSender<String>,
    ) -> Result<Completion, LlmError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_base)
            .with_max_delay(self.config.max_retry_delay)
            .with_max_times(self.config.max_retries)
            .with_jitter();
        let gateway = self.config.base_url.as_str();
        let retried = std::sync::Mutex::new(Vec::new());
        let sink = DeltaSink::new(deltas);
        let result = (|| async {
            self.complete_once(turn, &sink)
                .await
                .map_err(|e| e.at(gateway))
        })
        .retry(backoff)
        .when(LlmError::is_transient)
        .adjust(|err, planned| {
            // Retry-After, when the gateway sent one, replaces the planned delay; it never
            // grants a retry the policy has run out of.
            let hinted = match err {
                LlmError::Transient { retry_after, .. } => *retry_after,
                _ => None,
            };
            planned.map(|d| hinted.map_or(d, |h| h.min(self.config.max_retry_delay)))
        })
        .notify(|err, delay| {
            tracing::warn!(error = %err, ?delay, "model call failed; retrying");
            // The broken attempt's text was relayed already: say it broke off, so the text
            // the retry streams is not read as its continuation.
            if sink.sent.swap(false, std::sync::atomic::Ordering::SeqCst) {
                let _ = deltas.send(BROKE_OFF.to_owned());
            }
            if let Ok(mut r) = retried.lock() {
                r.push(err.to_string());
            }
        })
        .await;
        result.map(|mut completion| {
            completion.retries = retried.into_inner().unwrap_or_default();
            completion
        })
    }

    async fn complete_once(
        &self,
        Turn {
            model,
            messages,
            tools,
            max_tokens,
        }: Turn<'_>,
        deltas: &DeltaSink<'_>,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let mut body = json!({
            "model": model,
            "messages": with_cache_points(messages),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(max) = max_tokens {
            body["max_tokens"] = json!(max);
        }
        if let Some((user, metadata)) = &self.requester {
            body["user"] = json!(user);
            body["metadata"] = metadata.clone();
        }
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools.to_vec());
            body["tool_choice"] = json!("auto");
        }
        let mut req = self
            .http
            .post(format!("{}/chat/completions", self.config.base_url))
            .json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose());
        }
        let response = req
            .send()
            .await
            .map_err(|e| LlmError::transient(describe_reqwest(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64);
            let text = response.text().await.unwrap_or_default();
            // Some gateways echo the key they refused: it must not travel on in the error
            // (into logs, events and the status).
            let mut message = gateway_message(&text);
            if let Some(key) = self
                .config
                .api_key
                .as_ref()
                .map(|k| k.expose())
                .filter(|k| !k.is_empty())
            {
                message = message.replace(key, "[redacted]");
            }
            return Err(
                if matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error() {
                    LlmError::Transient {
                        gateway: String::new(),
                        message: format!("HTTP {status}: {message}"),
                        retry_after,
                    }
                } else {
                    LlmError::Rejected {
                        gateway: String::new(),
                        status: status.as_u16(),
                        message,
                    }
                },
            );
        }
        let is_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut completion = if is_stream {
            read_stream(response, deltas, started).await?
        } else {
            // Some gateways answer a streaming request with one JSON body; a proxy in the way
            // may answer with a page of HTML.
            let header_cost = cost_from_headers(response.headers());
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no content type")
                .to_owned();
            let text = response
                .text()
                .await
                .map_err(|e| LlmError::transient(describe_reqwest(&e)))?;
            let value: Value = serde_json::from_str(&text).map_err(|_| {
                LlmError::malformed(format!(
                    "the answer is not JSON ({content_type}): {}",
                    first_line(&text)
                ))
            })?;
            let mut c = parse_full(&value)?;
            c.cost_usd = header_cost.or(c.cost_usd);
            if !c.content.is_empty() {
                deltas.send(c.content.clone());
            }
            c
        };
        completion.latency = started.elapsed();
        Ok(completion)
    }
}

/// `messages` as JSON with a prompt-cache point (`cache_control: ephemeral`, which LiteLLM maps
/// to Anthropic's and Bedrock's cache points and other providers ignore) on the system prompt
/// and on the last message: the system prompt is the same on every call, and each call's
/// history is the last call's plus a little, so both prefixes are read from the cache.
fn with_cache_points(messages: &[ChatMessage]) -> Value {
    let mut out: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
        .collect();
    let last = out.len().saturating_sub(1);
    for (i, m) in out.iter_mut().enumerate() {
        let cache_point = (i == 0 && m["role"] == "system") || i == last;
        if let Some(text) = m["content"]
            .as_str()
            .filter(|t| cache_point && !t.is_empty())
        {
            m["content"] = json!([{
                "type": "text",
                "text": text,
                "cache_control": {"type": "ephemeral"},
            }]);
        }
    }
    Value::Array(out)
}

/// The gateway's error message from an OpenAI-style error body, else the raw text (bounded).
/// The first non-empty line of a body, cut to 200 characters.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(empty body)");
    openclaw_common::event::first_line(line, 200)
}

fn gateway_message(text: &str) -> String {
    let from_json = serde_json::from_str::<Value>(text).ok().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
            .map(str::to_owned)
    });
    // Not JSON (an HTML error page from a proxy): its first line says enough.
    let mut message = from_json.unwrap_or_else(|| first_line(text));
    if message.len() > 500 {
        let mut cut = 500;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

/// A reqwest error without its URL (which never holds secrets here, but stays short).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "response broke off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests;

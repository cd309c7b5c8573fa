//! Client of an OpenAI-compatible chat-completions API (the LiteLLM gateway): streaming with
//! usage, tool calls, and retries with exponential backoff and jitter on 429, 5xx and
//! connection errors, honouring `Retry-After`.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::LlmConfig;

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
}

impl ChatMessage {
    pub fn system(text: impl Into<String>) -> Self {
        Self::plain("system", text)
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self::plain("user", text)
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
}

/// What one model turn is asked: the model, the conversation so far, the tools it may call.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    pub model: &'a str,
    pub messages: &'a [ChatMessage],
    pub tools: &'a [Value],
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| LlmError::malformed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, config })
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
        let result = (|| async {
            self.complete_once(turn, deltas)
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
        }: Turn<'_>,
        deltas: &UnboundedSender<String>,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let mut body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
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
                let _ = deltas.send(c.content.clone());
            }
            c
        };
        completion.latency = started.elapsed();
        Ok(completion)
    }
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

fn parse_full(value: &Value) -> Result<Completion, LlmError> {
    let message = &value["choices"][0]["message"];
    if message.is_null() {
        return Err(LlmError::malformed("no choices[0].message"));
    }
    let tool_calls = match message.get("tool_calls") {
        Some(Value::Array(calls)) => calls
            .iter()
            .map(|c| serde_json::from_value(c.clone()))
            .collect::<Result<Vec<ToolCall>, _>>()
            .map_err(|e| LlmError::malformed(format!("tool_calls: {e}")))?,
        _ => Vec::new(),
    };
    Ok(Completion {
        content: message["content"].as_str().unwrap_or_default().to_owned(),
        tool_calls,
        prompt_tokens: value["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: value["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        cost_usd: value["usage"]["cost"].as_f64(),
        latency: Duration::ZERO,
        first_token: None,
        retries: Vec::new(),
    })
}

/// Reads `data:` lines of a chat-completions stream, assembling content and tool calls.
async fn read_stream(
    response: reqwest::Response,
    deltas: &UnboundedSender<String>,
    started: Instant,
) -> Result<Completion, LlmError> {
    let mut out = Completion::default();
    let mut partial: Vec<ToolCall> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut body = response.bytes_stream();
    let mut done = false;
    while !done {
        let Some(chunk) = body.next().await else {
            break;
        };
        let chunk = chunk.map_err(|e| LlmError::transient(describe_reqwest(&e)))?;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            let value: Value = serde_json::from_str(data)
                .map_err(|e| LlmError::malformed(format!("stream chunk is not JSON: {e}")))?;
            if let Some(err) = value.get("error") {
                return Err(LlmError::transient(format!(
                    "error inside the stream: {err}"
                )));
            }
            if out.first_token.is_none() && value["choices"][0]["delta"].is_object() {
                out.first_token = Some(started.elapsed());
            }
            apply_chunk(&value, &mut out, &mut partial, deltas);
        }
    }
    out.tool_calls = partial
        .into_iter()
        .filter(|c| !c.function.name.is_empty())
        .collect();
    Ok(out)
}

fn apply_chunk(
    value: &Value,
    out: &mut Completion,
    partial: &mut Vec<ToolCall>,
    deltas: &UnboundedSender<String>,
) {
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        out.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(out.prompt_tokens);
        out.completion_tokens = usage["completion_tokens"]
            .as_u64()
            .unwrap_or(out.completion_tokens);
        if let Some(cost) = usage["cost"]
            .as_f64()
            .filter(|c| c.is_finite() && *c >= 0.0)
        {
            out.cost_usd = Some(cost);
        }
    }
    let delta = &value["choices"][0]["delta"];
    if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
        out.content.push_str(text);
        let _ = deltas.send(text.to_owned());
    }
    if let Some(calls) = delta["tool_calls"].as_array() {
        for call in calls {
            let index = call["index"].as_u64().unwrap_or(partial.len() as u64) as usize;
            while partial.len() <= index {
                partial.push(ToolCall {
                    id: String::new(),
                    kind: function_type(),
                    function: FunctionCall::default(),
                });
            }
            let slot = &mut partial[index];
            if let Some(id) = call["id"].as_str() {
                slot.id = id.to_owned();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                slot.function.name.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                slot.function.arguments.push_str(args);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_tool_call_arguments_are_assembled() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut out = Completion::default();
        let mut partial = Vec::new();
        for chunk in [
            json!({"choices":[{"delta":{"content":"Hi"}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"write_file","arguments":"{\"pa"}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\":\"a\"}"}}]}}]}),
            json!({"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3}}),
        ] {
            apply_chunk(&chunk, &mut out, &mut partial, &tx);
        }
        assert_eq!(rx.try_recv().unwrap(), "Hi");
        assert_eq!(partial[0].id, "c1");
        assert_eq!(partial[0].function.arguments, "{\"path\":\"a\"}");
        assert_eq!((out.prompt_tokens, out.completion_tokens), (10, 3));
    }

    #[test]
    fn a_non_streamed_answers_cost_comes_from_litellms_header() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(cost_from_headers(&h), None, "not reported: unknown");
        h.insert("x-litellm-response-cost", "0.000345".parse().unwrap());
        assert_eq!(cost_from_headers(&h), Some(0.000345));
        h.insert("x-litellm-response-cost", "nan".parse().unwrap());
        assert_eq!(cost_from_headers(&h), None);
    }

    #[test]
    fn gateway_messages_come_from_the_error_body() {
        assert_eq!(
            gateway_message(r#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(gateway_message("plain"), "plain");
    }
}

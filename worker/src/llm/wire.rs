//! Reading the gateway's answers: a chat-completions stream (`data:` lines) or one JSON body,
//! into a [`Completion`]: text, tool calls, usage (cached tokens too), cost, why it stopped, and
//! the model's reasoning.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use super::{
    Completion, DeltaSink, FunctionCall, LlmError, ToolCall, describe_reqwest, function_type,
};

pub(super) fn parse_full(value: &Value) -> Result<Completion, LlmError> {
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
        finish_reason: value["choices"][0]["finish_reason"]
            .as_str()
            .map(str::to_owned),
        cached_tokens: cached_tokens(&value["usage"]),
        reasoning: message["reasoning_content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Reads `data:` lines of a chat-completions stream, assembling content and tool calls.
pub(super) async fn read_stream(
    response: reqwest::Response,
    deltas: &DeltaSink<'_>,
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
    // A stream cut before its end (no `[DONE]`, no finish reason) is a broken answer, not a
    // short one: asked again, never taken as it is.
    if !done && out.finish_reason.is_none() {
        return Err(LlmError::transient(
            "the answer's stream ended before it was complete (no [DONE])".into(),
        ));
    }
    out.tool_calls = partial
        .into_iter()
        .filter(|c| !c.function.name.is_empty())
        .collect();
    Ok(out)
}

pub(super) fn apply_chunk(
    value: &Value,
    out: &mut Completion,
    partial: &mut Vec<ToolCall>,
    deltas: &DeltaSink<'_>,
) {
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        out.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(out.prompt_tokens);
        out.completion_tokens = usage["completion_tokens"]
            .as_u64()
            .unwrap_or(out.completion_tokens);
        if let Some(cached) = cached_tokens(usage) {
            out.cached_tokens = Some(cached);
        }
        if let Some(cost) = usage["cost"]
            .as_f64()
            .filter(|c| c.is_finite() && *c >= 0.0)
        {
            out.cost_usd = Some(cost);
        }
    }
    if let Some(reason) = value["choices"][0]["finish_reason"].as_str() {
        out.finish_reason = Some(reason.to_owned());
    }
    let delta = &value["choices"][0]["delta"];
    if let Some(text) = delta["reasoning_content"].as_str() {
        out.reasoning.push_str(text);
    }
    if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
        out.content.push_str(text);
        deltas.send(text.to_owned());
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

/// Prompt tokens read from the provider's cache: OpenAI's `prompt_tokens_details.cached_tokens`,
/// or Anthropic's `cache_read_input_tokens` as LiteLLM passes it on.
fn cached_tokens(usage: &Value) -> Option<u64> {
    usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .or_else(|| usage["cache_read_input_tokens"].as_u64())
}

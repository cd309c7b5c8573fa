//! The OpenAI-compatible front door: agents as models, a chat becomes a task, the task's
//! events come back as chat completion chunks. What Open WebUI and any OpenAI client speak.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use openclaw_common::ids::TaskId;
use openclaw_common::session::SessionKey;

use crate::principals::Caller;
use openclaw_common::task::Turn;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::conversation::{self, BACKGROUND_PROMPT, ChatInput};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::intake;
use crate::relay::{self, Piece, Usage};
use crate::state::AppState;

pub use super::TASK_ID_HEADER;

/// `GET /v1/models`: one model per agent, `openclaw:<agent>`.
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let created = state.started_unix;
    let data: Vec<Value> = state
        .config
        .agents
        .profiles()
        .map(|p| {
            json!({"id": format!("openclaw:{}", p.name), "object": "model", "created": created,
                   "owned_by": "openclaw", "name": format!("OpenClaw {}", p.name),
                   "description": p.description})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The parts of an OpenAI chat request we use; the rest (temperature…) is accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: Option<String>,
    #[serde(default)]
    messages: Vec<ChatMessageIn>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<Value>,
    user: Option<String>,
    repo: Option<String>,
    branch: Option<String>,
    chat_id: Option<String>,
    metadata: Option<serde_json::Map<String, Value>>,
    cancel_on_disconnect: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessageIn {
    role: String,
    #[serde(default)]
    content: Value,
}

/// Text of a message whose content is a string or a list of parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The conversation key: an explicit session header, Open WebUI's chat id, then `user` —
/// under the caller's own name, so one user's key never finds another's conversation.
pub fn session_key(
    headers: &HeaderMap,
    candidates: &[Option<&str>],
    caller: &Caller,
) -> Option<SessionKey> {
    header(headers, "x-openclaw-session-key")
        .or_else(|| header(headers, "x-openwebui-chat-id"))
        .or_else(|| candidates.iter().flatten().next().copied())
        .filter(|k| !k.trim().is_empty())
        .and_then(|k| match caller.conversation_owner() {
            Some(owner) => SessionKey::from_client(&format!("{owner}\n{k}")),
            None => SessionKey::from_client(k),
        })
}

/// A short answer to Open WebUI's background prompts (title, tags, follow-ups), which must
/// not start tasks.
fn background_answer(prompt: &str) -> String {
    let p = prompt.to_ascii_lowercase();
    if p.contains("title") {
        r#"{"title": "OpenClaw task"}"#.into()
    } else if p.contains("tags") {
        r#"{"tags": ["OpenClaw"]}"#.into()
    } else if p.contains("follow") {
        r#"{"follow_ups": []}"#.into()
    } else {
        String::new()
    }
}

/// `POST /v1/chat/completions`, streaming or not.
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    // OpenAI's `user` names a user only when a service principal sends it.
    let caller = caller.acting_for(req.user.as_deref());
    let model = req.model.clone().unwrap_or_default();
    let agent = match header(&headers, "x-openclaw-agent-id") {
        Some(a) => conversation::agent_from_model(&state, a)?,
        None if model.is_empty() => {
            return Err(ApiError::field(
                "model",
                "model is required: one of GET /v1/models",
            ));
        }
        None => conversation::agent_from_model(&state, &model)?,
    };
    let last_user = req
        .messages
        .iter()
        .rposition(|m| m.role == "user")
        .ok_or_else(|| ApiError::field("messages", "messages must contain a user message"))?;
    let prompt = text_of(&req.messages[last_user].content);
    if prompt.trim().is_empty() {
        return Err(ApiError::field(
            "messages",
            "the last user message is empty",
        ));
    }
    let label = format!("openclaw:{agent}");
    if prompt.trim_start().starts_with(BACKGROUND_PROMPT) {
        let answer = background_answer(&prompt);
        let pieces = stream::iter([Piece::End {
            text: answer,
            error: None,
            usage: Usage::default(),
        }]);
        return Ok(respond(&state, &req, &label, None, pieces, false).await);
    }
    let history: Vec<Turn> = req.messages[..last_user]
        .iter()
        .filter_map(|m| {
            conversation::turn_role(&m.role).map(|role| Turn {
                role,
                content: text_of(&m.content),
            })
        })
        .filter(|t| !t.content.trim().is_empty())
        .collect();
    let meta = |k: &str| {
        req.metadata
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let input = ChatInput {
        agent,
        prompt,
        history,
        repo: req.repo.clone().or_else(|| meta("repo")),
        branch: req.branch.clone().or_else(|| meta("branch")),
        model_override: None,
        submitted_by: caller.submitted_by(),
        session: session_key(
            &headers,
            &[
                req.chat_id.as_deref(),
                meta("chat_id").as_deref(),
                req.user.as_deref(),
            ],
            &caller,
        ),
    };
    let (spec, session) = input.into_task(&state).await?;
    let msg_id =
        crate::routes::tasks::idempotency_key(&headers)?.unwrap_or_else(|| spec.id.to_string());
    let enqueued = intake::enqueue(&state, spec, &msg_id).await?;
    if let (Some((key, session)), false) = (session, enqueued.duplicate) {
        state.stores()?.sessions.put(&key, &session).await?;
    }
    let id = enqueued.spec.id;
    let cancel_on_disconnect = req.cancel_on_disconnect.unwrap_or(false)
        || header(&headers, "x-openclaw-cancel-on-disconnect")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let pieces = relay::follow(&state, &id).await?;
    Ok(respond(&state, &req, &label, Some(id), pieces, cancel_on_disconnect).await)
}

/// Cancels the task when dropped while armed: the stream of a client that asked for
/// cancel-on-disconnect went away before the task ended.
struct CancelOnDrop {
    state: AppState,
    id: TaskId,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let (state, id) = (self.state.clone(), self.id);
            tracing::info!(task_id = %id, "client disconnected; canceling as it asked");
            tokio::spawn(async move {
                if let Err(e) = intake::cancel(&state, &id).await {
                    tracing::warn!(task_id = %id, error = %e, "cancel on disconnect failed");
                }
            });
        }
    }
}

async fn respond(
    state: &AppState,
    req: &ChatRequest,
    label: &str,
    task: Option<TaskId>,
    pieces: impl futures_util::Stream<Item = Piece> + Send + 'static,
    cancel_on_disconnect: bool,
) -> Response {
    let completion_id = match task {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-{}", TaskId::new()),
    };
    let created = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut headers = HeaderMap::new();
    if let Some(id) = task {
        headers.insert(
            TASK_ID_HEADER,
            id.to_string().parse().expect("a uuid is a header value"),
        );
    }
    if !req.stream {
        let mut content = String::new();
        let mut usage = Usage::default();
        let mut pieces = std::pin::pin!(pieces);
        while let Some(piece) = pieces.next().await {
            match piece {
                Piece::Text(t) => content.push_str(&t),
                Piece::End { text, usage: u, .. } => {
                    content.push_str(&text);
                    usage = u;
                }
            }
        }
        let body = json!({
            "id": completion_id, "object": "chat.completion", "created": created, "model": label,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage_json(usage),
            "openclaw": {"task_id": task},
        });
        return (headers, Json(body)).into_response();
    }
    let include_usage = req
        .stream_options
        .as_ref()
        .is_some_and(|o| o["include_usage"].as_bool() == Some(true));
    let chunk = {
        let (id, label) = (completion_id.clone(), label.to_owned());
        move |delta: Value, finish: Option<&str>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": label,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        }
    };
    let mut first = chunk(json!({"role": "assistant", "content": ""}), None);
    first["openclaw"] = json!({"task_id": task});
    let mut guard = task.map(|id| CancelOnDrop {
        state: state.clone(),
        id,
        armed: cancel_on_disconnect,
    });
    let body = pieces.flat_map(move |piece| {
        let frames: Vec<Value> = match piece {
            Piece::Text(t) => vec![chunk(json!({"content": t}), None)],
            Piece::End { text, usage, .. } => {
                if let Some(g) = guard.as_mut() {
                    g.armed = false;
                }
                let mut frames = vec![
                    chunk(json!({"content": text}), None),
                    chunk(json!({}), Some("stop")),
                ];
                if include_usage {
                    let mut u = chunk(json!({}), None);
                    u["choices"] = json!([]);
                    u["usage"] = usage_json(usage);
                    frames.push(u);
                }
                frames
            }
        };
        stream::iter(
            frames
                .into_iter()
                .map(|f| Ok::<_, Infallible>(Event::default().data(f.to_string()))),
        )
    });
    let all = stream::once(async move { Ok(Event::default().data(first.to_string())) })
        .chain(body)
        .chain(stream::once(async { Ok(Event::default().data("[DONE]")) }));
    (
        headers,
        Sse::new(all).keep_alive(KeepAlive::new().interval(state.config.sse_keep_alive)),
    )
        .into_response()
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
           "total_tokens": u.prompt_tokens + u.completion_tokens})
}

//! Drop-in compatibility with the original bridge's HTTP contract, which existing Open WebUI
//! pipes speak: `GET /status` and `POST /message` → `data: {"content": …}` … `data: [DONE]`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, stream};
use serde_json::{Value, json};

use crate::conversation::ChatInput;
use crate::intake;
use crate::relay::{self, Piece};
use crate::routes::openai::session_key;
use crate::state::AppState;

/// `GET /status`: `{"status":"running","uptime":<s>,"lastActivity":<ISO>}`.
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    let last = state
        .last_activity
        .lock()
        .map(|t| *t)
        .unwrap_or_else(|_| openclaw_common::now());
    let last = last
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Json(
        json!({"status": "running", "uptime": state.started.elapsed().as_secs(), "lastActivity": last}),
    )
}

/// `POST /message {"message": "…"}`: the message becomes a task for the agent of the Host it
/// was sent to (`doc-writer.openclaw` → doc-writer), else the default agent; its
/// text streams back as `data: {"content": …}` frames, an `data: {"error": …}` frame when it
/// fails, and always `data: [DONE]`.
pub async fn message(
    State(state): State<AppState>,
    Extension(caller): Extension<crate::principals::Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .filter(|m| !m.trim().is_empty());
    let Some(message) = message else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Missing required field: message"})),
        )
            .into_response();
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let input = ChatInput {
        agent: state.config.agent_for_host(host).clone(),
        prompt: message,
        history: Vec::new(),
        repo: None,
        branch: None,
        model_override: None,
        submitted_by: caller.submitted_by(),
        session: session_key(&headers, &[], &caller),
    };
    let started = async {
        let (spec, session) = input.into_task(&state).await?;
        let msg_id = spec.id.to_string();
        let enqueued = intake::enqueue(&state, spec, &msg_id).await?;
        if let Some((key, session)) = session {
            state.stores()?.sessions.put(&key, &session).await?;
        }
        relay::follow(&state, &enqueued.spec.id).await
    };
    let frames = match started.await {
        Ok(pieces) => frames(pieces, state.config.still_working_after).boxed(),
        Err(e) => stream::iter([frame(json!({"error": e.to_string()})), done()]).boxed(),
    };
    let mut response = Sse::new(frames).into_response();
    let h = response.headers_mut();
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn frame(v: Value) -> Result<Event, Infallible> {
    Ok(Event::default().data(v.to_string()))
}

fn done() -> Result<Event, Infallible> {
    Ok(Event::default().data("[DONE]"))
}

/// The task's pieces as frames, with a "still working" line after each quiet `quiet` period.
fn frames(
    pieces: impl Stream<Item = Piece> + Send + 'static,
    quiet: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    stream::unfold(
        (Box::pin(pieces), false),
        move |(mut pieces, ended)| async move {
            if ended {
                return None;
            }
            match tokio::time::timeout(quiet, pieces.next()).await {
                Err(_) => Some((
                    vec![frame(json!({"content": "_still working…_\n\n"}))],
                    (pieces, false),
                )),
                Ok(None) => Some((
                    vec![
                        frame(json!({"error": "the bridge is shutting down"})),
                        done(),
                    ],
                    (pieces, true),
                )),
                Ok(Some(Piece::Text(t))) => {
                    Some((vec![frame(json!({"content": t}))], (pieces, false)))
                }
                Ok(Some(Piece::End { text, error, .. })) => {
                    let mut out = vec![frame(json!({"content": text}))];
                    if let Some(e) = error {
                        out.push(frame(json!({"error": e})));
                    }
                    out.push(done());
                    Some((out, (pieces, true)))
                }
            }
        },
    )
    .flat_map(stream::iter)
}

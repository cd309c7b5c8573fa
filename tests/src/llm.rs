//! A scripted OpenAI-compatible chat-completions server: the one outside service, played by
//! the harness. Answers are data: either by turn (stateless: the Nth assistant turn after the
//! last user message gets the Nth reply), or from a queue (for sequences of errors).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A final answer without tool calls.
    Text(String),
    /// Tool calls `(name, raw JSON arguments)`, with optional text before them.
    Tools(Vec<(String, String)>),
    /// An HTTP error, optionally with `Retry-After` seconds.
    Error {
        status: u16,
        retry_after: Option<u64>,
        message: String,
    },
    /// Waits this long, then answers with the inner reply.
    Delayed(Duration, Box<Reply>),
    /// The inner reply cut at the output limit: `finish_reason: "length"`, a tool call's
    /// arguments cut in half.
    CutOff(Box<Reply>),
    /// Any answer at all: status, content type and body as given (an HTML page from a proxy).
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
}

impl Reply {
    pub fn text(t: &str) -> Self {
        Self::Text(t.to_owned())
    }
    pub fn tool(name: &str, args: Value) -> Self {
        Self::Tools(vec![(name.to_owned(), args.to_string())])
    }
    pub fn raw_tool(name: &str, raw_args: &str) -> Self {
        Self::Tools(vec![(name.to_owned(), raw_args.to_owned())])
    }
    pub fn error(status: u16, message: &str) -> Self {
        Self::Error {
            status,
            retry_after: None,
            message: message.to_owned(),
        }
    }
    pub fn delayed(self, d: Duration) -> Self {
        Self::Delayed(d, Box::new(self))
    }
    pub fn cut_off(self) -> Self {
        Self::CutOff(Box::new(self))
    }
}

enum Script {
    Turns(Vec<Reply>),
    Queue(VecDeque<Reply>),
}

struct Inner {
    script: Script,
    /// Every request body received, in order.
    requests: Vec<Value>,
    /// The `Authorization` header of every request.
    auth: Vec<Option<String>>,
    /// A price per call to report in `usage.cost`, as LiteLLM does (`None`: no price).
    cost_per_call: Option<f64>,
    /// The answer to requests without tools (the worker's condensing calls), which then take
    /// no reply from the script.
    summary: Option<String>,
}

impl Inner {
    fn new(script: Script) -> Self {
        Self {
            script,
            requests: Vec::new(),
            auth: Vec::new(),
            cost_per_call: None,
            summary: None,
        }
    }
}

/// The chat-completions routes, at `/v1` (as a gateway) and at the root (as LiteLLM's
/// `api_base` may point).
fn router(inner: Arc<Mutex<Inner>>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .with_state(inner)
}

/// A running scripted server; stops when dropped.
pub struct ScriptedLlm {
    /// Base URL without `/v1` (the worker appends it), like a LiteLLM address.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl ScriptedLlm {
    /// The Nth assistant turn of every conversation gets `replies[N]` (the last one repeats).
    pub async fn turns(replies: Vec<Reply>) -> Self {
        Self::start(Script::Turns(replies)).await
    }

    /// Like [`ScriptedLlm::turns`], reporting `usd` as each call's `usage.cost` (as LiteLLM
    /// does in a stream's final chunk).
    pub async fn priced(replies: Vec<Reply>, usd: f64) -> Self {
        let llm = Self::start(Script::Turns(replies)).await;
        llm.inner.lock().expect("llm lock").cost_per_call = Some(usd);
        llm
    }

    /// Answers every request that offers no tools (a condensing call) with `text`, outside
    /// the script.
    pub fn summarize_with(&self, text: &str) {
        self.inner.lock().expect("llm lock").summary = Some(text.to_owned());
    }

    /// Requests get the replies in order, whatever the conversation; then 500.
    pub async fn queue(replies: Vec<Reply>) -> Self {
        Self::start(Script::Queue(replies.into())).await
    }

    async fn start(script: Script) -> Self {
        crate::init();
        let inner = Arc::new(Mutex::new(Inner::new(script)));
        let (url, server) = crate::serve(router(inner.clone())).await;
        Self { url, inner, server }
    }

    /// Serves on `listener` until the process ends (for the demo binary).
    pub async fn serve_turns(
        listener: tokio::net::TcpListener,
        replies: Vec<Reply>,
    ) -> std::io::Result<()> {
        let inner = Arc::new(Mutex::new(Inner::new(Script::Turns(replies))));
        axum::serve(listener, router(inner)).await
    }

    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().expect("llm lock").requests.clone()
    }

    pub fn auth_headers(&self) -> Vec<Option<String>> {
        self.inner.lock().expect("llm lock").auth.clone()
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn chat(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let reply = {
        let mut inner = inner.lock().expect("llm lock");
        inner.requests.push(body.clone());
        inner.auth.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        // The turn within the current request: assistant messages after the last user message
        // (earlier turns of a conversation come before it).
        let turn = body["messages"]
            .as_array()
            .map(|m| {
                // The worker's own notes to the model continue the turn they interrupt.
                let last_user = m
                    .iter()
                    .rposition(|m| {
                        m["role"] == "user" && !message_text(m).starts_with("[OpenClaw]")
                    })
                    .unwrap_or(0);
                m[last_user..]
                    .iter()
                    .filter(|m| m["role"] == "assistant")
                    .count()
            })
            .unwrap_or(0);
        if let Some(summary) = inner
            .summary
            .clone()
            .filter(|_| body.get("tools").is_none())
        {
            Some(Reply::Text(summary))
        } else {
            match &mut inner.script {
                Script::Turns(replies) => replies.get(turn).or(replies.last()).cloned(),
                Script::Queue(q) => q.pop_front(),
            }
        }
    };
    let Some(mut reply) = reply else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "script exhausted"}})),
        )
            .into_response();
    };
    while let Reply::Delayed(d, inner) = reply {
        tokio::time::sleep(d).await;
        reply = *inner;
    }
    let (cost, request) = {
        let inner = inner.lock().expect("llm lock");
        (inner.cost_per_call, inner.requests.len())
    };
    let framing = Framing {
        request,
        model: body["model"].as_str().unwrap_or("scripted").to_owned(),
        stream: body["stream"].as_bool().unwrap_or(false),
        // Roughly what a tokenizer counts: four bytes a token.
        prompt_tokens: (body["messages"].to_string().len() / 4).max(1) as u64,
        cost,
    };
    match reply {
        Reply::Error {
            status,
            retry_after,
            message,
        } => {
            let mut r = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(json!({"error": {"message": message, "type": "scripted"}})),
            )
                .into_response();
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().expect("header"));
            }
            r
        }
        Reply::Text(text) => respond(&framing, Some(text), Vec::new(), None),
        Reply::Tools(calls) => respond(&framing, None, calls, None),
        Reply::CutOff(inner) => match *inner {
            Reply::Text(text) => {
                let half: String = text.chars().take(text.chars().count() / 2).collect();
                respond(&framing, Some(half), Vec::new(), Some("length"))
            }
            Reply::Tools(calls) => {
                let cut = calls
                    .into_iter()
                    .map(|(name, args)| {
                        let half: String = args.chars().take(args.chars().count() / 2).collect();
                        (name, half)
                    })
                    .collect();
                respond(&framing, None, cut, Some("length"))
            }
            other => panic!("only text and tool calls can be cut off, not {other:?}"),
        },
        Reply::Raw {
            status,
            content_type,
            body,
        } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Reply::Delayed(..) => unreachable!("delays are unwrapped above"),
    }
}

/// How an answer is framed: the request it answers (its number makes tool call ids unique
/// across the conversation, as a model's are), the model, streaming, usage and cost.
struct Framing {
    request: usize,
    model: String,
    stream: bool,
    prompt_tokens: u64,
    cost: Option<f64>,
}

fn respond(
    f: &Framing,
    text: Option<String>,
    calls: Vec<(String, String)>,
    finish_reason: Option<&str>,
) -> Response {
    let (model, stream, prompt_tokens, cost, n) = (
        f.model.as_str(),
        f.stream,
        f.prompt_tokens,
        f.cost,
        f.request,
    );
    let completion_tokens = 5 + text
        .as_ref()
        .map_or(0, |t| t.split_whitespace().count() as u64);
    let mut usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens});
    if let Some(cost) = cost {
        usage["cost"] = json!(cost);
    }
    let tool_calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| {
            json!({"id": format!("call_{n}_{i}"), "type": "function",
                                        "function": {"name": name, "arguments": args}})
        })
        .collect();
    let finish = finish_reason.unwrap_or(if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    });
    if !stream {
        let mut message = json!({"role": "assistant", "content": text});
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        return Json(json!({"id": "chatcmpl-scripted", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}))
        .into_response();
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut frames = vec![chunk(json!({"role": "assistant"}), None)];
    if let Some(text) = &text {
        // Stream the text in a few pieces, as a model does.
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        for piece in words.chunks(words.len().div_ceil(3).max(1)) {
            frames.push(chunk(json!({"content": piece.concat()}), None));
        }
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        // Arguments arrive split across chunks.
        let mut cut = args.len() / 2;
        while !args.is_char_boundary(cut) {
            cut -= 1;
        }
        frames.push(chunk(
            json!({"tool_calls": [{"index": i, "id": format!("call_{n}_{i}"), "type": "function",
            "function": {"name": name, "arguments": &args[..cut]}}]}),
            None,
        ));
        frames.push(chunk(
            json!({"tool_calls": [{"index": i, "function": {"arguments": &args[cut..]}}]}),
            None,
        ));
    }
    frames.push(chunk(json!({}), Some(finish)));
    frames.push(
        json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": model,
                       "choices": [], "usage": usage}),
    );
    let mut body = String::new();
    for f in frames {
        body.push_str(&format!("data: {f}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}

/// The offline demo's model: looks at the repository, writes a guide, sums up.
pub fn demo_script() -> Vec<Reply> {
    vec![
        Reply::tool("list_files", json!({})),
        Reply::tool("read_file", json!({"path": "README.md"})),
        Reply::tool(
            "write_file",
            json!({"path": "docs/GETTING-STARTED.md", "content":
                "# Getting started\n\nThis guide was written by the OpenClaw `doc-writer` agent \
                 (offline demo model).\n\n## Build\n\n```sh\nmake\n```\n\n## Run\n\n```sh\n./hello\n```\n"}),
        ),
        Reply::text(
            "Add a getting-started guide\n\nWrote docs/GETTING-STARTED.md with build and run steps.",
        ),
    ]
}

/// The text of a message of a recorded request: its `content` string, or its text parts joined
/// (the worker sends the system prompt and the last message as parts with a cache point).
pub fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .concat(),
        _ => String::new(),
    }
}

//! A typed client of the bridge's task API.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openclaw_common::event::TaskEvent;
use serde_json::Value;

/// How long `follow_events` keeps trying to reconnect before giving up.
const RECONNECT_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The bridge could not be reached, or the connection broke.
    #[error("cannot reach the bridge: {0}")]
    Connection(String),
    /// The bridge answered with an error.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the bridge: {0}")]
    Decode(String),
    /// A short id that names no recent task, or more than one.
    #[error("{0}")]
    Ambiguous(String),
}

/// The bridge's JSON error body (`{"error": {code, message}}`) as a [`ClientError`].
fn api_error(status: reqwest::StatusCode, body: &Value) -> ClientError {
    ClientError::Api {
        status: status.as_u16(),
        code: body["error"]["code"].as_str().unwrap_or("error").to_owned(),
        message: body["error"]["message"]
            .as_str()
            .unwrap_or("request failed")
            .to_owned(),
    }
}

/// How many recent tasks a short id is looked up among (the bridge lists at most 500).
const SHORT_ID_WINDOW: usize = 500;

/// The bridge at `base`, with an optional bearer token.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    /// `base` is the bridge's URL; `host:port` alone is taken as `http://host:port`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = base.trim();
        let base = if base.contains("://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            ClientError::Connection(format!(
                "{base:?} is not a bridge URL ({e}); write it as http://host:port"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::Connection(format!(
                "{base:?} is not a bridge URL; write it as http://host:port or https://host"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let r = req
            .send()
            .await
            .map_err(|e| ClientError::Connection(describe(&e)))?;
        let status = r.status();
        let body: Value = r
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(api_error(status, &body))
    }

    pub async fn submit(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut req = self.request(reqwest::Method::POST, "/v1/tasks").json(body);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        self.send(req).await
    }

    /// The full id `raw` names: a full id as it is, else the one recent task whose id starts
    /// or ends with `raw` (UUIDv7 ids share their leading time digits, so the random tail —
    /// the last 8 characters, as `list` shows them — is the short id that tells tasks apart).
    pub async fn resolve(&self, raw: &str) -> Result<String, ClientError> {
        let raw = raw.trim().to_ascii_lowercase();
        if raw.len() == 36 {
            return Ok(raw);
        }
        if raw.len() < 4 || !raw.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(ClientError::Ambiguous(format!(
                "{raw:?} is not a task id: give the full id, or at least 4 of its first or last characters"
            )));
        }
        let list = self.list(SHORT_ID_WINDOW, None, None).await?;
        let ids: Vec<String> = list["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str())
            .filter(|id| id.starts_with(&raw) || id.ends_with(&raw))
            .map(str::to_owned)
            .collect();
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ClientError::Ambiguous(format!(
                "no task among the {SHORT_ID_WINDOW} most recent has an id starting or ending with {raw:?}"
            ))),
            many => Err(ClientError::Ambiguous(format!(
                "{raw:?} names {} tasks ({}): give more characters",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// `GET /v1/tasks/{id}/diff`: the task's changes as a patch.
    pub async fn diff(&self, id: &str) -> Result<String, ClientError> {
        let r = self
            .request(reqwest::Method::GET, &format!("/v1/tasks/{id}/diff"))
            .send()
            .await
            .map_err(|e| ClientError::Connection(describe(&e)))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if status.is_success() {
            return Ok(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or_default();
        Err(api_error(status, &body))
    }

    pub async fn status(&self, id: &str) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::GET, &format!("/v1/tasks/{id}")))
            .await
    }

    pub async fn list(
        &self,
        limit: usize,
        status: Option<&str>,
        agent: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut query = vec![("limit", limit.to_string())];
        query.extend(status.map(|s| ("status", s.to_owned())));
        query.extend(agent.map(|a| ("agent", a.to_owned())));
        self.send(
            self.request(reqwest::Method::GET, "/v1/tasks")
                .query(&query),
        )
        .await
    }

    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::POST, &format!("/v1/tasks/{id}/cancel")))
            .await
    }

    pub async fn replay(&self, id: &str) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::POST, &format!("/v1/tasks/{id}/replay")))
            .await
    }

    /// Calls `on_event` for each event of the task, in order, each once. Following, it keeps
    /// going until a terminal event, reconnecting with `Last-Event-ID` when the connection
    /// drops (a bridge restart, say). Returns the terminal event, if one was seen.
    pub async fn follow_events(
        &self,
        id: &str,
        follow: bool,
        mut on_event: impl FnMut(&TaskEvent),
    ) -> Result<Option<TaskEvent>, ClientError> {
        let mut last_seq = 0u64;
        let mut lost_since: Option<Instant> = None;
        let mut delay = Duration::from_millis(100);
        loop {
            let path = if follow {
                format!("/v1/tasks/{id}/events")
            } else {
                format!("/v1/tasks/{id}/events?follow=false")
            };
            let mut req = self.request(reqwest::Method::GET, &path);
            if last_seq > 0 {
                req = req.header("Last-Event-ID", last_seq.to_string());
            }
            // Each arm either returns, or names the connection trouble to retry after.
            let why = match req.send().await {
                Err(e) => describe(&e),
                Ok(r) if !r.status().is_success() => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    let err = ClientError::Api {
                        status,
                        code: body["error"]["code"].as_str().unwrap_or("error").to_owned(),
                        message: body["error"]["message"]
                            .as_str()
                            .unwrap_or("request failed")
                            .to_owned(),
                    };
                    // 503: the bridge is up but NATS is not (yet); worth waiting for.
                    if status != 503 || !follow {
                        return Err(err);
                    }
                    err.to_string()
                }
                Ok(r) => {
                    lost_since = None;
                    delay = Duration::from_millis(100);
                    match read_events(r, &mut last_seq, &mut on_event).await {
                        Ok(Some(end)) => return Ok(Some(end)),
                        Ok(None) if !follow => return Ok(None),
                        Ok(None) => "the event stream ended early".to_owned(),
                        Err(ClientError::Connection(why)) => why,
                        Err(e) => return Err(e),
                    }
                }
            };
            if !follow {
                return Err(ClientError::Connection(why));
            }
            let since = *lost_since.get_or_insert_with(Instant::now);
            if since.elapsed() > RECONNECT_FOR {
                return Err(ClientError::Connection(format!(
                    "{why}; gave up after {RECONNECT_FOR:?}"
                )));
            }
            eprintln!("openclaw: {why}; reconnecting after event {last_seq}");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// Reads SSE frames until the stream ends; `Some` when a terminal event was seen.
async fn read_events(
    r: reqwest::Response,
    last_seq: &mut u64,
    on_event: &mut impl FnMut(&TaskEvent),
) -> Result<Option<TaskEvent>, ClientError> {
    let mut body = r.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ClientError::Connection(describe(&e)))?;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            let ev: TaskEvent = serde_json::from_str(data.trim())
                .map_err(|e| ClientError::Decode(e.to_string()))?;
            if ev.seq <= *last_seq {
                continue;
            }
            *last_seq = ev.seq;
            on_event(&ev);
            if ev.kind.is_terminal() {
                return Ok(Some(ev));
            }
        }
    }
    Ok(None)
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

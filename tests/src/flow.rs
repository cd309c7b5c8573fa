//! The steps the suites share: a bridge with or without local dispatch, a worker the test
//! starts, running a task to its end and reading its events, the doc-writer's script.

use std::collections::HashMap;

use crate::app::TestApp;
use crate::git::BareRepo;
use crate::llm::{Reply, ScriptedLlm};
use crate::within;
use crate::worker::{WorkerProcess, worker_env};
use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_common::ids::TaskId;
use serde_json::json;

/// The worker binary built for the suite (`src/bin/test-worker.rs`), beside the test binary
/// that runs (`target/<profile>/deps/<test>` → `target/<profile>/test-worker`).
pub fn worker_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("a test binary lives in target/<profile>/deps");
        let bin = profile_dir.join(format!("test-worker{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "{} is missing: build it with `cargo test -p openclaw-tests` (it is a bin target)",
            bin.display()
        );
        bin.display().to_string()
    })
}

/// A bridge that starts workers itself, configured to reach `llm`.
pub async fn app_with_local_dispatch(llm: &ScriptedLlm, extra: &[(&str, &str)]) -> TestApp {
    local_dispatch(TestApp::builder(), llm, extra).spawn().await
}

/// Configures `b` to start workers itself, reaching `llm`.
pub fn local_dispatch(
    b: crate::app::TestAppBuilder,
    llm: &ScriptedLlm,
    extra: &[(&str, &str)],
) -> crate::app::TestAppBuilder {
    let mut b = b.local_dispatch(worker_bin(), &llm.url);
    for (k, v) in extra {
        b = b.env(k, *v);
    }
    b
}

/// A bridge that starts no workers; the test starts them.
pub async fn app_without_dispatch(extra: &[(&str, &str)]) -> TestApp {
    let mut b = TestApp::builder();
    for (k, v) in extra {
        b = b.env(k, *v);
    }
    b.spawn().await
}

/// Asserts that a worker started now finds no task left to deliver (and calls no model).
pub async fn assert_nothing_to_deliver(app: &TestApp, llm: &ScriptedLlm) {
    let calls = llm.requests().len();
    let mut worker = WorkerProcess::start(
        worker_bin(),
        &env_for(
            app,
            llm,
            &[
                ("OPENCLAW_FETCH_WAIT_SECS", "0.5"),
                ("OPENCLAW_NO_TASK_EXIT_CODE", "3"),
            ],
        ),
    );
    assert_eq!(worker.wait().await, Some(3), "{}", worker.log_text());
    assert_eq!(llm.requests().len(), calls);
}

/// What an operator does with the nats CLI to run a task again: find the newest stored task
/// of the agent (`nats stream view` / `get`) and `nats pub` its body on the same subject under
/// a new message id. Returns the stored message.
pub async fn republish_newest(
    app: &TestApp,
    agent: &str,
    msg_id: &str,
) -> async_nats::jetstream::message::StreamMessage {
    let stream = app
        .js()
        .get_stream(openclaw_common::names::TASKS_STREAM)
        .await
        .expect("the tasks stream");
    let stored = stream
        .get_last_raw_message_by_subject(&format!("openclaw.tasks.{agent}.*"))
        .await
        .expect("a stored task of the agent");
    let nats = app.nats.client().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    nats.publish_with_headers(stored.subject.to_string(), headers, stored.payload.clone())
        .await
        .expect("republished");
    nats.flush().await.expect("flushed");
    stored
}

/// A bridge without dispatch, a fresh repository, and one task on it, submitted.
pub async fn repo_task(bridge_env: &[(&str, &str)], prompt: &str) -> (TestApp, BareRepo, TaskId) {
    let app = app_without_dispatch(bridge_env).await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": prompt}))
        .await;
    (app, repo, id)
}

/// Waits until the bridges have handled and acked every stored max-deliveries advisory.
pub async fn advisories_all_acked(app: &TestApp) {
    let consumer = app
        .js()
        .get_stream(openclaw_common::names::ADVISORIES_STREAM)
        .await
        .expect("the advisories stream")
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
            openclaw_common::names::ADVISORIES_CONSUMER,
        )
        .await
        .expect("the bridges' advisories consumer");
    crate::eventually(30, "the advisories to be acked", || {
        let mut consumer = consumer.clone();
        async move {
            let info = consumer.info().await.ok()?;
            (info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
        }
    })
    .await;
}

/// The environment for a worker the test starts itself.
pub fn env_for(
    app: &TestApp,
    llm: &ScriptedLlm,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut env = worker_env(&app.nats.url(), &llm.url);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// Runs one worker (test settings plus `extra`) until it exits 0, and reads the task's events
/// to their end.
pub async fn work_task(
    app: &TestApp,
    llm: &ScriptedLlm,
    id: &TaskId,
    extra: &[(&str, &str)],
) -> (WorkerProcess, Vec<TaskEvent>) {
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(app, llm, extra));
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    let events = events_until_end(app, id).await;
    (worker, events)
}

/// [`work_task`], asserting the task completed (the worker's log when it did not).
pub async fn complete_task(
    app: &TestApp,
    llm: &ScriptedLlm,
    id: &TaskId,
    extra: &[(&str, &str)],
) -> (WorkerProcess, Vec<TaskEvent>) {
    let worker = WorkerProcess::start(worker_bin(), &env_for(app, llm, extra));
    completed_by(app, worker, id).await
}

/// Waits for a running `worker` to exit 0 and asserts that task `id` completed (the worker's
/// log when it did not); its events to their end.
pub async fn completed_by(
    app: &TestApp,
    mut worker: WorkerProcess,
    id: &TaskId,
) -> (WorkerProcess, Vec<TaskEvent>) {
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    let events = events_until_end(app, id).await;
    assert_eq!(
        kinds(&events).last(),
        Some(&"completed"),
        "{:?}\n{}",
        kinds(&events),
        worker.log_text()
    );
    (worker, events)
}

/// `pairs` as the borrowed settings the helpers take.
pub fn borrowed<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Every event of the task, read over SSE until the stream ends.
pub async fn events_until_end(app: &TestApp, id: &TaskId) -> Vec<TaskEvent> {
    let frames = within(90, "the task to end", app.events(id, None).await.collect()).await;
    frames
        .iter()
        .map(|f| serde_json::from_str(&f.data).expect("event JSON"))
        .collect()
}

/// `(ok, output)` of every tool result, in order.
pub fn tool_results(events: &[TaskEvent]) -> Vec<(bool, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolResult { ok, output, .. } => Some((*ok, output.clone())),
            _ => None,
        })
        .collect()
}

pub fn kinds(events: &[TaskEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

/// Waits until the task has an event of type `name`.
pub async fn wait_for_event(app: &TestApp, id: &TaskId, name: &str) {
    crate::eventually(60, name, || async {
        let events = app.stores().events.history(id).await.ok()?;
        events.iter().any(|e| e.kind.name() == name).then_some(())
    })
    .await;
}

/// The doc-writer's run in three model turns: list, write docs/USAGE.md, summarize.
pub fn doc_script() -> Vec<Reply> {
    vec![
        Reply::tool("list_files", json!({})),
        Reply::tool(
            "write_file",
            json!({"path": "docs/USAGE.md", "content": "# Usage\n\nRun `./hello`.\n"}),
        ),
        Reply::text("Add a usage guide\n\nDocuments how to run the program."),
    ]
}

/// Asserts that `r` is the bridge's JSON error: `status`, `code`, a message, and `field` when
/// given; returns the body for more.
pub async fn expect_error(
    r: reqwest::Response,
    status: u16,
    code: &str,
    field: Option<&str>,
) -> serde_json::Value {
    assert_eq!(r.status(), status);
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "errors are JSON"
    );
    let body: serde_json::Value = r.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    body
}

/// Asserts that the task whose events these are completed (its event kinds when not).
pub fn assert_completed(events: &[TaskEvent]) {
    assert_eq!(
        kinds(events).last(),
        Some(&"completed"),
        "{:?}",
        kinds(events)
    );
}

/// The text the task's `message` events streamed, joined.
pub fn streamed_text(events: &[TaskEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message { delta } => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

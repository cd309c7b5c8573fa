//! Agent profiles from a file, their limits, and the local dispatcher's bound.

use openclaw_tests::llm::message_text;
use std::time::Duration;

use openclaw_common::event::EventKind;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use serde_json::{Value, json};

use openclaw_tests::flow::{
    app_with_local_dispatch, app_without_dispatch, expect_error, work_task,
};

const AGENTS: &str = r#"
[[agent]]
name = "tiny"
description = "A doc agent with a two-step budget."
system_prompt = "You are tiny."
tools = ["write_file"]
model = "tiny-model"
limits = { max_steps = 2, max_tokens = 100000, max_wall_secs = 60 }

[[agent]]
name = "frugal"
system_prompt = "You are frugal."
tools = ["write_file"]
limits = { max_steps = 10, max_tokens = 30, max_wall_secs = 60 }

[[agent]]
name = "hasty"
system_prompt = "You are hasty."
tools = ["write_file"]
limits = { max_steps = 10, max_tokens = 100000, max_wall_secs = 1 }
"#;

/// A bridge configured with [`AGENTS`] (the file's directory, its path, the bridge).
async fn agents_app() -> (tempfile::TempDir, String, openclaw_tests::app::TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.toml");
    std::fs::write(&file, AGENTS).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", &file)]).await;
    (dir, file, app)
}

#[tokio::test]
async fn agents_come_from_the_configured_file_with_their_model_tools_and_limits() {
    let (_dir, file, app) = agents_app().await;
    let file = file.as_str();
    let repo = BareRepo::new();

    // The bridge knows only the agents of the file.
    let r = app
        .post_json(
            "/v1/tasks",
            &json!({"repo": repo.file_url(), "prompt": "p"}),
        )
        .await;
    let body = expect_error(r, 400, "invalid_request", Some("agent")).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("tiny"));

    // A model that never stops calling tools runs into the step limit.
    let llm = ScriptedLlm::turns(vec![Reply::tool(
        "write_file",
        json!({"path": "a.md", "content": "a"}),
    )])
    .await;
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "p", "agent": "tiny"}))
        .await;
    let (_worker, events) = work_task(
        &app,
        &llm,
        &id,
        &[("OPENCLAW_AGENTS", file), ("OPENCLAW_AGENT", "tiny")],
    )
    .await;
    let EventKind::Failed { reason, retryable } = &events.last().unwrap().kind else {
        panic!("{events:?}")
    };
    assert!(!retryable);
    assert!(reason.contains("step limit of 2"), "{reason}");
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["model"], "tiny-model");
    assert_eq!(requests[0]["tools"].as_array().unwrap().len(), 1);
    assert!(message_text(&requests[0]["messages"][0]).starts_with("You are tiny."));
}

#[tokio::test]
async fn local_dispatch_never_runs_more_workers_than_allowed_and_finishes_every_task() {
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("write_file", json!({"path": "a.md", "content": "a"}))
            .delayed(Duration::from_millis(400)),
        Reply::text("Wrote a.md"),
    ])
    .await;
    let app = app_with_local_dispatch(&llm, &[("OPENCLAW_MAX_WORKERS", "1")]).await;
    let repo = BareRepo::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.submit(&json!({"repo": repo.file_url(), "prompt": "p"}))
                .await,
        );
    }
    let max_running = std::sync::atomic::AtomicUsize::new(0);
    let seen = &max_running;
    let app = &app;
    openclaw_tests::eventually(90, "all tasks to complete", || async move {
        let list: Value = app.get("/v1/tasks").await.json().await.ok()?;
        let states: Vec<String> = list["tasks"]
            .as_array()?
            .iter()
            .map(|t| t["status"].as_str().unwrap_or_default().to_owned())
            .collect();
        let running = states.iter().filter(|s| *s == "running").count();
        seen.fetch_max(running, std::sync::atomic::Ordering::Relaxed);
        states.iter().all(|s| s == "completed").then_some(())
    })
    .await;
    assert_eq!(max_running.into_inner(), 1, "one worker at a time");
    for id in &ids {
        assert_eq!(repo.new_commits(&format!("openclaw/{id}")).len(), 1);
    }
}

#[tokio::test]
async fn token_and_wall_time_limits_end_the_task_with_their_reason() {
    let (_dir, file, app) = agents_app().await;
    let file = file.as_str();
    let repo = BareRepo::new();
    // Each call costs the scripted model's usage (at least 25 tokens): two pass 30.
    let write = Reply::tool("write_file", json!({"path": "a.md", "content": "a"}));
    for (agent, reply, reason) in [
        ("frugal", write.clone(), "token limit of 30"),
        (
            "hasty",
            write.delayed(Duration::from_millis(1200)),
            "wall-time limit of 1s",
        ),
    ] {
        let llm = ScriptedLlm::turns(vec![reply]).await;
        let id = app
            .submit(&json!({"repo": repo.file_url(), "prompt": "p", "agent": agent}))
            .await;
        let (_worker, events) = work_task(
            &app,
            &llm,
            &id,
            &[("OPENCLAW_AGENTS", file), ("OPENCLAW_AGENT", agent)],
        )
        .await;
        let EventKind::Failed {
            reason: got,
            retryable,
        } = &events.last().unwrap().kind
        else {
            panic!("{agent}: {events:?}")
        };
        assert!(!retryable);
        assert!(got.contains(reason), "{agent}: {got}");
    }
}

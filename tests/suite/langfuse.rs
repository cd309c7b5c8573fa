//! Langfuse traces from the worker: a trace per task, a generation per model call with model,
//! tokens and latency, errors as events; the keys go only into the Authorization header.

use openclaw_tests::langfuse::{FakeLangfuse, base64};
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

use crate::e2e::{app_without_dispatch, env_for, events_until_end, repo_task, worker_bin};

const SECRET: &str = "sk-lf-secret-4242";

#[tokio::test]
async fn a_task_is_traced_with_a_generation_per_model_call() {
    let langfuse = FakeLangfuse::start().await;
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("write_file", json!({"path": "a.md", "content": "a"})),
        Reply::text("Wrote a.md"),
    ])
    .await;
    let (app, _repo, id) = repo_task(&[], "Write a.md").await;
    let env = env_for(
        &app,
        &llm,
        &[
            ("LANGFUSE_HOST", &langfuse.url),
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", SECRET),
        ],
    );
    let mut worker = WorkerProcess::start(worker_bin(), &env);
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    events_until_end(&app, &id).await;

    let events = langfuse.events();
    let of = |t: &str| {
        events
            .iter()
            .filter(|e| e["type"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let traces = of("trace-create");
    assert_eq!(traces[0]["body"]["id"], id.to_string());
    assert_eq!(traces[0]["body"]["name"], "openclaw doc-writer");
    assert_eq!(traces[0]["body"]["input"], "Write a.md");
    assert_eq!(traces.last().unwrap()["body"]["output"], "Wrote a.md");
    let generations = of("generation-create");
    assert_eq!(generations.len(), 2);
    for g in &generations {
        let b = &g["body"];
        assert_eq!(b["traceId"], id.to_string());
        assert_eq!(b["model"], "test-model");
        assert!(
            b["usage"]["input"].as_u64().unwrap() > 0 && b["usage"]["output"].as_u64().unwrap() > 0
        );
        assert!(b["startTime"].as_str().unwrap() <= b["endTime"].as_str().unwrap());
    }
    assert_eq!(
        generations[0]["body"]["output"]["tool_calls"],
        json!(["write_file"])
    );
    let expected = format!("Basic {}", base64(format!("pk-lf-1:{SECRET}").as_bytes()));
    assert!(
        langfuse
            .auth_headers()
            .iter()
            .all(|h| h.as_deref() == Some(expected.as_str()))
    );
    assert!(!worker.log_text().contains(SECRET));
}

#[tokio::test]
async fn a_failed_task_records_its_error() {
    let langfuse = FakeLangfuse::start().await;
    let llm = ScriptedLlm::turns(vec![Reply::error(401, "invalid api key")]).await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let env = env_for(
        &app,
        &llm,
        &[
            ("LANGFUSE_HOST", &langfuse.url),
            ("LANGFUSE_PUBLIC_KEY", "pk"),
            ("LANGFUSE_SECRET_KEY", SECRET),
        ],
    );
    let mut worker = WorkerProcess::start(worker_bin(), &env);
    assert_eq!(worker.wait().await, Some(0));
    events_until_end(&app, &id).await;
    let errors: Vec<_> = langfuse
        .events()
        .into_iter()
        .filter(|e| e["type"] == "event-create")
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["body"]["level"], "ERROR");
    assert_eq!(errors[0]["body"]["traceId"], id.to_string());
    assert!(
        errors[0]["body"]["statusMessage"]
            .as_str()
            .unwrap()
            .contains("invalid api key")
    );
}

#[tokio::test]
async fn half_a_langfuse_configuration_is_refused() {
    let llm = ScriptedLlm::turns(vec![]).await;
    let app = app_without_dispatch(&[]).await;
    let mut worker = WorkerProcess::start(
        worker_bin(),
        &env_for(&app, &llm, &[("LANGFUSE_HOST", "http://127.0.0.1:9")]),
    );
    assert_eq!(worker.wait().await, Some(2));
    assert!(worker.log_text().contains("LANGFUSE_PUBLIC_KEY"));
}

//! Traces over OTLP, decoded with the OTLP protobuf definitions: Langfuse v4 (its endpoint,
//! Basic auth, the ingestion-version header) and any collector at once; one trace per task
//! (its UUID) in Langfuse's observations-first shape; errors; spans sent while the task runs.

use std::time::Duration;

use openclaw_tests::langfuse::{FakeLangfuse, ReceivedSpan, base64};
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

use openclaw_tests::flow::{
    app_without_dispatch, borrowed, env_for, events_until_end, repo_task, work_task, worker_bin,
};

const SECRET: &str = "sk-lf-secret-4242";

fn langfuse_env(langfuse: &FakeLangfuse) -> Vec<(&'static str, String)> {
    vec![
        ("LANGFUSE_HOST", langfuse.url.clone()),
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-1".into()),
        ("LANGFUSE_SECRET_KEY", SECRET.into()),
    ]
}

fn by_kind<'a>(spans: &'a [ReceivedSpan], kind: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.kind() == kind).collect()
}

#[tokio::test]
async fn a_task_is_one_trace_in_langfuse_v4_shape_and_reaches_any_collector_too() {
    let langfuse = FakeLangfuse::start().await;
    let collector = FakeLangfuse::start().await;
    // Each call costs $0.0025, as the gateway reports it.
    let llm = ScriptedLlm::priced(
        vec![
            Reply::tool("write_file", json!({"path": "a.md", "content": "a"})),
            Reply::text("Wrote a.md"),
        ],
        0.0025,
    )
    .await;
    // The bridge traces the submit to the same Langfuse.
    let bridge_env = langfuse_env(&langfuse);
    let bridge_env = borrowed(&bridge_env);
    let (app, _repo, id) = repo_task(&bridge_env, "Write a.md").await;
    let mut extra: Vec<(&str, String)> = langfuse_env(&langfuse);
    extra.push(("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()));
    extra.push((
        "OTEL_EXPORTER_OTLP_HEADERS",
        "x-collector-key=ck-123".into(),
    ));
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &extra));
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    events_until_end(&app, &id).await;

    // Langfuse v4: its OTLP endpoint, Basic public:secret, the ingestion version; nothing of
    // the collector's credentials.
    let expected = format!("Basic {}", base64(format!("pk-lf-1:{SECRET}").as_bytes()));
    let exports = langfuse.exports();
    assert!(!exports.is_empty());
    for e in &exports {
        assert_eq!(e.path, "/api/public/otel/v1/traces");
        assert_eq!(e.headers.get("authorization"), Some(&expected));
        assert_eq!(
            e.headers
                .get("x-langfuse-ingestion-version")
                .map(String::as_str),
            Some("4")
        );
        assert!(!e.headers.contains_key("x-collector-key"));
        assert_eq!(
            e.headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
    }
    // The collector, configured the standard way, gets the same spans with its own header.
    let to_collector = collector.exports();
    assert!(to_collector.iter().all(|e| e.path == "/v1/traces"
        && e.headers.get("x-collector-key").map(String::as_str) == Some("ck-123")
        && !e.headers.contains_key("authorization")));

    // The bridge's submit span comes within its batch interval.
    let spans = openclaw_tests::eventually(10, "the bridge's submit span", || async {
        let spans = langfuse.spans();
        spans
            .iter()
            .any(|s| s.name == "submit doc-writer")
            .then_some(spans)
    })
    .await;
    let trace = id.to_string().replace('-', "");
    assert!(
        spans.iter().all(|s| s.trace_id == trace),
        "one trace: the task's id"
    );
    let submit = spans
        .iter()
        .find(|s| s.name == "submit doc-writer")
        .unwrap()
        .clone();
    assert_eq!(submit.parent_span_id, "", "the trace starts at the submit");
    assert_eq!(submit.str("openclaw.task_id"), id.to_string());
    let spans: Vec<ReceivedSpan> = spans
        .into_iter()
        .filter(|s| s.name != "submit doc-writer")
        .collect();
    assert_eq!(spans.len(), collector.spans().len());
    let roots = by_kind(&spans, "agent");
    assert_eq!(roots.len(), 1);
    let root = roots[0];
    assert_eq!(
        root.parent_span_id, submit.span_id,
        "the worker's attempt hangs under the bridge's submit (traceparent on the message)"
    );
    assert_eq!(root.str("langfuse.observation.input"), "Write a.md");
    assert_eq!(root.str("langfuse.observation.output"), "Wrote a.md");
    assert_eq!(root.str("openclaw.task_id"), id.to_string());
    assert_eq!(
        root.attr("langfuse.trace.tags"),
        Some(&json!(["doc-writer", "test-model"]))
    );
    let children: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind() != "agent").collect();
    assert!(children.iter().all(|s| s.parent_span_id == root.span_id));

    let generations = by_kind(&spans, "generation");
    assert_eq!(generations.len(), 2, "one per model call");
    for g in &generations {
        assert_eq!(g.str("gen_ai.request.model"), "test-model");
        let usage: serde_json::Value =
            serde_json::from_str(g.str("langfuse.observation.usage_details")).unwrap();
        assert!(usage["input"].as_u64().unwrap() > 0 && usage["output"].as_u64().unwrap() > 0);
        assert!(g.str("langfuse.observation.input").contains("Write a.md"));
        assert!(g.start_unix_nano <= g.end_unix_nano);
        assert!(
            !g.str("langfuse.observation.completion_start_time")
                .is_empty()
        );
        let cost: serde_json::Value =
            serde_json::from_str(g.str("langfuse.observation.cost_details")).unwrap();
        assert_eq!(cost["total"], 0.0025);
    }
    let status = app.status(&id).await;
    assert_eq!(status["usage"]["cost_usd"], 0.005, "{status}");
    assert!(
        generations[0]
            .str("langfuse.observation.output")
            .contains("write_file")
    );
    let tools = by_kind(&spans, "tool");
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "tool write_file");
    assert!(tools[0].str("langfuse.observation.input").contains("a.md"));
    let steps: Vec<&str> = by_kind(&spans, "span")
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for step in ["git clone", "git commit", "git push"] {
        assert!(steps.contains(&step), "{steps:?}");
    }
    assert!(!worker.log_text().contains(SECRET));
}

#[tokio::test]
async fn a_failed_task_is_an_error_observation() {
    let langfuse = FakeLangfuse::start().await;
    let llm = ScriptedLlm::turns(vec![Reply::error(401, "invalid api key")]).await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let extra = langfuse_env(&langfuse);
    work_task(&app, &llm, &id, &borrowed(&extra)).await;
    let spans = langfuse.spans();
    let root = by_kind(&spans, "agent")[0].clone();
    assert_eq!(root.status_code, 2, "error status");
    assert_eq!(root.str("langfuse.observation.level"), "ERROR");
    assert!(
        root.str("langfuse.observation.status_message")
            .contains("invalid api key")
    );
    assert!(root.events.contains(&"failed".to_owned()));
    let generation = by_kind(&spans, "generation")[0].clone();
    assert_eq!(generation.str("langfuse.observation.level"), "ERROR");
}

#[tokio::test]
async fn spans_go_out_while_the_task_runs_so_a_killed_worker_loses_only_its_last_second() {
    let langfuse = FakeLangfuse::start().await;
    let llm = ScriptedLlm::queue(vec![
        Reply::tool("write_file", json!({"path": "a.md", "content": "a"})),
        Reply::text("never delivered").delayed(Duration::from_secs(60)),
    ])
    .await;
    let (app, _repo, _id) = repo_task(&[], "p").await;
    let extra = langfuse_env(&langfuse);
    let extra = borrowed(&extra);
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &extra));
    // The first model call and its tool call arrive while the worker waits on the second.
    openclaw_tests::eventually(15, "spans while the task runs", || async {
        let spans = langfuse.spans();
        (by_kind(&spans, "tool").len() == 1 && by_kind(&spans, "generation").len() == 1)
            .then_some(())
    })
    .await;
    worker.signal("KILL");
    worker.wait().await;
    let spans = langfuse.spans();
    assert_eq!(by_kind(&spans, "generation").len(), 1);
    assert!(
        by_kind(&spans, "span")
            .iter()
            .any(|s| s.name == "git clone")
    );
}

#[tokio::test]
async fn a_refusing_endpoint_is_logged_once_with_its_status_and_fails_nothing() {
    let langfuse = FakeLangfuse::start().await;
    langfuse.answer(401);
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("write_file", json!({"path": "a.md", "content": "a"})),
        Reply::text("Wrote a.md"),
    ])
    .await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let extra = langfuse_env(&langfuse);
    let (worker, events) = work_task(&app, &llm, &id, &borrowed(&extra)).await;
    assert_eq!(events.last().unwrap().kind.name(), "completed");
    let log = worker.log_text();
    assert_eq!(
        log.matches("traces not delivered: HTTP 401").count(),
        1,
        "{log}"
    );
}

/// Half a Langfuse configuration (the kit's placeholder keys, no host) does not stop a worker:
/// it starts with traces off and says so once, naming the variables and never their values.
#[tokio::test]
async fn half_a_langfuse_configuration_turns_traces_off_with_one_warning() {
    let app = app_without_dispatch(&[]).await;
    let llm = openclaw_tests::llm::ScriptedLlm::turns(crate::security::doc_script()).await;
    let repo = openclaw_tests::git::BareRepo::new();
    let id = app
        .submit(&serde_json::json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    let (worker, _) = openclaw_tests::flow::complete_task(
        &app,
        &llm,
        &id,
        &[
            ("LANGFUSE_PUBLIC_KEY", "lf_pk_placeholder_1"),
            ("LANGFUSE_SECRET_KEY", "lf_sk_placeholder_2"),
        ],
    )
    .await;
    let log = worker.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Langfuse traces are off"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0]
            .contains("LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY set but LANGFUSE_HOST not"),
        "{}",
        warnings[0]
    );
    assert!(!log.contains("lf_sk_placeholder_2") && !log.contains("lf_pk_placeholder_1"));
}

#[tokio::test]
async fn a_chat_request_traces_its_session_and_user() {
    let langfuse = FakeLangfuse::start().await;
    let llm = ScriptedLlm::turns(vec![Reply::text("Nothing to change.")]).await;
    let extra = langfuse_env(&langfuse);
    let extra = borrowed(&extra);
    let app = openclaw_tests::flow::app_with_local_dispatch(&llm, &extra).await;
    let repo = openclaw_tests::git::BareRepo::new();
    let r = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .header("X-OpenClaw-Session-Key", "conversation-1")
        .json(
            &json!({"model": "doc-writer", "user": "alice", "stream": false,
                      "repo": repo.file_url(),
                      "messages": [{"role": "user", "content": "Look at the docs"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let root = openclaw_tests::eventually(10, "the attempt's root observation", || async {
        by_kind(&langfuse.spans(), "agent")
            .first()
            .map(|s| (*s).clone())
    })
    .await;
    // The conversation's key as the bridge keeps it (derived from the client's).
    let key = openclaw_common::session::SessionKey::from_client("conversation-1").unwrap();
    assert_eq!(root.str("session.id"), key.as_str());
    assert_eq!(root.str("user.id"), "alice");
}

#[tokio::test]
async fn a_retried_model_call_shows_its_retries() {
    let langfuse = FakeLangfuse::start().await;
    let llm = ScriptedLlm::queue(vec![
        Reply::error(503, "overloaded"),
        Reply::text("Nothing to change."),
    ])
    .await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let extra = langfuse_env(&langfuse);
    work_task(&app, &llm, &id, &borrowed(&extra)).await;
    let spans = langfuse.spans();
    let generations = by_kind(&spans, "generation");
    assert_eq!(
        generations.len(),
        1,
        "one observation for the call and its retry"
    );
    assert_eq!(generations[0].events, ["retry"]);
}

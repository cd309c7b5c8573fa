//! What the model's gateway and the model do wrong: rate limits, 5xx until the attempts run
//! out, a refused key, an HTML page, malformed tool arguments and path escapes.

use openclaw_tests::llm::message_text;
use std::time::Duration;

use openclaw_common::event::EventKind;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

use crate::resilience::{last_failed, write};
use openclaw_tests::flow::{
    app_without_dispatch, assert_completed, env_for, events_until_end, kinds, repo_task,
    streamed_text, tool_results, work_task, worker_bin,
};

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_the_task_completes() {
    let llm = ScriptedLlm::queue(vec![
        Reply::Error {
            status: 429,
            retry_after: Some(1),
            message: "slow down".into(),
        },
        write("a.md", "a"),
        Reply::text("Wrote a.md"),
    ])
    .await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let started = std::time::Instant::now();
    let (worker, events) = work_task(&app, &llm, &id, &[]).await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    assert_eq!(llm.requests().len(), 3);
    // The retry waited for Retry-After (1 s), not the configured 50 ms base delay.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(worker.log_text().contains("retrying"));
}

#[tokio::test]
async fn gateway_500s_until_the_attempts_run_out_fail_the_task() {
    let llm = ScriptedLlm::turns(vec![Reply::error(500, "upstream exploded")]).await;
    let (app, _repo, id) = repo_task(&[("OPENCLAW_MAX_DELIVER", "2")], "p").await;
    // Attempt 1: 1 call + 2 retries, then handed back; attempt 2: the same, then final.
    for attempt in 1..=2 {
        let mut worker = WorkerProcess::start(
            worker_bin(),
            &env_for(&app, &llm, &[("OPENCLAW_FETCH_WAIT_SECS", "5")]),
        );
        assert_eq!(
            worker.wait().await,
            Some(0),
            "attempt {attempt}: {}",
            worker.log_text()
        );
    }
    assert_eq!(llm.requests().len(), 6);
    let events = events_until_end(&app, &id).await;
    let failures: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Failed { retryable, reason } => {
                Some((e.attempt, *retryable, reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!((failures[0].0, failures[0].1), (1, true));
    assert_eq!((failures[1].0, failures[1].1), (2, false));
    assert!(failures[1].2.contains("upstream exploded"), "{failures:?}");
    let status = app.status(&id).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["attempts"], 2);
}

#[tokio::test]
async fn a_401_from_the_gateway_fails_at_once_with_its_message() {
    // The gateway echoes the key it refused, as some do.
    let echo = format!("invalid api key {}", openclaw_tests::worker::TEST_LLM_KEY);
    let llm = ScriptedLlm::turns(vec![Reply::error(401, &echo)]).await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    assert_eq!(worker.wait().await, Some(0));
    assert_eq!(llm.requests().len(), 1, "no retries on 401");
    let events = events_until_end(&app, &id).await;
    let (reason, retryable) = last_failed(&events);
    assert!(!retryable);
    assert!(
        reason.contains("invalid api key") && reason.contains("401"),
        "{reason}"
    );
    assert!(reason.contains("[redacted]"), "{reason}");
    assert!(
        reason.contains(&format!("{}/v1", llm.url)) && reason.contains("LITELLM_BASE_URL"),
        "the gateway is named: {reason}"
    );
    assert!(
        !reason.contains(openclaw_tests::worker::TEST_LLM_KEY),
        "the key never reaches events"
    );
    let status = app.status(&id).await.to_string();
    assert!(
        !status.contains(openclaw_tests::worker::TEST_LLM_KEY),
        "nor the status"
    );
    assert!(
        !worker
            .log_text()
            .contains(openclaw_tests::worker::TEST_LLM_KEY),
        "nor the log"
    );
    assert_eq!(app.status(&id).await["status"], "failed");
}

#[tokio::test]
async fn malformed_tool_arguments_and_path_escapes_go_back_to_the_model_as_errors() {
    let outside = tempfile::tempdir().unwrap();
    let repo = BareRepo::new();
    // The repo ships a symlink that points out of any checkout.
    let seed = tempfile::tempdir().unwrap();
    openclaw_tests::git::git(
        seed.path(),
        &["clone", "-q", repo.path().to_str().unwrap(), "w"],
    );
    let w = seed.path().join("w");
    std::os::unix::fs::symlink(outside.path(), w.join("escape")).unwrap();
    openclaw_tests::git::git(&w, &["add", "escape"]);
    openclaw_tests::git::git(&w, &["commit", "-q", "-m", "add a symlink"]);
    openclaw_tests::git::git(&w, &["push", "-q", "origin", "main"]);

    let llm = ScriptedLlm::turns(vec![
        Reply::raw_tool("write_file", r#"{"path": "x.md", "content": "unterminated"#),
        write("../evil.md", "x"),
        Reply::tool("read_file", json!({"path": "/etc/passwd"})),
        write("escape/evil.md", "x"),
        Reply::text("I could not write outside the repository."),
    ])
    .await;
    let app = app_without_dispatch(&[]).await;
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "p"}))
        .await;
    let (_worker, events) = work_task(&app, &llm, &id, &[]).await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    let results = tool_results(&events);
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|(ok, _)| !ok), "{results:?}");
    assert!(results[0].1.contains("not valid JSON"), "{results:?}");
    assert!(results[1].1.contains(".."), "{results:?}");
    assert!(results[2].1.contains("absolute"), "{results:?}");
    assert!(results[3].1.contains("outside"), "{results:?}");
    // The model was told each time.
    let requests = llm.requests();
    let told = requests[1]["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(told["role"], "tool");
    assert!(message_text(told).contains("not valid JSON"));
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(!std::path::Path::new(&repo.root().join("evil.md")).exists());
}

#[tokio::test]
async fn an_html_page_from_the_gateway_reads_as_what_it_is() {
    let page = "<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>";
    let llm = ScriptedLlm::queue(vec![
        // A proxy's error page, then a proxy that answers 200 with a login page.
        Reply::Raw {
            status: 502,
            content_type: "text/html",
            body: page.into(),
        },
        Reply::Raw {
            status: 200,
            content_type: "text/html",
            body: "<html><title>Sign in</title></html>".into(),
        },
    ])
    .await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let (worker, events) = work_task(&app, &llm, &id, &[]).await;
    let (reason, retryable) = last_failed(&events);
    assert!(!retryable, "a page that is not the API will not become it");
    assert!(
        reason.contains("not JSON (text/html)") && reason.contains("<html><title>Sign in"),
        "{reason}"
    );
    assert!(!reason.contains("expected value"), "{reason}");
    let log = worker.log_text();
    assert!(
        log.contains("HTTP 502 Bad Gateway: <html><head><title>502 Bad Gateway</title></head>"),
        "the retried 502 is logged with its first line: {log}"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_off_is_asked_again_and_its_text_marked_as_broken() {
    let half = json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
        "choices": [{"index": 0, "delta": {"content": "Half an ans"}, "finish_reason": null}]});
    let llm = ScriptedLlm::queue(vec![
        Reply::Raw {
            status: 200,
            content_type: "text/event-stream",
            body: format!("data: {half}\n\n"),
        },
        write("a.md", "a"),
        Reply::text("Wrote a.md"),
    ])
    .await;
    let (app, repo, id) = repo_task(&[], "p").await;
    let (_worker, events) = work_task(&app, &llm, &id, &[]).await;
    assert_completed(&events);
    let streamed = streamed_text(&events);
    assert!(
        streamed
            .starts_with("Half an ans\n[… the answer broke off here; asking the model again …]\n"),
        "{streamed:?}"
    );
    assert_eq!(llm.requests().len(), 3, "the broken answer was asked again");
    assert!(repo.new_commits(&format!("openclaw/{id}"))[0].ends_with("Wrote a.md"));
}

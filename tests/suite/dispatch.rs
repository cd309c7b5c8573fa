//! Dispatch with feedback: workers that cannot start are started again with growing pauses,
//! the waiting tasks are told why (in the worker's own words), `/ready` says dispatch is
//! degraded, and a task that waited past its queue deadline fails with that reason.

use openclaw_common::event::EventKind;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use serde_json::{Value, json};

use openclaw_tests::flow::{app_with_local_dispatch, assert_completed, events_until_end, kinds};

/// A bridge with local dispatch and `llm`, and one task on a new repository, run to its end.
async fn one_task(
    llm: &ScriptedLlm,
) -> (
    openclaw_tests::app::TestApp,
    openclaw_common::ids::TaskId,
    Vec<openclaw_common::event::TaskEvent>,
) {
    let app = app_with_local_dispatch(llm, &[]).await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Look"}))
        .await;
    let events = events_until_end(&app, &id).await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    (app, id, events)
}

/// The value of an unlabelled-but-for-agent counter in a scrape, 0 when absent.
fn counter(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_worker_that_dies_at_start_is_backed_off_and_the_task_says_why_then_fails_at_its_deadline()
 {
    let llm = ScriptedLlm::turns(vec![Reply::text("never asked")]).await;
    // A git token without the hosts it belongs to: every worker exits 2 at start (the bridge
    // reads neither, so it starts).
    let app = app_with_local_dispatch(
        &llm,
        &[
            ("GIT_TOKEN", "git-secret-77-token"),
            ("OPENCLAW_GIT_CREDENTIAL_HOSTS", ""),
            ("OPENCLAW_QUEUE_TIMEOUT_SECS", "9"),
            ("OPENCLAW_DISPATCH_POLL_SECS", "0.1"),
        ],
    )
    .await;
    let repo = BareRepo::new();
    let started = std::time::Instant::now();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;

    let events = events_until_end(&app, &id).await;
    let waited = started.elapsed();
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Waiting { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons.len(),
        1,
        "told once, not once per start: {:?}",
        kinds(&events)
    );
    assert!(
        reasons[0].starts_with("workers for doc-writer exit at start: invalid configuration:")
            && reasons[0].contains("OPENCLAW_GIT_CREDENTIAL_HOSTS"),
        "the worker's own words: {}",
        reasons[0]
    );
    assert!(!reasons[0].contains("git-secret-77-token"));
    let EventKind::Failed { reason, retryable } = &events.last().unwrap().kind else {
        panic!("{:?}", kinds(&events))
    };
    assert!(!retryable);
    assert_eq!(reason, &format!("not started within 9s: {}", reasons[0]));
    let status = app.status(&id).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"], reason.as_str());

    // Starts came with growing gaps (1 s, 2 s, 4 s, …): a handful in the time it waited,
    // not one per poll.
    let scrape = app.get("/metrics").await.text().await.unwrap();
    let starts = counter(&scrape, "openclaw_workers_started_total");
    let failures = counter(&scrape, "openclaw_worker_start_failures_total");
    assert!(
        (2..=6).contains(&starts),
        "{starts} starts in {waited:?} (polling every 0.1 s)"
    );
    assert!(failures >= starts - 1, "{failures} failures of {starts}");

    // /ready answers (without a token) and reports dispatch as degraded, with the reason.
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["dispatch"], "degraded");
    assert_eq!(ready["waiting"]["doc-writer"], reasons[0].as_str());
}

#[tokio::test]
async fn a_working_worker_clears_the_reason() {
    let llm = ScriptedLlm::turns(vec![Reply::text("Nothing to change.")]).await;
    let (app, id, events) = one_task(&llm).await;
    assert!(!kinds(&events).contains(&"waiting"));
    let status = app.status(&id).await;
    assert!(status.get("waiting_reason").is_none(), "{status}");
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["dispatch"], "ok", "{ready}");
}

#[tokio::test]
async fn a_task_handed_back_for_a_retry_gets_a_worker_when_its_nak_delay_is_over() {
    // Two attempts fail transiently (the gateway answers 500 to every try of them), the third
    // works. ack_wait is five minutes: a retry must not wait for it.
    let busy = || Reply::error(500, "overloaded");
    let llm = ScriptedLlm::queue(vec![
        busy(),
        busy(),
        busy(),
        busy(),
        busy(),
        busy(),
        Reply::text("Nothing to change."),
    ])
    .await;
    let app = app_with_local_dispatch(
        &llm,
        &[
            ("OPENCLAW_ACK_WAIT_SECS", "300"),
            ("OPENCLAW_NAK_DELAY_SECS", "1"),
        ],
    )
    .await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Look"}))
        .await;
    let events = openclaw_tests::within(
        30,
        "three attempts, each within its nak delay of the last",
        events_until_end(&app, &id),
    )
    .await;
    assert_completed(&events);
    assert_eq!(app.status(&id).await["attempts"], 3);
}

#[tokio::test]
async fn a_repository_or_branch_that_does_not_exist_fails_on_the_first_attempt() {
    let llm = ScriptedLlm::turns(vec![Reply::text("never asked")]).await;
    let repo = BareRepo::new();
    let server = openclaw_tests::git::GitHttpServer::start(repo.root(), "bot", "pw-1234567");
    let app = app_with_local_dispatch(
        &llm,
        &[("GIT_USERNAME", "bot"), ("GIT_TOKEN", "pw-1234567")],
    )
    .await;
    for body in [
        json!({"repo": server.url("missing.git"), "prompt": "p"}),
        json!({"repo": format!("{}-missing", repo.file_url()), "prompt": "p"}),
        json!({"repo": repo.file_url(), "branch": "no-such-branch", "prompt": "p"}),
    ] {
        let id = app.submit(&body).await;
        let events = events_until_end(&app, &id).await;
        let EventKind::Failed { reason, retryable } = &events.last().unwrap().kind else {
            panic!("{body}: {:?}", kinds(&events))
        };
        assert!(!retryable, "{body}: {reason}");
        assert_eq!(app.status(&id).await["attempts"], 1, "{body}: {reason}");
        assert!(reason.contains("not found"), "{body}: {reason}");
    }
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn task_outcomes_and_times_are_metrics_that_promtool_accepts() {
    let llm = ScriptedLlm::turns(vec![Reply::text("Nothing to change.")]).await;
    let (app, _id, _events) = one_task(&llm).await;
    let scrape = openclaw_tests::eventually(10, "the outcome in the metrics", || async {
        let scrape = app.get("/metrics").await.text().await.ok()?;
        scrape
            .contains("openclaw_tasks_finished_total{agent=\"doc-writer\",outcome=\"completed\"} 1")
            .then_some(scrape)
    })
    .await;
    assert!(
        scrape.contains(
            "openclaw_llm_tokens_total{agent=\"doc-writer\",kind=\"input\",model=\"test-model\"}"
        ) || scrape.contains(
            "openclaw_llm_tokens_total{agent=\"doc-writer\",model=\"test-model\",kind=\"input\"}"
        ),
        "{scrape}"
    );
    for line in [
        "openclaw_task_duration_seconds_count{agent=\"doc-writer\",outcome=\"completed\"} 1",
        "openclaw_task_duration_seconds_bucket{agent=\"doc-writer\",outcome=\"completed\",le=\"+Inf\"} 1",
        "openclaw_task_queue_seconds_count{agent=\"doc-writer\"} 1",
        "# TYPE openclaw_llm_tokens_total counter",
        "# TYPE openclaw_worker_seconds_total counter",
        "# TYPE openclaw_task_queue_seconds histogram",
    ] {
        assert!(scrape.contains(line), "missing {line:?} in:\n{scrape}");
    }
    // The exposition is valid: Prometheus' own linter, from Debian's prometheus package.
    let promtool = std::path::Path::new("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "promtool is missing: run `bash scripts/tools.sh` (it installs Debian's prometheus package)"
    );
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(scrape.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A worker that dies before it can write its termination message (here a wrapper that cannot
/// load a library) still says why: local dispatch keeps the tail of its stderr, credentials
/// taken out, and that is the task's waiting reason rather than a bare exit code.
#[tokio::test]
async fn a_worker_that_dies_before_its_termination_message_is_told_by_its_last_words() {
    let llm = ScriptedLlm::turns(vec![Reply::text("never asked")]).await;
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("worker.sh");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\necho starting >&2\n\
         echo \"openclaw-worker: error while loading shared libraries: libssl.so.3 (key $LITELLM_API_KEY)\" >&2\n\
         exit 127\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let app = app_with_local_dispatch(
        &llm,
        &[
            ("OPENCLAW_WORKER_BIN", wrapper.to_str().unwrap()),
            ("OPENCLAW_DISPATCH_POLL_SECS", "0.1"),
        ],
    )
    .await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    let reason = app.waiting_reason(&id, 20).await;
    assert!(
        reason.starts_with("workers for doc-writer exit at start:")
            && reason.contains("error while loading shared libraries: libssl.so.3"),
        "{reason}"
    );
    assert!(
        reason.contains("starting / "),
        "the tail, in order: {reason}"
    );
    assert!(
        !reason.contains(openclaw_tests::worker::TEST_LLM_KEY) && reason.contains("[redacted]"),
        "{reason}"
    );
}

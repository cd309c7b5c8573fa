//! What goes wrong: gateway errors, a model that misbehaves, path escapes, a worker killed or
//! terminated mid-task, cancel, and the agent without a repo.

use openclaw_tests::llm::message_text;
use std::time::Duration;

use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_common::ids::TaskId;
use openclaw_common::names;
use openclaw_common::status::TaskState;
use openclaw_tests::app::TestApp;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

use openclaw_tests::flow::{
    app_without_dispatch, assert_nothing_to_deliver, env_for, events_until_end, kinds, repo_task,
    republish_newest, wait_for_event, work_task, worker_bin,
};

pub(crate) fn write(path: &str, content: &str) -> Reply {
    Reply::tool("write_file", json!({"path": path, "content": content}))
}

/// Waits until the scripted model has received its second request.
pub(crate) async fn second_call_in_flight(llm: &ScriptedLlm) {
    openclaw_tests::eventually(10, "the second model call", || async {
        (llm.requests().len() >= 2).then_some(())
    })
    .await;
}

pub(crate) fn last_failed(events: &[openclaw_common::event::TaskEvent]) -> (String, bool) {
    match &events.last().expect("events").kind {
        EventKind::Failed { reason, retryable } => (reason.clone(), *retryable),
        other => panic!("expected failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_worker_killed_mid_task_is_replaced_and_the_branch_gets_one_commit() {
    let llm = ScriptedLlm::queue(vec![
        // Attempt 1 writes a file, then hangs in the next model call and is killed.
        write("docs/a.md", "first try"),
        Reply::text("never delivered").delayed(Duration::from_secs(60)),
        // Attempt 2 does the task from the start.
        write("docs/a.md", "second try"),
        Reply::text("Write docs/a.md"),
    ])
    .await;
    let (app, repo, id) = repo_task(&[("OPENCLAW_ACK_WAIT_SECS", "2")], "p").await;
    let mut first = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    wait_for_event(&app, &id, "tool_result").await;
    second_call_in_flight(&llm).await;
    first.signal("KILL");
    first.wait().await;

    let mut second = WorkerProcess::start(
        worker_bin(),
        &env_for(&app, &llm, &[("OPENCLAW_FETCH_WAIT_SECS", "15")]),
    );
    assert_eq!(second.wait().await, Some(0), "{}", second.log_text());
    let events = events_until_end(&app, &id).await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    let started: Vec<u32> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Started { .. }))
        .map(|e| e.attempt)
        .collect();
    assert_eq!(started, [1, 2]);
    let branch = format!("openclaw/{id}");
    assert_eq!(repo.new_commits(&branch).len(), 1);
    assert_eq!(
        repo.file(&branch, "docs/a.md").as_deref(),
        Some("second try")
    );
    assert_eq!(app.status(&id).await["attempts"], 2);
}

#[tokio::test]
async fn a_worker_silent_past_ack_wait_is_fenced_off_by_the_attempt_that_took_over() {
    // A worker that stops answering (a frozen VM, a partition) for longer than ack_wait loses
    // its task to another; when it comes back it must not write, push or settle anything.
    let llm = ScriptedLlm::queue(vec![
        // Attempt 1 writes a file, and is frozen while its next model call is answered.
        write("docs/a.md", "first try"),
        Reply::text("Attempt 1's summary").delayed(Duration::from_millis(500)),
        // Attempt 2 does the task; attempt 1 wakes while attempt 2's last call is in flight.
        write("docs/a.md", "second try"),
        Reply::text("Write docs/a.md").delayed(Duration::from_secs(3)),
    ])
    .await;
    let (app, repo, id) = repo_task(&[("OPENCLAW_ACK_WAIT_SECS", "2")], "p").await;
    let mut first = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    second_call_in_flight(&llm).await;
    first.signal("STOP");
    let mut second = WorkerProcess::start(
        worker_bin(),
        &env_for(&app, &llm, &[("OPENCLAW_FETCH_WAIT_SECS", "15")]),
    );
    openclaw_tests::eventually(30, "attempt 2's last model call", || async {
        (llm.requests().len() >= 4).then_some(())
    })
    .await;
    first.signal("CONT");
    assert_eq!(first.wait().await, Some(0), "{}", first.log_text());
    assert!(
        first.log_text().contains("a later attempt holds the task"),
        "{}",
        first.log_text()
    );
    assert_eq!(second.wait().await, Some(0), "{}", second.log_text());

    let events = events_until_end(&app, &id).await;
    let k = kinds(&events);
    assert_eq!(k.last(), Some(&"completed"), "{k:?}");
    assert_eq!(k.iter().filter(|k| **k == "completed").count(), 1, "{k:?}");
    let taken_over = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::Started { .. }) && e.attempt == 2)
        .expect("attempt 2 started");
    let late: Vec<_> = events[taken_over..]
        .iter()
        .filter(|e| e.attempt != 2)
        .map(|e| (e.seq, e.attempt, e.kind.name()))
        .collect();
    assert!(
        late.is_empty(),
        "attempt 1 wrote after attempt 2 took over: {late:?}"
    );
    let branch = format!("openclaw/{id}");
    assert_eq!(repo.new_commits(&branch).len(), 1);
    assert_eq!(
        repo.file(&branch, "docs/a.md").as_deref(),
        Some("second try")
    );
    let status = app.status(&id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["attempts"], 2, "{status}");
    // Settled once, by attempt 2.
    assert_nothing_to_deliver(&app, &llm).await;
}

#[tokio::test]
async fn a_worker_that_finds_a_later_attempts_claim_does_nothing() {
    // What a worker finds that took its task and then stopped answering before its claim
    // while the task went to another: a record claimed by a later delivery.
    let (app, _repo, id) = repo_task(&[], "p").await;
    app.set_record(&id, |s| {
        s.status = TaskState::Running;
        s.attempts = 3;
        s.worker_id = Some("the-later-attempt".into());
    })
    .await;
    let llm = ScriptedLlm::turns(vec![Reply::text("must not be asked")]).await;
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    assert!(
        worker.log_text().contains("a later attempt holds the task"),
        "{}",
        worker.log_text()
    );
    assert!(llm.requests().is_empty());
    assert!(app.stores().events.history(&id).await.unwrap().is_empty());
    let record = app.stores().status.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.attempts, record.worker_id.as_deref()),
        (3, Some("the-later-attempt"))
    );
}

/// Runs a task whose branch gets `pushed_meanwhile` (a commit message) from elsewhere while
/// the worker's agent is busy, so that the worker's own push is refused; returns the task's
/// events, the repo and the sha pushed meanwhile.
async fn push_refused_by(
    pushed_meanwhile: &dyn Fn(&TaskId) -> String,
) -> (Vec<TaskEvent>, BareRepo, TaskId, String) {
    let llm = ScriptedLlm::queue(vec![
        write("docs/a.md", "mine"),
        Reply::text("Write docs/a.md").delayed(Duration::from_secs(2)),
    ])
    .await;
    let (app, repo, id) = repo_task(&[], "Document it").await;
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    second_call_in_flight(&llm).await;
    let theirs = repo.push_commit(
        &format!("openclaw/{id}"),
        "USAGE.md",
        &pushed_meanwhile(&id),
    );
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    (events_until_end(&app, &id).await, repo, id, theirs)
}

#[tokio::test]
async fn a_result_pushed_by_an_attempt_that_lost_the_task_is_the_tasks_result() {
    // An earlier attempt that lost the task (silent past ack_wait) but pushed its final
    // commit after this attempt cloned: this attempt's push is refused, and the earlier
    // attempt's commit, on the branch, is the result (it cannot record that itself).
    let (events, repo, id, theirs) = push_refused_by(&|id| {
        format!("Add a usage guide\n\nHow to run it.\n\nOpenClaw-Task: {id}\n")
    })
    .await;
    let EventKind::Completed {
        summary, commit, ..
    } = &events.last().unwrap().kind
    else {
        panic!("{:?}", kinds(&events))
    };
    assert_eq!(commit.as_deref(), Some(theirs.as_str()));
    assert_eq!(summary, "Add a usage guide\n\nHow to run it.");
    let branch = format!("openclaw/{id}");
    assert_eq!(repo.new_commits(&branch).len(), 1);
    assert_eq!(repo.tip(&branch), theirs);

    // Anyone else's commit on the branch (or this task's checkpoint) is no result: the
    // push's refusal fails the task, for good.
    for message in [
        "A commit of someone else".to_owned(),
        format!(
            "OpenClaw checkpoint (attempt 1)\n\nOpenClaw-Task: {id}\nOpenClaw-Checkpoint: true\n"
        ),
    ] {
        let (events, _repo, _id, _) = push_refused_by(&|_| message.clone()).await;
        let EventKind::Failed { reason, retryable } = &events.last().unwrap().kind else {
            panic!("{:?}", kinds(&events))
        };
        assert!(!retryable);
        assert!(reason.contains("push rejected"), "{reason}");
    }
}

#[tokio::test]
async fn sigterm_pushes_a_checkpoint_and_the_next_attempt_resumes_from_it() {
    let llm = ScriptedLlm::queue(vec![
        write("docs/a.md", "a"),
        // SIGTERM arrives while this call is in flight; its tool call still runs.
        write("docs/b.md", "b").delayed(Duration::from_secs(2)),
        write("docs/c.md", "c"),
        Reply::text("Finish the docs"),
    ])
    .await;
    let (app, repo, id) = repo_task(&[], "p").await;
    let mut first = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    wait_for_event(&app, &id, "tool_result").await;
    // Terminate while the second model call is in flight (the stop is seen after it).
    second_call_in_flight(&llm).await;
    first.signal("TERM");
    assert_eq!(first.wait().await, Some(0), "{}", first.log_text());
    let branch = format!("openclaw/{id}");
    assert!(repo.has_branch(&branch), "checkpoint pushed");
    let checkpoint = repo.tip(&branch);
    assert!(repo.message(&branch).contains("OpenClaw-Checkpoint: true"));
    assert_eq!(repo.file(&branch, "docs/b.md").as_deref(), Some("b"));

    let mut second = WorkerProcess::start(
        worker_bin(),
        &env_for(&app, &llm, &[("OPENCLAW_FETCH_WAIT_SECS", "10")]),
    );
    assert_eq!(second.wait().await, Some(0), "{}", second.log_text());
    let events = events_until_end(&app, &id).await;
    let k = kinds(&events);
    assert_eq!(k.last(), Some(&"completed"), "{k:?}");
    let checkpoints = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Committed {
                    checkpoint: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(checkpoints, 1);
    let cloned_from: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Cloned { sha, .. } if e.attempt == 2 => Some(sha.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        cloned_from,
        [checkpoint],
        "attempt 2 starts from the checkpoint"
    );
    let commits = repo.new_commits(&branch);
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert!(commits[0].ends_with("Finish the docs"));
    for f in ["docs/a.md", "docs/b.md", "docs/c.md"] {
        assert!(repo.file(&branch, f).is_some(), "{f}");
    }
    let resumed_prompt = message_text(&llm.requests()[2]["messages"][0]);
    assert!(resumed_prompt.contains("interrupted"), "{resumed_prompt}");
}

/// A task allowed one delivery, whose worker is killed mid-task (after a tool call), on a
/// bridge whose consumer waits `ack_wait_secs` for an ack: JetStream then gives up on it.
async fn killed_on_its_only_delivery(
    ack_wait_secs: &str,
) -> (TestApp, ScriptedLlm, BareRepo, TaskId) {
    killed_on_its_only_delivery_with(ack_wait_secs, false).await
}

/// [`killed_on_its_only_delivery`], with the bridge stopped before the kill when
/// `no_bridge` (so no bridge is connected when JetStream gives up).
async fn killed_on_its_only_delivery_with(
    ack_wait_secs: &str,
    no_bridge: bool,
) -> (TestApp, ScriptedLlm, BareRepo, TaskId) {
    let llm = ScriptedLlm::queue(vec![
        write("a.md", "a"),
        Reply::text("never delivered").delayed(Duration::from_secs(60)),
    ])
    .await;
    let mut app = app_without_dispatch(&[
        ("OPENCLAW_ACK_WAIT_SECS", ack_wait_secs),
        ("OPENCLAW_MAX_DELIVER", "1"),
    ])
    .await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "p"}))
        .await;
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    wait_for_event(&app, &id, "tool_result").await;
    if no_bridge {
        app.stop_bridge().await;
    }
    worker.signal("KILL");
    worker.wait().await;
    (app, llm, repo, id)
}

#[tokio::test]
async fn a_task_whose_last_worker_stored_its_end_but_not_its_status_is_not_given_up() {
    // The last allowed delivery's worker stored `completed` and died before its record and its
    // ack: JetStream gives up on the message, and the bridge records the end the events hold
    // instead of failing the task.
    let (app, _llm, _repo, id) = killed_on_its_only_delivery("3").await;
    let mut events = app
        .stores()
        .events
        .fenced_writer(app.queued_event(&id).await, 1);
    events
        .publish(openclaw_tests::completed_event("Wrote a.md"))
        .await
        .unwrap();
    let status = openclaw_tests::eventually(30, "the record to end", || async {
        let status = app.status(&id).await;
        let record = app.stores().status.get(&id).await.ok()??;
        record.status.is_terminal().then_some(status)
    })
    .await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["summary"], "Wrote a.md", "{status}");
    let k = kinds(&events_until_end(&app, &id).await);
    assert_eq!(k.last(), Some(&"completed"), "{k:?}");
    assert!(!k.contains(&"failed"), "{k:?}");
}

#[tokio::test]
async fn a_worker_lost_on_the_last_delivery_leaves_a_failed_task_not_a_running_one() {
    let (app, _llm, _repo, id) = killed_on_its_only_delivery("1").await;
    let events = events_until_end(&app, &id).await;
    let (reason, retryable) = last_failed(&events);
    assert!(!retryable);
    assert!(reason.contains("gave up after 1 deliveries"), "{reason}");
    let status = app.status(&id).await;
    assert_eq!(status["status"], "failed");
}

#[tokio::test]
async fn a_task_given_up_while_no_bridge_ran_is_failed_by_the_next_bridge() {
    // JetStream's advisory is a core NATS message published to nobody: the advisories stream
    // keeps it, and the next bridge to start takes it.
    let (mut app, _llm, _repo, id) = killed_on_its_only_delivery_with("1", true).await;
    let advisories = app
        .js()
        .get_stream(names::ADVISORIES_STREAM)
        .await
        .expect("the advisories stream");
    openclaw_tests::eventually(30, "JetStream to give up on the task", || {
        let mut advisories = advisories.clone();
        async move {
            let kept = advisories.info().await.ok()?.state.messages;
            (kept == 1).then_some(())
        }
    })
    .await;
    let record = app.stores().status.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskState::Running, "nobody marked it yet");

    app.start_bridge_again().await;
    let events = events_until_end(&app, &id).await;
    let (reason, retryable) = last_failed(&events);
    assert!(!retryable);
    assert!(reason.contains("gave up after 1 deliveries"), "{reason}");
    assert_eq!(app.status(&id).await["status"], "failed");
    // Handled and acked: a bridge started later finds nothing left to do.
    openclaw_tests::flow::advisories_all_acked(&app).await;
    let k = kinds(&events_until_end(&app, &id).await);
    assert_eq!(k.iter().filter(|k| **k == "failed").count(), 1, "{k:?}");
}

#[tokio::test]
async fn a_worker_whose_wait_for_a_task_is_ended_by_the_server_asks_again() {
    // The server ends a waiting fetch with a status (409) when the consumer's leader changes or
    // the consumer is deleted and made again (an operator with the nats CLI): the worker asks
    // again for the rest of its wait instead of failing.
    let llm = ScriptedLlm::turns(openclaw_tests::flow::doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let worker = WorkerProcess::start(
        worker_bin(),
        &env_for(&app, &llm, &[("OPENCLAW_FETCH_WAIT_SECS", "20")]),
    );
    let tasks = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    let name = "worker-doc-writer";
    let config = openclaw_tests::eventually(30, "the worker to wait for a task", || {
        let tasks = tasks.clone();
        async move {
            let mut consumer = tasks
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(name)
                .await
                .ok()?;
            let info = consumer.info().await.ok()?;
            (info.num_waiting == 1).then(|| info.config.clone())
        }
    })
    .await;
    tasks.delete_consumer(name).await.unwrap();
    tasks.create_consumer(config).await.unwrap();

    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    let (worker, _) = openclaw_tests::flow::completed_by(&app, worker, &id).await;
    assert!(
        worker.log_text().contains("asking again"),
        "{}",
        worker.log_text()
    );
}

#[tokio::test]
async fn a_republished_task_redelivered_after_a_failure_is_still_one_run() {
    let llm = ScriptedLlm::queue(vec![
        // The original run.
        write("a.md", "a"),
        Reply::text("Wrote a.md"),
        // The republished copy, attempt 1: the gateway is down (one call, two retries).
        Reply::error(503, "down"),
        Reply::error(503, "down"),
        Reply::error(503, "down"),
        // Attempt 2.
        write("b.md", "b"),
        Reply::text("Wrote b.md"),
    ])
    .await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let mut w = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    assert_eq!(w.wait().await, Some(0));
    events_until_end(&app, &id).await;

    republish_newest(&app, "doc-writer", "rerun-1").await;

    for _ in 0..2 {
        let mut w = WorkerProcess::start(
            worker_bin(),
            &env_for(&app, &llm, &[("OPENCLAW_FETCH_WAIT_SECS", "5")]),
        );
        assert_eq!(w.wait().await, Some(0), "{}", w.log_text());
    }
    let list: serde_json::Value = app.get("/v1/tasks").await.json().await.unwrap();
    let tasks = list["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "the original and one replay: {tasks:?}");
    let replay = tasks
        .iter()
        .find(|t| t["replay_of"] == id.to_string())
        .unwrap();
    assert_eq!(replay["status"], "completed");
    assert_eq!(replay["attempts"], 2);
}

#[tokio::test]
async fn a_task_whose_end_was_stored_but_not_its_status_is_not_run_again() {
    // What a worker leaves when the store stops answering between its `completed` event and
    // its status update (a cluster losing the bucket's leader): the events end the task, the
    // record still says running, and the message is redelivered.
    let (app, _repo, id) = repo_task(&[], "Document it").await;
    let stores = app.stores();
    app.set_record(&id, |s| {
        s.status = TaskState::Running;
        s.attempts = 1;
    })
    .await;
    let mut events = stores.events.writer(app.queued_event(&id).await, 1);
    for kind in [
        EventKind::Started {
            worker_id: "lost-worker".into(),
        },
        EventKind::Completed {
            summary: "Add a usage guide".into(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            branch: Some(format!("openclaw/{id}")),
            usage: None,
            pull_request: None,
        },
    ] {
        events.publish(kind).await.unwrap();
    }
    // A client that saw `completed` on the event stream reads it in the status too, though the
    // record still says running (the instant between a worker's two last writes).
    let record = || async { stores.status.get(&id).await.unwrap().unwrap() };
    assert_eq!(record().await.status, TaskState::Running);
    let status = app.status(&id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["commit"], "0123456789abcdef0123456789abcdef01234567");
    let r = app
        .post_json(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 409, "a cancel of an ended task");
    assert!(!record().await.cancel_requested);

    let llm = ScriptedLlm::turns(vec![Reply::text("must not be asked")]).await;
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    // The worker wrote the end into the record itself.
    let stored = record().await;
    assert_eq!(stored.status, TaskState::Completed, "{stored:?}");
    assert_eq!(
        stored.commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(stored.summary.as_deref(), Some("Add a usage guide"));
    assert!(llm.requests().is_empty(), "the agent ran again");
    let history = app.stores().events.history(&id).await.unwrap();
    assert_eq!(
        kinds(&history),
        ["queued", "started", "completed"],
        "nothing written after the end"
    );
    // The message was acked: nothing is left to deliver.
    assert_nothing_to_deliver(&app, &llm).await;
}

#[tokio::test]
async fn a_task_whose_result_was_pushed_before_a_crash_completes_without_running_again() {
    // What a worker killed between its push and its `completed` leaves behind: the task
    // still queued, and its branch ahead of main with the task's own final commit.
    let (app, repo, id) = repo_task(&[], "Document it").await;
    let branch = format!("openclaw/{id}");
    let pushed = repo.push_commit(
        &branch,
        "USAGE.md",
        &format!("Add a usage guide\n\nHow to run it.\n\nOpenClaw-Task: {id}\n"),
    );

    let llm = ScriptedLlm::turns(vec![Reply::text("must not be asked")]).await;
    let (_worker, events) = work_task(&app, &llm, &id, &[]).await;
    let EventKind::Completed {
        summary, commit, ..
    } = &events.last().unwrap().kind
    else {
        panic!("{:?}", kinds(&events))
    };
    assert_eq!(commit.as_deref(), Some(pushed.as_str()));
    assert_eq!(summary, "Add a usage guide\n\nHow to run it.");
    let status = app.status(&id).await;
    assert_eq!(status["status"], "completed");
    assert_eq!(status["commit"], pushed.as_str());
    assert!(llm.requests().is_empty(), "the agent ran again");
    assert_eq!(repo.new_commits(&branch).len(), 1, "no second commit");
}

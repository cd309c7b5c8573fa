//! Cancel: before a worker starts (it never clones), mid-run (it stops at its next step),
//! and the stream a cancel left open ended by the worker that finds it.

use std::time::Duration;

use openclaw_common::status::TaskState;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

use crate::resilience::{second_call_in_flight, write};
use openclaw_tests::flow::{
    assert_nothing_to_deliver, env_for, events_until_end, kinds, repo_task, wait_for_event,
    worker_bin,
};

#[tokio::test]
async fn cancel_before_start_means_the_worker_never_clones() {
    let llm = ScriptedLlm::turns(vec![Reply::text("unused")]).await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    let r = app
        .post_json(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    assert_eq!(worker.wait().await, Some(0));
    assert!(llm.requests().is_empty());
    let events = app.stores().events.history(&id).await.unwrap();
    assert_eq!(kinds(&events), ["queued", "canceled"]);
    // The message was terminated: nothing is left to deliver.
    assert_nothing_to_deliver(&app, &llm).await;
}

#[tokio::test]
async fn cancel_mid_run_stops_at_the_next_step() {
    let llm = ScriptedLlm::queue(vec![
        write("a.md", "a"),
        write("b.md", "b").delayed(Duration::from_secs(2)),
        Reply::text("not reached"),
    ])
    .await;
    let (app, repo, id) = repo_task(&[], "p").await;
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    wait_for_event(&app, &id, "tool_result").await;
    second_call_in_flight(&llm).await;
    let r = app
        .post_json(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(worker.wait().await, Some(0));
    let events = events_until_end(&app, &id).await;
    let k = kinds(&events);
    assert_eq!(k.last(), Some(&"canceled"), "{k:?}");
    assert_eq!(
        llm.requests().len(),
        2,
        "no model call after the cancel was seen"
    );
    assert_eq!(app.status(&id).await["status"], "canceled");
    assert!(!repo.has_branch(&format!("openclaw/{id}")));
}

#[tokio::test]
async fn a_worker_that_finds_its_task_canceled_ends_the_stream_the_cancel_left_open() {
    // A cancel whose status write was stored and whose answer was lost, never retried: the
    // record says canceled, the events do not end. The task's worker ends them.
    let llm = ScriptedLlm::turns(vec![Reply::text("unused")]).await;
    let (app, _repo, id) = repo_task(&[], "p").await;
    app.set_record(&id, |s| {
        s.status = TaskState::Canceled;
        s.cancel_requested = true;
    })
    .await;
    let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &[]));
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    assert!(llm.requests().is_empty());
    let events = events_until_end(&app, &id).await;
    assert_eq!(kinds(&events), ["queued", "canceled"]);
    assert_nothing_to_deliver(&app, &llm).await;
}

//! Submitting tasks, idempotency, status, listing, cancel.

use futures_util::StreamExt;
use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_common::names;
use openclaw_common::task::TaskSpec;
use openclaw_tests::app::TestApp;

use openclaw_tests::flow::{events_until_end, kinds};
use serde_json::{Value, json};

fn task_body() -> Value {
    json!({"repo": "https://example.com/org/repo.git", "prompt": "Document the API"})
}

#[tokio::test]
async fn submit_stores_the_task_with_its_headers_then_answers_202() {
    let app = TestApp::spawn().await;
    let r = app
        .post_json(
            "/v1/tasks",
            &json!({"repo": "https://example.com/o/r.git", "prompt": "Write docs",
                    "branch": "main", "metadata": {"ticket": 7}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["status_url"], format!("/v1/tasks/{id}"));
    assert_eq!(body["events_url"], format!("/v1/tasks/{id}/events"));
    assert_eq!(location, format!("/v1/tasks/{id}"));

    let stream = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    let msg = stream
        .get_last_raw_message_by_subject(&format!("openclaw.tasks.doc-writer.{id}"))
        .await
        .expect("the task is in the stream");
    assert_eq!(msg.headers.get("Nats-Msg-Id").unwrap().as_str(), id);
    assert_eq!(msg.headers.get(names::TASK_ID_HEADER).unwrap().as_str(), id);
    let spec: TaskSpec = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(spec.id.to_string(), id);
    assert_eq!(spec.prompt, "Write docs");
    assert_eq!(spec.branch.as_ref().unwrap().as_str(), "main");
    assert_eq!(spec.push_branch.as_str(), format!("openclaw/{id}"));
    assert_eq!(spec.metadata["ticket"], 7);

    // That message is the submit's only write: no event, no status record yet. The API shows
    // the task queued, with `queued` as event 1, read from the message.
    assert!(
        app.stores()
            .events
            .history(&spec.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(app.stores().status.get(&spec.id).await.unwrap().is_none());
    let status = app.status(&spec.id).await;
    assert_eq!(status["status"], "queued");
    assert_eq!(status["seq"], msg.sequence);
    let sse = app
        .get(&format!("/v1/tasks/{id}/events?follow=false"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(sse.matches("event: queued").count(), 1, "{sse}");
    assert!(sse.contains("id: 1\n"), "{sse}");
    assert_eq!(sse.matches("id: ").count(), 1, "{sse}");
    let queued: TaskEvent = serde_json::from_str(
        sse.lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("a data line"),
    )
    .unwrap();
    assert_eq!(queued, spec.queued_event());
    assert!(matches!(queued.kind, EventKind::Queued { .. }));
}

#[tokio::test]
async fn the_same_idempotency_key_twice_queues_one_task() {
    let app = TestApp::spawn().await;
    let send_as = |key: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(format!("{}/v1/tasks", app.base))
                .header("Idempotency-Key", key)
                .json(&task_body())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()
        }
    };
    let send = || send_as("client-key-42");
    let (a, b) = tokio::join!(send(), send());
    let c = send().await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["id"], c["id"]);

    let mut stream = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        1,
        "one message for one key"
    );
    let id = openclaw_common::ids::TaskId::parse(a["id"].as_str().unwrap()).unwrap();
    let events = app.stores().events.history(&id).await.unwrap();
    assert!(events.is_empty(), "a duplicate writes nothing: {events:?}");
    assert_eq!(app.status(&id).await["status"], "queued");

    // A different key is a different task.
    let other = send_as("client-key-43").await;
    assert_ne!(other["id"], a["id"]);
}

#[tokio::test]
async fn status_and_recent_list() {
    let app = TestApp::spawn().await;
    let first = app.submit(&task_body()).await;
    let second = app
        .submit(&json!({"repo": "git@example.com:o/r.git", "prompt": "p", "push_branch": "docs/x"}))
        .await;

    let s = app.status(&second).await;
    assert_eq!(s["id"], second.to_string());
    assert_eq!(s["status"], "queued");
    assert_eq!(s["agent"], "doc-writer");
    assert_eq!(s["repo"], "git@example.com:o/r.git");
    assert_eq!(s["push_branch"], "docs/x");
    assert_eq!(s["attempts"], 0);
    assert!(s["created_at"].as_str().unwrap().contains('T'));
    assert!(s["updated_at"].is_string());

    let list: Value = app.get("/v1/tasks?limit=10").await.json().await.unwrap();
    let ids: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.to_string(), first.to_string()]);
    let one: Value = app.get("/v1/tasks?limit=1").await.json().await.unwrap();
    assert_eq!(one["tasks"].as_array().unwrap().len(), 1);

    // Filters: by state and by agent.
    app.post_json(&format!("/v1/tasks/{first}/cancel"), &json!({}))
        .await;
    let canceled: Value = app
        .get("/v1/tasks?status=canceled")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = canceled["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.to_string()]);
    let queued: Value = app
        .get("/v1/tasks?status=queued&agent=doc-writer")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queued["tasks"][0]["id"], second.to_string());
    assert_eq!(queued["tasks"].as_array().unwrap().len(), 1);
    let none: Value = app
        .get("/v1/tasks?agent=devops")
        .await
        .json()
        .await
        .unwrap();
    assert!(none["tasks"].as_array().unwrap().is_empty());
    let r = app.get("/v1/tasks?status=sleeping").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "status");
}

#[tokio::test]
async fn cancel_before_start_ends_the_task_and_its_stream() {
    let app = TestApp::spawn().await;
    let id = app.submit(&task_body()).await;
    let r = app
        .post_json(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(app.status(&id).await["status"], "canceled");

    assert_eq!(
        kinds(&events_until_end(&app, &id).await),
        ["queued", "canceled"]
    );

    // Canceling twice changes nothing more.
    let r = app
        .post_json(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(app.stores().events.history(&id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_end_in_the_record_whose_event_was_lost_reaches_the_stream_once() {
    use openclaw_common::status::TaskState;
    let app = TestApp::spawn().await;
    // What a cancel leaves when its status write is stored and its answer lost (a NATS leader
    // change): the record says canceled, the events do not end.
    let id = app.submit(&task_body()).await;
    app.set_record(&id, |s| {
        s.status = TaskState::Canceled;
        s.cancel_requested = true;
    })
    .await;
    assert!(app.stores().events.history(&id).await.unwrap().is_empty());
    // The client retries, several at once.
    let (path, empty) = (format!("/v1/tasks/{id}/cancel"), json!({}));
    let cancel = || app.post_json(&path, &empty);
    let answers = futures_util::future::join_all((0..6).map(|_| cancel())).await;
    for r in answers {
        assert_eq!(r.status(), 202);
    }
    assert_eq!(
        kinds(&events_until_end(&app, &id).await),
        ["queued", "canceled"]
    );
    assert_eq!(cancel().await.status(), 202);
    assert_eq!(app.stores().events.history(&id).await.unwrap().len(), 2);

    // A bridge that failed a task at its queue deadline and died before writing the event:
    // the first clients to open the task's stream write it, once, from the record.
    let id = app.submit(&task_body()).await;
    app.set_record(&id, |s| {
        s.status = TaskState::Failed;
        s.error = Some("not started within 60s".into());
    })
    .await;
    let readers = (0..4).map(|_| events_until_end(&app, &id));
    for events in futures_util::future::join_all(readers).await {
        assert_eq!(kinds(&events), ["queued", "failed"]);
        let EventKind::Failed { reason, .. } = &events[1].kind else {
            panic!("{:?}", events[1].kind)
        };
        assert_eq!(reason, "not started within 60s");
    }
    assert_eq!(app.stores().events.history(&id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_stream_open_when_an_end_is_recorded_without_its_event_still_ends() {
    // A client follows a queued task; the bridge that then decides its end (here: a cancel)
    // writes the record and dies before the event. No new reader comes: the bridges watching
    // the records write the end, and the open stream ends with it.
    use openclaw_common::status::TaskState;
    let app = TestApp::spawn().await;
    let id = app.submit(&task_body()).await;
    let mut stream = app.events(&id, None).await;
    let first = stream.next().await.expect("the queued event");
    assert_eq!(first.event.as_deref(), Some("queued"));
    app.set_record(&id, |s| {
        s.status = TaskState::Canceled;
        s.cancel_requested = true;
    })
    .await;
    let end = openclaw_tests::within(30, "the open stream to end", stream.next())
        .await
        .expect("the end event");
    assert_eq!(end.event.as_deref(), Some("canceled"), "{end:?}");
    assert_eq!(end.id.as_deref(), Some("2"));
    assert!(stream.next().await.is_none(), "the stream ends after it");
    assert_eq!(app.stores().events.history(&id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn cancel_of_a_running_task_flags_it_and_of_a_finished_one_is_a_conflict() {
    use openclaw_common::status::TaskState;
    let app = TestApp::spawn().await;
    let id = app.submit(&task_body()).await;
    let set = |state: TaskState| app.set_record(&id, move |s| s.status = state);
    set(TaskState::Running).await;
    let r = app
        .post_json(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let s = app.status(&id).await;
    assert_eq!(s["status"], "running");
    assert_eq!(s["cancel_requested"], true);

    set(TaskState::Completed).await;
    let r = app
        .post_json(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict");

    let r = app
        .post_json(
            &format!("/v1/tasks/{}/cancel", openclaw_common::ids::TaskId::new()),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn many_concurrent_submits_each_get_their_own_task() {
    let app = TestApp::spawn().await;
    let body = task_body();
    let ids: Vec<_> = futures_util::stream::iter(0..20)
        .map(|_| app.submit(&body))
        .buffer_unordered(10)
        .collect()
        .await;
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 20);
    let mut stream = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 20);
}

#[tokio::test]
async fn metrics_count_requests_submits_and_open_streams() {
    let app = TestApp::spawn().await;
    let id = app.submit(&task_body()).await;
    let mut sse = app.events(&id, None).await;
    openclaw_tests::within(10, "queued", sse.next())
        .await
        .expect("a frame");
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for line in [
        r#"openclaw_tasks_submitted_total{agent="doc-writer",duplicate="false"} 1"#,
        r#"openclaw_http_requests_total{method="POST",route="/v1/tasks",status="202"} 1"#,
        "openclaw_event_streams_open 1",
        "openclaw_nats_connected 1",
        "# TYPE openclaw_workers_running gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    drop(sse);
    openclaw_tests::eventually(5, "the stream gauge to drop", || async {
        let text = app.get("/metrics").await.text().await.ok()?;
        text.lines()
            .any(|l| l == "openclaw_event_streams_open 0")
            .then_some(())
    })
    .await;
}

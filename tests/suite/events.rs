//! The SSE relay: history, then live, then the end; `Last-Event-ID` resume; two writers.

use openclaw_common::event::EventKind;
use openclaw_common::store::StoreError;
use openclaw_tests::app::TestApp;
use openclaw_tests::within;

fn message(delta: &str) -> EventKind {
    EventKind::Message {
        delta: delta.into(),
    }
}

#[tokio::test]
async fn history_then_live_then_end_and_resume_without_gap_or_repeat() {
    let app = TestApp::spawn().await;
    let id = app.submit_example().await;
    // A worker's first events, before anyone listens.
    let mut worker = app.stores().events.writer(app.queued_event(&id).await, 1);
    worker
        .publish(EventKind::Started {
            worker_id: "w1".into(),
        })
        .await
        .unwrap();
    worker.publish(message("Hello")).await.unwrap();

    let mut sse = app.events(&id, None).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let f = within(10, "history frames", sse.next())
            .await
            .expect("a frame");
        seen.push(f);
    }
    assert_eq!(
        seen.iter()
            .map(|f| f.event.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["queued", "started", "message"]
    );
    assert_eq!(
        seen.iter()
            .map(|f| f.id.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert_eq!(seen[2].json()["delta"], "Hello");
    assert_eq!(seen[2].json()["task_id"], id.to_string());
    assert_eq!(seen[1].json()["attempt"], 1);

    // Live events arrive on the open stream.
    worker.publish(message(" world")).await.unwrap();
    let live = within(10, "a live frame", sse.next())
        .await
        .expect("live frame");
    assert_eq!(live.id.as_deref(), Some("4"));
    assert_eq!(live.json()["delta"], " world");

    worker
        .publish(openclaw_tests::completed_event("done"))
        .await
        .unwrap();
    let last = within(10, "the terminal frame", sse.next())
        .await
        .expect("completed");
    assert_eq!(last.event.as_deref(), Some("completed"));
    assert!(within(10, "the stream to end", sse.next()).await.is_none());

    // Resuming after 2 gives exactly 3, 4, 5.
    let resumed = within(
        10,
        "resumed stream",
        app.events(&id, Some(2)).await.collect(),
    )
    .await;
    assert_eq!(
        resumed
            .iter()
            .map(|f| f.id.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["3", "4", "5"]
    );
    // Resuming after the end returns an empty, finished stream.
    let after_end = within(
        10,
        "resume after the end",
        app.events(&id, Some(5)).await.collect(),
    )
    .await;
    assert!(after_end.is_empty());
}

#[tokio::test]
async fn two_writers_never_share_a_sequence_number() {
    let app = TestApp::spawn().await;
    let id = app.submit_example().await;
    let queued = app.queued_event(&id).await;
    let write = |attempt: u32| {
        let mut w = app.stores().events.writer(queued.clone(), attempt);
        async move {
            for i in 0..15 {
                w.publish(message(&format!("{attempt}-{i}"))).await.unwrap();
            }
        }
    };
    tokio::join!(write(1), write(2));
    let events = app.stores().events.history(&id).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=31).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_attempts_writer_stops_once_a_later_attempt_has_written_or_the_task_ended() {
    let app = TestApp::spawn().await;
    let events = &app.stores().events;
    for end in [
        None,
        Some(EventKind::Canceled {
            reason: "canceled before the work started".into(),
        }),
    ] {
        let id = app.submit_example().await;
        let queued = app.queued_event(&id).await;
        let mut first = events.fenced_writer(queued.clone(), 1);
        first.publish(message("attempt 1")).await.unwrap();
        match &end {
            // Attempt 2 took the task over and wrote.
            None => {
                let mut second = events.fenced_writer(queued.clone(), 2);
                second.publish(message("attempt 2")).await.unwrap();
            }
            // The bridge ended it.
            Some(kind) => {
                events
                    .writer(queued.clone(), 0)
                    .publish(kind.clone())
                    .await
                    .unwrap();
            }
        }
        let before = events.history(&id).await.unwrap();
        let refused = first.publish(message("attempt 1 again")).await;
        assert!(
            matches!(refused, Err(StoreError::Superseded(t)) if t == id),
            "{refused:?}"
        );
        // A new writer of attempt 1 is refused too, before writing.
        let refused = events
            .fenced_writer(queued, 1)
            .publish(message("late"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Superseded(_))),
            "{refused:?}"
        );
        assert_eq!(events.history(&id).await.unwrap(), before);
    }
}

#[tokio::test]
async fn keep_alive_comments_while_idle_and_404_for_unknown_tasks() {
    let app = TestApp::spawn().await;
    let id = app.submit_example().await;
    let mut sse = app.events(&id, None).await;
    within(10, "queued", sse.next()).await.expect("queued");
    // Nothing happens for a while: the server sends comments (every 1 s in tests).
    let waited = tokio::time::timeout(std::time::Duration::from_millis(2500), sse.next()).await;
    assert!(waited.is_err(), "no frame expected while idle: {waited:?}");
    assert!(sse.comments >= 1, "keep-alive comments expected");

    let r = app
        .get(&format!(
            "/v1/tasks/{}/events",
            openclaw_common::ids::TaskId::new()
        ))
        .await;
    assert_eq!(r.status(), 404);
}

//! NATS going away: 503 with a JSON reason at once, `/health` unaffected, recovery after.

use std::time::{Duration, Instant};

use openclaw_tests::app::TestApp;
use openclaw_tests::{eventually, within};
use serde_json::{Value, json};

#[tokio::test]
async fn nats_down_is_503_not_a_hang_and_the_bridge_recovers() {
    let mut app = TestApp::spawn().await;
    let body = json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    app.nats.stop();

    // The client notices the dropped connection quickly; from then on answers are immediate.
    let r = eventually(10, "submit to fail with 503", || async {
        let r = app.post_json("/v1/tasks", &body).await;
        (r.status() == 503).then_some(r)
    })
    .await;
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "unavailable");

    let started = Instant::now();
    let r = within(10, "a 503", app.post_json("/v1/tasks", &body)).await;
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without waiting for NATS"
    );
    assert_eq!(app.get("/ready").await.status(), 503);
    assert_eq!(app.get("/v1/tasks").await.status(), 503);
    assert_eq!(app.get("/health").await.status(), 200);

    app.nats.restart();
    app.wait_ready().await;
    let id = eventually(15, "submit to work again", || async {
        let r = app.post_json("/v1/tasks", &body).await;
        if r.status() != 202 {
            return None;
        }
        r.json::<Value>().await.ok().map(|b| b["id"].clone())
    })
    .await;
    assert!(id.is_string());
}

#[tokio::test]
async fn a_bridge_started_before_nats_becomes_ready_when_nats_comes_up() {
    let nats = openclaw_tests::nats::NatsServer::stopped();
    let mut app = TestApp::builder().nats(nats).spawn_unready().await;
    let body = json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    assert_eq!(app.get("/health").await.status(), 200);
    let r = within(10, "ready", app.get("/ready")).await;
    assert_eq!(r.status(), 503);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "unavailable");
    assert_eq!(
        within(10, "submit", app.post_json("/v1/tasks", &body))
            .await
            .status(),
        503
    );

    app.nats.restart();
    app.wait_ready().await;
    let id = app.submit(&body).await;
    assert_eq!(app.status(&id).await["status"], "queued");
}

#[tokio::test]
async fn a_nats_server_that_lost_its_data_gets_the_streams_back() {
    let mut app = TestApp::spawn().await;
    let body = json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    app.nats.restart_empty();
    // /ready notices the missing streams and has them recreated; submits work again.
    app.wait_ready().await;
    eventually(15, "submit to work on the new server", || async {
        let r = app.post_json("/v1/tasks", &body).await;
        (r.status() == 202).then_some(())
    })
    .await;
    let mut tasks = app
        .js()
        .get_stream(openclaw_common::names::TASKS_STREAM)
        .await
        .unwrap();
    assert_eq!(tasks.info().await.unwrap().state.messages, 1);
    assert!(
        tasks.consumer_info("worker-doc-writer").await.is_ok(),
        "consumers are recreated too"
    );
}

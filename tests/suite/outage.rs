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

#[tokio::test]
async fn a_nats_that_stops_answering_is_a_504_at_the_request_timeout_and_nothing_is_lost() {
    // A frozen server keeps its connections open: the client still counts as connected, so
    // only the request timeout bounds the wait.
    let app = TestApp::builder()
        .env("OPENCLAW_REQUEST_TIMEOUT_SECS", "1")
        .spawn()
        .await;
    let body = json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    let r = app.post_json("/v1/tasks", &body).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    app.nats.freeze();
    let started = Instant::now();
    let r = within(10, "an answer", app.get(&format!("/v1/tasks/{id}"))).await;
    let waited = started.elapsed();
    assert_eq!(r.status(), 504);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "timeout", "{err}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "answered at the request timeout, not before and not at the store's: {waited:?}"
    );
    assert_eq!(app.get("/health").await.status(), 200, "HTTP alone answers");

    app.nats.thaw();
    let status = eventually(15, "the task to be read again", || async {
        let r = app.get(&format!("/v1/tasks/{id}")).await;
        (r.status() == 200).then_some(r)
    })
    .await;
    let status: Value = status.json().await.unwrap();
    assert_eq!(status["status"], "queued", "{status}");
}

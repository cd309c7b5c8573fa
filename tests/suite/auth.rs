//! Bearer-token auth on everything but the probes and the scrape (`/health`, `/ready`,
//! `/metrics`).

use openclaw_tests::app::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn with_a_token_every_route_but_probes_and_metrics_needs_it() {
    let app = TestApp::builder().token("s3cret-token").spawn().await;
    let url = |p: &str| format!("{}{p}", app.base);

    let r = app.http.get(url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    // kubelet and Prometheus send no token: the probes and the scrape answer without one.
    let r = app.http.get(url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
    let r = app.http.get(url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let scrape = r.text().await.unwrap();
    assert!(scrape.contains("openclaw_nats_connected 1"), "{scrape}");
    assert!(!scrape.contains("s3cret"));

    for (method, path) in [
        ("GET", "/status"),
        ("GET", "/v1/tasks"),
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks/0192d1f0-0000-7000-8000-000000000000"),
        ("GET", "/v1/nonexistent"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret-token"),
            Some("Bearer s3cret-tokenX"),
        ] {
            let mut req = app.http.request(method.parse().unwrap(), url(path));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(
                !body.to_string().contains("s3cret"),
                "the token is never echoed"
            );
        }
    }

    let r = app.get("/ready").await; // sends the right token
    assert_eq!(r.status(), 200);
    let id = app.submit_example().await;
    assert_eq!(app.status(&id).await["status"], "queued");
}

#[tokio::test]
async fn without_a_token_on_loopback_the_api_is_open() {
    let app = TestApp::spawn().await;
    assert!(app.token.is_none());
    let r = app
        .http
        .get(format!("{}/v1/tasks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

//! Every kind of bad input gets the right status, a JSON error naming the field, and stores
//! nothing.

use openclaw_common::names;
use openclaw_tests::app::TestApp;
use openclaw_tests::flow::expect_error;
use serde_json::{Value, json};

#[tokio::test]
async fn bad_task_bodies_are_400_with_the_field_and_store_nothing() {
    let app = TestApp::builder()
        .env("OPENCLAW_ALLOW_FILE_REPOS", "false")
        .env("OPENCLAW_BODY_LIMIT_BYTES", "4096")
        .spawn()
        .await;
    let repo = "https://example.com/o/r.git";
    let cases = [
        (json!({"repo": repo}), "prompt"),
        (json!({"repo": repo, "prompt": "   "}), "prompt"),
        (json!({"repo": repo, "prompt": 5}), "prompt"),
        (json!({"prompt": "p"}), "repo"),
        (
            json!({"repo": "https://user:pw@example.com/o/r.git", "prompt": "p"}),
            "repo",
        ),
        (
            json!({"repo": "https://token@example.com/o/r.git", "prompt": "p"}),
            "repo",
        ),
        (json!({"repo": "file:///etc", "prompt": "p"}), "repo"),
        (json!({"repo": "not a url", "prompt": "p"}), "repo"),
        (
            json!({"repo": repo, "prompt": "p", "agent": "nobody"}),
            "agent",
        ),
        (
            json!({"repo": repo, "prompt": "p", "agent": "Bad.Name"}),
            "agent",
        ),
        (
            json!({"repo": repo, "prompt": "p", "branch": "a..b"}),
            "branch",
        ),
        (
            json!({"repo": repo, "prompt": "p", "push_branch": "-x"}),
            "push_branch",
        ),
        (
            json!({"repo": repo, "prompt": "p", "push_branch": "HEAD"}),
            "push_branch",
        ),
        (
            json!({"repo": repo, "prompt": "p", "push_branch": "refs/heads/main"}),
            "push_branch",
        ),
        (json!({"repo": repo, "prompt": "p", "model": ""}), "model"),
        (
            json!({"repo": repo, "prompt": "p", "metadata": [1]}),
            "metadata",
        ),
        (json!({"repo": repo, "prompt": "p", "colour": "red"}), "."),
    ];
    for (body, field) in cases {
        let r = app.post_json("/v1/tasks", &body).await;
        let status = r.status();
        let err: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "invalid_request");
        if field != "." {
            assert_eq!(err["error"]["field"], field, "{body} -> {err}");
        } else {
            assert!(
                err["error"]["message"].as_str().unwrap().contains("colour"),
                "{err}"
            );
        }
    }
    // The unknown-agent message lists the known ones.
    let r = app
        .post_json(
            "/v1/tasks",
            &json!({"repo": repo, "prompt": "p", "agent": "nobody"}),
        )
        .await;
    let body = expect_error(r, 400, "invalid_request", Some("agent")).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("unknown agent \"nobody\";"),
        "the name as the client wrote it: {message}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("doc-writer")
    );

    // Not JSON at all, the wrong content type, too large.
    let post = |body: &'static str, ctype: &'static str| {
        app.http
            .post(format!("{}/v1/tasks", app.base))
            .header("content-type", ctype)
            .body(body)
    };
    expect_error(
        post("{nope", "application/json").send().await.unwrap(),
        400,
        "invalid_request",
        None,
    )
    .await;
    expect_error(
        post("{}", "text/plain").send().await.unwrap(),
        415,
        "unsupported_media_type",
        None,
    )
    .await;
    let big = json!({"repo": repo, "prompt": "x".repeat(10_000)});
    expect_error(
        app.post_json("/v1/tasks", &big).await,
        413,
        "payload_too_large",
        None,
    )
    .await;
    let r = app
        .http
        .post(format!("{}/v1/tasks", app.base))
        .header("Idempotency-Key", "has space")
        .json(&json!({"repo": repo, "prompt": "p"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_request", Some("Idempotency-Key")).await;

    let mut tasks = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    assert_eq!(
        tasks.info().await.unwrap().state.messages,
        0,
        "bad input stores nothing"
    );
}

#[tokio::test]
async fn unknown_tasks_bad_ids_and_bad_query_values() {
    let app = TestApp::spawn().await;
    let unknown = openclaw_common::ids::TaskId::new();
    expect_error(
        app.get(&format!("/v1/tasks/{unknown}")).await,
        404,
        "not_found",
        None,
    )
    .await;
    expect_error(
        app.get("/v1/tasks/not-a-uuid").await,
        404,
        "not_found",
        None,
    )
    .await;
    expect_error(
        app.get("/v1/tasks?limit=0").await,
        400,
        "invalid_request",
        Some("limit"),
    )
    .await;
    expect_error(
        app.get("/v1/tasks?limit=abc").await,
        400,
        "invalid_request",
        Some("limit"),
    )
    .await;
    // A parameter given twice: JSON like every other error, not axum's plain text.
    expect_error(
        app.get("/v1/tasks?limit=1&limit=2").await,
        400,
        "invalid_request",
        None,
    )
    .await;
    expect_error(app.get("/no/such/route").await, 404, "not_found", None).await;
    let r = app
        .http
        .delete(format!("{}/v1/tasks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    let id = app.submit_example().await;
    let r = app
        .http
        .get(format!("{}/v1/tasks/{id}/events", app.base))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_request", Some("Last-Event-ID")).await;
}

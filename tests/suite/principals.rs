//! Principals: tokens with an identity (a tokens file beside the gateway token), the user a
//! trusted front end acts for, each seeing their own tasks, and the audit trail.

use openclaw_common::event::EventKind;
use openclaw_common::ids::TaskId;
use openclaw_tests::app::TestApp;
use openclaw_tests::flow::{env_for, worker_bin};
use openclaw_tests::git::BareRepo;
use openclaw_tests::litellm::{CATALOG_MODEL, LiteLlm};
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::{Value, json};

const ADMIN: &str = "gateway-admin-token-5c1";
const ALICE: &str = "alice-token-9f2";
const BOB: &str = "bob-token-71d";
const WEBUI: &str = "webui-service-token-3aa";
const CAROL: &str = "carol-token-0be";

/// One `[[token]]` entry of a tokens file: `token`'s digest (never the token), and `extra`
/// lines (limits, team).
pub(crate) fn token_entry(name: &str, role: &str, token: &str, extra: &str) -> String {
    let digest: String = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{digest}\"\n{extra}\n\n")
}

fn tokens_toml(entries: &[(&str, &str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, role, token)| token_entry(name, role, token, ""))
        .collect()
}

const PEOPLE: &[(&str, &str, &str)] = &[
    ("alice", "user", ALICE),
    ("bob", "user", BOB),
    ("webui", "service", WEBUI),
];

/// A bridge with the gateway token (admin) and a tokens file of `entries`.
async fn app_with(entries: &[(&str, &str, &str)]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, tokens_toml(entries)).unwrap();
    let app = TestApp::builder()
        .token(ADMIN)
        .env("OPENCLAW_TOKENS_FILE", file.to_str().unwrap())
        .spawn()
        .await;
    (app, dir)
}

/// A request as `token`, with `headers`.
async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("the bridge answers")
}

/// A `POST` with no body as `token` (cancel, replay): its status.
async fn post_as(app: &TestApp, path: &str, token: &str) -> u16 {
    call(app, reqwest::Method::POST, path, token, &[], None)
        .await
        .status()
        .as_u16()
}

async fn submit_as(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> TaskId {
    let r = call(
        app,
        reqwest::Method::POST,
        "/v1/tasks",
        token,
        headers,
        Some(json!({"repo": "https://example.com/o/r.git", "prompt": "p"})),
    )
    .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    TaskId::parse(body["id"].as_str().unwrap()).unwrap()
}

async fn get_json(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let r = call(app, reqwest::Method::GET, path, token, &[], None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<String> {
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_user_sees_only_their_own_tasks_and_admins_see_all() {
    let (app, _dir) = app_with(PEOPLE).await;
    let alices = submit_as(&app, ALICE, &[]).await;
    let bobs = submit_as(&app, BOB, &[]).await;
    // Alice cannot read, stream, diff, cancel or replay Bob's task: 404, as for no task.
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/tasks/{bobs}")),
        (
            reqwest::Method::GET,
            format!("/v1/tasks/{bobs}/events?follow=false"),
        ),
        (reqwest::Method::GET, format!("/v1/tasks/{bobs}/diff")),
        (reqwest::Method::POST, format!("/v1/tasks/{bobs}/cancel")),
        (reqwest::Method::POST, format!("/v1/tasks/{bobs}/replay")),
    ] {
        let r = call(&app, method.clone(), &path, ALICE, &[], None).await;
        assert_eq!(r.status(), 404, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{body}");
        assert_eq!(body["error"]["message"], format!("no task {bobs}"));
    }
    // Bob's task is untouched (not canceled, not replayed).
    let (_, bob_status) = get_json(&app, &format!("/v1/tasks/{bobs}"), BOB).await;
    assert_eq!(bob_status["status"], "queued");
    assert_eq!(bob_status["cancel_requested"], false);
    assert_eq!(bob_status["submitted_by"], json!({"principal": "bob"}));
    // Her own she reads, and her list holds only hers.
    let (status, mine) = get_json(&app, &format!("/v1/tasks/{alices}"), ALICE).await;
    assert_eq!(status, 200);
    assert_eq!(mine["submitted_by"]["principal"], "alice");
    let (_, list) = get_json(&app, "/v1/tasks", ALICE).await;
    assert_eq!(ids(&list), [alices.to_string()]);
    let (status, refused) = get_json(&app, "/v1/tasks?user=bob", ALICE).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["field"], "user");
    // The admin sees both, and filters by user.
    let (_, all) = get_json(&app, "/v1/tasks", ADMIN).await;
    assert_eq!(ids(&all), [bobs.to_string(), alices.to_string()]);
    let (_, only_bob) = get_json(&app, "/v1/tasks?user=bob", ADMIN).await;
    assert_eq!(ids(&only_bob), [bobs.to_string()]);
    let (status, _) = get_json(&app, &format!("/v1/tasks/{bobs}"), ADMIN).await;
    assert_eq!(status, 200);
    // Bob cancels his own.
    assert_eq!(
        post_as(&app, &format!("/v1/tasks/{bobs}/cancel"), BOB).await,
        202
    );
}

#[tokio::test]
async fn forwarded_user_headers_count_only_from_the_service_principal() {
    let (app, _dir) = app_with(PEOPLE).await;
    let user_1 = [
        ("X-OpenWebUI-User-Id", "u-1"),
        ("X-OpenWebUI-User-Email", "one@example.com"),
    ];
    // From a user principal the headers are ignored: the task is Alice's.
    let by_alice = submit_as(&app, ALICE, &user_1).await;
    let (_, status) = get_json(&app, &format!("/v1/tasks/{by_alice}"), ALICE).await;
    assert_eq!(status["submitted_by"], json!({"principal": "alice"}));
    // From the service they name the user it acts for.
    let for_u1 = submit_as(&app, WEBUI, &user_1).await;
    let (status_code, status) = get_json(&app, &format!("/v1/tasks/{for_u1}"), WEBUI).await;
    assert_eq!(
        status_code, 404,
        "the service without the user's headers is not u-1"
    );
    let r = call(
        &app,
        reqwest::Method::GET,
        &format!("/v1/tasks/{for_u1}"),
        WEBUI,
        &user_1,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let status_u1: Value = r.json().await.unwrap();
    assert_eq!(
        status_u1["submitted_by"],
        json!({"principal": "webui", "user": "u-1"})
    );
    let _ = status;
    // Another user of the same front end does not see it.
    let r = call(
        &app,
        reqwest::Method::GET,
        &format!("/v1/tasks/{for_u1}"),
        WEBUI,
        &[("X-OpenWebUI-User-Id", "u-2")],
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    // The task's first event names who asked.
    let queued = app.queued_event(&for_u1).await;
    let EventKind::Queued { submitted_by, .. } = queued.kind else {
        panic!("{queued:?}");
    };
    assert_eq!(submitted_by.unwrap().who(), "u-1");
}

#[tokio::test]
async fn unknown_tokens_are_refused_and_the_file_is_read_again_without_a_restart() {
    let (app, dir) = app_with(PEOPLE).await;
    let r = call(&app, reqwest::Method::GET, "/v1/tasks", CAROL, &[], None).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let mut entries = PEOPLE.to_vec();
    entries.push(("carol", "user", CAROL));
    std::fs::write(dir.path().join("tokens.toml"), tokens_toml(&entries)).unwrap();
    openclaw_tests::eventually(20, "carol's token works once the file changed", || async {
        let r = call(&app, reqwest::Method::GET, "/v1/tasks", CAROL, &[], None).await;
        (r.status() == 200).then_some(())
    })
    .await;
    // The reload is in the audit trail.
    let (_, audit) = get_json(&app, "/v1/audit?action=token_reload", ADMIN).await;
    let records = audit["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["detail"] == "loaded 4 principals"),
        "{audit}"
    );
}

#[tokio::test]
async fn every_state_changing_request_is_audited_and_no_record_holds_a_token() {
    let (app, _dir) = app_with(PEOPLE).await;
    let id = submit_as(&app, ALICE, &[]).await;
    assert_eq!(
        post_as(&app, &format!("/v1/tasks/{id}/replay"), ALICE).await,
        202
    );
    assert_eq!(
        post_as(&app, &format!("/v1/tasks/{id}/cancel"), ALICE).await,
        202
    );
    let r = call(
        &app,
        reqwest::Method::POST,
        "/v1/tasks",
        "not-a-token",
        &[],
        Some(json!({"prompt": "p"})),
    )
    .await;
    assert_eq!(r.status(), 401);
    // Reads are not audited; users may not read the trail.
    let (status, refused) = get_json(&app, "/v1/audit", ALICE).await;
    assert_eq!(status, 403);
    assert_eq!(refused["error"]["code"], "forbidden");
    let (_, audit) = get_json(&app, "/v1/audit", ADMIN).await;
    let records = audit["records"].as_array().unwrap();
    let seen: Vec<(String, String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["principal"].as_str().unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("submit".to_owned(), "unauthenticated".to_owned(), 401),
            ("cancel".to_owned(), "alice".to_owned(), 202),
            ("replay".to_owned(), "alice".to_owned(), 202),
            ("submit".to_owned(), "alice".to_owned(), 202),
        ],
        "{audit}"
    );
    assert_eq!(records[3]["task_id"], id.to_string());
    assert_eq!(records[1]["task_id"], id.to_string());
    assert_eq!(records[3]["from"], "127.0.0.1");
    let text = audit.to_string();
    for token in [ADMIN, ALICE, BOB, WEBUI, "not-a-token"] {
        assert!(!text.contains(token), "a token in the audit trail");
    }
    assert!(!text.contains("\"prompt\""), "no prompt in the audit trail");
}

/// Opens a streamed chat as `token` with `headers` and returns the task it started.
async fn chat_task(app: &TestApp, token: &str, headers: &[(&str, &str)], chat_id: &str) -> TaskId {
    let r = call(
        app,
        reqwest::Method::POST,
        "/v1/chat/completions",
        token,
        headers,
        Some(json!({
            "model": "openclaw:doc-writer",
            "stream": true,
            "chat_id": chat_id,
            "messages": [{"role": "user", "content": "Document https://example.com/o/r.git"}],
        })),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = r
        .headers()
        .get("x-openclaw-task-id")
        .and_then(|v| v.to_str().ok())
        .expect("the task id header")
        .to_owned();
    TaskId::parse(&id).unwrap()
}

#[tokio::test]
async fn one_user_cannot_continue_another_users_conversation() {
    let (app, _dir) = app_with(PEOPLE).await;
    let u1 = [("X-OpenWebUI-User-Id", "u-1")];
    let u2 = [("X-OpenWebUI-User-Id", "u-2")];
    let first = chat_task(&app, WEBUI, &u1, "chat-42").await;
    let again = chat_task(&app, WEBUI, &u1, "chat-42").await;
    let other = chat_task(&app, WEBUI, &u2, "chat-42").await;
    let branch = |id: TaskId| {
        let app = &app;
        async move {
            let r = call(
                app,
                reqwest::Method::GET,
                &format!("/v1/tasks/{id}"),
                ADMIN,
                &[],
                None,
            )
            .await;
            let status: Value = r.json().await.unwrap();
            status["push_branch"].as_str().unwrap().to_owned()
        }
    };
    // The same user's follow-up continues on the conversation's branch; another user with
    // the same chat id starts their own.
    assert_eq!(branch(again).await, branch(first).await);
    assert_eq!(branch(other).await, format!("openclaw/{other}"));
    // Each chat is in the audit trail with the task it started and the user it was for.
    let (_, audit) = get_json(&app, "/v1/audit?action=chat", ADMIN).await;
    let chats: Vec<(String, String)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["task_id"].as_str().unwrap().to_owned(),
                r["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        chats,
        [
            (other.to_string(), "u-2".to_owned()),
            (again.to_string(), "u-1".to_owned()),
            (first.to_string(), "u-1".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_gateways_requests_and_the_commit_name_the_user_a_task_is_for() {
    let (app, _dir) = app_with(PEOPLE).await;
    let repo = BareRepo::new();
    let upstream = ScriptedLlm::turns(vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/USAGE.md", "content": "# Usage\n"}),
        ),
        Reply::text("Add a usage guide"),
    ])
    .await;
    let proxy = LiteLlm::start(&upstream).await;
    let r = call(
        &app,
        reqwest::Method::POST,
        "/v1/tasks",
        WEBUI,
        &[("X-OpenWebUI-User-Id", "u-7")],
        Some(json!({"repo": repo.file_url(), "prompt": "Document it"})),
    )
    .await;
    assert_eq!(r.status(), 202);
    let id = TaskId::parse(r.json::<Value>().await.unwrap()["id"].as_str().unwrap()).unwrap();
    let base = proxy.url();
    let mut worker = WorkerProcess::start(
        worker_bin(),
        &env_for(
            &app,
            &upstream,
            &[
                ("LITELLM_BASE_URL", &base),
                ("LITELLM_API_KEY", &proxy.key),
                ("LITELLM_MODEL_NAME", CATALOG_MODEL),
            ],
        ),
    );
    assert_eq!(
        worker.wait().await,
        Some(0),
        "{}\n--- litellm ---\n{}",
        worker.log_text(),
        proxy.log_tail()
    );
    // Through the real LiteLLM proxy (which keeps `user` as the end user its spend tracking
    // attributes, and hands it on to OpenAI's models), every request reached the provider as
    // u-7's.
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request["user"], "u-7", "{request}");
    }
    // The commit says who asked.
    let message = repo.message(&format!("openclaw/{id}"));
    assert!(
        message
            .lines()
            .any(|l| l == "OpenClaw-Requested-By: u-7 (via webui)"),
        "{message}"
    );
}

/// A tokens file whose entries carry `extra` lines (limits, team) after their role.
async fn app_with_limits(
    entries: &[(&str, &str, &str, &str)],
    extra_file: &str,
    env: &[(&str, &str)],
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    let mut text: String = entries
        .iter()
        .map(|(name, role, token, extra)| token_entry(name, role, token, extra))
        .collect();
    text.push_str(extra_file);
    std::fs::write(&file, text).unwrap();
    let mut builder = TestApp::builder()
        .token(ADMIN)
        .env("OPENCLAW_TOKENS_FILE", file.to_str().unwrap());
    for (k, v) in env {
        builder = builder.env(k, *v);
    }
    (builder.spawn().await, dir)
}

/// Submits `n` tasks as `token` at once: (accepted ids, refusals as (status, Retry-After, body)).
async fn submit_many(
    app: &TestApp,
    token: &str,
    n: usize,
) -> (Vec<TaskId>, Vec<(u16, Option<u64>, Value)>) {
    let answers = futures_util::future::join_all((0..n).map(|_| {
        call(
            app,
            reqwest::Method::POST,
            "/v1/tasks",
            token,
            &[],
            Some(json!({"repo": "https://example.com/o/r.git", "prompt": "p"})),
        )
    }))
    .await;
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for r in answers {
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body: Value = r.json().await.unwrap();
        if status == 202 {
            accepted.push(TaskId::parse(body["id"].as_str().unwrap()).unwrap());
        } else {
            refused.push((status, retry_after, body));
        }
    }
    (accepted, refused)
}

#[tokio::test]
async fn twenty_concurrent_submits_against_five_in_flight_accept_exactly_five() {
    let (app, _dir) = app_with_limits(
        &[
            ("alice", "user", ALICE, "max_in_flight = 5"),
            ("bob", "user", BOB, ""),
        ],
        "",
        &[],
    )
    .await;
    let (accepted, refused) = submit_many(&app, ALICE, 20).await;
    assert_eq!(accepted.len(), 5, "{refused:?}");
    assert_eq!(refused.len(), 15);
    for (status, retry_after, body) in &refused {
        assert_eq!(*status, 429);
        assert!(retry_after.is_some_and(|s| s > 0), "Retry-After");
        assert_eq!(body["error"]["code"], "quota_exceeded");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("5 tasks in flight"),
            "{body}"
        );
    }
    // Nothing of the refused was stored: the admin's list holds the five.
    let (_, all) = get_json(&app, "/v1/tasks?limit=100", ADMIN).await;
    assert_eq!(ids(&all).len(), 5);
    // One ends: there is room for exactly one more.
    assert_eq!(
        post_as(&app, &format!("/v1/tasks/{}/cancel", accepted[0]), ALICE).await,
        202
    );
    let (more, refused) = submit_many(&app, ALICE, 3).await;
    assert_eq!((more.len(), refused.len()), (1, 2));
    // Another user is not held by Alice's limit.
    let (bobs, refused) = submit_many(&app, BOB, 3).await;
    assert_eq!(bobs.len(), 3, "{refused:?}");
}

#[tokio::test]
async fn budgets_refuse_what_completed_tasks_spent_and_what_running_ones_reserved() {
    let (app, _dir) = app_with_limits(
        &[
            ("alice", "user", ALICE, "max_cost_usd_per_day = 2.5"),
            ("bob", "user", BOB, "max_cost_usd_per_day = 2.0"),
        ],
        "",
        &[("OPENCLAW_TASK_COST_RESERVE_USD", "1.0")],
    )
    .await;
    // Reserved budgets: ten at once against $2.50 with $1 each: two, never three.
    let (accepted, refused) = submit_many(&app, ALICE, 10).await;
    assert_eq!(accepted.len(), 2, "{refused:?}");
    let message = refused[0].2["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("daily budget of $2.50: $0.00 spent, $2.00 reserved"),
        "{message}"
    );
    // Spent: Bob's first task completes having cost $1.50; the next would reserve $1 more.
    let (first, _) = submit_many(&app, BOB, 1).await;
    app.set_record(&first[0], |s| {
        s.status = openclaw_common::status::TaskState::Completed;
        s.usage = Some(openclaw_common::usage::Usage {
            cost_usd: Some(1.5),
            ..Default::default()
        });
    })
    .await;
    let (none, refused) = submit_many(&app, BOB, 1).await;
    assert!(none.is_empty());
    let (status, retry_after, body) = &refused[0];
    assert_eq!(*status, 429);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("daily budget of $2.00: $1.50 spent, $0.00 reserved"),
        "{message}"
    );
    assert!(
        retry_after.is_some_and(|s| (1..=86_400).contains(&s)),
        "until the next UTC day: {retry_after:?}"
    );
}

#[tokio::test]
async fn a_teams_limit_holds_its_members_together() {
    let (app, _dir) = app_with_limits(
        &[
            ("alice", "user", ALICE, "team = \"platform\""),
            ("bob", "user", BOB, "team = \"platform\""),
        ],
        "[[team]]\nname = \"platform\"\nmax_in_flight = 3\n",
        &[],
    )
    .await;
    let (alices, _) = submit_many(&app, ALICE, 2).await;
    assert_eq!(alices.len(), 2);
    let (bobs, refused) = submit_many(&app, BOB, 2).await;
    assert_eq!(bobs.len(), 1);
    let message = refused[0].2["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("team platform has 3 tasks in flight"),
        "{message}"
    );
}

#[tokio::test]
async fn usage_sums_the_recorded_costs_per_user_agent_and_model() {
    let (app, _dir) = app_with(PEOPLE).await;
    let ended = |cost: Option<f64>, model: &'static str| {
        move |s: &mut openclaw_common::status::TaskStatus| {
            s.status = openclaw_common::status::TaskState::Completed;
            s.usage = Some(openclaw_common::usage::Usage {
                model: Some(model.into()),
                model_calls: 2,
                input_tokens: 100,
                output_tokens: 10,
                cost_usd: cost,
                worker_seconds: 1.5,
                compute_cost_usd: None,
            });
        }
    };
    let mut recorded = Vec::new();
    for (token, cost, model) in [
        (ALICE, Some(0.25), "m1"),
        (ALICE, Some(1.5), "m2"),
        (BOB, Some(0.5), "m1"),
        (BOB, None, "m1"),
    ] {
        let id = submit_as(&app, token, &[]).await;
        let status = app.set_record(&id, ended(cost, model)).await;
        recorded.push(status);
    }
    // The sums are the records' own figures, summed.
    let cost_of = |who: &str| -> f64 {
        recorded
            .iter()
            .filter(|s| s.submitted_by.as_ref().unwrap().who() == who)
            .filter_map(|s| s.usage.as_ref().unwrap().cost_usd)
            .sum()
    };
    let (status, all) = get_json(&app, "/v1/usage", ADMIN).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["group_by"], "user");
    let groups = all["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{all}");
    let group = |key: &str| groups.iter().find(|g| g["key"] == key).unwrap().clone();
    assert_eq!(group("alice")["cost_usd"].as_f64(), Some(cost_of("alice")));
    assert_eq!(group("alice")["tasks"], 2);
    assert_eq!(group("bob")["cost_usd"].as_f64(), Some(cost_of("bob")));
    assert_eq!(group("bob")["tasks_without_cost"], 1);
    assert_eq!(
        all["total"]["cost_usd"].as_f64(),
        Some(cost_of("alice") + cost_of("bob"))
    );
    assert_eq!(all["total"]["input_tokens"], 400);
    // By model, for one user.
    let (_, by_model) = get_json(&app, "/v1/usage?user=alice&group_by=model", ADMIN).await;
    let models: Vec<(String, f64)> = by_model["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(models, [("m1".to_owned(), 0.25), ("m2".to_owned(), 1.5)]);
    // A user sees their own, and only their own.
    let (_, own) = get_json(&app, "/v1/usage", ALICE).await;
    let keys: Vec<&str> = own["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["alice"]);
    let (status, refused) = get_json(&app, "/v1/usage?user=bob", ALICE).await;
    assert_eq!(status, 403, "{refused}");
    // Nothing since tomorrow; a bad date is named.
    let tomorrow = (openclaw_common::now() + time::Duration::days(1)).date();
    let (_, later) = get_json(&app, &format!("/v1/usage?since={tomorrow}"), ADMIN).await;
    assert_eq!(later["groups"].as_array().unwrap().len(), 0, "{later}");
    let (status, bad) = get_json(&app, "/v1/usage?since=yesterday", ADMIN).await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("since"))
    );
}

/// A task's record as the admin reads it.
async fn record(app: &TestApp, id: &TaskId) -> Value {
    get_json(app, &format!("/v1/tasks/{id}"), ADMIN).await.1
}

#[tokio::test]
async fn over_the_in_flight_limit_a_task_can_wait_for_room_with_its_reason() {
    let (app, _dir) = app_with_limits(
        &[("alice", "user", ALICE, "max_in_flight = 2")],
        "",
        &[("OPENCLAW_OVER_LIMIT", "queue")],
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(submit_as(&app, ALICE, &[]).await);
    }
    // Two are stored for workers; two wait, saying why, in their record and their events.
    for id in &ids[..2] {
        assert!(record(&app, id).await["seq"].is_u64());
    }
    for id in &ids[2..] {
        let r = record(&app, id).await;
        assert_eq!(r["status"], "queued");
        assert!(r["seq"].is_null(), "{r}");
        assert!(
            r["waiting_reason"]
                .as_str()
                .unwrap()
                .starts_with("waiting for room: alice has 2 tasks in flight"),
            "{r}"
        );
    }
    let mut stream = app.events(&ids[2], None).await;
    let mut frames = Vec::new();
    for _ in 0..2 {
        let frame = openclaw_tests::within(20, "the waiting task's next event", stream.next())
            .await
            .expect("an event");
        frames.push(frame);
    }
    let kinds: Vec<EventKind> = frames
        .iter()
        .map(|f| {
            serde_json::from_str::<openclaw_common::event::TaskEvent>(&f.data)
                .unwrap()
                .kind
        })
        .collect();
    assert!(matches!(kinds[0], EventKind::Queued { .. }), "{kinds:?}");
    assert!(
        matches!(&kinds[1], EventKind::Waiting { reason } if reason.contains("limit is 2")),
        "{kinds:?}"
    );
    // The last one is canceled while it waits; then the first ends: the third takes its place.
    let cancel = |id: TaskId| {
        let app = &app;
        async move {
            call(
                app,
                reqwest::Method::POST,
                &format!("/v1/tasks/{id}/cancel"),
                ALICE,
                &[],
                None,
            )
            .await
            .status()
        }
    };
    assert_eq!(cancel(ids[3]).await, 202);
    assert_eq!(cancel(ids[0]).await, 202);
    openclaw_tests::eventually(
        20,
        "the third task is stored once there is room",
        || async { record(&app, &ids[2]).await["seq"].as_u64() },
    )
    .await;
    // The canceled one never took a place: the second ends and a new task is stored at once.
    assert_eq!(cancel(ids[1]).await, 202);
    let fifth = submit_as(&app, ALICE, &[]).await;
    assert!(
        record(&app, &fifth).await["seq"].is_u64(),
        "room for the fifth"
    );
    let fourth = record(&app, &ids[3]).await;
    assert_eq!(fourth["status"], "canceled");
    assert!(fourth["seq"].is_null(), "never stored: {fourth}");
}

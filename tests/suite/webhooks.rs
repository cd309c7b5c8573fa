//! GitHub webhooks in, with GitHub's own example payloads signed as GitHub signs them, against
//! the scripted GitHub.

use openclaw_common::ids::TaskId;
use openclaw_tests::app::TestApp;
use openclaw_tests::flow::{
    app_without_dispatch, doc_script, env_for, events_until_end, kinds, worker_bin,
};
use openclaw_tests::github::{ScriptedGitHub, about, deliver, webhook_example};
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::{Value, json};

use crate::forge::{Forge, pairs};

const SECRET: &str = "webhook-secret-of-the-test";
const WRITER: &str = "octo-writer";

async fn setup() -> (Forge, TestApp) {
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    forge.github.set_permission(WRITER, "write");
    let mut env = forge.github.token_env();
    env.push(("OPENCLAW_GITHUB_WEBHOOK_SECRET".into(), SECRET.into()));
    let app = app_without_dispatch(&pairs(&env)).await;
    (forge, app)
}

/// GitHub's example of a comment created on an issue (not a pull request), about the test
/// repository, by `sender`, saying `text`.
fn issue_comment(forge: &Forge, sender: &str, text: &str) -> Value {
    let mut p = about(
        webhook_example("issue_comment", "created", |p| {
            p["issue"]["pull_request"].is_null()
        }),
        "octo-org/docs",
        &forge.url,
        sender,
    );
    p["comment"]["body"] = json!(text);
    p
}

async fn task_count(app: &TestApp) -> usize {
    let list: Value = app.get("/v1/tasks?limit=100").await.json().await.unwrap();
    list["tasks"].as_array().unwrap().len()
}

async fn run_to_completion(app: &TestApp, forge: &Forge, llm: &ScriptedLlm, id: &TaskId) {
    let settings = forge.worker_settings(&forge.github.token_env());
    let worker = WorkerProcess::start(worker_bin(), &env_for(app, llm, &pairs(&settings)));
    openclaw_tests::flow::completed_by(app, worker, id).await;
}

#[tokio::test]
async fn a_writers_mention_on_an_issue_makes_one_task_answered_in_one_comment() {
    let (forge, app) = setup().await;
    let payload = issue_comment(&forge, WRITER, "@openclaw please document how to run it");
    let issue = payload["issue"]["number"].as_u64().unwrap();
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let r = deliver(&app.base, SECRET, "issue_comment", delivery, &payload).await;
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let id = TaskId::parse(accepted["task"].as_str().unwrap()).unwrap();

    // GitHub redelivers it: no second task, no second comment.
    let again = deliver(&app.base, SECRET, "issue_comment", delivery, &payload).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["task"], id.to_string());
    assert_eq!(task_count(&app).await, 1);
    let comments = forge.github.comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].number, issue);
    assert!(comments[0].body.contains(&id.to_string()) && comments[0].body.contains("On it"));

    let status = app.status(&id).await;
    assert_eq!(status["origin"]["requested_by"], WRITER);
    assert_eq!(status["origin"]["number"], issue);
    // The task acts for the forge user who asked, and both deliveries are in the audit trail.
    let by_writer = json!({"principal": "github-webhook", "user": format!("github:{WRITER}")});
    assert_eq!(status["submitted_by"], by_writer);
    let audit: Value = app
        .get("/v1/audit?action=webhook")
        .await
        .json()
        .await
        .unwrap();
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{audit}");
    for (record, code) in records.iter().zip([200, 202]) {
        assert_eq!(record["status"], code, "{record}");
        assert_eq!(record["principal"], "github-webhook");
        assert_eq!(record["user"], format!("github:{WRITER}"));
        assert_eq!(record["request"], "POST /v1/webhooks/github");
    }
    assert_eq!(records[1]["task_id"], id.to_string());
    assert!(
        !audit.to_string().contains(SECRET),
        "the webhook secret is not in the audit trail"
    );
    let llm = ScriptedLlm::turns(doc_script()).await;
    run_to_completion(&app, &forge, &llm, &id).await;
    let prompt = openclaw_tests::llm::message_text(&llm.requests()[0]["messages"][1]);
    assert!(
        prompt.contains(payload["issue"]["title"].as_str().unwrap())
            && prompt.contains("please document how to run it"),
        "{prompt}"
    );
    let pulls = forge.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert!(
        pulls[0].body.starts_with(&format!("Closes #{issue}.")),
        "{}",
        pulls[0].body
    );

    // The one comment now says how it went.
    let url = format!(
        "http://{}/octo-org/docs/pull/{}",
        forge.github.web, pulls[0].number
    );
    let answered = openclaw_tests::eventually(30, "the comment to be edited", || async {
        let c = forge.github.comments().into_iter().next()?;
        (c.edits > 0).then_some(c)
    })
    .await;
    assert!(
        answered.body.contains("Done") && answered.body.contains(&url),
        "{}",
        answered.body
    );
    assert_eq!(forge.github.comments().len(), 1);
    forge.github.assert_contract();
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_webhooks_are_refused_and_leave_nothing() {
    let (forge, app) = setup().await;
    let payload = issue_comment(&forge, WRITER, "@openclaw do it");
    let body = serde_json::to_vec(&payload).unwrap();
    let good = openclaw_common::forge::webhook::github_signature(SECRET.as_bytes(), &body);
    let other = openclaw_common::forge::webhook::github_signature(b"another secret", &body);
    let mut altered = payload.clone();
    altered["comment"]["body"] = json!("@openclaw push to main");
    for (signature, sent) in [
        (None, body.clone()),
        (Some(other), body.clone()),
        (Some(good.clone()), serde_json::to_vec(&altered).unwrap()),
        (Some(good.replace("sha256=", "sha1=")), body.clone()),
    ] {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/webhooks/github", app.base))
            .header("X-GitHub-Event", "issue_comment")
            .header("X-GitHub-Delivery", "d-1")
            .body(sent);
        if let Some(s) = signature {
            request = request.header("X-Hub-Signature-256", s);
        }
        let r = request.send().await.unwrap();
        openclaw_tests::flow::expect_error(r, 401, "unauthorized", None).await;
    }
    assert_eq!(task_count(&app).await, 0);
    assert!(
        forge.github.requests().is_empty(),
        "nothing asked of GitHub"
    );
    // A bridge without a webhook secret takes none.
    let closed = app_without_dispatch(&pairs(&forge.github.token_env())).await;
    let r = deliver(&closed.base, SECRET, "issue_comment", "d-2", &payload).await;
    openclaw_tests::flow::expect_error(r, 404, "not_found", None).await;
}

#[tokio::test]
async fn readers_and_unmentioned_comments_ask_for_nothing() {
    let (forge, app) = setup().await;
    forge.github.set_permission("octo-reader", "read");
    let r = deliver(
        &app.base,
        SECRET,
        "issue_comment",
        "d-reader",
        &issue_comment(&forge, "octo-reader", "@openclaw delete everything"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains("may not write"),
        "{answer}"
    );
    let r = deliver(
        &app.base,
        SECRET,
        "issue_comment",
        "d-chat",
        &issue_comment(&forge, WRITER, "Looks good to me"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(task_count(&app).await, 0);
    assert!(forge.github.comments().is_empty());
    let asked: Vec<String> = forge
        .github
        .requests()
        .into_iter()
        .map(|r| r.operation)
        .collect();
    assert_eq!(asked, ["repos/get-collaborator-permission-level"]);
    forge.github.assert_contract();
}

#[tokio::test]
async fn the_label_asks_for_the_issue() {
    let (forge, app) = setup().await;
    let mut payload = about(
        webhook_example("issues", "labeled", |_| true),
        "octo-org/docs",
        &forge.url,
        WRITER,
    );
    payload["label"]["name"] = json!("openclaw");
    let r = deliver(&app.base, SECRET, "issues", "d-label", &payload).await;
    assert_eq!(r.status(), 202);
    let id: Value = r.json().await.unwrap();
    let status = app
        .status(&TaskId::parse(id["task"].as_str().unwrap()).unwrap())
        .await;
    assert_eq!(status["origin"]["number"], payload["issue"]["number"]);
    forge.github.assert_contract();
}

#[tokio::test]
async fn a_review_comment_on_a_tasks_pull_request_continues_on_its_branch() {
    let (forge, app) = setup().await;
    let first = app
        .submit(&json!({"repo": forge.url, "prompt": "Document it", "pull_request": true}))
        .await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    run_to_completion(&app, &forge, &llm, &first).await;
    let pull = forge.github.pulls()[0].clone();
    let branch = format!("openclaw/{first}");

    let mut payload = about(
        webhook_example("pull_request_review_comment", "created", |_| true),
        "octo-org/docs",
        &forge.url,
        WRITER,
    );
    payload["pull_request"]["number"] = json!(pull.number);
    payload["comment"]["body"] = json!("@openclaw say how to install it too");
    payload["comment"]["path"] = json!("docs/USAGE.md");
    payload["comment"]["line"] = json!(3);
    let r = deliver(
        &app.base,
        SECRET,
        "pull_request_review_comment",
        "d-review",
        &payload,
    )
    .await;
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let follow_up = TaskId::parse(accepted["task"].as_str().unwrap()).unwrap();
    let status = app.status(&follow_up).await;
    assert_eq!(status["branch"], branch.as_str());
    assert_eq!(status["push_branch"], branch.as_str());

    let llm = ScriptedLlm::turns(vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/INSTALL.md", "content": "# Install\n\nRun `make`.\n"}),
        ),
        Reply::text("Say how to install it"),
    ])
    .await;
    run_to_completion(&app, &forge, &llm, &follow_up).await;
    let prompt = openclaw_tests::llm::message_text(
        &llm.requests()[0]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone(),
    );
    assert!(
        prompt.contains("docs/USAGE.md line 3") && prompt.contains("say how to install it too"),
        "{prompt}"
    );
    // The commit landed on the same branch, on top of the first task's; still one pull request.
    assert_eq!(forge.repo.new_commits(&branch).len(), 2);
    assert!(forge.repo.file(&branch, "docs/INSTALL.md").is_some());
    assert_eq!(forge.github.pulls().len(), 1);
    assert_eq!(forge.github.pulls()[0].title, pull.title);
    let events = events_until_end(&app, &follow_up).await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    forge.github.assert_contract();
}

#[tokio::test]
async fn closing_a_tasks_pull_request_deletes_its_branch_when_configured() {
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    let mut env = forge.github.token_env();
    env.push(("OPENCLAW_GITHUB_WEBHOOK_SECRET".into(), SECRET.into()));
    let keep = app_without_dispatch(&pairs(&env)).await;
    env.push(("OPENCLAW_DELETE_CLOSED_BRANCHES".into(), "true".into()));
    let delete = {
        let mut b = TestApp::builder().nats(keep.nats.alias());
        for (k, v) in &env {
            b = b.env(k, v.clone());
        }
        b.spawn().await
    };
    let id = keep
        .submit(&json!({"repo": forge.url, "prompt": "Document it", "pull_request": true}))
        .await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    run_to_completion(&keep, &forge, &llm, &id).await;
    let pull = forge.github.pulls()[0].clone();

    let mut payload = about(
        webhook_example("pull_request", "closed", |_| true),
        "octo-org/docs",
        &forge.url,
        "merge-queue",
    );
    payload["pull_request"]["number"] = json!(pull.number);
    payload["pull_request"]["merged"] = json!(true);
    payload["pull_request"]["head"]["ref"] = json!(pull.head);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("octo-org/docs");
    // Off by default: the branch stays.
    let r = deliver(&keep.base, SECRET, "pull_request", "d-closed-1", &payload).await;
    assert_eq!(r.status(), 200);
    assert!(forge.github.deleted_refs().is_empty());
    // On: the task's branch goes.
    let r = deliver(&delete.base, SECRET, "pull_request", "d-closed-2", &payload).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        forge.github.deleted_refs(),
        [format!("heads/{}", pull.head)]
    );
    // A branch that is no task's stays.
    payload["pull_request"]["head"]["ref"] = json!("feature/mine");
    let r = deliver(&delete.base, SECRET, "pull_request", "d-closed-3", &payload).await;
    assert_eq!(r.status(), 200);
    assert_eq!(forge.github.deleted_refs().len(), 1);
    forge.github.assert_contract();
}

#[tokio::test]
async fn a_reader_is_told_once_when_the_deployment_says_so() {
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    let mut env = forge.github.token_env();
    env.push(("OPENCLAW_GITHUB_WEBHOOK_SECRET".into(), SECRET.into()));
    env.push(("OPENCLAW_WEBHOOK_REPLY_TO_READERS".into(), "true".into()));
    let app = app_without_dispatch(&pairs(&env)).await;
    let payload = issue_comment(&forge, "octo-reader", "@openclaw rewrite everything");
    let r = deliver(&app.base, SECRET, "issue_comment", "d-polite", &payload).await;
    assert_eq!(r.status(), 200);
    assert_eq!(task_count(&app).await, 0);
    let comments = forge.github.comments();
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("@octo-reader") && comments[0].body.contains("may write"));
    forge.github.assert_contract();
}

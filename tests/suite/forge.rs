//! Pull requests from tasks, against a scripted GitHub that checks every request against
//! GitHub's official OpenAPI description.

use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_common::ids::TaskId;
use openclaw_tests::app::TestApp;
use openclaw_tests::flow::{
    app_without_dispatch, completed_by, doc_script, env_for, events_until_end, expect_error, kinds,
    worker_bin,
};
use openclaw_tests::git::{BareRepo, GitHttpServer};
use openclaw_tests::github::ScriptedGitHub;
use openclaw_tests::llm::ScriptedLlm;
use openclaw_tests::worker::WorkerProcess;
use serde_json::{Value, json};

const GIT_TOKEN: &str = "git-token-for-the-test-forge";

/// A repository at `octo-org/docs` on a git server whose host is the scripted GitHub's.
pub(crate) struct Forge {
    pub(crate) github: ScriptedGitHub,
    pub(crate) repo: BareRepo,
    pub(crate) git: GitHttpServer,
    /// The repository's clone URL.
    pub(crate) url: String,
}

impl Forge {
    pub(crate) async fn start(github: ScriptedGitHub) -> Self {
        let repo = BareRepo::new();
        let path = repo.publish_as("octo-org", "docs");
        let git = GitHttpServer::start(repo.root(), "bot", GIT_TOKEN);
        let url = git.url(&path);
        Self {
            github,
            repo,
            git,
            url,
        }
    }

    /// The worker's git credentials for the git server, and `forge` settings.
    pub(crate) fn worker_settings(&self, forge: &[(String, String)]) -> Vec<(String, String)> {
        let mut all = vec![
            ("GIT_USERNAME".to_owned(), "bot".to_owned()),
            ("GIT_TOKEN".to_owned(), GIT_TOKEN.to_owned()),
            (
                "OPENCLAW_GIT_CREDENTIAL_HOSTS".to_owned(),
                format!("127.0.0.1:{}", self.git.port),
            ),
        ];
        all.extend(forge.iter().cloned());
        all
    }
}

pub(crate) fn pairs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn completed_pull_request(events: &[TaskEvent]) -> Value {
    match &events.last().expect("events").kind {
        EventKind::Completed { pull_request, .. } => json!(pull_request),
        other => panic!("not completed: {other:?}"),
    }
}

/// Everything a task left where people and machines read it, as text.
async fn everything_said(
    app: &TestApp,
    id: &TaskId,
    worker: &WorkerProcess,
    repo: &BareRepo,
) -> String {
    let events = events_until_end(app, id).await;
    format!(
        "{}\n{}\n{}\n{}",
        serde_json::to_string(&events).unwrap(),
        app.status(id).await,
        worker.log_text(),
        repo.message(&format!("openclaw/{id}"))
    )
}

#[tokio::test]
async fn the_scripted_github_refuses_what_github_would() {
    // The harness's own honesty: requests GitHub's description refuses are caught.
    let github = ScriptedGitHub::start().await;
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{}{path}", github.api_url))
            .bearer_auth(&github.token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "suite");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let good = send(
        reqwest::Method::POST,
        "/repos/o/r/pulls",
        Some(json!({"title": "t", "head": "h", "base": "main", "draft": true})),
    )
    .await
    .unwrap();
    assert_eq!(good.status(), 201);
    let created: Value = good.json().await.unwrap();
    assert_eq!(created["head"]["ref"], "h");
    github.assert_contract();

    for (method, path, body, why) in [
        (
            reqwest::Method::POST,
            "/repos/o/r/pulls",
            Some(json!({"title": 5, "head": "h2", "base": "main"})),
            "body.title",
        ),
        (
            reqwest::Method::GET,
            "/repos/o/r/pulls?colour=red",
            None,
            "colour",
        ),
        (
            reqwest::Method::GET,
            "/repos/o/r/pulls?state=merged",
            None,
            "merged",
        ),
        (
            reqwest::Method::POST,
            "/repos/o/r/pull",
            None,
            "not an operation",
        ),
    ] {
        let answer = send(method, path, body).await.unwrap();
        assert!(
            answer.status().is_client_error(),
            "{path}: {}",
            answer.status()
        );
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            github.assert_contract();
        }))
        .expect_err("the violation is reported");
        let text = caught.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains(why), "{path}: {text}");
    }
}

#[tokio::test]
async fn a_task_that_asks_for_a_pull_request_completes_with_exactly_one() {
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    let github_env = forge.github.token_env();
    let app = app_without_dispatch(&pairs(&github_env)).await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let id = app
        .submit(&json!({"repo": forge.url, "prompt": "Document it", "pull_request": true}))
        .await;
    let settings = forge.worker_settings(&github_env);
    let worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &pairs(&settings)));
    let (worker, events) = completed_by(&app, worker, &id).await;

    let pulls = forge.github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pull = &pulls[0];
    assert_eq!(pull.repo, "octo-org/docs");
    assert_eq!(pull.head, format!("openclaw/{id}"));
    assert_eq!(pull.base, "main");
    assert!(pull.open && !pull.draft);
    assert_eq!(pull.title, "Add a usage guide");
    for part in [
        "Documents how to run the program.",
        "`docs/USAGE.md`",
        &id.to_string(),
        "model call",
    ] {
        assert!(pull.body.contains(part), "{part:?} not in {}", pull.body);
    }
    let url = format!(
        "http://{}/octo-org/docs/pull/{}",
        forge.github.web, pull.number
    );
    let status = app.status(&id).await;
    assert_eq!(status["pull_request"]["url"], url.as_str(), "{status}");
    assert_eq!(status["pull_request"]["number"], pull.number);
    assert_eq!(
        status["compare_url"],
        format!(
            "http://{}/octo-org/docs/compare/main...openclaw/{id}",
            forge.github.web
        )
        .as_str()
    );
    assert_eq!(completed_pull_request(&events)["url"], url.as_str());
    forge.github.assert_contract();
    // Looked up by its head before it was opened.
    let ops: Vec<String> = forge
        .github
        .requests()
        .into_iter()
        .map(|r| r.operation)
        .collect();
    assert_eq!(ops, ["pulls/list", "pulls/create"]);

    // The task's diff against its base, as a patch.
    let r = app.get(&format!("/v1/tasks/{id}/diff")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/x-diff; charset=utf-8");
    let diff = r.text().await.unwrap();
    assert!(
        diff.contains("diff --git a/docs/USAGE.md b/docs/USAGE.md") && diff.contains("+# Usage"),
        "{diff}"
    );
    let unknown = app.get(&format!("/v1/tasks/{}/diff", TaskId::new())).await;
    expect_error(unknown, 404, "not_found", None).await;

    // The token is in no event, status, log line or commit.
    let said = everything_said(&app, &id, &worker, &forge.repo).await;
    assert!(said.contains(&url), "the check reads the right text");
    assert!(
        !said.contains(&forge.github.token),
        "the GitHub token leaked"
    );
}

#[tokio::test]
async fn a_worker_killed_between_its_push_and_the_pull_request_leaves_one_and_no_rerun() {
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    let github_env = forge.github.token_env();
    let mut bridge = pairs(&github_env);
    bridge.push(("OPENCLAW_ACK_WAIT_SECS", "3"));
    let app = app_without_dispatch(&bridge).await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let id = app
        .submit(&json!({"repo": forge.url, "prompt": "Document it", "pull_request": true}))
        .await;
    let settings = forge.worker_settings(&github_env);
    let env = env_for(&app, &llm, &pairs(&settings));
    // GitHub stores the pull request and the worker dies before it hears back.
    let created = forge.github.hold_next_create();
    let mut first = WorkerProcess::start(worker_bin(), &env);
    let number = tokio::time::timeout(std::time::Duration::from_secs(60), created)
        .await
        .expect("the worker opens the pull request")
        .expect("held");
    first.signal("KILL");
    first.wait().await;
    let model_calls = llm.requests().len();

    // The next delivery finds the result on the branch and the pull request by its head.
    let second = WorkerProcess::start(worker_bin(), &env);
    let (_, events) = completed_by(&app, second, &id).await;
    assert_eq!(forge.github.pulls().len(), 1, "{:?}", forge.github.pulls());
    assert_eq!(completed_pull_request(&events)["number"], number);
    assert_eq!(
        llm.requests().len(),
        model_calls,
        "the second attempt did not run the agent again"
    );
    let creates = forge
        .github
        .requests()
        .into_iter()
        .filter(|r| r.operation == "pulls/create")
        .count();
    assert_eq!(creates, 1);
    forge.github.assert_contract();
}

#[tokio::test]
async fn tasks_through_two_bridges_get_one_pull_request_each() {
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    let github_env = forge.github.token_env();
    let llm = ScriptedLlm::turns(doc_script()).await;
    let settings = forge.worker_settings(&github_env);
    let first = openclaw_tests::flow::app_with_local_dispatch(&llm, &pairs(&settings)).await;
    let second = openclaw_tests::flow::local_dispatch(
        TestApp::builder().nats(first.nats.alias()),
        &llm,
        &pairs(&settings),
    )
    .spawn()
    .await;
    let body = json!({"repo": forge.url, "prompt": "Document it", "pull_request": true});
    let ids = [first.submit(&body).await, second.submit(&body).await];
    for id in &ids {
        let events = events_until_end(&first, id).await;
        assert_eq!(
            kinds(&events).last(),
            Some(&"completed"),
            "{:?}",
            kinds(&events)
        );
    }
    let pulls = forge.github.pulls();
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    for id in &ids {
        assert_eq!(
            pulls
                .iter()
                .filter(|p| p.head == format!("openclaw/{id}"))
                .count(),
            1
        );
    }
    forge.github.assert_contract();
}

#[tokio::test]
async fn a_github_app_mints_a_token_for_the_one_repository_and_uses_it_only_there() {
    let (github, app_key) = ScriptedGitHub::start_with_app().await;
    let forge = Forge::start(github).await;
    let github_env = forge.github.app_env(&app_key);
    let app = app_without_dispatch(&pairs(&github_env)).await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let id = app
        .submit(&json!({"repo": forge.url, "prompt": "Document it", "pull_request": {"draft": true, "title": "Usage guide"}}))
        .await;
    let settings = forge.worker_settings(&github_env);
    let worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &pairs(&settings)));
    let (worker, _) = completed_by(&app, worker, &id).await;

    let pulls = forge.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert!(pulls[0].draft);
    assert_eq!(pulls[0].title, "Usage guide");
    // The App's JWT (checked by the server: RS256 under the App's key, iss, lifetime) found
    // the installation and minted a token for this repository alone.
    forge.github.assert_contract();
    let requests = forge.github.requests();
    let ops: Vec<&str> = requests.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        ops,
        [
            "apps/get-repo-installation",
            "apps/create-installation-access-token",
            "pulls/list",
            "pulls/create"
        ]
    );
    assert_eq!(
        requests[1].body.as_ref().unwrap()["repositories"],
        json!(["docs"])
    );
    let minted = forge.github.installation_tokens();
    assert_eq!(minted.len(), 1);
    let bearer = format!("Bearer {}", minted[0]);
    assert!(
        requests[2..]
            .iter()
            .all(|r| r.authorization.as_deref() == Some(bearer.as_str()))
    );
    // Not sent to the git server (its log) or the model, not in anything the task left.
    let git_log = std::fs::read_to_string(&forge.git.log).unwrap();
    assert!(!git_log.contains(&minted[0]));
    assert!(
        llm.auth_headers()
            .iter()
            .flatten()
            .all(|h| !h.contains(&minted[0]))
    );
    let said = everything_said(&app, &id, &worker, &forge.repo).await;
    assert!(!said.contains(&minted[0]), "the installation token leaked");
}

#[tokio::test]
async fn a_pull_request_field_that_cannot_be_honoured_is_refused_at_submit() {
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    let app = app_without_dispatch(&pairs(&forge.github.token_env())).await;
    for (field_value, field) in [
        (json!("yes"), "pull_request"),
        (json!({"draft": "x"}), "pull_request.draft"),
        (json!({"title": ""}), "pull_request.title"),
        (json!({"base": "../x"}), "pull_request.base"),
        (json!({"colour": "red"}), "pull_request.colour"),
    ] {
        let r = app
            .post_json(
                "/v1/tasks",
                &json!({"repo": forge.url, "prompt": "p", "pull_request": field_value}),
            )
            .await;
        expect_error(r, 400, "invalid_request", Some(field)).await;
    }
    // A repository that is not on the forge.
    let r = app
        .post_json(
            "/v1/tasks",
            &json!({"repo": forge.repo.file_url(), "prompt": "p", "pull_request": true}),
        )
        .await;
    let body = expect_error(r, 400, "invalid_request", Some("pull_request")).await;
    assert!(body.to_string().contains("owner/name"), "{body}");
    // `false` is always fine.
    app.submit(&json!({"repo": forge.repo.file_url(), "prompt": "p", "pull_request": false}))
        .await;
    // A bridge without a forge says what to configure.
    let bare = app_without_dispatch(&[]).await;
    let r = bare
        .post_json(
            "/v1/tasks",
            &json!({"repo": forge.url, "prompt": "p", "pull_request": true}),
        )
        .await;
    let body = expect_error(r, 400, "invalid_request", Some("pull_request")).await;
    assert!(body.to_string().contains("GITHUB_TOKEN"), "{body}");
}

#[tokio::test]
async fn work_stopped_by_a_limit_is_opened_as_a_draft_pull_request() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.toml");
    std::fs::write(
        &agents,
        r#"
[[agent]]
name = "writer"
system_prompt = "You are writer."
tools = ["list_files", "read_file", "write_file"]
pull_request = true
limits = { max_steps = 2, max_tokens = 100000, max_wall_secs = 60 }
"#,
    )
    .unwrap();
    let agents = agents.to_str().unwrap();
    let forge = Forge::start(ScriptedGitHub::start().await).await;
    let mut settings = forge.github.token_env();
    settings.push(("OPENCLAW_AGENTS".into(), agents.into()));
    let app = app_without_dispatch(&pairs(&settings)).await;
    // The profile opens pull requests; the submit does not say.
    let id = app
        .submit(&json!({"repo": forge.url, "agent": "writer", "prompt": "Document everything"}))
        .await;
    let write = |path: &str| {
        openclaw_tests::llm::Reply::tool("write_file", json!({"path": path, "content": "# x\n"}))
    };
    let llm = ScriptedLlm::queue(vec![
        write("docs/a.md"),
        write("docs/b.md"),
        write("docs/c.md"),
    ])
    .await;
    let mut worker_settings = forge.worker_settings(&settings);
    worker_settings.push(("OPENCLAW_AGENT".into(), "writer".into()));
    let mut worker =
        WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &pairs(&worker_settings)));
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    let events = events_until_end(&app, &id).await;
    let reason = match &events.last().unwrap().kind {
        EventKind::Failed { reason, .. } => reason.clone(),
        other => panic!("{other:?}"),
    };
    let pulls = forge.github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let url = format!(
        "http://{}/octo-org/docs/pull/{}",
        forge.github.web, pulls[0].number
    );
    assert!(
        reason.starts_with("step limit of 2 reached; partial work pushed to ")
            && reason.ends_with(&format!("; draft pull request: {url}")),
        "{reason}"
    );
    assert!(pulls[0].draft);
    assert!(
        pulls[0].title.starts_with("Partial: "),
        "{}",
        pulls[0].title
    );
    assert!(
        pulls[0]
            .body
            .starts_with("**The task stopped before it finished")
    );
    let status = app.status(&id).await;
    assert_eq!(status["pull_request"]["draft"], true, "{status}");
    assert_eq!(status["status"], "failed");
    forge.github.assert_contract();
}

#[tokio::test]
async fn a_github_app_alone_clones_and_pushes_with_its_installation_token() {
    // No git token: the worker's git credentials are the App's installation token for this
    // one repository, offered to the forge's host as `x-access-token`.
    let (github, app_key) = ScriptedGitHub::start_with_app().await;
    let minted = "ghs_installation_token_for_git_of_the_test";
    github.mint_next_as(minted);
    let repo = BareRepo::new();
    let path = repo.publish_as("octo-org", "docs");
    let git = GitHttpServer::start(repo.root(), "x-access-token", minted);
    let url = git.url(&path);
    let github_env = github.app_env(&app_key);
    let app = app_without_dispatch(&pairs(&github_env)).await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let id = app
        .submit(&json!({"repo": url, "prompt": "Document it", "pull_request": true}))
        .await;
    let worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &pairs(&github_env)));
    let (worker, _) = completed_by(&app, worker, &id).await;
    assert!(
        repo.file(&format!("openclaw/{id}"), "docs/USAGE.md")
            .is_some()
    );
    assert_eq!(
        github.installation_tokens(),
        [minted],
        "one token for the task"
    );
    assert_eq!(github.pulls().len(), 1);
    github.assert_contract();
    let said = everything_said(&app, &id, &worker, &repo).await;
    assert!(!said.contains(minted), "the installation token leaked");
}

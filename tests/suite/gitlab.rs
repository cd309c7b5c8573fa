//! GitLab: merge requests from tasks and webhooks in, against the scripted GitLab, with
//! payloads shaped as GitLab's webhook documentation shows them.

use openclaw_common::ids::TaskId;
use openclaw_tests::app::TestApp;
use openclaw_tests::flow::{
    app_without_dispatch, completed_by, doc_script, env_for, expect_error, worker_bin,
};
use openclaw_tests::git::{BareRepo, GitHttpServer};
use openclaw_tests::gitlab::ScriptedGitLab;
use openclaw_tests::llm::ScriptedLlm;
use openclaw_tests::worker::WorkerProcess;
use serde_json::{Value, json};

use crate::forge::pairs;

const GIT_TOKEN: &str = "git-token-for-the-test-gitlab";
const HOOK_TOKEN: &str = "gitlab-webhook-token-of-the-test";

struct Lab {
    gitlab: ScriptedGitLab,
    repo: BareRepo,
    git: GitHttpServer,
    url: String,
}

impl Lab {
    async fn start() -> Self {
        let repo = BareRepo::new();
        let path = repo.publish_as("octo-group", "docs");
        let git = GitHttpServer::start(repo.root(), "bot", GIT_TOKEN);
        let url = git.url(&path);
        Self {
            gitlab: ScriptedGitLab::start().await,
            repo,
            git,
            url,
        }
    }

    fn bridge_env(&self) -> Vec<(String, String)> {
        let mut env = self.gitlab.token_env();
        env.push(("OPENCLAW_GITLAB_WEBHOOK_TOKEN".into(), HOOK_TOKEN.into()));
        env
    }

    fn worker_env(
        &self,
        app: &TestApp,
        llm: &ScriptedLlm,
    ) -> std::collections::HashMap<String, String> {
        let mut settings = vec![
            ("GIT_USERNAME".to_owned(), "bot".to_owned()),
            ("GIT_TOKEN".to_owned(), GIT_TOKEN.to_owned()),
            (
                "OPENCLAW_GIT_CREDENTIAL_HOSTS".to_owned(),
                format!("127.0.0.1:{}", self.git.port),
            ),
        ];
        settings.extend(self.gitlab.token_env());
        env_for(app, llm, &pairs(&settings))
    }

    /// A "Note Hook" payload as GitLab's docs show one: `user` commented `text` on issue 23.
    fn issue_note(&self, user: &str, text: &str) -> Value {
        json!({
            "object_kind": "note",
            "event_type": "note",
            "user": {"id": 1, "name": "Dev", "username": user, "avatar_url": "", "email": "[REDACTED]"},
            "project_id": 5,
            "project": {
                "id": 5, "name": "docs", "description": "", "web_url": format!("http://{}/octo-group/docs", self.gitlab.web),
                "git_ssh_url": "git@example.com:octo-group/docs.git", "git_http_url": self.url,
                "namespace": "octo-group", "visibility_level": 20, "path_with_namespace": "octo-group/docs",
                "default_branch": "main"
            },
            "object_attributes": {
                "id": 1244, "note": text, "noteable_type": "Issue", "author_id": 1,
                "created_at": "2015-05-17 17:06:40 UTC", "updated_at": "2015-05-17 17:06:40 UTC",
                "project_id": 5, "attachment": null, "line_code": null, "commit_id": "",
                "noteable_id": 92, "system": false, "st_diff": null,
                "url": format!("http://{}/octo-group/docs/issues/23#note_1244", self.gitlab.web)
            },
            "repository": {"name": "docs", "url": "git@example.com:octo-group/docs.git", "description": "", "homepage": ""},
            "issue": {
                "id": 92, "iid": 23, "title": "Document how to run it", "description": "Nobody knows how.",
                "state": "opened", "project_id": 5, "labels": []
            }
        })
    }
}

async fn deliver(app: &TestApp, token: &str, uuid: &str, payload: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/webhooks/gitlab", app.base))
        .header("X-Gitlab-Event", "Note Hook")
        .header("X-Gitlab-Token", token)
        .header("X-Gitlab-Event-UUID", uuid)
        .header("User-Agent", "GitLab/17.0.0")
        .json(payload)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_task_on_a_gitlab_project_opens_one_merge_request() {
    let lab = Lab::start().await;
    let app = app_without_dispatch(&pairs(&lab.gitlab.token_env())).await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let id = app
        .submit(&json!({"repo": lab.url, "prompt": "Document it", "pull_request": true}))
        .await;
    let worker = WorkerProcess::start(worker_bin(), &lab.worker_env(&app, &llm));
    let (worker, _) = completed_by(&app, worker, &id).await;
    let mrs = lab.gitlab.merge_requests();
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert_eq!(mrs[0].project, "octo-group/docs");
    assert_eq!(mrs[0].source_branch, format!("openclaw/{id}"));
    assert_eq!(mrs[0].target_branch, "main");
    assert_eq!(mrs[0].title, "Add a usage guide");
    let url = format!(
        "http://{}/octo-group/docs/-/merge_requests/1",
        lab.gitlab.web
    );
    let status = app.status(&id).await;
    assert_eq!(status["pull_request"]["url"], url.as_str(), "{status}");
    assert_eq!(
        status["compare_url"],
        format!(
            "http://{}/octo-group/docs/-/compare/main...openclaw/{id}",
            lab.gitlab.web
        )
        .as_str()
    );
    lab.gitlab.assert_contract();
    let said = format!(
        "{status}\n{}\n{}",
        worker.log_text(),
        lab.repo.message(&format!("openclaw/{id}"))
    );
    assert!(!said.contains(&lab.gitlab.token), "the GitLab token leaked");
}

#[tokio::test]
async fn a_developers_note_on_an_issue_makes_one_task_answered_in_one_note() {
    let lab = Lab::start().await;
    lab.gitlab.set_member("dev", 30);
    lab.gitlab.set_member("guest", 10);
    let app = app_without_dispatch(&pairs(&lab.bridge_env())).await;
    let payload = lab.issue_note("dev", "@openclaw please write the docs");
    // The secret token is checked before anything else.
    let r = deliver(&app, "not-the-token", "uuid-0", &payload).await;
    expect_error(r, 401, "unauthorized", None).await;
    assert!(lab.gitlab.seen().is_empty());
    // A guest asks for nothing.
    let r = deliver(
        &app,
        HOOK_TOKEN,
        "uuid-guest",
        &lab.issue_note("guest", "@openclaw go"),
    )
    .await;
    assert_eq!(r.status(), 200);

    let r = deliver(&app, HOOK_TOKEN, "uuid-1", &payload).await;
    assert_eq!(r.status(), 202);
    let id = TaskId::parse(r.json::<Value>().await.unwrap()["task"].as_str().unwrap()).unwrap();
    let again = deliver(&app, HOOK_TOKEN, "uuid-1", &payload).await;
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    let notes = lab.gitlab.notes();
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].on.as_str(), notes[0].iid), ("issues", 23));

    let llm = ScriptedLlm::turns(doc_script()).await;
    let worker = WorkerProcess::start(worker_bin(), &lab.worker_env(&app, &llm));
    completed_by(&app, worker, &id).await;
    let mrs = lab.gitlab.merge_requests();
    assert_eq!(mrs.len(), 1);
    assert!(
        mrs[0].description.starts_with("Closes #23."),
        "{}",
        mrs[0].description
    );
    let answered = openclaw_tests::eventually(30, "the note to be edited", || async {
        let n = lab.gitlab.notes().into_iter().next()?;
        (n.edits > 0).then_some(n)
    })
    .await;
    assert!(
        answered.body.contains("Done") && answered.body.contains("merge_requests/1"),
        "{}",
        answered.body
    );
    lab.gitlab.assert_contract();
}

//! End to end: bridge → JetStream → worker (local dispatch or started by the test) → git2
//! clone → scripted model with tool calls → commit → push → events over SSE.

use openclaw_common::event::EventKind;
use openclaw_common::status::TaskStatus;
use openclaw_tests::flow::*;
use openclaw_tests::git::{BareRepo, GitHttpServer};
use openclaw_tests::llm::message_text;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::{TEST_LLM_KEY, WorkerProcess};
use serde_json::json;

#[tokio::test]
async fn a_task_goes_from_submit_to_a_pushed_commit_streamed_in_order() {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_with_local_dispatch(&llm, &[]).await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document how to run the program"}))
        .await;
    let events = events_until_end(&app, &id).await;
    let kinds = kinds(&events);
    assert_eq!(kinds.first(), Some(&"queued"));
    assert_eq!(kinds.last(), Some(&"completed"), "{kinds:?}");
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    assert!(pos("queued") < pos("started"));
    assert!(pos("started") < pos("cloned"));
    assert!(pos("cloned") < pos("llm_usage"));
    assert!(pos("llm_usage") < pos("tool_call"));
    assert!(pos("tool_call") < pos("tool_result"));
    assert!(pos("tool_result") < pos("message"));
    assert!(pos("message") < pos("committed"));
    assert!(pos("committed") < pos("pushed"));
    assert!(pos("pushed") < pos("completed"));
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "gapless sequence"
    );

    let branch = format!("openclaw/{id}");
    let commits = repo.new_commits(&branch);
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!(
        repo.file(&branch, "docs/USAGE.md").as_deref(),
        Some("# Usage\n\nRun `./hello`.\n")
    );
    let message = repo.message(&branch);
    assert!(message.starts_with("Add a usage guide\n"), "{message}");
    assert!(
        message.contains(&format!("OpenClaw-Task: {id}")),
        "{message}"
    );

    let EventKind::Completed {
        commit,
        branch: b,
        summary,
        usage: totals,
        ..
    } = &events.last().unwrap().kind
    else {
        unreachable!()
    };
    // What the task used: three model calls, their tokens as the model reported them, no
    // price (the scripted model reports none: unknown, not zero), the worker's time.
    let totals = totals.as_ref().expect("usage on completed");
    assert_eq!(totals.model_calls, 3);
    assert!(totals.input_tokens > 0 && totals.output_tokens > 0);
    assert_eq!(totals.cost_usd, None);
    assert!(totals.worker_seconds > 0.0);
    assert_eq!(totals.model.as_deref(), Some("test-model"));
    let status = app.status(&id).await;
    assert_eq!(status["usage"]["model_calls"], 3);
    assert_eq!(status["usage"]["input_tokens"], totals.input_tokens);
    assert_eq!(commit.as_deref(), Some(repo.tip(&branch).as_str()));
    assert_eq!(b.as_deref(), Some(branch.as_str()));
    assert!(summary.contains("usage guide"));
    let usage: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmUsage {
                model,
                prompt_tokens,
                ..
            } => Some((model.clone(), *prompt_tokens)),
            _ => None,
        })
        .collect();
    assert_eq!(usage.len(), 3);
    assert!(usage.iter().all(|(m, t)| m == "test-model" && *t > 0));

    let status = app.status(&id).await;
    assert_eq!(status["status"], "completed");
    assert_eq!(status["commit"], repo.tip(&branch));
    assert_eq!(status["attempts"], 1);

    // The model saw the tool results and was called with the key and the tools.
    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[0]["tools"].as_array().unwrap().len(),
        openclaw_tests::doc_writer_tool_count()
    );
    assert_eq!(requests[0]["stream"], true);
    let listing = requests[1]["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(listing["role"], "tool");
    assert!(message_text(listing).contains("hello.c"));
    assert!(
        llm.auth_headers()
            .iter()
            .all(|h| h.as_deref() == Some(&*format!("Bearer {TEST_LLM_KEY}")))
    );
}

#[tokio::test]
async fn push_over_http_with_basic_auth_and_the_token_leaks_nowhere() {
    const TOKEN: &str = "ghp_secretTOKEN1234567890";
    let repo = BareRepo::new();
    let server = GitHttpServer::start(repo.root(), "bot", TOKEN);
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let id = app
        .submit(&json!({"repo": server.url("origin.git"), "prompt": "Document it"}))
        .await;
    let (worker, events) = complete_task(
        &app,
        &llm,
        &id,
        &[("GIT_USERNAME", "bot"), ("GIT_TOKEN", TOKEN)],
    )
    .await;
    let branch = format!("openclaw/{id}");
    assert!(repo.file(&branch, "docs/USAGE.md").is_some());

    let all_events = serde_json::to_string(&events).unwrap();
    assert!(!all_events.contains(TOKEN), "token in events");
    let log = worker.log_text();
    assert!(log.contains("task settled"), "the worker logged: {log}");
    assert!(!log.contains(TOKEN), "token in the worker log");
    assert!(!log.contains(TEST_LLM_KEY), "LLM key in the worker log");
    let status = app.status(&id).await.to_string();
    assert!(!status.contains(TOKEN));

    // Without the token the server refuses, and the task fails permanently with a reason.
    let id = app
        .submit(&json!({"repo": server.url("origin.git"), "prompt": "Document it"}))
        .await;
    let (_worker, events) = work_task(&app, &llm, &id, &[]).await;
    let EventKind::Failed { reason, retryable } = &events.last().unwrap().kind else {
        panic!("expected failed: {:?}", kinds(&events))
    };
    assert!(!retryable);
    assert!(reason.contains("auth"), "{reason}");
}

#[tokio::test]
async fn a_clone_over_http_keeps_credentials_out_of_git_config() {
    const TOKEN: &str = "tok-in-callback-only-77";
    openclaw_tests::init();
    let repo = BareRepo::new();
    let server = GitHttpServer::start(repo.root(), "bot", TOKEN);
    let dest = tempfile::tempdir().unwrap();
    let git = openclaw_worker::config::GitConfig {
        username: Some("bot".into()),
        token: Some(openclaw_common::config::Secret::new(TOKEN)),
        ssh_key_path: None,
        ssh_key: None,
        ssh_passphrase: None,
        ssh_known_hosts: None,
        credential_hosts: openclaw_common::egress::HostList::parse(&format!(
            "127.0.0.1:{}",
            server.port
        ))
        .unwrap(),
        author_name: "T".into(),
        author_email: "t@example.com".into(),
    };
    let url = openclaw_common::egress::RepoUrl::parse(
        &server.url("origin.git"),
        &openclaw_common::egress::RepoPolicy::open(),
    )
    .unwrap();
    let branch = openclaw_common::ids::BranchName::parse("openclaw/t").unwrap();
    let checkout = tokio::task::spawn_blocking({
        let repo = openclaw_worker::git::TaskRepo::under(dest.path());
        let limits = openclaw_worker::git::RepoLimits {
            max_bytes: 1 << 30,
            max_files: 1000,
            min_free_bytes: 0,
        };
        move || openclaw_worker::git::clone(&url, &repo, None, &branch, &git, &limits)
    })
    .await
    .unwrap()
    .expect("shallow clone over HTTP");
    assert!(!checkout.resumed);
    // The git directory sits beside the work tree (TaskRepo's layout), not in it.
    let config = std::fs::read_to_string(dest.path().join("git/config")).unwrap();
    assert!(!config.contains(TOKEN), "{config}");
    assert!(!dest.path().join("work/.git").exists());
    assert!(
        std::fs::read_to_string(dest.path().join("git/shallow")).is_ok(),
        "clone is shallow"
    );
    let server_log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!server_log.contains(TOKEN));
}

#[tokio::test]
async fn a_task_without_changes_completes_with_no_commit() {
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("read_file", json!({"path": "README.md"})),
        Reply::text("The docs are fine as they are."),
    ])
    .await;
    let (app, repo, id) = repo_task(&[], "Check the docs").await;
    let (_worker, events) = work_task(&app, &llm, &id, &[]).await;
    let k = kinds(&events);
    assert!(!k.contains(&"committed") && !k.contains(&"pushed"), "{k:?}");
    let EventKind::Completed { commit, .. } = &events.last().unwrap().kind else {
        panic!("{k:?}")
    };
    assert!(commit.is_none());
    assert!(!repo.has_branch(&format!("openclaw/{id}")));
}

#[tokio::test]
async fn a_rejected_push_fails_the_task_with_gits_reason() {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let repo = BareRepo::new();
    let hook = repo.path().join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();
    // Hooks run on a real server (libgit2's file:// transport writes the objects directly).
    let server = GitHttpServer::start(repo.root(), "bot", "pw");
    let id = app
        .submit(&json!({"repo": server.url("origin.git"), "prompt": "Document"}))
        .await;
    let (_worker, events) = work_task(
        &app,
        &llm,
        &id,
        &[("GIT_USERNAME", "bot"), ("GIT_TOKEN", "pw")],
    )
    .await;
    let EventKind::Failed { reason, retryable } = &events.last().unwrap().kind else {
        panic!("{:?}", kinds(&events))
    };
    assert!(!retryable);
    assert!(
        reason.contains("rejected") || reason.contains("declined"),
        "{reason}"
    );
    assert_eq!(app.status(&id).await["status"], "failed");
}

#[tokio::test]
async fn a_worker_with_nothing_to_do_exits_cleanly() {
    let llm = ScriptedLlm::turns(vec![]).await;
    let app = app_without_dispatch(&[]).await;
    assert_nothing_to_deliver(&app, &llm).await;
}

#[tokio::test]
async fn a_task_over_ssh_with_a_key_from_a_file_or_the_environment() {
    let repo = BareRepo::new();
    let sshd = openclaw_tests::git::SshGitServer::start();
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let key_file = sshd.user_key();
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let known_hosts = sshd.known_hosts();
    for (how, key_env) in [
        ("GIT_SSH_KEY_PATH", key_file.to_str().unwrap()),
        ("GIT_SSH_KEY", key_text.as_str()),
    ] {
        let id = app
            .submit(&json!({"repo": sshd.url(&repo), "prompt": "Document it"}))
            .await;
        let mut worker = WorkerProcess::start(
            worker_bin(),
            &env_for(
                &app,
                &llm,
                &[
                    (how, key_env),
                    ("GIT_SSH_KNOWN_HOSTS", known_hosts.to_str().unwrap()),
                ],
            ),
        );
        assert_eq!(worker.wait().await, Some(0));
        let events = events_until_end(&app, &id).await;
        assert_eq!(
            kinds(&events).last(),
            Some(&"completed"),
            "{how}: {:?}\n{}",
            kinds(&events),
            worker.log_text()
        );
        assert!(
            repo.file(&format!("openclaw/{id}"), "docs/USAGE.md")
                .is_some(),
            "{how}"
        );
        assert!(
            !worker.log_text().contains("PRIVATE KEY"),
            "the key never reaches the log"
        );
    }
}

#[tokio::test]
async fn an_ssh_host_whose_key_is_not_known_is_refused() {
    let repo = BareRepo::new();
    let sshd = openclaw_tests::git::SshGitServer::start();
    let other = openclaw_tests::git::SshGitServer::start();
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let id = app
        .submit(&json!({"repo": sshd.url(&repo), "prompt": "Document it"}))
        .await;
    // The known_hosts file lists another server's key for this address.
    let wrong = std::fs::read_to_string(other.known_hosts()).unwrap();
    let known_hosts = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        known_hosts.path(),
        wrong.replace(&other.port.to_string(), &sshd.port.to_string()),
    )
    .unwrap();
    let mut worker = WorkerProcess::start(
        worker_bin(),
        &env_for(
            &app,
            &llm,
            &[
                ("GIT_SSH_KEY_PATH", sshd.user_key().to_str().unwrap()),
                ("GIT_SSH_KNOWN_HOSTS", known_hosts.path().to_str().unwrap()),
            ],
        ),
    );
    assert_eq!(worker.wait().await, Some(0));
    let events = events_until_end(&app, &id).await;
    let EventKind::Failed { reason, retryable } = &events.last().unwrap().kind else {
        panic!("{:?}", kinds(&events))
    };
    assert!(
        !retryable,
        "a wrong host key does not get better by retrying"
    );
    assert!(
        reason.contains("ssh host key") && reason.contains("GIT_SSH_KNOWN_HOSTS"),
        "{reason}"
    );
    assert!(
        llm.requests().is_empty(),
        "no model call without a checkout"
    );
}

#[tokio::test]
async fn a_task_may_push_to_the_base_branch_itself() {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let repo = BareRepo::new();
    let before = repo.tip("main");
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it", "push_branch": "main"}))
        .await;
    complete_task(&app, &llm, &id, &[]).await;
    assert_ne!(repo.tip("main"), before, "main moved");
    assert!(repo.file("main", "docs/USAGE.md").is_some());
}

#[tokio::test]
async fn a_task_left_by_the_previous_version_runs_and_reads_as_before() {
    // Version 0.1 published a task on its agent's one subject and wrote its status record and
    // `queued` event at submit. A bridge and a worker of this version, started over that
    // stream at an upgrade, read it and run it.
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let repo = BareRepo::new();
    let spec = openclaw_tests::doc_writer_task(&repo.file_url(), "Document it");
    let id = spec.id;
    let js = app.js();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.to_string().as_str());
    let ack = js
        .publish_with_headers(
            openclaw_common::names::legacy_task_subject(&spec.agent),
            headers,
            spec.to_json(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let record = TaskStatus::queued(&spec, ack.sequence);
    app.stores().status.ensure(&record).await.unwrap();
    js.publish(
        openclaw_common::names::event_subject(&id),
        serde_json::to_vec(&spec.queued_event()).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    assert_eq!(app.status(&id).await["status"], "queued");
    let (_, events) = complete_task(&app, &llm, &id, &[]).await;
    assert_eq!(
        kinds(&events).iter().filter(|k| **k == "queued").count(),
        1,
        "{:?}",
        kinds(&events)
    );
    assert_eq!(events[0].seq, 1);
    assert_eq!(app.status(&id).await["status"], "completed");
    assert!(
        repo.file(&format!("openclaw/{id}"), "docs/USAGE.md")
            .is_some()
    );
}

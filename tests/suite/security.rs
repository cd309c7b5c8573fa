//! The security suite: each case a hostile user or a hostile model tried, reproduced against
//! real parts (bridge, nats-server, worker processes, git servers, loopback listeners), and
//! what must happen instead.

use openclaw_common::egress::UNREACHABLE;
use openclaw_common::event::EventKind;
use openclaw_tests::git::{BareRepo, GitHttpServer};
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::trap::{ConnectionRecorder, CredentialTrap, Redirector, loopback_alias};
use openclaw_tests::worker::WorkerProcess;
use serde_json::{Value, json};

use openclaw_tests::flow::{
    app_without_dispatch, env_for, events_until_end, kinds, wait_for_event, worker_bin,
};

const TOKEN: &str = "ghp_teamTOKEN_0123456789abcdef";

/// A script that would document the repository, if the task got that far.
pub(crate) fn doc_script() -> Vec<Reply> {
    vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/USAGE.md", "content": "# Usage\n"}),
        ),
        Reply::text("Add a usage guide"),
    ]
}

/// The reason of the task's final `failed` event.
fn failure(events: &[openclaw_common::event::TaskEvent]) -> (String, bool) {
    match &events.last().expect("events").kind {
        EventKind::Failed { reason, retryable } => (reason.clone(), *retryable),
        other => panic!("expected failed, got {other:?} after {:?}", kinds(events)),
    }
}

#[tokio::test]
async fn the_git_token_goes_only_to_the_hosts_it_is_bound_to() {
    let repo = BareRepo::new();
    let forge = GitHttpServer::start(repo.root(), "bot", TOKEN);
    let trap = CredentialTrap::start().await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let bound = format!("127.0.0.1:{}", forge.port);
    let worker_env = env_for(
        &app,
        &llm,
        &[
            ("GIT_USERNAME", "bot"),
            ("GIT_TOKEN", TOKEN),
            ("OPENCLAW_GIT_CREDENTIAL_HOSTS", &bound),
        ],
    );

    // A chat user names their own server: it answers 401, and gets no token.
    let id = app
        .submit(&json!({"repo": format!("{}/x.git", trap.url), "prompt": "Document it"}))
        .await;
    let mut worker = WorkerProcess::start(worker_bin(), &worker_env);
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    let (reason, retryable) = failure(&events_until_end(&app, &id).await);
    assert!(reason.contains("auth"), "{reason}");
    assert!(!retryable);
    let seen = trap.authorizations();
    assert!(!seen.is_empty(), "the worker did ask the trap");
    assert!(
        seen.iter().all(Option::is_none),
        "credentials were offered to an unlisted host: {seen:?}"
    );

    // The host they belong to gets them, and the task completes.
    let id = app
        .submit(&json!({"repo": forge.url("origin.git"), "prompt": "Document it"}))
        .await;
    let worker = WorkerProcess::start(worker_bin(), &worker_env);
    openclaw_tests::flow::completed_by(&app, worker, &id).await;
    assert!(
        repo.file(&format!("openclaw/{id}"), "docs/USAGE.md")
            .is_some()
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_gets_no_credentials() {
    let trap = CredentialTrap::start().await;
    // A listed host that redirects elsewhere (a compromised or misconfigured forge).
    let redirector = Redirector::start(&trap.url).await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let id = app
        .submit(&json!({"repo": format!("{}/x.git", redirector.url), "prompt": "Document it"}))
        .await;
    let listed = format!("127.0.0.1:{}", redirector.port);
    let mut worker = WorkerProcess::start(
        worker_bin(),
        &env_for(
            &app,
            &llm,
            &[
                ("GIT_TOKEN", TOKEN),
                ("OPENCLAW_GIT_CREDENTIAL_HOSTS", &listed),
            ],
        ),
    );
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    let (reason, _) = failure(&events_until_end(&app, &id).await);
    assert!(!reason.contains(TOKEN), "{reason}");
    let seen = trap.authorizations();
    assert!(!seen.is_empty(), "the redirect was followed to the trap");
    assert!(
        seen.iter().all(Option::is_none),
        "the redirect target received credentials: {seen:?}"
    );
    assert!(
        llm.requests().is_empty(),
        "no model call for a task that cannot clone"
    );
}

#[tokio::test]
async fn a_worker_with_credentials_and_no_host_list_refuses_to_start() {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    for creds in [
        ("GIT_TOKEN", TOKEN),
        ("GIT_SSH_KEY_PATH", "/nonexistent/key"),
    ] {
        let mut env = env_for(&app, &llm, &[creds]);
        env.remove("OPENCLAW_GIT_CREDENTIAL_HOSTS");
        let mut worker = WorkerProcess::start(worker_bin(), &env);
        assert_eq!(worker.wait().await, Some(2), "bad configuration exits 2");
        let log = worker.log_text();
        assert!(log.contains("OPENCLAW_GIT_CREDENTIAL_HOSTS"), "{log}");
        assert!(!log.contains(TOKEN), "{log}");
    }
}

/// A bridge that enforces the default egress policy (no private addresses).
async fn strict_bridge() -> openclaw_tests::app::TestApp {
    app_without_dispatch(&[
        ("OPENCLAW_ALLOW_PRIVATE_REPOS", "false"),
        ("OPENCLAW_ALLOW_HTTP_REPOS", "false"),
        ("OPENCLAW_ALLOW_FILE_REPOS", "false"),
    ])
    .await
}

#[tokio::test]
async fn intake_refuses_repos_the_worker_must_not_reach() {
    let app = strict_bridge().await;
    for repo in [
        "git://github.com/o/r.git",
        "https:///r.git",
        "https://127.0.0.1:9/r.git",
        "https://localhost/r.git",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/r.git",
        "https://[::ffff:127.0.0.1]/r.git",
        "ssh://git@10.1.2.3/r.git",
        "ssh://2130706433/r.git",
        "git@192.168.1.1:o/r.git",
        "http://example.com/r.git",
        "file:///etc",
    ] {
        let r = app
            .post_json("/v1/tasks", &json!({"repo": repo, "prompt": "x"}))
            .await;
        assert_eq!(r.status(), 400, "{repo} was accepted");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["field"], "repo", "{repo}: {body}");
    }
    // The chat door takes the first git URL of a message: the same policy applies.
    let r = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "doc-writer", "messages": [{"role": "user",
                "content": "Please document https://169.254.169.254/latest/x.git"}]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "repo", "{body}");
    // A public host passes.
    let r = app
        .post_json(
            "/v1/tasks",
            &json!({"repo": "https://github.com/o/r.git", "prompt": "x"}),
        )
        .await;
    assert_eq!(r.status(), 202);

    // With a host allowlist, only those hosts.
    let app = app_without_dispatch(&[("OPENCLAW_REPO_HOSTS", "github.com")]).await;
    let r = app
        .post_json(
            "/v1/tasks",
            &json!({"repo": "https://gitlab.com/o/r.git", "prompt": "x"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("OPENCLAW_REPO_HOSTS"),
        "{body}"
    );
}

#[tokio::test]
async fn the_worker_connects_to_no_internal_address_and_says_the_same_for_every_refusal() {
    // The bridge admits everything (as a task published with the nats CLI would be); the
    // worker enforces its own policy before connecting, on the resolved addresses.
    let listener = ConnectionRecorder::start().await;
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_without_dispatch(&[]).await;
    let alias = loopback_alias();
    let strict = [("OPENCLAW_ALLOW_PRIVATE_REPOS", "false")];
    let mut reasons = Vec::new();
    for repo in [
        format!("https://127.0.0.1:{}/r.git", listener.port),
        format!("http://127.0.0.1:{}/r.git", listener.port),
        format!("ssh://git@127.0.0.1:{}/r.git", listener.port),
        format!("https://{alias}:{}/r.git", listener.port),
        format!("http://[::ffff:127.0.0.1]:{}/r.git", listener.port),
    ] {
        let id = app.submit(&json!({"repo": repo, "prompt": "x"})).await;
        let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &strict));
        assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
        let (reason, retryable) = failure(&events_until_end(&app, &id).await);
        assert!(!retryable, "{repo}: a policy refusal is final");
        assert!(
            worker.log_text().contains("egress policy"),
            "{repo}: the cause is in the worker's log"
        );
        reasons.push(reason);
    }
    assert_eq!(
        listener.connections(),
        0,
        "the worker connected to loopback"
    );

    // Allowed to connect, the different kinds of failure still read the same to the client:
    // a TLS hello, an ssh banner exchange and a plain HTTP request all hit a closed socket.
    for repo in [
        format!("https://127.0.0.1:{}/r.git", listener.port),
        format!("ssh://git@127.0.0.1:{}/r.git", listener.port),
        format!("http://127.0.0.1:{}/r.git", openclaw_tests::free_port()),
    ] {
        let id = app.submit(&json!({"repo": repo, "prompt": "x"})).await;
        // A network failure is retried later: not within this test, so that each worker here
        // takes the task just submitted rather than an earlier one coming back.
        let later = [("OPENCLAW_NAK_DELAY_SECS", "300")];
        let mut worker = WorkerProcess::start(worker_bin(), &env_for(&app, &llm, &later));
        assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
        // Read the first attempt's events.
        wait_for_event(&app, &id, "failed").await;
        let events = app.stores().events.history(&id).await.unwrap();
        let failed = events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Failed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{repo}: no failed event in {:?}", kinds(&events)));
        reasons.push(failed);
    }
    assert!(
        listener.connections() >= 2,
        "the allowed attempts did connect"
    );
    for reason in &reasons {
        assert_eq!(
            reason, UNREACHABLE,
            "one text for every refused or unreachable remote"
        );
    }
    assert!(
        llm.requests().is_empty(),
        "no model call for a task that cannot clone"
    );
}

/// Agents for the command tests: a read-only ops agent with kubectl, and a probe that can
/// print its environment (printenv) and is handed one variable by name.
const COMMAND_AGENTS: &str = r#"
[[agent]]
name = "ops"
system_prompt = "You are ops."
repo_required = false
tools = ["write_file", "run_command"]
commands = ["kubectl"]

[[agent]]
name = "probe"
system_prompt = "You are probe."
repo_required = false
tools = ["run_command"]
commands = ["printenv", "kubectl"]
command_env = ["PROBE_VISIBLE"]

[agent.limits]
max_steps = 10
max_tokens = 100000
max_wall_secs = 60
max_tool_calls_per_answer = 4
"#;

fn agents_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.toml");
    std::fs::write(&file, COMMAND_AGENTS).unwrap();
    let path = file.to_str().unwrap().to_owned();
    (dir, path)
}

/// Runs one task of `agent` with the scripted `replies` in a worker the test starts with
/// `worker_extra`; returns the tool results, in order.
pub(crate) async fn run_agent(
    agent: &str,
    replies: Vec<Reply>,
    worker_extra: &[(&str, &str)],
) -> (Vec<(bool, String)>, ScriptedLlm) {
    let (_dir, agents) = agents_file();
    let llm = ScriptedLlm::turns(replies).await;
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", &agents)]).await;
    let id = app
        .submit(&json!({"agent": agent, "prompt": "Look around"}))
        .await;
    let mut extra = vec![
        ("OPENCLAW_AGENTS", agents.as_str()),
        ("OPENCLAW_AGENT", agent),
    ];
    extra.extend_from_slice(worker_extra);
    let (_worker, events) = openclaw_tests::flow::complete_task(&app, &llm, &id, &extra).await;
    (openclaw_tests::flow::tool_results(&events), llm)
}

#[tokio::test]
async fn kubectl_cannot_be_pointed_at_a_kubeconfig_that_runs_code_nor_read_outside() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("pwned");
    // A kubeconfig whose exec credential plugin runs a shell: what the model wrote.
    let evil = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: [\"-c\", \"touch {}\"]\n      interactiveMode: Never\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        marker.display()
    );
    let kubectl =
        |args: &[&str]| Reply::tool("run_command", json!({"command": "kubectl", "args": args}));
    let (results, _llm) = run_agent(
        "ops",
        vec![
            Reply::tool("write_file", json!({"path": "evil.yaml", "content": evil})),
            kubectl(&["--kubeconfig", "evil.yaml", "get", "pods"]),
            kubectl(&["get", "pods", "--kubeconfig=evil.yaml"]),
            kubectl(&[
                "create",
                "configmap",
                "x",
                "--from-file=/proc/self/environ",
                "--dry-run=client",
                "-o",
                "yaml",
            ]),
            kubectl(&["get", "--raw=/api", "--server=https://169.254.169.254"]),
            kubectl(&["exec", "some-pod", "--", "sh"]),
            // Allowed: a read verb with the worker's own (empty, outside a cluster) kubeconfig.
            kubectl(&["get", "pods", "--request-timeout=2s"]),
            Reply::text("done"),
        ],
        &[],
    )
    .await;
    assert_eq!(results.len(), 7, "{results:?}");
    assert!(!marker.exists(), "the kubeconfig's exec plugin ran");
    assert!(results[0].0, "the file was written: {results:?}");
    for (ok, output) in &results[1..6] {
        assert!(!ok, "refused: {output}");
        assert!(
            output.contains("not allowed") || output.contains("outside"),
            "{output}"
        );
    }
    // The read verb ran kubectl for real: it found no cluster in the worker's kubeconfig.
    let (ok, output) = &results[6];
    assert!(!ok, "{output}");
    assert!(
        !output.contains("not allowed") && !output.contains("outside the working"),
        "kubectl itself answered: {output}"
    );
}

#[tokio::test]
async fn commands_see_a_built_environment_and_none_of_the_workers() {
    let printenv = |name: &str| {
        Reply::tool(
            "run_command",
            json!({"command": "printenv", "args": [name]}),
        )
    };
    let (results, _llm) = run_agent(
        "probe",
        vec![
            Reply::Tools(vec![(
                "run_command".into(),
                json!({"command": "printenv"}).to_string(),
            )]),
            printenv("PROBE_VISIBLE"),
            Reply::text("done"),
        ],
        &[
            ("PROBE_VISIBLE", "handed-on-by-name"),
            ("TEAM_DB_PASSWORD", "pw-under-another-name-93"),
        ],
    )
    .await;
    let (ok, all) = &results[0];
    assert!(ok, "{all}");
    for hidden in [
        "NATS_URL",
        "LITELLM_API_KEY",
        openclaw_tests::worker::TEST_LLM_KEY,
        "pw-under-another-name-93",
        "OPENCLAW_",
        "GIT_",
    ] {
        assert!(!all.contains(hidden), "a command saw {hidden}:\n{all}");
    }
    for shown in ["PATH=", "HOME=", "KUBECONFIG="] {
        assert!(all.contains(shown), "{shown} missing:\n{all}");
    }
    assert_eq!(results[1], (true, "handed-on-by-name\n".to_owned()));
}

/// The environment of every running process started from `bin`, read from /proc.
fn environments_of(bin: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let is_bin = std::fs::read_link(dir.join("exe"))
            .is_ok_and(|exe| exe.to_string_lossy().trim_end_matches(" (deleted)") == bin);
        if !is_bin {
            continue;
        }
        if let Ok(raw) = std::fs::read(dir.join("environ")) {
            out.push(
                raw.split(|b| *b == 0)
                    .filter(|v| !v.is_empty())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect(),
            );
        }
    }
    out
}

#[tokio::test]
async fn local_dispatch_hands_workers_their_settings_by_name_and_nothing_else() {
    // The model takes its time, so that the worker is alive to be looked at.
    let llm = ScriptedLlm::turns(vec![
        Reply::text("done").delayed(std::time::Duration::from_secs(3)),
    ])
    .await;
    let app = openclaw_tests::flow::local_dispatch(
        openclaw_tests::app::TestApp::builder(),
        &llm,
        &[
            ("OPENCLAW_UNRELATED_SECRET", "bridge-only-secret-1"),
            ("TEAM_DB_PASSWORD", "bridge-only-secret-2"),
        ],
    )
    .token("bridge-api-token-for-clients")
    .spawn()
    .await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    openclaw_tests::flow::wait_for_event(&app, &id, "started").await;
    let nats_url = format!("NATS_URL={}", app.nats.url());
    let mine: Vec<Vec<String>> = environments_of(worker_bin())
        .into_iter()
        .filter(|env| env.contains(&nats_url))
        .collect();
    assert!(!mine.is_empty(), "the bridge's worker is running");
    for env in &mine {
        let text = env.join("\n");
        for hidden in [
            "bridge-only-secret-1",
            "bridge-only-secret-2",
            "bridge-api-token-for-clients",
            "OPENCLAW_GATEWAY_TOKEN",
            "CARGO_",
        ] {
            assert!(!text.contains(hidden), "the worker got {hidden}:\n{text}");
        }
        for needed in ["OPENCLAW_AGENT=doc-writer", "LITELLM_API_KEY=", "PATH="] {
            assert!(text.contains(needed), "{needed} missing:\n{text}");
        }
    }
    let events = events_until_end(&app, &id).await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
}

/// Reads until the server closes the connection; the bytes it sent before.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_and_connections_are_capped() {
    use tokio::io::AsyncWriteExt;
    let app = app_without_dispatch(&[
        ("OPENCLAW_HEADER_TIMEOUT_SECS", "1"),
        ("OPENCLAW_MAX_CONNECTIONS", "4"),
    ])
    .await;
    let addr = format!("127.0.0.1:{}", app.port);

    // One header byte every 200 ms would take 20 s; the server cuts it after about 1 s — not
    // at once (a server refusing the first bytes would pass a test that only waits for the
    // close), and without an answer.
    let started = std::time::Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let dribble = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let answered = openclaw_tests::within(6, "the slow client to be cut", async {
        use tokio::io::AsyncReadExt;
        let mut answered = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            answered.extend_from_slice(&buf[..n]);
        }
        answered
    })
    .await;
    let cut_after = started.elapsed();
    dribble.abort();
    assert!(
        cut_after >= std::time::Duration::from_millis(900),
        "cut after {cut_after:?}, before the 1 s header deadline"
    );
    assert!(
        !String::from_utf8_lossy(&answered).contains(" 200 "),
        "the slow request was served: {}",
        String::from_utf8_lossy(&answered)
    );

    // Connections that send nothing are closed too, by the same deadline.
    let started = std::time::Instant::now();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    openclaw_tests::within(
        6,
        "an idle connection to be closed",
        read_until_closed(&mut idle),
    )
    .await;
    let closed_after = started.elapsed();
    assert!(
        closed_after >= std::time::Duration::from_millis(900),
        "closed after {closed_after:?}, before the 1 s header deadline"
    );

    // At most 4 at once: the fifth is closed at once, without an answer.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut fifth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = openclaw_tests::within(
        2,
        "the fifth connection to be closed",
        read_until_closed(&mut fifth),
    )
    .await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    drop(held);

    // Once they are gone, requests are served as before.
    openclaw_tests::eventually(5, "a request to be served again", || async {
        let r = reqwest::get(format!("http://{addr}/health")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn one_answer_runs_at_most_its_profiles_tool_calls() {
    let calls: Vec<(String, String)> = (0..200)
        .map(|_| {
            (
                "run_command".to_owned(),
                json!({"command": "printenv", "args": ["HOME"]}).to_string(),
            )
        })
        .collect();
    let (results, llm) =
        run_agent("probe", vec![Reply::Tools(calls), Reply::text("done")], &[]).await;
    assert_eq!(results.len(), 4, "the profile allows 4 per answer");
    assert!(results.iter().all(|(ok, _)| *ok));
    // The model was told about every call it made, and which were not run.
    let requests = llm.requests();
    let tool_messages: Vec<&Value> = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_messages.len(), 200);
    let refused = tool_messages
        .iter()
        .filter(|m| {
            m["content"]
                .as_str()
                .unwrap()
                .contains("at most 4 tool calls")
        })
        .count();
    assert_eq!(refused, 196);
}

#[tokio::test]
async fn an_oversized_tool_argument_is_refused_and_its_event_stays_small() {
    let huge = "x".repeat(8 << 20);
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("write_file", json!({"path": "big.txt", "content": huge})),
        Reply::tool("read_file", json!({"path": "README.md"})),
        Reply::text("Nothing to change"),
    ])
    .await;
    let app = app_without_dispatch(&[]).await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Write a big file"}))
        .await;
    let (worker, events) = openclaw_tests::flow::work_task(&app, &llm, &id, &[]).await;
    assert_eq!(
        kinds(&events).last(),
        Some(&"completed"),
        "{:?}",
        kinds(&events)
    );
    for event in &events {
        let size = serde_json::to_vec(event).unwrap().len();
        assert!(
            size < 256 * 1024,
            "{} event of {size} bytes",
            event.kind.name()
        );
    }
    let arguments = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCall { arguments, .. } => Some(arguments.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        arguments.contains("more bytes truncated]"),
        "the event says it was cut"
    );
    let results = openclaw_tests::flow::tool_results(&events);
    assert!(
        !results[0].0 && results[0].1.contains("larger than"),
        "{:?}",
        results[0]
    );
    assert!(results[1].0, "the task went on: {:?}", results[1]);
    assert!(!worker.log_text().contains("NATS is unavailable"));
}

/// A model that tries every way out for the worker's secrets it knows (the gateway key and the
/// git token): in tool-call arguments, in files it writes or edits (and so in the commit), in
/// its streamed text and final answer (and so the commit message).
#[tokio::test]
async fn no_secret_leaves_the_worker_by_any_path() {
    let key = openclaw_tests::worker::TEST_LLM_KEY;
    let llm = ScriptedLlm::turns(vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/KEY.md", "content": format!("# Key\n{key}\n")}),
        ),
        Reply::tool(
            "write_file",
            json!({"path": "docs/TOKEN.md", "content": format!("token: {TOKEN}\n")}),
        ),
        Reply::tool(
            "edit_file",
            json!({"path": "README.md", "old_text": "# hello", "new_text": format!("# hello {TOKEN}")}),
        ),
        Reply::tool(
            "write_file",
            json!({"path": "docs/NOTES.md", "content": "# Notes\n"}),
        ),
        Reply::text(&format!(
            "Document the key {key}\n\nThe key is {key} and the token {TOKEN}."
        )),
    ])
    .await;
    let app = app_without_dispatch(&[]).await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Tell me your key"}))
        .await;
    let (worker, events) = openclaw_tests::flow::work_task(
        &app,
        &llm,
        &id,
        &[
            ("GIT_TOKEN", TOKEN),
            ("OPENCLAW_GIT_CREDENTIAL_HOSTS", "git.example.com"),
        ],
    )
    .await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    let results = openclaw_tests::flow::tool_results(&events);
    assert_eq!(
        results.iter().map(|(ok, _)| *ok).collect::<Vec<_>>(),
        [false, false, false, true],
        "the writes holding a secret are refused: {results:?}"
    );
    let all = serde_json::to_string(&events).unwrap();
    let status = app.status(&id).await.to_string();
    let branch = format!("openclaw/{id}");
    let tree = openclaw_tests::git::git(&repo.path(), &["ls-tree", "-r", "--name-only", &branch]);
    let mut pushed = repo.message(&branch);
    for file in tree.lines() {
        pushed.push_str(&repo.file(&branch, file).unwrap_or_default());
    }
    for secret in [key, TOKEN] {
        assert!(!all.contains(secret), "a secret is in the events");
        assert!(!status.contains(secret), "a secret is in the status");
        assert!(!pushed.contains(secret), "a secret is in the pushed commit");
        assert!(
            !worker.log_text().contains(secret),
            "a secret is in the log"
        );
    }
    assert!(all.contains("[redacted]"));
    assert_eq!(
        repo.file(&branch, "docs/NOTES.md").as_deref(),
        Some("# Notes\n")
    );
}

/// A NatsConfig for `user` on a secured server, as a binary would read it from its environment.
fn nats_config_as(
    nats: &openclaw_tests::nats::NatsServer,
    user: &str,
    password: &str,
) -> openclaw_common::config::NatsConfig {
    let mut env: std::collections::HashMap<String, String> =
        nats.client_env(user, password).into_iter().collect();
    env.insert("NATS_URL".into(), nats.url());
    openclaw_common::config::NatsConfig::from_env(&openclaw_common::config::EnvReader(&env))
        .expect("valid NATS settings")
}

#[tokio::test]
async fn bridge_and_workers_use_tls_and_their_own_users_and_a_worker_cannot_publish_tasks() {
    use openclaw_tests::nats::WORKER_PASSWORD;
    let app = crate::confinement::secured_app(&["doc-writer"]).await;
    let worker_user = "worker-doc-writer";
    // The worker signs in with its NKey (the bridge with a password).
    let security = app.nats.security.as_ref().unwrap();
    let seed = security.worker_seed("doc-writer").display().to_string();
    let ca = security.ca.display().to_string();
    let worker_nats = [("NATS_CA", ca.as_str()), ("NATS_NKEY_SEED", seed.as_str())];

    // The whole path works over TLS under the least-privilege users.
    let llm = ScriptedLlm::turns(doc_script()).await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    openclaw_tests::flow::complete_task(&app, &llm, &id, &worker_nats).await;

    // The bridge may take and ack a max-deliveries advisory (here one published by hand, as
    // JetStream would for a task whose workers all died) and fail that task.
    let abandoned = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Never taken"}))
        .await;
    let (_, seq) = app.stores().tasks.find(&abandoned).await.unwrap().unwrap();
    let advisory = json!({"type": "io.nats.jetstream.advisory.v1.max_deliver",
                          "stream": "OPENCLAW_TASKS", "consumer": "worker-doc-writer",
                          "stream_seq": seq, "deliveries": 5});
    app.js()
        .publish(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.OPENCLAW_TASKS.worker-doc-writer",
            advisory.to_string().into(),
        )
        .await
        .unwrap()
        .await
        .expect("the advisories stream stores it");
    let events = events_until_end(&app, &abandoned).await;
    assert_eq!(kinds(&events), ["queued", "failed"]);
    openclaw_tests::flow::advisories_all_acked(&app).await;

    // With a worker's credentials, publishing a task is refused, and nothing is stored.
    let cfg = nats_config_as(&app.nats, worker_user, WORKER_PASSWORD);
    let client = openclaw_common::store::connect(&cfg, "hostile-worker", worker_user, false)
        .await
        .expect("the worker user connects");
    let js = openclaw_common::store::context(client.clone());
    let mut tasks = app
        .js()
        .get_stream(openclaw_common::names::TASKS_STREAM)
        .await
        .unwrap();
    let before = tasks.info().await.unwrap().state.messages;
    let injected = async {
        js.publish("openclaw.tasks.doc-writer", "{}".into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    assert!(injected.is_err(), "a worker published a task: {injected:?}");
    assert_eq!(tasks.info().await.unwrap().state.messages, before);
    // Nor may it take another agent's tasks.
    let other = js
        .get_stream_no_info(openclaw_common::names::TASKS_STREAM)
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("worker-devops")
        .await;
    assert!(
        other.is_err(),
        "a doc-writer worker reached the devops consumer"
    );

    // Nor may it read anyone's replies but its own: the inboxes of all clients, or the
    // bridge's, are refused (the server says so on the connection), its own are not.
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let (user, password) = cfg.auth.user_password.clone().unwrap();
    let spy = async_nats::ConnectOptions::with_user_and_password(user, password.expose().into())
        .add_root_certificates(cfg.auth.ca.clone().unwrap())
        .require_tls(true)
        .custom_inbox_prefix(openclaw_common::names::inbox_prefix(worker_user))
        .event_callback(move |event| {
            let tx = errors_tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(cfg.url.as_str())
        .await
        .unwrap();
    for subject in ["_INBOX.>", "_INBOX_bridge.>", "_INBOX_worker-devops.>"] {
        let _subscription = spy.subscribe(subject).await.unwrap();
        spy.flush().await.unwrap();
        let refused = tokio::time::timeout(std::time::Duration::from_secs(10), errors.recv())
            .await
            .expect("the server refuses the subscription")
            .unwrap();
        assert!(
            refused.to_lowercase().contains("permissions violation") && refused.contains(subject),
            "{refused}"
        );
    }
    let own = format!("{}.>", openclaw_common::names::inbox_prefix(worker_user));
    let mut mine = spy.subscribe(own.clone()).await.unwrap();
    // The server has the subscription before anyone publishes to it.
    spy.flush().await.unwrap();
    let reply = format!(
        "{}.probe",
        openclaw_common::names::inbox_prefix(worker_user)
    );
    // Sent again each second until it arrives (bounded): one delivery proves the inbox is its
    // own, and a loaded machine has lost a single one here.
    let admin = app.js().client();
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            admin.publish(reply.clone(), "pong".into()).await.unwrap();
            admin.flush().await.unwrap();
            let next = futures_util::StreamExt::next(&mut mine);
            if let Ok(got) = tokio::time::timeout(std::time::Duration::from_secs(1), next).await {
                break got;
            }
        }
    })
    .await
    .expect("its own inbox receives")
    .unwrap();
    assert_eq!(&got.payload[..], b"pong");
    assert!(errors.try_recv().is_err(), "its own inbox was not refused");

    // Without credentials, or without TLS, no connection at all.
    let mut anonymous = cfg.clone();
    anonymous.auth.user_password = None;
    assert!(
        openclaw_common::store::connect(&anonymous, "anonymous", worker_user, false)
            .await
            .is_err()
    );
    let mut plain = cfg.clone();
    plain.url = plain.url.replace("tls://", "nats://");
    plain.auth.ca = None;
    let err = openclaw_common::store::connect(&plain, "plain", worker_user, false)
        .await
        .expect_err("plain text refused");
    assert!(!err.to_string().contains(WORKER_PASSWORD), "{err}");
}

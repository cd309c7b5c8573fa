//! The coder agent: shell commands in the kernel sandbox, the repository's setup and checks,
//! live output — driven by a scripted model through a real worker run as a non-root user
//! (as in the Job templates; the kernel's process limit does not apply to root).

use std::os::unix::fs::PermissionsExt;

use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_tests::flow::{app_without_dispatch, completed_by, env_for, tool_results, worker_bin};
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

/// A coder profile with limits a test can reach quickly.
const CODER_AGENTS: &str = r#"
[[agent]]
name = "coder"
system_prompt = "You are coder."
tools = ["read_file", "write_file", "edit_file", "run_command"]
command_timeout_secs = 20

[agent.sandbox]
max_processes = 64
max_file_bytes = 10000000

[agent.limits]
max_steps = 30
max_tokens = 1000000
max_wall_secs = 300
max_tool_calls_per_answer = 4
"#;

/// A directory (and its files) anyone may read: what only the sandbox keeps a non-root
/// worker's commands from.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write_open(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn agents_file(dir: &tempfile::TempDir) -> String {
    agents_file_with(dir, CODER_AGENTS)
}

fn agents_file_with(dir: &tempfile::TempDir, text: &str) -> String {
    let file = dir.path().join("agents.toml");
    write_open(&file, text);
    file.to_str().unwrap().to_owned()
}

fn shell(command: &str) -> Reply {
    Reply::tool("run_command", json!({ "command": command }))
}

fn shell_within(command: &str, secs: u64) -> Reply {
    Reply::tool(
        "run_command",
        json!({ "command": command, "timeout_secs": secs }),
    )
}

/// Runs one coder task on `repo` with `replies`, the worker under `uid` (root when `None`)
/// with `extra` settings; its events.
async fn coder_task(
    repo: &BareRepo,
    replies: Vec<Reply>,
    uid: Option<u32>,
    extra: &[(&str, &str)],
) -> (Vec<TaskEvent>, ScriptedLlm, WorkerProcess) {
    coder_task_with(CODER_AGENTS, repo, replies, uid, extra).await
}

/// [`coder_task`] with the agents file `agents_text`.
async fn coder_task_with(
    agents_text: &str,
    repo: &BareRepo,
    replies: Vec<Reply>,
    uid: Option<u32>,
    extra: &[(&str, &str)],
) -> (Vec<TaskEvent>, ScriptedLlm, WorkerProcess) {
    let dir = open_dir();
    let agents = agents_file_with(&dir, agents_text);
    let llm = ScriptedLlm::turns(replies).await;
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", &agents)]).await;
    let id = app
        .submit(&json!({"agent": "coder", "repo": repo.file_url(), "prompt": "Fix the bug"}))
        .await;
    if let Some(uid) = uid {
        repo.give_to(uid);
    }
    let mut settings = vec![
        ("OPENCLAW_AGENTS", agents.as_str()),
        ("OPENCLAW_AGENT", "coder"),
        ("HOME", "/nonexistent"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ];
    settings.extend_from_slice(extra);
    let worker = WorkerProcess::start_as(worker_bin(), &env_for(&app, &llm, &settings), uid);
    let (worker, events) = completed_by(&app, worker, &id).await;
    if uid.is_some() {
        repo.give_to(0);
    }
    (events, llm, worker)
}

/// A coder worker under `uid` with the test's agents file and a system PATH.
fn coder_worker(
    app: &openclaw_tests::app::TestApp,
    llm: &ScriptedLlm,
    agents: &str,
    uid: u32,
) -> WorkerProcess {
    coder_worker_with(app, llm, agents, uid, &[])
}

/// [`coder_worker`] with `extra` settings.
fn coder_worker_with(
    app: &openclaw_tests::app::TestApp,
    llm: &ScriptedLlm,
    agents: &str,
    uid: u32,
    extra: &[(&str, &str)],
) -> WorkerProcess {
    let mut settings = vec![
        ("OPENCLAW_AGENTS", agents),
        ("OPENCLAW_AGENT", "coder"),
        ("HOME", "/nonexistent"),
        ("PATH", "/usr/bin:/bin"),
    ];
    settings.extend_from_slice(extra);
    WorkerProcess::start_as(worker_bin(), &env_for(app, llm, &settings), Some(uid))
}

const BUGGY: &str = "def add(a, b):\n    return a - b\n";
const TEST: &str = "import unittest\n\nimport calc\n\n\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n\n\nif __name__ == '__main__':\n    unittest.main()\n";
const REPO_FILE: &str = "[commands]\nsetup = [\"python3 -c 'import calc; print(\\\"setup ok\\\")'\"]\nchecks = [\"python3 -m unittest -q\"]\n";

fn output_of(events: &[TaskEvent], call: &str) -> String {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Output { call_id, text } if call_id.starts_with(call) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_coder_runs_the_tests_sees_the_failure_fixes_it_and_the_checks_pass() {
    let repo = BareRepo::new();
    repo.push_files(
        "main",
        "A calculator",
        &[
            ("calc.py", BUGGY),
            ("test_calc.py", TEST),
            (".openclaw.toml", REPO_FILE),
            (
                "AGENTS.md",
                "# Agents\nKeep functions pure; tests live in test_*.py.\n",
            ),
        ],
    );
    let (events, llm, _worker) = coder_task(
        &repo,
        vec![
            shell("python3 -m unittest -q"),
            Reply::tool(
                "edit_file",
                json!({"path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
            ),
            shell("python3 -m unittest -q"),
            Reply::text("Fix add\n\nadd subtracted."),
        ],
        Some(20_001),
        &[],
    )
    .await;
    let results = tool_results(&events);
    // setup, the failing run, the edit, the passing run.
    assert_eq!(
        results.iter().map(|(ok, _)| *ok).collect::<Vec<_>>(),
        [true, false, true, true],
        "{results:?}"
    );
    assert!(results[0].1.contains("setup ok"), "{results:?}");
    assert!(
        results[1].1.starts_with("error: exit status 1"),
        "{}",
        results[1].1
    );
    assert!(
        results[1].1.contains("FAILED (failures=1)"),
        "{}",
        results[1].1
    );
    assert!(results[3].1.contains("OK"), "{}", results[3].1);
    // The model was told the checks and the repository's guidance.
    let first = llm.requests()[0].to_string();
    assert!(
        first.contains("- `python3 -m unittest -q`") && first.contains("Keep functions pure"),
        "{first}"
    );
    // The model saw the failure the test printed.
    let second = llm.requests()[2].to_string();
    assert!(second.contains("AssertionError: -1 != 5"), "{second}");
    // The output came live too, before each result.
    assert!(output_of(&events, "setup-1").contains("setup ok"));
    assert!(
        events.iter().any(
            |e| matches!(&e.kind, EventKind::Output { text, .. } if text.contains("AssertionError"))
        ),
        "the failing run's output was streamed"
    );
    // The check (the repository's) ran and passed; the fix was pushed.
    let branch = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Pushed { branch, .. } => Some(branch.clone()),
            _ => None,
        })
        .expect("pushed");
    assert_eq!(
        repo.file(&branch, "calc.py").as_deref(),
        Some("def add(a, b):\n    return a + b\n")
    );
    assert!(repo.message(&branch).starts_with("Fix add"));
}

#[tokio::test]
async fn a_check_that_fails_goes_back_to_the_model() {
    let repo = BareRepo::new();
    repo.push_files(
        "main",
        "A calculator",
        &[
            ("calc.py", BUGGY),
            ("test_calc.py", TEST),
            (
                ".openclaw.toml",
                "[commands]\nchecks = [\"python3 -m unittest -q\"]\n",
            ),
        ],
    );
    let (events, llm, _worker) = coder_task(
        &repo,
        vec![
            Reply::text("Done without running anything"),
            Reply::tool(
                "edit_file",
                json!({"path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
            ),
            Reply::text("Fix add"),
        ],
        Some(20_002),
        &[],
    )
    .await;
    let after_done = llm.requests()[1].to_string();
    assert!(
        after_done.contains("python3 -m unittest -q") && after_done.contains("FAILED"),
        "the check's failure went to the model: {after_done}"
    );
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::Completed { .. })
    ));
}

#[tokio::test]
async fn a_failing_setup_fails_the_task_with_its_output() {
    let repo = BareRepo::new();
    repo.push_files(
        "main",
        "Setup that fails",
        &[(
            ".openclaw.toml",
            "[commands]\nsetup = [\"echo preparing; echo missing-dependency >&2; exit 3\"]\n",
        )],
    );
    let dir = open_dir();
    let agents = agents_file(&dir);
    let llm = ScriptedLlm::turns(vec![Reply::text("never asked")]).await;
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", &agents)]).await;
    let id = app
        .submit(&json!({"agent": "coder", "repo": repo.file_url(), "prompt": "x"}))
        .await;
    repo.give_to(20_003);
    let mut worker = coder_worker(&app, &llm, &agents, 20_003);
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    repo.give_to(0);
    let events = openclaw_tests::flow::events_until_end(&app, &id).await;
    let Some(EventKind::Failed { reason, retryable }) = events.last().map(|e| &e.kind) else {
        panic!("{events:?}");
    };
    assert!(!retryable);
    assert!(
        reason.contains("setup command") && reason.contains("exit status 3"),
        "{reason}"
    );
    assert!(reason.contains("missing-dependency"), "{reason}");
    assert!(
        llm.requests().is_empty(),
        "no model call after a failed setup"
    );
}

/// Every process of `uid` now (the worker has exited: none should be left).
fn processes_of(uid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next().map(str::to_owned));
        if owner.as_deref() == Some(&uid.to_string()) {
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
    }
    found
}

#[tokio::test]
async fn hostile_commands_are_refused_or_contained_and_the_task_survives() {
    let uid = 20_004;
    let repo = BareRepo::new();
    repo.push_files("main", "start", &[("README.md", "# x\n")]);
    let outside = open_dir();
    let secret = outside.path().join("outside.txt");
    write_open(&secret, "outside-secret-7f3");
    let key = outside.path().join("id_ed25519");
    write_open(&key, "ssh-key-secret-91c");
    let listener = openclaw_tests::trap::ConnectionRecorder::start().await;
    let written = outside.path().join("written");
    let replies = vec![
        shell("cat /proc/$PPID/environ"),
        shell("head -c 64 /proc/$PPID/mem"),
        shell(&format!("cat {}", key.display())),
        shell(&format!("cat {}", secret.display())),
        shell(&format!("echo pwned > {}", written.display())),
        shell(&format!(
            "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {}), 2); print('connected')\"",
            listener.port
        )),
        shell(
            "python3 -c \"import socket; print(socket.getaddrinfo('metadata.google.internal', 80))\"; \
             python3 -c \"import socket; socket.create_connection(('169.254.169.254', 80), 2); print('connected')\"",
        ),
        shell_within("f() { f | f & }; f; sleep 3; echo after-bomb", 8),
        shell("echo alive"),
        shell("sleep 1000 >/dev/null 2>&1 & echo started"),
        shell("head -c 10000000000 /dev/zero > $TMPDIR/big"),
        shell_within("echo begin; sleep 1000", 2),
        shell("yes 0123456789 | head -c 100000000"),
        shell("kill -9 $PPID; echo still-here"),
        Reply::tool(
            "write_file",
            json!({"path": "NOTES.md", "content": "# Notes\n"}),
        ),
        Reply::text("Survived"),
    ];
    let (events, _llm, worker) = coder_task(
        &repo,
        replies,
        Some(uid),
        &[("GIT_SSH_KEY_PATH", key.to_str().unwrap())],
    )
    .await;
    let r = tool_results(&events);
    assert_eq!(r.len(), 15, "{r:?}");
    let refused = |n: usize, why: &str| {
        assert!(!r[n].0, "command {n} was refused: {}", r[n].1);
        assert!(r[n].1.contains(why), "command {n}: {why} in {}", r[n].1);
    };
    refused(0, "Permission denied");
    refused(1, "Permission denied");
    refused(2, "Permission denied");
    refused(3, "Permission denied");
    refused(4, "Permission denied");
    assert!(!written.exists(), "nothing written outside");
    refused(5, "Permission denied");
    refused(6, "Permission denied");
    for (n, text) in r.iter().enumerate() {
        for secret in [
            "outside-secret-7f3",
            "ssh-key-secret-91c",
            "LITELLM_API_KEY",
        ] {
            assert!(!text.1.contains(secret), "command {n} read {secret}");
        }
    }
    // The fork bomb met the process limit and the task went on.
    assert!(
        r[7].1.contains("after-bomb") || r[7].1.contains("timed out"),
        "{}",
        r[7].1
    );
    assert_eq!(r[8], (true, "alive\n".to_owned()));
    assert_eq!(r[9], (true, "started\n".to_owned()));
    refused(10, "size limit (10000000 bytes)");
    refused(11, "timed out after 2s");
    assert!(r[11].1.contains("begin"), "{}", r[11].1);
    assert!(r[12].0, "{}", &r[12].1[..200]);
    assert!(r[12].1.contains("bytes omitted"), "head and tail only");
    assert!(r[12].1.len() < 64 * 1024, "{} bytes", r[12].1.len());
    assert!(r[12].1.starts_with("0123456789"));
    // The worker was not killed (it went on to answer), and the command saw why.
    assert!(
        r[13].1.contains("kill: Operation not permitted") && r[13].1.contains("still-here"),
        "{}",
        r[13].1
    );
    assert!(
        worker.log_text().contains("worker done"),
        "{}",
        worker.log_text()
    );
    // The listener saw nothing: the next connection it accepts is the test's own, the first.
    let own = tokio::net::TcpStream::connect(("127.0.0.1", listener.port))
        .await
        .unwrap();
    openclaw_tests::eventually(10, "the test's own connection is recorded", || async {
        (listener.connections() >= 1).then_some(())
    })
    .await;
    drop(own);
    assert_eq!(listener.connections(), 1, "a command reached the listener");
    // Nothing of the worker's user runs on: no background sleep, no bomb.
    let left = processes_of(uid);
    assert!(left.is_empty(), "left running: {left:?}");
}

#[tokio::test]
async fn a_root_worker_refuses_commands_and_names_the_missing_process_limit() {
    let repo = BareRepo::new();
    repo.push_files("main", "start", &[("README.md", "# x\n")]);
    let (events, _llm, _worker) = coder_task(
        &repo,
        vec![shell("echo hi"), Reply::text("Could not run")],
        None,
        &[],
    )
    .await;
    let r = tool_results(&events);
    assert!(!r[0].0);
    assert!(
        r[0].1.contains("process-limit is missing") && r[0].1.contains("root"),
        "{}",
        r[0].1
    );
}

#[tokio::test]
async fn layers_switched_off_refuse_commands_by_name() {
    let repo = BareRepo::new();
    repo.push_files("main", "start", &[("README.md", "# x\n")]);
    let (events, _llm, _worker) = coder_task(
        &repo,
        vec![shell("echo hi"), Reply::text("Could not run")],
        Some(20_005),
        &[("OPENCLAW_SANDBOX_DISABLE", "landlock,seccomp")],
    )
    .await;
    let r = tool_results(&events);
    assert!(!r[0].0);
    for layer in ["landlock is missing", "seccomp is missing"] {
        assert!(r[0].1.contains(layer), "{}", r[0].1);
    }
    assert!(!r[0].1.contains("process-limit"), "{}", r[0].1);
}

#[tokio::test]
async fn a_worker_told_to_stop_ends_the_running_command_and_all_it_started() {
    let uid = 20_006;
    let repo = BareRepo::new();
    repo.push_files("main", "start", &[("README.md", "# x\n")]);
    let dir = open_dir();
    let agents = agents_file(&dir);
    let llm = ScriptedLlm::turns(vec![
        shell("sleep 1001 & sleep 1002"),
        Reply::text("never reached"),
    ])
    .await;
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", &agents)]).await;
    let _id = app
        .submit(&json!({"agent": "coder", "repo": repo.file_url(), "prompt": "x"}))
        .await;
    repo.give_to(uid);
    let mut worker = coder_worker(&app, &llm, &agents, uid);
    openclaw_tests::eventually(30, "the command runs", || async {
        let running = processes_of(uid);
        running
            .iter()
            .any(|p| p.contains("sleep 1002"))
            .then_some(())
    })
    .await;
    worker.signal("TERM");
    // Well within the command's 20 s limit and the worker's 75 s grace.
    let exit = openclaw_tests::within(15, "the worker stops", worker.wait()).await;
    assert!(exit.is_some(), "{}", worker.log_text());
    repo.give_to(0);
    let left = processes_of(uid);
    assert!(left.is_empty(), "left running: {left:?}");
}

/// A package index on 127.0.0.1: serves one module, and records each path asked for.
async fn package_index() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(uri.path().to_owned());
            "VALUE = 42\n"
        }
    });
    let (url, _server) = openclaw_tests::serve(app).await;
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    (port, asked)
}

fn refusals(events: &[TaskEvent]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::NetworkRefused {
                call_id,
                target,
                reason,
            } => Some((call_id.clone(), target.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn setup_reaches_allowed_hosts_through_the_proxy_and_the_agent_reaches_none() {
    let (port, asked) = package_index().await;
    let agents = CODER_AGENTS.replace(
        "[agent.limits]",
        &format!(
            "[agent.sandbox.network]\nrepo_may_allow = [\"localhost:{port}\"]\n\n[agent.limits]"
        ),
    );
    let fetch = format!(
        "import os, urllib.request\n\
         os.makedirs('vendor', exist_ok=True)\n\
         with urllib.request.urlopen('http://localhost:{port}/simple/dep.py', timeout=10) as r:\n\
         \x20   open('vendor/dep.py', 'wb').write(r.read())\n\
         try:\n\
         \x20   urllib.request.urlopen('http://169.254.169.254/latest/meta-data/', timeout=10)\n\
         \x20   print('metadata reached')\n\
         except Exception as e:\n\
         \x20   print('metadata refused:', e)\n\
         print('fetched')\n"
    );
    let test = "import sys, unittest\nsys.path.insert(0, 'vendor')\nimport dep\n\n\nclass DepTest(unittest.TestCase):\n    def test_value(self):\n        self.assertEqual(dep.VALUE, 42)\n";
    let repo_file = format!(
        "[commands]\nsetup = [\"python3 fetch.py\"]\nchecks = [\"python3 -m unittest -q\"]\n\n\
         [network]\nsetup = [\"localhost:{port}\", \"evil.example\"]\n"
    );
    let repo = BareRepo::new();
    repo.push_files(
        "main",
        "A project with a dependency",
        &[
            ("fetch.py", fetch.as_str()),
            ("test_dep.py", test),
            (".gitignore", "vendor/\n"),
            (".openclaw.toml", repo_file.as_str()),
        ],
    );
    let fetch_again = format!(
        "python3 -c \"import urllib.request; urllib.request.urlopen('http://localhost:{port}/simple/dep.py', timeout=10)\""
    );
    let (events, _llm, _worker) = coder_task_with(
        &agents,
        &repo,
        vec![
            shell(&fetch_again),
            shell("python3 -m unittest -q"),
            Reply::tool(
                "write_file",
                json!({"path": "NOTES.md", "content": "dep is fetched at setup\n"}),
            ),
            Reply::text("Note how dep arrives"),
        ],
        Some(20_007),
        &[],
    )
    .await;
    let r = tool_results(&events);
    assert_eq!(r.len(), 4, "{r:?}");
    // Setup fetched the dependency through the proxy; the metadata address was refused.
    assert!(r[0].0, "{}", r[0].1);
    assert!(r[0].1.contains("fetched"), "{}", r[0].1);
    assert!(
        r[0].1.contains("metadata refused: HTTP Error 403"),
        "{}",
        r[0].1
    );
    // In the agent's phase the same host is refused, and the model is told why.
    assert!(!r[1].0, "{}", r[1].1);
    assert!(
        r[1].1.contains(&format!(
            "[network] refused by the sandbox's egress proxy:\n- localhost:{port}: not an allowed host (allowed now: none"
        )),
        "{}",
        r[1].1
    );
    assert!(r[2].0 && r[2].1.contains("OK"), "{}", r[2].1);
    // Each refused host is in the events, with the call it came from.
    let refused = refusals(&events);
    let agent_call = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolCall { call_id, name, .. } if name == "run_command" => {
                Some(call_id.clone())
            }
            _ => None,
        })
        .next()
        .unwrap();
    assert_eq!(
        refused
            .iter()
            .map(|(call, target, _)| (call.as_str(), target.as_str()))
            .collect::<Vec<_>>(),
        [
            ("setup", "evil.example"),
            ("setup-1", "169.254.169.254:80"),
            (agent_call.as_str(), format!("localhost:{port}").as_str()),
        ],
        "{refused:?}"
    );
    assert!(
        refused[0]
            .2
            .contains(&format!("lets repositories add only: localhost:{port}")),
        "{}",
        refused[0].2
    );
    // The index saw the setup's one request, nothing of the agent's.
    assert_eq!(*asked.lock().unwrap(), ["/simple/dep.py"]);
    // The check passed with the fetched module; what setup fetched is not committed.
    let branch = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Pushed { branch, .. } => Some(branch.clone()),
            _ => None,
        })
        .expect("pushed");
    assert!(repo.file(&branch, "NOTES.md").is_some());
    assert_eq!(repo.file(&branch, "vendor/dep.py"), None);
}

#[tokio::test]
async fn a_command_cannot_read_the_workers_nats_credentials() {
    let uid = 20_008;
    let app = crate::confinement::secured_app(&["coder"]).await;
    let security = app.nats.security.as_ref().unwrap();
    // The worker's NKey seed and the CA, readable by anyone as far as file modes go: only the
    // sandbox keeps a command from them.
    let creds = open_dir();
    let seed = creds.path().join("worker.nk");
    let seed_text = std::fs::read_to_string(security.worker_seed("coder")).unwrap();
    write_open(&seed, &seed_text);
    let ca = creds.path().join("ca.pem");
    write_open(&ca, &std::fs::read_to_string(&security.ca).unwrap());
    let repo = BareRepo::new();
    repo.push_files("main", "start", &[("README.md", "# x\n")]);
    let dir = open_dir();
    let agents = agents_file(&dir);
    let llm = ScriptedLlm::turns(vec![
        shell(&format!("cat {}", seed.display())),
        shell(&format!(
            "cp {} $TMPDIR/seed && cat $TMPDIR/seed",
            seed.display()
        )),
        shell("cat /proc/$PPID/environ"),
        Reply::text("Nothing read"),
    ])
    .await;
    let id = app
        .submit(&json!({"agent": "coder", "repo": repo.file_url(), "prompt": "x"}))
        .await;
    repo.give_to(uid);
    let worker = coder_worker_with(
        &app,
        &llm,
        &agents,
        uid,
        &[
            ("NATS_CA", ca.to_str().unwrap()),
            ("NATS_NKEY_SEED", seed.to_str().unwrap()),
        ],
    );
    // The worker reached NATS with that seed (the task ran and completed under its user).
    let (_worker, events) = completed_by(&app, worker, &id).await;
    repo.give_to(0);
    let r = tool_results(&events);
    assert_eq!(r.len(), 3, "{r:?}");
    for (n, (ok, text)) in r.iter().enumerate() {
        assert!(!ok, "command {n} was refused: {text}");
        assert!(text.contains("Permission denied"), "command {n}: {text}");
        assert!(
            !text.contains(seed_text.trim()),
            "command {n} read the seed"
        );
    }
}

/// A regression: libgit2's bare open skipped the shallow file, so every push from a depth-1
/// clone of a repository with history failed ("object not found").
#[tokio::test]
async fn a_depth_one_clone_over_http_pushes_the_fix() {
    let repo = BareRepo::new();
    repo.push_files(
        "main",
        "A calculator",
        &[
            ("calc.py", BUGGY),
            ("test_calc.py", TEST),
            (".openclaw.toml", REPO_FILE),
        ],
    );
    let git =
        openclaw_tests::git::GitHttpServer::start(repo.root(), "bot", "ghp_coderHttp0123456789");
    let dir = open_dir();
    let agents = agents_file(&dir);
    let llm = ScriptedLlm::turns(vec![
        Reply::tool(
            "edit_file",
            json!({"path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
        ),
        Reply::text("Fix add"),
    ])
    .await;
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", &agents)]).await;
    let id = app
        .submit(&json!({"agent": "coder", "repo": git.url("origin.git"), "prompt": "Fix the bug"}))
        .await;
    let worker = coder_worker_with(
        &app,
        &llm,
        &agents,
        20_009,
        &[
            ("GIT_USERNAME", "bot"),
            ("GIT_TOKEN", "ghp_coderHttp0123456789"),
        ],
    );
    // The clone is shallow (depth 1 over a smart transport) and the base has history the
    // worker never fetched: the push must stop at the clone's boundary.
    let (_worker, events) = completed_by(&app, worker, &id).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Pushed { .. })),
        "pushed"
    );
    assert_eq!(
        repo.file(&format!("openclaw/{id}"), "calc.py").as_deref(),
        Some("def add(a, b):\n    return a + b\n")
    );
}

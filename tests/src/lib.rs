//! Test harness: real components on free ports, each owned by the test that started it.
//!
//! - [`nats::NatsServer`]: a real `nats-server` with JetStream in a temp dir.
//! - [`app::TestApp`]: a bridge (in-process) on port 0 over its own NATS server.
//! - [`llm::ScriptedLlm`]: an OpenAI-compatible server whose answers are given as data.
//! - [`litellm::LiteLlm`]: the real LiteLLM proxy in front of it, for conformance.
//! - [`kube::FakeKubeApi`]: a small Kubernetes API server for the Job dispatcher.
//! - [`langfuse::FakeLangfuse`]: an OTLP trace receiver (Langfuse v4's or any collector's) that decodes protobuf.
//! - [`git`]: bare repositories over `file://` and over HTTP (`git http-backend`).
//! - [`sse`]: a small SSE reader for asserting on event streams.
//! - [`trap`]: hostile endpoints (connection recorder, credential trap, redirector).
//! - [`worker`]: worker processes and their test environment.
//! - [`generated`]: a generated large repository (30,000 files and more) for tool tests and benches.
//! - [`flow`]: the steps the suites share (a bridge with local dispatch, a task run by a
//!   worker the test starts, its events to their end).
//! - [`images`]: the release binaries and OCI images of `scripts/images.sh`, and podman.
//!
//! Every wait has a hard deadline; a missing component fails loudly with how to install it.

pub mod app;
pub mod flow;
pub mod generated;
pub mod git;
pub mod github;
pub mod gitlab;
pub mod images;
pub mod kube;
pub mod langfuse;
pub mod litellm;
pub mod llm;
pub mod nats;
pub mod openapi;
pub mod sse;
pub mod trap;
pub mod worker;

use std::future::Future;
use std::time::Duration;

/// Fails the test if `fut` does not finish within `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(secs, what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// A new `doc-writer` task on `repo` as the bridge would store it, for tests and benches that
/// publish tasks themselves.
pub fn doc_writer_task(repo: &str, prompt: &str) -> openclaw_common::task::TaskSpec {
    use openclaw_common::egress::RepoUrl;
    use openclaw_common::ids::{AgentName, BranchName, TaskId};
    let id = TaskId::new();
    openclaw_common::task::TaskSpec {
        v: openclaw_common::SCHEMA_VERSION,
        id,
        agent: AgentName::parse("doc-writer").expect("a valid agent name"),
        repo: Some(
            RepoUrl::parse(repo, &openclaw_common::egress::RepoPolicy::open())
                .expect("a valid repo URL"),
        ),
        prompt: prompt.into(),
        branch: None,
        push_branch: BranchName::for_task(&id),
        model: None,
        metadata: Default::default(),
        created_at: openclaw_common::now(),
        history: Vec::new(),
        replay_of: None,
        pull_request: None,
        origin: None,
        submitted_by: None,
    }
}

/// Runs `cmd`, failing with its output unless it exits 0 (or with a hint when it cannot start:
/// a missing program); returns stdout.
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}); is it installed?"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a free port on 127.0.0.1")
}

/// The workspace root (for `nats/` files and `.tools/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Once per process: logging (with `TEST_LOG`) and the TLS crypto provider.
pub fn init() {
    openclaw_common::telemetry::init_for_tests();
    openclaw_worker::install_crypto_provider();
}

/// The Python with the suite's packages (openai, httpx, pydantic): `OPENCLAW_TEST_PYTHON`, else
/// `.tools/venv/bin/python` as `scripts/tools.sh` installs it. Fails loudly without them.
pub fn python() -> std::path::PathBuf {
    let python = std::env::var_os("OPENCLAW_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/venv/bin/python"));
    let ok = std::process::Command::new(&python)
        .args(["-c", "import openai, httpx, pydantic"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} with the packages of tests/python/requirements.txt is missing: run `bash scripts/tools.sh` \
         (or set OPENCLAW_TEST_PYTHON)",
        python.display()
    );
    python
}

/// Runs a script of `tests/python/` with `args`, failing the test with its output unless it
/// exits 0. Returns its stdout.
pub async fn run_python_check(script: &str, args: &[&str]) -> String {
    let path = workspace_root().join("tests/python").join(script);
    let out = within(
        180,
        script,
        tokio::process::Command::new(python())
            .arg(&path)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A stand-in HTTP service of the harness on a free loopback port: its base URL, and the task
/// serving it (abort it to stop the service).
pub async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let port = listener.local_addr().expect("local addr").port();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}"), server)
}

/// A `completed` event without a commit, as a worker with nothing to push stores it.
pub fn completed_event(summary: &str) -> openclaw_common::event::EventKind {
    openclaw_common::event::EventKind::Completed {
        summary: summary.into(),
        commit: None,
        branch: None,
        usage: None,
        pull_request: None,
    }
}

/// How many tools the built-in doc-writer profile offers the model (what its requests carry).
pub fn doc_writer_tool_count() -> usize {
    let catalog = openclaw_common::agents::AgentCatalog::built_in();
    openclaw_common::ids::AgentName::parse("doc-writer")
        .ok()
        .and_then(|name| catalog.get(&name).map(|p| p.tools.len()))
        .expect("the built-in catalog has doc-writer")
}

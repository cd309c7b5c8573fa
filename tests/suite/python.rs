//! Python clients against a running bridge: the official openai package, the Open WebUI pipe
//! loaded as Open WebUI loads it, the original bridge's pipe request shape, and the pipe's
//! install script.

use openclaw_tests::app::TestApp;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::{run_python_check, workspace_root};
use serde_json::json;

use openclaw_tests::flow::local_dispatch;

const TOKEN: &str = "bridge-token-for-python";

async fn bridge() -> (TestApp, ScriptedLlm, BareRepo) {
    let llm = ScriptedLlm::turns(vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/USAGE.md", "content": "# Usage\n"}),
        ),
        Reply::text("Add a usage guide\n\nDocuments how to run the program."),
    ])
    .await;
    let app = local_dispatch(TestApp::builder().token(TOKEN), &llm, &[])
        .spawn()
        .await;
    (app, llm, BareRepo::new())
}

#[tokio::test]
async fn the_official_openai_client_runs_tasks_through_the_bridge() {
    let (app, _llm, repo) = bridge().await;
    let out = run_python_check(
        "check_openai_client.py",
        &[&app.base, TOKEN, &repo.file_url()],
    )
    .await;
    assert!(out.contains("openai client: ok"));
    let list: serde_json::Value = app.get("/v1/tasks").await.json().await.unwrap();
    let tasks = list["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|t| t["status"] == "completed"));
}

#[tokio::test]
async fn the_open_webui_pipe_streams_text_and_status_events() {
    let (app, _llm, repo) = bridge().await;
    let pipe = workspace_root().join("openwebui/openclaw_pipe.py");
    let out = run_python_check(
        "check_pipe.py",
        &[&app.base, TOKEN, &repo.file_url(), pipe.to_str().unwrap()],
    )
    .await;
    assert!(out.contains("pipe: ok"));
}

#[tokio::test]
async fn the_original_bridge_pipe_request_shape_works() {
    let (app, _llm, repo) = bridge().await;
    let out = run_python_check(
        "check_original_pipe.py",
        &[&app.base, TOKEN, &repo.file_url()],
    )
    .await;
    assert!(out.contains("original pipe contract: ok"));
}

#[tokio::test]
async fn the_install_script_creates_configures_and_switches_on_the_pipe() {
    let script = workspace_root().join("openwebui/install_pipe.py");
    let out = run_python_check("check_install_pipe.py", &[script.to_str().unwrap()]).await;
    assert!(out.contains("install script: ok"));
}

#[tokio::test]
async fn the_starter_kits_agent_pipes_reach_their_agents_by_host_unmodified() {
    // doc-writer's repository comes from GIT_REPO_URL, as the kit configures it.
    let repo = openclaw_tests::git::BareRepo::new();
    let llm = openclaw_tests::llm::ScriptedLlm::turns(vec![
        openclaw_tests::llm::Reply::tool(
            "write_file",
            serde_json::json!({"path": "docs/USAGE.md", "content": "# Usage\n"}),
        ),
        openclaw_tests::llm::Reply::text("Add a usage guide"),
    ])
    .await;
    let app = openclaw_tests::flow::local_dispatch(
        openclaw_tests::app::TestApp::builder(),
        &llm,
        &[("GIT_REPO_URL", &repo.file_url())],
    )
    .token("kit-token-1")
    .spawn()
    .await;
    let out = openclaw_tests::run_python_check(
        "check_kit_pipes.py",
        &[&app.port.to_string(), "kit-token-1"],
    )
    .await;
    assert!(
        out.contains("doc-writer: ok") && out.contains("devops: ok"),
        "{out}"
    );
    let tasks: serde_json::Value = app.get("/v1/tasks").await.json().await.unwrap();
    let tasks = tasks["tasks"].as_array().unwrap();
    let agents: Vec<&str> = tasks.iter().map(|t| t["agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["devops", "doc-writer"], "newest first");
    assert_eq!(tasks[1]["repo"], repo.file_url().as_str());
    assert_eq!(tasks[1]["status"], "completed");
    let id = tasks[1]["id"].as_str().unwrap();
    assert!(
        repo.file(&format!("openclaw/{id}"), "docs/USAGE.md")
            .is_some()
    );
}

/// With a `service` token, the pipe's chats run as the Open WebUI user who sent them.
#[tokio::test]
async fn the_pipe_runs_each_chat_as_its_open_webui_user() {
    const SERVICE: &str = "webui-service-token-for-python";
    let llm = ScriptedLlm::turns(vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/USAGE.md", "content": "# Usage\n"}),
        ),
        Reply::text("Add a usage guide"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        crate::principals::token_entry("webui", "service", SERVICE, ""),
    )
    .unwrap();
    let app = local_dispatch(
        TestApp::builder()
            .token(TOKEN)
            .env("OPENCLAW_TOKENS_FILE", tokens.to_str().unwrap()),
        &llm,
        &[],
    )
    .spawn()
    .await;
    let repo = BareRepo::new();
    let pipe = workspace_root().join("openwebui/openclaw_pipe.py");
    let out = run_python_check(
        "check_pipe_user.py",
        &[&app.base, SERVICE, &repo.file_url(), pipe.to_str().unwrap()],
    )
    .await;
    assert!(out.contains("pipe user: ok"), "{out}");
    let list: serde_json::Value = app.get("/v1/tasks").await.json().await.unwrap();
    let tasks = list["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0]["submitted_by"],
        json!({"principal": "webui", "user": "u-9"})
    );
    assert_eq!(tasks[0]["status"], "completed");
}

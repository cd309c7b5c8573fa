//! The agent loop against a scripted model: work kept when a limit stops it, a context kept
//! inside its window (elided results, a condensed middle, a refused request shrunk and
//! retried), answers cut at the output limit, a model going in circles, and what each
//! request carries (`max_tokens`, prompt-cache points).

use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_tests::app::TestApp;
use openclaw_tests::flow::{app_without_dispatch, assert_completed, kinds, work_task};
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm, message_text};
use serde_json::{Value, json};

/// An agent like doc-writer with small limits, in its own profile file.
fn agents_file(limits: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[agent]]
name = "writer"
system_prompt = "You are writer."
tools = ["list_files", "read_file", "write_file", "edit_file", "search"]
limits = {{ {limits} }}
"#
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap().to_owned();
    (dir, path)
}

/// A bridge with `agents` and a repository, and a task for `writer` on it.
async fn writer_task(
    agents: &str,
    body: Value,
) -> (TestApp, BareRepo, openclaw_common::ids::TaskId) {
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", agents)]).await;
    let repo = BareRepo::new();
    let mut body = body;
    body["repo"] = json!(repo.file_url());
    body["agent"] = json!("writer");
    let id = app.submit(&body).await;
    (app, repo, id)
}

/// Runs task `id` with a worker for the `writer` agent of `agents`.
async fn run_writer(
    app: &TestApp,
    llm: &ScriptedLlm,
    id: &openclaw_common::ids::TaskId,
    agents: &str,
) -> (openclaw_tests::worker::WorkerProcess, Vec<TaskEvent>) {
    work_task(
        app,
        llm,
        id,
        &[("OPENCLAW_AGENTS", agents), ("OPENCLAW_AGENT", "writer")],
    )
    .await
}

fn write(path: &str, content: &str) -> Reply {
    Reply::tool("write_file", json!({"path": path, "content": content}))
}

fn read(path: &str) -> Reply {
    Reply::tool("read_file", json!({"path": path}))
}

fn failure(events: &[TaskEvent]) -> String {
    match &events.last().unwrap().kind {
        EventKind::Failed { reason, .. } => reason.clone(),
        other => panic!("the task did not fail: {other:?} ({:?})", kinds(events)),
    }
}

/// Every tool message of `request` directly follows the assistant message that called it (or
/// another result of the same call list).
fn results_follow_their_calls(request: &Value) {
    let messages = request["messages"].as_array().unwrap();
    for (i, m) in messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m["role"] == "tool")
    {
        let id = m["tool_call_id"].as_str().unwrap();
        let caller = messages[..i]
            .iter()
            .rev()
            .find(|m| m["role"] != "tool")
            .unwrap();
        assert_eq!(caller["role"], "assistant", "{request}");
        assert!(
            caller["tool_calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == id),
            "result {id} without its call"
        );
    }
}

#[tokio::test]
async fn a_run_stopped_by_its_step_limit_pushes_its_work_and_a_follow_up_resumes_from_it() {
    let (_dir, agents) = agents_file("max_steps = 3, max_tokens = 100000, max_wall_secs = 60");
    let llm = ScriptedLlm::queue(vec![
        write("docs/a.md", "# A\n"),
        write("docs/b.md", "# B\n"),
        read("docs/a.md"),
    ])
    .await;
    let (app, repo, id) = writer_task(&agents, json!({"prompt": "Document everything"})).await;
    let (_worker, events) = run_writer(&app, &llm, &id, &agents).await;
    let reason = failure(&events);
    let branch = format!("openclaw/{id}");
    let tip = repo.tip(&branch);
    assert!(
        reason.starts_with("step limit of 3 reached; partial work pushed to ")
            && reason.ends_with(&format!("{branch} @ {}", &tip[..12])),
        "{reason}"
    );
    assert_eq!(repo.file(&branch, "docs/a.md").as_deref(), Some("# A\n"));
    assert_eq!(repo.file(&branch, "docs/b.md").as_deref(), Some("# B\n"));
    assert_eq!(app.status(&id).await["checkpoint"], tip.as_str());

    // A replay starts from the checkpoint and pushes to a branch of its own.
    let r = app
        .post_json(&format!("/v1/tasks/{id}/replay"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let replay: Value = r.json().await.unwrap();
    let replay = openclaw_common::ids::TaskId::parse(replay["id"].as_str().unwrap()).unwrap();
    let llm_replay =
        ScriptedLlm::queue(vec![write("docs/d.md", "# D\n"), Reply::text("Add d")]).await;
    let (_worker, events) = run_writer(&app, &llm_replay, &replay, &agents).await;
    assert_completed(&events);
    assert_eq!(
        repo.file(&format!("openclaw/{replay}"), "docs/b.md")
            .as_deref(),
        Some("# B\n")
    );
    // The model heard the limit coming before its last call.
    let last = llm.requests().last().cloned().unwrap();
    assert!(
        last["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| message_text(m).contains("close to this task's limits")),
        "{last}"
    );

    // A follow-up on the branch starts from the checkpoint.
    let llm = ScriptedLlm::queue(vec![
        write("docs/c.md", "# C\n"),
        Reply::text("Finish the docs"),
    ])
    .await;
    let follow = app
        .submit(
            &json!({"repo": repo.file_url(), "agent": "writer", "prompt": "Finish it",
                        "push_branch": branch}),
        )
        .await;
    let (_worker, events) = run_writer(&app, &llm, &follow, &agents).await;
    assert_completed(&events);
    assert!(message_text(&llm.requests()[0]["messages"][0]).contains("already holds earlier work"));
    for f in ["docs/a.md", "docs/b.md", "docs/c.md"] {
        assert!(repo.file(&branch, f).is_some(), "{f}");
    }
    let commits = repo.new_commits(&branch);
    assert_eq!(
        commits.len(),
        2,
        "the checkpoint, then the result: {commits:?}"
    );
}

#[tokio::test]
async fn results_past_the_context_window_are_elided_then_condensed_and_the_run_completes() {
    // A window of 12,000 tokens (about 48 KB): four writes of 8 KB stay in the history as
    // call arguments (only condensing removes them), then eight reads of 5 KB files.
    let (_dir, agents) = agents_file(
        "max_steps = 30, max_tokens = 1000000, max_wall_secs = 120, context_window = 12000",
    );
    let mut replies: Vec<Reply> = (0..4)
        .map(|n| write(&format!("docs/w{n}.md"), &"word ".repeat(1600)))
        .collect();
    replies.extend((0..8).map(|n| read(&format!("docs/r{n}.md"))));
    replies.push(write("docs/index.md", "# Index\n"));
    replies.push(Reply::text("Indexed the docs"));
    let llm = ScriptedLlm::queue(replies).await;
    llm.summarize_with("Wrote docs/w0.md to docs/w3.md and read docs/r0.md; the index is left.");
    let app = app_without_dispatch(&[("OPENCLAW_AGENTS", &agents)]).await;
    let repo = BareRepo::new();
    for n in 0..8 {
        let text: String = (1..=200)
            .map(|l| format!("file {n} line {l} of the guide\n"))
            .collect();
        repo.push_commit("main", &format!("docs/r{n}.md"), &text);
    }
    let id = app
        .submit(&json!({"repo": repo.file_url(), "agent": "writer", "prompt": "Write and index the docs"}))
        .await;
    let (_worker, events) = run_writer(&app, &llm, &id, &agents).await;
    assert_completed(&events);
    assert!(
        repo.file(&format!("openclaw/{id}"), "docs/index.md")
            .is_some()
    );
    let requests = llm.requests();
    let conversation: Vec<&Value> = requests
        .iter()
        .filter(|r| r.get("tools").is_some())
        .collect();
    let summaries = requests.len() - conversation.len();
    assert!(summaries >= 1, "the middle was condensed at least once");
    let texts = |r: &Value| -> String {
        r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(message_text)
            .collect()
    };
    assert!(
        conversation.iter().any(|r| texts(r).contains("[elided")),
        "old results elided"
    );
    assert!(
        conversation
            .iter()
            .any(|r| texts(r).contains("Wrote docs/w0.md to docs/w3.md")),
        "later requests carry the summary"
    );
    for r in &conversation {
        results_follow_their_calls(r);
        // No request the worker sent was far past the window (bytes / 3.5 as tokens).
        let bytes = r["messages"].to_string().len();
        assert!(bytes < 12_000 * 4, "a request of {bytes} bytes");
    }
}

#[tokio::test]
async fn a_request_refused_as_too_long_is_shrunk_and_retried_once() {
    let (_dir, agents) = agents_file("max_steps = 10, max_tokens = 1000000, max_wall_secs = 60");
    let big = "word ".repeat(3000);
    let llm = ScriptedLlm::queue(vec![
        write("a.md", &big),
        write("b.md", &big),
        write("c.md", &big),
        read("a.md"),
        read("b.md"),
        read("c.md"),
        Reply::error(
            400,
            "litellm.ContextWindowExceededError: This model's maximum context length is 8192 tokens",
        ),
        write("d.md", "# D\n"),
        Reply::text("Done"),
    ])
    .await;
    llm.summarize_with("Wrote and read a.md, b.md and c.md.");
    let (app, _repo, id) = writer_task(&agents, json!({"prompt": "p"})).await;
    let (_worker, events) = run_writer(&app, &llm, &id, &agents).await;
    assert_completed(&events);
    let requests = llm.requests();
    let refused = requests
        .iter()
        .position(|r| r.get("tools").is_some() && r["messages"].as_array().unwrap().len() == 14)
        .expect("the refused request (system, prompt, six calls and results)");
    let retried = requests[refused + 1..]
        .iter()
        .find(|r| r.get("tools").is_some())
        .unwrap();
    assert!(
        retried["messages"].to_string().len() < requests[refused]["messages"].to_string().len() / 2,
        "the retry is much shorter"
    );
    results_follow_their_calls(retried);
}

#[tokio::test]
async fn a_tool_call_cut_at_the_output_limit_is_not_run_and_the_model_is_told() {
    let (_dir, agents) = agents_file(
        "max_steps = 10, max_tokens = 1000000, max_wall_secs = 60, max_output_tokens = 1024",
    );
    let llm = ScriptedLlm::queue(vec![
        write("half.md", "this call is cut in the middle").cut_off(),
        Reply::text("A summary that is also cut").cut_off(),
        write("whole.md", "# Whole\n"),
        Reply::text("Wrote whole.md"),
    ])
    .await;
    let (app, repo, id) = writer_task(&agents, json!({"prompt": "p"})).await;
    let (_worker, events) = run_writer(&app, &llm, &id, &agents).await;
    assert_completed(&events);
    let calls: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolCall { arguments, .. } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1, "only the whole call ran: {calls:?}");
    let branch = format!("openclaw/{id}");
    assert!(repo.file(&branch, "half.md").is_none());
    let requests = llm.requests();
    let told = message_text(requests[1]["messages"].as_array().unwrap().last().unwrap());
    assert!(
        told.contains("cut off at the output limit (1024 tokens)") && told.contains("write_file"),
        "{told}"
    );
    let told = message_text(requests[2]["messages"].as_array().unwrap().last().unwrap());
    assert!(told.contains("Answer again, shorter"), "{told}");
    // The commit message is the whole answer, not the cut one.
    assert!(repo.new_commits(&branch)[0].ends_with("Wrote whole.md"));
    // Every request asks for at most the profile's output and marks its cache points.
    for r in &requests {
        assert_eq!(r["max_tokens"], 1024);
        let messages = r["messages"].as_array().unwrap();
        for m in [&messages[0], messages.last().unwrap()] {
            assert_eq!(m["content"][0]["cache_control"]["type"], "ephemeral", "{m}");
        }
    }
}

#[tokio::test]
async fn a_model_going_in_circles_is_told_then_stopped_with_its_work_kept() {
    let (_dir, agents) = agents_file("max_steps = 20, max_tokens = 1000000, max_wall_secs = 60");
    let llm = ScriptedLlm::queue(
        std::iter::once(write("a.md", "# A\n"))
            .chain(std::iter::repeat_n(read("a.md"), 10))
            .collect(),
    )
    .await;
    let (app, repo, id) = writer_task(&agents, json!({"prompt": "p"})).await;
    let (_worker, events) = run_writer(&app, &llm, &id, &agents).await;
    let reason = failure(&events);
    assert!(
        reason.starts_with("stuck: read_file with the same arguments has returned the same result 5 times; partial work pushed to"),
        "{reason}"
    );
    assert!(repo.file(&format!("openclaw/{id}"), "a.md").is_some());
    let requests = llm.requests();
    assert_eq!(requests.len(), 6, "the write, then five reads");
    let nudged = requests[4]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| message_text(m).contains("will not change it"));
    assert!(nudged, "the model was told after the third repeat");
}

#[tokio::test]
async fn a_broken_link_goes_back_to_the_doc_writer_and_the_commit_has_it_fixed() {
    let llm = ScriptedLlm::queue(vec![
        write("docs/guide.md", "# Guide\n\nSee [the readme](../MISSING.md#hello).\n"),
        Reply::text("Add a guide"),
        Reply::tool(
            "edit_file",
            json!({"path": "docs/guide.md", "old_text": "../MISSING.md#hello", "new_text": "../README.md#hello"}),
        ),
        Reply::text("Add a guide\n\nLinks to the readme."),
    ])
    .await;
    let app = app_without_dispatch(&[]).await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Write a guide"}))
        .await;
    let (_worker, events) = work_task(&app, &llm, &id, &[]).await;
    assert_completed(&events);
    let requests = llm.requests();
    assert_eq!(requests.len(), 4);
    let told = message_text(requests[2]["messages"].as_array().unwrap().last().unwrap());
    assert!(
        told.contains("docs/guide.md:3: link to ../MISSING.md#hello: no such file (MISSING.md)"),
        "{told}"
    );
    let branch = format!("openclaw/{id}");
    assert_eq!(
        repo.file(&branch, "docs/guide.md").as_deref(),
        Some("# Guide\n\nSee [the readme](../README.md#hello).\n")
    );
    assert!(
        repo.message(&branch)
            .starts_with("Add a guide\n\nLinks to the readme.")
    );
}

#[tokio::test]
async fn a_profile_that_asks_for_review_shows_the_model_its_diff_once() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.toml");
    std::fs::write(
        &agents,
        r#"
[[agent]]
name = "writer"
system_prompt = "You are writer."
tools = ["write_file"]
review_diff = true
"#,
    )
    .unwrap();
    let agents = agents.to_str().unwrap().to_owned();
    let llm = ScriptedLlm::queue(vec![
        write("notes.md", "# Notes\n"),
        Reply::text("Done."),
        Reply::text("Done."),
    ])
    .await;
    let (app, repo, id) = writer_task(&agents, json!({"prompt": "Take notes"})).await;
    let (_worker, events) = run_writer(&app, &llm, &id, &agents).await;
    assert_completed(&events);
    let requests = llm.requests();
    assert_eq!(requests.len(), 3, "one review turn");
    let review = message_text(requests[2]["messages"].as_array().unwrap().last().unwrap());
    assert!(
        review.contains("```diff") && review.contains("+# Notes"),
        "{review}"
    );
    // "Done." says nothing: the subject comes from the change.
    assert!(
        repo.message(&format!("openclaw/{id}"))
            .starts_with("Update notes.md\n")
    );
}

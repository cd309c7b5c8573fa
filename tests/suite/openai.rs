//! The OpenAI-compatible front door and the original bridge's contract, end to end.

use openclaw_tests::llm::message_text;
use std::time::Duration;

use futures_util::StreamExt;
use openclaw_common::ids::TaskId;
use openclaw_common::names;
use openclaw_tests::app::TestApp;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::sse::SseReader;
use openclaw_tests::within;
use serde_json::{Value, json};

use openclaw_tests::flow::{app_with_local_dispatch, events_until_end, expect_error};

fn doc_script() -> Vec<Reply> {
    vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/USAGE.md", "content": "# Usage\n"}),
        ),
        Reply::text("Add a usage guide\n\nDocuments how to run the program."),
    ]
}

async fn chat(app: &TestApp, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The `data:` payloads of a chat completion stream, up to and including `[DONE]`.
async fn chunks(r: reqwest::Response) -> Vec<String> {
    let frames = within(90, "the chat stream to end", SseReader::new(r).collect()).await;
    frames.into_iter().map(|f| f.data).collect()
}

fn content_of(chunks: &[String]) -> String {
    chunks
        .iter()
        .filter(|c| *c != "[DONE]")
        .filter_map(|c| serde_json::from_str::<Value>(c).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn models_are_the_agents() {
    let app = TestApp::spawn().await;
    let models: Value = app.get("/v1/models").await.json().await.unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["openclaw:coder", "openclaw:devops", "openclaw:doc-writer"]
    );
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["owned_by"] == "openclaw" && m["object"] == "model")
    );
}

#[tokio::test]
async fn a_streamed_chat_runs_a_task_and_ends_with_the_commit() {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_with_local_dispatch(&llm, &[]).await;
    let repo = BareRepo::new();
    let r = chat(
        &app,
        &json!({"model": "openclaw:doc-writer", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "system", "content": "be nice"},
                             {"role": "user", "content": format!("Document how to run it. Repo: {}", repo.file_url())}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = TaskId::parse(r.headers()["x-openclaw-task-id"].to_str().unwrap()).unwrap();
    let chunks = chunks(r).await;
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&chunks[0]).unwrap();
    assert_eq!(first["openclaw"]["task_id"], id.to_string());
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "openclaw:doc-writer");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    for c in chunks.iter().filter(|c| *c != "[DONE]") {
        let v: Value = serde_json::from_str(c).unwrap();
        assert!(
            v["choices"][0]["delta"].get("tool_calls").is_none(),
            "never tool_calls: {c}"
        );
    }
    let finishes: Vec<Value> = chunks
        .iter()
        .filter_map(|c| serde_json::from_str::<Value>(c).ok())
        .map(|v| v["choices"][0]["finish_reason"].clone())
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [json!("stop")]);
    let usage: Value = serde_json::from_str(&chunks[chunks.len() - 2]).unwrap();
    assert!(usage["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let text = content_of(&chunks);
    let branch = format!("openclaw/{id}");
    let tip = repo.tip(&branch);
    assert!(text.contains("Add a usage guide"), "{text}");
    assert!(text.contains("write_file docs/USAGE.md"), "{text}");
    assert!(
        text.contains(&format!("Done: commit {} on branch {branch}", &tip[..10])),
        "{text}"
    );
    assert_eq!(app.status(&id).await["status"], "completed");
}

#[tokio::test]
async fn a_non_streamed_chat_returns_the_whole_answer() {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_with_local_dispatch(&llm, &[("OPENCLAW_REQUEST_TIMEOUT_SECS", "1")]).await;
    let repo = BareRepo::new();
    let r = chat(
        &app,
        &json!({"model": "doc-writer", "repo": repo.file_url(),
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Document it"}]}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("Add a usage guide") && content.contains("Done: commit"),
        "{content}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn chats_without_a_repo_bad_models_and_background_prompts() {
    let app = TestApp::spawn().await;
    let user = |t: &str| json!([{"role": "user", "content": t}]);
    // A chat refused for `field`, with `words` in its message.
    let refused = |body: Value, field: &'static str, words: &'static str| {
        let app = &app;
        async move {
            let err = expect_error(
                chat(app, &body, &[]).await,
                400,
                "invalid_request",
                Some(field),
            )
            .await;
            let message = err["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(words), "{err}");
        }
    };
    refused(
        json!({"model": "openclaw:doc-writer", "messages": user("Document the CLI")}),
        "repo",
        "git URL",
    )
    .await;
    refused(
        json!({"model": "gpt-4", "messages": user("hi")}),
        "model",
        "openclaw:doc-writer",
    )
    .await;

    let r = chat(
        &app,
        &json!({"model": "openclaw:doc-writer", "messages": []}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);

    let task = "### Task:\nGenerate a concise title for the chat.\n<chat_history>USER: document it</chat_history>";
    for stream in [false, true] {
        let r = chat(
            &app,
            &json!({"model": "openclaw:doc-writer", "stream": stream, "messages": user(task)}),
            &[],
        )
        .await;
        assert_eq!(r.status(), 200);
        let text = if stream {
            content_of(&chunks(r).await)
        } else {
            let v: Value = r.json().await.unwrap();
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let title: Value = serde_json::from_str(&text).unwrap();
        assert!(title["title"].is_string());
    }
    let mut tasks = app.js().get_stream(names::TASKS_STREAM).await.unwrap();
    assert_eq!(
        tasks.info().await.unwrap().state.messages,
        0,
        "no task for background prompts"
    );
}

#[tokio::test]
async fn a_follow_up_in_the_same_conversation_lands_on_the_same_branch() {
    let llm = ScriptedLlm::queue(vec![
        Reply::tool(
            "write_file",
            json!({"path": "docs/usage.md", "content": "usage"}),
        ),
        Reply::text("Document usage"),
        Reply::tool(
            "write_file",
            json!({"path": "docs/cli.md", "content": "cli"}),
        ),
        Reply::text("Document the CLI"),
    ])
    .await;
    let app = app_with_local_dispatch(&llm, &[]).await;
    let repo = BareRepo::new();
    let session = [("x-openclaw-session-key", "chat-123")];
    let first = chat(
        &app,
        &json!({"model": "openclaw:doc-writer", "stream": true,
                "messages": [{"role": "user", "content": format!("Document {}", repo.file_url())}]}),
        &session,
    )
    .await;
    let first_id = first.headers()["x-openclaw-task-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let first_text = content_of(&chunks(first).await);
    let branch = format!("openclaw/{first_id}");
    assert_eq!(repo.new_commits(&branch).len(), 1);

    let second = chat(
        &app,
        &json!({"model": "openclaw:doc-writer", "stream": true,
                "messages": [{"role": "user", "content": format!("Document {}", repo.file_url())},
                             {"role": "assistant", "content": first_text},
                             {"role": "user", "content": "now also document the CLI"}]}),
        &session,
    )
    .await;
    let second_id = second.headers()["x-openclaw-task-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_id, first_id);
    let text = content_of(&chunks(second).await);
    assert!(text.contains(&format!("on branch {branch}")), "{text}");
    assert_eq!(
        repo.new_commits(&branch).len(),
        2,
        "the follow-up is a second commit on the branch"
    );
    assert!(
        repo.file(&branch, "docs/usage.md").is_some()
            && repo.file(&branch, "docs/cli.md").is_some()
    );
    let status = app.status(&TaskId::parse(&second_id).unwrap()).await;
    assert_eq!(status["push_branch"], branch);
    // The follow-up's model call carried the earlier turns and knew it was continuing.
    let last = llm.requests().last().unwrap().clone();
    let messages = last["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        &roles[..4],
        ["system", "user", "assistant", "user"],
        "{roles:?}"
    );
    assert_eq!(message_text(&messages[3]), "now also document the CLI");
    assert!(message_text(&messages[0]).contains("earlier work"));
}

#[tokio::test]
async fn a_disconnect_does_not_cancel_unless_asked() {
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("write_file", json!({"path": "a.md", "content": "a"}))
            .delayed(Duration::from_millis(1500)),
        Reply::text("Wrote a.md"),
    ])
    .await;
    let app = app_with_local_dispatch(&llm, &[]).await;
    let repo = BareRepo::new();
    let body = json!({"model": "openclaw:doc-writer", "stream": true, "repo": repo.file_url(),
                      "messages": [{"role": "user", "content": "Write a.md"}]});
    for (cancel, expected) in [(false, "completed"), (true, "canceled")] {
        let headers: &[(&str, &str)] = if cancel {
            &[("x-openclaw-cancel-on-disconnect", "true")]
        } else {
            &[]
        };
        let r = chat(&app, &body, headers).await;
        let id = TaskId::parse(r.headers()["x-openclaw-task-id"].to_str().unwrap()).unwrap();
        let mut body_stream = r.bytes_stream();
        within(10, "the first chunk", body_stream.next())
            .await
            .unwrap()
            .unwrap();
        openclaw_tests::flow::wait_for_event(&app, &id, "started").await;
        drop(body_stream);
        let events = events_until_end(&app, &id).await;
        assert_eq!(
            events.last().unwrap().kind.name(),
            expected,
            "cancel_on_disconnect={cancel}"
        );
    }
}

#[tokio::test]
async fn the_original_bridge_contract() {
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("write_file", json!({"path": "a.md", "content": "a"}))
            .delayed(Duration::from_millis(800)),
        Reply::text("Wrote a.md"),
    ])
    .await;
    let app = app_with_local_dispatch(&llm, &[("OPENCLAW_STILL_WORKING_SECS", "0.3")]).await;
    let repo = BareRepo::new();

    let status: Value = app.get("/status").await.json().await.unwrap();
    assert_eq!(status["status"], "running");
    assert!(status["uptime"].is_u64());
    assert!(
        time::OffsetDateTime::parse(
            status["lastActivity"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );

    let r = app.post_json("/message", &json!({"msg": "x"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":"Missing required field: message"}"#
    );

    let r = app
        .post_json(
            "/message",
            &json!({"message": format!("Write a.md in {}", repo.file_url())}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    let raw = within(60, "the /message stream", r.text()).await.unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    let mut content = String::new();
    for block in raw.split_terminator("\n\n") {
        let data = block
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("only data frames: {block:?}"));
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "{data}");
        assert_eq!(data, v.to_string(), "compact JSON, as the original sends");
        content.push_str(v["content"].as_str().unwrap());
    }
    assert!(content.contains("still working"), "{content}");
    assert!(
        content.contains("Wrote a.md") && content.contains("Done: commit"),
        "{content}"
    );
    let after: Value = app.get("/status").await.json().await.unwrap();
    assert!(after["lastActivity"].as_str() >= status["lastActivity"].as_str());

    // A message naming no repo: an error frame, then [DONE].
    let r = app
        .post_json("/message", &json!({"message": "Document something"}))
        .await;
    let raw = r.text().await.unwrap();
    let blocks: Vec<&str> = raw.split_terminator("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{raw}");
    assert!(blocks[0].starts_with(r#"data: {"error":""#), "{raw}");
    assert_eq!(blocks[1], "data: [DONE]");
}

/// A bridge with local dispatch that has run one doc task to its end on a fresh repository.
async fn one_task_done() -> (ScriptedLlm, TestApp, BareRepo, TaskId) {
    let llm = ScriptedLlm::turns(doc_script()).await;
    let app = app_with_local_dispatch(&llm, &[]).await;
    let repo = BareRepo::new();
    let first = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    events_until_end(&app, &first).await;
    (llm, app, repo, first)
}

#[tokio::test]
async fn replay_runs_the_stored_task_again_as_a_linked_task() {
    let (_llm, app, repo, first) = one_task_done().await;
    let r = app
        .post_json(&format!("/v1/tasks/{first}/replay"), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["replay_of"], first.to_string());
    let second = TaskId::parse(body["id"].as_str().unwrap()).unwrap();
    let events = events_until_end(&app, &second).await;
    assert_eq!(events.last().unwrap().kind.name(), "completed");
    let status = app.status(&second).await;
    assert_eq!(status["replay_of"], first.to_string());
    assert_eq!(repo.new_commits(&format!("openclaw/{second}")).len(), 1);
    let r = app
        .post_json(&format!("/v1/tasks/{}/replay", TaskId::new()), &json!({}))
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn republishing_a_stored_task_with_a_plain_nats_client_runs_it_again() {
    let (_llm, app, repo, first) = one_task_done().await;

    // What an operator does with the nats CLI: `nats stream view`/`get` to find the message,
    // then `nats pub` its body again on the same subject with a new message id.
    let stored =
        openclaw_tests::flow::republish_newest(&app, "doc-writer", "operator-rerun-1").await;
    assert_eq!(
        stored.headers.get(names::TASK_ID_HEADER).unwrap().as_str(),
        first.to_string()
    );

    let replay = openclaw_tests::eventually(60, "a replay task to complete", || async {
        let list: Value = app.get("/v1/tasks").await.json().await.ok()?;
        list["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["replay_of"] == first.to_string() && t["status"] == "completed")
            .cloned()
    })
    .await;
    let id = replay["id"].as_str().unwrap();
    assert_ne!(id, first.to_string());
    assert_eq!(repo.new_commits(&format!("openclaw/{id}")).len(), 1);
    assert_eq!(
        app.status(&first).await["status"],
        "completed",
        "the original is untouched"
    );
}

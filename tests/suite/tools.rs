//! The agent's tools on a generated repository of 30,000 tracked files plus ignored ones: once
//! through the toolbox itself, once end to end (a git repository, the worker, a scripted model
//! searching for every needle).

use openclaw_common::agents::AgentCatalog;
use openclaw_common::event::EventKind;
use openclaw_common::ids::AgentName;
use openclaw_tests::flow::{app_without_dispatch, work_task};
use openclaw_tests::generated::{listed_files, write_tree};
use openclaw_tests::git::{BareRepo, git};
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_worker::secrets::Secrets;
use openclaw_worker::tools::Toolbox;
use openclaw_worker::tools::output::MAX_RESULT_BYTES;
use serde_json::json;

const TRACKED: usize = 30_000;

fn toolbox(root: &std::path::Path) -> (Toolbox, tempfile::TempDir) {
    let catalog = AgentCatalog::built_in();
    let profile = catalog
        .get(&AgentName::parse("doc-writer").unwrap())
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let tools = Toolbox::new(root, scratch.path(), profile, Secrets::new([])).unwrap();
    (tools, scratch)
}

#[tokio::test]
async fn search_and_listing_stay_right_and_bounded_on_thirty_thousand_files() {
    let repo = tempfile::tempdir().unwrap();
    let needles = tokio::task::spawn_blocking({
        let root = repo.path().to_owned();
        move || write_tree(&root, TRACKED, 3_000)
    })
    .await
    .unwrap();
    let (tools, _scratch) = toolbox(repo.path());
    let mut results = Vec::new();
    for (needle, file) in &needles.0 {
        let out = tools
            .call(
                "search",
                &json!({"pattern": needle, "literal": true}).to_string(),
            )
            .await
            .unwrap();
        let first = out.lines().next().unwrap();
        assert!(first.starts_with(&format!("{file}:")), "{needle}: {out}");
        assert!(
            out.contains("\n(1 matches in 1 files)"),
            "{needle}: ignored copies not found: {out}"
        );
        results.push(out);
    }
    // One match in the 5 MB line: a short line around it; the ignored copy not searched.
    let out = tools
        .call("search", r#"{"pattern":"MINIFIED_NEEDLE"}"#)
        .await
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out:.500}");
    assert_eq!(
        lines[1..],
        ["(1 matches in 1 files)", "(1 binary files skipped)"]
    );
    assert!(lines[0].starts_with("assets/app.min.js:1: …") && lines[0].len() < 300);
    results.push(out.clone());
    // The binary is skipped and said so; the link out is not followed.
    let out = tools
        .call("search", r#"{"pattern":"BINARY_NEEDLE|root:"}"#)
        .await
        .unwrap();
    assert!(
        out.contains("no matches") && out.contains("(1 binary files skipped)"),
        "{out}"
    );
    // A pattern in every file: the answer is capped, the totals true.
    let out = tools
        .call("search", r#"{"pattern":"pub fn f\\d+"}"#)
        .await
        .unwrap();
    assert!(
        out.contains(&format!(
            "… {} more matches in {} more files ({TRACKED} matches in {TRACKED} files in all; narrow with path or glob)",
            TRACKED - 50,
            TRACKED - 50
        )),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
    results.push(out);
    let listed = tools.call("list_files", "{}").await.unwrap();
    assert!(
        listed.ends_with(&format!(
            "({} in all; list a subdirectory or use glob)",
            listed_files(TRACKED)
        )),
        "{}",
        &listed[listed.len().saturating_sub(200)..]
    );
    assert!(
        !listed.contains("node_modules")
            && !listed.contains("target/")
            && !listed.contains("outside")
    );
    results.push(listed);
    for out in &results {
        assert!(out.len() <= MAX_RESULT_BYTES, "{} bytes", out.len());
    }
}

#[tokio::test]
async fn the_worker_finds_every_needle_of_a_thirty_thousand_file_repository() {
    let repo = BareRepo::new();
    // The tree, committed and pushed as a project's history would hold it.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().to_owned();
    let url = repo.file_url();
    let needles = tokio::task::spawn_blocking(move || {
        git(&root, &["clone", "-q", &url, "."]);
        let needles = write_tree(&root, TRACKED, 3_000);
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-qm", "A large tree"]);
        git(&root, &["push", "-q", "origin", "HEAD:main"]);
        needles
    })
    .await
    .unwrap();
    let mut replies: Vec<Reply> = needles
        .0
        .iter()
        .map(|(needle, _)| Reply::tool("search", json!({"pattern": needle, "literal": true})))
        .collect();
    replies.push(Reply::text("Found them all"));
    let llm = ScriptedLlm::queue(replies).await;
    let app = app_without_dispatch(&[]).await;
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Find the needles"}))
        .await;
    let (_worker, events) = work_task(&app, &llm, &id, &[]).await;
    let outputs: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolResult {
                output, ok: true, ..
            } => Some(output.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(outputs.len(), 5, "{outputs:?}");
    for ((needle, file), out) in needles.0.iter().zip(&outputs) {
        assert!(out.starts_with(&format!("{file}:")), "{needle}: {out}");
    }
}

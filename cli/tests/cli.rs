//! The `openclaw` binary against a real bridge over a real nats-server. The worker's part is
//! played by the test, writing events and status as a worker does, so each test controls
//! exactly when the task moves.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use openclaw_common::event::{EventKind, TaskEvent};
use openclaw_common::ids::TaskId;
use openclaw_common::lifecycle::Update;
use openclaw_common::status::TaskState;
use openclaw_tests::app::TestApp;
use openclaw_tests::{eventually, within};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "cli-test-token";

async fn app() -> TestApp {
    TestApp::builder().token(TOKEN).spawn().await
}

/// `openclaw` with the bridge's URL and token in its environment.
fn openclaw(app: &TestApp, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_openclaw"));
    cmd.args(args)
        .env("OPENCLAW_URL", &app.base)
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn output(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    output_with(app, args, None).await
}

/// [`output`] with one variable of the command's environment set to another value.
async fn output_with(
    app: &TestApp,
    args: &[&str],
    var: Option<(&str, &str)>,
) -> (i32, String, String) {
    let mut cmd = openclaw(app, args);
    if let Some((k, v)) = var {
        cmd.env(k, v);
    }
    let out = within(60, "openclaw to finish", cmd.output())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a worker does for a task that succeeds: started, some text, committed, pushed, completed.
async fn play_worker(app: &TestApp, id: TaskId, from_step: usize) {
    let stores = app.stores();
    let running = app
        .set_record(&id, |s| {
            s.status = TaskState::Running;
            s.attempts = 1;
        })
        .await;
    let mut w = stores.events.writer(running.queued_event(), 1);
    let steps = [
        EventKind::Started {
            worker_id: "w-1".into(),
        },
        EventKind::Message {
            delta: "Writing the guide.\n".into(),
        },
        EventKind::ToolCall {
            call_id: "c1".into(),
            name: "write_file".into(),
            arguments: r#"{"path":"docs/guide.md"}"#.into(),
        },
        EventKind::LlmUsage {
            model: "m".into(),
            prompt_tokens: 100,
            completion_tokens: 20,
            latency_ms: 5,
            cost_usd: Some(0.0021),
            cached_tokens: None,
        },
        EventKind::Committed {
            sha: "0123456789abcdef".into(),
            files: vec!["docs/guide.md".into()],
            checkpoint: false,
        },
        EventKind::Pushed {
            remote: "r".into(),
            branch: format!("openclaw/{id}"),
            sha: "0123456789abcdef".into(),
        },
        EventKind::Completed {
            summary: "Wrote the guide".into(),
            commit: Some("0123456789abcdef".into()),
            branch: Some(format!("openclaw/{id}")),
            usage: Some(openclaw_common::status::Usage {
                model: Some("m".into()),
                model_calls: 1,
                input_tokens: 100,
                output_tokens: 20,
                cost_usd: Some(0.0021),
                worker_seconds: 1.5,
                compute_cost_usd: None,
            }),
            pull_request: Some(openclaw_common::forge::PullRequestRef {
                url: "https://github.com/octo-org/docs/pull/7".into(),
                number: 7,
                draft: false,
            }),
        },
    ];
    for step in steps.into_iter().skip(from_step) {
        w.publish(step).await.unwrap();
    }
    stores
        .status
        .update(&id, |s| {
            s.status = TaskState::Completed;
            s.commit = Some("0123456789abcdef".into());
            Update::Write(())
        })
        .await
        .unwrap();
}

async fn newest_task(app: &TestApp) -> TaskId {
    eventually(20, "the task to be submitted", || async {
        let list: Value = app.get("/v1/tasks?limit=1").await.json().await.ok()?;
        TaskId::parse(list["tasks"][0]["id"].as_str()?).ok()
    })
    .await
}

/// `openclaw [flags] submit` of a guide, its task worked by [`play_worker`]: the task and the
/// command's output.
async fn submit_played(app: &TestApp, flags: &[&str]) -> (TaskId, std::process::Output) {
    let mut args = flags.to_vec();
    args.extend([
        "submit",
        "--repo",
        "https://example.com/o/r.git",
        "--prompt",
        "Write a guide",
    ]);
    let child = openclaw(app, &args).stdout(Stdio::piped()).spawn().unwrap();
    let id = newest_task(app).await;
    play_worker(app, id, 0).await;
    let out = within(30, "openclaw submit", child.wait_with_output())
        .await
        .unwrap();
    (id, out)
}

#[tokio::test]
async fn submit_follows_the_task_and_json_output_parses() {
    let app = app().await;
    let (id, out) = submit_played(&app, &["--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let accepted: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(accepted["id"], id.to_string());
    assert_eq!(accepted["status"], "queued");
    let events: Vec<TaskEvent> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap().kind.name(), "completed");
}

#[tokio::test]
async fn submit_shows_progress_for_people_and_fails_with_the_task() {
    let app = app().await;
    let (_, out) = submit_played(&app, &[]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "queued",
        "started",
        "│ Writing the guide.",
        "tool       write_file docs/guide.md",
        "100+20 tokens",
        "committed  0123456789",
        "pushed",
        "completed  commit 0123456789 on openclaw/",
        "1 model call, 100 in / 20 out tokens, $0.0021",
        "pull request #7 https://github.com/octo-org/docs/pull/7",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // A task that fails makes the command fail.
    let child = openclaw(
        &app,
        &[
            "submit",
            "--repo",
            "https://example.com/o/r.git",
            "--prompt",
            "p",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let id = eventually(20, "a second task", || async {
        let list: Value = app.get("/v1/tasks?limit=2").await.json().await.ok()?;
        let ids: Vec<&str> = list["tasks"]
            .as_array()?
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        (ids.len() == 2).then(|| TaskId::parse(ids[0]).unwrap())
    })
    .await;
    app.stores()
        .events
        .writer(app.queued_event(&id).await, 1)
        .publish(EventKind::Failed {
            reason: "push rejected".into(),
            retryable: false,
        })
        .await
        .unwrap();
    let out = within(30, "openclaw submit", child.wait_with_output())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("failed     push rejected")
    );
}

#[tokio::test]
async fn logs_follow_resumes_after_the_bridge_restarts_mid_stream() {
    let mut app = app().await;
    let id = app.submit_example().await;
    let mut w = app.stores().events.writer(app.queued_event(&id).await, 1);
    w.publish(EventKind::Started {
        worker_id: "w".into(),
    })
    .await
    .unwrap();

    let mut child = openclaw(&app, &["--json", "logs", &id.to_string(), "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            within(20, "an event line", lines.next_line())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    app.restart_bridge().await;
    // Events written while the bridge was away and after it came back arrive once each.
    play_worker(&app, id, 1).await;
    while let Some(line) = within(30, "the rest of the events", lines.next_line())
        .await
        .unwrap()
    {
        seen.push(line);
    }
    let status = within(10, "openclaw logs", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    let seqs: Vec<u64> = seen
        .iter()
        .map(|l| serde_json::from_str::<TaskEvent>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "no gap, no repeat");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("reconnecting"), "{stderr}");
}

#[tokio::test]
async fn status_list_cancel_replay_and_logs_without_follow() {
    let app = app().await;
    let id = app.submit_example().await;
    let id_s = id.to_string();

    let (code, out, _) = output(&app, &["--json", "status", &id_s]).await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "queued"
    );
    let (code, out, _) = output(&app, &["status", &id_s]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&id_s)
            && out.contains("queued")
            && out.contains("https://example.com/o/r.git"),
        "{out}"
    );

    let (code, out, _) = output(&app, &["--json", "cancel", &id_s]).await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "canceled"
    );

    let (code, out, _) = output(&app, &["--json", "logs", &id_s]).await;
    assert_eq!(code, 1, "a canceled task is not a success");
    let kinds: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["queued", "canceled"]);

    let (code, out, _) = output(&app, &["--json", "replay", &id_s, "--no-follow"]).await;
    assert_eq!(code, 0);
    let replay: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(replay["replay_of"], id_s);

    let (code, out, _) = output(&app, &["--json", "list", "--limit", "5"]).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(list["tasks"][0]["id"], replay["id"]);
    let (code, out, _) = output(&app, &["--json", "list", "--status", "canceled"]).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(list["tasks"][0]["id"], id_s);

    // Logs of a running task without --follow show what is stored and return.
    let other = app.submit_example().await;
    let (code, out, _) = output(&app, &["--json", "logs", &other.to_string()]).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
}

#[tokio::test]
async fn errors_are_readable_and_fail_the_command() {
    let app = app().await;
    let (code, _stdout, stderr) =
        output_with(&app, &["list"], Some(("OPENCLAW_GATEWAY_TOKEN", "wrong"))).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bearer token") && stderr.contains("401"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong"), "the token is not echoed");

    let (code, _, stderr) = output(&app, &["status", &TaskId::new().to_string()]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no task"), "{stderr}");

    let (code, _stdout, stderr) = output_with(
        &app,
        &["list"],
        Some(("OPENCLAW_URL", "http://127.0.0.1:9")),
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot reach the bridge"), "{stderr}");

    // host:port alone is taken as http://host:port; anything else says how to write it.
    let hostport = app.base.trim_start_matches("http://").to_owned();
    let (code, _stdout, stderr) =
        output_with(&app, &["--json", "list"], Some(("OPENCLAW_URL", &hostport))).await;
    assert_eq!(code, 0, "{stderr}");
    let (code, _stdout, stderr) =
        output_with(&app, &["list"], Some(("OPENCLAW_URL", "ftp://bridge:8080"))).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("http://host:port"), "{stderr}");
    assert!(!stderr.contains("relative URL"), "{stderr}");
}

#[tokio::test]
async fn status_and_list_show_why_a_task_waits_or_failed() {
    let app = app().await;
    let waiting = app.submit_example().await;
    let failed = app.submit_example().await;
    // What a dispatcher and a worker record.
    for (id, change) in [
        (
            waiting,
            "no node for the worker pod: 0/3 nodes are available",
        ),
        (failed, "git: not found: repository not found"),
    ] {
        app.set_record(&id, |s| {
            if id == waiting {
                s.waiting_reason = Some(change.to_owned());
            } else {
                s.status = TaskState::Failed;
                s.error = Some(change.to_owned());
            }
        })
        .await;
    }
    let (code, out, _) = output(&app, &["list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("no node for the worker pod"), "{out}");
    assert!(out.contains("repository not found"), "{out}");
    let (_, out, _) = output(&app, &["status", &waiting.to_string()]).await;
    assert!(out.contains("waiting no node for the worker pod"), "{out}");
}

#[tokio::test]
async fn diff_prints_the_stored_patch_and_short_ids_name_one_task() {
    let app = app().await;
    let body = serde_json::json!({"repo": "https://example.com/o/r.git", "prompt": "p"});
    let first = app.submit(&body).await;
    let second = app.submit(&body).await;
    let patch = "diff --git a/docs/a.md b/docs/a.md\n+# A\n";
    app.stores().events.put_diff(&second, patch).await.unwrap();

    // The random tail names the task; the time-ordered head the two share does not.
    let full = second.to_string();
    let tail = &full[full.len() - 8..];
    let (code, stdout, stderr) = output(&app, &["diff", tail]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, patch);
    let (code, stdout, _) = output(&app, &["status", tail]).await;
    assert_eq!(code, 0);
    assert!(stdout.starts_with(&full), "{stdout}");
    let shared: String = first
        .to_string()
        .chars()
        .zip(full.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    assert!(
        shared.len() >= 4,
        "UUIDv7 ids of one second share their head"
    );
    let (code, _, stderr) = output(&app, &["status", &shared[..shared.len().min(8)]]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("names 2 tasks"), "{stderr}");
    let (code, _, stderr) = output(&app, &["status", "ffff0000"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no task among"), "{stderr}");

    // A task without pushed work says so.
    let (code, _, stderr) = output(&app, &["diff", &first.to_string()]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("has pushed no work yet"), "{stderr}");
}

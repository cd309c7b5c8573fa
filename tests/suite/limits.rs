//! Every limit counts what it says: open connections and header time on the bridge's
//! listener, tool calls per answer, bytes per tool argument and per event.

use openclaw_common::event::EventKind;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::message_text;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use serde_json::{Value, json};

use crate::security::run_agent;
use openclaw_tests::flow::{app_without_dispatch, assert_completed};

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
        .filter(|m| message_text(m).contains("at most 4 tool calls"))
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
    assert_completed(&events);
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

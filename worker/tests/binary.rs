//! The `openclaw-worker` binary as an operator meets it: `--help` and `--version` answer
//! without starting, bad configuration exits 2, logged as JSON off a terminal and left in
//! the termination log for its dispatcher.

use std::process::Command;

fn worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_openclaw-worker"))
}

#[test]
fn help_and_version_answer_without_starting() {
    let out = worker()
        .arg("--help")
        .env("NATS_URL", "nats://127.0.0.1:1")
        .output()
        .expect("run openclaw-worker");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Usage: openclaw-worker") && help.contains("Exit codes"),
        "{help}"
    );
    let out = worker().arg("-V").output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("openclaw-worker {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_configuration_is_logged_as_json_and_left_for_the_dispatcher() {
    let dir = tempfile::tempdir().expect("temp dir");
    let termination_log = dir.path().join("termination-log");
    let out = worker()
        .env_remove("OPENCLAW_LOG_FORMAT")
        .env("NATS_USER", "worker-doc-writer")
        .env_remove("NATS_PASSWORD")
        .env("OPENCLAW_TERMINATION_LOG", &termination_log)
        .output()
        .expect("run openclaw-worker");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.lines().next().expect("a line"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    assert_eq!(line["level"], "ERROR");
    let message = line["message"].as_str().expect("message");
    assert!(message.contains("NATS_PASSWORD"), "{line}");
    let left = std::fs::read_to_string(&termination_log).expect("termination log written");
    assert!(
        left.starts_with("invalid configuration:") && left.contains("NATS_PASSWORD"),
        "{left}"
    );
}

#[test]
fn an_unreachable_nats_is_named_with_what_to_check() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let termination_log = dir.path().join("termination-log");
    let out = worker()
        .env(
            "NATS_URL",
            format!("nats://worker:s3cret-pw@127.0.0.1:{port}"),
        )
        .env("OPENCLAW_TERMINATION_LOG", &termination_log)
        .env("OPENCLAW_LOG_FORMAT", "text")
        .output()
        .expect("run openclaw-worker");
    assert_eq!(out.status.code(), Some(1));
    let left = std::fs::read_to_string(&termination_log).expect("termination log written");
    assert!(
        left.contains(&format!("nats://127.0.0.1:{port}")) && left.contains("check NATS_URL"),
        "{left}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !left.contains("s3cret-pw") && !stderr.contains("s3cret-pw"),
        "{stderr}"
    );
}

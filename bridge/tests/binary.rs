//! The `openclaw-bridge` binary as an operator meets it: `--help` and `--version` answer
//! without starting anything, bad configuration exits 2 with a JSON log line naming it.

use std::process::Command;

fn bridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_openclaw-bridge"))
}

#[test]
fn help_and_version_answer_without_binding_a_port() {
    // The port it would listen on stays free: it never starts.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let out = bridge()
        .arg("--help")
        .env("OPENCLAW_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPENCLAW_DISPATCH", "none")
        .output()
        .expect("run openclaw-bridge");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Usage: openclaw-bridge") && help.contains("Configuration"),
        "{help}"
    );
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is still free");

    let out = bridge().arg("--version").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("openclaw-bridge {}", env!("CARGO_PKG_VERSION"))
    );
    let out = bridge().arg("--bogus").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_configuration_is_a_json_log_line_off_a_terminal() {
    let out = bridge()
        .env_remove("OPENCLAW_LOG_FORMAT")
        .env("OPENCLAW_LISTEN", "not-an-address")
        .output()
        .expect("run openclaw-bridge");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.lines().next().expect("a line"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("OPENCLAW_LISTEN")),
        "{line}"
    );
    assert!(!stderr.contains('\u{1b}'), "no ANSI colours: {stderr}");
}

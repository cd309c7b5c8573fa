//! Running workers from tests: the environment they need, and processes to start and kill.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;

/// The API key the scripted model expects; tests check it never leaks.
pub const TEST_LLM_KEY: &str = "sk-test-llm-key-0f9e8d";

/// Worker settings for tests: fast retries and redeliveries, local and loopback repos allowed,
/// git credentials bound to loopback (where the test git servers listen).
pub fn worker_env(nats_url: &str, llm_url: &str) -> HashMap<String, String> {
    [
        ("NATS_URL", nats_url),
        ("LITELLM_BASE_URL", llm_url),
        ("LITELLM_API_KEY", TEST_LLM_KEY),
        ("LITELLM_MODEL_NAME", "test-model"),
        ("LITELLM_RETRY_BASE_SECS", "0.05"),
        ("LITELLM_MAX_RETRY_DELAY_SECS", "2"),
        ("LITELLM_MAX_RETRIES", "2"),
        ("OPENCLAW_ALLOW_FILE_REPOS", "true"),
        ("OPENCLAW_ALLOW_HTTP_REPOS", "true"),
        ("OPENCLAW_ALLOW_PRIVATE_REPOS", "true"),
        // The test git servers (HTTP and ssh) listen on loopback.
        ("OPENCLAW_GIT_CREDENTIAL_HOSTS", "127.0.0.1"),
        ("OPENCLAW_FETCH_WAIT_SECS", "3"),
        ("OPENCLAW_NAK_DELAY_SECS", "0.2"),
        (
            "RUST_LOG",
            "debug,async_nats=info,hyper=info,reqwest=info,h2=info",
        ),
        // Readable logs for the assertions that search them (the default off a terminal is
        // JSON; the suite checks that too).
        ("OPENCLAW_LOG_FORMAT", "text"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A worker process started by a test; its stderr (the log) goes to a file.
pub struct WorkerProcess {
    pub child: tokio::process::Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    /// The copy of the binary a worker under another user runs (removed with it).
    _bin_copy: Option<tempfile::TempDir>,
}

impl WorkerProcess {
    pub fn start(bin: &str, env: &HashMap<String, String>) -> Self {
        Self::start_as(bin, env, None)
    }

    /// [`WorkerProcess::start`] under the user and group id `uid` (a non-root worker, as in a
    /// pod), when given; the log file stays the test's.
    pub fn start_as(bin: &str, env: &HashMap<String, String>, uid: Option<u32>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("worker.log");
        let (mut command, bin_copy) = match uid {
            None => (tokio::process::Command::new(bin), None),
            Some(id) => {
                // Another user may not reach the binary where the checkout put it (a clone in
                // a private directory, as `mktemp -d` makes): it runs a copy from a directory
                // anyone may enter.
                let (copy_dir, copy) = world_readable_copy(bin);
                let mut command = tokio::process::Command::new(copy);
                command.uid(id).gid(id);
                (command, Some(copy_dir))
            }
        };
        let child = command
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start the worker");
        Self {
            child,
            log,
            _dir: dir,
            _bin_copy: bin_copy,
        }
    }

    /// Waits for the exit code (bounded).
    pub async fn wait(&mut self) -> Option<i32> {
        crate::within(60, "the worker to exit", self.child.wait())
            .await
            .expect("worker wait")
            .code()
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("worker is running");
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A copy of `bin` that any user may run, in a directory of its own (mode 0755).
fn world_readable_copy(bin: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("openclaw-worker-bin-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.path().join("openclaw-worker");
    std::fs::copy(bin, &copy).expect("copy the worker binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, copy)
}

//! `local` dispatch: the bridge starts `openclaw-worker` child processes on this machine,
//! bounded by `OPENCLAW_MAX_WORKERS`, and reaps them: the [`Launcher`] of local dispatch.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use futures_util::FutureExt;
use openclaw_common::config::PROCESS_ENV_VARS;
use openclaw_common::ids::AgentName;
use tokio::task::JoinSet;

use super::feedback::{NATS_UNAVAILABLE_EXIT_CODE, StartOutcome, exited_at_start};
use super::{Fleet, Launcher, StartFailure};
use crate::config::BridgeConfig;

/// Starts `openclaw-worker` processes on this machine and reaps them.
pub struct LocalLauncher {
    config: std::sync::Arc<BridgeConfig>,
    /// Children running per agent.
    running: HashMap<AgentName, usize>,
    /// The children's exit waits; each yields its agent, pid, exit code and the words it left
    /// in its termination log.
    children: JoinSet<(AgentName, Option<u32>, Option<i32>, String)>,
    /// Children that ended since the last observation.
    ended: Vec<(AgentName, StartOutcome)>,
    /// Pids of running children, to pass SIGTERM on at shutdown.
    pids: Vec<u32>,
    /// Where children leave their termination messages (`OPENCLAW_TERMINATION_LOG`).
    termination_logs: Option<tempfile::TempDir>,
    /// Numbers the termination logs.
    started: u64,
}

/// The exit code local dispatch asks its workers to use when no task was waiting, to tell an
/// idle start (3) from a settled task (0) and a failure (anything else).
const NO_TASK_EXIT_CODE: i32 = 3;

impl LocalLauncher {
    pub fn new(config: std::sync::Arc<BridgeConfig>) -> Self {
        let termination_logs = tempfile::Builder::new()
            .prefix("openclaw-worker-exits-")
            .tempdir()
            .map_err(|e| tracing::warn!(error = %e, "no directory for worker termination messages"))
            .ok();
        Self {
            config,
            running: HashMap::new(),
            children: JoinSet::new(),
            ended: Vec::new(),
            pids: Vec::new(),
            termination_logs,
            started: 0,
        }
    }

    fn reaped(&mut self, agent: AgentName, code: Option<i32>, words: String) {
        if let Some(n) = self.running.get_mut(&agent) {
            *n = n.saturating_sub(1);
        }
        let outcome = match code {
            Some(0) => StartOutcome::TookTask,
            Some(NO_TASK_EXIT_CODE) => StartOutcome::NoTask,
            other => {
                let how = match other {
                    Some(c) => format!("exit code {c}"),
                    None => "killed by a signal".to_owned(),
                };
                let reason = exited_at_start(&agent, &words, &how);
                if other == Some(NATS_UNAVAILABLE_EXIT_CODE) {
                    StartOutcome::NatsUnavailable(reason)
                } else {
                    StartOutcome::Failed(reason)
                }
            }
        };
        self.ended.push((agent, outcome));
    }

    /// Starts one worker process; with `fetch_wait`, one that waits that long for its task.
    fn spawn(
        &mut self,
        agent: &AgentName,
        fetch_wait: Option<Duration>,
    ) -> Result<String, StartFailure> {
        let cfg = &self.config;
        self.started += 1;
        let termination_log = self
            .termination_logs
            .as_ref()
            .map(|d| d.path().join(format!("{}.log", self.started)));
        let mut cmd = tokio::process::Command::new(&cfg.local.worker_bin);
        // An explicit environment: the process basics of the bridge's own, then the worker's
        // settings by name. Nothing else of the bridge's reaches a worker.
        cmd.env_clear()
            .envs(
                PROCESS_ENV_VARS
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
            )
            .envs(cfg.local.worker_env.iter().map(|(k, v)| (k, v)))
            .env("NATS_URL", &cfg.nats.url)
            .env("OPENCLAW_AGENT", agent.as_str())
            .env("OPENCLAW_NO_TASK_EXIT_CODE", NO_TASK_EXIT_CODE.to_string())
            .envs(
                termination_log
                    .iter()
                    .map(|p| ("OPENCLAW_TERMINATION_LOG", p.as_os_str())),
            )
            .envs(fetch_wait.map(|w| ("OPENCLAW_FETCH_WAIT_SECS", w.as_secs().to_string())))
            .stdin(Stdio::null())
            // Read, passed on to the bridge's own stderr line by line, and its tail kept: the
            // reason of a worker that died before it could write its termination message.
            .stderr(Stdio::piped())
            // A bridge that goes away without its graceful shutdown (which passes SIGTERM on and
            // waits) takes its children along: none may outlive it holding its stdout.
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| StartFailure {
            label: "spawn",
            reason: format!(
                "cannot start the worker program {}: {e}",
                cfg.local.worker_bin.display()
            ),
        })?;
        let pid = child.id();
        if let Some(pid) = pid {
            self.pids.push(pid);
        }
        *self.running.entry(agent.clone()).or_default() += 1;
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(stderr_tail(s, secret_values(&cfg.local.worker_env))));
        let owner = agent.clone();
        self.children.spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code());
            let mut words = match &termination_log {
                Some(p) => {
                    let words = tokio::fs::read_to_string(p).await.unwrap_or_default();
                    let _ = tokio::fs::remove_file(p).await;
                    words
                }
                None => String::new(),
            };
            let tail = match stderr {
                Some(t) => t.await.unwrap_or_default(),
                None => String::new(),
            };
            if words.trim().is_empty() {
                words = tail;
            }
            (owner, pid, code, words)
        });
        Ok(pid.map_or_else(|| "a worker process".to_owned(), |p| format!("pid {p}")))
    }
}

impl Launcher for LocalLauncher {
    async fn observe(&mut self) -> Result<Fleet, String> {
        // Children that ended meanwhile, without waiting.
        while let Some(Some(done)) = self.children.join_next().now_or_never() {
            if let Ok((agent, pid, code, words)) = done {
                self.pids.retain(|p| Some(*p) != pid);
                self.reaped(agent, code, words);
            }
        }
        Ok(Fleet {
            running: self.running.clone(),
            ended: std::mem::take(&mut self.ended),
            blocked: None,
        })
    }

    async fn launch(
        &mut self,
        agent: &AgentName,
        fetch_wait: Option<Duration>,
    ) -> Result<String, StartFailure> {
        self.spawn(agent, fetch_wait)
    }

    async fn changed(&mut self) {
        match self.children.join_next().await {
            Some(Ok((agent, pid, code, words))) => {
                self.pids.retain(|p| Some(*p) != pid);
                self.reaped(agent, code, words);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "a worker's exit wait failed"),
            None => std::future::pending().await,
        }
    }

    /// Passes SIGTERM on to running children (they checkpoint and hand their task back) and
    /// waits for them, bounded.
    async fn stop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        for pid in &self.pids {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let wait = async { while self.children.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(15), wait)
            .await
            .is_err()
        {
            tracing::warn!("workers did not stop in time");
        }
    }
}

/// Lines of a worker's stderr kept for its reason, and their most bytes.
const TAIL_LINES: usize = 3;
const TAIL_BYTES: usize = 600;

/// The values of the worker settings that are credentials (by name), to take out of a tail.
fn secret_values(worker_env: &[(String, String)]) -> Vec<String> {
    worker_env
        .iter()
        .filter(|(k, v)| {
            v.len() >= 8
                && ["KEY", "TOKEN", "PASSWORD", "SECRET"]
                    .iter()
                    .any(|w| k.contains(w))
        })
        .map(|(_, v)| v.clone())
        .collect()
}

/// Passes a worker's stderr on to the bridge's, line by line, and returns its last non-empty
/// lines (bounded, credentials taken out): what a worker that died before writing its
/// termination message (a wrapper script, a missing library, a panic) last said.
async fn stderr_tail(stderr: tokio::process::ChildStderr, secrets: Vec<String>) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES + 1);
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{line}");
        if !line.trim().is_empty() {
            tail.push_back(line);
            if tail.len() > TAIL_LINES {
                tail.pop_front();
            }
        }
    }
    let mut text = Vec::from(tail).join(" / ");
    for secret in &secrets {
        text = text.replace(secret.as_str(), "[redacted]");
    }
    if text.len() > TAIL_BYTES {
        let mut start = text.len() - TAIL_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = format!("…{}", &text[start..]);
    }
    text
}

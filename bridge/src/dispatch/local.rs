//! `local` dispatch: the bridge starts `openclaw-worker` child processes on this machine,
//! bounded by `OPENCLAW_MAX_WORKERS`, and reaps them.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use openclaw_common::config::PROCESS_ENV_VARS;
use openclaw_common::ids::AgentName;
use openclaw_common::store::Stores;
use tokio::task::JoinSet;

use super::feedback::{Feedback, NATS_UNAVAILABLE_EXIT_CODE, StartOutcome, exited_at_start};
use super::{DispatchLease, Observed, OrphanClock, consumer_backlog, workers_to_start};
use crate::dispatch::DispatchContext;

/// Starts `openclaw-worker` processes on this machine while tasks wait.
pub struct LocalDispatcher {
    state: DispatchContext,
    /// Children running per agent.
    running: HashMap<AgentName, usize>,
    /// When workers were last started for orphaned tasks.
    orphans: OrphanClock,
    /// The children's exit waits; each yields its agent, pid, exit code and the words it left
    /// in its termination log.
    children: JoinSet<(AgentName, Option<u32>, Option<i32>, String)>,
    /// Pids of running children, to pass SIGTERM on at shutdown.
    pids: Vec<u32>,
    /// Start backoff and what the waiting tasks were told.
    feedback: Feedback,
    /// Where children leave their termination messages (`OPENCLAW_TERMINATION_LOG`).
    termination_logs: Option<tempfile::TempDir>,
    /// Numbers the termination logs.
    started: u64,
}

/// The exit code local dispatch asks its workers to use when no task was waiting, to tell an
/// idle start (3) from a settled task (0) and a failure (anything else).
const NO_TASK_EXIT_CODE: i32 = 3;

impl LocalDispatcher {
    pub fn new(state: DispatchContext) -> Self {
        let orphans = OrphanClock::new(state.config.nats.ack_wait);
        let feedback = Feedback::new(&state);
        let termination_logs = tempfile::Builder::new()
            .prefix("openclaw-worker-exits-")
            .tempdir()
            .map_err(|e| tracing::warn!(error = %e, "no directory for worker termination messages"))
            .ok();
        Self {
            state,
            running: HashMap::new(),
            orphans,
            children: JoinSet::new(),
            pids: Vec::new(),
            feedback,
            termination_logs,
            started: 0,
        }
    }

    pub async fn run(mut self) {
        let poll = self.state.config.local.poll_interval;
        let shutdown = self.state.shutdown.clone();
        let wakeup = self.state.dispatch_wakeup.clone();
        let mut lease = DispatchLease::new(self.state.config.instance_id.clone(), poll);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wakeup.notified() => {},
                () = tokio::time::sleep(poll) => {},
                Some(done) = self.children.join_next(), if !self.children.is_empty() => {
                    if let Ok((agent, pid, code, words)) = done {
                        self.pids.retain(|p| Some(*p) != pid);
                        self.reaped(agent, code, words);
                    }
                }
            }
            let Some(stores) = self.state.stores.get().cloned() else {
                continue;
            };
            if !lease.hold(&stores).await {
                continue;
            }
            if let Err(e) = self.reconcile(&stores).await {
                tracing::warn!(error = %e, "dispatch: cannot read the consumers");
            }
        }
        if let Some(stores) = self.state.stores.get() {
            lease.release(stores).await;
        }
        self.stop_children().await;
    }

    fn reaped(&mut self, agent: AgentName, code: Option<i32>, words: String) {
        if let Some(n) = self.running.get_mut(&agent) {
            *n = n.saturating_sub(1);
        }
        self.state
            .metrics
            .set_workers_running(self.running.values().sum());
        let now = std::time::Instant::now();
        match code {
            Some(0) => {
                self.orphans.reset(&agent);
                self.feedback
                    .gate
                    .outcome(&agent, StartOutcome::TookTask, now);
            }
            Some(NO_TASK_EXIT_CODE) => {
                self.feedback
                    .gate
                    .outcome(&agent, StartOutcome::NoTask, now);
            }
            other => {
                let how = match other {
                    Some(c) => format!("exit code {c}"),
                    None => "killed by a signal".to_owned(),
                };
                let reason = exited_at_start(&agent, &words, &how);
                if other == Some(NATS_UNAVAILABLE_EXIT_CODE) {
                    self.feedback.nats_unavailable(&agent, reason);
                } else {
                    self.feedback.start_failed(&agent, "exited", reason);
                }
            }
        }
    }

    /// Starts workers for tasks that wait with nobody working on them.
    async fn reconcile(&mut self, stores: &Stores) -> Result<(), String> {
        let max = self.state.config.local.max_workers;
        let agents: Vec<AgentName> = self.state.config.agents.names().cloned().collect();
        for agent in agents {
            let (pending, ack_pending) = consumer_backlog(stores, &agent).await?;
            let observed = Observed {
                pending,
                ack_pending,
                running: self.running.get(&agent).copied().unwrap_or(0),
            };
            let now = std::time::Instant::now();
            let free = max
                .saturating_sub(self.running.values().sum())
                .min(self.feedback.gate.allowance(&agent, now));
            let plan = workers_to_start(observed, self.orphans.allowed(&agent), free);
            for _ in 0..plan.for_pending {
                self.spawn(&agent, None);
            }
            if plan.for_orphans {
                self.spawn(&agent, Some(self.orphans.fetch_wait()));
                self.orphans.started(&agent);
            }
            let state = self.state.clone();
            if let Err(e) = self
                .feedback
                .tell(&state, stores, &agent, pending + ack_pending)
                .await
            {
                tracing::warn!(%agent, error = %e, "cannot tell the waiting tasks why");
            }
        }
        Ok(())
    }

    /// Starts one worker; with `fetch_wait`, one that waits that long for its task (orphans).
    fn spawn(&mut self, agent: &AgentName, fetch_wait: Option<Duration>) {
        let cfg = &self.state.config;
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
        self.feedback.gate.started(agent, std::time::Instant::now());
        match cmd.spawn() {
            Ok(mut child) => {
                let pid = child.id();
                tracing::info!(%agent, ?pid, "started a worker");
                if let Some(pid) = pid {
                    self.pids.push(pid);
                }
                *self.running.entry(agent.clone()).or_default() += 1;
                self.state.metrics.worker_started(agent.as_str());
                self.state
                    .metrics
                    .set_workers_running(self.running.values().sum());
                let agent = agent.clone();
                let stderr = child
                    .stderr
                    .take()
                    .map(|s| tokio::spawn(stderr_tail(s, secret_values(&cfg.local.worker_env))));
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
                    (agent, pid, code, words)
                });
            }
            Err(e) => {
                let bin = cfg.local.worker_bin.display();
                self.feedback.start_failed(
                    agent,
                    "spawn",
                    format!("cannot start the worker program {bin}: {e}"),
                );
            }
        }
    }

    /// Passes SIGTERM on to running children (they checkpoint and hand their task back) and
    /// waits for them, bounded.
    async fn stop_children(&mut self) {
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

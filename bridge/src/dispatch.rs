//! Who starts workers. `local`: the bridge starts worker child processes for pending tasks,
//! bounded by `max_workers`; `none`: something else (KEDA's ScaledJob) does.
//!
//! The local dispatcher is a reconcile loop: for each agent it observes the consumer's
//! pending and unacknowledged tasks and its own running children, and starts the difference,
//! up to the bound. It runs on a poll interval and whenever a task is queued.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use openclaw_common::ids::AgentName;
use openclaw_common::jetstream::Stores;
use openclaw_common::names;
use tokio::task::JoinSet;

use crate::state::AppState;

/// Exit code the children use for "no task was waiting" (`OPENCLAW_NO_TASK_EXIT_CODE`).
const NO_TASK_EXIT: i32 = 3;
/// After a child found no task, wait this long before starting another for the same agent
/// (unless a task is queued meanwhile): unacknowledged tasks of a crashed worker only come
/// back after `ack_wait`, and starting a worker every poll until then would be churn.
const IDLE_COOLDOWN: Duration = Duration::from_secs(10);

/// Starts `openclaw-worker` processes on this machine while tasks wait.
pub struct LocalDispatcher {
    state: AppState,
    /// Children running per agent.
    running: HashMap<AgentName, usize>,
    /// Agents whose last child found nothing, and until when to leave them be.
    cooldown: HashMap<AgentName, Instant>,
    /// The children's exit waits; each yields its agent, pid and exit code.
    children: JoinSet<(AgentName, Option<u32>, Option<i32>)>,
    /// Pids of running children, to pass SIGTERM on at shutdown.
    pids: Vec<u32>,
}

impl LocalDispatcher {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            running: HashMap::new(),
            cooldown: HashMap::new(),
            children: JoinSet::new(),
            pids: Vec::new(),
        }
    }

    pub async fn run(mut self) {
        let poll = self.state.config.local.poll_interval;
        let shutdown = self.state.shutdown.clone();
        let wakeup = self.state.dispatch_wakeup.clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wakeup.notified() => self.cooldown.clear(),
                () = tokio::time::sleep(poll) => {},
                Some(done) = self.children.join_next(), if !self.children.is_empty() => {
                    if let Ok((agent, pid, code)) = done {
                        self.pids.retain(|p| Some(*p) != pid);
                        self.reaped(agent, code);
                    }
                }
            }
            let Some(stores) = self.state.stores.get().cloned() else {
                continue;
            };
            if let Err(e) = self.reconcile(&stores).await {
                tracing::warn!(error = %e, "dispatch: cannot read the consumers");
            }
        }
        self.stop_children().await;
    }

    fn reaped(&mut self, agent: AgentName, code: Option<i32>) {
        self.state
            .metrics
            .workers_running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(n) = self.running.get_mut(&agent) {
            *n = n.saturating_sub(1);
        }
        if code == Some(NO_TASK_EXIT) {
            self.cooldown.insert(agent, Instant::now() + IDLE_COOLDOWN);
        } else if code != Some(0) {
            tracing::warn!(%agent, ?code, "worker exited abnormally");
        }
    }

    /// Starts workers for tasks that wait with nobody working on them.
    async fn reconcile(&mut self, stores: &Stores) -> Result<(), String> {
        let max = self.state.config.local.max_workers;
        let stream = stores
            .js
            .get_stream(names::TASKS_STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let agents: Vec<AgentName> = self.state.config.agents.names().cloned().collect();
        for agent in agents {
            if self
                .cooldown
                .get(&agent)
                .is_some_and(|until| Instant::now() < *until)
            {
                continue;
            }
            let mut consumer = stream
                .get_consumer::<pull::Config>(&names::worker_consumer(&agent))
                .await
                .map_err(|e| e.to_string())?;
            let info = consumer.info().await.map_err(|e| e.to_string())?;
            let waiting = info.num_pending as usize + info.num_ack_pending;
            let busy = self.running.get(&agent).copied().unwrap_or(0);
            for _ in busy..waiting {
                if self.running.values().sum::<usize>() >= max {
                    return Ok(());
                }
                self.spawn(&agent);
            }
        }
        Ok(())
    }

    fn spawn(&mut self, agent: &AgentName) {
        let cfg = &self.state.config;
        let mut cmd = tokio::process::Command::new(&cfg.local.worker_bin);
        for secret in ["OPENCLAW_GATEWAY_TOKEN", "BRIDGE_AUTH_TOKEN"] {
            cmd.env_remove(secret);
        }
        cmd.envs(cfg.local.worker_env.iter().map(|(k, v)| (k, v)))
            .env("NATS_URL", &cfg.nats.url)
            .env("OPENCLAW_AGENT", agent.as_str())
            .env("OPENCLAW_NO_TASK_EXIT_CODE", NO_TASK_EXIT.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(false);
        match cmd.spawn() {
            Ok(mut child) => {
                let pid = child.id();
                tracing::info!(%agent, ?pid, "started a worker");
                if let Some(pid) = pid {
                    self.pids.push(pid);
                }
                *self.running.entry(agent.clone()).or_default() += 1;
                self.state.metrics.worker_started(agent.as_str());
                let agent = agent.clone();
                self.children.spawn(async move {
                    let code = child.wait().await.ok().and_then(|s| s.code());
                    (agent, pid, code)
                });
            }
            Err(e) => {
                tracing::error!(bin = %cfg.local.worker_bin.display(), error = %e, "cannot start a worker");
                self.cooldown
                    .insert(agent.clone(), Instant::now() + IDLE_COOLDOWN);
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

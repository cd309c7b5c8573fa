//! Who starts workers. `local`: the bridge starts worker child processes; `kubernetes`: it
//! creates worker Jobs; `none`: something else (KEDA's ScaledJob) does.
//!
//! One reconcile loop ([`Reconciler`]) over a [`Launcher`] — child processes (`local.rs`) or
//! Jobs (`kubernetes.rs`, built by `job.rs`) — on a poll interval, whenever a task is queued
//! and whenever the launcher sees a worker end. Each pass observes, per agent, the consumer's
//! pending (never delivered) and unacknowledged tasks and the workers running, and decides
//! with [`plan_launches`] (pure, unit-tested below with no processes and no API server).
//! **Architecture Invariant:** launchers only start, count and read workers; what to start,
//! backoff and what waiting tasks are told are decided here and in `feedback.rs`.

pub mod context;
pub mod feedback;
pub mod job;
pub mod kubernetes;
pub mod local;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use openclaw_common::ids::AgentName;
use openclaw_common::store::Stores;

pub use context::DispatchContext;
use feedback::{Feedback, StartOutcome};
pub use kubernetes::KubernetesLauncher;
pub use local::LocalLauncher;

/// What a launcher sees of the workers it started.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Workers running now, per agent.
    pub running: HashMap<AgentName, usize>,
    /// Workers that ended since the last observation, and how.
    pub ended: Vec<(AgentName, StartOutcome)>,
    /// What keeps each agent's workers from starting now (a pod no node takes, an image that
    /// cannot be pulled); `None` when the launcher cannot tell (child processes start or fail).
    pub blocked: Option<HashMap<AgentName, String>>,
}

/// A start that did not happen: `label` for the metric, `reason` for the waiting tasks.
#[derive(Debug)]
pub struct StartFailure {
    pub label: &'static str,
    pub reason: String,
}

/// Starts, counts and reads workers: the only part of dispatch that differs between child
/// processes and Kubernetes Jobs.
pub trait Launcher: Send {
    /// The workers running and what became of the others. An error is what keeps every agent's
    /// workers from starting (no API server), told to the waiting tasks.
    fn observe(&mut self) -> impl Future<Output = Result<Fleet, String>> + Send;

    /// Starts one worker of `agent`; with `fetch_wait`, one that waits that long for its task
    /// (orphans). Returns a name for the logs.
    fn launch(
        &mut self,
        agent: &AgentName,
        fetch_wait: Option<Duration>,
    ) -> impl Future<Output = Result<String, StartFailure>> + Send;

    /// Resolves when a worker ended (worth a pass at once); pending for launchers that see
    /// ends only when they observe. Cancel-safe.
    fn changed(&mut self) -> impl Future<Output = ()> + Send;

    /// At shutdown: what becomes of the running workers.
    fn stop(&mut self) -> impl Future<Output = ()> + Send;
}

/// What a dispatcher sees of one agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed {
    /// Tasks never delivered yet.
    pub pending: u64,
    /// Tasks delivered and not yet acknowledged (held by a worker, or by one that died).
    pub ack_pending: u64,
    /// Workers of this agent running now.
    pub running: usize,
}

/// Which workers to start for one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Workers for tasks never delivered, each fetching at once.
    pub for_pending: usize,
    /// One worker for orphaned tasks — unacknowledged, held by a worker that died, and
    /// redelivered only when `ack_wait` runs out. It waits up to `ack_wait` for the
    /// redelivery, so one worker covers the whole wait instead of one per poll.
    pub for_orphans: bool,
}

/// One worker per pending task not already covered by a running worker that holds no task
/// yet, plus one waiting worker for orphaned tasks when the [`OrphanClock`] allows; never more
/// than `free` (the global bound minus all running workers).
pub fn workers_to_start(o: Observed, orphans_allowed: bool, free: usize) -> Plan {
    let holding = o.running.min(o.ack_pending as usize);
    let idle = o.running - holding;
    let for_pending = (o.pending as usize).saturating_sub(idle).min(free);
    let orphans = o.ack_pending as usize - holding;
    let for_orphans = orphans > 0 && orphans_allowed && for_pending == 0 && idle == 0 && free > 0;
    Plan {
        for_pending,
        for_orphans,
    }
}

/// Only one bridge instance dispatches at a time: the holder of the `dispatch` lease in the
/// leases bucket. Others stand by and take over within the lease's time to live when the
/// holder stops renewing (a crash), or at once when it releases the lease (a shutdown).
pub struct DispatchLease {
    /// This instance, as the lease names it.
    holder: String,
    ttl: Duration,
    /// Whether the last attempt held the lease (to log changes only).
    held: bool,
}

impl DispatchLease {
    const NAME: &'static str = "dispatch";

    pub fn new(holder: String, poll: Duration) -> Self {
        Self {
            holder,
            ttl: (poll * 5).max(Duration::from_secs(15)),
            held: false,
        }
    }

    /// Takes or renews the lease; `true` when this instance may dispatch now.
    pub async fn hold(&mut self, stores: &Stores) -> bool {
        let held = match stores
            .leases
            .acquire(Self::NAME, &self.holder, self.ttl)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "dispatch lease unavailable");
                false
            }
        };
        if held != self.held {
            tracing::info!(holder = %self.holder, held, "dispatch lease changed hands");
        }
        self.held = held;
        held
    }

    /// Gives the lease up (at shutdown) so a standby instance takes over at once.
    pub async fn release(&self, stores: &Stores) {
        if self.held
            && let Err(e) = stores.leases.release(Self::NAME, &self.holder).await
        {
            tracing::warn!(error = %e, "could not release the dispatch lease");
        }
    }
}

/// One agent as a pass sees it.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub agent: AgentName,
    pub observed: Observed,
    /// Whether the [`OrphanClock`] allows a waiting worker now.
    pub orphans_allowed: bool,
    /// Starts the [`feedback::StartGate`] allows now.
    pub allowance: usize,
}

/// Which workers to start per agent in one pass: [`workers_to_start`] for each, in order,
/// with the global bound `max` shared — each agent's starts reduce what the next may start.
pub fn plan_launches(views: &[AgentView], max: usize) -> Vec<Plan> {
    let mut total: usize = views.iter().map(|v| v.observed.running).sum();
    views
        .iter()
        .map(|v| {
            let free = max.saturating_sub(total).min(v.allowance);
            let plan = workers_to_start(v.observed, v.orphans_allowed, free);
            total += plan.for_pending + usize::from(plan.for_orphans);
            plan
        })
        .collect()
}

/// The reconcile loop of a dispatcher: what a pass needs and remembers between passes.
pub struct Reconciler<L> {
    ctx: DispatchContext,
    launcher: L,
    /// Most workers running at once (`OPENCLAW_MAX_WORKERS` / `OPENCLAW_MAX_JOBS`).
    max: usize,
    poll: Duration,
    /// When waiting workers were last started for orphaned tasks.
    orphans: OrphanClock,
    /// Start backoff and what the waiting tasks were told.
    feedback: Feedback,
}

impl<L: Launcher> Reconciler<L> {
    pub fn new(ctx: DispatchContext, launcher: L, max: usize, poll: Duration) -> Self {
        Self {
            orphans: OrphanClock::new(ctx.config.nats.ack_wait),
            feedback: Feedback::new(&ctx),
            ctx,
            launcher,
            max,
            poll,
        }
    }

    /// Passes until shutdown, while this instance holds the dispatch lease; then gives the
    /// lease up and stops the launcher.
    pub async fn run(mut self) {
        let shutdown = self.ctx.shutdown.clone();
        let wakeup = self.ctx.dispatch_wakeup.clone();
        let mut lease = DispatchLease::new(self.ctx.config.instance_id.clone(), self.poll);
        loop {
            if let Some(stores) = self.ctx.stores.get().cloned()
                && lease.hold(&stores).await
                && let Err(reason) = self.pass(&stores).await
            {
                tracing::warn!(error = %reason, "dispatch: cannot start workers");
                self.blocked_everywhere(&stores, reason).await;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wakeup.notified() => {},
                () = tokio::time::sleep(self.poll) => {},
                () = self.launcher.changed() => {},
            }
        }
        if let Some(stores) = self.ctx.stores.get() {
            lease.release(stores).await;
        }
        self.launcher.stop().await;
    }

    /// One reconcile: observe, start what [`plan_launches`] says, tell the waiting tasks.
    async fn pass(&mut self, stores: &Stores) -> Result<(), String> {
        let fleet = self.launcher.observe().await?;
        let now = Instant::now();
        for (agent, outcome) in fleet.ended {
            if outcome == StartOutcome::TookTask {
                // A task it handed back (nak'd) comes back after its nak delay, not ack_wait.
                self.orphans.reset(&agent);
            }
            self.feedback.worker_ended(&agent, outcome, now);
        }
        let agents: Vec<AgentName> = self.ctx.config.agents.names().cloned().collect();
        if let Some(mut blocked) = fleet.blocked {
            for agent in &agents {
                self.feedback.gate.blocked(agent, blocked.remove(agent));
            }
        }
        let mut views = Vec::with_capacity(agents.len());
        let mut backlogs = Vec::with_capacity(agents.len());
        for agent in agents {
            let (pending, ack_pending) = stores
                .consumer_backlog(&agent)
                .await
                .map_err(|e| format!("cannot read the consumer of {agent}: {e}"))?;
            backlogs.push(pending + ack_pending);
            views.push(AgentView {
                observed: Observed {
                    pending,
                    ack_pending,
                    running: fleet.running.get(&agent).copied().unwrap_or(0),
                },
                orphans_allowed: self.orphans.allowed(&agent),
                allowance: self.feedback.gate.allowance(&agent, now),
                agent,
            });
        }
        let mut running: usize = fleet.running.values().sum();
        let plans = plan_launches(&views, self.max);
        for ((view, plan), backlog) in views.iter().zip(plans).zip(backlogs) {
            let agent = &view.agent;
            let orphan_wait = plan.for_orphans.then(|| self.orphans.fetch_wait());
            let waits = std::iter::repeat_n(None, plan.for_pending).chain(orphan_wait.map(Some));
            for fetch_wait in waits {
                self.feedback.gate.started(agent, Instant::now());
                match self.launcher.launch(agent, fetch_wait).await {
                    Ok(name) => {
                        running += 1;
                        self.ctx.metrics.worker_started(agent.as_str());
                        tracing::info!(%agent, worker = %name, "started a worker");
                    }
                    Err(failure) => {
                        self.feedback
                            .start_failed(agent, failure.label, failure.reason);
                        break;
                    }
                }
            }
            if plan.for_orphans {
                self.orphans.started(agent);
            }
            if let Err(e) = self.feedback.tell(&self.ctx, stores, agent, backlog).await {
                tracing::warn!(%agent, error = %e, "cannot tell the waiting tasks why");
            }
        }
        self.ctx.metrics.set_workers_running(running);
        Ok(())
    }

    /// Tells every agent's waiting tasks that no worker can start, and why.
    async fn blocked_everywhere(&mut self, stores: &Stores, reason: String) {
        let agents: Vec<AgentName> = self.ctx.config.agents.names().cloned().collect();
        for agent in &agents {
            self.feedback.gate.blocked(agent, Some(reason.clone()));
        }
        for agent in &agents {
            let backlog = stores
                .consumer_backlog(agent)
                .await
                .map(|(p, a)| p + a)
                .unwrap_or(0);
            if let Err(e) = self.feedback.tell(&self.ctx, stores, agent, backlog).await {
                tracing::warn!(%agent, error = %e, "cannot tell the waiting tasks why");
            }
        }
    }
}

/// Remembers when a waiting worker was last started for orphans, per agent, so that the next
/// one starts only after the previous one's wait (`ack_wait`) is over.
pub struct OrphanClock {
    interval: Duration,
    last: std::collections::HashMap<AgentName, Instant>,
}

impl OrphanClock {
    pub fn new(ack_wait: Duration) -> Self {
        Self {
            interval: ack_wait.max(Duration::from_secs(1)),
            last: Default::default(),
        }
    }

    pub fn allowed(&self, agent: &AgentName) -> bool {
        self.last
            .get(agent)
            .is_none_or(|t| t.elapsed() >= self.interval)
    }

    pub fn started(&mut self, agent: &AgentName) {
        self.last.insert(agent.clone(), Instant::now());
    }

    /// A worker of `agent` settled a task and exited: a task it handed back (nak'd for a
    /// retry) is redelivered after its nak delay, not after `ack_wait`, so the next waiting
    /// worker may start at once.
    pub fn reset(&mut self, agent: &AgentName) {
        self.last.remove(agent);
    }

    /// How long an orphan worker waits for its task: the redelivery comes within `ack_wait`.
    pub fn fetch_wait(&self) -> Duration {
        self.interval + Duration::from_secs(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(pending: u64, ack_pending: u64, running: usize) -> Observed {
        Observed {
            pending,
            ack_pending,
            running,
        }
    }

    fn pending(n: usize) -> Plan {
        Plan {
            for_pending: n,
            for_orphans: false,
        }
    }

    const ORPHAN: Plan = Plan {
        for_pending: 0,
        for_orphans: true,
    };

    #[test]
    fn one_worker_per_waiting_task_within_the_bound() {
        assert_eq!(workers_to_start(o(3, 0, 0), true, 10), pending(3));
        assert_eq!(workers_to_start(o(3, 0, 0), true, 2), pending(2));
        assert_eq!(workers_to_start(o(0, 0, 0), true, 10), pending(0));
        // Two running workers hold two tasks; the third pending task needs a worker.
        assert_eq!(workers_to_start(o(1, 2, 2), true, 10), pending(1));
        // A worker just started has not fetched yet: it covers a pending task.
        assert_eq!(workers_to_start(o(1, 0, 1), true, 10), pending(0));
    }

    #[test]
    fn orphans_get_one_waiting_worker_now_and_then() {
        // A task held by a worker that died: one waiting worker, when the clock allows.
        assert_eq!(workers_to_start(o(0, 1, 0), true, 10), ORPHAN);
        assert_eq!(workers_to_start(o(0, 1, 0), false, 10), pending(0));
        assert_eq!(workers_to_start(o(0, 1, 0), true, 0), pending(0), "bounded");
        assert_eq!(workers_to_start(o(0, 3, 1), true, 10), ORPHAN);
        assert_eq!(workers_to_start(o(0, 1, 1), true, 10), pending(0));
    }

    fn view(agent: &str, observed: Observed, allowance: usize) -> AgentView {
        AgentView {
            agent: AgentName::parse(agent).unwrap(),
            observed,
            orphans_allowed: true,
            allowance,
        }
    }

    /// `plan_launches` for a doc-writer and a devops agent, each (observed, gate allowance).
    fn two_agents(first: (Observed, usize), second: (Observed, usize), max: usize) -> Vec<Plan> {
        let views = [
            view("doc-writer", first.0, first.1),
            view("devops", second.0, second.1),
        ];
        plan_launches(&views, max)
    }

    #[test]
    fn a_pass_shares_the_global_bound_between_agents_in_order() {
        // Five slots, one taken by a worker holding a task: the first agent gets three, the
        // second the last one.
        let plans = two_agents((o(3, 1, 1), 10), (o(4, 0, 0), 10), 5);
        assert_eq!(plans, [pending(3), pending(1)]);
        // Nothing free: nothing starts, orphans included.
        let plans = two_agents((o(1, 0, 2), 10), (o(0, 1, 0), 10), 2);
        assert_eq!(plans, [pending(0), pending(0)]);
        // An orphan worker takes a slot too.
        let plans = two_agents((o(0, 1, 0), 10), (o(2, 0, 0), 10), 2);
        assert_eq!(plans, [ORPHAN, pending(1)]);
    }

    #[test]
    fn a_pass_starts_no_more_than_the_start_gate_allows() {
        // Backing off (allowance 0) or capped per minute (1): the bound is the gate's.
        let plans = two_agents((o(3, 0, 0), 0), (o(3, 0, 0), 1), 10);
        assert_eq!(plans, [pending(0), pending(1)]);
    }

    #[test]
    fn the_orphan_clock_spaces_waiting_workers_by_ack_wait() {
        let agent = AgentName::parse("doc-writer").unwrap();
        let mut clock = OrphanClock::new(Duration::from_secs(300));
        assert!(clock.allowed(&agent));
        clock.started(&agent);
        assert!(!clock.allowed(&agent));
        assert_eq!(clock.fetch_wait(), Duration::from_secs(302));
    }
}

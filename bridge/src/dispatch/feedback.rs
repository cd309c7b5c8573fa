//! Dispatch that backs off and says why. Both dispatchers report what became of the workers
//! they started (took a task, found none, failed to start — with the worker's own words), and
//! anything that keeps a worker from starting at all (a pod no node takes, an image that
//! cannot be pulled, a refused Job). [`StartGate`] turns that into when the next start may
//! happen; [`announce`] tells the tasks that wait (a `waiting` event and `waiting_reason`),
//! and fails those that waited past their queue deadline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use openclaw_common::event::EventKind;
use openclaw_common::ids::AgentName;
use openclaw_common::lifecycle::{self, BridgeEnd, Update};
use openclaw_common::status::TaskState;
use openclaw_common::store::{StoreError, Stores};

/// First pause after a start failure; doubles per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest pause after workers that could not reach NATS (or got no answer from it): the
/// workers are fine, NATS is electing a leader or coming back, and the bridge sees it recover
/// at once; a pause of minutes would only keep tasks waiting after it did.
pub const NATS_BACKOFF_CAP: Duration = Duration::from_secs(5);

/// The worker's exit code when it could not do its job for NATS trouble (`worker/src/cli.rs`).
pub const NATS_UNAVAILABLE_EXIT_CODE: i32 = 1;

/// What became of one worker start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// It took a task (whatever became of the task): workers can start.
    TookTask,
    /// It found nothing to do: says nothing about starting.
    NoTask,
    /// It ended before taking a task, or never ran; the reason in the words of whoever knows.
    Failed(String),
    /// It could not reach NATS or got no answer from it: the same, with a short pause.
    NatsUnavailable(String),
}

/// Per agent: consecutive start failures, the pause they earn, why, and recent starts.
#[derive(Debug, Default)]
struct AgentStarts {
    failures: u32,
    not_before: Option<Instant>,
    reason: Option<String>,
    recent: VecDeque<Instant>,
}

/// When workers may start, per agent: exponential backoff on consecutive start failures
/// (reset by a worker that takes a task), and a cap on starts per minute regardless.
#[derive(Debug)]
pub struct StartGate {
    agents: HashMap<AgentName, AgentStarts>,
    /// Most starts per agent in any minute (`OPENCLAW_MAX_STARTS_PER_MINUTE`).
    per_minute: usize,
}

impl StartGate {
    pub fn new(per_minute: usize) -> Self {
        Self {
            agents: HashMap::new(),
            per_minute: per_minute.max(1),
        }
    }

    /// How many workers of `agent` may start at `now`.
    pub fn allowance(&mut self, agent: &AgentName, now: Instant) -> usize {
        let a = self.agents.entry(agent.clone()).or_default();
        while a
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            a.recent.pop_front();
        }
        if a.not_before.is_some_and(|t| now < t) {
            return 0;
        }
        let room = self.per_minute.saturating_sub(a.recent.len());
        // While failing, one probe at a time.
        if a.failures > 0 { room.min(1) } else { room }
    }

    pub fn started(&mut self, agent: &AgentName, now: Instant) {
        self.agents
            .entry(agent.clone())
            .or_default()
            .recent
            .push_back(now);
    }

    pub fn outcome(&mut self, agent: &AgentName, outcome: StartOutcome, now: Instant) {
        let cap = match outcome {
            StartOutcome::NatsUnavailable(_) => NATS_BACKOFF_CAP,
            _ => MAX_BACKOFF,
        };
        let a = self.agents.entry(agent.clone()).or_default();
        match outcome {
            StartOutcome::TookTask => {
                a.failures = 0;
                a.not_before = None;
                a.reason = None;
            }
            StartOutcome::NoTask => {}
            StartOutcome::Failed(reason) | StartOutcome::NatsUnavailable(reason) => {
                a.failures += 1;
                let pause = FIRST_BACKOFF
                    .saturating_mul(1 << (a.failures - 1).min(16))
                    .min(cap);
                a.not_before = Some(now + pause);
                a.reason = Some(reason);
            }
        }
    }

    /// A condition that keeps workers from starting without a failed start to count (a pod
    /// no node takes): shown to the tasks, no backoff. `None` clears it unless a failure is
    /// what is being reported.
    pub fn blocked(&mut self, agent: &AgentName, reason: Option<String>) {
        let a = self.agents.entry(agent.clone()).or_default();
        if a.failures == 0 {
            a.reason = reason;
        }
    }

    /// Why `agent`'s tasks wait, if anything is known.
    pub fn reason(&self, agent: &AgentName) -> Option<&str> {
        self.agents.get(agent).and_then(|a| a.reason.as_deref())
    }

    /// Every agent with a reason, for `/ready`.
    pub fn reasons(&self) -> BTreeMap<String, String> {
        self.agents
            .iter()
            .filter_map(|(agent, a)| Some((agent.to_string(), a.reason.clone()?)))
            .collect()
    }

    /// The pause before the next start of `agent`, for logs.
    pub fn pause(&self, agent: &AgentName, now: Instant) -> Option<Duration> {
        self.agents
            .get(agent)?
            .not_before
            .map(|t| t.saturating_duration_since(now))
    }
}

/// A dispatcher's memory of starts and of what it told the waiting tasks.
pub struct Feedback {
    pub gate: StartGate,
    /// Per agent: the reason last announced, and the backlog then (a bigger one has tasks
    /// that were not told yet).
    announced: HashMap<AgentName, (Option<String>, u64)>,
    /// Per agent: when queue deadlines were last checked (a scan of the waiting tasks).
    deadlines_checked: HashMap<AgentName, Instant>,
    /// Where failed starts are counted (`openclaw_worker_start_failures_total`).
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// How often queue deadlines are checked, at most.
const DEADLINE_CHECK: Duration = Duration::from_secs(5);

impl Feedback {
    pub fn new(state: &crate::dispatch::DispatchContext) -> Self {
        Self {
            gate: StartGate::new(state.config.max_starts_per_minute),
            announced: HashMap::new(),
            deadlines_checked: HashMap::new(),
            metrics: state.metrics.clone(),
        }
    }

    /// A worker of `agent` did not start, or ended before taking a task: counted under the
    /// metric label `label`, and `reason` is what its waiting tasks are told while starts
    /// back off.
    pub fn start_failed(&mut self, agent: &AgentName, label: &'static str, reason: String) {
        tracing::warn!(%agent, %reason, "a worker did not start");
        self.metrics.worker_start_failed(agent.as_str(), label);
        self.gate
            .outcome(agent, StartOutcome::Failed(reason), Instant::now());
    }

    /// A worker of `agent` ended with [`NATS_UNAVAILABLE_EXIT_CODE`]: a start failure whose
    /// backoff stays short ([`NATS_BACKOFF_CAP`]).
    pub fn nats_unavailable(&mut self, agent: &AgentName, reason: String) {
        tracing::warn!(%agent, %reason, "a worker could not reach NATS");
        self.metrics
            .worker_start_failed(agent.as_str(), "nats_unavailable");
        self.gate
            .outcome(agent, StartOutcome::NatsUnavailable(reason), Instant::now());
    }

    /// A worker of `agent` ended, as `outcome` says: a failure before it took a task backs
    /// starts off (briefly for NATS trouble); one that took a task resets the backoff.
    pub fn worker_ended(&mut self, agent: &AgentName, outcome: StartOutcome, now: Instant) {
        match outcome {
            StartOutcome::Failed(reason) => self.start_failed(agent, "exited", reason),
            StartOutcome::NatsUnavailable(reason) => self.nats_unavailable(agent, reason),
            outcome => self.gate.outcome(agent, outcome, now),
        }
    }

    /// After a reconcile of `agent`, whose consumer holds `backlog` tasks: tells its waiting
    /// tasks what is in the way when that changed, enforces queue deadlines, and publishes the
    /// reasons for `/ready`.
    pub async fn tell(
        &mut self,
        state: &crate::dispatch::DispatchContext,
        stores: &Stores,
        agent: &AgentName,
        backlog: u64,
    ) -> Result<(), StoreError> {
        if let Ok(mut waiting) = state.dispatch_waiting.lock() {
            *waiting = self.gate.reasons();
        }
        let reason = self.gate.reason(agent).map(str::to_owned);
        let deadline = state
            .config
            .agents
            .get(agent)
            .and_then(|p| p.queue_timeout_secs.map(Duration::from_secs))
            .or(state.config.queue_timeout);
        let (told, told_backlog) = self.announced.get(agent).cloned().unwrap_or((None, 0));
        let check_deadlines = deadline.is_some()
            && self
                .deadlines_checked
                .get(agent)
                .is_none_or(|t| t.elapsed() >= DEADLINE_CHECK);
        let news = reason != told || (reason.is_some() && backlog > told_backlog);
        if backlog == 0 || !(news || check_deadlines) {
            self.announced.insert(agent.clone(), (told, backlog));
            return Ok(());
        }
        announce(stores, agent, reason.as_deref(), deadline).await?;
        if check_deadlines {
            self.deadlines_checked.insert(agent.clone(), Instant::now());
        }
        self.announced.insert(agent.clone(), (reason, backlog));
        Ok(())
    }
}

/// The reason given for workers of `agent` that end before taking a task: their own words
/// (the termination message they left), else how they ended.
pub fn exited_at_start(agent: &AgentName, words: &str, how: &str) -> String {
    match words.trim() {
        "" => format!("workers for {agent} exit at start ({how})"),
        words => format!("workers for {agent} exit at start: {words}"),
    }
}

/// Tells `agent`'s queued tasks why they wait (`reason`; `None`: nothing known), once per
/// change: the status's `waiting_reason` and a `waiting` event. Fails a task that has waited
/// longer than `deadline` without starting, with that reason.
pub async fn announce(
    stores: &Stores,
    agent: &AgentName,
    reason: Option<&str>,
    deadline: Option<Duration>,
) -> Result<(), StoreError> {
    let now = openclaw_common::now();
    let waiting = stores.waiting(agent).await?;
    for task in waiting {
        let waited = (now - task.created_at).unsigned_abs();
        if let Some(deadline) = deadline.filter(|d| waited > *d) {
            let why = format!(
                "not started within {}s{}",
                deadline.as_secs(),
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            );
            lifecycle::end_task(stores, &task, BridgeEnd::QueueDeadline { reason: why }).await?;
            continue;
        }
        if task.waiting_reason.as_deref() == reason {
            continue;
        }
        let (_, changed) = stores
            .status
            .update_or_create(&task, |s| {
                if s.status != TaskState::Queued || s.attempts > 0 {
                    return Update::Keep(false);
                }
                s.waiting_reason = reason.map(str::to_owned);
                Update::Write(true)
            })
            .await?;
        if let (Some(reason), true) = (reason, changed) {
            stores
                .events
                .writer(task.queued_event(), 0)
                .publish(EventKind::Waiting {
                    reason: reason.to_owned(),
                })
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentName {
        AgentName::parse("doc-writer").unwrap()
    }

    #[test]
    fn workers_that_cannot_reach_nats_back_off_briefly() {
        let mut gate = StartGate::new(100);
        let a = agent();
        let mut now = Instant::now();
        let mut pauses = Vec::new();
        for _ in 0..8 {
            gate.started(&a, now);
            let reason = "NATS is unavailable: read status: no answer within 10s";
            gate.outcome(&a, StartOutcome::NatsUnavailable(reason.into()), now);
            let pause = gate.pause(&a, now).unwrap();
            pauses.push(pause.as_secs());
            now += pause;
        }
        assert_eq!(pauses, [1, 2, 4, 5, 5, 5, 5, 5]);
        assert!(gate.reason(&a).unwrap().starts_with("NATS is unavailable"));
    }

    #[test]
    fn failures_back_off_exponentially_to_five_minutes_and_a_task_resets() {
        let mut gate = StartGate::new(100);
        let a = agent();
        let t0 = Instant::now();
        assert_eq!(gate.allowance(&a, t0), 100);
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..12 {
            gate.started(&a, now);
            gate.outcome(&a, StartOutcome::Failed("exit 2: bad config".into()), now);
            assert_eq!(gate.allowance(&a, now), 0, "paused right after a failure");
            let pause = gate.pause(&a, now).unwrap();
            pauses.push(pause.as_secs());
            now += pause;
            assert_eq!(
                gate.allowance(&a, now),
                1,
                "one probe at a time while failing"
            );
        }
        assert_eq!(&pauses[..6], &[1, 2, 4, 8, 16, 32]);
        assert_eq!(*pauses.last().unwrap(), 300);
        assert_eq!(gate.reason(&a), Some("exit 2: bad config"));
        gate.outcome(&a, StartOutcome::NoTask, now);
        assert_eq!(
            gate.reason(&a),
            Some("exit 2: bad config"),
            "no task says nothing"
        );
        gate.outcome(&a, StartOutcome::TookTask, now);
        assert_eq!(gate.reason(&a), None);
        assert!(gate.allowance(&a, now) > 1);
    }

    #[test]
    fn starts_per_minute_are_capped_regardless() {
        let mut gate = StartGate::new(3);
        let a = agent();
        let t0 = Instant::now();
        for _ in 0..3 {
            gate.started(&a, t0);
        }
        assert_eq!(gate.allowance(&a, t0 + Duration::from_secs(30)), 0);
        assert_eq!(gate.allowance(&a, t0 + Duration::from_secs(61)), 3);
    }

    #[test]
    fn a_blocking_condition_is_shown_without_backoff() {
        let mut gate = StartGate::new(10);
        let a = agent();
        gate.blocked(&a, Some("no node for the worker pod".into()));
        assert_eq!(gate.reason(&a), Some("no node for the worker pod"));
        assert_eq!(gate.allowance(&a, Instant::now()), 10);
        gate.blocked(&a, None);
        assert_eq!(gate.reason(&a), None);
    }
}

//! Who starts workers. `local`: the bridge starts worker child processes; `kubernetes`: it
//! creates worker Jobs; `none`: something else (KEDA's ScaledJob) does.
//!
//! Both dispatchers are reconcile loops over the same observation — per agent, the consumer's
//! pending (never delivered) and unacknowledged tasks, and the workers running — and the same
//! decision, [`workers_to_start`]. They run on a poll interval and whenever a task is queued.

pub mod kubernetes;
pub mod local;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use openclaw_common::ids::AgentName;
use openclaw_common::jetstream::Stores;
use openclaw_common::names;

pub use kubernetes::KubernetesDispatcher;
pub use local::LocalDispatcher;

/// A crashed worker's task stays unacknowledged until `ack_wait` runs out. One worker is
/// started for such orphans at most this often per agent: enough to pick the task up when it
/// is redelivered, without starting a worker on every poll until then.
pub const ORPHAN_INTERVAL: Duration = Duration::from_secs(10);

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

/// How many workers to start for one agent: one per pending task not already covered by a
/// running worker that holds no task yet, plus one for orphaned tasks when allowed; never
/// more than `free` (the global bound minus all running workers).
pub fn workers_to_start(o: Observed, orphans_allowed: bool, free: usize) -> usize {
    let holding = o.running.min(o.ack_pending as usize);
    let idle = o.running - holding;
    let for_pending = (o.pending as usize).saturating_sub(idle);
    let orphans = o.ack_pending as usize - holding;
    let for_orphans = usize::from(orphans > 0 && orphans_allowed && for_pending == 0);
    (for_pending + for_orphans).min(free)
}

/// Reads the consumer of `agent`: (pending, unacknowledged).
pub async fn consumer_backlog(stores: &Stores, agent: &AgentName) -> Result<(u64, u64), String> {
    let stream = stores
        .js
        .get_stream(names::TASKS_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = stream
        .get_consumer::<pull::Config>(&names::worker_consumer(agent))
        .await
        .map_err(|e| e.to_string())?;
    let info = consumer.info().await.map_err(|e| e.to_string())?;
    Ok((info.num_pending, info.num_ack_pending as u64))
}

/// Remembers when a worker was last started for orphans, per agent.
#[derive(Default)]
pub struct OrphanClock(std::collections::HashMap<AgentName, Instant>);

impl OrphanClock {
    pub fn allowed(&self, agent: &AgentName) -> bool {
        self.0
            .get(agent)
            .is_none_or(|t| t.elapsed() >= ORPHAN_INTERVAL)
    }

    /// Records the start if it was for orphans (no pending task asked for it).
    pub fn started(&mut self, agent: &AgentName, o: Observed) {
        if o.pending == 0 {
            self.0.insert(agent.clone(), Instant::now());
        }
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

    #[test]
    fn one_worker_per_waiting_task_within_the_bound() {
        assert_eq!(workers_to_start(o(3, 0, 0), true, 10), 3);
        assert_eq!(workers_to_start(o(3, 0, 0), true, 2), 2);
        assert_eq!(workers_to_start(o(0, 0, 0), true, 10), 0);
        // Two running workers hold two tasks; the third pending task needs a worker.
        assert_eq!(workers_to_start(o(1, 2, 2), true, 10), 1);
        // A worker just started has not fetched yet: it covers a pending task.
        assert_eq!(workers_to_start(o(1, 0, 1), true, 10), 0);
    }

    #[test]
    fn orphans_get_one_worker_now_and_then() {
        // A task held by a worker that died: one worker, when the clock allows.
        assert_eq!(workers_to_start(o(0, 1, 0), true, 10), 1);
        assert_eq!(workers_to_start(o(0, 1, 0), false, 10), 0);
        assert_eq!(workers_to_start(o(0, 3, 1), true, 10), 1);
        assert_eq!(workers_to_start(o(0, 1, 1), true, 10), 0);
    }
}

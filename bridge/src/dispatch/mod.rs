//! Who starts workers. `local`: the bridge starts worker child processes; `kubernetes`: it
//! creates worker Jobs; `none`: something else (KEDA's ScaledJob) does.
//!
//! Both dispatchers are reconcile loops over the same observation — per agent, the consumer's
//! pending (never delivered) and unacknowledged tasks, and the workers running — and the same
//! decision, [`workers_to_start`]. They run on a poll interval and whenever a task is queued.

pub mod context;
pub mod feedback;
pub mod kubernetes;
pub mod local;

use std::time::{Duration, Instant};

use openclaw_common::ids::AgentName;
use openclaw_common::store::Stores;

pub use context::DispatchContext;
pub use kubernetes::KubernetesDispatcher;
pub use local::LocalDispatcher;

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

/// Reads the consumer of `agent`: (pending, unacknowledged).
pub async fn consumer_backlog(stores: &Stores, agent: &AgentName) -> Result<(u64, u64), String> {
    stores
        .consumer_backlog(agent)
        .await
        .map_err(|e| e.to_string())
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

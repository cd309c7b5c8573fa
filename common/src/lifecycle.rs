//! The rules of a task's life, as functions of what the stores hold.
//!
//! **Architecture Invariant:** `lifecycle` decides, `store` persists, the processes act. How a
//! task ends — a cancel, a queue deadline, a give-up after its last delivery, its worker's end,
//! an end found in the record but not yet in the events — and how a worker claims it are
//! decided here and nowhere else. This module names no JetStream type: the stores implement
//! [`Ledger`], and the tests below run every rule against an in-memory one (as mini-redis
//! tests its `Db` without a socket), including the races ARCHITECTURE.md's invariants name.
//!
//! Two orders of writing an end, both safe because every reader merges them:
//! - the bridge decides an end in the **record** first (compare-and-set, so a concurrent claim
//!   or a second bridge makes it retry on fresh state), then writes it to the events once
//!   ([`end_task`], [`close_events`]);
//! - a worker stores its end in the **events** first (a client following the stream sees it at
//!   once), then in the record ([`record_attempt_end`]); until then [`record_end`] lets every
//!   reader of the record see the end the events hold.

use std::future::Future;

use crate::event::{EventKind, TaskEvent};
use crate::ids::TaskId;
use crate::status::{TaskState, TaskStatus, Usage};

/// What an update closure decided ([`Ledger::update`]).
pub enum Update<T> {
    /// Store the changed record and return `T`.
    Write(T),
    /// Leave the record as it is and return `T`.
    Keep(T),
}

/// What the rules need of the stores: a task's record (compare-and-set) and its events.
/// Implemented by `store::Stores` and `store::TaskStores` over JetStream.
pub trait Ledger: Sync {
    type Error: Send;

    /// The task's last event, `None` when it has none.
    fn last_event(
        &self,
        id: &TaskId,
    ) -> impl Future<Output = Result<Option<TaskEvent>, Self::Error>> + Send;

    /// Read-modify-write of the task's record, compare-and-set, retried on conflict: `change`
    /// may run more than once and sees the freshest record each time. `None` if no record.
    fn update<T: Send>(
        &self,
        id: &TaskId,
        change: impl FnMut(&mut TaskStatus) -> Update<T> + Send,
    ) -> impl Future<Output = Result<Option<(TaskStatus, T)>, Self::Error>> + Send;

    /// [`Ledger::update`] of a task that may have no record yet: `base` is what it would say.
    fn update_or_create<T: Send>(
        &self,
        base: &TaskStatus,
        change: impl FnMut(&mut TaskStatus) -> Update<T> + Send,
    ) -> impl Future<Output = Result<(TaskStatus, T), Self::Error>> + Send;

    /// Appends `end` to the task's events (its `queued` first when it has none) unless they
    /// have ended, whoever ended them; `None` then. Exactly once however many try at once.
    fn append_end(
        &self,
        record: &TaskStatus,
        end: EventKind,
    ) -> impl Future<Output = Result<Option<TaskEvent>, Self::Error>> + Send;
}

/// An end the bridge decides for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEnd {
    /// `POST /v1/tasks/{id}/cancel`: a queued task ends `canceled`; a running one is flagged
    /// and its worker stops at its next step.
    Cancel,
    /// The task waited longer than its agent's queue deadline without a worker taking it.
    QueueDeadline { reason: String },
    /// JetStream delivered it as often as it may and no worker reported an end.
    GiveUp { reason: String },
}

/// What [`end_task`] left.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The record after the decision.
    pub status: TaskStatus,
    /// Whether this call made the decision (rather than finding the task ended, an end in its
    /// events, or a state the end does not apply to): count it, log it, once.
    pub decided: bool,
}

/// The bridge's decision for `end` on record `s`; `events_end` is the task's terminal event
/// when its events have one. Pure: it runs again on fresh state after a lost race.
pub fn decide_end(
    s: &mut TaskStatus,
    end: &BridgeEnd,
    events_end: Option<&TaskEvent>,
) -> Update<bool> {
    if s.status.is_terminal() {
        return Update::Keep(false);
    }
    // A worker that stored its end in the events and has not (yet, or ever) written its record
    // ended the task all the same: that end wins over any the bridge would decide.
    if let Some(end) = events_end {
        return if record_end(s, end) {
            Update::Write(false)
        } else {
            Update::Keep(false)
        };
    }
    match end {
        BridgeEnd::Cancel => match s.status {
            TaskState::Queued => {
                s.status = TaskState::Canceled;
                s.cancel_requested = true;
                Update::Write(true)
            }
            TaskState::Running if !s.cancel_requested => {
                s.cancel_requested = true;
                Update::Write(true)
            }
            _ => Update::Keep(false),
        },
        // Only a task no worker has taken: one that started has its worker's deadline.
        BridgeEnd::QueueDeadline { reason } => {
            if s.status != TaskState::Queued || s.attempts > 0 {
                return Update::Keep(false);
            }
            s.status = TaskState::Failed;
            s.error = Some(reason.clone());
            Update::Write(true)
        }
        BridgeEnd::GiveUp { reason } => {
            s.status = TaskState::Failed;
            s.error = Some(reason.clone());
            Update::Write(true)
        }
    }
}

/// Ends a task as the bridge decides: the decision in the record first ([`decide_end`],
/// compare-and-set; `base` is the record a task with none would have), then, when the record
/// says the task ended, the end in its events once ([`close_events`]) — also when an earlier
/// try made the decision and lost its answer, so a retry completes it. A decision is logged
/// here, once.
pub async fn end_task<L: Ledger>(
    ledger: &L,
    base: &TaskStatus,
    end: BridgeEnd,
) -> Result<Ended, L::Error> {
    let events_end = ledger
        .last_event(&base.id)
        .await?
        .filter(|e| e.kind.is_terminal());
    let (status, decided) = ledger
        .update_or_create(base, |s| decide_end(s, &end, events_end.as_ref()))
        .await?;
    if decided {
        match &end {
            BridgeEnd::Cancel => {
                tracing::info!(task_id = %base.id, state = status.status.as_str(), "cancel recorded")
            }
            BridgeEnd::QueueDeadline { reason } => {
                tracing::warn!(task_id = %base.id, %reason, "task failed at its queue deadline");
            }
            BridgeEnd::GiveUp { reason } => {
                tracing::warn!(task_id = %base.id, %reason, "task abandoned")
            }
        }
    }
    if !status.status.is_terminal() {
        return Ok(Ended { status, decided });
    }
    let last = close_events(ledger, &status).await?;
    // The task's worker stored its end in the events between the read above and the decision
    // (a worker frozen past its last delivery's `ack_wait` that came back): the events were
    // first, so they win, and the record says what a client following them saw.
    if let Some(worker_end) =
        last.filter(|e| end_state(&e.kind).is_some_and(|state| state != status.status))
    {
        let adopted = ledger
            .update(&status.id, |s| {
                adopt_end(s, &worker_end);
                Update::Write(())
            })
            .await?;
        let status = adopted.map_or(status, |(s, ())| s);
        return Ok(Ended {
            status,
            decided: false,
        });
    }
    Ok(Ended { status, decided })
}

/// The task's last event, after writing the end `record` holds when its events have not
/// ended: an end the bridge decides goes to the record first, and a bridge that died before
/// the event left the events open. Whoever finds that first writes it, once.
pub async fn close_events<L: Ledger>(
    ledger: &L,
    record: &TaskStatus,
) -> Result<Option<TaskEvent>, L::Error> {
    let last = ledger.last_event(&record.id).await?;
    let Some(end) =
        end_event(record).filter(|_| !last.as_ref().is_some_and(|e| e.kind.is_terminal()))
    else {
        return Ok(last);
    };
    match ledger.append_end(record, end).await? {
        Some(written) => Ok(Some(written)),
        None => ledger.last_event(&record.id).await,
    }
}

/// Records the task's end from its terminal event `end`; false (and no change) when `end` is
/// not terminal or the record already says the task ended. A worker stores its end in the
/// events first and then here, so an event is the truth for the instant between the two
/// writes, and for good when the worker is lost in between: every reader of a record that is
/// not terminal merges the last event with this.
pub fn record_end(s: &mut TaskStatus, end: &TaskEvent) -> bool {
    if s.status.is_terminal() || !end.kind.is_terminal() {
        return false;
    }
    adopt_end(s, end);
    true
}

/// Makes the record say what terminal event `end` says, whatever it said.
fn adopt_end(s: &mut TaskStatus, end: &TaskEvent) {
    match &end.kind {
        EventKind::Completed {
            commit,
            summary,
            usage,
            pull_request,
            ..
        } => {
            s.status = TaskState::Completed;
            s.commit = commit.clone().or(s.commit.take());
            s.summary = Some(summary.clone());
            s.usage = usage.clone().or(s.usage.take());
            s.pull_request = pull_request.clone().or(s.pull_request.take());
            s.error = None;
        }
        EventKind::Failed { reason, .. } => {
            s.status = TaskState::Failed;
            s.error = Some(reason.clone());
        }
        _ => s.status = TaskState::Canceled,
    }
    s.updated_at = end.ts;
}

/// The state a terminal event ends a task in.
fn end_state(end: &EventKind) -> Option<TaskState> {
    match end {
        EventKind::Completed { .. } => Some(TaskState::Completed),
        EventKind::Canceled { .. } => Some(TaskState::Canceled),
        EventKind::Failed { retryable, .. } if !retryable => Some(TaskState::Failed),
        _ => None,
    }
}

/// The terminal event that says what the record says, when the record says the task ended;
/// [`record_end`] the other way round. For an end decided in the record whose event was never
/// written (its writer died between the two).
pub fn end_event(s: &TaskStatus) -> Option<EventKind> {
    Some(match s.status {
        TaskState::Queued | TaskState::Running => return None,
        TaskState::Completed => EventKind::Completed {
            summary: s.summary.clone().unwrap_or_default(),
            commit: s.commit.clone(),
            branch: s.repo.as_ref().map(|_| s.push_branch.to_string()),
            usage: s.usage.clone(),
            pull_request: s.pull_request.clone(),
        },
        TaskState::Failed => EventKind::Failed {
            reason: s.error.clone().unwrap_or_else(|| "failed".into()),
            retryable: false,
        },
        TaskState::Canceled => EventKind::Canceled {
            reason: if s.attempts == 0 {
                "canceled before a worker started".into()
            } else {
                "canceled".into()
            },
        },
    })
}

/// What a delivery found when it tried to claim its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The task is now `running` under this attempt.
    Claimed,
    /// It had ended already (a redelivery after a crash between the end and the ack).
    Ended(TaskState),
    /// Cancel was requested before it started.
    CancelRequested,
    /// A later delivery of the task has claimed it (this worker was silent past `ack_wait`
    /// before claiming). Even if that one handed the task back since, JetStream delivers it
    /// again: this delivery is out of date either way.
    Superseded,
}

/// Delivery `attempt`'s claim on record `s`, by worker `worker_id`: the attempt is recorded
/// in the record, which is what fences every earlier attempt off ([`record_attempt_end`]).
pub fn claim(s: &mut TaskStatus, attempt: u32, worker_id: &str) -> Update<Claim> {
    if s.status.is_terminal() {
        return Update::Keep(Claim::Ended(s.status));
    }
    if s.attempts > attempt {
        return Update::Keep(Claim::Superseded);
    }
    if s.cancel_requested {
        return Update::Keep(Claim::CancelRequested);
    }
    s.status = TaskState::Running;
    s.attempts = attempt;
    s.worker_id = Some(worker_id.to_owned());
    s.waiting_reason = None;
    Update::Write(Claim::Claimed)
}

/// How one attempt of a task ends, as its worker records it (after its event).
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptEnd {
    Completed {
        commit: Option<String>,
        summary: String,
        links: ForgeLinks,
    },
    /// Back to the queue: SIGTERM (a checkpoint pushed first) or a failure that may pass.
    HandedBack {
        reason: String,
        checkpoint: Option<String>,
    },
    Canceled,
    Failed {
        reason: String,
        checkpoint: Option<String>,
        links: ForgeLinks,
    },
}

/// Where a person finds the work on its forge: the pull request it was opened as, a compare
/// page. Empty when the remote is no configured forge's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForgeLinks {
    pub pull_request: Option<crate::forge::PullRequestRef>,
    pub compare_url: Option<String>,
}

impl ForgeLinks {
    fn record(&self, s: &mut TaskStatus) {
        s.pull_request = self.pull_request.clone().or(s.pull_request.take());
        s.compare_url = self.compare_url.clone().or(s.compare_url.take());
    }
}

/// Records attempt `attempt`'s `end` on `s`, adding `usage` (the attempt's, once) to the
/// task's totals; `Keep(false)` when a later attempt holds the task — the fence: that attempt
/// writes nothing more.
pub fn record_attempt_end(
    s: &mut TaskStatus,
    attempt: u32,
    end: &AttemptEnd,
    usage: Option<&Usage>,
) -> Update<bool> {
    if s.attempts > attempt {
        return Update::Keep(false);
    }
    match end {
        AttemptEnd::Completed {
            commit,
            summary,
            links,
        } => {
            s.status = TaskState::Completed;
            s.commit = commit.clone().or(s.commit.take());
            s.summary = Some(summary.clone());
            s.error = None;
            links.record(s);
        }
        AttemptEnd::HandedBack { reason, checkpoint } => {
            s.status = TaskState::Queued;
            s.error = Some(reason.clone());
            s.checkpoint = checkpoint.clone().or(s.checkpoint.take());
        }
        AttemptEnd::Canceled => s.status = TaskState::Canceled,
        AttemptEnd::Failed {
            reason,
            checkpoint,
            links,
        } => {
            s.status = TaskState::Failed;
            s.error = Some(reason.clone());
            s.checkpoint = checkpoint.clone().or(s.checkpoint.take());
            links.record(s);
        }
    }
    if let Some(usage) = usage {
        s.usage = Some(s.usage.take().unwrap_or_default().plus(usage));
    }
    Update::Write(true)
}

#[cfg(test)]
mod tests;

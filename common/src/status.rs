//! The latest state of a task, one record per task in the status KV bucket.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::egress::RepoUrl;
use crate::ids::{AgentName, BranchName, TaskId};
use crate::task::TaskSpec;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    Completed,
    Failed,
    Canceled,
}

impl TaskState {
    /// The name used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// A status record sums its attempts' usage (the type lives with the schema's leaves).
pub use crate::usage::Usage;

/// The status record. Also the body of `GET /v1/tasks/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub v: u32,
    pub id: TaskId,
    pub status: TaskState,
    pub agent: AgentName,
    pub repo: Option<RepoUrl>,
    pub branch: Option<BranchName>,
    pub push_branch: BranchName,
    /// Delivery attempts so far (0 while queued).
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Commit pushed by the task, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The model's final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set by `POST /v1/tasks/{id}/cancel`; a running worker stops at its next step.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Stream sequence of the task's message in the tasks stream: tells a redelivery of it
    /// from a copy republished by hand (which runs as a new task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The task this one runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<TaskId>,
    /// Worker currently (or last) holding the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// While queued: why no worker has started it (the dispatcher's latest word); cleared
    /// when a worker claims it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    /// Model calls, tokens, cost and worker time so far (summed over attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The task a worker runs for the message at stream sequence `msg_seq` (stored at `stored`)
/// carrying `spec`: the task itself, or, when the task's record names another message — a copy
/// republished by hand — a replay of it under a new id ([`TaskId::for_republished`]).
/// `known` is the task's record, or its `queued` status from its first message. The worker
/// decides with it which task it runs, and the bridge's auth callout which task's subjects
/// that worker may write: one rule, so the two agree.
pub fn task_for_message(
    spec: TaskSpec,
    known: Option<&TaskStatus>,
    msg_seq: u64,
    stored: OffsetDateTime,
) -> TaskSpec {
    match known.and_then(|k| k.seq) {
        Some(original) if original != msg_seq => {
            spec.replay_as(TaskId::for_republished(&spec.id, msg_seq, stored))
        }
        _ => spec,
    }
}

impl TaskStatus {
    /// The record of a task that has just been stored at stream sequence `seq`.
    /// The task's first event ([`crate::event::TaskEvent::queued`]).
    pub fn queued_event(&self) -> crate::event::TaskEvent {
        crate::event::TaskEvent::queued(self.id, &self.agent, self.created_at)
    }

    /// Records the task's end from its terminal event `end`; false (and no change) when `end`
    /// is not terminal or the record already says the task ended. The end is stored first in
    /// the events and then here, so an event is the truth for the instant between the two
    /// writes, and for good when a worker is lost in between.
    pub fn record_end(&mut self, end: &crate::event::TaskEvent) -> bool {
        use crate::event::EventKind;
        if self.status.is_terminal() || !end.kind.is_terminal() {
            return false;
        }
        match &end.kind {
            EventKind::Completed {
                commit,
                summary,
                usage,
                ..
            } => {
                self.status = TaskState::Completed;
                self.commit = commit.clone().or(self.commit.take());
                self.summary = Some(summary.clone());
                self.usage = usage.clone().or(self.usage.take());
                self.error = None;
            }
            EventKind::Failed { reason, .. } => {
                self.status = TaskState::Failed;
                self.error = Some(reason.clone());
            }
            _ => self.status = TaskState::Canceled,
        }
        self.updated_at = end.ts;
        true
    }

    /// The terminal event that says what this record says, when the record says the task
    /// ended; [`TaskStatus::record_end`] the other way round. For an end decided in the record
    /// whose event was never written (its writer died between the two).
    pub fn end_event(&self) -> Option<crate::event::EventKind> {
        use crate::event::EventKind;
        Some(match self.status {
            TaskState::Queued | TaskState::Running => return None,
            TaskState::Completed => EventKind::Completed {
                summary: self.summary.clone().unwrap_or_default(),
                commit: self.commit.clone(),
                branch: self.repo.as_ref().map(|_| self.push_branch.to_string()),
                usage: self.usage.clone(),
            },
            TaskState::Failed => EventKind::Failed {
                reason: self.error.clone().unwrap_or_else(|| "failed".into()),
                retryable: false,
            },
            TaskState::Canceled => EventKind::Canceled {
                reason: "canceled".into(),
            },
        })
    }

    pub fn queued(spec: &TaskSpec, seq: u64) -> Self {
        Self {
            v: crate::SCHEMA_VERSION,
            id: spec.id,
            status: TaskState::Queued,
            agent: spec.agent.clone(),
            repo: spec.repo.clone(),
            branch: spec.branch.clone(),
            push_branch: spec.push_branch.clone(),
            attempts: 0,
            created_at: spec.created_at,
            updated_at: spec.created_at,
            commit: None,
            summary: None,
            error: None,
            cancel_requested: false,
            seq: Some(seq),
            replay_of: spec.replay_of,
            worker_id: None,
            waiting_reason: None,
            usage: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_json_names() {
        for s in [
            TaskState::Queued,
            TaskState::Running,
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Canceled,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn an_ended_record_and_its_end_event_say_the_same() {
        let id = TaskId::new();
        let spec = TaskSpec {
            v: crate::SCHEMA_VERSION,
            id,
            agent: AgentName::parse("doc-writer").unwrap(),
            repo: None,
            prompt: "p".into(),
            branch: None,
            push_branch: BranchName::for_task(&id),
            model: None,
            metadata: serde_json::Map::new(),
            created_at: crate::now(),
            history: Vec::new(),
            replay_of: None,
        };
        let queued = TaskStatus::queued(&spec, 1);
        assert!(queued.end_event().is_none());
        for (state, error, summary) in [
            (TaskState::Completed, None, Some("Wrote the docs")),
            (TaskState::Failed, Some("not started within 60s"), None),
            (TaskState::Canceled, None, None),
        ] {
            let mut ended = queued.clone();
            ended.status = state;
            ended.error = error.map(str::to_owned);
            ended.summary = summary.map(str::to_owned);
            ended.commit = summary.map(|_| "0123abcd".to_owned());
            let kind = ended.end_event().expect("an end");
            assert!(kind.is_terminal(), "{kind:?}");
            let mut event = queued.queued_event();
            event.kind = kind;
            let mut recorded = queued.clone();
            assert!(recorded.record_end(&event));
            assert_eq!(
                (
                    recorded.status,
                    recorded.error,
                    recorded.summary,
                    recorded.commit
                ),
                (ended.status, ended.error, ended.summary, ended.commit)
            );
        }
    }
}

#[cfg(test)]
mod usage_tests {
    use super::Usage;

    #[test]
    fn unknown_costs_stay_unknown_and_attempts_add_up() {
        let mut a = Usage::default();
        a.call(100, 10, Some(0.01));
        a.call(200, 20, Some(0.02));
        assert_eq!(a.cost_usd.map(|c| (c * 1000.0).round()), Some(30.0));
        let mut b = Usage::default();
        b.call(50, 5, None);
        let both = a.plus(&b);
        assert_eq!(
            (both.model_calls, both.input_tokens, both.output_tokens),
            (3, 350, 35)
        );
        assert_eq!(both.cost_usd, None, "one call's cost is unknown");
        let idle = Usage {
            worker_seconds: 2.0,
            ..Usage::default()
        };
        assert_eq!(
            a.plus(&idle).cost_usd,
            a.cost_usd,
            "an attempt without calls adds no doubt"
        );
        assert!(
            a.summary()
                .contains("2 model calls, 300 in / 30 out tokens, $0.0300")
        );
    }
}

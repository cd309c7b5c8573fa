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
    /// The checkpoint an attempt that stopped early (a limit, the model's error, SIGTERM)
    /// pushed to `push_branch`: the work a retry, a follow-up or a replay starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The pull request the task's work was opened as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<crate::forge::PullRequestRef>,
    /// A forge page comparing the task's branch with its base, when the remote is a forge's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_url: Option<String>,
    /// The forge conversation the task was asked for in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::task::TaskOrigin>,
    /// Model calls, tokens, cost and worker time so far (summed over attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Who asked for the task (from its message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<crate::submitter::SubmittedBy>,
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
        crate::event::TaskEvent::queued(
            self.id,
            &self.agent,
            self.created_at,
            self.submitted_by.clone(),
        )
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
            checkpoint: None,
            pull_request: None,
            compare_url: None,
            origin: spec.origin.clone(),
            usage: None,
            submitted_by: spec.submitted_by.clone(),
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

//! The latest state of a task, one record per task in the status KV bucket.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{AgentName, BranchName, RepoUrl, TaskId};
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
}

impl TaskStatus {
    /// The record of a task that has just been stored at stream sequence `seq`.
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

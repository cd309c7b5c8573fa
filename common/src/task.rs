//! A task as stored in the tasks stream: everything a worker needs to do it, fixed at submit.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::egress::RepoUrl;
use crate::ids::{AgentName, BranchName, TaskId};
pub use crate::submitter::SubmittedBy;

/// Longest prompt a task may carry, in characters, whichever door it came in by.
pub const MAX_PROMPT_CHARS: usize = 100_000;

/// One unit of agent work. Immutable once submitted; its progress lives in events and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Schema version ([`crate::SCHEMA_VERSION`]) the record was written with.
    pub v: u32,
    pub id: TaskId,
    pub agent: AgentName,
    /// Repository to work on; `None` for agents that need no repo (they work in a scratch dir).
    pub repo: Option<RepoUrl>,
    /// What the client asked for.
    pub prompt: String,
    /// Branch to start from; `None` means the remote's default branch.
    pub branch: Option<BranchName>,
    /// Branch the result is pushed to (`openclaw/<id>` unless the client chose one).
    pub push_branch: BranchName,
    /// Model override; `None` falls back to the agent profile, then `LITELLM_MODEL_NAME`.
    pub model: Option<String>,
    /// Free-form client data, kept and shown, never interpreted.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Earlier turns of the conversation this task continues, oldest first (bounded at intake).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Turn>,
    /// The task this one runs again, when it is a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<TaskId>,
    /// What the submit said of a pull request; `None` leaves it to the agent profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestAsk>,
    /// The forge conversation the task was asked for in (a webhook's), answered there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<TaskOrigin>,
    /// Who asked for the task; `None` on a bridge without principals (and on records older
    /// than them), which only admins see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<SubmittedBy>,
}

/// Where on a forge a task was asked for: the bridge answers there, in one comment it edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOrigin {
    /// `github`.
    pub forge: String,
    /// `owner/name`.
    pub repo: String,
    /// The issue or pull request the request was made on.
    pub number: u64,
    /// Whether `number` is a pull (merge) request's rather than an issue's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pull_request: bool,
    /// The bridge's comment there, edited with the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_id: Option<u64>,
    /// Who asked (their forge login).
    pub requested_by: String,
}

/// A submit's `pull_request` field (`true`, `false` or `{draft?, title?, base?}`), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PullRequestAsk {
    /// `false` when the submit said `pull_request: false` (over a profile that opens them).
    pub open: bool,
    /// Open it as a draft even when the task completes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draft: bool,
    /// Title instead of the one made from the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Branch to merge into instead of the task's base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BranchName>,
    /// The issue the pull request closes (`Closes #N` in its body): a webhook task's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes: Option<u64>,
}

/// Who said a [`Turn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnRole {
    User,
    Assistant,
}

/// One earlier message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: TurnRole,
    pub content: String,
}

impl TaskOrigin {
    /// The conversation the task was asked for in.
    pub fn thread(&self) -> crate::forge::Thread {
        if self.pull_request {
            crate::forge::Thread::PullRequest(self.number)
        } else {
            crate::forge::Thread::Issue(self.number)
        }
    }
}

impl TaskSpec {
    /// The task's first event ([`crate::event::TaskEvent::queued`]).
    pub fn queued_event(&self) -> crate::event::TaskEvent {
        crate::event::TaskEvent::queued(
            self.id,
            &self.agent,
            self.created_at,
            self.submitted_by.clone(),
        )
    }

    /// A new task doing the same work again, linked to this one. It pushes to its own
    /// default branch unless this one named a branch of its own.
    pub fn replay(&self) -> TaskSpec {
        self.replay_as(TaskId::new())
    }

    /// [`TaskSpec::replay`] under a given id.
    pub fn replay_as(&self, id: TaskId) -> TaskSpec {
        let push_branch = if self.push_branch == BranchName::for_task(&self.id) {
            BranchName::for_task(&id)
        } else {
            self.push_branch.clone()
        };
        TaskSpec {
            id,
            push_branch,
            created_at: crate::now(),
            replay_of: Some(self.id),
            ..self.clone()
        }
    }

    pub fn to_json(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a TaskSpec always serializes")
            .into()
    }
}

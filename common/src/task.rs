//! A task as stored in the tasks stream: everything a worker needs to do it, fixed at submit.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{AgentName, BranchName, RepoUrl, TaskId};

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
}

impl TaskSpec {
    pub fn to_json(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a TaskSpec always serializes")
            .into()
    }
}

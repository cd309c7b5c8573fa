//! Conversations: a follow-up in the same chat continues on the branch of the chat's earlier
//! tasks, so "now also document the CLI" builds on the previous commit.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::egress::RepoUrl;
use crate::ids::{AgentName, BranchName, TaskId};

/// What a conversation's next task needs to continue where the last one left off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub agent: AgentName,
    pub repo: Option<RepoUrl>,
    pub push_branch: BranchName,
    pub last_task: TaskId,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A client's conversation key (OpenAI `user`, Open WebUI's chat id, `x-openclaw-session-key`),
/// hashed into a valid KV key of fixed length: any string a client sends is acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey(String);

impl SessionKey {
    pub fn from_client(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 512 {
            return None;
        }
        let hashed = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, raw.as_bytes());
        Some(Self(format!("s-{}", hashed.simple())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

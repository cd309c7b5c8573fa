//! Who asked for a task: recorded on the task, its events and its status, and read by the
//! bridge's visibility rules, quotas and metrics.

use serde::{Deserialize, Serialize};

/// Who submitted a task: the principal whose token came with the request, and the user it
/// acted for (a trusted front end's forwarded user, a forge user for a webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedBy {
    /// The principal's name in the tokens file (`admin` for the single gateway token).
    pub principal: String,
    /// The user the principal acted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The principal's team, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

impl SubmittedBy {
    /// Who a person would say asked: the user acted for, else the principal.
    pub fn who(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.principal)
    }

    /// The same owner: the same principal acting for the same user (or for none).
    pub fn same_owner(&self, other: &SubmittedBy) -> bool {
        self.principal == other.principal && self.user == other.user
    }
}

impl std::fmt::Display for SubmittedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(user) => write!(f, "{user} (via {})", self.principal),
            None => f.write_str(&self.principal),
        }
    }
}

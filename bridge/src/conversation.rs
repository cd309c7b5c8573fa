//! Chat input into a task: which agent, which repo, which branch, which earlier turns. Shared
//! by the OpenAI-compatible API and `/message`.

use openclaw_common::agents::AgentProfile;
use openclaw_common::egress::RepoUrl;
use openclaw_common::ids::{AgentName, BranchName, TaskId};
use openclaw_common::session::{Session, SessionKey};
use openclaw_common::task::{MAX_PROMPT_CHARS, TaskSpec, Turn, TurnRole};

use crate::error::ApiError;
use crate::state::AppState;

/// Most earlier turns a task carries.
const MAX_HISTORY_TURNS: usize = 20;
/// Longest earlier turn kept, in characters (the rest is cut).
const MAX_TURN_CHARS: usize = 8_000;

/// The prefix Open WebUI puts on its background prompts (titles, tags, follow-ups).
pub const BACKGROUND_PROMPT: &str = "### Task:";

/// Everything a chat request says about the task it becomes.
pub struct ChatInput {
    pub agent: AgentName,
    /// The last user message.
    pub prompt: String,
    /// Earlier turns, oldest first.
    pub history: Vec<Turn>,
    /// An explicit repo (`repo` field, top level or in `metadata`).
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub model_override: Option<String>,
    pub session: Option<SessionKey>,
    /// Who asked: the caller, and the user it acts for.
    pub submitted_by: openclaw_common::task::SubmittedBy,
}

/// The agent named by `model` (`openclaw:<agent>`, or the bare name).
pub fn agent_from_model(state: &AppState, model: &str) -> Result<AgentName, ApiError> {
    let name = model
        .strip_prefix("openclaw:")
        .or_else(|| model.strip_prefix("openclaw/"))
        .unwrap_or(model);
    let agent = AgentName::parse(name).map_err(|e| ApiError::field("model", e.to_string()))?;
    if state.config.agents.get(&agent).is_none() {
        let known: Vec<String> = state
            .config
            .agents
            .names()
            .map(|a| format!("openclaw:{a}"))
            .collect();
        return Err(ApiError::field(
            "model",
            format!("unknown model {model:?}; available: {}", known.join(", ")),
        ));
    }
    Ok(agent)
}

/// Keeps the last turns, each cut to a bounded length.
pub fn bounded_history(turns: Vec<Turn>) -> Vec<Turn> {
    let skip = turns.len().saturating_sub(MAX_HISTORY_TURNS);
    turns
        .into_iter()
        .skip(skip)
        .map(|mut t| {
            if t.content.chars().count() > MAX_TURN_CHARS {
                t.content = t.content.chars().take(MAX_TURN_CHARS).collect::<String>() + " […]";
            }
            t
        })
        .collect()
}

/// The first git URL in free text: `https://…`, `http://…`, `ssh://…`, `file://…` or
/// `user@host:path`, without trailing punctuation.
pub fn first_git_url(text: &str) -> Option<&str> {
    text.split(|c: char| {
        c.is_whitespace()
            || c == '<'
            || c == '>'
            || c == '('
            || c == ')'
            || c == '`'
            || c == '"'
            || c == '\''
    })
    .map(|w| w.trim_end_matches(['.', ',', ';', ':', '!', '?', ']', '[']))
    .find(|w| {
        let scheme = ["https://", "http://", "ssh://", "file://", "git://"]
            .iter()
            .any(|s| w.starts_with(s));
        let scp = !w.contains("://")
            && w.split_once('@')
                .is_some_and(|(u, rest)| !u.is_empty() && rest.contains(':'))
            && w.ends_with(".git");
        (scheme && w.len() > 10) || scp
    })
}

impl ChatInput {
    /// The task this input becomes, and the session record to store after it is queued.
    pub async fn into_task(
        self,
        state: &AppState,
    ) -> Result<(TaskSpec, Option<(SessionKey, Session)>), ApiError> {
        if self.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ApiError::field(
                "messages",
                format!("the message is longer than {MAX_PROMPT_CHARS} characters"),
            ));
        }
        let profile: &AgentProfile = state
            .config
            .agents
            .get(&self.agent)
            .ok_or_else(|| ApiError::field("model", format!("unknown agent {}", self.agent)))?;
        let stores = state.stores()?;
        let earlier = match &self.session {
            Some(key) => stores
                .sessions
                .get(key)
                .await?
                .filter(|s| s.agent == self.agent),
            None => None,
        };
        let policy = &state.config.repo_policy;
        let repo = match (&self.repo, first_git_url(&self.prompt)) {
            (Some(explicit), _) => Some(
                RepoUrl::parse(explicit, policy)
                    .map_err(|e| ApiError::field("repo", e.to_string()))?,
            ),
            (None, Some(found)) => Some(RepoUrl::parse(found, policy).map_err(|e| {
                ApiError::field("repo", format!("the repository in your message: {e}"))
            })?),
            (None, None) => match earlier.as_ref().and_then(|s| s.repo.clone()) {
                Some(r) => Some(r),
                None => profile
                    .default_repo
                    .as_deref()
                    .map(|r| {
                        RepoUrl::parse(r, policy).map_err(|e| {
                            ApiError::Internal(format!("default repo of {}: {e}", self.agent))
                        })
                    })
                    .transpose()?,
            },
        };
        if repo.is_none() && profile.repo_required {
            return Err(ApiError::field(
                "repo",
                format!(
                    "which repository should {} work on? Put its git URL in your message \
                     (for example https://github.com/org/repo.git), or send a \"repo\" field",
                    self.agent
                ),
            ));
        }
        let branch = self
            .branch
            .as_deref()
            .map(|b| BranchName::parse(b).map_err(|e| ApiError::field("branch", e.to_string())))
            .transpose()?;
        let id = TaskId::new();
        // A follow-up on the same repo continues on the conversation's branch.
        let push_branch = match &earlier {
            Some(s) if s.repo == repo => s.push_branch.clone(),
            _ => BranchName::for_task(&id),
        };
        let spec = TaskSpec {
            v: openclaw_common::SCHEMA_VERSION,
            id,
            agent: self.agent.clone(),
            repo: repo.clone(),
            prompt: self.prompt,
            branch,
            push_branch: push_branch.clone(),
            model: self.model_override,
            // Traces name the conversation (the user is in `submitted_by`).
            metadata: self
                .session
                .as_ref()
                .map(|k| ("session".to_owned(), k.as_str().into()))
                .into_iter()
                .collect(),
            created_at: openclaw_common::now(),
            history: bounded_history(self.history),
            replay_of: None,
            // The agent profile decides for chat tasks.
            pull_request: None,
            origin: None,
            submitted_by: Some(self.submitted_by),
        };
        let session = self.session.map(|key| {
            (
                key,
                Session {
                    agent: self.agent,
                    repo,
                    push_branch,
                    last_task: id,
                    updated_at: openclaw_common::now(),
                },
            )
        });
        Ok((spec, session))
    }
}

/// Turn role from an OpenAI role name; system and tool messages are not carried.
pub fn turn_role(role: &str) -> Option<TurnRole> {
    match role {
        "user" => Some(TurnRole::User),
        "assistant" => Some(TurnRole::Assistant),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_git_urls_in_text() {
        assert_eq!(
            first_git_url("please document https://github.com/o/r.git, thanks"),
            Some("https://github.com/o/r.git")
        );
        assert_eq!(
            first_git_url("in git@github.com:o/r.git do x"),
            Some("git@github.com:o/r.git")
        );
        assert_eq!(
            first_git_url("(see <file:///tmp/x.git>)"),
            Some("file:///tmp/x.git")
        );
        assert_eq!(first_git_url("mail me at a@b.c: thanks"), None);
        assert_eq!(first_git_url("nothing here"), None);
    }

    #[test]
    fn history_is_bounded() {
        let turns: Vec<Turn> = (0..30)
            .map(|i| Turn {
                role: TurnRole::User,
                content: format!("{i}{}", "x".repeat(if i == 29 { 9000 } else { 1 })),
            })
            .collect();
        let kept = bounded_history(turns);
        assert_eq!(kept.len(), MAX_HISTORY_TURNS);
        assert!(kept[0].content.starts_with("10"));
        assert!(kept[19].content.ends_with(" […]"));
    }
}

//! What the bridge says on the issue or pull request a task was asked for in: one comment,
//! "on it" when the task is queued, edited with the outcome when it ends.

use std::time::Duration;

use openclaw_common::forge::{CommentId, Forge, ForgeRepo};
use openclaw_common::ids::TaskId;
use openclaw_common::status::{TaskState, TaskStatus};
use openclaw_common::task::TaskOrigin;

use super::door::Door;
use super::trigger::COMMENT_MARKER;
use crate::state::AppState;

/// Ends older than this are not answered by a watcher that comes across them (a bridge that
/// starts and reads every record's last state would otherwise edit every old comment again).
const ANSWER_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The first answer: the task's id and how to follow it.
pub fn on_it(id: &TaskId) -> String {
    format!(
        "{COMMENT_MARKER}\n👀 On it: task `{id}`.\n\nThis comment will say how it went. \
         Follow it with `openclaw logs {id}`."
    )
}

/// The last answer, from the task's final record.
pub fn outcome(status: &TaskStatus) -> String {
    let id = status.id;
    let body = match status.status {
        TaskState::Completed => {
            let mut text = format!("✅ Done: task `{id}`.");
            if let Some(summary) = status.summary.as_deref().filter(|s| !s.trim().is_empty()) {
                text.push_str(&format!("\n\n{}", summary.trim()));
            }
            match (&status.pull_request, &status.commit) {
                (Some(pr), _) => text.push_str(&format!(
                    "\n\n{}ull request: {} (#{})",
                    if pr.draft { "Draft p" } else { "P" },
                    pr.url,
                    pr.number
                )),
                (None, Some(commit)) => text.push_str(&format!(
                    "\n\nCommit `{}` on branch `{}`.",
                    &commit[..commit.len().min(12)],
                    status.push_branch
                )),
                (None, None) => text.push_str("\n\nNothing needed changing."),
            }
            text
        }
        TaskState::Failed => {
            let mut text = format!(
                "❌ Task `{id}` failed: {}",
                status.error.as_deref().unwrap_or("no reason was recorded")
            );
            if let Some(pr) = &status.pull_request {
                text.push_str(&format!(
                    "\n\nIts work so far is in draft pull request {}.",
                    pr.url
                ));
            } else if status.checkpoint.is_some() {
                text.push_str(&format!(
                    "\n\nIts work so far is on branch `{}`.",
                    status.push_branch
                ));
            }
            text.push_str(
                "\n\nWhat to do: mention me again with more detail, or replay it with \
                 `openclaw replay ",
            );
            text.push_str(&format!("{id}` once the cause is fixed."));
            text
        }
        TaskState::Canceled => format!("⏹️ Task `{id}` was canceled."),
        TaskState::Queued | TaskState::Running => return on_it(&id),
    };
    format!("{COMMENT_MARKER}\n{body}")
}

/// Edits the comment of an ended task asked for on a forge with its outcome (every bridge
/// replica that sees the end does: the same text, so once or twice is alike).
pub async fn answer_end(state: AppState, status: TaskStatus) {
    let Some(origin) = &status.origin else {
        return;
    };
    let age = (openclaw_common::now() - status.updated_at).unsigned_abs();
    if age > ANSWER_WINDOW {
        return;
    }
    match origin.forge.as_str() {
        "github" => {
            if let Some(door) = &state.github {
                edit(door, origin, &status).await;
            }
        }
        "gitlab" => {
            if let Some(door) = &state.gitlab {
                edit(door, origin, &status).await;
            }
        }
        other => {
            tracing::warn!(task_id = %status.id, forge = other, "a task from an unknown forge")
        }
    }
}

async fn edit<F: Forge>(door: &Door<F>, origin: &TaskOrigin, status: &TaskStatus) {
    let Some(comment) = origin.comment_id else {
        return;
    };
    let Some((owner, name)) = origin.repo.rsplit_once('/') else {
        return;
    };
    let repo = ForgeRepo {
        owner: owner.to_owned(),
        name: name.to_owned(),
    };
    if let Err(e) = door
        .client
        .edit_comment(&repo, origin.thread(), CommentId(comment), &outcome(status))
        .await
    {
        tracing::warn!(task_id = %status.id, forge = door.name, error = %e, "cannot answer on the forge");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(state: TaskState) -> TaskStatus {
        let spec = openclaw_common::task::TaskSpec {
            v: openclaw_common::SCHEMA_VERSION,
            id: TaskId::new(),
            agent: openclaw_common::ids::AgentName::parse("doc-writer").expect("name"),
            repo: None,
            prompt: "p".into(),
            branch: None,
            push_branch: openclaw_common::ids::BranchName::parse("openclaw/x").expect("branch"),
            model: None,
            metadata: Default::default(),
            created_at: openclaw_common::now(),
            history: Vec::new(),
            replay_of: None,
            pull_request: None,
            origin: None,
            submitted_by: None,
        };
        let mut s = TaskStatus::queued(&spec, 1);
        s.status = state;
        s
    }

    #[test]
    fn every_answer_is_marked_and_says_what_became_of_the_task() {
        let mut done = ended(TaskState::Completed);
        done.summary = Some("Wrote the guide".into());
        done.pull_request = Some(openclaw_common::forge::PullRequestRef {
            url: "https://github.com/o/r/pull/3".into(),
            number: 3,
            draft: false,
        });
        let text = outcome(&done);
        assert!(text.starts_with(COMMENT_MARKER));
        assert!(text.contains("Wrote the guide") && text.contains("https://github.com/o/r/pull/3"));
        let mut failed = ended(TaskState::Failed);
        failed.error = Some("step limit of 3 reached".into());
        failed.checkpoint = Some("abc".into());
        let text = outcome(&failed);
        assert!(text.contains("step limit of 3 reached") && text.contains("openclaw/x"));
        assert!(text.contains("openclaw replay"));
        assert!(outcome(&ended(TaskState::Canceled)).contains("canceled"));
        assert!(on_it(&done.id).contains(&done.id.to_string()));
    }
}

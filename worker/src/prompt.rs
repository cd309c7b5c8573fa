//! What the model is told and what its answer becomes: the first messages of a task (the
//! profile's system prompt, where it works, the conversation so far, the request) and the
//! commit message made from its summary.

use openclaw_common::agents::AgentProfile;
use openclaw_common::task::{TaskSpec, TurnRole};

use crate::git::Checkout;
use crate::llm::ChatMessage;

/// The conversation a task starts with.
pub fn first_messages(
    spec: &TaskSpec,
    profile: &AgentProfile,
    checkout: Option<&Checkout>,
) -> Vec<ChatMessage> {
    let mut context = match (checkout, &spec.repo) {
        (Some(c), Some(repo)) => format!(
            "You are working in a checkout of {repo} on branch {} (commit {}). Paths are relative to the repository root.",
            c.branch,
            &c.sha[..c.sha.len().min(12)]
        ),
        _ => "You are working in an empty scratch directory; there is no repository.".to_owned(),
    };
    if checkout.is_some_and(|c| c.resumed) {
        context.push_str(
            " The branch already holds earlier work (an earlier request of this conversation, or an interrupted attempt of this task); it is in the checkout. Continue from there.",
        );
    }
    let mut messages = vec![ChatMessage::system(format!(
        "{}\n\n{context}",
        profile.system_prompt
    ))];
    for turn in &spec.history {
        messages.push(match turn.role {
            TurnRole::User => ChatMessage::user(turn.content.clone()),
            TurnRole::Assistant => ChatMessage::assistant(turn.content.clone()),
        });
    }
    messages.push(ChatMessage::user(spec.prompt.clone()));
    messages
}

/// First line of the model's summary as the subject, the rest as body, and the task trailer.
/// A summary with no subject worth the name ("Done.", "Task completed") gets one from the
/// `changed` files instead.
pub fn commit_message(summary: &str, spec: &TaskSpec, changed: &[String]) -> String {
    let mut lines = summary.lines().map(str::trim).skip_while(|l| l.is_empty());
    let subject: String = match lines.next() {
        Some(first) => first
            .trim_start_matches('#')
            .trim()
            .chars()
            .take(72)
            .collect(),
        None => String::new(),
    };
    let subject = if !is_generic(&subject) {
        subject
    } else if let Some(first) = changed.first() {
        match changed.len() {
            1 => format!("Update {first}"),
            n => format!(
                "Update {first} and {} other file{}",
                n - 1,
                if n == 2 { "" } else { "s" }
            ),
        }
    } else {
        format!("OpenClaw task {}", spec.id)
    };
    let body: Vec<&str> = lines.collect();
    let body = body.join("\n");
    let body = body.trim();
    let trailers = trailers(spec);
    if body.is_empty() {
        format!("{subject}\n\n{trailers}")
    } else {
        format!("{subject}\n\n{body}\n\n{trailers}")
    }
}

/// The trailers of a task's commits: the task, and who asked for it.
pub fn trailers(spec: &TaskSpec) -> String {
    let mut out = format!("OpenClaw-Task: {}\n", spec.id);
    if let Some(by) = &spec.submitted_by {
        out.push_str(&format!("OpenClaw-Requested-By: {by}\n"));
    }
    out
}

/// A subject that says nothing about the change.
fn is_generic(subject: &str) -> bool {
    let words: String = subject
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    words.is_empty()
        || [
            "done",
            "ok",
            "finished",
            "complete",
            "completed",
            "all done",
            "task done",
            "task complete",
            "task completed",
            "the task is complete",
            "the task is done",
            "i have completed the task",
            "i completed the task",
            "changes made",
            "summary",
        ]
        .contains(&words.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TaskSpec {
        openclaw_common::task::TaskSpec {
            v: openclaw_common::SCHEMA_VERSION,
            id: openclaw_common::ids::TaskId::new(),
            agent: openclaw_common::ids::AgentName::parse("doc-writer").unwrap(),
            repo: None,
            prompt: "p".into(),
            branch: None,
            push_branch: openclaw_common::ids::BranchName::parse("b").unwrap(),
            model: None,
            metadata: serde_json::Map::new(),
            created_at: openclaw_common::now(),
            history: Vec::new(),
            replay_of: None,
            pull_request: None,
            origin: None,
            submitted_by: None,
        }
    }

    #[test]
    fn a_summary_makes_the_subject_unless_it_says_nothing() {
        let spec = spec();
        let files = ["docs/USAGE.md".to_owned(), "README.md".to_owned()];
        let m = commit_message("Add a usage guide\n\nHow to run it.", &spec, &files);
        assert!(
            m.starts_with("Add a usage guide\n\nHow to run it.\n\nOpenClaw-Task: "),
            "{m}"
        );
        let m = commit_message("Done.\n\nWrote the guide.", &spec, &files);
        assert!(
            m.starts_with("Update docs/USAGE.md and 1 other file\n\nWrote the guide."),
            "{m}"
        );
        let m = commit_message("", &spec, &files[..1]);
        assert!(
            m.starts_with("Update docs/USAGE.md\n\nOpenClaw-Task: "),
            "{m}"
        );
        let m = commit_message("Task completed!", &spec, &[]);
        assert!(m.starts_with(&format!("OpenClaw task {}", spec.id)), "{m}");
    }
}

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
pub fn commit_message(summary: &str, spec: &TaskSpec) -> String {
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
    let subject = if subject.is_empty() {
        format!("OpenClaw task {}", spec.id)
    } else {
        subject
    };
    let body: Vec<&str> = lines.collect();
    let body = body.join("\n");
    let body = body.trim();
    if body.is_empty() {
        format!("{subject}\n\nOpenClaw-Task: {}\n", spec.id)
    } else {
        format!("{subject}\n\n{body}\n\nOpenClaw-Task: {}\n", spec.id)
    }
}

//! A task's events as readable text, for chat clients (the OpenAI-compatible API and the
//! original bridge's `/message`): the model's words as they stream, tool activity and progress
//! as short status lines, and a closing line with the commit and branch.

use futures_util::{Stream, StreamExt};
use openclaw_common::event::{
    EventKind, TaskEvent, describe_tool_arguments, first_line, short_sha,
};
use openclaw_common::ids::TaskId;

use crate::error::ApiError;
use crate::state::AppState;

/// One piece of a task's text.
#[derive(Debug, Clone)]
pub enum Piece {
    Text(String),
    /// The task ended; `error` is set when it did not complete.
    End {
        text: String,
        error: Option<String>,
        usage: Usage,
    },
}

/// Tokens the task's model calls used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Turns events into text. Keeps track of whether the output is at the start of a line, so a
/// status line never glues onto the model's half-written sentence.
#[derive(Default)]
pub struct Renderer {
    mid_line: bool,
    usage: Usage,
}

impl Renderer {
    pub fn render(&mut self, ev: &TaskEvent) -> Option<Piece> {
        let status = |s: String| Some(s);
        let line = match &ev.kind {
            EventKind::Queued { agent, .. } => {
                status(format!("queued for {agent} (task {})", ev.task_id))
            }
            EventKind::Waiting { reason } => status(format!("waiting: {reason}")),
            EventKind::Started { .. } if ev.attempt > 1 => {
                status(format!("started again (attempt {})", ev.attempt))
            }
            EventKind::Started { .. } => status("started".into()),
            EventKind::Cloned { sha, branch, .. } => status(format!(
                "cloned, working on {branch} from {}",
                short_sha(sha)
            )),
            EventKind::Message { delta } => {
                self.mid_line = !delta.ends_with('\n');
                return Some(Piece::Text(delta.clone()));
            }
            EventKind::ToolCall {
                name, arguments, ..
            } => status(format!("{name} {}", describe_tool_arguments(arguments))),
            EventKind::ToolResult {
                ok: false,
                name,
                output,
                ..
            } => status(format!("{name} failed: {}", first_line(output, 120))),
            EventKind::ToolResult { .. } => None,
            // A command's live output stays in the task's event stream (and the CLI); the chat
            // shows the command and how it ended.
            EventKind::Output { .. } => None,
            EventKind::NetworkRefused { target, .. } => {
                status(format!("network: {target} refused"))
            }
            EventKind::LlmUsage {
                prompt_tokens,
                completion_tokens,
                ..
            } => {
                self.usage.prompt_tokens += prompt_tokens;
                self.usage.completion_tokens += completion_tokens;
                None
            }
            EventKind::Committed {
                sha,
                files,
                checkpoint,
            } => status(format!(
                "{} {} ({} file{})",
                if *checkpoint {
                    "checkpoint"
                } else {
                    "committed"
                },
                short_sha(sha),
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            )),
            EventKind::Pushed { branch, .. } => status(format!("pushed to {branch}")),
            EventKind::Failed {
                reason,
                retryable: true,
            } => status(format!("attempt failed, retrying: {reason}")),
            EventKind::Completed {
                commit,
                branch,
                usage,
                pull_request,
                ..
            } => {
                let mut closing = match (commit, branch) {
                    (Some(c), Some(b)) => format!("Done: commit {} on branch {b}.", short_sha(c)),
                    _ => "Done.".to_owned(),
                };
                if let Some(pr) = pull_request {
                    closing.push_str(&format!(
                        " {}ull request #{}: {}",
                        if pr.draft { "Draft p" } else { "P" },
                        pr.number,
                        pr.url
                    ));
                }
                if let Some(u) = usage {
                    closing.push_str(&format!(" ({})", u.summary()));
                }
                return Some(self.end(closing, None));
            }
            EventKind::Failed { reason, .. } => {
                return Some(self.end(format!("Failed: {reason}"), Some(reason.clone())));
            }
            EventKind::Canceled { reason } => {
                return Some(self.end(
                    format!("Canceled: {reason}"),
                    Some(format!("canceled: {reason}")),
                ));
            }
        }?;
        let lead = if self.mid_line { "\n\n" } else { "" };
        self.mid_line = false;
        Some(Piece::Text(format!("{lead}_{line}_\n\n")))
    }

    fn end(&mut self, closing: String, error: Option<String>) -> Piece {
        let lead = if self.mid_line { "\n\n" } else { "" };
        self.mid_line = false;
        Piece::End {
            text: format!("{lead}**{closing}**\n"),
            error,
            usage: self.usage,
        }
    }
}

/// The task's text from its first event to its end. Stops early at bridge shutdown.
pub async fn follow(
    state: &AppState,
    id: &TaskId,
) -> Result<impl Stream<Item = Piece> + Send + 'static + use<>, ApiError> {
    let events = state.stores()?.events.follow(id).await?;
    let id = *id;
    let shutdown = state.shutdown.clone();
    let gauge = crate::metrics::StreamGauge::open(&state.metrics);
    let pieces = futures_util::stream::unfold(
        (Box::pin(events), Renderer::default(), false, gauge),
        move |(mut events, mut renderer, done, gauge)| async move {
            if done {
                return None;
            }
            loop {
                match events.next().await? {
                    Ok(ev) => {
                        if let Some(piece) = renderer.render(&ev) {
                            let end = matches!(piece, Piece::End { .. });
                            return Some((piece, (events, renderer, end, gauge)));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(task_id = %id, error = %e, "event stream broke off");
                        return None;
                    }
                }
            }
        },
    )
    .take_until(shutdown.cancelled_owned());
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_names_the_commit_branch_and_pull_request() {
        let event = |kind| TaskEvent {
            v: openclaw_common::SCHEMA_VERSION,
            task_id: TaskId::new(),
            seq: 9,
            ts: openclaw_common::now(),
            attempt: 1,
            kind,
        };
        let completed = |draft| EventKind::Completed {
            summary: "Wrote the guide".into(),
            commit: Some("0123456789abcdef".into()),
            branch: Some("openclaw/x".into()),
            usage: None,
            pull_request: Some(openclaw_common::forge::PullRequestRef {
                url: "https://github.com/o/r/pull/7".into(),
                number: 7,
                draft,
            }),
        };
        let text = |kind| match Renderer::default().render(&event(kind)) {
            Some(Piece::End { text, error, .. }) => {
                assert!(error.is_none());
                text
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text(completed(false)),
            "**Done: commit 0123456789 on branch openclaw/x. Pull request #7: https://github.com/o/r/pull/7**\n"
        );
        assert!(text(completed(true)).contains("Draft pull request #7"));
    }
}

//! Progress events of a task, in the order a task goes through them:
//! `queued → (waiting)* → started → cloned → (message | tool_call | tool_result | llm_usage)* → committed →
//! pushed → completed | failed | canceled`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::TaskId;

/// One event of one task, as stored in the events stream and sent over SSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// Schema version ([`crate::SCHEMA_VERSION`]).
    pub v: u32,
    pub task_id: TaskId,
    /// Per-task sequence, 1 for `queued`, +1 per event, no gaps. Assigned with optimistic
    /// concurrency on the task's subject, so the bridge and a worker can both write safely.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// Delivery attempt of the task this event belongs to (0 for the bridge's own events).
    pub attempt: u32,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl TaskEvent {
    /// A task's first event: the same content whoever writes it (a worker, the bridge's cancel
    /// or waiting notice) or shows it before anyone has (the status API and the SSE relay
    /// synthesize it from the task message), so it is never seen twice or renumbered.
    pub fn queued(
        task_id: TaskId,
        agent: &crate::ids::AgentName,
        created_at: OffsetDateTime,
        submitted_by: Option<crate::submitter::SubmittedBy>,
    ) -> Self {
        Self {
            v: crate::SCHEMA_VERSION,
            task_id,
            seq: 1,
            ts: created_at,
            attempt: 0,
            kind: EventKind::Queued {
                agent: agent.to_string(),
                submitted_by,
            },
        }
    }
}

/// Most bytes of one command's live output published as [`EventKind::Output`] events.
pub const LIVE_OUTPUT_BYTES: usize = 64 * 1024;

/// What happened. Serialized with a `type` tag, which is also the SSE `event:` name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Queued {
        agent: String,
        /// Who asked for the task.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        submitted_by: Option<crate::submitter::SubmittedBy>,
    },
    /// Why a queued task has not started: what keeps its workers from starting (a worker that
    /// exits at start, a pod no node takes, an image that cannot be pulled). Published when the
    /// reason changes; the first `started` ends the wait.
    Waiting {
        reason: String,
    },
    Started {
        worker_id: String,
    },
    Cloned {
        sha: String,
        branch: String,
        duration_ms: u64,
    },
    /// A piece of the model's visible answer, relayed as it streams in.
    Message {
        delta: String,
    },
    ToolCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        call_id: String,
        name: String,
        ok: bool,
        output: String,
    },
    /// Output of a running command (a setup command, a check, a `run_command`) as it comes,
    /// so a client watching sees the tests run: chunks as the pipes give them, coalesced, at
    /// most [`LIVE_OUTPUT_BYTES`] per command. The tool result holds the whole (capped).
    Output {
        call_id: String,
        text: String,
    },
    /// A command tried to reach a host its sandbox's network does not allow (through the
    /// worker's egress proxy), or the repository asked for one its profile does not let it
    /// add: what a user would allow, and why it was refused. `target` is `host:port` (or the
    /// repository's entry).
    NetworkRefused {
        call_id: String,
        target: String,
        reason: String,
    },
    LlmUsage {
        model: String,
        prompt_tokens: u64,
        completion_tokens: u64,
        latency_ms: u64,
        /// The call's price as the gateway reported it (USD); absent when it did not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        /// Prompt tokens read from the provider's prompt cache; absent when not reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cached_tokens: Option<u64>,
    },
    Committed {
        sha: String,
        files: Vec<String>,
        checkpoint: bool,
    },
    Pushed {
        remote: String,
        branch: String,
        sha: String,
    },
    Completed {
        summary: String,
        commit: Option<String>,
        branch: Option<String>,
        /// What the task used, over all its attempts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<crate::usage::Usage>,
        /// The pull request the work was opened as.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pull_request: Option<crate::forge::PullRequestRef>,
    },
    Failed {
        reason: String,
        retryable: bool,
    },
    Canceled {
        reason: String,
    },
}

impl EventKind {
    /// The `type` tag, used as the SSE event name and in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Waiting { .. } => "waiting",
            Self::Started { .. } => "started",
            Self::Cloned { .. } => "cloned",
            Self::Message { .. } => "message",
            Self::Output { .. } => "output",
            Self::NetworkRefused { .. } => "network_refused",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolResult { .. } => "tool_result",
            Self::LlmUsage { .. } => "llm_usage",
            Self::Committed { .. } => "committed",
            Self::Pushed { .. } => "pushed",
            Self::Completed { .. } => "completed",
            Self::Failed { .. } => "failed",
            Self::Canceled { .. } => "canceled",
        }
    }

    /// Whether the task ends here. A `failed` that will be retried is not the end.
    pub fn is_terminal(&self) -> bool {
        match self {
            Self::Completed { .. } | Self::Canceled { .. } => true,
            Self::Failed { retryable, .. } => !retryable,
            _ => false,
        }
    }
}

/// Longest text field of a stored event, in bytes. Whatever JSON escaping does to it (at worst
/// six bytes per byte), an event stays well under NATS's default 1 MiB `max_payload`; the model
/// still gets the full text, only the record is cut.
pub const MAX_EVENT_TEXT_BYTES: usize = 32 * 1024;
/// Most file names in a `committed` event.
pub const MAX_EVENT_FILES: usize = 200;

impl EventKind {
    /// This event with every free-text field cut to [`MAX_EVENT_TEXT_BYTES`] and the file list
    /// to [`MAX_EVENT_FILES`], each cut marked with how much was left out.
    pub fn bounded(mut self) -> Self {
        let cut = |s: &mut String| truncate_marked(s, MAX_EVENT_TEXT_BYTES);
        match &mut self {
            Self::Message { delta: text }
            | Self::ToolCall {
                arguments: text, ..
            }
            | Self::ToolResult { output: text, .. }
            | Self::Failed { reason: text, .. }
            | Self::Canceled { reason: text }
            | Self::Waiting { reason: text } => cut(text),
            Self::Completed { summary, .. } => cut(summary),
            Self::Committed { files, .. } if files.len() > MAX_EVENT_FILES => {
                let more = files.len() - MAX_EVENT_FILES;
                files.truncate(MAX_EVENT_FILES);
                files.push(format!("[… and {more} more files]"));
            }
            _ => {}
        }
        self
    }
}

/// Cuts `s` to at most `max` bytes (on a character boundary), appending a marker that says how
/// many bytes were left out.
pub fn truncate_marked(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let left_out = s.len() - end;
    s.truncate(end);
    s.push_str(&format!("[… {left_out} more bytes truncated]"));
}

/// A commit id shortened for people (its first 10 characters).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// The first line of `s`, cut to `max` characters (with `…` when cut).
pub fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    let cut: String = line.chars().take(max).collect();
    if cut.len() < line.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// What a tool call is about, for progress lines: its `path`, or `command args…`, or its
/// search `pattern`; the raw arguments (shortened) when they are not JSON.
pub fn describe_tool_arguments(raw: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) else {
        return first_line(raw, 60);
    };
    if let Some(p) = v["path"].as_str() {
        return p.to_owned();
    }
    if let Some(c) = v["command"].as_str() {
        let args: Vec<&str> = v["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        return first_line(&format!("{c} {}", args.join(" ")), 80);
    }
    if let Some(p) = v["pattern"].as_str() {
        return format!("{p:?}");
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_arguments_read_well() {
        assert_eq!(
            describe_tool_arguments(r#"{"path":"docs/a.md","content":"x"}"#),
            "docs/a.md"
        );
        assert_eq!(
            describe_tool_arguments(r#"{"command":"kubectl","args":["get","pods"]}"#),
            "kubectl get pods"
        );
        assert_eq!(
            describe_tool_arguments(r#"{"pattern":"fn main"}"#),
            "\"fn main\""
        );
        assert_eq!(describe_tool_arguments("not json"), "not json");
        assert_eq!(short_sha("0123456789abcdef"), "0123456789");
        assert_eq!(first_line("abcdef\nxyz", 3), "abc…");
    }

    #[test]
    fn events_are_bounded_with_a_marker() {
        let big = "é".repeat(MAX_EVENT_TEXT_BYTES);
        let EventKind::ToolCall { arguments, .. } = (EventKind::ToolCall {
            call_id: "c".into(),
            name: "write_file".into(),
            arguments: big.clone(),
        })
        .bounded() else {
            unreachable!()
        };
        assert!(
            arguments.len() < MAX_EVENT_TEXT_BYTES + 64,
            "{}",
            arguments.len()
        );
        assert!(arguments.ends_with(&format!(
            "[… {} more bytes truncated]",
            big.len() - MAX_EVENT_TEXT_BYTES
        )));
        let EventKind::Committed { files, .. } = (EventKind::Committed {
            sha: "s".into(),
            files: (0..1000).map(|i| i.to_string()).collect(),
            checkpoint: false,
        })
        .bounded() else {
            unreachable!()
        };
        assert_eq!(files.len(), MAX_EVENT_FILES + 1);
        assert_eq!(files.last().unwrap(), "[… and 800 more files]");
        let small = EventKind::Message { delta: "hi".into() };
        assert_eq!(small.clone().bounded(), small);
    }

    #[test]
    fn event_json_is_flat_and_tagged() {
        let ev = TaskEvent {
            v: 1,
            task_id: TaskId::new(),
            seq: 3,
            ts: crate::now(),
            attempt: 1,
            kind: EventKind::Pushed {
                remote: "origin".into(),
                branch: "b".into(),
                sha: "abc".into(),
            },
        };
        let json: serde_json::Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["type"], "pushed");
        assert_eq!(json["branch"], "b");
        assert_eq!(json["seq"], 3);
        let back: TaskEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }
}

//! Progress lines for people: elapsed time, stage, tool calls, tokens, and the final commit.

use openclaw_common::event::{
    EventKind, TaskEvent, describe_tool_arguments, first_line, short_sha,
};
use serde_json::Value;

/// Turns a task's events into lines. The model's text is shown as it streams, indented.
#[derive(Default)]
pub struct Progress {
    /// Time of the first event seen, for elapsed times.
    start: Option<time::OffsetDateTime>,
    /// Whether the model's text is mid-line (a progress line must start on a fresh one).
    mid_text: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Progress {
    pub fn line(&mut self, ev: &TaskEvent) -> String {
        let start = *self.start.get_or_insert(ev.ts);
        let elapsed = (ev.ts - start).as_seconds_f64();
        let stage = |this: &mut Self, name: &str, detail: String| {
            let lead = if this.mid_text { "\n" } else { "" };
            this.mid_text = false;
            format!("{lead}[{elapsed:7.1}s] {name:<10} {detail}\n")
        };
        match &ev.kind {
            EventKind::Message { delta } => {
                let mut out = String::new();
                if !self.mid_text {
                    out.push_str("             │ ");
                }
                out.push_str(&delta.replace('\n', "\n             │ "));
                self.mid_text = !delta.ends_with('\n');
                if delta.ends_with('\n') {
                    out.truncate(out.trim_end_matches("│ ").trim_end().len());
                    out.push('\n');
                }
                out
            }
            EventKind::Queued { agent, .. } => {
                stage(self, "queued", format!("{agent} (task {})", ev.task_id))
            }
            EventKind::Waiting { reason } => stage(self, "waiting", reason.clone()),
            EventKind::Started { worker_id } => stage(
                self,
                "started",
                format!("{worker_id} (attempt {})", ev.attempt),
            ),
            EventKind::Cloned { sha, branch, .. } => {
                stage(self, "cloned", format!("{branch} @ {}", short_sha(sha)))
            }
            EventKind::ToolCall {
                name, arguments, ..
            } => stage(
                self,
                "tool",
                format!("{name} {}", describe_tool_arguments(arguments)),
            ),
            EventKind::ToolResult {
                ok: false,
                name,
                output,
                ..
            } => stage(
                self,
                "tool error",
                format!("{name}: {}", output.lines().next().unwrap_or_default()),
            ),
            EventKind::ToolResult { .. } => String::new(),
            // A running command's output, as it comes.
            EventKind::Output { text, .. } => text.clone(),
            EventKind::NetworkRefused { target, reason, .. } => {
                stage(self, "network refused", format!("{target}: {reason}"))
            }
            EventKind::LlmUsage {
                prompt_tokens,
                completion_tokens,
                latency_ms,
                ..
            } => {
                self.prompt_tokens += prompt_tokens;
                self.completion_tokens += completion_tokens;
                stage(
                    self,
                    "model",
                    format!("{prompt_tokens}+{completion_tokens} tokens, {latency_ms} ms"),
                )
            }
            EventKind::Committed {
                sha,
                files,
                checkpoint,
            } => stage(
                self,
                if *checkpoint {
                    "checkpoint"
                } else {
                    "committed"
                },
                format!("{} ({} files)", short_sha(sha), files.len()),
            ),
            EventKind::Pushed { branch, sha, .. } => {
                stage(self, "pushed", format!("{branch} @ {}", short_sha(sha)))
            }
            EventKind::Completed {
                commit,
                branch,
                usage,
                pull_request,
                ..
            } => {
                let mut what = match (commit, branch) {
                    (Some(c), Some(b)) => format!("commit {} on {b}", short_sha(c)),
                    _ => "no changes".to_owned(),
                };
                if let Some(pr) = pull_request {
                    what.push_str(&format!(
                        " · {}pull request #{} {}",
                        if pr.draft { "draft " } else { "" },
                        pr.number,
                        pr.url
                    ));
                }
                // The task's own totals (every attempt, with cost) when the worker sent them.
                let used = match usage {
                    Some(u) => u.summary(),
                    None => format!("{} tokens", self.prompt_tokens + self.completion_tokens),
                };
                stage(
                    self,
                    "completed",
                    format!("{what} · {used} · {elapsed:.1}s"),
                )
            }
            EventKind::Failed { reason, retryable } => stage(
                self,
                if *retryable { "retrying" } else { "failed" },
                reason.clone(),
            ),
            EventKind::Canceled { reason } => stage(self, "canceled", reason.clone()),
        }
    }

    /// Ends an unfinished line of model text.
    pub fn finish(&mut self) -> &'static str {
        if std::mem::take(&mut self.mid_text) {
            "\n"
        } else {
            ""
        }
    }
}

/// `status` for people.
pub fn status_text(s: &Value) -> String {
    let mut out = format!(
        "{}  {}  agent {}  attempts {}\n  repo   {}\n  branch {}",
        s["id"].as_str().unwrap_or_default(),
        s["status"].as_str().unwrap_or_default(),
        s["agent"].as_str().unwrap_or_default(),
        s["attempts"],
        s["repo"].as_str().unwrap_or("-"),
        s["push_branch"].as_str().unwrap_or_default(),
    );
    for (label, key) in [
        ("waiting", "waiting_reason"),
        ("commit", "commit"),
        ("error", "error"),
        ("replay of", "replay_of"),
        ("compare", "compare_url"),
    ] {
        if let Some(v) = s[key].as_str() {
            out.push_str(&format!("\n  {label:<6} {v}"));
        }
    }
    if let Some(url) = s["pull_request"]["url"].as_str() {
        out.push_str(&format!(
            "\n  PR     #{} {url}{}",
            s["pull_request"]["number"],
            if s["pull_request"]["draft"] == true {
                " (draft)"
            } else {
                ""
            }
        ));
    }
    out
}

/// `list` for people: one task per line.
pub fn list_text(l: &Value) -> String {
    let tasks = l["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        return "no tasks".into();
    }
    tasks
        .iter()
        .map(|t| {
            let mut line = format!(
                "{}  {:<9}  {:<10}  {}",
                t["id"].as_str().unwrap_or_default(),
                t["status"].as_str().unwrap_or_default(),
                t["agent"].as_str().unwrap_or_default(),
                t["repo"].as_str().unwrap_or("-")
            );
            // Why it waits, or why it failed: what an operator looks for first.
            if let Some(why) = t["waiting_reason"].as_str().or(t["error"].as_str()) {
                line.push_str(&format!("\n    {}", first_line(why, 160)));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

//! The conversation the model sees, kept inside its context window. Every request resends the
//! whole history, so a task that reads many files outgrows any window; two measures, taken
//! before a request when the estimate says so (and the second also after the gateway refuses
//! a request as too long):
//!
//! 1. **Elide** (above [`ELIDE_AT`] of the window): old tool results become a one-line note
//!    saying what they were and how to get them again; the newest [`KEEP_RECENT_RESULTS`] stay.
//! 2. **Condense** (above [`CONDENSE_AT`]): the middle of the history — after the pinned start
//!    (system prompt, earlier turns, the request) and before the last [`KEEP_RECENT_TURNS`]
//!    turns — is replaced by a summary the model writes ([`Conversation::condense_range`]
//!    chooses it, the agent loop asks for the summary). The cut falls before an assistant
//!    message, so a tool call is never separated from its result.
//!
//! Token counts are estimated from the JSON size, calibrated by the gateway's own count of
//! the last request.

use std::collections::HashMap;

use crate::llm::ChatMessage;

/// Share of the window above which old tool results are elided.
pub const ELIDE_AT: f64 = 0.70;
/// Share of the window above which the middle of the history is condensed.
pub const CONDENSE_AT: f64 = 0.85;
/// Tool results never elided: the newest ones, which the model is working with.
const KEEP_RECENT_RESULTS: usize = 4;
/// Turns (an assistant message and its tool results) kept whole when condensing.
const KEEP_RECENT_TURNS: usize = 2;
/// A tool result shorter than this is left as it is (its note would not be much shorter).
const ELIDE_MIN_BYTES: usize = 400;
/// Bytes per token before any calibration: English and code run 3.5–4.5 with the usual
/// tokenizers; the low end keeps the estimate on the safe side.
const DEFAULT_BYTES_PER_TOKEN: f64 = 3.5;

#[derive(Debug)]
pub struct Conversation {
    pub messages: Vec<ChatMessage>,
    /// Messages at the start that are never elided nor condensed.
    pinned: usize,
    bytes_per_token: f64,
}

impl Conversation {
    /// `messages` as the task starts: all of them pinned.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            pinned: messages.len(),
            messages,
            bytes_per_token: DEFAULT_BYTES_PER_TOKEN,
        }
    }

    fn bytes(&self) -> usize {
        self.messages
            .iter()
            .map(|m| serde_json::to_string(m).map_or(0, |s| s.len()))
            .sum()
    }

    /// Estimated tokens of the conversation as it would be sent.
    pub fn estimated_tokens(&self) -> u64 {
        (self.bytes() as f64 / self.bytes_per_token).ceil() as u64
    }

    /// The gateway counted `prompt_tokens` for the conversation as it was sent (call before
    /// adding the answer): later estimates use that ratio (within sane bounds).
    pub fn calibrate(&mut self, prompt_tokens: u64) {
        if prompt_tokens > 100 {
            self.bytes_per_token = (self.bytes() as f64 / prompt_tokens as f64).clamp(1.5, 6.0);
        }
    }

    /// Replaces old tool results by a note; the bytes saved.
    pub fn elide_old_tool_results(&mut self) -> usize {
        let calls: HashMap<String, (String, String)> = self
            .messages
            .iter()
            .flat_map(|m| m.tool_calls.iter())
            .map(|c| {
                (
                    c.id.clone(),
                    (c.function.name.clone(), c.function.arguments.clone()),
                )
            })
            .collect();
        let results: Vec<usize> = (self.pinned..self.messages.len())
            .filter(|i| self.messages[*i].role == "tool")
            .collect();
        let old = results.len().saturating_sub(KEEP_RECENT_RESULTS);
        let mut saved = 0;
        for i in results.into_iter().take(old) {
            let m = &mut self.messages[i];
            let Some(text) = m.content.as_deref().filter(|t| t.len() >= ELIDE_MIN_BYTES) else {
                continue;
            };
            if text.starts_with("[elided") {
                continue;
            }
            let (name, args) = m
                .tool_call_id
                .as_ref()
                .and_then(|id| calls.get(id))
                .cloned()
                .unwrap_or_else(|| ("a tool".into(), String::new()));
            let note = format!(
                "[elided to keep the conversation within the context window: the result of {name} {} ({} bytes); call it again if you need it]",
                openclaw_common::event::first_line(&args, 200),
                text.len()
            );
            saved += text.len().saturating_sub(note.len());
            m.content = Some(note);
        }
        saved
    }

    /// The messages to condense: from the end of the pinned start to the start of the last
    /// [`KEEP_RECENT_TURNS`] turns (an assistant message). `None` when that is empty.
    pub fn condense_range(&self) -> Option<std::ops::Range<usize>> {
        let turn_starts: Vec<usize> = (self.pinned..self.messages.len())
            .filter(|i| self.messages[*i].role == "assistant")
            .collect();
        let keep_from = *turn_starts.iter().rev().nth(KEEP_RECENT_TURNS - 1)?;
        (keep_from > self.pinned).then_some(self.pinned..keep_from)
    }

    /// The messages of `range` as plain text for the summarizing call, each cut to `each`
    /// bytes.
    pub fn transcript(&self, range: std::ops::Range<usize>, each: usize) -> String {
        self.messages[range]
            .iter()
            .map(|m| {
                let mut text = m.content.clone().unwrap_or_default();
                for call in &m.tool_calls {
                    text.push_str(&format!(
                        "\n[calls {} {}]",
                        call.function.name, call.function.arguments
                    ));
                }
                format!(
                    "{}: {}",
                    m.role,
                    crate::tools::output::head_and_tail(&text, each)
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Replaces `range` by one message holding `summary`.
    pub fn replace_with_summary(&mut self, range: std::ops::Range<usize>, summary: &str) {
        self.messages.splice(
            range,
            [ChatMessage::note(format!(
                "[The earlier part of this task's work was condensed to fit the context window. Summary:]\n{summary}\n[Files may have changed since; read them again before editing.]"
            ))],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{FunctionCall, ToolCall};

    fn call(id: &str, name: &str, args: &str) -> ChatMessage {
        ChatMessage {
            role: "assistant".into(),
            content: None,
            tool_calls: vec![ToolCall {
                id: id.into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.into(),
                    arguments: args.into(),
                },
            }],
            tool_call_id: None,
            reasoning_content: None,
        }
    }

    fn conversation(reads: usize) -> Conversation {
        let mut c = Conversation::new(vec![
            ChatMessage::system("sys"),
            ChatMessage::user("document it"),
        ]);
        for n in 0..reads {
            let id = format!("c{n}");
            c.messages
                .push(call(&id, "read_file", &format!("{{\"path\":\"f{n}.md\"}}")));
            c.messages.push(ChatMessage::tool(&id, "x".repeat(10_000)));
        }
        c
    }

    #[test]
    fn old_results_become_notes_and_the_newest_stay() {
        let mut c = conversation(10);
        let before = c.estimated_tokens();
        let saved = c.elide_old_tool_results();
        assert!(saved > 50_000, "{saved}");
        assert!(c.estimated_tokens() < before / 2);
        let tools: Vec<&str> = c
            .messages
            .iter()
            .filter(|m| m.role == "tool")
            .map(|m| m.content.as_deref().unwrap_or_default())
            .collect();
        assert!(
            tools[0].starts_with("[elided") && tools[0].contains("read_file {\"path\":\"f0.md\"}")
        );
        assert!(tools[5].starts_with("[elided"));
        assert!(
            tools[6..].iter().all(|t| t.starts_with("xxx")),
            "the newest four stay"
        );
        // Pinned messages and the calls themselves are untouched.
        assert_eq!(c.messages[1].content.as_deref(), Some("document it"));
        assert_eq!(
            c.messages.iter().filter(|m| m.role == "assistant").count(),
            10
        );
        assert_eq!(c.elide_old_tool_results(), 0, "twice changes nothing");
    }

    #[test]
    fn condensing_keeps_the_start_and_the_last_turns_whole() {
        let mut c = conversation(6);
        let range = c.condense_range().expect("a middle");
        assert_eq!(
            range,
            2..10,
            "the pinned start, then four turns of two messages"
        );
        c.replace_with_summary(range, "read f0..f3");
        let roles: Vec<&str> = c.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            [
                "system",
                "user",
                "user",
                "assistant",
                "tool",
                "assistant",
                "tool"
            ]
        );
        // Every remaining tool result still follows its call.
        for (i, m) in c
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == "tool")
        {
            let id = m.tool_call_id.as_deref().unwrap();
            assert_eq!(c.messages[i - 1].tool_calls[0].id, id);
        }
        assert!(
            conversation(2).condense_range().is_none(),
            "nothing to condense"
        );
    }

    #[test]
    fn estimates_follow_the_gateways_count() {
        let mut c = conversation(1);
        let guess = c.estimated_tokens();
        c.calibrate(guess * 2);
        let calibrated = c.estimated_tokens();
        assert!(
            calibrated >= guess * 2 - 1 && calibrated <= guess * 2 + 1,
            "{guess} → {calibrated}"
        );
    }
}

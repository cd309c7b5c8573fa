//! What a task may spend, counted as it is spent, and a detector for a model going in
//! circles. Both only observe; the agent loop decides what to tell the model and when to stop.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use openclaw_common::agents::Limits;

use crate::llm::Completion;

/// Share of a budget after which the model is asked to finish.
const WRAP_UP_AT: f64 = 0.85;

/// Tokens and cost spent by one attempt, against its profile's limits.
#[derive(Debug)]
pub struct Budget {
    max_tokens: u64,
    max_cost_usd: Option<f64>,
    tokens: u64,
    cost_usd: f64,
    /// The prompt of the last conversation call: what the next one resends.
    last_prompt: u64,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_tokens: limits.max_tokens,
            max_cost_usd: limits.max_cost_usd,
            tokens: 0,
            cost_usd: 0.0,
            last_prompt: 0,
        }
    }

    /// A call of the conversation: its output, and the input that was not read from the
    /// prompt cache — or, where the gateway reports no cache reads, what this request added
    /// to the last one (the history resent every step is paid for once).
    pub fn conversation_call(&mut self, c: &Completion) {
        let fresh = match c.cached_tokens {
            Some(cached) => c.prompt_tokens.saturating_sub(cached),
            None => c.prompt_tokens.saturating_sub(self.last_prompt),
        };
        self.last_prompt = c.prompt_tokens;
        self.add(fresh + c.completion_tokens, c.cost_usd);
    }

    /// A call outside the conversation (condensing it): all of it counts.
    pub fn side_call(&mut self, c: &Completion) {
        let cached = c.cached_tokens.unwrap_or(0);
        self.add(
            c.prompt_tokens.saturating_sub(cached) + c.completion_tokens,
            c.cost_usd,
        );
    }

    fn add(&mut self, tokens: u64, cost: Option<f64>) {
        self.tokens += tokens;
        self.cost_usd += cost.unwrap_or(0.0);
    }

    /// The limit reached, in words, if one is.
    pub fn exceeded(&self) -> Option<String> {
        if self.tokens > self.max_tokens {
            return Some(format!(
                "token limit of {} reached ({} used)",
                self.max_tokens, self.tokens
            ));
        }
        match self.max_cost_usd {
            Some(max) if self.cost_usd > max => Some(format!(
                "cost limit of ${max:.2} reached (${:.4} spent)",
                self.cost_usd
            )),
            _ => None,
        }
    }

    /// Whether most of a budget is spent: time to ask the model to finish.
    pub fn nearly_spent(&self) -> bool {
        self.tokens as f64 >= WRAP_UP_AT * self.max_tokens as f64
            || self
                .max_cost_usd
                .is_some_and(|max| self.cost_usd >= WRAP_UP_AT * max)
    }
}

/// Repeats after which the model is told it is going in circles, and after which the task
/// stops as stuck.
const NUDGE_AFTER: u32 = 3;
const STOP_AFTER: u32 = 5;

/// What the detector makes of a tool call.
#[derive(Debug, PartialEq, Eq)]
pub enum Circling {
    No,
    /// Tell the model (the text says what repeats).
    Nudge(String),
    /// Stop the task as stuck (the reason).
    Stop(String),
}

/// Counts tool calls that repeat with the same result: the same call with the same answer, or
/// (whatever the arguments) the same error.
#[derive(Debug, Default)]
pub struct StuckDetector {
    seen: HashMap<u64, u32>,
}

fn fingerprint(parts: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl StuckDetector {
    pub fn observe(&mut self, tool: &str, arguments: &str, ok: bool, output: &str) -> Circling {
        let key = if ok {
            fingerprint(&[tool, arguments, output])
        } else {
            fingerprint(&[tool, "error", output])
        };
        let n = self.seen.entry(key).or_default();
        *n += 1;
        let what = if ok {
            format!("{tool} with the same arguments has returned the same result {n} times")
        } else {
            format!(
                "{tool} has failed {n} times with the same error: {}",
                openclaw_common::event::first_line(output, 200)
            )
        };
        match *n {
            n if n >= STOP_AFTER => Circling::Stop(format!("stuck: {what}")),
            NUDGE_AFTER => Circling::Nudge(format!(
                "{what}. Doing it again will not change it: try a different approach, or finish with a summary of what you did and what is left."
            )),
            _ => Circling::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(prompt: u64, output: u64, cached: Option<u64>, cost: Option<f64>) -> Completion {
        Completion {
            prompt_tokens: prompt,
            completion_tokens: output,
            cached_tokens: cached,
            cost_usd: cost,
            ..Completion::default()
        }
    }

    #[test]
    fn resent_history_is_not_paid_for_twice() {
        let limits = Limits {
            max_tokens: 1000,
            ..Limits::default()
        };
        let mut b = Budget::new(&limits);
        // Thirteen steps, each adding a 4,000-token file to a growing history: the sum of
        // prompts is 364,000, what was new is 52,000.
        let mut budget = Budget::new(&Limits {
            max_tokens: 60_000,
            ..Limits::default()
        });
        for step in 1..=13 {
            budget.conversation_call(&completion(4000 * step, 0, None, None));
        }
        assert!(budget.exceeded().is_none(), "{budget:?}");
        assert!(budget.nearly_spent());
        // With cache reads reported, what was not read from the cache counts.
        b.conversation_call(&completion(900, 50, Some(800), None));
        assert_eq!(b.tokens, 150);
        b.side_call(&completion(900, 50, None, None));
        assert_eq!(b.tokens, 1100);
        assert_eq!(
            b.exceeded().as_deref(),
            Some("token limit of 1000 reached (1100 used)")
        );
    }

    #[test]
    fn cost_has_its_own_limit() {
        let mut b = Budget::new(&Limits {
            max_cost_usd: Some(0.10),
            ..Limits::default()
        });
        b.conversation_call(&completion(10, 10, None, Some(0.09)));
        assert!(b.nearly_spent() && b.exceeded().is_none());
        b.conversation_call(&completion(20, 10, None, Some(0.02)));
        assert!(
            b.exceeded()
                .unwrap()
                .starts_with("cost limit of $0.10 reached")
        );
    }

    #[test]
    fn the_same_call_and_result_is_nudged_then_stopped() {
        let mut d = StuckDetector::default();
        let call = |d: &mut StuckDetector| d.observe("read_file", r#"{"path":"a"}"#, true, "same");
        assert_eq!(call(&mut d), Circling::No);
        assert_eq!(call(&mut d), Circling::No);
        assert!(matches!(call(&mut d), Circling::Nudge(t) if t.contains("3 times")));
        assert_eq!(call(&mut d), Circling::No);
        assert!(matches!(call(&mut d), Circling::Stop(t) if t.starts_with("stuck: read_file")));
        // The same error counts whatever the arguments.
        let mut d = StuckDetector::default();
        for n in 0..3 {
            let verdict = d.observe("edit_file", &format!("{{\"n\":{n}}}"), false, "not found");
            assert_eq!(matches!(verdict, Circling::Nudge(_)), n == 2);
        }
        // A different result is progress.
        assert_eq!(d.observe("read_file", "{}", true, "other"), Circling::No);
    }
}

//! What a task used: model calls, tokens, their reported price and the worker's time. A leaf
//! of the schema: events carry it (`completed`) and status records sum it.

use serde::{Deserialize, Serialize};

/// What a task used, summed over its attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// The model it ran with (the last attempt's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub model_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What the gateway (LiteLLM) said the calls cost, in US dollars. `None` when any call's
    /// cost was not reported: unknown, not zero.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Wall-clock seconds of the attempts, from claim to settle.
    pub worker_seconds: f64,
    /// `worker_seconds` at `OPENCLAW_WORKER_COST_PER_HOUR`, when that is set: an estimate of the
    /// compute the task cost, apart from the model's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_cost_usd: Option<f64>,
}

impl Usage {
    /// One model call: its tokens and, when the gateway reported it, its cost.
    pub fn call(&mut self, input_tokens: u64, output_tokens: u64, cost_usd: Option<f64>) {
        self.cost_usd = match (self.model_calls, self.cost_usd, cost_usd) {
            (0, _, cost) => cost,
            (_, Some(sum), Some(cost)) => Some(sum + cost),
            _ => None,
        };
        self.model_calls += 1;
        self.input_tokens += input_tokens;
        self.output_tokens += output_tokens;
    }

    /// This and `other` together (another attempt of the same task).
    pub fn plus(&self, other: &Usage) -> Usage {
        let cost_usd = match (self.model_calls, other.model_calls) {
            (0, _) => other.cost_usd,
            (_, 0) => self.cost_usd,
            _ => self.cost_usd.zip(other.cost_usd).map(|(a, b)| a + b),
        };
        Usage {
            model: other.model.clone().or_else(|| self.model.clone()),
            model_calls: self.model_calls + other.model_calls,
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            cost_usd,
            worker_seconds: self.worker_seconds + other.worker_seconds,
            compute_cost_usd: match (self.compute_cost_usd, other.compute_cost_usd) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            },
        }
    }

    /// "3 model calls, 1234 in / 56 out tokens, $0.0123" for closing lines.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} model call{}, {} in / {} out tokens",
            self.model_calls,
            if self.model_calls == 1 { "" } else { "s" },
            self.input_tokens,
            self.output_tokens
        );
        match self.cost_usd {
            Some(cost) => out.push_str(&format!(", ${cost:.4}")),
            None if self.model_calls > 0 => out.push_str(", cost unknown"),
            None => {}
        }
        if let Some(compute) = self.compute_cost_usd {
            out.push_str(&format!(" (+ ~${compute:.4} compute)"));
        }
        out
    }
}

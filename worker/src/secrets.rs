//! The worker's secret values, and taking them out of everything it publishes: events
//! (tool calls, tool results, streamed text, failures), status, traces and the files the
//! model writes.

/// Every secret value this worker holds (gateway key, git token and ssh key, NATS password
/// and token, Langfuse secret). Never printed: `Debug` shows only how many.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Longest first, so a secret that contains another is replaced whole.
    values: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

/// What a secret becomes in published text.
pub const REDACTED: &str = "[redacted]";

/// Shorter values would redact ordinary words; they are not real secrets anyway.
const MIN_SECRET_LEN: usize = 6;

impl Secrets {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self { values }
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
        }
        out
    }

    /// Whether `text` holds any secret value.
    pub fn found_in(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }

    /// A redactor for text that arrives in pieces (a streamed answer): see [`StreamRedactor`].
    pub fn stream(&self) -> StreamRedactor<'_> {
        StreamRedactor {
            secrets: self,
            held: String::new(),
        }
    }

    fn longest(&self) -> usize {
        self.values.first().map_or(0, String::len)
    }
}

/// Redacts a stream of text deltas as one text: a secret split across deltas (which a client
/// would put back together) is still found. It holds back a tail one byte shorter than the
/// longest secret, which may be the start of one, until the next delta or [`finish`].
///
/// [`finish`]: StreamRedactor::finish
pub struct StreamRedactor<'a> {
    secrets: &'a Secrets,
    held: String,
}

impl StreamRedactor<'_> {
    /// The text safe to publish now, after `delta` (possibly empty).
    pub fn push(&mut self, delta: &str) -> String {
        self.held.push_str(delta);
        let redacted = self.secrets.redact(&self.held);
        let keep = self.secrets.longest().saturating_sub(1);
        let mut cut = redacted.len().saturating_sub(keep);
        while !redacted.is_char_boundary(cut) {
            cut -= 1;
        }
        self.held = redacted[cut..].to_owned();
        redacted[..cut].to_owned()
    }

    /// The rest, redacted: when the stream ends.
    pub fn finish(self) -> String {
        self.secrets.redact(&self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_split_across_deltas_never_leaves_whole_or_in_parts() {
        let secrets = Secrets::new(["sk-live-0123456789".to_owned(), "short".to_owned()]);
        let text = "the key is sk-live-0123456789, and again sk-live-0123456789.";
        for size in 1..=text.len() {
            let mut stream = secrets.stream();
            let mut out = String::new();
            let bytes = text.as_bytes();
            for chunk in bytes.chunks(size) {
                out.push_str(&stream.push(std::str::from_utf8(chunk).unwrap()));
            }
            out.push_str(&stream.finish());
            assert_eq!(
                out, "the key is [redacted], and again [redacted].",
                "chunks of {size}"
            );
        }
        assert_eq!(
            secrets.redact("short words"),
            "short words",
            "too short to be a secret"
        );
        assert!(format!("{secrets:?}").starts_with("Secrets(1 "));
    }
}

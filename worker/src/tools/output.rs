//! Bounding what a tool sends back to the model. Every result passes [`head_and_tail`] before
//! it leaves the toolbox: the start (what was asked for) and the end (where errors and totals
//! are) are kept, the middle is replaced by a marker that says how much is gone, so the model
//! can ask for a narrower window. [`HeadTail`] does the same for output that streams in (a
//! command's pipes), in bounded memory, however much arrives.

/// Most bytes of one tool result the model sees.
pub const MAX_RESULT_BYTES: usize = 24 * 1024;

/// `text` within `max` bytes: whole when it fits, else its first and last lines (about half
/// the room each) around a line `[… N lines (M bytes) omitted …]`. Cuts fall on line
/// boundaries where a line is shorter than the room, else on character boundaries.
pub fn head_and_tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let room = max.saturating_sub(80) / 2;
    let head_end = cut_back(text, room);
    let tail_start = cut_forward(text, text.len() - room).max(head_end);
    let omitted = &text[head_end..tail_start];
    format!(
        "{}\n[… {} lines ({} bytes) omitted …]\n{}",
        text[..head_end].trim_end_matches('\n'),
        omitted.lines().count(),
        omitted.len(),
        text[tail_start..].trim_start_matches('\n')
    )
}

/// The end of the last whole line within `text[..at]`, or the character boundary at or before
/// `at` when the first line alone is longer.
fn cut_back(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    match text[..at].rfind('\n') {
        Some(nl) if nl > 0 => nl + 1,
        _ => at,
    }
}

/// The start of the first whole line within `text[at..]`, or the character boundary at or
/// after `at` when the last line alone is longer.
fn cut_forward(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    match text[at..].find('\n') {
        Some(nl) if at + nl + 1 < text.len() => at + nl + 1,
        _ => at,
    }
}

/// The first `keep` and the last `keep` bytes of a stream, and how many bytes came in all.
/// Memory stays at `2 × keep` whatever the stream's size.
#[derive(Debug)]
pub struct HeadTail {
    keep: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    total: u64,
}

impl HeadTail {
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let to_head = bytes.len().min(self.keep - self.head.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        if bytes.len() >= self.keep {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.keep..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.keep);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Everything that came in was kept.
    pub fn is_whole(&self) -> bool {
        self.total == (self.head.len() + self.tail.len()) as u64
    }

    /// The stream as text (lossy UTF-8): whole, or head and tail around a marker naming the
    /// bytes that are gone.
    pub fn text(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail);
        if self.is_whole() {
            return format!("{head}{tail}");
        }
        let gone = self.total - (self.head.len() + self.tail.len()) as u64;
        format!("{head}\n[… {gone} bytes omitted …]\n{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_whole_and_long_text_keeps_its_ends_on_line_boundaries() {
        assert_eq!(head_and_tail("a\nb\n", 100), "a\nb\n");
        let text: String = (1..=1000).map(|n| format!("line {n}\n")).collect();
        let cut = head_and_tail(&text, 1000);
        assert!(cut.len() <= 1000, "{}", cut.len());
        assert!(cut.starts_with("line 1\nline 2\n"));
        assert!(cut.trim_end().ends_with("line 1000"));
        assert!(cut.contains(" lines ("), "{cut}");
        // Every kept line is whole.
        for line in cut.lines().filter(|l| !l.starts_with("[…")) {
            assert!(line.starts_with("line "), "{line:?}");
        }
    }

    #[test]
    fn one_huge_line_is_cut_on_character_boundaries() {
        let text = "é".repeat(100_000);
        let cut = head_and_tail(&text, 2000);
        assert!(cut.len() <= 2000);
        assert!(cut.contains("bytes) omitted"));
    }

    #[test]
    fn a_stream_keeps_its_head_and_tail_in_bounded_memory() {
        let mut out = HeadTail::new(10);
        for chunk in [&b"0123456789abc"[..], b"def", &[b'x'; 1000], b"THE END"] {
            out.push(chunk);
        }
        assert!(!out.is_whole());
        assert_eq!(out.head, b"0123456789");
        assert_eq!(out.tail.iter().copied().collect::<Vec<u8>>(), b"xxxTHE END");
        assert!(
            out.text().contains("[… 1003 bytes omitted …]"),
            "{}",
            out.text()
        );
        let mut small = HeadTail::new(10);
        small.push(b"hello");
        small.push(b" world");
        assert!(small.is_whole());
        assert_eq!(small.text(), "hello world");
    }
}

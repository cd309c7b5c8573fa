//! Reading a file for `read_file`: a numbered window of it in bounded memory.

use std::path::Path;

use super::*;

/// Lines `first..first + limit` of the file at `path` (shown as `shown`), numbered, with a
/// header naming the window and the file's line count. Reads in blocks: memory stays bounded
/// whatever the file's size or the length of its lines (a 50 MB minified line costs 500 bytes).
pub(super) fn read_window(path: &Path, shown: &str, first: u64, limit: u64) -> ToolOutput {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut block = vec![0u8; 64 * 1024];
    let mut body = String::new();
    // The line being read: its number, its first bytes, and how many it has in all.
    let (mut number, mut kept, mut length) = (1u64, Vec::new(), 0usize);
    let mut last = first.saturating_sub(1); // the last line shown
    let mut stopped_early = false;
    let mut ends_open = false; // the file's last line has no newline
    let show = |number: u64, kept: &[u8], length: usize, body: &mut String| {
        let text = String::from_utf8_lossy(kept);
        let text = text.trim_end_matches('\r');
        body.push_str(&format!("{number}: {text}"));
        if length > kept.len() {
            body.push_str(&format!(" [… {} more bytes]", length - kept.len()));
        }
        body.push('\n');
    };
    let in_window = |n: u64, stopped: bool| !stopped && n >= first && n < first + limit;
    loop {
        let read = file.read(&mut block).map_err(|e| format!("{shown}: {e}"))?;
        if read == 0 {
            break;
        }
        if number == 1 && length == 0 && block[..read.min(8000)].contains(&0) {
            return Err(format!("{shown}: a binary file, not text"));
        }
        let mut rest = &block[..read];
        while !rest.is_empty() {
            let (piece, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            if in_window(number, stopped_early) && kept.len() < MAX_READ_LINE_BYTES {
                let room = MAX_READ_LINE_BYTES - kept.len();
                kept.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            length += piece.len();
            rest = &rest[(piece.len() + usize::from(ended))..];
            ends_open = !ended;
            if ended {
                if in_window(number, stopped_early) {
                    show(number, &kept, length, &mut body);
                    last = number;
                    stopped_early = body.len() >= MAX_READ_OUTPUT;
                }
                number += 1;
                kept.clear();
                length = 0;
            }
        }
    }
    // A last line without a newline is a line too.
    let total = if ends_open {
        if in_window(number, stopped_early) {
            show(number, &kept, length, &mut body);
            last = number;
        }
        number
    } else {
        number - 1
    };
    if total == 0 {
        return Ok(format!("{shown}: an empty file"));
    }
    if first > total {
        return Err(format!(
            "{shown}: has {total} lines; offset {first} is past its end"
        ));
    }
    let mut out = format!("{shown}: lines {first}–{last} of {total}\n{body}");
    if last < total {
        out.push_str(&format!(
            "[{} more lines: read_file with offset {}]\n",
            total - last,
            last + 1
        ));
    }
    Ok(out)
}

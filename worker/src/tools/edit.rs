//! `edit_file`'s text surgery, on strings only (the toolbox reads and writes the file): exact
//! replacement with a uniqueness check (or `replace_all`), a fallback that ignores leading and
//! trailing whitespace per line when the exact text is not found, the closest lines when
//! neither finds it, several edits applied all or nothing, CRLF files kept CRLF, and a
//! numbered snippet of each edited place for the answer.

use serde::Deserialize;

/// Lines shown before and after an edited place.
const SNIPPET_CONTEXT: usize = 3;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Edit {
    pub old_text: String,
    pub new_text: String,
    #[serde(default)]
    pub replace_all: bool,
}

/// The text after `edits` (in order, each on the result of the last) and, per edit, the
/// line ranges it changed (1-based, inclusive, in the final text).
pub(super) fn apply(
    current: &str,
    edits: &[Edit],
) -> Result<(String, Vec<(usize, usize)>), String> {
    let crlf = current.contains("\r\n");
    let mut text = current.to_owned();
    let mut places: Vec<(usize, usize)> = Vec::new();
    for (n, edit) in edits.iter().enumerate() {
        let which = if edits.len() > 1 {
            format!("edit {} of {}: ", n + 1, edits.len())
        } else {
            String::new()
        };
        let (old, new) = if crlf {
            (to_crlf(&edit.old_text), to_crlf(&edit.new_text))
        } else {
            (edit.old_text.clone(), edit.new_text.clone())
        };
        if old.is_empty() {
            return Err(format!("{which}old_text must not be empty"));
        }
        if old == new {
            return Err(format!("{which}old_text and new_text are the same"));
        }
        let found: Vec<usize> = text.match_indices(&old).map(|(at, _)| at).collect();
        let starts = match found.len() {
            0 => {
                let (at, len) =
                    whitespace_tolerant(&text, &old).map_err(|e| format!("{which}{e}"))?;
                text.replace_range(at..at + len, &new);
                vec![at]
            }
            1 => {
                text.replace_range(found[0]..found[0] + old.len(), &new);
                found
            }
            _ if edit.replace_all => {
                text = text.replace(&old, &new);
                // Where each replacement now starts: shift by the growth of those before it.
                let growth = new.len() as isize - old.len() as isize;
                found
                    .iter()
                    .enumerate()
                    .map(|(i, at)| (*at as isize + growth * i as isize) as usize)
                    .collect()
            }
            count => {
                let lines: Vec<String> = found
                    .iter()
                    .take(10)
                    .map(|at| line_of(&text, *at).to_string())
                    .collect();
                return Err(format!(
                    "{which}old_text occurs {count} times (lines {}); include more surrounding lines so it is unique, or set replace_all",
                    lines.join(", ")
                ));
            }
        };
        let new_lines = new.matches('\n').count();
        for at in starts {
            let first = line_of(&text, at);
            places.push((first, first + new_lines));
        }
    }
    Ok((text, places))
}

fn to_crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// The 1-based line of byte `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The one place where `old`'s lines stand in `text` when leading and trailing whitespace of
/// each line is ignored: (byte start, byte length) of those whole lines. Not found or found
/// more than once is an error that says what is there instead.
fn whitespace_tolerant(text: &str, old: &str) -> Result<(usize, usize), String> {
    let wanted: Vec<&str> = old.lines().map(str::trim).collect();
    let lines: Vec<(usize, &str)> = line_spans(text);
    let mut hits = Vec::new();
    if !wanted.is_empty() && wanted.len() <= lines.len() {
        for first in 0..=lines.len() - wanted.len() {
            let window = &lines[first..first + wanted.len()];
            if window.iter().zip(&wanted).all(|((_, l), w)| l.trim() == *w) {
                hits.push(first);
            }
        }
    }
    match hits.as_slice() {
        [first] => {
            let start = lines[*first].0;
            let (last_start, last) = lines[first + wanted.len() - 1];
            // The lines as they are, without the last one's line ending.
            Ok((start, last_start + last.trim_end_matches('\r').len() - start))
        }
        [] => Err(format!(
            "old_text was not found{}",
            closest(&lines, &wanted)
                .map(|shown| format!("; the closest lines are:\n{shown}\nCopy the text exactly as read_file shows it (without the line numbers)."))
                .unwrap_or_else(|| "; read the file and copy the text exactly".into())
        )),
        many => Err(format!(
            "old_text was not found exactly, and ignoring indentation it matches {} places (lines {}); include more lines",
            many.len(),
            many.iter().take(10).map(|f| (f + 1).to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Each line of `text` with its byte start, line endings removed.
fn line_spans(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        out.push((at, line.trim_end_matches('\n')));
        at += line.len();
    }
    out
}

/// The window of `lines` sharing most trimmed lines with `wanted`, numbered, when any does.
fn closest(lines: &[(usize, &str)], wanted: &[&str]) -> Option<String> {
    let size = wanted.len().clamp(1, lines.len().max(1));
    let mut best = (0usize, 0usize);
    for first in 0..lines.len().saturating_sub(size - 1) {
        let score = lines[first..first + size]
            .iter()
            .filter(|(_, l)| {
                let l = l.trim();
                !l.is_empty() && wanted.contains(&l)
            })
            .count();
        if score > best.1 {
            best = (first, score);
        }
    }
    if best.1 == 0 {
        return None;
    }
    let from = best.0.saturating_sub(1);
    let to = (best.0 + size + 1).min(lines.len());
    Some(numbered(lines, from, to))
}

fn numbered(lines: &[(usize, &str)], from: usize, to: usize) -> String {
    lines[from..to]
        .iter()
        .enumerate()
        .map(|(i, (_, l))| format!("{}: {}", from + i + 1, super::search::around(l, 0, 0)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Numbered lines around each edited place of `text` (ranges from [`apply`]), places that
/// overlap shown once.
pub(super) fn snippets(text: &str, places: &[(usize, usize)]) -> String {
    let lines = line_spans(text);
    let mut ranges: Vec<(usize, usize)> = places
        .iter()
        .map(|(a, b)| {
            (
                a.saturating_sub(1 + SNIPPET_CONTEXT),
                (b + SNIPPET_CONTEXT).min(lines.len()),
            )
        })
        .collect();
    ranges.sort();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
        .iter()
        .map(|(a, b)| numbered(&lines, *a, *b))
        .collect::<Vec<_>>()
        .join("\n…\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(old: &str, new: &str) -> Edit {
        Edit {
            old_text: old.into(),
            new_text: new.into(),
            replace_all: false,
        }
    }

    #[test]
    fn an_exact_unique_edit_and_its_snippet() {
        let text: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let (out, places) = apply(&text, &[edit("line 10\n", "line ten\nand more\n")]).unwrap();
        assert!(out.contains("line 9\nline ten\nand more\nline 11\n"));
        assert_eq!(places, [(10, 12)]);
        let shown = snippets(&out, &places);
        assert!(shown.starts_with("7: line 7"), "{shown}");
        assert!(shown.contains("10: line ten\n11: and more"), "{shown}");
        assert!(shown.ends_with("15: line 14"), "{shown}");
    }

    #[test]
    fn a_repeated_text_needs_more_context_or_replace_all() {
        let text = "a = 1\nb = 1\na = 1\n";
        let err = apply(text, &[edit("a = 1", "a = 2")]).unwrap_err();
        assert!(err.contains("occurs 2 times (lines 1, 3)"), "{err}");
        let mut all = edit("a = 1", "a = 2");
        all.replace_all = true;
        let (out, places) = apply(text, &[all]).unwrap();
        assert_eq!(out, "a = 2\nb = 1\na = 2\n");
        assert_eq!(places, [(1, 1), (3, 3)]);
    }

    #[test]
    fn indentation_is_forgiven_when_the_lines_are_unique() {
        let text = "fn main() {\n        println!(\"hi\");\n}\n";
        let (out, _) = apply(
            text,
            &[edit(
                "            println!(\"hi\");",
                "    println!(\"bye\");",
            )],
        )
        .unwrap();
        assert_eq!(out, "fn main() {\n    println!(\"bye\");\n}\n");
    }

    #[test]
    fn a_miss_shows_the_closest_lines() {
        let text = "# Title\n\nInstall with make.\nRun it.\n";
        let err = apply(text, &[edit("Install with cargo.\nRun it.", "x")]).unwrap_err();
        assert!(err.contains("closest lines"), "{err}");
        assert!(err.contains("4: Run it."), "{err}");
    }

    #[test]
    fn several_edits_apply_all_or_none_and_crlf_stays() {
        let text = "one\r\ntwo\r\nthree\r\n";
        let (out, _) = apply(text, &[edit("one\ntwo", "1\n2"), edit("three", "3")]).unwrap();
        assert_eq!(out, "1\r\n2\r\n3\r\n");
        let err = apply(text, &[edit("one", "1"), edit("four", "4")]).unwrap_err();
        assert!(err.starts_with("edit 2 of 2: "), "{err}");
    }
}

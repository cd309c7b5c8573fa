//! `search` and `list_files` on ripgrep's own crates: `ignore` walks the tree as ripgrep does
//! (`.gitignore`, `.ignore`, `.git` skipped, symlinks not followed), `grep-searcher` reads
//! each file line by line with binary detection and a heap limit, so a 50 MB minified line
//! costs no more memory than the limit and one match in it costs a few hundred bytes of answer.
//!
//! Totals are always true: the walk counts every match in every file (in parallel, no text
//! kept), then only as many files as the answer shows are searched again for their lines, in
//! path order — so the answer is the same on every run and memory does not grow with the
//! number of matches.

use std::path::Path;
use std::sync::Mutex;

use grep_matcher::Matcher;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::{WalkBuilder, WalkState, overrides::OverrideBuilder};
use serde::Deserialize;

use super::ToolOutput;

/// Longest line `grep-searcher` holds: a file with a longer line is reported, not searched.
const HEAP_LIMIT: usize = 16 * 1024 * 1024;
/// Most bytes of a shown line, around its match.
pub(super) const MAX_LINE_BYTES: usize = 240;
/// Matches shown when the model names no `limit`, and the most it may ask for.
const DEFAULT_MATCHES: usize = 50;
const MAX_MATCHES: usize = 500;
/// Most context lines before and after a match.
const MAX_CONTEXT: usize = 5;
/// Paths `list_files` shows when the model names no `limit`, and the most.
const DEFAULT_ENTRIES: usize = 200;
const MAX_ENTRIES: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchArgs {
    pub pattern: String,
    /// The pattern is plain text, not a regular expression.
    #[serde(default)]
    pub literal: bool,
    pub path: Option<String>,
    /// Only files whose path (relative to the repository) matches, e.g. `*.rs` or `src/**`.
    pub glob: Option<String>,
    #[serde(default)]
    pub case_insensitive: bool,
    #[serde(default)]
    pub output_mode: OutputMode,
    pub context: Option<usize>,
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum OutputMode {
    /// Matching lines, `path:line: text`.
    #[default]
    Content,
    /// Paths of files with a match.
    Files,
    /// `path: matches` per file.
    Count,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListArgs {
    pub path: Option<String>,
    pub glob: Option<String>,
    pub max_depth: Option<usize>,
    pub limit: Option<usize>,
}

/// The walk of the checkout under `start`, as ripgrep walks it. `root` is the canonical
/// checkout; the walk starts there (so its `.gitignore` applies to any `start`) and descends
/// only toward and under `start`. Nothing above `root` is read: no parent ignore files, no
/// global git config or excludes, no symlinks followed.
fn walker(
    root: &Path,
    start: &Path,
    glob: Option<&str>,
    max_depth: Option<usize>,
) -> Result<WalkBuilder, String> {
    let mut walk = WalkBuilder::new(root);
    walk.hidden(false)
        .parents(false)
        .ignore(true)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .threads(0);
    if let Some(glob) = glob {
        let mut overrides = OverrideBuilder::new(root);
        overrides
            .add(glob)
            .map_err(|e| format!("glob {glob:?}: {e}"))?;
        walk.overrides(
            overrides
                .build()
                .map_err(|e| format!("glob {glob:?}: {e}"))?,
        );
    }
    if let Some(depth) = max_depth {
        let below_root = start
            .strip_prefix(root)
            .map_or(0, |p| p.components().count());
        walk.max_depth(Some(below_root + depth));
    }
    let start = start.to_path_buf();
    walk.filter_entry(move |entry| {
        let path = entry.path();
        entry.file_name() != ".git" && (start.starts_with(path) || path.starts_with(&start))
    });
    Ok(walk)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Runs a visitor on every regular file of the walk, in parallel (each walking thread makes
/// its own with `visitor`); what it returns for a file (`Some`) is collected, sorted by path.
fn each_file<T: Send, V: FnMut(&Path) -> Option<T> + Send>(
    walk: &WalkBuilder,
    root: &Path,
    visitor: impl Fn() -> V + Sync,
) -> Vec<(String, T)> {
    let found = Mutex::new(Vec::new());
    walk.build_parallel().run(|| {
        let mut visit = visitor();
        let found = &found;
        Box::new(move |entry| {
            if let Ok(entry) = entry
                && entry.file_type().is_some_and(|t| t.is_file())
                && let Some(out) = visit(entry.path())
            {
                let rel = relative(root, entry.path());
                if let Ok(mut found) = found.lock() {
                    found.push((rel, out));
                }
            }
            WalkState::Continue
        })
    });
    let mut found = found.into_inner().unwrap_or_default();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// `list_files`: the files under `start`, sorted, at most `limit`, with the true total.
pub(super) fn list(root: &Path, start: &Path, args: &ListArgs) -> ToolOutput {
    let walk = walker(root, start, args.glob.as_deref(), args.max_depth)?;
    let files = each_file(&walk, root, || |_: &Path| Some(()));
    if files.is_empty() {
        return Ok("(no files)".into());
    }
    let limit = args.limit.unwrap_or(DEFAULT_ENTRIES).clamp(1, MAX_ENTRIES);
    let mut out: Vec<String> = files.iter().take(limit).map(|(p, ())| p.clone()).collect();
    if files.len() > limit {
        out.push(format!(
            "… and {} more files ({} in all; list a subdirectory or use glob)",
            files.len() - limit,
            files.len()
        ));
    }
    Ok(out.join("\n"))
}

/// Counts matches of a file without keeping any text; a NUL byte makes the file binary and
/// ends its search (ripgrep's rule), whatever matched before it.
#[derive(Default)]
struct Counter {
    matches: u64,
    binary: bool,
}

impl Sink for Counter {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, _: &SinkMatch<'_>) -> Result<bool, std::io::Error> {
        self.matches += 1;
        Ok(true)
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> Result<bool, std::io::Error> {
        self.binary = true;
        Ok(false)
    }
}

/// The shown lines of one file: matches and context, at most `room` matches.
struct Lines<'a> {
    matcher: &'a RegexMatcher,
    path: &'a str,
    room: usize,
    shown: usize,
    out: &'a mut Vec<String>,
}

impl Sink for Lines<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, std::io::Error> {
        let line = String::from_utf8_lossy(mat.bytes());
        let line = line.trim_end_matches(['\n', '\r']);
        let (at, len) = match self.matcher.find(line.as_bytes()) {
            Ok(Some(m)) => (m.start(), m.end() - m.start()),
            _ => (0, 0),
        };
        let n = mat.line_number().unwrap_or(0);
        self.out
            .push(format!("{}:{n}: {}", self.path, around(line, at, len)));
        self.shown += 1;
        Ok(self.shown < self.room)
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, std::io::Error> {
        let line = String::from_utf8_lossy(ctx.bytes());
        let line = line.trim_end_matches(['\n', '\r']);
        let n = ctx.line_number().unwrap_or(0);
        self.out
            .push(format!("{}-{n}- {}", self.path, around(line, 0, 0)));
        Ok(true)
    }
}

/// `search`: matches of `args.pattern` under `start`, shown as `args.output_mode` asks, with
/// true totals of matches and files.
pub(super) fn search(root: &Path, start: &Path, args: &SearchArgs) -> ToolOutput {
    if args.pattern.is_empty() {
        return Err("pattern must not be empty".into());
    }
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(args.case_insensitive)
        .fixed_strings(args.literal)
        .build(&args.pattern)
        .map_err(|e| {
            format!("pattern is not a valid regular expression ({e}); set literal to search for the text as it is")
        })?;
    let walk = walker(root, start, args.glob.as_deref(), None)?;
    let mut searcher = SearcherBuilder::new();
    searcher
        .binary_detection(BinaryDetection::quit(b'\x00'))
        .heap_limit(Some(HEAP_LIMIT))
        .line_number(true);
    // Phase one, every file in parallel: how many matches, nothing else kept.
    let binary = std::sync::atomic::AtomicUsize::new(0);
    let unreadable = Mutex::new(Vec::new());
    let files = each_file(&walk, root, || {
        let mut searcher = searcher.build();
        let (matcher, binary, unreadable) = (&matcher, &binary, &unreadable);
        move |path: &Path| {
            let mut counter = Counter::default();
            match searcher.search_path(matcher, path, &mut counter) {
                Ok(()) if counter.binary => {
                    binary.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    None
                }
                Ok(()) => (counter.matches > 0).then_some(counter.matches),
                Err(e) => {
                    if let Ok(mut u) = unreadable.lock() {
                        u.push(format!("{}: {e}", relative(root, path)));
                    }
                    None
                }
            }
        }
    });
    let mut unreadable = unreadable.into_inner().unwrap_or_default();
    unreadable.sort();
    let binary = binary.into_inner();
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let limit = args.limit.unwrap_or(DEFAULT_MATCHES).clamp(1, MAX_MATCHES);
    let mut out = Vec::new();
    let mut shown_matches = 0u64;
    let mut shown_files = 0usize;
    match args.output_mode {
        OutputMode::Files => {
            for (path, n) in files.iter().take(limit) {
                out.push(path.clone());
                shown_matches += n;
                shown_files += 1;
            }
        }
        OutputMode::Count => {
            for (path, n) in files.iter().take(limit) {
                out.push(format!("{path}: {n}"));
                shown_matches += n;
                shown_files += 1;
            }
        }
        OutputMode::Content => {
            // Phase two, in path order: the lines of as many files as the answer shows.
            let context = args.context.unwrap_or(0).min(MAX_CONTEXT);
            let mut searcher = searcher
                .clone()
                .before_context(context)
                .after_context(context)
                .build();
            for (path, n) in &files {
                let room = limit - shown_matches as usize;
                if room == 0 {
                    break;
                }
                let mut sink = Lines {
                    matcher: &matcher,
                    path,
                    room,
                    shown: 0,
                    out: &mut out,
                };
                if let Err(e) = searcher.search_path(&matcher, root.join(path), &mut sink) {
                    out.push(format!("{path}: {e}"));
                    continue;
                }
                let shown = sink.shown as u64;
                shown_matches += shown;
                shown_files += 1;
                if shown < *n {
                    out.push(format!("{path}: … {} more matches in this file", n - shown));
                }
            }
        }
    }
    if files.is_empty() {
        out.push(format!("no matches for {:?}", args.pattern));
    } else {
        let more_matches = total - shown_matches.min(total);
        let more_files = files.len() - shown_files;
        if more_files > 0 {
            out.push(format!(
                "… {more_matches} more matches in {more_files} more files ({total} matches in {} files in all; narrow with path or glob)",
                files.len()
            ));
        } else {
            out.push(format!("({total} matches in {} files)", files.len()));
        }
    }
    if binary > 0 {
        out.push(format!("({binary} binary files skipped)"));
    }
    if !unreadable.is_empty() {
        let named: Vec<&str> = unreadable.iter().take(5).map(String::as_str).collect();
        out.push(format!(
            "({} files not searched: {}{})",
            unreadable.len(),
            named.join("; "),
            if unreadable.len() > named.len() {
                "; …"
            } else {
                ""
            }
        ));
    }
    Ok(out.join("\n"))
}

/// The part of `line` around the match at `at` (of `len` bytes), at most [`MAX_LINE_BYTES`]
/// and trimmed, with `…` where it was cut: one match in a minified file is a line, not the
/// file.
pub(super) fn around(line: &str, at: usize, len: usize) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line.trim().to_owned();
    }
    let room = MAX_LINE_BYTES.saturating_sub(len) / 2;
    let mut start = at.saturating_sub(room).min(line.len());
    while !line.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + len.min(MAX_LINE_BYTES) + room).min(line.len());
    while !line.is_char_boundary(end) {
        end += 1;
    }
    let head = if start > 0 { "…" } else { "" };
    let tail = if end < line.len() { "…" } else { "" };
    format!("{head}{}{tail}", &line[start..end])
}

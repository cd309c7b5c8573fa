//! `search` and `list_files` against ripgrep itself (`rg`, Debian's `ripgrep`) on the same
//! generated tree in the same run: 30,000 tracked files, 20,000 ignored under
//! `node_modules/`, a 5 MB one-line file. Each measurement is the median of alternating runs;
//! the ratio is ours over rg's wall time, and the match counts must be identical.
//!
//! `cargo bench -p openclaw-tests --bench search` (needs `rg` on the PATH).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use openclaw_common::agents::AgentCatalog;
use openclaw_common::ids::AgentName;
use openclaw_tests::generated::write_tree;
use openclaw_worker::secrets::Secrets;
use openclaw_worker::tools::Toolbox;
use serde_json::json;

const TRACKED: usize = 30_000;
const IGNORED: usize = 20_000;
const ROUNDS: usize = 5;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The total `rg` reports for `args` on `root` (`--count-matches` per file, summed; or the
/// number of files for `--files`).
fn rg(root: &std::path::Path, args: &[&str]) -> (Duration, u64) {
    let started = Instant::now();
    let out = Command::new("rg")
        // As our walk: ignore files without a git repository, hidden files included.
        .args(["--no-require-git", "--no-config", "--hidden"])
        .args(args)
        .current_dir(root)
        .output()
        .expect("rg (Debian package ripgrep) on the PATH");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let total = if args.contains(&"--files") {
        text.lines().count() as u64
    } else {
        text.lines()
            .filter_map(|l| l.rsplit(':').next()?.parse::<u64>().ok())
            .sum()
    };
    (took, total)
}

/// The true total in one of our answers: "(N matches in M files…" or "(N in all".
fn our_total(answer: &str, what: &str) -> u64 {
    let marker = match what {
        "matches" => " matches in ",
        _ => " in all",
    };
    answer
        .lines()
        .rev()
        .find_map(|l| {
            let at = l.rfind(marker)?;
            l[..at].rsplit(['(', ' ']).next()?.parse().ok()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let needles = write_tree(&root, TRACKED, IGNORED);
    let catalog = AgentCatalog::built_in();
    let profile = catalog
        .get(&AgentName::parse("doc-writer").unwrap())
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let tools = Toolbox::new(&root, scratch.path(), profile, Secrets::new([])).unwrap();
    println!(
        "search: {TRACKED} tracked files, {IGNORED} ignored, a 5 MB one-line file; median of {ROUNDS} alternating runs\n"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>7} {:>16}",
        "", "ours", "rg", "ratio", "matches (ours/rg)"
    );
    let cases: Vec<(String, serde_json::Value, Vec<&str>)> = vec![
        (
            "a needle in the last file (literal)".into(),
            json!({"pattern": needles.0[4].0, "literal": true, "output_mode": "count"}),
            vec!["--count-matches", "--fixed-strings", &needles.0[4].0],
        ),
        (
            "a regex in every file".into(),
            json!({"pattern": r"pub fn f\d+", "output_mode": "count"}),
            vec!["--count-matches", r"pub fn f\d+"],
        ),
        (
            "one match in the 5 MB line".into(),
            json!({"pattern": "MINIFIED_NEEDLE", "output_mode": "count"}),
            vec!["--count-matches", "MINIFIED_NEEDLE"],
        ),
        (
            "case-insensitive, content mode".into(),
            json!({"pattern": "needle_2_X7Q", "case_insensitive": true}),
            vec!["--count-matches", "--ignore-case", "needle_2_X7Q"],
        ),
        (
            "list_files (the whole tree)".into(),
            json!({}),
            vec!["--files"],
        ),
    ];
    for (name, args, rg_args) in cases {
        let tool = if rg_args.contains(&"--files") {
            "list_files"
        } else {
            "search"
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut our_count, mut rg_count) = (0, 0);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let answer = tools.call(tool, &args.to_string()).await.unwrap();
            ours.push(started.elapsed());
            our_count = our_total(&answer, if tool == "search" { "matches" } else { "files" });
            let (took, total) = rg(&root, &rg_args);
            theirs.push(took);
            rg_count = total;
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{name:<44} {:>7.1} ms {:>7.1} ms {:>7.2} {:>16}",
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            ours.as_secs_f64() / theirs.as_secs_f64(),
            format!("{our_count}/{rg_count}")
        );
        assert_eq!(our_count, rg_count, "{name}: the counts differ");
    }
}

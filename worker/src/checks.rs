//! Checks run when the model says it is done, before anything is committed: a failure goes
//! back to the model (a bounded number of times) instead of into the commit. Built in:
//! `markdown-links` — every relative link and anchor in the Markdown files the run changed
//! resolves inside the checkout. A profile may add commands (run as `run_command` runs them,
//! under the same allowlist and argument policy).

use std::collections::BTreeSet;
use std::path::Path;

use openclaw_common::agents::Check;

use crate::tools::Toolbox;

/// Problems the checks found in `changed` (paths relative to the checkout), one line each;
/// empty when all pass.
pub async fn run(tools: &Toolbox, checks: &[Check], changed: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for check in checks {
        match check {
            Check::MarkdownLinks => {
                for file in changed.iter().filter(|f| is_markdown(f)) {
                    problems.extend(markdown_links(tools.root(), file));
                }
            }
            Check::Command { command, args } => {
                let call = serde_json::json!({"command": command, "args": args}).to_string();
                if let Err(output) = tools.call("run_command", &call).await {
                    problems.push(format!("`{command} {}` failed:\n{output}", args.join(" ")));
                }
            }
            Check::Shell { run } => {
                let call = serde_json::json!({ "command": run }).to_string();
                if let Err(output) = tools.call("run_command", &call).await {
                    problems.push(format!("the check `{run}` failed:\n{output}"));
                }
            }
        }
    }
    problems
}

fn is_markdown(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// The broken relative links of the Markdown file `rel` under `root`.
fn markdown_links(root: &Path, rel: &str) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
        return Vec::new();
    };
    let dir = Path::new(rel).parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for (n, target) in links(&text) {
        if target.contains("://")
            || target.starts_with("mailto:")
            || target.starts_with("tel:")
            || target.starts_with('/')
        {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let path = path.split('?').next().unwrap_or_default();
        let (shown, file_text) = if path.is_empty() {
            (rel.to_owned(), Some(text.clone()))
        } else {
            let joined = normalize(&dir.join(path));
            let Some(joined) = joined else {
                problems.push(format!(
                    "{rel}:{n}: link to {target}: leads out of the repository"
                ));
                continue;
            };
            // Judged on the real path, as the tools judge theirs: a link that resolves
            // through a symlink out of the checkout (or into a git directory) is not read.
            let full = match crate::paths::confine(root, &joined.to_string_lossy()) {
                Ok(full) if full.exists() => full,
                Ok(_) => {
                    problems.push(format!(
                        "{rel}:{n}: link to {target}: no such file ({})",
                        joined.display()
                    ));
                    continue;
                }
                Err(why) => {
                    problems.push(format!("{rel}:{n}: link to {target}: {why}"));
                    continue;
                }
            };
            let shown = joined.display().to_string();
            (
                shown.clone(),
                is_markdown(&shown).then(|| std::fs::read_to_string(&full).unwrap_or_default()),
            )
        };
        if let (Some(anchor), Some(file_text)) = (anchor.filter(|a| !a.is_empty()), file_text) {
            let slugs = heading_slugs(&file_text);
            if !slugs.contains(&anchor.to_ascii_lowercase()) {
                problems.push(format!(
                    "{rel}:{n}: link to {target}: {shown} has no heading #{anchor}{}",
                    if slugs.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it has #{})",
                            slugs
                                .iter()
                                .take(8)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", #")
                        )
                    }
                ));
            }
        }
    }
    problems
}

/// `path` without `.` and `..` parts, `None` when it climbs above its start.
fn normalize(path: &Path) -> Option<std::path::PathBuf> {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            std::path::Component::Normal(p) => out.push(p),
            _ => return None,
        }
    }
    Some(out)
}

/// The link targets of Markdown `text` with their line numbers: inline links `[t](target)`,
/// images, and reference definitions `[ref]: target`, outside fenced code blocks.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Reference definitions.
        if let Some(rest) = trimmed.strip_prefix('[')
            && let Some((_, target)) = rest.split_once("]:")
        {
            if let Some(target) = target.split_whitespace().next() {
                out.push((i + 1, target.trim_matches(['<', '>']).to_owned()));
            }
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            if !target.is_empty() {
                out.push((i + 1, target.trim_matches(['<', '>']).to_owned()));
            }
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchors for the headings of `text`: lowercase, punctuation dropped, spaces to
/// hyphens; repeated headings get `-1`, `-2`.
fn heading_slugs(text: &str) -> BTreeSet<String> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced || !trimmed.starts_with('#') {
            continue;
        }
        let title = trimmed.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_default();
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_relative_links_and_anchors_are_found_and_good_ones_pass() {
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path();
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("README.md"), "# Project\n\n## Getting started\n").unwrap();
        std::fs::write(
            root.join("docs/guide.md"),
            "# Guide\n\nSee [the readme](../README.md#getting-started), [usage](#usage),\n\
             [missing](missing.md), [bad anchor](../README.md#install), [web](https://x.y/z),\n\
             [out](../../etc/passwd) and ![img](img.png).\n\n```\n[not a link](nowhere.md)\n```\n\n\
             ## Usage\n\n[ref]: ./guide.md#guide\n",
        )
        .unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.md"), "# Hidden heading\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.md"), root.join("docs/out.md"))
            .unwrap();
        std::fs::write(root.join("notes.md"), "[x](docs/out.md#nothing)\n").unwrap();
        let leak = markdown_links(root, "notes.md");
        assert_eq!(leak.len(), 1, "{leak:?}");
        assert!(
            !leak[0].contains("hidden-heading"),
            "an outside file's headings: {leak:?}"
        );
        let problems = markdown_links(root, "docs/guide.md");
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("docs/guide.md:4: link to missing.md: no such file"));
        assert!(
            problems[1]
                .contains("README.md has no heading #install (it has #getting-started, #project)"),
            "{}",
            problems[1]
        );
        assert!(problems[2].contains("leads out of the repository"));
        assert!(problems[3].contains("img.png: no such file"));
    }

    #[test]
    fn slugs_follow_github() {
        let slugs = heading_slugs("# Hello, World!\n## API (v2)\n## API (v2)\n");
        assert_eq!(
            slugs.into_iter().collect::<Vec<_>>(),
            ["api-v2", "api-v2-1", "hello-world"]
        );
    }
}

//! What a GitHub webhook asks for, read from its (signature-checked) payload alone: no network,
//! no state, so every rule is unit-tested in milliseconds.

use serde_json::Value;

/// The marker every comment of the bridge carries: a comment holding it is never a request
/// (the bridge does not answer itself).
pub const COMMENT_MARKER: &str = "<!-- openclaw -->";

/// The repository a webhook is about, as its payload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRepo {
    /// `owner/name`.
    pub full_name: String,
    pub clone_url: String,
}

/// A request for work, or why the webhook asks for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Nothing to do; the reason, for the answer and the log.
    Ignore(String),
    /// Work on an issue (a mention in a comment on it, or the label given to it).
    Issue {
        repo: PayloadRepo,
        number: u64,
        title: String,
        body: String,
        instruction: String,
        sender: String,
    },
    /// A pull request was closed (merged or not): its head branch, when it is the
    /// repository's own.
    Closed { repo: PayloadRepo, branch: String },
    /// More work on a pull request's branch (a mention in a comment on it, or in a review
    /// comment on one of its lines).
    PullRequest {
        repo: PayloadRepo,
        number: u64,
        instruction: String,
        /// For a review comment: the file, the line and the diff hunk it is on.
        line: Option<ReviewLine>,
        sender: String,
    },
}

/// Where a review comment sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewLine {
    pub path: String,
    pub line: Option<u64>,
    pub diff_hunk: String,
}

fn ignore(why: impl Into<String>) -> Trigger {
    Trigger::Ignore(why.into())
}

/// What GitHub webhook `event` (`X-GitHub-Event`) with `payload` asks for, given the
/// `mention` handle and trigger `label` of this deployment.
pub fn github(event: &str, payload: &Value, mention: &str, label: &str) -> Trigger {
    let action = payload["action"].as_str().unwrap_or("");
    let sender = payload["sender"]["login"].as_str().unwrap_or("").to_owned();
    let Some(repo) = payload_repo(payload) else {
        return ignore("no repository in the payload");
    };
    if (event, action) == ("pull_request", "closed") {
        // Whoever closed it (a person, a merge bot): the branch's fate is the deployment's.
        let head = &payload["pull_request"]["head"];
        return match head["ref"].as_str() {
            Some(branch) if head["repo"]["full_name"] == repo.full_name.as_str() => {
                Trigger::Closed {
                    branch: branch.to_owned(),
                    repo,
                }
            }
            _ => ignore("the pull request's head is not a branch of this repository"),
        };
    }
    if payload["sender"]["type"] == "Bot" {
        return ignore("sent by a bot");
    }
    match (event, action) {
        ("issue_comment", "created") => {
            let text = payload["comment"]["body"].as_str().unwrap_or("");
            if text.contains(COMMENT_MARKER) {
                return ignore("a comment of this bridge");
            }
            let Some(instruction) = instruction(text, mention) else {
                return ignore(format!("the comment does not mention {mention}"));
            };
            let issue = &payload["issue"];
            let Some(number) = issue["number"].as_u64() else {
                return ignore("no issue number");
            };
            if issue.get("pull_request").is_some_and(|p| !p.is_null()) {
                if instruction.is_empty() {
                    return ignore("a mention without an instruction");
                }
                return Trigger::PullRequest {
                    repo,
                    number,
                    instruction,
                    line: None,
                    sender,
                };
            }
            Trigger::Issue {
                repo,
                number,
                title: issue["title"].as_str().unwrap_or("").to_owned(),
                body: issue["body"].as_str().unwrap_or("").to_owned(),
                instruction,
                sender,
            }
        }
        ("pull_request_review_comment", "created") => {
            let comment = &payload["comment"];
            let text = comment["body"].as_str().unwrap_or("");
            if text.contains(COMMENT_MARKER) {
                return ignore("a comment of this bridge");
            }
            let Some(instruction) = instruction(text, mention).filter(|i| !i.is_empty()) else {
                return ignore(format!(
                    "the review comment does not ask {mention} for anything"
                ));
            };
            let Some(number) = payload["pull_request"]["number"].as_u64() else {
                return ignore("no pull request number");
            };
            Trigger::PullRequest {
                repo,
                number,
                instruction,
                line: Some(ReviewLine {
                    path: comment["path"].as_str().unwrap_or("").to_owned(),
                    line: comment["line"]
                        .as_u64()
                        .or_else(|| comment["original_line"].as_u64()),
                    diff_hunk: comment["diff_hunk"].as_str().unwrap_or("").to_owned(),
                }),
                sender,
            }
        }
        ("issues", "labeled") => {
            if payload["label"]["name"].as_str() != Some(label) {
                return ignore(format!("a label other than {label}"));
            }
            let issue = &payload["issue"];
            let Some(number) = issue["number"].as_u64() else {
                return ignore("no issue number");
            };
            Trigger::Issue {
                repo,
                number,
                title: issue["title"].as_str().unwrap_or("").to_owned(),
                body: issue["body"].as_str().unwrap_or("").to_owned(),
                instruction: String::new(),
                sender,
            }
        }
        ("ping", _) => ignore("ping"),
        _ => ignore(format!("{event} {action} asks for nothing")),
    }
}

/// What GitLab webhook `event` (`X-Gitlab-Event`) with `payload` asks for: the same requests
/// as GitHub's, in GitLab's words (notes on issues and merge requests, diff notes, labels,
/// merge requests closed or merged).
pub fn gitlab(event: &str, payload: &Value, mention: &str, label: &str) -> Trigger {
    let sender = payload["user"]["username"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let project = &payload["project"];
    let Some(repo) = project["path_with_namespace"]
        .as_str()
        .zip(project["git_http_url"].as_str())
        .map(|(full_name, clone_url)| PayloadRepo {
            full_name: full_name.to_owned(),
            clone_url: clone_url.to_owned(),
        })
    else {
        return ignore("no project in the payload");
    };
    let attributes = &payload["object_attributes"];
    match event {
        "Note Hook" => {
            let text = attributes["note"].as_str().unwrap_or("");
            if text.contains(COMMENT_MARKER) {
                return ignore("a comment of this bridge");
            }
            let Some(instruction) = instruction(text, mention) else {
                return ignore(format!("the note does not mention {mention}"));
            };
            match attributes["noteable_type"].as_str() {
                Some("Issue") => {
                    let issue = &payload["issue"];
                    let Some(number) = issue["iid"].as_u64() else {
                        return ignore("no issue number");
                    };
                    Trigger::Issue {
                        repo,
                        number,
                        title: issue["title"].as_str().unwrap_or("").to_owned(),
                        body: issue["description"].as_str().unwrap_or("").to_owned(),
                        instruction,
                        sender,
                    }
                }
                Some("MergeRequest") if !instruction.is_empty() => {
                    let Some(number) = payload["merge_request"]["iid"].as_u64() else {
                        return ignore("no merge request number");
                    };
                    let position = &attributes["position"];
                    let line = position["new_path"].as_str().map(|path| ReviewLine {
                        path: path.to_owned(),
                        line: position["new_line"].as_u64(),
                        diff_hunk: String::new(),
                    });
                    Trigger::PullRequest {
                        repo,
                        number,
                        instruction,
                        line,
                        sender,
                    }
                }
                Some("MergeRequest") => ignore("a mention without an instruction"),
                _ => ignore("a note on neither an issue nor a merge request"),
            }
        }
        "Issue Hook" => {
            let titles = |which: &str| -> Vec<String> {
                payload["changes"]["labels"][which]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l["title"].as_str().map(str::to_owned))
                    .collect()
            };
            let added = titles("current").iter().any(|l| l == label)
                && !titles("previous").iter().any(|l| l == label);
            if !added {
                return ignore(format!("the label {label} was not given"));
            }
            let Some(number) = attributes["iid"].as_u64() else {
                return ignore("no issue number");
            };
            Trigger::Issue {
                repo,
                number,
                title: attributes["title"].as_str().unwrap_or("").to_owned(),
                body: attributes["description"].as_str().unwrap_or("").to_owned(),
                instruction: String::new(),
                sender,
            }
        }
        "Merge Request Hook" => match attributes["action"].as_str() {
            Some("close" | "merge")
                if attributes["source_project_id"] == attributes["target_project_id"] =>
            {
                match attributes["source_branch"].as_str() {
                    Some(branch) => Trigger::Closed {
                        branch: branch.to_owned(),
                        repo,
                    },
                    None => ignore("no source branch"),
                }
            }
            _ => ignore("a merge request event that closes nothing of this project"),
        },
        _ => ignore(format!("{event} asks for nothing")),
    }
}

fn payload_repo(payload: &Value) -> Option<PayloadRepo> {
    let repo = &payload["repository"];
    Some(PayloadRepo {
        full_name: repo["full_name"].as_str()?.to_owned(),
        clone_url: repo["clone_url"].as_str()?.to_owned(),
    })
}

/// The text after `mention` when `text` names it as a word (case aside), without it; `None`
/// when it does not. `@openclawbot` and `me@openclaw.dev` do not name `@openclaw`.
pub fn instruction(text: &str, mention: &str) -> Option<String> {
    // ASCII case folding keeps byte offsets, so they index `text` too.
    let lower = text.to_ascii_lowercase();
    let handle = mention.to_ascii_lowercase();
    let word = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    let mut from = 0;
    while let Some(at) = lower[from..].find(&handle).map(|i| i + from) {
        let end = at + handle.len();
        let before = lower[..at].chars().next_back();
        let after = lower[end..].chars().next();
        let starts = before.is_none_or(|c| !word(c));
        // A sentence's full stop ends the handle; `@openclaw.dev` does not.
        let full_stop = after == Some('.')
            && lower[end + 1..]
                .chars()
                .next()
                .is_none_or(char::is_whitespace);
        let ends = after.is_none_or(|c| !word(c)) || full_stop;
        if starts && ends {
            let rest = format!("{} {}", text[..at].trim_end(), text[end..].trim_start());
            let rest = rest.trim().trim_start_matches([',', ':']).trim();
            return Some(rest.to_owned());
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn comment(body: &str, on_pull_request: bool) -> Value {
        let mut issue =
            json!({"number": 7, "title": "Docs are missing", "body": "Please write them."});
        if on_pull_request {
            issue["pull_request"] = json!({"url": "https://api.github.com/repos/o/r/pulls/7"});
        }
        json!({
            "action": "created",
            "issue": issue,
            "comment": {"body": body},
            "repository": {"full_name": "o/r", "clone_url": "https://github.com/o/r.git"},
            "sender": {"login": "octocat", "type": "User"}
        })
    }

    #[test]
    fn a_mention_names_the_handle_as_a_word() {
        let m = "@openclaw";
        assert_eq!(
            instruction("@openclaw fix the typo", m).as_deref(),
            Some("fix the typo")
        );
        assert_eq!(
            instruction("@OpenClaw, add tests.", m).as_deref(),
            Some("add tests.")
        );
        assert_eq!(
            instruction("please do it @openclaw.", m).as_deref(),
            Some("please do it .")
        );
        assert_eq!(instruction("İİ @openclaw go", m).as_deref(), Some("İİ go"));
        assert_eq!(instruction("@openclaw", m).as_deref(), Some(""));
        assert_eq!(instruction("@openclawbot fix it", m), None);
        assert_eq!(instruction("mail me@openclaw.dev", m), None);
        assert_eq!(instruction("ask @openclaw-team", m), None);
        assert_eq!(instruction("no mention here", m), None);
        assert_eq!(
            instruction("x @openclawx then @openclaw go", m).as_deref(),
            Some("x @openclawx then go")
        );
    }

    #[test]
    fn comments_on_issues_and_pull_requests() {
        let t = github(
            "issue_comment",
            &comment("@openclaw write the docs", false),
            "@openclaw",
            "openclaw",
        );
        assert!(
            matches!(t, Trigger::Issue { number: 7, ref instruction, ref title, .. } if instruction == "write the docs" && title == "Docs are missing"),
            "{t:?}"
        );
        let t = github(
            "issue_comment",
            &comment("@openclaw use shorter lines", true),
            "@openclaw",
            "openclaw",
        );
        assert!(
            matches!(
                t,
                Trigger::PullRequest {
                    number: 7,
                    line: None,
                    ..
                }
            ),
            "{t:?}"
        );
        // A bare mention on an issue means "do the issue"; on a pull request it asks nothing.
        assert!(matches!(
            github(
                "issue_comment",
                &comment("@openclaw", false),
                "@openclaw",
                "openclaw"
            ),
            Trigger::Issue { .. }
        ));
        assert!(matches!(
            github(
                "issue_comment",
                &comment("@openclaw", true),
                "@openclaw",
                "openclaw"
            ),
            Trigger::Ignore(_)
        ));
        assert!(matches!(
            github(
                "issue_comment",
                &comment("thanks!", false),
                "@openclaw",
                "openclaw"
            ),
            Trigger::Ignore(_)
        ));
    }

    #[test]
    fn the_bridge_and_bots_are_not_heard() {
        let own = comment(&format!("{COMMENT_MARKER}\n@openclaw is on it"), false);
        assert!(matches!(
            github("issue_comment", &own, "@openclaw", "openclaw"),
            Trigger::Ignore(_)
        ));
        let mut bot = comment("@openclaw do it", false);
        bot["sender"]["type"] = json!("Bot");
        assert!(matches!(
            github("issue_comment", &bot, "@openclaw", "openclaw"),
            Trigger::Ignore(_)
        ));
        let mut edited = comment("@openclaw do it", false);
        edited["action"] = json!("edited");
        assert!(matches!(
            github("issue_comment", &edited, "@openclaw", "openclaw"),
            Trigger::Ignore(_)
        ));
    }

    #[test]
    fn review_comments_carry_their_line_and_labels_their_issue() {
        let review = json!({
            "action": "created",
            "comment": {"body": "@openclaw say why here", "path": "docs/USAGE.md", "line": 3, "diff_hunk": "@@ -0,0 +1,3 @@"},
            "pull_request": {"number": 9},
            "repository": {"full_name": "o/r", "clone_url": "https://github.com/o/r.git"},
            "sender": {"login": "octocat", "type": "User"}
        });
        let t = github(
            "pull_request_review_comment",
            &review,
            "@openclaw",
            "openclaw",
        );
        let Trigger::PullRequest {
            number: 9,
            line: Some(line),
            instruction,
            ..
        } = t
        else {
            panic!("{t:?}");
        };
        assert_eq!(
            (line.path.as_str(), line.line, instruction.as_str()),
            ("docs/USAGE.md", Some(3), "say why here")
        );
        let labeled = |name: &str| {
            json!({
                "action": "labeled",
                "label": {"name": name},
                "issue": {"number": 4, "title": "t", "body": "b"},
                "repository": {"full_name": "o/r", "clone_url": "https://github.com/o/r.git"},
                "sender": {"login": "octocat", "type": "User"}
            })
        };
        assert!(matches!(
            github("issues", &labeled("openclaw"), "@openclaw", "openclaw"),
            Trigger::Issue { number: 4, .. }
        ));
        assert!(matches!(
            github("issues", &labeled("bug"), "@openclaw", "openclaw"),
            Trigger::Ignore(_)
        ));
        let closed = |head_repo: &str| {
            json!({
                "action": "closed",
                "pull_request": {"number": 9, "merged": true, "head": {"ref": "openclaw/x", "repo": {"full_name": head_repo}}},
                "repository": {"full_name": "o/r", "clone_url": "https://github.com/o/r.git"},
                "sender": {"login": "merge-bot", "type": "Bot"}
            })
        };
        assert!(matches!(
            github("pull_request", &closed("o/r"), "@openclaw", "openclaw"),
            Trigger::Closed { ref branch, .. } if branch == "openclaw/x"
        ));
        assert!(matches!(
            github("pull_request", &closed("fork/r"), "@openclaw", "openclaw"),
            Trigger::Ignore(_)
        ));
    }

    #[test]
    fn gitlab_notes_labels_and_merges() {
        let project = json!({"path_with_namespace": "group/project", "git_http_url": "https://gitlab.com/group/project.git"});
        let note = |noteable: &str, text: &str| {
            json!({
                "object_kind": "note",
                "user": {"username": "dev"},
                "project": project,
                "object_attributes": {"note": text, "noteable_type": noteable,
                    "position": {"new_path": "README.md", "new_line": 4}},
                "issue": {"iid": 5, "title": "Docs", "description": "Write them."},
                "merge_request": {"iid": 8}
            })
        };
        let t = gitlab(
            "Note Hook",
            &note("Issue", "@openclaw write them"),
            "@openclaw",
            "openclaw",
        );
        assert!(
            matches!(t, Trigger::Issue { number: 5, ref sender, .. } if sender == "dev"),
            "{t:?}"
        );
        let t = gitlab(
            "Note Hook",
            &note("MergeRequest", "@openclaw shorter"),
            "@openclaw",
            "openclaw",
        );
        assert!(
            matches!(
                t,
                Trigger::PullRequest {
                    number: 8,
                    line: Some(ReviewLine { line: Some(4), .. }),
                    ..
                }
            ),
            "{t:?}"
        );
        assert!(matches!(
            gitlab("Note Hook", &note("Issue", "nice"), "@openclaw", "openclaw"),
            Trigger::Ignore(_)
        ));
        let labels = |previous: Value, current: Value| {
            json!({"object_kind": "issue", "user": {"username": "dev"}, "project": project,
                "object_attributes": {"iid": 6, "title": "t", "description": "d"},
                "changes": {"labels": {"previous": previous, "current": current}}})
        };
        assert!(matches!(
            gitlab(
                "Issue Hook",
                &labels(json!([]), json!([{"title": "openclaw"}])),
                "@openclaw",
                "openclaw"
            ),
            Trigger::Issue { number: 6, .. }
        ));
        assert!(matches!(
            gitlab(
                "Issue Hook",
                &labels(
                    json!([{"title": "openclaw"}]),
                    json!([{"title": "openclaw"}, {"title": "bug"}])
                ),
                "@openclaw",
                "openclaw"
            ),
            Trigger::Ignore(_)
        ));
        let merged = json!({"object_kind": "merge_request", "user": {"username": "dev"}, "project": project,
            "object_attributes": {"action": "merge", "source_branch": "openclaw/x", "source_project_id": 1, "target_project_id": 1}});
        assert!(matches!(
            gitlab("Merge Request Hook", &merged, "@openclaw", "openclaw"),
            Trigger::Closed { .. }
        ));
    }
}

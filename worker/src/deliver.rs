//! Where the work goes after its push: the pull request a task asks for — opened once,
//! whatever retries, redeliveries or second workers happen (it is looked up by its head
//! first) — and the forge links of the task's status.
//!
//! The forge's token is used here, in the worker process, and nowhere the agent reaches: the
//! tools' children get a built environment without it, and the request goes to the configured
//! API host only ([`openclaw_common::forge`]).

use openclaw_common::forge::github::GitHub;
use openclaw_common::forge::gitlab::GitLab;
use openclaw_common::forge::{self, Forge, ForgeRepo, NewPullRequest};
use openclaw_common::lifecycle::ForgeLinks;
use openclaw_common::task::PullRequestAsk;
use tracing::{info, warn};

use crate::git::{self, Checkout, TaskRepo};
use crate::run::Task;

/// What delivering the work gave: the links for the status, and what went wrong when a pull
/// request was asked for and not opened (said in the task's summary or reason).
pub(crate) struct Delivery {
    pub links: ForgeLinks,
    pub problem: Option<String>,
}

/// A forge client with the repository it was made for.
enum Forge2 {
    GitHub(GitHub, ForgeRepo),
    GitLab(GitLab, ForgeRepo),
}

/// GitHub's limit on a pull request's body is 65,536 characters.
const MAX_BODY_CHARS: usize = 60_000;
/// The most of a task's diff that is stored (the events stream takes messages up to 1 MiB).
const MAX_DIFF_BYTES: usize = 512 * 1024;

impl Task<'_> {
    /// Stores what the pushed branch changes against its base (capped, secrets taken out), for
    /// `GET /v1/tasks/{id}/diff`. A failure is logged, not the task's: the branch holds the work.
    pub(crate) async fn store_diff(&self, repo: &TaskRepo, checkout: &Checkout) {
        let (r, base) = (repo.clone(), checkout.base_branch.clone());
        let diff =
            tokio::task::spawn_blocking(move || git::branch_diff_text(&r, &base, MAX_DIFF_BYTES))
                .await;
        let stored = match diff {
            Ok(Ok(text)) => self
                .stores
                .events
                .put_diff(&self.spec.id, &self.config.redact(&text))
                .await
                .map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = stored {
            warn!(task_id = %self.spec.id, error = %e, "the task's diff was not stored");
        }
    }

    /// The pull request this task asks for: its submit's word, else its agent profile's.
    fn pull_request_ask(&self) -> Option<PullRequestAsk> {
        match &self.spec.pull_request {
            Some(ask) => ask.open.then(|| ask.clone()),
            None => self
                .config
                .agents
                .get(&self.spec.agent)
                .is_some_and(|p| p.pull_request)
                .then(|| PullRequestAsk {
                    open: true,
                    ..PullRequestAsk::default()
                }),
        }
    }

    /// The links of the task's pushed branch on its forge, opening the pull request it asks
    /// for when there is a commit: a draft when `partial` (the work of a task that stopped
    /// early) or asked so. `text` is the summary (or the reason the task stopped).
    pub(crate) async fn deliver(
        &self,
        repo: &TaskRepo,
        checkout: &Checkout,
        text: &str,
        has_commit: bool,
        partial: bool,
    ) -> Delivery {
        let asked = self.spec.pull_request.is_some();
        let not_on_a_forge = |why: String| Delivery {
            links: ForgeLinks::default(),
            // Said only when the submit asked: a profile's default stays quiet off forges.
            problem: asked.then_some(why),
        };
        let Some(url) = &self.spec.repo else {
            return not_on_a_forge("the task has no repository".into());
        };
        let github = self.config.github.as_ref();
        let gitlab = self.config.gitlab.as_ref();
        let made = if let Some(repo_on) = github.and_then(|g| g.repo_of(url)) {
            self.github()
                .cloned()
                .map(|client| Forge2::GitHub(client, repo_on))
                .ok_or_else(|| {
                    openclaw_common::forge::ForgeError::Invalid("no GitHub client".into())
                })
        } else if let Some(repo_on) = gitlab.and_then(|g| g.repo_of(url).map(|r| (g, r))) {
            GitLab::new(repo_on.0.clone()).map(|client| Forge2::GitLab(client, repo_on.1))
        } else if github.is_none() && gitlab.is_none() {
            return not_on_a_forge("this worker has no forge configured".into());
        } else {
            let hosts: Vec<&str> = github
                .map(|g| g.web_host.as_str())
                .into_iter()
                .chain(gitlab.map(|g| g.web_host.as_str()))
                .collect();
            return not_on_a_forge(format!(
                "the repository is on none of {} (owner/name)",
                hosts.join(", ")
            ));
        };
        match made {
            Ok(Forge2::GitHub(client, forge_repo)) => {
                self.deliver_on(
                    &client,
                    &forge_repo,
                    repo,
                    checkout,
                    text,
                    has_commit,
                    partial,
                )
                .await
            }
            Ok(Forge2::GitLab(client, forge_repo)) => {
                self.deliver_on(
                    &client,
                    &forge_repo,
                    repo,
                    checkout,
                    text,
                    has_commit,
                    partial,
                )
                .await
            }
            Err(e) => Delivery {
                links: ForgeLinks::default(),
                problem: Some(e.to_string()),
            },
        }
    }

    /// [`Self::deliver`] on the forge `forge_repo` is on.
    #[allow(clippy::too_many_arguments)]
    async fn deliver_on<F: Forge>(
        &self,
        forge: &F,
        forge_repo: &ForgeRepo,
        repo: &TaskRepo,
        checkout: &Checkout,
        text: &str,
        has_commit: bool,
        partial: bool,
    ) -> Delivery {
        let mut delivery = Delivery {
            links: ForgeLinks::default(),
            problem: None,
        };
        let ask = self.pull_request_ask();
        let head = self.spec.push_branch.to_string();
        let base = ask
            .as_ref()
            .and_then(|a| a.base.as_ref().map(ToString::to_string))
            .unwrap_or_else(|| checkout.base_branch.clone());
        delivery.links.compare_url = Some(forge.compare_url(forge_repo, &base, &head));
        let Some(ask) = ask.filter(|_| has_commit) else {
            return delivery;
        };
        // What the branch changes against the base the clone fetched.
        let (r, fetched_base) = (repo.clone(), checkout.base_branch.clone());
        let files = tokio::task::spawn_blocking(move || git::files_since(&r, &fetched_base))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let new = NewPullRequest {
            head,
            base,
            title: self.pull_request_title(&ask, text, partial),
            body: self.pull_request_body(text, &files, partial, ask.closes),
            draft: ask.draft || partial,
        };
        match forge::ensure_pull_request(forge, forge_repo, &new).await {
            Ok(pr) => {
                info!(task_id = %self.spec.id, url = %pr.url, number = pr.number, "pull request");
                delivery.links.pull_request = Some(pr);
            }
            Err(e) => {
                let problem = self.config.redact(&e.to_string());
                warn!(task_id = %self.spec.id, %problem, "the pull request was not opened");
                delivery.problem = Some(problem);
            }
        }
        delivery
    }

    /// The submit's title, else the summary's first line (cut to 72 characters).
    fn pull_request_title(&self, ask: &PullRequestAsk, text: &str, partial: bool) -> String {
        if let Some(title) = &ask.title {
            return title.clone();
        }
        let first = self
            .config
            .redact(text)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.trim_start_matches('#').trim().to_owned())
            .unwrap_or_else(|| format!("OpenClaw task {}", self.spec.id));
        let mut title: String = first.chars().take(72).collect();
        if first.chars().count() > 72 {
            title.push('…');
        }
        if partial {
            title = format!("Partial: {title}");
        }
        title
    }

    /// The summary, the files changed, what the task used and its id.
    fn pull_request_body(
        &self,
        text: &str,
        files: &[String],
        partial: bool,
        closes: Option<u64>,
    ) -> String {
        let mut body = String::new();
        if let Some(issue) = closes {
            body.push_str(&format!("Closes #{issue}.\n\n"));
        }
        if partial {
            body.push_str("**The task stopped before it finished; this is its work so far.**\n\n");
        }
        body.push_str(self.config.redact(text).trim());
        body.push_str("\n\n");
        if !files.is_empty() {
            body.push_str(&format!("**Files changed** ({}):\n", files.len()));
            for f in files.iter().take(100) {
                body.push_str(&format!("- `{f}`\n"));
            }
            if files.len() > 100 {
                body.push_str(&format!("- … and {} more\n", files.len() - 100));
            }
            body.push('\n');
        }
        let usage = self.attempt_usage();
        body.push_str(&format!(
            "---\nOpenClaw task `{}` · agent `{}` · model `{}` · this attempt: {}\n",
            self.spec.id,
            self.spec.agent,
            self.model,
            usage.summary()
        ));
        if body.chars().count() > MAX_BODY_CHARS {
            body = body.chars().take(MAX_BODY_CHARS).collect();
            body.push_str("\n\n[… cut …]\n");
        }
        body
    }
}

//! The task's workspace: its directory, the checkout, and every git step on it (clone,
//! commit, push, the fetch after a rejected push), each run off the runtime and traced as a
//! step of the attempt, each against the task's URL as the egress policy allows it now.

use std::time::Instant;

use openclaw_common::egress::RepoUrl;
use openclaw_common::event::EventKind;
use openclaw_common::store::{EventWriter, StoreError};
use tracing::warn;

use crate::git::{self, Checkout, GitError, TaskRepo};
use crate::run::Task;

impl Task<'_> {
    pub(crate) fn work_dir(&self) -> std::io::Result<tempfile::TempDir> {
        let mut b = tempfile::Builder::new();
        b.prefix("openclaw-task-");
        match &self.config.work_dir {
            Some(parent) => {
                std::fs::create_dir_all(parent)?;
                b.tempdir_in(parent)
            }
            None => b.tempdir(),
        }
    }

    /// The task's repository URL as the egress policy allows it now: parsed again (a task
    /// published by other means than the bridge is checked here too) and its host's addresses
    /// resolved again just before connecting. Checked before every clone, fetch and push.
    pub(crate) async fn reachable_repo(&self) -> Result<RepoUrl, GitError> {
        let Some(repo) = &self.spec.repo else {
            return Err(GitError::Other("the task names no repository".into()));
        };
        let policy = &self.config.repo_policy;
        let checked = match RepoUrl::parse(repo.as_str(), policy) {
            Ok(r) => policy.check_resolved(&r).await.map(|()| r),
            Err(e) => Err(e.to_string()),
        };
        checked.map_err(|cause| {
            warn!(task_id = %self.spec.id, repo = %openclaw_common::config::redact_url(repo.as_str()), %cause, "repo refused by the egress policy");
            GitError::Unreachable {
                detail: cause,
                transient: false,
            }
        })
    }

    /// The git settings of this task: the worker's, or — when the worker has no git
    /// credentials and the repository is on GitHub, which it reaches as a GitHub App — the
    /// installation token minted for this repository, offered to GitHub's host alone.
    pub(crate) async fn git_config(&self) -> crate::config::GitConfig {
        self.git
            .get_or_init(|| async {
                let own = self.config.git.clone();
                let has_credentials =
                    own.token.is_some() || own.ssh_key.is_some() || own.ssh_key_path.is_some();
                let (Some(github), Some(url)) = (&self.config.github, &self.spec.repo) else {
                    return own;
                };
                let Some(repo) = github.repo_of(url).filter(|_| !has_credentials) else {
                    return own;
                };
                let minted = match self.github() {
                    Some(client) => client.installation_token(&repo).await,
                    None => Ok(None),
                };
                match (minted, openclaw_common::egress::HostList::parse(&github.web_host)) {
                    (Ok(Some(token)), Ok(hosts)) => crate::config::GitConfig {
                        username: Some("x-access-token".into()),
                        token: Some(token),
                        credential_hosts: hosts,
                        ..own
                    },
                    (Ok(None), _) => own,
                    (Err(e), _) => {
                        warn!(task_id = %self.spec.id, error = %e, "no installation token for git; cloning without credentials");
                        own
                    }
                    (_, Err(e)) => {
                        warn!(task_id = %self.spec.id, error = %e, "GitHub's host is not a host list entry");
                        own
                    }
                }
            })
            .await
            .clone()
    }

    /// This task's GitHub client, when GitHub is configured (made once).
    pub(crate) fn github(&self) -> Option<&openclaw_common::forge::github::GitHub> {
        self.github
            .get_or_init(|| {
                let config = self.config.github.clone()?;
                openclaw_common::forge::github::GitHub::new(config)
                    .inspect_err(|e| warn!(task_id = %self.spec.id, error = %e, "no GitHub client"))
                    .ok()
            })
            .as_ref()
    }

    /// Clones (blocking, off the runtime) and publishes `cloned`.
    pub(crate) async fn clone_repo(
        &self,
        task_repo: &TaskRepo,
        limits: &openclaw_common::agents::Limits,
        events: &mut EventWriter,
    ) -> Result<Result<Checkout, GitError>, StoreError> {
        let limits = git::RepoLimits {
            max_bytes: limits.max_repo_bytes,
            max_files: limits.max_repo_files,
            min_free_bytes: limits.min_free_disk_bytes,
        };
        let repo = match self.reachable_repo().await {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let started = Instant::now();
        let (dir, base, push, git) = (
            task_repo.clone(),
            self.spec.branch.clone(),
            self.spec.push_branch.clone(),
            self.git_config().await,
        );
        let cloned = self
            .git_step("git clone", move || {
                git::clone(&repo, &dir, base.as_ref(), &push, &git, &limits)
            })
            .await;
        if let Err(e) = &cloned {
            warn!(task_id = %self.spec.id, cause = %self.config.redact(&e.detail()), "clone failed");
        }
        if let Ok(c) = &cloned {
            events
                .publish(EventKind::Cloned {
                    sha: c.sha.clone(),
                    branch: c.branch.clone(),
                    duration_ms: started.elapsed().as_millis() as u64,
                })
                .await?;
        }
        Ok(cloned)
    }

    /// Runs the blocking git step `run` off the runtime, traced as `name`.
    pub(crate) async fn git_step<T: Send + 'static>(
        &self,
        name: &str,
        run: impl FnOnce() -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
        let started = std::time::SystemTime::now();
        let result = tokio::task::spawn_blocking(run)
            .await
            .unwrap_or_else(|e| Err(GitError::Other(format!("{name} panicked: {e}"))));
        self.tracer.step(
            name,
            started,
            result.as_ref().err().map(|e| e.to_string()).as_deref(),
        );
        result
    }

    /// After a rejected push: when the task branch now ends with this task's final commit, its
    /// sha and summary. An earlier attempt that lost the task to this one while it was still
    /// working pushed after this one cloned; its commit is the task's result, and it cannot
    /// record that itself (this attempt's events fence it off).
    pub(crate) async fn pushed_by_another_attempt(
        &self,
        repo: &TaskRepo,
    ) -> Option<(String, String)> {
        let tip = match self.reachable_repo().await {
            Ok(url) => {
                let (r, b, g) = (
                    repo.clone(),
                    self.spec.push_branch.clone(),
                    self.git_config().await,
                );
                self.git_step("git fetch", move || git::remote_tip(&r, &url, &b, &g))
                    .await
            }
            Err(e) => Err(e),
        };
        match tip {
            Ok(Some((sha, message))) => {
                git::final_commit_summary(&message, &self.spec.id).map(|summary| (sha, summary))
            }
            Ok(None) => None,
            Err(e) => {
                warn!(task_id = %self.spec.id, cause = %self.config.redact(&e.detail()), "cannot read the task branch after a rejected push");
                None
            }
        }
    }

    /// Commits all changes and pushes them; `Ok(None)` when nothing changed.
    pub(crate) async fn commit_and_push(
        &self,
        events: &mut EventWriter,
        repo: &TaskRepo,
        message: &str,
        checkpoint: bool,
    ) -> Result<Result<Option<String>, GitError>, StoreError> {
        let (r, m, g) = (repo.clone(), message.to_owned(), self.git_config().await);
        let committed = self
            .git_step("git commit", move || git::commit_all(&r, &m, &g))
            .await;
        let commit = match committed {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Ok(None)),
            Err(e) => return Ok(Err(e)),
        };
        events
            .publish(EventKind::Committed {
                sha: commit.sha.clone(),
                files: commit.files.clone(),
                checkpoint,
            })
            .await?;
        // The push goes to the URL checked here, now, and the event names that URL.
        let url = match self.reachable_repo().await {
            Ok(url) => url,
            Err(e) => return Ok(Err(e)),
        };
        let remote = openclaw_common::config::redact_url(url.as_str());
        let (r, b, g) = (
            repo.clone(),
            self.spec.push_branch.clone(),
            self.git_config().await,
        );
        let pushed = self
            .git_step("git push", move || git::push(&r, &url, &b, &g))
            .await;
        if let Err(e) = pushed {
            return Ok(Err(e));
        }
        events
            .publish(EventKind::Pushed {
                remote,
                branch: self.spec.push_branch.to_string(),
                sha: commit.sha.clone(),
            })
            .await?;
        Ok(Ok(Some(commit.sha)))
    }
}

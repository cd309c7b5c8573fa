//! How an attempt ends and what it writes: the completion (commit, push, `completed`, the
//! status), a hand-back on SIGTERM (a checkpoint pushed first), a cancel, a failure — each
//! through the attempt's fenced status writes, which a later attempt's claim stops.

use std::time::Duration;

use openclaw_common::event::EventKind;
use openclaw_common::lifecycle::{self, AttemptEnd, ForgeLinks};
use openclaw_common::status::Usage;
use openclaw_common::store::{EventWriter, Settle, StoreError};
use tracing::{info, warn};

use crate::git::{self, Checkout, GitError, TaskRepo};
use crate::prompt::commit_message;
use crate::run::{Outcome, Task};

impl Task<'_> {
    /// Commit, push, `completed`, status — and only then ack.
    pub(crate) async fn finish(
        &self,
        events: &mut EventWriter,
        repo: &TaskRepo,
        checkout: Option<&Checkout>,
        summary: String,
    ) -> Result<(Outcome, Settle), StoreError> {
        let mut commit_sha = None;
        if checkout.is_some() {
            let r = repo.clone();
            let changed = self
                .git_step("git status", move || git::changed_files(&r))
                .await
                .unwrap_or_default();
            let message = commit_message(&summary, self.spec, &changed);
            match self.commit_and_push(events, repo, &message, false).await? {
                Ok(sha) => commit_sha = sha,
                Err(e @ GitError::Rejected(_)) => {
                    if let Some((sha, summary)) = self.pushed_by_another_attempt(repo).await {
                        info!(task_id = %self.spec.id, commit = %sha, "another attempt of this task pushed its result first; recording that");
                        return self
                            .record_completion(events, repo, checkout, Some(sha), summary)
                            .await;
                    }
                    return self.fail(events, e.to_string(), false).await;
                }
                Err(e) => {
                    let transient = e.is_transient();
                    return self.fail(events, e.to_string(), transient).await;
                }
            }
        }
        self.record_completion(events, repo, checkout, commit_sha, summary)
            .await
    }

    /// The pull request (when asked for), `completed`, then the status: the last steps before
    /// the ack.
    pub(crate) async fn record_completion(
        &self,
        events: &mut EventWriter,
        repo: &TaskRepo,
        checkout: Option<&Checkout>,
        commit_sha: Option<String>,
        mut summary: String,
    ) -> Result<(Outcome, Settle), StoreError> {
        let branch = checkout.map(|_| self.spec.push_branch.to_string());
        let links = match checkout {
            Some(checkout) => {
                if commit_sha.is_some() {
                    self.store_diff(repo, checkout).await;
                }
                let delivery = self
                    .deliver(repo, checkout, &summary, commit_sha.is_some(), false)
                    .await;
                if let Some(problem) = delivery.problem {
                    summary.push_str(&format!("\n\n(No pull request: {problem})"));
                }
                delivery.links
            }
            None => ForgeLinks::default(),
        };
        // The totals: earlier attempts' (in the status) and this one's.
        let earlier = self
            .stores
            .status
            .get(&self.spec.id)
            .await?
            .and_then(|s| s.usage)
            .unwrap_or_default();
        events
            .publish(EventKind::Completed {
                summary: summary.clone(),
                commit: commit_sha.clone(),
                branch,
                usage: Some(earlier.plus(&self.attempt_usage())),
                pull_request: links.pull_request.clone(),
            })
            .await?;
        self.set_status(AttemptEnd::Completed {
            commit: commit_sha.clone(),
            summary: summary.clone(),
            links,
        })
        .await?;
        Ok((
            Outcome::Completed {
                commit: commit_sha,
                summary,
            },
            Settle::Ack,
        ))
    }

    /// Commits what the checkout holds as a checkpoint on the task branch and pushes it; the
    /// words that say what became of it (for the reason of the attempt's end).
    async fn push_checkpoint(
        &self,
        events: &mut EventWriter,
        repo: &TaskRepo,
        checkout: Option<&Checkout>,
    ) -> Result<(String, Option<String>), StoreError> {
        let Some(checkout) = checkout else {
            return Ok((String::new(), None));
        };
        let message = format!(
            "OpenClaw checkpoint (attempt {})\n\n{}OpenClaw-Checkpoint: true\n",
            self.attempt,
            crate::prompt::trailers(self.spec)
        );
        Ok(
            match self.commit_and_push(events, repo, &message, true).await? {
                Ok(Some(sha)) => {
                    self.store_diff(repo, checkout).await;
                    (
                        format!(
                            "; partial work pushed to {} @ {}",
                            self.spec.push_branch,
                            &sha[..sha.len().min(12)]
                        ),
                        Some(sha),
                    )
                }
                Ok(None) => ("; no changes to keep".to_owned(), None),
                Err(e) => (format!("; the partial work could not be pushed: {e}"), None),
            },
        )
    }

    /// SIGTERM: push what there is to the task branch and hand the task back.
    pub(crate) async fn interrupted(
        &self,
        events: &mut EventWriter,
        repo: &TaskRepo,
        checkout: Option<&Checkout>,
    ) -> Result<(Outcome, Settle), StoreError> {
        let mut note = "interrupted (SIGTERM)".to_owned();
        let (kept, checkpoint) = self.push_checkpoint(events, repo, checkout).await?;
        note.push_str(&kept);
        events
            .publish(EventKind::Failed {
                reason: format!("{note}; the task will resume"),
                retryable: true,
            })
            .await?;
        self.set_status(AttemptEnd::HandedBack {
            reason: note,
            checkpoint,
        })
        .await?;
        Ok((
            Outcome::Interrupted,
            Settle::Nak(Duration::from_millis(200)),
        ))
    }

    /// The agent stopped before it finished (a limit, a loop it was stuck in, the model's
    /// error): the work so far is pushed as a checkpoint first, so nothing is thrown away — a
    /// retry, a follow-up on the branch or a person picks it up — then the attempt fails. On
    /// the last attempt of a task that asked for a pull request, the checkpoint is opened as a
    /// draft one.
    pub(crate) async fn ended_early(
        &self,
        events: &mut EventWriter,
        repo: &TaskRepo,
        checkout: Option<&Checkout>,
        reason: String,
        transient: bool,
    ) -> Result<(Outcome, Settle), StoreError> {
        let (kept, checkpoint) = self.push_checkpoint(events, repo, checkout).await?;
        let mut reason = format!("{reason}{kept}");
        let mut links = ForgeLinks::default();
        let last = !transient || self.last_attempt;
        if let Some(checkout) = checkout
            && checkpoint.is_some()
            && last
        {
            let delivery = self.deliver(repo, checkout, &reason, true, true).await;
            if let Some(pr) = &delivery.links.pull_request {
                reason.push_str(&format!("; draft pull request: {}", pr.url));
            }
            links = delivery.links;
        }
        self.fail_with(events, reason, transient, checkpoint, links)
            .await
    }

    pub(crate) async fn canceled(
        &self,
        events: &mut EventWriter,
        reason: &str,
    ) -> Result<(Outcome, Settle), StoreError> {
        events
            .publish(EventKind::Canceled {
                reason: reason.to_owned(),
            })
            .await?;
        self.set_status(AttemptEnd::Canceled).await?;
        Ok((Outcome::Canceled, Settle::Term))
    }

    /// `failed`: retried later when transient and deliveries remain, else final.
    pub(crate) async fn fail(
        &self,
        events: &mut EventWriter,
        reason: String,
        transient: bool,
    ) -> Result<(Outcome, Settle), StoreError> {
        self.fail_with(events, reason, transient, None, ForgeLinks::default())
            .await
    }

    /// [`Self::fail`], recording the `checkpoint` the attempt pushed first and where it is on
    /// the forge.
    async fn fail_with(
        &self,
        events: &mut EventWriter,
        reason: String,
        transient: bool,
        checkpoint: Option<String>,
        links: ForgeLinks,
    ) -> Result<(Outcome, Settle), StoreError> {
        let reason = self.config.redact(&reason);
        let retry = transient && !self.last_attempt;
        warn!(task_id = %self.spec.id, %reason, retry, "task failed");
        events
            .publish(EventKind::Failed {
                reason: reason.clone(),
                retryable: retry,
            })
            .await?;
        self.set_status(if retry {
            AttemptEnd::HandedBack {
                reason: reason.clone(),
                checkpoint,
            }
        } else {
            AttemptEnd::Failed {
                reason: reason.clone(),
                checkpoint,
                links,
            }
        })
        .await?;
        let settle = if retry {
            Settle::Nak(self.config.nak_delay)
        } else {
            Settle::Term
        };
        Ok((Outcome::Failed { reason, retry }, settle))
    }

    /// This attempt's usage so far, its worker time included.
    pub(crate) fn attempt_usage(&self) -> Usage {
        let mut usage = self.usage.lock().map(|u| u.clone()).unwrap_or_default();
        usage.worker_seconds = self.taken.elapsed().as_secs_f64();
        usage.compute_cost_usd = self
            .config
            .worker_cost_per_hour
            .map(|rate| usage.worker_seconds * rate / 3600.0);
        usage
    }

    /// Records how this attempt ended ([`lifecycle::record_attempt_end`]), unless a later
    /// attempt has claimed the task; the first call of an attempt also adds its usage to the
    /// task's totals.
    pub(crate) async fn set_status(&self, end: AttemptEnd) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let add = !self.usage_recorded.load(Ordering::SeqCst);
        let usage = self.attempt_usage();
        let written = self
            .stores
            .status
            .update(&self.spec.id, |s| {
                lifecycle::record_attempt_end(s, self.attempt, &end, add.then_some(&usage))
            })
            .await?;
        match written {
            Some((_, true)) => {
                self.usage_recorded.store(true, Ordering::SeqCst);
                Ok(())
            }
            Some((_, false)) => Err(StoreError::Superseded(self.spec.id)),
            // Removed by hand (a purge): nothing left to update.
            None => Ok(()),
        }
    }
}

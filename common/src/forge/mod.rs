//! Forges: where a task's branch becomes a pull request and where webhooks come from.
//!
//! One small trait ([`Forge`]) over what the bridge and the worker ask of a forge — find or
//! open a pull request, edit it, comment on an issue, read a user's permission, delete a
//! branch — so GitLab, Gitea/Forgejo and Bitbucket can follow GitHub ([`github`]).
//!
//! **Architecture Invariant:** a forge's token is sent to its API host only. Requests are built
//! from the configured API URL and validated path segments (never from a URL a response or a
//! client names), redirects are not followed, and the token appears in no error, log line or
//! event: errors carry the forge's status and message only.

pub mod app;
pub mod github;
pub mod gitlab;
mod http;
pub mod webhook;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::egress::RepoUrl;

/// A repository on a forge: `owner/name` as its API names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForgeRepo {
    pub owner: String,
    pub name: String,
}

impl ForgeRepo {
    /// `owner/name` from the path of a repository URL (`/owner/name` or `/owner/name.git`),
    /// each part as GitHub allows it: letters, digits, `-`, `_`, `.`, not `.`/`..`.
    pub fn from_path(path: &str) -> Option<Self> {
        let repo = Self::from_nested_path(path)?;
        (!repo.owner.contains('/')).then_some(repo)
    }

    /// Like [`ForgeRepo::from_path`], the owner being a group path (`group/subgroup`), as
    /// GitLab's projects have them.
    pub fn from_nested_path(path: &str) -> Option<Self> {
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let (owner, name) = path.rsplit_once('/')?;
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 100
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let depth = owner.split('/').count();
        (depth <= 20 && owner.split('/').all(valid) && valid(name)).then(|| Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The path of `url` when its host is `host` (a forge's web host), else `None`.
    pub fn path_on(url: &RepoUrl, host: &str) -> Option<String> {
        url.remote()
            .filter(|r| r.host.eq_ignore_ascii_case(host))
            .and_then(|_| Self::url_path(url))
    }

    /// The path of a repository URL (`https://host/o/r.git`, `ssh://git@host/o/r.git`, or
    /// scp-like `git@host:o/r.git`).
    pub fn url_path(url: &RepoUrl) -> Option<String> {
        let raw = url.as_str();
        if raw.contains("://") {
            Some(url::Url::parse(raw).ok()?.path().to_owned())
        } else {
            Some(raw.split_once(':')?.1.to_owned())
        }
    }
}

impl std::fmt::Display for ForgeRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A pull request as a task's status and `completed` event carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    /// Its page on the forge (`html_url`), what a person opens.
    pub url: String,
    pub number: u64,
    /// Opened as a draft (the task ended on a checkpoint).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draft: bool,
}

/// What to open: a pull request from `head` to `base` in one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
}

/// What a user may do in a repository, as far as triggering work goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// admin, maintain or write: may push, so may ask an agent to.
    Write,
    /// read, triage or none.
    Read,
}

/// A comment on an issue or a pull request's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentId(pub u64);

/// The conversation a comment is in: GitHub numbers issues and pull requests alike and
/// comments on both through one API; GitLab keeps issues and merge requests apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "number", rename_all = "snake_case")]
pub enum Thread {
    Issue(u64),
    PullRequest(u64),
}

impl Thread {
    pub fn number(self) -> u64 {
        match self {
            Self::Issue(n) | Self::PullRequest(n) => n,
        }
    }
}

/// What went wrong talking to a forge. Never holds a token: the forge's status and message,
/// or the transport's error text (which names the URL, and the URL holds no credential).
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{forge} answered {status} to {what}: {message}")]
    Refused {
        forge: &'static str,
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("{forge} could not be reached for {what}: {message}")]
    Unreachable {
        forge: &'static str,
        what: &'static str,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ForgeError {
    /// The forge refused because what was asked exists already (GitHub 422, GitLab 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                status: 409 | 422,
                ..
            }
        )
    }

    /// Worth trying again later: the forge was down, slow or rate-limiting.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { status, .. } => *status == 429 || *status >= 500,
            Self::Unreachable { .. } => true,
            Self::Invalid(_) => false,
        }
    }
}

/// What the bridge and the worker ask of a forge. Every call names the repository; an
/// implementation authenticates for that repository alone where it can (a GitHub App's
/// installation token is minted for the one repository).
pub trait Forge: Send + Sync {
    /// The repository `url` names, when it is on this forge (its host is the forge's).
    fn repo_of(&self, url: &RepoUrl) -> Option<ForgeRepo>;

    /// The pull request (open or not) whose head is `branch` of `repo` itself, newest first.
    fn find_pull_request(
        &self,
        repo: &ForgeRepo,
        branch: &str,
    ) -> impl Future<Output = Result<Option<PullRequestState>, ForgeError>> + Send;

    fn create_pull_request(
        &self,
        repo: &ForgeRepo,
        new: &NewPullRequest,
    ) -> impl Future<Output = Result<PullRequestRef, ForgeError>> + Send;

    fn update_pull_request(
        &self,
        repo: &ForgeRepo,
        number: u64,
        title: &str,
        body: &str,
    ) -> impl Future<Output = Result<PullRequestRef, ForgeError>> + Send;

    /// A browser link comparing `head` with `base`.
    fn compare_url(&self, repo: &ForgeRepo, base: &str, head: &str) -> String;

    /// Pull request `number`: its head branch (in `repo` itself, else `None`) and title.
    fn pull_request_head(
        &self,
        repo: &ForgeRepo,
        number: u64,
    ) -> impl Future<Output = Result<PullRequestHead, ForgeError>> + Send;

    /// What `user` may do in `repo`.
    fn permission(
        &self,
        repo: &ForgeRepo,
        user: &str,
    ) -> impl Future<Output = Result<Permission, ForgeError>> + Send;

    /// A new comment in `thread`.
    fn comment(
        &self,
        repo: &ForgeRepo,
        thread: Thread,
        body: &str,
    ) -> impl Future<Output = Result<CommentId, ForgeError>> + Send;

    fn edit_comment(
        &self,
        repo: &ForgeRepo,
        thread: Thread,
        comment: CommentId,
        body: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;

    /// Deletes `branch` of `repo`; one already gone is not an error.
    fn delete_branch(
        &self,
        repo: &ForgeRepo,
        branch: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
}

/// A pull request's head, as a follow-up needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestHead {
    /// The head branch when it is in the repository itself (not a fork's).
    pub branch: Option<String>,
    pub title: String,
    pub open: bool,
}

/// A pull request found by its head, with whether it is still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestState {
    pub pull_request: PullRequestRef,
    pub open: bool,
}

/// The task's pull request, opened once: one found open with this head is updated (a retry, a
/// redelivery or a second worker got there first) rather than a second opened; a create the
/// forge refuses because one appeared meanwhile is answered by looking again.
pub async fn ensure_pull_request(
    forge: &impl Forge,
    repo: &ForgeRepo,
    new: &NewPullRequest,
) -> Result<PullRequestRef, ForgeError> {
    if let Some(found) = forge.find_pull_request(repo, &new.head).await?
        && found.open
    {
        return forge
            .update_pull_request(repo, found.pull_request.number, &new.title, &new.body)
            .await;
    }
    match forge.create_pull_request(repo, new).await {
        Ok(pr) => Ok(pr),
        // "A pull request already exists for …" — another creator won the race.
        Err(e) if e.is_conflict() => match forge.find_pull_request(repo, &new.head).await? {
            Some(found) if found.open => Ok(found.pull_request),
            _ => forge.create_pull_request(repo, new).await,
        },
        Err(e) => Err(e),
    }
}

//! Git with libgit2 (git2): clone, choose the branch, commit, push. Blocking: call from
//! `spawn_blocking`. Credentials are given to libgit2 only through its credentials callback,
//! so they never land in a URL, a git config, a log line or an event.
//!
//! **Architecture Invariant:** nothing in the checkout steers git. The git directory is not in
//! the work tree the tools see ([`TaskRepo`]: `work/` and `git/` side by side), so there is no
//! `.git` for a tool, a committed symlink or a command to reach; the repository is always
//! opened by its git directory (no discovery, no `core.worktree`, no gitlink file), and every
//! fetch and push goes to the task's URL through an anonymous remote, never to a remote read
//! from a config.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use git2::{FetchOptions, PushOptions, Repository, RepositoryInitOptions, Signature};
use openclaw_common::egress::RepoUrl;
use openclaw_common::ids::BranchName;

use crate::config::GitConfig;

mod remote;

pub use remote::KnownHosts;
use remote::callbacks;

/// Why a git step failed. `Auth`, `NotFound` and `Rejected` will not get better by retrying.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git authentication failed: {0}")]
    Auth(String),
    #[error("the ssh host key of the remote is not trusted ({0}); list it in GIT_SSH_KNOWN_HOSTS")]
    HostKey(String),
    #[error("git: not found: {0}")]
    NotFound(String),
    #[error("push rejected: {0}")]
    Rejected(String),
    /// Larger than the agent profile allows (`max_repo_bytes`, `max_repo_files`).
    #[error("the repository is too large for this agent: {0}")]
    TooLarge(String),
    /// The remote refused by policy, or not reachable (connection, TLS, DNS, transport): one
    /// text for every cause, so that the task API cannot be used to scan the worker's network.
    /// `detail` is for the worker's log.
    #[error("{}", openclaw_common::egress::UNREACHABLE)]
    Unreachable { detail: String, transient: bool },
    #[error("git: {0}")]
    Other(String),
}

impl GitError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable {
                transient: true,
                ..
            }
        )
    }

    /// The cause, for the worker's log (the `Display` text is what clients see).
    pub fn detail(&self) -> String {
        match self {
            Self::Unreachable { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    /// OS errors of the local file system (as libgit2 words them, from strerror), which are
    /// not the network's: ENAMETOOLONG, ELOOP, ENOSPC, EDQUOT, EACCES, EPERM, EROFS.
    fn local_os_error(lower: &str) -> bool {
        [
            "name too long",
            "too many levels of symbolic links",
            "no space left",
            "disk quota exceeded",
            "permission denied",
            "operation not permitted",
            "read-only file system",
            "path too long",
        ]
        .iter()
        .any(|m| lower.contains(m))
    }

    fn classify(e: git2::Error) -> Self {
        let msg = e.message().to_owned();
        let lower = msg.to_ascii_lowercase();
        if e.code() == git2::ErrorCode::Certificate
            || lower.contains("hostkey")
            || lower.contains("host key")
        {
            Self::HostKey(msg)
        } else if e.code() == git2::ErrorCode::Auth
            || lower.contains("authentication")
            || lower.contains("401")
            || lower.contains("403")
        {
            Self::Auth(msg)
        } else if e.code() == git2::ErrorCode::NotFound
            || lower.contains("not found")
            || lower.contains("404")
            || lower.contains("does not appear to be a git repository")
            || lower.contains("could not find repository")
            || lower.contains("failed to resolve path")
            || lower.contains("remote branch")
        {
            Self::NotFound(msg)
        } else if e.class() == git2::ErrorClass::Os && Self::local_os_error(&lower) {
            // The worker's own file system refused (a path too long or looping, a full disk,
            // no permission): retrying elsewhere gives the same answer for the same repository.
            Self::Other(msg)
        } else if matches!(
            e.class(),
            git2::ErrorClass::Net
                | git2::ErrorClass::Http
                | git2::ErrorClass::Ssh
                | git2::ErrorClass::Os
        ) {
            Self::Unreachable {
                detail: msg,
                transient: true,
            }
        } else {
            Self::Other(msg)
        }
    }
}

/// What the clone produced.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// HEAD after checkout.
    pub sha: String,
    /// The branch checked out (the task's push branch).
    pub branch: String,
    /// True when the push branch already existed on the remote (an earlier attempt's
    /// checkpoint), and the work continues from it.
    pub resumed: bool,
    /// The message of the commit checked out.
    pub message: String,
    /// The branch the task started from (the one asked for, else the remote's default): what
    /// its pull request merges into.
    pub base_branch: String,
}

impl Checkout {
    /// When the branch already ends with task `task`'s final commit (an attempt that pushed
    /// and died before recording it), that commit's summary: the work is done.
    pub fn finished_by(&self, task: &openclaw_common::ids::TaskId) -> Option<String> {
        self.resumed
            .then(|| final_commit_summary(&self.message, task))
            .flatten()
    }
}

/// When `message` is task `task`'s final commit (its trailer, and no checkpoint mark), the
/// summary it carries.
pub fn final_commit_summary(message: &str, task: &openclaw_common::ids::TaskId) -> Option<String> {
    let trailer = format!("OpenClaw-Task: {task}");
    let lines: Vec<&str> = message.lines().collect();
    let ours = lines.iter().any(|l| l.trim() == trailer);
    let checkpoint = lines
        .iter()
        .any(|l| l.trim() == "OpenClaw-Checkpoint: true");
    if !ours || checkpoint {
        return None;
    }
    let summary: Vec<&str> = lines
        .into_iter()
        .filter(|l| !l.starts_with("OpenClaw-"))
        .collect();
    Some(summary.join("\n").trim().to_owned())
}

/// The result of committing.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    pub files: Vec<String>,
}

/// A task's repository on disk: the work tree (the tools' root) and, beside it rather than
/// inside it, the git directory. Both live under one parent the caller owns and removes.
#[derive(Debug, Clone)]
pub struct TaskRepo {
    work_tree: PathBuf,
    git_dir: PathBuf,
}

impl TaskRepo {
    /// `parent/work` and `parent/git`; neither is created yet.
    pub fn under(parent: &Path) -> Self {
        Self {
            work_tree: parent.join("work"),
            git_dir: parent.join("git"),
        }
    }

    /// The checkout: the only directory the agent's tools and commands work in.
    pub fn work_tree(&self) -> &Path {
        &self.work_tree
    }

    /// Opens the repository by its git directory, with the work tree set in memory: no
    /// discovery from the work tree and no `core.worktree` from any config.
    fn open(&self) -> Result<Repository, GitError> {
        // Bare (no `core.worktree`, no config-driven work tree), no search up the tree, no
        // `.git` appended, no `GIT_DIR` from the environment. Not `open_bare`: libgit2's
        // bare open skips the shallow file, and a push from the depth-1 clone would then walk
        // past its boundary into commits it never fetched ("object not found").
        let flags = git2::RepositoryOpenFlags::NO_SEARCH
            | git2::RepositoryOpenFlags::BARE
            | git2::RepositoryOpenFlags::NO_DOTGIT;
        let repo =
            Repository::open_ext(&self.git_dir, flags, std::iter::empty::<&std::ffi::OsStr>())
                .map_err(GitError::classify)?;
        repo.set_workdir(&self.work_tree, false)
            .map_err(GitError::classify)?;
        Ok(repo)
    }
}

/// What a clone may cost, from the agent profile's limits.
#[derive(Debug, Clone, Copy)]
pub struct RepoLimits {
    pub max_bytes: u64,
    pub max_files: u64,
    /// Free disk the agent must still have after the checkout (`min_free_disk_bytes`).
    pub min_free_bytes: u64,
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Files (blobs and links) of `tree`, counted up to `stop`.
fn count_files(tree: &git2::Tree<'_>, stop: u64) -> u64 {
    let mut files = 0u64;
    let _ = tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            files += 1;
        }
        if files >= stop {
            git2::TreeWalkResult::Abort
        } else {
            git2::TreeWalkResult::Ok
        }
    });
    files
}

/// Where the task's remote's branches are kept in the git directory (as a clone names them).
fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

/// Clones `url` into `repo` and checks out `push_branch`: from the remote when it exists there
/// already (resume), else new at the tip of `base` (or the remote's default branch).
pub fn clone(
    url: &RepoUrl,
    repo: &TaskRepo,
    base: Option<&BranchName>,
    push_branch: &BranchName,
    config: &GitConfig,
    limits: &RepoLimits,
) -> Result<Checkout, GitError> {
    std::fs::create_dir_all(&repo.work_tree)
        .map_err(|e| GitError::Other(format!("cannot create the work tree: {e}")))?;
    let git = Repository::init_opts(
        &repo.git_dir,
        RepositoryInitOptions::new()
            .bare(true)
            .no_reinit(true)
            .mkpath(true),
    )
    .map_err(GitError::classify)?;
    git.set_workdir(&repo.work_tree, false)
        .map_err(GitError::classify)?;
    let too_large = Cell::new(false);
    let mut fetch_callbacks = callbacks(config);
    fetch_callbacks.transfer_progress(|progress| {
        // Returning false makes libgit2 stop the download.
        let within = progress.received_bytes() as u64 <= limits.max_bytes;
        too_large.set(!within);
        within
    });
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(fetch_callbacks);
    // libgit2's local transport cannot do shallow fetches; smart transports can.
    if !url.is_file() {
        fetch.depth(1);
    }
    let mut remote = git
        .remote_anonymous(url.as_str())
        .map_err(GitError::classify)?;
    // One connection for both: the remote's HEAD (its default branch) is known only while
    // connected, and the fetch reuses the connection.
    let mut connection = remote
        .connect_auth(git2::Direction::Fetch, Some(callbacks(config)), None)
        .map_err(GitError::classify)?;
    let base_branch = match base {
        Some(b) => b.to_string(),
        None => {
            let head = connection.default_branch().map_err(|e| {
                GitError::Other(format!(
                    "the repository has no default branch to start from: {}",
                    e.message()
                ))
            })?;
            let head = head.as_str().unwrap_or_default();
            head.strip_prefix("refs/heads/").unwrap_or(head).to_owned()
        }
    };
    connection
        .remote()
        .fetch(
            &["+refs/heads/*:refs/remotes/origin/*"],
            Some(&mut fetch),
            None,
        )
        .map_err(|e| {
            if too_large.get() {
                GitError::TooLarge(format!(
                    "the clone passed {} bytes (max_repo_bytes)",
                    limits.max_bytes
                ))
            } else {
                GitError::classify(e)
            }
        })?;
    // Closed now, not held open through the checkout.
    drop(connection);

    let (start, resumed) = match git.find_reference(&tracking_ref(push_branch.as_str())) {
        Ok(r) => (r.peel_to_commit().map_err(GitError::classify)?, true),
        Err(_) => match git.find_reference(&tracking_ref(&base_branch)) {
            Ok(r) => (r.peel_to_commit().map_err(GitError::classify)?, false),
            Err(_) if base.is_some() => {
                return Err(GitError::NotFound(format!(
                    "remote branch '{base_branch}' not found"
                )));
            }
            Err(e) => {
                return Err(GitError::Other(format!(
                    "the repository has no commit to start from: {}",
                    e.message()
                )));
            }
        },
    };
    let files = count_files(
        &start.tree().map_err(GitError::classify)?,
        limits.max_files + 1,
    );
    if files > limits.max_files {
        return Err(GitError::TooLarge(format!(
            "more than {} files (max_repo_files)",
            limits.max_files
        )));
    }
    // Detached first: HEAD of the new git directory names a branch libgit2 will not replace
    // while it is checked out.
    git.set_head_detached(start.id())
        .map_err(GitError::classify)?;
    let branch = git
        .branch(push_branch.as_str(), &start, true)
        .map_err(GitError::classify)?;
    let refname = branch
        .get()
        .name()
        .map_err(|_| GitError::Other("branch name is not UTF-8".into()))?
        .to_owned();
    git.checkout_tree(
        start.as_object(),
        Some(git2::build::CheckoutBuilder::new().force()),
    )
    .map_err(GitError::classify)?;
    git.set_head(&refname).map_err(GitError::classify)?;
    // The agent writes, builds and runs tests in the checkout: a disk the clone nearly filled
    // fails the task now, with the reason, not an hour later with ENOSPC in some command.
    let free = free_bytes(&repo.work_tree)
        .map_err(|e| GitError::Other(format!("cannot read the free disk space: {e}")))?;
    if free < limits.min_free_bytes {
        return Err(GitError::TooLarge(format!(
            "{free} bytes of disk left after the clone; the agent needs {} (min_free_disk_bytes)",
            limits.min_free_bytes
        )));
    }
    Ok(Checkout {
        sha: start.id().to_string(),
        branch: push_branch.to_string(),
        resumed,
        message: start.message().unwrap_or_default().to_owned(),
        base_branch,
    })
}

/// Commits every change of the work tree on the current branch. `None` when nothing changed.
/// The paths the work tree changes against `HEAD` (added, modified, deleted, renamed), sorted.
pub fn changed_files(repo: &TaskRepo) -> Result<Vec<String>, GitError> {
    let repo = repo.open()?;
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = repo
        .statuses(Some(&mut options))
        .map_err(GitError::classify)?;
    let mut files: Vec<String> = statuses
        .iter()
        .filter(|s| !s.status().is_empty())
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .collect();
    files.sort();
    Ok(files)
}

/// The work tree's changes against `HEAD` as a patch (new files included), at most `max`
/// bytes: what the model is shown to review before the commit. Reads only; stages nothing.
pub fn diff_text(repo: &TaskRepo, max: usize) -> Result<String, GitError> {
    let repo = repo.open()?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(GitError::classify)?;
    let mut options = git2::DiffOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true);
    let diff = repo
        .diff_tree_to_workdir(Some(&head), Some(&mut options))
        .map_err(GitError::classify)?;
    patch_text(&diff, max)
}

/// What the committed `HEAD` changes against the fetched tip of `base`, as a patch of at most
/// `max` bytes: the task's diff (`GET /v1/tasks/{id}/diff`). Empty when the base is unknown.
pub fn branch_diff_text(repo: &TaskRepo, base: &str, max: usize) -> Result<String, GitError> {
    let repo = repo.open()?;
    match diff_since(&repo, base)? {
        Some(diff) => patch_text(&diff, max),
        None => Ok(String::new()),
    }
}

/// `diff` as `git diff` prints it (with file headers), cut at `max` bytes with a note.
fn patch_text(diff: &git2::Diff<'_>, max: usize) -> Result<String, GitError> {
    let mut out = String::new();
    let mut full = false;
    // Stops adding at `max`, whatever the diff's size.
    let printed = diff.print(git2::DiffFormat::Patch, |_, _, line| {
        if out.len() >= max {
            full = true;
            return false;
        }
        if matches!(line.origin(), '+' | '-' | ' ') {
            out.push(line.origin());
        }
        out.push_str(&String::from_utf8_lossy(line.content()));
        true
    });
    if let Err(e) = printed
        && !full
    {
        return Err(GitError::classify(e));
    }
    if full {
        out.push_str("\n[… the diff goes on; it was cut here …]\n");
    }
    Ok(out)
}

/// What `HEAD` changes against the fetched tip of `base` (`refs/remotes/origin/<base>`);
/// `None` when the base is not known.
fn diff_since<'r>(repo: &'r Repository, base: &str) -> Result<Option<git2::Diff<'r>>, GitError> {
    let Ok(base) = repo.find_reference(&tracking_ref(base)) else {
        return Ok(None);
    };
    let base = base.peel_to_tree().map_err(GitError::classify)?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(GitError::classify)?;
    repo.diff_tree_to_tree(Some(&base), Some(&head), None)
        .map(Some)
        .map_err(GitError::classify)
}

/// The paths `HEAD` changes against the fetched tip of `base`, sorted; empty when the base
/// is not known.
pub fn files_since(repo: &TaskRepo, base: &str) -> Result<Vec<String>, GitError> {
    let repo = repo.open()?;
    let Some(diff) = diff_since(&repo, base)? else {
        return Ok(Vec::new());
    };
    let mut files: Vec<String> = diff
        .deltas()
        .filter_map(|d| {
            d.new_file()
                .path()
                .or_else(|| d.old_file().path())
                .and_then(|p| p.to_str())
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

pub fn commit_all(
    repo: &TaskRepo,
    message: &str,
    config: &GitConfig,
) -> Result<Option<Commit>, GitError> {
    let repo = repo.open()?;
    let mut index = repo.index().map_err(GitError::classify)?;
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .map_err(GitError::classify)?;
    index.update_all(["*"], None).map_err(GitError::classify)?;
    index.write().map_err(GitError::classify)?;
    let tree_id = index.write_tree().map_err(GitError::classify)?;
    let parent = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(GitError::classify)?;
    if parent.tree_id() == tree_id {
        return Ok(None);
    }
    let tree = repo.find_tree(tree_id).map_err(GitError::classify)?;
    let diff = repo
        .diff_tree_to_tree(
            Some(&parent.tree().map_err(GitError::classify)?),
            Some(&tree),
            None,
        )
        .map_err(GitError::classify)?;
    let files: Vec<String> = diff
        .deltas()
        .filter_map(|d| {
            d.new_file()
                .path()
                .or(d.old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect();
    let sig =
        Signature::now(&config.author_name, &config.author_email).map_err(GitError::classify)?;
    let oid = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])
        .map_err(GitError::classify)?;
    Ok(Some(Commit {
        sha: oid.to_string(),
        files,
    }))
}

/// Pushes `branch` to `url` (the task's remote, checked by the caller's egress policy). A ref
/// the server refuses (non-fast-forward, hook) is [`GitError::Rejected`] with the server's
/// reason.
pub fn push(
    repo: &TaskRepo,
    url: &RepoUrl,
    branch: &BranchName,
    config: &GitConfig,
) -> Result<(), GitError> {
    let repo = repo.open()?;
    let mut remote = repo
        .remote_anonymous(url.as_str())
        .map_err(GitError::classify)?;
    let rejection: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
    {
        let mut cb = callbacks(config);
        cb.push_update_reference(|refname, status| {
            if let Some(reason) = status {
                *rejection.borrow_mut() = Some(format!("{refname}: {reason}"));
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
        remote
            .push(&[spec.as_str()], Some(&mut opts))
            .map_err(|e| {
                let classified = GitError::classify(e);
                match classified {
                    GitError::Other(m) => GitError::Rejected(m),
                    other => other,
                }
            })?;
    }
    match rejection.into_inner() {
        Some(reason) => Err(GitError::Rejected(reason)),
        None => Ok(()),
    }
}

/// The commit `branch` points at on `url` now (sha and message), fetched into `repo`; `None`
/// when the remote has no such branch. Reads what pushed a push aside.
pub fn remote_tip(
    repo: &TaskRepo,
    url: &RepoUrl,
    branch: &BranchName,
    config: &GitConfig,
) -> Result<Option<(String, String)>, GitError> {
    let repo = repo.open()?;
    let mut remote = repo
        .remote_anonymous(url.as_str())
        .map_err(GitError::classify)?;
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks(config));
    let tracking = tracking_ref(branch.as_str());
    let spec = format!("+refs/heads/{branch}:{tracking}");
    remote
        .fetch(&[spec.as_str()], Some(&mut fetch), None)
        .map_err(GitError::classify)?;
    let Ok(reference) = repo.find_reference(&tracking) else {
        return Ok(None);
    };
    let commit = reference.peel_to_commit().map_err(GitError::classify)?;
    Ok(Some((
        commit.id().to_string(),
        commit.message().unwrap_or_default().to_owned(),
    )))
}

#[cfg(test)]
mod tests;

//! Real git repositories for tests: a bare "remote" seeded with one commit, reachable over
//! `file://` and, through [`GitHttpServer`], over smart HTTP with Basic auth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs git with a fixed identity; panics with git's stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository with `main` holding a README and a small source file.
pub struct BareRepo {
    dir: tempfile::TempDir,
}

impl BareRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = dir.path().join("origin.git");
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(&seed).expect("seed dir");
        git(
            dir.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                bare.to_str().expect("utf-8"),
            ],
        );
        git(&seed, &["init", "-q", "-b", "main"]);
        std::fs::write(seed.join("README.md"), "# hello\n\nA tiny C program.\n").expect("write");
        std::fs::write(seed.join("hello.c"), "int main(void) { return 0; }\n").expect("write");
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "-q", "-m", "Initial commit"]);
        git(
            &seed,
            &["push", "-q", bare.to_str().expect("utf-8"), "main"],
        );
        git(&bare, &["config", "http.receivepack", "true"]);
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("origin.git")
    }

    /// Parent of the bare repo (the project root an HTTP server serves).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Serves this repository also as `owner/name.git` under [`BareRepo::root`] (a symlink), the
    /// path a forge's repositories have.
    pub fn publish_as(&self, owner: &str, name: &str) -> String {
        let dir = self.dir.path().join(owner);
        std::fs::create_dir_all(&dir).expect("owner dir");
        std::os::unix::fs::symlink(self.path(), dir.join(format!("{name}.git"))).expect("symlink");
        format!("{owner}/{name}.git")
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    pub fn has_branch(&self, branch: &str) -> bool {
        Command::new("git")
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(self.path())
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Commit subjects on `branch` not on `main`, newest first.
    pub fn new_commits(&self, branch: &str) -> Vec<String> {
        let out = git(
            &self.path(),
            &["log", "--format=%H %s", &format!("main..{branch}")],
        );
        out.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The full message of the tip of `branch`.
    pub fn message(&self, branch: &str) -> String {
        git(&self.path(), &["log", "-1", "--format=%B", branch])
    }

    pub fn file(&self, branch: &str, path: &str) -> Option<String> {
        Command::new("git")
            .args(["show", &format!("{branch}:{path}")])
            .current_dir(self.path())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    pub fn tip(&self, branch: &str) -> String {
        git(&self.path(), &["rev-parse", branch])
    }

    /// Pushes one commit writing `file` with `message` onto `branch` (from `main` when the
    /// branch is new), as another client of the remote would; returns its sha.
    pub fn push_commit(&self, branch: &str, file: &str, message: &str) -> String {
        self.push_change(branch, message, |co| {
            let path = co.join(file);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).expect("dir");
            }
            std::fs::write(&path, format!("{message}\n")).expect("write");
        })
    }

    /// Pushes one commit writing `files` (`(path, content)`) onto `branch`; returns its sha.
    pub fn push_files(&self, branch: &str, message: &str, files: &[(&str, &str)]) -> String {
        self.push_change(branch, message, |co| {
            for (file, content) in files {
                let path = co.join(file);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).expect("dir");
                }
                std::fs::write(&path, content).expect("write");
            }
        })
    }

    /// Gives the repository to the user and group `uid` (the remote a non-root worker pushes
    /// to: libgit2 writes as that user).
    pub fn give_to(&self, uid: u32) {
        let status = std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(self.root())
            .status()
            .expect("chown");
        assert!(status.success());
    }

    /// Pushes one commit adding the symlinks `(link, target)` onto `branch`, as a hostile
    /// repository carries them (the target is stored as it is, not checked); returns its sha.
    pub fn push_symlinks(&self, branch: &str, links: &[(&str, &str)]) -> String {
        self.push_change(branch, "Add links", |co| {
            for (link, target) in links {
                let path = co.join(link);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).expect("dir");
                }
                std::os::unix::fs::symlink(target, &path).expect("symlink");
            }
        })
    }

    /// Clones, checks out `branch` (new from `main` when missing), lets `change` edit the
    /// work tree, commits everything with `message` and pushes; the new tip.
    fn push_change(&self, branch: &str, message: &str, change: impl FnOnce(&Path)) -> String {
        let work = tempfile::tempdir().expect("temp dir");
        let co = work.path().join("co");
        let origin = self.path();
        git(
            work.path(),
            &[
                "clone",
                "-q",
                origin.to_str().expect("utf-8"),
                co.to_str().expect("utf-8"),
            ],
        );
        if self.has_branch(branch) {
            git(&co, &["checkout", "-q", branch]);
        } else {
            git(&co, &["checkout", "-q", "-b", branch]);
        }
        change(&co);
        git(&co, &["add", "-A"]);
        git(&co, &["commit", "-q", "-m", message]);
        git(&co, &["push", "-q", "origin", branch]);
        self.tip(branch)
    }
}

impl Default for BareRepo {
    fn default() -> Self {
        Self::new()
    }
}

/// `git http-backend` behind a Basic-auth Python server, serving a [`BareRepo`]'s root.
pub struct GitHttpServer {
    child: Child,
    pub port: u16,
    /// Where the server's request log goes (to check that no secret appears in it).
    pub log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl GitHttpServer {
    pub fn start(root: &Path, user: &str, password: &str) -> Self {
        let port = crate::free_port();
        let script = crate::workspace_root().join("tests/support/git_http_server.py");
        let log_dir = tempfile::tempdir().expect("temp dir");
        let log = log_dir.path().join("git-http.log");
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(root)
            .args([user, password])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("python3 is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git HTTP server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            log,
            _log_dir: log_dir,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sshd` serving a [`BareRepo`] over ssh (as the running user, key auth only), on a free
/// port, with its own host key; stopped on drop.
pub struct SshGitServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    /// The sshd log, to check that no secret appears in it.
    pub log: PathBuf,
}

impl SshGitServer {
    pub fn start() -> Self {
        let sshd = PathBuf::from("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "sshd is not installed: run `bash scripts/tools.sh` (it installs Debian's openssh-server)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for key in ["host_key", "user_key"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .expect("ssh-keygen is installed")
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let port = crate::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nPidFile {}\n",
            d.join("host_key").display(),
            d.join("authorized_keys").display(),
            d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        // Privilege separation wants this directory (normally made by the service unit).
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = d.join("sshd.log");
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            dir,
            log,
        }
    }

    /// The ssh URL of `repo` as the user this process runs as.
    pub fn url(&self, repo: &BareRepo) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!(
            "ssh://{user}@127.0.0.1:{}{}",
            self.port,
            repo.path().display()
        )
    }

    /// The client's private key file.
    pub fn user_key(&self) -> PathBuf {
        self.dir.path().join("user_key")
    }

    /// A known_hosts file trusting this server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        let public =
            std::fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        let path = self.dir.path().join("known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {public}", self.port)).expect("known_hosts");
        path
    }
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

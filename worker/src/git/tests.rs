use super::*;

fn run_git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git must be installed for these tests");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository at `dir` with one commit on `main` (a file and a committed symlink
/// `gitcfg -> .git/config`, as a hostile repository would carry).
fn bare_with_commit(dir: &Path) {
    let seed = dir.with_extension("seed");
    std::fs::create_dir_all(&seed).unwrap();
    run_git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "hello\n").unwrap();
    std::os::unix::fs::symlink(".git/config", seed.join("gitcfg")).unwrap();
    run_git(&seed, &["add", "-A"]);
    run_git(
        &seed,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "seed",
        ],
    );
    run_git(
        dir.parent().unwrap(),
        &["init", "-q", "--bare", "-b", "main", dir.to_str().unwrap()],
    );
    run_git(&seed, &["push", "-q", dir.to_str().unwrap(), "main"]);
}

fn git_config() -> GitConfig {
    GitConfig {
        token: None,
        username: None,
        ssh_key: None,
        ssh_key_path: None,
        ssh_passphrase: None,
        ssh_known_hosts: None,
        credential_hosts: Default::default(),
        author_name: "OpenClaw".into(),
        author_email: "openclaw@example.invalid".into(),
    }
}

fn roomy() -> RepoLimits {
    RepoLimits {
        max_bytes: 1 << 30,
        max_files: 1000,
        min_free_bytes: 0,
    }
}

#[test]
fn a_repository_over_the_profiles_limits_is_refused_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let remote = base.join("big.git");
    bare_with_commit(&remote);
    let url = RepoUrl::parse(
        &format!("file://{}", remote.display()),
        &openclaw_common::egress::RepoPolicy::open(),
    )
    .unwrap();
    let branch = BranchName::parse("openclaw/t2").unwrap();
    for (n, limits) in [
        RepoLimits {
            max_bytes: 10,
            max_files: 1000,
            min_free_bytes: 0,
        },
        RepoLimits {
            max_bytes: 1 << 30,
            max_files: 1,
            min_free_bytes: 0,
        },
        // No disk has this much room left.
        RepoLimits {
            min_free_bytes: u64::MAX,
            ..roomy()
        },
    ]
    .into_iter()
    .enumerate()
    {
        let repo = TaskRepo::under(&base.join(format!("t{n}")));
        let err = clone(&url, &repo, None, &branch, &git_config(), &limits).unwrap_err();
        assert!(matches!(err, GitError::TooLarge(_)), "{err:?}");
        assert!(!err.is_transient());
    }
}

/// The checkout holds no git directory; one planted there by any means, with every config
/// trick, steers neither the commit nor the push.
#[test]
fn a_git_directory_planted_in_the_checkout_steers_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let (task_remote, evil) = (base.join("task.git"), base.join("evil.git"));
    bare_with_commit(&task_remote);
    run_git(&base, &["init", "-q", "--bare", "evil.git"]);
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("stolen.txt"), "service account token\n").unwrap();
    std::fs::write(outside.join("included"), "[user]\n\temail = evil@evil\n").unwrap();
    let marker = base.join("fsmonitor-ran");

    let url = RepoUrl::parse(
        &format!("file://{}", task_remote.display()),
        &openclaw_common::egress::RepoPolicy::open(),
    )
    .unwrap();
    let evil_url = format!("file://{}", evil.display());
    let repo = TaskRepo::under(&base.join("task"));
    let branch = BranchName::parse("openclaw/t1").unwrap();
    let checkout = clone(&url, &repo, None, &branch, &git_config(), &roomy()).unwrap();
    assert!(!checkout.resumed);
    let work = repo.work_tree();
    assert!(
        !work.join(".git").exists(),
        "the checkout has no git directory or gitlink"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "hello\n"
    );

    // Every trick, in a `.git` planted in the work tree.
    std::fs::create_dir_all(work.join(".git/hooks")).unwrap();
    std::fs::write(work.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        work.join(".git/config"),
        format!(
            "[core]\n\tworktree = {o}\n\thooksPath = {o}\n\tfsmonitor = touch {m}\n\
             [remote \"origin\"]\n\turl = {e}\n\tpushurl = {e}\n\
             [url \"{e}\"]\n\tinsteadOf = {u}\n\
             [include]\n\tpath = {o}/included\n",
            o = outside.display(),
            m = marker.display(),
            e = evil_url,
            u = url.as_str(),
        ),
    )
    .unwrap();
    std::fs::write(
        outside.join("pre-commit"),
        format!("#!/bin/sh\ntouch {}\n", marker.display()),
    )
    .unwrap();
    std::fs::write(work.join("NOTES.md"), "work\n").unwrap();

    let commit = commit_all(&repo, "change\n\nOpenClaw-Task: t1\n", &git_config())
        .unwrap()
        .expect("a change to commit");
    assert_eq!(commit.files, ["NOTES.md"], "only the work tree's change");
    push(&repo, &url, &branch, &git_config()).unwrap();

    assert_eq!(
        run_git(&task_remote, &["rev-parse", "refs/heads/openclaw/t1"]),
        commit.sha,
        "pushed to the task's remote"
    );
    let tree = run_git(
        &task_remote,
        &["ls-tree", "-r", "--name-only", "openclaw/t1"],
    );
    assert_eq!(
        tree, "NOTES.md\nREADME.md\ngitcfg",
        "nothing from outside or .git"
    );
    let email = run_git(&task_remote, &["log", "-1", "--format=%ae", "openclaw/t1"]);
    assert_eq!(email, "openclaw@example.invalid", "no included config");
    assert_eq!(
        run_git(&evil, &["for-each-ref"]),
        "",
        "nothing reached the other remote"
    );
    assert!(!marker.exists(), "no fsmonitor or hook ran");
    assert_eq!(
        std::fs::read_to_string(outside.join("stolen.txt")).unwrap(),
        "service account token\n"
    );
    // And the tip reads back from the task's URL.
    let (sha, _) = remote_tip(&repo, &url, &branch, &git_config())
        .unwrap()
        .unwrap();
    assert_eq!(sha, commit.sha);
}

#[test]
fn local_file_system_errors_are_permanent_and_the_networks_transient() {
    let os = |msg: &str| {
        GitError::classify(git2::Error::new(
            git2::ErrorCode::GenericError,
            git2::ErrorClass::Os,
            msg,
        ))
    };
    for permanent in [
        "could not open 'x/y': File name too long",
        "failed to stat 'a': Too many levels of symbolic links",
        "could not write 'b': No space left on device",
        "failed to make directory 'c': Permission denied",
    ] {
        assert!(!os(permanent).is_transient(), "{permanent}");
    }
    assert!(os("failed to connect to 10.0.0.1: Connection refused").is_transient());
    assert!(os("recv: Connection reset by peer").is_transient());
}

#[test]
fn known_hosts_lines() {
    // "AAAA" decodes to three zero bytes; "AQID" to [1, 2, 3].
    let known = KnownHosts::parse(
        "# comment\n\
         github.com,140.82.112.3 ssh-ed25519 AQID\n\
         [git.example.com]:2222 ssh-ed25519 AAAA\n\
         |1|hashed=|x= ssh-ed25519 AQID\n\
         @cert-authority *.example.com ssh-ed25519 AQID\n\
         broken-line\n",
    );
    assert!(known.trusts("github.com", &[1, 2, 3]));
    assert!(known.trusts("140.82.112.3", &[1, 2, 3]));
    assert!(known.trusts("GIT.example.com", &[0, 0, 0]));
    assert!(!known.trusts("github.com", &[0, 0, 0]), "another key");
    assert!(
        !known.trusts("other.example.com", &[1, 2, 3]),
        "markers are not understood"
    );
}

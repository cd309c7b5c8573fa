use super::*;
use openclaw_common::agents::AgentCatalog;
use openclaw_common::ids::AgentName;

fn toolbox(dir: &Path, agent: &str) -> Toolbox {
    let catalog = AgentCatalog::built_in();
    let profile = catalog.get(&AgentName::parse(agent).unwrap()).unwrap();
    let scratch = tempfile::tempdir().unwrap().keep();
    let secrets = Secrets::new(["sk-test-secret-value".to_owned()]);
    Toolbox::new(dir, &scratch, profile, secrets).unwrap()
}

#[tokio::test]
async fn escapes_are_refused_and_nothing_outside_is_touched() {
    let outside = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path().join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("new.txt"), repo.path().join("dangling"))
        .unwrap();
    let tools = toolbox(repo.path(), "doc-writer");

    for (tool, args) in [
        ("read_file", r#"{"path":"../secret.txt"}"#),
        ("read_file", r#"{"path":"/etc/passwd"}"#),
        ("read_file", r#"{"path":"link/secret.txt"}"#),
        ("write_file", r#"{"path":"link/x.txt","content":"x"}"#),
        ("write_file", r#"{"path":"dangling","content":"x"}"#),
        ("write_file", r#"{"path":"a/../../x.txt","content":"x"}"#),
        ("write_file", r#"{"path":".git/config","content":"x"}"#),
        ("list_files", r#"{"path":"link"}"#),
    ] {
        let out = tools.call(tool, args).await;
        assert!(out.is_err(), "{tool} {args} must be refused, got {out:?}");
    }
    let names: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret.txt"], "nothing was written outside");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "top secret"
    );
}

/// A hostile checkout's links into git directories: the checkout's own (had the worker laid
/// it out the usual way), a nested repository's, and one named by an absolute path.
#[tokio::test]
async fn no_tool_reaches_a_git_directory_through_a_link() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
    std::fs::write(root.join(".git/config"), "[core]\n\tbare = false\n").unwrap();
    std::fs::create_dir_all(root.join("vendor/lib/.git")).unwrap();
    std::fs::write(root.join("vendor/lib/.git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    };
    link(Path::new(".git/config"), "gitcfg");
    link(Path::new(".git"), "gitdir");
    link(Path::new("../.git"), "docs/up");
    link(Path::new("vendor/lib/.git"), "nested");
    link(&root.canonicalize().unwrap().join(".git"), "absolute");
    link(Path::new(".git/hooks/post-checkout"), "hook");
    link(Path::new(".git/info"), "info");
    let before = git_files(root);
    let tools = toolbox(root, "doc-writer");

    for (tool, args) in [
        ("read_file", r#"{"path":"gitcfg"}"#),
        ("read_file", r#"{"path":"gitdir/config"}"#),
        ("read_file", r#"{"path":"docs/up/config"}"#),
        ("read_file", r#"{"path":"absolute/config"}"#),
        ("read_file", r#"{"path":"nested/HEAD"}"#),
        ("read_file", r#"{"path":".GIT/config"}"#),
        ("read_file", r#"{"path":"./.git/config"}"#),
        (
            "write_file",
            r#"{"path":"gitcfg","content":"[core]\n\tworktree = /\n"}"#,
        ),
        (
            "write_file",
            r#"{"path":"gitdir/config","content":"[remote \"origin\"]\n\turl = file:///tmp/evil\n"}"#,
        ),
        (
            "write_file",
            r##"{"path":"gitdir/hooks/pre-push","content":"#!/bin/sh\n"}"##,
        ),
        ("write_file", r##"{"path":"hook","content":"#!/bin/sh\n"}"##),
        ("write_file", r#"{"path":"info/exclude","content":"*\n"}"#),
        ("write_file", r#"{"path":"docs/up/config","content":"x"}"#),
        ("write_file", r#"{"path":"absolute/config","content":"x"}"#),
        ("write_file", r#"{"path":"nested/config","content":"x"}"#),
        (
            "write_file",
            r#"{"path":"vendor/lib/.git/config","content":"x"}"#,
        ),
        (
            "edit_file",
            r#"{"path":"gitcfg","old_text":"bare","new_text":"worktree"}"#,
        ),
        ("list_files", r#"{"path":"gitdir"}"#),
        ("list_files", r#"{"path":"nested"}"#),
        ("search", r#"{"pattern":"core","path":"gitdir"}"#),
        ("search", r#"{"pattern":"core","path":"gitcfg"}"#),
    ] {
        let out = tools.call(tool, args).await;
        assert!(out.is_err(), "{tool} {args} must be refused, got {out:?}");
    }
    assert_eq!(git_files(root), before, "no git directory changed");
    // Walking the whole checkout lists no git directory's files either.
    let all = tools.call("list_files", "{}").await.unwrap();
    assert!(!all.contains("config") && !all.contains("HEAD"), "{all}");
    let found = tools.call("search", r#"{"pattern":"bare"}"#).await.unwrap();
    assert!(found.starts_with("no matches"), "{found}");
}

/// Every file under a `.git` of `root`, with its content.
fn git_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.path().to_string_lossy().contains(".git/") {
                out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn search_cuts_long_lines_skips_binaries_and_ignored_files_and_counts_true_totals() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    // One match in a 5 MB one-line file is a line cut around the match.
    let minified = format!("{}NEEDLE{}", "a".repeat(5_000_000), "é".repeat(50_000));
    std::fs::write(root.join("app.min.js"), &minified).unwrap();
    // A binary with the needle, an ignored directory with it, a link out of the checkout.
    std::fs::write(root.join("blob.bin"), b"NEEDLE\0\x01\x02").unwrap();
    std::fs::write(root.join(".gitignore"), "node_modules/\n").unwrap();
    std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
    std::fs::write(root.join("node_modules/x/i.js"), "NEEDLE\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("o.txt"), "NEEDLE\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("o.txt"), root.join("o.txt")).unwrap();
    // 120 matches in 60 files.
    std::fs::create_dir_all(root.join("src")).unwrap();
    for n in 0..60 {
        std::fs::write(
            root.join(format!("src/f{n:03}.rs")),
            "let NEEDLE = 1;\nNEEDLE();\n",
        )
        .unwrap();
    }
    let tools = toolbox(root, "doc-writer");
    let out = tools
        .call(
            "search",
            r#"{"pattern":"NEEDLE","literal":true,"limit":10}"#,
        )
        .await
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("app.min.js:1: …") && lines[0].contains("NEEDLE"),
        "{out:.400}"
    );
    assert!(
        lines[0].len() < search::MAX_LINE_BYTES + 40,
        "{}",
        lines[0].len()
    );
    assert_eq!(lines[1], "src/f000.rs:1: let NEEDLE = 1;");
    assert!(
        !out.contains("node_modules") && !out.contains("o.txt") && !out.contains("out/"),
        "{out}"
    );
    assert!(
        out.contains("121 matches in 61 files in all"),
        "true totals: {out}"
    );
    assert!(out.contains("(1 binary files skipped)"), "{out}");
    assert!(out.len() < 4000, "{}", out.len());

    let counts = tools
        .call(
            "search",
            r#"{"pattern":"NEED+LE","output_mode":"count","glob":"src/**"}"#,
        )
        .await
        .unwrap();
    assert!(
        counts.starts_with("src/f000.rs: 2\nsrc/f001.rs: 2"),
        "{counts}"
    );
    assert!(
        counts.ends_with("… 20 more matches in 10 more files (120 matches in 60 files in all; narrow with path or glob)"),
        "{counts}"
    );
    let files = tools
        .call("search", r#"{"pattern":"needle","case_insensitive":true,"output_mode":"files","path":"src","limit":2}"#)
        .await
        .unwrap();
    assert_eq!(
        files,
        "src/f000.rs\nsrc/f001.rs\n… 116 more matches in 58 more files (120 matches in 60 files in all; narrow with path or glob)"
    );
    let around = tools
        .call(
            "search",
            r#"{"pattern":"NEEDLE\\(\\)","path":"src/f000.rs","context":1}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        around,
        "src/f000.rs-1- let NEEDLE = 1;\nsrc/f000.rs:2: NEEDLE();\n(1 matches in 1 files)"
    );
    let bad = tools
        .call("search", r#"{"pattern":"("}"#)
        .await
        .unwrap_err();
    assert!(bad.contains("set literal"), "{bad}");

    let listed = tools.call("list_files", r#"{"limit":3}"#).await.unwrap();
    assert_eq!(
        listed,
        ".gitignore\napp.min.js\nblob.bin\n… and 60 more files (63 in all; list a subdirectory or use glob)"
    );
    let md = tools
        .call("list_files", r#"{"glob":"*.js"}"#)
        .await
        .unwrap();
    assert_eq!(md, "app.min.js", "ignored and linked files are not listed");
}

#[tokio::test]
async fn a_command_printing_a_megabyte_returns_at_once_with_its_head_tail_and_status() {
    let repo = tempfile::tempdir().unwrap();
    let catalog = openclaw_common::agents::AgentCatalog::parse(
        r#"
[[agent]]
name = "shell"
system_prompt = "x"
tools = ["run_command"]
commands = ["sh"]
command_timeout_secs = 30
[agent.limits]
max_steps = 3
max_tokens = 1000
max_wall_secs = 60
"#,
        "test",
    )
    .unwrap();
    let profile = catalog.get(&AgentName::parse("shell").unwrap()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let tools = Toolbox::new(repo.path(), scratch.path(), profile, Secrets::new([])).unwrap();
    let started = std::time::Instant::now();
    let err = tools
        .call(
            "run_command",
            r#"{"command":"sh","args":["-c","echo FIRST; head -c 1000000 /dev/zero | tr '\\0' x; echo; echo oops >&2; echo LAST; exit 3"]}"#,
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(err.starts_with("sh: exit status 3\nFIRST"), "{err:.200}");
    assert!(err.contains("bytes omitted"), "{err:.200}");
    assert!(
        err.contains("LAST") && err.contains("[stderr]\noops"),
        "{}",
        &err[err.len() - 300..]
    );
    assert!(err.len() <= output::MAX_RESULT_BYTES, "{}", err.len());
}

#[tokio::test]
async fn edits_delete_and_move_stay_inside_and_say_what_changed() {
    let repo = tempfile::tempdir().unwrap();
    let tools = toolbox(repo.path(), "doc-writer");
    let text: String = (1..=10).map(|n| format!("line {n}\n")).collect();
    std::fs::write(repo.path().join("a.md"), &text).unwrap();
    let out = tools
        .call(
            "edit_file",
            r#"{"path":"a.md","edits":[{"old_text":"line 2","new_text":"line two"},{"old_text":"line 9","new_text":"line nine"}]}"#,
        )
        .await
        .unwrap();
    assert!(
        out.starts_with("edited a.md (2 changes):\n1: line 1\n2: line two"),
        "{out}"
    );
    assert!(out.contains("9: line nine"), "{out}");
    // All or nothing: the second edit does not apply, so the file is unchanged.
    let err = tools
        .call(
            "edit_file",
            r#"{"path":"a.md","edits":[{"old_text":"line 1\n","new_text":"x\n"},{"old_text":"nowhere","new_text":"y"}]}"#,
        )
        .await
        .unwrap_err();
    assert!(err.contains("edit 2 of 2"), "{err}");
    assert!(
        std::fs::read_to_string(repo.path().join("a.md"))
            .unwrap()
            .starts_with("line 1\n")
    );
    tools
        .call("move_file", r#"{"from":"a.md","to":"docs/b.md"}"#)
        .await
        .unwrap();
    assert!(repo.path().join("docs/b.md").is_file() && !repo.path().join("a.md").exists());
    for (tool, args) in [
        ("move_file", r#"{"from":"docs/b.md","to":"../b.md"}"#),
        ("move_file", r#"{"from":"docs/b.md","to":".git/b.md"}"#),
        ("delete_file", r#"{"path":"../etc"}"#),
        ("delete_file", r#"{"path":"docs"}"#),
    ] {
        assert!(tools.call(tool, args).await.is_err(), "{tool} {args}");
    }
    tools
        .call("delete_file", r#"{"path":"docs/b.md"}"#)
        .await
        .unwrap();
    assert!(!repo.path().join("docs/b.md").exists());
}

#[tokio::test]
async fn read_file_shows_a_bounded_numbered_window_of_any_file() {
    let repo = tempfile::tempdir().unwrap();
    let tools = toolbox(repo.path(), "doc-writer");
    let read = |args: &'static str| tools.call("read_file", args);
    // 100,000 lines: a window, with where it is and where to go on.
    let many: String = (1..=100_000).map(|n| format!("line {n}\n")).collect();
    std::fs::write(repo.path().join("many.txt"), &many).unwrap();
    let out = read(r#"{"path":"many.txt","offset":50000,"limit":3}"#)
        .await
        .unwrap();
    assert_eq!(
        out,
        "many.txt: lines 50000–50002 of 100000\n50000: line 50000\n50001: line 50001\n\
         50002: line 50002\n[49998 more lines: read_file with offset 50003]\n"
    );
    let default = read(r#"{"path":"many.txt"}"#).await.unwrap();
    assert!(default.starts_with("many.txt: lines 1–400 of 100000\n1: line 1\n"));
    assert!(default.ends_with("400: line 400\n[99600 more lines: read_file with offset 401]\n"));
    // One 5 MB line (minified code): its first bytes and how much was left out.
    let long = format!("{}\nshort\n", "x".repeat(5 << 20));
    std::fs::write(repo.path().join("min.js"), &long).unwrap();
    let out = read(r#"{"path":"min.js"}"#).await.unwrap();
    assert!(out.len() < 2 * MAX_READ_LINE_BYTES, "{}", out.len());
    assert!(
        out.starts_with("min.js: lines 1–2 of 2\n1: xxx"),
        "{out:.80}"
    );
    assert!(
        out.contains(&format!(
            " [… {} more bytes]\n2: short\n",
            (5 << 20) - MAX_READ_LINE_BYTES
        )),
        "{out:.80}"
    );
    // Many long lines: the answer stops at its size bound and says where to go on.
    let wide: String = (0..2000)
        .map(|_| format!("{}\n", "y".repeat(400)))
        .collect();
    std::fs::write(repo.path().join("wide.txt"), &wide).unwrap();
    let out = read(r#"{"path":"wide.txt","limit":2000}"#).await.unwrap();
    assert!(out.len() < MAX_READ_OUTPUT + 1024, "{}", out.len());
    assert!(
        out.contains("more lines: read_file with offset"),
        "{out:.80}"
    );
    // A last line without a newline, CRLF, the end, an empty file, a binary one.
    std::fs::write(repo.path().join("crlf.txt"), "a\r\nb").unwrap();
    assert_eq!(
        read(r#"{"path":"crlf.txt"}"#).await.unwrap(),
        "crlf.txt: lines 1–2 of 2\n1: a\n2: b\n"
    );
    let past = read(r#"{"path":"crlf.txt","offset":3}"#).await.unwrap_err();
    assert!(past.contains("has 2 lines"), "{past}");
    std::fs::write(repo.path().join("empty.txt"), "").unwrap();
    assert_eq!(
        read(r#"{"path":"empty.txt"}"#).await.unwrap(),
        "empty.txt: an empty file"
    );
    std::fs::write(repo.path().join("blob.bin"), b"PK\x03\x04\x00\x00data").unwrap();
    let binary = read(r#"{"path":"blob.bin"}"#).await.unwrap_err();
    assert!(binary.contains("binary"), "{binary}");
}

#[tokio::test]
async fn write_read_list_search_inside() {
    let repo = tempfile::tempdir().unwrap();
    let tools = toolbox(repo.path(), "doc-writer");
    tools
        .call(
            "write_file",
            r##"{"path":"docs/a.md","content":"# Title\nhello world\n"}"##,
        )
        .await
        .unwrap();
    assert_eq!(
        tools
            .call("read_file", r#"{"path":"docs/a.md"}"#)
            .await
            .unwrap(),
        "docs/a.md: lines 1–2 of 2\n1: # Title\n2: hello world\n"
    );
    assert_eq!(tools.call("list_files", "{}").await.unwrap(), "docs/a.md");
    tools
        .call(
            "edit_file",
            r#"{"path":"docs/a.md","old_text":"hello","new_text":"goodbye"}"#,
        )
        .await
        .unwrap();
    let err = tools
        .call(
            "edit_file",
            r#"{"path":"docs/a.md","old_text":"hello","new_text":"x"}"#,
        )
        .await
        .unwrap_err();
    assert!(err.contains("not found"), "{err}");
    tools
        .call(
            "edit_file",
            r#"{"path":"docs/a.md","old_text":"goodbye","new_text":"hello"}"#,
        )
        .await
        .unwrap();
    let err = tools
        .call(
            "edit_file",
            r#"{"path":"../x","old_text":"a","new_text":"b"}"#,
        )
        .await
        .unwrap_err();
    assert!(err.contains(".."), "{err}");
    assert_eq!(
        tools
            .call("search", r#"{"pattern":"hello"}"#)
            .await
            .unwrap(),
        "docs/a.md:2: hello world\n(1 matches in 1 files)"
    );
    let err = tools
        .call("write_file", r#"{"path": "x.md", "content": "#)
        .await
        .unwrap_err();
    assert!(err.contains("not valid JSON"), "{err}");
    let err = tools
        .call("run_command", r#"{"command":"ls"}"#)
        .await
        .unwrap_err();
    assert!(err.contains("not available"), "{err}");
}

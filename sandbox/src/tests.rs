//! Real children in the sandbox. The suite runs as root here, which the kernel exempts from
//! the process limit: these tests allow running without that layer, except where the refusal
//! is what they test (the suite's coder tests run the worker as a non-root user).

use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;

struct Dirs {
    work: tempfile::TempDir,
    outside: tempfile::TempDir,
}

fn dirs() -> Dirs {
    let d = Dirs {
        work: tempfile::tempdir().unwrap(),
        outside: tempfile::tempdir().unwrap(),
    };
    std::fs::write(d.outside.path().join("secret"), "s3cr3t").unwrap();
    d
}

fn policy(d: &Dirs) -> Policy {
    let mut p = Policy::new(
        vec![d.work.path().to_path_buf()],
        Limits {
            processes: 256,
            file_bytes: 1024 * 1024,
            cpu_secs: 10,
        },
    );
    p.allow_missing.insert(Layer::ProcessLimit);
    p
}

/// Runs `script` by `/bin/sh -c` in `sandbox`, in `dir`; (exit code, stdout + stderr).
fn sh(sandbox: &Sandbox, dir: &Path, script: &str) -> (i32, String) {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    sandbox.confine(&mut cmd);
    let out = cmd.output().expect("spawn in the sandbox");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn files_outside_the_writable_paths_are_out_of_reach() {
    let d = dirs();
    let sandbox = Sandbox::new(&policy(&d)).unwrap();
    assert!(sandbox.landlock_abi().is_some(), "Landlock is in use here");
    let secret = d.outside.path().join("secret");
    let (code, out) = sh(
        &sandbox,
        d.work.path(),
        &format!("cat {}", secret.display()),
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    let (code, out) = sh(
        &sandbox,
        d.work.path(),
        &format!("echo x > {}/new", d.outside.path().display()),
    );
    assert_ne!(code, 0, "{out}");
    assert!(!d.outside.path().join("new").exists());
    // Inside: write, read, run; system files read.
    let (code, out) = sh(
        &sandbox,
        d.work.path(),
        "mkdir -p a/b && echo hi > a/b/f && cat a/b/f && printf '#!/bin/sh\\necho ran\\n' > s && chmod +x s && ./s && head -c 4 /etc/passwd >/dev/null && echo ok",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "hi\nran\nok\n");
}

#[test]
fn no_network_but_unix_sockets() {
    let d = dirs();
    let sandbox = Sandbox::new(&policy(&d)).unwrap();
    let probe = "import socket\n\
        for fam in (socket.AF_INET, socket.AF_INET6):\n\
        \x20   try:\n\
        \x20       socket.socket(fam, socket.SOCK_STREAM); print('inet open')\n\
        \x20   except OSError as e: print('refused', e.errno)\n\
        a, b = socket.socketpair(); a.send(b'u'); print('unix', b.recv(1).decode())\n";
    let (code, out) = sh(
        &sandbox,
        d.work.path(),
        &format!("python3 -c \"{}\"", probe.replace('"', "\\\"")),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("refused {0}\nrefused {0}\nunix u\n", libc::EACCES)
    );
}

#[test]
fn a_process_left_behind_is_ended_with_its_group() {
    let d = dirs();
    let sandbox = Sandbox::new(&policy(&d)).unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("sleep 600 >/dev/null & setsid sleep 601 >/dev/null 2>&1; echo $!")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    sandbox.confine(&mut cmd);
    let child = cmd.spawn().unwrap();
    let pgid = child.id();
    let out = child.wait_with_output().unwrap();
    let background: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let exists = |pid: i32| {
        // SAFETY: signal 0 only asks whether the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    };
    assert!(exists(background), "the background sleep runs on");
    end_group(pgid, Duration::from_secs(5));
    // The worker is not the subreaper in this test: init reaps it; wait for that, bounded.
    let gone = (0..5000).any(|_| {
        std::thread::sleep(Duration::from_millis(1));
        !exists(background)
    });
    assert!(gone, "the background process outlived its command");
}

#[test]
fn the_file_size_limit_stops_a_large_write() {
    let d = dirs();
    let sandbox = Sandbox::new(&policy(&d)).unwrap();
    let (code, out) = sh(&sandbox, d.work.path(), "head -c 10000000 /dev/zero > big");
    assert_ne!(code, 0, "{out}");
    let size = std::fs::metadata(d.work.path().join("big")).unwrap().len();
    assert_eq!(size, 1024 * 1024, "stopped at the limit");
}

#[test]
fn with_a_proxy_port_tcp_reaches_that_port_only() {
    use std::io::Read;
    let d = dirs();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    let mut p = policy(&d);
    p.connect_port = Some(port(&proxy));
    let sandbox = Sandbox::new(&p).unwrap();
    let accepted = std::thread::spawn(move || {
        let (mut conn, _) = proxy.accept().unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        got
    });
    // Each attempt prints what happened: the proxy's port, another port on the same address,
    // UDP (DNS), IPv6, SCTP, raw, and TCP Fast Open to the other port.
    let probe = format!(
        "import socket\n\
        def try_(name, f):\n\
        \x20   try: f(); print(name, 'ok')\n\
        \x20   except OSError as e: print(name, 'refused', e.errno)\n\
        def connect(port):\n\
        \x20   s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.connect(('127.0.0.1', port)); s.sendall(b'hello'); s.close()\n\
        try_('proxy', lambda: connect({proxy}))\n\
        try_('other', lambda: connect({other}))\n\
        try_('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n\
        try_('inet6', lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))\n\
        try_('sctp', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132))\n\
        try_('fastopen', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).sendto(b'x', 0x20000000, ('127.0.0.1', {other})))\n",
        proxy = p.connect_port.unwrap(),
        other = port(&other),
    );
    let (code, out) = sh(
        &sandbox,
        d.work.path(),
        &format!("python3 -c \"{}\"", probe.replace('"', "\\\"")),
    );
    assert_eq!(code, 0, "{out}");
    let e = libc::EACCES;
    assert_eq!(
        out,
        format!(
            "proxy ok\nother refused {e}\nudp refused {e}\ninet6 refused {e}\nsctp refused {e}\nfastopen refused {e}\n"
        )
    );
    assert_eq!(accepted.join().unwrap(), "hello");
    // The other listener saw nothing: checked after the child is gone.
    assert_eq!(
        other.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock)
    );
}

#[test]
fn a_proxy_port_without_landlock_tcp_rules_is_refused() {
    let d = dirs();
    let mut p = policy(&d);
    p.connect_port = Some(3128);
    let old = Probe {
        landlock_abi: Some(3),
        seccomp: true,
        process_limit: true,
    };
    let err = Sandbox::with_probe(&p, old).unwrap_err().to_string();
    assert!(err.contains("landlock is missing"), "{err}");
    assert!(err.contains("ABI 4") && err.contains("here ABI 3"), "{err}");
    // Allowing Landlock to be missing does not open the network without it.
    p.allow_missing.insert(Layer::Landlock);
    p.disabled.insert(Layer::Landlock);
    let err = Sandbox::new(&p).unwrap_err().to_string();
    assert!(err.contains("here none"), "{err}");
}

#[test]
fn missing_layers_are_refused_by_name_unless_allowed() {
    let d = dirs();
    let mut p = policy(&d);
    p.disabled = [Layer::Landlock, Layer::Seccomp].into();
    let err = Sandbox::new(&p).unwrap_err().to_string();
    assert!(err.contains("landlock is missing"), "{err}");
    assert!(err.contains("seccomp is missing"), "{err}");
    let root = Probe {
        landlock_abi: Some(7),
        seccomp: true,
        process_limit: false,
    };
    let err = Sandbox::with_probe(&Policy::new(vec![], p.limits), root)
        .unwrap_err()
        .to_string();
    assert!(err.contains("process-limit is missing"), "{err}");
    assert!(err.contains("root"), "{err}");
    p.allow_missing.insert(Layer::Landlock);
    p.allow_missing.insert(Layer::Seccomp);
    let sandbox = Sandbox::new(&p).unwrap();
    let names: Vec<Layer> = sandbox.running_without().iter().map(|(l, _)| *l).collect();
    assert!(names.contains(&Layer::Landlock) && names.contains(&Layer::Seccomp));
    // Without Landlock the outside is readable: what "running with less" means.
    let secret = d.outside.path().join("secret");
    let (code, _) = sh(
        &sandbox,
        d.work.path(),
        &format!("cat {}", secret.display()),
    );
    assert_eq!(code, 0);
}

#[test]
fn a_secret_file_beneath_a_readable_path_refuses_the_sandbox() {
    let d = dirs();
    let mut p = policy(&d);
    p.readable.push(d.outside.path().to_path_buf());
    p.secrets.push(d.outside.path().join("secret"));
    let err = Sandbox::new(&p).unwrap_err().to_string();
    assert!(err.contains("secret file"), "{err}");
    // Through a link, judged on the real path.
    let mut p = policy(&d);
    let link = d.work.path().join("link");
    std::os::unix::fs::symlink(d.outside.path(), &link).unwrap();
    p.readable.push(link);
    p.secrets.push(d.outside.path().join("secret"));
    assert!(Sandbox::new(&p).is_err());
}

#[test]
fn no_privilege_and_no_escape_from_the_group() {
    let d = dirs();
    let sandbox = Sandbox::new(&policy(&d)).unwrap();
    let (code, out) = sh(
        &sandbox,
        d.work.path(),
        "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; setsid true || echo no-setsid",
    );
    assert_eq!(code, 0, "{out}");
    for line in [
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "no-setsid",
    ] {
        assert!(out.contains(line), "{line} in:\n{out}");
    }
}

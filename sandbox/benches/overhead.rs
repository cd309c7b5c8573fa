//! What the sandbox adds to a command: `true`, and a small test run (`python3 -c` running
//! a unittest), each spawned plainly (a process group of its own, the same environment) and
//! in the sandbox (the ruleset and filter prepared once, as a task does), alternating rounds
//! in one process. Prints median and p90 per command and the ratio and the difference of the
//! medians. Run as a non-root user for the process limit (`setpriv --reuid=65534
//! --regid=65534 --clear-groups`); as root it runs without that layer and says so.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openclaw_sandbox::{Layer, Limits, Policy, Sandbox};

const ROUNDS: usize = 5;
const PER_ROUND: usize = 100;

fn command(program: &str, args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn time(mut make: impl FnMut() -> Command) -> Duration {
    let start = Instant::now();
    let status = make().status().expect("spawn");
    assert!(status.success());
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut policy = Policy::new(
        vec![work.path().to_path_buf()],
        Limits {
            processes: 512,
            file_bytes: 1 << 30,
            cpu_secs: 60,
        },
    );
    policy.allow_missing.insert(Layer::ProcessLimit);
    let sandbox = Sandbox::new(&policy).expect("sandbox");
    for (layer, why) in sandbox.running_without() {
        println!("running without {layer}: {why}");
    }
    let test = "import unittest\nclass T(unittest.TestCase):\n    def test(self): self.assertEqual(1 + 1, 2)\nunittest.main(argv=['t'], exit=True)\n";
    std::fs::write(work.path().join("t.py"), test).expect("write");
    for (name, program, args) in [
        ("true", "/bin/true", vec![]),
        ("python3 unittest", "python3", vec!["t.py"]),
    ] {
        let (mut plain, mut boxed) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for _ in 0..PER_ROUND {
                plain.push(time(|| {
                    let mut c = command(program, &args, work.path());
                    c.process_group(0);
                    c
                }));
            }
            for _ in 0..PER_ROUND {
                boxed.push(time(|| {
                    let mut c = command(program, &args, work.path());
                    sandbox.confine(&mut c);
                    c
                }));
            }
        }
        plain.sort();
        boxed.sort();
        let (p50, s50) = (percentile(&plain, 0.5), percentile(&boxed, 0.5));
        println!(
            "{name}: plain p50 {:?} p90 {:?} | sandboxed p50 {:?} p90 {:?} | ratio {:.2} | added {:?}",
            p50,
            percentile(&plain, 0.9),
            s50,
            percentile(&boxed, 0.9),
            s50.as_secs_f64() / p50.as_secs_f64(),
            s50.saturating_sub(p50),
        );
    }
}

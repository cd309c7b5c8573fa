//! Running a child for `run_command`: both pipes drained to their end while the child runs
//! (a child writing more than a pipe holds never blocks), each kept as head and tail in
//! bounded memory ([`HeadTail`]), the child killed at its timeout with what it printed so far,
//! and then its whole process group ended: nothing it started runs on after it returns.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::output::HeadTail;

/// Bytes of each stream's head and of its tail kept for the model.
const KEEP_BYTES: usize = 8 * 1024;

/// What a finished (or stopped) child left.
#[derive(Debug)]
pub(super) struct Ran {
    /// `None`: killed at the timeout, or because the worker is stopping (`stopped`).
    pub status: Option<ExitStatus>,
    /// Killed because the worker is stopping, not at its time limit.
    pub stopped: bool,
    pub stdout: HeadTail,
    pub stderr: HeadTail,
}

impl Ran {
    /// stdout, then stderr after a `[stderr]` line.
    fn output(&self) -> String {
        let mut text = self.stdout.text();
        let err = self.stderr.text();
        if !err.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("[stderr]\n");
            text.push_str(&err);
        }
        text
    }

    /// The result the model sees: the output (stderr marked), and the exit status when it is
    /// not success, first, so that it survives any later cut.
    pub fn into_output(self, program: &str, timeout: Duration) -> Result<String, String> {
        let text = self.output();
        match self.status {
            Some(s) if s.success() => Ok(text),
            Some(s) => Err(format!(
                "{program}: exit status {}\n{text}",
                s.code()
                    .map_or_else(|| "killed by a signal".into(), |c| c.to_string())
            )),
            None => Err(format!(
                "{program}: timed out after {}s and was stopped; its output so far:\n{text}",
                timeout.as_secs()
            )),
        }
    }

    /// The result of a shell command line: its output, after the exit status when that is not
    /// 0 (with the sandbox limit that stopped it, when one did).
    pub fn into_shell_output(
        self,
        timeout: Duration,
        limits: Option<openclaw_sandbox::Limits>,
    ) -> Result<String, String> {
        use std::os::unix::process::ExitStatusExt;
        let why = match self.status {
            Some(s) if s.success() => None,
            // A shell reports a child killed by signal N as exit status 128 + N.
            Some(s) => Some(match (s.code(), s.signal()) {
                (Some(code), _) if code > 128 => format!(
                    "exit status {code}{}",
                    signal_reason(code - 128, limits)
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default()
                ),
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(sig)) => format!(
                    "killed by signal {sig}{}",
                    signal_reason(sig, limits)
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default()
                ),
                (None, None) => "ended without a status".to_owned(),
            }),
            None if self.stopped => Some(
                "stopped (with everything it started): the worker is stopping; its output so far"
                    .to_owned(),
            ),
            None => Some(format!(
                "timed out after {}s and was stopped (with everything it started); its output so far",
                timeout.as_secs()
            )),
        };
        let text = self.output();
        match why {
            None => Ok(text),
            Some(why) => Err(format!("{why}:\n{text}")),
        }
    }
}

const SIGXCPU: i32 = 24;
const SIGXFSZ: i32 = 25;

/// What a signal that ended a process says about the sandbox's limits.
fn signal_reason(sig: i32, limits: Option<openclaw_sandbox::Limits>) -> Option<String> {
    let limits = limits?;
    match sig {
        SIGXFSZ => Some(format!(
            "a file reached the sandbox's size limit ({} bytes)",
            limits.file_bytes
        )),
        SIGXCPU => Some(format!(
            "the sandbox's CPU limit of {}s per process",
            limits.cpu_secs
        )),
        _ => None,
    }
}

/// How long ending a command's process group may take.
const GROUP_END: Duration = Duration::from_secs(5);

/// How long the pipes may stay open after the child ended (a background grandchild holding
/// them): what arrived by then is the output.
const PIPE_GRACE: Duration = Duration::from_secs(2);

type Kept = std::sync::Arc<std::sync::Mutex<HeadTail>>;

/// Runs `cmd` (stdio set here; it leads a process group of its own, by the sandbox or
/// `process_group(0)`) for at most `timeout`, its output also sent to `live`.
pub(super) async fn run(
    mut cmd: tokio::process::Command,
    timeout: Duration,
    live: Option<super::LiveOutput>,
    stop: &tokio_util::sync::CancellationToken,
) -> std::io::Result<Ran> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let kept = || Kept::new(std::sync::Mutex::new(HeadTail::new(KEEP_BYTES)));
    let (stdout, stderr) = (kept(), kept());
    let mut drains = tokio::task::JoinSet::new();
    drains.spawn(drain(child.stdout.take(), stdout.clone(), live.clone()));
    drains.spawn(drain(child.stderr.take(), stderr.clone(), live));
    let group = child.id();
    let mut stopped = false;
    let status = tokio::select! {
        waited = tokio::time::timeout(timeout, child.wait()) => match waited {
            Ok(status) => Some(status?),
            Err(_) => {
                let _ = child.kill().await;
                None
            }
        },
        // The worker is stopping: the command goes now, with its group, as at a timeout.
        () = stop.cancelled() => {
            let _ = child.kill().await;
            stopped = true;
            None
        }
    };
    // The command returned (or was stopped): what it left running goes with its group, and
    // with them the pipes they held open.
    if let Some(group) = group {
        let _ = tokio::task::spawn_blocking(move || openclaw_sandbox::end_group(group, GROUP_END))
            .await;
    }
    let drained = async { while drains.join_next().await.is_some() {} };
    if tokio::time::timeout(PIPE_GRACE, drained).await.is_err() {
        drains.abort_all();
    }
    let take = |kept: Kept| {
        kept.lock()
            .map(|mut k| std::mem::replace(&mut *k, HeadTail::new(KEEP_BYTES)))
            .unwrap_or_else(|_| HeadTail::new(KEEP_BYTES))
    };
    Ok(Ran {
        status,
        stopped,
        stdout: take(stdout),
        stderr: take(stderr),
    })
}

/// Reads `pipe` to its end into `kept` (and `live`, when it has room).
async fn drain(pipe: Option<impl AsyncRead + Unpin>, kept: Kept, live: Option<super::LiveOutput>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut k) = kept.lock() {
                    k.push(&buf[..n]);
                }
                if let Some(live) = &live {
                    let _ = live.try_send(super::Live::Output(buf[..n].to_vec()));
                }
            }
        }
    }
}

//! The kernel sandbox of a worker's commands. A command (a child of the worker) enters it
//! between `fork` and `exec`, in this order:
//!
//! 1. **A session and process group of its own** (`setsid`): everything it starts shares the
//!    group, and the seccomp filter keeps it there (no `setsid`/`setpgid` after this), so
//!    [`end_group`] reaches every process the command left behind.
//! 2. **rlimits**: processes (`RLIMIT_NPROC`, counted per user by the kernel, which exempts
//!    root — the [`Layer::ProcessLimit`] a root worker lacks), file size (`RLIMIT_FSIZE`: a
//!    larger write gets `SIGXFSZ`), CPU seconds, no core files.
//! 3. **No new privileges, no capabilities**: `PR_SET_NO_NEW_PRIVS`, the bounding and ambient
//!    sets emptied where the worker may, the effective, permitted and inheritable sets
//!    cleared: nothing the command runs gains a privilege, set-user-ID binaries included.
//! 4. **Landlock** ([`Layer::Landlock`]): read-write only beneath the writable paths (the
//!    checkout and the task's scratch directory), read and execute beneath the readable ones
//!    (system directories), read-write on a few devices; nothing else exists for it. On ABI
//!    4+ no TCP bind or connect (but to [`Policy::connect_port`], the worker's egress proxy),
//!    on ABI 6+ no signal to, and no abstract Unix socket of, a
//!    process outside the sandbox (the worker). Landlock also refuses `ptrace` and
//!    `/proc/<pid>/mem`-style access to processes outside its domain.
//! 5. **seccomp** ([`Layer::Seccomp`]): sockets other than Unix and netlink refused (no
//!    network; with [`Policy::connect_port`], IPv4 TCP sockets too, which Landlock then lets
//!    connect to that port only, and TCP Fast Open, which connects without `connect`, refused), `ptrace`, `process_vm_*`, `pidfd_getfd`, namespaces, mounts, keyrings,
//!    `bpf`, `perf_event_open`, `io_uring` (whose operations seccomp cannot see), `kill(-1)`,
//!    and leaving the process group refused; `clone3` answers `ENOSYS` so the C library falls
//!    back to `clone`, whose namespace flags are refused.
//!
//! The worker itself is made not dumpable ([`harden_worker`]): its `/proc/<pid>/environ` and
//! `/mem` need `CAP_SYS_PTRACE`, which no command has. It is also the subreaper of its
//! descendants, so a command's orphans come back to it to be reaped.
//!
//! **Architecture Invariant:** the code between `fork` and `exec` ([`process::enter`]) only
//! makes system calls on data prepared before the fork (the Landlock ruleset's descriptor,
//! the BPF program, numbers): no allocation, no lock — the worker is multi-threaded.

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod landlock;
mod process;
mod seccomp;

pub use process::{end_group, harden_worker};

/// A layer of the sandbox that a kernel or a deployment may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Filesystem confinement (and, by ABI, TCP and signal scoping).
    Landlock,
    /// The system-call filter: no network, no escape from the process group.
    Seccomp,
    /// `RLIMIT_NPROC`: bounds fork bombs; the kernel does not apply it to root.
    ProcessLimit,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Landlock, Layer::Seccomp, Layer::ProcessLimit];

    /// The name used in settings and messages: `landlock`, `seccomp`, `process-limit`.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::ProcessLimit => "process-limit",
        }
    }

    pub fn parse(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name.trim())
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Resource limits of every process of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Processes (and threads) of the user at once, the worker's own included.
    pub processes: u64,
    /// Largest file a process may write, in bytes.
    pub file_bytes: u64,
    /// CPU seconds per process (`SIGXCPU`, then `SIGKILL` two seconds later).
    pub cpu_secs: u64,
}

/// What a command may reach.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Read, write, create, execute beneath these (the checkout, the scratch directory).
    pub writable: Vec<PathBuf>,
    /// Read and execute beneath these (system directories, toolchains).
    pub readable: Vec<PathBuf>,
    /// Device files opened for reading and writing (`/dev/null`, …).
    pub devices: Vec<PathBuf>,
    /// The worker's secret files (credentials, keys): the sandbox is refused when one of them
    /// is beneath a readable or writable path.
    pub secrets: Vec<PathBuf>,
    pub limits: Limits,
    /// TCP connections to this port (on whatever address) and no other: the worker's egress
    /// proxy on 127.0.0.1. `None`: no network at all. Landlock filters TCP by port only, so
    /// this needs Landlock ABI 4 and is refused without it; off the pod, the worker's
    /// NetworkPolicy (egress to named ports only) keeps the port from reaching elsewhere.
    pub connect_port: Option<u16>,
    /// Layers the profile accepts running without (the task's events say so).
    pub allow_missing: BTreeSet<Layer>,
    /// Layers switched off as if the kernel lacked them (`OPENCLAW_SANDBOX_DISABLE`, for tests
    /// of the refusal).
    pub disabled: BTreeSet<Layer>,
}

/// Directories a toolchain reads; those that exist are used.
pub const SYSTEM_READABLE: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc",
    "/sys", "/dev",
];

/// Devices a command may write (and `/dev/shm`, which Python's multiprocessing needs).
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/shm",
];

impl Policy {
    /// `writable` plus the system's readable directories and devices, with `limits`.
    pub fn new(writable: Vec<PathBuf>, limits: Limits) -> Self {
        let existing = |list: &[&str]| -> Vec<PathBuf> {
            list.iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect()
        };
        Self {
            writable,
            readable: existing(SYSTEM_READABLE),
            devices: existing(DEVICES),
            secrets: Vec::new(),
            limits,
            connect_port: None,
            allow_missing: BTreeSet::new(),
            disabled: BTreeSet::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Layers the kernel or the deployment lacks, and the profile does not allow running
    /// without.
    #[error("commands cannot run sandboxed: {}", describe(.0))]
    Missing(Vec<(Layer, String)>),
    #[error(
        "commands cannot run sandboxed: the worker's secret file {} would be readable (beneath {}); move it out of that directory",
        .secret.display(), .under.display()
    )]
    ExposesSecret { secret: PathBuf, under: PathBuf },
    #[error("sandbox: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn describe(missing: &[(Layer, String)]) -> String {
    missing
        .iter()
        .map(|(layer, why)| format!("{layer} is missing ({why})"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What this kernel and process offer.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// The Landlock ABI version, when Landlock is enabled.
    pub landlock_abi: Option<u32>,
    /// Whether seccomp filters exist here (and this architecture is one the filter knows).
    pub seccomp: bool,
    /// Whether the kernel counts this process's user against `RLIMIT_NPROC` (not root).
    pub process_limit: bool,
}

impl Probe {
    pub fn now() -> Self {
        Self {
            landlock_abi: landlock::abi(),
            seccomp: seccomp::available(),
            process_limit: process::process_limit_applies(),
        }
    }

    fn missing(&self, disabled: &BTreeSet<Layer>) -> Vec<(Layer, String)> {
        let mut missing = Vec::new();
        for layer in Layer::ALL {
            let why = if disabled.contains(&layer) {
                Some("switched off by OPENCLAW_SANDBOX_DISABLE".to_owned())
            } else {
                match layer {
                    Layer::Landlock if self.landlock_abi.is_none() => Some(
                        "the kernel offers no Landlock: Linux 5.13 or later with landlock among its LSMs".to_owned(),
                    ),
                    Layer::Seccomp if !self.seccomp => Some(format!(
                        "no seccomp filters on this kernel or architecture ({})",
                        std::env::consts::ARCH
                    )),
                    Layer::ProcessLimit if !self.process_limit => Some(
                        "the worker runs as root, whose processes the kernel does not count; run it as a non-root user".to_owned(),
                    ),
                    _ => None,
                }
            };
            if let Some(why) = why {
                missing.push((layer, why));
            }
        }
        missing
    }
}

/// A prepared sandbox: the Landlock ruleset and the seccomp program are built once (per
/// task) and entered by every command started with [`Sandbox::confine`].
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Prepared>,
}

#[derive(Debug)]
struct Prepared {
    ruleset: Option<OwnedFd>,
    filter: Option<Vec<libc::sock_filter>>,
    limits: Limits,
    process_limit: bool,
    running_without: Vec<(Layer, String)>,
    abi: Option<u32>,
}

impl Sandbox {
    /// Prepares `policy` on this kernel. Refused when a layer is missing that the policy does
    /// not allow running without, or when a secret file would be within reach.
    pub fn new(policy: &Policy) -> Result<Self, SandboxError> {
        Self::with_probe(policy, Probe::now())
    }

    pub fn with_probe(policy: &Policy, probe: Probe) -> Result<Self, SandboxError> {
        let missing = probe.missing(&policy.disabled);
        let refused: Vec<_> = missing
            .iter()
            .filter(|(layer, _)| !policy.allow_missing.contains(layer))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(SandboxError::Missing(refused));
        }
        let has = |layer: Layer| !missing.iter().any(|(l, _)| *l == layer);
        if let Some(port) = policy.connect_port {
            // Without Landlock's TCP rules, letting inet sockets through seccomp would open
            // every address and port: refused whatever the profile allows missing.
            let abi = probe.landlock_abi.filter(|_| has(Layer::Landlock));
            if abi.is_none_or(|abi| abi < 4) {
                let has = abi.map_or("none".to_owned(), |abi| format!("ABI {abi}"));
                return Err(SandboxError::Missing(vec![(
                    Layer::Landlock,
                    format!(
                        "commands may reach the network (the proxy on port {port}) only where Landlock filters TCP connections: ABI 4, Linux 6.7 or later; here {has}"
                    ),
                )]));
            }
        }
        let ruleset = match (has(Layer::Landlock), probe.landlock_abi) {
            (true, Some(abi)) => {
                check_secrets(policy)?;
                Some(
                    landlock::ruleset(abi, policy).map_err(|source| SandboxError::Io {
                        what: "preparing the Landlock ruleset".into(),
                        source,
                    })?,
                )
            }
            _ => None,
        };
        let filter = has(Layer::Seccomp)
            .then(|| seccomp::program(policy.connect_port.is_some()))
            .flatten();
        Ok(Self {
            inner: Arc::new(Prepared {
                ruleset,
                filter,
                limits: policy.limits,
                process_limit: has(Layer::ProcessLimit),
                running_without: missing,
                abi: probe.landlock_abi,
            }),
        })
    }

    /// The layers this sandbox runs without (allowed by the policy), and why: what a task's
    /// events should say.
    pub fn running_without(&self) -> &[(Layer, String)] {
        &self.inner.running_without
    }

    /// The Landlock ABI in use, when Landlock is.
    pub fn landlock_abi(&self) -> Option<u32> {
        self.inner.ruleset.as_ref().and(self.inner.abi)
    }

    /// Makes `cmd` enter the sandbox when it is spawned (between fork and exec). The caller
    /// sets its environment, directory and stdio.
    pub fn confine(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let inner = self.inner.clone();
        let enter = move || {
            process::enter(&process::Entry {
                ruleset: inner.ruleset.as_ref().map(|fd| fd.as_raw_fd()),
                filter: inner.filter.as_deref(),
                limits: inner.limits,
                process_limit: inner.process_limit,
            })
        };
        // SAFETY: `enter` runs in the child between fork and exec and only makes system calls
        // on data the parent prepared (a descriptor number, a BPF program, integers) and
        // returns `io::Error::last_os_error()`: no allocation, no lock, nothing the other
        // threads of the parent could have held at the fork.
        unsafe {
            cmd.pre_exec(enter);
        }
    }
}

/// Refuses a policy that would let commands read one of the worker's secret files, judged on
/// the paths after resolving links.
fn check_secrets(policy: &Policy) -> Result<(), SandboxError> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    for secret in &policy.secrets {
        let real = canonical(secret);
        for allowed in policy.readable.iter().chain(&policy.writable) {
            let under = canonical(allowed);
            if real.starts_with(&under) || secret.starts_with(allowed) {
                return Err(SandboxError::ExposesSecret {
                    secret: secret.clone(),
                    under: allowed.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

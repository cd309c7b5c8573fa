//! The process side: what a child does between fork and exec ([`enter`]), the end of a
//! command's process group ([`end_group`]), and the worker's own hardening.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use libc::sock_filter;

use crate::Limits;

/// What the child needs, all prepared before the fork.
pub(crate) struct Entry<'a> {
    pub ruleset: Option<RawFd>,
    pub filter: Option<&'a [sock_filter]>,
    pub limits: Limits,
    /// Whether to set `RLIMIT_NPROC` (not for root: the kernel ignores it there).
    pub process_limit: bool,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(result: libc::c_long) -> std::io::Result<()> {
    if result < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// Lowers `resource` to `soft`/`hard` (never raises a hard limit the worker was given).
fn limit(resource: Resource, soft: u64, hard: u64) -> std::io::Result<()> {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `current` is a valid rlimit to fill.
    check(unsafe { libc::getrlimit(resource, &mut current) }.into())?;
    let hard = hard.min(current.rlim_max);
    let new = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `new` is a valid rlimit.
    check(unsafe { libc::setrlimit(resource, &new) }.into())
}

/// Enters the sandbox: runs in the child between fork and exec, so it only makes system
/// calls (see the crate's Architecture Invariant).
pub(crate) fn enter(entry: &Entry<'_>) -> std::io::Result<()> {
    // SAFETY: no arguments; makes this child the leader of a new session and group.
    check(unsafe { libc::setsid() }.into())?;
    let l = entry.limits;
    if entry.process_limit {
        limit(libc::RLIMIT_NPROC, l.processes, l.processes)?;
    }
    limit(libc::RLIMIT_FSIZE, l.file_bytes, l.file_bytes)?;
    limit(libc::RLIMIT_CPU, l.cpu_secs, l.cpu_secs.saturating_add(2))?;
    limit(libc::RLIMIT_CORE, 0, 0)?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())?;
    drop_capabilities()?;
    if let Some(fd) = entry.ruleset {
        // SAFETY: a Landlock ruleset descriptor the parent created; flags 0.
        check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) })?;
    }
    if let Some(filter) = entry.filter {
        let program = libc::sock_fprog {
            len: u16::try_from(filter.len()).map_err(|_| std::io::Error::other("filter"))?,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: `program` points into `filter`, which outlives the call; the kernel copies
        // it. No new privileges is set above, as the call requires.
        check(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0u32,
                &program as *const libc::sock_fprog,
            )
        })?;
    }
    Ok(())
}

/// Empties the bounding and ambient sets (where the worker may: it takes `CAP_SETPCAP`) and
/// clears the effective, permitted and inheritable sets.
fn drop_capabilities() -> std::io::Result<()> {
    for cap in 0..64 {
        // SAFETY: integer arguments; fails harmlessly (EINVAL past the last capability, EPERM
        // without CAP_SETPCAP, when there is nothing to drop from the permitted set either).
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    }
    // SAFETY: integer arguments; EINVAL on kernels without ambient capabilities is harmless.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            PR_CAP_AMBIENT_CLEAR_ALL,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: version 3 takes two data structs; both outlive the call.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) })
}

/// Whether the kernel counts this process's user against `RLIMIT_NPROC`: not for the
/// initial namespace's root (its user is exempt whatever its capabilities).
pub(crate) fn process_limit_applies() -> bool {
    // SAFETY: no arguments.
    let uid = unsafe { libc::getuid() };
    if uid != 0 {
        return true;
    }
    // Root inside a user namespace is counted as the user it maps to.
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        map.lines().any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.first() == Some(&"0") && f.get(1).is_some_and(|outside| *outside != "0")
        })
    })
}

/// The worker's own hardening, once at start: not dumpable (its `/proc/<pid>/environ` and
/// `/mem` then need `CAP_SYS_PTRACE`, which no command has) and the subreaper of its
/// descendants (a command's orphans come back to it, so [`end_group`] can reap them).
pub fn harden_worker() -> std::io::Result<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }.into())?;
    // SAFETY: integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }.into())
}

/// Ends a command's process group `pgid` (its first process's id, a group the sandbox made or
/// `process_group(0)` did): `SIGKILL` to the group, the members that became the worker's
/// children (orphans, through the subreaper) reaped, until no process of the group is left or
/// `within` passed. Call after the command's own process was waited for. Blocking. Returns
/// how many of the group's processes it reaped.
pub fn end_group(pgid: u32, within: Duration) -> usize {
    let Ok(group) = i32::try_from(pgid) else {
        return 0;
    };
    if group <= 1 {
        // kill(-1) and kill(0) mean other things; never.
        return 0;
    }
    let deadline = Instant::now() + within;
    let mut reaped = 0;
    loop {
        // SAFETY: integer arguments; signals only the group `group`.
        let alive = unsafe { libc::kill(-group, libc::SIGKILL) } == 0;
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid int; reaps only children in the group.
            let pid = unsafe { libc::waitpid(-group, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            reaped += 1;
        }
        if !alive || Instant::now() >= deadline {
            return reaped;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

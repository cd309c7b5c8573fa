//! Landlock through its three system calls (the `landlock` crate's `restrict_self` consumes
//! its ruleset and is not made for the child side of a fork; here the ruleset is built once
//! in the worker and only `landlock_restrict_self` runs in each child).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::Policy;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;
const RULE_NET_PORT: u32 = 2;

// Filesystem rights (uapi/linux/landlock.h).
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;
/// The rights of ABI 1 (`EXECUTE` … `MAKE_SYM`).
const ABI1_FS: u64 = (1 << 13) - 1;
/// Rights that apply to a file (a rule on a file may name only these).
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

// Network rights (ABI 4) and scopes (ABI 6).
const BIND_TCP: u64 = 1 << 0;
const CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers, or `None` without Landlock.
pub(crate) fn abi() -> Option<u32> {
    // SAFETY: the version query takes no attribute (NULL, size 0) and only returns a number.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).ok().filter(|v| *v >= 1)
}

fn handled_fs(abi: u32) -> u64 {
    let mut fs = ABI1_FS;
    if abi >= 2 {
        fs |= REFER;
    }
    if abi >= 3 {
        fs |= TRUNCATE;
    }
    if abi >= 5 {
        fs |= IOCTL_DEV;
    }
    fs
}

/// A ruleset for `policy` on a kernel of `abi`: what the policy names and nothing else.
pub(crate) fn ruleset(abi: u32, policy: &Policy) -> std::io::Result<OwnedFd> {
    let fs = handled_fs(abi);
    let attr = RulesetAttr {
        handled_access_fs: fs,
        // Handled with no rule but the proxy's port: no TCP bind, and no connect elsewhere.
        handled_access_net: if abi >= 4 { BIND_TCP | CONNECT_TCP } else { 0 },
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    // The size the kernel of this ABI knows (a larger one with zeroed fields is accepted too,
    // but naming the fields it knows is exact).
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => std::mem::size_of::<RulesetAttr>(),
    };
    // SAFETY: `attr` outlives the call and `size` is at most its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::last_os_error())?;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor (close-on-exec) and nothing else owns it.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd) };
    let read_only = EXECUTE | READ_FILE | READ_DIR;
    for path in &policy.readable {
        add_path(&ruleset, path, read_only & fs)?;
    }
    for path in &policy.writable {
        add_path(&ruleset, path, fs)?;
    }
    for path in &policy.devices {
        let rights = if path.is_dir() {
            fs
        } else {
            (READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV) & fs
        };
        add_path(&ruleset, path, rights)?;
    }
    if let Some(port) = policy.connect_port {
        add_port(&ruleset, port)?;
    }
    Ok(ruleset)
}

/// Allows TCP connections to `port` (on any address: Landlock does not look at addresses).
fn add_port(ruleset: &OwnedFd, port: u16) -> std::io::Result<()> {
    let attr = NetPortAttr {
        allowed_access: CONNECT_TCP,
        port: u64::from(port),
    };
    // SAFETY: `attr` and the descriptor outlive the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_NET_PORT,
            &attr as *const NetPortAttr,
            0u32,
        )
    };
    if done != 0 {
        let err = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            err.kind(),
            format!("TCP port {port}: {err}"),
        ));
    }
    Ok(())
}

/// Allows `rights` beneath `path` (only the file rights when it is not a directory). A path
/// that does not exist is skipped: there is nothing there to reach.
fn add_path(ruleset: &OwnedFd, path: &Path, rights: u64) -> std::io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    // SAFETY: a NUL-terminated path; the returned descriptor is owned just below.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return match err.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(err),
        };
    }
    // SAFETY: `open` just returned it and nothing else owns it.
    let parent = unsafe { OwnedFd::from_raw_fd(fd) };
    let rights = if path.is_dir() {
        rights
    } else {
        rights & FILE_RIGHTS
    };
    let attr = PathBeneathAttr {
        allowed_access: rights,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: `attr` and both descriptors outlive the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if done != 0 {
        let err = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            err.kind(),
            format!("{}: {err}", path.display()),
        ));
    }
    Ok(())
}

//! The seccomp filter, written as the BPF program it is (a short list: each denied call gets
//! its own errno — `clone3` must answer `ENOSYS` for the C library to fall back to `clone` —
//! and the x32 ABI is closed; a filter generator with one action per filter would need
//! several stacked filters for the same).

use libc::sock_filter;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const ALU_AND_K: u16 = 0x54;

// Offsets in `struct seccomp_data` (little-endian: an argument's low word comes first).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LOW: u32 = 16;
const ARG1_LOW: u32 = 24;
const ARG2_LOW: u32 = 32;
const ARG3_LOW: u32 = 40;

/// `MSG_FASTOPEN`: `sendto`/`sendmsg` with it connect a TCP socket without `connect(2)`,
/// where Landlock's port rule is checked.
const MSG_FASTOPEN: u32 = 0x2000_0000;
/// The type bits of `socket(2)`'s second argument (the rest are `SOCK_NONBLOCK`/`CLOEXEC`).
const SOCK_TYPE_MASK: u32 = 0xf;

/// `CLONE_NEW*` flags that `clone` takes in its flags word (`CLONE_NEWTIME` only via
/// `clone3`/`unshare`, both refused).
const CLONE_NEW_NAMESPACES: u32 = 0x0002_0000 // NEWNS
    | 0x0200_0000 // NEWCGROUP
    | 0x0400_0000 // NEWUTS
    | 0x0800_0000 // NEWIPC
    | 0x1000_0000 // NEWUSER
    | 0x2000_0000 // NEWPID
    | 0x4000_0000; // NEWNET

/// Calls refused outright, with the errno each answers.
fn denied() -> Vec<(libc::c_long, i32)> {
    let eperm = libc::EPERM;
    vec![
        // The C library falls back to clone(2) on ENOSYS (whose flags are checked below).
        (libc::SYS_clone3, libc::ENOSYS),
        // Reading or steering other processes.
        (libc::SYS_ptrace, eperm),
        (libc::SYS_process_vm_readv, eperm),
        (libc::SYS_process_vm_writev, eperm),
        (libc::SYS_pidfd_getfd, eperm),
        (libc::SYS_process_madvise, eperm),
        // Leaving the process group that the end of a command kills.
        (libc::SYS_setsid, eperm),
        (libc::SYS_setpgid, eperm),
        // Namespaces and mounts: kernel surface, and ways around the other layers.
        (libc::SYS_unshare, eperm),
        (libc::SYS_setns, eperm),
        (libc::SYS_mount, eperm),
        (libc::SYS_umount2, eperm),
        (libc::SYS_pivot_root, eperm),
        (libc::SYS_chroot, eperm),
        (libc::SYS_open_tree, eperm),
        (libc::SYS_move_mount, eperm),
        (libc::SYS_fsopen, eperm),
        (libc::SYS_fsconfig, eperm),
        (libc::SYS_fsmount, eperm),
        (libc::SYS_fspick, eperm),
        (libc::SYS_mount_setattr, eperm),
        (libc::SYS_open_by_handle_at, eperm),
        // io_uring runs operations (sockets, opens) this filter never sees.
        (libc::SYS_io_uring_setup, eperm),
        (libc::SYS_io_uring_enter, eperm),
        (libc::SYS_io_uring_register, eperm),
        // Kernel surface no build needs.
        (libc::SYS_bpf, eperm),
        (libc::SYS_perf_event_open, eperm),
        (libc::SYS_userfaultfd, eperm),
        (libc::SYS_keyctl, eperm),
        (libc::SYS_add_key, eperm),
        (libc::SYS_request_key, eperm),
        (libc::SYS_kexec_load, eperm),
        (libc::SYS_init_module, eperm),
        (libc::SYS_finit_module, eperm),
        (libc::SYS_delete_module, eperm),
        (libc::SYS_acct, eperm),
        (libc::SYS_swapon, eperm),
        (libc::SYS_swapoff, eperm),
        (libc::SYS_reboot, eperm),
    ]
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn nr(call: libc::c_long) -> u32 {
    u32::try_from(call).unwrap_or(u32::MAX)
}

/// Whether this kernel has seccomp filters and this architecture is one the filter knows.
pub(crate) fn available() -> bool {
    if cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))) {
        return false;
    }
    // SAFETY: PR_GET_SECCOMP takes no pointer and returns the mode (0 or 2), or -1/EINVAL
    // when the kernel was built without seccomp.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP) >= 0 }
}

/// The filter's program, or `None` on an architecture it does not know. `tcp`: IPv4 TCP
/// sockets are allowed too (Landlock decides where they connect).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn program(tcp: bool) -> Option<Vec<sock_filter>> {
    let errno = |e: i32| RET_ERRNO | (e as u32 & 0xffff);
    let mut p = vec![
        stmt(LD_W_ABS, ARCH),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR),
    ];
    if cfg!(target_arch = "x86_64") {
        // x32 system calls (numbers with bit 30 set) would pass every check below.
        p.push(jump(JGE_K, 0x4000_0000, 0, 1));
        p.push(stmt(RET_K, errno(libc::ENOSYS)));
    }
    for (call, e) in denied() {
        p.push(jump(JEQ_K, nr(call), 0, 1));
        p.push(stmt(RET_K, errno(e)));
    }
    if tcp {
        // socket(domain, type, protocol): Unix, netlink, and IPv4 TCP sockets (protocol 0 or
        // IPPROTO_TCP: SCTP and MPTCP stream sockets are not what Landlock's rule filters).
        p.push(jump(JEQ_K, nr(libc::SYS_socket), 0, 14));
        p.push(stmt(LD_W_ABS, ARG0_LOW));
        p.push(jump(JEQ_K, libc::AF_UNIX as u32, 11, 0));
        p.push(jump(JEQ_K, libc::AF_NETLINK as u32, 10, 0));
        p.push(jump(JEQ_K, libc::AF_INET as u32, 1, 0));
        p.push(stmt(RET_K, errno(libc::EACCES)));
        p.push(stmt(LD_W_ABS, ARG1_LOW));
        p.push(stmt(ALU_AND_K, SOCK_TYPE_MASK));
        p.push(jump(JEQ_K, libc::SOCK_STREAM as u32, 1, 0));
        p.push(stmt(RET_K, errno(libc::EACCES)));
        p.push(stmt(LD_W_ABS, ARG2_LOW));
        p.push(jump(JEQ_K, 0, 2, 0));
        p.push(jump(JEQ_K, libc::IPPROTO_TCP as u32, 1, 0));
        p.push(stmt(RET_K, errno(libc::EACCES)));
        p.push(stmt(RET_K, RET_ALLOW));
        // No TCP Fast Open: sendto(…, flags) and sendmmsg(…, flags) take the flags as their
        // fourth argument, sendmsg(…, flags) as its third.
        for (call, flags) in [
            (libc::SYS_sendto, ARG3_LOW),
            (libc::SYS_sendmmsg, ARG3_LOW),
            (libc::SYS_sendmsg, ARG2_LOW),
        ] {
            p.push(jump(JEQ_K, nr(call), 0, 4));
            p.push(stmt(LD_W_ABS, flags));
            p.push(jump(JSET_K, MSG_FASTOPEN, 0, 1));
            p.push(stmt(RET_K, errno(libc::EACCES)));
            p.push(stmt(RET_K, RET_ALLOW));
        }
    } else {
        // socket(domain, …): Unix and netlink only — no network.
        p.push(jump(JEQ_K, nr(libc::SYS_socket), 0, 5));
        p.push(stmt(LD_W_ABS, ARG0_LOW));
        p.push(jump(JEQ_K, libc::AF_UNIX as u32, 2, 0));
        p.push(jump(JEQ_K, libc::AF_NETLINK as u32, 1, 0));
        p.push(stmt(RET_K, errno(libc::EACCES)));
        p.push(stmt(RET_K, RET_ALLOW));
    }
    // clone(flags, …): no new namespaces.
    p.push(jump(JEQ_K, nr(libc::SYS_clone), 0, 4));
    p.push(stmt(LD_W_ABS, ARG0_LOW));
    p.push(jump(JSET_K, CLONE_NEW_NAMESPACES, 0, 1));
    p.push(stmt(RET_K, errno(libc::EPERM)));
    p.push(stmt(RET_K, RET_ALLOW));
    // kill(-1, …): every process of the user, the worker among them.
    p.push(jump(JEQ_K, nr(libc::SYS_kill), 0, 4));
    p.push(stmt(LD_W_ABS, ARG0_LOW));
    p.push(jump(JEQ_K, u32::MAX, 0, 1));
    p.push(stmt(RET_K, errno(libc::EPERM)));
    p.push(stmt(RET_K, RET_ALLOW));
    p.push(stmt(RET_K, RET_ALLOW));
    Some(p)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn program(_tcp: bool) -> Option<Vec<sock_filter>> {
    None
}

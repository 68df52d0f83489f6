//! Seccomp filters for the Sentry (sandbox) and the gofer: everything not listed kills
//! the process. The Sentry's list also covers the ptrace stub processes it forks, which
//! inherit it (application system calls are stopped by PTRACE_SYSEMU before seccomp).

use anyhow::{Context, Result};
use seccompiler::{
    apply_filter_all_threads, BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

const COMMON: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_sched_yield,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_restart_syscall,
    libc::SYS_fcntl,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_poll,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_lseek,
    libc::SYS_getrandom,
    libc::SYS_rseq,
    libc::SYS_set_robust_list,
    libc::SYS_prctl,
];

const SENTRY: &[i64] = &[
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_ptrace,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_getppid,
    libc::SYS_ppoll,
    libc::SYS_ioctl,
    libc::SYS_fallocate,
    libc::SYS_close_range,
    // The control server (sentry::control) accepts the runtime's connections.
    libc::SYS_accept4,
    libc::SYS_accept,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    // The netstack asks whether its packet socket has PACKET_VNET_HDR on.
    libc::SYS_getsockopt,
    libc::SYS_sysinfo,
    libc::SYS_prlimit64,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_pause,
    libc::SYS_getcpu,
    libc::SYS_gettimeofday,
    libc::SYS_statx,
    // Stub processes install their own, narrower filter after fork.
    libc::SYS_seccomp,
];

const GOFER: &[i64] = &[
    libc::SYS_openat,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_mkdirat,
    libc::SYS_symlinkat,
    libc::SYS_mknodat,
    libc::SYS_linkat,
    libc::SYS_unlinkat,
    libc::SYS_renameat2,
    libc::SYS_renameat,
    libc::SYS_fchownat,
    libc::SYS_fchmodat,
    libc::SYS_fchmod,
    libc::SYS_ftruncate,
    libc::SYS_utimensat,
    libc::SYS_fstatfs,
    libc::SYS_fgetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_flistxattr,
    libc::SYS_fremovexattr,
    libc::SYS_umask,
    libc::SYS_statx,
];

/// `--network host`: the calls of host inet sockets (socket(2) itself is allowed only
/// for AF_INET/AF_INET6 stream and datagram sockets, see [`host_socket_rules`]), and the
/// epoll set that wakes their waiters.
const HOST_NET: &[i64] = &[
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_shutdown,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
];

/// socket(domain, type, protocol) with domain AF_INET or AF_INET6 and a base type of
/// SOCK_STREAM or SOCK_DGRAM (flags SOCK_NONBLOCK/SOCK_CLOEXEC allowed).
fn host_socket_rules() -> Result<Vec<SeccompRule>> {
    use seccompiler::{SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond};
    let mut rules = vec![];
    for domain in [libc::AF_INET, libc::AF_INET6] {
        for ty in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
            rules.push(SeccompRule::new(vec![
                Cond::new(0, Len::Dword, Op::Eq, domain as u64)?,
                Cond::new(1, Len::Dword, Op::MaskedEq(0xf), ty as u64)?,
            ])?);
        }
    }
    Ok(rules)
}

fn filter(nrs: &[i64], on_match: SeccompAction, otherwise: SeccompAction) -> Result<BpfProgram> {
    filter_with(nrs, vec![], on_match, otherwise)
}

/// A filter for the calls `nrs` (any arguments) and `extra` (calls with argument rules).
fn filter_with(
    nrs: &[i64],
    extra: Vec<(i64, Vec<SeccompRule>)>,
    on_match: SeccompAction,
    otherwise: SeccompAction,
) -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = nrs.iter().map(|nr| (*nr, vec![])).collect();
    rules.extend(extra);
    let f = SeccompFilter::new(rules, otherwise, on_match, TargetArch::x86_64)
        .context("seccomp filter")?;
    f.try_into().context("compiling the seccomp filter")
}

fn allow_only(extra: &[i64]) -> Result<BpfProgram> {
    let nrs: Vec<i64> = COMMON.iter().chain(extra).copied().collect();
    filter(&nrs, SeccompAction::Allow, SeccompAction::KillProcess)
}

/// The Sentry's filter, installed on every thread of the sandbox process; `host_net`:
/// with the calls of `--network host`'s host sockets.
pub fn install_sentry(host_net: bool) -> Result<()> {
    // glibc's malloc sizes its arena limit from get_nprocs(), which opens a /sys file the
    // first time a new thread allocates; fix the limit now so it never needs to.
    // SAFETY: mallopt with a plain integer setting.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 8) };
    // glibc still opens a few files lazily (malloc's heap trimming reads
    // /proc/sys/vm/overcommit_memory) and copes when that fails: opens fail with EACCES
    // rather than killing the Sentry. The strictest answer of the two filters wins, so the
    // allow-list lets open through and this one refuses it; it goes first because
    // installing the second filter needs seccomp(2).
    let deny_open = filter(
        &[libc::SYS_open, libc::SYS_openat],
        SeccompAction::Errno(libc::EACCES as u32),
        SeccompAction::Allow,
    )?;
    apply_filter_all_threads(&deny_open).context("installing the Sentry's seccomp filter")?;
    let mut nrs: Vec<i64> = COMMON.iter().chain(SENTRY).copied().collect();
    nrs.extend([libc::SYS_open, libc::SYS_openat]);
    let mut extra = vec![];
    if host_net {
        nrs.extend(HOST_NET);
        extra.push((libc::SYS_socket, host_socket_rules()?));
    }
    let f = filter_with(
        &nrs,
        extra,
        SeccompAction::Allow,
        SeccompAction::KillProcess,
    )?;
    apply_filter_all_threads(&f).context("installing the Sentry's seccomp filter")?;
    Ok(())
}

/// The gofer's filter: file operations relative to descriptors it holds.
pub fn install_gofer() -> Result<()> {
    const FCHMODAT2: i64 = 452;
    let mut nrs = GOFER.to_vec();
    nrs.push(FCHMODAT2);
    // fchmodat2 answers ENOSYS so the gofer takes its fallback. With several filters the
    // strictest answer wins: the ENOSYS filter goes first (installing the second needs
    // seccomp(2), which the allow-list does not grant).
    let enosys = filter(
        &[FCHMODAT2],
        SeccompAction::Errno(libc::ENOSYS as u32),
        SeccompAction::Allow,
    )?;
    apply_filter_all_threads(&enosys).context("installing the gofer's seccomp filter")?;
    apply_filter_all_threads(&allow_only(&nrs)?)
        .context("installing the gofer's seccomp filter")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked child, install the Sentry's filter and make one socket: the exit code
    /// (0: made, 1: refused with an errno), or the killing signal as 128+N.
    fn socket_under_filter(host_net: bool, domain: i32, ty: i32) -> i32 {
        // SAFETY: fork in a test; the child installs the filter, makes one system call
        // and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let code = match install_sentry(host_net) {
                // SAFETY: plain socket(2).
                Ok(()) => (unsafe { libc::socket(domain, ty, 0) } < 0) as i32,
                Err(_) => 3,
            };
            // SAFETY: ending the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut st = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        if libc::WIFSIGNALED(st) {
            128 + libc::WTERMSIG(st)
        } else {
            libc::WEXITSTATUS(st)
        }
    }

    #[test]
    fn host_sockets_only_with_host_network_and_only_inet_stream_or_datagram() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: installing a seccomp filter without no_new_privs needs root");
            return;
        }
        let killed = 128 + libc::SIGSYS;
        let cases = [
            (true, libc::AF_INET, libc::SOCK_STREAM, 0),
            (
                true,
                libc::AF_INET6,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
                0,
            ),
            (true, libc::AF_UNIX, libc::SOCK_STREAM, killed),
            (true, libc::AF_NETLINK, libc::SOCK_RAW, killed),
            (true, libc::AF_PACKET, libc::SOCK_DGRAM, killed),
            (true, libc::AF_INET, libc::SOCK_RAW, killed),
            (false, libc::AF_INET, libc::SOCK_STREAM, killed),
        ];
        for (host, domain, ty, want) in cases {
            assert_eq!(
                socket_under_filter(host, domain, ty),
                want,
                "host network {host}, socket({domain}, {ty:#x})"
            );
        }
    }
}

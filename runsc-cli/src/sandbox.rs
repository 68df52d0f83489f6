//! Confinement of the sandbox process and host signal forwarding.

use anyhow::{bail, Context as _, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::os::unix::fs::OpenOptionsExt;

/// Signals a person (or docker) sends to the runtime that belong to the workload.
pub const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub fn forwarded_set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in FORWARDED {
        s.add(sig);
    }
    s.add(Signal::SIGCHLD);
    s
}

/// Block the forwarded signals (and SIGCHLD) in the calling thread; children inherit it.
pub fn block_forwarded() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded_set()), None)?;
    Ok(())
}

/// Wait for `child` while passing forwarded signals on to it. Returns its exit code
/// (128+N for death by signal N).
pub fn supervise(child: Pid) -> Result<i32> {
    let set = forwarded_set();
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::Exited(_, c) => return Ok(c),
            WaitStatus::Signaled(_, s, _) => return Ok(128 + s as i32),
            _ => {}
        }
        let sig = set.wait()?;
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
        }
    }
}

/// In the sandbox process (already in new mount/uts/ipc/net/pid namespaces): fork so
/// that the Sentry is pid 1 of the pid namespace (its death takes every stub process
/// with it). The parent supervises and returns Some(exit code); the child returns None.
pub fn become_pid1() -> Result<Option<i32>> {
    // SAFETY: called before any other thread exists in this process.
    match unsafe { fork() }.context("fork into the pid namespace")? {
        ForkResult::Parent { child } => Ok(Some(supervise(child)?)),
        ForkResult::Child => {
            // The Sentry dies with its supervisor (and with it the whole pid namespace).
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            Ok(None)
        }
    }
}

/// The memory file's backing (in the sandbox's own mount namespace, before the pivot):
/// an unlinked file (O_TMPFILE) on a tmpfs mounted `huge=advise` with no size limit of
/// its own, so the Sentry can ask for 2 MiB host pages on large runs; the host's
/// shmem_enabled, which governs memfd, is often `never`. The mount is detached at once
/// (the open file keeps it alive), so nothing stays mounted anywhere. None, with one
/// logged line saying why, where that cannot be done or `mode` (`--huge-pages`) says
/// not to: the Sentry uses a memfd.
pub fn huge_memory_file(mode: &str) -> Option<std::os::fd::OwnedFd> {
    if mode == "off" {
        tracing::info!("memory file: a memfd, no huge pages (--huge-pages off)");
        return None;
    }
    if let Some(why) = free_page_reporting().filter(|_| mode == "auto") {
        tracing::info!("memory file: a memfd, no huge pages ({why}; --huge-pages on overrides)");
        return None;
    }
    match try_huge_memory_file() {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::info!("memory file: a memfd, no huge pages ({e:#})");
            None
        }
    }
}

/// Why huge pages do not pay on this host, if they do not: it is a VM that reports
/// free blocks of 2 MiB and up to its hypervisor (virtio balloon free page reporting,
/// feature bit 5, with page_reporting_order <= 9), which drops their backing. A fresh
/// huge page is then nearly always such a block, and filling it cost 1-10 s per 256
/// MiB here against 0.2-0.9 s for 4 KiB pages (which mostly reuse backed memory).
fn free_page_reporting() -> Option<String> {
    let order: u32 =
        std::fs::read_to_string("/sys/module/page_reporting/parameters/page_reporting_order")
            .ok()?
            .trim()
            .parse()
            .ok()?;
    if order > 9 {
        return None;
    }
    let balloons = std::fs::read_dir("/sys/bus/virtio/drivers/virtio_balloon").ok()?;
    let reporting = balloons.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("features"))
            .is_ok_and(|f| f.as_bytes().get(5) == Some(&b'1'))
    });
    reporting.then(|| {
        format!("the host VM reports free blocks of order >= {order} to its hypervisor (virtio balloon free page reporting), so fresh huge pages are slow to fill")
    })
}

fn try_huge_memory_file() -> Result<std::os::fd::OwnedFd> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .context("making mounts private")?;
    let dir = "/tmp";
    mount(
        Some("rvisor-memory"),
        dir,
        Some("tmpfs"),
        // Not noexec: application code runs from mappings of this file.
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("huge=advise,size=0,nr_inodes=0,mode=0700"),
    )
    .context("mounting a huge=advise tmpfs")?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(0o600)
        .open(dir);
    umount2(dir, MntFlags::MNT_DETACH).context("detaching the memory tmpfs")?;
    Ok(file.context("O_TMPFILE on the memory tmpfs")?.into())
}

/// Pivot into an empty, read-only root: after this the Sentry cannot name host paths.
pub fn pivot_to_empty_root() -> Result<()> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .context("making mounts private")?;
    let new_root = "/tmp";
    mount(
        Some("rvisor-root"),
        new_root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0555"),
    )
    .context("mounting the empty root")?;
    std::fs::create_dir(format!("{new_root}/old")).context("mkdir old root")?;
    nix::unistd::pivot_root(new_root, &*format!("{new_root}/old")).context("pivot_root")?;
    nix::unistd::chdir("/")?;
    umount2("/old", MntFlags::MNT_DETACH).context("detaching the old root")?;
    std::fs::remove_dir("/old").ok();
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        none,
    )
    .context("remounting the root read-only")?;
    Ok(())
}

/// No privilege gain through exec, and no capabilities: the Sentry needs none to trace
/// its own children. With `host_net` (`--network host`) CAP_NET_BIND_SERVICE is kept
/// where the runtime has it, so the Sentry's host sockets can bind the ports below 1024
/// the workload itself may bind (the Sentry checks the workload's capability first).
pub fn drop_privileges(host_net: bool) -> Result<()> {
    const CAP_NET_BIND_SERVICE: u32 = 10;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!("PR_SET_NO_NEW_PRIVS: {}", std::io::Error::last_os_error());
    }
    let keep = host_net && has_cap(CAP_NET_BIND_SERVICE);
    for cap in 0..=63 {
        if keep && cap == CAP_NET_BIND_SERVICE {
            continue;
        }
        // SAFETY: dropping a capability from the bounding set; EINVAL past the last one.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    let h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [0u32; 6];
    if keep {
        // Effective and permitted of the first 32-bit word.
        data[0] = 1 << CAP_NET_BIND_SERVICE;
        data[1] = 1 << CAP_NET_BIND_SERVICE;
    }
    // SAFETY: capset with a v3 header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, data.as_ptr()) } != 0 {
        bail!("capset: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the calling process has capability `cap` (< 32) in its effective set.
fn has_cap(cap: u32) -> bool {
    let h = [0x2008_0522u32, 0];
    let mut data = [0u32; 6];
    // SAFETY: capget with a v3 header fills two data structs.
    let r = unsafe { libc::syscall(libc::SYS_capget, h.as_ptr(), data.as_mut_ptr()) };
    r == 0 && data[0] & (1 << cap) != 0
}

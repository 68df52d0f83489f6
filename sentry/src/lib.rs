//! The Sentry: rvisor's application kernel. It implements the Linux system call ABI for
//! the sandboxed workload on top of a [`platform::Platform`].

pub mod control;
pub mod errno;
pub mod ipc;
pub mod kernel;
pub mod loader;
pub mod memfile;
pub mod mm;
pub mod mounts;
pub mod net;
pub mod syscalls;
pub mod vdso;
pub mod vfs;
pub mod waitq;

use kernel::{Creds, Kernel};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use vfs::{fdtable::FdTable, host::HostFile, memfs::MemFs, OpenFile, Path, O_RDWR};

pub struct Config {
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub debug: bool,
    pub strace: bool,
    /// The gofer's end of the file protocol, serving the root file system.
    pub gofer: OwnedFd,
    /// The workload's first descriptors: stdin, stdout, stderr, then any the runtime
    /// was asked to preserve (`--preserve-fds`), numbered from 3.
    pub stdio: Vec<OwnedFd>,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups of the first process.
    pub groups: Vec<u32>,
    /// Capability sets of the first process (effective, permitted, inheritable); None:
    /// all for root, none for others.
    /// Capability sets: (effective, permitted, inheritable, bounding).
    pub caps: Option<(u64, u64, u64, u64)>,
    /// (RLIMIT_* number, soft, hard) of the first process.
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privs: bool,
    pub hostname: Option<String>,
    /// OCI linux.sysctl: (key, value), set as writes to /proc/sys would.
    pub sysctls: Vec<(String, String)>,
    /// The most memory the workload may use, in bytes: allocations past it fail and the
    /// faulting process is OOM-killed.
    pub memory_limit: Option<u64>,
    /// The root file system is read-only inside (OCI root.readonly).
    pub readonly_root: bool,
    /// An open /dev/kvm: run the workload on the KVM platform (else ptrace).
    pub kvm: Option<OwnedFd>,
    /// An empty file on a `huge=advise` tmpfs for the memory file (see
    /// [`memfile::init`]); None: a memfd.
    pub memory_file: Option<OwnedFd>,
    /// The first process's umask.
    pub umask: u32,
    /// Run once the kernel is set up and before the workload starts (the runtime's
    /// seccomp filter goes here: after it, the Sentry opens nothing on the host).
    pub confine: Option<Box<dyn FnOnce() -> Result<(), String> + Send>>,
    /// Mounts beyond the root, /dev, /dev/pts, /proc and /sys, in order.
    pub mounts: Vec<mounts::Spec>,
    /// A listening unix socket for the runtime's commands (see [`control`]). With it,
    /// the sandbox is built and then waits at the start gate: the workload runs its
    /// first instruction only after `start`.
    pub control: Option<OwnedFd>,
    /// `--network host`: inet sockets are host sockets (see [`net::hostinet`]).
    pub host_network: Option<std::sync::Arc<net::hostinet::HostNet>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{0}")]
    Setup(String),
    #[error("{path}: {err}")]
    Exec { path: String, err: std::io::Error },
}

/// Boot the sandbox, run the workload to completion and return its wait status.
pub fn boot(cfg: Config) -> Result<i32, BootError> {
    let setup = |what: &str, e: errno::Errno| {
        BootError::Setup(format!(
            "{what}: {}",
            std::io::Error::from_raw_os_error(e.0)
        ))
    };
    let huge = memfile::init(cfg.memory_file)
        .map_err(|e| BootError::Setup(format!("the memory file: {e}")))?;
    let mf = memfile::memfile();
    let platform: Box<dyn platform::Platform> = match cfg.kvm {
        Some(fd) => Box::new(
            platform::kvm::Kvm::from_fd(fd, mf.fd())
                .map_err(|e| BootError::Setup(format!("{e}")))?,
        ),
        None => Box::new(
            platform::ptrace::Ptrace::new(mf.fd())
                .map_err(|e| BootError::Setup(format!("ptrace platform: {e}")))?,
        ),
    };
    let kvm = platform.name() == "kvm";
    let k = Kernel::new(platform, cfg.debug, cfg.strace);
    let tsc = vdso::host_tsc_invariant() && k.platform.tsc_is_host();
    vdso::start(k.boot, tsc).map_err(|e| setup("the vDSO", e))?;
    if !tsc {
        tracing::info!(
            "vDSO: the TSC is not usable ({}), clock_gettime and friends are system calls",
            if vdso::host_tsc_invariant() {
                "the platform's guest TSC is not the host's"
            } else {
                "the host's TSC is not invariant"
            }
        );
    }
    let log = &k.klog;
    log.log(
        kernel::klog::KERN,
        kernel::klog::NOTICE,
        format!(
            "Linux version {} (rvisor {}) {}",
            kernel::RELEASE,
            env!("CARGO_PKG_VERSION"),
            kernel::VERSION
        ),
    );
    log.info(format!("Command line: {}", k.cmdline));
    if kvm {
        log.info("rvisor: platform kvm: application code in guest ring 3, one vCPU per task thread, page tables kept by the platform".to_string());
    } else {
        log.info(format!(
            "rvisor: platform ptrace: one stub process per address space, PTRACE_SYSEMU, each tracer pinned with its stub to one of {} CPUs",
            k.ncpus
        ));
    }
    let (total, _) = kernel::host_memory();
    if let Some(l) = cfg.memory_limit {
        mf.set_limit(l);
    }
    log.info(format!(
        "Memory: {}K available, memory file 64G reserved ({}), limit {}",
        total / 1024,
        if huge {
            "sparse tmpfs file, 2M pages for large runs"
        } else {
            "sparse memfd"
        },
        cfg.memory_limit
            .map(|l| format!("{}K", l / 1024))
            .unwrap_or_else(|| "none".into())
    ));
    if let Some(h) = &cfg.hostname {
        *k.ns.uts.hostname.lock() = h.as_bytes().to_vec();
    }
    for (key, value) in &cfg.sysctls {
        if let Err(e) = vfs::procfs::set_sysctl(&k, key, value.as_bytes()) {
            // As runsc: a sysctl the Sentry does not have is logged, not fatal (docker
            // sets some for every container).
            k.klog.info(format!("rvisor: {e}: not applied"));
        }
    }
    let mut creds = Creds::new(cfg.uid, cfg.gid);
    creds.groups = cfg.groups.clone();
    if let Some((e, p, i, b)) = cfg.caps {
        creds.cap_effective = e;
        creds.cap_permitted = p;
        creds.cap_inheritable = i;
        creds.cap_bset = b & kernel::CAP_FULL;
    }
    let popts = syscalls::ProcOpts {
        umask: cfg.umask,
        rlimits: cfg.rlimits.clone(),
        no_new_privs: cfg.no_new_privs,
    };
    let client = Arc::new(gofer::Client::new(cfg.gofer));
    let rootfs = MemFs::new(0x30, Some(client));
    let root_inode: Arc<dyn vfs::Inode> = rootfs
        .root(0o755, 0, 0)
        .map_err(|e| setup("root file system", e))?;
    let root_mnt = k.mounts.add(
        root_inode,
        None,
        "overlay",
        "gofer:/",
        cfg.readonly_root,
        if cfg.readonly_root {
            "ro,lowerdir=gofer"
        } else {
            "rw,lowerdir=gofer,upperdir=memory"
        },
    );
    let root = Path {
        mnt: root_mnt.clone(),
        dentry: root_mnt.root.clone(),
    };
    // /dev
    let devfs = vfs::devfs::new_fs();
    let dev_root: Arc<dyn vfs::Inode> = devfs.root(0o755, 0, 0).map_err(|e| setup("/dev", e))?;
    vfs::devfs::populate(&dev_root, &Creds::new(0, 0)).map_err(|e| setup("/dev nodes", e))?;
    let tmp_task_walk = |p: &[u8]| -> Option<Path> {
        let mut cur = root.clone();
        for c in p.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            let inode = cur.dentry.inode.lookup(c).ok()?;
            cur = mounts::step(&k, &cur, c, inode);
        }
        Some(cur)
    };
    // Mount points missing from a bundle's root file system are made in the overlay.
    for d in [&b"dev"[..], b"proc", b"sys"] {
        if root.dentry.inode.lookup(d).is_err() {
            root.dentry
                .inode
                .mkdir(d, 0o755, &Creds::new(0, 0))
                .map_err(|e| setup("making a mount point", e))?;
        }
    }
    if let Some(devp) = tmp_task_walk(b"/dev") {
        k.mounts.add(
            dev_root,
            Some(&devp),
            "tmpfs",
            "devfs",
            false,
            "rw,mode=755",
        );
    }
    if let Some(ptsp) = tmp_task_walk(b"/dev/pts") {
        k.mounts.add(
            vfs::devpts::new_root(),
            Some(&ptsp),
            "devpts",
            "devpts",
            false,
            vfs::devpts::MOUNT_OPTS,
        );
    }
    // `rvisor do` gets /dev/mqueue as on a systemd host; an OCI bundle gets the
    // mounts its config lists (docker's includes mqueue there).
    if cfg.control.is_none() {
        if let Some(p) = tmp_task_walk(b"/dev/mqueue") {
            let fs: Arc<dyn vfs::Inode> = k.ns.ipc.mqueue().0.clone();
            k.mounts.add(
                fs,
                Some(&p),
                "mqueue",
                "mqueue",
                false,
                "rw,nosuid,nodev,noexec,relatime",
            );
        }
    }
    for (at, root, fstype) in [
        (&b"/proc"[..], vfs::procfs::proc_root(&k), "proc"),
        (&b"/sys"[..], vfs::procfs::sys_root(&k), "sysfs"),
    ] {
        match tmp_task_walk(at) {
            Some(p) => {
                k.mounts.add(
                    root,
                    Some(&p),
                    fstype,
                    fstype,
                    false,
                    "rw,nosuid,nodev,noexec",
                );
            }
            None => {
                return Err(BootError::Setup(format!(
                    "no {} directory in the root file system",
                    String::from_utf8_lossy(at)
                )))
            }
        }
    }
    mounts::apply(&k, &root, cfg.mounts).map_err(BootError::Setup)?;
    let cwd = match tmp_task_walk(&cfg.cwd) {
        Some(p) => p,
        None => mounts::make_dir(&k, &root, &cfg.cwd).map_err(BootError::Setup)?,
    };
    let files = FdTable::default();
    for (i, fd) in cfg.stdio.into_iter().enumerate() {
        let h = HostFile::new(fd);
        let f = OpenFile::new(h.clone(), Some(h.path()), O_RDWR);
        if h.is_tty {
            vfs::devfs::set_console(f.clone());
        }
        files.install_at(i as i32, f, false);
    }
    for m in k.mounts.list.read().iter() {
        let root = Path {
            mnt: root_mnt.clone(),
            dentry: root_mnt.root.clone(),
        };
        let at = match &m.parent {
            Some((pm, pd)) => Path {
                mnt: pm.clone(),
                dentry: pd.clone(),
            }
            .to_bytes(&root),
            None => b"/".to_vec(),
        };
        log.info(format!(
            "rvisor: mounted {} on {} (source {}, {})",
            m.fstype,
            String::from_utf8_lossy(&at),
            m.source,
            m.opts
        ));
    }
    match cfg.host_network {
        Some(n) => {
            log.info(format!(
                "rvisor: network: host (inet sockets are host sockets; {} interfaces)",
                n.ifaces.len()
            ));
            let _ = k.hostnet.set(n);
        }
        None => {
            log.info("rvisor: network: none (own empty network namespace; no network stack yet)")
        }
    }
    let path = cfg.argv.first().cloned().unwrap_or_default();
    if let Some(f) = cfg.confine {
        f().map_err(BootError::Setup)?;
        log.info("rvisor: sandbox confined (seccomp allow-list, no capabilities, empty root)");
    }
    let control = cfg.control.map(|l| control::serve(l, &k, popts.clone()));
    if let Some(c) = &control {
        log.info("rvisor: sandbox created, waiting for start");
        match c.wait_start() {
            control::Gate::Start => {}
            control::Gate::Killed(sig) => {
                c.finish(sig);
                return Ok(sig);
            }
        }
    }
    let shown: Vec<String> = cfg
        .argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    log.info(format!(
        "rvisor: starting init (pid 1): {}",
        shown.join(" ")
    ));
    // A command without a slash is looked up in the workload's PATH, inside its root.
    let exe = search_path(&path, &cfg.envp, |c| {
        tmp_task_walk(c).is_some_and(|p| !p.dentry.inode.stat().is_dir())
    })
    .unwrap_or_else(|| path.clone());
    syscalls::new_process(
        &k, true, root, cwd, files, exe, cfg.argv, cfg.envp, creds, &popts,
    )
    .map(|_| ())
    .map_err(|(e, p)| BootError::Exec {
        path: if p.is_empty() {
            String::from_utf8_lossy(&path).into_owned()
        } else {
            p
        },
        err: std::io::Error::from_raw_os_error(e.0),
    })?;
    forward_host_signals(&k);
    let mut st = k.init_status.lock();
    while st.is_none() {
        k.init_done.wait(&mut st);
    }
    let status = st.unwrap_or(0);
    drop(st);
    if let Some(c) = &control {
        c.finish(status);
    }
    Ok(status)
}

/// Deliver signals sent to the sandbox process (already blocked by the runtime in every
/// thread) to the workload's init process.
fn forward_host_signals(k: &Arc<Kernel>) {
    let k = k.clone();
    std::thread::Builder::new()
        .name("host-signals".into())
        .spawn(move || loop {
            // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
            let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            unsafe { libc::sigemptyset(&mut set) };
            for s in [
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGUSR1,
                libc::SIGUSR2,
                libc::SIGWINCH,
                libc::SIGCONT,
            ] {
                // SAFETY: adding a valid signal number to an initialised set.
                unsafe { libc::sigaddset(&mut set, s) };
            }
            // SAFETY: waits for one of the (blocked) signals in the set.
            let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
            if sig <= 0 {
                continue;
            }
            let init = k.table.lock().procs.get(&1).map(|p| p.tg.clone());
            if let Some(tg) = init {
                kernel::signal::send_external(&k, &tg, kernel::signal::SigInfo::kernel(sig));
            }
        })
        .expect("spawn the host signal thread");
}

/// A command name without a slash looked up in the `PATH=` of `envp` (or the default
/// PATH): the first DIR/NAME that `is_file` accepts. None for a name with a slash, an
/// empty one, or one found nowhere.
pub(crate) fn search_path(
    name: &[u8],
    envp: &[Vec<u8>],
    is_file: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    if name.is_empty() || name.contains(&b'/') {
        return None;
    }
    let path_var = envp
        .iter()
        .find_map(|e| e.strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path_var
        .split(|b| *b == b':')
        .filter(|d| !d.is_empty())
        .map(|dir| [dir, b"/", name].concat())
        .find(|c| is_file(c))
}

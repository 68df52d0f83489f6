//! Launching a sandbox: one gofer per served tree (the root and each bind mount's source)
//! and the `rvisor boot` process in fresh namespaces, with its descriptors in place.

use crate::sandbox;
use anyhow::{bail, Context as _, Result};
use serde_json::json;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A mount beyond the root, as the launcher knows it.
pub struct MountReq {
    pub target: String,
    pub kind: MountKind,
    pub readonly: bool,
    /// The OCI options nosuid, nodev and noexec given, comma-separated.
    pub flags: String,
}

pub enum MountKind {
    Tmpfs {
        mode: u32,
        fstype: String,
        /// `size=` in bytes and `nr_inodes=` (0: no limit).
        size: u64,
        nr_inodes: u64,
    },
    /// A host directory or file, served by a gofer of its own.
    Bind {
        source: PathBuf,
    },
    Proc,
    Sysfs,
    Devpts,
    /// The container's cgroup (v2, read-only, from the Sentry's accounting).
    Cgroup,
    /// OCI readonlyPaths: the path again, read-only.
    ReadonlyAgain,
    /// OCI maskedPaths: hidden under an empty read-only file or directory.
    Mask,
}

/// The global `--debug-log` file, passed on to the sandbox and gofer processes.
pub static DEBUG_LOG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How to launch a sandbox (for `do`, `run` and `create`).
#[derive(Default)]
pub struct DoOpts {
    pub debug: bool,
    pub cwd: String,
    /// Variables added to (or, with `clear_env`, making up) the workload's environment.
    pub env: Vec<String>,
    pub clear_env: bool,
    pub strace: bool,
    pub hostname: Option<String>,
    /// OCI linux.sysctl (key, value).
    pub sysctls: Vec<(String, String)>,
    pub memory_limit: Option<u64>,
    /// The host directory the gofer serves as the root file system.
    pub root: String,
    /// The root is mounted read-only inside (writes fail with EROFS).
    pub root_readonly: bool,
    pub user: Option<(u32, u32)>,
    pub groups: Vec<u32>,
    /// Capability sets (effective, permitted, inheritable, bounding) of the workload.
    pub caps: Option<(u64, u64, u64, u64)>,
    /// (RLIMIT_* number, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privs: bool,
    pub mounts: Vec<MountReq>,
    /// A listening control socket: the sandbox waits at its start gate (see
    /// `sentry::control`).
    pub control: Option<OwnedFd>,
    /// Where the sandbox writes why it could not be built.
    pub error_fd: Option<OwnedFd>,
    /// Descriptors the workload gets as 3, 4, ... (`--preserve-fds`).
    pub extra_fds: Vec<OwnedFd>,
    /// Make the sandbox's network namespace in the launcher itself, once the gofers are
    /// started (`create`: the container's pid then names the container's network
    /// namespace, as docker's network hooks expect).
    pub netns_in_launcher: bool,
    /// `create`: hand the links of that namespace to the Sentry (`--network sandbox`).
    pub take_network: bool,
    /// The spec's network namespace path: joined instead of making one.
    pub netns_path: Option<std::path::PathBuf>,
    /// `--network host`: the sandbox stays in the launcher's network namespace (the
    /// spec's is not joined) and its inet sockets are host sockets.
    pub host_network: bool,
    /// "ptrace" or "kvm".
    pub platform: String,
    /// `--huge-pages` (auto, on, off; empty: auto).
    pub huge_pages: String,
}

/// The running processes of a sandbox.
pub struct Launched {
    pub boot: Child,
    pub gofers: Vec<Child>,
}

impl Launched {
    /// Wait for the sandbox (passing on forwarded signals), then end the gofers.
    pub fn supervise(mut self) -> Result<i32> {
        let code = sandbox::supervise(nix::unistd::Pid::from_raw(self.boot.id() as i32));
        let _ = self.boot.try_wait();
        for g in &mut self.gofers {
            let _ = g.kill();
            let _ = g.wait();
        }
        code
    }
}

/// Put `fds[i].0` at descriptor `fds[i].1` in the child (cleared close-on-exec); run
/// from `pre_exec`, so only async-signal-safe calls and no allocation.
fn place_fds(fds: &[(RawFd, RawFd)], tmp: &mut [RawFd]) -> std::io::Result<()> {
    for (i, (src, _)) in fds.iter().enumerate() {
        // SAFETY: duplicating a descriptor we own above every target number.
        let t = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 512) };
        if t < 0 {
            return Err(std::io::Error::last_os_error());
        }
        tmp[i] = t;
    }
    for (i, (_, dst)) in fds.iter().enumerate() {
        // SAFETY: dup2 onto a target number; the copy is not close-on-exec.
        if unsafe { libc::dup2(tmp[i], *dst) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn spawn_gofer(me: &Path, dir: &Path, readonly: bool) -> Result<(Child, OwnedFd)> {
    let (sentry_end, gofer_end) = gofer::pair()?;
    let gfd = gofer_end.as_raw_fd();
    let mut gofer = Command::new(me);
    if let Some(p) = DEBUG_LOG.get() {
        gofer.args(["--debug-log", p]);
    }
    gofer.arg("gofer").arg("--path").arg(dir);
    gofer.args(["--fd", "3"]);
    if readonly {
        gofer.arg("--readonly");
    }
    let fds = [(gfd, 3)];
    let mut tmp = [0; 1];
    // SAFETY: the pre_exec closure only calls fcntl, dup2 and prctl.
    unsafe {
        gofer.pre_exec(move || {
            place_fds(&fds, &mut tmp)?;
            // The gofer dies with its parent, whatever kills it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = gofer
        .spawn()
        .with_context(|| format!("starting the gofer for {}", dir.display()))?;
    Ok((child, sentry_end))
}

/// Start the gofers and the sandbox.
pub fn launch(o: DoOpts, exe: &str, command: &[String]) -> Result<Launched> {
    let me = std::env::current_exe()?;
    let mut gofers = vec![];
    let mut fds: Vec<OwnedFd> = vec![];
    let kill_all = |gofers: &mut Vec<Child>| {
        for g in gofers.iter_mut() {
            let _ = g.kill();
            let _ = g.wait();
        }
    };
    let (c, f) = spawn_gofer(&me, Path::new(&o.root), true)?;
    gofers.push(c);
    fds.push(f);
    let mut mounts = vec![];
    let mut served: std::collections::HashMap<(PathBuf, bool), usize> = Default::default();
    for m in &o.mounts {
        let mut v = json!({"target": m.target, "readonly": m.readonly, "flags": m.flags});
        match &m.kind {
            MountKind::Tmpfs {
                mode,
                fstype,
                size,
                nr_inodes,
            } => {
                v["kind"] = "tmpfs".into();
                v["mode"] = (*mode).into();
                v["fstype"] = fstype.as_str().into();
                v["size"] = (*size).into();
                v["nr_inodes"] = (*nr_inodes).into();
            }
            MountKind::Proc => v["kind"] = "proc".into(),
            MountKind::Sysfs => v["kind"] = "sysfs".into(),
            MountKind::Devpts => v["kind"] = "devpts".into(),
            MountKind::Cgroup => v["kind"] = "cgroup".into(),
            MountKind::ReadonlyAgain => v["kind"] = "readonly".into(),
            MountKind::Mask => v["kind"] = "mask".into(),
            MountKind::Bind { source } => {
                // As mount(2) does, the source's symlinks are followed.
                let source = &std::fs::canonicalize(source).unwrap_or_else(|_| source.clone());
                let meta = match std::fs::metadata(source) {
                    Ok(m) => m,
                    Err(e) => {
                        kill_all(&mut gofers);
                        bail!("mount {}: bind source {}: {e}", m.target, source.display());
                    }
                };
                let (dir, file) = if meta.is_dir() {
                    (source.clone(), None)
                } else {
                    let parent = source.parent().unwrap_or(Path::new("/")).to_path_buf();
                    let name = source.file_name().map(|n| n.to_string_lossy().into_owned());
                    (parent, name)
                };
                // One gofer per directory served (and per read-only-ness).
                let key = (dir.clone(), m.readonly);
                let fd_no = match served.get(&key) {
                    Some(n) => *n,
                    None => {
                        let (c, f) = match spawn_gofer(&me, &dir, m.readonly) {
                            Ok(x) => x,
                            Err(e) => {
                                kill_all(&mut gofers);
                                return Err(e);
                            }
                        };
                        gofers.push(c);
                        let n = 3 + fds.len();
                        fds.push(f);
                        served.insert(key, n);
                        n
                    }
                };
                v["kind"] = "bind".into();
                v["source"] = source.to_string_lossy().as_ref().into();
                v["fd"] = fd_no.into();
                v["file"] = file.into();
            }
        }
        mounts.push(v);
    }
    if o.netns_in_launcher && !o.host_network {
        let r = match &o.netns_path {
            Some(p) => crate::network::join(p),
            None => nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .context("making the network namespace"),
        };
        if let Err(e) = r {
            kill_all(&mut gofers);
            return Err(e);
        }
    }
    let mut boot = Command::new(&me);
    if o.debug {
        boot.arg("--debug");
    }
    if let Some(p) = DEBUG_LOG.get() {
        boot.args(["--debug-log", p]);
    }
    boot.args(["boot", "--gofer-fd", "3", "--cwd", &o.cwd]);
    if o.strace {
        boot.arg("--strace");
    }
    if let Some(m) = o.memory_limit {
        boot.args(["--memory-limit", &m.to_string()]);
    }
    if let Some(h) = &o.hostname {
        boot.args(["--hostname", h]);
    }
    for (k, v) in &o.sysctls {
        boot.arg(format!("--sysctl={k}={v}"));
    }
    if let Some((u, g)) = o.user {
        boot.args(["--uid", &u.to_string(), "--gid", &g.to_string()]);
    }
    for g in &o.groups {
        boot.args(["--group", &g.to_string()]);
    }
    if o.root_readonly {
        boot.arg("--readonly-root");
    }
    if let Some((e, p, i, b)) = o.caps {
        boot.args(["--caps", &format!("{e:x},{p:x},{i:x},{b:x}")]);
    }
    for (r, soft, hard) in &o.rlimits {
        boot.args(["--rlimit", &format!("{r}:{soft}:{hard}")]);
    }
    if o.no_new_privs {
        boot.arg("--no-new-privs");
    }
    if !mounts.is_empty() {
        boot.args(["--mounts", &serde_json::Value::from(mounts).to_string()]);
    }
    let mut place: Vec<(RawFd, RawFd)> = fds
        .iter()
        .enumerate()
        .map(|(i, f)| (f.as_raw_fd(), 3 + i as RawFd))
        .collect();
    let mut next = 3 + place.len() as RawFd;
    if let Some(c) = &o.control {
        place.push((c.as_raw_fd(), next));
        boot.args(["--control-fd", &next.to_string()]);
        next += 1;
    }
    if let Some(e) = &o.error_fd {
        place.push((e.as_raw_fd(), next));
        boot.args(["--error-fd", &next.to_string()]);
        next += 1;
    }
    if !o.extra_fds.is_empty() {
        for f in &o.extra_fds {
            place.push((f.as_raw_fd(), next));
            next += 1;
        }
        boot.args([
            "--extra-fds-from",
            &(next - o.extra_fds.len() as RawFd).to_string(),
            "--extra-fds",
            &o.extra_fds.len().to_string(),
        ]);
    }
    if !o.platform.is_empty() {
        boot.args(["--platform", &o.platform]);
    }
    if !o.huge_pages.is_empty() {
        boot.args(["--huge-pages", &o.huge_pages]);
    }
    if o.host_network {
        boot.arg("--host-network");
    }
    boot.arg("--").arg(exe).args(&command[1..]);
    if o.clear_env {
        boot.env_clear();
    }
    for e in &o.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        boot.env(k, v);
    }
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWPID;
    if !o.netns_in_launcher && !o.host_network {
        flags |= libc::CLONE_NEWNET;
    }
    let mut tmp = vec![0; place.len()];
    // SAFETY: fcntl, dup2, unshare and prctl are async-signal-safe; nothing allocates.
    unsafe {
        boot.pre_exec(move || {
            place_fds(&place, &mut tmp)?;
            if libc::unshare(flags) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    sandbox::block_forwarded()?;
    let boot_child = boot.spawn();
    drop(fds);
    match boot_child {
        Ok(boot) => {
            tracing::debug!(
                "launched the sandbox (pid {}) and {} gofer(s)",
                boot.id(),
                gofers.len()
            );
            Ok(Launched { boot, gofers })
        }
        Err(e) => {
            kill_all(&mut gofers);
            bail!("starting the sandbox: {e}")
        }
    }
}

/// `rvisor do` and the foreground paths: launch and wait.
pub fn run_do(o: DoOpts, exe: String, command: &[String]) -> Result<i32> {
    launch(o, &exe, command)?.supervise()
}

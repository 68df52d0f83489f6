//! Containers: the state directory and the OCI lifecycle (create, start, state, kill,
//! delete, run, list, wait, ps, pause, resume).
//!
//! `<root>/<id>/state.json` records the container; `<root>/<id>/ctl` is the sandbox's
//! control socket (served by the Sentry, see `sentry::control`). The container's pid is
//! the sandbox launcher, forked by `create`: it starts the gofers and the Sentry, stays
//! until the workload's init exits and exits with its status.

use crate::launch;
use crate::oci;
use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The global flags every lifecycle command needs.
pub struct Global {
    pub root: PathBuf,
    pub debug: bool,
    /// "ptrace" or "kvm" (`--platform`).
    pub platform: String,
    /// `--huge-pages`: auto, on or off.
    pub huge_pages: String,
    /// `--network`; None: the default (sandbox for a bundle, which has a network namespace).
    pub network: Option<crate::network::Mode>,
}

impl Global {
    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

/// What `create` leaves in the state directory.
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    pub pid: i32,
    /// The pid's start time (field 22 of /proc/PID/stat): a recycled pid is not ours.
    pub start_time: u64,
    pub bundle: String,
    pub created: String,
    pub annotations: Value,
    pub cgroup: Option<String>,
}

/// A path for a unix socket in `dir` that fits in sun_path however long `dir` is.
struct SockPath {
    _dir: std::fs::File,
    path: String,
}

fn sock_path(dir: &Path) -> Result<SockPath> {
    let d = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let path = format!("/proc/self/fd/{}/ctl", d.as_raw_fd());
    Ok(SockPath { _dir: d, path })
}

impl Container {
    pub fn load(g: &Global, id: &str) -> Result<Container> {
        oci::check_id(id)?;
        let dir = g.dir(id);
        let text = match std::fs::read_to_string(dir.join("state.json")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id} does not exist")
            }
            Err(e) => bail!("container {id}: {e}"),
        };
        let v: Value =
            serde_json::from_str(&text).map_err(|e| anyhow!("container {id}: state.json: {e}"))?;
        Ok(Container {
            id: id.into(),
            pid: v["pid"].as_i64().unwrap_or(0) as i32,
            start_time: v["start_time"].as_u64().unwrap_or(0),
            bundle: v["bundle"].as_str().unwrap_or_default().into(),
            created: v["created"].as_str().unwrap_or_default().into(),
            annotations: v["annotations"].clone(),
            cgroup: v["cgroup"].as_str().map(String::from),
            dir,
        })
    }

    fn save(&self) -> Result<()> {
        let v = json!({
            "id": self.id,
            "pid": self.pid,
            "start_time": self.start_time,
            "bundle": self.bundle,
            "created": self.created,
            "annotations": self.annotations,
            "cgroup": self.cgroup,
        });
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, v.to_string())?;
        std::fs::rename(&tmp, self.dir.join("state.json"))?;
        Ok(())
    }

    /// Is the container's pid still the sandbox we started (and not a zombie)?
    pub fn alive(&self) -> bool {
        self.pid > 0 && proc_start_time(self.pid).is_some_and(|t| t == self.start_time)
    }

    /// Send one control request and read the reply.
    pub fn request(&self, req: &str, timeout: Option<Duration>) -> Result<String> {
        let sp = sock_path(&self.dir)?;
        let s = UnixStream::connect(&sp.path)
            .with_context(|| format!("container {}: control socket", self.id))?;
        s.set_read_timeout(timeout)?;
        (&s).write_all(format!("{req}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line)?;
        if line.is_empty() {
            bail!(
                "container {}: the sandbox closed the control socket",
                self.id
            );
        }
        let line = line.trim().to_string();
        if let Some(e) = line.strip_prefix("error ") {
            bail!("container {}: {e}", self.id);
        }
        Ok(line)
    }

    pub fn status(&self) -> &'static str {
        if !self.alive() {
            return "stopped";
        }
        if self.frozen() {
            return "paused";
        }
        match self.request("state", Some(Duration::from_secs(5))) {
            Ok(s) if s == "created" => "created",
            Ok(s) if s == "stopped" => "stopped",
            Ok(_) => "running",
            // Alive but no longer answering: its init has exited and it is going away.
            Err(_) => "stopped",
        }
    }

    pub fn state_json(&self) -> Value {
        let status = self.status();
        json!({
            "ociVersion": oci::OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": if status == "stopped" { 0 } else { self.pid },
            "bundle": self.bundle,
            "created": self.created,
            "annotations": self.annotations,
        })
    }

    fn freezer(&self) -> Option<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| Path::new("/sys/fs/cgroup/freezer").join(c.trim_start_matches('/')))
    }

    fn frozen(&self) -> bool {
        self.freezer()
            .and_then(|f| std::fs::read_to_string(f.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() != "THAWED")
    }
}

/// Field 22 of /proc/PID/stat, or None if the process is gone or a zombie.
fn proc_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") || f.first() == Some(&"X") {
        return None;
    }
    f.get(19)?.parse().ok()
}

/// Now, as RFC 3339 in UTC with nanoseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Parse a signal as kill(1) does: a number, `TERM` or `SIGTERM`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        let off: i32 = if rt.is_empty() { 0 } else { rt.parse()? };
        return Ok(libc::SIGRTMIN() + off);
    }
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| anyhow!("invalid signal {s:?}"))
}

/// The options `create` takes.
pub struct CreateOpts<'a> {
    pub bundle: &'a str,
    pub pid_file: Option<&'a str>,
    pub console_socket: Option<&'a str>,
    pub preserve_fds: u32,
    pub strace: bool,
    /// `run` in the foreground: the terminal (if any) is the caller's own.
    pub foreground: bool,
}

fn write_pid_file(path: &str, pid: i32) -> Result<()> {
    let p = Path::new(path);
    let tmp = p.with_extension("rvisor-tmp");
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("pid file {path}"))?;
    std::fs::rename(&tmp, p).with_context(|| format!("pid file {path}"))?;
    Ok(())
}

/// Send the pty master to the console socket, as runc does (SCM_RIGHTS, with the
/// slave's name as the message).
fn send_console(socket: &str, master: &OwnedFd, name: &str) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let s = UnixStream::connect(socket).with_context(|| format!("console socket {socket}"))?;
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("sending the console to the console socket")?;
    Ok(())
}

/// Run the hooks of one kind with the container's state on their stdin.
fn run_hooks(
    hooks: Option<&Vec<oci_spec::runtime::Hook>>,
    state: &Value,
    what: &str,
) -> Result<()> {
    for h in hooks.map(|v| v.as_slice()).unwrap_or_default() {
        let mut c = std::process::Command::new(h.path());
        if let Some(args) = h.args() {
            if let Some(a0) = args.first() {
                c.arg0(a0);
            }
            c.args(args.iter().skip(1));
        }
        if let Some(env) = h.env() {
            c.env_clear();
            for e in env {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                c.env(k, v);
            }
        }
        c.stdin(std::process::Stdio::piped());
        use std::os::unix::process::CommandExt;
        let mut child = c
            .spawn()
            .with_context(|| format!("{what} hook {}", h.path().display()))?;
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(state.to_string().as_bytes());
        }
        let limit = Duration::from_secs(h.timeout().map(|t| t.max(1) as u64).unwrap_or(60));
        let start = Instant::now();
        let st = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{what} hook {} timed out", h.path().display());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !st.success() {
            bail!("{what} hook {} failed: {st}", h.path().display());
        }
    }
    Ok(())
}

/// Join the cgroup docker (or the spec) names in the cgroup v1 hierarchies that only
/// account (memory, cpu, pids, blkio) and in the freezer, so that `pause` freezes the
/// whole sandbox and docker's stats see it. No limits are set there: the Sentry
/// enforces the memory limit itself (an OOM kill inside, not of the sandbox).
fn join_cgroups(path: &str) -> Option<String> {
    let base = Path::new("/sys/fs/cgroup");
    if !base.join("freezer").is_dir() {
        return None;
    }
    let rel = path.trim_start_matches('/');
    let mut joined = false;
    for h in ["freezer", "memory", "cpu,cpuacct", "pids", "blkio"] {
        let dir = base.join(h).join(rel);
        if std::fs::create_dir_all(&dir).is_ok()
            && std::fs::write(dir.join("cgroup.procs"), "0").is_ok()
            && h == "freezer"
        {
            joined = true;
        }
    }
    joined.then(|| path.to_string())
}

/// `create`: build the sandbox and leave it at its start gate. Returns the container.
pub fn create(g: &Global, id: &str, o: &CreateOpts) -> Result<Container> {
    oci::check_id(id)?;
    let bundle =
        std::fs::canonicalize(o.bundle).map_err(|e| anyhow!("bundle {}: {e}", o.bundle))?;
    let (spec, root) = oci::load(&bundle.to_string_lossy())?;
    // The host's network: the runtime's own namespace, never the spec's.
    let host_network = g.network == Some(crate::network::Mode::Host);
    let (mut opts, exe, args) =
        oci::opts_from_spec(&spec, &root, &bundle, g.debug, o.strace, host_network)
            .map_err(|e| anyhow!("bundle {}: {e:#}", bundle.display()))?;
    opts.host_network = host_network;
    opts.platform = g.platform.clone();
    opts.huge_pages = g.huge_pages.clone();
    opts.take_network =
        g.network.unwrap_or(crate::network::Mode::Sandbox) == crate::network::Mode::Sandbox;
    let process = spec.process().as_ref().expect("checked");
    let terminal = process.terminal().unwrap_or(false);
    if terminal && !o.foreground && o.console_socket.is_none() {
        bail!("process.terminal is true: --console-socket is required");
    }
    if !terminal && o.console_socket.is_some() {
        bail!("--console-socket given but process.terminal is false");
    }
    if terminal && o.foreground && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("process.terminal is true but the standard input is not a terminal (use create --console-socket, or set terminal to false)");
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&g.root)
        .with_context(|| format!("state directory {}", g.root.display()))?;
    let dir = g.dir(id);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container {id} already exists")
        }
        Err(e) => bail!("state directory {}: {e}", dir.display()),
    }
    let r = create_in(id, o, &dir, &spec, bundle, &mut opts, &exe, &args, terminal);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn create_in(
    id: &str,
    o: &CreateOpts,
    dir: &Path,
    spec: &oci_spec::runtime::Spec,
    bundle: PathBuf,
    opts: &mut launch::DoOpts,
    exe: &str,
    args: &[String],
    terminal: bool,
) -> Result<Container> {
    let sp = sock_path(dir)?;
    let listener = UnixListener::bind(&sp.path).context("binding the control socket")?;
    std::fs::set_permissions(dir.join("ctl"), std::fs::Permissions::from_mode(0o600))?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut pty_slave = None;
    if terminal && !o.foreground {
        let pty = nix::pty::openpty(None, None).context("openpty")?;
        let name = nix::unistd::ttyname(&pty.slave)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        send_console(o.console_socket.expect("checked"), &pty.master, &name)?;
        pty_slave = Some(pty.slave);
    }
    for fd in 3..3 + o.preserve_fds as i32 {
        // SAFETY: duplicating a descriptor the caller asked us to pass on.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if d < 0 {
            bail!(
                "--preserve-fds: descriptor {fd}: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: a fresh descriptor we own.
        opts.extra_fds.push(unsafe { OwnedFd::from_raw_fd(d) });
    }
    let cgroup_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let created = now_rfc3339();
    // SAFETY: the CLI is single-threaded here; the child only sets up its stdio and
    // launches the sandbox (which spawns processes), then exits.
    let pid = match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            drop(err_r);
            let code = (|| -> Result<i32> {
                if let Some(slave) = &pty_slave {
                    nix::unistd::setsid()?;
                    // SAFETY: making our own pty slave the controlling terminal.
                    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
                        bail!("TIOCSCTTY: {}", std::io::Error::last_os_error());
                    }
                    for n in 0..3 {
                        nix::unistd::dup2(slave.as_raw_fd(), n)?;
                    }
                }
                drop(pty_slave);
                if let Some(c) = &cgroup_path {
                    join_cgroups(c);
                }
                let mut opts = std::mem::take(opts);
                opts.control = Some(listener.into());
                opts.error_fd = Some(err_w.try_clone()?);
                opts.netns_in_launcher = true;
                let l = launch::launch(opts, exe, args)?;
                l.supervise()
            })();
            let code = match code {
                Ok(c) => c,
                Err(e) => {
                    let _ = nix::unistd::write(&err_w, format!("{e:#}").as_bytes());
                    1
                }
            };
            // SAFETY: ending the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        nix::unistd::ForkResult::Parent { child } => child.as_raw(),
    };
    drop(err_w);
    drop(listener);
    drop(pty_slave);
    let mut c = Container {
        id: id.into(),
        dir: dir.to_path_buf(),
        pid,
        start_time: proc_start_time(pid).unwrap_or(0),
        bundle: bundle.to_string_lossy().into_owned(),
        created,
        annotations: spec
            .annotations()
            .as_ref()
            .map(|a| json!(a))
            .unwrap_or_else(|| json!({})),
        cgroup: cgroup_path,
    };
    let fail = |c: &Container, msg: String| -> anyhow::Error {
        // SAFETY: killing the sandbox launcher we forked.
        unsafe { libc::kill(c.pid, libc::SIGKILL) };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(c.pid), None);
        anyhow!(msg)
    };
    // Ready when the Sentry answers at its start gate: one `state` request, queued on
    // the listening socket until the control server takes it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sp = sock_path(dir)?;
    let conn = UnixStream::connect(&sp.path).context("control socket")?;
    conn.set_read_timeout(Some(Duration::from_millis(50)))?;
    (&conn).write_all(b"state\n")?;
    let mut reply = Vec::new();
    loop {
        let mut buf = [0u8; 64];
        let eof = match (&conn).read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                false
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                false
            }
            Err(_) => true,
        };
        if reply.ends_with(b"\n") {
            if reply == b"created\n" {
                break;
            }
            let r = String::from_utf8_lossy(&reply).trim().to_string();
            return Err(fail(&c, format!("container {id}: unexpected reply {r:?}")));
        }
        if let Ok(
            nix::sys::wait::WaitStatus::Exited(..) | nix::sys::wait::WaitStatus::Signaled(..),
        ) = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            let mut msg = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            let msg = msg.trim();
            bail!(
                "container {id}: the sandbox failed to start: {}",
                if msg.is_empty() {
                    "it exited early"
                } else {
                    msg
                }
            );
        }
        if eof {
            // The sandbox closed the socket without answering: it is going away.
            std::thread::sleep(Duration::from_millis(5));
        }
        if Instant::now() > deadline {
            return Err(fail(
                &c,
                format!("container {id}: the sandbox did not become ready in 60 s"),
            ));
        }
    }
    drop(conn);
    c.start_time = proc_start_time(pid).unwrap_or(0);
    c.save()?;
    let state = c.state_json();
    if let Some(h) = spec.hooks() {
        if h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
        {
            // They would run inside the container, where no host program can run.
            tracing::warn!("createContainer and startContainer hooks are not supported: not run");
        }
        let r = run_hooks(h.create_runtime().as_ref(), &state, "createRuntime")
            .and_then(|_| run_hooks(h.prestart().as_ref(), &state, "prestart"));
        if let Err(e) = r {
            return Err(fail(&c, format!("container {id}: {e:#}")));
        }
    }
    if opts.take_network {
        if let Err(e) = crate::network::setup(pid, &c.dir, spec) {
            return Err(fail(&c, format!("container {id}: network: {e:#}")));
        }
    }
    if let Some(p) = o.pid_file {
        if let Err(e) = write_pid_file(p, pid) {
            return Err(fail(&c, format!("{e:#}")));
        }
    }
    Ok(c)
}

pub fn start(g: &Global, id: &str) -> Result<()> {
    let c = Container::load(g, id)?;
    match c.status() {
        "created" => {}
        "stopped" => bail!("cannot start a container that has stopped"),
        s => bail!("cannot start container {id}: it is {s}"),
    }
    c.request("start", Some(Duration::from_secs(10)))?;
    if let Ok((spec, _)) = oci::load(&c.bundle) {
        if let Some(h) = spec.hooks() {
            // poststart failures are logged, not fatal (the spec says so).
            if let Err(e) = run_hooks(h.poststart().as_ref(), &c.state_json(), "poststart") {
                tracing::warn!("{e:#}");
            }
        }
    }
    Ok(())
}

pub fn state(g: &Global, id: &str) -> Result<()> {
    let c = Container::load(g, id)?;
    println!("{}", serde_json::to_string_pretty(&c.state_json())?);
    Ok(())
}

pub fn kill(g: &Global, id: &str, sig: &str, all: bool) -> Result<()> {
    let c = Container::load(g, id)?;
    let sig = parse_signal(sig)?;
    if c.status() == "stopped" {
        bail!("container {id} is not running");
    }
    if c.frozen() && (sig == libc::SIGKILL || sig == libc::SIGTERM) {
        // A frozen sandbox cannot act on a signal: thaw it (as runc does for SIGKILL).
        if let Some(f) = c.freezer() {
            let _ = std::fs::write(f.join("freezer.state"), "THAWED");
        }
    }
    let scope = if all { "all" } else { "init" };
    if let Err(e) = c.request(
        &format!("signal {sig} {scope}"),
        Some(Duration::from_secs(5)),
    ) {
        if c.alive() {
            // The Sentry is not answering: signal the sandbox process itself.
            // SAFETY: kill(2) on the pid we verified is still our sandbox.
            if unsafe { libc::kill(c.pid, sig) } != 0 {
                bail!("{e:#}");
            }
        }
    }
    Ok(())
}

/// Wait up to `limit` for the sandbox process to be gone (exited or a zombie).
fn wait_gone(c: &Container, limit: Duration) -> bool {
    let start = Instant::now();
    while c.alive() {
        if start.elapsed() > limit {
            return false;
        }
        // Our own child (foreground run): reap it.
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(c.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

pub fn delete(g: &Global, id: &str, force: bool) -> Result<()> {
    let c = match Container::load(g, id) {
        Ok(c) => c,
        Err(e) => {
            if force && !g.dir(id).join("state.json").exists() {
                // runc's delete --force of a container that is not there succeeds.
                let _ = std::fs::remove_dir_all(g.dir(id));
                return Ok(());
            }
            return Err(e);
        }
    };
    let status = c.status();
    if (status == "running" || status == "paused") && !force {
        bail!("cannot delete container {id} that is not stopped: {status}");
    }
    if c.alive() {
        if let Some(f) = c.freezer() {
            let _ = std::fs::write(f.join("freezer.state"), "THAWED");
        }
        // SAFETY: kill(2) on the pid we verified is still our sandbox; the gofers and
        // the Sentry die with it (PDEATHSIG), the stubs with the Sentry's pid namespace.
        unsafe { libc::kill(c.pid, libc::SIGKILL) };
        if !wait_gone(&c, Duration::from_secs(10)) {
            bail!("container {id}: the sandbox (pid {}) did not exit", c.pid);
        }
    }
    if let Some(cg) = &c.cgroup {
        for h in ["freezer", "memory", "cpu,cpuacct", "pids", "blkio"] {
            let _ = std::fs::remove_dir(
                Path::new("/sys/fs/cgroup")
                    .join(h)
                    .join(cg.trim_start_matches('/')),
            );
        }
    }
    if let Ok((spec, _)) = oci::load(&c.bundle) {
        if let Some(h) = spec.hooks() {
            if let Err(e) = run_hooks(h.poststop().as_ref(), &c.state_json(), "poststop") {
                tracing::warn!("{e:#}");
            }
        }
    }
    std::fs::remove_dir_all(&c.dir).with_context(|| format!("removing {}", c.dir.display()))?;
    Ok(())
}

/// `run`: create and start; in the foreground wait for the end and delete.
pub fn run(g: &Global, id: &str, o: &CreateOpts, detach: bool) -> Result<i32> {
    crate::sandbox::block_forwarded()?;
    let c = create(g, id, o)?;
    if let Err(e) = start(g, id) {
        let _ = delete(g, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = crate::sandbox::supervise(nix::unistd::Pid::from_raw(c.pid));
    let _ = delete(g, id, true);
    code
}

pub fn list(g: &Global, quiet: bool, json_out: bool) -> Result<()> {
    let mut ids: Vec<String> = match std::fs::read_dir(&g.root) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    };
    ids.sort();
    if quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(());
    }
    let mut all = vec![];
    for id in &ids {
        if let Ok(c) = Container::load(g, id) {
            all.push(c.state_json());
        }
    }
    if json_out {
        println!("{}", Value::from(all));
        return Ok(());
    }
    println!(
        "{:<20} {:<8} {:<8} {:<40} CREATED",
        "ID", "PID", "STATUS", "BUNDLE"
    );
    for s in all {
        println!(
            "{:<20} {:<8} {:<8} {:<40} {}",
            s["id"].as_str().unwrap_or(""),
            s["pid"],
            s["status"].as_str().unwrap_or(""),
            s["bundle"].as_str().unwrap_or(""),
            s["created"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `wait`: block until the container's init exits; print and return its exit code.
pub fn wait(g: &Global, id: &str) -> Result<i32> {
    let c = Container::load(g, id)?;
    let r = c.request("wait", None)?;
    let w: i32 = r
        .strip_prefix("exited ")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("container {id}: unexpected reply {r:?}"))?;
    let code = if w & 0x7f == 0 {
        (w >> 8) & 0xff
    } else {
        128 + (w & 0x7f)
    };
    // The sandbox exits right after answering: let it be gone when wait returns.
    wait_gone(&c, Duration::from_secs(5));
    println!("{code}");
    Ok(code)
}

/// `pause` / `resume`: freeze or thaw the sandbox's cgroup.
pub fn freeze(g: &Global, id: &str, freeze: bool) -> Result<()> {
    let c = Container::load(g, id)?;
    let status = c.status();
    match (freeze, status) {
        (true, "running") | (false, "paused") => {}
        (true, s) => bail!("container {id} is {s}, not running"),
        (false, s) => bail!("container {id} is {s}, not paused"),
    }
    let Some(f) = c.freezer() else {
        bail!("container {id}: no cgroup to freeze (config.json has no linux.cgroupsPath, or there is no freezer hierarchy)");
    };
    let want = if freeze { "FROZEN" } else { "THAWED" };
    std::fs::write(f.join("freezer.state"), want)
        .with_context(|| format!("{}", f.join("freezer.state").display()))?;
    let start = Instant::now();
    loop {
        let s = std::fs::read_to_string(f.join("freezer.state")).unwrap_or_default();
        if s.trim() == want {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("container {id}: the cgroup stays {}", s.trim());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The options `exec` takes (runc's).
pub struct ExecOpts {
    pub process: Option<String>,
    pub console_socket: Option<String>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub tty: bool,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// `--cap`: capabilities added to the process's bounding, effective and permitted
    /// sets; `--no-new-privs`.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub detach: bool,
    pub pid_file: Option<String>,
    pub args: Vec<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

fn hex_list(v: &[String]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|s| hex(s.as_bytes()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Send the exec request with `stdio` attached; returns the connection and the
/// sandbox pid of the new process.
fn exec_request(c: &Container, req: &str, stdio: &[i32]) -> Result<(UnixStream, i32)> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let sp = sock_path(&c.dir)?;
    let s = UnixStream::connect(&sp.path)
        .with_context(|| format!("container {}: control socket", c.id))?;
    let iov = [std::io::IoSlice::new(req.as_bytes())];
    sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(stdio)],
        MsgFlags::empty(),
        None,
    )
    .context("sending the exec request")?;
    let mut line = String::new();
    let mut r = BufReader::new(s.try_clone()?);
    r.read_line(&mut line)?;
    let line = line.trim();
    if let Some(e) = line.strip_prefix("error ") {
        bail!("container {}: {e}", c.id);
    }
    let pid = line
        .strip_prefix("started ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow!("container {}: unexpected reply {line:?}", c.id))?;
    Ok((s, pid))
}

/// Wait for the exec'd process's end, passing forwarded signals on to it; its exit code.
fn exec_supervise(c: &Container, s: UnixStream, pid: i32) -> Result<i32> {
    crate::sandbox::block_forwarded()?;
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(&s).read_line(&mut line);
        let code = line
            .trim()
            .strip_prefix("exited ")
            .and_then(|w| w.parse::<i32>().ok())
            .map(|w| {
                if w & 0x7f == 0 {
                    (w >> 8) & 0xff
                } else {
                    128 + (w & 0x7f)
                }
            })
            .unwrap_or(255);
        std::process::exit(code);
    });
    let set = crate::sandbox::forwarded_set();
    loop {
        let sig = set.wait()?;
        if sig != nix::sys::signal::Signal::SIGCHLD {
            let _ = c.request(
                &format!("signal {} pid {pid}", sig as i32),
                Some(Duration::from_secs(5)),
            );
        }
    }
}

/// `exec`: run a new process in a running container (same kernel, pid namespace and
/// file systems).
pub fn exec(g: &Global, id: &str, o: &ExecOpts) -> Result<i32> {
    let c = Container::load(g, id)?;
    if c.status() != "running" {
        bail!("cannot exec in container {id}: it is {}", c.status());
    }
    let mut p: oci_spec::runtime::Process = match &o.process {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("--process {f}"))?;
            serde_json::from_str(&text).map_err(|e| anyhow!("--process {f}: invalid JSON: {e}"))?
        }
        None => {
            let mut p = oci_spec::runtime::Process::default();
            p.set_args(Some(o.args.clone()));
            p.set_terminal(Some(o.tty));
            p.set_env(Some(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ]));
            p
        }
    };
    if o.process.is_none() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(o.env.iter().cloned());
        p.set_env(Some(env));
        if let Some(cwd) = &o.cwd {
            p.set_cwd(cwd.into());
        }
    }
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        bail!("exec: no command given");
    }
    let (mut uid, mut gid) = (p.user().uid(), p.user().gid());
    let mut groups = p.user().additional_gids().clone().unwrap_or_default();
    if let Some(u) = &o.user {
        let (a, b) = u.split_once(':').unwrap_or((u, "0"));
        uid = a
            .parse()
            .map_err(|_| anyhow!("--user {u:?}: expected UID[:GID]"))?;
        gid = b
            .parse()
            .map_err(|_| anyhow!("--user {u:?}: expected UID[:GID]"))?;
    }
    groups.extend(&o.additional_gids);
    let groups_s = if groups.is_empty() {
        "-".to_string()
    } else {
        groups
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    // Capabilities and no_new_privs: the process's, else (as runc) the container's.
    let base = (o.process.is_none())
        .then(|| crate::oci::load(&c.bundle).ok())
        .flatten()
        .and_then(|(s, _)| s.process().clone());
    let from = base.as_ref().unwrap_or(&p);
    let mut caps = from.capabilities().as_ref().map(crate::oci::cap_sets);
    for name in &o.caps {
        let n = crate::oci::cap_by_name(name)
            .ok_or_else(|| anyhow!("--cap {name:?}: unknown capability"))?;
        let (e, pm, i, b) = caps.unwrap_or((0, 0, 0, u64::MAX));
        let bit = 1u64 << n;
        caps = Some((e | bit, pm | bit, i, b | bit));
    }
    let caps_s = match caps {
        Some((e, pm, i, b)) => format!("{e:x},{pm:x},{i:x},{b:x}"),
        None => "-".into(),
    };
    let nnp = o.no_new_privs || from.no_new_privileges().unwrap_or(false);
    let req = format!(
        "exec {uid} {gid} {groups_s} {} {} {} {caps_s} {}\n",
        hex(p.cwd().to_string_lossy().as_bytes()),
        hex_list(&args),
        hex_list(&p.env().clone().unwrap_or_default()),
        u8::from(nnp)
    );
    let terminal = p.terminal().unwrap_or(false);
    let mut pty_slave = None;
    if terminal {
        match &o.console_socket {
            Some(sock) => {
                let pty = nix::pty::openpty(None, None).context("openpty")?;
                let name = nix::unistd::ttyname(&pty.slave)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                send_console(sock, &pty.master, &name)?;
                pty_slave = Some(pty.slave);
            }
            None if !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                bail!("exec with a terminal needs --console-socket or a terminal on stdin")
            }
            None => {}
        }
    }
    let stdio: Vec<i32> = match &pty_slave {
        Some(s) => vec![s.as_raw_fd(); 3],
        None => vec![0, 1, 2],
    };
    if !o.detach {
        let (s, pid) = exec_request(&c, &req, &stdio)?;
        drop(pty_slave);
        return exec_supervise(&c, s, pid);
    }
    // Detached: a child of ours stays as the process's host pid (the caller reaps it)
    // and exits with its status.
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the CLI is single-threaded here; the child talks to the sandbox and exits.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let r = exec_request(&c, &req, &stdio);
            drop(pty_slave);
            match r {
                Ok((s, pid)) => {
                    let _ = nix::unistd::write(&wr, b"ok");
                    drop(wr);
                    let code = exec_supervise(&c, s, pid).unwrap_or(255);
                    // SAFETY: leaving the forked child.
                    unsafe { libc::_exit(code) };
                }
                Err(e) => {
                    let _ = nix::unistd::write(&wr, format!("{e:#}").as_bytes());
                    // SAFETY: leaving the forked child.
                    unsafe { libc::_exit(1) };
                }
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            drop(pty_slave);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            if msg != "ok" {
                let _ = nix::sys::wait::waitpid(child, None);
                bail!("{}", if msg.is_empty() { "exec failed" } else { &msg });
            }
            if let Some(pf) = &o.pid_file {
                write_pid_file(pf, child.as_raw())?;
            }
            Ok(0)
        }
    }
}

/// One stats event as runc prints it (the fields rvisor can measure).
fn stats_event(c: &Container) -> Result<Value> {
    let r = c.request("stats", Some(Duration::from_secs(5)))?;
    let f: Vec<u64> = r
        .trim_start_matches("stats")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let (used, limit, procs) = (
        f.first().copied().unwrap_or(0),
        f.get(1).copied().unwrap_or(0),
        f.get(2).copied().unwrap_or(0),
    );
    Ok(json!({
        "type": "stats",
        "id": c.id,
        "data": {
            "memory": {
                "usage": {"usage": used, "limit": if limit == 0 { u64::MAX } else { limit }},
            },
            "pids": {"current": procs},
        }
    }))
}

/// `events`: with --stats one stats event; else one every `interval` until the
/// container stops.
pub fn events(g: &Global, id: &str, stats_once: bool, interval: Duration) -> Result<()> {
    let c = Container::load(g, id)?;
    if c.status() == "stopped" {
        bail!("container {id} is not running");
    }
    loop {
        match stats_event(&c) {
            Ok(e) => println!("{e}"),
            Err(_) if !stats_once => return Ok(()),
            Err(e) => return Err(e),
        }
        if stats_once {
            return Ok(());
        }
        std::thread::sleep(interval);
        if c.status() == "stopped" {
            return Ok(());
        }
    }
}

/// `update`: the memory limit of a running sandbox, from --memory or the
/// linux.resources JSON of --resources.
pub fn update(g: &Global, id: &str, resources: Option<&str>, memory: Option<u64>) -> Result<()> {
    let c = Container::load(g, id)?;
    if c.status() == "stopped" {
        bail!("container {id} is not running");
    }
    let mut limit = memory;
    if let Some(r) = resources {
        let text = if r == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(r).with_context(|| format!("--resources {r}"))?
        };
        let v: oci_spec::runtime::LinuxResources = serde_json::from_str(&text)
            .map_err(|e| anyhow!("--resources {r}: invalid JSON: {e}"))?;
        if let Some(l) = v.memory().as_ref().and_then(|m| m.limit()) {
            limit = Some(if l <= 0 { 0 } else { l as u64 });
        }
    }
    let Some(l) = limit else {
        bail!("update: nothing to change (rvisor can update the memory limit)");
    };
    c.request(&format!("update memory {l}"), Some(Duration::from_secs(5)))?;
    Ok(())
}

/// `features`: what this runtime supports, in the OCI features format.
pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "bind", "rbind", "mode"],
        "linux": {
            "namespaces": ["pid", "network", "ipc", "uts", "mount"],
            "capabilities": [],
            "cgroup": {"v1": true, "v2": false, "systemd": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "dev.rvisor.platform": "ptrace",
            "dev.rvisor.sandbox": "user-space kernel (Sentry) with a gofer per served tree"
        }
    })
}

/// `install`: register rvisor as a docker runtime, keeping what the file has.
pub fn install(config: &str, runtime: &str, flags: &[String]) -> Result<()> {
    let path = Path::new(config);
    let mut v: Value = match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => json!({}),
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| anyhow!("{config}: invalid JSON ({e}); not changing it"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => bail!("{config}: {e}"),
    };
    if !v.is_object() {
        bail!("{config}: not a JSON object; not changing it");
    }
    let me = std::env::current_exe()?;
    if !v["runtimes"].is_object() {
        v["runtimes"] = json!({});
    }
    let mut entry = json!({"path": me.to_string_lossy()});
    if !flags.is_empty() {
        entry["runtimeArgs"] = json!(flags);
    }
    v["runtimes"][runtime] = entry;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.rvisor-tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {config}"))?;
    println!(
        "Added runtime {runtime:?} ({}) to {config}.\nReload docker to use it: systemctl reload docker (or: kill -HUP $(pidof dockerd)); then docker run --runtime={runtime} --network=none ...",
        me.display()
    );
    Ok(())
}

//! rvisor: the command line and OCI runtime.

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

mod compare;
mod oci;
mod sandbox;
mod seccomp;

#[derive(Parser)]
#[command(
    name = "rvisor",
    version,
    about = "A user-space application kernel (gVisor-style) in Rust"
)]
struct Cli {
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a command in a sandbox over the host's root file system (read-only, with an
    /// in-memory overlay: changes never reach the host).
    Do {
        #[arg(long, default_value = "ptrace")]
        platform: String,
        #[arg(long)]
        cwd: Option<String>,
        #[arg(long = "env")]
        env: Vec<String>,
        #[arg(long)]
        strace: bool,
        #[arg(long)]
        hostname: Option<String>,
        /// The most memory the workload may use (e.g. 512M, 2G); past it, allocations
        /// fail and the process is OOM-killed.
        #[arg(long, value_parser = parse_size)]
        memory_limit: Option<u64>,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run commands on the host and in a fresh sandbox and show the outputs side by side
    /// (with no command: uname, /proc/version, dmesg, hostname, id, /proc, nproc,
    /// MemTotal, mount).
    Compare {
        #[arg(long, default_value = "ptrace")]
        platform: String,
        #[arg(long)]
        cwd: Option<String>,
        #[arg(long = "env")]
        env: Vec<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// Print JSON instead of columns.
        #[arg(long)]
        json: bool,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Internal: serve a root file system to a sandbox.
    #[command(hide = true)]
    Gofer {
        #[arg(long)]
        root: String,
        #[arg(long)]
        fd: i32,
        #[arg(long)]
        readonly: bool,
    },
    /// Internal: the sandbox (Sentry) process.
    #[command(hide = true)]
    Boot {
        #[arg(long)]
        gofer_fd: i32,
        #[arg(long)]
        cwd: String,
        #[arg(long)]
        strace: bool,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        memory_limit: Option<u64>,
        #[arg(long)]
        uid: Option<u32>,
        #[arg(long)]
        gid: Option<u32>,
        #[arg(long)]
        readonly_root: bool,
        #[arg(long, default_value = "ptrace")]
        platform: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Write a default OCI config.json into the bundle directory.
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: String,
    },
    /// Create and run a container from an OCI bundle in the foreground.
    Run {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: String,
        #[arg(long)]
        strace: bool,
        /// The container's id.
        id: String,
    },
}

/// A size with an optional K, M, G or T suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 512M or 2G)"))?;
    let v = n
        .checked_mul(mul)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if v < (1 << 20) {
        return Err(format!("{s:?}: the memory limit must be at least 1M"));
    }
    Ok(v)
}

fn main() {
    let cli = Cli::parse();
    let filter = if cli.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let code = match run(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvisor: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Find `cmd` the way execvp would, on the host's root (which the sandbox sees too).
fn resolve(cmd: &str, cwd: &std::path::Path) -> Option<String> {
    if cmd.contains('/') {
        let p = cwd.join(cmd);
        return p.exists().then(|| cmd.to_string());
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in path.split(':') {
        let p = std::path::Path::new(dir).join(cmd);
        if p.is_file() {
            return Some(p.to_string_lossy().into_owned());
        }
    }
    None
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Do {
            platform,
            cwd,
            env,
            strace,
            hostname,
            memory_limit,
            command,
        } => {
            if platform != "ptrace" && platform != "kvm" {
                bail!("platform {platform:?} is not available (supported: ptrace, kvm)");
            }
            let cwd = match cwd {
                Some(c) => c,
                None => std::env::current_dir()?.to_string_lossy().into_owned(),
            };
            let Some(exe) = resolve(&command[0], std::path::Path::new(&cwd)) else {
                eprintln!("rvisor: {}: No such file or directory", command[0]);
                return Ok(127);
            };
            for e in &env {
                if !e.contains('=') {
                    bail!("--env {e:?}: expected KEY=VALUE");
                }
            }
            let opts = DoOpts {
                debug: cli.debug,
                cwd,
                env,
                clear_env: false,
                strace,
                hostname,
                memory_limit,
                root: "/".into(),
                root_readonly: false,
                user: None,
                platform,
            };
            run_do(&opts, exe, &command)
        }
        Cmd::Compare {
            platform,
            cwd,
            env,
            hostname,
            json,
            command,
        } => {
            let mut flags = vec!["--platform".to_string(), platform];
            if let Some(c) = &cwd {
                flags.extend(["--cwd".to_string(), c.clone()]);
            }
            for e in &env {
                flags.extend(["--env".to_string(), e.clone()]);
            }
            if let Some(h) = hostname {
                flags.extend(["--hostname".to_string(), h]);
            }
            compare::compare(&flags, cwd.as_deref(), &env, &command, json)
        }
        Cmd::Spec { bundle } => oci::write_spec(&bundle).map(|_| 0),
        Cmd::Run { bundle, strace, id } => oci::run(cli.debug, strace, &bundle, &id),
        Cmd::Gofer { root, fd, readonly } => {
            // SAFETY: the launcher passed us this descriptor.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            let dir = std::fs::File::open(&root).with_context(|| format!("gofer root {root}"))?;
            // The gofer's root is its whole world: a chroot keeps even a confused
            // request from naming anything above it.
            nix::unistd::chroot(root.as_str()).context("gofer chroot")?;
            nix::unistd::chdir("/")?;
            seccomp::install_gofer()?;
            gofer::serve(dir.into(), sock, readonly)?;
            Ok(0)
        }
        Cmd::Boot {
            gofer_fd,
            cwd,
            strace,
            hostname,
            memory_limit,
            uid,
            gid,
            readonly_root,
            platform,
            command,
        } => {
            if let Some(code) = sandbox::become_pid1()? {
                return Ok(code);
            }
            // SAFETY: the launcher passed us this descriptor.
            let gofer = unsafe { OwnedFd::from_raw_fd(gofer_fd) };
            let dup = |fd: i32| -> Result<OwnedFd> {
                // SAFETY: duplicating our own stdio descriptor.
                let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
                if d < 0 {
                    bail!("dup stdio: {}", std::io::Error::last_os_error());
                }
                // SAFETY: a fresh descriptor.
                Ok(unsafe { OwnedFd::from_raw_fd(d) })
            };
            let envp: Vec<Vec<u8>> = std::env::vars_os()
                .map(|(k, v)| {
                    let mut b = k.as_bytes().to_vec();
                    b.push(b'=');
                    b.extend_from_slice(v.as_bytes());
                    b
                })
                .collect();
            // SAFETY: getuid/getgid have no preconditions.
            let (host_uid, host_gid) = unsafe { (libc::getuid(), libc::getgid()) };
            let (uid, gid) = (uid.unwrap_or(host_uid), gid.unwrap_or(host_gid));
            // /dev/kvm must be opened while the host's /dev is still in sight.
            let kvm = match platform.as_str() {
                "kvm" => Some(platform::kvm::Kvm::open_dev()?),
                "ptrace" => None,
                p => bail!("platform {p:?} is not available (supported: ptrace, kvm)"),
            };
            sandbox::pivot_to_empty_root()?;
            sandbox::drop_privileges()?;
            let cfg = sentry::Config {
                argv: command.iter().map(|s| s.as_bytes().to_vec()).collect(),
                envp,
                cwd: cwd.into_bytes(),
                debug: cli.debug,
                strace,
                gofer,
                stdio: [dup(0)?, dup(1)?, dup(2)?],
                uid,
                gid,
                hostname,
                memory_limit,
                readonly_root,
                kvm,
                umask: {
                    // SAFETY: umask only swaps the process's mask; it is put back at once.
                    let m = unsafe { libc::umask(0o022) };
                    // SAFETY: as above.
                    unsafe { libc::umask(m) };
                    m
                },
                confine: Some(Box::new(|| {
                    seccomp::install_sentry().map_err(|e| format!("{e:#}"))
                })),
            };
            match sentry::boot(cfg) {
                Ok(status) => Ok(if status & 0x7f == 0 {
                    (status >> 8) & 0xff
                } else {
                    128 + (status & 0x7f)
                }),
                Err(sentry::BootError::Exec { path, err }) => {
                    eprintln!("rvisor: {path}: {err}");
                    Ok(if err.raw_os_error() == Some(libc::ENOENT) {
                        127
                    } else {
                        126
                    })
                }
                Err(e) => bail!("{e}"),
            }
        }
    }
}

/// How to launch a sandbox (for `do` and `run`).
pub struct DoOpts {
    pub debug: bool,
    pub cwd: String,
    /// Variables added to (or, with `clear_env`, making up) the workload's environment.
    pub env: Vec<String>,
    pub clear_env: bool,
    pub strace: bool,
    pub hostname: Option<String>,
    pub memory_limit: Option<u64>,
    /// The host directory the gofer serves as the root file system.
    pub root: String,
    /// The root is mounted read-only inside (writes fail with EROFS).
    pub root_readonly: bool,
    pub user: Option<(u32, u32)>,
    /// "ptrace" or "kvm".
    pub platform: String,
}

pub fn run_do(o: &DoOpts, exe: String, command: &[String]) -> Result<i32> {
    let (debug, cwd, env, strace, hostname) =
        (o.debug, o.cwd.as_str(), &o.env, o.strace, &o.hostname);
    let me = std::env::current_exe()?;
    let (sentry_end, gofer_end) = gofer::pair()?;
    let gfd = gofer_end.as_raw_fd();
    let mut gofer = Command::new(&me);
    gofer.args(["gofer", "--root", &o.root, "--fd", "3", "--readonly"]);
    // SAFETY: the pre_exec closure only calls dup2, which is async-signal-safe.
    unsafe {
        gofer.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it explicitly then.
            if (gfd == 3 && libc::fcntl(3, libc::F_SETFD, 0) < 0)
                || (gfd != 3 && libc::dup2(gfd, 3) < 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // The gofer dies with the runtime, whatever kills it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut gofer_child = gofer.spawn().context("starting the gofer")?;
    drop(gofer_end);
    let sfd = sentry_end.as_raw_fd();
    let mut boot = Command::new(&me);
    if debug {
        boot.arg("--debug");
    }
    boot.args(["boot", "--gofer-fd", "3", "--cwd", cwd]);
    if strace {
        boot.arg("--strace");
    }
    if let Some(m) = o.memory_limit {
        boot.args(["--memory-limit", &m.to_string()]);
    }
    if let Some(h) = hostname {
        boot.args(["--hostname", h]);
    }
    if let Some((u, g)) = o.user {
        boot.args(["--uid", &u.to_string(), "--gid", &g.to_string()]);
    }
    if o.root_readonly {
        boot.arg("--readonly-root");
    }
    boot.args(["--platform", &o.platform]);
    boot.arg("--").arg(&exe).args(&command[1..]);
    if o.clear_env {
        boot.env_clear();
    }
    for e in env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        boot.env(k, v);
    }
    // SAFETY: dup2 and unshare are async-signal-safe.
    unsafe {
        boot.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it explicitly then.
            if (sfd == 3 && libc::fcntl(3, libc::F_SETFD, 0) < 0)
                || (sfd != 3 && libc::dup2(sfd, 3) < 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::unshare(
                libc::CLONE_NEWNS
                    | libc::CLONE_NEWUTS
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWNET
                    | libc::CLONE_NEWPID,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    sandbox::block_forwarded()?;
    let boot_child = boot.spawn();
    drop(sentry_end);
    let code = match boot_child {
        Ok(c) => sandbox::supervise(nix::unistd::Pid::from_raw(c.id() as i32)),
        Err(e) => Err(anyhow::anyhow!("starting the sandbox: {e}")),
    };
    let _ = gofer_child.kill();
    let _ = gofer_child.wait();
    code
}

//! rvisor: the command line and OCI runtime.

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

mod compare;
mod container;
mod launch;
mod mount_arg;
mod network;
mod oci;
mod ps;
mod sandbox;
mod seccomp;

#[derive(Parser)]
#[command(
    name = "rvisor",
    disable_version_flag = true,
    about = "A user-space application kernel (gVisor-style) in Rust, and an OCI runtime"
)]
struct Cli {
    #[arg(long, global = true)]
    debug: bool,
    /// The state directory (one subdirectory per container).
    #[arg(long, global = true, default_value = "/var/run/rvisor")]
    root: String,
    /// Append logs (and errors) to this file instead of the standard error.
    #[arg(long, global = true)]
    log: Option<String>,
    /// Append the log (debug output with --debug) to this file, not to the standard
    /// error; the sandbox and gofer processes write theirs there too.
    #[arg(long = "debug-log", global = true)]
    debug_log: Option<String>,
    /// text or json (one JSON object a line: level, msg, time).
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Accepted for runc compatibility (the sandbox enforces its own memory limit).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Where application code runs: ptrace (default) or kvm.
    #[arg(long, global = true, default_value = "ptrace")]
    platform: String,
    /// Host 2 MiB pages for large anonymous runs of the sandbox's memory: on, off, or
    /// auto (on unless the host hands free 2 MiB blocks back to its hypervisor, which
    /// makes each fresh huge page slow; see docs/performance.md).
    #[arg(long = "huge-pages", global = true, default_value = "auto")]
    huge_pages: String,
    /// none (loopback only), sandbox (rvisor's stack on the container network namespace's
    /// links; the default for a bundle) or host (the network namespace rvisor runs in,
    /// never the spec's: inet sockets are host sockets the Sentry operates; WEAKER
    /// isolation, the host kernel's TCP/IP stack is exposed to the workload).
    #[arg(long, global = true)]
    network: Option<String>,
    /// Print the version of rvisor and of the OCI runtime spec it implements.
    #[arg(long, short = 'v')]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// What `create` and `run` take besides the id.
#[derive(clap::Args)]
struct BundleArgs {
    #[arg(long, short = 'b', default_value = ".")]
    bundle: String,
    /// Write the container's pid (the sandbox process) here.
    #[arg(long)]
    pid_file: Option<String>,
    /// A unix socket to send the terminal's master end to (process.terminal).
    #[arg(long)]
    console_socket: Option<String>,
    /// Accepted for runc compatibility (the Sentry always pivots into an empty root).
    #[arg(long)]
    no_pivot: bool,
    /// Pass this many descriptors from 3 on to the workload.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long)]
    strace: bool,
}

impl BundleArgs {
    fn opts(&self, foreground: bool) -> container::CreateOpts<'_> {
        container::CreateOpts {
            bundle: &self.bundle,
            pid_file: self.pid_file.as_deref(),
            console_socket: self.console_socket.as_deref(),
            preserve_fds: self.preserve_fds,
            strace: self.strace,
            foreground,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a command in a sandbox over the host's root file system (read-only, with an
    /// in-memory overlay: changes never reach the host).
    Do {
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
    /// Internal: serve a directory to a sandbox.
    #[command(hide = true)]
    Gofer {
        #[arg(long)]
        path: String,
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
        /// KEY=VALUE (OCI linux.sysctl).
        #[arg(long = "sysctl")]
        sysctls: Vec<String>,
        #[arg(long)]
        memory_limit: Option<u64>,
        #[arg(long)]
        uid: Option<u32>,
        #[arg(long)]
        gid: Option<u32>,
        #[arg(long = "group")]
        groups: Vec<u32>,
        #[arg(long)]
        readonly_root: bool,
        /// Capability sets in hex: EFFECTIVE,PERMITTED,INHERITABLE,BOUNDING.
        #[arg(long)]
        caps: Option<String>,
        /// RESOURCE:SOFT:HARD (RLIMIT_* numbers).
        #[arg(long = "rlimit")]
        rlimits: Vec<String>,
        #[arg(long)]
        no_new_privs: bool,
        /// JSON list of extra mounts (see launch.rs).
        #[arg(long)]
        mounts: Option<String>,
        #[arg(long)]
        control_fd: Option<i32>,
        #[arg(long)]
        error_fd: Option<i32>,
        #[arg(long, default_value_t = 0)]
        extra_fds_from: i32,
        #[arg(long, default_value_t = 0)]
        extra_fds: i32,
        /// `--network host`: inet sockets are host sockets.
        #[arg(long)]
        host_network: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Write a default OCI config.json into the bundle directory.
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: String,
    },
    /// Create a container from an OCI bundle: the sandbox is built and waits for start.
    Create {
        #[command(flatten)]
        b: BundleArgs,
        id: String,
    },
    /// Start a created container's workload.
    Start { id: String },
    /// Print a container's OCI state as JSON.
    State { id: String },
    /// Send a signal (name or number; default SIGTERM) to a container's init, or with
    /// --all to every process in it.
    Kill {
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a container: its processes, and its state.
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Create and start a container (in the foreground unless --detach).
    Run {
        #[command(flatten)]
        b: BundleArgs,
        #[arg(long, short = 'd')]
        detach: bool,
        /// The container's id.
        id: String,
    },
    /// List containers.
    List {
        #[arg(long, short = 'q')]
        quiet: bool,
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
    },
    /// Wait for a container's init to exit and print its exit code.
    Wait { id: String },
    /// The processes in a container.
    Ps {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a new process in a running container.
    Exec {
        /// A JSON file with the OCI process to run (args, env, cwd, user, terminal).
        #[arg(long, short = 'p')]
        process: Option<String>,
        #[arg(long)]
        console_socket: Option<String>,
        #[arg(long)]
        cwd: Option<String>,
        #[arg(long, short = 'e')]
        env: Vec<String>,
        #[arg(long, short = 't')]
        tty: bool,
        /// UID[:GID]
        #[arg(long, short = 'u')]
        user: Option<String>,
        #[arg(long = "additional-gids", short = 'g')]
        additional_gids: Vec<u32>,
        /// Add a capability to the process's bounding, effective and permitted sets.
        #[arg(long = "cap", short = 'c')]
        caps: Vec<String>,
        /// Set no_new_privs for the process.
        #[arg(long)]
        no_new_privs: bool,
        #[arg(long, short = 'd')]
        detach: bool,
        #[arg(long)]
        pid_file: Option<String>,
        /// Accepted for runc compatibility.
        #[arg(long, default_value_t = 0)]
        preserve_fds: u32,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print a container's stats (memory, processes) as JSON events.
    Events {
        /// One stats event, then exit.
        #[arg(long)]
        stats: bool,
        /// Seconds between events.
        #[arg(long, default_value_t = 5)]
        interval: u64,
        id: String,
    },
    /// Change a running container's memory limit.
    Update {
        /// linux.resources JSON ("-" for stdin).
        #[arg(long, short = 'r')]
        resources: Option<String>,
        #[arg(long, short = 'm', value_parser = parse_size)]
        memory: Option<u64>,
        id: String,
    },
    /// What this runtime supports (OCI features JSON).
    Features,
    /// Register rvisor as a docker runtime in daemon.json (keeping the rest).
    Install {
        #[arg(long, default_value = "rvisor")]
        runtime: String,
        #[arg(long, default_value = "/etc/docker/daemon.json")]
        config: String,
        /// Flags docker passes to rvisor (after --).
        #[arg(last = true)]
        flags: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
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

/// Where errors go besides the standard error: the --log file, in its format.
struct ErrLog {
    file: Option<std::fs::File>,
    json: bool,
}

impl ErrLog {
    fn error(&mut self, msg: &str) {
        let Some(f) = self.file.as_mut() else { return };
        let line = if self.json {
            serde_json::json!({
                "level": "error",
                "msg": msg,
                "time": container::now_rfc3339(),
            })
            .to_string()
        } else {
            format!("{} error: {msg}", container::now_rfc3339())
        };
        use std::io::Write;
        let _ = writeln!(f, "{line}");
    }
}

fn main() {
    let cli = Cli::parse();
    let filter = if cli.debug { "debug" } else { "warn" };
    let log_file = cli.log.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| eprintln!("rvisor: --log {p}: {e}"))
            .ok()
    });
    let json = cli.log_format == "json";
    let debug_log = cli.debug_log.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| eprintln!("rvisor: --debug-log {p}: {e}"))
            .ok()
    });
    if let Some(p) = &cli.debug_log {
        let _ = launch::DEBUG_LOG.set(p.clone());
    }
    // With a debug log, logs leave the standard error alone (in `run` and the sandbox
    // it is the container's); errors are still printed there.
    let quiet = debug_log.is_some();
    init_logs(filter, log_file.as_ref(), debug_log, json, quiet);
    let mut errlog = ErrLog {
        file: log_file,
        json,
    };
    if !matches!(cli.log_format.as_str(), "text" | "json") {
        eprintln!(
            "rvisor: --log-format {:?}: expected text or json",
            cli.log_format
        );
        std::process::exit(1);
    }
    let code = match run(cli) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("rvisor: {msg}");
            errlog.error(&msg);
            if let Some(fd) = BOOT_ERROR_FD.get() {
                // SAFETY: writing to the error pipe the launcher gave the boot process.
                unsafe { libc::write(*fd, msg.as_ptr().cast(), msg.len()) };
            }
            1
        }
    };
    std::process::exit(code);
}

/// Logs to `log` (else the standard error, unless `quiet`), and to `debug_log`.
fn init_logs(
    filter: &str,
    log: Option<&std::fs::File>,
    debug_log: Option<std::fs::File>,
    json: bool,
    quiet: bool,
) {
    use tracing_subscriber::{fmt, prelude::*, EnvFilter, Layer};
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let main: Option<Boxed> = match (log.and_then(|f| f.try_clone().ok()), json) {
        (Some(f), true) => Some(
            fmt::layer()
                .json()
                .with_writer(std::sync::Mutex::new(f))
                .boxed(),
        ),
        (Some(f), false) => Some(
            fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .boxed(),
        ),
        (None, _) if quiet => None,
        (None, _) => Some(fmt::layer().with_writer(std::io::stderr).boxed()),
    };
    let debug: Option<Boxed> = debug_log.map(|f| {
        fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .boxed()
    });
    let layers: Vec<Boxed> = main.into_iter().chain(debug).collect();
    tracing_subscriber::registry()
        .with(layers)
        .with(EnvFilter::new(filter))
        .init();
}

/// In `rvisor boot`: the pipe on which `create` hears why the sandbox failed.
static BOOT_ERROR_FD: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

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
    if cli.version {
        println!(
            "rvisor version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            oci::OCI_VERSION
        );
        return Ok(0);
    }
    let _ = cli.systemd_cgroup;
    let Some(cmd) = cli.cmd else {
        bail!("no command given (see rvisor --help)");
    };
    if cli.platform != "ptrace" && cli.platform != "kvm" {
        bail!(
            "platform {:?} is not available (supported: ptrace, kvm)",
            cli.platform
        );
    }
    if !["auto", "on", "off"].contains(&cli.huge_pages.as_str()) {
        bail!(
            "--huge-pages {:?}: expected auto, on or off",
            cli.huge_pages
        );
    }
    let g = container::Global {
        root: std::path::PathBuf::from(&cli.root),
        debug: cli.debug,
        platform: cli.platform.clone(),
        huge_pages: cli.huge_pages.clone(),
        network: network::Mode::parse(cli.network.as_deref())?,
    };
    match cmd {
        Cmd::Do {
            cwd,
            env,
            strace,
            hostname,
            memory_limit,
            command,
        } => {
            if g.network == Some(network::Mode::Sandbox) {
                bail!(
                    "rvisor do has no network namespace to take over: only --network none or host"
                );
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
            let opts = launch::DoOpts {
                debug: cli.debug,
                cwd,
                env,
                strace,
                hostname,
                memory_limit,
                root: "/".into(),
                platform: cli.platform.clone(),
                huge_pages: cli.huge_pages.clone(),
                netns_in_launcher: false,
                host_network: g.network == Some(network::Mode::Host),
                ..Default::default()
            };
            launch::run_do(opts, exe, &command)
        }
        Cmd::Compare {
            cwd,
            env,
            hostname,
            json,
            command,
        } => {
            let mut flags = vec!["--platform".to_string(), cli.platform.clone()];
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
        Cmd::Create { b, id } => container::create(&g, &id, &b.opts(false)).map(|_| 0),
        Cmd::Run { b, detach, id } => container::run(&g, &id, &b.opts(!detach), detach),
        Cmd::Start { id } => container::start(&g, &id).map(|_| 0),
        Cmd::State { id } => container::state(&g, &id).map(|_| 0),
        Cmd::Kill { all, id, signal } => container::kill(&g, &id, &signal, all).map(|_| 0),
        Cmd::Delete { force, id } => container::delete(&g, &id, force).map(|_| 0),
        Cmd::List { quiet, format } => container::list(&g, quiet, format == "json").map(|_| 0),
        Cmd::Wait { id } => container::wait(&g, &id),
        Cmd::Ps { format, id, .. } => ps::ps(&g, &id, format == "json").map(|_| 0),
        Cmd::Exec {
            process,
            console_socket,
            cwd,
            env,
            tty,
            user,
            additional_gids,
            caps,
            no_new_privs,
            detach,
            pid_file,
            preserve_fds: _,
            id,
            args,
        } => container::exec(
            &g,
            &id,
            &container::ExecOpts {
                process,
                console_socket,
                cwd,
                env,
                tty,
                user,
                additional_gids,
                caps,
                no_new_privs,
                detach,
                pid_file,
                args,
            },
        ),
        Cmd::Events {
            stats,
            interval,
            id,
        } => container::events(
            &g,
            &id,
            stats,
            std::time::Duration::from_secs(interval.max(1)),
        )
        .map(|_| 0),
        Cmd::Update {
            resources,
            memory,
            id,
        } => container::update(&g, &id, resources.as_deref(), memory).map(|_| 0),
        Cmd::Features => {
            println!("{}", serde_json::to_string_pretty(&container::features())?);
            Ok(0)
        }
        Cmd::Install {
            runtime,
            config,
            flags,
        } => container::install(&config, &runtime, &flags).map(|_| 0),
        Cmd::Pause { id } => container::freeze(&g, &id, true).map(|_| 0),
        Cmd::Resume { id } => container::freeze(&g, &id, false).map(|_| 0),
        Cmd::Gofer {
            path: root,
            fd,
            readonly,
        } => {
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
            sysctls,
            cwd,
            strace,
            hostname,
            memory_limit,
            uid,
            gid,
            groups,
            readonly_root,
            caps,
            rlimits,
            no_new_privs,
            mounts,
            control_fd,
            error_fd,
            extra_fds_from,
            extra_fds,
            host_network,
            command,
        } => {
            if let Some(fd) = error_fd {
                // Close-on-exec: no workload or stub process inherits it.
                // SAFETY: fcntl on the descriptor the launcher passed us.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                let _ = BOOT_ERROR_FD.set(fd);
            }
            let take = |fd: i32| -> OwnedFd {
                // SAFETY: the launcher passed us this descriptor; we own it from here.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                // SAFETY: as above.
                unsafe { OwnedFd::from_raw_fd(fd) }
            };
            let mut extra: Vec<mount_arg::Parsed> = vec![];
            if let Some(m) = &mounts {
                extra = mount_arg::parse(m)?;
            }
            let mut extra_mounts = vec![];
            let mut clients = std::collections::HashMap::new();
            for m in extra {
                extra_mounts.push(m.into_spec(&take, &mut clients));
            }
            let control = control_fd.map(take);
            let caps = match caps {
                Some(c) => {
                    let v: Vec<u64> = c
                        .split(',')
                        .map(|x| u64::from_str_radix(x, 16))
                        .collect::<Result<_, _>>()
                        .map_err(|_| anyhow::anyhow!("--caps {c:?}"))?;
                    if v.len() != 4 {
                        bail!("--caps {c:?}: expected four sets");
                    }
                    Some((v[0], v[1], v[2], v[3]))
                }
                None => None,
            };
            let rlimits: Vec<(u32, u64, u64)> = rlimits
                .iter()
                .map(|r| {
                    let v: Vec<u64> = r.split(':').filter_map(|x| x.parse().ok()).collect();
                    if v.len() != 3 {
                        bail!("--rlimit {r:?}: expected RESOURCE:SOFT:HARD");
                    }
                    Ok((v[0] as u32, v[1], v[2]))
                })
                .collect::<Result<_>>()?;
            let preserved: Vec<OwnedFd> = (extra_fds_from..extra_fds_from + extra_fds)
                .map(take)
                .collect();
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
            // The host's interfaces are read, and the hostinet thread started, before
            // the Sentry is confined.
            let host_net = match host_network {
                true => {
                    let (ifaces, routes) = network::host_view()
                        .context("--network host: reading the host's interfaces")?;
                    Some(
                        sentry::net::hostinet::HostNet::start(ifaces, routes)
                            .context("--network host: the host socket poller")?,
                    )
                }
                false => None,
            };
            // /dev/kvm must be opened while the host's /dev is still in sight.
            let kvm = match cli.platform.as_str() {
                "kvm" => Some(platform::kvm::Kvm::open_dev()?),
                "ptrace" => None,
                p => bail!("platform {p:?} is not available (supported: ptrace, kvm)"),
            };
            let memory_file = sandbox::huge_memory_file(&cli.huge_pages);
            sandbox::pivot_to_empty_root()?;
            sandbox::drop_privileges(host_network)?;
            let mut stdio = vec![dup(0)?, dup(1)?, dup(2)?];
            for f in &preserved {
                stdio.push(dup(f.as_raw_fd())?);
            }
            drop(preserved);
            let cfg = sentry::Config {
                argv: command.iter().map(|s| s.as_bytes().to_vec()).collect(),
                envp,
                cwd: cwd.into_bytes(),
                debug: cli.debug,
                strace,
                gofer,
                stdio,
                groups,
                uid,
                gid,
                hostname,
                sysctls: sysctls
                    .iter()
                    .filter_map(|s| s.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                memory_limit,
                readonly_root,
                kvm,
                memory_file,
                umask: {
                    // SAFETY: umask only swaps the process's mask; it is put back at once.
                    let m = unsafe { libc::umask(0o022) };
                    // SAFETY: as above.
                    unsafe { libc::umask(m) };
                    m
                },
                confine: Some(Box::new(move || {
                    seccomp::install_sentry(host_network).map_err(|e| format!("{e:#}"))
                })),
                mounts: extra_mounts,
                control,
                caps,
                rlimits,
                no_new_privs,
                host_network: host_net,
            };
            tracing::debug!("boot: the Sentry starts (pid {})", std::process::id());
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

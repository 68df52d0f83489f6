//! The network group's host side (issue 8, section 5): iperf3 and wrk installed when
//! missing; docker up, an image with iperf3 and busybox made with `docker import`, a
//! docker runtime per rvisor platform (and runsc); and the measurements against a
//! container on the default bridge. Containers carry a label with this run's pid
//! and are removed after each measurement; the image is removed at the end.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::workloads::NetTest;
use crate::{parse, proc, run, Ctx, Outcome};

const BUSYBOX: &str = "/bin/busybox";
const IPERF3: &str = "/usr/bin/iperf3";
const LABEL: &str = "rvisor-bench.pid";
/// How long a container may take to answer after `docker run -d`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The file busybox httpd serves (the size of a small page).
const INDEX_BYTES: usize = 612;

/// Installs the missing tools (Debian packages of the same name) with apt-get when
/// running as root; returns each tool still missing with the reason.
pub fn ensure_tools(tools: &[&str]) -> Vec<(String, String)> {
    let missing = |t: &str| which(t).is_none();
    let want: Vec<&str> = tools.iter().copied().filter(|t| missing(t)).collect();
    if want.is_empty() {
        return vec![];
    }
    let how = format!("apt-get install -y {}", want.join(" "));
    let mut why = format!("{} not installed (install it: {how})", want.join(" and "));
    if is_root() {
        eprintln!("rvisor-bench: installing {} with apt-get", want.join(" "));
        let out = std::process::Command::new("apt-get")
            .args(["install", "-y"])
            .args(&want)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let last = err.lines().rev().find(|l| !l.trim().is_empty());
                why = format!(
                    "{} not installed and `{how}` failed: {}",
                    want.join(" and "),
                    last.unwrap_or("no message")
                );
            }
            Err(e) => why = format!("{} not installed and apt-get: {e}", want.join(" and ")),
        }
    }
    want.iter()
        .filter(|t| missing(t))
        .map(|t| (t.to_string(), why.clone()))
        .collect()
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a host command (docker, a tool) with the run's environment and timeout;
/// its stdout, or a one-line reason.
fn host(ctx: &Ctx, argv: &[&str]) -> Result<String, String> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = run::run::<()>(&argv, Path::new("/"), &ctx.env, ctx.timeout, None)
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if out.timed_out {
        return Err(format!(
            "`{}` timed out after {} s",
            argv.join(" "),
            ctx.timeout.as_secs()
        ));
    }
    if !out.status.success() {
        let err = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        let err = err.lines().find(|l| !l.trim().is_empty());
        let mut cmd = argv.join(" ");
        if cmd.len() > 60 {
            cmd = format!("{}...", cmd.chars().take(57).collect::<String>());
        }
        return Err(format!(
            "`{cmd}` failed: {}",
            err.unwrap_or("no message").trim()
        ));
    }
    Ok(out.stdout)
}

/// docker answering, starting dockerd (detached, as the tests do) when it is not.
fn ensure_dockerd(ctx: &Ctx) -> Result<(), String> {
    let up = || host(ctx, &["docker", "info", "--format", "{{.ServerVersion}}"]).is_ok();
    if which("docker").is_none() {
        return Err("docker is not installed (apt-get install docker.io)".into());
    }
    if up() {
        return Ok(());
    }
    eprintln!("rvisor-bench: starting dockerd (log: /tmp/rvisor-test-dockerd.log)");
    host(
        ctx,
        &[
            "sh",
            "-c",
            "nohup dockerd >/tmp/rvisor-test-dockerd.log 2>&1 &",
        ],
    )?;
    let start = Instant::now();
    while !up() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err("dockerd did not come up (see /tmp/rvisor-test-dockerd.log)".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// docker with this run's image; removes the image and any container of this run
/// when dropped.
pub struct Docker {
    image: String,
    label: String,
}

impl Docker {
    pub fn setup(ctx: &Ctx) -> Result<Docker, String> {
        ensure_dockerd(ctx)?;
        remove_stale(ctx);
        let pid = std::process::id();
        let d = Docker {
            image: format!("rvisor-bench-net:{pid}"),
            label: format!("{LABEL}={pid}"),
        };
        d.import(ctx)?;
        d.clean_up_on_signal();
        Ok(d)
    }

    /// On SIGINT, SIGTERM or SIGHUP: this run's containers and image are removed before
    /// the tool exits. Called on the main thread before the threads that should not
    /// take these signals are started (they inherit the mask; children do not).
    fn clean_up_on_signal(&self) {
        let (label, image) = (self.label.clone(), self.image.clone());
        // SAFETY: an all-zero sigset_t is a valid value of this plain C type, and it
        // is initialised by sigemptyset before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the calls only change this thread's mask.
        unsafe {
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` and `sig` are valid for the call.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            eprintln!("rvisor-bench: signal {sig}: removing this run's containers and image");
            remove_labelled(&label);
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", &image])
                .output();
            std::process::exit(128 + sig);
        });
    }

    /// busybox-static with its applets, iperf3 with the libraries ldd names, and
    /// /www/index.html.
    fn import(&self, ctx: &Ctx) -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("rvisor-bench-image-{}", std::process::id()));
        let r = self.import_from(ctx, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn import_from(&self, ctx: &Ctx, dir: &Path) -> Result<(), String> {
        let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
        let copy = |from: &str| -> Result<(), String> {
            let to = dir.join(from.trim_start_matches('/'));
            let parent = to.parent().unwrap_or(dir);
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            std::fs::copy(from, &to).map_err(|e| io(Path::new(from), e))?;
            Ok(())
        };
        let _ = std::fs::remove_dir_all(dir);
        for d in ["tmp", "etc", "www"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| io(dir, e))?;
        }
        copy(BUSYBOX)?;
        let list = host(ctx, &[BUSYBOX, "--list"])?;
        for applet in list.lines().filter(|a| *a != "busybox") {
            let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
        }
        let ldd = host(ctx, &["ldd", IPERF3])?;
        if let Some(l) = ldd.lines().find(|l| l.contains("not found")) {
            return Err(format!("ldd {IPERF3}: {}", l.trim()));
        }
        copy(IPERF3)?;
        for lib in parse::ldd_paths(&ldd) {
            copy(&lib)?;
        }
        let write = |p: &str, s: &[u8]| std::fs::write(dir.join(p), s).map_err(|e| io(dir, e));
        write("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")?;
        write("etc/group", b"root:x:0:\n")?;
        write("www/index.html", &[b'x'; INDEX_BYTES])?;
        let import = format!(
            "tar -C {} -c . | docker import - {} >/dev/null",
            dir.display(),
            self.image
        );
        host(ctx, &["sh", "-c", &import]).map(|_| ())
    }

    /// Whether a container with a network starts under `runtime` (to leave out a
    /// runtime whose networking cannot work here, with the reason, once).
    pub fn probe(&self, ctx: &Ctx, runtime: &str) -> Result<(), String> {
        let rt = format!("--runtime={runtime}");
        let argv = [
            "docker",
            "run",
            "--rm",
            &rt,
            "--label",
            &self.label,
            &self.image,
            "true",
        ];
        host(ctx, &argv).map(|_| ()).map_err(explain)
    }

    /// Starts `cmd` in a container of this run's image under `runtime`.
    fn start(
        &self,
        ctx: &Ctx,
        runtime: &str,
        opts: &[&str],
        cmd: &[&str],
    ) -> Result<Container, String> {
        let name = format!(
            "rvisor-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let rt = format!("--runtime={runtime}");
        let mut argv = vec!["docker", "run", "-d", &rt, "--label", &self.label];
        argv.extend(["--name", &name]);
        argv.extend(opts);
        argv.push(&self.image);
        argv.extend(cmd);
        let c = Container { name: name.clone() };
        host(ctx, &argv)?;
        Ok(c)
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for Docker {
    fn drop(&mut self) {
        remove_labelled(&self.label);
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// `docker rm -f` of the containers with `label`.
fn remove_labelled(label: &str) {
    let filter = format!("label={label}");
    let Ok(out) = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
    else {
        return;
    };
    let ids = String::from_utf8_lossy(&out.stdout);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .output();
    }
}

/// Containers and images left by runs of this tool that were killed (their pid is
/// gone).
fn remove_stale(ctx: &Ctx) {
    let fmt = format!("{{{{.Label \"{LABEL}\"}}}}");
    let pids = host(
        ctx,
        &[
            "docker",
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL}"),
            "--format",
            &fmt,
        ],
    )
    .unwrap_or_default();
    let images = host(
        ctx,
        &[
            "docker",
            "images",
            "rvisor-bench-net",
            "--format",
            "{{.Tag}}",
        ],
    )
    .unwrap_or_default();
    for pid in pids.lines().chain(images.lines()) {
        let Ok(n) = pid.trim().parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{n}")).exists() {
            remove_labelled(&format!("{LABEL}={n}"));
            let _ = host(
                ctx,
                &["docker", "rmi", "-f", &format!("rvisor-bench-net:{n}")],
            );
        }
    }
}

/// A container removed (with `docker rm -f`) when dropped.
struct Container {
    name: String,
}

impl Container {
    fn inspect(&self, ctx: &Ctx, format: &str) -> Result<String, String> {
        host(ctx, &["docker", "inspect", "--format", format, &self.name])
            .map(|s| s.trim().to_string())
    }

    /// Its address on the default bridge.
    fn ip(&self, ctx: &Ctx) -> Result<String, String> {
        let ip = self.inspect(ctx, "{{.NetworkSettings.IPAddress}}")?;
        if ip.is_empty() {
            return Err(format!("{} has no address on the bridge", self.name));
        }
        Ok(ip)
    }

    /// Why it stopped, with the end of its log, when it is no longer running.
    fn died(&self, ctx: &Ctx) -> Option<String> {
        let state = self
            .inspect(
                ctx,
                "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}",
            )
            .ok()?;
        if state.starts_with("running") {
            return None;
        }
        let out = std::process::Command::new("docker")
            .args(["logs", "--tail", "3", &self.name])
            .output()
            .ok();
        let log = out.map_or(String::new(), |o| {
            let t = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
            t.split_whitespace().collect::<Vec<_>>().join(" ")
        });
        Some(format!("the container stopped ({state}); log: {log}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// Waits until `http://addr/index.html` answers 200 with the whole file.
fn wait_http(ctx: &Ctx, c: &Container, addr: &str) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < READY_TIMEOUT {
        match http_get(addr) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if let Some(why) = c.died(ctx) {
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "no answer from http://{addr}/ within {} s: {last}",
        READY_TIMEOUT.as_secs()
    ))
}

fn http_get(addr: &str) -> Result<(), String> {
    let sock = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s =
        TcpStream::connect_timeout(&sock, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let status = text.lines().next().unwrap_or("");
    if !status.contains(" 200") {
        return Err(format!("answer `{status}`"));
    }
    if !text.ends_with(&"x".repeat(INDEX_BYTES)) {
        return Err("short answer".into());
    }
    Ok(())
}

/// One measurement of `test` against a container under `runtime`.
pub fn measure(test: NetTest, runtime: &str, d: &Docker, ctx: &Ctx) -> Outcome {
    let r = match test {
        NetTest::Iperf3 { secs, reverse } => iperf3(d, ctx, runtime, secs, reverse),
        NetTest::Http { secs, conns } => http(d, ctx, runtime, secs, conns),
        NetTest::IdleCpu { secs } => idle(d, ctx, runtime, secs),
    };
    match r {
        Ok((value, detail)) => Outcome::Ok {
            value,
            processes: None,
            detail,
        },
        Err(e) => Outcome::Fail(explain(e)),
    }
}

/// Adds what is known about a failure's cause.
fn explain(e: String) -> String {
    if e.contains("cannot run with network enabled in root network namespace") {
        // runsc/sandbox/network.go, isRootNS() of the runsc releases of 2022-2023.
        return format!(
            "{e} (runsc's networking does not work here: this runsc takes a namespace that \
             shows /proc/sys/net/core/rmem_default for the host's, and this kernel shows it \
             in every network namespace)"
        );
    }
    e
}

type Measured = Result<(f64, Option<String>), String>;

fn iperf3(d: &Docker, ctx: &Ctx, runtime: &str, secs: u64, reverse: bool) -> Measured {
    let c = d.start(ctx, runtime, &[], &["iperf3", "-s", "-p", "5201"])?;
    let ip = c.ip(ctx)?;
    let t = secs.to_string();
    let mut argv = vec![IPERF3, "-c", &ip, "-p", "5201", "-t", &t, "-J"];
    if reverse {
        argv.push("-R");
    }
    let start = Instant::now();
    loop {
        // iperf3 exits 1 with its JSON error when it cannot connect.
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let out = run::run::<()>(&argv, Path::new("/"), &ctx.env, ctx.timeout, None)
            .map_err(|e| format!("{IPERF3}: {e}"))?;
        if out.timed_out {
            return Err(format!(
                "iperf3 timed out after {} s",
                ctx.timeout.as_secs()
            ));
        }
        match parse::iperf3_bits_per_second(&out.stdout) {
            Ok(bps) => return Ok((bps / 1e9, None)),
            Err(e) if e.contains("unable to connect") && start.elapsed() < READY_TIMEOUT => {
                if let Some(why) = c.died(ctx) {
                    return Err(why);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("{e} (against {ip})")),
        }
    }
}

fn http(d: &Docker, ctx: &Ctx, runtime: &str, secs: u64, conns: u64) -> Measured {
    let cmd = ["httpd", "-f", "-p", "80", "-h", "/www"];
    let c = d.start(ctx, runtime, &["-p", "127.0.0.1::80"], &cmd)?;
    let port = host(ctx, &["docker", "port", &c.name, "80/tcp"])?;
    let addr = port
        .lines()
        .next()
        .map(str::trim)
        .filter(|a| a.starts_with("127.0.0.1:"))
        .ok_or_else(|| format!("`docker port` printed `{}`", port.trim()))?
        .to_string();
    wait_http(ctx, &c, &addr)?;
    let url = format!("http://{addr}/index.html");
    let (t, cn, dur) = (
        "-t2".to_string(),
        format!("-c{conns}"),
        format!("-d{secs}s"),
    );
    let out = host(ctx, &["wrk", &t, &cn, &dur, "--timeout", "5s", &url])?;
    let w = parse::wrk(&out)?;
    if w.requests == 0 || w.non_2xx > 0 || w.socket_errors * 100 > w.requests {
        return Err(format!(
            "wrk: {} requests, {} not 2xx/3xx, {} socket errors",
            w.requests, w.non_2xx, w.socket_errors
        ));
    }
    let detail = (w.socket_errors > 0).then(|| format!("{} socket errors", w.socket_errors));
    Ok((w.per_sec, detail))
}

fn idle(d: &Docker, ctx: &Ctx, runtime: &str, secs: u64) -> Measured {
    let c = d.start(
        ctx,
        runtime,
        &[],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    )?;
    let ip = c.ip(ctx)?;
    wait_http(ctx, &c, &format!("{ip}:80"))?;
    std::thread::sleep(Duration::from_secs(1));
    let id = c.inspect(ctx, "{{.Id}}")?;
    let init: u32 = c
        .inspect(ctx, "{{.State.Pid}}")?
        .parse()
        .map_err(|e| format!("docker inspect .State.Pid: {e}"))?;
    let pids = container_pids(&id, init);
    let before = cpu_ns(&pids);
    std::thread::sleep(Duration::from_secs(secs));
    let after = cpu_ns(&pids);
    if let Some(why) = c.died(ctx) {
        return Err(why);
    }
    let used: u64 = after
        .iter()
        .filter_map(|(pid, _, t)| {
            let b = before.iter().find(|(p, _, _)| p == pid)?;
            Some(t.saturating_sub(b.2))
        })
        .sum();
    let pct = used as f64 / 1e9 / secs as f64 * 100.0;
    let names: Vec<String> = after.iter().map(|(p, n, _)| format!("{n}[{p}]")).collect();
    Ok((
        pct,
        Some(format!(
            "{:.1} ms on a CPU: {}",
            used as f64 / 1e6,
            names.join(" ")
        )),
    ))
}

/// The host processes of a container: its init process and the processes whose
/// command line names the container (a sandbox's Sentry and gofer), with their
/// descendants; docker's shim is left out (it is the same for every runtime).
fn container_pids(id: &str, init: u32) -> Vec<u32> {
    let mut roots = vec![init];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(id) {
                roots.push(pid);
            }
        }
    }
    let mut pids: Vec<u32> = roots.into_iter().flat_map(proc::tree).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|p| !name(*p).starts_with("containerd-shim"));
    pids
}

fn name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| parse::status_name(&s))
        .unwrap_or_default()
}

/// (pid, name, ns its threads have run) of those of `pids` still alive
/// (/proc/PID/task/*/schedstat: finer than the 10 ms ticks of /proc/PID/stat).
fn cpu_ns(pids: &[u32]) -> Vec<(u32, String, u64)> {
    pids.iter()
        .filter_map(|p| {
            let tasks = std::fs::read_dir(format!("/proc/{p}/task")).ok()?;
            let ns = tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| parse::schedstat_ns(&s))
                .sum();
            Some((*p, name(*p), ns))
        })
        .collect()
}

/// Registers `bin` as the docker runtime `name` with `args`, through `how` (the
/// command that writes daemon.json), unless dockerd already has it so; then reloads
/// dockerd and waits for it to list the runtime.
fn register(
    ctx: &Ctx,
    name: &str,
    bin: &Path,
    args: &[String],
    how: &[String],
) -> Result<(), String> {
    let want = serde_json::json!({
        "path": bin.display().to_string(),
        "runtimeArgs": args,
    });
    let listed = || -> Result<serde_json::Value, String> {
        let out = host(ctx, &["docker", "info", "--format", "{{json .Runtimes}}"])?;
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).map_err(|e| format!("docker info: {e}"))?;
        Ok(v[name].clone())
    };
    let same = |v: &serde_json::Value| {
        v["path"] == want["path"]
            && (v["runtimeArgs"] == want["runtimeArgs"]
                || (args.is_empty() && v["runtimeArgs"].is_null()))
    };
    if same(&listed()?) {
        return Ok(());
    }
    let how: Vec<&str> = how.iter().map(String::as_str).collect();
    host(ctx, &how)?;
    host(ctx, &["sh", "-c", "kill -HUP $(pidof dockerd)"])?;
    let start = Instant::now();
    while !same(&listed()?) {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("dockerd did not pick up runtime {name}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(())
}

/// The docker runtime for rvisor on `platform`: `rvisor-bench-PLATFORM-<hash of the
/// binary's path>` (so worktrees do not collide), registered with `rvisor install`.
pub fn rvisor_runtime(ctx: &Ctx, rvisor: &Path, platform: &str) -> Result<String, String> {
    let bin = rvisor
        .canonicalize()
        .map_err(|e| format!("{}: {e}", rvisor.display()))?;
    let path = bin.display().to_string();
    let tag = crate::helper::fnv1a(&[path.as_bytes()]) as u32;
    let name = format!("rvisor-bench-{platform}-{tag:08x}");
    let args = vec!["--platform".to_string(), platform.to_string()];
    let how: Vec<String> = [path.as_str(), "install", "--runtime", &name, "--"]
        .iter()
        .map(|s| s.to_string())
        .chain(args.iter().cloned())
        .collect();
    register(ctx, &name, &bin, &args, &how)?;
    Ok(name)
}

/// The docker runtime for gVisor on `platform`, registered with `runsc install`.
pub fn runsc_runtime(ctx: &Ctx, runsc: &Path, platform: &str) -> Result<String, String> {
    let name = format!("rvisor-bench-runsc-{platform}");
    let args = vec![format!("--platform={platform}")];
    let bin = runsc.display().to_string();
    let how: Vec<String> = [bin.as_str(), "install", "--runtime", &name, "--"]
        .iter()
        .map(|s| s.to_string())
        .chain(args.iter().cloned())
        .collect();
    register(ctx, &name, runsc, &args, &how)?;
    Ok(name)
}

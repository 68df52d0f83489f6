//! Docker end to end (issue 4): rvisor registered as a docker runtime, driven by the
//! real docker CLI and containerd-shim.
//!
//! Set-up: docker.io is installed when missing, dockerd started when not running, a
//! busybox image built with `docker import`, and rvisor registered in
//! /etc/docker/daemon.json under a runtime name of its own (derived from the binary's
//! path, so worktrees do not collide). When docker cannot run here, each test prints
//! why and is skipped loudly; with RVISOR_REQUIRE_DOCKER=1 that is a failure instead.

mod common;
use common::*;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const IMAGE: &str = "rvisor-test-busybox:latest";

/// One docker test at a time: they share the daemon and count processes.
static SERIAL: Mutex<()> = Mutex::new(());

struct Docker {
    runtime: String,
}

fn setup() -> Result<Docker, String> {
    let runtime = docker::register_runtime("rvisor-test", &[])?;
    // The image: busybox with a /data directory, and a memory hog.
    docker::import_busybox(IMAGE, |dir, root| {
        std::fs::create_dir_all(root.join("data")).map_err(|e| e.to_string())?;
        let hog = build_static_c(
            dir,
            "hog",
            r#"#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(void) {
  for (int i = 0; i < 300; i++) { char *p = malloc(1 << 20); if (!p) { puts("malloc failed"); return 3; } memset(p, 1, 1 << 20); }
  puts("survived");
  return 0;
}
"#,
        );
        std::fs::copy(&hog, root.join("bin/hog")).map_err(|e| e.to_string())?;
        Ok(())
    })?;
    Ok(Docker { runtime })
}

fn docker() -> Option<&'static Docker> {
    static D: OnceLock<Result<Docker, String>> = OnceLock::new();
    docker::or_skip(D.get_or_init(setup), "docker end-to-end test")
}

impl Docker {
    fn cmd(&self, args: &[&str]) -> Run {
        let mut c = Command::new("docker");
        c.args(args);
        run_cmd(c, Duration::from_secs(120))
    }
    /// `docker run --rm --runtime=<ours> --network=none FLAGS IMAGE ARGS`.
    fn run(&self, flags: &[&str], args: &[&str]) -> Run {
        let rt = format!("--runtime={}", self.runtime);
        let mut v = vec!["run", "--rm", rt.as_str(), "--network=none"];
        v.extend(flags);
        v.push(IMAGE);
        v.extend(args);
        self.cmd(&v)
    }
    /// `docker run -d` of a container named rvisor-test-TAG-<pid> (any old one removed
    /// first) with our runtime, `--network=none` and FLAGS; returns its name.
    fn start(&self, tag: &str, flags: &[&str], args: &[&str]) -> String {
        let name = format!("rvisor-test-{tag}-{}", std::process::id());
        let _ = self.cmd(&["rm", "-f", &name]);
        let rt = format!("--runtime={}", self.runtime);
        let mut v = vec!["run", "-d", "--name", &name, &rt, "--network=none"];
        v.extend(flags);
        v.push(IMAGE);
        v.extend(args);
        let r = self.cmd(&v);
        assert!(r.status.success(), "{}", r.describe());
        name
    }
}

fn our_processes() -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", rvisor_bin()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn docker_run_kernel_status_env_workdir_user_hostname() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = d.run(&[], &["uname", "-r"]);
    assert_eq!(r.stdout, "6.8.0-rvisor\n", "{}", r.describe());
    let r = d.run(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(r.shell_status(), 7, "{}", r.describe());
    let r = d.run(
        &[
            "-e",
            "GREETING=hi",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--hostname",
            "box7",
        ],
        &[
            "sh",
            "-c",
            "echo $GREETING $(pwd) $(id -u):$(id -g) $(hostname) $(cat /etc/hostname)",
        ],
    );
    assert_eq!(
        r.stdout,
        "hi /tmp 1000:1000 box7 box7\n",
        "{}",
        r.describe()
    );
    // -i: the standard input reaches the workload.
    let rt = format!("--runtime={}", d.runtime);
    let mut c = Command::new("sh");
    c.args([
        "-c",
        &format!("echo abc | docker run --rm -i {rt} --network=none {IMAGE} sh -c 'read x; echo got $x; exit 2'"),
    ]);
    let r = run_cmd(c, Duration::from_secs(120));
    assert_eq!(r.shell_status(), 2, "{}", r.describe());
    assert_eq!(r.stdout, "got abc\n", "{}", r.describe());
    // --init: docker-init is bind-mounted from the host (a file bind mount, executed
    // through mmap of a gofer-served file) and runs as pid 1.
    let r = d.run(
        &["--init"],
        &["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; exit 4"],
    );
    assert_eq!(r.shell_status(), 4, "{}", r.describe());
    assert!(
        r.stdout.starts_with("/sbin/docker-init"),
        "{}",
        r.describe()
    );
}

#[test]
fn docker_volumes_readonly_root_and_tmpfs() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let host = TempDir::new("docker-vol");
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let v = format!("{}:/data", host.path().display());
    let r = d.run(
        &["-v", &v],
        &["sh", "-c", "cat /data/in && echo written > /data/out"],
    );
    assert_eq!(r.stdout, "from host\n", "{}", r.describe());
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap_or_default(),
        "written\n",
        "a file written in the volume appears on the host"
    );
    let ro = format!("{}:/data:ro", host.path().display());
    let r = d.run(&["-v", &ro], &["sh", "-c", "echo x > /data/ro"]);
    assert_ne!(r.shell_status(), 0, "{}", r.describe());
    assert!(
        r.stderr.contains("Read-only file system"),
        "{}",
        r.describe()
    );
    assert!(!host.join("ro").exists());
    let r = d.run(&["--read-only"], &["touch", "/probe"]);
    assert_ne!(r.shell_status(), 0, "{}", r.describe());
    assert!(
        r.stderr.contains("Read-only file system"),
        "{}",
        r.describe()
    );
    let r = d.run(
        &["--read-only", "--tmpfs", "/scratch"],
        &[
            "sh",
            "-c",
            "echo s > /scratch/f && cat /scratch/f && grep -c ' /scratch ' /proc/mounts",
        ],
    );
    assert_eq!(r.stdout, "s\n1\n", "{}", r.describe());
    // size= and mode=: ENOSPC past the size, statfs shows it, the mode is the root's.
    let r = d.run(
        &["--tmpfs", "/scratch:size=1m,mode=1770"],
        &[
            "sh",
            "-c",
            "stat -c %a /scratch; stat -f -c '%b %f' /scratch; \
             dd if=/dev/zero of=/scratch/f bs=64k count=20 2>/dev/null; echo dd=$?; \
             stat -c %s /scratch/f; stat -f -c '%b %f' /scratch",
        ],
    );
    assert_eq!(
        r.stdout,
        "1770\n256 256\ndd=1\n1048576\n256 0\n",
        "{}",
        r.describe()
    );
}

#[test]
fn docker_readonly_and_masked_proc_paths() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // docker's readonlyPaths include /proc/sys: writing there is EROFS, reading works.
    // Its maskedPaths (/proc/kcore, /proc/keys, ...) do not exist in the Sentry's /proc:
    // nothing there to hide.
    let r = d.run(
        &["--hostname", "boxp"],
        &[
            "sh",
            "-c",
            "cat /proc/sys/kernel/hostname; echo h > /proc/sys/kernel/hostname; \
             grep -c ' /proc/sys ' /proc/mounts; cat /proc/kcore /proc/keys 2>&1 | grep -c 'No such file'",
        ],
    );
    assert_eq!(r.stdout, "boxp\n1\n2\n", "{}", r.describe());
    assert!(
        r.stderr
            .contains("/proc/sys/kernel/hostname: Read-only file system"),
        "{}",
        r.describe()
    );
}

/// linux.sysctl reaches the Sentry's /proc/sys: docker's own default
/// (net.ipv4.ping_group_range, so an unprivileged ping works) and --sysctl; one the
/// Sentry does not have is logged in its kernel log, and the container still runs with
/// clean output.
#[test]
fn docker_sysctls_reach_the_sandbox() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = d.run(
        &[
            "--sysctl",
            "fs.mqueue.msg_max=20",
            "--sysctl",
            "net.ipv4.ip_forward=1",
        ],
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ping_group_range /proc/sys/fs/mqueue/msg_max; \
             dmesg | grep -c 'sysctl net.ipv4.ip_forward: not emulat[e]d'",
        ],
    );
    assert_eq!(r.stdout, "0\t2147483647\n20\n1\n", "{}", r.describe());
    assert_eq!(r.stderr, "", "{}", r.describe());
}

#[test]
fn docker_cgroup_shows_the_memory_limit() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let script = "cat /sys/fs/cgroup/memory.max /proc/self/cgroup; grep -c cgroup2 /proc/mounts";
    let r = d.run(&["--memory", "64m"], &["sh", "-c", script]);
    assert_eq!(r.stdout, "67108864\n0::/\n1\n", "{}", r.describe());
    let r = d.run(&[], &["sh", "-c", script]);
    assert_eq!(r.stdout, "max\n0::/\n1\n", "{}", r.describe());
}

#[test]
fn docker_detached_exec_logs_pause_stop_rm() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = d.start("det", &[], &["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo started; echo state > /tmp/s; while true; do sleep 0.1; done"]);
    let start = Instant::now();
    loop {
        let l = d.cmd(&["logs", &name]);
        if l.stdout.contains("started") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            l.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = d.cmd(&["exec", &name, "cat", "/tmp/s"]);
    assert_eq!(r.stdout, "state\n", "{}", r.describe());
    let r = d.cmd(&["exec", &name, "sh", "-c", "exit 5"]);
    assert_eq!(r.shell_status(), 5, "{}", r.describe());
    let r = d.cmd(&[
        "exec",
        "-u",
        "1000",
        "-e",
        "X=y",
        &name,
        "sh",
        "-c",
        "echo $X $(id -u)",
    ]);
    assert_eq!(r.stdout, "y 1000\n", "{}", r.describe());
    let r = d.cmd(&["pause", &name]);
    assert!(r.status.success(), "{}", r.describe());
    let r = d.cmd(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(r.stdout.trim(), "paused", "{}", r.describe());
    let r = d.cmd(&["unpause", &name]);
    assert!(r.status.success(), "{}", r.describe());
    let r = d.cmd(&["exec", &name, "echo", "alive"]);
    assert_eq!(r.stdout, "alive\n", "{}", r.describe());
    let r = d.cmd(&["stop", "-t", "20", &name]);
    assert!(r.status.success(), "{}", r.describe());
    let r = d.cmd(&["logs", &name]);
    assert!(
        r.stdout.contains("got TERM"),
        "the TERM trap ran: {}",
        r.describe()
    );
    let r = d.cmd(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(r.stdout.trim(), "0", "{}", r.describe());
    let r = d.cmd(&["rm", &name]);
    assert!(r.status.success(), "{}", r.describe());
}

#[test]
fn docker_top_lists_each_process() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = d.start(
        "top",
        &[],
        &["sh", "-c", "sleep 1000 & sleep 2000 & echo up; wait"],
    );
    let start = Instant::now();
    while !d.cmd(&["logs", &name]).stdout.contains("up") {
        assert!(start.elapsed() < Duration::from_secs(30), "no output");
        std::thread::sleep(Duration::from_millis(100));
    }
    // docker top filters the host's ps by the pids `rvisor ps --format json` gives:
    // one line per process of the container (the stub holding it, named after it).
    let r = d.cmd(&["top", &name, "-o", "pid,comm"]);
    let _ = d.cmd(&["rm", "-f", &name]);
    assert!(r.status.success(), "{}", r.describe());
    let mut comms: Vec<&str> = r
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    comms.sort_unstable();
    assert_eq!(comms, ["sh", "sleep", "sleep"], "{}", r.describe());
}

#[test]
fn docker_exec_keeps_the_containers_capabilities() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = d.start(
        "caps",
        &[
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CHOWN",
            "--security-opt",
            "no-new-privileges",
        ],
        &["sleep", "1000"],
    );
    // docker exec passes the container's process settings in --process.
    let r = d.cmd(&[
        "exec",
        &name,
        "grep",
        "-E",
        "^(CapEff|CapBnd|NoNewPrivs)",
        "/proc/self/status",
    ]);
    let r2 = d.cmd(&[
        "exec",
        "--privileged",
        &name,
        "grep",
        "^CapEff",
        "/proc/self/status",
    ]);
    let _ = d.cmd(&["rm", "-f", &name]);
    assert_eq!(
        r.stdout,
        "CapEff:\t0000000000000001\nCapBnd:\t0000000000000001\nNoNewPrivs:\t1\n",
        "{}",
        r.describe()
    );
    // --privileged: every capability docker knows (0..=37 for docker 20.10).
    let eff = r2
        .stdout
        .trim()
        .strip_prefix("CapEff:\t")
        .and_then(|v| u64::from_str_radix(v, 16).ok());
    assert!(
        eff.is_some_and(|v| v & 0x3f_ffff_ffff == 0x3f_ffff_ffff),
        "{}",
        r2.describe()
    );
}

#[test]
fn docker_exec_detached_and_terminal() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = format!("--runtime={}", d.runtime);
    let name = d.start("tty", &[], &["sh", "-c", "while true; do sleep 0.1; done"]);
    let r = d.cmd(&["exec", "-d", &name, "sh", "-c", "echo bg > /tmp/bg"]);
    assert!(r.status.success(), "{}", r.describe());
    let start = Instant::now();
    loop {
        let r = d.cmd(&["exec", &name, "cat", "/tmp/bg"]);
        if r.stdout == "bg\n" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // -it: a terminal through the console socket (script(1) gives docker a terminal).
    if Command::new("script").arg("--version").output().is_ok() {
        let run_it = format!(
            "docker run --rm -it {rt} --network=none {IMAGE} sh -c 'test -t 0 && test -t 1 && echo on-a-tty; exit 3'"
        );
        let mut c = Command::new("script");
        c.args(["-eqc", &run_it, "/dev/null"]);
        let r = run_cmd(c, Duration::from_secs(120));
        assert_eq!(r.shell_status(), 3, "{}", r.describe());
        assert!(r.stdout.contains("on-a-tty"), "{}", r.describe());
        let exec_it = format!("docker exec -it {name} sh -c 'test -t 0 && echo exec-tty; exit 4'");
        let mut c = Command::new("script");
        c.args(["-eqc", &exec_it, "/dev/null"]);
        let r = run_cmd(c, Duration::from_secs(120));
        assert_eq!(r.shell_status(), 4, "{}", r.describe());
        assert!(r.stdout.contains("exec-tty"), "{}", r.describe());
    } else {
        skip("the -it part of docker_exec_detached_and_terminal: script(1) is not installed");
    }
    let r = d.cmd(&["rm", "-f", &name]);
    assert!(r.status.success(), "{}", r.describe());
}

#[test]
fn docker_memory_limit_oom_kills_and_docker_stays_healthy() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = d.run(&["--memory", "64m"], &["hog"]);
    assert_eq!(r.shell_status(), 137, "{}", r.describe());
    assert!(!r.stdout.contains("survived"), "{}", r.describe());
    let r = d.run(&[], &["hog"]);
    assert_eq!(r.stdout, "survived\n", "without a limit: {}", r.describe());
    assert!(d.cmd(&["info"]).status.success(), "docker stays healthy");
}

#[test]
fn docker_unknown_network_mode_fails_clearly() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A runtime of our own whose flags name a network mode that does not exist.
    let bad = docker::register_runtime("rvisor-test-badnet", &["--network", "bogus"])
        .expect("registering the runtime");
    let start = Instant::now();
    let rt = format!("--runtime={bad}");
    let r = d.cmd(&["run", "--rm", &rt, IMAGE, "true"]);
    assert_ne!(r.shell_status(), 0, "{}", r.describe());
    assert!(
        r.stderr.contains("unknown network mode \"bogus\""),
        "{}",
        r.describe()
    );
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn docker_twenty_containers_leave_nothing_behind() {
    let Some(d) = docker() else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = our_processes();
    let rt = format!("--runtime={}", d.runtime);
    let mut ids = vec![];
    for i in 0..20 {
        let name = format!("rvisor-test-loop-{}-{i}", std::process::id());
        let r = d.cmd(&[
            "run",
            "-d",
            "--name",
            &name,
            &rt,
            "--network=none",
            IMAGE,
            "sh",
            "-c",
            "echo $HOSTNAME; sleep 0.2",
        ]);
        assert!(r.status.success(), "{}", r.describe());
        ids.push(r.stdout.trim().to_string());
        let r = d.cmd(&["wait", &name]);
        assert_eq!(r.stdout.trim(), "0", "{}", r.describe());
        let r = d.cmd(&["rm", &name]);
        assert!(r.status.success(), "{}", r.describe());
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = our_processes();
    assert!(
        after.len() <= before.len(),
        "processes left behind:\n{}",
        after.join("\n")
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for id in &ids {
        assert!(!mounts.contains(id.as_str()), "a mount of {id} is left");
        for root in [
            "/var/run/docker/runtime-runc/moby",
            "/run/docker/runtime-runc/moby",
            "/var/run/rvisor",
        ] {
            assert!(
                !std::path::Path::new(root).join(id).exists(),
                "state of {id} left in {root}"
            );
        }
    }
}

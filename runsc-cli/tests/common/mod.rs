//! Shared helpers for the `rvisor do` end-to-end tests: run a command natively and in
//! the sandbox with a hard timeout, and compare what comes out.

#![allow(dead_code)]

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every run (native or sandboxed) is killed and the test fails after this long.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How long the output pipes may stay open after the child exited (a process left
/// behind holding them is a bug: nothing may keep running after `rvisor` exits).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub const BUSYBOX: &str = "/bin/busybox";

pub mod docker;

/// An OCI bundle whose rootfs holds busybox-static (as /bin/busybox and /bin/sh), with
/// the config `rvisor spec` writes, `process.terminal` off, then changed by `edit`.
pub fn busybox_bundle(tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> TempDir {
    let dir = TempDir::new(tag);
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    let r = run_cmd(
        {
            let mut c = Command::new(rvisor_bin());
            c.args(["spec", "--bundle"]).arg(dir.path());
            c
        },
        TIMEOUT,
    );
    assert!(r.status.success(), "{}", r.describe());
    let cfg = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["process"]["terminal"] = false.into();
    edit(&mut v);
    std::fs::write(&cfg, v.to_string()).unwrap();
    dir
}

/// Say why a test (or part of one) is skipped, past the test harness's capture, so
/// the reason shows in the suite's output.
pub fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

pub fn rvisor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rvisor")
}

thread_local! {
    /// The platform this test thread runs the sandbox on (see `kvm_tests!`).
    static PLATFORM: Cell<&'static str> = const { Cell::new("ptrace") };
}

/// The platform the current test runs on: "ptrace", or "kvm" inside `on_kvm`.
pub fn platform() -> &'static str {
    PLATFORM.with(|p| p.get())
}

/// `rvisor --platform P` for the current test's platform; add the command and its
/// arguments.
pub fn rvisor() -> Command {
    let mut c = Command::new(rvisor_bin());
    c.args(["--platform", platform()]);
    c
}

/// Whether the KVM platform works here. The first call finds out (by opening /dev/kvm
/// and running `rvisor --platform kvm do /bin/true`) and, when it does not, prints the
/// reason once, past the test harness's capture. A /dev/kvm that opens but a platform
/// that fails for another reason is a test failure, not a skip.
pub fn kvm_usable() -> bool {
    static USABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = USABLE.get_or_init(|| {
        let r = probe_kvm();
        if let Err(why) = &r {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the kvm:: copies of these tests: KVM unusable here: {why}"
            );
        }
        r
    });
    r.is_ok()
}

fn probe_kvm() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    let mut c = Command::new(rvisor_bin());
    c.args(["--platform", "kvm", "do", "/bin/true"]);
    let r = run_cmd(c, TIMEOUT);
    if r.status.success() {
        return Ok(());
    }
    if r.stderr.contains("KVM platform") {
        return Err(r.stderr.trim().to_string());
    }
    panic!(
        "/dev/kvm opens but the KVM platform fails: {}",
        r.describe()
    );
}

/// Run `test` with the sandbox on the KVM platform (nothing, once the reason was
/// printed, where KVM is unusable).
pub fn on_kvm(test: fn()) {
    if !kvm_usable() {
        return;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PLATFORM.with(|p| p.set("ptrace"));
        }
    }
    let _reset = Reset;
    PLATFORM.with(|p| p.set("kvm"));
    test();
}

/// `kvm_tests!(a, b, ...)` adds `kvm::a`, `kvm::b`, ...: the same test functions with
/// every sandbox of theirs (`sandboxed`, `compare*`, `rvisor()`) on the KVM platform.
#[macro_export]
macro_rules! kvm_tests {
    ($($name:ident),* $(,)?) => {
        /// The tests above, on the KVM platform.
        mod kvm {
            $(
                #[test]
                fn $name() {
                    $crate::common::on_kvm(super::$name)
                }
            )*
        }
    };
}

/// The outcome of one run.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The status as a shell reports it: the exit code, or 128+N after death by signal N.
    pub fn shell_status(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => -1,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n  status: {:?} (shell status {})\n  elapsed: {:?}\n  stdout ({} bytes):\n{}\n  stderr ({} bytes):\n{}",
            self.what,
            self.status,
            self.shell_status(),
            self.elapsed,
            self.stdout.len(),
            clip(&self.stdout),
            self.stderr.len(),
            clip(&self.stderr),
        )
    }
}

fn clip(s: &str) -> String {
    const MAX: usize = 4000;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... [{} more bytes]", &s[..end], s.len() - end)
    }
}

fn reader(mut r: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

fn kill_group(pgid: u32) {
    // SAFETY: plain kill(2) on the process group we created for the child.
    unsafe {
        libc::kill(-(pgid as i32), libc::SIGKILL);
    }
}

/// Run `cmd` (stdin /dev/null, stdout and stderr captured) in its own process group.
/// Panics, after killing the group, if it takes longer than `timeout` or leaves its
/// output pipes open after exiting.
pub fn run_cmd(mut cmd: Command, timeout: Duration) -> Run {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let pgid = child.id();
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let r_out = reader(child.stdout.take().unwrap(), out.clone());
    let r_err = reader(child.stderr.take().unwrap(), err.clone());
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > timeout {
            kill_group(pgid);
            let _ = child.kill();
            let st = child.wait();
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "TIMEOUT: {what} still running after {timeout:?}; killed ({st:?})\n  stdout so far:\n{}\n  stderr so far:\n{}",
                clip(&text(&out)),
                clip(&text(&err))
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let drain_start = Instant::now();
    while !(r_out.is_finished() && r_err.is_finished()) {
        if drain_start.elapsed() > DRAIN_TIMEOUT {
            kill_group(pgid);
            panic!(
                "{what} exited ({status:?}) but its stdout/stderr stayed open for {DRAIN_TIMEOUT:?}: \
                 something it started is still running\n  stdout:\n{}\n  stderr:\n{}",
                clip(&text(&out)),
                clip(&text(&err))
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Run {
        what,
        status,
        stdout: text(&out),
        stderr: text(&err),
        elapsed,
    }
}

/// `argv` run directly on the host.
pub fn native(argv: &[&str]) -> Run {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    run_cmd(c, TIMEOUT)
}

/// `rvisor --platform P do argv...` on the current test's platform.
pub fn sandboxed(argv: &[&str]) -> Run {
    let mut c = rvisor();
    c.arg("do").args(argv);
    run_cmd(c, TIMEOUT)
}

/// Run `argv` natively and under `rvisor do` (on the current test's platform); assert equal stdout and exit status.
/// Returns (native, sandboxed) for further checks.
pub fn compare(argv: &[&str]) -> (Run, Run) {
    let n = native(argv);
    let s = sandboxed(argv);
    assert_same(&n, &s);
    (n, s)
}

pub fn assert_same(n: &Run, s: &Run) {
    assert_eq!(
        s.shell_status(),
        n.shell_status(),
        "exit status differs\n--- native: {}\n--- rvisor: {}",
        n.describe(),
        s.describe()
    );
    assert!(
        s.stdout == n.stdout,
        "stdout differs\n--- native: {}\n--- rvisor: {}\n--- first differing line: {}",
        n.describe(),
        s.describe(),
        first_diff(&n.stdout, &s.stdout)
    );
}

fn first_diff(a: &str, b: &str) -> String {
    let (mut la, mut lb) = (a.lines(), b.lines());
    let mut i = 1;
    loop {
        match (la.next(), lb.next()) {
            (None, None) => return "none (only trailing bytes differ)".into(),
            (x, y) if x != y => return format!("line {i}: native {x:?} vs rvisor {y:?}"),
            _ => i += 1,
        }
    }
}

/// `busybox sh -c script`, natively and sandboxed; asserts same stdout and status.
pub fn compare_sh(script: &str) -> (Run, Run) {
    compare(&[BUSYBOX, "sh", "-c", script])
}

/// A fresh directory on the host's /tmp (which the sandbox sees through the gofer),
/// removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvisor-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compile `src` with `gcc -static -O2 -pthread` into the temp dir; panics (fails the
/// test) if gcc is missing or the compile fails.
pub fn build_static_c(dir: &TempDir, name: &str, src: &str) -> String {
    let c = dir.join(&format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&c, src).unwrap();
    let mut cmd = Command::new("gcc");
    cmd.args(["-static", "-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(&c);
    let r = run_cmd(cmd, Duration::from_secs(120));
    assert!(
        r.status.success() && exe.exists(),
        "gcc failed (is gcc with a static libc installed?): {}",
        r.describe()
    );
    exe.to_string_lossy().into_owned()
}

//! End-to-end: real programs through `rvisor do`, compared with the native run.

mod common;

use common::*;
use std::process::Command;

#[test]
fn uname_a_reports_rvisor_kernel() {
    let out = rvisor().args(["do", "uname", "-a"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("Linux "), "{s}");
    assert!(s.contains("-rvisor"), "{s}");
    let native = Command::new("uname").arg("-m").output().unwrap();
    assert!(
        s.contains(String::from_utf8_lossy(&native.stdout).trim()),
        "{s}"
    );
}

#[test]
fn ls_root_matches_native() {
    let out = rvisor().args(["do", "ls", "/"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let native = Command::new("ls").arg("/").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&native.stdout)
    );
}

#[test]
fn missing_command_is_127() {
    let out = rvisor()
        .args(["do", "no-such-command-rvisor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "rvisor: no-such-command-rvisor: No such file or directory"
    );
}

fn procs_with_marker(marker: &str) -> Vec<String> {
    let mut v = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        // The marker is in the environment of every process of the run: the CLI, the
        // gofer, the sandbox supervisor, the Sentry and its stub processes.
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            if String::from_utf8_lossy(&env).contains(marker) {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                v.push(format!(
                    "{}: {}",
                    e.file_name().to_string_lossy(),
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
    }
    v
}

fn wait_gone(marker: &str) -> Vec<String> {
    for _ in 0..50 {
        let left = procs_with_marker(marker);
        if left.is_empty() {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    procs_with_marker(marker)
}

#[test]
fn sigterm_to_rvisor_reaches_the_workload() {
    let marker = "rvisor-sigterm-marker";
    let mut child = rvisor()
        .env("RVISOR_TEST_MARKER", marker)
        .args(["do", "/bin/busybox", "sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(143), "{st:?}");
    assert!(
        wait_gone(marker).is_empty(),
        "left running: {:?}",
        procs_with_marker(marker)
    );
}

#[test]
fn nothing_left_when_rvisor_is_killed() {
    let marker = "rvisor-sigkill-marker";
    let mut child = rvisor()
        .env("RVISOR_TEST_MARKER", marker)
        .args(["do", "/bin/busybox", "sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        !procs_with_marker(marker).is_empty(),
        "the sandbox should be running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_gone(marker).is_empty(),
        "left running: {:?}",
        procs_with_marker(marker)
    );
}

kvm_tests!(
    uname_a_reports_rvisor_kernel,
    ls_root_matches_native,
    missing_command_is_127,
    sigterm_to_rvisor_reaches_the_workload,
    nothing_left_when_rvisor_is_killed,
);

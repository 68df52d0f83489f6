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

/// With `--huge-pages on` the memory file is a file on a `huge=advise` tmpfs that was
/// mounted only in the Sentry's mount namespace and detached there at once: no process
/// of the run, nor the host, has it mounted. With `off` it is a memfd.
#[test]
fn memory_file_is_on_a_huge_tmpfs_mounted_nowhere() {
    use std::io::BufRead;
    let off = rvisor()
        .args(["--huge-pages", "off", "do", "/bin/sh", "-c", "dmesg"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&off.stdout);
    assert!(s.contains("reserved (sparse memfd)"), "{s}");
    let marker = "rvisor-memfile-marker";
    let mut child = rvisor()
        .env("RVISOR_TEST_MARKER", marker)
        .args([
            "--huge-pages",
            "on",
            "do",
            "/bin/sh",
            "-c",
            "dmesg; echo ready; read x",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut dmesg = String::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && line != "ready\n" {
        dmesg.push_str(&line);
        line.clear();
    }
    let procs = procs_with_marker(marker);
    let mounted: Vec<String> = std::iter::once("self".to_string())
        .chain(
            procs
                .iter()
                .map(|p| p.split(':').next().unwrap().to_string()),
        )
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .is_ok_and(|m| m.contains("rvisor-memory"))
        })
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dmesg.contains("memory file 64G reserved (sparse tmpfs file, 2M pages for large runs)"),
        "{dmesg}"
    );
    assert!(procs.len() >= 3, "{procs:?}");
    assert!(mounted.is_empty(), "mounted in {mounted:?}");
}

kvm_tests!(
    uname_a_reports_rvisor_kernel,
    ls_root_matches_native,
    missing_command_is_127,
    sigterm_to_rvisor_reaches_the_workload,
    nothing_left_when_rvisor_is_killed,
    memory_file_is_on_a_huge_tmpfs_mounted_nowhere,
);

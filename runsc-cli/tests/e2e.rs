//! End-to-end: real programs through `rvisor do`, compared with the native run.

use std::process::Command;

fn rvisor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvisor"))
}

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

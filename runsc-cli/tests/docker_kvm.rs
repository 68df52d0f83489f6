//! Docker on the KVM platform (issue 7): rvisor registered with
//! `rvisor install --runtime <name> -- --platform kvm` (docker's runtimeArgs), running
//! busybox. The set-up follows docker.rs (dockerd started when not running, never
//! restarted; the busybox image imported when missing) with a runtime name of its own.
//! Skipped loudly where docker or KVM cannot run (RVISOR_REQUIRE_DOCKER=1 makes a
//! docker that cannot run a failure).

mod common;
use common::*;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// An image of its own: docker.rs builds a fuller one under another name.
const IMAGE: &str = "rvisor-kvm-test-busybox:latest";

/// The runtime name registered for the binary under test, with `--platform kvm`.
fn setup() -> Result<String, String> {
    let runtime = docker::register_runtime("rvisor-kvm-test", &["--platform", "kvm"])?;
    docker::import_busybox(IMAGE, |_, _| Ok(()))?;
    Ok(runtime)
}

fn runtime() -> Option<&'static str> {
    static D: OnceLock<Result<String, String>> = OnceLock::new();
    docker::or_skip(D.get_or_init(setup), "docker on kvm").map(|s| s.as_str())
}

#[test]
fn docker_runs_busybox_on_kvm() {
    if !kvm_usable() {
        return;
    }
    let Some(rt) = runtime() else { return };
    let rt = format!("--runtime={rt}");
    let mut c = Command::new("docker");
    c.args([
        "run",
        "--rm",
        &rt,
        "--network=none",
        IMAGE,
        "sh",
        "-c",
        "uname -r; cat /proc/cmdline; seq 1 1000 | wc -l; exit 5",
    ]);
    let r = run_cmd(c, Duration::from_secs(120));
    assert_eq!(r.shell_status(), 5, "{}", r.describe());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.describe());
    assert_eq!(lines[0], "6.8.0-rvisor", "{}", r.describe());
    assert!(
        lines[1].starts_with("rvisor platform=kvm "),
        "{}",
        r.describe()
    );
    assert_eq!(lines[2], "1000", "{}", r.describe());
}

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
use std::time::{Duration, Instant};

/// An image of its own: docker.rs builds a fuller one under another name.
const IMAGE: &str = "rvisor-kvm-test-busybox:latest";

fn sh(cmd: &str) -> Run {
    let mut c = Command::new("sh");
    c.args(["-c", cmd]);
    run_cmd(c, Duration::from_secs(600))
}

fn docker_info_ok() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The runtime name registered for the binary under test, with `--platform kvm`.
fn setup() -> Result<String, String> {
    if Command::new("docker").arg("--version").output().is_err() {
        return Err("docker is not installed (the docker tests install it)".into());
    }
    if !docker_info_ok() {
        let _ = Command::new("sh")
            .args(["-c", "nohup dockerd >/tmp/rvisor-test-dockerd.log 2>&1 &"])
            .status();
        let start = Instant::now();
        while !docker_info_ok() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err("dockerd did not come up (see /tmp/rvisor-test-dockerd.log)".into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let bin = rvisor_bin();
    let tag: u32 = bin
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let runtime = format!("rvisor-kvm-test-{tag:08x}");
    let path = "/etc/docker/daemon.json";
    let v: serde_json::Value = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let want_args = serde_json::json!(["--platform", "kvm"]);
    if v["runtimes"][&runtime]["path"] != bin || v["runtimes"][&runtime]["runtimeArgs"] != want_args
    {
        let mut c = Command::new(bin);
        c.args(["install", "--runtime", &runtime, "--", "--platform", "kvm"]);
        let r = run_cmd(c, Duration::from_secs(60));
        if !r.status.success() {
            return Err(format!("rvisor install failed: {}", r.describe()));
        }
        let r = sh("kill -HUP $(pidof dockerd)");
        if !r.status.success() {
            return Err(format!("cannot reload dockerd: {}", r.describe()));
        }
    }
    let start = Instant::now();
    loop {
        let out = Command::new("docker")
            .args(["info", "--format", "{{json .Runtimes}}"])
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&out.stdout).contains(&runtime) {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("dockerd did not pick up runtime {runtime}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let have = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        let dir = TempDir::new("docker-kvm-image");
        let root = dir.join("root");
        for d in ["bin", "tmp", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).map_err(|e| format!("{BUSYBOX}: {e}"))?;
        for applet in ["sh", "cat", "echo", "uname", "seq", "wc", "sleep"] {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
        let r = sh(&format!(
            "tar -C {} -c . | docker import - {IMAGE}",
            root.display()
        ));
        if !r.status.success() {
            return Err(format!("docker import failed: {}", r.describe()));
        }
    }
    Ok(runtime)
}

fn runtime() -> Option<&'static str> {
    static D: OnceLock<Result<String, String>> = OnceLock::new();
    match D.get_or_init(setup) {
        Ok(d) => Some(d),
        Err(why) => {
            if std::env::var("RVISOR_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
                panic!("docker is required but cannot run: {why}");
            }
            eprintln!("SKIPPED: docker on kvm: docker cannot run here: {why}");
            None
        }
    }
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

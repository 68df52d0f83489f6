//! Set-up shared by the docker tests (docker.rs, docker_net.rs, docker_kvm.rs): docker.io
//! installed when missing, dockerd started when not running (never restarted: other
//! users share it), the binary under test registered with `rvisor install` under a
//! runtime name of its own, and busybox images made with `docker import`.

use super::*;

pub fn sh(cmd: &str) -> Run {
    let mut c = Command::new("sh");
    c.args(["-c", cmd]);
    run_cmd(c, Duration::from_secs(600))
}

fn docker_info_ok() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// docker installed and dockerd answering.
fn ensure_dockerd() -> Result<(), String> {
    if Command::new("docker").arg("--version").output().is_err() {
        let r = sh("DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io");
        if !r.status.success() {
            return Err(format!(
                "docker is not installed and apt-get failed: {}",
                r.describe()
            ));
        }
    }
    if !docker_info_ok() {
        // Started in the background, detached from the test.
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
    Ok(())
}

/// Docker running, with the binary under test registered as `PREFIX-<hash of its
/// path>` (so worktrees do not collide) and `args` as its runtimeArgs. Returns the name.
pub fn register_runtime(prefix: &str, args: &[&str]) -> Result<String, String> {
    ensure_dockerd()?;
    let bin = rvisor_bin();
    let tag: u32 = bin
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let runtime = format!("{prefix}-{tag:08x}");
    let v: serde_json::Value = std::fs::read_to_string("/etc/docker/daemon.json")
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let want_args = match args.is_empty() {
        true => serde_json::Value::Null,
        false => serde_json::json!(args),
    };
    let entry = &v["runtimes"][&runtime];
    if entry["path"] != bin || entry["runtimeArgs"] != want_args {
        // `rvisor install` itself registers the runtime (keeping the file's other keys).
        let mut c = Command::new(bin);
        c.args(["install", "--runtime", &runtime]);
        if !args.is_empty() {
            c.arg("--").args(args);
        }
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
            return Ok(runtime);
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("dockerd did not pick up runtime {runtime}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Import `image` unless docker has it: busybox-static with every applet linked,
/// /tmp, /etc/passwd and /etc/group (root, and user 1000); `extra` adds to the root
/// directory (given with the temporary directory it lives in) before the import.
pub fn import_busybox(
    image: &str,
    extra: impl FnOnce(&TempDir, &Path) -> Result<(), String>,
) -> Result<(), String> {
    let have = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    let dir = TempDir::new("docker-image");
    let root = dir.join("root");
    for d in ["bin", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).map_err(|e| format!("{BUSYBOX}: {e}"))?;
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|e| e.to_string())?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    let write = |p: &str, s: &str| std::fs::write(root.join(p), s).map_err(|e| e.to_string());
    write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n",
    )?;
    write("etc/group", "root:x:0:\nuser:x:1000:\n")?;
    extra(&dir, &root)?;
    let r = sh(&format!(
        "tar -C {} -c . | docker import - {image}",
        root.display()
    ));
    if !r.status.success() {
        return Err(format!("docker import failed: {}", r.describe()));
    }
    Ok(())
}

/// The set-up's result, or None after saying loudly why the test is skipped (past
/// the test harness's capture, so it shows in the suite's output). With
/// RVISOR_REQUIRE_DOCKER=1 a docker that cannot run fails the test instead.
pub fn or_skip<'a, T>(r: &'a Result<T, String>, what: &str) -> Option<&'a T> {
    match r {
        Ok(v) => Some(v),
        Err(why) => {
            if std::env::var("RVISOR_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
                panic!("docker is required but cannot run: {why}");
            }
            skip(&format!("{what}: docker cannot run here: {why}"));
            None
        }
    }
}

//! OCI bundles on the KVM platform (issue 7): `rvisor --platform kvm run`, `exec` into
//! a container running on KVM, and a clear error (never a hang, nothing left behind)
//! when /dev/kvm is missing or is not KVM. Skipped, with the reason, where KVM is
//! unusable.

mod common;
use common::*;
use std::process::Command;

/// A busybox bundle that runs `args`.
fn bundle(tag: &str, args: &[&str]) -> TempDir {
    busybox_bundle(tag, |v| v["process"]["args"] = serde_json::json!(args))
}

/// `rvisor --platform kvm --root <private>`; every container left is deleted on drop.
struct Rv {
    root: TempDir,
}

impl Rv {
    fn new(tag: &str) -> Rv {
        Rv {
            root: TempDir::new(tag),
        }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(rvisor_bin());
        c.args(["--platform", "kvm", "--root"])
            .arg(self.root.join("state"));
        c
    }
    fn run(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(args);
        run_cmd(c, TIMEOUT)
    }
    fn containers(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("state"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Rv {
    fn drop(&mut self) {
        for id in self.containers() {
            let mut c = self.cmd();
            c.args(["delete", "--force", &id]);
            let _ = c.output();
        }
    }
}

#[test]
fn run_on_kvm_gives_output_status_and_the_platform() {
    if !kvm_usable() {
        return;
    }
    let rv = Rv::new("oci-kvm-run");
    let b = bundle(
        "oci-kvm-run-b",
        &[
            "sh",
            "-c",
            "echo hi $(cat /proc/cmdline); seq 3 | wc -l; exit 7",
        ],
    );
    let r = rv.run(&["run", "--bundle", &b.path().to_string_lossy(), "k1"]);
    assert_eq!(r.shell_status(), 7, "{}", r.describe());
    assert!(
        r.stdout.starts_with("hi rvisor platform=kvm ") && r.stdout.ends_with("\n3\n"),
        "{}",
        r.describe()
    );
    assert!(
        rv.containers().is_empty(),
        "run leaves no state: {:?}",
        rv.containers()
    );
}

#[test]
fn detached_container_on_kvm_takes_exec_and_kill() {
    if !kvm_usable() {
        return;
    }
    let rv = Rv::new("oci-kvm-exec");
    let b = bundle("oci-kvm-exec-b", &["/bin/busybox", "sleep", "30"]);
    let out = rv.root.join("out");
    let f = std::fs::File::create(&out).unwrap();
    let mut c = rv.cmd();
    c.args(["run", "--detach", "--bundle"])
        .arg(b.path())
        .arg("k2")
        .stdin(std::process::Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f);
    let st = c.status().unwrap();
    assert!(
        st.success(),
        "run --detach: {st:?}: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let r = rv.run(&["exec", "k2", "sh", "-c", "cat /proc/cmdline; exit 3"]);
    assert_eq!(r.shell_status(), 3, "{}", r.describe());
    assert!(r.stdout.contains("platform=kvm"), "{}", r.describe());
    let r = rv.run(&["kill", "k2", "KILL"]);
    assert!(r.status.success(), "{}", r.describe());
    let start = std::time::Instant::now();
    loop {
        let r = rv.run(&["state", "k2"]);
        if r.stdout.contains("\"stopped\"") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "not stopped after KILL: {}",
            r.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = rv.run(&["delete", "k2"]);
    assert!(r.status.success(), "{}", r.describe());
    assert!(rv.containers().is_empty(), "{:?}", rv.containers());
}

/// `rvisor --platform kvm run` in a private mount namespace where `/dev/kvm` is made
/// missing or replaced by /dev/null by `setup` (a shell snippet run as root first).
fn run_with_dev(setup: &str, tag: &str) -> Option<(Run, Rv)> {
    let rv = Rv::new(tag);
    let b = bundle(&format!("{tag}-b"), &["sh", "-c", "echo ran"]);
    let script =
        format!("{setup} && exec \"$0\" --platform kvm --root \"$1\" run --bundle \"$2\" k3");
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(rvisor_bin())
        .arg(rv.root.join("state"))
        .arg(b.path());
    let r = run_cmd(c, TIMEOUT);
    if r.stderr.starts_with("unshare:") || r.stderr.starts_with("mount:") {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "SKIPPED: {tag}: cannot hide /dev/kvm here: {}\n",
                r.stderr.trim()
            )
            .as_bytes(),
        );
        return None;
    }
    Some((r, rv))
}

#[test]
fn missing_or_unusable_dev_kvm_is_a_clear_error() {
    if !kvm_usable() {
        return;
    }
    // Missing: an empty tmpfs over /dev with just the nodes stdio needs.
    let missing = "mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 \
                   && mknod -m 666 /dev/zero c 1 5 && mknod -m 666 /dev/urandom c 1 9";
    if let Some((r, rv)) = run_with_dev(missing, "oci-kvm-missing") {
        assert_eq!(r.shell_status(), 1, "{}", r.describe());
        assert!(
            r.stderr
                .contains("KVM platform: cannot open /dev/kvm: No such file or directory"),
            "{}",
            r.describe()
        );
        assert!(!r.stdout.contains("ran"), "{}", r.describe());
        assert!(rv.containers().is_empty(), "{:?}", rv.containers());
    }
    // Not KVM: /dev/null in its place.
    let null = "mount --bind /dev/null /dev/kvm";
    if let Some((r, rv)) = run_with_dev(null, "oci-kvm-null") {
        assert_eq!(r.shell_status(), 1, "{}", r.describe());
        assert!(
            r.stderr.contains("KVM platform: /dev/kvm is not usable"),
            "{}",
            r.describe()
        );
        assert!(!r.stdout.contains("ran"), "{}", r.describe());
        assert!(rv.containers().is_empty(), "{:?}", rv.containers());
    }
}

//! OCI bundles (issue 4, first part): `rvisor spec` and `rvisor run` in the foreground.

mod common;
use common::*;
use std::process::Command;

/// A bundle whose rootfs holds busybox-static, with a config from `rvisor spec`.
fn bundle(tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> TempDir {
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

fn run(dir: &TempDir, id: &str) -> Run {
    let mut c = Command::new(rvisor_bin());
    c.args(["run", "--bundle"]).arg(dir.path()).arg(id);
    run_cmd(c, TIMEOUT)
}

#[test]
fn run_honours_args_env_cwd_user_hostname_and_status() {
    let b = bundle("oci-run", |v| {
        v["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "echo $GREETING $(hostname) $(pwd) $(id -u):$(id -g); uname -r; exit 7"
        ]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin", "GREETING=hi"]);
        v["process"]["cwd"] = "/bin".into();
        v["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        v["hostname"] = "box1".into();
    });
    let r = run(&b, "c1");
    assert_eq!(r.shell_status(), 7, "{}", r.describe());
    assert_eq!(
        r.stdout,
        "hi box1 /bin 1000:1000\n6.8.0-rvisor\n",
        "{}",
        r.describe()
    );
}

#[test]
fn readonly_root_gives_erofs_and_writable_root_stays_in_the_sandbox() {
    let ro = bundle("oci-ro", |v| {
        v["root"]["readonly"] = true.into();
        v["process"]["args"] = serde_json::json!(["sh", "-c", "touch /probe"]);
    });
    let r = run(&ro, "c2");
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    assert!(
        r.stderr.contains("Read-only file system"),
        "{}",
        r.describe()
    );
    let rw = bundle("oci-rw", |v| {
        v["root"]["readonly"] = false.into();
        v["process"]["args"] = serde_json::json!(["sh", "-c", "echo x > /probe && cat /probe"]);
    });
    let r = run(&rw, "c3");
    assert_eq!(r.stdout, "x\n", "{}", r.describe());
    assert!(
        !rw.join("rootfs/probe").exists(),
        "writes stay in the sandbox's overlay"
    );
}

#[test]
fn bad_bundles_are_clear_errors() {
    let empty = TempDir::new("oci-empty");
    let r = run(&empty, "c4");
    assert_eq!(r.shell_status(), 1);
    assert!(
        r.stderr.contains("config.json: No such file or directory"),
        "{}",
        r.describe()
    );
    std::fs::write(
        empty.join("config.json"),
        "{\"ociVersion\": \"1.0\", \"process\": [",
    )
    .unwrap();
    let r = run(&empty, "c4");
    assert_eq!(r.shell_status(), 1);
    assert!(
        r.stderr.contains("invalid JSON") && r.stderr.contains("line 1 column"),
        "{}",
        r.describe()
    );
    std::fs::write(
        empty.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"nope\"}}",
    )
    .unwrap();
    let r = run(&empty, "c4");
    assert_eq!(r.shell_status(), 1);
    assert!(
        r.stderr.contains("root") && r.stderr.contains("no such directory"),
        "{}",
        r.describe()
    );
    let b = bundle("oci-missing", |v| {
        v["process"]["args"] = serde_json::json!(["nosuchprog"])
    });
    let r = run(&b, "c5");
    assert_eq!(r.shell_status(), 127, "{}", r.describe());
    assert!(
        r.stderr.contains("nosuchprog: No such file or directory"),
        "{}",
        r.describe()
    );
    // spec refuses to overwrite.
    let mut c = Command::new(rvisor_bin());
    c.args(["spec", "--bundle"]).arg(b.path());
    let r = run_cmd(c, TIMEOUT);
    assert_eq!(r.shell_status(), 1);
    assert!(r.stderr.contains("file exists"), "{}", r.describe());
}

//! OCI bundles (issue 4, first part): `rvisor spec` and `rvisor run` in the foreground.

mod common;
use common::*;
use std::process::Command;

fn run(dir: &TempDir, id: &str) -> Run {
    let mut c = Command::new(rvisor_bin());
    c.args(["run", "--bundle"]).arg(dir.path()).arg(id);
    run_cmd(c, TIMEOUT)
}

#[test]
fn run_honours_args_env_cwd_user_hostname_and_status() {
    let b = busybox_bundle("oci-run", |v| {
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
    let ro = busybox_bundle("oci-ro", |v| {
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
    let rw = busybox_bundle("oci-rw", |v| {
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
    let b = busybox_bundle("oci-missing", |v| {
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

// ---- The lifecycle: create, start, state, kill, delete (issue 4, first item) ----

/// rvisor with a private state root; stdio to files (a created container keeps the
/// caller's stdio, so pipes would stay open).
struct Rv {
    root: TempDir,
}

impl Drop for Rv {
    /// A failed test leaves no sandbox running.
    fn drop(&mut self) {
        let state = self.root.join("state");
        for e in std::fs::read_dir(&state).into_iter().flatten().flatten() {
            let mut c = self.cmd();
            c.args(["delete", "--force"]).arg(e.file_name());
            let _ = c.output();
        }
    }
}

impl Rv {
    fn new(tag: &str) -> Rv {
        Rv {
            root: TempDir::new(tag),
        }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(rvisor_bin());
        c.arg("--root").arg(self.root.join("state"));
        c
    }
    /// Run a command that does not leave anything behind; capture its output.
    fn run(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(args);
        run_cmd(c, TIMEOUT)
    }
    /// `create` (or `run --detach`) with the container's stdout and stderr in `out`.
    fn detached(&self, args: &[&str], out: &std::path::Path) -> (i32, String) {
        let f = std::fs::File::create(out).unwrap();
        let err = self.root.join("create.err");
        let mut c = self.cmd();
        c.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let st = c.status().unwrap();
        (
            st.code().unwrap_or(-1),
            std::fs::read_to_string(&err).unwrap_or_default(),
        )
    }
    fn status(&self, id: &str) -> String {
        let r = self.run(&["state", id]);
        assert!(r.status.success(), "{}", r.describe());
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["status"].as_str().unwrap().to_string()
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// The host pids above `pid`, parent first.
fn ancestors(mut pid: i32) -> Vec<i32> {
    let mut v = vec![];
    while pid > 1 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            break;
        };
        let after = stat.rsplit(") ").next().unwrap_or("");
        pid = after
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        v.push(pid);
    }
    v
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn create_waits_at_the_gate_start_runs_kill_and_delete_clean_up() {
    let rv = Rv::new("oci-life");
    let b = busybox_bundle("oci-life-b", |v| {
        v["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "trap 'echo got TERM; exit 9' TERM; echo ran; while true; do sleep 0.1; done"
        ]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        v["annotations"] = serde_json::json!({"org.example.k": "v"});
    });
    let out = rv.root.join("out");
    let pidf = rv.root.join("pid");
    let bp = b.path().to_str().unwrap();
    let (code, err) = rv.detached(
        &[
            "create",
            "--bundle",
            bp,
            "--pid-file",
            pidf.to_str().unwrap(),
            "l1",
        ],
        &out,
    );
    assert_eq!(code, 0, "{err}");
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid), "the container's pid is alive after create");
    let r = rv.run(&["state", "l1"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "created", "{}", r.stdout);
    assert_eq!(v["pid"], pid);
    assert_eq!(v["id"], "l1");
    assert_eq!(v["ociVersion"], "1.0.2");
    assert_eq!(v["annotations"]["org.example.k"], "v");
    assert_eq!(
        v["bundle"],
        b.path().canonicalize().unwrap().to_str().unwrap()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "",
        "the workload must not run before start"
    );
    // The same id again, and commands on unknown containers.
    let (code, err) = rv.detached(&["create", "--bundle", bp, "l1"], &rv.root.join("o2"));
    assert_eq!(code, 1);
    assert!(err.contains("container l1 already exists"), "{err}");
    let r = rv.run(&["start", "nosuch"]);
    assert_eq!(r.shell_status(), 1);
    assert!(
        r.stderr.contains("container nosuch does not exist"),
        "{}",
        r.describe()
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    // start releases it.
    let r = rv.run(&["start", "l1"]);
    assert!(r.status.success(), "{}", r.describe());
    wait_for("the workload's output", || {
        std::fs::read_to_string(&out).unwrap() == "ran\n"
    });
    assert_eq!(rv.status("l1"), "running");
    let r = rv.run(&["start", "l1"]);
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    let r = rv.run(&["delete", "l1"]);
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    assert!(r.stderr.contains("not stopped"), "{}", r.describe());
    // ps: the table comes from the Sentry (pid and ppid inside, command line); json
    // gives host pids, those of the stub processes holding each process's memory,
    // named after the process (what docker top shows).
    let r = rv.run(&["ps", "l1"]);
    assert!(r.status.success(), "{}", r.describe());
    let mut lines = r.stdout.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["UID", "PID", "PPID", "TIME", "CMD"], "{}", r.stdout);
    let init: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &init[..5],
        ["0", "1", "0", "00:00:00", "sh"],
        "{}",
        r.stdout
    );
    assert_eq!(init[5], "-c", "{}", r.stdout);
    let r = rv.run(&["ps", "--format", "json", "l1"]);
    let host: Vec<i32> =
        serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{}", r.describe()));
    assert!(!host.is_empty() && !host.contains(&pid), "{}", r.describe());
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", host[0])).unwrap();
    assert_eq!(comm, "sh\n", "the first is init's stub");
    assert!(
        ancestors(host[0]).contains(&pid),
        "a stub runs under the container's pid {pid}"
    );
    // kill by name: the trap runs, the sandbox exits with the workload's status.
    let r = rv.run(&["kill", "l1", "TERM"]);
    assert!(r.status.success(), "{}", r.describe());
    wait_for("the container to stop", || rv.status("l1") == "stopped");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "ran\ngot TERM\n");
    let r = rv.run(&["kill", "l1", "KILL"]);
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    let r = rv.run(&["delete", "l1"]);
    assert!(r.status.success(), "{}", r.describe());
    assert!(
        !rv.root.join("state/l1").exists(),
        "the state directory is gone"
    );
    assert!(!alive(pid));
    let r = rv.run(&["state", "l1"]);
    assert!(r.stderr.contains("does not exist"), "{}", r.describe());
}

#[test]
fn kill_before_start_force_delete_wait_list_and_run_detach() {
    let rv = Rv::new("oci-kill");
    let b = busybox_bundle("oci-kill-b", |v| {
        v["process"]["args"] = serde_json::json!(["sh", "-c", "sleep 0.3; exit 42"]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
    });
    let bp = b.path().to_str().unwrap();
    let pidf = rv.root.join("pid");
    // A created container killed with a number never runs.
    let (code, err) = rv.detached(
        &[
            "create",
            "--bundle",
            bp,
            "--pid-file",
            pidf.to_str().unwrap(),
            "k1",
        ],
        &rv.root.join("o1"),
    );
    assert_eq!(code, 0, "{err}");
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let r = rv.run(&["kill", "k1", "9"]);
    assert!(r.status.success(), "{}", r.describe());
    wait_for("the sandbox to exit", || !alive(pid));
    assert_eq!(rv.status("k1"), "stopped");
    let r = rv.run(&["kill", "k1", "NOSUCHSIG"]);
    assert_eq!(r.shell_status(), 1);
    let r = rv.run(&["delete", "k1"]);
    assert!(r.status.success(), "{}", r.describe());
    // run --detach, list, wait for the exit code.
    let (code, err) = rv.detached(
        &["run", "--detach", "--bundle", bp, "k2"],
        &rv.root.join("o2"),
    );
    assert_eq!(code, 0, "{err}");
    let r = rv.run(&["list", "-q"]);
    assert_eq!(r.stdout, "k2\n", "{}", r.describe());
    let r = rv.run(&["list", "--format", "json"]);
    assert!(r.stdout.contains("\"id\":\"k2\""), "{}", r.describe());
    let r = rv.run(&["wait", "k2"]);
    assert_eq!(r.stdout, "42\n", "{}", r.describe());
    assert_eq!(r.shell_status(), 42);
    rv.run(&["delete", "k2"]);
    // delete --force of a running container ends every process.
    let long = busybox_bundle("oci-kill-c", |v| {
        v["process"]["args"] = serde_json::json!(["sh", "-c", "sleep 1000 & sleep 1000"]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
    });
    let (code, err) = rv.detached(
        &[
            "run",
            "--detach",
            "--bundle",
            long.path().to_str().unwrap(),
            "--pid-file",
            pidf.to_str().unwrap(),
            "k3",
        ],
        &rv.root.join("o3"),
    );
    assert_eq!(code, 0, "{err}");
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let r = rv.run(&["delete", "--force", "k3"]);
    assert!(r.status.success(), "{}", r.describe());
    assert!(!alive(pid));
    let left = Command::new("pgrep")
        .args(["-f", long.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "processes left behind");
    let r = rv.run(&["list", "-q"]);
    assert_eq!(r.stdout, "", "{}", r.describe());
    // As on Linux, the container's init gets only the signals it handles (and KILL);
    // kill --all reaches every process.
    let waiter = busybox_bundle("oci-kill-d", |v| {
        v["process"]["args"] =
            serde_json::json!(["sh", "-c", "sleep 1000 & wait $!; echo waited-$?"]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
    });
    let o4 = rv.root.join("o4");
    let (code, err) = rv.detached(
        &[
            "run",
            "--detach",
            "--bundle",
            waiter.path().to_str().unwrap(),
            "k4",
        ],
        &o4,
    );
    assert_eq!(code, 0, "{err}");
    let r = rv.run(&["kill", "k4", "TERM"]);
    assert!(r.status.success(), "{}", r.describe());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        rv.status("k4"),
        "running",
        "init ignores an unhandled SIGTERM"
    );
    let r = rv.run(&["kill", "--all", "k4", "SIGTERM"]);
    assert!(r.status.success(), "{}", r.describe());
    wait_for("k4 to stop", || rv.status("k4") == "stopped");
    assert_eq!(std::fs::read_to_string(&o4).unwrap(), "waited-143\n");
    rv.run(&["delete", "k4"]);
}

#[test]
fn log_file_json_errors_version_and_mounts() {
    let rv = Rv::new("oci-log");
    let log = rv.root.join("log.json");
    let r = rv.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "zz",
    ]);
    assert_eq!(r.shell_status(), 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().unwrap().contains("zz does not exist"),
        "{text}"
    );
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{text}");
    let r = rv.run(&["--version"]);
    assert!(
        r.stdout.contains("rvisor version") && r.stdout.contains("spec: 1.0.2"),
        "{}",
        r.describe()
    );
    // tmpfs and bind mounts; an unknown type is a clear error.
    let host = TempDir::new("oci-bind-src");
    std::fs::write(host.join("hello"), "from host\n").unwrap();
    let src = host.path().to_str().unwrap().to_string();
    let rw = TempDir::new("oci-bind-rw");
    let rw_src = rw.path().to_str().unwrap().to_string();
    let b = busybox_bundle("oci-mounts", |v| {
        v["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "cat /data/hello /etc/one; echo t > /scratch/t && cat /scratch/t; grep -c scratch /proc/mounts; echo w > /rw/new && mkdir /rw/d && mv /rw/new /rw/d/moved; touch /data/x"
        ]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        v["mounts"].as_array_mut().unwrap().extend([
            serde_json::json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777"]}),
            serde_json::json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
            serde_json::json!({"destination": "/etc/one", "type": "bind", "source": format!("{src}/hello"), "options": ["rbind"]}),
            serde_json::json!({"destination": "/rw", "type": "bind", "source": rw_src, "options": ["rbind"]}),
        ]);
    });
    let r = run(&b, "m1");
    assert_eq!(r.stdout, "from host\nfrom host\nt\n1\n", "{}", r.describe());
    assert!(
        r.stderr.contains("Read-only file system"),
        "{}",
        r.describe()
    );
    assert_eq!(
        std::fs::read_to_string(rw.join("d/moved")).unwrap(),
        "w\n",
        "writes to a bind mount reach the host"
    );
    assert!(!host.join("x").exists());
    let bad = busybox_bundle("oci-badmount", |v| {
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"destination": "/x", "type": "nfs", "source": "srv:/x"}));
    });
    let r = run(&bad, "m2");
    assert_eq!(r.shell_status(), 1);
    assert!(
        r.stderr
            .contains("file system type \"nfs\" is not supported"),
        "{}",
        r.describe()
    );
    let hostnet = busybox_bundle("oci-hostnet", |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    });
    let r = run(&hostnet, "m3");
    assert_eq!(r.shell_status(), 1);
    assert!(
        r.stderr
            .contains("the container would share the host's network")
            && r.stderr.contains("that needs --network host"),
        "{}",
        r.describe()
    );
    // A spec naming the runtime's own network namespace (the host's): its links are
    // never taken over. One that does not exist: a clear error. Neither leaves state.
    for (id, path, want) in [
        (
            "m4",
            "/proc/self/ns/net",
            "the container's network namespace is the runtime's own",
        ),
        (
            "m5",
            "/nonexistent/netns",
            "network namespace /nonexistent/netns",
        ),
    ] {
        let b = busybox_bundle(&format!("oci-netns-{id}"), |v| {
            for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == "network" {
                    n["path"] = path.into();
                }
            }
        });
        let r = run(&b, id);
        assert_eq!(r.shell_status(), 1);
        assert!(r.stderr.contains(want), "{}", r.describe());
        // (`run` above uses the default state directory.)
        let state = std::path::Path::new("/var/run/rvisor").join(id);
        assert!(!state.exists(), "{id}'s state is left");
    }
}

#[test]
fn masked_and_readonly_paths_under_proc_and_sys() {
    let b = busybox_bundle("oci-mask", |v| {
        v["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "wc -c < /proc/meminfo; ls -l /proc/meminfo | cut -c1; echo x > /proc/meminfo && echo null-write-ok; \
             ls -A /proc/sys/vm | wc -l; touch /proc/sys/vm/x; \
             cat /proc/sys/kernel/hostname; echo h > /proc/sys/kernel/hostname; \
             ls -A /sys/devices | wc -l; head -c 9 /proc/cpuinfo; echo; \
             grep -c ' /proc/sys ' /proc/mounts"
        ]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        v["hostname"] = "box9".into();
        v["linux"]["readonlyPaths"] = serde_json::json!(["/proc/sys", "/proc/nonexistent"]);
        v["linux"]["maskedPaths"] = serde_json::json!([
            "/proc/meminfo",
            "/proc/sys/vm",
            "/proc/kcore",
            "/sys/devices"
        ]);
    });
    let r = run(&b, "mask1");
    assert_eq!(r.shell_status(), 0, "{}", r.describe());
    assert_eq!(
        r.stdout,
        "0\nc\nnull-write-ok\n0\nbox9\n0\nprocessor\n1\n",
        "{}",
        r.describe()
    );
    let erofs = r.stderr.matches("Read-only file system").count();
    assert_eq!(erofs, 2, "{}", r.describe());
}

#[test]
fn tmpfs_size_nr_inodes_and_mode() {
    let tmpfs = |opts: serde_json::Value| {
        move |v: &mut serde_json::Value| {
            v["process"]["args"] = serde_json::json!([
                "sh",
                "-c",
                "stat -c %a /lim; grep ' /lim ' /proc/mounts; \
                 dd if=/dev/zero of=/lim/f bs=1k count=100 2>/dev/null; echo dd=$?; \
                 stat -c %s /lim/f; touch /lim/a /lim/b; touch /lim/c; \
                 stat -f -c '%b %f %c %d' /lim; rm /lim/f /lim/a; stat -f -c '%b %f %c %d' /lim"
            ]);
            v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/lim", "type": "tmpfs", "source": "tmpfs", "options": opts
            }));
        }
    };
    let b = busybox_bundle(
        "oci-tmpfs",
        tmpfs(serde_json::json!([
            "nosuid",
            "size=64k",
            "nr_inodes=4",
            "mode=0750"
        ])),
    );
    let r = run(&b, "t1");
    assert_eq!(r.shell_status(), 0, "{}", r.describe());
    // 16 pages; the root, f, a and b are the 4 inodes, so c finds no room.
    assert_eq!(
        r.stdout,
        "750\ntmpfs /lim tmpfs rw,nosuid,size=64k,nr_inodes=4,mode=750 0 0\ndd=1\n65536\n16 0 4 0\n16 16 4 2\n",
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("/lim/c: No space left on device"),
        "{}",
        r.describe()
    );
    // nosuid, nodev and noexec reach the mount: a program copied there does not run.
    let b = busybox_bundle("oci-tmpfs-noexec", |v| {
        v["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "grep ' /x ' /proc/mounts; cp /bin/busybox /x/bb; /x/bb true; echo rc=$?"
        ]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/x", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec"]
        }));
    });
    let r = run(&b, "t3");
    assert_eq!(
        r.stdout,
        "tmpfs /x tmpfs rw,nosuid,nodev,noexec 0 0\nrc=126\n",
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("Permission denied"), "{}", r.describe());
    let b = busybox_bundle("oci-tmpfs-bad", tmpfs(serde_json::json!(["size=lots"])));
    let r = run(&b, "t2");
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    assert!(
        r.stderr
            .contains("mount /lim: tmpfs option size=lots: not a size"),
        "{}",
        r.describe()
    );
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroup() {
    // `rvisor spec` mounts cgroup at /sys/fs/cgroup read-only, as docker does.
    let b = busybox_bundle("oci-cgroup", |v| {
        v["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "cd /sys/fs/cgroup; cat cgroup.controllers memory.max /proc/self/cgroup; \
             head -1 cgroup.procs; grep -c '^usage_usec [0-9]' cpu.stat; \
             test $(cat pids.current) -ge 1 && test $(cat memory.current) -gt 0 && echo counted; \
             grep ' /sys/fs/cgroup ' /proc/mounts; stat -f -c %t .; ls; echo 1 > memory.max"
        ]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        v["linux"]["resources"] = serde_json::json!({"memory": {"limit": 104857600}});
    });
    let r = run(&b, "cg1");
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    assert_eq!(
        r.stdout,
        "cpu memory pids\n104857600\n0::/\n1\n1\ncounted\n\
         cgroup /sys/fs/cgroup cgroup2 ro,nosuid,nodev,noexec,relatime 0 0\n63677270\n\
         cgroup.controllers\ncgroup.procs\ncgroup.threads\ncpu.stat\nmemory.current\nmemory.max\npids.current\n",
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("memory.max: Read-only file system"),
        "{}",
        r.describe()
    );
}

#[test]
fn debug_log_gets_the_runtimes_and_the_sandboxs_logs() {
    let b = busybox_bundle("oci-dlog", |v| {
        v["process"]["args"] = serde_json::json!(["sh", "-c", "echo hi"]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
    });
    let dlog = b.join("debug.log");
    std::fs::write(&dlog, "kept\n").unwrap();
    let mut c = Command::new(rvisor_bin());
    c.args(["--debug", "--debug-log"])
        .arg(&dlog)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("dl1");
    let r = run_cmd(c, TIMEOUT);
    assert_eq!(r.shell_status(), 0, "{}", r.describe());
    assert_eq!(r.stdout, "hi\n", "{}", r.describe());
    // The sandbox's debug output is not mixed into the container's standard error.
    assert!(!r.stderr.contains("DEBUG"), "{}", r.describe());
    let text = std::fs::read_to_string(&dlog).unwrap();
    assert!(text.starts_with("kept\n"), "appended: {text}");
    assert!(text.contains("launched the sandbox (pid"), "{text}");
    assert!(text.contains("boot: the Sentry starts"), "{text}");
    let r = run_cmd(
        {
            let mut c = Command::new(rvisor_bin());
            c.args(["--debug-log", "/nonexistent/dir/log", "--version"]);
            c
        },
        TIMEOUT,
    );
    assert!(
        r.stderr
            .contains("--debug-log /nonexistent/dir/log: No such file or directory"),
        "{}",
        r.describe()
    );
}

#[test]
fn hooks_process_settings_paths_and_exec() {
    let rv = Rv::new("oci-hooks");
    let marks = TempDir::new("oci-hook-marks");
    let m = marks.path().to_str().unwrap().to_string();
    let b = busybox_bundle("oci-hooks-b", |v| {
        v["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "grep -E 'CapEff|NoNewPrivs' /proc/self/status; ulimit -n; touch /etc/x 2>&1; cat /etc/passwd; echo $(pwd); while true; do sleep 0.1; done"
        ]);
        v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        v["process"]["cwd"] = "/made/here".into();
        v["process"]["noNewPrivileges"] = true.into();
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88}]);
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"]
        });
        v["linux"]["readonlyPaths"] = serde_json::json!(["/etc"]);
        v["linux"]["maskedPaths"] = serde_json::json!(["/etc/passwd", "/nonexistent"]);
        v["hooks"] = serde_json::json!({
            "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {m}/prestart")]}],
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {m}/poststart")]}],
            "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {m}/poststop")]}]
        });
    });
    std::fs::create_dir_all(b.join("rootfs/etc")).unwrap();
    std::fs::write(b.join("rootfs/etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    let out = rv.root.join("out");
    let bp = b.path().to_str().unwrap();
    let (code, err) = rv.detached(&["run", "--detach", "--bundle", bp, "h1"], &out);
    assert_eq!(code, 0, "{err}");
    let pre: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(marks.join("prestart")).unwrap()).unwrap();
    assert_eq!(pre["id"], "h1");
    assert_eq!(pre["status"], "created");
    assert!(pre["pid"].as_i64().unwrap() > 0);
    let post: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(marks.join("poststart")).unwrap()).unwrap();
    assert_eq!(post["status"], "running");
    wait_for("the workload's output", || {
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("/made/here")
    });
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("CapEff:\t0000000000000021\n"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1\n"), "{text}");
    assert!(text.contains("\n77\n"), "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(!text.contains("root:x"), "the masked file is empty: {text}");
    // exec: same kernel and file systems; status, environment, user, cwd.
    let r = rv.run(&[
        "exec",
        "--cwd",
        "/made",
        "-e",
        "K=v",
        "-u",
        "1000:1000",
        "h1",
        "sh",
        "-c",
        "echo $K $(id -u) $(pwd); ls /proc | grep -c '^[0-9]'; exit 6",
    ]);
    assert_eq!(r.shell_status(), 6, "{}", r.describe());
    assert_eq!(
        r.stdout.lines().next(),
        Some("v 1000 /made"),
        "{}",
        r.describe()
    );
    // exec: the container's capabilities and no_new_privs by default (as runc), those
    // of --process when given, --cap and --no-new-privs on top.
    let status = "grep -E '^(Uid|Groups|CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status";
    let r = rv.run(&["exec", "h1", "sh", "-c", status]);
    assert!(
        r.stdout.contains("CapEff:\t0000000000000021\n"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("CapBnd:\t0000000000000021\n"),
        "{}",
        r.describe()
    );
    assert!(r.stdout.contains("NoNewPrivs:\t1\n"), "{}", r.describe());
    let r = rv.run(&["exec", "--cap", "CAP_NET_RAW", "h1", "sh", "-c", status]);
    assert!(
        r.stdout.contains("CapEff:\t0000000000002021\n"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("CapBnd:\t0000000000002021\n"),
        "{}",
        r.describe()
    );
    let r = rv.run(&["exec", "--cap", "CAP_NOPE", "h1", "true"]);
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    assert!(r.stderr.contains("unknown capability"), "{}", r.describe());
    let pj = rv.root.join("process.json");
    std::fs::write(
        &pj,
        serde_json::json!({
            "args": ["sh", "-c", status],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "noNewPrivileges": false
        })
        .to_string(),
    )
    .unwrap();
    // grep is exec'd by a non-root sh: its permitted and effective sets are cleared
    // (no ambient capabilities), the bounding set stays.
    let r = rv.run(&["exec", "--process", pj.to_str().unwrap(), "h1"]);
    assert_eq!(
        r.stdout,
        "Uid:\t1000\t1000\t1000\t1000\nGroups:\t5 6\nCapPrm:\t0000000000000000\n\
         CapEff:\t0000000000000000\nCapBnd:\t0000000000000020\nNoNewPrivs:\t0\n",
        "{}",
        r.describe()
    );
    let r = rv.run(&[
        "exec",
        "--process",
        pj.to_str().unwrap(),
        "--no-new-privs",
        "h1",
    ]);
    assert!(r.stdout.contains("NoNewPrivs:\t1\n"), "{}", r.describe());
    let r = rv.run(&["exec", "h1", "nosuchcmd"]);
    assert_eq!(r.shell_status(), 1, "{}", r.describe());
    assert!(
        r.stderr.contains("nosuchcmd: No such file or directory"),
        "{}",
        r.describe()
    );
    let r = rv.run(&["events", "--stats", "h1"]);
    let ev: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    let r = rv.run(&["update", "--memory", "96M", "h1"]);
    assert!(r.status.success(), "{}", r.describe());
    let r = rv.run(&[
        "exec",
        "h1",
        "sh",
        "-c",
        "busybox grep MemTotal /proc/meminfo",
    ]);
    assert!(r.stdout.contains("98304 kB"), "{}", r.describe());
    let r = rv.run(&["delete", "--force", "h1"]);
    assert!(r.status.success(), "{}", r.describe());
    let stop: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(marks.join("poststop")).unwrap()).unwrap();
    assert_eq!(stop["status"], "stopped");
    // features and install.
    let r = rv.run(&["features"]);
    let f: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(f["ociVersionMax"], "1.0.2");
    let cfg = rv.root.join("daemon.json");
    std::fs::write(
        &cfg,
        "{\"log-level\": \"warn\", \"runtimes\": {\"other\": {\"path\": \"/x\"}}}",
    )
    .unwrap();
    let r = rv.run(&[
        "install",
        "--config",
        cfg.to_str().unwrap(),
        "--runtime",
        "rv-t",
        "--",
        "--debug",
    ]);
    assert!(r.status.success(), "{}", r.describe());
    assert!(r.stdout.contains("kill -HUP"), "{}", r.describe());
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(d["log-level"], "warn");
    assert_eq!(d["runtimes"]["other"]["path"], "/x");
    assert_eq!(d["runtimes"]["rv-t"]["path"], rvisor_bin());
    assert_eq!(
        d["runtimes"]["rv-t"]["runtimeArgs"],
        serde_json::json!(["--debug"])
    );
    std::fs::write(&cfg, "{bad").unwrap();
    let r = rv.run(&["install", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.shell_status(), 1);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "{bad");
}

//! The list of workloads (issue 6, section 1) and how each is measured.

use std::path::{Path, PathBuf};

use crate::proc::MemMetric;

/// Sizes and durations that `--quick` shrinks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sizes {
    /// Per-operation workloads run doubling batches until one lasts this long.
    pub min_ms: u64,
    pub touch_mib: u64,
    pub pipe_mib: u64,
    pub file_mib: u64,
    pub files: u64,
    /// How long the memory-overhead workload sleeps (sampling starts at its ready line).
    pub sleep_ms: u64,
    /// Seconds of each iperf3 and wrk run.
    pub net_secs: u64,
    /// Connections wrk keeps open.
    pub wrk_conns: u64,
    /// Seconds over which an idle container's CPU time is counted.
    pub idle_secs: u64,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            min_ms: 100,
            touch_mib: 256,
            pipe_mib: 1024,
            file_mib: 256,
            files: 10_000,
            sleep_ms: 1000,
            net_secs: 5,
            wrk_conns: 8,
            idle_secs: 10,
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            min_ms: 20,
            touch_mib: 64,
            pipe_mib: 128,
            file_mib: 32,
            files: 1000,
            sleep_ms: 700,
            net_secs: 2,
            wrk_conns: 8,
            idle_secs: 10,
        }
    }
}

pub enum Kind {
    /// `rvbench ARGS...`; the value is what it prints (`rvbench-result VALUE UNIT`).
    Inner { args: Vec<String> },
    /// Wall time of the whole command from spawn to exit, in ms.
    Wall { argv: Vec<String> },
    /// Memory of the host process tree while `rvbench sleep` sleeps, in MiB.
    Memory { metric: MemMetric, sleep_ms: u64 },
    /// A command whose stdout is `iperf3 -J` output; the value is what the receiver
    /// got, in Gbit/s.
    Iperf3 { argv: Vec<String> },
    /// A container started with docker under each docker runtime (see `net`).
    Docker(NetTest),
}

/// What the host does against a container on docker's default bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetTest {
    /// `iperf3 -c` on the host against `iperf3 -s` in the container; `reverse`: `-R`
    /// (the container sends).
    Iperf3 { secs: u64, reverse: bool },
    /// `wrk` on the host against busybox httpd in the container, through a port
    /// published with `-p`.
    Http { secs: u64, conns: u64 },
    /// CPU time of the container's host processes while busybox httpd waits for
    /// connections, in percent of one CPU.
    IdleCpu { secs: u64 },
}

impl Kind {
    /// The host tools (Debian packages of the same name) the workload runs.
    pub fn tools(&self) -> &'static [&'static str] {
        match self {
            Kind::Iperf3 { .. } | Kind::Docker(NetTest::Iperf3 { .. }) => &["iperf3"],
            Kind::Docker(NetTest::Http { .. }) => &["wrk"],
            _ => &[],
        }
    }
}

pub struct Workload {
    pub name: &'static str,
    pub group: &'static str,
    /// Name plus parameters, for the table.
    pub label: String,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub kind: Kind,
    /// Why the workload cannot run on this host, if it cannot.
    pub skip: Option<String>,
}

/// Where the helper files are.
pub struct Files {
    /// The compiled `rvbench` program.
    pub rvbench: PathBuf,
    /// A small C program for the compile workload.
    pub hello_c: PathBuf,
}

/// The group of the network workloads.
pub const NET: &str = "net";
pub const PYTHON3: &str = "/usr/bin/python3";
pub const GCC: &str = "/usr/bin/gcc";
/// An existing file on the host root (reached through the gofer in a sandbox).
pub const EXISTING_FILE: &str = "/etc/passwd";

fn s(x: impl ToString) -> String {
    x.to_string()
}

pub fn all(sz: &Sizes, files: &Files) -> Vec<Workload> {
    let min = s(sz.min_ms);
    let inner = |name, group, label: String, unit, args: &[String]| Workload {
        name,
        group,
        label,
        unit,
        higher_is_better: false,
        kind: Kind::Inner {
            args: args.to_vec(),
        },
        skip: None,
    };
    let exists = |p: &str| -> Option<String> {
        (!Path::new(p).exists()).then(|| format!("{p} does not exist on this host"))
    };
    let rvb = files.rvbench.display().to_string();
    let mut v = vec![
        inner(
            "getpid",
            "syscall",
            s("getpid"),
            "ns/op",
            &[s("getpid"), min.clone()],
        ),
        inner(
            "read",
            "syscall",
            s("read 1 B of /dev/zero"),
            "ns/op",
            &[s("read"), min.clone()],
        ),
        inner(
            "open-close",
            "syscall",
            format!("open+close {EXISTING_FILE}"),
            "ns/op",
            &[s("open-close"), min.clone(), s(EXISTING_FILE)],
        ),
        inner(
            "stat",
            "syscall",
            format!("stat {EXISTING_FILE}"),
            "ns/op",
            &[s("stat"), min.clone(), s(EXISTING_FILE)],
        ),
        inner(
            "clock-gettime",
            "syscall",
            s("clock_gettime(MONOTONIC)"),
            "ns/op",
            &[s("clock-gettime"), min.clone()],
        ),
        inner(
            "fork-exit",
            "process",
            s("fork+exit+wait"),
            "us/op",
            &[s("fork-exit"), min.clone()],
        ),
        inner(
            "fork-exec",
            "process",
            s("fork+exec(/bin/true)+wait"),
            "us/op",
            &[s("fork-exec"), min.clone()],
        ),
        inner(
            "thread",
            "process",
            s("thread create+join"),
            "us/op",
            &[s("thread"), min.clone()],
        ),
        inner(
            "mem-touch",
            "memory",
            format!("touch {} MiB fresh anon", sz.touch_mib),
            "ms",
            &[s("mem-touch"), s(sz.touch_mib)],
        ),
        inner(
            "mmap-64k",
            "memory",
            s("mmap+touch+munmap 64 KiB"),
            "us/op",
            &[s("mmap-64k"), min.clone()],
        ),
        Workload {
            higher_is_better: true,
            ..inner(
                "pipe",
                "pipe",
                format!("pipe {} MiB between 2 procs", sz.pipe_mib),
                "MiB/s",
                &[s("pipe"), s(sz.pipe_mib)],
            )
        },
        inner(
            "pingpong",
            "pipe",
            s("pipe 1-byte ping-pong"),
            "us/rt",
            &[s("pingpong"), min.clone()],
        ),
        inner(
            "file-io",
            "file",
            format!("write {} MiB+fsync+read /tmp", sz.file_mib),
            "ms",
            &[s("file-io"), s(sz.file_mib)],
        ),
        inner(
            "files",
            "file",
            format!("create+stat+unlink {} files", sz.files),
            "us/file",
            &[s("files"), s(sz.files)],
        ),
        Workload {
            name: "start-true",
            group: "startup",
            label: s("do /bin/true"),
            unit: "ms",
            higher_is_better: false,
            kind: Kind::Wall {
                argv: vec![s("/bin/true")],
            },
            skip: exists("/bin/true"),
        },
        Workload {
            name: "start-python3",
            group: "startup",
            label: s("python3 -c pass"),
            unit: "ms",
            higher_is_better: false,
            kind: Kind::Wall {
                argv: vec![s(PYTHON3), s("-c"), s("pass")],
            },
            skip: exists(PYTHON3),
        },
        Workload {
            name: "start-gcc",
            group: "startup",
            label: s("gcc -c hello.c"),
            unit: "ms",
            higher_is_better: false,
            kind: Kind::Wall {
                argv: vec![
                    s(GCC),
                    s("-c"),
                    files.hello_c.display().to_string(),
                    s("-o"),
                    s("/tmp/rvisor-bench-hello.o"),
                ],
            },
            skip: exists(GCC),
        },
        Workload {
            name: "rss",
            group: "overhead",
            label: s("RSS of tree, sleeping"),
            unit: "MiB",
            higher_is_better: false,
            kind: Kind::Memory {
                metric: MemMetric::Rss,
                sleep_ms: sz.sleep_ms,
            },
            skip: None,
        },
        Workload {
            name: "pss",
            group: "overhead",
            label: s("PSS of tree, sleeping"),
            unit: "MiB",
            higher_is_better: false,
            kind: Kind::Memory {
                metric: MemMetric::Pss,
                sleep_ms: sz.sleep_ms,
            },
            skip: None,
        },
    ];
    v.extend(net(sz));
    // The helper must exist on the host root for the sandboxes to find it.
    if !files.rvbench.exists() {
        for w in &mut v {
            if matches!(w.kind, Kind::Inner { .. } | Kind::Memory { .. }) {
                w.skip = Some(format!("{rvb} was not built"));
            }
        }
    }
    v
}

/// The network group (issue 8, section 5).
fn net(sz: &Sizes) -> Vec<Workload> {
    let secs = sz.net_secs;
    // Natively the loopback is the host's: a port of this run's own.
    let port = 20_000 + std::process::id() % 20_000;
    let w = |name, label: String, unit, higher_is_better, kind| Workload {
        name,
        group: NET,
        label,
        unit,
        higher_is_better,
        kind,
        skip: None,
    };
    let docker = |t| Kind::Docker(t);
    vec![
        w(
            "tcp-loopback",
            format!("iperf3 127.0.0.1 in one sandbox {secs}s"),
            "Gbit/s",
            true,
            Kind::Iperf3 {
                argv: vec![
                    s("/bin/sh"),
                    s("-c"),
                    loopback_script(port, secs, secs + 30),
                ],
            },
        ),
        w(
            "tcp-to-ctr",
            format!("iperf3 host -> container {secs}s"),
            "Gbit/s",
            true,
            docker(NetTest::Iperf3 {
                secs,
                reverse: false,
            }),
        ),
        w(
            "tcp-from-ctr",
            format!("iperf3 -R container -> host {secs}s"),
            "Gbit/s",
            true,
            docker(NetTest::Iperf3 {
                secs,
                reverse: true,
            }),
        ),
        w(
            "http-rps",
            format!("wrk -c{} busybox httpd -p {secs}s", sz.wrk_conns),
            "req/s",
            true,
            docker(NetTest::Http {
                secs,
                conns: sz.wrk_conns,
            }),
        ),
        w(
            "idle-cpu",
            format!("idle container listening {}s", sz.idle_secs),
            "% CPU",
            false,
            docker(NetTest::IdleCpu { secs: sz.idle_secs }),
        ),
    ]
}

/// An iperf3 server in the background and its client, retried until the server
/// listens (iperf3 -J exits 0 even when it cannot connect: its JSON has the error);
/// prints the client's JSON. A client that hangs (seen natively, rarely, under load)
/// is killed after `limit` seconds and reported as an error.
fn loopback_script(port: u32, secs: u64, limit: u64) -> String {
    format!(
        "iperf3 -s -p {port} >/dev/null 2>&1 & i=0; \
         while :; do out=$(timeout -k 5 {limit} iperf3 -c 127.0.0.1 -p {port} -t {secs} -J 2>&1); \
         case $? in 124|137) out='{{\"error\": \"iperf3 -c did not finish within {limit} s\"}}' ;; esac; \
         case \"$out\" in *'unable to connect'*) ;; *) break ;; esac; \
         i=$((i+1)); [ $i -ge 100 ] && break; sleep 0.1; done; \
         kill -KILL $! 2>/dev/null; wait $! 2>/dev/null; echo \"$out\""
    )
}

/// The workloads named (by name or group) in `only`, in table order; all when empty.
pub fn select(all: Vec<Workload>, only: &[String]) -> Result<Vec<Workload>, String> {
    if only.is_empty() {
        return Ok(all);
    }
    for o in only {
        if !all.iter().any(|w| w.name == o || w.group == o) {
            let names: Vec<&str> = all.iter().map(|w| w.name).collect();
            let mut groups: Vec<&str> = all.iter().map(|w| w.group).collect();
            groups.dedup();
            return Err(format!(
                "unknown workload `{o}`; names: {}; groups: {}",
                names.join(" "),
                groups.join(" ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|w| only.iter().any(|o| w.name == o || w.group == o))
        .collect())
}

/// The C source of the small program compiled by the `start-gcc` workload.
pub const HELLO_C: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item { const char *name; int weight; };

static int by_weight(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return x->weight - y->weight;
}

int main(int argc, char **argv)
{
    struct item items[] = { {"gofer", 3}, {"sentry", 1}, {"stub", 2} };
    qsort(items, sizeof items / sizeof items[0], sizeof items[0], by_weight);
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
        printf("%s %d %zu\n", items[i].name, items[i].weight, strlen(argv[0]) + argc);
    return 0;
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Workload]) -> Vec<&'static str> {
        v.iter().map(|w| w.name).collect()
    }

    fn files() -> Files {
        Files {
            rvbench: PathBuf::from("/nonexistent/rvbench"),
            hello_c: PathBuf::from("/nonexistent/hello.c"),
        }
    }

    #[test]
    fn names_are_unique() {
        let v = all(&Sizes::full(), &files());
        let mut n = names(&v);
        n.sort();
        n.dedup();
        assert_eq!(n.len(), v.len());
    }

    #[test]
    fn select_by_name_and_group_keeps_order() {
        let v = all(&Sizes::quick(), &files());
        let sel = select(v, &["pipe".into(), "getpid".into(), "startup".into()]).unwrap();
        assert_eq!(
            names(&sel),
            [
                "getpid",
                "pipe",
                "pingpong",
                "start-true",
                "start-python3",
                "start-gcc"
            ]
        );
    }

    #[test]
    fn select_rejects_unknown_names() {
        let v = all(&Sizes::quick(), &files());
        let e = select(v, &["nope".into()]).err().unwrap();
        assert!(e.contains("unknown workload `nope`"), "{e}");
    }

    #[test]
    fn missing_helper_skips_inner_workloads_only() {
        let v = all(&Sizes::quick(), &files());
        let getpid = v.iter().find(|w| w.name == "getpid").unwrap();
        assert!(getpid.skip.is_some());
        let net = v.iter().find(|w| w.name == "tcp-loopback").unwrap();
        assert!(net.skip.is_none());
    }

    #[test]
    fn net_group_and_its_tools() {
        let v = all(&Sizes::full(), &files());
        let sel = select(v, &[NET.into()]).unwrap();
        assert_eq!(
            names(&sel),
            [
                "tcp-loopback",
                "tcp-to-ctr",
                "tcp-from-ctr",
                "http-rps",
                "idle-cpu"
            ]
        );
        let tools: Vec<_> = sel.iter().map(|w| w.kind.tools()).collect();
        assert_eq!(
            tools,
            [&["iperf3"][..], &["iperf3"], &["iperf3"], &["wrk"], &[]]
        );
    }

    #[test]
    fn loopback_script_parses() {
        // The shell accepts it (`sh -n` parses without running).
        let script = loopback_script(1, 1, 31);
        let out = std::process::Command::new("/bin/sh")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(script.contains("-t 1 -J"));
    }

    /// Runs the loopback script with a stand-in `iperf3` (a shell script) on PATH.
    fn run_with_fake_iperf3(fake: &str, limit: u64) -> String {
        let dir =
            std::env::temp_dir().join(format!("rvisor-bench-test-{}-{limit}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("iperf3");
        std::fs::write(&path, fake).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &loopback_script(1, 1, limit)])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn loopback_script_gives_up_with_the_error() {
        // A client that cannot connect (exit 0, as iperf3 -J does): the script stops
        // retrying and prints the error for the parser, instead of looping forever.
        let fake = "#!/bin/sh\ncase \"$*\" in *-s*) exec sleep 30 ;; \
             *) echo '{\"error\": \"unable to connect to server: Connection refused\"}' ;; esac\n";
        let e = crate::parse::iperf3_bits_per_second(&run_with_fake_iperf3(fake, 31)).unwrap_err();
        assert!(e.contains("unable to connect"), "{e}");
    }

    #[test]
    fn loopback_script_kills_a_hung_client() {
        let fake = "#!/bin/sh\nexec sleep 30\n";
        let e = crate::parse::iperf3_bits_per_second(&run_with_fake_iperf3(fake, 1)).unwrap_err();
        assert_eq!(e, "iperf3: iperf3 -c did not finish within 1 s");
    }
}

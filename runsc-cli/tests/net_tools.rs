//! The tools people use to look at sockets (issue 8): iproute2's `ss` inside the sandbox
//! (over NETLINK_SOCK_DIAG, and /proc/net/sockstat for `ss -s`) prints what it prints
//! natively for the same sockets.
//!
//! * one python3 script opens TCP, UDP (IPv4 and IPv6) and unix sockets on fixed ports and
//!   runs `ss -tan`, `-uan`, `-tlnp`, two bytecode filters, a state filter, `-xa`, `-xe`
//!   and `ss -s`; its output (whitespace collapsed, rows sorted, unix inodes named, pids
//!   hidden) is compared with the same script run natively in a fresh network namespace
//!   (`unshare -n`; SKIPPED with the reason where that is not allowed);
//! * with `--network host`, `ss -tan` and /proc/net/tcp inside list the sandbox's own
//!   host sockets and not the host's others.
//!
//! Debian packages: python3, iproute2, util-linux (unshare).

mod common;

use std::net::TcpListener;

use common::*;

const PYTHON3: &str = "/usr/bin/python3";
const SS: &str = "/usr/bin/ss";
const UNSHARE: &str = "/usr/bin/unshare";

fn require(path: &str, pkg: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: apt-get install {pkg}"
    );
}

const SS_SCRIPT: &str = r##"
import os, re, socket, subprocess, sys, tempfile, time

d = tempfile.mkdtemp()
names = {}
def name(s, n):
    names[str(os.fstat(s.fileno()).st_ino)] = n
    return s

l = socket.socket(); l.bind(("127.0.0.1", 8080)); l.listen(5)
c = socket.socket(); c.bind(("127.0.0.1", 40001)); c.connect(("127.0.0.1", 8080))
a, _ = l.accept()
c.sendall(b"hello")
time.sleep(0.2)
l6 = socket.socket(socket.AF_INET6); l6.bind(("::1", 8081)); l6.listen(3)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::", 5354))
k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); k.bind(("127.0.0.1", 40002)); k.connect(("127.0.0.1", 5353))
path = os.path.join(d, "s")
x = name(socket.socket(socket.AF_UNIX), "LISTENER"); x.bind(path); x.listen(2)
y = name(socket.socket(socket.AF_UNIX), "CLIENT"); y.connect(path)
z, _ = x.accept(); name(z, "ACCEPTED")
p, q = socket.socketpair(); name(p, "PAIR0"); name(q, "PAIR1")
p.send(b"abc")
g = name(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), "DGRAM"); g.bind("\0rvisor-ss-test")
time.sleep(0.1)

def show(cmd, keep=lambda line: True, head=True):
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    body = []
    for line in lines[1:]:
        if not keep(line):
            continue
        line = line.replace(path, "PATH")
        line = re.sub(r"pid=\d+", "pid=N", line)
        line = re.sub(r"ino:\d+ dev:\d+/\d+", "ino:I dev:D", line)
        f = [names.get(w, w) for w in line.split()]
        body.append(" ".join(f))
    print("$", cmd)
    if head:
        print(" ".join(lines[0].split()) if lines else "")
    for b in sorted(body):
        print(b)

show("ss -tan")
show("ss -uan")
show("ss -tlnp")
show("ss -tan sport = :8080")
show("ss -tan dst 127.0.0.1 and dport = :8080")
show("ss -uan state established")
# Only this script's unix sockets (the native namespace has others).
show("ss -xa", lambda line: any(n in line.split() for n in names))
y.shutdown(socket.SHUT_WR)
show("ss -xe", lambda line: any(n in line.split() for n in names))
# The table (ss's "Total" is racy natively: closed sockets are freed after an RCU period).
show("ss -s", lambda line: re.match(r"(RAW|UDP|TCP|INET|FRAG)\s", line) is not None, head=False)
"##;

#[test]
fn ss_inside_matches_a_fresh_network_namespace() {
    require(PYTHON3, "python3");
    require(SS, "iproute2");
    require(UNSHARE, "util-linux");
    let probe = native(&[UNSHARE, "-n", "true"]);
    if !probe.status.success() {
        skip(&format!(
            "no network namespace of the test's own for the native run: {}",
            probe.stderr.trim()
        ));
        return;
    }
    let n = native(&[
        UNSHARE,
        "-n",
        "sh",
        "-c",
        "ip link set lo up && exec python3 -c \"$0\"",
        SS_SCRIPT,
    ]);
    assert!(n.status.success(), "the native run: {}", n.describe());
    let s = sandboxed(&[PYTHON3, "-c", SS_SCRIPT]);
    assert!(s.status.success(), "{}", s.describe());
    // Every command printed a header and its rows.
    assert!(
        n.stdout.contains("LISTEN 0 5 127.0.0.1:8080 0.0.0.0:*"),
        "{}",
        n.describe()
    );
    assert_eq!(
        s.stdout, n.stdout,
        "native:\n{}\nrvisor:\n{}",
        n.stdout, s.stdout
    );
}

const HOST_SCRIPT: &str = r##"import socket, subprocess
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(2)
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
print("port", l.getsockname()[1])
print(subprocess.run(["ss", "-tan"], capture_output=True, text=True).stdout)
print(open("/proc/net/tcp").read())
"##;

#[test]
fn host_network_lists_only_the_sandboxs_sockets() {
    require(PYTHON3, "python3");
    require(SS, "iproute2");
    // A host socket of the test process: never listed inside.
    let theirs = TcpListener::bind("127.0.0.1:0").unwrap();
    let their_port = theirs.local_addr().unwrap().port();
    let mut c = rvisor();
    c.args(["--network", "host", "do", PYTHON3, "-c", HOST_SCRIPT]);
    let s = run_cmd(c, TIMEOUT);
    assert!(s.status.success(), "{}", s.describe());
    let port: u16 = s
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("port "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port printed: {}", s.describe()));
    let out = &s.stdout;
    let ss_rows = |p: u16| {
        out.lines()
            .filter(|l| l.contains(&format!(":{p} ")))
            .count()
    };
    // The listener and both ends of the connection, in ss and in /proc/net/tcp.
    assert!(
        out.lines()
            .any(|l| l.starts_with("LISTEN") && l.contains(&format!("127.0.0.1:{port} "))),
        "{}",
        s.describe()
    );
    assert_eq!(ss_rows(port), 3, "{}", s.describe());
    let hex = |p: u16| format!("0100007F:{p:04X}");
    assert_eq!(
        out.lines().filter(|l| l.contains(&hex(port))).count(),
        3,
        "{}",
        s.describe()
    );
    assert_eq!(ss_rows(their_port), 0, "{}", s.describe());
    assert!(!out.contains(&hex(their_port)), "{}", s.describe());
    // Nothing but the sandbox's three sockets.
    let tcp_rows = out
        .lines()
        .filter(|l| l.contains(": 0100007F:") || l.contains(": 00000000:"))
        .count();
    assert_eq!(tcp_rows, 3, "{}", s.describe());
    drop(theirs);
}

kvm_tests!(
    ss_inside_matches_a_fresh_network_namespace,
    host_network_lists_only_the_sandboxs_sockets,
);

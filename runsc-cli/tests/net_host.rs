//! `--network host` (issue 8, section 3): the sandbox's AF_INET/AF_INET6 sockets are host
//! sockets the Sentry operates, in the network namespace rvisor runs in.
//!
//! * a TCP server of the test process (on 127.0.0.1 and on a non-loopback address of the
//!   host) is reached from `rvisor --network host do` (python3, and busybox wget);
//! * a TCP server inside the sandbox is reached from the test process;
//! * UDP both ways;
//! * `ip addr` inside shows the host's addresses;
//! * a non-blocking connect to a closed port gives ECONNREFUSED through SO_ERROR;
//! * socket semantics (peek, dontwait, waitall, shutdown, FIONREAD, timeouts, signals,
//!   SIGPIPE raised by the Sentry, refused options) compared with the native run;
//! * an OCI bundle run with `rvisor --network host run` reaches the host's server, and
//!   so does `docker run --network=host` with the runtime registered with
//!   `-- --network host` (SKIPPED with the reason where docker cannot run).
//!
//! Debian packages: python3, busybox, iproute2.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const PYTHON3: &str = "/usr/bin/python3";
const IP: &str = "/usr/sbin/ip";

fn require(path: &str, pkg: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: apt-get install {pkg}"
    );
}

/// `rvisor --platform P --network host do argv...`.
fn host_do(argv: &[&str]) -> Run {
    let mut c = rvisor();
    c.args(["--network", "host", "do"]).args(argv);
    run_cmd(c, TIMEOUT)
}

/// A non-loopback IPv4 address of the host (None, with the reason printed, if it has
/// none).
fn host_ipv4() -> Option<IpAddr> {
    let out = native(&[IP, "-o", "-4", "addr", "show"]);
    let a = out.stdout.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let a: IpAddr = w.get(3)?.split('/').next()?.parse().ok()?;
        (!a.is_loopback()).then_some(a)
    });
    if a.is_none() {
        skip("the host has no non-loopback IPv4 address: only 127.0.0.1 is tried");
    }
    a
}

/// A line-echo TCP server of the test process: answers each connection's first line
/// with "echo: LINE". Serves `n` connections on a thread of its own.
fn echo_server(addr: IpAddr, n: usize) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind((addr, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for _ in 0..n {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            (&s).write_all(format!("echo: {line}").as_bytes()).unwrap();
        }
    });
    (port, h)
}

const TCP_CLIENT: &str = "import socket, sys\n\
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)\n\
s.sendall(b'hello from the sandbox\\n')\n\
print(s.makefile().readline().strip())\n\
print('peer is the server:', s.getpeername()[:2] == (sys.argv[1], int(sys.argv[2])))\n";

#[test]
fn host_tcp_server_is_reached_from_the_sandbox() {
    require(PYTHON3, "python3");
    let mut addrs: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
    addrs.extend(host_ipv4());
    for a in addrs {
        let (port, h) = echo_server(a, 1);
        let r = host_do(&[PYTHON3, "-c", TCP_CLIENT, &a.to_string(), &port.to_string()]);
        assert!(r.status.success(), "{}", r.describe());
        assert_eq!(
            r.stdout,
            "echo: hello from the sandbox\npeer is the server: True\n",
            "{a}: {}",
            r.describe()
        );
        h.join().unwrap();
    }
}

/// A C client: busybox wget fetches from a one-shot HTTP responder of the test process.
#[test]
fn busybox_wget_reaches_a_host_http_server() {
    require(BUSYBOX, "busybox");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = vec![0u8; 4096];
        let n = s.read(&mut req).unwrap();
        assert!(req[..n].starts_with(b"GET /hello.txt "));
        let body = "hello over the host's network\n";
        write!(
            s,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let url = format!("http://127.0.0.1:{port}/hello.txt");
    let r = host_do(&[BUSYBOX, "wget", "-q", "-O", "-", &url]);
    assert!(r.status.success(), "{}", r.describe());
    assert_eq!(
        r.stdout,
        "hello over the host's network\n",
        "{}",
        r.describe()
    );
    h.join().unwrap();
}

/// A port free on the host right now (for a server inside the sandbox).
fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

#[test]
fn sandbox_tcp_server_is_reached_from_the_host() {
    require(PYTHON3, "python3");
    let port = free_port(false);
    let server = "import socket, sys\n\
        l = socket.socket()\n\
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
        l.bind(('127.0.0.1', int(sys.argv[1])))\n\
        l.listen(1)\n\
        c, peer = l.accept()\n\
        line = c.makefile().readline()\n\
        c.sendall(('inside got: ' + line).encode())\n\
        print('served', line.strip(), peer[0])\n";
    let p = port.to_string();
    let sandbox = {
        let argv: Vec<String> = [PYTHON3, "-c", server, &p]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let plat = platform();
        std::thread::spawn(move || {
            let mut c = Command::new(rvisor_bin());
            c.args(["--platform", plat, "--network", "host", "do"])
                .args(&argv);
            run_cmd(c, TIMEOUT)
        })
    };
    // The server may not listen yet: try for a while.
    let start = Instant::now();
    let s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < Duration::from_secs(30) && !sandbox.is_finished() => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot reach the sandbox's server on port {port}: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (&s).write_all(b"from the host\n").unwrap();
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).unwrap();
    assert_eq!(reply, "inside got: from the host\n");
    let r = sandbox.join().unwrap();
    assert!(r.status.success(), "{}", r.describe());
    assert_eq!(
        r.stdout,
        "served from the host 127.0.0.1\n",
        "{}",
        r.describe()
    );
}

#[test]
fn udp_both_ways() {
    require(PYTHON3, "python3");
    // Sandbox to host: the test process answers each datagram.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uport = u.local_addr().unwrap().port();
    u.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let h = std::thread::spawn(move || {
        let mut b = [0u8; 1500];
        let (n, from) = u.recv_from(&mut b).unwrap();
        let mut reply = b"host saw: ".to_vec();
        reply.extend_from_slice(&b[..n]);
        u.send_to(&reply, from).unwrap();
    });
    let client = "import socket, sys\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        s.settimeout(20)\n\
        s.sendto(b'ping', ('127.0.0.1', int(sys.argv[1])))\n\
        print(s.recvfrom(100)[0].decode())\n";
    let r = host_do(&[PYTHON3, "-c", client, &uport.to_string()]);
    assert!(r.status.success(), "{}", r.describe());
    assert_eq!(r.stdout, "host saw: ping\n", "{}", r.describe());
    h.join().unwrap();

    // Host to sandbox: a UDP server inside answers the test process.
    let port = free_port(true);
    let server = "import socket, sys\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        s.bind(('127.0.0.1', int(sys.argv[1])))\n\
        d, a = s.recvfrom(100)\n\
        s.sendto(b'sandbox saw: ' + d, a)\n\
        print('answered', d.decode())\n";
    let p = port.to_string();
    let plat = platform();
    let argv: Vec<String> = [PYTHON3, "-c", server, &p]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sandbox = std::thread::spawn(move || {
        let mut c = Command::new(rvisor_bin());
        c.args(["--platform", plat, "--network", "host", "do"])
            .args(&argv);
        run_cmd(c, TIMEOUT)
    });
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut b = [0u8; 100];
    // Until the server is bound, datagrams are refused or lost: send again.
    let n = loop {
        let _ = c.send_to(b"hello", ("127.0.0.1", port));
        match c.recv_from(&mut b) {
            Ok((n, _)) => break n,
            Err(_) if start.elapsed() < Duration::from_secs(30) && !sandbox.is_finished() => {}
            Err(e) => panic!("no answer from the sandbox's UDP server: {e}"),
        }
    };
    assert_eq!(&b[..n], b"sandbox saw: hello");
    let r = sandbox.join().unwrap();
    assert!(r.status.success(), "{}", r.describe());
    assert_eq!(r.stdout, "answered hello\n", "{}", r.describe());
}

/// The (interface, family, address/prefix) lines `ip -o addr` prints.
fn addr_lines(out: &str) -> std::collections::BTreeSet<String> {
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 4).then(|| format!("{} {} {}", w[1], w[2], w[3]))
        })
        .collect()
}

#[test]
fn ip_addr_shows_the_hosts_addresses() {
    require(IP, "iproute2");
    require(PYTHON3, "python3");
    // Other users of the host may add or remove addresses (docker networks) meanwhile:
    // what the sandbox shows must lie between the host's views before and after.
    let before = native(&[IP, "-o", "addr", "show"]);
    let s = host_do(&[IP, "-o", "addr", "show"]);
    let after = native(&[IP, "-o", "addr", "show"]);
    assert!(s.status.success(), "{}", s.describe());
    let (b, got, a) = (
        addr_lines(&before.stdout),
        addr_lines(&s.stdout),
        addr_lines(&after.stdout),
    );
    assert!(b.iter().any(|l| l.starts_with("lo inet 127.0.0.1/8")));
    for l in b.intersection(&a) {
        assert!(got.contains(l), "the sandbox lacks {l:?}\n{}", s.describe());
    }
    for l in &got {
        assert!(
            b.contains(l) || a.contains(l),
            "the sandbox shows {l:?}, the host does not\n{}",
            s.describe()
        );
    }
    // Links: name, flags and operational state (a link without carrier is DOWN). The
    // peer of a veth (`@ifN`, IFLA_LINK) is not part of the snapshot.
    let links = |o: &str| -> std::collections::BTreeSet<String> {
        o.lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let state = w.iter().position(|x| *x == "state")?;
                let name = w.get(1)?.trim_end_matches(':').split('@').next()?;
                Some(format!("{name} {} {}", w.get(2)?, w.get(state + 1)?))
            })
            .collect()
    };
    let before = native(&[IP, "-o", "link", "show"]);
    let s = host_do(&[IP, "-o", "link", "show"]);
    let after = native(&[IP, "-o", "link", "show"]);
    let got = links(&s.stdout);
    for l in links(&before.stdout).intersection(&links(&after.stdout)) {
        assert!(got.contains(l), "the sandbox lacks {l:?}\n{}", s.describe());
    }
    // getifaddrs(3) (python's socket.if_nameindex uses the same netlink dumps).
    let code = "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n";
    let n = native(&[PYTHON3, "-c", code]);
    let s = host_do(&[PYTHON3, "-c", code]);
    assert_same(&n, &s);
}

#[test]
fn nonblocking_connect_to_a_closed_port_is_refused_via_so_error() {
    require(PYTHON3, "python3");
    let port = free_port(false);
    let code = "import errno, select, socket, sys\n\
        s = socket.socket()\n\
        s.setblocking(False)\n\
        r = s.connect_ex(('127.0.0.1', int(sys.argv[1])))\n\
        print('connect', errno.errorcode.get(r, r))\n\
        p = select.poll()\n\
        p.register(s, select.POLLOUT)\n\
        ev = p.poll(20000)\n\
        print('ready', bool(ev and ev[0][1] & select.POLLOUT))\n\
        print('SO_ERROR', errno.errorcode[s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)])\n\
        b = socket.socket()\n\
        try:\n    b.connect(('127.0.0.1', int(sys.argv[1])))\n\
        except OSError as e:\n    print('blocking', errno.errorcode[e.errno])\n";
    let p = port.to_string();
    let n = native(&[PYTHON3, "-c", code, &p]);
    assert_eq!(
        n.stdout,
        "connect EINPROGRESS\nready True\nSO_ERROR ECONNREFUSED\nblocking ECONNREFUSED\n",
        "the native run: {}",
        n.describe()
    );
    let s = host_do(&[PYTHON3, "-c", code, &p]);
    assert_same(&n, &s);
}

/// Socket semantics through host sockets, compared line for line with the native run.
const SEMANTICS: &str = r##"import errno, fcntl, os, select, signal, socket, struct, termios, time

def err(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)

for fam, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
    print(fam.name)
    l = socket.socket(fam)
    l.bind((host, 0))
    l.listen(4)
    print(" listening", l.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    c = socket.socket(fam)
    c.connect(l.getsockname())
    a, peer = l.accept()
    print(" peer matches", peer[:2] == c.getsockname()[:2], a.getpeername()[:2] == c.getsockname()[:2])
    print(" dontwait on empty", err(lambda: a.recv(10, socket.MSG_DONTWAIT)))
    c.sendall(b"hello world")
    time.sleep(0.2)
    print(" FIONREAD", struct.unpack("i", fcntl.ioctl(a, termios.FIONREAD, b"\0\0\0\0"))[0])
    print(" peek", a.recv(5, socket.MSG_PEEK), "then", a.recv(5))
    c.sendall(b"abc")
    print(" waitall", a.recv(9, socket.MSG_WAITALL))
    # MSG_WAITALL is cut short by the peer's end of file.
    c.sendall(b"xy")
    c.shutdown(socket.SHUT_WR)
    print(" waitall at eof", a.recv(100, socket.MSG_WAITALL), a.recv(100))
    print(" poll after peer shutdown", bool(select.select([a], [], [], 5)[0]))
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(" TCP_NODELAY", a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
    print(" SO_TYPE", a.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200000))
    print(" SO_RCVTIMEO", struct.unpack("ll", a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)))
    c2 = socket.socket(fam)
    c2.connect(l.getsockname())
    a2, _ = l.accept()
    a2.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200000))
    print(" recv timeout", err(lambda: a2.recv(10)))
    # epoll sees data arrive.
    ep = select.epoll()
    ep.register(a2.fileno(), select.EPOLLIN)
    c2.send(b"z")
    print(" epoll", [(fd == a2.fileno(), ev) for fd, ev in ep.poll(5)])
    # A blocking accept interrupted by a signal whose handler raises.
    def boom(*_):
        raise InterruptedError
    signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        l.accept()
        print(" accept returned")
    except InterruptedError:
        print(" accept interrupted")
    for s in (a, c, a2, c2, l):
        s.close()

# Datagrams: boundaries, MSG_TRUNC in recvmsg's flags, connected send.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.sendto(b"0123456789", u.getsockname())
v.sendto(b"ab", u.getsockname())
d, _, fl, frm = u.recvmsg(4)
print("udp", d, bool(fl & socket.MSG_TRUNC), frm[1] == v.getsockname()[1])
print("udp next", u.recv(100))
print("udp send unconnected", err(lambda: v.send(b"x")))
v.connect(u.getsockname())
v.send(b"connected")
print("udp connected", u.recv(100))

# SIGPIPE comes from the Sentry: ignored here, so EPIPE; MSG_NOSIGNAL also EPIPE.
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
c = socket.socket()
c.connect(l.getsockname())
a, _ = l.accept()
a.close()
c.shutdown(socket.SHUT_WR)
print("send after shutdown", err(lambda: c.send(b"x")), err(lambda: c.send(b"x", socket.MSG_NOSIGNAL)))

# Options outside the allow-list are refused.
print("SO_BINDTODEVICE", err(lambda: c.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")))
print("socketpair inet", err(lambda: socket.socketpair(socket.AF_INET)))
print("raw", err(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)))

# A listener whose accept queue is full drops SYNs: connects wait. SO_SNDTIMEO ends the
# wait with EINPROGRESS; a signal whose handler raises interrupts a plain one.
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(0)
fill = []
for i in range(2):
    f = socket.socket()
    f.setblocking(False)
    f.connect_ex(l.getsockname())
    fill.append(f)
time.sleep(0.2)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 300000))
print("timed connect", err(lambda: s.connect(l.getsockname())))
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    socket.socket().connect(l.getsockname())
    print("connect returned")
except InterruptedError:
    print("blocking connect interrupted")
"##;

#[test]
fn socket_semantics_match_linux() {
    require(PYTHON3, "python3");
    let n = native(&[PYTHON3, "-c", SEMANTICS]);
    assert!(n.status.success(), "the native run: {}", n.describe());
    let s = host_do(&[PYTHON3, "-c", SEMANTICS]);
    // SO_BINDTODEVICE needs CAP_NET_RAW natively; rvisor refuses it (not on its
    // allow-list): compare everything else, and that line on its own.
    let strip = |o: &str| -> String {
        o.lines()
            .filter(|l| !l.starts_with("SO_BINDTODEVICE") && !l.starts_with("raw "))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(
        strip(&s.stdout),
        strip(&n.stdout),
        "--- native: {}\n--- rvisor: {}",
        n.describe(),
        s.describe()
    );
    assert!(s.status.success(), "{}", s.describe());
    assert!(
        s.stdout.contains("SO_BINDTODEVICE ENOPROTOOPT\n"),
        "{}",
        s.describe()
    );
    assert!(s.stdout.contains("raw EPERM\n"), "{}", s.describe());
    for l in [
        " accept interrupted\n",
        " recv timeout EAGAIN\n",
        "timed connect EINPROGRESS\n",
        "blocking connect interrupted\n",
        "send after shutdown EPIPE EPIPE\n",
    ] {
        assert!(s.stdout.contains(l), "missing {l:?}: {}", s.describe());
    }
}

/// With SIGPIPE at its default action, a send on a closed stream kills the process
/// (raised by the Sentry: the host call has MSG_NOSIGNAL). Not as pid 1, which Linux
/// does not kill with a signal at its default action: a shell runs it.
#[test]
fn sigpipe_is_raised_by_the_sentry() {
    require(PYTHON3, "python3");
    require(BUSYBOX, "busybox");
    // send(2), then write(2) on the socket.
    let code = "import os, signal, socket, sys\n\
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n\
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)\n\
        c = socket.socket(); c.connect(l.getsockname())\n\
        a, _ = l.accept(); a.close()\n\
        c.shutdown(socket.SHUT_WR)\n\
        c.send(b'x') if sys.argv[1] == 'send' else os.write(c.fileno(), b'x')\n\
        print('not reached')\n";
    let script = format!("for how in send write; do {PYTHON3} -c \"$1\" $how; echo $how $?; done");
    let argv = [BUSYBOX, "sh", "-c", &script, "sh", code];
    let n = native(&argv);
    assert_eq!(
        n.stdout,
        "send 141\nwrite 141\n",
        "the native run: {}",
        n.describe()
    );
    let s = host_do(&argv);
    assert_same(&n, &s);
}

/// Root inside binds a port below 1024 on the host (the Sentry keeps
/// CAP_NET_BIND_SERVICE in this mode); as another user it is EACCES, as natively.
#[test]
fn ports_below_1024_follow_the_workloads_capability() {
    require(PYTHON3, "python3");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("ports_below_1024_follow_the_workloads_capability: needs root");
        return;
    }
    let code = "import errno, os, socket, sys\n\
        if sys.argv[1] != 'root':\n    os.setgid(65534); os.setuid(65534)\n\
        for p in range(900, 1000):\n\
        \x20   s = socket.socket()\n\
        \x20   try:\n\
        \x20       s.bind(('127.0.0.1', p)); s.listen(1); print('bound below 1024'); break\n\
        \x20   except OSError as e:\n\
        \x20       if e.errno != errno.EADDRINUSE:\n\
        \x20           print(errno.errorcode[e.errno]); break\n";
    for who in ["root", "nobody"] {
        let n = native(&[PYTHON3, "-c", code, who]);
        let s = host_do(&[PYTHON3, "-c", code, who]);
        assert_same(&n, &s);
        let want = if who == "root" {
            "bound below 1024\n"
        } else {
            "EACCES\n"
        };
        assert_eq!(n.stdout, want, "the native run: {}", n.describe());
    }
}

/// `rvisor --network host run` with a bundle: busybox nc inside reaches the test
/// process's server. The spec's network namespace is not used in this mode: neither a
/// namespace path (here one that does not exist) nor its absence (docker's
/// `--network host` shape) matters.
#[test]
fn oci_bundle_run_with_network_host() {
    require(BUSYBOX, "busybox");
    let state = TempDir::new("hostnet-state");
    for (id, netns) in [("hn-path", Some("/nonexistent/netns")), ("hn-none", None)] {
        let (port, h) = echo_server("127.0.0.1".parse().unwrap(), 1);
        let dir = busybox_bundle(id, |v| {
            v["process"]["env"] = serde_json::json!(["PATH=/bin"]);
            v["process"]["args"] = serde_json::json!([
                "sh",
                "-c",
                format!("echo from the bundle | busybox nc 127.0.0.1 {port}")
            ]);
            let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
            match netns {
                Some(p) => {
                    for n in ns.iter_mut().filter(|n| n["type"] == "network") {
                        n["path"] = p.into();
                    }
                }
                None => ns.retain(|n| n["type"] != "network"),
            }
        });
        let mut c = rvisor();
        c.arg("--root")
            .arg(state.path())
            .args(["--network", "host", "run", "--bundle"])
            .arg(dir.path())
            .arg(id);
        let r = run_cmd(c, TIMEOUT);
        assert!(r.status.success(), "{id}: {}", r.describe());
        assert_eq!(
            r.stdout,
            "echo: from the bundle\n",
            "{id}: {}",
            r.describe()
        );
        h.join().unwrap();
        assert!(!state.join(id).exists(), "{id}'s state is left");
    }
}

/// docker's `--network host` with the runtime registered as `rvisor --network host`:
/// busybox nc in the container reaches the test process's server on 127.0.0.1.
#[test]
fn docker_run_network_host() {
    const IMAGE: &str = "rvisor-hostnet-busybox";
    let setup = docker::register_runtime("rvisor-hostnet", &["--network", "host"])
        .and_then(|rt| docker::import_busybox(IMAGE, |_, _| Ok(())).map(|_| rt));
    let Some(rt) = docker::or_skip(&setup, "docker_run_network_host") else {
        return;
    };
    let (port, h) = echo_server("127.0.0.1".parse().unwrap(), 1);
    let r = docker::sh(&format!(
        "docker run --rm --runtime={rt} --network=host {IMAGE} sh -c 'echo from docker | nc 127.0.0.1 {port}'"
    ));
    assert!(r.status.success(), "{}", r.describe());
    assert_eq!(r.stdout, "echo: from docker\n", "{}", r.describe());
    h.join().unwrap();
}

kvm_tests!(
    ports_below_1024_follow_the_workloads_capability,
    oci_bundle_run_with_network_host,
    host_tcp_server_is_reached_from_the_sandbox,
    busybox_wget_reaches_a_host_http_server,
    sandbox_tcp_server_is_reached_from_the_host,
    udp_both_ways,
    ip_addr_shows_the_hosts_addresses,
    nonblocking_connect_to_a_closed_port_is_refused_via_so_error,
    socket_semantics_match_linux,
    sigpipe_is_raised_by_the_sentry,
);

//! Loopback networking inside the sandbox (issue 8): the workload's AF_INET/AF_INET6
//! sockets are served by rvisor's own TCP/IP stack (netstack), on a loopback that belongs
//! to the sandbox alone.
//!
//! * python3's http.server (threaded, in-process, on 127.0.0.1 and ::1; and
//!   `python3 -m http.server` as a separate process) fetched with urllib inside one
//!   `rvisor do` sandbox, compared with the same script run natively;
//! * busybox wget (a C client) against `python3 -m http.server` in one sandbox;
//! * the sandbox's loopback is not the host's: a port the host listens on is refused
//!   inside the sandbox.
//!
//! Debian packages: python3 (python3-minimal + libpython3.11-stdlib), busybox.

mod common;

use std::path::Path;

use common::*;

const PYTHON3: &str = "/usr/bin/python3";

const HTTP_SCRIPT: &str = r##"import functools, http.server, os, socket, subprocess, sys, threading, time
import urllib.error, urllib.request

root = sys.argv[1]
with open(os.path.join(root, "hello.txt"), "w") as f:
    f.write("hello from the sandbox\n" * 1000)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(addr, family):
    class Server(http.server.ThreadingHTTPServer):
        address_family = family

    srv = Server(addr, functools.partial(Quiet, directory=root))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


for host, fam in [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]:
    srv = serve((host, 0), fam)
    port = srv.server_address[1]
    url = "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)
    body = urllib.request.urlopen(url + "/hello.txt", timeout=20).read()
    print(fam.name, "GET hello.txt", len(body), body[:22].decode())
    try:
        urllib.request.urlopen(url + "/missing", timeout=20)
    except urllib.error.HTTPError as e:
        print(fam.name, "GET missing", e.code)
    listing = urllib.request.urlopen(url + "/", timeout=20).read().decode()
    print(fam.name, "listing has hello.txt:", "hello.txt" in listing)
    results = []

    def fetch():
        results.append(len(urllib.request.urlopen(url + "/hello.txt", timeout=20).read()))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(fam.name, "concurrent", sorted(results))
    srv.shutdown()
    srv.server_close()

# `python3 -m http.server` as a process of its own, fetched from this one.
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
p = subprocess.Popen(
    [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", root, str(port)],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
deadline = time.time() + 30
while True:
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/hello.txt" % port, timeout=20).read()
        break
    except (ConnectionRefusedError, urllib.error.URLError):
        if time.time() > deadline:
            raise
        time.sleep(0.1)
print("separate process GET", len(body))
p.terminate()
print("server exit", p.wait())
print("done")
"##;

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing on this host: install the Debian package `{package}` \
         (apt-get install {package}); this test cannot run without it"
    );
}

#[test]
fn python3_http_server_and_urllib_over_loopback() {
    require(PYTHON3, "python3");
    let dir = TempDir::new("net");
    let script = dir.join("http_loopback.py");
    std::fs::write(&script, HTTP_SCRIPT).unwrap();
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let (s, r) = (script.to_string_lossy(), root.to_string_lossy());
    let (n, _) = compare(&[PYTHON3, "-u", &s, &r]);
    for m in [
        "AF_INET GET hello.txt 23000 hello from the sandbox",
        "AF_INET GET missing 404",
        "AF_INET6 listing has hello.txt: True",
        "AF_INET6 concurrent [23000, 23000, 23000, 23000, 23000, 23000, 23000, 23000]",
        "separate process GET 23000",
        "server exit -15",
        "done",
    ] {
        assert!(
            n.stdout.lines().any(|l| l == m),
            "the NATIVE run lacks the line {m:?} (broken test or host set-up)\n{}",
            n.describe()
        );
    }
}

#[test]
fn sandbox_loopback_is_not_the_hosts() {
    require(PYTHON3, "python3");
    // The host listens on a loopback port; inside the sandbox nobody does.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let code = "import socket, sys\n\
        s = socket.socket()\n\
        try:\n    s.connect(('127.0.0.1', int(sys.argv[1])))\n    print('connected')\n\
        except ConnectionRefusedError:\n    print('refused')\n";
    let n = native(&[PYTHON3, "-c", code, &port]);
    assert_eq!(n.stdout, "connected\n", "{}", n.describe());
    let s = sandboxed(&[PYTHON3, "-c", code, &port]);
    assert_eq!(s.stdout, "refused\n", "{}", s.describe());
    assert!(s.status.success(), "{}", s.describe());
}

/// A C client (busybox wget) against `python3 -m http.server`, each its own process,
/// started from one shell inside the sandbox.
#[test]
fn busybox_wget_against_python_http_server() {
    require(PYTHON3, "python3");
    require(BUSYBOX, "busybox");
    let dir = TempDir::new("netwget");
    std::fs::write(dir.join("hello.txt"), "hello wget\n").unwrap();
    let script = format!(
        r#"cd {dir}
{py} -m http.server --bind 127.0.0.1 "$1" >/dev/null 2>&1 &
pid=$!
i=0
while [ $i -lt 100 ]; do
  {bb} wget -q -O - "http://127.0.0.1:$1/hello.txt" 2>/dev/null && break
  i=$((i+1)); sleep 0.1
done
{bb} wget -q -O - "http://127.0.0.1:$1/nope" 2>&1; echo "status $?"
kill $pid; wait $pid; echo "server $?"
"#,
        dir = dir.path().display(),
        py = PYTHON3,
        bb = BUSYBOX,
    );
    // A port free on the host for the native run (the sandbox has its own loopback).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let (n, _) = compare(&[BUSYBOX, "sh", "-c", &script, "sh", &port]);
    assert_eq!(
        n.stdout,
        "hello wget\nwget: server returned error: HTTP/1.0 404 File not found\nstatus 1\nserver 143\n",
        "the NATIVE run (broken test or host set-up)\n{}",
        n.describe()
    );
}

kvm_tests!(
    python3_http_server_and_urllib_over_loopback,
    sandbox_loopback_is_not_the_hosts,
    busybox_wget_against_python_http_server,
);

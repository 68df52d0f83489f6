//! Docker's embedded DNS server for the sandbox. On a user-defined docker network the
//! container's resolv.conf names 127.0.0.11, which docker serves inside the container's
//! network namespace (iptables DNAT to a resolver dockerd runs there). Inside rvisor,
//! 127.0.0.11 is the sandbox's own loopback, so the Sentry answers 127.0.0.11:53 itself
//! (UDP and TCP) and forwards each query, as UDP, through a socket the runtime opened
//! in that namespace, connected to 127.0.0.11:53, and donated (`dns` control request).
//! gVisor's runsc does not reach docker's resolver at all (google/gvisor#7469).
//! Limits: TCP queries travel upstream as UDP (a long answer may come back truncated).

use crate::kernel::Kernel;
use netstack::{Error, Waker};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a query waits for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TCP client may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(30);

/// A level-triggered wake-up for one netstack socket.
#[derive(Default)]
struct Signal {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    fn waker(self: &Arc<Self>) -> Waker {
        let s = self.clone();
        Arc::new(move || {
            *s.set.lock() = true;
            s.cv.notify_all();
        })
    }

    /// Wait until woken (or `limit` passes); false on timeout.
    fn wait(&self, limit: Option<Duration>) -> bool {
        let mut g = self.set.lock();
        if !*g {
            match limit {
                Some(d) => {
                    if self.cv.wait_for(&mut g, d).timed_out() && !*g {
                        return false;
                    }
                }
                None => self.cv.wait(&mut g),
            }
        }
        *g = false;
        true
    }
}

/// Retry `f` while it would block.
fn blocking<T>(
    sig: &Signal,
    limit: Option<Duration>,
    mut f: impl FnMut() -> netstack::Result<T>,
) -> Option<T> {
    let end = limit.map(|d| Instant::now() + d);
    loop {
        match f() {
            Err(Error::WouldBlock) => {
                let left = end.map(|e| e.saturating_duration_since(Instant::now()));
                if left == Some(Duration::ZERO) || !sig.wait(left) && end.is_some() {
                    return None;
                }
            }
            Ok(v) => return Some(v),
            Err(_) => return None,
        }
    }
}

enum Asker {
    Udp(SocketAddr),
    Tcp(mpsc::Sender<Vec<u8>>),
}

struct Pending {
    id: u16,
    asker: Asker,
    at: Instant,
}

struct Forwarder {
    upstream: OwnedFd,
    udp: netstack::UdpSocket,
    pending: Mutex<(u16, HashMap<u16, Pending>)>,
}

impl Forwarder {
    /// Send `query` upstream under an id of our own.
    fn forward(&self, query: &[u8], asker: Asker) {
        if query.len() < 12 {
            return;
        }
        let mut q = query.to_vec();
        let id = {
            let mut g = self.pending.lock();
            let (next, map) = &mut *g;
            map.retain(|_, p| p.at.elapsed() < ANSWER_TIMEOUT);
            *next = next.wrapping_add(1);
            let ours = *next;
            map.insert(
                ours,
                Pending {
                    id: u16::from_be_bytes([q[0], q[1]]),
                    asker,
                    at: Instant::now(),
                },
            );
            ours
        };
        q[..2].copy_from_slice(&id.to_be_bytes());
        // SAFETY: send reads q.len() bytes from q.
        let n = unsafe { libc::send(self.upstream.as_raw_fd(), q.as_ptr().cast(), q.len(), 0) };
        if n < 0 {
            tracing::debug!("dns: upstream send: {}", std::io::Error::last_os_error());
        }
    }

    /// Answers from upstream, back to whoever asked.
    fn answers(&self) {
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n = unsafe {
                libc::recv(
                    self.upstream.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::ECONNREFUSED) => continue,
                    _ => {
                        tracing::warn!("dns: upstream recv: {e}; forwarding stops");
                        return;
                    }
                }
            }
            let a = &mut buf[..n as usize];
            if a.len() < 12 {
                continue;
            }
            let Some(p) = self
                .pending
                .lock()
                .1
                .remove(&u16::from_be_bytes([a[0], a[1]]))
            else {
                continue;
            };
            a[..2].copy_from_slice(&p.id.to_be_bytes());
            match p.asker {
                Asker::Udp(to) => {
                    let _ = self.udp.send_to(a, Some(to));
                }
                Asker::Tcp(tx) => {
                    let _ = tx.send(a.to_vec());
                }
            }
        }
    }
}

/// Serve DNS on `addr`:53 in the sandbox's stack, forwarding to `upstream`.
pub fn serve(k: &Arc<Kernel>, addr: IpAddr, upstream: OwnedFd) -> Result<(), String> {
    serve_on(&super::inet::stack(k), addr, upstream)
}

fn serve_on(stack: &netstack::Stack, addr: IpAddr, upstream: OwnedFd) -> Result<(), String> {
    let at = SocketAddr::new(addr, 53);
    let v6 = addr.is_ipv6();
    let udp = stack.udp(v6);
    let usig = Arc::new(Signal::default());
    udp.set_waker(usig.waker());
    udp.bind(at)
        .map_err(|e| format!("dns: binding {at}/udp: errno {}", e.errno()))?;
    let tcp = stack.tcp(v6);
    let tsig = Arc::new(Signal::default());
    tcp.set_waker(tsig.waker());
    tcp.bind(at)
        .and_then(|_| tcp.listen(64))
        .map_err(|e| format!("dns: binding {at}/tcp: errno {}", e.errno()))?;
    let f = Arc::new(Forwarder {
        upstream,
        udp,
        pending: Mutex::new((0, HashMap::new())),
    });
    let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .map(|_| ())
            .map_err(|e| format!("dns: thread: {e}"))
    };
    let f1 = f.clone();
    spawn("dns-answers", Box::new(move || f1.answers()))?;
    let f2 = f.clone();
    spawn(
        "dns-udp",
        Box::new(move || {
            let mut buf = vec![0u8; 65536];
            while let Some(d) = blocking(&usig, None, || f2.udp.recv_from(&mut buf, false)) {
                f2.forward(&buf[..d.len], Asker::Udp(d.from));
            }
        }),
    )?;
    spawn(
        "dns-tcp",
        Box::new(move || {
            while let Some((c, _)) = blocking(&tsig, None, || tcp.accept()) {
                let f = f.clone();
                let _ = std::thread::Builder::new()
                    .name("dns-tcp-conn".into())
                    .spawn(move || tcp_client(&f, c));
            }
        }),
    )
}

/// One TCP client: length-prefixed queries in, answers out, until EOF or idle.
fn tcp_client(f: &Forwarder, c: netstack::TcpSocket) {
    let sig = Arc::new(Signal::default());
    c.set_waker(sig.waker());
    let mut have: Vec<u8> = vec![];
    let mut buf = vec![0u8; 65536];
    loop {
        while have.len() >= 2 {
            let len = u16::from_be_bytes([have[0], have[1]]) as usize;
            if have.len() < 2 + len {
                break;
            }
            let q: Vec<u8> = have.drain(..2 + len).skip(2).collect();
            let (tx, rx) = mpsc::channel();
            f.forward(&q, Asker::Tcp(tx));
            let Ok(a) = rx.recv_timeout(ANSWER_TIMEOUT) else {
                return;
            };
            let mut out = (a.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&a);
            let mut rest = &out[..];
            while !rest.is_empty() {
                match blocking(&sig, Some(TCP_IDLE), || c.send(rest)) {
                    Some(n) => rest = &rest[n..],
                    None => return,
                }
            }
        }
        match blocking(&sig, Some(TCP_IDLE), || c.recv(&mut buf, false)) {
            Some(0) | None => return,
            Some(n) => have.extend_from_slice(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A stand-in for docker's resolver on the host's loopback: answers each query with
    /// its own bytes, the QR bit set.
    fn fake_resolver() -> OwnedFd {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        up.connect(srv.local_addr().unwrap()).unwrap();
        std::thread::spawn(move || {
            let mut b = [0u8; 512];
            while let Ok((n, from)) = srv.recv_from(&mut b) {
                b[2] |= 0x80;
                let _ = srv.send_to(&b[..n], from);
            }
        });
        up.into()
    }

    fn query(id: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[
            1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'f', b'o', b'o', 0, 0, 1, 0, 1,
        ]);
        q
    }

    #[test]
    fn forwards_udp_and_tcp_queries() {
        let st = netstack::Stack::new(netstack::StackConfig::default());
        let at: IpAddr = "127.0.0.11".parse().unwrap();
        serve_on(&st, at, fake_resolver()).unwrap();
        let dns = SocketAddr::new(at, 53);
        // UDP: two askers with the same id each get their own answer, id restored.
        let (a, b) = (st.udp(false), st.udp(false));
        for s in [&a, &b] {
            s.send_to(&query(0x1234), Some(dns)).unwrap();
        }
        for s in [&a, &b] {
            let sig = Arc::new(Signal::default());
            s.set_waker(sig.waker());
            let mut buf = [0u8; 512];
            let d = blocking(&sig, Some(Duration::from_secs(5)), || {
                s.recv_from(&mut buf, false)
            })
            .expect("an answer");
            assert_eq!(d.from, dns);
            let mut want = query(0x1234);
            want[2] |= 0x80;
            assert_eq!(&buf[..d.len], &want[..]);
        }
        // TCP: a length-prefixed query, a length-prefixed answer.
        let c = st.tcp(false);
        let sig = Arc::new(Signal::default());
        c.set_waker(sig.waker());
        match c.connect(dns) {
            Ok(()) | Err(Error::InProgress) => {}
            Err(e) => panic!("connect: {e:?}"),
        }
        let q = query(7);
        let mut msg = (q.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(&q);
        let n = blocking(&sig, Some(Duration::from_secs(5)), || c.send(&msg)).unwrap();
        assert_eq!(n, msg.len());
        let mut got = vec![];
        let mut buf = [0u8; 512];
        while got.len() < msg.len() {
            let n = blocking(&sig, Some(Duration::from_secs(5)), || {
                c.recv(&mut buf, false)
            })
            .expect("a TCP answer");
            assert!(n > 0, "EOF after {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        msg[4] |= 0x80;
        assert_eq!(got, msg);
    }
}

//! Tests on loopback and on two stacks joined by an in-memory link.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Retry `f` while it would block (up to 10 s).
pub(crate) fn wait<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Err(Error::WouldBlock) | Err(Error::InProgress) | Err(Error::Already)
                if Instant::now() < end =>
            {
                std::thread::sleep(Duration::from_millis(1))
            }
            r => return r,
        }
    }
}

fn connected(s: &TcpSocket) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = s.connect_result() {
            return r;
        }
        assert!(Instant::now() < end, "connect timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn connect(s: &TcpSocket, a: SocketAddr) -> Result<()> {
    match s.connect(a) {
        Err(Error::InProgress) => connected(s),
        r => r,
    }
}

pub(crate) fn send_all(s: &TcpSocket, mut d: &[u8]) {
    while !d.is_empty() {
        let n = wait(|| s.send(d)).expect("send");
        d = &d[n..];
    }
}

pub(crate) fn recv_exact(s: &TcpSocket, n: usize) -> Vec<u8> {
    let mut out = vec![];
    let mut buf = vec![0u8; 65536];
    while out.len() < n {
        let k = wait(|| s.recv(&mut buf, false)).expect("recv");
        assert!(k > 0, "early EOF after {} of {n} bytes", out.len());
        out.extend_from_slice(&buf[..k]);
    }
    out
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn echo_on(st: &Stack, v6: bool, listen: &str, to: &str) {
    let l = st.tcp(v6);
    l.bind(addr(listen)).unwrap();
    l.listen(8).unwrap();
    let port = l.local_addr().port();
    assert_ne!(port, 0);
    let mut dst = addr(to);
    dst.set_port(port);
    let c = st.tcp(v6);
    connect(&c, dst).unwrap();
    let (a, peer) = wait(|| l.accept()).unwrap();
    assert_eq!(peer, c.local_addr());
    assert_eq!(c.peer_addr().unwrap(), a.local_addr());
    send_all(&c, b"hello");
    assert_eq!(recv_exact(&a, 5), b"hello");
    send_all(&a, b"world!");
    assert_eq!(recv_exact(&c, 6), b"world!");
}

#[test]
fn tcp_echo_loopback_v4_and_v6() {
    let st = Stack::new(StackConfig::default());
    echo_on(&st, false, "127.0.0.1:0", "127.0.0.1:0");
    echo_on(&st, true, "[::1]:0", "[::1]:0");
    echo_on(&st, false, "0.0.0.0:0", "127.0.0.1:0");
    // All of 127.0.0.0/8 is loopback.
    echo_on(&st, false, "127.0.0.2:0", "127.0.0.2:0");
    echo_on(&st, false, "0.0.0.0:0", "127.45.6.7:0");
}

#[test]
fn dual_stack_listener_takes_ipv4() {
    let st = Stack::new(StackConfig::default());
    let l = st.tcp(true);
    l.bind(addr("[::]:0")).unwrap();
    l.listen(4).unwrap();
    let port = l.local_addr().port();
    let c = st.tcp(false);
    connect(&c, SocketAddr::new("127.0.0.1".parse().unwrap(), port)).unwrap();
    let (_a, peer) = wait(|| l.accept()).unwrap();
    assert_eq!(peer.ip(), "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
    // With IPV6_V6ONLY, IPv4 is refused.
    let l6 = st.tcp(true);
    l6.set_opts(TcpOpts {
        v6only: true,
        ..l6.opts()
    });
    l6.bind(addr("[::]:0")).unwrap();
    l6.listen(4).unwrap();
    let c = st.tcp(false);
    let p = l6.local_addr().port();
    assert_eq!(
        connect(&c, SocketAddr::new("127.0.0.1".parse().unwrap(), p)),
        Err(Error::ConnRefused)
    );
}

#[test]
fn ipv4_and_ipv6_only_listeners_share_a_port() {
    let st = Stack::new(StackConfig::default());
    let l4 = st.tcp(false);
    l4.bind(addr("0.0.0.0:0")).unwrap();
    let port = l4.local_addr().port();
    l4.listen(8).unwrap();
    let l6 = st.tcp(true);
    l6.set_opts(TcpOpts {
        v6only: true,
        ..l6.opts()
    });
    l6.bind(SocketAddr::new("::".parse().unwrap(), port))
        .unwrap();
    l6.listen(8).unwrap();
    for _ in 0..6 {
        let c4 = st.tcp(false);
        connect(&c4, SocketAddr::new("127.0.0.1".parse().unwrap(), port)).unwrap();
        let (_a, p) = wait(|| l4.accept()).unwrap();
        assert_eq!(p, c4.local_addr());
        let c6 = st.tcp(true);
        connect(&c6, SocketAddr::new("::1".parse().unwrap(), port)).unwrap();
        let (_b, p) = wait(|| l6.accept()).unwrap();
        assert_eq!(p, c6.local_addr());
    }
    assert_eq!(l4.accept().err(), Some(Error::WouldBlock));
    assert_eq!(l6.accept().err(), Some(Error::WouldBlock));
}

#[test]
fn refused_and_addr_in_use() {
    let st = Stack::new(StackConfig::default());
    let c = st.tcp(false);
    assert_eq!(connect(&c, addr("127.0.0.1:9")), Err(Error::ConnRefused));
    assert_eq!(c.events() & (EV_ERR | EV_HUP), EV_HUP);

    let a = st.tcp(false);
    a.bind(addr("127.0.0.1:0")).unwrap();
    let port = a.local_addr().port();
    let b = st.tcp(false);
    assert_eq!(
        b.bind(SocketAddr::new("0.0.0.0".parse().unwrap(), port)),
        Err(Error::AddrInUse)
    );
    // Both with SO_REUSEADDR and not listening: allowed; then only one may listen.
    a.set_opts(TcpOpts {
        reuseaddr: true,
        ..a.opts()
    });
    b.set_opts(TcpOpts {
        reuseaddr: true,
        ..b.opts()
    });
    b.bind(SocketAddr::new("127.0.0.1".parse().unwrap(), port))
        .unwrap();
    a.listen(1).unwrap();
    assert_eq!(b.listen(1), Err(Error::AddrInUse));
    // Unbound address.
    let d = st.tcp(false);
    assert_eq!(d.bind(addr("10.1.2.3:0")), Err(Error::AddrNotAvail));
    assert_eq!(d.connect(addr("10.1.2.3:80")), Err(Error::NetUnreach));
}

#[test]
fn backlog_many_connections() {
    let st = Stack::new(StackConfig::default());
    let l = st.tcp(false);
    l.bind(addr("127.0.0.1:0")).unwrap();
    l.listen(128).unwrap();
    let dst = l.local_addr();
    let clients: Vec<TcpSocket> = (0..100)
        .map(|_| {
            let c = st.tcp(false);
            connect(&c, dst).unwrap();
            c
        })
        .collect();
    let mut server = vec![];
    for _ in 0..100 {
        server.push(wait(|| l.accept()).unwrap().0);
    }
    assert_eq!(l.accept().err(), Some(Error::WouldBlock));
    for (i, c) in clients.iter().enumerate() {
        send_all(c, format!("{i:04}").as_bytes());
    }
    let mut seen: Vec<String> = server
        .iter()
        .map(|s| String::from_utf8(recv_exact(s, 4)).unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen[0], "0000");
    assert_eq!(seen[99], "0099");
}

#[test]
fn syns_past_the_backlog_wait_instead_of_being_reset() {
    // Linux drops a SYN while the accept queue is full (the client retries); it never
    // refuses it. Eight connects at once against a backlog of 1 all end up accepted.
    let st = Stack::new(StackConfig::default());
    let l = st.tcp(false);
    l.bind(addr("127.0.0.1:0")).unwrap();
    l.listen(1).unwrap();
    let dst = l.local_addr();
    let clients: Vec<TcpSocket> = (0..8)
        .map(|_| {
            let c = st.tcp(false);
            assert_eq!(c.connect(dst), Err(Error::InProgress));
            c
        })
        .collect();
    let mut server = vec![];
    for _ in 0..8 {
        server.push(wait(|| l.accept()).unwrap().0);
    }
    for (i, c) in clients.iter().enumerate() {
        connected(c).unwrap();
        send_all(c, &[i as u8]);
    }
    let mut seen: Vec<u8> = server.iter().map(|s| recv_exact(s, 1)[0]).collect();
    seen.sort();
    assert_eq!(seen, (0..8).collect::<Vec<u8>>());
}

#[test]
fn half_close_and_reset() {
    let st = Stack::new(StackConfig::default());
    let l = st.tcp(false);
    l.bind(addr("127.0.0.1:0")).unwrap();
    l.listen(4).unwrap();
    let c = st.tcp(false);
    connect(&c, l.local_addr()).unwrap();
    let (a, _) = wait(|| l.accept()).unwrap();
    send_all(&c, b"req");
    c.shutdown(SHUT_WR).unwrap();
    assert_eq!(c.send(b"x"), Err(Error::Pipe));
    assert_eq!(recv_exact(&a, 3), b"req");
    let mut b = [0u8; 8];
    assert_eq!(wait(|| a.recv(&mut b, false)), Ok(0));
    assert_ne!(a.events() & EV_RDHUP, 0);
    // The other direction still works.
    send_all(&a, b"resp");
    assert_eq!(recv_exact(&c, 4), b"resp");
    drop(a);
    assert_eq!(wait(|| c.recv(&mut b, false)), Ok(0));
    assert_ne!(c.events() & EV_HUP, 0);

    // Closing with unread data resets the connection.
    let c = st.tcp(false);
    connect(&c, l.local_addr()).unwrap();
    let (a, _) = wait(|| l.accept()).unwrap();
    send_all(&c, b"unread");
    let _ = recv_exact(&a, 0);
    std::thread::sleep(Duration::from_millis(10));
    drop(a);
    let r = wait(|| c.recv(&mut b, false));
    assert_eq!(r, Err(Error::ConnReset));
    assert_eq!(c.send(b"x"), Err(Error::Pipe));
}

#[test]
fn peek_nodelay_and_waker() {
    let st = Stack::new(StackConfig::default());
    let l = st.tcp(false);
    l.bind(addr("127.0.0.1:0")).unwrap();
    l.listen(4).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    l.set_waker(Arc::new(move || {
        h2.fetch_add(1, Ordering::SeqCst);
    }));
    let c = st.tcp(false);
    c.set_opts(TcpOpts {
        nodelay: true,
        keepalive: true,
        ..c.opts()
    });
    connect(&c, l.local_addr()).unwrap();
    assert!(hits.load(Ordering::SeqCst) > 0, "listener woken");
    assert_ne!(l.events() & EV_IN, 0);
    let (a, _) = wait(|| l.accept()).unwrap();
    send_all(&c, b"abcdef");
    let mut b = [0u8; 3];
    wait(|| {
        if a.queues().0 < 6 {
            Err(Error::WouldBlock)
        } else {
            Ok(())
        }
    })
    .unwrap();
    assert_eq!(a.recv(&mut b, true), Ok(3));
    assert_eq!(&b, b"abc");
    assert_eq!(a.queues().0, 6);
    assert_eq!(a.recv(&mut b, false), Ok(3));
    assert_eq!(&b, b"abc");
    assert_eq!(a.recv(&mut b, false), Ok(3));
    assert_eq!(&b, b"def");
    assert_eq!(a.recv(&mut b, false), Err(Error::WouldBlock));
}

#[test]
fn udp_echo_loopback() {
    let st = Stack::new(StackConfig::default());
    for (v6, lo) in [(false, "127.0.0.1:0"), (true, "[::1]:0")] {
        let s = st.udp(v6);
        s.bind(addr(lo)).unwrap();
        let sa = s.local_addr();
        let c = st.udp(v6);
        assert_eq!(c.send_to(b"ping", Some(sa)), Ok(4));
        let mut b = [0u8; 2];
        let d = wait(|| s.recv_from(&mut b, false)).unwrap();
        assert_eq!((d.len, d.full), (2, 4));
        assert_eq!(d.from.port(), c.local_addr().port());
        assert!(d.from.ip().is_loopback());
        assert_eq!(s.send_to(b"pong", Some(d.from)), Ok(4));
        let mut b = [0u8; 16];
        let d = wait(|| c.recv_from(&mut b, false)).unwrap();
        assert_eq!(&b[..d.len], b"pong");
        // A connected socket only hears from its peer.
        let other = st.udp(v6);
        c.connect(Some(sa)).unwrap();
        other.send_to(b"noise", Some(c.local_addr())).unwrap();
        s.send_to(b"peer", Some(c.local_addr())).unwrap();
        let d = wait(|| c.recv_from(&mut b, false)).unwrap();
        assert_eq!(&b[..d.len], b"peer");
        assert_eq!(c.send_to(b"x", None), Ok(1));
    }
    // A connected socket hears ICMP port unreachable as ECONNREFUSED, once.
    let gone = st.udp(false);
    gone.bind(addr("127.0.0.1:0")).unwrap();
    let to = gone.local_addr();
    drop(gone);
    let c = st.udp(false);
    c.connect(Some(to)).unwrap();
    assert_eq!(c.send_to(b"x", None), Ok(1));
    assert_ne!(c.events() & EV_ERR, 0);
    let mut b = [0u8; 4];
    assert_eq!(c.recv_from(&mut b, false).err(), Some(Error::ConnRefused));
    assert_eq!(c.recv_from(&mut b, false).err(), Some(Error::WouldBlock));
    let u = st.udp(false);
    assert_eq!(u.send_to(b"x", Some(to)), Ok(1));
    assert_eq!(u.events() & EV_ERR, 0);
    assert_eq!(u.send_to(b"x", None), Err(Error::DestAddrRequired));
    assert_eq!(
        u.send_to(&vec![0u8; 70000], Some(addr("127.0.0.1:9"))),
        Err(Error::MsgSize)
    );
}

fn linked() -> (Stack, Stack) {
    let (la, lb) = MemLink::pair();
    let a = Stack::new(StackConfig {
        loopback: true,
        links: vec![LinkConfig {
            link: Box::new(la),
            addrs: vec![("10.0.0.1".parse().unwrap(), 24)],
            gateway4: None,
            gateway6: None,
            ethernet: None,
        }],
        seed: 1,
    });
    let b = Stack::new(StackConfig {
        loopback: true,
        links: vec![LinkConfig {
            link: Box::new(lb),
            addrs: vec![
                ("10.0.0.2".parse().unwrap(), 24),
                ("fd00::2".parse().unwrap(), 64),
            ],
            gateway4: None,
            gateway6: None,
            ethernet: None,
        }],
        seed: 2,
    });
    (a, b)
}

#[test]
fn two_stacks_over_a_link() {
    let (a, b) = linked();
    let l = b.tcp(false);
    l.bind(addr("0.0.0.0:8080")).unwrap();
    l.listen(4).unwrap();
    let c = a.tcp(false);
    connect(&c, addr("10.0.0.2:8080")).unwrap();
    assert_eq!(c.local_addr().ip(), "10.0.0.1".parse::<IpAddr>().unwrap());
    let (s, peer) = wait(|| l.accept()).unwrap();
    assert_eq!(peer, c.local_addr());
    // A megabyte each way exercises windows, the poller thread and the link wake-ups.
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let d2 = data.clone();
    let t = std::thread::spawn(move || {
        send_all(&c, &d2);
        c.shutdown(SHUT_WR).unwrap();
        c
    });
    assert_eq!(recv_exact(&s, data.len()), data);
    let mut b1 = [0u8; 4];
    assert_eq!(wait(|| s.recv(&mut b1, false)), Ok(0));
    let _c = t.join().unwrap();

    // Refused across the link, and UDP.
    let c = a.tcp(false);
    assert_eq!(connect(&c, addr("10.0.0.2:9")), Err(Error::ConnRefused));
    let u = b.udp(false);
    u.bind(addr("10.0.0.2:5353")).unwrap();
    let v = a.udp(false);
    v.send_to(b"over the link", Some(addr("10.0.0.2:5353")))
        .unwrap();
    let mut buf = [0u8; 64];
    let d = wait(|| u.recv_from(&mut buf, false)).unwrap();
    assert_eq!(&buf[..d.len], b"over the link");
    assert_eq!(d.from.ip(), "10.0.0.1".parse::<IpAddr>().unwrap());
    // Loopback of each stack stays its own.
    let lo = b.tcp(false);
    assert_eq!(connect(&lo, addr("127.0.0.1:8080")), Ok(()));
}

#[test]
fn idle_stack_has_no_timer() {
    let st = Stack::new(StackConfig::default());
    {
        let l = st.tcp(false);
        l.bind(addr("127.0.0.1:0")).unwrap();
        l.listen(2).unwrap();
        let c = st.tcp(false);
        connect(&c, l.local_addr()).unwrap();
        let (a, _) = wait(|| l.accept()).unwrap();
        send_all(&c, b"x");
        assert_eq!(recv_exact(&a, 1), b"x");
        drop(c);
        drop(a);
    }
    // Once everything is closed and wound down, nothing is scheduled.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let (n, orphans) = st.h.sh.peek(|i| (i.next_poll(), i.orphans.len()));
        if n.is_none() && orphans == 0 {
            break;
        }
        assert!(
            Instant::now() < end,
            "still scheduled: {n:?}, {orphans} orphans"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A link that loses every `n`th packet it sends.
struct Lossy {
    inner: MemLink,
    n: usize,
    count: usize,
}

impl Link for Lossy {
    fn transmit(&mut self, packet: &[u8]) {
        self.count += 1;
        if !self.count.is_multiple_of(self.n) {
            self.inner.transmit(packet);
        }
    }
    fn receive(&mut self) -> Option<Vec<u8>> {
        self.inner.receive()
    }
    fn set_notify(&mut self, notify: LinkNotify) {
        self.inner.set_notify(notify)
    }
}

#[test]
fn retransmission_over_a_lossy_link() {
    let (la, lb) = MemLink::pair();
    let mk = |link: Box<dyn Link>, a: &str| {
        Stack::new(StackConfig {
            loopback: true,
            links: vec![LinkConfig {
                link,
                addrs: vec![(a.parse().unwrap(), 24)],
                gateway4: None,
                gateway6: None,
                ethernet: None,
            }],
            seed: 7,
        })
    };
    let a = mk(
        Box::new(Lossy {
            inner: la,
            n: 5,
            count: 0,
        }),
        "10.0.0.1",
    );
    let b = mk(
        Box::new(Lossy {
            inner: lb,
            n: 7,
            count: 0,
        }),
        "10.0.0.2",
    );
    let l = b.tcp(false);
    l.bind(addr("10.0.0.2:80")).unwrap();
    l.listen(1).unwrap();
    let c = a.tcp(false);
    connect(&c, addr("10.0.0.2:80")).unwrap();
    let (s, _) = wait(|| l.accept()).unwrap();
    // Lost segments come back only through the retransmission timers (the poller).
    let data: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
    let d2 = data.clone();
    let t = std::thread::spawn(move || {
        send_all(&c, &d2);
        c
    });
    let end = Instant::now() + Duration::from_secs(60);
    let mut got = vec![];
    let mut buf = vec![0u8; 65536];
    while got.len() < data.len() {
        assert!(Instant::now() < end, "stalled at {} bytes", got.len());
        match s.recv(&mut buf, false) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(Error::WouldBlock) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got, data);
    drop(t.join().unwrap());
}

#[test]
fn interfaces_and_routes() {
    let (la, _lb) = MemLink::pair();
    let st = Stack::new(StackConfig {
        loopback: true,
        links: vec![LinkConfig {
            link: Box::new(la),
            addrs: vec![("10.0.0.2".parse().unwrap(), 24)],
            gateway4: Some("10.0.0.1".parse().unwrap()),
            gateway6: None,
            ethernet: None,
        }],
        seed: 1,
    });
    let ifs = st.interfaces();
    assert_eq!(ifs.len(), 2);
    assert_eq!((ifs[0].index, ifs[0].name.as_str()), (1, "lo"));
    assert_eq!(ifs[0].kind, HwKind::Loopback);
    assert!(ifs[0].addrs.contains(&("127.0.0.1".parse().unwrap(), 8)));
    assert!(ifs[0].addrs.contains(&("::1".parse().unwrap(), 128)));
    assert_eq!((ifs[1].index, ifs[1].name.as_str()), (2, "eth0"));
    assert_eq!(ifs[1].addrs, vec![("10.0.0.2".parse().unwrap(), 24)]);
    let r = st.routes();
    let has = |dst: &str, p: u8, kind: RouteKind, ifindex: u32| {
        r.iter().any(|x| {
            x.dst == dst.parse::<IpAddr>().unwrap()
                && x.prefix == p
                && x.kind == kind
                && x.ifindex == ifindex
        })
    };
    assert!(has("0.0.0.0", 0, RouteKind::Unicast, 2));
    assert!(r[0].gateway == Some("10.0.0.1".parse().unwrap()));
    assert!(has("10.0.0.0", 24, RouteKind::Unicast, 2));
    assert!(has("10.0.0.2", 32, RouteKind::Local, 2));
    assert!(has("10.0.0.255", 32, RouteKind::Broadcast, 2));
    assert!(has("127.0.0.0", 8, RouteKind::Local, 1));
    assert!(has("::1", 128, RouteKind::Unicast, 1));
    // Loopback traffic is counted on lo.
    let before = st.interfaces()[0].stats;
    let u = st.udp(false);
    u.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = u.local_addr();
    u.send_to(b"x", Some(to)).unwrap();
    let after = st.interfaces()[0].stats;
    assert_eq!(after.tx_packets, before.tx_packets + 1);
    assert_eq!(after.rx_packets, before.rx_packets + 1);
}

#[test]
fn udp_ipv6_datagram_larger_than_the_mtu_is_refused_not_lost() {
    let st = Stack::new(StackConfig::default());
    let u = st.udp(true);
    u.bind("[::1]:0".parse().unwrap()).unwrap();
    let to = u.local_addr();
    assert_eq!(u.send_to(&[7u8; 65488], Some(to)), Err(Error::MsgSize));
    assert_eq!(u.send_to(&[7u8; 65487], Some(to)), Ok(65487));
    let mut buf = vec![0u8; 70000];
    let d = wait(|| u.recv_from(&mut buf, false)).unwrap();
    assert_eq!(d.len, 65487);
}

#[test]
fn udp_hop_limits_reach_the_receiver() {
    let st = Stack::new(StackConfig::default());
    for v6 in [false, true] {
        let lo = if v6 { "[::1]:0" } else { "127.0.0.1:0" };
        let r = st.udp(v6);
        r.bind(lo.parse().unwrap()).unwrap();
        let s = st.udp(v6);
        let mut o = s.opts();
        o.hops = Hops {
            ttl: Some(7),
            unicast6: Some(9),
            ..Hops::default()
        };
        s.set_opts(o);
        s.send_to(b"a", Some(r.local_addr())).unwrap();
        let mut buf = [0u8; 8];
        let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
        assert_eq!(d.ttl, if v6 { 9 } else { 7 });
        // The default.
        let u = st.udp(v6);
        u.send_to(b"b", Some(r.local_addr())).unwrap();
        assert_eq!(wait(|| r.recv_from(&mut buf, false)).unwrap().ttl, 64);
    }
}

#[test]
fn reuseport_shares_connections_and_datagrams() {
    let st = Stack::new(StackConfig::default());
    let any: SocketAddr = "127.0.0.1:4600".parse().unwrap();
    // Without SO_REUSEPORT on both (or with different owners): EADDRINUSE.
    let ls: Vec<TcpSocket> = (0..2).map(|_| st.tcp(false)).collect();
    let mut o = ls[0].opts();
    o.reuseport = Some(1000);
    ls[0].set_opts(o);
    ls[0].bind(any).unwrap();
    assert_eq!(ls[1].bind(any), Err(Error::AddrInUse));
    o.reuseport = Some(1001);
    ls[1].set_opts(o);
    assert_eq!(ls[1].bind(any), Err(Error::AddrInUse));
    o.reuseport = Some(1000);
    ls[1].set_opts(o);
    ls[1].bind(any).unwrap();
    for l in &ls {
        l.listen(64).unwrap();
    }
    let mut conns = vec![];
    for _ in 0..24 {
        let c = st.tcp(false);
        assert_eq!(c.connect(any), Err(Error::InProgress));
        connected(&c).unwrap();
        conns.push(c);
    }
    let mut got = [0, 0];
    for (k, l) in ls.iter().enumerate() {
        while l.accept().is_ok() {
            got[k] += 1;
        }
    }
    assert_eq!(got[0] + got[1], 24, "{got:?}");
    assert!(got[0] > 0 && got[1] > 0, "{got:?}");

    let us: Vec<UdpSocket> = (0..2).map(|_| st.udp(false)).collect();
    for u in &us {
        let mut o = u.opts();
        o.reuseport = Some(7);
        u.set_opts(o);
        u.bind(any).unwrap();
    }
    let mut senders = vec![];
    for _ in 0..24 {
        let s = st.udp(false);
        s.send_to(b"x", Some(any)).unwrap();
        senders.push(s);
    }
    let mut got = [0, 0];
    let mut buf = [0u8; 4];
    for (k, u) in us.iter().enumerate() {
        while let Ok(d) = u.recv_from(&mut buf, false) {
            assert_eq!((d.len, d.ttl), (1, 64));
            got[k] += 1;
        }
    }
    assert_eq!(got[0] + got[1], 24, "{got:?}");
    assert!(got[0] > 0 && got[1] > 0, "{got:?}");
}

/// A link that notes the (protocol, TTL) of each IPv4 packet it sends.
struct Spy(MemLink, Arc<parking_lot::Mutex<Vec<(u8, u8)>>>);

impl Link for Spy {
    fn transmit(&mut self, p: &[u8]) {
        if p.len() >= 20 && p[0] >> 4 == 4 {
            self.1.lock().push((p[9], p[8]));
        }
        self.0.transmit(p)
    }
    fn receive(&mut self) -> Option<Vec<u8>> {
        self.0.receive()
    }
    fn set_notify(&mut self, n: LinkNotify) {
        self.0.set_notify(n)
    }
}

#[test]
fn tcp_hop_limit_on_the_wire() {
    let (la, lb) = MemLink::pair();
    let seen = Arc::new(parking_lot::Mutex::new(vec![]));
    let cfg = |link: Box<dyn Link>, a: &str| StackConfig {
        loopback: true,
        links: vec![LinkConfig {
            link,
            addrs: vec![(a.parse().unwrap(), 24)],
            gateway4: None,
            gateway6: None,
            ethernet: None,
        }],
        seed: 3,
    };
    let a = Stack::new(cfg(Box::new(Spy(la, seen.clone())), "10.0.0.1"));
    let b = Stack::new(cfg(Box::new(lb), "10.0.0.2"));
    let l = b.tcp(false);
    l.bind(addr("0.0.0.0:8080")).unwrap();
    l.listen(4).unwrap();
    let c = a.tcp(false);
    let mut o = c.opts();
    o.hops.ttl = Some(5);
    c.set_opts(o);
    connect(&c, addr("10.0.0.2:8080")).unwrap();
    let (_s, _) = wait(|| l.accept()).unwrap();
    // Changed on a live connection, it applies to what is sent next.
    o.hops.ttl = Some(33);
    c.set_opts(o);
    send_all(&c, b"x");
    let seen = seen.lock().clone();
    assert!(seen.iter().all(|&(p, _)| p == 6), "{seen:?}");
    assert_eq!(seen.first(), Some(&(6, 5)), "the SYN: {seen:?}");
    assert_eq!(seen.last(), Some(&(6, 33)), "{seen:?}");
}

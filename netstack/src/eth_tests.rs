//! Two stacks joined by an in-memory Ethernet link: ARP and NDP by smoltcp, TCP and UDP
//! across, loopback and own addresses kept off the wire.

use super::tests::{addr, connect, recv_exact, send_all, wait};
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A MemLink that counts the frames it sends.
struct Counted {
    inner: MemLink,
    sent: Arc<AtomicUsize>,
}

impl Link for Counted {
    fn transmit(&mut self, f: &[u8]) {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.transmit(f)
    }
    fn receive(&mut self) -> Option<Vec<u8>> {
        self.inner.receive()
    }
    fn set_notify(&mut self, n: LinkNotify) {
        self.inner.set_notify(n)
    }
}

pub(crate) fn eth(link: Box<dyn Link>, mac: u8, v4: &str, v6: &str) -> LinkConfig {
    LinkConfig {
        link,
        addrs: vec![(v4.parse().unwrap(), 24), (v6.parse().unwrap(), 64)],
        gateway4: Some("10.1.0.254".parse().unwrap()),
        gateway6: None,
        ethernet: Some(EthernetConfig {
            name: "eth0".into(),
            index: 2,
            mac: [2, 0, 0, 0, 0, mac],
            mtu: 1500,
            routes: vec![],
        }),
    }
}

fn pair() -> (Stack, Stack, Arc<AtomicUsize>) {
    let (la, lb) = MemLink::pair();
    let sent = Arc::new(AtomicUsize::new(0));
    let a = Stack::new(StackConfig {
        loopback: true,
        links: vec![eth(
            Box::new(Counted {
                inner: la,
                sent: sent.clone(),
            }),
            1,
            "10.1.0.1",
            "fd01::1",
        )],
        seed: 3,
    });
    let b = Stack::new(StackConfig {
        loopback: true,
        links: vec![eth(Box::new(lb), 2, "10.1.0.2", "fd01::2")],
        seed: 4,
    });
    (a, b, sent)
}

pub(crate) fn tcp_across(a: &Stack, b: &Stack, v6: bool, listen: &str, to: &str) {
    let l = b.tcp(v6);
    l.bind(addr(listen)).unwrap();
    l.listen(4).unwrap();
    let c = a.tcp(v6);
    connect(&c, addr(to)).unwrap();
    let (s, peer) = wait(|| l.accept()).unwrap();
    assert_eq!(peer, c.local_addr());
    // More than a few MTUs each way: segmentation at the link's MSS.
    let data: Vec<u8> = (0..200_000).map(|i| (i * 13 % 251) as u8).collect();
    let d2 = data.clone();
    let t = std::thread::spawn(move || {
        send_all(&c, &d2);
        c
    });
    assert_eq!(recv_exact(&s, data.len()), data);
    let c = t.join().unwrap();
    send_all(&s, b"back");
    assert_eq!(recv_exact(&c, 4), b"back");
}

#[test]
fn tcp_and_udp_over_ethernet_v4_and_v6() {
    let (a, b, _) = pair();
    // The first connection resolves the peer with ARP (and NDP for IPv6).
    tcp_across(&a, &b, false, "0.0.0.0:80", "10.1.0.2:80");
    tcp_across(&a, &b, true, "[::]:81", "[fd01::2]:81");
    assert_eq!(
        connect(&a.tcp(false), addr("10.1.0.2:9")),
        Err(Error::ConnRefused)
    );
    let u = b.udp(false);
    u.bind(addr("0.0.0.0:53")).unwrap();
    let v = a.udp(false);
    v.send_to(b"query", Some(addr("10.1.0.2:53"))).unwrap();
    let mut buf = [0u8; 64];
    let d = wait(|| u.recv_from(&mut buf, false)).unwrap();
    assert_eq!(&buf[..d.len], b"query");
    assert_eq!(d.from.ip(), "10.1.0.1".parse::<IpAddr>().unwrap());
    u.send_to(b"answer", Some(d.from)).unwrap();
    let d = wait(|| v.recv_from(&mut buf, false)).unwrap();
    assert_eq!(&buf[..d.len], b"answer");
}

#[test]
fn loopback_and_own_address_stay_off_the_wire() {
    let (a, _b, sent) = pair();
    tcp_across(&a, &a, false, "0.0.0.0:7000", "127.0.0.1:7000");
    tcp_across(&a, &a, false, "0.0.0.0:7001", "127.0.0.9:7001");
    tcp_across(&a, &a, false, "0.0.0.0:7002", "10.1.0.1:7002");
    tcp_across(&a, &a, true, "[::]:7003", "[::1]:7003");
    tcp_across(&a, &a, true, "[::]:7004", "[fd01::1]:7004");
    assert_eq!(sent.load(Ordering::SeqCst), 0, "frames left for the link");
}

#[test]
fn nothing_answers_for_other_hosts() {
    let (a, _b, _) = pair();
    // 10.1.0.3 is on the link's subnet but nobody has it: ARP gets no answer.
    let c = a.tcp(false);
    assert_eq!(c.connect(addr("10.1.0.3:80")), Err(Error::InProgress));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.connect_result(), None);
}

#[test]
fn the_link_is_described() {
    let (a, _b, _) = pair();
    let e = a.ethernet().expect("an Ethernet link");
    assert_eq!((e.config.name.as_str(), e.config.index), ("eth0", 2));
    assert_eq!((e.config.mac, e.config.mtu), ([2, 0, 0, 0, 0, 1], 1500));
    assert_eq!(
        e.addrs,
        vec![
            ("10.1.0.1".parse().unwrap(), 24),
            ("fd01::1".parse().unwrap(), 64)
        ]
    );
    assert!(Stack::new(StackConfig::default()).ethernet().is_none());
}

#[test]
fn a_second_ethernet_link_is_refused() {
    let (a, _b, _) = pair();
    let (l, _) = MemLink::pair();
    assert_eq!(
        a.add_link(eth(Box::new(l), 3, "10.2.0.1", "fd02::1")),
        Err(Error::Invalid)
    );
}

#[test]
fn the_ethernet_link_is_an_interface_with_routes() {
    let (a, _b, _) = pair();
    let ifs = a.interfaces();
    assert_eq!(ifs.len(), 2);
    let e = &ifs[1];
    assert_eq!(
        (e.index, e.name.as_str(), e.kind),
        (2, "eth0", HwKind::Ethernet)
    );
    assert_eq!((e.mac, e.mtu), ([2, 0, 0, 0, 0, 1], 1500));
    assert!(e.flags & info::IFF_BROADCAST != 0);
    let r = a.routes();
    let gw: IpAddr = "10.1.0.254".parse().unwrap();
    assert!(r
        .iter()
        .any(|x| x.prefix == 0 && x.gateway == Some(gw) && x.ifindex == 2));
    assert!(r
        .iter()
        .any(|x| x.dst == "10.1.0.0".parse::<IpAddr>().unwrap()
            && x.prefix == 24
            && x.kind == RouteKind::Unicast
            && x.ifindex == 2));
    assert!(r
        .iter()
        .any(|x| x.dst == "fd01::".parse::<IpAddr>().unwrap() && x.prefix == 64 && x.ifindex == 2));
}

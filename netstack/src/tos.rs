//! The DS field (IPv4 TOS, IPv6 traffic class) of what sockets send and receive.
//!
//! smoltcp 0.14 always sends 0 there, so the device writes it into each packet on its
//! way out (fixing the IPv4 header checksum): a UDP datagram carries its value in its
//! packet metadata id (with [`TX_MARK`]); TCP segments are matched by flow against the
//! table [`Dev::tcp_tos`] built from TCP sockets that set one. On the way in, the value
//! is read from the header and handed to smoltcp in the metadata id (bits 8..16) with the
//! hop limit (bits 0..8), for IP_RECVTOS and IPV6_RECVTCLASS.

use crate::*;

/// In a transmitted packet's metadata id: the low byte is the DS field to send.
pub(crate) const TX_MARK: u32 = 1 << 31;

/// What a socket sends in the DS field: IP_TOS for IPv4 packets (also those of an IPv6
/// socket to IPv4-mapped addresses), IPV6_TCLASS for IPv6 ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tos {
    pub v4: u8,
    pub v6: u8,
}

impl Tos {
    /// The DS field of a packet to `dst`.
    pub fn for_dst(&self, dst: IpAddr) -> u8 {
        match dst {
            IpAddr::V4(_) => self.v4,
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => self.v4,
            IpAddr::V6(_) => self.v6,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.v4 == 0 && self.v6 == 0
    }
}

/// What one datagram is sent with: its DS fields and, if sendmsg gave one, its hop limit
/// (else the socket's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOpts {
    pub tos: Tos,
    pub hop_limit: Option<u8>,
}

/// A TCP flow whose segments carry a DS field: a connection (`remote` Some) or a
/// listener (its SYN-ACKs, before the connection is known).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    pub(crate) local: SocketAddr,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) tos: Tos,
}

/// The DS field of an IP packet.
pub(crate) fn ds_field(ip: &[u8]) -> u8 {
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => ip[1],
        Some(6) if ip.len() >= 40 => (ip[0] << 4) | (ip[1] >> 4),
        _ => 0,
    }
}

/// Write the DS field of an IP packet (and the IPv4 header checksum).
pub(crate) fn set_ds_field(ip: &mut [u8], v: u8) {
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            let ihl = ((ip[0] & 0xf) as usize * 4).clamp(20, ip.len());
            ip[1] = v;
            ip[10..12].fill(0);
            let mut s: u32 = ip[..ihl]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
                .sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
        }
        Some(6) if ip.len() >= 40 => {
            ip[0] = 0x60 | (v >> 4);
            ip[1] = (v << 4) | (ip[1] & 0xf);
        }
        _ => {}
    }
}

/// The DS field the TCP segment `ip` gets from `flows`: its connection's, else its
/// listener's (same port, the address or the wildcard).
pub(crate) fn tcp_flow_tos(flows: &[Flow], ip: &[u8]) -> Option<u8> {
    let v6 = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 && ip[9] == 6 => false,
        Some(6) if ip.len() >= 40 && ip[6] == 6 => true,
        _ => return None,
    };
    let (src, dst, l4) = if v6 {
        let a = |o: usize| {
            let b: [u8; 16] = ip[o..o + 16].try_into().expect("16 bytes");
            IpAddr::V6(Ipv6Addr::from(b))
        };
        (a(8), a(24), 40)
    } else {
        let a = |o: usize| IpAddr::V4(Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]));
        (a(12), a(16), ((ip[0] & 0xf) as usize) * 4)
    };
    let p = ip.get(l4..l4 + 4)?;
    let from = SocketAddr::new(src, u16::from_be_bytes([p[0], p[1]]));
    let to = SocketAddr::new(dst, u16::from_be_bytes([p[2], p[3]]));
    let same = |a: SocketAddr, b: SocketAddr| canon(a) == canon(b);
    let pick = |f: &Flow| f.tos.for_dst(dst);
    if let Some(f) = flows
        .iter()
        .find(|f| f.remote.is_some_and(|r| same(r, to)) && same(f.local, from))
    {
        return Some(pick(f));
    }
    flows
        .iter()
        .find(|f| {
            f.remote.is_none()
                && f.local.port() == from.port()
                && (f.local.ip().is_unspecified() || same(f.local, from))
        })
        .map(pick)
}

impl Dev {
    /// Write the DS field of an outgoing IP packet: `given` (a UDP datagram's metadata),
    /// else its TCP flow's or UDP port's, or its IPv4 datagram's first fragment's; an
    /// echo reply smoltcp sends has the request's (`answering`).
    pub(crate) fn put_tos(&mut self, ip: &mut [u8], given: Option<u8>, answering: Option<u8>) {
        let v4 = ip.len() >= 20 && ip[0] >> 4 == 4;
        let frag = if v4 {
            u16::from_be_bytes([ip[6], ip[7]])
        } else {
            0
        };
        let tos = match given {
            Some(v) => v,
            None if frag & 0x1fff != 0 => self.frag_tos,
            None if answering.is_some() && is_echo_reply(ip) => answering.unwrap_or(0),
            None => self.flow_tos(ip).or_else(|| self.tap_tos(ip)).unwrap_or(0),
        };
        if frag & 0x2000 != 0 {
            self.frag_tos = tos;
        }
        if tos != 0 {
            set_ds_field(ip, tos);
        }
    }

    /// Note the DS field of an ICMP message `msg` to `to` queued on a tap.
    pub(crate) fn note_tap_tos(&mut self, to: IpAddr, msg: &[u8], tos: u8) {
        if tos == 0 {
            return;
        }
        if self.tap_tos.len() >= 1024 {
            self.tap_tos.pop_front();
        }
        self.tap_tos.push_back((to, head8(msg), tos));
    }

    /// The DS field of an ICMP message a tap sends, as noted.
    fn tap_tos(&mut self, ip: &[u8]) -> Option<u8> {
        if self.tap_tos.is_empty() {
            return None;
        }
        let (_, dst, msg) = icmp_of(ip)?;
        let key = head8(msg);
        let i = self.tap_tos.iter().position(|e| e.0 == dst && e.1 == key)?;
        self.tap_tos.remove(i).map(|e| e.2)
    }

    /// The DS field a received ICMP message from `src` came with, as noted on receipt.
    pub(crate) fn tap_rx_tos(&mut self, src: IpAddr, msg: &[u8]) -> u8 {
        if self.tap_rx_tos.is_empty() {
            return 0;
        }
        let key = head8(msg);
        match self
            .tap_rx_tos
            .iter()
            .position(|e| e.0 == src && e.1 == key)
        {
            Some(i) => self.tap_rx_tos.remove(i).map_or(0, |e| e.2),
            None => 0,
        }
    }

    fn flow_tos(&self, ip: &[u8]) -> Option<u8> {
        let (v6, proto, l4) = match ip.first().map(|b| b >> 4) {
            Some(4) if ip.len() >= 20 => (false, ip[9], ((ip[0] & 0xf) as usize) * 4),
            Some(6) if ip.len() >= 40 => (true, ip[6], 40),
            _ => return None,
        };
        match proto {
            6 if !self.tcp_tos.is_empty() => tcp_flow_tos(&self.tcp_tos, ip),
            17 if !self.udp_tos.is_empty() => {
                let p = ip.get(l4..l4 + 2)?;
                self.udp_tos
                    .get(&(v6, u16::from_be_bytes([p[0], p[1]])))
                    .copied()
            }
            _ => None,
        }
    }
}

/// An ICMP/ICMPv6 packet's source, destination and message.
fn icmp_of(ip: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    let (off, src) = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 && ip[9] == 1 => (
            ((ip[0] & 0xf) as usize) * 4,
            IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
        ),
        Some(6) if ip.len() >= 40 && ip[6] == 58 => {
            let b: [u8; 16] = ip[8..24].try_into().expect("16 bytes");
            (40, IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => return None,
    };
    Some((src, dst_of(ip)?, ip.get(off..)?))
}

/// Note a received ICMP packet's DS field for its tap (see `Dev::tap_rx_tos`).
pub(crate) fn note_icmp(q: &mut VecDeque<(IpAddr, [u8; 8], u8)>, ip: &[u8], ds: u8) {
    if let Some((src, _, msg)) = icmp_of(ip) {
        if q.len() >= 1024 {
            q.pop_front();
        }
        q.push_back((src, head8(msg), ds));
    }
}

/// The first 8 bytes of an ICMP message (zero-padded), its checksum left out (which
/// the loopback may leave to be filled).
fn head8(msg: &[u8]) -> [u8; 8] {
    let mut b = [0u8; 8];
    let n = msg.len().min(8);
    b[..n].copy_from_slice(&msg[..n]);
    b[2..4].fill(0);
    b
}

/// Whether an IP packet is an ICMP or ICMPv6 echo reply.
fn is_echo_reply(ip: &[u8]) -> bool {
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            let ihl = ((ip[0] & 0xf) as usize) * 4;
            ip[9] == 1 && ip.get(ihl) == Some(&0)
        }
        Some(6) if ip.len() > 40 => ip[6] == 58 && ip[40] == 129,
        _ => false,
    }
}

/// An address with IPv4-mapped IPv6 addresses as IPv4.
fn canon(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v) => match v.ip().to_ipv4_mapped() {
            Some(m) => SocketAddr::new(IpAddr::V4(m), v.port()),
            None => a,
        },
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{addr, connect, send_all, wait};

    #[test]
    fn udp_ds_field_reaches_the_receiver() {
        let st = Stack::new(StackConfig::default());
        let tos = Tos { v4: 0xb9, v6: 0x2e };
        let mut buf = [0u8; 8];
        for (v6, lo) in [(false, "127.0.0.1:0"), (true, "[::1]:0")] {
            let r = st.udp(v6);
            r.bind(addr(lo)).unwrap();
            let s = st.udp(v6);
            s.send_to_opts(
                b"a",
                Some(r.local_addr()),
                SendOpts {
                    tos,
                    hop_limit: None,
                },
            )
            .unwrap();
            let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
            assert_eq!(d.tos, if v6 { 0x2e } else { 0xb9 });
            s.send_to(b"b", Some(r.local_addr())).unwrap();
            assert_eq!(wait(|| r.recv_from(&mut buf, false)).unwrap().tos, 0);
        }
        // An IPv6 socket sending to an IPv4-mapped address sends IPv4: IP_TOS applies.
        let r = st.udp(false);
        r.bind(addr("127.0.0.1:0")).unwrap();
        let to = SocketAddr::new(
            IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
            r.local_addr().port(),
        );
        st.udp(true)
            .send_to_opts(
                b"c",
                Some(to),
                SendOpts {
                    tos,
                    hop_limit: Some(3),
                },
            )
            .unwrap();
        let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
        assert_eq!((d.tos, d.ttl), (0xb9, 3));
    }

    /// A link that notes (protocol, DS field, IPv4 header checksum good) of what it sends.
    struct Spy(MemLink, Arc<parking_lot::Mutex<Vec<(u8, u8, bool)>>>);

    impl Link for Spy {
        fn transmit(&mut self, p: &[u8]) {
            if p.len() >= 20 && p[0] >> 4 == 4 {
                let mut s: u32 = p[..20]
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                    .sum();
                s = (s & 0xffff) + (s >> 16);
                self.1.lock().push((p[9], p[1], s == 0xffff));
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
    fn tcp_ds_field_on_the_wire() {
        let (la, lb) = MemLink::pair();
        let seen_a = Arc::new(parking_lot::Mutex::new(vec![]));
        let seen_b = Arc::new(parking_lot::Mutex::new(vec![]));
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
        let a = Stack::new(cfg(Box::new(Spy(la, seen_a.clone())), "10.0.0.1"));
        let b = Stack::new(cfg(Box::new(Spy(lb, seen_b.clone())), "10.0.0.2"));
        let l = b.tcp(false);
        let mut o = l.opts();
        o.tos.v4 = 0x48;
        l.set_opts(o);
        l.bind(addr("0.0.0.0:8080")).unwrap();
        l.listen(4).unwrap();
        let c = a.tcp(false);
        let mut o = c.opts();
        o.tos.v4 = 0xa0;
        c.set_opts(o);
        connect(&c, addr("10.0.0.2:8080")).unwrap();
        let (s, _) = wait(|| l.accept()).unwrap();
        send_all(&s, b"from the accepted socket");
        // Changed on a live connection, it applies to what is sent next.
        o.tos.v4 = 0x20;
        c.set_opts(o);
        send_all(&c, b"x");
        let seen_a = seen_a.lock().clone();
        let seen_b = seen_b.lock().clone();
        assert!(
            seen_a.iter().chain(&seen_b).all(|&(p, _, ok)| p == 6 && ok),
            "{seen_a:?} {seen_b:?}"
        );
        assert_eq!(
            seen_a.first().map(|s| s.1),
            Some(0xa0),
            "the SYN: {seen_a:?}"
        );
        assert_eq!(seen_a.last().map(|s| s.1), Some(0x20), "{seen_a:?}");
        assert!(
            seen_b.iter().all(|s| s.1 == 0x48),
            "SYN-ACK and data: {seen_b:?}"
        );
    }

    #[test]
    fn ds_field_round_trip_and_ipv4_checksum() {
        let mut v4 = vec![
            0x45, 0, 0, 20, 0, 1, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        set_ds_field(&mut v4, 0xb8);
        assert_eq!(ds_field(&v4), 0xb8);
        let mut s: u32 = v4
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        assert_eq!(s, 0xffff, "header checksum verifies");
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[1] = 0x0a;
        v6[3] = 0x55;
        set_ds_field(&mut v6, 0xe5);
        assert_eq!(ds_field(&v6), 0xe5);
        assert_eq!(
            (v6[0] >> 4, v6[1] & 0xf, v6[3]),
            (6, 0xa, 0x55),
            "flow label kept"
        );
    }
}

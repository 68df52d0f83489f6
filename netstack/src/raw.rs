//! Raw ICMP sockets (SOCK_RAW with IPPROTO_ICMP or IPPROTO_ICMPV6) and the taps they share
//! with ping sockets.
//!
//! Once a ping or raw socket of a family exists, the stack keeps one smoltcp raw socket
//! (a "tap") for ICMP (IPv4) or ICMPv6: it sees every ICMP packet the interface receives,
//! IP header included (smoltcp still answers echo requests and neighbor solicitations
//! itself). [`Inner::taps_maintain`] gives each packet to every raw socket of its family
//! (a copy each, as Linux does: IPv4 with its IP header, ICMPv6 without) and an echo reply
//! to the one ping socket bound to its identifier. Packets sent by ping and raw sockets
//! are built here, IP header included, and leave through the tap. IP_HDRINCL is not
//! supported.

use crate::dgram::{family, Dgram};
use crate::*;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::raw;
use smoltcp::wire::{Icmpv4Packet, Icmpv6Packet, IpProtocol, IpVersion, Ipv4Packet};

/// Packets a tap or a raw socket queues, and a tap's bytes each way.
const PACKETS: usize = 256;
const TAP_BUF: usize = 1 << 20;
/// The largest IP packet.
const IP_MAX: usize = 65535;
const V4_HDR: usize = 20;
const V6_HDR: usize = 40;

/// An ICMP packet as a tap received it (checksums filled where the loopback left them out).
pub(crate) struct Rx {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// The DS field (TOS / traffic class).
    pub tos: u8,
    /// The whole IP packet; the ICMP message starts at `off`.
    pub pkt: Vec<u8>,
    pub off: usize,
}

impl Rx {
    pub fn msg(&self) -> &[u8] {
        &self.pkt[self.off..]
    }
}

/// The one's-complement sum of `b` (RFC 1071), folded.
fn sum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Fill the ICMPv6 checksum at `off` of `msg` (sent from `src` to `dst`).
fn icmp6_checksum(msg: &mut [u8], off: usize, src: Ipv6Addr, dst: Ipv6Addr) {
    if msg.len() < off + 2 {
        return;
    }
    msg[off..off + 2].fill(0);
    let mut pseudo = Vec::with_capacity(40 + msg.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(msg);
    let c = !sum(&pseudo);
    msg[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// Parse what a tap received; fill checksums the loopback leaves out (a valid one stays).
fn parse(mut pkt: Vec<u8>) -> Option<Rx> {
    match IpVersion::of_packet(&pkt).ok()? {
        IpVersion::Ipv4 => {
            let ihl = ((*pkt.first()? & 0xf) as usize) * 4;
            if pkt.len() < ihl + 4 || ihl < V4_HDR {
                return None;
            }
            if sum(&pkt[..ihl]) != 0xffff {
                Ipv4Packet::new_unchecked(&mut pkt[..]).fill_checksum();
            }
            if sum(&pkt[ihl..]) != 0xffff {
                Icmpv4Packet::new_unchecked(&mut pkt[ihl..]).fill_checksum();
            }
            let a =
                |o: usize| IpAddr::V4(Ipv4Addr::new(pkt[o], pkt[o + 1], pkt[o + 2], pkt[o + 3]));
            Some(Rx {
                src: a(12),
                dst: a(16),
                ttl: pkt[8],
                tos: pkt[1],
                off: ihl,
                pkt,
            })
        }
        IpVersion::Ipv6 => {
            if pkt.len() < V6_HDR + 4 {
                return None;
            }
            let a = |o: usize| {
                let b: [u8; 16] = pkt[o..o + 16].try_into().expect("16 bytes");
                Ipv6Addr::from(b)
            };
            let (src, dst) = (a(8), a(24));
            let mut probe = Icmpv6Packet::new_unchecked(&mut pkt[V6_HDR..]);
            if !probe.verify_checksum(&src, &dst) {
                probe.fill_checksum(&src, &dst);
            }
            Some(Rx {
                src: IpAddr::V6(src),
                dst: IpAddr::V6(dst),
                ttl: pkt[7],
                tos: crate::tos::ds_field(&pkt),
                off: V6_HDR,
                pkt,
            })
        }
    }
}

/// An IP packet carrying the ICMP/ICMPv6 message `msg`, with the ICMPv6 checksum at
/// `csum6` filled.
fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    (hops, tos): (u8, u8),
    id: u16,
    msg: &[u8],
    csum6: Option<usize>,
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = (V4_HDR + msg.len()) as u16;
            let mut p = vec![0x45, tos];
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&[0x40, 0, hops, 1, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            p.extend_from_slice(msg);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = vec![0x60 | tos >> 4, tos << 4, 0, 0];
            p.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            p.extend_from_slice(&[58, hops]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let mut m = msg.to_vec();
            if let Some(off) = csum6 {
                icmp6_checksum(&mut m, off, s, d);
            }
            p.extend_from_slice(&m);
            p
        }
        _ => vec![],
    }
}

pub(crate) struct Ent {
    /// Received packets are IPv4 ones with their header, or ICMPv6 messages.
    d: Dgram,
    /// ICMP_FILTER / ICMP6_FILTER: a set bit blocks that message type.
    filter: [u32; 8],
    /// IPV6_CHECKSUM: where the stack puts the checksum of what is sent (None: nowhere).
    csum6: Option<usize>,
}

impl Inner {
    /// The tap of a family, made on first use.
    pub(crate) fn tap(&mut self, v6: bool) -> SocketHandle {
        if let Some(h) = self.taps[v6 as usize] {
            return h;
        }
        let (ver, proto) = if v6 {
            (IpVersion::Ipv6, IpProtocol::Icmpv6)
        } else {
            (IpVersion::Ipv4, IpProtocol::Icmp)
        };
        let buf = || {
            raw::PacketBuffer::new(
                vec![raw::PacketMetadata::EMPTY; PACKETS],
                vec![0u8; TAP_BUF],
            )
        };
        let h = self
            .sockets
            .add(raw::Socket::new(Some(ver), Some(proto), buf(), buf()));
        self.taps[v6 as usize] = Some(h);
        h
    }

    /// Queue an IP packet on its family's tap.
    fn tap_send(&mut self, pkt: &[u8]) -> Result<()> {
        let v6 = pkt.first().is_some_and(|b| b >> 4 == 6);
        let h = self.tap(v6);
        match self.sockets.get_mut::<raw::Socket>(h).send_slice(pkt) {
            Ok(()) => Ok(()),
            Err(raw::SendError::BufferFull) => Err(Error::WouldBlock),
        }
    }

    /// Send the ICMP/ICMPv6 message `msg` from `bound` (the wildcard: the route's source)
    /// to `to` through its family's tap with `hops` (hop limit, DS field), the ICMPv6
    /// checksum filled at `csum6`.
    pub(crate) fn icmp_send(
        &mut self,
        bound: IpAddr,
        to: IpAddr,
        hops: (u8, u8),
        msg: &[u8],
        csum6: Option<usize>,
    ) -> Result<()> {
        let src = if bound.is_unspecified() {
            self.source_for(to).ok_or(Error::NetUnreach)?
        } else {
            bound
        };
        if csum6.is_some_and(|o| msg.len() < o + 2) {
            return Err(Error::Invalid);
        }
        let ipid = self.ip_id();
        let pkt = ip_packet(src, to, hops, ipid, msg, csum6);
        self.tap_send(&pkt)?;
        // smoltcp writes the IP header again, without the DS field: the device puts it back.
        let off = if to.is_ipv4() { V4_HDR } else { V6_HDR };
        self.dev.note_tap_tos(to, &pkt[off..], hops.1);
        Ok(())
    }

    /// A fresh IPv4 identification.
    fn ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    /// Hand what the taps received to raw and ping sockets.
    pub(crate) fn taps_maintain(&mut self) {
        for v6 in [false, true] {
            let Some(h) = self.taps[v6 as usize] else {
                continue;
            };
            while let Ok(p) = self.sockets.get_mut::<raw::Socket>(h).recv() {
                let Some(mut rx) = parse(p.to_vec()) else {
                    continue;
                };
                if rx.tos == 0 {
                    rx.tos = self.dev.tap_rx_tos(rx.src, rx.msg());
                }
                self.raw_deliver(v6, &rx);
                self.ping_deliver(v6, &rx);
            }
        }
    }

    fn raw_deliver(&mut self, v6: bool, rx: &Rx) {
        let ty = rx.msg()[0];
        for e in self.raw.values_mut().filter(|e| e.d.v6 == v6) {
            let blocked = e.filter[(ty >> 5) as usize] & (1 << (ty & 31)) != 0;
            let d = &mut e.d;
            if blocked
                || (!d.addr.is_unspecified() && d.addr != rx.dst)
                || d.peer.is_some_and(|p| p != rx.src)
            {
                continue;
            }
            let data = if v6 { rx.msg() } else { &rx.pkt[..] };
            d.push(PACKETS, data, rx.src, (rx.ttl, rx.tos));
        }
    }

    pub(crate) fn raw_collect_wakes(&mut self, out: &mut Vec<Waker>) {
        for e in self.raw.values_mut() {
            e.d.collect_wake(out);
        }
    }

    fn rent(&mut self, id: u64) -> &mut Ent {
        self.raw.get_mut(&id).expect("live raw socket")
    }
}

/// A raw ICMP (IPv4) or ICMPv6 socket of the stack.
pub struct RawSocket {
    sh: Arc<Shared>,
    id: u64,
    v6: bool,
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        let id = self.id;
        self.sh.run(|i| i.raw.remove(&id));
    }
}

impl RawSocket {
    pub(crate) fn new(sh: Arc<Shared>, v6: bool) -> RawSocket {
        let id = sh.peek(|i| {
            i.tap(v6);
            let id = i.id();
            i.raw.insert(
                id,
                Ent {
                    d: Dgram::new(v6),
                    filter: [0; 8],
                    csum6: v6.then_some(2),
                },
            );
            id
        });
        RawSocket { sh, id, v6 }
    }

    pub fn set_waker(&self, w: Waker) {
        self.sh.peek(|i| i.rent(self.id).d.waker = Some(w));
    }

    /// bind(2): only packets to `a` are received (the wildcard: all).
    pub fn bind(&self, a: IpAddr) -> Result<()> {
        let a = family(self.v6, a)?;
        self.sh.run(|i| {
            if !i.is_local(a) {
                return Err(Error::AddrNotAvail);
            }
            i.rent(self.id).d.addr = a;
            Ok(())
        })
    }

    /// connect(2): only packets from `a` are received; None dissolves it (AF_UNSPEC).
    pub fn connect(&self, a: Option<IpAddr>) -> Result<()> {
        let a = a.map(|a| family(self.v6, a)).transpose()?;
        self.sh.run(|i| {
            if a.is_some_and(|a| !i.routable(a)) {
                return Err(Error::NetUnreach);
            }
            i.rent(self.id).d.peer = a;
            Ok(())
        })
    }

    /// Send the ICMP/ICMPv6 message `msg` to `to` (None: the connected peer). The stack
    /// adds the IP header (and for ICMPv6 the checksum, see [`RawSocket::set_checksum`]).
    pub fn send_to(&self, msg: &[u8], to: Option<IpAddr>) -> Result<usize> {
        self.send_to_opts(msg, to, SendOpts::default())
    }

    /// [`RawSocket::send_to`] with a DS field and maybe a hop limit of its own.
    pub fn send_to_opts(&self, msg: &[u8], to: Option<IpAddr>, o: SendOpts) -> Result<usize> {
        let to = to.map(|a| family(self.v6, a)).transpose()?;
        let hdr = if self.v6 { V6_HDR } else { V4_HDR };
        if msg.len() + hdr > IP_MAX {
            return Err(Error::MsgSize);
        }
        let id = self.id;
        self.sh.run(|i| {
            let e = i.rent(id);
            let to = e.d.dest(to)?;
            let (bound, hops, csum) = (e.d.addr, e.d.ttl.unwrap_or(64), e.csum6);
            if !i.routable(to) {
                return Err(Error::NetUnreach);
            }
            i.icmp_send(
                bound,
                to,
                (o.hop_limit.unwrap_or(hops), o.tos.for_dst(to)),
                msg,
                csum,
            )?;
            Ok(msg.len())
        })
    }

    /// Receive (or with `peek`, copy) the next packet.
    pub fn recv_from(&self, buf: &mut [u8], peek: bool) -> Result<Datagram> {
        self.sh
            .run_or_peek(peek, |i| i.rent(self.id).d.recv(buf, peek))
    }

    pub fn shutdown(&self, how: u8) -> Result<()> {
        self.sh.run(|i| i.rent(self.id).d.shutdown(how))
    }

    /// The bound address (port 0: the caller puts the protocol there, as Linux does).
    pub fn local_addr(&self) -> SocketAddr {
        self.sh.peek(|i| SocketAddr::new(i.rent(self.id).d.addr, 0))
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.sh.peek(|i| i.rent(self.id).d.peer_addr())
    }

    pub fn events(&self) -> u32 {
        self.sh.peek(|i| i.raw[&self.id].d.events())
    }

    /// IP_TTL / IPV6_UNICAST_HOPS (None: the default, 64).
    pub fn set_ttl(&self, ttl: Option<u8>) {
        self.sh.peek(|i| i.rent(self.id).d.ttl = ttl)
    }

    /// ICMP_FILTER (the first word) / ICMP6_FILTER: a set bit blocks that type.
    pub fn filter(&self) -> [u32; 8] {
        self.sh.peek(|i| i.rent(self.id).filter)
    }

    pub fn set_filter(&self, f: [u32; 8]) {
        self.sh.peek(|i| i.rent(self.id).filter = f)
    }

    /// IPV6_CHECKSUM (ICMPv6 sockets start with offset 2).
    pub fn checksum(&self) -> Option<usize> {
        self.sh.peek(|i| i.rent(self.id).csum6)
    }

    pub fn set_checksum(&self, off: Option<usize>) {
        self.sh.peek(|i| i.rent(self.id).csum6 = off)
    }

    /// FIONREAD: the size of the next packet; TIOCOUTQ: 0 (sent at once).
    pub fn queues(&self) -> (usize, usize) {
        self.sh.peek(|i| (i.rent(self.id).d.next_len(), 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::wait;

    #[test]
    fn raw_icmp_sees_request_and_reply() {
        let st = Stack::new(StackConfig::default());
        let r = st.raw(false);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut req = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let c = !sum(&req);
        req[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(r.send_to(&req, Some(lo)), Ok(10));
        let mut buf = [0u8; 128];
        // The request as the loopback delivered it, then the stack's reply: IP header
        // included, TTL 64, checksums valid.
        let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
        assert_eq!((d.len, d.ttl, buf[20]), (30, 64, 8));
        assert_eq!(sum(&buf[..20]), 0xffff);
        let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
        assert_eq!((d.len, buf[20], buf[8]), (30, 0, 64));
        assert_eq!(sum(&buf[20..30]), 0xffff);
        assert_eq!(&buf[24..30], &req[4..]);
        // A filter on echo replies (type 0) lets only the request through.
        r.set_filter([1, 0, 0, 0, 0, 0, 0, 0]);
        r.set_ttl(Some(9));
        r.send_to(&req, Some(lo)).unwrap();
        let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
        assert_eq!((d.ttl, buf[20]), (9, 8));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(r.recv_from(&mut buf, false).unwrap_err(), Error::WouldBlock);
    }

    #[test]
    fn raw_icmpv6_checksum_and_no_header() {
        let st = Stack::new(StackConfig::default());
        let r = st.raw(true);
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let req = [128, 0, 0, 0, 0x12, 0x34, 0, 1, b'x'];
        assert_eq!(r.send_to(&req, Some(lo6)), Ok(9));
        let mut buf = [0u8; 128];
        let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
        assert_eq!((d.len, buf[0], d.ttl), (9, 128, 64));
        let d = wait(|| r.recv_from(&mut buf, false)).unwrap();
        assert_eq!((d.len, buf[0]), (9, 129));
        assert_eq!(&buf[4..9], &req[4..]);
    }
}

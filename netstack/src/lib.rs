//! rvisor's TCP/IP stack for the sandbox, on smoltcp.
//!
//! A [`Stack`] owns one smoltcp interface whose device is a small router: packets for the
//! loopback ranges (127.0.0.0/8, ::1) or for one of the stack's own addresses go back into
//! the stack (the loopback queue); everything else goes out of the [`Link`] whose subnet
//! holds the destination, or the link with a default gateway. Links are IP-level
//! (point-to-point, tun-like) for now; an Ethernet link for the container's network
//! namespace is the next step and only needs another kind of [`Link`].
//!
//! Sockets ([`TcpSocket`], [`UdpSocket`]) are non-blocking: an operation that cannot
//! complete yet returns [`Error::WouldBlock`] (or [`Error::InProgress`] for connect), and
//! the socket's waker is called whenever its readiness ([`TcpSocket::events`]) or its
//! queues change. Whoever blocks (the Sentry) re-tries when woken.
//!
//! Every operation runs under the stack's one lock and ends by polling the interface until
//! the loopback queue is empty, so loopback traffic is delivered before the call returns.
//! Timers (retransmission, delayed ACKs, keep-alive, TIME-WAIT) are run by one poller
//! thread per stack that sleeps until smoltcp's next deadline (`poll_at`) or until a link
//! has packets; an idle stack has no thread waking up.
//!
//! Not yet: more than one Ethernet link, raw sockets other than ICMP, TCP urgent data, TCP_INFO-style
//! statistics. Keep-alive is smoltcp's (one interval until the peer answers). A
//! TIME-WAIT connection is forgotten at once (smoltcp would keep it for its timer), so
//! ports come back sooner than on Linux. smoltcp gives a datagram to the first UDP socket
//! bound to its port: two UDP sockets sharing a port (an IPv4 and an IPv6-only one, or
//! SO_REUSEADDR) may lose datagrams meant for the other; SO_REUSEPORT groups (TCP
//! listeners and UDP sockets) are shared out by a hash of the 4-tuple, as on Linux. A UDP
//! socket has one hop limit in smoltcp: a datagram wanting another one (an IPv4-mapped or
//! multicast destination) first flushes what is queued; datagrams the device could not
//! take yet then leave with the new hop limit. A full TCP accept queue resets
//! new connections (Linux drops their SYNs until there is room). IP fragmentation: an IPv6
//! UDP datagram must fit the MTU (65487 bytes on loopback; Linux allows 65527).

mod dgram;
mod eth;
#[cfg(test)]
mod eth_tests;
mod gso;
#[cfg(test)]
mod gso_tests;
mod icmp;
mod info;
mod link;
mod packet;
mod ports;
mod raw;
mod tcp;
#[cfg(test)]
mod tests;
mod tos;
mod udp;

pub use eth::EthernetInfo;
pub use icmp::PingSocket;
pub use info::{Counters, HwKind, IfaceInfo, RouteInfo, RouteKind};
pub use link::{Link, LinkNotify, MemLink};
pub use packet::PacketLink;
pub use raw::RawSocket;
pub use tcp::{TcpOpts, TcpSocket};
pub use tos::{SendOpts, Tos};
pub use udp::{Datagram, UdpOpts, UdpSocket, MAX_PAYLOAD as UDP_MAX_PAYLOAD};

use parking_lot::{Condvar, Mutex};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Readiness bits, with Linux's poll(2) values.
pub const EV_IN: u32 = 0x1;
pub const EV_OUT: u32 = 0x4;
pub const EV_ERR: u32 = 0x8;
pub const EV_HUP: u32 = 0x10;
pub const EV_RDHUP: u32 = 0x2000;

/// Shutdown bits (Linux's RCV_SHUTDOWN / SEND_SHUTDOWN).
pub const SHUT_RD: u8 = 1;
pub const SHUT_WR: u8 = 2;

/// The loopback device's MTU (Linux's lo has 65536).
const LOOPBACK_MTU: usize = 65535;
/// Packets the loopback queue holds before the stack must drain it.
const LOOPBACK_QUEUE: usize = 1024;

/// Why an operation did not succeed. [`Error::errno`] gives the Linux errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    WouldBlock,
    InProgress,
    Already,
    AddrInUse,
    AddrNotAvail,
    ConnRefused,
    ConnReset,
    ConnAborted,
    TimedOut,
    NotConn,
    IsConn,
    Pipe,
    Invalid,
    NetUnreach,
    MsgSize,
    DestAddrRequired,
    AfNoSupport,
    /// The caller's memory could not be read or written.
    Fault,
}

impl Error {
    pub fn errno(self) -> i32 {
        match self {
            Error::WouldBlock => libc::EAGAIN,
            Error::InProgress => libc::EINPROGRESS,
            Error::Already => libc::EALREADY,
            Error::AddrInUse => libc::EADDRINUSE,
            Error::AddrNotAvail => libc::EADDRNOTAVAIL,
            Error::ConnRefused => libc::ECONNREFUSED,
            Error::ConnReset => libc::ECONNRESET,
            Error::ConnAborted => libc::ECONNABORTED,
            Error::TimedOut => libc::ETIMEDOUT,
            Error::NotConn => libc::ENOTCONN,
            Error::IsConn => libc::EISCONN,
            Error::Pipe => libc::EPIPE,
            Error::Invalid => libc::EINVAL,
            Error::NetUnreach => libc::ENETUNREACH,
            Error::MsgSize => libc::EMSGSIZE,
            Error::DestAddrRequired => libc::EDESTADDRREQ,
            Error::AfNoSupport => libc::EAFNOSUPPORT,
            Error::Fault => libc::EFAULT,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The hop limits a socket asked for (IP_TTL, IPV6_UNICAST_HOPS, IP_MULTICAST_TTL,
/// IPV6_MULTICAST_HOPS); None is Linux's default (64 unicast, 1 multicast). smoltcp
/// cannot send a hop limit of 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hops {
    pub ttl: Option<u8>,
    pub unicast6: Option<u8>,
    pub mcast_ttl: Option<u8>,
    pub mcast6: Option<u8>,
}

impl Hops {
    /// The hop limit of a packet to `dst`.
    pub fn for_dst(&self, dst: IpAddr) -> u8 {
        let v = match dst {
            IpAddr::V4(a) if a.is_multicast() => self.mcast_ttl.unwrap_or(1),
            IpAddr::V4(_) => self.ttl.unwrap_or(64),
            IpAddr::V6(a) if a.is_multicast() => self.mcast6.unwrap_or(1),
            IpAddr::V6(_) => self.unicast6.unwrap_or(64),
        };
        v.max(1)
    }
}

/// Called (with no stack lock held) when a socket's readiness or queues may have changed.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// One external link and its static configuration.
pub struct LinkConfig {
    pub link: Box<dyn Link>,
    /// Addresses with their prefix lengths.
    pub addrs: Vec<(IpAddr, u8)>,
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    /// Some: the link carries Ethernet frames. None: it carries IP packets.
    pub ethernet: Option<EthernetConfig>,
}

/// What an Ethernet link adds: the interface's name, index, MAC, MTU and routes.
#[derive(Clone, Debug, Default)]
pub struct EthernetConfig {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    /// The IP MTU (without the Ethernet header).
    pub mtu: usize,
    /// Routes other than the link's subnets and default gateways: (destination, prefix, via).
    pub routes: Vec<(IpAddr, u8, IpAddr)>,
}

/// The stack's static configuration, handed in by the caller.
pub struct StackConfig {
    /// 127.0.0.1/8 and ::1/128.
    pub loopback: bool,
    pub links: Vec<LinkConfig>,
    /// Seeds initial sequence numbers and the first ephemeral port.
    pub seed: u64,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            loopback: true,
            links: vec![],
            seed: default_seed(),
        }
    }
}

fn default_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

pub(crate) struct LinkSlot {
    link: Box<dyn Link>,
    pub(crate) nets: Vec<IpCidr>,
    /// Destinations of the Ethernet link's extra routes.
    routes: Vec<IpCidr>,
    gw4: Option<Ipv4Addr>,
    gw6: Option<Ipv6Addr>,
    pub(crate) ethernet: Option<EthernetConfig>,
    stats: Counters,
}

impl LinkSlot {
    /// Whether packets to `d` leave through this link.
    fn reaches(&self, d: IpAddr) -> bool {
        let a = IpAddress::from(d);
        self.nets
            .iter()
            .chain(&self.routes)
            .any(|n| n.contains_addr(&a))
            || match d {
                IpAddr::V4(_) => self.gw4.is_some(),
                IpAddr::V6(_) => self.gw6.is_some(),
            }
    }
}

/// The interface's device: the loopback queue plus the links, routed by destination.
pub(crate) struct Dev {
    lo: VecDeque<Vec<u8>>,
    lo_stats: Counters,
    /// ICMP "port unreachable" errors seen for our UDP datagrams: (our port, their end).
    udp_unreachable: Vec<(u16, SocketAddr)>,
    pub(crate) links: Vec<LinkSlot>,
    own: Vec<IpAddr>,
    mtu: usize,
    checksums: bool,
    /// The interface's MAC when its medium is Ethernet (frames, not packets).
    mac: Option<[u8; 6]>,
    /// The Ethernet link cuts long TCP segments and fills TCP checksums (`Link::tso`).
    tso: bool,
    /// TCP flows that send a DS field (see `tos`).
    pub(crate) tcp_tos: Vec<tos::Flow>,
    /// Some TCP socket has set a DS field: `tcp_tos` is kept up to date.
    pub(crate) tcp_tos_on: bool,
    /// The DS field of UDP datagrams from a local port (IPv6, or IPv4 sent without
    /// metadata), by (IPv6, port); and of the IPv4 fragments being sent.
    pub(crate) udp_tos: HashMap<(bool, u16), u8>,
    frag_tos: u8,
    /// ICMP messages queued on a tap with a DS field (smoltcp re-emits their IP header):
    /// (destination, the message's first 8 bytes, DS field).
    pub(crate) tap_tos: VecDeque<(IpAddr, [u8; 8], u8)>,
    /// The same for ICMP messages received with a DS field (smoltcp hands taps a header
    /// of its own making): (source, the message's first 8 bytes, DS field).
    pub(crate) tap_rx_tos: VecDeque<(IpAddr, [u8; 8], u8)>,
}

fn is_loopback(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_loopback(),
        IpAddr::V6(v) => v.is_loopback(),
    }
}

/// The destination address of an IP packet.
fn dst_of(pkt: &[u8]) -> Option<IpAddr> {
    match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => Some(IpAddr::V4(Ipv4Addr::new(
            pkt[16], pkt[17], pkt[18], pkt[19],
        ))),
        Some(6) if pkt.len() >= 40 => {
            let b: [u8; 16] = pkt[24..40].try_into().expect("16 bytes");
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The TTL (IPv4) or hop limit (IPv6) of an IP packet.
fn hop_limit(pkt: &[u8]) -> u8 {
    match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => pkt[8],
        Some(6) if pkt.len() >= 40 => pkt[7],
        _ => 0,
    }
}

/// For an ICMP/ICMPv6 "port unreachable" about one of our UDP datagrams: the datagram's
/// source port and its destination.
fn udp_unreachable(pkt: &[u8]) -> Option<(u16, SocketAddr)> {
    let be16 = |b: &[u8], o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
    match pkt.first()? >> 4 {
        4 => {
            let ihl = ((pkt[0] & 0xf) as usize) * 4;
            if pkt.len() < ihl + 8 || pkt[9] != 1 || pkt[ihl] != 3 || pkt[ihl + 1] != 3 {
                return None;
            }
            let inner = &pkt[ihl + 8..];
            let iihl = ((*inner.first()? & 0xf) as usize) * 4;
            if inner.len() < iihl + 4 || inner[9] != 17 {
                return None;
            }
            let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
            let udp = &inner[iihl..];
            Some((be16(udp, 0), SocketAddr::new(IpAddr::V4(dst), be16(udp, 2))))
        }
        6 => {
            if pkt.len() < 40 + 8 + 40 + 4 || pkt[6] != 58 || pkt[40] != 1 || pkt[41] != 4 {
                return None;
            }
            let inner = &pkt[48..];
            if inner[6] != 17 {
                return None;
            }
            let b: [u8; 16] = inner[24..40].try_into().expect("16 bytes");
            let udp = &inner[40..];
            Some((
                be16(udp, 0),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(b)), be16(udp, 2)),
            ))
        }
        _ => None,
    }
}

impl Dev {
    /// Whether a packet from a link is for this host. (The interface runs in smoltcp's
    /// "any IP" mode so that all of 127.0.0.0/8 is local, as on Linux; links must not
    /// deliver other hosts' traffic to our sockets.)
    fn for_us(&self, dst: IpAddr) -> bool {
        if self.own.contains(&dst) {
            return true;
        }
        match dst {
            IpAddr::V4(v) => {
                v.is_multicast()
                    || v.is_broadcast()
                    || self
                        .links
                        .iter()
                        .flat_map(|l| l.nets.iter())
                        .any(|n| matches!(n, IpCidr::Ipv4(c) if c.broadcast() == Some(v)))
            }
            IpAddr::V6(v) => v.is_multicast(),
        }
    }

    /// A packet or frame from the interface; `mss`: smoltcp asked for a long TCP segment
    /// to be cut at that size.
    fn output(&mut self, pkt: Vec<u8>, mss: Option<u16>) {
        if self.mac.is_some() {
            return self.output_frame(pkt, mss);
        }
        let Some(dst) = dst_of(&pkt) else {
            return;
        };
        if is_loopback(dst) || self.own.contains(&dst) {
            if self.lo.len() < LOOPBACK_QUEUE {
                self.lo_stats.tx(pkt.len());
                self.lo_stats.rx(pkt.len());
                self.lo.push_back(pkt);
            }
            return;
        }
        let d = IpAddress::from(dst);
        let i = self
            .links
            .iter()
            .position(|l| l.nets.iter().any(|n| n.contains_addr(&d)))
            .or_else(|| self.links.iter().position(|l| l.reaches(dst)));
        if let Some(i) = i {
            self.links[i].stats.tx(pkt.len());
            self.links[i].link.transmit(&pkt);
        }
    }
}

impl Dev {
    /// An Ethernet frame from the interface: frames about a local address (IP packets to
    /// it, ARP requests and replies and neighbor solicitations for it) go round the
    /// loopback queue, so smoltcp resolves and answers its own addresses; the rest leaves
    /// through the Ethernet link.
    fn output_frame(&mut self, mut f: Vec<u8>, mss: Option<u16>) {
        if eth::target(&f).is_some_and(|a| is_loopback(a) || self.own.contains(&a)) {
            if self.lo.len() < LOOPBACK_QUEUE {
                // lo counts what it carries without the Ethernet header.
                self.lo_stats.tx(f.len().saturating_sub(14));
                self.lo_stats.rx(f.len().saturating_sub(14));
                self.lo.push_back(f);
            }
            return;
        }
        let tso = self.tso;
        if let Some(l) = self.links.first_mut() {
            l.stats.tx(f.len());
            match tso {
                true => l.link.transmit_tso(&mut f, mss),
                false => l.link.transmit(&f),
            }
        }
    }
}

/// A received packet and its IP hop limit (TTL) and DS field, handed to smoltcp as the
/// packet's metadata id so that UDP sockets learn them (IP_RECVTTL, IP_RECVTOS, ...).
struct RxTok(Vec<u8>, u8, u8);
/// The device, the segment size smoltcp asked for (segmentation offload), the DS field
/// the packet's sender gave (see `tos`), and for an answer to a received packet, that
/// packet's DS field (echo replies carry the request's, as on Linux).
struct TxTok<'a>(&'a mut Dev, Option<u16>, Option<u8>, Option<u8>);

impl smoltcp::phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }

    fn meta(&self) -> smoltcp::phy::PacketMeta {
        let mut m = smoltcp::phy::PacketMeta::default();
        m.id = self.1 as u32 | (self.2 as u32) << 8;
        m
    }
}

impl smoltcp::phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        let ip = if self.0.mac.is_some() {
            eth::ip_offset(&buf)
        } else {
            Some(0)
        };
        if let Some(at) = ip {
            self.0.put_tos(&mut buf[at..], self.2, self.3);
        }
        self.0.output(buf, self.1);
        r
    }

    fn set_meta(&mut self, meta: smoltcp::phy::PacketMeta) {
        self.1 = meta.segmentation_offload_size.map(|n| n.get());
        self.2 = (meta.id & tos::TX_MARK != 0).then_some(meta.id as u8);
    }
}

impl Device for Dev {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(
        &mut self,
        _ts: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let eth = self.mac.is_some();
        let pkt = match self.lo.pop_front() {
            Some(p) => p,
            None => loop {
                let p = self.links.iter_mut().find_map(|l| {
                    let p = l.link.receive()?;
                    l.stats.rx(p.len());
                    Some(p)
                })?;
                let to = if eth { eth::target(&p) } else { dst_of(&p) };
                if to.is_some_and(|d| self.for_us(d)) {
                    break p;
                }
            },
        };
        let ip = if eth {
            eth::ip_of(&pkt)
        } else {
            Some(&pkt[..])
        };
        if let Some(e) = ip.and_then(udp_unreachable) {
            self.udp_unreachable.push(e);
        }
        let hops = ip.map_or(0, hop_limit);
        let ds = ip.map_or(0, tos::ds_field);
        if let Some(ip) = ip.filter(|_| ds != 0) {
            tos::note_icmp(&mut self.tap_rx_tos, ip, ds);
        }
        Some((RxTok(pkt, hops, ds), TxTok(self, None, None, Some(ds))))
    }

    fn transmit(&mut self, _ts: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        if self.lo.len() >= LOOPBACK_QUEUE {
            return None;
        }
        Some(TxTok(self, None, None, None))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        if self.mac.is_some() {
            c.medium = Medium::Ethernet;
            c.checksum = eth::checksums(self.tso);
            if self.tso {
                // Not IPv6: see `gso`.
                c.segmentation.tcpv4 = std::num::NonZeroUsize::new(gso::FRAME_MAX);
            }
        } else if !self.checksums {
            c.checksum = smoltcp::phy::ChecksumCapabilities::ignored();
        }
        c
    }
}

/// Everything behind the stack's lock.
pub(crate) struct Inner {
    pub(crate) iface: Interface,
    pub(crate) dev: Dev,
    pub(crate) sockets: SocketSet<'static>,
    base: Instant,
    pub(crate) tcp: HashMap<u64, tcp::Ent>,
    pub(crate) udp: HashMap<u64, udp::Ent>,
    pub(crate) icmp: HashMap<u64, icmp::Ent>,
    pub(crate) raw: HashMap<u64, raw::Ent>,
    /// The ICMP and ICMPv6 taps (see `raw`), made on first use.
    pub(crate) taps: [Option<smoltcp::iface::SocketHandle>; 2],
    ip_id: u16,
    pub(crate) orphans: Vec<tcp::Orphan>,
    pub(crate) ports: ports::Ports,
    next_id: u64,
    /// Wakers to call once the lock is dropped.
    wakes: Vec<Waker>,
    /// When the poller thread will next wake up by itself (None: it sleeps until kicked).
    timer_at: Option<Instant>,
    loopback: bool,
    seed: u64,
}

impl Inner {
    pub(crate) fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.base.elapsed().as_micros() as i64)
    }

    pub(crate) fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Whether `a` may be a local address of a socket.
    pub(crate) fn is_local(&self, a: IpAddr) -> bool {
        a.is_unspecified() || is_loopback(a) || self.dev.own.contains(&a)
    }

    /// Whether packets to `a` have somewhere to go.
    pub(crate) fn routable(&self, a: IpAddr) -> bool {
        if is_loopback(a) || self.dev.own.contains(&a) {
            return true;
        }
        self.dev.links.iter().any(|l| l.reaches(a))
    }

    /// The source address a packet to `dst` leaves from.
    pub(crate) fn source_for(&mut self, dst: IpAddr) -> Option<IpAddr> {
        if is_loopback(dst) {
            return Some(match dst {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        if self.dev.own.contains(&dst) {
            return Some(dst);
        }
        let d = IpAddress::from(dst);
        let same = |a: &IpAddr| a.is_ipv4() == dst.is_ipv4() && !is_loopback(*a);
        self.dev
            .links
            .iter()
            .flat_map(|l| l.nets.iter())
            .find(|n| n.contains_addr(&d))
            .map(|n| IpAddr::from(n.address()))
            .or_else(|| self.dev.own.iter().copied().find(same))
    }

    /// Poll the interface until the loopback queue is empty and the sockets' bookkeeping
    /// settled, then collect the wakers of sockets whose readiness changed.
    fn pump(&mut self) {
        for _ in 0..64 {
            self.tcp_tos_refresh();
            for _ in 0..4096 {
                let now = self.now();
                self.iface.poll(now, &mut self.dev, &mut self.sockets);
                self.dev.links.iter_mut().for_each(|l| l.link.flush());
                if self.dev.lo.is_empty() {
                    break;
                }
            }
            let a = self.tcp_maintain();
            let b = self.udp_maintain();
            self.taps_maintain();
            if !a && !b {
                break;
            }
        }
        let mut wakes = std::mem::take(&mut self.wakes);
        self.tcp_collect_wakes(&mut wakes);
        self.udp_collect_wakes(&mut wakes);
        self.icmp_collect_wakes(&mut wakes);
        self.raw_collect_wakes(&mut wakes);
        self.wakes = wakes;
    }

    /// When the interface next needs polling, if ever.
    fn next_poll(&mut self) -> Option<Instant> {
        let now = self.now();
        let at = self.iface.poll_at(now, &self.sockets);
        let orphan = self.orphans.iter().filter_map(|o| o.deadline).min();
        let at = at.map(|t| {
            let d = (t - now).total_micros();
            Instant::now() + Duration::from_micros(d)
        });
        match (at, orphan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The poller's wake-up state (a leaf lock: links kick from under other stacks' locks).
#[derive(Default)]
struct Kick {
    kicked: bool,
    stop: bool,
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    kick: Mutex<Kick>,
    cv: Condvar,
}

impl Shared {
    /// Run `f` under the lock, pump the interface, wake whoever needs waking.
    pub(crate) fn run<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let (r, wakes, kick) = {
            let mut g = self.inner.lock();
            let r = f(&mut g);
            g.pump();
            let wakes = std::mem::take(&mut g.wakes);
            let next = g.next_poll();
            let kick = match (next, g.timer_at) {
                (Some(n), Some(t)) => n < t,
                (Some(_), None) => true,
                _ => false,
            };
            (r, wakes, kick)
        };
        if kick {
            self.kick();
        }
        for w in wakes {
            w();
        }
        r
    }

    /// Read-only access (no pumping).
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock())
    }

    /// A receive: with MSG_PEEK read-only ([`Shared::peek`]), else [`Shared::run`].
    pub(crate) fn run_or_peek<R>(&self, peek: bool, f: impl FnOnce(&mut Inner) -> R) -> R {
        if peek {
            self.peek(f)
        } else {
            self.run(f)
        }
    }

    fn kick(&self) {
        self.kick.lock().kicked = true;
        self.cv.notify_one();
    }
}

/// The poller: runs timers and link input.
fn poller(sh: Arc<Shared>) {
    loop {
        sh.kick.lock().kicked = false;
        let (wakes, timer_at) = {
            let mut g = sh.inner.lock();
            g.pump();
            let next = g.next_poll();
            // Never sleep less than a millisecond: no spinning on a deadline in the past.
            g.timer_at = next.map(|t| t.max(Instant::now() + Duration::from_millis(1)));
            (std::mem::take(&mut g.wakes), g.timer_at)
        };
        for w in wakes {
            w();
        }
        let mut k = sh.kick.lock();
        if k.stop {
            return;
        }
        if k.kicked {
            continue;
        }
        match timer_at {
            Some(t) => {
                sh.cv.wait_until(&mut k, t);
            }
            None => sh.cv.wait(&mut k),
        }
        if k.stop {
            return;
        }
    }
}

struct Handle {
    sh: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.sh.kick.lock().stop = true;
        self.sh.cv.notify_all();
    }
}

/// A TCP/IP stack. Clones share it; the poller thread stops when the last clone is
/// dropped (sockets still open keep working, without timers).
#[derive(Clone)]
pub struct Stack {
    h: Arc<Handle>,
}

impl Stack {
    pub fn new(cfg: StackConfig) -> Stack {
        let mut dev = Dev {
            lo: VecDeque::new(),
            lo_stats: Counters::default(),
            udp_unreachable: vec![],
            tcp_tos: vec![],
            tcp_tos_on: false,
            udp_tos: HashMap::new(),
            frag_tos: 0,
            tap_tos: VecDeque::new(),
            tap_rx_tos: VecDeque::new(),
            checksums: false,
            links: vec![],
            own: vec![],
            mtu: LOOPBACK_MTU,
            mac: None,
            tso: false,
        };
        if cfg.loopback {
            dev.own.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
            dev.own.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
        let iface = build_iface(&mut dev, cfg.seed, cfg.loopback);
        let inner = Inner {
            iface,
            dev,
            sockets: SocketSet::new(vec![]),
            base: Instant::now(),
            tcp: HashMap::new(),
            udp: HashMap::new(),
            icmp: HashMap::new(),
            raw: HashMap::new(),
            taps: [None, None],
            ip_id: 0,
            orphans: vec![],
            ports: ports::Ports::new(cfg.seed),
            next_id: 0,
            wakes: vec![],
            timer_at: None,
            loopback: cfg.loopback,
            seed: cfg.seed,
        };
        let sh = Arc::new(Shared {
            inner: Mutex::new(inner),
            kick: Mutex::new(Kick::default()),
            cv: Condvar::new(),
        });
        let s2 = sh.clone();
        std::thread::Builder::new()
            .name("netstack".into())
            .spawn(move || poller(s2))
            .expect("spawn the netstack poller");
        let st = Stack {
            h: Arc::new(Handle { sh }),
        };
        for l in cfg.links {
            if let Err(e) = st.add_link(l) {
                tracing::warn!("netstack: link not added: {e:?}");
            }
        }
        st
    }

    /// Add a link with its configuration (before the sandbox's sockets use the network:
    /// the interface is rebuilt, which forgets its neighbor cache). An Ethernet link must
    /// be the only link: `Error::Invalid` otherwise.
    pub fn add_link(&self, l: LinkConfig) -> Result<()> {
        let sh = &self.h.sh;
        {
            let mut g = sh.inner.lock();
            let has_eth = g.dev.mac.is_some();
            if has_eth || (l.ethernet.is_some() && !g.dev.links.is_empty()) {
                return Err(Error::Invalid);
            }
            let nets: Vec<IpCidr> = l
                .addrs
                .iter()
                .map(|&(a, p)| IpCidr::new(IpAddress::from(a), p))
                .collect();
            g.dev.own.extend(l.addrs.iter().map(|&(a, _)| a));
            g.dev.checksums = true;
            if let Some(e) = &l.ethernet {
                g.dev.mac = Some(e.mac);
                g.dev.tso = l.link.tso();
                g.dev.mtu = e.mtu.clamp(576, 65521) + eth::HEADER;
            }
            let routes = l
                .ethernet
                .iter()
                .flat_map(|e| e.routes.iter())
                .map(|&(d, p, _)| IpCidr::new(IpAddress::from(d), p))
                .collect();
            let mut link = l.link;
            let w: Weak<Shared> = Arc::downgrade(sh);
            let w2 = w.clone();
            link.set_notify(LinkNotify::new(
                move || {
                    if let Some(s) = w.upgrade() {
                        s.kick();
                    }
                },
                move || {
                    if let Some(s) = w2.upgrade() {
                        s.run(|_| ());
                    }
                },
            ));
            g.dev.links.push(LinkSlot {
                link,
                nets,
                routes,
                gw4: l.gateway4,
                gw6: l.gateway6,
                ethernet: l.ethernet,
                stats: Counters::default(),
            });
            let (seed, lo) = (g.seed, g.loopback);
            let inner = &mut *g;
            inner.iface = build_iface(&mut inner.dev, seed, lo);
        }
        sh.kick();
        Ok(())
    }

    /// A TCP socket of family AF_INET (`v6` false) or AF_INET6.
    pub fn tcp(&self, v6: bool) -> TcpSocket {
        TcpSocket::new(self.h.sh.clone(), v6)
    }

    /// A UDP socket of family AF_INET (`v6` false) or AF_INET6.
    pub fn udp(&self, v6: bool) -> UdpSocket {
        UdpSocket::new(self.h.sh.clone(), v6)
    }

    /// An ICMP echo (ping) socket of family AF_INET (`v6` false) or AF_INET6.
    pub fn ping(&self, v6: bool) -> PingSocket {
        PingSocket::new(self.h.sh.clone(), v6)
    }

    /// A raw ICMP (`v6` false) or ICMPv6 socket.
    pub fn raw(&self, v6: bool) -> RawSocket {
        RawSocket::new(self.h.sh.clone(), v6)
    }
}

/// The interface for the device's medium, with every address and route of the links.
fn build_iface(dev: &mut Dev, seed: u64, loopback: bool) -> Interface {
    let hw = match dev.mac {
        Some(m) => HardwareAddress::Ethernet(smoltcp::wire::EthernetAddress(m)),
        None => HardwareAddress::Ip,
    };
    let mut ic = Config::new(hw);
    ic.random_seed = seed;
    let mut iface = Interface::new(ic, dev, smoltcp::time::Instant::from_micros(0));
    // Every address of 127.0.0.0/8 is local (Dev filters what links deliver).
    iface.set_any_ip(true);
    let mut cidrs = vec![];
    if loopback {
        cidrs.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
        cidrs.push(IpCidr::new(IpAddress::Ipv6(Ipv6Addr::LOCALHOST), 128));
    }
    cidrs.extend(dev.links.iter().flat_map(|l| l.nets.iter().copied()));
    iface.update_ip_addrs(|a| {
        for c in cidrs {
            if a.push(c).is_err() {
                tracing::warn!("netstack: too many addresses, {c} dropped");
            }
        }
    });
    for l in &dev.links {
        let r = iface.routes_mut();
        if let Some(g) = l.gw4 {
            let _ = r.add_default_ipv4_route(g);
        }
        if let Some(g) = l.gw6 {
            let _ = r.add_default_ipv6_route(g);
        }
        for &(d, p, via) in l.ethernet.iter().flat_map(|e| e.routes.iter()) {
            let route = smoltcp::iface::Route {
                cidr: IpCidr::new(IpAddress::from(d), p),
                via_router: IpAddress::from(via),
                preferred_until: None,
                expires_at: None,
            };
            let mut full = false;
            r.update(|t| full = t.push(route).is_err());
            if full {
                tracing::warn!("netstack: too many routes, {d}/{p} dropped");
            }
        }
    }
    iface
}

// ---- addresses ----

/// An address as the stack handles it: IPv4-mapped IPv6 addresses become IPv4.
pub(crate) fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v) => match v.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v.port()),
            None => a,
        },
        _ => a,
    }
}

/// An address as a socket of the family `v6` reports it.
pub(crate) fn map_for(v6: bool, a: SocketAddr) -> SocketAddr {
    match (v6, a) {
        (true, SocketAddr::V4(v)) => {
            SocketAddr::V6(SocketAddrV6::new(v.ip().to_ipv6_mapped(), v.port(), 0, 0))
        }
        _ => a,
    }
}

/// Keep readiness `now` in `sig`; when it changed, queue the socket's waker on `out`.
pub(crate) fn wake_on_change<S: PartialEq>(
    sig: &mut S,
    now: S,
    waker: &Option<Waker>,
    out: &mut Vec<Waker>,
) {
    if now != *sig {
        *sig = now;
        if let Some(w) = waker {
            out.push(w.clone());
        }
    }
}

pub(crate) fn unspecified(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }
}

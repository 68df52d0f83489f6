//! UDP sockets.

use crate::dgram;
use crate::ports::{Reuse, Use, UDP};
use crate::*;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};
use std::hash::{Hash, Hasher};

/// Datagrams a socket queues each way.
const PACKETS: usize = 256;
const BUF_MIN: usize = 4096;
const BUF_MAX: usize = 4 << 20;
/// The largest UDP payload in one IP packet (65535 - 8 - 20).
pub const MAX_PAYLOAD: usize = 65507;

pub(crate) struct Ent {
    v6: bool,
    pub(crate) reuse: bool,
    /// SO_REUSEPORT with the owner's uid.
    reuseport: Option<u32>,
    /// Datagrams handed to this socket by its SO_REUSEPORT group (smoltcp gives each to
    /// the first socket bound to the port), and their bytes.
    rxq: VecDeque<(Vec<u8>, udp::UdpMetadata)>,
    rxq_bytes: usize,
    pub(crate) v6only: bool,
    pub(crate) rcvbuf: usize,
    pub(crate) sndbuf: usize,
    hops: Hops,
    h: Option<SocketHandle>,
    port: Option<u16>,
    addr: IpAddr,
    /// connect(2)'s peer (unmapped) and the source address it implies.
    peer: Option<SocketAddr>,
    peer_src: Option<IpAddr>,
    shut: u8,
    /// A pending error (ECONNREFUSED from an ICMP port unreachable, connected only).
    err: Option<Error>,
    waker: Option<Waker>,
    sig: (u32, usize, usize),
}

/// The metadata of a datagram sent with DS field `tos` (see `tos`).
fn tx_meta(tos: u8) -> smoltcp::phy::PacketMeta {
    let mut m = smoltcp::phy::PacketMeta::default();
    m.id = crate::tos::TX_MARK | tos as u32;
    m
}

fn ep(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(IpAddr::from(e.addr), e.port)
}

fn events(e: &Ent, set: &SocketSet<'static>) -> (u32, usize, usize) {
    let mut m = 0;
    let (mut rq, mut sq) = (0, 0);
    if let Some(h) = e.h {
        let s = set.get::<udp::Socket>(h);
        if s.can_recv() || !e.rxq.is_empty() {
            m |= EV_IN;
        }
        if s.payload_send_capacity() - s.send_queue() >= s.payload_send_capacity() / 4 {
            m |= EV_OUT;
        }
        rq = s.recv_queue() + e.rxq_bytes;
        sq = s.send_queue();
    } else {
        m |= EV_OUT;
    }
    if e.shut & SHUT_RD != 0 {
        m |= EV_IN | EV_RDHUP;
    }
    if e.shut == SHUT_RD | SHUT_WR {
        m |= EV_HUP;
    }
    if e.err.is_some() {
        m |= EV_ERR;
    }
    (m, rq, sq)
}

impl Inner {
    /// Drop datagrams the socket would not take (not from the connected peer, or of the
    /// wrong family), so that readiness tells the truth.
    pub(crate) fn udp_maintain(&mut self) -> bool {
        self.udp_reuseport_share();
        // Port unreachable: an error for the connected socket that sent the datagram, as
        // Linux reports it (unconnected sockets do not hear about it).
        for (port, to) in std::mem::take(&mut self.dev.udp_unreachable) {
            for e in self.udp.values_mut() {
                if e.port == Some(port) && e.peer == Some(to) {
                    e.err = Some(Error::ConnRefused);
                }
            }
        }
        for e in self.udp.values_mut() {
            let Some(h) = e.h else { continue };
            let s = self.sockets.get_mut::<udp::Socket>(h);
            while let Ok((_, meta)) = s.peek() {
                let from = ep(meta.endpoint);
                let family_ok = from.is_ipv4() && (!e.v6 || !e.v6only) || from.is_ipv6() && e.v6;
                if family_ok && e.peer.is_none_or(|p| p == from) {
                    break;
                }
                let _ = s.recv();
            }
        }
        false
    }

    /// Share the datagrams of each SO_REUSEPORT group among the members that may take
    /// them (family, connected peer, bound address), by a hash of the 4-tuple as Linux
    /// does; a member's share waits in its `rxq`.
    fn udp_reuseport_share(&mut self) {
        let mut groups: HashMap<u16, Vec<u64>> = HashMap::new();
        for (&id, e) in &self.udp {
            if let (Some(_), Some(p), Some(_)) = (e.h, e.port, e.reuseport) {
                groups.entry(p).or_default().push(id);
            }
        }
        for mut members in groups.into_values().filter(|m| m.len() > 1) {
            members.sort_unstable();
            let mut arrived = vec![];
            for id in &members {
                let h = self.udp[id].h.expect("bound");
                let s = self.sockets.get_mut::<udp::Socket>(h);
                while let Ok((d, m)) = s.recv() {
                    arrived.push((d.to_vec(), m));
                }
            }
            for (d, m) in arrived {
                let from = ep(m.endpoint);
                let to = m.local_address.map(IpAddr::from);
                let takers: Vec<u64> = members
                    .iter()
                    .copied()
                    .filter(|id| {
                        let e = &self.udp[id];
                        let family =
                            from.is_ipv4() && (!e.v6 || !e.v6only) || from.is_ipv6() && e.v6;
                        family
                            && e.peer.is_none_or(|p| p == from)
                            && (e.addr.is_unspecified() || Some(e.addr) == to)
                    })
                    .collect();
                if takers.is_empty() {
                    continue;
                }
                let mut hs = std::collections::hash_map::DefaultHasher::new();
                (from, to).hash(&mut hs);
                let id = takers[(hs.finish() % takers.len() as u64) as usize];
                let e = self.udp.get_mut(&id).expect("live udp socket");
                if e.rxq_bytes + d.len() <= e.rcvbuf.clamp(BUF_MIN, BUF_MAX).max(MAX_PAYLOAD + 1) {
                    e.rxq_bytes += d.len();
                    e.rxq.push_back((d, m));
                }
            }
        }
    }

    pub(crate) fn udp_collect_wakes(&mut self, out: &mut Vec<Waker>) {
        for e in self.udp.values_mut() {
            let now = events(e, &self.sockets);
            wake_on_change(&mut e.sig, now, &e.waker, out);
        }
    }

    fn uent(&mut self, id: u64) -> &mut Ent {
        self.udp.get_mut(&id).expect("live udp socket")
    }

    /// Reserve a port and make the smoltcp socket.
    fn udp_bind(&mut self, id: u64, a: SocketAddr) -> Result<()> {
        let e = self.udp.get_mut(&id).expect("live udp socket");
        let u = Use::new(
            id,
            e.v6,
            e.v6only,
            a.ip(),
            Reuse {
                addr: e.reuse,
                port: e.reuseport,
            },
        );
        let port = self.ports.add(UDP, a.port(), u)?;
        let rx = e.rcvbuf.clamp(BUF_MIN, BUF_MAX).max(MAX_PAYLOAD + 1);
        let tx = e.sndbuf.clamp(BUF_MIN, BUF_MAX).max(MAX_PAYLOAD + 1);
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; PACKETS], vec![0u8; rx]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; PACKETS], vec![0u8; tx]),
        );
        let lep = IpListenEndpoint {
            addr: (!a.ip().is_unspecified()).then(|| IpAddress::from(a.ip())),
            port,
        };
        if s.bind(lep).is_err() {
            self.ports.remove(UDP, port, id);
            return Err(Error::Invalid);
        }
        let h = self.sockets.add(s);
        let e = self.udp.get_mut(&id).expect("live udp socket");
        e.h = Some(h);
        e.port = Some(port);
        e.addr = a.ip();
        Ok(())
    }

    fn udp_release(&mut self, id: u64) {
        let Some(e) = self.udp.remove(&id) else {
            return;
        };
        if let Some(h) = e.h {
            self.sockets.remove(h);
        }
        if let Some(p) = e.port {
            self.ports.remove(UDP, p, id);
        }
    }
}

/// A UDP socket of the stack.
pub struct UdpSocket {
    sh: Arc<Shared>,
    id: u64,
    v6: bool,
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let id = self.id;
        self.sh.run(|i| i.udp_release(id));
    }
}

/// Socket options of a UDP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOpts {
    pub reuseaddr: bool,
    /// SO_REUSEPORT with the socket owner's uid: sockets of one uid bound to one address
    /// and port share its datagrams.
    pub reuseport: Option<u32>,
    pub v6only: bool,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub hops: Hops,
}

/// A received datagram.
#[derive(Debug)]
pub struct Datagram {
    /// Bytes copied.
    pub len: usize,
    /// The datagram's full length.
    pub full: usize,
    pub from: SocketAddr,
    /// The IP packet's TTL / hop limit as received.
    pub ttl: u8,
    /// The IP packet's DS field (TOS / traffic class) as received.
    pub tos: u8,
}

impl UdpSocket {
    pub(crate) fn new(sh: Arc<Shared>, v6: bool) -> UdpSocket {
        let id = sh.peek(|i| {
            let id = i.id();
            i.udp.insert(
                id,
                Ent {
                    v6,
                    reuse: false,
                    reuseport: None,
                    rxq: VecDeque::new(),
                    rxq_bytes: 0,
                    v6only: false,
                    rcvbuf: 212_992,
                    sndbuf: 212_992,
                    hops: Hops::default(),
                    h: None,
                    port: None,
                    addr: unspecified(v6).ip(),
                    peer: None,
                    peer_src: None,
                    shut: 0,
                    err: None,
                    waker: None,
                    sig: (u32::MAX, 0, 0),
                },
            );
            id
        });
        UdpSocket { sh, id, v6 }
    }

    pub fn is_v6(&self) -> bool {
        self.v6
    }

    pub fn set_waker(&self, w: Waker) {
        self.sh.peek(|i| i.uent(self.id).waker = Some(w));
    }

    pub fn opts(&self) -> UdpOpts {
        self.sh.peek(|i| {
            let e = i.uent(self.id);
            UdpOpts {
                reuseaddr: e.reuse,
                reuseport: e.reuseport,
                v6only: e.v6only,
                rcvbuf: e.rcvbuf,
                sndbuf: e.sndbuf,
                hops: e.hops,
            }
        })
    }

    /// Change options; buffer sizes only matter before the socket is bound.
    pub fn set_opts(&self, o: UdpOpts) {
        let id = self.id;
        self.sh.peek(|i| {
            let e = i.udp.get_mut(&id).expect("live udp socket");
            e.v6only = o.v6only;
            e.rcvbuf = o.rcvbuf;
            e.sndbuf = o.sndbuf;
            e.hops = o.hops;
            if e.reuse != o.reuseaddr || e.reuseport != o.reuseport {
                e.reuse = o.reuseaddr;
                e.reuseport = o.reuseport;
                let r = Reuse {
                    addr: o.reuseaddr,
                    port: o.reuseport,
                };
                if let Some(p) = e.port {
                    i.ports.set_reuse(UDP, p, id, r);
                }
            }
        })
    }

    /// An IPv6 socket also takes IPv4 addresses (Linux accepts a sockaddr_in on
    /// connect and sendto of an AF_INET6 UDP socket).
    fn norm(&self, a: SocketAddr) -> Result<SocketAddr> {
        match (self.v6, a) {
            (false, SocketAddr::V6(_)) => Err(Error::AfNoSupport),
            _ => Ok(unmap(a)),
        }
    }

    pub fn bind(&self, a: SocketAddr) -> Result<()> {
        let id = self.id;
        if self.v6 && a.is_ipv4() {
            return Err(Error::AfNoSupport);
        }
        let a = self.norm(a)?;
        self.sh.run(|i| {
            if !i.is_local(a.ip()) {
                return Err(Error::AddrNotAvail);
            }
            if i.uent(id).port.is_some() {
                return Err(Error::Invalid);
            }
            i.udp_bind(id, a)
        })
    }

    /// connect(2); None dissolves the association (AF_UNSPEC).
    pub fn connect(&self, a: Option<SocketAddr>) -> Result<()> {
        let id = self.id;
        let v6 = self.v6;
        let a = match a {
            Some(a) => Some(self.norm(a)?),
            None => None,
        };
        self.sh.run(|i| {
            let Some(mut a) = a else {
                let e = i.uent(id);
                e.peer = None;
                e.peer_src = None;
                return Ok(());
            };
            if a.ip().is_unspecified() {
                a.set_ip(match a.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            if v6 && a.is_ipv4() && i.uent(id).v6only {
                return Err(Error::AfNoSupport);
            }
            if !i.routable(a.ip()) {
                return Err(Error::NetUnreach);
            }
            if i.uent(id).port.is_none() {
                i.udp_bind(id, unspecified(v6))?;
            }
            let src = i.source_for(a.ip());
            let e = i.uent(id);
            e.peer = Some(a);
            e.peer_src = if e.addr.is_unspecified() { src } else { None };
            Ok(())
        })
    }

    /// Queue one datagram to `to` (None: the connected peer).
    pub fn send_to(&self, data: &[u8], to: Option<SocketAddr>) -> Result<usize> {
        self.send_to_opts(data, to, SendOpts::default())
    }

    /// [`UdpSocket::send_to`] with a DS field and maybe a hop limit of its own.
    pub fn send_to_opts(&self, data: &[u8], to: Option<SocketAddr>, o: SendOpts) -> Result<usize> {
        let id = self.id;
        let v6 = self.v6;
        let to = match to {
            Some(a) => Some(self.norm(a)?),
            None => None,
        };
        self.sh.run(|i| {
            // Linux binds the socket before looking at the destination.
            if i.uent(id).port.is_none() {
                i.udp_bind(id, unspecified(v6))?;
            }
            let e = i.uent(id);
            if let Some(err) = e.err.take() {
                return Err(err);
            }
            if e.shut & SHUT_WR != 0 {
                return Err(Error::Pipe);
            }
            let mut to = to.or(e.peer).ok_or(Error::DestAddrRequired)?;
            if v6 && e.v6only && to.is_ipv4() {
                return Err(Error::NetUnreach);
            }
            if to.ip().is_unspecified() {
                to.set_ip(match to.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            // IPv6 datagrams are not fragmented yet: one must fit the device's MTU (Linux
            // would fragment up to 65527 bytes on lo).
            let max = if to.is_ipv6() {
                MAX_PAYLOAD.min(i.dev.mtu - 48)
            } else {
                MAX_PAYLOAD
            };
            if data.len() > max {
                return Err(Error::MsgSize);
            }
            if !i.routable(to.ip()) {
                return Err(Error::NetUnreach);
            }
            if i.uent(id).port.is_none() {
                i.udp_bind(id, unspecified(v6))?;
            }
            let local = {
                let e = i.uent(id);
                if !e.addr.is_unspecified() {
                    Some(e.addr)
                } else {
                    i.source_for(to.ip())
                }
            };
            if to.port() == 0 {
                return Err(Error::Invalid);
            }
            let (h, hops) = {
                let e = i.uent(id);
                let hops = o.hop_limit.unwrap_or_else(|| e.hops.for_dst(to.ip()));
                (e.h.expect("bound"), hops)
            };
            // smoltcp has one hop limit per socket, used when a datagram leaves: send what
            // is queued before changing it.
            let s = i.sockets.get_mut::<udp::Socket>(h);
            if s.hop_limit() != Some(hops) {
                if s.send_queue() > 0 {
                    i.pump();
                }
                i.sockets
                    .get_mut::<udp::Socket>(h)
                    .set_hop_limit(Some(hops));
            }
            // smoltcp sends IPv6 datagrams and IPv4 fragments without their metadata: the
            // device takes their DS field by local port (see `tos`), set as hop limits are.
            let ds = o.tos.for_dst(to.ip());
            let key = (to.is_ipv6(), i.uent(id).port.expect("bound"));
            if i.dev.udp_tos.get(&key).copied().unwrap_or(0) != ds {
                if i.sockets.get::<udp::Socket>(h).send_queue() > 0 {
                    i.pump();
                }
                match ds {
                    0 => i.dev.udp_tos.remove(&key),
                    _ => i.dev.udp_tos.insert(key, ds),
                };
            }
            let s = i.sockets.get_mut::<udp::Socket>(h);
            if data.len() > s.payload_send_capacity() {
                return Err(Error::MsgSize);
            }
            let meta = udp::UdpMetadata {
                endpoint: IpEndpoint::new(IpAddress::from(to.ip()), to.port()),
                local_address: local.map(IpAddress::from),
                meta: tx_meta(ds),
            };
            match s.send_slice(data, meta) {
                Ok(()) => Ok(data.len()),
                Err(udp::SendError::BufferFull) => Err(Error::WouldBlock),
                Err(udp::SendError::Unaddressable) => Err(Error::Invalid),
            }
        })
    }

    /// Receive (or with `peek`, copy) the next datagram.
    pub fn recv_from(&self, buf: &mut [u8], peek: bool) -> Result<Datagram> {
        let id = self.id;
        let v6 = self.v6;
        let f = |i: &mut Inner| {
            let e = i.udp.get_mut(&id).expect("live udp socket");
            let shut = e.shut;
            let Some(h) = e.h else {
                return Err(Error::WouldBlock);
            };
            if let Some((d, m)) = e.rxq.front() {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                let dg = Datagram {
                    len: n,
                    full: d.len(),
                    from: map_for(v6, ep(m.endpoint)),
                    ttl: m.meta.id as u8,
                    tos: (m.meta.id >> 8) as u8,
                };
                if !peek {
                    e.rxq_bytes -= d.len();
                    e.rxq.pop_front();
                }
                return Ok(dg);
            }
            if !i.sockets.get::<udp::Socket>(h).can_recv() {
                if let Some(err) = e.err.take() {
                    return Err(err);
                }
            }
            let s = i.sockets.get_mut::<udp::Socket>(h);
            let r = if peek {
                s.peek().map(|(d, m)| (d, *m))
            } else {
                s.recv()
            };
            match r {
                Ok((d, m)) => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    Ok(Datagram {
                        len: n,
                        full: d.len(),
                        from: map_for(v6, ep(m.endpoint)),
                        ttl: m.meta.id as u8,
                        tos: (m.meta.id >> 8) as u8,
                    })
                }
                Err(_) if shut & SHUT_RD != 0 => Ok(Datagram {
                    len: 0,
                    full: 0,
                    from: unspecified(v6),
                    ttl: 0,
                    tos: 0,
                }),
                Err(_) => Err(Error::WouldBlock),
            }
        };
        self.sh.run_or_peek(peek, f)
    }

    pub fn shutdown(&self, how: u8) -> Result<()> {
        self.sh.run(|i| {
            let e = i.uent(self.id);
            dgram::shutdown(&mut e.shut, e.peer.is_some(), how)
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        let v6 = self.v6;
        self.sh.peek(|i| {
            let e = i.uent(self.id);
            match e.port {
                Some(p) => map_for(v6, SocketAddr::new(e.peer_src.unwrap_or(e.addr), p)),
                None => unspecified(v6),
            }
        })
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        let v6 = self.v6;
        self.sh
            .peek(|i| i.uent(self.id).peer.map(|p| map_for(v6, p)))
            .ok_or(Error::NotConn)
    }

    pub fn events(&self) -> u32 {
        self.sh.peek(|i| events(&i.udp[&self.id], &i.sockets).0)
    }

    /// SO_ERROR: the pending error, cleared.
    pub fn take_error(&self) -> Option<Error> {
        self.sh.peek(|i| i.uent(self.id).err.take())
    }

    /// FIONREAD: the size of the next datagram; TIOCOUTQ: bytes queued to send.
    pub fn queues(&self) -> (usize, usize) {
        self.sh.peek(|i| {
            let e = i.uent(self.id);
            let Some(h) = e.h else { return (0, 0) };
            if let Some((d, _)) = e.rxq.front() {
                let n = d.len();
                return (n, i.sockets.get::<udp::Socket>(h).send_queue());
            }
            let s = i.sockets.get_mut::<udp::Socket>(h);
            let next = s.peek().map(|(d, _)| d.len()).unwrap_or(0);
            (next, s.send_queue())
        })
    }
}

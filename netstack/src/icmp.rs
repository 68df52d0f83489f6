//! ICMP echo ("ping") sockets, as Linux's SOCK_DGRAM/IPPROTO_ICMP(V6): the caller sends
//! echo requests (the stack sets the identifier, the socket's "port", and the checksum)
//! and receives the echo replies carrying that identifier, ICMP header included.

use crate::dgram::{family, Dgram};
use crate::raw::Rx;
use crate::*;
use smoltcp::wire::Icmpv4Packet;

/// Replies a socket queues.
const PACKETS: usize = 64;
/// sizeof(struct icmphdr).
const HDR: usize = 8;
/// The largest ICMP message in one IPv4 packet (65535 - 20).
pub const MAX_MSG: usize = 65515;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

pub(crate) struct Ent {
    /// Received: echo replies.
    d: Dgram,
    ident: Option<u16>,
    /// When the identifier was taken (the latest binding gets the replies, as on Linux).
    bound_at: u64,
    /// SO_REUSEADDR, set from the start as Linux does for ping sockets.
    reuse: bool,
}

impl Inner {
    /// An echo reply goes to one ping socket: the one of its family bound last to its
    /// identifier (and to its destination or the wildcard address), as Linux's
    /// ping_lookup finds it.
    pub(crate) fn ping_deliver(&mut self, v6: bool, rx: &Rx) {
        let m = rx.msg();
        let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
        if m.len() < HDR || m[0] != reply {
            return;
        }
        let ident = u16::from_be_bytes([m[4], m[5]]);
        let taker = self
            .icmp
            .values_mut()
            .filter(|e| {
                e.d.v6 == v6
                    && e.ident == Some(ident)
                    && (e.d.addr.is_unspecified() || e.d.addr == rx.dst)
            })
            .max_by_key(|e| e.bound_at);
        if let Some(e) = taker {
            e.d.push(PACKETS, m, rx.src, (rx.ttl, rx.tos));
        }
    }

    pub(crate) fn icmp_collect_wakes(&mut self, out: &mut Vec<Waker>) {
        for e in self.icmp.values_mut() {
            e.d.collect_wake(out);
        }
    }

    fn ient(&mut self, id: u64) -> &mut Ent {
        self.icmp.get_mut(&id).expect("live icmp socket")
    }

    /// Take identifier `ident` (0: the first free one). Ping sockets with SO_REUSEADDR
    /// (the default) may share an identifier.
    fn icmp_bind(&mut self, id: u64, addr: IpAddr, ident: u16) -> Result<()> {
        let used = |i: &Inner, n: u16| i.icmp.values().any(|e| e.ident == Some(n));
        let reuse = self.ient(id).reuse;
        let ident = match ident {
            0 => (1..=u16::MAX)
                .find(|&n| !used(self, n))
                .ok_or(Error::AddrInUse)?,
            n if self
                .icmp
                .values()
                .any(|e| e.ident == Some(n) && !(e.reuse && reuse)) =>
            {
                return Err(Error::AddrInUse)
            }
            n => n,
        };
        let v6 = self.ient(id).d.v6;
        self.tap(v6);
        let at = self.id();
        let e = self.ient(id);
        e.ident = Some(ident);
        e.bound_at = at;
        e.d.addr = addr;
        Ok(())
    }
}

/// An ICMP echo socket of the stack.
pub struct PingSocket {
    sh: Arc<Shared>,
    id: u64,
    v6: bool,
}

impl Drop for PingSocket {
    fn drop(&mut self) {
        let id = self.id;
        self.sh.run(|i| i.icmp.remove(&id));
    }
}

impl PingSocket {
    pub(crate) fn new(sh: Arc<Shared>, v6: bool) -> PingSocket {
        let id = sh.peek(|i| {
            let id = i.id();
            i.icmp.insert(
                id,
                Ent {
                    d: Dgram::new(v6),
                    ident: None,
                    bound_at: 0,
                    reuse: true,
                },
            );
            id
        });
        PingSocket { sh, id, v6 }
    }

    pub fn set_waker(&self, w: Waker) {
        self.sh.peek(|i| i.ient(self.id).d.waker = Some(w));
    }

    /// bind(2): the port of `a` is the identifier (0: pick one).
    pub fn bind(&self, a: SocketAddr) -> Result<()> {
        let ip = family(self.v6, a.ip())?;
        let id = self.id;
        self.sh.run(|i| {
            if !i.is_local(ip) {
                return Err(Error::AddrNotAvail);
            }
            if i.ient(id).ident.is_some() {
                return Err(Error::Invalid);
            }
            i.icmp_bind(id, ip, a.port())
        })
    }

    /// connect(2); None dissolves the association (AF_UNSPEC).
    pub fn connect(&self, a: Option<IpAddr>) -> Result<()> {
        let a = a.map(|a| family(self.v6, a)).transpose()?;
        let (id, v6) = (self.id, self.v6);
        self.sh.run(|i| {
            if let Some(a) = a {
                if !i.routable(a) {
                    return Err(Error::NetUnreach);
                }
                if i.ient(id).ident.is_none() {
                    i.icmp_bind(id, unspecified(v6).ip(), 0)?;
                }
            }
            i.ient(id).d.peer = a;
            Ok(())
        })
    }

    /// Send one echo request (`msg` starts with the ICMP header) to `to` (None: the
    /// connected peer). The identifier and checksum are the stack's.
    pub fn send_to(&self, msg: &[u8], to: Option<IpAddr>) -> Result<usize> {
        self.send_to_opts(msg, to, SendOpts::default())
    }

    /// [`PingSocket::send_to`] with a DS field and maybe a hop limit of its own.
    pub fn send_to_opts(&self, msg: &[u8], to: Option<IpAddr>, o: SendOpts) -> Result<usize> {
        let to = to.map(|a| family(self.v6, a)).transpose()?;
        let request = if self.v6 {
            ECHO_REQUEST_V6
        } else {
            ECHO_REQUEST_V4
        };
        if msg.len() < HDR || msg[0] != request || msg[1] != 0 {
            return Err(Error::Invalid);
        }
        if msg.len() > MAX_MSG {
            return Err(Error::MsgSize);
        }
        let (id, v6) = (self.id, self.v6);
        self.sh.run(|i| {
            let to = i.ient(id).d.dest(to)?;
            if !i.routable(to) {
                return Err(Error::NetUnreach);
            }
            if i.ient(id).ident.is_none() {
                i.icmp_bind(id, unspecified(v6).ip(), 0)?;
            }
            let e = i.ient(id);
            let ident = e.ident.expect("bound");
            let (bound, hops) = (e.d.addr, e.d.ttl.unwrap_or(64));
            let mut m = msg.to_vec();
            m[4..6].copy_from_slice(&ident.to_be_bytes());
            m[2..4].fill(0);
            if !v6 {
                Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
            }
            i.icmp_send(
                bound,
                to,
                (o.hop_limit.unwrap_or(hops), o.tos.for_dst(to)),
                &m,
                v6.then_some(2),
            )?;
            Ok(msg.len())
        })
    }

    /// Receive (or with `peek`, copy) the next echo reply, ICMP header included.
    pub fn recv_from(&self, buf: &mut [u8], peek: bool) -> Result<Datagram> {
        self.sh
            .run_or_peek(peek, |i| i.ient(self.id).d.recv(buf, peek))
    }

    pub fn shutdown(&self, how: u8) -> Result<()> {
        self.sh.run(|i| i.ient(self.id).d.shutdown(how))
    }

    /// The bound address, its port the identifier.
    pub fn local_addr(&self) -> SocketAddr {
        self.sh.peek(|i| {
            let e = i.ient(self.id);
            SocketAddr::new(e.d.addr, e.ident.unwrap_or(0))
        })
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.sh.peek(|i| i.ient(self.id).d.peer_addr())
    }

    pub fn events(&self) -> u32 {
        self.sh.peek(|i| i.icmp[&self.id].d.events())
    }

    pub fn reuseaddr(&self) -> bool {
        self.sh.peek(|i| i.ient(self.id).reuse)
    }

    pub fn set_reuseaddr(&self, v: bool) {
        self.sh.peek(|i| i.ient(self.id).reuse = v)
    }

    /// IP_TTL / IPV6_UNICAST_HOPS (None: the default, 64).
    pub fn set_ttl(&self, ttl: Option<u8>) {
        self.sh.peek(|i| i.ient(self.id).d.ttl = ttl)
    }

    /// FIONREAD: the size of the next reply; TIOCOUTQ: 0 (sent at once).
    pub fn queues(&self) -> (usize, usize) {
        self.sh.peek(|i| (i.ient(self.id).d.next_len(), 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::wait;

    fn request(ty: u8, seq: u16, data: &[u8]) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0, 0xde, 0xad];
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(data);
        m
    }

    fn checksum_ok(m: &[u8]) -> bool {
        let mut sum: u32 = m
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .sum();
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn echo_reply_has_the_request_ds_field() {
        let st = Stack::new(StackConfig::default());
        for (v6, lo, ty) in [
            (false, IpAddr::V4(Ipv4Addr::LOCALHOST), 8),
            (true, IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        ] {
            let s = st.ping(v6);
            let o = SendOpts {
                tos: Tos { v4: 0x28, v6: 0x48 },
                hop_limit: None,
            };
            s.send_to_opts(&request(ty, 1, b"x"), Some(lo), o).unwrap();
            let mut buf = [0u8; 64];
            let d = wait(|| s.recv_from(&mut buf, false)).unwrap();
            assert_eq!(d.tos, if v6 { 0x48 } else { 0x28 });
        }
    }

    #[test]
    fn echo_on_loopback() {
        let st = Stack::new(StackConfig::default());
        let s = st.ping(false);
        s.bind("0.0.0.0:4242".parse().unwrap()).unwrap();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(s.send_to(&request(8, 7, b"hello"), Some(lo)), Ok(13));
        let mut buf = [0u8; 64];
        let d = wait(|| s.recv_from(&mut buf, false)).unwrap();
        assert_eq!(d.len, 13);
        assert_eq!(d.from, SocketAddr::new(lo, 0));
        // A reply, with the socket's identifier, the same sequence and data.
        assert_eq!(&buf[..2], &[0, 0]);
        assert_eq!(u16::from_be_bytes([buf[4], buf[5]]), 4242);
        assert_eq!(&buf[6..13], b"\x00\x07hello");
        assert!(checksum_ok(&buf[..13]));
        // Only the reply is queued (not the request seen on loopback).
        assert_eq!(s.recv_from(&mut buf, false).unwrap_err(), Error::WouldBlock);
        // Not an echo request, too short, or the wrong family: refused.
        assert_eq!(
            s.send_to(&request(0, 1, b""), Some(lo)),
            Err(Error::Invalid)
        );
        assert_eq!(s.send_to(&[8, 0, 0], Some(lo)), Err(Error::Invalid));
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            s.send_to(&request(8, 1, b""), Some(lo6)),
            Err(Error::AfNoSupport)
        );
        assert_eq!(
            s.send_to(&request(8, 1, b""), None),
            Err(Error::DestAddrRequired)
        );
        // An identifier may be shared; a picked one is free.
        let t = st.ping(false);
        assert_eq!(t.bind("0.0.0.0:4242".parse().unwrap()), Ok(()));
        let u = st.ping(false);
        u.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(u.local_addr().port(), 1);
        // Not without SO_REUSEADDR.
        let w = st.ping(false);
        w.set_reuseaddr(false);
        assert_eq!(
            w.bind("0.0.0.0:4242".parse().unwrap()),
            Err(Error::AddrInUse)
        );
    }

    #[test]
    fn shared_ident_reply_goes_to_one_with_ttl() {
        let st = Stack::new(StackConfig::default());
        let (s, t) = (st.ping(false), st.ping(false));
        s.bind("0.0.0.0:777".parse().unwrap()).unwrap();
        t.bind("0.0.0.0:777".parse().unwrap()).unwrap();
        s.set_ttl(Some(5));
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        s.send_to(&request(8, 1, b"x"), Some(lo)).unwrap();
        let mut buf = [0u8; 64];
        // The later binding takes the reply; the reply carries the stack's TTL (64).
        let d = wait(|| t.recv_from(&mut buf, false)).unwrap();
        assert_eq!((d.len, d.ttl), (9, 64));
        assert_eq!(s.recv_from(&mut buf, false).unwrap_err(), Error::WouldBlock);
    }

    #[test]
    fn echo_v6_autobind() {
        let st = Stack::new(StackConfig::default());
        let s = st.ping(true);
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        s.connect(Some(lo6)).unwrap();
        let ident = s.local_addr().port();
        assert_ne!(ident, 0);
        assert_eq!(s.send_to(&request(128, 3, b"abc"), None), Ok(11));
        let mut buf = [0u8; 64];
        let d = wait(|| s.recv_from(&mut buf, false)).unwrap();
        assert_eq!(d.len, 11);
        assert_eq!(buf[0], 129);
        assert_eq!(u16::from_be_bytes([buf[4], buf[5]]), ident);
        assert_eq!(&buf[8..11], b"abc");
        assert_ne!(s.events() & EV_IN, EV_IN);
    }
}

//! AF_INET and AF_INET6 sockets over rvisor's own TCP/IP stack (the `netstack` crate):
//! SOCK_STREAM is TCP, SOCK_DGRAM is UDP, or ICMP echo (ping sockets), SOCK_RAW is raw
//! ICMP/ICMPv6 (see `raw`). Nothing here reaches the host's network.
//!
//! The netstack sockets never block: an operation that cannot complete yet says so, and
//! the socket's waker (called by the stack whenever the socket's readiness or queues
//! change) notifies the socket's wait queue, which blocked callers and poll/select/epoll
//! sleep on. Blocking calls are interruptible like every other (ERESTARTSYS; EINTR when a
//! SO_RCVTIMEO/SO_SNDTIMEO is set, as Linux does).
//!
//! There is one stack per sandbox, with the loopback interface (127.0.0.1/8, ::1).

use super::tos::{self as ds, IPV6_RECVTCLASS, IPV6_TCLASS, IP_RECVTOS, IP_TOS};
use super::*;
use crate::kernel::{klog, Kernel};
use crate::waitq::WaitQueue;
use netstack::{Error as NErr, Hops, PingSocket, RawSocket, TcpSocket, UdpSocket};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Weak;
use std::time::{Duration, Instant};

pub const IPPROTO_IP: i32 = 0;
pub const IPPROTO_ICMP: i32 = 1;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_IPV6: i32 = 41;
pub const IPPROTO_ICMPV6: i32 = 58;

pub const SO_REUSEPORT: i32 = 15;

const CAP_NET_BIND_SERVICE: u32 = 10;

const TCP_NODELAY: i32 = 1;
const TCP_MAXSEG: i32 = 2;
const TCP_CORK: i32 = 3;
const TCP_KEEPIDLE: i32 = 4;
const TCP_KEEPINTVL: i32 = 5;
const TCP_KEEPCNT: i32 = 6;
const TCP_INFO: i32 = 11;
const TCP_QUICKACK: i32 = 12;
const TCP_USER_TIMEOUT: i32 = 18;

const IP_TTL: i32 = 2;
const IP_RECVERR: i32 = 11;
const IP_RECVTTL: i32 = 12;
const IP_MULTICAST_TTL: i32 = 33;
const IPV6_2292HOPLIMIT: i32 = 8;
const IPV6_RECVERR: i32 = 25;
const IPV6_UNICAST_HOPS: i32 = 16;
const IPV6_MULTICAST_HOPS: i32 = 18;
const IPV6_RECVHOPLIMIT: i32 = 51;
const IPV6_HOPLIMIT: i32 = 52;
const IPV6_V6ONLY: i32 = 26;

/// sizeof(struct sockaddr_in), sizeof(struct sockaddr_in6), SIN6_LEN_RFC2133.
const SIN_LEN: usize = 16;
const SIN6_LEN: usize = 28;
const SIN6_LEN_MIN: usize = 24;

/// Linux's default socket buffer sizes as getsockopt reports them.
const TCP_RCVBUF_DEFAULT: usize = 131_072;
const TCP_SNDBUF_DEFAULT: usize = 16_384;
const UDP_BUF_DEFAULT: usize = 212_992;
const WMEM_MAX: usize = 212_992;
const RMEM_MAX: usize = 212_992;
const SNDBUF_MIN: usize = 4608;
const RCVBUF_MIN: usize = 2304;

/// The stack of the sandbox `k` runs.
pub fn stack(k: &Arc<Kernel>) -> netstack::Stack {
    static ALL: Mutex<Vec<(Weak<Kernel>, netstack::Stack)>> = Mutex::new(Vec::new());
    per_kernel(&ALL, k, || {
        netstack::Stack::new(netstack::StackConfig::default())
    })
}

type SockList = Arc<Mutex<Vec<Weak<InetSock>>>>;

/// Every inet socket of the sandbox `k` runs (for /proc/net).
fn sock_list(k: &Arc<Kernel>) -> SockList {
    static ALL: Mutex<Vec<(Weak<Kernel>, SockList)>> = Mutex::new(Vec::new());
    per_kernel(&ALL, k, SockList::default)
}

/// The open inet sockets of the sandbox `k` runs, oldest first.
pub fn sockets(k: &Arc<Kernel>) -> Vec<Arc<InetSock>> {
    sock_list(k)
        .lock()
        .iter()
        .filter_map(|w| w.upgrade())
        .collect()
}

/// Log an unsupported option or operation once per sandbox.
pub fn unsupported(k: &Kernel, what: String) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    if SEEN
        .lock()
        .get_or_insert_with(HashSet::new)
        .insert(what.clone())
    {
        k.klog.log(
            klog::KERN,
            klog::WARNING,
            format!("rvisor: unsupported {what}"),
        );
        tracing::debug!(what, "unsupported socket feature");
    }
}

pub fn errno(e: NErr) -> Errno {
    Errno(e.errno())
}

pub enum Proto {
    Tcp(TcpSocket),
    Udp(UdpSocket),
    Ping(PingSocket),
    Raw(RawSocket),
}

/// Options the Sentry keeps (those the stack needs live in the netstack socket).
struct Opts {
    rcvtimeo: Option<Duration>,
    sndtimeo: Option<Duration>,
    linger: (i32, i32),
    /// SO_RCVBUF / SO_SNDBUF as getsockopt reports them.
    rcvbuf: usize,
    sndbuf: usize,
    /// IP_TTL, IPV6_UNICAST_HOPS and the multicast ones, as set.
    hops: Hops,
    /// Plain integer options that are remembered and reported back.
    misc: HashMap<(i32, i32), i32>,
}

/// An AF_INET/AF_INET6 socket.
pub struct InetSock {
    pub family: i32,
    pub ty: i32,
    pub protocol: i32,
    pub ino: u64,
    pub wq: Arc<WaitQueue>,
    pub proto: Proto,
    /// The owner /proc/net shows (the creator's fsuid).
    pub uid: u32,
    opts: Mutex<Opts>,
    list: SockList,
}

fn int_bytes(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn timeval_bytes(d: Option<Duration>) -> Vec<u8> {
    let (s, us) = d.map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_micros() as i64));
    let mut b = s.to_le_bytes().to_vec();
    b.extend_from_slice(&us.to_le_bytes());
    b
}

/// What a receive returned.
pub struct InetRecv {
    pub data: Vec<u8>,
    /// The call's return value (a datagram's full length with MSG_TRUNC).
    pub ret: usize,
    pub trunc: bool,
    pub from: Option<SocketAddr>,
    /// Control messages asked for (IP_RECVTTL, IPV6_RECVHOPLIMIT): (level, type, data).
    pub cmsgs: Vec<(i32, i32, Vec<u8>)>,
}

impl InetSock {
    /// socket(2). `ty` is SOCK_STREAM or SOCK_DGRAM, `protocol` already checked.
    pub fn new(t: &Task, family: i32, ty: i32, protocol: i32) -> Arc<InetSock> {
        let k = &t.kernel;
        let st = stack(k);
        let v6 = family == AF_INET6;
        let wq = Arc::new(WaitQueue::default());
        let proto = if ty == SOCK_STREAM {
            Proto::Tcp(st.tcp(v6))
        } else if ty == SOCK_RAW {
            Proto::Raw(st.raw(v6))
        } else if protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6 {
            Proto::Ping(st.ping(v6))
        } else {
            Proto::Udp(st.udp(v6))
        };
        let list = sock_list(k);
        Self::wrap(family, ty, protocol, proto, wq, (t.creds().fsuid, list))
    }

    fn wrap(
        family: i32,
        ty: i32,
        protocol: i32,
        proto: Proto,
        wq: Arc<WaitQueue>,
        (uid, list): (u32, SockList),
    ) -> Arc<InetSock> {
        let w = wq.clone();
        let waker: netstack::Waker = Arc::new(move || w.notify_all());
        let (rcvbuf, sndbuf) = match &proto {
            Proto::Tcp(s) => {
                s.set_waker(waker);
                (TCP_RCVBUF_DEFAULT, TCP_SNDBUF_DEFAULT)
            }
            Proto::Udp(s) => {
                s.set_waker(waker);
                (UDP_BUF_DEFAULT, UDP_BUF_DEFAULT)
            }
            Proto::Ping(s) => {
                s.set_waker(waker);
                (UDP_BUF_DEFAULT, UDP_BUF_DEFAULT)
            }
            Proto::Raw(s) => {
                s.set_waker(waker);
                (UDP_BUF_DEFAULT, UDP_BUF_DEFAULT)
            }
        };
        let s = Arc::new(InetSock {
            family,
            ty,
            protocol,
            ino: next_ino(),
            wq,
            proto,
            uid,
            list: list.clone(),
            opts: Mutex::new(Opts {
                rcvtimeo: None,
                sndtimeo: None,
                linger: (0, 0),
                rcvbuf,
                sndbuf,
                hops: Hops::default(),
                misc: HashMap::new(),
            }),
        });
        let mut l = list.lock();
        if l.len().is_power_of_two() {
            l.retain(|w| w.strong_count() > 0);
        }
        l.push(Arc::downgrade(&s));
        s
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self.proto, Proto::Tcp(_))
    }

    pub fn v6(&self) -> bool {
        self.family == AF_INET6
    }

    /// Block (unless `nonblock`) until `f` stops saying "would block".
    fn wait<T>(
        &self,
        t: &Task,
        nonblock: bool,
        timeo: Option<Duration>,
        mut f: impl FnMut() -> Result<T, NErr>,
    ) -> KResult<T> {
        let mut check = || match f() {
            Err(NErr::WouldBlock) => None,
            Err(e) => Some(Err(errno(e))),
            Ok(v) => Some(Ok(v)),
        };
        if nonblock || timeo == Some(Duration::ZERO) {
            return check().unwrap_or(Err(EAGAIN));
        }
        let deadline = timeo.map(|d| Instant::now() + d);
        match t.block_on(&[&self.wq], deadline, check) {
            Err(e) if e == ETIMEDOUT => Err(EAGAIN),
            Err(e) if e == ERESTARTSYS && timeo.is_some() => Err(EINTR),
            r => r,
        }
    }

    // ---- addresses ----

    /// Parse a sockaddr for this socket's family. Ok(None): AF_UNSPEC.
    pub fn parse_addr(&self, b: &[u8]) -> KResult<Option<SocketAddr>> {
        let fam = if b.len() >= 2 {
            u16::from_le_bytes([b[0], b[1]]) as i32
        } else {
            -1
        };
        // udpv6 takes IPv4 destinations (connect, sendto); ping sockets do not.
        let v4_ok = self.ty == SOCK_DGRAM && !matches!(self.proto, Proto::Ping(_));
        let min = if self.v6() && !(fam == AF_INET && v4_ok) {
            SIN6_LEN_MIN
        } else {
            SIN_LEN
        };
        if b.len() < min {
            return Err(EINVAL);
        }
        let port = u16::from_be_bytes([b[2], b[3]]);
        if fam == AF_UNSPEC {
            return Ok(None);
        }
        if fam == AF_INET && self.v6() && v4_ok {
            return Ok(Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::new(b[4], b[5], b[6], b[7]),
                port,
            ))));
        }
        if fam != self.family {
            return Err(EAFNOSUPPORT);
        }
        Ok(Some(if self.v6() {
            let a: [u8; 16] = b[8..24].try_into().expect("16 bytes");
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(a), port, 0, 0))
        } else {
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::new(b[4], b[5], b[6], b[7]),
                port,
            ))
        }))
    }

    /// A sockaddr_in / sockaddr_in6 for `a`.
    pub fn addr_bytes(a: SocketAddr) -> Vec<u8> {
        match a {
            SocketAddr::V4(v) => {
                let mut b = vec![0u8; SIN_LEN];
                b[0..2].copy_from_slice(&(AF_INET as u16).to_le_bytes());
                b[2..4].copy_from_slice(&v.port().to_be_bytes());
                b[4..8].copy_from_slice(&v.ip().octets());
                b
            }
            SocketAddr::V6(v) => {
                let mut b = vec![0u8; SIN6_LEN];
                b[0..2].copy_from_slice(&(AF_INET6 as u16).to_le_bytes());
                b[2..4].copy_from_slice(&v.port().to_be_bytes());
                b[8..24].copy_from_slice(&v.ip().octets());
                b
            }
        }
    }

    fn any(&self) -> SocketAddr {
        if self.v6() {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        }
    }

    pub fn bind(&self, t: &Task, a: Option<SocketAddr>, raw_family: u16) -> KResult<()> {
        if self.v6() && raw_family != AF_INET6 as u16 {
            return Err(EAFNOSUPPORT);
        }
        let a = match a {
            Some(a) => a,
            // Linux accepts AF_UNSPEC with INADDR_ANY on AF_INET sockets.
            None if !self.v6() && raw_family == AF_UNSPEC as u16 => self.any(),
            None => return Err(EAFNOSUPPORT),
        };
        // Ports below net.ipv4.ip_unprivileged_port_start (1024); a ping socket's port is
        // its ICMP identifier.
        let ping = matches!(self.proto, Proto::Ping(_) | Proto::Raw(_));
        if (1..1024).contains(&a.port()) && !ping && !t.creds().has_cap(CAP_NET_BIND_SERVICE) {
            return Err(EACCES);
        }
        match &self.proto {
            Proto::Tcp(s) => s.bind(a),
            Proto::Udp(s) => s.bind(a),
            Proto::Ping(s) => s.bind(a),
            Proto::Raw(s) => s.bind(a.ip()),
        }
        .map_err(errno)
    }

    pub fn listen(&self, backlog: i32) -> KResult<()> {
        let Proto::Tcp(s) = &self.proto else {
            return Err(EOPNOTSUPP);
        };
        // Linux: a negative or too large backlog is net.core.somaxconn.
        let b = if backlog as u32 as usize > unix::SOMAXCONN {
            unix::SOMAXCONN
        } else {
            backlog as usize
        };
        s.listen(b).map_err(errno)
    }

    pub fn accept(&self, t: &Task, nonblock: bool) -> KResult<(Arc<InetSock>, SocketAddr)> {
        let Proto::Tcp(s) = &self.proto else {
            return Err(EOPNOTSUPP);
        };
        if !s.is_listening() {
            return Err(EINVAL);
        }
        let timeo = self.opts.lock().rcvtimeo;
        let (ns, peer) = self.wait(t, nonblock, timeo, || s.accept())?;
        let n = Self::wrap(
            self.family,
            self.ty,
            self.protocol,
            Proto::Tcp(ns),
            Arc::new(WaitQueue::default()),
            (t.creds().fsuid, self.list.clone()),
        );
        {
            let (mine, mut theirs) = (self.opts.lock(), n.opts.lock());
            theirs.misc = mine.misc.clone();
            theirs.linger = mine.linger;
            theirs.rcvbuf = mine.rcvbuf;
            theirs.sndbuf = mine.sndbuf;
            theirs.hops = mine.hops;
        }
        // Room in the accept queue again.
        self.wq.notify_all();
        Ok((n, peer))
    }

    pub fn connect(&self, t: &Task, a: Option<SocketAddr>, nonblock: bool) -> KResult<()> {
        match &self.proto {
            Proto::Udp(s) => s.connect(a).map_err(errno),
            Proto::Ping(s) => s.connect(a.map(|a| a.ip())).map_err(errno),
            Proto::Raw(s) => s.connect(a.map(|a| a.ip())).map_err(errno),
            Proto::Tcp(s) => {
                let Some(a) = a else {
                    // AF_UNSPEC: disconnect (Linux's tcp_disconnect).
                    s.disconnect();
                    self.wq.notify_all();
                    return Ok(());
                };
                match s.connect(a) {
                    Ok(()) => Ok(()),
                    Err(NErr::InProgress) if nonblock => Err(EINPROGRESS),
                    Err(NErr::InProgress) | Err(NErr::Already) if !nonblock => {
                        let timeo = self.opts.lock().sndtimeo;
                        let r = self.wait(t, false, timeo, || match s.connect_result() {
                            None => Err(NErr::WouldBlock),
                            Some(r) => r,
                        });
                        match r {
                            Err(e) if e == EAGAIN => Err(EINPROGRESS),
                            r => r,
                        }
                    }
                    Err(e) => Err(errno(e)),
                }
            }
        }
    }

    pub fn name(&self) -> SocketAddr {
        match &self.proto {
            Proto::Tcp(s) => s.local_addr(),
            Proto::Udp(s) => s.local_addr(),
            Proto::Ping(s) => s.local_addr(),
            // Linux reports the protocol as a raw socket's port.
            Proto::Raw(s) => SocketAddr::new(s.local_addr().ip(), self.protocol as u16),
        }
    }

    pub fn peer(&self) -> KResult<SocketAddr> {
        match &self.proto {
            Proto::Tcp(s) => s.peer_addr(),
            Proto::Udp(s) => s.peer_addr(),
            Proto::Ping(s) => s.peer_addr(),
            Proto::Raw(s) => s.peer_addr(),
        }
        .map_err(errno)
    }

    pub fn shutdown(&self, how: i32) -> KResult<()> {
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(EINVAL);
        }
        let bits = how as u8 + 1;
        let r = match &self.proto {
            Proto::Tcp(s) => s.shutdown(bits),
            Proto::Udp(s) => s.shutdown(bits),
            Proto::Ping(s) => s.shutdown(bits),
            Proto::Raw(s) => s.shutdown(bits),
        };
        self.wq.notify_all();
        r.map_err(errno)
    }

    // ---- data ----

    /// sendmsg(2). EPIPE is returned as is (the caller raises SIGPIPE).
    pub fn send(
        &self,
        t: &Task,
        nonblock: bool,
        data: &[u8],
        to: Option<SocketAddr>,
        flags: u32,
    ) -> KResult<usize> {
        self.send_ctl(t, nonblock, data, to, flags, &[])
    }

    /// sendmsg(2) with its control data `ctl` (IP_TOS, IPV6_TCLASS on datagrams).
    pub fn send_ctl(
        &self,
        t: &Task,
        nonblock: bool,
        data: &[u8],
        to: Option<SocketAddr>,
        flags: u32,
        ctl: &[u8],
    ) -> KResult<usize> {
        if flags & MSG_OOB != 0 {
            unsupported(&t.kernel, "MSG_OOB on inet sockets".into());
            return Err(EOPNOTSUPP);
        }
        let timeo = self.opts.lock().sndtimeo;
        let opts = || self.send_opts(t, to, ctl);
        match &self.proto {
            Proto::Udp(s) => {
                let o = opts()?;
                self.wait(t, nonblock, timeo, || s.send_to_opts(data, to, o))
            }
            Proto::Ping(s) => {
                let o = opts()?;
                self.wait(t, nonblock, timeo, || {
                    s.send_to_opts(data, to.map(|a| a.ip()), o)
                })
            }
            Proto::Raw(s) => {
                // An IPv6 raw socket's port, if given, must be its protocol.
                if self.v6()
                    && to.is_some_and(|a| a.port() != 0 && a.port() as i32 != self.protocol)
                {
                    return Err(EINVAL);
                }
                let o = opts()?;
                self.wait(t, nonblock, timeo, || {
                    s.send_to_opts(data, to.map(|a| a.ip()), o)
                })
            }
            Proto::Tcp(_) => {
                // A destination address is ignored on TCP, as Linux does.
                self.tcp_send(t, nonblock, data.len(), &mut |at, b| {
                    b.copy_from_slice(&data[at..at + b.len()]);
                    true
                })
            }
        }
    }

    /// How a datagram to `to` (None: the peer) is sent: the socket's IP_TOS and
    /// IPV6_TCLASS, or the control messages' DS field and hop limit for the destination's
    /// family.
    fn send_opts(
        &self,
        t: &Task,
        to: Option<SocketAddr>,
        ctl: &[u8],
    ) -> KResult<netstack::SendOpts> {
        let (v4, v6) = {
            let o = self.opts.lock();
            let get = |k| *o.misc.get(&k).unwrap_or(&0) as u8;
            (get((IPPROTO_IP, IP_TOS)), get((IPPROTO_IPV6, IPV6_TCLASS)))
        };
        let mut o = netstack::SendOpts {
            tos: netstack::Tos { v4, v6 },
            hop_limit: None,
        };
        if ctl.is_empty() {
            return Ok(o);
        }
        let peer = match &self.proto {
            Proto::Udp(s) => s.peer_addr().ok(),
            Proto::Ping(s) => s.peer_addr().ok(),
            Proto::Raw(s) => s.peer_addr().ok(),
            Proto::Tcp(_) => None,
        };
        let dst_v4 = match to.or(peer) {
            Some(SocketAddr::V4(_)) => true,
            Some(SocketAddr::V6(a)) => a.ip().to_ipv4_mapped().is_some(),
            None => !self.v6(),
        };
        let c = ds::parse_send(&t.kernel, ctl, dst_v4)?;
        o.tos.v4 = c.tos.unwrap_or(v4);
        o.tos.v6 = c.tclass.unwrap_or(v6);
        o.hop_limit = c.hop_limit;
        Ok(o)
    }

    /// A TCP send of `len` bytes, copied into the stack's send buffer by `fill(at, dst)`
    /// (bytes `at..` of the data): blocks (unless `nonblock`) until all is queued, or
    /// returns what was queued when interrupted. Err(EINVAL) if not TCP.
    pub fn tcp_send(
        &self,
        t: &Task,
        nonblock: bool,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [u8]) -> bool,
    ) -> KResult<usize> {
        let Proto::Tcp(s) = &self.proto else {
            return Err(EINVAL);
        };
        let timeo = self.opts.lock().sndtimeo;
        let mut sent = 0;
        loop {
            let r = self.wait(t, nonblock, timeo, || {
                s.send_with(len - sent, &mut |at, b| fill(sent + at, b))
            });
            match r {
                Ok(n) => {
                    sent += n;
                    if sent >= len {
                        break;
                    }
                }
                Err(_) if sent > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// recvmsg(2): up to `want` bytes.
    pub fn recv(&self, t: &Task, nonblock: bool, want: usize, flags: u32) -> KResult<InetRecv> {
        if flags & MSG_OOB != 0 {
            unsupported(&t.kernel, "MSG_OOB on inet sockets".into());
            return Err(EINVAL);
        }
        let peek = flags & MSG_PEEK != 0;
        let timeo = self.opts.lock().rcvtimeo;
        match &self.proto {
            Proto::Udp(_) | Proto::Ping(_) | Proto::Raw(_) => {
                // A raw IPv4 packet comes with its header.
                let mut buf = vec![0u8; want.min(netstack::UDP_MAX_PAYLOAD + 28)];
                let d = self.wait(t, nonblock, timeo, || match &self.proto {
                    Proto::Ping(s) => s.recv_from(&mut buf, peek),
                    Proto::Udp(s) => s.recv_from(&mut buf, peek),
                    Proto::Raw(s) => s.recv_from(&mut buf, peek),
                    Proto::Tcp(_) => Err(NErr::Invalid),
                })?;
                buf.truncate(d.len);
                let cmsgs = self.recv_cmsgs(d.from, d.ttl, d.tos);
                Ok(InetRecv {
                    data: buf,
                    ret: if flags & MSG_TRUNC != 0 {
                        d.full
                    } else {
                        d.len
                    },
                    trunc: d.full > d.len,
                    from: Some(d.from),
                    cmsgs,
                })
            }
            Proto::Tcp(_) => {
                let mut out: Vec<u8> = vec![];
                let n = self.tcp_recv(t, nonblock, want, flags, &mut |at, b| {
                    out.truncate(at);
                    out.extend_from_slice(b);
                    true
                })?;
                out.truncate(n);
                Ok(InetRecv {
                    data: out,
                    ret: n,
                    trunc: false,
                    from: None,
                    cmsgs: vec![],
                })
            }
        }
    }

    /// A TCP receive of up to `want` bytes (MSG_PEEK and MSG_WAITALL in `flags`), handed
    /// from the stack's receive buffer to `drain(at, src)` (bytes `at..` of what is
    /// received). Err(EINVAL) if not TCP.
    pub fn tcp_recv(
        &self,
        t: &Task,
        nonblock: bool,
        want: usize,
        flags: u32,
        drain: &mut dyn FnMut(usize, &[u8]) -> bool,
    ) -> KResult<usize> {
        let Proto::Tcp(s) = &self.proto else {
            return Err(EINVAL);
        };
        let peek = flags & MSG_PEEK != 0;
        let waitall = flags & MSG_WAITALL != 0 && !peek;
        let timeo = self.opts.lock().rcvtimeo;
        let mut have = 0;
        loop {
            let r = self.wait(t, nonblock, timeo, || {
                s.recv_with(want - have, peek, &mut |at, b| drain(have + at, b))
            });
            match r {
                Ok(0) => break,
                Ok(n) => {
                    have += n;
                    if !waitall || have >= want {
                        break;
                    }
                }
                Err(_) if have > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(have)
    }

    /// The control messages a datagram from `from` with hop limit `ttl` and DS field
    /// `tos` gets, in Linux's order: IP_TTL, IP_TOS (one byte) for IPv4 packets;
    /// IPV6_HOPLIMIT, IPV6_TCLASS (an int), IPV6_2292HOPLIMIT for IPv6 ones.
    fn recv_cmsgs(&self, from: SocketAddr, ttl: u8, tos: u8) -> Vec<(i32, i32, Vec<u8>)> {
        let o = self.opts.lock();
        let on = |level, name| o.misc.get(&(level, name)).is_some_and(|v| *v != 0);
        let v4 = match from {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
        };
        let ttl = int_bytes(ttl as i32);
        let mut out = vec![];
        if v4 && on(IPPROTO_IP, IP_RECVTTL) {
            out.push((IPPROTO_IP, IP_TTL, ttl.clone()));
        }
        if v4 && on(IPPROTO_IP, IP_RECVTOS) {
            out.push((IPPROTO_IP, IP_TOS, vec![tos]));
        }
        if !v4 && on(IPPROTO_IPV6, IPV6_RECVHOPLIMIT) {
            out.push((IPPROTO_IPV6, IPV6_HOPLIMIT, ttl.clone()));
        }
        if !v4 && on(IPPROTO_IPV6, IPV6_RECVTCLASS) {
            out.push((IPPROTO_IPV6, IPV6_TCLASS, int_bytes(tos as i32)));
        }
        if !v4 && on(IPPROTO_IPV6, IPV6_2292HOPLIMIT) {
            out.push((IPPROTO_IPV6, IPV6_2292HOPLIMIT, ttl));
        }
        out
    }

    /// Hand the hop limits to the netstack socket.
    fn push_hops(&self, h: Hops) {
        match &self.proto {
            Proto::Tcp(s) => {
                let mut o = s.opts();
                o.hops = h;
                s.set_opts(o);
            }
            Proto::Udp(s) => {
                let mut o = s.opts();
                o.hops = h;
                s.set_opts(o);
            }
            Proto::Ping(s) => s.set_ttl(if self.v6() { h.unicast6 } else { h.ttl }),
            Proto::Raw(s) => s.set_ttl(if self.v6() { h.unicast6 } else { h.ttl }),
        }
    }

    // ---- readiness ----

    pub fn poll(&self) -> u32 {
        let ev = match &self.proto {
            Proto::Tcp(s) => s.events(),
            Proto::Udp(s) => s.events(),
            Proto::Ping(s) => s.events(),
            Proto::Raw(s) => s.events(),
        };
        let mut m = ev;
        if ev & POLLIN != 0 {
            m |= POLLRDNORM;
        }
        if ev & POLLOUT != 0 {
            m |= POLLWRNORM;
        }
        m
    }

    // ---- options ----

    pub fn getsockopt(&self, t: &Task, level: i32, name: i32, len: usize) -> KResult<Vec<u8>> {
        if let Proto::Raw(s) = &self.proto {
            if let Some(r) = super::raw::getsockopt(s, self.v6(), level, name, len) {
                return r;
            }
        }
        let o = self.opts.lock();
        let tcp = match &self.proto {
            Proto::Tcp(s) => Some(s),
            _ => None,
        };
        let topts = tcp.map(|s| s.opts());
        let udp_opts = match &self.proto {
            Proto::Udp(s) => Some(s.opts()),
            _ => None,
        };
        let misc = |d: i32| int_bytes(*o.misc.get(&(level, name)).unwrap_or(&d));
        let mut v = match (level, name) {
            (SOL_SOCKET, SO_TYPE) => int_bytes(self.ty),
            (SOL_SOCKET, SO_DOMAIN) => int_bytes(self.family),
            (SOL_SOCKET, SO_PROTOCOL) => int_bytes(self.protocol),
            (SOL_SOCKET, SO_ERROR) => int_bytes(
                match &self.proto {
                    Proto::Tcp(s) => s.take_error(),
                    Proto::Udp(s) => s.take_error(),
                    Proto::Ping(_) | Proto::Raw(_) => None,
                }
                .map_or(0, |e| e.errno()),
            ),
            (SOL_SOCKET, SO_ACCEPTCONN) => int_bytes(tcp.is_some_and(|s| s.is_listening()) as i32),
            (SOL_SOCKET, SO_REUSEADDR) => int_bytes(match (&self.proto, topts, udp_opts) {
                (Proto::Ping(s), ..) => s.reuseaddr() as i32,
                (_, Some(t), _) => t.reuseaddr as i32,
                (_, _, Some(u)) => u.reuseaddr as i32,
                _ => 0,
            }),
            (SOL_SOCKET, SO_KEEPALIVE) => int_bytes(topts.is_some_and(|t| t.keepalive) as i32),
            (SOL_SOCKET, SO_SNDBUF) => int_bytes(o.sndbuf as i32),
            (SOL_SOCKET, SO_RCVBUF) => int_bytes(o.rcvbuf as i32),
            (SOL_SOCKET, SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW) => timeval_bytes(o.rcvtimeo),
            (SOL_SOCKET, SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW) => timeval_bytes(o.sndtimeo),
            (SOL_SOCKET, SO_LINGER) => {
                let mut b = int_bytes(o.linger.0);
                b.extend_from_slice(&o.linger.1.to_le_bytes());
                b
            }
            (SOL_SOCKET, SO_RCVLOWAT | SO_SNDLOWAT) => misc(1),
            (
                SOL_SOCKET,
                SO_DEBUG | SO_DONTROUTE | SO_BROADCAST | SO_OOBINLINE | SO_PRIORITY | SO_REUSEPORT,
            ) => misc(0),
            (IPPROTO_TCP, TCP_NODELAY) if tcp.is_some() => {
                int_bytes(topts.is_some_and(|t| t.nodelay) as i32)
            }
            (IPPROTO_TCP, TCP_KEEPIDLE) if tcp.is_some() => {
                int_bytes(topts.map_or(7200, |t| t.keepidle as i32))
            }
            (IPPROTO_TCP, TCP_KEEPINTVL) if tcp.is_some() => misc(75),
            (IPPROTO_TCP, TCP_KEEPCNT) if tcp.is_some() => misc(9),
            (IPPROTO_TCP, TCP_CORK | TCP_QUICKACK | TCP_USER_TIMEOUT) if tcp.is_some() => misc(0),
            (IPPROTO_TCP, TCP_INFO) if tcp.is_some() => tcp_info(tcp.expect("tcp")),
            (IPPROTO_TCP, TCP_MAXSEG) if tcp.is_some() => {
                misc(if tcp.is_some_and(|s| s.peer_addr().is_ok()) {
                    65483
                } else {
                    536
                })
            }
            (IPPROTO_IPV6, IPV6_V6ONLY) if self.v6() => int_bytes(match (topts, udp_opts) {
                (Some(t), _) => t.v6only as i32,
                (_, Some(u)) => u.v6only as i32,
                _ => 0,
            }),
            (IPPROTO_IPV6, IPV6_UNICAST_HOPS) if self.v6() => {
                int_bytes(o.hops.unicast6.unwrap_or(64) as i32)
            }
            (IPPROTO_IPV6, IPV6_MULTICAST_HOPS) if self.v6() && tcp.is_none() => {
                int_bytes(o.hops.mcast6.unwrap_or(1) as i32)
            }
            (IPPROTO_IPV6, IPV6_RECVHOPLIMIT | IPV6_2292HOPLIMIT) if self.v6() => misc(0),
            (IPPROTO_IPV6, IPV6_TCLASS | IPV6_RECVTCLASS) if self.v6() => misc(0),
            (IPPROTO_IP, IP_TOS | IP_RECVTOS) => misc(0),
            (IPPROTO_IP, IP_TTL) => int_bytes(o.hops.ttl.unwrap_or(64) as i32),
            (IPPROTO_IP, IP_MULTICAST_TTL) => int_bytes(o.hops.mcast_ttl.unwrap_or(1) as i32),
            (IPPROTO_IP, IP_RECVTTL) => misc(0),
            (IPPROTO_IP, IP_RECVERR) => misc(0),
            (IPPROTO_IPV6, IPV6_RECVERR) if self.v6() => misc(0),
            _ => return Err(self.unknown_opt(t, "getsockopt", level, name)),
        };
        // An IP-level value of 0..=255 asked for in fewer bytes than an int is one byte.
        if level == IPPROTO_IP && (1..4).contains(&len) && v.len() == 4 && v[1..] == [0, 0, 0] {
            v.truncate(1);
        }
        v.truncate(len);
        Ok(v)
    }

    pub fn setsockopt(&self, t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        if let Proto::Raw(s) = &self.proto {
            if let Some(r) = super::raw::setsockopt(t, s, self.v6(), level, name, val) {
                return r;
            }
        }
        let int = || super::opt_int(val);
        let timeout = || super::opt_timeout(val);
        let privileged = t.creds().has_cap(crate::kernel::cap::NET_ADMIN);
        let tcp = match &self.proto {
            Proto::Tcp(s) => Some(s),
            _ => None,
        };
        let set_tcp = |f: &dyn Fn(&mut netstack::TcpOpts)| {
            if let Some(s) = tcp {
                let mut o = s.opts();
                f(&mut o);
                s.set_opts(o);
            }
        };
        let set_udp = |f: &dyn Fn(&mut netstack::UdpOpts)| {
            if let Proto::Udp(s) = &self.proto {
                let mut o = s.opts();
                f(&mut o);
                s.set_opts(o);
            }
        };
        let mut o = self.opts.lock();
        match (level, name) {
            (SOL_SOCKET, SO_REUSEADDR) => {
                let v = int()? != 0;
                set_tcp(&|t| t.reuseaddr = v);
                set_udp(&|u| u.reuseaddr = v);
                if let Proto::Ping(s) = &self.proto {
                    s.set_reuseaddr(v);
                }
            }
            (SOL_SOCKET, SO_KEEPALIVE) => {
                let v = int()? != 0;
                set_tcp(&|t| t.keepalive = v);
                o.misc.insert((level, name), v as i32);
            }
            (SOL_SOCKET, SO_SNDBUF | SO_SNDBUFFORCE) => {
                let v = int()?;
                let v = if name == SO_SNDBUF {
                    (v as u32 as usize).min(WMEM_MAX)
                } else if privileged {
                    v.max(0) as usize
                } else {
                    return Err(EPERM);
                };
                let b = (v.min(i32::MAX as usize / 2) * 2).max(SNDBUF_MIN);
                o.sndbuf = b;
                set_tcp(&|t| t.sndbuf = b);
                set_udp(&|u| u.sndbuf = b);
            }
            (SOL_SOCKET, SO_RCVBUF | SO_RCVBUFFORCE) => {
                let v = int()?;
                let v = if name == SO_RCVBUF {
                    (v as u32 as usize).min(RMEM_MAX)
                } else if privileged {
                    v.max(0) as usize
                } else {
                    return Err(EPERM);
                };
                let b = (v.min(i32::MAX as usize / 2) * 2).max(RCVBUF_MIN);
                o.rcvbuf = b;
                set_tcp(&|t| t.rcvbuf = b);
                set_udp(&|u| u.rcvbuf = b);
            }
            (SOL_SOCKET, SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW) => o.rcvtimeo = timeout()?,
            (SOL_SOCKET, SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW) => o.sndtimeo = timeout()?,
            (SOL_SOCKET, SO_LINGER) => {
                if val.len() < 8 {
                    return Err(EINVAL);
                }
                let on = i32::from_le_bytes(val[..4].try_into().expect("4 bytes"));
                let secs = i32::from_le_bytes(val[4..8].try_into().expect("4 bytes"));
                o.linger = ((on != 0) as i32, if on != 0 { secs } else { 0 });
                let zero = on != 0 && secs == 0;
                set_tcp(&|t| t.linger0 = zero);
            }
            (SOL_SOCKET, SO_RCVLOWAT) => {
                let v = int()?;
                o.misc.insert((level, name), v.max(1));
            }
            (SOL_SOCKET, SO_DEBUG | SO_DONTROUTE | SO_BROADCAST | SO_OOBINLINE) => {
                let v = int()?;
                o.misc.insert((level, name), (v != 0) as i32);
            }
            (SOL_SOCKET, SO_REUSEPORT) => {
                // TCP and UDP sockets of one owner share a port and its traffic (ping
                // and raw sockets only remember it, as Linux does for them).
                let v = int()? != 0;
                let owner = v.then_some(self.uid);
                set_tcp(&|t| t.reuseport = owner);
                set_udp(&|u| u.reuseport = owner);
                o.misc.insert((level, name), v as i32);
            }
            (SOL_SOCKET, SO_PRIORITY) => {
                let v = int()?;
                if !(0..=6).contains(&v) && !privileged {
                    return Err(EPERM);
                }
                o.misc.insert((level, name), v);
            }
            (IPPROTO_TCP, _) if tcp.is_none() => return Err(ENOPROTOOPT),
            (IPPROTO_TCP, TCP_NODELAY) => {
                let v = int()? != 0;
                set_tcp(&|t| t.nodelay = v);
            }
            (IPPROTO_TCP, TCP_KEEPIDLE) => {
                let v = int()?;
                if !(1..=32767).contains(&v) {
                    return Err(EINVAL);
                }
                set_tcp(&|t| t.keepidle = v as u32);
            }
            (IPPROTO_TCP, TCP_KEEPINTVL) => {
                // smoltcp probes at one interval (TCP_KEEPIDLE) until the peer answers.
                let v = int()?;
                if !(1..=32767).contains(&v) {
                    return Err(EINVAL);
                }
                o.misc.insert((level, name), v);
            }
            (IPPROTO_TCP, TCP_KEEPCNT) => {
                let v = int()?;
                if !(1..=127).contains(&v) {
                    return Err(EINVAL);
                }
                o.misc.insert((level, name), v);
            }
            (IPPROTO_TCP, TCP_CORK | TCP_QUICKACK) => {
                let v = int()?;
                o.misc.insert((level, name), (v != 0) as i32);
            }
            (IPPROTO_TCP, TCP_USER_TIMEOUT | TCP_MAXSEG) => {
                let v = int()?;
                if v < 0 {
                    return Err(EINVAL);
                }
                o.misc.insert((level, name), v);
            }
            (IPPROTO_IPV6, IPV6_V6ONLY) if self.v6() => {
                let v = int()? != 0;
                if self.name().port() != 0 {
                    return Err(EINVAL);
                }
                set_tcp(&|t| t.v6only = v);
                set_udp(&|u| u.v6only = v);
            }
            (IPPROTO_IPV6, IPV6_UNICAST_HOPS | IPV6_MULTICAST_HOPS) if self.v6() => {
                if name == IPV6_MULTICAST_HOPS && tcp.is_some() {
                    return Err(ENOPROTOOPT);
                }
                let v = int()?;
                if !(-1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                if v == 0 {
                    // smoltcp cannot send a packet with hop limit 0.
                    unsupported(&t.kernel, "a hop limit of 0".into());
                    return Err(EINVAL);
                }
                let v = (v != -1).then_some(v as u8);
                if name == IPV6_UNICAST_HOPS {
                    o.hops.unicast6 = v;
                } else {
                    o.hops.mcast6 = v;
                }
                self.push_hops(o.hops);
            }
            (IPPROTO_IPV6, IPV6_RECVHOPLIMIT | IPV6_2292HOPLIMIT) if self.v6() => {
                let v = int()?;
                o.misc.insert((level, name), (v != 0) as i32);
            }
            (IPPROTO_IPV6, IPV6_TCLASS) if self.v6() => {
                let v = int()?;
                if !(-1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                // -1 is the default, 0 (RFC 3542).
                let old = *o.misc.get(&(level, name)).unwrap_or(&0);
                let v = ds::masked(tcp.is_some(), old, v.max(0));
                o.misc.insert((level, name), v);
                set_tcp(&|t| t.tos.v6 = v as u8);
            }
            (IPPROTO_IPV6, IPV6_RECVTCLASS) if self.v6() => {
                let v = int()?;
                o.misc.insert((level, name), (v != 0) as i32);
            }
            (IPPROTO_IP, IP_TOS) => {
                let old = *o.misc.get(&(level, name)).unwrap_or(&0);
                let v = ds::masked(tcp.is_some(), old, ds::ip_int_or_byte(val)) & 0xff;
                o.misc.insert((level, name), v);
                set_tcp(&|t| t.tos.v4 = v as u8);
            }
            (IPPROTO_IP, IP_RECVTOS) => {
                let v = ds::ip_int_or_byte(val);
                o.misc.insert((level, name), (v != 0) as i32);
            }
            (IPPROTO_IP, IP_TTL) => {
                let v = int()?;
                if !(-1..=255).contains(&v) || v == 0 {
                    return Err(EINVAL);
                }
                o.hops.ttl = (v != -1).then_some(v as u8);
                self.push_hops(o.hops);
            }
            (IPPROTO_IP, IP_MULTICAST_TTL) => {
                if tcp.is_some() {
                    return Err(EINVAL);
                }
                let v = int()?;
                if !(-1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                if v == 0 {
                    // smoltcp cannot send a packet with TTL 0.
                    unsupported(&t.kernel, "a multicast TTL of 0".into());
                    return Err(EINVAL);
                }
                o.hops.mcast_ttl = (v != -1).then_some(v as u8);
                self.push_hops(o.hops);
            }
            (IPPROTO_IP, IP_RECVTTL) => {
                let v = int()?;
                o.misc.insert((level, name), (v != 0) as i32);
            }
            // glibc's resolver needs it. The flag is kept; errors are still reported as
            // before (SO_ERROR, ECONNREFUSED), there is no MSG_ERRQUEUE queue yet.
            (IPPROTO_IP, IP_RECVERR) | (IPPROTO_IPV6, IPV6_RECVERR)
                if level == IPPROTO_IP || self.v6() =>
            {
                let v = (int()? != 0) as i32;
                if v == 1 {
                    unsupported(&t.kernel, "IP_RECVERR's error queue (MSG_ERRQUEUE)".into());
                }
                o.misc.insert((level, name), v);
            }
            _ => return Err(self.unknown_opt(t, "setsockopt", level, name)),
        }
        drop(o);
        self.wq.notify_all();
        Ok(())
    }

    /// The errno Linux gives for an option it does not know at `level` (logged when the
    /// level is one it does implement, where the option might exist in Linux).
    fn unknown_opt(&self, t: &Task, call: &str, level: i32, name: i32) -> Errno {
        let tcp = self.ty == SOCK_STREAM;
        let own_level = matches!(level, SOL_SOCKET | IPPROTO_IP)
            || (level == IPPROTO_TCP && tcp)
            || (level == IPPROTO_UDP && !tcp)
            || (level == IPPROTO_IPV6 && self.v6());
        if own_level {
            unsupported(
                &t.kernel,
                format!("{call}(level {level}, option {name}) on inet sockets"),
            );
            return ENOPROTOOPT;
        }
        // Other levels end in ip_getsockopt (EOPNOTSUPP) or ip_setsockopt / the IPv6
        // handlers (ENOPROTOOPT).
        if call == "getsockopt" && !self.v6() {
            EOPNOTSUPP
        } else {
            ENOPROTOOPT
        }
    }

    /// FIONREAD and TIOCOUTQ.
    pub fn queues(&self) -> KResult<(usize, usize)> {
        match &self.proto {
            Proto::Tcp(s) => {
                if s.is_listening() {
                    return Err(EINVAL);
                }
                Ok(s.queues())
            }
            Proto::Udp(s) => Ok(s.queues()),
            Proto::Ping(s) => Ok(s.queues()),
            Proto::Raw(s) => Ok(s.queues()),
        }
    }
}

/// sizeof(struct tcp_info) as Linux 6.2 to 6.6 have it.
const TCP_INFO_LEN: usize = 232;

/// TCP_INFO's basics: the state, the MSS (loopback's once connected, as TCP_MAXSEG
/// reports it) and the path MTU. Counters the netstack does not keep
/// (RTT, congestion window, retransmissions) stay 0.
fn tcp_info(s: &TcpSocket) -> Vec<u8> {
    let mut b = vec![0u8; TCP_INFO_LEN];
    b[0] = s.state();
    let conn = s.peer_addr().is_ok();
    let mss: u32 = if conn { 65483 } else { 536 };
    let put =
        |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 16, mss);
    put(&mut b, 20, mss);
    put(&mut b, 60, 65536);
    put(&mut b, 84, mss);
    b
}

/// The open-file face of an inet socket. Dropping it (the last close) closes the socket.
pub struct InetFile {
    pub sock: Arc<InetSock>,
}

impl FileOps for InetFile {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        sock_read(buf, |n| Ok(self.sock.recv(t, f.nonblock(), n, 0)?.data))
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        if let Proto::Udp(_) | Proto::Ping(_) | Proto::Raw(_) = &self.sock.proto {
            if self.sock.peer().is_err() {
                return Err(EDESTADDRREQ);
            }
        }
        self.sock.send(t, f.nonblock(), buf, None, 0)
    }

    fn poll(&self) -> u32 {
        self.sock.poll()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.sock.wq)
    }

    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        let n = match cmd {
            FIONREAD => self.sock.queues()?.0,
            TIOCOUTQ => self.sock.queues()?.1,
            _ => return super::ifreq::ioctl_for(t, cmd, arg, !self.sock.v6()),
        };
        put_queued(t, arg, n)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

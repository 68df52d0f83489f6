//! What /proc/net and sock_diag show of the sandbox's inet sockets: one view of each,
//! from the netstack's sockets or, with `--network host`, from the Sentry's host sockets
//! (asked of the host: names, TCP_INFO's state, queue ioctls), never the host's others.

use super::inet::{self, InetSock, Proto, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP};
use super::*;
use crate::kernel::Kernel;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Linux's TCP_ESTABLISHED, TCP_CLOSE and TCP_LISTEN.
pub const ESTABLISHED: u8 = 1;
pub const CLOSE: u8 = 7;
pub const LISTEN: u8 = 10;

/// Which table a socket belongs in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Tcp,
    Udp,
    /// ICMP echo sockets (/proc/net/icmp, icmp6).
    Ping,
    /// Raw sockets (/proc/net/raw, raw6).
    Raw,
}

/// One inet socket as the tables show it.
pub struct InetInfo {
    pub kind: Kind,
    pub v6: bool,
    /// The socket's protocol (a raw socket's port in the tables).
    pub protocol: i32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// TCP_* state as Linux numbers them.
    pub state: u8,
    /// Linux's rqueue and wqueue: unread and unsent bytes, or for a listener the
    /// connections waiting to be accepted and the backlog.
    pub rqueue: usize,
    pub wqueue: usize,
    pub uid: u32,
    pub ino: u64,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// SO_MEMINFO's u32 SK_MEMINFO_* values (rmem_alloc, rcvbuf, wmem_alloc, sndbuf,
    /// fwd_alloc, wmem_queued, optmem, backlog, drops).
    pub skmem: [u32; 9],
    /// struct tcp_info (TCP only).
    pub tcp_info: Option<Vec<u8>>,
    pub v6only: bool,
}

fn any(v6: bool) -> SocketAddr {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, 0)
}

/// Whether Linux has the socket in its lookup tables (what /proc/net and inet_diag
/// list): TCP unless closed, UDP and ping sockets once they have a port (an ICMP
/// identifier), raw sockets always.
pub fn listed(i: &InetInfo) -> bool {
    match i.kind {
        Kind::Tcp => i.state != CLOSE,
        Kind::Udp | Kind::Ping => i.local.port() != 0,
        Kind::Raw => true,
    }
}

/// The sandbox's inet sockets (its host sockets with `--network host`), oldest first.
/// Without a task (a /proc/net read) the buffer sizes and tcp_info are left out.
pub fn inet_sockets(k: &Arc<Kernel>, t: Option<&Task>) -> Vec<InetInfo> {
    if let Some(n) = hostinet::of(k) {
        return n.sockets().iter().filter_map(|s| s.info()).collect();
    }
    inet::sockets(k).iter().map(|s| sock_info(s, t)).collect()
}

fn sock_info(s: &InetSock, t: Option<&Task>) -> InetInfo {
    let v6 = s.v6();
    let local = s.name();
    let remote = s.peer().unwrap_or(any(v6));
    let connected = s.peer().is_ok();
    let dgram_state = if connected { ESTABLISHED } else { CLOSE };
    let (kind, state, rqueue, wqueue) = match &s.proto {
        Proto::Tcp(c) => {
            let st = c.state();
            let (r, w) = match c.accept_queue() {
                Some(q) => q,
                None => c.queues(),
            };
            (Kind::Tcp, st, r, w)
        }
        Proto::Udp(u) => {
            let (r, w) = u.queues();
            (Kind::Udp, dgram_state, r, w)
        }
        Proto::Ping(p) => {
            let (r, w) = p.queues();
            (Kind::Ping, dgram_state, r, w)
        }
        Proto::Raw(p) => {
            let (r, w) = p.queues();
            (Kind::Raw, dgram_state, r, w)
        }
    };
    let opt = |level: i32, name: i32| -> Option<Vec<u8>> {
        t.and_then(|t| s.getsockopt(t, level, name, 256).ok())
    };
    let int = |level: i32, name: i32| {
        opt(level, name)
            .filter(|b| b.len() >= 4)
            .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (rcvbuf, sndbuf) = (int(SOL_SOCKET, SO_RCVBUF), int(SOL_SOCKET, SO_SNDBUF));
    // The netstack's queues are its buffers' bytes: nothing is in flight below them.
    let (rmem, wmem_alloc, wmem_queued) = match (kind, state) {
        (_, LISTEN) => (0, 0, 0),
        (Kind::Tcp, _) => (rqueue, 0, wqueue),
        _ => (rqueue, wqueue, 0),
    };
    let c = |v: usize| v.min(u32::MAX as usize) as u32;
    let skmem = [
        c(rmem),
        c(rcvbuf),
        c(wmem_alloc),
        c(sndbuf),
        0,
        c(wmem_queued),
        0,
        0,
        0,
    ];
    InetInfo {
        kind,
        v6,
        protocol: s.protocol,
        local,
        remote,
        state,
        rqueue,
        wqueue,
        uid: s.uid,
        ino: s.ino,
        rcvbuf,
        sndbuf,
        skmem,
        tcp_info: (kind == Kind::Tcp)
            .then(|| opt(IPPROTO_TCP, TCP_INFO))
            .flatten(),
        // inet6_bind makes a socket bound to an address other than :: or a v4-mapped
        // one v6-only.
        v6only: v6 && (int(inet::IPPROTO_IPV6, IPV6_V6ONLY) != 0 || bound_v6only(local)),
    }
}

pub const TCP_INFO: i32 = 11;
const IPV6_V6ONLY: i32 = 26;

/// The table a socket of this (type, protocol) belongs in.
pub fn kind_of(ty: i32, protocol: i32) -> Kind {
    match ty {
        SOCK_STREAM => Kind::Tcp,
        SOCK_RAW => Kind::Raw,
        _ if protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6 => Kind::Ping,
        _ => Kind::Udp,
    }
}

fn bound_v6only(a: SocketAddr) -> bool {
    match a.ip() {
        IpAddr::V6(v) => !v.is_unspecified() && v.to_ipv4_mapped().is_none(),
        IpAddr::V4(_) => false,
    }
}

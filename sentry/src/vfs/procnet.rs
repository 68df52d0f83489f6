//! /proc/net files, in Linux's exact formats, from the netstack's interfaces and routes
//! and the Sentry's sockets: tcp, tcp6, udp, udp6, raw, raw6, icmp, icmp6, sockstat,
//! sockstat6, unix, dev, route, if_inet6.

use crate::kernel::Kernel;
use crate::net::sockinfo::{self, InetInfo, Kind, LISTEN};
use netstack::RouteKind;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

const TIME_WAIT: u8 = 6;

pub fn generate(k: &Arc<Kernel>, name: &str) -> String {
    match name {
        "tcp" => sockets(k, false, true),
        "tcp6" => sockets(k, true, true),
        "udp" => sockets(k, false, false),
        "udp6" => sockets(k, true, false),
        "raw" => dgram(k, false, Kind::Raw),
        "raw6" => dgram(k, true, Kind::Raw),
        "icmp" => dgram(k, false, Kind::Ping),
        "icmp6" => dgram(k, true, Kind::Ping),
        "sockstat" => sockstat(k, false),
        "sockstat6" => sockstat(k, true),
        "dev" => dev(k),
        "route" => route(k),
        "if_inet6" => if_inet6(k),
        "unix" => unix(k),
        _ => String::new(),
    }
}

/// An address as /proc/net prints it: each 32-bit word of the network-order address
/// read as a host-order (little-endian) integer, in hex.
fn hex_addr(a: IpAddr) -> String {
    let b = match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    b.chunks(4)
        .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
        .collect()
}

fn endpoint(a: SocketAddr) -> String {
    format!("{}:{:04X}", hex_addr(a.ip()), a.port())
}

fn socks(k: &Arc<Kernel>, v6: bool, kind: Kind) -> Vec<InetInfo> {
    sockinfo::inet_sockets(k, None)
        .into_iter()
        .filter(|s| s.v6 == v6 && s.kind == kind && sockinfo::listed(s))
        .collect()
}

/// tx_queue and rx_queue as Linux prints them: TCP's unsent and unread bytes (a
/// listener's accept queue), the others' allocated buffer memory.
fn queues(s: &InetInfo) -> (usize, usize) {
    match s.kind {
        Kind::Tcp if s.state == LISTEN => (0, s.rqueue),
        Kind::Tcp => (s.wqueue, s.rqueue),
        _ => (s.skmem[2] as usize, s.skmem[0] as usize),
    }
}

/// The local port a table shows: a raw socket's is its protocol.
fn local(s: &InetInfo) -> SocketAddr {
    if s.kind == Kind::Raw {
        SocketAddr::new(s.local.ip(), s.protocol as u16)
    } else {
        s.local
    }
}

const HEAD: &str =
    "local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
const HEAD6: &str = "local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

fn sockets(k: &Arc<Kernel>, v6: bool, tcp: bool) -> String {
    let mut out = String::new();
    match (tcp, v6) {
        (true, false) => writeln!(out, "{:<149}", format!("  sl  {HEAD}")),
        (true, true) => writeln!(out, "  sl  {HEAD6}"),
        (false, false) => writeln!(out, "{:<127}", format!("   sl  {HEAD} ref pointer drops")),
        (false, true) => writeln!(out, "  sl  {HEAD6} ref pointer drops"),
    }
    .expect("write to a String");
    let kind = if tcp { Kind::Tcp } else { Kind::Udp };
    for (i, r) in socks(k, v6, kind).iter().enumerate() {
        let (txq, rxq) = queues(r);
        let common = format!(
            "{} {} {:02X} {:08X}:{:08X} 00:00000000 00000000 {:5} {:8} {}",
            endpoint(r.local),
            endpoint(r.remote),
            r.state,
            txq,
            rxq,
            r.uid,
            0,
            r.ino
        );
        let line = if tcp {
            let tail = if r.state == LISTEN {
                "1 0000000000000000 100 0 0 10 0"
            } else {
                "1 0000000000000000 20 4 30 10 -1"
            };
            format!("{i:4}: {common} {tail}")
        } else {
            format!("{i:5}: {common} 2 0000000000000000 0")
        };
        let _ = match (tcp, v6) {
            (true, false) => writeln!(out, "{line:<149}"),
            (false, false) => writeln!(out, "{line:<127}"),
            _ => writeln!(out, "{line}"),
        };
    }
    out
}

/// /proc/net/raw, raw6, icmp, icmp6 (raw_seq_show, ping_v4_seq_show and
/// ip6_dgram_sock_seq_show). The slot is the hash bucket: the protocol for raw sockets,
/// the ICMP identifier modulo 64 for ping sockets.
fn dgram(k: &Arc<Kernel>, v6: bool, kind: Kind) -> String {
    let mut out = String::new();
    let ping4 = kind == Kind::Ping && !v6;
    let _ = if v6 {
        writeln!(out, "  sl  {HEAD6} ref pointer drops")
    } else if ping4 {
        writeln!(out, "{:<127}", format!("  sl  {HEAD} ref pointer drops"))
    } else {
        writeln!(out, "  sl  {HEAD} ref pointer drops")
    };
    for r in socks(k, v6, kind) {
        let (txq, rxq) = queues(&r);
        let slot = if kind == Kind::Raw {
            r.protocol as usize & 255
        } else {
            r.local.port() as usize & 63
        };
        let mut line = format!(
            "{slot:4}: {} {} {:02X} {txq:08X}:{rxq:08X} 00:00000000 00000000 {:5} {:8} {} 2 0000000000000000 0",
            endpoint(local(&r)),
            endpoint(r.remote),
            r.state,
            r.uid,
            0,
            r.ino
        );
        if v6 || ping4 {
            line.insert(0, ' ');
        }
        let _ = if ping4 {
            writeln!(out, "{line:<127}")
        } else {
            writeln!(out, "{line}")
        };
    }
    out
}

/// /proc/net/sockstat (`v6`: sockstat6): sockets in the tables per protocol. Memory is
/// in pages of the bytes the sockets hold queued.
fn sockstat(k: &Arc<Kernel>, v6: bool) -> String {
    let all = sockinfo::inet_sockets(k, None);
    let inuse = |v6: bool, kind: Kind| {
        all.iter()
            .filter(|s| s.v6 == v6 && s.kind == kind && sockinfo::listed(s))
            .count()
    };
    let pages = |kind: Kind| -> usize {
        let bytes: usize = all
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.skmem[0] as usize + s.skmem[2] as usize + s.skmem[5] as usize)
            .sum();
        bytes.div_ceil(4096)
    };
    if v6 {
        return format!(
            "TCP6: inuse {}\nUDP6: inuse {}\nUDPLITE6: inuse 0\nRAW6: inuse {}\nFRAG6: inuse 0 memory 0\n",
            inuse(true, Kind::Tcp),
            inuse(true, Kind::Udp),
            inuse(true, Kind::Raw)
        );
    }
    let tcp_alloc = all.iter().filter(|s| s.kind == Kind::Tcp).count();
    let tw = all
        .iter()
        .filter(|s| s.kind == Kind::Tcp && s.state == TIME_WAIT)
        .count();
    format!(
        "sockets: used {}\nTCP: inuse {} orphan 0 tw {tw} alloc {tcp_alloc} mem {}\nUDP: inuse {} mem {}\nUDPLITE: inuse 0\nRAW: inuse {}\nFRAG: inuse 0 memory 0\n",
        crate::net::sockets_in_use(k),
        inuse(false, Kind::Tcp),
        pages(Kind::Tcp),
        inuse(false, Kind::Udp),
        pages(Kind::Udp),
        inuse(false, Kind::Raw)
    )
}

fn dev(k: &Arc<Kernel>) -> String {
    let mut out = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for i in crate::net::ifaces(k).0 {
        let s = i.stats;
        let _ = writeln!(
            out,
            "{:>6}:{:8} {:7} {:4} {:4} {:4} {:5} {:10} {:9} {:8} {:7} {:4} {:4} {:4} {:5} {:7} {:10}",
            i.name, s.rx_bytes, s.rx_packets, 0, 0, 0, 0, 0, 0, s.tx_bytes, s.tx_packets, 0, 0, 0, 0, 0, 0
        );
    }
    out
}

fn route(k: &Arc<Kernel>) -> String {
    let (ifaces, routes) = crate::net::ifaces(k);
    let names: Vec<(u32, String)> = ifaces.into_iter().map(|i| (i.index, i.name)).collect();
    let mut out = format!(
        "{:<127}\n",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
    );
    // The main table's IPv4 routes.
    for r in routes {
        let IpAddr::V4(dst) = r.dst else { continue };
        if r.kind != RouteKind::Unicast {
            continue;
        }
        let name = names
            .iter()
            .find(|(i, _)| *i == r.ifindex)
            .map_or("*", |(_, n)| n.as_str());
        let gw = match r.gateway {
            Some(IpAddr::V4(g)) => u32::from_le_bytes(g.octets()),
            _ => 0,
        };
        let mask = u32::MAX.checked_shl(32 - r.prefix as u32).unwrap_or(0);
        let flags = 0x1 | if r.gateway.is_some() { 0x2 } else { 0 };
        let line = format!(
            "{name}\t{:08X}\t{gw:08X}\t{flags:04X}\t0\t0\t0\t{:08X}\t0\t0\t0",
            u32::from_le_bytes(dst.octets()),
            u32::from_le_bytes(mask.to_be_bytes()),
        );
        let _ = writeln!(out, "{line:<127}");
    }
    out
}

fn if_inet6(k: &Arc<Kernel>) -> String {
    let mut out = String::new();
    for i in crate::net::ifaces(k).0 {
        for &(a, p) in &i.addrs {
            let IpAddr::V6(v) = a else { continue };
            let scope = if v.is_loopback() {
                0x10
            } else if v.segments()[0] & 0xffc0 == 0xfe80 {
                0x20
            } else {
                0x00
            };
            let hex: String = v.octets().iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(
                out,
                "{hex} {:02x} {p:02x} {scope:02x} {:02x} {:>8}",
                i.index, 0x80, i.name
            );
        }
    }
    out
}

fn unix(k: &Arc<Kernel>) -> String {
    let mut out = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
    for u in crate::net::unix::sockets(k) {
        let flags = if u.listening { 0x10000 } else { 0 };
        // SS_CONNECTED or SS_UNCONNECTED; a connection not accepted yet has no socket
        // (and no inode): SS_CONNECTING.
        let (st, ino) = match (u.embryo, u.connected) {
            (true, _) => (2, 0),
            (false, true) => (3, u.ino),
            (false, false) => (1, u.ino),
        };
        let _ = write!(
            out,
            "0000000000000000: {:08X} {:08X} {flags:08X} {:04X} {st:02X} {:5}",
            2 + u.peered_by,
            0,
            u.ty,
            ino
        );
        if let Some(a) = u.addr {
            out.push(' ');
            // A path without its NUL; an abstract name as '@' with NULs shown as '@'.
            let name: &[u8] = if a.first() == Some(&0) {
                &a
            } else {
                &a[..a.len().saturating_sub(1)]
            };
            out.extend(name.iter().map(|&c| if c == 0 { '@' } else { c as char }));
        }
        out.push('\n');
    }
    out
}

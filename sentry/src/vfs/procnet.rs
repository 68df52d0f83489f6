//! /proc/net files, in Linux's exact formats, from the netstack's interfaces and routes
//! and the Sentry's sockets: tcp, tcp6, udp, udp6, unix, dev, route, if_inet6.

use crate::kernel::Kernel;
use crate::net::inet::{self, InetSock, Proto};
use netstack::RouteKind;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Linux's TCP_LISTEN and TCP_CLOSE.
const LISTEN: u8 = 10;
const CLOSE: u8 = 7;

pub fn generate(k: &Arc<Kernel>, name: &str) -> String {
    match name {
        "tcp" => sockets(k, false, true),
        "tcp6" => sockets(k, true, true),
        "udp" => sockets(k, false, false),
        "udp6" => sockets(k, true, false),
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

/// The fields /proc/net/{tcp,udp}[6] show for one socket, if it is listed at all (Linux
/// lists only sockets in its lookup tables: bound UDP, listening or connected TCP).
struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    txq: usize,
    rxq: usize,
    uid: u32,
    ino: u64,
}

fn row(s: &InetSock) -> Option<Row> {
    let local = s.name();
    let any = if s.v6() {
        SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
    };
    let remote = s.peer().unwrap_or(any);
    let (state, txq, rxq) = match &s.proto {
        // Ping and raw sockets belong in /proc/net/{icmp,raw}, not written yet.
        Proto::Ping(_) | Proto::Raw(_) => return None,
        Proto::Tcp(t) => {
            let st = t.state();
            if st == CLOSE {
                return None;
            }
            let (r, w) = if st == LISTEN { (0, 0) } else { t.queues() };
            (st, w, r)
        }
        Proto::Udp(u) => {
            if local.port() == 0 {
                return None;
            }
            let (r, w) = u.queues();
            let st = if s.peer().is_ok() { 1 } else { CLOSE };
            (st, w, r)
        }
    };
    Some(Row {
        local,
        remote,
        state,
        txq,
        rxq,
        uid: s.uid,
        ino: s.ino,
    })
}

fn sockets(k: &Arc<Kernel>, v6: bool, tcp: bool) -> String {
    let mut out = String::new();
    let head = "local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
    let head6 = "local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
    match (tcp, v6) {
        (true, false) => writeln!(out, "{:<149}", format!("  sl  {head}")),
        (true, true) => writeln!(out, "  sl  {head6}"),
        (false, false) => writeln!(out, "{:<127}", format!("   sl  {head} ref pointer drops")),
        (false, true) => writeln!(out, "  sl  {head6} ref pointer drops"),
    }
    .expect("write to a String");
    let socks = inet::sockets(k);
    let rows = socks
        .iter()
        .filter(|s| s.v6() == v6 && matches!(s.proto, Proto::Tcp(_)) == tcp)
        .filter_map(|s| row(s));
    for (i, r) in rows.enumerate() {
        let common = format!(
            "{} {} {:02X} {:08X}:{:08X} 00:00000000 00000000 {:5} {:8} {}",
            endpoint(r.local),
            endpoint(r.remote),
            r.state,
            r.txq,
            r.rxq,
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
        let st = if u.connected { 3 } else { 1 };
        let _ = write!(
            out,
            "0000000000000000: {:08X} {:08X} {flags:08X} {:04X} {st:02X} {:5}",
            2, 0, u.ty, u.ino
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

//! What the stack's interfaces and routes are, for netlink, ioctls and /proc/net.
//!
//! Interface 1 is the loopback (`lo`); every link follows in order, with the name and
//! index of its Ethernet configuration (else `ethN`, index 2, 3, ...). Routes are derived the way Linux's kernel adds them for
//! addresses: a local route per address and for the loopback net, a connected route per
//! subnet of a link, a broadcast route per IPv4 subnet, plus the default gateways.

use crate::{Inner, Stack};
use std::net::{IpAddr, Ipv4Addr};

/// Linux's interface flags (`IFF_*`).
pub const IFF_UP: u32 = 0x1;
pub const IFF_BROADCAST: u32 = 0x2;
pub const IFF_LOOPBACK: u32 = 0x8;
pub const IFF_POINTOPOINT: u32 = 0x10;
pub const IFF_RUNNING: u32 = 0x40;
pub const IFF_NOARP: u32 = 0x80;
pub const IFF_MULTICAST: u32 = 0x1000;
pub const IFF_LOWER_UP: u32 = 0x10000;

/// Packet and byte counters of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Counters {
    pub(crate) fn rx(&mut self, len: usize) {
        self.rx_packets += 1;
        self.rx_bytes += len as u64;
    }
    pub(crate) fn tx(&mut self, len: usize) {
        self.tx_packets += 1;
        self.tx_bytes += len as u64;
    }
}

/// The hardware kind of an interface, as Linux's ARPHRD_* type names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwKind {
    Loopback,
    Ethernet,
    /// An IP-level link without link-layer header (a tun device: ARPHRD_NONE).
    Ip,
}

/// One interface.
#[derive(Clone, Debug)]
pub struct IfaceInfo {
    pub index: u32,
    pub name: String,
    pub kind: HwKind,
    /// All zero for the loopback and IP-level links.
    pub mac: [u8; 6],
    pub mtu: u32,
    /// IFF_* bits (with IFF_LOWER_UP, as netlink reports them).
    pub flags: u32,
    pub addrs: Vec<(IpAddr, u8)>,
    pub stats: Counters,
}

/// What a route does with matching packets (Linux's RTN_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Forwarded out of an interface (the main table).
    Unicast,
    /// Delivered to this host (the local table).
    Local,
    /// An IPv4 subnet broadcast address (the local table).
    Broadcast,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub dst: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    /// The preferred source address.
    pub src: Option<IpAddr>,
    pub ifindex: u32,
    pub kind: RouteKind,
}

/// The loopback interface's MTU as Linux reports it.
const LO_MTU: u32 = 65536;

impl Stack {
    /// The interfaces, loopback first.
    pub fn interfaces(&self) -> Vec<IfaceInfo> {
        self.h.sh.peek(|g| interfaces(g))
    }

    /// The routes of every table: main-table routes first, then local-table ones.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.h.sh.peek(|g| {
            let ifs = interfaces(g);
            let mut out: Vec<RouteInfo> = vec![];
            let mut local: Vec<RouteInfo> = vec![];
            for (i, l) in g.dev.links.iter().enumerate() {
                let index = link_index(i, l);
                if let Some(gw) = l.gw4 {
                    out.push(route(
                        Ipv4Addr::UNSPECIFIED.into(),
                        0,
                        Some(gw.into()),
                        index,
                    ));
                }
                if let Some(gw) = l.gw6 {
                    let any = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
                    out.push(route(any, 0, Some(gw.into()), index));
                }
                for &(dst, p, via) in l.ethernet.iter().flat_map(|e| &e.routes) {
                    out.push(route(dst, p, Some(via), index));
                }
            }
            for f in &ifs {
                for &(a, p) in &f.addrs {
                    let net = network(a, p);
                    let lo = f.kind == HwKind::Loopback;
                    let host = if a.is_ipv4() { 32 } else { 128 };
                    if lo && a.is_ipv4() {
                        // Linux: the whole loopback net is local.
                        local.push(RouteInfo {
                            src: Some(a),
                            kind: RouteKind::Local,
                            ..route(net, p, None, f.index)
                        });
                    } else if !(a.is_ipv4() && p == 32) {
                        out.push(RouteInfo {
                            src: a.is_ipv4().then_some(a),
                            ..route(net, p, None, f.index)
                        });
                    }
                    local.push(RouteInfo {
                        src: a.is_ipv4().then_some(a),
                        kind: RouteKind::Local,
                        ..route(a, host, None, f.index)
                    });
                    if let (IpAddr::V4(v), true) = (a, p < 31) {
                        let bits = u32::from(v) | (u32::MAX >> p);
                        local.push(RouteInfo {
                            src: Some(a),
                            kind: RouteKind::Broadcast,
                            ..route(Ipv4Addr::from(bits).into(), 32, None, f.index)
                        });
                    }
                }
            }
            out.extend(local);
            out
        })
    }
}

/// The network address of `a`/`p`.
pub fn network(a: IpAddr, p: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = u32::MAX.checked_shl(32 - p.min(32) as u32).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v) & m))
        }
        IpAddr::V6(v) => {
            let m = u128::MAX.checked_shl(128 - p.min(128) as u32).unwrap_or(0);
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v) & m))
        }
    }
}

fn route(dst: IpAddr, prefix: u8, gateway: Option<IpAddr>, ifindex: u32) -> RouteInfo {
    RouteInfo {
        dst,
        prefix,
        gateway,
        src: None,
        ifindex,
        kind: RouteKind::Unicast,
    }
}

/// A link's interface index: its Ethernet configuration's, else 2, 3, ... by position.
fn link_index(i: usize, l: &crate::LinkSlot) -> u32 {
    l.ethernet.as_ref().map_or(i as u32 + 2, |e| e.index)
}

fn interfaces(g: &Inner) -> Vec<IfaceInfo> {
    let mut out = vec![];
    let cidrs = g.iface.ip_addrs();
    let lo_addrs: Vec<(IpAddr, u8)> = cidrs
        .iter()
        .map(|c| (IpAddr::from(c.address()), c.prefix_len()))
        .filter(|(a, _)| crate::is_loopback(*a))
        .collect();
    if !lo_addrs.is_empty() {
        out.push(IfaceInfo {
            index: 1,
            name: "lo".into(),
            kind: HwKind::Loopback,
            mac: [0; 6],
            mtu: LO_MTU,
            flags: IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP,
            addrs: lo_addrs,
            stats: g.dev.lo_stats,
        });
    }
    for (i, l) in g.dev.links.iter().enumerate() {
        let e = l.ethernet.as_ref();
        let (kind, flags) = match e {
            Some(_) => (HwKind::Ethernet, IFF_BROADCAST),
            None => (HwKind::Ip, IFF_POINTOPOINT | IFF_NOARP),
        };
        out.push(IfaceInfo {
            index: link_index(i, l),
            name: e.map_or_else(|| format!("eth{i}"), |e| e.name.clone()),
            kind,
            mac: e.map_or([0; 6], |e| e.mac),
            mtu: e.map_or(1500, |e| e.mtu as u32),
            flags: flags | IFF_UP | IFF_RUNNING | IFF_MULTICAST | IFF_LOWER_UP,
            addrs: l
                .nets
                .iter()
                .map(|c| (IpAddr::from(c.address()), c.prefix_len()))
                .collect(),
            stats: l.stats,
        });
    }
    out
}

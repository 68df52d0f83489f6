//! NETLINK_ROUTE requests answered from the netstack's interfaces and routes: dumps of
//! RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE and RTM_GETNEIGH (always empty), RTM_GETLINK
//! for one interface, and Linux's errors for everything else. The sandbox's
//! configuration is static: requests that would change it fail (EPERM without
//! CAP_NET_ADMIN, EOPNOTSUPP with it), and no notifications are ever sent.

use netstack::{HwKind, IfaceInfo, RouteInfo, RouteKind};
use std::net::IpAddr;

pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
/// Types below this are control messages.
const NLMSG_MIN_TYPE: u16 = 0x10;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CAPPED: u16 = 0x100;

const RTM_BASE: u16 = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_GETNEIGH: u16 = 30;
/// Linux 6.x's RTM_MAX.
const RTM_MAX: u16 = 127;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 0xfffe;

const IFLA_ADDRESS: u16 = 1;
const IFLA_BROADCAST: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_STATS: u16 = 7;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKMODE: u16 = 17;
const IFLA_STATS64: u16 = 23;
const IFLA_GROUP: u16 = 27;
const IFLA_PROMISCUITY: u16 = 30;
const IFLA_NUM_TX_QUEUES: u16 = 31;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_CARRIER: u16 = 33;

const IF_OPER_UNKNOWN: u8 = 0;
const IF_OPER_DOWN: u8 = 2;
const IF_OPER_UP: u8 = 6;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RTA_PREF: u16 = 20;

const RT_TABLE_MAIN: u8 = 254;
const RT_TABLE_LOCAL: u8 = 255;
const RTPROT_KERNEL: u8 = 2;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_HOST: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const RTN_BROADCAST: u8 = 3;

/// The most bytes of messages one dump datagram holds (Linux's NLMSG_GOODSIZE).
const DUMP_CHUNK: usize = 3776;

/// A request's header.
#[derive(Clone, Copy)]
pub struct Hdr {
    pub len: u32,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
}

impl Hdr {
    pub fn parse(b: &[u8]) -> Option<Hdr> {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"));
        Some(Hdr {
            len: u32_at(0),
            ty: u16_at(4),
            flags: u16_at(6),
            seq: u32_at(8),
        })
    }
}

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One message: header, then `payload` padded to 4 bytes.
pub fn msg(ty: u16, flags: u16, seq: u32, pid: u32, payload: &[u8]) -> Vec<u8> {
    let len = align4(NLMSG_HDRLEN + payload.len());
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&pid.to_le_bytes());
    b.extend_from_slice(payload);
    b.resize(len, 0);
    b
}

/// Append one route attribute (struct rtattr) padded to 4 bytes.
pub fn attr(b: &mut Vec<u8>, ty: u16, data: &[u8]) {
    b.extend_from_slice(&((4 + data.len()) as u16).to_le_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(data);
    b.resize(align4(b.len()), 0);
}

pub fn attr_u32(b: &mut Vec<u8>, ty: u16, v: u32) {
    attr(b, ty, &v.to_le_bytes());
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// What processing one request gave.
pub enum Outcome {
    /// Messages to queue, each element one datagram; no ACK follows (a dump).
    Dump(Vec<Vec<u8>>),
    /// A reply (maybe empty) then an ACK if asked for.
    Done(Vec<u8>),
    Err(i32),
}

/// The facts a request is answered from, and who asks.
pub struct Ctx<'a> {
    pub ifaces: &'a [IfaceInfo],
    pub routes: &'a [RouteInfo],
    pub net_admin: bool,
    /// Called for requests Linux knows and rvisor does not implement.
    pub unsupported: &'a dyn Fn(String),
}

/// An NLMSG_ERROR message for request `req` (the whole request message) with `err`
/// (0: an ACK). `capped`: NETLINK_CAP_ACK, only the request's header is echoed.
pub fn error_msg(req: &[u8], h: &Hdr, err: i32, pid: u32, capped: bool) -> Vec<u8> {
    let mut p = (-err).to_le_bytes().to_vec();
    let short = err == 0 || capped;
    let echo = if short {
        NLMSG_HDRLEN
    } else {
        (h.len as usize).min(req.len())
    };
    p.extend_from_slice(&req[..echo]);
    let flags = if short { NLM_F_CAPPED } else { 0 };
    msg(NLMSG_ERROR, flags, h.seq, pid, &p)
}

/// Answer one request message (`req`: the message with its header) sent by port `pid`.
pub fn handle(cx: &Ctx, req: &[u8], h: &Hdr, pid: u32) -> Outcome {
    let ty = h.ty;
    if ty > RTM_MAX {
        return Outcome::Err(libc::EOPNOTSUPP);
    }
    let body = &req[NLMSG_HDRLEN..(h.len as usize).min(req.len())];
    // rtnetlink_rcv_msg: a message without even a family byte is ignored.
    if body.is_empty() {
        return Outcome::Done(vec![]);
    }
    let family = body[0];
    let kind = (ty - RTM_BASE) & 3;
    if kind != 2 && !cx.net_admin {
        return Outcome::Err(libc::EPERM);
    }
    if kind != 2 {
        (cx.unsupported)(format!(
            "netlink route request {ty} (changing the sandbox's network configuration)"
        ));
        return Outcome::Err(libc::EOPNOTSUPP);
    }
    if h.flags & NLM_F_DUMP != 0 {
        let msgs: Vec<(u16, Vec<u8>)> = match ty {
            RTM_GETLINK => cx
                .ifaces
                .iter()
                .map(|i| (RTM_NEWLINK, link_msg(i)))
                .collect(),
            RTM_GETADDR => addr_msgs(cx.ifaces, family),
            RTM_GETROUTE => cx
                .routes
                .iter()
                .filter(|r| family_ok(family, r.dst))
                .map(|r| (RTM_NEWROUTE, route_msg(r)))
                .collect(),
            RTM_GETNEIGH => vec![],
            _ => {
                (cx.unsupported)(format!("netlink route dump of type {ty}"));
                return Outcome::Err(libc::EOPNOTSUPP);
            }
        };
        return Outcome::Dump(pack(msgs, h.seq, pid));
    }
    match ty {
        RTM_GETLINK => get_link(cx, body, h, pid),
        _ => {
            (cx.unsupported)(format!("netlink route request {ty} without NLM_F_DUMP"));
            Outcome::Err(libc::EOPNOTSUPP)
        }
    }
}

fn family_ok(family: u8, a: IpAddr) -> bool {
    match family {
        AF_INET => a.is_ipv4(),
        AF_INET6 => a.is_ipv6(),
        _ => true,
    }
}

/// Put (type, payload) messages into datagrams of at most DUMP_CHUNK bytes, NLMSG_DONE
/// last.
pub fn pack(msgs: Vec<(u16, Vec<u8>)>, seq: u32, pid: u32) -> Vec<Vec<u8>> {
    pack_done(msgs, seq, pid, 0)
}

/// The same, with `err` (a negative errno the dump ended with, or 0) in NLMSG_DONE.
pub fn pack_done(mut msgs: Vec<(u16, Vec<u8>)>, seq: u32, pid: u32, err: i32) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![];
    let mut cur: Vec<u8> = vec![];
    msgs.push((NLMSG_DONE, err.to_le_bytes().to_vec()));
    for (ty, payload) in msgs {
        let m = msg(ty, NLM_F_MULTI, seq, pid, &payload);
        if !cur.is_empty() && cur.len() + m.len() > DUMP_CHUNK {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(&m);
    }
    out.push(cur);
    out
}

/// An RTM_GETLINK for one interface: by ifi_index, else by IFLA_IFNAME.
fn get_link(cx: &Ctx, body: &[u8], h: &Hdr, pid: u32) -> Outcome {
    if body.len() < 16 {
        return Outcome::Err(libc::EINVAL);
    }
    let index = i32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
    let mut name: Option<Vec<u8>> = None;
    let mut off = 16;
    while off + 4 <= body.len() {
        let len = u16::from_le_bytes([body[off], body[off + 1]]) as usize;
        let ty = u16::from_le_bytes([body[off + 2], body[off + 3]]) & 0x3fff;
        if len < 4 || off + len > body.len() {
            break;
        }
        if ty == IFLA_IFNAME {
            let v = &body[off + 4..off + len];
            let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
            name = Some(v[..end].to_vec());
        }
        off += align4(len);
    }
    let found = if index > 0 {
        cx.ifaces.iter().find(|i| i.index == index as u32)
    } else if let Some(n) = &name {
        cx.ifaces.iter().find(|i| i.name.as_bytes() == &n[..])
    } else {
        return Outcome::Err(libc::EINVAL);
    };
    match found {
        Some(i) => Outcome::Done(msg(RTM_NEWLINK, 0, h.seq, pid, &link_msg(i))),
        None => Outcome::Err(libc::ENODEV),
    }
}

/// An RTM_NEWLINK payload.
fn link_msg(i: &IfaceInfo) -> Vec<u8> {
    let mut b = vec![];
    let hw = match i.kind {
        HwKind::Loopback => ARPHRD_LOOPBACK,
        HwKind::Ethernet => ARPHRD_ETHER,
        HwKind::Ip => ARPHRD_NONE,
    };
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&hw.to_le_bytes());
    b.extend_from_slice(&(i.index as i32).to_le_bytes());
    b.extend_from_slice(&i.flags.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    attr(&mut b, IFLA_IFNAME, &cstr(&i.name));
    attr_u32(&mut b, IFLA_TXQLEN, 1000);
    // Without a carrier (IFF_LOWER_UP, e.g. a host link seen with --network host) the
    // link is down, as Linux reports it.
    const IFF_LOWER_UP: u32 = 0x10000;
    let carrier = i.flags & IFF_LOWER_UP != 0;
    let oper = match i.kind {
        HwKind::Loopback => IF_OPER_UNKNOWN,
        _ if carrier => IF_OPER_UP,
        _ => IF_OPER_DOWN,
    };
    attr(&mut b, IFLA_OPERSTATE, &[oper]);
    attr(&mut b, IFLA_LINKMODE, &[0]);
    attr_u32(&mut b, IFLA_MTU, i.mtu);
    attr_u32(&mut b, IFLA_GROUP, 0);
    attr_u32(&mut b, IFLA_PROMISCUITY, 0);
    attr_u32(&mut b, IFLA_NUM_TX_QUEUES, 1);
    attr_u32(&mut b, IFLA_NUM_RX_QUEUES, 1);
    attr(
        &mut b,
        IFLA_CARRIER,
        &[(carrier || i.kind == HwKind::Loopback) as u8],
    );
    match i.kind {
        HwKind::Loopback => {
            attr(&mut b, IFLA_ADDRESS, &[0; 6]);
            attr(&mut b, IFLA_BROADCAST, &[0; 6]);
        }
        HwKind::Ethernet => {
            attr(&mut b, IFLA_ADDRESS, &i.mac);
            attr(&mut b, IFLA_BROADCAST, &[0xff; 6]);
        }
        HwKind::Ip => {}
    }
    let s = i.stats;
    // struct rtnl_link_stats64 (25 counters), then struct rtnl_link_stats (24).
    let mut c64 = [0u64; 25];
    c64[0] = s.rx_packets;
    c64[1] = s.tx_packets;
    c64[2] = s.rx_bytes;
    c64[3] = s.tx_bytes;
    let v: Vec<u8> = c64.iter().flat_map(|x| x.to_le_bytes()).collect();
    attr(&mut b, IFLA_STATS64, &v);
    let v: Vec<u8> = c64[..24]
        .iter()
        .flat_map(|&x| (x as u32).to_le_bytes())
        .collect();
    attr(&mut b, IFLA_STATS, &v);
    b
}

fn addr_msgs(ifaces: &[IfaceInfo], family: u8) -> Vec<(u16, Vec<u8>)> {
    let mut out = vec![];
    // Linux dumps IPv4 addresses of every interface, then IPv6 ones.
    for v6 in [false, true] {
        for i in ifaces {
            for &(a, p) in &i.addrs {
                if a.is_ipv6() == v6 && family_ok(family, a) {
                    out.push((RTM_NEWADDR, addr_msg(i, a, p)));
                }
            }
        }
    }
    out
}

fn addr_msg(i: &IfaceInfo, a: IpAddr, p: u8) -> Vec<u8> {
    let mut b = vec![];
    let scope = match a {
        _ if i.kind == HwKind::Loopback => RT_SCOPE_HOST,
        IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80 => RT_SCOPE_LINK,
        _ => RT_SCOPE_UNIVERSE,
    };
    let fam = if a.is_ipv4() { AF_INET } else { AF_INET6 };
    b.extend_from_slice(&[fam, p, IFA_F_PERMANENT as u8, scope]);
    b.extend_from_slice(&i.index.to_le_bytes());
    attr(&mut b, IFA_ADDRESS, &ip_bytes(a));
    if let IpAddr::V4(v) = a {
        attr(&mut b, IFA_LOCAL, &v.octets());
        if i.kind != HwKind::Loopback && p < 31 {
            let bc = u32::from(v) | (u32::MAX >> p);
            attr(&mut b, IFA_BROADCAST, &bc.to_be_bytes());
        }
        attr(&mut b, IFA_LABEL, &cstr(&i.name));
    }
    attr_u32(&mut b, IFA_FLAGS, IFA_F_PERMANENT);
    // struct ifa_cacheinfo: preferred and valid lifetimes forever, no timestamps.
    let mut ci = u32::MAX.to_le_bytes().to_vec();
    ci.extend_from_slice(&u32::MAX.to_le_bytes());
    ci.extend_from_slice(&[0; 8]);
    attr(&mut b, IFA_CACHEINFO, &ci);
    b
}

fn route_msg(r: &RouteInfo) -> Vec<u8> {
    let mut b = vec![];
    let v4 = r.dst.is_ipv4();
    let (table, ty) = match r.kind {
        RouteKind::Unicast => (RT_TABLE_MAIN, RTN_UNICAST),
        RouteKind::Local => (RT_TABLE_LOCAL, RTN_LOCAL),
        RouteKind::Broadcast => (RT_TABLE_LOCAL, RTN_BROADCAST),
    };
    let scope = match (r.kind, r.gateway) {
        _ if !v4 => RT_SCOPE_UNIVERSE,
        (RouteKind::Local, _) => RT_SCOPE_HOST,
        (_, Some(_)) => RT_SCOPE_UNIVERSE,
        _ => RT_SCOPE_LINK,
    };
    let proto = if r.gateway.is_some() {
        RTPROT_BOOT
    } else {
        RTPROT_KERNEL
    };
    let fam = if v4 { AF_INET } else { AF_INET6 };
    b.extend_from_slice(&[fam, r.prefix, 0, 0, table, proto, scope, ty]);
    b.extend_from_slice(&0u32.to_le_bytes());
    attr_u32(&mut b, RTA_TABLE, table as u32);
    if r.prefix > 0 {
        attr(&mut b, RTA_DST, &ip_bytes(r.dst));
    }
    if !v4 {
        let metric = if r.kind == RouteKind::Unicast {
            if r.gateway.is_some() {
                1024
            } else {
                256
            }
        } else {
            0
        };
        attr_u32(&mut b, RTA_PRIORITY, metric);
    }
    if let Some(s) = r.src {
        attr(&mut b, RTA_PREFSRC, &ip_bytes(s));
    }
    if let Some(g) = r.gateway {
        attr(&mut b, RTA_GATEWAY, &ip_bytes(g));
    }
    attr_u32(&mut b, RTA_OIF, r.ifindex);
    if !v4 {
        attr(&mut b, RTA_PREF, &[0]);
    }
    b
}

/// Process every message of a request buffer as netlink_rcv_skb does: control messages
/// and non-requests are only ACKed (when asked), errors always answered. Returns the
/// datagrams to queue.
pub fn process(cx: &Ctx, buf: &[u8], pid: u32, cap_ack: bool) -> Vec<Vec<u8>> {
    process_with(buf, pid, cap_ack, |req, h| handle(cx, req, h, pid))
}

/// `process` for any netlink protocol: `handle` answers each request message.
pub fn process_with(
    buf: &[u8],
    pid: u32,
    cap_ack: bool,
    mut handle: impl FnMut(&[u8], &Hdr) -> Outcome,
) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut off = 0;
    while buf.len() - off >= NLMSG_HDRLEN {
        let Some(h) = Hdr::parse(&buf[off..]) else {
            break;
        };
        let len = h.len as usize;
        if len < NLMSG_HDRLEN || len > buf.len() - off {
            break;
        }
        let req = &buf[off..off + len];
        let (reply, err) = if h.flags & NLM_F_REQUEST == 0 || h.ty < NLMSG_MIN_TYPE {
            (vec![], 0)
        } else {
            match handle(req, &h) {
                Outcome::Dump(d) => {
                    out.extend(d);
                    off += align4(len).min(buf.len() - off);
                    continue;
                }
                Outcome::Done(r) => (r, 0),
                Outcome::Err(e) => (vec![], e),
            }
        };
        if !reply.is_empty() {
            out.push(reply);
        }
        if h.flags & NLM_F_ACK != 0 || err != 0 {
            out.push(error_msg(req, &h, err, pid, cap_ack));
        }
        off += align4(len).min(buf.len() - off);
    }
    out
}

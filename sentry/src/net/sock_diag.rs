//! NETLINK_SOCK_DIAG requests, answered from the sandbox's own sockets as Linux's
//! sock_diag, inet_diag, tcp_diag, udp_diag and unix_diag do: SOCK_DIAG_BY_FAMILY dumps
//! and exact lookups for AF_INET/AF_INET6 (TCP, UDP; UDP-Lite sockets cannot exist) and
//! AF_UNIX, the older TCPDIAG_GETSOCK, the inet_diag bytecode filters (`ss ... sport =
//! :80`), and Linux's errors for the rest: ENOENT for the families and protocols whose
//! handlers are not there (raw_diag, netlink_diag, packet_diag, ...), as when their
//! modules are missing; SOCK_DESTROY is EOPNOTSUPP (no CONFIG_INET_DIAG_DESTROY).

use super::inet::unsupported;
use super::rtnetlink::{attr, attr_u32, Hdr, Outcome, NLMSG_HDRLEN, NLM_F_DUMP};
use super::sockinfo::{self, InetInfo, Kind};
use super::unix::UnixInfo;
use super::*;
use crate::kernel::cap;
use std::net::{IpAddr, SocketAddr};

const TCPDIAG_GETSOCK: u16 = 18;
const DCCPDIAG_GETSOCK: u16 = 19;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;

const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_DCCP: u32 = 33;
const IPPROTO_UDPLITE: u32 = 136;

/// sizeof(struct inet_diag_req_v2), struct inet_diag_req (TCPDIAG_GETSOCK) and
/// struct unix_diag_req.
const INET_REQ_LEN: usize = 56;
const COMPAT_REQ_LEN: usize = 60;
const UNIX_REQ_LEN: usize = 24;

/// Request attributes.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_REQ_PROTOCOL: u16 = 3;

/// Reply attributes (and idiag_ext bits, 1 << (attr - 1)).
const INET_DIAG_MEMINFO: u16 = 1;
const INET_DIAG_INFO: u16 = 2;
const INET_DIAG_VEGASINFO: u16 = 3;
const INET_DIAG_CONG: u16 = 4;
const INET_DIAG_TOS: u16 = 5;
const INET_DIAG_TCLASS: u16 = 6;
const INET_DIAG_SKMEMINFO: u16 = 7;
const INET_DIAG_SKV6ONLY: u16 = 11;
const INET_DIAG_MARK: u16 = 15;

const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_VFS: u32 = 0x02;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UDIAG_SHOW_ICONS: u32 = 0x08;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UDIAG_SHOW_MEMINFO: u32 = 0x20;
const UDIAG_SHOW_UID: u32 = 0x40;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_MEMINFO: u16 = 5;
const UNIX_DIAG_SHUTDOWN: u16 = 6;

/// sock_diag_check_cookie's "any socket".
const NOCOOKIE: u64 = u64::MAX;

/// The bytecode ops.
const BC_NOP: u8 = 0;
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
const BC_D_GE: u8 = 4;
const BC_D_LE: u8 = 5;
const BC_AUTO: u8 = 6;
const BC_S_COND: u8 = 7;
const BC_D_COND: u8 = 8;
const BC_DEV_COND: u8 = 9;
const BC_MARK_COND: u8 = 10;
const BC_S_EQ: u8 = 11;
const BC_D_EQ: u8 = 12;
const BC_CGROUP_COND: u8 = 13;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

/// Who asks: the task, its privilege, and the request's header.
struct Cx<'a> {
    t: &'a Task,
    h: &'a Hdr,
    pid: u32,
    net_admin: bool,
}

/// Answer one NETLINK_SOCK_DIAG request message (`req`, with its header) from port `pid`.
pub fn handle(t: &Task, req: &[u8], h: &Hdr, pid: u32) -> Outcome {
    let body = &req[NLMSG_HDRLEN..(h.len as usize).min(req.len())];
    let cx = Cx {
        t,
        h,
        pid,
        net_admin: t.creds().has_cap(cap::NET_ADMIN),
    };
    match h.ty {
        TCPDIAG_GETSOCK | DCCPDIAG_GETSOCK => compat(&cx, body),
        SOCK_DIAG_BY_FAMILY | SOCK_DESTROY => by_family(&cx, body),
        _ => Outcome::Err(libc::EINVAL),
    }
}

fn by_family(cx: &Cx, body: &[u8]) -> Outcome {
    if body.len() < 2 {
        return Outcome::Err(libc::EINVAL);
    }
    let family = body[0] as i32;
    match family {
        _ if family >= AF_MAX => Outcome::Err(libc::EINVAL),
        AF_INET | AF_INET6 => {
            if body.len() < INET_REQ_LEN {
                return Outcome::Err(libc::EINVAL);
            }
            let mut r = Req::parse(body, 8, INET_REQ_LEN);
            r.protocol = body[1] as u32;
            r.states = u32_at(body, 4);
            if let Some(p) = r.attr(INET_DIAG_REQ_PROTOCOL).filter(|p| p.len() >= 4) {
                r.protocol = u32_at(p, 0);
            }
            inet(cx, &r)
        }
        AF_UNIX => unix(cx, body),
        _ => {
            unsupported(
                &cx.t.kernel,
                format!("sock_diag of address family {family}"),
            );
            Outcome::Err(libc::ENOENT)
        }
    }
}

/// TCPDIAG_GETSOCK (struct inet_diag_req): a dump covers both families.
fn compat(cx: &Cx, body: &[u8]) -> Outcome {
    if body.len() < COMPAT_REQ_LEN {
        return Outcome::Err(libc::EINVAL);
    }
    let mut r = Req::parse(body, 4, COMPAT_REQ_LEN);
    r.protocol = if cx.h.ty == TCPDIAG_GETSOCK {
        IPPROTO_TCP
    } else {
        IPPROTO_DCCP
    };
    r.states = u32_at(body, 52);
    if cx.h.flags & NLM_F_DUMP != 0 {
        r.family = AF_UNSPEC;
    }
    inet(cx, &r)
}

/// An inet_diag request, either form.
struct Req<'a> {
    family: i32,
    protocol: u32,
    ext: u8,
    states: u32,
    sport: u16,
    dport: u16,
    src: [u8; 16],
    dst: [u8; 16],
    cookie: u64,
    attrs: &'a [u8],
}

impl<'a> Req<'a> {
    /// `b`: the request; `id`: where its struct inet_diag_sockid is; `hdr`: its size
    /// (the attributes follow).
    fn parse(b: &'a [u8], id: usize, hdr: usize) -> Req<'a> {
        let i = &b[id..id + 48];
        Req {
            family: b[0] as i32,
            protocol: 0,
            ext: if hdr == INET_REQ_LEN { b[2] } else { b[3] },
            states: 0,
            sport: u16::from_be_bytes([i[0], i[1]]),
            dport: u16::from_be_bytes([i[2], i[3]]),
            src: i[4..20].try_into().expect("16 bytes"),
            dst: i[20..36].try_into().expect("16 bytes"),
            cookie: u32_at(i, 40) as u64 | (u32_at(i, 44) as u64) << 32,
            attrs: &b[hdr..],
        }
    }

    /// The payload of the first attribute of type `ty`.
    fn attr(&self, ty: u16) -> Option<&'a [u8]> {
        let mut b = self.attrs;
        while b.len() >= 4 {
            let len = u16_at(b, 0) as usize;
            if len < 4 || len > b.len() {
                return None;
            }
            if u16_at(b, 2) & 0x3fff == ty {
                return Some(&b[4..len]);
            }
            b = &b[rtnetlink::align4(len).min(b.len())..];
        }
        None
    }
}

/// The reply's message type: the request's (SOCK_DESTROY aside).
fn reply_type(h: &Hdr) -> u16 {
    if h.ty == SOCK_DESTROY {
        SOCK_DIAG_BY_FAMILY
    } else {
        h.ty
    }
}

fn inet(cx: &Cx, r: &Req) -> Outcome {
    let dump = cx.h.ty != SOCK_DESTROY && cx.h.flags & NLM_F_DUMP != 0;
    let bc = r.attr(INET_DIAG_REQ_BYTECODE);
    if dump {
        if let Some(bc) = bc {
            if let Err(e) = audit(bc, cx.net_admin) {
                return Outcome::Err(e);
            }
            if let Some(op) = unsupported_op(bc) {
                unsupported(&cx.t.kernel, format!("inet_diag bytecode op {op}"));
                return Outcome::Err(libc::EOPNOTSUPP);
            }
        }
    }
    let kind = match r.protocol {
        IPPROTO_TCP => Some(Kind::Tcp),
        IPPROTO_UDP => Some(Kind::Udp),
        // UDP-Lite's handler is udp_diag's; the sandbox cannot have such sockets.
        IPPROTO_UDPLITE => None,
        p => {
            unsupported(&cx.t.kernel, format!("inet_diag of protocol {p}"));
            return if dump {
                Outcome::Dump(rtnetlink::pack_done(
                    vec![],
                    cx.h.seq,
                    cx.pid,
                    -libc::ENOENT,
                ))
            } else {
                Outcome::Err(libc::ENOENT)
            };
        }
    };
    let ext = r.ext as u32;
    let missing = (1 << (INET_DIAG_VEGASINFO - 1))
        | (1 << (INET_DIAG_CONG - 1))
        | (1 << (INET_DIAG_TOS - 1))
        | (1 << (INET_DIAG_TCLASS - 1));
    if ext & missing != 0 {
        unsupported(
            &cx.t.kernel,
            format!("inet_diag extensions {:#x}", ext & missing),
        );
    }
    let socks: Vec<InetInfo> = match kind {
        Some(kind) => sockinfo::inet_sockets(&cx.t.kernel, Some(cx.t))
            .into_iter()
            .filter(|s| s.kind == kind && sockinfo::listed(s))
            .collect(),
        None => vec![],
    };
    let ty = reply_type(cx.h);
    if dump {
        let msgs = socks
            .iter()
            .filter(|s| r.family == AF_UNSPEC || s.v6 == (r.family == AF_INET6))
            .filter(|s| r.states & (1 << s.state) != 0)
            .filter(|s| r.sport == 0 || r.sport == s.local.port())
            .filter(|s| r.dport == 0 || r.dport == s.remote.port())
            .filter(|s| bc.is_none_or(|bc| run(bc, s)))
            .map(|s| (ty, inet_msg(s, ext, cx.net_admin)))
            .collect();
        return Outcome::Dump(rtnetlink::pack(msgs, cx.h.seq, cx.pid));
    }
    let Some(s) = socks
        .iter()
        .filter(|s| s.v6 == (r.family == AF_INET6))
        .find(|s| exact_match(r, s))
    else {
        return Outcome::Err(libc::ENOENT);
    };
    // inet_diag_find_one_icsk: another socket's cookie is "not found".
    if r.cookie != NOCOOKIE && r.cookie != s.ino {
        return Outcome::Err(libc::ENOENT);
    }
    if cx.h.ty == SOCK_DESTROY {
        if !cx.net_admin {
            return Outcome::Err(libc::EPERM);
        }
        unsupported(&cx.t.kernel, "SOCK_DESTROY".into());
        return Outcome::Err(libc::EOPNOTSUPP);
    }
    let m = inet_msg(s, ext, cx.net_admin);
    Outcome::Done(rtnetlink::msg(ty, 0, cx.h.seq, cx.pid, &m))
}

fn ip_of(b: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(*b)
    } else {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    }
}

/// inet_diag_find_one_icsk's lookups: TCP an established 4-tuple, else a listener on
/// (src, sport); UDP the socket a datagram from (src, sport) to (dst, dport) would reach.
fn exact_match(r: &Req, s: &InetInfo) -> bool {
    let src = ip_of(&r.src, s.v6);
    let dst = ip_of(&r.dst, s.v6);
    let wild = |a: IpAddr, want: IpAddr| a.is_unspecified() || a == want;
    match s.kind {
        Kind::Tcp if s.state == sockinfo::LISTEN => {
            r.sport == s.local.port() && wild(s.local.ip(), src)
        }
        Kind::Tcp => {
            s.local == SocketAddr::new(src, r.sport) && s.remote == SocketAddr::new(dst, r.dport)
        }
        _ => {
            s.local.port() == r.dport
                && wild(s.local.ip(), dst)
                && (s.remote.port() == 0 || (s.remote.port() == r.sport && s.remote.ip() == src))
        }
    }
}

fn addr_words(a: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v) => b[..4].copy_from_slice(&v.octets()),
        IpAddr::V6(v) => b = v.octets(),
    }
    b
}

/// struct inet_diag_msg and the attributes inet_sk_diag_fill puts for `ext`.
fn inet_msg(s: &InetInfo, ext: u32, net_admin: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(72 + 64);
    b.push(if s.v6 { AF_INET6 } else { AF_INET } as u8);
    b.push(s.state);
    b.extend_from_slice(&[0, 0]); // timer, retrans: no timers are reported
    b.extend_from_slice(&s.local.port().to_be_bytes());
    b.extend_from_slice(&s.remote.port().to_be_bytes());
    b.extend_from_slice(&addr_words(s.local.ip()));
    b.extend_from_slice(&addr_words(s.remote.ip()));
    b.extend_from_slice(&0u32.to_le_bytes()); // idiag_if
    b.extend_from_slice(&(s.ino as u32).to_le_bytes());
    b.extend_from_slice(&((s.ino >> 32) as u32).to_le_bytes());
    let (rq, wq) = match s.kind {
        Kind::Tcp => (s.rqueue, s.wqueue),
        _ => (s.skmem[0] as usize, s.skmem[2] as usize),
    };
    for v in [0, rq as u32, wq as u32, s.uid, s.ino as u32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let want = |a: u16| ext & (1 << (a - 1)) != 0;
    let open = (1 << s.state) & ((1 << sockinfo::LISTEN) | (1 << sockinfo::CLOSE)) != 0;
    if s.v6 && open {
        attr(&mut b, INET_DIAG_SKV6ONLY, &[s.v6only as u8]);
    }
    if net_admin {
        // SO_MARK is not supported: every socket's mark is 0.
        attr_u32(&mut b, INET_DIAG_MARK, 0);
    }
    if want(INET_DIAG_MEMINFO) {
        let m = &s.skmem;
        let words: Vec<u8> = [m[0], m[5], m[4], m[2]]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        attr(&mut b, INET_DIAG_MEMINFO, &words);
    }
    if want(INET_DIAG_SKMEMINFO) {
        let words: Vec<u8> = s.skmem.iter().flat_map(|v| v.to_le_bytes()).collect();
        attr(&mut b, INET_DIAG_SKMEMINFO, &words);
    }
    if want(INET_DIAG_INFO) {
        if let Some(info) = &s.tcp_info {
            attr(&mut b, INET_DIAG_INFO, info);
        }
    }
    b
}

/// inet_diag_bc_audit: EINVAL for malformed bytecode, EPERM for a mark condition
/// without CAP_NET_ADMIN.
fn audit(bc: &[u8], net_admin: bool) -> Result<(), i32> {
    if bc.len() < 4 {
        return Err(libc::EINVAL);
    }
    let total = bc.len();
    let mut off = 0;
    while off < total {
        let len = total - off;
        if len < 4 {
            return Err(libc::EINVAL);
        }
        let (code, yes, no) = (bc[off], bc[off + 1] as usize, u16_at(bc, off + 2) as usize);
        let mut min = 4;
        let ok = match code {
            BC_S_COND | BC_D_COND => {
                min += 8;
                len >= min && {
                    let (fam, plen) = (bc[off + 4] as i32, bc[off + 5] as usize);
                    let alen = match fam {
                        AF_UNSPEC => Some(0),
                        AF_INET => Some(4),
                        AF_INET6 => Some(16),
                        _ => None,
                    };
                    alen.is_some_and(|a| {
                        min += a;
                        len >= min && plen <= 8 * a
                    })
                }
            }
            BC_DEV_COND => {
                min += 4;
                len >= min
            }
            BC_S_EQ | BC_S_GE | BC_S_LE | BC_D_EQ | BC_D_GE | BC_D_LE => {
                min += 4;
                len >= min
            }
            BC_MARK_COND => {
                if !net_admin {
                    return Err(libc::EPERM);
                }
                min += 8;
                len >= min
            }
            BC_CGROUP_COND => {
                min += 8;
                len >= min
            }
            BC_AUTO | BC_JMP | BC_NOP => true,
            _ => false,
        };
        if !ok {
            return Err(libc::EINVAL);
        }
        if code != BC_NOP {
            if no < min || no > len + 4 || no & 3 != 0 {
                return Err(libc::EINVAL);
            }
            if no < len && !valid_cc(bc, len - no) {
                return Err(libc::EINVAL);
            }
        }
        if yes < min || yes > len + 4 || yes & 3 != 0 {
            return Err(libc::EINVAL);
        }
        off += yes;
    }
    if off == total {
        Ok(())
    } else {
        Err(libc::EINVAL)
    }
}

/// valid_cc: a jump leaving `cc` bytes lands on an op boundary.
fn valid_cc(bc: &[u8], cc: usize) -> bool {
    let mut len = bc.len();
    let mut off = 0;
    loop {
        if cc > len {
            return false;
        }
        if cc == len {
            return true;
        }
        if len < 4 {
            return false;
        }
        let yes = bc[off + 1] as usize;
        if yes < 4 || yes & 3 != 0 || yes > len {
            return false;
        }
        len -= yes;
        off += yes;
    }
}

/// An op the sandbox cannot evaluate: AUTO (whether the port was bound explicitly is
/// not kept) and CGROUP_COND (sockets have no cgroup).
fn unsupported_op(bc: &[u8]) -> Option<u8> {
    let mut off = 0;
    while off + 4 <= bc.len() {
        let code = bc[off];
        if code == BC_AUTO || code == BC_CGROUP_COND {
            return Some(code);
        }
        if bc[off + 1] == 0 {
            break;
        }
        off += bc[off + 1] as usize;
    }
    None
}

/// bitstring_match: the first `bits` bits of `a` and `b` agree.
fn prefix_match(a: &[u8], b: &[u8], bits: usize) -> bool {
    let (bytes, rest) = (bits / 8, bits % 8);
    if a.len() < bytes || b.len() < bytes || a[..bytes] != b[..bytes] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(bytes), b.get(bytes)) {
        (Some(x), Some(y)) => (x ^ y) & mask == 0,
        _ => false,
    }
}

/// inet_diag_bc_run: whether the bytecode accepts the socket (ops already audited).
fn run(bc: &[u8], s: &InetInfo) -> bool {
    let (sport, dport) = (s.local.port(), s.remote.port());
    let family = if s.v6 { AF_INET6 } else { AF_INET };
    let saddr = addr_words(s.local.ip());
    let daddr = addr_words(s.remote.ip());
    let alen = if s.v6 { 16 } else { 4 };
    let mut off = 0;
    let mut len = bc.len() as isize;
    while len > 0 {
        let o = &bc[off..];
        let arg = || u16_at(o, 6);
        let yes = match o[0] {
            BC_NOP => true,
            BC_JMP => false,
            BC_S_EQ => sport == arg(),
            BC_S_GE => sport >= arg(),
            BC_S_LE => sport <= arg(),
            BC_D_EQ => dport == arg(),
            BC_D_GE => dport >= arg(),
            BC_D_LE => dport <= arg(),
            BC_S_COND | BC_D_COND => {
                let src = o[0] == BC_S_COND;
                let (cfam, plen) = (o[4] as i32, o[5] as usize);
                let port = i32::from_le_bytes(o[8..12].try_into().expect("4 bytes"));
                let caddr = &o[12..];
                let addr = if src { &saddr[..alen] } else { &daddr[..alen] };
                if port != -1 && port != i32::from(if src { sport } else { dport }) {
                    false
                } else if cfam != AF_UNSPEC && cfam != family {
                    // An IPv4 condition matches a v4-mapped IPv6 address.
                    family == AF_INET6
                        && cfam == AF_INET
                        && addr[..10] == [0; 10]
                        && addr[10..12] == [0xff, 0xff]
                        && prefix_match(&addr[12..], caddr, plen)
                } else {
                    plen == 0 || prefix_match(addr, caddr, plen)
                }
            }
            // No socket is bound to a device or marked (SO_BINDTODEVICE, SO_MARK).
            BC_DEV_COND => u32_at(o, 4) == 0,
            BC_MARK_COND => u32_at(o, 4) == 0,
            _ => false,
        };
        let step = if yes {
            o[1] as usize
        } else {
            u16_at(o, 2) as usize
        };
        len -= step as isize;
        off += step;
        if off > bc.len() {
            break;
        }
    }
    len == 0
}

/// unix_diag: dumps filtered by state, and exact lookups by inode.
fn unix(cx: &Cx, body: &[u8]) -> Outcome {
    if body.len() < UNIX_REQ_LEN {
        return Outcome::Err(libc::EINVAL);
    }
    if cx.h.ty == SOCK_DESTROY {
        return Outcome::Err(libc::EOPNOTSUPP);
    }
    let states = u32_at(body, 4);
    let ino = u32_at(body, 8);
    let show = u32_at(body, 12);
    let cookie = u32_at(body, 16) as u64 | (u32_at(body, 20) as u64) << 32;
    if show & UDIAG_SHOW_UID != 0 {
        unsupported(&cx.t.kernel, "unix_diag UDIAG_SHOW_UID".into());
        return Outcome::Err(libc::EOPNOTSUPP);
    }
    let socks = unix::sockets(&cx.t.kernel);
    if cx.h.flags & NLM_F_DUMP != 0 {
        // A connection not accepted yet has no inode: sk_diag_dump skips it.
        let msgs = socks
            .iter()
            .filter(|u| !u.embryo && states & (1 << unix_state(u)) != 0)
            .map(|u| (SOCK_DIAG_BY_FAMILY, unix_msg(u, show)))
            .collect();
        return Outcome::Dump(rtnetlink::pack(msgs, cx.h.seq, cx.pid));
    }
    if ino == 0 {
        return Outcome::Err(libc::EINVAL);
    }
    let Some(u) = socks.iter().find(|u| !u.embryo && u.ino == ino as u64) else {
        return Outcome::Err(libc::ENOENT);
    };
    if cookie != NOCOOKIE && cookie != u.ino {
        return Outcome::Err(libc::ESTALE);
    }
    let m = unix_msg(u, show);
    Outcome::Done(rtnetlink::msg(SOCK_DIAG_BY_FAMILY, 0, cx.h.seq, cx.pid, &m))
}

fn unix_state(u: &UnixInfo) -> u8 {
    if u.listening {
        sockinfo::LISTEN
    } else if u.connected {
        sockinfo::ESTABLISHED
    } else {
        sockinfo::CLOSE
    }
}

/// struct unix_diag_msg and the attributes sk_diag_fill puts for `show`.
fn unix_msg(u: &UnixInfo, show: u32) -> Vec<u8> {
    let mut b = vec![AF_UNIX as u8, u.ty as u8, unix_state(u), 0];
    b.extend_from_slice(&(u.ino as u32).to_le_bytes());
    b.extend_from_slice(&(u.ino as u32).to_le_bytes());
    b.extend_from_slice(&((u.ino >> 32) as u32).to_le_bytes());
    if show & UDIAG_SHOW_NAME != 0 {
        if let Some(a) = &u.addr {
            attr(&mut b, UNIX_DIAG_NAME, a);
        }
    }
    if show & UDIAG_SHOW_VFS != 0 {
        if let Some((ino, dev)) = u.vfs {
            let mut v = (ino as u32).to_le_bytes().to_vec();
            v.extend_from_slice(&kernel_dev(dev).to_le_bytes());
            attr(&mut b, UNIX_DIAG_VFS, &v);
        }
    }
    if show & UDIAG_SHOW_PEER != 0 {
        if let Some(p) = u.peer {
            attr_u32(&mut b, UNIX_DIAG_PEER, p as u32);
        }
    }
    if show & UDIAG_SHOW_ICONS != 0 && u.listening {
        let v: Vec<u8> = u
            .icons
            .iter()
            .flat_map(|i| (*i as u32).to_le_bytes())
            .collect();
        attr(&mut b, UNIX_DIAG_ICONS, &v);
    }
    if show & UDIAG_SHOW_RQLEN != 0 {
        let mut v = (u.rqueue as u32).to_le_bytes().to_vec();
        v.extend_from_slice(&(u.wqueue as u32).to_le_bytes());
        attr(&mut b, UNIX_DIAG_RQLEN, &v);
    }
    if show & UDIAG_SHOW_MEMINFO != 0 {
        // Messages are charged to their sender, as Linux's are: rmem_alloc stays 0.
        let wmem = if u.listening { 0 } else { u.wqueue as u32 };
        let m = [0, u.rcvbuf as u32, wmem, u.sndbuf as u32, 0, 0, 0, 0, 0];
        let v: Vec<u8> = m.iter().flat_map(|x: &u32| x.to_le_bytes()).collect();
        attr(&mut b, UNIX_DIAG_MEMINFO, &v);
    }
    attr(&mut b, UNIX_DIAG_SHUTDOWN, &[u.shutdown]);
    b
}

/// A stat(2) device number as the kernel keeps it (MAJOR << 20 | MINOR), what
/// unix_diag_vfs carries.
fn kernel_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((major << 20) | (minor & 0xfffff)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn sock(local: SocketAddr, remote: SocketAddr) -> InetInfo {
        InetInfo {
            kind: Kind::Tcp,
            v6: local.is_ipv6(),
            protocol: 6,
            local,
            remote,
            state: 1,
            rqueue: 0,
            wqueue: 0,
            uid: 0,
            ino: 1,
            rcvbuf: 0,
            sndbuf: 0,
            skmem: [0; 9],
            tcp_info: None,
            v6only: false,
        }
    }

    fn op(code: u8, yes: u8, no: u16) -> Vec<u8> {
        let mut b = vec![code, yes];
        b.extend_from_slice(&no.to_le_bytes());
        b
    }

    #[test]
    fn port_comparisons_and_jumps() {
        // sport >= 1000 && sport <= 2000
        let mut bc = op(BC_S_GE, 8, 20);
        bc.extend(op(0, 0, 1000));
        bc.extend(op(BC_S_LE, 8, 12));
        bc.extend(op(0, 0, 2000));
        assert_eq!(audit(&bc, false), Ok(()));
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
        let at = |p| sock(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p), any);
        assert!(run(&bc, &at(1500)));
        assert!(run(&bc, &at(1000)));
        assert!(!run(&bc, &at(999)));
        assert!(!run(&bc, &at(2001)));
    }

    #[test]
    fn host_conditions_match_prefixes_and_mapped_addresses() {
        // src 10.1.0.0/16, any port
        let mut bc = op(BC_S_COND, 16, 20);
        bc.extend_from_slice(&[AF_INET as u8, 16, 0, 0]);
        bc.extend_from_slice(&(-1i32).to_le_bytes());
        bc.extend_from_slice(&[10, 1, 0, 0]);
        assert_eq!(audit(&bc, false), Ok(()));
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
        let v4 = |a: [u8; 4]| sock(SocketAddr::new(a.into(), 80), any);
        assert!(run(&bc, &v4([10, 1, 200, 3])));
        assert!(!run(&bc, &v4([10, 2, 0, 1])));
        let mapped: Ipv6Addr = "::ffff:10.1.2.3".parse().unwrap();
        let any6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0);
        assert!(run(&bc, &sock(SocketAddr::new(mapped.into(), 80), any6)));
        let plain: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert!(!run(&bc, &sock(SocketAddr::new(plain.into(), 80), any6)));
    }

    #[test]
    fn audit_rejects_what_linux_rejects() {
        assert_eq!(audit(&[0, 4], false), Err(libc::EINVAL));
        assert_eq!(audit(&op(99, 4, 8), false), Err(libc::EINVAL));
        // A jump into the middle of an op.
        let mut bc = op(BC_JMP, 4, 6);
        bc.extend(op(BC_NOP, 4, 0));
        assert_eq!(audit(&bc, false), Err(libc::EINVAL));
        // A mark condition needs CAP_NET_ADMIN.
        let mut m = op(BC_MARK_COND, 12, 16);
        m.extend_from_slice(&[0; 8]);
        assert_eq!(audit(&m, false), Err(libc::EPERM));
        assert_eq!(audit(&m, true), Ok(()));
        // A host condition longer than its address.
        let mut c = op(BC_D_COND, 16, 20);
        c.extend_from_slice(&[AF_INET as u8, 33, 0, 0]);
        c.extend_from_slice(&(-1i32).to_le_bytes());
        c.extend_from_slice(&[127, 0, 0, 1]);
        assert_eq!(audit(&c, false), Err(libc::EINVAL));
    }

    #[test]
    fn devices_in_the_kernels_encoding() {
        // makedev(8, 1) and makedev(0, 65025) as stat(2) gives them.
        assert_eq!(kernel_dev(0x801), 8 << 20 | 1);
        let minor = 65025u64;
        let st = (minor & 0xff) | ((minor & !0xff) << 12);
        assert_eq!(kernel_dev(st), 65025);
    }
}

//! Socket system calls. AF_UNIX is served by [`crate::net::unix`], AF_INET and AF_INET6
//! by [`crate::net::inet`] (rvisor's own TCP/IP stack); other families are not supported
//! (EAFNOSUPPORT).

use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::net::inet::{self, InetSock, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};
use crate::net::netlink::{NetlinkSock, AF_NETLINK, NETLINK_ROUTE, NETLINK_SOCK_DIAG};
use crate::net::unix::{self, Dest, Recv, Sock, Ucred};
use crate::net::*;
use crate::net::{ping, raw};
use crate::vfs::{may_access, OpenFile, O_NONBLOCK, S_IFMT, S_IFSOCK};
use std::net::SocketAddr;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let a = |i| c.arg(i);
    let (a0, a1, a2, a3, a4, a5) = (a(0), a(1), a(2), a(3), a(4), a(5));
    Some(match nr {
        41 => socket(c, a0 as i32, a1 as i32, a2 as i32),
        42 => connect(c, a0, a1, a2 as u32),
        43 => accept(c, a0, a1, a2, 0),
        44 => sendto(c, a0, a1, a2, a3 as u32, a4, a5 as u32),
        45 => recvfrom(c, a0, a1, a2, a3 as u32, a4, a5),
        46 => sendmsg(c, a0, a1, a2 as u32),
        47 => recvmsg(c, a0, a1, a2 as u32),
        48 => shutdown(c, a0, a1 as i32),
        49 => bind(c, a0, a1, a2 as u32),
        50 => listen(c, a0, a1 as i32),
        51 => getname(c, a0, a1, a2, false),
        52 => getname(c, a0, a1, a2, true),
        53 => socketpair(c, a0 as i32, a1 as i32, a2 as i32, a3),
        54 => setsockopt(c, a0, a1 as i32, a2 as i32, a3, a4 as u32),
        55 => getsockopt(c, a0, a1 as i32, a2 as i32, a3, a4),
        288 => accept(c, a0, a1, a2, a3 as i32),
        299 => recvmmsg(c, a0, a1, a2 as u32, a3 as u32, a4),
        307 => sendmmsg(c, a0, a1, a2 as u32, a3 as u32),
        _ => return None,
    })
}

/// sizeof(struct sockaddr_un).
const SUN_LEN: usize = 110;
/// sizeof(struct sockaddr_storage).
const SS_LEN: usize = 128;
const UIO_MAXIOV: u64 = 1024;
/// Control data we accept in one sendmsg (Linux: net.core.optmem_max).
const OPTMEM_MAX: u64 = 131_072;

fn sock_of(c: &Ctx, fd: u64) -> KResult<(Arc<OpenFile>, Arc<Sock>)> {
    let f = c.fd(fd)?;
    let s = unix_sock(&f)?;
    Ok((f, s))
}

pub(super) fn install(c: &Ctx, f: Arc<OpenFile>, cloexec: bool) -> KResult<i32> {
    let lim = c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    c.t.files().install(f, cloexec, 0, lim)
}

/// Check socket(2)/socketpair(2) arguments: (base type, flags) for AF_UNIX.
pub(super) fn check_type(
    c: &Ctx,
    domain: i32,
    ty: i32,
    proto: i32,
    pair: bool,
) -> KResult<(i32, i32)> {
    let flags = ty & !SOCK_TYPE_MASK;
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let base = ty & SOCK_TYPE_MASK;
    if !(0..AF_MAX).contains(&domain) {
        return Err(EAFNOSUPPORT);
    }
    if !(0..SOCK_MAX).contains(&base) {
        return Err(EINVAL);
    }
    if domain == AF_INET || domain == AF_INET6 {
        if pair {
            return Err(EOPNOTSUPP);
        }
        return check_inet_type(c, domain, base, proto).map(|b| (b, flags));
    }
    if domain == AF_NETLINK {
        if base != SOCK_RAW && base != SOCK_DGRAM {
            return Err(ESOCKTNOSUPPORT);
        }
        if pair {
            return Err(EOPNOTSUPP);
        }
        if proto != NETLINK_ROUTE && proto != NETLINK_SOCK_DIAG {
            if (0..32).contains(&proto) {
                inet::unsupported(&c.t.kernel, format!("netlink protocol {proto}"));
            }
            return Err(EPROTONOSUPPORT);
        }
        return Ok((base, flags));
    }
    if domain != AF_UNIX {
        return Err(EAFNOSUPPORT);
    }
    if proto != 0 && proto != AF_UNIX {
        return Err(EPROTONOSUPPORT);
    }
    let base = match base {
        SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET => base,
        SOCK_RAW => SOCK_DGRAM,
        _ => return Err(ESOCKTNOSUPPORT),
    };
    Ok((base, flags))
}

/// socket(2)'s checks for AF_INET/AF_INET6: the base type (TCP or UDP) or Linux's errno.
fn check_inet_type(c: &Ctx, domain: i32, base: i32, proto: i32) -> KResult<i32> {
    let icmp = if domain == AF_INET {
        IPPROTO_ICMP
    } else {
        IPPROTO_ICMPV6
    };
    match (base, proto) {
        (SOCK_STREAM, 0 | IPPROTO_TCP) => Ok(SOCK_STREAM),
        (SOCK_DGRAM, 0 | IPPROTO_UDP) => Ok(SOCK_DGRAM),
        // Ping sockets, for the groups of net.ipv4.ping_group_range.
        (SOCK_DGRAM, p) if p == icmp && ping::allowed(c.t) => Ok(SOCK_DGRAM),
        (SOCK_DGRAM, p) if p == icmp => Err(EACCES),
        (SOCK_STREAM | SOCK_DGRAM, p) => {
            // Linux's other inet protocols, not had here: as a kernel built without them.
            let name = match p {
                132 => "SCTP",
                136 => "UDP-Lite",
                262 => "MPTCP",
                _ => return Err(EPROTONOSUPPORT),
            };
            inet::unsupported(&c.t.kernel, format!("{name} sockets"));
            Err(EPROTONOSUPPORT)
        }
        (SOCK_RAW, _) => raw::check(c.t, domain, proto).map(|()| SOCK_RAW),
        _ => Err(ESOCKTNOSUPPORT),
    }
}

fn socket(c: &Ctx, domain: i32, ty: i32, proto: i32) -> SysResult {
    let (base, flags) = check_type(c, domain, ty, proto, false)?;
    if domain == AF_INET || domain == AF_INET6 {
        let protocol = if base == SOCK_STREAM {
            IPPROTO_TCP
        } else if base == SOCK_RAW || proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6 {
            proto
        } else {
            IPPROTO_UDP
        };
        let s = InetSock::new(c.t, domain, base, protocol);
        let f = inet_socket_file(s, flags as u32 & O_NONBLOCK, c.t);
        return Ok(install(c, f, flags & SOCK_CLOEXEC != 0)? as u64);
    }
    if domain == AF_NETLINK {
        let s = NetlinkSock::new(&c.t.kernel, base, proto);
        let f = netlink_socket_file(s, flags as u32 & O_NONBLOCK, c.t);
        return Ok(install(c, f, flags & SOCK_CLOEXEC != 0)? as u64);
    }
    let s = Sock::new(&c.t.kernel, base);
    let f = socket_file(s, flags as u32 & O_NONBLOCK, c.t);
    Ok(install(c, f, flags & SOCK_CLOEXEC != 0)? as u64)
}

fn socketpair(c: &Ctx, domain: i32, ty: i32, proto: i32, sv: u64) -> SysResult {
    let (base, flags) = check_type(c, domain, ty, proto, true)?;
    let (a, b) = Sock::pair(&c.t.kernel, base, c.t);
    let nb = flags as u32 & O_NONBLOCK;
    let cloexec = flags & SOCK_CLOEXEC != 0;
    let fa = install(c, socket_file(a, nb, c.t), cloexec)?;
    let fb = match install(c, socket_file(b, nb, c.t), cloexec) {
        Ok(x) => x,
        Err(e) => {
            c.t.files().remove(fa);
            return Err(e);
        }
    };
    if let Err(e) = c.t.mm().write_obj(sv, &[fa, fb]) {
        c.t.files().remove(fa);
        c.t.files().remove(fb);
        return Err(e);
    }
    Ok(0)
}

// ---- addresses ----

/// A setsockopt(2) value: a negative length is EINVAL; at most 256 bytes are read.
pub(super) fn read_optval(c: &Ctx, val: u64, len: u32) -> KResult<Vec<u8>> {
    if (len as i32) < 0 {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(vec![]);
    }
    c.t.mm().read_vec(val, (len as usize).min(256))
}

/// A sendto(2) or recvfrom(2) buffer length: over INT_MAX is EINVAL.
pub(super) fn buf_len(len: u64) -> KResult<usize> {
    if len > i32::MAX as u64 {
        return Err(EINVAL);
    }
    Ok(len as usize)
}

/// The bytes of a sendto(2) buffer (its length checked by [`buf_len`]).
pub(super) fn read_buf(c: &Ctx, buf: u64, len: u64) -> KResult<Vec<u8>> {
    c.t.mm().read_vec(buf, buf_len(len)?)
}

/// `read(addr, len)` when an address is given (not null, not empty), else None.
pub(super) fn given_addr<T>(
    addr: u64,
    len: u32,
    read: impl FnOnce(u64, u32) -> KResult<T>,
) -> KResult<Option<T>> {
    if addr != 0 && len != 0 {
        read(addr, len).map(Some)
    } else {
        Ok(None)
    }
}

/// A unix socket address as given by the application.
enum UAddr {
    Unspec,
    Autobind,
    Abstract(Vec<u8>),
    /// A path (without its NUL).
    Path(Vec<u8>),
}

fn read_addr(c: &Ctx, addr: u64, len: u32) -> KResult<UAddr> {
    let len = len as i32;
    if len < 0 || len as usize > SS_LEN {
        return Err(EINVAL);
    }
    let len = len as usize;
    if len < 2 {
        return Err(EINVAL);
    }
    let b = c.t.mm().read_vec(addr, len)?;
    let family = u16::from_le_bytes([b[0], b[1]]) as i32;
    if family == AF_UNSPEC {
        return Ok(UAddr::Unspec);
    }
    if family == AF_UNIX && len == 2 {
        return Ok(UAddr::Autobind);
    }
    if family != AF_UNIX || len > SUN_LEN {
        return Err(EINVAL);
    }
    let p = &b[2..];
    if p[0] == 0 {
        return Ok(UAddr::Abstract(p.to_vec()));
    }
    let end = p.iter().position(|&x| x == 0).unwrap_or(p.len());
    Ok(UAddr::Path(p[..end].to_vec()))
}

/// Write a sockaddr_un for `name` (None: unnamed) to `addr`/`lenp`, Linux style: at most
/// the caller's length is copied, the full length is reported.
fn write_addr(c: &Ctx, addr: u64, lenp: u64, name: Option<&[u8]>) -> KResult<()> {
    let mut b = (AF_UNIX as u16).to_le_bytes().to_vec();
    if let Some(n) = name {
        b.extend_from_slice(n);
    }
    write_sockaddr(c, addr, lenp, &b)
}

/// Copy an encoded sockaddr out: at most the caller's `*lenp` bytes, and the full length
/// back into `*lenp` (EINVAL for a negative length).
pub(super) fn write_sockaddr(c: &Ctx, addr: u64, lenp: u64, b: &[u8]) -> KResult<()> {
    let mm = c.t.mm();
    let ulen: i32 = mm.read_obj(lenp)?;
    if ulen < 0 {
        return Err(EINVAL);
    }
    let n = (ulen as usize).min(b.len());
    if n > 0 {
        mm.write(addr, &b[..n])?;
    }
    mm.write_obj(lenp, &(b.len() as u32))
}

/// The socket an address names, as connect(2) and sendto(2) find it.
fn resolve(c: &Ctx, a: &UAddr) -> KResult<Arc<Sock>> {
    let reg = unix::registry(&c.t.kernel);
    match a {
        UAddr::Abstract(n) => reg.find_abstract(n).ok_or(ECONNREFUSED),
        UAddr::Path(p) => {
            let path = c.lookup(AT_FDCWD as u64, p, true, false)?;
            let st = path.dentry.inode.stat();
            if !may_access(&st, &c.t.creds(), 2) {
                return Err(EACCES);
            }
            if st.mode & S_IFMT != S_IFSOCK {
                return Err(ECONNREFUSED);
            }
            reg.find_inode(&path.dentry.inode).ok_or(ECONNREFUSED)
        }
        UAddr::Unspec | UAddr::Autobind => Err(EINVAL),
    }
}

fn bind(c: &Ctx, fd: u64, addr: u64, len: u32) -> SysResult {
    if let Some(s) = netlink_sock(&*c.fd(fd)?) {
        s.bind(c.t, &read_raw_addr(c, addr, len)?)?;
        return Ok(0);
    }
    if let Some(s) = inet_of(c, fd)? {
        // inet6_bind checks the length before the family.
        if s.v6() && (len as i32) >= 0 && (len as usize) < 24 {
            return Err(EINVAL);
        }
        let (a, fam) = read_inet_addr(c, &s, addr, len)?;
        s.bind(c.t, a, fam)?;
        return Ok(0);
    }
    let (_, s) = sock_of(c, fd)?;
    match read_addr(c, addr, len)? {
        UAddr::Autobind => s.autobind()?,
        UAddr::Abstract(n) => s.bind_abstract(n)?,
        UAddr::Path(p) => {
            let (parent, name) = c.lookup_parent(AT_FDCWD as u64, &p)?;
            if name.is_empty() || name == b"." || name == b".." {
                return Err(EADDRINUSE);
            }
            let creds = c.t.creds();
            if !may_access(&parent.dentry.inode.stat(), &creds, 3) {
                return Err(EACCES);
            }
            if parent.mnt.readonly() {
                return Err(EROFS);
            }
            let umask = c.t.fsctx().umask.load(std::sync::atomic::Ordering::Relaxed);
            let inode = parent
                .dentry
                .inode
                .mknod(&name, S_IFSOCK | (0o777 & !umask), 0, &creds)
                .map_err(|e| if e == EEXIST { EADDRINUSE } else { e })?;
            let mut stored = p.clone();
            stored.push(0);
            if let Err(e) = s.bind_inode(stored, inode) {
                let _ = parent.dentry.inode.unlink(&name, false);
                return Err(e);
            }
            crate::vfs::inotify::dir_event(
                &parent.dentry.inode,
                crate::vfs::inotify::IN_CREATE,
                0,
                &name,
            );
        }
        UAddr::Unspec => return Err(EINVAL),
    }
    Ok(0)
}

fn listen(c: &Ctx, fd: u64, backlog: i32) -> SysResult {
    if netlink_sock(&*c.fd(fd)?).is_some() {
        return Err(EOPNOTSUPP);
    }
    if let Some(s) = inet_of(c, fd)? {
        s.listen(backlog)?;
        return Ok(0);
    }
    let (_, s) = sock_of(c, fd)?;
    s.listen(c.t, backlog)?;
    Ok(0)
}

fn connect(c: &Ctx, fd: u64, addr: u64, len: u32) -> SysResult {
    let f = c.fd(fd)?;
    if let Some(s) = netlink_sock(&f) {
        s.connect(c.t, &read_raw_addr(c, addr, len)?)?;
        return Ok(0);
    }
    if let Some(s) = inet_sock(&f) {
        let (a, _) = read_inet_addr(c, &s, addr, len)?;
        s.connect(c.t, a, f.nonblock())?;
        return Ok(0);
    }
    let (f, s) = sock_of(c, fd)?;
    let a = read_addr(c, addr, len)?;
    if s.ty == SOCK_DGRAM {
        if let UAddr::Unspec = a {
            s.connect_dgram(None)?;
            return Ok(0);
        }
    }
    if matches!(a, UAddr::Unspec | UAddr::Autobind) {
        return Err(EINVAL);
    }
    let target = resolve(c, &a)?;
    if s.ty == SOCK_DGRAM {
        s.connect_dgram(Some(&target))?;
    } else {
        s.connect_stream(c.t, &target, f.nonblock())?;
    }
    Ok(0)
}

fn accept(c: &Ctx, fd: u64, addr: u64, lenp: u64, flags: i32) -> SysResult {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let f = c.fd(fd)?;
    if netlink_sock(&f).is_some() {
        return Err(EOPNOTSUPP);
    }
    if let Some(s) = inet_sock(&f) {
        let (ns, peer) = s.accept(c.t, f.nonblock())?;
        let nf = inet_socket_file(ns, flags as u32 & O_NONBLOCK, c.t);
        let nfd = install(c, nf, flags & SOCK_CLOEXEC != 0)?;
        if addr != 0 {
            if let Err(err) = write_inet_addr(c, addr, lenp, Some(peer)) {
                c.t.files().remove(nfd);
                return Err(err);
            }
        }
        return Ok(nfd as u64);
    }
    let (f, s) = sock_of(c, fd)?;
    let e = s.accept(c.t, f.nonblock())?;
    let peer = e.peer_name().ok().flatten();
    let nf = socket_file(e, flags as u32 & O_NONBLOCK, c.t);
    let nfd = install(c, nf, flags & SOCK_CLOEXEC != 0)?;
    if addr != 0 {
        if let Err(err) = write_addr(c, addr, lenp, peer.as_deref()) {
            c.t.files().remove(nfd);
            return Err(err);
        }
    }
    Ok(nfd as u64)
}

fn getname(c: &Ctx, fd: u64, addr: u64, lenp: u64, peer: bool) -> SysResult {
    if let Some(s) = netlink_sock(&*c.fd(fd)?) {
        let b = if peer { s.peer() } else { s.name() };
        write_sockaddr(c, addr, lenp, &b)?;
        return Ok(0);
    }
    if let Some(s) = inet_of(c, fd)? {
        let a = if peer { s.peer()? } else { s.name() };
        write_inet_addr(c, addr, lenp, Some(a))?;
        return Ok(0);
    }
    let (_, s) = sock_of(c, fd)?;
    let name = if peer { s.peer_name()? } else { s.name() };
    write_addr(c, addr, lenp, name.as_deref())?;
    Ok(0)
}

fn shutdown(c: &Ctx, fd: u64, how: i32) -> SysResult {
    if netlink_sock(&*c.fd(fd)?).is_some() {
        return Err(EOPNOTSUPP);
    }
    if let Some(s) = inet_of(c, fd)? {
        s.shutdown(how)?;
        return Ok(0);
    }
    let (_, s) = sock_of(c, fd)?;
    s.shutdown(how)?;
    Ok(0)
}

fn setsockopt(c: &Ctx, fd: u64, level: i32, name: i32, val: u64, len: u32) -> SysResult {
    let f = c.fd(fd)?;
    if let Some(s) = netlink_sock(&f) {
        if (len as i32) < 0 {
            return Err(EINVAL);
        }
        let v = c.t.mm().read_vec(val, (len as usize).min(256))?;
        s.setsockopt(c.t, level, name, &v)?;
        return Ok(0);
    }
    let inet = inet_sock(&f);
    let unix = if inet.is_none() {
        Some(unix_sock(&f)?)
    } else {
        None
    };
    let v = read_optval(c, val, len)?;
    match (inet, unix) {
        (Some(s), _) => s.setsockopt(c.t, level, name, &v)?,
        (_, Some(s)) => s.setsockopt(c.t, level, name, &v)?,
        _ => unreachable!("a socket"),
    }
    Ok(0)
}

fn getsockopt(c: &Ctx, fd: u64, level: i32, name: i32, val: u64, lenp: u64) -> SysResult {
    let f = c.fd(fd)?;
    let inet = inet_sock(&f);
    let unix = if inet.is_none() && netlink_sock(&f).is_none() {
        Some(unix_sock(&f)?)
    } else {
        None
    };
    let mm = c.t.mm();
    let len: i32 = mm.read_obj(lenp)?;
    if len < 0 {
        return Err(EINVAL);
    }
    let v =
        match (inet, unix) {
            _ if netlink_sock(&f).is_some() => netlink_sock(&f)
                .expect("a netlink socket")
                .getsockopt(c.t, level, name, len as usize)?,
            (Some(s), _) => s.getsockopt(c.t, level, name, len as usize)?,
            (_, Some(s)) => s.getsockopt(level, name, len as usize)?,
            _ => unreachable!("a socket"),
        };
    if !v.is_empty() {
        mm.write(val, &v)?;
    }
    mm.write_obj(lenp, &(v.len() as u32))?;
    Ok(0)
}

// ---- data ----

/// struct msghdr.
pub(super) struct MsgHdr {
    pub name: u64,
    pub namelen: u32,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
}

pub(super) fn read_msghdr(c: &Ctx, p: u64) -> KResult<MsgHdr> {
    let b: [u8; 56] = c.t.mm().read_obj(p)?;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    Ok(MsgHdr {
        name: u64_at(0),
        namelen: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        iov: u64_at(16),
        iovlen: u64_at(24),
        control: u64_at(32),
        controllen: u64_at(40),
    })
}

pub(super) fn iovecs(c: &Ctx, iov: u64, cnt: u64) -> KResult<Vec<(u64, usize)>> {
    if cnt > UIO_MAXIOV {
        return Err(EMSGSIZE);
    }
    let mm = c.t.mm();
    let mut v = vec![];
    let mut total = 0u64;
    for i in 0..cnt {
        let base = mm.read_u64(iov + i * 16)?;
        let len = mm.read_u64(iov + i * 16 + 8)?;
        if (len as i64) < 0 {
            return Err(EINVAL);
        }
        total = total.saturating_add(len);
        if total > i32::MAX as u64 {
            return Err(EINVAL);
        }
        v.push((base, len as usize));
    }
    Ok(v)
}

pub(super) fn gather(c: &Ctx, iov: &[(u64, usize)]) -> KResult<Vec<u8>> {
    let mm = c.t.mm();
    let mut out = Vec::with_capacity(iov.iter().map(|v| v.1).sum::<usize>().min(1 << 20));
    for &(b, l) in iov {
        if l > 0 {
            out.extend(mm.read_vec(b, l)?);
        }
    }
    Ok(out)
}

fn scatter(c: &Ctx, iov: &[(u64, usize)], data: &[u8]) -> KResult<()> {
    let mm = c.t.mm();
    let mut done = 0;
    for &(b, l) in iov {
        if done >= data.len() {
            break;
        }
        let k = l.min(data.len() - done);
        mm.write(b, &data[done..done + k])?;
        done += k;
    }
    Ok(())
}

/// Parse SCM_RIGHTS and SCM_CREDENTIALS out of sendmsg's control data.
fn parse_control(c: &Ctx, ctl: &[u8]) -> KResult<(Vec<Arc<OpenFile>>, Option<Ucred>)> {
    let mut fds = vec![];
    let mut creds = None;
    let mut off = 0;
    while off + 16 <= ctl.len() {
        let len = u64::from_le_bytes(ctl[off..off + 8].try_into().expect("8 bytes")) as usize;
        let level = i32::from_le_bytes(ctl[off + 8..off + 12].try_into().expect("4 bytes"));
        let ty = i32::from_le_bytes(ctl[off + 12..off + 16].try_into().expect("4 bytes"));
        if len < 16 || len > ctl.len() - off {
            return Err(EINVAL);
        }
        let data = &ctl[off + 16..off + len];
        if level == SOL_SOCKET {
            match ty {
                SCM_RIGHTS => {
                    let n = data.len() / 4;
                    if fds.len() + n > unix::SCM_MAX_FD {
                        return Err(EINVAL);
                    }
                    for i in 0..n {
                        let fd = i32::from_le_bytes(data[i * 4..i * 4 + 4].try_into().expect("4"));
                        fds.push(c.t.files().get(fd)?);
                    }
                }
                SCM_CREDENTIALS => {
                    if data.len() != 12 {
                        return Err(EINVAL);
                    }
                    let u = Ucred {
                        pid: i32::from_le_bytes(data[0..4].try_into().expect("4")),
                        uid: u32::from_le_bytes(data[4..8].try_into().expect("4")),
                        gid: u32::from_le_bytes(data[8..12].try_into().expect("4")),
                    };
                    let cr = c.t.creds();
                    // Another pid needs CAP_SYS_ADMIN, another uid CAP_SETUID, another
                    // gid CAP_SETGID (scm_check_creds).
                    use crate::kernel::cap;
                    let ok = (u.pid == c.t.tgid() || cr.has_cap(cap::SYS_ADMIN))
                        && ([cr.uid, cr.euid, cr.suid].contains(&u.uid) || cr.has_cap(cap::SETUID))
                        && ([cr.gid, cr.egid, cr.sgid].contains(&u.gid) || cr.has_cap(cap::SETGID));
                    if !ok {
                        return Err(EPERM);
                    }
                    creds = Some(u);
                }
                _ => return Err(EINVAL),
            }
        }
        off += (len + 7) & !7;
    }
    Ok((fds, creds))
}

/// Send `data` on `s`: the common part of send, sendto, sendmsg and sendmmsg.
#[allow(clippy::too_many_arguments)]
fn do_send(
    c: &Ctx,
    f: &OpenFile,
    s: &Arc<Sock>,
    data: &[u8],
    to: Option<UAddr>,
    fds: Vec<Arc<OpenFile>>,
    creds: Option<Ucred>,
    flags: u32,
) -> KResult<usize> {
    if flags & MSG_OOB != 0 {
        return Err(EOPNOTSUPP);
    }
    let dest = match to {
        None => Dest::Peer,
        Some(_) if s.ty == SOCK_STREAM => {
            return Err(if s.is_connected() {
                EISCONN
            } else {
                EOPNOTSUPP
            })
        }
        Some(_) if s.ty == SOCK_SEQPACKET => Dest::Peer,
        Some(a) => {
            if matches!(a, UAddr::Unspec | UAddr::Autobind) {
                return Err(EINVAL);
            }
            Dest::To(resolve(c, &a)?)
        }
    };
    let nonblock = f.nonblock() || flags & MSG_DONTWAIT != 0;
    let r = s.send(c.t, nonblock, data, dest, fds, creds);
    if r == Err(EPIPE) && s.ty == SOCK_STREAM && flags & MSG_NOSIGNAL == 0 {
        c.t.send_signal(SigInfo::user(
            signal::SIGPIPE,
            signal::SI_USER,
            c.t.tgid(),
            0,
        ));
    }
    r
}

fn sendto(c: &Ctx, fd: u64, buf: u64, len: u64, flags: u32, addr: u64, alen: u32) -> SysResult {
    let f = c.fd(fd)?;
    if let Some(s) = netlink_sock(&f) {
        let data = read_buf(c, buf, len)?;
        let to = if addr != 0 {
            read_raw_addr(c, addr, alen)?
        } else {
            vec![]
        };
        return Ok(nl_send(c, &f, &s, &data, &to, flags)? as u64);
    }
    if let Some(s) = inet_sock(&f) {
        let data = read_buf(c, buf, len)?;
        return Ok(inet_send(c, &f, &s, &data, (addr, alen), flags, &[])? as u64);
    }
    let (f, s) = sock_of(c, fd)?;
    let data = read_buf(c, buf, len)?;
    let to = given_addr(addr, alen, |a, l| read_addr(c, a, l))?;
    Ok(do_send(c, &f, &s, &data, to, vec![], None, flags)? as u64)
}

fn sendmsg_one(c: &Ctx, f: &OpenFile, s: &Arc<Sock>, p: u64, flags: u32) -> KResult<usize> {
    let h = read_msghdr(c, p)?;
    let iov = iovecs(c, h.iov, h.iovlen)?;
    let to = given_addr(h.name, h.namelen, |a, l| read_addr(c, a, l))?;
    let (fds, creds) = if h.controllen > 0 {
        if h.controllen > i32::MAX as u64 || h.controllen > OPTMEM_MAX {
            return Err(ENOBUFS);
        }
        let ctl = c.t.mm().read_vec(h.control, h.controllen as usize)?;
        parse_control(c, &ctl)?
    } else {
        (vec![], None)
    };
    let data = gather(c, &iov)?;
    do_send(c, f, s, &data, to, fds, creds, flags)
}

fn sendmsg(c: &Ctx, fd: u64, p: u64, flags: u32) -> SysResult {
    let f = c.fd(fd)?;
    if let Some(s) = netlink_sock(&f) {
        return Ok(nl_sendmsg_one(c, &f, &s, p, flags)? as u64);
    }
    if let Some(s) = inet_sock(&f) {
        return Ok(inet_sendmsg_one(c, &f, &s, p, flags)? as u64);
    }
    let (f, s) = sock_of(c, fd)?;
    Ok(sendmsg_one(c, &f, &s, p, flags)? as u64)
}

fn sendmmsg(c: &Ctx, fd: u64, vec: u64, vlen: u32, flags: u32) -> SysResult {
    let f = c.fd(fd)?;
    let nl = netlink_sock(&f);
    let inet = inet_sock(&f);
    let unix = if inet.is_none() && nl.is_none() {
        Some(unix_sock(&f)?)
    } else {
        None
    };
    mmsg(c, vec, vlen, flags, None, |p, fl| {
        match (&nl, &inet, &unix) {
            (Some(s), _, _) => nl_sendmsg_one(c, &f, s, p, fl),
            (_, Some(s), _) => inet_sendmsg_one(c, &f, s, p, fl),
            (_, _, Some(s)) => sendmsg_one(c, &f, s, p, fl),
            _ => unreachable!("a socket"),
        }
    })
}

/// sendmmsg/recvmmsg over the `vlen` mmsghdrs at `vec`: `one(msghdr address, flags)`
/// for each, writing its msg_len; an error after the first message ends the batch.
/// `timeout` (recvmmsg's, a timespec address or 0) ends the loop once passed.
pub(super) fn mmsg(
    c: &Ctx,
    vec: u64,
    vlen: u32,
    flags: u32,
    timeout: Option<u64>,
    mut one: impl FnMut(u64, u32) -> KResult<usize>,
) -> SysResult {
    let deadline = match timeout {
        Some(tp) if tp != 0 => {
            let t: [i64; 2] = c.t.mm().read_obj(tp)?;
            if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
                return Err(EINVAL);
            }
            Some(std::time::Instant::now() + std::time::Duration::new(t[0] as u64, t[1] as u32))
        }
        _ => None,
    };
    let recv = timeout.is_some();
    let vlen = (vlen as u64).min(UIO_MAXIOV);
    let mut fl = if recv { flags & !MSG_WAITFORONE } else { flags };
    let mut n = 0;
    while n < vlen {
        let p = vec + n * 64;
        match one(p, fl) {
            Ok(k) => c.t.mm().write_obj(p + 56, &(k as u32))?,
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
        n += 1;
        if recv && flags & MSG_WAITFORONE != 0 {
            fl |= MSG_DONTWAIT;
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    Ok(n)
}

fn recv_common(c: &Ctx, f: &OpenFile, s: &Arc<Sock>, want: usize, flags: u32) -> KResult<Recv> {
    let nonblock = f.nonblock() || flags & MSG_DONTWAIT != 0;
    s.recv(c.t, nonblock, want, flags)
}

fn recvfrom(c: &Ctx, fd: u64, buf: u64, len: u64, flags: u32, addr: u64, lenp: u64) -> SysResult {
    let f = c.fd(fd)?;
    let len = buf_len(len)?;
    if let Some(s) = netlink_sock(&f) {
        let nonblock = f.nonblock() || flags & MSG_DONTWAIT != 0;
        let r = s.recv(c.t, nonblock, len, flags)?;
        c.t.mm().write(buf, &r.data)?;
        if addr != 0 {
            write_sockaddr(c, addr, lenp, &r.from)?;
        }
        return Ok(r.ret as u64);
    }
    if let Some(s) = inet_sock(&f) {
        let nonblock = f.nonblock() || flags & MSG_DONTWAIT != 0;
        let r = s.recv(c.t, nonblock, len, flags)?;
        c.t.mm().write(buf, &r.data)?;
        if addr != 0 {
            match r.from {
                Some(a) => write_inet_addr(c, addr, lenp, Some(a))?,
                None => c.t.mm().write_obj(lenp, &0u32)?,
            }
        }
        return Ok(r.ret as u64);
    }
    let (f, s) = sock_of(c, fd)?;
    let r = recv_common(c, &f, &s, len, flags)?;
    c.t.mm().write(buf, &r.data)?;
    if addr != 0 {
        match &r.from {
            Some(n) => write_addr(c, addr, lenp, Some(n))?,
            None => c.t.mm().write_obj(lenp, &0u32)?,
        }
    }
    Ok(r.len as u64)
}

/// Build recvmsg's control data: SCM_CREDENTIALS, then SCM_RIGHTS (installing the files).
/// Returns (bytes, MSG_CTRUNC?).
fn build_control(c: &Ctx, cap: usize, r: Recv, flags: u32) -> KResult<(Vec<u8>, bool)> {
    let mut out = vec![];
    let mut ctrunc = false;
    let cmsg = |out: &mut Vec<u8>, ty: i32, data: &[u8], ctrunc: &mut bool| {
        put_cmsg(out, cap, (SOL_SOCKET, ty), data, ctrunc)
    };
    if let Some(cr) = r.creds {
        cmsg(&mut out, SCM_CREDENTIALS, &cr.to_bytes(), &mut ctrunc);
    }
    if !r.fds.is_empty() {
        let room = cap - out.len();
        let fdmax = if room > 16 { (room - 16) / 4 } else { 0 };
        let cloexec = flags & MSG_CMSG_CLOEXEC != 0;
        let mut fds: Vec<u8> = vec![];
        let total = r.fds.len();
        for file in r.fds.into_iter().take(fdmax) {
            match install(c, file, cloexec) {
                Ok(fd) => fds.extend_from_slice(&fd.to_le_bytes()),
                Err(_) => break,
            }
        }
        if !fds.is_empty() {
            cmsg(&mut out, SCM_RIGHTS, &fds, &mut ctrunc);
        }
        if fds.len() / 4 < total {
            ctrunc = true;
        }
    }
    Ok((out, ctrunc))
}

/// Append one control message (level, type) to `out`, which may grow to `cap` bytes: a
/// message cut short says how much of it there is and sets `ctrunc` (Linux's put_cmsg).
fn put_cmsg(
    out: &mut Vec<u8>,
    cap: usize,
    (level, ty): (i32, i32),
    data: &[u8],
    ctrunc: &mut bool,
) {
    let room = cap.saturating_sub(out.len());
    if room < 16 {
        *ctrunc = true;
        return;
    }
    let len = 16 + data.len();
    let mut b = (len.min(room) as u64).to_le_bytes().to_vec();
    b.extend_from_slice(&level.to_le_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(data);
    if room < len {
        *ctrunc = true;
    }
    b.resize((len + 7) & !7, 0);
    b.truncate(room);
    out.extend_from_slice(&b);
}

fn recvmsg_one(c: &Ctx, f: &OpenFile, s: &Arc<Sock>, p: u64, flags: u32) -> KResult<usize> {
    let h = read_msghdr(c, p)?;
    let iov = iovecs(c, h.iov, h.iovlen)?;
    let want: usize = iov.iter().map(|v| v.1).sum();
    let r = recv_common(c, f, s, want, flags)?;
    let mm = c.t.mm();
    scatter(c, &iov, &r.data)?;
    let mut oflags = flags & MSG_CMSG_CLOEXEC;
    if r.trunc {
        oflags |= MSG_TRUNC;
    }
    if h.name != 0 {
        match &r.from {
            Some(n) => {
                let mut b = (AF_UNIX as u16).to_le_bytes().to_vec();
                b.extend_from_slice(n);
                let k = (h.namelen as usize).min(b.len());
                if k > 0 {
                    mm.write(h.name, &b[..k])?;
                }
                mm.write_obj(p + 8, &(b.len() as u32))?;
            }
            None => mm.write_obj(p + 8, &0u32)?,
        }
    } else {
        mm.write_obj(p + 8, &0u32)?;
    }
    let len = r.len;
    let (ctl, ctrunc) = if h.control == 0 || h.controllen == 0 {
        let lost = r.creds.is_some() || !r.fds.is_empty();
        (vec![], lost)
    } else {
        let cap = h.controllen.min(OPTMEM_MAX) as usize;
        build_control(c, cap, r, flags)?
    };
    if ctrunc {
        oflags |= MSG_CTRUNC;
    }
    if !ctl.is_empty() {
        mm.write(h.control, &ctl)?;
    }
    mm.write_obj(p + 40, &(ctl.len() as u64))?;
    mm.write_obj(p + 48, &oflags)?;
    Ok(len)
}

fn recvmsg(c: &Ctx, fd: u64, p: u64, flags: u32) -> SysResult {
    let f = c.fd(fd)?;
    if let Some(s) = netlink_sock(&f) {
        return Ok(nl_recvmsg_one(c, &f, &s, p, flags)? as u64);
    }
    if let Some(s) = inet_sock(&f) {
        return Ok(inet_recvmsg_one(c, &f, &s, p, flags)? as u64);
    }
    let (f, s) = sock_of(c, fd)?;
    Ok(recvmsg_one(c, &f, &s, p, flags)? as u64)
}

fn recvmmsg(c: &Ctx, fd: u64, vec: u64, vlen: u32, flags: u32, timeout: u64) -> SysResult {
    let f = c.fd(fd)?;
    let nl = netlink_sock(&f);
    let inet = inet_sock(&f);
    let unix = if inet.is_none() && nl.is_none() {
        Some(unix_sock(&f)?)
    } else {
        None
    };
    mmsg(c, vec, vlen, flags, Some(timeout), |p, fl| {
        match (&nl, &inet, &unix) {
            (Some(s), _, _) => nl_recvmsg_one(c, &f, s, p, fl),
            (_, Some(s), _) => inet_recvmsg_one(c, &f, s, p, fl),
            (_, _, Some(s)) => recvmsg_one(c, &f, s, p, fl),
            _ => unreachable!("a socket"),
        }
    })
}

// ---- inet ----

/// The inet socket `fd` refers to: Ok(None) for another socket, ENOTSOCK for no socket.
fn inet_of(c: &Ctx, fd: u64) -> KResult<Option<Arc<InetSock>>> {
    let f = c.fd(fd)?;
    match inet_sock(&f) {
        Some(s) => Ok(Some(s)),
        None => unix_sock(&f).map(|_| None),
    }
}

/// Read a sockaddr_in/sockaddr_in6 for `s`: the address (None: AF_UNSPEC) and the raw family.
fn read_inet_addr(
    c: &Ctx,
    s: &InetSock,
    addr: u64,
    len: u32,
) -> KResult<(Option<SocketAddr>, u16)> {
    let len = len as i32;
    if len < 0 || len as usize > SS_LEN {
        return Err(EINVAL);
    }
    let b = c.t.mm().read_vec(addr, len as usize)?;
    let fam = if b.len() >= 2 {
        u16::from_le_bytes([b[0], b[1]])
    } else {
        0
    };
    Ok((s.parse_addr(&b)?, fam))
}

/// Write a sockaddr for `a` (None: none, length 0) Linux style: at most the caller's
/// length is copied, the full length is reported.
fn write_inet_addr(c: &Ctx, addr: u64, lenp: u64, a: Option<SocketAddr>) -> KResult<()> {
    let b = a.map(InetSock::addr_bytes).unwrap_or_default();
    write_sockaddr(c, addr, lenp, &b)
}

/// Send on an inet socket: sendto, sendmsg, sendmmsg.
fn inet_send(
    c: &Ctx,
    f: &OpenFile,
    s: &InetSock,
    data: &[u8],
    (addr, alen): (u64, u32),
    flags: u32,
    ctl: &[u8],
) -> KResult<usize> {
    let to = if addr != 0 && s.ty != SOCK_STREAM {
        match read_inet_addr(c, s, addr, alen)? {
            (Some(a), _) => Some(a),
            (None, _) => None,
        }
    } else {
        None
    };
    let nonblock = f.nonblock() || flags & MSG_DONTWAIT != 0;
    let r = s.send_ctl(c.t, nonblock, data, to, flags, ctl);
    if r == Err(EPIPE) && s.ty == SOCK_STREAM && flags & MSG_NOSIGNAL == 0 {
        c.t.send_signal(SigInfo::user(
            signal::SIGPIPE,
            signal::SI_USER,
            c.t.tgid(),
            0,
        ));
    }
    r
}

fn inet_sendmsg_one(c: &Ctx, f: &OpenFile, s: &InetSock, p: u64, flags: u32) -> KResult<usize> {
    let h = read_msghdr(c, p)?;
    let iov = iovecs(c, h.iov, h.iovlen)?;
    // TCP looks at no IP-level control messages (Linux's tcp_sendmsg).
    let ctl = if h.controllen > 0 && s.ty != SOCK_STREAM {
        if h.controllen > i32::MAX as u64 || h.controllen > OPTMEM_MAX {
            return Err(ENOBUFS);
        }
        c.t.mm().read_vec(h.control, h.controllen as usize)?
    } else {
        vec![]
    };
    let data = gather(c, &iov)?;
    let (name, namelen) = if h.name != 0 && h.namelen != 0 {
        (h.name, h.namelen)
    } else {
        (0, 0)
    };
    inet_send(c, f, s, &data, (name, namelen), flags, &ctl)
}

fn inet_recvmsg_one(c: &Ctx, f: &OpenFile, s: &InetSock, p: u64, flags: u32) -> KResult<usize> {
    recvmsg_plain(c, f, p, flags, |nonblock, want| {
        let r = s.recv(c.t, nonblock, want, flags)?;
        let from = r.from.map(InetSock::addr_bytes).unwrap_or_default();
        Ok((r.data, from, r.trunc, r.ret, r.cmsgs))
    })
}

/// What a recvmsg_plain receive gives: (data, the sender's address as a sockaddr, empty
/// for none, truncated, return value, control messages as (level, type, data)).
pub(super) type PlainRecv = (Vec<u8>, Vec<u8>, bool, usize, Vec<(i32, i32, Vec<u8>)>);

/// recvmsg(2) on a socket whose control data holds no files or credentials (inet,
/// netlink): `recv(nonblock, wanted bytes)` gives a [`PlainRecv`]; the data is scattered
/// into the iovecs and msg_name, msg_namelen, the control messages, msg_controllen and
/// msg_flags are written back.
pub(super) fn recvmsg_plain(
    c: &Ctx,
    f: &OpenFile,
    p: u64,
    flags: u32,
    recv: impl FnOnce(bool, usize) -> KResult<PlainRecv>,
) -> KResult<usize> {
    let h = read_msghdr(c, p)?;
    let iov = iovecs(c, h.iov, h.iovlen)?;
    let want: usize = iov.iter().map(|v| v.1).sum();
    let nonblock = f.nonblock() || flags & MSG_DONTWAIT != 0;
    let (data, from, trunc, ret, cmsgs) = recv(nonblock, want)?;
    let mm = c.t.mm();
    scatter(c, &iov, &data)?;
    let mut oflags = flags & MSG_CMSG_CLOEXEC;
    if trunc {
        oflags |= MSG_TRUNC;
    }
    if h.name != 0 && !from.is_empty() {
        let k = (h.namelen as usize).min(from.len());
        if k > 0 {
            mm.write(h.name, &from[..k])?;
        }
        mm.write_obj(p + 8, &(from.len() as u32))?;
    } else {
        mm.write_obj(p + 8, &0u32)?;
    }
    let cap = if h.control == 0 {
        0
    } else {
        h.controllen.min(OPTMEM_MAX) as usize
    };
    let (mut ctl, mut ctrunc) = (vec![], false);
    for (level, ty, d) in &cmsgs {
        put_cmsg(&mut ctl, cap, (*level, *ty), d, &mut ctrunc);
    }
    if ctrunc {
        oflags |= MSG_CTRUNC;
    }
    if !ctl.is_empty() {
        mm.write(h.control, &ctl)?;
    }
    mm.write_obj(p + 40, &(ctl.len() as u64))?;
    mm.write_obj(p + 48, &oflags)?;
    Ok(ret)
}

// ---- netlink ----

/// A socket address as given, for netlink (at most sizeof(sockaddr_storage)).
pub(super) fn read_raw_addr(c: &Ctx, addr: u64, len: u32) -> KResult<Vec<u8>> {
    let len = len as i32;
    if len < 0 || len as usize > SS_LEN {
        return Err(EINVAL);
    }
    c.t.mm().read_vec(addr, len as usize)
}

fn nl_send(
    c: &Ctx,
    f: &OpenFile,
    s: &Arc<NetlinkSock>,
    data: &[u8],
    to: &[u8],
    flags: u32,
) -> KResult<usize> {
    if flags & MSG_OOB != 0 {
        return Err(EOPNOTSUPP);
    }
    let nonblock = f.nonblock() || flags & MSG_DONTWAIT != 0;
    s.send(c.t, data, to, nonblock)
}

fn nl_sendmsg_one(
    c: &Ctx,
    f: &OpenFile,
    s: &Arc<NetlinkSock>,
    p: u64,
    flags: u32,
) -> KResult<usize> {
    let h = read_msghdr(c, p)?;
    let iov = iovecs(c, h.iov, h.iovlen)?;
    let to = given_addr(h.name, h.namelen, |a, l| read_raw_addr(c, a, l))?.unwrap_or_default();
    let data = gather(c, &iov)?;
    nl_send(c, f, s, &data, &to, flags)
}

fn nl_recvmsg_one(
    c: &Ctx,
    f: &OpenFile,
    s: &Arc<NetlinkSock>,
    p: u64,
    flags: u32,
) -> KResult<usize> {
    recvmsg_plain(c, f, p, flags, |nonblock, want| {
        let r = s.recv(c.t, nonblock, want, flags)?;
        Ok((r.data, r.from, r.trunc, r.ret, vec![]))
    })
}

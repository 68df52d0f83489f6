//! Socket system calls on host network sockets (`--network host`, see
//! [`crate::net::hostinet`]): socket(2) for AF_INET/AF_INET6 in that mode, and every
//! call whose descriptor is such a socket. Everything else falls through to sys_socket.

use super::sys_socket::{
    buf_len, check_type, gather, given_addr, install, iovecs, mmsg, read_buf, read_msghdr,
    read_optval, read_raw_addr, recvmsg_plain, write_sockaddr,
};
use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::net::hostinet::{self, host_socket_file, HostSock};
use crate::net::*;
use crate::vfs::{OpenFile, O_NONBLOCK};

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    if !matches!(nr, 41..=52 | 54 | 55 | 288 | 299 | 307) {
        return None;
    }
    let net = hostinet::of(&c.t.kernel)?.clone();
    let a = |i| c.arg(i);
    let (a0, a1, a2, a3, a4, a5) = (a(0), a(1), a(2), a(3), a(4), a(5));
    if nr == 41 {
        let domain = a0 as i32;
        if domain != AF_INET && domain != AF_INET6 {
            return None;
        }
        return Some(socket(c, &net, domain, a1 as i32, a2 as i32));
    }
    let f = c.fd(a0).ok()?;
    let s = hostinet::host_sock(&f)?;
    Some(match nr {
        42 => connect(c, &f, &s, a1, a2 as u32),
        43 => accept(c, &f, &s, a1, a2, 0),
        288 => accept(c, &f, &s, a1, a2, a3 as i32),
        44 => sendto(c, &f, &s, (a1, a2), a3 as u32, a4, a5 as u32),
        45 => recvfrom(c, &f, &s, (a1, a2), a3 as u32, a4, a5),
        46 => sendmsg(c, &f, &s, a1, a2 as u32).map(|n| n as u64),
        47 => recvmsg(c, &f, &s, a1, a2 as u32).map(|n| n as u64),
        48 => s.shutdown(a1 as i32).map(|_| 0),
        49 => read_raw_addr(c, a1, a2 as u32).and_then(|b| s.bind(c.t, &b).map(|_| 0)),
        50 => s.listen(a1 as i32).map(|_| 0),
        51 | 52 => s
            .name(nr == 52)
            .and_then(|b| write_sockaddr(c, a1, a2, &b).map(|_| 0)),
        54 => setsockopt(c, &s, a1 as i32, a2 as i32, a3, a4 as u32),
        55 => getsockopt(c, &s, a1 as i32, a2 as i32, a3, a4),
        299 => mmsg(c, a1, a2 as u32, a3 as u32, Some(a4), |p, fl| {
            recvmsg(c, &f, &s, p, fl)
        }),
        307 => mmsg(c, a1, a2 as u32, a3 as u32, None, |p, fl| {
            sendmsg(c, &f, &s, p, fl)
        }),
        _ => unreachable!("filtered above"),
    })
}

fn socket(c: &Ctx, net: &Arc<hostinet::HostNet>, domain: i32, ty: i32, proto: i32) -> SysResult {
    let (base, flags) = check_type(c, domain, ty, proto, false)?;
    if base == SOCK_RAW {
        // Raw sockets are the netstack's; host raw sockets are not passed through.
        crate::net::inet::unsupported(&c.t.kernel, "raw sockets with --network host".into());
        return Err(EPERM);
    }
    let s = HostSock::new(net, domain, base, proto, c.t.creds().fsuid)?;
    let f = host_socket_file(s, flags as u32 & O_NONBLOCK, c.t);
    Ok(install(c, f, flags & SOCK_CLOEXEC != 0)? as u64)
}

fn nonblock(f: &OpenFile, flags: u32) -> bool {
    f.nonblock() || flags & MSG_DONTWAIT != 0
}

fn connect(c: &Ctx, f: &OpenFile, s: &HostSock, addr: u64, len: u32) -> SysResult {
    let a = read_raw_addr(c, addr, len)?;
    s.connect(c.t, &a, f.nonblock())?;
    Ok(0)
}

fn accept(c: &Ctx, f: &OpenFile, s: &HostSock, addr: u64, lenp: u64, flags: i32) -> SysResult {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let (ns, peer) = s.accept(c.t, f.nonblock())?;
    let nf = host_socket_file(ns, flags as u32 & O_NONBLOCK, c.t);
    let nfd = install(c, nf, flags & SOCK_CLOEXEC != 0)?;
    if addr != 0 {
        if let Err(e) = write_sockaddr(c, addr, lenp, &peer) {
            c.t.files().remove(nfd);
            return Err(e);
        }
    }
    Ok(nfd as u64)
}

/// Send, raising SIGPIPE (the host never does: MSG_NOSIGNAL) as Linux would.
fn send(
    c: &Ctx,
    f: &OpenFile,
    s: &HostSock,
    data: &[u8],
    to: Option<Vec<u8>>,
    flags: u32,
) -> KResult<usize> {
    let r = s.send(c.t, nonblock(f, flags), data, to.as_deref(), flags);
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

fn sendto(
    c: &Ctx,
    f: &OpenFile,
    s: &HostSock,
    (buf, len): (u64, u64),
    flags: u32,
    addr: u64,
    alen: u32,
) -> SysResult {
    let data = read_buf(c, buf, len)?;
    let to = given_addr(addr, alen, |a, l| read_raw_addr(c, a, l))?;
    Ok(send(c, f, s, &data, to, flags)? as u64)
}

fn sendmsg(c: &Ctx, f: &OpenFile, s: &HostSock, p: u64, flags: u32) -> KResult<usize> {
    let h = read_msghdr(c, p)?;
    let iov = iovecs(c, h.iov, h.iovlen)?;
    if h.controllen > 0 && h.control != 0 {
        crate::net::inet::unsupported(
            &c.t.kernel,
            "control messages in sendmsg on host network sockets".into(),
        );
    }
    let to = given_addr(h.name, h.namelen, |a, l| read_raw_addr(c, a, l))?;
    let data = gather(c, &iov)?;
    send(c, f, s, &data, to, flags)
}

fn recvfrom(
    c: &Ctx,
    f: &OpenFile,
    s: &HostSock,
    (buf, len): (u64, u64),
    flags: u32,
    addr: u64,
    lenp: u64,
) -> SysResult {
    let (data, from, _, ret) = s.recv(c.t, nonblock(f, flags), buf_len(len)?, flags)?;
    c.t.mm().write(buf, &data)?;
    if addr != 0 {
        if from.is_empty() {
            c.t.mm().write_obj(lenp, &0u32)?;
        } else {
            write_sockaddr(c, addr, lenp, &from)?;
        }
    }
    Ok(ret as u64)
}

fn recvmsg(c: &Ctx, f: &OpenFile, s: &HostSock, p: u64, flags: u32) -> KResult<usize> {
    recvmsg_plain(c, f, p, flags, |nonblock, want| {
        let (data, from, trunc, ret) = s.recv(c.t, nonblock, want, flags)?;
        Ok((data, from, trunc, ret, Vec::new()))
    })
}

fn setsockopt(c: &Ctx, s: &HostSock, level: i32, name: i32, val: u64, len: u32) -> SysResult {
    let v = read_optval(c, val, len)?;
    s.setsockopt(c.t, level, name, &v)?;
    Ok(0)
}

fn getsockopt(c: &Ctx, s: &HostSock, level: i32, name: i32, val: u64, lenp: u64) -> SysResult {
    let mm = c.t.mm();
    let len: i32 = mm.read_obj(lenp)?;
    if len < 0 {
        return Err(EINVAL);
    }
    let v = s.getsockopt(c.t, level, name, len as usize)?;
    if !v.is_empty() {
        mm.write(val, &v)?;
    }
    mm.write_obj(lenp, &(v.len() as u32))?;
    Ok(0)
}

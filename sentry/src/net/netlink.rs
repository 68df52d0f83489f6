//! AF_NETLINK sockets, NETLINK_ROUTE and NETLINK_SOCK_DIAG (SOCK_RAW or SOCK_DGRAM):
//! port ids (one space per protocol), bind, connect, datagrams between the sandbox's
//! netlink sockets, and requests to the kernel answered by [`super::rtnetlink`] from the
//! netstack's interfaces and routes, or by [`super::sock_diag`] from the sandbox's sockets.

use super::*;
use super::{rtnetlink, sock_diag};
use crate::kernel::{cap, Kernel};
use crate::waitq::WaitQueue;
use std::collections::{HashMap, VecDeque};
use std::sync::Weak;
use std::time::{Duration, Instant};

pub const AF_NETLINK: i32 = 16;
pub const NETLINK_ROUTE: i32 = 0;
pub const NETLINK_SOCK_DIAG: i32 = 4;
pub const SOL_NETLINK: i32 = 270;

const NETLINK_ADD_MEMBERSHIP: i32 = 1;
const NETLINK_DROP_MEMBERSHIP: i32 = 2;
const NETLINK_PKTINFO: i32 = 3;
const NETLINK_BROADCAST_ERROR: i32 = 4;
const NETLINK_NO_ENOBUFS: i32 = 5;
const NETLINK_LIST_MEMBERSHIPS: i32 = 9;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
const NETLINK_GET_STRICT_CHK: i32 = 12;

/// sizeof(struct sockaddr_nl).
pub const NL_ADDR_LEN: usize = 12;
/// RTNLGRP_MAX and SKNLGRP_MAX: the groups NETLINK_ROUTE and NETLINK_SOCK_DIAG have.
const GROUPS_MAX: u32 = 36;
const DIAG_GROUPS_MAX: u32 = 4;
/// Linux's default and maximum socket buffer sizes.
const BUF_DEFAULT: usize = 212_992;
const BUF_MAX: usize = 212_992;
/// Where autobind's port ids start when the tgid is taken (counting down).
const ROVER_START: i32 = -4096;

/// The SOL_NETLINK options that are plain on/off flags, kept in `State::flags`.
const FLAG_OPTS: [i32; 6] = [
    NETLINK_PKTINFO,
    NETLINK_BROADCAST_ERROR,
    NETLINK_NO_ENOBUFS,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_GET_STRICT_CHK,
];

type Registry = Arc<Mutex<HashMap<u32, Weak<NetlinkSock>>>>;

/// Per sandbox: the bound sockets by protocol and port id, and how many are open.
#[derive(Clone, Default)]
struct Registries {
    by_proto: Arc<Mutex<HashMap<i32, Registry>>>,
    open: Arc<AtomicU64>,
}

fn registries(k: &Arc<Kernel>) -> Registries {
    static ALL: Mutex<Vec<(Weak<Kernel>, Registries)>> = Mutex::new(Vec::new());
    per_kernel(&ALL, k, Registries::default)
}

/// The bound sockets of `protocol` in the sandbox `k` runs, by port id.
fn registry(k: &Arc<Kernel>, protocol: i32) -> Registry {
    registries(k)
        .by_proto
        .lock()
        .entry(protocol)
        .or_default()
        .clone()
}

/// The sandbox's open netlink sockets (for /proc/net/sockstat).
pub fn open_count(k: &Arc<Kernel>) -> usize {
    registries(k).open.load(Ordering::Relaxed) as usize
}

/// A queued datagram: who sent it (port id, 0 for the kernel), to which group, the bytes.
struct Dgram {
    from: u32,
    group: u32,
    data: Vec<u8>,
}

struct State {
    /// 0: not bound yet.
    portid: u32,
    /// Subscribed multicast groups (bit n-1 for group n).
    groups: u64,
    dst: (u32, u32),
    rx: VecDeque<Dgram>,
    rx_bytes: usize,
    rcvbuf: usize,
    sndbuf: usize,
    rcvtimeo: Option<Duration>,
    sndtimeo: Option<Duration>,
    /// NETLINK_* flag options by name, and SO_PASSCRED.
    flags: HashMap<i32, bool>,
    passcred: bool,
    err: i32,
}

/// An AF_NETLINK socket.
pub struct NetlinkSock {
    pub ty: i32,
    pub protocol: i32,
    pub ino: u64,
    pub wq: WaitQueue,
    reg: Registry,
    open: Arc<AtomicU64>,
    st: Mutex<State>,
}

/// What a receive got.
pub struct NlRecv {
    pub data: Vec<u8>,
    pub ret: usize,
    pub trunc: bool,
    /// sockaddr_nl of the sender.
    pub from: Vec<u8>,
}

fn nl_addr(pid: u32, groups: u32) -> Vec<u8> {
    let mut b = (AF_NETLINK as u16).to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&pid.to_le_bytes());
    b.extend_from_slice(&groups.to_le_bytes());
    b
}

/// A sockaddr_nl: (nl_pid, nl_groups), or EINVAL as netlink_bind/connect/sendmsg check.
fn parse_addr(b: &[u8]) -> KResult<Option<(u32, u32)>> {
    if b.len() < 2 {
        return Err(EINVAL);
    }
    let fam = u16::from_le_bytes([b[0], b[1]]) as i32;
    if fam == AF_UNSPEC {
        return Ok(None);
    }
    if fam != AF_NETLINK || b.len() < NL_ADDR_LEN {
        return Err(EINVAL);
    }
    let pid = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    let groups = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    Ok(Some((pid, groups)))
}

impl NetlinkSock {
    /// socket(2) with checked arguments.
    pub fn new(k: &Arc<Kernel>, ty: i32, protocol: i32) -> Arc<NetlinkSock> {
        let open = registries(k).open;
        open.fetch_add(1, Ordering::Relaxed);
        Arc::new(NetlinkSock {
            ty,
            protocol,
            ino: next_ino(),
            wq: WaitQueue::default(),
            reg: registry(k, protocol),
            open,
            st: Mutex::new(State {
                portid: 0,
                groups: 0,
                dst: (0, 0),
                rx: VecDeque::new(),
                rx_bytes: 0,
                rcvbuf: BUF_DEFAULT,
                sndbuf: BUF_DEFAULT,
                rcvtimeo: None,
                sndtimeo: None,
                flags: HashMap::new(),
                passcred: false,
                err: 0,
            }),
        })
    }

    /// Give the socket a port id: the tgid if free, else -4096, -4097, ...
    fn autobind(self: &Arc<Self>, t: &Task, st: &mut State) -> KResult<()> {
        if st.portid != 0 {
            return Ok(());
        }
        let mut reg = self.reg.lock();
        reg.retain(|_, w| w.strong_count() > 0);
        let mut id = t.tgid();
        while reg.contains_key(&(id as u32)) || id == 0 {
            id = if id > 0 { ROVER_START } else { id - 1 };
        }
        reg.insert(id as u32, Arc::downgrade(self));
        st.portid = id as u32;
        Ok(())
    }

    pub fn bind(self: &Arc<Self>, t: &Task, b: &[u8]) -> KResult<()> {
        let Some((pid, mut groups)) = parse_addr(b)? else {
            return Err(EINVAL);
        };
        if groups != 0 {
            self.may_listen(t)?;
            groups &= (1u64 << self.groups_max()).wrapping_sub(1) as u32;
        }
        let mut st = self.st.lock();
        if st.portid != 0 {
            if st.portid != pid && pid != 0 {
                return Err(EINVAL);
            }
        } else if pid != 0 {
            let mut reg = self.reg.lock();
            reg.retain(|_, w| w.strong_count() > 0);
            if reg.contains_key(&pid) {
                return Err(EADDRINUSE);
            }
            reg.insert(pid, Arc::downgrade(self));
            st.portid = pid;
        } else {
            self.autobind(t, &mut st)?;
        }
        st.groups = (st.groups & !0xffff_ffff) | groups as u64;
        Ok(())
    }

    pub fn connect(self: &Arc<Self>, t: &Task, b: &[u8]) -> KResult<()> {
        let mut st = self.st.lock();
        let Some((pid, groups)) = parse_addr(b)? else {
            st.dst = (0, 0);
            return Ok(());
        };
        if groups != 0 && !t.creds().has_cap(cap::NET_ADMIN) {
            return Err(EPERM);
        }
        self.autobind(t, &mut st)?;
        st.dst = (pid, groups);
        Ok(())
    }

    /// netlink_allowed(NL_CFG_F_NONROOT_RECV): anyone may join NETLINK_ROUTE's groups,
    /// only CAP_NET_ADMIN NETLINK_SOCK_DIAG's.
    fn may_listen(&self, t: &Task) -> KResult<()> {
        if self.protocol == NETLINK_SOCK_DIAG && !t.creds().has_cap(cap::NET_ADMIN) {
            return Err(EPERM);
        }
        Ok(())
    }

    fn groups_max(&self) -> u32 {
        if self.protocol == NETLINK_SOCK_DIAG {
            DIAG_GROUPS_MAX
        } else {
            GROUPS_MAX
        }
    }

    pub fn name(&self) -> Vec<u8> {
        let st = self.st.lock();
        nl_addr(st.portid, st.groups as u32)
    }

    pub fn peer(&self) -> Vec<u8> {
        let st = self.st.lock();
        let g = st.dst.1;
        nl_addr(st.dst.0, if g == 0 { 0 } else { 1 << (g.trailing_zeros()) })
    }

    /// sendmsg(2): `to` is the raw msg_name (empty: the connected destination).
    pub fn send(
        self: &Arc<Self>,
        t: &Task,
        data: &[u8],
        to: &[u8],
        nonblock: bool,
    ) -> KResult<usize> {
        let mut st = self.st.lock();
        let (dpid, dgroups) = if to.is_empty() {
            st.dst
        } else {
            let (p, g) = parse_addr(to)?.ok_or(EINVAL)?;
            if to.len() < NL_ADDR_LEN {
                return Err(EINVAL);
            }
            if (p != 0 || g != 0) && !t.creds().has_cap(cap::NET_ADMIN) {
                return Err(EPERM);
            }
            (p, g)
        };
        self.autobind(t, &mut st)?;
        if data.len() + 32 > st.sndbuf {
            return Err(EMSGSIZE);
        }
        let me = st.portid;
        let cap_ack = st.flags.get(&NETLINK_CAP_ACK).copied().unwrap_or(false);
        drop(st);
        if dgroups != 0 {
            let group = dgroups.trailing_zeros() + 1;
            let peers: Vec<Arc<NetlinkSock>> = self
                .reg
                .lock()
                .values()
                .filter_map(|w| w.upgrade())
                .collect();
            for p in peers {
                if p.st.lock().groups & (1 << (group - 1)) != 0 && !Arc::ptr_eq(&p, self) {
                    p.deliver(me, group, data.to_vec(), false);
                }
            }
        }
        if dpid != 0 {
            let peer = self.reg.lock().get(&dpid).and_then(|w| w.upgrade());
            let peer = peer.ok_or(ECONNREFUSED)?;
            let timeo = self.st.lock().sndtimeo;
            let full = || {
                let s = peer.st.lock();
                s.rx_bytes + data.len() > s.rcvbuf && !s.rx.is_empty()
            };
            if full() {
                if nonblock || timeo == Some(Duration::ZERO) {
                    return Err(EAGAIN);
                }
                let deadline = timeo.map(|d| Instant::now() + d);
                let r = t.block_on(&[&peer.wq], deadline, || (!full()).then_some(Ok(())));
                match r {
                    Err(e) if e == ETIMEDOUT => return Err(EAGAIN),
                    Err(e) if e == ERESTARTSYS && timeo.is_some() => return Err(EINTR),
                    r => r?,
                }
            }
            peer.deliver(me, 0, data.to_vec(), true);
            return Ok(data.len());
        }
        if dgroups != 0 {
            return Ok(data.len());
        }
        // To the kernel.
        if self.protocol == NETLINK_SOCK_DIAG {
            let out = rtnetlink::process_with(data, me, cap_ack, |req, h| {
                sock_diag::handle(t, req, h, me)
            });
            for d in out {
                self.deliver(0, 0, d, true);
            }
            return Ok(data.len());
        }
        let (ifaces, routes) = super::ifaces(&t.kernel);
        let k = t.kernel.clone();
        let unsupported = move |w: String| inet::unsupported(&k, w);
        let cx = rtnetlink::Ctx {
            ifaces: &ifaces,
            routes: &routes,
            net_admin: t.creds().has_cap(cap::NET_ADMIN),
            unsupported: &unsupported,
        };
        for d in rtnetlink::process(&cx, data, me, cap_ack) {
            self.deliver(0, 0, d, true);
        }
        Ok(data.len())
    }

    /// Queue a datagram (beyond the receive buffer, a multicast one is dropped with
    /// ENOBUFS for the receiver, as Linux does).
    fn deliver(&self, from: u32, group: u32, data: Vec<u8>, unicast: bool) {
        {
            let mut st = self.st.lock();
            if !unicast && st.rx_bytes + data.len() > st.rcvbuf {
                if !st.flags.get(&NETLINK_NO_ENOBUFS).copied().unwrap_or(false) {
                    st.err = libc::ENOBUFS;
                }
            } else {
                st.rx_bytes += data.len();
                st.rx.push_back(Dgram { from, group, data });
            }
        }
        self.wq.notify_all();
    }

    /// recvmsg(2).
    pub fn recv(&self, t: &Task, nonblock: bool, want: usize, flags: u32) -> KResult<NlRecv> {
        if flags & MSG_OOB != 0 {
            return Err(EOPNOTSUPP);
        }
        let peek = flags & MSG_PEEK != 0;
        let check = || {
            let mut st = self.st.lock();
            if st.err != 0 {
                let e = st.err;
                st.err = 0;
                return Some(Err(Errno(e)));
            }
            let d = if peek {
                let d = st.rx.front()?;
                Dgram {
                    from: d.from,
                    group: d.group,
                    data: d.data.clone(),
                }
            } else {
                let d = st.rx.pop_front()?;
                st.rx_bytes -= d.data.len();
                d
            };
            Some(Ok(d))
        };
        let timeo = self.st.lock().rcvtimeo;
        let d = if nonblock || timeo == Some(Duration::ZERO) {
            check().unwrap_or(Err(EAGAIN))
        } else {
            let deadline = timeo.map(|d| Instant::now() + d);
            match t.block_on(&[&self.wq], deadline, check) {
                Err(e) if e == ETIMEDOUT => Err(EAGAIN),
                Err(e) if e == ERESTARTSYS && timeo.is_some() => Err(EINTR),
                r => r,
            }
        }?;
        if !peek {
            // Room for blocked senders.
            self.wq.notify_all();
        }
        let full = d.data.len();
        let mut data = d.data;
        data.truncate(want);
        Ok(NlRecv {
            ret: if flags & MSG_TRUNC != 0 {
                full
            } else {
                data.len()
            },
            trunc: full > data.len(),
            data,
            from: nl_addr(d.from, if d.group == 0 { 0 } else { 1 << (d.group - 1) }),
        })
    }

    pub fn poll(&self) -> u32 {
        let st = self.st.lock();
        let mut ev = POLLOUT | POLLWRNORM;
        if !st.rx.is_empty() {
            ev |= POLLIN | POLLRDNORM;
        }
        if st.err != 0 {
            ev |= POLLERR;
        }
        ev
    }

    pub fn setsockopt(&self, t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        let mut st = self.st.lock();
        match level {
            SOL_NETLINK => {
                // netlink_setsockopt reads an int only when there are 4 bytes.
                let v = if val.len() >= 4 { opt_int(val)? } else { 0 };
                match name {
                    NETLINK_ADD_MEMBERSHIP | NETLINK_DROP_MEMBERSHIP => {
                        self.may_listen(t)?;
                        let g = v as u32;
                        if g == 0 || g > self.groups_max() {
                            return Err(EINVAL);
                        }
                        if name == NETLINK_ADD_MEMBERSHIP {
                            st.groups |= 1 << (g - 1);
                        } else {
                            st.groups &= !(1 << (g - 1));
                        }
                    }
                    _ if FLAG_OPTS.contains(&name) => {
                        st.flags.insert(name, v != 0);
                    }
                    _ => {
                        inet::unsupported(&t.kernel, format!("netlink socket option {name}"));
                        return Err(ENOPROTOOPT);
                    }
                }
            }
            SOL_SOCKET => {
                let privileged = t.creds().has_cap(cap::NET_ADMIN);
                match name {
                    SO_RCVBUF | SO_SNDBUF | SO_RCVBUFFORCE | SO_SNDBUFFORCE => {
                        let v = opt_int(val)?;
                        let v = match name {
                            SO_RCVBUF | SO_SNDBUF => (v as u32 as usize).min(BUF_MAX),
                            _ if privileged => v.max(0) as usize,
                            _ => return Err(EPERM),
                        };
                        let rcv = matches!(name, SO_RCVBUF | SO_RCVBUFFORCE);
                        let b =
                            (v.min(i32::MAX as usize / 2) * 2).max(if rcv { 2304 } else { 4608 });
                        if rcv {
                            st.rcvbuf = b;
                        } else {
                            st.sndbuf = b;
                        }
                    }
                    SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW => st.rcvtimeo = opt_timeout(val)?,
                    SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW => st.sndtimeo = opt_timeout(val)?,
                    SO_PASSCRED => st.passcred = opt_int(val)? != 0,
                    _ => {
                        inet::unsupported(
                            &t.kernel,
                            format!("setsockopt(SOL_SOCKET, {name}) on netlink sockets"),
                        );
                        return Err(ENOPROTOOPT);
                    }
                }
            }
            _ => return Err(ENOPROTOOPT),
        }
        Ok(())
    }

    pub fn getsockopt(&self, t: &Task, level: i32, name: i32, len: usize) -> KResult<Vec<u8>> {
        let st = self.st.lock();
        let int = |v: i32| v.to_le_bytes().to_vec();
        let tv = |d: Option<Duration>| {
            let (s, us) = d.map_or((0i64, 0i64), |d| {
                (d.as_secs() as i64, d.subsec_micros() as i64)
            });
            let mut b = s.to_le_bytes().to_vec();
            b.extend_from_slice(&us.to_le_bytes());
            b
        };
        let mut v = match level {
            SOL_NETLINK => match name {
                NETLINK_LIST_MEMBERSHIPS => {
                    // The groups as a u32 array; the length says how much there is.
                    let b = (st.groups as u32)
                        .to_le_bytes()
                        .iter()
                        .chain(((st.groups >> 32) as u32).to_le_bytes().iter())
                        .copied()
                        .collect::<Vec<u8>>();
                    let mut b = b;
                    b.truncate(len & !3);
                    return Ok(b);
                }
                _ if FLAG_OPTS.contains(&name) => {
                    if len < 4 {
                        return Err(EINVAL);
                    }
                    int(st.flags.get(&name).copied().unwrap_or(false) as i32)
                }
                _ => return Err(ENOPROTOOPT),
            },
            SOL_SOCKET => match name {
                SO_TYPE => int(self.ty),
                SO_DOMAIN => int(AF_NETLINK),
                SO_PROTOCOL => int(self.protocol),
                SO_RCVBUF => int(st.rcvbuf as i32),
                SO_SNDBUF => int(st.sndbuf as i32),
                SO_ERROR => {
                    drop(st);
                    let mut s = self.st.lock();
                    let e = s.err;
                    s.err = 0;
                    let mut b = int(e);
                    b.truncate(len);
                    return Ok(b);
                }
                SO_PASSCRED => int(st.passcred as i32),
                SO_ACCEPTCONN => int(0),
                SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW => tv(st.rcvtimeo),
                SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW => tv(st.sndtimeo),
                _ => {
                    inet::unsupported(
                        &t.kernel,
                        format!("getsockopt(SOL_SOCKET, {name}) on netlink sockets"),
                    );
                    return Err(ENOPROTOOPT);
                }
            },
            _ => return Err(ENOPROTOOPT),
        };
        v.truncate(len);
        Ok(v)
    }
}

impl Drop for NetlinkSock {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        let pid = self.st.get_mut().portid;
        if pid != 0 {
            let mut reg = self.reg.lock();
            if reg.get(&pid).is_some_and(|w| w.strong_count() == 0) {
                reg.remove(&pid);
            }
        }
    }
}

/// The open-file face of a netlink socket.
pub struct NetlinkFile {
    pub sock: Arc<NetlinkSock>,
}

impl FileOps for NetlinkFile {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let r = self.sock.recv(t, f.nonblock(), buf.len(), 0)?;
        buf[..r.data.len()].copy_from_slice(&r.data);
        Ok(r.data.len())
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        self.sock.send(t, buf, &[], f.nonblock())
    }

    fn poll(&self) -> u32 {
        self.sock.poll()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.sock.wq)
    }

    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        super::ifreq::ioctl(t, cmd, arg)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

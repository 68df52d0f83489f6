//! `--network host`: AF_INET and AF_INET6 sockets that are host sockets, created and
//! operated by the Sentry in the network namespace rvisor was started in, as gVisor's
//! hostinet does. Weaker isolation than the netstack: the host kernel's TCP/IP stack
//! parses the workload's packets.
//!
//! Every host socket is non-blocking; a blocking call retries the host operation when
//! the socket's wait queue is notified. One "hostinet" thread per sandbox waits in
//! epoll (edge-triggered) on every host socket and notifies its wait queue, so blocked
//! tasks, poll, select and epoll sleep on wait queues as they do for netstack sockets.
//! Signals are never raised by the host (MSG_NOSIGNAL); the caller raises SIGPIPE.
//! Options pass through to the host only from an allow-list (others: ENOPROTOOPT,
//! logged); control messages are neither passed in nor out.
//!
//! Interfaces, addresses and routes are a snapshot `rvisor boot` takes with netlink
//! before the Sentry is confined (as gVisor's hostinet Stack reads them at start);
//! netlink dumps, SIOCGIF* and /proc/net answer from it through the same code as for
//! the netstack. The smaller and safer of the two designs: the seccomp filter needs no
//! AF_NETLINK socket and the workload never talks to the host's rtnetlink, at the price
//! of not seeing later changes on the host.

use super::*;
use crate::kernel::Kernel;
use crate::waitq::WaitQueue;
pub use netstack::{Counters, HwKind, IfaceInfo, RouteInfo, RouteKind};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Weak;
use std::time::{Duration, Instant};

const CAP_NET_BIND_SERVICE: u32 = 10;
const IPPROTO_IP: i32 = 0;
const IPPROTO_IPV6: i32 = 41;
/// sizeof(struct sockaddr_storage).
const SS_LEN: usize = 128;
/// The most one receive copies out per host call (a bound on the bounce buffer).
const RECV_CHUNK: usize = 4 << 20;
/// MSG_* flags handed to the host's send and receive calls.
const SEND_FLAGS: u32 = MSG_OOB | 0x4 /* MSG_DONTROUTE */ | MSG_EOR | 0x8000 /* MSG_MORE */;
const RECV_FLAGS: u32 = MSG_OOB | MSG_PEEK | MSG_TRUNC;

/// The host network of a sandbox: the interface snapshot and the readiness pump.
pub struct HostNet {
    pub ifaces: Vec<IfaceInfo>,
    pub routes: Vec<RouteInfo>,
    epoll: OwnedFd,
    queues: Mutex<HashMap<u64, Weak<WaitQueue>>>,
    next: AtomicU64,
    /// The sandbox's host sockets, for /proc/net and sock_diag.
    socks: Mutex<Vec<Weak<HostSock>>>,
}

/// The host network of the sandbox `k` runs, when it has one (`--network host`): the
/// one place that decides which backend AF_INET/AF_INET6 sockets get.
pub fn of(k: &Kernel) -> Option<&Arc<HostNet>> {
    k.hostnet.get()
}

impl HostNet {
    /// Make the epoll set and start the thread that wakes sockets' waiters. Called
    /// before the Sentry is confined.
    pub fn start(ifaces: Vec<IfaceInfo>, routes: Vec<RouteInfo>) -> std::io::Result<Arc<HostNet>> {
        // SAFETY: epoll_create1 with a flag; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = Arc::new(HostNet {
            ifaces,
            routes,
            // SAFETY: a fresh descriptor we own.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            queues: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            socks: Mutex::new(Vec::new()),
        });
        let me = n.clone();
        std::thread::Builder::new()
            .name("hostinet".into())
            .spawn(move || me.pump())?;
        Ok(n)
    }

    fn pump(&self) {
        // Signals are for the task threads.
        // SAFETY: sigfillset/pthread_sigmask on a local set.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        }
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            // SAFETY: epoll_wait fills at most evs.len() entries of our array.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    evs.as_mut_ptr(),
                    evs.len() as i32,
                    -1,
                )
            };
            if n <= 0 {
                continue;
            }
            let qs: Vec<Arc<WaitQueue>> = {
                let m = self.queues.lock();
                evs[..n as usize]
                    .iter()
                    .filter_map(|e| m.get(&{ e.u64 }).and_then(Weak::upgrade))
                    .collect()
            };
            for q in qs {
                q.notify_all();
            }
        }
    }

    /// The sandbox's open host sockets, oldest first.
    pub fn sockets(&self) -> Vec<Arc<HostSock>> {
        self.socks.lock().iter().filter_map(Weak::upgrade).collect()
    }

    fn register(&self, fd: i32, wq: &Arc<WaitQueue>) -> KResult<u64> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.queues.lock().insert(key, Arc::downgrade(wq));
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN
                | libc::EPOLLOUT
                | libc::EPOLLPRI
                | libc::EPOLLRDHUP
                | libc::EPOLLET) as u32,
            u64: key,
        };
        // SAFETY: epoll_ctl reads one epoll_event.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0
        {
            self.queues.lock().remove(&key);
            return Err(last());
        }
        Ok(key)
    }
}

/// A host socket's result: the byte count, or the host's errno (EINTR retried).
fn host(mut f: impl FnMut() -> isize) -> KResult<usize> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = last();
        if e != EINTR {
            return Err(e);
        }
    }
}

/// A socket address as given (length-checked as Linux's move_addr_to_kernel does).
pub fn check_addr(b: &[u8]) -> KResult<()> {
    if b.len() > SS_LEN {
        return Err(EINVAL);
    }
    Ok(())
}

/// A host AF_INET/AF_INET6 socket.
pub struct HostSock {
    fd: OwnedFd,
    pub family: i32,
    pub ty: i32,
    pub protocol: i32,
    pub ino: u64,
    /// The owner /proc/net shows (the creator's fsuid).
    pub uid: u32,
    pub wq: Arc<WaitQueue>,
    net: Arc<HostNet>,
    key: u64,
    /// SO_RCVTIMEO, SO_SNDTIMEO: the Sentry blocks, so it keeps them.
    timeo: Mutex<(Option<Duration>, Option<Duration>)>,
    /// Options remembered but not given to the host (IP_RECVERR, IPV6_RECVERR).
    kept: Mutex<HashMap<(i32, i32), i32>>,
}

impl Drop for HostSock {
    fn drop(&mut self) {
        self.net.queues.lock().remove(&self.key);
        // The descriptor leaves the epoll set when it is closed.
    }
}

impl HostSock {
    /// socket(2) on the host; `ty` is the base type, arguments already checked.
    pub fn new(
        net: &Arc<HostNet>,
        family: i32,
        ty: i32,
        protocol: i32,
        uid: u32,
    ) -> KResult<Arc<HostSock>> {
        // The Sentry's seccomp filter kills it for any other host socket.
        let inet = family == libc::AF_INET || family == libc::AF_INET6;
        if !inet || !(ty == libc::SOCK_STREAM || ty == libc::SOCK_DGRAM) {
            return Err(EPERM);
        }
        let fd = host(|| {
            // SAFETY: plain socket(2).
            unsafe {
                libc::socket(
                    family,
                    ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    protocol,
                ) as isize
            }
        })?;
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Self::wrap(net, fd, (family, ty, protocol), uid)
    }

    fn wrap(
        net: &Arc<HostNet>,
        fd: OwnedFd,
        (family, ty, protocol): (i32, i32, i32),
        uid: u32,
    ) -> KResult<Arc<HostSock>> {
        let wq = Arc::new(WaitQueue::default());
        let key = net.register(fd.as_raw_fd(), &wq)?;
        let s = Arc::new(HostSock {
            fd,
            family,
            ty,
            protocol,
            ino: next_ino(),
            uid,
            wq,
            net: net.clone(),
            key,
            timeo: Mutex::new((None, None)),
            kept: Mutex::new(HashMap::new()),
        });
        let mut l = net.socks.lock();
        if l.len().is_power_of_two() {
            l.retain(|w| w.strong_count() > 0);
        }
        l.push(Arc::downgrade(&s));
        Ok(s)
    }

    fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Run `f` (a non-blocking host call) until it stops saying EAGAIN, unless
    /// `nonblock`. A signal ends the wait: ERESTARTSYS, or EINTR with a timeout set.
    fn wait<T>(
        &self,
        t: &Task,
        nonblock: bool,
        timeo: Option<Duration>,
        mut f: impl FnMut() -> KResult<T>,
    ) -> KResult<T> {
        let mut check = || match f() {
            Err(e) if e == EAGAIN => None,
            r => Some(r),
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

    /// The host's readiness of this socket (POLL* bits).
    fn revents(&self, events: i16) -> u32 {
        let mut p = libc::pollfd {
            fd: self.raw(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        if r > 0 {
            p.revents as u16 as u32
        } else {
            0
        }
    }

    pub fn poll(&self) -> u32 {
        self.revents(libc::POLLIN | libc::POLLOUT | libc::POLLPRI | libc::POLLRDHUP)
    }

    pub fn bind(&self, t: &Task, a: &[u8]) -> KResult<()> {
        check_addr(a)?;
        // Ports below 1024 need the workload's CAP_NET_BIND_SERVICE too (a ping
        // socket's port is its ICMP identifier).
        let fam = if a.len() >= 2 {
            u16::from_le_bytes([a[0], a[1]]) as i32
        } else {
            -1
        };
        let ping = self.protocol == libc::IPPROTO_ICMP || self.protocol == libc::IPPROTO_ICMPV6;
        if a.len() >= 4 && (fam == AF_INET || fam == AF_INET6) && !ping {
            let port = u16::from_be_bytes([a[2], a[3]]);
            if (1..1024).contains(&port) && !t.creds().has_cap(CAP_NET_BIND_SERVICE) {
                return Err(EACCES);
            }
        }
        // SAFETY: bind reads a.len() bytes of address.
        host(|| unsafe { libc::bind(self.raw(), a.as_ptr().cast(), a.len() as u32) as isize })?;
        Ok(())
    }

    pub fn listen(&self, backlog: i32) -> KResult<()> {
        // SAFETY: plain listen(2).
        host(|| unsafe { libc::listen(self.raw(), backlog) as isize })?;
        Ok(())
    }

    /// accept(2): the new socket and its peer's address.
    pub fn accept(&self, t: &Task, nonblock: bool) -> KResult<(Arc<HostSock>, Vec<u8>)> {
        let timeo = self.timeo.lock().0;
        let (fd, peer) = self.wait(t, nonblock, timeo, || {
            let mut ss = [0u8; SS_LEN];
            let mut len = SS_LEN as u32;
            let fd = host(|| {
                // SAFETY: accept4 writes at most `len` bytes of address into ss.
                unsafe {
                    libc::accept4(
                        self.raw(),
                        ss.as_mut_ptr().cast(),
                        &mut len,
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    ) as isize
                }
            })?;
            Ok((fd as i32, ss[..(len as usize).min(SS_LEN)].to_vec()))
        })?;
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let s = Self::wrap(
            &self.net,
            fd,
            (self.family, self.ty, self.protocol),
            self.uid,
        )?;
        *s.timeo.lock() = *self.timeo.lock();
        Ok((s, peer))
    }

    /// connect(2): blocking waits for the handshake (SO_SNDTIMEO: then EINPROGRESS).
    /// Waiting calls the host's connect again once the socket is writable, as Linux's
    /// own wait ends: 0 when connected, the error when refused or reset.
    pub fn connect(&self, t: &Task, a: &[u8], nonblock: bool) -> KResult<()> {
        check_addr(a)?;
        let once = || {
            // SAFETY: connect reads a.len() bytes of address.
            host(|| unsafe {
                libc::connect(self.raw(), a.as_ptr().cast(), a.len() as u32) as isize
            })
            .map(|_| ())
        };
        match once() {
            Err(e) if (e == EINPROGRESS || e == EALREADY) && !nonblock => {
                let timeo = self.timeo.lock().1;
                let r = self.wait(t, false, timeo, || match once() {
                    Err(e) if e == EALREADY || e == EINPROGRESS => Err(EAGAIN),
                    r => r,
                });
                match r {
                    Err(e) if e == EAGAIN => Err(EINPROGRESS),
                    r => r,
                }
            }
            r => r,
        }
    }

    /// getsockname (`peer`: getpeername) as a sockaddr.
    pub fn name(&self, peer: bool) -> KResult<Vec<u8>> {
        let mut ss = [0u8; SS_LEN];
        let mut len = SS_LEN as u32;
        host(|| {
            let p = ss.as_mut_ptr().cast();
            // SAFETY: the host writes at most `len` bytes into ss.
            (unsafe {
                if peer {
                    libc::getpeername(self.raw(), p, &mut len)
                } else {
                    libc::getsockname(self.raw(), p, &mut len)
                }
            }) as isize
        })?;
        Ok(ss[..(len as usize).min(SS_LEN)].to_vec())
    }

    pub fn shutdown(&self, how: i32) -> KResult<()> {
        // SAFETY: plain shutdown(2).
        host(|| unsafe { libc::shutdown(self.raw(), how) as isize })?;
        self.wq.notify_all();
        Ok(())
    }

    fn send_once(&self, data: &[u8], to: Option<&[u8]>, flags: u32) -> KResult<usize> {
        let hflags = (flags & SEND_FLAGS) | MSG_NOSIGNAL | MSG_DONTWAIT;
        let (p, l) = to.map_or((std::ptr::null(), 0), |a| (a.as_ptr(), a.len() as u32));
        host(|| {
            // SAFETY: sendto reads data and the address from valid slices.
            unsafe {
                libc::sendto(
                    self.raw(),
                    data.as_ptr().cast(),
                    data.len(),
                    hflags as i32,
                    p.cast(),
                    l,
                )
            }
        })
    }

    /// send(2) and friends. A blocking stream send sends everything unless a signal or
    /// an error comes first (then the count so far, if any).
    pub fn send(
        &self,
        t: &Task,
        nonblock: bool,
        data: &[u8],
        to: Option<&[u8]>,
        flags: u32,
    ) -> KResult<usize> {
        if let Some(a) = to {
            check_addr(a)?;
        }
        let timeo = self.timeo.lock().1;
        if self.ty != SOCK_STREAM || nonblock {
            return self.wait(t, nonblock, timeo, || self.send_once(data, to, flags));
        }
        let mut done = 0;
        loop {
            match self.wait(t, false, timeo, || self.send_once(&data[done..], to, flags)) {
                Ok(n) => done += n,
                Err(_) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            }
            if done >= data.len() {
                return Ok(done);
            }
        }
    }

    /// One host recvmsg into `buf`: (bytes copied, sender's address, msg_flags, return
    /// value).
    fn recv_once(&self, buf: &mut [u8], flags: u32) -> KResult<(usize, Vec<u8>, i32, usize)> {
        let mut ss = [0u8; SS_LEN];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; zeroed is valid.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_name = ss.as_mut_ptr().cast();
        h.msg_namelen = SS_LEN as u32;
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        let hflags = (flags & RECV_FLAGS) | MSG_DONTWAIT;
        // SAFETY: recvmsg writes into buf and ss, whose sizes h describes.
        let n = host(|| unsafe { libc::recvmsg(self.raw(), &mut h, hflags as i32) })?;
        let from = ss[..(h.msg_namelen as usize).min(SS_LEN)].to_vec();
        Ok((n.min(buf.len()), from, h.msg_flags, n))
    }

    /// recv(2) and friends: (data, sender's address (empty: none), truncated, return
    /// value). MSG_WAITALL on a stream gathers until `want` bytes, end of file, an
    /// error or a signal.
    pub fn recv(
        &self,
        t: &Task,
        nonblock: bool,
        want: usize,
        flags: u32,
    ) -> KResult<(Vec<u8>, Vec<u8>, bool, usize)> {
        let timeo = self.timeo.lock().0;
        let mut buf = vec![0u8; want.min(RECV_CHUNK)];
        let (n, from, fl, ret) =
            self.wait(t, nonblock, timeo, || self.recv_once(&mut buf, flags))?;
        let trunc = fl & MSG_TRUNC as i32 != 0;
        let waitall = flags & MSG_WAITALL != 0 && flags & MSG_PEEK == 0 && self.ty == SOCK_STREAM;
        let mut got = n;
        if waitall && !nonblock && ret > 0 {
            while got < buf.len() {
                let rest = &mut buf[got..];
                match self.wait(t, false, timeo, || self.recv_once(rest, flags)) {
                    Ok((k, ..)) if k > 0 => got += k,
                    _ => break,
                }
            }
        }
        let ret = if waitall { got } else { ret };
        buf.truncate(got);
        Ok((buf, from, trunc, ret))
    }

    /// FIONREAD (SIOCINQ) and TIOCOUTQ (SIOCOUTQ) from the host.
    pub fn queue(&self, cmd: u32) -> KResult<i32> {
        let mut v: i32 = 0;
        // SAFETY: both requests write one int.
        host(|| unsafe { libc::ioctl(self.raw(), cmd as _, &mut v) as isize })?;
        Ok(v)
    }

    pub fn getsockopt(&self, t: &Task, level: i32, name: i32, len: usize) -> KResult<Vec<u8>> {
        match (level, name) {
            (SOL_SOCKET, SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW | SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW) => {
                let o = *self.timeo.lock();
                let d = if matches!(name, SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW) {
                    o.0
                } else {
                    o.1
                };
                let (s, us) = d.map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_micros() as i64));
                let mut b = s.to_le_bytes().to_vec();
                b.extend_from_slice(&us.to_le_bytes());
                b.truncate(len);
                return Ok(b);
            }
            (IPPROTO_IP, libc::IP_RECVERR) | (IPPROTO_IPV6, libc::IPV6_RECVERR) => {
                let v = *self.kept.lock().get(&(level, name)).unwrap_or(&0);
                let mut b = v.to_le_bytes().to_vec();
                b.truncate(len);
                return Ok(b);
            }
            _ => {}
        }
        if !allowed(level, name, false) {
            return Err(self.refuse(t, "getsockopt", level, name));
        }
        let mut b = vec![0u8; len.min(256)];
        let mut l = b.len() as u32;
        // SAFETY: getsockopt writes at most `l` bytes into b.
        host(|| unsafe {
            libc::getsockopt(self.raw(), level, name, b.as_mut_ptr().cast(), &mut l) as isize
        })?;
        b.truncate(l as usize);
        Ok(b)
    }

    pub fn setsockopt(&self, t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        match (level, name) {
            (SOL_SOCKET, SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW) => {
                self.timeo.lock().0 = opt_timeout(val)?;
                return Ok(());
            }
            (SOL_SOCKET, SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW) => {
                self.timeo.lock().1 = opt_timeout(val)?;
                return Ok(());
            }
            // glibc's resolver sets it; without MSG_ERRQUEUE a host error queue would
            // only fill up, so the flag is kept here and errors arrive as before.
            (IPPROTO_IP, libc::IP_RECVERR) | (IPPROTO_IPV6, libc::IPV6_RECVERR) => {
                let v = (opt_int(val)? != 0) as i32;
                if v == 1 {
                    inet::unsupported(&t.kernel, "IP_RECVERR's error queue (MSG_ERRQUEUE)".into());
                }
                self.kept.lock().insert((level, name), v);
                return Ok(());
            }
            _ => {}
        }
        if !allowed(level, name, true) {
            return Err(self.refuse(t, "setsockopt", level, name));
        }
        // SAFETY: setsockopt reads val.len() bytes.
        host(|| unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                val.as_ptr().cast(),
                val.len() as u32,
            ) as isize
        })?;
        self.wq.notify_all();
        Ok(())
    }

    fn refuse(&self, t: &Task, call: &str, level: i32, name: i32) -> Errno {
        inet::unsupported(
            &t.kernel,
            format!("{call}(level {level}, option {name}) on host network sockets"),
        );
        ENOPROTOOPT
    }
}

/// Options handed to the host (gVisor's hostinet keeps such a list too): ones that only
/// shape this socket's own traffic. `set`: setsockopt, else getsockopt.
fn allowed(level: i32, name: i32, set: bool) -> bool {
    use libc::*;
    let get_only = matches!(
        (level, name),
        (
            SOL_SOCKET,
            SO_TYPE | SO_ERROR | SO_DOMAIN | SO_PROTOCOL | SO_ACCEPTCONN
        ) | (IPPROTO_TCP, TCP_INFO)
            | (IPPROTO_IP, IP_MTU)
            | (IPPROTO_IPV6, IPV6_MTU)
    );
    if get_only {
        return !set;
    }
    matches!(
        (level, name),
        (
            SOL_SOCKET,
            SO_REUSEADDR
                | SO_REUSEPORT
                | SO_KEEPALIVE
                | SO_SNDBUF
                | SO_RCVBUF
                | SO_LINGER
                | SO_BROADCAST
                | SO_OOBINLINE
                | SO_RCVLOWAT
                | SO_SNDLOWAT
                | SO_DONTROUTE
                | SO_PRIORITY
        ) | (
            IPPROTO_TCP,
            TCP_NODELAY
                | TCP_MAXSEG
                | TCP_CORK
                | TCP_KEEPIDLE
                | TCP_KEEPINTVL
                | TCP_KEEPCNT
                | TCP_SYNCNT
                | TCP_LINGER2
                | TCP_DEFER_ACCEPT
                | TCP_WINDOW_CLAMP
                | TCP_QUICKACK
                | TCP_USER_TIMEOUT
                | TCP_NOTSENT_LOWAT
        ) | (IPPROTO_UDP, UDP_CORK)
            | (
                IPPROTO_IP,
                IP_TOS
                    | IP_TTL
                    | IP_MTU_DISCOVER
                    | IP_MULTICAST_TTL
                    | IP_MULTICAST_LOOP
                    | IP_MULTICAST_IF
                    | IP_ADD_MEMBERSHIP
                    | IP_DROP_MEMBERSHIP
            )
            | (
                IPPROTO_IPV6,
                IPV6_V6ONLY
                    | IPV6_UNICAST_HOPS
                    | IPV6_TCLASS
                    | IPV6_MTU_DISCOVER
                    | IPV6_MULTICAST_HOPS
                    | IPV6_MULTICAST_LOOP
                    | IPV6_MULTICAST_IF
                    | IPV6_ADD_MEMBERSHIP
                    | IPV6_DROP_MEMBERSHIP
            )
    )
}

/// The open-file face of a host socket. Dropping it (the last close) closes the socket.
pub struct HostFile {
    pub sock: Arc<HostSock>,
}

impl FileOps for HostFile {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        sock_read(buf, |n| Ok(self.sock.recv(t, f.nonblock(), n, 0)?.0))
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        self.sock.send(t, f.nonblock(), buf, None, 0)
    }

    fn poll(&self) -> u32 {
        self.sock.poll()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.sock.wq)
    }

    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        // The host's own answer (an int), not put_queued: the host counts the bytes.
        match cmd {
            FIONREAD | TIOCOUTQ => {
                let n = self.sock.queue(cmd)?;
                t.mm().write_obj(arg, &n)?;
                Ok(0)
            }
            _ => super::ifreq::ioctl_for(t, cmd, arg, self.sock.family == AF_INET),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open file for a host socket. `flags` may hold O_NONBLOCK.
pub fn host_socket_file(sock: Arc<HostSock>, flags: u32, t: &Task) -> Arc<OpenFile> {
    let ino = sock.ino;
    sock_open_file(Arc::new(HostFile { sock }), ino, flags, t)
}

/// The host socket behind an open file, if it is one.
pub fn host_sock(f: &OpenFile) -> Option<Arc<HostSock>> {
    f.ops
        .as_any()
        .downcast_ref::<HostFile>()
        .map(|s| s.sock.clone())
}

const SO_MEMINFO: i32 = 55;
const TCP_INFO_LEN: usize = 232;

/// A sockaddr_in / sockaddr_in6 as the host wrote it.
fn sockaddr(b: &[u8]) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    let fam = u16::from_le_bytes([*b.first()?, *b.get(1)?]) as i32;
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match fam {
        AF_INET if b.len() >= 8 => Some(SocketAddr::new(
            Ipv4Addr::new(b[4], b[5], b[6], b[7]).into(),
            port,
        )),
        AF_INET6 if b.len() >= 24 => {
            let a: [u8; 16] = b[8..24].try_into().ok()?;
            Some(SocketAddr::new(Ipv6Addr::from(a).into(), port))
        }
        _ => None,
    }
}

impl HostSock {
    /// An option read from the host without the workload's allow-list (for the tables).
    fn host_opt(&self, level: i32, name: i32, len: usize) -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        let mut l = len as u32;
        // SAFETY: getsockopt writes at most `l` bytes into b.
        let r = unsafe { libc::getsockopt(self.raw(), level, name, b.as_mut_ptr().cast(), &mut l) };
        (r == 0).then(|| {
            b.truncate(l as usize);
            b
        })
    }

    fn host_int(&self, level: i32, name: i32) -> usize {
        self.host_opt(level, name, 4)
            .filter(|b| b.len() == 4)
            .map_or(0, |b| {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]).max(0) as usize
            })
    }

    /// What /proc/net and sock_diag show of this socket, asked of the host as gVisor's
    /// hostinet does: names, TCP_INFO (state, a listener's queue), SO_MEMINFO.
    pub fn info(&self) -> Option<super::sockinfo::InetInfo> {
        use super::sockinfo::{kind_of, InetInfo, Kind, CLOSE, ESTABLISHED, LISTEN};
        let kind = kind_of(self.ty, self.protocol);
        let local = sockaddr(&self.name(false).ok()?)?;
        let peer = self.name(true).ok().and_then(|b| sockaddr(&b));
        let v6 = self.family == AF_INET6;
        let remote = peer.unwrap_or_else(|| {
            let any: std::net::IpAddr = if v6 {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            };
            std::net::SocketAddr::new(any, 0)
        });
        let mem: Vec<u32> = self
            .host_opt(SOL_SOCKET, SO_MEMINFO, 36)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let mut skmem = [0u32; 9];
        skmem[..mem.len().min(9)].copy_from_slice(&mem[..mem.len().min(9)]);
        let tcp_info = (kind == Kind::Tcp)
            .then(|| self.host_opt(libc::IPPROTO_TCP, libc::TCP_INFO, TCP_INFO_LEN))
            .flatten();
        let u32_at = |b: &[u8], o: usize| {
            b.get(o..o + 4).map_or(0, |w| {
                u32::from_le_bytes(w.try_into().expect("4 bytes")) as usize
            })
        };
        let (state, rqueue, wqueue) = match (&tcp_info, kind) {
            (Some(ti), Kind::Tcp) if ti.first() == Some(&LISTEN) => {
                // tcp_get_info: a listener's tcpi_unacked and tcpi_sacked are its accept
                // queue and backlog.
                (LISTEN, u32_at(ti, 24), u32_at(ti, 28))
            }
            (Some(ti), Kind::Tcp) => (
                *ti.first()?,
                self.queue(0x541b).unwrap_or(0).max(0) as usize,
                self.queue(0x5411).unwrap_or(0).max(0) as usize,
            ),
            _ => (
                if peer.is_some() { ESTABLISHED } else { CLOSE },
                skmem[0] as usize,
                skmem[2] as usize,
            ),
        };
        Some(InetInfo {
            kind,
            v6,
            protocol: self.protocol,
            local,
            remote,
            state,
            rqueue,
            wqueue,
            uid: self.uid,
            ino: self.ino,
            rcvbuf: self.host_int(SOL_SOCKET, SO_RCVBUF),
            sndbuf: self.host_int(SOL_SOCKET, SO_SNDBUF),
            skmem,
            tcp_info,
            v6only: v6 && self.host_int(IPPROTO_IPV6, libc::IPV6_V6ONLY) != 0,
        })
    }
}

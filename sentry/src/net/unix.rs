//! AF_UNIX sockets: stream, datagram and seqpacket endpoints that live entirely in the
//! Sentry and never touch the host.
//!
//! The model follows Linux's af_unix.c:
//! * every socket has one receive queue of messages ("skbs"); a stream socket's queue is a
//!   byte stream cut into segments (one per chunk written), a datagram or seqpacket
//!   socket's queue holds whole messages;
//! * the bytes a socket has queued at its peers (plus a per-message overhead, Linux's skb
//!   truesize) are charged to the *sender* (`wmem`), which may not exceed its SO_SNDBUF;
//!   datagrams sent to a socket that is not connected back are also limited by the
//!   receiver's queue length (net.unix.max_dgram_qlen);
//! * a connect to a listening socket creates the server's endpoint at once (the embryo) and
//!   queues it for accept;
//! * closing an endpoint shuts the connection down for its peer (and resets it with
//!   ECONNRESET when unread data or an unaccepted connection is lost).
//!
//! Every change that matters to a socket notifies that socket's wait queue, which is also
//! what poll/select/epoll wait on. No code holds two sockets' locks at once, and messages
//! (which may carry open files, hence sockets) are dropped only with no lock held.

use super::*;
use crate::kernel::Kernel;
use crate::waitq::WaitQueue;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::Weak;
use std::time::{Duration, Instant};

/// Linux's default and maximum socket buffer sizes (net.core.[wr]mem_{default,max}).
pub const SNDBUF_DEFAULT: usize = 212_992;
pub const RCVBUF_DEFAULT: usize = 212_992;
pub const WMEM_MAX: usize = 212_992;
pub const RMEM_MAX: usize = 212_992;
/// SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF.
pub const SNDBUF_MIN: usize = 4608;
pub const RCVBUF_MIN: usize = 2304;
/// net.unix.max_dgram_qlen.
pub const MAX_DGRAM_QLEN: usize = 10;
/// net.core.somaxconn.
pub const SOMAXCONN: usize = 4096;
/// The most descriptors one SCM_RIGHTS message may carry.
pub const SCM_MAX_FD: usize = 253;
/// The largest segment a stream write queues at once (SKB_MAX_HEAD(0) + 32 KiB of frags).
const STREAM_SEG_MAX: usize = 3776 + 32768;

const RCV_SHUTDOWN: u32 = 1;
const SEND_SHUTDOWN: u32 = 2;
const SHUTDOWN_MASK: u32 = 3;

/// What a message costs its sender's buffer: the payload and the bookkeeping around it,
/// as Linux's skb truesize counts it (so "fill until EAGAIN" counts match Linux).
fn truesize(len: usize) -> usize {
    if len <= 3776 {
        (len + 320).next_power_of_two().max(512) + 256
    } else {
        len + 576
    }
}

/// Credentials as they cross a socket (struct ucred).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Ucred {
    /// What SCM_CREDENTIALS carries by default: pid and real ids.
    pub fn of(t: &Task) -> Ucred {
        let c = t.creds();
        Ucred {
            pid: t.tgid(),
            uid: c.uid,
            gid: c.gid,
        }
    }
    /// What SO_PEERCRED reports: pid and effective ids.
    pub fn effective(t: &Task) -> Ucred {
        let c = t.creds();
        Ucred {
            pid: t.tgid(),
            uid: c.euid,
            gid: c.egid,
        }
    }
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..8].copy_from_slice(&self.uid.to_le_bytes());
        b[8..12].copy_from_slice(&self.gid.to_le_bytes());
        b
    }
}

/// One queued message (Linux: an skb on the receive queue).
struct Msg {
    data: Vec<u8>,
    /// Bytes of a stream segment already read.
    off: usize,
    /// The sender's address when it was sent.
    from: Option<Vec<u8>>,
    creds: Ucred,
    fds: Vec<Arc<OpenFile>>,
    /// What is charged to the sender's send buffer until the message is gone.
    charge: usize,
    sender: Arc<Sock>,
}

impl Msg {
    fn new(
        sender: &Arc<Sock>,
        data: Vec<u8>,
        from: Option<Vec<u8>>,
        creds: Ucred,
        fds: Vec<Arc<OpenFile>>,
    ) -> Msg {
        let charge = truesize(data.len());
        sender.wmem.fetch_add(charge, Ordering::AcqRel);
        Msg {
            data,
            off: 0,
            from,
            creds,
            fds,
            charge,
            sender: sender.clone(),
        }
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        self.sender.wmem.fetch_sub(self.charge, Ordering::AcqRel);
        self.sender.wq.notify_all();
    }
}

/// A file-system binding: the socket file (kept alive) and who is bound to it.
type PathEntry = (Arc<dyn Inode>, Weak<Sock>);

#[derive(Clone)]
enum RegKey {
    Abstract(Vec<u8>),
    Path(usize),
}

/// The names unix sockets are bound to, per sandbox: the abstract namespace and the
/// socket files bound in the file system (keyed by inode; the entry keeps the inode alive
/// so its address cannot be reused while the binding exists).
pub struct Registry {
    abstract_names: Mutex<HashMap<Vec<u8>, Weak<Sock>>>,
    paths: Mutex<HashMap<usize, PathEntry>>,
    next_auto: AtomicU32,
    /// Every endpoint, for /proc/net/unix.
    all: Mutex<Vec<Weak<Sock>>>,
}

impl Registry {
    fn new() -> Registry {
        // Autobind names start at a random point, as Linux's do.
        let mut b = [0u8; 4];
        crate::vfs::devfs::fill_random(&mut b);
        Registry {
            abstract_names: Mutex::new(HashMap::new()),
            paths: Mutex::new(HashMap::new()),
            next_auto: AtomicU32::new(u32::from_le_bytes(b)),
            all: Mutex::new(vec![]),
        }
    }
    pub fn find_abstract(&self, name: &[u8]) -> Option<Arc<Sock>> {
        self.abstract_names
            .lock()
            .get(name)
            .and_then(|w| w.upgrade())
    }
    pub fn find_inode(&self, inode: &Arc<dyn Inode>) -> Option<Arc<Sock>> {
        self.paths
            .lock()
            .get(&inode_key(inode))
            .and_then(|(_, w)| w.upgrade())
    }
    fn unregister(&self, key: RegKey, s: &Sock) {
        let me = |w: &Weak<Sock>| std::ptr::eq(w.as_ptr(), s);
        match key {
            RegKey::Abstract(n) => {
                let mut t = self.abstract_names.lock();
                if t.get(&n).is_some_and(me) {
                    t.remove(&n);
                }
            }
            RegKey::Path(k) => {
                let mut t = self.paths.lock();
                if t.get(&k).is_some_and(|(_, w)| me(w)) {
                    t.remove(&k);
                }
            }
        }
    }
}

/// The registry of the sandbox `k` runs.
pub fn registry(k: &Arc<Kernel>) -> Arc<Registry> {
    static ALL: Mutex<Vec<(Weak<Kernel>, Arc<Registry>)>> = Mutex::new(Vec::new());
    per_kernel(&ALL, k, || Arc::new(Registry::new()))
}

struct State {
    /// Our name: bound, autobound, or inherited from the listener by an accepted socket.
    addr: Option<Vec<u8>>,
    /// Where the name is registered (only the socket that bound it).
    reg: Option<RegKey>,
    /// The socket file a path name made (the binder's, inherited by accepted sockets).
    path_inode: Option<Arc<dyn Inode>>,
    /// The other end: a stream/seqpacket connection, or a datagram socket's default
    /// destination. Kept after the peer closes (it is then `dead`).
    peer: Option<Arc<Sock>>,
    /// Stream/seqpacket: connected (socketpair, connect, accept).
    connected: bool,
    connecting: bool,
    listening: bool,
    backlog: usize,
    accept_q: VecDeque<Arc<Sock>>,
    rx: VecDeque<Msg>,
    /// Unread bytes in `rx`.
    rx_bytes: usize,
    shutdown: u32,
    err: Option<Errno>,
    dead: bool,
    passcred: bool,
    sndbuf: usize,
    rcvbuf: usize,
    rcvtimeo: Option<Duration>,
    sndtimeo: Option<Duration>,
    peercred: Option<Ucred>,
    linger: (i32, i32),
    /// Plain integer options that only need to be remembered.
    misc: HashMap<i32, i32>,
    /// Datagram senders that found our queue full and want to hear when it is not.
    waiting_writers: Vec<Weak<Sock>>,
}

impl State {
    fn new() -> State {
        State {
            addr: None,
            reg: None,
            path_inode: None,
            peer: None,
            connected: false,
            connecting: false,
            listening: false,
            backlog: 0,
            accept_q: VecDeque::new(),
            rx: VecDeque::new(),
            rx_bytes: 0,
            shutdown: 0,
            err: None,
            dead: false,
            passcred: false,
            sndbuf: SNDBUF_DEFAULT,
            rcvbuf: RCVBUF_DEFAULT,
            rcvtimeo: None,
            sndtimeo: None,
            peercred: None,
            linger: (0, 0),
            misc: HashMap::new(),
            waiting_writers: vec![],
        }
    }
}

/// What /proc/net/unix and unix_diag show of one endpoint.
pub struct UnixInfo {
    pub ty: i32,
    pub ino: u64,
    pub listening: bool,
    pub connected: bool,
    /// The name after the family (a path with its NUL, or abstract starting with NUL).
    pub addr: Option<Vec<u8>>,
    /// The peer's inode (0 once it is closed), if there is a peer.
    pub peer: Option<u64>,
    /// Unread bytes (the next datagram's for datagram sockets); for a listener the
    /// connections waiting.
    pub rqueue: usize,
    /// What our queued messages cost; for a listener the backlog.
    pub wqueue: usize,
    /// The waiting connections' inodes (a listener's).
    pub icons: Vec<u64>,
    /// RCV_SHUTDOWN (1), SEND_SHUTDOWN (2).
    pub shutdown: u8,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// A connection not accepted yet (Linux's has no inode until accept).
    pub embryo: bool,
    /// Sockets whose peer this one is (each holds a reference on Linux).
    pub peered_by: usize,
    /// The socket file's (inode, device) for a path name.
    pub vfs: Option<(u64, u64)>,
}

/// The endpoints of the sandbox `k` runs, oldest first.
pub fn sockets(k: &Arc<Kernel>) -> Vec<UnixInfo> {
    let socks: Vec<Arc<Sock>> = registry(k)
        .all
        .lock()
        .iter()
        .filter_map(|w| w.upgrade())
        .collect();
    let mut infos: Vec<UnixInfo> = socks
        .iter()
        .map(|s| {
            let peer_sock = s.st.lock().peer.clone();
            // The peer's lock is taken alone (never while holding ours).
            let peer = peer_sock.map(|p| if p.st.lock().dead { 0 } else { p.ino });
            let st = s.st.lock();
            let (rqueue, wqueue) = if st.listening {
                (st.accept_q.len(), st.backlog)
            } else if s.ty == SOCK_DGRAM {
                (
                    st.rx.front().map_or(0, |m| m.data.len()),
                    s.wmem.load(Ordering::Acquire),
                )
            } else {
                (st.rx_bytes, s.wmem.load(Ordering::Acquire))
            };
            UnixInfo {
                ty: s.ty,
                ino: s.ino,
                listening: st.listening,
                connected: st.connected || (s.ty == SOCK_DGRAM && st.peer.is_some()),
                addr: st.addr.clone(),
                peer,
                rqueue,
                wqueue,
                icons: st.accept_q.iter().map(|c| c.ino).collect(),
                shutdown: st.shutdown as u8,
                rcvbuf: st.rcvbuf,
                sndbuf: st.sndbuf,
                embryo: false,
                peered_by: 0,
                vfs: st.path_inode.as_ref().map(|i| {
                    let s = i.stat();
                    (s.ino, s.dev)
                }),
            }
        })
        .collect();
    let embryos: std::collections::HashSet<u64> =
        infos.iter().flat_map(|u| u.icons.iter().copied()).collect();
    let mut peers: HashMap<u64, usize> = HashMap::new();
    for u in &infos {
        if let Some(p) = u.peer.filter(|&p| p != 0) {
            *peers.entry(p).or_default() += 1;
        }
    }
    for u in &mut infos {
        u.embryo = embryos.contains(&u.ino);
        u.peered_by = peers.get(&u.ino).copied().unwrap_or(0);
        // A peer without an inode yet shows as 0.
        if u.peer.is_some_and(|p| embryos.contains(&p)) {
            u.peer = Some(0);
        }
    }
    infos
}

/// A unix socket endpoint.
pub struct Sock {
    pub ty: i32,
    pub ino: u64,
    reg: Arc<Registry>,
    st: Mutex<State>,
    pub wq: WaitQueue,
    /// Bytes (truesize) of our messages still queued at a receiver.
    wmem: AtomicUsize,
}

/// What a receive returned.
#[derive(Default)]
pub struct Recv {
    pub data: Vec<u8>,
    /// The value the call returns (the datagram's full length with MSG_TRUNC).
    pub len: usize,
    /// The datagram did not fit.
    pub trunc: bool,
    pub from: Option<Vec<u8>>,
    /// Credentials to report (only when SO_PASSCRED is on).
    pub creds: Option<Ucred>,
    pub fds: Vec<Arc<OpenFile>>,
}

/// Where a send goes.
pub enum Dest {
    /// The connected peer.
    Peer,
    /// A datagram socket found by address.
    To(Arc<Sock>),
}

/// Block (unless `nonblock`) until `check` gives a result. Timeouts give EAGAIN as Linux's
/// SO_RCVTIMEO/SO_SNDTIMEO do; a signal with a timeout set gives EINTR (not restarted).
fn wait<T>(
    t: &Task,
    queues: &[&WaitQueue],
    nonblock: bool,
    timeo: Option<Duration>,
    mut check: impl FnMut() -> Option<KResult<T>>,
) -> KResult<T> {
    if nonblock || timeo == Some(Duration::ZERO) {
        return check().unwrap_or(Err(EAGAIN));
    }
    let deadline = timeo.map(|d| Instant::now() + d);
    match t.block_on(queues, deadline, check) {
        Err(e) if e == ETIMEDOUT => Err(EAGAIN),
        Err(e) if e == ERESTARTSYS && timeo.is_some() => Err(EINTR),
        r => r,
    }
}

fn int_bytes(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn timeval_bytes(d: Option<Duration>) -> Vec<u8> {
    let (s, us) = d.map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_micros() as i64));
    let mut b = s.to_le_bytes().to_vec();
    b.extend_from_slice(&us.to_le_bytes());
    b
}

impl Sock {
    pub fn new(k: &Arc<Kernel>, ty: i32) -> Arc<Sock> {
        Self::with_state(registry(k), ty, State::new())
    }

    fn with_state(reg: Arc<Registry>, ty: i32, st: State) -> Arc<Sock> {
        let s = Arc::new(Sock {
            ty,
            ino: next_ino(),
            reg: reg.clone(),
            st: Mutex::new(st),
            wq: WaitQueue::default(),
            wmem: AtomicUsize::new(0),
        });
        let mut all = reg.all.lock();
        if all.len().is_power_of_two() {
            all.retain(|w| w.strong_count() > 0);
        }
        all.push(Arc::downgrade(&s));
        s
    }

    /// socketpair(2): two connected endpoints.
    pub fn pair(k: &Arc<Kernel>, ty: i32, t: &Task) -> (Arc<Sock>, Arc<Sock>) {
        let a = Self::new(k, ty);
        let b = Self::new(k, ty);
        let cred = Ucred::effective(t);
        for (x, y) in [(&a, &b), (&b, &a)] {
            let mut s = x.st.lock();
            s.peer = Some(y.clone());
            s.connected = ty != SOCK_DGRAM;
            s.peercred = Some(cred);
        }
        (a, b)
    }

    // ---- names ----

    /// Our address (after the family), if bound.
    pub fn name(&self) -> Option<Vec<u8>> {
        self.st.lock().addr.clone()
    }

    /// The peer's address: Ok(None) if it is unbound, ENOTCONN with no peer.
    pub fn peer_name(&self) -> KResult<Option<Vec<u8>>> {
        let p = self.st.lock().peer.clone().ok_or(ENOTCONN)?;
        let n = p.st.lock().addr.clone();
        Ok(n)
    }

    pub fn bind_abstract(self: &Arc<Self>, name: Vec<u8>) -> KResult<()> {
        let mut s = self.st.lock();
        if s.addr.is_some() {
            return Err(EINVAL);
        }
        let mut tab = self.reg.abstract_names.lock();
        if tab.contains_key(&name) {
            return Err(EADDRINUSE);
        }
        tab.insert(name.clone(), Arc::downgrade(self));
        s.addr = Some(name.clone());
        s.reg = Some(RegKey::Abstract(name));
        Ok(())
    }

    /// Record a file-system binding: `name` is the path with its NUL, `inode` the socket
    /// file just made for it.
    pub fn bind_inode(self: &Arc<Self>, name: Vec<u8>, inode: Arc<dyn Inode>) -> KResult<()> {
        let mut s = self.st.lock();
        if s.addr.is_some() {
            return Err(EINVAL);
        }
        let key = inode_key(&inode);
        s.path_inode = Some(inode.clone());
        self.reg
            .paths
            .lock()
            .insert(key, (inode, Arc::downgrade(self)));
        s.addr = Some(name);
        s.reg = Some(RegKey::Path(key));
        Ok(())
    }

    /// Bind to a fresh abstract name ("\0" and five hex digits) unless bound already.
    pub fn autobind(self: &Arc<Self>) -> KResult<()> {
        let mut s = self.st.lock();
        if s.addr.is_some() {
            return Ok(());
        }
        let mut tab = self.reg.abstract_names.lock();
        for _ in 0..=0xfffff {
            let n = self.reg.next_auto.fetch_add(1, Ordering::Relaxed) & 0xfffff;
            let name = format!("\0{n:05x}").into_bytes();
            if tab.contains_key(&name) {
                continue;
            }
            tab.insert(name.clone(), Arc::downgrade(self));
            s.addr = Some(name.clone());
            s.reg = Some(RegKey::Abstract(name));
            return Ok(());
        }
        Err(ENOSPC)
    }

    pub fn is_connected(&self) -> bool {
        self.st.lock().connected
    }

    // ---- connections ----

    pub fn listen(&self, t: &Task, backlog: i32) -> KResult<()> {
        if self.ty == SOCK_DGRAM {
            return Err(EOPNOTSUPP);
        }
        let mut s = self.st.lock();
        if s.addr.is_none() || s.connected {
            return Err(EINVAL);
        }
        let b = if backlog as u32 as usize > SOMAXCONN {
            SOMAXCONN
        } else {
            backlog as usize
        };
        s.backlog = b;
        s.listening = true;
        s.peercred = Some(Ucred::effective(t));
        drop(s);
        self.wq.notify_all();
        Ok(())
    }

    /// connect(2) for stream and seqpacket sockets.
    pub fn connect_stream(
        self: &Arc<Self>,
        t: &Task,
        target: &Arc<Sock>,
        nonblock: bool,
    ) -> KResult<()> {
        if target.ty != self.ty {
            return Err(EPROTOTYPE);
        }
        let (passcred, timeo) = {
            let mut s = self.st.lock();
            if s.listening {
                return Err(EINVAL);
            }
            if s.connected {
                return Err(EISCONN);
            }
            if s.connecting {
                return Err(EALREADY);
            }
            s.connecting = true;
            (s.passcred, s.sndtimeo)
        };
        let r = (|| {
            if passcred {
                self.autobind()?;
            }
            let mine = Ucred::effective(t);
            let (embryo, lcred) = wait(t, &[&target.wq], nonblock, timeo, || {
                let mut ls = target.st.lock();
                if ls.dead || !ls.listening || ls.shutdown & RCV_SHUTDOWN != 0 {
                    return Some(Err(ECONNREFUSED));
                }
                if ls.accept_q.len() > ls.backlog {
                    return None;
                }
                let mut es = State::new();
                es.addr = ls.addr.clone();
                es.path_inode = ls.path_inode.clone();
                es.peer = Some(self.clone());
                es.connected = true;
                es.peercred = Some(mine);
                let e = Self::with_state(self.reg.clone(), self.ty, es);
                ls.accept_q.push_back(e.clone());
                Some(Ok((e, ls.peercred)))
            })?;
            target.wq.notify_all();
            let mut s = self.st.lock();
            s.peer = Some(embryo);
            s.connected = true;
            s.peercred = lcred;
            Ok(())
        })();
        self.st.lock().connecting = false;
        self.wq.notify_all();
        r
    }

    /// connect(2) for datagram sockets: set (or with None, clear) the default peer.
    pub fn connect_dgram(self: &Arc<Self>, target: Option<&Arc<Sock>>) -> KResult<()> {
        let Some(target) = target else {
            self.st.lock().peer = None;
            self.wq.notify_all();
            return Ok(());
        };
        if target.ty != self.ty {
            return Err(EPROTOTYPE);
        }
        if self.st.lock().passcred {
            self.autobind()?;
        }
        {
            let ts = target.st.lock();
            if ts.dead {
                return Err(ECONNREFUSED);
            }
            if ts
                .peer
                .as_ref()
                .is_some_and(|p| !Arc::ptr_eq(p, self) && !Arc::ptr_eq(target, self))
            {
                return Err(EPERM);
            }
        }
        self.st.lock().peer = Some(target.clone());
        self.wq.notify_all();
        Ok(())
    }

    pub fn accept(&self, t: &Task, nonblock: bool) -> KResult<Arc<Sock>> {
        if self.ty == SOCK_DGRAM {
            return Err(EOPNOTSUPP);
        }
        let timeo = self.st.lock().rcvtimeo;
        let e = wait(t, &[&self.wq], nonblock, timeo, || {
            let mut s = self.st.lock();
            if !s.listening {
                return Some(Err(EINVAL));
            }
            match s.accept_q.pop_front() {
                Some(e) => Some(Ok(e)),
                // shutdown(SHUT_RD) on a listener ends accepting.
                None if s.shutdown & RCV_SHUTDOWN != 0 => Some(Err(EINVAL)),
                None => None,
            }
        })?;
        // Room in the backlog for connectors that wait.
        self.wq.notify_all();
        let pc = self.st.lock().passcred;
        e.st.lock().passcred |= pc;
        Ok(e)
    }

    pub fn shutdown(&self, how: i32) -> KResult<()> {
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(EINVAL);
        }
        let mode = how as u32 + 1;
        let peer = {
            let mut s = self.st.lock();
            s.shutdown |= mode;
            if self.ty != SOCK_DGRAM {
                s.peer.clone()
            } else {
                None
            }
        };
        self.wq.notify_all();
        if let Some(p) = peer {
            let mut pm = 0;
            if mode & RCV_SHUTDOWN != 0 {
                pm |= SEND_SHUTDOWN;
            }
            if mode & SEND_SHUTDOWN != 0 {
                pm |= RCV_SHUTDOWN;
            }
            p.st.lock().shutdown |= pm;
            p.wq.notify_all();
        }
        Ok(())
    }

    /// The last reference to the open file is gone (or, with `embryo`, the listener that
    /// held this unaccepted connection closed).
    fn release(&self, embryo: bool) {
        let (rx, peer, accept_q, reg, writers) = {
            let mut s = self.st.lock();
            s.dead = true;
            s.shutdown = SHUTDOWN_MASK;
            s.listening = false;
            s.rx_bytes = 0;
            (
                std::mem::take(&mut s.rx),
                s.peer.take(),
                std::mem::take(&mut s.accept_q),
                s.reg.take(),
                std::mem::take(&mut s.waiting_writers),
            )
        };
        self.wq.notify_all();
        if let Some(k) = reg {
            self.reg.unregister(k, self);
        }
        if let Some(p) = peer {
            if self.ty != SOCK_DGRAM && !std::ptr::eq(Arc::as_ptr(&p), self) {
                let mut ps = p.st.lock();
                ps.shutdown = SHUTDOWN_MASK;
                if !rx.is_empty() || embryo {
                    ps.err = Some(ECONNRESET);
                }
            }
            p.wq.notify_all();
        }
        for w in writers.iter().filter_map(|w| w.upgrade()) {
            w.wq.notify_all();
        }
        for e in accept_q {
            e.release(true);
        }
        drop(rx);
    }

    // ---- data ----

    /// sendmsg(2) and write(2). `nonblock` includes MSG_DONTWAIT. Returns the bytes sent;
    /// EPIPE is returned as is: the caller raises SIGPIPE where Linux does.
    pub fn send(
        self: &Arc<Self>,
        t: &Task,
        nonblock: bool,
        data: &[u8],
        dest: Dest,
        fds: Vec<Arc<OpenFile>>,
        creds: Option<Ucred>,
    ) -> KResult<usize> {
        let creds = creds.unwrap_or_else(|| Ucred::of(t));
        if self.ty == SOCK_STREAM {
            self.stream_send(t, nonblock, data, fds, creds)
        } else {
            self.dgram_send(t, nonblock, data, dest, fds, creds)
        }
    }

    fn stream_send(
        self: &Arc<Self>,
        t: &Task,
        nonblock: bool,
        data: &[u8],
        fds: Vec<Arc<OpenFile>>,
        creds: Ucred,
    ) -> KResult<usize> {
        let timeo = {
            let s = self.st.lock();
            if !s.connected {
                return Err(ENOTCONN);
            }
            if s.shutdown & SEND_SHUTDOWN != 0 {
                return Err(EPIPE);
            }
            s.sndtimeo
        };
        let mut fds = Some(fds);
        let mut sent = 0;
        while sent < data.len() {
            let r = wait(t, &[&self.wq], nonblock, timeo, || {
                let (peer, sndbuf, from) = {
                    let s = self.st.lock();
                    if s.shutdown & SEND_SHUTDOWN != 0 {
                        return Some(Err(EPIPE));
                    }
                    (s.peer.clone(), s.sndbuf, s.addr.clone())
                };
                let Some(peer) = peer else {
                    return Some(Err(ENOTCONN));
                };
                if self.wmem.load(Ordering::Acquire) >= sndbuf {
                    return None;
                }
                let n = (data.len() - sent)
                    .min((sndbuf >> 1) - 64)
                    .min(STREAM_SEG_MAX);
                let msg = Msg::new(
                    self,
                    data[sent..sent + n].to_vec(),
                    from,
                    creds,
                    fds.take().unwrap_or_default(),
                );
                let mut ps = peer.st.lock();
                if ps.dead || ps.shutdown & RCV_SHUTDOWN != 0 {
                    drop(ps);
                    drop(msg);
                    return Some(Err(EPIPE));
                }
                ps.rx_bytes += n;
                ps.rx.push_back(msg);
                drop(ps);
                peer.wq.notify_all();
                Some(Ok(n))
            });
            match r {
                Ok(n) => sent += n,
                Err(_) if sent > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    fn dgram_send(
        self: &Arc<Self>,
        t: &Task,
        nonblock: bool,
        data: &[u8],
        dest: Dest,
        fds: Vec<Arc<OpenFile>>,
        creds: Ucred,
    ) -> KResult<usize> {
        let seqpacket = self.ty == SOCK_SEQPACKET;
        let (target, sndbuf, timeo, passcred) = {
            let s = self.st.lock();
            if seqpacket && !s.connected {
                return Err(ENOTCONN);
            }
            let target = match dest {
                Dest::To(x) if !seqpacket => x,
                _ => s.peer.clone().ok_or(ENOTCONN)?,
            };
            if s.shutdown & SEND_SHUTDOWN != 0 {
                return Err(EPIPE);
            }
            (target, s.sndbuf, s.sndtimeo, s.passcred)
        };
        if target.ty != self.ty {
            return Err(EPROTOTYPE);
        }
        if passcred {
            self.autobind()?;
        }
        if data.len() + 32 > sndbuf {
            return Err(EMSGSIZE);
        }
        let from = self.name();
        let mut fds = Some(fds);
        let to_self = Arc::ptr_eq(&target, self);
        wait(t, &[&self.wq, &target.wq], nonblock, timeo, || {
            if self.wmem.load(Ordering::Acquire) >= sndbuf {
                return None;
            }
            let mut ts = target.st.lock();
            if ts.dead {
                drop(ts);
                if seqpacket {
                    return Some(Err(EPIPE));
                }
                let mut s = self.st.lock();
                if s.peer.as_ref().is_some_and(|p| Arc::ptr_eq(p, &target)) {
                    s.peer = None;
                }
                return Some(Err(ECONNREFUSED));
            }
            let peer_is_me = ts.peer.as_ref().is_some_and(|p| Arc::ptr_eq(p, self));
            if !seqpacket && ts.peer.is_some() && !peer_is_me && !to_self {
                return Some(Err(EPERM));
            }
            if ts.shutdown & RCV_SHUTDOWN != 0 {
                return Some(Err(EPIPE));
            }
            if !seqpacket && !peer_is_me && ts.rx.len() > MAX_DGRAM_QLEN {
                let me = Arc::downgrade(self);
                if !ts.waiting_writers.iter().any(|w| w.ptr_eq(&me)) {
                    ts.waiting_writers.push(me);
                }
                return None;
            }
            let msg = Msg::new(
                self,
                data.to_vec(),
                from.clone(),
                creds,
                fds.take().unwrap_or_default(),
            );
            ts.rx_bytes += data.len();
            ts.rx.push_back(msg);
            drop(ts);
            target.wq.notify_all();
            Some(Ok(data.len()))
        })
    }

    /// recvmsg(2) and read(2): up to `want` bytes.
    pub fn recv(
        self: &Arc<Self>,
        t: &Task,
        nonblock: bool,
        want: usize,
        flags: u32,
    ) -> KResult<Recv> {
        if flags & MSG_OOB != 0 {
            return Err(EOPNOTSUPP);
        }
        if self.ty == SOCK_STREAM {
            self.stream_recv(t, nonblock, want, flags)
        } else {
            self.dgram_recv(t, nonblock, want, flags)
        }
    }

    fn stream_recv(&self, t: &Task, nonblock: bool, want: usize, flags: u32) -> KResult<Recv> {
        let (timeo, passcred) = {
            let s = self.st.lock();
            if !s.connected {
                return Err(EINVAL);
            }
            (s.rcvtimeo, s.passcred)
        };
        let peek = flags & MSG_PEEK != 0;
        let target = if flags & MSG_WAITALL != 0 { want } else { 1 };
        let mut out = Recv::default();
        let mut skip = 0usize;
        let mut stop = false;
        let mut creds: Option<Ucred> = None;
        let mut graveyard: Vec<Msg> = vec![];
        loop {
            let r = wait(t, &[&self.wq], nonblock, timeo, || {
                let mut g = self.st.lock();
                let s = &mut *g;
                if s.rx_bytes <= skip {
                    if let Some(e) = s.err.take() {
                        return Some(Err(e));
                    }
                    if s.shutdown & RCV_SHUTDOWN != 0 {
                        return Some(Ok(true));
                    }
                    return None;
                }
                let mut skip_left = skip;
                let mut i = 0;
                while i < s.rx.len() && out.data.len() < want {
                    let m = &mut s.rx[i];
                    let avail = m.data.len() - m.off;
                    if skip_left >= avail {
                        skip_left -= avail;
                        i += 1;
                        continue;
                    }
                    if passcred {
                        match creds {
                            None => creds = Some(m.creds),
                            Some(c) if c != m.creds => {
                                // Never glue data from different writers.
                                stop = true;
                                break;
                            }
                            _ => {}
                        }
                    }
                    if out.from.is_none() {
                        out.from = m.from.clone();
                    }
                    let start = m.off + skip_left;
                    skip_left = 0;
                    let n = (m.data.len() - start).min(want - out.data.len());
                    out.data.extend_from_slice(&m.data[start..start + n]);
                    if peek {
                        skip += n;
                        if !m.fds.is_empty() {
                            out.fds = m.fds.clone();
                            stop = true;
                            break;
                        }
                        i += 1;
                    } else {
                        m.off += n;
                        s.rx_bytes -= n;
                        let had_fds = !m.fds.is_empty();
                        if had_fds {
                            out.fds = std::mem::take(&mut m.fds);
                        }
                        if m.off < m.data.len() {
                            break;
                        }
                        if let Some(m) = s.rx.remove(i) {
                            graveyard.push(m);
                        }
                        if had_fds {
                            stop = true;
                            break;
                        }
                    }
                }
                Some(Ok(false))
            });
            graveyard.clear();
            match r {
                Ok(eof) => {
                    if eof || stop || want == 0 || out.data.len() >= target {
                        break;
                    }
                }
                Err(_) if !out.data.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        out.len = out.data.len();
        if passcred {
            out.creds = Some(creds.unwrap_or(Ucred {
                pid: 0,
                uid: 0,
                gid: 0,
            }));
        }
        Ok(out)
    }

    fn dgram_recv(&self, t: &Task, nonblock: bool, want: usize, flags: u32) -> KResult<Recv> {
        let (timeo, passcred) = {
            let s = self.st.lock();
            if self.ty == SOCK_SEQPACKET && !s.connected {
                return Err(ENOTCONN);
            }
            (s.rcvtimeo, s.passcred)
        };
        let peek = flags & MSG_PEEK != 0;
        let mut graveyard: Option<Msg> = None;
        let mut writers = vec![];
        let r = wait(t, &[&self.wq], nonblock, timeo, || {
            let mut g = self.st.lock();
            let s = &mut *g;
            if let Some(m) = s.rx.front_mut() {
                let n = m.data.len().min(want);
                let mut out = Recv {
                    data: m.data[..n].to_vec(),
                    len: if flags & MSG_TRUNC != 0 {
                        m.data.len()
                    } else {
                        n
                    },
                    trunc: n < m.data.len(),
                    from: m.from.clone(),
                    creds: passcred.then_some(m.creds),
                    fds: vec![],
                };
                if peek {
                    out.fds = m.fds.clone();
                } else {
                    out.fds = std::mem::take(&mut m.fds);
                    s.rx_bytes -= m.data.len();
                    graveyard = s.rx.pop_front();
                    if s.rx.len() <= MAX_DGRAM_QLEN {
                        writers = std::mem::take(&mut s.waiting_writers);
                    }
                }
                return Some(Ok(out));
            }
            if let Some(e) = s.err.take() {
                return Some(Err(e));
            }
            if s.shutdown & RCV_SHUTDOWN != 0 {
                return Some(Ok(Recv::default()));
            }
            None
        });
        drop(graveyard);
        if !writers.is_empty() {
            for w in writers.iter().filter_map(|w| w.upgrade()) {
                w.wq.notify_all();
            }
        }
        // Senders blocked on our full queue wait on our queue too.
        self.wq.notify_all();
        r
    }

    // ---- readiness ----

    pub fn poll(self: &Arc<Self>) -> u32 {
        let (mut m, writable, peer) = {
            let s = self.st.lock();
            let mut m = 0;
            if s.err.is_some() {
                m |= POLLERR;
            }
            if s.shutdown == SHUTDOWN_MASK {
                m |= POLLHUP;
            }
            if s.shutdown & RCV_SHUTDOWN != 0 {
                m |= POLLRDHUP | POLLIN | POLLRDNORM;
            }
            if !s.rx.is_empty() || !s.accept_q.is_empty() {
                m |= POLLIN | POLLRDNORM;
            }
            if self.ty != SOCK_DGRAM && !s.connected && !s.listening {
                m |= POLLHUP;
            }
            let writable = !s.listening && self.wmem.load(Ordering::Acquire) * 4 <= s.sndbuf;
            let peer = if self.ty == SOCK_DGRAM {
                s.peer.clone()
            } else {
                None
            };
            (m, writable, peer)
        };
        let mut writable = writable;
        if let (true, Some(p)) = (writable, peer) {
            if !Arc::ptr_eq(&p, self) {
                let mut ps = p.st.lock();
                let back = ps.peer.as_ref().is_some_and(|x| Arc::ptr_eq(x, self));
                if !ps.dead && !back && ps.rx.len() > MAX_DGRAM_QLEN {
                    writable = false;
                    let me = Arc::downgrade(self);
                    if !ps.waiting_writers.iter().any(|w| w.ptr_eq(&me)) {
                        ps.waiting_writers.push(me);
                    }
                }
            }
        }
        if writable {
            m |= POLLOUT | POLLWRNORM | 0x200;
        }
        m
    }

    /// FIONREAD: unread stream bytes, or the next datagram's size.
    pub fn inq(&self) -> KResult<usize> {
        let s = self.st.lock();
        if s.listening {
            return Err(EINVAL);
        }
        Ok(if self.ty == SOCK_STREAM {
            s.rx_bytes
        } else {
            s.rx.front().map_or(0, |m| m.data.len())
        })
    }

    /// SIOCOUTQ: what our queued messages cost.
    pub fn outq(&self) -> usize {
        self.wmem.load(Ordering::Acquire)
    }

    // ---- options ----

    /// getsockopt(2): the option's bytes, cut to `len`.
    pub fn getsockopt(&self, level: i32, name: i32, len: usize) -> KResult<Vec<u8>> {
        if level != SOL_SOCKET {
            return Err(EOPNOTSUPP);
        }
        let mut s = self.st.lock();
        let mut v = match name {
            SO_TYPE => int_bytes(self.ty),
            SO_DOMAIN => int_bytes(AF_UNIX),
            SO_PROTOCOL => int_bytes(0),
            SO_ERROR => int_bytes(s.err.take().map_or(0, |e| e.0)),
            SO_ACCEPTCONN => int_bytes(s.listening as i32),
            SO_PASSCRED => int_bytes(s.passcred as i32),
            SO_SNDBUF => int_bytes(s.sndbuf as i32),
            SO_RCVBUF => int_bytes(s.rcvbuf as i32),
            SO_PEERCRED => s
                .peercred
                .unwrap_or(Ucred {
                    pid: 0,
                    uid: u32::MAX,
                    gid: u32::MAX,
                })
                .to_bytes()
                .to_vec(),
            SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW => timeval_bytes(s.rcvtimeo),
            SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW => timeval_bytes(s.sndtimeo),
            SO_LINGER => {
                let mut b = int_bytes(s.linger.0);
                b.extend_from_slice(&s.linger.1.to_le_bytes());
                b
            }
            SO_RCVLOWAT | SO_SNDLOWAT => int_bytes(*s.misc.get(&name).unwrap_or(&1)),
            SO_DEBUG | SO_REUSEADDR | SO_DONTROUTE | SO_BROADCAST | SO_KEEPALIVE | SO_OOBINLINE
            | SO_PRIORITY => int_bytes(*s.misc.get(&name).unwrap_or(&0)),
            _ => return Err(ENOPROTOOPT),
        };
        v.truncate(len);
        Ok(v)
    }

    /// setsockopt(2).
    pub fn setsockopt(&self, t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        if level != SOL_SOCKET {
            return Err(EOPNOTSUPP);
        }
        let int = || super::opt_int(val);
        let timeout = || super::opt_timeout(val);
        let privileged = t.creds().has_cap(crate::kernel::cap::NET_ADMIN);
        let mut s = self.st.lock();
        match name {
            SO_PASSCRED => s.passcred = int()? != 0,
            SO_SNDBUF | SO_SNDBUFFORCE => {
                let v = int()?;
                let v = if name == SO_SNDBUF {
                    (v as u32 as usize).min(WMEM_MAX)
                } else if privileged {
                    v.max(0) as usize
                } else {
                    return Err(EPERM);
                };
                s.sndbuf = (v.min(i32::MAX as usize / 2) * 2).max(SNDBUF_MIN);
                drop(s);
                self.wq.notify_all();
            }
            SO_RCVBUF | SO_RCVBUFFORCE => {
                let v = int()?;
                let v = if name == SO_RCVBUF {
                    (v as u32 as usize).min(RMEM_MAX)
                } else if privileged {
                    v.max(0) as usize
                } else {
                    return Err(EPERM);
                };
                s.rcvbuf = (v.min(i32::MAX as usize / 2) * 2).max(RCVBUF_MIN);
            }
            SO_RCVTIMEO_OLD | SO_RCVTIMEO_NEW => s.rcvtimeo = timeout()?,
            SO_SNDTIMEO_OLD | SO_SNDTIMEO_NEW => s.sndtimeo = timeout()?,
            SO_LINGER => {
                if val.len() < 8 {
                    return Err(EINVAL);
                }
                let on = i32::from_le_bytes(val[..4].try_into().expect("4 bytes"));
                let secs = i32::from_le_bytes(val[4..8].try_into().expect("4 bytes"));
                s.linger = ((on != 0) as i32, if on != 0 { secs } else { 0 });
            }
            SO_RCVLOWAT => {
                let v = int()?;
                s.misc.insert(name, v.max(1));
            }
            SO_DEBUG | SO_REUSEADDR | SO_DONTROUTE | SO_BROADCAST | SO_KEEPALIVE | SO_OOBINLINE => {
                let v = int()?;
                s.misc.insert(name, (v != 0) as i32);
            }
            SO_PRIORITY => {
                let v = int()?;
                if !(0..=6).contains(&v) && !privileged {
                    return Err(EPERM);
                }
                s.misc.insert(name, v);
            }
            _ => return Err(ENOPROTOOPT),
        }
        Ok(())
    }
}

/// The open-file face of a socket. Dropping it (the last close) releases the endpoint.
pub struct SockFile {
    pub sock: Arc<Sock>,
}

impl Drop for SockFile {
    fn drop(&mut self) {
        self.sock.release(false);
    }
}

impl FileOps for SockFile {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        sock_read(buf, |n| Ok(self.sock.recv(t, f.nonblock(), n, 0)?.data))
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        self.sock
            .send(t, f.nonblock(), buf, Dest::Peer, vec![], None)
    }

    fn poll(&self) -> u32 {
        self.sock.poll()
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.sock.wq)
    }

    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        let n = match cmd {
            FIONREAD => self.sock.inq()?,
            TIOCOUTQ => self.sock.outq(),
            _ => return super::ifreq::ioctl(t, cmd, arg),
        };
        put_queued(t, arg, n)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many messages of `len` bytes fit in a default send buffer before EAGAIN: a send
    /// is allowed while the charged total is below SO_SNDBUF.
    fn fits(len: usize) -> usize {
        let (mut n, mut used) = (0, 0);
        while used < SNDBUF_DEFAULT {
            used += truesize(len);
            n += 1;
        }
        n
    }

    #[test]
    fn buffer_accounting_matches_linux() {
        // Measured on Linux 6.18 with the default 212992-byte send buffer.
        assert_eq!(fits(1), 278);
        assert_eq!(fits(1000), 93);
        // A nonblocking 1 MiB stream write queues six 36544-byte segments.
        assert_eq!(fits(STREAM_SEG_MAX) * STREAM_SEG_MAX, 219_264);
    }

    #[test]
    fn ucred_layout() {
        let b = Ucred {
            pid: 7,
            uid: 1000,
            gid: 1001,
        }
        .to_bytes();
        assert_eq!(&b[0..4], &7i32.to_le_bytes());
        assert_eq!(&b[4..8], &1000u32.to_le_bytes());
        assert_eq!(&b[8..12], &1001u32.to_le_bytes());
    }
}

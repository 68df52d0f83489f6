//! TCP sockets.
//!
//! smoltcp listens with one socket per connection: a listening [`TcpSocket`] keeps a pool
//! of `POOL_MAX` smoltcp sockets in LISTEN, which hold their SYN-ACKs while the accept
//! queue (the backlog) has no room, as Linux drops SYNs then; a pooled socket that
//! completes a handshake moves to the accept queue and a fresh one takes its place. Closed sockets whose connection is still winding down (FIN
//! sent, waiting for the peer) stay in the stack as orphans until smoltcp is done with
//! them, as Linux keeps them after close(2).

use crate::ports::{Reuse, Use, TCP};
use crate::*;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::socket::tcp::State as S;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

/// The most pooled listening sockets one listener keeps at once.
const POOL_MAX: usize = 16;
/// How long an orphan may take to finish its shutdown (Linux: tcp_fin_timeout).
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connect waits for the handshake (Linux: ~127 s with tcp_syn_retries 6).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(127);
/// Buffer limits.
const BUF_MIN: usize = 4096;
const BUF_MAX: usize = 4 << 20;

/// Socket options that shape the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOpts {
    pub reuseaddr: bool,
    /// SO_REUSEPORT with the socket owner's uid: listeners of one uid bound to one
    /// address and port share its connections.
    pub reuseport: Option<u32>,
    pub v6only: bool,
    pub nodelay: bool,
    pub keepalive: bool,
    /// Seconds of idleness before keep-alive probes (TCP_KEEPIDLE).
    pub keepidle: u32,
    /// Receive and send buffer sizes in bytes (fixed once the connection exists).
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// SO_LINGER with a zero timeout: close(2) resets the connection.
    pub linger0: bool,
    /// Hop limits (by the peer's family once there is one).
    pub hops: Hops,
    /// IP_TOS / IPV6_TCLASS of every segment (see `tos`).
    pub tos: Tos,
}

impl Default for TcpOpts {
    fn default() -> Self {
        TcpOpts {
            reuseaddr: false,
            reuseport: None,
            v6only: false,
            nodelay: false,
            keepalive: false,
            keepidle: 7200,
            // Linux starts smaller and autotunes up to tcp_rmem/tcp_wmem's 6 / 4 MiB; smoltcp's
            // buffers are fixed, so start where a fast local link needs them.
            rcvbuf: 1 << 20,
            sndbuf: 1 << 20,
            linger0: false,
            hops: Hops::default(),
            tos: Tos::default(),
        }
    }
}

impl TcpOpts {
    fn reuse(&self) -> Reuse {
        Reuse {
            addr: self.reuseaddr,
            port: self.reuseport,
        }
    }
}

pub(crate) struct Listener {
    backlog: usize,
    /// Pooled sockets, and whether their SYN-ACK may go out.
    pool: Vec<(SocketHandle, bool)>,
    ready: VecDeque<SocketHandle>,
}

pub(crate) enum St {
    Init,
    Listen(Listener),
    Conn(SocketHandle),
}

pub(crate) struct Ent {
    v6: bool,
    opts: TcpOpts,
    /// The port reserved for this socket (bind, listen or connect), and the address.
    port: Option<u16>,
    /// The port came from bind(2) (not picked by listen or connect).
    bound: bool,
    addr: IpAddr,
    st: St,
    /// SHUT_RD / SHUT_WR asked for by the application.
    shut: u8,
    /// The peer's FIN arrived.
    fin: bool,
    /// The connection is over (reset, refused, timed out, or fully closed).
    dead: bool,
    err: Option<Error>,
    connecting: bool,
    connect_deadline: Option<Instant>,
    /// A connect whose outcome connect(2) has not reported yet.
    unreported: bool,
    last: S,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    waker: Option<Waker>,
    /// Readiness and receive queue as last reported (see `tcp_collect_wakes`).
    sig: (u32, usize),
}

impl Ent {
    fn new(v6: bool, opts: TcpOpts) -> Ent {
        Ent {
            v6,
            opts,
            port: None,
            bound: false,
            addr: unspecified(v6).ip(),
            st: St::Init,
            shut: 0,
            fin: false,
            dead: false,
            err: None,
            connecting: false,
            connect_deadline: None,
            unreported: false,
            last: S::Closed,
            local: None,
            remote: None,
            waker: None,
            sig: (u32::MAX, 0),
        }
    }
}

pub(crate) struct Orphan {
    h: SocketHandle,
    id: u64,
    port: Option<u16>,
    pub(crate) deadline: Option<Instant>,
}

fn new_sock(o: &TcpOpts) -> tcp::Socket<'static> {
    let rx = o.rcvbuf.clamp(BUF_MIN, BUF_MAX);
    let tx = o.sndbuf.clamp(BUF_MIN, BUF_MAX);
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; rx]),
        tcp::SocketBuffer::new(vec![0u8; tx]),
    );
    apply_opts(&mut s, o);
    // ACK at once, as Linux does on loopback (no 10 ms delayed-ACK stalls).
    s.set_ack_delay(None);
    s
}

fn apply_opts(s: &mut tcp::Socket<'static>, o: &TcpOpts) {
    s.set_nagle_enabled(!o.nodelay);
    // A pooled listening socket has no peer yet: it is set again before its SYN-ACK.
    if let Some(r) = s.remote_endpoint() {
        s.set_hop_limit(Some(o.hops.for_dst(IpAddr::from(r.addr))));
    }
    s.set_keep_alive(
        o.keepalive
            .then(|| smoltcp::time::Duration::from_secs(o.keepidle.max(1) as u64)),
    );
}

fn ep(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(IpAddr::from(e.addr), e.port)
}

fn synchronized(st: S) -> bool {
    !matches!(st, S::Closed | S::Listen | S::SynSent | S::SynReceived)
}

/// (readiness, receive queue, send queue) of one socket.
fn events(e: &Ent, set: &SocketSet<'static>) -> (u32, usize, usize) {
    match &e.st {
        St::Init => (EV_OUT | EV_HUP, 0, 0),
        St::Listen(l) => (if l.ready.is_empty() { 0 } else { EV_IN }, l.ready.len(), 0),
        St::Conn(h) => {
            let s = set.get::<tcp::Socket>(*h);
            let st = s.state();
            let shut = e.shut | if e.fin || e.dead { SHUT_RD } else { 0 };
            let mut m = 0;
            if shut & SHUT_RD != 0 {
                m |= EV_IN | EV_RDHUP;
            }
            if e.dead || (shut & SHUT_RD != 0 && e.shut & SHUT_WR != 0) {
                m |= EV_HUP;
            }
            if e.dead || !matches!(st, S::SynSent | S::SynReceived) {
                if s.can_recv() {
                    m |= EV_IN;
                }
                let queued = s.send_queue();
                let free = s.send_capacity() - queued;
                if e.shut & SHUT_WR != 0 || e.dead || (s.may_send() && free * 2 >= queued) {
                    m |= EV_OUT;
                }
            }
            if e.err.is_some() {
                m |= EV_ERR;
            }
            (m, s.recv_queue(), s.send_queue())
        }
    }
}

impl Inner {
    /// Bring the sockets' bookkeeping up to date with smoltcp. True if something changed
    /// that needs another poll (packets to send).
    /// The flows whose segments carry a DS field, for the device (see `tos`): every
    /// connection, listener and pooled socket of a TCP socket with IP_TOS/IPV6_TCLASS.
    pub(crate) fn tcp_tos_refresh(&mut self) {
        if !self.dev.tcp_tos_on {
            return;
        }
        let mut flows = vec![];
        let add = |flows: &mut Vec<tos::Flow>, s: &tcp::Socket, tos: Tos| {
            if let (Some(l), r) = (s.local_endpoint(), s.remote_endpoint()) {
                flows.push(tos::Flow {
                    local: ep(l),
                    remote: r.map(ep),
                    tos,
                });
            }
        };
        for e in self.tcp.values().filter(|e| !e.opts.tos.is_zero()) {
            match &e.st {
                St::Conn(h) => add(&mut flows, self.sockets.get::<tcp::Socket>(*h), e.opts.tos),
                St::Listen(l) => {
                    for h in l.pool.iter().map(|p| &p.0).chain(l.ready.iter()) {
                        add(&mut flows, self.sockets.get::<tcp::Socket>(*h), e.opts.tos);
                    }
                    if let Some(p) = e.port {
                        flows.push(tos::Flow {
                            local: SocketAddr::new(e.addr, p),
                            remote: None,
                            tos: e.opts.tos,
                        });
                    }
                }
                St::Init => {}
            }
        }
        self.dev.tcp_tos = flows;
    }

    pub(crate) fn tcp_maintain(&mut self) -> bool {
        let mut again = false;
        let now = Instant::now();
        let mut new_orphans = vec![];
        let mut handover = vec![];
        let groups = self.reuseport_groups();
        for (&id, e) in self.tcp.iter_mut() {
            match &mut e.st {
                St::Init => {}
                St::Conn(h) => {
                    let s = self.sockets.get_mut::<tcp::Socket>(*h);
                    let st = s.state();
                    if e.local.is_none() || e.remote.is_none() {
                        if let (Some(l), Some(r)) = (s.local_endpoint(), s.remote_endpoint()) {
                            e.local = Some(map_for(e.v6, ep(l)));
                            e.remote = Some(map_for(e.v6, ep(r)));
                        }
                    }
                    if e.connecting {
                        match st {
                            S::SynSent | S::SynReceived => {
                                if e.connect_deadline.is_some_and(|d| now >= d) {
                                    s.abort();
                                    again = true;
                                    e.connecting = false;
                                    e.dead = true;
                                    e.err = Some(Error::TimedOut);
                                }
                            }
                            S::Closed => {
                                e.connecting = false;
                                e.dead = true;
                                e.err = Some(Error::ConnRefused);
                            }
                            _ => e.connecting = false,
                        }
                    } else if st == S::Closed && !e.dead {
                        e.dead = true;
                        // Linux's tcp_reset: EPIPE once the peer had closed, else
                        // ECONNRESET.
                        // (A pump may pass through several states: both FINs seen
                        // means the connection ended normally.)
                        let both_fins = e.fin && e.shut & SHUT_WR != 0;
                        match e.last {
                            S::LastAck | S::TimeWait | S::Closed => {}
                            _ if both_fins => {}
                            S::CloseWait => e.err = Some(Error::Pipe),
                            _ if e.fin => e.err = Some(Error::Pipe),
                            _ => e.err = Some(Error::ConnReset),
                        }
                    }
                    if matches!(st, S::CloseWait | S::LastAck | S::Closing | S::TimeWait) {
                        e.fin = true;
                    }
                    e.last = st;
                }
                St::Listen(l) => {
                    // Pooled sockets hold their SYN-ACK until the connection is known to
                    // be this socket's (family) and the accept queue has room; others wait
                    // in SYN-RECEIVED (their SYN retransmits), as Linux drops SYNs then.
                    // The queue's room counts the handshakes already let go (`inflight`).
                    let target = l.backlog + 1;
                    let mut inflight = l.pool.iter().filter(|p| p.1).count();
                    let mut i = 0;
                    while i < l.pool.len() {
                        let (h, released) = l.pool[i];
                        let s = self.sockets.get_mut::<tcp::Socket>(h);
                        let st = s.state();
                        if st == S::Listen {
                            // Back from SYN-RECEIVED (the peer reset): hold SYN-ACKs again.
                            if released {
                                s.pause_synack(true);
                                l.pool[i].1 = false;
                                inflight -= 1;
                            }
                            i += 1;
                            continue;
                        }
                        let ok = s
                            .remote_endpoint()
                            .is_some_and(|r| match IpAddr::from(r.addr) {
                                IpAddr::V4(_) => !e.v6 || !e.opts.v6only,
                                IpAddr::V6(_) => e.v6,
                            });
                        if st == S::SynReceived {
                            // Not for this socket's family (smoltcp's wildcard takes both),
                            // or for another listener of its SO_REUSEPORT group: another
                            // listener on the port may take it.
                            let pick = match (released, s.remote_endpoint(), s.local_endpoint()) {
                                (false, Some(r), Some(l)) if ok => {
                                    reuseport_pick(&groups, e.port, ep(r), ep(l))
                                }
                                _ => None,
                            };
                            if !ok || pick.is_some_and(|p| p != id) {
                                l.pool.swap_remove(i);
                                inflight -= released as usize;
                                let remote = s.remote_endpoint().map(|r| IpAddr::from(r.addr));
                                let local = s.local_endpoint().map(|r| IpAddr::from(r.addr));
                                handover.push((h, e.port, remote, local, pick));
                                continue;
                            }
                            if !released && l.ready.len() + inflight < target {
                                apply_opts(s, &e.opts);
                                s.pause_synack(false);
                                l.pool[i].1 = true;
                                inflight += 1;
                                again = true;
                            }
                            i += 1;
                            continue;
                        }
                        l.pool.swap_remove(i);
                        inflight -= released as usize;
                        if synchronized(st) && ok {
                            l.ready.push_back(h);
                        } else {
                            self.sockets.remove(h);
                        }
                    }
                    let endpoint = IpListenEndpoint {
                        addr: (!e.addr.is_unspecified()).then(|| IpAddress::from(e.addr)),
                        port: e.port.unwrap_or(0),
                    };
                    // A SYN that finds no pooled socket in LISTEN is answered with a
                    // reset by smoltcp, where Linux would drop it: keep the pool full
                    // (its sockets hold their SYN-ACKs) even when the queue is.
                    while l.pool.len() < POOL_MAX {
                        let mut s = new_sock(&e.opts);
                        if s.listen(endpoint).is_err() {
                            break;
                        }
                        s.pause_synack(true);
                        l.pool.push((self.sockets.add(s), false));
                    }
                }
            }
        }
        for (h, port, remote, local, pick) in handover {
            let fits = |e: &Ent| {
                matches!(e.st, St::Listen(_))
                    && e.port == port
                    && remote.is_some_and(|r| match r {
                        IpAddr::V4(_) => !e.v6 || !e.opts.v6only,
                        IpAddr::V6(_) => e.v6,
                    })
                    && (e.addr.is_unspecified() || Some(e.addr) == local)
            };
            let taker = match pick {
                Some(p) => self.tcp.get_mut(&p),
                None => self.tcp.values_mut().find(|e| fits(e)),
            };
            match taker {
                Some(Ent {
                    st: St::Listen(l), ..
                }) => l.pool.push((h, false)),
                _ => {
                    // Nobody listens for this family: RST.
                    self.sockets.get_mut::<tcp::Socket>(h).abort();
                    new_orphans.push(h);
                }
            }
            again = true;
        }
        for h in new_orphans {
            let id = self.id();
            self.orphans.push(Orphan {
                h,
                id,
                port: None,
                deadline: None,
            });
        }
        let sockets = &mut self.sockets;
        let ports = &mut self.ports;
        self.orphans.retain(|o| {
            let s = sockets.get_mut::<tcp::Socket>(o.h);
            let st = s.state();
            // An aborted socket stays until its RST went out (smoltcp then forgets the peer).
            if st == S::TimeWait || (st == S::Closed && s.remote_endpoint().is_none()) {
                sockets.remove(o.h);
                if let Some(p) = o.port {
                    ports.remove(TCP, p, o.id);
                }
                return false;
            }
            if s.recv_queue() > 0 || o.deadline.is_some_and(|d| now >= d) {
                // Data for a closed socket, or a peer that never finishes: reset.
                let _ = s.recv(|b| (b.len(), ()));
                s.abort();
                again = true;
            }
            true
        });
        again
    }

    /// The SO_REUSEPORT listeners of each port: (id, v6, v6only, address), by id.
    fn reuseport_groups(&self) -> HashMap<u16, Vec<(u64, bool, bool, IpAddr)>> {
        let mut g: HashMap<u16, Vec<_>> = HashMap::new();
        for (&id, e) in &self.tcp {
            if let (St::Listen(_), Some(p), Some(_)) = (&e.st, e.port, e.opts.reuseport) {
                g.entry(p)
                    .or_default()
                    .push((id, e.v6, e.opts.v6only, e.addr));
            }
        }
        for m in g.values_mut() {
            m.sort_by_key(|x| x.0);
        }
        g
    }

    /// Wake a socket when its readiness changes or data arrived. Not when only its send
    /// queue shrank: a writer blocked on a full buffer is woken once EV_OUT comes back (a
    /// third of the buffer free, Linux's sk_stream_write_space), not by every ACK.
    pub(crate) fn tcp_collect_wakes(&mut self, out: &mut Vec<Waker>) {
        for e in self.tcp.values_mut() {
            let (m, r, _) = events(e, &self.sockets);
            wake_on_change(&mut e.sig, (m, r), &e.waker, out);
        }
    }

    fn ent(&mut self, id: u64) -> &mut Ent {
        self.tcp.get_mut(&id).expect("live tcp socket")
    }

    /// Drop a listener's pool; connections not accepted yet are reset.
    fn stop_listening(&mut self, l: Listener) {
        for h in l.pool.into_iter().map(|p| p.0).chain(l.ready) {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if s.state() == S::Listen {
                self.sockets.remove(h);
            } else {
                s.abort();
                let oid = self.id();
                self.orphans.push(Orphan {
                    h,
                    id: oid,
                    port: None,
                    deadline: None,
                });
            }
        }
    }

    /// Linux's tcp_disconnect: the connection (or listener) is reset and the socket is
    /// unconnected again; a port it got implicitly is given back.
    fn tcp_disconnect(&mut self, id: u64) {
        let Some(e) = self.tcp.get_mut(&id) else {
            return;
        };
        let st = std::mem::replace(&mut e.st, St::Init);
        let port = e.port;
        let implicit = !e.bound;
        e.shut = 0;
        e.fin = false;
        e.dead = false;
        e.err = None;
        e.connecting = false;
        e.unreported = false;
        e.local = None;
        e.remote = None;
        e.last = S::Closed;
        if implicit {
            e.port = None;
        }
        match st {
            St::Init => {}
            St::Listen(l) => self.stop_listening(l),
            St::Conn(h) => {
                self.sockets.get_mut::<tcp::Socket>(h).abort();
                let oid = self.id();
                self.orphans.push(Orphan {
                    h,
                    id: oid,
                    port: None,
                    deadline: None,
                });
            }
        }
        if let Some(p) = port {
            if implicit {
                self.ports.remove(TCP, p, id);
            } else {
                self.ports.unlisten(TCP, p, id);
            }
        }
    }

    fn tcp_release(&mut self, id: u64) {
        let Some(e) = self.tcp.remove(&id) else {
            return;
        };
        let now = Instant::now();
        match e.st {
            St::Init => {
                if let Some(p) = e.port {
                    self.ports.remove(TCP, p, id);
                }
            }
            St::Listen(l) => {
                if let Some(p) = e.port {
                    self.ports.remove(TCP, p, id);
                }
                self.stop_listening(l);
            }
            St::Conn(h) => {
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                if s.recv_queue() > 0 || e.opts.linger0 || e.connecting {
                    // Unread data is lost: Linux resets the connection.
                    s.abort();
                } else {
                    s.close();
                }
                let oid = self.id();
                if let Some(p) = e.port {
                    self.ports.orphan(TCP, p, id, oid);
                }
                self.orphans.push(Orphan {
                    h,
                    id: oid,
                    port: e.port,
                    deadline: Some(now + ORPHAN_TIMEOUT),
                });
            }
        }
    }
}

/// A TCP socket of the stack.
pub struct TcpSocket {
    sh: Arc<Shared>,
    id: u64,
    v6: bool,
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        let id = self.id;
        self.sh.run(|i| i.tcp_release(id));
    }
}

impl TcpSocket {
    pub(crate) fn new(sh: Arc<Shared>, v6: bool) -> TcpSocket {
        let id = sh.peek(|i| {
            let id = i.id();
            i.tcp.insert(id, Ent::new(v6, TcpOpts::default()));
            id
        });
        TcpSocket { sh, id, v6 }
    }

    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Called whenever readiness or queue lengths change.
    pub fn set_waker(&self, w: Waker) {
        self.sh.peek(|i| i.ent(self.id).waker = Some(w));
    }

    pub fn opts(&self) -> TcpOpts {
        self.sh.peek(|i| i.ent(self.id).opts)
    }

    /// Change options; buffer sizes only matter before listen/connect.
    pub fn set_opts(&self, o: TcpOpts) {
        let id = self.id;
        self.sh.run(|i| {
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            let old = e.opts;
            e.opts = o;
            i.dev.tcp_tos_on |= !o.tos.is_zero();
            if old.reuse() != o.reuse() {
                if let Some(p) = e.port {
                    i.ports.set_reuse(TCP, p, id, o.reuse());
                }
            }
            match &e.st {
                St::Conn(h) => apply_opts(i.sockets.get_mut::<tcp::Socket>(*h), &o),
                St::Listen(l) => {
                    for h in l.pool.iter().map(|p| &p.0).chain(l.ready.iter()) {
                        apply_opts(i.sockets.get_mut::<tcp::Socket>(*h), &o);
                    }
                }
                St::Init => {}
            }
        })
    }

    /// The address as the stack handles it, checked against the socket's family.
    fn norm(&self, a: SocketAddr, v6only: bool) -> Result<SocketAddr> {
        match (self.v6, a) {
            (false, SocketAddr::V6(_)) => Err(Error::AfNoSupport),
            (true, SocketAddr::V4(_)) => Err(Error::AfNoSupport),
            (true, SocketAddr::V6(v)) if v.ip().to_ipv4_mapped().is_some() && v6only => {
                Err(Error::Invalid)
            }
            _ => Ok(unmap(a)),
        }
    }

    pub fn bind(&self, a: SocketAddr) -> Result<()> {
        let id = self.id;
        let v6 = self.v6;
        let o = self.opts();
        let a = self.norm(a, o.v6only)?;
        self.sh.run(|i| {
            if !i.is_local(a.ip()) {
                return Err(Error::AddrNotAvail);
            }
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            if e.port.is_some() || !matches!(e.st, St::Init) {
                return Err(Error::Invalid);
            }
            let u = Use::new(id, v6, e.opts.v6only, a.ip(), e.opts.reuse());
            let p = i.ports.add(TCP, a.port(), u)?;
            e.port = Some(p);
            e.bound = true;
            e.addr = a.ip();
            Ok(())
        })
    }

    pub fn listen(&self, backlog: usize) -> Result<()> {
        let id = self.id;
        let v6 = self.v6;
        self.sh.run(|i| {
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            match &mut e.st {
                St::Conn(_) => return Err(Error::Invalid),
                St::Listen(l) => {
                    l.backlog = backlog;
                    return Ok(());
                }
                St::Init => {}
            }
            let port = match e.port {
                Some(p) => p,
                None => {
                    let u = Use::new(id, v6, e.opts.v6only, e.addr, e.opts.reuse());
                    let p = i.ports.add(TCP, 0, u)?;
                    e.port = Some(p);
                    p
                }
            };
            i.ports.set_listen(TCP, port, id)?;
            e.st = St::Listen(Listener {
                backlog,
                pool: vec![],
                ready: VecDeque::new(),
            });
            Ok(())
        })
    }

    pub fn is_listening(&self) -> bool {
        self.sh.peek(|i| matches!(i.ent(self.id).st, St::Listen(_)))
    }

    /// A connection from the accept queue, with the peer's address.
    pub fn accept(&self) -> Result<(TcpSocket, SocketAddr)> {
        let id = self.id;
        let v6 = self.v6;
        let (nid, peer) = self.sh.run(|i| {
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            let opts = e.opts;
            let port = e.port;
            let St::Listen(l) = &mut e.st else {
                return Err(Error::Invalid);
            };
            let h = l.ready.pop_front().ok_or(Error::WouldBlock)?;
            let s = i.sockets.get::<tcp::Socket>(h);
            let mut ne = Ent::new(v6, opts);
            ne.local = s.local_endpoint().map(|l| map_for(v6, ep(l)));
            ne.remote = s.remote_endpoint().map(|r| map_for(v6, ep(r)));
            ne.last = S::Established;
            ne.st = St::Conn(h);
            let peer = ne.remote.unwrap_or(unspecified(v6));
            let nid = i.id();
            // The connection shares the listener's port reservation (Linux's inherited
            // bind bucket): rebinding the port while it lives needs SO_REUSEADDR.
            if let Some(p) = port {
                i.ports.share(TCP, p, id, nid);
                ne.port = Some(p);
                ne.bound = true;
            }
            i.tcp.insert(nid, ne);
            Ok((nid, peer))
        })?;
        Ok((
            TcpSocket {
                sh: self.sh.clone(),
                id: nid,
                v6,
            },
            peer,
        ))
    }

    /// Start connecting: Err(InProgress) when the handshake started (then wait for
    /// [`TcpSocket::connect_result`]), Err(Already) while one is in progress, Ok(()) for
    /// the first call after a connection that was started earlier got established.
    pub fn connect(&self, a: SocketAddr) -> Result<()> {
        let id = self.id;
        let v6 = self.v6;
        let o = self.opts();
        let mut a = self.norm(a, false)?;
        if a.ip().is_unspecified() {
            // Linux connects to the wildcard address as to loopback.
            a.set_ip(match a.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        if v6 && o.v6only && a.is_ipv4() {
            return Err(Error::NetUnreach);
        }
        self.sh.run(|i| {
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            match &e.st {
                St::Listen(_) => return Err(Error::IsConn),
                St::Conn(h) => {
                    if e.connecting {
                        return Err(Error::Already);
                    }
                    if e.unreported {
                        // The first connect(2) after a non-blocking one finished
                        // reports how it went (ECONNABORTED if SO_ERROR took the error).
                        e.unreported = false;
                        if let Some(err) = e.err.take() {
                            return Err(err);
                        }
                        if !e.dead {
                            return Ok(());
                        }
                        return Err(Error::ConnAborted);
                    }
                    if !e.dead {
                        return Err(Error::IsConn);
                    }
                    // A failed connection: start over.
                    let h = *h;
                    i.sockets.remove(h);
                    e.st = St::Init;
                    e.dead = false;
                    e.fin = false;
                    e.shut = 0;
                    e.err = None;
                    e.local = None;
                    e.remote = None;
                }
                St::Init => {}
            }
            if !i.routable(a.ip()) {
                return Err(Error::NetUnreach);
            }
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            if e.addr.is_ipv4() != a.is_ipv4() && !e.addr.is_unspecified() {
                return Err(Error::NetUnreach);
            }
            if a.port() == 0 {
                return Err(Error::ConnRefused);
            }
            let port = match e.port {
                Some(p) => p,
                None => {
                    let u = Use::new(id, v6, e.opts.v6only, e.addr, e.opts.reuse());
                    let p = i.ports.add(TCP, 0, u)?;
                    e.port = Some(p);
                    p
                }
            };
            let local = IpListenEndpoint {
                addr: (!e.addr.is_unspecified()).then(|| IpAddress::from(e.addr)),
                port,
            };
            let mut s = new_sock(&e.opts);
            let remote = IpEndpoint::new(IpAddress::from(a.ip()), a.port());
            s.connect(i.iface.context(), remote, local)
                .map_err(|_| Error::AddrNotAvail)?;
            apply_opts(&mut s, &e.opts);
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            e.st = St::Conn(i.sockets.add(s));
            e.connecting = true;
            e.unreported = true;
            e.connect_deadline = Some(Instant::now() + CONNECT_TIMEOUT);
            e.last = S::SynSent;
            Err(Error::InProgress)
        })
    }

    /// The outcome of a connect: None while in progress. Reporting it consumes it.
    pub fn connect_result(&self) -> Option<Result<()>> {
        self.sh.peek(|i| {
            let e = i.ent(self.id);
            if e.connecting {
                return None;
            }
            e.unreported = false;
            Some(match e.err.take() {
                Some(err) => Err(err),
                None if e.dead && e.remote.is_none() => Err(Error::ConnRefused),
                None => Ok(()),
            })
        })
    }

    pub fn is_connecting(&self) -> bool {
        self.sh.peek(|i| i.ent(self.id).connecting)
    }

    /// Queue `data` for sending: how much was taken.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        self.send_with(data.len(), &mut |at, b| {
            b.copy_from_slice(&data[at..at + b.len()]);
            true
        })
    }

    /// Queue up to `len` bytes for sending, written straight into the send buffer by
    /// `fill(at, dst)` (bytes `at..at + dst.len()` of the caller's data). A fill that fails
    /// stops the send there: Err(Fault) if nothing was taken. How much was taken.
    pub fn send_with(
        &self,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [u8]) -> bool,
    ) -> Result<usize> {
        let id = self.id;
        self.sh.run(|i| {
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            let St::Conn(h) = &e.st else {
                return Err(Error::Pipe);
            };
            if let Some(err) = e.err.take() {
                return Err(err);
            }
            if e.connecting {
                return Err(Error::WouldBlock);
            }
            if e.shut & SHUT_WR != 0 || e.dead {
                return Err(Error::Pipe);
            }
            let s = i.sockets.get_mut::<tcp::Socket>(*h);
            let mut done = 0;
            // Two rounds at most: the free space may wrap around the ring's end.
            while done < len {
                let r = s.send(|b| {
                    let n = b.len().min(len - done);
                    match n > 0 && fill(done, &mut b[..n]) {
                        true => (n, Some(n)),
                        false => (0, (n > 0).then_some(0)),
                    }
                });
                match r {
                    Ok(Some(0)) if done == 0 => return Err(Error::Fault),
                    Ok(Some(n)) if n > 0 => done += n,
                    Ok(_) => break,
                    Err(_) if done == 0 => return Err(Error::Pipe),
                    Err(_) => break,
                }
            }
            match done {
                0 if len > 0 => Err(Error::WouldBlock),
                n => Ok(n),
            }
        })
    }

    /// Receive (or with `peek`, copy) up to `buf.len()` bytes; Ok(0) at end of stream.
    pub fn recv(&self, buf: &mut [u8], peek: bool) -> Result<usize> {
        let len = buf.len();
        self.recv_with(len, peek, &mut |at, b| {
            buf[at..at + b.len()].copy_from_slice(b);
            true
        })
    }

    /// Receive (or with `peek`, copy) up to `len` bytes, handed straight from the receive
    /// buffer to `drain(at, src)` (bytes `at..at + src.len()` of what is received). A
    /// drain that fails keeps those bytes queued and ends the receive: Err(Fault) if
    /// nothing was received. Ok(0) at end of stream.
    pub fn recv_with(
        &self,
        len: usize,
        peek: bool,
        drain: &mut dyn FnMut(usize, &[u8]) -> bool,
    ) -> Result<usize> {
        let id = self.id;
        let f = |i: &mut Inner| {
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            let St::Conn(h) = &e.st else {
                return Err(Error::NotConn);
            };
            if e.connecting {
                return Err(Error::WouldBlock);
            }
            let s = i.sockets.get_mut::<tcp::Socket>(*h);
            if s.can_recv() {
                if peek {
                    let mut tmp = vec![0u8; len.min(s.recv_queue())];
                    let n = s.peek_slice(&mut tmp).unwrap_or(0);
                    return match drain(0, &tmp[..n]) {
                        true => Ok(n),
                        false => Err(Error::Fault),
                    };
                }
                let mut done = 0;
                // Two rounds at most: the data may wrap around the ring's end.
                while done < len {
                    let r = s.recv(|b| {
                        let n = b.len().min(len - done);
                        match n > 0 && drain(done, &b[..n]) {
                            true => (n, Some(n)),
                            false => (0, (n > 0).then_some(0)),
                        }
                    });
                    match r {
                        Ok(Some(0)) if done == 0 => return Err(Error::Fault),
                        Ok(Some(n)) if n > 0 => done += n,
                        _ => break,
                    }
                }
                return Ok(done);
            }
            if let Some(err) = e.err.take() {
                return Err(err);
            }
            if e.shut & SHUT_RD != 0 || e.fin || e.dead {
                return Ok(0);
            }
            Err(Error::WouldBlock)
        };
        self.sh.run_or_peek(peek, f)
    }

    /// shutdown(2) with SHUT_RD / SHUT_WR bits.
    pub fn shutdown(&self, how: u8) -> Result<()> {
        let id = self.id;
        self.sh.run(|i| {
            let e = i.tcp.get_mut(&id).expect("live tcp socket");
            match &mut e.st {
                St::Init => Err(Error::NotConn),
                St::Listen(_) => {
                    // SHUT_RD stops listening (Linux disconnects the socket).
                    if how & SHUT_RD != 0 {
                        i.tcp_disconnect(id);
                    }
                    Ok(())
                }
                St::Conn(h) => {
                    let s = i.sockets.get_mut::<tcp::Socket>(*h);
                    if e.connecting {
                        s.abort();
                        e.connecting = false;
                        e.dead = true;
                        return Ok(());
                    }
                    if e.dead {
                        return Err(Error::NotConn);
                    }
                    e.shut |= how;
                    if how & SHUT_WR != 0 {
                        if s.state() == S::CloseWait {
                            e.fin = true;
                        }
                        s.close();
                    }
                    Ok(())
                }
            }
        })
    }

    /// connect(2) with AF_UNSPEC.
    pub fn disconnect(&self) {
        let id = self.id;
        self.sh.run(|i| i.tcp_disconnect(id));
    }

    /// getsockname(2).
    pub fn local_addr(&self) -> SocketAddr {
        let v6 = self.v6;
        self.sh.peek(|i| {
            let e = i.ent(self.id);
            if let Some(l) = e.local {
                return l;
            }
            match e.port {
                Some(p) => map_for(v6, SocketAddr::new(e.addr, p)),
                None => unspecified(v6),
            }
        })
    }

    /// getpeername(2).
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.sh.peek(|i| {
            let e = i.ent(self.id);
            match (&e.st, e.remote) {
                (St::Conn(_), Some(r)) if !e.connecting && !e.dead => Ok(r),
                _ => Err(Error::NotConn),
            }
        })
    }

    /// Readiness (EV_* bits).
    pub fn events(&self) -> u32 {
        self.sh.peek(|i| events(&i.tcp[&self.id], &i.sockets).0)
    }

    /// SO_ERROR: the pending error, cleared.
    pub fn take_error(&self) -> Option<Error> {
        self.sh.peek(|i| {
            let e = i.ent(self.id);
            e.err.take()
        })
    }

    /// Bytes waiting to be read (FIONREAD) and waiting to be sent (TIOCOUTQ).
    pub fn queues(&self) -> (usize, usize) {
        self.sh.peek(|i| {
            let (_, r, s) = events(&i.tcp[&self.id], &i.sockets);
            (r, s)
        })
    }

    /// The connection's state as Linux numbers it (TCP_ESTABLISHED = 1 ... TCP_LISTEN = 10,
    /// TCP_CLOSE = 7), for /proc/net/tcp and TCP_INFO.
    pub fn state(&self) -> u8 {
        self.sh.peek(|i| {
            let e = &i.tcp[&self.id];
            match &e.st {
                St::Init => 7,
                St::Listen(_) => 10,
                St::Conn(_) if e.dead => 7,
                St::Conn(h) => match i.sockets.get::<tcp::Socket>(*h).state() {
                    S::Established => 1,
                    S::SynSent => 2,
                    S::SynReceived => 3,
                    S::FinWait1 => 4,
                    S::FinWait2 => 5,
                    S::TimeWait => 6,
                    S::Closed | S::Listen => 7,
                    S::CloseWait => 8,
                    S::LastAck => 9,
                    S::Closing => 11,
                },
            }
        })
    }

    /// A listener's accept queue: (connections waiting, backlog); None when not listening.
    pub fn accept_queue(&self) -> Option<(usize, usize)> {
        self.sh.peek(|i| match &i.ent(self.id).st {
            St::Listen(l) => Some((l.ready.len(), l.backlog)),
            _ => None,
        })
    }

    /// The buffer sizes in use (the smoltcp buffers once connected).
    pub fn buffer_sizes(&self) -> (usize, usize) {
        self.sh.peek(|i| {
            let e = &i.tcp[&self.id];
            match &e.st {
                St::Conn(h) => {
                    let s = i.sockets.get::<tcp::Socket>(*h);
                    (s.recv_capacity(), s.send_capacity())
                }
                _ => (
                    e.opts.rcvbuf.clamp(BUF_MIN, BUF_MAX),
                    e.opts.sndbuf.clamp(BUF_MIN, BUF_MAX),
                ),
            }
        })
    }
}

/// Which listener of a SO_REUSEPORT group takes the connection `remote` -> `local`: one
/// of those that may (family, bound address) chosen by a hash of the 4-tuple, as Linux
/// spreads them. None when fewer than two may.
fn reuseport_pick(
    groups: &HashMap<u16, Vec<(u64, bool, bool, IpAddr)>>,
    port: Option<u16>,
    remote: SocketAddr,
    local: SocketAddr,
) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let members: Vec<u64> = groups
        .get(&port?)?
        .iter()
        .filter(|&&(_, v6, v6only, addr)| {
            let family = match remote.ip() {
                IpAddr::V4(_) => !v6 || !v6only,
                IpAddr::V6(_) => v6,
            };
            family && (addr.is_unspecified() || addr == local.ip())
        })
        .map(|m| m.0)
        .collect();
    if members.len() < 2 {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (remote, local).hash(&mut h);
    Some(members[(h.finish() % members.len() as u64) as usize])
}

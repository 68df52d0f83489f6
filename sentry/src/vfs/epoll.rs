//! epoll(7): interest lists, ready lists, level- and edge-triggered reporting.
//!
//! Readiness comes from each watched file's `FileOps::poll()`. Wake-ups come from the
//! files' wait queues: a task in epoll_wait adds its waiter to the queue of every
//! watched file (and to the epoll's own queue, which epoll_ctl wakes) and re-scans when
//! woken. Files with a host fd and no wait queue are re-checked every 10 ms.
//!
//! Edge-triggered entries need to know that something happened on a file since the
//! last report, not only whether it is ready: every entry keeps its own `Waiter` on the
//! file's wait queue for as long as it is registered, used as a "woken since" flag.
//!
//! The set holds only weak references to the files it watches: an entry goes away when
//! the last reference to its open file description is closed. Because a blocked waiter
//! must hold the files whose queues it sleeps on, it lets go of them and re-collects them
//! every 100 ms, so that closing a watched file elsewhere is not held up for longer.
//!
//! An epoll set is itself pollable. Nested sets are handled directly by the outer set
//! (it waits on the inner set's files). For other pollers (poll/select on an epoll fd),
//! a small "pump" thread, started the first time such a poller finds the set not ready,
//! forwards the watched files' wake-ups to the set's own queue.

use super::*;
use crate::waitq::Waiter;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Weak;
use std::time::{Duration, Instant};

pub const EPOLLIN: u32 = 0x1;
pub const EPOLLPRI: u32 = 0x2;
pub const EPOLLOUT: u32 = 0x4;
pub const EPOLLERR: u32 = 0x8;
pub const EPOLLHUP: u32 = 0x10;
pub const EPOLLRDNORM: u32 = 0x40;
pub const EPOLLRDHUP: u32 = 0x2000;
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
pub const EPOLLWAKEUP: u32 = 1 << 29;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;
/// Flags that configure an entry rather than name events.
const PRIVATE: u32 = EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLONESHOT | EPOLLET;
/// What may accompany EPOLLEXCLUSIVE.
const EXCLUSIVE_OK: u32 =
    EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;

pub const EPOLL_CTL_ADD: i32 = 1;
pub const EPOLL_CTL_DEL: i32 = 2;
pub const EPOLL_CTL_MOD: i32 = 3;
pub const EPOLL_CLOEXEC: u32 = O_CLOEXEC;

/// The deepest chain of epoll sets watching epoll sets (Linux's EP_MAX_NESTS).
pub const MAX_NESTS: usize = 4;
/// How often a blocked waiter re-collects the files it watches.
const REFRESH: Duration = Duration::from_millis(100);
/// How often files that have only a host fd are re-polled.
const HOST_SLICE: Duration = Duration::from_millis(10);

/// Bumped by every change to any interest list, so that blocked waiters re-collect.
static GEN: AtomicU64 = AtomicU64::new(0);
/// Held while an epoll set is added to another, so that two racing adds cannot build
/// a loop between them (Linux's epnested_mutex).
static NEST: Mutex<()> = Mutex::new(());

struct Entry {
    fd: i32,
    file: Weak<OpenFile>,
    /// The open file description's address (with `fd`, the entry's identity).
    key: usize,
    /// Registered on the file's wait queue while the entry exists: "woken since".
    edge: Arc<Waiter>,
    /// Requested events, with EPOLLERR | EPOLLHUP and the private flags.
    events: u32,
    data: u64,
    /// Readiness seen at the last consuming scan (edges of files without a queue).
    last: u32,
    /// Added or modified since the last report (edge-triggered entries report once).
    fresh: bool,
    /// EPOLLONESHOT fired: nothing is reported until EPOLL_CTL_MOD.
    disarmed: bool,
    /// On the ready list.
    queued: bool,
}

#[derive(Default)]
struct Set {
    /// Entries by id; ids grow, so this is also the order they were added in.
    entries: BTreeMap<u64, Entry>,
    /// The ready list: ids in the order they will be reported.
    ready: VecDeque<u64>,
    next_id: u64,
}

pub struct EpollFile {
    set: Mutex<Set>,
    /// Woken by epoll_ctl and by the pump; what pollers of the epoll fd sleep on.
    wq: WaitQueue,
    pump: Arc<Waiter>,
    pump_running: AtomicBool,
    me: Weak<EpollFile>,
    /// The sets watching this one (one per entry), for the nesting limit.
    parents: Mutex<Vec<Weak<EpollFile>>>,
}

/// The epoll set behind an open file, if it is one.
pub fn as_epoll(f: &OpenFile) -> Option<&EpollFile> {
    f.ops.as_any().downcast_ref::<EpollFile>()
}

fn file_key(f: &Arc<OpenFile>) -> usize {
    Arc::as_ptr(f) as usize
}

/// The queue a watched file's events are announced on.
fn queue_of(f: &OpenFile) -> Option<&WaitQueue> {
    match as_epoll(f) {
        Some(ep) => Some(&ep.wq),
        None => f.ops.wait_queue(),
    }
}

/// Readiness of a watched file. Nested sets are asked directly, without a pump.
fn poll_file(f: &OpenFile, depth: usize) -> u32 {
    match as_epoll(f) {
        Some(ep) if depth <= MAX_NESTS => {
            if ep.peek(depth + 1) {
                EPOLLIN | EPOLLRDNORM
            } else {
                0
            }
        }
        Some(_) => 0,
        None => f.ops.poll(),
    }
}

/// Has `w` been notified since it was last cleared?
fn woken(w: &Waiter) -> bool {
    // With a deadline already passed, wait() only reports the flag: true means "not woken".
    !w.wait(Some(Instant::now()))
}

impl Entry {
    /// Whether the entry reports an event now, as (events, data). With `consume`, the
    /// report happens: edge state and EPOLLONESHOT are updated.
    fn check(&mut self, f: &OpenFile, depth: usize, consume: bool) -> Option<(u32, u64)> {
        if self.disarmed {
            return None;
        }
        let et = self.events & EPOLLET != 0;
        // Clear the flag before polling: a wake-up after this point is seen next time.
        let fired = woken(&self.edge);
        if fired && consume {
            self.edge.clear();
        }
        let ready = poll_file(f, depth) & self.events & !PRIVATE;
        let last = self.last;
        if consume {
            self.last = ready;
        }
        if ready == 0 {
            return None;
        }
        if et && !(self.fresh || fired || ready & !last != 0) {
            return None;
        }
        if consume {
            self.fresh = false;
            if self.events & EPOLLONESHOT != 0 {
                self.disarmed = true;
            }
        }
        Some((ready, self.data))
    }
}

impl EpollFile {
    pub fn new() -> Arc<EpollFile> {
        Arc::new_cyclic(|me| EpollFile {
            set: Mutex::new(Set::default()),
            wq: WaitQueue::default(),
            pump: Arc::new(Waiter::default()),
            pump_running: AtomicBool::new(false),
            me: me.clone(),
            parents: Mutex::new(vec![]),
        })
    }

    fn changed(&self) {
        GEN.fetch_add(1, Ordering::AcqRel);
        self.wq.notify_all();
        self.pump.notify();
    }

    /// Does this set, or one nested in it, watch the set `target`?
    fn reaches(&self, target: *const EpollFile, depth: usize) -> bool {
        if std::ptr::eq(self, target) {
            return true;
        }
        if depth > MAX_NESTS {
            return false;
        }
        let files: Vec<Arc<OpenFile>> = {
            let s = self.set.lock();
            s.entries
                .values()
                .filter_map(|e| e.file.upgrade())
                .collect()
        };
        files
            .iter()
            .filter_map(|f| as_epoll(f))
            .any(|ep| ep.reaches(target, depth + 1))
    }

    /// The length of the longest chain of sets above this one (watching it).
    fn height(&self, depth: usize) -> usize {
        if depth > MAX_NESTS {
            return depth;
        }
        let parents: Vec<Arc<EpollFile>> = self
            .parents
            .lock()
            .iter()
            .filter_map(|p| p.upgrade())
            .collect();
        parents
            .iter()
            .map(|p| 1 + p.height(depth + 1))
            .max()
            .unwrap_or(0)
    }

    /// The length of the longest chain of sets nested below this one.
    fn nesting(&self, depth: usize) -> usize {
        if depth > MAX_NESTS {
            return depth;
        }
        let files: Vec<Arc<OpenFile>> = {
            let s = self.set.lock();
            s.entries
                .values()
                .filter_map(|e| e.file.upgrade())
                .collect()
        };
        files
            .iter()
            .filter_map(|f| as_epoll(f))
            .map(|ep| 1 + ep.nesting(depth + 1))
            .max()
            .unwrap_or(0)
    }

    /// epoll_ctl. `file` is what `fd` refers to; `events` and `data` are ignored for DEL.
    pub fn ctl(
        &self,
        op: i32,
        fd: i32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
    ) -> KResult<()> {
        let key = file_key(file);
        let target_ep = as_epoll(file);
        // EPOLLEXCLUSIVE: only at ADD, only with a few events, not for nested sets.
        let bad_exclusive = match op {
            EPOLL_CTL_MOD => true,
            EPOLL_CTL_ADD => target_ep.is_some() || events & !EXCLUSIVE_OK != 0,
            _ => false,
        };
        if events & EPOLLEXCLUSIVE != 0 && bad_exclusive {
            return Err(EINVAL);
        }
        let _nest = (op == EPOLL_CTL_ADD && target_ep.is_some()).then(|| NEST.lock());
        if op == EPOLL_CTL_ADD {
            if let Some(t) = target_ep {
                if t.reaches(self as *const _, 0) || self.height(0) + 1 + t.nesting(0) > MAX_NESTS {
                    return Err(ELOOP);
                }
            }
        }
        let mut s = self.set.lock();
        // Entries whose file is gone do not count (and an address may have been reused).
        let dead: Vec<u64> = s
            .entries
            .iter()
            .filter(|(_, e)| e.file.strong_count() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            s.entries.remove(&id);
            s.ready.retain(|x| *x != id);
        }
        let found = s
            .entries
            .iter()
            .find(|(_, e)| e.fd == fd && e.key == key)
            .map(|(id, _)| *id);
        let events = if op == EPOLL_CTL_DEL {
            0
        } else {
            events | EPOLLERR | EPOLLHUP
        };
        match op {
            EPOLL_CTL_ADD => {
                if found.is_some() {
                    return Err(EEXIST);
                }
                let edge = Arc::new(Waiter::default());
                if let Some(q) = queue_of(file) {
                    q.add(&edge);
                }
                if let Some(t) = target_ep {
                    let mut ps = t.parents.lock();
                    ps.retain(|p| p.strong_count() > 0);
                    ps.push(self.me.clone());
                }
                let id = s.next_id;
                s.next_id += 1;
                s.entries.insert(
                    id,
                    Entry {
                        fd,
                        file: Arc::downgrade(file),
                        key,
                        edge,
                        events,
                        data,
                        last: 0,
                        fresh: true,
                        disarmed: false,
                        queued: false,
                    },
                );
            }
            EPOLL_CTL_MOD => {
                let id = found.ok_or(ENOENT)?;
                let e = s.entries.get_mut(&id).expect("found");
                if e.events & EPOLLEXCLUSIVE != 0 {
                    return Err(EINVAL);
                }
                e.events = events;
                e.data = data;
                e.fresh = true;
                e.disarmed = false;
            }
            EPOLL_CTL_DEL => {
                let id = found.ok_or(ENOENT)?;
                let e = s.entries.remove(&id).expect("found");
                s.ready.retain(|x| *x != id);
                if let Some(q) = queue_of(file) {
                    q.remove(&e.edge);
                }
                if let Some(t) = target_ep {
                    let mut ps = t.parents.lock();
                    if let Some(i) = ps.iter().position(|p| std::ptr::eq(p.as_ptr(), self)) {
                        ps.swap_remove(i);
                    }
                }
            }
            _ => return Err(EINVAL),
        }
        drop(s);
        self.changed();
        Ok(())
    }

    /// Would epoll_wait report anything now? (No state changes.)
    fn peek(&self, depth: usize) -> bool {
        let mut s = self.set.lock();
        s.entries.values_mut().any(|e| match e.file.upgrade() {
            Some(f) => e.check(&f, depth, false).is_some(),
            None => false,
        })
    }

    /// Take up to `max` events, in ready-list order (Linux's): entries already on the
    /// ready list first, then newly ready ones in the order they were added; a
    /// level-triggered entry that is reported goes to the back of the list.
    pub fn harvest(&self, max: usize) -> Vec<(u32, u64)> {
        let mut guard = self.set.lock();
        let s = &mut *guard;
        let mut dead = vec![];
        // Discover newly ready entries.
        for (id, e) in s.entries.iter_mut() {
            if e.queued || e.disarmed {
                continue;
            }
            match e.file.upgrade() {
                None => dead.push(*id),
                Some(f) => {
                    if e.check(&f, 0, false).is_some() {
                        e.queued = true;
                        s.ready.push_back(*id);
                    }
                }
            }
        }
        for id in dead {
            s.entries.remove(&id);
            s.ready.retain(|x| *x != id);
        }
        let mut out = vec![];
        let mut requeue = vec![];
        while out.len() < max {
            let Some(id) = s.ready.pop_front() else { break };
            let Some(e) = s.entries.get_mut(&id) else {
                continue;
            };
            e.queued = false;
            let Some(f) = e.file.upgrade() else { continue };
            if let Some(r) = e.check(&f, 0, true) {
                out.push(r);
                if e.events & (EPOLLET | EPOLLONESHOT) == 0 {
                    e.queued = true;
                    requeue.push(id);
                }
            }
        }
        s.ready.extend(requeue);
        out
    }

    /// Every file to wait on, through nested sets. Returns whether any of them can only
    /// be polled on the host.
    fn collect(&self, out: &mut Vec<Arc<OpenFile>>, depth: usize) -> bool {
        let mut host = false;
        let files: Vec<Arc<OpenFile>> = {
            let s = self.set.lock();
            s.entries
                .values()
                .filter(|e| !e.disarmed)
                .filter_map(|e| e.file.upgrade())
                .collect()
        };
        for f in files {
            if let Some(ep) = as_epoll(&f) {
                if depth < MAX_NESTS {
                    host |= ep.collect(out, depth + 1);
                }
            } else if f.ops.host_fd().is_some() {
                host = true;
            }
            out.push(f);
        }
        host
    }

    /// epoll_wait: up to `max` events, waiting up to `timeout` (None: forever).
    /// A signal ends the wait with EINTR.
    pub fn wait(
        &self,
        t: &Task,
        max: usize,
        timeout: Option<Duration>,
    ) -> KResult<Vec<(u32, u64)>> {
        let evs = self.harvest(max);
        if !evs.is_empty() || timeout == Some(Duration::ZERO) {
            return Ok(evs);
        }
        let deadline = timeout.map(|d| Instant::now() + d);
        loop {
            let mut files = vec![];
            let host = self.collect(&mut files, 0);
            let mut queues: Vec<&WaitQueue> = vec![&self.wq];
            queues.extend(files.iter().filter_map(|f| queue_of(f)));
            let gen = GEN.load(Ordering::Acquire);
            let slice = Instant::now() + if host { HOST_SLICE } else { REFRESH };
            let d = deadline.map_or(slice, |x| x.min(slice));
            let r = t.block_on(&queues, Some(d), || {
                let evs = self.harvest(max);
                if !evs.is_empty() {
                    return Some(Ok(Some(evs)));
                }
                if GEN.load(Ordering::Acquire) != gen {
                    return Some(Ok(None));
                }
                None
            });
            drop(queues);
            drop(files);
            match r {
                Ok(Some(evs)) => return Ok(evs),
                Ok(None) => {}
                Err(e) if e == ETIMEDOUT => {
                    if deadline.is_some_and(|x| Instant::now() >= x) {
                        return Ok(self.harvest(max));
                    }
                }
                Err(e) if e == ERESTARTSYS => return Err(EINTR),
                Err(e) => return Err(e),
            }
        }
    }

    fn start_pump(&self) {
        if self.pump_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.me.clone();
        let w = self.pump.clone();
        let spawned = std::thread::Builder::new()
            .name("epoll-pump".into())
            .spawn(move || pump_main(me, w));
        if spawned.is_err() {
            self.pump_running.store(false, Ordering::Release);
        }
    }
}

/// Forward wake-ups of the watched files to the set's own queue, for pollers of the
/// epoll fd that are not epoll sets themselves. Ends with the set.
fn pump_main(me: Weak<EpollFile>, w: Arc<Waiter>) {
    loop {
        let Some(ep) = me.upgrade() else { return };
        let mut files = vec![];
        let host = ep.collect(&mut files, 0);
        let queues: Vec<&WaitQueue> = files.iter().filter_map(|f| queue_of(f)).collect();
        for q in &queues {
            q.add(&w);
        }
        w.clear();
        if ep.peek(0) {
            ep.wq.notify_all();
        }
        drop(ep);
        w.wait(Some(
            Instant::now() + if host { HOST_SLICE } else { REFRESH },
        ));
        for q in &queues {
            q.remove(&w);
        }
    }
}

impl Drop for EpollFile {
    fn drop(&mut self) {
        let s = std::mem::take(&mut *self.set.lock());
        for e in s.entries.into_values() {
            if let Some(f) = e.file.upgrade() {
                if let Some(q) = queue_of(&f) {
                    q.remove(&e.edge);
                }
            }
        }
        self.pump.notify();
    }
}

impl FileOps for EpollFile {
    fn anon_name(&self) -> Option<&'static str> {
        Some("[eventpoll]")
    }
    /// Readable when epoll_wait would report something.
    fn poll(&self) -> u32 {
        if self.peek(0) {
            return EPOLLIN | EPOLLRDNORM;
        }
        // Someone other than an epoll set may sleep on our queue: keep it woken.
        self.start_pump();
        0
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.wq)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::eventfd::EventFd;
    use super::*;

    fn efd(init: u64) -> Arc<OpenFile> {
        OpenFile::new(EventFd::new(init, false), None, O_RDWR)
    }

    #[test]
    fn ctl_errors() {
        let ep = EpollFile::new();
        let f = efd(0);
        assert_eq!(ep.ctl(EPOLL_CTL_MOD, 3, &f, EPOLLIN, 0), Err(ENOENT));
        assert_eq!(ep.ctl(EPOLL_CTL_DEL, 3, &f, 0, 0), Err(ENOENT));
        ep.ctl(EPOLL_CTL_ADD, 3, &f, EPOLLIN, 0).unwrap();
        assert_eq!(ep.ctl(EPOLL_CTL_ADD, 3, &f, EPOLLIN, 0), Err(EEXIST));
        // The same file under another fd is another entry.
        ep.ctl(EPOLL_CTL_ADD, 4, &f, EPOLLIN, 0).unwrap();
        assert_eq!(ep.ctl(99, 3, &f, EPOLLIN, 0), Err(EINVAL));
        let g = efd(0);
        ep.ctl(EPOLL_CTL_ADD, 5, &g, EPOLLIN | EPOLLEXCLUSIVE, 0)
            .unwrap();
        assert_eq!(ep.ctl(EPOLL_CTL_MOD, 5, &g, EPOLLIN, 0), Err(EINVAL));
    }

    #[test]
    fn level_edge_oneshot() {
        let ep = EpollFile::new();
        let (a, b, c) = (efd(1), efd(1), efd(1));
        ep.ctl(EPOLL_CTL_ADD, 3, &a, EPOLLIN, 30).unwrap();
        ep.ctl(EPOLL_CTL_ADD, 4, &b, EPOLLIN | EPOLLET, 40).unwrap();
        ep.ctl(EPOLL_CTL_ADD, 5, &c, EPOLLIN | EPOLLONESHOT, 50)
            .unwrap();
        let data = |v: Vec<(u32, u64)>| v.into_iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(data(ep.harvest(8)), vec![30, 40, 50]);
        assert_eq!(data(ep.harvest(8)), vec![30]);
        ep.ctl(EPOLL_CTL_MOD, 5, &c, EPOLLIN | EPOLLONESHOT, 51)
            .unwrap();
        assert_eq!(data(ep.harvest(8)), vec![30, 51]);
        // A wake-up of the edge-triggered file's queue is a new edge.
        b.ops.wait_queue().unwrap().notify_all();
        assert_eq!(data(ep.harvest(8)), vec![30, 40]);
        // Closing the file drops its entry.
        drop(a);
        assert!(ep.harvest(8).is_empty());
    }

    #[test]
    fn round_robin_with_small_maxevents() {
        let ep = EpollFile::new();
        let fs: Vec<_> = (0..3).map(|_| efd(1)).collect();
        for (i, f) in fs.iter().enumerate() {
            ep.ctl(EPOLL_CTL_ADD, i as i32, f, EPOLLIN, i as u64)
                .unwrap();
        }
        let got: Vec<u64> = (0..4).map(|_| ep.harvest(1)[0].1).collect();
        assert_eq!(got, vec![0, 1, 2, 0]);
    }

    #[test]
    fn nesting_and_loops() {
        let a = EpollFile::new();
        let b = OpenFile::new(EpollFile::new(), None, O_RDWR);
        let af = OpenFile::new(a.clone(), None, O_RDWR);
        a.ctl(EPOLL_CTL_ADD, 4, &b, EPOLLIN, 0).unwrap();
        let be = as_epoll(&b).unwrap();
        assert_eq!(be.ctl(EPOLL_CTL_ADD, 3, &af, EPOLLIN, 0), Err(ELOOP));
        assert_eq!(af.ops.poll() & EPOLLIN, 0);
        let e = efd(1);
        be.ctl(EPOLL_CTL_ADD, 5, &e, EPOLLIN, 0).unwrap();
        assert_eq!(a.harvest(8), vec![(EPOLLIN, 0)]);
    }
}

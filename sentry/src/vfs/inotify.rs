//! inotify(7): watches on inodes and the queue of events an inotify descriptor reads.
//!
//! The system calls that change the file system report what they did through the
//! functions at the bottom (`path_event`, `dir_event`, `inode_event`, `inode_removed`);
//! they reach every watch on the inode (and, for events on a directory's entries, every
//! watch on the directory) through one registry keyed by inode. A watch holds its inode,
//! so the key stays valid while the watch exists; once the inode has lost its last link
//! while something else (an open file, a working directory) still holds it, the watches
//! let go of it and IN_DELETE_SELF waits for the inode to be dropped (`inode_gone`), as
//! Linux waits for the last reference to the dentry.

use super::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{OnceLock, Weak};

pub const IN_ACCESS: u32 = 0x1;
pub const IN_MODIFY: u32 = 0x2;
pub const IN_ATTRIB: u32 = 0x4;
pub const IN_CLOSE_WRITE: u32 = 0x8;
pub const IN_CLOSE_NOWRITE: u32 = 0x10;
pub const IN_OPEN: u32 = 0x20;
pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_CREATE: u32 = 0x100;
pub const IN_DELETE: u32 = 0x200;
pub const IN_DELETE_SELF: u32 = 0x400;
pub const IN_MOVE_SELF: u32 = 0x800;
pub const IN_ALL_EVENTS: u32 = 0xfff;
pub const IN_Q_OVERFLOW: u32 = 0x4000;
pub const IN_IGNORED: u32 = 0x8000;
pub const IN_ONLYDIR: u32 = 0x0100_0000;
pub const IN_DONT_FOLLOW: u32 = 0x0200_0000;
pub const IN_EXCL_UNLINK: u32 = 0x0400_0000;
pub const IN_MASK_CREATE: u32 = 0x1000_0000;
pub const IN_MASK_ADD: u32 = 0x2000_0000;
pub const IN_ISDIR: u32 = 0x4000_0000;
pub const IN_ONESHOT: u32 = 0x8000_0000;

/// Events a directory's watch also sees for its entries (FS_EVENTS_POSS_ON_CHILD).
const ON_CHILD: u32 =
    IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN;

/// /proc/sys/fs/inotify/max_queued_events.
pub const MAX_QUEUED_EVENTS: usize = 16384;
/// /proc/sys/fs/inotify/max_user_instances.
pub const MAX_USER_INSTANCES: usize = 128;

/// /proc/sys/fs/inotify/max_user_watches: as Linux sizes it, 1% of memory at the cost
/// of a watch (a mark and two inodes, ~1.3 KiB), between 8192 and 1048576.
pub fn max_user_watches() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let (host_total, _) = crate::kernel::host_memory();
        let total = crate::memfile::memfile()
            .limit_bytes()
            .map_or(host_total, |l| l.min(host_total));
        ((total / 100 / 1312) as usize).clamp(8192, 1 << 20)
    })
}

/// Instances and watches per user (the effective uid that made the instance).
fn usage() -> &'static Mutex<HashMap<u32, (usize, usize)>> {
    static U: OnceLock<Mutex<HashMap<u32, (usize, usize)>>> = OnceLock::new();
    U.get_or_init(|| Mutex::new(HashMap::new()))
}

fn uncharge(uid: u32, instances: usize, watches: usize) {
    let mut u = usage().lock();
    if let Some(e) = u.get_mut(&uid) {
        e.0 = e.0.saturating_sub(instances);
        e.1 = e.1.saturating_sub(watches);
        if *e == (0, 0) {
            u.remove(&uid);
        }
    }
}

/// sizeof(struct inotify_event).
const EVENT_HDR: usize = 16;

#[derive(Clone, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// The name is padded with NULs to a multiple of the header size, with at least one.
    fn name_len(&self) -> usize {
        if self.name.is_empty() {
            0
        } else {
            (self.name.len() + 1).next_multiple_of(EVENT_HDR)
        }
    }
    fn size(&self) -> usize {
        EVENT_HDR + self.name_len()
    }
    fn encode(&self, out: &mut [u8]) {
        let nl = self.name_len();
        out[0..4].copy_from_slice(&self.wd.to_ne_bytes());
        out[4..8].copy_from_slice(&self.mask.to_ne_bytes());
        out[8..12].copy_from_slice(&self.cookie.to_ne_bytes());
        out[12..16].copy_from_slice(&(nl as u32).to_ne_bytes());
        let name = &mut out[EVENT_HDR..EVENT_HDR + nl];
        name.fill(0);
        name[..self.name.len()].copy_from_slice(&self.name);
    }
}

struct Watch {
    key: usize,
    /// The inode's number and device, for /proc/PID/fdinfo.
    ino: u64,
    dev: u64,
    /// None once the inode is unlinked and waits to be dropped.
    inode: Option<Arc<dyn Inode>>,
    mask: u32,
}

struct Inner {
    events: VecDeque<Event>,
    bytes: usize,
    watches: BTreeMap<i32, Watch>,
    next_wd: i32,
}

/// An inotify instance: the file behind an inotify descriptor.
pub struct Inotify {
    /// The user its instance and watches count against.
    uid: u32,
    inner: Mutex<Inner>,
    wq: WaitQueue,
    me: Weak<Inotify>,
}

type Targets = Vec<(Weak<Inotify>, i32)>;

/// Every watch, by inode.
fn registry() -> &'static Mutex<HashMap<usize, Targets>> {
    static REG: OnceLock<Mutex<HashMap<usize, Targets>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// How many watches exist: file operations skip all of this while there are none.
static WATCHES: AtomicUsize = AtomicUsize::new(0);

pub fn active() -> bool {
    WATCHES.load(Ordering::Relaxed) != 0
}

fn register(key: usize, who: &Weak<Inotify>, wd: i32) {
    registry()
        .lock()
        .entry(key)
        .or_default()
        .push((who.clone(), wd));
    WATCHES.fetch_add(1, Ordering::Relaxed);
}

fn unregister(key: usize, who: *const Inotify, wd: i32) {
    let mut reg = registry().lock();
    if let Some(v) = reg.get_mut(&key) {
        let before = v.len();
        v.retain(|(w, d)| !(w.as_ptr() == who && *d == wd));
        WATCHES.fetch_sub(before - v.len(), Ordering::Relaxed);
        if v.is_empty() {
            reg.remove(&key);
        }
    }
}

fn targets(inode: &Arc<dyn Inode>) -> Targets {
    registry()
        .lock()
        .get(&inode_key(inode))
        .cloned()
        .unwrap_or_default()
}

impl Inotify {
    /// A new instance for user `uid`: EMFILE past max_user_instances.
    pub fn new(uid: u32) -> KResult<Arc<Inotify>> {
        {
            let mut u = usage().lock();
            let e = u.entry(uid).or_default();
            if e.0 >= MAX_USER_INSTANCES {
                return Err(EMFILE);
            }
            e.0 += 1;
        }
        Ok(Arc::new_cyclic(|me| Inotify {
            uid,
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                bytes: 0,
                watches: BTreeMap::new(),
                next_wd: 1,
            }),
            wq: WaitQueue::default(),
            me: me.clone(),
        }))
    }

    /// inotify_add_watch on `inode` with an already checked `mask`: the watch's
    /// descriptor, the same one again for an inode already watched.
    pub fn add_watch(&self, inode: Arc<dyn Inode>, mask: u32) -> KResult<i32> {
        let key = inode_key(&inode);
        let keep = mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK);
        let mut inner = self.inner.lock();
        if let Some((wd, w)) = inner.watches.iter_mut().find(|(_, w)| w.key == key) {
            if mask & IN_MASK_CREATE != 0 {
                return Err(EEXIST);
            }
            w.mask = if mask & IN_MASK_ADD != 0 {
                w.mask | keep
            } else {
                keep
            };
            return Ok(*wd);
        }
        {
            let mut u = usage().lock();
            let e = u.entry(self.uid).or_default();
            if e.1 >= max_user_watches() {
                return Err(ENOSPC);
            }
            e.1 += 1;
        }
        let wd = inner.next_wd;
        inner.next_wd = if wd == i32::MAX { 1 } else { wd + 1 };
        let st = inode.stat();
        inner.watches.insert(
            wd,
            Watch {
                key,
                ino: st.ino,
                dev: st.dev,
                inode: Some(inode),
                mask: keep,
            },
        );
        drop(inner);
        register(key, &self.me, wd);
        Ok(wd)
    }

    pub fn rm_watch(&self, wd: i32) -> KResult<()> {
        let mut inner = self.inner.lock();
        let w = inner.watches.remove(&wd).ok_or(EINVAL)?;
        Self::queue(&mut inner, wd, IN_IGNORED, 0, &[]);
        drop(inner);
        unregister(w.key, self, wd);
        uncharge(self.uid, 0, 1);
        self.wq.notify_all();
        Ok(())
    }

    fn queue(inner: &mut Inner, wd: i32, mask: u32, cookie: u32, name: &[u8]) {
        let ev = Event {
            wd,
            mask,
            cookie,
            name: name.to_vec(),
        };
        // An event identical to the last unread one is merged into it.
        if inner.events.back() == Some(&ev) {
            return;
        }
        let ev = if inner.events.len() >= MAX_QUEUED_EVENTS {
            if inner.events.back().is_some_and(|e| e.mask == IN_Q_OVERFLOW) {
                return;
            }
            Event {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0,
                name: vec![],
            }
        } else {
            ev
        };
        inner.bytes += ev.size();
        inner.events.push_back(ev);
    }

    /// Queue `mask` for watch `wd` if the watch asks for it; a one-shot watch then goes.
    fn deliver(&self, wd: i32, mask: u32, cookie: u32, name: &[u8]) {
        let mut inner = self.inner.lock();
        let Some(w) = inner.watches.get(&wd) else {
            return;
        };
        if w.mask & mask & IN_ALL_EVENTS == 0 {
            return;
        }
        let oneshot = w.mask & IN_ONESHOT != 0;
        Self::queue(&mut inner, wd, mask, cookie, name);
        let gone = if oneshot {
            let w = inner.watches.remove(&wd);
            Self::queue(&mut inner, wd, IN_IGNORED, 0, &[]);
            w
        } else {
            None
        };
        drop(inner);
        if let Some(w) = gone {
            unregister(w.key, self, wd);
            uncharge(self.uid, 0, 1);
        }
        self.wq.notify_all();
    }

    /// The inode of watch `wd` is gone: IN_IGNORED, and the watch with it.
    fn remove_watch(&self, wd: i32) {
        let mut inner = self.inner.lock();
        let Some(w) = inner.watches.remove(&wd) else {
            return;
        };
        Self::queue(&mut inner, wd, IN_IGNORED, 0, &[]);
        drop(inner);
        unregister(w.key, self, wd);
        uncharge(self.uid, 0, 1);
        self.wq.notify_all();
    }

    /// How many of the watches `wds` still hold their inode.
    fn holding(&self, wds: &[i32]) -> usize {
        let inner = self.inner.lock();
        wds.iter()
            .filter(|wd| inner.watches.get(wd).is_some_and(|w| w.inode.is_some()))
            .count()
    }

    /// Let watch `wd` stop holding its inode (dropped after the lock is released).
    fn release_inode(&self, wd: i32) -> Option<Arc<dyn Inode>> {
        self.inner
            .lock()
            .watches
            .get_mut(&wd)
            .and_then(|w| w.inode.take())
    }

    /// The watch lines of /proc/PID/fdinfo/N, in Linux's format (without file handles).
    pub fn fdinfo(&self) -> String {
        let inner = self.inner.lock();
        let mut s = String::new();
        // Newest first, as Linux lists its marks.
        for (wd, w) in inner.watches.iter().rev() {
            // The kernel's dev_t: 12-bit major above a 20-bit minor.
            let (major, minor) = (
                (w.dev >> 8) & 0xfff,
                (w.dev & 0xff) | ((w.dev >> 12) & !0xff),
            );
            s += &format!(
                "inotify wd:{wd:x} ino:{:x} sdev:{:x} mask:{:x} ignored_mask:0\n",
                w.ino,
                (major << 20) | minor,
                w.mask
            );
        }
        s
    }

    /// Bytes of queued events (FIONREAD).
    pub fn pending_bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        let me: *const Inotify = self;
        let watches = std::mem::take(&mut self.inner.get_mut().watches);
        uncharge(self.uid, 1, watches.len());
        for (wd, w) in watches {
            unregister(w.key, me, wd);
        }
    }
}

impl FileOps for Inotify {
    fn anon_name(&self) -> Option<&'static str> {
        Some("inotify")
    }
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        t.block_on(&[&self.wq], None, || {
            let mut inner = self.inner.lock();
            let Some(first) = inner.events.front() else {
                if f.nonblock() {
                    return Some(Err(EAGAIN));
                }
                return None;
            };
            if first.size() > buf.len() {
                return Some(Err(EINVAL));
            }
            let mut done = 0;
            while let Some(ev) = inner.events.front() {
                let n = ev.size();
                if done + n > buf.len() {
                    break;
                }
                ev.encode(&mut buf[done..done + n]);
                done += n;
                inner.bytes -= n;
                inner.events.pop_front();
            }
            Some(Ok(done))
        })
    }
    fn write(&self, _f: &OpenFile, _t: &Task, _buf: &[u8], _off: u64) -> KResult<usize> {
        Err(EINVAL)
    }
    fn poll(&self) -> u32 {
        if self.inner.lock().events.is_empty() {
            0
        } else {
            POLLIN | POLLRDNORM
        }
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.wq)
    }
    fn fasync(&self) -> bool {
        true
    }
    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        const FIONREAD: u32 = 0x541b;
        if cmd != FIONREAD {
            return Err(ENOTTY);
        }
        t.mm().write_obj(arg, &(self.pending_bytes() as i32))?;
        Ok(0)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn isdir(inode: &Arc<dyn Inode>) -> u32 {
    if inode.stat().is_dir() {
        IN_ISDIR
    } else {
        0
    }
}

/// `mask` happened to `inode` itself (IN_MOVE_SELF, IN_ATTRIB for a link count): its
/// watches hear of it, with no name and, as on Linux, no IN_ISDIR.
pub fn inode_event(inode: &Arc<dyn Inode>, mask: u32) {
    if !active() {
        return;
    }
    for (who, wd) in targets(inode) {
        if let Some(i) = who.upgrade() {
            i.deliver(wd, mask, 0, &[]);
        }
    }
}

/// `mask` (an event possible on a directory's entries) happened to the file at `p`:
/// the watches on its directory hear of it with the file's name, then (as Linux
/// orders them) the watches on the file itself.
pub fn path_event(p: &Path, mask: u32) {
    if let Some(d) = &p.dentry.parent {
        if mask & ON_CHILD != 0 && !Arc::ptr_eq(&p.dentry, &p.mnt.root) {
            super::dnotify::dir_changed(&d.inode, mask);
        }
    }
    if !active() {
        return;
    }
    let inode = &p.dentry.inode;
    let parent = match &p.dentry.parent {
        Some(d) if mask & ON_CHILD != 0 && !Arc::ptr_eq(&p.dentry, &p.mnt.root) => {
            targets(&d.inode)
        }
        _ => vec![],
    };
    let own = targets(inode);
    if parent.is_empty() && own.is_empty() {
        return;
    }
    let mask = mask | isdir(inode);
    for (who, wd) in parent {
        if let Some(i) = who.upgrade() {
            i.deliver(wd, mask, 0, &p.dentry.name);
        }
    }
    for (who, wd) in own {
        if let Some(i) = who.upgrade() {
            i.deliver(wd, mask, 0, &[]);
        }
    }
}

/// An entry `name` of directory `dir` was created, deleted or moved (`mask` carries
/// IN_ISDIR when the entry is a directory).
pub fn dir_event(dir: &Arc<dyn Inode>, mask: u32, cookie: u32, name: &[u8]) {
    super::dnotify::dir_changed(dir, mask);
    if !active() {
        return;
    }
    for (who, wd) in targets(dir) {
        if let Some(i) = who.upgrade() {
            i.deliver(wd, mask, cookie, name);
        }
    }
}

/// `inode` lost its last link; the caller holds `caller_refs` references to it. With
/// no other holder but the watches: IN_DELETE_SELF, then every watch on it goes
/// (IN_IGNORED). Otherwise that waits until the inode is dropped (`inode_gone`).
pub fn inode_removed(inode: &Arc<dyn Inode>, caller_refs: usize) {
    if !active() {
        return;
    }
    let ts: Vec<(Arc<Inotify>, i32)> = targets(inode)
        .into_iter()
        .filter_map(|(w, wd)| w.upgrade().map(|i| (i, wd)))
        .collect();
    let held: usize = ts.iter().map(|(i, wd)| i.holding(&[*wd])).sum();
    if Arc::strong_count(inode) <= caller_refs + held {
        for (i, wd) in ts {
            i.deliver(wd, IN_DELETE_SELF, 0, &[]);
            i.remove_watch(wd);
        }
        return;
    }
    let mut released = vec![];
    for (i, wd) in &ts {
        released.extend(i.release_inode(*wd));
    }
    drop(released);
}

/// An inode is being dropped (called from its Drop, under no lock): the watches that
/// waited for it hear IN_DELETE_SELF and go.
pub fn inode_gone(key: usize) {
    if !active() {
        return;
    }
    let ts = registry().lock().get(&key).cloned().unwrap_or_default();
    for (who, wd) in ts {
        if let Some(i) = who.upgrade() {
            i.deliver(wd, IN_DELETE_SELF, 0, &[]);
            i.remove_watch(wd);
        }
    }
}

/// A fresh cookie tying an IN_MOVED_FROM to its IN_MOVED_TO.
pub fn next_cookie() -> u32 {
    static COOKIE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    COOKIE.fetch_add(1, Ordering::Relaxed)
}

/// The closing of an open file description (its last reference).
pub fn file_closed(f: &OpenFile) {
    if !active() || f.flags() & O_PATH != 0 {
        return;
    }
    if let Some(p) = &f.path {
        let acc = f.flags() & O_ACCMODE;
        let mask = if acc == O_WRONLY || acc == O_RDWR {
            IN_CLOSE_WRITE
        } else {
            IN_CLOSE_NOWRITE
        };
        path_event(p, mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sizes_pad_names() {
        let e = |name: &[u8]| Event {
            wd: 1,
            mask: IN_CREATE,
            cookie: 0,
            name: name.to_vec(),
        };
        assert_eq!(e(b"").size(), 16);
        assert_eq!(e(b"a").size(), 32);
        assert_eq!(e(&[b'x'; 15]).size(), 32);
        assert_eq!(e(&[b'x'; 16]).size(), 48);
        let mut out = [0xffu8; 32];
        e(b"ab").encode(&mut out);
        assert_eq!(&out[12..16], &16u32.to_ne_bytes());
        assert_eq!(&out[16..19], b"ab\0");
        assert!(out[19..].iter().all(|&b| b == 0));
    }

    #[test]
    fn identical_events_merge_and_queue_overflows() {
        let i = Inotify::new(u32::MAX - 7).expect("instance");
        let mut inner = i.inner.lock();
        Inotify::queue(&mut inner, 1, IN_MODIFY, 0, b"f");
        Inotify::queue(&mut inner, 1, IN_MODIFY, 0, b"f");
        assert_eq!(inner.events.len(), 1);
        for n in 0..MAX_QUEUED_EVENTS + 10 {
            Inotify::queue(&mut inner, 1, IN_MODIFY, n as u32, b"");
        }
        assert_eq!(inner.events.len(), MAX_QUEUED_EVENTS + 1);
        assert_eq!(inner.events.back().map(|e| e.mask), Some(IN_Q_OVERFLOW));
    }
}

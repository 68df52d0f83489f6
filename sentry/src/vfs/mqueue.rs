//! POSIX message queues (mq_overview(7)) and the mqueue file system that shows them:
//! one set of queues per sandbox (its IPC namespace), reached by mq_open(2) and seen
//! wherever `mqueue` is mounted (/dev/mqueue).

use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::kernel::{cap, ThreadGroup};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Weak;
use std::time::Instant;

pub const MQUEUE_MAGIC: u64 = 0x1980_0202;
pub const MQ_PRIO_MAX: u32 = 32768;
const HARD_MSGMAX: i64 = 65536;
const HARD_MSGSIZEMAX: i64 = 16 << 20;
/// Linux charges each message slot a `struct msg_msg` and a tree node, 48 bytes each.
const SLOT_OVERHEAD: u64 = 48;
/// st_size of a queue file (Linux's FILENT_SIZE).
const FILE_SIZE: u64 = 80;
const DEV: u64 = 0x13;

pub const SIGEV_SIGNAL: i32 = 0;
pub const SIGEV_NONE: i32 = 1;
pub const SIGEV_THREAD: i32 = 2;
const SI_MESGQ: i32 = -3;

/// /proc/sys/fs/mqueue.
pub struct Limits {
    pub msg_max: AtomicU64,
    pub msgsize_max: AtomicU64,
    pub msg_default: AtomicU64,
    pub msgsize_default: AtomicU64,
    pub queues_max: AtomicU64,
}

impl Limits {
    /// The value of a /proc/sys/fs/mqueue file, by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(self.field(name)?.0.load(Ordering::Relaxed))
    }

    /// Write a /proc/sys/fs/mqueue value, with Linux's bounds.
    pub fn set(&self, name: &str, v: i64) -> KResult<()> {
        let (f, lo, hi) = self.field(name).ok_or(ENOENT)?;
        if v < lo || v > hi {
            return Err(EINVAL);
        }
        f.store(v as u64, Ordering::Relaxed);
        Ok(())
    }

    fn field(&self, name: &str) -> Option<(&AtomicU64, i64, i64)> {
        Some(match name {
            "msg_max" => (&self.msg_max, 1, HARD_MSGMAX),
            "msgsize_max" => (&self.msgsize_max, 128, HARD_MSGSIZEMAX),
            "msg_default" => (&self.msg_default, 1, HARD_MSGMAX),
            "msgsize_default" => (&self.msgsize_default, 128, HARD_MSGSIZEMAX),
            "queues_max" => (&self.queues_max, 0, i32::MAX as i64),
            _ => return None,
        })
    }
}

pub const SYSCTL_NAMES: [&str; 5] = [
    "msg_max",
    "msgsize_max",
    "msg_default",
    "msgsize_default",
    "queues_max",
];

/// What every queue is charged against: the queue count and each user's bytes
/// (RLIMIT_MSGQUEUE), released when the queue is gone (unlinked and closed).
#[derive(Default)]
struct Accounts {
    queues: AtomicU64,
    bytes: Mutex<HashMap<u32, u64>>,
}

/// The mqueue file system: its root directory and the queues in it.
pub struct MqFs {
    pub limits: Limits,
    names: Mutex<BTreeMap<Vec<u8>, Arc<Queue>>>,
    acct: Arc<Accounts>,
    next_ino: AtomicU64,
    times: Mutex<((i64, i64), (i64, i64))>,
}

/// A registration made with mq_notify(2).
struct Notify {
    tg: Weak<ThreadGroup>,
    tgid: i32,
    kind: i32,
    signo: i32,
    value: u64,
}

#[derive(Default)]
struct State {
    /// Messages by priority, oldest first in each.
    msgs: BTreeMap<u32, VecDeque<Vec<u8>>>,
    count: u64,
    bytes: u64,
    notify: Option<Notify>,
    /// Receivers blocked on the empty queue: a message for them notifies no one.
    receivers: u32,
}

pub struct Queue {
    ino: u64,
    pub maxmsg: u64,
    pub msgsize: u64,
    meta: Mutex<Meta>,
    st: Mutex<State>,
    wq: WaitQueue,
    acct: Arc<Accounts>,
    /// (uid, bytes) charged against RLIMIT_MSGQUEUE.
    charge: (u32, u64),
}

impl MqFs {
    pub fn new() -> Arc<MqFs> {
        let t = now();
        Arc::new(MqFs {
            limits: Limits {
                msg_max: AtomicU64::new(10),
                msgsize_max: AtomicU64::new(8192),
                msg_default: AtomicU64::new(10),
                msgsize_default: AtomicU64::new(8192),
                queues_max: AtomicU64::new(256),
            },
            names: Mutex::new(BTreeMap::new()),
            acct: Arc::default(),
            next_ino: AtomicU64::new(2),
            times: Mutex::new((t, t)),
        })
    }

    pub fn get(&self, name: &[u8]) -> Option<Arc<Queue>> {
        self.names.lock().get(name).cloned()
    }

    /// Make queue `name` (which must not exist) with `attr` (maxmsg, msgsize) or the
    /// defaults, for a creator with `c` and RLIMIT_MSGQUEUE `rlimit`.
    pub fn create_queue(
        &self,
        name: &[u8],
        mode: u32,
        c: &Creds,
        attr: Option<(i64, i64)>,
        rlimit: u64,
    ) -> KResult<Arc<Queue>> {
        let mut names = self.names.lock();
        if names.contains_key(name) {
            return Err(EEXIST);
        }
        let privileged = c.has_cap(cap::SYS_RESOURCE);
        let lim = |v: &AtomicU64| v.load(Ordering::Relaxed) as i64;
        if self.acct.queues.load(Ordering::Relaxed) as i64 >= lim(&self.limits.queues_max)
            && !privileged
        {
            return Err(ENOSPC);
        }
        let (maxmsg, msgsize) = match attr {
            Some((m, s)) => {
                if m <= 0 || s <= 0 {
                    return Err(EINVAL);
                }
                let (mmax, smax) = if privileged {
                    (HARD_MSGMAX, HARD_MSGSIZEMAX)
                } else {
                    (lim(&self.limits.msg_max), lim(&self.limits.msgsize_max))
                };
                if m > mmax || s > smax {
                    return Err(EINVAL);
                }
                (m as u64, s as u64)
            }
            None => (
                lim(&self.limits.msg_default).min(lim(&self.limits.msg_max)) as u64,
                lim(&self.limits.msgsize_default).min(lim(&self.limits.msgsize_max)) as u64,
            ),
        };
        let bytes = maxmsg * msgsize
            + maxmsg * SLOT_OVERHEAD
            + maxmsg.min(MQ_PRIO_MAX as u64) * SLOT_OVERHEAD;
        {
            let mut used = self.acct.bytes.lock();
            let u = used.entry(c.uid).or_default();
            if u.saturating_add(bytes) > rlimit {
                return Err(EMFILE);
            }
            *u += bytes;
        }
        self.acct.queues.fetch_add(1, Ordering::Relaxed);
        let t = now();
        let q = Arc::new(Queue {
            ino: self.next_ino.fetch_add(1, Ordering::Relaxed),
            maxmsg,
            msgsize,
            // The same instant as the directory's times.
            meta: Mutex::new(Meta {
                atime: t,
                mtime: t,
                ctime: t,
                ..Meta::new(mode, c.fsuid, c.fsgid)
            }),
            st: Mutex::default(),
            wq: WaitQueue::default(),
            acct: self.acct.clone(),
            charge: (c.uid, bytes),
        });
        names.insert(name.to_vec(), q.clone());
        *self.times.lock() = (t, t);
        Ok(q)
    }

    /// Remove queue `name`; it lives on while open.
    pub fn remove(&self, name: &[u8]) -> KResult<()> {
        self.names.lock().remove(name).ok_or(ENOENT)?;
        let t = now();
        *self.times.lock() = (t, t);
        Ok(())
    }
}

impl Inode for MqFs {
    fn stat(&self) -> Stat {
        let (mtime, ctime) = *self.times.lock();
        Stat {
            dev: DEV,
            ino: 1,
            mode: S_IFDIR | 0o1777,
            nlink: 2,
            blksize: 4096,
            atime: mtime,
            mtime,
            ctime,
            ..Default::default()
        }
    }
    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Ok(self.get(name).ok_or(ENOENT)?)
    }
    fn readdir(&self) -> KResult<Vec<DirEnt>> {
        let dot = |name: &[u8]| DirEnt {
            ino: 1,
            kind: (S_IFDIR >> 12) as u8,
            name: name.to_vec(),
        };
        let mut v = vec![dot(b"."), dot(b"..")];
        v.extend(self.names.lock().iter().map(|(n, q)| DirEnt {
            ino: q.ino,
            kind: (S_IFREG >> 12) as u8,
            name: n.clone(),
        }));
        Ok(v)
    }
    fn open(self: Arc<Self>, _flags: u32) -> KResult<Arc<dyn FileOps>> {
        Ok(Arc::new(DirFile { inode: self }))
    }
    /// open(O_CREAT) in the file system: a queue with the default attributes.
    fn create(&self, name: &[u8], mode: u32, c: &Creds) -> KResult<Arc<dyn Inode>> {
        let rlimit = crate::kernel::current()
            .map(|t| t.rlimit(RLIMIT_MSGQUEUE).0)
            .unwrap_or(u64::MAX);
        Ok(self.create_queue(name, mode, c, None, rlimit)?)
    }
    fn unlink(&self, name: &[u8], dir: bool) -> KResult<()> {
        if dir {
            return Err(if self.get(name).is_some() {
                ENOTDIR
            } else {
                ENOENT
            });
        }
        self.remove(name)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub const RLIMIT_MSGQUEUE: usize = 12;

impl Drop for Queue {
    fn drop(&mut self) {
        self.acct.queues.fetch_sub(1, Ordering::Relaxed);
        if let Some(b) = self.acct.bytes.lock().get_mut(&self.charge.0) {
            *b = b.saturating_sub(self.charge.1);
        }
    }
}

impl Queue {
    /// (maxmsg, msgsize, messages now).
    pub fn attr(&self) -> (u64, u64, u64) {
        (self.maxmsg, self.msgsize, self.st.lock().count)
    }

    /// The owner of a live registration, if any.
    fn owner(st: &State) -> Option<&Notify> {
        st.notify.as_ref().filter(|n| {
            n.tg.upgrade()
                .is_some_and(|tg| !tg.exiting.load(Ordering::Acquire))
        })
    }

    /// What reading the queue's file gives.
    fn status(&self) -> Vec<u8> {
        let st = self.st.lock();
        let n = Self::owner(&st);
        format!(
            "QSIZE:{:<10} NOTIFY:{:<5} SIGNO:{:<5} NOTIFY_PID:{:<6}\n",
            st.bytes,
            n.map_or(0, |n| n.kind),
            n.filter(|n| n.kind == SIGEV_SIGNAL).map_or(0, |n| n.signo),
            n.map_or(0, |n| n.tgid),
        )
        .into_bytes()
    }

    fn touch(&self, modify: bool) {
        let t = now();
        let mut m = self.meta.lock();
        m.atime = t;
        m.ctime = t;
        if modify {
            m.mtime = t;
        }
    }

    /// mq_timedsend: `deadline` None waits for ever.
    pub fn send(
        &self,
        f: &OpenFile,
        t: &Task,
        msg: Vec<u8>,
        prio: u32,
        deadline: Option<Instant>,
    ) -> KResult<()> {
        let mut msg = Some(msg);
        let notify = t.block_on(&[&self.wq], deadline, || {
            let mut st = self.st.lock();
            if st.count >= self.maxmsg {
                return if f.nonblock() {
                    Some(Err(EAGAIN))
                } else {
                    None
                };
            }
            let m = msg.take().expect("sent once");
            st.count += 1;
            st.bytes += m.len() as u64;
            st.msgs.entry(prio).or_default().push_back(m);
            // A message to an empty queue nobody waits on notifies (once).
            let notify = if st.count == 1 && st.receivers == 0 && Self::owner(&st).is_some() {
                st.notify.take()
            } else {
                None
            };
            Some(Ok(notify))
        })?;
        self.wq.notify_all();
        self.touch(true);
        if let Some(n) = notify {
            if n.kind == SIGEV_SIGNAL && n.signo != 0 {
                if let Some(tg) = n.tg.upgrade() {
                    let mut info = SigInfo::new(n.signo, SI_MESGQ);
                    info.set_i32(16, t.tgid())
                        .set_i32(20, t.creds().uid as i32)
                        .set_u64(24, n.value);
                    signal::send_to_group(&t.kernel, &tg, info);
                }
            }
        }
        Ok(())
    }

    /// mq_timedreceive: (message, priority).
    pub fn receive(
        &self,
        f: &OpenFile,
        t: &Task,
        deadline: Option<Instant>,
    ) -> KResult<(Vec<u8>, u32)> {
        let take = |st: &mut State| -> Option<(Vec<u8>, u32)> {
            let mut e = st.msgs.last_entry()?;
            let prio = *e.key();
            let m = e.get_mut().pop_front().expect("no empty lists");
            if e.get().is_empty() {
                e.remove();
            }
            st.count -= 1;
            st.bytes -= m.len() as u64;
            Some((m, prio))
        };
        let first = {
            let mut st = self.st.lock();
            match take(&mut st) {
                Some(r) => Some(r),
                None if f.nonblock() => return Err(EAGAIN),
                None => {
                    st.receivers += 1;
                    None
                }
            }
        };
        let r = match first {
            Some(r) => Ok(r),
            None => {
                let r = t.block_on(&[&self.wq], deadline, || take(&mut self.st.lock()).map(Ok));
                self.st.lock().receivers -= 1;
                r
            }
        };
        if r.is_ok() {
            self.wq.notify_all();
            self.touch(false);
        }
        r
    }

    /// mq_notify: register (`Some`) or remove (`None`) the calling process.
    pub fn set_notify(&self, t: &Task, how: Option<(i32, i32, u64)>) -> KResult<()> {
        let mut st = self.st.lock();
        let owner = Self::owner(&st).map(|n| n.tgid);
        match how {
            None => {
                if owner == Some(t.tgid()) {
                    st.notify = None;
                }
            }
            Some(_) if owner.is_some() => return Err(EBUSY),
            Some((kind, signo, value)) => {
                st.notify = Some(Notify {
                    tg: Arc::downgrade(&t.tg),
                    tgid: t.tgid(),
                    kind,
                    signo,
                    value,
                })
            }
        }
        drop(st);
        let tm = now();
        let mut m = self.meta.lock();
        m.atime = tm;
        m.ctime = tm;
        Ok(())
    }

    /// Any close of a queue's descriptor by the registered process drops its
    /// registration (Linux's mqueue_flush_file).
    fn closed_by(&self, tgid: i32) {
        let mut st = self.st.lock();
        if st.notify.as_ref().is_some_and(|n| n.tgid == tgid) {
            st.notify = None;
        }
    }
}

/// Called on close(2) of any descriptor.
pub fn file_closed(f: &OpenFile, tgid: i32) {
    if let Some(q) = f.ops.as_any().downcast_ref::<MqFile>() {
        q.q.closed_by(tgid);
    }
}

impl Inode for Queue {
    fn stat(&self) -> Stat {
        let m = self.meta.lock();
        Stat {
            dev: DEV,
            ino: self.ino,
            mode: S_IFREG | m.mode,
            nlink: 1,
            uid: m.uid,
            gid: m.gid,
            size: FILE_SIZE,
            blksize: 4096,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            ..Default::default()
        }
    }
    fn open(self: Arc<Self>, _flags: u32) -> KResult<Arc<dyn FileOps>> {
        Ok(Arc::new(MqFile { q: self }))
    }
    fn setattr(&self, a: &SetAttr) -> KResult<()> {
        self.meta.lock().set(a)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open queue: a message queue descriptor, also readable as the status line.
pub struct MqFile {
    pub q: Arc<Queue>,
}

impl FileOps for MqFile {
    fn read(&self, _f: &OpenFile, _t: &Task, buf: &mut [u8], off: u64) -> KResult<usize> {
        let data = self.q.status();
        let off = off.min(data.len() as u64) as usize;
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        self.q.meta.lock().atime = now();
        Ok(n)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn size(&self) -> u64 {
        FILE_SIZE
    }
    fn poll(&self) -> u32 {
        let st = self.q.st.lock();
        let mut ev = 0;
        if st.count > 0 {
            ev |= POLLIN | POLLRDNORM;
        }
        if st.count < self.q.maxmsg {
            ev |= POLLOUT | POLLWRNORM;
        }
        ev
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.q.wq)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32) -> Creds {
        let mut c = Creds::new(uid, uid);
        c.cap_effective = 0;
        c
    }

    #[test]
    fn charges_and_releases_rlimit_bytes() {
        let fs = MqFs::new();
        let c = user(1000);
        let one = 4 * (100 + 2 * SLOT_OVERHEAD);
        assert_eq!(
            fs.create_queue(b"a", 0o600, &c, Some((4, 101)), one).err(),
            Some(EMFILE)
        );
        let q = fs
            .create_queue(b"a", 0o600, &c, Some((4, 100)), one)
            .unwrap();
        assert_eq!(
            fs.create_queue(b"b", 0o600, &c, Some((1, 1)), one).err(),
            Some(EMFILE)
        );
        fs.remove(b"a").unwrap();
        drop(q);
        assert!(fs.create_queue(b"b", 0o600, &c, Some((1, 1)), one).is_ok());
    }

    #[test]
    fn limits_for_the_unprivileged() {
        let fs = MqFs::new();
        let c = user(1000);
        let big = u64::MAX;
        assert_eq!(
            fs.create_queue(b"a", 0o600, &c, Some((11, 8)), big).err(),
            Some(EINVAL)
        );
        assert_eq!(
            fs.create_queue(b"a", 0o600, &c, Some((0, 8)), big).err(),
            Some(EINVAL)
        );
        fs.limits.queues_max.store(1, Ordering::Relaxed);
        let _q = fs.create_queue(b"a", 0o600, &c, None, big).unwrap();
        assert_eq!(
            fs.create_queue(b"b", 0o600, &c, None, big).err(),
            Some(ENOSPC)
        );
        assert_eq!(fs.limits.set("msg_max", 0), Err(EINVAL));
        assert_eq!(fs.limits.set("msg_max", 20), Ok(()));
        assert_eq!(fs.limits.get("msg_max"), Some(20));
    }
}

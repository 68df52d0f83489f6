//! System V shared memory segments of one IPC namespace. A segment's pages are a
//! file in the memory file (as a MAP_SHARED|MAP_ANONYMOUS mapping's); an attachment is
//! a shared mapping of it whose source is the segment's `Attach`: the number of
//! mappings holding it is shm_nattch, and the last one going away destroys a segment
//! marked for removal (Linux's shm_close).

use super::{make_id, now_secs, Ids, Perm, IPCMNI};
use crate::errno::*;
use crate::kernel::ns::UserNs;
use crate::kernel::Creds;
use crate::memfile::{Frame, PAGE};
use crate::mm::MapSource;
use crate::vfs::memfs::FileData;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

pub const SHM_DEST: u32 = 0o1000;
pub const SHM_LOCKED: u32 = 0o2000;
pub const SHMMIN: u64 = 1;
/// Linux's defaults of /proc/sys/kernel/shm{max,all,mni}.
pub const SHMMAX_DEFAULT: u64 = u64::MAX - (1 << 24);
pub const SHMALL_DEFAULT: u64 = u64::MAX - (1 << 24);
pub const SHMMNI_DEFAULT: u32 = 4096;
/// The device number /proc/PID/maps shows for attachments (Linux's shm mount, 00:01);
/// the inode number is the segment's id.
pub const SHM_DEV: u64 = 1;

pub struct Seg {
    pub perm: Perm,
    pub size: u64,
    pub data: Arc<FileData>,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    /// The mapping source of the attachments (dead when there are none).
    attach: Weak<Attach>,
}

impl Seg {
    pub fn nattch(&self) -> u64 {
        self.attach.strong_count() as u64
    }
    pub fn pages(&self) -> u64 {
        self.size.div_ceil(PAGE)
    }
}

#[derive(Default)]
pub struct ShmInner {
    pub ids: Ids<Seg>,
    /// Pages of all segments (for shmall, SHM_INFO).
    pub tot_pages: u64,
}

pub struct ShmNs {
    pub inner: Mutex<ShmInner>,
    pub shmmax: AtomicU64,
    pub shmall: AtomicU64,
    pub shmmni: AtomicU32,
}

impl Default for ShmNs {
    fn default() -> Self {
        ShmNs {
            inner: Mutex::default(),
            shmmax: SHMMAX_DEFAULT.into(),
            shmall: SHMALL_DEFAULT.into(),
            shmmni: SHMMNI_DEFAULT.into(),
        }
    }
}

/// What shmat maps: the segment's pages, counted as an attachment while mapped.
pub struct Attach {
    ns: Weak<ShmNs>,
    pub id: i32,
    data: Arc<FileData>,
}

impl MapSource for Attach {
    fn page(&self, index: u64) -> KResult<Option<Frame>> {
        self.data.page(index)
    }
    fn cached(&self, index: u64) -> bool {
        self.data.cached(index)
    }
    fn fault_around(&self, index: u64) -> bool {
        self.data.fault_around(index)
    }
    fn punch_hole(&self, offset: u64, len: u64) -> KResult<()> {
        self.data.punch_hole(offset, len)
    }
}

impl Drop for Attach {
    fn drop(&mut self) {
        let Some(ns) = self.ns.upgrade() else {
            return;
        };
        let pid = crate::kernel::current().map_or(0, |t| t.tgid());
        let mut g = ns.inner.lock();
        let Ok(s) = g.ids.by_id(self.id, |s| s.perm.seq) else {
            return;
        };
        // A new attachment may have come since this one's count reached zero.
        if s.nattch() != 0 {
            return;
        }
        let dest = s.perm.mode & SHM_DEST != 0;
        let idx = self.id as u32 % IPCMNI;
        if dest {
            let s = g.ids.objs.remove(&idx).expect("segment");
            g.tot_pages -= s.pages();
        } else if let Some(s) = g.ids.objs.get_mut(&idx) {
            s.dtime = now_secs();
            s.lpid = pid;
        }
    }
}

impl ShmNs {
    /// shmget(2).
    pub fn get(
        &self,
        key: i32,
        size: u64,
        flg: u32,
        c: &Creds,
        user: &Arc<UserNs>,
        pid: i32,
    ) -> KResult<i32> {
        let mut g = self.inner.lock();
        if key != super::IPC_PRIVATE {
            let found = g
                .ids
                .objs
                .values()
                .find(|s| s.perm.key == key && s.perm.mode & SHM_DEST == 0);
            if let Some(s) = found {
                if flg & super::IPC_CREAT != 0 && flg & super::IPC_EXCL != 0 {
                    return Err(EEXIST);
                }
                if size > s.size {
                    return Err(EINVAL);
                }
                s.perm.check(c, user, flg)?;
                return Ok(make_id(self.idx_of(&g, s), s.perm.seq));
            }
            if flg & super::IPC_CREAT == 0 {
                return Err(ENOENT);
            }
        }
        if size < SHMMIN || size > self.shmmax.load(Ordering::Relaxed) {
            return Err(EINVAL);
        }
        let pages = size.div_ceil(PAGE);
        let all = self.shmall.load(Ordering::Relaxed);
        if g.tot_pages.checked_add(pages).is_none_or(|t| t > all) {
            return Err(ENOSPC);
        }
        let mni = self.shmmni.load(Ordering::Relaxed);
        if g.ids.objs.len() as u32 >= mni.min(IPCMNI) {
            return Err(ENOSPC);
        }
        let (idx, seq) = g.ids.alloc(mni).ok_or(ENOSPC)?;
        let mut perm = Perm::new(key, c, flg);
        perm.seq = seq;
        let now = now_secs();
        g.ids.objs.insert(
            idx,
            Seg {
                perm,
                size,
                data: crate::vfs::memfs::anon_file(pages * PAGE),
                atime: 0,
                dtime: 0,
                ctime: now,
                cpid: pid,
                lpid: 0,
                attach: Weak::new(),
            },
        );
        g.tot_pages += pages;
        Ok(make_id(idx, seq))
    }

    fn idx_of(&self, g: &ShmInner, s: &Seg) -> u32 {
        *g.ids
            .objs
            .iter()
            .find(|(_, x)| std::ptr::eq(*x, s))
            .expect("segment")
            .0
    }

    /// The attachment source for shmat of segment `id` with access `acc` (S_IRUGO and
    /// maybe S_IWUGO/S_IXUGO): (source, key, size). The caller maps it.
    pub fn attach(
        self: &Arc<Self>,
        id: i32,
        acc: u32,
        c: &Creds,
        user: &Arc<UserNs>,
        pid: i32,
    ) -> KResult<(Arc<Attach>, i32, u64)> {
        let mut g = self.inner.lock();
        let idx = id as u32 % IPCMNI;
        let s = g.ids.by_id(id, |s| s.perm.seq)?;
        s.perm.check(c, user, acc)?;
        let s = g.ids.objs.get_mut(&idx).expect("segment");
        let a = match s.attach.upgrade() {
            Some(a) => a,
            None => {
                let a = Arc::new(Attach {
                    ns: Arc::downgrade(self),
                    id,
                    data: s.data.clone(),
                });
                s.attach = Arc::downgrade(&a);
                a
            }
        };
        s.atime = now_secs();
        s.lpid = pid;
        // The key as created (a removed segment's is IPC_PRIVATE now).
        Ok((a, s.perm.key, s.size))
    }

    /// shmdt(2) of an attachment of segment `id` (after it is unmapped).
    pub fn detached(&self, id: i32, pid: i32) {
        let mut g = self.inner.lock();
        if let Some(s) = g.ids.objs.get_mut(&(id as u32 % IPCMNI)) {
            if s.perm.seq == id as u32 / IPCMNI {
                s.dtime = now_secs();
                s.lpid = pid;
            }
        }
    }

    /// The size of segment `id`, if it is there.
    pub fn size_of(&self, id: i32) -> Option<u64> {
        self.inner
            .lock()
            .ids
            .by_id(id, |s| s.perm.seq)
            .ok()
            .map(|s| s.size)
    }

    /// IPC_RMID: destroy now, or when the last attachment goes (the key becomes
    /// IPC_PRIVATE meanwhile).
    pub fn remove(&self, g: &mut ShmInner, idx: u32) {
        let s = g.ids.objs.get_mut(&idx).expect("segment");
        if s.nattch() == 0 {
            let s = g.ids.objs.remove(&idx).expect("segment");
            g.tot_pages -= s.pages();
        } else {
            s.perm.mode |= SHM_DEST;
            s.perm.key = super::IPC_PRIVATE;
        }
    }

    /// /proc/sysvipc/shm, as Linux prints it (ids as `user` sees them).
    pub fn proc_text(&self, user: &UserNs) -> String {
        use crate::kernel::ns::{from_kgid, from_kuid};
        let mut out = String::from(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n",
        );
        let g = self.inner.lock();
        for (idx, s) in g.ids.objs.iter() {
            let rss = s.data.resident_pages() * PAGE;
            out += &format!(
                "{:10} {:10}  {:4o} {:21} {:5} {:5}  {:5} {:5} {:5} {:5} {:5} {:10} {:10} {:10} {:21} {:21}\n",
                s.perm.key,
                make_id(*idx, s.perm.seq),
                s.perm.mode,
                s.size,
                s.cpid,
                s.lpid,
                s.nattch(),
                from_kuid(user, s.perm.uid),
                from_kgid(user, s.perm.gid),
                from_kuid(user, s.perm.cuid),
                from_kgid(user, s.perm.cgid),
                s.atime,
                s.dtime,
                s.ctime,
                rss,
                0
            );
        }
        out
    }
}

fn is_attachment(v: &crate::mm::Vma) -> bool {
    v.dev_ino.0 == SHM_DEV && v.shared && v.name.starts_with("/SYSV")
}

/// Whether `mm` has a segment attached.
pub fn has_attachments(mm: &crate::mm::Mm) -> bool {
    mm.inner.lock().vmas.values().any(is_attachment)
}

/// Detach every segment attached in `mm` (Linux's exit_mm for a dying process whose
/// memory no other process shares), so its parent sees shm_nattch already down.
/// Each segment detached gets the process as its last user (shm_lpid, shm_dtime).
pub fn detach_all(mm: &crate::mm::Mm, ns: &ShmNs, pid: i32) {
    let mut inner = mm.inner.lock();
    let ranges: Vec<(u64, u64, i32)> = inner
        .vmas
        .iter()
        .filter(|(_, v)| is_attachment(v))
        .map(|(s, v)| (*s, v.end, v.dev_ino.1 as i32))
        .collect();
    for (s, e, _) in &ranges {
        mm.unmap_locked(&mut inner, *s, *e);
    }
    drop(inner);
    let mut ids: Vec<i32> = ranges.iter().map(|r| r.2).collect();
    ids.dedup();
    for id in ids {
        ns.detached(id, pid);
    }
}

//! dnotify (fcntl F_NOTIFY): SIGIO to a process when a directory it watches changes.
//! The events come from the same hooks as inotify's.

use super::inotify::{
    IN_ACCESS, IN_ATTRIB, IN_CREATE, IN_DELETE, IN_MODIFY, IN_MOVED_FROM, IN_MOVED_TO,
};
use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::kernel::ThreadGroup;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{OnceLock, Weak};

pub const DN_ACCESS: u32 = 0x1;
pub const DN_MODIFY: u32 = 0x2;
pub const DN_CREATE: u32 = 0x4;
pub const DN_DELETE: u32 = 0x8;
pub const DN_RENAME: u32 = 0x10;
pub const DN_ATTRIB: u32 = 0x20;
pub const DN_MULTISHOT: u32 = 0x8000_0000;

/// One process's request on one open directory.
struct Mark {
    file: Weak<OpenFile>,
    tg: Weak<ThreadGroup>,
    tgid: i32,
    mask: u32,
}

fn marks() -> &'static Mutex<HashMap<usize, Vec<Mark>>> {
    static M: OnceLock<Mutex<HashMap<usize, Vec<Mark>>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// Marks anywhere: the hooks do nothing while there are none.
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn recount(m: &HashMap<usize, Vec<Mark>>) {
    COUNT.store(m.values().map(Vec::len).sum(), Ordering::Relaxed);
}

/// fcntl(F_NOTIFY): watch the directory `f` for `arg` (DN_* bits); no event bits
/// removes the process's request on `f`.
pub fn set(f: &Arc<OpenFile>, t: &Task, arg: u32) -> KResult<()> {
    let Some(inode) = f.inode() else {
        return Err(ENOTDIR);
    };
    let key = inode_key(inode);
    let tgid = t.tgid();
    let mut m = marks().lock();
    let same = |x: &Mark| std::ptr::eq(x.file.as_ptr(), Arc::as_ptr(f)) && x.tgid == tgid;
    if arg & !DN_MULTISHOT == 0 {
        if let Some(v) = m.get_mut(&key) {
            v.retain(|x| !same(x));
        }
        m.retain(|_, v| !v.is_empty());
        recount(&m);
        return Ok(());
    }
    if !inode.stat().is_dir() {
        return Err(ENOTDIR);
    }
    let v = m.entry(key).or_default();
    v.retain(|x| !same(x) && x.file.strong_count() > 0);
    v.push(Mark {
        file: Arc::downgrade(f),
        tg: Arc::downgrade(&t.tg),
        tgid,
        mask: arg,
    });
    recount(&m);
    drop(m);
    // The signal goes to the process that asked, unless the file has an owner
    // (Linux's __f_setown without force).
    if f.fown.lock().id == 0 {
        super::fasync::set_owner(f, t, super::fasync::F_OWNER_PID, tgid)?;
    }
    Ok(())
}

/// An inotify event (`mask`, IN_* bits) about an entry of directory `dir`.
pub fn dir_changed(dir: &Arc<dyn Inode>, mask: u32) {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut dn = 0;
    for (i, d) in [
        (IN_ACCESS, DN_ACCESS),
        (IN_MODIFY, DN_MODIFY),
        (IN_ATTRIB, DN_ATTRIB),
        (IN_CREATE, DN_CREATE),
        (IN_DELETE, DN_DELETE),
        (IN_MOVED_FROM, DN_DELETE | DN_RENAME),
        (IN_MOVED_TO, DN_CREATE | DN_RENAME),
    ] {
        if mask & i != 0 {
            dn |= d;
        }
    }
    let mut hit = vec![];
    {
        let mut m = marks().lock();
        let Some(v) = m.get_mut(&inode_key(dir)) else {
            return;
        };
        v.retain(|x| x.file.strong_count() > 0);
        v.retain(|x| {
            if x.mask & dn == 0 {
                return true;
            }
            hit.push(x.tg.clone());
            x.mask & DN_MULTISHOT != 0
        });
        m.retain(|_, v| !v.is_empty());
        recount(&m);
    }
    let Some(k) = crate::kernel::current().map(|t| t.kernel.clone()) else {
        return;
    };
    for tg in hit.iter().filter_map(Weak::upgrade) {
        signal::send_to_group(&k, &tg, SigInfo::new(signal::SIGIO, signal::SI_KERNEL));
    }
}

/// close(2) of `f` by process `tgid` ends that process's request on it (dnotify_flush).
pub fn file_closed(f: &OpenFile, tgid: i32) {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut m = marks().lock();
    for v in m.values_mut() {
        v.retain(|x| !(std::ptr::eq(x.file.as_ptr(), f) && x.tgid == tgid));
    }
    m.retain(|_, v| !v.is_empty());
    recount(&m);
}

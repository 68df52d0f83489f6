//! System V IPC system calls: shmget, shmat, shmdt, shmctl (semaphores: sys_sysv_sem; message queues: sys_sysv_msg).

use super::*;
use crate::ipc::shm::{Seg, ShmNs, SHM_DEV, SHM_LOCKED};
use crate::ipc::{Ipc64Perm, IPCMNI, IPC_INFO, IPC_RMID, IPC_SET, IPC_STAT};
use crate::kernel::ns::{make_kgid, make_kuid, ns_capable, INVALID_ID};
use crate::memfile::PAGE;
use crate::mm::{page_up, Backing, Mm, Vma, PROT_EXEC, PROT_READ, PROT_WRITE};

const SHM_RDONLY: u64 = 0o10000;
const SHM_RND: u64 = 0o20000;
const SHM_REMAP: u64 = 0o40000;
const SHM_EXEC: u64 = 0o100000;
const SHM_LOCK: i32 = 11;
const SHM_UNLOCK: i32 = 12;
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;
/// x86-64's SHMLBA: the page size.
const SHMLBA: u64 = PAGE;
const CAP_IPC_LOCK: u32 = 14;
const RLIMIT_MEMLOCK: usize = 8;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2) = (c.arg(0), c.arg(1), c.arg(2));
    Some(match nr {
        29 => shmget(c, a0 as i32, a1, a2 as u32),
        30 => shmat(c, a0 as i32, a1, a2),
        31 => shmctl(c, a0 as i32, a1 as i32, a2),
        67 => shmdt(c, a0),
        64 => super::sys_sysv_sem::semget(c, a0 as i32, a1 as i32, a2 as u32),
        65 => super::sys_sysv_sem::semtimedop(c, a0 as i32, a1, a2 as i64, 0),
        66 => super::sys_sysv_sem::semctl(c, a0 as i32, a1 as i32, a2 as i32, c.arg(3)),
        68 => super::sys_sysv_msg::msgget(c, a0 as i32, a1 as u32),
        69 => super::sys_sysv_msg::msgsnd(c, a0 as i32, a1, a2, c.arg(3)),
        70 => super::sys_sysv_msg::msgrcv(c, a0 as i32, a1, a2, c.arg(3) as i64, c.arg(4)),
        71 => super::sys_sysv_msg::msgctl(c, a0 as i32, a1 as i32, a2),
        220 => super::sys_sysv_sem::semtimedop(c, a0 as i32, a1, a2 as i64, c.arg(3)),
        _ => return None,
    })
}

fn shm_ns(c: &Ctx) -> (Arc<ShmNs>, Arc<crate::kernel::ns::UserNs>) {
    let ns = c.t.ns();
    (ns.ipc.shm.clone(), ns.ipc.user.clone())
}

fn shmget(c: &Ctx, key: i32, size: u64, flg: u32) -> SysResult {
    let (shm, user) = shm_ns(c);
    shm.get(key, size, flg, &c.t.creds(), &user, c.t.tgid())
        .map(|id| id as u64)
}

fn shmat(c: &Ctx, id: i32, addr: u64, flg: u64) -> SysResult {
    if id < 0 {
        return Err(EINVAL);
    }
    let mut addr = addr;
    if addr != 0 {
        if !addr.is_multiple_of(SHMLBA) {
            if flg & SHM_RND == 0 {
                return Err(EINVAL);
            }
            addr &= !(SHMLBA - 1);
            if addr == 0 && flg & SHM_REMAP != 0 {
                return Err(EINVAL);
            }
        }
    } else if flg & SHM_REMAP != 0 {
        return Err(EINVAL);
    }
    let (mut prot, mut acc) = if flg & SHM_RDONLY != 0 {
        (PROT_READ, 0o444)
    } else {
        (PROT_READ | PROT_WRITE, 0o666)
    };
    if flg & SHM_EXEC != 0 {
        prot |= PROT_EXEC;
        acc |= 0o111;
    }
    let (shm, user) = shm_ns(c);
    let (src, key, size) = shm.attach(id, acc, &c.t.creds(), &user, c.t.tgid())?;
    let len = page_up(size).ok_or(ENOMEM)?;
    let mm = c.t.mm();
    let mut inner = mm.inner.lock();
    let start = if addr != 0 {
        let end = addr.checked_add(len).ok_or(EINVAL)?;
        if flg & SHM_REMAP == 0 && Mm::overlaps(&inner, addr, addr + size) {
            return Err(EINVAL);
        }
        if end > platform::MAX_USER_ADDR {
            return Err(ENOMEM);
        }
        addr
    } else {
        Mm::find_free(&inner, len, 0).ok_or(ENOMEM)?
    };
    let limit = c.t.rlimit(9).0;
    if limit != u64::MAX && Mm::vm_size(&inner).saturating_add(len) > limit {
        return Err(ENOMEM);
    }
    let vma = Vma {
        shared: true,
        backing: Backing::File { src, offset: 0 },
        name: format!("/SYSV{:08x} (deleted)", key as u32),
        dev_ino: (SHM_DEV, id as u64),
        maywrite: flg & SHM_RDONLY == 0,
        ..Vma::anon(start + len, prot)
    };
    mm.map_fixed(&mut inner, start, len, vma);
    Ok(start)
}

/// Is this VMA an attachment whose segment starts at `addr`? (its id)
fn attachment_at(start: u64, v: &Vma, addr: u64) -> Option<i32> {
    match &v.backing {
        Backing::File { offset, .. }
            if v.dev_ino.0 == SHM_DEV
                && v.shared
                && v.name.starts_with("/SYSV")
                && start.checked_sub(addr) == Some(*offset) =>
        {
            Some(v.dev_ino.1 as i32)
        }
        _ => None,
    }
}

/// shmdt(2): unmap the attachment at `addr`, all its pieces within the segment's size.
fn shmdt(c: &Ctx, addr: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let (shm, _) = shm_ns(c);
    let mm = c.t.mm();
    let mut inner = mm.inner.lock();
    let first = inner
        .vmas
        .range(addr..)
        .find_map(|(s, v)| attachment_at(*s, v, addr).map(|id| (*s, v.end, id)));
    let Some((s, e, id)) = first else {
        return Err(EINVAL);
    };
    let size = shm.size_of(id).map_or(e - s, |z| page_up(z).unwrap_or(z));
    let pieces: Vec<(u64, u64)> = inner
        .vmas
        .range(addr..)
        .take_while(|(_, v)| v.end - addr <= size)
        .filter(|(s, v)| attachment_at(**s, v, addr) == Some(id))
        .map(|(s, v)| (*s, v.end))
        .chain(std::iter::once((s, e)))
        .collect();
    for (s, e) in pieces {
        mm.unmap_locked(&mut inner, s, e);
    }
    drop(inner);
    shm.detached(id, c.t.tgid());
    Ok(0)
}

/// struct shmid64_ds (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ShmidDs {
    perm: Ipc64Perm,
    segsz: u64,
    atime: i64,
    dtime: i64,
    ctime: i64,
    cpid: i32,
    lpid: i32,
    nattch: u64,
    unused: [u64; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ShmInfo64 {
    shmmax: u64,
    shmmin: u64,
    shmmni: u64,
    shmseg: u64,
    shmall: u64,
    unused: [u64; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ShmInfo {
    used_ids: i32,
    pad: i32,
    shm_tot: u64,
    shm_rss: u64,
    shm_swp: u64,
    swap_attempts: u64,
    swap_successes: u64,
}

fn stat_of(s: &Seg, user: &crate::kernel::ns::UserNs) -> ShmidDs {
    ShmidDs {
        perm: s.perm.to_user(user),
        segsz: s.size,
        atime: s.atime,
        dtime: s.dtime,
        ctime: s.ctime,
        cpid: s.cpid,
        lpid: s.lpid,
        nattch: s.nattch(),
        unused: [0; 2],
    }
}

fn shmctl(c: &Ctx, id: i32, cmd: i32, buf: u64) -> SysResult {
    if cmd < 0 || id < 0 {
        return Err(EINVAL);
    }
    let (shm, user) = shm_ns(c);
    let creds = c.t.creds();
    let me = creds.user_ns();
    let mm = c.t.mm();
    match cmd {
        IPC_INFO => {
            let g = shm.inner.lock();
            let mni = shm.shmmni.load(std::sync::atomic::Ordering::Relaxed) as u64;
            let info = ShmInfo64 {
                shmmax: shm.shmmax.load(std::sync::atomic::Ordering::Relaxed),
                shmmin: crate::ipc::shm::SHMMIN,
                shmmni: mni,
                shmseg: crate::ipc::shm::SHMMNI_DEFAULT as u64,
                shmall: shm.shmall.load(std::sync::atomic::Ordering::Relaxed),
                unused: [0; 4],
            };
            let r = g.ids.max_idx();
            drop(g);
            mm.write_obj(buf, &info)?;
            Ok(r)
        }
        SHM_INFO => {
            let g = shm.inner.lock();
            let info = ShmInfo {
                used_ids: g.ids.objs.len() as i32,
                shm_tot: g.tot_pages,
                shm_rss: g.ids.objs.values().map(|s| s.data.resident_pages()).sum(),
                ..Default::default()
            };
            let r = g.ids.max_idx();
            drop(g);
            mm.write_obj(buf, &info)?;
            Ok(r)
        }
        IPC_STAT | SHM_STAT | SHM_STAT_ANY => {
            let g = shm.inner.lock();
            let (s, r) = g.ids.for_stat(id, cmd != IPC_STAT, |s| s.perm.seq)?;
            if cmd != SHM_STAT_ANY {
                s.perm.check(&creds, &user, 0o444)?;
            }
            let ds = stat_of(s, &me);
            drop(g);
            mm.write_obj(buf, &ds)?;
            Ok(r)
        }
        IPC_SET => {
            let ds: ShmidDs = mm.read_obj(buf)?;
            let mut g = shm.inner.lock();
            g.ids.by_id(id, |s| s.perm.seq)?;
            let s = g.ids.objs.get_mut(&(id as u32 % IPCMNI)).expect("segment");
            s.perm.check_owner(&creds, &user)?;
            let (uid, gid) = (make_kuid(&me, ds.perm.uid), make_kgid(&me, ds.perm.gid));
            if uid == INVALID_ID || gid == INVALID_ID {
                return Err(EINVAL);
            }
            s.perm.uid = uid;
            s.perm.gid = gid;
            s.perm.mode = (s.perm.mode & !0o777) | (ds.perm.mode as u32 & 0o777);
            s.ctime = crate::ipc::now_secs();
            Ok(0)
        }
        IPC_RMID => {
            let mut g = shm.inner.lock();
            g.ids
                .by_id(id, |s| s.perm.seq)?
                .perm
                .check_owner(&creds, &user)?;
            shm.remove(&mut g, id as u32 % IPCMNI);
            Ok(0)
        }
        SHM_LOCK | SHM_UNLOCK => {
            let memlock = c.t.rlimit(RLIMIT_MEMLOCK).0;
            let mut g = shm.inner.lock();
            g.ids.by_id(id, |s| s.perm.seq)?;
            let s = g.ids.objs.get_mut(&(id as u32 % IPCMNI)).expect("segment");
            if !ns_capable(&creds, &user, CAP_IPC_LOCK) {
                if creds.euid != s.perm.uid && creds.euid != s.perm.cuid {
                    return Err(EPERM);
                }
                if cmd == SHM_LOCK && memlock == 0 {
                    return Err(EPERM);
                }
                // Linux's user_shm_lock: the segment must fit under RLIMIT_MEMLOCK.
                if cmd == SHM_LOCK
                    && s.perm.mode & SHM_LOCKED == 0
                    && memlock != u64::MAX
                    && s.pages() * PAGE > memlock
                {
                    return Err(ENOMEM);
                }
            }
            if cmd == SHM_LOCK {
                s.perm.mode |= SHM_LOCKED;
            } else {
                s.perm.mode &= !SHM_LOCKED;
            }
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

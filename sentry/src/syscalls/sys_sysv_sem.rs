//! System V semaphore system calls: semget, semop, semtimedop, semctl.

use super::*;
use crate::ipc::sem::{SemBuf, SemNs, SemSet, Try, SEMVMX};
use crate::ipc::{Ipc64Perm, IPC_INFO, IPC_RMID, IPC_SET, IPC_STAT};
use crate::kernel::ns::{make_kgid, make_kuid, UserNs, INVALID_ID};
use std::time::{Duration, Instant};

const GETPID: i32 = 11;
const GETVAL: i32 = 12;
const GETALL: i32 = 13;
const GETNCNT: i32 = 14;
const GETZCNT: i32 = 15;
const SETVAL: i32 = 16;
const SETALL: i32 = 17;
const SEM_STAT: i32 = 18;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;
const SEMMNS: i32 = 32000 * 32000;
const SEMOPM: i32 = 500;
const SEMUSZ: i32 = 20;

fn sem_ns(c: &Ctx) -> (Arc<SemNs>, Arc<UserNs>) {
    let ns = c.t.ns();
    (ns.ipc.sem.clone(), ns.ipc.user.clone())
}

pub fn semget(c: &Ctx, key: i32, nsems: i32, flg: u32) -> SysResult {
    let (sem, user) = sem_ns(c);
    sem.get(key, nsems, flg, &c.t.creds(), &user)
        .map(|id| id as u64)
}

/// semop (no timeout: `tsp` 0) and semtimedop.
pub fn semtimedop(c: &Ctx, id: i32, sops: u64, nsops: i64, tsp: u64) -> SysResult {
    if nsops < 1 || id < 0 {
        return Err(EINVAL);
    }
    let (sem, user) = sem_ns(c);
    if nsops > sem.limits.lock()[2] as i64 {
        return Err(E2BIG);
    }
    let mm = c.t.mm();
    let mut ops = vec![SemBuf::default(); nsops as usize];
    for (i, o) in ops.iter_mut().enumerate() {
        *o = mm.read_obj(sops + 6 * i as u64)?;
    }
    let deadline = if tsp != 0 {
        let ts: [i64; 2] = mm.read_obj(tsp)?;
        if ts[0] < 0 || !(0..1_000_000_000).contains(&ts[1]) {
            return Err(EINVAL);
        }
        let d = Duration::new(ts[0] as u64, ts[1] as u32);
        Some(
            Instant::now()
                .checked_add(d)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32)),
        )
    } else {
        None
    };
    let max = ops.iter().map(|o| o.num).max().unwrap_or(0);
    let alter = ops.iter().any(|o| o.op != 0);
    let pid = c.t.tgid();
    let wq = {
        let g = sem.inner.lock();
        let s = g.set(id)?;
        if max as usize >= s.sems.len() {
            return Err(EFBIG);
        }
        s.perm
            .check(&c.t.creds(), &user, if alter { 0o222 } else { 0o444 })?;
        s.wq.clone()
    };
    // Where this task is counted as waiting (semncnt/semzcnt), if it is.
    let mut waiting: Option<(u16, bool)> = None;
    let count = |g: &mut crate::ipc::sem::SemInner, w: Option<(u16, bool)>, d: i32| {
        if let (Some((n, zero)), Ok(s)) = (w, g.set_mut(id)) {
            let v = if zero { &mut s.zcnt } else { &mut s.ncnt };
            v[n as usize] = (v[n as usize] as i32 + d) as u32;
        }
    };
    let r = c.t.block_on(&[&wq], deadline, || {
        let mut g = sem.inner.lock();
        count(&mut g, waiting.take(), -1);
        match g.try_ops(id, &ops, pid) {
            Err(e) if e == EINVAL => Some(Err(EIDRM)),
            Err(e) => Some(Err(e)),
            Ok(Try::Done) => Some(Ok(())),
            Ok(Try::Block(n, zero)) => {
                waiting = Some((n, zero));
                count(&mut g, waiting, 1);
                None
            }
        }
    });
    if waiting.is_some() {
        count(&mut sem.inner.lock(), waiting, -1);
    }
    match r {
        Ok(()) => {
            if alter {
                wq.notify_all();
            }
            Ok(0)
        }
        Err(e) if e == ETIMEDOUT => Err(EAGAIN),
        Err(e) if e.is_restart() => Err(EINTR),
        Err(e) => Err(e),
    }
}

/// struct semid64_ds (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SemidDs {
    perm: Ipc64Perm,
    otime: i64,
    unused1: u64,
    ctime: i64,
    unused2: u64,
    nsems: u64,
    unused: [u64; 2],
}

fn stat_of(s: &SemSet, user: &UserNs) -> SemidDs {
    SemidDs {
        perm: s.perm.to_user(user),
        otime: s.otime,
        ctime: s.ctime,
        nsems: s.sems.len() as u64,
        ..Default::default()
    }
}

pub fn semctl(c: &Ctx, id: i32, num: i32, cmd: i32, arg: u64) -> SysResult {
    if id < 0 || cmd < 0 {
        return Err(EINVAL);
    }
    let (sem, user) = sem_ns(c);
    let creds = c.t.creds();
    let me = creds.user_ns();
    let mm = c.t.mm();
    let pid = c.t.tgid();
    match cmd {
        IPC_INFO | SEM_INFO => {
            let [msl, mns, opm, mni] = *sem.limits.lock();
            let g = sem.inner.lock();
            let (usz, aem) = if cmd == SEM_INFO {
                (g.ids.objs.len() as i32, g.used_sems as i32)
            } else {
                (SEMUSZ, crate::ipc::sem::SEMAEM)
            };
            // struct seminfo: semmap, semmni, semmns, semmnu, semmsl, semopm, semume,
            // semusz, semvmx, semaem.
            let info: [i32; 10] = [SEMMNS, mni, mns, SEMMNS, msl, opm, SEMOPM, usz, SEMVMX, aem];
            let r = g.ids.max_idx();
            drop(g);
            mm.write_obj(arg, &info)?;
            Ok(r)
        }
        IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
            let g = sem.inner.lock();
            let (s, r) = g.ids.for_stat(id, cmd != IPC_STAT, |s| s.perm.seq)?;
            if cmd != SEM_STAT_ANY {
                s.perm.check(&creds, &user, 0o444)?;
            }
            let ds = stat_of(s, &me);
            drop(g);
            mm.write_obj(arg, &ds)?;
            Ok(r)
        }
        IPC_SET => {
            let ds: SemidDs = mm.read_obj(arg)?;
            let mut g = sem.inner.lock();
            let s = g.set_mut(id)?;
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
            let mut g = sem.inner.lock();
            g.set(id)?.perm.check_owner(&creds, &user)?;
            sem.remove(&mut g, id);
            Ok(0)
        }
        GETVAL | GETPID | GETNCNT | GETZCNT => {
            let g = sem.inner.lock();
            let s = g.set(id)?;
            s.perm.check(&creds, &user, 0o444)?;
            if num < 0 || num as usize >= s.sems.len() {
                return Err(EINVAL);
            }
            let n = num as usize;
            Ok(match cmd {
                GETVAL => s.sems[n].val as u64,
                GETPID => s.sems[n].pid as u64,
                GETNCNT => s.ncnt[n] as u64,
                _ => s.zcnt[n] as u64,
            })
        }
        GETALL => {
            let g = sem.inner.lock();
            let s = g.set(id)?;
            s.perm.check(&creds, &user, 0o444)?;
            let vals: Vec<u8> = s
                .sems
                .iter()
                .flat_map(|x| (x.val as u16).to_ne_bytes())
                .collect();
            drop(g);
            mm.write(arg, &vals)?;
            Ok(0)
        }
        SETVAL => {
            let val = arg as i32;
            if !(0..=SEMVMX).contains(&val) {
                return Err(ERANGE);
            }
            let mut g = sem.inner.lock();
            let s = g.set_mut(id)?;
            if num < 0 || num as usize >= s.sems.len() {
                return Err(EINVAL);
            }
            s.perm.check(&creds, &user, 0o222)?;
            s.sems[num as usize] = crate::ipc::sem::Sem { val, pid };
            s.ctime = crate::ipc::now_secs();
            let wq = s.wq.clone();
            g.clear_undo(id, Some(num as u16));
            wq.notify_all();
            Ok(0)
        }
        SETALL => {
            let n = {
                let g = sem.inner.lock();
                let s = g.set(id)?;
                s.perm.check(&creds, &user, 0o222)?;
                s.sems.len()
            };
            let raw = mm.read_vec(arg, 2 * n)?;
            let vals: Vec<u16> = raw
                .chunks(2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
                .collect();
            if vals.iter().any(|v| *v as i32 > SEMVMX) {
                return Err(ERANGE);
            }
            let mut g = sem.inner.lock();
            let s = g.set_mut(id)?;
            if s.sems.len() != n {
                return Err(EIDRM);
            }
            for (x, v) in s.sems.iter_mut().zip(vals) {
                *x = crate::ipc::sem::Sem { val: v as i32, pid };
            }
            s.ctime = crate::ipc::now_secs();
            let wq = s.wq.clone();
            g.clear_undo(id, None);
            wq.notify_all();
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

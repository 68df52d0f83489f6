//! System V semaphore sets of one IPC namespace, with per-process undo adjustments
//! (SEM_UNDO) applied when the process exits.

use super::{make_id, now_secs, Ids, Perm, IPCMNI};
use crate::errno::*;
use crate::kernel::ns::UserNs;
use crate::kernel::Creds;
use crate::waitq::WaitQueue;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub const SEMVMX: i32 = 32767;
pub const SEMAEM: i32 = SEMVMX;
pub const SEM_UNDO: i16 = 0x1000;
/// Linux's defaults of /proc/sys/kernel/sem: semmsl, semmns, semopm, semmni.
pub const SEM_DEFAULTS: [i32; 4] = [32000, 1_024_000_000, 500, 32000];

#[derive(Clone, Copy, Default)]
pub struct Sem {
    pub val: i32,
    pub pid: i32,
}

pub struct SemSet {
    pub perm: Perm,
    pub sems: Vec<Sem>,
    pub otime: i64,
    pub ctime: i64,
    /// Tasks blocked on each semaphore: waiting for it to grow, to be zero.
    pub ncnt: Vec<u32>,
    pub zcnt: Vec<u32>,
    pub wq: Arc<WaitQueue>,
}

/// One operation of semop(2) (struct sembuf).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SemBuf {
    pub num: u16,
    pub op: i16,
    pub flg: i16,
}

#[derive(Default)]
pub struct SemInner {
    pub ids: Ids<SemSet>,
    pub used_sems: u64,
    /// Undo adjustments by process (tgid), then (set id, semaphore).
    pub undo: HashMap<i32, BTreeMap<(i32, u16), i32>>,
}

pub struct SemNs {
    pub inner: Mutex<SemInner>,
    /// semmsl, semmns, semopm, semmni.
    pub limits: Mutex<[i32; 4]>,
}

impl Default for SemNs {
    fn default() -> Self {
        SemNs {
            inner: Mutex::default(),
            limits: Mutex::new(SEM_DEFAULTS),
        }
    }
}

/// What one try of a semop gives.
pub enum Try {
    Done,
    /// Blocked on semaphore `num`, waiting for zero (true) or to grow (false).
    Block(u16, bool),
}

impl SemInner {
    pub fn set(&self, id: i32) -> KResult<&SemSet> {
        self.ids.by_id(id, |s| s.perm.seq)
    }
    pub fn set_mut(&mut self, id: i32) -> KResult<&mut SemSet> {
        self.set(id)?;
        Ok(self.ids.objs.get_mut(&(id as u32 % IPCMNI)).expect("set"))
    }

    /// Drop the undo adjustments of set `id` (of semaphore `num` only, if given).
    pub fn clear_undo(&mut self, id: i32, num: Option<u16>) {
        for m in self.undo.values_mut() {
            m.retain(|(i, n), _| *i != id || num.is_some_and(|x| x != *n));
        }
    }

    /// Apply all of `ops` at once, or none (Linux's perform_atomic_semop).
    pub fn try_ops(&mut self, id: i32, ops: &[SemBuf], pid: i32) -> KResult<Try> {
        let set = self.set(id)?;
        let mut vals: Vec<i32> = set.sems.iter().map(|s| s.val).collect();
        let mut adj: HashMap<u16, i32> = HashMap::new();
        let mine = self.undo.get(&pid);
        for o in ops {
            let v = vals[o.num as usize];
            if o.op == 0 && v != 0 || v + (o.op as i32) < 0 {
                if o.flg & super::IPC_NOWAIT as i16 != 0 {
                    return Err(EAGAIN);
                }
                return Ok(Try::Block(o.num, o.op == 0));
            }
            let r = v + o.op as i32;
            if r > SEMVMX {
                return Err(ERANGE);
            }
            if o.flg & SEM_UNDO != 0 {
                let cur = *adj.entry(o.num).or_insert_with(|| {
                    mine.and_then(|m| m.get(&(id, o.num))).copied().unwrap_or(0)
                });
                let u = cur - o.op as i32;
                if !(-SEMAEM - 1..=SEMAEM).contains(&u) {
                    return Err(ERANGE);
                }
                adj.insert(o.num, u);
            }
            vals[o.num as usize] = r;
        }
        let set = self.set_mut(id)?;
        for o in ops {
            set.sems[o.num as usize].pid = pid;
        }
        for (s, v) in set.sems.iter_mut().zip(vals) {
            s.val = v;
        }
        set.otime = now_secs();
        if !adj.is_empty() {
            let m = self.undo.entry(pid).or_default();
            for (n, u) in adj {
                m.insert((id, n), u);
            }
        }
        Ok(Try::Done)
    }
}

impl SemNs {
    /// semget(2).
    pub fn get(
        &self,
        key: i32,
        nsems: i32,
        flg: u32,
        c: &Creds,
        user: &Arc<UserNs>,
    ) -> KResult<i32> {
        let [msl, mns, _, mni] = *self.limits.lock();
        if nsems < 0 || nsems > msl {
            return Err(EINVAL);
        }
        let mut g = self.inner.lock();
        if key != super::IPC_PRIVATE {
            let found = g.ids.objs.iter().find(|(_, s)| s.perm.key == key);
            if let Some((idx, s)) = found {
                if flg & super::IPC_CREAT != 0 && flg & super::IPC_EXCL != 0 {
                    return Err(EEXIST);
                }
                if nsems as usize > s.sems.len() {
                    return Err(EINVAL);
                }
                s.perm.check(c, user, flg)?;
                return Ok(make_id(*idx, s.perm.seq));
            }
            if flg & super::IPC_CREAT == 0 {
                return Err(ENOENT);
            }
        }
        if nsems == 0 {
            return Err(EINVAL);
        }
        if g.used_sems + nsems as u64 > mns.max(0) as u64 {
            return Err(ENOSPC);
        }
        let mni = mni.clamp(0, IPCMNI as i32) as u32;
        if g.ids.objs.len() as u32 >= mni {
            return Err(ENOSPC);
        }
        let (idx, seq) = g.ids.alloc(mni).ok_or(ENOSPC)?;
        let mut perm = Perm::new(key, c, flg);
        perm.seq = seq;
        let n = nsems as usize;
        g.ids.objs.insert(
            idx,
            SemSet {
                perm,
                sems: vec![Sem::default(); n],
                otime: 0,
                ctime: now_secs(),
                ncnt: vec![0; n],
                zcnt: vec![0; n],
                wq: Arc::default(),
            },
        );
        g.used_sems += n as u64;
        Ok(make_id(idx, seq))
    }

    /// IPC_RMID: the set goes; blocked semop calls fail with EIDRM.
    pub fn remove(&self, g: &mut SemInner, id: i32) {
        if let Some(s) = g.ids.objs.remove(&(id as u32 % IPCMNI)) {
            g.used_sems -= s.sems.len() as u64;
            g.clear_undo(id, None);
            s.wq.notify_all();
        }
    }

    /// A process exits: its undo adjustments are applied (clamped to 0..=SEMVMX).
    pub fn exit(&self, pid: i32) {
        let mut g = self.inner.lock();
        let Some(m) = g.undo.remove(&pid) else {
            return;
        };
        for ((id, n), adj) in m {
            if let Ok(s) = g.set_mut(id) {
                let sem = &mut s.sems[n as usize];
                sem.val = (sem.val + adj).clamp(0, SEMVMX);
                sem.pid = pid;
                s.wq.notify_all();
            }
        }
    }

    /// /proc/sysvipc/sem, as Linux prints it.
    pub fn proc_text(&self, user: &UserNs) -> String {
        use crate::kernel::ns::{from_kgid, from_kuid};
        let mut out = String::from(
            "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n",
        );
        let g = self.inner.lock();
        for (idx, s) in g.ids.objs.iter() {
            out += &format!(
                "{:10} {:10}  {:4o} {:10} {:5} {:5} {:5} {:5} {:10} {:10}\n",
                s.perm.key,
                make_id(*idx, s.perm.seq),
                s.perm.mode,
                s.sems.len(),
                from_kuid(user, s.perm.uid),
                from_kgid(user, s.perm.gid),
                from_kuid(user, s.perm.cuid),
                from_kgid(user, s.perm.cgid),
                s.otime,
                s.ctime
            );
        }
        out
    }
}

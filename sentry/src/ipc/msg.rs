//! System V message queues of one IPC namespace.

use super::{make_id, now_secs, Ids, Perm, IPCMNI};
use crate::errno::*;
use crate::kernel::ns::UserNs;
use crate::kernel::Creds;
use crate::waitq::WaitQueue;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Linux's defaults of /proc/sys/kernel/msg{max,mnb,mni}.
pub const MSGMAX_DEFAULT: u32 = 8192;
pub const MSGMNB_DEFAULT: u32 = 16384;
pub const MSGMNI_DEFAULT: u32 = 32000;

pub struct Queue {
    pub perm: Perm,
    pub msgs: VecDeque<(i64, Vec<u8>)>,
    pub cbytes: u64,
    pub qbytes: u64,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    pub lspid: i32,
    pub lrpid: i32,
    pub wq: Arc<WaitQueue>,
}

impl Queue {
    /// The index of the message msgrcv's `typ` (and MSG_EXCEPT) selects.
    pub fn select(&self, typ: i64, except: bool) -> Option<usize> {
        if typ == 0 {
            return (!self.msgs.is_empty()).then_some(0);
        }
        if typ > 0 {
            return self.msgs.iter().position(|(t, _)| (*t == typ) != except);
        }
        let lim = typ.checked_neg().unwrap_or(i64::MAX);
        let mut best: Option<(usize, i64)> = None;
        for (i, (t, _)) in self.msgs.iter().enumerate() {
            if *t <= lim && best.is_none_or(|(_, b)| *t < b) {
                best = Some((i, *t));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[derive(Default)]
pub struct MsgInner {
    pub ids: Ids<Queue>,
    /// Messages and bytes queued in all queues (MSG_INFO).
    pub hdrs: u64,
    pub bytes: u64,
}

impl MsgInner {
    pub fn queue(&self, id: i32) -> KResult<&Queue> {
        self.ids.by_id(id, |q| q.perm.seq)
    }
    pub fn queue_mut(&mut self, id: i32) -> KResult<&mut Queue> {
        self.queue(id)?;
        Ok(self.ids.objs.get_mut(&(id as u32 % IPCMNI)).expect("queue"))
    }
}

pub struct MsgNs {
    pub inner: Mutex<MsgInner>,
    pub msgmax: AtomicU32,
    pub msgmnb: AtomicU32,
    pub msgmni: AtomicU32,
}

impl Default for MsgNs {
    fn default() -> Self {
        MsgNs {
            inner: Mutex::default(),
            msgmax: MSGMAX_DEFAULT.into(),
            msgmnb: MSGMNB_DEFAULT.into(),
            msgmni: MSGMNI_DEFAULT.into(),
        }
    }
}

impl MsgNs {
    /// msgget(2).
    pub fn get(&self, key: i32, flg: u32, c: &Creds, user: &Arc<UserNs>) -> KResult<i32> {
        let mut g = self.inner.lock();
        if key != super::IPC_PRIVATE {
            let found = g.ids.objs.iter().find(|(_, q)| q.perm.key == key);
            if let Some((idx, q)) = found {
                if flg & super::IPC_CREAT != 0 && flg & super::IPC_EXCL != 0 {
                    return Err(EEXIST);
                }
                q.perm.check(c, user, flg)?;
                return Ok(make_id(*idx, q.perm.seq));
            }
            if flg & super::IPC_CREAT == 0 {
                return Err(ENOENT);
            }
        }
        let mni = self.msgmni.load(Ordering::Relaxed).min(IPCMNI);
        if g.ids.objs.len() as u32 >= mni {
            return Err(ENOSPC);
        }
        let (idx, seq) = g.ids.alloc(mni).ok_or(ENOSPC)?;
        let mut perm = Perm::new(key, c, flg);
        perm.seq = seq;
        g.ids.objs.insert(
            idx,
            Queue {
                perm,
                msgs: VecDeque::new(),
                cbytes: 0,
                qbytes: self.msgmnb.load(Ordering::Relaxed) as u64,
                stime: 0,
                rtime: 0,
                ctime: now_secs(),
                lspid: 0,
                lrpid: 0,
                wq: Arc::default(),
            },
        );
        Ok(make_id(idx, seq))
    }

    /// IPC_RMID: the queue goes; blocked senders and receivers fail with EIDRM.
    pub fn remove(&self, g: &mut MsgInner, id: i32) {
        if let Some(q) = g.ids.objs.remove(&(id as u32 % IPCMNI)) {
            g.hdrs -= q.msgs.len() as u64;
            g.bytes -= q.cbytes;
            q.wq.notify_all();
        }
    }

    /// /proc/sysvipc/msg, as Linux prints it.
    pub fn proc_text(&self, user: &UserNs) -> String {
        use crate::kernel::ns::{from_kgid, from_kuid};
        let mut out = String::from(
            "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n",
        );
        let g = self.inner.lock();
        for (idx, q) in g.ids.objs.iter() {
            out += &format!(
                "{:10} {:10}  {:4o}  {:10} {:10} {:5} {:5} {:5} {:5} {:5} {:5} {:10} {:10} {:10}\n",
                q.perm.key,
                make_id(*idx, q.perm.seq),
                q.perm.mode,
                q.cbytes,
                q.msgs.len(),
                q.lspid,
                q.lrpid,
                from_kuid(user, q.perm.uid),
                from_kgid(user, q.perm.gid),
                from_kuid(user, q.perm.cuid),
                from_kgid(user, q.perm.cgid),
                q.stime,
                q.rtime,
                q.ctime
            );
        }
        out
    }
}

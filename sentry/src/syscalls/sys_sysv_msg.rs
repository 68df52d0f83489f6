//! System V message queue system calls: msgget, msgsnd, msgrcv, msgctl.

use super::*;
use crate::ipc::msg::{MsgNs, Queue};
use crate::ipc::{Ipc64Perm, IPC_INFO, IPC_NOWAIT, IPC_RMID, IPC_SET, IPC_STAT};
use crate::kernel::ns::{make_kgid, make_kuid, ns_capable, UserNs, INVALID_ID};
use std::sync::atomic::Ordering;

const MSG_STAT: i32 = 11;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;
const MSG_NOERROR: u64 = 0o10000;
const MSG_EXCEPT: u64 = 0o20000;
const MSG_COPY: u64 = 0o40000;
/// Linux's MSGPOOL, MSGMAP, MSGTQL, MSGSSZ and MSGSEG (IPC_INFO).
const MSGPOOL: i32 = 32000 * 16384 / 1024;
const MSGMAP: i32 = 16384;
const MSGTQL: i32 = 16384;
const MSGSSZ: i32 = 16;
const MSGSEG: u16 = 0xffff;

fn msg_ns(c: &Ctx) -> (Arc<MsgNs>, Arc<UserNs>) {
    let ns = c.t.ns();
    (ns.ipc.msg.clone(), ns.ipc.user.clone())
}

pub fn msgget(c: &Ctx, key: i32, flg: u32) -> SysResult {
    let (msg, user) = msg_ns(c);
    msg.get(key, flg, &c.t.creds(), &user).map(|id| id as u64)
}

/// A signal ends a blocked msgsnd/msgrcv with EINTR if it has a handler, else the call
/// is restarted (Linux's ERESTARTNOHAND); removal gives EIDRM.
fn blocked_result<T>(r: KResult<T>) -> KResult<T> {
    match r {
        Err(e) if e.is_restart() => Err(ERESTARTNOHAND),
        r => r,
    }
}

pub fn msgsnd(c: &Ctx, id: i32, msgp: u64, size: u64, flg: u64) -> SysResult {
    let (msg, user) = msg_ns(c);
    let mm = c.t.mm();
    let typ: i64 = mm.read_obj(msgp)?;
    if size > msg.msgmax.load(Ordering::Relaxed) as u64 || (size as i64) < 0 || id < 0 {
        return Err(EINVAL);
    }
    if typ < 1 {
        return Err(EINVAL);
    }
    let text = mm.read_vec(msgp + 8, size as usize)?;
    let pid = c.t.tgid();
    let wq = {
        let g = msg.inner.lock();
        let q = g.queue(id)?;
        q.perm.check(&c.t.creds(), &user, 0o222)?;
        q.wq.clone()
    };
    let mut text = Some(text);
    let r = c.t.block_on(&[&wq], None, || {
        let mut g = msg.inner.lock();
        let Ok(q) = g.queue_mut(id) else {
            return Some(Err(EIDRM));
        };
        let len = size;
        if q.cbytes + len > q.qbytes || q.msgs.len() as u64 + 1 > q.qbytes {
            return if flg & IPC_NOWAIT as u64 != 0 {
                Some(Err(EAGAIN))
            } else {
                None
            };
        }
        q.msgs.push_back((typ, text.take().expect("sent once")));
        q.cbytes += len;
        q.lspid = pid;
        q.stime = crate::ipc::now_secs();
        g.hdrs += 1;
        g.bytes += len;
        Some(Ok(()))
    });
    blocked_result(r)?;
    wq.notify_all();
    Ok(0)
}

pub fn msgrcv(c: &Ctx, id: i32, msgp: u64, size: u64, typ: i64, flg: u64) -> SysResult {
    if (size as i64) < 0 || id < 0 {
        return Err(EINVAL);
    }
    let copy = flg & MSG_COPY != 0;
    if copy && (flg & MSG_EXCEPT != 0 || flg & IPC_NOWAIT as u64 == 0) {
        return Err(EINVAL);
    }
    let (msg, user) = msg_ns(c);
    let msgmax = msg.msgmax.load(Ordering::Relaxed) as u64;
    let pid = c.t.tgid();
    let wq = {
        let g = msg.inner.lock();
        let q = g.queue(id)?;
        q.perm.check(&c.t.creds(), &user, 0o444)?;
        q.wq.clone()
    };
    let r = c.t.block_on(&[&wq], None, || {
        let mut g = msg.inner.lock();
        let Ok(q) = g.queue_mut(id) else {
            return Some(Err(EIDRM));
        };
        // MSG_COPY: message number `typ` (from 0), left in the queue.
        let found = if copy {
            usize::try_from(typ).ok().filter(|i| *i < q.msgs.len())
        } else {
            q.select(typ, flg & MSG_EXCEPT != 0)
        };
        let Some(i) = found else {
            return if flg & IPC_NOWAIT as u64 != 0 {
                Some(Err(ENOMSG))
            } else {
                None
            };
        };
        if q.msgs[i].1.len() as u64 > size && flg & MSG_NOERROR == 0 {
            return Some(Err(E2BIG));
        }
        if copy {
            if q.msgs[i].1.len() as u64 > size.min(msgmax) {
                return Some(Err(EINVAL));
            }
            return Some(Ok(q.msgs[i].clone()));
        }
        let m = q.msgs.remove(i).expect("message");
        q.cbytes -= m.1.len() as u64;
        q.lrpid = pid;
        q.rtime = crate::ipc::now_secs();
        g.hdrs -= 1;
        g.bytes -= m.1.len() as u64;
        Some(Ok(m))
    });
    let (t, mut text) = blocked_result(r)?;
    wq.notify_all();
    text.truncate(size as usize);
    let mm = c.t.mm();
    mm.write_obj(msgp, &t)?;
    mm.write(msgp + 8, &text)?;
    Ok(text.len() as u64)
}

/// struct msqid64_ds (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MsqidDs {
    perm: Ipc64Perm,
    stime: i64,
    rtime: i64,
    ctime: i64,
    cbytes: u64,
    qnum: u64,
    qbytes: u64,
    lspid: i32,
    lrpid: i32,
    unused: [u64; 2],
}

/// struct msginfo.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MsgInfo {
    vals: [i32; 7],
    msgseg: u16,
    pad: u16,
}

fn stat_of(q: &Queue, user: &UserNs) -> MsqidDs {
    MsqidDs {
        perm: q.perm.to_user(user),
        stime: q.stime,
        rtime: q.rtime,
        ctime: q.ctime,
        cbytes: q.cbytes,
        qnum: q.msgs.len() as u64,
        qbytes: q.qbytes,
        lspid: q.lspid,
        lrpid: q.lrpid,
        unused: [0; 2],
    }
}

pub fn msgctl(c: &Ctx, id: i32, cmd: i32, buf: u64) -> SysResult {
    if id < 0 || cmd < 0 {
        return Err(EINVAL);
    }
    let (msg, user) = msg_ns(c);
    let creds = c.t.creds();
    let me = creds.user_ns();
    let mm = c.t.mm();
    match cmd {
        IPC_INFO | MSG_INFO => {
            let g = msg.inner.lock();
            let (pool, map, tql) = if cmd == MSG_INFO {
                (g.ids.objs.len() as i32, g.hdrs as i32, g.bytes as i32)
            } else {
                (MSGPOOL, MSGMAP, MSGTQL)
            };
            let info = MsgInfo {
                vals: [
                    pool,
                    map,
                    msg.msgmax.load(Ordering::Relaxed) as i32,
                    msg.msgmnb.load(Ordering::Relaxed) as i32,
                    msg.msgmni.load(Ordering::Relaxed) as i32,
                    MSGSSZ,
                    tql,
                ],
                msgseg: MSGSEG,
                pad: 0,
            };
            let r = g.ids.max_idx();
            drop(g);
            mm.write_obj(buf, &info)?;
            Ok(r)
        }
        IPC_STAT | MSG_STAT | MSG_STAT_ANY => {
            let g = msg.inner.lock();
            let (q, r) = g.ids.for_stat(id, cmd != IPC_STAT, |q| q.perm.seq)?;
            if cmd != MSG_STAT_ANY {
                q.perm.check(&creds, &user, 0o444)?;
            }
            let ds = stat_of(q, &me);
            drop(g);
            mm.write_obj(buf, &ds)?;
            Ok(r)
        }
        IPC_SET => {
            let ds: MsqidDs = mm.read_obj(buf)?;
            let mnb = msg.msgmnb.load(Ordering::Relaxed) as u64;
            let mut g = msg.inner.lock();
            let q = g.queue_mut(id)?;
            q.perm.check_owner(&creds, &user)?;
            if ds.qbytes > mnb && !ns_capable(&creds, &user, crate::kernel::cap::SYS_RESOURCE) {
                return Err(EPERM);
            }
            let (uid, gid) = (make_kuid(&me, ds.perm.uid), make_kgid(&me, ds.perm.gid));
            if uid == INVALID_ID || gid == INVALID_ID {
                return Err(EINVAL);
            }
            q.qbytes = ds.qbytes;
            q.perm.uid = uid;
            q.perm.gid = gid;
            q.perm.mode = (q.perm.mode & !0o777) | (ds.perm.mode as u32 & 0o777);
            q.ctime = crate::ipc::now_secs();
            q.wq.notify_all();
            Ok(0)
        }
        IPC_RMID => {
            let mut g = msg.inner.lock();
            g.queue(id)?.perm.check_owner(&creds, &user)?;
            msg.remove(&mut g, id);
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

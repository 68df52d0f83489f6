//! Signal system calls.

use super::*;
use crate::kernel::signal::{self, SigAction, SigInfo};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3));
    Some(match nr {
        13 => sigaction(c, a0 as i32, a1, a2, a3),
        14 => sigprocmask(c, a0 as i32, a1, a2, a3),
        15 => sigreturn(c),
        62 => kill(c, a0 as i32, a1 as i32),
        200 => tgkill(c, -1, a0 as i32, a1 as i32),
        234 => tgkill(c, a0 as i32, a1 as i32, a2 as i32),
        129 => sigqueueinfo(c, a0 as i32, a1 as i32, a2),
        127 => {
            let m = (c.t.pending.lock().mask | c.t.tg.pending.lock().mask)
                & c.t.sigmask.load(Ordering::Acquire);
            c.t.mm().write_obj(a0, &m).map(|_| 0)
        }
        131 => sigaltstack(c, a0, a1),
        130 => sigsuspend(c, a0, a1),
        34 => {
            c.t.block_on::<u64>(&[], None, || None)
                .map_err(|_| ERESTARTNOHAND)
        }
        128 => sigtimedwait(c, a0, a1, a2, a3),
        _ => return None,
    })
}

fn sigaction(c: &Ctx, sig: i32, act: u64, old: u64, size: u64) -> SysResult {
    if size != 8 || !(1..=64).contains(&sig) {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let new: Option<SigAction> = if act != 0 {
        Some(mm.read_obj(act)?)
    } else {
        None
    };
    if new.is_some() && (sig == signal::SIGKILL || sig == signal::SIGSTOP) {
        return Err(EINVAL);
    }
    let acts = c.t.tg.actions.lock().clone();
    let prev = {
        let mut a = acts.lock();
        let prev = a[sig as usize];
        if let Some(mut n) = new {
            n.mask &= !signal::UNBLOCKABLE;
            a[sig as usize] = n;
        }
        prev
    };
    if old != 0 {
        mm.write_obj(old, &prev)?;
    }
    // Setting a signal to be ignored discards it if pending.
    if let Some(n) = new {
        if n.handler == signal::SIG_IGN
            || (n.handler == signal::SIG_DFL
                && signal::default_action(sig) == signal::Default_::Ignore)
        {
            c.t.tg.pending.lock().remove(sig);
            c.t.pending.lock().remove(sig);
        }
    }
    Ok(0)
}

fn sigprocmask(c: &Ctx, how: i32, set: u64, old: u64, size: u64) -> SysResult {
    if size != 8 {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let cur = c.t.sigmask.load(Ordering::Acquire);
    if set != 0 {
        let s: u64 = mm.read_obj(set)?;
        let n = match how {
            0 => cur | s,
            1 => cur & !s,
            2 => s,
            _ => return Err(EINVAL),
        };
        c.t.sigmask
            .store(n & !signal::UNBLOCKABLE, Ordering::Release);
    }
    if old != 0 {
        mm.write_obj(old, &cur)?;
    }
    Ok(0)
}

fn sigreturn(c: &mut Ctx) -> SysResult {
    let (mask, fp) = match signal::restore_frame(c.t, c.regs) {
        Ok(x) => x,
        Err(_) => {
            signal::force(c.t, SigInfo::kernel(signal::SIGSEGV));
            return Ok(c.regs.rax);
        }
    };
    c.t.sigmask.store(mask, Ordering::Release);
    if let Some(fp) = fp {
        let _ = c.pctx.set_fp_state(&c.t.mm().aspace, &fp);
    }
    Ok(c.regs.rax)
}

pub(super) fn may_signal(c: &Ctx, target: &crate::kernel::Task, sig: i32) -> bool {
    let me = c.t.creds();
    let them = target.creds();
    me.has_cap(crate::kernel::cap::KILL)
        || me.euid == them.uid
        || me.uid == them.uid
        || me.euid == them.suid
        || me.uid == them.suid
        || (sig == signal::SIGCONT)
}

fn kill(c: &Ctx, pid: i32, sig: i32) -> SysResult {
    if !(0..=64).contains(&sig) {
        return Err(EINVAL);
    }
    let k = &c.t.kernel;
    let me = c.t.tgid();
    let uid = c.t.creds().uid;
    let targets: Vec<Arc<crate::kernel::ThreadGroup>> = {
        let tab = k.table.lock();
        let my_pgid = tab.procs.get(&me).map(|p| p.pgid).unwrap_or(0);
        tab.procs
            .iter()
            .filter(|(id, p)| {
                p.zombie.is_none()
                    && match pid {
                        x if x > 0 => **id == x,
                        0 => p.pgid == my_pgid,
                        -1 => **id != 1 && **id != me,
                        x => p.pgid == -x,
                    }
            })
            .map(|(_, p)| p.tg.clone())
            .collect()
    };
    if targets.is_empty() {
        // A zombie still exists for kill(pid, 0).
        if pid > 0 && k.table.lock().procs.contains_key(&pid) {
            return Ok(0);
        }
        return Err(ESRCH);
    }
    let mut sent = 0;
    for tg in targets {
        if let Some(t) = k.task(tg.tgid).or_else(|| {
            let tab = k.table.lock();
            tab.procs
                .get(&tg.tgid)
                .and_then(|p| p.threads.first())
                .and_then(|x| tab.tasks.get(x).cloned())
        }) {
            if !may_signal(c, &t, sig) {
                continue;
            }
        }
        sent += 1;
        signal::send_to_group(k, &tg, SigInfo::user(sig, signal::SI_USER, me, uid));
    }
    if sent == 0 {
        return Err(EPERM);
    }
    Ok(0)
}

fn tgkill(c: &Ctx, tgid: i32, tid: i32, sig: i32) -> SysResult {
    if !(0..=64).contains(&sig) || tid <= 0 || (tgid != -1 && tgid <= 0) {
        return Err(EINVAL);
    }
    let t = c.t.kernel.task(tid).ok_or(ESRCH)?;
    if tgid != -1 && t.tgid() != tgid {
        return Err(ESRCH);
    }
    if !may_signal(c, &t, sig) {
        return Err(EPERM);
    }
    if sig != 0 {
        t.send_signal(SigInfo::user(
            sig,
            signal::SI_TKILL,
            c.t.tgid(),
            c.t.creds().uid,
        ));
    }
    Ok(0)
}

fn sigqueueinfo(c: &Ctx, pid: i32, sig: i32, infop: u64) -> SysResult {
    if !(1..=64).contains(&sig) {
        return Err(EINVAL);
    }
    let mut info = SigInfo(c.t.mm().read_obj(infop)?);
    if info.code() >= 0 && pid != c.t.tgid() {
        return Err(EPERM);
    }
    info.set_i32(0, sig);
    let k = &c.t.kernel;
    let tg = k
        .table
        .lock()
        .procs
        .get(&pid)
        .filter(|p| p.zombie.is_none())
        .map(|p| p.tg.clone())
        .ok_or(ESRCH)?;
    signal::send_to_group(k, &tg, info);
    Ok(0)
}

fn sigaltstack(c: &Ctx, ss: u64, old: u64) -> SysResult {
    const SS_ONSTACK: i32 = 1;
    const SS_DISABLE: i32 = 2;
    let mm = c.t.mm();
    let cur = *c.t.altstack.lock();
    let rsp = c.regs.rsp;
    let on = cur.1 != 0 && rsp > cur.0 && rsp <= cur.0 + cur.1;
    if old != 0 {
        let flags = if on {
            SS_ONSTACK
        } else if cur.1 == 0 {
            SS_DISABLE
        } else {
            0
        };
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&cur.0.to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&cur.1.to_le_bytes());
        mm.write(old, &b)?;
    }
    if ss != 0 {
        let b = mm.read_vec(ss, 24)?;
        let sp = u64::from_le_bytes(b[0..8].try_into().expect("8"));
        let flags = i32::from_le_bytes(b[8..12].try_into().expect("4"));
        let size = u64::from_le_bytes(b[16..24].try_into().expect("8"));
        if on {
            return Err(EPERM);
        }
        if flags & !(SS_DISABLE | (1 << 31)) != 0 {
            return Err(EINVAL);
        }
        if flags & SS_DISABLE != 0 {
            *c.t.altstack.lock() = (0, 0, SS_DISABLE);
        } else {
            if size < 2048 {
                return Err(ENOMEM);
            }
            *c.t.altstack.lock() = (sp, size, 0);
        }
    }
    Ok(0)
}

fn sigsuspend(c: &Ctx, maskp: u64, size: u64) -> SysResult {
    if size != 8 {
        return Err(EINVAL);
    }
    let m: u64 = c.t.mm().read_obj(maskp)?;
    let old = c.t.sigmask.swap(m & !signal::UNBLOCKABLE, Ordering::AcqRel);
    *c.t.saved_mask.lock() = Some(old);
    let _ = c.t.block_on::<u64>(&[], None, || None);
    Err(ERESTARTNOHAND)
}

fn sigtimedwait(c: &Ctx, setp: u64, infop: u64, tsp: u64, size: u64) -> SysResult {
    if size != 8 {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let set: u64 = mm.read_obj::<u64>(setp)? & !signal::UNBLOCKABLE;
    let deadline = if tsp != 0 {
        let t: [i64; 2] = mm.read_obj(tsp)?;
        if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
            return Err(EINVAL);
        }
        Some(Instant::now() + Duration::new(t[0] as u64, t[1] as u32))
    } else {
        None
    };
    let take = || {
        let notset = !set;
        c.t.pending
            .lock()
            .pop(notset)
            .or_else(|| c.t.tg.pending.lock().pop(notset))
    };
    // While waiting, the signals in `set` are unblocked for wake-ups only.
    let old = c.t.sigmask.load(Ordering::Acquire);
    c.t.real_blocked.store(old, Ordering::Release);
    c.t.sigmask.store(old & !set, Ordering::Release);
    let r = c.t.block_on(&[], deadline, || take().map(Ok));
    c.t.sigmask.store(old, Ordering::Release);
    c.t.real_blocked.store(0, Ordering::Release);
    match r {
        Ok(info) => {
            if infop != 0 {
                mm.write(infop, &info.0)?;
            }
            Ok(info.signo() as u64)
        }
        Err(e) if e == ETIMEDOUT => Err(EAGAIN),
        Err(_) => Err(EINTR),
    }
}

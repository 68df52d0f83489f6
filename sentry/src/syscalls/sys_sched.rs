//! Scheduling: affinity, policies and priorities. The Sentry does not schedule (the host
//! does), so policies other than the normal ones are refused rather than pretended.

use super::*;
use std::sync::atomic::Ordering;

const SCHED_OTHER: u64 = 0;
const SCHED_FIFO: u64 = 1;
const SCHED_RR: u64 = 2;
const SCHED_BATCH: u64 = 3;
const SCHED_IDLE: u64 = 5;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2) = (c.arg(0), c.arg(1), c.arg(2));
    Some(match nr {
        203 => setaffinity(c, a0 as i32, a1, a2),
        204 => getaffinity(c, a0 as i32, a1, a2),
        142 => setparam(c, a0 as i32, a1),
        143 => getparam(c, a0 as i32, a1),
        144 => setscheduler(c, a0 as i32, a1, a2),
        145 => target(c, a0 as i32).map(|t| t.sched_policy.load(Ordering::Relaxed) as u64),
        146 => prio_bound(a0, true),
        147 => prio_bound(a0, false),
        148 => target(c, a0 as i32)
            .and_then(|_| c.t.mm().write_obj(a1, &[0i64, 100_000_000]).map(|_| 0)),
        140 => getpriority(c, a0 as i32, a1 as i32),
        141 => setpriority(c, a0 as i32, a1 as i32, a2 as i32),
        _ => return None,
    })
}

fn target(c: &Ctx, pid: i32) -> KResult<Arc<Task>> {
    if pid < 0 {
        return Err(EINVAL);
    }
    if pid == 0 {
        return Ok(c.t.clone());
    }
    c.t.kernel.task(pid).ok_or(ESRCH)
}

/// May the caller change `t`'s scheduling (check_same_owner / set_one_prio_perm): it is
/// the target's owner (the caller's effective uid is the target's real or effective
/// one), or it has CAP_SYS_NICE.
fn may_sched(c: &Ctx, t: &Task) -> KResult<()> {
    let (me, them) = (c.t.creds(), t.creds());
    if me.euid == them.uid || me.euid == them.euid || me.has_cap(crate::kernel::cap::SYS_NICE) {
        Ok(())
    } else {
        Err(EPERM)
    }
}

fn all_cpus(c: &Ctx) -> u64 {
    let n = c.t.kernel.ncpus;
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The affinity calls have no negative-pid check: no such process (ESRCH).
fn affinity_target(c: &Ctx, pid: i32) -> KResult<Arc<Task>> {
    if pid < 0 {
        return Err(ESRCH);
    }
    target(c, pid)
}

fn setaffinity(c: &Ctx, pid: i32, len: u64, maskp: u64) -> SysResult {
    let t = affinity_target(c, pid)?;
    let n = (len as usize).min(128);
    let bytes = c.t.mm().read_vec(maskp, n)?;
    let mut mask = 0u64;
    for (i, b) in bytes.iter().take(8).enumerate() {
        mask |= (*b as u64) << (8 * i);
    }
    may_sched(c, &t)?;
    let mask = mask & all_cpus(c);
    if mask == 0 {
        return Err(EINVAL);
    }
    t.affinity.store(mask, Ordering::Relaxed);
    Ok(0)
}

fn getaffinity(c: &Ctx, pid: i32, len: u64, maskp: u64) -> SysResult {
    let n = c.t.kernel.ncpus;
    let bytes = n.div_ceil(64) * 8;
    if (len as usize) < bytes || !len.is_multiple_of(8) {
        return Err(EINVAL);
    }
    let t = affinity_target(c, pid)?;
    let mask = t.affinity.load(Ordering::Relaxed);
    let v: Vec<u8> = (0..bytes)
        .map(|i| if i < 8 { (mask >> (8 * i)) as u8 } else { 0 })
        .collect();
    c.t.mm().write(maskp, &v)?;
    Ok(bytes as u64)
}

fn prio_bound(policy: u64, max: bool) -> SysResult {
    match policy {
        SCHED_FIFO | SCHED_RR => Ok(if max { 99 } else { 1 }),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Ok(0),
        _ => Err(EINVAL),
    }
}

fn getparam(c: &Ctx, pid: i32, p: u64) -> SysResult {
    target(c, pid)?;
    if p == 0 {
        return Err(EINVAL);
    }
    c.t.mm().write_obj(p, &0i32).map(|_| 0)
}

fn check_policy(c: &Ctx, policy: u64, prio: i32) -> KResult<()> {
    match policy & !0x4000_0000 {
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE if prio == 0 => Ok(()),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Err(EINVAL),
        SCHED_FIFO | SCHED_RR if !(1..=99).contains(&prio) => Err(EINVAL),
        SCHED_FIFO | SCHED_RR => {
            // Real-time scheduling cannot be given to a sandboxed task: refuse, as a
            // container without CAP_SYS_NICE sees it.
            c.t.kernel
                .report_unimplemented(144, "sched_setscheduler(SCHED_FIFO/RR)", c.t.tgid());
            Err(EPERM)
        }
        _ => Err(EINVAL),
    }
}

fn setparam(c: &Ctx, pid: i32, p: u64) -> SysResult {
    let t = target(c, pid)?;
    if p == 0 {
        return Err(EINVAL);
    }
    let prio: i32 = c.t.mm().read_obj(p)?;
    check_policy(c, SCHED_OTHER, prio)?;
    may_sched(c, &t).map(|_| 0)
}

fn setscheduler(c: &Ctx, pid: i32, policy: u64, p: u64) -> SysResult {
    let t = target(c, pid)?;
    if p == 0 || (policy as i64) < 0 {
        return Err(EINVAL);
    }
    let prio: i32 = c.t.mm().read_obj(p)?;
    check_policy(c, policy, prio)?;
    may_sched(c, &t)?;
    t.sched_policy
        .store((policy & !0x4000_0000) as u32, Ordering::Relaxed);
    Ok(0)
}

/// The tasks a (which, who) pair of get/setpriority names.
fn prio_targets(c: &Ctx, which: i32, who: i32) -> KResult<Vec<Arc<Task>>> {
    let k = &c.t.kernel;
    let tab = k.table.lock();
    let v: Vec<Arc<Task>> = match which {
        0 => {
            let id = if who == 0 { c.t.tid() } else { who };
            tab.tasks.get(&id).cloned().into_iter().collect()
        }
        1 => {
            let pg = if who == 0 {
                tab.procs.get(&c.t.tgid()).map(|p| p.pgid).unwrap_or(0)
            } else {
                who
            };
            tab.procs
                .values()
                .filter(|p| p.pgid == pg)
                .flat_map(|p| p.threads.iter().filter_map(|t| tab.tasks.get(t).cloned()))
                .collect()
        }
        2 => {
            let uid = if who == 0 {
                c.t.creds().uid
            } else {
                who as u32
            };
            tab.tasks
                .values()
                .filter(|t| t.creds().uid == uid)
                .cloned()
                .collect()
        }
        _ => return Err(EINVAL),
    };
    if v.is_empty() {
        return Err(ESRCH);
    }
    Ok(v)
}

fn getpriority(c: &Ctx, which: i32, who: i32) -> SysResult {
    let ts = prio_targets(c, which, who)?;
    // The raw system call returns 20 - nice (1..40); glibc converts it back.
    let best = ts
        .iter()
        .map(|t| t.nice.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0);
    Ok((20 - best) as u64)
}

fn setpriority(c: &Ctx, which: i32, who: i32, nice: i32) -> SysResult {
    let nice = nice.clamp(-20, 19);
    let ts = prio_targets(c, which, who)?;
    let cr = c.t.creds();
    // Lowering the nice value needs RLIMIT_NICE to allow it or CAP_SYS_NICE (can_nice).
    let rlimit_nice = c.t.rlimit(13).0;
    let can_nice = (20 - nice) as u64 <= rlimit_nice || cr.has_cap(crate::kernel::cap::SYS_NICE);
    for t in &ts {
        may_sched(c, t)?;
        if nice < t.nice.load(Ordering::Relaxed) && !can_nice {
            return Err(EACCES);
        }
    }
    for t in ts {
        t.nice.store(nice, Ordering::Relaxed);
    }
    Ok(0)
}

//! prctl(2) and the capability system calls capget/capset.

use super::*;
use crate::kernel::{cap, CAP_FULL};
use std::sync::atomic::Ordering;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3, a4) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4));
    Some(match nr {
        157 => prctl(c, a0 as i32, a1, a2, a3, a4),
        125 => capget(c, a0, a1),
        126 => capset(c, a0, a1),
        _ => return None,
    })
}

const PR_SET_PDEATHSIG: i32 = 1;
const PR_GET_PDEATHSIG: i32 = 2;
const PR_GET_DUMPABLE: i32 = 3;
const PR_SET_DUMPABLE: i32 = 4;
const PR_GET_KEEPCAPS: i32 = 7;
const PR_SET_KEEPCAPS: i32 = 8;
const PR_SET_NAME: i32 = 15;
const PR_GET_NAME: i32 = 16;
const PR_GET_SECCOMP: i32 = 21;
const PR_CAPBSET_READ: i32 = 23;
const PR_CAPBSET_DROP: i32 = 24;
const PR_GET_SECUREBITS: i32 = 27;
const PR_SET_TIMERSLACK: i32 = 29;
const PR_GET_TIMERSLACK: i32 = 30;
const PR_SET_CHILD_SUBREAPER: i32 = 36;
const PR_GET_CHILD_SUBREAPER: i32 = 37;
const PR_SET_NO_NEW_PRIVS: i32 = 38;
const PR_GET_NO_NEW_PRIVS: i32 = 39;
const PR_GET_TID_ADDRESS: i32 = 40;
const PR_CAP_AMBIENT: i32 = 47;

fn cap_valid(n: u64) -> bool {
    n <= cap::LAST as u64
}

fn prctl(c: &Ctx, op: i32, a1: u64, a2: u64, a3: u64, a4: u64) -> SysResult {
    let t = c.t;
    match op {
        PR_SET_NAME => {
            let mut n = t.mm().read_cstr(a1, 4096).or_else(|e| {
                if e == ENAMETOOLONG {
                    Ok(vec![])
                } else {
                    Err(e)
                }
            })?;
            n.truncate(15);
            *t.name.lock() = n;
            Ok(0)
        }
        PR_GET_NAME => {
            let mut n = t.name.lock().clone();
            n.resize(16, 0);
            t.mm().write(a1, &n)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG => {
            if a1 > 64 {
                return Err(EINVAL);
            }
            t.pdeathsig.store(a1 as i32, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_PDEATHSIG => t
            .mm()
            .write_obj(a1, &t.pdeathsig.load(Ordering::Relaxed))
            .map(|_| 0),
        // A property of the address space: inherited by fork, reset by execve.
        PR_GET_DUMPABLE => Ok(t.mm().dumpable.load(Ordering::Relaxed) as u64),
        PR_SET_DUMPABLE => {
            if a1 > 1 {
                return Err(EINVAL);
            }
            t.mm().dumpable.store(a1 == 1, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_KEEPCAPS => Ok(t.creds().keep_caps as u64),
        PR_SET_KEEPCAPS => {
            if a1 > 1 {
                return Err(EINVAL);
            }
            t.creds.lock().keep_caps = a1 == 1;
            Ok(0)
        }
        // No seccomp filters are supported, so no task is ever in a seccomp mode.
        PR_GET_SECCOMP => Ok(0),
        PR_CAPBSET_READ => {
            if !cap_valid(a1) {
                return Err(EINVAL);
            }
            Ok((t.creds().cap_bset >> a1) & 1)
        }
        PR_CAPBSET_DROP => {
            if !cap_valid(a1) {
                return Err(EINVAL);
            }
            let mut cr = t.creds.lock();
            if !cr.has_cap(cap::SETPCAP) {
                return Err(EPERM);
            }
            cr.cap_bset &= !(1 << a1);
            Ok(0)
        }
        // No securebits are ever set (PR_SET_SECUREBITS is not implemented).
        PR_GET_SECUREBITS => Ok(0),
        PR_SET_TIMERSLACK => {
            let m = &t.misc;
            let v = if a1 == 0 {
                m.default_timer_slack_ns.load(Ordering::Relaxed)
            } else {
                a1
            };
            m.timer_slack_ns.store(v, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_TIMERSLACK => Ok(t.misc.timer_slack_ns.load(Ordering::Relaxed)),
        PR_SET_CHILD_SUBREAPER => {
            let mut tab = t.kernel.table.lock();
            tab.procs.get_mut(&t.tgid()).ok_or(ESRCH)?.subreaper = a1 != 0;
            Ok(0)
        }
        PR_GET_CHILD_SUBREAPER => {
            let v = t
                .kernel
                .table
                .lock()
                .procs
                .get(&t.tgid())
                .map(|p| p.subreaper as i32)
                .unwrap_or(0);
            t.mm().write_obj(a1, &v).map(|_| 0)
        }
        PR_SET_NO_NEW_PRIVS => {
            if a1 != 1 || a2 != 0 || a3 != 0 || a4 != 0 {
                return Err(EINVAL);
            }
            t.no_new_privs.store(true, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => {
            if a1 != 0 || a2 != 0 || a3 != 0 || a4 != 0 {
                return Err(EINVAL);
            }
            Ok(t.no_new_privs.load(Ordering::Relaxed) as u64)
        }
        PR_GET_TID_ADDRESS => t
            .mm()
            .write_obj(a1, &t.clear_child_tid.load(Ordering::Relaxed))
            .map(|_| 0),
        PR_CAP_AMBIENT => match a1 {
            // PR_CAP_AMBIENT_IS_SET, _CLEAR_ALL: no ambient capabilities are ever raised.
            1 => {
                if !cap_valid(a2) {
                    return Err(EINVAL);
                }
                Ok(0)
            }
            4 => Ok(0),
            2 | 3 => {
                t.kernel
                    .report_unimplemented(157, "prctl(PR_CAP_AMBIENT raise/lower)", t.tgid());
                Err(EINVAL)
            }
            _ => Err(EINVAL),
        },
        _ => {
            t.kernel
                .report_unimplemented(157, "prctl(option)", t.tgid());
            Err(EINVAL)
        }
    }
}

const CAP_V1: u32 = 0x1998_0330;
const CAP_V2: u32 = 0x2007_1026;
const CAP_V3: u32 = 0x2008_0522;

/// The header of capget/capset: (32-bit words per set, pid). An unknown version is
/// answered by writing the preferred one back; it is EINVAL, except for capget with
/// no data pointer (the way libcap asks for the version), which succeeds.
fn cap_header(c: &Ctx, hdrp: u64, probe: bool) -> KResult<Option<(usize, i32)>> {
    let h: [u32; 2] = c.t.mm().read_obj(hdrp)?;
    let words = match h[0] {
        CAP_V1 => 1,
        CAP_V2 | CAP_V3 => 2,
        _ => {
            c.t.mm().write_obj(hdrp, &CAP_V3)?;
            return if probe { Ok(None) } else { Err(EINVAL) };
        }
    };
    if (h[1] as i32) < 0 {
        return Err(EINVAL);
    }
    Ok(Some((words, h[1] as i32)))
}

/// capget (v1: one 32-bit word per set; v2/v3: two).
fn capget(c: &Ctx, hdrp: u64, datap: u64) -> SysResult {
    let Some((words, pid)) = cap_header(c, hdrp, datap == 0)? else {
        return Ok(0);
    };
    let cr = if pid == 0 || pid == c.t.tid() {
        c.t.creds()
    } else {
        c.t.kernel.task(pid).ok_or(ESRCH)?.creds()
    };
    if datap == 0 {
        return Ok(0);
    }
    let mut out = vec![];
    for w in 0..words {
        for set in [cr.cap_effective, cr.cap_permitted, cr.cap_inheritable] {
            out.extend_from_slice(&((set >> (32 * w)) as u32).to_le_bytes());
        }
    }
    c.t.mm().write(datap, &out)?;
    Ok(0)
}

/// capset on the caller (capabilities(7), "Programmatically adjusting capability sets").
fn capset(c: &Ctx, hdrp: u64, datap: u64) -> SysResult {
    let Some((words, pid)) = cap_header(c, hdrp, false)? else {
        return Err(EINVAL);
    };
    if pid != 0 && pid != c.t.tid() {
        return Err(EPERM);
    }
    let raw = c.t.mm().read_vec(datap, words * 12)?;
    let mut sets = [0u64; 3];
    for w in 0..words {
        for (i, set) in sets.iter_mut().enumerate() {
            let off = w * 12 + i * 4;
            *set |=
                (u32::from_le_bytes(raw[off..off + 4].try_into().expect("4")) as u64) << (32 * w);
        }
    }
    let [eff, perm, inh] = sets;
    let mut cr = c.t.creds.lock();
    // The inheritable set may gain only what is permitted (anything with CAP_SETPCAP),
    // and never what the bounding set lacks.
    let inh_limit = cr.cap_inheritable
        | if cr.has_cap(cap::SETPCAP) {
            CAP_FULL
        } else {
            cr.cap_permitted
        };
    if perm & !cr.cap_permitted != 0
        || eff & !perm != 0
        || inh & !inh_limit != 0
        || inh & !(cr.cap_inheritable | cr.cap_bset) != 0
        || (inh | perm | eff) & !CAP_FULL != 0
    {
        return Err(EPERM);
    }
    cr.cap_effective = eff;
    cr.cap_permitted = perm;
    cr.cap_inheritable = inh;
    Ok(0)
}

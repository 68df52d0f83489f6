//! POSIX timers: timer_create, timer_settime, timer_gettime, timer_getoverrun,
//! timer_delete.

use super::*;
use crate::kernel::timers::{PosixTimer, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD_ID};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3));
    Some(match nr {
        222 => create(c, a0 as i32, a1, a2),
        223 => settime(c, a0 as i32, a1 as i32, a2, a3),
        224 => gettime(c, a0 as i32, a1),
        225 => timer(c, a0 as i32).map(|t| t.state.lock().overrun.max(0) as u64),
        226 => delete(c, a0 as i32),
        _ => return None,
    })
}

fn timer(c: &Ctx, id: i32) -> KResult<Arc<PosixTimer>> {
    c.t.tg.timers.lock().get(&id).cloned().ok_or(EINVAL)
}

fn create(c: &Ctx, clock: i32, sevp: u64, idp: u64) -> SysResult {
    // Wall clocks only: CLOCK_REALTIME, MONOTONIC, BOOTTIME (and their _ALARM forms
    // need CAP_WAKE_ALARM). CPU-time clocks are not implemented.
    match clock {
        0 | 1 | 7 => {}
        2 | 3 => {
            c.t.kernel
                .report_unimplemented(222, "timer_create(CPU-time clock)", c.t.tgid());
            return Err(EINVAL);
        }
        8 | 9 => return Err(EPERM),
        _ => return Err(EINVAL),
    }
    let (notify, signo, value, tid) = if sevp == 0 {
        (SIGEV_SIGNAL, crate::kernel::signal::SIGALRM, 0u64, 0)
    } else {
        // struct sigevent: sigval (8), signo (4), notify (4), tid (4) ...
        let b: [u8; 20] = c.t.mm().read_obj(sevp)?;
        let value = u64::from_le_bytes(b[0..8].try_into().expect("8"));
        let signo = i32::from_le_bytes(b[8..12].try_into().expect("4"));
        let notify = i32::from_le_bytes(b[12..16].try_into().expect("4"));
        let tid = i32::from_le_bytes(b[16..20].try_into().expect("4"));
        (notify, signo, value, tid)
    };
    if notify != SIGEV_NONE && !(1..=64).contains(&signo) {
        return Err(EINVAL);
    }
    let thread = match notify {
        SIGEV_SIGNAL | SIGEV_NONE => None,
        SIGEV_THREAD_ID => {
            let t =
                c.t.kernel
                    .task(tid)
                    .filter(|t| t.tgid() == c.t.tgid())
                    .ok_or(EINVAL)?;
            Some(Arc::downgrade(&t))
        }
        _ => return Err(EINVAL),
    };
    let mut timers = c.t.tg.timers.lock();
    let id = (0..).find(|i| !timers.contains_key(i)).ok_or(EAGAIN)?;
    let value = if sevp == 0 { id as u64 } else { value };
    c.t.mm().write_obj(idp, &id)?;
    timers.insert(
        id,
        Arc::new(PosixTimer {
            id,
            clock,
            notify,
            signo,
            value,
            thread,
            state: Default::default(),
        }),
    );
    Ok(0)
}

fn clock_now(clock: i32, c: &Ctx) -> Duration {
    match clock {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
        _ => c.t.kernel.uptime(),
    }
}

fn read_its(c: &Ctx, p: u64) -> KResult<(Duration, Duration)> {
    let v: [i64; 4] = c.t.mm().read_obj(p)?;
    for (s, ns) in [(v[0], v[1]), (v[2], v[3])] {
        if s < 0 || !(0..1_000_000_000).contains(&ns) {
            return Err(EINVAL);
        }
    }
    Ok((
        Duration::new(v[0] as u64, v[1] as u32),
        Duration::new(v[2] as u64, v[3] as u32),
    ))
}

fn write_its(c: &Ctx, p: u64, (value, interval): (Duration, Duration)) -> KResult<()> {
    let v = [
        interval.as_secs() as i64,
        interval.subsec_nanos() as i64,
        value.as_secs() as i64,
        value.subsec_nanos() as i64,
    ];
    c.t.mm().write_obj(p, &v)
}

fn settime(c: &Ctx, id: i32, flags: i32, newp: u64, oldp: u64) -> SysResult {
    const TIMER_ABSTIME: i32 = 1;
    let t = timer(c, id)?;
    if newp == 0 {
        return Err(EFAULT);
    }
    let (interval, value) = read_its(c, newp)?;
    let deadline = if value.is_zero() {
        None
    } else if flags & TIMER_ABSTIME != 0 {
        Some(Instant::now() + value.saturating_sub(clock_now(t.clock, c)))
    } else {
        Some(Instant::now() + value)
    };
    let old = t.set(
        &c.t.kernel,
        &c.t.tg,
        deadline,
        if deadline.is_some() {
            interval
        } else {
            Duration::ZERO
        },
    );
    if oldp != 0 {
        write_its(c, oldp, old)?;
    }
    Ok(0)
}

fn gettime(c: &Ctx, id: i32, p: u64) -> SysResult {
    let t = timer(c, id)?;
    write_its(c, p, t.get())?;
    Ok(0)
}

fn delete(c: &Ctx, id: i32) -> SysResult {
    let t = c.t.tg.timers.lock().remove(&id).ok_or(EINVAL)?;
    let mut s = t.state.lock();
    s.deleted = true;
    s.deadline = None;
    drop(s);
    c.t.tg.pending.lock().remove_timer(id);
    Ok(0)
}

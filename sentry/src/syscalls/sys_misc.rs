//! Time, identity, limits, futex and other small system calls.

use super::*;
use crate::kernel::futex;
use crate::kernel::signal::{self, SigInfo};
use std::time::{Duration, Instant};

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3, a4, a5) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4), c.arg(5));
    Some(match nr {
        24 => {
            std::thread::yield_now();
            Ok(0)
        }
        35 => nanosleep(c, 1, 0, a0, a1),
        219 => restart_syscall(c),
        230 => nanosleep(c, a0 as i32, a1, a2, a3),
        37 => alarm(c, a0),
        36 => getitimer(c, a0, a1),
        38 => setitimer(c, a0, a1, a2),
        63 => uname(c, a0),
        96 => gettimeofday(c, a0),
        201 => {
            let s = realtime().as_secs();
            if a0 != 0 {
                c.t.mm().write_obj(a0, &s).map(|_| s)
            } else {
                Ok(s)
            }
        }
        228 => clock_gettime(c, a0 as i32, a1),
        229 => clock_getres(c, a0 as i32, a1),
        97 => {
            if a0 >= 16 {
                return Some(Err(EINVAL));
            }
            let r = c.t.rlimit(a0 as usize);
            c.t.mm().write_obj(a1, &[r.0, r.1]).map(|_| 0)
        }
        160 => prlimit(c, 0, a0, a1, 0),
        302 => prlimit(c, a0 as i32, a1, a2, a3),
        98 => getrusage(c, a0 as i32, a1),
        99 => sysinfo(c, a0),
        100 => times(c, a0),
        202 => do_futex(c, a0, a1 as u32, a2 as u32, a3, a4, a5 as u32),

        309 => getcpu(c, a0, a1),
        318 => getrandom(c, a0, a1, a2 as u32),
        170 | 171 => sethostname(c, a0, a1, nr == 170),
        103 => syslog(c, a0 as i32, a1, a2 as i64),
        // The sandbox cannot set the host's clocks: refused as in a container without
        // CAP_SYS_TIME (arguments are still checked first).
        164 => {
            if a0 != 0 {
                let tv: [i64; 2] = match c.t.mm().read_obj(a0) {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                };
                if !(0..1_000_000).contains(&tv[1]) {
                    return Some(Err(EINVAL));
                }
            }
            Err(EPERM)
        }
        // CPU-time clocks cannot be set (EPERM once the clock is valid).
        227 if (a0 as i32) < 0 => cpu_clock(c, a0 as i32, false).and(Err(EPERM)),
        227 => clock_check(a0 as i32).and(if a0 == 0 { Err(EPERM) } else { Err(EINVAL) }),
        135 => personality(c, a0 as u32),
        251 => ioprio_set(c, a0 as i32, a1 as i32, a2 as u32),
        252 => ioprio_get(c, a0 as i32, a1 as i32),
        165 => mount(c, a0, a1, a2, a3, a4),
        166 => umount2(c, a0, a1),
        272 => unshare(c, a0),
        _ => return None,
    })
}

fn clock_check(id: i32) -> KResult<()> {
    if (0..=11).contains(&id) && id != 8 && id != 9 && id != 10 {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

use crate::vdso::{realtime, COARSE_RES_NS};

/// The clock at its last tick.
fn coarse(d: Duration) -> Duration {
    let ns = d.as_nanos() as u64;
    Duration::from_nanos(ns - ns % COARSE_RES_NS)
}

fn clock_now(c: &Ctx, id: i32) -> KResult<Duration> {
    if id < 0 {
        let (target, which) = cpu_clock(c, id, true)?;
        return Ok(Duration::from_nanos(target.read(c, which)));
    }
    clock_check(id)?;
    Ok(match id {
        0 | 8 | 11 => realtime(),
        5 => coarse(realtime()),
        6 => coarse(c.t.kernel.uptime()),
        2 => Duration::from_nanos(crate::kernel::acct::group_usage(&c.t.kernel, &c.t.tg).cpu()),
        3 => Duration::from_nanos(crate::kernel::acct::task_usage(c.t).cpu()),
        _ => c.t.kernel.uptime(),
    })
}

/// Whose CPU time a CPU-time clock id (negative: pid and flags encoded, see
/// clock_getcpuclockid(3)) reads.
enum CpuClockOf {
    Thread(Arc<crate::kernel::Task>),
    Process(Arc<crate::kernel::ThreadGroup>),
}

/// CPUCLOCK_PROF (user + system), CPUCLOCK_VIRT (user), CPUCLOCK_SCHED (all).
const CPUCLOCK_VIRT: i32 = 1;
const CPUCLOCK_SCHED: i32 = 2;

impl CpuClockOf {
    /// Can the clock still advance?
    fn alive(&self, k: &crate::kernel::Kernel) -> bool {
        let tab = k.table.lock();
        match self {
            CpuClockOf::Thread(t) => tab.tasks.contains_key(&t.tid()),
            CpuClockOf::Process(tg) => tab
                .procs
                .get(&tg.tgid)
                .is_some_and(|p| p.zombie.is_none() && !p.threads.is_empty()),
        }
    }

    fn read(&self, c: &Ctx, which: i32) -> u64 {
        let u = match self {
            CpuClockOf::Thread(t) => crate::kernel::acct::task_usage(t),
            CpuClockOf::Process(tg) => crate::kernel::acct::group_usage(&c.t.kernel, tg),
        };
        if which == CPUCLOCK_VIRT {
            u.utime
        } else {
            u.cpu()
        }
    }
}

/// Decode a CPU-time clock id as Linux does (pid_for_clock): a thread clock names a
/// thread of the caller's own process; a process clock names a live or zombie process
/// (for clock_gettime also by the caller's own thread id); pid 0 is the caller.
fn cpu_clock(c: &Ctx, id: i32, gettime: bool) -> KResult<(CpuClockOf, i32)> {
    let which = id & 3;
    if which > CPUCLOCK_SCHED {
        return Err(EINVAL);
    }
    let thread = id & 4 != 0;
    let pid = !(id >> 3);
    if pid == 0 {
        return Ok((
            if thread {
                CpuClockOf::Thread(c.t.clone())
            } else {
                CpuClockOf::Process(c.t.tg.clone())
            },
            which,
        ));
    }
    let tab = c.t.kernel.table.lock();
    if thread {
        return match tab.tasks.get(&pid) {
            Some(t) if t.tgid() == c.t.tgid() => Ok((CpuClockOf::Thread(t.clone()), which)),
            _ => Err(EINVAL),
        };
    }
    if gettime && pid == c.t.tid() {
        return Ok((CpuClockOf::Process(c.t.tg.clone()), which));
    }
    match tab.procs.get(&pid) {
        Some(p) => Ok((CpuClockOf::Process(p.tg.clone()), which)),
        None => Err(EINVAL),
    }
}

fn clock_getres(c: &Ctx, id: i32, res: u64) -> SysResult {
    let ns: u64 = if id < 0 {
        let (_, which) = cpu_clock(c, id, false)?;
        if which == CPUCLOCK_SCHED {
            1
        } else {
            COARSE_RES_NS
        }
    } else {
        clock_check(id)?;
        if id == 5 || id == 6 {
            COARSE_RES_NS
        } else {
            1
        }
    };
    if res != 0 {
        c.t.mm().write_obj(res, &[0i64, ns as i64])?;
    }
    Ok(0)
}

fn clock_gettime(c: &Ctx, id: i32, tp: u64) -> SysResult {
    let d = clock_now(c, id)?;
    c.t.mm()
        .write_obj(tp, &[d.as_secs() as i64, d.subsec_nanos() as i64])?;
    Ok(0)
}

fn gettimeofday(c: &Ctx, tv: u64) -> SysResult {
    if tv != 0 {
        let d = realtime();
        c.t.mm()
            .write_obj(tv, &[d.as_secs() as i64, d.subsec_micros() as i64])?;
    }
    Ok(0)
}

fn nanosleep(c: &Ctx, clock: i32, flags: u64, req: u64, rem: u64) -> SysResult {
    // CPU-time clocks: CLOCK_PROCESS_CPUTIME_ID and encoded ids (but not the ids of
    // posix dynamic clocks, CLOCKFD = 3, which cannot sleep).
    if clock == 2 || (clock < 0 && clock & 7 != 3) {
        return cpu_nanosleep(c, clock, flags, req, rem);
    }
    if !matches!(clock, 0 | 1 | 7 | 9 | 11) {
        return Err(if clock_check(clock).is_ok() {
            ENOTSUP_
        } else {
            EINVAL
        });
    }
    let t: [i64; 2] = c.t.mm().read_obj(req)?;
    if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
        return Err(EINVAL);
    }
    let dur = Duration::new(t[0] as u64, t[1] as u32);
    if flags & 1 != 0 {
        // Absolute: an interruption without a handler restarts the same call. The
        // clock (the vDSO's parameters) and the host's timers may differ in rate by a
        // few parts per million: sleep again if it woke before the time.
        loop {
            let now = clock_now(c, clock)?;
            if now >= dur {
                return Ok(0);
            }
            if c.t.sleep_until(Instant::now() + (dur - now)).is_err() {
                return Err(ERESTARTNOHAND);
            }
        }
    }
    sleep_rel(c, Instant::now() + dur, rem)
}

/// A relative sleep until `deadline`. Interrupted, it stores the time left in `rem` and
/// returns ERESTART_RESTARTBLOCK: EINTR if a handler runs, else restart_syscall(2)
/// sleeps on for what is left.
fn sleep_rel(c: &Ctx, deadline: Instant, rem: u64) -> SysResult {
    match c.t.sleep_until(deadline) {
        Ok(()) => Ok(0),
        Err(_) => {
            if rem != 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                c.t.mm()
                    .write_obj(rem, &[left.as_secs() as i64, left.subsec_nanos() as i64])?;
            }
            *c.t.misc.restart.lock() = Some(crate::kernel::Restart::Sleep { deadline, rem });
            Err(ERESTART_RESTARTBLOCK)
        }
    }
}

/// clock_nanosleep on a CPU-time clock: sleep until the clock reaches `req` (absolute)
/// or advances by it. The thread's own CPU clock cannot be slept on (EINVAL).
fn cpu_nanosleep(c: &Ctx, clock: i32, flags: u64, req: u64, rem: u64) -> SysResult {
    let clock = if clock == 2 {
        // MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED)
        ((!0i32) << 3) | CPUCLOCK_SCHED
    } else {
        clock
    };
    if clock & 4 != 0 && (!(clock >> 3) == 0 || !(clock >> 3) == c.t.tid()) {
        return Err(EINVAL);
    }
    let t: [i64; 2] = c.t.mm().read_obj(req)?;
    if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
        return Err(EINVAL);
    }
    let (target, which) = cpu_clock(c, clock, false)?;
    let ns = t[0] as u64 * 1_000_000_000 + t[1] as u64;
    if flags & 1 != 0 {
        return match cpu_sleep_until(c, &target, which, ns) {
            Ok(()) => Ok(0),
            Err(_) => Err(ERESTARTNOHAND),
        };
    }
    let deadline = target.read(c, which) + ns;
    cpu_sleep_rel(c, clock, deadline, rem)
}

/// A relative CPU-clock sleep until the clock reads `deadline`; interrupted, as
/// `sleep_rel` (the time left, in CPU time, in `rem`).
fn cpu_sleep_rel(c: &Ctx, clock: i32, deadline: u64, rem: u64) -> SysResult {
    let (target, which) = cpu_clock(c, clock, false)?;
    match cpu_sleep_until(c, &target, which, deadline) {
        Ok(()) => Ok(0),
        Err(_) => {
            if rem != 0 {
                let left = deadline.saturating_sub(target.read(c, which));
                c.t.mm().write_obj(
                    rem,
                    &[(left / 1_000_000_000) as i64, (left % 1_000_000_000) as i64],
                )?;
            }
            *c.t.misc.restart.lock() = Some(crate::kernel::Restart::CpuSleep {
                clock,
                deadline,
                rem,
            });
            Err(ERESTART_RESTARTBLOCK)
        }
    }
}

/// Wait until `target`'s clock reads `deadline`, or it can no longer advance (the
/// thread or process is gone). The clock is polled: it advances at most as fast as
/// all CPUs together, so the wait before the next look is the time left over that.
fn cpu_sleep_until(c: &Ctx, target: &CpuClockOf, which: i32, deadline: u64) -> KResult<()> {
    let k = &c.t.kernel;
    loop {
        let now = target.read(c, which);
        if now >= deadline || !target.alive(k) {
            return Ok(());
        }
        let wait = ((deadline - now) / k.ncpus.max(1) as u64).clamp(1_000_000, 100_000_000);
        c.t.sleep_until(Instant::now() + Duration::from_nanos(wait))?;
    }
}

fn restart_syscall(c: &Ctx) -> SysResult {
    match c.t.misc.restart.lock().take() {
        Some(crate::kernel::Restart::Sleep { deadline, rem }) => sleep_rel(c, deadline, rem),
        Some(crate::kernel::Restart::CpuSleep {
            clock,
            deadline,
            rem,
        }) => cpu_sleep_rel(c, clock, deadline, rem),
        // Nothing to resume (Linux's do_no_restart_syscall).
        None => Err(EINTR),
    }
}

const ENOTSUP_: Errno = EOPNOTSUPP;

/// Arm ITIMER_REAL (value 0 disarms); returns the old (remaining, interval).
fn arm_real(c: &Ctx, value: Duration, interval: Duration) -> (Duration, Duration) {
    let tg = c.t.tg.clone();
    let k = c.t.kernel.clone();
    let now = Instant::now();
    let mut g = tg.itimer_real.lock();
    let old = g
        .map(|(d, iv, _)| (d.saturating_duration_since(now), Duration::from_nanos(iv)))
        .unwrap_or_default();
    let gen = g.map(|x| x.2 + 1).unwrap_or(1);
    if value.is_zero() {
        *g = None;
        return old;
    }
    *g = Some((now + value, interval.as_nanos() as u64, gen));
    drop(g);
    std::thread::spawn(move || loop {
        let Some((deadline, iv, g0)) = *tg.itimer_real.lock() else {
            return;
        };
        if g0 != gen {
            return;
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        let mut g = tg.itimer_real.lock();
        match *g {
            Some((d, iv2, g1)) if g1 == gen && d == deadline => {
                *g = if iv2 > 0 {
                    Some((deadline + Duration::from_nanos(iv2), iv2, gen))
                } else {
                    None
                };
                drop(g);
                signal::send_to_group(&k, &tg, SigInfo::kernel(signal::SIGALRM));
                if iv == 0 {
                    return;
                }
            }
            Some((_, _, g1)) if g1 == gen => {}
            _ => return,
        }
    });
    old
}

fn alarm(c: &Ctx, secs: u64) -> SysResult {
    let (left, _) = arm_real(c, Duration::from_secs(secs), Duration::ZERO);
    // Rounded to the nearest second, but a pending alarm never reads as 0.
    let mut prev = left.as_secs() + u64::from(left.subsec_nanos() >= 500_000_000);
    if prev == 0 && !left.is_zero() {
        prev = 1;
    }
    Ok(prev)
}

fn read_itimerval(c: &Ctx, p: u64) -> KResult<(Duration, Duration)> {
    let v: [i64; 4] = c.t.mm().read_obj(p)?;
    for (s, us) in [(v[0], v[1]), (v[2], v[3])] {
        if s < 0 || !(0..1_000_000).contains(&us) {
            return Err(EINVAL);
        }
    }
    Ok((
        Duration::new(v[2] as u64, v[3] as u32 * 1000),
        Duration::new(v[0] as u64, v[1] as u32 * 1000),
    ))
}

fn write_itimerval(c: &Ctx, p: u64, (value, interval): (Duration, Duration)) -> KResult<()> {
    let us = |d: Duration| [d.as_secs() as i64, d.subsec_micros() as i64];
    let (i, v) = (us(interval), us(value));
    c.t.mm().write_obj(p, &[i[0], i[1], v[0], v[1]])
}

fn setitimer(c: &Ctx, which: u64, new: u64, old: u64) -> SysResult {
    if which > 2 {
        return Err(EINVAL);
    }
    let (value, interval) = if new != 0 {
        read_itimerval(c, new)?
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    let prev = if which == 0 {
        arm_real(c, value, interval)
    } else {
        let mut t = c.t.tg.cpu_itimers.lock();
        let i = which as usize - 1;
        let old = t[i]
            .map(|(l, iv)| (Duration::from_nanos(l), Duration::from_nanos(iv)))
            .unwrap_or_default();
        let was_armed = t.iter().any(|x| x.is_some());
        t[i] = if value.is_zero() {
            None
        } else {
            Some((value.as_nanos() as u64, interval.as_nanos() as u64))
        };
        if !was_armed && t[i].is_some() {
            cpu_timer_ticker(c);
        }
        old
    };
    if old != 0 {
        write_itimerval(c, old, prev)?;
    }
    Ok(0)
}

fn getitimer(c: &Ctx, which: u64, cur: u64) -> SysResult {
    if which > 2 {
        return Err(EINVAL);
    }
    let v = if which == 0 {
        let now = Instant::now();
        c.t.tg
            .itimer_real
            .lock()
            .map(|(d, iv, _)| (d.saturating_duration_since(now), Duration::from_nanos(iv)))
            .unwrap_or_default()
    } else {
        c.t.tg.cpu_itimers.lock()[which as usize - 1]
            .map(|(l, iv)| (Duration::from_nanos(l), Duration::from_nanos(iv)))
            .unwrap_or_default()
    };
    write_itimerval(c, cur, v)?;
    Ok(0)
}

fn field(b: &mut [u8], i: usize, s: &[u8]) {
    let n = s.len().min(64);
    b[i * 65..i * 65 + n].copy_from_slice(&s[..n]);
}

use crate::kernel::RELEASE;

fn uname(c: &Ctx, buf: u64) -> SysResult {
    let mut b = [0u8; 390];
    field(&mut b, 0, b"Linux");
    let uts = c.t.ns().uts.clone();
    field(&mut b, 1, &uts.hostname.lock());
    field(&mut b, 2, RELEASE.as_bytes());
    field(&mut b, 3, crate::kernel::VERSION.as_bytes());
    field(&mut b, 4, b"x86_64");
    field(&mut b, 5, &uts.domainname.lock());
    c.t.mm().write(buf, &b)?;
    Ok(0)
}

/// sethostname/setdomainname: CAP_SYS_ADMIN in the user namespace owning the UTS one.
fn sethostname(c: &Ctx, name: u64, len: u64, host: bool) -> SysResult {
    let uts = c.t.ns().uts.clone();
    if !crate::kernel::ns::ns_capable(&c.t.creds(), &uts.user, crate::kernel::cap::SYS_ADMIN) {
        return Err(EPERM);
    }
    if len > 64 {
        return Err(EINVAL);
    }
    let v = c.t.mm().read_vec(name, len as usize)?;
    *(if host { &uts.hostname } else { &uts.domainname }).lock() = v;
    Ok(0)
}

fn prlimit(c: &Ctx, pid: i32, res: u64, new: u64, old: u64) -> SysResult {
    if res >= 16 {
        return Err(EINVAL);
    }
    let tg = if pid == 0 || pid == c.t.tgid() {
        c.t.tg.clone()
    } else {
        let (tg, target) = {
            let tab = c.t.kernel.table.lock();
            let p = tab.procs.get(&pid).ok_or(ESRCH)?;
            let leader = p.threads.first().and_then(|x| tab.tasks.get(x)).cloned();
            (p.tg.clone(), leader.ok_or(ESRCH)?)
        };
        // Another process's limits: all its user and group ids must be the caller's
        // real ones, or the caller needs CAP_SYS_RESOURCE (check_prlimit_permission).
        let (me, them) = (c.t.creds(), target.creds());
        let same = [them.uid, them.euid, them.suid]
            .iter()
            .all(|u| *u == me.uid)
            && [them.gid, them.egid, them.sgid]
                .iter()
                .all(|g| *g == me.gid);
        if !same && !me.has_cap(crate::kernel::cap::SYS_RESOURCE) {
            return Err(EPERM);
        }
        tg
    };
    let cur = tg.rlimits.lock()[res as usize];
    if new != 0 {
        let n: [u64; 2] = c.t.mm().read_obj(new)?;
        if n[0] > n[1] {
            return Err(EINVAL);
        }
        if n[1] > cur.1 && !c.t.creds().has_cap(crate::kernel::cap::SYS_RESOURCE) {
            return Err(EPERM);
        }
        if res as usize == crate::kernel::RLIMIT_NOFILE && n[1] > 1 << 20 {
            return Err(EPERM);
        }
        tg.rlimits.lock()[res as usize] = (n[0], n[1]);
    }
    if old != 0 {
        c.t.mm().write_obj(old, &[cur.0, cur.1])?;
    }
    Ok(0)
}

fn sysinfo(c: &Ctx, buf: u64) -> SysResult {
    let mut b = [0u8; 112];
    let up = c.t.kernel.uptime().as_secs();
    b[0..8].copy_from_slice(&up.to_le_bytes());
    // SAFETY: sysinfo fills a plain struct.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sysinfo(&mut si) };
    b[32..40].copy_from_slice(&(si.totalram as u64 * si.mem_unit as u64).to_le_bytes());
    b[40..48].copy_from_slice(&(si.freeram as u64 * si.mem_unit as u64).to_le_bytes());
    let procs = c.t.kernel.table.lock().tasks.len() as u16;
    b[80..82].copy_from_slice(&procs.to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes());
    c.t.mm().write(buf, &b)?;
    Ok(0)
}

fn getrusage(c: &Ctx, who: i32, buf: u64) -> SysResult {
    use crate::kernel::acct;
    let k = &c.t.kernel;
    let u = match who {
        0 => acct::group_usage(k, &c.t.tg),
        -1 => *c.t.tg.children.lock(),
        1 => {
            let mut u = acct::task_usage(c.t);
            u.maxrss_kb =
                c.t.tg
                    .maxrss_kb
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .max(c.t.mm().hiwater_pages() * 4);
            u
        }
        _ => return Err(EINVAL),
    };
    c.t.mm().write(buf, &u.to_rusage())?;
    Ok(0)
}

/// Clock ticks (USER_HZ = 100) of `ns`.
fn ticks(ns: u64) -> i64 {
    (ns / 10_000_000) as i64
}

fn times(c: &Ctx, buf: u64) -> SysResult {
    if buf != 0 {
        let me = crate::kernel::acct::group_usage(&c.t.kernel, &c.t.tg);
        let ch = *c.t.tg.children.lock();
        c.t.mm().write_obj(
            buf,
            &[
                ticks(me.utime),
                ticks(me.stime),
                ticks(ch.utime),
                ticks(ch.stime),
            ],
        )?;
    }
    Ok((c.t.kernel.uptime().as_millis() / 10) as u64)
}

fn getrandom(c: &Ctx, buf: u64, len: u64, flags: u32) -> SysResult {
    if flags & !7 != 0 {
        return Err(EINVAL);
    }
    let n = len.min(32 << 20) as usize;
    let mut v = vec![0u8; n];
    crate::vfs::devfs::fill_random(&mut v);
    c.t.mm().write(buf, &v)?;
    Ok(n as u64)
}

fn do_futex(c: &Ctx, addr: u64, op: u32, val: u32, a3: u64, addr2: u64, val3: u32) -> SysResult {
    let private = op & 128 != 0;
    let cmd = op & 127;
    let k = &c.t.kernel;
    let timeout = |abs: bool| -> KResult<Option<Instant>> {
        if a3 == 0 {
            return Ok(None);
        }
        let t: [i64; 2] = c.t.mm().read_obj(a3)?;
        if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
            return Err(EINVAL);
        }
        let d = Duration::new(t[0] as u64, t[1] as u32);
        Ok(Some(if abs {
            let clock = if op & 256 != 0 { 0 } else { 1 };
            Instant::now() + d.saturating_sub(clock_now(c, clock)?)
        } else {
            Instant::now() + d
        }))
    };
    let key = futex::key(c.t, addr, private)?;
    let r = match cmd {
        0 => k.futex.wait(c.t, key, addr, val, u32::MAX, timeout(false)?),
        9 => k.futex.wait(c.t, key, addr, val, val3, timeout(true)?),
        1 => k.futex.wake(key, val, u32::MAX),
        10 => k.futex.wake(key, val, val3),
        3 | 4 => {
            if cmd == 4 {
                let cur: u32 = c.t.mm().read_obj(addr)?;
                if cur != val3 {
                    return Err(EAGAIN);
                }
            }
            let k2 = futex::key(c.t, addr2, private)?;
            k.futex.requeue(key, k2, val, a3 as u32)
        }
        5 => {
            // FUTEX_WAKE_OP: *addr2 = op(*addr2, oparg); wake addr; maybe wake addr2.
            let k2 = futex::key(c.t, addr2, private)?;
            let mm = c.t.mm();
            let old: u32 = mm.read_obj(addr2)?;
            let (opc, cmp, oparg, cmparg) = (
                (val3 >> 28) & 7,
                (val3 >> 24) & 15,
                (val3 >> 12) & 0xfff,
                val3 & 0xfff,
            );
            let oparg = if val3 & (8 << 28) != 0 {
                1u32 << (oparg & 31)
            } else {
                oparg
            };
            let new = match opc {
                0 => oparg,
                1 => old.wrapping_add(oparg),
                2 => old | oparg,
                3 => old & !oparg,
                4 => old ^ oparg,
                _ => return Err(ENOSYS),
            };
            mm.write_obj(addr2, &new)?;
            let mut n = k.futex.wake(key, val, u32::MAX)?;
            let hit = match cmp {
                0 => old == cmparg,
                1 => old != cmparg,
                2 => (old as i32) < cmparg as i32,
                3 => (old as i32) <= cmparg as i32,
                4 => (old as i32) > cmparg as i32,
                5 => (old as i32) >= cmparg as i32,
                _ => return Err(ENOSYS),
            };
            if hit {
                n += k.futex.wake(k2, a3 as u32, u32::MAX)?;
            }
            Ok(n)
        }
        _ => {
            k.report_unimplemented(202, "futex(op)", c.t.tgid());
            return Err(ENOSYS);
        }
    };
    match r {
        Err(e) if e == ERESTARTSYS && cmd == 0 => Err(ERESTARTSYS),
        Err(e) if e == ERESTARTSYS => Err(EINTR),
        r => r,
    }
}

fn getcpu(c: &Ctx, cpu: u64, node: u64) -> SysResult {
    if cpu != 0 {
        c.t.mm().write_obj(cpu, &0u32)?;
    }
    if node != 0 {
        c.t.mm().write_obj(node, &0u32)?;
    }
    Ok(0)
}

fn syslog(c: &Ctx, typ: i32, buf: u64, len: i64) -> SysResult {
    let log = &c.t.kernel.klog;
    // READ_ALL and SIZE_BUFFER are open to all unless dmesg_restrict; the rest need
    // CAP_SYSLOG (or, as Linux still allows, CAP_SYS_ADMIN).
    let cr = c.t.creds();
    let privileged =
        cr.has_cap(crate::kernel::cap::SYSLOG) || cr.has_cap(crate::kernel::cap::SYS_ADMIN);
    let restricted = log.restrict.load(std::sync::atomic::Ordering::Relaxed);
    let open = matches!(typ, 3 | 10) && !restricted;
    if !(0..=10).contains(&typ) {
        return Err(EINVAL);
    }
    if !open && !matches!(typ, 0 | 1) && !privileged {
        return Err(EPERM);
    }
    match typ {
        0 | 1 => Ok(0),
        2..=4 => {
            if len < 0 {
                return Err(EINVAL);
            }
            if len == 0 {
                return Ok(0);
            }
            if buf == 0 {
                return Err(EINVAL);
            }
            let v = if typ == 2 {
                log.read_unread(c.t, len as usize, false)?
            } else {
                log.read_all(len as usize, typ == 4)
            };
            c.t.mm().write(buf, &v)?;
            Ok(v.len() as u64)
        }
        5 => {
            log.clear();
            Ok(0)
        }
        6 | 7 => Ok(0),
        8 => {
            if !(1..=8).contains(&len) {
                return Err(EINVAL);
            }
            Ok(0)
        }
        9 => Ok(log.size_unread() as u64),
        _ => Ok(crate::kernel::klog::LOG_BUF_LEN as u64),
    }
}

fn personality(c: &Ctx, p: u32) -> SysResult {
    let cur =
        c.t.tg
            .personality
            .load(std::sync::atomic::Ordering::Relaxed);
    if p == 0xffff_ffff {
        return Ok(cur as u64);
    }
    // Only the Linux personality (with flags that need no emulation) is supported.
    const ADDR_NO_RANDOMIZE: u32 = 0x0040000;
    const READ_IMPLIES_EXEC: u32 = 0x0400000;
    if p & 0xff != 0
        || p & !(ADDR_NO_RANDOMIZE
            | READ_IMPLIES_EXEC
            | 0x0100000
            | 0x0200000
            | 0x0800000
            | 0x1000000
            | 0x2000000
            | 0x4000000
            | 0x8000000)
            != 0
    {
        c.t.kernel
            .report_unimplemented(135, "personality(non-Linux)", c.t.tgid());
        return Err(EINVAL);
    }
    c.t.tg
        .personality
        .store(p, std::sync::atomic::Ordering::Relaxed);
    Ok(cur as u64)
}

/// While a CPU-time itimer is armed, kick the group's threads out of application code
/// every 10 ms so that time spent computing without system calls is charged to it.
fn cpu_timer_ticker(c: &Ctx) {
    let k = c.t.kernel.clone();
    let tg = Arc::downgrade(&c.t.tg);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(10));
        let Some(tg) = tg.upgrade() else { return };
        if tg.exiting.load(std::sync::atomic::Ordering::Acquire)
            || tg.cpu_itimers.lock().iter().all(|x| x.is_none())
        {
            return;
        }
        let threads = k.threads_of(tg.tgid);
        for t in threads {
            if let Some(i) = t.interrupter.lock().as_ref() {
                i.interrupt();
            }
        }
    });
}

/// mount(2): new tmpfs/proc/sysfs/devpts/mqueue mounts, bind mounts, remounts and
/// propagation changes in the caller's mount namespace (crate::mounts).
fn mount(c: &Ctx, srcp: u64, targetp: u64, typep: u64, flags: u64, datap: u64) -> SysResult {
    use crate::mounts::*;
    const MS_MGC_MSK: u64 = 0xffff_0000;
    const MS_MGC_VAL: u64 = 0xc0ed_0000;
    let mut flags = flags;
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags &= !MS_MGC_MSK;
    }
    let opt = |p: u64| -> KResult<Vec<u8>> {
        if p == 0 {
            Ok(vec![])
        } else {
            c.t.mm().read_cstr(p, 4096)
        }
    };
    let fstype = opt(typep)?;
    let source = opt(srcp)?;
    let data = opt(datap)?;
    let target = c.cstr(targetp)?;
    let at = c.lookup(AT_FDCWD as u64, &target, true, false)?;
    crate::kernel::ns::may_mount(c.t, &at, flags, &fstype)?;
    if flags & MS_REMOUNT != 0 {
        return remount(c.t, &at, flags, &data).map(|_| 0);
    }
    if flags & MS_BIND != 0 {
        if source.is_empty() {
            return Err(EINVAL);
        }
        let src = c.lookup(AT_FDCWD as u64, &source, true, false)?;
        return bind(c.t, &src, &at, flags & MS_REC != 0).map(|_| 0);
    }
    if flags & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE) != 0 {
        return change_type(c.t, &at, flags & !MS_REC).map(|_| 0);
    }
    if flags & MS_MOVE != 0 {
        c.t.kernel
            .report_unimplemented(165, "mount(MS_MOVE)", c.t.tgid());
        return Err(EINVAL);
    }
    if typep == 0 {
        return Err(EINVAL);
    }
    new_mount(c.t, &at, &fstype, &source, flags, &data).map(|_| 0)
}

fn umount2(c: &Ctx, targetp: u64, flags: u64) -> SysResult {
    use crate::mounts::*;
    if flags & !(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0 {
        return Err(EINVAL);
    }
    let target = c.cstr(targetp)?;
    let at = c.lookup(
        AT_FDCWD as u64,
        &target,
        flags & UMOUNT_NOFOLLOW == 0,
        false,
    )?;
    crate::kernel::ns::may_umount(c.t, &at)?;
    if flags & MNT_EXPIRE != 0 && flags & (MNT_FORCE | MNT_DETACH) != 0 {
        return Err(EINVAL);
    }
    umount(c.t, at, flags).map(|_| 0)
}

/// unshare(2): a private fd table (CLONE_FILES), fs context (CLONE_FS), mount
/// namespace (CLONE_NEWNS, a copy of the caller's), or new namespaces (kernel::ns).
fn unshare(c: &Ctx, flags: u64) -> SysResult {
    const CLONE_VM: u64 = 0x100;
    const CLONE_FS: u64 = 0x200;
    const CLONE_FILES: u64 = 0x400;
    const CLONE_SIGHAND: u64 = 0x800;
    const CLONE_THREAD: u64 = 0x10000;
    const CLONE_NEWNS: u64 = 0x20000;
    const CLONE_SYSVSEM: u64 = 0x40000;
    const CLONE_NEW_OTHER: u64 = 0x7e00_0000 | 0x80; // cgroup, uts, ipc, user, pid, net; time
    let known = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_NEWNS
        | CLONE_SYSVSEM
        | CLONE_NEW_OTHER;
    if flags & !known != 0 {
        return Err(EINVAL);
    }
    // A new user namespace takes the thread group and fs context along; a new mount
    // namespace the fs context.
    let mut flags = flags;
    if flags & crate::kernel::ns::CLONE_NEWUSER != 0 {
        flags |= CLONE_THREAD | CLONE_FS;
    }
    if flags & CLONE_NEWNS != 0 {
        flags |= CLONE_FS;
    }
    // Sharing the address space, handlers or thread group can only be undone alone.
    if flags & (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD) != 0
        && c.t.kernel.threads_of(c.t.tgid()).len() > 1
    {
        return Err(EINVAL);
    }
    let ns_flags = flags & (CLONE_NEWNS | CLONE_NEW_OTHER);
    crate::kernel::ns::check_new(&c.t.creds(), ns_flags, |what| {
        c.t.kernel
            .report_unimplemented(272, &format!("unshare({what})"), c.t.tgid())
    })?;
    if ns_flags != 0 {
        let (creds, set) = crate::kernel::ns::for_new(&c.t.creds(), &c.t.ns(), ns_flags)?;
        *c.t.creds.lock() = creds;
        let old = std::mem::replace(&mut *c.t.misc.ns.lock(), set);
        // Leaving an IPC namespace applies the SEM_UNDO adjustments made in it (exit_sem).
        if !Arc::ptr_eq(&old.ipc, &c.t.ns().ipc) {
            old.ipc.sem.exit(c.t.tgid());
        }
    }
    if flags & CLONE_FILES != 0 {
        let copy = Arc::new(c.t.files().fork());
        *c.t.files.lock() = copy;
    }
    if flags & CLONE_NEWNS != 0 {
        *c.t.fs.lock() = Arc::new(c.t.fsctx().copy_new_ns(&c.t.creds().user_ns()));
    } else if flags & CLONE_FS != 0 {
        *c.t.fs.lock() = Arc::new(c.t.fsctx().copy());
    }
    Ok(0)
}

const IOPRIO_WHO_PROCESS: i32 = 1;
const IOPRIO_WHO_PGRP: i32 = 2;
const IOPRIO_WHO_USER: i32 = 3;

/// The tasks ioprio_get/ioprio_set name: a thread, a process group or a user's (0: the
/// caller's own); ESRCH when there are none.
fn ioprio_targets(c: &Ctx, which: i32, who: i32) -> KResult<Vec<Arc<crate::kernel::Task>>> {
    let tab = c.t.kernel.table.lock();
    let v: Vec<_> = match which {
        IOPRIO_WHO_PROCESS => {
            let tid = if who == 0 { c.t.tid() } else { who };
            tab.tasks.get(&tid).cloned().into_iter().collect()
        }
        IOPRIO_WHO_PGRP => {
            let me = tab.procs.get(&c.t.tgid()).map(|p| p.pgid).unwrap_or(0);
            let pg = if who == 0 { me } else { who };
            tab.procs
                .values()
                .filter(|p| p.pgid == pg && p.zombie.is_none())
                .flat_map(|p| p.threads.iter().filter_map(|t| tab.tasks.get(t).cloned()))
                .collect()
        }
        IOPRIO_WHO_USER => {
            let uid = if who == 0 {
                c.t.creds().uid
            } else {
                who as u32
            };
            let all: Vec<_> = tab.tasks.values().cloned().collect();
            drop(tab);
            return match all
                .into_iter()
                .filter(|t| t.creds().uid == uid)
                .collect::<Vec<_>>()
            {
                v if v.is_empty() => Err(ESRCH),
                v => Ok(v),
            };
        }
        _ => return Err(EINVAL),
    };
    if v.is_empty() {
        return Err(ESRCH);
    }
    Ok(v)
}

/// ioprio_set(2): classes RT (CAP_SYS_NICE or CAP_SYS_ADMIN), BE and IDLE with levels
/// 0-7 (and Linux's hint bits), or NONE.
fn ioprio_set(c: &Ctx, which: i32, who: i32, ioprio: u32) -> SysResult {
    use crate::kernel::cap;
    let class = ioprio >> 13;
    let data = ioprio & 0x1fff;
    let cr = c.t.creds();
    match class {
        0 if data != 0 => return Err(EINVAL),
        1 if !cr.has_cap(cap::SYS_NICE) && !cr.has_cap(cap::SYS_ADMIN) => return Err(EPERM),
        0..=3 => {}
        _ => return Err(EINVAL),
    }
    for t in ioprio_targets(c, which, who)? {
        // As for setpriority: the same user, or CAP_SYS_NICE.
        let tc = t.creds();
        if cr.uid != tc.uid && cr.euid != tc.uid && !cr.has_cap(cap::SYS_NICE) {
            return Err(EPERM);
        }
        t.ioprio.store(ioprio, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(0)
}

/// ioprio_get(2): the best priority among the tasks named (0 when none was set).
fn ioprio_get(c: &Ctx, which: i32, who: i32) -> SysResult {
    let ts = ioprio_targets(c, which, who)?;
    // Linux's ioprio_best: a lower class is better, NONE counts as BE; then the level.
    let key = |p: u32| {
        let class = match p >> 13 {
            0 => 2,
            x => x,
        };
        (class, p & 7)
    };
    let best = ts
        .iter()
        .map(|t| t.ioprio.load(std::sync::atomic::Ordering::Relaxed))
        .min_by_key(|p| key(*p))
        .unwrap_or(0);
    Ok(best as u64)
}

//! CPU time and resource usage of tasks (getrusage, times, the CPU-time clocks).
//!
//! A task's CPU time (its CPU-time clock, `sum_exec_runtime` in Linux) is real host CPU
//! time, read lazily (getrusage, times, clock_gettime, exit, exec), never per system call:
//!
//! * the Sentry thread that runs it (`pthread_getcpuclockid`), counted from when the
//!   task started on that thread: handling its system calls and faults, and driving the
//!   platform;
//! * plus the CPU time of the platform running its application code: the address
//!   space's CPU clock (`AddressSpace::cpu_time_ns`, for ptrace the stub process's),
//!   shared out among the tasks running in it in proportion to the wall time each spent
//!   in `Context::switch` since the last look, none getting more than that wall time.
//!
//! Time blocked (sleeping, waiting, stopped) uses no CPU and so counts as nothing.
//!
//! The split into user and system time follows Linux's `cputime_adjust`: the CPU time
//! is divided in the proportion of two cheap samples, the wall time in application code
//! (`switch`) and the wall time in the Sentry not blocked, and both parts are kept
//! monotonic. Everything the platform costs to run application code is user time.

use super::{Kernel, Task, ThreadGroup};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;

/// What getrusage reports, summed over threads or reaped children.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub utime: u64,
    pub stime: u64,
    pub minflt: u64,
    pub majflt: u64,
    pub nvcsw: u64,
    pub nivcsw: u64,
    /// Peak resident set, KiB (a maximum, not a sum).
    pub maxrss_kb: u64,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.utime += o.utime;
        self.stime += o.stime;
        self.minflt += o.minflt;
        self.majflt += o.majflt;
        self.nvcsw += o.nvcsw;
        self.nivcsw += o.nivcsw;
        self.maxrss_kb = self.maxrss_kb.max(o.maxrss_kb);
    }

    pub fn cpu(&self) -> u64 {
        self.utime + self.stime
    }

    /// The struct rusage (144 bytes) of this usage.
    pub fn to_rusage(&self) -> [u8; 144] {
        let mut b = [0u8; 144];
        let tv = |ns: u64| {
            [
                (ns / 1_000_000_000) as i64,
                ((ns % 1_000_000_000) / 1000) as i64,
            ]
        };
        let [us, uu] = tv(self.utime);
        let [ss, su] = tv(self.stime);
        // ru_utime, ru_stime, ru_maxrss, ru_ixrss, ru_idrss, ru_isrss, ru_minflt,
        // ru_majflt, ru_nswap, ru_inblock, ru_oublock, ru_msgsnd, ru_msgrcv,
        // ru_nsignals, ru_nvcsw, ru_nivcsw.
        let fields: [(usize, i64); 9] = [
            (0, us),
            (8, uu),
            (16, ss),
            (24, su),
            (32, self.maxrss_kb as i64),
            (64, self.minflt as i64),
            (72, self.majflt as i64),
            (128, self.nvcsw as i64),
            (136, self.nivcsw as i64),
        ];
        for (off, v) in fields {
            b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// The Sentry thread a task runs on, for its system time.
#[derive(Default)]
struct SentryThread {
    /// The thread's CPU clock while the task runs on it.
    clock: Option<libc::clockid_t>,
    /// The thread's CPU time when the task started on it.
    base: u64,
    /// System time of the task once it stopped running on the thread.
    done: u64,
}

/// Per-task counters.
#[derive(Default)]
pub struct TaskAcct {
    /// Wall ns in application code not yet matched against the address space's clock.
    app_wall: AtomicU64,
    /// When the switch in progress began (ns since boot, never 0), or 0.
    in_app_since: AtomicU64,
    /// Address-space CPU time attributed to this task.
    app_cpu: AtomicU64,
    sentry: Mutex<SentryThread>,
    /// Wall time in application code, in the Sentry, and blocked in the Sentry.
    user_wall: AtomicU64,
    sentry_wall: AtomicU64,
    pub blocked_wall: AtomicU64,
    /// The last (user, system) reported, which never go backwards.
    prev: Mutex<(u64, u64)>,
    pub minflt: AtomicU64,
    pub nvcsw: AtomicU64,
    pub nivcsw: AtomicU64,
    /// (user, system) CPU time last charged to the CPU-time itimers; None while none
    /// is armed.
    pub itimer_seen: parking_lot::Mutex<Option<(u64, u64)>>,
}

fn read_clock(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    (r == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

impl TaskAcct {
    /// The calling Sentry thread starts running this task.
    pub fn attach(&self) {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is the calling thread; the clock id is written to a
        // valid pointer.
        let ok = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } == 0;
        let mut s = self.sentry.lock();
        if ok {
            if let Some(now) = read_clock(clock) {
                s.clock = Some(clock);
                s.base = now;
            }
        }
    }

    /// The task's thread is done with it (called on that thread).
    pub fn detach(&self) {
        let mut s = self.sentry.lock();
        if let Some(c) = s.clock.take() {
            s.done += read_clock(c).unwrap_or(s.base).saturating_sub(s.base);
        }
    }

    /// CPU time of the Sentry thread on this task's behalf.
    fn stime_cpu(&self) -> u64 {
        let s = self.sentry.lock();
        s.done
            + s.clock
                .and_then(read_clock)
                .map(|now| now.saturating_sub(s.base))
                .unwrap_or(0)
    }

    /// Application code starts running (`now`: ns since boot); `sentry_ns` is the wall
    /// time in the Sentry since application code last stopped.
    pub fn enter_app(&self, now: u64, sentry_ns: u64) {
        self.sentry_wall.fetch_add(sentry_ns, Relaxed);
        self.in_app_since.store(now.max(1), Release);
    }

    /// Application code, entered at `start`, stopped running at `now`.
    pub fn leave_app(&self, start: u64, now: u64) {
        self.user_wall.fetch_add(now.saturating_sub(start), Relaxed);
        // What a claim (claim_user) has not taken of the window yet.
        let since = self.in_app_since.swap(0, AcqRel);
        if since != 0 {
            self.app_wall.fetch_add(now.saturating_sub(since), Relaxed);
        }
    }

    /// (CPU time, user-time weight, system-time weight).
    fn samples(&self) -> (u64, u64, u64) {
        let rtime = self.app_cpu.load(Relaxed) + self.stime_cpu();
        let user = self.user_wall.load(Relaxed);
        let sys = self
            .sentry_wall
            .load(Relaxed)
            .saturating_sub(self.blocked_wall.load(Relaxed));
        (rtime, user, sys)
    }
}

/// Linux's cputime_adjust: split `rtime` as `utime : stime`, never below `prev`.
fn cputime_adjust(rtime: u64, utime: u64, stime: u64, prev: &mut (u64, u64)) -> (u64, u64) {
    if prev.0 + prev.1 >= rtime {
        return *prev;
    }
    let (u, s) = if stime == 0 {
        (rtime, 0)
    } else if utime == 0 {
        (0, rtime)
    } else {
        let mut s = (stime as u128 * rtime as u128 / (stime as u128 + utime as u128)) as u64;
        s = s.max(prev.1);
        let mut u = rtime - s.min(rtime);
        if u < prev.0 {
            u = prev.0;
            s = rtime - u;
        }
        (u, s)
    };
    *prev = (u, s);
    (u, s)
}

fn since_boot(k: &Kernel) -> u64 {
    k.boot.elapsed().as_nanos() as u64
}

impl TaskAcct {
    /// Take the wall time in application code not yet matched against the address
    /// space's clock, including the part of a switch still in progress.
    fn take_app_wall(&self, k: &Kernel) -> u64 {
        let mut wall = self.app_wall.swap(0, AcqRel);
        let since = self.in_app_since.load(Acquire);
        if since != 0 {
            let now = since_boot(k).max(since);
            if self
                .in_app_since
                .compare_exchange(since, now, AcqRel, Acquire)
                .is_ok()
            {
                wall += now - since;
            }
        }
        wall
    }
}

/// Attribute the CPU time `mm`'s address space has used since the last call to the
/// tasks running in it, in proportion to the wall time each spent in application code
/// meanwhile (none getting more than that wall time).
fn claim_mm(k: &Kernel, mm: &crate::mm::Mm) {
    let mut users = mm.cpu_users.lock();
    users.retain(|w| w.strong_count() > 0);
    let tasks: Vec<Arc<Task>> = users.iter().filter_map(|w| w.upgrade()).collect();
    let walls: Vec<u64> = tasks.iter().map(|t| t.acct.take_app_wall(k)).collect();
    let wall: u64 = walls.iter().sum();
    if wall == 0 {
        return;
    }
    let Some(total) = mm.aspace.cpu_time_ns() else {
        return;
    };
    // Claims of one address space are serialized by the users lock.
    let avail = total.saturating_sub(mm.cpu_claimed.load(Acquire)).min(wall);
    let mut given = 0;
    for (t, w) in tasks.iter().zip(walls) {
        let g = (avail as u128 * w as u128 / wall as u128) as u64;
        t.acct.app_cpu.fetch_add(g, Relaxed);
        given += g;
    }
    mm.cpu_claimed.fetch_add(given, AcqRel);
}

/// Bring `t`'s user time (and that of the tasks sharing its address space) up to date.
pub fn claim_user(t: &Task) {
    claim_mm(&t.kernel, &t.mm());
}

/// `t` starts running application code in its current address space (task start,
/// after execve).
pub fn enter_mm(t: &Arc<Task>) {
    let mm = t.mm();
    let mut users = mm.cpu_users.lock();
    if !users
        .iter()
        .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(t)))
    {
        users.push(Arc::downgrade(t));
    }
}

/// The usage of one task, brought up to date.
pub fn task_usage(t: &Task) -> Usage {
    claim_user(t);
    let a = &t.acct;
    let (rtime, uw, sw) = a.samples();
    let (utime, stime) = cputime_adjust(rtime, uw, sw, &mut a.prev.lock());
    Usage {
        utime,
        stime,
        minflt: a.minflt.load(Relaxed),
        majflt: 0,
        nvcsw: a.nvcsw.load(Relaxed),
        nivcsw: a.nivcsw.load(Relaxed),
        maxrss_kb: 0,
    }
}

/// The usage of a whole thread group: live threads, exited ones, and its peak RSS.
pub fn group_usage(k: &Kernel, tg: &ThreadGroup) -> Usage {
    let threads = k.threads_of(tg.tgid);
    let mut u = *tg.dead.lock();
    let mut rss = tg.maxrss_kb.load(Relaxed);
    for th in &threads {
        u.add(&task_usage(th));
    }
    if let Some(th) = threads.first() {
        rss = rss.max(th.mm().hiwater_pages() * 4);
    }
    u.maxrss_kb = u.maxrss_kb.max(rss);
    u
}

/// Before a task's address space is replaced (exec) or dropped (exit): settle its
/// user time and the group's peak RSS against the old one.
pub fn leave_mm(t: &Task) {
    let mm = t.mm();
    claim_mm(&t.kernel, &mm);
    mm.cpu_users
        .lock()
        .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), t));
    t.tg.maxrss_kb.fetch_max(mm.hiwater_pages() * 4, Relaxed);
}

/// A task ends: fold its usage into its group's dead threads (on the task's thread).
pub fn task_exit(t: &Task) {
    leave_mm(t);
    t.acct.detach();
    let u = task_usage(t);
    t.tg.dead.lock().add(&u);
}

/// What a reaped child adds to its parent's RUSAGE_CHILDREN: the child's own usage
/// and that of the children it reaped itself.
pub fn usage_for_parent(child: &ThreadGroup) -> Usage {
    let mut u = *child.dead.lock();
    u.maxrss_kb = u.maxrss_kb.max(child.maxrss_kb.load(Relaxed));
    let c = *child.children.lock();
    u.add(&c);
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cputime_adjust_splits_in_proportion() {
        let mut prev = (0, 0);
        assert_eq!(cputime_adjust(100, 3, 1, &mut prev), (75, 25));
        assert_eq!(prev, (75, 25));
        // Only one kind of sample: all of it.
        assert_eq!(cputime_adjust(100, 0, 5, &mut (0, 0)), (0, 100));
        assert_eq!(cputime_adjust(100, 5, 0, &mut (0, 0)), (100, 0));
    }

    #[test]
    fn cputime_adjust_never_goes_back() {
        let mut prev = (0, 0);
        cputime_adjust(100, 1, 1, &mut prev);
        assert_eq!(prev, (50, 50));
        // The proportion moves towards user time: system time stays where it was.
        assert_eq!(cputime_adjust(120, 100, 1, &mut prev), (70, 50));
        // ...and back towards system time: user time stays.
        assert_eq!(cputime_adjust(130, 1, 100, &mut prev), (70, 60));
        // No new CPU time: the last answer.
        assert_eq!(cputime_adjust(100, 1, 1, &mut prev), (70, 60));
    }

    #[test]
    fn rusage_layout() {
        let u = Usage {
            utime: 1_500_000_000,
            stime: 2_000_001_000,
            minflt: 7,
            majflt: 0,
            nvcsw: 9,
            nivcsw: 3,
            maxrss_kb: 4096,
        };
        let b = u.to_rusage();
        let at = |off: usize| i64::from_le_bytes(b[off..off + 8].try_into().unwrap());
        assert_eq!((at(0), at(8)), (1, 500_000));
        assert_eq!((at(16), at(24)), (2, 1));
        assert_eq!(at(32), 4096);
        assert_eq!(at(64), 7);
        assert_eq!(at(128), 9);
        assert_eq!(at(136), 3);
    }

    #[test]
    fn usage_add_sums_and_keeps_peak_rss() {
        let mut a = Usage {
            utime: 1,
            maxrss_kb: 10,
            ..Default::default()
        };
        a.add(&Usage {
            utime: 2,
            minflt: 4,
            maxrss_kb: 5,
            ..Default::default()
        });
        assert_eq!((a.utime, a.minflt, a.maxrss_kb), (3, 4, 10));
    }
}

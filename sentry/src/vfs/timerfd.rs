//! timerfd(2): timers whose expirations are read from a file.
//!
//! Expirations are computed from the deadline whenever the timer is looked at (read,
//! poll, gettime, settime), so no thread runs per timer. Blocked readers sleep until
//! the deadline themselves; for poll/epoll waiters, one shared service thread wakes the
//! timer's wait queue when a deadline passes.

use super::*;
use parking_lot::Condvar;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;
pub const CLOCK_BOOTTIME: i32 = 7;
pub const CLOCK_REALTIME_ALARM: i32 = 8;
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;

pub const TFD_NONBLOCK: u32 = O_NONBLOCK;
pub const TFD_CLOEXEC: u32 = O_CLOEXEC;
pub const TFD_TIMER_ABSTIME: u32 = 1;
pub const TFD_TIMER_CANCEL_ON_SET: u32 = 2;
/// ioctl(TFD_IOC_SET_TICKS): _IOW('T', 0, u64).
pub const TFD_IOC_SET_TICKS: u32 = 0x4008_5400;

const KTIME_MAX: Duration = Duration::from_nanos(i64::MAX as u64);

pub struct TimerFd {
    clock: i32,
    /// The Sentry's monotonic epoch (CLOCK_MONOTONIC/BOOTTIME count from here).
    boot: Instant,
    st: Mutex<TimerState>,
    wq: WaitQueue,
    me: Weak<TimerFd>,
}

#[derive(Default)]
struct TimerState {
    /// The next expiration, if armed.
    deadline: Option<Instant>,
    interval: Duration,
    /// Expirations not yet read.
    ticks: u64,
    /// Bumped by every settime (blocked readers re-read the deadline).
    gen: u64,
    /// The earliest wake-up queued with the service thread for this timer.
    queued: Option<Instant>,
}

impl TimerState {
    /// Account for the expirations up to `now`.
    fn update(&mut self, now: Instant) {
        let Some(d) = self.deadline else { return };
        if d > now {
            return;
        }
        if self.interval.is_zero() {
            self.ticks = self.ticks.saturating_add(1);
            self.deadline = None;
            return;
        }
        let iv = self.interval.as_nanos();
        let n = 1 + (now - d).as_nanos() / iv;
        self.ticks = self.ticks.saturating_add(n.min(u64::MAX as u128) as u64);
        let adv = iv.saturating_mul(n);
        self.deadline = if adv > u64::MAX as u128 {
            None
        } else {
            d.checked_add(Duration::from_nanos(adv as u64))
        };
    }

    fn remaining(&self, now: Instant) -> Duration {
        self.deadline
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or_default()
    }
}

/// A timer's current setting as (it_interval, it_value).
pub type ITimerSpec = (Duration, Duration);

pub fn valid_clock(clock: i32) -> bool {
    matches!(
        clock,
        CLOCK_REALTIME
            | CLOCK_MONOTONIC
            | CLOCK_BOOTTIME
            | CLOCK_REALTIME_ALARM
            | CLOCK_BOOTTIME_ALARM
    )
}

impl TimerFd {
    pub fn new(clock: i32, boot: Instant) -> Arc<TimerFd> {
        Arc::new_cyclic(|me| TimerFd {
            clock,
            boot,
            st: Mutex::new(TimerState::default()),
            wq: WaitQueue::default(),
            me: me.clone(),
        })
    }

    /// The clock's current value.
    fn clock_now(&self) -> Duration {
        match self.clock {
            CLOCK_REALTIME | CLOCK_REALTIME_ALARM => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            _ => self.boot.elapsed(),
        }
    }

    /// The current setting (timerfd_gettime).
    pub fn get(&self) -> ITimerSpec {
        let now = Instant::now();
        let mut st = self.st.lock();
        st.update(now);
        (st.interval, st.remaining(now))
    }

    /// Arm (or disarm, with a zero value) the timer; returns the old setting.
    pub fn set(&self, value: Duration, interval: Duration, abstime: bool) -> ITimerSpec {
        let now = Instant::now();
        let mut st = self.st.lock();
        st.update(now);
        let old = (st.interval, st.remaining(now));
        st.gen += 1;
        st.ticks = 0;
        // Like ktime_t, times saturate at KTIME_MAX (about 292 years).
        let value = value.min(KTIME_MAX);
        st.interval = interval.min(KTIME_MAX);
        st.deadline = if value.is_zero() {
            None
        } else if abstime {
            Some(now + value.saturating_sub(self.clock_now()))
        } else {
            Some(now + value)
        };
        self.schedule(&mut st);
        drop(st);
        self.wq.notify_all();
        old
    }

    /// Take the pending expirations, re-arming the wake-up of a periodic timer.
    fn take(&self, st: &mut TimerState) -> u64 {
        let n = std::mem::take(&mut st.ticks);
        self.schedule(st);
        n
    }

    /// Make sure the service thread wakes the queue by the deadline. As on Linux, a
    /// periodic timer whose expirations are not read causes no further wake-ups.
    fn schedule(&self, st: &mut TimerState) {
        if let Some(d) = st.deadline {
            if st.queued.is_none_or(|q| d < q) {
                st.queued = Some(d);
                push(d, self.me.clone());
            }
        }
    }

    /// The service thread's wake-up at `at` is due.
    fn fire(&self, at: Instant) {
        let mut st = self.st.lock();
        if st.queued != Some(at) {
            return;
        }
        st.queued = None;
        st.update(Instant::now());
        if st.ticks > 0 {
            drop(st);
            self.wq.notify_all();
        } else {
            self.schedule(&mut st);
        }
    }
}

impl FileOps for TimerFd {
    fn anon_name(&self) -> Option<&'static str> {
        Some("[timerfd]")
    }
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        loop {
            let (gen, deadline) = {
                let mut st = self.st.lock();
                st.update(Instant::now());
                if st.ticks > 0 {
                    let n = self.take(&mut st);
                    buf[..8].copy_from_slice(&n.to_ne_bytes());
                    return Ok(8);
                }
                if f.nonblock() {
                    return Err(EAGAIN);
                }
                (st.gen, st.deadline)
            };
            let r = t.block_on(&[&self.wq], deadline, || {
                let mut st = self.st.lock();
                if st.gen != gen {
                    return Some(Ok(()));
                }
                st.update(Instant::now());
                (st.ticks > 0).then_some(Ok(()))
            });
            match r {
                Ok(()) => {}
                Err(e) if e == ETIMEDOUT => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn poll(&self) -> u32 {
        let mut st = self.st.lock();
        st.update(Instant::now());
        if st.ticks > 0 {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.wq)
    }

    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        if cmd == TFD_IOC_SET_TICKS {
            let n: u64 = t.mm().read_obj(arg)?;
            if n == 0 {
                return Err(EINVAL);
            }
            let mut st = self.st.lock();
            st.update(Instant::now());
            st.ticks = n;
            drop(st);
            self.wq.notify_all();
            return Ok(0);
        }
        Err(ENOTTY)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One pending wake-up of the service thread.
struct Wake {
    at: Instant,
    seq: u64,
    timer: Weak<TimerFd>,
}

impl PartialEq for Wake {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Wake {}
impl PartialOrd for Wake {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Wake {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct Service {
    heap: Mutex<(BinaryHeap<Reverse<Wake>>, u64)>,
    cv: Condvar,
}

static SERVICE: OnceLock<Arc<Service>> = OnceLock::new();

fn service() -> &'static Arc<Service> {
    SERVICE.get_or_init(|| {
        let s = Arc::new(Service::default());
        let s2 = s.clone();
        std::thread::Builder::new()
            .name("timerfd".into())
            .spawn(move || service_main(&s2))
            .expect("spawn the timerfd thread");
        s
    })
}

/// Call `timer.fire(at)` at `at`.
fn push(at: Instant, timer: Weak<TimerFd>) {
    let s = service();
    let mut h = s.heap.lock();
    h.1 += 1;
    let seq = h.1;
    let first = h.0.peek().is_none_or(|Reverse(w)| at < w.at);
    h.0.push(Reverse(Wake { at, seq, timer }));
    drop(h);
    if first {
        s.cv.notify_one();
    }
}

fn service_main(s: &Service) {
    let mut h = s.heap.lock();
    loop {
        let now = Instant::now();
        match h.0.peek() {
            None => s.cv.wait(&mut h),
            Some(Reverse(w)) if w.at > now => {
                let at = w.at;
                s.cv.wait_until(&mut h, at);
            }
            Some(_) => {
                let Reverse(w) = h.0.pop().expect("peeked");
                drop(h);
                if let Some(t) = w.timer.upgrade() {
                    t.fire(w.at);
                }
                h = s.heap.lock();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_expires_once() {
        let t0 = Instant::now();
        let mut st = TimerState {
            deadline: Some(t0 + Duration::from_millis(10)),
            ..Default::default()
        };
        st.update(t0);
        assert_eq!(st.ticks, 0);
        assert_eq!(st.remaining(t0), Duration::from_millis(10));
        st.update(t0 + Duration::from_millis(50));
        assert_eq!((st.ticks, st.deadline), (1, None));
        assert_eq!(st.remaining(t0), Duration::ZERO);
    }

    #[test]
    fn periodic_counts_overruns_like_hrtimer_forward() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut st = TimerState {
            deadline: Some(t0 + ms(1000)),
            interval: ms(1000),
            ..Default::default()
        };
        // Expirations at 1, 2 and 3 s; the next one at 4 s.
        st.update(t0 + ms(3500));
        assert_eq!(st.ticks, 3);
        assert_eq!(st.deadline, Some(t0 + ms(4000)));
        // Exactly on an expiration counts it.
        st.update(t0 + ms(5000));
        assert_eq!(st.ticks, 5);
        assert_eq!(st.deadline, Some(t0 + ms(6000)));
    }
}

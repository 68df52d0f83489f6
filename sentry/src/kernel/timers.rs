//! POSIX interval timers (timer_create): wall-clock timers that signal a process or a
//! thread, with overrun counting while their signal waits undelivered.

use super::signal::{self, SigInfo};
use super::{Kernel, Task, ThreadGroup};
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub const SIGEV_SIGNAL: i32 = 0;
pub const SIGEV_NONE: i32 = 1;
pub const SIGEV_THREAD_ID: i32 = 4;

pub struct PosixTimer {
    pub id: i32,
    pub clock: i32,
    pub notify: i32,
    pub signo: i32,
    pub value: u64,
    /// The thread signalled with SIGEV_THREAD_ID.
    pub thread: Option<Weak<Task>>,
    pub state: Mutex<State>,
}

#[derive(Default)]
pub struct State {
    pub deadline: Option<Instant>,
    pub interval: Duration,
    generation: u64,
    /// Expirations that found the previous signal still queued (timer_getoverrun).
    pub overrun: i32,
    pub deleted: bool,
}

impl PosixTimer {
    /// Time left and interval (timer_gettime).
    pub fn get(&self) -> (Duration, Duration) {
        let s = self.state.lock();
        (
            s.deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or_default(),
            s.interval,
        )
    }

    /// Arm (value 0 disarms); returns the previous setting.
    pub fn set(
        self: &Arc<Self>,
        k: &Arc<Kernel>,
        tg: &Arc<ThreadGroup>,
        value: Option<Instant>,
        interval: Duration,
    ) -> (Duration, Duration) {
        let old = self.get();
        let mut s = self.state.lock();
        s.generation += 1;
        s.deadline = value;
        s.interval = interval;
        let generation = s.generation;
        drop(s);
        if value.is_some() {
            let (t, k, tg) = (self.clone(), k.clone(), Arc::downgrade(tg));
            std::thread::spawn(move || t.run(k, tg, generation));
        }
        old
    }

    fn run(&self, k: Arc<Kernel>, tg: Weak<ThreadGroup>, generation: u64) {
        loop {
            let deadline = {
                let s = self.state.lock();
                match s.deadline {
                    Some(d) if s.generation == generation && !s.deleted => d,
                    _ => return,
                }
            };
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            let mut s = self.state.lock();
            if s.generation != generation || s.deleted || s.deadline != Some(deadline) {
                continue;
            }
            let Some(tg) = tg.upgrade() else { return };
            if tg.exiting.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            // Periodic timers catch up on missed periods as overruns.
            let mut next = if s.interval.is_zero() {
                None
            } else {
                Some(deadline + s.interval)
            };
            let mut missed = 0;
            while let Some(n) = next {
                if n > Instant::now() {
                    break;
                }
                missed += 1;
                next = Some(n + s.interval);
            }
            s.deadline = next;
            drop(s);
            self.fire(&k, &tg, missed);
            if next.is_none() {
                return;
            }
        }
    }

    fn fire(&self, k: &Kernel, tg: &Arc<ThreadGroup>, missed: i32) {
        if self.notify == SIGEV_NONE {
            return;
        }
        let target = self.thread.as_ref().and_then(|w| w.upgrade());
        let queued = match &target {
            Some(t) => t.pending.lock().bump_timer_overrun(self.id),
            None => tg.pending.lock().bump_timer_overrun(self.id),
        };
        if queued {
            self.state.lock().overrun += 1 + missed;
            return;
        }
        self.state.lock().overrun = missed;
        let mut info = SigInfo::new(self.signo, signal::SI_TIMER);
        info.set_i32(16, self.id)
            .set_i32(20, missed)
            .set_u64(24, self.value);
        match target {
            Some(t) => signal::send_to_task(&t, info),
            None => signal::send_to_group(k, tg, info),
        }
    }
}

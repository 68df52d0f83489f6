//! Wait queues: how a blocked task is woken by the event it waits for, or by a signal.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::Instant;

/// What a queue's notification says happened: None when the notifier does not say,
/// else POLL* bits (0: a wake-up that is no readiness event, e.g. a FIFO open).
pub type Events = Option<u32>;

/// A callback run on each notification of the queues a waiter is on (signal-driven
/// I/O). It runs under the queue's lock and must only record the event.
pub type Hook = Box<dyn Fn(Events) + Send + Sync>;

/// One task's wake-up flag.
#[derive(Default)]
pub struct Waiter {
    woken: Mutex<bool>,
    cv: Condvar,
    hook: Option<Hook>,
}

impl Waiter {
    pub fn with_hook(hook: Hook) -> Waiter {
        Waiter {
            hook: Some(hook),
            ..Default::default()
        }
    }
    pub fn notify(&self) {
        *self.woken.lock() = true;
        self.cv.notify_all();
    }
    pub fn clear(&self) {
        *self.woken.lock() = false;
    }
    /// Sleep until notified (since the last `clear`) or the deadline. True on timeout.
    pub fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut g = self.woken.lock();
        while !*g {
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut g, d).timed_out() {
                        return !*g;
                    }
                }
                None => self.cv.wait(&mut g),
            }
        }
        false
    }
}

#[derive(Default)]
pub struct WaitQueue {
    list: Mutex<Vec<Arc<Waiter>>>,
}

impl WaitQueue {
    pub fn add(&self, w: &Arc<Waiter>) {
        self.list.lock().push(w.clone());
    }
    pub fn remove(&self, w: &Arc<Waiter>) {
        let mut l = self.list.lock();
        if let Some(i) = l.iter().position(|x| Arc::ptr_eq(x, w)) {
            l.swap_remove(i);
        }
    }
    pub fn notify_all(&self) {
        self.notify(None)
    }
    /// Wake everyone, telling hooks which readiness events (POLL* bits) happened.
    pub fn notify_events(&self, ev: u32) {
        self.notify(Some(ev))
    }
    fn notify(&self, ev: Events) {
        for w in self.list.lock().iter() {
            w.notify();
            if let Some(h) = &w.hook {
                h(ev);
            }
        }
    }
}

//! Futexes. Private futexes are keyed by (address space, address); shared ones by the
//! memory-file frame and offset, so different processes mapping the page meet.

use super::Task;
use crate::errno::*;
use crate::waitq::Waiter;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Key(u64, u64);

struct FWaiter {
    waiter: Arc<Waiter>,
    woken: AtomicBool,
    bitset: u32,
}

#[derive(Default)]
pub struct Futexes {
    map: Mutex<HashMap<Key, Vec<Arc<FWaiter>>>>,
}

pub fn key(t: &Task, addr: u64, private: bool) -> KResult<Key> {
    if !addr.is_multiple_of(4) {
        return Err(EINVAL);
    }
    let mm = t.mm();
    if private {
        return Ok(Key(Arc::as_ptr(&mm) as u64, addr));
    }
    // Shared: the frame backing the word identifies it across address spaces.
    let frame_off = mm.frame_offset(addr)?;
    Ok(Key(u64::MAX, frame_off))
}

impl Futexes {
    /// FUTEX_WAIT: sleep if the word still holds `val`.
    pub fn wait(
        &self,
        t: &Task,
        k: Key,
        addr: u64,
        val: u32,
        bitset: u32,
        deadline: Option<Instant>,
    ) -> KResult<u64> {
        if bitset == 0 {
            return Err(EINVAL);
        }
        let w = Arc::new(FWaiter {
            waiter: t.waiter.clone(),
            woken: AtomicBool::new(false),
            bitset,
        });
        {
            let mut m = self.map.lock();
            let cur: u32 = t.mm().read_obj(addr)?;
            if cur != val {
                return Err(EAGAIN);
            }
            m.entry(k).or_default().push(w.clone());
        }
        let r = t.block_on(&[], deadline, || {
            if w.woken.load(Ordering::Acquire) {
                Some(Ok(0))
            } else {
                None
            }
        });
        if r.is_err() {
            let mut m = self.map.lock();
            for v in m.values_mut() {
                v.retain(|x| !Arc::ptr_eq(x, &w));
            }
            m.retain(|_, v| !v.is_empty());
            if w.woken.load(Ordering::Acquire) {
                return Ok(0);
            }
        }
        r
    }

    pub fn wake(&self, k: Key, n: u32, bitset: u32) -> KResult<u64> {
        if bitset == 0 {
            return Err(EINVAL);
        }
        let mut m = self.map.lock();
        let mut woken = 0u32;
        if let Some(v) = m.get_mut(&k) {
            v.retain(|w| {
                if woken < n && w.bitset & bitset != 0 {
                    w.woken.store(true, Ordering::Release);
                    w.waiter.notify();
                    woken += 1;
                    false
                } else {
                    true
                }
            });
            if v.is_empty() {
                m.remove(&k);
            }
        }
        Ok(woken as u64)
    }

    /// FUTEX_REQUEUE/CMP_REQUEUE: wake `n`, move up to `n2` others to `k2`.
    pub fn requeue(&self, k: Key, k2: Key, n: u32, n2: u32) -> KResult<u64> {
        let mut m = self.map.lock();
        let mut v = m.remove(&k).unwrap_or_default();
        let mut count = 0u64;
        let mut moved = vec![];
        let mut keep = vec![];
        for w in v.drain(..) {
            if (count as u32) < n {
                w.woken.store(true, Ordering::Release);
                w.waiter.notify();
                count += 1;
            } else if (moved.len() as u32) < n2 {
                moved.push(w);
            } else {
                keep.push(w);
            }
        }
        count += moved.len() as u64;
        if !keep.is_empty() {
            m.insert(k, keep);
        }
        if !moved.is_empty() {
            m.entry(k2).or_default().extend(moved);
        }
        Ok(count)
    }

    /// Run `f` with the table locked (FUTEX_WAKE_OP and CMP_REQUEUE need atomicity).
    pub fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.map.lock();
        f()
    }
}

//! eventfd(2): a 64-bit counter with read/write/poll semantics.

use super::*;

pub const EFD_SEMAPHORE: u32 = 1;
pub const EFD_NONBLOCK: u32 = O_NONBLOCK;
pub const EFD_CLOEXEC: u32 = O_CLOEXEC;

/// The largest value the counter can hold.
const MAX: u64 = u64::MAX - 1;

pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    wq: WaitQueue,
}

impl EventFd {
    pub fn new(init: u64, semaphore: bool) -> Arc<EventFd> {
        Arc::new(EventFd {
            count: Mutex::new(init),
            semaphore,
            wq: WaitQueue::default(),
        })
    }

    /// The current counter value (for /proc fdinfo and tests).
    pub fn count(&self) -> u64 {
        *self.count.lock()
    }
}

impl FileOps for EventFd {
    fn anon_name(&self) -> Option<&'static str> {
        Some("[eventfd]")
    }
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        let v = t.block_on(&[&self.wq], None, || {
            let mut c = self.count.lock();
            if *c > 0 {
                let v = if self.semaphore { 1 } else { *c };
                *c -= v;
                return Some(Ok(v));
            }
            if f.nonblock() {
                return Some(Err(EAGAIN));
            }
            None
        })?;
        self.wq.notify_all();
        buf[..8].copy_from_slice(&v.to_ne_bytes());
        Ok(8)
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        let v = u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes"));
        if v == u64::MAX {
            return Err(EINVAL);
        }
        t.block_on(&[&self.wq], None, || {
            let mut c = self.count.lock();
            if MAX - *c >= v {
                *c += v;
                return Some(Ok(()));
            }
            if f.nonblock() {
                return Some(Err(EAGAIN));
            }
            None
        })?;
        // Even a write of 0 wakes waiters (and re-arms edge-triggered epoll), as on Linux.
        self.wq.notify_all();
        Ok(8)
    }

    fn poll(&self) -> u32 {
        let c = *self.count.lock();
        let mut ev = 0;
        if c > 0 {
            ev |= POLLIN | POLLRDNORM;
        }
        if c == u64::MAX {
            ev |= POLLERR;
        }
        if c < MAX {
            ev |= POLLOUT | POLLWRNORM;
        }
        ev
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.wq)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_bits() {
        let e = EventFd::new(0, false);
        assert_eq!(e.poll(), POLLOUT | POLLWRNORM);
        *e.count.lock() = 3;
        assert_eq!(e.poll(), POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
        *e.count.lock() = MAX;
        assert_eq!(e.poll(), POLLIN | POLLRDNORM);
    }
}

//! signalfd(2): reading pending signals from a file.
//!
//! A signalfd reads the signals of whoever uses it (the reading task's own queue, then
//! its thread group's), as on Linux. Every signal queued anywhere wakes one shared wait
//! queue (see `notify_signal`, called from kernel::signal); waiters re-check their own
//! queues. Signals are rare, so the spurious wake-ups are cheap, and a signalfd that is
//! inherited across fork still wakes its new owner.

use super::*;
use crate::kernel::signal::{self, SigInfo, SigQueue};
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

pub const SFD_NONBLOCK: u32 = O_NONBLOCK;
pub const SFD_CLOEXEC: u32 = O_CLOEXEC;
/// sizeof(struct signalfd_siginfo).
pub const SIGINFO_SIZE: usize = 128;

static SIGNAL_WQ: LazyLock<WaitQueue> = LazyLock::new(WaitQueue::default);

/// A signal was queued to some task or thread group: wake signalfd waiters.
pub fn notify_signal() {
    SIGNAL_WQ.notify_all();
}

pub struct SignalFd {
    mask: AtomicU64,
}

impl SignalFd {
    pub fn new(mask: u64) -> Arc<SignalFd> {
        Arc::new(SignalFd {
            mask: AtomicU64::new(mask & !signal::UNBLOCKABLE),
        })
    }
    pub fn mask(&self) -> u64 {
        self.mask.load(Ordering::Acquire)
    }
    pub fn set_mask(&self, mask: u64) {
        self.mask
            .store(mask & !signal::UNBLOCKABLE, Ordering::Release);
        SIGNAL_WQ.notify_all();
    }

    /// Dequeue one signal in the mask: the task's own first, then the group's.
    fn dequeue(&self, t: &Task) -> Option<SigInfo> {
        let mask = self.mask();
        take_in(&mut t.pending.lock(), mask).or_else(|| take_in(&mut t.tg.pending.lock(), mask))
    }
}

/// Take the next signal of `q` that is in `mask`: synchronous ones first, then the
/// lowest numbered (Linux's next_signal order).
fn take_in(q: &mut SigQueue, mask: u64) -> Option<SigInfo> {
    let ok = q.mask & mask;
    if ok == 0 {
        return None;
    }
    const SYNC: u64 = (1 << (signal::SIGSEGV - 1))
        | (1 << (signal::SIGBUS - 1))
        | (1 << (signal::SIGILL - 1))
        | (1 << (signal::SIGTRAP - 1))
        | (1 << (signal::SIGFPE - 1))
        | (1 << (signal::SIGSYS - 1));
    let pick = if ok & SYNC != 0 { ok & SYNC } else { ok };
    q.take(pick.trailing_zeros() as i32 + 1)
}

/// How a siginfo_t's union is laid out (Linux's siginfo_layout).
#[derive(PartialEq)]
enum Layout {
    Kill,
    Timer,
    Poll,
    Fault,
    Chld,
    Rt,
    Sys,
}

fn layout(sig: i32, code: i32) -> Layout {
    const SI_TIMER: i32 = -2;
    const SI_SIGIO: i32 = -5;
    if code > signal::SI_USER && code < signal::SI_KERNEL {
        // (signal, highest si_code of its own, layout)
        let own = match sig {
            signal::SIGILL => Some((11, Layout::Fault)),
            signal::SIGFPE => Some((15, Layout::Fault)),
            signal::SIGSEGV => Some((10, Layout::Fault)),
            signal::SIGBUS => Some((5, Layout::Fault)),
            signal::SIGTRAP => Some((6, Layout::Fault)),
            signal::SIGCHLD => Some((6, Layout::Chld)),
            29 => Some((6, Layout::Poll)),
            signal::SIGSYS => Some((2, Layout::Sys)),
            _ => None,
        };
        match own {
            Some((limit, l)) if code <= limit => l,
            _ if code <= 6 => Layout::Poll,
            _ => Layout::Kill,
        }
    } else if code == SI_TIMER {
        Layout::Timer
    } else if code == SI_SIGIO {
        Layout::Poll
    } else if code < 0 {
        Layout::Rt
    } else {
        Layout::Kill
    }
}

/// struct signalfd_siginfo for a queued siginfo_t (Linux's signalfd_copyinfo).
pub fn to_signalfd_siginfo(info: &SigInfo) -> [u8; SIGINFO_SIZE] {
    let s = &info.0;
    let u32_at = |o: usize| u32::from_le_bytes(s[o..o + 4].try_into().expect("4"));
    let u64_at = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().expect("8"));
    let mut b = [0u8; SIGINFO_SIZE];
    let put32 = |b: &mut [u8; SIGINFO_SIZE], o: usize, v: u32| {
        b[o..o + 4].copy_from_slice(&v.to_le_bytes())
    };
    put32(&mut b, 0, u32_at(0)); // ssi_signo
    put32(&mut b, 4, u32_at(4)); // ssi_errno
    put32(&mut b, 8, u32_at(8)); // ssi_code
    let put64 = |b: &mut [u8; SIGINFO_SIZE], o: usize, v: u64| {
        b[o..o + 8].copy_from_slice(&v.to_le_bytes())
    };
    match layout(info.signo(), info.code()) {
        Layout::Kill => {
            put32(&mut b, 12, u32_at(16)); // ssi_pid
            put32(&mut b, 16, u32_at(20)); // ssi_uid
        }
        Layout::Timer => {
            put32(&mut b, 24, u32_at(16)); // ssi_tid
            put32(&mut b, 32, u32_at(20)); // ssi_overrun
            put64(&mut b, 48, u64_at(24)); // ssi_ptr
            put32(&mut b, 44, u32_at(24)); // ssi_int
        }
        Layout::Poll => {
            put32(&mut b, 28, u64_at(16) as u32); // ssi_band
            put32(&mut b, 20, u32_at(24)); // ssi_fd
        }
        Layout::Fault => {
            put64(&mut b, 72, u64_at(16)); // ssi_addr
        }
        Layout::Chld => {
            put32(&mut b, 12, u32_at(16)); // ssi_pid
            put32(&mut b, 16, u32_at(20)); // ssi_uid
            put32(&mut b, 40, u32_at(24)); // ssi_status
            put64(&mut b, 56, u64_at(32)); // ssi_utime
            put64(&mut b, 64, u64_at(40)); // ssi_stime
        }
        Layout::Rt => {
            put32(&mut b, 12, u32_at(16)); // ssi_pid
            put32(&mut b, 16, u32_at(20)); // ssi_uid
            put64(&mut b, 48, u64_at(24)); // ssi_ptr
            put32(&mut b, 44, u32_at(24)); // ssi_int
        }
        Layout::Sys => {
            put64(&mut b, 88, u64_at(16)); // ssi_call_addr
            put32(&mut b, 84, u32_at(24)); // ssi_syscall
            put32(&mut b, 96, u32_at(28)); // ssi_arch
        }
    }
    b
}

impl FileOps for SignalFd {
    fn anon_name(&self) -> Option<&'static str> {
        Some("[signalfd]")
    }
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let max = buf.len() / SIGINFO_SIZE;
        if max == 0 {
            return Err(EINVAL);
        }
        let first = t.block_on(&[&SIGNAL_WQ], None, || {
            if let Some(i) = self.dequeue(t) {
                return Some(Ok(i));
            }
            if f.nonblock() {
                return Some(Err(EAGAIN));
            }
            None
        })?;
        buf[..SIGINFO_SIZE].copy_from_slice(&to_signalfd_siginfo(&first));
        let mut n = 1;
        while n < max {
            let Some(i) = self.dequeue(t) else { break };
            buf[n * SIGINFO_SIZE..(n + 1) * SIGINFO_SIZE].copy_from_slice(&to_signalfd_siginfo(&i));
            n += 1;
        }
        Ok(n * SIGINFO_SIZE)
    }

    /// Readable when the task looking (the poller) has a pending signal in the mask.
    fn poll(&self) -> u32 {
        let Some(t) = crate::kernel::current() else {
            return 0;
        };
        let mask = self.mask();
        let pending = t.pending.lock().mask | t.tg.pending.lock().mask;
        if pending & mask != 0 {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&SIGNAL_WQ)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn kill_and_tkill() {
        let b = to_signalfd_siginfo(&SigInfo::user(10, signal::SI_USER, 42, 1000));
        assert_eq!((u32_at(&b, 0), u32_at(&b, 8)), (10, 0));
        assert_eq!((u32_at(&b, 12), u32_at(&b, 16)), (42, 1000));
        let b = to_signalfd_siginfo(&SigInfo::user(10, signal::SI_TKILL, 7, 0));
        assert_eq!(
            (u32_at(&b, 8) as i32, u32_at(&b, 12)),
            (signal::SI_TKILL, 7)
        );
    }

    #[test]
    fn sigqueue_value_and_sigchld() {
        let mut i = SigInfo::user(34, signal::SI_QUEUE, 5, 0);
        i.set_u64(24, 1234);
        let b = to_signalfd_siginfo(&i);
        assert_eq!(u32_at(&b, 44), 1234);
        assert_eq!(u64::from_le_bytes(b[48..56].try_into().unwrap()), 1234);
        let mut c = SigInfo::new(signal::SIGCHLD, signal::CLD_EXITED);
        c.set_i32(16, 9).set_i32(24, 3);
        let b = to_signalfd_siginfo(&c);
        assert_eq!((u32_at(&b, 12), u32_at(&b, 40)), (9, 3));
    }

    #[test]
    fn take_in_prefers_sync_then_lowest() {
        let mut q = SigQueue::default();
        for s in [12, 10, signal::SIGSEGV] {
            q.push(SigInfo::new(s, 0));
        }
        assert_eq!(take_in(&mut q, signal::bit(12)).unwrap().signo(), 12);
        assert!(take_in(&mut q, signal::bit(12)).is_none());
        let all = u64::MAX;
        assert_eq!(take_in(&mut q, all).unwrap().signo(), signal::SIGSEGV);
        assert_eq!(take_in(&mut q, all).unwrap().signo(), 10);
        assert!(take_in(&mut q, all).is_none());
    }
}

//! pidfds (pidfd_open(2), CLONE_PIDFD): a file that refers to a process.
//!
//! The file holds the process's thread group, not its pid, so it keeps naming the same
//! process after the pid is reused: the process "exists" while the process tree has
//! this very thread group under its pid (as a zombie too). As on Linux 6.8 the file is
//! an anonymous inode (`anon_inode:[pidfd]`); it polls readable once every thread of
//! the process has exited, and /proc/PID/fdinfo shows its `Pid:`.

use super::*;
use crate::kernel::{Kernel, ThreadGroup};
use std::sync::Weak;

pub struct PidFd {
    pub tg: Arc<ThreadGroup>,
    kernel: Weak<Kernel>,
}

/// Where the process a pidfd refers to is in its life.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum State {
    /// At least one thread runs.
    Alive,
    /// Every thread has exited; not reaped yet.
    Dead,
    /// Reaped: its pid no longer names it.
    Gone,
}

impl PidFd {
    pub fn state(&self) -> State {
        let Some(k) = self.kernel.upgrade() else {
            return State::Gone;
        };
        let tab = k.table.lock();
        match tab.procs.get(&self.tg.tgid) {
            Some(p) if Arc::ptr_eq(&p.tg, &self.tg) => {
                if p.zombie.is_some() || p.threads.is_empty() {
                    State::Dead
                } else {
                    State::Alive
                }
            }
            _ => State::Gone,
        }
    }

    /// The process's pid, while it has one.
    pub fn pid(&self) -> Option<i32> {
        (self.state() != State::Gone).then_some(self.tg.tgid)
    }

    /// The lines /proc/PID/fdinfo/N adds for a pidfd.
    pub fn fdinfo(&self) -> String {
        let nr = self.pid().unwrap_or(-1);
        format!("Pid:\t{nr}\nNSpid:\t{nr}\n")
    }
}

/// A new open pidfd for the process of `tg` (flags O_RDWR, plus O_NONBLOCK if asked).
pub fn open_file(k: &Arc<Kernel>, tg: &Arc<ThreadGroup>, nonblock: bool) -> Arc<OpenFile> {
    let ops = Arc::new(PidFd {
        tg: tg.clone(),
        kernel: Arc::downgrade(k),
    });
    let flags = O_RDWR | if nonblock { O_NONBLOCK } else { 0 };
    OpenFile::new(ops, None, flags)
}

/// The pidfd behind an open file, if it is one.
pub fn as_pidfd(f: &OpenFile) -> Option<&PidFd> {
    f.ops.as_any().downcast_ref::<PidFd>()
}

impl FileOps for PidFd {
    fn anon_name(&self) -> Option<&'static str> {
        Some("[pidfd]")
    }

    fn poll(&self) -> u32 {
        match self.state() {
            State::Alive => 0,
            State::Dead | State::Gone => POLLIN | POLLRDNORM,
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.tg.exit_wq)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

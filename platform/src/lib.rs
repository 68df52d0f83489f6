//! Running application code and catching its events.
//!
//! A [`Platform`] makes [`AddressSpace`]s (ranges of the Sentry's memory file mapped at
//! application addresses) and [`Context`]s (a thread of execution). The Sentry drives a
//! context with [`Context::switch`], which runs application code until it makes a system
//! call, faults, receives a signal, or is interrupted. This crate knows nothing of Linux
//! system call semantics, files or tasks.

pub mod kvm;
pub mod ptrace;
mod stub;

use std::sync::Arc;

/// The general-purpose registers of an application thread (x86-64), as ptrace sees them.
pub type Regs = libc::user_regs_struct;

/// The legacy FXSAVE area (x87, MMX, SSE state).
pub type FpState = libc::user_fpregs_struct;

/// The highest address (exclusive) an application may map. Above it the platform keeps
/// its own pages (the ptrace stub).
pub const MAX_USER_ADDR: u64 = 0x7ffe_0000_0000;

bitflags::bitflags! {
    /// Protections of a mapping.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Prot: u32 {
        const READ = 1;
        const WRITE = 2;
        const EXEC = 4;
    }
}

/// What an access that faulted was trying to do, where the platform can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The platform does not know (ptrace does not report the page-fault error code).
    Unknown,
    Read,
    Write,
    Exec,
}

/// A raw `siginfo_t` as the host kernel reported it.
#[derive(Clone, Copy)]
pub struct SigInfo(pub libc::siginfo_t);

impl SigInfo {
    pub fn signo(&self) -> i32 {
        self.0.si_signo
    }
    pub fn code(&self) -> i32 {
        self.0.si_code
    }
    /// The faulting address for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGTRAP.
    pub fn addr(&self) -> u64 {
        // SAFETY: si_addr reads the union member every fault signal fills; for other
        // signals it yields whatever bytes are there, which is harmless.
        unsafe { self.0.si_addr() as u64 }
    }
}

impl std::fmt::Debug for SigInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigInfo(signo={}, code={}, addr={:#x})",
            self.signo(),
            self.code(),
            self.addr()
        )
    }
}

/// Why [`Context::switch`] returned.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// The thread made a system call; the number is `regs.orig_rax`, the arguments are
    /// in the registers, and `regs.rip` already points after the `syscall` instruction.
    Syscall,
    /// A page fault at `addr` (SIGSEGV from a #PF).
    Fault {
        addr: u64,
        access: Access,
        info: SigInfo,
    },
    /// Any other synchronous signal (SIGILL, SIGFPE, SIGTRAP, SIGBUS, SIGSEGV not from a
    /// page fault): the Sentry delivers it to the application.
    Signal(SigInfo),
    /// [`Context::interrupt`] was called, or the platform stopped the thread for its own
    /// reasons; the Sentry checks for work and switches again.
    Interrupted,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {err}")]
    Os {
        what: &'static str,
        err: std::io::Error,
    },
    #[error("the stub process died unexpectedly ({0})")]
    StubDied(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn os(what: &'static str) -> Error {
        Error::Os {
            what,
            err: std::io::Error::last_os_error(),
        }
    }
    pub fn errno(what: &'static str, errno: i32) -> Error {
        Error::Os {
            what,
            err: std::io::Error::from_raw_os_error(errno),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A way of running application code.
pub trait Platform: Send + Sync {
    fn name(&self) -> &'static str;
    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>>;
    /// A context is used by the OS thread that calls `switch` on it, and only that one.
    fn new_context(&self) -> Result<Box<dyn Context>>;
    /// The CPU the calling thread is kept on, where the platform pins threads (ptrace
    /// keeps each tracer and its stub threads on one CPU).
    fn thread_cpu(&self) -> Option<usize> {
        None
    }
    /// Keep the calling thread, and the application threads it runs, on `cpu`, or on
    /// one the platform picks (spreading threads over the CPUs) when None.
    fn place_thread(&self, _cpu: Option<usize>) {}
    /// Whether `rdtsc` in application code reads the host's time stamp counter (the
    /// Sentry's vDSO turns it into clocks with parameters calibrated on the host).
    fn tsc_is_host(&self) -> bool {
        true
    }
}

/// An application address space: ranges of the memory file mapped at application
/// addresses. The Sentry keeps the authoritative mapping; the platform only mirrors it.
pub trait AddressSpace: std::any::Any + Send + Sync {
    /// Map `len` bytes of the memory file at `file_offset` at `addr` (page aligned),
    /// replacing whatever was mapped there.
    fn map(&self, addr: u64, len: u64, file_offset: u64, prot: Prot) -> Result<()>;
    fn unmap(&self, addr: u64, len: u64) -> Result<()>;
    /// Change the protection of pages already mapped.
    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<()>;
    /// A number unique among live address spaces.
    fn id(&self) -> u64;
    /// Apply `ops` in order, stopping at the first failure. Platforms where each call
    /// costs a round trip (ptrace) do them all in one.
    fn apply(&self, ops: &[MapOp]) -> Result<()> {
        for op in ops {
            match *op {
                MapOp::Map {
                    addr,
                    len,
                    file_offset,
                    prot,
                    ..
                } => self.map(addr, len, file_offset, prot)?,
                MapOp::Unmap { addr, len } => self.unmap(addr, len)?,
                MapOp::Protect { addr, len, prot } => self.protect(addr, len, prot)?,
            }
        }
        Ok(())
    }
    /// The host CPU time, in ns, used so far by everything that ran in this address
    /// space (application code and the host kernel's work for it), or None where the
    /// platform cannot tell. It only grows; the Sentry attributes it to tasks.
    fn cpu_time_ns(&self) -> Option<u64> {
        None
    }
    /// The host process that holds this address space, where there is one (ptrace's
    /// stub; pid as the Sentry sees it).
    fn host_pid(&self) -> Option<i32> {
        None
    }
    /// Name that host process (its comm, at most 15 bytes) after the application
    /// process, so host tools (`ps`, `docker top`) show what runs in it. A no-op where
    /// there is no such process.
    fn set_name(&self, _name: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// One change of an address space, for [`AddressSpace::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOp {
    /// As [`AddressSpace::map`]; `populate`: the pages are about to be used, so the
    /// platform may make them present now rather than on first touch; `huge`: `addr`,
    /// `len` and `file_offset` are multiples of 2 MiB and the file's range is fresh, so
    /// the platform may back it with host huge pages (populating, if asked, after the
    /// advice). Platforms without huge pages treat it as a plain map.
    Map {
        addr: u64,
        len: u64,
        file_offset: u64,
        prot: Prot,
        populate: bool,
        huge: bool,
    },
    Unmap {
        addr: u64,
        len: u64,
    },
    /// As [`AddressSpace::protect`].
    Protect {
        addr: u64,
        len: u64,
        prot: Prot,
    },
}

/// A thread of application execution.
pub trait Context: Send {
    /// Run the application with `regs` in `aspace` until the next event. On return `regs`
    /// holds the thread's registers at the event.
    fn switch(&mut self, aspace: &Arc<dyn AddressSpace>, regs: &mut Regs) -> Result<Event>;
    /// Make a running (or the next) `switch` on this context return
    /// [`Event::Interrupted`]. Callable from any thread.
    fn interrupter(&self) -> Arc<dyn Interrupter>;
    /// The floating-point state of the thread in `aspace`.
    fn fp_state(&mut self, aspace: &Arc<dyn AddressSpace>) -> Result<FpState>;
    fn set_fp_state(&mut self, aspace: &Arc<dyn AddressSpace>, fp: &FpState) -> Result<()>;
}

/// Kicks a context out of application code from another thread.
pub trait Interrupter: Send + Sync {
    fn interrupt(&self);
}

/// A fresh, zeroed register set with the user segment selectors of x86-64 Linux.
pub fn initial_regs() -> Regs {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut r: Regs = unsafe { std::mem::zeroed() };
    r.cs = 0x33;
    r.ss = 0x2b;
    r.eflags = 0x202;
    r
}

/// The initial FPU state a new process gets (FNINIT + default MXCSR).
pub fn initial_fp_state() -> FpState {
    // SAFETY: user_fpregs_struct is plain integers; all-zero is a valid value.
    let mut f: FpState = unsafe { std::mem::zeroed() };
    f.cwd = 0x37f;
    f.mxcsr = 0x1f80;
    f.mxcr_mask = 0xffff;
    f
}

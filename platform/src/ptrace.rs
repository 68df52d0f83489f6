//! The ptrace platform: application threads run in stub processes, stopped at every
//! system call with `PTRACE_SYSEMU`.
//!
//! Each address space is one stub process, forked from a template stub (see `stub`).
//! Each Sentry thread that runs an address space has its own stub thread there, which
//! it traces (seized with `PTRACE_O_EXITKILL`). Mappings are changed by batches of
//! `mmap`/`munmap`/`mprotect` that the stub's untraced spawner thread runs on request
//! (a futex in the control page), so a stopped application thread is never used for
//! them. Tracer, stub thread and (while it serves the tracer) spawner are pinned to the
//! same CPU: on these VMs a cross-CPU wake-up costs several times a same-CPU switch.

use crate::stub::{self, Ctl};
use crate::{
    Access, AddressSpace, Context, Error, Event, FpState, Interrupter, MapOp, Platform, Prot, Regs,
    Result, SigInfo,
};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock};

pub struct Ptrace {
    memfd: Arc<OwnedFd>,
    /// The stubs' control pages, one page a slot (made here: the Sentry's seccomp
    /// filter does not allow memfd_create later).
    ctlfd: Arc<OwnedFd>,
    /// The template stub, forked on first use: after the Sentry has confined itself,
    /// so that the stubs inherit its filter and dropped capabilities.
    template: Mutex<Option<Arc<Template>>>,
}

impl Ptrace {
    /// `memfd` is the memory file every address space maps from.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<Ptrace> {
        let fd = memfd.try_clone_to_owned().map_err(|err| Error::Os {
            what: "dup memfd",
            err,
        })?;
        // SAFETY: memfd_create with a static name; the result is checked.
        let ctl = unsafe { libc::memfd_create(c"rvisor-stub-ctl".as_ptr(), libc::MFD_CLOEXEC) };
        if ctl < 0 {
            return Err(Error::os("memfd_create stub control file"));
        }
        // SAFETY: ctl is a fresh descriptor we own.
        let ctlfd = unsafe { OwnedFd::from_raw_fd(ctl) };
        // SAFETY: ftruncate on our own memfd; sparse, pages exist only once touched.
        if unsafe { libc::ftruncate(ctl, CTL_SLOTS as i64 * 4096) } != 0 {
            return Err(Error::os("size stub control file"));
        }
        Ok(Ptrace {
            memfd: Arc::new(fd),
            ctlfd: Arc::new(ctlfd),
            template: Mutex::new(None),
        })
    }

    fn template(&self) -> Result<Arc<Template>> {
        let mut t = self.template.lock();
        if let Some(t) = t.as_ref() {
            return Ok(t.clone());
        }
        let new = Arc::new(Template::new(&self.memfd, self.ctlfd.clone())?);
        *t = Some(new.clone());
        Ok(new)
    }
}

impl Platform for Ptrace {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>> {
        let template = self.template()?;
        let (pid, slot, ctl, first) = template.spawn()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(StubProcess {
            pid,
            ctl,
            slot,
            first: Mutex::new(Some(first)),
            template,
            spawn: Mutex::new(()),
            spawner_cpu: AtomicUsize::new(usize::MAX),
            id,
            memfd: self.memfd.as_raw_fd(),
            _memfd: self.memfd.clone(),
            alive: Arc::new(AtomicBool::new(true)),
        }))
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(PtraceContext {
            current: Arc::new(Current(AtomicU64::new(0))),
        }))
    }

    fn thread_cpu(&self) -> Option<usize> {
        CPU.with(|c| c.get())
    }

    fn place_thread(&self, cpu: Option<usize>) {
        let cpu = cpu.unwrap_or_else(next_cpu);
        if CPU.with(|c| c.replace(Some(cpu))) != Some(cpu) {
            set_affinity(0, cpu);
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One stub process: an application address space.
pub struct StubProcess {
    pid: i32,
    /// The Sentry's view of the stub's control page, slot `slot` of the control file.
    ctl: usize,
    slot: u32,
    /// The thread the stub cloned when it started, until a Sentry thread seizes it.
    first: Mutex<Option<i32>>,
    template: Arc<Template>,
    /// Serialises requests to the stub's spawner thread.
    spawn: Mutex<()>,
    /// The CPU the spawner thread is pinned to (usize::MAX: not yet).
    spawner_cpu: AtomicUsize,
    id: u64,
    memfd: i32,
    _memfd: Arc<OwnedFd>,
    alive: Arc<AtomicBool>,
}

impl StubProcess {
    fn ctl(&self) -> &Ctl {
        // SAFETY: the control page is a shared mapping that lives as long as self.
        unsafe { &*(self.ctl as *const Ctl) }
    }

    /// Seize a thread of the stub from the calling thread: the one the stub made when it
    /// started, else one more asked for now.
    fn new_thread(&self) -> Result<i32> {
        let _g = self.spawn.lock();
        let tid = match self.first.lock().take() {
            Some(tid) => tid,
            None => {
                self.pin_spawner();
                let ctl = self.ctl();
                ctl.tid.store(0, Ordering::Release);
                ctl.req.store(stub::REQ_THREAD, Ordering::Release);
                stub::futex_wake(&ctl.req);
                let tid = stub::wait_nonzero(&ctl.tid, 5000)
                    .ok_or_else(|| Error::StubDied("no thread from the stub".into()))?
                    as i32;
                if tid < 0 {
                    return Err(Error::errno("stub clone", -tid));
                }
                tid
            }
        };
        // On our CPU before it is woken below.
        set_affinity(tid, pin_self());
        let opts = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL;
        ptrace(libc::PTRACE_SEIZE, tid, 0, opts as usize)
            .map_err(|e| Error::errno("PTRACE_SEIZE", e))?;
        ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0)
            .map_err(|e| Error::errno("PTRACE_INTERRUPT", e))?;
        match wait(tid)? {
            Stop::Event | Stop::Signal(_) => {}
            other => return Err(Error::StubDied(format!("new stub thread: {other:?}"))),
        }
        Ok(tid)
    }

    /// Keep the spawner thread on the caller's CPU, so that waking it with a request is
    /// a same-CPU switch. Called with `spawn` held.
    fn pin_spawner(&self) {
        let cpu = pin_self();
        if self.spawner_cpu.swap(cpu, Ordering::Relaxed) != cpu {
            set_affinity(self.pid, cpu);
        }
    }

    /// Run system calls (number and six arguments each) in order in the stub's spawner
    /// thread, up to [`stub::BATCH_MAX`] per request; stops at the first failure. The
    /// application's threads are not disturbed: a faulting thread stays in its stop
    /// and is resumed with `PTRACE_SYSEMU` as soon as its pages are mapped.
    fn run_batch(&self, calls: &[[u64; 7]]) -> Result<()> {
        let _g = self.spawn.lock();
        self.pin_spawner();
        let ctl = self.ctl();
        for chunk in calls.chunks(stub::BATCH_MAX) {
            let area = (self.ctl + stub::BATCH_OFFSET) as *mut [u64; 7];
            // SAFETY: the control page is mapped for as long as self lives and the
            // batch area holds BATCH_MAX entries; the lock above makes it ours.
            unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), area, chunk.len()) };
            ctl.arg.store(chunk.len() as u64, Ordering::Release);
            ctl.tid.store(0, Ordering::Release);
            ctl.req.store(stub::REQ_BATCH, Ordering::Release);
            stub::futex_wake(&ctl.req);
            stub::wait_nonzero(&ctl.tid, 5000)
                .ok_or_else(|| Error::StubDied("the stub did not run a batch".into()))?;
            let left = ctl.arg.load(Ordering::Acquire) as usize;
            if left != 0 {
                let failed = chunk.len().saturating_sub(left);
                // SAFETY: as above; the stub wrote its result over the failed entry.
                let ret = unsafe { (*area.add(failed))[0] } as i64;
                let errno = if (-4095..0).contains(&ret) {
                    -ret as i32
                } else {
                    libc::EIO
                };
                return Err(Error::errno("stub mapping call", errno));
            }
        }
        Ok(())
    }
}

/// The madvise calls that follow a huge map: MADV_HUGEPAGE so that the host fills the
/// range with 2 MiB pages, the populate (what MAP_POPULATE would have done, but after
/// the advice), then MADV_NOHUGEPAGE, so that a hole punched in the range later is
/// never refilled with a whole huge page by one touch (nor collapsed by khugepaged).
fn huge_advice(addr: u64, len: u64, prot: Prot, populate: bool) -> Vec<[u64; 7]> {
    let call = |advice: i32| [libc::SYS_madvise as u64, addr, len, advice as u64, 0, 0, 0];
    let mut v = vec![call(libc::MADV_HUGEPAGE)];
    if populate {
        v.push(call(if prot.contains(Prot::WRITE) {
            libc::MADV_POPULATE_WRITE
        } else {
            libc::MADV_POPULATE_READ
        }));
    }
    v.push(call(libc::MADV_NOHUGEPAGE));
    v
}

fn prot_bits(p: Prot) -> u64 {
    let mut b = 0;
    if p.contains(Prot::READ) {
        b |= libc::PROT_READ;
    }
    if p.contains(Prot::WRITE) {
        b |= libc::PROT_WRITE;
    }
    if p.contains(Prot::EXEC) {
        b |= libc::PROT_EXEC;
    }
    b as u64
}

impl AddressSpace for StubProcess {
    fn map(&self, addr: u64, len: u64, file_offset: u64, prot: Prot) -> Result<()> {
        self.apply(&[MapOp::Map {
            addr,
            len,
            file_offset,
            prot,
            populate: false,
            huge: false,
        }])
    }
    fn unmap(&self, addr: u64, len: u64) -> Result<()> {
        self.apply(&[MapOp::Unmap { addr, len }])
    }
    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<()> {
        self.apply(&[MapOp::Protect { addr, len, prot }])
    }
    fn id(&self) -> u64 {
        self.id
    }
    fn apply(&self, ops: &[MapOp]) -> Result<()> {
        let mut calls: Vec<[u64; 7]> = Vec::with_capacity(ops.len());
        for op in ops {
            match *op {
                MapOp::Map {
                    addr,
                    len,
                    file_offset,
                    prot,
                    populate,
                    huge,
                } => {
                    let mut flags = libc::MAP_SHARED | libc::MAP_FIXED;
                    if populate && !huge {
                        flags |= libc::MAP_POPULATE;
                    }
                    calls.push([
                        libc::SYS_mmap as u64,
                        addr,
                        len,
                        prot_bits(prot),
                        flags as u64,
                        self.memfd as u64,
                        file_offset,
                    ]);
                    if huge {
                        calls.extend(huge_advice(addr, len, prot, populate));
                    }
                }
                MapOp::Unmap { addr, len } => {
                    calls.push([libc::SYS_munmap as u64, addr, len, 0, 0, 0, 0])
                }
                MapOp::Protect { addr, len, prot } => calls.push([
                    libc::SYS_mprotect as u64,
                    addr,
                    len,
                    prot_bits(prot),
                    0,
                    0,
                    0,
                ]),
            }
        }
        if calls.is_empty() {
            return Ok(());
        }
        self.run_batch(&calls)
    }
    fn cpu_time_ns(&self) -> Option<u64> {
        // The stub process's CPU clock (MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)):
        // all of its threads, user and kernel time. One system call, no permission
        // check beyond the pid being visible.
        let clock = ((!self.pid) << 3) | 2;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec to a valid pointer.
        let r = unsafe { libc::clock_gettime(clock, &mut ts) };
        (r == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }
    fn host_pid(&self) -> Option<i32> {
        Some(self.pid)
    }
    fn set_name(&self, name: &[u8]) -> Result<()> {
        let _g = self.spawn.lock();
        self.pin_spawner();
        let mut buf = [0u8; 16];
        let n = name.len().min(15);
        buf[..n].copy_from_slice(&name[..n]);
        let ctl = self.ctl();
        // SAFETY: the name field is plain bytes in the shared control page; the stub
        // reads it only after the request below, and `spawn` serialises requests.
        unsafe { std::ptr::addr_of!(ctl.name).cast_mut().write_volatile(buf) };
        ctl.tid.store(0, Ordering::Release);
        ctl.req.store(stub::REQ_RENAME, Ordering::Release);
        stub::futex_wake(&ctl.req);
        let r = stub::wait_nonzero(&ctl.tid, 5000)
            .ok_or_else(|| Error::StubDied("no answer from the stub".into()))?
            as i32;
        if r < 0 {
            return Err(Error::errno("stub rename", -r));
        }
        Ok(())
    }
}

impl Drop for StubProcess {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        // SAFETY: killing our own stub process; the template ignores SIGCHLD, so the pid
        // stays ours until the process is gone.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        // SAFETY: unmapping the Sentry's view of the control page, no longer used.
        unsafe { libc::munmap(self.ctl as *mut libc::c_void, 4096) };
        self.template.release(self.slot);
    }
}

/// A stub thread traced by the current OS thread.
struct ThreadEntry {
    tid: i32,
    /// The CPU the stub thread is pinned to: its tracer's, re-pinned when that moves.
    cpu: usize,
    /// Cleared when the stub process is killed, so the entry can be reaped.
    alive: Arc<AtomicBool>,
    /// The registers the stopped thread holds, as of its last stop (None before).
    regs: Option<Regs>,
}

thread_local! {
    /// This OS thread's stub threads, by address-space id.
    static THREADS: RefCell<HashMap<u64, ThreadEntry>> = RefCell::new(HashMap::new());
    static CPU: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The calling thread's stub thread in `sp`, created on first use.
fn thread_for(sp: &StubProcess) -> Result<i32> {
    let cpu = pin_self();
    let known = THREADS.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.get_mut(&sp.id)?;
        if e.cpu != cpu {
            set_affinity(e.tid, cpu);
            e.cpu = cpu;
        }
        Some(e.tid)
    });
    if let Some(tid) = known {
        return Ok(tid);
    }
    reap_dead_entries();
    let tid = sp.new_thread()?;
    THREADS.with(|t| {
        t.borrow_mut().insert(
            sp.id,
            ThreadEntry {
                tid,
                cpu,
                alive: sp.alive.clone(),
                regs: None,
            },
        )
    });
    Ok(tid)
}

fn reap_dead_entries() {
    THREADS.with(|t| {
        t.borrow_mut().retain(|_, e| {
            if e.alive.load(Ordering::Acquire) {
                return true;
            }
            let mut status = 0;
            // SAFETY: reaping a traced thread of ours that was killed with its process.
            unsafe { libc::waitpid(e.tid, &mut status, libc::WNOHANG | libc::__WALL) };
            false
        })
    });
}

/// Pin the calling thread to one CPU (round robin over the allowed ones).
fn pin_self() -> usize {
    if let Some(c) = CPU.with(|c| c.get()) {
        return c;
    }
    let cpu = next_cpu();
    set_affinity(0, cpu);
    CPU.with(|c| c.set(Some(cpu)));
    cpu
}

/// The next of the allowed CPUs, round robin.
fn next_cpu() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    let cpus = CPUS.get_or_init(allowed_cpus);
    cpus[NEXT.fetch_add(1, Ordering::Relaxed) % cpus.len()]
}

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is valid for writes of its own size.
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            == 0;
    let v: Vec<usize> = if ok {
        // SAFETY: CPU_ISSET only reads the set.
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        vec![]
    };
    if v.is_empty() {
        vec![0]
    } else {
        v
    }
}

fn set_affinity(tid: i32, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET sets one bit of it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t for the kernel to read.
    unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

/// A context: the per-task-thread handle. Its stub threads live in the thread-local
/// registry, since ptrace ties a tracee to the one OS thread that traces it.
struct PtraceContext {
    current: Arc<Current>,
}

/// The stub thread a context last ran (pid << 32 | tid), for interrupts.
struct Current(AtomicU64);

impl Interrupter for Current {
    fn interrupt(&self) {
        let v = self.0.load(Ordering::Acquire);
        if v != 0 {
            // SAFETY: signalling a stub thread of ours; a stale tid is at worst ESRCH.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    (v >> 32) as i32,
                    v as u32 as i32,
                    libc::SIGSTOP,
                )
            };
        }
    }
}

fn downcast(aspace: &Arc<dyn AddressSpace>) -> Result<&StubProcess> {
    let any: &dyn std::any::Any = aspace.as_ref();
    any.downcast_ref::<StubProcess>()
        .ok_or_else(|| Error::Other("not a ptrace address space".into()))
}

impl Context for PtraceContext {
    fn switch(&mut self, aspace: &Arc<dyn AddressSpace>, regs: &mut Regs) -> Result<Event> {
        let sp = downcast(aspace)?;
        let tid = thread_for(sp)?;
        self.current.0.store(
            ((sp.pid as u64) << 32) | tid as u32 as u64,
            Ordering::Release,
        );
        let held = THREADS.with(|t| t.borrow().get(&sp.id).and_then(|e| e.regs));
        put_regs(tid, held.as_ref(), regs)?;
        ptrace(libc::PTRACE_SYSEMU, tid, 0, 0).map_err(|e| Error::errno("PTRACE_SYSEMU", e))?;
        let stop = wait(tid)?;
        *regs = get_regs(tid)?;
        THREADS.with(|t| {
            if let Some(e) = t.borrow_mut().get_mut(&sp.id) {
                e.regs = Some(*regs);
            }
        });
        match stop {
            Stop::Syscall => Ok(Event::Syscall),
            Stop::Event | Stop::Signal(libc::SIGSTOP) => Ok(Event::Interrupted),
            Stop::Signal(sig) => {
                let info = get_siginfo(tid)?;
                if sig == libc::SIGSEGV && (info.code() == 1 || info.code() == 2) {
                    let addr = info.addr();
                    let access = if addr & !0xfff == regs.rip & !0xfff && addr == regs.rip {
                        Access::Exec
                    } else {
                        Access::Unknown
                    };
                    Ok(Event::Fault { addr, access, info })
                } else {
                    Ok(Event::Signal(info))
                }
            }
            Stop::Exited(s) => Err(Error::StubDied(format!("stub thread exited: {s:#x}"))),
        }
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.current.clone()
    }

    fn fp_state(&mut self, aspace: &Arc<dyn AddressSpace>) -> Result<FpState> {
        let tid = thread_for(downcast(aspace)?)?;
        let mut fp = crate::initial_fp_state();
        // SAFETY: PTRACE_GETFPREGS writes one user_fpregs_struct to the pointer.
        let r = unsafe { libc::ptrace(libc::PTRACE_GETFPREGS, tid, 0, &mut fp as *mut FpState) };
        if r < 0 {
            return Err(Error::os("PTRACE_GETFPREGS"));
        }
        Ok(fp)
    }

    fn set_fp_state(&mut self, aspace: &Arc<dyn AddressSpace>, fp: &FpState) -> Result<()> {
        let tid = thread_for(downcast(aspace)?)?;
        // SAFETY: PTRACE_SETFPREGS reads one user_fpregs_struct from the pointer.
        let r = unsafe { libc::ptrace(libc::PTRACE_SETFPREGS, tid, 0, fp as *const FpState) };
        if r < 0 {
            return Err(Error::os("PTRACE_SETFPREGS"));
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Stop {
    Syscall,
    Signal(i32),
    /// A PTRACE_EVENT stop (PTRACE_INTERRUPT's group-stop-like event).
    Event,
    Exited(i32),
}

fn wait(tid: i32) -> Result<Stop> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status to a valid int.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if r == tid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Os {
                what: "waitpid(stub)",
                err: e,
            });
        }
    }
    Ok(if libc::WIFSTOPPED(status) {
        let sig = libc::WSTOPSIG(status);
        if sig == libc::SIGTRAP | 0x80 {
            Stop::Syscall
        } else if status >> 16 != 0 {
            Stop::Event
        } else {
            Stop::Signal(sig)
        }
    } else {
        Stop::Exited(status)
    })
}

fn ptrace(req: libc::c_uint, tid: i32, addr: usize, data: usize) -> std::result::Result<i64, i32> {
    // SAFETY: requests used here take integer arguments or pointers we own.
    let r = unsafe { libc::ptrace(req, tid, addr, data) };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

fn get_regs(tid: i32) -> Result<Regs> {
    let mut r = crate::initial_regs();
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct to the pointer.
    if unsafe { libc::ptrace(libc::PTRACE_GETREGS, tid, 0, &mut r as *mut Regs) } < 0 {
        return Err(Error::os("PTRACE_GETREGS"));
    }
    Ok(r)
}

/// Gives the stopped thread `tid`, whose registers are `held` when known, the registers
/// `regs` before it resumes: nothing when they are the same, one PTRACE_POKEUSER when
/// only rax (a system call's result) differs, else PTRACE_SETREGS with orig_rax -1.
/// orig_rax is otherwise left as the stop left it: the host kernel reads it on the way
/// back only to restart a call whose rax is -ERESTART*, which always takes SETREGS here.
fn put_regs(tid: i32, held: Option<&Regs>, regs: &Regs) -> Result<()> {
    const RAX: usize = 10;
    const ORIG_RAX: usize = 15;
    let restart = (-516..=-512).contains(&(regs.rax as i64));
    if let (Some(h), false) = (held, restart) {
        let (a, b) = (words(h), words(regs));
        let differs = |i: usize| i != ORIG_RAX && a[i] != b[i];
        if !(0..a.len()).any(|i| i != RAX && differs(i)) {
            if differs(RAX) {
                ptrace(libc::PTRACE_POKEUSER, tid, RAX * 8, regs.rax as usize)
                    .map_err(|e| Error::errno("PTRACE_POKEUSER", e))?;
            }
            return Ok(());
        }
    }
    let mut r = *regs;
    r.orig_rax = u64::MAX;
    set_regs(tid, &r)
}

/// The registers as the 27 words of user_regs_struct, in its order.
fn words(r: &Regs) -> &[u64; 27] {
    const _: () = assert!(std::mem::size_of::<Regs>() == 27 * 8);
    // SAFETY: user_regs_struct is repr(C) and made of exactly 27 u64 fields.
    unsafe { &*(r as *const Regs as *const [u64; 27]) }
}

fn set_regs(tid: i32, r: &Regs) -> Result<()> {
    // SAFETY: PTRACE_SETREGS reads one user_regs_struct from the pointer.
    if unsafe { libc::ptrace(libc::PTRACE_SETREGS, tid, 0, r as *const Regs) } < 0 {
        return Err(Error::os("PTRACE_SETREGS"));
    }
    Ok(())
}

fn get_siginfo(tid: i32) -> Result<SigInfo> {
    // SAFETY: siginfo_t is plain data; PTRACE_GETSIGINFO fills it.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, the pointer is valid for one siginfo_t.
    if unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGINFO,
            tid,
            0,
            &mut si as *mut libc::siginfo_t,
        )
    } < 0
    {
        return Err(Error::os("PTRACE_GETSIGINFO"));
    }
    Ok(SigInfo(si))
}

// ---- The template stub, and the thread that forks it. ----

/// Control pages live in their own sparse file, one page a slot.
const CTL_SLOTS: u32 = 1 << 16;

/// The template stub: a process holding only the stub's pages, which forks a new stub
/// for each address space. One stub is always forked ahead (the spare): a new address
/// space takes it, ready with its first thread, and asks for the next one, which the
/// template forks while the caller goes on.
struct Template {
    pid: i32,
    /// The template's own control page (shared anonymous memory).
    ctl: usize,
    ctlfd: Arc<OwnedFd>,
    /// The spare asked for and not yet taken; the lock serialises fork requests.
    spare: Mutex<Option<Spare>>,
    /// Control-file slots: never used ones start at `next`; freed ones are reused
    /// oldest first.
    slots: Mutex<(u32, std::collections::VecDeque<u32>)>,
}

/// A stub the template was asked to fork: its control-file slot and the Sentry's view
/// of its control page. Its pid is in the template's answer word until taken.
struct Spare {
    slot: u32,
    view: usize,
}

impl Template {
    fn new(memfd: &Arc<OwnedFd>, ctlfd: Arc<OwnedFd>) -> Result<Template> {
        let (tx, rx) = channel();
        factory()
            .lock()
            .send(FactoryReq {
                memfd: memfd.as_raw_fd(),
                ctlfd: ctlfd.as_raw_fd(),
                reply: tx,
            })
            .ok();
        let (pid, ctl) = rx
            .recv()
            .map_err(|_| Error::Other("stub factory is gone".into()))??;
        Ok(Template {
            pid,
            ctl,
            ctlfd,
            spare: Mutex::new(None),
            slots: Mutex::new((0, Default::default())),
        })
    }

    fn ctl(&self) -> &Ctl {
        // SAFETY: the control page is a shared mapping that lives as long as self.
        unsafe { &*(self.ctl as *const Ctl) }
    }

    /// A new stub: its pid, control-file slot, the Sentry's view of its control page
    /// and the tid of its first thread (waiting to be seized).
    fn spawn(&self) -> Result<(i32, u32, usize, i32)> {
        let mut spare = self.spare.lock();
        let mut next = match spare.take() {
            Some(s) => s,
            None => self.request()?,
        };
        let mut got = self.take(&next);
        // A spare that died while it waited or started (killed from the host): fork a
        // fresh one.
        if !matches!(got, Ok((pid, _)) if alive(pid)) {
            if let Ok((pid, _)) = got {
                // SAFETY: a stub of ours, dead or not wanted.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            self.discard(&next);
            next = self.request()?;
            got = self.take(&next);
        }
        if got.is_err() {
            self.discard(&next);
        }
        // The next spare: forked while the caller maps and runs this one.
        match self.request() {
            Ok(s) => *spare = Some(s),
            Err(e) => tracing::debug!("no spare stub: {e}"),
        }
        got.map(|(pid, tid)| (pid, next.slot, next.view, tid))
    }

    /// Ask the template to fork a stub into a fresh slot, without waiting. The new
    /// stub finds a thread request in its control page, so it clones its first thread
    /// as soon as it starts.
    fn request(&self) -> Result<Spare> {
        let slot = {
            let mut s = self.slots.lock();
            match s.1.pop_front() {
                Some(slot) => slot,
                None if s.0 < CTL_SLOTS => {
                    s.0 += 1;
                    s.0 - 1
                }
                None => return Err(Error::errno("stub control slot", libc::EAGAIN)),
            }
        };
        let off = slot as u64 * 4096;
        // SAFETY: a shared mapping of our own control file; checked below.
        let view = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.ctlfd.as_raw_fd(),
                off as i64,
            )
        };
        if view == libc::MAP_FAILED {
            self.release(slot);
            return Err(Error::os("mmap stub control page"));
        }
        // SAFETY: the page was just mapped and nothing else uses the slot yet.
        unsafe { std::ptr::write_bytes(view as *mut u8, 0, 4096) };
        // SAFETY: as above.
        let c = unsafe { &*(view as *const Ctl) };
        c.req.store(stub::REQ_THREAD, Ordering::Release);
        let t = self.ctl();
        t.arg.store(off, Ordering::Release);
        t.tid.store(0, Ordering::Release);
        t.req.store(stub::REQ_FORK, Ordering::Release);
        stub::futex_wake(&t.req);
        Ok(Spare {
            slot,
            view: view as usize,
        })
    }

    /// Wait for the stub asked for in `s` to start and clone its first thread: its pid
    /// and that thread's tid.
    fn take(&self, s: &Spare) -> Result<(i32, i32)> {
        let pid = stub::wait_nonzero(&self.ctl().tid, 5000)
            .ok_or_else(|| Error::StubDied("no answer from the template stub".into()))?
            as i32;
        if pid < 0 {
            return Err(Error::errno("fork stub", -pid));
        }
        // SAFETY: view is the new stub's control page.
        let c = unsafe { &*(s.view as *const Ctl) };
        // Up to 5 s, but no longer than the stub lives.
        let wait = |word| {
            (0..100)
                .find_map(|_| stub::wait_nonzero(word, 50).or_else(|| (!alive(pid)).then_some(0)))
        };
        let tid = match wait(&c.ready) {
            Some(1..) => wait(&c.tid).map(|t| t as i32),
            _ => None,
        };
        match tid {
            Some(tid) if tid > 0 => Ok((pid, tid)),
            _ => {
                // SAFETY: a stub of ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                Err(Error::StubDied("stub did not start".into()))
            }
        }
    }

    /// Give back the slot and view of a stub that failed or died.
    fn discard(&self, s: &Spare) {
        // SAFETY: unmapping the view made by `request`; the stub is gone or killed.
        unsafe { libc::munmap(s.view as *mut libc::c_void, 4096) };
        self.release(s.slot);
    }

    fn release(&self, slot: u32) {
        self.slots.lock().1.push_back(slot);
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        // SAFETY: killing our own template; its stubs, the spare too, follow it
        // (PDEATHSIG).
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        if let Some(s) = self.spare.lock().take() {
            // SAFETY: unmapping the Sentry's view of the spare's control page.
            unsafe { libc::munmap(s.view as *mut libc::c_void, 4096) };
        }
        let mut st = 0;
        // SAFETY: reaping our own child, which was just killed.
        unsafe { libc::waitpid(self.pid, &mut st, libc::__WALL) };
        // SAFETY: unmapping the Sentry's view of the control page, no longer used.
        unsafe { libc::munmap(self.ctl as *mut libc::c_void, 4096) };
    }
}

/// Whether process `pid` of ours still exists.
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Fork the template from a thread that lives as long as the Sentry: the template's
/// PDEATHSIG fires when the thread that forked it exits.
struct FactoryReq {
    memfd: i32,
    ctlfd: i32,
    reply: Sender<Result<(i32, usize)>>,
}

fn factory() -> &'static Mutex<Sender<FactoryReq>> {
    static F: OnceLock<Mutex<Sender<FactoryReq>>> = OnceLock::new();
    F.get_or_init(|| {
        let (tx, rx) = channel::<FactoryReq>();
        std::thread::Builder::new()
            .name("stub-factory".into())
            .spawn(move || {
                for req in rx {
                    req.reply.send(fork_template(req.memfd, req.ctlfd)).ok();
                }
            })
            .expect("spawn stub factory");
        Mutex::new(tx)
    })
}

fn fork_template(memfd: i32, ctlfd: i32) -> Result<(i32, usize)> {
    // SAFETY: a fresh shared anonymous page; checked below.
    let ctl = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ctl == libc::MAP_FAILED {
        return Err(Error::os("mmap stub control page"));
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // Built before the fork: the child may not allocate.
    let filter = stub::filter();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the child runs only template_main, which makes raw system calls and never
    // returns into Rust code that could take a lock held by another thread.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::os("fork stub template"));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child.
        unsafe { stub::template_main(ctl as *mut Ctl, memfd, ctlfd, parent, &prog) };
    }
    // SAFETY: ctl points to the control page mapped above.
    let c = unsafe { &*(ctl as *const Ctl) };
    if stub::wait_nonzero(&c.ready, 5000).is_none() {
        // SAFETY: our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut st = 0;
        // SAFETY: reaping our own child, which was just killed.
        unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
        return Err(Error::StubDied("stub template did not start".into()));
    }
    Ok((pid, ctl as usize))
}

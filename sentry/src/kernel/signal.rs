//! Signals: actions, queues, sending, default actions and signal frames.

use super::{Kernel, Task, ThreadGroup};
use crate::errno::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGABRT: i32 = 6;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGSEGV: i32 = 11;
pub const SIGPIPE: i32 = 13;
pub const SIGALRM: i32 = 14;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGTSTP: i32 = 20;
pub const SIGTTIN: i32 = 21;
pub const SIGTTOU: i32 = 22;
pub const SIGXFSZ: i32 = 25;
pub const SIGIO: i32 = 29;
pub const SIGSYS: i32 = 31;

pub const SA_NOCLDSTOP: u64 = 1;
pub const SA_NOCLDWAIT: u64 = 2;
pub const SA_SIGINFO: u64 = 4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TKILL: i32 = -6;
pub const SI_TIMER: i32 = -2;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

pub fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}
pub const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// struct sigaction as rt_sigaction passes it.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// A raw siginfo_t.
#[derive(Clone, Copy)]
pub struct SigInfo(pub [u8; 128]);

impl SigInfo {
    pub fn new(signo: i32, code: i32) -> SigInfo {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&signo.to_le_bytes());
        b[8..12].copy_from_slice(&code.to_le_bytes());
        SigInfo(b)
    }
    pub fn signo(&self) -> i32 {
        i32::from_le_bytes(self.0[0..4].try_into().expect("4"))
    }
    pub fn code(&self) -> i32 {
        i32::from_le_bytes(self.0[8..12].try_into().expect("4"))
    }
    pub fn set_i32(&mut self, off: usize, v: i32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
        self
    }
    pub fn set_u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_le_bytes());
        self
    }
    /// A signal sent by kill(2)-like calls.
    pub fn user(signo: i32, code: i32, pid: i32, uid: u32) -> SigInfo {
        let mut s = SigInfo::new(signo, code);
        s.set_i32(16, pid).set_i32(20, uid as i32);
        s
    }
    pub fn fault(signo: i32, code: i32, addr: u64) -> SigInfo {
        let mut s = SigInfo::new(signo, code);
        s.set_u64(16, addr);
        s
    }
    pub fn kernel(signo: i32) -> SigInfo {
        SigInfo::new(signo, SI_KERNEL)
    }
}

/// Pending signals of a task or a thread group.
#[derive(Default)]
pub struct SigQueue {
    pub mask: u64,
    queue: Vec<SigInfo>,
}

impl SigQueue {
    pub fn deliverable(&self, blocked: u64) -> bool {
        self.mask & !(blocked & !UNBLOCKABLE) != 0
    }
    pub fn push(&mut self, info: SigInfo) {
        let sig = info.signo();
        if sig < 32 && self.mask & bit(sig) != 0 {
            return;
        }
        self.mask |= bit(sig);
        self.queue.push(info);
    }
    /// Take the next deliverable signal: synchronous faults first, then the lowest.
    pub fn pop(&mut self, blocked: u64) -> Option<SigInfo> {
        let ok = self.mask & !(blocked & !UNBLOCKABLE);
        if ok == 0 {
            return None;
        }
        const SYNC: u64 = (1 << (SIGSEGV - 1))
            | (1 << (SIGBUS - 1))
            | (1 << (SIGILL - 1))
            | (1 << (SIGTRAP - 1))
            | (1 << (SIGFPE - 1))
            | (1 << (SIGSYS - 1));
        let pick = if ok & SYNC != 0 { ok & SYNC } else { ok };
        let sig = pick.trailing_zeros() as i32 + 1;
        self.take(sig)
    }
    pub fn take(&mut self, sig: i32) -> Option<SigInfo> {
        let i = self.queue.iter().position(|s| s.signo() == sig)?;
        let info = self.queue.remove(i);
        if !self.queue.iter().any(|s| s.signo() == sig) {
            self.mask &= !bit(sig);
        }
        Some(info)
    }
    pub fn remove(&mut self, sig: i32) {
        self.queue.retain(|s| s.signo() != sig);
        self.mask &= !bit(sig);
    }

    /// A POSIX timer's signal still waiting in the queue: count one more overrun in it.
    /// Returns false if the timer has no signal queued.
    pub fn bump_timer_overrun(&mut self, timer_id: i32) -> bool {
        for s in self.queue.iter_mut() {
            if s.code() == SI_TIMER
                && i32::from_le_bytes(s.0[16..20].try_into().expect("4")) == timer_id
            {
                let o = i32::from_le_bytes(s.0[20..24].try_into().expect("4"));
                s.set_i32(20, o.saturating_add(1));
                return true;
            }
        }
        false
    }

    /// Drop the queued signal of a deleted timer.
    pub fn remove_timer(&mut self, timer_id: i32) {
        self.queue.retain(|s| {
            !(s.code() == SI_TIMER
                && i32::from_le_bytes(s.0[16..20].try_into().expect("4")) == timer_id)
        });
        let still: u64 = self.queue.iter().fold(0, |m, s| m | bit(s.signo()));
        self.mask &= still;
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Default_ {
    Term,
    Core,
    Ignore,
    Stop,
    Cont,
}

pub fn default_action(sig: i32) -> Default_ {
    match sig {
        17 | 23 | 28 => Default_::Ignore,
        SIGCONT => Default_::Cont,
        19..=22 => Default_::Stop,
        3 | 4 | 5 | 6 | 7 | 8 | 11 | 24 | 25 | 31 => Default_::Core,
        _ => Default_::Term,
    }
}

fn ignored(tg: &ThreadGroup, sig: i32) -> bool {
    let a = tg.action(sig);
    a.handler == SIG_IGN
        || (a.handler == SIG_DFL && matches!(default_action(sig), Default_::Ignore))
}

/// Effects at generation time that do not wait for delivery (SIGKILL, SIGCONT, stops).
/// Returns false if the signal is to be discarded.
fn prepare(k: &Kernel, tg: &Arc<ThreadGroup>, sig: i32, external: bool, blocked: bool) -> bool {
    if sig == SIGKILL {
        if tg.tgid == 1 && !external {
            return false;
        }
        super::run::group_exit(k, tg, SIGKILL);
        return false;
    }
    if sig == SIGCONT {
        tg.pending.lock().remove(SIGSTOP);
        for s in [SIGTSTP, SIGTTIN, SIGTTOU] {
            tg.pending.lock().remove(s);
        }
        super::run::continue_group(k, tg);
    } else if matches!(sig, SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU) {
        tg.pending.lock().remove(SIGCONT);
    }
    // Blocked signals are never ignored: the handler may change before they are unblocked.
    if blocked {
        return true;
    }
    // init ignores signals it has no handler for, unless they come from outside the
    // sandbox (the runtime forwarding a host signal), as a pid namespace's init does.
    if tg.tgid == 1 && !external && tg.action(sig).handler == SIG_DFL {
        return false;
    }
    !ignored(tg, sig) || sig == SIGCONT
}

/// kill(2) semantics: queue on the thread group and wake its threads.
pub fn send_to_group(k: &Kernel, tg: &Arc<ThreadGroup>, info: SigInfo) {
    send_group(k, tg, info, false)
}

/// A signal from outside the sandbox (forwarded by the runtime).
pub fn send_external(k: &Kernel, tg: &Arc<ThreadGroup>, info: SigInfo) {
    send_group(k, tg, info, true)
}

fn send_group(k: &Kernel, tg: &Arc<ThreadGroup>, info: SigInfo, external: bool) {
    let sig = info.signo();
    if sig == 0 {
        return;
    }
    let threads = k.threads_of(tg.tgid);
    let blocked = !threads.is_empty() && threads.iter().all(|t| blocks(t, sig));
    if !prepare(k, tg, sig, external, blocked) {
        return;
    }
    tg.pending.lock().push(info);
    crate::vfs::signalfd::notify_signal();
    // Wake one thread that does not block it (or all, if all block it: cheap and safe).
    let target = threads
        .iter()
        .find(|t| t.sigmask.load(Ordering::Acquire) & bit(sig) == 0);
    match target {
        Some(t) => t.kick(),
        None => threads.iter().for_each(|t| t.kick()),
    }
}

/// Does `t` block `sig`, counting the mask rt_sigtimedwait lifted for its wait?
fn blocks(t: &Task, sig: i32) -> bool {
    (t.sigmask.load(Ordering::Acquire) | t.real_blocked.load(Ordering::Acquire)) & bit(sig) != 0
}

pub fn send_to_task(t: &Task, info: SigInfo) {
    let sig = info.signo();
    let blocked = blocks(t, sig);
    if sig == 0 || !prepare(&t.kernel, &t.tg, sig, false, blocked) {
        return;
    }
    t.pending.lock().push(info);
    crate::vfs::signalfd::notify_signal();
    t.kick();
}

/// A synchronous fault signal: delivered even if blocked or ignored (then the default
/// action applies), as Linux's force_sig does.
pub fn force(t: &Task, info: SigInfo) {
    let sig = info.signo();
    {
        let acts = t.tg.actions.lock().clone();
        let mut a = acts.lock();
        let blocked = t.sigmask.load(Ordering::Acquire) & bit(sig) != 0;
        if blocked || a[sig as usize].handler == SIG_IGN {
            a[sig as usize].handler = SIG_DFL;
            t.sigmask.fetch_and(!bit(sig), Ordering::AcqRel);
        }
    }
    t.pending.lock().push(info);
}

/// Offsets in the x86-64 rt_sigframe.
pub const FRAME_UC: u64 = 8;
pub const FRAME_MCTX: u64 = 48;
pub const FRAME_MASK: u64 = 304;
pub const FRAME_INFO: u64 = 312;
pub const FRAME_SIZE: u64 = 440;

/// Build a signal frame for `info` on the application stack and point `regs` at the
/// handler. `fp` is the thread's FXSAVE area at the time of the signal.
pub fn setup_frame(
    t: &Task,
    regs: &mut platform::Regs,
    act: &SigAction,
    info: &SigInfo,
    old_mask: u64,
    fp: &platform::FpState,
) -> KResult<()> {
    let mm = t.mm();
    let (ss_sp, ss_size, ss_flags) = *t.altstack.lock();
    let on_alt = ss_size != 0 && regs.rsp > ss_sp && regs.rsp <= ss_sp + ss_size;
    let mut sp = if act.flags & SA_ONSTACK != 0 && ss_size != 0 && ss_flags & 2 == 0 && !on_alt {
        ss_sp + ss_size
    } else {
        regs.rsp - 128
    };
    sp = (sp - 512) & !63;
    let fpstate = sp;
    // SAFETY: FpState is plain data; viewing it as bytes.
    let fpbytes = unsafe { std::slice::from_raw_parts(fp as *const _ as *const u8, 512) };
    mm.write(fpstate, fpbytes)?;
    let frame = ((sp - FRAME_SIZE) & !15) - 8;
    let mut b = vec![0u8; FRAME_SIZE as usize];
    let put = |b: &mut Vec<u8>, off: u64, v: u64| {
        b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
    };
    put(&mut b, 0, act.restorer);
    put(&mut b, FRAME_UC, 0);
    put(&mut b, FRAME_UC + 8, 0);
    put(&mut b, FRAME_UC + 16, ss_sp);
    let alt_flags: u64 = if ss_size == 0 {
        2
    } else if on_alt {
        1
    } else {
        0
    };
    put(&mut b, FRAME_UC + 24, alt_flags);
    put(&mut b, FRAME_UC + 32, ss_size);
    let r = regs;
    let gprs = [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.eflags,
    ];
    for (i, v) in gprs.iter().enumerate() {
        put(&mut b, FRAME_MCTX + 8 * i as u64, *v);
    }
    let segs: u64 = (r.cs & 0xffff) | ((r.ss & 0xffff) << 48);
    put(&mut b, FRAME_MCTX + 144, segs);
    let is_fault = matches!(info.signo(), SIGSEGV | SIGBUS);
    let addr = u64::from_le_bytes(info.0[16..24].try_into().expect("8"));
    put(&mut b, FRAME_MCTX + 152, if is_fault { 4 | 2 } else { 0 });
    put(&mut b, FRAME_MCTX + 160, if is_fault { 14 } else { 0 });
    put(&mut b, FRAME_MCTX + 168, old_mask);
    put(&mut b, FRAME_MCTX + 176, if is_fault { addr } else { 0 });
    put(&mut b, FRAME_MCTX + 184, fpstate);
    put(&mut b, FRAME_MASK, old_mask);
    b[FRAME_INFO as usize..].copy_from_slice(&info.0);
    mm.write(frame, &b)?;
    r.rsp = frame;
    r.rip = act.handler;
    r.rdi = info.signo() as u64;
    r.rsi = frame + FRAME_INFO;
    r.rdx = frame + FRAME_UC;
    r.rax = 0;
    r.eflags &= !(0x100 | 0x400);
    Ok(())
}

/// rt_sigreturn: restore registers, mask and FP state from the frame at rsp - 8.
pub fn restore_frame(
    t: &Task,
    regs: &mut platform::Regs,
) -> KResult<(u64, Option<platform::FpState>)> {
    let mm = t.mm();
    let frame = regs.rsp - 8;
    let b = mm.read_vec(frame, FRAME_SIZE as usize)?;
    let get =
        |off: u64| u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().expect("8"));
    let g: Vec<u64> = (0..18).map(|i| get(FRAME_MCTX + 8 * i)).collect();
    let r = regs;
    (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
        (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
    (
        r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp, r.rip,
    ) = (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15], g[16]);
    const USER_FLAGS: u64 =
        0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x40000 | 0x200000;
    r.eflags = (r.eflags & !USER_FLAGS) | (g[17] & USER_FLAGS);
    r.orig_rax = u64::MAX;
    let mask = get(FRAME_MASK) & !UNBLOCKABLE;
    let fpptr = get(FRAME_MCTX + 184);
    let fp = if fpptr != 0 {
        let bytes = mm.read_vec(fpptr, 512)?;
        let mut f = platform::initial_fp_state();
        // SAFETY: FpState is 512 bytes of plain data.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), &mut f as *mut _ as *mut u8, 512) };
        f.mxcsr &= 0xffff;
        Some(f)
    } else {
        None
    };
    // The alternate stack as saved (sigaltstack changes made in the handler persist).
    let ss_sp = get(FRAME_UC + 16);
    let ss_flags = get(FRAME_UC + 24) as i32;
    let ss_size = get(FRAME_UC + 32);
    if ss_flags & 2 == 0 && ss_size != 0 {
        *t.altstack.lock() = (ss_sp, ss_size, 0);
    }
    Ok((mask, fp))
}

//! The task loop (switch to the application, handle the event, deliver signals), task
//! threads, group exit, stop/continue, and thread and process death.

use super::signal::{self, Default_, SigInfo};
use super::{Kernel, Task, ThreadGroup};
use crate::errno::*;
use crate::mm::FaultError;
use crate::syscalls::{self, Ctx};
use parking_lot::Mutex;
use platform::{Context, Event, FpState, Regs};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

type Job = Box<dyn FnOnce() + Send>;

const SYS_RESTART_SYSCALL: u64 = 219;

/// Idle task threads, with the CPU each was last kept on. Threads are reused rather
/// than ended: a ptrace tracer thread that exits would kill (PTRACE_O_EXITKILL) the
/// stub threads it traces.
static POOL: Mutex<Vec<(Sender<Job>, Option<usize>)>> = Mutex::new(Vec::new());

/// How long a task started on its parent's CPU stays there before the platform spreads
/// it: a short-lived child (fork, exit, wait) saves the cross-CPU wake-ups, a long one
/// gets a CPU of its own.
const NEAR_PARENT_NS: u64 = 5_000_000;

thread_local! {
    /// The CPU the platform keeps this task thread on, as of its last task.
    static THREAD_CPU: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Run `job` on an idle task thread (preferring one on `cpu`), or on a new one.
fn run_on_pool(job: Job, cpu: Option<usize>) {
    let mut job = Some(job);
    loop {
        let idle = {
            let mut pool = POOL.lock();
            let i = pool.iter().rposition(|(_, c)| cpu.is_some() && *c == cpu);
            match i {
                Some(i) => Some(pool.remove(i).0),
                None => pool.pop().map(|e| e.0),
            }
        };
        let Some(tx) = idle else { break };
        match tx.send(job.take().expect("job")) {
            Ok(()) => return,
            Err(e) => job = Some(e.0),
        }
    }
    let job = job.expect("job");
    std::thread::Builder::new()
        .name("task".into())
        .spawn(move || {
            let (tx, rx) = channel::<Job>();
            job();
            loop {
                POOL.lock().push((tx.clone(), THREAD_CPU.with(|c| c.get())));
                match rx.recv() {
                    Ok(j) => j(),
                    Err(_) => return,
                }
            }
        })
        .expect("spawn task thread");
}

/// Start running `task` from `regs` on a task thread; `near`: the CPU of the thread that
/// made it (fork), where it starts.
pub fn start(task: Arc<Task>, regs: Regs, fp: Option<FpState>, near: Option<usize>) {
    if near.is_some() {
        spread_later(&task);
    }
    run_on_pool(Box::new(move || task_main(task, regs, fp, near)), near);
}

/// Kick `task` out of application code once its NEAR_PARENT_NS are over, so that a
/// child that makes no system call (a CPU-bound loop) is spread too: the task loop
/// moves it when it next stops. One thread serves all tasks, in the order they started
/// (which is their deadlines' order).
fn spread_later(task: &Arc<Task>) {
    type Entry = (std::time::Instant, std::sync::Weak<Task>);
    static SPREAD: Mutex<Option<Sender<Entry>>> = Mutex::new(None);
    let at = std::time::Instant::now() + std::time::Duration::from_nanos(NEAR_PARENT_NS);
    let mut g = SPREAD.lock();
    let tx = g.get_or_insert_with(|| {
        let (tx, rx) = channel::<Entry>();
        std::thread::Builder::new()
            .name("spread".into())
            .spawn(move || {
                for (at, task) in rx {
                    std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
                    let Some(task) = task.upgrade() else { continue };
                    let kick = task.interrupter.lock().clone();
                    if let Some(i) = kick {
                        i.interrupt();
                    }
                }
            })
            .expect("spawn spread thread");
        tx
    });
    let _ = tx.send((at, Arc::downgrade(task)));
}

fn task_main(task: Arc<Task>, mut regs: Regs, fp: Option<FpState>, near: Option<usize>) {
    let k = task.kernel.clone();
    // On the parent's CPU first (see NEAR_PARENT_NS); spread from `spread_at` on.
    let mut spread_at = near.map(|cpu| {
        k.platform.place_thread(Some(cpu));
        k.boot.elapsed().as_nanos() as u64 + NEAR_PARENT_NS
    });
    let mut pctx = match k.platform.new_context() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot create a context: {e}");
            group_exit(&k, &task.tg, signal::SIGKILL);
            exit_thread(&task, 0);
            return;
        }
    };
    *task.interrupter.lock() = Some(pctx.interrupter());
    task.acct.attach();
    super::acct::enter_mm(&task);
    super::set_current(Some(task.clone()));
    if let Some(fp) = fp {
        let _ = pctx.set_fp_state(&task.mm().aspace, &fp);
    }
    let mut restart: Option<Errno> = None;
    let mut exit_code = 0;
    // When application code last stopped, and the time blocked by then (ns).
    let mut last_t1 = k.boot.elapsed().as_nanos() as u64;
    // The last fault that found its page already mapped (see FaultError::AlreadyMapped).
    let mut last_fault: Option<u64> = None;
    loop {
        if task.killed.load(Ordering::Acquire) || task.tg.exiting.load(Ordering::Acquire) {
            break;
        }
        if task.tg.stopped.load(Ordering::Acquire) {
            wait_while_stopped(&task);
            continue;
        }
        if deliver(&task, &mut regs, pctx.as_mut(), &mut restart) {
            continue;
        }
        if let Some(e) = restart.take() {
            // Interrupted by nothing that ran a handler: restart the call, or resume it
            // through restart_syscall(2) from the state it saved.
            if e == ERESTARTSYS || e == ERESTARTNOINTR || e == ERESTARTNOHAND {
                regs.rip -= 2;
                regs.rax = regs.orig_rax;
            } else if e == ERESTART_RESTARTBLOCK {
                regs.rip -= 2;
                regs.rax = SYS_RESTART_SYSCALL;
            }
        }
        if let Some(m) = task.saved_mask.lock().take() {
            task.sigmask.store(m, Ordering::Release);
        }
        let aspace = task.mm().aspace.clone();
        let t0 = k.boot.elapsed().as_nanos() as u64;
        let sentry_ns = t0.saturating_sub(last_t1);
        task.acct.enter_app(t0, sentry_ns);
        let ev = pctx.switch(&aspace, &mut regs);
        let t1 = k.boot.elapsed().as_nanos() as u64;
        last_t1 = t1;
        if spread_at.is_some_and(|at| t1 >= at) {
            spread_at = None;
            k.platform.place_thread(None);
        }
        task.acct.leave_app(t0, t1);
        charge_cpu_timers(&task);
        match ev {
            Ok(Event::Syscall) => {
                last_fault = None;
                let nr = regs.orig_rax;
                let mut ctx = Ctx {
                    t: &task,
                    regs: &mut regs,
                    pctx: pctx.as_mut(),
                    exit: None,
                };
                let r = syscalls::dispatch(&mut ctx, nr);
                // SIGIO for what the call made ready, queued before it returns.
                crate::vfs::fasync::flush();
                if let Some(code) = ctx.exit {
                    exit_code = code;
                    break;
                }
                match r {
                    Ok(v) => regs.rax = v,
                    Err(e) => {
                        regs.rax = (-(e.0 as i64)) as u64;
                        if e.is_restart() {
                            restart = Some(e);
                        }
                    }
                }
            }
            Ok(Event::Fault { addr, access, .. }) => {
                task.acct.minflt.fetch_add(1, Ordering::Relaxed);
                let mm = task.mm();
                match mm.fault(addr, access) {
                    Ok(()) => {}
                    Err(FaultError::AlreadyMapped) if last_fault != Some(addr) => {
                        last_fault = Some(addr)
                    }
                    Err(FaultError::AlreadyMapped) => {
                        last_fault = None;
                        signal::force(&task, SigInfo::fault(signal::SIGSEGV, 2, addr));
                    }
                    Err(FaultError::Segv(code)) => {
                        signal::force(&task, SigInfo::fault(signal::SIGSEGV, code, addr))
                    }
                    Err(FaultError::Bus) => {
                        signal::force(&task, SigInfo::fault(signal::SIGBUS, 2, addr))
                    }
                    Err(FaultError::Oom) => {
                        tracing::warn!(pid = task.tgid(), "out of memory: killing the process");
                        k.klog.log(
                            super::klog::KERN,
                            super::klog::ERR,
                            format!(
                                "Out of memory: Killed process {} ({})",
                                task.tgid(),
                                String::from_utf8_lossy(&task.name.lock())
                            ),
                        );
                        group_exit(&k, &task.tg, signal::SIGKILL);
                    }
                }
            }
            Ok(Event::Signal(si)) => {
                // SAFETY: siginfo_t is 128 bytes of plain data.
                let raw: [u8; 128] = unsafe { std::mem::transmute(si.0) };
                signal::force(&task, SigInfo(raw));
            }
            Ok(Event::Interrupted) => {}
            Err(e) => {
                tracing::error!(pid = task.tgid(), "platform failure: {e}");
                group_exit(&k, &task.tg, signal::SIGKILL);
            }
        }
    }
    *task.interrupter.lock() = None;
    exit_thread(&task, exit_code);
    super::set_current(None);
    THREAD_CPU.with(|c| c.set(k.platform.thread_cpu()));
}

/// Sleep while the group is stopped. Only SIGCONT (or a kill) ends a stop: signals
/// that arrive meanwhile stay pending (they must not wake the thread, or it would spin).
fn wait_while_stopped(task: &Task) {
    let wq = &task.tg.stop_wq;
    wq.add(&task.waiter);
    loop {
        task.waiter.clear();
        if !task.tg.stopped.load(Ordering::Acquire)
            || task.killed.load(Ordering::Acquire)
            || task.tg.exiting.load(Ordering::Acquire)
        {
            break;
        }
        task.waiter.wait(None);
    }
    wq.remove(&task.waiter);
}

/// Deliver pending signals. Returns true if the loop should re-check state first
/// (the group is stopping or exiting).
fn deliver(
    task: &Arc<Task>,
    regs: &mut Regs,
    pctx: &mut dyn Context,
    restart: &mut Option<Errno>,
) -> bool {
    loop {
        let mask = task.sigmask.load(Ordering::Acquire);
        let info = task
            .pending
            .lock()
            .pop(mask)
            .or_else(|| task.tg.pending.lock().pop(mask));
        let Some(info) = info else { return false };
        let sig = info.signo();
        let act = task.tg.action(sig);
        if act.handler == signal::SIG_IGN {
            continue;
        }
        // init is immune to the default action of signals sent from inside the sandbox
        // (e.g. ones it had blocked and then unblocked), as in a pid namespace.
        if act.handler == signal::SIG_DFL
            && task.tgid() == 1
            && info.code() <= 0
            && sig != signal::SIGKILL
        {
            continue;
        }
        if act.handler == signal::SIG_DFL {
            match signal::default_action(sig) {
                Default_::Ignore | Default_::Cont => continue,
                Default_::Stop => {
                    // Job-control stops do nothing in an orphaned process group
                    // (nobody could continue it); SIGSTOP always stops.
                    if sig != signal::SIGSTOP
                        && super::jobctl::current_pgrp_orphaned(&task.kernel, task.tgid())
                    {
                        continue;
                    }
                    stop_group(&task.kernel, &task.tg, sig);
                    return true;
                }
                Default_::Term | Default_::Core => {
                    if matches!(
                        sig,
                        signal::SIGSEGV | signal::SIGBUS | signal::SIGILL | signal::SIGFPE
                    ) {
                        log_fatal(task, regs, &info);
                    }
                    let core = if signal::default_action(sig) == Default_::Core {
                        0x80
                    } else {
                        0
                    };
                    group_exit(&task.kernel, &task.tg, sig | core);
                    return true;
                }
            }
        }
        // A handler: fix up an interrupted system call first.
        if let Some(e) = restart.take() {
            let restart_it =
                e == ERESTARTNOINTR || (e == ERESTARTSYS && act.flags & signal::SA_RESTART != 0);
            if restart_it {
                regs.rip -= 2;
                regs.rax = regs.orig_rax;
            } else {
                regs.rax = (-(EINTR.0 as i64)) as u64;
            }
            if e == ERESTART_RESTARTBLOCK {
                *task.misc.restart.lock() = None;
            }
        }
        let old_mask = task.saved_mask.lock().take().unwrap_or(mask);
        let fp = pctx
            .fp_state(&task.mm().aspace)
            .unwrap_or_else(|_| platform::initial_fp_state());
        if signal::setup_frame(task, regs, &act, &info, old_mask, &fp).is_err() {
            signal::force(task, SigInfo::kernel(signal::SIGSEGV));
            let acts = task.tg.actions.lock().clone();
            acts.lock()[signal::SIGSEGV as usize].handler = signal::SIG_DFL;
            continue;
        }
        let mut newmask = old_mask | act.mask;
        if act.flags & signal::SA_NODEFER == 0 {
            newmask |= signal::bit(sig);
        }
        task.sigmask
            .store(newmask & !signal::UNBLOCKABLE, Ordering::Release);
        if act.flags & signal::SA_RESETHAND != 0 {
            let acts = task.tg.actions.lock().clone();
            acts.lock()[sig as usize] = signal::SigAction::default();
        }
        let _ = pctx.set_fp_state(&task.mm().aspace, &platform::initial_fp_state());
        return false;
    }
}

/// End every thread of the group with wait status `status` (a signal number, or
/// `code << 8` for exit_group). The first caller's status wins.
pub fn group_exit(k: &Kernel, tg: &Arc<ThreadGroup>, status: i32) {
    let threads: Vec<Arc<Task>> = {
        let mut t = k.table.lock();
        let Some(p) = t.procs.get_mut(&tg.tgid) else {
            return;
        };
        if p.group_exit.is_none() {
            p.group_exit = Some(status);
        }
        let ids = p.threads.clone();
        ids.iter().filter_map(|x| t.tasks.get(x).cloned()).collect()
    };
    tg.exiting.store(true, Ordering::Release);
    tg.stopped.store(false, Ordering::Release);
    tg.stop_wq.notify_all();
    for t in threads {
        t.killed.store(true, Ordering::Release);
        t.kick();
    }
}

fn notify_parent(k: &Kernel, tgid: i32, code: i32, status: i32) {
    let (parent, uid) = {
        let t = k.table.lock();
        let Some(p) = t.procs.get(&tgid) else { return };
        let Some(pp) = t.procs.get(&p.parent) else {
            return;
        };
        let uid = p
            .threads
            .first()
            .and_then(|x| t.tasks.get(x))
            .map(|x| x.creds().uid)
            .unwrap_or(0);
        (pp.tg.clone(), uid as i32)
    };
    let act = parent.action(signal::SIGCHLD);
    if (code == signal::CLD_STOPPED || code == signal::CLD_CONTINUED)
        && act.flags & signal::SA_NOCLDSTOP != 0
    {
        parent.child_wq.notify_all();
        return;
    }
    let mut info = SigInfo::new(signal::SIGCHLD, code);
    info.set_i32(16, tgid).set_i32(20, uid).set_i32(24, status);
    signal::send_to_group(k, &parent, info);
    parent.child_wq.notify_all();
}

pub fn stop_group(k: &Kernel, tg: &Arc<ThreadGroup>, sig: i32) {
    if tg.stopped.swap(true, Ordering::AcqRel) {
        return;
    }
    {
        let mut t = k.table.lock();
        if let Some(p) = t.procs.get_mut(&tg.tgid) {
            p.stop_report = Some((sig << 8) | 0x7f);
            p.cont_report = false;
        }
    }
    notify_parent(k, tg.tgid, signal::CLD_STOPPED, sig);
}

pub fn continue_group(k: &Kernel, tg: &Arc<ThreadGroup>) {
    if !tg.stopped.swap(false, Ordering::AcqRel) {
        return;
    }
    tg.stop_wq.notify_all();
    {
        let mut t = k.table.lock();
        if let Some(p) = t.procs.get_mut(&tg.tgid) {
            p.stop_report = None;
            p.cont_report = true;
        }
    }
    notify_parent(k, tg.tgid, signal::CLD_CONTINUED, signal::SIGCONT);
}

/// A dead process's System V IPC state: its semaphore undo adjustments are applied; its
/// shared memory attachments go, unless another process shares its memory (a vfork
/// parent).
fn release_sysv(k: &Kernel, task: &Arc<Task>, tgid: i32) {
    task.ns().ipc.sem.exit(tgid);
    let mm = task.mm();
    if !crate::ipc::shm::has_attachments(&mm) {
        return;
    }
    let others: Vec<Arc<Task>> = k
        .table
        .lock()
        .tasks
        .values()
        .filter(|x| x.tgid() != tgid)
        .cloned()
        .collect();
    if !others.iter().any(|x| Arc::ptr_eq(&x.mm(), &mm)) {
        crate::ipc::shm::detach_all(&mm, &task.ns().ipc.shm, tgid);
    }
}

/// A thread is done: clear_child_tid, vfork completion, and if it was the last thread
/// of its group, the process dies (zombie, reparenting, SIGCHLD).
pub fn exit_thread(task: &Arc<Task>, code: i32) {
    let k = task.kernel.clone();
    let ctid = task.clear_child_tid.swap(0, Ordering::AcqRel);
    if ctid != 0 && !task.tg.exiting.load(Ordering::Acquire) {
        let mm = task.mm();
        if mm.write_obj(ctid, &0u32).is_ok() {
            if let Ok(key) = super::futex::key(task, ctid, false) {
                let _ = k.futex.wake(key, 1, u32::MAX);
            }
        }
    }
    if let Some(v) = task.vfork.lock().take() {
        *v.done.lock() = true;
        v.wq.notify_all();
    }
    let tgid = task.tgid();
    super::acct::task_exit(task);
    let tid = task.tid();
    let mut pdeath: Vec<(Arc<Task>, i32)> = vec![];
    let (last, status) = {
        let mut t = k.table.lock();
        t.tasks.remove(&tid);
        let Some(p) = t.procs.get_mut(&tgid) else {
            return;
        };
        p.threads.retain(|x| *x != tid);
        let heir = p.threads.first().copied();
        let kids = p.children.clone();
        let r = (
            p.threads.is_empty(),
            p.group_exit.unwrap_or((code & 0xff) << 8),
        );
        // The children this thread created now belong to another thread of the group,
        // and get their PR_SET_PDEATHSIG signal: their "parent" is this thread.
        if let Some(heir) = heir {
            for c in kids {
                if let Some(cp) = t.procs.get_mut(&c) {
                    if cp.parent_thread == tid {
                        cp.parent_thread = heir;
                        pdeath.extend(pdeath_signals(&t, c));
                    }
                }
            }
        }
        r
    };
    if !last {
        for (t, sig) in pdeath {
            signal::send_to_task(&t, SigInfo::user(sig, signal::SI_USER, tgid, 0));
        }
        return;
    }
    // A session leader's death hangs up its controlling terminal (SIGHUP to the
    // foreground group), as on Linux.
    let is_leader = k
        .table
        .lock()
        .procs
        .get(&tgid)
        .is_some_and(|p| p.sid == tgid);
    if is_leader {
        crate::vfs::pty::session_leader_exited(&k, tgid);
    }
    // The process is dead: release its resources before telling the parent.
    task.files().clear();
    k.locks.release_all(tgid);
    release_sysv(&k, task, tgid);
    *task.tg.itimer_real.lock() = None;
    let creds = task.creds();
    let uid = creds.uid;
    let comm = task.name.lock().clone();
    let (parent_tg, death_sig, zombie_orphans, reaper_tg, hup_groups) = {
        let mut t = k.table.lock();
        let children = t
            .procs
            .get_mut(&tgid)
            .map(|p| {
                p.exit_uid = uid;
                p.exit_ids = (creds.euid, creds.egid);
                p.exit_comm = comm;
                std::mem::take(&mut p.children)
            })
            .unwrap_or_default();
        // Orphans go to the nearest live subreaper ancestor, else to init.
        let mut reaper = if tgid == 1 { 0 } else { 1 };
        let mut anc = t.procs.get(&tgid).map(|p| p.parent).unwrap_or(0);
        while anc > 1 {
            match t.procs.get(&anc) {
                // (A subreaper that is itself exiting has handed its children on.)
                Some(a) if a.subreaper && a.zombie.is_none() && !a.threads.is_empty() => {
                    reaper = anc;
                    break;
                }
                Some(a) => anc = a.parent,
                None => break,
            }
        }
        for ch in &children {
            pdeath.extend(pdeath_signals(&t, *ch));
        }
        let reaper_tg = t.procs.get(&reaper).map(|r| r.tg.clone());
        let reaper_thread = t
            .procs
            .get(&reaper)
            .and_then(|r| r.threads.first().copied())
            .unwrap_or(reaper);
        // Zombies among the orphans are announced to their new parent, which reaps
        // them at once if it ignores SIGCHLD: (pid, status, uid, group, signal).
        let mut zombie_orphans = vec![];
        let mut adopted = vec![];
        for c in &children {
            if let Some(cp) = t.procs.get_mut(c) {
                cp.parent = reaper;
                cp.parent_thread = reaper_thread;
                // The new parent is told with SIGCHLD, whatever the old exit signal.
                cp.exit_signal = signal::SIGCHLD;
                let mut autoreap = false;
                if let (Some(st), Some(rtg)) = (cp.zombie, &reaper_tg) {
                    let (reap, sig) = death_signal(rtg, signal::SIGCHLD);
                    zombie_orphans.push((*c, st, cp.exit_uid, cp.tg.clone(), sig));
                    autoreap = reap;
                }
                if autoreap {
                    t.procs.remove(c);
                } else {
                    adopted.push(*c);
                }
            }
        }
        // Groups orphaned by this exit: the children's (reparented away from us)
        // and our own (we may have been its last link to the session).
        let mut hup_groups: Vec<i32> = adopted
            .iter()
            .filter_map(|c| super::jobctl::orphaned_by(&t, *c, Some(tgid)))
            .collect();
        hup_groups.extend(super::jobctl::orphaned_by(&t, tgid, None));
        if let Some(r) = t.procs.get_mut(&reaper) {
            r.children.extend(adopted);
        }
        let p = t.procs.get(&tgid).expect("proc");
        let parent = p.parent;
        let exit_signal = p.exit_signal;
        let ptg = t.procs.get(&parent).map(|pp| pp.tg.clone());
        // Become a zombie (or go at once) in the same step that reads our parent, so
        // that a parent exiting meanwhile hands a zombie on to its own reaper.
        let mut death_sig = 0;
        if tgid != 1 {
            let (autoreap, sig) = match &ptg {
                Some(ptg) => death_signal(ptg, exit_signal),
                None => (true, 0),
            };
            death_sig = sig;
            if autoreap {
                t.procs.remove(&tgid);
                if let Some(pp) = t.procs.get_mut(&parent) {
                    pp.children.retain(|c| *c != tgid);
                }
            } else if let Some(p) = t.procs.get_mut(&tgid) {
                p.zombie = Some(status);
            }
        }
        (ptg, death_sig, zombie_orphans, reaper_tg, hup_groups)
    };
    for (t, sig) in pdeath {
        signal::send_to_task(&t, SigInfo::user(sig, signal::SI_USER, tgid, 0));
    }
    if let Some(rtg) = reaper_tg {
        for (c, st, cuid, ctg, sig) in zombie_orphans {
            ctg.exit_wq.notify_all();
            send_death_signal(&k, &rtg, c, &ctg, sig, st, cuid);
        }
        rtg.child_wq.notify_all();
    }
    super::jobctl::hangup_groups(&k, hup_groups);
    if tgid == 1 {
        // init is gone: everything else in the sandbox dies with it.
        let others: Vec<Arc<ThreadGroup>> = k
            .table
            .lock()
            .procs
            .values()
            .filter(|p| p.tg.tgid != 1 && p.zombie.is_none())
            .map(|p| p.tg.clone())
            .collect();
        for tg in others {
            group_exit(&k, &tg, signal::SIGKILL);
        }
        k.table.lock().procs.remove(&1);
        task.tg.exit_wq.notify_all();
        *k.init_status.lock() = Some(status);
        k.init_done.notify_all();
        return;
    }
    if parent_tg.is_none() {
        // Started by the runtime (`rvisor exec`): the runtime collects the status.
        k.exec_exits.lock().insert(tgid, status);
        k.exec_done.notify_all();
    }
    task.tg.exit_wq.notify_all();
    if let Some(ptg) = parent_tg {
        send_death_signal(&k, &ptg, tgid, &task.tg, death_sig, status, uid);
    }
}

/// The threads of process `pid` that asked for a signal when their parent dies.
fn pdeath_signals(tab: &super::Table, pid: i32) -> Vec<(Arc<Task>, i32)> {
    let Some(p) = tab.procs.get(&pid) else {
        return vec![];
    };
    p.threads
        .iter()
        .filter_map(|th| tab.tasks.get(th))
        .filter_map(|task| {
            let sig = task.pdeathsig.load(Ordering::Relaxed);
            (sig > 0).then(|| (task.clone(), sig))
        })
        .collect()
}

/// (si_code, si_status) of a SIGCHLD or waitid report for wait status `status`.
pub fn chld_code(status: i32) -> (i32, i32) {
    if status & 0x7f == 0 {
        (signal::CLD_EXITED, (status >> 8) & 0xff)
    } else if status & 0x80 != 0 {
        (signal::CLD_DUMPED, status & 0x7f)
    } else {
        (signal::CLD_KILLED, status & 0x7f)
    }
}

/// do_notify_parent's choice for a child whose exit signal is `sig`: (reap it at once,
/// the signal to send). A SIGCHLD child is reaped at once when the parent ignores
/// SIGCHLD (then no signal is sent) or set SA_NOCLDWAIT (its handler still runs).
fn death_signal(ptg: &ThreadGroup, sig: i32) -> (bool, i32) {
    let act = ptg.action(signal::SIGCHLD);
    if sig == signal::SIGCHLD {
        if act.handler == signal::SIG_IGN {
            return (true, 0);
        }
        if act.flags & signal::SA_NOCLDWAIT != 0 {
            return (true, sig);
        }
    }
    (false, sig)
}

/// Tell `ptg` that its child `pid` died with wait status `status`: signal `sig` (none
/// if 0) with the SIGCHLD siginfo, and a wake-up of its waiters.
fn send_death_signal(
    k: &Kernel,
    ptg: &Arc<ThreadGroup>,
    pid: i32,
    ctg: &ThreadGroup,
    sig: i32,
    status: i32,
    uid: u32,
) {
    if (1..=64).contains(&sig) {
        let (code, st) = chld_code(status);
        let u = *ctg.dead.lock();
        let (u, s) = (u.utime, u.stime);
        let mut info = SigInfo::new(sig, code);
        info.set_i32(16, pid)
            .set_i32(20, uid as i32)
            .set_i32(24, st)
            .set_u64(32, u / 10_000_000)
            .set_u64(40, s / 10_000_000);
        signal::send_to_group(k, ptg, info);
    }
    ptg.child_wq.notify_all();
}

/// The kernel log line Linux prints when a fault kills a process.
fn log_fatal(task: &Task, regs: &Regs, info: &SigInfo) {
    let comm = String::from_utf8_lossy(&task.name.lock()).into_owned();
    let pid = task.tid();
    let mm = task.mm();
    let where_ = {
        let inner = mm.inner.lock();
        crate::mm::Mm::find_vma(&inner, regs.rip)
            .map(|(s, v)| {
                let name = v.name.rsplit('/').next().unwrap_or("").to_string();
                format!(
                    " in {}[{:x}+{:x}]",
                    if name.is_empty() { "anon" } else { &name },
                    s,
                    v.end - s
                )
            })
            .unwrap_or_default()
    };
    let addr = u64::from_le_bytes(info.0[16..24].try_into().unwrap_or_default());
    let line = match info.signo() {
        signal::SIGSEGV => {
            // x86 page-fault error bits: 4 user mode, 1 protection violation.
            let error = 4 | u64::from(info.code() == 2);
            format!(
                "{comm}[{pid}]: segfault at {addr:x} ip {:016x} sp {:016x} error {error}{where_}",
                regs.rip, regs.rsp
            )
        }
        signal::SIGILL => format!(
            "traps: {comm}[{pid}] trap invalid opcode ip:{:x} sp:{:x} error:0{where_}",
            regs.rip, regs.rsp
        ),
        signal::SIGFPE => format!(
            "traps: {comm}[{pid}] trap divide error ip:{:x} sp:{:x} error:0{where_}",
            regs.rip, regs.rsp
        ),
        signal::SIGBUS => format!(
            "{comm}[{pid}]: bus error at {addr:x} ip {:016x} sp {:016x}{where_}",
            regs.rip, regs.rsp
        ),
        _ => return,
    };
    task.kernel
        .klog
        .log(super::klog::KERN, super::klog::INFO, line);
}

/// ITIMER_VIRTUAL counts user time, ITIMER_PROF user and system time; on expiry they
/// send SIGVTALRM and SIGPROF and reload from their interval. While one is armed, each
/// return from application code (at least every 10 ms: `cpu_timer_ticker`) charges
/// them with the task's CPU time since the last charge, read from its CPU clocks.
fn charge_cpu_timers(task: &Task) {
    if task.tg.cpu_itimers.lock().iter().all(|x| x.is_none()) {
        *task.acct.itimer_seen.lock() = None;
        return;
    }
    let u = super::acct::task_usage(task);
    let (user_ns, sys_ns) = {
        let mut seen = task.acct.itimer_seen.lock();
        let (pu, ps) = seen.unwrap_or((u.utime, u.stime));
        *seen = Some((u.utime, u.stime));
        (u.utime.saturating_sub(pu), u.stime.saturating_sub(ps))
    };
    let mut t = task.tg.cpu_itimers.lock();
    for (i, spent, sig) in [(0, user_ns, 26), (1, user_ns + sys_ns, 27)] {
        if let Some((left, interval)) = t[i] {
            if spent < left {
                t[i] = Some((left - spent, interval));
            } else {
                t[i] = if interval > 0 {
                    Some((interval, interval))
                } else {
                    None
                };
                signal::send_to_task(task, SigInfo::kernel(sig));
            }
        }
    }
}

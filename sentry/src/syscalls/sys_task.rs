//! Task system calls: clone/fork/vfork, execve, exit, wait, ids, sessions, prctl.

use super::*;
use crate::kernel::run;
use crate::kernel::signal::{self, SigAction};
use crate::kernel::{Creds, FsCtx, Kernel, Proc, ThreadGroup, VforkDone};
use crate::mm::Mm;
use crate::vfs::fdtable::FdTable;
use crate::waitq::{WaitQueue, Waiter};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3, a4) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4));
    Some(match nr {
        56 => clone(c, a0, a1, a2, a3, a4),
        57 => clone(c, signal::SIGCHLD as u64, 0, 0, 0, 0),
        58 => clone(
            c,
            CLONE_VM | CLONE_VFORK | signal::SIGCHLD as u64,
            0,
            0,
            0,
            0,
        ),
        435 => clone3(c, a0, a1),
        59 => execve(c, AT_FDCWD as u64, a0, a1, a2, 0),
        322 => execve(c, a0, a1, a2, a3, a4),
        60 => {
            c.exit = Some(a0 as i32);
            Ok(0)
        }
        231 => {
            run::group_exit(&c.t.kernel, &c.t.tg, ((a0 as i32) & 0xff) << 8);
            c.exit = Some(a0 as i32);
            Ok(0)
        }
        61 => wait4(c, a0 as i32, a1, a2 as u32, a3),
        247 => waitid(c, a0 as u32, a1 as i32, a2, a3 as u32, a4),
        39 => Ok(c.t.tgid() as u64),
        110 => Ok(c
            .t
            .kernel
            .table
            .lock()
            .procs
            .get(&c.t.tgid())
            .map(|p| p.parent)
            .unwrap_or(0) as u64),
        186 => Ok(c.t.tid() as u64),
        218 => {
            c.t.clear_child_tid.store(a0, Ordering::Release);
            Ok(c.t.tid() as u64)
        }
        273 => {
            if a1 != 24 {
                return Some(Err(EINVAL));
            }
            c.t.robust_list.store(a0, Ordering::Release);
            Ok(0)
        }
        158 => arch_prctl(c, a0, a1),
        102 => Ok(c.t.creds().uid_out(c.t.creds().uid) as u64),
        104 => Ok(c.t.creds().gid_out(c.t.creds().gid) as u64),
        107 => Ok(c.t.creds().uid_out(c.t.creds().euid) as u64),
        108 => Ok(c.t.creds().gid_out(c.t.creds().egid) as u64),
        105 => setresuid(c, a0 as u32, a0 as u32, u32::MAX, true),
        106 => setresgid(c, a0 as u32, a0 as u32, u32::MAX, true),
        113 => setresuid(c, a0 as u32, a1 as u32, u32::MAX, false),
        114 => setresgid(c, a0 as u32, a1 as u32, u32::MAX, false),
        117 => setresuid(c, a0 as u32, a1 as u32, a2 as u32, false),
        119 => setresgid(c, a0 as u32, a1 as u32, a2 as u32, false),
        118 => getres(c, a0, a1, a2, true),
        120 => getres(c, a0, a1, a2, false),
        122 | 123 => Ok(if nr == 122 {
            c.t.creds().uid_out(c.t.creds().fsuid)
        } else {
            c.t.creds().gid_out(c.t.creds().fsgid)
        } as u64),
        115 => getgroups(c, a0, a1),
        116 => setgroups(c, a0, a1),
        109 => setpgid(c, a0 as i32, a1 as i32),
        121 => getpgid(c, a0 as i32),
        111 => getpgid(c, 0),
        112 => setsid(c),
        124 => getsid(c, a0 as i32),
        _ => return None,
    })
}

/// clone3(2): struct clone_args, as Linux 6.8 knows it (88 bytes: up to `cgroup`).
fn clone3(c: &mut Ctx, args: u64, size: u64) -> SysResult {
    const VER0: u64 = 64;
    const VER2: u64 = 88;
    const CLONE_DETACHED: u64 = 0x40_0000;
    const CLONE_NEWTIME: u64 = 0x80;
    if size > 4096 {
        return Err(E2BIG);
    }
    if size < VER0 {
        return Err(EINVAL);
    }
    // copy_struct_from_user: a larger struct is fine if the part we do not know is 0.
    let raw = c.t.mm().read_vec(args, size as usize)?;
    if raw.len() > VER2 as usize && raw[VER2 as usize..].iter().any(|b| *b != 0) {
        return Err(E2BIG);
    }
    let mut a = [0u64; 11];
    for (i, v) in a.iter_mut().enumerate() {
        if let Some(b) = raw.get(i * 8..i * 8 + 8) {
            *v = u64::from_le_bytes(b.try_into().expect("8"));
        }
    }
    let [flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup] =
        a;
    if set_tid_size > 32 || (set_tid == 0) != (set_tid_size == 0) {
        return Err(EINVAL);
    }
    if exit_signal > 64 {
        return Err(EINVAL);
    }
    if flags & CLONE_INTO_CGROUP != 0 && (cgroup > i32::MAX as u64 || size < VER2) {
        return Err(EINVAL);
    }
    // clone3_args_valid: no unknown flags, no CLONE_DETACHED, no signal in the flags.
    if flags & !(0xffff_ffff | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP) != 0
        || flags & (CLONE_DETACHED | (0xff & !CLONE_NEWTIME)) != 0
        || flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND) == CLONE_SIGHAND | CLONE_CLEAR_SIGHAND
        || (flags & (CLONE_THREAD | CLONE_PARENT) != 0 && exit_signal != 0)
        || (stack == 0) != (stack_size == 0)
        || (stack != 0 && stack.checked_add(stack_size).is_none())
    {
        return Err(EINVAL);
    }
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 && pidfd == parent_tid {
        return Err(EINVAL);
    }
    let tid = match set_tid_size {
        0 => None,
        // One pid namespace level: at most one pid to choose.
        1 => Some(c.t.mm().read_obj::<i32>(set_tid)?),
        _ => return Err(EINVAL),
    };
    if flags & CLONE_NEWTIME != 0 {
        c.t.kernel
            .report_unimplemented(435, "clone3(CLONE_NEWTIME)", c.t.tgid());
        return Err(EINVAL);
    }
    if flags & CLONE_INTO_CGROUP != 0 {
        // There is no cgroup file system in the sandbox, so no descriptor can name a
        // cgroup directory (what Linux says of any other descriptor).
        return Err(EBADF);
    }
    let sp = if stack != 0 { stack + stack_size } else { 0 };
    do_clone(
        c,
        CloneArgs {
            flags: flags | exit_signal,
            stack: sp,
            ptid: parent_tid,
            ctid: child_tid,
            tls,
            pidfd,
            set_tid: tid,
        },
    )
}

/// clone(2): CLONE_PIDFD returns the pidfd through `ptid`, so it cannot be combined
/// with CLONE_PARENT_SETTID.
pub fn clone(c: &mut Ctx, flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> SysResult {
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 {
        return Err(EINVAL);
    }
    // The upper 32 bits are not flags of the legacy call.
    do_clone(
        c,
        CloneArgs {
            flags: flags & 0xffff_ffff,
            stack,
            ptid,
            ctid,
            tls,
            pidfd: ptid,
            set_tid: None,
        },
    )
}

struct CloneArgs {
    /// Flags, with the exit signal in the low byte.
    flags: u64,
    stack: u64,
    ptid: u64,
    ctid: u64,
    tls: u64,
    /// Where CLONE_PIDFD stores the pidfd (an int).
    pidfd: u64,
    /// clone3's set_tid: the pid the child must get.
    set_tid: Option<i32>,
}

/// RLIMIT_NPROC (Linux's copy_process): a new task of a real user who already has
/// that many is EAGAIN, except for root and holders of CAP_SYS_RESOURCE or CAP_SYS_ADMIN.
fn nproc_check(t: &Task) -> KResult<()> {
    const RLIMIT_NPROC: usize = 6;
    let lim = t.rlimit(RLIMIT_NPROC).0;
    let cr = t.creds();
    if lim == u64::MAX
        || cr.uid == 0
        || cr.has_cap(crate::kernel::cap::SYS_RESOURCE)
        || cr.has_cap(crate::kernel::cap::SYS_ADMIN)
    {
        return Ok(());
    }
    let tasks: Vec<Arc<Task>> = t.kernel.table.lock().tasks.values().cloned().collect();
    let mine = tasks.iter().filter(|x| x.creds.lock().uid == cr.uid);
    if mine.count() as u64 >= lim {
        return Err(EAGAIN);
    }
    Ok(())
}

fn do_clone(c: &mut Ctx, args: CloneArgs) -> SysResult {
    let CloneArgs {
        flags,
        stack,
        ptid,
        ctid,
        tls,
        pidfd,
        set_tid,
    } = args;
    if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0
        || flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0
    {
        return Err(EINVAL);
    }
    const CLONE_DETACHED: u64 = 0x40_0000;
    if flags & CLONE_PIDFD != 0 && flags & (CLONE_THREAD | CLONE_DETACHED) != 0 {
        return Err(EINVAL);
    }
    // init may not create siblings (they would have no one to reap them).
    if flags & CLONE_PARENT != 0 && c.t.tgid() == 1 {
        return Err(EINVAL);
    }
    // Namespaces (kernel::ns): CLONE_NEWNS copies the mount namespace with the fs
    // context, so not with CLONE_FS. (clone3's CLONE_NEWTIME is refused in clone3.)
    const CLONE_NEWNS: u64 = 0x2_0000;
    if flags & CLONE_NEWNS != 0 && flags & CLONE_FS != 0 {
        return Err(EINVAL);
    }
    let ns_flags = flags & 0x7e02_0000;
    crate::kernel::ns::check_clone(&c.t.creds(), flags, |what| {
        c.t.kernel
            .report_unimplemented(56, &format!("clone({what})"), c.t.tgid())
    })?;
    nproc_check(c.t)?;
    let (creds, nsset) = crate::kernel::ns::for_new(&c.t.creds(), &c.t.ns(), ns_flags)?;
    let k = c.t.kernel.clone();
    let t = c.t;
    let tid = match set_tid {
        None => k.table.lock().alloc_pid(),
        Some(n) => {
            if !(1..4_194_304).contains(&n) {
                return Err(EINVAL);
            }
            let cr = t.creds();
            if !cr.has_cap(40) && !cr.has_cap(21) {
                return Err(EPERM);
            }
            let tab = k.table.lock();
            if tab.tasks.contains_key(&n)
                || tab.procs.contains_key(&n)
                || tab.procs.values().any(|x| x.pgid == n || x.sid == n)
            {
                return Err(EEXIST);
            }
            n
        }
    };
    let mm = if flags & CLONE_VM != 0 {
        t.mm()
    } else {
        let aspace = k.platform.new_address_space().map_err(|e| {
            tracing::warn!("new address space: {e}");
            EAGAIN
        })?;
        let _ = aspace.set_name(&t.name.lock());
        // Pages copied at once only from a single-threaded parent: no other thread
        // writes them during the copy.
        let alone = k
            .table
            .lock()
            .procs
            .get(&t.tgid())
            .is_some_and(|p| p.threads.len() == 1);
        Arc::new(t.mm().fork(aspace, alone.then_some(c.regs.rsp))?)
    };
    // Written by the child before it runs; Linux ignores a bad address here.
    if flags & CLONE_CHILD_SETTID != 0 {
        let _ = mm.write_obj(ctid, &tid);
    }
    let tg = if flags & CLONE_THREAD != 0 {
        t.tg.clone()
    } else {
        let acts = if flags & CLONE_SIGHAND != 0 {
            t.tg.actions.lock().clone()
        } else {
            let mut a = *t.tg.actions.lock().lock();
            if flags & CLONE_CLEAR_SIGHAND != 0 {
                // flush_signal_handlers: ignored signals stay ignored.
                for x in a.iter_mut() {
                    *x = SigAction {
                        handler: if x.handler == signal::SIG_IGN {
                            signal::SIG_IGN
                        } else {
                            signal::SIG_DFL
                        },
                        ..SigAction::default()
                    };
                }
            }
            Arc::new(Mutex::new(a))
        };
        ThreadGroup::new(tid, acts, *t.tg.rlimits.lock())
    };
    let fs = if flags & CLONE_NEWNS != 0 {
        Arc::new(t.fsctx().copy_new_ns(&creds.user_ns()))
    } else if flags & CLONE_FS != 0 {
        t.fsctx()
    } else {
        Arc::new(t.fsctx().copy())
    };
    let files = if flags & CLONE_FILES != 0 {
        t.files()
    } else {
        Arc::new(t.files().fork())
    };
    let vfork = if flags & CLONE_VFORK != 0 {
        Some(Arc::new(VforkDone {
            done: Mutex::new(false),
            wq: WaitQueue::default(),
        }))
    } else {
        None
    };
    let child = Arc::new(Task {
        tid: AtomicI32::new(tid),
        tg: tg.clone(),
        kernel: k.clone(),
        mm: Mutex::new(mm),
        fs: Mutex::new(fs),
        files: Mutex::new(files),
        creds: Mutex::new(creds),
        sigmask: AtomicU64::new(t.sigmask.load(Ordering::Acquire)),
        real_blocked: AtomicU64::new(0),
        ioprio: AtomicU32::new(t.ioprio.load(Ordering::Relaxed)),
        saved_mask: Mutex::new(None),
        pending: Mutex::new(Default::default()),
        altstack: Mutex::new(if flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 {
            (0, 0, 2)
        } else {
            *t.altstack.lock()
        }),
        waiter: Arc::new(Waiter::default()),
        interrupter: Mutex::new(None),
        clear_child_tid: AtomicU64::new(if flags & CLONE_CHILD_CLEARTID != 0 {
            ctid
        } else {
            0
        }),
        robust_list: AtomicU64::new(0),
        name: Mutex::new(t.name.lock().clone()),
        killed: AtomicBool::new(false),
        pdeathsig: AtomicI32::new(0),
        no_new_privs: AtomicBool::new(t.no_new_privs.load(Ordering::Relaxed)),
        affinity: AtomicU64::new(t.affinity.load(Ordering::Relaxed)),
        nice: AtomicI32::new(t.nice.load(Ordering::Relaxed)),
        sched_policy: AtomicU32::new(t.sched_policy.load(Ordering::Relaxed)),
        vfork: Mutex::new(vfork.clone()),
        start: Instant::now(),
        acct: Default::default(),
        misc: crate::kernel::TaskMisc::inherit(&t.misc),
    });
    *child.misc.ns.lock() = nsset;
    let mut regs = *c.regs;
    regs.rax = 0;
    if stack != 0 {
        regs.rsp = stack;
    }
    if flags & CLONE_SETTLS != 0 {
        regs.fs_base = tls;
    }
    let fp = c.pctx.fp_state(&t.mm().aspace).ok();
    // The pidfd goes into our table after the child's copy of it was made.
    let pidfd_no = if flags & CLONE_PIDFD != 0 {
        let f = crate::vfs::pidfd::open_file(&k, &tg, false);
        let lim = t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
        let fd = t.files().install(f, true, 0, lim)?;
        if let Err(e) = t.mm().write_obj(pidfd, &fd) {
            t.files().remove(fd);
            return Err(e);
        }
        Some(fd)
    } else {
        None
    };
    {
        let mut tab = k.table.lock();
        let me = t.tgid();
        // The pid is taken only now: a clone3 set_tid may have claimed it meanwhile.
        let taken = tab.tasks.contains_key(&tid) || tab.procs.contains_key(&tid);
        if tg.exiting.load(Ordering::Acquire) || taken {
            drop(tab);
            if let Some(fd) = pidfd_no {
                t.files().remove(fd);
            }
            return Err(if taken && set_tid.is_some() {
                EEXIST
            } else {
                EAGAIN
            });
        }
        if flags & CLONE_THREAD != 0 {
            tab.procs.get_mut(&me).ok_or(ESRCH)?.threads.push(tid);
        } else {
            let (parent, pgid, sid, parent_thread, my_exit_signal) = {
                let p = tab.procs.get(&me).ok_or(ESRCH)?;
                (
                    if flags & CLONE_PARENT != 0 {
                        p.parent
                    } else {
                        me
                    },
                    p.pgid,
                    p.sid,
                    p.parent_thread,
                    p.exit_signal,
                )
            };
            let name = tab
                .procs
                .get(&me)
                .map(|p| p.cmdline_name.clone())
                .unwrap_or_default();
            tab.procs.insert(
                tid,
                Proc {
                    tg: tg.clone(),
                    parent,
                    children: vec![],
                    threads: vec![tid],
                    pgid,
                    sid,
                    exit_signal: if flags & CLONE_PARENT != 0 {
                        my_exit_signal
                    } else {
                        (flags & 0xff) as i32
                    },
                    zombie: None,
                    group_exit: None,
                    stop_report: None,
                    cont_report: false,
                    subreaper: false,
                    cmdline_name: name,
                    parent_thread: if flags & CLONE_PARENT != 0 {
                        parent_thread
                    } else {
                        t.tid()
                    },
                    execed: false,
                    exit_uid: 0,
                    exit_ids: (0, 0),
                    exit_comm: vec![],
                },
            );
            if let Some(pp) = tab.procs.get_mut(&parent) {
                pp.children.push(tid);
            }
        }
        tab.tasks.insert(tid, child.clone());
    }
    if flags & CLONE_THREAD == 0 {
        crate::vfs::pty::forked(t, tid, &tg);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        // In the parent only (after the child's copy of memory was made); Linux
        // ignores a bad address here.
        let _ = t.mm().write_obj(ptid, &tid);
    }
    run::start(child, regs, fp, k.platform.thread_cpu());
    if let Some(v) = vfork {
        let _ = t.block_on(&[&v.wq], None, || {
            if *v.done.lock() || t.killed.load(Ordering::Acquire) {
                Some(Ok(()))
            } else {
                None
            }
        });
        // Only a fatal signal ends the wait early; otherwise wait on.
        while !*v.done.lock()
            && !t.killed.load(Ordering::Acquire)
            && !t.tg.exiting.load(Ordering::Acquire)
        {
            let w = Waiter::default();
            let _ = w.wait(Some(Instant::now() + std::time::Duration::from_millis(5)));
        }
    }
    Ok(tid as u64)
}

/// Create the sandbox's first process (pid 1) running `argv[0]`.
#[allow(clippy::too_many_arguments)]
pub fn new_init(
    k: &Arc<Kernel>,
    root: crate::vfs::Path,
    cwd: crate::vfs::Path,
    files: FdTable,
    exe: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    creds: Creds,
    umask: u32,
) -> Result<(), (Errno, String)> {
    let o = ProcOpts {
        umask,
        ..Default::default()
    };
    new_process(k, true, root, cwd, files, exe, argv, envp, creds, &o).map(|_| ())
}

/// What else a process started from nothing gets (the OCI process's settings).
#[derive(Default, Clone)]
pub struct ProcOpts {
    pub umask: u32,
    /// (RLIMIT_* number, soft, hard), over the inherited defaults.
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privs: bool,
}

/// Start a process from nothing: init (pid 1), or (`init` false) a process the
/// runtime executes in the running sandbox (`rvisor exec`): it has no parent in the
/// sandbox, leads its own session, and its exit status goes to `Kernel::exec_exits`.
/// Returns its pid.
#[allow(clippy::too_many_arguments)]
pub fn new_process(
    k: &Arc<Kernel>,
    init: bool,
    root: crate::vfs::Path,
    cwd: crate::vfs::Path,
    files: FdTable,
    exe: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    creds: Creds,
    o: &ProcOpts,
) -> Result<i32, (Errno, String)> {
    let umask = o.umask;
    let mut rlimits = crate::kernel::default_rlimits();
    for (res, soft, hard) in &o.rlimits {
        if let Some(r) = rlimits.get_mut(*res as usize) {
            *r = (*soft, *hard);
        }
    }
    let aspace = k
        .platform
        .new_address_space()
        .map_err(|e| (EAGAIN, format!("cannot create the address space: {e}")))?;
    let acts: [SigAction; 65] = [SigAction::default(); 65];
    let pid = {
        let mut tab = k.table.lock();
        let pid = tab.alloc_pid();
        if init {
            debug_assert_eq!(pid, 1);
        }
        pid
    };
    let tg = ThreadGroup::new(pid, Arc::new(Mutex::new(acts)), rlimits);
    let task = Arc::new(Task {
        tid: AtomicI32::new(pid),
        tg: tg.clone(),
        kernel: k.clone(),
        mm: Mutex::new(Arc::new(Mm::new(aspace))),
        fs: Mutex::new(Arc::new(FsCtx {
            cwd: Mutex::new(cwd),
            root: Mutex::new(root),
            umask: AtomicU32::new(umask & 0o777),
            mounts: Mutex::new(k.mounts.clone()),
        })),
        files: Mutex::new(Arc::new(files)),
        creds: Mutex::new(creds),
        sigmask: AtomicU64::new(0),
        real_blocked: AtomicU64::new(0),
        ioprio: AtomicU32::new(0),
        saved_mask: Mutex::new(None),
        pending: Mutex::new(Default::default()),
        altstack: Mutex::new((0, 0, 2)),
        waiter: Arc::new(Waiter::default()),
        interrupter: Mutex::new(None),
        clear_child_tid: AtomicU64::new(0),
        robust_list: AtomicU64::new(0),
        name: Mutex::new(vec![]),
        killed: AtomicBool::new(false),
        pdeathsig: AtomicI32::new(0),
        no_new_privs: AtomicBool::new(o.no_new_privs),
        affinity: AtomicU64::new(if k.ncpus >= 64 {
            u64::MAX
        } else {
            (1u64 << k.ncpus) - 1
        }),
        nice: AtomicI32::new(0),
        sched_policy: AtomicU32::new(0),
        vfork: Mutex::new(None),
        start: Instant::now(),
        acct: Default::default(),
        misc: crate::kernel::TaskMisc::new(k),
    });
    {
        let mut tab = k.table.lock();
        tab.tasks.insert(pid, task.clone());
        tab.procs.insert(
            pid,
            Proc {
                tg,
                parent: 0,
                children: vec![],
                threads: vec![pid],
                pgid: pid,
                sid: pid,
                exit_signal: signal::SIGCHLD,
                zombie: None,
                group_exit: None,
                stop_report: None,
                cont_report: false,
                subreaper: false,
                cmdline_name: vec![],
                parent_thread: 0,
                execed: true,
                exit_uid: 0,
                exit_ids: (0, 0),
                exit_comm: vec![],
            },
        );
    }
    // Load the program from a thread of the pool (the platform maps from there).
    let (tx, rx) = std::sync::mpsc::channel();
    let t2 = task.clone();
    std::thread::spawn(move || {
        let _ = tx.send(());
        let _ = t2;
    });
    let _ = rx.recv();
    let path = exe;
    let regs = exec_image(&task, &path, argv, envp)
        .map_err(|e| (e, String::from_utf8_lossy(&path).into_owned()));
    match regs {
        Ok(r) => {
            run::start(task, r, Some(platform::initial_fp_state()), None);
            Ok(pid)
        }
        Err(e) => {
            let mut tab = k.table.lock();
            tab.procs.remove(&pid);
            tab.tasks.remove(&pid);
            Err(e)
        }
    }
}

/// Resolve, load and set up `path` in a fresh address space; returns the registers.
/// The caller's old image is untouched until this succeeds.
fn exec_image(
    t: &Arc<Task>,
    path: &[u8],
    mut argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> KResult<platform::Regs> {
    let k = t.kernel.clone();
    let root = t.fsctx().root.lock().clone();
    let cwd = t.fsctx().cwd.lock().clone();
    let creds = t.creds();
    let mounts = t.mounts();
    let walk = crate::vfs::Walk {
        root: &root,
        creds: &creds,
        mounts: &mounts,
        task: t,
    };
    // comm is the last component of the path as given (a symlink's name, a script's).
    let comm = path.rsplit(|b| *b == b'/').next().unwrap_or(path).to_vec();
    let mut path = path.to_vec();
    let mut depth = 0;
    let (file, fpath) = loop {
        let p = walk.walk(&cwd, &path, true)?;
        let st = p.dentry.inode.stat();
        if st.is_dir() {
            return Err(EACCES);
        }
        if !st.is_reg() || !crate::vfs::may_access(&st, &creds, 1) {
            return Err(EACCES);
        }
        if p.mnt.flags() & crate::vfs::MS_NOEXEC != 0 {
            return Err(EACCES);
        }
        let ops = p.dentry.inode.clone().open(0)?;
        let f = crate::vfs::OpenFile::new(ops, Some(p.clone()), 0);
        crate::vfs::inotify::path_event(&p, crate::vfs::inotify::IN_OPEN);
        let head = crate::loader::head(t, &f)?;
        if head.starts_with(b"#!") {
            depth += 1;
            if depth > 4 {
                return Err(ELOOP);
            }
            let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
            let line = &head[2..line_end];
            let line: Vec<u8> = line
                .iter()
                .copied()
                .skip_while(|b| *b == b' ' || *b == b'\t')
                .collect();
            let mut parts = line.splitn(2, |b| *b == b' ' || *b == b'\t');
            let interp = parts.next().unwrap_or_default().to_vec();
            if interp.is_empty() {
                return Err(ENOEXEC);
            }
            let arg = parts
                .next()
                .map(|a| a.trim_ascii().to_vec())
                .filter(|a| !a.is_empty());
            let mut nargv = vec![interp.clone()];
            nargv.extend(arg);
            nargv.push(path.clone());
            nargv.extend(argv.into_iter().skip(1));
            argv = nargv;
            path = interp;
            continue;
        }
        break (f, p);
    };
    let aspace = k.platform.new_address_space().map_err(|_| ENOMEM)?;
    let mm = Arc::new(Mm::new(aspace));
    let name = fpath.to_bytes(&root);
    let main = crate::loader::load_elf(t, &mm, &file, &name, true)?;
    let (entry, interp_base) = match &main.interp {
        Some(ip) => {
            let ipath = walk.walk(&cwd, ip, true)?;
            let iops = ipath.dentry.inode.clone().open(0)?;
            let ifile = crate::vfs::OpenFile::new(iops, Some(ipath.clone()), 0);
            crate::vfs::inotify::path_event(&ipath, crate::vfs::inotify::IN_OPEN);
            let iname = ipath.to_bytes(&root);
            let im = crate::loader::load_elf(t, &mm, &ifile, &iname, false)?;
            (im.entry, im.base)
        }
        None => (main.entry, 0),
    };
    {
        let mut inner = mm.inner.lock();
        inner.brk_start = main.brk;
        inner.brk = main.brk;
        inner.exe = name.clone();
    }
    let sp = crate::loader::setup_stack(t, &mm, &argv, &envp, &path, &main, interp_base, &creds)?;
    // Point of no return: install the new image.
    let mut regs = platform::initial_regs();
    regs.rip = entry;
    regs.rsp = sp;
    crate::kernel::acct::leave_mm(t);
    *t.mm.lock() = mm;
    crate::kernel::acct::enter_mm(t);
    *t.name.lock() = comm.iter().take(15).copied().collect();
    // The host process holding the new image goes by its name too (host ps, docker top).
    let _ = t.mm().aspace.set_name(&t.name.lock());
    if let Some(p) = k.table.lock().procs.get_mut(&t.tgid()) {
        p.cmdline_name = argv.first().cloned().unwrap_or_default();
        p.execed = true;
        // de_thread: "we have changed execution domain": report to the parent with
        // SIGCHLD from now on, whatever clone asked for.
        p.exit_signal = signal::SIGCHLD;
    }
    Ok(regs)
}

fn read_strv(c: &Ctx, p: u64) -> KResult<Vec<Vec<u8>>> {
    let mut v = vec![];
    if p == 0 {
        return Ok(v);
    }
    let mm = c.t.mm();
    let mut total = 0;
    for i in 0.. {
        let s = mm.read_u64(p + i * 8)?;
        if s == 0 {
            break;
        }
        let st = mm
            .read_cstr(s, 128 << 10)
            .map_err(|e| if e == ENAMETOOLONG { E2BIG } else { e })?;
        total += st.len() + 1;
        if total > 2 << 20 {
            return Err(E2BIG);
        }
        v.push(st);
    }
    Ok(v)
}

fn execve(c: &mut Ctx, dirfd: u64, pathp: u64, argvp: u64, envpp: u64, flags: u64) -> SysResult {
    let path = c.cstr(pathp)?;
    let argv = read_strv(c, argvp)?;
    let envp = read_strv(c, envpp)?;
    if path.is_empty() && flags & AT_EMPTY_PATH == 0 {
        return Err(ENOENT);
    }
    let full = if path.is_empty() && dirfd as i32 != AT_FDCWD {
        // fexecve: execveat(fd, "", ..., AT_EMPTY_PATH) runs the file `fd` names.
        let f = c.fd(dirfd)?;
        let p = f.path.clone().ok_or(EACCES)?;
        let root = c.t.fsctx().root.lock().clone();
        p.to_bytes(&root)
    } else if dirfd as i32 != AT_FDCWD && path.first() != Some(&b'/') {
        let base = c.start(dirfd, &path)?;
        let root = c.t.fsctx().root.lock().clone();
        let mut b = base.to_bytes(&root);
        if !path.is_empty() {
            b.push(b'/');
            b.extend(&path);
        }
        b
    } else {
        path
    };
    let t = c.t.clone();
    // Other threads die first (de_thread); then the new image replaces ours.
    kill_other_threads(&t)?;
    let regs = exec_image(&t, &full, argv, envp)?;
    t.creds.lock().apply_exec();
    if let Some(v) = t.vfork.lock().take() {
        *v.done.lock() = true;
        v.wq.notify_all();
    }
    // Unshare and close the descriptor table, reset handled signals.
    let files = Arc::new(t.files().fork());
    files.close_on_exec();
    *t.files.lock() = files;
    {
        let old = *t.tg.actions.lock().lock();
        let mut new = [SigAction::default(); 65];
        for (i, a) in old.iter().enumerate() {
            if a.handler == signal::SIG_IGN {
                new[i].handler = signal::SIG_IGN;
            }
        }
        *t.tg.actions.lock() = Arc::new(Mutex::new(new));
    }
    *t.altstack.lock() = (0, 0, 2);
    t.clear_child_tid.store(0, Ordering::Release);
    // POSIX timers do not survive exec.
    for (_, tm) in t.tg.timers.lock().drain() {
        tm.state.lock().deleted = true;
    }
    *c.regs = regs;
    let _ = c
        .pctx
        .set_fp_state(&t.mm().aspace, &platform::initial_fp_state());
    Ok(0)
}

fn kill_other_threads(t: &Arc<Task>) -> KResult<()> {
    let k = &t.kernel;
    let others: Vec<Arc<Task>> = {
        let tab = k.table.lock();
        let p = tab.procs.get(&t.tgid()).ok_or(ESRCH)?;
        p.threads
            .iter()
            .filter(|x| **x != t.tid())
            .filter_map(|x| tab.tasks.get(x).cloned())
            .collect()
    };
    if others.is_empty() {
        return Ok(());
    }
    for o in &others {
        o.killed.store(true, Ordering::Release);
        o.clear_child_tid.store(0, Ordering::Release);
        o.kick();
    }
    loop {
        let n = k
            .table
            .lock()
            .procs
            .get(&t.tgid())
            .map(|p| p.threads.len())
            .unwrap_or(1);
        if n <= 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The exec'ing thread takes the group leader's id.
    let mut tab = k.table.lock();
    let old = t.tid();
    if old != t.tgid() {
        tab.tasks.remove(&old);
        t.tid.store(t.tgid(), Ordering::Release);
        tab.tasks.insert(t.tgid(), t.clone());
        let kids = match tab.procs.get_mut(&t.tgid()) {
            Some(p) => {
                p.threads = vec![t.tgid()];
                p.children.clone()
            }
            None => vec![],
        };
        for c in kids {
            if let Some(cp) = tab.procs.get_mut(&c) {
                if cp.parent_thread == old {
                    cp.parent_thread = t.tgid();
                }
            }
        }
    }
    Ok(())
}

const WNOHANG: u32 = 1;
const WSTOPPED: u32 = 2;
const WEXITED: u32 = 4;
const WCONTINUED: u32 = 8;
const WNOWAIT: u32 = 0x0100_0000;
const WNOTHREAD: u32 = 0x2000_0000;
const WALL: u32 = 0x4000_0000;
const WCLONE: u32 = 0x8000_0000;

/// Which children a wait call is about.
enum WaitSel {
    Any,
    Pid(i32),
    Pgid(i32),
    /// The process a pidfd refers to (not a pid: that may have been reused).
    Process(Arc<ThreadGroup>),
}

/// What a wait call found: (pid, wait status, kind: 0 exited, 1 stopped, 2 continued,
/// the child's real uid, the child's resource usage for the rusage argument).
type Found = (i32, i32, i32, u32, crate::kernel::acct::Usage);

/// Linux's do_wait over our children: the first child with something to report that
/// `options` ask for (zombies are reaped unless `peek`). Ok(None): there are children
/// that may yet report; ECHILD: there are none.
fn find_child(c: &Ctx, sel: &WaitSel, options: u32, peek: bool) -> KResult<Option<Found>> {
    let k = &c.t.kernel;
    let me = c.t.tgid();
    let my_tid = c.t.tid();
    let mut tab = k.table.lock();
    let children = tab
        .procs
        .get(&me)
        .map(|p| p.children.clone())
        .unwrap_or_default();
    let mut any = false;
    for ch in &children {
        let Some(p) = tab.procs.get(ch) else {
            continue;
        };
        let eligible = match sel {
            WaitSel::Any => true,
            WaitSel::Pid(x) => ch == x,
            WaitSel::Pgid(x) => p.pgid == *x,
            WaitSel::Process(tg) => Arc::ptr_eq(&p.tg, tg),
        };
        if !eligible {
            continue;
        }
        if options & WNOTHREAD != 0 && p.parent_thread != my_tid {
            continue;
        }
        // A "clone" child (one that reports with a signal other than SIGCHLD) is seen
        // only with __WCLONE, the others only without it; __WALL sees both.
        if options & WALL == 0 && ((p.exit_signal != signal::SIGCHLD) != (options & WCLONE != 0)) {
            continue;
        }
        if let Some(st) = p.zombie {
            // A zombie can only be waited for as an exit.
            if options & WEXITED == 0 {
                continue;
            }
            let uid = p.exit_uid;
            let ctg = p.tg.clone();
            let total = crate::kernel::acct::usage_for_parent(&ctg);
            if !peek {
                tab.procs.remove(ch);
                if let Some(me) = tab.procs.get_mut(&me) {
                    me.children.retain(|x| x != ch);
                    me.tg.children.lock().add(&total);
                }
                drop(tab);
                ctg.exit_wq.notify_all();
            }
            return Ok(Some((*ch, st, 0, uid, total)));
        }
        any = true;
        let uid = p
            .threads
            .first()
            .and_then(|x| tab.tasks.get(x))
            .map(|x| x.creds().uid)
            .unwrap_or(0);
        let p = tab.procs.get_mut(ch).expect("child");
        if options & WSTOPPED != 0 {
            if let Some(st) = p.stop_report {
                if !peek {
                    p.stop_report = None;
                }
                let tg = p.tg.clone();
                drop(tab);
                let u = live_usage(k, &tg);
                return Ok(Some((*ch, st, 1, uid, u)));
            }
        }
        if options & WCONTINUED != 0 && p.cont_report {
            if !peek {
                p.cont_report = false;
            }
            let tg = p.tg.clone();
            drop(tab);
            let u = live_usage(k, &tg);
            return Ok(Some((*ch, 0xffff, 2, uid, u)));
        }
    }
    if any {
        Ok(None)
    } else {
        Err(ECHILD)
    }
}

/// A stopped or continued child reports its usage so far (Linux's
/// getrusage(RUSAGE_BOTH) of the child).
fn live_usage(k: &crate::kernel::Kernel, tg: &Arc<ThreadGroup>) -> crate::kernel::acct::Usage {
    let mut u = crate::kernel::acct::group_usage(k, tg);
    u.add(&tg.children.lock());
    u
}

fn wait_common(c: &Ctx, sel: &WaitSel, options: u32, peek: bool) -> KResult<Option<Found>> {
    c.t.block_on(&[&c.t.tg.child_wq], None, || {
        match find_child(c, sel, options, peek) {
            Ok(Some(r)) => Some(Ok(Some(r))),
            Ok(None) if options & WNOHANG != 0 => Some(Ok(None)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    })
}

fn wait4(c: &Ctx, pid: i32, status: u64, options: u32, rusage: u64) -> SysResult {
    if options & !(WNOHANG | WSTOPPED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return Err(EINVAL);
    }
    // -INT_MIN does not exist.
    if pid == i32::MIN {
        return Err(ESRCH);
    }
    let sel = match pid {
        -1 => WaitSel::Any,
        0 => WaitSel::Pgid(my_pgid(c)),
        x if x > 0 => WaitSel::Pid(x),
        x => WaitSel::Pgid(-x),
    };
    match wait_common(c, &sel, options | WEXITED, false)? {
        None => Ok(0),
        Some((p, st, _, _, usage)) => {
            if status != 0 {
                c.t.mm().write_obj(status, &st)?;
            }
            if rusage != 0 {
                c.t.mm().write(rusage, &usage.to_rusage())?;
            }
            Ok(p as u64)
        }
    }
}

fn my_pgid(c: &Ctx) -> i32 {
    c.t.kernel
        .table
        .lock()
        .procs
        .get(&c.t.tgid())
        .map(|p| p.pgid)
        .unwrap_or(0)
}

fn waitid(c: &Ctx, idtype: u32, id: i32, infop: u64, options: u32, rusage: u64) -> SysResult {
    let r = waitid_inner(c, idtype, id, options);
    // Linux writes these fields (zeros when nothing was found, or on error) and no
    // others.
    let (signo, code, pid, uid, status) = match &r {
        Ok(Some((pid, st, kind, uid, _))) => {
            let (code, status) = match kind {
                1 => (signal::CLD_STOPPED, (st >> 8) & 0xff),
                2 => (signal::CLD_CONTINUED, signal::SIGCONT),
                _ => run::chld_code(*st),
            };
            (signal::SIGCHLD, code, *pid, *uid as i32, status)
        }
        _ => (0, 0, 0, 0, 0),
    };
    if let (Ok(Some((.., usage))), true) = (&r, rusage != 0) {
        c.t.mm().write(rusage, &usage.to_rusage())?;
    }
    if infop != 0 {
        let mm = c.t.mm();
        for (off, v) in [
            (0, signo),
            (4, 0),
            (8, code),
            (16, pid),
            (20, uid),
            (24, status),
        ] {
            mm.write_obj(infop + off, &v)?;
        }
    }
    r.map(|_| 0)
}

fn waitid_inner(c: &Ctx, idtype: u32, id: i32, options: u32) -> KResult<Option<Found>> {
    const P_ALL: u32 = 0;
    const P_PID: u32 = 1;
    const P_PGID: u32 = 2;
    const P_PIDFD: u32 = 3;
    if options & !(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WNOTHREAD | WALL | WCLONE)
        != 0
        || options & (WEXITED | WSTOPPED | WCONTINUED) == 0
    {
        return Err(EINVAL);
    }
    let sel = match idtype {
        P_ALL => WaitSel::Any,
        P_PID if id <= 0 => return Err(EINVAL),
        P_PID => WaitSel::Pid(id),
        P_PGID if id < 0 => return Err(EINVAL),
        P_PGID if id == 0 => WaitSel::Pgid(my_pgid(c)),
        P_PGID => WaitSel::Pgid(id),
        P_PIDFD if id < 0 => return Err(EINVAL),
        P_PIDFD => {
            let f = c.fd(id as u64)?;
            let pf = crate::vfs::pidfd::as_pidfd(&f).ok_or(EBADF)?;
            // A non-blocking pidfd makes the wait non-blocking: EAGAIN, not 0.
            if f.nonblock() && options & WNOHANG == 0 {
                return match wait_common(
                    c,
                    &WaitSel::Process(pf.tg.clone()),
                    options | WNOHANG,
                    options & WNOWAIT != 0,
                )? {
                    None => Err(EAGAIN),
                    r => Ok(r),
                };
            }
            WaitSel::Process(pf.tg.clone())
        }
        _ => return Err(EINVAL),
    };
    wait_common(c, &sel, options, options & WNOWAIT != 0)
}

fn arch_prctl(c: &mut Ctx, code: u64, addr: u64) -> SysResult {
    match code {
        0x1002 => {
            if addr >= platform::MAX_USER_ADDR {
                return Err(EPERM);
            }
            c.regs.fs_base = addr;
            Ok(0)
        }
        0x1003 => {
            c.t.mm().write_obj(addr, &c.regs.fs_base)?;
            Ok(0)
        }
        0x1001 => {
            c.regs.gs_base = addr;
            Ok(0)
        }
        0x1004 => {
            c.t.mm().write_obj(addr, &c.regs.gs_base)?;
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

fn can_set(v: u32, allowed: [u32; 3], privileged: bool) -> bool {
    v == u32::MAX || privileged || allowed.contains(&v)
}

fn setresuid(c: &Ctx, r: u32, e: u32, s: u32, plain: bool) -> SysResult {
    let mut cr = c.t.creds.lock();
    // The ids are the task's user namespace's (kernel::ns).
    let (r, e, s) = (cr.uid_in(r)?, cr.uid_in(e)?, cr.uid_in(s)?);
    let old = cr.clone();
    let res = setresuid_inner(&mut cr, r, e, s, plain);
    cr.fix_caps_after_setuid(&old);
    res
}

fn setresuid_inner(cr: &mut Creds, r: u32, e: u32, s: u32, plain: bool) -> SysResult {
    if plain && cr.capable_here(7) {
        (cr.uid, cr.euid, cr.suid, cr.fsuid) = (r, r, r, r);
        return Ok(0);
    }
    let allowed = [cr.uid, cr.euid, cr.suid];
    if plain {
        if !allowed.contains(&r) {
            return Err(EPERM);
        }
        cr.euid = r;
        cr.fsuid = r;
        return Ok(0);
    }
    let p = cr.capable_here(7);
    if !can_set(r, allowed, p) || !can_set(e, allowed, p) || !can_set(s, allowed, p) {
        return Err(EPERM);
    }
    if r != u32::MAX {
        cr.uid = r;
    }
    if e != u32::MAX {
        cr.euid = e;
    }
    if s != u32::MAX {
        cr.suid = s;
    }
    cr.fsuid = cr.euid;
    Ok(0)
}

fn setresgid(c: &Ctx, r: u32, e: u32, s: u32, plain: bool) -> SysResult {
    let mut cr = c.t.creds.lock();
    let (r, e, s) = (cr.gid_in(r)?, cr.gid_in(e)?, cr.gid_in(s)?);
    if plain && cr.capable_here(6) {
        (cr.gid, cr.egid, cr.sgid, cr.fsgid) = (r, r, r, r);
        return Ok(0);
    }
    let allowed = [cr.gid, cr.egid, cr.sgid];
    if plain {
        if !allowed.contains(&r) {
            return Err(EPERM);
        }
        cr.egid = r;
        cr.fsgid = r;
        return Ok(0);
    }
    let p = cr.capable_here(6);
    if !can_set(r, allowed, p) || !can_set(e, allowed, p) || !can_set(s, allowed, p) {
        return Err(EPERM);
    }
    if r != u32::MAX {
        cr.gid = r;
    }
    if e != u32::MAX {
        cr.egid = e;
    }
    if s != u32::MAX {
        cr.sgid = s;
    }
    cr.fsgid = cr.egid;
    Ok(0)
}

fn getres(c: &Ctx, a: u64, b: u64, d: u64, uid: bool) -> SysResult {
    let cr = c.t.creds();
    let v = if uid {
        [cr.uid, cr.euid, cr.suid].map(|x| cr.uid_out(x))
    } else {
        [cr.gid, cr.egid, cr.sgid].map(|x| cr.gid_out(x))
    };
    let mm = c.t.mm();
    mm.write_obj(a, &v[0])?;
    mm.write_obj(b, &v[1])?;
    mm.write_obj(d, &v[2])?;
    Ok(0)
}

fn getgroups(c: &Ctx, size: u64, list: u64) -> SysResult {
    if (size as i32) < 0 {
        return Err(EINVAL);
    }
    let size = size as i32 as u64;
    let cr = c.t.creds();
    let g: Vec<u32> = cr.groups.iter().map(|x| cr.gid_out(*x)).collect();
    if size == 0 {
        return Ok(g.len() as u64);
    }
    if (size as usize) < g.len() {
        return Err(EINVAL);
    }
    for (i, x) in g.iter().enumerate() {
        c.t.mm().write_obj(list + i as u64 * 4, x)?;
    }
    Ok(g.len() as u64)
}

fn setgroups(c: &Ctx, size: u64, list: u64) -> SysResult {
    if size > 65536 {
        return Err(EINVAL);
    }
    let cr = c.t.creds();
    if !cr.capable_here(6) || !crate::kernel::ns::may_setgroups(&cr.user_ns()) {
        return Err(EPERM);
    }
    let mut g = vec![];
    for i in 0..size {
        g.push(cr.gid_in(c.t.mm().read_obj::<u32>(list + i * 4)?)?);
    }
    c.t.creds.lock().groups = g;
    Ok(0)
}

fn setpgid(c: &Ctx, pid: i32, pgid: i32) -> SysResult {
    if pgid < 0 {
        return Err(EINVAL);
    }
    let me = c.t.tgid();
    let pid = if pid == 0 { me } else { pid };
    let pgid = if pgid == 0 { pid } else { pgid };
    let mut tab = c.t.kernel.table.lock();
    let my_sid = tab.procs.get(&me).map(|p| p.sid).ok_or(ESRCH)?;
    let Some(target) = tab.procs.get(&pid) else {
        // A thread that is not a group leader: EINVAL.
        return Err(if tab.tasks.contains_key(&pid) {
            EINVAL
        } else {
            ESRCH
        });
    };
    if target.parent == me {
        if target.sid != my_sid {
            return Err(EPERM);
        }
        // The parent may no longer move a child that has exec'ed.
        if target.execed {
            return Err(EACCES);
        }
    } else if pid != me {
        return Err(ESRCH);
    }
    if target.sid == pid {
        return Err(EPERM);
    }
    if pgid != pid
        && !tab
            .procs
            .values()
            .any(|p| p.pgid == pgid && p.sid == my_sid)
    {
        return Err(EPERM);
    }
    tab.procs.get_mut(&pid).ok_or(ESRCH)?.pgid = pgid;
    Ok(0)
}

fn getpgid(c: &Ctx, pid: i32) -> SysResult {
    let tab = c.t.kernel.table.lock();
    let pid = if pid == 0 { c.t.tgid() } else { pid };
    // A zombie keeps its process group until it is reaped.
    tab.procs.get(&pid).map(|p| p.pgid as u64).ok_or(ESRCH)
}

fn setsid(c: &Ctx) -> SysResult {
    let me = c.t.tgid();
    let mut tab = c.t.kernel.table.lock();
    if tab.procs.values().any(|p| p.pgid == me) {
        return Err(EPERM);
    }
    let p = tab.procs.get_mut(&me).ok_or(ESRCH)?;
    p.sid = me;
    p.pgid = me;
    Ok(me as u64)
}

fn getsid(c: &Ctx, pid: i32) -> SysResult {
    let tab = c.t.kernel.table.lock();
    let pid = if pid == 0 { c.t.tgid() } else { pid };
    tab.procs.get(&pid).map(|p| p.sid as u64).ok_or(ESRCH)
}

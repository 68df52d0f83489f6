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
        247 => waitid(c, a0 as u32, a1 as i32, a2, a3 as u32),
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
        157 => prctl(c, a0, a1),
        102 => Ok(c.t.creds().uid as u64),
        104 => Ok(c.t.creds().gid as u64),
        107 => Ok(c.t.creds().euid as u64),
        108 => Ok(c.t.creds().egid as u64),
        105 => setresuid(c, a0 as u32, a0 as u32, u32::MAX, true),
        106 => setresgid(c, a0 as u32, a0 as u32, u32::MAX, true),
        113 => setresuid(c, a0 as u32, a1 as u32, u32::MAX, false),
        114 => setresgid(c, a0 as u32, a1 as u32, u32::MAX, false),
        117 => setresuid(c, a0 as u32, a1 as u32, a2 as u32, false),
        119 => setresgid(c, a0 as u32, a1 as u32, a2 as u32, false),
        118 => getres(c, a0, a1, a2, true),
        120 => getres(c, a0, a1, a2, false),
        122 | 123 => Ok(if nr == 122 {
            c.t.creds().fsuid
        } else {
            c.t.creds().fsgid
        } as u64),
        115 => getgroups(c, a0, a1),
        116 => setgroups(c, a0, a1),
        109 => setpgid(c, a0 as i32, a1 as i32),
        121 => getpgid(c, a0 as i32),
        111 => getpgid(c, 0),
        112 => setsid(c),
        124 => getsid(c, a0 as i32),
        125 => capget(c, a0, a1),
        126 => capset(c, a0, a1),
        _ => return None,
    })
}

fn clone3(c: &mut Ctx, args: u64, size: u64) -> SysResult {
    if !(64..=4096).contains(&size) {
        return Err(EINVAL);
    }
    let a: [u64; 8] = c.t.mm().read_obj(args)?;
    let (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls) =
        (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
    const CLONE_PIDFD: u64 = 0x1000;
    if exit_signal > 64 || flags & 0xff != 0 {
        return Err(EINVAL);
    }
    if flags & CLONE_PIDFD != 0 {
        // pidfds are not implemented: refuse rather than hand out no descriptor.
        let _ = pidfd;
        c.t.kernel
            .report_unimplemented(435, "clone3(CLONE_PIDFD)", c.t.tgid());
        return Err(EINVAL);
    }
    let sp = if stack != 0 { stack + stack_size } else { 0 };
    clone(c, flags | exit_signal, sp, parent_tid, child_tid, tls)
}

pub fn clone(c: &mut Ctx, flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> SysResult {
    if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0
        || flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0
    {
        return Err(EINVAL);
    }
    let k = c.t.kernel.clone();
    let t = c.t;
    let tid = k.table.lock().alloc_pid();
    let mm = if flags & CLONE_VM != 0 {
        t.mm()
    } else {
        if flags & CLONE_PARENT_SETTID != 0 {
            t.mm().write_obj(ptid, &tid)?;
        }
        let aspace = k.platform.new_address_space().map_err(|e| {
            tracing::warn!("new address space: {e}");
            EAGAIN
        })?;
        Arc::new(t.mm().fork(aspace)?)
    };
    if flags & CLONE_PARENT_SETTID != 0 {
        mm.write_obj(ptid, &tid)?;
        t.mm().write_obj(ptid, &tid)?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        mm.write_obj(ctid, &tid)?;
    }
    let tg = if flags & CLONE_THREAD != 0 {
        t.tg.clone()
    } else {
        let acts = if flags & CLONE_SIGHAND != 0 {
            t.tg.actions.lock().clone()
        } else {
            Arc::new(Mutex::new(*t.tg.actions.lock().lock()))
        };
        ThreadGroup::new(tid, acts, *t.tg.rlimits.lock())
    };
    let fs = if flags & CLONE_FS != 0 {
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
        creds: Mutex::new(t.creds()),
        sigmask: AtomicU64::new(t.sigmask.load(Ordering::Acquire)),
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
        utime: AtomicU64::new(0),
        stime: AtomicU64::new(0),
    });
    let mut regs = *c.regs;
    regs.rax = 0;
    if stack != 0 {
        regs.rsp = stack;
    }
    if flags & CLONE_SETTLS != 0 {
        regs.fs_base = tls;
    }
    let fp = c.pctx.fp_state(&t.mm().aspace).ok();
    {
        let mut tab = k.table.lock();
        let me = t.tgid();
        if tg.exiting.load(Ordering::Acquire) {
            return Err(EAGAIN);
        }
        if flags & CLONE_THREAD != 0 {
            tab.procs.get_mut(&me).ok_or(ESRCH)?.threads.push(tid);
        } else {
            let (parent, pgid, sid) = {
                let p = tab.procs.get(&me).ok_or(ESRCH)?;
                (
                    if flags & CLONE_PARENT != 0 {
                        p.parent
                    } else {
                        me
                    },
                    p.pgid,
                    p.sid,
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
                    exit_signal: (flags & 0xff) as i32,
                    zombie: None,
                    group_exit: None,
                    stop_report: None,
                    cont_report: false,
                    subreaper: false,
                    cmdline_name: name,
                },
            );
            if let Some(pp) = tab.procs.get_mut(&parent) {
                pp.children.push(tid);
            }
        }
        tab.tasks.insert(tid, child.clone());
    }
    run::start(child, regs, fp);
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
        })),
        files: Mutex::new(Arc::new(files)),
        creds: Mutex::new(creds),
        sigmask: AtomicU64::new(0),
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
        utime: AtomicU64::new(0),
        stime: AtomicU64::new(0),
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
                subreaper: init,
                cmdline_name: vec![],
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
            run::start(task, r, Some(platform::initial_fp_state()));
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
    let walk = crate::vfs::Walk {
        root: &root,
        creds: &creds,
        mounts: &k.mounts,
        task: t,
    };
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
        let ops = p.dentry.inode.clone().open(0)?;
        let f = crate::vfs::OpenFile::new(ops, Some(p.clone()), 0);
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
    *t.mm.lock() = mm;
    let base = name.rsplit(|b| *b == b'/').next().unwrap_or(&name).to_vec();
    *t.name.lock() = base.iter().take(15).copied().collect();
    if let Some(p) = k.table.lock().procs.get_mut(&t.tgid()) {
        p.cmdline_name = argv.first().cloned().unwrap_or_default();
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
    let full = if dirfd as i32 != AT_FDCWD && path.first() != Some(&b'/') {
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
        if let Some(p) = tab.procs.get_mut(&t.tgid()) {
            p.threads = vec![t.tgid()];
        }
    }
    Ok(())
}

/// The (user, system) ns of the child most recently reaped, for wait4's rusage.
static LAST_REAPED: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// Find a waitable child. Returns (pid, status, kind) and reaps zombies unless `peek`.
fn find_child(
    k: &Kernel,
    me: i32,
    sel: i32,
    options: u32,
    peek: bool,
) -> KResult<Option<(i32, i32, i32)>> {
    const WNOHANG: u32 = 1;
    const WUNTRACED: u32 = 2;
    const WEXITED: u32 = 4;
    const WCONTINUED: u32 = 8;
    let _ = WNOHANG;
    let mut tab = k.table.lock();
    let my_pgid = tab.procs.get(&me).map(|p| p.pgid).unwrap_or(0);
    let children = tab
        .procs
        .get(&me)
        .map(|p| p.children.clone())
        .unwrap_or_default();
    let matching: Vec<i32> = children
        .into_iter()
        .filter(|c| {
            let Some(p) = tab.procs.get(c) else {
                return false;
            };
            match sel {
                -1 => true,
                0 => p.pgid == my_pgid,
                x if x > 0 => *c == x,
                x => p.pgid == -x,
            }
        })
        .collect();
    if matching.is_empty() {
        return Err(ECHILD);
    }
    for c in &matching {
        let p = tab.procs.get_mut(c).expect("child");
        if options & WEXITED != 0 {
            if let Some(st) = p.zombie {
                let ctg = p.tg.clone();
                let dead = *ctg.dead_time.lock();
                let cc = *ctg.children_time.lock();
                let total = (dead.0 + cc.0, dead.1 + cc.1);
                if !peek {
                    tab.procs.remove(c);
                    if let Some(me) = tab.procs.get_mut(&me) {
                        me.children.retain(|x| x != c);
                        let mut ct = me.tg.children_time.lock();
                        ct.0 += total.0;
                        ct.1 += total.1;
                    }
                }
                *LAST_REAPED.lock() = total;
                return Ok(Some((*c, st, 0)));
            }
        }
        if options & WUNTRACED != 0 {
            if let Some(st) = p.stop_report {
                if !peek {
                    p.stop_report = None;
                }
                return Ok(Some((*c, st, 1)));
            }
        }
        if options & WCONTINUED != 0 && p.cont_report {
            if !peek {
                p.cont_report = false;
            }
            return Ok(Some((*c, 0xffff, 2)));
        }
    }
    Ok(None)
}

fn wait_common(c: &Ctx, sel: i32, options: u32, peek: bool) -> KResult<Option<(i32, i32, i32)>> {
    let k = c.t.kernel.clone();
    let me = c.t.tgid();
    c.t.block_on(&[&c.t.tg.child_wq], None, || {
        match find_child(&k, me, sel, options, peek) {
            Ok(Some(r)) => Some(Ok(Some(r))),
            Ok(None) if options & 1 != 0 => Some(Ok(None)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    })
}

fn wait4(c: &Ctx, pid: i32, status: u64, options: u32, rusage: u64) -> SysResult {
    if options & !(1 | 2 | 8 | 0x2000_0000 | 0x4000_0000 | 0x8000_0000) != 0 {
        return Err(EINVAL);
    }
    if pid == i32::MIN {
        return Err(ESRCH);
    }
    match wait_common(c, pid, options | 4, false)? {
        None => Ok(0),
        Some((p, st, _)) => {
            if status != 0 {
                c.t.mm().write_obj(status, &st)?;
            }
            if rusage != 0 {
                let t = *LAST_REAPED.lock();
                c.t.mm()
                    .write(rusage, &crate::syscalls::rusage_bytes(t, 0))?;
            }
            Ok(p as u64)
        }
    }
}

fn waitid(c: &Ctx, idtype: u32, id: i32, infop: u64, options: u32) -> SysResult {
    const WNOWAIT: u32 = 0x0100_0000;
    if options & (4 | 2 | 8) == 0 {
        return Err(EINVAL);
    }
    let sel = match idtype {
        0 => -1,
        1 => id,
        2 => {
            if id == 0 {
                0
            } else {
                -id
            }
        }
        _ => return Err(EINVAL),
    };
    let r = wait_common(c, sel, options, options & WNOWAIT != 0)?;
    let mut info = signal::SigInfo::new(0, 0);
    if let Some((pid, st, kind)) = r {
        let (code, status) = match kind {
            1 => (signal::CLD_STOPPED, (st >> 8) & 0xff),
            2 => (signal::CLD_CONTINUED, signal::SIGCONT),
            _ if st & 0x7f == 0 => (signal::CLD_EXITED, (st >> 8) & 0xff),
            _ if st & 0x80 != 0 => (signal::CLD_DUMPED, st & 0x7f),
            _ => (signal::CLD_KILLED, st & 0x7f),
        };
        info = signal::SigInfo::new(signal::SIGCHLD, code);
        info.set_i32(16, pid).set_i32(20, 0).set_i32(24, status);
    }
    if infop != 0 {
        c.t.mm().write(infop, &info.0)?;
    }
    Ok(0)
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

fn prctl(c: &Ctx, op: u64, a1: u64) -> SysResult {
    match op {
        15 => {
            let mut n = c.t.mm().read_cstr(a1, 4096).or_else(|e| {
                if e == ENAMETOOLONG {
                    Ok(vec![])
                } else {
                    Err(e)
                }
            })?;
            n.truncate(15);
            *c.t.name.lock() = n;
            Ok(0)
        }
        16 => {
            let mut n = c.t.name.lock().clone();
            n.resize(16, 0);
            c.t.mm().write(a1, &n)?;
            Ok(0)
        }
        1 => {
            if a1 > 64 {
                return Err(EINVAL);
            }
            c.t.pdeathsig.store(a1 as i32, Ordering::Relaxed);
            Ok(0)
        }
        2 => {
            c.t.mm()
                .write_obj(a1, &c.t.pdeathsig.load(Ordering::Relaxed))
                .map(|_| 0)
        }
        3 => Ok(c.t.tg.dumpable.load(Ordering::Relaxed) as u64),
        4 => {
            if a1 > 1 {
                return Err(EINVAL);
            }
            c.t.tg.dumpable.store(a1 == 1, Ordering::Relaxed);
            Ok(0)
        }
        21 => Ok(0),
        7 => Ok(c.t.creds().keep_caps as u64),
        8 => {
            if a1 > 1 {
                return Err(EINVAL);
            }
            c.t.creds.lock().keep_caps = a1 == 1;
            Ok(0)
        }
        27 => Ok(0),
        47 => match a1 {
            // PR_CAP_AMBIENT: no ambient capabilities are ever raised here.
            1 => Ok(0),
            4 => Ok(0),
            2 | 3 => {
                c.t.kernel.report_unimplemented(
                    157,
                    "prctl(PR_CAP_AMBIENT raise/lower)",
                    c.t.tgid(),
                );
                Err(EINVAL)
            }
            _ => Err(EINVAL),
        },
        23 => {
            if a1 > 40 {
                return Err(EINVAL);
            }
            Ok(1)
        }
        36 => {
            let mut tab = c.t.kernel.table.lock();
            tab.procs.get_mut(&c.t.tgid()).ok_or(ESRCH)?.subreaper = a1 != 0;
            Ok(0)
        }
        37 => {
            let v =
                c.t.kernel
                    .table
                    .lock()
                    .procs
                    .get(&c.t.tgid())
                    .map(|p| p.subreaper as i32)
                    .unwrap_or(0);
            c.t.mm().write_obj(a1, &v).map(|_| 0)
        }
        38 => {
            if a1 != 1 {
                return Err(EINVAL);
            }
            c.t.no_new_privs.store(true, Ordering::Relaxed);
            Ok(0)
        }
        39 => Ok(c.t.no_new_privs.load(Ordering::Relaxed) as u64),
        _ => {
            c.t.kernel
                .report_unimplemented(157, "prctl(option)", c.t.tgid());
            Err(EINVAL)
        }
    }
}

fn can_set(v: u32, allowed: [u32; 3], privileged: bool) -> bool {
    v == u32::MAX || privileged || allowed.contains(&v)
}

/// capget/capset (v1: one 32-bit set; v2/v3: two).
fn capget(c: &Ctx, hdrp: u64, datap: u64) -> SysResult {
    let (words, pid) = cap_header(c, hdrp)?;
    let cr = if pid == 0 || pid == c.t.tid() {
        c.t.creds()
    } else {
        c.t.kernel.task(pid).ok_or(ESRCH)?.creds()
    };
    if datap == 0 {
        return Ok(0);
    }
    let mut out = vec![];
    for w in 0..words {
        for set in [cr.cap_effective, cr.cap_permitted, cr.cap_inheritable] {
            out.extend_from_slice(&((set >> (32 * w)) as u32).to_le_bytes());
        }
    }
    c.t.mm().write(datap, &out)?;
    Ok(0)
}

fn cap_header(c: &Ctx, hdrp: u64) -> KResult<(usize, i32)> {
    const V1: u32 = 0x1998_0330;
    const V2: u32 = 0x2007_1026;
    const V3: u32 = 0x2008_0522;
    let h: [u32; 2] = c.t.mm().read_obj(hdrp)?;
    let words = match h[0] {
        V1 => 1,
        V2 | V3 => 2,
        _ => {
            c.t.mm().write_obj(hdrp, &V3)?;
            return Err(EINVAL);
        }
    };
    if (h[1] as i32) < 0 {
        return Err(EINVAL);
    }
    Ok((words, h[1] as i32))
}

fn capset(c: &Ctx, hdrp: u64, datap: u64) -> SysResult {
    let (words, pid) = cap_header(c, hdrp)?;
    if pid != 0 && pid != c.t.tid() {
        return Err(EPERM);
    }
    let raw = c.t.mm().read_vec(datap, words * 12)?;
    let mut sets = [0u64; 3];
    for w in 0..words {
        for (i, set) in sets.iter_mut().enumerate() {
            let off = w * 12 + i * 4;
            *set |=
                (u32::from_le_bytes(raw[off..off + 4].try_into().expect("4")) as u64) << (32 * w);
        }
    }
    let [eff, perm, inh] = sets;
    let mut cr = c.t.creds.lock();
    const CAP_SETPCAP: u64 = 1 << 8;
    let inh_limit = cr.cap_inheritable
        | if cr.cap_effective & CAP_SETPCAP != 0 {
            crate::kernel::CAP_FULL
        } else {
            cr.cap_permitted
        };
    if perm & !cr.cap_permitted != 0
        || eff & !perm != 0
        || inh & !inh_limit != 0
        || (inh | perm | eff) & !crate::kernel::CAP_FULL != 0
    {
        return Err(EPERM);
    }
    cr.cap_effective = eff;
    cr.cap_permitted = perm;
    cr.cap_inheritable = inh;
    Ok(0)
}

fn setresuid(c: &Ctx, r: u32, e: u32, s: u32, plain: bool) -> SysResult {
    let mut cr = c.t.creds.lock();
    let old = cr.clone();
    let res = setresuid_inner(&mut cr, r, e, s, plain);
    cr.fix_caps_after_setuid(&old);
    res
}

fn setresuid_inner(cr: &mut Creds, r: u32, e: u32, s: u32, plain: bool) -> SysResult {
    if plain && cr.has_cap(7) {
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
    let p = cr.has_cap(7);
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
    if plain && cr.has_cap(6) {
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
    let p = cr.has_cap(6);
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
        [cr.uid, cr.euid, cr.suid]
    } else {
        [cr.gid, cr.egid, cr.sgid]
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
    let g = c.t.creds().groups;
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
    if !c.t.creds().has_cap(6) {
        return Err(EPERM);
    }
    let mut g = vec![];
    for i in 0..size {
        g.push(c.t.mm().read_obj::<u32>(list + i * 4)?);
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
    let target = tab.procs.get(&pid).ok_or(ESRCH)?;
    if pid != me && target.parent != me {
        return Err(ESRCH);
    }
    if target.sid != my_sid {
        return Err(EPERM);
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
    tab.procs
        .get(&pid)
        .filter(|p| p.zombie.is_none() || pid == c.t.tgid())
        .map(|p| p.pgid as u64)
        .ok_or(ESRCH)
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

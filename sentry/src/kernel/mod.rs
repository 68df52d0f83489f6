//! The kernel: tasks, thread groups, the process tree, credentials.

pub mod acct;
pub mod futex;
pub mod jobctl;
pub mod klog;
pub mod ns;
pub mod run;
pub mod signal;
pub mod timers;

use crate::errno::*;
use crate::mm::Mm;
use crate::vfs::fdtable::FdTable;
use crate::vfs::{Mounts, Path};
use crate::waitq::{WaitQueue, Waiter};
use parking_lot::{Condvar, Mutex};
use platform::{Interrupter, Platform};
use signal::{SigAction, SigInfo, SigQueue};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    /// Capability sets (bit N = capability N).
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_inheritable: u64,
    /// The capability bounding set (PR_CAPBSET_READ/DROP).
    pub cap_bset: u64,
    /// prctl(PR_SET_KEEPCAPS): keep permitted capabilities when dropping root ids.
    pub keep_caps: bool,
    /// The user namespace (None: the first one). The ids above are the kernel's.
    pub user: Option<Arc<ns::UserNs>>,
}

/// All capabilities up to CAP_CHECKPOINT_RESTORE (40), as Linux 6.8 has them.
pub const CAP_FULL: u64 = (1 << 41) - 1;

/// Capability numbers (capabilities(7)), for `Creds::has_cap`.
pub mod cap {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const NET_ADMIN: u32 = 12;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_NICE: u32 = 23;
    pub const SYS_RESOURCE: u32 = 24;
    pub const MKNOD: u32 = 27;
    pub const SYSLOG: u32 = 34;
    pub const WAKE_ALARM: u32 = 35;
    /// The highest capability number (CAP_CHECKPOINT_RESTORE).
    pub const LAST: u32 = 40;
}

impl Creds {
    pub fn new(uid: u32, gid: u32) -> Creds {
        let caps = if uid == 0 { CAP_FULL } else { 0 };
        Creds {
            uid,
            euid: uid,
            suid: uid,
            fsuid: uid,
            gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            groups: vec![],
            cap_effective: caps,
            cap_permitted: caps,
            cap_inheritable: 0,
            cap_bset: CAP_FULL,
            keep_caps: false,
            user: None,
        }
    }

    /// The capability transformation of execve(2) for a file with no file capabilities
    /// and no set-user-ID bit (capabilities(7)): root (real or effective) gets the
    /// bounding set plus its inheritable set as permitted, effective too if the
    /// effective uid is 0; anyone else keeps no permitted or effective capabilities
    /// (there are no ambient ones). PR_SET_KEEPCAPS is cleared.
    pub fn apply_exec(&mut self) {
        // Root is the user namespace's root.
        let root = self.root_kuid();
        if self.uid == root || self.euid == root {
            self.cap_permitted = self.cap_bset | self.cap_inheritable;
            self.cap_effective = if self.euid == root {
                self.cap_permitted
            } else {
                0
            };
        } else {
            self.cap_permitted = 0;
            self.cap_effective = 0;
        }
        self.keep_caps = false;
    }

    /// Capability changes when user ids change (capabilities(7), "Effect of user ID
    /// changes on capabilities"; Linux's cap_emulate_setxuid), with PR_SET_KEEPCAPS as
    /// SECBIT_KEEP_CAPS.
    pub fn fix_caps_after_setuid(&mut self, old: &Creds) {
        let r = self.root_kuid();
        let had_root = old.uid == r || old.euid == r || old.suid == r;
        let has_root = self.uid == r || self.euid == r || self.suid == r;
        if had_root && !has_root && !self.keep_caps {
            self.cap_permitted = 0;
            self.cap_effective = 0;
        }
        if old.euid == r && self.euid != r {
            self.cap_effective = 0;
        }
        if old.euid != r && self.euid == r {
            self.cap_effective = self.cap_permitted;
        }
    }

    /// A capability in the first user namespace (Linux's capable()); for one that
    /// a namespace's owner may use, see `ns::ns_capable`.
    pub fn has_cap(&self, cap: u32) -> bool {
        self.user.is_none() && self.cap_effective & (1 << cap) != 0
    }

    pub fn user_ns(&self) -> Arc<ns::UserNs> {
        self.user.clone().unwrap_or_else(ns::init_user)
    }
}

/// Working directory, root and umask (shared by CLONE_FS).
pub struct FsCtx {
    pub cwd: Mutex<Path>,
    pub root: Mutex<Path>,
    pub umask: AtomicU32,
    /// The mount namespace (Linux keeps it in the nsproxy; unshare(CLONE_NEWNS)
    /// unshares the fs context with it, so here is as good).
    pub mounts: Mutex<Arc<Mounts>>,
}

impl FsCtx {
    pub fn copy(&self) -> FsCtx {
        FsCtx {
            cwd: Mutex::new(self.cwd.lock().clone()),
            root: Mutex::new(self.root.lock().clone()),
            umask: AtomicU32::new(self.umask.load(Ordering::Relaxed)),
            mounts: Mutex::new(self.mounts.lock().clone()),
        }
    }

    /// A copy in a new mount namespace (CLONE_NEWNS): a copy of this one's mounts,
    /// with root and working directory moved onto the copies.
    pub fn copy_new_ns(&self, user: &Arc<ns::UserNs>) -> FsCtx {
        let fs = self.copy();
        let (ns, map) = fs.mounts.lock().copy();
        ns::own_mounts(&fs.mounts.lock(), &ns, &map, user);
        let moved = |p: &mut Path| {
            if let Some(m) = map.get(&p.mnt.id) {
                p.mnt = m.clone();
            }
        };
        moved(&mut fs.root.lock());
        moved(&mut fs.cwd.lock());
        *fs.mounts.lock() = Arc::new(ns);
        fs
    }
}

pub const RLIMIT_NOFILE: usize = 7;

/// The kernel release rvisor reports. 6.8 is recent enough for every glibc, Python and
/// Go runtime check we know of, and old enough that the system calls those runtimes
/// probe first (rseq, clone3, faccessat2, close_range...) behave as rvisor implements
/// them: implemented, or ENOSYS where a fallback exists.
pub const RELEASE: &str = "6.8.0-rvisor";
pub const VERSION: &str = concat!(
    "#1 SMP PREEMPT_DYNAMIC rvisor ",
    env!("CARGO_PKG_VERSION"),
    " ",
    env!("RVISOR_BUILD_DATE")
);

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<Task>>> = const { std::cell::RefCell::new(None) };
}

/// The task the calling thread is running (for /proc/self).
pub fn current() -> Option<Arc<Task>> {
    CURRENT.with(|c| c.borrow().clone())
}

pub fn set_current(t: Option<Arc<Task>>) {
    CURRENT.with(|c| *c.borrow_mut() = t);
}

/// (vendor, model name, flags) of the host CPU, for /proc/cpuinfo.
pub fn host_cpu_model() -> (String, String, String) {
    use std::arch::x86_64::__cpuid;
    let v = __cpuid(0);
    let vendor: Vec<u8> = [v.ebx, v.edx, v.ecx]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let mut model = vec![];
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = __cpuid(leaf);
        for x in [r.eax, r.ebx, r.ecx, r.edx] {
            model.extend_from_slice(&x.to_le_bytes());
        }
    }
    let model = String::from_utf8_lossy(&model)
        .trim_matches(char::from(0))
        .trim()
        .to_string();
    let f = __cpuid(1);
    let mut flags = vec![];
    for (bit, name) in [
        (0, "fpu"),
        (4, "tsc"),
        (15, "cmov"),
        (23, "mmx"),
        (24, "fxsr"),
        (25, "sse"),
        (26, "sse2"),
    ] {
        if f.edx & (1 << bit) != 0 {
            flags.push(name);
        }
    }
    for (bit, name) in [
        (0, "pni"),
        (9, "ssse3"),
        (19, "sse4_1"),
        (20, "sse4_2"),
        (23, "popcnt"),
        (25, "aes"),
        (26, "xsave"),
        (28, "avx"),
    ] {
        if f.ecx & (1 << bit) != 0 {
            flags.push(name);
        }
    }
    let e = __cpuid(7);
    for (bit, name) in [(3, "bmi1"), (5, "avx2"), (8, "bmi2"), (16, "avx512f")] {
        if e.ebx & (1 << bit) != 0 {
            flags.push(name);
        }
    }
    (
        String::from_utf8_lossy(&vendor).into_owned(),
        model,
        flags.join(" "),
    )
}

/// (total, free) bytes of host memory.
pub fn host_memory() -> (u64, u64) {
    // SAFETY: sysinfo fills a plain struct.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sysinfo(&mut si) };
    (
        si.totalram as u64 * si.mem_unit as u64,
        si.freeram as u64 * si.mem_unit as u64,
    )
}
pub const RLIM_INFINITY: u64 = u64::MAX;

/// What a thread group shares: signal actions, shared pending signals, limits.
pub struct ThreadGroup {
    pub tgid: i32,
    pub actions: Mutex<Arc<Mutex<[SigAction; 65]>>>,
    pub pending: Mutex<SigQueue>,
    pub rlimits: Mutex<[(u64, u64); 16]>,
    /// Woken when a child changes state (wait4).
    pub child_wq: WaitQueue,
    /// Set when the whole group is exiting (exit_group, fatal signal, exec).
    pub exiting: AtomicBool,
    pub stopped: AtomicBool,
    pub personality: AtomicU32,
    pub stop_wq: WaitQueue,
    pub start: Instant,
    /// Usage of reaped children (and the children they reaped), and of exited threads.
    pub children: Mutex<acct::Usage>,
    pub dead: Mutex<acct::Usage>,
    /// Peak RSS (KiB) of address spaces the group has left behind (exec).
    pub maxrss_kb: AtomicU64,
    pub itimer_real: Mutex<Option<(Instant, u64, u64)>>,
    /// ITIMER_VIRTUAL and ITIMER_PROF: (ns left, interval ns).
    pub cpu_itimers: Mutex<[Option<(u64, u64)>; 2]>,
    /// POSIX timers (timer_create) by id.
    pub timers: Mutex<HashMap<i32, Arc<crate::kernel::timers::PosixTimer>>>,
    /// Woken when the process dies and when it is reaped (pidfd poll).
    pub exit_wq: WaitQueue,
}

/// Process-tree facts about a thread group, kept under the table lock.
pub struct Proc {
    pub tg: Arc<ThreadGroup>,
    pub parent: i32,
    pub children: Vec<i32>,
    pub threads: Vec<i32>,
    pub pgid: i32,
    pub sid: i32,
    pub exit_signal: i32,
    /// Wait status once the group is dead and not yet reaped.
    pub zombie: Option<i32>,
    /// Exit status chosen by exit_group or a fatal signal.
    pub group_exit: Option<i32>,
    pub stop_report: Option<i32>,
    pub cont_report: bool,
    pub subreaper: bool,
    pub cmdline_name: Vec<u8>,
    /// The thread that created the process (its parent thread, for __WNOTHREAD).
    pub parent_thread: i32,
    /// The process has called execve since fork (setpgid by the parent: EACCES).
    pub execed: bool,
    /// The real uid of the process when it died (si_uid of wait reports).
    pub exit_uid: u32,
    /// What /proc shows of a zombie: its (effective uid, gid) and its name.
    pub exit_ids: (u32, u32),
    pub exit_comm: Vec<u8>,
}

#[derive(Default)]
pub struct Table {
    pub tasks: HashMap<i32, Arc<Task>>,
    pub procs: HashMap<i32, Proc>,
    pub next_pid: i32,
}

impl Table {
    pub fn alloc_pid(&mut self) -> i32 {
        loop {
            self.next_pid = if self.next_pid >= 4_194_303 {
                2
            } else {
                self.next_pid + 1
            };
            let p = self.next_pid;
            if !self.tasks.contains_key(&p)
                && !self.procs.contains_key(&p)
                && !self.procs.values().any(|x| x.pgid == p || x.sid == p)
            {
                return p;
            }
        }
    }
}

pub struct Kernel {
    pub platform: Box<dyn Platform>,
    /// The first mount namespace (the container's).
    pub mounts: Arc<Mounts>,
    pub table: Mutex<Table>,
    pub futex: futex::Futexes,
    pub klog: Arc<klog::Klog>,
    pub locks: crate::vfs::lock::Locks,
    pub boot: Instant,
    /// The first UTS and IPC namespaces (hostname, message queues).
    pub ns: Arc<ns::NsSet>,
    pub debug: bool,
    pub strace: bool,
    reported: Mutex<HashSet<u64>>,
    foreground: AtomicI32,
    /// The init process's wait status, once it is gone.
    pub init_status: Mutex<Option<i32>>,
    pub init_done: Condvar,
    /// Exit statuses of processes the runtime started with no parent in the sandbox
    /// (`rvisor exec`), by pid, until collected; `exec_done` is notified on each.
    pub exec_exits: Mutex<HashMap<i32, i32>>,
    pub exec_done: Condvar,
    pub ncpus: usize,
    pub boot_wall: std::time::SystemTime,
    memfd: std::sync::OnceLock<(Arc<crate::vfs::memfs::MemFs>, Arc<crate::vfs::Mount>)>,
    /// net.ipv4.ping_group_range: who may make ping sockets ("1 0", nobody, at boot).
    pub ping_group_range: Mutex<(u32, u32)>,
    /// `--network host`: the host network the inet sockets use (see net::hostinet).
    pub hostnet: std::sync::OnceLock<Arc<crate::net::hostinet::HostNet>>,
    pub boot_id: String,
    /// What /proc/cmdline shows: the sandbox's own parameters.
    pub cmdline: String,
}

impl Kernel {
    /// The live threads of process `tgid` (none once it is gone).
    pub fn threads_of(&self, tgid: i32) -> Vec<Arc<Task>> {
        let t = self.table.lock();
        t.procs
            .get(&tgid)
            .map(|p| {
                p.threads
                    .iter()
                    .filter_map(|x| t.tasks.get(x).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The wall-clock boot time as (sec, nsec).
    pub fn boot_time(&self) -> (i64, i64) {
        let d = self
            .boot_wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (d.as_secs() as i64, d.subsec_nanos() as i64)
    }
    fn memfd_init(&self) -> &(Arc<crate::vfs::memfs::MemFs>, Arc<crate::vfs::Mount>) {
        self.memfd.get_or_init(|| {
            let fs = crate::vfs::memfs::MemFs::new(0x1a, None);
            let root: Arc<dyn crate::vfs::Inode> = fs.anon_dir();
            // A mount outside the mount table: only memfds' paths name it.
            let mnt = Arc::new(crate::vfs::Mount {
                id: 0,
                root: Arc::new(crate::vfs::Dentry {
                    name: b"/".to_vec(),
                    parent: None,
                    inode: root,
                }),
                parent: None,
                fstype: "tmpfs".into(),
                source: "memfd".into(),
                flags: Default::default(),
                opts: String::new(),
            });
            (fs, mnt)
        })
    }
    /// The file system memfd_create's files live in.
    pub fn memfd_fs(&self) -> Arc<crate::vfs::memfs::MemFs> {
        self.memfd_init().0.clone()
    }
    pub fn memfd_mount(&self) -> Arc<crate::vfs::Mount> {
        self.memfd_init().1.clone()
    }
    pub fn last_pid(&self) -> i32 {
        self.table.lock().next_pid
    }

    pub fn new(platform: Box<dyn Platform>, debug: bool, strace: bool) -> Arc<Kernel> {
        let platform_name = platform.name();
        Arc::new(Kernel {
            platform,
            mounts: Arc::new(Mounts {
                ino: ns::INIT_MNT_INO,
                ..Mounts::new()
            }),
            table: Mutex::new(Table::default()),
            futex: futex::Futexes::default(),
            klog: Arc::new(klog::Klog::new(Instant::now())),
            locks: Default::default(),
            boot: Instant::now(),
            ns: ns::NsSet::init(&ns::init_user()),
            debug,
            strace,
            reported: Mutex::new(HashSet::new()),
            foreground: AtomicI32::new(1),
            init_status: Mutex::new(None),
            exec_exits: Mutex::new(HashMap::new()),
            exec_done: Condvar::new(),
            init_done: Condvar::new(),
            ncpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            boot_wall: std::time::SystemTime::now(),
            memfd: std::sync::OnceLock::new(),
            ping_group_range: Mutex::new((1, 0)),
            hostnet: std::sync::OnceLock::new(),
            cmdline: format!("rvisor platform={platform_name} root=gofer:/ overlay=memory"),
            boot_id: {
                let mut b = [0u8; 16];
                crate::vfs::devfs::fill_random(&mut b);
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
            },
        })
    }

    /// Report an unimplemented system call once.
    pub fn report_unimplemented(&self, nr: u64, name: &str, pid: i32) {
        if self.reported.lock().insert(nr) {
            self.klog.log(klog::KERN, klog::WARNING, format!("rvisor: unimplemented system call {name} (nr {nr}) called by pid {pid}: returning ENOSYS"));
            tracing::debug!(
                syscall = name,
                nr,
                pid,
                "unimplemented system call: returning ENOSYS"
            );
        }
    }

    pub fn foreground_pgrp(&self) -> i32 {
        self.foreground.load(Ordering::Relaxed)
    }
    pub fn set_foreground_pgrp(&self, pg: i32) {
        self.foreground.store(pg, Ordering::Relaxed)
    }

    pub fn task(&self, tid: i32) -> Option<Arc<Task>> {
        self.table.lock().tasks.get(&tid).cloned()
    }

    pub fn uptime(&self) -> std::time::Duration {
        crate::vdso::uptime().unwrap_or_else(|| self.boot.elapsed())
    }
}

pub struct VforkDone {
    pub done: Mutex<bool>,
    pub wq: WaitQueue,
}

pub struct Task {
    pub tid: AtomicI32,
    pub tg: Arc<ThreadGroup>,
    pub kernel: Arc<Kernel>,
    pub mm: Mutex<Arc<Mm>>,
    pub fs: Mutex<Arc<FsCtx>>,
    pub files: Mutex<Arc<FdTable>>,
    pub creds: Mutex<Creds>,
    pub sigmask: AtomicU64,
    /// The mask in force before rt_sigtimedwait unblocked the signals it waits for:
    /// signals blocked here are not ignored at generation (Linux's real_blocked).
    pub real_blocked: AtomicU64,
    /// ioprio_set's I/O priority (class << 13 | data; 0: none set). Kept and reported:
    /// the Sentry has no I/O scheduler for it to steer.
    pub ioprio: AtomicU32,
    /// The mask to restore after a sigsuspend-like call is interrupted.
    pub saved_mask: Mutex<Option<u64>>,
    pub pending: Mutex<SigQueue>,
    pub altstack: Mutex<(u64, u64, i32)>,
    pub waiter: Arc<Waiter>,
    pub interrupter: Mutex<Option<Arc<dyn Interrupter>>>,
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    pub name: Mutex<Vec<u8>>,
    /// This thread must exit (group exit, exec by another thread).
    pub killed: AtomicBool,
    /// prctl(PR_SET_PDEATHSIG): the signal this process gets when its parent dies.
    pub pdeathsig: AtomicI32,
    pub no_new_privs: AtomicBool,
    /// sched_setaffinity's mask (bit N = CPU N) and the nice value.
    pub affinity: AtomicU64,
    pub nice: AtomicI32,
    pub sched_policy: AtomicU32,
    pub vfork: Mutex<Option<Arc<VforkDone>>>,
    pub start: Instant,
    /// CPU time and other usage counters.
    pub acct: acct::TaskAcct,
    pub misc: TaskMisc,
}

/// How restart_syscall(2) resumes a call interrupted with ERESTART_RESTARTBLOCK when no
/// handler ran (Linux's restart_block).
#[derive(Clone, Copy, Debug)]
pub enum Restart {
    /// A relative sleep: sleep on until `deadline`, writing what is left to `rem`
    /// if interrupted again.
    Sleep { deadline: Instant, rem: u64 },
    /// The same on a CPU-time clock: sleep on until `clock` reads `deadline` ns.
    CpuSleep { clock: i32, deadline: u64, rem: u64 },
}

/// The default timer slack (prctl(PR_SET_TIMERSLACK)), 50 us.
pub const DEFAULT_TIMER_SLACK_NS: u64 = 50_000;

/// Smaller per-task state.
pub struct TaskMisc {
    pub restart: Mutex<Option<Restart>>,
    /// prctl(PR_SET_TIMERSLACK) and what setting 0 restores.
    pub timer_slack_ns: AtomicU64,
    pub default_timer_slack_ns: AtomicU64,
    /// The task's UTS and IPC namespaces (see `ns`).
    pub ns: Mutex<Arc<ns::NsSet>>,
}

impl TaskMisc {
    /// The first task's state, in the kernel's first namespaces.
    pub fn new(k: &Kernel) -> TaskMisc {
        TaskMisc {
            restart: Mutex::new(None),
            timer_slack_ns: AtomicU64::new(DEFAULT_TIMER_SLACK_NS),
            default_timer_slack_ns: AtomicU64::new(DEFAULT_TIMER_SLACK_NS),
            ns: Mutex::new(k.ns.clone()),
        }
    }
}

impl TaskMisc {
    /// A new task's state, from the task that cloned it: the timer slack is
    /// inherited and becomes the child's default too.
    pub fn inherit(parent: &TaskMisc) -> TaskMisc {
        let slack = parent.timer_slack_ns.load(Ordering::Relaxed);
        TaskMisc {
            restart: Mutex::new(None),
            timer_slack_ns: AtomicU64::new(slack),
            default_timer_slack_ns: AtomicU64::new(slack),
            ns: Mutex::new(parent.ns.lock().clone()),
        }
    }
}

impl Task {
    pub fn tid(&self) -> i32 {
        self.tid.load(Ordering::Relaxed)
    }
    pub fn tgid(&self) -> i32 {
        self.tg.tgid
    }
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }
    pub fn mm(&self) -> Arc<Mm> {
        self.mm.lock().clone()
    }
    pub fn files(&self) -> Arc<FdTable> {
        self.files.lock().clone()
    }
    pub fn ns(&self) -> Arc<ns::NsSet> {
        self.misc.ns.lock().clone()
    }
    /// The task's mount namespace.
    pub fn mounts(&self) -> Arc<Mounts> {
        self.fsctx().mounts.lock().clone()
    }
    pub fn fsctx(&self) -> Arc<FsCtx> {
        self.fs.lock().clone()
    }
    pub fn creds(&self) -> Creds {
        self.creds.lock().clone()
    }
    pub fn rlimit(&self, r: usize) -> (u64, u64) {
        self.tg.rlimits.lock()[r]
    }

    /// Is there a reason to stop blocking: a deliverable signal or a kill?
    pub fn interrupted(&self) -> bool {
        if self.killed.load(Ordering::Acquire) || self.tg.exiting.load(Ordering::Acquire) {
            return true;
        }
        let mask = self.sigmask.load(Ordering::Acquire);
        self.pending.lock().deliverable(mask) || self.tg.pending.lock().deliverable(mask)
    }

    /// Wake the task wherever it is: blocked in the Sentry or running application code.
    pub fn kick(&self) {
        self.waiter.notify();
        if let Some(i) = self.interrupter.lock().as_ref() {
            i.interrupt();
        }
    }

    /// Block until `check` gives a result, a signal arrives (ERESTARTSYS), or the
    /// deadline passes (ETIMEDOUT).
    pub fn block_on<T>(
        &self,
        queues: &[&WaitQueue],
        deadline: Option<Instant>,
        mut check: impl FnMut() -> Option<KResult<T>>,
    ) -> KResult<T> {
        for q in queues {
            q.add(&self.waiter);
        }
        let r = loop {
            self.waiter.clear();
            if let Some(r) = check() {
                break r;
            }
            if self.interrupted() {
                break Err(ERESTARTSYS);
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    break Err(ETIMEDOUT);
                }
            }
            self.acct.nvcsw.fetch_add(1, Ordering::Relaxed);
            let b0 = Instant::now();
            self.waiter.wait(deadline);
            self.acct
                .blocked_wall
                .fetch_add(b0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        };
        for q in queues {
            q.remove(&self.waiter);
        }
        r
    }

    /// Sleep until the deadline or a signal (nanosleep): Ok on timeout.
    pub fn sleep_until(&self, deadline: Instant) -> KResult<()> {
        match self.block_on::<()>(&[], Some(deadline), || None) {
            Err(e) if e == ETIMEDOUT => Ok(()),
            r => r,
        }
    }

    pub fn send_signal(&self, info: SigInfo) {
        signal::send_to_task(self, info);
    }
}

impl ThreadGroup {
    pub fn new(
        tgid: i32,
        actions: Arc<Mutex<[SigAction; 65]>>,
        rlimits: [(u64, u64); 16],
    ) -> Arc<ThreadGroup> {
        Arc::new(ThreadGroup {
            tgid,
            actions: Mutex::new(actions),
            pending: Mutex::new(SigQueue::default()),
            rlimits: Mutex::new(rlimits),
            child_wq: WaitQueue::default(),
            exiting: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            personality: AtomicU32::new(0),
            stop_wq: WaitQueue::default(),
            start: Instant::now(),
            children: Default::default(),
            dead: Default::default(),
            maxrss_kb: AtomicU64::new(0),
            itimer_real: Mutex::new(None),
            cpu_itimers: Mutex::new([None, None]),
            timers: Mutex::new(HashMap::new()),
            exit_wq: WaitQueue::default(),
        })
    }
    pub fn action(&self, sig: i32) -> SigAction {
        self.actions.lock().lock()[sig as usize]
    }
}

pub fn default_rlimits() -> [(u64, u64); 16] {
    let mut r = [(RLIM_INFINITY, RLIM_INFINITY); 16];
    // SAFETY: getrlimit fills a valid rlimit struct.
    let host = |res: u32| unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(res, &mut l);
        (l.rlim_cur, l.rlim_max)
    };
    for (i, item) in r.iter_mut().enumerate() {
        *item = host(i as u32);
    }
    // Everything, RLIMIT_NOFILE included, is inherited from whoever started rvisor, as
    // a process started directly would inherit it.
    r
}

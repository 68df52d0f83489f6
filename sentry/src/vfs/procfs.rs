//! /proc and /sys: generated trees describing the sandbox's own kernel and processes.
//! Contents are produced at open; directories are listed from the live task table.

use super::nsfs::IdFile;
use super::*;
use crate::kernel::ns::MapKind;
use crate::kernel::{current, Kernel};
use crate::mm::{Backing, PROT_EXEC, PROT_READ, PROT_WRITE};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gen {
    // /proc files
    Version,
    Cpuinfo,
    Meminfo,
    Uptime,
    Loadavg,
    Stat,
    Filesystems,
    Cmdline,
    Sys(&'static str),
    /// A /proc/net file (the sandbox has one network stack).
    Net(&'static str),
    // per process (pid) or thread (pid, tid)
    PidStat,
    PidStatm,
    PidStatus,
    PidCmdline,
    PidEnviron,
    PidMaps,
    PidSmaps,
    PidMounts,
    PidMountinfo,
    Kmsg,
    PidComm,
    PidLimits,
    PidOomAdj,
    PidFdInfo(i32),
    /// /proc/PID/{uid_map,gid_map,setgroups}.
    PidIds(super::nsfs::IdFile),
    // /sys files
    CpuRange,
    /// A file of the container's cgroup (`cgroupfs::FILES`).
    Cgroup(&'static str),
    PidCgroup,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Kind {
    Root,
    SysRoot,
    CgroupRoot,
    /// A fixed directory of /proc/sys or /sys: its path below the root.
    Static(&'static str),
    Pid(i32, Option<i32>),
    Tasks(i32),
    Fds(i32),
    FdInfos(i32),
    File(Gen, i32, i32),
    SelfLink,
    ThreadSelf,
    Exe(i32),
    Cwd(i32),
    RootLink(i32),
    Fd(i32, i32),
    Symlink(&'static str),
    /// /proc/PID/ns and its links (by their names in `nsfs::NAMES`).
    NsDir(i32),
    NsLink(i32, &'static str),
}

pub struct PNode {
    k: Arc<Kernel>,
    kind: Kind,
    dev: u64,
}

/// The pid a /proc/PID directory stands for (pidfd_send_signal takes its descriptor).
pub fn pid_dir(inode: &Arc<dyn Inode>) -> Option<i32> {
    match inode.as_any().downcast_ref::<PNode>()?.kind {
        Kind::Pid(p, None) => Some(p),
        _ => None,
    }
}

const PROC_DEV: u64 = 0x16;
const SYS_DEV: u64 = 0x17;
const CGROUP_DEV: u64 = 0x1a;

pub fn proc_root(k: &Arc<Kernel>) -> Arc<dyn Inode> {
    Arc::new(PNode {
        k: k.clone(),
        kind: Kind::Root,
        dev: PROC_DEV,
    })
}

pub fn sys_root(k: &Arc<Kernel>) -> Arc<dyn Inode> {
    Arc::new(PNode {
        k: k.clone(),
        kind: Kind::SysRoot,
        dev: SYS_DEV,
    })
}

/// The container's cgroup (v2), read-only: see `cgroupfs`.
pub fn cgroup_root(k: &Arc<Kernel>) -> Arc<dyn Inode> {
    Arc::new(PNode {
        k: k.clone(),
        kind: Kind::CgroupRoot,
        dev: CGROUP_DEV,
    })
}

/// Fixed files of /proc/sys and /sys: (directory, name, generator).
const SYS_TREE: &[(&str, &str, Gen)] = &[
    ("sys/kernel", "ostype", Gen::Sys("ostype")),
    ("sys/kernel", "osrelease", Gen::Sys("osrelease")),
    ("sys/kernel", "version", Gen::Sys("version")),
    ("sys/kernel", "hostname", Gen::Sys("hostname")),
    ("sys/kernel", "domainname", Gen::Sys("domainname")),
    ("sys/kernel", "pid_max", Gen::Sys("pid_max")),
    ("sys/kernel", "ngroups_max", Gen::Sys("ngroups_max")),
    ("sys/kernel", "cap_last_cap", Gen::Sys("cap_last_cap")),
    ("sys/kernel", "shmmax", Gen::Sys("shmmax")),
    ("sys/kernel", "shmall", Gen::Sys("shmall")),
    ("sys/kernel", "shmmni", Gen::Sys("shmmni")),
    ("sys/kernel", "sem", Gen::Sys("sem")),
    ("sys/kernel", "msgmax", Gen::Sys("msgmax")),
    ("sys/kernel", "msgmnb", Gen::Sys("msgmnb")),
    ("sys/kernel", "msgmni", Gen::Sys("msgmni")),
    ("sysvipc", "msg", Gen::Sys("sysvipc/msg")),
    ("sysvipc", "sem", Gen::Sys("sysvipc/sem")),
    ("sysvipc", "shm", Gen::Sys("sysvipc/shm")),
    ("sys/kernel", "dmesg_restrict", Gen::Sys("dmesg_restrict")),
    ("sys/kernel", "random", Gen::Sys("")),
    ("sys/kernel/random", "boot_id", Gen::Sys("boot_id")),
    ("sys/kernel/random", "uuid", Gen::Sys("uuid")),
    (
        "sys/net/ipv4",
        "ping_group_range",
        Gen::Sys("ping_group_range"),
    ),
    (
        "sys/user",
        "max_user_namespaces",
        Gen::Sys("max_user_namespaces"),
    ),
    ("sys/vm", "overcommit_memory", Gen::Sys("overcommit_memory")),
    ("sys/vm", "max_map_count", Gen::Sys("max_map_count")),
    ("sys/fs", "file-max", Gen::Sys("file-max")),
    ("sys/fs", "nr_open", Gen::Sys("nr_open")),
    ("sys/fs/mqueue", "msg_max", Gen::Sys("msg_max")),
    ("sys/fs/mqueue", "msgsize_max", Gen::Sys("msgsize_max")),
    ("sys/fs/mqueue", "msg_default", Gen::Sys("msg_default")),
    (
        "sys/fs/mqueue",
        "msgsize_default",
        Gen::Sys("msgsize_default"),
    ),
    ("sys/fs/mqueue", "queues_max", Gen::Sys("queues_max")),
    (
        "sys/fs/inotify",
        "max_queued_events",
        Gen::Sys("max_queued_events"),
    ),
    (
        "sys/fs/inotify",
        "max_user_instances",
        Gen::Sys("max_user_instances"),
    ),
    (
        "sys/fs/inotify",
        "max_user_watches",
        Gen::Sys("max_user_watches"),
    ),
    ("net", "dev", Gen::Net("dev")),
    ("net", "if_inet6", Gen::Net("if_inet6")),
    ("net", "route", Gen::Net("route")),
    ("net", "tcp", Gen::Net("tcp")),
    ("net", "tcp6", Gen::Net("tcp6")),
    ("net", "udp", Gen::Net("udp")),
    ("net", "udp6", Gen::Net("udp6")),
    ("net", "unix", Gen::Net("unix")),
    ("net", "raw", Gen::Net("raw")),
    ("net", "raw6", Gen::Net("raw6")),
    ("net", "icmp", Gen::Net("icmp")),
    ("net", "icmp6", Gen::Net("icmp6")),
    ("net", "sockstat", Gen::Net("sockstat")),
    ("net", "sockstat6", Gen::Net("sockstat6")),
];
const SYSFS_TREE: &[(&str, &str, Gen)] = &[
    ("devices/system/cpu", "online", Gen::CpuRange),
    ("devices/system/cpu", "possible", Gen::CpuRange),
    ("devices/system/cpu", "present", Gen::CpuRange),
    // The mount point of the cgroup file system (an empty directory).
    ("fs/cgroup", "", Gen::Sys("")),
];

fn static_children(
    tree: &'static [(&'static str, &'static str, Gen)],
    dir: &str,
) -> Vec<(Vec<u8>, Kind)> {
    let mut v: Vec<(Vec<u8>, Kind)> = vec![];
    for (d, name, g) in tree {
        // Subdirectories implied by deeper paths.
        if let Some(rest) = d.strip_prefix(dir).and_then(|r| {
            if dir.is_empty() {
                Some(r)
            } else {
                r.strip_prefix('/')
            }
        }) {
            if !rest.is_empty() {
                let sub = rest.split('/').next().unwrap_or(rest);
                let full: &'static str = &d[..d.len() - rest.len() + sub.len()];
                if !v.iter().any(|(n, _)| n == sub.as_bytes()) {
                    v.push((sub.as_bytes().to_vec(), Kind::Static(full)));
                }
                continue;
            }
        }
        if *d == dir && !matches!(g, Gen::Sys("")) {
            v.push((name.as_bytes().to_vec(), Kind::File(*g, 0, 0)));
        }
    }
    v
}

fn task_of(k: &Kernel, pid: i32) -> Option<Arc<Task>> {
    let t = k.table.lock();
    t.tasks.get(&pid).cloned().or_else(|| {
        t.procs
            .get(&pid)
            .and_then(|p| p.threads.first())
            .and_then(|x| t.tasks.get(x).cloned())
    })
}

/// A mount's options after its ro/rw (which the mount's flag says), each with a comma.
fn more_opts(opts: &str) -> String {
    opts.split(',')
        .filter(|o| !o.is_empty() && *o != "ro" && *o != "rw")
        .map(|o| format!(",{o}"))
        .collect()
}

/// What is left of a dead process not yet reaped.
struct Zombie {
    ppid: i32,
    pgid: i32,
    sid: i32,
    comm: Vec<u8>,
    uid: u32,
    gid: u32,
    status: i32,
}

fn zombie(k: &Kernel, pid: i32) -> Option<Zombie> {
    let t = k.table.lock();
    let p = t.procs.get(&pid)?;
    Some(Zombie {
        ppid: p.parent,
        pgid: p.pgid,
        sid: p.sid,
        comm: p.exit_comm.clone(),
        uid: p.exit_ids.0,
        gid: p.exit_ids.1,
        status: p.zombie?,
    })
}

fn hash(kind: &Kind) -> u64 {
    (full_hash(kind) & 0xffff_ffff) | 0x1000
}

fn full_hash(kind: &Kind) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{kind:?}").hash(&mut h);
    h.finish()
}

impl PNode {
    fn child(&self, kind: Kind) -> Arc<dyn Inode> {
        Arc::new(PNode {
            k: self.k.clone(),
            kind,
            dev: self.dev,
        })
    }

    fn children(&self) -> Vec<(Vec<u8>, Kind)> {
        let file = |n: &str, g: Gen, p: i32, t: i32| (n.as_bytes().to_vec(), Kind::File(g, p, t));
        match &self.kind {
            Kind::Root => {
                let mut v = vec![
                    (b"self".to_vec(), Kind::SelfLink),
                    (b"thread-self".to_vec(), Kind::ThreadSelf),
                    file("version", Gen::Version, 0, 0),
                    file("cpuinfo", Gen::Cpuinfo, 0, 0),
                    file("meminfo", Gen::Meminfo, 0, 0),
                    file("uptime", Gen::Uptime, 0, 0),
                    file("loadavg", Gen::Loadavg, 0, 0),
                    file("stat", Gen::Stat, 0, 0),
                    file("filesystems", Gen::Filesystems, 0, 0),
                    file("cmdline", Gen::Cmdline, 0, 0),
                    file("kmsg", Gen::Kmsg, 0, 0),
                    (b"mounts".to_vec(), Kind::Symlink("self/mounts")),
                    (b"net".to_vec(), Kind::Symlink("self/net")),
                    (b"sys".to_vec(), Kind::Static("sys")),
                    (b"sysvipc".to_vec(), Kind::Static("sysvipc")),
                ];
                let mut pids: Vec<i32> = self.k.table.lock().procs.keys().copied().collect();
                pids.sort();
                for p in pids {
                    v.push((p.to_string().into_bytes(), Kind::Pid(p, None)));
                }
                v
            }
            Kind::SysRoot => static_children(SYSFS_TREE, ""),
            Kind::CgroupRoot => super::cgroupfs::FILES
                .iter()
                .map(|n| file(n, Gen::Cgroup(n), 0, 0))
                .collect(),
            Kind::Static(d) => {
                if self.dev == SYS_DEV {
                    static_children(SYSFS_TREE, d)
                } else {
                    static_children(SYS_TREE, d)
                }
            }
            Kind::Pid(p, tid) => {
                let (p, t) = (*p, tid.unwrap_or(*p));
                let mut v = vec![
                    (b"exe".to_vec(), Kind::Exe(p)),
                    (b"cwd".to_vec(), Kind::Cwd(p)),
                    (b"root".to_vec(), Kind::RootLink(p)),
                    (b"fd".to_vec(), Kind::Fds(p)),
                    (b"fdinfo".to_vec(), Kind::FdInfos(p)),
                    file("stat", Gen::PidStat, p, t),
                    file("statm", Gen::PidStatm, p, t),
                    file("status", Gen::PidStatus, p, t),
                    file("cmdline", Gen::PidCmdline, p, t),
                    file("environ", Gen::PidEnviron, p, t),
                    file("maps", Gen::PidMaps, p, t),
                    file("smaps", Gen::PidSmaps, p, t),
                    (b"net".to_vec(), Kind::Static("net")),
                    file("mounts", Gen::PidMounts, p, t),
                    file("mountinfo", Gen::PidMountinfo, p, t),
                    file("comm", Gen::PidComm, p, t),
                    file("limits", Gen::PidLimits, p, t),
                    file("oom_score_adj", Gen::PidOomAdj, p, t),
                    file("cgroup", Gen::PidCgroup, p, t),
                    (b"ns".to_vec(), Kind::NsDir(p)),
                    file("uid_map", Gen::PidIds(IdFile::Map(MapKind::Uid)), p, t),
                    file("gid_map", Gen::PidIds(IdFile::Map(MapKind::Gid)), p, t),
                    file("setgroups", Gen::PidIds(IdFile::Setgroups), p, t),
                ];
                if tid.is_none() {
                    v.push((b"task".to_vec(), Kind::Tasks(p)));
                }
                v
            }
            Kind::Tasks(p) => {
                let t = self.k.table.lock();
                let threads = t
                    .procs
                    .get(p)
                    .map(|x| x.threads.clone())
                    .unwrap_or_default();
                threads
                    .into_iter()
                    .map(|x| (x.to_string().into_bytes(), Kind::Pid(*p, Some(x))))
                    .collect()
            }
            Kind::Fds(p) | Kind::FdInfos(p) => {
                let Some(t) = task_of(&self.k, *p) else {
                    return vec![];
                };
                let info = matches!(self.kind, Kind::FdInfos(_));
                t.files()
                    .list()
                    .into_iter()
                    .map(|(fd, _)| {
                        (
                            fd.to_string().into_bytes(),
                            if info {
                                Kind::File(Gen::PidFdInfo(fd), *p, *p)
                            } else {
                                Kind::Fd(*p, fd)
                            },
                        )
                    })
                    .collect()
            }
            Kind::NsDir(p) => super::nsfs::NAMES
                .iter()
                .map(|n| (n.as_bytes().to_vec(), Kind::NsLink(*p, n)))
                .collect(),
            _ => vec![],
        }
    }

    /// The namespace a /proc/PID/ns link stands for, if the caller may see it.
    fn ns_target(&self, p: i32, name: &str) -> KResult<super::nsfs::NsRef> {
        let t = task_of(&self.k, p).ok_or(ENOENT)?;
        if let Some(me) = current() {
            if !super::nsfs::may_read(&me, &t) {
                return Err(EACCES);
            }
        }
        super::nsfs::NsRef::of(&t, name).ok_or(ENOENT)
    }

    fn alive(&self) -> bool {
        let pid = match &self.kind {
            Kind::Pid(p, _)
            | Kind::Tasks(p)
            | Kind::Fds(p)
            | Kind::FdInfos(p)
            | Kind::Exe(p)
            | Kind::Cwd(p)
            | Kind::RootLink(p)
            | Kind::NsDir(p)
            | Kind::NsLink(p, _)
            | Kind::Fd(p, _) => *p,
            Kind::File(_, p, _) if *p != 0 => *p,
            _ => return true,
        };
        task_of(&self.k, pid).is_some() || zombie(&self.k, pid).is_some()
    }

    fn link_target(&self) -> KResult<Vec<u8>> {
        let me = current();
        match &self.kind {
            Kind::SelfLink => Ok(me.map(|t| t.tgid()).unwrap_or(1).to_string().into_bytes()),
            Kind::ThreadSelf => Ok(me
                .map(|t| format!("{}/task/{}", t.tgid(), t.tid()))
                .unwrap_or_default()
                .into_bytes()),
            Kind::Symlink(s) => Ok(s.as_bytes().to_vec()),
            Kind::Exe(p) => Ok(task_of(&self.k, *p)
                .ok_or(ENOENT)?
                .mm()
                .inner
                .lock()
                .exe
                .clone()),
            Kind::Cwd(p) | Kind::RootLink(p) => {
                let t = task_of(&self.k, *p).ok_or(ENOENT)?;
                let fs = t.fsctx();
                let root = fs.root.lock().clone();
                let target = if matches!(self.kind, Kind::Cwd(_)) {
                    fs.cwd.lock().clone()
                } else {
                    root.clone()
                };
                Ok(target.to_bytes(&root))
            }
            Kind::Fd(p, fd) => {
                let t = task_of(&self.k, *p).ok_or(ENOENT)?;
                let f = t.files().get(*fd).map_err(|_| ENOENT)?;
                Ok(describe(&t, &f))
            }
            Kind::NsLink(p, name) => Ok(self.ns_target(*p, name)?.link_text()),
            _ => Err(EINVAL),
        }
    }
}

/// What readlink of /proc/PID/fd/N shows.
fn describe(t: &Task, f: &OpenFile) -> Vec<u8> {
    match &f.path {
        // Sockets live on a private mount; their names read "socket:[N]".
        Some(p) if p.mnt.fstype == "sockfs" || p.mnt.fstype == "pipefs" => p.dentry.name.clone(),
        Some(p) => {
            let root = t.fsctx().root.lock().clone();
            p.to_bytes(&root)
        }
        None => {
            if let Some(name) = f.ops.anon_name() {
                return format!("anon_inode:{name}").into_bytes();
            }
            let host = f.ops.host_fd().is_some();
            let is_tty = f
                .ops
                .as_any()
                .downcast_ref::<host::HostFile>()
                .is_some_and(|h| h.is_tty);
            if is_tty {
                b"/dev/console".to_vec()
            } else if host {
                b"pipe:[1]".to_vec()
            } else {
                format!(
                    "pipe:[{}]",
                    Arc::as_ptr(&f.ops) as *const () as usize as u32 >> 4
                )
                .into_bytes()
            }
        }
    }
}

impl Inode for PNode {
    /// Nodes are made afresh at each lookup; the kind (with the pid it is about) and
    /// the device identify one for mounts on it (OCI masked and read-only paths).
    fn mount_key(&self) -> usize {
        ((1 << 63) | (full_hash(&self.kind) ^ self.dev.rotate_left(40))) as usize
    }
    fn stat(&self) -> Stat {
        let (mode, nlink) = match &self.kind {
            Kind::Root
            | Kind::SysRoot
            | Kind::CgroupRoot
            | Kind::Static(_)
            | Kind::Pid(..)
            | Kind::Tasks(_)
            | Kind::Fds(_)
            | Kind::FdInfos(_) => (S_IFDIR | 0o555, 2),
            Kind::NsDir(_) => (S_IFDIR | 0o511, 2),
            Kind::File(Gen::Sys(n), ..) if writable_sysctl(n) => (S_IFREG | 0o644, 1),
            Kind::File(Gen::Kmsg, ..) => (S_IFREG | 0o400, 1),
            // Linux's modes; writing them is refused (the mount is read-only).
            Kind::File(Gen::Cgroup("cgroup.procs" | "cgroup.threads" | "memory.max"), ..) => {
                (S_IFREG | 0o644, 1)
            }
            Kind::File(Gen::PidOomAdj | Gen::PidComm | Gen::PidIds(_), ..) => (S_IFREG | 0o644, 1),
            Kind::File(..) => (S_IFREG | 0o444, 1),
            Kind::Fd(..) => (S_IFLNK | 0o700, 1),
            _ => (S_IFLNK | 0o777, 1),
        };
        let owner = match &self.kind {
            Kind::Pid(p, _)
            | Kind::Fds(p)
            | Kind::FdInfos(p)
            | Kind::Exe(p)
            | Kind::Cwd(p)
            | Kind::RootLink(p)
            | Kind::NsDir(p)
            | Kind::NsLink(p, _)
            | Kind::Fd(p, _) => task_of(&self.k, *p).map(|t| t.creds()),
            Kind::File(_, p, _) if *p != 0 => task_of(&self.k, *p).map(|t| t.creds()),
            _ => None,
        };
        let t = self.k.boot_time();
        Stat {
            dev: self.dev,
            ino: hash(&self.kind),
            mode,
            nlink,
            uid: owner.as_ref().map(|c| c.euid).unwrap_or(0),
            gid: owner.as_ref().map(|c| c.egid).unwrap_or(0),
            blksize: 1024,
            atime: t,
            mtime: t,
            ctime: t,
            ..Default::default()
        }
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        if !self.stat().is_dir() {
            return Err(ENOTDIR);
        }
        // Any live pid or tid is reachable even if not listed (threads: /proc/TID).
        if self.kind == Kind::Root {
            if let Some(id) = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
            {
                let t = self.k.table.lock();
                if t.procs.contains_key(&id) {
                    return Ok(self.child(Kind::Pid(id, None)));
                }
                if let Some(task) = t.tasks.get(&id) {
                    return Ok(self.child(Kind::Pid(task.tgid(), Some(id))));
                }
                return Err(ENOENT);
            }
        }
        if !self.alive() {
            return Err(ENOENT);
        }
        self.children()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| self.child(k))
            .ok_or(ENOENT)
    }

    fn readdir(&self) -> KResult<Vec<DirEnt>> {
        if !self.stat().is_dir() {
            return Err(ENOTDIR);
        }
        let mut v = vec![
            DirEnt {
                ino: hash(&self.kind),
                kind: 4,
                name: b".".to_vec(),
            },
            DirEnt {
                ino: 1,
                kind: 4,
                name: b"..".to_vec(),
            },
        ];
        for (n, k) in self.children() {
            let node = PNode {
                k: self.k.clone(),
                kind: k,
                dev: self.dev,
            };
            let st = node.stat();
            v.push(DirEnt {
                ino: st.ino,
                kind: st.dtype(),
                name: n,
            });
        }
        Ok(v)
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        self.link_target()
    }

    fn magic(&self, _t: &Task) -> Option<KResult<Magic>> {
        match &self.kind {
            Kind::Fd(p, fd) => Some(
                task_of(&self.k, *p)
                    .ok_or(ENOENT)
                    .and_then(|t| t.files().get(*fd).map_err(|_| ENOENT))
                    .map(Magic::File),
            ),
            Kind::Cwd(p) | Kind::RootLink(p) => Some(task_of(&self.k, *p).ok_or(ENOENT).map(|t| {
                let fs = t.fsctx();
                Magic::Path(if matches!(self.kind, Kind::Cwd(_)) {
                    fs.cwd.lock().clone()
                } else {
                    fs.root.lock().clone()
                })
            })),
            Kind::NsLink(p, name) => Some(self.ns_target(*p, name).map(|n| Magic::Path(n.path()))),
            _ => None,
        }
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        match &self.kind {
            Kind::File(Gen::Kmsg, ..) => {
                let cur = current().ok_or(EPERM)?;
                let cr = cur.creds();
                if !cr.has_cap(crate::kernel::cap::SYSLOG)
                    && !cr.has_cap(crate::kernel::cap::SYS_ADMIN)
                {
                    return Err(EACCES);
                }
                Ok(Arc::new(crate::kernel::klog::ProcKmsg {
                    log: self.k.klog.clone(),
                }))
            }
            Kind::File(Gen::Sys(name), ..) if flags & O_ACCMODE != 0 && writable_sysctl(name) => {
                if current().map(|t| t.creds().euid) != Some(0) {
                    return Err(EACCES);
                }
                Ok(Arc::new(SysctlFile {
                    k: self.k.clone(),
                    name,
                }))
            }
            Kind::File(Gen::PidIds(which), p, _) if flags & O_ACCMODE != 0 => {
                let t = task_of(&self.k, *p).ok_or(ESRCH)?;
                let opener = current().ok_or(EPERM)?.creds();
                Ok(Arc::new(super::nsfs::IdFileWriter {
                    ns: t.creds().user_ns(),
                    which: *which,
                    data: super::nsfs::show_id_file(&t, *which, &opener),
                    opener,
                }))
            }
            Kind::File(Gen::PidComm, _, t) if flags & O_ACCMODE != 0 => Ok(Arc::new(CommFile {
                task: task_of(&self.k, *t).ok_or(ESRCH)?,
            })),
            Kind::File(g, p, t) => {
                if flags & O_ACCMODE != 0 {
                    return Err(EACCES);
                }
                Ok(Arc::new(BytesFile {
                    data: self.generate(*g, *p, *t)?,
                }))
            }
            k if self.stat().is_dir() => {
                let _ = k;
                Ok(Arc::new(DirFile {
                    inode: self.clone(),
                }))
            }
            _ => Err(ELOOP),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn prot_str(v: &crate::mm::Vma) -> String {
    format!(
        "{}{}{}{}",
        if v.prot & PROT_READ != 0 { 'r' } else { '-' },
        if v.prot & PROT_WRITE != 0 { 'w' } else { '-' },
        if v.prot & PROT_EXEC != 0 { 'x' } else { '-' },
        if v.shared { 's' } else { 'p' }
    )
}

fn cpu_range(n: usize) -> String {
    if n <= 1 {
        "0\n".into()
    } else {
        format!("0-{}\n", n - 1)
    }
}

impl PNode {
    fn generate(&self, g: Gen, pid: i32, tid: i32) -> KResult<Vec<u8>> {
        let k = &self.k;
        let task = || task_of(k, tid).or_else(|| task_of(k, pid)).ok_or(ESRCH);
        let s: String = match g {
            Gen::Version => format!(
                "Linux version {} (rvisor@rvisor) (rustc) {}\n",
                crate::kernel::RELEASE,
                crate::kernel::VERSION
            ),
            Gen::Cpuinfo => {
                let host = crate::kernel::host_cpu_model();
                let mut s = String::new();
                for i in 0..k.ncpus {
                    s += &format!("processor\t: {i}\nvendor_id\t: {}\nmodel name\t: {}\ncpu MHz\t\t: 2000.000\ncache size\t: 0 KB\nphysical id\t: 0\nsiblings\t: {n}\ncore id\t\t: {i}\ncpu cores\t: {n}\napicid\t\t: {i}\nfpu\t\t: yes\nflags\t\t: {}\nbogomips\t: 4000.00\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\n\n", host.0, host.1, host.2, n = k.ncpus);
                }
                s
            }
            Gen::Meminfo => {
                let (host_total, _) = crate::kernel::host_memory();
                // The sandbox's total is its memory limit when one is set.
                let total = crate::memfile::memfile()
                    .limit_bytes()
                    .map_or(host_total, |l| l.min(host_total));
                let used = crate::memfile::memfile().used_bytes() / 1024;
                let total = total / 1024;
                let free = total.saturating_sub(used);
                format!(
                    "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nActive:         {used:>8} kB\nInactive:              0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nDirty:                 0 kB\nAnonPages:      {used:>8} kB\nMapped:                0 kB\nShmem:                 0 kB\nCommitLimit:    {total:>8} kB\nCommitted_AS:   {used:>8} kB\nVmallocTotal:   34359738367 kB\n"
                )
            }
            Gen::Uptime => {
                let u = k.uptime().as_secs_f64();
                format!("{u:.2} {:.2}\n", u * k.ncpus as f64)
            }
            Gen::Loadavg => {
                let n = k.table.lock().tasks.len();
                format!("0.00 0.00 0.00 1/{n} {}\n", k.last_pid())
            }
            Gen::Stat => {
                let up = (k.uptime().as_millis() / 10) as u64;
                let mut s = format!("cpu  {up} 0 0 0 0 0 0 0 0 0\n");
                for i in 0..k.ncpus {
                    s += &format!("cpu{i} {} 0 0 0 0 0 0 0 0 0\n", up / k.ncpus as u64);
                }
                let boot = k.boot_time().0;
                let n = k.table.lock().tasks.len();
                s += &format!("intr 0\nctxt 0\nbtime {boot}\nprocesses {}\nprocs_running 1\nprocs_blocked 0\nsoftirq 0\n", k.last_pid());
                let _ = n;
                s
            }
            Gen::Filesystems => {
                "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevpts\nnodev\tmqueue\nnodev\toverlay\n".into()
            }
            Gen::Cmdline => format!("{}\n", k.cmdline),
            Gen::Kmsg => String::new(),
            Gen::Net(name) => super::procnet::generate(k, name),
            Gen::Sys(name) => match name {
                "ostype" => "Linux\n".into(),
                "osrelease" => format!("{}\n", crate::kernel::RELEASE),
                "version" => format!("{}\n", crate::kernel::VERSION),
                "hostname" => format!("{}\n", String::from_utf8_lossy(&cur_ns(k).uts.hostname.lock())),
                "domainname" => format!(
                    "{}\n",
                    String::from_utf8_lossy(&cur_ns(k).uts.domainname.lock())
                ),
                "pid_max" => "4194304\n".into(),
                "ngroups_max" => "65536\n".into(),
                "cap_last_cap" => "40\n".into(),
                "dmesg_restrict" => format!(
                    "{}\n",
                    k.klog.restrict.load(std::sync::atomic::Ordering::Relaxed) as u8
                ),
                "boot_id" => format!("{}\n", k.boot_id),
                "uuid" => {
                    let mut b = [0u8; 16];
                    super::devfs::fill_random(&mut b);
                    format!(
                        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}\n",
                        u32::from_le_bytes(b[0..4].try_into().unwrap_or_default()),
                        u16::from_le_bytes([b[4], b[5]]),
                        u16::from_le_bytes([b[6], b[7]]) & 0xfff,
                        (u16::from_le_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
                        u64::from_le_bytes(b[8..16].try_into().unwrap_or_default())
                            & 0xffff_ffff_ffff
                    )
                }
                "ping_group_range" => crate::net::ping::range_text(k),
                "overcommit_memory" => "0\n".into(),
                "shmmax" | "shmall" | "shmmni" => {
                    let shm = cur_ns(k).ipc.shm.clone();
                    let v = match name {
                        "shmmax" => shm.shmmax.load(Ordering::Relaxed),
                        "shmall" => shm.shmall.load(Ordering::Relaxed),
                        _ => shm.shmmni.load(Ordering::Relaxed) as u64,
                    };
                    format!("{v}\n")
                }
                "sem" => {
                    let l = *cur_ns(k).ipc.sem.limits.lock();
                    format!("{}\t{}\t{}\t{}\n", l[0], l[1], l[2], l[3])
                }
                "msgmax" | "msgmnb" | "msgmni" => {
                    let m = cur_ns(k).ipc.msg.clone();
                    let v = match name {
                        "msgmax" => &m.msgmax,
                        "msgmnb" => &m.msgmnb,
                        _ => &m.msgmni,
                    };
                    format!("{}\n", v.load(Ordering::Relaxed))
                }
                "sysvipc/msg" => {
                    let user = current().map_or_else(crate::kernel::ns::UserNs::init, |t| {
                        t.creds().user_ns()
                    });
                    cur_ns(k).ipc.msg.proc_text(&user)
                }
                "sysvipc/sem" => {
                    let user = current().map_or_else(crate::kernel::ns::UserNs::init, |t| {
                        t.creds().user_ns()
                    });
                    cur_ns(k).ipc.sem.proc_text(&user)
                }
                "sysvipc/shm" => {
                    let user = current().map_or_else(crate::kernel::ns::UserNs::init, |t| {
                        t.creds().user_ns()
                    });
                    cur_ns(k).ipc.shm.proc_text(&user)
                }
                "max_map_count" => "65530\n".into(),
                "file-max" => "9223372036854775807\n".into(),
                "nr_open" => "1048576\n".into(),
                n if super::mqueue::SYSCTL_NAMES.contains(&n) => {
                    format!("{}\n", cur_ns(k).ipc.mqueue().0.limits.get(n).unwrap_or(0))
                }
                "max_queued_events" => format!("{}\n", super::inotify::MAX_QUEUED_EVENTS),
                "max_user_instances" => format!("{}\n", super::inotify::MAX_USER_INSTANCES),
                "max_user_watches" => format!("{}\n", super::inotify::max_user_watches()),
                "max_user_namespaces" => format!("{}\n", crate::kernel::ns::max_user_namespaces()),
                _ => return Err(ENOENT),
            },
            Gen::CpuRange => cpu_range(k.ncpus),
            Gen::Cgroup(name) => super::cgroupfs::generate(k, name).ok_or(ENOENT)?,
            // Everything is in the container's one cgroup, the root of its namespace.
            Gen::PidCgroup => "0::/\n".into(),
            Gen::PidComm | Gen::PidCmdline | Gen::PidStat | Gen::PidStatus
                if task().is_err() =>
            {
                return self.zombie_file(g, pid);
            }
            Gen::PidComm => format!("{}\n", String::from_utf8_lossy(&task()?.name.lock())),
            Gen::PidCmdline => {
                let t = task()?;
                let mm = t.mm();
                let (a, b) = mm.inner.lock().arg_range;
                return Ok(if b > a {
                    mm.read_vec(a, (b - a) as usize).unwrap_or_default()
                } else {
                    vec![]
                });
            }
            Gen::PidEnviron => {
                let t = task()?;
                let mm = t.mm();
                let (a, b) = mm.inner.lock().env_range;
                return Ok(if b > a {
                    mm.read_vec(a, (b - a) as usize).unwrap_or_default()
                } else {
                    vec![]
                });
            }
            Gen::PidMaps | Gen::PidSmaps => {
                let smaps = g == Gen::PidSmaps;
                let t = task()?;
                let mm = t.mm();
                let inner = mm.inner.lock();
                let mut s = String::new();
                for (start, v) in inner.vmas.iter() {
                    let off = match &v.backing {
                        Backing::File { offset, .. } => *offset,
                        Backing::Anon => 0,
                    };
                    let name = if v.name.is_empty()
                        && *start <= inner.brk
                        && inner.brk_start < v.end
                        && inner.brk_start <= *start
                    {
                        "[heap]"
                    } else {
                        &v.name
                    };
                    let line = format!(
                        "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {}",
                        start,
                        v.end,
                        prot_str(v),
                        off,
                        (v.dev_ino.0 >> 8) & 0xfff,
                        v.dev_ino.0 & 0xff,
                        v.dev_ino.1
                    );
                    if name.is_empty() {
                        s += &format!("{line}\n");
                    } else {
                        s += &format!("{line:<73}{name}\n");
                    }
                    if smaps {
                        let size = (v.end - start) / 1024;
                        let rss = mm.resident_in(&inner, *start, v.end) * 4;
                        s += &format!(
                            "Size:           {size:>8} kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\nRss:            {rss:>8} kB\nPss:            {rss:>8} kB\nShared_Clean:          0 kB\nShared_Dirty:          0 kB\nPrivate_Clean:         0 kB\nPrivate_Dirty:  {rss:>8} kB\nReferenced:     {rss:>8} kB\nAnonymous:      {anon:>8} kB\nSwap:                  0 kB\nLocked:                0 kB\n",
                            anon = if matches!(v.backing, Backing::Anon) { rss } else { 0 }
                        );
                    }
                }
                s
            }
            Gen::PidMounts => {
                let t = task()?;
                let root = t.fsctx().root.lock().clone();
                let mut s = String::new();
                for m in t.mounts().list.read().iter() {
                    let at = match &m.parent {
                        Some((pm, pd)) => Path {
                            mnt: pm.clone(),
                            dentry: pd.clone(),
                        }
                        .to_bytes(&root),
                        None => b"/".to_vec(),
                    };
                    s += &format!(
                        "{} {} {} {}{} 0 0\n",
                        m.source,
                        String::from_utf8_lossy(&at),
                        m.fstype,
                        m.show_flags(),
                        more_opts(&m.opts)
                    );
                }
                s
            }
            Gen::PidMountinfo => {
                let t = task()?;
                let root = t.fsctx().root.lock().clone();
                let mut s = String::new();
                for m in t.mounts().list.read().iter() {
                    let (parent, at) = match &m.parent {
                        Some((pm, pd)) => (
                            pm.id,
                            Path {
                                mnt: pm.clone(),
                                dentry: pd.clone(),
                            }
                            .to_bytes(&root),
                        ),
                        None => (m.id, b"/".to_vec()),
                    };
                    let ro = if m.readonly() { "ro" } else { "rw" };
                    let dev = m.root.inode.stat().dev;
                    let fs_opts: String = more_opts(&m.opts)
                        .split(',')
                        .filter(|o| !o.is_empty() && *o != "relatime")
                        .map(|o| format!(",{o}"))
                        .collect();
                    s += &format!(
                        "{} {} {}:{} / {} {},relatime - {} {} {ro}{}\n",
                        m.id,
                        parent,
                        (dev >> 8) & 0xfff,
                        dev & 0xff,
                        String::from_utf8_lossy(&at),
                        m.show_flags(),
                        m.fstype,
                        m.source,
                        fs_opts
                    );
                }
                s
            }
            Gen::PidStatm => {
                let mm = task()?.mm();
                format!("{} {} 0 0 0 0 0\n", mm.total_vm() / 4096, mm.rss_pages())
            }
            Gen::PidStat => self.pid_stat(pid, tid)?,
            Gen::PidStatus => self.pid_status(pid, tid)?,
            Gen::PidLimits => {
                let t = task()?;
                let names = [
                    ("Max cpu time", "seconds"),
                    ("Max file size", "bytes"),
                    ("Max data size", "bytes"),
                    ("Max stack size", "bytes"),
                    ("Max core file size", "bytes"),
                    ("Max resident set", "bytes"),
                    ("Max processes", "processes"),
                    ("Max open files", "files"),
                    ("Max locked memory", "bytes"),
                    ("Max address space", "bytes"),
                    ("Max file locks", "locks"),
                    ("Max pending signals", "signals"),
                    ("Max msgqueue size", "bytes"),
                    ("Max nice priority", ""),
                    ("Max realtime priority", ""),
                    ("Max realtime timeout", "us"),
                ];
                let lim = *t.tg.rlimits.lock();
                let f = |v: u64| {
                    if v == u64::MAX {
                        "unlimited".to_string()
                    } else {
                        v.to_string()
                    }
                };
                let mut s = format!(
                    "{:<26}{:<21}{:<21}{:<10}\n",
                    "Limit", "Soft Limit", "Hard Limit", "Units"
                );
                for (i, (n, u)) in names.iter().enumerate() {
                    s += &format!("{:<26}{:<21}{:<21}{:<10}\n", n, f(lim[i].0), f(lim[i].1), u);
                }
                s
            }
            Gen::PidOomAdj => "0\n".into(),
            Gen::PidIds(which) => {
                let reader = current().map(|t| t.creds()).unwrap_or_default();
                return Ok(super::nsfs::show_id_file(&*task()?, which, &reader));
            }
            Gen::PidFdInfo(fd) => {
                let t = task()?;
                let f = t.files().get(fd).map_err(|_| ENOENT)?;
                let pos = *f.pos.lock();
                let cloexec = t.files().cloexec(fd).unwrap_or(false);
                let flags = f.flags() | if cloexec { O_CLOEXEC } else { 0 };
                let mut s = format!(
                    "pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t{}\nino:\t{}\n",
                    f.path.as_ref().map(|p| p.mnt.id).unwrap_or(0),
                    f.stat().ino
                );
                if let Some(i) = f.ops.as_any().downcast_ref::<super::inotify::Inotify>() {
                    s += &i.fdinfo();
                }
                if let Some(p) = super::pidfd::as_pidfd(&f) {
                    s += &p.fdinfo();
                }
                s
            }
        };
        Ok(s.into_bytes())
    }

    /// A zombie's stat, status, comm and (empty) cmdline, as Linux shows them.
    fn zombie_file(&self, g: Gen, pid: i32) -> KResult<Vec<u8>> {
        let Zombie {
            ppid,
            pgid,
            sid,
            comm,
            uid,
            gid,
            status: st,
        } = zombie(&self.k, pid).ok_or(ESRCH)?;
        let name = String::from_utf8_lossy(&comm).into_owned();
        Ok(match g {
            Gen::PidComm => format!("{name}\n").into_bytes(),
            Gen::PidCmdline => vec![],
            Gen::PidStat => format!(
                "{pid} ({name}) Z {ppid} {pgid} {sid} 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 0 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 {st}\n"
            )
            .into_bytes(),
            _ => format!(
                "Name:\t{name}\nState:\tZ (zombie)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\nTracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\nFDSize:\t0\nGroups:\t\nThreads:\t1\nSigQ:\t0/63432\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n"
            )
            .into_bytes(),
        })
    }

    fn proc_facts(&self, pid: i32) -> KResult<(i32, i32, i32, usize, char)> {
        let t = self.k.table.lock();
        let p = t.procs.get(&pid).ok_or(ESRCH)?;
        let state = if p.zombie.is_some() {
            'Z'
        } else if p.tg.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            'T'
        } else {
            'S'
        };
        Ok((p.parent, p.pgid, p.sid, p.threads.len(), state))
    }

    fn pid_stat(&self, pid: i32, tid: i32) -> KResult<String> {
        let t = task_of(&self.k, tid).ok_or(ESRCH)?;
        let (ppid, pgid, sid, nthreads, state) = self.proc_facts(pid)?;
        let (tty, fg) = super::pty::stat_tty(&t);
        // The whole process for /proc/PID/stat, the thread for .../task/TID/stat.
        let u = if tid == pid {
            crate::kernel::acct::group_usage(&self.k, &t.tg)
        } else {
            crate::kernel::acct::task_usage(&t)
        };
        let cu = *t.tg.children.lock();
        let ticks = |ns: u64| ns / 10_000_000;
        let mm = t.mm();
        let (vsize, rss) = (mm.total_vm(), mm.rss_pages());
        let inner = mm.inner.lock();
        let start = ((t.tg.start - self.k.boot).as_millis() / 10) as u64;
        let name = String::from_utf8_lossy(&t.name.lock()).into_owned();
        let sigmask = t.sigmask.load(std::sync::atomic::Ordering::Relaxed);
        Ok(format!(
            "{tid} ({name}) {state} {ppid} {pgid} {sid} {tty} {fg} 4194560 {minflt} {cminflt} 0 0 {utime} {stime} {cutime} {cstime} 20 0 {nthreads} 0 {start} {vsize} {rss} 18446744073709551615 0 0 {stack} 0 0 0 {sigmask} 0 0 0 0 0 17 0 0 0 0 0 0 {bs} {brk} {brk2} {a0} {a1} {e0} {e1} 0\n",
            minflt = u.minflt,
            cminflt = cu.minflt,
            utime = ticks(u.utime),
            stime = ticks(u.stime),
            cutime = ticks(cu.utime),
            cstime = ticks(cu.stime),
            stack = inner.stack_top,
            bs = inner.brk_start,
            brk = inner.brk_start,
            brk2 = inner.brk,
            a0 = inner.arg_range.0,
            a1 = inner.arg_range.1,
            e0 = inner.env_range.0,
            e1 = inner.env_range.1,
        ))
    }

    fn pid_status(&self, pid: i32, tid: i32) -> KResult<String> {
        let t = task_of(&self.k, tid).ok_or(ESRCH)?;
        let (ppid, _, _, nthreads, state) = self.proc_facts(pid)?;
        // The ids as the reader's user namespace numbers them.
        let reader = current().map(|x| x.creds()).unwrap_or_default();
        let c = crate::kernel::ns::creds_for(t.creds(), &reader);
        let mm = t.mm();
        let rss = mm.rss_pages() * 4;
        let hwm = mm.hiwater_pages() * 4;
        let vm = mm.total_vm() / 1024;
        let nvcsw = t.acct.nvcsw.load(std::sync::atomic::Ordering::Relaxed);
        let nivcsw = t.acct.nivcsw.load(std::sync::atomic::Ordering::Relaxed);
        let acts = *t.tg.actions.lock().lock();
        let (mut ign, mut cgt) = (0u64, 0u64);
        for (i, a) in acts.iter().enumerate().skip(1) {
            if a.handler == 1 {
                ign |= 1 << (i - 1);
            } else if a.handler > 1 {
                cgt |= 1 << (i - 1);
            }
        }
        let state_name = match state {
            'Z' => "Z (zombie)",
            'T' => "T (stopped)",
            _ => "S (sleeping)",
        };
        let (cap_inh, cap_prm, cap_eff, cap_bnd) = (
            c.cap_inheritable,
            c.cap_permitted,
            c.cap_effective,
            c.cap_bset,
        );
        let nnp = t.no_new_privs.load(std::sync::atomic::Ordering::Relaxed) as u8;
        let groups: Vec<String> = c.groups.iter().map(|g| g.to_string()).collect();
        Ok(format!(
            "Name:\t{}\nUmask:\t{:04o}\nState:\t{state_name}\nTgid:\t{pid}\nNgid:\t0\nPid:\t{tid}\nPPid:\t{ppid}\nTracerPid:\t0\nUid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nFDSize:\t64\nGroups:\t{}\nVmPeak:\t{vm:>8} kB\nVmSize:\t{vm:>8} kB\nVmHWM:\t{hwm:>8} kB\nVmRSS:\t{rss:>8} kB\nRssAnon:\t{rss:>8} kB\nThreads:\t{nthreads}\nSigQ:\t0/63432\nSigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\nCapInh:\t{cap_inh:016x}\nCapPrm:\t{cap_prm:016x}\nCapEff:\t{cap_eff:016x}\nCapBnd:\t{cap_bnd:016x}\nCapAmb:\t0000000000000000\nNoNewPrivs:\t{nnp}\nSeccomp:\t0\nCpus_allowed_list:\t{}\nvoluntary_ctxt_switches:\t{nvcsw}\nnonvoluntary_ctxt_switches:\t{nivcsw}\n",
            String::from_utf8_lossy(&t.name.lock()),
            t.fsctx().umask.load(std::sync::atomic::Ordering::Relaxed),
            c.uid,
            c.euid,
            c.suid,
            c.fsuid,
            c.gid,
            c.egid,
            c.sgid,
            c.fsgid,
            groups.join(" "),
            t.pending.lock().mask,
            t.tg.pending.lock().mask,
            t.sigmask.load(std::sync::atomic::Ordering::Relaxed),
            cpu_range(self.k.ncpus).trim(),
        ))
    }
}

/// /proc/PID/comm and /proc/PID/task/TID/comm opened for writing: a thread of the
/// writer's own process gets the name written (at most 15 bytes), as PR_SET_NAME.
struct CommFile {
    task: Arc<Task>,
}

impl FileOps for CommFile {
    fn write(&self, _f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        if self.task.tgid() != t.tgid() {
            return Err(EINVAL);
        }
        *self.task.name.lock() = buf
            .iter()
            .copied()
            .take(15)
            .take_while(|b| *b != 0)
            .collect();
        Ok(buf.len())
    }
    fn read(&self, _f: &OpenFile, _t: &Task, buf: &mut [u8], off: u64) -> KResult<usize> {
        let mut data = self.task.name.lock().clone();
        data.push(b'\n');
        let off = off.min(data.len() as u64) as usize;
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        Ok(n)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The /proc/sys files a sandbox can change, by their OCI (sysctl(8)) names.
const SYSCTLS: [(&str, &str); 16] = [
    ("kernel.msgmax", "msgmax"),
    ("kernel.msgmnb", "msgmnb"),
    ("kernel.msgmni", "msgmni"),
    ("kernel.sem", "sem"),
    ("kernel.shmmax", "shmmax"),
    ("kernel.shmall", "shmall"),
    ("kernel.shmmni", "shmmni"),
    ("kernel.hostname", "hostname"),
    ("kernel.domainname", "domainname"),
    ("kernel.dmesg_restrict", "dmesg_restrict"),
    ("net.ipv4.ping_group_range", "ping_group_range"),
    ("fs.mqueue.msg_max", "msg_max"),
    ("fs.mqueue.msgsize_max", "msgsize_max"),
    ("fs.mqueue.msg_default", "msg_default"),
    ("fs.mqueue.msgsize_default", "msgsize_default"),
    ("fs.mqueue.queues_max", "queues_max"),
];

/// Set sysctl `key` (e.g. net.ipv4.ping_group_range, or with slashes) as a write of
/// `value` to its /proc/sys file would; the ones the Sentry does not have are errors
/// (the caller says they were not applied).
pub fn set_sysctl(k: &Arc<Kernel>, key: &str, value: &[u8]) -> Result<(), String> {
    let key = key.replace('/', ".");
    let Some((_, name)) = SYSCTLS.iter().find(|(n, _)| *n == key) else {
        return Err(format!("sysctl {key}: not emulated by the Sentry"));
    };
    write_sysctl(k, name, value)
        .map_err(|e| format!("sysctl {key}={}: {e:?}", String::from_utf8_lossy(value)))
}

/// The namespaces of the task using /proc (the first ones when the Sentry itself does).
fn cur_ns(k: &Kernel) -> Arc<crate::kernel::ns::NsSet> {
    current().map_or_else(|| k.ns.clone(), |t| t.ns())
}

fn write_sysctl(k: &Arc<Kernel>, name: &str, buf: &[u8]) -> KResult<()> {
    let v: Vec<u8> = buf.strip_suffix(b"\n").unwrap_or(buf).to_vec();
    match name {
        "hostname" | "domainname" => {
            if v.len() > 64 {
                return Err(EINVAL);
            }
            let ns = cur_ns(k);
            *(if name == "hostname" {
                &ns.uts.hostname
            } else {
                &ns.uts.domainname
            })
            .lock() = v;
        }
        "ping_group_range" => crate::net::ping::set_range(k, buf)?,
        "msgmax" | "msgmnb" | "msgmni" => {
            // Non-negative ints (msgmni at most IPCMNI).
            let n: i32 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|n| *n >= 0 && (name != "msgmni" || *n <= crate::ipc::IPCMNI as i32))
                .ok_or(EINVAL)?;
            let m = cur_ns(k).ipc.msg.clone();
            match name {
                "msgmax" => &m.msgmax,
                "msgmnb" => &m.msgmnb,
                _ => &m.msgmni,
            }
            .store(n as u32, Ordering::Relaxed);
        }
        "sem" => {
            // Four numbers (Linux's proc_ipc_sem_dointvec; semmni at most IPCMNI).
            let l: Vec<i32> = std::str::from_utf8(&v)
                .map_err(|_| EINVAL)?
                .split_whitespace()
                .map(|x| x.parse().map_err(|_| EINVAL))
                .collect::<KResult<_>>()?;
            let l: [i32; 4] = l.try_into().map_err(|_| EINVAL)?;
            if !(0..=crate::ipc::IPCMNI as i32).contains(&l[3]) {
                return Err(EINVAL);
            }
            *cur_ns(k).ipc.sem.limits.lock() = l;
        }
        "shmmax" | "shmall" | "shmmni" => {
            let s = std::str::from_utf8(&v).map_err(|_| EINVAL)?.trim();
            let shm = cur_ns(k).ipc.shm.clone();
            if name == "shmmni" {
                let n: u32 = s
                    .parse()
                    .ok()
                    .filter(|n| *n <= crate::ipc::IPCMNI)
                    .ok_or(EINVAL)?;
                shm.shmmni.store(n, Ordering::Relaxed);
            } else {
                let n: u64 = s.parse().map_err(|_| EINVAL)?;
                if name == "shmmax" {
                    shm.shmmax.store(n, Ordering::Relaxed);
                } else {
                    shm.shmall.store(n, Ordering::Relaxed);
                }
            }
        }
        "max_user_namespaces" => {
            let n: i32 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|n| *n >= 0)
                .ok_or(EINVAL)?;
            crate::kernel::ns::set_max_user_namespaces(n as u64);
        }
        n if super::mqueue::SYSCTL_NAMES.contains(&n) => {
            let v: i64 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or(EINVAL)?;
            cur_ns(k).ipc.mqueue().0.limits.set(n, v)?;
        }
        _ => {
            let n: u8 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or(EINVAL)?;
            if n > 1 {
                return Err(EINVAL);
            }
            k.klog
                .restrict
                .store(n == 1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok(())
}

/// A writable /proc/sys file (hostname, domainname, dmesg_restrict, ping_group_range,
/// mqueue limits).
struct SysctlFile {
    k: Arc<Kernel>,
    name: &'static str,
}

impl FileOps for SysctlFile {
    fn write(&self, _f: &OpenFile, _t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        write_sysctl(&self.k, self.name, buf)?;
        Ok(buf.len())
    }
    fn read(&self, _f: &OpenFile, _t: &Task, _buf: &mut [u8], _off: u64) -> KResult<usize> {
        Err(EBADF)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The /proc/sys files a writer may change (mode 0644).
fn writable_sysctl(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "hostname",
        "domainname",
        "dmesg_restrict",
        "ping_group_range",
        "max_user_namespaces",
        "shmmax",
        "shmall",
        "shmmni",
        "sem",
        "msgmax",
        "msgmnb",
        "msgmni",
    ];
    NAMES.contains(&name) || super::mqueue::SYSCTL_NAMES.contains(&name)
}

//! The virtual file system: inodes, open file descriptions, mounts and path walk.

pub mod anonfs;
pub mod cgroupfs;
pub mod devfs;
pub mod devpts;
pub mod dnotify;
pub mod epoll;
pub mod eventfd;
pub mod fasync;
pub mod fdtable;
pub mod goferfs;
pub mod host;
pub mod inotify;
pub mod lock;
pub mod memfs;
pub mod mqueue;
pub mod nsfs;
pub mod pidfd;
pub mod pipe;
pub mod procfs;
mod procnet;
pub mod pty;
pub mod signalfd;
pub mod timerfd;

use crate::errno::*;
use crate::kernel::{Creds, Task};
use crate::mm::MapSource;
use crate::waitq::WaitQueue;
use parking_lot::{Mutex, RwLock};
use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

pub const POLLIN: u32 = 0x1;
pub const POLLPRI: u32 = 0x2;
pub const POLLOUT: u32 = 0x4;
pub const POLLERR: u32 = 0x8;
pub const POLLHUP: u32 = 0x10;
pub const POLLNVAL: u32 = 0x20;
pub const POLLRDNORM: u32 = 0x40;
pub const POLLWRNORM: u32 = 0x100;
pub const POLLRDHUP: u32 = 0x2000;

#[derive(Debug, Clone, Copy, Default)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    pub fn is_lnk(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
    pub fn is_reg(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    pub fn dtype(&self) -> u8 {
        ((self.mode & S_IFMT) >> 12) as u8
    }
}

#[derive(Debug, Clone)]
pub struct DirEnt {
    pub ino: u64,
    pub kind: u8,
    pub name: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<(i64, i64)>,
    pub mtime: Option<(i64, i64)>,
}

/// What a "magic" /proc link (fd/N, exe, cwd) stands for.
pub enum Magic {
    Path(Path),
    File(Arc<OpenFile>),
}

/// A file system object.
pub trait Inode: Send + Sync + Any {
    fn stat(&self) -> Stat;
    /// What identifies this inode as a mount point: by default the object itself; a
    /// file system that makes a new object at each lookup (procfs) gives a stable key.
    fn mount_key(&self) -> usize {
        self as *const Self as *const () as usize
    }
    fn lookup(&self, _name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Err(ENOTDIR)
    }
    fn readdir(&self) -> KResult<Vec<DirEnt>> {
        Err(ENOTDIR)
    }
    fn readlink(&self) -> KResult<Vec<u8>> {
        Err(EINVAL)
    }
    /// For /proc's magic links: what following the link reaches.
    fn magic(&self, _t: &Task) -> Option<KResult<Magic>> {
        None
    }
    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>>;
    fn create(&self, _name: &[u8], _mode: u32, _c: &Creds) -> KResult<Arc<dyn Inode>> {
        Err(EPERM)
    }
    fn mknod(&self, _name: &[u8], _mode: u32, _rdev: u64, _c: &Creds) -> KResult<Arc<dyn Inode>> {
        Err(EPERM)
    }
    fn mkdir(&self, _name: &[u8], _mode: u32, _c: &Creds) -> KResult<Arc<dyn Inode>> {
        Err(EPERM)
    }
    fn symlink(&self, _name: &[u8], _target: &[u8], _c: &Creds) -> KResult<Arc<dyn Inode>> {
        Err(EPERM)
    }
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> KResult<()> {
        Err(EPERM)
    }
    fn unlink(&self, _name: &[u8], _dir: bool) -> KResult<()> {
        Err(EPERM)
    }
    fn rename(
        &self,
        _old: &[u8],
        _newdir: &Arc<dyn Inode>,
        _new: &[u8],
        _flags: u32,
    ) -> KResult<()> {
        Err(EXDEV)
    }
    /// O_TMPFILE: a regular file on this directory's file system, in no directory.
    fn tmpfile(&self, _mode: u32, _c: &Creds) -> KResult<Arc<dyn Inode>> {
        Err(EOPNOTSUPP)
    }
    fn setattr(&self, _a: &SetAttr) -> KResult<()> {
        Err(EPERM)
    }
    fn getxattr(&self, _name: &[u8]) -> KResult<Vec<u8>> {
        Err(EOPNOTSUPP)
    }
    fn setxattr(&self, _name: &[u8], _value: &[u8], _flags: u32) -> KResult<()> {
        Err(EOPNOTSUPP)
    }
    fn listxattr(&self) -> KResult<Vec<Vec<u8>>> {
        Ok(vec![])
    }
    fn removexattr(&self, _name: &[u8]) -> KResult<()> {
        Err(EOPNOTSUPP)
    }
    fn as_any(&self) -> &dyn Any;
}

/// The operations of an open file description.
pub trait FileOps: Send + Sync + Any {
    fn read(&self, _f: &OpenFile, _t: &Task, _buf: &mut [u8], _off: u64) -> KResult<usize> {
        Err(EINVAL)
    }
    fn write(&self, _f: &OpenFile, _t: &Task, _buf: &[u8], _off: u64) -> KResult<usize> {
        Err(EINVAL)
    }
    /// Whether reads and writes use and move the file offset.
    fn seekable(&self) -> bool {
        false
    }
    /// The size SEEK_END is relative to.
    fn size(&self) -> u64 {
        0
    }
    /// Ready events (POLL* bits).
    fn poll(&self) -> u32 {
        POLLIN | POLLOUT
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        None
    }
    fn ioctl(&self, _f: &OpenFile, _t: &Task, _cmd: u32, _arg: u64) -> SysResult {
        Err(ENOTTY)
    }
    fn mmap_source(&self) -> Option<Arc<dyn MapSource>> {
        None
    }
    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(EINVAL)
    }
    /// fallocate(2) with a mode and range the caller has checked.
    fn fallocate(&self, _mode: u32, _off: u64, _len: u64) -> KResult<()> {
        Err(EOPNOTSUPP)
    }
    /// lseek SEEK_DATA (`data`) / SEEK_HOLE; None: the whole file is data.
    fn seek_data_hole(&self, _off: u64, _data: bool) -> Option<KResult<u64>> {
        None
    }
    /// For anonymous-inode files (epoll, eventfd, ...): the name /proc shows as
    /// `anon_inode:NAME`; fstat then reports mode 0600 with no file type.
    fn anon_name(&self) -> Option<&'static str> {
        None
    }
    /// Whether O_ASYNC makes this file send SIGIO (Linux's `->fasync`; sockets always
    /// do). Notifications of `wait_queue` then become signals (vfs::fasync).
    fn fasync(&self) -> bool {
        false
    }
    /// For a terminal: its foreground process group, 0 when it has none. O_ASYNC on a
    /// terminal without an owner makes that group (or else the caller) the owner.
    fn tty_pgrp(&self) -> Option<i32> {
        None
    }
    /// A host fd to hand to the platform-independent host paths (poll on host ttys).
    fn host_fd(&self) -> Option<i32> {
        None
    }
    fn as_any(&self) -> &dyn Any;
}

pub const O_ACCMODE: u32 = 3;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_NOCTTY: u32 = 0o400;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_PATH: u32 = 0o10000000;
pub const O_TMPFILE: u32 = 0o20000000 | O_DIRECTORY;

/// An open file description.
pub struct OpenFile {
    pub ops: Arc<dyn FileOps>,
    pub path: Option<Path>,
    pub flags: AtomicU32,
    pub pos: Mutex<u64>,
    /// getdents64 state: the listing taken at the first call, and how far we got.
    pub dir: Mutex<Option<(Vec<DirEnt>, usize)>>,
    /// F_SETOWN / F_SETSIG: who gets SIGIO, and which signal.
    pub fown: Mutex<fasync::Owner>,
    /// The O_ASYNC registration, while O_ASYNC is on and the file supports it.
    pub fasync: Mutex<Option<Arc<fasync::Reg>>>,
}

impl OpenFile {
    pub fn new(ops: Arc<dyn FileOps>, path: Option<Path>, flags: u32) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            ops,
            path,
            flags: AtomicU32::new(flags & !O_CLOEXEC),
            pos: Mutex::new(0),
            dir: Mutex::new(None),
            fown: Mutex::new(Default::default()),
            fasync: Mutex::new(None),
        })
    }
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }
    pub fn readable(&self) -> bool {
        self.flags() & O_PATH == 0 && self.flags() & O_ACCMODE != O_WRONLY
    }
    pub fn writable(&self) -> bool {
        self.flags() & O_PATH == 0 && self.flags() & O_ACCMODE != 0
    }
    pub fn nonblock(&self) -> bool {
        self.flags() & O_NONBLOCK != 0
    }
    pub fn inode(&self) -> Option<&Arc<dyn Inode>> {
        self.path.as_ref().map(|p| &p.dentry.inode)
    }
    pub fn stat(&self) -> Stat {
        match self.inode() {
            Some(i) => i.stat(),
            None if self.ops.anon_name().is_some() => Stat {
                mode: 0o600,
                nlink: 1,
                blksize: 4096,
                dev: 0xd,
                ..Default::default()
            },
            None => Stat {
                mode: S_IFIFO | 0o600,
                nlink: 1,
                blksize: 4096,
                ..Default::default()
            },
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        inotify::file_closed(self);
        fasync::file_closed(self);
    }
}

/// A name in the tree. Dentries are made as paths are walked; the inode is what counts.
pub struct Dentry {
    pub name: Vec<u8>,
    pub parent: Option<Arc<Dentry>>,
    pub inode: Arc<dyn Inode>,
}

pub struct Mount {
    pub id: u32,
    pub root: Arc<Dentry>,
    /// Where it is mounted: the parent mount and the dentry covered.
    pub parent: Option<(Arc<Mount>, Arc<Dentry>)>,
    pub fstype: String,
    pub source: String,
    /// Per-mount flags: MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC (remount changes them).
    pub flags: AtomicU32,
    /// The file system's own options, as /proc/self/mounts shows them after the flags.
    pub opts: String,
}

pub const MS_RDONLY: u32 = 1;
pub const MS_NOSUID: u32 = 2;
pub const MS_NODEV: u32 = 4;
pub const MS_NOEXEC: u32 = 8;
/// The flags kept per mount.
pub const MNT_FLAGS: u32 = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

impl Mount {
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed) & MNT_FLAGS
    }
    pub fn readonly(&self) -> bool {
        self.flags() & MS_RDONLY != 0
    }
    /// "rw" or "ro", then nosuid, nodev, noexec as set.
    pub fn show_flags(&self) -> String {
        let f = self.flags();
        let mut s = String::from(if f & MS_RDONLY != 0 { "ro" } else { "rw" });
        for (bit, name) in [
            (MS_NOSUID, "nosuid"),
            (MS_NODEV, "nodev"),
            (MS_NOEXEC, "noexec"),
        ] {
            if f & bit != 0 {
                s += ",";
                s += name;
            }
        }
        s
    }
}

#[derive(Clone)]
pub struct Path {
    pub mnt: Arc<Mount>,
    pub dentry: Arc<Dentry>,
}

pub fn inode_key(i: &Arc<dyn Inode>) -> usize {
    Arc::as_ptr(i) as *const () as usize
}

impl Path {
    /// The absolute path as the task's root sees it.
    pub fn to_bytes(&self, root: &Path) -> Vec<u8> {
        let mut parts: Vec<Vec<u8>> = vec![];
        let mut mnt = self.mnt.clone();
        let mut d = self.dentry.clone();
        loop {
            if Arc::ptr_eq(&mnt, &root.mnt) && Arc::ptr_eq(&d.inode, &root.dentry.inode) {
                break;
            }
            if Arc::ptr_eq(&d, &mnt.root) || d.parent.is_none() {
                match mnt.parent.clone() {
                    Some((pm, pd)) => {
                        mnt = pm;
                        d = pd;
                        continue;
                    }
                    None => break,
                }
            }
            parts.push(d.name.clone());
            d = d.parent.clone().expect("parent");
        }
        if parts.is_empty() {
            return b"/".to_vec();
        }
        let mut out = vec![];
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        out
    }
}

/// The mount table of one mount namespace.
pub struct Mounts {
    pub list: RwLock<Vec<Arc<Mount>>>,
    /// The namespace's nsfs inode number (/proc/PID/ns/mnt).
    pub ino: u32,
    /// Set when a user namespace other than the first owns it (kernel::ns).
    pub owner: std::sync::OnceLock<crate::kernel::ns::MntOwner>,
}

/// Mount ids are unique across namespaces.
static NEXT_MOUNT_ID: AtomicU32 = AtomicU32::new(1);

impl Default for Mounts {
    fn default() -> Self {
        Self::new()
    }
}

impl Mounts {
    pub fn new() -> Mounts {
        Mounts {
            list: RwLock::new(vec![]),
            ino: crate::kernel::ns::alloc_ino(),
            owner: std::sync::OnceLock::new(),
        }
    }

    pub fn add(
        &self,
        root: Arc<dyn Inode>,
        at: Option<&Path>,
        fstype: &str,
        source: &str,
        readonly: bool,
        opts: &str,
    ) -> Arc<Mount> {
        // Flag words in `opts` become the mount's flags.
        let mut flags = if readonly { MS_RDONLY } else { 0 };
        let mut rest = vec![];
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => flags |= MS_RDONLY,
                "rw" => {}
                "nosuid" => flags |= MS_NOSUID,
                "nodev" => flags |= MS_NODEV,
                "noexec" => flags |= MS_NOEXEC,
                x => rest.push(x),
            }
        }
        let name = at
            .map(|p| p.dentry.name.clone())
            .unwrap_or_else(|| b"/".to_vec());
        let m = Arc::new(Mount {
            id: NEXT_MOUNT_ID.fetch_add(1, Ordering::Relaxed),
            root: Arc::new(Dentry {
                name,
                parent: None,
                inode: root,
            }),
            parent: at.map(|p| (p.mnt.clone(), p.dentry.clone())),
            fstype: fstype.into(),
            source: source.into(),
            flags: AtomicU32::new(flags),
            opts: rest.join(","),
        });
        self.list.write().push(m.clone());
        m
    }

    /// Mount `root` (a dentry of some mounted tree) at `at` with the flags and names
    /// of `like`: a bind mount, or a mount copied into a new namespace.
    pub fn add_like(
        &self,
        like: &Mount,
        root: Arc<Dentry>,
        at: Option<(Arc<Mount>, Arc<Dentry>)>,
    ) -> Arc<Mount> {
        let m = Arc::new(Mount {
            id: NEXT_MOUNT_ID.fetch_add(1, Ordering::Relaxed),
            root,
            parent: at,
            fstype: like.fstype.clone(),
            source: like.source.clone(),
            flags: AtomicU32::new(like.flags()),
            opts: like.opts.clone(),
        });
        self.list.write().push(m.clone());
        m
    }

    /// A copy of this namespace (unshare(CLONE_NEWNS)): the new mounts, and for each
    /// old mount id the copy made of it.
    pub fn copy(&self) -> (Mounts, std::collections::HashMap<u32, Arc<Mount>>) {
        let new = Mounts::new();
        let mut map: std::collections::HashMap<u32, Arc<Mount>> = Default::default();
        for m in self.list.read().iter() {
            let parent = m.parent.as_ref().map(|(pm, pd)| {
                (
                    map.get(&pm.id).cloned().unwrap_or_else(|| pm.clone()),
                    pd.clone(),
                )
            });
            let c = new.add_like(m, m.root.clone(), parent);
            map.insert(m.id, c);
        }
        (new, map)
    }

    /// The mount (most recent first) whose mountpoint is `p`, if any.
    pub fn mounted_on(&self, p: &Path) -> Option<Arc<Mount>> {
        let key = p.dentry.inode.mount_key();
        self.list
            .read()
            .iter()
            .rev()
            .find(|m| {
                m.parent
                    .as_ref()
                    .is_some_and(|(pm, pd)| pm.id == p.mnt.id && pd.inode.mount_key() == key)
            })
            .cloned()
    }
}

/// Permission check: may `c` access a file with `st` for `mask` (4 read, 2 write, 1 exec)?
/// As Linux's generic_permission: the owner, group or other bits, then the capability
/// overrides (CAP_DAC_READ_SEARCH for reading and searching, CAP_DAC_OVERRIDE for
/// everything but executing a file with no exec bit at all).
pub fn may_access(st: &Stat, c: &Creds, mask: u32) -> bool {
    use crate::kernel::cap;
    let bits = if c.fsuid == st.uid {
        st.mode >> 6
    } else if c.fsgid == st.gid || c.groups.contains(&st.gid) {
        st.mode >> 3
    } else {
        st.mode
    } & 7;
    if bits & mask == mask {
        return true;
    }
    // In a user namespace the capabilities count for files whose ids it maps.
    let has = |cap| c.capable_wrt(cap, st.uid, st.gid);
    if st.is_dir() {
        return (mask & 2 == 0 && has(cap::DAC_READ_SEARCH)) || has(cap::DAC_OVERRIDE);
    }
    if mask == 4 && has(cap::DAC_READ_SEARCH) {
        return true;
    }
    (mask & 1 == 0 || st.mode & 0o111 != 0) && has(cap::DAC_OVERRIDE)
}

pub const MAX_SYMLINKS: u32 = 40;

/// Context for a path walk.
pub struct Walk<'a> {
    pub root: &'a Path,
    pub creds: &'a Creds,
    pub mounts: &'a Mounts,
    pub task: &'a Task,
}

impl Walk<'_> {
    fn step(&self, cur: &Path, name: &[u8]) -> KResult<Path> {
        let st = cur.dentry.inode.stat();
        if !st.is_dir() {
            return Err(ENOTDIR);
        }
        if !may_access(&st, self.creds, 1) {
            return Err(EACCES);
        }
        if name == b"." {
            return Ok(cur.clone());
        }
        if name == b".." {
            let mut p = cur.clone();
            if Arc::ptr_eq(&p.mnt, &self.root.mnt)
                && Arc::ptr_eq(&p.dentry.inode, &self.root.dentry.inode)
            {
                return Ok(p);
            }
            while Arc::ptr_eq(&p.dentry, &p.mnt.root) {
                match p.mnt.parent.clone() {
                    Some((m, d)) => p = Path { mnt: m, dentry: d },
                    None => return Ok(p),
                }
            }
            let parent = p.dentry.parent.clone().unwrap_or_else(|| p.dentry.clone());
            return Ok(Path {
                mnt: p.mnt,
                dentry: parent,
            });
        }
        if name.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        let inode = cur.dentry.inode.lookup(name)?;
        let mut p = Path {
            mnt: cur.mnt.clone(),
            dentry: Arc::new(Dentry {
                name: name.to_vec(),
                parent: Some(cur.dentry.clone()),
                inode,
            }),
        };
        while let Some(m) = self.mounts.mounted_on(&p) {
            p = Path {
                mnt: m.clone(),
                dentry: m.root.clone(),
            };
        }
        Ok(p)
    }

    /// Walk `path` from `start`. With `follow`, a symlink in the last component is
    /// followed. Returns the final path.
    pub fn walk(&self, start: &Path, path: &[u8], follow: bool) -> KResult<Path> {
        let mut budget = MAX_SYMLINKS;
        self.walk_inner(start, path, follow, &mut budget)
    }

    fn walk_inner(
        &self,
        start: &Path,
        path: &[u8],
        follow: bool,
        budget: &mut u32,
    ) -> KResult<Path> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        if path.len() >= 4096 {
            return Err(ENAMETOOLONG);
        }
        let mut cur = if path[0] == b'/' {
            self.root.clone()
        } else {
            start.clone()
        };
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let trailing_slash = path.len() > 1 && path.ends_with(b"/");
        for (i, c) in comps.iter().enumerate() {
            let last = i == comps.len() - 1;
            let next = self.step(&cur, c)?;
            let st = next.dentry.inode.stat();
            if st.is_lnk() && (!last || follow || trailing_slash) {
                if *budget == 0 {
                    return Err(ELOOP);
                }
                *budget -= 1;
                if let Some(m) = next.dentry.inode.magic(self.task) {
                    match m? {
                        Magic::Path(p) => cur = p,
                        Magic::File(f) => match &f.path {
                            Some(p) => cur = p.clone(),
                            None => return Err(ENOENT),
                        },
                    }
                    continue;
                }
                let target = next.dentry.inode.readlink()?;
                cur = self.walk_inner(&cur, &target, true, budget)?;
            } else {
                cur = next;
            }
        }
        if trailing_slash && !cur.dentry.inode.stat().is_dir() {
            return Err(ENOTDIR);
        }
        Ok(cur)
    }

    /// Walk all but the last component: (parent directory, last name).
    pub fn walk_parent(&self, start: &Path, path: &[u8]) -> KResult<(Path, Vec<u8>)> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        if path.len() >= 4096 {
            return Err(ENAMETOOLONG);
        }
        let trimmed: &[u8] = {
            let mut p = path;
            while p.len() > 1 && p.ends_with(b"/") {
                p = &p[..p.len() - 1];
            }
            p
        };
        let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(0) => (&b"/"[..], &trimmed[1..]),
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b"."[..], trimmed),
        };
        let parent = if dir == b"." {
            start.clone()
        } else {
            self.walk(start, dir, true)?
        };
        if !parent.dentry.inode.stat().is_dir() {
            return Err(ENOTDIR);
        }
        if name.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        Ok((parent, name.to_vec()))
    }
}

/// A file made of bytes fixed at open (used by /proc and friends).
pub struct BytesFile {
    pub data: Vec<u8>,
}

impl FileOps for BytesFile {
    fn read(&self, _f: &OpenFile, _t: &Task, buf: &mut [u8], off: u64) -> KResult<usize> {
        let off = off.min(self.data.len() as u64) as usize;
        let n = buf.len().min(self.data.len() - off);
        buf[..n].copy_from_slice(&self.data[off..off + n]);
        Ok(n)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The open file of a directory: listing happens through the inode.
pub struct DirFile {
    pub inode: Arc<dyn Inode>,
}

impl FileOps for DirFile {
    fn read(&self, _f: &OpenFile, _t: &Task, _buf: &mut [u8], _off: u64) -> KResult<usize> {
        Err(EISDIR)
    }
    fn write(&self, _f: &OpenFile, _t: &Task, _buf: &[u8], _off: u64) -> KResult<usize> {
        Err(EISDIR)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Owner, mode and times of a node whose file system keeps no more about it (devpts
/// nodes, message queues).
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Meta {
    /// Permission bits `mode` (file type bits dropped), owned by uid:gid, times now.
    pub fn new(mode: u32, uid: u32, gid: u32) -> Meta {
        let t = now();
        Meta {
            mode: mode & 0o7777,
            uid,
            gid,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    /// chmod, chown, utimes (a size is EINVAL: such nodes have no data to truncate).
    pub fn set(&mut self, a: &SetAttr) -> KResult<()> {
        if a.size.is_some() {
            return Err(EINVAL);
        }
        if let Some(m) = a.mode {
            self.mode = m & 0o7777;
        }
        if let Some(u) = a.uid {
            self.uid = u;
        }
        if let Some(g) = a.gid {
            self.gid = g;
        }
        if let Some(t) = a.atime {
            self.atime = t;
        }
        if let Some(t) = a.mtime {
            self.mtime = t;
        }
        self.ctime = now();
        Ok(())
    }
}

pub fn now() -> (i64, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}

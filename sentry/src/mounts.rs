//! The mounts a container's config asks for beyond the root: tmpfs (in the Sentry's
//! memory), bind mounts (served by a gofer of their own), and the kernel file systems
//! (proc, sysfs, devpts) at places other than their usual ones.

use crate::errno::*;
use crate::kernel::{Creds, Kernel, Task};
use crate::vfs::{self, memfs::MemFs, Dentry, Inode, Path};
use crate::vfs::{Mounts, MNT_FLAGS, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub enum Kind {
    /// An empty in-memory file system; with fstype `mqueue`, the sandbox's message
    /// queues.
    Tmpfs {
        mode: u32,
        fstype: String,
        /// `size=` in bytes and `nr_inodes=` (0: no limit).
        size: u64,
        nr_inodes: u64,
    },
    /// A host directory or file served by the gofer `client` talks to (the gofer's
    /// root is the directory; `file` names the file in it for a file bind mount; one
    /// gofer may serve several mounts). Reads and writes go through to the host
    /// (`vfs::goferfs`).
    Gofer {
        client: Arc<gofer::Client>,
        file: Option<Vec<u8>>,
    },
    Proc,
    Sysfs,
    Devpts,
    /// The container's cgroup, read-only cgroup v2 (`vfs::cgroupfs`).
    Cgroup,
    /// The tree already at the target, again, read-only (OCI readonlyPaths); nothing
    /// if the target does not exist.
    ReadonlyAgain,
    /// Hide what is at the target (OCI maskedPaths): an empty read-only directory, or
    /// for a file the null device (as runc binds /dev/null); nothing if the target does
    /// not exist.
    Mask,
}

pub struct Spec {
    /// Absolute path inside the container.
    pub target: Vec<u8>,
    pub kind: Kind,
    pub readonly: bool,
    /// Mount flags given as words: "nosuid", "nodev", "noexec", comma-separated.
    pub flags: String,
    /// What /proc/mounts shows as the source.
    pub source: String,
}

/// The child `name` (whose inode is `inode`) of `dir`, or what is mounted on it.
pub(crate) fn step(k: &Kernel, dir: &Path, name: &[u8], inode: Arc<dyn Inode>) -> Path {
    let mut cur = Path {
        mnt: dir.mnt.clone(),
        dentry: Arc::new(Dentry {
            name: name.to_vec(),
            parent: Some(dir.dentry.clone()),
            inode,
        }),
    };
    while let Some(m) = k.mounts.mounted_on(&cur) {
        cur = Path {
            mnt: m.clone(),
            dentry: m.root.clone(),
        };
    }
    cur
}

/// Walk `p` from `root`, crossing mounts, making missing directories (and, for the last
/// component when `file` is set, an empty file) in the file system that lacks them.
fn walk_make(k: &Kernel, root: &Path, p: &[u8], file: bool) -> Result<Path, String> {
    let comps: Vec<&[u8]> = p
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let mut cur = root.clone();
    let shown = String::from_utf8_lossy(p).into_owned();
    for (i, c) in comps.iter().enumerate() {
        if *c == b".." {
            return Err(format!("mount target {shown}: \"..\" is not allowed"));
        }
        let last = i + 1 == comps.len();
        let inode = match cur.dentry.inode.lookup(c) {
            Ok(n) => n,
            Err(_) => {
                let root_creds = Creds::new(0, 0);
                let made = if last && file {
                    cur.dentry.inode.create(c, 0o644, &root_creds)
                } else {
                    cur.dentry.inode.mkdir(c, 0o755, &root_creds)
                };
                made.map_err(|e| {
                    format!(
                        "mount target {shown}: cannot make {}: {}",
                        String::from_utf8_lossy(c),
                        std::io::Error::from_raw_os_error(e.0)
                    )
                })?
            }
        };
        if !last && !inode.stat().is_dir() {
            return Err(format!(
                "mount target {shown}: {} is not a directory",
                String::from_utf8_lossy(c)
            ));
        }
        cur = step(k, &cur, c, inode);
    }
    Ok(cur)
}

/// `p` under `root` if it exists (symlinks are not followed), crossing mounts.
fn walk_existing(k: &Kernel, root: &Path, p: &[u8]) -> Option<Path> {
    let mut cur = root.clone();
    for c in p
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if c == b".." {
            return None;
        }
        let inode = cur.dentry.inode.lookup(c).ok()?;
        cur = step(k, &cur, c, inode);
    }
    Some(cur)
}

/// The directory `p` under `root`, made (with its parents) if missing: the first
/// process's working directory, as runc makes it.
pub fn make_dir(k: &Kernel, root: &Path, p: &[u8]) -> Result<Path, String> {
    walk_make(k, root, p, false)
}

/// Mount each of `specs`, in order, under `root`.
pub fn apply(k: &Arc<Kernel>, root: &Path, specs: Vec<Spec>) -> Result<(), String> {
    for (i, s) in specs.into_iter().enumerate() {
        let shown = String::from_utf8_lossy(&s.target).into_owned();
        let err = |what: &str, e: crate::errno::Errno| {
            format!(
                "mount {shown}: {what}: {}",
                std::io::Error::from_raw_os_error(e.0)
            )
        };
        if matches!(s.kind, Kind::ReadonlyAgain | Kind::Mask) {
            let Some(at) = walk_existing(k, root, &s.target) else {
                continue;
            };
            let is_dir = at.dentry.inode.stat().is_dir();
            let inode: Arc<dyn Inode> = match s.kind {
                Kind::ReadonlyAgain => at.dentry.inode.clone(),
                _ => {
                    let fs = MemFs::new(0x40 + i as u64, None);
                    let r = fs.root(0o555, 0, 0).map_err(|e| err("mask", e))?;
                    if is_dir {
                        r
                    } else {
                        let null = vfs::devfs::makedev(1, 3);
                        r.mknod(b"null", vfs::S_IFCHR | 0o666, null, &Creds::new(0, 0))
                            .map_err(|e| err("mask", e))?
                    }
                }
            };
            let fstype = if matches!(s.kind, Kind::Mask) {
                "tmpfs"
            } else {
                "bind"
            };
            let m = k
                .mounts
                .add(inode, Some(&at), fstype, &s.source, true, "ro");
            // The mount must be what the path now reaches; never pretend.
            if walk_existing(k, root, &s.target).is_none_or(|p| p.mnt.id != m.id) {
                k.mounts.list.write().retain(|x| x.id != m.id);
                return Err(format!("mount {shown}: the mount is not reachable"));
            }
            continue;
        }
        let is_file = matches!(&s.kind, Kind::Gofer { file: Some(_), .. });
        let at = match walk_make(k, root, &s.target, is_file) {
            Ok(p) => p,
            // A cgroup mount point the Sentry's /sys cannot hold (not /sys/fs/cgroup) is
            // left out (and said so in the kernel log).
            Err(e) if matches!(&s.kind, Kind::Cgroup) => {
                k.klog
                    .info(format!("rvisor: skipped the cgroup mount: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let ro = if s.readonly { "ro" } else { "rw" };
        let dev = 0x40 + i as u64;
        let (inode, fstype, opts): (Arc<dyn Inode>, String, String) = match s.kind {
            // The sandbox's message queues (one IPC namespace: every mount shows them).
            Kind::Tmpfs { fstype, .. } if fstype == "mqueue" => (
                k.ns.ipc.mqueue().0.clone(),
                fstype,
                format!("{ro},nosuid,nodev,noexec,relatime"),
            ),
            Kind::Tmpfs {
                mode,
                fstype,
                size,
                nr_inodes,
            } => {
                let fs = MemFs::new(dev, None);
                let pages = size.div_ceil(crate::memfile::PAGE);
                fs.set_limits(pages, nr_inodes);
                let r = fs.root(mode, 0, 0).map_err(|e| err("tmpfs", e))?;
                // As Linux's shmem_show_options: what differs from the defaults.
                let mut opts = ro.to_string();
                if pages != 0 {
                    opts += &format!(",size={}k", pages * 4);
                }
                if nr_inodes != 0 {
                    opts += &format!(",nr_inodes={nr_inodes}");
                }
                if mode != 0o1777 {
                    opts += &format!(",mode={mode:03o}");
                }
                (r, fstype, opts)
            }
            Kind::Gofer { client, file } => {
                let r: Arc<dyn Inode> =
                    vfs::goferfs::root(client, dev).map_err(|e| err("gofer", e))?;
                let r = match file {
                    Some(name) => r.lookup(&name).map_err(|e| err("bind source", e))?,
                    None => r,
                };
                (r, "bind".into(), ro.to_string())
            }
            Kind::Proc => (
                vfs::procfs::proc_root(k),
                "proc".into(),
                format!("{ro},nosuid,nodev,noexec"),
            ),
            Kind::Sysfs => (
                vfs::procfs::sys_root(k),
                "sysfs".into(),
                format!("{ro},nosuid,nodev,noexec"),
            ),
            Kind::Devpts => (
                vfs::devpts::new_root(),
                "devpts".into(),
                vfs::devpts::MOUNT_OPTS.into(),
            ),
            Kind::Cgroup => (
                vfs::procfs::cgroup_root(k),
                "cgroup2".into(),
                format!("{ro},nosuid,nodev,noexec,relatime"),
            ),
            Kind::ReadonlyAgain | Kind::Mask => unreachable!("handled above"),
        };
        if inode.stat().is_dir() != at.dentry.inode.stat().is_dir() {
            return Err(format!(
                "mount {shown}: a {} cannot be mounted on a {}",
                if inode.stat().is_dir() {
                    "directory"
                } else {
                    "file"
                },
                if at.dentry.inode.stat().is_dir() {
                    "directory"
                } else {
                    "file"
                },
            ));
        }
        k.mounts.add(
            inode,
            Some(&at),
            &fstype,
            &s.source,
            s.readonly,
            &format!("{opts},{}", s.flags),
        );
    }
    Ok(())
}

// ---- mount(2) and umount2(2) inside the sandbox, on the caller's mount namespace.

pub const MS_REMOUNT: u64 = 0x20;
pub const MS_BIND: u64 = 0x1000;
pub const MS_MOVE: u64 = 0x2000;
pub const MS_REC: u64 = 0x4000;
pub const MS_UNBINDABLE: u64 = 1 << 17;
pub const MS_PRIVATE: u64 = 1 << 18;
pub const MS_SLAVE: u64 = 1 << 19;
pub const MS_SHARED: u64 = 1 << 20;

/// Device numbers of file systems mounted at run time.
static NEXT_DEV: AtomicU64 = AtomicU64::new(0x80);

/// Is `p` the root of its mount (Linux's path_mounted)?
pub fn is_mount_root(p: &Path) -> bool {
    Arc::ptr_eq(&p.dentry, &p.mnt.root)
        || p.dentry.inode.mount_key() == p.mnt.root.inode.mount_key()
}

fn in_ns(ns: &Mounts, p: &Path) -> bool {
    ns.list.read().iter().any(|m| Arc::ptr_eq(m, &p.mnt))
}

/// Per-mount flags of mount(2)'s `flags`.
fn mnt_flags(flags: u64) -> u32 {
    flags as u32 & MNT_FLAGS
}

/// mount(2) of a new file system `fstype` at `at` with `data` options.
pub fn new_mount(
    t: &Task,
    at: &Path,
    fstype: &[u8],
    source: &[u8],
    flags: u64,
    data: &[u8],
) -> KResult<()> {
    let k = &t.kernel;
    let data = String::from_utf8_lossy(data).into_owned();
    let opts: Vec<&str> = data.split(',').filter(|o| !o.is_empty()).collect();
    let refuse = |what: &str| {
        k.klog
            .info(format!("rvisor: mount: {what} is not supported"));
        EINVAL
    };
    let (inode, fstype, fs_opts): (Arc<dyn Inode>, &str, String) = match fstype {
        b"tmpfs" => {
            let (mode, uid, gid, size, inodes) =
                tmpfs_opts(&opts).map_err(|o| refuse(&format!("tmpfs option {o:?}")))?;
            let fs = MemFs::new(NEXT_DEV.fetch_add(1, Ordering::Relaxed), None);
            let pages = size.div_ceil(crate::memfile::PAGE);
            fs.set_limits(pages, inodes);
            let mut shown = String::new();
            if pages != 0 {
                shown += &format!(",size={}k", pages * 4);
            }
            if inodes != 0 {
                shown += &format!(",nr_inodes={inodes}");
            }
            if mode != 0o1777 {
                shown += &format!(",mode={mode:03o}");
            }
            if uid != 0 {
                shown += &format!(",uid={uid}");
            }
            if gid != 0 {
                shown += &format!(",gid={gid}");
            }
            (fs.root(mode, uid, gid)?, "tmpfs", shown)
        }
        b"proc" | b"sysfs" | b"devpts" | b"mqueue" if !opts.is_empty() => {
            return Err(refuse(&format!(
                "{} options {data:?}",
                String::from_utf8_lossy(fstype)
            )));
        }
        b"proc" => (vfs::procfs::proc_root(k), "proc", String::new()),
        b"sysfs" => (vfs::procfs::sys_root(k), "sysfs", String::new()),
        b"devpts" => (vfs::devpts::new_root(), "devpts", String::new()),
        // The mounter's IPC namespace's queues.
        b"mqueue" => {
            let ns = crate::kernel::current().map_or_else(|| k.ns.clone(), |t| t.ns());
            (ns.ipc.mqueue().0.clone(), "mqueue", String::new())
        }
        _ => return Err(ENODEV),
    };
    if !at.dentry.inode.stat().is_dir() {
        return Err(ENOTDIR);
    }
    let flags_shown = [
        (MS_RDONLY, "ro"),
        (MS_NOSUID, "nosuid"),
        (MS_NODEV, "nodev"),
        (MS_NOEXEC, "noexec"),
    ]
    .iter()
    .filter(|(b, _)| mnt_flags(flags) & b != 0)
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join(",");
    let source = String::from_utf8_lossy(source).into_owned();
    t.mounts().add(
        inode,
        Some(at),
        fstype,
        if source.is_empty() { "none" } else { &source },
        false,
        &format!("{flags_shown},relatime{fs_opts}"),
    );
    Ok(())
}

/// tmpfs's options: (mode, uid, gid, size in bytes, nr_inodes); the bad one otherwise.
fn tmpfs_opts<'a>(opts: &[&'a str]) -> Result<(u32, u32, u32, u64, u64), &'a str> {
    let (mut mode, mut uid, mut gid, mut size, mut inodes) = (0o1777, 0, 0, 0, 0);
    let num = |v: &str| -> Option<u64> {
        let (n, mul) = match v.as_bytes().last()? {
            b'k' | b'K' => (&v[..v.len() - 1], 1 << 10),
            b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
            b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
            _ => (v, 1),
        };
        n.parse::<u64>().ok()?.checked_mul(mul)
    };
    for o in opts {
        let (key, val) = o.split_once('=').unwrap_or((o, ""));
        let ok = match key {
            "mode" => u32::from_str_radix(val, 8).ok().map(|m| mode = m & 0o7777),
            "uid" => val.parse().ok().map(|v| uid = v),
            "gid" => val.parse().ok().map(|v| gid = v),
            "size" => num(val).map(|v| size = v),
            "nr_inodes" => num(val).map(|v| inodes = v),
            "rw" | "ro" => Some(()),
            _ => None,
        };
        ok.ok_or(*o)?;
    }
    Ok((mode, uid, gid, size, inodes))
}

/// MS_BIND: `src` again at `at`; with `rec` the mounts under `src` too.
pub fn bind(t: &Task, src: &Path, at: &Path, rec: bool) -> KResult<()> {
    let ns = t.mounts();
    if !in_ns(&ns, src) || !in_ns(&ns, at) {
        return Err(EINVAL);
    }
    if src.dentry.inode.stat().is_dir() != at.dentry.inode.stat().is_dir() {
        return Err(ENOTDIR);
    }
    let root = Arc::new(Dentry {
        name: at.dentry.name.clone(),
        parent: None,
        inode: src.dentry.inode.clone(),
    });
    let top = ns.add_like(&src.mnt, root, Some((at.mnt.clone(), at.dentry.clone())));
    if !rec {
        return Ok(());
    }
    // Each mount below `src` (in mount order, so parents come first), at the same
    // place below the copy.
    let list: Vec<Arc<vfs::Mount>> = ns.list.read().clone();
    for m in list.iter().filter(|m| m.id != top.id) {
        let Some((pm, pd)) = &m.parent else { continue };
        let Some(rel) = below(src, pm, pd) else {
            continue;
        };
        // Walk the relative path from the copy's root, crossing the copies made.
        let mut cur = Path {
            mnt: top.clone(),
            dentry: top.root.clone(),
        };
        for name in rel {
            let inode = cur.dentry.inode.lookup(&name)?;
            cur = Path {
                mnt: cur.mnt.clone(),
                dentry: Arc::new(Dentry {
                    name,
                    parent: Some(cur.dentry.clone()),
                    inode,
                }),
            };
            while let Some(x) = ns.mounted_on(&cur) {
                cur = Path {
                    mnt: x.clone(),
                    dentry: x.root.clone(),
                };
            }
        }
        ns.add_like(
            m,
            m.root.clone(),
            Some((cur.mnt.clone(), cur.dentry.clone())),
        );
    }
    Ok(())
}

/// The names from `src` down to the mount point (`pm`, `pd`), if it is below `src`.
fn below(src: &Path, pm: &Arc<vfs::Mount>, pd: &Arc<Dentry>) -> Option<Vec<Vec<u8>>> {
    let key = src.dentry.inode.mount_key();
    let mut names = vec![];
    let (mut m, mut d) = (pm.clone(), pd.clone());
    loop {
        if m.id == src.mnt.id && d.inode.mount_key() == key {
            names.reverse();
            return Some(names);
        }
        if Arc::ptr_eq(&d, &m.root) || d.parent.is_none() {
            let (pm2, pd2) = m.parent.clone()?;
            // Crossing up out of a mount: its mount point's name is not a step.
            m = pm2;
            d = pd2;
            continue;
        }
        names.push(d.name.clone());
        d = d.parent.clone()?;
    }
}

/// MS_REMOUNT (with or without MS_BIND): new per-mount flags for the mount at `at`;
/// making it read-only while a file is open on it for writing is EBUSY.
pub fn remount(t: &Task, at: &Path, flags: u64, data: &[u8]) -> KResult<()> {
    if !is_mount_root(at) || !in_ns(&t.mounts(), at) {
        return Err(EINVAL);
    }
    if flags & MS_BIND == 0 {
        let data = String::from_utf8_lossy(data);
        if data
            .split(',')
            .any(|o| !o.is_empty() && o != "ro" && o != "rw")
        {
            t.kernel.klog.info(format!(
                "rvisor: remount with options {data:?} is not supported"
            ));
            return Err(EINVAL);
        }
    }
    let new = mnt_flags(flags);
    if new & MS_RDONLY != 0 && !at.mnt.readonly() && open_for_write(t, &at.mnt) {
        return Err(EBUSY);
    }
    at.mnt.flags.store(new, Ordering::Relaxed);
    Ok(())
}

/// Is a file open for writing through `m` in any process?
fn open_for_write(t: &Task, m: &Arc<vfs::Mount>) -> bool {
    let tasks: Vec<Arc<Task>> = t.kernel.table.lock().tasks.values().cloned().collect();
    tasks.iter().any(|x| {
        x.files()
            .list()
            .iter()
            .any(|(_, f)| f.writable() && f.path.as_ref().is_some_and(|p| Arc::ptr_eq(&p.mnt, m)))
    })
}

/// MS_PRIVATE / MS_SLAVE (with MS_REC): every mount here is private already. Shared
/// and unbindable mounts are not implemented.
pub fn change_type(t: &Task, at: &Path, flags: u64) -> KResult<()> {
    if !is_mount_root(at) {
        return Err(EINVAL);
    }
    let kinds = flags & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE);
    if kinds.count_ones() != 1 {
        return Err(EINVAL);
    }
    if kinds & (MS_SHARED | MS_UNBINDABLE) != 0 {
        t.kernel
            .report_unimplemented(165, "mount(MS_SHARED|MS_UNBINDABLE)", t.tgid());
        return Err(EINVAL);
    }
    Ok(())
}

pub const MNT_FORCE: u64 = 1;
pub const MNT_DETACH: u64 = 2;
pub const MNT_EXPIRE: u64 = 4;
pub const UMOUNT_NOFOLLOW: u64 = 8;
/// MNT_EXPIRE's mark, kept with the mount's flags.
const EXPIRY_MARK: u32 = 1 << 31;

/// umount2(2) of the mount at `at` (`at` itself is one reference to it).
pub fn umount(t: &Task, at: Path, flags: u64) -> KResult<()> {
    let ns = t.mounts();
    if !is_mount_root(&at) || !in_ns(&ns, &at) {
        return Err(EINVAL);
    }
    let m = at.mnt.clone();
    drop(at);
    if m.parent.is_none() {
        return Err(EBUSY);
    }
    let mut list = ns.list.write();
    if flags & MNT_EXPIRE != 0 {
        // The first call marks the mount, a second one unmounts it if unused.
        if Arc::strong_count(&m) > 2 {
            return Err(EBUSY);
        }
        if m.flags.fetch_or(EXPIRY_MARK, Ordering::Relaxed) & EXPIRY_MARK == 0 {
            return Err(EAGAIN);
        }
    }
    if flags & MNT_DETACH == 0 {
        // Busy: anything but the table and `m` here holds it (open files, working
        // directories, mounts on it), as Linux's refcount check.
        if Arc::strong_count(&m) > 2 {
            return Err(EBUSY);
        }
        list.retain(|x| !Arc::ptr_eq(x, &m));
        return Ok(());
    }
    // MNT_DETACH: the mount and everything under it leave the namespace now; what
    // still uses them keeps them until it lets go.
    let mut gone = vec![m.id];
    for x in list.iter() {
        if let Some((pm, _)) = &x.parent {
            if gone.contains(&pm.id) {
                gone.push(x.id);
            }
        }
    }
    list.retain(|x| !gone.contains(&x.id));
    Ok(())
}

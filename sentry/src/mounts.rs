//! The mounts a container's config asks for beyond the root: tmpfs (in the Sentry's
//! memory), bind mounts (served by a gofer of their own), and the kernel file systems
//! (proc, sysfs, devpts) at places other than their usual ones.

use crate::kernel::{Creds, Kernel};
use crate::vfs::{self, memfs::MemFs, Dentry, Inode, Path};
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
                k.mqueue().0.clone(),
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
        k.mounts
            .add(inode, Some(&at), &fstype, &s.source, s.readonly, &opts);
    }
    Ok(())
}

//! The mounts a container's config asks for beyond the root: tmpfs (in the Sentry's
//! memory), bind mounts (served by a gofer of their own), and the kernel file systems
//! (proc, sysfs, devpts) at places other than their usual ones.

use crate::kernel::{Creds, Kernel};
use crate::vfs::{self, memfs::MemFs, Dentry, Inode, Path};
use std::sync::Arc;

pub enum Kind {
    /// An empty in-memory file system (also what `cgroup` gets until that file system
    /// exists: an empty directory, so that programs find the mount point); with
    /// fstype `mqueue`, the sandbox's message queues.
    Tmpfs {
        mode: u32,
        fstype: String,
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
    /// The tree already at the target, again, read-only (OCI readonlyPaths); nothing
    /// if the target does not exist.
    ReadonlyAgain,
    /// Hide what is at the target (OCI maskedPaths): an empty read-only directory or
    /// file over it; nothing if the target does not exist.
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
        cur = Path {
            mnt: cur.mnt.clone(),
            dentry: Arc::new(Dentry {
                name: c.to_vec(),
                parent: Some(cur.dentry.clone()),
                inode,
            }),
        };
        while let Some(m) = k.mounts.mounted_on(&cur) {
            cur = Path {
                mnt: m.clone(),
                dentry: m.root.clone(),
            };
        }
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
        cur = Path {
            mnt: cur.mnt.clone(),
            dentry: Arc::new(Dentry {
                name: c.to_vec(),
                parent: Some(cur.dentry.clone()),
                inode,
            }),
        };
        while let Some(m) = k.mounts.mounted_on(&cur) {
            cur = Path {
                mnt: m.clone(),
                dentry: m.root.clone(),
            };
        }
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
                        r.create(b"masked", 0o444, &Creds::new(0, 0))
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
            // A file system whose lookups make a new inode each time (the Sentry's
            // /proc) cannot be mounted on yet: say so rather than pretend.
            if walk_existing(k, root, &s.target).is_none_or(|p| p.mnt.id != m.id) {
                k.mounts.list.write().retain(|x| x.id != m.id);
                k.klog.info(format!(
                    "rvisor: {} {shown}: not applied (the file system there has no stable inodes)",
                    if fstype == "tmpfs" {
                        "masked path"
                    } else {
                        "read-only path"
                    }
                ));
            }
            continue;
        }
        let is_file = matches!(&s.kind, Kind::Gofer { file: Some(_), .. });
        let at = match walk_make(k, root, &s.target, is_file) {
            Ok(p) => p,
            // Until there is a cgroup file system, a cgroup mount point the Sentry's
            // /sys cannot hold is left out (and said so in the kernel log).
            Err(e) if matches!(&s.kind, Kind::Tmpfs { fstype, .. } if fstype.starts_with("cgroup")) =>
            {
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
            Kind::Tmpfs { mode, fstype } => {
                let fs = MemFs::new(dev, None);
                let r = fs.root(mode, 0, 0).map_err(|e| err("tmpfs", e))?;
                (r, fstype, format!("{ro},mode={mode:o}"))
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

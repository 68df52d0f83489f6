//! devpts, the file system on /dev/pts: `ptmx` (c 5,2: opening it makes a new pty pair)
//! and one node `N` (c 136,N) per pair whose master is open.

use super::devfs::makedev;
use super::pty::{self, Pty};
use super::*;
use std::sync::Weak;

/// The device number of the devpts instance (Linux's anonymous 0:24 on most hosts).
pub const DEVPTS_DEV: u64 = 0x18;
/// What /proc/mounts shows for it (docker's and systemd's options).
pub const MOUNT_OPTS: &str = "rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=666";

/// Stat of a devpts node.
impl Meta {
    fn stat(&self, ino: u64, mode: u32, rdev: u64, nlink: u64) -> Stat {
        Stat {
            dev: DEVPTS_DEV,
            ino,
            mode: mode | (self.mode & 0o7777),
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev,
            size: 0,
            blksize: 1024,
            blocks: 0,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }
}

/// The root directory of devpts.
pub struct DevPtsRoot {
    ptmx: Arc<PtmxNode>,
    meta: Mutex<Meta>,
}

/// A new devpts instance, for mounting on /dev/pts.
pub fn new_root() -> Arc<DevPtsRoot> {
    Arc::new(DevPtsRoot {
        ptmx: Arc::new(PtmxNode {
            meta: Mutex::new(Meta::new(0o666, 0, 0)),
        }),
        meta: Mutex::new(Meta::new(0o755, 0, 0)),
    })
}

/// A slave's name: a decimal number without leading zeros.
fn parse_index(name: &[u8]) -> Option<u32> {
    if name.is_empty() || (name.len() > 1 && name[0] == b'0') {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

impl Inode for DevPtsRoot {
    fn stat(&self) -> Stat {
        self.meta.lock().stat(1, S_IFDIR, 0, 2)
    }
    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        if name == b"ptmx" {
            return Ok(self.ptmx.clone());
        }
        let n = parse_index(name).ok_or(ENOENT)?;
        let p = pty::lookup(n).ok_or(ENOENT)?;
        Ok(p.node.clone())
    }
    fn readdir(&self) -> KResult<Vec<DirEnt>> {
        let mut v = vec![
            DirEnt {
                ino: 1,
                kind: 4,
                name: b".".to_vec(),
            },
            DirEnt {
                ino: 1,
                kind: 4,
                name: b"..".to_vec(),
            },
            DirEnt {
                ino: 2,
                kind: 2,
                name: b"ptmx".to_vec(),
            },
        ];
        for n in pty::live_indexes() {
            v.push(DirEnt {
                ino: n as u64 + 3,
                kind: 2,
                name: n.to_string().into_bytes(),
            });
        }
        Ok(v)
    }
    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        if flags & O_ACCMODE != 0 {
            return Err(EISDIR);
        }
        Ok(Arc::new(DirFile { inode: self }))
    }
    fn setattr(&self, a: &SetAttr) -> KResult<()> {
        self.meta.lock().set(a)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// /dev/pts/ptmx.
pub struct PtmxNode {
    meta: Mutex<Meta>,
}

impl Inode for PtmxNode {
    fn stat(&self) -> Stat {
        self.meta.lock().stat(2, S_IFCHR, makedev(5, 2), 1)
    }
    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        pty::open_master(flags)
    }
    fn setattr(&self, a: &SetAttr) -> KResult<()> {
        self.meta.lock().set(a)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// /dev/pts/N: the slave of pair N, owned by whoever opened the master.
pub struct SlaveNode {
    index: u32,
    pty: Weak<Pty>,
    meta: Mutex<Meta>,
}

impl SlaveNode {
    pub fn new(index: u32, pty: Weak<Pty>, uid: u32, gid: u32) -> Arc<SlaveNode> {
        Arc::new(SlaveNode {
            index,
            pty,
            meta: Mutex::new(Meta::new(0o620, uid, gid)),
        })
    }
}

impl Inode for SlaveNode {
    fn stat(&self) -> Stat {
        self.meta.lock().stat(
            self.index as u64 + 3,
            S_IFCHR,
            makedev(pty::PTY_SLAVE_MAJOR, self.index as u64),
            1,
        )
    }
    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let p = self.pty.upgrade().ok_or(EIO)?;
        pty::open_slave(&p, flags)
    }
    fn setattr(&self, a: &SetAttr) -> KResult<()> {
        self.meta.lock().set(a)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

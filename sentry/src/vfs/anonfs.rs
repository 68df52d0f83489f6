//! Inodes for open files that live in no directory (pipes, the sandbox's host stdio):
//! they get a path on a private mount so that /proc/PID/fd/N can be stat'ed, opened
//! again (a pipe's new end counts as a reader or writer) and read as `pipe:[N]`.

use super::*;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

type Opener = Box<dyn Fn(u32) -> KResult<Arc<dyn FileOps>> + Send + Sync>;

pub struct AnonInode {
    stat: Stat,
    opener: Opener,
}

impl Inode for AnonInode {
    fn stat(&self) -> Stat {
        self.stat
    }
    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        (self.opener)(flags)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The private mount (never in the mount table; /proc shows these files by name).
pub fn mount() -> Arc<Mount> {
    static MNT: OnceLock<Arc<Mount>> = OnceLock::new();
    MNT.get_or_init(|| {
        let root: Arc<dyn Inode> = Arc::new(AnonInode {
            stat: Stat {
                mode: S_IFDIR | 0o555,
                nlink: 2,
                dev: DEV,
                ino: 1,
                ..Default::default()
            },
            opener: Box::new(|_| Err(EISDIR)),
        });
        Arc::new(Mount {
            id: u32::MAX - 1,
            root: Arc::new(Dentry {
                name: b"/".to_vec(),
                parent: None,
                inode: root,
            }),
            parent: None,
            fstype: "pipefs".into(),
            source: "pipefs".into(),
            flags: Default::default(),
            opts: "rw".into(),
        })
    })
    .clone()
}

const DEV: u64 = 0xe;

pub fn next_ino() -> u64 {
    static N: AtomicU64 = AtomicU64::new(4096);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A path named `name` on the private mount for an inode with `stat` and `opener`.
pub fn path(name: String, stat: Stat, opener: Opener) -> Path {
    let mnt = mount();
    let inode: Arc<dyn Inode> = Arc::new(AnonInode {
        stat: Stat { dev: DEV, ..stat },
        opener,
    });
    Path {
        dentry: Arc::new(Dentry {
            name: name.into_bytes(),
            parent: Some(mnt.root.clone()),
            inode,
        }),
        mnt,
    }
}

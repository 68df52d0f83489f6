//! Namespaces besides the mount namespace (which lives with the fs context): a task's
//! set (Linux's nsproxy, plus the user namespace that Linux keeps in the credentials),
//! and the identity of each namespace (its nsfs inode number).
//!
//! Network, cgroup, PID and time namespaces are not modelled: every task is in the
//! first one of each, and creating new ones is refused (EINVAL).

use super::{Creds, CAP_FULL};
use crate::errno::*;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

pub const CLONE_NEWTIME: u64 = 0x80;
pub const CLONE_NEWNS: u64 = 0x2_0000;
pub const CLONE_NEWCGROUP: u64 = 0x200_0000;
pub const CLONE_NEWUTS: u64 = 0x400_0000;
pub const CLONE_NEWIPC: u64 = 0x800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;

/// Linux's fixed inode numbers of the first namespaces (include/linux/proc_ns.h).
pub const INIT_IPC_INO: u32 = 0xEFFF_FFFF;
pub const INIT_UTS_INO: u32 = 0xEFFF_FFFE;
pub const INIT_USER_INO: u32 = 0xEFFF_FFFD;
pub const INIT_PID_INO: u32 = 0xEFFF_FFFC;
pub const INIT_CGROUP_INO: u32 = 0xEFFF_FFFB;
pub const INIT_TIME_INO: u32 = 0xEFFF_FFFA;
pub const INIT_NET_INO: u32 = 0xEFFF_FFF9;
pub const INIT_MNT_INO: u32 = 0xEFFF_FFF8;

/// The overflow ids shown for ids with no mapping (/proc/sys/kernel/overflowuid).
pub const OVERFLOW_ID: u32 = 65534;
/// An id that maps to nothing (Linux's INVALID_UID).
pub const INVALID_ID: u32 = u32::MAX;
/// Nesting limit of user namespaces (Linux: 32 levels below the first).
const MAX_USER_LEVEL: u32 = 32;

static NEXT_INO: AtomicU32 = AtomicU32::new(0xF000_0000);

/// A fresh namespace inode number (Linux's proc_alloc_inum).
pub fn alloc_ino() -> u32 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

/// One line of a uid_map or gid_map: `count` ids from `first` inside are the ids from
/// `lower` in the kernel's (first namespace's) numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first: u32,
    pub lower: u32,
    pub count: u32,
}

#[derive(Debug)]
pub struct UserNs {
    pub ino: u32,
    pub parent: Option<Arc<UserNs>>,
    pub level: u32,
    /// The creator's effective ids (kernel numbering).
    pub owner: u32,
    pub group: u32,
    /// Written once each (None until then).
    pub uid_map: Mutex<Option<Vec<Extent>>>,
    pub gid_map: Mutex<Option<Vec<Extent>>>,
    /// /proc/PID/setgroups: "allow" (true) or "deny".
    pub setgroups: AtomicBool,
}

impl UserNs {
    pub fn init() -> Arc<UserNs> {
        let all = vec![Extent {
            first: 0,
            lower: 0,
            count: u32::MAX,
        }];
        Arc::new(UserNs {
            ino: INIT_USER_INO,
            parent: None,
            level: 0,
            owner: 0,
            group: 0,
            uid_map: Mutex::new(Some(all.clone())),
            gid_map: Mutex::new(Some(all)),
            setgroups: AtomicBool::new(true),
        })
    }

    pub fn is_init(&self) -> bool {
        self.parent.is_none()
    }

    /// Is `self` `other` or one of its ancestors?
    pub fn is_ancestor_of(self: &Arc<Self>, other: &Arc<UserNs>) -> bool {
        let mut n = Some(other.clone());
        while let Some(x) = n {
            if Arc::ptr_eq(&x, self) {
                return true;
            }
            n = x.parent.clone();
        }
        false
    }
}

fn map_down(map: &Option<Vec<Extent>>, id: u32) -> u32 {
    map.iter()
        .flatten()
        .find(|e| id >= e.first && id - e.first < e.count)
        .map_or(INVALID_ID, |e| e.lower + (id - e.first))
}

fn map_up(map: &Option<Vec<Extent>>, kid: u32) -> u32 {
    map.iter()
        .flatten()
        .find(|e| kid >= e.lower && kid - e.lower < e.count)
        .map_or(INVALID_ID, |e| e.first + (kid - e.lower))
}

/// A uid as namespace `ns` numbers it to the kernel's numbering (INVALID_ID: unmapped).
pub fn make_kuid(ns: &UserNs, uid: u32) -> u32 {
    if ns.is_init() || uid == INVALID_ID {
        return uid;
    }
    map_down(&ns.uid_map.lock(), uid)
}
pub fn make_kgid(ns: &UserNs, gid: u32) -> u32 {
    if ns.is_init() || gid == INVALID_ID {
        return gid;
    }
    map_down(&ns.gid_map.lock(), gid)
}
/// A kernel uid as `ns` shows it: the overflow id when it has no mapping there.
pub fn from_kuid(ns: &UserNs, kuid: u32) -> u32 {
    if ns.is_init() {
        return kuid;
    }
    match map_up(&ns.uid_map.lock(), kuid) {
        INVALID_ID => OVERFLOW_ID,
        x => x,
    }
}
pub fn from_kgid(ns: &UserNs, kgid: u32) -> u32 {
    if ns.is_init() {
        return kgid;
    }
    match map_up(&ns.gid_map.lock(), kgid) {
        INVALID_ID => OVERFLOW_ID,
        x => x,
    }
}

/// Does `c` hold capability `cap` in user namespace `ns` (Linux's cap_capable)? Its
/// capabilities count in its own namespace; the owner of a child namespace (by
/// effective uid, in the parent) holds every capability there.
pub fn ns_capable(c: &Creds, ns: &Arc<UserNs>, cap: u32) -> bool {
    let mine = c.user_ns();
    let mut ns = ns.clone();
    loop {
        if Arc::ptr_eq(&ns, &mine) {
            return c.cap_effective & (1 << cap) != 0;
        }
        if ns.level <= mine.level {
            return false;
        }
        let Some(parent) = ns.parent.clone() else {
            return false;
        };
        if Arc::ptr_eq(&parent, &mine) && ns.owner == c.euid {
            return true;
        }
        ns = parent;
    }
}

#[derive(Debug)]
pub struct UtsNs {
    pub ino: u32,
    pub user: Arc<UserNs>,
    pub hostname: Mutex<Vec<u8>>,
    pub domainname: Mutex<Vec<u8>>,
}

pub struct IpcNs {
    pub ino: u32,
    pub user: Arc<UserNs>,
    /// This namespace's POSIX message queues and their hidden mount (made on first use).
    pub mqueue: std::sync::OnceLock<(Arc<crate::vfs::mqueue::MqFs>, Arc<crate::vfs::Mount>)>,
}

impl IpcNs {
    fn new(user: Arc<UserNs>, ino: u32) -> Arc<IpcNs> {
        Arc::new(IpcNs {
            ino,
            user,
            mqueue: std::sync::OnceLock::new(),
        })
    }

    /// The message queues, and the hidden mount mq_open's files are on.
    pub fn mqueue(&self) -> &(Arc<crate::vfs::mqueue::MqFs>, Arc<crate::vfs::Mount>) {
        self.mqueue.get_or_init(|| {
            let fs = crate::vfs::mqueue::MqFs::new();
            let mnt = Arc::new(crate::vfs::Mount {
                id: 0,
                root: Arc::new(crate::vfs::Dentry {
                    name: b"/".to_vec(),
                    parent: None,
                    inode: fs.clone(),
                }),
                parent: None,
                fstype: "mqueue".into(),
                source: "mqueue".into(),
                flags: Default::default(),
                opts: String::new(),
            });
            (fs, mnt)
        })
    }
}

/// The namespaces a task is in (but its mount and user namespaces: see `FsCtx` and
/// `Creds`).
#[derive(Clone)]
pub struct NsSet {
    pub uts: Arc<UtsNs>,
    pub ipc: Arc<IpcNs>,
}

impl NsSet {
    /// The first namespaces of a sandbox.
    pub fn init(user: &Arc<UserNs>) -> Arc<NsSet> {
        Arc::new(NsSet {
            uts: Arc::new(UtsNs {
                ino: INIT_UTS_INO,
                user: user.clone(),
                hostname: Mutex::new(b"localhost".to_vec()),
                domainname: Mutex::new(b"(none)".to_vec()),
            }),
            ipc: IpcNs::new(user.clone(), INIT_IPC_INO),
        })
    }
}

/// Check the namespace flags of clone/unshare (`flags` CLONE_NEW* bits) as Linux does:
/// EINVAL for the kinds rvisor lacks (as a kernel built without them), EPERM without
/// CAP_SYS_ADMIN in the user namespace the new ones will belong to.
pub fn check_new(c: &Creds, flags: u64, log: impl Fn(&str)) -> KResult<()> {
    let new = flags
        & (CLONE_NEWNS
            | CLONE_NEWUTS
            | CLONE_NEWIPC
            | CLONE_NEWCGROUP
            | CLONE_NEWPID
            | CLONE_NEWNET
            | CLONE_NEWTIME);
    if new != 0 && flags & CLONE_NEWUSER == 0 && !ns_capable(c, &c.user_ns(), super::cap::SYS_ADMIN)
    {
        return Err(EPERM);
    }
    if flags & CLONE_NEWUSER != 0 && c.user_ns().level > MAX_USER_LEVEL {
        return Err(ENOSPC);
    }
    let missing =
        flags & (CLONE_NEWCGROUP | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME | CLONE_NEWUSER);
    if missing != 0 {
        log(match missing {
            f if f & CLONE_NEWNET != 0 => "CLONE_NEWNET",
            f if f & CLONE_NEWPID != 0 => "CLONE_NEWPID",
            f if f & CLONE_NEWCGROUP != 0 => "CLONE_NEWCGROUP",
            f if f & CLONE_NEWUSER != 0 => "CLONE_NEWUSER",
            _ => "CLONE_NEWTIME",
        });
        return Err(EINVAL);
    }
    Ok(())
}

/// A new user namespace for `c` (CLONE_NEWUSER): owned by its effective ids, with every
/// capability inside and none of its old ones.
pub fn new_user(c: &mut Creds) -> KResult<()> {
    let parent = c.user_ns();
    // Linux refuses a creator whose ids have no mapping in its own namespace.
    if make_kuid(&parent, from_kuid(&parent, c.euid)) != c.euid
        || make_kgid(&parent, from_kgid(&parent, c.egid)) != c.egid
    {
        return Err(EPERM);
    }
    let ns = Arc::new(UserNs {
        ino: alloc_ino(),
        level: parent.level + 1,
        parent: Some(parent),
        owner: c.euid,
        group: c.egid,
        uid_map: Mutex::new(None),
        gid_map: Mutex::new(None),
        setgroups: AtomicBool::new(true),
    });
    c.user = Some(ns);
    c.cap_effective = CAP_FULL;
    c.cap_permitted = CAP_FULL;
    c.cap_bset = CAP_FULL;
    c.cap_inheritable = 0;
    Ok(())
}

/// The namespace set after clone/unshare with `flags`, in the user namespace `user`
/// (the new one when CLONE_NEWUSER came with them).
pub fn copy(old: &Arc<NsSet>, flags: u64, user: &Arc<UserNs>) -> Arc<NsSet> {
    if flags & (CLONE_NEWUTS | CLONE_NEWIPC) == 0 {
        return old.clone();
    }
    let mut n = (**old).clone();
    if flags & CLONE_NEWUTS != 0 {
        n.uts = Arc::new(UtsNs {
            ino: alloc_ino(),
            user: user.clone(),
            hostname: Mutex::new(old.uts.hostname.lock().clone()),
            domainname: Mutex::new(old.uts.domainname.lock().clone()),
        });
    }
    if flags & CLONE_NEWIPC != 0 {
        n.ipc = IpcNs::new(user.clone(), alloc_ino());
    }
    Arc::new(n)
}

static INIT_USER: std::sync::OnceLock<Arc<UserNs>> = std::sync::OnceLock::new();

/// The first user namespace (the same for every sandbox: nothing in it changes).
pub fn init_user() -> Arc<UserNs> {
    INIT_USER.get_or_init(UserNs::init).clone()
}

const CLONE_FS: u64 = 0x200;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;

/// clone(2)'s namespace checks (copy_process and copy_namespaces), then `check_new`.
pub fn check_clone(c: &Creds, flags: u64, log: impl Fn(&str)) -> KResult<()> {
    if flags & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS
        || (flags & CLONE_THREAD != 0 && flags & (CLONE_NEWUSER | CLONE_NEWPID) != 0)
        || flags & (CLONE_NEWIPC | CLONE_SYSVSEM) == CLONE_NEWIPC | CLONE_SYSVSEM
    {
        return Err(EINVAL);
    }
    check_new(c, flags, log)
}

/// The credentials and namespaces of a task that clone/unshare with `flags` makes
/// from `c` and `set` (flags checked).
pub fn for_new(c: &Creds, set: &Arc<NsSet>, flags: u64) -> KResult<(Creds, Arc<NsSet>)> {
    let mut c = c.clone();
    if flags & CLONE_NEWUSER != 0 {
        new_user(&mut c)?;
    }
    let set = copy(set, flags, &c.user_ns());
    Ok((c, set))
}

//! Namespaces besides the mount namespace (which lives with the fs context): a task's
//! set (Linux's nsproxy, plus the user namespace that Linux keeps in the credentials),
//! and the identity of each namespace (its nsfs inode number).
//!
//! Network, cgroup, PID and time namespaces are not modelled: every task is in the
//! first one of each, and creating new ones is refused (EINVAL).

use super::{Creds, CAP_FULL};
use crate::errno::*;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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

impl Drop for UserNs {
    fn drop(&mut self) {
        if self.parent.is_some() {
            LIVE_USER_NS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// User namespaces alive besides the first, and /proc/sys/user/max_user_namespaces
/// (set at boot to Linux's default: half the RLIMIT_NPROC hard limit).
static LIVE_USER_NS: AtomicU64 = AtomicU64::new(0);
static MAX_USER_NS: AtomicU64 = AtomicU64::new(u64::MAX);

pub fn max_user_namespaces() -> u64 {
    MAX_USER_NS.load(Ordering::Relaxed)
}
pub fn set_max_user_namespaces(n: u64) {
    MAX_USER_NS.store(n, Ordering::Relaxed);
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
    /// System V shared memory segments.
    pub shm: Arc<crate::ipc::shm::ShmNs>,
    /// System V semaphore sets.
    pub sem: Arc<crate::ipc::sem::SemNs>,
    /// System V message queues.
    pub msg: Arc<crate::ipc::msg::MsgNs>,
}

impl IpcNs {
    fn new(user: Arc<UserNs>, ino: u32) -> Arc<IpcNs> {
        Arc::new(IpcNs {
            ino,
            user,
            mqueue: std::sync::OnceLock::new(),
            shm: Default::default(),
            sem: Default::default(),
            msg: Default::default(),
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
        let nproc = super::default_rlimits()[6].1;
        let _ = MAX_USER_NS.compare_exchange(
            u64::MAX,
            (nproc / 2).min(i32::MAX as u64),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
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
    if flags & CLONE_NEWUSER != 0
        && (c.user_ns().level > MAX_USER_LEVEL
            || LIVE_USER_NS.load(Ordering::Relaxed) >= max_user_namespaces())
    {
        return Err(ENOSPC);
    }
    let missing = flags & (CLONE_NEWCGROUP | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME);
    if missing != 0 {
        log(match missing {
            f if f & CLONE_NEWNET != 0 => "CLONE_NEWNET",
            f if f & CLONE_NEWPID != 0 => "CLONE_NEWPID",
            f if f & CLONE_NEWCGROUP != 0 => "CLONE_NEWCGROUP",
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
    let setgroups = parent.setgroups.load(Ordering::Relaxed);
    let ns = Arc::new(UserNs {
        ino: alloc_ino(),
        level: parent.level + 1,
        parent: Some(parent),
        owner: c.euid,
        group: c.egid,
        uid_map: Mutex::new(None),
        gid_map: Mutex::new(None),
        setgroups: AtomicBool::new(setgroups),
    });
    LIVE_USER_NS.fetch_add(1, Ordering::Relaxed);
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

impl Creds {
    /// A capability in the task's own user namespace (`ns_capable(current_user_ns())`).
    pub fn capable_here(&self, cap: u32) -> bool {
        self.cap_effective & (1 << cap) != 0
    }

    /// A uid given by the task (-1 passes as is): EINVAL when its namespace does not
    /// map it.
    pub fn uid_in(&self, uid: u32) -> KResult<u32> {
        id_in(uid, make_kuid(&self.user_ns(), uid))
    }
    pub fn gid_in(&self, gid: u32) -> KResult<u32> {
        id_in(gid, make_kgid(&self.user_ns(), gid))
    }
    /// A kernel uid as the task sees it.
    pub fn uid_out(&self, kuid: u32) -> u32 {
        from_kuid(&self.user_ns(), kuid)
    }
    pub fn gid_out(&self, kgid: u32) -> u32 {
        from_kgid(&self.user_ns(), kgid)
    }

    /// The kernel uid of root in the task's user namespace (INVALID_ID: unmapped).
    pub fn root_kuid(&self) -> u32 {
        make_kuid(&self.user_ns(), 0)
    }
}

fn id_in(id: u32, k: u32) -> KResult<u32> {
    if id == u32::MAX {
        return Ok(id);
    }
    if k == INVALID_ID {
        return Err(EINVAL);
    }
    Ok(k)
}

/// A stat's owner as the task with credentials `c` sees it.
pub fn stat_for(mut st: crate::vfs::Stat, c: &Creds) -> crate::vfs::Stat {
    if c.user.is_some() {
        st.uid = c.uid_out(st.uid);
        st.gid = c.gid_out(st.gid);
    }
    st
}

/// userns_may_setgroups: the gid map is written and setgroups not denied.
pub fn may_setgroups(ns: &UserNs) -> bool {
    ns.gid_map.lock().is_some() && ns.setgroups.load(Ordering::Relaxed)
}

/// Which map of a user namespace: uids (CAP_SETUID) or gids (CAP_SETGID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKind {
    Uid,
    Gid,
}

impl UserNs {
    fn map(&self, kind: MapKind) -> &Mutex<Option<Vec<Extent>>> {
        match kind {
            MapKind::Uid => &self.uid_map,
            MapKind::Gid => &self.gid_map,
        }
    }
}

/// /proc/PID/uid_map or gid_map as `reader` sees it: the lower ids in the reader's
/// namespace (in the parent's when the reader is inside).
pub fn show_map(ns: &Arc<UserNs>, kind: MapKind, reader: &Creds) -> String {
    let mut lower_ns = reader.user_ns();
    if Arc::ptr_eq(&lower_ns, ns) {
        if let Some(p) = &ns.parent {
            lower_ns = p.clone();
        }
    }
    let map = ns.map(kind).lock().clone().unwrap_or_default();
    map.iter()
        .map(|e| {
            let lower = match kind {
                MapKind::Uid => from_kuid(&lower_ns, e.lower),
                MapKind::Gid => from_kgid(&lower_ns, e.lower),
            };
            format!("{:>10} {:>10} {:>10}\n", e.first, lower, e.count)
        })
        .collect()
}

/// Linux's limit on the lines of a map.
const MAX_EXTENTS: usize = 340;

fn parse_map(text: &[u8]) -> KResult<Vec<Extent>> {
    let text = std::str::from_utf8(text).map_err(|_| EINVAL)?;
    let mut v: Vec<Extent> = vec![];
    for line in text.split_terminator('\n') {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let [a, b, c] = f[..] else {
            return Err(EINVAL);
        };
        let p = |s: &str| s.parse::<u32>().map_err(|_| EINVAL);
        let e = Extent {
            first: p(a)?,
            lower: p(b)?,
            count: p(c)?,
        };
        // Neither range may wrap or reach (u32)-1.
        if e.count == 0
            || e.lower as u64 + e.count as u64 > u32::MAX as u64
            || e.first as u64 + e.count as u64 > u32::MAX as u64
        {
            return Err(EINVAL);
        }
        let overlaps =
            |x: u32, y: u32, n: u32, m: u32| x < y.saturating_add(m) && y < x.saturating_add(n);
        if v.iter().any(|o| {
            overlaps(o.first, e.first, o.count, e.count)
                || overlaps(o.lower, e.lower, o.count, e.count)
        }) {
            return Err(EINVAL);
        }
        v.push(e);
        if v.len() > MAX_EXTENTS {
            return Err(EINVAL);
        }
    }
    if v.is_empty() {
        return Err(EINVAL);
    }
    Ok(v)
}

/// A write of /proc/PID/uid_map or gid_map (Linux's map_write): once only; by a task
/// in the namespace or its parent (`opener` opened the file, `writer` writes it);
/// either one id of the opener's own (for gids only after "deny" in setgroups), or
/// CAP_SETUID/CAP_SETGID over the parent for both; every lower id mapped in the parent.
pub fn write_map(
    ns: &Arc<UserNs>,
    kind: MapKind,
    opener: &Creds,
    writer: &Creds,
    text: &[u8],
    off: u64,
) -> KResult<()> {
    let parent = ns.parent.clone().ok_or(EPERM)?;
    let on = opener.user_ns();
    if !Arc::ptr_eq(&on, ns) && !Arc::ptr_eq(&on, &parent) {
        return Err(EPERM);
    }
    if off != 0 || text.len() >= 4096 {
        return Err(EINVAL);
    }
    let mut slot = ns.map(kind).lock();
    if slot.is_some() {
        return Err(EPERM);
    }
    if !ns_capable(opener, ns, super::cap::SYS_ADMIN) {
        return Err(EPERM);
    }
    let mut map = parse_map(text)?;
    let cap = match kind {
        MapKind::Uid => super::cap::SETUID,
        MapKind::Gid => super::cap::SETGID,
    };
    let own = map.len() == 1 && map[0].count == 1 && ns.owner == opener.euid && {
        let id = map[0].lower;
        match kind {
            MapKind::Uid => make_kuid(&parent, id) == opener.euid,
            MapKind::Gid => {
                !ns.setgroups.load(Ordering::Relaxed) && make_kgid(&parent, id) == opener.egid
            }
        }
    };
    let privileged = ns_capable(writer, &parent, cap) && ns_capable(opener, &parent, cap);
    if !own && !privileged {
        return Err(EPERM);
    }
    // The lower ids, which are the parent's, become the kernel's.
    for e in map.iter_mut() {
        let lo = match kind {
            MapKind::Uid => make_kuid(&parent, e.lower),
            MapKind::Gid => make_kgid(&parent, e.lower),
        };
        let hi = match kind {
            MapKind::Uid => make_kuid(&parent, e.lower + (e.count - 1)),
            MapKind::Gid => make_kgid(&parent, e.lower + (e.count - 1)),
        };
        if lo == INVALID_ID || hi == INVALID_ID || hi - lo != e.count - 1 {
            return Err(EPERM);
        }
        e.lower = lo;
    }
    *slot = Some(map);
    Ok(())
}

/// /proc/PID/setgroups.
pub fn show_setgroups(ns: &UserNs) -> &'static str {
    if ns.setgroups.load(Ordering::Relaxed) {
        "allow\n"
    } else {
        "deny\n"
    }
}

/// A write of /proc/PID/setgroups: "allow" or "deny"; "deny" only before the gid map
/// is written, and no way back.
pub fn write_setgroups(ns: &Arc<UserNs>, opener: &Creds, text: &[u8], off: u64) -> KResult<()> {
    if off != 0 || text.len() >= 8 {
        return Err(EINVAL);
    }
    let s = std::str::from_utf8(text).map_err(|_| EINVAL)?;
    let allow = if let Some(r) = s.strip_prefix("allow") {
        (r.trim_start().is_empty()).then_some(true)
    } else if let Some(r) = s.strip_prefix("deny") {
        (r.trim_start().is_empty()).then_some(false)
    } else {
        None
    }
    .ok_or(EINVAL)?;
    if !ns_capable(opener, ns, super::cap::SYS_ADMIN) {
        return Err(EPERM);
    }
    let gid_map = ns.gid_map.lock();
    if allow {
        if !ns.setgroups.load(Ordering::Relaxed) {
            return Err(EPERM);
        }
    } else {
        if gid_map.is_some() {
            return Err(EPERM);
        }
        ns.setgroups.store(false, Ordering::Relaxed);
    }
    Ok(())
}

/// The user namespace owning a mount namespace, and the mounts it got from a more
/// privileged one (Linux's MNT_LOCKED: not unmounted, their flags not cleared, alone).
pub struct MntOwner {
    pub user: Arc<UserNs>,
    pub locked: std::collections::HashSet<u32>,
}

/// The owner of mount namespace `m`.
pub fn mounts_owner(m: &crate::vfs::Mounts) -> Arc<UserNs> {
    m.owner.get().map_or_else(init_user, |o| o.user.clone())
}

/// A new mount namespace `new`, copied from `old`, belongs to `user`; copied into a
/// less privileged namespace, every mount but the root is locked (lock_mnt_tree).
pub fn own_mounts(
    old: &crate::vfs::Mounts,
    new: &crate::vfs::Mounts,
    copies: &std::collections::HashMap<u32, Arc<crate::vfs::Mount>>,
    user: &Arc<UserNs>,
) {
    if user.is_init() {
        return;
    }
    let locked = if Arc::ptr_eq(&mounts_owner(old), user) {
        // The same owner: what was locked stays locked, in its copies.
        old.owner
            .get()
            .map(|o| {
                o.locked
                    .iter()
                    .filter_map(|id| copies.get(id).map(|m| m.id))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        new.list.read().iter().skip(1).map(|m| m.id).collect()
    };
    let _ = new.owner.set(MntOwner {
        user: user.clone(),
        locked,
    });
}

/// Is `mnt` a locked mount of `t`'s mount namespace?
fn is_locked(t: &super::Task, mnt: &crate::vfs::Mount) -> bool {
    t.mounts()
        .owner
        .get()
        .is_some_and(|o| o.locked.contains(&mnt.id))
}

/// mount(2)'s permission: CAP_SYS_ADMIN over the mount namespace; inside a user
/// namespace's own, only file systems a user namespace may mount (tmpfs, devpts; not
/// proc, sysfs or mqueue, whose PID, network and IPC namespaces it would have to
/// own — rvisor's PID and network namespaces are the first ones); a locked mount is
/// only bind-remounted, keeping its ro, nosuid, nodev and noexec.
pub fn may_mount(t: &super::Task, at: &crate::vfs::Path, flags: u64, fstype: &[u8]) -> KResult<()> {
    let c = t.creds();
    let m = t.mounts();
    let owner = mounts_owner(&m);
    if !ns_capable(&c, &owner, super::cap::SYS_ADMIN) {
        return Err(EPERM);
    }
    if owner.is_init() {
        return Ok(());
    }
    const MS_REMOUNT: u64 = 32;
    const MS_BIND: u64 = 4096;
    const PROPAGATION: u64 = (1 << 20) | (1 << 18) | (1 << 19) | (1 << 17);
    if flags & MS_REMOUNT != 0 {
        let kept = crate::vfs::MS_RDONLY
            | crate::vfs::MS_NOSUID
            | crate::vfs::MS_NODEV
            | crate::vfs::MS_NOEXEC;
        let had = at.mnt.flags() & kept;
        // A locked mount's file system was mounted outside: only a bind remount, and
        // one that keeps its flags.
        if is_locked(t, &at.mnt) && (flags & MS_BIND == 0 || (flags as u32) & had != had) {
            return Err(EPERM);
        }
        return Ok(());
    }
    if flags & (MS_BIND | PROPAGATION) != 0 {
        return Ok(());
    }
    match fstype {
        b"tmpfs" | b"devpts" => Ok(()),
        b"mqueue" if ns_capable(&c, &t.ns().ipc.user, super::cap::SYS_ADMIN) => Ok(()),
        _ => Err(EPERM),
    }
}

/// umount2(2)'s permission: CAP_SYS_ADMIN over the mount namespace; a locked mount
/// does not come off alone (EINVAL).
pub fn may_umount(t: &super::Task, at: &crate::vfs::Path) -> KResult<()> {
    let m = t.mounts();
    if !ns_capable(&t.creds(), &mounts_owner(&m), super::cap::SYS_ADMIN) {
        return Err(EPERM);
    }
    if is_locked(t, &at.mnt) {
        return Err(EINVAL);
    }
    Ok(())
}

impl Creds {
    /// A capability over a file owned by `uid`:`gid` (capable_wrt_inode_uidgid): in the
    /// first namespace, or in the task's own when both ids are mapped there.
    pub fn capable_wrt(&self, cap: u32, uid: u32, gid: u32) -> bool {
        if self.has_cap(cap) {
            return true;
        }
        let ns = self.user_ns();
        !ns.is_init()
            && self.capable_here(cap)
            && map_up(&ns.uid_map.lock(), uid) != INVALID_ID
            && map_up(&ns.gid_map.lock(), gid) != INVALID_ID
    }
}

/// Credentials `c` with their ids as `reader` sees them (/proc/PID/status).
pub fn creds_for(mut c: Creds, reader: &Creds) -> Creds {
    if reader.user.is_none() {
        return c;
    }
    for x in [&mut c.uid, &mut c.euid, &mut c.suid, &mut c.fsuid] {
        *x = reader.uid_out(*x);
    }
    for x in [&mut c.gid, &mut c.egid, &mut c.sgid, &mut c.fsgid] {
        *x = reader.gid_out(*x);
    }
    c.groups = c.groups.iter().map(|g| reader.gid_out(*g)).collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_parse_as_linux_checks_them() {
        let m = parse_map(b"0 1000 1\n1 100000 65536\n").expect("valid");
        assert_eq!(m.len(), 2);
        for bad in [
            &b""[..],
            b"0 1000\n",
            b"0 1000 0\n",
            b"x 1 1\n",
            b"1 0 4294967295\n",
            b"0 0 10\n5 100 10\n",
            b"0 0 10\n20 5 10\n",
        ] {
            assert_eq!(
                parse_map(bad),
                Err(EINVAL),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn ids_translate_through_the_map_and_overflow_outside() {
        let mut c = Creds::new(1000, 1000);
        new_user(&mut c).expect("new user namespace");
        let ns = c.user_ns();
        assert_eq!(c.uid_out(1000), OVERFLOW_ID);
        write_map(&ns, MapKind::Uid, &c, &c, b"0 1000 1\n", 0).expect("own uid");
        assert_eq!(c.uid_out(1000), 0);
        assert_eq!(c.uid_in(0), Ok(1000));
        assert_eq!(c.uid_in(1), Err(EINVAL));
        // Once only; the gid map waits for "deny".
        assert_eq!(
            write_map(&ns, MapKind::Uid, &c, &c, b"0 1000 1\n", 0),
            Err(EPERM)
        );
        assert_eq!(
            write_map(&ns, MapKind::Gid, &c, &c, b"0 1000 1\n", 0),
            Err(EPERM)
        );
        write_setgroups(&ns, &c, b"deny", 0).expect("deny");
        write_map(&ns, MapKind::Gid, &c, &c, b"0 1000 1\n", 0).expect("own gid");
        assert_eq!(c.gid_out(1000), 0);
        // Full capabilities inside, none in the first namespace.
        assert!(ns_capable(&c, &ns, super::super::cap::SYS_ADMIN));
        assert!(!c.has_cap(super::super::cap::SYS_ADMIN));
    }
}

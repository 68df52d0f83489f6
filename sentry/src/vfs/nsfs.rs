//! nsfs: the files /proc/PID/ns/* lead to. Each namespace is one inode (its number is
//! the namespace's); an open one is what setns(2) and the NS_GET_* ioctls take.

use super::*;
use crate::kernel::ns::{self, IpcNs, UserNs, UtsNs};

/// st_dev of nsfs files (Linux's nsfs is the 4th anonymous device, 0:4).
pub const NSFS_DEV: u64 = 4;

const NS_GET_USERNS: u32 = 0xb701;
const NS_GET_PARENT: u32 = 0xb702;
const NS_GET_NSTYPE: u32 = 0xb703;
const NS_GET_OWNER_UID: u32 = 0xb704;

/// One namespace, of any kind.
#[derive(Clone)]
pub enum NsRef {
    User(Arc<UserNs>),
    Uts(Arc<UtsNs>),
    Ipc(Arc<IpcNs>),
    Mnt(Arc<Mounts>),
    /// The kinds rvisor has one of: net, pid, cgroup, time.
    Fixed(u64),
}

/// The /proc/PID/ns entries, as Linux lists them.
pub const NAMES: [&str; 10] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
];

impl NsRef {
    /// Namespace `name` (an entry of NAMES) of `t`.
    pub fn of(t: &Task, name: &str) -> Option<NsRef> {
        Some(match name {
            "user" => NsRef::User(t.creds().user_ns()),
            "uts" => NsRef::Uts(t.ns().uts.clone()),
            "ipc" => NsRef::Ipc(t.ns().ipc.clone()),
            "mnt" => NsRef::Mnt(t.mounts()),
            "net" => NsRef::Fixed(ns::CLONE_NEWNET),
            "pid" | "pid_for_children" => NsRef::Fixed(ns::CLONE_NEWPID),
            "cgroup" => NsRef::Fixed(ns::CLONE_NEWCGROUP),
            "time" | "time_for_children" => NsRef::Fixed(ns::CLONE_NEWTIME),
            _ => return None,
        })
    }

    /// The CLONE_NEW* flag of the kind.
    pub fn kind(&self) -> u64 {
        match self {
            NsRef::User(_) => ns::CLONE_NEWUSER,
            NsRef::Uts(_) => ns::CLONE_NEWUTS,
            NsRef::Ipc(_) => ns::CLONE_NEWIPC,
            NsRef::Mnt(_) => ns::CLONE_NEWNS,
            NsRef::Fixed(k) => *k,
        }
    }

    pub fn ino(&self) -> u32 {
        match self {
            NsRef::User(n) => n.ino,
            NsRef::Uts(n) => n.ino,
            NsRef::Ipc(n) => n.ino,
            NsRef::Mnt(m) => m.ino,
            NsRef::Fixed(k) => match *k {
                ns::CLONE_NEWNET => ns::INIT_NET_INO,
                ns::CLONE_NEWPID => ns::INIT_PID_INO,
                ns::CLONE_NEWCGROUP => ns::INIT_CGROUP_INO,
                _ => ns::INIT_TIME_INO,
            },
        }
    }

    fn type_name(&self) -> &'static str {
        match self.kind() {
            ns::CLONE_NEWUSER => "user",
            ns::CLONE_NEWUTS => "uts",
            ns::CLONE_NEWIPC => "ipc",
            ns::CLONE_NEWNS => "mnt",
            ns::CLONE_NEWNET => "net",
            ns::CLONE_NEWPID => "pid",
            ns::CLONE_NEWCGROUP => "cgroup",
            _ => "time",
        }
    }

    /// What readlink of a /proc/PID/ns entry shows: `uts:[4026531838]`.
    pub fn link_text(&self) -> Vec<u8> {
        format!("{}:[{}]", self.type_name(), self.ino()).into_bytes()
    }

    /// The user namespace that owns it.
    pub fn owner(&self) -> Arc<UserNs> {
        match self {
            NsRef::User(n) => n.parent.clone().unwrap_or_else(ns::init_user),
            NsRef::Uts(n) => n.user.clone(),
            NsRef::Ipc(n) => n.user.clone(),
            NsRef::Mnt(m) => ns::mounts_owner(m),
            NsRef::Fixed(_) => ns::init_user(),
        }
    }

    /// The path a /proc/PID/ns link leads to: the namespace's nsfs inode on a mount of
    /// its own (no mount table holds it).
    pub fn path(&self) -> Path {
        let inode: Arc<dyn Inode> = Arc::new(NsInode { ns: self.clone() });
        let dentry = Arc::new(Dentry {
            name: self.link_text(),
            parent: None,
            inode,
        });
        Path {
            mnt: Arc::new(Mount {
                id: 0,
                root: dentry.clone(),
                parent: None,
                fstype: "nsfs".into(),
                source: "nsfs".into(),
                flags: Default::default(),
                opts: String::new(),
            }),
            dentry,
        }
    }
}

/// ptrace_may_access(PTRACE_MODE_READ_FSCREDS): may `me` see `target`'s namespaces?
pub fn may_read(me: &Task, target: &Task) -> bool {
    if Arc::ptr_eq(&me.tg, &target.tg) {
        return true;
    }
    let c = me.creds();
    let them = target.creds();
    let same = [them.uid, them.euid, them.suid]
        .iter()
        .all(|x| *x == c.fsuid)
        && [them.gid, them.egid, them.sgid]
            .iter()
            .all(|x| *x == c.fsgid);
    let cap = ns::ns_capable(&c, &them.user_ns(), crate::kernel::cap::SYS_PTRACE);
    let dumpable = target.mm().dumpable.load(Ordering::Relaxed);
    cap || (same && dumpable)
}

pub struct NsInode {
    pub ns: NsRef,
}

impl Inode for NsInode {
    fn stat(&self) -> Stat {
        Stat {
            dev: NSFS_DEV,
            ino: self.ns.ino() as u64,
            mode: S_IFREG | 0o444,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        }
    }
    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        if flags & O_ACCMODE != 0 {
            return Err(EACCES);
        }
        Ok(Arc::new(NsFile {
            ns: self.ns.clone(),
        }))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open namespace file.
pub struct NsFile {
    pub ns: NsRef,
}

/// The namespace an open file is, if it is one.
pub fn ns_of(f: &OpenFile) -> Option<NsRef> {
    f.ops
        .as_any()
        .downcast_ref::<NsFile>()
        .map(|n| n.ns.clone())
}

/// A new O_RDONLY|O_CLOEXEC descriptor for namespace `ns` (what the ioctls return).
fn install(t: &Task, ns: NsRef) -> SysResult {
    let path = ns.path();
    let f = OpenFile::new(Arc::new(NsFile { ns }), Some(path), 0);
    let lim = t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    Ok(t.files().install(f, true, 0, lim)? as u64)
}

impl FileOps for NsFile {
    fn read(&self, _f: &OpenFile, _t: &Task, _buf: &mut [u8], _off: u64) -> KResult<usize> {
        Err(EINVAL)
    }
    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        match cmd {
            NS_GET_NSTYPE => Ok(self.ns.kind()),
            NS_GET_USERNS | NS_GET_PARENT => {
                let target = if cmd == NS_GET_USERNS {
                    self.ns.owner()
                } else {
                    match &self.ns {
                        NsRef::User(n) => n.parent.clone().ok_or(EPERM)?,
                        // PID namespaces are the only other kind with parents; rvisor
                        // has one, with none.
                        NsRef::Fixed(ns::CLONE_NEWPID) => return Err(EPERM),
                        _ => return Err(EINVAL),
                    }
                };
                // Nothing above the caller's own user namespace is handed out.
                if !t.creds().user_ns().is_ancestor_of(&target) {
                    return Err(EPERM);
                }
                install(t, NsRef::User(target))
            }
            NS_GET_OWNER_UID => {
                let NsRef::User(n) = &self.ns else {
                    return Err(EINVAL);
                };
                let uid = ns::from_kuid(&t.creds().user_ns(), n.owner);
                t.mm().write_obj(arg, &uid)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Which of /proc/PID/{uid_map,gid_map,setgroups}.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdFile {
    Map(ns::MapKind),
    Setgroups,
}

/// The text of an id file of `t`'s user namespace, as `reader` sees it.
pub fn show_id_file(t: &Task, which: IdFile, reader: &crate::kernel::Creds) -> Vec<u8> {
    let n = t.creds().user_ns();
    match which {
        IdFile::Map(k) => ns::show_map(&n, k, reader).into_bytes(),
        IdFile::Setgroups => ns::show_setgroups(&n).as_bytes().to_vec(),
    }
}

/// An id file opened for writing, with the opener's credentials (Linux checks both the
/// opener's and the writer's).
pub struct IdFileWriter {
    pub ns: Arc<UserNs>,
    pub which: IdFile,
    pub opener: crate::kernel::Creds,
    pub data: Vec<u8>,
}

impl FileOps for IdFileWriter {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], off: u64) -> KResult<usize> {
        BytesFile {
            data: self.data.clone(),
        }
        .read(f, t, buf, off)
    }
    fn write(&self, _f: &OpenFile, t: &Task, buf: &[u8], off: u64) -> KResult<usize> {
        match self.which {
            IdFile::Map(k) => ns::write_map(&self.ns, k, &self.opener, &t.creds(), buf, off)?,
            IdFile::Setgroups => ns::write_setgroups(&self.ns, &self.opener, buf, off)?,
        }
        Ok(buf.len())
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

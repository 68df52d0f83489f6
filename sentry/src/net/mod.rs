//! Sockets. AF_UNIX endpoints live entirely in the Sentry ([`unix`]); AF_INET and
//! AF_INET6 sockets ([`inet`]) are served by rvisor's own TCP/IP stack (the netstack crate).
//!
//! Every socket's open file has a path on a private "sockfs" mount (never in the mount
//! table) whose inode reports `S_IFSOCK`, so fstat and friends see a socket.

pub mod dns;
pub mod ext;
pub mod hostinet;
pub mod ifreq;
pub mod inet;
pub mod netlink;
pub mod ping;
pub mod raw;
mod rtnetlink;
mod sock_diag;
pub mod sockinfo;
pub mod tos;
pub mod unix;

use crate::errno::*;
use crate::kernel::Task;
use crate::vfs::*;
use parking_lot::Mutex;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

pub const AF_UNSPEC: i32 = 0;
pub const AF_UNIX: i32 = 1;
pub const AF_INET: i32 = 2;
pub const AF_INET6: i32 = 10;
pub const AF_MAX: i32 = 46;

pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const SOCK_RAW: i32 = 3;
pub const SOCK_SEQPACKET: i32 = 5;
pub const SOCK_MAX: i32 = 11;
pub const SOCK_TYPE_MASK: i32 = 0xf;
pub const SOCK_NONBLOCK: i32 = O_NONBLOCK as i32;
pub const SOCK_CLOEXEC: i32 = O_CLOEXEC as i32;

pub const MSG_OOB: u32 = 0x1;
pub const MSG_PEEK: u32 = 0x2;
pub const MSG_CTRUNC: u32 = 0x8;
pub const MSG_TRUNC: u32 = 0x20;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_EOR: u32 = 0x80;
pub const MSG_WAITALL: u32 = 0x100;
pub const MSG_NOSIGNAL: u32 = 0x4000;
pub const MSG_WAITFORONE: u32 = 0x10000;
pub const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;

pub const SOL_SOCKET: i32 = 1;
pub const SCM_RIGHTS: i32 = 1;
pub const SCM_CREDENTIALS: i32 = 2;

pub const SO_DEBUG: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_TYPE: i32 = 3;
pub const SO_ERROR: i32 = 4;
pub const SO_DONTROUTE: i32 = 5;
pub const SO_BROADCAST: i32 = 6;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const SO_KEEPALIVE: i32 = 9;
pub const SO_OOBINLINE: i32 = 10;
pub const SO_PRIORITY: i32 = 12;
pub const SO_LINGER: i32 = 13;
pub const SO_PASSCRED: i32 = 16;
pub const SO_PEERCRED: i32 = 17;
pub const SO_RCVLOWAT: i32 = 18;
pub const SO_SNDLOWAT: i32 = 19;
pub const SO_RCVTIMEO_OLD: i32 = 20;
pub const SO_SNDTIMEO_OLD: i32 = 21;
pub const SO_ACCEPTCONN: i32 = 30;
pub const SO_SNDBUFFORCE: i32 = 32;
pub const SO_RCVBUFFORCE: i32 = 33;
pub const SO_PROTOCOL: i32 = 38;
pub const SO_DOMAIN: i32 = 39;
pub const SO_RCVTIMEO_NEW: i32 = 66;
pub const SO_SNDTIMEO_NEW: i32 = 67;

pub const SHUT_RD: i32 = 0;
pub const SHUT_WR: i32 = 1;
pub const SHUT_RDWR: i32 = 2;

/// Device number sockfs inodes report.
const SOCKFS_DEV: u64 = 0x8;

static NEXT_INO: AtomicU64 = AtomicU64::new(10_000);

/// A setsockopt(2) value read as an int: EINVAL when shorter than 4 bytes.
pub(crate) fn opt_int(val: &[u8]) -> KResult<i32> {
    if val.len() < 4 {
        return Err(EINVAL);
    }
    Ok(i32::from_le_bytes(val[..4].try_into().expect("4 bytes")))
}

/// An SO_RCVTIMEO/SO_SNDTIMEO struct timeval: None (0, 0) means no timeout, a negative
/// second count means "do not wait", usec outside [0, 1e6) is EDOM.
pub(crate) fn opt_timeout(val: &[u8]) -> KResult<Option<std::time::Duration>> {
    use std::time::Duration;
    if val.len() < 16 {
        return Err(EINVAL);
    }
    let sec = i64::from_le_bytes(val[..8].try_into().expect("8 bytes"));
    let usec = i64::from_le_bytes(val[8..16].try_into().expect("8 bytes"));
    if !(0..1_000_000).contains(&usec) {
        return Err(EDOM);
    }
    if sec < 0 {
        return Ok(Some(Duration::ZERO));
    }
    if sec == 0 && usec == 0 {
        return Ok(None);
    }
    Ok(Some(
        Duration::from_secs(sec as u64) + Duration::from_micros(usec as u64),
    ))
}

/// The interfaces and routes the sandbox shows (netlink, SIOCGIF*, /proc/net): the
/// host's snapshot with `--network host`, else the netstack's.
pub fn ifaces(
    k: &Arc<crate::kernel::Kernel>,
) -> (Vec<hostinet::IfaceInfo>, Vec<hostinet::RouteInfo>) {
    match hostinet::of(k) {
        Some(n) => (n.ifaces.clone(), n.routes.clone()),
        None => {
            let st = inet::stack(k);
            (st.interfaces(), st.routes())
        }
    }
}

/// The sandbox's open sockets of every family (/proc/net/sockstat's "sockets: used").
pub fn sockets_in_use(k: &Arc<crate::kernel::Kernel>) -> usize {
    let inet = match hostinet::of(k) {
        Some(n) => n.sockets().len(),
        None => inet::sockets(k).len(),
    };
    inet + unix::sockets(k).len() + netlink::open_count(k)
}

/// A fresh socket inode number.
pub fn next_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

/// The inode behind a socket's open file: what fstat sees.
pub struct SockInode {
    ino: u64,
    meta: Mutex<(u32, u32, u32)>,
    time: (i64, i64),
}

impl SockInode {
    fn new(ino: u64, mode: u32, uid: u32, gid: u32) -> Arc<SockInode> {
        Arc::new(SockInode {
            ino,
            meta: Mutex::new((mode, uid, gid)),
            time: now(),
        })
    }
}

impl Inode for SockInode {
    fn stat(&self) -> Stat {
        let (mode, uid, gid) = *self.meta.lock();
        Stat {
            dev: SOCKFS_DEV,
            ino: self.ino,
            mode,
            nlink: 1,
            uid,
            gid,
            blksize: 4096,
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            ..Default::default()
        }
    }
    fn open(self: Arc<Self>, _flags: u32) -> KResult<Arc<dyn FileOps>> {
        Err(ENXIO)
    }
    fn setattr(&self, a: &SetAttr) -> KResult<()> {
        let mut m = self.meta.lock();
        if let Some(mode) = a.mode {
            m.0 = (m.0 & S_IFMT) | (mode & 0o7777);
        }
        if let Some(u) = a.uid {
            m.1 = u;
        }
        if let Some(g) = a.gid {
            m.2 = g;
        }
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The private mount socket files hang off.
fn sockfs() -> Arc<Mount> {
    static MNT: OnceLock<Arc<Mount>> = OnceLock::new();
    MNT.get_or_init(|| {
        Arc::new(Mount {
            id: u32::MAX,
            root: Arc::new(Dentry {
                name: b"/".to_vec(),
                parent: None,
                inode: SockInode::new(next_ino(), S_IFDIR | 0o755, 0, 0),
            }),
            parent: None,
            fstype: "sockfs".into(),
            source: "sockfs".into(),
            flags: Default::default(),
            opts: "rw".into(),
        })
    })
    .clone()
}

/// An open file for a unix socket endpoint. `flags` may hold O_NONBLOCK.
pub fn socket_file(sock: Arc<unix::Sock>, flags: u32, t: &Task) -> Arc<OpenFile> {
    let ino = sock.ino;
    sock_open_file(Arc::new(unix::SockFile { sock }), ino, flags, t)
}

/// An open file for an inet socket. `flags` may hold O_NONBLOCK.
pub fn inet_socket_file(sock: Arc<inet::InetSock>, flags: u32, t: &Task) -> Arc<OpenFile> {
    let ino = sock.ino;
    sock_open_file(Arc::new(inet::InetFile { sock }), ino, flags, t)
}

fn sock_open_file(ops: Arc<dyn FileOps>, ino: u64, flags: u32, t: &Task) -> Arc<OpenFile> {
    let cr = t.creds();
    let mnt = sockfs();
    let dentry = Arc::new(Dentry {
        name: format!("socket:[{ino}]").into_bytes(),
        parent: Some(mnt.root.clone()),
        inode: SockInode::new(ino, S_IFSOCK | 0o777, cr.fsuid, cr.fsgid),
    });
    OpenFile::new(
        ops,
        Some(Path { mnt, dentry }),
        O_RDWR | (flags & O_NONBLOCK),
    )
}

/// The ioctl(2) requests for the bytes a socket has queued to read and to send.
const FIONREAD: u32 = 0x541b;
const TIOCOUTQ: u32 = 0x5411;

/// A socket's read(2): `recv(len)` (recv with no flags) into `buf`; an empty read is 0
/// at once.
fn sock_read(buf: &mut [u8], recv: impl FnOnce(usize) -> KResult<Vec<u8>>) -> KResult<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let data = recv(buf.len())?;
    buf[..data.len()].copy_from_slice(&data);
    Ok(data.len())
}

/// The answer to FIONREAD or TIOCOUTQ: `n` queued bytes, as an int at `arg`.
fn put_queued(t: &Task, arg: u64, n: usize) -> SysResult {
    t.mm().write_obj(arg, &(n.min(i32::MAX as usize) as i32))?;
    Ok(0)
}

/// An open file for a netlink socket. `flags` may hold O_NONBLOCK.
pub fn netlink_socket_file(sock: Arc<netlink::NetlinkSock>, flags: u32, t: &Task) -> Arc<OpenFile> {
    let ino = sock.ino;
    sock_open_file(Arc::new(netlink::NetlinkFile { sock }), ino, flags, t)
}

/// The netlink socket behind an open file, if it is one.
pub fn netlink_sock(f: &OpenFile) -> Option<Arc<netlink::NetlinkSock>> {
    f.ops
        .as_any()
        .downcast_ref::<netlink::NetlinkFile>()
        .map(|s| s.sock.clone())
}

/// The unix socket behind an open file, or ENOTSOCK.
pub fn unix_sock(f: &OpenFile) -> KResult<Arc<unix::Sock>> {
    f.ops
        .as_any()
        .downcast_ref::<unix::SockFile>()
        .map(|s| s.sock.clone())
        .ok_or(ENOTSOCK)
}

/// The inet socket behind an open file, if it is one.
pub fn inet_sock(f: &OpenFile) -> Option<Arc<inet::InetSock>> {
    f.ops
        .as_any()
        .downcast_ref::<inet::InetFile>()
        .map(|s| s.sock.clone())
}

/// State the sockets keep per sandbox outside the Kernel: `all` holds each live kernel's
/// value, made by `make` on first use; entries of kernels that are gone are dropped.
pub(crate) fn per_kernel<T: Clone>(
    all: &Mutex<Vec<(Weak<crate::kernel::Kernel>, T)>>,
    k: &Arc<crate::kernel::Kernel>,
    make: impl FnOnce() -> T,
) -> T {
    let mut all = all.lock();
    all.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, v)) = all
        .iter()
        .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(k)))
    {
        return v.clone();
    }
    let v = make();
    all.push((Arc::downgrade(k), v.clone()));
    v
}

//! The gofer: serves a container's files to the Sentry over a unix socket.
//!
//! Handles (fids) name opened host files (O_PATH descriptors), never paths. Every walk
//! is one component opened with O_NOFOLLOW relative to its parent, so no request can
//! leave the root. Opened files are donated to the client with SCM_RIGHTS.

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub type Fid = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}
impl std::error::Error for Errno {}

#[derive(Debug, Clone, Default)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: u8,
    pub name: Vec<u8>,
}

const OP_ATTACH: u8 = 1;
const OP_WALK: u8 = 2;
const OP_STAT: u8 = 3;
const OP_OPEN: u8 = 4;
const OP_READDIR: u8 = 5;
const OP_READLINK: u8 = 6;
const OP_CLUNK: u8 = 7;

const MAX_MSG: usize = 1 << 20;

/// A CLOEXEC SOCK_SEQPACKET pair.
pub fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}

fn send(sock: RawFd, data: &[u8], fd: Option<RawFd>) -> std::io::Result<()> {
    let iov = [IoSlice::new(data)];
    let fds;
    let cmsg: Vec<ControlMessage> = match fd {
        Some(f) => {
            fds = [f];
            vec![ControlMessage::ScmRights(&fds)]
        }
        None => vec![],
    };
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None).map_err(std::io::Error::from)?;
    Ok(())
}

fn recv(sock: RawFd) -> std::io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut cbuf = nix::cmsg_space!([RawFd; 1]);
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cbuf), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(std::io::Error::from)?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(v) = c {
                for f in v {
                    // SAFETY: the kernel just gave us this descriptor.
                    let o = unsafe { OwnedFd::from_raw_fd(f) };
                    if fd.is_none() {
                        fd = Some(o);
                    }
                }
            }
        }
        (msg.bytes, fd)
    };
    if n == 0 {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some((buf, fd)))
}

fn put_stat(out: &mut Vec<u8>, st: &libc::stat) {
    for v in [
        st.st_dev,
        st.st_ino,
        st.st_mode as u64,
        st.st_nlink,
        st.st_uid as u64,
        st.st_gid as u64,
        st.st_rdev,
        st.st_size as u64,
        st.st_blksize as u64,
        st.st_blocks as u64,
        st.st_atime as u64,
        st.st_atime_nsec as u64,
        st.st_mtime as u64,
        st.st_mtime_nsec as u64,
        st.st_ctime as u64,
        st.st_ctime_nsec as u64,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn get_stat(b: &[u8]) -> Result<Stat, Errno> {
    if b.len() < 128 {
        return Err(Errno(libc::EIO));
    }
    let g = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8"));
    Ok(Stat {
        dev: g(0),
        ino: g(1),
        mode: g(2) as u32,
        nlink: g(3),
        uid: g(4) as u32,
        gid: g(5) as u32,
        rdev: g(6),
        size: g(7) as i64,
        blksize: g(8) as i64,
        blocks: g(9) as i64,
        atime: (g(10) as i64, g(11) as i64),
        mtime: (g(12) as i64, g(13) as i64),
        ctime: (g(14) as i64, g(15) as i64),
    })
}

// ---- server ----

struct Node {
    fd: OwnedFd,
    parent: Option<Fid>,
    name: Vec<u8>,
}

fn errno() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

fn fstat(fd: RawFd) -> Result<libc::stat, Errno> {
    // SAFETY: stat is plain data; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and buffers; "" with AT_EMPTY_PATH stats the fd itself.
    let r = unsafe {
        libc::fstatat(
            fd,
            c"".as_ptr(),
            &mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(errno());
    }
    Ok(st)
}

fn cname(name: &[u8]) -> Result<std::ffi::CString, Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.len() > 255
    {
        return Err(Errno(libc::EINVAL));
    }
    std::ffi::CString::new(name).map_err(|_| Errno(libc::EINVAL))
}

struct Server {
    nodes: HashMap<Fid, Node>,
    next: Fid,
}

impl Server {
    fn node(&self, fid: Fid) -> Result<&Node, Errno> {
        self.nodes.get(&fid).ok_or(Errno(libc::EBADF))
    }

    fn add(&mut self, fd: OwnedFd, parent: Option<Fid>, name: Vec<u8>) -> Fid {
        self.next += 1;
        self.nodes.insert(self.next, Node { fd, parent, name });
        self.next
    }

    fn handle(&mut self, req: &[u8], readonly: bool) -> Result<(Vec<u8>, Option<OwnedFd>), Errno> {
        if req.len() < 9 {
            return Err(Errno(libc::EINVAL));
        }
        let op = req[0];
        let fid = u64::from_le_bytes(req[1..9].try_into().expect("8"));
        let rest = &req[9..];
        let mut out = vec![];
        match op {
            OP_ATTACH => {
                let root = self.node(0)?;
                let fd = root.fd.try_clone().map_err(|_| errno())?;
                let st = fstat(fd.as_raw_fd())?;
                let f = self.add(fd, None, vec![]);
                out.extend_from_slice(&f.to_le_bytes());
                put_stat(&mut out, &st);
            }
            OP_WALK => {
                let name = cname(rest)?;
                let dir = self.node(fid)?.fd.as_raw_fd();
                // SAFETY: openat on a directory descriptor we own, one component, no follow.
                let fd = unsafe {
                    libc::openat(
                        dir,
                        name.as_ptr(),
                        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    return Err(errno());
                }
                // SAFETY: a fresh descriptor.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let st = fstat(fd.as_raw_fd())?;
                let f = self.add(fd, Some(fid), rest.to_vec());
                out.extend_from_slice(&f.to_le_bytes());
                put_stat(&mut out, &st);
            }
            OP_STAT => put_stat(&mut out, &fstat(self.node(fid)?.fd.as_raw_fd())?),
            OP_OPEN => {
                let flags = i32::from_le_bytes(
                    rest.get(..4)
                        .ok_or(Errno(libc::EINVAL))?
                        .try_into()
                        .expect("4"),
                );
                let flags =
                    flags & !(libc::O_CREAT | libc::O_EXCL) | libc::O_NOFOLLOW | libc::O_CLOEXEC;
                if readonly
                    && (flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0)
                {
                    return Err(Errno(libc::EROFS));
                }
                let n = self.node(fid)?;
                let st = fstat(n.fd.as_raw_fd())?;
                let kind = st.st_mode & libc::S_IFMT;
                if kind != libc::S_IFREG && kind != libc::S_IFDIR {
                    return Err(Errno(libc::EPERM));
                }
                let fd = match n.parent {
                    Some(p) => {
                        let pfd = self.node(p)?.fd.as_raw_fd();
                        let name = cname(&n.name)?;
                        // SAFETY: one component relative to the parent, no follow.
                        unsafe { libc::openat(pfd, name.as_ptr(), flags) }
                    }
                    // SAFETY: reopening the root directory through ".".
                    None => unsafe { libc::openat(n.fd.as_raw_fd(), c".".as_ptr(), flags) },
                };
                if fd < 0 {
                    return Err(errno());
                }
                // SAFETY: a fresh descriptor.
                return Ok((out, Some(unsafe { OwnedFd::from_raw_fd(fd) })));
            }
            OP_READDIR => {
                let n = self.node(fid)?;
                // SAFETY: reopen the directory for reading, relative to itself.
                let fd = unsafe {
                    libc::openat(
                        n.fd.as_raw_fd(),
                        c".".as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    return Err(errno());
                }
                // SAFETY: fdopendir takes ownership of fd.
                let d = unsafe { libc::fdopendir(fd) };
                if d.is_null() {
                    return Err(errno());
                }
                loop {
                    // SAFETY: d is a valid DIR stream.
                    let e = unsafe { libc::readdir64(d) };
                    if e.is_null() {
                        break;
                    }
                    // SAFETY: readdir64 returned a valid entry.
                    let e = unsafe { &*e };
                    // SAFETY: d_name is NUL-terminated.
                    let name = unsafe { std::ffi::CStr::from_ptr(e.d_name.as_ptr()) }.to_bytes();
                    out.extend_from_slice(&e.d_ino.to_le_bytes());
                    out.push(e.d_type);
                    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                    out.extend_from_slice(name);
                    if out.len() > MAX_MSG - 512 {
                        break;
                    }
                }
                // SAFETY: closing the stream we opened.
                unsafe { libc::closedir(d) };
            }
            OP_READLINK => {
                let n = self.node(fid)?;
                let mut buf = vec![0u8; 4096];
                // SAFETY: readlinkat on an O_PATH symlink descriptor with "" reads its target.
                let r = unsafe {
                    libc::readlinkat(
                        n.fd.as_raw_fd(),
                        c"".as_ptr(),
                        buf.as_mut_ptr() as *mut libc::c_char,
                        buf.len(),
                    )
                };
                if r < 0 {
                    return Err(errno());
                }
                out.extend_from_slice(&buf[..r as usize]);
            }
            OP_CLUNK => {
                if fid != 0 {
                    self.nodes.remove(&fid);
                }
            }
            _ => return Err(Errno(libc::EINVAL)),
        }
        Ok((out, None))
    }
}

/// Serve `root` (an opened directory) on `sock` until the peer closes it.
pub fn serve(root: OwnedFd, sock: OwnedFd, readonly: bool) -> std::io::Result<()> {
    let mut s = Server {
        nodes: HashMap::new(),
        next: 0,
    };
    s.nodes.insert(
        0,
        Node {
            fd: root,
            parent: None,
            name: vec![],
        },
    );
    loop {
        let Some((req, _)) = recv(sock.as_raw_fd())? else {
            return Ok(());
        };
        let (mut reply, fd) = match s.handle(&req, readonly) {
            Ok((body, fd)) => {
                let mut r = 0i32.to_le_bytes().to_vec();
                r.extend(body);
                (r, fd)
            }
            Err(e) => (e.0.to_le_bytes().to_vec(), None),
        };
        reply.truncate(MAX_MSG);
        send(sock.as_raw_fd(), &reply, fd.as_ref().map(|f| f.as_raw_fd()))?;
    }
}

// ---- client ----

pub struct Client {
    sock: Mutex<OwnedFd>,
}

impl Client {
    pub fn new(sock: OwnedFd) -> Client {
        Client {
            sock: Mutex::new(sock),
        }
    }

    fn call(&self, op: u8, fid: Fid, arg: &[u8]) -> Result<(Vec<u8>, Option<OwnedFd>), Errno> {
        let mut req = vec![op];
        req.extend_from_slice(&fid.to_le_bytes());
        req.extend_from_slice(arg);
        let s = self.sock.lock();
        send(s.as_raw_fd(), &req, None).map_err(|_| Errno(libc::EIO))?;
        let (resp, fd) = recv(s.as_raw_fd())
            .map_err(|_| Errno(libc::EIO))?
            .ok_or(Errno(libc::EIO))?;
        if resp.len() < 4 {
            return Err(Errno(libc::EIO));
        }
        let e = i32::from_le_bytes(resp[..4].try_into().expect("4"));
        if e != 0 {
            return Err(Errno(e));
        }
        Ok((resp[4..].to_vec(), fd))
    }

    fn fid_stat(r: &[u8]) -> Result<(Fid, Stat), Errno> {
        if r.len() < 8 {
            return Err(Errno(libc::EIO));
        }
        Ok((
            u64::from_le_bytes(r[..8].try_into().expect("8")),
            get_stat(&r[8..])?,
        ))
    }

    pub fn attach(&self) -> Result<(Fid, Stat), Errno> {
        Self::fid_stat(&self.call(OP_ATTACH, 0, &[])?.0)
    }
    pub fn walk(&self, dir: Fid, name: &[u8]) -> Result<(Fid, Stat), Errno> {
        Self::fid_stat(&self.call(OP_WALK, dir, name)?.0)
    }
    pub fn stat(&self, fid: Fid) -> Result<Stat, Errno> {
        get_stat(&self.call(OP_STAT, fid, &[])?.0)
    }
    pub fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        self.call(OP_OPEN, fid, &flags.to_le_bytes())?
            .1
            .ok_or(Errno(libc::EIO))
    }
    pub fn readdir(&self, dir: Fid) -> Result<Vec<DirEntry>, Errno> {
        let b = self.call(OP_READDIR, dir, &[])?.0;
        let mut v = vec![];
        let mut i = 0;
        while i + 11 <= b.len() {
            let ino = u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
            let kind = b[i + 8];
            let n = u16::from_le_bytes([b[i + 9], b[i + 10]]) as usize;
            let name = b.get(i + 11..i + 11 + n).ok_or(Errno(libc::EIO))?.to_vec();
            v.push(DirEntry { ino, kind, name });
            i += 11 + n;
        }
        Ok(v)
    }
    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, Errno> {
        Ok(self.call(OP_READLINK, fid, &[])?.0)
    }
    pub fn clunk(&self, fid: Fid) {
        let _ = self.call(OP_CLUNK, fid, &[]);
    }
}

//! The client the Sentry uses: one request/response at a time over the socket.

use crate::proto::{Request, Response};
use crate::{transport, DirEntry, Errno, Fid, SetAttr, Stat, StatFs};
use parking_lot::Mutex;
use std::os::fd::{AsFd, OwnedFd};

/// A connection to a gofer. Transport failures (the gofer died, a garbled reply)
/// come back as `Errno(EIO)`.
pub struct Client {
    /// The socket and the receive buffer.
    conn: Mutex<(OwnedFd, Box<[u8]>)>,
}

const EIO: Errno = Errno(libc::EIO);

impl Client {
    pub fn new(sock: OwnedFd) -> Client {
        Client {
            conn: Mutex::new((sock, transport::buffer())),
        }
    }

    fn call(&self, req: Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        let out = req.encode();
        let mut conn = self.conn.lock();
        let (sock, buf) = &mut *conn;
        transport::send(sock.as_fd(), &out, None).map_err(|_| EIO)?;
        let msg = transport::recv(sock.as_fd(), true, buf)
            .map_err(|_| EIO)?
            .ok_or(EIO)?;
        drop(conn);
        if msg.truncated {
            return Err(EIO);
        }
        match Response::decode(&msg.data).map_err(|_| EIO)? {
            Response::Error(e) => Err(e),
            r => Ok((r, msg.fd)),
        }
    }

    fn walked(&self, req: Request) -> Result<(Fid, Stat), Errno> {
        match self.call(req)?.0 {
            Response::Walked(fid, st) => Ok((fid, st)),
            _ => Err(EIO),
        }
    }

    fn ok(&self, req: Request) -> Result<(), Errno> {
        match self.call(req)?.0 {
            Response::Ok => Ok(()),
            _ => Err(EIO),
        }
    }

    fn bytes(&self, req: Request) -> Result<Vec<u8>, Errno> {
        match self.call(req)?.0 {
            Response::Bytes(b) => Ok(b),
            _ => Err(EIO),
        }
    }

    /// A new fid for the root directory.
    pub fn attach(&self) -> Result<(Fid, Stat), Errno> {
        self.walked(Request::Attach)
    }

    /// One component; the Stat is lstat-like (symlinks are not followed).
    pub fn walk(&self, dir: Fid, name: &[u8]) -> Result<(Fid, Stat), Errno> {
        self.walked(Request::Walk {
            dir,
            name: name.to_vec(),
        })
    }

    pub fn stat(&self, fid: Fid) -> Result<Stat, Errno> {
        match self.call(Request::Stat { fid })?.0 {
            Response::Stat(st) => Ok(st),
            _ => Err(EIO),
        }
    }

    /// Open the regular file or directory the fid names (O_NOFOLLOW|O_CLOEXEC forced,
    /// O_CREAT/O_EXCL dropped); the descriptor is donated.
    pub fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        match self.call(Request::Open { fid, flags })? {
            (Response::Ok, Some(fd)) => Ok(fd),
            _ => Err(EIO),
        }
    }

    /// All entries, "." and ".." included.
    pub fn readdir(&self, dir: Fid) -> Result<Vec<DirEntry>, Errno> {
        let (mut all, mut cookie) = (Vec::new(), 0);
        loop {
            match self.call(Request::Readdir { dir, cookie })?.0 {
                Response::Dirents {
                    entries,
                    next,
                    done,
                } => {
                    if !done && entries.is_empty() {
                        return Err(EIO);
                    }
                    all.extend(entries);
                    if done {
                        return Ok(all);
                    }
                    cookie = next;
                }
                _ => return Err(EIO),
            }
        }
    }

    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, Errno> {
        self.bytes(Request::Readlink { fid })
    }

    /// Create `name` (O_CREAT|O_EXCL) owned by uid:gid; the open descriptor is donated.
    pub fn create(
        &self,
        dir: Fid,
        name: &[u8],
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat, OwnedFd), Errno> {
        let name = name.to_vec();
        match self.call(Request::Create {
            dir,
            name,
            flags,
            mode,
            uid,
            gid,
        })? {
            (Response::Walked(fid, st), Some(fd)) => Ok((fid, st, fd)),
            _ => Err(EIO),
        }
    }

    pub fn mkdir(
        &self,
        dir: Fid,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        self.walked(Request::Mkdir {
            dir,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        })
    }

    pub fn symlink(
        &self,
        dir: Fid,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        let (name, target) = (name.to_vec(), target.to_vec());
        self.walked(Request::Symlink {
            dir,
            name,
            target,
            uid,
            gid,
        })
    }

    /// Fifos, sockets and regular files only (EPERM otherwise).
    pub fn mknod(
        &self,
        dir: Fid,
        name: &[u8],
        mode: u32,
        rdev: u64,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        self.walked(Request::Mknod {
            dir,
            name: name.to_vec(),
            mode,
            rdev,
            uid,
            gid,
        })
    }

    pub fn link(&self, target: Fid, dir: Fid, name: &[u8]) -> Result<(), Errno> {
        self.ok(Request::Link {
            target,
            dir,
            name: name.to_vec(),
        })
    }

    /// `flags` is 0 or AT_REMOVEDIR.
    pub fn unlink(&self, dir: Fid, name: &[u8], flags: i32) -> Result<(), Errno> {
        self.ok(Request::Unlink {
            dir,
            name: name.to_vec(),
            flags,
        })
    }

    /// `flags`: RENAME_NOREPLACE and/or RENAME_EXCHANGE.
    pub fn rename(
        &self,
        olddir: Fid,
        oldname: &[u8],
        newdir: Fid,
        newname: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        let (oldname, newname) = (oldname.to_vec(), newname.to_vec());
        self.ok(Request::Rename {
            olddir,
            oldname,
            newdir,
            newname,
            flags,
        })
    }

    pub fn setattr(&self, fid: Fid, attr: &SetAttr) -> Result<(), Errno> {
        self.ok(Request::SetAttr {
            fid,
            attr: attr.clone(),
        })
    }

    pub fn statfs(&self, fid: Fid) -> Result<StatFs, Errno> {
        match self.call(Request::StatFs { fid })?.0 {
            Response::StatFs(s) => Ok(s),
            _ => Err(EIO),
        }
    }

    /// The whole value (regular files and directories only; EOPNOTSUPP otherwise).
    pub fn getxattr(&self, fid: Fid, name: &[u8]) -> Result<Vec<u8>, Errno> {
        self.bytes(Request::GetXattr {
            fid,
            name: name.to_vec(),
        })
    }

    /// `flags`: XATTR_CREATE or XATTR_REPLACE or 0.
    pub fn setxattr(&self, fid: Fid, name: &[u8], value: &[u8], flags: i32) -> Result<(), Errno> {
        let (name, value) = (name.to_vec(), value.to_vec());
        self.ok(Request::SetXattr {
            fid,
            name,
            value,
            flags,
        })
    }

    /// The attribute names.
    pub fn listxattr(&self, fid: Fid) -> Result<Vec<Vec<u8>>, Errno> {
        let raw = self.bytes(Request::ListXattr { fid })?;
        Ok(raw
            .split(|&c| c == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }

    pub fn removexattr(&self, fid: Fid, name: &[u8]) -> Result<(), Errno> {
        self.ok(Request::RemoveXattr {
            fid,
            name: name.to_vec(),
        })
    }

    /// Release a fid (acknowledged; errors such as an unknown fid are ignored).
    pub fn clunk(&self, fid: Fid) {
        let _ = self.ok(Request::Clunk { fid });
    }
}

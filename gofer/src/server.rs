//! The server: one request at a time; each fid is an O_PATH descriptor plus the
//! parent directory and name it was reached by (to reopen it with real flags).

use crate::host::{self, Id};
use crate::proto::{Request, Response};
use crate::transport::{self, MAX_MSG};
use crate::{Errno, Fid, SetAttr};
use nix::errno::Errno as NixErrno;
use nix::fcntl::{fcntl, AtFlags, FcntlArg, OFlag, RenameFlags};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// Serve `root` (an opened directory) on `sock` until the peer closes it.
///
/// Sets the process umask to 0 so that the modes the client asks for are exact.
pub fn serve(root: OwnedFd, sock: OwnedFd, readonly: bool) -> std::io::Result<()> {
    nix::sys::stat::umask(Mode::empty());
    run(Server::new(root, readonly)?, sock)
}

pub(crate) fn run(mut srv: Server, sock: OwnedFd) -> std::io::Result<()> {
    let mut buf = transport::buffer();
    loop {
        let Some(msg) = transport::recv(sock.as_fd(), false, &mut buf)? else {
            return Ok(());
        };
        let (resp, fd) = if msg.truncated {
            (Response::Error(err(libc::EINVAL)), None)
        } else {
            srv.handle(&msg.data)
        };
        let mut out = resp.encode();
        if out.len() > MAX_MSG {
            out = Response::Error(err(libc::EIO)).encode();
        }
        match transport::send(sock.as_fd(), &out, fd.as_ref().map(|f| f.as_fd())) {
            Ok(()) => {}
            Err(NixErrno::EPIPE | NixErrno::ECONNRESET) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Directory entries per readdir reply, in encoded bytes.
const READDIR_BUDGET: usize = 60 * 1024;

fn err(e: i32) -> Errno {
    Errno(e)
}

struct Parent {
    fd: Rc<OwnedFd>,
    id: Id,
    name: CString,
}

struct Node {
    fd: Rc<OwnedFd>,
    id: Id,
    /// S_IFMT bits; a file's type never changes.
    kind: u32,
    /// None only for the root.
    parent: Option<Parent>,
}

impl Node {
    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub(crate) struct Server {
    root: OwnedFd,
    nodes: HashMap<Fid, Node>,
    next: Fid,
    readonly: bool,
    /// Use the fallbacks for kernels without fchmodat2, utimensat(AT_EMPTY_PATH) or
    /// linkat(AT_EMPTY_PATH) permission (tests set it).
    pub(crate) legacy: bool,
}

type Reply = (Response, Option<OwnedFd>);

impl Server {
    pub(crate) fn new(root: OwnedFd, readonly: bool) -> std::io::Result<Server> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let root = host::openat(root.as_raw_fd(), c".", flags, Mode::empty())
            .map_err(|e| std::io::Error::from_raw_os_error(e.0))?;
        Ok(Server {
            root,
            nodes: HashMap::new(),
            next: 0,
            readonly,
            legacy: false,
        })
    }

    /// Decode and run one request; every failure becomes an error response.
    pub(crate) fn handle(&mut self, data: &[u8]) -> Reply {
        match Request::decode(data).and_then(|req| {
            tracing::trace!(?req, "gofer");
            self.dispatch(req)
        }) {
            Ok(r) => r,
            Err(e) => (Response::Error(e), None),
        }
    }

    fn dispatch(&mut self, req: Request) -> Result<Reply, Errno> {
        use Request as Q;
        if self.readonly && req.mutates() {
            return Err(err(libc::EROFS));
        }
        let resp = match req {
            Q::Attach => {
                let fd = self
                    .root
                    .try_clone()
                    .map_err(|e| err(e.raw_os_error().unwrap_or(libc::EIO)))?;
                let st = host::fstat(fd.as_raw_fd())?;
                self.add(fd, &st, None)
            }
            Q::Walk { dir, name } => {
                let (dfd, did, name) = self.dir_name(dir, &name)?;
                let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW;
                let fd = host::openat(dfd.as_raw_fd(), &name, flags, Mode::empty())?;
                let st = host::fstat(fd.as_raw_fd())?;
                let parent = Parent {
                    fd: dfd,
                    id: did,
                    name,
                };
                self.add(fd, &st, Some(parent))
            }
            Q::Stat { fid } => Response::Stat(host::to_stat(&host::fstat(self.node(fid)?.raw())?)),
            Q::Open { fid, flags } => return Ok((Response::Ok, Some(self.open(fid, flags)?))),
            Q::Readdir { dir, cookie } => self.readdir(dir, cookie)?,
            Q::Readlink { fid } => {
                let n = self.node(fid)?;
                if n.kind != libc::S_IFLNK {
                    return Err(err(libc::EINVAL));
                }
                let target = nix::fcntl::readlinkat(Some(n.raw()), c"")?;
                Response::Bytes(std::os::unix::ffi::OsStringExt::into_vec(target))
            }
            Q::Create {
                dir,
                name,
                flags,
                mode,
                uid,
                gid,
            } => return self.create(dir, &name, flags, mode, uid, gid),
            Q::Mkdir {
                dir,
                name,
                mode,
                uid,
                gid,
            } => {
                let (dfd, did, name) = self.dir_name(dir, &name)?;
                nix::sys::stat::mkdirat(Some(dfd.as_raw_fd()), name.as_c_str(), perm(mode))?;
                self.finish_new(dfd, did, name, uid, gid, None, None)?
            }
            Q::Symlink {
                dir,
                name,
                target,
                uid,
                gid,
            } => {
                if target.is_empty() {
                    return Err(err(libc::ENOENT));
                }
                if target.len() >= libc::PATH_MAX as usize {
                    return Err(err(libc::ENAMETOOLONG));
                }
                let target = CString::new(target).map_err(|_| err(libc::EINVAL))?;
                let (dfd, did, name) = self.dir_name(dir, &name)?;
                nix::unistd::symlinkat(target.as_c_str(), Some(dfd.as_raw_fd()), name.as_c_str())?;
                self.finish_new(dfd, did, name, uid, gid, None, None)?
            }
            Q::Mknod {
                dir,
                name,
                mode,
                rdev: _,
                uid,
                gid,
            } => {
                // Devices are the Sentry's business; only fifos, sockets, regular files.
                let kind = match mode & libc::S_IFMT {
                    0 | libc::S_IFREG => SFlag::S_IFREG,
                    libc::S_IFIFO => SFlag::S_IFIFO,
                    libc::S_IFSOCK => SFlag::S_IFSOCK,
                    _ => return Err(err(libc::EPERM)),
                };
                let (dfd, did, name) = self.dir_name(dir, &name)?;
                let d = dfd.as_raw_fd();
                nix::sys::stat::mknodat(Some(d), name.as_c_str(), kind, perm(mode), 0)?;
                self.finish_new(dfd, did, name, uid, gid, setid(mode), None)?
            }
            Q::Link { target, dir, name } => {
                self.link(target, dir, &name)?;
                Response::Ok
            }
            Q::Unlink { dir, name, flags } => {
                let flags = match flags {
                    0 => UnlinkatFlags::NoRemoveDir,
                    libc::AT_REMOVEDIR => UnlinkatFlags::RemoveDir,
                    _ => return Err(err(libc::EINVAL)),
                };
                let (dfd, _, name) = self.dir_name(dir, &name)?;
                nix::unistd::unlinkat(Some(dfd.as_raw_fd()), name.as_c_str(), flags)?;
                Response::Ok
            }
            Q::Rename {
                olddir,
                oldname,
                newdir,
                newname,
                flags,
            } => {
                self.rename(olddir, &oldname, newdir, &newname, flags)?;
                Response::Ok
            }
            Q::SetAttr { fid, attr } => {
                self.setattr(fid, &attr)?;
                Response::Ok
            }
            Q::StatFs { fid } => Response::StatFs(host::fstatfs(self.node(fid)?.raw())?),
            Q::GetXattr { fid, name } => {
                let name = xattr_name(&name)?;
                Response::Bytes(host::getxattr(self.xattr_fd(fid)?.as_raw_fd(), &name)?)
            }
            Q::ListXattr { fid } => {
                Response::Bytes(host::listxattr(self.xattr_fd(fid)?.as_raw_fd())?)
            }
            Q::SetXattr {
                fid,
                name,
                value,
                flags,
            } => {
                let name = xattr_name(&name)?;
                if value.len() > host::XATTR_MAX {
                    return Err(err(libc::E2BIG));
                }
                if flags & !(libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
                    return Err(err(libc::EINVAL));
                }
                host::setxattr(self.xattr_fd(fid)?.as_raw_fd(), &name, &value, flags)?;
                Response::Ok
            }
            Q::RemoveXattr { fid, name } => {
                let name = xattr_name(&name)?;
                host::removexattr(self.xattr_fd(fid)?.as_raw_fd(), &name)?;
                Response::Ok
            }
            Q::Clunk { fid } => {
                self.nodes.remove(&fid).ok_or(err(libc::EBADF))?;
                Response::Ok
            }
        };
        Ok((resp, None))
    }

    fn node(&self, fid: Fid) -> Result<&Node, Errno> {
        self.nodes.get(&fid).ok_or(err(libc::EBADF))
    }

    /// The directory fid's descriptor and id, and `name` checked as one component.
    fn dir_name(&self, dir: Fid, name: &[u8]) -> Result<(Rc<OwnedFd>, Id, CString), Errno> {
        let d = self.node(dir)?;
        Ok((d.fd.clone(), d.id, component(name)?))
    }

    fn add(&mut self, fd: OwnedFd, st: &FileStat, parent: Option<Parent>) -> Response {
        self.next += 1;
        let node = Node {
            fd: Rc::new(fd),
            id: host::id(st),
            kind: st.st_mode & libc::S_IFMT,
            parent,
        };
        self.nodes.insert(self.next, node);
        Response::Walked(self.next, host::to_stat(st))
    }

    fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        let flags = OFlag::from_bits_truncate(flags) & open_mask();
        let write = flags & OFlag::O_ACCMODE != OFlag::O_RDONLY;
        if self.readonly && (write || flags.contains(OFlag::O_TRUNC)) {
            return Err(err(libc::EROFS));
        }
        let n = self.node(fid)?;
        match n.kind {
            libc::S_IFREG | libc::S_IFDIR => self.reopen(n, flags),
            libc::S_IFLNK => Err(err(libc::ELOOP)),
            // Host fifos, sockets and devices could block or have side effects; the
            // Sentry emulates those itself.
            _ => Err(err(libc::EPERM)),
        }
    }

    /// Open the regular file or directory `n` names with real `flags`: directories
    /// through ".", files through their parent, checked to still be the same file.
    fn reopen(&self, n: &Node, flags: OFlag) -> Result<OwnedFd, Errno> {
        let base = flags | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY;
        if n.kind == libc::S_IFDIR {
            return host::openat(n.raw(), c".", base, Mode::empty());
        }
        if n.kind != libc::S_IFREG {
            return Err(err(libc::EPERM));
        }
        let p = n.parent.as_ref().ok_or(err(libc::EPERM))?;
        check_name(p, n.id)?;
        // O_NONBLOCK so a file swapped for a fifo cannot hang us; truncate only once
        // the file is known to be the right one.
        let trunc = flags.contains(OFlag::O_TRUNC) && flags & OFlag::O_ACCMODE != OFlag::O_RDONLY;
        let mut f = base | OFlag::O_NONBLOCK;
        if trunc {
            f.remove(OFlag::O_TRUNC);
        }
        let fd = host::openat(p.fd.as_raw_fd(), &p.name, f, Mode::empty())?;
        if host::id(&nix::sys::stat::fstat(fd.as_raw_fd())?) != n.id {
            return Err(err(libc::ESTALE));
        }
        if !flags.contains(OFlag::O_NONBLOCK) {
            let fl = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
            fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl - OFlag::O_NONBLOCK))?;
        }
        if trunc {
            nix::unistd::ftruncate(&fd, 0)?;
        }
        Ok(fd)
    }

    fn readdir(&self, dir: Fid, cookie: u64) -> Result<Response, Errno> {
        let n = self.node(dir)?;
        if n.kind != libc::S_IFDIR {
            return Err(err(libc::ENOTDIR));
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        let d = host::openat(n.raw(), c".", flags, Mode::empty())?;
        let (entries, next, done) = host::read_dir(d.as_raw_fd(), cookie, READDIR_BUDGET)?;
        Ok(Response::Dirents {
            entries,
            next,
            done,
        })
    }

    fn create(
        &mut self,
        dir: Fid,
        name: &[u8],
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Reply, Errno> {
        let (dfd, did, name) = self.dir_name(dir, name)?;
        let f = ((OFlag::from_bits_truncate(flags) & open_mask()) - OFlag::O_DIRECTORY)
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY;
        let file = host::openat(dfd.as_raw_fd(), &name, f, perm(mode))?;
        let id = host::id(&nix::sys::stat::fstat(file.as_raw_fd())?);
        let resp = self.finish_new(dfd, did, name, uid, gid, setid(mode), Some(id))?;
        Ok((resp, Some(file)))
    }

    /// After creating `name` in the directory: open it O_PATH, give it its owner (and
    /// back the set-id bits chown cleared), and make a fid. On failure the new file
    /// is removed again.
    #[allow(clippy::too_many_arguments)]
    fn finish_new(
        &mut self,
        dfd: Rc<OwnedFd>,
        did: Id,
        name: CString,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
        expect: Option<Id>,
    ) -> Result<Response, Errno> {
        let d = dfd.as_raw_fd();
        let legacy = self.legacy;
        let made = (|| -> Result<(OwnedFd, FileStat), Errno> {
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW;
            let fd = host::openat(d, &name, flags, Mode::empty())?;
            let st = host::fstat(fd.as_raw_fd())?;
            if expect.is_some_and(|id| id != host::id(&st)) {
                return Err(err(libc::ESTALE));
            }
            let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
            let at = AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW;
            nix::unistd::fchownat(Some(fd.as_raw_fd()), c"", u, g, at)?;
            if let Some(m) = mode {
                let kind = st.st_mode & libc::S_IFMT;
                chmod(
                    fd.as_raw_fd(),
                    kind,
                    m,
                    Some((d, &name, host::id(&st))),
                    legacy,
                )?;
            }
            let st = host::fstat(fd.as_raw_fd())?;
            Ok((fd, st))
        })();
        match made {
            Ok((fd, st)) => Ok(self.add(
                fd,
                &st,
                Some(Parent {
                    fd: dfd,
                    id: did,
                    name,
                }),
            )),
            Err(e) => {
                if e.0 != libc::ESTALE {
                    let _ =
                        nix::unistd::unlinkat(Some(d), name.as_c_str(), UnlinkatFlags::NoRemoveDir)
                            .or_else(|_| {
                                nix::unistd::unlinkat(
                                    Some(d),
                                    name.as_c_str(),
                                    UnlinkatFlags::RemoveDir,
                                )
                            });
                }
                Err(e)
            }
        }
    }

    fn link(&self, target: Fid, dir: Fid, name: &[u8]) -> Result<(), Errno> {
        let (dfd, _, name) = self.dir_name(dir, name)?;
        let t = self.node(target)?;
        if t.kind == libc::S_IFDIR {
            return Err(err(libc::EPERM));
        }
        let d = Some(dfd.as_raw_fd());
        if !self.legacy {
            // Needs CAP_DAC_READ_SEARCH before Linux 6.10 (ENOENT without it).
            match nix::unistd::linkat(
                Some(t.raw()),
                c"",
                d,
                name.as_c_str(),
                AtFlags::AT_EMPTY_PATH,
            ) {
                Err(NixErrno::ENOENT) => {}
                r => return Ok(r?),
            }
        }
        let p = t.parent.as_ref().ok_or(err(libc::ENOENT))?;
        check_name(p, t.id)?;
        Ok(nix::unistd::linkat(
            Some(p.fd.as_raw_fd()),
            p.name.as_c_str(),
            d,
            name.as_c_str(),
            AtFlags::empty(),
        )?)
    }

    fn rename(
        &mut self,
        olddir: Fid,
        oldname: &[u8],
        newdir: Fid,
        newname: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        let flags = RenameFlags::from_bits(flags)
            .filter(|f| !f.contains(RenameFlags::RENAME_WHITEOUT))
            .ok_or(err(libc::EINVAL))?;
        let (ofd, oid, oname) = self.dir_name(olddir, oldname)?;
        let (nfd, nid, nname) = self.dir_name(newdir, newname)?;
        nix::fcntl::renameat2(
            Some(ofd.as_raw_fd()),
            oname.as_c_str(),
            Some(nfd.as_raw_fd()),
            nname.as_c_str(),
            flags,
        )?;
        // Fids reached by the old name now live under the new one (and back, for
        // an exchange), so that reopening them still works.
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        for p in self.nodes.values_mut().filter_map(|n| n.parent.as_mut()) {
            if p.id == oid && p.name == oname {
                *p = Parent {
                    fd: nfd.clone(),
                    id: nid,
                    name: nname.clone(),
                };
            } else if exchange && p.id == nid && p.name == nname {
                *p = Parent {
                    fd: ofd.clone(),
                    id: oid,
                    name: oname.clone(),
                };
            }
        }
        Ok(())
    }

    /// Owner first (chown clears set-id bits), then mode, size, times.
    fn setattr(&self, fid: Fid, a: &SetAttr) -> Result<(), Errno> {
        let n = self.node(fid)?;
        if a.uid.is_some() || a.gid.is_some() {
            let at = AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW;
            let (u, g) = (a.uid.map(Uid::from_raw), a.gid.map(Gid::from_raw));
            nix::unistd::fchownat(Some(n.raw()), c"", u, g, at)?;
        }
        if let Some(mode) = a.mode {
            let at = n
                .parent
                .as_ref()
                .map(|p| (p.fd.as_raw_fd(), p.name.as_c_str(), n.id));
            chmod(n.raw(), n.kind, mode, at, self.legacy)?;
        }
        if let Some(size) = a.size {
            let size = i64::try_from(size).map_err(|_| err(libc::EINVAL))?;
            match n.kind {
                libc::S_IFREG => nix::unistd::ftruncate(self.reopen(n, OFlag::O_WRONLY)?, size)?,
                libc::S_IFDIR => return Err(err(libc::EISDIR)),
                _ => return Err(err(libc::EINVAL)),
            }
        }
        if a.atime.is_some() || a.mtime.is_some() {
            if !self.legacy {
                match host::utimens(n.raw(), c"", a.atime, a.mtime) {
                    // Before Linux 5.8 utimensat has no AT_EMPTY_PATH.
                    Err(Errno(libc::EINVAL)) => {}
                    r => return r,
                }
            }
            match (&n.parent, n.kind) {
                (_, libc::S_IFDIR) | (None, _) => host::utimens(n.raw(), c".", a.atime, a.mtime)?,
                (Some(p), _) => {
                    check_name(p, n.id)?;
                    host::utimens(p.fd.as_raw_fd(), &p.name, a.atime, a.mtime)?
                }
            }
        }
        Ok(())
    }

    /// A real descriptor for the xattr calls (they refuse O_PATH ones).
    fn xattr_fd(&self, fid: Fid) -> Result<OwnedFd, Errno> {
        let n = self.node(fid)?;
        match n.kind {
            libc::S_IFREG | libc::S_IFDIR => self.reopen(n, OFlag::O_RDONLY | OFlag::O_NONBLOCK),
            _ => Err(err(libc::EOPNOTSUPP)),
        }
    }
}

/// chmod the non-symlink an O_PATH descriptor names. Without fchmodat2 (before Linux
/// 6.6): directories through ".", others through `at` = (parent, name, expected id).
fn chmod(
    fd: RawFd,
    kind: u32,
    mode: u32,
    at: Option<(RawFd, &CStr, Id)>,
    legacy: bool,
) -> Result<(), Errno> {
    if kind == libc::S_IFLNK {
        return Err(err(libc::EOPNOTSUPP));
    }
    if !legacy {
        match host::fchmod_path(fd, mode) {
            Err(Errno(libc::ENOSYS)) => {}
            r => return r,
        }
    }
    if kind == libc::S_IFDIR {
        let d = host::openat(
            fd,
            c".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        return Ok(nix::sys::stat::fchmod(d.as_raw_fd(), perm(mode))?);
    }
    let (dir, name, id) = at.ok_or(err(libc::EPERM))?;
    if host::id(&host::lstatat(dir, name)?) != id {
        return Err(err(libc::ESTALE));
    }
    Ok(nix::sys::stat::fchmodat(
        Some(dir),
        name,
        perm(mode),
        FchmodatFlags::FollowSymlink,
    )?)
}

/// Check that `p.name` in `p` still names the file `id` (it may have been renamed or
/// replaced behind our back).
fn check_name(p: &Parent, id: Id) -> Result<(), Errno> {
    if host::id(&host::lstatat(p.fd.as_raw_fd(), &p.name)?) != id {
        return Err(err(libc::ESTALE));
    }
    Ok(())
}

/// One path component: not empty, ".", ".." nor containing '/' or NUL.
fn component(name: &[u8]) -> Result<CString, Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(err(libc::EINVAL));
    }
    if name.len() > 255 {
        return Err(err(libc::ENAMETOOLONG));
    }
    CString::new(name).map_err(|_| err(libc::EINVAL))
}

fn xattr_name(name: &[u8]) -> Result<CString, Errno> {
    if name.is_empty() || name.len() > 255 {
        return Err(err(libc::ERANGE));
    }
    CString::new(name).map_err(|_| err(libc::EINVAL))
}

/// The open flags a client may pass; the rest (O_CREAT, O_EXCL, O_PATH, O_TMPFILE,
/// O_ASYNC, ...) are dropped.
fn open_mask() -> OFlag {
    OFlag::O_ACCMODE
        | OFlag::O_APPEND
        | OFlag::O_TRUNC
        | OFlag::O_DIRECTORY
        | OFlag::O_NONBLOCK
        | OFlag::O_DSYNC
        | OFlag::O_SYNC
        | OFlag::O_DIRECT
        | OFlag::O_LARGEFILE
        | OFlag::O_NOATIME
}

fn perm(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode & 0o7777)
}

/// The mode to set again after chown when it has set-id bits.
fn setid(mode: u32) -> Option<u32> {
    (mode & 0o6000 != 0).then_some(mode & 0o7777)
}

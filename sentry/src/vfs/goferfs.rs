//! A file system served by a gofer with every change written through to the host
//! (bind mounts: a file written in the container appears in the host directory).
//! Each inode is a gofer fid; file data moves through the host descriptor the gofer
//! donates on open (pread/pwrite); metadata is asked of the gofer each time, so changes
//! made on the host side show too. mmap reads pages into a per-inode cache that every
//! write through the sandbox drops (so exec and private mappings work; a shared
//! writable mapping's stores do not reach the host file).

use super::*;
use crate::memfile::{memfile, Frame, PAGE};
use gofer::{Client, Fid};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

pub struct GoferFs {
    client: Arc<Client>,
    dev: u64,
}

pub struct GNode {
    fs: Arc<GoferFs>,
    fid: Fid,
    /// The last stat the gofer gave (the file type never changes).
    st: Mutex<gofer::Stat>,
    /// Children already walked to: the same name gives the same inode (mount points
    /// and hard-link identity depend on it).
    children: Mutex<HashMap<Vec<u8>, Arc<GNode>>>,
    /// Pages for mmap, by index.
    pages: Mutex<HashMap<u64, Frame>>,
}

fn errno(e: gofer::Errno) -> Errno {
    Errno(e.0)
}

/// The root of the directory the gofer on `client` serves.
impl GNode {
    /// The statfs of the host file system the node is on.
    pub fn host_statfs(&self) -> Option<gofer::StatFs> {
        self.fs.client.statfs(self.fid).ok()
    }
}

pub fn root(client: Arc<Client>, dev: u64) -> KResult<Arc<GNode>> {
    let (fid, st) = client.attach().map_err(errno)?;
    let fs = Arc::new(GoferFs { client, dev });
    Ok(GNode::new(&fs, fid, st))
}

impl GNode {
    fn new(fs: &Arc<GoferFs>, fid: Fid, st: gofer::Stat) -> Arc<GNode> {
        Arc::new(GNode {
            fs: fs.clone(),
            fid,
            st: Mutex::new(st),
            children: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
        })
    }

    fn g(&self) -> &Client {
        &self.fs.client
    }

    fn is_dir(&self) -> bool {
        self.st.lock().mode & S_IFMT == S_IFDIR
    }

    fn child(&self, name: &[u8], fid: Fid, st: gofer::Stat) -> Arc<GNode> {
        let n = GNode::new(&self.fs, fid, st);
        if let Some(old) = self.children.lock().insert(name.to_vec(), n.clone()) {
            if old.fid != fid {
                self.g().clunk(old.fid);
            }
        }
        n
    }

    fn forget(&self, name: &[u8]) {
        self.children.lock().remove(name);
    }
}

impl Drop for GNode {
    fn drop(&mut self) {
        self.fs.client.clunk(self.fid);
    }
}

fn conv(dev: u64, s: &gofer::Stat) -> Stat {
    Stat {
        dev,
        ino: s.ino,
        mode: s.mode,
        nlink: s.nlink,
        uid: s.uid,
        gid: s.gid,
        rdev: s.rdev,
        size: s.size.max(0) as u64,
        blksize: s.blksize.max(512) as u64,
        blocks: s.blocks.max(0) as u64,
        atime: s.atime,
        mtime: s.mtime,
        ctime: s.ctime,
    }
}

impl Inode for GNode {
    fn stat(&self) -> Stat {
        if let Ok(s) = self.g().stat(self.fid) {
            *self.st.lock() = s;
        }
        conv(self.fs.dev, &self.st.lock())
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        if !self.is_dir() {
            return Err(ENOTDIR);
        }
        if name == b"." || name == b".." || name.is_empty() {
            return Err(EINVAL);
        }
        let cached = self.children.lock().get(name).cloned();
        match self.g().walk(self.fid, name) {
            Ok((fid, st)) => {
                if let Some(c) = cached {
                    let same = c.st.lock().ino == st.ino;
                    if same {
                        self.g().clunk(fid);
                        *c.st.lock() = st;
                        return Ok(c);
                    }
                }
                Ok(self.child(name, fid, st))
            }
            Err(e) => {
                self.forget(name);
                Err(errno(e))
            }
        }
    }

    fn readdir(&self) -> KResult<Vec<DirEnt>> {
        let v = self.g().readdir(self.fid).map_err(errno)?;
        Ok(v.into_iter()
            .map(|e| DirEnt {
                ino: e.ino,
                kind: e.kind,
                name: e.name,
            })
            .collect())
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        self.g().readlink(self.fid).map_err(errno)
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let mode = self.st.lock().mode & S_IFMT;
        match mode {
            S_IFDIR => Ok(Arc::new(DirFile {
                inode: self.clone(),
            })),
            S_IFREG => {
                let host = (flags & O_ACCMODE) | (flags & O_TRUNC);
                let fd = self.g().open(self.fid, host as i32).map_err(errno)?;
                if flags & O_TRUNC != 0 {
                    self.pages.lock().clear();
                }
                Ok(Arc::new(GFile {
                    fd: Arc::new(fd),
                    node: self,
                }))
            }
            // FIFOs, sockets and devices on a bind mount are not reachable from the
            // sandbox: the Sentry has no host path to them.
            _ => Err(ENXIO),
        }
    }

    fn create(&self, name: &[u8], mode: u32, c: &Creds) -> KResult<Arc<dyn Inode>> {
        let (fid, st, _fd) = self
            .g()
            .create(
                self.fid,
                name,
                libc::O_RDWR,
                mode & 0o7777,
                c.fsuid,
                c.fsgid,
            )
            .map_err(errno)?;
        Ok(self.child(name, fid, st))
    }

    fn mknod(&self, name: &[u8], mode: u32, rdev: u64, c: &Creds) -> KResult<Arc<dyn Inode>> {
        let (fid, st) = self
            .g()
            .mknod(self.fid, name, mode, rdev, c.fsuid, c.fsgid)
            .map_err(errno)?;
        Ok(self.child(name, fid, st))
    }

    fn mkdir(&self, name: &[u8], mode: u32, c: &Creds) -> KResult<Arc<dyn Inode>> {
        let (fid, st) = self
            .g()
            .mkdir(self.fid, name, mode & 0o7777, c.fsuid, c.fsgid)
            .map_err(errno)?;
        Ok(self.child(name, fid, st))
    }

    fn symlink(&self, name: &[u8], target: &[u8], c: &Creds) -> KResult<Arc<dyn Inode>> {
        let (fid, st) = self
            .g()
            .symlink(self.fid, name, target, c.fsuid, c.fsgid)
            .map_err(errno)?;
        Ok(self.child(name, fid, st))
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> KResult<()> {
        let Some(t) = target.as_any().downcast_ref::<GNode>() else {
            return Err(EXDEV);
        };
        if !Arc::ptr_eq(&t.fs, &self.fs) {
            return Err(EXDEV);
        }
        self.g().link(t.fid, self.fid, name).map_err(errno)
    }

    fn unlink(&self, name: &[u8], dir: bool) -> KResult<()> {
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        self.g().unlink(self.fid, name, flags).map_err(errno)?;
        self.forget(name);
        Ok(())
    }

    fn rename(&self, old: &[u8], newdir: &Arc<dyn Inode>, new: &[u8], flags: u32) -> KResult<()> {
        let Some(nd) = newdir.as_any().downcast_ref::<GNode>() else {
            return Err(EXDEV);
        };
        if !Arc::ptr_eq(&nd.fs, &self.fs) {
            return Err(EXDEV);
        }
        self.g()
            .rename(self.fid, old, nd.fid, new, flags)
            .map_err(errno)?;
        self.forget(old);
        nd.forget(new);
        Ok(())
    }

    fn setattr(&self, a: &SetAttr) -> KResult<()> {
        let ga = gofer::SetAttr {
            mode: a.mode.map(|m| m & 0o7777),
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            atime: a.atime,
            mtime: a.mtime,
        };
        self.g().setattr(self.fid, &ga).map_err(errno)
    }

    fn getxattr(&self, name: &[u8]) -> KResult<Vec<u8>> {
        self.g().getxattr(self.fid, name).map_err(errno)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> KResult<()> {
        self.g()
            .setxattr(self.fid, name, value, flags as i32)
            .map_err(errno)
    }

    fn listxattr(&self) -> KResult<Vec<Vec<u8>>> {
        self.g().listxattr(self.fid).map_err(errno)
    }

    fn removexattr(&self, name: &[u8]) -> KResult<()> {
        self.g().removexattr(self.fid, name).map_err(errno)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open regular file: the host descriptor the gofer donated.
pub struct GFile {
    fd: Arc<OwnedFd>,
    node: Arc<GNode>,
}

/// What mmap of a bind-mounted file maps: its pages, read from the host on first use.
struct GMap {
    fd: Arc<OwnedFd>,
    node: Arc<GNode>,
}

fn host_size(fd: &OwnedFd) -> u64 {
    // SAFETY: fstat fills a plain struct for a descriptor we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return 0;
    }
    st.st_size as u64
}

impl crate::mm::MapSource for GMap {
    fn cached(&self, index: u64) -> bool {
        self.node.pages.lock().contains_key(&index)
    }
    /// A page of the host file is one pread away: cheaper than a fault round trip.
    fn fault_around(&self, index: u64) -> bool {
        self.cached(index) || index * PAGE < host_size(&self.fd)
    }
    fn page(&self, index: u64) -> KResult<Option<Frame>> {
        let size = host_size(&self.fd);
        let off = index * PAGE;
        if off >= size {
            return Ok(None);
        }
        let mut pages = self.node.pages.lock();
        if let Some(f) = pages.get(&index) {
            return Ok(Some(f.clone()));
        }
        let f = memfile().alloc()?;
        let n = ((size - off) as usize).min(PAGE as usize);
        let buf = &mut f.bytes_mut()[..n];
        let mut done = 0;
        while done < n {
            // SAFETY: pread into the frame's bytes, within their length.
            let r = unsafe {
                libc::pread64(
                    self.fd.as_raw_fd(),
                    buf[done..].as_mut_ptr().cast(),
                    n - done,
                    (off + done as u64) as i64,
                )
            };
            if r < 0 {
                return Err(last_errno());
            }
            if r == 0 {
                break;
            }
            done += r as usize;
        }
        pages.insert(index, f.clone());
        Ok(Some(f))
    }
}

fn last_errno() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

impl FileOps for GFile {
    fn read(&self, _f: &OpenFile, _t: &Task, buf: &mut [u8], off: u64) -> KResult<usize> {
        // SAFETY: pread into a buffer we own, of its length.
        let n = unsafe {
            libc::pread64(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                off as i64,
            )
        };
        if n < 0 {
            return Err(last_errno());
        }
        Ok(n as usize)
    }

    fn write(&self, _f: &OpenFile, _t: &Task, buf: &[u8], off: u64) -> KResult<usize> {
        self.node.pages.lock().clear();
        // SAFETY: pwrite from a buffer we own, of its length.
        let n = unsafe {
            libc::pwrite64(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                off as i64,
            )
        };
        if n < 0 {
            return Err(last_errno());
        }
        Ok(n as usize)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn mmap_source(&self) -> Option<Arc<dyn crate::mm::MapSource>> {
        Some(Arc::new(GMap {
            fd: self.fd.clone(),
            node: self.node.clone(),
        }))
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        self.node.pages.lock().clear();
        self.node.setattr(&SetAttr {
            size: Some(len),
            ..Default::default()
        })
    }

    fn size(&self) -> u64 {
        host_size(&self.fd)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

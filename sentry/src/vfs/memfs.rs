//! An in-memory file system, optionally layered over a read-only lower tree served by
//! the gofer. With no lower tree it is tmpfs. With one it is the overlay `rvisor do` and
//! read-only roots use: directories are listed from the gofer on first use, files read
//! from the donated host fd until written, and every change stays in memory. File data
//! lives in frames of the memory file, which are also the page cache for mmap.

use super::*;
use crate::memfile::{memfile, Frame, PAGE};
use gofer::Client;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::Weak;

pub struct MemFs {
    pub dev: u64,
    gofer: Option<Arc<Client>>,
    next_ino: AtomicU64,
    /// What this file system's files hold (statfs), against its limits.
    space: Arc<Space>,
    /// The lower tree's root (statfs asks the host about its file system).
    lower_root: std::sync::OnceLock<u64>,
}

/// Pages and inodes a file system holds, and its limits (tmpfs `size=` and
/// `nr_inodes=`; 0: none).
#[derive(Default)]
pub struct Space {
    pub pages: AtomicU64,
    pub max_pages: AtomicU64,
    pub inodes: AtomicU64,
    pub max_inodes: AtomicU64,
}

impl Space {
    /// Count one more page, or ENOSPC past the limit.
    fn take_page(&self) -> KResult<()> {
        let max = self.max_pages.load(Ordering::Relaxed);
        let prev = self.pages.fetch_add(1, Ordering::Relaxed);
        if max != 0 && prev >= max {
            self.pages.fetch_sub(1, Ordering::Relaxed);
            return Err(ENOSPC);
        }
        Ok(())
    }

    /// ENOSPC when no inode is left.
    fn check_inode(&self) -> KResult<()> {
        let max = self.max_inodes.load(Ordering::Relaxed);
        if max != 0 && self.inodes.load(Ordering::Relaxed) >= max {
            return Err(ENOSPC);
        }
        Ok(())
    }
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    rdev: u64,
    atime: (i64, i64),
    mtime: (i64, i64),
    ctime: (i64, i64),
    blocks: u64,
    /// A lower directory's own size (what the host reports).
    dir_size: u64,
}

pub struct Node {
    fs: Arc<MemFs>,
    ino: u64,
    meta: Mutex<Meta>,
    /// Extended attributes; None until read from the lower file (if any).
    xattrs: Mutex<Option<BTreeMap<Vec<u8>, Vec<u8>>>>,
    kind: Kind,
    me: Weak<Node>,
}

enum Kind {
    Dir(Mutex<Dir>),
    File(Arc<FileData>),
    Symlink(Mutex<Sym>),
    Fifo(Arc<super::pipe::Pipe>),
    Special,
}

struct Dir {
    children: indexmap::IndexMap<Vec<u8>, Entry>,
    loaded: bool,
    lower: Option<u64>,
    parent: Weak<Node>,
}

#[derive(Clone)]
enum Entry {
    Node(Arc<Node>),
    Lower { ino: u64, kind: u8 },
}

struct Sym {
    target: Option<Vec<u8>>,
    lower: Option<u64>,
}

/// A regular file's contents: cached frames over an optional lower host file.
pub struct FileData {
    inner: Mutex<FileInner>,
    gofer: Option<Arc<Client>>,
    /// The owning file system's page count, kept up to date as pages come and go.
    acct: Option<Arc<Space>>,
    /// memfd seals (F_SEAL_*). Files that cannot be sealed carry F_SEAL_SEAL.
    pub seals: std::sync::atomic::AtomicU32,
}

pub const F_SEAL_SEAL: u32 = 1;
pub const F_SEAL_SHRINK: u32 = 2;
pub const F_SEAL_GROW: u32 = 4;
pub const F_SEAL_WRITE: u32 = 8;
pub const F_SEAL_FUTURE_WRITE: u32 = 16;

struct FileInner {
    pages: BTreeMap<u64, Frame>,
    size: u64,
    lower: Option<LowerFile>,
}

struct LowerFile {
    fid: u64,
    fd: Option<Arc<OwnedFd>>,
    /// Bytes below this offset not in `pages` come from the lower file.
    valid: u64,
}

fn pread(fd: &OwnedFd, buf: &mut [u8], off: u64) -> KResult<usize> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reading into a valid buffer from a descriptor we own.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[done..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - done,
                (off + done as u64) as i64,
            )
        };
        if n < 0 {
            let e = last();
            if e == EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

impl FileData {
    fn new(
        size: u64,
        lower: Option<u64>,
        gofer: Option<Arc<Client>>,
        acct: Option<Arc<Space>>,
    ) -> Arc<FileData> {
        Arc::new(FileData {
            acct,
            inner: Mutex::new(FileInner {
                pages: BTreeMap::new(),
                size,
                lower: lower.map(|fid| LowerFile {
                    fid,
                    fd: None,
                    valid: size,
                }),
            }),
            gofer,
            seals: std::sync::atomic::AtomicU32::new(F_SEAL_SEAL),
        })
    }

    fn lower_fd(&self, inner: &mut FileInner) -> KResult<Option<Arc<OwnedFd>>> {
        let Some(l) = inner.lower.as_mut() else {
            return Ok(None);
        };
        if l.fd.is_none() {
            let g = self.gofer.as_ref().ok_or(EIO)?;
            l.fd = Some(Arc::new(g.open(l.fid, libc::O_RDONLY)?));
        }
        Ok(l.fd.clone())
    }

    /// The cached frame of page `idx`, loading it if needed.
    fn frame(&self, inner: &mut FileInner, idx: u64) -> KResult<Frame> {
        if let Some(f) = inner.pages.get(&idx) {
            return Ok(f.clone());
        }
        if let Some(a) = &self.acct {
            a.take_page()?;
        }
        let f = match memfile().alloc() {
            Ok(f) => f,
            Err(e) => {
                if let Some(a) = &self.acct {
                    a.pages.fetch_sub(1, Ordering::Relaxed);
                }
                return Err(e);
            }
        };
        let off = idx * PAGE;
        let valid = inner.lower.as_ref().map(|l| l.valid).unwrap_or(0);
        if off < valid {
            if let Some(fd) = self.lower_fd(inner)? {
                let n = ((valid - off) as usize).min(PAGE as usize);
                pread(&fd, &mut f.bytes_mut()[..n], off)?;
            }
        }
        inner.pages.insert(idx, f.clone());
        Ok(f)
    }

    /// Drop the cached pages `range` (page indices).
    fn drop_pages(&self, inner: &mut FileInner, range: std::ops::Range<u64>) {
        let keys: Vec<u64> = inner.pages.range(range).map(|(k, _)| *k).collect();
        self.remove_pages(inner, &keys);
    }

    fn remove_pages(&self, inner: &mut FileInner, keys: &[u64]) {
        for k in keys {
            inner.pages.remove(k);
        }
        if let Some(a) = &self.acct {
            a.pages.fetch_sub(keys.len() as u64, Ordering::Relaxed);
        }
    }

    pub fn size(&self) -> u64 {
        self.inner.lock().size
    }

    pub fn read(&self, buf: &mut [u8], off: u64) -> KResult<usize> {
        let mut inner = self.inner.lock();
        if off >= inner.size {
            return Ok(0);
        }
        let n = buf.len().min((inner.size - off) as usize);
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let idx = pos / PAGE;
            let po = (pos % PAGE) as usize;
            let len = (PAGE as usize - po).min(n - done);
            if let Some(f) = inner.pages.get(&idx) {
                buf[done..done + len].copy_from_slice(&f.bytes()[po..po + len]);
            } else {
                let valid = inner.lower.as_ref().map(|l| l.valid).unwrap_or(0);
                let dst = &mut buf[done..done + len];
                dst.fill(0);
                if pos < valid {
                    if let Some(fd) = self.lower_fd(&mut inner)? {
                        let m = ((valid - pos) as usize).min(len);
                        pread(&fd, &mut dst[..m], pos)?;
                    }
                }
            }
            done += len;
        }
        Ok(n)
    }

    pub fn write(&self, buf: &[u8], off: u64) -> KResult<usize> {
        let mut inner = self.inner.lock();
        let end = off.checked_add(buf.len() as u64).ok_or(EFBIG)?;
        let seals = self.seals.load(Ordering::Acquire);
        if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0
            || (seals & F_SEAL_GROW != 0 && end > inner.size)
        {
            return Err(EPERM);
        }
        if end > (1 << 44) {
            return Err(EFBIG);
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = off + done as u64;
            let idx = pos / PAGE;
            let po = (pos % PAGE) as usize;
            let len = (PAGE as usize - po).min(buf.len() - done);
            let f = match self.frame(&mut inner, idx) {
                Ok(f) => f,
                // Out of space part way: a short write (what fit stays).
                Err(_) if done > 0 => break,
                Err(e) => return Err(e),
            };
            f.bytes_mut()[po..po + len].copy_from_slice(&buf[done..done + len]);
            done += len;
        }
        let end = off + done as u64;
        if end > inner.size {
            inner.size = end;
        }
        Ok(done)
    }

    /// Make [offset, offset+len) read as zeros, keeping the size: whole cached pages
    /// are zeroed in place (so every mapping of them sees it) and their memory goes back
    /// to the host; partial pages have their bytes zeroed.
    pub fn punch_hole(&self, offset: u64, len: u64) -> KResult<()> {
        let mut inner = self.inner.lock();
        if self.seals.load(Ordering::Acquire) & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
            return Err(EPERM);
        }
        let end = offset.saturating_add(len).min(inner.size);
        let mut pos = offset;
        while pos < end {
            let idx = pos / PAGE;
            let po = (pos % PAGE) as usize;
            let n = (PAGE as usize - po).min((end - pos) as usize);
            let valid = inner.lower.as_ref().map(|l| l.valid).unwrap_or(0);
            let cached = inner.pages.get(&idx).cloned();
            match cached {
                Some(f) if n == PAGE as usize => f.zero(),
                Some(f) => f.bytes_mut()[po..po + n].fill(0),
                // Not cached and past the lower file's data: already zeros.
                None if pos >= valid => {}
                None => {
                    // Bytes that would come from the lower file: cache the page, zeroed.
                    if n == PAGE as usize {
                        if let Some(a) = &self.acct {
                            a.take_page()?;
                        }
                        inner.pages.insert(idx, memfile().alloc()?);
                    } else {
                        self.frame(&mut inner, idx)?.bytes_mut()[po..po + n].fill(0);
                    }
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    pub fn truncate(&self, len: u64) -> KResult<()> {
        let mut inner = self.inner.lock();
        let seals = self.seals.load(Ordering::Acquire);
        if (seals & F_SEAL_SHRINK != 0 && len < inner.size)
            || (seals & F_SEAL_GROW != 0 && len > inner.size)
        {
            return Err(EPERM);
        }
        if len < inner.size {
            let keep = len.div_ceil(PAGE);
            self.drop_pages(&mut inner, keep..u64::MAX);
            if !len.is_multiple_of(PAGE) {
                if let Some(f) = inner.pages.get(&(len / PAGE)) {
                    f.bytes_mut()[(len % PAGE) as usize..].fill(0);
                } else if inner.lower.as_ref().is_some_and(|l| l.valid > len) {
                    // Keep the lower bytes below len: load the page, then zero its tail.
                    let f = self.frame(&mut inner, len / PAGE)?;
                    f.bytes_mut()[(len % PAGE) as usize..].fill(0);
                }
            }
            if let Some(l) = inner.lower.as_mut() {
                l.valid = l.valid.min(len);
            }
        }
        inner.size = len;
        Ok(())
    }
}

impl Drop for FileData {
    fn drop(&mut self) {
        if let Some(a) = &self.acct {
            a.pages
                .fetch_sub(self.inner.get_mut().pages.len() as u64, Ordering::Relaxed);
        }
    }
}

pub const FALLOC_FL_KEEP_SIZE: u32 = 1;
pub const FALLOC_FL_PUNCH_HOLE: u32 = 2;
pub const FALLOC_FL_ZERO_RANGE: u32 = 0x10;

impl FileData {
    /// fallocate(2) on the data, with the mode already checked by the caller:
    /// 0 or KEEP_SIZE allocates (zero) pages over the range and, without KEEP_SIZE,
    /// extends the size; PUNCH_HOLE|KEEP_SIZE frees whole pages and zeroes partial
    /// ones; ZERO_RANGE zeroes the range and leaves it allocated.
    pub fn fallocate(&self, mode: u32, off: u64, len: u64) -> KResult<()> {
        let mut inner = self.inner.lock();
        let end = off.checked_add(len).ok_or(EFBIG)?;
        if end > (1 << 44) {
            return Err(EFBIG);
        }
        let seals = self.seals.load(Ordering::Acquire);
        let grows = mode & FALLOC_FL_KEEP_SIZE == 0 && end > inner.size;
        if seals & F_SEAL_GROW != 0 && grows {
            return Err(EPERM);
        }
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0
            && seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0
        {
            return Err(EPERM);
        }
        let first = off / PAGE;
        let last = end.div_ceil(PAGE);
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
            // Whole pages inside the range go; what the lower file holds there must
            // read as zeros afterwards, so those pages stay, zeroed.
            // Whole pages in the range are freed, unless someone maps them: with no
            // way to take a page out of an address space from here, those are zeroed
            // in place so that the mappings see the hole too.
            let whole = off.div_ceil(PAGE)..end / PAGE;
            if whole.start < whole.end {
                let free: Vec<u64> = inner
                    .pages
                    .range(whole)
                    .filter(|(_, f)| f.refs() <= 1)
                    .map(|(k, _)| *k)
                    .collect();
                self.remove_pages(&mut inner, &free);
            }
            // What the lower file holds must read as zeros afterwards: those pages
            // come back, zeroed; a hole stays a hole unless ZERO_RANGE allocates it.
            let valid = inner.lower.as_ref().map(|l| l.valid).unwrap_or(0);
            for idx in first..last {
                let (ps, pe) = (idx * PAGE, (idx + 1) * PAGE);
                if !inner.pages.contains_key(&idx)
                    && ps >= valid
                    && mode & FALLOC_FL_ZERO_RANGE == 0
                {
                    continue;
                }
                let f = self.frame(&mut inner, idx)?;
                let a = off.max(ps) - ps;
                let b = end.min(pe) - ps;
                f.bytes_mut()[a as usize..b as usize].fill(0);
            }
        } else {
            for idx in first..last {
                self.frame(&mut inner, idx)?;
            }
        }
        if grows {
            inner.size = end;
        }
        Ok(())
    }

    /// lseek's SEEK_DATA (`data`) or SEEK_HOLE from `off`: pages in memory are data;
    /// below them, the range still read from the lower file has the host file's holes.
    pub fn seek_data_hole(&self, off: u64, data: bool) -> KResult<u64> {
        let mut inner = self.inner.lock();
        let size = inner.size;
        if off >= size {
            return Err(ENXIO);
        }
        let valid = inner.lower.as_ref().map(|l| l.valid).unwrap_or(0);
        let lower = if off < valid {
            self.lower_fd(&mut inner)?
        } else {
            None
        };
        if data {
            let page = inner
                .pages
                .range(off / PAGE..)
                .next()
                .map(|(idx, _)| (idx * PAGE).max(off));
            let below = match &lower {
                Some(fd) => host_seek(fd, off, libc::SEEK_DATA)?.filter(|&d| d < valid),
                None => None,
            };
            return match (page, below) {
                (Some(a), Some(b)) => Ok(a.min(b)),
                (Some(x), None) | (None, Some(x)) if x < size => Ok(x),
                _ => Err(ENXIO),
            };
        }
        let mut p = off;
        loop {
            if p >= size {
                return Ok(size);
            }
            if inner.pages.contains_key(&(p / PAGE)) {
                p = (p / PAGE + 1) * PAGE;
                continue;
            }
            if p < valid {
                if let Some(fd) = &lower {
                    let h = host_seek(fd, p, libc::SEEK_HOLE)?.unwrap_or(p);
                    if h > p {
                        p = h.min(valid);
                        continue;
                    }
                }
            }
            return Ok(p.min(size));
        }
    }
}

/// lseek(SEEK_DATA/SEEK_HOLE) on a lower host file; None when the host says ENXIO.
fn host_seek(fd: &OwnedFd, off: u64, whence: i32) -> KResult<Option<u64>> {
    // SAFETY: lseek on a descriptor we own; it touches no memory.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off as i64, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    match last() {
        e if e == ENXIO => Ok(None),
        e => Err(e),
    }
}

impl FileData {
    /// Pages that hold memory (SysV shm's rss).
    pub fn resident_pages(&self) -> u64 {
        let inner = self.inner.lock();
        inner.pages.values().filter(|f| f.resident()).count() as u64
    }
}

impl crate::mm::MapSource for FileData {
    fn write_sealed(&self) -> bool {
        self.seals.load(Ordering::Acquire) & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0
    }
    fn punch_hole(&self, offset: u64, len: u64) -> KResult<()> {
        self.punch_hole(offset, len)
    }
    fn cached(&self, idx: u64) -> bool {
        self.inner
            .lock()
            .pages
            .get(&idx)
            .is_some_and(|f| f.resident())
    }
    fn page(&self, idx: u64) -> KResult<Option<Frame>> {
        let mut inner = self.inner.lock();
        if idx * PAGE >= inner.size.div_ceil(PAGE) * PAGE {
            return Ok(None);
        }
        self.frame(&mut inner, idx).map(Some)
    }
}

/// Anonymous shared memory (MAP_SHARED|MAP_ANONYMOUS, memfd): file data with no name.
pub fn anon_file(size: u64) -> Arc<FileData> {
    FileData::new(size, None, None, None)
}

fn stat_time(t: (i64, i64)) -> (i64, i64) {
    t
}

impl MemFs {
    /// Limit the file system to `pages` pages of data and `inodes` inodes (0: none).
    pub fn set_limits(&self, pages: u64, inodes: u64) {
        self.space.max_pages.store(pages, Ordering::Relaxed);
        self.space.max_inodes.store(inodes, Ordering::Relaxed);
    }

    pub fn new(dev: u64, gofer: Option<Arc<Client>>) -> Arc<MemFs> {
        Arc::new(MemFs {
            dev,
            gofer,
            next_ino: AtomicU64::new(1 << 40),
            space: Arc::new(Space::default()),
            lower_root: std::sync::OnceLock::new(),
        })
    }

    /// A directory that is in no tree (the root of memfd's hidden mount).
    pub fn anon_dir(self: &Arc<MemFs>) -> Arc<Node> {
        self.new_node(S_IFDIR | 0o1777, 0, 0, 0, Weak::new(), None)
    }

    /// A regular file that is in no directory (memfd_create).
    pub fn anon_file(self: &Arc<MemFs>, mode: u32, uid: u32, gid: u32) -> Arc<Node> {
        self.new_node(S_IFREG | (mode & 0o7777), uid, gid, 0, Weak::new(), None)
    }

    /// A root directory: empty (tmpfs) or the gofer's root.
    pub fn root(self: &Arc<MemFs>, mode: u32, uid: u32, gid: u32) -> KResult<Arc<Node>> {
        if let Some(g) = &self.gofer {
            let (fid, st) = g.attach()?;
            let _ = self.lower_root.set(fid);
            return Ok(self.node_from_lower(fid, &st, Weak::new()));
        }
        Ok(self.new_node(S_IFDIR | (mode & 0o7777), uid, gid, 0, Weak::new(), None))
    }

    fn new_node(
        self: &Arc<MemFs>,
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u64,
        parent: Weak<Node>,
        target: Option<Vec<u8>>,
    ) -> Arc<Node> {
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        self.space.inodes.fetch_add(1, Ordering::Relaxed);
        let t = now();
        let kind = match mode & S_IFMT {
            S_IFDIR => Kind::Dir(Mutex::new(Dir {
                children: indexmap::IndexMap::new(),
                loaded: true,
                lower: None,
                parent,
            })),
            S_IFREG => Kind::File(FileData::new(0, None, None, Some(self.space.clone()))),
            S_IFLNK => Kind::Symlink(Mutex::new(Sym {
                target,
                lower: None,
            })),
            S_IFIFO => Kind::Fifo(super::pipe::Pipe::new()),
            _ => Kind::Special,
        };
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        Arc::new_cyclic(|me| Node {
            fs: self.clone(),
            ino,
            meta: Mutex::new(Meta {
                mode,
                uid,
                gid,
                nlink,
                rdev,
                atime: t,
                mtime: t,
                ctime: t,
                blocks: 0,
                dir_size: 4096,
            }),
            xattrs: Mutex::new(Some(BTreeMap::new())),
            kind,
            me: me.clone(),
        })
    }

    fn node_from_lower(
        self: &Arc<MemFs>,
        fid: u64,
        st: &gofer::Stat,
        parent: Weak<Node>,
    ) -> Arc<Node> {
        self.space.inodes.fetch_add(1, Ordering::Relaxed);
        let kind = match st.mode & S_IFMT {
            S_IFDIR => Kind::Dir(Mutex::new(Dir {
                children: indexmap::IndexMap::new(),
                loaded: false,
                lower: Some(fid),
                parent,
            })),
            // Pages of a lower file are mostly a cache of the host file: they are not
            // counted as space the upper layer uses.
            S_IFREG => Kind::File(FileData::new(
                st.size as u64,
                Some(fid),
                self.gofer.clone(),
                None,
            )),
            S_IFLNK => Kind::Symlink(Mutex::new(Sym {
                target: None,
                lower: Some(fid),
            })),
            S_IFIFO => Kind::Fifo(super::pipe::Pipe::new()),
            _ => Kind::Special,
        };
        Arc::new_cyclic(|me| Node {
            fs: self.clone(),
            ino: st.ino,
            meta: Mutex::new(Meta {
                mode: st.mode,
                uid: st.uid,
                gid: st.gid,
                nlink: st.nlink,
                rdev: st.rdev,
                atime: st.atime,
                mtime: st.mtime,
                ctime: st.ctime,
                blocks: st.blocks as u64,
                dir_size: st.size as u64,
            }),
            xattrs: Mutex::new(None),
            kind,
            me: me.clone(),
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Watches on an unlinked inode wait for this (IN_DELETE_SELF).
        super::inotify::inode_gone(self as *const Node as *const () as usize);
        self.fs.space.inodes.fetch_sub(1, Ordering::Relaxed);
        let fid = match &self.kind {
            Kind::Dir(d) => d.lock().lower,
            Kind::Symlink(s) => s.lock().lower,
            Kind::File(f) => f.inner.lock().lower.as_ref().map(|l| l.fid),
            _ => None,
        };
        if let (Some(fid), Some(g)) = (fid, &self.fs.gofer) {
            g.clunk(fid);
        }
    }
}

impl Node {
    fn dir(&self) -> KResult<&Mutex<Dir>> {
        match &self.kind {
            Kind::Dir(d) => Ok(d),
            _ => Err(ENOTDIR),
        }
    }

    fn load(&self, d: &mut Dir) -> KResult<()> {
        if d.loaded {
            return Ok(());
        }
        if let (Some(fid), Some(g)) = (d.lower, &self.fs.gofer) {
            for e in g.readdir(fid)? {
                if e.name == b"." || e.name == b".." {
                    continue;
                }
                d.children.entry(e.name).or_insert(Entry::Lower {
                    ino: e.ino,
                    kind: e.kind,
                });
            }
        }
        d.loaded = true;
        Ok(())
    }

    fn child(&self, d: &mut Dir, name: &[u8]) -> KResult<Arc<Node>> {
        self.load(d)?;
        match d.children.get(name) {
            None => Err(ENOENT),
            Some(Entry::Node(n)) => Ok(n.clone()),
            Some(Entry::Lower { .. }) => {
                let g = self.fs.gofer.as_ref().ok_or(EIO)?;
                let (fid, st) = g.walk(d.lower.ok_or(EIO)?, name)?;
                let n = self.fs.node_from_lower(fid, &st, self.me.clone());
                d.children.insert(name.to_vec(), Entry::Node(n.clone()));
                Ok(n)
            }
        }
    }

    fn touch(&self, m: bool) {
        let t = now();
        let mut meta = self.meta.lock();
        meta.ctime = t;
        if m {
            meta.mtime = t;
        }
    }

    fn insert(
        &self,
        name: &[u8],
        mode: u32,
        rdev: u64,
        c: &Creds,
        target: Option<Vec<u8>>,
    ) -> KResult<Arc<dyn Inode>> {
        let mut d = self.dir()?.lock();
        self.load(&mut d)?;
        // A removed directory takes no new entries.
        if self.meta.lock().nlink == 0 {
            return Err(ENOENT);
        }
        if d.children.contains_key(name) {
            return Err(EEXIST);
        }
        self.fs.space.check_inode()?;
        let gid = if self.meta.lock().mode & 0o2000 != 0 {
            self.meta.lock().gid
        } else {
            c.fsgid
        };
        let mut mode = mode;
        if mode & S_IFMT == S_IFDIR && self.meta.lock().mode & 0o2000 != 0 {
            mode |= 0o2000;
        }
        let n = self
            .fs
            .new_node(mode, c.fsuid, gid, rdev, self.me.clone(), target);
        d.children.insert(name.to_vec(), Entry::Node(n.clone()));
        drop(d);
        if mode & S_IFMT == S_IFDIR {
            self.meta.lock().nlink += 1;
        }
        self.touch(true);
        Ok(n)
    }

    fn is_empty_dir(&self) -> KResult<bool> {
        let mut d = self.dir()?.lock();
        self.load(&mut d)?;
        Ok(d.children.is_empty())
    }

    fn is_ancestor_of(&self, other: &Arc<Node>) -> bool {
        let mut cur = Some(other.clone());
        while let Some(n) = cur {
            if std::ptr::eq(Arc::as_ptr(&n), self) {
                return true;
            }
            cur = match &n.kind {
                Kind::Dir(d) => d.lock().parent.upgrade(),
                _ => None,
            };
        }
        false
    }

    fn lower_fid(&self) -> Option<u64> {
        match &self.kind {
            Kind::Dir(d) => d.lock().lower,
            Kind::Symlink(s) => s.lock().lower,
            Kind::File(f) => f.inner.lock().lower.as_ref().map(|l| l.fid),
            _ => None,
        }
    }

    /// The node's extended attributes, read from the lower file on first use.
    fn with_xattrs<R>(&self, f: impl FnOnce(&mut BTreeMap<Vec<u8>, Vec<u8>>) -> R) -> KResult<R> {
        let mut x = self.xattrs.lock();
        if x.is_none() {
            let mut m = BTreeMap::new();
            if let (Some(fid), Some(g)) = (self.lower_fid(), &self.fs.gofer) {
                if let Ok(names) = g.listxattr(fid) {
                    for n in names {
                        if let Ok(v) = g.getxattr(fid, &n) {
                            m.insert(n, v);
                        }
                    }
                }
            }
            *x = Some(m);
        }
        Ok(f(x.as_mut().expect("loaded")))
    }

    /// The space use and limits of this node's file system.
    pub fn fs_space(&self) -> &Space {
        &self.fs.space
    }

    /// For an overlay: the statfs of the host file system under its lower tree.
    pub fn lower_statfs(&self) -> Option<gofer::StatFs> {
        let g = self.fs.gofer.as_ref()?;
        g.statfs(*self.fs.lower_root.get()?).ok()
    }

    pub fn file_data(&self) -> Option<&Arc<FileData>> {
        match &self.kind {
            Kind::File(f) => Some(f),
            _ => None,
        }
    }
}

fn as_node(i: &Arc<dyn Inode>) -> Option<Arc<Node>> {
    i.as_any()
        .downcast_ref::<Node>()
        .and_then(|n| n.me.upgrade())
}

impl Inode for Node {
    fn stat(&self) -> Stat {
        let m = self.meta.lock();
        let (size, blocks, nlink) = match &self.kind {
            Kind::File(f) => {
                let fi = f.inner.lock();
                let lower_blocks = if fi.lower.as_ref().is_some_and(|l| l.valid > 0) {
                    m.blocks
                } else {
                    0
                };
                (
                    fi.size,
                    lower_blocks.max(f.resident_pages_locked(&fi) * 8),
                    m.nlink,
                )
            }
            Kind::Symlink(s) => {
                let s = s.lock();
                (
                    s.target.as_ref().map(|t| t.len() as u64).unwrap_or(0),
                    0,
                    m.nlink,
                )
            }
            Kind::Dir(_) => (m.dir_size, m.dir_size.div_ceil(512), m.nlink),
            _ => (0, 0, m.nlink),
        };
        let size = if let (Kind::Symlink(_), 0) = (&self.kind, size) {
            self.readlink().map(|t| t.len() as u64).unwrap_or(0)
        } else {
            size
        };
        Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: m.mode,
            nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: m.rdev,
            size,
            blksize: 4096,
            blocks,
            atime: stat_time(m.atime),
            mtime: m.mtime,
            ctime: m.ctime,
        }
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        let mut d = self.dir()?.lock();
        Ok(self.child(&mut d, name)?)
    }

    fn readdir(&self) -> KResult<Vec<DirEnt>> {
        let mut d = self.dir()?.lock();
        self.load(&mut d)?;
        let parent_ino = d.parent.upgrade().map(|p| p.ino).unwrap_or(self.ino);
        let mut v = vec![
            DirEnt {
                ino: self.ino,
                kind: 4,
                name: b".".to_vec(),
            },
            DirEnt {
                ino: parent_ino,
                kind: 4,
                name: b"..".to_vec(),
            },
        ];
        for (name, e) in d.children.iter() {
            let (ino, kind) = match e {
                Entry::Node(n) => (n.ino, ((n.meta.lock().mode & S_IFMT) >> 12) as u8),
                Entry::Lower { ino, kind } => (*ino, *kind),
            };
            v.push(DirEnt {
                ino,
                kind,
                name: name.clone(),
            });
        }
        Ok(v)
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        match &self.kind {
            Kind::Symlink(s) => {
                let mut s = s.lock();
                if s.target.is_none() {
                    let g = self.fs.gofer.as_ref().ok_or(EIO)?;
                    s.target = Some(g.readlink(s.lower.ok_or(EIO)?)?);
                }
                Ok(s.target.clone().unwrap_or_default())
            }
            _ => Err(EINVAL),
        }
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        match &self.kind {
            Kind::Dir(_) => {
                if flags & O_ACCMODE != 0 {
                    return Err(EISDIR);
                }
                Ok(Arc::new(DirFile {
                    inode: self.clone(),
                }))
            }
            Kind::File(f) => {
                if flags & O_TRUNC != 0 && flags & O_ACCMODE != 0 {
                    f.truncate(0)?;
                    self.touch(true);
                }
                Ok(Arc::new(NodeFile {
                    node: self.clone(),
                    data: f.clone(),
                }))
            }
            Kind::Fifo(p) => super::pipe::open_fifo(p, flags, false),
            Kind::Symlink(_) => Err(ELOOP),
            Kind::Special => {
                let m = self.meta.lock();
                match m.mode & S_IFMT {
                    S_IFCHR => super::devfs::open_device(m.rdev, flags),
                    _ => Err(ENXIO),
                }
            }
        }
    }

    fn create(&self, name: &[u8], mode: u32, c: &Creds) -> KResult<Arc<dyn Inode>> {
        self.insert(name, S_IFREG | (mode & 0o7777), 0, c, None)
    }
    fn tmpfile(&self, mode: u32, c: &Creds) -> KResult<Arc<dyn Inode>> {
        self.dir()?;
        self.fs.space.check_inode()?;
        let n = self.fs.new_node(
            S_IFREG | (mode & 0o7777),
            c.fsuid,
            c.fsgid,
            0,
            Weak::new(),
            None,
        );
        n.meta.lock().nlink = 0;
        Ok(n)
    }
    fn mknod(&self, name: &[u8], mode: u32, rdev: u64, c: &Creds) -> KResult<Arc<dyn Inode>> {
        self.insert(name, mode, rdev, c, None)
    }
    fn mkdir(&self, name: &[u8], mode: u32, c: &Creds) -> KResult<Arc<dyn Inode>> {
        self.insert(name, S_IFDIR | (mode & 0o7777), 0, c, None)
    }
    fn symlink(&self, name: &[u8], target: &[u8], c: &Creds) -> KResult<Arc<dyn Inode>> {
        self.insert(name, S_IFLNK | 0o777, 0, c, Some(target.to_vec()))
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> KResult<()> {
        let t = as_node(target).ok_or(EXDEV)?;
        if !Arc::ptr_eq(&t.fs, &self.fs) {
            return Err(EXDEV);
        }
        if matches!(t.kind, Kind::Dir(_)) {
            return Err(EPERM);
        }
        let mut d = self.dir()?.lock();
        self.load(&mut d)?;
        // A removed directory takes no new entries.
        if self.meta.lock().nlink == 0 {
            return Err(ENOENT);
        }
        if d.children.contains_key(name) {
            return Err(EEXIST);
        }
        d.children.insert(name.to_vec(), Entry::Node(t.clone()));
        drop(d);
        t.meta.lock().nlink += 1;
        t.touch(false);
        self.touch(true);
        Ok(())
    }

    fn unlink(&self, name: &[u8], dir: bool) -> KResult<()> {
        let mut d = self.dir()?.lock();
        let n = self.child(&mut d, name)?;
        let is_dir = matches!(n.kind, Kind::Dir(_));
        if dir && !is_dir {
            return Err(ENOTDIR);
        }
        if !dir && is_dir {
            return Err(EISDIR);
        }
        if is_dir && !n.is_empty_dir()? {
            return Err(ENOTEMPTY);
        }
        d.children.shift_remove(name);
        drop(d);
        let mut m = n.meta.lock();
        if is_dir {
            m.nlink = 0;
            drop(m);
            self.meta.lock().nlink -= 1;
        } else {
            m.nlink = m.nlink.saturating_sub(1);
            m.ctime = now();
        }
        self.touch(true);
        Ok(())
    }

    fn rename(&self, old: &[u8], newdir: &Arc<dyn Inode>, new: &[u8], flags: u32) -> KResult<()> {
        const NOREPLACE: u32 = 1;
        const EXCHANGE: u32 = 2;
        let nd = as_node(newdir).ok_or(EXDEV)?;
        if !Arc::ptr_eq(&nd.fs, &self.fs) {
            return Err(EXDEV);
        }
        let me = self.me.upgrade().ok_or(ENOENT)?;
        let same = Arc::ptr_eq(&nd, &me);
        let src = {
            let mut d = self.dir()?.lock();
            self.child(&mut d, old)?
        };
        let dst = {
            let mut d = nd.dir()?.lock();
            match nd.child(&mut d, new) {
                Ok(n) => Some(n),
                Err(e) if e == ENOENT => None,
                Err(e) => return Err(e),
            }
        };
        if let Some(dst) = &dst {
            if Arc::ptr_eq(dst, &src) {
                return Ok(());
            }
        }
        let src_dir = matches!(src.kind, Kind::Dir(_));
        if src_dir && src.is_ancestor_of(&nd) {
            return Err(EINVAL);
        }
        if flags & EXCHANGE != 0 {
            let dst = dst.ok_or(ENOENT)?;
            let dst_dir = matches!(dst.kind, Kind::Dir(_));
            if dst_dir && dst.is_ancestor_of(&me) {
                return Err(EINVAL);
            }
            self.dir()?
                .lock()
                .children
                .insert(old.to_vec(), Entry::Node(dst.clone()));
            nd.dir()?
                .lock()
                .children
                .insert(new.to_vec(), Entry::Node(src.clone()));
            if let Kind::Dir(d) = &src.kind {
                d.lock().parent = Arc::downgrade(&nd);
            }
            if let Kind::Dir(d) = &dst.kind {
                d.lock().parent = self.me.clone();
            }
            if src_dir != dst_dir && !same {
                let (a, b) = if src_dir { (&nd, &me) } else { (&me, &nd) };
                a.meta.lock().nlink += 1;
                b.meta.lock().nlink -= 1;
            }
            self.touch(true);
            nd.touch(true);
            return Ok(());
        }
        if let Some(dst) = &dst {
            if flags & NOREPLACE != 0 {
                return Err(EEXIST);
            }
            let dst_dir = matches!(dst.kind, Kind::Dir(_));
            if src_dir && !dst_dir {
                return Err(ENOTDIR);
            }
            if !src_dir && dst_dir {
                return Err(EISDIR);
            }
            if dst_dir && !dst.is_empty_dir()? {
                return Err(ENOTEMPTY);
            }
            let mut m = dst.meta.lock();
            m.nlink = if dst_dir {
                0
            } else {
                m.nlink.saturating_sub(1)
            };
            drop(m);
            if dst_dir {
                nd.meta.lock().nlink -= 1;
            }
        }
        self.dir()?.lock().children.shift_remove(old);
        nd.dir()?
            .lock()
            .children
            .insert(new.to_vec(), Entry::Node(src.clone()));
        if let Kind::Dir(d) = &src.kind {
            d.lock().parent = Arc::downgrade(&nd);
            if !same {
                self.meta.lock().nlink -= 1;
                nd.meta.lock().nlink += 1;
            }
        }
        src.touch(false);
        self.touch(true);
        nd.touch(true);
        Ok(())
    }

    fn getxattr(&self, name: &[u8]) -> KResult<Vec<u8>> {
        self.with_xattrs(|m| m.get(name).cloned())?.ok_or(ENODATA)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> KResult<()> {
        if matches!(self.kind, Kind::Symlink(_) | Kind::Special | Kind::Fifo(_))
            && name.starts_with(b"user.")
        {
            return Err(EPERM);
        }
        self.with_xattrs(|m| {
            let exists = m.contains_key(name);
            if flags & 1 != 0 && exists {
                return Err(EEXIST);
            }
            if flags & 2 != 0 && !exists {
                return Err(ENODATA);
            }
            m.insert(name.to_vec(), value.to_vec());
            Ok(())
        })??;
        self.touch(false);
        Ok(())
    }

    fn listxattr(&self) -> KResult<Vec<Vec<u8>>> {
        self.with_xattrs(|m| m.keys().cloned().collect())
    }

    fn removexattr(&self, name: &[u8]) -> KResult<()> {
        self.with_xattrs(|m| m.remove(name))?.ok_or(ENODATA)?;
        self.touch(false);
        Ok(())
    }

    fn setattr(&self, a: &SetAttr) -> KResult<()> {
        if let Some(size) = a.size {
            match &self.kind {
                Kind::File(f) => f.truncate(size)?,
                Kind::Dir(_) => return Err(EISDIR),
                _ => return Err(EINVAL),
            }
        }
        let t = now();
        let mut m = self.meta.lock();
        if let Some(mode) = a.mode {
            m.mode = (m.mode & S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = a.uid {
            m.uid = uid;
        }
        if let Some(gid) = a.gid {
            m.gid = gid;
        }
        let fix = |x: (i64, i64)| if x.1 == (1 << 30) - 1 { t } else { x };
        if let Some(at) = a.atime {
            if at.1 != (1 << 30) - 2 {
                m.atime = fix(at);
            }
        }
        if let Some(mt) = a.mtime {
            if mt.1 != (1 << 30) - 2 {
                m.mtime = fix(mt);
            }
        }
        if a.size.is_some() {
            m.mtime = t;
        }
        m.ctime = t;
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl FileData {
    fn resident_pages_locked(&self, fi: &FileInner) -> u64 {
        fi.pages.len() as u64
    }
}

/// An open regular file of a MemFs.
pub struct NodeFile {
    node: Arc<Node>,
    data: Arc<FileData>,
}

impl FileOps for NodeFile {
    fn read(&self, _f: &OpenFile, _t: &Task, buf: &mut [u8], off: u64) -> KResult<usize> {
        self.data.read(buf, off)
    }
    fn write(&self, f: &OpenFile, _t: &Task, buf: &[u8], off: u64) -> KResult<usize> {
        let off = if f.flags() & O_APPEND != 0 {
            self.data.size()
        } else {
            off
        };
        let n = self.data.write(buf, off)?;
        self.node.touch(true);
        Ok(n)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn size(&self) -> u64 {
        self.data.size()
    }
    fn mmap_source(&self) -> Option<Arc<dyn crate::mm::MapSource>> {
        Some(self.data.clone())
    }
    fn truncate(&self, len: u64) -> KResult<()> {
        self.data.truncate(len)?;
        self.node.touch(true);
        Ok(())
    }
    fn fallocate(&self, mode: u32, off: u64, len: u64) -> KResult<()> {
        // tmpfs knows allocation and hole punching only; the overlay's upper layer
        // stands for a disk file system, which also zeroes ranges.
        let allowed = if self.node.fs.gofer.is_some() {
            FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE
        } else {
            FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
        };
        if mode & !allowed != 0 {
            return Err(EOPNOTSUPP);
        }
        self.data.fallocate(mode, off, len)?;
        self.node.touch(true);
        Ok(())
    }
    fn seek_data_hole(&self, off: u64, data: bool) -> Option<KResult<u64>> {
        Some(self.data.seek_data_hole(off, data))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl NodeFile {
    pub fn data(&self) -> &Arc<FileData> {
        &self.data
    }

    /// The append position for O_APPEND writes.
    pub fn size(&self) -> u64 {
        self.data.size()
    }
}

//! File system calls: open/read/write, stat, directories, links, poll/select, fcntl.

use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::vfs::inotify::{self, *};
use crate::vfs::*;
use std::time::{Duration, Instant};

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let a = |i| c.arg(i);
    let (a0, a1, a2, a3, a4) = (a(0), a(1), a(2), a(3), a(4));
    let fdcwd = AT_FDCWD as u64;
    Some(match nr {
        0 => read(c, a0, a1, a2, None),
        1 => write(c, a0, a1, a2, None),
        2 => openat(c, fdcwd, a0, a1 as u32, a2 as u32),
        3 => close(c, a0),
        221 => fadvise(c, a0, a2 as i64, a3 as u32),
        4 => fstatat(c, fdcwd, a0, a1, 0),
        5 => fstat(c, a0, a1),
        6 => fstatat(c, fdcwd, a0, a1, AT_SYMLINK_NOFOLLOW),
        7 => poll(
            c,
            a0,
            a1,
            if (a2 as i32) < 0 {
                None
            } else {
                Some(Duration::from_millis(a2))
            },
        ),
        8 => lseek(c, a0, a1 as i64, a2 as u32),
        16 => ioctl(c, a0, a1 as u32, a2),
        17 => read(c, a0, a1, a2, Some(a3)),
        18 => write(c, a0, a1, a2, Some(a3)),
        19 => readv(c, a0, a1, a2, None),
        20 => writev(c, a0, a1, a2, None),
        21 => faccessat(c, fdcwd, a0, a1 as u32, 0),
        22 => pipe2(c, a0, 0),
        23 => select(c, a0, a1, a2, a3, a4, false),
        32 => dup(c, a0),
        33 => dup3(c, a0, a1, 0, true),
        72 => fcntl(c, a0, a1 as u32, a2),
        73 => flock(c, a0, a1 as u32),
        74 | 75 => c.fd(a0).map(|_| 0),
        76 => truncate(c, a0, a1),
        77 => ftruncate(c, a0, a1),
        285 => fallocate(c, a0, a1 as u32, a2, a3),
        79 => getcwd(c, a0, a1),
        80 => chdir(c, a0),
        81 => fchdir(c, a0),
        82 => renameat(c, fdcwd, a0, fdcwd, a1, 0),
        83 => mkdirat(c, fdcwd, a0, a1 as u32),
        84 => unlinkat(c, fdcwd, a0, AT_REMOVEDIR),
        85 => openat(c, fdcwd, a0, O_CREAT | O_WRONLY | O_TRUNC, a1 as u32),
        86 => linkat(c, fdcwd, a0, fdcwd, a1, 0),
        87 => unlinkat(c, fdcwd, a0, 0),
        88 => symlinkat(c, a0, fdcwd, a1),
        89 => readlinkat(c, fdcwd, a0, a1, a2),
        90 => fchmodat(c, fdcwd, a0, a1 as u32),
        91 => fchmod(c, a0, a1 as u32),
        92 => fchownat(c, fdcwd, a0, a1 as u32, a2 as u32, 0),
        93 => fchown(c, a0, a1 as u32, a2 as u32),
        94 => fchownat(c, fdcwd, a0, a1 as u32, a2 as u32, AT_SYMLINK_NOFOLLOW),
        95 => Ok(c
            .t
            .fsctx()
            .umask
            .swap(a0 as u32 & 0o777, std::sync::atomic::Ordering::Relaxed) as u64),
        133 => mknodat(c, fdcwd, a0, a1 as u32, a2),
        137 => statfs(c, Some(a0), None, a1),
        138 => statfs(c, None, Some(a0), a1),
        162 => Ok(0),
        217 => getdents64(c, a0, a1, a2),
        257 => openat(c, a0, a1, a2 as u32, a3 as u32),
        258 => mkdirat(c, a0, a1, a2 as u32),
        259 => mknodat(c, a0, a1, a2 as u32, a3),
        260 => fchownat(c, a0, a1, a2 as u32, a3 as u32, a4),
        262 => fstatat(c, a0, a1, a2, a3),
        263 => unlinkat(c, a0, a1, a2),
        264 => renameat(c, a0, a1, a2, a3, 0),
        265 => linkat(c, a0, a1, a2, a3, a4),
        266 => symlinkat(c, a0, a1, a2),
        267 => readlinkat(c, a0, a1, a2, a3),
        268 => fchmodat(c, a0, a1, a2 as u32),
        269 => faccessat(c, a0, a1, a2 as u32, 0),
        270 => select(c, a0, a1, a2, a3, a4, true),
        271 => ppoll(c, a0, a1, a2, a3),
        280 => utimensat(c, a0, a1, a2, a3),
        292 => dup3(c, a0, a1, a2 as u32, false),
        293 => pipe2(c, a0, a1 as u32),
        295 => readv(c, a0, a1, a2, Some(a3)),
        296 => writev(c, a0, a1, a2, Some(a3)),
        327 => preadv2(c, a0, a1, a2, a3, c.arg(5)),
        328 => pwritev2(c, a0, a1, a2, a3, c.arg(5)),
        306 => c.fd(a0).map(|_| 0),
        316 => renameat(c, a0, a1, a2, a3, a4 as u32),
        332 => statx(c, a0, a1, a2, a3 as u32, a4),
        436 => close_range(c, a0 as u32, a1 as u32, a2 as u32),
        319 => memfd_create(c, a0, a1 as u32),
        40 => sendfile(c, a0, a1, a2, a3),
        326 => copy_file_range(c, a0, a1, a2, a3, a4, c.arg(5)),
        275 => splice(c, a0, a1, a2, a3, a4, c.arg(5) as u32),
        276 => tee(c, a0, a1, a2, a3 as u32),
        161 => chroot(c, a0),
        439 => faccessat(c, a0, a1, a2 as u32, a3),
        _ => return None,
    })
}

const CHUNK: usize = 1 << 20;

/// inotify: `mask` happened to the file `f` is open on.
fn notify(f: &OpenFile, mask: u32) {
    if let Some(p) = &f.path {
        inotify::path_event(p, mask);
    }
}

fn is_dir_bit(inode: &Arc<dyn Inode>) -> u32 {
    if inode.stat().is_dir() {
        IN_ISDIR
    } else {
        0
    }
}

fn do_read(c: &Ctx, f: &OpenFile, buf: &mut [u8], off: Option<u64>) -> KResult<usize> {
    let n = do_read_inner(c, f, buf, off)?;
    if n > 0 {
        notify(f, IN_ACCESS);
    }
    Ok(n)
}

fn do_write(c: &Ctx, f: &OpenFile, buf: &[u8], off: Option<u64>) -> KResult<usize> {
    let n = do_write_inner(c, f, buf, off)?;
    if n > 0 {
        notify(f, IN_MODIFY);
    }
    Ok(n)
}

fn do_read_inner(c: &Ctx, f: &OpenFile, buf: &mut [u8], off: Option<u64>) -> KResult<usize> {
    if !f.readable() {
        return Err(EBADF);
    }
    match off {
        Some(o) => {
            if !f.ops.seekable() {
                return Err(ESPIPE);
            }
            f.ops.read(f, c.t, buf, o)
        }
        None if f.ops.seekable() => {
            let mut pos = f.pos.lock();
            let n = f.ops.read(f, c.t, buf, *pos)?;
            *pos += n as u64;
            Ok(n)
        }
        None => f.ops.read(f, c.t, buf, 0),
    }
}

fn do_write_inner(c: &Ctx, f: &OpenFile, buf: &[u8], off: Option<u64>) -> KResult<usize> {
    if !f.writable() {
        return Err(EBADF);
    }
    // RLIMIT_FSIZE: past the limit a write fails with EFBIG and SIGXFSZ; across it, it
    // is cut short.
    let mut buf = buf;
    let st = f.stat();
    if f.ops.seekable() && st.is_reg() {
        const RLIMIT_FSIZE: usize = 1;
        let limit = c.t.rlimit(RLIMIT_FSIZE).0;
        let start = match off {
            Some(o) => o,
            None if f.flags() & O_APPEND != 0 => f.ops.size(),
            None => *f.pos.lock(),
        };
        if limit != u64::MAX && start.saturating_add(buf.len() as u64) > limit {
            if start >= limit {
                c.t.send_signal(SigInfo::kernel(signal::SIGXFSZ));
                return Err(EFBIG);
            }
            buf = &buf[..(limit - start) as usize];
        }
        if let (Some(p), false) = (&f.path, buf.is_empty()) {
            remove_privs(c, p, &st);
        }
    }
    let r = match off {
        Some(o) => {
            if !f.ops.seekable() {
                return Err(ESPIPE);
            }
            f.ops.write(f, c.t, buf, o)
        }
        None if f.ops.seekable() => {
            let mut pos = f.pos.lock();
            if f.flags() & O_APPEND != 0 {
                *pos = f.ops.size();
            }
            let n = f.ops.write(f, c.t, buf, *pos)?;
            *pos += n as u64;
            Ok(n)
        }
        None => f.ops.write(f, c.t, buf, 0),
    };
    sigpipe(c, f, &r);
    r
}

/// SIGPIPE goes with EPIPE, except on datagram and seqpacket sockets.
fn sigpipe(c: &Ctx, f: &OpenFile, r: &KResult<usize>) {
    if *r == Err(EPIPE)
        && crate::net::unix_sock(f).map_or(true, |s| s.ty == crate::net::SOCK_STREAM)
    {
        c.t.send_signal(SigInfo::user(
            signal::SIGPIPE,
            signal::SI_USER,
            c.t.tgid(),
            0,
        ));
    }
}

/// A write or truncation by a task without CAP_FSETID drops a regular file's
/// set-user-ID bit, and its set-group-ID bit when that is group-executable or the
/// task is not in the file's group (Linux's file_remove_privs), which is IN_ATTRIB.
pub fn remove_privs(c: &Ctx, p: &Path, st: &Stat) {
    const CAP_FSETID: u32 = 4;
    if !st.is_reg() || st.mode & 0o6000 == 0 {
        return;
    }
    let cr = c.t.creds();
    if cr.has_cap(CAP_FSETID) {
        return;
    }
    let mut kill = st.mode & 0o4000;
    let in_group = cr.fsgid == st.gid || cr.groups.contains(&st.gid);
    if st.mode & 0o2000 != 0 && (st.mode & 0o010 != 0 || !in_group) {
        kill |= 0o2000;
    }
    if kill != 0 {
        let r = p.dentry.inode.setattr(&SetAttr {
            mode: Some(st.mode & 0o7777 & !kill),
            ..Default::default()
        });
        if r.is_ok() {
            inotify::path_event(p, IN_ATTRIB);
        }
    }
}

fn read(c: &Ctx, fd: u64, buf: u64, count: u64, off: Option<u64>) -> SysResult {
    let f = c.fd(fd)?;
    if (count as i64) < 0 || off.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let mut done = 0usize;
    let count = count as usize;
    if let (None, Some(p)) = (off, f.ops.as_any().downcast_ref::<pipe::PipeEnd>()) {
        // Straight from the pipe into the reader's memory.
        if !f.readable() {
            return Err(EBADF);
        }
        let n = p.read_into(&f, c.t, count.min(CHUNK), &mut |a, b| {
            mm.write(buf, a)?;
            mm.write(buf + a.len() as u64, b)
        })?;
        if n > 0 {
            notify(&f, IN_ACCESS);
        }
        return Ok(n as u64);
    }
    if let (None, Some(s), true) = (off, crate::net::inet_sock(&f), count > 0) {
        if s.is_tcp() {
            // Straight from the stack's receive buffer into the reader's memory.
            if !f.readable() {
                return Err(EBADF);
            }
            let n = s.tcp_recv(c.t, f.nonblock(), count, 0, &mut |at, b| {
                mm.write(buf + at as u64, b).is_ok()
            })?;
            if n > 0 {
                notify(&f, IN_ACCESS);
            }
            return Ok(n as u64);
        }
    }
    loop {
        let n = (count - done).min(CHUNK);
        let mut tmp = vec![0u8; n];
        let r = do_read(c, &f, &mut tmp, off.map(|o| o + done as u64));
        let got = match r {
            Ok(g) => g,
            Err(e) if done > 0 && (e == EAGAIN || e.is_restart()) => break,
            Err(e) => return Err(e),
        };
        mm.write(buf + done as u64, &tmp[..got])?;
        done += got;
        if got < n || done >= count || !f.ops.seekable() {
            break;
        }
    }
    Ok(done as u64)
}

fn write(c: &Ctx, fd: u64, buf: u64, count: u64, off: Option<u64>) -> SysResult {
    let f = c.fd(fd)?;
    if (count as i64) < 0 || off.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let count = count as usize;
    let mut done = 0;
    if let (None, Some(p)) = (off, f.ops.as_any().downcast_ref::<pipe::PipeEnd>()) {
        // Straight from the writer's memory into the pipe.
        if !f.writable() {
            return Err(EBADF);
        }
        let r = p.write_from(&f, c.t, count, &mut |q, at, n| {
            mm.read_each(buf + at as u64, n, |s| q.extend(s))
        });
        sigpipe(c, &f, &r);
        let n = r?;
        if n > 0 {
            notify(&f, IN_MODIFY);
        }
        return Ok(n as u64);
    }
    if let (None, Some(s)) = (off, crate::net::inet_sock(&f)) {
        if s.is_tcp() {
            // Straight from the writer's memory into the stack's send buffer.
            if !f.writable() {
                return Err(EBADF);
            }
            let r = s.tcp_send(c.t, f.nonblock(), count, &mut |at, b| {
                mm.read(buf + at as u64, b).is_ok()
            });
            sigpipe(c, &f, &r);
            let n = r?;
            if n > 0 {
                notify(&f, IN_MODIFY);
            }
            return Ok(n as u64);
        }
    }
    loop {
        let n = (count - done).min(CHUNK);
        let tmp = mm.read_vec(buf + done as u64, n)?;
        let r = do_write(c, &f, &tmp, off.map(|o| o + done as u64));
        let put = match r {
            Ok(p) => p,
            Err(e) if done > 0 && (e == EAGAIN || e.is_restart()) => break,
            Err(e) => return Err(e),
        };
        done += put;
        if put < n || done >= count {
            break;
        }
    }
    Ok(done as u64)
}

fn iovecs(c: &Ctx, iov: u64, cnt: u64) -> KResult<Vec<(u64, u64)>> {
    if cnt > 1024 {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let mut v = vec![];
    for i in 0..cnt {
        let base = mm.read_u64(iov + i * 16)?;
        let len = mm.read_u64(iov + i * 16 + 8)?;
        if (len as i64) < 0 {
            return Err(EINVAL);
        }
        v.push((base, len));
    }
    Ok(v)
}

fn readv(c: &Ctx, fd: u64, iov: u64, cnt: u64, off: Option<u64>) -> SysResult {
    if off.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    let f = c.fd(fd)?;
    let vs = iovecs(c, iov, cnt)?;
    let total: u64 = vs.iter().map(|v| v.1).sum();
    let mut tmp = vec![0u8; total.min(16 << 20) as usize];
    let n = do_read(c, &f, &mut tmp, off)?;
    let mm = c.t.mm();
    let mut done = 0;
    for (b, l) in vs {
        if done >= n {
            break;
        }
        let k = (l as usize).min(n - done);
        mm.write(b, &tmp[done..done + k])?;
        done += k;
    }
    Ok(n as u64)
}

fn writev(c: &Ctx, fd: u64, iov: u64, cnt: u64, off: Option<u64>) -> SysResult {
    if off.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    let f = c.fd(fd)?;
    let vs = iovecs(c, iov, cnt)?;
    let mm = c.t.mm();
    let mut buf = vec![];
    for (b, l) in vs {
        buf.extend(mm.read_vec(b, l as usize)?);
    }
    Ok(do_write(c, &f, &buf, off)? as u64)
}

// preadv2/pwritev2 flags (Linux 6.8's RWF_SUPPORTED).
const RWF_HIPRI: u64 = 1;
const RWF_DSYNC: u64 = 2;
const RWF_SYNC: u64 = 4;
const RWF_NOWAIT: u64 = 8;
const RWF_APPEND: u64 = 0x10;

/// Check preadv2/pwritev2 flags: unknown ones are EOPNOTSUPP. RWF_HIPRI (polled I/O)
/// and the sync flags change nothing here (writes reach the file system at once, as
/// fsync assumes); RWF_NOWAIT is only had by regular files, whose reads never wait
/// here, so elsewhere it is EOPNOTSUPP, as for Linux's files without FMODE_NOWAIT.
fn rw_flags(c: &Ctx, f: &OpenFile, flags: u64, write: bool) -> KResult<()> {
    if flags & !(RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND) != 0 {
        return Err(EOPNOTSUPP);
    }
    if flags & RWF_NOWAIT != 0 && (write || !f.stat().is_reg()) {
        crate::net::inet::unsupported(&c.t.kernel, "RWF_NOWAIT but for reads of files".into());
        return Err(EOPNOTSUPP);
    }
    Ok(())
}

/// The checks of preadv2/pwritev2 in Linux's order; the offset (-1: the file
/// position) is returned.
fn rw2_check(
    c: &Ctx,
    fd: u64,
    iov: u64,
    cnt: u64,
    off: u64,
    flags: u64,
    write: bool,
) -> KResult<(Arc<OpenFile>, Option<u64>)> {
    let off = (off as i64 != -1).then_some(off);
    if off.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    let f = c.fd(fd)?;
    if off.is_some() && !f.ops.seekable() {
        return Err(ESPIPE);
    }
    if !(if write { f.writable() } else { f.readable() }) {
        return Err(EBADF);
    }
    iovecs(c, iov, cnt)?;
    rw_flags(c, &f, flags, write)?;
    Ok((f, off))
}

fn preadv2(c: &Ctx, fd: u64, iov: u64, cnt: u64, off: u64, flags: u64) -> SysResult {
    let (_, off) = rw2_check(c, fd, iov, cnt, off, flags, false)?;
    readv(c, fd, iov, cnt, off)
}

fn pwritev2(c: &Ctx, fd: u64, iov: u64, cnt: u64, off: u64, flags: u64) -> SysResult {
    let (f, off) = rw2_check(c, fd, iov, cnt, off, flags, true)?;
    if flags & RWF_APPEND != 0 && f.ops.seekable() {
        // At the end, as under O_APPEND; an explicit offset leaves the position alone.
        let end = f.ops.size();
        if off.is_none() {
            *f.pos.lock() = end;
            return writev(c, fd, iov, cnt, None);
        }
        return writev(c, fd, iov, cnt, Some(end));
    }
    writev(c, fd, iov, cnt, off)
}

fn install(c: &Ctx, f: Arc<OpenFile>, cloexec: bool) -> SysResult {
    let lim = c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    Ok(c.t.files().install(f, cloexec, 0, lim)? as u64)
}

/// Open an inode at `path` with `flags`, checking permissions.
pub fn open_path(c: &Ctx, path: &Path, flags: u32) -> KResult<Arc<OpenFile>> {
    let st = path.dentry.inode.stat();
    if flags & O_PATH != 0 {
        return Ok(OpenFile::new(
            Arc::new(DirFile {
                inode: path.dentry.inode.clone(),
            }),
            Some(path.clone()),
            flags,
        ));
    }
    if flags & O_DIRECTORY != 0 && !st.is_dir() {
        return Err(ENOTDIR);
    }
    let acc = flags & O_ACCMODE;
    if st.is_dir() && acc != 0 {
        return Err(EISDIR);
    }
    // Device nodes on a nodev mount do not open (may_open_dev).
    if matches!(st.mode & S_IFMT, S_IFCHR | S_IFBLK) && path.mnt.flags() & MS_NODEV != 0 {
        return Err(EACCES);
    }
    let mut mask = 0;
    if acc != O_WRONLY {
        mask |= 4;
    }
    if acc != 0 || flags & O_TRUNC != 0 {
        mask |= 2;
    }
    if !may_access(&st, &c.t.creds(), mask) {
        return Err(EACCES);
    }
    if mask & 2 != 0
        && path.mnt.readonly()
        && !matches!(st.mode & S_IFMT, S_IFCHR | S_IFIFO | S_IFSOCK)
    {
        return Err(EROFS);
    }
    let ops = path.dentry.inode.clone().open(flags)?;
    if flags & O_TRUNC != 0 && acc != 0 && st.is_reg() {
        inotify::path_event(path, IN_MODIFY);
    }
    Ok(OpenFile::new(ops, Some(path.clone()), flags))
}

fn openat(c: &Ctx, dirfd: u64, pathp: u64, flags: u32, mode: u32) -> SysResult {
    let path = c.cstr(pathp)?;
    let f = open_file(c, dirfd, &path, flags, mode)?;
    install(c, f, flags & O_CLOEXEC != 0)
}

pub fn open_file(
    c: &Ctx,
    dirfd: u64,
    path: &[u8],
    flags: u32,
    mode: u32,
) -> KResult<Arc<OpenFile>> {
    let f = open_file_inner(c, dirfd, path, flags, mode)?;
    if flags & O_PATH == 0 {
        notify(&f, IN_OPEN);
    }
    Ok(f)
}

fn open_file_inner(
    c: &Ctx,
    dirfd: u64,
    path: &[u8],
    flags: u32,
    mode: u32,
) -> KResult<Arc<OpenFile>> {
    if flags & O_TMPFILE == O_TMPFILE {
        return open_tmpfile(c, dirfd, path, flags, mode);
    }
    if flags & O_CREAT != 0 {
        let (parent, name) = c.lookup_parent(dirfd, path)?;
        if name == b"." || name == b".." || path.ends_with(b"/") {
            return Err(EISDIR);
        }
        return open_create(c, parent, name, flags, mode, 0);
    }
    let follow = flags & O_NOFOLLOW == 0;
    let p = c.lookup(dirfd, path, false, false)?;
    // /proc magic links open the file they stand for.
    if let Some(m) = p.dentry.inode.magic(c.t) {
        match m? {
            Magic::File(f) => {
                let acc = flags & O_ACCMODE;
                if (acc != O_WRONLY && !f.readable())
                    || (acc != 0 && !f.writable()) && f.path.is_none()
                {
                    return Err(EACCES);
                }
                return match &f.path {
                    Some(fp) => open_path(c, fp, flags),
                    None => Ok(OpenFile::new(f.ops.clone(), None, flags)),
                };
            }
            Magic::Path(fp) => return open_path(c, &fp, flags),
        }
    }
    let p = if p.dentry.inode.stat().is_lnk() {
        if !follow {
            if flags & O_PATH != 0 {
                return open_path(c, &p, flags);
            }
            return Err(ELOOP);
        }
        c.lookup(dirfd, path, true, false)?
    } else {
        p
    };
    open_path(c, &p, flags)
}

/// posix_fadvise: advice is only a hint; like Linux for files with no readahead to
/// tune (tmpfs), valid advice is accepted and changes nothing.
fn fadvise(c: &Ctx, fd: u64, len: i64, advice: u32) -> SysResult {
    let f = c.fd(fd)?;
    if f.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    if f.stat().mode & S_IFMT == S_IFIFO {
        return Err(ESPIPE);
    }
    if len < 0 || advice > 5 {
        return Err(EINVAL);
    }
    Ok(0)
}

fn close(c: &Ctx, fd: u64) -> SysResult {
    let f = c.t.files().remove(fd as i32).ok_or(EBADF)?;
    released(c, &f);
    Ok(0)
}

/// Closing any descriptor of a file drops the process's record locks on it; a
/// description's own locks go with its last reference.
fn released(c: &Ctx, f: &Arc<OpenFile>) {
    let locks = &c.t.kernel.locks;
    locks.release_process(lock::file_key(f), c.t.tgid());
    locks.file_closed();
    crate::vfs::mqueue::file_closed(f, c.t.tgid());
    crate::vfs::dnotify::file_closed(f, c.t.tgid());
}

fn close_range(c: &Ctx, first: u32, last: u32, flags: u32) -> SysResult {
    const UNSHARE: u32 = 2;
    const CLOEXEC: u32 = 4;
    if first > last || flags & !(CLOEXEC | UNSHARE) != 0 {
        return Err(EINVAL);
    }
    // CLOSE_RANGE_UNSHARE: first give the calling thread a private copy of its table
    // (as unshare(CLONE_FILES) would), then work on that copy.
    if flags & UNSHARE != 0 {
        let copy = Arc::new(c.t.files().fork());
        *c.t.files.lock() = copy;
    }
    let files = c.t.files();
    for (fd, _) in files.list() {
        let fd = fd as u32;
        if fd >= first && fd <= last {
            if flags & CLOEXEC != 0 {
                files.set_cloexec(fd as i32, true)?;
            } else if let Some(f) = files.remove(fd as i32) {
                released(c, &f);
            }
        }
    }
    Ok(0)
}

pub fn stat_bytes(st: &Stat) -> [u8; 144] {
    let mut b = [0u8; 144];
    let mut put = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(0, st.dev);
    put(8, st.ino);
    put(16, st.nlink);
    put(24, st.mode as u64 | ((st.uid as u64) << 32));
    put(32, st.gid as u64);
    put(40, st.rdev);
    put(48, st.size);
    put(56, st.blksize);
    put(64, st.blocks);
    put(72, st.atime.0 as u64);
    put(80, st.atime.1 as u64);
    put(88, st.mtime.0 as u64);
    put(96, st.mtime.1 as u64);
    put(104, st.ctime.0 as u64);
    put(112, st.ctime.1 as u64);
    b
}

fn fstat(c: &Ctx, fd: u64, buf: u64) -> SysResult {
    let f = c.fd(fd)?;
    let st = crate::kernel::ns::stat_for(f.stat(), &c.t.creds());
    c.t.mm().write(buf, &stat_bytes(&st))?;
    Ok(0)
}

fn fstatat(c: &Ctx, dirfd: u64, pathp: u64, buf: u64, flags: u64) -> SysResult {
    let st = c.stat_at(
        dirfd,
        pathp,
        flags,
        AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800,
    )?;
    let st = crate::kernel::ns::stat_for(st, &c.t.creds());
    c.t.mm().write(buf, &stat_bytes(&st))?;
    Ok(0)
}

fn statx(c: &Ctx, dirfd: u64, pathp: u64, flags: u64, _mask: u32, buf: u64) -> SysResult {
    let st = c.stat_at(
        dirfd,
        pathp,
        flags,
        AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800 | 0x6000,
    )?;
    let st = crate::kernel::ns::stat_for(st, &c.t.creds());
    let mut b = [0u8; 256];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(0, &0x7ffu32.to_le_bytes());
    put(4, &(st.blksize as u32).to_le_bytes());
    put(16, &(st.nlink as u32).to_le_bytes());
    put(20, &st.uid.to_le_bytes());
    put(24, &st.gid.to_le_bytes());
    put(28, &(st.mode as u16).to_le_bytes());
    put(32, &st.ino.to_le_bytes());
    put(40, &st.size.to_le_bytes());
    put(48, &st.blocks.to_le_bytes());
    for (off, t) in [(64, st.atime), (96, st.ctime), (112, st.mtime)] {
        put(off, &t.0.to_le_bytes());
        put(off + 8, &(t.1 as u32).to_le_bytes());
    }
    let (rmaj, rmin) = (
        (st.rdev >> 8) & 0xfff,
        (st.rdev & 0xff) | ((st.rdev >> 12) & !0xff),
    );
    put(128, &(rmaj as u32).to_le_bytes());
    put(132, &(rmin as u32).to_le_bytes());
    put(136, &((st.dev >> 8) as u32 & 0xfff).to_le_bytes());
    put(140, &(st.dev as u32 & 0xff).to_le_bytes());
    c.t.mm().write(buf, &b)?;
    Ok(0)
}

fn lseek(c: &Ctx, fd: u64, off: i64, whence: u32) -> SysResult {
    let f = c.fd(fd)?;
    if let Some(k) = f.ops.as_any().downcast_ref::<crate::kernel::klog::Kmsg>() {
        return k.seek(off, whence);
    }
    if !f.ops.seekable() {
        return Err(ESPIPE);
    }
    let mut pos = f.pos.lock();
    let base: i64 = match whence {
        0 => 0,
        1 => *pos as i64,
        2 => f.ops.size() as i64,
        3 | 4 => {
            // SEEK_DATA / SEEK_HOLE: the file finds its holes, or is all data.
            let size = f.ops.size() as i64;
            if off < 0 || off >= size {
                return Err(ENXIO);
            }
            let r = match f.ops.seek_data_hole(off as u64, whence == 3) {
                Some(r) => r?,
                None if whence == 3 => off as u64,
                None => size as u64,
            };
            *pos = r;
            return Ok(r);
        }
        _ => return Err(EINVAL),
    };
    let n = base.checked_add(off).ok_or(EOVERFLOW)?;
    if n < 0 {
        return Err(EINVAL);
    }
    *pos = n as u64;
    if n == 0 {
        *f.dir.lock() = None;
    }
    Ok(n as u64)
}

fn ioctl(c: &Ctx, fd: u64, cmd: u32, arg: u64) -> SysResult {
    const FIONBIO: u32 = 0x5421;
    const FIONCLEX: u32 = 0x5450;
    const FIOCLEX: u32 = 0x5451;
    const FIOASYNC: u32 = 0x5452;
    const FIONREAD: u32 = 0x541b;
    // Sockets' owner ioctls: FIOSETOWN, SIOCSPGRP, FIOGETOWN, SIOCGPGRP.
    const SETOWN: [u32; 2] = [0x8901, 0x8902];
    const GETOWN: [u32; 2] = [0x8903, 0x8904];
    let f = c.fd(fd)?;
    // An O_PATH descriptor takes no ioctls at all.
    if f.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    let set_flag = |flag: u32| -> SysResult {
        let v: i32 = c.t.mm().read_obj(arg)?;
        if v != 0 {
            f.flags.fetch_or(flag, std::sync::atomic::Ordering::Relaxed);
        } else {
            f.flags
                .fetch_and(!flag, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(0)
    };
    match cmd {
        FIONBIO => set_flag(O_NONBLOCK),
        FIOASYNC => {
            let on = c.t.mm().read_obj::<i32>(arg)? != 0;
            if on != (f.flags() & fasync::O_ASYNC != 0) {
                // Files without ->fasync refuse it here (F_SETFL just sets the flag).
                if !fasync::supported(&f) {
                    return Err(ENOTTY);
                }
                fasync::set(&f, c.t, fd as i32, on);
            }
            set_flag(fasync::O_ASYNC)
        }
        x if SETOWN.contains(&x) && is_socket(&f) => {
            let id: i32 = c.t.mm().read_obj(arg)?;
            setown(c, &f, id).map(|_| 0)
        }
        x if GETOWN.contains(&x) && is_socket(&f) => {
            let id = fasync::get_owner(&f, c.t);
            c.t.mm().write_obj(arg, &id).map(|_| 0)
        }
        FIOCLEX => c.t.files().set_cloexec(fd as i32, true).map(|_| 0),
        FIONCLEX => c.t.files().set_cloexec(fd as i32, false).map(|_| 0),
        // Regular files: the bytes between the offset and the end of file (negative
        // past the end, as Linux computes it); anything else asks the file.
        FIONREAD if f.ops.seekable() && f.stat().is_reg() => {
            let n = f.ops.size().wrapping_sub(*f.pos.lock()) as i32;
            c.t.mm().write_obj(arg, &n)?;
            Ok(0)
        }
        _ => f.ops.ioctl(&f, c.t, cmd, arg),
    }
}

fn faccessat(c: &Ctx, dirfd: u64, pathp: u64, mode: u32, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x200) != 0 {
        return Err(EINVAL);
    }
    if mode & !7 != 0 {
        return Err(EINVAL);
    }
    let path = c.cstr(pathp)?;
    let p = c.lookup(
        dirfd,
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    if mode == 0 {
        return Ok(0);
    }
    // access() checks with the real ids unless AT_EACCESS (0x200).
    let mut cr = c.t.creds();
    if flags & 0x200 == 0 {
        cr.fsuid = cr.uid;
        cr.fsgid = cr.gid;
        // ...and with the capabilities root would have (none for anyone else).
        cr.cap_effective = if cr.uid == 0 { cr.cap_permitted } else { 0 };
    }
    let st = p.dentry.inode.stat();
    if !may_access(&st, &cr, mode) {
        return Err(EACCES);
    }
    if mode & 2 != 0 && p.mnt.readonly() {
        return Err(EROFS);
    }
    Ok(0)
}

fn pipe2(c: &Ctx, fds: u64, flags: u32) -> SysResult {
    if flags & !(O_NONBLOCK | O_CLOEXEC | 0o40000) != 0 {
        return Err(EINVAL);
    }
    let (r, w) = pipe::pipe_pair(flags);
    let files = c.t.files();
    let lim = c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    let cloexec = flags & O_CLOEXEC != 0;
    let rfd = files.install(r, cloexec, 0, lim)?;
    let wfd = match files.install(w, cloexec, 0, lim) {
        Ok(x) => x,
        Err(e) => {
            files.remove(rfd);
            return Err(e);
        }
    };
    if let Err(e) = c.t.mm().write_obj(fds, &[rfd, wfd]) {
        files.remove(rfd);
        files.remove(wfd);
        return Err(e);
    }
    Ok(0)
}

fn dup(c: &Ctx, fd: u64) -> SysResult {
    let f = c.fd(fd)?;
    install(c, f, false)
}

fn dup3(c: &Ctx, old: u64, new: u64, flags: u32, is_dup2: bool) -> SysResult {
    let f = c.fd(old)?;
    if old == new {
        return if is_dup2 { Ok(new) } else { Err(EINVAL) };
    }
    if flags & !O_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    if new as i32 as u64 >= c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0 || (new as i32) < 0 {
        return Err(EBADF);
    }
    if let Some(old) =
        c.t.files()
            .install_at(new as i32, f, flags & O_CLOEXEC != 0)
    {
        released(c, &old);
    }
    Ok(new)
}

fn fcntl(c: &Ctx, fd: u64, cmd: u32, arg: u64) -> SysResult {
    let f = c.fd(fd)?;
    let files = c.t.files();
    let lim = c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    match cmd {
        0 | 1030 => {
            if arg >= lim {
                return Err(EINVAL);
            }
            Ok(files.install(f, cmd == 1030, arg as i32, lim)? as u64)
        }
        1 => Ok(files.cloexec(fd as i32)? as u64),
        2 => files.set_cloexec(fd as i32, arg & 1 != 0).map(|_| 0),
        3 => Ok(f.flags() as u64 & !(O_CLOEXEC as u64)),
        4 => {
            let settable = O_APPEND | O_NONBLOCK | fasync::O_ASYNC | 0o40000 | 0o1000000;
            let mut nf = (f.flags() & !settable) | (arg as u32 & settable);
            // A file that cannot send SIGIO does not keep O_ASYNC (as Linux 6.x).
            if !fasync::supported(&f) {
                nf &= !fasync::O_ASYNC;
            } else if (nf ^ f.flags()) & fasync::O_ASYNC != 0 {
                fasync::set(&f, c.t, fd as i32, nf & fasync::O_ASYNC != 0);
            }
            f.flags.store(nf, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        1031 | 1032 => {
            let p = f
                .ops
                .as_any()
                .downcast_ref::<pipe::PipeEnd>()
                .ok_or(EBADF)?;
            if cmd == 1032 {
                return Ok(p.capacity() as u64);
            }
            p.set_capacity(arg as usize, c.t.creds().has_cap(24))
                .map(|n| n as u64)
        }
        // F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG.
        8 => setown(c, &f, arg as i32).map(|_| 0),
        9 => Ok(fasync::get_owner(&f, c.t) as i64 as u64),
        10 => {
            if arg > 64 {
                return Err(EINVAL);
            }
            f.fown.lock().sig = arg as i32;
            Ok(0)
        }
        11 => Ok(f.fown.lock().sig as u64),
        // F_SETOWN_EX / F_GETOWN_EX: struct f_owner_ex { int type; pid_t pid; }.
        15 => {
            let [kind, id]: [i32; 2] = c.t.mm().read_obj(arg)?;
            if !(fasync::F_OWNER_TID..=fasync::F_OWNER_PGRP).contains(&kind) {
                return Err(EINVAL);
            }
            fasync::set_owner(&f, c.t, kind, id).map(|_| 0)
        }
        16 => {
            let o = *f.fown.lock();
            let id = if o.id != 0 && fasync::get_owner(&f, c.t) == 0 {
                0
            } else {
                o.id
            };
            c.t.mm().write_obj(arg, &[o.kind, id]).map(|_| 0)
        }
        5..=7 | 36..=38 => record_lock(c, &f, cmd, arg),
        1033 | 1034 => seals(&f, cmd, arg as u32),
        // F_NOTIFY (dnotify).
        1026 => crate::vfs::dnotify::set(&f, c.t, arg as u32).map(|_| 0),
        _ => Err(EINVAL),
    }
}

/// F_SETOWN: a process, or a process group when negative.
fn setown(c: &Ctx, f: &OpenFile, id: i32) -> KResult<()> {
    match id {
        i32::MIN => Err(EINVAL),
        x if x < 0 => fasync::set_owner(f, c.t, fasync::F_OWNER_PGRP, -x),
        x => fasync::set_owner(f, c.t, fasync::F_OWNER_PID, x),
    }
}

fn is_socket(f: &OpenFile) -> bool {
    f.inode().is_some() && f.stat().mode & S_IFMT == S_IFSOCK
}

fn truncate(c: &Ctx, pathp: u64, len: u64) -> SysResult {
    let path = c.cstr(pathp)?;
    let p = c.lookup(AT_FDCWD as u64, &path, true, false)?;
    let st = p.dentry.inode.stat();
    if st.is_dir() {
        return Err(EISDIR);
    }
    if (len as i64) < 0 {
        return Err(EINVAL);
    }
    if !may_access(&st, &c.t.creds(), 2) {
        return Err(EACCES);
    }
    p.dentry.inode.setattr(&SetAttr {
        size: Some(len),
        ..Default::default()
    })?;
    shrunk(c, &st, len);
    remove_privs(c, &p, &st);
    inotify::path_event(&p, IN_MODIFY);
    Ok(0)
}

/// After a truncate to `len` of the file `st` describes: unmap its pages past the new
/// end from every address space.
fn shrunk(c: &Ctx, st: &Stat, len: u64) {
    if len >= st.size {
        return;
    }
    let tasks: Vec<Arc<crate::kernel::Task>> =
        c.t.kernel.table.lock().tasks.values().cloned().collect();
    let mut mms: Vec<Arc<crate::mm::Mm>> = vec![];
    for t in tasks {
        let mm = t.mm();
        if !mms.iter().any(|m| Arc::ptr_eq(m, &mm)) {
            mms.push(mm);
        }
    }
    for mm in mms {
        mm.file_shrunk((st.dev, st.ino), len);
    }
}

fn ftruncate(c: &Ctx, fd: u64, len: u64) -> SysResult {
    let f = c.fd(fd)?;
    if (len as i64) < 0 || !f.writable() {
        return Err(EINVAL);
    }
    let st = f.stat();
    if !st.is_reg() {
        return Err(EINVAL);
    }
    f.ops.truncate(len)?;
    shrunk(c, &st, len);
    if let Some(p) = &f.path {
        remove_privs(c, p, &st);
    }
    notify(&f, IN_MODIFY);
    Ok(0)
}

fn fallocate(c: &Ctx, fd: u64, mode: u32, off: u64, len: u64) -> SysResult {
    const KEEP_SIZE: u32 = 1;
    const PUNCH_HOLE: u32 = 2;
    const COLLAPSE_RANGE: u32 = 8;
    const ZERO_RANGE: u32 = 0x10;
    const INSERT_RANGE: u32 = 0x20;
    const UNSHARE_RANGE: u32 = 0x40;
    const SUPPORTED: u32 = 0x7f;
    let f = c.fd(fd)?;
    // The checks of vfs_fallocate, in its order.
    let (off_i, len_i) = (off as i64, len as i64);
    if off_i < 0 || len_i <= 0 {
        return Err(EINVAL);
    }
    if mode & !SUPPORTED != 0 {
        return Err(EOPNOTSUPP);
    }
    if mode & (PUNCH_HOLE | ZERO_RANGE) == PUNCH_HOLE | ZERO_RANGE {
        return Err(EOPNOTSUPP);
    }
    if mode & PUNCH_HOLE != 0 && mode & KEEP_SIZE == 0 {
        return Err(EOPNOTSUPP);
    }
    if (mode & COLLAPSE_RANGE != 0 && mode & !COLLAPSE_RANGE != 0)
        || (mode & INSERT_RANGE != 0 && mode & !INSERT_RANGE != 0)
        || (mode & UNSHARE_RANGE != 0 && mode & !(UNSHARE_RANGE | KEEP_SIZE) != 0)
    {
        return Err(EINVAL);
    }
    if !f.writable() {
        return Err(EBADF);
    }
    let st = f.stat();
    match st.mode & S_IFMT {
        S_IFIFO => return Err(ESPIPE),
        S_IFDIR => return Err(EISDIR),
        S_IFREG | S_IFBLK => {}
        _ => return Err(ENODEV),
    }
    if off_i.checked_add(len_i).is_none() {
        return Err(EFBIG);
    }
    // Growing the file past RLIMIT_FSIZE fails as a write would.
    const RLIMIT_FSIZE: usize = 1;
    let limit = c.t.rlimit(RLIMIT_FSIZE).0;
    if mode & KEEP_SIZE == 0 && off + len > st.size && off + len > limit {
        c.t.send_signal(SigInfo::kernel(signal::SIGXFSZ));
        return Err(EFBIG);
    }
    f.ops.fallocate(mode, off, len)?;
    if let Some(p) = &f.path {
        remove_privs(c, p, &st);
    }
    notify(&f, IN_MODIFY);
    Ok(0)
}

fn getcwd(c: &Ctx, buf: u64, size: u64) -> SysResult {
    let fs = c.t.fsctx();
    let cwd = fs.cwd.lock().clone();
    let root = fs.root.lock().clone();
    if cwd.dentry.inode.stat().nlink == 0 {
        return Err(ENOENT);
    }
    let mut p = cwd.to_bytes(&root);
    p.push(0);
    if p.len() as u64 > size {
        return Err(ERANGE);
    }
    c.t.mm().write(buf, &p)?;
    Ok(p.len() as u64)
}

fn set_cwd(c: &Ctx, p: Path) -> SysResult {
    let st = p.dentry.inode.stat();
    if !st.is_dir() {
        return Err(ENOTDIR);
    }
    if !may_access(&st, &c.t.creds(), 1) {
        return Err(EACCES);
    }
    *c.t.fsctx().cwd.lock() = p;
    Ok(0)
}

fn chdir(c: &Ctx, pathp: u64) -> SysResult {
    let path = c.cstr(pathp)?;
    let p = c.lookup(AT_FDCWD as u64, &path, true, false)?;
    set_cwd(c, p)
}

fn fchdir(c: &Ctx, fd: u64) -> SysResult {
    let p = c.fd(fd)?.path.clone().ok_or(ENOTDIR)?;
    set_cwd(c, p)
}

fn parent_for_change(c: &Ctx, dirfd: u64, pathp: u64) -> KResult<(Path, Vec<u8>)> {
    let path = c.cstr(pathp)?;
    let (parent, name) = c.lookup_parent(dirfd, &path)?;
    let st = parent.dentry.inode.stat();
    if !may_access(&st, &c.t.creds(), 3) {
        return Err(EACCES);
    }
    if parent.mnt.readonly() {
        return Err(EROFS);
    }
    Ok((parent, name))
}

fn mkdirat(c: &Ctx, dirfd: u64, pathp: u64, mode: u32) -> SysResult {
    let (parent, name) = parent_for_change(c, dirfd, pathp)?;
    if name == b"." || name == b".." {
        return Err(EEXIST);
    }
    let umask = c.t.fsctx().umask.load(std::sync::atomic::Ordering::Relaxed);
    parent
        .dentry
        .inode
        .mkdir(&name, mode & !umask & 0o1777, &c.t.creds())?;
    inotify::dir_event(&parent.dentry.inode, IN_CREATE | IN_ISDIR, 0, &name);
    Ok(0)
}

fn mknodat(c: &Ctx, dirfd: u64, pathp: u64, mode: u32, dev: u64) -> SysResult {
    let (parent, name) = parent_for_change(c, dirfd, pathp)?;
    let umask = c.t.fsctx().umask.load(std::sync::atomic::Ordering::Relaxed);
    let kind = if mode & S_IFMT == 0 {
        S_IFREG
    } else {
        mode & S_IFMT
    };
    if kind == S_IFDIR {
        return Err(EINVAL);
    }
    if matches!(kind, S_IFCHR | S_IFBLK) && !c.t.creds().has_cap(crate::kernel::cap::MKNOD) {
        return Err(EPERM);
    }
    parent
        .dentry
        .inode
        .mknod(&name, kind | (mode & !umask & 0o7777), dev, &c.t.creds())?;
    inotify::dir_event(&parent.dentry.inode, IN_CREATE, 0, &name);
    Ok(0)
}

fn unlinkat(c: &Ctx, dirfd: u64, pathp: u64, flags: u64) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(EINVAL);
    }
    let (parent, name) = parent_for_change(c, dirfd, pathp)?;
    let dir = flags & AT_REMOVEDIR != 0;
    if dir && name == b"." {
        return Err(EINVAL);
    }
    if dir && name == b".." {
        return Err(ENOTEMPTY);
    }
    // Sticky directories: only the owner of the file or the directory may remove.
    check_sticky(c, &parent, &name)?;
    let target = c.with_walk(|w| w.walk(&parent, &name, false))?;
    if c.t
        .mounts()
        .list
        .read()
        .iter()
        .any(|m| m.parent.is_some() && Arc::ptr_eq(&m.root, &target.dentry))
    {
        return Err(EBUSY);
    }
    parent.dentry.inode.unlink(&name, dir)?;
    let victim = &target.dentry.inode;
    let isdir = is_dir_bit(victim);
    if !dir {
        inotify::inode_event(victim, IN_ATTRIB);
    }
    if victim.stat().nlink == 0 {
        // `target` holds the one reference of ours.
        inotify::inode_removed(victim, 1);
    }
    inotify::dir_event(&parent.dentry.inode, IN_DELETE | isdir, 0, &name);
    Ok(0)
}

/// Sticky directories (check_sticky): only the owner of the entry `name` or of the
/// directory, or a task with CAP_FOWNER, may remove or replace it. A missing entry is
/// left for the operation itself to report.
fn check_sticky(c: &Ctx, dir: &Path, name: &[u8]) -> KResult<()> {
    let dst = dir.dentry.inode.stat();
    if dst.mode & 0o1000 == 0 {
        return Ok(());
    }
    let Ok(victim) = dir.dentry.inode.lookup(name) else {
        return Ok(());
    };
    let cr = c.t.creds();
    let vuid = victim.stat().uid;
    if cr.fsuid != vuid && cr.fsuid != dst.uid && !cr.has_cap(crate::kernel::cap::FOWNER) {
        return Err(EPERM);
    }
    Ok(())
}

fn renameat(c: &Ctx, olddir: u64, oldp: u64, newdir: u64, newp: u64, flags: u32) -> SysResult {
    if flags & !7 != 0 || (flags & 1 != 0 && flags & 2 != 0) {
        return Err(EINVAL);
    }
    let (op, on) = parent_for_change(c, olddir, oldp)?;
    let (np, nn) = parent_for_change(c, newdir, newp)?;
    if on == b"." || on == b".." || nn == b"." || nn == b".." {
        return Err(if flags & 1 != 0 { EEXIST } else { EBUSY });
    }
    if op.mnt.id != np.mnt.id {
        return Err(EXDEV);
    }
    check_sticky(c, &op, &on)?;
    check_sticky(c, &np, &nn)?;
    let src = c.with_walk(|w| w.walk(&op, &on, false)).ok();
    let dst = c.with_walk(|w| w.walk(&np, &nn, false)).ok();
    op.dentry.inode.rename(&on, &np.dentry.inode, &nn, flags)?;
    if let Some(src) = src {
        let (src, dst) = (
            src.dentry.inode.clone(),
            dst.map(|d| d.dentry.inode.clone()),
        );
        if dst.as_ref().is_some_and(|d| Arc::ptr_eq(d, &src)) {
            return Ok(0);
        }
        let moved = |from: &Path, fname: &[u8], to: &Path, tname: &[u8], what: &Arc<dyn Inode>| {
            let isdir = is_dir_bit(what);
            let cookie = inotify::next_cookie();
            inotify::dir_event(&from.dentry.inode, IN_MOVED_FROM | isdir, cookie, fname);
            inotify::dir_event(&to.dentry.inode, IN_MOVED_TO | isdir, cookie, tname);
        };
        moved(&op, &on, &np, &nn, &src);
        if flags & 2 != 0 {
            inotify::inode_event(&src, IN_MOVE_SELF);
            if let Some(dst) = &dst {
                moved(&np, &nn, &op, &on, dst);
                inotify::inode_event(dst, IN_MOVE_SELF);
            }
        } else {
            if let Some(dst) = &dst {
                inotify::inode_event(dst, IN_ATTRIB);
            }
            inotify::inode_event(&src, IN_MOVE_SELF);
            if let Some(dst) = dst.filter(|d| d.stat().nlink == 0) {
                inotify::inode_removed(&dst, 1);
            }
        }
    }
    Ok(0)
}

fn linkat(c: &Ctx, olddir: u64, oldp: u64, newdir: u64, newp: u64, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let old = c.cstr(oldp)?;
    let target = c.lookup(
        olddir,
        &old,
        flags & AT_SYMLINK_FOLLOW != 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    if target.dentry.inode.stat().is_dir() {
        return Err(EPERM);
    }
    let (np, nn) = parent_for_change(c, newdir, newp)?;
    if np.mnt.id != target.mnt.id {
        return Err(EXDEV);
    }
    np.dentry.inode.link(&nn, &target.dentry.inode)?;
    inotify::inode_event(&target.dentry.inode, IN_ATTRIB);
    inotify::dir_event(&np.dentry.inode, IN_CREATE, 0, &nn);
    Ok(0)
}

fn symlinkat(c: &Ctx, targetp: u64, dirfd: u64, pathp: u64) -> SysResult {
    let target = c.cstr(targetp)?;
    if target.is_empty() {
        return Err(ENOENT);
    }
    let (parent, name) = parent_for_change(c, dirfd, pathp)?;
    parent.dentry.inode.symlink(&name, &target, &c.t.creds())?;
    inotify::dir_event(&parent.dentry.inode, IN_CREATE, 0, &name);
    Ok(0)
}

fn readlinkat(c: &Ctx, dirfd: u64, pathp: u64, buf: u64, size: u64) -> SysResult {
    if (size as i64) <= 0 {
        return Err(EINVAL);
    }
    let path = c.cstr(pathp)?;
    let p = c.lookup(dirfd, &path, false, true)?;
    let inode = &p.dentry.inode;
    let target = match inode.magic(c.t) {
        Some(_) | None if !inode.stat().is_lnk() => return Err(EINVAL),
        _ => inode.readlink()?,
    };
    let n = target.len().min(size as usize);
    c.t.mm().write(buf, &target[..n])?;
    Ok(n as u64)
}

fn chmod_path(c: &Ctx, p: &Path, mode: u32) -> SysResult {
    let st = p.dentry.inode.stat();
    let cr = c.t.creds();
    if cr.fsuid != st.uid && !cr.has_cap(crate::kernel::cap::FOWNER) {
        return Err(EPERM);
    }
    if p.mnt.readonly() {
        return Err(EROFS);
    }
    let mut mode = mode & 0o7777;
    if st.gid != cr.fsgid && !cr.groups.contains(&st.gid) && !cr.has_cap(crate::kernel::cap::FSETID)
    {
        mode &= !0o2000;
    }
    p.dentry.inode.setattr(&SetAttr {
        mode: Some(mode),
        ..Default::default()
    })?;
    inotify::path_event(p, IN_ATTRIB);
    Ok(0)
}

fn fchmodat(c: &Ctx, dirfd: u64, pathp: u64, mode: u32) -> SysResult {
    let path = c.cstr(pathp)?;
    let p = c.lookup(dirfd, &path, true, false)?;
    chmod_path(c, &p, mode)
}

fn fchmod(c: &Ctx, fd: u64, mode: u32) -> SysResult {
    let p = c.fd(fd)?.path.clone().ok_or(EINVAL)?;
    chmod_path(c, &p, mode)
}

fn chown_path(c: &Ctx, p: &Path, uid: u32, gid: u32) -> SysResult {
    let st = p.dentry.inode.stat();
    let cr = c.t.creds();
    // The ids are the caller's user namespace's (EINVAL when it does not map them).
    let uid = if uid == u32::MAX {
        None
    } else {
        Some(cr.uid_in(uid)?)
    };
    let gid = if gid == u32::MAX {
        None
    } else {
        Some(cr.gid_in(gid)?)
    };
    // chown_ok/chgrp_ok: the owner may "change" the owner to itself and the group to
    // one of its groups; anything else needs CAP_CHOWN.
    let owner = cr.fsuid == st.uid;
    let may_chown = cr.capable_wrt(crate::kernel::cap::CHOWN, st.uid, st.gid);
    if uid.is_some_and(|u| !(owner && u == st.uid)) && !may_chown {
        return Err(EPERM);
    }
    if gid.is_some_and(|g| !(owner && (g == st.gid || g == cr.fsgid || cr.groups.contains(&g))))
        && !may_chown
    {
        return Err(EPERM);
    }
    let mut a = SetAttr {
        uid,
        gid,
        ..Default::default()
    };
    if !st.is_dir() && st.mode & 0o6000 != 0 && (uid.is_some() || gid.is_some()) {
        a.mode = Some(st.mode & 0o7777 & !0o6000);
    }
    p.dentry.inode.setattr(&a)?;
    if uid.is_some() || gid.is_some() {
        inotify::path_event(p, IN_ATTRIB);
    }
    Ok(0)
}

fn fchownat(c: &Ctx, dirfd: u64, pathp: u64, uid: u32, gid: u32, flags: u64) -> SysResult {
    let p = c.lookup_at(dirfd, pathp, flags, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)?;
    chown_path(c, &p, uid, gid)
}

fn fchown(c: &Ctx, fd: u64, uid: u32, gid: u32) -> SysResult {
    let p = c.fd(fd)?.path.clone().ok_or(EINVAL)?;
    chown_path(c, &p, uid, gid)
}

fn utimensat(c: &Ctx, dirfd: u64, pathp: u64, times: u64, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let p = if pathp == 0 {
        c.fd(dirfd)?.path.clone().ok_or(EBADF)?
    } else {
        let path = c.cstr(pathp)?;
        c.lookup(
            dirfd,
            &path,
            flags & AT_SYMLINK_NOFOLLOW == 0,
            flags & AT_EMPTY_PATH != 0,
        )?
    };
    let (at, mt) = if times == 0 {
        ((0, (1 << 30) - 1), (0, (1 << 30) - 1))
    } else {
        let t: [i64; 4] = c.t.mm().read_obj(times)?;
        for ns in [t[1], t[3]] {
            if !(0..1_000_000_000).contains(&ns) && ns != (1 << 30) - 1 && ns != (1 << 30) - 2 {
                return Err(EINVAL);
            }
        }
        ((t[0], t[1]), (t[2], t[3]))
    };
    let st = p.dentry.inode.stat();
    let cr = c.t.creds();
    let now_only = at.1 == (1 << 30) - 1 && mt.1 == (1 << 30) - 1;
    if cr.fsuid != st.uid
        && !cr.has_cap(crate::kernel::cap::FOWNER)
        && (!now_only || !may_access(&st, &cr, 2))
    {
        return Err(if now_only { EACCES } else { EPERM });
    }
    p.dentry.inode.setattr(&SetAttr {
        atime: Some(at),
        mtime: Some(mt),
        ..Default::default()
    })?;
    // Both times is a utime call (IN_ATTRIB); one alone reads as an access or change.
    const OMIT: i64 = (1 << 30) - 2;
    let mask = match (at.1 != OMIT, mt.1 != OMIT) {
        (true, true) => IN_ATTRIB,
        (true, false) => IN_ACCESS,
        (false, true) => IN_MODIFY,
        (false, false) => 0,
    };
    if mask != 0 {
        inotify::path_event(&p, mask);
    }
    Ok(0)
}

fn statfs(c: &Ctx, pathp: Option<u64>, fd: Option<u64>, buf: u64) -> SysResult {
    const PIPEFS_MAGIC: u64 = 0x5049_5045;
    const SOCKFS_MAGIC: u64 = 0x534f_434b;
    const ANON_INODE_FS_MAGIC: u64 = 0x0904_1934;
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    let p = match (pathp, fd) {
        (Some(pp), _) => {
            let path = c.cstr(pp)?;
            c.lookup(AT_FDCWD as u64, &path, true, false)?
        }
        (_, Some(fd)) => {
            let f = c.fd(fd)?;
            match f.path.clone() {
                Some(p) => p,
                None => {
                    // Anonymous-inode files (eventfd, epoll, ...) are on anon_inodefs.
                    let mut v = [0u64; 15];
                    v[0] = ANON_INODE_FS_MAGIC;
                    v[1] = 4096;
                    v[8] = 255;
                    v[9] = 4096;
                    c.t.mm().write_obj(buf, &v)?;
                    return Ok(0);
                }
            }
        }
        _ => return Err(EINVAL),
    };
    let magic: u64 = match p.mnt.fstype.as_str() {
        "proc" => 0x9fa0,
        "tmpfs" => TMPFS_MAGIC,
        "sysfs" => 0x6265_6572,
        "devpts" => 0x1cd1,
        "cgroup2" => 0x6367_7270,
        "mqueue" => crate::vfs::mqueue::MQUEUE_MAGIC,
        "pipefs" => PIPEFS_MAGIC,
        "sockfs" => SOCKFS_MAGIC,
        _ => 0x0102_1997,
    };
    // In-memory file systems count the pages and inodes their files hold, against
    // their limits (tmpfs size= and nr_inodes=); an overlay adds its pages to what the
    // host file system under it uses, a bind mount is the host's.
    let any = p.dentry.inode.as_any();
    let mem = any.downcast_ref::<memfs::Node>();
    let (used, max_pages, inodes, max_inodes) = mem
        .map(|n| {
            let s = n.fs_space();
            let l = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            (l(&s.pages), l(&s.max_pages), l(&s.inodes), l(&s.max_inodes))
        })
        .unwrap_or((0, 0, 0, 0));
    let host = mem.and_then(|n| n.lower_statfs()).or_else(|| {
        any.downcast_ref::<crate::vfs::goferfs::GNode>()
            .and_then(|g| g.host_statfs())
    });
    let mut v = [0u64; 15];
    v[0] = magic;
    v[1] = 4096;
    // pipefs and sockfs count nothing (simple_statfs).
    if let Some(h) = host {
        let scale = |b: u64| b.saturating_mul(h.bsize.max(1) as u64) / 4096;
        v[2] = scale(h.blocks);
        v[3] = scale(h.bfree).saturating_sub(used);
        v[4] = scale(h.bavail).saturating_sub(used);
        v[5] = h.files;
        v[6] = h.ffree;
    } else if magic != PIPEFS_MAGIC && magic != SOCKFS_MAGIC {
        let blocks: u64 = if max_pages != 0 { max_pages } else { 1 << 24 };
        let free = blocks.saturating_sub(used);
        v[2] = blocks;
        v[3] = free;
        v[4] = free;
        let files: u64 = if max_inodes != 0 { max_inodes } else { 1 << 20 };
        v[5] = files;
        v[6] = if max_inodes != 0 {
            files.saturating_sub(inodes)
        } else {
            1 << 19
        };
    }
    v[8] = 255;
    v[9] = 4096;
    v[10] = if p.mnt.readonly() { 1 } else { 0 };
    c.t.mm().write_obj(buf, &v)?;
    Ok(0)
}

fn getdents64(c: &Ctx, fd: u64, buf: u64, count: u64) -> SysResult {
    let f = c.fd(fd)?;
    let inode = f.inode().cloned().ok_or(ENOTDIR)?;
    if !inode.stat().is_dir() {
        return Err(ENOTDIR);
    }
    let mut dir = f.dir.lock();
    let mut pos = f.pos.lock();
    if dir.is_none() || *pos == 0 {
        *dir = Some((inode.readdir()?, 0));
    }
    let (ents, _) = dir.as_ref().expect("listing");
    let mut out = vec![];
    let mut i = *pos as usize;
    while i < ents.len() {
        let e = &ents[i];
        let reclen = (19 + e.name.len() + 1 + 7) & !7;
        if out.len() + reclen > count as usize {
            break;
        }
        let start = out.len();
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&((i + 1) as u64).to_le_bytes());
        out.extend_from_slice(&(reclen as u16).to_le_bytes());
        out.push(e.kind);
        out.extend_from_slice(&e.name);
        out.resize(start + reclen, 0);
        i += 1;
    }
    if out.is_empty() && i < ents.len() {
        return Err(EINVAL);
    }
    c.t.mm().write(buf, &out)?;
    *pos = i as u64;
    drop(pos);
    notify(&f, IN_ACCESS);
    Ok(out.len() as u64)
}

// ---- poll / select ----

/// Wait until one of `fds` (fd, requested events) is ready. Fills revents.
pub fn do_poll(c: &Ctx, fds: &mut [(i32, u32, u32)], timeout: Option<Duration>) -> KResult<usize> {
    let deadline = timeout.map(|d| Instant::now() + d);
    let files = c.t.files();
    let opened: Vec<Option<Arc<OpenFile>>> = fds
        .iter()
        .map(|(fd, _, _)| if *fd < 0 { None } else { files.get(*fd).ok() })
        .collect();
    let scan = |fds: &mut [(i32, u32, u32)]| -> usize {
        let mut n = 0;
        for (i, (fd, ev, rev)) in fds.iter_mut().enumerate() {
            *rev = 0;
            if *fd < 0 {
                continue;
            }
            match &opened[i] {
                None => *rev = POLLNVAL,
                Some(f) => *rev = f.ops.poll() & (*ev | POLLERR | POLLHUP),
            }
            if *rev != 0 {
                n += 1;
            }
        }
        n
    };
    let has_host = opened.iter().flatten().any(|f| f.ops.host_fd().is_some());
    let queues: Vec<&crate::waitq::WaitQueue> = opened
        .iter()
        .flatten()
        .filter_map(|f| f.ops.wait_queue())
        .collect();
    loop {
        let n = scan(fds);
        if n > 0 || timeout == Some(Duration::ZERO) {
            return Ok(n);
        }
        let slice = if has_host {
            Some(Instant::now() + Duration::from_millis(10))
        } else {
            None
        };
        let d = match (deadline, slice) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let r = c.t.block_on(&queues, d, || {
            let mut tmp: Vec<(i32, u32, u32)> = fds.to_vec();
            if scan(&mut tmp) > 0 {
                Some(Ok(()))
            } else {
                None
            }
        });
        match r {
            Ok(()) => continue,
            Err(e) if e == ETIMEDOUT => {
                if deadline.is_some_and(|dl| Instant::now() >= dl) {
                    return Ok(scan(fds));
                }
            }
            Err(e) => return Err(if e == ERESTARTSYS { ERESTARTNOHAND } else { e }),
        }
    }
}

fn poll(c: &Ctx, fdsp: u64, n: u64, timeout: Option<Duration>) -> SysResult {
    if n > c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0.max(1024) {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let mut fds = vec![];
    for i in 0..n {
        let v: [u8; 8] = mm.read_obj(fdsp + i * 8)?;
        fds.push((
            i32::from_le_bytes(v[0..4].try_into().expect("4")),
            u16::from_le_bytes([v[4], v[5]]) as u32,
            0,
        ));
    }
    let r = do_poll(c, &mut fds, timeout)?;
    for (i, (_, _, rev)) in fds.iter().enumerate() {
        mm.write(fdsp + i as u64 * 8 + 6, &(*rev as u16).to_le_bytes())?;
    }
    Ok(r as u64)
}

fn read_timespec(c: &Ctx, p: u64) -> KResult<Option<Duration>> {
    if p == 0 {
        return Ok(None);
    }
    let t: [i64; 2] = c.t.mm().read_obj(p)?;
    if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
        return Err(EINVAL);
    }
    Ok(Some(Duration::new(t[0] as u64, t[1] as u32)))
}

fn with_sigmask<R>(c: &Ctx, maskp: u64, f: impl FnOnce() -> KResult<R>) -> KResult<R> {
    if maskp == 0 {
        return f();
    }
    let m: u64 = c.t.mm().read_obj(maskp)?;
    let old = c.t.sigmask.swap(
        m & !signal::UNBLOCKABLE,
        std::sync::atomic::Ordering::AcqRel,
    );
    let r = f();
    match &r {
        Err(e) if e.is_restart() || *e == EINTR => *c.t.saved_mask.lock() = Some(old),
        _ => c.t.sigmask.store(old, std::sync::atomic::Ordering::Release),
    }
    r
}

fn ppoll(c: &Ctx, fdsp: u64, n: u64, tsp: u64, maskp: u64) -> SysResult {
    let timeout = read_timespec(c, tsp)?;
    with_sigmask(c, maskp, || poll(c, fdsp, n, timeout)).map_err(|e| {
        if e == ERESTARTNOHAND {
            EINTR
        } else {
            e
        }
    })
}

fn select(c: &Ctx, n: u64, r: u64, w: u64, e: u64, tp: u64, is_p: bool) -> SysResult {
    if n > 1024 * 64 {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let words = n.div_ceil(64) as usize;
    let get = |p: u64| -> KResult<Vec<u64>> {
        if p == 0 {
            return Ok(vec![0; words]);
        }
        let mut v = vec![0u64; words];
        for (i, x) in v.iter_mut().enumerate() {
            *x = mm.read_u64(p + i as u64 * 8)?;
        }
        Ok(v)
    };
    let (rs, ws, es) = (get(r)?, get(w)?, get(e)?);
    let mut fds = vec![];
    for fd in 0..n as usize {
        let bit = |s: &Vec<u64>| s[fd / 64] >> (fd % 64) & 1 != 0;
        let mut ev = 0;
        if bit(&rs) {
            ev |= POLLIN;
        }
        if bit(&ws) {
            ev |= POLLOUT;
        }
        if bit(&es) {
            ev |= POLLPRI;
        }
        if ev != 0 {
            if c.t.files().get(fd as i32).is_err() {
                return Err(EBADF);
            }
            fds.push((fd as i32, ev, 0));
        }
    }
    let timeout = if is_p {
        read_timespec(c, tp)?
    } else if tp != 0 {
        let t: [i64; 2] = mm.read_obj(tp)?;
        if t[0] < 0 || t[1] < 0 {
            return Err(EINVAL);
        }
        Some(Duration::from_secs(t[0] as u64) + Duration::from_micros(t[1] as u64))
    } else {
        None
    };
    let started = Instant::now();
    let mut run = || do_poll(c, &mut fds, timeout);
    let res = if is_p {
        let maskp = if c.arg(5) != 0 {
            mm.read_u64(c.arg(5))?
        } else {
            0
        };
        with_sigmask(c, maskp, run).map_err(|e| if e == ERESTARTNOHAND { EINTR } else { e })
    } else {
        run()
    };
    // Linux writes the time not slept back into the timeout (both select and pselect).
    if let (Some(t), true) = (timeout, tp != 0) {
        let left = t.saturating_sub(started.elapsed());
        let v = if is_p {
            [left.as_secs() as i64, left.subsec_nanos() as i64]
        } else {
            [left.as_secs() as i64, left.subsec_micros() as i64]
        };
        mm.write_obj(tp, &v)?;
    }
    res?;
    let (mut ro, mut wo, mut eo) = (vec![0u64; words], vec![0u64; words], vec![0u64; words]);
    let mut count = 0;
    for (fd, ev, rev) in &fds {
        let (i, b) = (*fd as usize / 64, 1u64 << (*fd as usize % 64));
        if ev & POLLIN != 0 && rev & (POLLIN | POLLHUP | POLLERR) != 0 {
            ro[i] |= b;
            count += 1;
        }
        if ev & POLLOUT != 0 && rev & (POLLOUT | POLLERR) != 0 {
            wo[i] |= b;
            count += 1;
        }
        if ev & POLLPRI != 0 && rev & POLLPRI != 0 {
            eo[i] |= b;
            count += 1;
        }
    }
    for (p, v) in [(r, ro), (w, wo), (e, eo)] {
        if p != 0 {
            for (i, x) in v.iter().enumerate() {
                mm.write_obj(p + i as u64 * 8, x)?;
            }
        }
    }
    Ok(count)
}

// ---- advisory locks ----

fn record_lock(c: &Ctx, f: &Arc<OpenFile>, cmd: u32, arg: u64) -> SysResult {
    use lock::{Kind, Owner, Space};
    let ofd = cmd >= 36;
    let mm = c.t.mm();
    let b: [u8; 32] = mm.read_obj(arg)?;
    let typ = i16::from_le_bytes([b[0], b[1]]);
    let whence = i16::from_le_bytes([b[2], b[3]]);
    let l_start = i64::from_le_bytes(b[8..16].try_into().expect("8"));
    let l_len = i64::from_le_bytes(b[16..24].try_into().expect("8"));
    let l_pid = i32::from_le_bytes(b[24..28].try_into().expect("4"));
    if ofd && l_pid != 0 {
        return Err(EINVAL);
    }
    let base: i64 = match whence {
        0 => 0,
        1 => *f.pos.lock() as i64,
        2 => f.ops.size() as i64,
        _ => return Err(EINVAL),
    };
    let mut start = base.checked_add(l_start).ok_or(EOVERFLOW)?;
    let mut end: i64 = if l_len == 0 {
        i64::MAX
    } else {
        start.checked_add(l_len).ok_or(EOVERFLOW)?
    };
    if l_len < 0 {
        (start, end) = (end, start);
    }
    if start < 0 {
        return Err(EINVAL);
    }
    let (start, end) = (
        start as u64,
        if end == i64::MAX {
            u64::MAX
        } else {
            end as u64
        },
    );
    let kind = match typ {
        0 => Some(Kind::Read),
        1 => Some(Kind::Write),
        2 => None,
        _ => return Err(EINVAL),
    };
    let owner = if ofd {
        Owner::File(Arc::downgrade(f))
    } else {
        Owner::Process(c.t.tgid())
    };
    let key = lock::file_key(f);
    let locks = &c.t.kernel.locks;
    if cmd == 5 || cmd == 36 {
        let Some(k) = kind else { return Err(EINVAL) };
        let mut out = b;
        match locks.conflict(key, Space::Record, &owner, start, end, k) {
            Some(l) => {
                out[0..2]
                    .copy_from_slice(&(if l.kind == Kind::Read { 0i16 } else { 1 }).to_le_bytes());
                out[2..4].copy_from_slice(&0i16.to_le_bytes());
                out[8..16].copy_from_slice(&(l.start as i64).to_le_bytes());
                let len = if l.end == u64::MAX {
                    0
                } else {
                    (l.end - l.start) as i64
                };
                out[16..24].copy_from_slice(&len.to_le_bytes());
                out[24..28].copy_from_slice(&l.owner.pid().to_le_bytes());
            }
            None => out[0..2].copy_from_slice(&2i16.to_le_bytes()),
        }
        mm.write_obj(arg, &out)?;
        return Ok(0);
    }
    match kind {
        Some(Kind::Read) if !f.readable() => return Err(EBADF),
        Some(Kind::Write) if !f.writable() => return Err(EBADF),
        _ => {}
    }
    if cmd == 6 || cmd == 37 {
        return locks
            .set(key, Space::Record, owner, start, end, kind)
            .map(|_| 0);
    }
    c.t.block_on(&[&locks.wq], None, || {
        match locks.set(key, Space::Record, owner.clone(), start, end, kind) {
            Err(e) if e == EAGAIN => None,
            r => Some(r.map(|_| 0)),
        }
    })
    .map_err(|e| if e == ERESTARTSYS { EINTR } else { e })
}

fn flock(c: &Ctx, fd: u64, op: u32) -> SysResult {
    use lock::{Kind, Owner, Space};
    let f = c.fd(fd)?;
    let nb = op & 4 != 0;
    let kind = match op & !4 {
        1 => Some(Kind::Read),
        2 => Some(Kind::Write),
        8 => None,
        _ => return Err(EINVAL),
    };
    let owner = Owner::File(Arc::downgrade(&f));
    let key = lock::file_key(&f);
    let locks = &c.t.kernel.locks;
    let attempt = || locks.set(key, Space::Flock, owner.clone(), 0, u64::MAX, kind);
    if nb || kind.is_none() {
        return attempt().map(|_| 0);
    }
    c.t.block_on(&[&locks.wq], None, || match attempt() {
        Err(e) if e == EAGAIN => None,
        r => Some(r.map(|_| 0)),
    })
    .map_err(|e| if e == ERESTARTSYS { EINTR } else { e })
}

// ---- memfd ----

fn memfd_create(c: &Ctx, namep: u64, flags: u32) -> SysResult {
    const MFD_CLOEXEC: u32 = 1;
    const MFD_ALLOW_SEALING: u32 = 2;
    const MFD_NOEXEC_SEAL: u32 = 8;
    const MFD_EXEC: u32 = 0x10;
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC) != 0 {
        return Err(EINVAL);
    }
    let name =
        c.t.mm()
            .read_cstr(namep, 249)
            .map_err(|e| if e == ENAMETOOLONG { EINVAL } else { e })?;
    if name.len() > 249 {
        return Err(EINVAL);
    }
    let k = &c.t.kernel;
    let fs = k.memfd_fs();
    let cr = c.t.creds();
    let mode = if flags & MFD_NOEXEC_SEAL != 0 {
        0o666
    } else {
        0o777
    };
    let node = fs.anon_file(mode, cr.fsuid, cr.fsgid);
    let data = node.file_data().cloned().ok_or(EIO)?;
    let mut seals = if flags & MFD_ALLOW_SEALING != 0 {
        0
    } else {
        memfs::F_SEAL_SEAL
    };
    if flags & MFD_NOEXEC_SEAL != 0 {
        seals &= !memfs::F_SEAL_SEAL;
    }
    data.seals
        .store(seals, std::sync::atomic::Ordering::Release);
    let mut shown = b"memfd:".to_vec();
    shown.extend_from_slice(&name);
    shown.extend_from_slice(b" (deleted)");
    let mnt = k.memfd_mount();
    let dentry = Arc::new(Dentry {
        name: shown,
        parent: Some(mnt.root.clone()),
        inode: node.clone(),
    });
    let ops = node.open(O_RDWR)?;
    let f = OpenFile::new(ops, Some(Path { mnt, dentry }), O_RDWR | 0o100000);
    install(c, f, flags & MFD_CLOEXEC != 0)
}

fn seals(f: &Arc<OpenFile>, cmd: u32, add: u32) -> SysResult {
    let Some(nf) = f.ops.as_any().downcast_ref::<memfs::NodeFile>() else {
        return Err(EINVAL);
    };
    let data = nf.data();
    let cur = data.seals.load(std::sync::atomic::Ordering::Acquire);
    if cmd == 1034 {
        return Ok(cur as u64);
    }
    if add & !0x1f != 0 {
        return Err(EINVAL);
    }
    if !f.writable() {
        return Err(EPERM);
    }
    if cur & memfs::F_SEAL_SEAL != 0 {
        return Err(EPERM);
    }
    data.seals
        .store(cur | add, std::sync::atomic::Ordering::Release);
    Ok(0)
}

/// open(O_CREAT) of `name` in `parent`: open what is there, or create it. A dangling
/// symlink as the last component creates its target (relative to the link's directory).
fn open_create(
    c: &Ctx,
    parent: Path,
    name: Vec<u8>,
    flags: u32,
    mode: u32,
    depth: u32,
) -> KResult<Arc<OpenFile>> {
    let follow = flags & O_NOFOLLOW == 0 && flags & O_EXCL == 0;
    match c.with_walk(|w| w.walk(&parent, &name, follow)) {
        Ok(p) => {
            if flags & O_EXCL != 0 {
                return Err(EEXIST);
            }
            if p.dentry.inode.stat().is_lnk() {
                return Err(ELOOP);
            }
            return open_path(c, &p, flags);
        }
        Err(e) if e == ENOENT => {}
        Err(e) => return Err(e),
    }
    if let Ok(l) = c.with_walk(|w| w.walk(&parent, &name, false)) {
        if l.dentry.inode.stat().is_lnk() {
            if flags & O_EXCL != 0 {
                return Err(EEXIST);
            }
            if flags & O_NOFOLLOW != 0 {
                return Err(ELOOP);
            }
            if depth >= MAX_SYMLINKS {
                return Err(ELOOP);
            }
            let target = l.dentry.inode.readlink()?;
            let (p2, n2) = c.with_walk(|w| w.walk_parent(&parent, &target))?;
            return open_create(c, p2, n2, flags, mode, depth + 1);
        }
    }
    // As Linux's lookup_open: a read-only mount refuses before the permission check.
    if parent.mnt.readonly() {
        return Err(EROFS);
    }
    let pst = parent.dentry.inode.stat();
    if !may_access(&pst, &c.t.creds(), 3) {
        return Err(EACCES);
    }
    let umask = c.t.fsctx().umask.load(std::sync::atomic::Ordering::Relaxed);
    let inode = parent
        .dentry
        .inode
        .create(&name, mode & !umask & 0o7777, &c.t.creds())?;
    inotify::dir_event(&parent.dentry.inode, IN_CREATE, 0, &name);
    let p = Path {
        mnt: parent.mnt.clone(),
        dentry: Arc::new(Dentry {
            name,
            parent: Some(parent.dentry.clone()),
            inode: inode.clone(),
        }),
    };
    let ops = inode.open(flags & !O_TRUNC)?;
    Ok(OpenFile::new(ops, Some(p), flags))
}

// ---- in-kernel copies ----

/// Move up to `len` bytes from `inf` (at `in_off`, or its file position) to `outf` (at
/// `out_off`, or its position). Stops at EOF or a short write.
fn copy_between(
    c: &Ctx,
    inf: &OpenFile,
    in_off: Option<u64>,
    outf: &OpenFile,
    out_off: Option<u64>,
    len: usize,
) -> KResult<(usize, u64, u64)> {
    let mut done = 0usize;
    let (mut io, mut oo) = (in_off.unwrap_or(0), out_off.unwrap_or(0));
    while done < len {
        let n = (len - done).min(CHUNK);
        let mut buf = vec![0u8; n];
        let got = match do_read(c, inf, &mut buf, in_off.map(|_| io)) {
            Ok(g) => g,
            Err(e) if done > 0 && (e == EAGAIN || e.is_restart()) => break,
            Err(e) => return Err(e),
        };
        if got == 0 {
            break;
        }
        let put = match do_write(c, outf, &buf[..got], out_off.map(|_| oo)) {
            Ok(p) => p,
            Err(e) if done > 0 && (e == EAGAIN || e.is_restart()) => break,
            Err(e) => return Err(e),
        };
        io += got as u64;
        oo += put as u64;
        done += put;
        if put < got || got < n || !inf.ops.seekable() {
            break;
        }
    }
    Ok((done, io, oo))
}

fn read_off(c: &Ctx, p: u64) -> KResult<Option<u64>> {
    if p == 0 {
        return Ok(None);
    }
    let v: i64 = c.t.mm().read_obj(p)?;
    if v < 0 {
        return Err(EINVAL);
    }
    Ok(Some(v as u64))
}

fn sendfile(c: &Ctx, out_fd: u64, in_fd: u64, offp: u64, count: u64) -> SysResult {
    let inf = c.fd(in_fd)?;
    let outf = c.fd(out_fd)?;
    if !inf.readable() || !outf.writable() {
        return Err(EBADF);
    }
    if !inf.ops.seekable() || outf.flags() & O_APPEND != 0 {
        return Err(EINVAL);
    }
    let off = read_off(c, offp)?;
    let (n, io, _) = copy_between(c, &inf, off, &outf, None, count.min(0x7fff_f000) as usize)?;
    if offp != 0 {
        c.t.mm().write_obj(offp, &(io as i64))?;
    }
    Ok(n as u64)
}

fn copy_file_range(
    c: &Ctx,
    in_fd: u64,
    in_offp: u64,
    out_fd: u64,
    out_offp: u64,
    len: u64,
    flags: u64,
) -> SysResult {
    if flags != 0 {
        return Err(EINVAL);
    }
    let inf = c.fd(in_fd)?;
    let outf = c.fd(out_fd)?;
    if !inf.readable() || !outf.writable() || outf.flags() & O_APPEND != 0 {
        return Err(EBADF);
    }
    let (ist, ost) = (inf.stat(), outf.stat());
    if ist.is_dir() || ost.is_dir() {
        return Err(EISDIR);
    }
    if !ist.is_reg() || !ost.is_reg() {
        return Err(EINVAL);
    }
    let (io, oo) = (read_off(c, in_offp)?, read_off(c, out_offp)?);
    // Same file, overlapping ranges: EINVAL.
    if lock::file_key(&inf) == lock::file_key(&outf) {
        let a = io.unwrap_or(*inf.pos.lock());
        let b = oo.unwrap_or(*outf.pos.lock());
        if a < b + len && b < a + len {
            return Err(EINVAL);
        }
    }
    let (n, ni, no) = copy_between(c, &inf, io, &outf, oo, len.min(0x7fff_f000) as usize)?;
    if in_offp != 0 {
        c.t.mm().write_obj(in_offp, &(ni as i64))?;
    }
    if out_offp != 0 {
        c.t.mm().write_obj(out_offp, &(no as i64))?;
    }
    Ok(n as u64)
}

fn is_pipe(f: &OpenFile) -> bool {
    f.ops.as_any().downcast_ref::<pipe::PipeEnd>().is_some()
}

fn splice(
    c: &Ctx,
    in_fd: u64,
    in_offp: u64,
    out_fd: u64,
    out_offp: u64,
    len: u64,
    flags: u32,
) -> SysResult {
    const SPLICE_F_NONBLOCK: u32 = 2;
    if flags & !0xf != 0 {
        return Err(EINVAL);
    }
    let inf = c.fd(in_fd)?;
    let outf = c.fd(out_fd)?;
    if !inf.readable() || !outf.writable() {
        return Err(EBADF);
    }
    let (ip, op) = (is_pipe(&inf), is_pipe(&outf));
    if !ip && !op {
        return Err(EINVAL);
    }
    if (ip && in_offp != 0) || (op && out_offp != 0) {
        return Err(ESPIPE);
    }
    let (io, oo) = (read_off(c, in_offp)?, read_off(c, out_offp)?);
    // With SPLICE_F_NONBLOCK the pipe side does not block.
    let nb = flags & SPLICE_F_NONBLOCK != 0;
    let restore: Vec<&Arc<OpenFile>> = [(&inf, ip), (&outf, op)]
        .into_iter()
        .filter(|(f, p)| *p && nb && !f.nonblock())
        .map(|(f, _)| f)
        .collect();
    for f in &restore {
        f.flags
            .fetch_or(O_NONBLOCK, std::sync::atomic::Ordering::Relaxed);
    }
    let r = copy_between(c, &inf, io, &outf, oo, len.min(0x7fff_f000) as usize);
    for f in &restore {
        f.flags
            .fetch_and(!O_NONBLOCK, std::sync::atomic::Ordering::Relaxed);
    }
    let (n, ni, no) = r?;
    if in_offp != 0 {
        c.t.mm().write_obj(in_offp, &(ni as i64))?;
    }
    if out_offp != 0 {
        c.t.mm().write_obj(out_offp, &(no as i64))?;
    }
    Ok(n as u64)
}

fn tee(c: &Ctx, in_fd: u64, out_fd: u64, len: u64, flags: u32) -> SysResult {
    if flags & !0xf != 0 {
        return Err(EINVAL);
    }
    let inf = c.fd(in_fd)?;
    let outf = c.fd(out_fd)?;
    let (Some(src), true) = (
        inf.ops.as_any().downcast_ref::<pipe::PipeEnd>(),
        is_pipe(&outf),
    ) else {
        return Err(EINVAL);
    };
    if !inf.readable() || !outf.writable() {
        return Err(EBADF);
    }
    let data = src.peek(len.min(1 << 20) as usize);
    if data.is_empty() {
        return if flags & 2 != 0 || inf.nonblock() {
            Err(EAGAIN)
        } else {
            Ok(0)
        };
    }
    Ok(do_write(c, &outf, &data, None)? as u64)
}

fn chroot(c: &Ctx, pathp: u64) -> SysResult {
    let path = c.cstr(pathp)?;
    let p = c.lookup(AT_FDCWD as u64, &path, true, false)?;
    let st = p.dentry.inode.stat();
    if !st.is_dir() {
        return Err(ENOTDIR);
    }
    if !may_access(&st, &c.t.creds(), 1) {
        return Err(EACCES);
    }
    if !c.t.creds().has_cap(18) {
        return Err(EPERM);
    }
    *c.t.fsctx().root.lock() = p;
    Ok(0)
}

/// open(O_TMPFILE): an unnamed regular file in the directory `path`; linkat(AT_EMPTY_PATH)
/// can give it a name later unless O_EXCL was passed.
fn open_tmpfile(c: &Ctx, dirfd: u64, path: &[u8], flags: u32, mode: u32) -> KResult<Arc<OpenFile>> {
    if flags & O_ACCMODE == 0 || flags & O_CREAT != 0 {
        return Err(EINVAL);
    }
    let dir = c.lookup(dirfd, path, true, false)?;
    let st = dir.dentry.inode.stat();
    if !st.is_dir() {
        return Err(ENOTDIR);
    }
    if !may_access(&st, &c.t.creds(), 3) {
        return Err(EACCES);
    }
    if dir.mnt.readonly() {
        return Err(EROFS);
    }
    let umask = c.t.fsctx().umask.load(std::sync::atomic::Ordering::Relaxed);
    let inode = dir
        .dentry
        .inode
        .tmpfile(mode & !umask & 0o7777, &c.t.creds())?;
    let name = format!("#{} (deleted)", inode.stat().ino).into_bytes();
    let p = Path {
        mnt: dir.mnt.clone(),
        dentry: Arc::new(Dentry {
            name,
            parent: Some(dir.dentry.clone()),
            inode: inode.clone(),
        }),
    };
    let ops = inode.open(flags & !O_TMPFILE)?;
    Ok(OpenFile::new(
        ops,
        Some(p),
        flags & !(O_TMPFILE & !O_DIRECTORY) & !O_DIRECTORY,
    ))
}

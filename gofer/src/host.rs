//! Thin wrappers over the host calls the server needs that nix lacks or that need
//! an owned descriptor; the crate's raw libc calls live here.

use crate::{DirEntry, Errno, Stat, StatFs};
use nix::errno::Errno as NixErrno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// (dev, ino): what a file is, independent of its names.
pub(crate) type Id = (u64, u64);

/// Largest xattr value or list (XATTR_SIZE_MAX / XATTR_LIST_MAX).
pub(crate) const XATTR_MAX: usize = 64 * 1024;

pub(crate) fn openat(dir: RawFd, name: &CStr, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::openat(Some(dir), name, flags | OFlag::O_CLOEXEC, mode)?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// lstat of the file a descriptor names (works for O_PATH descriptors).
pub(crate) fn fstat(fd: RawFd) -> Result<FileStat, Errno> {
    let flags = AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW;
    Ok(nix::sys::stat::fstatat(Some(fd), c"", flags)?)
}

/// lstat of `name` in `dir`.
pub(crate) fn lstatat(dir: RawFd, name: &CStr) -> Result<FileStat, Errno> {
    Ok(nix::sys::stat::fstatat(
        Some(dir),
        name,
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

pub(crate) fn id(st: &FileStat) -> Id {
    (st.st_dev, st.st_ino)
}

pub(crate) fn to_stat(st: &FileStat) -> Stat {
    Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        nlink: st.st_nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime: (st.st_atime, st.st_atime_nsec),
        mtime: (st.st_mtime, st.st_mtime_nsec),
        ctime: (st.st_ctime, st.st_ctime_nsec),
    }
}

/// Entries of the open directory `dir` from offset `cookie` on, stopping before their
/// encoded size passes `budget`. Returns (entries, cookie to continue from, at end).
pub(crate) fn read_dir(
    dir: RawFd,
    cookie: u64,
    budget: usize,
) -> Result<(Vec<DirEntry>, u64, bool), Errno> {
    nix::unistd::lseek64(dir, cookie as i64, nix::unistd::Whence::SeekSet)?;
    let mut buf = vec![0u8; 32 * 1024];
    let (mut out, mut used, mut next) = (Vec::new(), 0, cookie);
    loop {
        // SAFETY: buf is writable for buf.len() bytes; the kernel writes at most that.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        let n = NixErrno::result(n)? as usize;
        if n == 0 {
            return Ok((out, next, true));
        }
        // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
        let mut rec = &buf[..n];
        while !rec.is_empty() {
            if rec.len() < 19 {
                return Err(Errno(libc::EIO));
            }
            let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
            if reclen < 19 || reclen > rec.len() {
                return Err(Errno(libc::EIO));
            }
            let name = &rec[19..reclen];
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            let size = crate::proto::dirent_size(name.len());
            if used + size > budget {
                return Ok((out, next, false));
            }
            used += size;
            out.push(DirEntry {
                ino: u64::from_ne_bytes(rec[..8].try_into().expect("8 bytes")),
                kind: rec[18],
                name: name.to_vec(),
            });
            next = u64::from_ne_bytes(rec[8..16].try_into().expect("8 bytes"));
            rec = &rec[reclen..];
        }
    }
}

fn timespec(t: Option<(i64, i64)>) -> libc::timespec {
    let (tv_sec, tv_nsec) = t.unwrap_or((0, libc::UTIME_OMIT));
    libc::timespec { tv_sec, tv_nsec }
}

/// utimensat(dir, name, ...) without following a final symlink; an empty name means
/// `dir` itself (AT_EMPTY_PATH, Linux 5.8+).
pub(crate) fn utimens(
    dir: RawFd,
    name: &CStr,
    atime: Option<(i64, i64)>,
    mtime: Option<(i64, i64)>,
) -> Result<(), Errno> {
    let times = [timespec(atime), timespec(mtime)];
    let mut flags = libc::AT_SYMLINK_NOFOLLOW;
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    // SAFETY: name is NUL-terminated and times points to two timespecs.
    let r = unsafe { libc::utimensat(dir, name.as_ptr(), times.as_ptr(), flags) };
    Ok(NixErrno::result(r).map(drop)?)
}

/// chmod the file an (O_PATH) descriptor names with fchmodat2 (Linux 6.6+); ENOSYS
/// on older kernels.
pub(crate) fn fchmod_path(fd: RawFd, mode: u32) -> Result<(), Errno> {
    // SAFETY: plain syscall with a NUL-terminated empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd,
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    Ok(NixErrno::result(r).map(drop)?)
}

pub(crate) fn fstatfs(fd: RawFd) -> Result<StatFs, Errno> {
    // SAFETY: statfs64 is plain data, all-zero is a valid value.
    let mut s: libc::statfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: s is a valid statfs for the kernel to fill.
    NixErrno::result(unsafe { libc::fstatfs64(fd, &mut s) })?;
    // SAFETY: fsid_t is two c_ints (its field is private in libc).
    let fsid: [i32; 2] = unsafe { std::mem::transmute(s.f_fsid) };
    Ok(StatFs {
        fs_type: s.f_type as u64,
        bsize: s.f_bsize as i64,
        blocks: s.f_blocks as u64,
        bfree: s.f_bfree as u64,
        bavail: s.f_bavail as u64,
        files: s.f_files as u64,
        ffree: s.f_ffree as u64,
        fsid,
        namelen: s.f_namelen as i64,
        frsize: s.f_frsize as i64,
        flags: s.f_flags as i64,
    })
}

pub(crate) fn getxattr(fd: RawFd, name: &CStr) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; XATTR_MAX];
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(NixErrno::result(n)? as usize);
    Ok(buf)
}

pub(crate) fn listxattr(fd: RawFd) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; XATTR_MAX];
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(NixErrno::result(n)? as usize);
    Ok(buf)
}

pub(crate) fn setxattr(fd: RawFd, name: &CStr, value: &[u8], flags: i32) -> Result<(), Errno> {
    // SAFETY: name is NUL-terminated; value is readable for its length.
    let r =
        unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    Ok(NixErrno::result(r).map(drop)?)
}

pub(crate) fn removexattr(fd: RawFd, name: &CStr) -> Result<(), Errno> {
    // SAFETY: name is NUL-terminated.
    let r = unsafe { libc::fremovexattr(fd, name.as_ptr()) };
    Ok(NixErrno::result(r).map(drop)?)
}

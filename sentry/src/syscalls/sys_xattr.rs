//! Extended attributes: get/set/list/remove, by path, link or descriptor.

use super::*;

const XATTR_SIZE_MAX: usize = 65536;
const XATTR_NAME_MAX: usize = 255;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3, a4) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4));
    Some(match nr {
        188..=190 => target(c, nr - 188, a0).and_then(|p| setxattr(c, &p, a1, a2, a3, a4 as u32)),
        191..=193 => target(c, nr - 191, a0).and_then(|p| getxattr(c, &p, a1, a2, a3)),
        194..=196 => target(c, nr - 194, a0).and_then(|p| listxattr(c, &p, a1, a2)),
        197..=199 => target(c, nr - 197, a0).and_then(|p| removexattr(c, &p, a1)),
        _ => return None,
    })
}

/// kind 0: path (follow), 1: path (no follow), 2: descriptor.
fn target(c: &Ctx, kind: u64, a: u64) -> KResult<crate::vfs::Path> {
    if kind == 2 {
        return c.fd(a)?.path.clone().ok_or(EOPNOTSUPP);
    }
    let path = c.cstr(a)?;
    c.lookup(AT_FDCWD as u64, &path, kind == 0, false)
}

fn name(c: &Ctx, p: u64) -> KResult<Vec<u8>> {
    let n = c.t.mm().read_cstr(p, XATTR_NAME_MAX).map_err(|e| {
        if e == ENAMETOOLONG {
            ERANGE
        } else {
            e
        }
    })?;
    if n.is_empty() || n.len() > XATTR_NAME_MAX {
        return Err(ERANGE);
    }
    // POSIX ACLs (system.posix_acl_*) are not supported: EOPNOTSUPP makes programs like
    // cp fall back to chmod, instead of believing an ACL (and so the mode) was applied.
    if n.starts_with(b"system.") {
        return Err(EOPNOTSUPP);
    }
    let known = [&b"user."[..], b"trusted.", b"security."];
    if !known.iter().any(|k| n.starts_with(k) && n.len() > k.len()) {
        return Err(EOPNOTSUPP);
    }
    Ok(n)
}

fn privileged_ns(c: &Ctx, n: &[u8]) -> bool {
    n.starts_with(b"trusted.") && !c.t.creds().has_cap(crate::kernel::cap::SYS_ADMIN)
}

fn getxattr(c: &Ctx, p: &crate::vfs::Path, np: u64, buf: u64, size: u64) -> SysResult {
    let n = name(c, np)?;
    if privileged_ns(c, &n) {
        return Err(ENODATA);
    }
    // Reading a user.* attribute needs read permission on the inode, as a read of the
    // file would (xattr_permission); only regular files and directories carry them.
    if n.starts_with(b"user.") {
        let st = p.dentry.inode.stat();
        if !st.is_reg() && !st.is_dir() {
            return Err(ENODATA);
        }
        if !crate::vfs::may_access(&st, &c.t.creds(), 4) {
            return Err(EACCES);
        }
    }
    let v = p.dentry.inode.getxattr(&n)?;
    if size == 0 {
        return Ok(v.len() as u64);
    }
    if (size as usize) < v.len() {
        return Err(ERANGE);
    }
    c.t.mm().write(buf, &v)?;
    Ok(v.len() as u64)
}

fn setxattr(c: &Ctx, p: &crate::vfs::Path, np: u64, val: u64, size: u64, flags: u32) -> SysResult {
    if flags & !3 != 0 {
        return Err(EINVAL);
    }
    let n = name(c, np)?;
    if size as usize > XATTR_SIZE_MAX {
        return Err(E2BIG);
    }
    let v = c.t.mm().read_vec(val, size as usize)?;
    if p.mnt.readonly() {
        return Err(EROFS);
    }
    let st = p.dentry.inode.stat();
    let cr = c.t.creds();
    if privileged_ns(c, &n)
        || (n.starts_with(b"security.") && !cr.has_cap(crate::kernel::cap::SYS_ADMIN))
    {
        return Err(EPERM);
    }
    if n.starts_with(b"user.") && !crate::vfs::may_access(&st, &cr, 2) {
        return Err(EACCES);
    }
    p.dentry.inode.setxattr(&n, &v, flags)?;
    crate::vfs::inotify::path_event(p, crate::vfs::inotify::IN_ATTRIB);
    Ok(0)
}

fn listxattr(c: &Ctx, p: &crate::vfs::Path, buf: u64, size: u64) -> SysResult {
    let mut out = vec![];
    let root = c.t.creds().has_cap(crate::kernel::cap::SYS_ADMIN);
    for n in p.dentry.inode.listxattr()? {
        if n.starts_with(b"trusted.") && !root {
            continue;
        }
        out.extend_from_slice(&n);
        out.push(0);
    }
    if size == 0 {
        return Ok(out.len() as u64);
    }
    if (size as usize) < out.len() {
        return Err(ERANGE);
    }
    c.t.mm().write(buf, &out)?;
    Ok(out.len() as u64)
}

fn removexattr(c: &Ctx, p: &crate::vfs::Path, np: u64) -> SysResult {
    let n = name(c, np)?;
    if p.mnt.readonly() {
        return Err(EROFS);
    }
    if privileged_ns(c, &n) {
        return Err(EPERM);
    }
    let st = p.dentry.inode.stat();
    if n.starts_with(b"user.") && !crate::vfs::may_access(&st, &c.t.creds(), 2) {
        return Err(EACCES);
    }
    p.dentry.inode.removexattr(&n)?;
    crate::vfs::inotify::path_event(p, crate::vfs::inotify::IN_ATTRIB);
    Ok(0)
}

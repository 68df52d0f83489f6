//! setns(2): join the namespace an nsfs file (/proc/PID/ns/*) stands for.
//! (clone and unshare make new ones through kernel::ns.)

use super::*;
use crate::kernel::cap;
use crate::kernel::ns::ns_capable;
use crate::vfs::nsfs::NsRef;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    Some(match nr {
        308 => setns(c, c.arg(0), c.arg(1) as i32),
        _ => return None,
    })
}

fn setns(c: &Ctx, fd: u64, nstype: i32) -> SysResult {
    let f = c.fd(fd)?;
    let Some(target) = crate::vfs::nsfs::ns_of(&f) else {
        if crate::vfs::pidfd::as_pidfd(&f).is_some() {
            c.t.kernel
                .report_unimplemented(308, "setns(pidfd)", c.t.tgid());
        }
        return Err(EINVAL);
    };
    if nstype != 0 && nstype as u64 != target.kind() {
        return Err(EINVAL);
    }
    let t = c.t;
    let creds = t.creds();
    let admin_there = ns_capable(&creds, &target.owner(), cap::SYS_ADMIN);
    let admin_here = ns_capable(&creds, &creds.user_ns(), cap::SYS_ADMIN);
    match target {
        NsRef::User(n) => {
            // userns_install: not the caller's own, alone in its thread group and fs
            // context, and CAP_SYS_ADMIN in the target.
            if Arc::ptr_eq(&n, &creds.user_ns()) {
                return Err(EINVAL);
            }
            if t.kernel.threads_of(t.tgid()).len() > 1 || Arc::strong_count(&t.fsctx()) > 2 {
                return Err(EINVAL);
            }
            if !ns_capable(&creds, &n, cap::SYS_ADMIN) {
                return Err(EPERM);
            }
            let mut nc = creds;
            nc.user = if n.is_init() { None } else { Some(n) };
            nc.cap_effective = crate::kernel::CAP_FULL;
            nc.cap_permitted = crate::kernel::CAP_FULL;
            nc.cap_bset = crate::kernel::CAP_FULL;
            nc.cap_inheritable = 0;
            *t.creds.lock() = nc;
        }
        NsRef::Uts(_) | NsRef::Ipc(_) => {
            if !admin_there || !admin_here {
                return Err(EPERM);
            }
            let mut set = (*t.ns()).clone();
            match target {
                NsRef::Uts(n) => set.uts = n,
                NsRef::Ipc(n) => set.ipc = n,
                _ => unreachable!("matched above"),
            }
            *t.misc.ns.lock() = Arc::new(set);
        }
        NsRef::Mnt(m) => {
            // mntns_install: CAP_SYS_CHROOT too, and an fs context of one's own.
            if !admin_there || !admin_here || !ns_capable(&creds, &creds.user_ns(), 18) {
                return Err(EPERM);
            }
            if Arc::strong_count(&t.fsctx()) > 2 {
                return Err(EINVAL);
            }
            let root = m.list.read().first().cloned().ok_or(EINVAL)?;
            let fs = t.fsctx().copy();
            let at = crate::vfs::Path {
                dentry: root.root.clone(),
                mnt: root,
            };
            *fs.root.lock() = at.clone();
            *fs.cwd.lock() = at;
            *fs.mounts.lock() = m;
            *t.fs.lock() = Arc::new(fs);
        }
        // The only network, PID, cgroup and time namespaces: joining is a no-op once
        // allowed.
        NsRef::Fixed(_) => {
            if !admin_there || !admin_here {
                return Err(EPERM);
            }
        }
    }
    Ok(0)
}

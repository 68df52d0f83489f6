//! setns(2): join the namespace an nsfs file (/proc/PID/ns/*) stands for, or those of
//! the process a pidfd names. (clone and unshare make new ones through kernel::ns.)

use super::*;
use crate::kernel::ns::{self, ns_capable};
use crate::kernel::{cap, Creds, Task};
use crate::vfs::nsfs::NsRef;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    Some(match nr {
        308 => setns(c, c.arg(0), c.arg(1) as i32),
        _ => return None,
    })
}

const ALL: u64 = ns::CLONE_NEWUSER
    | ns::CLONE_NEWNS
    | ns::CLONE_NEWUTS
    | ns::CLONE_NEWIPC
    | ns::CLONE_NEWCGROUP
    | ns::CLONE_NEWPID
    | ns::CLONE_NEWNET
    | ns::CLONE_NEWTIME;

fn setns(c: &Ctx, fd: u64, nstype: i32) -> SysResult {
    let f = c.fd(fd)?;
    let flags = nstype as u32 as u64;
    let targets = if let Some(target) = crate::vfs::nsfs::ns_of(&f) {
        if flags != 0 && flags != target.kind() {
            return Err(EINVAL);
        }
        vec![target]
    } else if let Some(p) = crate::vfs::pidfd::as_pidfd(&f) {
        // A pidfd: the namespaces of kinds `flags` of its process, all or none.
        if flags == 0 || flags & !ALL != 0 {
            return Err(EINVAL);
        }
        let task = c.t.kernel.threads_of(p.tg.tgid).into_iter().next();
        let task = task.ok_or(ESRCH)?;
        if !crate::vfs::nsfs::may_read(c.t, &task) {
            return Err(EPERM);
        }
        // The user namespace first: the others are checked with its credentials.
        let names = ["user", "mnt", "uts", "ipc", "cgroup", "pid", "net", "time"];
        let mut v = vec![];
        for n in names {
            let Some(r) = NsRef::of(&task, n) else {
                continue;
            };
            if flags & r.kind() == 0 {
                continue;
            }
            // Already in the process's user namespace: nothing to join.
            if let NsRef::User(u) = &r {
                if Arc::ptr_eq(u, &c.t.creds().user_ns()) {
                    continue;
                }
            }
            v.push(r);
        }
        v
    } else {
        return Err(EINVAL);
    };
    let mut creds = c.t.creds();
    for t in &targets {
        check(c.t, t, &creds)?;
        if let NsRef::User(n) = t {
            creds = joined(creds, n);
        }
    }
    for t in targets {
        apply(c.t, t);
    }
    Ok(0)
}

/// Credentials after joining user namespace `n`: every capability there.
fn joined(mut c: Creds, n: &Arc<ns::UserNs>) -> Creds {
    c.user = if n.is_init() { None } else { Some(n.clone()) };
    c.cap_effective = crate::kernel::CAP_FULL;
    c.cap_permitted = crate::kernel::CAP_FULL;
    c.cap_bset = crate::kernel::CAP_FULL;
    c.cap_inheritable = 0;
    c
}

/// May `t`, with credentials `creds`, join `target` (Linux's ->install checks)?
fn check(t: &Task, target: &NsRef, creds: &Creds) -> KResult<()> {
    let admin_there = ns_capable(creds, &target.owner(), cap::SYS_ADMIN);
    let admin_here = ns_capable(creds, &creds.user_ns(), cap::SYS_ADMIN);
    match target {
        NsRef::User(n) => {
            // userns_install: not the caller's own, alone in its thread group and fs
            // context, and CAP_SYS_ADMIN in the target.
            if Arc::ptr_eq(n, &creds.user_ns()) {
                return Err(EINVAL);
            }
            if t.kernel.threads_of(t.tgid()).len() > 1 || Arc::strong_count(&t.fsctx()) > 2 {
                return Err(EINVAL);
            }
            if !ns_capable(creds, n, cap::SYS_ADMIN) {
                return Err(EPERM);
            }
        }
        NsRef::Mnt(_) => {
            // mntns_install: CAP_SYS_CHROOT too, and an fs context of one's own.
            if !admin_there || !admin_here || !ns_capable(creds, &creds.user_ns(), 18) {
                return Err(EPERM);
            }
            if Arc::strong_count(&t.fsctx()) > 2 {
                return Err(EINVAL);
            }
        }
        // The only network, PID, cgroup and time namespaces: joining is a no-op once
        // allowed.
        NsRef::Uts(_) | NsRef::Ipc(_) | NsRef::Fixed(_) => {
            if !admin_there || !admin_here {
                return Err(EPERM);
            }
        }
    }
    Ok(())
}

fn apply(t: &Task, target: NsRef) {
    match target {
        NsRef::User(n) => {
            let c = joined(t.creds(), &n);
            *t.creds.lock() = c;
        }
        NsRef::Uts(_) | NsRef::Ipc(_) => {
            let mut set = (*t.ns()).clone();
            match target {
                NsRef::Uts(n) => set.uts = n,
                NsRef::Ipc(n) => {
                    // Leaving an IPC namespace applies its SEM_UNDO adjustments.
                    set.ipc.sem.exit(t.tgid());
                    set.ipc = n
                }
                _ => unreachable!("matched above"),
            }
            *t.misc.ns.lock() = Arc::new(set);
        }
        NsRef::Mnt(m) => {
            let Some(root) = m.list.read().first().cloned() else {
                return;
            };
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
        NsRef::Fixed(_) => {}
    }
}

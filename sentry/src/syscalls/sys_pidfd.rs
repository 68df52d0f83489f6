//! pidfd system calls: pidfd_open, pidfd_send_signal, pidfd_getfd. (CLONE_PIDFD is in
//! clone, waitid(P_PIDFD) in waitid; the file itself is vfs::pidfd.)

use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::kernel::{Task, ThreadGroup};
use crate::vfs::pidfd::{self, State};
use crate::vfs::O_NONBLOCK;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3));
    Some(match nr {
        434 => pidfd_open(c, a0 as i32, a1 as u32),
        424 => pidfd_send_signal(c, a0 as i32, a1 as i32, a2, a3 as u32),
        438 => pidfd_getfd(c, a0 as i32, a1 as i32, a2 as u32),
        _ => return None,
    })
}

fn install(c: &Ctx, f: Arc<OpenFile>) -> SysResult {
    let lim = c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    Ok(c.t.files().install(f, true, 0, lim)? as u64)
}

fn pidfd_open(c: &Ctx, pid: i32, flags: u32) -> SysResult {
    if flags & !O_NONBLOCK != 0 || pid <= 0 {
        return Err(EINVAL);
    }
    let tg = {
        let tab = c.t.kernel.table.lock();
        match tab.procs.get(&pid) {
            Some(p) => p.tg.clone(),
            // The id of a thread that does not lead its group.
            None if tab.tasks.contains_key(&pid) => return Err(EINVAL),
            None => return Err(ESRCH),
        }
    };
    let f = pidfd::open_file(&c.t.kernel, &tg, flags & O_NONBLOCK != 0);
    install(c, f)
}

/// The process behind pidfd `fd`: EBADF if `fd` is not a pidfd.
fn pidfd_target(c: &Ctx, fd: i32) -> KResult<(Arc<ThreadGroup>, State)> {
    let f = c.fd(fd as u64)?;
    let p = pidfd::as_pidfd(&f).ok_or(EBADF)?;
    Ok((p.tg.clone(), p.state()))
}

/// pidfd_send_signal also takes a descriptor of a /proc/PID directory.
fn proc_dir_target(c: &Ctx, fd: i32) -> KResult<(Arc<ThreadGroup>, State)> {
    let f = c.fd(fd as u64)?;
    let pid = f
        .inode()
        .and_then(crate::vfs::procfs::pid_dir)
        .ok_or(EBADF)?;
    let tab = c.t.kernel.table.lock();
    let p = tab.procs.get(&pid).ok_or(ESRCH)?;
    let state = if p.zombie.is_some() || p.threads.is_empty() {
        State::Dead
    } else {
        State::Alive
    };
    Ok((p.tg.clone(), state))
}

/// A live thread of the process of `tg`.
fn some_thread(c: &Ctx, tg: &Arc<ThreadGroup>) -> Option<Arc<Task>> {
    let tab = c.t.kernel.table.lock();
    let p = tab.procs.get(&tg.tgid).filter(|p| Arc::ptr_eq(&p.tg, tg))?;
    p.threads.iter().find_map(|x| tab.tasks.get(x).cloned())
}

fn pidfd_send_signal(c: &Ctx, fd: i32, sig: i32, infop: u64, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(EINVAL);
    }
    let (tg, state) = match pidfd_target(c, fd) {
        Err(e) if e == EBADF => proc_dir_target(c, fd)?,
        r => r?,
    };
    let me = c.t.tgid();
    let info = if infop != 0 {
        let info = SigInfo(c.t.mm().read_obj(infop)?);
        if info.signo() != sig {
            return Err(EINVAL);
        }
        // Only a process signalling itself may make up the siginfo.
        let to_self = Arc::ptr_eq(&tg, &c.t.tg) && c.t.tid() == me;
        if !to_self && (info.code() >= 0 || info.code() == signal::SI_TKILL) {
            return Err(EPERM);
        }
        info
    } else {
        SigInfo::user(sig, signal::SI_USER, me, c.t.creds().uid)
    };
    if state == State::Gone {
        return Err(ESRCH);
    }
    if !(0..=64).contains(&sig) {
        return Err(EINVAL);
    }
    // A zombie takes (and ignores) any signal.
    let Some(target) = some_thread(c, &tg) else {
        return Ok(0);
    };
    if !super::sys_signal::may_signal(c, &target, sig) {
        return Err(EPERM);
    }
    if sig != 0 {
        signal::send_to_group(&c.t.kernel, &tg, info);
    }
    Ok(0)
}

/// ptrace_may_access(PTRACE_MODE_ATTACH_REALCREDS) of the caller on `target`.
fn may_attach(c: &Ctx, target: &Task) -> bool {
    if Arc::ptr_eq(&target.tg, &c.t.tg) {
        return true;
    }
    let me = c.t.creds();
    let them = target.creds();
    use crate::kernel::cap::SYS_PTRACE as CAP_SYS_PTRACE;
    let same = [them.uid, them.euid, them.suid]
        .iter()
        .all(|x| *x == me.uid)
        && [them.gid, them.egid, them.sgid]
            .iter()
            .all(|x| *x == me.gid);
    let dumpable = target
        .mm()
        .dumpable
        .load(std::sync::atomic::Ordering::Relaxed);
    (same || me.has_cap(CAP_SYS_PTRACE)) && (dumpable || me.has_cap(CAP_SYS_PTRACE))
}

fn pidfd_getfd(c: &Ctx, fd: i32, targetfd: i32, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(EINVAL);
    }
    let (tg, state) = pidfd_target(c, fd)?;
    if state == State::Gone {
        return Err(ESRCH);
    }
    // A process whose threads have all exited has no descriptors left.
    let target = some_thread(c, &tg).ok_or(EBADF)?;
    if !may_attach(c, &target) {
        return Err(EPERM);
    }
    let f = target.files().get(targetfd).map_err(|_| EBADF)?;
    install(c, f)
}

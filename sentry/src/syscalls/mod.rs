//! The system call table: one handler per number, grouped by family.

pub mod names;
mod sys_event;
mod sys_file;
mod sys_hostinet;
mod sys_misc;
mod sys_mm;
mod sys_mqueue;
mod sys_ns;
mod sys_pidfd;
mod sys_prctl;
mod sys_sched;
mod sys_signal;
mod sys_socket;
mod sys_sysv;
mod sys_sysv_msg;
mod sys_sysv_sem;
mod sys_task;
mod sys_timer;
mod sys_xattr;

use crate::errno::*;
use crate::kernel::Task;
use crate::vfs::{OpenFile, Path, Walk};
use platform::{Context, Regs};
use std::sync::Arc;

pub use sys_task::{new_init, new_process, ProcOpts};

/// What a handler sees: the calling task, its registers and its platform context.
pub struct Ctx<'a> {
    pub t: &'a Arc<Task>,
    pub regs: &'a mut Regs,
    pub pctx: &'a mut dyn Context,
    /// Set by exit(2): the thread ends with this code.
    pub exit: Option<i32>,
}

impl Ctx<'_> {
    pub fn arg(&self, i: usize) -> u64 {
        match i {
            0 => self.regs.rdi,
            1 => self.regs.rsi,
            2 => self.regs.rdx,
            3 => self.regs.r10,
            4 => self.regs.r8,
            _ => self.regs.r9,
        }
    }
    pub fn fd(&self, fd: u64) -> KResult<Arc<OpenFile>> {
        self.t.files().get(fd as i32)
    }
    pub fn cstr(&self, addr: u64) -> KResult<Vec<u8>> {
        if addr == 0 {
            return Err(EFAULT);
        }
        self.t.mm().read_cstr(addr, 4096)
    }
    /// The starting point for a *at() path: cwd, or the directory `dirfd` names.
    pub fn start(&self, dirfd: u64, path: &[u8]) -> KResult<Path> {
        if path.first() == Some(&b'/') || dirfd as i32 == AT_FDCWD {
            return Ok(self.t.fsctx().cwd.lock().clone());
        }
        let f = self.fd(dirfd)?;
        let p = f.path.clone().ok_or(ENOTDIR)?;
        if !p.dentry.inode.stat().is_dir() {
            return Err(ENOTDIR);
        }
        Ok(p)
    }
    pub fn with_walk<R>(&self, f: impl FnOnce(&Walk) -> KResult<R>) -> KResult<R> {
        let root = self.t.fsctx().root.lock().clone();
        let creds = self.t.creds();
        let mounts = self.t.mounts();
        let w = Walk {
            root: &root,
            creds: &creds,
            mounts: &mounts,
            task: self.t,
        };
        f(&w)
    }
    /// Resolve `path` relative to `dirfd` (AT_EMPTY_PATH and symlink following handled).
    pub fn lookup(&self, dirfd: u64, path: &[u8], follow: bool, empty_ok: bool) -> KResult<Path> {
        if path.is_empty() {
            if empty_ok {
                if dirfd as i32 == AT_FDCWD {
                    return Ok(self.t.fsctx().cwd.lock().clone());
                }
                return self.fd(dirfd)?.path.clone().ok_or(EBADF);
            }
            return Err(ENOENT);
        }
        let start = self.start(dirfd, path)?;
        self.with_walk(|w| w.walk(&start, path, follow))
    }
    /// The target of a *at() call: flags outside `allowed` are EINVAL; the last symlink
    /// is followed unless AT_SYMLINK_NOFOLLOW; "" with AT_EMPTY_PATH names `dirfd`.
    pub fn lookup_at(&self, dirfd: u64, pathp: u64, flags: u64, allowed: u64) -> KResult<Path> {
        if flags & !allowed != 0 {
            return Err(EINVAL);
        }
        let path = self.cstr(pathp)?;
        self.lookup(
            dirfd,
            &path,
            flags & AT_SYMLINK_NOFOLLOW == 0,
            flags & AT_EMPTY_PATH != 0,
        )
    }

    /// The Stat a *at() stat call reports: like `lookup_at`, but "" with AT_EMPTY_PATH
    /// also works for descriptors that have no path.
    pub fn stat_at(
        &self,
        dirfd: u64,
        pathp: u64,
        flags: u64,
        allowed: u64,
    ) -> KResult<crate::vfs::Stat> {
        if flags & !allowed != 0 {
            return Err(EINVAL);
        }
        let path = self.cstr(pathp)?;
        if path.is_empty() && flags & AT_EMPTY_PATH != 0 && dirfd as i32 != AT_FDCWD {
            return Ok(self.fd(dirfd)?.stat());
        }
        let p = self.lookup(
            dirfd,
            &path,
            flags & AT_SYMLINK_NOFOLLOW == 0,
            flags & AT_EMPTY_PATH != 0,
        )?;
        Ok(p.dentry.inode.stat())
    }

    pub fn lookup_parent(&self, dirfd: u64, path: &[u8]) -> KResult<(Path, Vec<u8>)> {
        let start = self.start(dirfd, path)?;
        self.with_walk(|w| w.walk_parent(&start, path))
    }
}

pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
pub const AT_REMOVEDIR: u64 = 0x200;
pub const AT_SYMLINK_FOLLOW: u64 = 0x400;
pub const AT_EMPTY_PATH: u64 = 0x1000;

pub fn dispatch(c: &mut Ctx, nr: u64) -> SysResult {
    let r = call(c, nr);
    if c.t.kernel.strace {
        let a = [c.arg(0), c.arg(1), c.arg(2)];
        match r {
            Ok(v) => eprintln!(
                "[{}] {}({:#x}, {:#x}, {:#x}) = {:#x}",
                c.t.tid(),
                names::name(nr),
                a[0],
                a[1],
                a[2],
                v
            ),
            Err(e) => eprintln!(
                "[{}] {}({:#x}, {:#x}, {:#x}) = -{}",
                c.t.tid(),
                names::name(nr),
                a[0],
                a[1],
                a[2],
                e.0
            ),
        }
    }
    r
}

fn call(c: &mut Ctx, nr: u64) -> SysResult {
    if let Some(r) = sys_file::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_mm::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_prctl::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_task::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_signal::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_xattr::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_sched::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_timer::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_hostinet::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_socket::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_misc::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_event::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_pidfd::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_mqueue::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_ns::call(c, nr) {
        return r;
    }
    if let Some(r) = sys_sysv::call(c, nr) {
        return r;
    }
    c.t.kernel
        .report_unimplemented(nr, names::name(nr), c.t.tgid());
    Err(ENOSYS)
}

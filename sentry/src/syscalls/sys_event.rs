//! Event files: epoll, eventfd, timerfd, signalfd and inotify.

use super::*;
use crate::kernel::signal;
use crate::vfs::epoll::{self, EpollFile};
use crate::vfs::eventfd::{self, EventFd};
use crate::vfs::inotify::{self, Inotify};
use crate::vfs::signalfd::{self, SignalFd};
use crate::vfs::timerfd::{self, TimerFd};
use crate::vfs::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3, a4, a5) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4), c.arg(5));
    Some(match nr {
        213 => {
            if a0 as i32 <= 0 {
                Err(EINVAL)
            } else {
                epoll_create1(c, 0)
            }
        }
        291 => epoll_create1(c, a0 as u32),
        233 => epoll_ctl(c, a0, a1 as i32, a2, a3),
        232 => epoll_wait(c, a0, a1, a2, ms_timeout(a3)),
        281 => with_sigmask(c, a4, a5, || epoll_wait(c, a0, a1, a2, ms_timeout(a3))),
        441 => epoll_pwait2(c, a0, a1, a2, a3, a4, a5),
        284 => eventfd2(c, a0, 0),
        290 => eventfd2(c, a0, a1 as u32),
        283 => timerfd_create(c, a0 as i32, a1 as u32),
        286 => timerfd_settime(c, a0, a1 as u32, a2, a3),
        287 => timerfd_gettime(c, a0, a1),
        282 => signalfd4(c, a0 as i32, a1, a2, 0),
        289 => signalfd4(c, a0 as i32, a1, a2, a3 as u32),
        253 => inotify_init1(c, 0),
        294 => inotify_init1(c, a0 as u32),
        254 => inotify_add_watch(c, a0, a1, a2 as u32),
        255 => inotify_rm_watch(c, a0, a1 as i32),
        _ => return None,
    })
}

fn install(c: &Ctx, f: Arc<OpenFile>, cloexec: bool) -> SysResult {
    let lim = c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    Ok(c.t.files().install(f, cloexec, 0, lim)? as u64)
}

/// Run `f` with the signal mask at `maskp` (if any) in force. If `f` is interrupted,
/// the old mask comes back only after the handler ran (as with ppoll/pselect).
fn with_sigmask<R>(c: &Ctx, maskp: u64, size: u64, f: impl FnOnce() -> KResult<R>) -> KResult<R> {
    if maskp == 0 {
        return f();
    }
    if size != 8 {
        return Err(EINVAL);
    }
    let m: u64 = c.t.mm().read_obj(maskp)?;
    let old = c.t.sigmask.swap(m & !signal::UNBLOCKABLE, Ordering::AcqRel);
    let r = f();
    match &r {
        Err(e) if *e == EINTR || e.is_restart() => *c.t.saved_mask.lock() = Some(old),
        _ => c.t.sigmask.store(old, Ordering::Release),
    }
    r
}

/// A timespec (sec, nsec) from the application, validated like timespec64_valid.
fn read_ts(c: &Ctx, p: u64) -> KResult<Duration> {
    let t: [i64; 2] = c.t.mm().read_obj(p)?;
    ts_duration(t)
}

fn ts_duration(t: [i64; 2]) -> KResult<Duration> {
    if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
        return Err(EINVAL);
    }
    Ok(Duration::new(t[0] as u64, t[1] as u32))
}

fn ts_bytes(d: Duration) -> [i64; 2] {
    [d.as_secs() as i64, d.subsec_nanos() as i64]
}

// ---- epoll ----

/// Linux's EP_MAX_EVENTS: INT_MAX / sizeof(struct epoll_event).
const EP_MAX_EVENTS: u64 = (i32::MAX as u64) / 12;
/// The top of the user address space (access_ok's limit).
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

fn ms_timeout(ms: u64) -> Option<Duration> {
    let ms = ms as i32;
    if ms < 0 {
        None
    } else {
        Some(Duration::from_millis(ms as u64))
    }
}

fn epoll_create1(c: &Ctx, flags: u32) -> SysResult {
    if flags & !epoll::EPOLL_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    let f = OpenFile::new(EpollFile::new(), None, O_RDWR);
    install(c, f, flags & epoll::EPOLL_CLOEXEC != 0)
}

/// The epoll set an fd refers to: EBADF if none, EINVAL if not an epoll fd.
fn epoll_of(c: &Ctx, fd: u64) -> KResult<Arc<OpenFile>> {
    let f = c.fd(fd)?;
    if f.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    if epoll::as_epoll(&f).is_none() {
        return Err(EINVAL);
    }
    Ok(f)
}

/// Whether a file supports poll (Linux's file_can_poll): regular files, directories and
/// /dev/{null,zero,full,urandom} do not; in /proc, only the files outside the per-process
/// directories and the mount tables do; sysfs attributes do.
fn can_poll(f: &OpenFile) -> bool {
    let st = f.stat();
    match st.mode & S_IFMT {
        S_IFDIR | S_IFLNK => false,
        S_IFREG => {
            let Some(p) = &f.path else { return false };
            match p.mnt.fstype.as_str() {
                "sysfs" => true,
                "proc" => {
                    let mut d = p.dentry.clone();
                    let mut in_pid_dir = false;
                    while let Some(parent) = d.parent.clone() {
                        if !d.name.is_empty() && d.name.iter().all(u8::is_ascii_digit) {
                            in_pid_dir = true;
                        }
                        d = parent;
                    }
                    !in_pid_dir
                        || matches!(
                            p.dentry.name.as_slice(),
                            b"mounts" | b"mountinfo" | b"mountstats"
                        )
                }
                _ => false,
            }
        }
        S_IFCHR => {
            let (major, minor) = ((st.rdev >> 8) & 0xfff, st.rdev & 0xff);
            !(major == 1 && matches!(minor, 3 | 5 | 7 | 9))
        }
        _ => true,
    }
}

fn epoll_ctl(c: &Ctx, epfd: u64, op: i32, fd: u64, evp: u64) -> SysResult {
    let (events, data) = if op != epoll::EPOLL_CTL_DEL {
        let b: [u8; 12] = c.t.mm().read_obj(evp)?;
        (
            u32::from_le_bytes(b[0..4].try_into().expect("4")),
            u64::from_le_bytes(b[4..12].try_into().expect("8")),
        )
    } else {
        (0, 0)
    };
    let ef = c.fd(epfd)?;
    let tf = c.fd(fd)?;
    if ef.flags() & O_PATH != 0 || tf.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    if !can_poll(&tf) {
        return Err(EPERM);
    }
    if Arc::ptr_eq(&ef, &tf) {
        return Err(EINVAL);
    }
    let ep = epoll::as_epoll(&ef).ok_or(EINVAL)?;
    ep.ctl(op, fd as i32, &tf, events, data)?;
    Ok(0)
}

fn epoll_wait(c: &Ctx, epfd: u64, evp: u64, max: u64, timeout: Option<Duration>) -> SysResult {
    let max = max as i32 as i64;
    if max <= 0 || max as u64 > EP_MAX_EVENTS {
        return Err(EINVAL);
    }
    if evp
        .checked_add(max as u64 * 12)
        .is_none_or(|end| end > TASK_SIZE)
    {
        return Err(EFAULT);
    }
    let f = epoll_of(c, epfd)?;
    let ep = epoll::as_epoll(&f).expect("checked");
    let evs = ep.wait(c.t, max as usize, timeout)?;
    let mut b = Vec::with_capacity(evs.len() * 12);
    for (ev, data) in &evs {
        b.extend_from_slice(&ev.to_le_bytes());
        b.extend_from_slice(&data.to_le_bytes());
    }
    c.t.mm().write(evp, &b)?;
    Ok(evs.len() as u64)
}

fn epoll_pwait2(
    c: &Ctx,
    epfd: u64,
    evp: u64,
    max: u64,
    tsp: u64,
    maskp: u64,
    size: u64,
) -> SysResult {
    let timeout = if tsp != 0 {
        Some(read_ts(c, tsp)?)
    } else {
        None
    };
    with_sigmask(c, maskp, size, || epoll_wait(c, epfd, evp, max, timeout))
}

// ---- eventfd ----

fn eventfd2(c: &Ctx, init: u64, flags: u32) -> SysResult {
    if flags & !(eventfd::EFD_SEMAPHORE | eventfd::EFD_NONBLOCK | eventfd::EFD_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let ops = EventFd::new(init as u32 as u64, flags & eventfd::EFD_SEMAPHORE != 0);
    let f = OpenFile::new(ops, None, O_RDWR | (flags & O_NONBLOCK));
    install(c, f, flags & eventfd::EFD_CLOEXEC != 0)
}

// ---- inotify ----

fn inotify_init1(c: &Ctx, flags: u32) -> SysResult {
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let f = OpenFile::new(Inotify::new(c.t.creds().euid)?, None, flags & O_NONBLOCK);
    install(c, f, flags & O_CLOEXEC != 0)
}

fn inotify_of(f: &OpenFile) -> KResult<&Inotify> {
    f.ops.as_any().downcast_ref::<Inotify>().ok_or(EINVAL)
}

fn inotify_add_watch(c: &Ctx, fd: u64, pathp: u64, mask: u32) -> SysResult {
    if mask & inotify::IN_MASK_ADD != 0 && mask & inotify::IN_MASK_CREATE != 0 {
        return Err(EINVAL);
    }
    if mask & inotify::IN_ALL_EVENTS == 0 {
        return Err(EINVAL);
    }
    let f = c.fd(fd)?;
    let ino = inotify_of(&f)?;
    let path = c.cstr(pathp)?;
    let p = c.lookup(
        AT_FDCWD as u64,
        &path,
        mask & inotify::IN_DONT_FOLLOW == 0,
        false,
    )?;
    let st = p.dentry.inode.stat();
    if mask & inotify::IN_ONLYDIR != 0 && !st.is_dir() {
        return Err(ENOTDIR);
    }
    if !may_access(&st, &c.t.creds(), 4) {
        return Err(EACCES);
    }
    Ok(ino.add_watch(p.dentry.inode.clone(), mask)? as u64)
}

fn inotify_rm_watch(c: &Ctx, fd: u64, wd: i32) -> SysResult {
    let f = c.fd(fd)?;
    inotify_of(&f)?.rm_watch(wd)?;
    Ok(0)
}

// ---- timerfd ----

fn timerfd_create(c: &Ctx, clock: i32, flags: u32) -> SysResult {
    if flags & !(timerfd::TFD_NONBLOCK | timerfd::TFD_CLOEXEC) != 0 || !timerfd::valid_clock(clock)
    {
        return Err(EINVAL);
    }
    if matches!(
        clock,
        timerfd::CLOCK_REALTIME_ALARM | timerfd::CLOCK_BOOTTIME_ALARM
    ) && !c.t.creds().has_cap(crate::kernel::cap::WAKE_ALARM)
    {
        return Err(EPERM);
    }
    let ops = TimerFd::new(clock, c.t.kernel.boot);
    let f = OpenFile::new(ops, None, O_RDWR | (flags & O_NONBLOCK));
    install(c, f, flags & timerfd::TFD_CLOEXEC != 0)
}

fn timer_of(c: &Ctx, fd: u64) -> KResult<Arc<OpenFile>> {
    let f = c.fd(fd)?;
    if f.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    if f.ops.as_any().downcast_ref::<TimerFd>().is_none() {
        return Err(EINVAL);
    }
    Ok(f)
}

fn write_itimerspec(c: &Ctx, p: u64, (interval, value): timerfd::ITimerSpec) -> KResult<()> {
    let i = ts_bytes(interval);
    let v = ts_bytes(value);
    c.t.mm().write_obj(p, &[i[0], i[1], v[0], v[1]])
}

fn timerfd_settime(c: &Ctx, fd: u64, flags: u32, newp: u64, oldp: u64) -> SysResult {
    let new: [i64; 4] = c.t.mm().read_obj(newp)?;
    if flags & !(timerfd::TFD_TIMER_ABSTIME | timerfd::TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(EINVAL);
    }
    let interval = ts_duration([new[0], new[1]])?;
    let value = ts_duration([new[2], new[3]])?;
    let f = timer_of(c, fd)?;
    let t = f.ops.as_any().downcast_ref::<TimerFd>().expect("checked");
    let old = t.set(value, interval, flags & timerfd::TFD_TIMER_ABSTIME != 0);
    if oldp != 0 {
        write_itimerspec(c, oldp, old)?;
    }
    Ok(0)
}

fn timerfd_gettime(c: &Ctx, fd: u64, curp: u64) -> SysResult {
    let f = timer_of(c, fd)?;
    let t = f.ops.as_any().downcast_ref::<TimerFd>().expect("checked");
    write_itimerspec(c, curp, t.get())?;
    Ok(0)
}

// ---- signalfd ----

fn signalfd4(c: &Ctx, fd: i32, maskp: u64, size: u64, flags: u32) -> SysResult {
    if flags & !(signalfd::SFD_NONBLOCK | signalfd::SFD_CLOEXEC) != 0 || size != 8 {
        return Err(EINVAL);
    }
    let mask: u64 = c.t.mm().read_obj(maskp)?;
    if fd == -1 {
        let f = OpenFile::new(SignalFd::new(mask), None, O_RDWR | (flags & O_NONBLOCK));
        return install(c, f, flags & signalfd::SFD_CLOEXEC != 0);
    }
    let f = c.fd(fd as u64)?;
    if f.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    let s = f.ops.as_any().downcast_ref::<SignalFd>().ok_or(EINVAL)?;
    s.set_mask(mask);
    Ok(fd as u64)
}

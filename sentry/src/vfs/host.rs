//! Host file descriptors handed to the sandbox at start (its stdio): pipes or a tty.
//! Reads block in short host polls so that signals can interrupt them.

use super::*;
use std::os::fd::{AsRawFd, OwnedFd};

pub struct HostFile {
    fd: OwnedFd,
    pub is_tty: bool,
}

impl HostFile {
    pub fn new(fd: OwnedFd) -> Arc<HostFile> {
        // SAFETY: isatty only inspects the descriptor.
        let is_tty = unsafe { libc::isatty(fd.as_raw_fd()) } == 1;
        Arc::new(HostFile { fd, is_tty })
    }

    /// A path for /proc/PID/fd/N: named like Linux names the host object (pipe:[N],
    /// socket:[N]; a terminal as the console), with the host's file type.
    pub fn path(self: &Arc<Self>) -> Path {
        // SAFETY: fstat fills a plain struct for a descriptor we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) };
        let kind = st.st_mode & S_IFMT;
        let name = match kind {
            S_IFIFO => format!("pipe:[{}]", st.st_ino),
            S_IFSOCK => format!("socket:[{}]", st.st_ino),
            _ if self.is_tty => "/dev/console".to_string(),
            _ => format!("host:[{}]", st.st_ino),
        };
        let stat = Stat {
            ino: st.st_ino,
            mode: st.st_mode,
            nlink: 1,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            blksize: 4096,
            atime: (st.st_atime, st.st_atime_nsec),
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
            ..Default::default()
        };
        let me = self.clone();
        super::anonfs::path(
            name,
            stat,
            Box::new(move |_| Ok(me.clone() as Arc<dyn FileOps>)),
        )
    }

    fn host_poll(&self, events: i16, ms: i32) -> i16 {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            p.revents
        } else {
            0
        }
    }

    fn wait_ready(&self, f: &OpenFile, t: &Task, events: i16) -> KResult<()> {
        if f.nonblock() {
            return Ok(());
        }
        loop {
            if self.host_poll(events, 20) != 0 {
                return Ok(());
            }
            if t.interrupted() {
                return Err(ERESTARTSYS);
            }
        }
    }
}

fn check(n: isize) -> KResult<usize> {
    if n < 0 {
        let e = last();
        return Err(if e == EAGAIN { EAGAIN } else { e });
    }
    Ok(n as usize)
}

impl FileOps for HostFile {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        loop {
            self.wait_ready(f, t, libc::POLLIN)?;
            // SAFETY: reading into a valid buffer; with poll first this rarely blocks.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            match check(n) {
                Err(e) if e == EAGAIN && !f.nonblock() => continue,
                Err(e) if e == EINTR => continue,
                r => return r,
            }
        }
    }
    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        loop {
            self.wait_ready(f, t, libc::POLLOUT)?;
            // SAFETY: writing from a valid buffer.
            let n = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    buf.as_ptr() as *const libc::c_void,
                    buf.len(),
                )
            };
            match check(n) {
                Err(e) if e == EAGAIN && !f.nonblock() => continue,
                Err(e) if e == EINTR => continue,
                r => return r,
            }
        }
    }
    fn poll(&self) -> u32 {
        self.host_poll(libc::POLLIN | libc::POLLOUT, 0) as u32
    }
    fn host_fd(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }
    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        const TCGETS: u32 = 0x5401;
        const TCSETS: u32 = 0x5402;
        const TCSETSW: u32 = 0x5403;
        const TCSETSF: u32 = 0x5404;
        const TIOCGWINSZ: u32 = 0x5413;
        const TIOCSWINSZ: u32 = 0x5414;
        const FIONREAD: u32 = 0x541b;
        const TIOCGPGRP: u32 = 0x540f;
        const TIOCSPGRP: u32 = 0x5410;
        let size = match cmd {
            TCGETS | TCSETS | TCSETSW | TCSETSF => 36,
            TIOCGWINSZ | TIOCSWINSZ => 8,
            FIONREAD => 4,
            TIOCGPGRP => {
                if !self.is_tty {
                    return Err(ENOTTY);
                }
                t.mm().write_obj(arg, &t.kernel().foreground_pgrp())?;
                return Ok(0);
            }
            TIOCSPGRP => {
                if !self.is_tty {
                    return Err(ENOTTY);
                }
                let pg: i32 = t.mm().read_obj(arg)?;
                t.kernel().set_foreground_pgrp(pg);
                return Ok(0);
            }
            _ => return Err(ENOTTY),
        };
        let mut buf = vec![0u8; size];
        let is_set = matches!(cmd, TCSETS | TCSETSW | TCSETSF | TIOCSWINSZ);
        if is_set {
            t.mm().read(arg, &mut buf)?;
        }
        // SAFETY: the buffer is large enough for the structure of each request above.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), cmd as _, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(last());
        }
        if !is_set {
            t.mm().write(arg, &buf)?;
        }
        Ok(r as u64)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

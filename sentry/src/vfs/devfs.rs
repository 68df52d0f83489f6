//! /dev: a tmpfs holding device nodes, and the devices behind them.

use super::memfs::MemFs;
use super::*;
use parking_lot::Mutex as PMutex;

pub fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12)
}

fn major_minor(rdev: u64) -> (u64, u64) {
    ((rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & !0xff))
}

/// The host terminal the sandbox was started on, if any (for /dev/tty).
static CONSOLE: PMutex<Option<Arc<OpenFile>>> = PMutex::new(None);

pub fn set_console(f: Arc<OpenFile>) {
    *CONSOLE.lock() = Some(f);
}

/// Is the sandbox's stdio a host terminal (the console)?
pub fn has_console() -> bool {
    CONSOLE.lock().is_some()
}

pub fn open_device(rdev: u64, flags: u32) -> KResult<Arc<dyn FileOps>> {
    match major_minor(rdev) {
        (1, 3) => Ok(Arc::new(Dev::Null)),
        (1, 5) => Ok(Arc::new(Dev::Zero)),
        (1, 7) => Ok(Arc::new(Dev::Full)),
        (1, 8) | (1, 9) => Ok(Arc::new(Dev::Random)),
        (1, 11) => {
            let k = crate::kernel::current().ok_or(ENXIO)?.kernel.clone();
            Ok(crate::kernel::klog::Kmsg::open(&k.klog))
        }
        // /dev/tty: the controlling terminal (a pty, or the host console).
        (5, 0) => match super::pty::open_controlling(flags) {
            Some(r) => r,
            None => CONSOLE.lock().as_ref().map(|f| f.ops.clone()).ok_or(ENXIO),
        },
        // /dev/console: the host terminal the sandbox runs on, when there is one.
        (5, 1) => CONSOLE.lock().as_ref().map(|f| f.ops.clone()).ok_or(ENXIO),
        (5, 2) => super::pty::open_master(flags),
        (136, n) => super::pty::open_slave_index(n as u32, flags),
        _ => Err(ENXIO),
    }
}

/// Fill /dev with the standard nodes.
pub fn populate(root: &Arc<dyn Inode>, c: &Creds) -> KResult<()> {
    for (name, maj, min, mode) in [
        ("null", 1, 3, 0o666),
        ("zero", 1, 5, 0o666),
        ("full", 1, 7, 0o666),
        ("random", 1, 8, 0o666),
        ("urandom", 1, 9, 0o666),
        ("tty", 5, 0, 0o666),
        ("console", 5, 1, 0o600),
        ("ptmx", 5, 2, 0o666),
        ("kmsg", 1, 11, 0o644),
    ] {
        root.mknod(name.as_bytes(), S_IFCHR | mode, makedev(maj, min), c)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        root.symlink(name.as_bytes(), target.as_bytes(), c)?;
    }
    root.mkdir(b"shm", 0o1777, c)?;
    root.mkdir(b"pts", 0o755, c)?;
    root.mkdir(b"mqueue", 0o1777, c)?;
    Ok(())
}

pub fn new_fs() -> Arc<MemFs> {
    MemFs::new(0x6, None)
}

enum Dev {
    Null,
    Zero,
    Full,
    Random,
}

pub fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: getrandom writes into the valid remainder of buf.
        let n = unsafe {
            libc::getrandom(
                buf[done..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - done,
                0,
            )
        };
        if n > 0 {
            done += n as usize;
        }
    }
}

impl FileOps for Dev {
    fn read(&self, _f: &OpenFile, _t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        match self {
            Dev::Null => Ok(0),
            Dev::Zero | Dev::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Dev::Random => {
                fill_random(buf);
                Ok(buf.len())
            }
        }
    }
    fn write(&self, _f: &OpenFile, _t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        match self {
            Dev::Full => Err(ENOSPC),
            _ => Ok(buf.len()),
        }
    }
    fn seekable(&self) -> bool {
        true
    }
    fn mmap_source(&self) -> Option<Arc<dyn crate::mm::MapSource>> {
        None
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

//! The memory file: one memfd holding all application memory, mapped once into the
//! Sentry. Frames are 4 KiB pages of it, reference counted for sharing (copy-on-write,
//! page cache).

use crate::errno::{KResult, ENOMEM};
use parking_lot::Mutex;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

pub const PAGE: u64 = 4096;
/// The memory file's size: address space reserved, not memory used.
const SIZE: u64 = 64 << 30;

pub struct MemFile {
    fd: OwnedFd,
    base: usize,
    alloc: Mutex<Alloc>,
    /// The sandbox's memory limit in pages (u64::MAX: none).
    limit_pages: std::sync::atomic::AtomicU64,
}

struct Alloc {
    next: u64,
    free: Vec<u64>,
    refs: Vec<u32>,
    used: u64,
}

static MEMFILE: OnceLock<MemFile> = OnceLock::new();

/// The process-wide memory file.
pub fn memfile() -> &'static MemFile {
    MEMFILE.get_or_init(|| MemFile::new().expect("cannot create the memory file"))
}

impl MemFile {
    fn new() -> std::io::Result<MemFile> {
        // SAFETY: memfd_create with a static name; the result is checked.
        let fd = unsafe { libc::memfd_create(c"rvisor-memory".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on our memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), SIZE as i64) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new shared mapping of the whole file; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the mapping above; forked stub processes must not inherit it.
        unsafe { libc::madvise(p, SIZE as usize, libc::MADV_DONTFORK) };
        Ok(MemFile {
            fd,
            base: p as usize,
            alloc: Mutex::new(Alloc {
                next: 0,
                free: vec![],
                refs: vec![],
                used: 0,
            }),
            limit_pages: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// A zeroed frame with one reference.
    /// Cap the memory all application pages together may use.
    /// `u64::MAX` removes the limit.
    pub fn set_limit(&self, bytes: u64) {
        let pages = if bytes == u64::MAX {
            u64::MAX
        } else {
            bytes / PAGE
        };
        self.limit_pages
            .store(pages, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn limit_bytes(&self) -> Option<u64> {
        let l = self.limit_pages.load(std::sync::atomic::Ordering::Relaxed);
        (l != u64::MAX).then(|| l * PAGE)
    }

    pub fn alloc(&self) -> KResult<Frame> {
        let mut a = self.alloc.lock();
        if a.used >= self.limit_pages.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ENOMEM);
        }
        let idx = match a.free.pop() {
            Some(i) => i,
            None => {
                if (a.next + 1) * PAGE > SIZE {
                    return Err(ENOMEM);
                }
                a.next += 1;
                a.refs.push(0);
                a.next - 1
            }
        };
        a.refs[idx as usize] = 1;
        a.used += 1;
        Ok(Frame(idx))
    }

    /// A frame holding a copy of `src`.
    pub fn alloc_copy(&self, src: &Frame) -> KResult<Frame> {
        let f = self.alloc()?;
        f.bytes_mut().copy_from_slice(src.bytes());
        Ok(f)
    }

    pub fn used_bytes(&self) -> u64 {
        self.alloc.lock().used * PAGE
    }

    fn ptr(&self, idx: u64) -> *mut u8 {
        (self.base + (idx * PAGE) as usize) as *mut u8
    }
}

/// One reference to a frame of the memory file.
pub struct Frame(u64);

impl Frame {
    /// The frame's offset in the memory file.
    pub fn offset(&self) -> u64 {
        self.0 * PAGE
    }
    pub fn refs(&self) -> u32 {
        memfile().alloc.lock().refs[self.0 as usize]
    }
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the frame lies inside the Sentry's mapping of the memory file, which
        // lives for the whole process. Application threads may write it concurrently;
        // the Sentry treats the contents as plain bytes, as Linux does.
        unsafe { std::slice::from_raw_parts(memfile().ptr(self.0), PAGE as usize) }
    }
    /// Make the frame read as zeros everywhere it is mapped and give its memory back to
    /// the host; the frame stays allocated (MADV_REMOVE, hole punching).
    pub fn zero(&self) {
        let mf = memfile();
        // SAFETY: punching a hole in our own memfd, inside this frame.
        let r = unsafe {
            libc::fallocate(
                mf.fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                self.offset() as i64,
                PAGE as i64,
            )
        };
        if r != 0 {
            self.bytes_mut().fill(0);
        }
    }

    /// Whether the host holds memory for the frame: it has been touched (by the
    /// application or the Sentry) since it was allocated or zeroed. Freed and zeroed
    /// frames are holes in the memory file (mincore).
    pub fn resident(&self) -> bool {
        let off = self.offset() as i64;
        // SAFETY: lseek on our own memfd; only its result is used (nothing reads or
        // writes the memory file through the file position).
        let r = unsafe { libc::lseek(memfile().fd.as_raw_fd(), off, libc::SEEK_DATA) };
        r == off
    }

    #[allow(clippy::mut_from_ref)]
    pub fn bytes_mut(&self) -> &mut [u8] {
        // SAFETY: as in bytes(); concurrent writers are the application's own race.
        unsafe { std::slice::from_raw_parts_mut(memfile().ptr(self.0), PAGE as usize) }
    }
}

impl Clone for Frame {
    fn clone(&self) -> Frame {
        memfile().alloc.lock().refs[self.0 as usize] += 1;
        Frame(self.0)
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let mf = memfile();
        let mut a = mf.alloc.lock();
        let r = &mut a.refs[self.0 as usize];
        *r -= 1;
        if *r == 0 {
            a.used -= 1;
            a.free.push(self.0);
            // Give the memory back and make the frame read as zeros when reused.
            // SAFETY: punching a hole in our own memfd.
            unsafe {
                libc::fallocate(
                    mf.fd.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    (self.0 * PAGE) as i64,
                    PAGE as i64,
                )
            };
        }
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({:#x})", self.offset())
    }
}

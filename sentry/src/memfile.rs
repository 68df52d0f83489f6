//! The memory file: one file holding all application memory, mapped once into the
//! Sentry. Frames are 4 KiB pages of it, reference counted for sharing (copy-on-write,
//! page cache).
//!
//! The file is an unlinked file on a tmpfs mounted `huge=advise` in the Sentry's own
//! mount namespace where the launcher could make one (see [`init`]), else a memfd. On
//! the tmpfs, 2 MiB-aligned runs of 512 frames ([`MemFile::alloc_huge`]) can be backed
//! by host huge pages: memfd's internal mount follows the host's shmem_enabled, which is
//! `never` on these hosts.
//!
//! Free frames are kept as runs, so that a large allocation gets consecutive frames and
//! can be mapped with one call. Released frames are given back to the host (a hole
//! punched in the file) in batches, not one system call per page.

use crate::errno::{KResult, ENOMEM};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

pub const PAGE: u64 = 4096;
/// Frames in one host huge page (2 MiB).
pub const HUGE_FRAMES: u64 = 512;
/// The memory file's size: address space reserved, not memory used.
const SIZE: u64 = 64 << 30;

pub struct MemFile {
    fd: OwnedFd,
    base: usize,
    alloc: Mutex<Alloc>,
    /// The sandbox's memory limit in pages (u64::MAX: none).
    limit_pages: std::sync::atomic::AtomicU64,
    /// The file can hold host huge pages (a `huge=advise` tmpfs file, and the host
    /// knows MADV_POPULATE_WRITE).
    huge: bool,
}

#[derive(Default)]
struct Alloc {
    /// Frames from here on have never been used.
    next: u64,
    /// Free runs of frames (first frame -> count), coalesced; they read as zeros.
    free: BTreeMap<u64, u64>,
    /// Released frames whose memory is not yet given back (see `flush`).
    released: Vec<u64>,
    refs: Vec<u32>,
    used: u64,
}

/// Released frames are punched out of the file once this many have gathered.
const RELEASE_BATCH: usize = 512;
/// How many free runs an allocation looks at for one long enough.
const FIRST_FIT_SCAN: usize = 32;

impl Alloc {
    /// Give the released frames' memory back to the host and make them free runs.
    fn flush(&mut self, fd: i32) {
        if self.released.is_empty() {
            return;
        }
        let mut r = std::mem::take(&mut self.released);
        r.sort_unstable();
        let mut i = 0;
        while i < r.len() {
            let mut j = i + 1;
            while j < r.len() && r[j] == r[j - 1] + 1 {
                j += 1;
            }
            let (start, n) = (r[i], (j - i) as u64);
            // SAFETY: punching a hole in our own memfd, over frames nobody references.
            unsafe {
                libc::fallocate(
                    fd,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    (start * PAGE) as i64,
                    (n * PAGE) as i64,
                )
            };
            self.add_free(start, n);
            i = j;
        }
        self.released = r;
        self.released.clear();
    }

    fn add_free(&mut self, mut start: u64, mut n: u64) {
        if let Some((&ps, &pn)) = self.free.range(..start).next_back() {
            if ps + pn == start {
                self.free.remove(&ps);
                start = ps;
                n += pn;
            }
        }
        if let Some(nn) = self.free.remove(&(start + n)) {
            n += nn;
        }
        self.free.insert(start, n);
    }

    /// Up to `n` consecutive frames: from a free run long enough, else from the
    /// never-used end, else the first free run. Returns (first frame, count).
    fn take_run(&mut self, n: u64) -> Option<(u64, u64)> {
        let fit = self
            .free
            .iter()
            .take(FIRST_FIT_SCAN)
            .find(|(_, &l)| l >= n)
            .map(|(&s, &l)| (s, l));
        let (start, len) = match fit {
            Some(f) => f,
            None if (self.next + n) * PAGE <= SIZE => {
                let s = self.next;
                self.next += n;
                self.refs.resize(self.next as usize, 0);
                return Some((s, n));
            }
            None => self.free.iter().next().map(|(&s, &l)| (s, l))?,
        };
        self.free.remove(&start);
        let got = len.min(n);
        if len > got {
            self.free.insert(start + got, len - got);
        }
        Some((start, got))
    }

    /// `HUGE_FRAMES` consecutive frames starting at a multiple of `HUGE_FRAMES`: from a
    /// free run that holds such a block, else from the never-used end (the frames
    /// skipped to reach the boundary become a free run). None if neither has one.
    fn take_aligned(&mut self) -> Option<u64> {
        let h = HUGE_FRAMES;
        let fit = self
            .free
            .iter()
            .take(FIRST_FIT_SCAN)
            .map(|(&s, &l)| (s, l, s.next_multiple_of(h)))
            .find(|&(s, l, a)| a + h <= s + l);
        if let Some((s, l, a)) = fit {
            self.free.remove(&s);
            if a > s {
                self.free.insert(s, a - s);
            }
            if s + l > a + h {
                self.free.insert(a + h, s + l - a - h);
            }
            return Some(a);
        }
        let a = self.next.next_multiple_of(h);
        if (a + h) * PAGE > SIZE {
            return None;
        }
        if a > self.next {
            let skipped = (self.next, a - self.next);
            self.add_free(skipped.0, skipped.1);
        }
        self.next = a + h;
        self.refs.resize(self.next as usize, 0);
        Some(a)
    }
}

static MEMFILE: OnceLock<MemFile> = OnceLock::new();

/// The process-wide memory file.
pub fn memfile() -> &'static MemFile {
    MEMFILE.get_or_init(|| MemFile::new(None).expect("cannot create the memory file"))
}

/// Make the memory file from `file` (an empty file on a `huge=advise` tmpfs, made by
/// the launcher before the Sentry lost sight of mounts), or a memfd where it is None.
/// Must come before the first [`memfile`]; returns whether huge pages are in use.
pub fn init(file: Option<OwnedFd>) -> std::io::Result<bool> {
    let mf = MemFile::new(file)?;
    let huge = mf.huge;
    if MEMFILE.set(mf).is_err() {
        tracing::warn!("memory file: init after first use, the first one stays");
        return Ok(memfile().huge);
    }
    Ok(huge)
}

impl MemFile {
    fn new(file: Option<OwnedFd>) -> std::io::Result<MemFile> {
        let tmpfs = file.is_some();
        let fd = match file {
            Some(f) => f,
            None => {
                // SAFETY: memfd_create with a static name; the result is checked.
                let fd =
                    unsafe { libc::memfd_create(c"rvisor-memory".as_ptr(), libc::MFD_CLOEXEC) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: a fresh descriptor we own.
                unsafe { OwnedFd::from_raw_fd(fd) }
            }
        };
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
        // An empty range: only whether the host knows the advice (Linux >= 5.14).
        // SAFETY: madvise of zero bytes changes nothing.
        let populate_write = unsafe { libc::madvise(p, 0, libc::MADV_POPULATE_WRITE) } == 0;
        if tmpfs && !populate_write {
            tracing::info!("memory file: no MADV_POPULATE_WRITE on this host, no huge pages");
        }
        Ok(MemFile {
            huge: tmpfs && populate_write,
            fd,
            base: p as usize,
            alloc: Mutex::new(Alloc::default()),
            limit_pages: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

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

    /// A zeroed frame with one reference.
    pub fn alloc(&self) -> KResult<Frame> {
        Ok(self.alloc_many(1)?.pop().expect("one frame"))
    }

    /// `n` zeroed frames with one reference each, as consecutive in the file as the
    /// free space allows (in file order within each run).
    pub fn alloc_many(&self, n: usize) -> KResult<Vec<Frame>> {
        let mut a = self.alloc.lock();
        let limit = self.limit_pages.load(std::sync::atomic::Ordering::Relaxed);
        if a.used.saturating_add(n as u64) > limit {
            return Err(ENOMEM);
        }
        if a.free.is_empty() || a.released.len() >= RELEASE_BATCH {
            a.flush(self.fd.as_raw_fd());
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let want = (n - out.len()) as u64;
            let (start, got) = match a.take_run(want) {
                Some(r) => r,
                None if !a.released.is_empty() => {
                    a.flush(self.fd.as_raw_fd());
                    continue;
                }
                None => {
                    // Out of space: give back what was taken.
                    drop(a);
                    drop(out);
                    return Err(ENOMEM);
                }
            };
            for idx in start..start + got {
                a.refs[idx as usize] = 1;
                out.push(Frame(idx));
            }
            a.used += got;
        }
        Ok(out)
    }

    /// `HUGE_FRAMES` zeroed frames, consecutive from a 2 MiB-aligned file offset, each
    /// with one reference; None where the file has no huge pages or no such run is free
    /// (the caller falls back to [`alloc_many`](Self::alloc_many)).
    pub fn alloc_huge(&self) -> KResult<Option<Vec<Frame>>> {
        if !self.huge {
            return Ok(None);
        }
        let mut a = self.alloc.lock();
        let limit = self.limit_pages.load(std::sync::atomic::Ordering::Relaxed);
        if a.used.saturating_add(HUGE_FRAMES) > limit {
            return Err(ENOMEM);
        }
        if a.released.len() >= RELEASE_BATCH {
            a.flush(self.fd.as_raw_fd());
        }
        let Some(start) = a.take_aligned() else {
            return Ok(None);
        };
        for idx in start..start + HUGE_FRAMES {
            a.refs[idx as usize] = 1;
        }
        a.used += HUGE_FRAMES;
        Ok(Some((start..start + HUGE_FRAMES).map(Frame).collect()))
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
            // Its memory goes back to the host with the next batch; until then it is
            // not free, so nobody gets it with old contents.
            a.released.push(self.0);
            if a.released.len() >= RELEASE_BATCH {
                a.flush(mf.fd.as_raw_fd());
            }
        }
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({:#x})", self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_runs_come_from_free_runs_or_the_aligned_end() {
        let mut a = Alloc {
            next: 3,
            refs: vec![0; 3],
            ..Default::default()
        };
        // From the end: frames 3..512 become a free run.
        assert_eq!(a.take_aligned(), Some(HUGE_FRAMES));
        assert_eq!(a.next, 2 * HUGE_FRAMES);
        assert_eq!(a.free.get(&3), Some(&(HUGE_FRAMES - 3)));
        // A free run that holds an aligned block gives it, keeping the rest free.
        a.free.clear();
        a.free.insert(HUGE_FRAMES - 10, HUGE_FRAMES + 20);
        assert_eq!(a.take_aligned(), Some(HUGE_FRAMES));
        assert_eq!(a.free.get(&(HUGE_FRAMES - 10)), Some(&10));
        assert_eq!(a.free.get(&(2 * HUGE_FRAMES)), Some(&10));
        // A free run too short once aligned is left alone.
        a.free.clear();
        a.free.insert(1, HUGE_FRAMES);
        assert_eq!(a.take_aligned(), Some(2 * HUGE_FRAMES));
        assert_eq!(a.free.get(&1), Some(&HUGE_FRAMES));
    }

    #[test]
    fn runs_are_consecutive_and_reused_frames_read_as_zeros() {
        let mf = memfile();
        let n = RELEASE_BATCH + 100;
        let frames = mf.alloc_many(n).unwrap();
        assert_eq!(frames.len(), n);
        let consecutive = frames
            .windows(2)
            .filter(|w| w[1].offset() == w[0].offset() + PAGE)
            .count();
        assert!(consecutive > n / 2, "mostly one run: {consecutive} of {n}");
        for f in &frames {
            f.bytes_mut().fill(0xaa);
        }
        let offsets: Vec<u64> = frames.iter().map(|f| f.offset()).collect();
        drop(frames);
        // Released frames come back (after their memory was punched out) reading as
        // zeros; other tests allocate at the same time, so look a while.
        let mut kept = vec![];
        let mut reused = false;
        for _ in 0..4 * n {
            let f = mf.alloc().unwrap();
            assert!(f.bytes().iter().all(|&b| b == 0), "{f:?} reads as zeros");
            reused |= offsets.contains(&f.offset());
            kept.push(f);
            if reused {
                break;
            }
        }
        assert!(reused);
    }
}

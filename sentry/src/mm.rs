//! The memory manager: VMAs and resolved pages of one application address space, faults,
//! copy-on-write, and copy-in/copy-out through the memory file.

use crate::errno::*;
use crate::memfile::{memfile, Frame, PAGE};
use parking_lot::Mutex;
use platform::{AddressSpace, Prot};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

/// Where a file-backed mapping gets its pages: a file's page cache.
pub trait MapSource: Send + Sync {
    /// The cache frame for page `index` of the file (loaded on first use), or None past
    /// the end of the file.
    fn page(&self, index: u64) -> KResult<Option<Frame>>;
    /// Whether writable shared mappings are refused (memfd F_SEAL_WRITE).
    fn write_sealed(&self) -> bool {
        false
    }
}

#[derive(Clone)]
pub enum Backing {
    Anon,
    File {
        src: Arc<dyn MapSource>,
        offset: u64,
    },
}

#[derive(Clone)]
pub struct Vma {
    pub end: u64,
    pub prot: u32,
    pub shared: bool,
    pub growsdown: bool,
    pub backing: Backing,
    /// What /proc/PID/maps shows: a path, "[heap]", "[stack]" or "".
    pub name: String,
    pub dev_ino: (u64, u64),
    pub dontfork: bool,
}

struct Pte {
    frame: Frame,
    /// What the platform has mapped for this page (PROT_* bits; 0 = not mapped).
    mapped: u32,
}

pub struct MmInner {
    pub vmas: BTreeMap<u64, Vma>,
    ptes: BTreeMap<u64, Pte>,
    pub brk_start: u64,
    pub brk: u64,
    pub mmap_top: u64,
    pub stack_top: u64,
    pub arg_range: (u64, u64),
    pub env_range: (u64, u64),
    pub auxv: Vec<(u64, u64)>,
    pub exe: Vec<u8>,
}

pub struct Mm {
    pub aspace: Arc<dyn AddressSpace>,
    pub inner: Mutex<MmInner>,
    /// The most pages ever resident at once, noted before pages are dropped (peak RSS).
    hiwater: std::sync::atomic::AtomicU64,
    /// How much of the address space's CPU time (see `AddressSpace::cpu_time_ns`) has
    /// been attributed to tasks as user time.
    pub cpu_claimed: std::sync::atomic::AtomicU64,
    /// The tasks running application code in this address space, among which its CPU
    /// time is shared out (kernel::acct).
    pub cpu_users: Mutex<Vec<std::sync::Weak<crate::kernel::Task>>>,
    /// prctl(PR_SET_DUMPABLE): a property of the address space, as in Linux (copied by
    /// fork, set again by execve's new address space).
    pub dumpable: std::sync::atomic::AtomicBool,
}

/// Why a fault could not be resolved.
#[derive(Debug, Clone, Copy)]
pub enum FaultError {
    /// SIGSEGV with this si_code (SEGV_MAPERR = 1, SEGV_ACCERR = 2).
    Segv(i32),
    /// SIGBUS (BUS_ADRERR = 2): a file mapping past the end of the file.
    Bus,
    Oom,
    /// The page is already mapped with all the VMA allows (ptrace cannot say what
    /// the access was): retry, and treat a repeat at the same address as SEGV_ACCERR.
    AlreadyMapped,
}

pub const MMAP_TOP: u64 = 0x7f00_0000_0000;
pub const STACK_TOP: u64 = 0x7ffd_0000_0000;
const STACK_MAX: u64 = 8 << 20;

fn to_prot(p: u32) -> Prot {
    let mut r = Prot::empty();
    if p & PROT_READ != 0 {
        r |= Prot::READ;
    }
    if p & PROT_WRITE != 0 {
        r |= Prot::WRITE | Prot::READ;
    }
    if p & PROT_EXEC != 0 {
        r |= Prot::EXEC | Prot::READ;
    }
    r
}

pub fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}
pub fn page_up(a: u64) -> Option<u64> {
    a.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1))
}

impl Mm {
    pub fn new(aspace: Arc<dyn AddressSpace>) -> Mm {
        // The platform's work to create the address space is not the application's.
        let claimed = aspace.cpu_time_ns().unwrap_or(0);
        Mm {
            hiwater: Default::default(),
            cpu_claimed: claimed.into(),
            cpu_users: Mutex::new(Vec::new()),
            dumpable: true.into(),
            aspace,
            inner: Mutex::new(MmInner {
                vmas: BTreeMap::new(),
                ptes: BTreeMap::new(),
                brk_start: 0,
                brk: 0,
                mmap_top: MMAP_TOP,
                stack_top: STACK_TOP,
                arg_range: (0, 0),
                env_range: (0, 0),
                auxv: vec![],
                exe: vec![],
            }),
        }
    }

    /// The VMA containing `addr`, as (start, vma).
    pub fn find_vma(inner: &MmInner, addr: u64) -> Option<(u64, &Vma)> {
        inner
            .vmas
            .range(..=addr)
            .next_back()
            .filter(|(_, v)| addr < v.end)
            .map(|(s, v)| (*s, v))
    }

    /// Resolve a fault at `addr` and map the page into the platform.
    pub fn fault(&self, addr: u64, access: platform::Access) -> Result<(), FaultError> {
        let mut inner = self.inner.lock();
        let page = page_down(addr);
        let want = match access {
            platform::Access::Write => PROT_WRITE,
            platform::Access::Exec => PROT_EXEC,
            platform::Access::Read => PROT_READ,
            platform::Access::Unknown => 0,
        };
        self.resolve(&mut inner, page, want, true).map(|_| ())
    }

    /// Make `page` present with at least `want` access; with `map`, also mirror it into
    /// the platform. Returns the frame.
    fn resolve(
        &self,
        inner: &mut MmInner,
        page: u64,
        want: u32,
        map: bool,
    ) -> Result<Frame, FaultError> {
        let (start, vma) = match Self::find_vma(inner, page) {
            Some((s, v)) => (s, v.clone()),
            None => self.grow_stack(inner, page)?,
        };
        if vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 || want & !vma.prot != 0 {
            return Err(FaultError::Segv(2));
        }
        if map
            && matches!(vma.backing, Backing::Anon)
            && !inner.ptes.contains_key(&page)
            && vma.prot != 0
        {
            return self.fault_around_anon(inner, page, vma.end, vma.prot);
        }
        let mut fresh = false;
        if let std::collections::btree_map::Entry::Vacant(e) = inner.ptes.entry(page) {
            let frame = match &vma.backing {
                Backing::Anon => memfile().alloc().map_err(|_| FaultError::Oom)?,
                Backing::File { src, offset } => {
                    let idx = (offset + (page - start)) / PAGE;
                    match src.page(idx) {
                        Ok(Some(f)) => f,
                        Ok(None) => return Err(FaultError::Bus),
                        Err(_) => return Err(FaultError::Bus),
                    }
                }
            };
            e.insert(Pte { frame, mapped: 0 });
            fresh = true;
        }
        let pte = inner.ptes.get_mut(&page).expect("present");
        let exclusive = vma.shared || pte.frame.refs() == 1;
        let writable = vma.prot & PROT_WRITE != 0;
        // A write to a page shared with others (copy-on-write): copy it now. With an
        // unknown access type, a second fault on a present read-only page means a write.
        let is_write = want & PROT_WRITE != 0
            || (want == 0 && !fresh && pte.mapped != 0 && pte.mapped & PROT_WRITE == 0);
        let mut copied = false;
        if writable && is_write && !exclusive {
            pte.frame = memfile()
                .alloc_copy(&pte.frame)
                .map_err(|_| FaultError::Oom)?;
            copied = true;
        } else if want == 0 && !fresh && pte.mapped == vma.prot && map {
            // Everything the VMA allows is mapped: either another thread mapped the
            // page while this fault was on its way, or the access is not allowed.
            return Err(FaultError::AlreadyMapped);
        }
        let exclusive = vma.shared || pte.frame.refs() == 1;
        let prot = if exclusive {
            vma.prot
        } else {
            vma.prot & !PROT_WRITE
        };
        // Mirror into the platform only what changed: a new frame, or new protections.
        if (map || pte.mapped != 0) && (pte.mapped != prot || copied || fresh) {
            self.aspace
                .map(page, PAGE, pte.frame.offset(), to_prot(prot))
                .map_err(|_| FaultError::Oom)?;
            pte.mapped = prot;
        }
        Ok(pte.frame.clone())
    }

    /// A fault on fresh anonymous memory: allocate this page and up to FAULT_AROUND-1
    /// following absent pages of the VMA, and map them in as few platform calls as the
    /// frames' contiguity allows (one page fault costs a ptrace round trip or more).
    fn fault_around_anon(
        &self,
        inner: &mut MmInner,
        page: u64,
        vma_end: u64,
        prot: u32,
    ) -> Result<Frame, FaultError> {
        const FAULT_AROUND: u64 = 16;
        let mut pages = vec![];
        let mut p = page;
        while p < vma_end
            && pages.len() < FAULT_AROUND as usize
            && (p == page || !inner.ptes.contains_key(&p))
        {
            pages.push((p, memfile().alloc().map_err(|_| FaultError::Oom)?));
            p += PAGE;
        }
        let first = pages[0].1.clone();
        let mut i = 0;
        while i < pages.len() {
            // A run of pages whose frames are consecutive in the memory file.
            let mut j = i + 1;
            while j < pages.len() && pages[j].1.offset() == pages[j - 1].1.offset() + PAGE {
                j += 1;
            }
            let len = (j - i) as u64 * PAGE;
            self.aspace
                .map(pages[i].0, len, pages[i].1.offset(), to_prot(prot))
                .map_err(|_| FaultError::Oom)?;
            i = j;
        }
        for (p, frame) in pages {
            inner.ptes.insert(
                p,
                Pte {
                    frame,
                    mapped: prot,
                },
            );
        }
        Ok(first)
    }

    fn grow_stack(&self, inner: &mut MmInner, page: u64) -> Result<(u64, Vma), FaultError> {
        let (start, vma) = inner
            .vmas
            .range(page..)
            .next()
            .map(|(s, v)| (*s, v.clone()))
            .ok_or(FaultError::Segv(1))?;
        if !vma.growsdown || start - page > STACK_MAX {
            return Err(FaultError::Segv(1));
        }
        // Keep a guard gap below the stack from other mappings.
        if let Some((ps, pv)) = inner.vmas.range(..start).next_back() {
            if pv.end > page.saturating_sub(PAGE) && *ps != start {
                return Err(FaultError::Segv(1));
            }
        }
        let v = inner.vmas.remove(&start).expect("vma");
        inner.vmas.insert(page, v.clone());
        Ok((page, v))
    }

    // ---- copy-in / copy-out ----

    fn access(
        &self,
        addr: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(&Frame, usize, usize, usize),
    ) -> KResult<()> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len as u64).ok_or(EFAULT)?;
        if end > platform::MAX_USER_ADDR {
            return Err(EFAULT);
        }
        let mut inner = self.inner.lock();
        let mut a = addr;
        let mut done = 0usize;
        while a < end {
            let page = page_down(a);
            let off = (a - page) as usize;
            let n = ((PAGE as usize) - off).min((end - a) as usize);
            let want = if write { PROT_WRITE } else { PROT_READ };
            let frame = self
                .resolve(&mut inner, page, want, false)
                .map_err(|_| EFAULT)?;
            f(&frame, off, done, n);
            a += n as u64;
            done += n;
        }
        Ok(())
    }

    pub fn read(&self, addr: u64, buf: &mut [u8]) -> KResult<()> {
        self.access(addr, buf.len(), false, |fr, off, done, n| {
            buf[done..done + n].copy_from_slice(&fr.bytes()[off..off + n])
        })
    }

    pub fn write(&self, addr: u64, buf: &[u8]) -> KResult<()> {
        self.access(addr, buf.len(), true, |fr, off, done, n| {
            fr.bytes_mut()[off..off + n].copy_from_slice(&buf[done..done + n])
        })
    }

    pub fn read_vec(&self, addr: u64, len: usize) -> KResult<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }

    pub fn read_obj<T: Copy>(&self, addr: u64) -> KResult<T> {
        let mut v = std::mem::MaybeUninit::<T>::uninit();
        // SAFETY: the slice covers exactly the MaybeUninit's bytes.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of::<T>())
        };
        self.read(addr, buf)?;
        // SAFETY: callers use this only for plain-data types, for which any bytes are valid.
        Ok(unsafe { v.assume_init() })
    }

    pub fn write_obj<T: Copy>(&self, addr: u64, v: &T) -> KResult<()> {
        // SAFETY: viewing a plain-data value as its bytes.
        let buf = unsafe {
            std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>())
        };
        self.write(addr, buf)
    }

    pub fn read_u64(&self, addr: u64) -> KResult<u64> {
        self.read_obj::<u64>(addr)
    }

    /// A NUL-terminated string of at most `max` bytes (ENAMETOOLONG past that).
    pub fn read_cstr(&self, addr: u64, max: usize) -> KResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut a = addr;
        loop {
            let chunk = (PAGE - (a % PAGE)) as usize;
            let mut buf = vec![0u8; chunk];
            self.read(a, &mut buf)?;
            if let Some(p) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..p]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            if out.len() > max {
                return Err(ENAMETOOLONG);
            }
            a += chunk as u64;
        }
    }

    // ---- mapping changes ----

    /// Split VMAs so that `addr` is a boundary.
    fn split(inner: &mut MmInner, addr: u64) {
        if let Some((s, v)) = Self::find_vma(inner, addr) {
            if s < addr {
                let mut hi = v.clone();
                if let Backing::File { offset, .. } = &mut hi.backing {
                    *offset += addr - s;
                }
                inner.vmas.get_mut(&s).expect("vma").end = addr;
                inner.vmas.insert(addr, hi);
            }
        }
    }

    /// Remove everything in [start, end) (page aligned).
    pub fn unmap_locked(&self, inner: &mut MmInner, start: u64, end: u64) {
        Self::split(inner, start);
        Self::split(inner, end);
        let keys: Vec<u64> = inner.vmas.range(start..end).map(|(k, _)| *k).collect();
        for k in keys {
            inner.vmas.remove(&k);
        }
        let pages: Vec<u64> = inner.ptes.range(start..end).map(|(k, _)| *k).collect();
        self.note_hiwater(inner);
        let any_mapped = pages.iter().any(|p| inner.ptes[p].mapped != 0);
        if any_mapped {
            let _ = self.aspace.unmap(start, end - start);
        }
        for p in pages {
            inner.ptes.remove(&p);
        }
    }

    pub fn munmap(&self, addr: u64, len: u64) -> KResult<()> {
        if !addr.is_multiple_of(PAGE) || len == 0 {
            return Err(EINVAL);
        }
        let end = page_up(addr.checked_add(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
        if end > platform::MAX_USER_ADDR {
            return Err(EINVAL);
        }
        let mut inner = self.inner.lock();
        self.unmap_locked(&mut inner, addr, end);
        Ok(())
    }

    /// Find a free range of `len` bytes below the mmap top.
    pub fn find_free(inner: &MmInner, len: u64, hint: u64) -> Option<u64> {
        if hint != 0 && hint.is_multiple_of(PAGE) {
            let end = hint.checked_add(len)?;
            if end <= platform::MAX_USER_ADDR
                && inner
                    .vmas
                    .range(..end)
                    .next_back()
                    .is_none_or(|(_, v)| v.end <= hint)
            {
                return Some(hint);
            }
        }
        let mut top = inner.mmap_top;
        for (s, v) in inner.vmas.range(..inner.mmap_top).rev() {
            if v.end <= top && top - v.end >= len {
                return Some(top - len);
            }
            top = top.min(*s);
        }
        if top >= len + 0x10000 {
            Some(top - len)
        } else {
            None
        }
    }

    /// Insert a mapping at `addr` (MAP_FIXED semantics: replaces what is there).
    pub fn map_fixed(&self, inner: &mut MmInner, addr: u64, len: u64, vma: Vma) {
        self.unmap_locked(inner, addr, addr + len);
        inner.vmas.insert(
            addr,
            Vma {
                end: addr + len,
                ..vma
            },
        );
    }

    pub fn overlaps(inner: &MmInner, start: u64, end: u64) -> bool {
        inner
            .vmas
            .range(..end)
            .next_back()
            .is_some_and(|(_, v)| v.end > start)
    }

    pub fn mprotect(&self, addr: u64, len: u64, prot: u32) -> KResult<()> {
        if !addr.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        let end = page_up(addr.checked_add(len).ok_or(ENOMEM)?).ok_or(ENOMEM)?;
        if len == 0 {
            return Ok(());
        }
        let mut inner = self.inner.lock();
        // Every page of the range must be mapped.
        let mut a = addr;
        while a < end {
            match Self::find_vma(&inner, a) {
                Some((_, v)) => a = v.end,
                None => return Err(ENOMEM),
            }
        }
        Self::split(&mut inner, addr);
        Self::split(&mut inner, end);
        for (_, v) in inner.vmas.range_mut(addr..end) {
            v.prot = prot;
        }
        // Drop the platform's mappings; pages fault back in with the new protection.
        let mut any = false;
        for (_, p) in inner.ptes.range_mut(addr..end) {
            if p.mapped != 0 {
                p.mapped = 0;
                any = true;
            }
        }
        if any {
            self.aspace.unmap(addr, end - addr).map_err(|_| ENOMEM)?;
        }
        Ok(())
    }

    /// madvise(MADV_DONTNEED): private pages read as zero (or the file) again.
    pub fn dontneed(&self, addr: u64, len: u64) -> KResult<()> {
        let end = page_up(addr.checked_add(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
        let mut inner = self.inner.lock();
        let pages: Vec<u64> = inner.ptes.range(addr..end).map(|(k, _)| *k).collect();
        self.note_hiwater(&inner);
        if pages.iter().any(|p| inner.ptes[p].mapped != 0) {
            self.aspace.unmap(addr, end - addr).map_err(|_| ENOMEM)?;
        }
        for p in pages {
            inner.ptes.remove(&p);
        }
        Ok(())
    }

    /// Move the pages of [old, old+len) to [new, new+len) (mremap).
    pub fn move_range(&self, inner: &mut MmInner, old: u64, len: u64, new: u64) {
        Self::split(inner, old);
        Self::split(inner, old + len);
        let vkeys: Vec<u64> = inner.vmas.range(old..old + len).map(|(k, _)| *k).collect();
        let mut vmas = vec![];
        for k in vkeys {
            vmas.push((k, inner.vmas.remove(&k).expect("vma")));
        }
        let pkeys: Vec<u64> = inner.ptes.range(old..old + len).map(|(k, _)| *k).collect();
        let mut ptes = vec![];
        for k in pkeys {
            ptes.push((k, inner.ptes.remove(&k).expect("pte")));
        }
        let _ = self.aspace.unmap(old, len);
        self.unmap_locked(inner, new, new + len);
        for (k, mut v) in vmas {
            v.end = v.end - old + new;
            inner.vmas.insert(k - old + new, v);
        }
        for (k, mut p) in ptes {
            p.mapped = 0;
            inner.ptes.insert(k - old + new, p);
        }
    }

    /// A copy-on-write copy of this address space in `aspace` (fork).
    pub fn fork(&self, aspace: Arc<dyn AddressSpace>) -> KResult<Mm> {
        let mut inner = self.inner.lock();
        let child = Mm::new(aspace);
        child.dumpable.store(
            self.dumpable.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        {
            let mut c = child.inner.lock();
            for (s, v) in inner.vmas.iter() {
                if !v.dontfork {
                    c.vmas.insert(*s, v.clone());
                }
            }
            // Private writable pages become shared read-only in both: downgrade ours.
            let mut ranges = vec![];
            for (s, v) in inner.vmas.iter() {
                if v.dontfork {
                    continue;
                }
                if !v.shared && v.prot & PROT_WRITE != 0 {
                    ranges.push((*s, v.end));
                }
            }
            for (s, e) in &ranges {
                // Only mapped pages can be protected (mprotect fails on holes), so
                // downgrade each run of consecutive writable-mapped pages.
                let prot = to_prot(inner.vmas[s].prot & !PROT_WRITE);
                let mut runs: Vec<(u64, u64)> = vec![];
                for (a, p) in inner.ptes.range_mut(*s..*e) {
                    if p.mapped & PROT_WRITE != 0 {
                        p.mapped &= !PROT_WRITE;
                        match runs.last_mut() {
                            Some(r) if r.1 == *a => r.1 += PAGE,
                            _ => runs.push((*a, *a + PAGE)),
                        }
                    }
                }
                for (a, b) in runs {
                    self.aspace.protect(a, b - a, prot).map_err(|_| ENOMEM)?;
                }
            }
            for (k, p) in inner.ptes.iter() {
                if c.vmas
                    .range(..=*k)
                    .next_back()
                    .is_some_and(|(_, v)| *k < v.end)
                {
                    c.ptes.insert(
                        *k,
                        Pte {
                            frame: p.frame.clone(),
                            mapped: 0,
                        },
                    );
                }
            }
            c.brk_start = inner.brk_start;
            c.brk = inner.brk;
            c.mmap_top = inner.mmap_top;
            c.stack_top = inner.stack_top;
            c.arg_range = inner.arg_range;
            c.env_range = inner.env_range;
            c.auxv = inner.auxv.clone();
            c.exe = inner.exe.clone();
        }
        drop(inner);
        Ok(child)
    }

    /// Resident pages (for /proc and rusage).
    pub fn rss_pages(&self) -> u64 {
        self.inner.lock().ptes.len() as u64
    }

    /// Remember the current resident size if it is the largest yet (called before
    /// pages go away, so the peak is never missed).
    fn note_hiwater(&self, inner: &MmInner) {
        self.hiwater.fetch_max(
            inner.ptes.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The peak resident size in pages (VmHWM, ru_maxrss).
    pub fn hiwater_pages(&self) -> u64 {
        let now = self.rss_pages();
        self.hiwater
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed)
            .max(now)
    }

    /// Pages present in [start, end) (for smaps).
    pub fn resident_in(&self, inner: &MmInner, start: u64, end: u64) -> u64 {
        inner.ptes.range(start..end).count() as u64
    }

    /// Whether the page at `addr` is present (mincore).
    pub fn resident(&self, inner: &MmInner, addr: u64) -> bool {
        inner.ptes.contains_key(&page_down(addr))
    }

    /// Bytes of address space in use (for RLIMIT_AS), from the locked state.
    pub fn vm_size(inner: &MmInner) -> u64 {
        inner.vmas.iter().map(|(s, v)| v.end - s).sum()
    }

    pub fn total_vm(&self) -> u64 {
        self.inner.lock().vmas.iter().map(|(s, v)| v.end - s).sum()
    }
}

impl Mm {
    /// The memory-file offset backing `addr` (for shared futex keys).
    pub fn frame_offset(&self, addr: u64) -> KResult<u64> {
        let mut inner = self.inner.lock();
        let f = self
            .resolve(&mut inner, page_down(addr), PROT_READ, false)
            .map_err(|_| EFAULT)?;
        Ok(f.offset() + (addr % PAGE))
    }
}

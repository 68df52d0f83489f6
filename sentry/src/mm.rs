//! The memory manager: VMAs and resolved pages of one application address space, faults,
//! copy-on-write, and copy-in/copy-out through the memory file.

use crate::errno::*;
use crate::memfile::{memfile, Frame, HUGE_FRAMES, PAGE};
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
    /// Whether page `index` is in the page cache (mincore).
    fn cached(&self, _index: u64) -> bool {
        false
    }
    /// Whether a fault on a nearby page may bring page `index` in too: it is cached, or
    /// cheap to read (fault-around).
    fn fault_around(&self, index: u64) -> bool {
        self.cached(index)
    }
    /// Make [offset, offset+len) of the file read as zeros and free its memory, keeping
    /// the size (fallocate PUNCH_HOLE|KEEP_SIZE, MADV_REMOVE).
    fn punch_hole(&self, _offset: u64, _len: u64) -> KResult<()> {
        Err(EOPNOTSUPP)
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
    /// MADV_DONTFORK: the child of a fork does not get this range.
    pub dontfork: bool,
    /// MADV_WIPEONFORK: the child gets this range empty (reading zeros).
    pub wipeonfork: bool,
    /// Linux's VM_MAYWRITE: PROT_WRITE may be added (false for a shared mapping of a
    /// file not opened for writing).
    pub maywrite: bool,
}

impl Vma {
    /// A private anonymous mapping ending at `end`, with nothing else set.
    pub fn anon(end: u64, prot: u32) -> Vma {
        Vma {
            end,
            prot,
            shared: false,
            growsdown: false,
            backing: Backing::Anon,
            name: String::new(),
            dev_ino: (0, 0),
            dontfork: false,
            wipeonfork: false,
            maywrite: true,
        }
    }
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
    /// Where the last anonymous fault-around run ended, and its length in pages.
    ra_next: u64,
    ra_pages: u64,
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
/// The stack size limit when no task is at hand (the default RLIMIT_STACK).
const STACK_MAX: u64 = 8 << 20;
const RLIMIT_AS: usize = 9;
const RLIMIT_STACK: usize = 3;
/// Linux's stack_guard_gap: a stack does not grow closer than this to the accessible
/// mapping below it.
const STACK_GUARD_GAP: u64 = 256 * PAGE;

pub const MADV_NORMAL: u64 = 0;
pub const MADV_RANDOM: u64 = 1;
pub const MADV_SEQUENTIAL: u64 = 2;
pub const MADV_WILLNEED: u64 = 3;
pub const MADV_DONTNEED: u64 = 4;
pub const MADV_FREE: u64 = 8;
pub const MADV_REMOVE: u64 = 9;
pub const MADV_DONTFORK: u64 = 10;
pub const MADV_DOFORK: u64 = 11;
pub const MADV_MERGEABLE: u64 = 12;
pub const MADV_UNMERGEABLE: u64 = 13;
pub const MADV_HUGEPAGE: u64 = 14;
pub const MADV_NOHUGEPAGE: u64 = 15;
pub const MADV_DONTDUMP: u64 = 16;
pub const MADV_DODUMP: u64 = 17;
pub const MADV_WIPEONFORK: u64 = 18;
pub const MADV_KEEPONFORK: u64 = 19;
pub const MADV_COLD: u64 = 20;
pub const MADV_PAGEOUT: u64 = 21;
pub const MADV_POPULATE_READ: u64 = 22;
pub const MADV_POPULATE_WRITE: u64 = 23;
pub const MADV_DONTNEED_LOCKED: u64 = 24;
pub const MADV_COLLAPSE: u64 = 25;

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

/// Join mappings (`ops` holds maps only) of consecutive pages of consecutive frames with the same protection.
fn merge_runs(ops: Vec<platform::MapOp>) -> Vec<platform::MapOp> {
    use platform::MapOp::Map;
    let mut out: Vec<platform::MapOp> = Vec::with_capacity(ops.len());
    let mut ops = ops;
    ops.sort_by_key(|op| match op {
        Map { addr, .. }
        | platform::MapOp::Unmap { addr, .. }
        | platform::MapOp::Protect { addr, .. } => *addr,
    });
    for op in ops {
        if let (
            Some(Map {
                addr,
                len,
                file_offset,
                prot,
                populate,
                huge: false,
            }),
            Map {
                addr: a2,
                len: l2,
                file_offset: o2,
                prot: p2,
                populate: q2,
                huge: false,
            },
        ) = (out.last_mut(), op)
        {
            if *addr + *len == a2 && *file_offset + *len == o2 && *prot == p2 && *populate == q2 {
                *len += l2;
                continue;
            }
        }
        out.push(op);
    }
    out
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
                ra_next: 0,
                ra_pages: 0,
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

    /// Resolve a fault at `addr` and map the page into the platform, with the pages
    /// around it that need no new memory (see `map_around`), in one platform call.
    pub fn fault(&self, addr: u64, access: platform::Access) -> Result<(), FaultError> {
        let mut inner = self.inner.lock();
        let page = page_down(addr);
        let want = match access {
            platform::Access::Write => PROT_WRITE,
            platform::Access::Exec => PROT_EXEC,
            platform::Access::Read => PROT_READ,
            platform::Access::Unknown => 0,
        };
        let mut ops = vec![];
        self.resolve(&mut inner, page, want, Some(&mut ops))?;
        if !ops.is_empty() {
            self.map_around(&mut inner, page, &mut ops);
            self.aspace
                .apply(&merge_runs(ops))
                .map_err(|_| FaultError::Oom)?;
        }
        Ok(())
    }

    /// Pages near a fault (the aligned block of AROUND pages holding it) that the
    /// Sentry has but the platform does not map, or that are in the file's page cache:
    /// add mappings for them to `ops`, as Linux's fault-around does. After a fork the
    /// child has every page of its parent, none mapped; an exec'd program reads its
    /// libraries' pages from the page cache.
    fn map_around(&self, inner: &mut MmInner, page: u64, ops: &mut Vec<platform::MapOp>) {
        const AROUND: u64 = 32;
        let Some((start, vma)) = Self::find_vma(inner, page).map(|(s, v)| (s, v.clone())) else {
            return;
        };
        if vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
            return;
        }
        let block = page & !(AROUND * PAGE - 1);
        let lo = block.max(start);
        let hi = (block + AROUND * PAGE).min(vma.end);
        let mut p = lo;
        while p < hi {
            if p != page {
                self.map_one_around(inner, p, start, &vma, ops);
            }
            p += PAGE;
        }
    }

    fn map_one_around(
        &self,
        inner: &mut MmInner,
        p: u64,
        start: u64,
        vma: &Vma,
        ops: &mut Vec<platform::MapOp>,
    ) {
        if let std::collections::btree_map::Entry::Vacant(e) = inner.ptes.entry(p) {
            let Backing::File { src, offset } = &vma.backing else {
                return;
            };
            let idx = (offset + (p - start)) / PAGE;
            if !src.fault_around(idx) {
                return;
            }
            let Ok(Some(frame)) = src.page(idx) else {
                return;
            };
            e.insert(Pte { frame, mapped: 0 });
        }
        let pte = inner.ptes.get_mut(&p).expect("present");
        if pte.mapped != 0 {
            return;
        }
        let prot = if vma.shared || pte.frame.refs() == 1 {
            vma.prot
        } else {
            vma.prot & !PROT_WRITE
        };
        pte.mapped = prot;
        // Host page-table entries now for pages that hold data (file pages, a
        // parent's pages): one in-kernel walk instead of a host fault per page later.
        // Frames never touched stay holes (and not resident, see `resident`).
        let populate = matches!(vma.backing, Backing::File { .. }) || pte.frame.resident();
        ops.push(platform::MapOp::Map {
            addr: p,
            len: PAGE,
            file_offset: pte.frame.offset(),
            prot: to_prot(prot),
            populate,
            huge: false,
        });
    }

    /// Make `page` present with at least `want` access; with `map`, also mirror it into
    /// the platform (through `map`, which `fault` applies). Returns the frame.
    fn resolve(
        &self,
        inner: &mut MmInner,
        page: u64,
        want: u32,
        map: Option<&mut Vec<platform::MapOp>>,
    ) -> Result<Frame, FaultError> {
        let (start, vma) = match Self::find_vma(inner, page) {
            Some((s, v)) => (s, v.clone()),
            None => self.grow_stack(inner, page)?,
        };
        if vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 || want & !vma.prot != 0 {
            return Err(FaultError::Segv(2));
        }
        if map.is_some()
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
        } else if want == 0 && !fresh && pte.mapped == vma.prot && map.is_some() {
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
        if (map.is_some() || pte.mapped != 0) && (pte.mapped != prot || copied || fresh) {
            match map {
                // The faulting page is used at once: make it present in the host now.
                Some(ops) => ops.push(platform::MapOp::Map {
                    addr: page,
                    len: PAGE,
                    file_offset: pte.frame.offset(),
                    prot: to_prot(prot),
                    populate: true,
                    huge: false,
                }),
                None => self
                    .aspace
                    .map(page, PAGE, pte.frame.offset(), to_prot(prot))
                    .map_err(|_| FaultError::Oom)?,
            }
            pte.mapped = prot;
        }
        Ok(pte.frame.clone())
    }

    /// A fault on fresh anonymous memory: allocate this page and the following absent
    /// pages of the VMA, FAULT_AROUND of them, or more while the application keeps
    /// faulting just past the previous run (sequential use: up to 2 MiB, made present
    /// in the host at once), and map them in as few platform calls as the frames'
    /// contiguity allows (one page fault costs a ptrace round trip or more). Full-size
    /// runs end on a 2 MiB boundary, so that the next ones are whole aligned 2 MiB,
    /// which get 2 MiB-aligned frames and may be host huge pages.
    fn fault_around_anon(
        &self,
        inner: &mut MmInner,
        page: u64,
        vma_end: u64,
        prot: u32,
    ) -> Result<Frame, FaultError> {
        const FAULT_AROUND: u64 = 16;
        const MAX_AROUND: u64 = HUGE_FRAMES;
        const HUGE: u64 = HUGE_FRAMES * PAGE;
        let sequential = page == inner.ra_next;
        let window = if sequential {
            (inner.ra_pages * 4).min(MAX_AROUND)
        } else {
            FAULT_AROUND
        };
        let next_present = inner
            .ptes
            .range(page + PAGE..)
            .next()
            .map_or(u64::MAX, |(k, _)| *k);
        let mut limit = page + window * PAGE;
        if window == MAX_AROUND && limit & !(HUGE - 1) > page {
            limit &= !(HUGE - 1);
        }
        let end = vma_end.min(next_present).min(limit);
        let n = ((end - page) / PAGE) as usize;
        let huge = sequential && n as u64 == HUGE_FRAMES && page.is_multiple_of(HUGE);
        let frames = match huge {
            true => memfile().alloc_huge().map_err(|_| FaultError::Oom)?,
            false => None,
        };
        let huge = frames.is_some();
        let frames = match frames {
            Some(f) => f,
            None => memfile().alloc_many(n).map_err(|_| FaultError::Oom)?,
        };
        let mut ops = vec![];
        let mut i = 0;
        while i < n {
            // A run of pages whose frames are consecutive in the memory file.
            let mut j = i + 1;
            while j < n && frames[j].offset() == frames[j - 1].offset() + PAGE {
                j += 1;
            }
            ops.push(platform::MapOp::Map {
                addr: page + i as u64 * PAGE,
                len: (j - i) as u64 * PAGE,
                file_offset: frames[i].offset(),
                prot: to_prot(prot),
                populate: sequential,
                huge,
            });
            i = j;
        }
        self.aspace.apply(&ops).map_err(|_| FaultError::Oom)?;
        let first = frames[0].clone();
        for (k, frame) in frames.into_iter().enumerate() {
            inner.ptes.insert(
                page + k as u64 * PAGE,
                Pte {
                    frame,
                    mapped: prot,
                },
            );
        }
        inner.ra_next = end;
        inner.ra_pages = window;
        Ok(first)
    }

    /// A fault below a MAP_GROWSDOWN mapping: extend it down to `page`, as Linux's
    /// expand_downwards does, within RLIMIT_STACK (counted from the mapping's end) and
    /// RLIMIT_AS of the faulting task, and no closer than the guard gap to the
    /// accessible mapping below.
    fn grow_stack(&self, inner: &mut MmInner, page: u64) -> Result<(u64, Vma), FaultError> {
        let (start, vma) = inner
            .vmas
            .range(page..)
            .next()
            .map(|(s, v)| (*s, v.clone()))
            .ok_or(FaultError::Segv(1))?;
        if !vma.growsdown {
            return Err(FaultError::Segv(1));
        }
        let (stack_limit, as_limit) = match crate::kernel::current() {
            Some(t) => (t.rlimit(RLIMIT_STACK).0, t.rlimit(RLIMIT_AS).0),
            None => (STACK_MAX, u64::MAX),
        };
        if vma.end - page > stack_limit
            || Self::vm_size(inner).saturating_add(start - page) > as_limit
        {
            return Err(FaultError::Segv(1));
        }
        if let Some((_, pv)) = inner.vmas.range(..start).next_back() {
            let accessible = pv.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0;
            if pv.end > page || (!pv.growsdown && accessible && page - pv.end < STACK_GUARD_GAP) {
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
                .resolve(&mut inner, page, want, None)
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

    /// Hand the bytes of [addr, addr+len) to `f` a page-sized piece at a time, straight
    /// from the memory file (no copy in between).
    pub fn read_each(&self, addr: u64, len: usize, mut f: impl FnMut(&[u8])) -> KResult<()> {
        self.access(addr, len, false, |fr, off, _, n| {
            f(&fr.bytes()[off..off + n])
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
        // Every page of the range must be mapped, and may take the new protection.
        let mut a = addr;
        while a < end {
            match Self::find_vma(&inner, a) {
                Some((_, v)) if prot & PROT_WRITE != 0 && !v.maywrite => return Err(EACCES),
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

    /// File (dev, ino) shrank to `size`: its pages mapped past the new end go, private
    /// copies too, so that touching them faults (SIGBUS), as truncate_pagecache does.
    pub fn file_shrunk(&self, dev_ino: (u64, u64), size: u64) {
        let first = page_up(size).unwrap_or(u64::MAX);
        let mut inner = self.inner.lock();
        let ranges: Vec<(u64, u64)> = inner
            .vmas
            .iter()
            .filter_map(|(s, v)| match &v.backing {
                Backing::File { offset, .. } if v.dev_ino == dev_ino && dev_ino != (0, 0) => {
                    let start = s.saturating_add(first.saturating_sub(*offset));
                    (start < v.end).then_some((start, v.end))
                }
                _ => None,
            })
            .collect();
        for (a, b) in ranges {
            let _ = self.drop_pages(&mut inner, a, b);
        }
    }

    /// Drop the pages of [start, end): private ones read as zero (or the file) again,
    /// shared ones fault back in from the file (MADV_DONTNEED).
    fn drop_pages(&self, inner: &mut MmInner, start: u64, end: u64) -> KResult<()> {
        let pages: Vec<u64> = inner.ptes.range(start..end).map(|(k, _)| *k).collect();
        self.note_hiwater(inner);
        if pages.iter().any(|p| inner.ptes[p].mapped != 0) {
            self.aspace.unmap(start, end - start).map_err(|_| ENOMEM)?;
        }
        for p in pages {
            inner.ptes.remove(&p);
        }
        Ok(())
    }

    /// The mapped pieces of [start, end) as (vma start, piece start, piece end), and
    /// whether the range has holes (Linux's madvise and msync walk).
    fn pieces(inner: &MmInner, start: u64, end: u64) -> (Vec<(u64, u64, u64)>, bool) {
        let mut out = vec![];
        let mut hole = false;
        let mut a = start;
        let first = inner
            .vmas
            .range(..=start)
            .next_back()
            .filter(|(_, v)| v.end > start)
            .map(|(s, _)| *s)
            .unwrap_or(start);
        for (s, v) in inner.vmas.range(first..end) {
            if *s > a {
                hole = true;
            }
            let lo = a.max(*s);
            let hi = v.end.min(end);
            out.push((*s, lo, hi));
            a = hi;
        }
        if a < end {
            hole = true;
        }
        (out, hole)
    }

    /// madvise(2) on [start, end) (page aligned, non-empty) with a valid `advice`:
    /// applies it to every mapped part, then fails with ENOMEM if the range has holes.
    pub fn madvise(&self, start: u64, end: u64, advice: u64) -> KResult<()> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let sets_flag = matches!(
            advice,
            MADV_DONTFORK | MADV_DOFORK | MADV_WIPEONFORK | MADV_KEEPONFORK
        );
        if sets_flag {
            Self::split(inner, start);
            Self::split(inner, end);
        }
        let (pieces, hole) = Self::pieces(inner, start, end);
        if pieces.is_empty() {
            return Err(ENOMEM);
        }
        for (vstart, lo, hi) in pieces {
            let vma = inner.vmas[&vstart].clone();
            match advice {
                MADV_DONTNEED | MADV_DONTNEED_LOCKED => self.drop_pages(inner, lo, hi)?,
                MADV_FREE => {
                    // Only private anonymous memory; freeing at once is what the kernel
                    // may do at any time after the advice.
                    if !matches!(vma.backing, Backing::Anon) || vma.shared {
                        return Err(EINVAL);
                    }
                    self.drop_pages(inner, lo, hi)?;
                }
                MADV_REMOVE => {
                    let Backing::File { src, offset } = &vma.backing else {
                        return Err(EINVAL);
                    };
                    if !vma.shared || !vma.maywrite {
                        return Err(EACCES);
                    }
                    src.punch_hole(offset + (lo - vstart), hi - lo)?;
                }
                MADV_DONTFORK | MADV_DOFORK => {
                    inner.vmas.get_mut(&vstart).expect("vma").dontfork = advice == MADV_DONTFORK;
                }
                MADV_WIPEONFORK | MADV_KEEPONFORK => {
                    if advice == MADV_WIPEONFORK
                        && (vma.shared || !matches!(vma.backing, Backing::Anon))
                    {
                        return Err(EINVAL);
                    }
                    inner.vmas.get_mut(&vstart).expect("vma").wipeonfork =
                        advice == MADV_WIPEONFORK;
                }
                MADV_POPULATE_READ | MADV_POPULATE_WRITE => {
                    let want = if advice == MADV_POPULATE_WRITE {
                        PROT_WRITE
                    } else {
                        PROT_READ
                    };
                    // Permission problems are EINVAL; SIGBUS or SIGSEGV would be EFAULT.
                    if vma.prot & want == 0 {
                        return Err(EINVAL);
                    }
                    let mut p = lo;
                    while p < hi {
                        match self.resolve(inner, p, want, None) {
                            Ok(_) => {}
                            Err(FaultError::Oom) => return Err(ENOMEM),
                            Err(_) => return Err(EFAULT),
                        }
                        p += PAGE;
                    }
                }
                // Hints with nothing to do here: no read-ahead, swap, KSM, huge pages
                // or core dumps to steer.
                _ => {}
            }
        }
        if hole {
            Err(ENOMEM)
        } else {
            Ok(())
        }
    }

    /// msync(2) on [start, end) (page aligned): shared mappings write straight into the
    /// page cache, so there is nothing to flush; a range with holes is ENOMEM.
    pub fn msync(&self, start: u64, end: u64) -> KResult<()> {
        let inner = self.inner.lock();
        let (pieces, hole) = Self::pieces(&inner, start, end);
        if hole || pieces.is_empty() {
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// Move [old, old+old_len), which lies in one VMA, to a mapping of `new_len` bytes at
    /// `new` that replaces whatever is there (mremap's move_vma). The pages go with it;
    /// the part past `old_len` continues the VMA (the next pages of its file). With
    /// `dontunmap` the source stays mapped but empty. `old_len` 0 duplicates a shared
    /// mapping.
    pub fn move_vma(
        &self,
        inner: &mut MmInner,
        old: u64,
        old_len: u64,
        new_len: u64,
        new: u64,
        dontunmap: bool,
    ) -> KResult<()> {
        let (vstart, mut vma) = Self::find_vma(inner, old)
            .map(|(s, v)| (s, v.clone()))
            .ok_or(EFAULT)?;
        if let Backing::File { offset, .. } = &mut vma.backing {
            *offset += old - vstart;
        }
        vma.end = new + new_len;
        let mut ptes = vec![];
        if old_len > 0 {
            let end = old + old_len;
            let pkeys: Vec<u64> = inner.ptes.range(old..end).map(|(k, _)| *k).collect();
            let any_mapped = pkeys.iter().any(|k| inner.ptes[k].mapped != 0);
            for k in pkeys {
                ptes.push((k, inner.ptes.remove(&k).expect("pte")));
            }
            if any_mapped {
                let _ = self.aspace.unmap(old, old_len);
            }
            if !dontunmap {
                self.unmap_locked(inner, old, end);
            }
        }
        self.unmap_locked(inner, new, new + new_len);
        inner.vmas.insert(new, vma);
        for (k, mut p) in ptes {
            p.mapped = 0;
            inner.ptes.insert(k - old + new, p);
        }
        Ok(())
    }

    /// A copy-on-write copy of this address space in `aspace` (fork). With `copy_near`
    /// (a single-threaded parent's stack pointer), the parent's writable mapped pages
    /// are copied for the child at once rather than shared copy-on-write when they are
    /// few (EAGER_COPY_MAX), else only the page at `copy_near`: each of them would
    /// otherwise cost a fault round trip in both processes right after the fork. The
    /// child's copy of everything the parent has mapped is mapped into `aspace` now,
    /// in one platform call, rather than on its first faults.
    pub fn fork(&self, aspace: Arc<dyn AddressSpace>, copy_near: Option<u64>) -> KResult<Mm> {
        const EAGER_COPY_MAX: usize = 16;
        // Past this many runs the child's pages are left to its faults.
        const PREMAP_MAX: usize = 128;
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
                // Pages the child does not get stay exclusive to us.
                if v.dontfork || v.wipeonfork {
                    continue;
                }
                if !v.shared && v.prot & PROT_WRITE != 0 {
                    ranges.push((*s, v.end));
                }
            }
            // The pages copied now, with their copies: they stay writable in the parent.
            let mut eager = std::collections::BTreeMap::new();
            if let Some(near) = copy_near {
                let writable: Vec<u64> = ranges
                    .iter()
                    .flat_map(|(s, e)| inner.ptes.range(*s..*e))
                    .filter(|(_, p)| p.mapped & PROT_WRITE != 0)
                    .map(|(a, _)| *a)
                    .take(EAGER_COPY_MAX + 1)
                    .collect();
                let pick = if writable.len() <= EAGER_COPY_MAX {
                    writable
                } else {
                    let page = page_down(near);
                    let ok = ranges.iter().any(|(s, e)| (*s..*e).contains(&page))
                        && inner
                            .ptes
                            .get(&page)
                            .is_some_and(|p| p.mapped & PROT_WRITE != 0);
                    if ok {
                        vec![page]
                    } else {
                        vec![]
                    }
                };
                for a in pick {
                    // Without memory for a copy the page is shared as any other.
                    if let Ok(f) = memfile().alloc_copy(&inner.ptes[&a].frame) {
                        eager.insert(a, f);
                    }
                }
            }
            let mut ops = vec![];
            for (s, e) in &ranges {
                // Only mapped pages can be protected (mprotect fails on holes), so
                // downgrade each run of consecutive writable-mapped pages, all in one
                // platform call.
                let prot = to_prot(inner.vmas[s].prot & !PROT_WRITE);
                let mut runs: Vec<(u64, u64)> = vec![];
                for (a, p) in inner.ptes.range_mut(*s..*e) {
                    if p.mapped & PROT_WRITE != 0 && !eager.contains_key(a) {
                        p.mapped &= !PROT_WRITE;
                        match runs.last_mut() {
                            Some(r) if r.1 == *a => r.1 += PAGE,
                            _ => runs.push((*a, *a + PAGE)),
                        }
                    }
                }
                ops.extend(runs.into_iter().map(|(a, b)| platform::MapOp::Protect {
                    addr: a,
                    len: b - a,
                    prot,
                }));
            }
            self.aspace.apply(&ops).map_err(|_| ENOMEM)?;
            let mut premap = vec![];
            for (k, p) in inner.ptes.iter() {
                // MADV_WIPEONFORK ranges start empty in the child: fresh zero pages.
                let Some(vma) = c
                    .vmas
                    .range(..=*k)
                    .next_back()
                    .map(|(_, v)| v)
                    .filter(|v| *k < v.end && !v.wipeonfork)
                else {
                    continue;
                };
                let copy = eager.remove(k);
                let own = copy.is_some();
                let frame = copy.unwrap_or_else(|| p.frame.clone());
                let mut mapped = 0;
                if p.mapped != 0 && vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
                    mapped = if vma.shared || own {
                        vma.prot
                    } else {
                        vma.prot & !PROT_WRITE
                    };
                    premap.push(platform::MapOp::Map {
                        addr: *k,
                        len: PAGE,
                        file_offset: frame.offset(),
                        prot: to_prot(mapped),
                        // The copies are written at once; the rest on the child's
                        // first touch, a host fault with no stop.
                        populate: own,
                        huge: false,
                    });
                }
                c.ptes.insert(*k, Pte { frame, mapped });
            }
            let mut premap = merge_runs(premap);
            if premap.len() > PREMAP_MAX {
                // Too scattered for one call: only the copies now, the rest on faults.
                premap.retain(|op| matches!(op, platform::MapOp::Map { populate: true, .. }));
                for (a, p) in c.ptes.iter_mut() {
                    if !premap.iter().any(|op| {
                        matches!(op, platform::MapOp::Map { addr, len, .. } if (*addr..*addr + *len).contains(a))
                    }) {
                        p.mapped = 0;
                    }
                }
            }
            child.aspace.apply(&premap).map_err(|_| ENOMEM)?;
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

    /// Whether the page at `addr` is resident (mincore): for anonymous memory, a page
    /// that has been touched (one faulted in ahead of use is not, until it is); for a
    /// file mapping, a page it has faulted in or one in the file's page cache.
    pub fn resident(&self, inner: &MmInner, addr: u64) -> bool {
        let page = page_down(addr);
        let Some((start, vma)) = Self::find_vma(inner, page) else {
            return false;
        };
        match (&vma.backing, inner.ptes.get(&page)) {
            (Backing::Anon, pte) => pte.is_some_and(|p| p.frame.resident()),
            (Backing::File { .. }, Some(_)) => true,
            (Backing::File { src, offset }, None) => src.cached((offset + (page - start)) / PAGE),
        }
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
            .resolve(&mut inner, page_down(addr), PROT_READ, None)
            .map_err(|_| EFAULT)?;
        Ok(f.offset() + (addr % PAGE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address space that maps nothing: the Mm's own bookkeeping is under test.
    struct NullSpace;
    impl AddressSpace for NullSpace {
        fn map(&self, _: u64, _: u64, _: u64, _: Prot) -> platform::Result<()> {
            Ok(())
        }
        fn unmap(&self, _: u64, _: u64) -> platform::Result<()> {
            Ok(())
        }
        fn protect(&self, _: u64, _: u64, _: Prot) -> platform::Result<()> {
            Ok(())
        }
        fn id(&self) -> u64 {
            0
        }
    }

    const BASE: u64 = 0x10_0000_0000;

    /// An address space that records what it is asked to map.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<platform::MapOp>>);
    impl AddressSpace for Recorder {
        fn map(&self, addr: u64, len: u64, off: u64, prot: Prot) -> platform::Result<()> {
            self.apply(&[platform::MapOp::Map {
                addr,
                len,
                file_offset: off,
                prot,
                populate: false,
                huge: false,
            }])
        }
        fn unmap(&self, _: u64, _: u64) -> platform::Result<()> {
            Ok(())
        }
        fn protect(&self, _: u64, _: u64, _: Prot) -> platform::Result<()> {
            Ok(())
        }
        fn id(&self) -> u64 {
            0
        }
        fn apply(&self, ops: &[platform::MapOp]) -> platform::Result<()> {
            self.0.lock().extend_from_slice(ops);
            Ok(())
        }
    }

    fn mapped_pages(r: &Recorder) -> u64 {
        r.0.lock()
            .iter()
            .map(|op| match op {
                platform::MapOp::Map { len, .. } => len / PAGE,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn sequential_faults_map_growing_runs() {
        let rec = Arc::new(Recorder::default());
        let mm = Mm::new(rec.clone());
        mm.map_fixed(&mut mm.inner.lock(), BASE, 8 << 20, anon(BASE + (8 << 20)));
        let present = |mm: &Mm| mm.resident_in(&mm.inner.lock(), BASE, BASE + (8 << 20));
        mm.fault(BASE, platform::Access::Write).unwrap();
        assert_eq!(present(&mm), 16);
        // Just past the run: four times as many, made present in the host at once.
        mm.fault(BASE + 16 * PAGE, platform::Access::Write).unwrap();
        assert_eq!(present(&mm), 16 + 64);
        mm.fault(BASE + 80 * PAGE, platform::Access::Write).unwrap();
        assert_eq!(present(&mm), 16 + 64 + 256);
        // A full-size run stops at the next 2 MiB boundary; the ones after it are
        // whole aligned 2 MiB.
        mm.fault(BASE + 336 * PAGE, platform::Access::Write)
            .unwrap();
        assert_eq!(present(&mm), 512, "up to the 2 MiB boundary");
        mm.fault(BASE + 512 * PAGE, platform::Access::Write)
            .unwrap();
        assert_eq!(present(&mm), 1024, "at most 2 MiB");
        assert!(matches!(
            rec.0.lock().last(),
            Some(platform::MapOp::Map { addr, len: 0x20_0000, .. }) if *addr == BASE + (2 << 20)
        ));
        assert!(rec
            .0
            .lock()
            .iter()
            .skip(1)
            .all(|op| matches!(op, platform::MapOp::Map { populate: true, .. })));
        assert_eq!(mapped_pages(&rec), present(&mm));
        // Elsewhere: back to 16.
        mm.fault(BASE + 1500 * PAGE, platform::Access::Write)
            .unwrap();
        assert_eq!(present(&mm), 1024 + 16);
    }

    #[test]
    fn a_fault_in_a_forked_child_maps_the_pages_around_read_only() {
        let mm = mm_with(BASE, anon(BASE + 64 * PAGE));
        for i in 0..40 {
            mm.write(BASE + i * PAGE, b"p").unwrap();
        }
        let rec = Arc::new(Recorder::default());
        let child = mm.fork(rec.clone(), None).unwrap();
        child
            .fault(BASE + 3 * PAGE, platform::Access::Read)
            .unwrap();
        // The aligned block of 32 pages holding the fault, all shared with the parent.
        assert_eq!(mapped_pages(&rec), 32);
        assert!(rec.0.lock().iter().all(|op| matches!(
            op,
            platform::MapOp::Map { prot, .. } if !prot.contains(Prot::WRITE)
        )));
        // A write copies the page and maps it writable.
        rec.0.lock().clear();
        child
            .fault(BASE + 3 * PAGE, platform::Access::Write)
            .unwrap();
        assert!(rec.0.lock().iter().any(|op| matches!(
            op,
            platform::MapOp::Map { addr, prot, .. } if *addr == BASE + 3 * PAGE && prot.contains(Prot::WRITE)
        )));
        assert_eq!(byte(&child, BASE + 3 * PAGE), b'p');
    }

    #[test]
    fn fork_maps_the_parents_pages_and_copies_the_few_it_writes() {
        let parent_rec = Arc::new(Recorder::default());
        let mm = Mm::new(parent_rec.clone());
        mm.map_fixed(
            &mut mm.inner.lock(),
            BASE,
            64 * PAGE,
            anon(BASE + 64 * PAGE),
        );
        // One fault maps a run of 16 writable pages in the parent.
        mm.fault(BASE, platform::Access::Write).unwrap();
        mm.write(BASE + 2 * PAGE, b"s").unwrap();
        let rec = Arc::new(Recorder::default());
        let child = mm.fork(rec.clone(), Some(BASE + 2 * PAGE + 8)).unwrap();
        // All 16 mapped pages were few enough to copy: mapped writable in the child at
        // once, and present (populated); none of them downgraded in the parent.
        assert_eq!(mapped_pages(&rec), 16);
        assert!(rec.0.lock().iter().all(|op| matches!(
            op,
            platform::MapOp::Map { prot, populate: true, .. } if prot.contains(Prot::WRITE)
        )));
        assert!(!parent_rec
            .0
            .lock()
            .iter()
            .any(|op| matches!(op, platform::MapOp::Protect { .. })));
        // The copies are the child's own.
        mm.write(BASE + 2 * PAGE, b"p").unwrap();
        assert_eq!(byte(&child, BASE + 2 * PAGE), b's');
        // Without the hint (a multi-threaded parent) the pages are shared read-only.
        let rec = Arc::new(Recorder::default());
        let _child2 = mm.fork(rec.clone(), None).unwrap();
        assert_eq!(mapped_pages(&rec), 16);
        assert!(rec.0.lock().iter().all(|op| matches!(
            op,
            platform::MapOp::Map { prot, populate: false, .. } if !prot.contains(Prot::WRITE)
        )));
        assert!(parent_rec
            .0
            .lock()
            .iter()
            .any(|op| matches!(op, platform::MapOp::Protect { .. })));
        assert_eq!(byte(&child, BASE + 2 * PAGE), b's');
    }

    fn anon(end: u64) -> Vma {
        Vma::anon(end, PROT_READ | PROT_WRITE)
    }

    fn mm_with(start: u64, vma: Vma) -> Mm {
        let mm = Mm::new(Arc::new(NullSpace));
        let len = vma.end - start;
        mm.map_fixed(&mut mm.inner.lock(), start, len, vma);
        mm
    }

    fn byte(mm: &Mm, addr: u64) -> u8 {
        mm.read_vec(addr, 1).unwrap()[0]
    }

    #[test]
    fn move_vma_carries_pages_and_dontunmap_leaves_source_empty() {
        let mm = mm_with(BASE, anon(BASE + 2 * PAGE));
        mm.write(BASE + PAGE + 3, b"x").unwrap();
        let new = BASE + 16 * PAGE;
        mm.move_vma(&mut mm.inner.lock(), BASE, 2 * PAGE, 4 * PAGE, new, true)
            .unwrap();
        assert_eq!(byte(&mm, new + PAGE + 3), b'x');
        assert_eq!(byte(&mm, new + 3 * PAGE), 0);
        // The source is still mapped, with no pages.
        assert_eq!(byte(&mm, BASE + PAGE + 3), 0);
        let inner = mm.inner.lock();
        assert_eq!(Mm::find_vma(&inner, new).unwrap().1.end, new + 4 * PAGE);
        assert!(Mm::find_vma(&inner, BASE).is_some());
    }

    #[test]
    fn move_vma_of_shared_file_mapping_keeps_offset_and_duplicates() {
        let src = crate::vfs::memfs::anon_file(4 * PAGE);
        let vma = Vma {
            shared: true,
            backing: Backing::File {
                src: src.clone(),
                offset: 0,
            },
            ..anon(BASE + 4 * PAGE)
        };
        let mm = mm_with(BASE, vma);
        mm.write(BASE + 2 * PAGE, b"two").unwrap();
        // old_len 0: a second mapping of the same pages, from the middle of the VMA.
        let new = BASE + 32 * PAGE;
        mm.move_vma(&mut mm.inner.lock(), BASE + 2 * PAGE, 0, PAGE, new, false)
            .unwrap();
        assert_eq!(mm.read_vec(new, 3).unwrap(), b"two");
        mm.write(new + 1, b"W").unwrap();
        assert_eq!(byte(&mm, BASE + 2 * PAGE + 1), b'W');
    }

    #[test]
    fn madvise_flags_and_holes() {
        let mm = mm_with(BASE, anon(BASE + 4 * PAGE));
        mm.write(BASE, b"a").unwrap();
        mm.write(BASE + PAGE, b"b").unwrap();
        mm.madvise(BASE + PAGE, BASE + 2 * PAGE, MADV_WIPEONFORK)
            .unwrap();
        mm.madvise(BASE + 2 * PAGE, BASE + 3 * PAGE, MADV_DONTFORK)
            .unwrap();
        let child = mm.fork(Arc::new(NullSpace), None).unwrap();
        assert_eq!(byte(&child, BASE), b'a');
        assert_eq!(byte(&child, BASE + PAGE), 0);
        assert_eq!(byte(&mm, BASE + PAGE), b'b');
        assert!(child.read_vec(BASE + 2 * PAGE, 1).is_err());
        // A hole: the mapped parts are advised, then ENOMEM.
        mm.munmap(BASE + 2 * PAGE, PAGE).unwrap();
        assert_eq!(
            mm.madvise(BASE, BASE + 4 * PAGE, MADV_DONTNEED),
            Err(ENOMEM)
        );
        assert_eq!(byte(&mm, BASE), 0);
        assert_eq!(mm.msync(BASE, BASE + 4 * PAGE), Err(ENOMEM));
        assert_eq!(mm.msync(BASE, BASE + 2 * PAGE), Ok(()));
        // WIPEONFORK is for private anonymous memory only.
        let src = crate::vfs::memfs::anon_file(PAGE);
        let shared = Vma {
            shared: true,
            backing: Backing::File { src, offset: 0 },
            ..anon(BASE + 8 * PAGE)
        };
        mm.map_fixed(&mut mm.inner.lock(), BASE + 7 * PAGE, PAGE, shared);
        assert_eq!(
            mm.madvise(BASE + 7 * PAGE, BASE + 8 * PAGE, MADV_WIPEONFORK),
            Err(EINVAL)
        );
    }

    #[test]
    fn madvise_remove_zeroes_the_shared_file() {
        let src = crate::vfs::memfs::anon_file(3 * PAGE);
        let vma = Vma {
            shared: true,
            backing: Backing::File {
                src: src.clone(),
                offset: 0,
            },
            ..anon(BASE + 3 * PAGE)
        };
        let mm = mm_with(BASE, vma);
        mm.write(BASE, &vec![b'R'; 3 * PAGE as usize]).unwrap();
        mm.madvise(BASE + PAGE, BASE + 2 * PAGE, MADV_REMOVE)
            .unwrap();
        assert_eq!(byte(&mm, BASE + PAGE + 9), 0);
        assert_eq!(byte(&mm, BASE + 2 * PAGE), b'R');
        let mut b = [1u8; 1];
        src.read(&mut b, PAGE + 9).unwrap();
        assert_eq!(b[0], 0);
        assert_eq!(src.size(), 3 * PAGE);
        // Private anonymous memory has no file: EINVAL.
        mm.map_fixed(&mut mm.inner.lock(), BASE + 8 * PAGE, PAGE, anon(0));
        assert_eq!(
            mm.madvise(BASE + 8 * PAGE, BASE + 9 * PAGE, MADV_REMOVE),
            Err(EINVAL)
        );
    }

    #[test]
    fn fault_around_pages_are_not_resident_until_touched() {
        let mm = mm_with(BASE, anon(BASE + 4 * PAGE));
        mm.fault(BASE, platform::Access::Write).unwrap();
        let inner = mm.inner.lock();
        // All four are present (fault-around) but only frames that hold memory count.
        assert_eq!(mm.resident_in(&inner, BASE, BASE + 4 * PAGE), 4);
        assert!(!mm.resident(&inner, BASE + PAGE));
        drop(inner);
        mm.write(BASE + 2 * PAGE, b"t").unwrap();
        let inner = mm.inner.lock();
        assert!(mm.resident(&inner, BASE + 2 * PAGE));
        assert!(!mm.resident(&inner, BASE + 3 * PAGE));
    }

    #[test]
    fn stack_grows_within_the_limit_only() {
        let top = STACK_TOP;
        let vma = Vma {
            growsdown: true,
            ..anon(top)
        };
        let mm = mm_with(top - PAGE, vma);
        // No task here: the default 8 MiB limit, counted from the top.
        assert!(mm.fault(top - STACK_MAX, platform::Access::Write).is_ok());
        assert!(matches!(
            mm.fault(top - STACK_MAX - PAGE, platform::Access::Write),
            Err(FaultError::Segv(1))
        ));
    }
}

//! The KVM platform: application code runs in guest ring 3 of one virtual machine.
//!
//! Guest physical memory is the memory file (at guest physical address 0) plus a region
//! of the platform's own right after it, which holds page tables, the IDT, one page per
//! vCPU (GDT, TSS and ring-0 stack) and the entry code. The platform region is mapped
//! supervisor-only at [`KBASE`] in every address space.
//!
//! Every exception vector points at a `hlt` of its own, so the ring-0 path is one
//! instruction: the vCPU exits to the host, which reads the vector from RIP and the
//! exception frame from the ring-0 stack, and resumes ring 3 by setting the registers
//! and segments directly (through `kvm_run`'s synced registers: one ioctl per exit).
//! LSTAR points at `out SYSCALL_PORT, al` on a user-executable page (the TSS I/O bitmap
//! allows that port only): on PVM hosts (module `kvm_pvm`), where a ring-3 `syscall`
//! stays at CPL3 and jumps to LSTAR (a supervisor LSTAR page gives #PF with CR2 ==
//! LSTAR), and on hardware KVM (CPL0 at LSTAR) alike, a system call is one I/O exit
//! with no exception delivery and no ring-0 instruction on PVM.
//!
//! Page tables are written by the host. A change that removes or narrows a present
//! mapping must not leave stale translations. Shadow paging (PVM) does not see host
//! writes to guest page tables: there a ring-0 loop rewrites two bytes of each changed
//! page-table page, which KVM's write tracking takes as a reason to drop every shadow of
//! it. Elsewhere all shadow pages/TLBs are zapped by deleting and re-creating a one-page
//! memory slot (KVM flushes every vCPU before the ioctl returns).

use crate::{
    Access, AddressSpace, Context, Error, Event, FpState, Interrupter, Platform, Prot, Regs,
    Result, SigInfo,
};
use kvm_bindings::{
    kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_userspace_memory_region, kvm_xcrs, CpuId,
    Msrs, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Kvm as KvmSys, VcpuExit, VcpuFd, VmFd};
use parking_lot::Mutex;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[cfg(test)]
mod tests;

/// Where the platform region appears in every guest address space (PML4 slot 511).
pub const KBASE: u64 = 0xffff_ff80_0000_0000;
const PLAT_SIZE: u64 = 256 << 20;
const PAGE: u64 = 4096;
/// Platform pages: the IDT, the entry code, the kernel half's PDPT and PD.
const IDT_PAGE: u64 = 0;
const CODE_PAGE: u64 = 1;
const KPDPT_PAGE: u64 = 2;
const KPD_PAGE: u64 = 3;
/// Pages handed out by the allocator start after the first 2 MiB (which is mapped RX).
const FIRST_FREE: u64 = 512;
/// Each vector's `hlt` is this far apart in the code page.
const VEC_STRIDE: u64 = 8;
/// Offset of the CSTAR entry (a `syscall` from 32-bit code: unsupported) in the code page.
const SYSCALL_OFF: u64 = 0x800;
/// The syscall stub: `out SYSCALL_PORT, al; hlt` on a read-only user-executable page
/// above MAX_USER_ADDR in every address space.
const USTUB_PAGE: u64 = 4;
const USTUB_VA: u64 = 0x7fff_fff0_0000;
/// The one I/O port ring 3 may use (the TSS I/O bitmap allows only it): `syscall`
/// lands on the stub's `out`, which exits to the host without an exception delivery.
const SYSCALL_PORT: u16 = 0x80;
const IOMAP_LEN: u64 = SYSCALL_PORT as u64 / 8 + 2;
const CODE_VA: u64 = KBASE + CODE_PAGE * PAGE;
const SYSCALL_VA: u64 = CODE_VA + SYSCALL_OFF;

/// Per-vCPU page layout: GDT at 0, TSS at 0x100, ring-0 stack below the page end.
const GDT_OFF: u64 = 0;
const TSS_OFF: u64 = 0x100;
const KERNEL_CS: u16 = 0x10;
const KERNEL_DS: u16 = 0x18;
const USER_DS: u16 = 0x2b;
const USER_CS: u16 = 0x33;
const TSS_SEL: u16 = 0x40;

const PTE_P: u64 = 1;
const PTE_W: u64 = 2;
const PTE_U: u64 = 4;
const PTE_A: u64 = 0x20;
const PTE_D: u64 = 0x40;
const PTE_PS: u64 = 0x80;
const PTE_NX: u64 = 1 << 63;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SFMASK: u32 = 0xc000_0084;

const CR0_PE: u64 = 1;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_AM: u64 = 1 << 18;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// RFLAGS bits ring-3 code may hold (CF PF AF ZF SF TF DF OF RF AC ID).
const USER_FLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x1_0000 | 0x4_0000 | 0x20_0000;

/// The signal that kicks a vCPU thread out of KVM_RUN (its handler does nothing).
const SIG_KICK: i32 = 62;

/// Registers exchanged through kvm_run on every KVM_RUN (one ioctl per exit).
const SYNC_DIRTY: u64 = (kvm_bindings::KVM_SYNC_X86_REGS | kvm_bindings::KVM_SYNC_X86_SREGS) as u64;
/// The memory file is registered with KVM in slots of this size (slot 3 + index).
const MEM_CHUNK: u64 = 1 << 30;
/// Offset of the flush routine in the code page (see `Machine::flush`).
const FLUSH_OFF: u64 = 0x900;
const FLUSH_CODE: [u8; 16] = [
    0x48, 0x8b, 0x3e, // 1: mov rdi, [rsi]
    0x66, 0x8b, 0x07, // mov ax, [rdi]
    0x66, 0x89, 0x07, // mov [rdi], ax  (a 2-byte write: KVM zaps the page's shadows)
    0x48, 0x83, 0xc6, 0x08, // add rsi, 8
    0xe2, 0xf1, // loop 1b
    0xf4, // hlt
];

fn kvm_err(what: &'static str, e: kvm_ioctls::Error) -> Error {
    Error::errno(what, e.errno())
}

/// The KVM platform.
pub struct Kvm {
    m: Arc<Machine>,
}

/// The virtual machine shared by all address spaces and vCPUs.
struct Machine {
    /// /dev/kvm, kept open for the VM's life.
    _kvm: KvmSys,
    vm: VmFd,
    cpuid: CpuId,
    xcr0: u64,
    /// Host address of the memory file mapping (guest physical 0).
    mem_host: usize,
    mem_size: u64,
    /// Which MEM_CHUNK-sized pieces of the memory file have a memory slot.
    mem_slots: Mutex<Vec<bool>>,
    /// Guest physical address and host address of the platform region.
    plat_gpa: u64,
    plat_host: usize,
    alloc: Mutex<PageAlloc>,
    /// vCPUs of contexts that were dropped, for reuse (KVM cannot destroy a vCPU).
    pool: Mutex<Vec<Vcpu>>,
    next_vcpu: AtomicU64,
    /// Serialises zaps (memory slot changes).
    zap: Mutex<ZapSlot>,
    /// PVM (shadow paging, ring 0 emulated): invalidate by rewriting page-table pages
    /// from ring 0 instead of zapping everything.
    pvm: bool,
    flusher: Mutex<Option<Flusher>>,
    stats: Stats,
}

/// A vCPU kept in ring 0 to make KVM re-read page-table pages.
struct Flusher {
    vcpu: Vcpu,
    /// A page of kernel addresses of the page-table pages to invalidate.
    list: u64,
}

#[derive(Default)]
struct Stats {
    zaps: AtomicU64,
}

struct ZapSlot {
    gpa: u64,
    host: usize,
}

struct PageAlloc {
    next: u64,
    free: Vec<u64>,
}

// SAFETY: the raw host addresses are of mappings owned by the Machine for its whole life;
// concurrent access to page-table words goes through atomics.
unsafe impl Send for Machine {}
// SAFETY: as above.
unsafe impl Sync for Machine {}

impl Drop for Machine {
    fn drop(&mut self) {
        self.pool.lock().clear();
        // SAFETY: unmapping our own mappings; the VM is going away with us and no vCPU
        // can run any more (all contexts hold an Arc to the machine).
        unsafe {
            libc::munmap(self.mem_host as *mut libc::c_void, self.mem_size as usize);
            libc::munmap(self.plat_host as *mut libc::c_void, PLAT_SIZE as usize);
            libc::munmap(self.zap.lock().host as *mut libc::c_void, PAGE as usize);
        }
    }
}

fn mmap_anon(len: u64) -> Result<usize> {
    // SAFETY: a fresh private anonymous mapping; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::os("mmap platform region"));
    }
    Ok(p as usize)
}

impl Kvm {
    /// Open /dev/kvm and build the VM over `memfd`. Fails with a clear error (never
    /// hangs) when KVM is missing or unusable: a tiny ring-3 self test must make a
    /// system call and come back.
    pub fn new(memfd: BorrowedFd<'_>) -> Result<Kvm> {
        Self::from_fd(Self::open_dev()?, memfd)
    }

    /// Open /dev/kvm (before the sandbox loses sight of the host's /dev).
    pub fn open_dev() -> Result<std::os::fd::OwnedFd> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/kvm")
            .map_err(|e| Error::Other(format!("KVM platform: cannot open /dev/kvm: {e}")))?;
        Ok(f.into())
    }

    /// Build the platform on an open /dev/kvm descriptor.
    pub fn from_fd(kvm: std::os::fd::OwnedFd, memfd: BorrowedFd<'_>) -> Result<Kvm> {
        use std::os::fd::{FromRawFd, IntoRawFd};
        // SAFETY: an open /dev/kvm descriptor whose ownership moves to the Kvm object.
        let kvm = unsafe { KvmSys::from_raw_fd(kvm.into_raw_fd()) };
        let v = kvm.get_api_version();
        if v != 12 {
            return Err(Error::Other(format!(
                "KVM platform: /dev/kvm is not usable (KVM_GET_API_VERSION gave {v}, not 12)"
            )));
        }
        if !kvm.check_extension(kvm_ioctls::Cap::SyncRegs) {
            return Err(Error::Other(
                "KVM platform: KVM_CAP_SYNC_REGS is not supported".into(),
            ));
        }
        Self::with_kvm(kvm, memfd)
    }

    fn with_kvm(kvm: KvmSys, memfd: BorrowedFd<'_>) -> Result<Kvm> {
        let vm = kvm.create_vm().map_err(|e| kvm_err("KVM_CREATE_VM", e))?;
        // SAFETY: stat is plain data filled by fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on a valid descriptor into a valid stat.
        if unsafe { libc::fstat(memfd.as_raw_fd(), &mut st) } != 0 {
            return Err(Error::os("fstat memory file"));
        }
        let mem_size = (st.st_size as u64).max(PAGE) & !(PAGE - 1);
        // SAFETY: a new shared mapping of the memory file; checked below.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mem_size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                memfd.as_raw_fd(),
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(Error::os("mmap memory file"));
        }
        let mem_host = mem as usize;
        // SAFETY: forked processes (ptrace stubs, if any) must not inherit it.
        unsafe { libc::madvise(mem, mem_size as usize, libc::MADV_DONTFORK) };
        let plat_host = mmap_anon(PLAT_SIZE)?;
        let zap_host = mmap_anon(PAGE)?;
        let plat_gpa = (mem_size + (1 << 30) - 1) & !((1 << 30) - 1);
        let zap_gpa = plat_gpa + PLAT_SIZE;
        // The memory file gets its slots chunk by chunk as mappings reach it (a slot's
        // metadata costs KVM time and memory in proportion to its size).
        let slots = [
            (1, plat_gpa, PLAT_SIZE, plat_host),
            (2, zap_gpa, PAGE, zap_host),
        ];
        for (slot, gpa, size, host) in slots {
            let region = kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: gpa,
                memory_size: size,
                userspace_addr: host as u64,
            };
            // SAFETY: the host ranges are our own mappings, which live as long as the VM.
            unsafe { vm.set_user_memory_region(region) }
                .map_err(|e| kvm_err("KVM_SET_USER_MEMORY_REGION", e))?;
        }
        // PVM (module kvm_pvm) lists its own MSRs, 0x4b564dxx.
        let is_pvm = kvm
            .get_msr_index_list()
            .map(|l| l.as_slice().iter().any(|m| m >> 8 == 0x4b_564d))
            .unwrap_or(false);
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| kvm_err("KVM_GET_SUPPORTED_CPUID", e))?;
        let xcr0 = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == 0xd && e.index == 0)
            .map(|e| e.eax as u64 & 0xe7)
            .unwrap_or(3)
            | 3;
        let m = Machine {
            _kvm: kvm,
            vm,
            cpuid,
            xcr0,
            mem_host,
            mem_size,
            mem_slots: Mutex::new(vec![false; mem_size.div_ceil(MEM_CHUNK) as usize]),
            plat_gpa,
            plat_host,
            alloc: Mutex::new(PageAlloc {
                next: FIRST_FREE,
                free: vec![],
            }),
            pool: Mutex::new(vec![]),
            next_vcpu: AtomicU64::new(0),
            zap: Mutex::new(ZapSlot {
                gpa: zap_gpa,
                host: zap_host,
            }),
            pvm: is_pvm,
            flusher: Mutex::new(None),
            stats: Stats::default(),
        };
        m.init_platform_pages();
        install_kick_handler();
        let k = Kvm { m: Arc::new(m) };
        k.self_test()?;
        Ok(k)
    }

    /// Run `mov eax, 39; syscall` in ring 3 and expect a system call event. Any other
    /// outcome, or no answer in two seconds, is an error naming what happened.
    fn self_test(&self) -> Result<()> {
        let m = &self.m;
        let aspace = KvmAspace::new(m.clone())?;
        // Code and stack pages are taken from the platform region's allocator and mapped
        // into the user half directly (the memory file belongs to the Sentry).
        let code = m.alloc_page()?;
        let code_bytes: [u8; 8] = [0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xf4];
        // SAFETY: code is a fresh page of the platform region.
        unsafe {
            std::ptr::copy_nonoverlapping(code_bytes.as_ptr(), m.plat_ptr(code) as *mut u8, 8)
        };
        aspace.set_pte(0x10000, code | PTE_P | PTE_U | PTE_A)?;
        let aspace: Arc<dyn AddressSpace> = Arc::new(aspace);
        let mut ctx = KvmContext::new(m.clone());
        let kick = ctx.interrupter();
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let watchdog = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while !d2.load(Ordering::Acquire) && t0.elapsed().as_secs() < 2 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if !d2.load(Ordering::Acquire) {
                kick.interrupt();
            }
        });
        let mut regs = crate::initial_regs();
        regs.rip = 0x10000;
        let r = ctx.switch(&aspace, &mut regs);
        done.store(true, Ordering::Release);
        watchdog.join().ok();
        m.free_page(code);
        match r {
            Ok(Event::Syscall) if regs.orig_rax == 39 && regs.rip == 0x10007 => Ok(()),
            Ok(ev) => Err(Error::Other(format!(
                "KVM platform unusable: a ring-3 syscall gave {ev:?} (rip {:#x}, rax {:#x})",
                regs.rip, regs.orig_rax
            ))),
            Err(e) => Err(Error::Other(format!("KVM platform unusable: {e}"))),
        }
    }

    /// How many times mapping changes zapped KVM's shadow page tables.
    pub fn zaps(&self) -> u64 {
        self.m.stats.zaps.load(Ordering::Relaxed)
    }
}

impl Platform for Kvm {
    fn name(&self) -> &'static str {
        "kvm"
    }

    /// PVM runs guest ring 3 as host user mode: rdtsc reads the host's counter (test
    /// kvm_guest_tsc_is_the_hosts). Hardware KVM offsets the guest's TSC from the
    /// vCPU's creation: not the host's, so the vDSO falls back to system calls there.
    fn tsc_is_host(&self) -> bool {
        self.m.pvm
    }

    fn new_address_space(&self) -> Result<Arc<dyn AddressSpace>> {
        Ok(Arc::new(KvmAspace::new(self.m.clone())?))
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(KvmContext::new(self.m.clone())))
    }
}

impl Machine {
    fn plat_ptr(&self, gpa: u64) -> *mut u64 {
        debug_assert!(gpa >= self.plat_gpa && gpa < self.plat_gpa + PLAT_SIZE);
        (self.plat_host + (gpa - self.plat_gpa) as usize) as *mut u64
    }

    /// The page-table word at guest physical `gpa` (in the platform region).
    fn word(&self, gpa: u64) -> &AtomicU64 {
        // SAFETY: gpa is 8-aligned inside the platform region, which lives as long as
        // self; page-table words are only ever accessed atomically.
        unsafe { &*(self.plat_ptr(gpa) as *const AtomicU64) }
    }

    fn page_gpa(&self, n: u64) -> u64 {
        self.plat_gpa + n * PAGE
    }

    fn alloc_page(&self) -> Result<u64> {
        let mut a = self.alloc.lock();
        let n = match a.free.pop() {
            Some(n) => n,
            None if a.next < PLAT_SIZE / PAGE => {
                a.next += 1;
                a.next - 1
            }
            None => return Err(Error::Other("KVM platform region exhausted".into())),
        };
        let gpa = self.page_gpa(n);
        // SAFETY: a whole page of the platform region that nobody else uses now.
        unsafe { std::ptr::write_bytes(self.plat_ptr(gpa) as *mut u8, 0, PAGE as usize) };
        Ok(gpa)
    }

    fn free_page(&self, gpa: u64) {
        self.alloc.lock().free.push((gpa - self.plat_gpa) / PAGE);
    }

    /// IDT, entry code and the kernel half's page tables (built once).
    fn init_platform_pages(&self) {
        // Entry code: the whole page is `hlt`.
        let code = self.plat_ptr(self.page_gpa(CODE_PAGE)) as *mut u8;
        // SAFETY: the code page of the platform region.
        unsafe {
            std::ptr::write_bytes(code, 0xf4, PAGE as usize);
            std::ptr::copy_nonoverlapping(
                FLUSH_CODE.as_ptr(),
                code.add(FLUSH_OFF as usize),
                FLUSH_CODE.len(),
            );
        }
        // IDT: vector v -> CODE_VA + v * VEC_STRIDE, interrupt gates, DPL 3 for #BP/#OF
        // (so int3/into work from ring 3).
        let idt = self.page_gpa(IDT_PAGE);
        for v in 0..256u64 {
            let off = CODE_VA + v * VEC_STRIDE;
            let dpl: u64 = if v == 3 || v == 4 { 3 } else { 0 };
            let lo = (off & 0xffff)
                | ((KERNEL_CS as u64) << 16)
                | ((0x8e | (dpl << 5)) << 40)
                | ((off >> 16) & 0xffff) << 48;
            let hi = off >> 32;
            self.word(idt + v * 16).store(lo, Ordering::Relaxed);
            self.word(idt + v * 16 + 8).store(hi, Ordering::Relaxed);
        }
        // The syscall stub and its shared user-half tables.
        let stub = self.plat_ptr(self.page_gpa(USTUB_PAGE)) as *mut u8;
        // SAFETY: the stub page of the platform region.
        unsafe {
            std::ptr::write_bytes(stub, 0xf4, PAGE as usize);
            *stub = 0xe6;
            *stub.add(1) = SYSCALL_PORT as u8;
        }
        // Kernel half: PML4[511] -> PDPT -> PD of 2 MiB pages over the platform region.
        let pdpt = self.page_gpa(KPDPT_PAGE);
        let pd = self.page_gpa(KPD_PAGE);
        self.word(pdpt)
            .store(pd | PTE_P | PTE_W | PTE_A, Ordering::Relaxed);
        for i in 0..PLAT_SIZE / (2 << 20) {
            let flags = if i == 0 {
                PTE_P | PTE_A | PTE_PS
            } else {
                PTE_P | PTE_W | PTE_A | PTE_D | PTE_PS | PTE_NX
            };
            self.word(pd + i * 8)
                .store((self.plat_gpa + i * (2 << 20)) | flags, Ordering::Relaxed);
        }
    }

    /// Make KVM forget every translation it cached from guest page tables: deleting a
    /// memory slot zaps all shadow pages and reloads every vCPU's roots (with TLB
    /// flush) before the ioctl returns.
    fn zap(&self) -> Result<()> {
        if std::env::var_os("RVISOR_KVM_NOZAP").is_some() {
            return Ok(());
        }
        let z = self.zap.lock();
        for size in [0, PAGE] {
            let region = kvm_userspace_memory_region {
                slot: 2,
                flags: 0,
                guest_phys_addr: z.gpa,
                memory_size: size,
                userspace_addr: z.host as u64,
            };
            // SAFETY: slot 2 is a page of our own that no guest mapping uses.
            unsafe { self.vm.set_user_memory_region(region) }
                .map_err(|e| kvm_err("KVM_SET_USER_MEMORY_REGION (zap)", e))?;
        }
        self.stats.zaps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Give KVM the memory slots covering `off..off + len` of the memory file.
    fn ensure_slots(&self, off: u64, len: u64) -> Result<()> {
        let mut have = self.mem_slots.lock();
        for i in off / MEM_CHUNK..(off + len).div_ceil(MEM_CHUNK) {
            if have[i as usize] {
                continue;
            }
            let gpa = i * MEM_CHUNK;
            let region = kvm_userspace_memory_region {
                slot: 3 + i as u32,
                flags: 0,
                guest_phys_addr: gpa,
                memory_size: MEM_CHUNK.min(self.mem_size - gpa),
                userspace_addr: self.mem_host as u64 + gpa,
            };
            // SAFETY: a piece of our own mapping of the memory file, which lives as long
            // as the VM.
            unsafe { self.vm.set_user_memory_region(region) }
                .map_err(|e| kvm_err("KVM_SET_USER_MEMORY_REGION", e))?;
            have[i as usize] = true;
        }
        Ok(())
    }

    /// Make KVM drop what it cached from the page-table pages `tables` (guest physical
    /// addresses) after the host changed them.
    fn flush(&self, tables: &[u64]) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        if !self.pvm {
            return self.zap();
        }
        let mut f = self.flusher.lock();
        if f.is_none() {
            let mut vcpu = self.new_vcpu()?;
            vcpu.fd.set_sync_valid_reg(kvm_ioctls::SyncReg::Register);
            vcpu.fd
                .set_sync_valid_reg(kvm_ioctls::SyncReg::SystemRegister);
            let pml4 = self.alloc_page()?;
            self.word(pml4 + 511 * 8).store(
                self.page_gpa(KPDPT_PAGE) | PTE_P | PTE_W | PTE_A,
                Ordering::Relaxed,
            );
            vcpu.sregs.cr3 = pml4;
            vcpu.sregs.cs = kvm_segment {
                selector: KERNEL_CS,
                dpl: 0,
                ..vcpu.sregs.cs
            };
            vcpu.sregs.ss = kvm_segment {
                selector: KERNEL_DS,
                dpl: 0,
                ..vcpu.sregs.ss
            };
            vcpu.fd
                .set_sregs(&vcpu.sregs)
                .map_err(|e| kvm_err("KVM_SET_SREGS", e))?;
            let list = self.alloc_page()?;
            *f = Some(Flusher { vcpu, list });
        }
        let f = f.as_mut().expect("just set");
        for chunk in tables.chunks(512) {
            for (i, t) in chunk.iter().enumerate() {
                self.word(f.list + i as u64 * 8)
                    .store(KBASE + (t - self.plat_gpa), Ordering::Relaxed);
            }
            let regs = kvm_regs {
                rip: CODE_VA + FLUSH_OFF,
                rsi: KBASE + (f.list - self.plat_gpa),
                rcx: chunk.len() as u64,
                rsp: KBASE + (f.vcpu.page - self.plat_gpa) + PAGE,
                rflags: 2,
                ..Default::default()
            };
            f.vcpu.fd.sync_regs_mut().regs = regs;
            f.vcpu.fd.get_kvm_run().kvm_dirty_regs = kvm_bindings::KVM_SYNC_X86_REGS as u64;
            loop {
                let what = match f.vcpu.fd.run() {
                    Ok(VcpuExit::Hlt) => break,
                    Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
                    other => format!("{other:?}"),
                };
                return Err(Error::Other(format!(
                    "KVM flush: {what} at rip {:#x}",
                    f.vcpu.fd.sync_regs().regs.rip
                )));
            }
            let rip = f.vcpu.fd.sync_regs().regs.rip;
            if rip != CODE_VA + FLUSH_OFF + FLUSH_CODE.len() as u64 {
                return Err(Error::Other(format!("KVM flush stopped at {rip:#x}")));
            }
        }
        self.stats.zaps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn new_vcpu(&self) -> Result<Vcpu> {
        if let Some(v) = self.pool.lock().pop() {
            v.reset_fpu()?;
            return Ok(v);
        }
        let id = self.next_vcpu.fetch_add(1, Ordering::Relaxed);
        let fd = self
            .vm
            .create_vcpu(id)
            .map_err(|e| kvm_err("KVM_CREATE_VCPU", e))?;
        fd.set_cpuid2(&self.cpuid)
            .map_err(|e| kvm_err("KVM_SET_CPUID2", e))?;
        let page = self.alloc_page()?;
        // GDT: null, kernel32 code (unused), kernel code, kernel data, user32 code, user
        // data, user code, unused, TSS (16 bytes). Accessed bits preset.
        let gdt = page + GDT_OFF;
        let descs: [u64; 7] = [
            0,
            0x00cf_9b00_0000_ffff,
            0x00af_9b00_0000_ffff,
            0x00cf_9300_0000_ffff,
            0x00cf_fb00_0000_ffff,
            0x00cf_f300_0000_ffff,
            0x00af_fb00_0000_ffff,
        ];
        for (i, d) in descs.iter().enumerate() {
            self.word(gdt + i as u64 * 8).store(*d, Ordering::Relaxed);
        }
        let tss_va = KBASE + (page - self.plat_gpa) + TSS_OFF;
        let tss_limit = 0x68 + IOMAP_LEN - 1;
        let tss_lo = tss_limit
            | ((tss_va & 0xff_ffff) << 16)
            | (0x8b << 40)
            | (((tss_va >> 24) & 0xff) << 56);
        self.word(gdt + 8 * 8).store(tss_lo, Ordering::Relaxed);
        self.word(gdt + 9 * 8)
            .store(tss_va >> 32, Ordering::Relaxed);
        // TSS: RSP0 at offset 4 (unaligned), an I/O bitmap allowing SYSCALL_PORT only.
        let stack_top = KBASE + (page - self.plat_gpa) + PAGE;
        let tss = self.plat_ptr(page + TSS_OFF) as *mut u8;
        // SAFETY: the TSS lies inside this vCPU's fresh page.
        unsafe {
            std::ptr::write_unaligned(tss.add(4) as *mut u64, stack_top);
            std::ptr::write_unaligned(tss.add(0x66) as *mut u16, 0x68);
            std::ptr::write_bytes(tss.add(0x68), 0xff, IOMAP_LEN as usize);
            *tss.add(0x68 + SYSCALL_PORT as usize / 8) &= !(1u8 << (SYSCALL_PORT % 8));
        }
        let mut sregs = fd.get_sregs().map_err(|e| kvm_err("KVM_GET_SREGS", e))?;
        sregs.gdt.base = KBASE + (gdt - self.plat_gpa);
        sregs.gdt.limit = 10 * 8 - 1;
        sregs.idt.base = KBASE + IDT_PAGE * PAGE;
        sregs.idt.limit = 256 * 16 - 1;
        sregs.tr = kvm_segment {
            base: tss_va,
            limit: tss_limit as u32,
            selector: TSS_SEL,
            type_: 11,
            present: 1,
            ..Default::default()
        };
        sregs.ldt = kvm_segment {
            unusable: 1,
            ..Default::default()
        };
        sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
        sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE;
        sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
        set_user_segments(&mut sregs, 0, 0);
        fd.set_sregs(&sregs)
            .map_err(|e| kvm_err("KVM_SET_SREGS", e))?;
        let msrs = Msrs::from_entries(&[
            msr(MSR_STAR, ((KERNEL_CS as u64) << 32) | (0x23 << 48)),
            msr(MSR_LSTAR, USTUB_VA),
            msr(MSR_CSTAR, SYSCALL_VA),
            // TF DF IF IOPL AC NT, as Linux.
            msr(MSR_SFMASK, 0x47700),
        ])
        .map_err(|_| Error::Other("MSR list".into()))?;
        fd.set_msrs(&msrs).map_err(|e| kvm_err("KVM_SET_MSRS", e))?;
        let mut xcrs = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = self.xcr0;
        fd.set_xcrs(&xcrs).map_err(|e| kvm_err("KVM_SET_XCRS", e))?;
        let mut v = Vcpu { fd, sregs, page };
        v.reset_fpu()?;
        v.fd.set_sync_valid_reg(kvm_ioctls::SyncReg::Register);
        v.fd.set_sync_valid_reg(kvm_ioctls::SyncReg::SystemRegister);
        Ok(v)
    }
}

fn msr(index: u32, data: u64) -> kvm_msr_entry {
    kvm_msr_entry {
        index,
        data,
        ..Default::default()
    }
}

fn set_user_segments(s: &mut kvm_sregs, fs_base: u64, gs_base: u64) {
    s.cs = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: USER_CS,
        type_: 11,
        present: 1,
        dpl: 3,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    };
    let data = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: USER_DS,
        type_: 3,
        present: 1,
        dpl: 3,
        db: 1,
        s: 1,
        g: 1,
        ..Default::default()
    };
    s.ss = data;
    let null = kvm_segment {
        selector: 0,
        ..data
    };
    s.ds = null;
    s.es = null;
    s.fs = kvm_segment {
        base: fs_base,
        ..null
    };
    s.gs = kvm_segment {
        base: gs_base,
        ..null
    };
}

// ---- Address spaces ----

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One application address space: a 4-level page table in the platform region.
pub struct KvmAspace {
    m: Arc<Machine>,
    pml4: u64,
    id: u64,
    /// Page-table pages below the PML4, freed with the address space. Also serialises
    /// changes.
    tables: Mutex<Vec<u64>>,
}

impl KvmAspace {
    fn new(m: Arc<Machine>) -> Result<KvmAspace> {
        let pml4 = m.alloc_page()?;
        let kpdpt = m.page_gpa(KPDPT_PAGE);
        m.word(pml4 + 511 * 8)
            .store(kpdpt | PTE_P | PTE_W | PTE_A, Ordering::Relaxed);
        let stub = m.page_gpa(USTUB_PAGE) | PTE_P | PTE_U | PTE_A;
        let a = KvmAspace {
            m,
            pml4,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tables: Mutex::new(vec![]),
        };
        a.set_pte(USTUB_VA, stub)?;
        Ok(a)
    }

    /// The leaf entry for `va`, creating tables on the way when `create`. Without
    /// `create`, a missing table gives Err(n): the number of bytes from `va` to the end
    /// of the missing table's span (so callers can skip it).
    fn leaf(
        &self,
        tables: &mut Vec<u64>,
        va: u64,
        create: bool,
    ) -> Result<std::result::Result<u64, u64>> {
        let mut table = self.pml4;
        for level in 0..3 {
            let shift = 39 - 9 * level;
            let e = table + ((va >> shift) & 511) * 8;
            let w = self.m.word(e);
            let v = w.load(Ordering::Acquire);
            table = if v & PTE_P != 0 {
                v & PTE_ADDR
            } else if create {
                let t = self.m.alloc_page()?;
                tables.push(t);
                w.store(t | PTE_P | PTE_W | PTE_U | PTE_A, Ordering::Release);
                t
            } else {
                let span = 1u64 << shift;
                return Ok(Err(span - (va & (span - 1))));
            };
        }
        Ok(Ok(table + ((va >> 12) & 511) * 8))
    }

    /// Set one leaf entry (the syscall stub, the self test).
    fn set_pte(&self, va: u64, pte: u64) -> Result<()> {
        let mut t = self.tables.lock();
        let e = self.leaf(&mut t, va, true)?.expect("created");
        self.m.word(e).store(pte, Ordering::Release);
        Ok(())
    }

    fn check(&self, addr: u64, len: u64) -> Result<()> {
        if addr & (PAGE - 1) != 0
            || len & (PAGE - 1) != 0
            || addr
                .checked_add(len)
                .is_none_or(|e| e > crate::MAX_USER_ADDR)
        {
            return Err(Error::errno("kvm mapping", libc::EINVAL));
        }
        Ok(())
    }

    /// Apply `f(old) -> new` to every leaf entry of the range (creating tables when
    /// `create`), then zap if any present entry lost a permission or changed target.
    fn update(&self, addr: u64, len: u64, create: bool, f: impl Fn(u64, u64) -> u64) -> Result<()> {
        self.check(addr, len)?;
        let mut tables = self.tables.lock();
        let mut narrowed: Vec<u64> = vec![];
        let mut va = addr;
        let end = addr + len;
        while va < end {
            match self.leaf(&mut tables, va, create)? {
                Err(skip) => va = va.saturating_add(skip),
                Ok(e) => {
                    let w = self.m.word(e);
                    let old = w.load(Ordering::Acquire);
                    let new = f(old, va - addr);
                    if new != old {
                        w.store(new, Ordering::Release);
                        if old & PTE_P != 0 && !widens(old, new) {
                            let t = e & !(PAGE - 1);
                            if narrowed.last() != Some(&t) {
                                narrowed.push(t);
                            }
                        }
                    }
                    va += PAGE;
                }
            }
        }
        // Still under the lock: no vCPU may see the old entries once this returns.
        self.m.flush(&narrowed)
    }
}

/// Whether `new` maps the same page as `old` with at least its permissions.
fn widens(old: u64, new: u64) -> bool {
    new & PTE_P != 0
        && new & PTE_ADDR == old & PTE_ADDR
        && (new & PTE_W != 0 || old & PTE_W == 0)
        && (new & PTE_NX == 0 || old & PTE_NX != 0)
}

fn prot_pte(prot: Prot) -> u64 {
    if prot.is_empty() {
        return 0;
    }
    let mut b = PTE_P | PTE_U | PTE_A | PTE_D;
    if prot.contains(Prot::WRITE) {
        b |= PTE_W;
    }
    if !prot.contains(Prot::EXEC) {
        b |= PTE_NX;
    }
    b
}

impl AddressSpace for KvmAspace {
    fn map(&self, addr: u64, len: u64, file_offset: u64, prot: Prot) -> Result<()> {
        if file_offset
            .checked_add(len)
            .is_none_or(|e| e > self.m.mem_size)
        {
            return Err(Error::errno("kvm map beyond the memory file", libc::EINVAL));
        }
        let flags = prot_pte(prot);
        let keep = flags == 0;
        if !keep {
            self.m.ensure_slots(file_offset, len)?;
        }
        self.update(addr, len, !keep, |_, off| {
            if keep {
                // PROT_NONE: remember nothing (the Sentry keeps the mapping).
                0
            } else {
                (file_offset + off) | flags
            }
        })
    }

    fn unmap(&self, addr: u64, len: u64) -> Result<()> {
        self.update(addr, len, false, |_, _| 0)
    }

    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<()> {
        let flags = prot_pte(prot);
        self.update(addr, len, false, |old, _| {
            if old & PTE_P == 0 || flags == 0 {
                0
            } else {
                (old & PTE_ADDR) | flags
            }
        })
    }

    fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for KvmAspace {
    fn drop(&mut self) {
        // A later address space may reuse these pages as page tables: KVM must not keep
        // shadow pages built from their old contents.
        let mut all = std::mem::take(self.tables.get_mut());
        all.push(self.pml4);
        if let Err(e) = self.m.flush(&all) {
            tracing::error!("KVM: page tables not flushed, leaking them: {e}");
            return;
        }
        for t in all {
            self.m.free_page(t);
        }
    }
}

// ---- vCPUs and contexts ----

struct Vcpu {
    fd: VcpuFd,
    /// The segment and control registers as last set; after an exit only CS/SS changed.
    sregs: kvm_sregs,
    /// Guest physical address of this vCPU's GDT/TSS/stack page.
    page: u64,
}

impl Vcpu {
    /// The initial FPU/SSE/AVX state: nothing of a previous user of a pooled vCPU
    /// survives.
    fn reset_fpu(&self) -> Result<()> {
        let mut x = self
            .fd
            .get_xsave()
            .map_err(|e| kvm_err("KVM_GET_XSAVE", e))?;
        x.region.fill(0);
        x.region[0] = 0x37f; // FCW
        x.region[6] = 0x1f80; // MXCSR
        x.region[128] = 3; // XSTATE_BV: x87 and SSE as given, the rest in init state
                           // SAFETY: a complete XSAVE area of this vCPU's size, obtained from it.
        unsafe { self.fd.set_xsave(&x) }.map_err(|e| kvm_err("KVM_SET_XSAVE", e))
    }
}

/// What an interrupter needs to reach a vCPU thread.
struct Kick {
    pending: AtomicBool,
    /// The vCPU's thread is in (or about to enter) KVM_RUN: only then is it signalled,
    /// so the Sentry's other blocking host calls are not interrupted.
    in_run: AtomicBool,
    /// (address of kvm_run.immediate_exit, thread id) while a vCPU is attached.
    target: Mutex<Option<(usize, i32)>>,
}

impl Interrupter for Kick {
    fn interrupt(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if let Some((ie, tid)) = *self.target.lock() {
            // SAFETY: the kvm_run mapping stays valid while the target is set (cleared
            // under this lock before the vCPU is released); a one-byte store.
            unsafe { std::ptr::write_volatile(ie as *mut u8, 1) };
            // The store above must be visible before in_run is read (the vCPU thread
            // sets in_run, then KVM reads immediate_exit): else both could miss.
            std::sync::atomic::fence(Ordering::SeqCst);
            if self.in_run.load(Ordering::SeqCst) {
                // SAFETY: signalling a thread of this process; its handler does nothing.
                unsafe {
                    libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, SIG_KICK);
                }
            }
        }
    }
}

extern "C" fn kick_handler(_: i32) {}

fn install_kick_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data; the handler is async-signal-safe (empty).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = kick_handler as *const () as usize;
            // A late kick must not fail the Sentry's own host calls with EINTR.
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(SIG_KICK, &sa, std::ptr::null_mut());
        }
    });
}

struct KvmContext {
    m: Arc<Machine>,
    vcpu: Option<Vcpu>,
    kick: Arc<Kick>,
}

impl KvmContext {
    fn new(m: Arc<Machine>) -> KvmContext {
        KvmContext {
            m,
            vcpu: None,
            kick: Arc::new(Kick {
                pending: AtomicBool::new(false),
                in_run: AtomicBool::new(false),
                target: Mutex::new(None),
            }),
        }
    }

    fn vcpu(&mut self) -> Result<&mut Vcpu> {
        if self.vcpu.is_none() {
            let mut v = self.m.new_vcpu()?;
            let ie = &mut v.fd.get_kvm_run().immediate_exit as *mut u8 as usize;
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
            *self.kick.target.lock() = Some((ie, tid));
            // SAFETY: unblock the kick signal in this (the vCPU's) thread.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, SIG_KICK);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            }
            self.vcpu = Some(v);
        }
        Ok(self.vcpu.as_mut().expect("just set"))
    }
}

impl Drop for KvmContext {
    fn drop(&mut self) {
        *self.kick.target.lock() = None;
        if let Some(v) = self.vcpu.take() {
            self.m.pool.lock().push(v);
        }
    }
}

fn downcast(aspace: &Arc<dyn AddressSpace>) -> Result<&KvmAspace> {
    let any: &dyn std::any::Any = aspace.as_ref();
    any.downcast_ref::<KvmAspace>()
        .ok_or_else(|| Error::Other("not a KVM address space".into()))
}

fn to_kvm(r: &Regs) -> kvm_regs {
    kvm_regs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rsp: r.rsp,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        rflags: (r.eflags & USER_FLAGS) | 0x202,
    }
}

fn from_kvm(k: &kvm_regs, r: &mut Regs) {
    r.rax = k.rax;
    r.rbx = k.rbx;
    r.rcx = k.rcx;
    r.rdx = k.rdx;
    r.rsi = k.rsi;
    r.rdi = k.rdi;
    r.rsp = k.rsp;
    r.rbp = k.rbp;
    r.r8 = k.r8;
    r.r9 = k.r9;
    r.r10 = k.r10;
    r.r11 = k.r11;
    r.r12 = k.r12;
    r.r13 = k.r13;
    r.r14 = k.r14;
    r.r15 = k.r15;
    r.rip = k.rip;
    r.eflags = k.rflags;
    r.cs = USER_CS as u64;
    r.ss = USER_DS as u64;
    r.ds = 0;
    r.es = 0;
    r.fs = 0;
    r.gs = 0;
}

fn siginfo(signo: i32, code: i32, addr: u64) -> SigInfo {
    let mut raw = [0u8; 128];
    raw[0..4].copy_from_slice(&signo.to_ne_bytes());
    raw[8..12].copy_from_slice(&code.to_ne_bytes());
    raw[16..24].copy_from_slice(&addr.to_ne_bytes());
    // SAFETY: siginfo_t is 128 bytes of plain data.
    SigInfo(unsafe { std::mem::transmute::<[u8; 128], libc::siginfo_t>(raw) })
}

const SI_KERNEL: i32 = 0x80;

/// Vectors whose frame carries an error code.
fn has_error_code(v: u64) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

impl KvmContext {
    /// Resume ring 3 with `regs` and run to the next exit; decode it.
    fn run(&mut self, asp: &KvmAspace, regs: &mut Regs) -> Result<Event> {
        let m = self.m.clone();
        let kick = self.kick.clone();
        let v = self.vcpu()?;
        if kick.pending.swap(false, Ordering::SeqCst) {
            v.fd.get_kvm_run().immediate_exit = 0;
            return Ok(Event::Interrupted);
        }
        v.sregs.cr3 = asp.pml4;
        set_user_segments(&mut v.sregs, regs.fs_base, regs.gs_base);
        let sr = v.sregs;
        let s = v.fd.sync_regs_mut();
        s.regs = to_kvm(regs);
        s.sregs = sr;
        v.fd.get_kvm_run().kvm_dirty_regs = SYNC_DIRTY;
        kick.in_run.store(true, Ordering::SeqCst);
        let ran = v.fd.run();
        kick.in_run.store(false, Ordering::SeqCst);
        let exit = {
            match ran {
                Ok(VcpuExit::Hlt) => Ok(false),
                Ok(VcpuExit::IoOut(SYSCALL_PORT, _)) => Ok(true),
                Ok(VcpuExit::Intr) => Err(libc::EINTR),
                Ok(other) => {
                    let what = format!("{other:?}");
                    let k = v.fd.sync_regs().regs;
                    return Err(Error::Other(format!(
                        "KVM: unexpected exit {what} at rip {:#x}",
                        k.rip
                    )));
                }
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Err(libc::EINTR),
                Err(e) => return Err(kvm_err("KVM_RUN", e)),
            }
        };
        let run = v.fd.get_kvm_run();
        let applied = run.kvm_dirty_regs == 0;
        run.kvm_dirty_regs = 0;
        let sync = v.fd.sync_regs();
        let k = sync.regs;
        let cr2 = sync.sregs.cr2;
        if exit.is_err() {
            // Kicked: the vCPU stopped wherever it was, in ring 3 (only `hlt` runs in
            // ring 0, and it exits), or before it entered (registers not even loaded).
            v.fd.get_kvm_run().immediate_exit = 0;
            kick.pending.store(false, Ordering::SeqCst);
            if applied {
                from_kvm(&k, regs);
            }
            regs.orig_rax = u64::MAX;
            return Ok(Event::Interrupted);
        }
        if exit == Ok(true) {
            // The syscall stub's `out` (RIP at or after it): `syscall` left the return
            // address in rcx and the user flags in r11, on PVM and on hardware alike.
            from_kvm(&k, regs);
            if k.rip != USTUB_VA && k.rip != USTUB_VA + 2 {
                // `out` to the port from anywhere else: what Linux does for any `out`.
                regs.orig_rax = u64::MAX;
                return Ok(Event::Signal(siginfo(libc::SIGSEGV, SI_KERNEL, 0)));
            }
            regs.rip = k.rcx;
            regs.eflags = k.r11;
            regs.orig_rax = k.rax;
            return Ok(Event::Syscall);
        }
        let hlt = k.rip.wrapping_sub(1);
        if hlt == SYSCALL_VA {
            // CSTAR: a `syscall` from 32-bit code, which is not supported.
            from_kvm(&k, regs);
            regs.rip = k.rcx;
            regs.eflags = k.r11;
            regs.orig_rax = u64::MAX;
            return Ok(Event::Signal(siginfo(libc::SIGSEGV, SI_KERNEL, 0)));
        }
        if !(CODE_VA..CODE_VA + 256 * VEC_STRIDE).contains(&hlt) {
            return Err(Error::Other(format!(
                "KVM: hlt at unexpected rip {:#x}",
                k.rip
            )));
        }
        let vector = (hlt - CODE_VA) / VEC_STRIDE;
        // The exception frame on this vCPU's ring-0 stack.
        let top = v.page + PAGE;
        let depth = if has_error_code(vector) { 6 } else { 5 };
        let frame = top - depth * 8;
        let word = |i: u64| m.word(frame + i * 8).load(Ordering::Acquire);
        let (err, base) = if has_error_code(vector) {
            (word(0), 1)
        } else {
            (0, 0)
        };
        from_kvm(&k, regs);
        regs.rip = word(base);
        regs.eflags = word(base + 2);
        regs.rsp = word(base + 3);
        regs.orig_rax = u64::MAX;
        let rip = regs.rip;
        Ok(match vector {
            14 => {
                let access = if err & 0x10 != 0 {
                    Access::Exec
                } else if err & 2 != 0 {
                    Access::Write
                } else {
                    Access::Read
                };
                let code = if err & 1 != 0 { 2 } else { 1 };
                Event::Fault {
                    addr: cr2,
                    access,
                    info: siginfo(libc::SIGSEGV, code, cr2),
                }
            }
            0 => Event::Signal(siginfo(libc::SIGFPE, 1, rip)),
            1 => Event::Signal(siginfo(libc::SIGTRAP, 2, rip)),
            3 => Event::Signal(siginfo(libc::SIGTRAP, SI_KERNEL, 0)),
            6 => Event::Signal(siginfo(libc::SIGILL, 2, rip)),
            12 => Event::Signal(siginfo(libc::SIGBUS, SI_KERNEL, 0)),
            16 | 19 => Event::Signal(siginfo(libc::SIGFPE, fpe_code(v), rip)),
            17 => Event::Signal(siginfo(libc::SIGBUS, 1, rip)),
            _ => Event::Signal(siginfo(libc::SIGSEGV, SI_KERNEL, 0)),
        })
    }
}

/// si_code for a SIMD/x87 floating-point exception, from the unmasked MXCSR flags.
fn fpe_code(v: &Vcpu) -> i32 {
    let Ok(fpu) = v.fd.get_fpu() else { return 7 };
    let m = fpu.mxcsr;
    let e = m & 0x3f & !((m >> 7) & 0x3f);
    if e & 1 != 0 {
        7 // FPE_FLTINV
    } else if e & 4 != 0 {
        3 // FPE_FLTDIV
    } else if e & 8 != 0 {
        4 // FPE_FLTOVF
    } else if e & 0x12 != 0 {
        5 // FPE_FLTUND
    } else if e & 0x20 != 0 {
        6 // FPE_FLTRES
    } else {
        7
    }
}

impl Context for KvmContext {
    fn switch(&mut self, aspace: &Arc<dyn AddressSpace>, regs: &mut Regs) -> Result<Event> {
        let asp = downcast(aspace)?;
        let r = self.run(asp, regs);
        tracing::trace!(
            "kvm: {r:?} rip {:#x} rax {:#x} orig_rax {:#x}",
            regs.rip,
            regs.rax,
            regs.orig_rax
        );
        r
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.kick.clone()
    }

    fn fp_state(&mut self, _aspace: &Arc<dyn AddressSpace>) -> Result<FpState> {
        let v = self.vcpu()?;
        let x = v.fd.get_xsave().map_err(|e| kvm_err("KVM_GET_XSAVE", e))?;
        let mut fp = crate::initial_fp_state();
        // SAFETY: the first 512 bytes of an XSAVE area are the FXSAVE layout, which is
        // what user_fpregs_struct is (512 bytes).
        unsafe {
            std::ptr::copy_nonoverlapping(
                x.region.as_ptr() as *const u8,
                &mut fp as *mut FpState as *mut u8,
                std::mem::size_of::<FpState>(),
            )
        };
        Ok(fp)
    }

    fn set_fp_state(&mut self, _aspace: &Arc<dyn AddressSpace>, fp: &FpState) -> Result<()> {
        let v = self.vcpu()?;
        let mut x = v.fd.get_xsave().map_err(|e| kvm_err("KVM_GET_XSAVE", e))?;
        // SAFETY: as in fp_state, in the other direction.
        unsafe {
            std::ptr::copy_nonoverlapping(
                fp as *const FpState as *const u8,
                x.region.as_mut_ptr() as *mut u8,
                std::mem::size_of::<FpState>(),
            )
        };
        // XSTATE_BV (bytes 512..520): x87 and SSE state are now given.
        x.region[128] |= 3;
        // SAFETY: x is a complete XSAVE area obtained from this vCPU.
        unsafe { v.fd.set_xsave(&x) }.map_err(|e| kvm_err("KVM_SET_XSAVE", e))
    }
}

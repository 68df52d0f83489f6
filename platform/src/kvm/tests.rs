//! KVM platform tests on hand-made code pages. When /dev/kvm is unusable they print the
//! reason and skip loudly.

use super::*;
use crate::{initial_regs, Access, AddressSpace, Context, Event, Platform, Prot, MAX_USER_ADDR};
use std::os::fd::{FromRawFd, OwnedFd};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x60_0000;
const RO: u64 = 0x70_0000;

struct T {
    k: Kvm,
    fd: OwnedFd,
    a: Arc<dyn AddressSpace>,
    c: Box<dyn Context>,
}

impl T {
    fn write(&self, off: u64, bytes: &[u8]) {
        // SAFETY: pwrite from a valid buffer to our memfd.
        let n = unsafe {
            libc::pwrite(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                off as i64,
            )
        };
        assert_eq!(n as usize, bytes.len());
    }
    fn read(&self, off: u64) -> u64 {
        let mut b = [0u8; 8];
        // SAFETY: pread into a valid buffer from our memfd.
        unsafe {
            libc::pread(
                self.fd.as_raw_fd(),
                b.as_mut_ptr() as *mut libc::c_void,
                8,
                off as i64,
            )
        };
        u64::from_le_bytes(b)
    }
    /// Code at file offset 0 mapped RX at CODE, a RW data page (offset 0x1000) at DATA,
    /// a read-only page (offset 0x2000) at RO.
    fn code(&self, code: &[u8]) -> Regs {
        self.write(0, code);
        let mut r = initial_regs();
        r.rip = CODE;
        r.rsp = DATA + 0x800;
        r
    }
    fn run(&mut self, r: &mut Regs) -> Event {
        self.c.switch(&self.a, r).expect("switch")
    }
}

fn setup() -> Option<T> {
    // SAFETY: memfd_create with a static name; checked.
    let fd = unsafe { libc::memfd_create(c"kvm-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on our memfd.
    assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 16 << 20) }, 0);
    let k = match Kvm::new(fd.as_fd()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("SKIPPED: KVM platform test: {e}");
            return None;
        }
    };
    let a = k.new_address_space().expect("aspace");
    a.map(CODE, 0x1000, 0, Prot::READ | Prot::EXEC).unwrap();
    a.map(DATA, 0x1000, 0x1000, Prot::READ | Prot::WRITE)
        .unwrap();
    a.map(RO, 0x1000, 0x2000, Prot::READ).unwrap();
    let c = k.new_context().expect("context");
    Some(T { k, fd, a, c })
}

use std::os::fd::AsFd;

fn sig(e: Event) -> (i32, i32, u64) {
    match e {
        Event::Signal(si) => (si.signo(), si.code(), si.addr()),
        other => panic!("expected a signal, got {other:?}"),
    }
}

#[test]
fn kvm_syscalls() {
    let Some(mut t) = setup() else { return };
    // mov eax, 39; syscall; mov rdi, rax; mov eax, 60; syscall
    let mut r = t.code(&[
        0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0x48, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05,
    ]);
    r.r12 = 0x1234;
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(r.orig_rax, 39);
    assert_eq!(r.rip, CODE + 7);
    assert_eq!(r.rcx, CODE + 7);
    assert_eq!(r.r12, 0x1234);
    assert_eq!(r.cs, 0x33);
    r.rax = 777;
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(r.orig_rax, 60);
    assert_eq!(r.rdi, 777);
    assert_eq!(r.rip, CODE + 17);
    assert_eq!(r.rsp, DATA + 0x800);
}

#[test]
fn kvm_faults() {
    let Some(mut t) = setup() else { return };
    // mov rax, [0x500000]; mov [RO], rax; syscall
    let mut code = vec![0x48, 0x8b, 0x04, 0x25];
    code.extend_from_slice(&0x50_0000u32.to_le_bytes());
    code.extend_from_slice(&[0x48, 0x89, 0x04, 0x25]);
    code.extend_from_slice(&(RO as u32).to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05]);
    let mut r = t.code(&code);
    match t.run(&mut r) {
        Event::Fault { addr, access, info } => {
            assert_eq!(addr, 0x50_0000);
            assert_eq!(access, Access::Read);
            assert_eq!((info.signo(), info.code()), (libc::SIGSEGV, 1));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(r.rip, CODE);
    // Map it (file page 3 holds 42) and resume: the read succeeds, the write faults.
    t.write(0x3000, &42u64.to_le_bytes());
    t.a.map(0x50_0000, 0x1000, 0x3000, Prot::READ).unwrap();
    match t.run(&mut r) {
        Event::Fault { addr, access, info } => {
            assert_eq!(addr, RO);
            assert_eq!(access, Access::Write);
            assert_eq!(info.code(), 2);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(r.rax, 42);
    assert_eq!(r.rip, CODE + 8);
    // Make it writable and resume.
    t.a.protect(RO, 0x1000, Prot::READ | Prot::WRITE).unwrap();
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(t.read(0x2000), 42);
    // Unmap the data page and re-run from the start: the read must fault again (no
    // stale translation).
    t.a.unmap(0x50_0000, 0x1000).unwrap();
    r.rip = CODE;
    assert!(matches!(
        t.run(&mut r),
        Event::Fault {
            addr: 0x50_0000,
            ..
        }
    ));
    // Map another file page at the same address: the new contents are seen.
    t.write(0x4000, &43u64.to_le_bytes());
    t.a.map(0x50_0000, 0x1000, 0x3000, Prot::READ).unwrap();
    t.a.map(0x50_0000, 0x1000, 0x4000, Prot::READ).unwrap();
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(r.rax, 43);
    // Read-only again: the write faults.
    t.a.protect(RO, 0x1000, Prot::READ).unwrap();
    r.rip = CODE;
    assert!(matches!(
        t.run(&mut r),
        Event::Fault {
            addr: RO,
            access: Access::Write,
            ..
        }
    ));
}

#[test]
fn kvm_exec_fault() {
    let Some(mut t) = setup() else { return };
    // jmp to DATA (mapped without EXEC)
    let mut r = t.code(&[0xff, 0xe0]);
    r.rax = DATA;
    match t.run(&mut r) {
        Event::Fault { addr, access, .. } => {
            assert_eq!(addr, DATA);
            assert_eq!(access, Access::Exec);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(r.rip, DATA);
}

#[test]
fn kvm_traps() {
    let Some(mut t) = setup() else { return };
    // nop; ud2
    let mut r = t.code(&[0x90, 0x0f, 0x0b]);
    assert_eq!(sig(t.run(&mut r)), (libc::SIGILL, 2, CODE + 1));
    assert_eq!(r.rip, CODE + 1);
    // xor edx, edx; mov eax, 1; xor ecx, ecx; div ecx
    let mut r = t.code(&[0x31, 0xd2, 0xb8, 1, 0, 0, 0, 0x31, 0xc9, 0xf7, 0xf1]);
    assert_eq!(sig(t.run(&mut r)), (libc::SIGFPE, 1, CODE + 9));
    assert_eq!(r.rip, CODE + 9);
    // int3
    let mut r = t.code(&[0xcc, 0x90]);
    assert_eq!(sig(t.run(&mut r)).0, libc::SIGTRAP);
    assert_eq!(r.rip, CODE + 1);
    // out dx, al (#GP from ring 3)
    let mut r = t.code(&[0xee]);
    assert_eq!(sig(t.run(&mut r)), (libc::SIGSEGV, 0x80, 0));
    assert_eq!(r.rip, CODE);
    // hlt in ring 3: #GP
    let mut r = t.code(&[0xf4]);
    assert_eq!(sig(t.run(&mut r)).0, libc::SIGSEGV);
    // int 0x80 (DPL 0 gate): #GP
    // (PVM raises #UD for any `int n` from ring 3, hardware KVM #GP.)
    let mut r = t.code(&[0xcd, 0x80]);
    let s = sig(t.run(&mut r)).0;
    assert!(s == libc::SIGSEGV || s == libc::SIGILL, "{s}");
}

#[test]
fn kvm_sse_across_exits() {
    let Some(mut t) = setup() else { return };
    // movq xmm0, rax; syscall; movq rax, xmm0; syscall; movq rax, xmm1; syscall
    let mut r = t.code(&[
        0x66, 0x48, 0x0f, 0x6e, 0xc0, 0x0f, 0x05, 0x66, 0x48, 0x0f, 0x7e, 0xc0, 0x0f, 0x05, 0x66,
        0x48, 0x0f, 0x7e, 0xc8, 0x0f, 0x05,
    ]);
    r.rax = 0x1122_3344_5566_7788;
    assert!(matches!(t.run(&mut r), Event::Syscall));
    r.rax = 0;
    // The Sentry reads and writes the state between exits.
    let mut fp = t.c.fp_state(&t.a).unwrap();
    assert_eq!(fp.xmm_space[0], 0x5566_7788);
    assert_eq!(fp.xmm_space[1], 0x1122_3344);
    fp.xmm_space[4] = 0xdead_beef;
    t.c.set_fp_state(&t.a, &fp).unwrap();
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(r.rax, 0x1122_3344_5566_7788);
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(r.rax, 0xdead_beef);
}

#[test]
fn kvm_fs_tls_and_cpuid() {
    let Some(mut t) = setup() else { return };
    // mov rax, fs:[8]; syscall; xor eax, eax; cpuid; syscall
    let mut r = t.code(&[
        0x64, 0x48, 0x8b, 0x04, 0x25, 8, 0, 0, 0, 0x0f, 0x05, 0x31, 0xc0, 0x0f, 0xa2, 0x0f, 0x05,
    ]);
    t.write(0x1000 + 0x108, &0xabcdu64.to_le_bytes());
    r.fs_base = DATA + 0x100;
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(r.rax, 0xabcd);
    assert_eq!(r.fs_base, DATA + 0x100);
    assert!(matches!(t.run(&mut r), Event::Syscall));
    // (rcx is the syscall's return address by now.)
    let host = std::arch::x86_64::__cpuid(0);
    assert_eq!((r.rbx as u32, r.rdx as u32), (host.ebx, host.edx));
}

#[test]
fn kvm_guest_tsc_is_the_hosts() {
    let Some(mut t) = setup() else { return };
    if !t.k.tsc_is_host() {
        eprintln!("SKIPPED: the guest's TSC is not the host's on this KVM (not PVM)");
        return;
    }
    // rdtsc; syscall
    let mut r = t.code(&[0x0f, 0x31, 0x0f, 0x05]);
    // SAFETY: rdtsc only reads the time stamp counter.
    let before = unsafe { std::arch::x86_64::_rdtsc() };
    assert!(matches!(t.run(&mut r), Event::Syscall));
    // SAFETY: as above.
    let after = unsafe { std::arch::x86_64::_rdtsc() };
    let guest = (r.rdx << 32) | (r.rax & 0xffff_ffff);
    assert!(
        before <= guest && guest <= after,
        "guest TSC {guest} outside the host's {before}..{after}"
    );
}

#[test]
fn kvm_interrupt() {
    let Some(mut t) = setup() else { return };
    // jmp .
    let mut r = t.code(&[0xeb, 0xfe]);
    let i = t.c.interrupter();
    let h = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        i.interrupt();
    });
    assert!(matches!(t.run(&mut r), Event::Interrupted));
    assert_eq!(r.rip, CODE);
    h.join().unwrap();
    // An interrupt before the switch makes the next one return at once.
    t.c.interrupter().interrupt();
    assert!(matches!(t.run(&mut r), Event::Interrupted));
}

/// Measures exits: `cargo test --release -p platform kvm_probe -- --ignored --nocapture`.
#[test]
#[ignore]
fn kvm_probe() {
    let Some(mut t) = setup() else { return };
    // 1: syscall; jmp 1b
    let mut r = t.code(&[0x0f, 0x05, 0xeb, 0xfc]);
    let n = 20000;
    for _ in 0..100 {
        t.run(&mut r);
    }
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        assert!(matches!(t.run(&mut r), Event::Syscall));
    }
    let d = t0.elapsed();
    println!(
        "syscall round trip: {:.2} us",
        d.as_secs_f64() * 1e6 / n as f64
    );
    // Page fault round trip: read an unmapped page.
    let mut code = vec![0x48, 0x8b, 0x04, 0x25];
    code.extend_from_slice(&0x50_0000u32.to_le_bytes());
    let mut r = t.code(&code);
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        r.rip = CODE;
        assert!(matches!(t.run(&mut r), Event::Fault { .. }));
    }
    let d = t0.elapsed();
    println!("#PF round trip: {:.2} us", d.as_secs_f64() * 1e6 / n as f64);
    // Zap cost.
    let t0 = std::time::Instant::now();
    for _ in 0..200 {
        t.k.m.zap().unwrap();
    }
    println!(
        "zap (memory slot delete + re-create): {:.2} us",
        t0.elapsed().as_secs_f64() * 1e6 / 200.0
    );
    // cpuid in a loop of 1000 then syscall
    let mut r = t.code(&[
        0xb9, 0xe8, 3, 0, 0, 0x31, 0xc0, 0x51, 0x0f, 0xa2, 0x59, 0xe2, 0xf8, 0x0f, 0x05,
    ]);
    let t0 = std::time::Instant::now();
    assert!(matches!(t.run(&mut r), Event::Syscall));
    println!("cpuid: {:.2} us", t0.elapsed().as_secs_f64() * 1e6 / 1000.0);
    // Costs of the pieces, best of 5 batches (the machine is shared).
    let m = t.k.m.clone();
    let mut v = m.new_vcpu().unwrap();
    let best = |name: &str, f: &mut dyn FnMut()| {
        let mut b = f64::MAX;
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            for _ in 0..1000 {
                f();
            }
            b = b.min(t0.elapsed().as_secs_f64() * 1e6 / 1000.0);
        }
        println!("{name}: {b:.2} us");
    };
    best("KVM_GET_REGS", &mut || {
        v.fd.get_regs().unwrap();
    });
    let asp = downcast(&t.a).unwrap();
    let mut sr = v.sregs;
    sr.cr3 = asp.pml4;
    v.fd.set_sync_valid_reg(kvm_ioctls::SyncReg::Register);
    v.fd.set_sync_valid_reg(kvm_ioctls::SyncReg::SystemRegister);
    let go = |v: &mut Vcpu, rip: u64, kernel: bool, sregs: bool| {
        let mut s2 = sr;
        if kernel {
            s2.cs.selector = KERNEL_CS;
            s2.cs.dpl = 0;
            s2.ss.selector = KERNEL_DS;
            s2.ss.dpl = 0;
        }
        let s = v.fd.sync_regs_mut();
        s.regs = kvm_regs {
            rip,
            rsp: DATA + 0x800,
            rflags: 2,
            ..Default::default()
        };
        s.sregs = s2;
        v.fd.get_kvm_run().kvm_dirty_regs = if sregs { SYNC_DIRTY } else { 1 };
        let r = v.fd.run();
        assert!(
            matches!(r, Ok(VcpuExit::Hlt) | Ok(VcpuExit::IoOut(..))),
            "{r:?}"
        );
    };
    go(&mut v, CODE_VA, true, true);
    best("KVM_RUN: ring-0 hlt (regs+sregs synced)", &mut || {
        go(&mut v, CODE_VA, true, true)
    });
    best("KVM_RUN: ring-0 hlt (regs synced)", &mut || {
        go(&mut v, CODE_VA, true, false)
    });
    t.write(0x800, &[0x0f, 0x05, 0xf4]);
    best("KVM_RUN: ring-3 syscall -> exit", &mut || {
        go(&mut v, CODE + 0x800, false, true)
    });
    t.write(0x810, &[0xe6, 0x80]);
    best("KVM_RUN: ring-3 out (allowed port) -> exit", &mut || {
        go(&mut v, CODE + 0x810, false, true)
    });
    best(
        "KVM_RUN: ring-3 out, regs only (stays in ring 3)",
        &mut || go(&mut v, CODE + 0x810, false, false),
    );
    best(
        "KVM_RUN: ring-3 syscall -> out stub, regs only",
        &mut || go(&mut v, CODE + 0x800, false, false),
    );
    // Touch 32 pages (mov rax, [rbx]; add rbx, 4096; loop) then out.
    t.a.map(0x80_0000, 32 * 4096, 0x10_0000, Prot::READ)
        .unwrap();
    t.write(
        0x820,
        &[
            0xbb, 0, 0, 0x80, 0, // mov ebx, 0x800000
            0xb9, 32, 0, 0, 0, // mov ecx, 32
            0x48, 0x8b, 0x03, // 1: mov rax, [rbx]
            0x48, 0x81, 0xc3, 0, 0x10, 0, 0, // add rbx, 4096
            0xe2, 0xf4, // loop 1b
            0xe6, 0x80, // out 0x80, al
        ],
    );
    best("KVM_RUN: ring-3 touch 32 pages then out", &mut || {
        go(&mut v, CODE + 0x820, false, false)
    });
    t.write(
        0x840,
        &[
            0xb9, 0, 0, 1, 0, // mov ecx, 0x10000
            0xe2, 0xfe, // 1: loop 1b
            0xe6, 0x80, // out 0x80, al
        ],
    );
    best("KVM_RUN: ring-3 65536-iteration loop then out", &mut || {
        go(&mut v, CODE + 0x840, false, false)
    });
    best("KVM_RUN: ring-3 hlt (#GP) -> exit", &mut || {
        go(&mut v, CODE + 0x802, false, true)
    });
    v.fd.get_kvm_run().immediate_exit = 1;
    best("KVM_RUN with immediate_exit", &mut || {
        assert!(v.fd.run().is_err());
    });
    v.fd.get_kvm_run().immediate_exit = 0;
    best("flush of one page-table page", &mut || {
        m.flush(&[asp.pml4]).unwrap();
    });
}

/// Lists what /dev/kvm says about PVM: `cargo test --release -p platform kvm_pvm_info -- --ignored --nocapture`.
#[test]
#[ignore]
fn kvm_pvm_info() {
    let kvm = KvmSys::new().unwrap();
    let msrs = kvm.get_msr_index_list().unwrap();
    for m in msrs.as_slice() {
        if *m >= 0x4b56_4d00 && *m <= 0x4b56_4dff {
            println!("msr {m:#x}");
        }
    }
    let vm = kvm.create_vm().unwrap();
    let v = vm.create_vcpu(0).unwrap();
    let ents: Vec<_> = (0..8).map(|i| msr(0x4b56_4d00 + i, 0)).collect();
    let mut ms = Msrs::from_entries(&ents).unwrap();
    let n = v.get_msrs(&mut ms).unwrap();
    for e in &ms.as_slice()[..n] {
        println!("msr {:#x} = {:#x}", e.index, e.data);
    }
    let c = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    for e in c.as_slice() {
        if e.function >= 0x4000_0000 && e.function < 0x8000_0000 {
            let s: Vec<u8> = [e.ebx, e.ecx, e.edx]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            println!(
                "cpuid {:#x}.{} eax {:#x} ebx {:#x} ecx {:#x} edx {:#x} {:?}",
                e.function,
                e.index,
                e.eax,
                e.ebx,
                e.ecx,
                e.edx,
                String::from_utf8_lossy(&s)
            );
        }
    }
}

/// PVM_SYNTHETIC_CPUID (`invlpg 0xffffffffff4d5650; cpuid`) from ring 3:
/// `cargo test --release -p platform kvm_pvm_cpuid -- --ignored --nocapture`.
#[test]
#[ignore]
fn kvm_pvm_cpuid() {
    let Some(mut t) = setup() else { return };
    for leaf in [
        0x4000_0000u32,
        0x4000_0001,
        0x4000_0100,
        0x4000_0200,
        0x4000_0201,
    ] {
        // mov eax, leaf; xor ecx, ecx; invlpg [0xffffffffff4d5650]; cpuid; syscall
        let mut code = vec![0xb8];
        code.extend_from_slice(&leaf.to_le_bytes());
        code.extend_from_slice(&[0x31, 0xc9, 0x0f, 0x01, 0x3c, 0x25, 0x50, 0x56, 0x4d, 0xff]);
        code.extend_from_slice(&[0x0f, 0xa2, 0x0f, 0x05]);
        let mut r = t.code(&code);
        let e = t.run(&mut r);
        let s: Vec<u8> = [r.rbx as u32, r.rcx as u32, r.rdx as u32]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        println!(
            "leaf {leaf:#x}: {e:?} rip {:#x} eax {:#x} ebx {:#x} ecx {:#x} edx {:#x} {:?}",
            r.rip,
            r.rax,
            r.rbx,
            r.rcx,
            r.rdx,
            String::from_utf8_lossy(&s)
        );
    }
}

#[test]
fn kvm_stack_near_the_top() {
    let Some(mut t) = setup() else { return };
    // The stack at the top of the user range shares a PML4 slot with the syscall stub.
    let top = MAX_USER_ADDR - 0x1000;
    t.a.map(top, 0x1000, 0x5000, Prot::READ | Prot::WRITE)
        .unwrap();
    // push rax; syscall
    let mut r = t.code(&[0x50, 0x0f, 0x05]);
    r.rsp = top + 0x1000;
    r.rax = 0x55;
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(t.read(0x5ff8), 0x55);
}

#[test]
fn kvm_pooled_vcpu_starts_clean() {
    let Some(mut t) = setup() else { return };
    // movq xmm3, rax; syscall; movq rax, xmm3; syscall
    let code = [
        0x66, 0x48, 0x0f, 0x6e, 0xd8, 0x0f, 0x05, 0x66, 0x48, 0x0f, 0x7e, 0xd8, 0x0f, 0x05,
    ];
    let mut r = t.code(&code);
    r.rax = 0x77;
    assert!(matches!(t.run(&mut r), Event::Syscall));
    // Drop the context (its vCPU goes to the pool) and take a new one.
    t.c = t.k.new_context().unwrap();
    let mut r = t.code(&code[7..]);
    r.rax = 1;
    assert!(matches!(t.run(&mut r), Event::Syscall));
    assert_eq!(r.rax, 0);
    let fp = t.c.fp_state(&t.a).unwrap();
    assert_eq!((fp.cwd, fp.mxcsr), (0x37f, 0x1f80));
}

#[test]
fn kvm_unusable_device_is_a_clear_error() {
    let null = std::fs::File::open("/dev/null").unwrap();
    let mem = std::fs::File::open("/dev/null").unwrap();
    match Kvm::from_fd(null.into(), mem.as_fd()) {
        Err(e) => assert!(e.to_string().contains("KVM platform"), "{e}"),
        Ok(_) => panic!("/dev/null accepted as /dev/kvm"),
    }
}

/// Cheaper exits on PVM (issue 7), measured against the `out` exit of every system call:
/// a ring-3 gate (LSTAR at ring-3 code that returns at once: what a `syscall` costs
/// when it needs no host) and a shared-memory handshake with a host thread (ring 3
/// posts a request in memory and spins; a host thread answers; no exit at all).
/// `cargo test --release -p platform kvm_exit_paths -- --ignored --nocapture`.
#[test]
#[ignore]
fn kvm_exit_paths() {
    let Some(mut t) = setup() else { return };
    let best = |name: &str, n: u64, f: &mut dyn FnMut()| {
        let mut b = f64::MAX;
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            f();
            b = b.min(t0.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        println!("{name}: {b:.3} us");
    };
    // Baseline: syscall -> `out` stub -> exit -> back, through Context::switch.
    let mut r = t.code(&[0x0f, 0x05, 0xeb, 0xfc]);
    best(
        "exit per syscall (Context::switch round trip)",
        1000,
        &mut || {
            for _ in 0..1000 {
                assert!(matches!(t.run(&mut r), Event::Syscall));
            }
        },
    );
    // Shared-memory handshake: N requests at DATA, answers at DATA+8, then a syscall.
    const N: u32 = 2000;
    let mut code = vec![0x31, 0xc0, 0xb9];
    code.extend_from_slice(&N.to_le_bytes());
    code.extend_from_slice(&[0xbb, 0, 0, 0x60, 0]); // mov ebx, DATA
    code.extend_from_slice(&[
        0x48, 0xff, 0xc0, // 1: inc rax
        0x48, 0x89, 0x03, // mov [rbx], rax
        0xf3, 0x90, // 2: pause
        0x48, 0x39, 0x43, 0x08, // cmp [rbx+8], rax
        0x75, 0xf8, // jne 2b
        0xff, 0xc9, // dec ecx
        0x75, 0xee, // jnz 1b
        0x0f, 0x05, // syscall
    ]);
    let host = t.k.m.mem_host + 0x1000;
    best(
        "shared-memory handshake with a host thread",
        N as u64,
        &mut || {
            // SAFETY: the DATA page of the memory file mapping, 8-aligned words.
            let (req, resp) = unsafe {
                (
                    &*(host as *const AtomicU64),
                    &*((host + 8) as *const AtomicU64),
                )
            };
            req.store(0, Ordering::SeqCst);
            resp.store(0, Ordering::SeqCst);
            let h = std::thread::spawn(move || {
                let mut last = 0;
                let t0 = std::time::Instant::now();
                while last < N as u64 && t0.elapsed().as_secs() < 20 {
                    let v = req.load(Ordering::Acquire);
                    if v != last {
                        resp.store(v, Ordering::Release);
                        last = v;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            });
            let mut r = t.code(&code);
            assert!(matches!(t.run(&mut r), Event::Syscall));
            h.join().unwrap();
        },
    );
    if !t.k.m.pvm {
        println!("ring-3 gate: not measured (only PVM keeps `syscall` in ring 3)");
        return;
    }
    // Ring-3 gate: LSTAR at `push r11; popfq; jmp rcx` on the code page, 1000
    // syscalls, then `out`.
    let m = t.k.m.clone();
    let mut v = m.new_vcpu().unwrap();
    let msrs = Msrs::from_entries(&[msr(MSR_LSTAR, CODE + 0x920)]).unwrap();
    v.fd.set_msrs(&msrs).unwrap();
    t.write(
        0x900,
        &[
            0xbd, 0xe8, 3, 0, 0, // mov ebp, 1000
            0x0f, 0x05, // 1: syscall
            0xff, 0xcd, // dec ebp
            0x75, 0xfa, // jnz 1b
            0xe6, 0x80, // out 0x80, al
        ],
    );
    t.write(0x920, &[0x41, 0x53, 0x9d, 0xff, 0xe1]);
    let asp = downcast(&t.a).unwrap();
    let mut sr = v.sregs;
    sr.cr3 = asp.pml4;
    best("ring-3 gate: syscall answered in ring 3", 1000, &mut || {
        let s = v.fd.sync_regs_mut();
        s.regs = kvm_regs {
            rip: CODE + 0x900,
            rsp: DATA + 0x800,
            rflags: 0x202,
            ..Default::default()
        };
        s.sregs = sr;
        v.fd.get_kvm_run().kvm_dirty_regs = SYNC_DIRTY;
        let r = v.fd.run();
        assert!(matches!(r, Ok(VcpuExit::IoOut(SYSCALL_PORT, _))), "{r:?}");
    });
}

/// `cpuid` in ring 3 gives the workload one answer: the same on every vCPU and the
/// host's (leaves 0, 1 and 7; leaf 1's EBX without the APIC id of the CPU it ran on).
#[test]
fn kvm_cpuid_is_consistent() {
    let Some(mut t) = setup() else { return };
    let mut other = t.k.new_context().expect("context");
    for leaf in [0u32, 1, 7] {
        // mov eax, leaf; xor ecx, ecx; cpuid; mov r8, rcx; syscall
        let mut code = vec![0xb8];
        code.extend_from_slice(&leaf.to_le_bytes());
        code.extend_from_slice(&[0x31, 0xc9, 0x0f, 0xa2, 0x49, 0x89, 0xc8, 0x0f, 0x05]);
        let mut got = vec![];
        for c in 0..2 {
            let mut r = t.code(&code);
            let ev = if c == 0 {
                t.run(&mut r)
            } else {
                other.switch(&t.a, &mut r).expect("switch")
            };
            assert!(matches!(ev, Event::Syscall), "{ev:?}");
            let ebx = if leaf == 1 {
                r.rbx & 0x00ff_ffff
            } else {
                r.rbx
            };
            got.push((r.rax as u32, ebx as u32, r.r8 as u32, r.rdx as u32));
        }
        let h = std::arch::x86_64::__cpuid_count(leaf, 0);
        let hbx = if leaf == 1 {
            h.ebx & 0x00ff_ffff
        } else {
            h.ebx
        };
        assert_eq!(got[0], got[1], "leaf {leaf}: two vCPUs disagree");
        assert_eq!(
            got[0],
            (h.eax, hbx, h.ecx, h.edx),
            "leaf {leaf}: not the host's"
        );
    }
}

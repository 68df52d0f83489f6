//! The ptrace platform alone: hand-made code pages that make system calls and fault.

use platform::ptrace::Ptrace;
use platform::{AddressSpace, Event, Platform, Prot};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::Arc;

const CODE: u64 = 0x40_0000;
const STACK: u64 = 0x50_0000;
const DATA: u64 = 0x60_0000;

fn memfd(code: &[u8]) -> OwnedFd {
    // SAFETY: memfd_create with a static name; the fd is checked and owned below.
    let fd = unsafe { libc::memfd_create(c"test-mem".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let f = std::fs::File::from(fd.try_clone().unwrap());
    f.set_len(1 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(code, 0).unwrap();
    fd
}

fn setup(
    code: &[u8],
) -> (
    OwnedFd,
    Ptrace,
    Arc<dyn AddressSpace>,
    Box<dyn platform::Context>,
    platform::Regs,
) {
    let fd = memfd(code);
    let p = Ptrace::new(fd.as_fd()).unwrap();
    let as_ = p.new_address_space().unwrap();
    as_.map(CODE, 0x1000, 0, Prot::READ | Prot::EXEC).unwrap();
    as_.map(STACK, 0x1000, 0x1000, Prot::READ | Prot::WRITE)
        .unwrap();
    let ctx = p.new_context().unwrap();
    let mut regs = platform::initial_regs();
    regs.rip = CODE;
    regs.rsp = STACK + 0x1000;
    (fd, p, as_, ctx, regs)
}

#[test]
fn syscalls_faults_and_signals() {
    let code = [
        0xb8, 0x27, 0, 0, 0, // mov eax, 39
        0x0f, 0x05, // syscall
        0xbb, 0, 0, 0x60, 0, // mov ebx, 0x600000
        0x88, 0x03, // mov [rbx], al
        0x0f, 0x0b, // ud2
    ];
    let (fd, _p, as_, mut ctx, mut regs) = setup(&code);
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    assert!(matches!(ev, Event::Syscall), "{ev:?}");
    assert_eq!(regs.orig_rax, 39);
    assert_eq!(regs.rip, CODE + 7);
    regs.rax = 0x2a; // the emulated result
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    match ev {
        Event::Fault { addr, .. } => assert_eq!(addr, DATA),
        e => panic!("expected a fault, got {e:?}"),
    }
    assert_eq!(regs.rip, CODE + 12, "the faulting instruction is retried");
    as_.map(DATA, 0x1000, 0x2000, Prot::READ | Prot::WRITE)
        .unwrap();
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    match ev {
        Event::Signal(si) => {
            assert_eq!(si.signo(), libc::SIGILL);
            assert_eq!(si.addr(), CODE + 14);
        }
        e => panic!("expected SIGILL, got {e:?}"),
    }
    let mut b = [0u8; 1];
    use std::os::unix::fs::FileExt;
    std::fs::File::from(fd)
        .read_exact_at(&mut b, 0x2000)
        .unwrap();
    assert_eq!(b[0], 0x2a, "the store went to the memory file");
}

#[test]
fn protect_and_unmap() {
    let code = [
        0xbb, 0, 0, 0x60, 0, // mov ebx, 0x600000
        0xc6, 0x03, 0x01, // mov byte [rbx], 1
        0xeb, 0xf9, // jmp back to the store
    ];
    let (_fd, _p, as_, mut ctx, mut regs) = setup(&code);
    as_.map(DATA, 0x1000, 0x2000, Prot::READ).unwrap();
    match ctx.switch(&as_, &mut regs).unwrap() {
        Event::Fault { addr, info, .. } => {
            assert_eq!(addr, DATA);
            assert_eq!(info.code(), 2, "SEGV_ACCERR on a read-only page");
        }
        e => panic!("{e:?}"),
    }
    as_.unmap(DATA, 0x1000).unwrap();
    match ctx.switch(&as_, &mut regs).unwrap() {
        Event::Fault { info, .. } => assert_eq!(info.code(), 1, "SEGV_MAPERR once unmapped"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn interrupt_a_spinning_thread() {
    let code = [0xeb, 0xfe]; // jmp .
    let (_fd, _p, as_, mut ctx, mut regs) = setup(&code);
    let intr = ctx.interrupter();
    // First switch creates the stub thread; interrupt it from another thread.
    let t = std::thread::spawn(move || {
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            intr.interrupt();
        }
    });
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    assert!(matches!(ev, Event::Interrupted), "{ev:?}");
    assert_eq!(regs.rip, CODE);
    t.join().unwrap();
}

#[test]
fn tls_and_fp_state_survive() {
    let code = [
        0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, // mov rax, fs:[0]
        0x66, 0x48, 0x0f, 0x6e, 0xc0, // movq xmm0, rax
        0x48, 0x89, 0xc7, // mov rdi, rax
        0x0f, 0x05, // syscall
        0x66, 0x48, 0x0f, 0x7e, 0xc7, // movq rdi, xmm0
        0x0f, 0x05, // syscall
    ];
    let (fd, _p, as_, mut ctx, mut regs) = setup(&code);
    use std::os::unix::fs::FileExt;
    std::fs::File::from(fd.try_clone().unwrap())
        .write_all_at(&0x1122334455667788u64.to_le_bytes(), 0x1800)
        .unwrap();
    regs.fs_base = STACK + 0x800;
    assert!(matches!(
        ctx.switch(&as_, &mut regs).unwrap(),
        Event::Syscall
    ));
    assert_eq!(regs.rdi, 0x1122334455667788);
    let fp = ctx.fp_state(&as_).unwrap();
    assert_eq!(fp.xmm_space[0], 0x55667788);
    // A mapping change in between (an injected syscall) must not disturb the thread.
    as_.map(DATA, 0x1000, 0x2000, Prot::READ).unwrap();
    regs.rdi = 0;
    assert!(matches!(
        ctx.switch(&as_, &mut regs).unwrap(),
        Event::Syscall
    ));
    assert_eq!(regs.rdi, 0x1122334455667788);
}

#[test]
fn two_address_spaces_one_thread() {
    let code = [0x0f, 0x05, 0xeb, 0xfc]; // syscall; jmp back
    let (fd, p, a, mut ctx, mut regs) = setup(&code);
    let b = p.new_address_space().unwrap();
    b.map(CODE, 0x1000, 0, Prot::READ | Prot::EXEC).unwrap();
    let _ = fd;
    for i in 0..100 {
        let sp = if i % 2 == 0 { &a } else { &b };
        regs.rax = i;
        assert!(matches!(ctx.switch(sp, &mut regs).unwrap(), Event::Syscall));
        regs.rip = CODE;
    }
    drop(b);
    assert!(matches!(ctx.switch(&a, &mut regs).unwrap(), Event::Syscall));
}

#[test]
fn cpu_time_counts_application_code() {
    let code = [0xeb, 0xfe]; // jmp .
    let (_fd, _p, as_, mut ctx, mut regs) = setup(&code);
    let before = as_.cpu_time_ns().expect("the stub's CPU clock");
    let intr = ctx.interrupter();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let t = std::thread::spawn(move || {
        // Interrupt until the switch has returned (the first may come too early).
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if d2.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            intr.interrupt();
        }
    });
    let t0 = std::time::Instant::now();
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    let wall = t0.elapsed().as_nanos() as u64;
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(matches!(ev, Event::Interrupted), "{ev:?}");
    let spent = as_.cpu_time_ns().unwrap() - before;
    // The spin used CPU (some of the wall time, on a busy machine not all of it)...
    assert!(spent > wall / 10, "spent {spent} ns of {wall} ns");
    // ...and the clock stands still while nothing runs.
    let idle = as_.cpu_time_ns().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(as_.cpu_time_ns().unwrap() - idle < 5_000_000);
    t.join().unwrap();
}

#[test]
fn apply_runs_a_batch_and_stops_at_a_failure() {
    // Stores a byte to each of 100 data pages, then exits through a syscall.
    let code = [
        0xbb, 0, 0, 0x60, 0, // mov ebx, 0x600000
        0xb9, 100, 0, 0, 0, // mov ecx, 100
        0xc6, 0x03, 0x07, // mov byte [rbx], 7
        0x48, 0x81, 0xc3, 0, 0x10, 0, 0, // add rbx, 0x1000
        0xe2, 0xf4, // loop back to the store
        0xb8, 0x27, 0, 0, 0, // mov eax, 39
        0x0f, 0x05, // syscall
    ];
    let (fd, _p, as_, mut ctx, mut regs) = setup(&code);
    // One page each, every other frame: 100 separate mappings, more than one stop's worth.
    let ops: Vec<platform::MapOp> = (0..100u64)
        .map(|i| platform::MapOp::Map {
            addr: DATA + i * 0x1000,
            len: 0x1000,
            file_offset: 0x2000 + 2 * i * 0x1000,
            prot: Prot::READ | Prot::WRITE,
            populate: i % 2 == 0,
            huge: false,
        })
        .collect();
    as_.apply(&ops).unwrap();
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    assert!(matches!(ev, Event::Syscall), "{ev:?}");
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(fd);
    for i in 0..100u64 {
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, 0x2000 + 2 * i * 0x1000).unwrap();
        assert_eq!(b[0], 7, "page {i}");
    }
    // An unmap, a map past the end of the address space (fails), and one never run.
    let ops = [
        platform::MapOp::Unmap {
            addr: DATA,
            len: 0x1000,
        },
        platform::MapOp::Map {
            addr: !0xfff,
            len: 0x1000,
            file_offset: 0,
            prot: Prot::READ,
            populate: false,
            huge: false,
        },
        platform::MapOp::Unmap {
            addr: DATA + 0x1000,
            len: 0x1000,
        },
    ];
    assert!(as_.apply(&ops).is_err());
    regs.rip = CODE;
    match ctx.switch(&as_, &mut regs).unwrap() {
        Event::Fault { addr, .. } => assert_eq!(addr, DATA, "the first unmap ran"),
        e => panic!("{e:?}"),
    }
    as_.map(DATA, 0x1000, 0x2000, Prot::READ | Prot::WRITE)
        .unwrap();
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    assert!(
        matches!(ev, Event::Syscall),
        "the unmap after the failure did not run: {ev:?}"
    );
}

#[test]
fn a_huge_map_is_advised_and_populated_in_the_stub() {
    let code = [
        0xbb, 0, 0x10, 0x60, 0, // mov ebx, 0x601000
        0xc6, 0x03, 0x07, // mov byte [rbx], 7
        0xb8, 0x27, 0, 0, 0, // mov eax, 39
        0x0f, 0x05, // syscall
    ];
    let (fd, _p, as_, mut ctx, mut regs) = setup(&code);
    let f = std::fs::File::from(fd);
    f.set_len(4 << 20).unwrap();
    let pid = as_.host_pid().unwrap();
    let rss = || status_field(pid, "RssShmem:").unwrap();
    let kb = |s: String| s.trim_end_matches(" kB").parse::<u64>().unwrap();
    let before = kb(rss());
    // mmap, MADV_HUGEPAGE, MADV_POPULATE_WRITE, MADV_NOHUGEPAGE: the stub's filter lets
    // that advice through (anything else kills it) and the 2 MiB are present at once.
    as_.apply(&[platform::MapOp::Map {
        addr: DATA,
        len: 2 << 20,
        file_offset: 2 << 20,
        prot: Prot::READ | Prot::WRITE,
        populate: true,
        huge: true,
    }])
    .unwrap();
    assert!(kb(rss()) >= before + 2048, "{before} kB -> {}", rss());
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    assert!(matches!(ev, Event::Syscall), "{ev:?}");
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, (2 << 20) + 0x1000).unwrap();
    assert_eq!(b[0], 7);
    // Read-only: MADV_POPULATE_READ.
    let before = kb(rss());
    as_.apply(&[platform::MapOp::Map {
        addr: DATA + (2 << 20),
        len: 2 << 20,
        file_offset: 0,
        prot: Prot::READ,
        populate: true,
        huge: true,
    }])
    .unwrap();
    assert!(kb(rss()) >= before + 2000, "{before} kB -> {}", rss());
}

#[test]
fn stub_process_takes_a_name() {
    let code = [0x0f, 0x05, 0xeb, 0xfc]; // syscall; jmp back
    let (_fd, _p, as_, mut ctx, mut regs) = setup(&code);
    let pid = as_.host_pid().expect("a stub process");
    as_.set_name(b"a-very-long-process-name").unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm, "a-very-long-pro\n");
    // The stub still serves its address space afterwards.
    assert!(matches!(
        ctx.switch(&as_, &mut regs).unwrap(),
        Event::Syscall
    ));
    as_.set_name(b"sh").unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm, "sh\n");
}

fn status_field(pid: i32, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
}

/// Gone, or a zombie waiting for whoever inherited it.
fn dead(pid: i32) -> bool {
    status_field(pid, "State:").is_none_or(|s| s.starts_with('Z'))
}

#[test]
fn stubs_are_forked_from_a_template_and_die_with_it() {
    let code = [0x0f, 0x05, 0xeb, 0xfc]; // syscall; jmp back
    let (fd, p, as_, mut ctx, mut regs) = setup(&code);
    assert!(matches!(
        ctx.switch(&as_, &mut regs).unwrap(),
        Event::Syscall
    ));
    let second = p.new_address_space().unwrap();
    let (a, b) = (as_.host_pid().unwrap(), second.host_pid().unwrap());
    // Both stubs are children of one template, which is our child.
    let template: i32 = status_field(a, "PPid:").unwrap().parse().unwrap();
    assert_eq!(status_field(b, "PPid:").unwrap(), template.to_string());
    assert_ne!(template, std::process::id() as i32);
    let comm = std::fs::read_to_string(format!("/proc/{template}/comm")).unwrap();
    assert_eq!(comm, "rvisor-stub\n");
    assert_eq!(
        status_field(template, "PPid:").unwrap(),
        std::process::id().to_string()
    );
    // A stub holds only its two pages and what was mapped into it (code and stack from
    // the memory file): nothing of this process was copied into it. ([vsyscall] is the
    // kernel's, in every process.)
    let maps = std::fs::read_to_string(format!("/proc/{a}/maps")).unwrap();
    let n = maps.lines().filter(|l| !l.ends_with("[vsyscall]")).count();
    assert_eq!(n, 4, "stub mappings:\n{maps}");
    assert!(maps.contains("rvisor-stub-ctl"), "{maps}");
    // A stub that goes away is reaped by the template: no zombie is left behind.
    drop(second);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while status_field(b, "State:").is_some() {
        assert!(std::time::Instant::now() < deadline, "stub {b} lingers");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // When the template dies (as it does when the thread that forked it does), its
    // stubs die too.
    // SAFETY: killing the template, a child of this test process.
    unsafe { libc::kill(template, libc::SIGKILL) };
    while !dead(a) {
        assert!(
            std::time::Instant::now() < deadline,
            "stub {a} outlived its template"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop((as_, ctx, p, fd));
}

#[test]
fn mapping_calls_leave_the_application_thread_alone() {
    // A fault resolved from another OS thread: the mapping calls run in the stub's own
    // spawner thread, so no stub thread is made for the mapping thread, and the faulting
    // thread resumes with exactly the registers it stopped with.
    let code = [
        0xbb, 0, 0, 0x60, 0, // mov ebx, 0x600000
        0x88, 0x03, // mov [rbx], al
        0x0f, 0x05, // syscall
    ];
    let (fd, _p, as_, mut ctx, mut regs) = setup(&code);
    regs.rax = 0x5a;
    regs.r15 = 0x1234_5678_9abc_def0;
    match ctx.switch(&as_, &mut regs).unwrap() {
        Event::Fault { addr, .. } => assert_eq!(addr, DATA),
        e => panic!("expected a fault, got {e:?}"),
    }
    let pid = as_.host_pid().unwrap();
    let threads = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count()
    };
    let before = threads();
    let other = as_.clone();
    std::thread::spawn(move || {
        other
            .apply(&[platform::MapOp::Map {
                addr: DATA,
                len: 0x1000,
                file_offset: 0x2000,
                prot: Prot::READ | Prot::WRITE,
                populate: true,
                huge: false,
            }])
            .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(threads(), before, "a stub thread was made for the mapping");
    let ev = ctx.switch(&as_, &mut regs).unwrap();
    assert!(matches!(ev, Event::Syscall), "{ev:?}");
    assert_eq!((regs.rip, regs.orig_rax), (CODE + 9, 0x5a));
    assert_eq!(regs.r15, 0x1234_5678_9abc_def0);
    let mut b = [0u8; 1];
    use std::os::unix::fs::FileExt;
    std::fs::File::from(fd)
        .read_exact_at(&mut b, 0x2000)
        .unwrap();
    assert_eq!(b[0], 0x5a, "the retried store went to the memory file");
}

#[test]
fn a_spare_stub_waits_ready_and_one_killed_meanwhile_is_replaced() {
    let code = [0x0f, 0x05, 0xeb, 0xfc]; // syscall; jmp back
    let (fd, p, as_, _ctx, _regs) = setup(&code);
    let a = as_.host_pid().unwrap();
    let template: i32 = status_field(a, "PPid:").unwrap().parse().unwrap();
    // The template has forked the next stub ahead: a second child, already started.
    let children = |t: i32| -> Vec<i32> {
        std::fs::read_to_string(format!("/proc/{t}/task/{t}/children"))
            .unwrap()
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let spare = loop {
        if let Some(s) = children(template).into_iter().find(|c| *c != a) {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no spare stub");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // SAFETY: killing a stub of ours, as the host's OOM killer might.
    unsafe { libc::kill(spare, libc::SIGKILL) };
    while !dead(spare) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The next address space is a fresh stub that works, not the dead spare.
    let b = p.new_address_space().unwrap();
    assert_ne!(b.host_pid(), Some(spare));
    b.map(CODE, 0x1000, 0, Prot::READ | Prot::EXEC).unwrap();
    let mut ctx = p.new_context().unwrap();
    let mut regs = platform::initial_regs();
    regs.rip = CODE;
    assert!(matches!(ctx.switch(&b, &mut regs).unwrap(), Event::Syscall));
    let _ = fd;
}

//! The ptrace stub: a tiny process that owns one application address space.
//!
//! The Sentry forks one template: a child that copies a page of position-independent
//! code to [`STUB_ADDR`], jumps there and unmaps everything else, so it holds only the
//! stub's two pages. Each new address space is a fork of the template (cheap: two pages,
//! none of the Sentry's memory), which maps its own control page from the control file
//! at an offset the Sentry chose. A stub's first thread waits on a futex in its control
//! page; each request makes it clone one more thread, which reports its tid and sleeps
//! in `pause()` until a Sentry thread seizes it with ptrace. Application code only ever
//! runs in those seized threads.
//!
//! Lifetimes: the template dies with the Sentry thread that forked it (PDEATHSIG) and
//! each stub with the template (PDEATHSIG, checked with getppid after it is set); the
//! template ignores SIGCHLD, so its dead children never linger as zombies.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Where the stub's code page lives in every stub process.
pub const STUB_ADDR: u64 = 0x7fff_0000_0000;
/// The control page shared with the Sentry (mapped right after the code).
pub const STUB_CTL: u64 = STUB_ADDR + 0x1000;
pub const STUB_END: u64 = STUB_ADDR + 0x2000;
/// The end of the user half of the address space (TASK_SIZE with 4-level paging).
pub const TASK_TOP: u64 = 0x7fff_ffff_f000;
/// Where a batch of system calls starts in the control page: entries of seven u64
/// (number, six arguments); the stub writes each result over the number.
pub const BATCH_OFFSET: usize = 64;
pub const BATCH_MAX: usize = (4096 - BATCH_OFFSET) / 56;

/// Control page layout: request (1: a new thread, 2: rename, 3: fork a stub (template
/// only), 4: run a batch), the answer (the new thread's tid or stub's pid, 1 once
/// renamed or the batch ran, -errno on failure), ready flag, the name for a rename, and
/// `arg`: for a fork the offset in the control file of the new stub's control page, for
/// a batch its length (and after it, how many calls were not done). From
/// [`BATCH_OFFSET`] on, the page holds the system calls of one batch.
#[repr(C)]
pub struct Ctl {
    pub req: AtomicU32,
    pub tid: AtomicU32,
    pub ready: AtomicU32,
    pub _pad: u32,
    pub name: [u8; 16],
    pub arg: AtomicU64,
}

/// Request words of [`Ctl::req`].
pub const REQ_THREAD: u32 = 1;
pub const REQ_RENAME: u32 = 2;
pub const REQ_FORK: u32 = 3;
pub const REQ_BATCH: u32 = 4;

std::arch::global_asm!(
    ".pushsection .text.rvisor_stub, \"ax\"",
    ".p2align 12",
    ".globl rvisor_stub_start",
    "rvisor_stub_start:",
    // The template. rdi: its control page's old address, rsi: the control file, rdx:
    // its own pid. Move the control page to STUB_CTL.
    "mov r12, rdi",
    "mov r14, rsi",
    "mov r15, rdx",
    "mov eax, 25",
    "mov rdi, r12",
    "mov esi, 4096",
    "mov edx, 4096",
    "mov r10d, 3",
    "movabs r8, {ctl}",
    "syscall",
    // Unmap everything but the stub's two pages.
    "mov eax, 11",
    "xor edi, edi",
    "movabs rsi, {stub}",
    "syscall",
    "mov eax, 11",
    "movabs rdi, {end}",
    "movabs rsi, {rest}",
    "syscall",
    // ready = 1; futex_wake(&ready)
    "movabs r12, {ctl}",
    "mov dword ptr [r12 + 8], 1",
    "mov eax, 202",
    "lea rdi, [r12 + 8]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    // Template loop: futex_wait(&req, 0); on req 3 fork a stub.
    "11:",
    "mov eax, 202",
    "mov rdi, r12",
    "xor esi, esi",
    "xor edx, edx",
    "xor r10d, r10d",
    "syscall",
    "mov eax, dword ptr [r12]",
    "test eax, eax",
    "jz 11b",
    "mov dword ptr [r12], 0",
    "cmp eax, 3",
    "jne 11b",
    "mov r13, qword ptr [r12 + 32]",
    // clone(SIGCHLD): a plain fork, no stack used.
    "mov eax, 56",
    "mov edi, 17",
    "xor esi, esi",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jz 12f",
    // Parent: report the pid (or -errno).
    "mov dword ptr [r12 + 4], eax",
    "mov eax, 202",
    "lea rdi, [r12 + 4]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "jmp 11b",
    // The new stub: its own control page over the template's, PDEATHSIG, and a check
    // that the template did not die before that.
    "12:",
    "mov eax, 9",
    "mov rdi, r12",
    "mov esi, 4096",
    "mov edx, 3",
    "mov r10d, 0x11",
    "mov r8, r14",
    "mov r9, r13",
    "syscall",
    "cmp rax, r12",
    "jne 13f",
    "mov eax, 157",
    "mov edi, 1",
    "mov esi, 9",
    "syscall",
    "test eax, eax",
    "jnz 13f",
    "mov eax, 110",
    "syscall",
    "cmp eax, r15d",
    "jne 13f",
    "mov dword ptr [r12 + 8], 1",
    "mov eax, 202",
    "lea rdi, [r12 + 8]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "jmp 2f",
    "13:",
    "mov eax, 231",
    "mov edi, 111",
    "syscall",
    // Spawner loop: futex_wait(&req, 0); on req 1 clone a thread, on 2 rename.
    "2:",
    "mov eax, 202",
    "mov rdi, r12",
    "xor esi, esi",
    "xor edx, edx",
    "xor r10d, r10d",
    "syscall",
    "mov eax, dword ptr [r12]",
    "test eax, eax",
    "jz 2b",
    "mov dword ptr [r12], 0",
    "cmp eax, 2",
    "je 5f",
    "cmp eax, 4",
    "je 7f",
    // clone(CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM, same stack): no stack is used.
    "mov eax, 56",
    "mov edi, 0x50f00",
    "xor esi, esi",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jz 3f",
    "jns 2b",
    // clone failed: report -errno as the tid.
    "mov dword ptr [r12 + 4], eax",
    "mov eax, 202",
    "lea rdi, [r12 + 4]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "jmp 2b",
    // New thread: tid = gettid(); futex_wake(&tid); then sleep until seized.
    "3:",
    "mov eax, 186",
    "syscall",
    "mov dword ptr [r12 + 4], eax",
    "mov eax, 202",
    "lea rdi, [r12 + 4]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "4:",
    "mov eax, 34",
    "syscall",
    "jmp 4b",
    // Rename: prctl(PR_SET_NAME, ctl->name); tid = 0 ? 1 : -errno; futex_wake(&tid).
    "5:",
    "mov eax, 157",
    "mov edi, 15",
    "lea rsi, [r12 + 16]",
    "syscall",
    "test eax, eax",
    "jnz 6f",
    "mov eax, 1",
    "6:",
    "mov dword ptr [r12 + 4], eax",
    "mov eax, 202",
    "lea rdi, [r12 + 4]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "jmp 2b",
    // A batch: ctl->arg entries from BATCH_OFFSET on, in order, each result written over
    // its number; stops at the first failure. ctl->arg = how many were not done (0: all
    // succeeded), tid = 1, futex_wake(&tid).
    "7:",
    "mov r13, qword ptr [r12 + 32]",
    "lea rbx, [r12 + {batch}]",
    "8:",
    "test r13, r13",
    "jz 9f",
    "mov rax, qword ptr [rbx]",
    "mov rdi, qword ptr [rbx + 8]",
    "mov rsi, qword ptr [rbx + 16]",
    "mov rdx, qword ptr [rbx + 24]",
    "mov r10, qword ptr [rbx + 32]",
    "mov r8, qword ptr [rbx + 40]",
    "mov r9, qword ptr [rbx + 48]",
    "syscall",
    "mov qword ptr [rbx], rax",
    "cmp rax, -4095",
    "jae 9f",
    "add rbx, 56",
    "dec r13",
    "jmp 8b",
    "9:",
    "mov qword ptr [r12 + 32], r13",
    "mov dword ptr [r12 + 4], 1",
    "mov eax, 202",
    "lea rdi, [r12 + 4]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "jmp 2b",
    ".globl rvisor_stub_end",
    "rvisor_stub_end:",
    ".popsection",
    ctl = const STUB_CTL,
    stub = const STUB_ADDR,
    end = const STUB_END,
    rest = const TASK_TOP - STUB_END,
    batch = const BATCH_OFFSET,
);

extern "C" {
    /// glibc's rseq registration of the current thread (glibc >= 2.35).
    static __rseq_offset: isize;
    static __rseq_size: u32;
    static rvisor_stub_start: u8;
    static rvisor_stub_end: u8;
}

fn code() -> (usize, usize) {
    let start = std::ptr::addr_of!(rvisor_stub_start) as usize;
    let end = std::ptr::addr_of!(rvisor_stub_end) as usize;
    (start, end - start)
}

/// The stub's seccomp program: the few calls the stub itself makes (the template's fork
/// loop, its spawner loop and the injected mapping calls, madvise only with the advice
/// of a huge map); anything else kills the stub. Application system calls
/// never reach it: PTRACE_SYSEMU stops them before seccomp runs.
pub fn filter() -> Vec<libc::sock_filter> {
    const ALLOWED: [i64; 10] = [
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_mremap,
        libc::SYS_futex,
        libc::SYS_clone,
        libc::SYS_gettid,
        libc::SYS_pause,
        libc::SYS_getppid,
        libc::SYS_exit_group,
    ];
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let n = ALLOWED.len() as u8;
    let mut p = vec![
        stmt(ld, 4),
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(ld, 0),
        // prctl only as PR_SET_NAME (the rename request) or PR_SET_PDEATHSIG (a new
        // stub): args[0] is at offset 16.
        jeq(libc::SYS_prctl as u32, 0, 5),
        stmt(ld, 16),
        jeq(libc::PR_SET_NAME as u32, 1, 0),
        jeq(libc::PR_SET_PDEATHSIG as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ret, libc::SECCOMP_RET_KILL_PROCESS),
        // madvise only with the advice of a huge map (args[2], offset 32; the high
        // half, offset 36, must be zero).
        jeq(libc::SYS_madvise as u32, 0, 10),
        stmt(ld, 36),
        jeq(0, 0, 7),
        stmt(ld, 32),
        jeq(libc::MADV_HUGEPAGE as u32, 4, 0),
        jeq(libc::MADV_NOHUGEPAGE as u32, 3, 0),
        jeq(libc::MADV_POPULATE_READ as u32, 2, 0),
        jeq(libc::MADV_POPULATE_WRITE as u32, 1, 0),
        stmt(ret, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ret, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    for (i, nr) in ALLOWED.iter().enumerate() {
        // Match: jump over the remaining tests and the kill to the allow.
        p.push(jeq(*nr as u32, n - i as u8, 0));
    }
    p.push(stmt(ret, libc::SECCOMP_RET_KILL_PROCESS));
    p.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    p
}

/// Runs in the freshly forked template: only raw system calls, no allocation.
///
/// # Safety
/// Must be called only in a child just forked from the Sentry, with `ctl` the address of
/// the shared control page, `memfd` the memory file and `ctlfd` the control file.
pub unsafe fn template_main(
    ctl: *mut Ctl,
    memfd: i32,
    ctlfd: i32,
    parent: i32,
    prog: &libc::sock_fprog,
) -> ! {
    let die = || -> ! {
        // SAFETY: exit_group ends this child; it touches no memory.
        unsafe { libc::syscall(libc::SYS_exit_group, 111) };
        unreachable!()
    };
    // SAFETY: plain system calls on this process only.
    unsafe {
        if libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            || libc::syscall(libc::SYS_getppid) as i32 != parent
        {
            die();
        }
        // Host tools show the template, and each stub until the Sentry renames it, as this.
        libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, c"rvisor-stub".as_ptr());
        // Default dispositions (the Sentry's handlers are not mapped here), all blocked;
        // SIGCHLD ignored so that dead stubs are reaped at once.
        let dfl: [u64; 4] = [0; 4];
        let ign: [u64; 4] = [libc::SIG_IGN as u64, 0, 0, 0];
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                let act = if sig == libc::SIGCHLD { &ign } else { &dfl };
                libc::syscall(libc::SYS_rt_sigaction, sig, act.as_ptr(), 0usize, 8usize);
            }
        }
        let all: u64 = !0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            0usize,
            8usize,
        );
        // glibc registered this thread's rseq area, which is about to be unmapped: a
        // registered but unmapped area makes the kernel kill us on the next return.
        if __rseq_size > 0 {
            let tp: u64;
            std::arch::asm!("mov {}, fs:0", out(reg) tp);
            let area = tp.wrapping_add(__rseq_offset as u64);
            for len in [32u32, __rseq_size] {
                if libc::syscall(libc::SYS_rseq, area, len, 1u32, 0x5305_3053u32) == 0 {
                    break;
                }
            }
        }
        // Keep only the memory file and the control file.
        let (lo, hi) = (memfd.min(ctlfd), memfd.max(ctlfd));
        if lo > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (lo - 1) as u32, 0u32);
        }
        if hi > lo + 1 {
            libc::syscall(
                libc::SYS_close_range,
                (lo + 1) as u32,
                (hi - 1) as u32,
                0u32,
            );
        }
        libc::syscall(libc::SYS_close_range, (hi + 1) as u32, u32::MAX, 0u32);
        let me = libc::syscall(libc::SYS_getpid);
        let (start, len) = code();
        let p = libc::syscall(
            libc::SYS_mmap,
            STUB_ADDR,
            0x1000usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1i64,
            0i64,
        );
        if p as u64 != STUB_ADDR || len > 0x1000 {
            die();
        }
        std::ptr::copy_nonoverlapping(start as *const u8, STUB_ADDR as *mut u8, len);
        if libc::syscall(
            libc::SYS_mprotect,
            STUB_ADDR,
            0x1000usize,
            libc::PROT_READ | libc::PROT_EXEC,
        ) != 0
        {
            die();
        }
        if libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                prog as *const libc::sock_fprog,
            ) != 0
        {
            die();
        }
        std::arch::asm!(
            "jmp {entry}",
            entry = in(reg) STUB_ADDR,
            in("rdi") ctl,
            in("rsi") ctlfd as i64,
            in("rdx") me,
            options(noreturn)
        );
    }
}

/// futex(FUTEX_WAIT) on a shared word with a timeout in milliseconds.
pub fn futex_wait(word: &AtomicU32, val: u32, ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    // SAFETY: the word is valid shared memory; the kernel only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            &ts as *const libc::timespec,
        )
    };
}

pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: as above; FUTEX_WAKE only uses the address as a key.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Wait until `word` is non-zero, for at most `ms` milliseconds.
pub fn wait_nonzero(word: &AtomicU32, ms: u64) -> Option<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    loop {
        let v = word.load(Ordering::Acquire);
        if v != 0 {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        futex_wait(word, 0, 50);
    }
}

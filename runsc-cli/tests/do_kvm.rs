//! `rvisor do --platform kvm ...` (issue 7): the same programs as on ptrace, on the KVM
//! platform. Where /dev/kvm is missing or unusable the tests print why and skip.

mod common;

use common::*;
use std::process::Command;

/// `rvisor do --platform kvm argv...`, or None (after saying why) when KVM is unusable.
fn kvm(argv: &[&str]) -> Option<Run> {
    let mut c = Command::new(rvisor_bin());
    c.args(["do", "--platform", "kvm"]).args(argv);
    let r = run_cmd(c, TIMEOUT);
    if r.stderr.contains("KVM platform") {
        skip(&format!("KVM platform unusable here: {}", r.stderr.trim()));
        return None;
    }
    Some(r)
}

#[test]
fn kvm_true_and_exit_status() {
    let Some(r) = kvm(&["/bin/true"]) else { return };
    assert_eq!(r.shell_status(), 0, "{}", r.describe());
    let Some(r) = kvm(&[BUSYBOX, "sh", "-c", "exit 7"]) else {
        return;
    };
    assert_eq!(r.shell_status(), 7, "{}", r.describe());
}

#[test]
fn kvm_busybox_echo_and_pipeline() {
    let Some(r) = kvm(&[BUSYBOX, "echo", "hi"]) else {
        return;
    };
    assert_eq!(r.stdout, "hi\n", "{}", r.describe());
    let script =
        "seq 1 300 | grep 7 | sort -rn | head -n 3 | tr '\\n' ' '; echo; cat /proc/cmdline";
    let Some(r) = kvm(&[BUSYBOX, "sh", "-c", script]) else {
        return;
    };
    assert_eq!(
        r.stdout,
        "297 287 279 \nrvisor platform=kvm root=gofer:/ overlay=memory\n",
        "{}",
        r.describe()
    );
}

#[test]
fn kvm_signals_from_faults() {
    let dir = TempDir::new("kvm-faults");
    let exe = build_static_c(
        &dir,
        "faults",
        r#"
#include <signal.h>
#include <setjmp.h>
#include <stdio.h>
static sigjmp_buf jb;
static volatile int got;
static void h(int s) { got = s; siglongjmp(jb, 1); }
int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGSEGV, h); signal(SIGILL, h); signal(SIGFPE, h); signal(SIGTRAP, h);
    if (!sigsetjmp(jb, 1)) *(volatile int *)8 = 1;
    printf("segv %d\n", got);
    if (!sigsetjmp(jb, 1)) __asm__ volatile("ud2");
    printf("ill %d\n", got);
    if (!sigsetjmp(jb, 1)) __asm__ volatile("xor %%ecx, %%ecx; div %%ecx" ::: "eax", "ecx", "edx");
    printf("fpe %d\n", got);
    if (!sigsetjmp(jb, 1)) __asm__ volatile("int3");
    printf("trap %d\n", got);
    volatile double d = 1.5;
    for (int i = 0; i < 100000; i++) d *= 1.000001;
    printf("fp %.4f\n", d);
    signal(SIGSEGV, SIG_DFL);
    *(volatile int *)16 = 1;
    return 0;
}
"#,
    );
    let Some(r) = kvm(&[&exe]) else { return };
    assert_eq!(
        r.stdout,
        "segv 11\nill 4\nfpe 8\ntrap 5\nfp 1.6578\n",
        "{}",
        r.describe()
    );
    assert_eq!(r.shell_status(), 128 + 11, "{}", r.describe());
}

//! Kernel identity (issue 5): uname, the kernel log, /proc and /sys identity, and
//! `rvisor compare`.

mod common;
use common::*;

fn sh(script: &str) -> Run {
    sandboxed(&["/bin/sh", "-c", script])
}

fn ok(r: &Run) -> &str {
    assert!(r.status.success(), "{}", r.describe());
    &r.stdout
}

#[test]
fn uname_release_is_rvisors_and_differs_from_the_host() {
    let host = native(&["uname", "-r"]);
    let inside = sandboxed(&["uname", "-r"]);
    let r = ok(&inside).trim().to_string();
    assert!(r.ends_with("-rvisor"), "{r}");
    assert_ne!(r, host.stdout.trim());
    let v = ok(&sandboxed(&["uname", "-v"])).trim().to_string();
    assert!(v.starts_with("#1 SMP") && v.contains("rvisor"), "{v}");
    assert_eq!(
        ok(&sandboxed(&["uname", "-s", "-m"])).trim(),
        "Linux x86_64"
    );
    // /proc agrees with uname.
    let pv = ok(&sh("cat /proc/version /proc/sys/kernel/osrelease /proc/sys/kernel/ostype /proc/sys/kernel/version")).to_string();
    let lines: Vec<&str> = pv.lines().collect();
    assert!(lines[0].starts_with(&format!("Linux version {r} ")), "{pv}");
    assert_eq!(lines[1], r);
    assert_eq!(lines[2], "Linux");
    assert_eq!(lines[3], v);
}

#[test]
fn hostname_from_flag_and_sethostname() {
    let r = rvisor().args(["do", "--hostname", "box1", "/bin/sh", "-c", "uname -n; cat /proc/sys/kernel/hostname; hostname box2; uname -n; cat /proc/sys/kernel/hostname"]).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "box1\nbox1\nbox2\nbox2\n"
    );
}

#[test]
fn dmesg_starts_with_rvisor_and_shows_the_mounts() {
    let out = ok(&sandboxed(&["dmesg"])).to_string();
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.contains("Linux version") && first.contains("rvisor 0."),
        "{out}"
    );
    assert!(out.contains("rvisor: mounted overlay on /"), "{out}");
    assert!(out.contains("rvisor: mounted proc on /proc"), "{out}");
    assert!(
        out.contains(&format!("rvisor: platform {}", platform())),
        "{out}"
    );
    assert!(
        out.contains("rvisor: starting init (pid 1): /usr/bin/dmesg"),
        "{out}"
    );
    // busybox reads it through syslog(2) instead of /dev/kmsg.
    let bb = ok(&sandboxed(&[BUSYBOX, "dmesg"])).to_string();
    assert!(
        bb.lines().next().unwrap_or_default().contains("rvisor 0."),
        "{bb}"
    );
}

#[test]
fn dev_kmsg_records_and_writes() {
    let out = ok(&sh("head -n 1 /dev/kmsg; echo '<3>from user' > /dev/kmsg; dmesg | tail -n 1; dmesg -r | tail -n 1; dmesg -S -r | tail -n 1; dd if=/dev/kmsg iflag=nonblock bs=8k 2>/dev/null | grep ';from user$'")).to_string();
    let l: Vec<&str> = out.lines().collect();
    let f: Vec<&str> = l[0].splitn(4, ',').collect();
    assert_eq!(f.len(), 4, "{out}");
    assert!(
        f[0].parse::<u32>().is_ok() && f[1] == "0" && f[2].parse::<u64>().is_ok(),
        "{out}"
    );
    assert!(f[3].starts_with("-;Linux version"), "{out}");
    assert!(l[1].ends_with("] from user"), "{out}");
    // As on Linux: dmesg -r from /dev/kmsg shows the level, from syslog(2) the full
    // priority (facility user (1), level err (3): 11), and /dev/kmsg records carry it.
    assert!(l[2].starts_with("<3>["), "{out}");
    assert!(l[3].starts_with("<11>["), "{out}");
    assert!(
        l[4].starts_with("11,") && l[4].ends_with(",-;from user"),
        "{out}"
    );
}

#[test]
fn fatal_faults_and_unimplemented_calls_are_logged() {
    let dir = TempDir::new("identity");
    let exe = build_static_c(
        &dir,
        "crash",
        "int main(void) { *(volatile int *)8 = 1; return 0; }\n",
    );
    let out = ok(&sh(&format!(
        "{exe}; echo status=$?; dmesg | grep -E 'segfault|unimplemented system call' "
    )))
    .to_string();
    assert!(out.contains("status=139"), "{out}");
    assert!(
        out.contains("crash[") && out.contains("segfault at 8 ip "),
        "{out}"
    );
    assert!(out.contains("error 6") || out.contains("error 4"), "{out}");
    assert!(out.contains("unimplemented system call"), "{out}");
}

#[test]
fn syslog_honours_dmesg_restrict() {
    let dir = TempDir::new("identity");
    let exe = build_static_c(
        &dir,
        "klog",
        r#"#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <sys/klog.h>
int main(void) {
  char buf[65536];
  int all = klogctl(3, buf, sizeof buf);
  int size = klogctl(10, 0, 0);
  printf("root read_all>0 %d size %d\n", all > 0, size);
  FILE *f = fopen("/proc/sys/kernel/dmesg_restrict", "w"); fputs("1\n", f); fclose(f);
  if (setuid(1000) != 0) return 2;
  errno = 0; int r = klogctl(3, buf, sizeof buf);
  printf("restricted %d eperm %d\n", r, errno == EPERM);
  return 0;
}
"#,
    );
    let out = ok(&sandboxed(&[&exe])).to_string();
    assert_eq!(
        out,
        "root read_all>0 1 size 131072\nrestricted -1 eperm 1\n"
    );
}

#[test]
fn cpu_and_memory_identity_is_consistent() {
    let out = ok(&sh("nproc; grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; grep MemTotal /proc/meminfo")).to_string();
    let l: Vec<&str> = out.lines().collect();
    let n: usize = l[0].parse().unwrap();
    assert_eq!(l[1], l[0], "{out}");
    assert_eq!(
        l[2],
        if n == 1 {
            "0".to_string()
        } else {
            format!("0-{}", n - 1)
        },
        "{out}"
    );
    assert!(
        l[3].starts_with("MemTotal:") && l[3].ends_with(" kB"),
        "{out}"
    );
}

#[test]
fn compare_shows_both_kernels() {
    let host_release = native(&["uname", "-r"]).stdout.trim().to_string();
    let mut c = rvisor();
    c.args(["compare", "--", "uname", "-r"]);
    let r = run_cmd(c, TIMEOUT);
    let out = ok(&r).to_string();
    assert!(out.contains(&host_release), "{out}");
    assert!(out.contains("-rvisor"), "{out}");
    assert!(
        out.contains("host (exit 0)") && out.contains("sandbox (exit 0)"),
        "{out}"
    );
    // The default set, as JSON.
    let mut c = rvisor();
    c.args(["compare", "--json"]);
    let r = run_cmd(c, TIMEOUT);
    let out = ok(&r).to_string();
    assert!(
        out.contains("\"command\": \"uname -a\"") && out.contains("\"command\": \"mount\""),
        "{out}"
    );
    assert!(
        out.contains(&host_release) && out.contains("6.8.0-rvisor"),
        "{out}"
    );
}

#[test]
fn memory_limit_shows_in_meminfo_and_oom_kills() {
    let dir = TempDir::new("identity");
    let exe = build_static_c(
        &dir,
        "hog",
        r#"#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(void) {
  for (int i = 0; i < 64; i++) { char *p = malloc(8 << 20); if (!p) { puts("malloc failed"); return 3; } memset(p, 1, 8 << 20); }
  puts("survived");
  return 0;
}
"#,
    );
    let mut c = rvisor();
    c.args(["do", "--memory-limit", "64M", "/bin/sh", "-c", &format!("grep MemTotal /proc/meminfo; {exe}; echo status=$?; dmesg | grep -c 'Out of memory: Killed process [0-9]* (hog)'")]);
    let r = run_cmd(c, TIMEOUT);
    let out = ok(&r).to_string();
    assert!(out.contains("MemTotal:          65536 kB"), "{out}");
    assert!(
        out.contains("status=137") && !out.contains("survived"),
        "{out}"
    );
    assert!(out.trim_end().ends_with('1'), "{out}");
    let mut c = rvisor();
    c.args(["do", "--memory-limit", "12", "/bin/true"]);
    let r = run_cmd(c, TIMEOUT);
    assert_eq!(
        r.shell_status(),
        2,
        "a bad size is a usage error: {}",
        r.describe()
    );
    assert!(r.stderr.contains("at least 1M"), "{}", r.stderr);
}

kvm_tests!(
    uname_release_is_rvisors_and_differs_from_the_host,
    hostname_from_flag_and_sethostname,
    dmesg_starts_with_rvisor_and_shows_the_mounts,
    dev_kmsg_records_and_writes,
    fatal_faults_and_unimplemented_calls_are_logged,
    syslog_honours_dmesg_restrict,
    cpu_and_memory_identity_is_consistent,
    compare_shows_both_kernels,
    memory_limit_shows_in_meminfo_and_oom_kills,
);

//! `rvisor do /bin/busybox ...` (static busybox): shell scripts and applets, each
//! compared with the same command run natively (issue 2, "What must work").

mod common;

use common::*;
use std::time::Duration;

#[test]
fn sh_pipeline_of_five() {
    let (_, s) = compare_sh(
        "seq 1 1000 | grep 7 | sort -rn | head -n 5 | tr '\\n' ' '; echo; echo \"status=$?\"",
    );
    assert_eq!(
        s.stdout,
        "997 987 979 978 977 \nstatus=0\n",
        "{}",
        s.describe()
    );
}

#[test]
fn sh_subshell() {
    let (_, s) = compare_sh(
        "x=outer; (x=inner; echo \"in $x\"; exit 3); echo \"sub=$? x=$x\"; \
         y=$(echo sub | tr a-z A-Z); echo \"y=$y\"; (cd /usr && pwd); pwd >/dev/null; echo done",
    );
    assert_eq!(
        s.stdout,
        "in inner\nsub=3 x=outer\ny=SUB\n/usr\ndone\n",
        "{}",
        s.describe()
    );
}

#[test]
fn sh_redirection_to_and_from_tmp_file() {
    // Natively this touches the host's /tmp (and cleans up); inside, /tmp is the overlay.
    let script = "f=/tmp/rvisor-e2e-redir-$$; \
        echo hello > $f; echo world >> $f; \
        wc -l < $f; \
        while read l; do echo \"got $l\"; done < $f; \
        ls /nonexistent-rvisor 2> $f.err; echo \"ls=$?\"; cat $f.err; \
        exec 3> $f.fd3; echo via-fd3 >&3; exec 3>&-; cat < $f.fd3; \
        rm $f $f.err $f.fd3; test -e $f || echo removed";
    let (_, s) = compare_sh(script);
    assert_eq!(
        s.stdout,
        "2\ngot hello\ngot world\nls=1\nls: /nonexistent-rvisor: No such file or directory\nvia-fd3\nremoved\n",
        "{}",
        s.describe()
    );
}

#[test]
fn sh_trap_term() {
    let (_, s) = compare_sh("trap 'echo got TERM' TERM; kill -TERM $$; echo after; exit 0");
    assert_eq!(s.stdout, "got TERM\nafter\n", "{}", s.describe());
    assert_eq!(s.shell_status(), 0);
}

#[test]
fn sh_background_job_and_wait() {
    let (_, s) = compare_sh(
        "(sleep 0.2; echo bg done) & pid=$!; echo started; wait $pid; echo \"wait=$?\"; \
         sh -c 'exit 7' & wait $!; echo \"wait2=$?\"; \
         sleep 0.1 & sleep 0.1 & wait; echo \"all=$?\"",
    );
    assert_eq!(
        s.stdout,
        "started\nbg done\nwait=0\nwait2=7\nall=0\n",
        "{}",
        s.describe()
    );
}

#[test]
fn sh_kill_between_processes() {
    let (_, s) = compare_sh(
        "sleep 30 & pid=$!; kill $pid; wait $pid; echo \"term=$?\"; \
         sleep 30 & pid=$!; kill -KILL $pid; wait $pid; echo \"kill=$?\"; \
         sh -c 'kill -USR1 $$; echo not reached'; echo \"self=$?\"",
    );
    assert_eq!(
        s.stdout,
        "term=143\nkill=137\nself=138\n",
        "{}",
        s.describe()
    );
    assert!(
        s.elapsed < Duration::from_secs(10),
        "kill did not end the sleeps promptly: {}",
        s.describe()
    );
}

#[test]
fn sh_exit_42() {
    let (_, s) = compare_sh("echo before; exit 42; echo after");
    assert_eq!(s.shell_status(), 42, "{}", s.describe());
    assert_eq!(s.stdout, "before\n");
}

#[test]
fn find_doc_gz_head() {
    let (_, s) = compare_sh("/bin/busybox find /usr/share/doc -name '*.gz' | /bin/busybox head");
    assert_eq!(s.stdout.lines().count(), 10, "{}", s.describe());
}

/// The same as above without `head` and sorted: tells a readdir-order difference apart
/// from missing or extra entries.
#[test]
fn find_doc_gz_sorted_all() {
    let (n, _) = compare_sh("/bin/busybox find /usr/share/doc -name '*.gz' | /bin/busybox sort");
    assert!(n.stdout.lines().count() > 10, "{}", n.describe());
}

#[test]
fn sha256sum_50mb_matches_native() {
    let dir = TempDir::new("sha");
    let file = dir.join("data.bin");
    // Deterministic, non-trivial contents (xorshift64).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = Vec::with_capacity(50 << 20);
    while data.len() < 50 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&file, &data).unwrap();
    drop(data);
    let f = file.to_str().unwrap();
    let (n, s) = compare(&[BUSYBOX, "sha256sum", f]);
    assert_eq!(n.shell_status(), 0, "{}", n.describe());
    assert_eq!(s.stdout.split_whitespace().next().map(str::len), Some(64));
    // And through stdin (a host file read via a redirection inside the sandbox).
    let (_, s2) = compare_sh(&format!("/bin/busybox sha256sum < {f}"));
    assert_eq!(
        s2.stdout.split_whitespace().next(),
        s.stdout.split_whitespace().next()
    );
}

#[test]
fn sleep_1_takes_about_a_second() {
    let s = sandboxed(&[BUSYBOX, "sleep", "1"]);
    assert_eq!(s.shell_status(), 0, "{}", s.describe());
    assert!(
        s.elapsed >= Duration::from_millis(900) && s.elapsed <= Duration::from_secs(3),
        "busybox sleep 1 took {:?}\n{}",
        s.elapsed,
        s.describe()
    );
}

#[test]
fn dd_100mb_through_pipe_wc() {
    let (_, s) =
        compare_sh("/bin/busybox dd if=/dev/zero bs=1M count=100 2>/dev/null | /bin/busybox wc -c");
    assert_eq!(s.stdout.trim(), "104857600", "{}", s.describe());
    assert_eq!(s.shell_status(), 0);
}

kvm_tests!(
    sh_pipeline_of_five,
    sh_subshell,
    sh_redirection_to_and_from_tmp_file,
    sh_trap_term,
    sh_background_job_and_wait,
    sh_kill_between_processes,
    sh_exit_42,
    find_doc_gz_head,
    find_doc_gz_sorted_all,
    sha256sum_50mb_matches_native,
    sleep_1_takes_about_a_second,
    dd_100mb_through_pipe_wc,
);

//! `rvisor do` running the host's dynamically linked Debian programs, each compared with
//! the same command run natively (issue 2, "What must work").

mod common;

use common::*;

fn trimmed(s: &str) -> &str {
    s.trim_end_matches('\n')
}

#[test]
fn uname_a_matches_native_sysname_and_machine() {
    let nat_s = native(&["uname", "-s"]);
    let nat_m = native(&["uname", "-m"]);
    let nat_a = native(&["uname", "-a"]);
    let (sysname, machine) = (trimmed(&nat_s.stdout), trimmed(&nat_m.stdout));
    assert!(!sysname.is_empty() && !machine.is_empty());

    let a = sandboxed(&["uname", "-a"]);
    assert_eq!(a.shell_status(), 0, "{}", a.describe());
    let line = trimmed(&a.stdout);
    assert!(
        line.starts_with(&format!("{sysname} ")),
        "sysname: want {sysname:?} first\n{}",
        a.describe()
    );
    assert!(
        line.contains(&format!(" {machine} ")),
        "machine {machine:?} missing\n{}",
        a.describe()
    );
    // The last field (the operating system) is the same as natively (GNU/Linux).
    assert_eq!(
        line.split_whitespace().last(),
        trimmed(&nat_a.stdout).split_whitespace().last(),
        "os field\n{}",
        a.describe()
    );

    // Field by field too: -s and -m identical to native, -r ends with -rvisor and is
    // the release shown by -a.
    let s = sandboxed(&["uname", "-s"]);
    assert_same(&nat_s, &s);
    let m = sandboxed(&["uname", "-m"]);
    assert_same(&nat_m, &m);
    let r = sandboxed(&["uname", "-r"]);
    assert_eq!(r.shell_status(), 0, "{}", r.describe());
    let release = trimmed(&r.stdout);
    assert!(release.ends_with("-rvisor"), "release: {}", r.describe());
    assert_eq!(
        line.split_whitespace().nth(2),
        Some(release),
        "uname -a release field vs uname -r\n{}",
        a.describe()
    );
}

/// `ls -la /`: we compare the exit status, the number of entries and, per line, only
/// the name column (with the `-> target` of symlinks). The other columns legitimately
/// differ: /proc, /dev, /sys (and /tmp's contents) are the Sentry's own file systems
/// inside, so their mode, link count, owner, size and times are not the host's; owners
/// can also differ through the sandbox's user namespace; and the "total" line sums
/// block counts, which depend on those.
#[test]
fn ls_la_root_names_match_native() {
    fn names(out: &str) -> Vec<String> {
        out.lines()
            .filter(|l| !l.starts_with("total "))
            .map(|l| {
                // perms links owner group size month day time|year NAME [-> TARGET]:
                // skip eight whitespace-separated fields, keep the rest verbatim.
                let mut rest = l;
                for _ in 0..8 {
                    rest = rest.trim_start();
                    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                    rest = &rest[end..];
                }
                rest.trim_start().to_string()
            })
            .collect()
    }
    let n = native(&["ls", "-la", "/"]);
    let s = sandboxed(&["ls", "-la", "/"]);
    assert_eq!(
        s.shell_status(),
        n.shell_status(),
        "status\n--- native: {}\n--- rvisor: {}",
        n.describe(),
        s.describe()
    );
    let (nn, sn) = (names(&n.stdout), names(&s.stdout));
    assert!(
        nn.len() > 5,
        "native ls output looks wrong: {}",
        n.describe()
    );
    assert_eq!(
        sn,
        nn,
        "name column differs\n--- native: {}\n--- rvisor: {}",
        n.describe(),
        s.describe()
    );
}

#[test]
fn cat_os_release_identical() {
    let (n, _) = compare(&["cat", "/etc/os-release"]);
    assert!(n.stdout.contains("ID="), "{}", n.describe());
}

#[test]
fn touch_etc_stays_in_sandbox() {
    let probe = std::path::Path::new("/etc/rvisor-probe");
    assert!(
        !probe.exists(),
        "/etc/rvisor-probe already exists on the host (left from an earlier run?)"
    );
    let s = sandboxed(&["touch", "/etc/rvisor-probe"]);
    let leaked = probe.exists();
    if leaked {
        let _ = std::fs::remove_file(probe);
    }
    assert_eq!(s.shell_status(), 0, "touch failed inside\n{}", s.describe());
    assert!(!leaked, "/etc/rvisor-probe reached the host");
}

#[test]
fn touch_etc_visible_inside_same_sandbox() {
    let probe = std::path::Path::new("/etc/rvisor-probe2");
    let s = sandboxed(&[
        BUSYBOX,
        "sh",
        "-c",
        "touch /etc/rvisor-probe2 && echo data > /etc/rvisor-probe2 && cat /etc/rvisor-probe2 \
         && ls /etc/rvisor-probe2 && rm /etc/rvisor-probe2 && ! test -e /etc/rvisor-probe2 && echo gone",
    ]);
    let leaked = probe.exists();
    if leaked {
        let _ = std::fs::remove_file(probe);
    }
    assert!(!leaked, "/etc/rvisor-probe2 reached the host");
    assert_eq!(s.shell_status(), 0, "{}", s.describe());
    assert_eq!(
        s.stdout,
        "data\n/etc/rvisor-probe2\ngone\n",
        "{}",
        s.describe()
    );
}

#[test]
fn missing_command_is_127_with_message() {
    let s = sandboxed(&["rvisor-no-such-command"]);
    assert_eq!(s.shell_status(), 127, "{}", s.describe());
    assert_eq!(
        s.stderr.trim_end(),
        "rvisor: rvisor-no-such-command: No such file or directory",
        "{}",
        s.describe()
    );
    assert_eq!(s.stdout, "", "{}", s.describe());
}

#[test]
fn missing_command_by_path_is_127_with_message() {
    let s = sandboxed(&["/nonexistent-rvisor/cmd"]);
    assert_eq!(s.shell_status(), 127, "{}", s.describe());
    assert_eq!(
        s.stderr.trim_end(),
        "rvisor: /nonexistent-rvisor/cmd: No such file or directory",
        "{}",
        s.describe()
    );
}

kvm_tests!(
    uname_a_matches_native_sysname_and_machine,
    ls_la_root_names_match_native,
    cat_os_release_identical,
    touch_etc_stays_in_sandbox,
    touch_etc_visible_inside_same_sandbox,
    missing_command_is_127_with_message,
    missing_command_by_path_is_127_with_message,
);

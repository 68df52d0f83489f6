//! Namespaces through util-linux (unshare, nsenter, lsns) in `rvisor do`, compared
//! with the same commands run natively where the output does not depend on the host.

mod common;

use common::*;

const AS_USER: [&str; 4] = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"];

fn with_user<'a>(argv: &[&'a str]) -> Vec<&'a str> {
    AS_USER
        .iter()
        .copied()
        .chain(argv.iter().copied())
        .collect()
}

#[test]
fn unshare_r_id_is_root_inside() {
    let (_, s) = compare(&["unshare", "-r", "id"]);
    assert_eq!(s.stdout, "uid=0(root) gid=0(root) groups=0(root)\n");
    // An ordinary user's `unshare -r`: its uid mapped to 0, the map and setgroups.
    compare(&with_user(&["unshare", "-r", "id"]));
    compare(&with_user(&[
        "unshare",
        "-r",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
        "/proc/self/setgroups",
    ]));
    // Unmapped (`unshare -U`): the overflow ids.
    compare(&with_user(&["unshare", "-U", "id"]));
}

#[test]
fn unshare_u_hostname() {
    let (_, s) = compare(&["unshare", "-u", "sh", "-c", "hostname x; hostname"]);
    assert_eq!(s.stdout, "x\n");
    // Outside, the name did not change; nsenter reaches the first namespace back.
    let s = sandboxed(&[
        "sh",
        "-c",
        "hostname; unshare -u sh -c 'hostname inner; nsenter -t 1 -u hostname; hostname'; hostname",
    ]);
    assert_eq!(s.shell_status(), 0, "{}", s.describe());
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", s.describe());
    assert_eq!(lines[0], lines[1], "{}", s.describe());
    assert_eq!(lines[2], "inner", "{}", s.describe());
    assert_eq!(lines[3], lines[0], "{}", s.describe());
    // Not for an ordinary user, as on Linux.
    compare(&with_user(&["unshare", "-u", "true"]));
    // But inside a user namespace of its own it is.
    compare(&with_user(&[
        "unshare",
        "-r",
        "-u",
        "sh",
        "-c",
        "hostname y; hostname",
    ]));
}

#[test]
fn unshare_rm_mounts_tmpfs() {
    // Rootless: a mount namespace of the user namespace's own takes a tmpfs; proc
    // (whose PID namespace it does not own) and the locked /proc are refused.
    compare(&with_user(&[
        "unshare",
        "-rm",
        "sh",
        "-c",
        "mount -t tmpfs none /mnt && touch /mnt/x && ls /mnt && umount /mnt; \
         mount -t proc proc /mnt 2>/dev/null; echo $?; umount /proc 2>/dev/null; echo $?",
    ]));
}

#[test]
fn proc_ns_links_and_lsns() {
    let s = sandboxed(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/uts; unshare -u readlink /proc/self/ns/uts; lsns -n -o TYPE -t uts | sort -u",
    ]);
    assert_eq!(s.shell_status(), 0, "{}", s.describe());
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", s.describe());
    // Linux's number for the first UTS namespace; a new one differs.
    assert_eq!(lines[0], "uts:[4026531838]", "{}", s.describe());
    assert!(
        lines[1].starts_with("uts:[") && lines[1] != lines[0],
        "{}",
        s.describe()
    );
    assert_eq!(lines[2], "uts", "{}", s.describe());
}

#[test]
fn network_namespaces_are_missing_as_in_a_kernel_without_them() {
    // CLONE_NEWNET is not in rvisor: EINVAL, as from a kernel built without it.
    let s = sandboxed(&["unshare", "-n", "true"]);
    assert_eq!(s.shell_status(), 1, "{}", s.describe());
    assert!(s.stderr.contains("Invalid argument"), "{}", s.describe());
}

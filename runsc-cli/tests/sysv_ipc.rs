//! System V IPC through util-linux (ipcmk, ipcs, ipcrm) in `rvisor do`, compared with
//! the same commands run natively, each in a fresh IPC namespace (`unshare -i`) so the
//! ids are the same on both sides. Keys made by ipcmk are random: they are masked.

mod common;

use common::*;

#[test]
fn ipcs_shows_shared_memory_as_natively() {
    if native(&["id", "-u"]).stdout.trim() != "0" {
        eprintln!("SKIP: unshare -i needs root");
        return;
    }
    let script = "ipcmk -M 5000 -p 0640; ipcmk -M 70000; ipcs -m; ipcs -m -i 1 | grep -v time=; \
                  ipcs -m -l; ipcs -m -u; ipcs -m -c; ipcrm -m 0; ipcs -m; ipcrm -m 0; echo $?";
    let (_, s) = compare(&[
        "unshare",
        "-i",
        "sh",
        "-c",
        &format!(
            "({script}) 2>&1 | sed -e 's/^0x[0-9a-f]\\{{8\\}}/KEY/' -e 's/cpid=[0-9]*/cpid=P/'"
        ),
    ]);
    assert!(s.stdout.contains("Shared memory id: 1"), "{}", s.describe());
    assert!(
        s.stdout.contains("segments allocated 2"),
        "{}",
        s.describe()
    );
}

#[test]
fn ipcs_shows_semaphores_as_natively() {
    if native(&["id", "-u"]).stdout.trim() != "0" {
        eprintln!("SKIP: unshare -i needs root");
        return;
    }
    let script = "ipcmk -S 3 -p 0640; ipcmk -S 1; ipcs -s; ipcs -s -i 0 | grep -v time; \
                  ipcs -s -l; ipcs -s -u; ipcs -s -c; ipcrm -s 0; ipcs -s; ipcrm -s 0; echo $?";
    let (_, s) = compare(&[
        "unshare",
        "-i",
        "sh",
        "-c",
        &format!("({script}) 2>&1 | sed -e 's/^0x[0-9a-f]\\{{8\\}}/KEY/'"),
    ]);
    assert!(s.stdout.contains("Semaphore id: 1"), "{}", s.describe());
    assert!(s.stdout.contains("used arrays = 2"), "{}", s.describe());
}

#[test]
fn ipcs_shows_message_queues_as_natively() {
    if native(&["id", "-u"]).stdout.trim() != "0" {
        eprintln!("SKIP: unshare -i needs root");
        return;
    }
    let script = "ipcmk -Q -p 0640; ipcmk -Q; ipcs -q; ipcs -q -i 0 | grep -v time; \
                  ipcs -q -l; ipcs -q -u; ipcs -q -c; ipcs -q -p; ipcrm -q 0; ipcs -q; ipcrm -q 0; echo $?";
    let (_, s) = compare(&[
        "unshare",
        "-i",
        "sh",
        "-c",
        &format!("({script}) 2>&1 | sed -e 's/^0x[0-9a-f]\\{{8\\}}/KEY/'"),
    ]);
    assert!(s.stdout.contains("Message queue id: 1"), "{}", s.describe());
    assert!(
        s.stdout.contains("allocated queues = 2"),
        "{}",
        s.describe()
    );
}

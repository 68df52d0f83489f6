//! The container's cgroup, as a read-only cgroup v2 directory (what docker mounts at
//! /sys/fs/cgroup), from the Sentry's own accounting. Only files whose values the
//! Sentry really has are there: no cpu.max or pids.max, since it enforces neither.
//! The tree itself is served by procfs's nodes (`procfs::cgroup_root`).

use crate::kernel::{acct, Kernel};

/// The files of the root (the only) cgroup.
pub const FILES: &[&str] = &[
    "cgroup.controllers",
    "cgroup.procs",
    "cgroup.threads",
    "cpu.stat",
    "memory.current",
    "memory.max",
    "pids.current",
];

/// The contents of `name`, read now.
pub fn generate(k: &Kernel, name: &str) -> Option<String> {
    let mf = crate::memfile::memfile();
    Some(match name {
        "cgroup.controllers" => "cpu memory pids\n".into(),
        "cgroup.procs" | "cgroup.threads" => {
            let t = k.table.lock();
            let mut ids: Vec<i32> = if name == "cgroup.procs" {
                t.procs
                    .iter()
                    .filter(|(_, p)| p.zombie.is_none())
                    .map(|(id, _)| *id)
                    .collect()
            } else {
                t.tasks.keys().copied().collect()
            };
            ids.sort_unstable();
            ids.iter().map(|i| format!("{i}\n")).collect()
        }
        "cpu.stat" => {
            let (user, sys) = cpu_ns(k);
            format!(
                "usage_usec {}\nuser_usec {}\nsystem_usec {}\n",
                (user + sys) / 1000,
                user / 1000,
                sys / 1000
            )
        }
        "memory.current" => format!("{}\n", mf.used_bytes()),
        "memory.max" => match mf.limit_bytes() {
            Some(l) => format!("{l}\n"),
            None => "max\n".into(),
        },
        "pids.current" => format!("{}\n", k.table.lock().tasks.len()),
        _ => return None,
    })
}

/// CPU time (user, system; ns) of everything that ever ran in the sandbox: each process
/// and what it has reaped (a process not yet reaped still counts as itself).
fn cpu_ns(k: &Kernel) -> (u64, u64) {
    let tgs: Vec<_> = k
        .table
        .lock()
        .procs
        .values()
        .map(|p| p.tg.clone())
        .collect();
    let (mut user, mut sys) = (0, 0);
    for tg in tgs {
        let u = acct::group_usage(k, &tg);
        let c = *tg.children.lock();
        user += u.utime + c.utime;
        sys += u.stime + c.stime;
    }
    (user, sys)
}

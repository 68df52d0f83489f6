//! The host process tree under a pid, its memory, and killing it.

use std::collections::HashMap;
use std::fs;

use serde::Serialize;

use crate::parse;

/// Which per-process memory figure to add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MemMetric {
    /// `VmRSS` of /proc/PID/status: shared pages count once per process mapping them.
    Rss,
    /// `Pss` of /proc/PID/smaps_rollup: shared pages divided among their sharers.
    Pss,
}

/// One process of a sampled tree.
#[derive(Debug, Clone, Serialize)]
pub struct ProcMem {
    pub pid: u32,
    /// `Name:` of /proc/PID/status.
    pub name: String,
    /// The first words of its command line.
    pub cmd: String,
    pub kb: u64,
    /// Whether it is part of the figure (the `do` command itself is not).
    pub counted: bool,
}

/// `root` and all its descendants (thread-group leaders), root first.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(ppid) = parse::stat_ppid(&stat) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied().filter(|p| *p != root));
        }
        i += 1;
    }
    out
}

/// Memory of every process in the tree under `root` (processes that vanish while
/// being read are left out); `root` itself is marked counted only if `count_root`.
pub fn tree_memory(root: u32, metric: MemMetric, count_root: bool) -> Vec<ProcMem> {
    tree(root)
        .into_iter()
        .filter_map(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let name = parse::status_name(&status).unwrap_or_default();
            let kb = match metric {
                MemMetric::Rss => parse::kb_field(&status, "VmRSS").unwrap_or(0),
                MemMetric::Pss => {
                    let r = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok();
                    r.and_then(|r| parse::kb_field(&r, "Pss")).unwrap_or(0)
                }
            };
            let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| parse::cmdline_head(&c, 3))
                .unwrap_or_default();
            let counted = count_root || pid != root;
            Some(ProcMem {
                pid,
                name,
                cmd,
                kb,
                counted,
            })
        })
        .collect()
}

/// SIGKILL to `root` and every descendant (collected first, so reparenting on the
/// way does not hide any).
pub fn kill_tree(root: u32) {
    for pid in tree(root).into_iter().rev() {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: kill(2) takes plain integers; the pids are processes this tool
        // started (the tree of its own child, which is not yet reaped).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

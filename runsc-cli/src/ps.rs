//! `rvisor ps`: the container's processes, as the Sentry knows them.
//!
//! `--format json` prints host pids, which is what docker top wants (it filters the
//! host's `ps -ef` by them): with ptrace each process's address space lives in a stub
//! process of the sandbox, named after the process, whose CPU time is the process's. A
//! platform without such processes (kvm) has only the container's own pid to give.

use crate::container::{Container, Global};
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// One process of the container.
#[derive(Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    /// The host process holding its address space, if any.
    pub host_pid: Option<i32>,
    pub cpu_ns: u64,
    pub cmd: String,
}

/// Parse the Sentry's `procs ...` reply.
pub fn parse(reply: &str) -> Result<Vec<Proc>> {
    let Some(rest) = reply.trim().strip_prefix("procs") else {
        bail!("unexpected reply to ps: {}", reply.trim());
    };
    rest.split_whitespace()
        .map(|e| {
            let f: Vec<&str> = e.split(':').collect();
            if f.len() != 6 {
                bail!("malformed ps entry {e:?}");
            }
            let cmd = unhex(f[5]).with_context(|| format!("ps entry {e:?}"))?;
            let cmd: Vec<u8> = cmd
                .iter()
                .map(|b| if *b == 0 { b' ' } else { *b })
                .collect();
            let host: i32 = f[3].parse()?;
            Ok(Proc {
                pid: f[0].parse()?,
                ppid: f[1].parse()?,
                uid: f[2].parse()?,
                host_pid: (host > 0).then_some(host),
                cpu_ns: f[4].parse()?,
                cmd: String::from_utf8_lossy(&cmd).into_owned(),
            })
        })
        .collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd hex length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("bad hex"))
        .collect()
}

/// `ps [--format table|json] ID`.
pub fn ps(g: &Global, id: &str, json_out: bool) -> Result<()> {
    let c = Container::load(g, id)?;
    if !c.alive() {
        bail!("container {id} is not running");
    }
    let procs = parse(&c.request("ps", Some(Duration::from_secs(5)))?)?;
    if json_out {
        let want: Vec<i32> = procs.iter().filter_map(|p| p.host_pid).collect();
        let mut pids = host_pids(c.pid, &want);
        if pids.is_empty() {
            pids.push(c.pid);
        }
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    println!("{:<8} {:>6} {:>6} {:>9} CMD", "UID", "PID", "PPID", "TIME");
    for p in procs {
        let s = p.cpu_ns / 1_000_000_000;
        let time = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
        println!(
            "{:<8} {:>6} {:>6} {:>9} {}",
            p.uid, p.pid, p.ppid, time, p.cmd
        );
    }
    Ok(())
}

/// The host pids of the processes under `top` (the container's pid) that the Sentry
/// knows as `ns_pids`: the Sentry runs in a pid namespace of its own, so its stubs are
/// found among `top`'s descendants at the deepest namespace level, by the last entry of
/// their NSpid (their pid as the Sentry sees it).
fn host_pids(top: i32, ns_pids: &[i32]) -> Vec<i32> {
    let mut parent = std::collections::HashMap::new();
    let mut nspid = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).map(str::to_owned);
        if let Some(pp) = field("PPid:").and_then(|v| v.trim().parse::<i32>().ok()) {
            parent.insert(pid, pp);
        }
        if let Some(v) = field("NSpid:") {
            let v: Vec<i32> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            nspid.insert(pid, v);
        }
    }
    let under_top = |mut p: i32| {
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&pp) if pp == top => return true,
                Some(&pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    };
    let desc: Vec<i32> = parent.keys().copied().filter(|p| under_top(*p)).collect();
    let depth = desc.iter().filter_map(|p| nspid.get(p).map(Vec::len)).max();
    let mut out: Vec<i32> = ns_pids
        .iter()
        .filter_map(|want| {
            desc.iter().copied().find(|p| {
                nspid
                    .get(p)
                    .is_some_and(|v| Some(v.len()) == depth && v.last() == Some(want))
            })
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sentry_reply() {
        // "sh\0-c\0sleep 9" and "[sleep]"
        let r =
            "procs 1:0:0:4242:1500000000:7368002d6300736c6565702039 2:1:1000:-1:0:5b736c6565705d\n";
        let v = parse(r).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            Proc {
                pid: 1,
                ppid: 0,
                uid: 0,
                host_pid: Some(4242),
                cpu_ns: 1_500_000_000,
                cmd: "sh -c sleep 9".into()
            }
        );
        assert_eq!(v[1].host_pid, None);
        assert_eq!(v[1].cmd, "[sleep]");
        assert!(parse("pids 1 2").is_err());
        assert!(parse("procs 1:0:0").is_err());
        assert_eq!(parse("procs").unwrap(), vec![]);
    }
}

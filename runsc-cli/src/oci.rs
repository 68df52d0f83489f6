//! OCI bundles: `rvisor spec`, reading a bundle's config.json, and turning it into a
//! sandbox launch.

use crate::launch::{DoOpts, MountKind, MountReq};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// The OCI runtime spec version rvisor implements.
pub const OCI_VERSION: &str = "1.0.2";

/// Write the default config.json (runc's default, with `sh` as the process).
pub fn write_spec(bundle: &str) -> Result<()> {
    let path = Path::new(bundle).join("config.json");
    if path.exists() {
        bail!("{}: file exists; remove it first", path.display());
    }
    let spec = Spec::default();
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Read and check a bundle's config.json, with the error a person needs.
pub fn load(bundle: &str) -> Result<(Spec, PathBuf)> {
    let dir = Path::new(bundle);
    if !dir.is_dir() {
        bail!("bundle {bundle}: not a directory");
    }
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .map_err(|e| anyhow::anyhow!("bundle {bundle}: config.json: {e}"))?;
    let spec: Spec = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("bundle {bundle}: config.json: invalid JSON: {e}"))?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    let root = if root.is_absolute() {
        root
    } else {
        dir.join(root)
    };
    if !root.is_dir() {
        bail!(
            "bundle {bundle}: root {}: no such directory",
            root.display()
        );
    }
    let root = root.canonicalize()?;
    Ok((spec, root))
}

/// A container id as runc accepts them.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 1024
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
        || id.starts_with('.')
    {
        bail!("invalid container id {id:?}");
    }
    Ok(())
}

/// Translate the spec's mounts. The Sentry provides /proc, /sys, /dev and /dev/pts
/// itself; the rest become tmpfs (Sentry memory) or bind mounts (a gofer each).
fn mounts(spec: &Spec, bundle: &Path) -> Result<Vec<MountReq>> {
    let mut out = vec![];
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let target = m.destination().to_string_lossy().into_owned();
        let target = if target.starts_with('/') {
            target
        } else {
            format!("/{target}")
        };
        let t = target.trim_end_matches('/');
        let opts = m.options().clone().unwrap_or_default();
        let readonly = opts.iter().any(|o| o == "ro");
        let flags = opts
            .iter()
            .filter(|o| matches!(o.as_str(), "nosuid" | "nodev" | "noexec"))
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        let typ = m.typ().clone().unwrap_or_default();
        let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
        let kind = if is_bind {
            let Some(src) = m.source() else {
                bail!("mount {target}: a bind mount needs a source");
            };
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            MountKind::Bind { source: src }
        } else {
            match (typ.as_str(), t) {
                ("proc", "/proc") | ("sysfs", "/sys") | ("devpts", "/dev/pts") => continue,
                ("tmpfs", "/dev") => continue,
                ("proc", _) => MountKind::Proc,
                ("sysfs", _) => MountKind::Sysfs,
                ("devpts", _) => MountKind::Devpts,
                ("cgroup" | "cgroup2", _) => MountKind::Cgroup,
                ("tmpfs" | "mqueue", _) => {
                    let (mode, size, nr_inodes) = if typ == "tmpfs" {
                        tmpfs_opts(&opts).map_err(|e| anyhow::anyhow!("mount {target}: {e}"))?
                    } else {
                        (0o1777, 0, 0)
                    };
                    MountKind::Tmpfs {
                        mode,
                        fstype: typ.clone(),
                        size,
                        nr_inodes,
                    }
                }
                (other, _) => bail!(
                    "mount {target}: file system type {other:?} is not supported (supported: bind, tmpfs, proc, sysfs, devpts, mqueue, cgroup)"
                ),
            }
        };
        out.push(MountReq {
            target,
            kind,
            readonly,
            flags,
        });
    }
    if let Some(l) = spec.linux() {
        for (paths, kind) in [(l.readonly_paths(), 0), (l.masked_paths(), 1)] {
            for p in paths.as_deref().unwrap_or_default() {
                out.push(MountReq {
                    target: p.clone(),
                    kind: if kind == 0 {
                        MountKind::ReadonlyAgain
                    } else {
                        MountKind::Mask
                    },
                    readonly: true,
                    flags: String::new(),
                });
            }
        }
    }
    Ok(out)
}

/// tmpfs's `mode=` (octal), `size=` and `nr_inodes=` (with k, m, g suffixes) options;
/// other options are flags handled elsewhere (ro, nosuid, ...).
pub fn tmpfs_opts(opts: &[String]) -> std::result::Result<(u32, u64, u64), String> {
    let num = |k: &str, v: &str| -> std::result::Result<u64, String> {
        let (digits, mult) = match v.char_indices().last() {
            Some((i, 'k' | 'K')) => (&v[..i], 1 << 10),
            Some((i, 'm' | 'M')) => (&v[..i], 1 << 20),
            Some((i, 'g' | 'G')) => (&v[..i], 1 << 30),
            Some((_, '%')) => {
                return Err(format!(
                    "tmpfs option {k}={v}: percentages are not supported"
                ))
            }
            _ => (v, 1),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .ok_or_else(|| format!("tmpfs option {k}={v}: not a size"))
    };
    let (mut mode, mut size, mut inodes) = (0o1777, 0, 0);
    for o in opts {
        match o.split_once('=') {
            Some(("mode", v)) => {
                mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| format!("tmpfs option mode={v}: not an octal mode"))?
            }
            Some(("size", v)) => size = num("size", v)?,
            Some(("nr_inodes", v)) => inodes = num("nr_inodes", v)?,
            _ => {}
        }
    }
    Ok((mode, size, inodes))
}

/// The launch a bundle describes: options, the executable and its argv.
pub fn opts_from_spec(
    spec: &Spec,
    root: &Path,
    bundle: &Path,
    debug: bool,
    strace: bool,
    host_network: bool,
) -> Result<(DoOpts, String, Vec<String>)> {
    let Some(process) = spec.process().as_ref() else {
        bail!("config.json has no process")
    };
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        bail!("config.json: process.args is empty");
    }
    if let Some(linux) = spec.linux() {
        let nss = linux.namespaces().as_deref().unwrap_or_default();
        if !host_network && !nss.iter().any(|ns| ns.typ() == LinuxNamespaceType::Network) {
            bail!("the container would share the host's network (no network namespace in linux.namespaces): that needs --network host");
        }
    }
    let user = process.user();
    let netns_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|v| v.iter().find(|n| n.typ() == LinuxNamespaceType::Network))
        .and_then(|n| n.path().clone());
    let opts = DoOpts {
        netns_path,
        debug,
        cwd: process.cwd().to_string_lossy().into_owned(),
        env: process.env().clone().unwrap_or_default(),
        clear_env: true,
        strace,
        hostname: spec.hostname().clone(),
        sysctls: spec
            .linux()
            .as_ref()
            .and_then(|l| l.sysctl().clone())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        memory_limit: spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
            .map(|l| l as u64),
        root: root.to_string_lossy().into_owned(),
        root_readonly: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        user: Some((user.uid(), user.gid())),
        groups: user.additional_gids().clone().unwrap_or_default(),
        caps: process.capabilities().as_ref().map(cap_sets),
        rlimits: process
            .rlimits()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                let name = serde_json::to_value(r.typ()).ok()?;
                let n = rlimit_number(name.as_str()?)?;
                Some((n, r.soft(), r.hard()))
            })
            .collect(),
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        mounts: mounts(spec, bundle)?,
        ..Default::default()
    };
    Ok((opts, args[0].clone(), args))
}

/// CAP_* names in number order (Linux 6.8).
const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A process's capability sets as masks: (effective, permitted, inheritable, bounding),
/// each within the bounding set (all capabilities when there is none).
pub fn cap_sets(c: &oci_spec::runtime::LinuxCapabilities) -> (u64, u64, u64, u64) {
    let set = |s: &Option<oci_spec::runtime::Capabilities>| -> u64 {
        s.as_ref()
            .map(|v| {
                v.iter()
                    .filter_map(|c| cap_number(&c.to_string()))
                    .fold(0, |a, n| a | (1 << n))
            })
            .unwrap_or(0)
    };
    let bounding = c
        .bounding()
        .as_ref()
        .map(|_| set(c.bounding()))
        .unwrap_or(u64::MAX);
    (
        set(c.effective()) & bounding,
        set(c.permitted()) & bounding,
        set(c.inheritable()) & bounding,
        bounding,
    )
}

/// The capability number of a name (`CAP_CHOWN`, `chown`, ...).
pub fn cap_by_name(name: &str) -> Option<u32> {
    cap_number(&name.to_ascii_uppercase())
}

fn cap_number(name: &str) -> Option<u32> {
    let n = name.trim_start_matches("CAP_");
    CAPS.iter().position(|c| *c == n).map(|i| i as u32)
}

/// RLIMIT_* names in number order.
const RLIMITS: [&str; 16] = [
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
];

fn rlimit_number(name: &str) -> Option<u32> {
    let n = name.trim_start_matches("RLIMIT_");
    RLIMITS.iter().position(|c| *c == n).map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::tmpfs_opts;

    #[test]
    fn tmpfs_options() {
        let o = |v: &[&str]| tmpfs_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(o(&[]), Ok((0o1777, 0, 0)));
        assert_eq!(
            o(&["rw", "size=1m", "mode=755", "nr_inodes=2k"]),
            Ok((0o755, 1 << 20, 2048))
        );
        assert_eq!(o(&["size=65536"]), Ok((0o1777, 65536, 0)));
        assert_eq!(o(&["size=2G"]), Ok((0o1777, 2 << 30, 0)));
        assert!(o(&["size=x"]).unwrap_err().contains("size=x: not a size"));
        assert!(o(&["size=50%"]).unwrap_err().contains("percentages"));
        assert!(o(&["mode=99"]).unwrap_err().contains("not an octal mode"));
        assert!(o(&["mode=17777"]).is_err());
    }
}

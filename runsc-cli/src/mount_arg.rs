//! `rvisor boot --mounts JSON`: the extra mounts the launcher asks the Sentry for (see
//! `launch::launch`, which writes them).

use anyhow::{anyhow, bail, Result};
use sentry::mounts::{Kind, Spec};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

pub struct Parsed {
    target: String,
    readonly: bool,
    flags: String,
    kind: String,
    mode: u32,
    fstype: String,
    size: u64,
    nr_inodes: u64,
    fd: i32,
    file: Option<String>,
    source: String,
}

pub fn parse(text: &str) -> Result<Vec<Parsed>> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| anyhow!("--mounts: {e}"))?;
    let Some(list) = v.as_array() else {
        bail!("--mounts: expected a list");
    };
    let mut out = vec![];
    for m in list {
        let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
        let p = Parsed {
            target: s("target"),
            readonly: m["readonly"].as_bool().unwrap_or(false),
            flags: s("flags"),
            kind: s("kind"),
            mode: m["mode"].as_u64().unwrap_or(0o1777) as u32,
            fstype: s("fstype"),
            size: m["size"].as_u64().unwrap_or(0),
            nr_inodes: m["nr_inodes"].as_u64().unwrap_or(0),
            fd: m["fd"].as_i64().unwrap_or(-1) as i32,
            file: m["file"].as_str().map(String::from),
            source: s("source"),
        };
        if !p.target.starts_with('/') {
            bail!("--mounts: target {:?} is not absolute", p.target);
        }
        if p.kind == "bind" && p.fd < 3 {
            bail!("--mounts: bind mount {} has no gofer descriptor", p.target);
        }
        out.push(p);
    }
    Ok(out)
}

impl Parsed {
    /// `clients`: the gofer connections made so far, by descriptor (mounts served by
    /// the same gofer share one).
    pub fn into_spec(
        self,
        take: &dyn Fn(i32) -> OwnedFd,
        clients: &mut HashMap<i32, Arc<gofer::Client>>,
    ) -> Spec {
        let kind = match self.kind.as_str() {
            "bind" => Kind::Gofer {
                client: clients
                    .entry(self.fd)
                    .or_insert_with(|| Arc::new(gofer::Client::new(take(self.fd))))
                    .clone(),
                file: self.file.map(|f| f.into_bytes()),
            },
            "proc" => Kind::Proc,
            "sysfs" => Kind::Sysfs,
            "devpts" => Kind::Devpts,
            "cgroup" => Kind::Cgroup,
            "readonly" => Kind::ReadonlyAgain,
            "mask" => Kind::Mask,
            _ => Kind::Tmpfs {
                mode: self.mode,
                fstype: if self.fstype.is_empty() {
                    "tmpfs".into()
                } else {
                    self.fstype
                },
                size: self.size,
                nr_inodes: self.nr_inodes,
            },
        };
        let source = match &kind {
            Kind::Gofer { .. } => self.source,
            Kind::Tmpfs { fstype, .. } => fstype.clone(),
            Kind::Proc => "proc".into(),
            Kind::Sysfs => "sysfs".into(),
            Kind::Devpts => "devpts".into(),
            Kind::Cgroup => "cgroup".into(),
            Kind::ReadonlyAgain | Kind::Mask => self.target.clone(),
        };
        Spec {
            target: self.target.into_bytes(),
            kind,
            readonly: self.readonly,
            flags: self.flags,
            source,
        }
    }
}

//! OCI bundles: `rvisor spec` and `rvisor run` (foreground). The full lifecycle
//! (create/start/state/kill/delete/exec) and docker come next, on top of this.

use crate::DoOpts;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

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

pub fn run(debug: bool, strace: bool, bundle: &str, id: &str) -> Result<i32> {
    if id.is_empty() || id.contains('/') {
        bail!("invalid container id {id:?}");
    }
    let (spec, root) = load(bundle)?;
    let Some(process) = spec.process().as_ref() else {
        bail!("bundle {bundle}: config.json has no process")
    };
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        bail!("bundle {bundle}: process.args is empty");
    }
    if process.terminal().unwrap_or(false) && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("process.terminal is true but the standard input is not a terminal (use --console-socket with create, or set terminal to false)");
    }
    let user = process.user();
    let opts = DoOpts {
        debug,
        cwd: process.cwd().to_string_lossy().into_owned(),
        env: process.env().clone().unwrap_or_default(),
        clear_env: true,
        strace,
        hostname: spec.hostname().clone(),
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
        platform: "ptrace".into(),
    };
    crate::run_do(&opts, args[0].clone(), &args)
}

//! Building the `rvbench` C program into the cache directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workloads::{Files, HELLO_C};

pub const RVBENCH_C: &str = include_str!("../c/rvbench.c");
const CFLAGS: &[&str] = &["-O2", "-Wall", "-pthread"];

/// FNV-1a, stable across builds (the cache key of the compiled helper).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Compiles rvbench (static when the C library allows it) unless the cache already
/// holds this version, and writes the compile workload's source. Returns the paths
/// and a note when the helper had to be linked dynamically.
pub fn prepare(cache: &Path, gcc: &str) -> Result<(Files, Option<String>)> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let hello_c = cache.join("hello.c");
    if fs::read_to_string(&hello_c).ok().as_deref() != Some(HELLO_C) {
        fs::write(&hello_c, HELLO_C).with_context(|| format!("writing {}", hello_c.display()))?;
    }
    let key = fnv1a(&[RVBENCH_C.as_bytes(), CFLAGS.join(" ").as_bytes()]);
    let src = cache.join(format!("rvbench-{key:016x}.c"));
    let bin = cache.join(format!("rvbench-{key:016x}"));
    let dyn_marker = cache.join(format!("rvbench-{key:016x}.dynamic"));
    let mut note = None;
    if !bin.exists() {
        fs::write(&src, RVBENCH_C).with_context(|| format!("writing {}", src.display()))?;
        let tmp = cache.join(format!("rvbench-{key:016x}.tmp{}", std::process::id()));
        let compile = |static_: bool| -> Result<std::process::Output> {
            let mut c = Command::new(gcc);
            c.args(CFLAGS);
            if static_ {
                c.arg("-static");
            }
            c.arg("-o").arg(&tmp).arg(&src);
            c.output()
                .with_context(|| format!("running {gcc} (the benchmark needs gcc)"))
        };
        let out = compile(true)?;
        if !out.status.success() {
            let out2 = compile(false)?;
            if !out2.status.success() {
                bail!(
                    "compiling {} failed:\n{}",
                    src.display(),
                    String::from_utf8_lossy(&out2.stderr)
                );
            }
            fs::write(&dyn_marker, String::from_utf8_lossy(&out.stderr).as_bytes())?;
        }
        fs::rename(&tmp, &bin).with_context(|| format!("installing {}", bin.display()))?;
    }
    if dyn_marker.exists() {
        note = Some(format!(
            "{} is linked dynamically (static linking failed; see {})",
            bin.display(),
            dyn_marker.display()
        ));
    }
    Ok((
        Files {
            rvbench: PathBuf::from(&bin),
            hello_c,
        },
        note,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_eq!(fnv1a(&[b"x"]), fnv1a(&[b"x"]));
    }
}

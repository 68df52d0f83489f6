//! Finding the case sources and compiling them (cached by modification time).

use crate::report::family_of;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The flags every case program is built with.
pub const CFLAGS: &[&str] = &["-O1", "-g", "-static", "-pthread"];

#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub source: PathBuf,
    pub binary: PathBuf,
}

/// Every `<cases_dir>/<family>.c`, sorted by family name.
pub fn discover(cases_dir: &Path, bin_dir: &Path) -> io::Result<Vec<Family>> {
    let mut families = Vec::new();
    for entry in fs::read_dir(cases_dir)? {
        let path = entry?.path();
        if let Some(name) = family_of(&path) {
            families.push(Family {
                binary: bin_dir.join(&name),
                name,
                source: path,
            });
        }
    }
    families.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(families)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Whether `output` is missing or older than any of `inputs`.
pub fn needs_build(output: &Path, inputs: &[&Path]) -> bool {
    let Some(out) = mtime(output) else {
        return true;
    };
    inputs.iter().any(|i| mtime(i).is_none_or(|t| t > out))
}

/// Compiles `fam` if its source or `header` is newer than its binary. Returns whether
/// it compiled, or gcc's error output.
pub fn build(cc: &str, fam: &Family, header: &Path) -> Result<bool, String> {
    if !needs_build(&fam.binary, &[&fam.source, header]) {
        return Ok(false);
    }
    let dir = fam
        .binary
        .parent()
        .ok_or_else(|| "binary has no directory".to_string())?;
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    // Build next to the final name and rename, so an interrupted build never leaves a
    // truncated binary that looks up to date.
    let tmp = dir.join(format!(".{}.tmp-{}", fam.name, std::process::id()));
    let out = Command::new(cc)
        .args(CFLAGS)
        .arg("-o")
        .arg(&tmp)
        .arg(&fam.source)
        .output()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        let mut msg = String::from_utf8_lossy(&out.stderr).into_owned();
        if msg.trim().is_empty() {
            msg = format!("{cc} failed with {}", out.status);
        }
        return Err(msg);
    }
    fs::rename(&tmp, &fam.binary).map_err(|e| format!("rename: {e}"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_only_c_files_sorted() {
        let d = std::env::temp_dir().join(format!("st-discover-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        for f in ["zeta.c", "alpha.c", "harness.h", "README"] {
            fs::write(d.join(f), "").unwrap();
        }
        let fams = discover(&d, Path::new("/bin-dir")).unwrap();
        let names: Vec<&str> = fams.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["alpha", "zeta"]);
        assert_eq!(fams[0].binary, Path::new("/bin-dir/alpha"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn staleness() {
        let d = std::env::temp_dir().join(format!("st-stale-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let src = d.join("a.c");
        let out = d.join("a");
        fs::write(&src, "").unwrap();
        assert!(needs_build(&out, &[&src]));
        fs::write(&out, "").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(100);
        fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(!needs_build(&out, &[&src]));
        assert!(needs_build(&out, &[&src, &d.join("missing.h")]));
        fs::remove_dir_all(&d).unwrap();
    }
}

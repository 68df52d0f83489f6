//! Records the build date for uname(2) and /proc/version (SOURCE_DATE_EPOCH wins, for
//! reproducible builds), and builds the vDSO image (vdso/) with the system C compiler.

fn main() {
    build_vdso();
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    // A civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = secs.div_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    println!("cargo:rustc-env=RVISOR_BUILD_DATE={y:04}-{m:02}-{d:02}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Compile vdso/vdso.c into OUT_DIR/vdso.so, a shared object shaped like Linux's
/// x86-64 vDSO (see vdso/vdso.lds and vdso/vdso.map); loader.rs embeds it.
fn build_vdso() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let so = out.join("vdso.so");
    let status = std::process::Command::new(&cc)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-nostdlib",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-Wall",
            "-Werror",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,--hash-style=both",
            "-Wl,-Bsymbolic",
            "-Wl,--build-id=none",
            "-Wl,-T,vdso/vdso.lds",
            "-Wl,--version-script=vdso/vdso.map",
            "-o",
        ])
        .arg(&so)
        .arg("vdso/vdso.c")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} for the vDSO: {e}"));
    assert!(status.success(), "{cc} failed to build the vDSO");
    for f in ["vdso/vdso.c", "vdso/vdso.lds", "vdso/vdso.map"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=CC");
}

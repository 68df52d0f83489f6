//! CPython's own regression tests as a Linux ABI check: a set of `test` modules that
//! exercise files, directories, descriptors, processes, signals and EINTR, ttys,
//! mmap, rlimits, select/poll/epoll and sockets runs natively, then under `rvisor do`.
//! Every test case that passes natively must pass in the sandbox too: one that fails,
//! errors, is skipped or does not run there fails this test.
//!
//! Debian package: libpython3.X-testsuite for /usr/bin/python3's version (installed
//! here when missing and we are root; the test is skipped, saying why, only when it
//! cannot be).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const PYTHON3: &str = "/usr/bin/python3";

/// About 30 s under ptrace and as long natively on a loaded 2-CPU machine. Left out:
/// test_time (natively, as root, it sets the host's clock back an hour and forward
/// again); the long ones (test_signal, test_subprocess, test_socket: a minute or more
/// each; test_pathlib: 9 s natively as root); test_ioctl and test_socketserver, which
/// run nothing without a terminal or regrtest's `-u network`.
const MODULES: &[&str] = &[
    "test_os",
    "test_posix",
    "test_fcntl",
    "test_select",
    "test_epoll",
    "test_mmap",
    "test_pty",
    "test_openpty",
    "test_resource",
    "test_tempfile",
    "test_shutil",
    "test_fileio",
    "test_file",
    "test_stat",
    "test_asyncio.test_unix_events",
    "test_asyncio.test_sock_lowlevel",
    "test_popen",
    "test_thread",
    "test_pwd",
    "test_eintr",
];

const TIMEOUT_SUITE: Duration = Duration::from_secs(600);

/// The installed testsuite's package name when it is missing (None: present).
fn missing_package() -> Option<String> {
    let mut c = Command::new(PYTHON3);
    c.args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]);
    let r = run_cmd(c, TIMEOUT);
    assert!(r.status.success(), "{}", r.describe());
    let ver = r.stdout.trim();
    let present = Path::new(&format!("/usr/lib/python{ver}/test/test_os.py")).exists();
    (!present).then(|| format!("libpython{ver}-testsuite"))
}

/// Install `pkg` with apt-get (as root only); Err says why it could not be.
fn install(pkg: &str) -> Result<(), String> {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!("{pkg} is not installed and we are not root"));
    }
    for args in [
        &["install", "-y", "-qq", pkg][..],
        &["update", "-qq"][..],
        &["install", "-y", "-qq", pkg][..],
    ] {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let r = run_cmd(c, Duration::from_secs(300));
        if r.status.success() && args[0] == "install" {
            return Ok(());
        }
    }
    Err(format!("apt-get install {pkg} failed"))
}

/// How unittest's verbose output ends a case (the first word).
const OUTCOMES: &[&str] = &["ok", "FAIL", "ERROR", "skipped", "expected", "unexpected"];

/// `python3 -m test -v MODULES...`: each test case's outcome (the first word of "ok",
/// "FAIL", "ERROR", "skipped ...", ...) by id (`test.test_os.FileTests.test_access`).
/// The outcome follows " ... " on the case's line (or its docstring's), or starts a
/// later line when the case printed something first (asyncio's slow-callback warnings).
fn outcomes(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in out.lines() {
        let mut rest = line;
        if let Some(id) = case_id(line) {
            cur = Some(id);
            rest = "";
        }
        if let Some(i) = line.find(" ... ") {
            rest = &line[i + 5..];
        }
        let word = rest.split_whitespace().next().unwrap_or("");
        if let (Some(id), true) = (&cur, OUTCOMES.contains(&word)) {
            m.entry(id.clone()).or_insert_with(|| word.to_string());
            cur = None;
        }
    }
    m
}

/// The id in a line that starts a case in unittest's verbose output:
/// `test_access (test.test_os.FileTests.test_access)` (test_eintr's cases, run as a
/// script, are `__main__.SignalEINTRTest.test_sleep`).
fn case_id(line: &str) -> Option<String> {
    line.match_indices(" (").find_map(|(open, _)| {
        let name = line[..open].rsplit(' ').next()?;
        let rest = &line[open + 2..];
        let id = &rest[..rest.find(')')?];
        let plain = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        (plain && !name.is_empty() && id.ends_with(&format!(".{name}"))).then(|| id.to_string())
    })
}

fn with_suite(mut c: Command) -> Command {
    c.args(["-m", "test", "-v"]).args(MODULES);
    c
}

/// The last `n` bytes of `s` or a few more (from a character's start).
fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[i..]
}

#[test]
fn python_regression_modules_pass_as_natively() {
    if let Some(pkg) = missing_package() {
        if let Err(why) = install(&pkg) {
            skip(&format!("CPython's regression tests: {why}"));
            return;
        }
        assert!(missing_package().is_none(), "{pkg} installed but not found");
    }
    let native = run_cmd(with_suite(Command::new(PYTHON3)), TIMEOUT_SUITE);
    let want = outcomes(&native.stdout);
    let ok: Vec<&String> = want
        .iter()
        .filter(|(_, r)| r.as_str() == "ok")
        .map(|(id, _)| id)
        .collect();
    // The native run is the oracle: it must have run the modules at all.
    assert!(
        ok.len() > 500 && native.stdout.contains("Tests result:"),
        "natively, only {} cases passed: {}",
        ok.len(),
        native.describe()
    );
    let mut s = rvisor();
    s.args(["do", "--", PYTHON3]);
    let sandboxed = run_cmd(with_suite(s), TIMEOUT_SUITE);
    let got = outcomes(&sandboxed.stdout);
    let lost: Vec<String> = ok
        .iter()
        .filter(|id| got.get(**id).map(String::as_str) != Some("ok"))
        .map(|id| format!("{id}: {}", got.get(*id).map_or("did not run", |r| r)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} cases that pass natively do not under rvisor:\n  {}\n{}\n  stdout's end:\n{}",
        lost.len(),
        ok.len(),
        lost.join("\n  "),
        sandboxed.describe(),
        tail(&sandboxed.stdout, 6000)
    );
    eprintln!(
        "python suite: {} cases pass natively and under rvisor (native {:?}, rvisor {:?})",
        ok.len(),
        native.elapsed,
        sandboxed.elapsed
    );
}

#[test]
fn outcomes_reads_unittest_verbose_output() {
    let out = "test_a (test.test_x.T.test_a) ... ok\n\
               test_b (test.test_x.T.test_b)\nA docstring. ... FAIL\n\
               test_c (test.test_x.T.test_c) ... skipped 'why'\n\
               test_d (__main__.E.test_d) ... ok\n\
               test_e (test.test_x.T.test_e) ... Executing <Task> took 0.1 seconds\n\
               ok\n\
               test_f (test.test_x.T.test_f) ... \n\
               ERROR: test_b (test.test_x.T.test_b)\n";
    let m = outcomes(out);
    let want = [
        ("__main__.E.test_d", "ok"),
        ("test.test_x.T.test_a", "ok"),
        ("test.test_x.T.test_b", "FAIL"),
        ("test.test_x.T.test_c", "skipped"),
        ("test.test_x.T.test_e", "ok"),
    ];
    assert_eq!(
        m.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        want.to_vec()
    );
}

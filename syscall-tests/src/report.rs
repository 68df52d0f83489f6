//! Naming of cases, classification of results and the text of the report.

use crate::runner::{Exit, RunOutput};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// One case: `family/name`, run as `<binary> <name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Case {
    pub family: String,
    pub name: String,
}

impl Case {
    pub fn new(family: &str, name: &str) -> Case {
        Case {
            family: family.to_string(),
            name: name.to_string(),
        }
    }

    /// `family/name`, the form used by `--filter` and expected-failures.txt.
    pub fn id(&self) -> String {
        format!("{}/{}", self.family, self.name)
    }
}

/// The family of a case source file: `cases/file_io.c` -> `file_io`. Only `.c` files
/// whose stem is an identifier are case files (`harness.h` and others are not).
pub fn family_of(path: &Path) -> Option<String> {
    if path.extension()? != "c" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let ok = !stem.is_empty()
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then(|| stem.to_string())
}

/// Parses the output of `prog --list`: one case name per line.
pub fn parse_list(output: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("bad case name {line:?}"));
        }
        if names.iter().any(|n| n == line) {
            return Err(format!("duplicate case name {line:?}"));
        }
        names.push(line.to_string());
    }
    Ok(names)
}

/// The verdict on one (case, platform) run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Failed and not listed in expected-failures.txt (or a native failure).
    Fail,
    /// Failed, listed with this reason.
    ExpectedFail(String),
    /// Passed although listed with this reason.
    UnexpectedPass(String),
}

impl Verdict {
    pub fn classify(passed: bool, expected: Option<&str>) -> Verdict {
        match (passed, expected) {
            (true, None) => Verdict::Pass,
            (true, Some(r)) => Verdict::UnexpectedPass(r.to_string()),
            (false, None) => Verdict::Fail,
            (false, Some(r)) => Verdict::ExpectedFail(r.to_string()),
        }
    }

    /// Whether the case passed (unexpected passes did).
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass | Verdict::UnexpectedPass(_))
    }

    /// Whether this verdict makes the exit status nonzero.
    pub fn is_error(&self) -> bool {
        matches!(self, Verdict::Fail | Verdict::UnexpectedPass(_))
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

/// A one-line reason for a failed run: the program's `FAIL ...` line if it printed
/// one, else how it ended plus its first line of output.
pub fn failure_reason(run: &RunOutput, timeout: Duration) -> String {
    let fail_line = run
        .output
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("FAIL "));
    let ending = match &run.exit {
        Exit::Status(0) => "exit status 0".to_string(),
        Exit::Status(c) => format!("exit status {c}"),
        Exit::Signal(s) => format!("killed by {} ({s})", signal_name(*s)),
        Exit::Timeout => format!("timed out after {} s", timeout.as_secs_f64()),
        Exit::SpawnError(e) => return e.clone(),
    };
    match (fail_line, &run.exit) {
        (Some(l), Exit::Status(_)) => l.trim().to_string(),
        (Some(l), _) => format!("{ending} after: {}", l.trim()),
        (None, _) => match run.output.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(first) => format!("{ending}: {}", truncate(first, 160)),
            None => ending,
        },
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}...")
    }
}

/// The first `n` non-empty lines of a program's output.
pub fn first_lines(output: &str, n: usize) -> Vec<String> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| truncate(l, 200))
        .collect()
}

/// `ptrace: 140/150 cases pass (27 families)`.
pub fn summary_line(platform: &str, passed: usize, total: usize, families: usize) -> String {
    format!("{platform}: {passed}/{total} cases pass ({families} families)")
}

/// A line of expected-failures.txt: `ptrace family/case  # reason`.
pub fn expected_line(platform: &str, case: &Case, reason: &str) -> String {
    let reason = reason.replace(['\n', '\r'], " ");
    format!(
        "{platform} {}  # {}",
        case.id(),
        truncate(reason.trim(), 200)
    )
}

/// `syscall-tests: 290 passed, 10 failed`.
pub fn totals_line(passed: usize, failed: usize) -> String {
    format!("syscall-tests: {passed} passed, {failed} failed")
}

/// Per-family counts: the number of cases and the passes per column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRow {
    pub family: String,
    pub cases: usize,
    /// One count per column (native first, then each platform).
    pub passes: Vec<usize>,
}

/// The results table: a header, one row per family, a total row.
pub fn table(columns: &[String], rows: &[FamilyRow]) -> String {
    let fam_w = rows
        .iter()
        .map(|r| r.family.len())
        .chain(["family".len(), "total".len()])
        .max()
        .unwrap_or(6);
    let headers: Vec<String> = columns.iter().map(|c| format!("{c} pass")).collect();
    let widths: Vec<usize> = headers.iter().map(|h| h.len().max(5)).collect();
    let mut out = String::new();
    let _ = write!(out, "{:<fam_w$}  {:>5}", "family", "cases");
    for (h, w) in headers.iter().zip(&widths) {
        let _ = write!(out, "  {h:>w$}");
    }
    out.push('\n');
    let mut total_cases = 0;
    let mut totals = vec![0usize; columns.len()];
    for r in rows {
        let _ = write!(out, "{:<fam_w$}  {:>5}", r.family, r.cases);
        total_cases += r.cases;
        for (i, w) in widths.iter().enumerate() {
            let p = r.passes.get(i).copied().unwrap_or(0);
            totals[i] += p;
            let _ = write!(out, "  {p:>w$}");
        }
        out.push('\n');
    }
    let _ = write!(out, "{:<fam_w$}  {:>5}", "total", total_cases);
    for (t, w) in totals.iter().zip(&widths) {
        let _ = write!(out, "  {t:>w$}");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(exit: Exit, output: &str) -> RunOutput {
        RunOutput {
            exit,
            output: output.to_string(),
            elapsed: Duration::from_millis(1),
        }
    }

    #[test]
    fn summary_line_format() {
        assert_eq!(
            summary_line("ptrace", 140, 150, 27),
            "ptrace: 140/150 cases pass (27 families)"
        );
        assert_eq!(
            summary_line("kvm", 0, 0, 0),
            "kvm: 0/0 cases pass (0 families)"
        );
        assert_eq!(totals_line(290, 10), "syscall-tests: 290 passed, 10 failed");
    }

    #[test]
    fn expected_lines_round_trip() {
        let c = Case::new("pty", "raw_mode");
        let line = expected_line("ptrace", &c, "pty.c:10: posix_openpt: ENOENT\nmore");
        assert_eq!(
            line,
            "ptrace pty/raw_mode  # pty.c:10: posix_openpt: ENOENT more"
        );
        let (ef, errors) = crate::expected::ExpectedFailures::parse(&line);
        assert!(errors.is_empty());
        assert_eq!(
            ef.lookup("ptrace", "pty/raw_mode").unwrap().reason,
            "pty.c:10: posix_openpt: ENOENT more"
        );
    }

    #[test]
    fn case_naming() {
        let c = Case::new("file_io", "open_missing_enoent");
        assert_eq!(c.id(), "file_io/open_missing_enoent");
        assert_eq!(
            family_of(Path::new("/x/cases/file_io.c")).as_deref(),
            Some("file_io")
        );
        assert_eq!(family_of(Path::new("cases/harness.h")), None);
        assert_eq!(family_of(Path::new("cases/notes.txt")), None);
        assert_eq!(family_of(Path::new("cases/bad name.c")), None);
    }

    #[test]
    fn list_parsing() {
        assert_eq!(
            parse_list("a\nb_c\n\n").unwrap(),
            vec!["a".to_string(), "b_c".to_string()]
        );
        assert!(parse_list("a\na\n").is_err());
        assert!(parse_list("has space\n").is_err());
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::classify(true, None), Verdict::Pass);
        assert_eq!(Verdict::classify(false, None), Verdict::Fail);
        assert_eq!(
            Verdict::classify(false, Some("r")),
            Verdict::ExpectedFail("r".into())
        );
        assert_eq!(
            Verdict::classify(true, Some("r")),
            Verdict::UnexpectedPass("r".into())
        );
        assert!(Verdict::UnexpectedPass("r".into()).passed());
        assert!(Verdict::UnexpectedPass("r".into()).is_error());
        assert!(!Verdict::ExpectedFail("r".into()).is_error());
        assert!(!Verdict::ExpectedFail("r".into()).passed());
        assert!(Verdict::Fail.is_error());
    }

    #[test]
    fn reasons() {
        let t = Duration::from_secs(10);
        assert_eq!(
            failure_reason(
                &run(
                    Exit::Status(1),
                    "noise\nFAIL file_io.c:12: x == 1: got 2, expected == 1\n"
                ),
                t
            ),
            "file_io.c:12: x == 1: got 2, expected == 1"
        );
        assert_eq!(
            failure_reason(&run(Exit::Signal(11), ""), t),
            "killed by SIGSEGV (11)"
        );
        assert_eq!(
            failure_reason(&run(Exit::Timeout, "FAIL a.c:1: late\n"), t),
            "timed out after 10 s after: a.c:1: late"
        );
        assert_eq!(
            failure_reason(
                &run(
                    Exit::Status(1),
                    "\nrvisor: platform \"kvm\" is not available\n"
                ),
                t
            ),
            "exit status 1: rvisor: platform \"kvm\" is not available"
        );
        assert_eq!(
            failure_reason(&run(Exit::SpawnError("cannot run x".into()), ""), t),
            "cannot run x"
        );
    }

    #[test]
    fn table_layout() {
        let rows = vec![
            FamilyRow {
                family: "brk".into(),
                cases: 6,
                passes: vec![6, 2],
            },
            FamilyRow {
                family: "file_io".into(),
                cases: 23,
                passes: vec![23, 20],
            },
        ];
        let t = table(&["native".into(), "ptrace".into()], &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "family   cases  native pass  ptrace pass");
        assert_eq!(lines[1], "brk          6            6            2");
        assert_eq!(lines[3], "total       29           29           22");
    }

    #[test]
    fn output_lines() {
        assert_eq!(first_lines("a\n\nb\nc\nd\n", 3), vec!["a", "b", "c"]);
        assert_eq!(truncate("abcdef", 3), "abc...");
    }
}

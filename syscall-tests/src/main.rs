//! syscall-tests: rvisor's Linux ABI conformance suite.
//!
//! Compiles every `cases/<family>.c` (static, with `cases/harness.h`), lists its
//! cases, runs each case natively (the oracle: a case failing natively is a broken
//! test) and then under `rvisor do --platform P` for every platform present. Prints a
//! table per family, the failures and one summary line per platform.
//!
//! ```text
//! syscall-tests [--rvisor PATH] [--rvisor-arg ARG]... [--filter SUBSTR]... [--summary] [--native-only]
//!               [--platform P]... [--jobs N] [--timeout SECS] [--verbose]
//!               [--emit-expected]
//! ```

mod compile;
mod expected;
mod report;
mod runner;

use expected::ExpectedFailures;
use report::{Case, FamilyRow, Verdict};
use runner::{Exit, RunOutput};
use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: syscall-tests [options]

Runs every case natively, then under `rvisor do --platform P` for each platform
(ptrace always; kvm when rvisor accepts it).

options:
  --rvisor PATH     the rvisor binary (default: $RVISOR, else <workspace>/target/release/rvisor)
  --filter SUBSTR   only cases whose family/case contains SUBSTR (repeatable: any of them)
  --summary         print only the summary lines (and skipped platforms)
  --native-only     run natively only
  --platform P      run under platform P only (repeatable; default: ptrace, kvm if present)
  --rvisor-arg ARG  pass ARG to rvisor before `do` (repeatable), e.g. --huge-pages=on
  --jobs N          parallel runs (default 2)
  --timeout SECS    per-run timeout (default 10)
  --verbose         print each result as it finishes (to stderr)
  --emit-expected   also print every unlisted failure under rvisor as a line for
                    expected-failures.txt (`platform family/case  # reason`)
  --help            this text
";

#[derive(Debug, Clone)]
struct Options {
    rvisor: Option<PathBuf>,
    filter: Vec<String>,
    summary: bool,
    native_only: bool,
    platforms: Vec<String>,
    /// Global flags for rvisor, before `do`.
    rvisor_args: Vec<String>,
    jobs: usize,
    timeout: Duration,
    verbose: bool,
    emit_expected: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rvisor: None,
        filter: Vec::new(),
        summary: false,
        native_only: false,
        platforms: Vec::new(),
        rvisor_args: Vec::new(),
        jobs: 2,
        timeout: Duration::from_secs(10),
        verbose: false,
        emit_expected: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--rvisor" => o.rvisor = Some(PathBuf::from(value("--rvisor")?)),
            "--filter" => o.filter.push(value("--filter")?),
            "--rvisor-arg" => o.rvisor_args.push(value("--rvisor-arg")?),
            "--summary" => o.summary = true,
            "--native-only" => o.native_only = true,
            "--platform" => o.platforms.push(value("--platform")?),
            "--jobs" => {
                o.jobs = value("--jobs")?
                    .parse()
                    .map_err(|_| "--jobs needs a number".to_string())?;
                if o.jobs == 0 {
                    return Err("--jobs must be at least 1".into());
                }
            }
            "--timeout" => {
                let secs: f64 = value("--timeout")?
                    .parse()
                    .map_err(|_| "--timeout needs a number of seconds".to_string())?;
                if !(secs > 0.0 && secs.is_finite()) {
                    return Err("--timeout must be positive".into());
                }
                o.timeout = Duration::from_secs_f64(secs);
            }
            "--verbose" | "-v" => o.verbose = true,
            "--emit-expected" => o.emit_expected = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

struct Paths {
    cases: PathBuf,
    header: PathBuf,
    expected: PathBuf,
    bin: PathBuf,
    scratch: PathBuf,
    rvisor: PathBuf,
}

fn locate(opts: &Options) -> Paths {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.clone());
    let target = match env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => {
            let t = PathBuf::from(t);
            if t.is_absolute() {
                t
            } else {
                env::current_dir().map(|d| d.join(&t)).unwrap_or(t)
            }
        }
        _ => workspace.join("target"),
    };
    let out = target.join("syscall-tests");
    let rvisor = opts
        .rvisor
        .clone()
        .or_else(|| {
            env::var_os("RVISOR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| workspace.join("target/release/rvisor"));
    Paths {
        cases: manifest.join("cases"),
        header: manifest.join("cases/harness.h"),
        expected: manifest.join("expected-failures.txt"),
        bin: out.join("bin"),
        scratch: out.join("tmp"),
        rvisor,
    }
}

/// A column of results: native or a platform.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// One entry per case (None: not run there, because it failed natively).
    runs: Vec<Option<RunOutput>>,
}

/// Probes a platform with `rvisor do --platform P /bin/true`; Err is the skip reason.
fn probe(rvisor: &Path, platform: &str, timeout: Duration, scratch: &Path) -> Result<(), String> {
    let argv = vec![
        rvisor.display().to_string(),
        "do".into(),
        "--platform".into(),
        platform.into(),
        "/bin/true".into(),
    ];
    let r = runner::run(&argv, timeout, scratch);
    if r.passed() {
        return Ok(());
    }
    let ending = match &r.exit {
        Exit::Status(c) => format!("exit status {c}"),
        Exit::Signal(s) => format!("killed by {}", report::signal_name(*s)),
        Exit::Timeout => "timed out".into(),
        Exit::SpawnError(e) => return Err(e.clone()),
    };
    match r.output.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => Err(format!("{ending}: {}", report::truncate(line, 160))),
        None => Err(ending),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(msg) => {
            if msg.is_empty() {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("syscall-tests: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run_suite(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("syscall-tests: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs everything; Ok(true) when the exit status should be 0.
fn run_suite(opts: &Options) -> Result<bool, String> {
    let paths = locate(opts);
    let mut ok = true;
    fs::create_dir_all(&paths.scratch)
        .map_err(|e| format!("create {}: {e}", paths.scratch.display()))?;

    // Expected failures.
    let (expected, expected_errors) = match fs::read_to_string(&paths.expected) {
        Ok(text) => ExpectedFailures::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(format!("read {}: {e}", paths.expected.display())),
    };

    // Compile.
    let families = compile::discover(&paths.cases, &paths.bin)
        .map_err(|e| format!("read {}: {e}", paths.cases.display()))?;
    if families.is_empty() {
        return Err(format!("no cases in {}", paths.cases.display()));
    }
    let cc = env::var("CC")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "gcc".into());
    let t0 = Instant::now();
    let builds = runner::parallel_map(
        families.clone(),
        opts.jobs,
        |f| compile::build(&cc, f, &paths.header),
        |_, _| {},
    );
    let compiled = builds.iter().filter(|b| matches!(b, Ok(true))).count();
    if compiled > 0 && !opts.summary {
        eprintln!(
            "syscall-tests: compiled {compiled} case programs in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    let mut problems: Vec<String> = Vec::new();

    // List the cases of each family.
    let mut cases: Vec<Case> = Vec::new();
    let mut binaries: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut all_ids: Vec<String> = Vec::new();
    for (fam, build) in families.iter().zip(&builds) {
        if let Err(msg) = build {
            ok = false;
            problems.push(format!(
                "{}: does not compile:\n{}",
                fam.name,
                indent(&report::first_lines(msg, 20).join("\n"))
            ));
            continue;
        }
        let argv = vec![fam.binary.display().to_string(), "--list".into()];
        let r = runner::run(&argv, opts.timeout, &paths.scratch);
        let names = if r.passed() {
            report::parse_list(&r.output)
        } else {
            Err(report::failure_reason(&r, opts.timeout))
        };
        match names {
            Ok(names) if names.is_empty() => {
                ok = false;
                problems.push(format!("{}: --list printed no cases", fam.name));
            }
            Ok(names) => {
                binaries.insert(fam.name.clone(), fam.binary.clone());
                for n in names {
                    let c = Case::new(&fam.name, &n);
                    all_ids.push(c.id());
                    if opts.filter.is_empty()
                        || opts.filter.iter().any(|f| c.id().contains(f.as_str()))
                    {
                        cases.push(c);
                    }
                }
            }
            Err(e) => {
                ok = false;
                problems.push(format!("{}: --list failed: {e}", fam.name));
            }
        }
    }
    for e in &expected_errors {
        ok = false;
        problems.push(format!("{}: {e}", paths.expected.display()));
    }
    if opts.filter.is_empty() {
        for e in &expected.entries {
            if !all_ids.contains(&e.case)
                && binaries.contains_key(e.case.split('/').next().unwrap_or(""))
            {
                ok = false;
                problems.push(format!(
                    "{}: line {}: there is no case {}",
                    paths.expected.display(),
                    e.line,
                    e.case
                ));
            }
        }
    }

    // Platforms.
    let mut platforms: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    if !opts.native_only {
        let wanted: Vec<String> = if opts.platforms.is_empty() {
            vec!["ptrace".into(), "kvm".into()]
        } else {
            opts.platforms.clone()
        };
        for p in wanted {
            if platforms.contains(&p) {
                continue;
            }
            if p == "ptrace" {
                platforms.push(p);
                continue;
            }
            match probe(&paths.rvisor, &p, opts.timeout, &paths.scratch) {
                Ok(()) => platforms.push(p),
                Err(reason) => skipped.push(format!("{p}: skipped ({reason})")),
            }
        }
    }

    // Native runs.
    let verbose = opts.verbose;
    let progress = |column: &str| {
        let column = column.to_string();
        move |c: &(usize, Case), r: &RunOutput| {
            if verbose {
                let what = if r.passed() {
                    "ok".to_string()
                } else {
                    format!("FAIL ({})", report::failure_reason(r, opts.timeout))
                };
                eprintln!(
                    "[{column}] {} {what} {:.0} ms",
                    c.1.id(),
                    r.elapsed.as_secs_f64() * 1000.0
                );
            }
        }
    };
    if !opts.summary {
        eprintln!("syscall-tests: running {} cases natively", cases.len());
    }
    let indexed: Vec<(usize, Case)> = cases.iter().cloned().enumerate().collect();
    let native_runs = runner::parallel_map(
        indexed.clone(),
        opts.jobs,
        |(_, c)| {
            let argv = vec![binaries[&c.family].display().to_string(), c.name.clone()];
            runner::run(&argv, opts.timeout, &paths.scratch)
        },
        progress("native"),
    );
    let native_ok: Vec<bool> = native_runs.iter().map(RunOutput::passed).collect();
    let mut columns = vec![Column {
        name: "native".into(),
        runs: native_runs.into_iter().map(Some).collect(),
    }];

    // Runs under rvisor, for the cases that pass natively.
    for p in &platforms {
        let todo: Vec<(usize, Case)> = indexed
            .iter()
            .filter(|(i, _)| native_ok[*i])
            .cloned()
            .collect();
        if !opts.summary {
            eprintln!("syscall-tests: running {} cases under {p}", todo.len());
        }
        let runs = runner::parallel_map(
            todo.clone(),
            opts.jobs,
            |(_, c)| {
                let argv: Vec<String> = std::iter::once(paths.rvisor.display().to_string())
                    .chain(opts.rvisor_args.iter().cloned())
                    .chain([
                        "do".into(),
                        "--platform".into(),
                        p.clone(),
                        binaries[&c.family].display().to_string(),
                        c.name.clone(),
                    ])
                    .collect();
                runner::run(&argv, opts.timeout, &paths.scratch)
            },
            progress(p),
        );
        let mut col: Vec<Option<RunOutput>> = vec![None; cases.len()];
        for ((i, _), r) in todo.iter().zip(runs) {
            col[*i] = Some(r);
        }
        columns.push(Column {
            name: p.clone(),
            runs: col,
        });
    }

    // Verdicts.
    let mut verdicts: Vec<Vec<Option<Verdict>>> = Vec::new();
    for col in &columns {
        let native = col.name == "native";
        verdicts.push(
            col.runs
                .iter()
                .zip(&cases)
                .map(|(r, c)| {
                    let r = r.as_ref()?;
                    let exp = if native {
                        None
                    } else {
                        expected
                            .lookup(&col.name, &c.id())
                            .map(|e| e.reason.as_str())
                    };
                    Some(Verdict::classify(r.passed(), exp))
                })
                .collect(),
        );
    }
    if verdicts.iter().flatten().flatten().any(Verdict::is_error) {
        ok = false;
    }

    let family_names: Vec<String> = {
        let mut f: Vec<String> = cases.iter().map(|c| c.family.clone()).collect();
        f.dedup();
        f
    };

    if !opts.summary {
        print_details(
            &cases,
            &columns,
            &verdicts,
            &family_names,
            &problems,
            opts.timeout,
        );
    }

    // Summary lines.
    for s in &skipped {
        println!("{s}");
    }
    let total_native = native_ok.len();
    let native_pass = native_ok.iter().filter(|p| **p).count();
    println!(
        "{}",
        report::summary_line("native", native_pass, total_native, family_names.len())
    );
    let mut passed_runs = 0;
    let mut failed_runs = 0;
    for (ci, col) in columns.iter().enumerate() {
        let mut pass = 0;
        for v in verdicts[ci].iter().flatten() {
            if v.passed() {
                pass += 1;
                passed_runs += 1;
            } else {
                failed_runs += 1;
            }
        }
        if ci > 0 {
            println!(
                "{}",
                report::summary_line(&col.name, pass, native_pass, family_names.len())
            );
        }
    }
    println!("{}", report::totals_line(passed_runs, failed_runs));
    if opts.emit_expected {
        println!("\n# Unlisted failures, in expected-failures.txt format:");
        for (ci, col) in columns.iter().enumerate().skip(1) {
            for (i, c) in cases.iter().enumerate() {
                if let (Some(Verdict::Fail), Some(r)) = (&verdicts[ci][i], &col.runs[i]) {
                    println!(
                        "{}",
                        report::expected_line(
                            &col.name,
                            c,
                            &report::failure_reason(r, opts.timeout)
                        )
                    );
                }
            }
        }
    }
    if opts.summary && !problems.is_empty() {
        for p in &problems {
            eprintln!("syscall-tests: {p}");
        }
    }
    Ok(ok)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("      | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_details(
    cases: &[Case],
    columns: &[Column],
    verdicts: &[Vec<Option<Verdict>>],
    family_names: &[String],
    problems: &[String],
    timeout: Duration,
) {
    // Table.
    let rows: Vec<FamilyRow> = family_names
        .iter()
        .map(|fam| {
            let idx: Vec<usize> = (0..cases.len())
                .filter(|&i| &cases[i].family == fam)
                .collect();
            FamilyRow {
                family: fam.clone(),
                cases: idx.len(),
                passes: verdicts
                    .iter()
                    .map(|col| {
                        idx.iter()
                            .filter(|&&i| col[i].as_ref().is_some_and(Verdict::passed))
                            .count()
                    })
                    .collect(),
            }
        })
        .collect();
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    println!();
    print!("{}", report::table(&names, &rows));

    // Failures, expected failures, unexpected passes.
    let mut failures = Vec::new();
    let mut expected = Vec::new();
    let mut unexpected = Vec::new();
    for (ci, col) in columns.iter().enumerate() {
        for (i, c) in cases.iter().enumerate() {
            let (Some(v), Some(r)) = (&verdicts[ci][i], &col.runs[i]) else {
                continue;
            };
            match v {
                Verdict::Pass => {}
                Verdict::Fail => {
                    let mut s = format!(
                        "  {} [{}]: {}",
                        c.id(),
                        col.name,
                        report::failure_reason(r, timeout)
                    );
                    if col.name == "native" {
                        s.push_str("  (fails natively: the case is broken)");
                    }
                    // The output, without the FAIL line already shown as the reason.
                    let lines: Vec<String> = report::first_lines(&r.output, 5)
                        .into_iter()
                        .filter(|l| !l.trim_start().starts_with("FAIL "))
                        .take(4)
                        .collect();
                    if !lines.is_empty() {
                        s.push('\n');
                        s.push_str(&indent(&lines.join("\n")));
                    }
                    failures.push(s);
                }
                Verdict::ExpectedFail(why) => expected.push(format!(
                    "  {} [{}]: {}  # {why}",
                    c.id(),
                    col.name,
                    report::failure_reason(r, timeout)
                )),
                Verdict::UnexpectedPass(why) => unexpected.push(format!(
                    "  unexpected pass: {} {}  # {why}: remove it from expected-failures.txt",
                    col.name,
                    c.id()
                )),
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures ({}):", failures.len());
        for f in &failures {
            println!("{f}");
        }
    }
    if !expected.is_empty() {
        println!("\nexpected failures ({}):", expected.len());
        for f in &expected {
            println!("{f}");
        }
    }
    if !unexpected.is_empty() {
        println!("\nunexpected passes ({}):", unexpected.len());
        for f in &unexpected {
            println!("{f}");
        }
    }
    if !problems.is_empty() {
        println!("\nerrors:");
        for p in problems {
            println!("  {p}");
        }
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse_args(&args(
            "--rvisor /x/rvisor --filter file_io/ --summary --platform ptrace --jobs 3 --timeout 2.5",
        ))
        .unwrap();
        assert_eq!(o.rvisor.as_deref(), Some(Path::new("/x/rvisor")));
        assert_eq!(o.filter, vec!["file_io/".to_string()]);
        let two = parse_args(&args("--filter pipes/ --filter raw_")).unwrap();
        assert_eq!(two.filter, vec!["pipes/".to_string(), "raw_".to_string()]);
        assert!(o.summary);
        assert!(!o.native_only);
        assert_eq!(o.platforms, vec!["ptrace".to_string()]);
        assert_eq!(o.jobs, 3);
        assert_eq!(o.timeout, Duration::from_millis(2500));
        let d = parse_args(&[]).unwrap();
        assert_eq!(d.jobs, 2);
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert!(parse_args(&args("--jobs 0")).is_err());
        assert!(parse_args(&args("--filter")).is_err());
        assert!(parse_args(&args("--bogus")).is_err());
        assert_eq!(parse_args(&args("--help")).unwrap_err(), "");
    }
}

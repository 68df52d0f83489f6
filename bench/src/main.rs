//! `rvisor-bench`: runs each workload natively, under `rvisor do` on each platform and
//! under gVisor's `runsc do` (when installed), interleaved, and prints medians with
//! min-max and the ratios rvisor/native and rvisor/runsc. Not part of the test suite;
//! it never asserts timings. It also measures each platform's own round trip in-process
//! (see `roundtrip`).

mod format;
mod helper;
mod net;
mod parse;
mod proc;
mod roundtrip;
mod run;
mod stats;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use serde::Serialize;

use proc::{MemMetric, ProcMem};
use stats::Summary;
use workloads::{Kind, Sizes, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "rvisor-bench",
    about = "Benchmarks side by side: native, rvisor (each platform) and gVisor's runsc",
    after_help = "Workloads are run interleaved (native, rvisor, runsc, native, ...). \
                  Per-operation workloads measure inside the sandbox; start-up workloads \
                  measure the wall time of the whole command; memory workloads sum the \
                  host process tree while the workload sleeps."
)]
struct Args {
    /// Repetitions of each workload under each runner [default: 5, or 3 with --quick]
    #[arg(long, value_name = "N")]
    reps: Option<usize>,
    /// Fewer repetitions, smaller sizes, shorter batches (about a minute)
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (names or groups; see --list)
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "NAME")]
    only: Vec<String>,
    /// Also write the figures as JSON to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The rvisor binary [default: <workspace>/target/release/rvisor]
    #[arg(long, value_name = "PATH")]
    rvisor: Option<PathBuf>,
    /// rvisor platforms to measure (repeatable) [default: ptrace, and kvm when /dev/kvm
    /// is usable]
    #[arg(long = "platform", value_name = "NAME")]
    platforms: Vec<String>,
    /// gVisor's runsc binary (skipped when missing)
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/runsc")]
    runsc: PathBuf,
    /// runsc's --platform
    #[arg(long, value_name = "NAME", default_value = "ptrace")]
    runsc_platform: String,
    /// Do not run runsc even when it is installed
    #[arg(long)]
    no_runsc: bool,
    /// Per-operation workloads: minimum duration of the measured batch [default: 100, or 20 with --quick]
    #[arg(long, value_name = "MS")]
    min_ms: Option<u64>,
    /// Kill one run (and its process tree) after this many seconds [default: 120, or 40 with --quick]
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Where the helper program is compiled [default: <workspace>/target/rvisor-bench]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// List the workloads and exit
    #[arg(long)]
    list: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum RunnerKind {
    Native,
    /// docker's default runtime (the network group's docker rows).
    Runc,
    Rvisor,
    Runsc,
}

struct Runner {
    name: String,
    kind: RunnerKind,
    /// Prepended to the workload's command.
    prefix: Vec<String>,
    /// The docker runtime (`--runtime=`) of the network group's docker rows.
    runtime: Option<String>,
}

impl Runner {
    fn argv(&self, cmd: &[String]) -> Vec<String> {
        self.prefix.iter().chain(cmd).cloned().collect()
    }
}

#[derive(Serialize)]
struct RunnerInfo {
    name: String,
    kind: RunnerKind,
    command: Vec<String>,
    skipped: Option<String>,
}

/// What one (workload, runner) pair collected.
#[derive(Default, Serialize)]
struct CellResult {
    samples: Vec<f64>,
    summary: Option<Summary>,
    /// The first failure; later repetitions are not attempted after one.
    failure: Option<String>,
    /// Memory workloads: the processes of the last sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    processes: Option<Vec<ProcMem>>,
    /// What the last sample saw besides its value (the idle row: processes counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize)]
struct WorkloadReport {
    name: &'static str,
    group: &'static str,
    label: String,
    unit: &'static str,
    higher_is_better: bool,
    /// Run in docker containers (the runners are docker runtimes).
    docker: bool,
    skipped: Option<String>,
    results: BTreeMap<String, CellResult>,
    /// "A/B" -> median(A) / median(B)
    ratios: BTreeMap<String, Option<f64>>,
}

#[derive(Serialize)]
struct Host {
    kernel: String,
    cpus: usize,
    cpu_model: String,
    runsc_version: Option<String>,
    /// /proc/loadavg before and after the run (other work on the host skews figures).
    loadavg_start: String,
    loadavg_end: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Serialize)]
struct Report {
    unix_time: u64,
    host: Host,
    reps: usize,
    quick: bool,
    sizes: Sizes,
    runners: Vec<RunnerInfo>,
    notes: Vec<String>,
    /// Each platform's own round trip, measured in this process.
    round_trips: Vec<roundtrip::RoundTrip>,
    workloads: Vec<WorkloadReport>,
    total_seconds: f64,
}

struct Ctx {
    rvbench: String,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    timeout: Duration,
    /// Set up when a docker row of the network group is selected.
    docker: Option<net::Docker>,
}

enum Outcome {
    Ok {
        value: f64,
        processes: Option<Vec<ProcMem>>,
        detail: Option<String>,
    },
    Fail(String),
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("rvisor-bench: {e:#}");
        std::process::exit(1);
    }
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let root = workspace_root();
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(ms) = args.min_ms {
        sizes.min_ms = ms.max(1);
    }
    let reps = args.reps.unwrap_or(if args.quick { 3 } else { 5 }).max(1);
    let timeout = Duration::from_secs(args.timeout.unwrap_or(if args.quick { 40 } else { 120 }));
    let cache = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| root.join("target").join("rvisor-bench"));

    if args.list {
        let files = workloads::Files {
            rvbench: cache.join("rvbench"),
            hello_c: cache.join("hello.c"),
        };
        for w in workloads::all(&sizes, &files) {
            println!("{:<14} {:<9} {} [{}]", w.name, w.group, w.label, w.unit);
        }
        return Ok(());
    }

    let mut notes = Vec::new();
    let (files, note) = helper::prepare(&cache, "gcc")?;
    notes.extend(note);
    let mut selected =
        workloads::select(workloads::all(&sizes, &files), &args.only).map_err(|e| anyhow!(e))?;
    skip_missing_tools(&mut selected);

    let (platforms, skipped_platforms) = platforms(&args);
    let (runners, mut infos, runsc_version) = make_runners(&args, &root, &platforms);
    for (p, why) in skipped_platforms {
        infos.insert(
            infos.len() - 1,
            RunnerInfo {
                name: format!("rvisor-{p}"),
                kind: RunnerKind::Rvisor,
                command: vec![],
                skipped: Some(why),
            },
        );
    }
    let mut ctx = Ctx {
        rvbench: files.rvbench.display().to_string(),
        cwd: cache.clone(),
        env: vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            (
                "HOME".into(),
                std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            ),
            ("LANG".into(), "C".into()),
        ],
        timeout,
        docker: None,
    };
    let (docker_runners, docker_infos) =
        docker_runners(&args, &root, &platforms, &mut selected, &mut ctx);
    infos.extend(docker_infos);

    let mut host = Host {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default(),
        runsc_version,
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
    };

    println!(
        "rvisor-bench: {} reps{}, interleaved {}; host: Linux {}, {} CPUs, {}, load {}",
        reps,
        if args.quick { " (--quick)" } else { "" },
        runners
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
            + &match docker_runners.is_empty() {
                true => String::new(),
                false => format!(
                    " (docker rows: {})",
                    docker_runners
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
            },
        host.kernel,
        host.cpus,
        host.cpu_model,
        host.loadavg_start
    );
    for i in &infos {
        match &i.skipped {
            Some(why) => println!("  {}: SKIPPED: {}", i.name, why),
            None if i.command.is_empty() => println!("  {}: the workload run directly", i.name),
            None => println!("  {}: {} WORKLOAD", i.name, i.command.join(" ")),
        }
    }
    println!();

    let round_trips = roundtrip::measure(&platforms, reps, args.quick);
    print_round_trips(&round_trips);

    let mut reports = Vec::new();
    for (wi, w) in selected.iter().enumerate() {
        let runners = match w.kind {
            Kind::Docker(_) => &docker_runners,
            _ => &runners,
        };
        let mut results: BTreeMap<String, CellResult> = BTreeMap::new();
        if let Some(why) = &w.skip {
            eprintln!(
                "[{}/{}] {}: skipped: {}",
                wi + 1,
                selected.len(),
                w.name,
                why
            );
        } else {
            for r in runners {
                results.insert(r.name.clone(), CellResult::default());
            }
            // Start-up figures include cold caches on a first run: warm each runner once.
            if matches!(w.kind, Kind::Wall { .. }) {
                for r in runners {
                    let _ = measure(r, w, &ctx);
                }
            }
            for rep in 0..reps {
                let mut line = format!(
                    "[{}/{}] {} rep {}/{}:",
                    wi + 1,
                    selected.len(),
                    w.name,
                    rep + 1,
                    reps
                );
                for r in runners {
                    let cell = results.get_mut(&r.name).expect("inserted above");
                    if cell.failure.is_some() {
                        continue;
                    }
                    match measure(r, w, &ctx) {
                        Outcome::Ok {
                            value,
                            processes,
                            detail,
                        } => {
                            line.push_str(&format!(" {} {}", r.name, format::num(value)));
                            cell.samples.push(value);
                            if processes.is_some() {
                                cell.processes = processes;
                            }
                            if detail.is_some() {
                                cell.detail = detail;
                            }
                        }
                        Outcome::Fail(msg) => {
                            line.push_str(&format!(" {} FAILED", r.name));
                            cell.failure = Some(format!("rep {}: {}", rep + 1, msg));
                        }
                    }
                }
                eprintln!("{line} {}", w.unit);
            }
        }
        for cell in results.values_mut() {
            cell.summary = Summary::of(&cell.samples);
        }
        let ratios = ratio_columns(runners)
            .into_iter()
            .map(|(a, b)| {
                let r = stats::ratio(
                    results.get(&a).and_then(|c| c.summary.as_ref()),
                    results.get(&b).and_then(|c| c.summary.as_ref()),
                );
                (format!("{a}/{b}"), r)
            })
            .collect();
        reports.push(WorkloadReport {
            name: w.name,
            group: w.group,
            label: w.label.clone(),
            unit: w.unit,
            higher_is_better: w.higher_is_better,
            docker: matches!(w.kind, Kind::Docker(_)),
            skipped: w.skip.clone(),
            results,
            ratios,
        });
    }

    let _ = std::fs::remove_file("/tmp/rvisor-bench-hello.o");
    // The image and any container left are removed now, not after the report.
    ctx.docker = None;
    let (in_docker, direct): (Vec<&WorkloadReport>, Vec<_>) =
        reports.iter().partition(|w| w.docker);
    if !direct.is_empty() {
        print!("{}", render(&runners, &direct));
    }
    if !in_docker.is_empty() {
        println!(
            "\nThrough docker: iperf3 and wrk on the host against a container on the default \
             bridge, per docker runtime:"
        );
        print!("{}", render(&docker_runners, &in_docker));
    }
    print_notes(&infos, &reports, &notes);
    let total = started.elapsed().as_secs_f64();
    host.loadavg_end = loadavg();
    println!(
        "\ntotal time {total:.0} s; load average {} at the start, {} at the end",
        host.loadavg_start, host.loadavg_end
    );

    if let Some(path) = &args.json {
        let report = Report {
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            host,
            reps,
            quick: args.quick,
            sizes,
            runners: infos,
            notes,
            round_trips,
            workloads: reports,
            total_seconds: total,
        };
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The rvisor platforms to measure, and those left out with the reason: the ones asked
/// for, or ptrace and (when rvisor's KVM platform can start here) kvm.
fn platforms(args: &Args) -> (Vec<String>, Vec<(String, String)>) {
    if !args.platforms.is_empty() {
        return (args.platforms.clone(), vec![]);
    }
    match roundtrip::kvm_usable() {
        Ok(()) => (vec!["ptrace".into(), "kvm".into()], vec![]),
        Err(why) => (vec!["ptrace".into()], vec![("kvm".into(), why)]),
    }
}

fn print_round_trips(rts: &[roundtrip::RoundTrip]) {
    if rts.is_empty() {
        return;
    }
    let header = [
        "platform round trip (in-process)",
        "us",
        "measured before rvisor",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = rts
        .iter()
        .map(|r| {
            let us = match (&r.summary, &r.failure) {
                (Some(s), _) => format::cell(&stats::Summary {
                    median: s.median / 1e3,
                    min: s.min / 1e3,
                    max: s.max / 1e3,
                    count: s.count,
                }),
                (None, Some(f)) => format!("FAILED: {f}"),
                (None, None) => "-".into(),
            };
            vec![r.name.clone(), us, r.quoted_what.to_string()]
        })
        .collect();
    println!("{}", format::table(&header, &rows));
}

/// The runners that can run here, a description of every runner (with the reason
/// when skipped), and runsc's version.
fn make_runners(
    args: &Args,
    root: &Path,
    platforms: &[String],
) -> (Vec<Runner>, Vec<RunnerInfo>, Option<String>) {
    let mut runners = vec![Runner {
        name: "native".into(),
        kind: RunnerKind::Native,
        prefix: vec![],
        runtime: None,
    }];
    let mut infos = vec![RunnerInfo {
        name: "native".into(),
        kind: RunnerKind::Native,
        command: vec![],
        skipped: None,
    }];
    let rvisor = args
        .rvisor
        .clone()
        .unwrap_or_else(|| root.join("target").join("release").join("rvisor"));
    for p in platforms {
        let name = format!("rvisor-{p}");
        let prefix = vec![
            rvisor.display().to_string(),
            "do".into(),
            "--platform".into(),
            p.clone(),
        ];
        let skipped = (!rvisor.is_file()).then(|| {
            format!(
                "{} not found (build it with `cargo build --release`, or pass --rvisor PATH)",
                rvisor.display()
            )
        });
        if skipped.is_none() {
            runners.push(Runner {
                name: name.clone(),
                kind: RunnerKind::Rvisor,
                prefix: prefix.clone(),
                runtime: None,
            });
        }
        infos.push(RunnerInfo {
            name,
            kind: RunnerKind::Rvisor,
            command: prefix,
            skipped,
        });
    }

    let prefix = vec![
        args.runsc.display().to_string(),
        "--rootless=false".into(),
        "--network=none".into(),
        format!("--platform={}", args.runsc_platform),
        "do".into(),
    ];
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let skipped = if args.no_runsc {
        Some("--no-runsc given".to_string())
    } else if !args.runsc.is_file() {
        Some(format!(
            "{} not found (Debian: `apt-get install runsc`)",
            args.runsc.display()
        ))
    } else if euid != 0 {
        Some("runsc --rootless=false needs root and this is not root".to_string())
    } else {
        None
    };
    let mut version = None;
    if skipped.is_none() {
        version = std::process::Command::new(&args.runsc)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_string)
            });
        runners.push(Runner {
            name: "runsc".into(),
            kind: RunnerKind::Runsc,
            prefix: prefix.clone(),
            runtime: None,
        });
    }
    infos.push(RunnerInfo {
        name: "runsc".into(),
        kind: RunnerKind::Runsc,
        command: prefix,
        skipped,
    });
    (runners, infos, version)
}

/// (numerator, denominator) runner names of the ratio columns: each rvisor runner
/// over native (or runc, for the docker rows), then over runsc.
fn ratio_columns(runners: &[Runner]) -> Vec<(String, String)> {
    let find = |k| runners.iter().find(|r| r.kind == k).map(|r| r.name.clone());
    let mut cols = Vec::new();
    for r in runners.iter().filter(|r| r.kind == RunnerKind::Rvisor) {
        let bases = [
            find(RunnerKind::Native),
            find(RunnerKind::Runc),
            find(RunnerKind::Runsc),
        ];
        for base in bases.into_iter().flatten() {
            cols.push((r.name.clone(), base));
        }
    }
    cols
}

fn measure(r: &Runner, w: &Workload, ctx: &Ctx) -> Outcome {
    match &w.kind {
        Kind::Inner { args } => {
            let mut cmd = vec![ctx.rvbench.clone()];
            cmd.extend(args.iter().cloned());
            match run::run::<()>(&r.argv(&cmd), &ctx.cwd, &ctx.env, ctx.timeout, None) {
                Err(e) => Outcome::Fail(format!("cannot start: {e}")),
                Ok(out) if out.timed_out || !out.status.success() => {
                    Outcome::Fail(failure_text(&out, ctx.timeout))
                }
                Ok(out) => match parse::result_line(&out.stdout, Some(w.unit)) {
                    Ok(value) => Outcome::Ok {
                        value,
                        processes: None,
                        detail: None,
                    },
                    Err(e) => Outcome::Fail(format!("{e}{}", output_tail(&out))),
                },
            }
        }
        Kind::Wall { argv } => {
            match run::run::<()>(&r.argv(argv), &ctx.cwd, &ctx.env, ctx.timeout, None) {
                Err(e) => Outcome::Fail(format!("cannot start: {e}")),
                Ok(out) if out.timed_out || !out.status.success() => {
                    Outcome::Fail(failure_text(&out, ctx.timeout))
                }
                Ok(out) => Outcome::Ok {
                    value: out.elapsed.as_secs_f64() * 1e3,
                    processes: None,
                    detail: None,
                },
            }
        }
        Kind::Memory { metric, sleep_ms } => {
            let cmd = vec![ctx.rvbench.clone(), "sleep".into(), sleep_ms.to_string()];
            // Sandboxes: the Sentry, gofer and stubs count, the `do` CLI does not.
            let count_root = r.kind == RunnerKind::Native;
            let mut hook = |pid: u32| sample_memory(pid, *metric, count_root);
            match run::run(
                &r.argv(&cmd),
                &ctx.cwd,
                &ctx.env,
                ctx.timeout,
                Some(&mut hook),
            ) {
                Err(e) => Outcome::Fail(format!("cannot start: {e}")),
                Ok(out) if out.timed_out || !out.status.success() => {
                    Outcome::Fail(failure_text(&out, ctx.timeout))
                }
                Ok(out) => match out.sample {
                    Some(procs) => Outcome::Ok {
                        value: counted_kb(&procs) as f64 / 1024.0,
                        processes: Some(procs),
                        detail: None,
                    },
                    None => Outcome::Fail(format!(
                        "the workload never printed `{}`{}",
                        parse::READY_LINE,
                        output_tail(&out)
                    )),
                },
            }
        }
        Kind::Iperf3 { argv } => {
            match run::run::<()>(&r.argv(argv), &ctx.cwd, &ctx.env, ctx.timeout, None) {
                Err(e) => Outcome::Fail(format!("cannot start: {e}")),
                Ok(out) if out.timed_out => Outcome::Fail(failure_text(&out, ctx.timeout)),
                // iperf3's own error (in its JSON) says more than the exit status.
                Ok(out) => match parse::iperf3_bits_per_second(&out.stdout) {
                    Ok(bps) if out.status.success() => Outcome::Ok {
                        value: bps / 1e9,
                        processes: None,
                        detail: None,
                    },
                    Ok(_) => Outcome::Fail(failure_text(&out, ctx.timeout)),
                    Err(e) => Outcome::Fail(format!("{e}{}", output_tail(&out))),
                },
            }
        }
        Kind::Docker(test) => match (&ctx.docker, &r.runtime) {
            (Some(d), Some(rt)) => net::measure(*test, rt, d, ctx),
            _ => Outcome::Fail("docker is not set up".into()),
        },
    }
}

/// Marks the workloads whose host tools are missing (after trying to install them)
/// as skipped, with the reason.
fn skip_missing_tools(selected: &mut [Workload]) {
    let mut tools: Vec<&str> = selected
        .iter()
        .filter(|w| w.skip.is_none())
        .flat_map(|w| w.kind.tools().iter().copied())
        .collect();
    tools.sort_unstable();
    tools.dedup();
    let missing = net::ensure_tools(&tools);
    for w in selected.iter_mut().filter(|w| w.skip.is_none()) {
        if let Some((_, why)) = missing
            .iter()
            .find(|(t, _)| w.kind.tools().contains(&t.as_str()))
        {
            w.skip = Some(why.clone());
        }
    }
}

/// When a docker row is selected: docker set up in `ctx`, and the docker runners
/// (runc, rvisor per platform, runsc) with a description of each. When docker cannot
/// be set up the docker rows are skipped with the reason.
fn docker_runners(
    args: &Args,
    root: &Path,
    platforms: &[String],
    selected: &mut [Workload],
    ctx: &mut Ctx,
) -> (Vec<Runner>, Vec<RunnerInfo>) {
    let wanted = |w: &&mut Workload| matches!(w.kind, Kind::Docker(_)) && w.skip.is_none();
    if !selected.iter_mut().any(|w| wanted(&w)) {
        return (vec![], vec![]);
    }
    match net::Docker::setup(ctx) {
        Ok(d) => ctx.docker = Some(d),
        Err(why) => {
            for w in selected
                .iter_mut()
                .filter(|w| matches!(w.kind, Kind::Docker(_)))
            {
                w.skip.get_or_insert_with(|| why.clone());
            }
            return (vec![], vec![]);
        }
    }
    let rvisor = args
        .rvisor
        .clone()
        .unwrap_or_else(|| root.join("target").join("release").join("rvisor"));
    let mut candidates: Vec<(String, RunnerKind, Result<String, String>)> =
        vec![("runc".into(), RunnerKind::Runc, Ok("runc".into()))];
    for p in platforms {
        let rt = if rvisor.is_file() {
            net::rvisor_runtime(ctx, &rvisor, p)
        } else {
            Err(format!("{} not found", rvisor.display()))
        };
        candidates.push((format!("rvisor-{p}"), RunnerKind::Rvisor, rt));
    }
    let runsc = if args.no_runsc {
        Err("--no-runsc given".to_string())
    } else if !args.runsc.is_file() {
        Err(format!(
            "{} not found (Debian: `apt-get install runsc`)",
            args.runsc.display()
        ))
    } else {
        net::runsc_runtime(ctx, &args.runsc, &args.runsc_platform).and_then(|rt| {
            let d = ctx.docker.as_ref().expect("set up above");
            d.probe(ctx, &rt).map(|()| rt)
        })
    };
    candidates.push(("runsc".into(), RunnerKind::Runsc, runsc));

    let mut runners = Vec::new();
    let mut infos = Vec::new();
    for (name, kind, rt) in candidates {
        let (command, skipped) = match rt {
            Ok(rt) => {
                let prefix = vec!["docker".into(), "run".into(), format!("--runtime={rt}")];
                runners.push(Runner {
                    name: name.clone(),
                    kind,
                    prefix: prefix.clone(),
                    runtime: Some(rt),
                });
                (prefix, None)
            }
            Err(why) => (vec![], Some(why)),
        };
        infos.push(RunnerInfo {
            name: format!("{name} (docker)"),
            kind,
            command,
            skipped,
        });
    }
    (runners, infos)
}

/// Sum of the counted processes, in kB.
fn counted_kb(procs: &[ProcMem]) -> u64 {
    procs.iter().filter(|p| p.counted).map(|p| p.kb).sum()
}

/// Samples the tree's memory a few times while the workload sleeps; keeps the
/// largest total. `count_root`: whether the tree's root (the workload itself when
/// native, the `do` command of a sandbox) is counted.
fn sample_memory(pid: u32, metric: MemMetric, count_root: bool) -> Vec<ProcMem> {
    std::thread::sleep(Duration::from_millis(200));
    let mut best: Vec<ProcMem> = Vec::new();
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        let s = proc::tree_memory(pid, metric, count_root);
        if counted_kb(&s) > counted_kb(&best) {
            best = s;
        }
    }
    best
}

fn failure_text<T>(out: &run::Output<T>, timeout: Duration) -> String {
    let head = if out.timed_out {
        format!(
            "timed out after {} s (process tree killed)",
            timeout.as_secs()
        )
    } else {
        format!("{}", out.status)
    };
    format!("{head}{}", output_tail(out))
}

/// The last lines of stderr (or of stdout when stderr is empty), indented.
fn output_tail<T>(out: &run::Output<T>) -> String {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return " (no output)".into();
    }
    let start = lines.len().saturating_sub(12);
    let mut s = String::new();
    for l in &lines[start..] {
        s.push_str("\n      ");
        s.push_str(&l.chars().take(300).collect::<String>());
    }
    s
}

fn render(runners: &[Runner], reports: &[&WorkloadReport]) -> String {
    let ratio_cols = ratio_columns(runners);
    let mut header = vec!["workload".to_string(), "unit".to_string()];
    header.extend(runners.iter().map(|r| r.name.clone()));
    header.extend(ratio_cols.iter().map(|(a, b)| format!("{a}/{b}")));
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|w| {
            let mut row = vec![
                w.label.clone(),
                if w.higher_is_better {
                    format!("{} (+)", w.unit)
                } else {
                    w.unit.to_string()
                },
            ];
            for r in runners {
                let c = w.results.get(&r.name);
                row.push(match c {
                    None => "skipped".into(),
                    Some(c) => match (&c.summary, &c.failure) {
                        (Some(s), None) => format::cell(s),
                        (Some(s), Some(_)) => format!("{} !", format::cell(s)),
                        (None, Some(_)) => "FAILED".into(),
                        (None, None) => "-".into(),
                    },
                });
            }
            for (a, b) in &ratio_cols {
                row.push(format::ratio(
                    w.ratios.get(&format!("{a}/{b}")).copied().flatten(),
                ));
            }
            row
        })
        .collect();
    format::table(&header, &rows)
}

fn print_notes(infos: &[RunnerInfo], reports: &[WorkloadReport], notes: &[String]) {
    println!(
        "\nmedian [min-max] over the repetitions; ratios divide medians. (+): higher is better, \
         elsewhere lower is better. `!`: a later repetition failed."
    );
    for i in infos {
        if let Some(why) = &i.skipped {
            println!("{} skipped: {}", i.name, why);
        }
    }
    for n in notes {
        println!("note: {n}");
    }
    for w in reports {
        if let Some(why) = &w.skipped {
            println!("{} skipped: {}", w.name, why);
        }
    }
    let failures: Vec<_> = reports
        .iter()
        .flat_map(|w| {
            w.results
                .iter()
                .filter_map(move |(r, c)| c.failure.as_ref().map(|f| (w.name, r, f)))
        })
        .collect();
    if !failures.is_empty() {
        println!("\nFailures:");
        for (w, r, f) in failures {
            println!("  {w} under {r}: {f}");
        }
    }
    let details: Vec<_> = reports
        .iter()
        .flat_map(|w| {
            w.results
                .iter()
                .filter_map(move |(r, c)| c.detail.as_ref().map(|d| (w.name, r, d)))
        })
        .collect();
    if !details.is_empty() {
        println!("\nLast sample of each cell:");
        for (w, r, d) in details {
            println!("  {w} under {r}: {d}");
        }
    }
    let mem: Vec<_> = reports
        .iter()
        .filter(|w| w.group == "overhead")
        .flat_map(|w| {
            w.results
                .iter()
                .filter_map(move |(r, c)| c.processes.as_ref().map(|p| (w.name, r, p)))
        })
        .collect();
    if !mem.is_empty() {
        println!("\nProcess trees of the last memory sample, kB (`not counted`: the `do` CLI):");
        for (w, r, procs) in mem {
            let parts: Vec<String> = procs
                .iter()
                .map(|p| {
                    let nc = if p.counted { "" } else { " not counted" };
                    format!("{} [{}] {}{}", p.name, p.cmd, p.kb, nc)
                })
                .collect();
            println!("  {w} {r}: {}", parts.join("; "));
        }
    }
}

//! Running one program with a timeout, in its own process group, with its output
//! captured; and a small pool of worker threads.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// At most this much of a program's output is kept.
const MAX_OUTPUT: u64 = 64 * 1024;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Status(i32),
    Signal(i32),
    Timeout,
    /// The program could not be started at all.
    SpawnError(String),
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    pub exit: Exit,
    /// stdout and stderr, interleaved as written.
    pub output: String,
    pub elapsed: Duration,
}

impl RunOutput {
    pub fn passed(&self) -> bool {
        self.exit == Exit::Status(0)
    }
}

fn kill_group(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions; a
    // stale or missing group only makes it fail with ESRCH, which is ignored.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Status(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Status(-1),
    }
}

static OUTPUT_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs `argv` with stdin from /dev/null and stdout+stderr into a scratch file under
/// `scratch`, in a new process group. After `timeout` the whole group is killed.
/// Whatever is left of the group when the program exits is killed too, so stray
/// children of a case never outlive it.
pub fn run(argv: &[String], timeout: Duration, scratch: &Path) -> RunOutput {
    let start = Instant::now();
    let fail = |msg: String| RunOutput {
        exit: Exit::SpawnError(msg),
        output: String::new(),
        elapsed: start.elapsed(),
    };
    let Some((prog, args)) = argv.split_first() else {
        return fail("empty command".into());
    };
    let seq = OUTPUT_SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path: PathBuf = scratch.join(format!("run-{}-{seq}.out", std::process::id()));
    let out = match File::create(&out_path) {
        Ok(f) => f,
        Err(e) => return fail(format!("create {}: {e}", out_path.display())),
    };
    let err = match out.try_clone() {
        Ok(f) => f,
        Err(e) => return fail(format!("dup output file: {e}")),
    };
    let spawned = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_file(&out_path);
            return fail(format!("cannot run {prog}: {e}"));
        }
    };
    let pid = child.id();
    let mut sleep = Duration::from_millis(1);
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => break exit_of(status),
            Ok(None) => {}
            Err(e) => {
                kill_group(pid);
                let _ = child.wait();
                break Exit::SpawnError(format!("wait: {e}"));
            }
        }
        if start.elapsed() >= timeout {
            kill_group(pid);
            let _ = child.wait();
            break Exit::Timeout;
        }
        thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(20));
    };
    // Stray members of the group (the case's leaked children) go too.
    kill_group(pid);
    let elapsed = start.elapsed();
    let mut output = String::new();
    if let Ok(f) = File::open(&out_path) {
        let mut bytes = Vec::new();
        let _ = f.take(MAX_OUTPUT).read_to_end(&mut bytes);
        output = String::from_utf8_lossy(&bytes).into_owned();
    }
    let _ = fs::remove_file(&out_path);
    RunOutput {
        exit,
        output,
        elapsed,
    }
}

/// Runs `f` over `items` on `workers` threads; results come back in input order.
/// `on_done` is called (from the calling thread) as each result arrives.
pub fn parallel_map<T, R, F, D>(items: Vec<T>, workers: usize, f: F, mut on_done: D) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    D: FnMut(&T, &R),
{
    let n = items.len();
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            let tx = tx.clone();
            let (items, f, next) = (&items, &f, &next);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if tx.send((i, f(&items[i]))).is_err() {
                    break;
                }
            });
        }
        // Only the workers hold senders now: the receiver ends when they do.
        drop(tx);
        for (i, r) in rx.iter() {
            on_done(&items[i], &r);
            slots[i] = Some(r);
        }
    });
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    fn scratch() -> PathBuf {
        // run() removes its output file, so the shared temp directory is fine.
        std::env::temp_dir()
    }

    #[test]
    fn captures_status_and_output() {
        let r = run(
            &sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
            &scratch(),
        );
        assert_eq!(r.exit, Exit::Status(3));
        assert!(r.output.contains("out\n"));
        assert!(r.output.contains("err\n"));
        assert!(!r.passed());
    }

    #[test]
    fn reports_signals() {
        let r = run(&sh("kill -SEGV $$"), Duration::from_secs(10), &scratch());
        assert_eq!(r.exit, Exit::Signal(libc::SIGSEGV));
    }

    #[test]
    fn times_out_and_kills_the_group() {
        let start = Instant::now();
        // The background sleep is in the same group and must die too.
        let r = run(
            &sh("sleep 30 & sleep 30; echo never"),
            Duration::from_millis(200),
            &scratch(),
        );
        assert_eq!(r.exit, Exit::Timeout);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(!r.output.contains("never"));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let r = run(
            &["/nonexistent/program".to_string()],
            Duration::from_secs(1),
            &scratch(),
        );
        assert!(matches!(r.exit, Exit::SpawnError(_)));
    }

    #[test]
    fn parallel_map_keeps_order() {
        let mut seen = 0;
        let out = parallel_map((0..50).collect(), 3, |x: &i32| x * 2, |_, _| seen += 1);
        assert_eq!(out, (0..50).map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(seen, 50);
        let empty: Vec<i32> = parallel_map(Vec::<i32>::new(), 2, |x| *x, |_, _| {});
        assert!(empty.is_empty());
    }
}

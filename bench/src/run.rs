//! Running one command with captured output, a wall clock, a timeout that kills
//! its whole process tree, and an optional hook called when it prints `rvbench-ready`.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::parse::READY_LINE;
use crate::proc;

/// How long to wait for stdout/stderr to reach end-of-file once the command exited
/// (a process it left behind may still hold them).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Output<T> {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From just before spawn to the exit of the command (not its reaping).
    pub elapsed: Duration,
    pub timed_out: bool,
    /// What the ready hook returned, if the command printed the ready line.
    pub sample: Option<T>,
}

/// Runs `argv` in `cwd` with exactly `env`, stdin from /dev/null, in its own
/// process group.
pub fn run<T>(
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
    on_ready: Option<&mut dyn FnMut(u32) -> T>,
) -> io::Result<Output<T>> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);

    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id();

    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (out_tx, out_rx) = mpsc::channel::<String>();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    thread::spawn(move || {
        let mut r = BufReader::new(&mut stdout);
        let mut all = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if String::from_utf8_lossy(&line).trim_end() == READY_LINE {
                        let _ = ready_tx.send(());
                    }
                    all.extend_from_slice(&line);
                }
            }
        }
        let _ = out_tx.send(String::from_utf8_lossy(&all).into_owned());
    });
    let (err_tx, err_rx) = mpsc::channel::<String>();
    let mut stderr = child.stderr.take().expect("stderr is piped");
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        let _ = err_tx.send(String::from_utf8_lossy(&all).into_owned());
    });

    // The watchdog kills the tree on timeout, but never after the child was seen
    // to exit: `exited` is set under the lock before the pid is reaped.
    let exited = Arc::new(Mutex::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    {
        let exited = Arc::clone(&exited);
        let timed_out = Arc::clone(&timed_out);
        thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                let exited = exited.lock().unwrap_or_else(|e| e.into_inner());
                if !*exited {
                    timed_out.store(true, Ordering::SeqCst);
                    proc::kill_tree(pid);
                }
            }
        });
    }

    let sample = match on_ready {
        Some(hook) => match ready_rx.recv_timeout(timeout) {
            Ok(()) => Some(hook(pid)),
            Err(_) => None,
        },
        None => None,
    };

    wait_exit_keep_zombie(pid)?;
    let elapsed = start.elapsed();
    *exited.lock().unwrap_or_else(|e| e.into_inner()) = true;
    let status = child.wait()?;
    drop(done_tx);

    let stdout = out_rx
        .recv_timeout(DRAIN_TIMEOUT)
        .unwrap_or_else(|_| "(stdout still open after the command exited)".into());
    let stderr = err_rx
        .recv_timeout(DRAIN_TIMEOUT)
        .unwrap_or_else(|_| "(stderr still open after the command exited)".into());
    Ok(Output {
        status,
        stdout,
        stderr,
        elapsed,
        timed_out: timed_out.load(Ordering::SeqCst),
        sample,
    })
}

/// Waits until `pid` has exited without reaping it (so its pid cannot be reused
/// while the watchdog might still signal it).
fn wait_exit_keep_zombie(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
        let r = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

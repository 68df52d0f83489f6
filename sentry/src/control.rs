//! The control server: how the runtime (`rvisor start`, `kill`, `state`, `wait`, `ps`)
//! talks to a running sandbox. The launcher binds a unix socket in the container's state
//! directory and hands the listening descriptor to the Sentry, which serves it from the
//! moment the sandbox is built (the start gate) until the workload's init exits.
//!
//! One request line per connection, one reply line:
//!
//! | request | reply |
//! |---|---|
//! | `state` | `created`, `running` or `stopped` (the workload has exited) |
//! | `start` | `ok` (the workload's first instruction runs after it) |
//! | `signal N all|init` | `ok` (before start: a fatal signal ends the sandbox with it) |
//! | `wait` | `exited W` (W: the init's wait status) when the workload ends |
//! | `ps` | `pids P...` (the sandbox's virtual pids) |
//!
//! Errors are `error TEXT`.

use crate::kernel::{self, signal, Kernel};
use parking_lot::{Condvar, Mutex};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

/// Why the start gate opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// `start`: run the workload.
    Start,
    /// A fatal signal arrived before `start`: the sandbox ends as if killed by it.
    Killed(i32),
}

#[derive(Default)]
struct State {
    gate: Option<Gate>,
    exited: Option<i32>,
}

pub struct Control {
    k: Arc<Kernel>,
    st: Mutex<State>,
    cv: Condvar,
}

/// Serve `listener` (a bound, listening unix socket) for kernel `k` on a thread of its own.
pub fn serve(listener: OwnedFd, k: &Arc<Kernel>) -> Arc<Control> {
    let c = Arc::new(Control {
        k: k.clone(),
        st: Mutex::new(State::default()),
        cv: Condvar::new(),
    });
    let l = UnixListener::from(listener);
    let c2 = c.clone();
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let c = c2.clone();
                // `wait` blocks until the end: each connection gets its own thread.
                let _ = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || c.handle(conn));
            }
        })
        .expect("spawn the control thread");
    c
}

impl Control {
    /// Block until `start` (or a fatal signal) arrives.
    pub fn wait_start(&self) -> Gate {
        let mut st = self.st.lock();
        loop {
            if let Some(g) = st.gate {
                return g;
            }
            self.cv.wait(&mut st);
        }
    }

    /// The workload ended with wait status `status`: answer every `wait`. Returns once
    /// the waiters have had their answer written (the process exits right after).
    pub fn finish(&self, status: i32) {
        let mut st = self.st.lock();
        st.exited = Some(status);
        self.cv.notify_all();
        drop(st);
        // Give the connection threads a moment to write their replies.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    fn handle(&self, conn: UnixStream) {
        let mut line = String::new();
        let mut r = BufReader::new(&conn);
        if r.read_line(&mut line).is_err() {
            return;
        }
        let reply = self.request(line.trim());
        let mut w = &conn;
        let _ = w.write_all(format!("{reply}\n").as_bytes());
    }

    fn request(&self, req: &str) -> String {
        let words: Vec<&str> = req.split_whitespace().collect();
        match words.as_slice() {
            ["state"] => {
                let st = self.st.lock();
                match (st.gate, st.exited) {
                    (_, Some(_)) => "stopped".into(),
                    (None, _) => "created".into(),
                    (Some(_), None) => "running".into(),
                }
            }
            ["start"] => {
                let mut st = self.st.lock();
                match st.gate {
                    None => {
                        st.gate = Some(Gate::Start);
                        self.cv.notify_all();
                        "ok".into()
                    }
                    Some(_) => "error the container has already been started".into(),
                }
            }
            ["signal", n, scope] => {
                let Ok(sig) = n.parse::<i32>() else {
                    return format!("error bad signal {n:?}");
                };
                if !(0..=64).contains(&sig) {
                    return format!("error bad signal {sig}");
                }
                self.signal(sig, *scope == "all")
            }
            ["wait"] => {
                let mut st = self.st.lock();
                loop {
                    if let Some(s) = st.exited {
                        return format!("exited {s}");
                    }
                    self.cv.wait(&mut st);
                }
            }
            ["ps"] => {
                let mut pids: Vec<i32> = self.k.table.lock().procs.keys().copied().collect();
                pids.sort_unstable();
                let v: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
                format!("pids {}", v.join(" "))
            }
            _ => format!("error unknown request {req:?}"),
        }
    }

    fn signal(&self, sig: i32, all: bool) -> String {
        {
            let mut st = self.st.lock();
            if st.gate.is_none() {
                // Nothing runs yet: a signal whose default action ends a process ends
                // the sandbox; others are dropped (as for a process that ignores them).
                if matches!(
                    signal::default_action(sig),
                    signal::Default_::Term | signal::Default_::Core
                ) {
                    st.gate = Some(Gate::Killed(sig));
                    self.cv.notify_all();
                }
                return "ok".into();
            }
        }
        if sig == 0 {
            return "ok".into();
        }
        let tgs: Vec<Arc<kernel::ThreadGroup>> = {
            let t = self.k.table.lock();
            t.procs
                .iter()
                .filter(|(pid, p)| (all || **pid == 1) && p.zombie.is_none())
                .map(|(_, p)| p.tg.clone())
                .collect()
        };
        for tg in tgs {
            signal::send_external(&self.k, &tg, signal::SigInfo::kernel(sig));
        }
        "ok".into()
    }
}

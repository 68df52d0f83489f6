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
//! | `ps` | `procs PID:PPID:UID:HOSTPID:CPUNS:CMD ...` (one per process; HOSTPID: the host process holding its address space, as the sandbox sees pids, or -1; CMD: hex of its cmdline, NUL-separated, or of `[comm]`) |
//! | `exec UID GID GROUPS CWD ARGV ENV CAPS NNP` + stdio descriptors (SCM_RIGHTS) | `started PID`, then `exited W` |
//! | `signal N pid P` | `ok` (to one process, e.g. an exec'd one) |
//! | `stats` | `stats MEM_USED MEM_LIMIT NPROCS` (bytes; limit 0: none) |
//! | `update memory N` | `ok` (the sandbox's memory limit, bytes; 0: none) |
//! | `dns ADDR` + a UDP socket connected to docker's resolver | `ok` (see net/dns.rs) |
//! | `net NAME INDEX MAC MTU addr=IP/P... [gw4=IP] [gw6=IP] [route=IP/P,VIA]...` + a packet socket | `ok` (see net/ext.rs) |
//!
//! In `exec`, GROUPS is a comma-separated list or `-`; CWD is hex; ARGV and ENV are
//! comma-separated hex strings (or `-` for none); CAPS is the capability sets in hex,
//! `EFFECTIVE,PERMITTED,INHERITABLE,BOUNDING` (or `-`: root's full set, none for
//! others); NNP is 1 to set no_new_privs. Errors are `error TEXT`.

use crate::kernel::{self, signal, Creds, Kernel};
use crate::vfs::{fdtable::FdTable, host::HostFile, OpenFile, Path, O_RDWR};
use parking_lot::{Condvar, Mutex};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
    /// Limits and no_new_privs of the container's process, for exec'd ones too.
    exec_opts: crate::syscalls::ProcOpts,
    st: Mutex<State>,
    cv: Condvar,
}

/// Serve `listener` (a bound, listening unix socket) for kernel `k` on a thread of its own.
pub fn serve(
    listener: OwnedFd,
    k: &Arc<Kernel>,
    exec_opts: crate::syscalls::ProcOpts,
) -> Arc<Control> {
    let c = Arc::new(Control {
        k: k.clone(),
        exec_opts,
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
        let mut buf = vec![0u8; 256 * 1024];
        let Ok((n, fds)) = recv_with_fds(&conn, &mut buf) else {
            return;
        };
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        let line = line.lines().next().unwrap_or("").trim().to_string();
        let mut w = &conn;
        if line.starts_with("exec ") {
            match self.exec(&line, fds) {
                Ok(pid) => {
                    if w.write_all(format!("started {pid}\n").as_bytes()).is_err() {
                        return;
                    }
                    let status = self.wait_exec(pid);
                    let _ = w.write_all(format!("exited {status}\n").as_bytes());
                }
                Err(e) => {
                    let _ = w.write_all(format!("error {e}\n").as_bytes());
                }
            }
            return;
        }
        let reply = match line.strip_prefix("net ") {
            Some(args) => match crate::net::ext::attach(&self.k, args, fds) {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("error {e}"),
            },
            None => match line.strip_prefix("dns ") {
                Some(a) => self.dns(a, fds),
                None => self.request(&line),
            },
        };
        let _ = w.write_all(format!("{reply}\n").as_bytes());
    }

    fn dns(&self, addr: &str, fds: Vec<OwnedFd>) -> String {
        let (Ok(a), [_]) = (addr.parse(), fds.as_slice()) else {
            return format!("error dns: expected an address and one socket, got {addr:?}");
        };
        let fd = fds.into_iter().next().expect("one");
        match crate::net::dns::serve(&self.k, a, fd) {
            Ok(()) => "ok".into(),
            Err(e) => format!("error {e}"),
        }
    }

    /// Wait for a process started by `exec` to exit; its wait status.
    fn wait_exec(&self, pid: i32) -> i32 {
        let mut ex = self.k.exec_exits.lock();
        loop {
            if let Some(s) = ex.remove(&pid) {
                return s;
            }
            self.k.exec_done.wait(&mut ex);
        }
    }

    /// Start a process in the running sandbox, in init's root, with `fds` as its
    /// descriptors 0, 1, 2, ...
    fn exec(&self, line: &str, fds: Vec<OwnedFd>) -> Result<i32, String> {
        {
            let st = self.st.lock();
            if st.gate != Some(Gate::Start) || st.exited.is_some() {
                return Err("the container is not running".into());
            }
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() != 9 {
            return Err("malformed exec request".into());
        }
        let num = |s: &str| s.parse::<u32>().map_err(|_| format!("bad number {s:?}"));
        let (uid, gid) = (num(w[1])?, num(w[2])?);
        let groups = if w[3] == "-" {
            vec![]
        } else {
            w[3].split(',').map(num).collect::<Result<Vec<_>, _>>()?
        };
        let cwd = unhex(w[4])?;
        let list = |s: &str| -> Result<Vec<Vec<u8>>, String> {
            if s == "-" {
                return Ok(vec![]);
            }
            s.split(',').map(unhex).collect()
        };
        let (argv, envp) = (list(w[5])?, list(w[6])?);
        if argv.is_empty() {
            return Err("exec: no command".into());
        }
        let init = self
            .k
            .task(1)
            .ok_or_else(|| "the container's init has exited".to_string())?;
        let root = init.fsctx().root.lock().clone();
        let mut creds = Creds::new(uid, gid);
        creds.groups = groups;
        if w[7] != "-" {
            let sets = w[7]
                .split(',')
                .map(|x| u64::from_str_radix(x, 16).map_err(|_| format!("bad capabilities {x:?}")))
                .collect::<Result<Vec<u64>, String>>()?;
            let [e, p, i, b] = sets[..] else {
                return Err("capabilities: expected four sets".into());
            };
            creds.cap_effective = e & kernel::CAP_FULL;
            creds.cap_permitted = p & kernel::CAP_FULL;
            creds.cap_inheritable = i & kernel::CAP_FULL;
            creds.cap_bset = b & kernel::CAP_FULL;
        }
        let no_new_privs = match w[8] {
            "0" => false,
            "1" => true,
            x => return Err(format!("bad no_new_privs {x:?}")),
        };
        let walk = crate::vfs::Walk {
            root: &root,
            creds: &creds,
            mounts: &self.k.mounts,
            task: &init,
        };
        let cwd_path: Path = walk
            .walk(&root, &cwd, true)
            .map_err(|e| format!("cwd {}: {}", String::from_utf8_lossy(&cwd), io_err(e)))?;
        // A command without a slash is looked up in its PATH, inside the sandbox.
        let name = argv[0].clone();
        let found = crate::search_path(&name, &envp, |c| {
            walk.walk(&cwd_path, c, true)
                .is_ok_and(|p| !p.dentry.inode.stat().is_dir())
        });
        let exe = if name.contains(&b'/') {
            Some(name.clone())
        } else {
            found
        };
        let Some(exe) = exe else {
            return Err(format!(
                "exec: {}: No such file or directory",
                String::from_utf8_lossy(&name)
            ));
        };
        let files = FdTable::default();
        for (i, fd) in fds.into_iter().enumerate() {
            let h = HostFile::new(fd);
            let f = OpenFile::new(h.clone(), Some(h.path()), O_RDWR);
            files.install_at(i as i32, f, false);
        }
        let o = crate::syscalls::ProcOpts {
            umask: 0o022,
            no_new_privs,
            ..self.exec_opts.clone()
        };
        crate::syscalls::new_process(
            &self.k, false, root, cwd_path, files, exe, argv, envp, creds, &o,
        )
        .map_err(|(e, p)| format!("exec: {p}: {}", io_err(e)))
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
            ["signal", n, "pid", p] => {
                let (Ok(sig), Ok(pid)) = (n.parse::<i32>(), p.parse::<i32>()) else {
                    return format!("error bad signal request {req:?}");
                };
                let tg = self.k.table.lock().procs.get(&pid).map(|p| p.tg.clone());
                match tg {
                    Some(tg) if (1..=64).contains(&sig) => {
                        signal::send_external(&self.k, &tg, signal::SigInfo::kernel(sig));
                        "ok".into()
                    }
                    Some(_) => format!("error bad signal {sig}"),
                    None => format!("error no process {pid}"),
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
            ["stats"] => {
                let mf = crate::memfile::memfile();
                let n = self.k.table.lock().procs.len();
                format!(
                    "stats {} {} {n}",
                    mf.used_bytes(),
                    mf.limit_bytes().unwrap_or(0)
                )
            }
            ["update", "memory", n] => match n.parse::<u64>() {
                Ok(v) => {
                    crate::memfile::memfile().set_limit(if v == 0 { u64::MAX } else { v });
                    "ok".into()
                }
                Err(_) => format!("error bad memory limit {n:?}"),
            },
            ["ps"] => self.ps(),
            _ => format!("error unknown request {req:?}"),
        }
    }

    /// One entry per live process. Names each stub process after its process first, so
    /// that host tools reading the host pids see what runs there.
    fn ps(&self) -> String {
        let procs: Vec<(i32, i32, Arc<kernel::ThreadGroup>, Vec<i32>)> = {
            let t = self.k.table.lock();
            t.procs
                .iter()
                .filter(|(_, p)| p.zombie.is_none())
                .map(|(pid, p)| (*pid, p.parent, p.tg.clone(), p.threads.clone()))
                .collect()
        };
        let mut out = vec![];
        for (pid, ppid, tg, threads) in procs {
            // The leader, or any thread left when it has exited.
            let Some(t) = std::iter::once(pid)
                .chain(threads)
                .find_map(|tid| self.k.task(tid))
            else {
                continue;
            };
            let name = t.name.lock().clone();
            let mm = t.mm();
            let host = mm.aspace.host_pid().unwrap_or(-1);
            let _ = mm.aspace.set_name(&name);
            let (a, b) = mm.inner.lock().arg_range;
            let mut cmd = if b > a {
                mm.read_vec(a, (b - a) as usize).unwrap_or_default()
            } else {
                vec![]
            };
            while cmd.last() == Some(&0) {
                cmd.pop();
            }
            if cmd.is_empty() {
                cmd = [b"[", &name[..], b"]"].concat();
            }
            let u = kernel::acct::group_usage(&self.k, &tg);
            let uid = t.creds.lock().uid;
            out.push((
                pid,
                format!(
                    "{pid}:{ppid}:{uid}:{host}:{}:{}",
                    u.utime + u.stime,
                    hex(&cmd)
                ),
            ));
        }
        out.sort_by_key(|(pid, _)| *pid);
        let v: Vec<String> = out.into_iter().map(|(_, s)| s).collect();
        format!("procs {}", v.join(" "))
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
            // As from an ancestor pid namespace on Linux: the container's init gets
            // only the signals it handles, and SIGKILL and SIGSTOP.
            if tg.tgid == 1
                && sig != signal::SIGKILL
                && sig != signal::SIGSTOP
                && tg.action(sig).handler == signal::SIG_DFL
            {
                continue;
            }
            signal::send_external(&self.k, &tg, signal::SigInfo::kernel(sig));
        }
        "ok".into()
    }
}

fn io_err(e: crate::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("bad hex".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| "bad hex".to_string()))
        .collect()
}

/// One message, with any descriptors passed along it (at most 16).
fn recv_with_fds(conn: &UnixStream, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    const MAX_FDS: usize = 16;
    let mut cmsg = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE((MAX_FDS * 4) as u32) } as usize;
    // SAFETY: recvmsg into the buffers described by msg.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = vec![];
    // SAFETY: walking the control messages the kernel wrote into cmsg.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: c points at a control message header inside cmsg.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN is arithmetic.
            let hdr = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = (h.cmsg_len as usize - hdr) / 4;
            // SAFETY: the data of an SCM_RIGHTS message is `count` descriptors.
            let data = unsafe { libc::CMSG_DATA(c) } as *const i32;
            for i in 0..count {
                // SAFETY: reading descriptor i of the message, which we now own.
                let fd = unsafe { std::ptr::read_unaligned(data.add(i)) };
                // SAFETY: the kernel installed it for us.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        // SAFETY: advancing within the control buffer.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    Ok((n as usize, fds))
}

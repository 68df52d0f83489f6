//! Signal-driven I/O (O_ASYNC, F_SETOWN[_EX], F_SETSIG): SIGIO, or the F_SETSIG signal
//! with si_fd and si_band, to a file's owner when the file becomes ready.
//!
//! A file with O_ASYNC has a `Reg`: a waiter on the file's wait queue whose hook only
//! records each notification. Recorded events become signals outside the notifier's
//! locks: at the end of the notifying task's system call (so the signal is queued
//! before write(2) returns, as on Linux), or on a helper thread for notifications from
//! outside a system call (the network stack, exit).

use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::kernel::Kernel;
use crate::waitq::{Events, Waiter};
use parking_lot::Condvar;
use std::sync::atomic::{AtomicBool, AtomicI32};
use std::sync::{OnceLock, Weak};

pub const O_ASYNC: u32 = 0o20000;
pub const F_OWNER_TID: i32 = 0;
pub const F_OWNER_PID: i32 = 1;
pub const F_OWNER_PGRP: i32 = 2;

const POLL_IN: i32 = 1;
const POLL_OUT: i32 = 2;
const POLL_ERR: i32 = 4;
const POLL_HUP: i32 = 6;
const SI_SIGIO: i32 = -5;

/// fown_struct: who gets the signal, and the ids of whoever named it.
#[derive(Clone, Copy, Default)]
pub struct Owner {
    /// F_OWNER_TID, F_OWNER_PID or F_OWNER_PGRP.
    pub kind: i32,
    /// 0: nobody.
    pub id: i32,
    pub uid: u32,
    pub euid: u32,
    /// F_SETSIG's signal; 0 sends a plain SIGIO.
    pub sig: i32,
}

/// Whether O_ASYNC on `f` sends signals (Linux's `->fasync`): sockets, and files whose
/// operations say so.
pub fn supported(f: &OpenFile) -> bool {
    f.ops.fasync() || (f.inode().is_some() && f.stat().mode & S_IFMT == S_IFSOCK)
}

/// F_SETOWN / F_SETOWN_EX: ESRCH when `id` names nothing of that kind.
pub fn set_owner(f: &OpenFile, t: &Task, kind: i32, id: i32) -> KResult<()> {
    if id != 0 && !exists(&t.kernel, kind, id, false) {
        return Err(ESRCH);
    }
    let c = t.creds();
    let mut o = f.fown.lock();
    o.kind = kind;
    o.id = id;
    o.uid = c.uid;
    o.euid = c.euid;
    Ok(())
}

/// F_GETOWN: the owner (a process group negated), 0 once it is gone.
pub fn get_owner(f: &OpenFile, t: &Task) -> i32 {
    let o = *f.fown.lock();
    if o.id == 0 || !exists(&t.kernel, o.kind, o.id, true) {
        return 0;
    }
    if o.kind == F_OWNER_PGRP {
        -o.id
    } else {
        o.id
    }
}

/// Does `id` name a thread (TID), a process (PID) or a process group? `live`: a pid
/// must still have a task of that kind (F_GETOWN); else any use of the number counts.
fn exists(k: &Kernel, kind: i32, id: i32, live: bool) -> bool {
    let tab = k.table.lock();
    match kind {
        F_OWNER_PGRP => tab.procs.values().any(|p| p.pgid == id),
        F_OWNER_PID if live => tab.procs.contains_key(&id),
        _ => tab.tasks.contains_key(&id) || tab.procs.contains_key(&id),
    }
}

/// A file's O_ASYNC registration.
pub struct Reg {
    file: Weak<OpenFile>,
    kernel: Weak<Kernel>,
    /// The descriptor O_ASYNC was set through: the signal's si_fd.
    fd: AtomicI32,
    waiter: Arc<Waiter>,
    /// poll() at the last notification, to see which events are new.
    last: AtomicU32,
}

/// O_ASYNC turned on or off through descriptor `fd` (the caller checked `supported`).
pub fn set(f: &Arc<OpenFile>, t: &Task, fd: i32, on: bool) {
    let Some(q) = f.ops.wait_queue() else {
        return;
    };
    let mut g = f.fasync.lock();
    if !on {
        if let Some(r) = g.take() {
            q.remove(&r.waiter);
        }
        return;
    }
    if let Some(r) = g.as_ref() {
        r.fd.store(fd, Ordering::Relaxed);
        return;
    }
    // A terminal names its owner if nobody has (tty_fasync).
    if let Some(pg) = f.ops.tty_pgrp() {
        if f.fown.lock().id == 0 {
            let (kind, id) = match pg {
                0 => (F_OWNER_PID, t.tgid()),
                pg => (F_OWNER_PGRP, pg),
            };
            let _ = set_owner(f, t, kind, id);
        }
    }
    let r = Arc::new_cyclic(|me: &Weak<Reg>| {
        let me = me.clone();
        Reg {
            file: Arc::downgrade(f),
            kernel: Arc::downgrade(&t.kernel),
            fd: AtomicI32::new(fd),
            waiter: Arc::new(Waiter::with_hook(Box::new(move |ev| record(&me, ev)))),
            last: AtomicU32::new(f.ops.poll()),
        }
    });
    q.add(&r.waiter);
    *g = Some(r);
    helper();
}

/// The last reference to an open file is gone: leave its wait queue.
pub fn file_closed(f: &mut OpenFile) {
    if let Some(r) = f.fasync.get_mut().take() {
        if let Some(q) = f.ops.wait_queue() {
            q.remove(&r.waiter);
        }
    }
}

struct Pending {
    list: Mutex<Vec<(Weak<Reg>, Events)>>,
    any: AtomicBool,
    cv: Condvar,
    /// Held while notifications become signals: a flush returns only once every
    /// earlier notification has been sent, whichever thread took it.
    sending: Mutex<()>,
}

fn pending() -> &'static Pending {
    static P: OnceLock<Pending> = OnceLock::new();
    P.get_or_init(|| Pending {
        list: Mutex::new(vec![]),
        any: AtomicBool::new(false),
        cv: Condvar::new(),
        sending: Mutex::new(()),
    })
}

fn record(r: &Weak<Reg>, ev: Events) {
    let p = pending();
    p.list.lock().push((r.clone(), ev));
    p.any.store(true, Ordering::Release);
    p.cv.notify_one();
}

/// The helper thread for notifications no system call's end will send.
fn helper() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let r = std::thread::Builder::new()
            .name("sigio".into())
            .spawn(|| loop {
                {
                    let p = pending();
                    let mut l = p.list.lock();
                    while l.is_empty() {
                        p.cv.wait(&mut l);
                    }
                }
                flush();
            });
        if let Err(e) = r {
            tracing::warn!("signal-driven I/O helper thread: {e}");
        }
    });
}

/// Send the signals of every recorded notification. Called at the end of each system
/// call; cheap when there are none.
pub fn flush() {
    let p = pending();
    if !p.any.load(Ordering::Acquire) {
        return;
    }
    let _g = p.sending.lock();
    let batch = {
        let mut l = p.list.lock();
        p.any.store(false, Ordering::Release);
        std::mem::take(&mut *l)
    };
    let mut seen: Vec<(*const Reg, Events)> = vec![];
    for (w, ev) in batch {
        if seen.contains(&(w.as_ptr(), ev)) {
            continue;
        }
        seen.push((w.as_ptr(), ev));
        if let Some(r) = w.upgrade() {
            notified(&r, ev);
        }
    }
}

fn notified(r: &Reg, ev: Events) {
    let (Some(f), Some(k)) = (r.file.upgrade(), r.kernel.upgrade()) else {
        return;
    };
    let now = f.ops.poll();
    let last = r.last.swap(now, Ordering::Relaxed);
    let new = now & !last;
    // A socket that stops hanging up while writable has connected.
    let connected = last & !now & POLLHUP != 0 && now & POLLOUT != 0;
    if f.flags() & O_ASYNC == 0 {
        return;
    }
    let mut reasons = vec![];
    match ev {
        // The notifier said what happened: data came (readers) or room was made
        // (writers), as pipes' kill_fasync calls.
        Some(m) => {
            if m & POLLIN != 0 && f.readable() {
                reasons.push(POLL_IN);
            }
            if m & POLLOUT != 0 && f.writable() {
                reasons.push(POLL_OUT);
            }
        }
        // Otherwise from readiness: input while there is any, the rest when new (or,
        // for output, when the socket has just connected).
        None => {
            if new & POLLHUP != 0 {
                reasons.push(POLL_HUP);
            } else if now & POLLIN != 0 {
                reasons.push(POLL_IN);
            } else if new & POLLOUT != 0 || connected {
                reasons.push(POLL_OUT);
            } else if new & POLLERR != 0 {
                reasons.push(POLL_ERR);
            }
        }
    }
    let o = *f.fown.lock();
    for why in reasons {
        send(&k, &o, r.fd.load(Ordering::Relaxed), why);
    }
}

/// si_band for each POLL_* reason (Linux's band_table).
fn band(why: i32) -> u64 {
    (match why {
        POLL_IN => POLLIN | POLLRDNORM,
        POLL_OUT => POLLOUT | POLLWRNORM | 0x200,
        POLL_ERR => POLLERR,
        POLL_HUP => POLLHUP | POLLERR,
        _ => 0,
    }) as u64
}

fn info(sig: i32, fd: i32, why: i32) -> SigInfo {
    use signal::*;
    if sig == 0 {
        return SigInfo::kernel(SIGIO);
    }
    // Signals with codes of their own get SI_SIGIO, so the code is not ambiguous.
    let code = if [SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGCHLD, SIGSYS].contains(&sig) {
        SI_SIGIO
    } else {
        why
    };
    let mut s = SigInfo::new(sig, code);
    s.set_u64(16, band(why));
    s.set_i32(24, fd);
    s
}

/// send_sigio: to the owner's thread, process or process group, where the ids that
/// set the owner may signal (sigio_perm).
fn send(k: &Kernel, o: &Owner, fd: i32, why: i32) {
    if o.id == 0 {
        return;
    }
    let may = |t: &Task| {
        let c = t.creds();
        o.euid == 0 || [c.uid, c.suid].contains(&o.euid) || [c.uid, c.suid].contains(&o.uid)
    };
    let si = info(o.sig, fd, why);
    if o.kind == F_OWNER_TID {
        if let Some(t) = k.task(o.id).filter(|t| may(t)) {
            signal::send_to_task(&t, si);
        }
        return;
    }
    let groups: Vec<_> = {
        let tab = k.table.lock();
        tab.procs
            .iter()
            .filter(|(id, p)| {
                p.zombie.is_none()
                    && if o.kind == F_OWNER_PGRP {
                        p.pgid == o.id
                    } else {
                        **id == o.id
                    }
            })
            .map(|(_, p)| p.tg.clone())
            .collect()
    };
    for tg in groups {
        if k.task(tg.tgid).is_some_and(|t| !may(&t)) {
            continue;
        }
        signal::send_to_group(k, &tg, SigInfo(si.0));
    }
}

//! POSIX message queues: mq_open, mq_unlink, mq_timedsend, mq_timedreceive, mq_notify,
//! mq_getsetattr (the queues themselves are in `vfs::mqueue`).

use super::*;
use crate::kernel::cap;
use crate::vfs::mqueue::{
    MqFile, Queue, MQ_PRIO_MAX, RLIMIT_MSGQUEUE, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD,
};
use crate::vfs::{
    may_access, Dentry, Inode, O_ACCMODE, O_CREAT, O_EXCL, O_NONBLOCK, S_IFMT, S_IFSOCK,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3, a4) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4));
    Some(match nr {
        240 => open(c, a0, a1 as u32, a2 as u32, a3),
        241 => unlink(c, a0),
        242 => send(c, a0, a1, a2, a3, a4),
        243 => receive(c, a0, a1, a2, a3, a4),
        244 => notify(c, a0, a1),
        245 => getsetattr(c, a0, a1, a2),
        _ => return None,
    })
}

/// The queue name the kernel sees (glibc strips the leading '/'): one path component.
fn name(c: &Ctx, p: u64) -> KResult<Vec<u8>> {
    let n = c.cstr(p)?;
    if n.is_empty() {
        return Err(ENOENT);
    }
    if n.contains(&b'/') || n == b"." || n == b".." {
        return Err(EACCES);
    }
    if n.len() > 255 {
        return Err(ENAMETOOLONG);
    }
    Ok(n)
}

fn open(c: &Ctx, namep: u64, flags: u32, mode: u32, attrp: u64) -> SysResult {
    // struct mq_attr: flags, maxmsg, msgsize, curmsgs, 4 reserved longs.
    let attr = if attrp != 0 {
        let a: [i64; 8] = c.t.mm().read_obj(attrp)?;
        Some((a[1], a[2]))
    } else {
        None
    };
    let n = name(c, namep)?;
    let (fs, mnt) = c.t.ns().ipc.mqueue().clone();
    let creds = c.t.creds();
    let q = match fs.get(&n) {
        Some(q) => {
            if flags & (O_CREAT | O_EXCL) == O_CREAT | O_EXCL {
                return Err(EEXIST);
            }
            let acc = match flags & O_ACCMODE {
                0 => 4,
                1 => 2,
                2 => 6,
                _ => return Err(EINVAL),
            };
            if !may_access(&q.stat(), &creds, acc) {
                return Err(EACCES);
            }
            q
        }
        None if flags & O_CREAT == 0 => return Err(ENOENT),
        None => {
            let umask = c.t.fsctx().umask.load(std::sync::atomic::Ordering::Relaxed);
            let rlimit = c.t.rlimit(RLIMIT_MSGQUEUE).0;
            fs.create_queue(&n, mode & !umask, &creds, attr, rlimit)?
        }
    };
    let path = Path {
        mnt: mnt.clone(),
        dentry: Arc::new(Dentry {
            name: n,
            parent: Some(mnt.root.clone()),
            inode: q.clone(),
        }),
    };
    let file = OpenFile::new(
        Arc::new(MqFile { q }),
        Some(path),
        flags & !O_CREAT & !O_EXCL,
    );
    let lim = c.t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
    // Queue descriptors are always close-on-exec.
    Ok(c.t.files().install(file, true, 0, lim)? as u64)
}

fn unlink(c: &Ctx, namep: u64) -> SysResult {
    let n = name(c, namep)?;
    let fs = c.t.ns().ipc.mqueue().0.clone();
    let q = fs.get(&n).ok_or(ENOENT)?;
    // The directory is sticky and owned by root: only the queue's owner (or
    // CAP_FOWNER) may remove it.
    let creds = c.t.creds();
    if creds.fsuid != q.stat().uid && creds.fsuid != 0 && !creds.has_cap(cap::FOWNER) {
        return Err(EPERM);
    }
    fs.remove(&n)?;
    Ok(0)
}

/// The queue `fd` names, if it is open for `want` (4 read, 2 write).
fn queue(c: &Ctx, fd: u64, want: u32) -> KResult<(Arc<OpenFile>, Arc<Queue>)> {
    let f = c.fd(fd).map_err(|_| EBADF)?;
    let q = f
        .ops
        .as_any()
        .downcast_ref::<MqFile>()
        .ok_or(EBADF)?
        .q
        .clone();
    if (want == 4 && !f.readable()) || (want == 2 && !f.writable()) {
        return Err(EBADF);
    }
    Ok((f, q))
}

/// An absolute CLOCK_REALTIME timeout as a deadline (EINVAL when malformed).
fn deadline(c: &Ctx, p: u64) -> KResult<Option<Instant>> {
    if p == 0 {
        return Ok(None);
    }
    let ts: [i64; 2] = c.t.mm().read_obj(p)?;
    if ts[0] < 0 || !(0..1_000_000_000).contains(&ts[1]) {
        return Err(EINVAL);
    }
    let at = Duration::new(ts[0] as u64, ts[1] as u32);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = at.saturating_sub(now);
    Ok(Some(Instant::now().checked_add(left).unwrap_or_else(
        || Instant::now() + Duration::from_secs(1 << 32),
    )))
}

fn send(c: &Ctx, fd: u64, msgp: u64, len: u64, prio: u64, tsp: u64) -> SysResult {
    if prio >= MQ_PRIO_MAX as u64 {
        return Err(EINVAL);
    }
    let dl = deadline(c, tsp)?;
    let (f, q) = queue(c, fd, 2)?;
    if len > q.msgsize {
        return Err(EMSGSIZE);
    }
    let msg = c.t.mm().read_vec(msgp, len as usize)?;
    q.send(&f, c.t, msg, prio as u32, dl)?;
    Ok(0)
}

fn receive(c: &Ctx, fd: u64, msgp: u64, len: u64, priop: u64, tsp: u64) -> SysResult {
    let dl = deadline(c, tsp)?;
    let (f, q) = queue(c, fd, 4)?;
    if len < q.msgsize {
        return Err(EMSGSIZE);
    }
    let (msg, prio) = q.receive(&f, c.t, dl)?;
    if priop != 0 {
        c.t.mm().write_obj(priop, &prio)?;
    }
    c.t.mm().write(msgp, &msg)?;
    Ok(msg.len() as u64)
}

fn notify(c: &Ctx, fd: u64, sevp: u64) -> SysResult {
    let how = if sevp == 0 {
        None
    } else {
        // struct sigevent (64 bytes): sigval, signo, notify, ...
        let b: [u8; 64] = c.t.mm().read_obj(sevp)?;
        let value = u64::from_le_bytes(b[0..8].try_into().expect("8"));
        let signo = i32::from_le_bytes(b[8..12].try_into().expect("4"));
        let kind = i32::from_le_bytes(b[12..16].try_into().expect("4"));
        match kind {
            SIGEV_NONE => {}
            SIGEV_SIGNAL if (0..=64).contains(&signo) => {}
            SIGEV_THREAD => {
                // The raw call wants a netlink socket in sigev_signo to send the
                // 32-byte cookie at sigev_value to. The Sentry has no netlink
                // sockets, so any descriptor given is refused as Linux refuses a
                // socket of another family (glibc's mq_notify already gave ENOSYS,
                // since its socket(AF_NETLINK) failed).
                let _cookie: [u8; 32] = c.t.mm().read_obj(value)?;
                let s = c.fd(signo as u32 as u64).map_err(|_| EBADF)?;
                if s.stat().mode & S_IFMT != S_IFSOCK {
                    return Err(ENOTSOCK);
                }
                return Err(EINVAL);
            }
            _ => return Err(EINVAL),
        }
        Some((kind, signo, value))
    };
    let (_, q) = queue(c, fd, 0)?;
    q.set_notify(c.t, how)?;
    Ok(0)
}

fn getsetattr(c: &Ctx, fd: u64, newp: u64, oldp: u64) -> SysResult {
    let new = if newp != 0 {
        let a: [i64; 8] = c.t.mm().read_obj(newp)?;
        if a[0] & !(O_NONBLOCK as i64) != 0 {
            return Err(EINVAL);
        }
        Some(a[0])
    } else {
        None
    };
    let (f, q) = queue(c, fd, 0)?;
    let (maxmsg, msgsize, cur) = q.attr();
    let old = [
        (f.flags() & O_NONBLOCK) as i64,
        maxmsg as i64,
        msgsize as i64,
        cur as i64,
        0,
        0,
        0,
        0,
    ];
    if let Some(fl) = new {
        let nb = if fl != 0 { O_NONBLOCK } else { 0 };
        let _ = f.flags.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |x| Some((x & !O_NONBLOCK) | nb),
        );
    }
    if oldp != 0 {
        c.t.mm().write_obj(oldp, &old)?;
    }
    Ok(0)
}

//! Pipes and FIFOs.

use super::*;
use std::collections::VecDeque;

pub const PIPE_BUF: usize = 4096;
const DEFAULT_CAPACITY: usize = 65536;
/// /proc/sys/fs/pipe-max-size: the most an unprivileged F_SETPIPE_SZ may ask for.
const MAX_CAPACITY: usize = 1 << 20;

pub struct Pipe {
    inner: Mutex<PipeInner>,
    pub wq: WaitQueue,
}

struct PipeInner {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// Writers ever seen: a FIFO read before any writer opened it blocks, not EOF.
    had_writer: bool,
    /// Opens of each end so far: a blocking FIFO open waits for the other end to be
    /// opened, even if it is closed again before the opener wakes.
    reader_opens: u64,
    writer_opens: u64,
    cap: usize,
}

impl Pipe {
    pub fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            inner: Mutex::new(PipeInner {
                buf: VecDeque::new(),
                readers: 0,
                writers: 0,
                had_writer: false,
                reader_opens: 0,
                writer_opens: 0,
                cap: DEFAULT_CAPACITY,
            }),
            wq: WaitQueue::default(),
        })
    }
}

/// One end of a pipe, as an open file's operations.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    read: bool,
    write: bool,
}

impl PipeEnd {
    pub fn new(pipe: &Arc<Pipe>, read: bool, write: bool) -> Arc<PipeEnd> {
        let mut i = pipe.inner.lock();
        if read {
            i.readers += 1;
            i.reader_opens += 1;
        }
        if write {
            i.writers += 1;
            i.writer_opens += 1;
            i.had_writer = true;
        }
        drop(i);
        pipe.wq.notify_events(0);
        Arc::new(PipeEnd {
            pipe: pipe.clone(),
            read,
            write,
        })
    }
}

impl PipeEnd {
    pub fn capacity(&self) -> usize {
        self.pipe.inner.lock().cap
    }

    /// F_SETPIPE_SZ: rounded up to a power-of-two number of pages.
    pub fn set_capacity(&self, want: usize, privileged: bool) -> KResult<usize> {
        if want > (1 << 31) {
            return Err(EINVAL);
        }
        let n = want.max(4096).next_power_of_two();
        if n > MAX_CAPACITY && !privileged {
            return Err(EPERM);
        }
        let mut i = self.pipe.inner.lock();
        if n < i.buf.len() {
            return Err(EBUSY);
        }
        i.cap = n;
        drop(i);
        self.pipe.wq.notify_events(0);
        Ok(n)
    }

    /// tee(2): copy up to `n` bytes without consuming them.
    pub fn peek(&self, n: usize) -> Vec<u8> {
        let i = self.pipe.inner.lock();
        let (a, b) = i.buf.as_slices();
        let k = n.min(a.len());
        let mut v = a[..k].to_vec();
        v.extend_from_slice(&b[..(n - k).min(b.len())]);
        v
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut i = self.pipe.inner.lock();
        if self.read {
            i.readers -= 1;
        }
        if self.write {
            i.writers -= 1;
        }
        // The last of one side gone: SIGIO to the other (pipe_release).
        let ev = if (i.readers == 0) != (i.writers == 0) {
            POLLIN | POLLOUT
        } else {
            0
        };
        drop(i);
        self.pipe.wq.notify_events(ev);
    }
}

/// A pair of open files for pipe(2): (read end, write end).
pub fn pipe_pair(flags: u32) -> (Arc<OpenFile>, Arc<OpenFile>) {
    let p = Pipe::new();
    let nb = flags & O_NONBLOCK;
    // Both ends share one pipefs inode: /proc/PID/fd/N stats as a FIFO and opening it
    // again makes a new reader or writer of the same pipe.
    let ino = super::anonfs::next_ino();
    let (uid, gid) = crate::kernel::current()
        .map(|t| t.creds())
        .map(|c| (c.fsuid, c.fsgid))
        .unwrap_or((0, 0));
    let t = now();
    let stat = Stat {
        ino,
        mode: S_IFIFO | 0o600,
        nlink: 1,
        uid,
        gid,
        blksize: 4096,
        atime: t,
        mtime: t,
        ctime: t,
        ..Default::default()
    };
    let pipe = p.clone();
    let opener = Box::new(move |f: u32| open_fifo(&pipe, f, true));
    let path = super::anonfs::path(format!("pipe:[{ino}]"), stat, opener);
    (
        OpenFile::new(PipeEnd::new(&p, true, false), Some(path.clone()), nb),
        OpenFile::new(PipeEnd::new(&p, false, true), Some(path), O_WRONLY | nb),
    )
}

/// Opens an end of a FIFO, or reopens an anonymous pipe through /proc/PID/fd
/// (`anonymous`): as in Linux's fifo_open, only FIFOs wait for the other end or give ENXIO.
pub fn open_fifo(p: &Arc<Pipe>, flags: u32, anonymous: bool) -> KResult<Arc<dyn FileOps>> {
    let acc = flags & O_ACCMODE;
    if !anonymous && acc == O_WRONLY && flags & O_NONBLOCK != 0 && p.inner.lock().readers == 0 {
        return Err(ENXIO);
    }
    let (read, write) = (acc != O_WRONLY, acc != 0);
    // The other end's opens so far, before this end counts itself.
    let seen = {
        let i = p.inner.lock();
        if read {
            i.writer_opens
        } else {
            i.reader_opens
        }
    };
    let end = PipeEnd::new(p, read, write);
    // A blocking open of one end of a FIFO waits until the other end is opened.
    if !anonymous && flags & O_NONBLOCK == 0 && read != write {
        if let Some(t) = crate::kernel::current() {
            t.block_on(&[&p.wq], None, || {
                let i = p.inner.lock();
                let (now, open) = if read {
                    (i.writer_opens, i.writers)
                } else {
                    (i.reader_opens, i.readers)
                };
                (open > 0 || now != seen).then_some(Ok(()))
            })?;
        }
    }
    Ok(end)
}

/// Copies bytes out of the pipe: its contents, in one or two slices.
pub type Sink<'a> = dyn FnMut(&[u8], &[u8]) -> KResult<()> + 'a;
/// Appends `n` bytes from offset `done` of the writer's buffer to the pipe's contents.
pub type Source<'a> = dyn FnMut(&mut VecDeque<u8>, usize, usize) -> KResult<()> + 'a;

impl PipeEnd {
    /// read(2) of at most `len` bytes, handed to `out` straight from the pipe (for
    /// copying to the reader's memory without a buffer between); nothing is consumed
    /// when `out` fails.
    pub fn read_into(&self, f: &OpenFile, t: &Task, len: usize, out: &mut Sink) -> KResult<usize> {
        if len == 0 {
            return Ok(0);
        }
        let n = t.block_on(&[&self.pipe.wq], None, || {
            let mut i = self.pipe.inner.lock();
            if !i.buf.is_empty() {
                let n = len.min(i.buf.len());
                let (a, b) = i.buf.as_slices();
                let k = n.min(a.len());
                if let Err(e) = out(&a[..k], &b[..n - k]) {
                    return Some(Err(e));
                }
                i.buf.drain(..n);
                return Some(Ok(n));
            }
            if i.writers == 0 && (i.had_writer || f.nonblock()) {
                return Some(Ok(0));
            }
            if f.nonblock() {
                return Some(Err(EAGAIN));
            }
            None
        })?;
        // Room made: writers' SIGIO (POLL_OUT).
        self.pipe.wq.notify_events(POLLOUT);
        Ok(n)
    }

    /// write(2) of `len` bytes that `src` appends straight to the pipe; when `src`
    /// fails, what it appended is taken back.
    pub fn write_from(
        &self,
        f: &OpenFile,
        t: &Task,
        len: usize,
        src: &mut Source,
    ) -> KResult<usize> {
        let mut done = 0;
        while done < len {
            let r = t.block_on(&[&self.pipe.wq], None, || {
                let mut i = self.pipe.inner.lock();
                if i.readers == 0 {
                    return Some(Err(EPIPE));
                }
                let space = i.cap.saturating_sub(i.buf.len());
                let rest = len - done;
                // Writes of at most PIPE_BUF bytes are atomic.
                let need = if len <= PIPE_BUF { rest } else { 1 };
                if space >= need {
                    let n = space.min(rest);
                    let before = i.buf.len();
                    if let Err(e) = src(&mut i.buf, done, n) {
                        i.buf.truncate(before);
                        return Some(Err(e));
                    }
                    return Some(Ok(n));
                }
                if f.nonblock() {
                    return Some(Err(EAGAIN));
                }
                None
            });
            match r {
                Ok(n) => {
                    done += n;
                    // Data came: readers' SIGIO (POLL_IN).
                    self.pipe.wq.notify_events(POLLIN);
                }
                Err(e) if done > 0 && (e == EAGAIN || e.is_restart() || e == EFAULT) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

impl FileOps for PipeEnd {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        self.read_into(f, t, buf.len(), &mut |a, b| {
            buf[..a.len()].copy_from_slice(a);
            buf[a.len()..a.len() + b.len()].copy_from_slice(b);
            Ok(())
        })
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        self.write_from(f, t, buf.len(), &mut |q, done, n| {
            q.extend(&buf[done..done + n]);
            Ok(())
        })
    }

    fn poll(&self) -> u32 {
        let i = self.pipe.inner.lock();
        let mut ev = 0;
        if self.read {
            if !i.buf.is_empty() {
                ev |= POLLIN | POLLRDNORM;
            }
            if i.writers == 0 && i.had_writer {
                ev |= POLLHUP;
            }
        }
        if self.write {
            if i.cap.saturating_sub(i.buf.len()) >= PIPE_BUF {
                ev |= POLLOUT | POLLWRNORM;
            }
            if i.readers == 0 {
                ev |= POLLERR;
            }
        }
        ev
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.wq)
    }

    fn fasync(&self) -> bool {
        true
    }

    fn ioctl(&self, _f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        const FIONREAD: u32 = 0x541b;
        if cmd == FIONREAD {
            let n = self.pipe.inner.lock().buf.len() as i32;
            t.mm().write_obj(arg, &n)?;
            return Ok(0);
        }
        Err(ENOTTY)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

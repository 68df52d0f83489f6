//! The kernel log (what dmesg shows): a ring of records the Sentry writes, read through
//! syslog(2), /dev/kmsg and /proc/kmsg.

use super::Task;
use crate::errno::*;
use crate::vfs::{FileOps, OpenFile, POLLIN, POLLRDNORM};
use crate::waitq::WaitQueue;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// The ring's size in bytes of text, as syslog(SYSLOG_ACTION_SIZE_BUFFER) reports it.
pub const LOG_BUF_LEN: usize = 1 << 17;

pub const KERN: u8 = 0;
pub const USER: u8 = 1;
pub const ERR: u8 = 3;
pub const WARNING: u8 = 4;
pub const NOTICE: u8 = 5;
pub const INFO: u8 = 6;

#[derive(Clone)]
pub struct Record {
    pub seq: u64,
    pub ts_us: u64,
    pub facility: u8,
    pub level: u8,
    pub text: String,
}

impl Record {
    fn prio(&self) -> u32 {
        (self.facility as u32) << 3 | self.level as u32
    }
    /// The syslog(2) form: `<6>[    1.234567] text`.
    pub fn syslog_line(&self) -> String {
        format!(
            "<{}>[{:5}.{:06}] {}\n",
            self.prio(),
            self.ts_us / 1_000_000,
            self.ts_us % 1_000_000,
            self.text
        )
    }
    /// The /dev/kmsg form: `6,42,1234567,-;text`.
    pub fn kmsg_line(&self) -> String {
        let text: String = self
            .text
            .chars()
            .flat_map(|c| {
                if c == '\n' || (c.is_control() && c != '\t') {
                    format!("\\x{:02x}", c as u32).chars().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect();
        format!("{},{},{},-;{}\n", self.prio(), self.seq, self.ts_us, text)
    }
}

struct Inner {
    recs: VecDeque<Record>,
    bytes: usize,
    next_seq: u64,
    /// syslog(2) READ position (destructive reads) and CLEAR point.
    read_seq: u64,
    clear_seq: u64,
}

pub struct Klog {
    inner: Mutex<Inner>,
    pub wq: WaitQueue,
    boot: Instant,
    pub restrict: std::sync::atomic::AtomicBool,
}

impl Klog {
    pub fn new(boot: Instant) -> Klog {
        Klog {
            inner: Mutex::new(Inner {
                recs: VecDeque::new(),
                bytes: 0,
                next_seq: 0,
                read_seq: 0,
                clear_seq: 0,
            }),
            wq: WaitQueue::default(),
            boot,
            restrict: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn log(&self, facility: u8, level: u8, text: impl Into<String>) {
        let ts_us = self.boot.elapsed().as_micros() as u64;
        let mut g = self.inner.lock();
        for line in text.into().lines() {
            let seq = g.next_seq;
            g.next_seq += 1;
            let r = Record {
                seq,
                ts_us,
                facility,
                level,
                text: line.to_string(),
            };
            g.bytes += r.text.len();
            g.recs.push_back(r);
        }
        while g.bytes > LOG_BUF_LEN {
            if let Some(r) = g.recs.pop_front() {
                g.bytes -= r.text.len();
            }
        }
        drop(g);
        self.wq.notify_all();
    }

    pub fn info(&self, text: impl Into<String>) {
        self.log(KERN, INFO, text)
    }

    fn first_seq(g: &Inner) -> u64 {
        g.recs.front().map(|r| r.seq).unwrap_or(g.next_seq)
    }

    pub fn next_seq(&self) -> u64 {
        self.inner.lock().next_seq
    }

    /// Records with seq >= `from`.
    fn since(g: &Inner, from: u64) -> impl Iterator<Item = &Record> {
        g.recs.iter().filter(move |r| r.seq >= from)
    }

    /// The text of syslog READ_ALL: the newest records that fit in `len` bytes.
    pub fn read_all(&self, len: usize, clear: bool) -> Vec<u8> {
        let mut g = self.inner.lock();
        let from = g.clear_seq.max(Self::first_seq(&g));
        let lines: Vec<String> = Self::since(&g, from).map(|r| r.syslog_line()).collect();
        let mut out: Vec<u8> = vec![];
        let mut total = 0;
        let mut start = lines.len();
        while start > 0 && total + lines[start - 1].len() <= len {
            total += lines[start - 1].len();
            start -= 1;
        }
        for l in &lines[start..] {
            out.extend_from_slice(l.as_bytes());
        }
        if clear {
            g.clear_seq = g.next_seq;
        }
        out
    }

    pub fn clear(&self) {
        let mut g = self.inner.lock();
        g.clear_seq = g.next_seq;
    }

    pub fn size_unread(&self) -> usize {
        let g = self.inner.lock();
        let from = g.read_seq.max(Self::first_seq(&g));
        Self::since(&g, from).map(|r| r.syslog_line().len()).sum()
    }

    /// syslog READ and /proc/kmsg: consume unread records, blocking until there is one.
    pub fn read_unread(&self, t: &Task, len: usize, nonblock: bool) -> KResult<Vec<u8>> {
        t.block_on(&[&self.wq], None, || {
            let mut g = self.inner.lock();
            let from = g.read_seq.max(Self::first_seq(&g));
            if from >= g.next_seq {
                return if nonblock { Some(Err(EAGAIN)) } else { None };
            }
            let mut out = vec![];
            let mut seq = from;
            for r in Self::since(&g, from) {
                let l = r.syslog_line();
                if !out.is_empty() && out.len() + l.len() > len {
                    break;
                }
                out.extend_from_slice(l.as_bytes());
                seq = r.seq + 1;
            }
            out.truncate(len);
            g.read_seq = seq;
            Some(Ok(out))
        })
    }
}

/// An open /dev/kmsg: one record per read from its own position.
pub struct Kmsg {
    log: Arc<Klog>,
    pos: Mutex<u64>,
}

impl Kmsg {
    pub fn open(log: &Arc<Klog>) -> Arc<Kmsg> {
        let first = Klog::first_seq(&log.inner.lock());
        Arc::new(Kmsg {
            log: log.clone(),
            pos: Mutex::new(first),
        })
    }
}

impl FileOps for Kmsg {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        t.block_on(&[&self.log.wq], None, || {
            let g = self.log.inner.lock();
            let mut pos = self.pos.lock();
            let first = Klog::first_seq(&g);
            if *pos < first {
                // Records were overwritten since the last read.
                *pos = first;
                return Some(Err(EPIPE));
            }
            let Some(r) = Klog::since(&g, *pos).next() else {
                return if f.nonblock() {
                    Some(Err(EAGAIN))
                } else {
                    None
                };
            };
            let line = r.kmsg_line();
            if line.len() > buf.len() {
                return Some(Err(EINVAL));
            }
            buf[..line.len()].copy_from_slice(line.as_bytes());
            *pos = r.seq + 1;
            Some(Ok(line.len()))
        })
    }

    fn write(&self, _f: &OpenFile, _t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        let s = String::from_utf8_lossy(buf);
        let s = s.trim_end_matches('\n');
        // An optional "<N>" prefix sets facility and level; the default is user.notice.
        let (prio, text) = match s.strip_prefix('<').and_then(|r| r.split_once('>')) {
            Some((n, rest)) if n.parse::<u32>().is_ok() => (n.parse::<u32>().unwrap_or(13), rest),
            _ => ((USER as u32) << 3 | WARNING as u32, s),
        };
        let facility = ((prio >> 3) as u8).max(USER);
        self.log.log(facility, (prio & 7) as u8, text);
        Ok(buf.len())
    }

    fn seekable(&self) -> bool {
        true
    }

    fn poll(&self) -> u32 {
        let g = self.log.inner.lock();
        if *self.pos.lock() < g.next_seq {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.log.wq)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Kmsg {
    /// lseek on /dev/kmsg: SEEK_SET 0 to the oldest record, SEEK_END after the newest,
    /// SEEK_DATA (3) to the syslog clear point.
    pub fn seek(&self, off: i64, whence: u32) -> KResult<u64> {
        if off != 0 {
            return Err(ESPIPE);
        }
        let g = self.log.inner.lock();
        let mut pos = self.pos.lock();
        *pos = match whence {
            0 => Klog::first_seq(&g),
            2 => g.next_seq,
            3 => g.clear_seq.max(Klog::first_seq(&g)),
            _ => return Err(EINVAL),
        };
        Ok(0)
    }
}

/// /proc/kmsg: destructive reads of unread records, like syslog(SYSLOG_ACTION_READ).
pub struct ProcKmsg {
    pub log: Arc<Klog>,
}

impl FileOps for ProcKmsg {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let v = self.log.read_unread(t, buf.len(), f.nonblock())?;
        buf[..v.len()].copy_from_slice(&v);
        Ok(v.len())
    }
    fn poll(&self) -> u32 {
        if self.log.size_unread() > 0 {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.log.wq)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

//! Advisory file locks: POSIX record locks (per process), open-file-description locks
//! and flock(2) (both per open file description). Locks of a description that no longer
//! exists are ignored and swept, which releases them on its last close.

use super::OpenFile;
use crate::errno::*;
use crate::waitq::WaitQueue;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

#[derive(Clone)]
pub enum Owner {
    Process(i32),
    File(Weak<OpenFile>),
}

impl Owner {
    fn same(&self, o: &Owner) -> bool {
        match (self, o) {
            (Owner::Process(a), Owner::Process(b)) => a == b,
            (Owner::File(a), Owner::File(b)) => Weak::ptr_eq(a, b),
            _ => false,
        }
    }
    fn alive(&self) -> bool {
        match self {
            Owner::Process(_) => true,
            Owner::File(w) => w.strong_count() > 0,
        }
    }
    pub fn pid(&self) -> i32 {
        match self {
            Owner::Process(p) => *p,
            Owner::File(_) => -1,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Read,
    Write,
}

#[derive(Clone)]
pub struct Lock {
    pub owner: Owner,
    pub start: u64,
    /// Exclusive end; u64::MAX means to the end of the file.
    pub end: u64,
    pub kind: Kind,
}

/// Which family a lock belongs to: record locks (POSIX and OFD share a space) or flock.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    Record,
    Flock,
}

#[derive(Default)]
pub struct Locks {
    map: Mutex<HashMap<(usize, Space), Vec<Lock>>>,
    pub wq: WaitQueue,
}

impl Locks {
    /// The first lock of another owner that conflicts with the request.
    pub fn conflict(
        &self,
        key: usize,
        space: Space,
        owner: &Owner,
        start: u64,
        end: u64,
        kind: Kind,
    ) -> Option<Lock> {
        let mut m = self.map.lock();
        let v = m.get_mut(&(key, space))?;
        v.retain(|l| l.owner.alive());
        v.iter()
            .find(|l| {
                !l.owner.same(owner)
                    && l.start < end
                    && start < l.end
                    && (kind == Kind::Write || l.kind == Kind::Write)
            })
            .cloned()
    }

    /// Set (or with `kind` None, clear) the owner's lock on [start, end), splitting and
    /// merging its existing ranges. Fails with EAGAIN on a conflict.
    pub fn set(
        &self,
        key: usize,
        space: Space,
        owner: Owner,
        start: u64,
        end: u64,
        kind: Option<Kind>,
    ) -> KResult<()> {
        if let Some(k) = kind {
            if self.conflict(key, space, &owner, start, end, k).is_some() {
                return Err(EAGAIN);
            }
        }
        let mut m = self.map.lock();
        let v = m.entry((key, space)).or_default();
        let mut out = Vec::with_capacity(v.len() + 2);
        for l in v.drain(..) {
            if !l.owner.same(&owner) || l.end <= start || end <= l.start {
                out.push(l);
                continue;
            }
            if l.start < start {
                out.push(Lock {
                    end: start,
                    ..l.clone()
                });
            }
            if end < l.end {
                out.push(Lock { start: end, ..l });
            }
        }
        if let Some(k) = kind {
            out.push(Lock {
                owner,
                start,
                end,
                kind: k,
            });
        }
        out.sort_by_key(|l| l.start);
        // Merge adjacent ranges of the same owner and kind.
        let mut merged: Vec<Lock> = Vec::with_capacity(out.len());
        for l in out {
            if let Some(p) = merged.last_mut() {
                if p.owner.same(&l.owner) && p.kind == l.kind && p.end >= l.start {
                    p.end = p.end.max(l.end);
                    continue;
                }
            }
            merged.push(l);
        }
        *v = merged;
        drop(m);
        self.wq.notify_all();
        Ok(())
    }

    /// Drop every record lock of process `pid` on the file (close(2) semantics).
    pub fn release_process(&self, key: usize, pid: i32) {
        let mut m = self.map.lock();
        if let Some(v) = m.get_mut(&(key, Space::Record)) {
            let before = v.len();
            v.retain(|l| !matches!(l.owner, Owner::Process(p) if p == pid));
            if v.len() != before {
                drop(m);
                self.wq.notify_all();
            }
        }
    }

    /// Drop every record lock of a process that exited.
    pub fn release_all(&self, pid: i32) {
        let mut m = self.map.lock();
        for v in m.values_mut() {
            v.retain(|l| !matches!(l.owner, Owner::Process(p) if p == pid));
        }
        m.retain(|_, v| !v.is_empty());
        drop(m);
        self.wq.notify_all();
    }

    /// Wake waiters after a description went away (its locks are now stale).
    pub fn file_closed(&self) {
        self.wq.notify_all();
    }
}

pub fn file_key(f: &Arc<OpenFile>) -> usize {
    match f.inode() {
        Some(i) => super::inode_key(i),
        None => Arc::as_ptr(&f.ops) as *const () as usize,
    }
}

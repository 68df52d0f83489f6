//! File descriptor tables.

use super::OpenFile;
use crate::errno::*;
use parking_lot::Mutex;
use std::sync::Arc;

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    cloexec: bool,
}

#[derive(Default)]
pub struct FdTable {
    slots: Mutex<Vec<Option<Slot>>>,
}

impl FdTable {
    pub fn get(&self, fd: i32) -> KResult<Arc<OpenFile>> {
        if fd < 0 {
            return Err(EBADF);
        }
        self.slots
            .lock()
            .get(fd as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.file.clone())
            .ok_or(EBADF)
    }

    /// Install at the lowest free descriptor >= `min`, below `limit`.
    pub fn install(
        &self,
        file: Arc<OpenFile>,
        cloexec: bool,
        min: i32,
        limit: u64,
    ) -> KResult<i32> {
        let mut s = self.slots.lock();
        let mut i = min.max(0) as usize;
        while i < s.len() && s[i].is_some() {
            i += 1;
        }
        if i as u64 >= limit {
            return Err(EMFILE);
        }
        if i >= s.len() {
            s.resize(i + 1, None);
        }
        s[i] = Some(Slot { file, cloexec });
        Ok(i as i32)
    }

    /// Install at exactly `fd` (dup2), returning what was there.
    pub fn install_at(&self, fd: i32, file: Arc<OpenFile>, cloexec: bool) -> Option<Arc<OpenFile>> {
        let mut s = self.slots.lock();
        let i = fd as usize;
        if i >= s.len() {
            s.resize(i + 1, None);
        }
        s[i].replace(Slot { file, cloexec }).map(|x| x.file)
    }

    pub fn remove(&self, fd: i32) -> Option<Arc<OpenFile>> {
        if fd < 0 {
            return None;
        }
        self.slots
            .lock()
            .get_mut(fd as usize)
            .and_then(|s| s.take())
            .map(|x| x.file)
    }

    pub fn cloexec(&self, fd: i32) -> KResult<bool> {
        self.slots
            .lock()
            .get(fd as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.cloexec)
            .ok_or(EBADF)
    }

    pub fn set_cloexec(&self, fd: i32, v: bool) -> KResult<()> {
        match self
            .slots
            .lock()
            .get_mut(fd as usize)
            .and_then(|s| s.as_mut())
        {
            Some(s) => {
                s.cloexec = v;
                Ok(())
            }
            None => Err(EBADF),
        }
    }

    pub fn fork(&self) -> FdTable {
        FdTable {
            slots: Mutex::new(self.slots.lock().clone()),
        }
    }

    /// Drop close-on-exec descriptors (execve).
    pub fn close_on_exec(&self) {
        let mut s = self.slots.lock();
        let closing: Vec<Option<Slot>> = s
            .iter_mut()
            .map(|x| {
                if x.as_ref().is_some_and(|y| y.cloexec) {
                    x.take()
                } else {
                    None
                }
            })
            .collect();
        drop(s);
        drop(closing);
    }

    /// All open descriptors, for /proc/PID/fd and close_range.
    pub fn list(&self) -> Vec<(i32, Arc<OpenFile>)> {
        self.slots
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as i32, s.file.clone())))
            .collect()
    }

    pub fn clear(&self) {
        let v = std::mem::take(&mut *self.slots.lock());
        drop(v);
    }
}

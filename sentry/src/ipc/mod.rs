//! System V IPC objects (shared memory, semaphores, message queues), each
//! kind in a registry of its IPC namespace, with Linux's ids, keys and permissions.

pub mod msg;
pub mod sem;
pub mod shm;

use crate::errno::*;
use crate::kernel::ns::{ns_capable, UserNs};
use crate::kernel::{cap, Creds};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const IPC_PRIVATE: i32 = 0;
pub const IPC_CREAT: u32 = 0o1000;
pub const IPC_EXCL: u32 = 0o2000;
pub const IPC_NOWAIT: u32 = 0o4000;
pub const IPC_RMID: i32 = 0;
pub const IPC_SET: i32 = 1;
pub const IPC_STAT: i32 = 2;
pub const IPC_INFO: i32 = 3;
/// Linux's IPCMNI: the most objects of one kind, and the multiplier of the sequence
/// number in an id.
pub const IPCMNI: u32 = 32768;
const CAP_IPC_OWNER: u32 = 15;

/// Linux's kern_ipc_perm: ids are the kernel's (first user namespace's) numbering.
#[derive(Clone, Debug)]
pub struct Perm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits, plus SHM_DEST/SHM_LOCKED for segments.
    pub mode: u32,
    pub seq: u32,
}

impl Perm {
    pub fn new(key: i32, c: &Creds, mode: u32) -> Perm {
        Perm {
            key,
            uid: c.euid,
            gid: c.egid,
            cuid: c.euid,
            cgid: c.egid,
            mode: mode & 0o777,
            seq: 0,
        }
    }

    /// Linux's ipcperms: may `c` have the access `flag` asks for (its rwx bits in any
    /// of the three places)? CAP_IPC_OWNER in the namespace's user namespace overrides.
    pub fn check(&self, c: &Creds, user: &Arc<UserNs>, flag: u32) -> KResult<()> {
        let req = ((flag >> 6) | (flag >> 3) | flag) & 7;
        let mut granted = self.mode;
        if c.euid == self.cuid || c.euid == self.uid {
            granted >>= 6;
        } else if [self.cgid, self.gid]
            .iter()
            .any(|g| c.egid == *g || c.groups.contains(g))
        {
            granted >>= 3;
        }
        if req & !granted & 7 != 0 && !ns_capable(c, user, CAP_IPC_OWNER) {
            return Err(EACCES);
        }
        Ok(())
    }

    /// IPC_SET and IPC_RMID: the owner, the creator, or CAP_SYS_ADMIN (EPERM).
    pub fn check_owner(&self, c: &Creds, user: &Arc<UserNs>) -> KResult<()> {
        if c.euid == self.uid || c.euid == self.cuid || ns_capable(c, user, cap::SYS_ADMIN) {
            Ok(())
        } else {
            Err(EPERM)
        }
    }
}

/// The user-visible layout of struct ipc64_perm (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Ipc64Perm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u16,
    pub pad1: u16,
    pub seq: u16,
    pub pad2: u16,
    pub unused: [u64; 2],
}

impl Perm {
    /// As `user` sees it (unmapped ids show as the overflow id).
    pub fn to_user(&self, user: &UserNs) -> Ipc64Perm {
        use crate::kernel::ns::{from_kgid, from_kuid};
        Ipc64Perm {
            key: self.key,
            uid: from_kuid(user, self.uid),
            gid: from_kgid(user, self.gid),
            cuid: from_kuid(user, self.cuid),
            cgid: from_kgid(user, self.cgid),
            mode: self.mode as u16,
            seq: self.seq as u16,
            ..Default::default()
        }
    }
}

/// Objects of one kind by index, with Linux's id allocation: indexes are handed out
/// cyclically, and the sequence number grows each time the cycle wraps, so a
/// removed object's id is not soon reused (id = seq * IPCMNI + index).
pub struct Ids<T> {
    pub objs: BTreeMap<u32, T>,
    last_idx: Option<u32>,
    seq: u32,
}

impl<T> Default for Ids<T> {
    fn default() -> Self {
        Ids {
            objs: BTreeMap::new(),
            last_idx: None,
            seq: 0,
        }
    }
}

impl<T> Ids<T> {
    /// A free index below `max` and the sequence number for it (None: all in use).
    pub fn alloc(&mut self, max: u32) -> Option<(u32, u32)> {
        let max = max.min(IPCMNI);
        let start = self.last_idx.map_or(0, |i| i + 1);
        let idx = (start..max)
            .chain(0..start.min(max))
            .find(|i| !self.objs.contains_key(i))?;
        if self.last_idx.is_some_and(|l| idx <= l) {
            self.seq = (self.seq + 1) % (i32::MAX as u32 / IPCMNI);
        }
        self.last_idx = Some(idx);
        Some((idx, self.seq))
    }

    /// The object an id names (EINVAL: no such id, or an old one).
    pub fn by_id(&self, id: i32, seq_of: impl Fn(&T) -> u32) -> KResult<&T> {
        if id < 0 {
            return Err(EINVAL);
        }
        let id = id as u32;
        self.objs
            .get(&(id % IPCMNI))
            .filter(|o| seq_of(o) == id / IPCMNI)
            .ok_or(EINVAL)
    }

    /// What IPC_STAT (`by_index` false: `id` is an id) or a *_STAT / *_STAT_ANY command
    /// (`id` is an index) names, and the call's result: 0, or the object's full id.
    pub fn for_stat(
        &self,
        id: i32,
        by_index: bool,
        seq_of: impl Fn(&T) -> u32,
    ) -> KResult<(&T, u64)> {
        if !by_index {
            return Ok((self.by_id(id, seq_of)?, 0));
        }
        let o = self.objs.get(&(id as u32)).ok_or(EINVAL)?;
        Ok((o, make_id(id as u32, seq_of(o)) as u64))
    }

    /// The highest index in use (IPC_INFO's result; 0 when there is none).
    pub fn max_idx(&self) -> u64 {
        self.objs.keys().next_back().map_or(0, |i| *i as u64)
    }
}

pub fn make_id(idx: u32, seq: u32) -> i32 {
    (seq * IPCMNI + idx) as i32
}

/// Seconds since the epoch (the IPC time stamps).
pub fn now_secs() -> i64 {
    crate::vfs::now().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_cyclic_and_the_sequence_grows_on_wrap() {
        let mut ids: Ids<u32> = Ids::default();
        let (a, s) = ids.alloc(3).unwrap();
        assert_eq!((a, s), (0, 0));
        ids.objs.insert(a, s);
        let (b, s) = ids.alloc(3).unwrap();
        assert_eq!((b, s), (1, 0));
        ids.objs.insert(b, s);
        // A freed index is not reused before the others.
        ids.objs.remove(&0);
        let (c, s) = ids.alloc(3).unwrap();
        assert_eq!((c, s), (2, 0));
        ids.objs.insert(c, s);
        // Wrapping around: index 0 again, with a new sequence number, so the old id
        // no longer names it.
        let (d, s) = ids.alloc(3).unwrap();
        assert_eq!((d, s), (0, 1));
        ids.objs.insert(d, s);
        assert_eq!(ids.alloc(3), None);
        assert!(ids.by_id(make_id(0, 0), |s| *s).is_err());
        assert_eq!(ids.by_id(make_id(0, 1), |s| *s), Ok(&1));
        assert_eq!(ids.max_idx(), 2);
    }
}

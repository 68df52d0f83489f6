//! Job control across the process tree: orphaned process groups (POSIX 3.2.2.2).
//!
//! A process group is orphaned when no member has a parent in a different group of the
//! same session: nobody is left who could continue its stopped members. Linux then
//! (kernel/exit.c, kill_orphaned_pgrp) sends SIGHUP and SIGCONT to a group that becomes
//! orphaned by an exit while it has a stopped member, and discards the default stop
//! action of SIGTSTP, SIGTTIN and SIGTTOU in an orphaned group (kernel/signal.c).

use super::signal::{self, SigInfo};
use super::{Kernel, Table, ThreadGroup};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A process that is dead (a zombie, or on its way to becoming one).
fn dead(p: &super::Proc) -> bool {
    p.zombie.is_some() || p.threads.is_empty()
}

/// will_become_orphaned_pgrp: is group `pgid` orphaned, not counting process `ignore`
/// (one that is exiting)?
pub fn pgrp_orphaned(tab: &Table, pgid: i32, ignore: Option<i32>) -> bool {
    !tab.procs.iter().any(|(id, p)| {
        p.pgid == pgid
            && Some(*id) != ignore
            && !dead(p)
            && tab
                .procs
                .get(&p.parent)
                .is_some_and(|q| q.pgid != pgid && q.sid == p.sid)
    })
}

/// Does group `pgid` have a stopped member?
pub fn has_stopped_jobs(tab: &Table, pgid: i32) -> bool {
    tab.procs
        .values()
        .any(|p| p.pgid == pgid && p.tg.stopped.load(Ordering::Acquire))
}

/// Is the process group of `tgid` orphaned (is_current_pgrp_orphaned)?
pub fn current_pgrp_orphaned(k: &Kernel, tgid: i32) -> bool {
    let tab = k.table.lock();
    match tab.procs.get(&tgid) {
        Some(p) => pgrp_orphaned(&tab, p.pgid, None),
        None => false,
    }
}

/// kill_orphaned_pgrp for process `tgid`: when it exits (`father` None, with the
/// process itself not counted) or when it was just reparented away from `father`,
/// its group may have become orphaned. Returns the group to send SIGHUP and SIGCONT
/// to, if it has stopped members. Call with the table locked; send with
/// `hangup_groups` once it is unlocked.
pub fn orphaned_by(tab: &Table, tgid: i32, father: Option<i32>) -> Option<i32> {
    let p = tab.procs.get(&tgid)?;
    let (parent, ignore) = match father {
        None => (p.parent, Some(tgid)),
        Some(f) => (f, None),
    };
    let parent = tab.procs.get(&parent)?;
    (parent.pgid != p.pgid
        && parent.sid == p.sid
        && pgrp_orphaned(tab, p.pgid, ignore)
        && has_stopped_jobs(tab, p.pgid))
    .then_some(p.pgid)
}

/// Send SIGHUP, then SIGCONT, to every member of each group.
pub fn hangup_groups(k: &Kernel, mut groups: Vec<i32>) {
    groups.sort_unstable();
    groups.dedup();
    for pg in groups {
        let members: Vec<Arc<ThreadGroup>> = k
            .table
            .lock()
            .procs
            .values()
            .filter(|p| p.pgid == pg && !dead(p))
            .map(|p| p.tg.clone())
            .collect();
        for sig in [signal::SIGHUP, signal::SIGCONT] {
            for tg in &members {
                signal::send_to_group(k, tg, SigInfo::kernel(sig));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::signal::SigAction;
    use crate::kernel::Proc;
    use parking_lot::Mutex;

    /// A table of processes given as (pid, parent, pgid, sid).
    fn table(procs: &[(i32, i32, i32, i32)]) -> Table {
        let mut t = Table::default();
        for &(pid, parent, pgid, sid) in procs {
            let tg = ThreadGroup::new(
                pid,
                Arc::new(Mutex::new([SigAction::default(); 65])),
                [(0, 0); 16],
            );
            t.procs.insert(
                pid,
                Proc {
                    tg,
                    parent,
                    children: vec![],
                    threads: vec![pid],
                    pgid,
                    sid,
                    exit_signal: signal::SIGCHLD,
                    zombie: None,
                    group_exit: None,
                    stop_report: None,
                    cont_report: false,
                    subreaper: false,
                    cmdline_name: vec![],
                    parent_thread: parent,
                    execed: false,
                    exit_uid: 0,
                    exit_ids: (0, 0),
                    exit_comm: vec![],
                },
            );
        }
        t
    }

    #[test]
    fn orphaned_groups() {
        // Session 2 (leader 2) with a job group 3 {3, 4}; 4 is 3's child. 2's parent 1 is
        // in another session.
        let mut t = table(&[(1, 0, 1, 1), (2, 1, 2, 2), (3, 2, 3, 2), (4, 3, 3, 2)]);
        // 3's parent (2) is in another group of the session: group 3 has a link.
        assert!(!pgrp_orphaned(&t, 3, None));
        // ...which is 3 only: without it the group is orphaned.
        assert!(pgrp_orphaned(&t, 3, Some(3)));
        // Group 2's only member has its parent in another session.
        assert!(pgrp_orphaned(&t, 2, None));
        // A dead link does not count.
        t.procs.get_mut(&3).expect("3").zombie = Some(0);
        assert!(pgrp_orphaned(&t, 3, None));
    }

    #[test]
    fn orphaned_by_exit_needs_a_stopped_member() {
        let t = table(&[(1, 0, 1, 1), (2, 1, 2, 2), (3, 2, 3, 2), (4, 3, 3, 2)]);
        // 3 exits: its group loses its link, but nobody in it is stopped.
        assert_eq!(orphaned_by(&t, 3, None), None);
        t.procs[&4].tg.stopped.store(true, Ordering::Release);
        assert_eq!(orphaned_by(&t, 3, None), Some(3));
        // 4 exiting changes nothing: its parent is in its own group.
        assert_eq!(orphaned_by(&t, 4, None), None);
    }
}

//! Links: where packets that are not for this stack go, and where outside packets come
//! from. A link carries whole IP packets (a point-to-point, tun-like link).

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// Told by a link that it has packets to receive. It never blocks and may be called from
/// any thread, including with another stack's lock held.
pub type LinkNotify = Arc<dyn Fn() + Send + Sync>;

/// An IP-level link.
pub trait Link: Send {
    /// Send one IP packet (dropping it is allowed, as on any link). A link may hold it
    /// back until `flush`.
    fn transmit(&mut self, packet: &[u8]);
    /// Send whatever `transmit` held back (the stack calls this after each poll).
    fn flush(&mut self) {}
    /// The next received IP packet, if any.
    fn receive(&mut self) -> Option<Vec<u8>>;
    /// Remember how to tell the stack that packets arrived.
    fn set_notify(&mut self, notify: LinkNotify);
}

type Queue = Arc<Mutex<VecDeque<Vec<u8>>>>;
type NotifySlot = Arc<Mutex<Option<LinkNotify>>>;

/// One end of an in-memory link: what one end transmits, the other receives.
pub struct MemLink {
    inbox: Queue,
    peer_inbox: Queue,
    notify: NotifySlot,
    peer_notify: NotifySlot,
}

/// The most packets one end holds unread (beyond that, packets are dropped).
const MEM_QUEUE: usize = 4096;

impl MemLink {
    /// Two joined ends.
    pub fn pair() -> (MemLink, MemLink) {
        let (qa, qb): (Queue, Queue) = Default::default();
        let (na, nb): (NotifySlot, NotifySlot) = Default::default();
        (
            MemLink {
                inbox: qa.clone(),
                peer_inbox: qb.clone(),
                notify: na.clone(),
                peer_notify: nb.clone(),
            },
            MemLink {
                inbox: qb,
                peer_inbox: qa,
                notify: nb,
                peer_notify: na,
            },
        )
    }
}

impl Link for MemLink {
    fn transmit(&mut self, packet: &[u8]) {
        {
            let mut q = self.peer_inbox.lock();
            if q.len() >= MEM_QUEUE {
                return;
            }
            q.push_back(packet.to_vec());
        }
        let n = self.peer_notify.lock().clone();
        if let Some(n) = n {
            n();
        }
    }

    fn receive(&mut self) -> Option<Vec<u8>> {
        self.inbox.lock().pop_front()
    }

    fn set_notify(&mut self, notify: LinkNotify) {
        *self.notify.lock() = Some(notify);
    }
}

//! Links: where packets that are not for this stack go, and where outside packets come
//! from. A link carries whole IP packets (a point-to-point, tun-like link).

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

type Callback = Arc<dyn Fn() + Send + Sync>;

/// How a link tells its stack that it has packets to receive.
#[derive(Clone)]
pub struct LinkNotify {
    kick: Callback,
    poll: Callback,
}

impl LinkNotify {
    pub fn new(
        kick: impl Fn() + Send + Sync + 'static,
        poll: impl Fn() + Send + Sync + 'static,
    ) -> LinkNotify {
        LinkNotify {
            kick: Arc::new(kick),
            poll: Arc::new(poll),
        }
    }

    /// Have the stack's poller thread take the packets in. Never blocks; may be called
    /// from any thread, including with another stack's lock held.
    pub fn kick(&self) {
        (self.kick)()
    }

    /// Take the packets in now, on the calling thread (saving a wake-up of the poller).
    /// Only from a thread that holds no stack's lock, such as a link's own reader.
    pub fn poll(&self) {
        (self.poll)()
    }
}

/// An IP-level link.
pub trait Link: Send {
    /// Send one IP packet (dropping it is allowed, as on any link). A link may hold it
    /// back until `flush`.
    fn transmit(&mut self, packet: &[u8]);
    /// Whether the link takes TCP segments longer than its MTU and cuts them (at the MSS
    /// given to `transmit_tso`), filling in TCP checksums: then the stack hands it every
    /// frame through `transmit_tso`, with TCP checksums not filled in.
    fn tso(&self) -> bool {
        false
    }
    /// Send one frame of a link that does `tso`: `mss` is where a longer TCP segment is cut.
    fn transmit_tso(&mut self, frame: &mut [u8], mss: Option<u16>) {
        let _ = mss;
        self.transmit(frame)
    }
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
            n.kick();
        }
    }

    fn receive(&mut self) -> Option<Vec<u8>> {
        self.inbox.lock().pop_front()
    }

    fn set_notify(&mut self, notify: LinkNotify) {
        *self.notify.lock() = Some(notify);
    }
}

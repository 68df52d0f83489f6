//! A link over a host packet socket (AF_PACKET, SOCK_RAW, bound to the container's
//! veth and donated by the runtime): whole Ethernet frames in and out. A reader thread
//! blocks in recv and queues frames, so an idle link costs no CPU.

use crate::link::{Link, LinkNotify};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// The most frames queued unread (beyond that, frames are dropped as a NIC would).
const QUEUE: usize = 4096;
/// Big enough for any frame a veth delivers (GRO can merge up to 64 KiB).
const FRAME_MAX: usize = 65536 + 14;

pub struct PacketLink {
    fd: Arc<OwnedFd>,
    queue: Arc<Mutex<VecDeque<Vec<u8>>>>,
    reader: bool,
}

impl PacketLink {
    /// `fd` is a packet socket already bound to its interface.
    pub fn new(fd: OwnedFd) -> PacketLink {
        PacketLink {
            fd: Arc::new(fd),
            queue: Default::default(),
            reader: false,
        }
    }
}

/// recv(2) into `buf`, retrying on EINTR.
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: recv writes at most buf.len() bytes into buf, which we own.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn reader(fd: Arc<OwnedFd>, queue: Arc<Mutex<VecDeque<Vec<u8>>>>, notify: LinkNotify) {
    let mut buf = vec![0u8; FRAME_MAX];
    loop {
        match recv(&fd, &mut buf) {
            Ok(0) => continue,
            Ok(n) => {
                {
                    let mut q = queue.lock();
                    if q.len() >= QUEUE {
                        continue;
                    }
                    q.push_back(buf[..n].to_vec());
                }
                notify();
            }
            Err(e) => {
                tracing::warn!("netstack: packet link: recv: {e}; the link is down");
                return;
            }
        }
    }
}

impl Link for PacketLink {
    fn transmit(&mut self, frame: &[u8]) {
        // SAFETY: send reads frame.len() bytes from frame.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            tracing::debug!(
                "netstack: packet link: send: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    fn receive(&mut self) -> Option<Vec<u8>> {
        self.queue.lock().pop_front()
    }

    fn set_notify(&mut self, notify: LinkNotify) {
        if self.reader {
            return;
        }
        self.reader = true;
        let (fd, q) = (self.fd.clone(), self.queue.clone());
        std::thread::Builder::new()
            .name("netstack-link".into())
            .spawn(move || reader(fd, q, notify))
            .expect("spawn the packet link reader");
    }
}

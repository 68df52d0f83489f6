//! A link over a host packet socket (AF_PACKET, SOCK_RAW, bound to the container's
//! veth and donated by the runtime): whole Ethernet frames in and out. A reader thread
//! blocks in recv and queues frames, so an idle link costs no CPU.
//!
//! When the runtime turned PACKET_VNET_HDR on, every frame carries a virtio_net_hdr:
//! frames received drop it, and TCP segments sent are joined into large frames that the
//! host kernel segments (see `gso`).

use crate::gso::{Gso, VnetHdr, VNET_HDR};
use crate::link::{Link, LinkNotify};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// The most frames queued unread (beyond that, frames are dropped as a NIC would).
const QUEUE: usize = 4096;
/// Big enough for any frame a veth delivers (GRO can merge up to 64 KiB).
const FRAME_MAX: usize = 65536 + 14;
/// linux/if_packet.h.
const PACKET_VNET_HDR: libc::c_int = 15;

pub struct PacketLink {
    fd: Arc<OwnedFd>,
    queue: Arc<Mutex<VecDeque<Vec<u8>>>>,
    reader: bool,
    /// Some when frames carry a virtio_net_hdr.
    gso: Option<Gso>,
}

impl PacketLink {
    /// `fd` is a packet socket already bound to its interface.
    pub fn new(fd: OwnedFd) -> PacketLink {
        let gso = vnet_hdr(&fd).then(|| Gso::new(true));
        PacketLink {
            fd: Arc::new(fd),
            queue: Default::default(),
            reader: false,
            gso,
        }
    }
}

/// Whether the socket has PACKET_VNET_HDR on.
fn vnet_hdr(fd: &OwnedFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most len bytes into v, and len.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_VNET_HDR,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && v != 0
}

/// Receive one frame into `buf` (its spare capacity; the vnet header, if `hdr`, apart),
/// retrying on EINTR. Returns the frame's length.
fn recv(fd: &OwnedFd, hdr: bool, buf: &mut Vec<u8>, flags: libc::c_int) -> std::io::Result<usize> {
    buf.clear();
    let mut vnet: VnetHdr = [0; VNET_HDR];
    let spare = buf.spare_capacity_mut();
    let mut iov = [
        libc::iovec {
            iov_base: vnet.as_mut_ptr().cast(),
            iov_len: VNET_HDR,
        },
        libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        },
    ];
    let parts = if hdr { &mut iov[..] } else { &mut iov[1..] };
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = parts.as_mut_ptr();
    msg.msg_iovlen = parts.len();
    let skip = if hdr { VNET_HDR } else { 0 };
    loop {
        // SAFETY: recvmsg writes at most each iovec's length into buffers we own.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
        if n >= 0 {
            let len = (n as usize).saturating_sub(skip);
            // SAFETY: recvmsg initialized the first `len` bytes of the spare capacity.
            unsafe { buf.set_len(len) };
            return Ok(len);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Frames up to this size are copied out of the receive buffer; larger ones take it.
const SMALL: usize = 2048;
/// Frames taken in one go before the stack processes them.
const BURST: usize = 64;

/// Block for a frame, take whatever else is already waiting (up to BURST), then have the
/// stack process them on this thread.
fn reader(fd: Arc<OwnedFd>, hdr: bool, queue: Arc<Mutex<VecDeque<Vec<u8>>>>, notify: LinkNotify) {
    let mut buf = Vec::with_capacity(FRAME_MAX);
    loop {
        let mut got = 0;
        while got < BURST {
            let flags = if got == 0 { 0 } else { libc::MSG_DONTWAIT };
            match recv(&fd, hdr, &mut buf, flags) {
                Ok(0) => continue,
                Ok(n) => {
                    got += 1;
                    // A large frame keeps the buffer (no copy); the reader takes a new one.
                    let frame = if n > SMALL {
                        std::mem::replace(&mut buf, Vec::with_capacity(FRAME_MAX))
                    } else {
                        buf.clone()
                    };
                    let mut q = queue.lock();
                    if q.len() < QUEUE {
                        q.push_back(frame);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => break,
                Err(e) => {
                    tracing::warn!("netstack: packet link: recv: {e}; the link is down");
                    return;
                }
            }
        }
        notify.poll();
    }
}

/// Send one frame (behind `hdr` when there is one); a full socket drops it.
fn send(fd: &OwnedFd, hdr: Option<&VnetHdr>, frame: &[u8]) {
    let mut iov = [libc::iovec {
        iov_base: frame.as_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    }; 2];
    let parts = match hdr {
        Some(h) => {
            iov[1] = iov[0];
            iov[0] = libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: h.len(),
            };
            2
        }
        None => 1,
    };
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = parts;
    // SAFETY: sendmsg only reads the iovecs' buffers, which outlive the call.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        tracing::debug!(
            "netstack: packet link: send: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Link for PacketLink {
    fn transmit(&mut self, frame: &[u8]) {
        let fd = &self.fd;
        match &mut self.gso {
            Some(g) => g.push(frame, &mut |h, f| send(fd, Some(h), f)),
            None => send(fd, None, frame),
        }
    }

    fn tso(&self) -> bool {
        self.gso.is_some()
    }

    fn transmit_tso(&mut self, frame: &mut [u8], mss: Option<u16>) {
        let fd = &self.fd;
        match &mut self.gso {
            Some(g) => g.push_offload(frame, mss, &mut |h, f| send(fd, Some(h), f)),
            None => send(fd, None, frame),
        }
    }

    fn flush(&mut self) {
        let fd = &self.fd;
        if let Some(g) = &mut self.gso {
            g.flush(&mut |h, f| send(fd, Some(h), f));
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
        let hdr = self.gso.is_some();
        std::thread::Builder::new()
            .name("netstack-link".into())
            .spawn(move || reader(fd, hdr, q, notify))
            .expect("spawn the packet link reader");
    }
}

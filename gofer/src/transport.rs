//! One message per SEQPACKET record, with at most one descriptor (SCM_RIGHTS).

use nix::errno::Errno as NixErrno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Largest message either side sends or accepts (a 64 KiB xattr value fits).
pub(crate) const MAX_MSG: usize = 128 * 1024;

pub(crate) struct Msg {
    pub data: Vec<u8>,
    pub fd: Option<OwnedFd>,
    /// The record was larger than `MAX_MSG` and was cut.
    pub truncated: bool,
}

/// Send one record, optionally donating `fd`.
pub(crate) fn send(sock: BorrowedFd, data: &[u8], fd: Option<BorrowedFd>) -> nix::Result<()> {
    let iov = [IoSlice::new(data)];
    let fds = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(NixErrno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) if n != data.len() => return Err(NixErrno::EMSGSIZE),
            Ok(_) => return Ok(()),
        }
    }
}

/// A receive buffer of `MAX_MSG` bytes, reused across calls.
pub(crate) fn buffer() -> Box<[u8]> {
    vec![0u8; MAX_MSG].into_boxed_slice()
}

/// Receive one record into `buf` (from [`buffer`]); `None` when the peer has closed
/// the socket. Descriptors are accepted only if `want_fd` (else the kernel drops them).
pub(crate) fn recv(sock: BorrowedFd, want_fd: bool, buf: &mut [u8]) -> nix::Result<Option<Msg>> {
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (n, truncated, fds) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        let space = if want_fd { Some(&mut cmsg) } else { None };
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            space,
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(NixErrno::EINTR) => continue,
            r => r?,
        };
        let mut fds = Vec::new();
        if let Ok(it) = msg.cmsgs() {
            for c in it {
                if let ControlMessageOwned::ScmRights(v) = c {
                    fds.extend(v);
                }
            }
        }
        break (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC), fds);
    };
    // SAFETY: the kernel just installed these descriptors in our table; we own them.
    let mut fds = fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) });
    let fd = fds.next();
    if n == 0 && !truncated && fd.is_none() && peer_closed(sock)? {
        return Ok(None);
    }
    Ok(Some(Msg {
        data: buf[..n].to_vec(),
        fd,
        truncated,
    }))
}

/// A zero-length read is either an empty record or end of stream; poll tells which.
fn peer_closed(sock: BorrowedFd) -> nix::Result<bool> {
    let mut p = [PollFd::new(sock, PollFlags::POLLIN)];
    poll(&mut p, PollTimeout::ZERO)?;
    let ev = p[0].revents().unwrap_or(PollFlags::empty());
    Ok(ev.contains(PollFlags::POLLHUP))
}

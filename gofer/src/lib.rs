//! The gofer: serves a container's files to the Sentry over a unix socket.
//!
//! Handles (fids) name opened host files (O_PATH descriptors), never paths. Every walk
//! is one component opened with O_NOFOLLOW relative to its parent, so no request can
//! leave the root; symlinks are never followed (the Sentry resolves them with
//! `readlink`). Opened files are donated to the client with SCM_RIGHTS.
//!
//! * [`proto`]: the request/response types and their little-endian encoding.
//! * [`server`]: [`serve`], run by `rvisor gofer`.
//! * [`client`]: [`Client`], used by the Sentry.

pub mod client;
mod host;
pub mod proto;
pub mod server;
mod transport;

#[cfg(test)]
mod tests;

pub use client::Client;
pub use server::serve;

use std::os::fd::OwnedFd;

/// A handle on a host file, valid until clunked.
pub type Fid = u64;

/// A Linux errno value, e.g. `Errno(libc::ENOENT)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}

impl From<nix::errno::Errno> for Errno {
    fn from(e: nix::errno::Errno) -> Errno {
        Errno(e as i32)
    }
}

/// File attributes, as from `lstat`. Times are (sec, nsec).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// One directory entry; `kind` is a `DT_*` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: u8,
    pub name: Vec<u8>,
}

/// Attribute changes for [`Client::setattr`]; `None` leaves a field alone.
/// Time nsec may be `UTIME_NOW` or `UTIME_OMIT`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<(i64, i64)>,
    pub mtime: Option<(i64, i64)>,
}

/// Mirrors `struct statfs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatFs {
    pub fs_type: u64,
    pub bsize: i64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub fsid: [i32; 2],
    pub namelen: i64,
    pub frsize: i64,
    pub flags: i64,
}

/// A CLOEXEC `SOCK_SEQPACKET` unix socket pair: one end for [`serve`], one for [`Client`].
pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}

/// Old name of [`socketpair`], kept for existing callers.
pub fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    socketpair()
}

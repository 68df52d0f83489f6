//! What raw and ping sockets share: the bound and connected addresses, a queue of
//! received messages, the hop limit, shutdown and readiness.

use crate::*;

pub(crate) struct Dgram {
    pub v6: bool,
    pub addr: IpAddr,
    pub peer: Option<IpAddr>,
    /// Received: the message, its sender, its hop limit and DS field.
    pub rx: VecDeque<(Vec<u8>, IpAddr, u8, u8)>,
    pub ttl: Option<u8>,
    pub shut: u8,
    pub waker: Option<Waker>,
    pub sig: u32,
}

impl Dgram {
    pub fn new(v6: bool) -> Dgram {
        Dgram {
            v6,
            addr: unspecified(v6).ip(),
            peer: None,
            rx: VecDeque::new(),
            ttl: None,
            shut: 0,
            waker: None,
            sig: u32::MAX,
        }
    }

    pub fn events(&self) -> u32 {
        let mut m = EV_OUT;
        if !self.rx.is_empty() || self.shut & SHUT_RD != 0 {
            m |= EV_IN;
        }
        if self.shut & SHUT_RD != 0 {
            m |= EV_RDHUP;
        }
        if self.shut == SHUT_RD | SHUT_WR {
            m |= EV_HUP;
        }
        m
    }

    /// Push the waker to `out` if readiness changed since last time.
    pub fn collect_wake(&mut self, out: &mut Vec<Waker>) {
        let now = self.events();
        wake_on_change(&mut self.sig, now, &self.waker, out);
    }

    /// Queue a received message unless `cap` are queued or reading is shut down.
    pub fn push(&mut self, cap: usize, msg: &[u8], from: IpAddr, (ttl, tos): (u8, u8)) {
        if self.rx.len() < cap && self.shut & SHUT_RD == 0 {
            self.rx.push_back((msg.to_vec(), from, ttl, tos));
        }
    }

    /// Where a message goes: `to`, or the connected peer.
    pub fn dest(&self, to: Option<IpAddr>) -> Result<IpAddr> {
        if self.shut & SHUT_WR != 0 {
            return Err(Error::Pipe);
        }
        to.or(self.peer).ok_or(Error::DestAddrRequired)
    }

    /// Receive (or with `peek`, copy) the next message.
    pub fn recv(&mut self, buf: &mut [u8], peek: bool) -> Result<Datagram> {
        let Some((d, from, ttl, tos)) = (if peek {
            self.rx.front().cloned()
        } else {
            self.rx.pop_front()
        }) else {
            if self.shut & SHUT_RD != 0 {
                return Ok(Datagram {
                    len: 0,
                    full: 0,
                    from: unspecified(self.v6),
                    ttl: 0,
                    tos: 0,
                });
            }
            return Err(Error::WouldBlock);
        };
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(Datagram {
            len: n,
            full: d.len(),
            from: SocketAddr::new(from, 0),
            ttl,
            tos,
        })
    }

    pub fn shutdown(&mut self, how: u8) -> Result<()> {
        shutdown(&mut self.shut, self.peer.is_some(), how)
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.peer
            .map(|p| SocketAddr::new(p, 0))
            .ok_or(Error::NotConn)
    }

    /// FIONREAD: the size of the next message.
    pub fn next_len(&self) -> usize {
        self.rx.front().map_or(0, |d| d.0.len())
    }
}

/// shutdown(2) of a datagram socket: only a connected one (ENOTCONN).
pub(crate) fn shutdown(shut: &mut u8, connected: bool, how: u8) -> Result<()> {
    if !connected {
        return Err(Error::NotConn);
    }
    *shut |= how;
    Ok(())
}

/// The socket's family is `v6`: another one is EAFNOSUPPORT.
pub(crate) fn family(v6: bool, a: IpAddr) -> Result<IpAddr> {
    if a.is_ipv6() != v6 {
        return Err(Error::AfNoSupport);
    }
    Ok(a)
}

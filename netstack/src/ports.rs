//! Port reservations: who is bound where, with Linux's rules for conflicts
//! (SO_REUSEADDR, SO_REUSEPORT, wildcard addresses, IPV6_V6ONLY) and ephemeral ports.

use crate::{Error, Result};
use std::collections::HashMap;
use std::net::IpAddr;

pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;

/// Linux's net.ipv4.ip_local_port_range.
const EPH_LO: u16 = 32768;
const EPH_HI: u16 = 60999;

/// SO_REUSEADDR, and SO_REUSEPORT with the socket owner's uid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    pub addr: bool,
    pub port: Option<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct Use {
    pub owner: u64,
    /// None: the wildcard address of the families below.
    pub addr: Option<IpAddr>,
    pub v4: bool,
    pub v6: bool,
    pub reuse: bool,
    /// SO_REUSEPORT: the owner's uid (sockets of one uid may share the port).
    pub reuseport: Option<u32>,
    pub listen: bool,
    /// A closed TCP connection finishing its shutdown (Linux: FIN-WAIT, TIME-WAIT).
    pub orphan: bool,
}

impl Use {
    /// The reservation of a socket of family `v6` bound to `addr` (already unmapped).
    pub fn new(owner: u64, v6: bool, v6only: bool, addr: IpAddr, reuse: Reuse) -> Use {
        let (a, v4f, v6f) = match (v6, addr) {
            (false, a) => (a, true, false),
            (true, IpAddr::V4(_)) => (addr, true, false),
            (true, IpAddr::V6(_)) => (addr, !v6only && addr.is_unspecified(), true),
        };
        Use {
            owner,
            addr: (!a.is_unspecified()).then_some(a),
            v4: v4f,
            v6: v6f,
            reuse: reuse.addr,
            reuseport: reuse.port,
            listen: false,
            orphan: false,
        }
    }
}

fn conflict(proto: u8, old: &Use, new: &Use) -> bool {
    if old.owner == new.owner {
        return false;
    }
    if !((old.v4 && new.v4) || (old.v6 && new.v6)) {
        return false;
    }
    let overlap = match (old.addr, new.addr) {
        (None, _) | (_, None) => true,
        (Some(x), Some(y)) => x == y,
    };
    if !overlap {
        return false;
    }
    // SO_REUSEPORT on both, by one user: a group sharing the port.
    if old.reuseport.is_some() && old.reuseport == new.reuseport {
        return false;
    }
    if old.orphan {
        return !new.reuse;
    }
    !(old.reuse && new.reuse && (proto == UDP || !old.listen))
}

pub(crate) struct Ports {
    map: HashMap<(u8, u16), Vec<Use>>,
    next: u16,
}

impl Ports {
    pub fn new(seed: u64) -> Ports {
        Ports {
            map: HashMap::new(),
            next: EPH_LO + (seed % (EPH_HI - EPH_LO) as u64) as u16,
        }
    }

    /// Reserve `port` (0: an ephemeral port) for `u`; the port reserved.
    pub fn add(&mut self, proto: u8, port: u16, u: Use) -> Result<u16> {
        if port == 0 {
            for _ in EPH_LO..=EPH_HI {
                let p = self.next;
                self.next = if p >= EPH_HI { EPH_LO } else { p + 1 };
                if self.map.get(&(proto, p)).is_none_or(|v| v.is_empty()) {
                    self.map.entry((proto, p)).or_default().push(u);
                    return Ok(p);
                }
            }
            return Err(Error::AddrInUse);
        }
        let v = self.map.entry((proto, port)).or_default();
        if v.iter().any(|o| conflict(proto, o, &u)) {
            return Err(Error::AddrInUse);
        }
        v.push(u);
        Ok(port)
    }

    pub fn remove(&mut self, proto: u8, port: u16, owner: u64) {
        if let Some(v) = self.map.get_mut(&(proto, port)) {
            v.retain(|u| u.owner != owner);
            if v.is_empty() {
                self.map.remove(&(proto, port));
            }
        }
    }

    fn find(&mut self, proto: u8, port: u16, owner: u64) -> Option<&mut Use> {
        self.map
            .get_mut(&(proto, port))?
            .iter_mut()
            .find(|u| u.owner == owner)
    }

    /// listen(2): the reservation becomes a listener unless another listener shares it.
    pub fn set_listen(&mut self, proto: u8, port: u16, owner: u64) -> Result<()> {
        let Some(me) = self.find(proto, port, owner).cloned() else {
            return Ok(());
        };
        let mut l = me.clone();
        l.listen = true;
        if self.map[&(proto, port)]
            .iter()
            .any(|o| o.owner != owner && conflict(proto, o, &l))
        {
            return Err(Error::AddrInUse);
        }
        if let Some(u) = self.find(proto, port, owner) {
            u.listen = true;
        }
        Ok(())
    }

    /// A reservation for `new` like `owner`'s (not listening): an accepted connection.
    pub fn share(&mut self, proto: u8, port: u16, owner: u64, new: u64) {
        if let Some(u) = self.find(proto, port, owner).cloned() {
            self.map.entry((proto, port)).or_default().push(Use {
                owner: new,
                listen: false,
                ..u
            });
        }
    }

    pub fn unlisten(&mut self, proto: u8, port: u16, owner: u64) {
        if let Some(u) = self.find(proto, port, owner) {
            u.listen = false;
        }
    }

    pub fn set_reuse(&mut self, proto: u8, port: u16, owner: u64, reuse: Reuse) {
        if let Some(u) = self.find(proto, port, owner) {
            u.reuse = reuse.addr;
            u.reuseport = reuse.port;
        }
    }

    /// The socket closed while its connection winds down: the reservation now belongs to
    /// the orphan `new`.
    pub fn orphan(&mut self, proto: u8, port: u16, owner: u64, new: u64) {
        if let Some(u) = self.find(proto, port, owner) {
            u.owner = new;
            u.orphan = true;
            u.listen = false;
        }
    }
}

//! Ethernet frames, as far as the stack's device looks into them: which address a frame
//! is about, so frames for the stack's own addresses stay on the loopback queue and
//! frames from the link for other hosts are dropped.

use smoltcp::phy::{Checksum, ChecksumCapabilities};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The Ethernet header's length (no VLAN tag: a veth's frames have none).
pub(crate) const HEADER: usize = 14;

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const NEIGHBOR_SOLICIT: u8 = 135;

fn ethertype(f: &[u8]) -> Option<u16> {
    (f.len() >= HEADER).then(|| u16::from_be_bytes([f[12], f[13]]))
}

/// The IP packet a frame carries.
pub(crate) fn ip_of(f: &[u8]) -> Option<&[u8]> {
    match ethertype(f)? {
        ETH_IPV4 | ETH_IPV6 => Some(&f[HEADER..]),
        _ => None,
    }
}

/// Where the IP packet of a frame starts, if it carries one.
pub(crate) fn ip_offset(f: &[u8]) -> Option<usize> {
    ip_of(f).map(|_| HEADER)
}

/// The address a frame is about: the target of an ARP packet or of a neighbor
/// solicitation, else the IP destination. None for anything else.
pub(crate) fn target(f: &[u8]) -> Option<IpAddr> {
    match ethertype(f)? {
        ETH_ARP => {
            // htype 1, ptype IPv4, hlen 6, plen 4; the target IP is the last field.
            let a = &f[HEADER..];
            if a.len() < 28 || a[4] != 6 || a[5] != 4 {
                return None;
            }
            Some(IpAddr::V4(Ipv4Addr::new(a[24], a[25], a[26], a[27])))
        }
        ETH_IPV4 => super::dst_of(&f[HEADER..]),
        ETH_IPV6 => {
            let p = &f[HEADER..];
            if p.len() >= 40 + 24 && p[6] == ICMPV6 && p[40] == NEIGHBOR_SOLICIT {
                let b: [u8; 16] = p[48..64].try_into().expect("16 bytes");
                return Some(IpAddr::V6(Ipv6Addr::from(b)));
            }
            super::dst_of(p)
        }
        _ => None,
    }
}

/// Checksums on an Ethernet link: computed on the way out, not checked on the way in
/// (a veth hands over packets of local senders with the checksum left to offload, as
/// gVisor's runsc also assumes by default). With `tso`, TCP's are left to the link.
pub(crate) fn checksums(tso: bool) -> ChecksumCapabilities {
    let mut c = ChecksumCapabilities::default();
    c.ipv4 = Checksum::Tx;
    c.udp = Checksum::Tx;
    c.tcp = if tso { Checksum::None } else { Checksum::Tx };
    c.icmpv4 = Checksum::Tx;
    c.icmpv6 = Checksum::Tx;
    c
}

/// What the stack's Ethernet link looks like from outside: for queries over the stack's
/// interfaces (netlink, /proc/net, SIOCGIF*). The loopback addresses are not in it.
#[derive(Clone, Debug)]
pub struct EthernetInfo {
    pub config: super::EthernetConfig,
    pub addrs: Vec<(IpAddr, u8)>,
}

impl super::Stack {
    /// The Ethernet link (name, index, MAC, MTU, routes, addresses), if there is one.
    pub fn ethernet(&self) -> Option<EthernetInfo> {
        self.h.sh.peek(|i| {
            i.dev.links.iter().find_map(|l| {
                Some(EthernetInfo {
                    config: l.ethernet.clone()?,
                    addrs: l
                        .nets
                        .iter()
                        .map(|c| (IpAddr::from(c.address()), c.prefix_len()))
                        .collect(),
                })
            })
        })
    }
}

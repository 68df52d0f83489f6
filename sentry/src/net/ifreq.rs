//! Interface ioctls on sockets (struct ifreq / struct ifconf), answered from the
//! netstack's interfaces: SIOCGIFCONF, SIOCGIFNAME, SIOCGIFINDEX, SIOCGIFFLAGS,
//! SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFTXQLEN, SIOCGIFMAP on every socket, and the IPv4 address ones
//! (SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFBRDADDR, SIOCGIFDSTADDR) on AF_INET sockets, as
//! Linux splits them between dev_ioctl and devinet_ioctl. Setting anything fails.

use super::inet;
use crate::errno::*;
use crate::kernel::{cap, Task};
use netstack::{HwKind, IfaceInfo};
use std::net::{IpAddr, Ipv4Addr};

const SIOCGIFNAME: u32 = 0x8910;
const SIOCGIFCONF: u32 = 0x8912;
const SIOCGIFFLAGS: u32 = 0x8913;
const SIOCGIFADDR: u32 = 0x8915;
const SIOCGIFDSTADDR: u32 = 0x8917;
const SIOCGIFBRDADDR: u32 = 0x8919;
const SIOCGIFNETMASK: u32 = 0x891b;
const SIOCGIFMETRIC: u32 = 0x891d;
const SIOCGIFMTU: u32 = 0x8921;
const SIOCGIFHWADDR: u32 = 0x8927;
const SIOCGIFINDEX: u32 = 0x8933;
const SIOCGIFTXQLEN: u32 = 0x8942;
const SIOCGIFMAP: u32 = 0x8970;

/// SIOCADDRT, SIOCDELRT, SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFDSTADDR, SIOCSIFBRDADDR,
/// SIOCSIFNETMASK, SIOCSIFMETRIC, SIOCSIFMTU, SIOCSIFNAME, SIOCSIFHWADDR, SIOCDIFADDR,
/// SIOCSIFTXQLEN.
const SETTERS: [u32; 13] = [
    0x890b, 0x890c, 0x8914, 0x8916, 0x8918, 0x891a, 0x891c, 0x891e, 0x8922, 0x8923, 0x8924, 0x8936,
    0x8943,
];

/// sizeof(struct ifreq), IFNAMSIZ.
const IFREQ_LEN: usize = 40;
const IFNAMSIZ: usize = 16;

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 0xfffe;

/// Whether `cmd` is one of the socket ioctls Linux's sock_ioctl knows (0x89xx).
pub fn is_socket_ioctl(cmd: u32) -> bool {
    cmd & 0xff00 == 0x8900
}

fn sockaddr_in(a: Ipv4Addr) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
    b[4..8].copy_from_slice(&a.octets());
    b
}

fn ipv4_of(i: &IfaceInfo) -> Option<(Ipv4Addr, u8)> {
    i.addrs.iter().find_map(|&(a, p)| match a {
        IpAddr::V4(v) => Some((v, p)),
        _ => None,
    })
}

/// An interface ioctl; `inet4`: the socket is AF_INET. Unknown commands are ENOTTY.
pub fn ioctl_for(t: &Task, cmd: u32, arg: u64, inet4: bool) -> SysResult {
    let (ifaces, _) = super::ifaces(&t.kernel);
    let mm = t.mm();
    if cmd == SIOCGIFCONF {
        // struct ifconf { int ifc_len; char *ifc_buf; }
        let len: i32 = mm.read_obj(arg)?;
        let buf: u64 = mm.read_obj(arg + 8)?;
        let mut out = 0usize;
        for i in &ifaces {
            for &(a, _) in &i.addrs {
                let IpAddr::V4(v) = a else { continue };
                if buf != 0 {
                    if (len as usize) < out + IFREQ_LEN || len < 0 {
                        break;
                    }
                    let mut r = [0u8; IFREQ_LEN];
                    let n = i.name.len().min(IFNAMSIZ - 1);
                    r[..n].copy_from_slice(&i.name.as_bytes()[..n]);
                    r[16..32].copy_from_slice(&sockaddr_in(v));
                    mm.write(buf + out as u64, &r)?;
                }
                out += IFREQ_LEN;
            }
        }
        mm.write_obj(arg, &(out as i32))?;
        return Ok(0);
    }
    let known = matches!(
        cmd,
        SIOCGIFNAME
            | SIOCGIFFLAGS
            | SIOCGIFMETRIC
            | SIOCGIFMTU
            | SIOCGIFHWADDR
            | SIOCGIFINDEX
            | SIOCGIFTXQLEN
            | SIOCGIFMAP
    ) || (inet4
        && matches!(
            cmd,
            SIOCGIFADDR | SIOCGIFDSTADDR | SIOCGIFBRDADDR | SIOCGIFNETMASK
        ));
    if !known {
        if !is_socket_ioctl(cmd) {
            return Err(ENOTTY);
        }
        // The setting ones need CAP_NET_ADMIN first; rvisor's configuration is fixed.
        if SETTERS.contains(&cmd) && !t.creds().has_cap(cap::NET_ADMIN) {
            return Err(EPERM);
        }
        inet::unsupported(&t.kernel, format!("socket ioctl {cmd:#x}"));
        return Err(EOPNOTSUPP);
    }
    let mut r: [u8; IFREQ_LEN] = mm.read_obj(arg)?;
    let find = |r: &[u8; IFREQ_LEN]| -> KResult<IfaceInfo> {
        let mut name = r[..IFNAMSIZ].to_vec();
        name[IFNAMSIZ - 1] = 0;
        let end = name.iter().position(|&c| c == 0).unwrap_or(IFNAMSIZ);
        ifaces
            .iter()
            .find(|i| i.name.as_bytes() == &name[..end])
            .cloned()
            .ok_or(ENODEV)
    };
    let int = |r: &mut [u8; IFREQ_LEN], v: i32| r[16..20].copy_from_slice(&v.to_le_bytes());
    match cmd {
        SIOCGIFNAME => {
            let index = i32::from_le_bytes(r[16..20].try_into().expect("4 bytes"));
            let i = ifaces
                .iter()
                .find(|i| i.index as i32 == index)
                .ok_or(ENODEV)?;
            r[..IFNAMSIZ].fill(0);
            let n = i.name.len().min(IFNAMSIZ - 1);
            r[..n].copy_from_slice(&i.name.as_bytes()[..n]);
        }
        SIOCGIFINDEX => {
            let i = find(&r)?;
            int(&mut r, i.index as i32);
        }
        SIOCGIFFLAGS => {
            let i = find(&r)?;
            r[16..18].copy_from_slice(&(i.flags as u16).to_le_bytes());
        }
        SIOCGIFMETRIC => {
            find(&r)?;
            int(&mut r, 0);
        }
        SIOCGIFMTU => {
            let i = find(&r)?;
            int(&mut r, i.mtu as i32);
        }
        SIOCGIFTXQLEN => {
            find(&r)?;
            int(&mut r, 1000);
        }
        SIOCGIFMAP => {
            // struct ifmap: the device's memory, I/O port, IRQ and DMA, which virtual
            // devices have none of (net-tools' ifconfig asks); zeros also for a host
            // device under --network host, whose are not read.
            find(&r)?;
            r[16..].fill(0);
        }
        SIOCGIFHWADDR => {
            let i = find(&r)?;
            let hw = match i.kind {
                HwKind::Loopback => ARPHRD_LOOPBACK,
                HwKind::Ethernet => ARPHRD_ETHER,
                HwKind::Ip => ARPHRD_NONE,
            };
            r[16..32].fill(0);
            r[16..18].copy_from_slice(&hw.to_le_bytes());
            r[18..24].copy_from_slice(&i.mac);
        }
        _ => {
            let i = find(&r)?;
            let (a, p) = ipv4_of(&i).ok_or(EADDRNOTAVAIL)?;
            let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - p as u32).unwrap_or(0));
            let v = match cmd {
                SIOCGIFADDR | SIOCGIFDSTADDR => a,
                SIOCGIFNETMASK => mask,
                _ if i.kind == HwKind::Loopback || p >= 31 => Ipv4Addr::UNSPECIFIED,
                _ => Ipv4Addr::from(u32::from(a) | !u32::from(mask)),
            };
            r[16..32].copy_from_slice(&sockaddr_in(v));
        }
    }
    mm.write(arg, &r)?;
    Ok(0)
}

/// An interface ioctl on a socket that is not AF_INET.
pub fn ioctl(t: &Task, cmd: u32, arg: u64) -> SysResult {
    ioctl_for(t, cmd, arg, false)
}

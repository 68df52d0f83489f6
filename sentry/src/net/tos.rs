//! IP_TOS and IPV6_TCLASS on inet sockets: the option values as Linux checks them, and
//! the per-datagram control messages of sendmsg (IP_TOS / IPV6_TCLASS, IP_TTL /
//! IPV6_HOPLIMIT) as Linux's ip_cmsg_send (IPv4 destinations) and ip6_datagram_send_ctl
//! (IPv6 ones) take them.

use crate::errno::*;
use crate::kernel::Kernel;

pub const IP_TOS: i32 = 1;
const IP_TTL: i32 = 2;
const IPV6_HOPLIMIT: i32 = 52;
pub const IP_RECVTOS: i32 = 13;
pub const IPV6_RECVTCLASS: i32 = 66;
pub const IPV6_TCLASS: i32 = 67;

const SOL_SOCKET: i32 = 1;
const SOL_IP: i32 = 0;
const SOL_IPV6: i32 = 41;
/// sizeof(struct cmsghdr) and CMSG_LEN(n).
const CMSG_HDR: usize = 16;
const INET_ECN_MASK: i32 = 3;

/// An IP-level option that may be given as an int or, shorter, one byte (Linux's
/// do_ip_setsockopt; an empty value is 0).
pub fn ip_int_or_byte(val: &[u8]) -> i32 {
    match val.len() {
        0 => 0,
        1..=3 => val[0] as i32,
        _ => i32::from_le_bytes(val[..4].try_into().expect("4 bytes")),
    }
}

/// The new IP_TOS / IPV6_TCLASS of a socket: a TCP socket's ECN bits stay the stack's
/// (`old`'s), as Linux keeps them under TCP's control.
pub fn masked(stream: bool, old: i32, v: i32) -> i32 {
    if stream {
        (v & !INET_ECN_MASK) | (old & INET_ECN_MASK)
    } else {
        v
    }
}

/// What one datagram asked for in its control messages.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct SendCtl {
    pub tos: Option<u8>,
    pub tclass: Option<u8>,
    pub hop_limit: Option<u8>,
}

/// Parse sendmsg's control data for a datagram to an IPv4 (`v4`) or IPv6 destination.
/// Messages this stack does not act on are logged once and otherwise ignored, as before.
pub fn parse_send(k: &Kernel, ctl: &[u8], v4: bool) -> KResult<SendCtl> {
    let mut out = SendCtl::default();
    let mut off = 0;
    while off + CMSG_HDR <= ctl.len() {
        let len = u64::from_le_bytes(ctl[off..off + 8].try_into().expect("8 bytes")) as usize;
        let level = i32::from_le_bytes(ctl[off + 8..off + 12].try_into().expect("4 bytes"));
        let ty = i32::from_le_bytes(ctl[off + 12..off + 16].try_into().expect("4 bytes"));
        if len < CMSG_HDR || len > ctl.len() - off {
            return Err(EINVAL);
        }
        let data = &ctl[off + CMSG_HDR..off + len];
        let int = || {
            data.get(..4)
                .map(|b| i32::from_le_bytes(b.try_into().expect("4")))
        };
        match (v4, level, ty) {
            (true, SOL_IP, IP_TOS) => {
                let v = match data.len() {
                    4 => int().expect("4 bytes"),
                    1 => data[0] as i32,
                    _ => return Err(EINVAL),
                };
                if !(0..=255).contains(&v) {
                    return Err(EINVAL);
                }
                out.tos = Some(v as u8);
            }
            (false, SOL_IPV6, IPV6_TCLASS) => {
                let v = match data.len() {
                    4 => int().expect("4 bytes"),
                    _ => return Err(EINVAL),
                };
                if !(-1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                // Linux 6.x sends a -1 as it is: 0xff (not the socket's class).
                out.tclass = Some(v as u8);
            }
            (true, SOL_IP, IP_TTL) => {
                let v = int().filter(|_| data.len() == 4).ok_or(EINVAL)?;
                if !(1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                out.hop_limit = Some(v as u8);
            }
            (false, SOL_IPV6, IPV6_HOPLIMIT) => {
                let v = int().filter(|_| data.len() == 4).ok_or(EINVAL)?;
                if !(-1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                if v == 0 {
                    // smoltcp cannot send a packet with hop limit 0.
                    super::inet::unsupported(k, "a hop limit of 0".into());
                    return Err(EINVAL);
                }
                // -1: the socket's.
                out.hop_limit = (v != -1).then_some(v as u8);
            }
            // Linux looks only at its own level's messages (and SOL_SOCKET's).
            (true, SOL_IP, _) | (false, SOL_IPV6, _) | (_, SOL_SOCKET, _) => {
                super::inet::unsupported(
                    k,
                    format!("control message level {level} type {ty} in sendmsg on inet sockets"),
                );
            }
            _ => {}
        }
        off += (len + 7) & !7;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_keeps_its_ecn_bits() {
        assert_eq!(masked(true, 0, 0xff), 0xfc);
        assert_eq!(masked(true, 2, 0x11), 0x12);
        assert_eq!(masked(false, 0, 0xff), 0xff);
        assert_eq!(ip_int_or_byte(&[]), 0);
        assert_eq!(ip_int_or_byte(&[0x28, 9]), 0x28);
        assert_eq!(ip_int_or_byte(&0x1234i32.to_le_bytes()), 0x1234);
    }
}

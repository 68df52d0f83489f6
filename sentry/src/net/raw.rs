//! Raw inet sockets, socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) and socket(AF_INET6,
//! SOCK_RAW, IPPROTO_ICMPV6), for tasks with CAP_NET_RAW (busybox ping uses them): who may
//! make one, and the options only raw sockets have (ICMP_FILTER, ICMP6_FILTER,
//! IPV6_CHECKSUM, IP_HDRINCL). The sockets themselves are `netstack::RawSocket`s behind
//! `InetSock`: IPv4 ones receive the IP header, ICMPv6 ones do not.

use super::inet::{unsupported, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IP, IPPROTO_IPV6};
use super::*;
use netstack::RawSocket;

const CAP_NET_RAW: u32 = 13;
const SOL_RAW: i32 = 255;
/// ICMP_FILTER (SOL_RAW) and ICMP6_FILTER (IPPROTO_ICMPV6).
const ICMP_FILTER: i32 = 1;
const ICMP6_FILTER: i32 = 1;
const IPV6_CHECKSUM: i32 = 7;
const IP_HDRINCL: i32 = 3;

/// socket(2)'s checks for SOCK_RAW: only ICMP (ICMPv6 for AF_INET6) is there.
pub fn check(t: &Task, domain: i32, proto: i32) -> KResult<()> {
    if proto == IPPROTO_IP {
        return Err(EPROTONOSUPPORT);
    }
    if !t.creds().has_cap(CAP_NET_RAW) {
        return Err(EPERM);
    }
    let icmp = if domain == AF_INET {
        IPPROTO_ICMP
    } else {
        IPPROTO_ICMPV6
    };
    if proto != icmp {
        unsupported(&t.kernel, format!("raw inet sockets of protocol {proto}"));
        return Err(EPROTONOSUPPORT);
    }
    Ok(())
}

/// getsockopt(2) of a raw-only option; None: not one.
pub fn getsockopt(
    s: &RawSocket,
    v6: bool,
    level: i32,
    name: i32,
    len: usize,
) -> Option<KResult<Vec<u8>>> {
    let filter = |n: usize| {
        let b: Vec<u8> = s.filter()[..n]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        Ok(b[..len.min(b.len())].to_vec())
    };
    Some(match (level, name) {
        (SOL_RAW, ICMP_FILTER) if !v6 => filter(1),
        (IPPROTO_ICMPV6, ICMP6_FILTER) if v6 => filter(8),
        (SOL_RAW | IPPROTO_IPV6, IPV6_CHECKSUM) if v6 => {
            let v = s.checksum().map_or(-1, |o| o as i32);
            Ok(v.to_le_bytes().to_vec())
        }
        (IPPROTO_IP, IP_HDRINCL) => Ok(0i32.to_le_bytes().to_vec()),
        (SOL_RAW, _) | (IPPROTO_ICMPV6, _) => Err(ENOPROTOOPT),
        _ => return None,
    })
}

/// setsockopt(2) of a raw-only option; None: not one.
pub fn setsockopt(
    t: &Task,
    s: &RawSocket,
    v6: bool,
    level: i32,
    name: i32,
    val: &[u8],
) -> Option<KResult<()>> {
    // A filter may be given short: only the bytes given change, as on Linux.
    let set_filter = |n: usize| {
        let mut b: Vec<u8> = s.filter()[..n]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let k = val.len().min(b.len());
        b[..k].copy_from_slice(&val[..k]);
        let mut f = [0u32; 8];
        for (w, c) in f.iter_mut().zip(b.chunks(4)) {
            *w = u32::from_le_bytes(c.try_into().expect("4 bytes"));
        }
        s.set_filter(f);
        Ok(())
    };
    Some(match (level, name) {
        (SOL_RAW, ICMP_FILTER) if !v6 => set_filter(1),
        (IPPROTO_ICMPV6, ICMP6_FILTER) if v6 => set_filter(8),
        // RFC 3542: not at the IPv6 level on ICMPv6 sockets (Linux's SOL_RAW one works).
        (IPPROTO_IPV6, IPV6_CHECKSUM) if v6 => Err(EINVAL),
        (SOL_RAW, IPV6_CHECKSUM) if v6 => set_checksum(s, val),
        (IPPROTO_IP, IP_HDRINCL) => set_hdrincl(t, val),
        (SOL_RAW, _) | (IPPROTO_ICMPV6, _) => {
            unsupported(
                &t.kernel,
                format!("setsockopt(level {level}, option {name}) on raw sockets"),
            );
            Err(ENOPROTOOPT)
        }
        _ => return None,
    })
}

/// IPV6_CHECKSUM: an even offset, or negative for none.
fn set_checksum(s: &RawSocket, val: &[u8]) -> KResult<()> {
    let v = opt_int(val)?;
    if v > 0 && v & 1 != 0 {
        return Err(EINVAL);
    }
    s.set_checksum((v >= 0).then_some(v as usize));
    Ok(())
}

/// IP_HDRINCL: the application's own IP header is not supported (0 is what it is).
fn set_hdrincl(t: &Task, val: &[u8]) -> KResult<()> {
    if opt_int(val)? != 0 {
        unsupported(&t.kernel, "IP_HDRINCL on raw sockets".into());
        return Err(ENOPROTOOPT);
    }
    Ok(())
}

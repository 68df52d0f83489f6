//! ICMP echo ("ping") sockets, socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and the IPv6
//! twin: who may make one (net.ipv4.ping_group_range, as Linux's ping_init_sock), and
//! that sysctl. The sockets themselves are `netstack::PingSocket`s behind `InetSock`.

use super::*;
use crate::kernel::Kernel;

/// Whether `t` may make a ping socket: its effective or a supplementary gid is in the
/// range (CAP_NET_RAW does not matter, as on Linux).
pub fn allowed(t: &Task) -> bool {
    let (lo, hi) = *t.kernel.ping_group_range.lock();
    let c = t.creds();
    std::iter::once(c.egid)
        .chain(c.groups.iter().copied())
        .any(|g| lo <= g && g <= hi)
}

/// /proc/sys/net/ipv4/ping_group_range as read.
pub fn range_text(k: &Arc<Kernel>) -> String {
    let (lo, hi) = *k.ping_group_range.lock();
    format!("{lo}\t{hi}\n")
}

/// A write to /proc/sys/net/ipv4/ping_group_range: one or two gids (one sets the low
/// end only; past two are ignored); a reversed range means nobody ("1 0"), an invalid
/// gid is EINVAL.
pub fn set_range(k: &Arc<Kernel>, text: &[u8]) -> KResult<()> {
    let s = std::str::from_utf8(text).map_err(|_| EINVAL)?;
    let gid = |w: &str| match w.parse::<u32>() {
        Ok(g) if g != u32::MAX => Ok(g),
        _ => Err(EINVAL),
    };
    let mut words = s.split_whitespace();
    let lo = gid(words.next().ok_or(EINVAL)?)?;
    let mut r = k.ping_group_range.lock();
    let hi = match words.next() {
        Some(w) => gid(w)?,
        None => r.1,
    };
    *r = if hi < lo { (1, 0) } else { (lo, hi) };
    Ok(())
}

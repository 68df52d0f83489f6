//! The sandbox's external link: the runtime (`rvisor create`, network mode `sandbox`)
//! hands over a packet socket bound to the container's veth with the link's
//! configuration, and the link joins the sandbox's netstack as an Ethernet interface.

use crate::kernel::Kernel;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// `NAME INDEX MAC MTU [addr=IP/P]... [gw4=IP] [gw6=IP] [route=IP/P,VIA]...` with the
/// packet socket in `fds`.
pub fn attach(k: &Arc<Kernel>, args: &str, fds: Vec<OwnedFd>) -> Result<(), String> {
    let mut fds = fds.into_iter();
    let (Some(fd), None) = (fds.next(), fds.next()) else {
        return Err("net: expected one packet socket".into());
    };
    let (cfg, eth) = parse(args)?;
    let name = eth.name.clone();
    let link = netstack::LinkConfig {
        link: Box::new(netstack::PacketLink::new(fd)),
        ethernet: Some(eth),
        ..cfg
    };
    super::inet::stack(k)
        .add_link(link)
        .map_err(|_| format!("net: link {name}: only one external link is supported"))
}

/// Parse the request into the link's configuration (with a placeholder link).
fn parse(args: &str) -> Result<(netstack::LinkConfig, netstack::EthernetConfig), String> {
    let bad = |what: &str| format!("net: bad {what} in {args:?}");
    let mut w = args.split_whitespace();
    let name = w.next().ok_or_else(|| bad("name"))?.to_string();
    let index = w
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("index"))?;
    let mac = w.next().and_then(parse_mac).ok_or_else(|| bad("MAC"))?;
    let mtu = w
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("MTU"))?;
    let mut eth = netstack::EthernetConfig {
        name,
        index,
        mac,
        mtu,
        routes: vec![],
    };
    let mut cfg = netstack::LinkConfig {
        link: Box::new(NoLink),
        addrs: vec![],
        gateway4: None,
        gateway6: None,
        ethernet: None,
    };
    for kv in w {
        let (k, v) = kv.split_once('=').ok_or_else(|| bad(kv))?;
        match k {
            "addr" => cfg.addrs.push(parse_net(v).ok_or_else(|| bad(kv))?),
            "gw4" => match v.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => cfg.gateway4 = Some(a),
                _ => return Err(bad(kv)),
            },
            "gw6" => match v.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) => cfg.gateway6 = Some(a),
                _ => return Err(bad(kv)),
            },
            "route" => {
                let (n, via) = v.split_once(',').ok_or_else(|| bad(kv))?;
                let (d, p) = parse_net(n).ok_or_else(|| bad(kv))?;
                let via = via.parse().map_err(|_| bad(kv))?;
                eth.routes.push((d, p, via));
            }
            _ => return Err(bad(kv)),
        }
    }
    Ok((cfg, eth))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    (p <= if a.is_ipv4() { 32 } else { 128 }).then_some((a, p))
}

/// The placeholder link of a configuration being parsed.
struct NoLink;

impl netstack::Link for NoLink {
    fn transmit(&mut self, _: &[u8]) {}
    fn receive(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn set_notify(&mut self, _: netstack::LinkNotify) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_link() {
        let (c, e) = parse("eth0 7 02:42:ac:11:00:02 1500 addr=172.17.0.2/16 addr=fe80::42:acff:fe11:2/64 gw4=172.17.0.1 route=10.0.0.0/8,172.17.0.254").unwrap();
        assert_eq!((e.name.as_str(), e.index, e.mtu), ("eth0", 7, 1500));
        assert_eq!(e.mac, [2, 0x42, 0xac, 0x11, 0, 2]);
        assert_eq!(c.addrs.len(), 2);
        assert_eq!(c.gateway4, Some("172.17.0.1".parse().unwrap()));
        assert_eq!(e.routes.len(), 1);
        assert!(parse("eth0 7 02:42:ac:11:00 1500").is_err());
        assert!(parse("eth0 7 02:42:ac:11:00:02 1500 addr=1.2.3.4/40").is_err());
        assert!(parse("eth0 7 02:42:ac:11:00:02 1500 gw4=::1").is_err());
    }
}

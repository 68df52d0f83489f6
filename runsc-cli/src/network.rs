//! Network modes (`--network`) and, in `sandbox` mode, taking over the container's
//! network namespace at create: its links, addresses, MACs and routes are read with
//! netlink, a packet socket is bound to each link, the addresses are removed from the host
//! kernel's view (so it neither answers ARP nor resets connections for them, as gVisor's
//! runsc does) and the sockets with their configuration go to the Sentry.

use anyhow::{anyhow, bail, Context as _, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use sentry::net::hostinet;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// How the sandbox reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Loopback only.
    None,
    /// rvisor's own stack on the links of the container's network namespace.
    Sandbox,
    /// The host's network, shared: inet sockets are host sockets the Sentry operates
    /// (weaker isolation; see the Sentry's net/hostinet.rs).
    Host,
}

impl Mode {
    /// The `--network` value; None (flag not given) picks `sandbox` when the spec names a
    /// network namespace, `none` otherwise.
    pub fn parse(flag: Option<&str>) -> Result<Option<Mode>> {
        match flag {
            None => Ok(None),
            Some("none") => Ok(Some(Mode::None)),
            Some("sandbox") => Ok(Some(Mode::Sandbox)),
            Some("host") => Ok(Some(Mode::Host)),
            Some(m) => bail!("unknown network mode {m:?} (expected none, sandbox or host)"),
        }
    }
}

/// One link of the namespace, as the Sentry gets it.
#[derive(Debug, Default)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub addrs: Vec<(IpAddr, u8)>,
    pub gw4: Option<IpAddr>,
    pub gw6: Option<IpAddr>,
    pub routes: Vec<(IpAddr, u8, IpAddr)>,
    /// The addresses as the kernel listed them (to remove them).
    msgs: Vec<AddressMessage>,
}

impl Link {
    /// The `net` control request (see the Sentry's control.rs).
    pub fn request(&self) -> String {
        let m = &self.mac;
        let mut s = format!(
            "net {} {} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} {}",
            self.name, self.index, m[0], m[1], m[2], m[3], m[4], m[5], self.mtu
        );
        for (a, p) in &self.addrs {
            s += &format!(" addr={a}/{p}");
        }
        if let Some(g) = self.gw4 {
            s += &format!(" gw4={g}");
        }
        if let Some(g) = self.gw6 {
            s += &format!(" gw6={g}");
        }
        for (d, p, via) in &self.routes {
            s += &format!(" route={d}/{p},{via}");
        }
        s
    }
}

/// Docker's embedded DNS server, as user-defined networks' resolv.conf names it.
const DOCKER_DNS: &str = "127.0.0.11";

/// In sandbox mode, hand the links of the network namespace of process `pid` to its
/// Sentry (served on the control socket in `dir`), and a way to docker's embedded DNS
/// server when the container's resolv.conf names it. Fails clearly, never hangs.
pub fn setup(pid: i32, dir: &Path, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let ns = format!("/proc/{pid}/ns/net");
    // Never take the runtime's own network (the host's) away from it.
    if ns_id(&ns)? == ns_id("/proc/self/ns/net")? {
        bail!("the container's network namespace is the runtime's own: refusing to take its links over (use --network none)");
    }
    let dns = uses_docker_dns(spec);
    let (taken, dns) = in_netns(&ns, move || {
        let links = take_links()?;
        let dns = match dns {
            true => Some(dns_socket().context("a socket to docker's DNS server")?),
            false => None,
        };
        Ok((links, dns))
    })?;
    if let Some(fd) = dns {
        let reply = send(dir, &format!("dns {DOCKER_DNS}"), &fd)?;
        if reply != "ok" {
            bail!("{}", reply.strip_prefix("error ").unwrap_or(&reply));
        }
    }
    for (l, fd) in taken {
        tracing::debug!("network: {}", l.request());
        let reply = send(dir, &l.request(), &fd)?;
        if reply != "ok" {
            bail!(
                "network link {}: {}",
                l.name,
                reply.strip_prefix("error ").unwrap_or(&reply)
            );
        }
    }
    Ok(())
}

/// Whether the resolv.conf the spec mounts names docker's embedded DNS server.
fn uses_docker_dns(spec: &oci_spec::runtime::Spec) -> bool {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let Some(m) = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/etc/resolv.conf"))
    else {
        return false;
    };
    let Some(src) = m.source() else { return false };
    std::fs::read_to_string(src).is_ok_and(|t| {
        t.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("nameserver") && w.next() == Some(DOCKER_DNS)
        })
    })
}

/// A UDP socket of the current namespace connected to docker's DNS server (reached
/// through docker's DNAT rules there).
fn dns_socket() -> Result<OwnedFd> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.connect((DOCKER_DNS, 53))?;
    Ok(s.into())
}

/// Join the network namespace at `path` (the spec names one that already exists).
pub fn join(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("network namespace {}", path.display()))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("joining the network namespace {}", path.display()))
}

/// (device, inode) of a namespace file.
fn ns_id(path: &str) -> Result<(u64, u64)> {
    let st = nix::sys::stat::stat(path).with_context(|| format!("network namespace {path}"))?;
    Ok((st.st_dev, st.st_ino))
}

/// Run `f` on a thread of its own that has joined the network namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let file = std::fs::File::open(ns).with_context(|| format!("network namespace {ns}"))?;
    let ns = ns.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("joining the network namespace {ns}"))?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("the network set-up thread panicked"))?
}

/// Read the namespace's links; for each one that is up, not loopback, with addresses:
/// open its packet socket and take its addresses away from the host.
fn take_links() -> Result<Vec<(Link, OwnedFd)>> {
    let nl = Netlink::open()?;
    let mut links = read_links(&nl)?;
    links.retain(|l| {
        if l.addrs.is_empty() {
            tracing::warn!("network: link {} has no address, left alone", l.name);
        }
        !l.addrs.is_empty()
    });
    if links.len() > 1 {
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        bail!(
            "the network namespace has {} links with addresses ({}): rvisor supports one",
            links.len(),
            names.join(", ")
        );
    }
    let mut out = vec![];
    for l in links {
        let fd = packet_socket(l.index).with_context(|| format!("packet socket on {}", l.name))?;
        for m in &l.msgs {
            nl.request(RouteNetlinkMessage::DelAddress(m.clone()))
                .with_context(|| format!("removing an address of {} from the host", l.name))?;
        }
        out.push((l, fd));
    }
    Ok(out)
}

fn read_links(nl: &Netlink) -> Result<Vec<Link>> {
    let mut links = vec![];
    for m in nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
        let RouteNetlinkMessage::NewLink(m) = m else {
            continue;
        };
        let h = &m.header;
        if h.flags.contains(LinkFlags::Loopback) || !h.flags.contains(LinkFlags::Up) {
            continue;
        }
        if h.link_layer_type != LinkLayerType::Ether {
            bail!(
                "link {} is not Ethernet ({:?}): not supported",
                h.index,
                h.link_layer_type
            );
        }
        let mut l = Link {
            index: h.index,
            mtu: 1500,
            ..Default::default()
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Address(mac) if mac.len() == 6 => l.mac.copy_from_slice(mac),
                _ => {}
            }
        }
        links.push(l);
    }
    for (ip, m) in addresses(nl)? {
        if let Some(l) = links.iter_mut().find(|l| l.index == m.header.index) {
            l.addrs.push((ip, m.header.prefix_len));
            l.msgs.push(m);
        }
    }
    for m in nl.dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()))? {
        let RouteNetlinkMessage::NewRoute(m) = m else {
            continue;
        };
        // The main table's unicast routes (not local, broadcast, or other tables').
        if m.header.kind != RouteType::Unicast || m.header.table != 254 {
            continue;
        }
        let (mut dst, mut gw, mut oif) = (None, None, None);
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = ip_of(d),
                RouteAttribute::Gateway(g) => gw = ip_of(g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        let (Some(oif), Some(gw)) = (oif, gw) else {
            // Routes without a gateway are the links' own subnets.
            continue;
        };
        let Some(l) = links.iter_mut().find(|l| l.index == oif) else {
            continue;
        };
        let plen = m.header.destination_prefix_length;
        match dst {
            None if plen == 0 && gw.is_ipv4() => l.gw4 = Some(gw),
            None if plen == 0 => l.gw6 = Some(gw),
            Some(d) => l.routes.push((d, plen, gw)),
            None => {}
        }
    }
    Ok(links)
}

/// The namespace's addresses, each with its message. IFA_LOCAL is the address itself
/// (IFA_ADDRESS is the peer's on point-to-point); a message with neither is left out.
fn addresses(nl: &Netlink) -> Result<Vec<(IpAddr, AddressMessage)>> {
    let mut out = vec![];
    for m in nl.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))? {
        let RouteNetlinkMessage::NewAddress(m) = m else {
            continue;
        };
        let mut addr = None;
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(ip) => addr = Some(*ip),
                AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
                _ => {}
            }
        }
        if let Some(ip) = addr {
            out.push((ip, m));
        }
    }
    Ok(out)
}

/// `--network host`: the interfaces, addresses and routes of the current network
/// namespace (the host's), for the Sentry to show the workload. A snapshot: read once,
/// before the Sentry is confined (it keeps no netlink socket of the host).
pub fn host_view() -> Result<(Vec<hostinet::IfaceInfo>, Vec<hostinet::RouteInfo>)> {
    use hostinet::{HwKind, IfaceInfo, RouteInfo, RouteKind};
    let nl = Netlink::open()?;
    let mut ifaces = vec![];
    for m in nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
        let RouteNetlinkMessage::NewLink(m) = m else {
            continue;
        };
        let h = &m.header;
        let mut i = IfaceInfo {
            index: h.index,
            name: String::new(),
            kind: match h.link_layer_type {
                LinkLayerType::Loopback => HwKind::Loopback,
                LinkLayerType::Ether => HwKind::Ethernet,
                _ => HwKind::Ip,
            },
            mac: [0; 6],
            mtu: 1500,
            flags: h.flags.bits(),
            addrs: vec![],
            stats: Default::default(),
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => i.name = n.clone(),
                LinkAttribute::Mtu(v) => i.mtu = *v,
                LinkAttribute::Address(mac) if mac.len() == 6 => i.mac.copy_from_slice(mac),
                LinkAttribute::Stats64(s) => {
                    i.stats.rx_packets = s.rx_packets;
                    i.stats.rx_bytes = s.rx_bytes;
                    i.stats.tx_packets = s.tx_packets;
                    i.stats.tx_bytes = s.tx_bytes;
                }
                _ => {}
            }
        }
        ifaces.push(i);
    }
    for (ip, m) in addresses(&nl)? {
        if let Some(i) = ifaces.iter_mut().find(|i| i.index == m.header.index) {
            i.addrs.push((ip, m.header.prefix_len));
        }
    }
    let mut routes = vec![];
    for m in nl.dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()))? {
        let RouteNetlinkMessage::NewRoute(m) = m else {
            continue;
        };
        // The main and local tables, as the netstack's routes have them.
        let kind = match (m.header.kind, m.header.table) {
            (RouteType::Unicast, 254) => RouteKind::Unicast,
            (RouteType::Local, 255) => RouteKind::Local,
            (RouteType::Broadcast, 255) => RouteKind::Broadcast,
            _ => continue,
        };
        let v6 = m.header.address_family == netlink_packet_route::AddressFamily::Inet6;
        let mut r = RouteInfo {
            dst: if v6 {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            },
            prefix: m.header.destination_prefix_length,
            gateway: None,
            src: None,
            ifindex: 0,
            kind,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => r.dst = ip_of(d).unwrap_or(r.dst),
                RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
                RouteAttribute::PrefSource(s) => r.src = ip_of(s),
                RouteAttribute::Oif(i) => r.ifindex = *i,
                _ => {}
            }
        }
        routes.push(r);
    }
    // Main-table routes first, then local-table ones (as the netstack lists them).
    routes.sort_by_key(|r| r.kind != RouteKind::Unicast);
    Ok((ifaces, routes))
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// A route netlink socket of the current thread's network namespace.
struct Netlink {
    sock: Socket,
    seq: std::cell::Cell<u32>,
}

impl Netlink {
    fn open() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
        sock.bind_auto().context("netlink bind")?;
        sock.connect(&SocketAddr::new(0, 0))
            .context("netlink connect")?;
        Ok(Netlink {
            sock,
            seq: std::cell::Cell::new(1),
        })
    }

    fn send(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        let mut h = NetlinkHeader::default();
        h.flags = NLM_F_REQUEST | flags;
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        h.sequence_number = seq;
        let mut p = NetlinkMessage::new(h, NetlinkPayload::from(msg));
        p.finalize();
        let mut buf = vec![0; p.buffer_len()];
        p.serialize(&mut buf);
        self.sock.send(&buf, 0).context("netlink send")?;
        Ok(seq)
    }

    /// Read the answers to request `seq` until `f` says it is complete.
    fn replies(
        &self,
        seq: u32,
        mut f: impl FnMut(NetlinkPayload<RouteNetlinkMessage>) -> Result<bool>,
    ) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self
                .sock
                .recv(&mut &mut buf[..], 0)
                .context("netlink recv")?;
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..n])
                    .map_err(|e| anyhow!("netlink: bad message: {e}"))?;
                let len = m.header.length as usize;
                if m.header.sequence_number == seq && f(m.payload)? {
                    return Ok(());
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    fn dump(&self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_DUMP)?;
        let mut out = vec![];
        self.replies(seq, |p| match p {
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io().into()),
            NetlinkPayload::InnerMessage(m) => {
                out.push(m);
                Ok(false)
            }
            _ => Ok(false),
        })?;
        Ok(out)
    }

    /// A request answered by an acknowledgement.
    fn request(&self, msg: RouteNetlinkMessage) -> Result<()> {
        let seq = self.send(msg, NLM_F_ACK)?;
        self.replies(seq, |p| match p {
            NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io().into()),
            NetlinkPayload::Error(_) => Ok(true),
            _ => Ok(false),
        })
    }
}

/// An AF_PACKET socket bound to link `index`, for whole Ethernet frames.
fn packet_socket(index: u32) -> Result<OwnedFd> {
    const ETH_P_ALL: u16 = 0x0003;
    /// Not in the libc crate for every target: linux/if_packet.h.
    const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
    const PACKET_VNET_HDR: libc::c_int = 15;
    let proto = ETH_P_ALL.to_be();
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto as libc::c_int,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_PACKET)");
    }
    // SAFETY: fd is a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = proto;
    sa.sll_ifindex = index as i32;
    // SAFETY: bind with a sockaddr_ll of the size we pass.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("bind(AF_PACKET)");
    }
    // Our own frames must not come back to us (Linux >= 4.20).
    setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        .context("PACKET_IGNORE_OUTGOING")?;
    // Frames carry a virtio_net_hdr, so the netstack can send large TCP frames that the
    // kernel segments (GSO). Without it (old kernels) the netstack sends plain frames.
    if let Err(e) = setsockopt(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1) {
        tracing::warn!("PACKET_VNET_HDR: {e}; no segmentation offload");
    }
    // The default buffers (rmem_max, ~200 KiB) drop frames at speed; gVisor uses 4 MiB.
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        if let Err(e) = setsockopt(&fd, libc::SOL_SOCKET, opt, 4 << 20) {
            tracing::warn!("packet socket buffer size: {e}");
        }
    }
    Ok(fd)
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> Result<()> {
    // SAFETY: setsockopt reads one c_int from &v.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// Send `req` with `fd` attached over the control socket in `dir`; the reply line.
fn send(dir: &Path, req: &str, fd: &OwnedFd) -> Result<String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::io::BufRead as _;
    let d = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let path = format!("/proc/self/fd/{}/ctl", d.as_raw_fd());
    let s = std::os::unix::net::UnixStream::connect(&path).context("control socket")?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let line = format!("{req}\n");
    let iov = [std::io::IoSlice::new(line.as_bytes())];
    sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&[fd.as_raw_fd()])],
        MsgFlags::empty(),
        None,
    )
    .context("sending the network configuration to the sandbox")?;
    let mut reply = String::new();
    std::io::BufReader::new(&s)
        .read_line(&mut reply)
        .context("the sandbox's answer to the network configuration")?;
    Ok(reply.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn ip(args: &str) -> String {
        let out = Command::new("ip")
            .args(args.split_whitespace())
            .output()
            .expect("run ip");
        assert!(out.status.success(), "ip {args}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Removes the namespace and the veth however the test ends.
    struct Ns(String);

    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse(None).unwrap(), None);
        assert_eq!(Mode::parse(Some("none")).unwrap(), Some(Mode::None));
        assert_eq!(Mode::parse(Some("sandbox")).unwrap(), Some(Mode::Sandbox));
        assert_eq!(Mode::parse(Some("host")).unwrap(), Some(Mode::Host));
        let e = Mode::parse(Some("bridge")).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown network mode \"bridge\" (expected none, sandbox or host)"
        );
    }

    #[test]
    fn takes_a_veth_over() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || Command::new("ip").arg("-V").output().is_err() {
            eprintln!("SKIPPED: takes_a_veth_over needs root and iproute2");
            return;
        }
        let ns = Ns(format!("rvisor-nettest-{}", std::process::id()));
        let n = &ns.0;
        ip(&format!("netns add {n}"));
        ip(&format!("-n {n} link add rvt0 type veth peer name rvt1"));
        ip(&format!(
            "-n {n} link set rvt1 address 02:00:0a:4d:00:02 mtu 1400 up"
        ));
        ip(&format!("-n {n} addr add 10.77.0.2/24 dev rvt1"));
        ip(&format!("-n {n} route add default via 10.77.0.1"));
        ip(&format!("-n {n} route add 10.88.0.0/16 via 10.77.0.3"));
        // rvt0 is down: left alone. rvt1 is taken over.
        let taken = in_netns(&format!("/run/netns/{n}"), take_links).expect("take_links");
        assert_eq!(taken.len(), 1, "{taken:?}");
        let l = &taken[0].0;
        assert_eq!((l.name.as_str(), l.mtu), ("rvt1", 1400));
        assert_eq!(l.mac, [2, 0, 10, 77, 0, 2]);
        assert!(
            l.addrs.contains(&("10.77.0.2".parse().unwrap(), 24)),
            "{l:?}"
        );
        assert_eq!(l.gw4, Some("10.77.0.1".parse().unwrap()));
        assert_eq!(
            l.routes,
            vec![(
                "10.88.0.0".parse().unwrap(),
                16,
                "10.77.0.3".parse().unwrap()
            )]
        );
        assert!(l.request().starts_with("net rvt1 "), "{}", l.request());
        // The host kernel's view of the namespace keeps no address on it.
        let left = ip(&format!("-n {n} -o addr show dev rvt1"));
        assert!(!left.contains("inet"), "{left}");
        // A missing namespace is a clear error.
        let e = in_netns("/run/netns/rvisor-no-such-ns", take_links).unwrap_err();
        assert!(format!("{e:#}").contains("network namespace"), "{e:#}");
    }
}

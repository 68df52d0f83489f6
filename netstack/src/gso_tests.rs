//! The packet link's segmentation offload: which segments join, the joined frame's
//! headers and virtio_net_hdr, and a TCP transfer between two stacks whose link joins
//! frames on one side and cuts them up again, as the host kernel does, on the other.

use super::eth_tests::tcp_across;
use super::gso::*;
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

const SRC4: [u8; 4] = [10, 1, 0, 1];
const DST4: [u8; 4] = [10, 1, 0, 2];
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|w| u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The pseudo-header's sum for a TCP segment of `len` bytes in the IP packet `ip`.
fn pseudo(ip: &[u8], len: usize) -> u32 {
    let addrs = if ip[0] >> 4 == 6 {
        &ip[8..40]
    } else {
        &ip[12..20]
    };
    sum(addrs) + 6 + len as u32
}

/// The TCP checksum of the frame's segment, computed from scratch.
fn tcp_csum(f: &[u8], tcp: usize) -> u16 {
    let mut seg = f[tcp..].to_vec();
    seg[16..18].fill(0);
    !fold(pseudo(&f[14..], seg.len()) + sum(&seg))
}

/// An Ethernet frame with a TCP segment (20-byte header plus 12 bytes of options).
fn frame(v6: bool, seq: u32, ack: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    let tcp_len = 32 + data.len();
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        f.extend_from_slice(&[6, 64]);
        f.extend_from_slice(&[0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 7, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&SRC4);
        f.extend_from_slice(&DST4);
        let c = !fold(sum(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let tcp = f.len();
    f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x80, flags, 0x10, 0x00, 0, 0, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3]);
    f.extend_from_slice(data);
    let c = tcp_csum(&f, tcp);
    f[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
    f
}

/// What a Gso sends for `frames`, each frame with its virtio_net_hdr.
fn run(frames: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut g = Gso::default();
    let mut out = vec![];
    for f in frames {
        g.push(f, &mut |h, f| out.push((*h, f.to_vec())));
    }
    g.flush(&mut |h, f| out.push((*h, f.to_vec())));
    out
}

fn payload(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(7) ^ salt).collect()
}

fn le16(h: &VnetHdr, o: usize) -> u16 {
    u16::from_le_bytes([h[o], h[o + 1]])
}

#[test]
fn segments_in_sequence_join_into_one_offloaded_frame() {
    for v6 in [false, true] {
        let (ip, tcp) = if v6 { (40, 54) } else { (20, 34) };
        let parts = [payload(1000, 1), payload(1000, 2), payload(300, 3)];
        let frames = [
            frame(v6, 5000, 77, ACK, &parts[0]),
            frame(v6, 6000, 77, ACK, &parts[1]),
            frame(v6, 7000, 77, ACK | PSH, &parts[2]),
        ];
        let out = run(&frames);
        assert_eq!(out.len(), 1, "v6 {v6}");
        let (h, f) = &out[0];
        // NEEDS_CSUM; TCPV4 or TCPV6; header length; size; checksum start and offset.
        assert_eq!((h[0], h[1]), (1, if v6 { 4 } else { 1 }));
        assert_eq!(le16(h, 2) as usize, tcp + 32);
        assert_eq!(le16(h, 4), 1000);
        assert_eq!((le16(h, 6) as usize, le16(h, 8)), (tcp, 16));
        let first = &frames[0];
        assert_eq!(f[..14], first[..14]);
        assert_eq!(f[tcp..tcp + 13], first[tcp..tcp + 13]);
        assert_eq!(f[tcp + 13], ACK | PSH);
        assert_eq!(f[tcp + 14..tcp + 16], first[tcp + 14..tcp + 16]);
        assert_eq!(f[tcp + 20..tcp + 32], first[tcp + 20..tcp + 32]);
        assert_eq!(f[tcp + 32..], parts.concat());
        assert_eq!(be32(f, tcp + 4), 5000);
        let ip_len = 2300 + 32 + ip;
        if v6 {
            assert_eq!(be16(f, 18) as usize, ip_len - 40);
        } else {
            assert_eq!(be16(f, 16) as usize, ip_len);
            assert_eq!(fold(sum(&f[14..34])), 0xffff, "IPv4 header checksum");
        }
        // The kernel completes the checksum from the pseudo-header's sum in the field.
        let partial = be16(f, tcp + 16) as u32;
        let mut rest = f[tcp..].to_vec();
        rest[16..18].fill(0);
        assert_eq!(!fold(partial + sum(&rest)), tcp_csum(f, tcp));
    }
}

#[test]
fn a_lone_segment_goes_as_it_is() {
    let f = frame(false, 1, 2, ACK | PSH, &payload(100, 0));
    let out = run(std::slice::from_ref(&f));
    assert_eq!(out, vec![([0; 10], f)]);
}

#[test]
fn what_does_not_continue_the_frame_starts_another() {
    let d = payload(500, 9);
    let cases: [(&str, Vec<u8>); 6] = [
        ("a gap", frame(false, 1500, 2, ACK, &d)),
        ("another ack", frame(false, 1000, 3, ACK, &d)),
        (
            "a longer segment",
            frame(false, 1000, 2, ACK, &payload(501, 0)),
        ),
        ("a FIN", frame(false, 1000, 2, ACK | 1, &d)),
        ("an empty ACK", frame(false, 1000, 2, ACK, &[])),
        ("IPv6", frame(true, 1000, 2, ACK, &d)),
    ];
    for (what, second) in cases {
        let first = frame(false, 500, 2, ACK, &d);
        let out = run(&[first.clone(), second.clone()]);
        assert_eq!(out, vec![([0; 10], first), ([0; 10], second)], "{what}");
    }
    // After a short segment or a PSH, the frame is complete.
    let out = run(&[
        frame(false, 0, 2, ACK, &d),
        frame(false, 500, 2, ACK, &d[..100]),
        frame(false, 600, 2, ACK, &d[..100]),
        frame(false, 700, 2, ACK | PSH, &d),
        frame(false, 1200, 2, ACK, &d),
    ]);
    let sizes: Vec<usize> = out.iter().map(|(_, f)| f.len() - 66).collect();
    assert_eq!(sizes, vec![600, 100, 500, 500]);
}

#[test]
fn other_frames_keep_their_place() {
    let d = payload(400, 1);
    let arp = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend_from_slice(&[0; 28]);
        f
    };
    let out = run(&[
        frame(false, 0, 2, ACK, &d),
        frame(false, 400, 2, ACK, &d),
        arp.clone(),
        frame(false, 800, 2, ACK, &d),
    ]);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].0[1], 1);
    assert_eq!(out[1], ([0; 10], arp));
    assert_eq!(be32(&out[2].1, 38), 800);
}

#[test]
fn a_joined_frame_stays_within_an_ip_packet() {
    let d = payload(1448, 5);
    let frames: Vec<Vec<u8>> = (0..100)
        .map(|i| frame(false, i * 1448, 2, ACK, &d))
        .collect();
    let out = run(&frames);
    let mut seq = 0;
    for (h, f) in &out {
        assert!(f.len() - 14 <= 65535);
        assert_eq!(be32(f, 38), seq);
        assert_eq!((f.len() - 66) % 1448, 0);
        assert_eq!(le16(h, 4), 1448);
        seq += (f.len() - 66) as u32;
    }
    assert_eq!(seq, 100 * 1448);
    assert_eq!(out.len(), 100usize.div_ceil((65535 - 52) / 1448));
}

/// Cut an offloaded frame up as the kernel would: `size` bytes of payload per segment,
/// PSH on the last only, lengths and checksums fixed.
fn segment(h: &VnetHdr, f: &[u8]) -> Vec<Vec<u8>> {
    if h[1] == 0 {
        return vec![f.to_vec()];
    }
    let (hl, size, tcp) = (
        le16(h, 2) as usize,
        le16(h, 4) as usize,
        le16(h, 6) as usize,
    );
    let v6 = h[1] == 4;
    let chunks: Vec<&[u8]> = f[hl..].chunks(size).collect();
    let seq = be32(f, tcp + 4);
    let mut out = vec![];
    for (i, c) in chunks.iter().enumerate() {
        let mut s = f[..hl].to_vec();
        s.extend_from_slice(c);
        let ip_len = s.len() - 14;
        if v6 {
            s[18..20].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
        } else {
            s[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
            s[24..26].fill(0);
            let c = !fold(sum(&s[14..34]));
            s[24..26].copy_from_slice(&c.to_be_bytes());
        }
        s[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add((i * size) as u32).to_be_bytes());
        if i + 1 < chunks.len() {
            s[tcp + 13] &= !PSH;
        }
        let c = tcp_csum(&s, tcp);
        s[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        out.push(s);
    }
    out
}

/// A MemLink whose frames go through a Gso and are segmented again before delivery.
/// With `tso`, it also says it segments and checksums TCP (as the packet link does).
struct GsoLink {
    inner: MemLink,
    gso: Gso,
    tso: bool,
    /// Frames sent with a GSO header; TCP segments that smoltcp made longer than the MSS.
    joined: Arc<AtomicUsize>,
    long: Arc<AtomicUsize>,
}

impl GsoLink {
    /// Deliver as the host kernel would: checksums left to it completed (the field must
    /// hold the pseudo-header's sum), GSO frames cut up.
    fn out(inner: &mut MemLink, joined: &AtomicUsize, h: &VnetHdr, f: &[u8]) {
        let mut f = f.to_vec();
        if h[0] & 1 != 0 {
            let tcp = le16(h, 6) as usize;
            assert_eq!(le16(h, 8), 16);
            let want = fold(pseudo(&f[14..], f.len() - tcp));
            assert_eq!(be16(&f, tcp + 16), want, "the pseudo-header's sum");
            let c = !fold(sum(&f[tcp..]));
            assert_eq!(c, tcp_csum(&f, tcp));
            f[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        }
        if h[1] != 0 {
            joined.fetch_add(1, Ordering::SeqCst);
        }
        for s in segment(h, &f) {
            inner.transmit(&s);
        }
    }
}

impl Link for GsoLink {
    fn transmit(&mut self, f: &[u8]) {
        let (inner, joined) = (&mut self.inner, &self.joined);
        self.gso
            .push(f, &mut |h, f| GsoLink::out(inner, joined, h, f));
    }
    fn tso(&self) -> bool {
        self.tso
    }
    fn transmit_tso(&mut self, f: &mut [u8], mss: Option<u16>) {
        if mss.is_some() {
            self.long.fetch_add(1, Ordering::SeqCst);
        }
        let (inner, joined) = (&mut self.inner, &self.joined);
        self.gso
            .push_offload(f, mss, &mut |h, f| GsoLink::out(inner, joined, h, f));
    }
    fn flush(&mut self) {
        let (inner, joined) = (&mut self.inner, &self.joined);
        self.gso
            .flush(&mut |h, f| GsoLink::out(inner, joined, h, f));
    }
    fn receive(&mut self) -> Option<Vec<u8>> {
        self.inner.receive()
    }
    fn set_notify(&mut self, n: LinkNotify) {
        self.inner.set_notify(n)
    }
}

/// Two stacks joined by GsoLinks; TCP both ways over IPv4 and IPv6. Returns the frames
/// sent with a GSO header and the long segments smoltcp made.
fn tcp_across_gso_links(tso: bool) -> (usize, usize) {
    let (la, lb) = MemLink::pair();
    let joined = Arc::new(AtomicUsize::new(0));
    let long = Arc::new(AtomicUsize::new(0));
    let link = |inner| -> Box<dyn Link> {
        Box::new(GsoLink {
            inner,
            gso: Gso::new(tso),
            tso,
            joined: joined.clone(),
            long: long.clone(),
        })
    };
    let a = Stack::new(StackConfig {
        loopback: true,
        links: vec![super::eth_tests::eth(link(la), 1, "10.1.0.1", "fd01::1")],
        seed: 5,
    });
    let b = Stack::new(StackConfig {
        loopback: true,
        links: vec![super::eth_tests::eth(link(lb), 2, "10.1.0.2", "fd01::2")],
        seed: 6,
    });
    tcp_across(&a, &b, false, "0.0.0.0:80", "10.1.0.2:80");
    tcp_across(&a, &b, true, "[::]:81", "[fd01::2]:81");
    let counts = (joined.load(Ordering::SeqCst), long.load(Ordering::SeqCst));
    // To the stack's own link address: frames go round the loopback queue, long ones too.
    tcp_across(&a, &a, false, "0.0.0.0:82", "10.1.0.1:82");
    counts
}

#[test]
fn tcp_across_a_link_that_joins_segments() {
    let (joined, long) = tcp_across_gso_links(false);
    assert!(joined > 0, "no segments were joined");
    assert_eq!(long, 0);
}

#[test]
fn tcp_across_a_link_with_segmentation_offload() {
    // smoltcp emits long IPv4 segments; every TCP frame's checksum is the kernel's.
    let (joined, long) = tcp_across_gso_links(true);
    assert!(long > 0, "smoltcp made no long segments");
    assert!(joined >= long);
}

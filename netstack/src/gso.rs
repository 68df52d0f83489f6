//! Segmentation offload for the packet link: consecutive TCP segments of one flow that
//! smoltcp emits in one poll are joined into one large frame with a virtio_net_hdr that
//! asks the host kernel to cut it up again (GSO), so a bulk transfer costs the host one
//! trip through the bridge and its TCP stack per ~64 KiB instead of per segment.
//!
//! Segments join when they are in sequence, carry the same ACK, window and options,
//! have only ACK (and, on the last one, PSH) set, and all but the last have the same
//! payload size (the kernel cuts at that size). Anything else is sent as it is.
//!
//! With `offload` on, smoltcp is told that the link segments TCP and fills TCP checksums
//! (segmentation offload, IPv4 only: smoltcp 0.14 drops longer IPv6 packets): it emits
//! segments of up to 64 KiB itself, sent as they are with a header asking the kernel to
//! cut them at the MSS ([`Gso::push_offload`]), and every TCP frame leaves with its
//! checksum left to the kernel.

/// The virtio_net_hdr that prefixes every frame on a PACKET_VNET_HDR socket.
pub(crate) const VNET_HDR: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

const ETH: usize = crate::eth::HEADER;
const TCP_PROTO: u8 = 6;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
/// The longest frame sent for the kernel to cut up: it segments frames of its
/// gso_max_size (64 KiB) or more in software, in the sender's context. Within it, the IP
/// packet also fits IPv4's 16-bit total length.
pub(crate) const FRAME_MAX: usize = 65535;

/// Where a TCP segment's parts are in its frame.
#[derive(Clone, Copy)]
struct Seg {
    v6: bool,
    /// Offset of the TCP header, and of the payload.
    tcp: usize,
    data: usize,
    seq: u32,
    flags: u8,
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The frame as a TCP segment with data and only ACK/PSH set (no IP options or
/// extension headers, not a fragment, IP length matching the frame), or None.
fn seg(f: &[u8]) -> Option<Seg> {
    if f.len() < ETH + 40 {
        return None;
    }
    let (v6, tcp) = match be16(f, 12) {
        0x0800 => {
            let ip = &f[ETH..];
            let frag = be16(ip, 6) & 0x3fff;
            if ip[0] != 0x45 || ip[9] != TCP_PROTO || frag != 0 {
                return None;
            }
            if be16(ip, 2) as usize != f.len() - ETH {
                return None;
            }
            (false, ETH + 20)
        }
        0x86dd => {
            let ip = &f[ETH..];
            if ip[0] >> 4 != 6 || ip[6] != TCP_PROTO || be16(ip, 4) as usize != f.len() - ETH - 40 {
                return None;
            }
            (true, ETH + 40)
        }
        _ => return None,
    };
    if f.len() < tcp + 20 {
        return None;
    }
    let data = tcp + ((f[tcp + 12] >> 4) as usize) * 4;
    let flags = f[tcp + 13];
    if data < tcp + 20 || data >= f.len() || f[tcp + 12] & 0x0f != 0 || flags & !PSH != ACK {
        return None;
    }
    Some(Seg {
        v6,
        tcp,
        data,
        seq: be32(f, tcp + 4),
        flags,
    })
}

/// A virtio_net_hdr.
pub(crate) type VnetHdr = [u8; VNET_HDR];

/// The header of a frame sent as it is.
const PLAIN: VnetHdr = [0, GSO_NONE, 0, 0, 0, 0, 0, 0, 0, 0];

/// The frame being built: the first segment's headers, then every joined payload.
#[derive(Default)]
pub(crate) struct Gso {
    /// TCP checksums are left to the kernel (see the module's comment).
    offload: bool,
    buf: Vec<u8>,
    first: Option<Seg>,
    /// Payload size of the first segment (the size the kernel cuts at), segments joined.
    size: usize,
    count: usize,
    next_seq: u32,
}

impl Gso {
    pub(crate) fn new(offload: bool) -> Gso {
        Gso {
            offload,
            ..Gso::default()
        }
    }

    /// Take one frame; frames ready to go (with their virtio_net_hdr) are given to `out`.
    pub(crate) fn push(&mut self, f: &[u8], out: &mut dyn FnMut(&VnetHdr, &[u8])) {
        let Some(s) = seg(f) else {
            self.flush(out);
            return out(&PLAIN, f);
        };
        if self.joins(f, &s) {
            self.buf.extend_from_slice(&f[s.data..]);
            self.count += 1;
            self.next_seq = s.seq.wrapping_add((f.len() - s.data) as u32);
            if s.flags & PSH != 0 {
                self.buf[s.tcp + 13] |= PSH;
            }
            return;
        }
        self.flush(out);
        self.buf.clear();
        self.buf.extend_from_slice(f);
        self.first = Some(s);
        self.size = f.len() - s.data;
        self.count = 1;
        self.next_seq = s.seq.wrapping_add(self.size as u32);
    }

    /// Whether segment `s` (frame `f`) continues the frame being built.
    fn joins(&self, f: &[u8], s: &Seg) -> bool {
        let Some(p) = &self.first else {
            return false;
        };
        let head = &self.buf;
        let len = f.len() - s.data;
        let last_len = (head.len() - p.data) - self.size * (self.count - 1);
        s.v6 == p.v6
            && s.data == p.data
            && s.seq == self.next_seq
            && head[p.tcp + 13] & PSH == 0
            && last_len == self.size
            && len <= self.size
            && head.len() + len <= FRAME_MAX
            // Ethernet header, addresses, ports.
            && head[..14] == f[..14]
            && same_addrs(head, f, s.v6)
            && head[p.tcp..p.tcp + 4] == f[s.tcp..s.tcp + 4]
            // ACK number, window, options.
            && head[p.tcp + 8..p.tcp + 12] == f[s.tcp + 8..s.tcp + 12]
            && head[p.tcp + 14..p.tcp + 16] == f[s.tcp + 14..s.tcp + 16]
            && head[p.tcp + 20..p.data] == f[s.tcp + 20..s.data]
    }

    /// Send the frame being built, if any.
    pub(crate) fn flush(&mut self, out: &mut dyn FnMut(&VnetHdr, &[u8])) {
        let Some(p) = self.first.take() else {
            return;
        };
        let hdr = match self.count {
            1 if self.offload => csum_hdr(p.tcp),
            1 => PLAIN,
            _ => self.finish(&p),
        };
        out(&hdr, &self.buf);
    }

    /// Take one frame when `offload` is on: TCP frames get the pseudo-header sum in their
    /// checksum field; a segment longer than `mss` (smoltcp's request) goes out at once
    /// to be cut by the kernel; other data segments may still be joined.
    pub(crate) fn push_offload(
        &mut self,
        f: &mut [u8],
        mss: Option<u16>,
        out: &mut dyn FnMut(&VnetHdr, &[u8]),
    ) {
        let Some((v6, tcp)) = tcp_of(f) else {
            return self.push(f, out);
        };
        let sum = pseudo_sum(f, v6, f.len() - tcp);
        f[tcp + 16..tcp + 18].copy_from_slice(&sum.to_be_bytes());
        let data = tcp + ((f[tcp + 12] >> 4) as usize) * 4;
        match mss {
            Some(m) if f.len() > data + m as usize && data >= tcp + 20 => {
                self.flush(out);
                let mut hdr = csum_hdr(tcp);
                hdr[1] = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
                hdr[2..4].copy_from_slice(&(data as u16).to_le_bytes());
                hdr[4..6].copy_from_slice(&m.to_le_bytes());
                out(&hdr, f);
            }
            _ if seg(f).is_some() => self.push(f, out),
            _ => {
                self.flush(out);
                out(&csum_hdr(tcp), f);
            }
        }
    }

    /// Fix the joined frame's lengths and checksums and write its virtio_net_hdr.
    fn finish(&mut self, p: &Seg) -> VnetHdr {
        let f = &mut self.buf[..];
        let ip_len = f.len() - ETH;
        let tcp_len = f.len() - p.tcp;
        let ip = &mut f[ETH..];
        if p.v6 {
            ip[4..6].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
        } else {
            ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            ip[10..12].fill(0);
            let c = !fold(words(&ip[..20]));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        // Checksum offload: the field holds the pseudo-header's sum, the kernel adds the rest.
        let sum = pseudo_sum(f, p.v6, tcp_len);
        let c = p.tcp + 16;
        f[c..c + 2].copy_from_slice(&sum.to_be_bytes());
        let mut hdr = csum_hdr(p.tcp);
        hdr[1] = if p.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        hdr[2..4].copy_from_slice(&(p.data as u16).to_le_bytes());
        hdr[4..6].copy_from_slice(&(self.size as u16).to_le_bytes());
        hdr
    }
}

/// The header of a frame whose TCP checksum (the header at `tcp`) the kernel completes.
fn csum_hdr(tcp: usize) -> VnetHdr {
    let mut hdr = PLAIN;
    hdr[0] = F_NEEDS_CSUM;
    hdr[6..8].copy_from_slice(&(tcp as u16).to_le_bytes());
    hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
    hdr
}

/// The folded sum of the TCP pseudo-header of frame `f` for `tcp_len` bytes of TCP.
fn pseudo_sum(f: &[u8], v6: bool, tcp_len: usize) -> u16 {
    let ip = &f[ETH..];
    let addrs = if v6 { &ip[8..40] } else { &ip[12..20] };
    fold(TCP_PROTO as u32 + tcp_len as u32 + words(addrs))
}

/// (IPv6?, offset of the TCP header) of a TCP frame without IPv4 options or IPv6
/// extension headers, not a fragment; None for anything else.
fn tcp_of(f: &[u8]) -> Option<(bool, usize)> {
    if f.len() < ETH + 20 + 20 {
        return None;
    }
    let ip = &f[ETH..];
    let (v6, tcp) = match be16(f, 12) {
        0x0800 if ip[0] == 0x45 && ip[9] == TCP_PROTO && be16(ip, 6) & 0x3fff == 0 => {
            (false, ETH + 20)
        }
        0x86dd if ip[0] >> 4 == 6 && ip[6] == TCP_PROTO => (true, ETH + 40),
        _ => return None,
    };
    (f.len() >= tcp + 20).then_some((v6, tcp))
}

fn same_addrs(a: &[u8], b: &[u8], v6: bool) -> bool {
    let r = if v6 {
        ETH + 8..ETH + 40
    } else {
        ETH + 12..ETH + 20
    };
    a[r.clone()] == b[r]
}

/// The one's-complement sum of big-endian 16-bit words (an even number of bytes).
fn words(b: &[u8]) -> u32 {
    b.chunks(2).map(|w| be16(w, 0) as u32).sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

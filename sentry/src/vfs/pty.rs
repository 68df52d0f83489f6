//! Pseudo-terminals: master/slave pairs (/dev/ptmx, /dev/pts/N), termios, the N_TTY line
//! discipline, controlling terminals and job control.
//!
//! A pair has one state, the slave's (the master's termios, window size and process
//! group requests act on the slave, as Linux's `tty_pair_get_tty` does):
//!
//! * input: what the master writes goes into `raw_in` (Linux's flip buffer) and is fed,
//!   as far as there is room, through the line discipline into `buf` (n_tty's read
//!   buffer), which the slave reads. Echoes are queued and written to the master's side
//!   at the end of each batch, as n_tty's echo buffer is.
//! * output: what the slave writes goes through output processing (OPOST) into `out`,
//!   which the master reads.
//!
//! Controlling terminals live here too, keyed by session id: a pty records the session
//! whose controlling terminal it is (with a weak reference to the session leader's
//! thread group, so that a session whose leader is gone has no controlling terminal).

use super::devpts::SlaveNode;
use super::*;
use crate::kernel::signal::{self, SigInfo};
use crate::kernel::{Kernel, ThreadGroup};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Weak;
use std::time::{Duration, Instant};

/// /proc/sys/kernel/pty/max.
const MAX_PTYS: u32 = 4096;
/// n_tty's read buffer.
const N_TTY_BUF_SIZE: usize = 4096;
/// Bytes the master may write ahead of the line discipline (the slave's flip buffer).
const RAW_CAP: usize = 12288;
/// Bytes the slave may write ahead of the master's reads.
const OUT_CAP: usize = 16384;
/// The group of /dev/pts/N ("tty"), as docker and systemd mount devpts (gid=5).
pub const TTY_GID: u32 = 5;
pub const PTY_SLAVE_MAJOR: u64 = 136;

// ---- termios ----

pub const NCCS: usize = 19;
const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
const VTIME: usize = 5;
const VMIN: usize = 6;
const VSTART: usize = 8;
const VSTOP: usize = 9;
const VSUSP: usize = 10;
const VEOL: usize = 11;
const VREPRINT: usize = 12;
const VWERASE: usize = 14;
const VLNEXT: usize = 15;
const VEOL2: usize = 16;

const PARMRK: u32 = 0o10;
const ISTRIP: u32 = 0o40;
const INLCR: u32 = 0o100;
const IGNCR: u32 = 0o200;
const ICRNL: u32 = 0o400;
const IUCLC: u32 = 0o1000;
const IXON: u32 = 0o2000;
const IXANY: u32 = 0o4000;
const IUTF8: u32 = 0o40000;

const OPOST: u32 = 0o1;
const OLCUC: u32 = 0o2;
const ONLCR: u32 = 0o4;
const OCRNL: u32 = 0o10;
const ONOCR: u32 = 0o20;
const ONLRET: u32 = 0o40;
const TABDLY: u32 = 0o14000;
const XTABS: u32 = 0o14000;

const CBAUD: u32 = 0o10017;
const CBAUDEX: u32 = 0o10000;
const BOTHER: u32 = 0o10000;
const B38400: u32 = 0o17;
const CSIZE: u32 = 0o60;
const CS8: u32 = 0o60;
const CREAD: u32 = 0o200;
const PARENB: u32 = 0o400;
const IBSHIFT: u32 = 16;

const ISIG: u32 = 0o1;
const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const ECHOE: u32 = 0o20;
const ECHOK: u32 = 0o40;
const ECHONL: u32 = 0o100;
const NOFLSH: u32 = 0o200;
const TOSTOP: u32 = 0o400;
const ECHOCTL: u32 = 0o1000;
const ECHOPRT: u32 = 0o2000;
const ECHOKE: u32 = 0o4000;
const IEXTEN: u32 = 0o100000;
const EXTPROC: u32 = 0o200000;

const BAUDS: [u32; 16] = [
    0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
];
const BAUDS_EX: [u32; 16] = [
    0, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000,
    2500000, 3000000, 3500000, 4000000,
];

/// The kernel's struct termios2 (struct termios is its first 36 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; NCCS],
    pub ispeed: u32,
    pub ospeed: u32,
}

impl Default for Termios {
    /// Linux's tty_std_termios, as a pty slave starts.
    fn default() -> Self {
        Termios {
            iflag: ICRNL | IXON,
            oflag: OPOST | ONLCR,
            cflag: B38400 | CS8 | CREAD,
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc: [
                3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0,
            ],
            ispeed: 38400,
            ospeed: 38400,
        }
    }
}

fn baud(bits: u32, explicit: u32) -> u32 {
    let cb = bits & CBAUD;
    if cb == BOTHER {
        explicit
    } else if cb & CBAUDEX != 0 {
        BAUDS_EX[(cb & 0xf) as usize]
    } else {
        BAUDS[cb as usize]
    }
}

impl Termios {
    /// struct termios (36 bytes) or struct termios2 (44 bytes).
    fn to_bytes(self, v2: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(44);
        for x in [self.iflag, self.oflag, self.cflag, self.lflag] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.push(self.line);
        b.extend_from_slice(&self.cc);
        if v2 {
            b.extend_from_slice(&self.ispeed.to_le_bytes());
            b.extend_from_slice(&self.ospeed.to_le_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8], old: &Termios) -> Termios {
        let u = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().expect("4"));
        let mut t = Termios {
            iflag: u(0),
            oflag: u(1),
            cflag: u(2),
            lflag: u(3),
            line: b[16],
            cc: b[17..36].try_into().expect("19"),
            ispeed: old.ispeed,
            ospeed: old.ospeed,
        };
        if b.len() >= 44 {
            t.ispeed = u(9);
            t.ospeed = u(10);
        }
        t
    }

    /// struct termio (TCGETA): 16-bit flags, c_line, 8 control characters.
    fn to_termio(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(17);
        for x in [self.iflag, self.oflag, self.cflag, self.lflag] {
            b.extend_from_slice(&(x as u16).to_le_bytes());
        }
        b.push(self.line);
        b.extend_from_slice(&self.cc[..8]);
        b
    }

    fn from_termio(b: &[u8], old: &Termios) -> Termios {
        let u = |i: usize| u16::from_le_bytes([b[i * 2], b[i * 2 + 1]]) as u32;
        let low = |old: u32, new: u32| (old & !0xffff) | new;
        let mut t = *old;
        t.iflag = low(old.iflag, u(0));
        t.oflag = low(old.oflag, u(1));
        t.cflag = low(old.cflag, u(2));
        t.lflag = low(old.lflag, u(3));
        t.line = b[8];
        t.cc[..8].copy_from_slice(&b[9..17]);
        t
    }

    /// What tty_set_termios and pty_set_termios make of a requested termios.
    fn settle(mut self) -> Termios {
        self.ospeed = baud(self.cflag, self.ospeed);
        let ib = (self.cflag >> IBSHIFT) & CBAUD;
        self.ispeed = if ib == 0 {
            self.ospeed
        } else {
            baud(ib, self.ispeed)
        };
        self.cflag = (self.cflag & !(CSIZE | PARENB)) | CS8 | CREAD;
        self
    }
}

// ---- ioctls ----

const TCGETS: u32 = 0x5401;
const TCSETS: u32 = 0x5402;
const TCSETSW: u32 = 0x5403;
const TCSETSF: u32 = 0x5404;
const TCGETA: u32 = 0x5405;
const TCSETA: u32 = 0x5406;
const TCSETAW: u32 = 0x5407;
const TCSETAF: u32 = 0x5408;
const TCSBRK: u32 = 0x5409;
const TCXONC: u32 = 0x540a;
const TCFLSH: u32 = 0x540b;
const TIOCEXCL: u32 = 0x540c;
const TIOCNXCL: u32 = 0x540d;
const TIOCSCTTY: u32 = 0x540e;
const TIOCGPGRP: u32 = 0x540f;
const TIOCSPGRP: u32 = 0x5410;
const TIOCOUTQ: u32 = 0x5411;
const TIOCSTI: u32 = 0x5412;
const TIOCGWINSZ: u32 = 0x5413;
const TIOCSWINSZ: u32 = 0x5414;
const FIONREAD: u32 = 0x541b;
const TIOCPKT: u32 = 0x5420;
const TIOCNOTTY: u32 = 0x5422;
const TIOCSETD: u32 = 0x5423;
const TIOCGETD: u32 = 0x5424;
const TCSBRKP: u32 = 0x5425;
const TIOCSBRK: u32 = 0x5427;
const TIOCCBRK: u32 = 0x5428;
const TIOCGSID: u32 = 0x5429;
const TCGETS2: u32 = 0x802c_542a;
const TCSETS2: u32 = 0x402c_542b;
const TCSETSW2: u32 = 0x402c_542c;
const TCSETSF2: u32 = 0x402c_542d;
const TIOCGPTN: u32 = 0x8004_5430;
const TIOCSPTLCK: u32 = 0x4004_5431;
const TIOCGDEV: u32 = 0x8004_5432;
const TIOCSIG: u32 = 0x4004_5436;
const TIOCGPKT: u32 = 0x8004_5438;
const TIOCGPTLCK: u32 = 0x8004_5439;
const TIOCGEXCL: u32 = 0x8004_5440;
const TIOCGPTPEER: u32 = 0x5441;

const TIOCPKT_FLUSHREAD: u8 = 1;
const TIOCPKT_FLUSHWRITE: u8 = 2;
const TIOCPKT_STOP: u8 = 4;
const TIOCPKT_START: u8 = 8;
const TIOCPKT_NOSTOP: u8 = 16;
const TIOCPKT_DOSTOP: u8 = 32;

const CAP_SYS_ADMIN: u32 = 21;
const SIGWINCH: i32 = 28;

/// A delimiter in the read buffer: the end of a canonical line. An EOF (VEOF) is a
/// delimiter with the character 0, which reads do not copy.
const DELIM: u16 = 0x100;

/// What the kernel's ctype calls control characters (0-31, 127, 128-159).
fn iscntrl(c: u8) -> bool {
    c < 32 || (127..160).contains(&c)
}

fn isalnum(c: u8) -> bool {
    c.is_ascii_alphanumeric() || (c >= 192 && c != 215 && c != 247)
}

/// A queued echo, written out at the end of an input batch (n_tty's echo buffer).
#[derive(Clone, Copy, Debug)]
enum Echo {
    /// echo_char: `^X` for control characters under ECHOCTL.
    Char(u8),
    /// echo_char_raw.
    Raw(u8),
    /// Back up over a tab: columns used since the line start or the previous tab.
    EraseTab {
        chars: u32,
        after_tab: bool,
    },
    MoveBackCol,
    SetCanonCol,
}

/// What an eraser call erases: a character, a word or the line.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Erase {
    Char,
    Word,
    Line,
}

struct Inner {
    t: Termios,
    ws: [u16; 4],
    /// TIOCSPTLCK: the slave cannot be opened while locked (as ptmx starts).
    locked: bool,
    master_open: bool,
    /// Open file descriptions of the slave (including /dev/tty ones).
    slaves: usize,
    /// The master's TTY_OTHER_CLOSED: the slave was closed (reads give EIO when empty).
    other_closed: bool,
    slave_excl: bool,
    master_excl: bool,
    /// The slave's input: n_tty's read buffer (chars, DELIM-flagged line ends).
    buf: VecDeque<u16>,
    /// Elements at the front of `buf` a read may take (complete lines in canonical mode).
    committed: usize,
    /// Written by the master, not yet through the line discipline.
    raw_in: VecDeque<u8>,
    lnext: bool,
    erasing: bool,
    echoes: Vec<Echo>,
    column: u32,
    canon_column: u32,
    /// The slave's output, for the master to read.
    out: VecDeque<u8>,
    /// Output stopped by VSTOP (or TCOOFF: `tco_stopped`).
    stopped: bool,
    tco_stopped: bool,
    /// TCOOFF on the master: the master's writes wait.
    master_stopped: bool,
    packet: bool,
    pktstatus: u8,
    /// The session whose controlling terminal this is, with its leader.
    session: Option<(i32, Weak<ThreadGroup>)>,
    /// The foreground process group.
    pgrp: Option<i32>,
}

impl Inner {
    fn new() -> Inner {
        Inner {
            t: Termios::default(),
            ws: [0; 4],
            locked: true,
            master_open: true,
            slaves: 0,
            other_closed: false,
            slave_excl: false,
            master_excl: false,
            buf: VecDeque::new(),
            committed: 0,
            raw_in: VecDeque::new(),
            lnext: false,
            erasing: false,
            echoes: vec![],
            column: 0,
            canon_column: 0,
            out: VecDeque::new(),
            stopped: false,
            tco_stopped: false,
            master_stopped: false,
            packet: false,
            pktstatus: 0,
            session: None,
            pgrp: None,
        }
    }

    fn icanon(&self) -> bool {
        self.t.lflag & ICANON != 0
    }
    fn l(&self, f: u32) -> bool {
        self.t.lflag & f != 0
    }
    fn i(&self, f: u32) -> bool {
        self.t.iflag & f != 0
    }
    fn is_cont(&self, c: u8) -> bool {
        self.i(IUTF8) && c & 0xc0 == 0x80
    }

    // ---- output processing ----

    /// n_tty's do_output_char, or the byte as is without OPOST.
    fn output_char(&mut self, c: u8) {
        let o = self.t.oflag;
        if o & OPOST == 0 {
            self.out.push_back(c);
            return;
        }
        let mut c = c;
        match c {
            b'\n' => {
                if o & ONLRET != 0 {
                    self.column = 0;
                }
                if o & ONLCR != 0 {
                    self.canon_column = 0;
                    self.column = 0;
                    self.out.extend(b"\r\n");
                    return;
                }
                self.canon_column = self.column;
            }
            b'\r' => {
                if o & ONOCR != 0 && self.column == 0 {
                    return;
                }
                if o & OCRNL != 0 {
                    c = b'\n';
                    if o & ONLRET != 0 {
                        self.canon_column = 0;
                        self.column = 0;
                    }
                } else {
                    self.canon_column = 0;
                    self.column = 0;
                }
            }
            b'\t' => {
                let spaces = 8 - (self.column & 7);
                self.column += spaces;
                if o & TABDLY == XTABS {
                    self.out.extend(std::iter::repeat_n(b' ', spaces as usize));
                    return;
                }
            }
            8 => self.column = self.column.saturating_sub(1),
            _ => {
                if !iscntrl(c) {
                    if o & OLCUC != 0 {
                        c = c.to_ascii_uppercase();
                    }
                    if !self.is_cont(c) {
                        self.column += 1;
                    }
                }
            }
        }
        self.out.push_back(c);
    }

    fn echo(&mut self, e: Echo) {
        self.echoes.push(e);
    }

    /// Write queued echoes to the master's side (not while output is stopped).
    fn flush_echoes(&mut self) {
        if self.stopped || self.echoes.is_empty() {
            return;
        }
        for e in std::mem::take(&mut self.echoes) {
            match e {
                Echo::Char(c) => {
                    if self.l(ECHOCTL) && iscntrl(c) && c != b'\t' {
                        self.out.push_back(b'^');
                        self.out.push_back(c ^ 0o100);
                        self.column += 2;
                    } else {
                        self.output_char(c);
                    }
                }
                Echo::Raw(c) => self.output_char(c),
                Echo::EraseTab { chars, after_tab } => {
                    let n = if after_tab {
                        chars
                    } else {
                        chars + self.canon_column
                    };
                    let bs = (8 - (n & 7)).min(self.column);
                    for _ in 0..bs {
                        self.out.push_back(8);
                    }
                    self.column -= bs;
                }
                Echo::MoveBackCol => self.column = self.column.saturating_sub(1),
                Echo::SetCanonCol => self.canon_column = self.column,
            }
        }
    }

    // ---- flow control ----

    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.packet {
            self.pktstatus = (self.pktstatus & !TIOCPKT_START) | TIOCPKT_STOP;
        }
    }

    fn start(&mut self) {
        if !self.stopped || self.tco_stopped {
            return;
        }
        self.stopped = false;
        if self.packet {
            self.pktstatus = (self.pktstatus & !TIOCPKT_STOP) | TIOCPKT_START;
        }
        self.flush_echoes();
    }

    // ---- input processing (n_tty receive) ----

    /// No input processing at all (n_tty's raw mode).
    fn is_raw(&self) -> bool {
        self.t.iflag & (ISTRIP | IUCLC | IGNCR | ICRNL | INLCR | IXON | PARMRK) == 0
            && self.t.lflag & (ICANON | ISIG | ECHO) == 0
    }

    /// n_tty's char_map: characters with a special meaning (never NUL).
    fn is_special(&self, c: u8) -> bool {
        if c == 0 {
            return false;
        }
        let cc = &self.t.cc;
        (c == b'\r' && self.i(IGNCR | ICRNL))
            || (c == b'\n' && self.i(INLCR))
            || (self.icanon()
                && ([cc[VERASE], cc[VKILL], cc[VEOF], b'\n', cc[VEOL]].contains(&c)
                    || (self.l(IEXTEN)
                        && ([cc[VWERASE], cc[VLNEXT], cc[VEOL2]].contains(&c)
                            || (self.l(ECHO) && c == cc[VREPRINT])))))
            || (self.i(IXON) && (c == cc[VSTART] || c == cc[VSTOP]))
            || (self.l(ISIG) && [cc[VINTR], cc[VQUIT], cc[VSUSP]].contains(&c))
    }

    fn put(&mut self, c: u8) {
        self.buf.push_back(c as u16);
        if !self.icanon() {
            self.committed = self.buf.len();
        }
    }

    fn newline(&mut self, c: u8) {
        self.buf.push_back(c as u16 | DELIM);
        self.committed = self.buf.len();
    }

    fn finish_erasing(&mut self) {
        if self.erasing {
            self.echo(Echo::Raw(b'/'));
            self.erasing = false;
        }
    }

    fn at_line_start(&self) -> bool {
        self.committed == self.buf.len()
    }

    /// Feed what the master wrote through the line discipline while there is room.
    /// Signals for the foreground group go to `sigs`.
    fn process_input(&mut self, sigs: &mut Vec<(i32, i32)>) {
        while let Some(&c) = self.raw_in.front() {
            let len = self.buf.len() as isize;
            let mut room = N_TTY_BUF_SIZE as isize - len;
            if self.i(PARMRK) {
                room = (room + 2) / 3;
            }
            room -= 1;
            if room <= 0 {
                // A canonical line with no room left: keep taking characters (so that
                // erase and newline still work), overwriting the last one.
                let overflow = self.icanon() && self.committed == 0;
                if !overflow {
                    break;
                }
                if room < 0 {
                    self.buf.pop_back();
                }
            }
            self.raw_in.pop_front();
            self.receive(c, sigs);
            if self.echoes.len() >= 256 {
                self.flush_echoes();
            }
        }
        self.flush_echoes();
    }

    fn receive(&mut self, c: u8, sigs: &mut Vec<(i32, i32)>) {
        if self.is_raw() {
            self.put(c);
            return;
        }
        let mut c = c;
        if self.i(ISTRIP) {
            c &= 0x7f;
        }
        if self.i(IUCLC) && self.l(IEXTEN) {
            c = c.to_ascii_lowercase();
        }
        if self.lnext {
            self.lnext = false;
            self.receive_normal(c);
            return;
        }
        if self.l(EXTPROC) {
            self.put(c);
            return;
        }
        if self.is_special(c) {
            self.receive_special(c, sigs);
        } else {
            self.receive_normal(c);
        }
    }

    fn receive_normal(&mut self, c: u8) {
        if self.stopped && !self.tco_stopped && self.i(IXON) && self.i(IXANY) {
            self.start();
        }
        if self.l(ECHO) {
            self.finish_erasing();
            if self.at_line_start() {
                self.echo(Echo::SetCanonCol);
            }
            self.echo(Echo::Char(c));
        }
        if c == 0xff && self.i(PARMRK) {
            self.put(c);
        }
        self.put(c);
    }

    fn receive_special(&mut self, c: u8, sigs: &mut Vec<(i32, i32)>) {
        let cc = self.t.cc;
        if self.i(IXON) {
            if c == cc[VSTART] {
                self.start();
                return;
            }
            if c == cc[VSTOP] {
                self.stop();
                return;
            }
        }
        if self.l(ISIG) {
            for (idx, sig) in [
                (VINTR, signal::SIGINT),
                (VQUIT, signal::SIGQUIT),
                (VSUSP, signal::SIGTSTP),
            ] {
                if c == cc[idx] {
                    self.signal_char(sig, c, sigs);
                    return;
                }
            }
        }
        if self.stopped && !self.tco_stopped && self.i(IXON) && self.i(IXANY) {
            self.start();
        }
        let mut c = c;
        if c == b'\r' {
            if self.i(IGNCR) {
                return;
            }
            if self.i(ICRNL) {
                c = b'\n';
            }
        } else if c == b'\n' && self.i(INLCR) {
            c = b'\r';
        }
        if self.icanon() {
            if c == cc[VERASE] || c == cc[VKILL] || (c == cc[VWERASE] && self.l(IEXTEN)) {
                self.eraser(c);
                return;
            }
            if c == cc[VLNEXT] && self.l(IEXTEN) {
                self.lnext = true;
                if self.l(ECHO) {
                    self.finish_erasing();
                    if self.l(ECHOCTL) {
                        self.echo(Echo::Raw(b'^'));
                        self.echo(Echo::Raw(8));
                    }
                }
                return;
            }
            if c == cc[VREPRINT] && self.l(ECHO) && self.l(IEXTEN) {
                self.finish_erasing();
                self.echo(Echo::Char(c));
                self.echo(Echo::Raw(b'\n'));
                let line: Vec<u8> = self.buf.range(self.committed..).map(|e| *e as u8).collect();
                for ch in line {
                    self.echo(Echo::Char(ch));
                }
                return;
            }
            if c == b'\n' {
                if self.l(ECHO) || self.l(ECHONL) {
                    self.echo(Echo::Raw(b'\n'));
                }
                self.newline(c);
                return;
            }
            if c == cc[VEOF] {
                self.newline(0);
                return;
            }
            if c == cc[VEOL] || (c == cc[VEOL2] && self.l(IEXTEN)) {
                if self.l(ECHO) {
                    if self.at_line_start() {
                        self.echo(Echo::SetCanonCol);
                    }
                    self.echo(Echo::Char(c));
                }
                if c == 0xff && self.i(PARMRK) {
                    self.put(c);
                }
                self.newline(c);
                return;
            }
        }
        if self.l(ECHO) {
            self.finish_erasing();
            if c == b'\n' {
                self.echo(Echo::Raw(b'\n'));
            } else {
                if self.at_line_start() {
                    self.echo(Echo::SetCanonCol);
                }
                self.echo(Echo::Char(c));
            }
        }
        if c == 0xff && self.i(PARMRK) {
            self.put(c);
        }
        self.put(c);
    }

    /// VINTR, VQUIT, VSUSP: signal the foreground group and (without NOFLSH) flush.
    fn signal_char(&mut self, sig: i32, c: u8, sigs: &mut Vec<(i32, i32)>) {
        if let Some(pg) = self.pgrp {
            sigs.push((pg, sig));
        }
        if !self.l(NOFLSH) {
            self.echoes.clear();
            self.flush_input();
            if self.packet {
                self.pktstatus |= TIOCPKT_FLUSHWRITE;
            }
        }
        if self.i(IXON) {
            self.start();
        }
        if self.l(ECHO) {
            self.echo(Echo::Char(c));
        }
    }

    /// n_tty's flush_buffer: drop the slave's input.
    fn flush_input(&mut self) {
        self.buf.clear();
        self.committed = 0;
        self.erasing = false;
        if self.packet {
            self.pktstatus |= TIOCPKT_FLUSHREAD;
        }
    }

    /// VERASE, VWERASE, VKILL in canonical mode (n_tty's eraser).
    fn eraser(&mut self, c: u8) {
        let cc = self.t.cc;
        if self.buf.len() == self.committed {
            return;
        }
        let kind = if c == cc[VERASE] {
            Erase::Char
        } else if c == cc[VWERASE] {
            Erase::Word
        } else {
            if !self.l(ECHO) {
                self.buf.truncate(self.committed);
                return;
            }
            if !self.l(ECHOK) || !self.l(ECHOKE) || !self.l(ECHOE) {
                self.buf.truncate(self.committed);
                self.finish_erasing();
                self.echo(Echo::Char(cc[VKILL]));
                if self.l(ECHOK) {
                    self.echo(Echo::Raw(b'\n'));
                }
                return;
            }
            Erase::Line
        };
        let mut seen_alnums = 0;
        while self.buf.len() > self.committed {
            // One possibly multibyte character.
            let mut head = self.buf.len();
            let mut ch;
            loop {
                head -= 1;
                ch = self.buf[head] as u8;
                if !(self.is_cont(ch) && head != self.committed) {
                    break;
                }
            }
            if self.is_cont(ch) {
                break;
            }
            if kind == Erase::Word {
                if isalnum(ch) || ch == b'_' {
                    seen_alnums += 1;
                } else if seen_alnums > 0 {
                    break;
                }
            }
            let erased: Vec<u8> = self.buf.range(head..).map(|e| *e as u8).collect();
            self.buf.truncate(head);
            if self.l(ECHO) {
                if self.l(ECHOPRT) {
                    if !self.erasing {
                        self.echo(Echo::Raw(b'\\'));
                        self.erasing = true;
                    }
                    self.echo(Echo::Char(ch));
                    for b in &erased[1..] {
                        self.echo(Echo::Raw(*b));
                        self.echo(Echo::MoveBackCol);
                    }
                } else if kind == Erase::Char && !self.l(ECHOE) {
                    self.echo(Echo::Char(cc[VERASE]));
                } else if ch == b'\t' {
                    let mut chars = 0;
                    let mut after_tab = false;
                    let mut tail = self.buf.len();
                    while tail > self.committed {
                        tail -= 1;
                        let c2 = self.buf[tail] as u8;
                        if c2 == b'\t' {
                            after_tab = true;
                            break;
                        } else if iscntrl(c2) {
                            if self.l(ECHOCTL) {
                                chars += 2;
                            }
                        } else if !self.is_cont(c2) {
                            chars += 1;
                        }
                    }
                    self.echo(Echo::EraseTab { chars, after_tab });
                } else {
                    let n = usize::from(iscntrl(ch) && self.l(ECHOCTL))
                        + usize::from(!iscntrl(ch) || self.l(ECHOCTL));
                    for _ in 0..n {
                        self.echo(Echo::Raw(8));
                        self.echo(Echo::Raw(b' '));
                        self.echo(Echo::Raw(8));
                    }
                }
            }
            if kind == Erase::Char {
                break;
            }
        }
        if self.buf.len() == self.committed && self.l(ECHO) {
            self.finish_erasing();
        }
    }

    // ---- reading the slave's input ----

    /// Is there something for a read (or, with `poll`, for poll's POLLIN)?
    fn input_available(&self, poll: bool) -> bool {
        if self.icanon() && !self.l(EXTPROC) {
            return self.committed > 0;
        }
        let (min, time) = (self.t.cc[VMIN] as usize, self.t.cc[VTIME]);
        let amt = if poll && time == 0 && min > 0 { min } else { 1 };
        self.buf.len() >= amt
    }

    /// Copy (up to) one line in canonical mode.
    fn read_canon(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        let mut found = false;
        while n < out.len() && self.committed > 0 {
            let e = self.buf.pop_front().expect("committed");
            self.committed -= 1;
            let c = e as u8;
            if e & DELIM != 0 {
                found = true;
                if c != 0 {
                    out[n] = c;
                    n += 1;
                }
                break;
            }
            out[n] = c;
            n += 1;
        }
        // The buffer filled up right before an EOF: skip it (canon_skip_eof).
        if !found && n == out.len() && self.committed > 0 && self.buf.front() == Some(&DELIM) {
            self.buf.pop_front();
            self.committed -= 1;
        }
        n
    }

    fn read_raw(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.committed);
        for (d, s) in out.iter_mut().zip(self.buf.drain(..n)) {
            *d = s as u8;
        }
        self.committed -= n;
        n
    }

    /// FIONREAD on the slave.
    fn inq(&self) -> usize {
        if self.icanon() && !self.l(EXTPROC) {
            self.buf
                .range(..self.committed)
                .filter(|e| **e != DELIM)
                .count()
        } else {
            self.buf.len()
        }
    }

    // ---- termios changes ----

    fn set_termios(&mut self, new: Termios, sigs: &mut Vec<(i32, i32)>) {
        let old = self.t;
        self.t = new.settle();
        if self.packet {
            let flow =
                |t: &Termios| t.iflag & IXON != 0 && t.cc[VSTOP] == 0o23 && t.cc[VSTART] == 0o21;
            let (of, nf) = (flow(&old), flow(&self.t));
            if of != nf {
                self.pktstatus &= !(TIOCPKT_DOSTOP | TIOCPKT_NOSTOP);
                self.pktstatus |= if nf { TIOCPKT_DOSTOP } else { TIOCPKT_NOSTOP };
            }
        }
        if (old.lflag ^ self.t.lflag) & (ICANON | EXTPROC) != 0 {
            for e in self.buf.iter_mut() {
                *e &= 0xff;
            }
            if !self.icanon() || self.buf.is_empty() {
                self.committed = if self.icanon() { 0 } else { self.buf.len() };
            } else {
                // Switching to canonical mode: what is there is one line.
                if let Some(last) = self.buf.back_mut() {
                    *last |= DELIM;
                }
                self.committed = self.buf.len();
            }
            self.erasing = false;
            self.lnext = false;
        }
        if self.t.iflag & IXON == 0 && old.iflag & IXON != 0 && !self.tco_stopped {
            self.start();
        }
        self.process_input(sigs);
    }
}

/// One pseudo-terminal pair.
pub struct Pty {
    pub index: u32,
    inner: Mutex<Inner>,
    wq: WaitQueue,
    /// The /dev/pts/N node.
    pub node: Arc<SlaveNode>,
    kernel: Weak<Kernel>,
}

/// Live pairs by index (an index is reused once both sides are closed).
static PTYS: Mutex<BTreeMap<u32, Weak<Pty>>> = Mutex::new(BTreeMap::new());
/// Controlling terminals by session id.
static SESSIONS: Mutex<BTreeMap<i32, Weak<Pty>>> = Mutex::new(BTreeMap::new());
/// Processes that gave up their controlling terminal with TIOCNOTTY without being the
/// session leader: tgid -> (session, thread group).
static DETACHED: Mutex<Option<HashMap<i32, Detached>>> = Mutex::new(None);
type Detached = (i32, Weak<ThreadGroup>);

impl Drop for Pty {
    fn drop(&mut self) {
        let mut t = PTYS.lock();
        if t.get(&self.index).is_some_and(|w| w.strong_count() == 0) {
            t.remove(&self.index);
        }
    }
}

/// The pair with index `n` whose master is open (what /dev/pts lists).
pub fn lookup(n: u32) -> Option<Arc<Pty>> {
    let p = PTYS.lock().get(&n)?.upgrade()?;
    let open = p.inner.lock().master_open;
    open.then_some(p)
}

/// The indexes /dev/pts lists.
pub fn live_indexes() -> Vec<u32> {
    let list: Vec<Arc<Pty>> = PTYS.lock().values().filter_map(|w| w.upgrade()).collect();
    list.iter()
        .filter(|p| p.inner.lock().master_open)
        .map(|p| p.index)
        .collect()
}

/// (tgid, pgid, sid) of the calling process.
#[derive(Clone, Copy)]
struct Who {
    tgid: i32,
    pgid: i32,
    sid: i32,
}

fn who(t: &Task) -> Who {
    let tgid = t.tgid();
    let tab = t.kernel.table.lock();
    let (pgid, sid) = tab
        .procs
        .get(&tgid)
        .map(|p| (p.pgid, p.sid))
        .unwrap_or((0, 0));
    Who { tgid, pgid, sid }
}

fn detached(t: &Task, sid: i32) -> bool {
    let mut d = DETACHED.lock();
    let Some(map) = d.as_mut() else {
        return false;
    };
    match map.get(&t.tgid()) {
        Some((s, tg)) if Weak::as_ptr(tg) == Arc::as_ptr(&t.tg) => *s == sid,
        Some(_) => {
            map.remove(&t.tgid());
            false
        }
        None => false,
    }
}

/// fork: a process that gave up its controlling terminal (TIOCNOTTY) has children
/// without one too (Linux copies the parent's signal->tty, here none).
pub fn forked(parent: &Task, child_tgid: i32, child_tg: &Arc<ThreadGroup>) {
    let mut d = DETACHED.lock();
    let Some(map) = d.as_mut() else {
        return;
    };
    let sid = match map.get(&parent.tgid()) {
        Some((s, tg)) if Weak::as_ptr(tg) == Arc::as_ptr(&parent.tg) => *s,
        _ => return,
    };
    // Forget processes that are gone while we are here.
    map.retain(|_, (_, tg)| tg.strong_count() > 0);
    map.insert(child_tgid, (sid, Arc::downgrade(child_tg)));
}

/// Does the session of the host console (init's, when stdio is a terminal) have it as
/// its controlling terminal?
fn console_session(w: &Who) -> bool {
    w.sid == 1 && super::devfs::has_console()
}

fn kill_pgrp(k: &Kernel, pg: i32, info: SigInfo) {
    if pg <= 0 {
        return;
    }
    let tgs: Vec<Arc<ThreadGroup>> = k
        .table
        .lock()
        .procs
        .values()
        .filter(|p| p.pgid == pg && p.zombie.is_none())
        .map(|p| p.tg.clone())
        .collect();
    for tg in tgs {
        signal::send_to_group(k, &tg, info);
    }
}

fn send_sigs(k: &Kernel, sigs: Vec<(i32, i32)>) {
    for (pg, sig) in sigs {
        kill_pgrp(k, pg, SigInfo::kernel(sig));
    }
}

fn sig_ignored(t: &Task, sig: i32) -> bool {
    t.sigmask.load(std::sync::atomic::Ordering::Acquire) & signal::bit(sig) != 0
        || t.tg.action(sig).handler == signal::SIG_IGN
}

impl Pty {
    /// The session this is the controlling terminal of, if its leader is still there.
    fn valid_session(&self, k: &Kernel) -> Option<i32> {
        let (sid, leader) = self.inner.lock().session.clone()?;
        let ok = k
            .table
            .lock()
            .procs
            .get(&sid)
            .is_some_and(|p| p.zombie.is_none() && Weak::as_ptr(&leader) == Arc::as_ptr(&p.tg));
        if ok {
            return Some(sid);
        }
        // The leader is gone: the session has no controlling terminal any more.
        let mut s = SESSIONS.lock();
        let mut i = self.inner.lock();
        if i.session
            .as_ref()
            .is_some_and(|(x, l)| *x == sid && Weak::ptr_eq(l, &leader))
        {
            i.session = None;
            i.pgrp = None;
        }
        if s.get(&sid).is_some_and(|w| std::ptr::eq(w.as_ptr(), self)) {
            s.remove(&sid);
        }
        None
    }

    /// Is this the controlling terminal of `t`?
    fn is_ctty(&self, t: &Task, w: &Who) -> bool {
        self.inner.lock().master_open
            && self.valid_session(&t.kernel) == Some(w.sid)
            && !detached(t, w.sid)
    }

    fn acquire(self: &Arc<Self>, t: &Task, w: &Who) {
        {
            let mut s = SESSIONS.lock();
            let mut i = self.inner.lock();
            i.session = Some((w.sid, Arc::downgrade(&t.tg)));
            i.pgrp = Some(w.pgid);
            s.insert(w.sid, Arc::downgrade(self));
        }
        if let Some(m) = DETACHED.lock().as_mut() {
            m.remove(&w.tgid);
        }
    }

    /// Forget the session (its leader gave the terminal up, or left): returns the
    /// foreground group it had.
    fn disassociate(&self) -> Option<i32> {
        let mut s = SESSIONS.lock();
        let mut i = self.inner.lock();
        let sess = i.session.take();
        let pg = i.pgrp.take();
        if let Some((sid, _)) = sess {
            if s.get(&sid).is_some_and(|w| std::ptr::eq(w.as_ptr(), self)) {
                s.remove(&sid);
            }
        }
        pg
    }

    /// tty_check_change: a process in the background of this, its controlling
    /// terminal, gets `sig` (or EIO when it ignores SIGTTIN or its group is orphaned).
    fn check_change(&self, t: &Task, sig: i32) -> KResult<()> {
        let w = who(t);
        if !self.is_ctty(t, &w) {
            return Ok(());
        }
        let Some(fg) = self.inner.lock().pgrp else {
            return Ok(());
        };
        if fg == w.pgid {
            return Ok(());
        }
        if sig_ignored(t, sig) {
            return if sig == signal::SIGTTIN {
                Err(EIO)
            } else {
                Ok(())
            };
        }
        let k = t.kernel();
        if crate::kernel::jobctl::pgrp_orphaned(&k.table.lock(), w.pgid, None) {
            return Err(EIO);
        }
        kill_pgrp(k, w.pgid, SigInfo::kernel(sig));
        Err(ERESTARTSYS)
    }

    /// The master is gone: hang up the slave. The session leader gets SIGHUP and
    /// SIGCONT and the session loses its controlling terminal.
    fn hangup(&self) {
        let sess = {
            let mut s = SESSIONS.lock();
            let mut i = self.inner.lock();
            i.master_open = false;
            i.pgrp = None;
            let sess = i.session.take();
            if let Some((sid, _)) = &sess {
                if s.get(sid).is_some_and(|w| std::ptr::eq(w.as_ptr(), self)) {
                    s.remove(sid);
                }
            }
            sess
        };
        self.wq.notify_all();
        let (Some((sid, leader)), Some(k)) = (sess, self.kernel.upgrade()) else {
            return;
        };
        let tg = k
            .table
            .lock()
            .procs
            .get(&sid)
            .filter(|p| p.zombie.is_none() && Weak::as_ptr(&leader) == Arc::as_ptr(&p.tg))
            .map(|p| p.tg.clone());
        if let Some(tg) = tg {
            signal::send_to_group(&k, &tg, SigInfo::kernel(signal::SIGHUP));
            signal::send_to_group(&k, &tg, SigInfo::kernel(signal::SIGCONT));
        }
    }

    fn winsize_bytes(&self) -> [u8; 8] {
        let ws = self.inner.lock().ws;
        let mut b = [0u8; 8];
        for (i, v) in ws.iter().enumerate() {
            b[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The ioctls both sides share (on the master they act on the slave).
    fn common_ioctl(
        self: &Arc<Self>,
        f: &OpenFile,
        t: &Task,
        master: bool,
        cmd: u32,
        arg: u64,
    ) -> SysResult {
        let k = t.kernel();
        let mm = t.mm();
        match cmd {
            TCGETS | TCGETS2 => {
                let tio = self.inner.lock().t;
                mm.write(arg, &tio.to_bytes(cmd == TCGETS2))?;
                Ok(0)
            }
            TCGETA => {
                let tio = self.inner.lock().t;
                mm.write(arg, &tio.to_termio())?;
                Ok(0)
            }
            TCSETS | TCSETSW | TCSETSF | TCSETS2 | TCSETSW2 | TCSETSF2 | TCSETA | TCSETAW
            | TCSETAF => {
                self.check_change(t, signal::SIGTTOU)?;
                let old = self.inner.lock().t;
                let new = match cmd {
                    TCSETA | TCSETAW | TCSETAF => {
                        Termios::from_termio(&mm.read_vec(arg, 17)?, &old)
                    }
                    TCSETS2 | TCSETSW2 | TCSETSF2 => {
                        Termios::from_bytes(&mm.read_vec(arg, 44)?, &old)
                    }
                    _ => Termios::from_bytes(&mm.read_vec(arg, 36)?, &old),
                };
                let mut sigs = vec![];
                {
                    let mut i = self.inner.lock();
                    if matches!(cmd, TCSETSF | TCSETSF2 | TCSETAF) {
                        i.flush_input();
                    }
                    i.set_termios(new, &mut sigs);
                }
                self.wq.notify_all();
                send_sigs(k, sigs);
                Ok(0)
            }
            TIOCGWINSZ => {
                mm.write(arg, &self.winsize_bytes())?;
                Ok(0)
            }
            TIOCSWINSZ => {
                let b = mm.read_vec(arg, 8)?;
                let ws: [u16; 4] =
                    std::array::from_fn(|i| u16::from_le_bytes([b[i * 2], b[i * 2 + 1]]));
                let pg = {
                    let mut i = self.inner.lock();
                    if i.ws == ws {
                        None
                    } else {
                        i.ws = ws;
                        i.pgrp
                    }
                };
                if let Some(pg) = pg {
                    kill_pgrp(k, pg, SigInfo::kernel(SIGWINCH));
                }
                Ok(0)
            }
            FIONREAD => {
                let i = self.inner.lock();
                let n = if master { i.out.len() } else { i.inq() } as i32;
                drop(i);
                mm.write_obj(arg, &n)?;
                Ok(0)
            }
            TIOCOUTQ => {
                mm.write_obj(arg, &0i32)?;
                Ok(0)
            }
            TCFLSH => {
                if !master {
                    self.check_change(t, signal::SIGTTOU)?;
                }
                if arg > 2 {
                    return Err(EINVAL);
                }
                let mut sigs = vec![];
                {
                    let mut i = self.inner.lock();
                    let (flush_in, flush_out) = (arg != 1, arg != 0);
                    if master {
                        if flush_in {
                            i.out.clear();
                        }
                        if flush_out {
                            i.raw_in.clear();
                        }
                    } else {
                        if flush_in {
                            i.flush_input();
                            i.process_input(&mut sigs);
                        }
                        if flush_out {
                            i.out.clear();
                            if i.packet {
                                i.pktstatus |= TIOCPKT_FLUSHWRITE;
                            }
                        }
                    }
                }
                self.wq.notify_all();
                send_sigs(k, sigs);
                Ok(0)
            }
            TCSBRK | TCSBRKP => {
                if !master {
                    self.check_change(t, signal::SIGTTOU)?;
                }
                Ok(0)
            }
            TIOCSBRK | TIOCCBRK => Ok(0),
            TCXONC => {
                if !master {
                    self.check_change(t, signal::SIGTTOU)?;
                }
                let mut i = self.inner.lock();
                match (arg, master) {
                    (0, false) => {
                        i.stop();
                        i.tco_stopped = true;
                    }
                    (1, false) => {
                        i.tco_stopped = false;
                        i.start();
                    }
                    (0, true) => i.master_stopped = true,
                    (1, true) => i.master_stopped = false,
                    (2, _) | (3, _) => {
                        let c = i.t.cc[if arg == 2 { VSTOP } else { VSTART }];
                        if c != 0 {
                            if master {
                                i.raw_in.push_back(c);
                                let mut sigs = vec![];
                                i.process_input(&mut sigs);
                                drop(i);
                                self.wq.notify_all();
                                send_sigs(k, sigs);
                                return Ok(0);
                            }
                            i.out.push_back(c);
                        }
                    }
                    _ => return Err(EINVAL),
                }
                drop(i);
                self.wq.notify_all();
                Ok(0)
            }
            TIOCGPGRP => {
                if !master && !self.is_ctty(t, &who(t)) {
                    return Err(ENOTTY);
                }
                let pg = self.inner.lock().pgrp.unwrap_or(0);
                mm.write_obj(arg, &pg)?;
                Ok(0)
            }
            TIOCSPGRP => {
                match self.check_change(t, signal::SIGTTOU) {
                    Err(e) if e == EIO => return Err(ENOTTY),
                    r => r?,
                }
                let pg: i32 = mm.read_obj(arg)?;
                if pg < 0 {
                    return Err(EINVAL);
                }
                let w = who(t);
                if !self.is_ctty(t, &w) {
                    return Err(ENOTTY);
                }
                let session_of = {
                    let tab = k.table.lock();
                    if !tab
                        .procs
                        .values()
                        .any(|p| p.tg.tgid == pg || p.pgid == pg || p.sid == pg)
                    {
                        return Err(ESRCH);
                    }
                    tab.procs
                        .values()
                        .find(|p| p.pgid == pg)
                        .or_else(|| tab.procs.get(&pg))
                        .map(|p| p.sid)
                };
                if session_of != Some(w.sid) {
                    return Err(EPERM);
                }
                self.inner.lock().pgrp = Some(pg);
                Ok(0)
            }
            TIOCGSID => {
                if !master && !self.is_ctty(t, &who(t)) {
                    return Err(ENOTTY);
                }
                let sid = self.valid_session(k).ok_or(ENOTTY)?;
                mm.write_obj(arg, &sid)?;
                Ok(0)
            }
            TIOCSCTTY => {
                let w = who(t);
                let cur = self.valid_session(k);
                if w.tgid == w.sid && cur == Some(w.sid) {
                    return Ok(0);
                }
                if w.tgid != w.sid || has_ctty(t, &w) {
                    return Err(EPERM);
                }
                let admin = t.creds().has_cap(CAP_SYS_ADMIN);
                if cur.is_some() {
                    if arg == 1 && admin {
                        self.disassociate();
                    } else {
                        return Err(EPERM);
                    }
                }
                if !f.readable() && !admin {
                    return Err(EPERM);
                }
                self.acquire(t, &w);
                Ok(0)
            }
            TIOCNOTTY => {
                let w = who(t);
                if master || !self.is_ctty(t, &w) {
                    return Err(ENOTTY);
                }
                if w.tgid == w.sid {
                    if let Some(pg) = self.disassociate() {
                        let uid = t.creds().uid;
                        for sig in [signal::SIGHUP, signal::SIGCONT] {
                            kill_pgrp(k, pg, SigInfo::user(sig, signal::SI_USER, w.tgid, uid));
                        }
                    }
                } else {
                    DETACHED
                        .lock()
                        .get_or_insert_with(HashMap::new)
                        .insert(w.tgid, (w.sid, Arc::downgrade(&t.tg)));
                }
                Ok(0)
            }
            TIOCEXCL | TIOCNXCL => {
                let mut i = self.inner.lock();
                let v = cmd == TIOCEXCL;
                if master {
                    i.master_excl = v;
                } else {
                    i.slave_excl = v;
                }
                Ok(0)
            }
            TIOCGEXCL => {
                let i = self.inner.lock();
                let v = i32::from(if master { i.master_excl } else { i.slave_excl });
                drop(i);
                mm.write_obj(arg, &v)?;
                Ok(0)
            }
            TIOCSTI => {
                let admin = t.creds().has_cap(CAP_SYS_ADMIN);
                if !master && !self.is_ctty(t, &who(t)) && !admin {
                    return Err(EPERM);
                }
                if master && !admin {
                    return Err(EPERM);
                }
                let c: u8 = mm.read_obj(arg)?;
                let mut sigs = vec![];
                {
                    let mut i = self.inner.lock();
                    if master {
                        i.out.push_back(c);
                    } else {
                        i.raw_in.push_back(c);
                        i.process_input(&mut sigs);
                    }
                }
                self.wq.notify_all();
                send_sigs(k, sigs);
                Ok(0)
            }
            TIOCGETD => {
                mm.write_obj(arg, &0i32)?;
                Ok(0)
            }
            TIOCSETD => {
                let d: i32 = mm.read_obj(arg)?;
                if d == 0 {
                    Ok(0)
                } else {
                    Err(EINVAL)
                }
            }
            TIOCGDEV => {
                let dev = super::devfs::makedev(PTY_SLAVE_MAJOR, self.index as u64) as u32;
                mm.write_obj(arg, &dev)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn master_ioctl(self: &Arc<Self>, f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        let mm = t.mm();
        match cmd {
            TIOCGPTN => {
                mm.write_obj(arg, &self.index)?;
                Ok(0)
            }
            TIOCSPTLCK => {
                let v: i32 = mm.read_obj(arg)?;
                self.inner.lock().locked = v != 0;
                Ok(0)
            }
            TIOCGPTLCK => {
                let v = i32::from(self.inner.lock().locked);
                mm.write_obj(arg, &v)?;
                Ok(0)
            }
            TIOCPKT => {
                let v: i32 = mm.read_obj(arg)?;
                let mut i = self.inner.lock();
                if v != 0 {
                    if !i.packet {
                        i.pktstatus = 0;
                        i.packet = true;
                    }
                } else {
                    i.packet = false;
                }
                Ok(0)
            }
            TIOCGPKT => {
                let v = i32::from(self.inner.lock().packet);
                mm.write_obj(arg, &v)?;
                Ok(0)
            }
            TIOCSIG => {
                let sig = arg as i32;
                if ![
                    signal::SIGINT,
                    signal::SIGQUIT,
                    signal::SIGTSTP,
                    signal::SIGKILL,
                ]
                .contains(&sig)
                {
                    return Err(EINVAL);
                }
                if let Some(pg) = self.inner.lock().pgrp {
                    kill_pgrp(t.kernel(), pg, SigInfo::kernel(sig));
                }
                Ok(0)
            }
            TIOCGPTPEER => {
                let flags = arg as u32;
                let ops = open_slave(self, flags)?;
                let path = peer_path(t, self.index);
                let file = OpenFile::new(ops, path, flags);
                let lim = t.rlimit(crate::kernel::RLIMIT_NOFILE).0;
                let fd = t.files().install(file, flags & O_CLOEXEC != 0, 0, lim)?;
                Ok(fd as u64)
            }
            _ => self.common_ioctl(f, t, true, cmd, arg),
        }
    }
}

/// /dev/pts/N as the task's root sees it (the path TIOCGPTPEER's file gets).
fn peer_path(t: &Task, index: u32) -> Option<Path> {
    let root = t.fsctx().root.lock().clone();
    let creds = t.creds();
    let mounts = t.mounts();
    let w = Walk {
        root: &root,
        creds: &creds,
        mounts: &mounts,
        task: t,
    };
    let p = w
        .walk(&root, format!("/dev/pts/{index}").as_bytes(), true)
        .ok()?;
    let st = p.dentry.inode.stat();
    (st.dev == super::devpts::DEVPTS_DEV
        && st.rdev == super::devfs::makedev(PTY_SLAVE_MAJOR, index as u64))
    .then_some(p)
}

/// Open /dev/ptmx: a new pair, its slave locked until TIOCSPTLCK.
pub fn open_master(_flags: u32) -> KResult<Arc<dyn FileOps>> {
    let cur = crate::kernel::current();
    let (uid, kernel) = match &cur {
        Some(t) => (t.creds().fsuid, Arc::downgrade(&t.kernel)),
        None => (0, Weak::new()),
    };
    let mut tab = PTYS.lock();
    let index = (0..MAX_PTYS)
        .find(|i| tab.get(i).is_none_or(|w| w.strong_count() == 0))
        .ok_or(ENOSPC)?;
    let pty = Arc::new_cyclic(|me: &Weak<Pty>| Pty {
        index,
        inner: Mutex::new(Inner::new()),
        wq: WaitQueue::default(),
        node: SlaveNode::new(index, me.clone(), uid, TTY_GID),
        kernel,
    });
    tab.insert(index, Arc::downgrade(&pty));
    Ok(Arc::new(MasterFile { pty }))
}

/// Open the slave of `pty`. Without O_NOCTTY, a session leader with no controlling
/// terminal opening it for reading makes it its controlling terminal.
pub fn open_slave(pty: &Arc<Pty>, flags: u32) -> KResult<Arc<dyn FileOps>> {
    let cur = crate::kernel::current();
    {
        let mut i = pty.inner.lock();
        if !i.master_open || i.locked {
            return Err(EIO);
        }
        if i.slave_excl
            && !cur
                .as_ref()
                .is_some_and(|t| t.creds().has_cap(CAP_SYS_ADMIN))
        {
            return Err(EBUSY);
        }
        i.slaves += 1;
        i.other_closed = false;
    }
    pty.wq.notify_all();
    let file = Arc::new(SlaveFile { pty: pty.clone() });
    if flags & O_NOCTTY == 0 && flags & O_ACCMODE != O_WRONLY {
        if let Some(t) = cur {
            let w = who(&t);
            if w.tgid == w.sid && !has_ctty(&t, &w) && pty.valid_session(&t.kernel).is_none() {
                pty.acquire(&t, &w);
            }
        }
    }
    Ok(file)
}

/// Open the slave with index `n` (a c 136,N node).
pub fn open_slave_index(n: u32, flags: u32) -> KResult<Arc<dyn FileOps>> {
    let pty = lookup(n).ok_or(EIO)?;
    open_slave(&pty, flags)
}

/// The controlling terminal of `t`, if it is a pty.
fn ctty_of(t: &Task) -> Option<Arc<Pty>> {
    let w = who(t);
    let pty = SESSIONS.lock().get(&w.sid)?.upgrade()?;
    pty.is_ctty(t, &w).then_some(pty)
}

/// Is the host console `t`'s controlling terminal?
fn has_console_ctty(t: &Task, w: &Who) -> bool {
    console_session(w) && !detached(t, w.sid)
}

/// Has `t` a controlling terminal (a pty or the console)?
fn has_ctty(t: &Task, w: &Who) -> bool {
    ctty_of(t).is_some() || has_console_ctty(t, w)
}

/// The host console's device number (/proc/PID/fd shows it as /dev/console).
const CONSOLE_DEV: (u64, u64) = (5, 1);

/// (tty_nr, tpgid) of /proc/PID/stat for `t`: the device number of its controlling
/// terminal and that terminal's foreground process group; (0, -1) without one.
pub fn stat_tty(t: &Task) -> (u64, i32) {
    if let Some(pty) = ctty_of(t) {
        let fg = pty.inner.lock().pgrp.unwrap_or(-1);
        return (super::devfs::makedev(PTY_SLAVE_MAJOR, pty.index as u64), fg);
    }
    let w = who(t);
    if has_console_ctty(t, &w) {
        return (
            super::devfs::makedev(CONSOLE_DEV.0, CONSOLE_DEV.1),
            t.kernel.foreground_pgrp(),
        );
    }
    (0, -1)
}

/// /dev/tty: the caller's controlling terminal. None when it is the host console (the
/// caller opens that); ENXIO when there is none.
pub fn open_controlling(flags: u32) -> Option<KResult<Arc<dyn FileOps>>> {
    let Some(t) = crate::kernel::current() else {
        return Some(Err(ENXIO));
    };
    if let Some(pty) = ctty_of(&t) {
        return Some(open_slave(&pty, flags | O_NOCTTY));
    }
    let w = who(&t);
    if has_console_ctty(&t, &w) {
        return None;
    }
    Some(Err(ENXIO))
}

/// (device number, foreground process group) of the controlling terminal of session
/// `sid`, for /proc/PID/stat's tty_nr and tpgid. Takes no table lock.
pub fn session_tty(sid: i32) -> Option<(u64, i32)> {
    let pty = SESSIONS.lock().get(&sid)?.upgrade()?;
    let i = pty.inner.lock();
    match &i.session {
        Some((s, _)) if *s == sid && i.master_open => Some((
            super::devfs::makedev(PTY_SLAVE_MAJOR, pty.index as u64),
            i.pgrp.unwrap_or(-1),
        )),
        _ => None,
    }
}

/// A session leader's process is gone (disassociate_ctty on exit): the foreground group
/// of its controlling terminal gets SIGHUP and the session loses the terminal. For the
/// process-exit path (the last thread of a process whose pid is its session id).
pub fn session_leader_exited(k: &Kernel, sid: i32) {
    let Some(pty) = SESSIONS.lock().get(&sid).and_then(|w| w.upgrade()) else {
        return;
    };
    let ours = pty
        .inner
        .lock()
        .session
        .as_ref()
        .is_some_and(|(s, _)| *s == sid);
    if !ours {
        return;
    }
    if let Some(pg) = pty.disassociate() {
        kill_pgrp(k, pg, SigInfo::kernel(signal::SIGHUP));
    }
}

// ---- the two sides as open files ----

pub struct MasterFile {
    pty: Arc<Pty>,
}

pub struct SlaveFile {
    pty: Arc<Pty>,
}

impl MasterFile {
    pub fn pty(&self) -> &Arc<Pty> {
        &self.pty
    }
}

impl SlaveFile {
    pub fn pty(&self) -> &Arc<Pty> {
        &self.pty
    }
}

impl Drop for MasterFile {
    fn drop(&mut self) {
        self.pty.hangup();
    }
}

impl Drop for SlaveFile {
    fn drop(&mut self) {
        {
            let mut i = self.pty.inner.lock();
            i.slaves -= 1;
            if i.slaves == 0 {
                i.other_closed = true;
            }
        }
        self.pty.wq.notify_all();
    }
}

impl FileOps for MasterFile {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let p = &self.pty;
        let n = t.block_on(&[&p.wq], None, || {
            let mut i = p.inner.lock();
            if i.packet && i.pktstatus != 0 {
                buf[0] = i.pktstatus;
                i.pktstatus = 0;
                return Some(Ok(1));
            }
            if !i.out.is_empty() {
                let skip = usize::from(i.packet);
                if skip == 1 {
                    buf[0] = 0;
                }
                let n = (buf.len() - skip).min(i.out.len());
                for (d, s) in buf[skip..].iter_mut().zip(i.out.drain(..n)) {
                    *d = s;
                }
                return Some(Ok(n + skip));
            }
            if i.other_closed {
                return Some(Err(EIO));
            }
            if f.nonblock() {
                return Some(Err(EAGAIN));
            }
            None
        })?;
        p.wq.notify_all();
        Ok(n)
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        let p = &self.pty;
        let mut done = 0;
        while done < buf.len() {
            let r = t.block_on(&[&p.wq], None, || {
                let mut i = p.inner.lock();
                let space = RAW_CAP.saturating_sub(i.raw_in.len());
                if space > 0 && !i.master_stopped {
                    let n = space.min(buf.len() - done);
                    i.raw_in.extend(&buf[done..done + n]);
                    let mut sigs = vec![];
                    i.process_input(&mut sigs);
                    return Some(Ok((n, sigs)));
                }
                if f.nonblock() {
                    return Some(Err(EAGAIN));
                }
                None
            });
            match r {
                Ok((n, sigs)) => {
                    done += n;
                    p.wq.notify_all();
                    send_sigs(t.kernel(), sigs);
                }
                Err(e) if done > 0 && (e == EAGAIN || e.is_restart()) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn poll(&self) -> u32 {
        let i = self.pty.inner.lock();
        let mut ev = 0;
        if !i.out.is_empty() {
            ev |= POLLIN | POLLRDNORM;
        }
        if i.packet && i.pktstatus != 0 {
            ev |= POLLPRI | POLLIN | POLLRDNORM;
        }
        if i.other_closed {
            ev |= POLLHUP;
        }
        if i.raw_in.len() < RAW_CAP && !i.master_stopped {
            ev |= POLLOUT | POLLWRNORM;
        }
        ev
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.wq)
    }

    fn fasync(&self) -> bool {
        true
    }

    fn tty_pgrp(&self) -> Option<i32> {
        Some(0)
    }

    fn ioctl(&self, f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        self.pty.master_ioctl(f, t, cmd, arg)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl FileOps for SlaveFile {
    fn read(&self, f: &OpenFile, t: &Task, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let p = &self.pty;
        if !p.inner.lock().master_open {
            return Ok(0);
        }
        p.check_change(t, signal::SIGTTIN)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let (canon, min, time) = {
            let i = p.inner.lock();
            (
                i.icanon() && !i.l(EXTPROC),
                i.t.cc[VMIN] as usize,
                i.t.cc[VTIME] as u64,
            )
        };
        let mut sigs = vec![];
        let r = if canon {
            t.block_on(&[&p.wq], None, || {
                let mut i = p.inner.lock();
                if !i.master_open {
                    return Some(Ok(0));
                }
                if i.committed > 0 {
                    let n = i.read_canon(buf);
                    i.process_input(&mut sigs);
                    return Some(Ok(n));
                }
                if f.nonblock() {
                    return Some(Err(EAGAIN));
                }
                None
            })
        } else {
            // VMIN/VTIME: MIN > 0 waits for MIN bytes, TIME then being an inter-byte
            // timer; MIN == 0 waits up to TIME for any byte.
            let tenths = Duration::from_millis(100 * time);
            let (minimum, inter) = if min > 0 { (min, time > 0) } else { (1, false) };
            let mut deadline = (min == 0).then(|| Instant::now() + tenths);
            let mut got = 0;
            loop {
                let r = t.block_on(&[&p.wq], deadline, || {
                    let mut i = p.inner.lock();
                    if !i.master_open {
                        return Some(Ok(None));
                    }
                    if i.committed > 0 {
                        let n = i.read_raw(&mut buf[got..]);
                        i.process_input(&mut sigs);
                        return Some(Ok(Some(n)));
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Some(Ok(None));
                    }
                    if f.nonblock() {
                        return Some(Err(EAGAIN));
                    }
                    None
                });
                match r {
                    Ok(Some(n)) => {
                        got += n;
                        if got >= minimum || got == buf.len() {
                            break Ok(got);
                        }
                        if inter {
                            deadline = Some(Instant::now() + tenths);
                        }
                    }
                    Ok(None) => break Ok(got),
                    Err(e) if e == ETIMEDOUT => break Ok(got),
                    Err(_) if got > 0 => break Ok(got),
                    Err(e) => break Err(e),
                }
            }
        };
        p.wq.notify_all();
        send_sigs(t.kernel(), sigs);
        r
    }

    fn write(&self, f: &OpenFile, t: &Task, buf: &[u8], _off: u64) -> KResult<usize> {
        let p = &self.pty;
        let tostop = {
            let i = p.inner.lock();
            if !i.master_open {
                return Err(EIO);
            }
            i.l(TOSTOP)
        };
        if tostop {
            p.check_change(t, signal::SIGTTOU)?;
        }
        let mut done = 0;
        while done < buf.len() {
            let r = t.block_on(&[&p.wq], None, || {
                let mut i = p.inner.lock();
                if !i.master_open {
                    return Some(Err(EIO));
                }
                if !i.stopped && i.out.len() < OUT_CAP {
                    i.flush_echoes();
                    let mut n = 0;
                    while done + n < buf.len() && i.out.len() < OUT_CAP {
                        i.output_char(buf[done + n]);
                        n += 1;
                    }
                    return Some(Ok(n));
                }
                if f.nonblock() {
                    return Some(Err(EAGAIN));
                }
                None
            });
            match r {
                Ok(n) => {
                    done += n;
                    p.wq.notify_all();
                }
                Err(e) if done > 0 && (e == EAGAIN || e.is_restart() || e == EIO) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn poll(&self) -> u32 {
        let i = self.pty.inner.lock();
        if !i.master_open {
            return POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDNORM | POLLWRNORM;
        }
        let mut ev = 0;
        if i.input_available(true) {
            ev |= POLLIN | POLLRDNORM;
        }
        if !i.stopped && i.out.len() < OUT_CAP {
            ev |= POLLOUT | POLLWRNORM;
        }
        ev
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.wq)
    }

    fn fasync(&self) -> bool {
        true
    }

    fn tty_pgrp(&self) -> Option<i32> {
        Some(self.pty.inner.lock().pgrp.unwrap_or(0))
    }

    fn ioctl(&self, f: &OpenFile, t: &Task, cmd: u32, arg: u64) -> SysResult {
        if !self.pty.inner.lock().master_open {
            // A hung-up terminal.
            return Err(if cmd == TIOCSPGRP { ENOTTY } else { EIO });
        }
        match cmd {
            TIOCGPTN | TIOCSPTLCK | TIOCGPTLCK | TIOCPKT | TIOCGPKT | TIOCSIG | TIOCGPTPEER => {
                Err(ENOTTY)
            }
            _ => self.pty.common_ioctl(f, t, false, cmd, arg),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(i: &mut Inner, s: &[u8]) -> Vec<(i32, i32)> {
        let mut sigs = vec![];
        i.raw_in.extend(s);
        i.process_input(&mut sigs);
        sigs
    }

    fn take_out(i: &mut Inner) -> Vec<u8> {
        i.out.drain(..).collect()
    }

    fn read(i: &mut Inner, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        let got = if i.icanon() {
            i.read_canon(&mut b)
        } else {
            i.read_raw(&mut b)
        };
        b.truncate(got);
        b
    }

    #[test]
    fn canonical_line_and_echo() {
        let mut i = Inner::new();
        feed(&mut i, b"hello\n");
        assert_eq!(read(&mut i, 32), b"hello\n");
        assert_eq!(take_out(&mut i), b"hello\r\n");
    }

    #[test]
    fn control_echo_and_erase() {
        let mut i = Inner::new();
        feed(&mut i, b"a\x01\t\x1bb\x7fc\n");
        assert_eq!(read(&mut i, 32), b"a\x01\t\x1bc\n");
        assert_eq!(take_out(&mut i), b"a^A\t^[b\x08 \x08c\r\n");
        feed(&mut i, b"ab cd\x17\t\x7fx\n");
        assert_eq!(read(&mut i, 32), b"ab x\n");
        assert_eq!(
            take_out(&mut i),
            b"ab cd\x08 \x08\x08 \x08\t\x08\x08\x08\x08\x08x\r\n"
        );
        feed(&mut i, b"abc\x15d\n");
        assert_eq!(read(&mut i, 32), b"d\n");
    }

    #[test]
    fn eof_handling() {
        let mut i = Inner::new();
        feed(&mut i, b"ab\x04\x04");
        assert_eq!(read(&mut i, 32), b"ab");
        assert_eq!(read(&mut i, 32), b"");
        assert_eq!(i.committed, 0);
        feed(&mut i, b"abc\x04");
        assert_eq!(read(&mut i, 3), b"abc");
        assert_eq!(i.committed, 0);
        feed(&mut i, b"hello\nworld\n");
        assert_eq!(read(&mut i, 3), b"hel");
        assert_eq!(read(&mut i, 100), b"lo\n");
        assert_eq!(i.inq(), 6);
    }

    #[test]
    fn long_line_is_capped() {
        let mut i = Inner::new();
        i.t.lflag &= !ECHO;
        let mut v = vec![b'a'; 5000];
        v.push(b'\n');
        feed(&mut i, &v);
        let line = read(&mut i, 8192);
        assert_eq!(line.len(), 4096);
        assert_eq!(line[4095], b'\n');
    }

    #[test]
    fn isig_flushes_and_signals() {
        let mut i = Inner::new();
        i.pgrp = Some(7);
        feed(&mut i, b"abc\n");
        let sigs = feed(&mut i, b"de\x03f\n");
        assert_eq!(sigs, vec![(7, signal::SIGINT)]);
        assert_eq!(read(&mut i, 10), b"f\n");
        assert_eq!(take_out(&mut i), b"abc\r\n^Cf\r\n");
    }

    #[test]
    fn output_processing() {
        let mut i = Inner::new();
        i.t.oflag |= OCRNL | ONOCR | XTABS;
        for c in b"\rab\r\tc\n" {
            i.output_char(*c);
        }
        assert_eq!(take_out(&mut i), b"ab\n      c\r\n");
    }

    #[test]
    fn mode_switches() {
        let mut i = Inner::new();
        let mut sigs = vec![];
        feed(&mut i, b"par");
        assert_eq!(i.committed, 0);
        let mut raw = i.t;
        raw.lflag &= !(ICANON | ECHO);
        i.set_termios(raw, &mut sigs);
        assert_eq!(read(&mut i, 10), b"par");
        feed(&mut i, b"xy");
        let canon = Termios::default();
        i.set_termios(canon, &mut sigs);
        assert_eq!(read(&mut i, 10), b"xy");
    }

    #[test]
    fn settle_forces_cs8() {
        let mut t = Termios::default();
        t.cflag = (t.cflag & !CSIZE) | 0o40 | PARENB;
        assert_eq!(t.settle().cflag, 0xbf);
        let mut t = Termios::default();
        t.cflag = (t.cflag & !CBAUD) | 0o15;
        let s = t.settle();
        assert_eq!((s.ospeed, s.ispeed, s.cflag), (9600, 9600, 0xbd));
    }
}

//! The vDSO: a small shared object (vdso/vdso.c, built by build.rs) mapped into every
//! process with a parameter page ([vvar]) right below it. Its clock_gettime,
//! gettimeofday, time and clock_getres turn `rdtsc` into the Sentry's clocks with the
//! parameters, so they cost no system call; what they cannot answer goes to the Sentry.
//!
//! One vvar frame serves the whole sandbox. A timekeeper thread calibrates the TSC
//! against the host's CLOCK_MONOTONIC_RAW and refreshes the parameters every second,
//! steering each clock towards the host's (CLOCK_MONOTONIC since boot, CLOCK_REALTIME)
//! by its rate only, so that no clock ever goes back across an update. The Sentry's own
//! clocks ([`uptime`], [`realtime`]) read the same parameters, so a system call never
//! answers less than a vDSO read made before it.

use crate::errno::*;
use crate::memfile::{memfile, Frame, PAGE};
use crate::mm::{Backing, MapSource, Mm, Vma, PROT_EXEC, PROT_READ};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The vDSO image (see sentry/vdso/).
pub static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// The resolution of the coarse clocks: one tick (HZ = 250).
pub const COARSE_RES_NS: u64 = 4_000_000;

/// How often the timekeeper refreshes the parameters.
const PERIOD: Duration = Duration::from_secs(1);
/// How long the first calibration measures before the vDSO is turned on.
const FIRST_CALIBRATION: Duration = Duration::from_millis(10);
/// A realtime difference past this is a step of the host's clock: jump (forwards only).
const REALTIME_STEP_NS: i128 = 1_000_000_000;

/// The parameter page, as `struct vvar` in vdso.c.
#[repr(C)]
struct Params {
    /// Odd while the timekeeper writes; readers retry.
    seq: AtomicU32,
    /// 1: the TSC can be used; 0: every call goes to the Sentry.
    ok: AtomicU32,
    tsc_base: AtomicU64,
    mono_base: AtomicU64,
    mono_mult: AtomicU64,
    real_base: AtomicU64,
    real_mult: AtomicU64,
    coarse_ns: AtomicU64,
}

// The offsets vdso.c's struct vvar expects.
const _: () = assert!(std::mem::size_of::<Params>() == 56);
const _: () = assert!(std::mem::offset_of!(Params, mono_base) == 16);
const _: () = assert!(std::mem::offset_of!(Params, coarse_ns) == 48);

/// Frames mapped as a file: the vDSO text, or the vvar page.
struct Pages(Vec<Frame>);

impl MapSource for Pages {
    fn page(&self, index: u64) -> KResult<Option<Frame>> {
        Ok(self.0.get(index as usize).cloned())
    }
    fn cached(&self, index: u64) -> bool {
        (index as usize) < self.0.len()
    }
}

struct Vdso {
    text: Arc<Pages>,
    vvar: Arc<Pages>,
    params: &'static Params,
    boot: Instant,
}

static VDSO: OnceLock<Vdso> = OnceLock::new();

/// Whether the host's TSC runs at a constant rate through every CPU state
/// (CPUID 0x80000007 EDX bit 8: Linux's constant_tsc and nonstop_tsc).
pub fn host_tsc_invariant() -> bool {
    use std::arch::x86_64::__cpuid;
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// Set up the vDSO for a sandbox booted at `boot`. With `tsc`, start the timekeeper;
/// without, the parameter page says "not available" for good and the vDSO always makes
/// the system call. Only the first call counts.
pub fn start(boot: Instant, tsc: bool) -> KResult<()> {
    if VDSO.get().is_some() {
        return Ok(());
    }
    let vvar = memfile().alloc()?;
    vvar.bytes_mut().fill(0);
    // SAFETY: the frame is page-aligned, zeroed (a valid Params: all atomics), and
    // kept for the life of the process by VDSO below; the Sentry writes it only
    // through these atomics and applications map it read-only.
    let params: &'static Params = unsafe { &*(vvar.bytes().as_ptr() as *const Params) };
    params.coarse_ns.store(COARSE_RES_NS, Ordering::Relaxed);
    let n = IMAGE.len().div_ceil(PAGE as usize);
    let text = memfile().alloc_many(n)?;
    for (i, f) in text.iter().enumerate() {
        let part = &IMAGE[i * PAGE as usize..IMAGE.len().min((i + 1) * PAGE as usize)];
        let b = f.bytes_mut();
        b[..part.len()].copy_from_slice(part);
        b[part.len()..].fill(0);
    }
    let v = Vdso {
        text: Arc::new(Pages(text)),
        vvar: Arc::new(Pages(vec![vvar])),
        params,
        boot,
    };
    if VDSO.set(v).is_ok() && tsc {
        let tsc0 = rdtsc();
        let raw0 = monotonic_raw();
        std::thread::Builder::new()
            .name("timekeeper".into())
            .spawn(move || timekeeper(tsc0, raw0))
            .map_err(|_| EAGAIN)?;
    }
    Ok(())
}

/// Map [vvar] and [vdso] at a random address between the mmap area and the stack, as
/// Linux does; returns the vDSO's address (AT_SYSINFO_EHDR), or None when the vDSO is
/// not set up (unit tests).
pub fn map(mm: &Mm) -> Option<u64> {
    let v = VDSO.get()?;
    let mut r = [0u8; 8];
    crate::vfs::devfs::fill_random(&mut r);
    // Up to 512 GiB above the mmap top, well below the stack and its growth.
    let slot = u64::from_le_bytes(r) % ((512u64 << 30) / PAGE);
    let vvar = crate::mm::MMAP_TOP + slot * PAGE;
    let text = vvar + PAGE;
    let len = v.text.0.len() as u64 * PAGE;
    let special = |src: Arc<Pages>, prot, name: &str| Vma {
        backing: Backing::File { src, offset: 0 },
        name: name.into(),
        maywrite: false,
        ..Vma::anon(0, prot)
    };
    let mut inner = mm.inner.lock();
    mm.map_fixed(
        &mut inner,
        vvar,
        PAGE,
        special(v.vvar.clone(), PROT_READ, "[vvar]"),
    );
    // Private and read+exec; a debugger's breakpoint gets a copy-on-write page.
    let vdso = Vma {
        maywrite: true,
        ..special(v.text.clone(), PROT_READ | PROT_EXEC, "[vdso]")
    };
    mm.map_fixed(&mut inner, text, len, vdso);
    Some(text)
}

fn rdtsc() -> u64 {
    // SAFETY: lfence and rdtsc only read the time stamp counter (in order).
    unsafe {
        std::arch::x86_64::_mm_lfence();
        std::arch::x86_64::_rdtsc()
    }
}

fn host_clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn monotonic_raw() -> u64 {
    host_clock(libc::CLOCK_MONOTONIC_RAW)
}

fn host_realtime() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// A clock's value at `tsc`: base + (tsc - tsc_base) * mult / 2^32.
fn at(base: u64, mult: u64, tsc_base: u64, tsc: u64) -> u64 {
    let d = tsc.saturating_sub(tsc_base) as u128;
    base + ((d * mult as u128) >> 32) as u64
}

/// The rate that makes up `err` ns over the next period: nominal * (P + err) / P,
/// with err limited to half a period (the rate stays between 0.5 and 1.5 nominal).
fn steer(nominal: u64, err: i128) -> u64 {
    let p = PERIOD.as_nanos() as i128;
    let err = err.clamp(-p / 2, p / 2);
    (nominal as i128 * (p + err) / p) as u64
}

fn timekeeper(tsc0: u64, raw0: u64) {
    let v = VDSO.get().expect("started");
    let p = v.params;
    let mut wait = FIRST_CALIBRATION;
    loop {
        std::thread::sleep(wait);
        wait = PERIOD;
        // The host's clocks are read before the update, to keep the odd count (readers
        // spin) short; only the first publication, which replaces them as the
        // Sentry's clocks, must read them after.
        let host = || {
            (
                monotonic_raw(),
                v.boot.elapsed().as_nanos() as u64,
                host_realtime(),
            )
        };
        let before = host();
        let seq = p.seq.load(Ordering::Relaxed);
        p.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // The odd count is visible before the TSC is read: a reader whose rdtsc comes
        // later sees the update and retries.
        fence(Ordering::SeqCst);
        let tsc = rdtsc();
        let (raw, mono_ref, real_ref) = if p.ok.load(Ordering::Relaxed) == 0 {
            host()
        } else {
            before
        };
        // ns per TSC tick in 32.32 fixed point, over the whole run so far.
        let nominal = (((raw - raw0) as u128) << 32) / (tsc - tsc0).max(1) as u128;
        let nominal = nominal as u64;
        let old_base = p.tsc_base.load(Ordering::Relaxed);
        let (mono, real) = if p.ok.load(Ordering::Relaxed) == 0 {
            ((mono_ref, nominal), (real_ref, nominal))
        } else {
            let m = at(
                p.mono_base.load(Ordering::Relaxed),
                p.mono_mult.load(Ordering::Relaxed),
                old_base,
                tsc,
            );
            let r = at(
                p.real_base.load(Ordering::Relaxed),
                p.real_mult.load(Ordering::Relaxed),
                old_base,
                tsc,
            );
            let rerr = real_ref as i128 - r as i128;
            let real = if rerr > REALTIME_STEP_NS {
                (real_ref, nominal)
            } else {
                (r, steer(nominal, rerr))
            };
            ((m, steer(nominal, mono_ref as i128 - m as i128)), real)
        };
        fence(Ordering::Release);
        p.tsc_base.store(tsc, Ordering::Relaxed);
        p.mono_base.store(mono.0, Ordering::Relaxed);
        p.mono_mult.store(mono.1, Ordering::Relaxed);
        p.real_base.store(real.0, Ordering::Relaxed);
        p.real_mult.store(real.1, Ordering::Relaxed);
        p.ok.store(1, Ordering::Relaxed);
        p.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

/// Read clock `real` (else the uptime) as the vDSO does, or from the host while the
/// parameters are not available.
fn read(real: bool) -> Option<u64> {
    let v = VDSO.get()?;
    let p = v.params;
    loop {
        let seq = p.seq.load(Ordering::Acquire);
        if seq & 1 != 0 {
            std::hint::spin_loop();
            continue;
        }
        let ns = if p.ok.load(Ordering::Relaxed) == 0 {
            if real {
                host_realtime()
            } else {
                v.boot.elapsed().as_nanos() as u64
            }
        } else {
            let (base, mult) = if real {
                (&p.real_base, &p.real_mult)
            } else {
                (&p.mono_base, &p.mono_mult)
            };
            at(
                base.load(Ordering::Relaxed),
                mult.load(Ordering::Relaxed),
                p.tsc_base.load(Ordering::Relaxed),
                rdtsc(),
            )
        };
        fence(Ordering::Acquire);
        if p.seq.load(Ordering::Relaxed) == seq {
            return Some(ns);
        }
    }
}

/// The sandbox's uptime (CLOCK_MONOTONIC, BOOTTIME, MONOTONIC_RAW), or None before
/// [`start`].
pub fn uptime() -> Option<Duration> {
    read(false).map(Duration::from_nanos)
}

/// CLOCK_REALTIME, as the vDSO gives it.
pub fn realtime() -> Duration {
    read(true).map_or_else(
        || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        },
        Duration::from_nanos,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_is_a_versioned_vdso() {
        let elf = goblin::elf::Elf::parse(IMAGE).expect("an ELF");
        assert_eq!(elf.soname, Some("linux-vdso.so.1"));
        let names: Vec<&str> = elf
            .dynsyms
            .iter()
            .filter_map(|s| elf.dynstrtab.get_at(s.st_name))
            .collect();
        for n in [
            "__vdso_clock_gettime",
            "__vdso_gettimeofday",
            "__vdso_time",
            "__vdso_clock_getres",
            "clock_gettime",
            "LINUX_2.6",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("getcpu")));
        assert!(elf.dynrelas.is_empty() && elf.dynrels.is_empty() && elf.pltrelocs.is_empty());
    }

    type Gettime = extern "C" fn(i32, *mut libc::timespec) -> i64;
    type Tod = extern "C" fn(*mut libc::timeval, *mut libc::c_void) -> i64;
    type Time = extern "C" fn(*mut i64) -> i64;

    /// The image loaded in this process with a parameter page before it, and the
    /// address of each symbol.
    struct Loaded {
        base: *mut u8,
        len: usize,
    }

    impl Loaded {
        fn new() -> Loaded {
            let len = (IMAGE.len().div_ceil(PAGE as usize) + 1) * PAGE as usize;
            // SAFETY: a fresh private anonymous mapping, checked below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            let base = p as *mut u8;
            // SAFETY: the image fits after the first page of the mapping made above;
            // then its text becomes read+exec.
            unsafe {
                std::ptr::copy_nonoverlapping(IMAGE.as_ptr(), base.add(PAGE as usize), IMAGE.len());
                let r = libc::mprotect(
                    base.add(PAGE as usize) as *mut libc::c_void,
                    len - PAGE as usize,
                    libc::PROT_READ | libc::PROT_EXEC,
                );
                assert_eq!(r, 0);
            }
            Loaded { base, len }
        }

        fn params(&self) -> &Params {
            // SAFETY: the first page of our mapping, zeroed and writable; Params is
            // all atomics.
            unsafe { &*(self.base as *const Params) }
        }

        fn sym(&self, name: &str) -> usize {
            let elf = goblin::elf::Elf::parse(IMAGE).expect("an ELF");
            let s = elf
                .dynsyms
                .iter()
                .find(|s| elf.dynstrtab.get_at(s.st_name) == Some(name))
                .expect("symbol");
            self.base as usize + PAGE as usize + s.st_value as usize
        }

        fn gettime(&self, name: &str, id: i32) -> (i64, i64, i64) {
            // SAFETY: a function of the image loaded above, of this C signature.
            let f = unsafe { std::mem::transmute::<usize, Gettime>(self.sym(name)) };
            let mut ts = libc::timespec {
                tv_sec: -1,
                tv_nsec: -1,
            };
            let r = f(id, &mut ts);
            (r, ts.tv_sec, ts.tv_nsec)
        }
    }

    impl Drop for Loaded {
        fn drop(&mut self) {
            // SAFETY: our own mapping, no longer used.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
        }
    }

    #[test]
    fn image_computes_the_clocks_from_the_parameters() {
        let l = Loaded::new();
        let p = l.params();
        // A rate of 0: each clock stays at its base whatever the TSC.
        p.tsc_base.store(rdtsc(), Ordering::Relaxed);
        p.mono_base.store(5_000_000_123, Ordering::Relaxed);
        p.real_base
            .store(1_700_000_000_123_456_789, Ordering::Relaxed);
        p.coarse_ns.store(COARSE_RES_NS, Ordering::Relaxed);
        p.ok.store(1, Ordering::Relaxed);
        let g = "__vdso_clock_gettime";
        for id in [1, 4, 7] {
            assert_eq!(l.gettime(g, id), (0, 5, 123));
        }
        assert_eq!(l.gettime(g, 6), (0, 5, 0));
        assert_eq!(l.gettime(g, 0), (0, 1_700_000_000, 123_456_789));
        assert_eq!(l.gettime(g, 11), (0, 1_700_000_000, 123_456_789));
        assert_eq!(l.gettime(g, 5), (0, 1_700_000_000, 120_000_000));
        assert_eq!(l.gettime("clock_gettime", 1), (0, 5, 123));
        // The host's answers for what the parameters do not give.
        assert_eq!(l.gettime(g, 100).0, -(libc::EINVAL as i64));
        assert_eq!(l.gettime(g, 2).0, 0);
        let res = "__vdso_clock_getres";
        assert_eq!(l.gettime(res, 1), (0, 0, 1));
        assert_eq!(l.gettime(res, 6), (0, 0, COARSE_RES_NS as i64));
        assert_eq!(l.gettime(res, 100).0, -(libc::EINVAL as i64));
        // SAFETY: functions of the image, of these C signatures.
        let (tod, time): (Tod, Time) = unsafe {
            (
                std::mem::transmute::<usize, Tod>(l.sym("__vdso_gettimeofday")),
                std::mem::transmute::<usize, Time>(l.sym("__vdso_time")),
            )
        };
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        assert_eq!(tod(&mut tv, std::ptr::null_mut()), 0);
        assert_eq!((tv.tv_sec, tv.tv_usec), (1_700_000_000, 123_456));
        let mut t = 0i64;
        assert_eq!(time(&mut t), 1_700_000_000);
        assert_eq!(t, 1_700_000_000);
        // Not available: every call is the host's system call.
        p.ok.store(0, Ordering::Relaxed);
        let (r, sec, _) = l.gettime(g, 0);
        assert_eq!(r, 0);
        assert!(sec > 1_700_000_000);
        let (r, sec, _) = l.gettime(g, 1);
        assert_eq!(r, 0);
        let host = (host_clock(libc::CLOCK_MONOTONIC) / 1_000_000_000) as i64;
        assert!(sec == host || sec + 1 == host, "{sec} vs the host's {host}");
        assert!(time(std::ptr::null_mut()) > 1_700_000_000);
    }

    #[test]
    fn image_time_advances_with_the_tsc() {
        let l = Loaded::new();
        let p = l.params();
        // One nanosecond per tick from 0.
        p.tsc_base.store(rdtsc(), Ordering::Relaxed);
        p.mono_mult.store(1 << 32, Ordering::Relaxed);
        p.ok.store(1, Ordering::Relaxed);
        let mut last = 0;
        for _ in 0..1000 {
            let (r, s, ns) = l.gettime("__vdso_clock_gettime", 1);
            assert_eq!((r, s), (0, 0));
            assert!(ns >= last);
            last = ns;
        }
        assert!(last > 0);
    }

    #[test]
    fn steering_keeps_the_rate_positive_and_bounded() {
        let n = 1u64 << 32;
        assert_eq!(steer(n, 0), n);
        assert!(steer(n, i128::MIN / 4) >= n / 2);
        assert!(steer(n, i128::MAX / 4) <= n / 2 * 3);
        assert_eq!(at(100, n, 10, 5), 100);
        assert_eq!(at(100, n, 10, 15), 105);
    }
}

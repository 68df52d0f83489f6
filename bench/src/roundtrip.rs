//! The platforms' own round trips, measured in this process: a switch into a hand-made
//! code page that only makes system calls (one event per switch), and for KVM a
//! `KVM_RUN` that never enters the guest. These are the floors the workloads sit on.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Result};
use platform::{AddressSpace, Platform, Prot};
use serde::Serialize;

use crate::stats::Summary;

/// One round-trip figure, with the one measured on these machines before rvisor (the
/// issue's figure), where there is one.
#[derive(Serialize)]
pub struct RoundTrip {
    pub name: String,
    pub summary: Option<Summary>,
    pub failure: Option<String>,
    pub quoted_us: Option<f64>,
    pub quoted_what: &'static str,
}

const CODE: u64 = 0x40_0000;
/// `syscall; jmp back to it`: every switch returns at the next system call.
const SYSCALL_LOOP: [u8; 4] = [0x0f, 0x05, 0xeb, 0xfc];

fn memfd() -> Result<OwnedFd> {
    // SAFETY: memfd_create with a static name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"rvisor-bench".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(anyhow!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let f = std::fs::File::from(fd.try_clone()?);
    f.set_len(1 << 20)?;
    use std::os::unix::fs::FileExt;
    f.write_all_at(&SYSCALL_LOOP, 0)?;
    Ok(fd)
}

/// Whether rvisor's KVM platform can run here, and why not: the platform's own start-up
/// check (it runs a ring-3 system call round trip before it says yes).
pub fn kvm_usable() -> std::result::Result<(), String> {
    let fd = memfd().map_err(|e| e.to_string())?;
    platform::kvm::Kvm::new(fd.as_fd())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Median ns per switch of `iters` switches, `reps` times.
fn switches(p: &dyn Platform, iters: u32, reps: usize) -> Result<Vec<f64>> {
    let aspace: Arc<dyn AddressSpace> = p.new_address_space()?;
    aspace.map(CODE, 0x1000, 0, Prot::READ | Prot::EXEC)?;
    let mut ctx = p.new_context()?;
    let mut regs = platform::initial_regs();
    regs.rip = CODE;
    let mut samples = vec![];
    for rep in 0..=reps {
        let t0 = Instant::now();
        for _ in 0..iters {
            match ctx.switch(&aspace, &mut regs)? {
                platform::Event::Syscall => {}
                e => return Err(anyhow!("expected a system call, got {e:?}")),
            }
        }
        // The first batch warms up (stub thread, vCPU creation).
        if rep > 0 {
            samples.push(t0.elapsed().as_nanos() as f64 / iters as f64);
        }
    }
    Ok(samples)
}

/// `KVM_RUN` with `immediate_exit` set: into the kernel and straight back, no guest entry.
fn kvm_run_no_entry(iters: u32, reps: usize) -> Result<Vec<f64>> {
    let kvm = kvm_ioctls::Kvm::new()?;
    let vm = kvm.create_vm()?;
    let mut vcpu = vm.create_vcpu(0)?;
    vcpu.set_kvm_immediate_exit(1);
    let mut samples = vec![];
    for _ in 0..reps {
        let t0 = Instant::now();
        for _ in 0..iters {
            match vcpu.run() {
                Err(e) if e.errno() == libc::EINTR => {}
                other => return Err(anyhow!("KVM_RUN with immediate_exit: {other:?}")),
            }
        }
        samples.push(t0.elapsed().as_nanos() as f64 / iters as f64);
    }
    Ok(samples)
}

fn figure(
    name: &str,
    r: Result<Vec<f64>>,
    quoted_us: Option<f64>,
    quoted_what: &'static str,
) -> RoundTrip {
    let (summary, failure) = match r {
        Ok(s) => (Summary::of(&s), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    RoundTrip {
        name: name.into(),
        summary,
        failure,
        quoted_us,
        quoted_what,
    }
}

/// The round trips of each platform in `platforms` (ptrace, kvm), measured on a thread
/// of their own: the ptrace platform pins its thread to a CPU, and the workloads, started
/// from the main thread, must not inherit that.
pub fn measure(platforms: &[String], reps: usize, quick: bool) -> Vec<RoundTrip> {
    let platforms = platforms.to_vec();
    std::thread::spawn(move || measure_here(&platforms, reps, quick))
        .join()
        .unwrap_or_default()
}

fn measure_here(platforms: &[String], reps: usize, quick: bool) -> Vec<RoundTrip> {
    let iters = if quick { 500 } else { 2000 };
    let mut out = vec![];
    for p in platforms {
        match p.as_str() {
            "ptrace" => {
                let r = memfd().and_then(|fd| {
                    let p = platform::ptrace::Ptrace::new(fd.as_fd())?;
                    switches(&p, iters, reps)
                });
                out.push(figure(
                    "ptrace: PTRACE_SYSEMU syscall stop and resume",
                    r,
                    Some(8.0),
                    "~7-9 us, tracer and tracee on one CPU",
                ));
            }
            "kvm" => {
                let r = memfd().and_then(|fd| {
                    let p = platform::kvm::Kvm::new(fd.as_fd())?;
                    switches(&p, iters / 10, reps)
                });
                out.push(figure(
                    "kvm: ring-3 syscall -> exit to host -> back to ring 3",
                    r,
                    Some(47.0),
                    "~47 us, syscall -> ring 0 -> out -> iretq on PVM",
                ));
                out.push(figure(
                    "kvm: KVM_RUN that never enters the guest",
                    kvm_run_no_entry(iters, reps),
                    Some(5.6),
                    "~5.6 us",
                ));
            }
            _ => {}
        }
    }
    out
}

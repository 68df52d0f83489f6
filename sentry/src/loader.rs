//! The ELF loader: maps an executable (and its PT_INTERP) into a fresh address space
//! and builds the initial stack (argv, envp, auxv).

use crate::errno::*;
use crate::kernel::Task;
use crate::memfile::PAGE;
use crate::mm::{
    page_down, page_up, Backing, MapSource, Mm, Vma, PROT_EXEC, PROT_READ, PROT_WRITE,
};
use crate::vfs::OpenFile;
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::{header, program_header, ProgramHeader};
use std::sync::Arc;

const PIE_BASE: u64 = 0x5555_5555_4000;
const STACK_INIT: u64 = 128 << 10;

pub struct Image {
    pub entry: u64,
    pub base: u64,
    pub phdr: u64,
    pub phnum: u64,
    pub interp: Option<Vec<u8>>,
    pub brk: u64,
}

fn read_at(t: &Task, f: &OpenFile, off: u64, len: usize) -> KResult<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.ops.read(f, t, &mut buf[done..], off + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

/// The first bytes of a file, to tell ELF from `#!`.
pub fn head(t: &Task, f: &OpenFile) -> KResult<Vec<u8>> {
    read_at(t, f, 0, 256)
}

fn prot_of(flags: u32) -> u32 {
    let mut p = 0;
    if flags & program_header::PF_R != 0 {
        p |= PROT_READ;
    }
    if flags & program_header::PF_W != 0 {
        p |= PROT_WRITE;
    }
    if flags & program_header::PF_X != 0 {
        p |= PROT_EXEC;
    }
    p
}

/// Map an ELF file's PT_LOAD segments into `mm`. `main` selects the executable's
/// placement (fixed or PIE base) versus the interpreter's (anywhere free).
pub fn load_elf(t: &Task, mm: &Mm, f: &OpenFile, name: &[u8], main: bool) -> KResult<Image> {
    let hb = read_at(t, f, 0, 64)?;
    if hb.len() < 64 || &hb[..4] != b"\x7fELF" {
        return Err(ENOEXEC);
    }
    let h = goblin::elf::Elf::parse_header(&hb).map_err(|_| ENOEXEC)?;
    if h.e_ident[header::EI_CLASS] != header::ELFCLASS64
        || h.e_machine != header::EM_X86_64
        || !(h.e_type == header::ET_EXEC || h.e_type == header::ET_DYN)
    {
        return Err(ENOEXEC);
    }
    if h.e_phnum == 0 || h.e_phnum > 128 || h.e_phentsize as usize != 56 {
        return Err(ENOEXEC);
    }
    let phb = read_at(t, f, h.e_phoff, h.e_phnum as usize * 56)?;
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phs = ProgramHeader::parse(&phb, 0, h.e_phnum as usize, ctx).map_err(|_| ENOEXEC)?;
    let loads: Vec<&ProgramHeader> = phs
        .iter()
        .filter(|p| p.p_type == program_header::PT_LOAD)
        .collect();
    if loads.is_empty() {
        return Err(ENOEXEC);
    }
    let lo = page_down(loads.iter().map(|p| p.p_vaddr).min().unwrap_or(0));
    let hi = page_up(
        loads
            .iter()
            .map(|p| p.p_vaddr + p.p_memsz)
            .max()
            .unwrap_or(0),
    )
    .ok_or(ENOEXEC)?;
    let src: Arc<dyn MapSource> = f.ops.mmap_source().ok_or(EACCES)?;
    let st = f.stat();
    let mut inner = mm.inner.lock();
    let bias = if h.e_type == header::ET_DYN {
        let span = hi - lo;
        let base = if main {
            PIE_BASE
        } else {
            Mm::find_free(&inner, span, 0).ok_or(ENOMEM)?
        };
        base - lo
    } else {
        0
    };
    let mut interp = None;
    let mut phdr = 0;
    let mut brk = 0;
    for p in &phs {
        match p.p_type {
            program_header::PT_INTERP => {
                let mut s = read_at(t, f, p.p_offset, p.p_filesz as usize)?;
                while s.last() == Some(&0) {
                    s.pop();
                }
                interp = Some(s);
            }
            program_header::PT_PHDR => phdr = p.p_vaddr + bias,
            _ => {}
        }
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let mut zero_fills = vec![];
    for p in &loads {
        if p.p_offset % PAGE != p.p_vaddr % PAGE {
            return Err(EINVAL);
        }
        let prot = prot_of(p.p_flags);
        let start = page_down(p.p_vaddr + bias);
        let file_end = p.p_vaddr + bias + p.p_filesz;
        let mem_end = page_up(p.p_vaddr + bias + p.p_memsz).ok_or(ENOEXEC)?;
        let map_end = page_up(file_end).ok_or(ENOEXEC)?;
        if p.p_filesz > 0 {
            let vma = Vma {
                end: map_end,
                prot,
                shared: false,
                growsdown: false,
                backing: Backing::File {
                    src: src.clone(),
                    offset: page_down(p.p_offset),
                },
                name: name.clone(),
                dev_ino: (st.dev, st.ino),
                dontfork: false,
                wipeonfork: false,
                maywrite: true,
            };
            mm.map_fixed(&mut inner, start, map_end - start, vma);
            if p.p_memsz > p.p_filesz && file_end % PAGE != 0 {
                zero_fills.push((file_end, map_end - file_end));
            }
        }
        let anon_start = if p.p_filesz > 0 { map_end } else { start };
        if mem_end > anon_start {
            let vma = Vma::anon(mem_end, prot);
            mm.map_fixed(&mut inner, anon_start, mem_end - anon_start, vma);
        }
        brk = brk.max(mem_end);
    }
    if phdr == 0 {
        // The program headers inside the first segment that holds them.
        for p in &loads {
            if p.p_offset <= h.e_phoff && h.e_phoff < p.p_offset + p.p_filesz {
                phdr = p.p_vaddr + bias + (h.e_phoff - p.p_offset);
            }
        }
    }
    drop(inner);
    for (addr, len) in zero_fills {
        // The bss part of the last file page must read as zeros.
        let writable = Mm::find_vma(&mm.inner.lock(), addr)
            .map(|(_, v)| v.prot & PROT_WRITE != 0)
            .unwrap_or(false);
        if writable {
            mm.write(addr, &vec![0u8; len as usize])?;
        }
    }
    Ok(Image {
        entry: h.e_entry + bias,
        base: bias,
        phdr,
        phnum: h.e_phnum as u64,
        interp,
        brk,
    })
}

/// Build the initial stack and return the stack pointer.
#[allow(clippy::too_many_arguments)]
pub fn setup_stack(
    t: &Task,
    mm: &Mm,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    main: &Image,
    interp_base: u64,
    creds: &crate::kernel::Creds,
) -> KResult<u64> {
    let top = crate::mm::STACK_TOP;
    {
        let mut inner = mm.inner.lock();
        let vma = Vma {
            growsdown: true,
            name: "[stack]".into(),
            ..Vma::anon(top, PROT_READ | PROT_WRITE)
        };
        mm.map_fixed(&mut inner, top - STACK_INIT, STACK_INIT, vma);
        inner.stack_top = top;
    }
    let total: usize = argv
        .iter()
        .chain(envp.iter())
        .map(|s| s.len() + 1)
        .sum::<usize>()
        + execfn.len()
        + 1;
    if total > (STACK_INIT as usize) / 2 + (6 << 20) {
        return Err(E2BIG);
    }
    let mut sp = top - 16;
    let push_bytes = |sp: &mut u64, b: &[u8]| -> KResult<u64> {
        *sp -= b.len() as u64 + 1;
        mm.write(*sp, b)?;
        mm.write(*sp + b.len() as u64, &[0])?;
        Ok(*sp)
    };
    let execfn_p = push_bytes(&mut sp, execfn)?;
    let env_end = sp;
    let mut envp_p: Vec<u64> = vec![];
    for e in envp.iter().rev() {
        envp_p.push(push_bytes(&mut sp, e)?);
    }
    envp_p.reverse();
    let env_start = sp;
    let arg_end = sp;
    let mut argv_p: Vec<u64> = vec![];
    for a in argv.iter().rev() {
        argv_p.push(push_bytes(&mut sp, a)?);
    }
    argv_p.reverse();
    let arg_start = sp;
    let platform_p = push_bytes(&mut sp, b"x86_64")?;
    sp &= !15;
    sp -= 16;
    let mut rnd = [0u8; 16];
    crate::vfs::devfs::fill_random(&mut rnd);
    mm.write(sp, &rnd)?;
    let random_p = sp;
    let hwcap = std::arch::x86_64::__cpuid(1).edx as u64;
    let mut auxv: Vec<(u64, u64)> = vec![
        (3, main.phdr),
        (4, 56),
        (5, main.phnum),
        (6, PAGE),
        (7, interp_base),
        (8, 0),
        (9, main.entry),
        (11, creds.uid as u64),
        (12, creds.euid as u64),
        (13, creds.gid as u64),
        (14, creds.egid as u64),
        (15, platform_p),
        (16, hwcap),
        (17, 100),
        (23, 0),
        (25, random_p),
        (31, execfn_p),
        (0, 0),
    ];
    if let Some(vdso) = crate::vdso::map(mm) {
        auxv.insert(0, (33, vdso)); // AT_SYSINFO_EHDR, first as in Linux
    }
    let words = 1 + argv_p.len() + 1 + envp_p.len() + 1 + auxv.len() * 2;
    sp -= (words * 8) as u64;
    sp &= !15;
    let mut v: Vec<u64> = Vec::with_capacity(words);
    v.push(argv_p.len() as u64);
    v.extend(&argv_p);
    v.push(0);
    v.extend(&envp_p);
    v.push(0);
    for (a, b) in &auxv {
        v.push(*a);
        v.push(*b);
    }
    let bytes: Vec<u8> = v.iter().flat_map(|w| w.to_le_bytes()).collect();
    mm.write(sp, &bytes)?;
    let mut inner = mm.inner.lock();
    inner.arg_range = (arg_start, arg_end);
    inner.env_range = (env_start, env_end);
    inner.auxv = auxv;
    let _ = t;
    Ok(sp)
}

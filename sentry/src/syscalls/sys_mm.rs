//! Memory system calls: mmap, munmap, mprotect, brk, mremap, madvise.

use super::*;
use crate::memfile::PAGE;
use crate::mm::{page_up, Backing, Mm, Vma, PROT_EXEC, PROT_READ, PROT_WRITE};

const MAP_SHARED: u64 = 1;
const MAP_PRIVATE: u64 = 2;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_FIXED_NOREPLACE: u64 = 0x100000;
const RLIMIT_AS: usize = 9;

/// RLIMIT_AS: would growing the address space by `more` bytes exceed it?
fn over_as_limit(c: &Ctx, inner: &crate::mm::MmInner, more: u64) -> bool {
    let limit = c.t.rlimit(RLIMIT_AS).0;
    limit != u64::MAX && Mm::vm_size(inner).saturating_add(more) > limit
}

pub fn call(c: &mut Ctx, nr: u64) -> Option<SysResult> {
    let (a0, a1, a2, a3, a4, a5) = (c.arg(0), c.arg(1), c.arg(2), c.arg(3), c.arg(4), c.arg(5));
    Some(match nr {
        9 => mmap(c, a0, a1, a2 as u32, a3, a4, a5),
        10 => c.t.mm().mprotect(a0, a1, a2 as u32 & 7).map(|_| 0),
        11 => c.t.mm().munmap(a0, a1).map(|_| 0),
        12 => brk(c, a0),
        25 => mremap(c, a0, a1, a2, a3, a4),
        26 => Ok(0),
        27 => mincore(c, a0, a1, a2),
        28 => madvise(c, a0, a1, a2),
        _ => return None,
    })
}

fn mmap(c: &Ctx, addr: u64, len: u64, prot: u32, flags: u64, fd: u64, off: u64) -> SysResult {
    if len == 0 || !off.is_multiple_of(PAGE) || prot & !7 != 0 {
        return Err(EINVAL);
    }
    let len = page_up(len).ok_or(ENOMEM)?;
    if len > platform::MAX_USER_ADDR {
        return Err(ENOMEM);
    }
    let kind = flags & 3;
    if kind != MAP_SHARED && kind != MAP_PRIVATE && kind != 3 {
        return Err(EINVAL);
    }
    let shared = kind != MAP_PRIVATE;
    let (backing, name, dev_ino) = if flags & MAP_ANONYMOUS != 0 {
        if shared {
            let src: Arc<dyn crate::mm::MapSource> = crate::vfs::memfs::anon_file(len);
            (
                Backing::File { src, offset: 0 },
                "/dev/zero (deleted)".to_string(),
                (0, 0),
            )
        } else {
            (Backing::Anon, String::new(), (0, 0))
        }
    } else {
        let f = c.fd(fd)?;
        if !f.readable() {
            return Err(EACCES);
        }
        if shared && prot & PROT_WRITE != 0 && !f.writable() {
            return Err(EACCES);
        }
        let src = f.ops.mmap_source().ok_or(ENODEV)?;
        if shared && prot & PROT_WRITE != 0 && src.write_sealed() {
            return Err(EPERM);
        }
        let root = c.t.fsctx().root.lock().clone();
        let name = f
            .path
            .as_ref()
            .map(|p| String::from_utf8_lossy(&p.to_bytes(&root)).into_owned())
            .unwrap_or_default();
        let st = f.stat();
        (Backing::File { src, offset: off }, name, (st.dev, st.ino))
    };
    let mm = c.t.mm();
    let mut inner = mm.inner.lock();
    let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if !addr.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        if addr
            .checked_add(len)
            .is_none_or(|e| e > platform::MAX_USER_ADDR)
            || addr < 0x1000
        {
            return Err(if flags & MAP_FIXED_NOREPLACE != 0 {
                EEXIST
            } else {
                ENOMEM
            });
        }
        if flags & MAP_FIXED_NOREPLACE != 0 && Mm::overlaps(&inner, addr, addr + len) {
            return Err(EEXIST);
        }
        addr
    } else {
        Mm::find_free(&inner, len, crate::mm::page_down(addr)).ok_or(ENOMEM)?
    };
    if over_as_limit(c, &inner, len) {
        return Err(ENOMEM);
    }
    let vma = Vma {
        end: start + len,
        prot,
        shared,
        growsdown: flags & MAP_GROWSDOWN != 0,
        backing,
        name,
        dev_ino,
        dontfork: false,
    };
    mm.map_fixed(&mut inner, start, len, vma);
    Ok(start)
}

fn brk(c: &Ctx, addr: u64) -> SysResult {
    let mm = c.t.mm();
    let mut inner = mm.inner.lock();
    let cur = inner.brk;
    if addr < inner.brk_start || addr > inner.brk_start + (1 << 40) {
        return Ok(cur);
    }
    let old_end = page_up(cur).ok_or(ENOMEM)?;
    let new_end = page_up(addr).ok_or(ENOMEM)?;
    if new_end > old_end {
        if Mm::overlaps(&inner, old_end, new_end) || over_as_limit(c, &inner, new_end - old_end) {
            return Ok(cur);
        }
        let vma = Vma {
            end: new_end,
            prot: PROT_READ | PROT_WRITE,
            shared: false,
            growsdown: false,
            backing: Backing::Anon,
            name: "[heap]".into(),
            dev_ino: (0, 0),
            dontfork: false,
        };
        mm.map_fixed(&mut inner, old_end, new_end - old_end, vma);
    } else if new_end < old_end {
        mm.unmap_locked(&mut inner, new_end, old_end);
    }
    inner.brk = addr;
    Ok(addr)
}

fn mremap(c: &Ctx, old: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> SysResult {
    const MAYMOVE: u64 = 1;
    const FIXED: u64 = 2;
    if !old.is_multiple_of(PAGE)
        || flags & !7 != 0
        || (flags & FIXED != 0 && flags & MAYMOVE == 0)
        || new_len == 0
    {
        return Err(EINVAL);
    }
    let old_len = page_up(old_len).ok_or(EINVAL)?;
    let new_len = page_up(new_len).ok_or(ENOMEM)?;
    let mm = c.t.mm();
    let mut inner = mm.inner.lock();
    let (vstart, vma) = Mm::find_vma(&inner, old)
        .map(|(s, v)| (s, v.clone()))
        .ok_or(EFAULT)?;
    if old + old_len > vma.end && old_len != 0 {
        return Err(EFAULT);
    }
    let _ = vstart;
    if flags & FIXED != 0 {
        if !new_addr.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        mm.move_range(&mut inner, old, old_len.min(new_len), new_addr);
        if new_len > old_len {
            let mut v = vma.clone();
            if let Backing::File { offset, .. } = &mut v.backing {
                *offset += old_len;
            }
            mm.map_fixed(&mut inner, new_addr + old_len, new_len - old_len, v);
        } else if old_len > new_len {
            mm.unmap_locked(&mut inner, old + new_len, old + old_len);
        }
        return Ok(new_addr);
    }
    if new_len <= old_len {
        mm.unmap_locked(&mut inner, old + new_len, old + old_len);
        return Ok(old);
    }
    // Grow in place when the space after is free.
    if old + old_len == vma.end
        && !Mm::overlaps(&inner, old + old_len, old + new_len)
        && old + new_len <= platform::MAX_USER_ADDR
    {
        let start = Mm::find_vma(&inner, old).map(|(s, _)| s).ok_or(EFAULT)?;
        inner.vmas.get_mut(&start).ok_or(EFAULT)?.end = old + new_len;
        return Ok(old);
    }
    if flags & MAYMOVE == 0 {
        return Err(ENOMEM);
    }
    let dest = Mm::find_free(&inner, new_len, 0).ok_or(ENOMEM)?;
    mm.move_range(&mut inner, old, old_len, dest);
    let mut v = vma;
    if let Backing::File { offset, .. } = &mut v.backing {
        *offset += old_len;
    }
    let start = Mm::find_vma(&inner, dest).map(|(s, _)| s).ok_or(EFAULT)?;
    let cur_end = inner.vmas[&start].end;
    if cur_end < dest + new_len {
        inner.vmas.get_mut(&start).ok_or(EFAULT)?.end = dest + new_len;
    }
    let _ = PROT_EXEC;
    Ok(dest)
}

fn madvise(c: &Ctx, addr: u64, len: u64, advice: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    match advice {
        4 => c.t.mm().dontneed(addr, len).map(|_| 0),
        0..=3 | 8..=19 | 100..=101 => Ok(0),
        _ => Err(EINVAL),
    }
}

/// mincore: a page is resident if it has been touched (the Sentry keeps no swap).
fn mincore(c: &Ctx, addr: u64, len: u64, vec: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let end = page_up(addr.checked_add(len).ok_or(ENOMEM)?).ok_or(ENOMEM)?;
    let mm = c.t.mm();
    let v = {
        let inner = mm.inner.lock();
        let mut a = addr;
        while a < end {
            match Mm::find_vma(&inner, a) {
                Some((_, v)) => a = v.end,
                None => return Err(ENOMEM),
            }
        }
        (0..(end - addr) / PAGE)
            .map(|i| mm.resident(&inner, addr + i * PAGE) as u8)
            .collect::<Vec<u8>>()
    };
    mm.write(vec, &v)?;
    Ok(0)
}

//! Memory system calls: mmap, munmap, mprotect, brk, mremap, madvise.

use super::*;
use crate::memfile::PAGE;
use crate::mm::{page_up, Backing, Mm, Vma, PROT_READ, PROT_WRITE};

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
        26 => msync(c, a0, a1, a2),
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
    // Linux's VM_MAYWRITE: a shared mapping of a file not open for writing (or
    // write-sealed) can never become writable.
    let mut maywrite = true;
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
        if prot & crate::mm::PROT_EXEC != 0
            && f.path
                .as_ref()
                .is_some_and(|p| p.mnt.flags() & crate::vfs::MS_NOEXEC != 0)
        {
            return Err(EPERM);
        }
        if shared && prot & PROT_WRITE != 0 && src.write_sealed() {
            return Err(EPERM);
        }
        maywrite = !shared || (f.writable() && !src.write_sealed());
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
        wipeonfork: false,
        maywrite,
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
            name: "[heap]".into(),
            ..Vma::anon(new_end, PROT_READ | PROT_WRITE)
        };
        mm.map_fixed(&mut inner, old_end, new_end - old_end, vma);
    } else if new_end < old_end {
        mm.unmap_locked(&mut inner, new_end, old_end);
    }
    inner.brk = addr;
    Ok(addr)
}

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MREMAP_DONTUNMAP: u64 = 4;

/// mremap(2), following Linux's order of checks.
fn mremap(c: &Ctx, old: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> SysResult {
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
        || (flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0)
    {
        return Err(EINVAL);
    }
    // MREMAP_DONTUNMAP always moves and never resizes.
    if flags & MREMAP_DONTUNMAP != 0 && (flags & MREMAP_MAYMOVE == 0 || old_len != new_len) {
        return Err(EINVAL);
    }
    if !old.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let old_len = page_up(old_len).ok_or(EINVAL)?;
    let new_len = page_up(new_len).ok_or(EINVAL)?;
    if new_len == 0 {
        return Err(EINVAL);
    }
    let mm = c.t.mm();
    let mut inner = mm.inner.lock();
    if Mm::find_vma(&inner, old).is_none() {
        return Err(EFAULT);
    }
    if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 {
        return mremap_to(c, &mm, &mut inner, old, old_len, new_len, flags, new_addr);
    }
    // Shrinking always works in place.
    if old_len >= new_len {
        if old_len > new_len {
            mm.unmap_locked(&mut inner, old + new_len, old + old_len);
        }
        return Ok(old);
    }
    let (vstart, vend) = vma_to_resize(c, &inner, old, old_len, new_len)?;
    // The range ends its mapping: grow in place when the space after it is free.
    if old_len == vend - old
        && old
            .checked_add(new_len)
            .is_some_and(|e| e <= platform::MAX_USER_ADDR)
        && !Mm::overlaps(&inner, vend, old + new_len)
    {
        inner.vmas.get_mut(&vstart).ok_or(EFAULT)?.end = old + new_len;
        return Ok(old);
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(ENOMEM);
    }
    let dest = Mm::find_free(&inner, new_len, 0).ok_or(ENOMEM)?;
    mm.move_vma(&mut inner, old, old_len, new_len, dest, false)?;
    Ok(dest)
}

/// Linux's vma_to_resize: checks that [old, old+old_len) can become `new_len` bytes.
/// Returns the containing VMA's (start, end).
fn vma_to_resize(
    c: &Ctx,
    inner: &crate::mm::MmInner,
    old: u64,
    old_len: u64,
    new_len: u64,
) -> Result<(u64, u64), Errno> {
    let (vstart, vma) = Mm::find_vma(inner, old).ok_or(EFAULT)?;
    // old_len 0 duplicates a mapping, which makes sense only for a shared one.
    if old_len == 0 && !vma.shared {
        return Err(EINVAL);
    }
    // No remapping across VMA boundaries.
    if old_len > vma.end - old {
        return Err(EFAULT);
    }
    if new_len > old_len && over_as_limit(c, inner, new_len - old_len) {
        return Err(ENOMEM);
    }
    Ok((vstart, vma.end))
}

/// mremap with MREMAP_FIXED or MREMAP_DONTUNMAP (Linux's mremap_to).
#[allow(clippy::too_many_arguments)]
fn mremap_to(
    c: &Ctx,
    mm: &Mm,
    inner: &mut crate::mm::MmInner,
    old: u64,
    mut old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> SysResult {
    if !new_addr.is_multiple_of(PAGE)
        || new_len > platform::MAX_USER_ADDR
        || new_addr > platform::MAX_USER_ADDR - new_len
    {
        return Err(EINVAL);
    }
    // The old and new ranges must not overlap.
    if old + old_len > new_addr && new_addr + new_len > old {
        return Err(EINVAL);
    }
    if flags & MREMAP_FIXED != 0 {
        mm.unmap_locked(inner, new_addr, new_addr + new_len);
    }
    if old_len > new_len {
        mm.unmap_locked(inner, old + new_len, old + old_len);
        old_len = new_len;
    }
    vma_to_resize(c, inner, old, old_len, new_len)?;
    // The source stays mapped: the address space grows by the whole new range.
    if flags & MREMAP_DONTUNMAP != 0 && over_as_limit(c, inner, old_len) {
        return Err(ENOMEM);
    }
    let dest = if flags & MREMAP_FIXED != 0 {
        new_addr
    } else {
        Mm::find_free(inner, new_len, new_addr).ok_or(ENOMEM)?
    };
    mm.move_vma(
        inner,
        old,
        old_len,
        new_len,
        dest,
        flags & MREMAP_DONTUNMAP != 0,
    )?;
    Ok(dest)
}

/// madvise(2): checks as Linux's do_madvise, then the advice per mapped part.
fn madvise(c: &Ctx, addr: u64, len: u64, advice: u64) -> SysResult {
    use crate::mm::*;
    let valid = matches!(
        advice,
        MADV_NORMAL
            | MADV_RANDOM
            | MADV_SEQUENTIAL
            | MADV_WILLNEED
            | MADV_DONTNEED
            | MADV_FREE
            | MADV_REMOVE
            | MADV_DONTFORK
            | MADV_DOFORK
            | MADV_MERGEABLE
            | MADV_UNMERGEABLE
            | MADV_HUGEPAGE
            | MADV_NOHUGEPAGE
            | MADV_DONTDUMP
            | MADV_DODUMP
            | MADV_WIPEONFORK
            | MADV_KEEPONFORK
            | MADV_COLD
            | MADV_PAGEOUT
            | MADV_POPULATE_READ
            | MADV_POPULATE_WRITE
            | MADV_DONTNEED_LOCKED
            | MADV_COLLAPSE
    );
    // (MADV_HWPOISON and MADV_SOFT_OFFLINE inject memory errors: not offered, as in a
    // kernel without CONFIG_MEMORY_FAILURE.)
    if !valid || !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let Some(alen) = page_up(len) else {
        return Err(EINVAL);
    };
    let end = addr.checked_add(alen).ok_or(EINVAL)?;
    if end == addr {
        return Ok(0);
    }
    c.t.mm().madvise(addr, end, advice).map(|_| 0)
}

/// msync(2): checks as Linux; see Mm::msync.
fn msync(c: &Ctx, addr: u64, len: u64, flags: u64) -> SysResult {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || !addr.is_multiple_of(PAGE)
        || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0)
    {
        return Err(EINVAL);
    }
    let alen = page_up(len).ok_or(ENOMEM)?;
    let end = addr.checked_add(alen).ok_or(ENOMEM)?;
    if end == addr {
        return Ok(0);
    }
    c.t.mm().msync(addr, end).map(|_| 0)
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

//! Requests, responses and their encoding: little-endian integers, byte strings as a
//! u32 length then the bytes, one message per SEQPACKET record. A request starts with
//! its opcode, a response with its tag. Descriptors travel beside the bytes.

use crate::{DirEntry, Errno, Fid, SetAttr, Stat, StatFs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Attach,
    Walk {
        dir: Fid,
        name: Vec<u8>,
    },
    Stat {
        fid: Fid,
    },
    Open {
        fid: Fid,
        flags: i32,
    },
    /// Entries from directory offset `cookie` (0 = start) on, as many as fit.
    Readdir {
        dir: Fid,
        cookie: u64,
    },
    Readlink {
        fid: Fid,
    },
    Create {
        dir: Fid,
        name: Vec<u8>,
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Mkdir {
        dir: Fid,
        name: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        dir: Fid,
        name: Vec<u8>,
        target: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    Mknod {
        dir: Fid,
        name: Vec<u8>,
        mode: u32,
        rdev: u64,
        uid: u32,
        gid: u32,
    },
    Link {
        target: Fid,
        dir: Fid,
        name: Vec<u8>,
    },
    Unlink {
        dir: Fid,
        name: Vec<u8>,
        flags: i32,
    },
    Rename {
        olddir: Fid,
        oldname: Vec<u8>,
        newdir: Fid,
        newname: Vec<u8>,
        flags: u32,
    },
    SetAttr {
        fid: Fid,
        attr: SetAttr,
    },
    StatFs {
        fid: Fid,
    },
    GetXattr {
        fid: Fid,
        name: Vec<u8>,
    },
    SetXattr {
        fid: Fid,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: i32,
    },
    ListXattr {
        fid: Fid,
    },
    RemoveXattr {
        fid: Fid,
        name: Vec<u8>,
    },
    Clunk {
        fid: Fid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Error(Errno),
    /// Success without data (`open` and `create` also carry a descriptor).
    Ok,
    Walked(Fid, Stat),
    Stat(Stat),
    /// `next` is the cookie to continue from; `done` once the directory is exhausted.
    Dirents {
        entries: Vec<DirEntry>,
        next: u64,
        done: bool,
    },
    Bytes(Vec<u8>),
    StatFs(StatFs),
}

impl Request {
    /// Whether a read-only server must refuse it (EROFS).
    pub fn mutates(&self) -> bool {
        use Request::*;
        matches!(
            self,
            Create { .. }
                | Mkdir { .. }
                | Symlink { .. }
                | Mknod { .. }
                | Link { .. }
                | Unlink { .. }
                | Rename { .. }
                | SetAttr { .. }
                | SetXattr { .. }
                | RemoveXattr { .. }
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        use Request::*;
        let mut w = W(Vec::with_capacity(64));
        match self {
            Attach => w.u8(1),
            Walk { dir, name } => w.u8(2).u64(*dir).bytes(name),
            Stat { fid } => w.u8(3).u64(*fid),
            Open { fid, flags } => w.u8(4).u64(*fid).i32(*flags),
            Readdir { dir, cookie } => w.u8(5).u64(*dir).u64(*cookie),
            Readlink { fid } => w.u8(6).u64(*fid),
            Create {
                dir,
                name,
                flags,
                mode,
                uid,
                gid,
            } => w
                .u8(7)
                .u64(*dir)
                .bytes(name)
                .i32(*flags)
                .u32(*mode)
                .u32(*uid)
                .u32(*gid),
            Mkdir {
                dir,
                name,
                mode,
                uid,
                gid,
            } => w.u8(8).u64(*dir).bytes(name).u32(*mode).u32(*uid).u32(*gid),
            Symlink {
                dir,
                name,
                target,
                uid,
                gid,
            } => w
                .u8(9)
                .u64(*dir)
                .bytes(name)
                .bytes(target)
                .u32(*uid)
                .u32(*gid),
            Mknod {
                dir,
                name,
                mode,
                rdev,
                uid,
                gid,
            } => w
                .u8(10)
                .u64(*dir)
                .bytes(name)
                .u32(*mode)
                .u64(*rdev)
                .u32(*uid)
                .u32(*gid),
            Link { target, dir, name } => w.u8(11).u64(*target).u64(*dir).bytes(name),
            Unlink { dir, name, flags } => w.u8(12).u64(*dir).bytes(name).i32(*flags),
            Rename {
                olddir,
                oldname,
                newdir,
                newname,
                flags,
            } => w
                .u8(13)
                .u64(*olddir)
                .bytes(oldname)
                .u64(*newdir)
                .bytes(newname)
                .u32(*flags),
            SetAttr { fid, attr } => w.u8(14).u64(*fid).setattr(attr),
            StatFs { fid } => w.u8(15).u64(*fid),
            GetXattr { fid, name } => w.u8(16).u64(*fid).bytes(name),
            SetXattr {
                fid,
                name,
                value,
                flags,
            } => w.u8(17).u64(*fid).bytes(name).bytes(value).i32(*flags),
            ListXattr { fid } => w.u8(18).u64(*fid),
            RemoveXattr { fid, name } => w.u8(19).u64(*fid).bytes(name),
            Clunk { fid } => w.u8(20).u64(*fid),
        };
        w.0
    }

    /// Decode one request; anything malformed (short, trailing bytes, unknown
    /// opcode) is EINVAL.
    pub fn decode(b: &[u8]) -> Result<Request, Errno> {
        use Request::*;
        let mut r = R(b);
        let req = match r.u8()? {
            1 => Attach,
            2 => Walk {
                dir: r.u64()?,
                name: r.bytes()?,
            },
            3 => Stat { fid: r.u64()? },
            4 => Open {
                fid: r.u64()?,
                flags: r.i32()?,
            },
            5 => Readdir {
                dir: r.u64()?,
                cookie: r.u64()?,
            },
            6 => Readlink { fid: r.u64()? },
            7 => Create {
                dir: r.u64()?,
                name: r.bytes()?,
                flags: r.i32()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            8 => Mkdir {
                dir: r.u64()?,
                name: r.bytes()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            9 => Symlink {
                dir: r.u64()?,
                name: r.bytes()?,
                target: r.bytes()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            10 => Mknod {
                dir: r.u64()?,
                name: r.bytes()?,
                mode: r.u32()?,
                rdev: r.u64()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            11 => Link {
                target: r.u64()?,
                dir: r.u64()?,
                name: r.bytes()?,
            },
            12 => Unlink {
                dir: r.u64()?,
                name: r.bytes()?,
                flags: r.i32()?,
            },
            13 => Rename {
                olddir: r.u64()?,
                oldname: r.bytes()?,
                newdir: r.u64()?,
                newname: r.bytes()?,
                flags: r.u32()?,
            },
            14 => SetAttr {
                fid: r.u64()?,
                attr: r.setattr()?,
            },
            15 => StatFs { fid: r.u64()? },
            16 => GetXattr {
                fid: r.u64()?,
                name: r.bytes()?,
            },
            17 => SetXattr {
                fid: r.u64()?,
                name: r.bytes()?,
                value: r.bytes()?,
                flags: r.i32()?,
            },
            18 => ListXattr { fid: r.u64()? },
            19 => RemoveXattr {
                fid: r.u64()?,
                name: r.bytes()?,
            },
            20 => Clunk { fid: r.u64()? },
            _ => return Err(EINVAL),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(160));
        match self {
            Response::Error(e) => w.u8(0).i32(e.0),
            Response::Ok => w.u8(1),
            Response::Walked(fid, st) => w.u8(2).u64(*fid).stat(st),
            Response::Stat(st) => w.u8(3).stat(st),
            Response::Dirents {
                entries,
                next,
                done,
            } => {
                w.u8(4).u64(*next).u8(*done as u8).u32(entries.len() as u32);
                for e in entries {
                    w.u64(e.ino).u8(e.kind).bytes(&e.name);
                }
                &mut w
            }
            Response::Bytes(b) => w.u8(5).bytes(b),
            Response::StatFs(s) => w
                .u8(6)
                .u64(s.fs_type)
                .i64(s.bsize)
                .u64(s.blocks)
                .u64(s.bfree)
                .u64(s.bavail)
                .u64(s.files)
                .u64(s.ffree)
                .i32(s.fsid[0])
                .i32(s.fsid[1])
                .i64(s.namelen)
                .i64(s.frsize)
                .i64(s.flags),
        };
        w.0
    }

    pub fn decode(b: &[u8]) -> Result<Response, Errno> {
        let mut r = R(b);
        let resp = match r.u8()? {
            0 => Response::Error(Errno(r.i32()?)),
            1 => Response::Ok,
            2 => Response::Walked(r.u64()?, r.stat()?),
            3 => Response::Stat(r.stat()?),
            4 => {
                let (next, done, n) = (r.u64()?, r.u8()? != 0, r.u32()?);
                let mut entries = Vec::new();
                for _ in 0..n {
                    entries.push(DirEntry {
                        ino: r.u64()?,
                        kind: r.u8()?,
                        name: r.bytes()?,
                    });
                }
                Response::Dirents {
                    entries,
                    next,
                    done,
                }
            }
            5 => Response::Bytes(r.bytes()?),
            6 => Response::StatFs(StatFs {
                fs_type: r.u64()?,
                bsize: r.i64()?,
                blocks: r.u64()?,
                bfree: r.u64()?,
                bavail: r.u64()?,
                files: r.u64()?,
                ffree: r.u64()?,
                fsid: [r.i32()?, r.i32()?],
                namelen: r.i64()?,
                frsize: r.i64()?,
                flags: r.i64()?,
            }),
            _ => return Err(EINVAL),
        };
        r.finish()?;
        Ok(resp)
    }
}

/// Encoded size of one directory entry in a `Dirents` response.
pub(crate) fn dirent_size(name_len: usize) -> usize {
    8 + 1 + 4 + name_len
}

const EINVAL: Errno = Errno(libc::EINVAL);

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.u32(v as u32)
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.u64(v as u64)
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    fn stat(&mut self, s: &Stat) -> &mut Self {
        self.u64(s.dev)
            .u64(s.ino)
            .u32(s.mode)
            .u64(s.nlink)
            .u32(s.uid)
            .u32(s.gid);
        self.u64(s.rdev).i64(s.size).i64(s.blksize).i64(s.blocks);
        for t in [s.atime, s.mtime, s.ctime] {
            self.i64(t.0).i64(t.1);
        }
        self
    }
    fn setattr(&mut self, a: &SetAttr) -> &mut Self {
        let present = [
            a.mode.is_some(),
            a.uid.is_some(),
            a.gid.is_some(),
            a.size.is_some(),
            a.atime.is_some(),
            a.mtime.is_some(),
        ];
        let mask = present
            .iter()
            .enumerate()
            .fold(0u8, |m, (i, p)| m | ((*p as u8) << i));
        self.u8(mask);
        for v in [a.mode, a.uid, a.gid].into_iter().flatten() {
            self.u32(v);
        }
        if let Some(v) = a.size {
            self.u64(v);
        }
        for t in [a.atime, a.mtime].into_iter().flatten() {
            self.i64(t.0).i64(t.1);
        }
        self
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Errno> {
        if self.0.len() < n {
            return Err(EINVAL);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], Errno> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Errno> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn i32(&mut self) -> Result<i32, Errno> {
        Ok(i32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, Errno> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, Errno> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn time(&mut self) -> Result<(i64, i64), Errno> {
        Ok((self.i64()?, self.i64()?))
    }
    fn stat(&mut self) -> Result<Stat, Errno> {
        Ok(Stat {
            dev: self.u64()?,
            ino: self.u64()?,
            mode: self.u32()?,
            nlink: self.u64()?,
            uid: self.u32()?,
            gid: self.u32()?,
            rdev: self.u64()?,
            size: self.i64()?,
            blksize: self.i64()?,
            blocks: self.i64()?,
            atime: self.time()?,
            mtime: self.time()?,
            ctime: self.time()?,
        })
    }
    fn setattr(&mut self) -> Result<SetAttr, Errno> {
        let m = self.u8()?;
        if m >> 6 != 0 {
            return Err(EINVAL);
        }
        let has = |i: u8| m & (1 << i) != 0;
        Ok(SetAttr {
            mode: if has(0) { Some(self.u32()?) } else { None },
            uid: if has(1) { Some(self.u32()?) } else { None },
            gid: if has(2) { Some(self.u32()?) } else { None },
            size: if has(3) { Some(self.u64()?) } else { None },
            atime: if has(4) { Some(self.time()?) } else { None },
            mtime: if has(5) { Some(self.time()?) } else { None },
        })
    }
    fn finish(&self) -> Result<(), Errno> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_requests() -> Vec<Request> {
        let n = || b"name".to_vec();
        let attr = SetAttr {
            mode: Some(0o644),
            size: Some(7),
            mtime: Some((1, libc::UTIME_OMIT)),
            ..Default::default()
        };
        vec![
            Request::Attach,
            Request::Walk { dir: 1, name: n() },
            Request::Stat { fid: 2 },
            Request::Open {
                fid: 3,
                flags: libc::O_RDWR,
            },
            Request::Readdir {
                dir: 4,
                cookie: u64::MAX,
            },
            Request::Readlink { fid: 5 },
            Request::Create {
                dir: 1,
                name: n(),
                flags: 2,
                mode: 0o600,
                uid: 3,
                gid: 4,
            },
            Request::Mkdir {
                dir: 1,
                name: n(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            Request::Symlink {
                dir: 1,
                name: n(),
                target: b"../t".to_vec(),
                uid: 1,
                gid: 2,
            },
            Request::Mknod {
                dir: 1,
                name: n(),
                mode: libc::S_IFIFO | 0o644,
                rdev: 9,
                uid: 1,
                gid: 1,
            },
            Request::Link {
                target: 2,
                dir: 1,
                name: n(),
            },
            Request::Unlink {
                dir: 1,
                name: n(),
                flags: libc::AT_REMOVEDIR,
            },
            Request::Rename {
                olddir: 1,
                oldname: n(),
                newdir: 2,
                newname: b"x".to_vec(),
                flags: 1,
            },
            Request::SetAttr { fid: 9, attr },
            Request::SetAttr {
                fid: 9,
                attr: SetAttr::default(),
            },
            Request::StatFs { fid: 1 },
            Request::GetXattr { fid: 1, name: n() },
            Request::SetXattr {
                fid: 1,
                name: n(),
                value: vec![0, 1, 2],
                flags: 0,
            },
            Request::ListXattr { fid: 1 },
            Request::RemoveXattr { fid: 1, name: n() },
            Request::Clunk { fid: 7 },
        ]
    }

    #[test]
    fn requests_round_trip_and_reject_damage() {
        for req in all_requests() {
            let b = req.encode();
            assert_eq!(Request::decode(&b), Ok(req.clone()));
            // Every strict prefix and any trailing byte is malformed.
            for cut in 0..b.len() {
                assert_eq!(Request::decode(&b[..cut]), Err(EINVAL), "{req:?} cut {cut}");
            }
            let mut long = b.clone();
            long.push(0);
            assert_eq!(Request::decode(&long), Err(EINVAL));
        }
        assert_eq!(Request::decode(&[0]), Err(EINVAL));
        assert_eq!(Request::decode(&[200, 1, 2]), Err(EINVAL));
        // A huge length prefix must not allocate or panic.
        assert_eq!(
            Request::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]),
            Err(EINVAL)
        );
    }

    #[test]
    fn responses_round_trip() {
        let st = Stat {
            dev: 1,
            ino: 2,
            mode: 0o100644,
            size: -1,
            mtime: (5, 6),
            ..Default::default()
        };
        let ent = DirEntry {
            ino: 3,
            kind: libc::DT_DIR,
            name: b"d".to_vec(),
        };
        let fs = StatFs {
            fs_type: 0xef53,
            bsize: 4096,
            fsid: [-1, 2],
            namelen: 255,
            ..Default::default()
        };
        for resp in [
            Response::Error(Errno(libc::ENOENT)),
            Response::Ok,
            Response::Walked(42, st.clone()),
            Response::Stat(st),
            Response::Dirents {
                entries: vec![ent.clone(), ent],
                next: 77,
                done: true,
            },
            Response::Dirents {
                entries: vec![],
                next: 0,
                done: false,
            },
            Response::Bytes(b"target".to_vec()),
            Response::StatFs(fs),
        ] {
            let b = resp.encode();
            assert_eq!(Response::decode(&b), Ok(resp.clone()));
            assert!(Response::decode(&b[..b.len() - 1]).is_err());
        }
    }
}

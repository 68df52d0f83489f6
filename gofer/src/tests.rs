//! End-to-end tests: a server thread over a socketpair against a temp directory.

use crate::proto::{Request, Response};
use crate::server::{self, Server};
use crate::{socketpair, transport, Client, Errno, SetAttr, Stat};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("gofer-test-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("hello.txt"), "hello world").unwrap();
        fs::create_dir(p.join("sub")).unwrap();
        fs::write(p.join("sub/inner"), "in").unwrap();
        std::os::unix::fs::symlink("hello.txt", p.join("link")).unwrap();
        TempDir(p)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

type Handle = JoinHandle<std::io::Result<()>>;

fn start_with(root: &Path, readonly: bool, legacy: bool) -> (Client, Handle) {
    let dir: OwnedFd = fs::File::open(root).unwrap().into();
    let (a, b) = socketpair().unwrap();
    let h = if legacy {
        std::thread::spawn(move || {
            let mut srv = Server::new(dir, readonly)?;
            srv.legacy = true;
            server::run(srv, b)
        })
    } else {
        std::thread::spawn(move || crate::serve(dir, b, readonly))
    };
    (Client::new(a), h)
}

fn start(root: &Path, readonly: bool) -> (Client, Handle) {
    start_with(root, readonly, false)
}

fn stop(c: Client, h: Handle) {
    drop(c);
    h.join().unwrap().unwrap();
}

fn e(n: i32) -> Errno {
    Errno(n)
}

fn check_stat(st: &Stat, path: &Path) {
    let m = fs::symlink_metadata(path).unwrap();
    assert_eq!(st.dev, m.dev());
    assert_eq!(st.ino, m.ino());
    assert_eq!(st.mode, m.mode());
    assert_eq!(st.nlink, m.nlink());
    assert_eq!((st.uid, st.gid), (m.uid(), m.gid()));
    assert_eq!(st.size, m.size() as i64);
    assert_eq!(st.mtime, (m.mtime(), m.mtime_nsec()));
    assert_eq!(st.ctime, (m.ctime(), m.ctime_nsec()));
    assert_eq!(
        (st.blksize, st.blocks),
        (m.blksize() as i64, m.blocks() as i64)
    );
}

fn read_fd(fd: OwnedFd) -> String {
    let mut s = String::new();
    fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

/// uid/gid to create files with: someone else's if we may chown, else our own.
fn owner() -> (u32, u32) {
    if nix::unistd::geteuid().is_root() {
        (1234, 5678)
    } else {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    }
}

#[test]
fn client_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Client>();
}

#[test]
fn attach_walk_stat_match_host() {
    let t = TempDir::new("stat");
    let (c, h) = start(&t.0, false);
    let (root, st) = c.attach().unwrap();
    check_stat(&st, &t.0);
    let (f, st) = c.walk(root, b"hello.txt").unwrap();
    check_stat(&st, &t.path("hello.txt"));
    check_stat(&c.stat(f).unwrap(), &t.path("hello.txt"));
    let (sub, _) = c.walk(root, b"sub").unwrap();
    let (inner, st) = c.walk(sub, b"inner").unwrap();
    check_stat(&st, &t.path("sub/inner"));
    // Walking through a symlink gives the link itself.
    let (l, st) = c.walk(root, b"link").unwrap();
    check_stat(&st, &t.path("link"));
    assert_eq!(st.mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(c.readlink(l).unwrap(), b"hello.txt");
    assert_eq!(c.readlink(inner), Err(e(libc::EINVAL)));
    assert_eq!(c.walk(inner, b"x"), Err(e(libc::ENOTDIR)));
    assert_eq!(c.walk(l, b"x"), Err(e(libc::ENOTDIR)));
    stop(c, h);
}

#[test]
fn walk_rejects_bad_names() {
    let t = TempDir::new("names");
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    for bad in [&b".."[..], b".", b"a/b", b"", b"/", b"x\0y", b"sub/inner"] {
        assert_eq!(c.walk(root, bad), Err(e(libc::EINVAL)), "{bad:?}");
    }
    assert_eq!(c.walk(root, &[b'a'; 256]), Err(e(libc::ENAMETOOLONG)));
    assert_eq!(c.walk(root, b"missing"), Err(e(libc::ENOENT)));
    assert_eq!(
        c.create(root, b"..", 0, 0o644, 0, 0).err(),
        Some(e(libc::EINVAL))
    );
    assert_eq!(c.mkdir(root, b"a/b", 0o755, 0, 0), Err(e(libc::EINVAL)));
    assert_eq!(
        c.unlink(root, b"..", libc::AT_REMOVEDIR),
        Err(e(libc::EINVAL))
    );
    assert_eq!(
        c.rename(root, b"hello.txt", root, b"../x", 0),
        Err(e(libc::EINVAL))
    );
    stop(c, h);
}

#[test]
fn open_reads_through_donated_fd() {
    let t = TempDir::new("open");
    nix::unistd::mkfifo(
        &t.path("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    let fd = c
        .open(f, libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL)
        .unwrap();
    let fdflags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(fdflags & libc::FD_CLOEXEC, 0);
    let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    assert_eq!(fl & libc::O_NONBLOCK, 0);
    assert_eq!(read_fd(fd), "hello world");
    // Directories reopen through "."; the root too.
    let d = c.open(root, libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    assert!(fs::File::from(d).metadata().unwrap().is_dir());
    let (sub, _) = c.walk(root, b"sub").unwrap();
    assert_eq!(c.open(sub, libc::O_WRONLY).err(), Some(e(libc::EISDIR)));
    assert_eq!(
        c.open(f, libc::O_RDONLY | libc::O_DIRECTORY).err(),
        Some(e(libc::ENOTDIR))
    );
    let (l, _) = c.walk(root, b"link").unwrap();
    assert_eq!(c.open(l, libc::O_RDONLY).err(), Some(e(libc::ELOOP)));
    let (ff, _) = c.walk(root, b"fifo").unwrap();
    assert_eq!(c.open(ff, libc::O_RDONLY).err(), Some(e(libc::EPERM)));
    // O_TRUNC truncates (after the identity check).
    let fd = c.open(f, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    fs::File::from(fd).write_all(b"new").unwrap();
    assert_eq!(fs::read_to_string(t.path("hello.txt")).unwrap(), "new");
    stop(c, h);
}

#[test]
fn readdir_lists_entries_across_pages() {
    let t = TempDir::new("readdir");
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let mut names: Vec<_> = c
        .readdir(root)
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.kind))
        .collect();
    names.sort();
    let want: Vec<(Vec<u8>, u8)> = vec![
        (b".".to_vec(), libc::DT_DIR),
        (b"..".to_vec(), libc::DT_DIR),
        (b"hello.txt".to_vec(), libc::DT_REG),
        (b"link".to_vec(), libc::DT_LNK),
        (b"sub".to_vec(), libc::DT_DIR),
    ];
    assert_eq!(names, want);
    let ent = c.readdir(root).unwrap();
    let hello = ent.iter().find(|d| d.name == b"hello.txt").unwrap();
    assert_eq!(hello.ino, fs::metadata(t.path("hello.txt")).unwrap().ino());
    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    assert_eq!(c.readdir(f).err(), Some(e(libc::ENOTDIR)));

    // Far more than one reply's worth: ~2000 * 200 bytes.
    let big = t.path("big");
    fs::create_dir(&big).unwrap();
    for i in 0..2000 {
        fs::write(big.join(format!("{i:0>200}")), "").unwrap();
    }
    let (b, _) = c.walk(root, b"big").unwrap();
    let mut got: Vec<_> = c.readdir(b).unwrap().into_iter().map(|d| d.name).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("{i:0>200}").into_bytes())
        .collect();
    want.push(b".".to_vec());
    want.push(b"..".to_vec());
    want.sort();
    assert_eq!(got, want);
    stop(c, h);
}

#[test]
fn readonly_refuses_mutation() {
    let t = TempDir::new("ro");
    let (c, h) = start(&t.0, true);
    let (root, _) = c.attach().unwrap();
    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    let rofs = Some(e(libc::EROFS));
    assert_eq!(c.create(root, b"n", libc::O_RDWR, 0o644, 0, 0).err(), rofs);
    assert_eq!(c.mkdir(root, b"d", 0o755, 0, 0).err(), rofs);
    assert_eq!(c.symlink(root, b"s", b"t", 0, 0).err(), rofs);
    assert_eq!(
        c.mknod(root, b"p", libc::S_IFIFO | 0o644, 0, 0, 0).err(),
        rofs
    );
    assert_eq!(c.link(f, root, b"h").err(), rofs);
    assert_eq!(c.unlink(root, b"hello.txt", 0).err(), rofs);
    assert_eq!(c.rename(root, b"hello.txt", root, b"x", 0).err(), rofs);
    assert_eq!(
        c.setattr(
            f,
            &SetAttr {
                size: Some(0),
                ..Default::default()
            }
        )
        .err(),
        rofs
    );
    assert_eq!(c.setxattr(f, b"user.x", b"v", 0).err(), rofs);
    assert_eq!(c.removexattr(f, b"user.x").err(), rofs);
    for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
        assert_eq!(c.open(f, flags).err(), rofs, "flags {flags:#o}");
    }
    assert_eq!(read_fd(c.open(f, libc::O_RDONLY).unwrap()), "hello world");
    assert_eq!(
        fs::read_to_string(t.path("hello.txt")).unwrap(),
        "hello world"
    );
    assert!(!t.path("n").exists() && !t.path("d").exists());
    stop(c, h);
}

#[test]
fn create_mkdir_symlink_mknod_show_on_disk() {
    let t = TempDir::new("create");
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let (uid, gid) = owner();

    let (f, st, fd) = c
        .create(root, b"new.txt", libc::O_RDWR, 0o640, uid, gid)
        .unwrap();
    fs::File::from(fd).write_all(b"data").unwrap();
    let m = fs::metadata(t.path("new.txt")).unwrap();
    assert_eq!(fs::read_to_string(t.path("new.txt")).unwrap(), "data");
    assert_eq!(
        (m.mode(), m.uid(), m.gid()),
        (libc::S_IFREG | 0o640, uid, gid)
    );
    assert_eq!((st.ino, st.uid, st.gid), (m.ino(), uid, gid));
    assert_eq!(read_fd(c.open(f, libc::O_RDONLY).unwrap()), "data");
    assert_eq!(
        c.create(root, b"new.txt", 0, 0o640, uid, gid).err(),
        Some(e(libc::EEXIST))
    );
    // chown clears set-id bits; the server puts them back.
    c.create(root, b"suid", libc::O_WRONLY, 0o4755, uid, gid)
        .unwrap();
    assert_eq!(
        fs::metadata(t.path("suid")).unwrap().mode(),
        libc::S_IFREG | 0o4755
    );

    let (d, st) = c.mkdir(root, b"dir", 0o750, uid, gid).unwrap();
    check_stat(&st, &t.path("dir"));
    assert_eq!(st.mode, libc::S_IFDIR | 0o750);
    assert_eq!((st.uid, st.gid), (uid, gid));
    c.create(d, b"in", 0, 0o600, uid, gid).unwrap();
    assert!(t.path("dir/in").is_file());

    let (_, st) = c.symlink(root, b"sl", b"../target", uid, gid).unwrap();
    check_stat(&st, &t.path("sl"));
    assert_eq!(fs::read_link(t.path("sl")).unwrap(), Path::new("../target"));
    assert_eq!(fs::symlink_metadata(t.path("sl")).unwrap().uid(), uid);
    assert_eq!(
        c.symlink(root, b"s2", b"", uid, gid).err(),
        Some(e(libc::ENOENT))
    );

    let (_, st) = c
        .mknod(root, b"fifo", libc::S_IFIFO | 0o600, 0, uid, gid)
        .unwrap();
    check_stat(&st, &t.path("fifo"));
    assert!(fs::symlink_metadata(t.path("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let (_, st) = c.mknod(root, b"plain", 0o644, 0, uid, gid).unwrap();
    assert_eq!(st.mode, libc::S_IFREG | 0o644);
    let chr = libc::S_IFCHR | 0o666;
    assert_eq!(
        c.mknod(root, b"null", chr, libc::makedev(1, 3), 0, 0).err(),
        Some(e(libc::EPERM))
    );
    assert!(!t.path("null").exists());
    stop(c, h);
}

#[test]
fn link_unlink_rename_show_on_disk() {
    let t = TempDir::new("names2");
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    let (sub, _) = c.walk(root, b"sub").unwrap();

    c.link(f, sub, b"hard").unwrap();
    assert_eq!(fs::metadata(t.path("hello.txt")).unwrap().nlink(), 2);
    assert_eq!(
        fs::read_to_string(t.path("sub/hard")).unwrap(),
        "hello world"
    );
    assert_eq!(c.link(sub, root, b"dirlink").err(), Some(e(libc::EPERM)));
    c.unlink(sub, b"hard", 0).unwrap();
    assert!(!t.path("sub/hard").exists());
    assert_eq!(c.unlink(root, b"sub", 0).err(), Some(e(libc::EISDIR)));
    assert_eq!(
        c.unlink(root, b"sub", libc::AT_REMOVEDIR).err(),
        Some(e(libc::ENOTEMPTY))
    );
    assert_eq!(c.unlink(root, b"hello.txt", 7).err(), Some(e(libc::EINVAL)));
    c.mkdir(root, b"empty", 0o755, owner().0, owner().1)
        .unwrap();
    c.unlink(root, b"empty", libc::AT_REMOVEDIR).unwrap();
    assert!(!t.path("empty").exists());

    // A fid keeps working after the file moves under it.
    c.rename(root, b"hello.txt", sub, b"moved.txt", 0).unwrap();
    assert!(!t.path("hello.txt").exists());
    assert_eq!(
        fs::read_to_string(t.path("sub/moved.txt")).unwrap(),
        "hello world"
    );
    assert_eq!(read_fd(c.open(f, libc::O_RDONLY).unwrap()), "hello world");
    let noreplace = libc::RENAME_NOREPLACE;
    assert_eq!(
        c.rename(sub, b"moved.txt", sub, b"inner", noreplace).err(),
        Some(e(libc::EEXIST))
    );
    let (inner, _) = c.walk(sub, b"inner").unwrap();
    c.rename(sub, b"moved.txt", sub, b"inner", libc::RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(
        fs::read_to_string(t.path("sub/inner")).unwrap(),
        "hello world"
    );
    assert_eq!(read_fd(c.open(f, libc::O_RDONLY).unwrap()), "hello world");
    assert_eq!(read_fd(c.open(inner, libc::O_RDONLY).unwrap()), "in");
    assert_eq!(
        c.rename(sub, b"inner", sub, b"x", 0x100).err(),
        Some(e(libc::EINVAL))
    );
    stop(c, h);
}

fn setattr_checks(legacy: bool) {
    let t = TempDir::new("setattr");
    let (c, h) = start_with(&t.0, false, legacy);
    let (root, _) = c.attach().unwrap();
    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    let p = t.path("hello.txt");

    c.setattr(
        f,
        &SetAttr {
            size: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), "hello");
    c.setattr(
        f,
        &SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode(),
        libc::S_IFREG | 0o600
    );
    let mtime = Some((1_000_000, 123));
    let atime = Some((2_000_000, 0));
    c.setattr(
        f,
        &SetAttr {
            mtime,
            atime,
            ..Default::default()
        },
    )
    .unwrap();
    let m = fs::metadata(&p).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_000_000, 123));
    assert_eq!((m.atime(), m.atime_nsec()), (2_000_000, 0));
    let omit = Some((0, libc::UTIME_OMIT));
    c.setattr(
        f,
        &SetAttr {
            mtime: omit,
            atime: Some((5, 0)),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mtime(), 1_000_000);
    let (uid, gid) = owner();
    c.setattr(
        f,
        &SetAttr {
            uid: Some(uid),
            gid: Some(gid),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (
            fs::metadata(&p).unwrap().uid(),
            fs::metadata(&p).unwrap().gid()
        ),
        (uid, gid)
    );
    check_stat(&c.stat(f).unwrap(), &p);

    let (sub, _) = c.walk(root, b"sub").unwrap();
    c.setattr(
        sub,
        &SetAttr {
            mode: Some(0o700),
            mtime,
            ..Default::default()
        },
    )
    .unwrap();
    let m = fs::metadata(t.path("sub")).unwrap();
    assert_eq!((m.mode(), m.mtime()), (libc::S_IFDIR | 0o700, 1_000_000));
    c.setattr(
        root,
        &SetAttr {
            mtime,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fs::metadata(&t.0).unwrap().mtime(), 1_000_000);
    assert_eq!(
        c.setattr(
            sub,
            &SetAttr {
                size: Some(0),
                ..Default::default()
            }
        )
        .err(),
        Some(e(libc::EISDIR))
    );

    let (l, _) = c.walk(root, b"link").unwrap();
    assert_eq!(
        c.setattr(
            l,
            &SetAttr {
                mode: Some(0o600),
                ..Default::default()
            }
        )
        .err(),
        Some(e(libc::EOPNOTSUPP))
    );
    c.setattr(
        l,
        &SetAttr {
            mtime,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        fs::symlink_metadata(t.path("link")).unwrap().mtime(),
        1_000_000
    );
    assert_eq!(
        fs::metadata(&p).unwrap().mtime_nsec(),
        123,
        "the target is untouched"
    );

    // Links and set-id creation also have fallbacks.
    c.link(f, sub, b"hard").unwrap();
    assert_eq!(
        fs::metadata(t.path("sub/hard")).unwrap().ino(),
        fs::metadata(&p).unwrap().ino()
    );
    c.mknod(root, b"suid", libc::S_IFREG | 0o2755, 0, uid, gid)
        .unwrap();
    assert_eq!(
        fs::metadata(t.path("suid")).unwrap().mode(),
        libc::S_IFREG | 0o2755
    );
    stop(c, h);
}

#[test]
fn setattr_size_mode_times_owner() {
    setattr_checks(false);
}

#[test]
fn setattr_and_link_fallbacks_for_old_kernels() {
    setattr_checks(true);
}

#[test]
fn files_changed_behind_our_back_are_stale() {
    let t = TempDir::new("stale");
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    fs::rename(t.path("hello.txt"), t.path("elsewhere")).unwrap();
    assert_eq!(c.open(f, libc::O_RDONLY).err(), Some(e(libc::ENOENT)));
    fs::write(t.path("hello.txt"), "impostor").unwrap();
    assert_eq!(
        c.open(f, libc::O_RDWR | libc::O_TRUNC).err(),
        Some(e(libc::ESTALE))
    );
    assert_eq!(fs::read_to_string(t.path("hello.txt")).unwrap(), "impostor");
    // The fid's own O_PATH descriptor still names the original.
    check_stat(&c.stat(f).unwrap(), &t.path("elsewhere"));
    stop(c, h);
}

#[test]
fn unknown_fids_are_ebadf() {
    let t = TempDir::new("ebadf");
    let (c, h) = start(&t.0, false);
    let bad = Some(e(libc::EBADF));
    assert_eq!(c.stat(999).err(), bad);
    assert_eq!(c.walk(999, b"x").err(), bad);
    assert_eq!(c.open(999, 0).err(), bad);
    assert_eq!(c.readdir(999).err(), bad);
    assert_eq!(c.readlink(999).err(), bad);
    assert_eq!(c.statfs(999).err(), bad);
    assert_eq!(c.mkdir(999, b"d", 0o755, 0, 0).err(), bad);
    c.clunk(999);
    let (root, _) = c.attach().unwrap();
    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    assert_eq!(c.link(999, root, b"x").err(), bad);
    assert_eq!(c.rename(root, b"hello.txt", 999, b"x", 0).err(), bad);
    c.clunk(f);
    assert_eq!(c.stat(f).err(), bad);
    // Children outlive a clunked parent.
    let (sub, _) = c.walk(root, b"sub").unwrap();
    let (inner, _) = c.walk(sub, b"inner").unwrap();
    c.clunk(sub);
    c.clunk(root);
    assert_eq!(read_fd(c.open(inner, libc::O_RDONLY).unwrap()), "in");
    stop(c, h);
}

#[test]
fn statfs_and_xattrs() {
    let t = TempDir::new("statfs");
    let (c, h) = start(&t.0, false);
    let (root, _) = c.attach().unwrap();
    let s = c.statfs(root).unwrap();
    let host = nix::sys::statfs::statfs(&t.0).unwrap();
    assert_eq!(s.bsize, host.block_size());
    assert_eq!(s.blocks, host.blocks());
    assert_eq!(s.namelen, host.maximum_name_length());

    let (f, _) = c.walk(root, b"hello.txt").unwrap();
    match c.setxattr(f, b"user.k", b"v1", 0) {
        Err(Errno(libc::EOPNOTSUPP)) => eprintln!("no user xattrs on this file system"),
        r => {
            r.unwrap();
            assert_eq!(c.getxattr(f, b"user.k").unwrap(), b"v1");
            assert!(c.listxattr(f).unwrap().contains(&b"user.k".to_vec()));
            assert_eq!(
                c.setxattr(f, b"user.k", b"v2", libc::XATTR_CREATE).err(),
                Some(e(libc::EEXIST))
            );
            c.removexattr(f, b"user.k").unwrap();
            assert_eq!(c.getxattr(f, b"user.k").err(), Some(e(libc::ENODATA)));
        }
    }
    let (l, _) = c.walk(root, b"link").unwrap();
    assert_eq!(c.getxattr(l, b"user.k").err(), Some(e(libc::EOPNOTSUPP)));
    stop(c, h);
}

/// Send raw bytes (maybe with a descriptor) and decode the reply.
fn raw_call(sock: &OwnedFd, data: &[u8], fd: Option<&OwnedFd>) -> Response {
    transport::send(sock.as_fd(), data, fd.map(|f| f.as_fd())).unwrap();
    let m = transport::recv(sock.as_fd(), true, &mut transport::buffer())
        .unwrap()
        .unwrap();
    assert!(m.fd.is_none());
    Response::decode(&m.data).unwrap()
}

#[test]
fn malformed_messages_get_error_replies() {
    let t = TempDir::new("malformed");
    let dir: OwnedFd = fs::File::open(&t.0).unwrap().into();
    let (a, b) = socketpair().unwrap();
    let h = std::thread::spawn(move || crate::serve(dir, b, false));
    let inval = Response::Error(e(libc::EINVAL));
    let walk = Request::Walk {
        dir: 1,
        name: b"x".to_vec(),
    }
    .encode();
    for junk in [
        &[][..],
        &[0xff, 1, 2],
        &[0],
        &walk[..walk.len() - 1],
        &[4, 1, 0, 0, 0, 0, 0, 0, 0, 1],
    ] {
        assert_eq!(raw_call(&a, junk, None), inval, "{junk:?}");
    }
    // Longer than any message the server accepts.
    assert_eq!(raw_call(&a, &vec![2u8; 150 * 1024], None), inval);
    // A descriptor sent to the server is dropped, the request still answered.
    let extra: OwnedFd = fs::File::open(&t.0).unwrap().into();
    assert!(matches!(
        raw_call(&a, &Request::Attach.encode(), Some(&extra)),
        Response::Walked(..)
    ));
    // Still serving normally.
    let c = Client::new(a);
    let (root, _) = c.attach().unwrap();
    assert!(c.walk(root, b"hello.txt").is_ok());
    stop(c, h);
}

#[test]
fn server_returns_ok_when_client_goes_away() {
    let t = TempDir::new("eof");
    let (c, h) = start(&t.0, false);
    stop(c, h);
    // Also with a request in flight just before.
    let (c, h) = start(&t.0, true);
    c.attach().unwrap();
    stop(c, h);
}

#[test]
fn clients_share_a_connection_across_threads() {
    let t = TempDir::new("threads");
    let (c, h) = start(&t.0, false);
    let c = std::sync::Arc::new(c);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let (root, _) = c.attach().unwrap();
                    let (f, st) = c.walk(root, b"hello.txt").unwrap();
                    assert_eq!(st.size, 11);
                    c.clunk(f);
                    c.clunk(root);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let c = std::sync::Arc::try_unwrap(c).ok().unwrap();
    stop(c, h);
}

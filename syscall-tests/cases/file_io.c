/* open, read, write, lseek, pread/pwrite, readv/writev, truncate, close. */
#include "harness.h"

CASE(open_missing_enoent)
{
	CHECK_ERR(open(P("missing"), O_RDONLY), ENOENT);
	CHECK_ERR(open(P("missing/dir/file"), O_RDONLY), ENOENT);
}

CASE(write_then_read_back)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644));
	CHECK_EQ(write(fd, "hello", 5), 5);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	char buf[16] = { 0 };
	CHECK_EQ(read(fd, buf, sizeof buf), 5);
	CHECK_STREQ(buf, "hello");
	CHECK_EQ(read(fd, buf, sizeof buf), 0);
	CHECK_OK(close(fd));
	/* A second open sees the data too. */
	char buf2[16];
	CHECK_EQ(st_read_file(P("f"), buf2, sizeof buf2), 5);
	CHECK_STREQ(buf2, "hello");
}

CASE(lseek_whence)
{
	st_write_file(P("f"), "0123456789");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_EQ(lseek(fd, 0, SEEK_END), 10);
	CHECK_EQ(lseek(fd, -3, SEEK_END), 7);
	CHECK_EQ(lseek(fd, 1, SEEK_CUR), 8);
	char c;
	CHECK_EQ(read(fd, &c, 1), 1);
	CHECK_EQ(c, '8');
	CHECK_EQ(lseek(fd, 2, SEEK_SET), 2);
	CHECK_ERR(lseek(fd, -1, SEEK_SET), EINVAL);
	CHECK_ERR(lseek(fd, -20, SEEK_END), EINVAL);
	CHECK_ERR(lseek(fd, 0, 12345), EINVAL);
	/* The failed seeks did not move the offset. */
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 2);
	close(fd);
}

CASE(seek_past_end_makes_hole)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(lseek(fd, 100, SEEK_SET), 100);
	CHECK_EQ(write(fd, "x", 1), 1);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 101);
	char buf[10];
	memset(buf, 'a', sizeof buf);
	CHECK_EQ(pread(fd, buf, 10, 50), 10);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(buf[i], 0);
	CHECK_EQ(pread(fd, buf, 10, 100), 1);
	CHECK_EQ(buf[0], 'x');
	close(fd);
}

CASE(o_append_writes_at_end)
{
	st_write_file(P("f"), "abc");
	int fd = CHECK_OK(open(P("f"), O_WRONLY | O_APPEND));
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	CHECK_EQ(write(fd, "de", 2), 2);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
	close(fd);
	char buf[16];
	CHECK_EQ(st_read_file(P("f"), buf, sizeof buf), 5);
	CHECK_STREQ(buf, "abcde");
}

CASE(o_excl_existing_eexist)
{
	st_write_file(P("f"), "x");
	CHECK_ERR(open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST);
	/* O_CREAT without O_EXCL opens the existing file and keeps its data. */
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 1);
	close(fd);
}

CASE(o_trunc_empties_file)
{
	st_write_file(P("f"), "some content");
	int fd = CHECK_OK(open(P("f"), O_WRONLY | O_TRUNC));
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 0);
	close(fd);
}

CASE(pread_pwrite_keep_offset)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	CHECK_EQ(lseek(fd, 3, SEEK_SET), 3);
	CHECK_EQ(pwrite(fd, "AB", 2, 7), 2);
	char buf[4] = { 0 };
	CHECK_EQ(pread(fd, buf, 3, 6), 3);
	CHECK_STREQ(buf, "6AB");
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 3);
	CHECK_ERR(pread(fd, buf, 1, -1), EINVAL);
	close(fd);
}

CASE(readv_writev)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	struct iovec w[3] = { { "ab", 2 }, { "", 0 }, { "cdef", 4 } };
	CHECK_EQ(writev(fd, w, 3), 6);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	char a[3] = { 0 }, b[10] = { 0 };
	struct iovec r[2] = { { a, 2 }, { b, sizeof b - 1 } };
	CHECK_EQ(readv(fd, r, 2), 6);
	CHECK_STREQ(a, "ab");
	CHECK_STREQ(b, "cdef");
	CHECK_EQ(preadv(fd, r, 2, 4), 2);
	CHECK_MEMEQ(a, "ef", 2);
	close(fd);
}

CASE(wrong_access_mode_ebadf)
{
	st_write_file(P("f"), "data");
	int fd = CHECK_OK(open(P("f"), O_WRONLY));
	char c;
	CHECK_ERR(read(fd, &c, 1), EBADF);
	close(fd);
	fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(write(fd, "x", 1), EBADF);
	close(fd);
}

CASE(bad_fd_ebadf)
{
	char c;
	CHECK_ERR(read(-1, &c, 1), EBADF);
	CHECK_ERR(write(9999, &c, 1), EBADF);
	CHECK_ERR(close(9999), EBADF);
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_OK(close(fd));
	CHECK_ERR(close(fd), EBADF);
}

CASE(ftruncate_grow_and_shrink)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "abcdef", 6), 6);
	CHECK_OK(ftruncate(fd, 4096));
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 4096);
	char buf[8];
	CHECK_EQ(pread(fd, buf, 8, 4000), 8);
	CHECK_EQ(buf[0], 0);
	CHECK_OK(ftruncate(fd, 3));
	CHECK_EQ(pread(fd, buf, 8, 0), 3);
	CHECK_MEMEQ(buf, "abc", 3);
	CHECK_ERR(ftruncate(fd, -1), EINVAL);
	close(fd);
	fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(ftruncate(fd, 0), EINVAL);
	close(fd);
}

CASE(truncate_by_path)
{
	st_write_file(P("f"), "0123456789");
	CHECK_OK(truncate(P("f"), 4));
	char buf[16];
	CHECK_EQ(st_read_file(P("f"), buf, sizeof buf), 4);
	CHECK_STREQ(buf, "0123");
	CHECK_ERR(truncate(P("missing"), 0), ENOENT);
	CHECK_ERR(truncate(st_tmpdir(), 0), EISDIR);
}

CASE(open_dir_for_write_eisdir)
{
	CHECK_ERR(open(st_tmpdir(), O_WRONLY), EISDIR);
	CHECK_ERR(open(st_tmpdir(), O_RDWR), EISDIR);
	int fd = CHECK_OK(open(st_tmpdir(), O_RDONLY));
	char c;
	CHECK_ERR(read(fd, &c, 1), EISDIR);
	close(fd);
}

CASE(not_a_directory_enotdir)
{
	st_write_file(P("f"), "x");
	CHECK_ERR(open(P("f/x"), O_RDONLY), ENOTDIR);
	CHECK_ERR(open(P("f"), O_RDONLY | O_DIRECTORY), ENOTDIR);
	CHECK_ERR(open(P("f/x"), O_RDWR | O_CREAT, 0644), ENOTDIR);
}

CASE(name_too_long)
{
	char name[300];
	memset(name, 'a', 299);
	name[299] = 0;
	CHECK_ERR(open(P(name), O_RDWR | O_CREAT, 0644), ENAMETOOLONG);
	name[255] = 0;
	int fd = CHECK_OK(open(P(name), O_RDWR | O_CREAT, 0644));
	close(fd);
}

CASE(fsync_and_fdatasync)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "x", 1), 1);
	CHECK_OK(fsync(fd));
	CHECK_OK(fdatasync(fd));
	close(fd);
	CHECK_ERR(fsync(fd), EBADF);
}

CASE(dev_null_and_zero)
{
	int fd = CHECK_OK(open("/dev/null", O_RDWR));
	char buf[64];
	CHECK_EQ(read(fd, buf, sizeof buf), 0);
	CHECK_EQ(write(fd, buf, sizeof buf), 64);
	close(fd);
	fd = CHECK_OK(open("/dev/zero", O_RDONLY));
	memset(buf, 'x', sizeof buf);
	CHECK_EQ(read(fd, buf, sizeof buf), 64);
	for (int i = 0; i < 64; i++)
		CHECK_EQ(buf[i], 0);
	close(fd);
}

CASE(dev_full_enospc)
{
	int fd = CHECK_OK(open("/dev/full", O_WRONLY));
	CHECK_ERR(write(fd, "x", 1), ENOSPC);
	close(fd);
}

CASE(large_write_read)
{
	size_t n = 1 << 20;
	unsigned char *w = malloc(n), *r = malloc(n);
	for (size_t i = 0; i < n; i++)
		w[i] = (unsigned char)(i * 7 + (i >> 9));
	int fd = CHECK_OK(open(P("big"), O_RDWR | O_CREAT, 0644));
	size_t off = 0;
	while (off < n) {
		ssize_t k = CHECK_OK(write(fd, w + off, n - off));
		off += k;
	}
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	off = 0;
	while (off < n) {
		ssize_t k = CHECK_OK(read(fd, r + off, n - off));
		CHECK_GT(k, 0);
		off += k;
	}
	CHECK_MEMEQ(r, w, n);
	close(fd);
}

CASE(openat_relative_to_dirfd)
{
	CHECK_OK(mkdir(P("d"), 0755));
	int dfd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	int fd = CHECK_OK(openat(dfd, "f", O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "hi", 2), 2);
	close(fd);
	char buf[8];
	CHECK_EQ(st_read_file(P("d/f"), buf, sizeof buf), 2);
	st_write_file(P("f"), "x");
	CHECK_ERR(openat(dfd, "missing", O_RDONLY), ENOENT);
	int ffd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(openat(ffd, "x", O_RDONLY), ENOTDIR);
	/* Absolute paths ignore dirfd, even a bad one. */
	fd = CHECK_OK(openat(12345, P("d/f"), O_RDONLY));
	close(fd);
	CHECK_ERR(openat(12345, "f", O_RDONLY), EBADF);
	close(ffd);
	close(dfd);
}

CASE(o_tmpfile_unnamed)
{
	int fd = CHECK_OK(open(st_tmpdir(), O_TMPFILE | O_RDWR, 0600));
	CHECK_EQ(write(fd, "abc", 3), 3);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_nlink, 0);
	CHECK_EQ(st.st_size, 3);
	/* It can be given a name with linkat through /proc/self/fd. */
	char src[64];
	snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
	CHECK_OK(linkat(AT_FDCWD, src, AT_FDCWD, P("named"), AT_SYMLINK_FOLLOW));
	char buf[8];
	CHECK_EQ(st_read_file(P("named"), buf, sizeof buf), 3);
	close(fd);
}

CASE(lowest_free_fd_reused)
{
	int a = CHECK_OK(open("/dev/null", O_RDONLY));
	int b = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(b, a + 1);
	CHECK_OK(close(a));
	int c = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(c, a);
	close(b);
	close(c);
}

/* preadv2/pwritev2 by number (glibc falls back to preadv when flags are 0). */
static long rw2(long nr, int fd, struct iovec *iov, int cnt, long off, int flags)
{
	return syscall(nr, fd, iov, cnt, off, 0L, flags);
}

CASE(preadv2_offset_and_flags)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	CHECK_EQ(lseek(fd, 2, SEEK_SET), 2);
	char a[4] = { 0 };
	struct iovec r = { a, 3 };
	/* -1: the file position, which moves. */
	CHECK_EQ(rw2(SYS_preadv2, fd, &r, 1, -1, 0), 3);
	CHECK_STREQ(a, "234");
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
	/* An offset: the position stays. */
	CHECK_EQ(rw2(SYS_preadv2, fd, &r, 1, 7, 0x1 /* RWF_HIPRI */), 3);
	CHECK_STREQ(a, "789");
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
	CHECK_ERR(rw2(SYS_preadv2, fd, &r, 1, -2, 0), EINVAL);
	CHECK_ERR(rw2(SYS_preadv2, fd, &r, 1, 0, 0x8000), EOPNOTSUPP);
	CHECK_ERR(rw2(SYS_preadv2, 999, &r, 1, 0, 0), EBADF);
	CHECK_ERR(preadv(fd, &r, 1, -1), EINVAL);
	CHECK_ERR(pwritev(fd, &r, 1, -1), EINVAL);
	close(fd);
}

CASE(pwritev2_append_and_sync)
{
	st_write_file(P("f"), "abc");
	int fd = CHECK_OK(open(P("f"), O_RDWR));
	struct iovec w[2] = { { "d", 1 }, { "e", 1 } };
	/* RWF_APPEND with an offset: at the end, the position stays. */
	CHECK_EQ(rw2(SYS_pwritev2, fd, w, 2, 0, 0x10 /* RWF_APPEND */), 2);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 0);
	/* With -1: at the end, and the position follows. */
	CHECK_EQ(rw2(SYS_pwritev2, fd, w, 1, -1, 0x10), 1);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 6);
	CHECK_EQ(lseek(fd, 1, SEEK_SET), 1);
	CHECK_EQ(rw2(SYS_pwritev2, fd, w + 1, 1, -1, 0x4 /* RWF_SYNC */), 1);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 2);
	CHECK_EQ(rw2(SYS_pwritev2, fd, w, 1, 3, 0x2 /* RWF_DSYNC */), 1);
	CHECK_ERR(rw2(SYS_pwritev2, fd, w, 1, 0, 0x8000), EOPNOTSUPP);
	close(fd);
	char buf[16];
	CHECK_EQ(st_read_file(P("f"), buf, sizeof buf), 6);
	CHECK_STREQ(buf, "aecded");
	fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(rw2(SYS_pwritev2, fd, w, 1, -1, 0), EBADF);
	close(fd);
}

CASE(preadv2_pipe)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "xy", 2), 2);
	char a[4] = { 0 };
	struct iovec r = { a, 3 };
	CHECK_ERR(rw2(SYS_preadv2, p[0], &r, 1, 0, 0), ESPIPE);
	CHECK_EQ(rw2(SYS_preadv2, p[0], &r, 1, -1, 0), 2);
	CHECK_STREQ(a, "xy");
	struct iovec w = { "z", 1 };
	CHECK_EQ(rw2(SYS_pwritev2, p[1], &w, 1, -1, 0), 1);
	CHECK_EQ(read(p[0], a, 3), 1);
	close(p[0]);
	close(p[1]);
}

CASE(pwrite_o_append_ignores_offset)
{
	st_write_file(P("f"), "abc");
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_APPEND));
	/* Linux's documented bug: pwrite on O_APPEND appends. */
	CHECK_EQ(pwrite(fd, "d", 1, 0), 1);
	close(fd);
	char buf[16];
	CHECK_EQ(st_read_file(P("f"), buf, sizeof buf), 4);
	CHECK_STREQ(buf, "abcd");
}

/* truncate_fallocate: truncate/ftruncate edge cases, sparse files and holes
 * (SEEK_DATA/SEEK_HOLE, st_blocks), O_APPEND with pwrite, fallocate modes and errors. */
#include "harness.h"

#include <linux/falloc.h>
#include <sys/statfs.h>

static char *read_all(int fd, off_t off, size_t len)
{
	char *buf = malloc(len + 1);
	ssize_t n = pread(fd, buf, len, off);
	if (n != (ssize_t)len)
		FAIL("pread(%zu at %lld): %zd errno %s", len, (long long)off, n, st_errname(errno));
	buf[len] = 0;
	return buf;
}

static void check_zero(int fd, off_t off, size_t len)
{
	char *b = read_all(fd, off, len);
	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			FAIL("byte %lld is %#x, expected 0", (long long)(off + i), (unsigned char)b[i]);
	free(b);
}

static off_t fsize(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		FAIL("fstat: %s", st_errname(errno));
	return st.st_size;
}

CASE(shrink_then_grow_reads_zeros)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "abcdefgh", 8), 8);
	CHECK_OK(ftruncate(fd, 4));
	CHECK_OK(ftruncate(fd, 8));
	char *b = read_all(fd, 0, 8);
	CHECK_MEMEQ(b, "abcd\0\0\0\0", 8);
	/* The old bytes never come back, also past a page boundary. */
	CHECK_OK(ftruncate(fd, 0));
	CHECK_OK(ftruncate(fd, 10000));
	check_zero(fd, 0, 10000);
	/* The file offset is not moved by truncation. */
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	close(fd);
}

CASE(write_past_truncated_end_leaves_hole)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	CHECK_OK(ftruncate(fd, 3));
	/* The offset is still 10: the next write leaves a hole at 3..10. */
	CHECK_EQ(write(fd, "X", 1), 1);
	CHECK_EQ(fsize(fd), 11);
	char *b = read_all(fd, 0, 11);
	CHECK_MEMEQ(b, "012\0\0\0\0\0\0\0X", 11);
	/* read at EOF returns 0. */
	char c;
	CHECK_EQ(read(fd, &c, 1), 0);
	close(fd);
}

CASE(truncate_errors)
{
	st_write_file(P("f"), "data");
	CHECK_ERR(truncate(P("f"), -1), EINVAL);
	CHECK_ERR(truncate(P("missing"), 0), ENOENT);
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_ERR(truncate(P("d"), 0), EISDIR);
	CHECK_ERR(truncate(P("f/x"), 0), ENOTDIR);
	int ro = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(ftruncate(ro, 0), EINVAL);
	close(ro);
	int wr = CHECK_OK(open(P("f"), O_WRONLY));
	CHECK_ERR(ftruncate(wr, -5), EINVAL);
	close(wr);
	CHECK_ERR(ftruncate(wr, 0), EBADF);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_ERR(ftruncate(p[1], 0), EINVAL);
	close(p[0]);
	close(p[1]);
	/* Without write permission on the file. */
	CHECK_OK(chmod(P("f"), 0444));
	if (!st_is_root())
		CHECK_ERR(truncate(P("f"), 0), EACCES);
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(truncate(P("f"), 0), EACCES);
	});
	struct stat st;
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(st.st_size, 4);
}

CASE(truncate_updates_times)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "abc", 3), 3);
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	CHECK_OK(futimens(fd, old));
	CHECK_OK(ftruncate(fd, 100));
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000000000);
	CHECK_GT(st.st_ctim.tv_sec, 1000000000);
	/* atime is not touched. */
	CHECK_EQ(st.st_atim.tv_sec, 1000000000);
	CHECK_OK(futimens(fd, old));
	CHECK_OK(truncate(P("f"), 1));
	CHECK_OK(fstat(fd, &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000000000);
	close(fd);
}

CASE(o_append_pwrite_appends)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT | O_APPEND, 0644));
	CHECK_EQ(write(fd, "hello", 5), 5);
	/* Linux: pwrite on an O_APPEND file appends, whatever the offset. */
	CHECK_EQ(pwrite(fd, "XY", 2, 0), 2);
	CHECK_EQ(fsize(fd), 7);
	char *b = read_all(fd, 0, 7);
	CHECK_STREQ(b, "helloXY");
	/* lseek works but the next write still goes to the end... */
	CHECK_EQ(lseek(fd, 1, SEEK_SET), 1);
	CHECK_EQ(write(fd, "!", 1), 1);
	/* ...and leaves the offset there. */
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	/* Clearing O_APPEND with F_SETFL makes writes positional again. */
	CHECK_OK(fcntl(fd, F_SETFL, 0));
	CHECK_EQ(pwrite(fd, "J", 1, 0), 1);
	b = read_all(fd, 0, 8);
	CHECK_STREQ(b, "JelloXY!");
	/* Appends from another descriptor interleave at the end. */
	int fd2 = CHECK_OK(open(P("f"), O_WRONLY | O_APPEND));
	CHECK_EQ(write(fd2, "+", 1), 1);
	CHECK_EQ(fsize(fd), 9);
	close(fd2);
	close(fd);
}

CASE(sparse_file_holes)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	off_t far = 64LL << 20;
	CHECK_EQ(pwrite(fd, "head", 4, 0), 4);
	CHECK_EQ(pwrite(fd, "tail", 4, far), 4);
	CHECK_EQ(fsize(fd), far + 4);
	check_zero(fd, 4, 8192);
	check_zero(fd, far - 8192, 8192);
	char *b = read_all(fd, far, 4);
	CHECK_STREQ(b, "tail");
	/* The hole takes no space. */
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_LT(st.st_blocks * 512LL, 1LL << 20);
	/* SEEK_DATA / SEEK_HOLE find the two data blocks and the hole between. */
	CHECK_EQ(lseek(fd, 0, SEEK_DATA), 0);
	off_t hole = lseek(fd, 0, SEEK_HOLE);
	CHECK_GE(hole, 4);
	CHECK_LE(hole, 65536);
	off_t data = lseek(fd, hole, SEEK_DATA);
	CHECK_LE(data, far);
	CHECK_GT(data, far - 65536);
	CHECK_EQ(lseek(fd, far, SEEK_HOLE), far + 4);
	/* Past the end: ENXIO for both. */
	CHECK_ERR(lseek(fd, far + 4, SEEK_DATA), ENXIO);
	CHECK_ERR(lseek(fd, far + 4, SEEK_HOLE), ENXIO);
	close(fd);
}

CASE(fallocate_allocates_and_extends)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(fallocate(fd, 0, 0, 65536), 0);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 65536);
	CHECK_GE(st.st_blocks * 512LL, 65536);
	check_zero(fd, 0, 65536);
	/* Data written afterwards is kept; fallocate over it does not clear it. */
	CHECK_EQ(pwrite(fd, "data", 4, 100), 4);
	CHECK_EQ(fallocate(fd, 0, 0, 4096), 0);
	char *b = read_all(fd, 100, 4);
	CHECK_STREQ(b, "data");
	/* KEEP_SIZE allocates past the end without changing the size. */
	CHECK_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 65536, 65536), 0);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 65536);
	CHECK_GE(st.st_blocks * 512LL, 131072);
	/* posix_fallocate extends too. */
	CHECK_PT(posix_fallocate(fd, 0, 200000));
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 200000);
	close(fd);
}

CASE(fallocate_punch_hole)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	char *buf = malloc(3 * 4096);
	memset(buf, 'p', 3 * 4096);
	CHECK_EQ(write(fd, buf, 3 * 4096), 3 * 4096);
	/* Punching needs KEEP_SIZE. */
	CHECK_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 4096, 4096), EOPNOTSUPP);
	CHECK_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096), 0);
	CHECK_EQ(fsize(fd), 3 * 4096);
	check_zero(fd, 4096, 4096);
	char *b = read_all(fd, 4095, 1);
	CHECK_EQ(b[0], 'p');
	b = read_all(fd, 8192, 1);
	CHECK_EQ(b[0], 'p');
	/* A partial-page punch zeroes just those bytes. */
	CHECK_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, 5), 0);
	b = read_all(fd, 8, 9);
	CHECK_MEMEQ(b, "pp\0\0\0\0\0pp", 9);
	/* Punching past the end changes nothing. */
	CHECK_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * 4096, 4096), 0);
	CHECK_EQ(fsize(fd), 3 * 4096);
	close(fd);
}

CASE(fallocate_errors)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_ERR(fallocate(fd, 0, 0, 0), EINVAL);
	CHECK_ERR(fallocate(fd, 0, -1, 10), EINVAL);
	CHECK_ERR(fallocate(fd, 0, 0, -10), EINVAL);
	CHECK_ERR(fallocate(fd, 0x4000, 0, 10), EOPNOTSUPP);
	int ro = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(fallocate(ro, 0, 0, 10), EBADF);
	close(ro);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_ERR(fallocate(p[1], 0, 0, 10), ESPIPE);
	close(p[0]);
	close(p[1]);
	int dir = CHECK_OK(open(st_tmpdir(), O_RDONLY | O_DIRECTORY));
	CHECK_ERR(fallocate(dir, 0, 0, 10), EBADF);
	close(dir);
	/* posix_fallocate returns the error number instead of setting errno. */
	CHECK_EQ(posix_fallocate(fd, -1, 10), EINVAL);
	close(fd);
	CHECK_EQ(posix_fallocate(fd, 0, 10), EBADF);
}

CASE(fallocate_zero_range)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	char *buf = malloc(3 * 4096);
	memset(buf, 'z', 3 * 4096);
	CHECK_EQ(write(fd, buf, 3 * 4096), 3 * 4096);
	struct statfs sf;
	CHECK_OK(fstatfs(fd, &sf));
	if (sf.f_type == 0x01021994) {
		/* tmpfs allocates and punches, but does not zero ranges. */
		CHECK_ERR(fallocate(fd, FALLOC_FL_ZERO_RANGE, 10, 5), EOPNOTSUPP);
	} else {
		/* Partial and whole pages read back as zeros; the rest is kept. */
		CHECK_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 10, 5000), 0);
		check_zero(fd, 10, 5000);
		char *b = read_all(fd, 9, 1);
		CHECK_EQ(b[0], 'z');
		b = read_all(fd, 5010, 1);
		CHECK_EQ(b[0], 'z');
		/* With KEEP_SIZE past the end the size stays; without, it grows. */
		CHECK_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 3 * 4096, 4096), 0);
		CHECK_EQ(fsize(fd), 3 * 4096);
		CHECK_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 3 * 4096, 100), 0);
		CHECK_EQ(fsize(fd), 3 * 4096 + 100);
		check_zero(fd, 3 * 4096, 100);
	}
	/* Punch and zero together are refused everywhere. */
	CHECK_ERR(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 10),
		  EOPNOTSUPP);
	close(fd);
	/* /dev/shm is a tmpfs. */
	char name[64];
	snprintf(name, sizeof name, "/dev/shm/rvisor-st-zero-%d", (int)getpid());
	fd = CHECK_OK(open(name, O_CREAT | O_RDWR | O_EXCL, 0600));
	CHECK_OK(unlink(name));
	CHECK_ERR(fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 10), EOPNOTSUPP);
	CHECK_EQ(fallocate(fd, 0, 0, 10), 0);
	close(fd);
}

CASE(punched_hole_is_seen_by_seek_hole)
{
	const char *dirs[] = { st_tmpdir(), "/dev/shm" };
	for (unsigned i = 0; i < 2; i++) {
		char name[128];
		snprintf(name, sizeof name, "%s/rvisor-st-punch-%d", dirs[i], (int)getpid());
		int fd = CHECK_OK(open(name, O_CREAT | O_RDWR | O_EXCL, 0600));
		CHECK_OK(unlink(name));
		char *buf = malloc(3 * 4096);
		memset(buf, 'h', 3 * 4096);
		CHECK_EQ(write(fd, buf, 3 * 4096), 3 * 4096);
		CHECK_OK(fsync(fd));
		struct stat st;
		CHECK_OK(fstat(fd, &st));
		blkcnt_t before = st.st_blocks;
		CHECK_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096), 0);
		CHECK_EQ(lseek(fd, 0, SEEK_HOLE), 4096);
		CHECK_EQ(lseek(fd, 4096, SEEK_DATA), 8192);
		CHECK_EQ(lseek(fd, 8192, SEEK_HOLE), 3 * 4096);
		/* The freed page no longer counts. */
		CHECK_OK(fstat(fd, &st));
		CHECK_EQ(st.st_blocks, before - 8);
		free(buf);
		close(fd);
	}
}

/* Shrinking a mapped file unmaps its pages past the new end (shared and private copies
 * alike): touching them is SIGBUS, the pages before it stay. */
static void touch_after_shrink(int private_copy, int by_path)
{
	long pg = sysconf(_SC_PAGESIZE);
	int fd = CHECK_OK(open(P("m"), O_RDWR | O_CREAT | O_TRUNC, 0644));
	CHECK_OK(ftruncate(fd, 3 * pg));
	char *m = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, private_copy ? MAP_PRIVATE : MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	m[0] = 'a';
	m[2 * pg] = 'c';
	if (by_path)
		CHECK_OK(truncate(P("m"), pg));
	else
		CHECK_OK(ftruncate(fd, pg));
	pid_t pid = fork();
	if (pid == 0) {
		volatile char x = m[2 * pg];
		(void)x;
		_exit(0);
	}
	CHECK_SIGNALED(st_wait(pid), SIGBUS);
	CHECK_EQ(m[0], 'a');
	munmap(m, 3 * pg);
	close(fd);
}

CASE(shrink_unmaps_shared_pages_past_eof)
{
	touch_after_shrink(0, 0);
	touch_after_shrink(0, 1);
}

CASE(shrink_unmaps_private_copies_past_eof)
{
	touch_after_shrink(1, 0);
}

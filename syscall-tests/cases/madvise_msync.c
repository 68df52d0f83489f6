/* madvise_msync: madvise advice with visible effects (DONTNEED, REMOVE, DONTFORK,
 * WIPEONFORK), msync and the coherence of shared file mappings with read/write, mincore. */
#include "harness.h"

static long pg;

static int make_file(const char *path, size_t len, char c)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		FAIL("open: %s", st_errname(errno));
	char *buf = malloc(len);
	memset(buf, c, len);
	if (write(fd, buf, len) != (ssize_t)len)
		FAIL("write: %s", st_errname(errno));
	free(buf);
	return fd;
}

CASE(dontneed_private_file_mapping_rereads_file)
{
	pg = sysconf(_SC_PAGESIZE);
	int fd = make_file(P("f"), 2 * pg, 'F');
	char *m = CHECK_PTR(mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	m[0] = 'x';
	m[pg] = 'y';
	CHECK_EQ(m[0], 'x');
	/* Dropping the private copies brings back the file's contents. */
	CHECK_OK(madvise(m, pg, MADV_DONTNEED));
	CHECK_EQ(m[0], 'F');
	CHECK_EQ(m[pg], 'y');
	/* The file itself never saw the private writes. */
	char c;
	CHECK_EQ(pread(fd, &c, 1, pg), 1);
	CHECK_EQ(c, 'F');
	CHECK_OK(munmap(m, 2 * pg));
	close(fd);
}

CASE(dontneed_shared_mappings_keep_data)
{
	pg = sysconf(_SC_PAGESIZE);
	char *a = CHECK_PTR(mmap(NULL, pg, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	strcpy(a, "kept");
	CHECK_OK(madvise(a, pg, MADV_DONTNEED));
	CHECK_STREQ(a, "kept");
	int fd = make_file(P("f"), pg, 'S');
	char *m = CHECK_PTR(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	m[1] = 'w';
	CHECK_OK(madvise(m, pg, MADV_DONTNEED));
	CHECK_EQ(m[0], 'S');
	CHECK_EQ(m[1], 'w');
	CHECK_OK(munmap(m, pg));
	CHECK_OK(munmap(a, pg));
	close(fd);
}

CASE(shared_file_mapping_coherent_with_read_write)
{
	pg = sysconf(_SC_PAGESIZE);
	int fd = make_file(P("f"), 2 * pg, '.');
	char *m = CHECK_PTR(mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	/* A store through the mapping is seen by read at once, before any msync. */
	memcpy(m + 100, "mapped", 6);
	char buf[8] = { 0 };
	CHECK_EQ(pread(fd, buf, 6, 100), 6);
	CHECK_STREQ(buf, "mapped");
	/* A write() is seen through the mapping at once. */
	CHECK_EQ(pwrite(fd, "written", 7, pg + 10), 7);
	CHECK_MEMEQ(m + pg + 10, "written", 7);
	/* A second mapping of the same file, and another process, see the same. */
	char *m2 = CHECK_PTR(mmap(NULL, 2 * pg, PROT_READ, MAP_SHARED, fd, 0));
	CHECK_MEMEQ(m2 + 100, "mapped", 6);
	IN_CHILD({
		int fd2 = CHECK_OK(open(P("f"), O_RDWR));
		CHECK_EQ(pwrite(fd2, "child", 5, 200), 5);
		close(fd2);
	});
	CHECK_MEMEQ(m + 200, "child", 5);
	CHECK_MEMEQ(m2 + 200, "child", 5);
	CHECK_OK(munmap(m2, 2 * pg));
	CHECK_OK(munmap(m, 2 * pg));
	close(fd);
}

CASE(msync_flushes_and_survives_unmap)
{
	pg = sysconf(_SC_PAGESIZE);
	int fd = make_file(P("f"), pg, 0);
	char *m = CHECK_PTR(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	strcpy(m, "synced data");
	CHECK_EQ(msync(m, pg, MS_SYNC), 0);
	CHECK_EQ(msync(m, pg, MS_ASYNC), 0);
	CHECK_EQ(msync(m, pg, MS_INVALIDATE), 0);
	/* Length need not be page aligned; 0 is fine. */
	CHECK_EQ(msync(m, 10, MS_SYNC), 0);
	CHECK_EQ(msync(m, 0, MS_SYNC), 0);
	/* Private and anonymous mappings can be msync'ed too (no effect). */
	char *anon = CHECK_PTR(mmap(NULL, pg, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	CHECK_EQ(msync(anon, pg, MS_SYNC), 0);
	CHECK_OK(munmap(anon, pg));
	CHECK_OK(munmap(m, pg));
	close(fd);
	/* The data is in the file after the mapping and the fd are gone. */
	char buf[32];
	st_read_file(P("f"), buf, sizeof buf);
	CHECK_STREQ(buf, "synced data");
	struct stat st;
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(st.st_size, pg);
}

CASE(msync_errors)
{
	pg = sysconf(_SC_PAGESIZE);
	char *m = CHECK_PTR(mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	CHECK_ERR(msync(m + 1, pg, MS_SYNC), EINVAL);
	CHECK_ERR(msync(m, pg, MS_SYNC | MS_ASYNC), EINVAL);
	CHECK_ERR(msync(m, pg, 0x100), EINVAL);
	CHECK_OK(munmap(m + pg, pg));
	/* Part of the range unmapped. */
	CHECK_ERR(msync(m, 2 * pg, MS_SYNC), ENOMEM);
	CHECK_OK(munmap(m, pg));
	CHECK_ERR(msync(m, pg, MS_ASYNC), ENOMEM);
}

CASE(madvise_errors_and_hints)
{
	pg = sysconf(_SC_PAGESIZE);
	char *m = CHECK_PTR(mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	/* Hints succeed and change nothing visible. */
	m[0] = 1;
	CHECK_EQ(madvise(m, 4 * pg, MADV_NORMAL), 0);
	CHECK_EQ(madvise(m, 4 * pg, MADV_RANDOM), 0);
	CHECK_EQ(madvise(m, 4 * pg, MADV_SEQUENTIAL), 0);
	CHECK_EQ(madvise(m, 4 * pg, MADV_WILLNEED), 0);
	CHECK_EQ(m[0], 1);
	/* A zero length is fine. */
	CHECK_EQ(madvise(m, 0, MADV_DONTNEED), 0);
	CHECK_ERR(madvise(m + 1, pg, MADV_NORMAL), EINVAL);
	CHECK_ERR(madvise(m, pg, 12345), EINVAL);
	/* MADV_REMOVE needs a shared mapping. */
	CHECK_ERR(madvise(m, pg, MADV_REMOVE), EINVAL);
	CHECK_OK(munmap(m + 2 * pg, pg));
	/* A hole in the range: ENOMEM (after advising the mapped parts). */
	CHECK_ERR(madvise(m, 4 * pg, MADV_NORMAL), ENOMEM);
	CHECK_ERR(madvise(m + 2 * pg, pg, MADV_DONTNEED), ENOMEM);
	munmap(m, 4 * pg);
}

CASE(remove_punches_hole_in_shared_file)
{
	pg = sysconf(_SC_PAGESIZE);
	int fd = CHECK_OK(memfd_create("remove", 0));
	CHECK_OK(ftruncate(fd, 3 * pg));
	char *m = CHECK_PTR(mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	memset(m, 'R', 3 * pg);
	CHECK_OK(madvise(m + pg, pg, MADV_REMOVE));
	/* The middle page reads as zeros, through the mapping and read(). */
	CHECK_EQ(m[pg], 0);
	CHECK_EQ(m[2 * pg - 1], 0);
	CHECK_EQ(m[0], 'R');
	CHECK_EQ(m[2 * pg], 'R');
	char c = 1;
	CHECK_EQ(pread(fd, &c, 1, pg + 7), 1);
	CHECK_EQ(c, 0);
	/* The file keeps its size. */
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 3 * pg);
	CHECK_OK(munmap(m, 3 * pg));
	close(fd);
}

CASE(dontfork_and_wipeonfork)
{
	pg = sysconf(_SC_PAGESIZE);
	char *a = CHECK_PTR(mmap(NULL, pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	char *b = CHECK_PTR(mmap(NULL, pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	strcpy(a, "not in child");
	strcpy(b, "wiped in child");
	CHECK_OK(madvise(a, pg, MADV_DONTFORK));
	CHECK_OK(madvise(b, pg, MADV_WIPEONFORK));
	/* WIPEONFORK only applies to private anonymous memory. */
	int fd = make_file(P("f"), pg, 'x');
	char *f = CHECK_PTR(mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0));
	CHECK_ERR(madvise(f, pg, MADV_WIPEONFORK), EINVAL);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		unsigned char v;
		/* The DONTFORK range does not exist in the child. */
		if (mincore(a, pg, &v) != -1 || errno != ENOMEM)
			_exit(1);
		/* The WIPEONFORK range exists and is zero. */
		if (b[0] != 0 || b[5] != 0)
			_exit(2);
		(void)*(volatile char *)a;
		_exit(3);
	}
	CHECK_SIGNALED(st_wait(pid), SIGSEGV);
	/* The parent keeps both. */
	CHECK_STREQ(a, "not in child");
	CHECK_STREQ(b, "wiped in child");
	/* MADV_DOFORK undoes DONTFORK. */
	CHECK_OK(madvise(a, pg, MADV_DOFORK));
	IN_CHILD(CHECK_STREQ(a, "not in child"));
	close(fd);
}

CASE(mincore_tracks_residency)
{
	pg = sysconf(_SC_PAGESIZE);
	char *m = CHECK_PTR(mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	unsigned char v[4];
	CHECK_OK(mincore(m, 4 * pg, v));
	CHECK_EQ(v[0] & 1, 0);
	m[0] = 1;
	m[2 * pg] = 1;
	CHECK_OK(mincore(m, 4 * pg, v));
	CHECK_EQ(v[0] & 1, 1);
	CHECK_EQ(v[1] & 1, 0);
	CHECK_EQ(v[2] & 1, 1);
	CHECK_EQ(v[3] & 1, 0);
	/* DONTNEED drops the page. */
	CHECK_OK(madvise(m, pg, MADV_DONTNEED));
	CHECK_OK(mincore(m, 4 * pg, v));
	CHECK_EQ(v[0] & 1, 0);
	CHECK_EQ(v[2] & 1, 1);
	/* The length is rounded up to whole pages. */
	CHECK_OK(mincore(m + 2 * pg, 1, v));
	CHECK_EQ(v[0] & 1, 1);
	CHECK_ERR(mincore(m + 1, pg, v), EINVAL);
	CHECK_ERR(mincore(m, pg, (unsigned char *)8), EFAULT);
	CHECK_OK(munmap(m, 4 * pg));
	CHECK_ERR(mincore(m, pg, v), ENOMEM);
}

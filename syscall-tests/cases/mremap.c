/* mremap: shrinking, growing in place, MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP,
 * file mappings and errors. */
#include "harness.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static long pg;

static void fill(char *p, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(seed + i * 7 + i / 4096);
}

static void check_fill(const char *p, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (char)(seed + i * 7 + i / 4096))
			FAIL("byte %zu: got %#x", i, (unsigned char)p[i]);
}

/* 1 if [addr, addr+len) is entirely unmapped (mincore fails with ENOMEM). */
static int unmapped(void *addr, size_t len)
{
	unsigned char vec[64];
	return mincore(addr, len, vec) == -1 && errno == ENOMEM;
}

/* Runs fn in a child and returns the signal that killed it (0 if it exited 0). */
static int touch_in_child(volatile char *addr)
{
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork");
	if (pid == 0) {
		(void)*addr;
		_exit(0);
	}
	int s = st_wait(pid);
	return WIFSIGNALED(s) ? WTERMSIG(s) : 0;
}

/* Reserves n pages (PROT_NONE) and returns the address: a place known to be free. */
static char *reserve(size_t n)
{
	char *p = mmap(NULL, n * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		FAIL("mmap reserve: %s", st_errname(errno));
	return p;
}

CASE(shrink_unmaps_the_tail)
{
	pg = sysconf(_SC_PAGESIZE);
	char *p = CHECK_PTR(mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	fill(p, 4 * pg, 1);
	char *q = mremap(p, 4 * pg, 2 * pg, 0);
	CHECK_EQ((uintptr_t)q, (uintptr_t)p);
	check_fill(q, 2 * pg, 1);
	CHECK_EQ(unmapped(p + 2 * pg, 2 * pg), 1);
	CHECK_EQ(touch_in_child(p + 3 * pg), SIGSEGV);
	CHECK_OK(munmap(p, 2 * pg));
}

CASE(grow_in_place)
{
	pg = sysconf(_SC_PAGESIZE);
	/* Reserve 8 pages, then leave only the first 4 mapped: room to grow. */
	char *r = reserve(8);
	CHECK_OK(munmap(r, 8 * pg));
	char *p = CHECK_PTR(mmap(r, 4 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	fill(p, 4 * pg, 3);
	/* Without MREMAP_MAYMOVE the mapping must stay where it is. */
	char *q = mremap(p, 4 * pg, 8 * pg, 0);
	CHECK_EQ((uintptr_t)q, (uintptr_t)p);
	check_fill(q, 4 * pg, 3);
	/* The new pages are zero and writable. */
	for (long i = 4 * pg; i < 8 * pg; i++)
		if (q[i] != 0)
			FAIL("new byte %ld not zero", i);
	q[8 * pg - 1] = 'z';
	CHECK_OK(munmap(q, 8 * pg));
}

CASE(grow_blocked_without_maymove_enomem)
{
	pg = sysconf(_SC_PAGESIZE);
	char *p = CHECK_PTR(mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	/* Make page 2 a separate mapping that blocks growth of pages 0-1. */
	CHECK_OK(mprotect(p + 2 * pg, pg, PROT_READ));
	p[0] = 'a';
	CHECK_ERR(mremap(p, 2 * pg, 3 * pg, 0), ENOMEM);
	/* Growing a range that is not the end of its mapping is ENOMEM too. */
	CHECK_ERR(mremap(p, pg, 2 * pg, 0), ENOMEM);
	/* Nothing changed. */
	CHECK_EQ(p[0], 'a');
	CHECK_OK(munmap(p, 3 * pg));
}

CASE(maymove_keeps_contents)
{
	pg = sysconf(_SC_PAGESIZE);
	char *p = CHECK_PTR(mmap(NULL, 5 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	CHECK_OK(mprotect(p + 4 * pg, pg, PROT_NONE));
	fill(p, 4 * pg, 5);
	char *q = mremap(p, 4 * pg, 64 * pg, MREMAP_MAYMOVE);
	CHECK((void *)q != MAP_FAILED);
	/* It had to move: the guard page is in the way. */
	CHECK_NE((uintptr_t)q, (uintptr_t)p);
	check_fill(q, 4 * pg, 5);
	CHECK_EQ(q[64 * pg - 1], 0);
	/* The old range is gone; the guard page stays. */
	CHECK_EQ(unmapped(p, 4 * pg), 1);
	CHECK_EQ(unmapped(p + 4 * pg, pg), 0);
	/* Protection is kept. */
	q[10 * pg] = 1;
	CHECK_OK(munmap(q, 64 * pg));
	CHECK_OK(munmap(p + 4 * pg, pg));
}

CASE(fixed_moves_to_target)
{
	pg = sysconf(_SC_PAGESIZE);
	char *p = CHECK_PTR(mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	fill(p, 2 * pg, 9);
	/* The target holds another mapping, which MREMAP_FIXED replaces. */
	char *t = CHECK_PTR(mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	memset(t, 'T', 4 * pg);
	char *q = mremap(p, 2 * pg, 3 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, t);
	CHECK_EQ((uintptr_t)q, (uintptr_t)t);
	check_fill(t, 2 * pg, 9);
	CHECK_EQ(t[2 * pg], 0);
	/* The rest of the old target mapping is untouched. */
	CHECK_EQ(t[3 * pg], 'T');
	CHECK_EQ(unmapped(p, 2 * pg), 1);
	CHECK_OK(munmap(t, 4 * pg));
}

CASE(errors)
{
	pg = sysconf(_SC_PAGESIZE);
	char *p = CHECK_PTR(mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	/* MREMAP_FIXED requires MREMAP_MAYMOVE. */
	CHECK_ERR(mremap(p, pg, pg, MREMAP_FIXED, p + 2 * pg), EINVAL);
	/* Unaligned old address, zero new size, unknown flags. */
	CHECK_ERR(mremap(p + 1, pg, 2 * pg, MREMAP_MAYMOVE), EINVAL);
	CHECK_ERR(mremap(p, pg, 0, MREMAP_MAYMOVE), EINVAL);
	CHECK_ERR(mremap(p, pg, pg, 0x100), EINVAL);
	/* Overlapping source and target. */
	CHECK_ERR(mremap(p, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, p + pg), EINVAL);
	/* Nothing mapped at the old address. */
	char *hole = reserve(2);
	CHECK_OK(munmap(hole, 2 * pg));
	CHECK_ERR(mremap(hole, pg, 2 * pg, MREMAP_MAYMOVE), EFAULT);
	/* A private mapping cannot be duplicated with old_size 0. */
	CHECK_ERR(mremap(p, 0, pg, MREMAP_MAYMOVE), EINVAL);
	CHECK_OK(munmap(p, 4 * pg));
}

CASE(old_size_zero_duplicates_shared_mapping)
{
	pg = sysconf(_SC_PAGESIZE);
	char *a = CHECK_PTR(mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	strcpy(a, "shared");
	char *b = mremap(a, 0, 2 * pg, MREMAP_MAYMOVE);
	CHECK((void *)b != MAP_FAILED);
	CHECK_NE((uintptr_t)b, (uintptr_t)a);
	/* Both map the same pages. */
	CHECK_STREQ(b, "shared");
	strcpy(b + pg, "through b");
	CHECK_STREQ(a + pg, "through b");
	CHECK_OK(munmap(a, 2 * pg));
	CHECK_STREQ(b, "shared");
	CHECK_OK(munmap(b, 2 * pg));
}

CASE(file_mapping_grows_into_file)
{
	pg = sysconf(_SC_PAGESIZE);
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	char *buf = malloc(3 * pg);
	fill(buf, 3 * pg, 11);
	CHECK_EQ(write(fd, buf, 3 * pg), 3 * pg);
	char *m = CHECK_PTR(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	char *q = mremap(m, pg, 3 * pg, MREMAP_MAYMOVE);
	CHECK((void *)q != MAP_FAILED);
	/* The grown part maps the following pages of the file. */
	check_fill(q, 3 * pg, 11);
	/* Writes still reach the file. */
	q[2 * pg] = 'W';
	char c = 0;
	CHECK_EQ(pread(fd, &c, 1, 2 * pg), 1);
	CHECK_EQ(c, 'W');
	CHECK_OK(munmap(q, 3 * pg));
	close(fd);
}

CASE(dontunmap_leaves_empty_source)
{
	pg = sysconf(_SC_PAGESIZE);
	char *p = CHECK_PTR(mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	fill(p, 2 * pg, 13);
	/* MREMAP_DONTUNMAP needs MAYMOVE and the same size. */
	CHECK_ERR(mremap(p, 2 * pg, 2 * pg, MREMAP_DONTUNMAP), EINVAL);
	CHECK_ERR(mremap(p, 2 * pg, 4 * pg, MREMAP_MAYMOVE | MREMAP_DONTUNMAP), EINVAL);
	char *q = mremap(p, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	CHECK((void *)q != MAP_FAILED);
	CHECK_NE((uintptr_t)q, (uintptr_t)p);
	check_fill(q, 2 * pg, 13);
	/* The source stays mapped but its pages are gone: reads give zeros. */
	CHECK_EQ(unmapped(p, 2 * pg), 0);
	CHECK_EQ(p[0], 0);
	CHECK_EQ(p[pg + 5], 0);
	CHECK_OK(munmap(p, 2 * pg));
	CHECK_OK(munmap(q, 2 * pg));
}

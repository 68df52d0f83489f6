/* Large anonymous regions touched in order (under rvisor: whole 2 MiB runs, which may
 * be host huge pages): fork's copy-on-write, mprotect, munmap, MADV_DONTNEED and
 * mincore on parts of them. */
#include "harness.h"

#define MIB (1UL << 20)
#define PG 4096UL

/* A region of `len` bytes, every page written in order with tag + page index. */
static unsigned char *touched(size_t len, unsigned char tag)
{
	unsigned char *p = CHECK_PTR(mmap(NULL, len, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	for (size_t i = 0; i < len / PG; i++)
		p[i * PG] = (unsigned char)(tag + i);
	return p;
}

/* The first 2 MiB boundary in [p, p + len) with at least `need` bytes after it. */
static unsigned char *aligned_in(unsigned char *p, size_t len, size_t need)
{
	unsigned char *a = (unsigned char *)(((uintptr_t)p + 2 * MIB - 1) & ~(2 * MIB - 1));
	CHECK(a + need <= p + len);
	return a;
}

/* Byte 2048 of every page of the 4 MiB at a: set it to v; the first page where it is
 * not v, or -1. */
static void set_mid(unsigned char *a, unsigned char v)
{
	for (size_t i = 0; i < 4 * MIB / PG; i++)
		a[i * PG + 2048] = v;
}

static long first_mid_not(unsigned char *a, unsigned char v)
{
	for (size_t i = 0; i < 4 * MIB / PG; i++)
		if (a[i * PG + 2048] != v)
			return (long)i;
	return -1;
}

/* The first page in [p, p + len) not holding tag + index, or -1. */
static long first_bad(unsigned char *p, size_t len, unsigned char tag)
{
	for (size_t i = 0; i < len / PG; i++)
		if (p[i * PG] != (unsigned char)(tag + i))
			return (long)i;
	return -1;
}

CASE(fork_cow_of_large_touched_region)
{
	size_t len = 16 * MIB;
	unsigned char *p = touched(len, 1);
	unsigned char *a = aligned_in(p, len, 4 * MIB);
	int to_parent[2], to_child[2];
	CHECK_OK(pipe(to_parent));
	CHECK_OK(pipe(to_child));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		/* The child sees the parent's data, then writes its own everywhere. */
		CHECK_EQ(first_bad(p, len, 1), -1);
		for (size_t i = 0; i < len / PG; i++)
			p[i * PG] = (unsigned char)(7 + i);
		set_mid(a, 0xcc);
		CHECK_EQ(write(to_parent[1], "w", 1), 1);
		/* The parent wrote its own after that: the child's stay. */
		CHECK_EQ(read(to_child[0], &c, 1), 1);
		CHECK_EQ(first_mid_not(a, 0xcc), -1);
		CHECK_EQ(first_bad(p, len, 7), -1);
		_exit(0);
	}
	char c;
	CHECK_EQ(read(to_parent[0], &c, 1), 1);
	/* The child's writes are not seen here. */
	CHECK_EQ(first_bad(p, len, 1), -1);
	CHECK_EQ(first_mid_not(a, 0), -1);
	for (size_t i = 0; i < len / PG; i++)
		p[i * PG] = (unsigned char)(3 + i);
	set_mid(a, 0x55);
	CHECK_EQ(write(to_child[1], "p", 1), 1);
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(first_mid_not(a, 0x55), -1);
	CHECK_EQ(first_bad(p, len, 3), -1);
	CHECK_OK(munmap(p, len));
}

CASE(mprotect_and_munmap_inside_large_run)
{
	size_t len = 8 * MIB;
	unsigned char *p = touched(len, 5);
	unsigned char *a = aligned_in(p, len, 2 * MIB);
	unsigned char *ro = a + 64 * PG, *gone = a + 300 * PG;
	CHECK_OK(mprotect(ro, PG, PROT_READ));
	CHECK_OK(munmap(gone, 2 * PG));
	/* The read-only page keeps its data and faults on write. */
	CHECK_EQ(ro[0], (unsigned char)(5 + (ro - p) / PG));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		ro[0] = 9;
		_exit(0);
	}
	CHECK_SIGNALED(st_wait(pid), SIGSEGV);
	pid = CHECK_OK(fork());
	if (pid == 0) {
		(void)*(volatile unsigned char *)(gone + PG);
		_exit(0);
	}
	CHECK_SIGNALED(st_wait(pid), SIGSEGV);
	/* Its neighbours are as they were, and writable. */
	ro[-1] = 1;
	ro[PG] = 2;
	CHECK_EQ(ro[-1], 1);
	CHECK_EQ(ro[PG], 2);
	ro[-1] = (unsigned char)(5 + (ro - PG - p) / PG);
	ro[PG] = (unsigned char)(5 + (ro + PG - p) / PG);
	CHECK_EQ(first_bad(p, gone - p, 5), -1);
	unsigned char *after = gone + 2 * PG;
	for (size_t i = 0; i < (size_t)(p + len - after) / PG; i++)
		CHECK_EQ(after[i * PG], (unsigned char)(5 + (after - p) / PG + i));
	/* Mapped again in the hole: fresh zeros. */
	CHECK_PTR(mmap(gone, 2 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	CHECK_EQ(gone[0], 0);
	CHECK_EQ(gone[PG], 0);
	CHECK_OK(munmap(p, len));
}

CASE(dontneed_and_mincore_inside_large_run)
{
	size_t len = 8 * MIB;
	unsigned char *p = touched(len, 11);
	unsigned char *a = aligned_in(p, len, 2 * MIB);
	size_t n = 2 * MIB / PG;
	unsigned char v[512];
	CHECK_OK(mincore(a, 2 * MIB, v));
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(v[i] & 1, 1);
	/* 16 pages in the middle go: they read as zeros and are not resident. */
	CHECK_OK(madvise(a + 100 * PG, 16 * PG, MADV_DONTNEED));
	CHECK_OK(mincore(a, 2 * MIB, v));
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(v[i] & 1, i >= 100 && i < 116 ? 0 : 1);
	for (size_t i = 100; i < 116; i++)
		CHECK_EQ(a[i * PG], 0);
	CHECK_EQ(a[99 * PG], (unsigned char)(11 + (a - p) / PG + 99));
	CHECK_EQ(a[116 * PG], (unsigned char)(11 + (a - p) / PG + 116));
	/* Touched again, they are resident again. */
	a[105 * PG] = 1;
	CHECK_OK(mincore(a + 105 * PG, PG, v));
	CHECK_EQ(v[0] & 1, 1);
	CHECK_OK(munmap(p, len));
}

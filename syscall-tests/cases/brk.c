/* brk, sbrk, malloc over brk and mmap. */
#include "harness.h"

static uintptr_t sys_brk(uintptr_t addr)
{
	return (uintptr_t)syscall(SYS_brk, addr);
}

CASE(brk_query_and_grow)
{
	uintptr_t cur = sys_brk(0);
	CHECK_NE(cur, 0);
	uintptr_t want = cur + 64 * 1024;
	CHECK_EQ(sys_brk(want), want);
	CHECK_EQ(sys_brk(0), want);
	/* The new memory is zeroed and writable. */
	volatile char *p = (volatile char *)cur;
	for (uintptr_t i = 0; i < 64 * 1024; i += 512) {
		CHECK_EQ(p[i], 0);
		p[i] = 'x';
	}
	CHECK_EQ(p[512], 'x');
}

CASE(brk_shrink_and_regrow_zeroes)
{
	uintptr_t cur = sys_brk(0);
	uintptr_t pg = sysconf(_SC_PAGESIZE);
	/* Start from a page boundary so the shrink releases whole pages. */
	uintptr_t base = (cur + pg - 1) & ~(pg - 1);
	CHECK_EQ(sys_brk(base + 4 * pg), base + 4 * pg);
	memset((void *)base, 'a', 4 * pg);
	CHECK_EQ(sys_brk(base + pg), base + pg);
	CHECK_EQ(sys_brk(base + 4 * pg), base + 4 * pg);
	CHECK_EQ(((volatile char *)base)[0], 'a');
	CHECK_EQ(((volatile char *)base)[2 * pg], 0);
}

CASE(brk_below_start_unchanged)
{
	uintptr_t cur = sys_brk(0);
	/* A request below the start of the heap fails: the old break is returned. */
	CHECK_EQ(sys_brk(4096), cur);
	CHECK_EQ(sys_brk(0), cur);
}

CASE(sbrk)
{
	void *a = sbrk(0);
	CHECK_NE((long)a, -1);
	void *b = sbrk(8192);
	CHECK_EQ((uintptr_t)b, (uintptr_t)a);
	CHECK_EQ((uintptr_t)sbrk(0), (uintptr_t)a + 8192);
	memset(a, 1, 8192);
	CHECK_EQ((uintptr_t)sbrk(-8192), (uintptr_t)a + 8192);
	CHECK_EQ((uintptr_t)sbrk(0), (uintptr_t)a);
}

CASE(malloc_small_and_large)
{
	char *small[1000];
	for (int i = 0; i < 1000; i++) {
		small[i] = malloc(100 + i);
		CHECK(small[i] != NULL);
		memset(small[i], i & 0xff, 100 + i);
	}
	for (int i = 0; i < 1000; i++) {
		CHECK_EQ((unsigned char)small[i][99 + i], i & 0xff);
		free(small[i]);
	}
	size_t big = 64 << 20;
	char *p = malloc(big);
	CHECK(p != NULL);
	for (size_t i = 0; i < big; i += 4096)
		p[i] = 1;
	free(p);
	char *q = calloc(1 << 20, 1);
	CHECK(q != NULL);
	for (size_t i = 0; i < (1 << 20); i += 4096)
		CHECK_EQ(q[i], 0);
	free(q);
	char *r = realloc(NULL, 16);
	r = realloc(r, 1 << 21);
	CHECK(r != NULL);
	free(r);
}

CASE(brk_memory_copied_on_fork)
{
	uintptr_t cur = sys_brk(0);
	CHECK_EQ(sys_brk(cur + 4096), cur + 4096);
	volatile char *p = (volatile char *)cur;
	p[0] = 'p';
	IN_CHILD({
		CHECK_EQ(p[0], 'p');
		p[0] = 'c';
		CHECK_EQ(sys_brk(0), cur + 4096);
	});
	CHECK_EQ(p[0], 'p');
}

/* mmap, munmap, mprotect, mremap, madvise, msync, faults. */
#include "harness.h"
#include <setjmp.h>

static sigjmp_buf fault_jmp;
static volatile int fault_sig, fault_code;
static void *volatile fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_sig = sig;
	fault_code = si->si_code;
	fault_addr = si->si_addr;
	siglongjmp(fault_jmp, 1);
}

/* Touches *p (a write when write != 0); returns the signal it raised, or 0. */
static int touch(volatile char *p, int write)
{
	st_handle_info(SIGSEGV, on_fault, SA_NODEFER);
	st_handle_info(SIGBUS, on_fault, SA_NODEFER);
	fault_sig = 0;
	fault_code = 0;
	fault_addr = NULL;
	if (sigsetjmp(fault_jmp, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
	}
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	return fault_sig;
}

static long page(void)
{
	return sysconf(_SC_PAGESIZE);
}

CASE(anonymous_private_zeroed_rw)
{
	size_t len = 3 * page();
	unsigned char *p = CHECK_PTR(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	CHECK_EQ((uintptr_t)p % page(), 0);
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			FAIL("byte %zu not zero", i);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)i;
	for (size_t i = 0; i < len; i++)
		CHECK_EQ(p[i], (unsigned char)i);
	CHECK_OK(munmap(p, len));
}

CASE(file_private_reads_file_writes_stay_private)
{
	st_write_file(P("f"), "file contents here");
	int fd = CHECK_OK(open(P("f"), O_RDWR));
	char *p = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	CHECK_MEMEQ(p, "file contents here", 18);
	/* Past EOF within the page reads zeros. */
	CHECK_EQ(p[18], 0);
	CHECK_EQ(p[page() - 1], 0);
	memcpy(p, "FILE", 4);
	CHECK_MEMEQ(p, "FILE contents", 13);
	char buf[32] = { 0 };
	CHECK_EQ(pread(fd, buf, sizeof buf, 0), 18);
	CHECK_STREQ(buf, "file contents here");
	CHECK_OK(munmap(p, page()));
	close(fd);
}

/* Until a page of a private mapping is written, it shows the file's later changes;
 * once written it is the process's own copy. */
CASE(private_file_mapping_sees_file_writes_until_written)
{
	char buf[8192];
	memset(buf, 'a', sizeof buf);
	int fd = CHECK_OK(open(P("g"), O_RDWR | O_CREAT, 0600));
	CHECK_EQ(write(fd, buf, 2 * page()), (ssize_t)(2 * page()));
	char *p = CHECK_PTR(mmap(NULL, 2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	CHECK_EQ(p[0], 'a');
	CHECK_EQ(pwrite(fd, "b", 1, 0), 1);
	CHECK_EQ(pwrite(fd, "c", 1, page()), 1);
	CHECK_EQ(p[0], 'b');
	CHECK_EQ(p[page()], 'c');
	p[page()] = 'x';
	CHECK_EQ(pwrite(fd, "d", 1, 0), 1);
	CHECK_EQ(pwrite(fd, "e", 1, page()), 1);
	CHECK_EQ(p[0], 'd');
	CHECK_EQ(p[page()], 'x');
	CHECK_OK(munmap(p, 2 * page()));
	close(fd);
}

CASE(file_shared_writes_reach_file)
{
	st_write_file(P("f"), "0123456789");
	int fd = CHECK_OK(open(P("f"), O_RDWR));
	char *p = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	memcpy(p + 2, "ab", 2);
	CHECK_OK(msync(p, page(), MS_SYNC));
	char buf[16] = { 0 };
	CHECK_EQ(pread(fd, buf, 10, 0), 10);
	CHECK_STREQ(buf, "01ab456789");
	/* A write through the fd is visible in the mapping. */
	CHECK_EQ(pwrite(fd, "XY", 2, 8), 2);
	CHECK_MEMEQ(p + 8, "XY", 2);
	CHECK_OK(munmap(p, page()));
	/* The data survives the unmap and close. */
	close(fd);
	st_read_file(P("f"), buf, sizeof buf);
	CHECK_STREQ(buf, "01ab4567XY");
}

CASE(file_mapping_at_offset)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_OK(ftruncate(fd, 2 * page()));
	CHECK_EQ(pwrite(fd, "second", 6, page()), 6);
	char *p = CHECK_PTR(mmap(NULL, page(), PROT_READ, MAP_SHARED, fd, page()));
	CHECK_MEMEQ(p, "second", 6);
	CHECK_ERR((long)mmap(NULL, page(), PROT_READ, MAP_SHARED, fd, 100), EINVAL);
	munmap(p, page());
	close(fd);
}

CASE(munmap_then_access_segv_maperr)
{
	char *p = CHECK_PTR(mmap(NULL, 2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	p[0] = 1;
	CHECK_OK(munmap(p + page(), page()));
	CHECK_EQ(touch(p, 0), 0);
	CHECK_EQ(touch(p + page() + 5, 0), SIGSEGV);
	CHECK_EQ(fault_code, SEGV_MAPERR);
	CHECK_EQ((uintptr_t)fault_addr, (uintptr_t)(p + page() + 5));
	munmap(p, page());
}

CASE(mprotect_read_then_write_segv_accerr)
{
	char *p = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	p[10] = 42;
	CHECK_OK(mprotect(p, page(), PROT_READ));
	CHECK_EQ(touch(p + 10, 0), 0);
	CHECK_EQ(p[10], 42);
	CHECK_EQ(touch(p + 10, 1), SIGSEGV);
	CHECK_EQ(fault_code, SEGV_ACCERR);
	CHECK_EQ((uintptr_t)fault_addr, (uintptr_t)(p + 10));
	CHECK_OK(mprotect(p, page(), PROT_READ | PROT_WRITE));
	CHECK_EQ(touch(p + 10, 1), 0);
	CHECK_EQ(p[10], 1);
	munmap(p, page());
}

CASE(prot_none_faults)
{
	char *p = CHECK_PTR(mmap(NULL, page(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	CHECK_EQ(touch(p + 100, 0), SIGSEGV);
	CHECK_EQ(fault_code, SEGV_ACCERR);
	CHECK_EQ((uintptr_t)fault_addr, (uintptr_t)(p + 100));
	munmap(p, page());
}

CASE(null_deref_segv)
{
	CHECK_EQ(touch((volatile char *)0, 0), SIGSEGV);
	CHECK_EQ(fault_code, SEGV_MAPERR);
	CHECK_EQ((uintptr_t)fault_addr, 0);
}

CASE(mprotect_partial_splits_mapping)
{
	char *p = CHECK_PTR(mmap(NULL, 3 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	CHECK_OK(mprotect(p + page(), page(), PROT_READ));
	CHECK_EQ(touch(p, 1), 0);
	CHECK_EQ(touch(p + page(), 1), SIGSEGV);
	CHECK_EQ(touch(p + 2 * page(), 1), 0);
	CHECK_ERR(mprotect(p + 1, page(), PROT_READ), EINVAL);
	munmap(p, 3 * page());
}

CASE(map_fixed_replaces)
{
	char *p = CHECK_PTR(mmap(NULL, 2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	memset(p, 'a', 2 * page());
	char *q = CHECK_PTR(mmap(p + page(), page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	CHECK_EQ((uintptr_t)q, (uintptr_t)(p + page()));
	CHECK_EQ(p[0], 'a');
	CHECK_EQ(q[0], 0);
	/* MAP_FIXED_NOREPLACE refuses to clobber. */
	CHECK_ERR((long)mmap(p, page(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), EEXIST);
	munmap(p, 2 * page());
}

CASE(mmap_errors)
{
	CHECK_ERR((long)mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), EINVAL);
	CHECK_ERR((long)mmap(NULL, page(), PROT_READ, MAP_PRIVATE, -1, 0), EBADF);
	CHECK_ERR((long)mmap(NULL, page(), PROT_READ, MAP_ANONYMOUS, -1, 0), EINVAL);
	CHECK_ERR((long)mmap((void *)1, page(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
		  EINVAL);
	st_write_file(P("f"), "x");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR((long)mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EACCES);
	/* A private writable mapping of a read-only fd is fine. */
	void *p = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	munmap(p, page());
	close(fd);
	fd = CHECK_OK(open(P("f"), O_WRONLY));
	CHECK_ERR((long)mmap(NULL, page(), PROT_READ, MAP_PRIVATE, fd, 0), EACCES);
	close(fd);
	CHECK_ERR(munmap((void *)1, page()), EINVAL);
}

CASE(shared_anonymous_visible_after_fork)
{
	volatile int *shared = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	volatile int *priv = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	*shared = 1;
	*priv = 1;
	IN_CHILD({
		*shared = 2;
		*priv = 2;
	});
	CHECK_EQ(*shared, 2);
	CHECK_EQ(*priv, 1);
}

CASE(mremap_grow_preserves_data)
{
	char *p = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	memset(p, 'z', page());
	char *q = CHECK_PTR(mremap(p, page(), 4 * page(), MREMAP_MAYMOVE));
	CHECK_EQ(q[0], 'z');
	CHECK_EQ(q[page() - 1], 'z');
	CHECK_EQ(q[page()], 0);
	q[4 * page() - 1] = 1;
	/* Shrinking in place keeps the address. */
	char *r = CHECK_PTR(mremap(q, 4 * page(), page(), 0));
	CHECK_EQ((uintptr_t)r, (uintptr_t)q);
	CHECK_EQ(r[0], 'z');
	munmap(r, page());
}

CASE(madvise_dontneed_zeroes_private_anon)
{
	char *p = CHECK_PTR(mmap(NULL, 2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	memset(p, 'q', 2 * page());
	CHECK_OK(madvise(p, page(), MADV_DONTNEED));
	CHECK_EQ(p[0], 0);
	CHECK_EQ(p[page()], 'q');
	munmap(p, 2 * page());
}

CASE(access_beyond_file_end_sigbus)
{
	st_write_file(P("f"), "short");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	char *p = CHECK_PTR(mmap(NULL, 2 * page(), PROT_READ, MAP_SHARED, fd, 0));
	CHECK_EQ(touch(p + 100, 0), 0);
	CHECK_EQ(touch(p + page() + 1, 0), SIGBUS);
	CHECK_EQ(fault_code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)fault_addr, (uintptr_t)(p + page() + 1));
	munmap(p, 2 * page());
	close(fd);
}

CASE(many_mappings)
{
	void *ptrs[200];
	for (int i = 0; i < 200; i++) {
		ptrs[i] = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
		*(int *)ptrs[i] = i;
	}
	for (int i = 0; i < 200; i++)
		CHECK_EQ(*(int *)ptrs[i], i);
	for (int i = 0; i < 200; i++)
		CHECK_OK(munmap(ptrs[i], page()));
}

CASE(large_anonymous_sparse)
{
	size_t len = 1UL << 30;
	char *p = CHECK_PTR(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
	for (size_t off = 0; off < len; off += 64 << 20)
		p[off] = 1;
	CHECK_EQ(p[len - 1], 0);
	CHECK_OK(munmap(p, len));
}

CASE(mincore_reports_resident)
{
	char *p = CHECK_PTR(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	p[0] = 1;
	unsigned char vec[1];
	CHECK_OK(mincore(p, page(), vec));
	CHECK_EQ(vec[0] & 1, 1);
	CHECK_OK(munmap(p, page()));
	CHECK_ERR(mincore(p, page(), vec), ENOMEM);
}

CASE(stack_grows)
{
	/* A local array on the stack, and a large one that grows the stack. */
	volatile char big[512 * 1024];
	big[0] = 1;
	big[sizeof big - 1] = 2;
	CHECK_EQ(big[0] + big[sizeof big - 1], 3);
}

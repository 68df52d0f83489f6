/* getrandom, /dev/urandom, /dev/random, AT_RANDOM. */
#include "harness.h"
#include <sys/auxv.h>
#include <sys/random.h>

static int all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

CASE(fills_buffer)
{
	unsigned char a[64], b[64];
	memset(a, 0, sizeof a);
	memset(b, 0, sizeof b);
	CHECK_EQ(getrandom(a, sizeof a, 0), 64);
	CHECK_EQ(getrandom(b, sizeof b, 0), 64);
	CHECK(!all_zero(a, sizeof a));
	CHECK(memcmp(a, b, sizeof a) != 0);
}

CASE(flags)
{
	unsigned char a[32];
	CHECK_EQ(getrandom(a, sizeof a, GRND_NONBLOCK), 32);
	CHECK_EQ(getrandom(a, sizeof a, GRND_RANDOM | GRND_NONBLOCK) > 0, 1);
	CHECK_ERR(getrandom(a, sizeof a, 0x100), EINVAL);
	CHECK_EQ(getrandom(a, 0, 0), 0);
	CHECK_ERR(syscall(SYS_getrandom, 8, 16, 0), EFAULT);
}

CASE(large_request)
{
	size_t n = 1 << 20;
	unsigned char *p = malloc(n);
	size_t got = 0;
	while (got < n) {
		ssize_t r = CHECK_OK(getrandom(p + got, n - got, 0));
		CHECK_GT(r, 0);
		got += r;
	}
	/* Every byte value appears in a megabyte of random data. */
	int seen[256] = { 0 };
	for (size_t i = 0; i < n; i++)
		seen[p[i]] = 1;
	for (int i = 0; i < 256; i++)
		CHECK_EQ(seen[i], 1);
	free(p);
}

CASE(dev_urandom)
{
	int fd = CHECK_OK(open("/dev/urandom", O_RDONLY));
	unsigned char a[64], b[64];
	CHECK_EQ(read(fd, a, sizeof a), 64);
	CHECK_EQ(read(fd, b, sizeof b), 64);
	CHECK(memcmp(a, b, sizeof a) != 0);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(S_ISCHR(st.st_mode));
	close(fd);
	fd = CHECK_OK(open("/dev/random", O_RDONLY | O_NONBLOCK));
	CHECK_GT(read(fd, a, 16), 0);
	close(fd);
}

CASE(at_random_auxv)
{
	unsigned char *r = (unsigned char *)getauxval(AT_RANDOM);
	CHECK(r != NULL);
	CHECK(!all_zero(r, 16));
}

CASE(children_get_different_randomness)
{
	int p[2];
	CHECK_OK(pipe(p));
	for (int i = 0; i < 2; i++) {
		pid_t pid = CHECK_OK(fork());
		if (pid == 0) {
			unsigned char b[16];
			if (getrandom(b, 16, 0) != 16)
				_exit(1);
			_exit(write(p[1], b, 16) == 16 ? 0 : 1);
		}
		CHECK_EXITED(st_wait(pid), 0);
	}
	unsigned char a[16], b[16];
	CHECK_EQ(read(p[0], a, 16), 16);
	CHECK_EQ(read(p[0], b, 16), 16);
	CHECK(memcmp(a, b, 16) != 0);
}

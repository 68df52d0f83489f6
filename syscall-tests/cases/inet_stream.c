/* TCP's data path over loopback: read(2) and write(2) copy straight between the
 * application's memory and the stack's buffers, so their edge cases are checked here:
 * a bad buffer is EFAULT and loses nothing, a zero-length read returns at once, large
 * transfers arrive intact across the buffers' wrap-around, and a writer blocked on a full
 * send buffer is woken to finish. */
#include "harness.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* A connected pair over 127.0.0.1: *c the client, *s the accepted end. */
static void tcp_pair(int *c, int *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int l = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(bind(l, (struct sockaddr *)&a, len));
	CHECK_OK(listen(l, 1));
	CHECK_OK(getsockname(l, (struct sockaddr *)&a, &len));
	*c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(connect(*c, (struct sockaddr *)&a, len));
	*s = CHECK_OK(accept(l, NULL, NULL));
	close(l);
}

/* A buffer whose address is not mapped. */
static void *unmapped(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	CHECK_OK(munmap(p, 4096));
	return p;
}

CASE(tcp_bad_buffer_is_efault_and_keeps_data)
{
	int c, s;
	tcp_pair(&c, &s);
	void *bad = unmapped();
	CHECK_ERR(write(c, bad, 100), EFAULT);
	CHECK_EQ(write(c, "hello", 5), 5);
	struct pollfd p = {.fd = s, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 5000), 1);
	CHECK_ERR(read(s, bad, 5), EFAULT);
	/* The bytes are still there, and only the good ones were sent. */
	char buf[16];
	CHECK_EQ(read(s, buf, sizeof buf), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	close(c);
	close(s);
}

CASE(tcp_zero_length_read_returns_at_once)
{
	int c, s;
	tcp_pair(&c, &s);
	char b;
	/* Nothing queued, blocking socket: still 0 at once. */
	CHECK_EQ(read(s, &b, 0), 0);
	CHECK_EQ(write(c, &b, 0), 0);
	close(c);
	close(s);
}

/* Bytes at offset i of the stream. */
static unsigned char at(size_t i)
{
	return (unsigned char)(i * 7 + i / 4099);
}

CASE(tcp_large_transfer_arrives_intact)
{
	int c, s;
	tcp_pair(&c, &s);
	/* 40 MiB in odd-sized writes and reads, so copies straddle the buffers' ends. */
	const size_t total = 40 << 20;
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		close(s);
		static unsigned char w[200003];
		size_t done = 0;
		while (done < total) {
			size_t n = sizeof w - (done % 977);
			if (n > total - done)
				n = total - done;
			for (size_t i = 0; i < n; i++)
				w[i] = at(done + i);
			ssize_t k = write(c, w, n);
			if (k <= 0)
				_exit(1);
			done += k;
		}
		_exit(0);
	}
	close(c);
	static unsigned char r[131071];
	size_t got = 0;
	int bad = 0;
	for (;;) {
		ssize_t k = read(s, r, sizeof r - (got % 613));
		CHECK_GE(k, 0);
		if (k == 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			bad += r[i] != at(got + i);
		got += k;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(got, total);
	int st;
	CHECK_OK(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(s);
}

CASE(tcp_writer_blocked_on_full_buffer_finishes)
{
	int c, s;
	tcp_pair(&c, &s);
	/* One write larger than the send and receive buffers together (Linux's grow to 4 and
	 * 6 MiB): it blocks until the reader has taken enough, then completes in full. */
	const size_t total = 32 << 20;
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		close(s);
		unsigned char *w = malloc(total);
		for (size_t i = 0; i < total; i++)
			w[i] = at(i);
		_exit(write(c, w, total) == (ssize_t)total ? 0 : 1);
	}
	close(c);
	usleep(100 * 1000);
	static unsigned char r[65536];
	size_t got = 0;
	int bad = 0;
	ssize_t k;
	while ((k = read(s, r, sizeof r)) > 0) {
		for (ssize_t i = 0; i < k; i++)
			bad += r[i] != at(got + i);
		got += k;
	}
	CHECK_EQ(k, 0);
	CHECK_EQ(bad, 0);
	CHECK_EQ(got, total);
	int st;
	CHECK_OK(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(s);
}

/* 100 concurrent TCP connections over loopback moving TOTAL bytes in all: each client
 * sends a pseudo-random stream, the server hashes what it receives and answers with the
 * hash and the byte count, which the client checks against its own. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNS 100
static long long per_conn;
static int port;

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void fill(uint64_t *state, unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = *state;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*state = x;
		memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
	}
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *serve(void *arg)
{
	int fd = (int)(long)arg;
	static __thread unsigned char buf[65536];
	uint64_t h = 0xcbf29ce484222325ULL;
	long long got = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0)
			die("server read");
		if (n == 0)
			break;
		h = fnv(h, buf, n);
		got += n;
	}
	uint64_t reply[2] = {h, (uint64_t)got};
	if (write(fd, reply, sizeof reply) != sizeof reply)
		die("server write");
	close(fd);
	return NULL;
}

static void *acceptor(void *arg)
{
	int l = (int)(long)arg;
	pthread_t t[CONNS];
	for (int i = 0; i < CONNS; i++) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			die("accept");
		pthread_create(&t[i], NULL, serve, (void *)(long)fd);
	}
	for (int i = 0; i < CONNS; i++)
		pthread_join(t[i], NULL);
	return NULL;
}

static int failures;

static void *client(void *arg)
{
	long id = (long)arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect");
	static __thread unsigned char buf[65536];
	uint64_t state = 0x9e3779b97f4a7c15ULL * (id + 1), h = 0xcbf29ce484222325ULL;
	long long left = per_conn;
	while (left > 0) {
		size_t n = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
		fill(&state, buf, n);
		h = fnv(h, buf, n);
		for (size_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, n - off);
			if (w <= 0)
				die("client write");
			off += w;
		}
		left -= n;
	}
	shutdown(fd, SHUT_WR);
	uint64_t reply[2];
	size_t got = 0;
	while (got < sizeof reply) {
		ssize_t n = read(fd, (char *)reply + got, sizeof reply - got);
		if (n <= 0)
			die("client read");
		got += n;
	}
	if (reply[0] != h || reply[1] != (uint64_t)per_conn) {
		fprintf(stderr, "connection %ld: checksum %016llx/%llu, expected %016llx/%lld\n", id,
			(unsigned long long)reply[0], (unsigned long long)reply[1], (unsigned long long)h, per_conn);
		__sync_fetch_and_add(&failures, 1);
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	long long total = argc > 1 ? atoll(argv[1]) : 1000000000LL;
	per_conn = total / CONNS;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, CONNS) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		die("listen");
	port = ntohs(a.sin_port);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_t acc, c[CONNS];
	pthread_create(&acc, NULL, acceptor, (void *)(long)l);
	for (long i = 0; i < CONNS; i++)
		pthread_create(&c[i], NULL, client, (void *)i);
	for (int i = 0; i < CONNS; i++)
		pthread_join(c[i], NULL);
	pthread_join(acc, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "%.2f s, %.1f MB/s\n", s, per_conn * CONNS / s / 1e6);
	if (failures)
		return 1;
	printf("%d connections, %lld bytes, checksums ok\n", CONNS, per_conn * CONNS);
	return 0;
}

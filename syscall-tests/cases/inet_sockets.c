/* AF_INET and AF_INET6 sockets over loopback: TCP (listen/accept/connect, echo, backlog,
 * half-close, resets, non-blocking connect, readiness, MSG_* flags, options) and UDP.
 * Only 127.0.0.1 and ::1 are used: the sandbox has its own loopback, the host's network
 * is never involved. */
#include "harness.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>

static struct sockaddr_in lo4(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static struct sockaddr_in6 lo6(int port)
{
	struct sockaddr_in6 a;
	memset(&a, 0, sizeof a);
	a.sin6_family = AF_INET6;
	a.sin6_port = htons(port);
	a.sin6_addr = in6addr_loopback;
	return a;
}

static int port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &len));
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A TCP listener on 127.0.0.1 (or ::1) with an ephemeral port. */
static int listener(int family, int backlog)
{
	int fd = CHECK_OK(socket(family, SOCK_STREAM, 0));
	if (family == AF_INET) {
		struct sockaddr_in a = lo4(0);
		CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
	} else {
		struct sockaddr_in6 a = lo6(0);
		CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
	}
	CHECK_OK(listen(fd, backlog));
	return fd;
}

static int connect_to(int family, int port)
{
	int fd = CHECK_OK(socket(family, SOCK_STREAM, 0));
	if (family == AF_INET) {
		struct sockaddr_in a = lo4(port);
		CHECK_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
	} else {
		struct sockaddr_in6 a = lo6(port);
		CHECK_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
	}
	return fd;
}

static void write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0)
			FAIL("write: %s", st_errname(errno));
		p += k;
		n -= k;
	}
}

static void read_exact(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t k = read(fd, p, n);
		if (k < 0)
			FAIL("read: %s", st_errname(errno));
		if (k == 0)
			FAIL("read: early EOF, %zu bytes missing", n);
		p += k;
		n -= k;
	}
}

static void echo_family(int family)
{
	int l = listener(family, 4);
	int port = port_of(l);
	CHECK_GT(port, 0);
	int c = connect_to(family, port);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	int s = CHECK_OK(accept(l, (struct sockaddr *)&peer, &plen));
	CHECK_EQ(plen, family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	CHECK_EQ(peer.ss_family, family);
	/* accept's peer is the client's name; the client's peer is the server's name. */
	struct sockaddr_storage cname, sname, cpeer;
	socklen_t n1 = sizeof cname, n2 = sizeof sname, n3 = sizeof cpeer;
	CHECK_OK(getsockname(c, (struct sockaddr *)&cname, &n1));
	CHECK_OK(getsockname(s, (struct sockaddr *)&sname, &n2));
	CHECK_OK(getpeername(c, (struct sockaddr *)&cpeer, &n3));
	CHECK_EQ(n1, plen);
	CHECK_MEMEQ(&cname, &peer, plen);
	CHECK_MEMEQ(&sname, &cpeer, n3);
	CHECK_EQ(port_of(s), port);

	write_all(c, "hello", 5);
	char buf[16];
	read_exact(s, buf, 5);
	CHECK_MEMEQ(buf, "hello", 5);
	CHECK_EQ(send(s, "world!", 6, 0), 6);
	CHECK_EQ(recv(c, buf, 6, MSG_WAITALL), 6);
	CHECK_MEMEQ(buf, "world!", 6);
	close(c);
	CHECK_EQ(read(s, buf, sizeof buf), 0);
	close(s);
	close(l);
}

CASE(tcp_echo_ipv4)
{
	echo_family(AF_INET);
}

CASE(tcp_echo_ipv6)
{
	echo_family(AF_INET6);
}

CASE(tcp_ipv6_listener_takes_ipv4_mapped)
{
	int l = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	int off = 0;
	CHECK_OK(setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off));
	struct sockaddr_in6 any;
	memset(&any, 0, sizeof any);
	any.sin6_family = AF_INET6;
	any.sin6_addr = in6addr_any;
	CHECK_OK(bind(l, (struct sockaddr *)&any, sizeof any));
	CHECK_OK(listen(l, 4));
	int c = connect_to(AF_INET, port_of(l));
	struct sockaddr_in6 peer;
	socklen_t plen = sizeof peer;
	int s = CHECK_OK(accept(l, (struct sockaddr *)&peer, &plen));
	CHECK_EQ(plen, sizeof peer);
	CHECK(IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr));
	CHECK_EQ(peer.sin6_addr.s6_addr[15], 1);
	CHECK_EQ(ntohs(peer.sin6_port), port_of(c));
	close(s);
	close(c);
	close(l);

	/* IPV6_V6ONLY: nobody listens for IPv4 on that port. */
	l = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	int on = 1;
	CHECK_OK(setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on));
	CHECK_OK(bind(l, (struct sockaddr *)&any, sizeof any));
	CHECK_OK(listen(l, 4));
	c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in a = lo4(port_of(l));
	CHECK_ERR(connect(c, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
	close(c);
	close(l);
}

struct bulk {
	int fd;
	size_t n;
};

static void *bulk_writer(void *arg)
{
	struct bulk *b = arg;
	char *buf = malloc(b->n);
	for (size_t i = 0; i < b->n; i++)
		buf[i] = (char)(i * 7 % 251);
	write_all(b->fd, buf, b->n);
	CHECK_OK(shutdown(b->fd, SHUT_WR));
	free(buf);
	return NULL;
}

CASE(tcp_bulk_transfer_and_eof)
{
	int l = listener(AF_INET, 1);
	int c = connect_to(AF_INET, port_of(l));
	int s = CHECK_OK(accept(l, NULL, NULL));
	struct bulk b = { c, 4 << 20 };
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, bulk_writer, &b), 0);
	char *buf = malloc(65536);
	size_t got = 0;
	for (;;) {
		ssize_t k = CHECK_OK(read(s, buf, 65536));
		if (k == 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != (char)((got + i) * 7 % 251))
				FAIL("byte %zu differs", got + i);
		got += k;
	}
	CHECK_EQ(got, b.n);
	CHECK_EQ(pthread_join(th, NULL), 0);
	free(buf);
	close(s);
	close(c);
	close(l);
}

struct server {
	int l;
	int conns;
};

/* Accept `conns` connections and echo each until EOF, one thread per connection. */
static void *echo_conn(void *arg)
{
	int s = (int)(long)arg;
	char buf[256];
	for (;;) {
		ssize_t k = read(s, buf, sizeof buf);
		if (k <= 0)
			break;
		write_all(s, buf, k);
	}
	close(s);
	return NULL;
}

static void *echo_server(void *arg)
{
	struct server *sv = arg;
	pthread_t th[64];
	for (int i = 0; i < sv->conns; i++) {
		int s = CHECK_OK(accept(sv->l, NULL, NULL));
		CHECK_EQ(pthread_create(&th[i], NULL, echo_conn, (void *)(long)s), 0);
	}
	for (int i = 0; i < sv->conns; i++)
		pthread_join(th[i], NULL);
	return NULL;
}

CASE(tcp_many_concurrent_connections)
{
	enum { N = 40 };
	int l = listener(AF_INET, 64);
	int port = port_of(l);
	/* All connect before anything is accepted: the backlog holds them. */
	int c[N];
	for (int i = 0; i < N; i++)
		c[i] = connect_to(AF_INET, port);
	struct server sv = { l, N };
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, echo_server, &sv), 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			char msg[16];
			int n = snprintf(msg, sizeof msg, "c%d.%d", i, round);
			write_all(c[i], msg, n);
		}
		for (int i = 0; i < N; i++) {
			char msg[16], got[16];
			int n = snprintf(msg, sizeof msg, "c%d.%d", i, round);
			read_exact(c[i], got, n);
			CHECK_MEMEQ(got, msg, n);
		}
	}
	for (int i = 0; i < N; i++)
		close(c[i]);
	CHECK_EQ(pthread_join(th, NULL), 0);
	close(l);
}

CASE(tcp_connect_refused)
{
	/* A bound port nobody listens on. */
	int b = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in a = lo4(0);
	CHECK_OK(bind(b, (struct sockaddr *)&a, sizeof a));
	a = lo4(port_of(b));
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_ERR(connect(c, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
	/* The socket may connect again after a failure. */
	CHECK_OK(listen(b, 1));
	CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
	CHECK_ERR(connect(c, (struct sockaddr *)&a, sizeof a), EISCONN);
	close(c);
	close(b);

	c = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	struct sockaddr_in6 a6 = lo6(ntohs(a.sin_port));
	CHECK_ERR(connect(c, (struct sockaddr *)&a6, sizeof a6), ECONNREFUSED);
	close(c);
}

CASE(tcp_bind_addr_in_use_and_reuseaddr)
{
	int a = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in sa = lo4(0);
	CHECK_OK(bind(a, (struct sockaddr *)&sa, sizeof sa));
	int port = port_of(a);
	sa = lo4(port);
	int b = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_ERR(bind(b, (struct sockaddr *)&sa, sizeof sa), EADDRINUSE);
	struct sockaddr_in any = sa;
	any.sin_addr.s_addr = htonl(INADDR_ANY);
	CHECK_ERR(bind(b, (struct sockaddr *)&any, sizeof any), EADDRINUSE);
	/* With SO_REUSEADDR on both, both may bind; only one may listen. */
	int on = 1;
	CHECK_OK(setsockopt(a, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on));
	CHECK_OK(setsockopt(b, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on));
	CHECK_OK(bind(b, (struct sockaddr *)&sa, sizeof sa));
	CHECK_OK(listen(a, 1));
	CHECK_ERR(listen(b, 1), EADDRINUSE);
	/* Binding twice, and binding an address that is not ours. */
	CHECK_ERR(bind(a, (struct sockaddr *)&sa, sizeof sa), EINVAL);
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in far = lo4(0);
	far.sin_addr.s_addr = inet_addr("192.0.2.1");
	CHECK_ERR(bind(c, (struct sockaddr *)&far, sizeof far), EADDRNOTAVAIL);
	/* A listener closed: its port is free again. */
	close(a);
	close(b);
	CHECK_OK(bind(c, (struct sockaddr *)&sa, sizeof sa));
	CHECK_EQ(port_of(c), port);
	close(c);

	/* Accepted connections keep the port: a new listener needs SO_REUSEADDR. */
	int l = listener(AF_INET, 1);
	sa = lo4(port_of(l));
	int cl = connect_to(AF_INET, port_of(l));
	int sv = CHECK_OK(accept(l, NULL, NULL));
	close(l);
	int l2 = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_ERR(bind(l2, (struct sockaddr *)&sa, sizeof sa), EADDRINUSE);
	CHECK_OK(setsockopt(l2, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on));
	CHECK_ERR(bind(l2, (struct sockaddr *)&sa, sizeof sa), EADDRINUSE);
	close(l2);
	close(cl);
	close(sv);
}

CASE(tcp_nonblocking_connect)
{
	int l = listener(AF_INET, 4);
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	struct sockaddr_in a = lo4(port_of(l));
	int r = connect(c, (struct sockaddr *)&a, sizeof a);
	CHECK(r == 0 || errno == EINPROGRESS);
	struct pollfd p = { c, POLLOUT, 0 };
	CHECK_EQ(poll(&p, 1, 5000), 1);
	CHECK_EQ(p.revents & (POLLOUT | POLLERR | POLLHUP), POLLOUT);
	int err = -1;
	socklen_t len = sizeof err;
	CHECK_OK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
	CHECK_EQ(err, 0);
	int s = CHECK_OK(accept(l, NULL, NULL));
	CHECK_EQ(write(c, "x", 1), 1);
	char ch;
	CHECK_EQ(read(s, &ch, 1), 1);
	close(s);
	close(c);

	/* Refused: the error comes through SO_ERROR, once. */
	int port = port_of(l);
	close(l);
	c = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	a = lo4(port);
	r = connect(c, (struct sockaddr *)&a, sizeof a);
	CHECK(r == -1);
	if (errno == EINPROGRESS) {
		p.fd = c;
		p.events = POLLOUT;
		CHECK_EQ(poll(&p, 1, 5000), 1);
		CHECK_EQ(p.revents & (POLLOUT | POLLERR | POLLHUP), POLLOUT | POLLERR | POLLHUP);
		CHECK_OK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
		CHECK_EQ(err, ECONNREFUSED);
		CHECK_OK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
		CHECK_EQ(err, 0);
		/* connect reports the failed attempt (its error already taken), then the
		 * socket may try again. */
		CHECK_ERR(connect(c, (struct sockaddr *)&a, sizeof a), ECONNABORTED);
		r = connect(c, (struct sockaddr *)&a, sizeof a);
		CHECK(r == -1 && (errno == EINPROGRESS || errno == ECONNREFUSED));
	} else {
		CHECK_EQ(errno, ECONNREFUSED);
	}
	close(c);
}

CASE(tcp_shutdown_half_close)
{
	int l = listener(AF_INET, 1);
	int c = connect_to(AF_INET, port_of(l));
	int s = CHECK_OK(accept(l, NULL, NULL));
	write_all(c, "request", 7);
	CHECK_OK(shutdown(c, SHUT_WR));
	CHECK_ERR(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
	char buf[16];
	read_exact(s, buf, 7);
	CHECK_EQ(read(s, buf, sizeof buf), 0);
	struct pollfd p = { s, POLLIN | POLLOUT | POLLRDHUP, 0 };
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLIN | POLLOUT | POLLRDHUP);
	/* The other direction still flows. */
	write_all(s, "response", 8);
	read_exact(c, buf, 8);
	CHECK_MEMEQ(buf, "response", 8);
	close(s);
	CHECK_EQ(read(c, buf, sizeof buf), 0);
	p.fd = c;
	CHECK_EQ(poll(&p, 1, 1000), 1);
	CHECK_EQ(p.revents & (POLLIN | POLLHUP | POLLRDHUP), POLLIN | POLLHUP | POLLRDHUP);
	/* Bad arguments and unconnected sockets. */
	CHECK_ERR(shutdown(c, 7), EINVAL);
	int u = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_ERR(shutdown(u, SHUT_RDWR), ENOTCONN);
	close(u);
	close(c);
	close(l);
}

static volatile sig_atomic_t got_sigpipe;
static void on_sigpipe(int sig)
{
	(void)sig;
	got_sigpipe = 1;
}

CASE(tcp_write_after_peer_closed_epipe_sigpipe)
{
	st_handle(SIGPIPE, on_sigpipe, 0);
	int l = listener(AF_INET, 1);
	int c = connect_to(AF_INET, port_of(l));
	int s = CHECK_OK(accept(l, NULL, NULL));
	close(s);
	char ch;
	CHECK_EQ(read(c, &ch, 1), 0);
	/* The first write reaches the closed peer, which resets; then EPIPE. */
	int n = 0;
	ssize_t r;
	while ((r = write(c, "x", 1)) == 1 && n++ < 100)
		st_sleep_ms(10);
	CHECK_EQ(r, -1);
	CHECK_EQ(errno, EPIPE);
	CHECK_EQ(got_sigpipe, 1);
	got_sigpipe = 0;
	CHECK_ERR(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
	CHECK_EQ(got_sigpipe, 0);
	close(c);
	close(l);
}

CASE(tcp_close_with_unread_data_resets)
{
	int l = listener(AF_INET, 1);
	int c = connect_to(AF_INET, port_of(l));
	int s = CHECK_OK(accept(l, NULL, NULL));
	write_all(c, "unread", 6);
	int avail = 0;
	for (int i = 0; i < 100 && avail < 6; i++) {
		CHECK_OK(ioctl(s, FIONREAD, &avail));
		if (avail < 6)
			st_sleep_ms(10);
	}
	CHECK_EQ(avail, 6);
	close(s);
	char buf[8];
	CHECK_ERR(read(c, buf, sizeof buf), ECONNRESET);
	CHECK_EQ(read(c, buf, sizeof buf), 0);
	close(c);
	close(l);
}

CASE(tcp_poll_readiness)
{
	int fresh = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct pollfd p = { fresh, POLLIN | POLLOUT, 0 };
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLOUT | POLLHUP);
	close(fresh);

	int l = listener(AF_INET, 4);
	p.fd = l;
	p.events = POLLIN | POLLOUT;
	CHECK_EQ(poll(&p, 1, 0), 0);
	int c = connect_to(AF_INET, port_of(l));
	CHECK_EQ(poll(&p, 1, 1000), 1);
	CHECK_EQ(p.revents, POLLIN);
	int s = CHECK_OK(accept(l, NULL, NULL));
	CHECK_EQ(poll(&p, 1, 0), 0);

	p.fd = s;
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLOUT);
	write_all(c, "abc", 3);
	CHECK_EQ(poll(&p, 1, 1000), 1);
	CHECK_EQ(p.revents, POLLIN | POLLOUT);

	/* select agrees. */
	fd_set r, w;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(s, &r);
	FD_SET(s, &w);
	struct timeval tv = { 1, 0 };
	CHECK_EQ(select(s + 1, &r, &w, NULL, &tv), 2);

	/* A reader blocked in poll is woken by data. */
	char buf[8];
	read_exact(s, buf, 3);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(100);
		write_all(c, "late", 4);
		_exit(0);
	}
	p.events = POLLIN;
	CHECK_EQ(poll(&p, 1, 5000), 1);
	CHECK_EQ(p.revents, POLLIN);
	CHECK_EXITED(st_wait(pid), 0);
	read_exact(s, buf, 4);
	close(c);
	close(s);
	close(l);
}

CASE(tcp_epoll_edge_and_level)
{
	int l = listener(AF_INET, 4);
	int ep = CHECK_OK(epoll_create1(0));
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
	struct epoll_event out[4];
	CHECK_EQ(epoll_wait(ep, out, 4, 0), 0);
	int c = connect_to(AF_INET, port_of(l));
	CHECK_EQ(epoll_wait(ep, out, 4, 1000), 1);
	CHECK_EQ(out[0].data.u32, 1);
	int s = CHECK_OK(accept4(l, NULL, NULL, SOCK_NONBLOCK));
	CHECK_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
	ev.data.u32 = 2;
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
	CHECK_EQ(epoll_wait(ep, out, 4, 0), 0);
	write_all(c, "one", 3);
	CHECK_EQ(epoll_wait(ep, out, 4, 1000), 1);
	CHECK_EQ(out[0].data.u32, 2);
	CHECK_EQ(out[0].events, EPOLLIN);
	/* Edge-triggered: no new event until more data arrives. */
	CHECK_EQ(epoll_wait(ep, out, 4, 0), 0);
	write_all(c, "two", 3);
	CHECK_EQ(epoll_wait(ep, out, 4, 1000), 1);
	char buf[16];
	CHECK_EQ(read(s, buf, sizeof buf), 6);
	CHECK_ERR(read(s, buf, sizeof buf), EAGAIN);
	close(c);
	CHECK_EQ(epoll_wait(ep, out, 4, 1000), 1);
	CHECK_EQ(out[0].events, EPOLLIN | EPOLLRDHUP);
	CHECK_EQ(read(s, buf, sizeof buf), 0);
	close(s);
	close(l);
	close(ep);
}

struct slow {
	int fd;
};

static void *slow_writer(void *arg)
{
	struct slow *w = arg;
	st_sleep_ms(50);
	write_all(w->fd, "abc", 3);
	st_sleep_ms(50);
	write_all(w->fd, "defgh", 5);
	return NULL;
}

CASE(tcp_msg_peek_dontwait_waitall)
{
	int l = listener(AF_INET6, 1);
	int c = connect_to(AF_INET6, port_of(l));
	int s = CHECK_OK(accept(l, NULL, NULL));
	char buf[16];
	CHECK_ERR(recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	CHECK_ERR(recv(s, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT), EAGAIN);
	/* Even an empty request waits for data. */
	CHECK_ERR(recv(s, buf, 0, MSG_DONTWAIT), EAGAIN);
	CHECK_EQ(read(s, buf, 0), 0);
	write_all(c, "peekaboo", 8);
	int avail = 0;
	for (int i = 0; i < 100 && avail < 8; i++) {
		CHECK_OK(ioctl(s, FIONREAD, &avail));
		if (avail < 8)
			st_sleep_ms(10);
	}
	CHECK_EQ(avail, 8);
	CHECK_EQ(recv(s, buf, 4, MSG_PEEK), 4);
	CHECK_MEMEQ(buf, "peek", 4);
	CHECK_EQ(recv(s, buf, 8, MSG_PEEK), 8);
	CHECK_OK(ioctl(s, FIONREAD, &avail));
	CHECK_EQ(avail, 8);
	CHECK_EQ(recv(s, buf, 4, 0), 4);
	CHECK_MEMEQ(buf, "peek", 4);
	CHECK_EQ(recv(s, buf, sizeof buf, 0), 4);
	CHECK_MEMEQ(buf, "aboo", 4);
	/* MSG_WAITALL waits for the whole request across writes. */
	struct slow w = { c };
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, slow_writer, &w), 0);
	CHECK_EQ(recv(s, buf, 8, MSG_WAITALL), 8);
	CHECK_MEMEQ(buf, "abcdefgh", 8);
	CHECK_EQ(pthread_join(th, NULL), 0);
	/* ... and returns short at EOF. */
	write_all(c, "xy", 2);
	close(c);
	CHECK_EQ(recv(s, buf, 8, MSG_WAITALL), 2);
	close(s);
	close(l);
}

static void on_alarm(int sig)
{
	(void)sig;
}

CASE(tcp_blocking_calls_interrupted)
{
	st_handle(SIGALRM, on_alarm, 0);
	int l = listener(AF_INET, 1);
	struct itimerval it = { { 0, 0 }, { 0, 100000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	CHECK_ERR(accept(l, NULL, NULL), EINTR);
	int c = connect_to(AF_INET, port_of(l));
	int s = CHECK_OK(accept(l, NULL, NULL));
	char buf[4];
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	CHECK_ERR(read(s, buf, sizeof buf), EINTR);
	/* SO_RCVTIMEO: EAGAIN after the timeout. */
	struct timeval tv = { 0, 100000 };
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	long long t0 = st_mono_ms();
	CHECK_ERR(recv(s, buf, sizeof buf, 0), EAGAIN);
	CHECK_GE(st_mono_ms() - t0, 90);
	close(s);
	close(c);
	close(l);
}

CASE(tcp_socket_options)
{
	int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	int v = -1;
	socklen_t len = sizeof v;
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len));
	CHECK_EQ(v, SOCK_STREAM);
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len));
	CHECK_EQ(v, AF_INET);
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len));
	CHECK_EQ(v, IPPROTO_TCP);
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len));
	CHECK_EQ(v, 0);
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len));
	CHECK_EQ(v, 0);
	int on = 1, off = 0;
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &len));
	CHECK_EQ(v, 0);
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on));
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &len));
	CHECK_EQ(v, 1);
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on));
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len));
	CHECK_EQ(v, 1);
	CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len));
	CHECK_EQ(v, 0);
	CHECK_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on));
	CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len));
	CHECK_EQ(v, 1);
	CHECK_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &off, sizeof off));
	CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len));
	CHECK_EQ(v, 0);
	/* Buffer sizes are doubled, as Linux does. */
	int sz = 8192;
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz));
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len));
	CHECK_EQ(v, 16384);
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz));
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len));
	CHECK_EQ(v, 16384);
	CHECK_OK(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &sz, sizeof sz));
	CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len));
	CHECK_EQ(v, 8192);
	CHECK_ERR(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &off, sizeof off), EINVAL);
	CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, 2), EINVAL);
	CHECK_ERR(getsockopt(fd, SOL_SOCKET, 12345, &v, &len), ENOPROTOOPT);
	CHECK_ERR(setsockopt(fd, IPPROTO_TCP, 12345, &on, sizeof on), ENOPROTOOPT);
	/* IPv6 options on an IPv4 socket; TCP options on UDP sockets. */
	CHECK_ERR(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on), ENOPROTOOPT);
	CHECK_ERR(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len), EOPNOTSUPP);
	int u4 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int u6 = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	CHECK_ERR(setsockopt(u4, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on), ENOPROTOOPT);
	CHECK_ERR(getsockopt(u4, IPPROTO_TCP, TCP_NODELAY, &v, &len), EOPNOTSUPP);
	CHECK_ERR(setsockopt(u6, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on), ENOPROTOOPT);
	CHECK_ERR(getsockopt(u6, IPPROTO_TCP, TCP_NODELAY, &v, &len), ENOPROTOOPT);
	CHECK_OK(getsockopt(u4, IPPROTO_IP, IP_TTL, &v, &len));
	CHECK_EQ(v, 64);
	close(u4);
	close(u6);
	/* A short length copies part of the value and reports it. */
	char c1 = 0x55;
	len = 1;
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &c1, &len));
	CHECK_EQ(len, 1);
	CHECK_EQ(c1, SOCK_STREAM);
	CHECK_OK(listen(fd, 1));
	len = sizeof v;
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len));
	CHECK_EQ(v, 1);
	close(fd);

	int fd6 = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	CHECK_OK(getsockopt(fd6, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len));
	CHECK_EQ(v, 0);
	CHECK_OK(setsockopt(fd6, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on));
	CHECK_OK(getsockopt(fd6, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len));
	CHECK_EQ(v, 1);
	CHECK_OK(getsockopt(fd6, SOL_SOCKET, SO_DOMAIN, &v, &len));
	CHECK_EQ(v, AF_INET6);
	close(fd6);
}

CASE(tcp_errors)
{
	CHECK_ERR(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
	CHECK_ERR(socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP), EPROTONOSUPPORT);
	CHECK_ERR(socket(AF_INET, SOCK_SEQPACKET, 0), ESOCKTNOSUPPORT);
	int sv[2];
	CHECK_ERR(socketpair(AF_INET, SOCK_STREAM, 0, sv), EOPNOTSUPP);
	int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(S_ISSOCK(st.st_mode));
	struct sockaddr_in a = lo4(0);
	CHECK_ERR(bind(fd, (struct sockaddr *)&a, sizeof a - 1), EINVAL);
	struct sockaddr_in6 a6 = lo6(0);
	CHECK_ERR(bind(fd, (struct sockaddr *)&a6, sizeof a6), EAFNOSUPPORT);
	char buf[4];
	CHECK_ERR(recv(fd, buf, sizeof buf, 0), ENOTCONN);
	CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
	struct sockaddr_in peer;
	socklen_t len = sizeof peer;
	CHECK_ERR(getpeername(fd, (struct sockaddr *)&peer, &len), ENOTCONN);
	/* An unbound socket's name is the wildcard address, port 0. */
	CHECK_OK(getsockname(fd, (struct sockaddr *)&peer, &len));
	CHECK_EQ(len, sizeof peer);
	CHECK_EQ(peer.sin_family, AF_INET);
	CHECK_EQ(peer.sin_port, 0);
	CHECK_EQ(peer.sin_addr.s_addr, htonl(INADDR_ANY));
	CHECK_ERR(accept(fd, NULL, NULL), EINVAL);
	/* listen on an unbound socket picks a port. */
	CHECK_OK(listen(fd, 1));
	CHECK_GT(port_of(fd), 0);
	CHECK_ERR(recv(fd, buf, sizeof buf, 0), ENOTCONN);
	a = lo4(port_of(fd));
	CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EISCONN);
	CHECK_ERR(accept4(fd, NULL, NULL, 0x1234), EINVAL);
	close(fd);
}

CASE(udp_echo_ipv4_and_ipv6)
{
	for (int fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		int s = CHECK_OK(socket(family, SOCK_DGRAM, 0));
		int c = CHECK_OK(socket(family, SOCK_DGRAM, 0));
		struct sockaddr_storage sa;
		socklen_t salen;
		if (family == AF_INET) {
			struct sockaddr_in a = lo4(0);
			CHECK_OK(bind(s, (struct sockaddr *)&a, sizeof a));
			a = lo4(port_of(s));
			memcpy(&sa, &a, sizeof a);
			salen = sizeof a;
		} else {
			struct sockaddr_in6 a = lo6(0);
			CHECK_OK(bind(s, (struct sockaddr *)&a, sizeof a));
			a = lo6(port_of(s));
			memcpy(&sa, &a, sizeof a);
			salen = sizeof a;
		}
		CHECK_EQ(sendto(c, "ping", 4, 0, (struct sockaddr *)&sa, salen), 4);
		CHECK_EQ(sendto(c, "second", 6, 0, (struct sockaddr *)&sa, salen), 6);
		/* The sender got an ephemeral port. */
		CHECK_GT(port_of(c), 0);
		char buf[16];
		struct sockaddr_storage from;
		socklen_t flen = sizeof from;
		CHECK_EQ(recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 4);
		CHECK_MEMEQ(buf, "ping", 4);
		CHECK_EQ(flen, salen);
		CHECK_EQ(from.ss_family, family);
		int avail = 0;
		CHECK_OK(ioctl(s, FIONREAD, &avail));
		CHECK_EQ(avail, 6);
		/* A short buffer truncates; MSG_TRUNC reports the datagram's size. */
		CHECK_EQ(recv(s, buf, 2, MSG_PEEK), 2);
		CHECK_EQ(recv(s, buf, 2, MSG_TRUNC), 6);
		CHECK_ERR(recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
		CHECK_EQ(sendto(s, "pong", 4, 0, (struct sockaddr *)&from, flen), 4);
		CHECK_EQ(recv(c, buf, sizeof buf, 0), 4);
		CHECK_MEMEQ(buf, "pong", 4);

		/* recvmsg reports truncation in msg_flags. */
		CHECK_EQ(sendto(c, "truncated", 9, 0, (struct sockaddr *)&sa, salen), 9);
		struct iovec iov = { buf, 3 };
		struct msghdr mh;
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_name = &from;
		mh.msg_namelen = sizeof from;
		CHECK_EQ(recvmsg(s, &mh, 0), 3);
		CHECK_EQ(mh.msg_flags & MSG_TRUNC, MSG_TRUNC);
		CHECK_EQ(mh.msg_namelen, salen);

		/* Connected: send/recv without addresses; others are filtered out. */
		CHECK_OK(connect(c, (struct sockaddr *)&sa, salen));
		struct sockaddr_storage cpeer;
		socklen_t cplen = sizeof cpeer;
		CHECK_OK(getpeername(c, (struct sockaddr *)&cpeer, &cplen));
		CHECK_EQ(cplen, salen);
		CHECK_EQ(send(c, "conn", 4, 0), 4);
		CHECK_EQ(recv(s, buf, sizeof buf, 0), 4);
		int other = CHECK_OK(socket(family, SOCK_DGRAM, 0));
		struct sockaddr_storage cname;
		socklen_t cnlen = sizeof cname;
		CHECK_OK(getsockname(c, (struct sockaddr *)&cname, &cnlen));
		CHECK_EQ(sendto(other, "noise", 5, 0, (struct sockaddr *)&cname, cnlen), 5);
		CHECK_EQ(sendto(s, "reply", 5, 0, (struct sockaddr *)&cname, cnlen), 5);
		CHECK_EQ(recv(c, buf, sizeof buf, 0), 5);
		CHECK_MEMEQ(buf, "reply", 5);
		CHECK_EQ(write(c, "w", 1), 1);
		CHECK_EQ(read(s, buf, sizeof buf), 1);
		close(other);
		close(c);
		close(s);
	}
}

CASE(udp_errors_and_readiness)
{
	int u = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int v = 0;
	socklen_t len = sizeof v;
	CHECK_OK(getsockopt(u, SOL_SOCKET, SO_TYPE, &v, &len));
	CHECK_EQ(v, SOCK_DGRAM);
	CHECK_OK(getsockopt(u, SOL_SOCKET, SO_PROTOCOL, &v, &len));
	CHECK_EQ(v, IPPROTO_UDP);
	CHECK_ERR(send(u, "x", 1, 0), EDESTADDRREQ);
	CHECK_ERR(listen(u, 1), EOPNOTSUPP);
	CHECK_ERR(accept(u, NULL, NULL), EOPNOTSUPP);
	CHECK_ERR(shutdown(u, SHUT_RD), ENOTCONN);
	/* send bound the socket to an ephemeral port even though it failed. */
	struct sockaddr_in a = lo4(0);
	CHECK_GT(port_of(u), 0);
	CHECK_ERR(bind(u, (struct sockaddr *)&a, sizeof a), EINVAL);
	close(u);
	u = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_OK(bind(u, (struct sockaddr *)&a, sizeof a));
	int u2 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	a = lo4(port_of(u));
	CHECK_ERR(bind(u2, (struct sockaddr *)&a, sizeof a), EADDRINUSE);
	static char big[70000];
	CHECK_ERR(sendto(u2, big, sizeof big, 0, (struct sockaddr *)&a, sizeof a), EMSGSIZE);
	struct pollfd p = { u, POLLIN | POLLOUT, 0 };
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLOUT);
	CHECK_EQ(sendto(u2, "d", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(poll(&p, 1, 1000), 1);
	CHECK_EQ(p.revents, POLLIN | POLLOUT);
	/* A zero-length datagram is a datagram. */
	char buf[4];
	CHECK_EQ(recv(u, buf, sizeof buf, 0), 1);
	CHECK_EQ(sendto(u2, "", 0, 0, (struct sockaddr *)&a, sizeof a), 0);
	CHECK_EQ(recv(u, buf, sizeof buf, 0), 0);
	/* AF_UNSPEC dissolves a UDP association. */
	CHECK_OK(connect(u2, (struct sockaddr *)&a, sizeof a));
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	CHECK_OK(connect(u2, &un, sizeof un));
	CHECK_ERR(send(u2, "x", 1, 0), EDESTADDRREQ);
	close(u2);
	close(u);
}

CASE(tcp_iovecs_linger_and_wildcard_connect)
{
	int l = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in any = lo4(0);
	any.sin_addr.s_addr = htonl(INADDR_ANY);
	CHECK_OK(bind(l, (struct sockaddr *)&any, sizeof any));
	CHECK_OK(listen(l, 2));
	/* Connecting to the wildcard address reaches this host. */
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	any.sin_port = htons(port_of(l));
	CHECK_OK(connect(c, (struct sockaddr *)&any, sizeof any));
	struct sockaddr_in name;
	socklen_t len = sizeof name;
	CHECK_OK(getsockname(c, (struct sockaddr *)&name, &len));
	CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	CHECK_GE(ntohs(name.sin_port), 1024);
	int s = CHECK_OK(accept(l, NULL, NULL));

	/* writev / sendmsg gather, readv / recvmsg scatter. */
	struct iovec w[3] = { { "ab", 2 }, { "", 0 }, { "cdef", 4 } };
	CHECK_EQ(writev(c, w, 3), 6);
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = w;
	mh.msg_iovlen = 3;
	CHECK_EQ(sendmsg(c, &mh, 0), 6);
	char b1[3], b2[9];
	struct iovec r[2] = { { b1, 3 }, { b2, 9 } };
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = r;
	mh.msg_iovlen = 2;
	CHECK_EQ(recvmsg(s, &mh, MSG_WAITALL), 12);
	CHECK_MEMEQ(b1, "abc", 3);
	CHECK_MEMEQ(b2, "defabcdef", 9);
	CHECK_EQ(mh.msg_flags, 0);

	/* SO_LINGER with a zero timeout: close resets the connection. */
	struct linger lg = { 1, 0 };
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
	len = sizeof lg;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &len));
	CHECK_EQ(lg.l_onoff, 1);
	close(s);
	char ch;
	CHECK_ERR(read(c, &ch, 1), ECONNRESET);
	close(c);
	close(l);
}

CASE(bind_privileged_port_needs_capability)
{
	IN_CHILD({
		st_drop_privileges();
		int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
		struct sockaddr_in a = lo4(1023);
		CHECK_ERR(bind(fd, (struct sockaddr *)&a, sizeof a), EACCES);
		int u = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
		struct sockaddr_in6 a6 = lo6(80);
		CHECK_ERR(bind(u, (struct sockaddr *)&a6, sizeof a6), EACCES);
		/* Port 0 and unprivileged ports are fine. */
		a = lo4(0);
		CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
		close(u);
		close(fd);
	});
}

static volatile sig_atomic_t alarms;
static void count_alarm(int sig)
{
	(void)sig;
	alarms++;
}

CASE(tcp_accept_restarts_with_sa_restart)
{
	st_handle(SIGALRM, count_alarm, SA_RESTART);
	int l = listener(AF_INET, 1);
	int port = port_of(l);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(300);
		int c = connect_to(AF_INET, port);
		write_all(c, "late", 4);
		close(c);
		_exit(0);
	}
	struct itimerval it = { { 0, 0 }, { 0, 50000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	/* The handler runs and accept carries on until the connection comes. */
	int s = CHECK_OK(accept(l, NULL, NULL));
	CHECK_EQ(alarms, 1);
	char buf[8];
	CHECK_EQ(recv(s, buf, sizeof buf, MSG_WAITALL), 4);
	CHECK_MEMEQ(buf, "late", 4);
	CHECK_EXITED(st_wait(pid), 0);
	close(s);
	close(l);
}

CASE(udp_sendmmsg_recvmmsg_and_blocking_recv)
{
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in a = lo4(0);
	CHECK_OK(bind(s, (struct sockaddr *)&a, sizeof a));
	a = lo4(port_of(s));
	int c = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
	struct iovec iov[3] = { { "one", 3 }, { "three", 5 }, { "xy", 2 } };
	struct mmsghdr out[3];
	memset(out, 0, sizeof out);
	for (int i = 0; i < 3; i++) {
		out[i].msg_hdr.msg_iov = &iov[i];
		out[i].msg_hdr.msg_iovlen = 1;
	}
	CHECK_EQ(sendmmsg(c, out, 3, 0), 3);
	CHECK_EQ(out[1].msg_len, 5);
	char bufs[3][8];
	struct iovec riov[3];
	struct mmsghdr in[3];
	struct sockaddr_in from[3];
	memset(in, 0, sizeof in);
	for (int i = 0; i < 3; i++) {
		riov[i].iov_base = bufs[i];
		riov[i].iov_len = sizeof bufs[i];
		in[i].msg_hdr.msg_iov = &riov[i];
		in[i].msg_hdr.msg_iovlen = 1;
		in[i].msg_hdr.msg_name = &from[i];
		in[i].msg_hdr.msg_namelen = sizeof from[i];
	}
	CHECK_EQ(recvmmsg(s, in, 3, MSG_WAITFORONE, NULL), 3);
	CHECK_EQ(in[0].msg_len, 3);
	CHECK_EQ(in[1].msg_len, 5);
	CHECK_EQ(in[2].msg_len, 2);
	CHECK_MEMEQ(bufs[1], "three", 5);
	CHECK_EQ(from[2].sin_port, htons(port_of(c)));
	CHECK_EQ(from[2].sin_addr.s_addr, htonl(INADDR_LOOPBACK));

	/* A blocked receiver is woken by a datagram from another process. */
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(100);
		CHECK_EQ(send(c, "wake", 4, 0), 4);
		_exit(0);
	}
	char buf[8];
	CHECK_EQ(recv(s, buf, sizeof buf, 0), 4);
	CHECK_MEMEQ(buf, "wake", 4);
	CHECK_EXITED(st_wait(pid), 0);
	close(c);
	close(s);
}

CASE(loopback_net_is_all_local)
{
	/* Every address of 127.0.0.0/8 is this host's. */
	int l = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in a = lo4(0);
	a.sin_addr.s_addr = inet_addr("127.0.0.2");
	CHECK_OK(bind(l, (struct sockaddr *)&a, sizeof a));
	CHECK_OK(listen(l, 1));
	a.sin_port = htons(port_of(l));
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
	struct sockaddr_in name;
	socklen_t len = sizeof name;
	CHECK_OK(getsockname(c, (struct sockaddr *)&name, &len));
	char txt[32];
	inet_ntop(AF_INET, &name.sin_addr, txt, sizeof txt);
	CHECK_STREQ(txt, "127.0.0.1");
	/* The listener took only its own address. */
	struct sockaddr_in other = a;
	other.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int d = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_ERR(connect(d, (struct sockaddr *)&other, sizeof other), ECONNREFUSED);
	int s = CHECK_OK(accept(l, NULL, NULL));
	CHECK_OK(getsockname(s, (struct sockaddr *)&name, &len));
	inet_ntop(AF_INET, &name.sin_addr, txt, sizeof txt);
	CHECK_STREQ(txt, "127.0.0.2");
	/* UDP too. */
	int u = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in ua = lo4(0);
	ua.sin_addr.s_addr = inet_addr("127.9.9.9");
	CHECK_OK(bind(u, (struct sockaddr *)&ua, sizeof ua));
	ua.sin_port = htons(port_of(u));
	int v = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_EQ(sendto(v, "u", 1, 0, (struct sockaddr *)&ua, sizeof ua), 1);
	char ch;
	CHECK_EQ(recv(u, &ch, 1, 0), 1);
	close(v);
	close(u);
	close(s);
	close(d);
	close(c);
	close(l);
}

CASE(udp_connected_port_unreachable_refused)
{
	for (int fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		/* A port nobody has bound (any more). */
		int gone = CHECK_OK(socket(family, SOCK_DGRAM, 0));
		struct sockaddr_storage to;
		socklen_t tolen;
		if (family == AF_INET) {
			struct sockaddr_in a = lo4(0);
			CHECK_OK(bind(gone, (struct sockaddr *)&a, sizeof a));
			a = lo4(port_of(gone));
			memcpy(&to, &a, sizeof a);
			tolen = sizeof a;
		} else {
			struct sockaddr_in6 a = lo6(0);
			CHECK_OK(bind(gone, (struct sockaddr *)&a, sizeof a));
			a = lo6(port_of(gone));
			memcpy(&to, &a, sizeof a);
			tolen = sizeof a;
		}
		close(gone);
		int c = CHECK_OK(socket(family, SOCK_DGRAM, 0));
		CHECK_OK(connect(c, (struct sockaddr *)&to, tolen));
		CHECK_EQ(send(c, "x", 1, 0), 1);
		struct pollfd p = { c, POLLIN, 0 };
		CHECK_EQ(poll(&p, 1, 1000), 1);
		CHECK_EQ(p.revents, POLLERR);
		char buf[4];
		CHECK_ERR(recv(c, buf, sizeof buf, 0), ECONNREFUSED);
		CHECK_ERR(recv(c, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
		/* Again, taken by SO_ERROR this time. */
		CHECK_EQ(send(c, "x", 1, 0), 1);
		CHECK_EQ(poll(&p, 1, 1000), 1);
		int err = 0;
		socklen_t len = sizeof err;
		CHECK_OK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
		CHECK_EQ(err, ECONNREFUSED);
		CHECK_EQ(poll(&p, 1, 0), 0);
		/* Unconnected senders do not hear about it. */
		int u = CHECK_OK(socket(family, SOCK_DGRAM, 0));
		CHECK_EQ(sendto(u, "x", 1, 0, (struct sockaddr *)&to, tolen), 1);
		p.fd = u;
		CHECK_EQ(poll(&p, 1, 100), 0);
		close(u);
		close(c);
	}
}

CASE(tcp_connect_af_unspec_disconnects)
{
	int l = listener(AF_INET, 4);
	int port = port_of(l);
	int c = connect_to(AF_INET, port);
	int s = CHECK_OK(accept(l, NULL, NULL));
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	CHECK_OK(connect(c, &un, sizeof un));
	char ch;
	CHECK_ERR(read(s, &ch, 1), ECONNRESET);
	struct sockaddr_in peer;
	socklen_t len = sizeof peer;
	CHECK_ERR(getpeername(c, (struct sockaddr *)&peer, &len), ENOTCONN);
	/* Unconnected again: it may connect anew. */
	struct sockaddr_in a = lo4(port);
	CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
	int s2 = CHECK_OK(accept(l, NULL, NULL));
	CHECK_EQ(write(c, "k", 1), 1);
	CHECK_EQ(read(s2, &ch, 1), 1);
	/* A listener stops listening: with AF_UNSPEC, and with shutdown(SHUT_RD). */
	CHECK_OK(connect(l, &un, sizeof un));
	CHECK_ERR(accept(l, NULL, NULL), EINVAL);
	int d = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_ERR(connect(d, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
	close(d);
	int l2 = listener(AF_INET, 1);
	CHECK_OK(shutdown(l2, SHUT_WR));
	CHECK_OK(shutdown(l2, SHUT_RD));
	CHECK_ERR(accept(l2, NULL, NULL), EINVAL);
	close(l2);
	close(s2);
	close(s);
	close(c);
	close(l);
}

CASE(udp_ipv6_socket_takes_ipv4_destinations)
{
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in a = lo4(0);
	CHECK_OK(bind(s, (struct sockaddr *)&a, sizeof a));
	a = lo4(port_of(s));
	int u6 = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	/* bind is strict about the family; sendto and connect take sockaddr_in. */
	CHECK_ERR(bind(u6, (struct sockaddr *)&a, sizeof a), EINVAL);
	CHECK_EQ(sendto(u6, "v4", 2, 0, (struct sockaddr *)&a, sizeof a), 2);
	char buf[4];
	struct sockaddr_in from;
	socklen_t flen = sizeof from;
	CHECK_EQ(recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 2);
	CHECK_EQ(ntohs(from.sin_port), port_of(u6));
	CHECK_OK(connect(u6, (struct sockaddr *)&a, sizeof a));
	struct sockaddr_in6 peer;
	socklen_t plen = sizeof peer;
	CHECK_OK(getpeername(u6, (struct sockaddr *)&peer, &plen));
	CHECK_EQ(plen, sizeof peer);
	CHECK(IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr));
	CHECK_EQ(sendto(s, "r", 1, 0, (struct sockaddr *)&from, flen), 1);
	CHECK_EQ(recv(u6, buf, sizeof buf, 0), 1);
	int only = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	int on = 1;
	CHECK_OK(setsockopt(only, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on));
	CHECK_ERR(connect(only, (struct sockaddr *)&a, sizeof a), EAFNOSUPPORT);
	close(only);
	close(u6);
	close(s);
}

CASE(tcp_orderly_close_both_ways_no_error)
{
	int l = listener(AF_INET, 1);
	int c = connect_to(AF_INET, port_of(l));
	int s = CHECK_OK(accept(l, NULL, NULL));
	CHECK_OK(shutdown(c, SHUT_WR));
	char ch;
	CHECK_EQ(read(s, &ch, 1), 0);
	CHECK_OK(shutdown(s, SHUT_RDWR));
	CHECK_EQ(read(c, &ch, 1), 0);
	struct pollfd p[2] = { { s, POLLIN | POLLOUT | POLLRDHUP, 0 },
			       { c, POLLIN | POLLOUT | POLLRDHUP, 0 } };
	st_sleep_ms(20);
	CHECK_EQ(poll(p, 2, 0), 2);
	CHECK_EQ(p[0].revents, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	CHECK_EQ(p[1].revents, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	int err = -1;
	socklen_t len = sizeof err;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len));
	CHECK_EQ(err, 0);
	CHECK_OK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
	CHECK_EQ(err, 0);
	close(s);
	close(c);
	close(l);
}

CASE(tcp_full_send_buffer_blocks_and_wakes)
{
	int l = listener(AF_INET, 1);
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	struct sockaddr_in a = lo4(port_of(l));
	int r = connect(c, (struct sockaddr *)&a, sizeof a);
	CHECK(r == 0 || errno == EINPROGRESS);
	int s = CHECK_OK(accept(l, NULL, NULL));
	struct pollfd p = { c, POLLOUT, 0 };
	CHECK_EQ(poll(&p, 1, 5000), 1);
	/* Fill everything (our send buffer, the peer's receive buffer) until EAGAIN. */
	static char chunk[65536];
	long total = 0;
	for (;;) {
		ssize_t k = send(c, chunk, sizeof chunk, 0);
		if (k < 0) {
			CHECK_EQ(errno, EAGAIN);
			break;
		}
		total += k;
		CHECK_LT(total, 1L << 30);
	}
	CHECK_GT(total, 0);
	CHECK_EQ(poll(&p, 1, 0), 0);
	int ep = CHECK_OK(epoll_create1(0));
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.u32 = 7 };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
	struct epoll_event out;
	CHECK_EQ(epoll_wait(ep, &out, 1, 0), 0);
	/* The reader drains it all; the writer becomes writable again. */
	long got = 0;
	static char buf[65536];
	while (got < total) {
		ssize_t k = CHECK_OK(read(s, buf, sizeof buf));
		CHECK_GT(k, 0);
		got += k;
	}
	CHECK_EQ(epoll_wait(ep, &out, 1, 5000), 1);
	CHECK_EQ(out.data.u32, 7);
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLOUT);
	close(ep);
	close(s);
	close(c);
	close(l);
}

CASE(tcp_ipv4_and_ipv6_only_listeners_share_a_port)
{
	/* nginx style: "listen 80" and "listen [::]:80 ipv6only=on". */
	int l4 = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in a = lo4(0);
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	CHECK_OK(bind(l4, (struct sockaddr *)&a, sizeof a));
	int port = port_of(l4);
	CHECK_OK(listen(l4, 8));
	int l6 = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	int on = 1;
	CHECK_OK(setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on));
	struct sockaddr_in6 a6 = lo6(port);
	a6.sin6_addr = in6addr_any;
	CHECK_OK(bind(l6, (struct sockaddr *)&a6, sizeof a6));
	CHECK_OK(listen(l6, 8));
	for (int i = 0; i < 4; i++) {
		int c6 = connect_to(AF_INET6, port);
		int c4 = connect_to(AF_INET, port);
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int s4 = CHECK_OK(accept(l4, (struct sockaddr *)&ss, &len));
		CHECK_EQ(ss.ss_family, AF_INET);
		len = sizeof ss;
		int s6 = CHECK_OK(accept(l6, (struct sockaddr *)&ss, &len));
		CHECK_EQ(ss.ss_family, AF_INET6);
		close(s4);
		close(s6);
		close(c4);
		close(c6);
	}
	close(l4);
	close(l6);
}

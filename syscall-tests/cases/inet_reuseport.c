/* SO_REUSEPORT: TCP listeners and UDP sockets of one user bound to one address and port
 * share its connections and datagrams (Linux hashes the 4-tuple); without the option on
 * every socket, or for another user, the bind is EADDRINUSE. */
#include "harness.h"
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#define N 40

static int reuseport_socket(int type, int on)
{
	int s = CHECK_OK(socket(AF_INET, type, 0));
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on));
	int v, l = sizeof v;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_REUSEPORT, &v, (socklen_t *)&l));
	CHECK_EQ(v, on);
	return s;
}

/* Bind `s` to 127.0.0.1:port (0: any), return the port. */
static int bind_lo(int s, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof a) != 0)
		return -1;
	socklen_t al = sizeof a;
	CHECK_OK(getsockname(s, (struct sockaddr *)&a, &al));
	return ntohs(a.sin_port);
}

static void addr_of(struct sockaddr_in *a, int port)
{
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

CASE(bind_needs_reuseport_on_both)
{
	int types[] = { SOCK_STREAM, SOCK_DGRAM };
	for (int i = 0; i < 2; i++) {
		int a = reuseport_socket(types[i], 1);
		int port = CHECK_OK(bind_lo(a, 0));
		int b = reuseport_socket(types[i], 0);
		CHECK_ERR(bind_lo(b, port), EADDRINUSE);
		close(b);
		int c = reuseport_socket(types[i], 1);
		CHECK_EQ(bind_lo(c, port), port);
		if (types[i] == SOCK_STREAM) {
			CHECK_OK(listen(a, 8));
			CHECK_OK(listen(c, 8));
		}
		/* Another user's socket may not join the group. */
		if (geteuid() == 0) {
			IN_CHILD({
				st_drop_privileges();
				int d = reuseport_socket(types[i], 1);
				CHECK_ERR(bind_lo(d, port), EADDRINUSE);
			});
		}
		close(c);
		close(a);
	}
	/* Neither has it: EADDRINUSE. */
	int a = reuseport_socket(SOCK_STREAM, 0);
	int port = CHECK_OK(bind_lo(a, 0));
	int b = reuseport_socket(SOCK_STREAM, 0);
	CHECK_ERR(bind_lo(b, port), EADDRINUSE);
	close(a);
	close(b);
}

CASE(tcp_listeners_share_connections)
{
	int l[2];
	l[0] = reuseport_socket(SOCK_STREAM, 1);
	int port = CHECK_OK(bind_lo(l[0], 0));
	l[1] = reuseport_socket(SOCK_STREAM, 1);
	CHECK_EQ(bind_lo(l[1], port), port);
	CHECK_OK(listen(l[0], N));
	CHECK_OK(listen(l[1], N));
	int c[N];
	struct sockaddr_in a;
	addr_of(&a, port);
	for (int i = 0; i < N; i++) {
		c[i] = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
		CHECK_OK(connect(c[i], (struct sockaddr *)&a, sizeof a));
	}
	int got[2] = { 0, 0 };
	struct pollfd p[2] = { { .fd = l[0], .events = POLLIN }, { .fd = l[1], .events = POLLIN } };
	while (got[0] + got[1] < N && CHECK_OK(poll(p, 2, 2000)) > 0) {
		for (int k = 0; k < 2; k++)
			if (p[k].revents & POLLIN) {
				close(CHECK_OK(accept(l[k], NULL, NULL)));
				got[k]++;
			}
	}
	CHECK_EQ(got[0] + got[1], N);
	CHECK_GT(got[0], 0);
	CHECK_GT(got[1], 0);
	for (int i = 0; i < N; i++)
		close(c[i]);
	close(l[0]);
	close(l[1]);
}

CASE(udp_sockets_share_datagrams)
{
	int u[2];
	u[0] = reuseport_socket(SOCK_DGRAM, 1);
	int port = CHECK_OK(bind_lo(u[0], 0));
	u[1] = reuseport_socket(SOCK_DGRAM, 1);
	CHECK_EQ(bind_lo(u[1], port), port);
	struct sockaddr_in a;
	addr_of(&a, port);
	/* Each from a port of its own. */
	for (int i = 0; i < N; i++) {
		int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
		CHECK_EQ(sendto(s, "d", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
		close(s);
	}
	int got[2] = { 0, 0 };
	struct pollfd p[2] = { { .fd = u[0], .events = POLLIN }, { .fd = u[1], .events = POLLIN } };
	char b[4];
	while (got[0] + got[1] < N && CHECK_OK(poll(p, 2, 2000)) > 0) {
		for (int k = 0; k < 2; k++)
			if (p[k].revents & POLLIN) {
				CHECK_EQ(recv(u[k], b, sizeof b, 0), 1);
				got[k]++;
			}
	}
	CHECK_EQ(got[0] + got[1], N);
	CHECK_GT(got[0], 0);
	CHECK_GT(got[1], 0);
	close(u[0]);
	close(u[1]);
}

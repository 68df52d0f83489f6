/* ICMP echo ("ping") sockets: socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and the IPv6
 * twin, allowed by net.ipv4.ping_group_range. Each case works in a network namespace of
 * its own: natively a new one (root only), under rvisor the sandbox's. */
#include "harness.h"
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define RANGE "/proc/sys/net/ipv4/ping_group_range"

static void set_range(const char *text)
{
	int fd = CHECK_OK(open(RANGE, O_WRONLY));
	CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void read_range(char *buf, size_t n)
{
	int fd = CHECK_OK(open(RANGE, O_RDONLY));
	ssize_t r = CHECK_OK(read(fd, buf, n - 1));
	buf[r] = 0;
	close(fd);
}

/* Allow the caller's group. */
static void allow_me(void)
{
	char t[64];
	snprintf(t, sizeof t, "%u %u", getegid(), getegid());
	set_range(t);
}

static uint16_t csum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (b[i] << 8) | b[i + 1];
	if (n & 1)
		s += b[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

CASE(default_range_refuses)
{
	if (!st_own_netns())
		return;
	char buf[64];
	read_range(buf, sizeof buf);
	CHECK_STREQ(buf, "1\t0\n");
	CHECK_ERR(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), EACCES);
	CHECK_ERR(socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6), EACCES);
	CHECK_ERR(socket(AF_INET, SOCK_STREAM, IPPROTO_ICMP), EPROTONOSUPPORT);
}

CASE(range_writes)
{
	if (!st_own_netns())
		return;
	char buf[64];
	set_range("100 200\n");
	read_range(buf, sizeof buf);
	CHECK_STREQ(buf, "100\t200\n");
	/* A reversed range means nobody. */
	set_range("5 3");
	read_range(buf, sizeof buf);
	CHECK_STREQ(buf, "1\t0\n");
	int fd = CHECK_OK(open(RANGE, O_WRONLY));
	CHECK_ERR(write(fd, "0 4294967295", 12), EINVAL);
	CHECK_ERR(write(fd, "-1 5", 4), EINVAL);
	close(fd);
	read_range(buf, sizeof buf);
	CHECK_STREQ(buf, "1\t0\n");
	set_range("0 4294967294");
	read_range(buf, sizeof buf);
	CHECK_STREQ(buf, "0\t4294967294\n");
	/* One gid sets the low end only. */
	set_range("7");
	read_range(buf, sizeof buf);
	CHECK_STREQ(buf, "7\t4294967294\n");
	set_range("0 4294967294");
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	int v;
	socklen_t l = sizeof v;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &l));
	CHECK_EQ(v, IPPROTO_ICMP);
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &l));
	CHECK_EQ(v, SOCK_DGRAM);
	close(s);
}

CASE(echo_v4)
{
	if (!st_own_netns())
		return;
	allow_me();
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(0x1234) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(bind(s, (struct sockaddr *)&a, sizeof a));
	CHECK_ERR(bind(s, (struct sockaddr *)&a, sizeof a), EINVAL);
	struct sockaddr_in got;
	socklen_t gl = sizeof got;
	CHECK_OK(getsockname(s, (struct sockaddr *)&got, &gl));
	CHECK_EQ(ntohs(got.sin_port), 0x1234);
	/* Ping sockets may share an identifier (they are SO_REUSEADDR from the start), not
	 * without SO_REUSEADDR. */
	int s2 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	int one, ol = sizeof one;
	CHECK_OK(getsockopt(s2, SOL_SOCKET, SO_REUSEADDR, &one, (socklen_t *)&ol));
	CHECK_EQ(one, 1);
	CHECK_OK(bind(s2, (struct sockaddr *)&a, sizeof a));
	close(s2);
	int s3 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	int zero = 0;
	CHECK_OK(setsockopt(s3, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof zero));
	CHECK_ERR(bind(s3, (struct sockaddr *)&a, sizeof a), EADDRINUSE);
	close(s3);

	char buf[64];
	CHECK_ERR(recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	struct icmphdr h = { .type = ICMP_ECHO, .un.echo.sequence = htons(7) };
	char msg[sizeof h + 4];
	memcpy(msg, &h, sizeof h);
	memcpy(msg + sizeof h, "ping", 4);
	a.sin_port = 0;
	CHECK_EQ(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof msg);
	struct pollfd p = { .fd = s, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 5000), 1);
	CHECK_EQ(p.revents, POLLIN);
	struct sockaddr_in from;
	socklen_t fl = sizeof from;
	CHECK_EQ(recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), (ssize_t)sizeof msg);
	struct icmphdr r;
	memcpy(&r, buf, sizeof r);
	CHECK_EQ(r.type, ICMP_ECHOREPLY);
	CHECK_EQ(r.code, 0);
	CHECK_EQ(ntohs(r.un.echo.id), 0x1234);
	CHECK_EQ(ntohs(r.un.echo.sequence), 7);
	CHECK_MEMEQ(buf + sizeof r, "ping", 4);
	CHECK_EQ(csum(buf, sizeof msg), 0xffff);
	CHECK_EQ(from.sin_family, AF_INET);
	CHECK_EQ(ntohl(from.sin_addr.s_addr), INADDR_LOOPBACK);
	CHECK_EQ(from.sin_port, 0);
	/* Only the reply was queued. */
	CHECK_ERR(recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);

	/* Not an echo request, or shorter than its header: EINVAL. */
	((struct icmphdr *)msg)->type = ICMP_ECHOREPLY;
	CHECK_ERR(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), EINVAL);
	((struct icmphdr *)msg)->type = ICMP_ECHO;
	CHECK_ERR(sendto(s, msg, 4, 0, (struct sockaddr *)&a, sizeof a), EINVAL);
	CHECK_ERR(send(s, msg, sizeof msg, 0), EDESTADDRREQ);
	close(s);
}

CASE(connect_autobind_timeout)
{
	if (!st_own_netns())
		return;
	allow_me();
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(connect(s, (struct sockaddr *)&a, sizeof a));
	struct sockaddr_in got;
	socklen_t gl = sizeof got;
	CHECK_OK(getsockname(s, (struct sockaddr *)&got, &gl));
	uint16_t ident = ntohs(got.sin_port);
	CHECK_NE(ident, 0);
	struct timeval tv = { .tv_usec = 100000 };
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	char buf[64];
	CHECK_ERR(recv(s, buf, sizeof buf, 0), EAGAIN);
	int ttl = 5;
	CHECK_OK(setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl));
	struct icmphdr h = { .type = ICMP_ECHO, .un.echo.sequence = htons(1) };
	CHECK_EQ(write(s, &h, sizeof h), (ssize_t)sizeof h);
	CHECK_EQ(read(s, buf, sizeof buf), (ssize_t)sizeof h);
	struct icmphdr r;
	memcpy(&r, buf, sizeof r);
	CHECK_EQ(r.type, ICMP_ECHOREPLY);
	CHECK_EQ(ntohs(r.un.echo.id), ident);
	close(s);
}

CASE(echo_v6)
{
	if (!st_own_netns())
		return;
	allow_me();
	int s = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6));
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct icmp6_hdr h = { .icmp6_type = ICMP6_ECHO_REQUEST };
	h.icmp6_seq = htons(3);
	char msg[sizeof h + 3];
	memcpy(msg, &h, sizeof h);
	memcpy(msg + sizeof h, "abc", 3);
	CHECK_EQ(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof msg);
	struct sockaddr_in6 got;
	socklen_t gl = sizeof got;
	CHECK_OK(getsockname(s, (struct sockaddr *)&got, &gl));
	CHECK_NE(got.sin6_port, 0);
	char buf[64];
	struct sockaddr_in6 from;
	socklen_t fl = sizeof from;
	struct pollfd p = { .fd = s, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 5000), 1);
	CHECK_EQ(recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), (ssize_t)sizeof msg);
	struct icmp6_hdr r;
	memcpy(&r, buf, sizeof r);
	CHECK_EQ(r.icmp6_type, ICMP6_ECHO_REPLY);
	CHECK_EQ(r.icmp6_id, got.sin6_port);
	CHECK_EQ(ntohs(r.icmp6_seq), 3);
	CHECK_MEMEQ(buf + sizeof r, "abc", 3);
	CHECK(IN6_IS_ADDR_LOOPBACK(&from.sin6_addr));
	/* An IPv4 destination: too short a sockaddr_in6, EINVAL. */
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_ERR(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a4, sizeof a4), EINVAL);
	close(s);
}

/* The hop limit of a reply, from IP_RECVTTL's or IPV6_RECVHOPLIMIT's control message
 * (-1: none); the reply's length. */
static int recv_hops(int s, int level, int type, ssize_t *len)
{
	char buf[64];
	struct iovec iov = { buf, sizeof buf };
	union {
		char b[128];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof u.b };
	struct pollfd p = { .fd = s, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 5000), 1);
	*len = CHECK_OK(recvmsg(s, &m, 0));
	int v = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == level && c->cmsg_type == type)
			memcpy(&v, CMSG_DATA(c), sizeof v);
	return v;
}

CASE(reply_ttl)
{
	if (!st_own_netns())
		return;
	allow_me();
	int one = 1;
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	CHECK_OK(setsockopt(s, IPPROTO_IP, IP_RECVTTL, &one, sizeof one));
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct icmphdr h = { .type = ICMP_ECHO, .un.echo.sequence = htons(1) };
	CHECK_EQ(sendto(s, &h, sizeof h, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof h);
	ssize_t n;
	CHECK_EQ(recv_hops(s, IPPROTO_IP, IP_TTL, &n), 64);
	CHECK_EQ(n, (ssize_t)sizeof h);
	close(s);

	int s6 = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6));
	CHECK_OK(setsockopt(s6, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one));
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct icmp6_hdr h6 = { .icmp6_type = ICMP6_ECHO_REQUEST };
	CHECK_EQ(sendto(s6, &h6, sizeof h6, 0, (struct sockaddr *)&a6, sizeof a6), (ssize_t)sizeof h6);
	CHECK_EQ(recv_hops(s6, IPPROTO_IPV6, IPV6_HOPLIMIT, &n), 64);
	CHECK_EQ(n, (ssize_t)sizeof h6);
	close(s6);
}

CASE(shared_ident_one_reply)
{
	if (!st_own_netns())
		return;
	allow_me();
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(0x2525) };
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	int t = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	CHECK_OK(bind(s, (struct sockaddr *)&a, sizeof a));
	CHECK_OK(bind(t, (struct sockaddr *)&a, sizeof a));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	/* Each reply goes to one of the sockets sharing the identifier, not to both. */
	for (int i = 0; i < 3; i++) {
		struct icmphdr h = { .type = ICMP_ECHO, .un.echo.sequence = htons(i) };
		CHECK_EQ(sendto(s, &h, sizeof h, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof h);
	}
	struct pollfd p[2] = { { .fd = s, .events = POLLIN }, { .fd = t, .events = POLLIN } };
	int got = 0;
	char buf[64];
	while (CHECK_OK(poll(p, 2, 300)) > 0) {
		for (int i = 0; i < 2; i++)
			if (p[i].revents & POLLIN) {
				CHECK_EQ(recv(p[i].fd, buf, sizeof buf, 0), (ssize_t)sizeof(struct icmphdr));
				got++;
			}
	}
	CHECK_EQ(got, 3);
	close(s);
	close(t);
}

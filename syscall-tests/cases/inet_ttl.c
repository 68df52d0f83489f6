/* Hop limits on inet sockets: IP_TTL, IPV6_UNICAST_HOPS, IP_MULTICAST_TTL,
 * IPV6_MULTICAST_HOPS (Linux's rules and defaults), and that the value set is the one a
 * datagram arrives with, as IP_RECVTTL / IPV6_RECVHOPLIMIT report it on loopback. */
#include "harness.h"
#include <netinet/in.h>
#include <sys/socket.h>

static int get_int(int s, int level, int name)
{
	int v = -12345;
	socklen_t l = sizeof v;
	CHECK_OK(getsockopt(s, level, name, &v, &l));
	CHECK_EQ(l, sizeof v);
	return v;
}

static int set_int(int s, int level, int name, int v)
{
	return setsockopt(s, level, name, &v, sizeof v);
}

CASE(ip_ttl_rules)
{
	int types[] = { SOCK_STREAM, SOCK_DGRAM };
	for (int i = 0; i < 2; i++) {
		int s = CHECK_OK(socket(AF_INET, types[i], 0));
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_TTL), 64);
		CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, 7));
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_TTL), 7);
		CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, 255));
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_TTL), 255);
		CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, -1));
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_TTL), 64);
		CHECK_ERR(set_int(s, IPPROTO_IP, IP_TTL, 0), EINVAL);
		CHECK_ERR(set_int(s, IPPROTO_IP, IP_TTL, 256), EINVAL);
		CHECK_ERR(set_int(s, IPPROTO_IP, IP_TTL, -2), EINVAL);
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_TTL), 64);
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_RECVTTL), 0);
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_MULTICAST_TTL), 1);
		close(s);
	}
	/* The multicast TTL: not on TCP; -1 is the default, 1. */
	int t = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_ERR(set_int(t, IPPROTO_IP, IP_MULTICAST_TTL, 5), EINVAL);
	close(t);
	int u = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_OK(set_int(u, IPPROTO_IP, IP_MULTICAST_TTL, 5));
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_MULTICAST_TTL), 5);
	CHECK_OK(set_int(u, IPPROTO_IP, IP_MULTICAST_TTL, -1));
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_MULTICAST_TTL), 1);
	CHECK_ERR(set_int(u, IPPROTO_IP, IP_MULTICAST_TTL, 256), EINVAL);
	CHECK_OK(set_int(u, IPPROTO_IP, IP_RECVTTL, 5));
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_RECVTTL), 1);
	close(u);
}

CASE(ipv6_hops_rules)
{
	int types[] = { SOCK_STREAM, SOCK_DGRAM };
	for (int i = 0; i < 2; i++) {
		int s = CHECK_OK(socket(AF_INET6, types[i], 0));
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 64);
		CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9));
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 9);
		CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, -1));
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 64);
		CHECK_ERR(set_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 256), EINVAL);
		CHECK_ERR(set_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, -2), EINVAL);
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_RECVHOPLIMIT), 0);
		/* IP_TTL is there too (for IPv4-mapped traffic). */
		CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, 3));
		CHECK_EQ(get_int(s, IPPROTO_IP, IP_TTL), 3);
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 64);
		close(s);
	}
	int t = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	CHECK_ERR(set_int(t, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 5), ENOPROTOOPT);
	close(t);
	int u = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	CHECK_EQ(get_int(u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS), 1);
	CHECK_OK(set_int(u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 5));
	CHECK_EQ(get_int(u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS), 5);
	CHECK_OK(set_int(u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, -1));
	CHECK_EQ(get_int(u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS), 1);
	CHECK_ERR(set_int(u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 256), EINVAL);
	close(u);
	/* IPv6 options on an IPv4 socket: ENOPROTOOPT. */
	int v4 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_ERR(set_int(v4, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 5), ENOPROTOOPT);
	close(v4);
}

/* Receive one datagram on `r` with room for `ctl_len` bytes of control data: the
 * (level, type) control message's int, or -1 if there is none; *flags gets msg_flags. */
static int recv_hops(int r, size_t ctl_len, int level, int type, int *flags)
{
	char data[16];
	struct iovec iov = { data, sizeof data };
	union {
		char buf[256];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	m.msg_control = ctl_len ? u.buf : NULL;
	m.msg_controllen = ctl_len;
	CHECK_EQ(recvmsg(r, &m, 0), 1);
	*flags = m.msg_flags;
	int v = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level == level && c->cmsg_type == type) {
			CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(int)));
			memcpy(&v, CMSG_DATA(c), sizeof v);
		}
	}
	return v;
}

CASE(udp_ttl_arrives)
{
	int r = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(bind(r, (struct sockaddr *)&a, sizeof a));
	socklen_t al = sizeof a;
	CHECK_OK(getsockname(r, (struct sockaddr *)&a, &al));
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int flags;
	/* Without IP_RECVTTL: no control message. */
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(recv_hops(r, 256, IPPROTO_IP, IP_TTL, &flags), -1);
	CHECK_EQ(flags, 0);
	CHECK_OK(set_int(r, IPPROTO_IP, IP_RECVTTL, 1));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(recv_hops(r, 256, IPPROTO_IP, IP_TTL, &flags), 64);
	CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, 7));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(recv_hops(r, 256, IPPROTO_IP, IP_TTL, &flags), 7);
	CHECK_EQ(flags, 0);
	/* No room for it: MSG_CTRUNC. */
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(recv_hops(r, 0, IPPROTO_IP, IP_TTL, &flags), -1);
	CHECK_EQ(flags, MSG_CTRUNC);
	/* Back to the default. */
	CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, -1));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(recv_hops(r, 256, IPPROTO_IP, IP_TTL, &flags), 64);
	close(s);
	close(r);
}

CASE(udp6_hoplimit_arrives)
{
	int r = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	CHECK_OK(bind(r, (struct sockaddr *)&a, sizeof a));
	socklen_t al = sizeof a;
	CHECK_OK(getsockname(r, (struct sockaddr *)&a, &al));
	CHECK_OK(set_int(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1));
	CHECK_EQ(get_int(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT), 1);
	int s = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	int flags;
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(recv_hops(r, 256, IPPROTO_IPV6, IPV6_HOPLIMIT, &flags), 64);
	CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9));
	/* IP_TTL does not apply to IPv6 packets. */
	CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, 3));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
	CHECK_EQ(recv_hops(r, 256, IPPROTO_IPV6, IPV6_HOPLIMIT, &flags), 9);
	CHECK_EQ(flags, 0);
	close(s);

	/* An IPv4 datagram to a dual-stack socket: IP_TTL's control message, not IPv6's. */
	int d = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	struct sockaddr_in6 any = { .sin6_family = AF_INET6 };
	CHECK_OK(bind(d, (struct sockaddr *)&any, sizeof any));
	al = sizeof any;
	CHECK_OK(getsockname(d, (struct sockaddr *)&any, &al));
	CHECK_OK(set_int(d, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1));
	CHECK_OK(set_int(d, IPPROTO_IP, IP_RECVTTL, 1));
	int s4 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_OK(set_int(s4, IPPROTO_IP, IP_TTL, 11));
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = any.sin6_port };
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(sendto(s4, "x", 1, 0, (struct sockaddr *)&to, sizeof to), 1);
	CHECK_EQ(recv_hops(d, 256, IPPROTO_IP, IP_TTL, &flags), 11);
	CHECK_EQ(sendto(s4, "x", 1, 0, (struct sockaddr *)&to, sizeof to), 1);
	CHECK_EQ(recv_hops(d, 256, IPPROTO_IPV6, IPV6_HOPLIMIT, &flags), -1);
	close(s4);
	/* From an IPv6 socket to an IPv4-mapped address: IP_TTL's hop limit, not IPv6's,
	 * and back to IPv6's for an IPv6 destination. */
	int m = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	CHECK_OK(set_int(m, IPPROTO_IP, IP_TTL, 13));
	CHECK_OK(set_int(m, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 14));
	struct sockaddr_in6 mapped = { .sin6_family = AF_INET6, .sin6_port = any.sin6_port };
	mapped.sin6_addr.s6_addr[10] = 0xff;
	mapped.sin6_addr.s6_addr[11] = 0xff;
	mapped.sin6_addr.s6_addr[12] = 127;
	mapped.sin6_addr.s6_addr[15] = 1;
	CHECK_EQ(sendto(m, "x", 1, 0, (struct sockaddr *)&mapped, sizeof mapped), 1);
	CHECK_EQ(recv_hops(d, 256, IPPROTO_IP, IP_TTL, &flags), 13);
	struct sockaddr_in6 six = { .sin6_family = AF_INET6, .sin6_port = any.sin6_port,
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	CHECK_EQ(sendto(m, "x", 1, 0, (struct sockaddr *)&six, sizeof six), 1);
	CHECK_EQ(recv_hops(d, 256, IPPROTO_IPV6, IPV6_HOPLIMIT, &flags), 14);
	close(m);
	close(d);
	close(r);
}

/* Raw ICMP sockets: socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) and socket(AF_INET6,
 * SOCK_RAW, IPPROTO_ICMPV6), for CAP_NET_RAW only. IPv4 ones receive the IP header,
 * ICMPv6 ones do not and have ICMP6_FILTER and a checksum the kernel computes. Each case
 * works in a network namespace of its own: natively a new one (root only), under rvisor
 * the sandbox's. */
#include "harness.h"
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif
#ifndef SOL_RAW
#define SOL_RAW 255
#endif

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

/* Wait for a packet on `s` and receive it: its length (0 when none came in 2 s). */
static ssize_t next(int s, void *buf, size_t n)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	if (CHECK_OK(poll(&p, 1, 2000)) == 0)
		return 0;
	return CHECK_OK(recv(s, buf, n, 0));
}

CASE(raw_needs_cap_net_raw)
{
	if (!st_own_netns())
		return;
	CHECK_ERR(socket(AF_INET, SOCK_RAW, 0), EPROTONOSUPPORT);
	CHECK_ERR(socket(AF_INET6, SOCK_RAW, 0), EPROTONOSUPPORT);
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), EPERM);
		CHECK_ERR(socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6), EPERM);
	});
	int s = CHECK_OK(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
	int ty, l = sizeof ty;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_TYPE, &ty, (socklen_t *)&l));
	CHECK_EQ(ty, SOCK_RAW);
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &ty, (socklen_t *)&l));
	CHECK_EQ(ty, IPPROTO_ICMP);
	/* The protocol is the socket's "port". */
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	CHECK_OK(getsockname(s, (struct sockaddr *)&a, &al));
	CHECK_EQ(ntohs(a.sin_port), IPPROTO_ICMP);
	CHECK_EQ(a.sin_addr.s_addr, 0);
	/* Not connected: a destination is needed. */
	CHECK_ERR(send(s, "12345678", 8, 0), EDESTADDRREQ);
	CHECK_ERR(listen(s, 1), EOPNOTSUPP);
	/* The stack writes the IP header (IP_HDRINCL off). */
	int v = -1;
	l = sizeof v;
	CHECK_OK(getsockopt(s, IPPROTO_IP, IP_HDRINCL, &v, (socklen_t *)&l));
	CHECK_EQ(v, 0);
	v = 0;
	CHECK_OK(setsockopt(s, IPPROTO_IP, IP_HDRINCL, &v, sizeof v));
	close(s);
}

CASE(raw_icmp_v4_echo)
{
	if (!st_own_netns())
		return;
	int s = CHECK_OK(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
	uint32_t f = 0;
	socklen_t fl = sizeof f;
	CHECK_OK(getsockopt(s, SOL_RAW, ICMP_FILTER, &f, &fl));
	CHECK_EQ(f, 0);
	int ttl = 9;
	CHECK_OK(setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl));
	struct icmphdr h = { .type = ICMP_ECHO };
	h.un.echo.id = htons(0x4242);
	h.un.echo.sequence = htons(5);
	char msg[sizeof h + 4];
	memcpy(msg, &h, sizeof h);
	memcpy(msg + sizeof h, "raw!", 4);
	uint16_t c = ~csum(msg, sizeof msg);
	c = htons(c);
	memcpy(msg + 2, &c, 2);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof msg);
	/* The request as lo delivered it, then the reply: each with its IP header. */
	char buf[256];
	int req = 0, rep = 0;
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in from;
		socklen_t fl2 = sizeof from;
		ssize_t n = CHECK_OK(recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl2));
		CHECK_EQ(n, (ssize_t)(20 + sizeof msg));
		CHECK_EQ(from.sin_family, AF_INET);
		CHECK_EQ(ntohl(from.sin_addr.s_addr), INADDR_LOOPBACK);
		CHECK_EQ(from.sin_port, 0);
		struct iphdr ip;
		memcpy(&ip, buf, sizeof ip);
		CHECK_EQ(ip.version, 4);
		CHECK_EQ(ip.ihl, 5);
		CHECK_EQ(ip.protocol, IPPROTO_ICMP);
		CHECK_EQ(ntohs(ip.tot_len), (int)(20 + sizeof msg));
		CHECK_EQ(csum(buf, 20), 0xffff);
		CHECK_EQ(csum(buf + 20, sizeof msg), 0xffff);
		CHECK_MEMEQ(buf + 24, msg + 4, 8);
		if (buf[20] == ICMP_ECHO) {
			req++;
			CHECK_EQ(ip.ttl, 9);
		} else {
			CHECK_EQ(buf[20], ICMP_ECHOREPLY);
			rep++;
		}
	}
	CHECK_EQ(req, 1);
	CHECK_EQ(rep, 1);
	/* Filter out echo requests (bit 8): only the reply comes. */
	f = 1 << ICMP_ECHO;
	CHECK_OK(setsockopt(s, SOL_RAW, ICMP_FILTER, &f, sizeof f));
	f = 0;
	CHECK_OK(getsockopt(s, SOL_RAW, ICMP_FILTER, &f, &fl));
	CHECK_EQ(f, 1 << ICMP_ECHO);
	CHECK_EQ(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof msg);
	CHECK_EQ(next(s, buf, sizeof buf), (ssize_t)(20 + sizeof msg));
	CHECK_EQ(buf[20], ICMP_ECHOREPLY);
	CHECK_EQ(recv(s, buf, sizeof buf, MSG_DONTWAIT), -1);
	/* IPv4 raw sockets have no IPv6 options, no ICMPv6 filter. */
	CHECK_ERR(setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f), ENOPROTOOPT);
	close(s);
}

CASE(raw_icmpv6_echo)
{
	if (!st_own_netns())
		return;
	int s = CHECK_OK(socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
	int off, ol = sizeof off;
	CHECK_OK(getsockopt(s, SOL_RAW, IPV6_CHECKSUM, &off, (socklen_t *)&ol));
	CHECK_EQ(off, 2);
	CHECK_ERR(setsockopt(s, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof off), EINVAL);
	off = 3;
	CHECK_ERR(setsockopt(s, SOL_RAW, IPV6_CHECKSUM, &off, sizeof off), EINVAL);
	off = 2;
	CHECK_OK(setsockopt(s, SOL_RAW, IPV6_CHECKSUM, &off, sizeof off));
	/* Only echo replies pass. */
	struct icmp6_filter flt;
	ICMP6_FILTER_SETBLOCKALL(&flt);
	ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &flt);
	CHECK_OK(setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &flt, sizeof flt));
	struct icmp6_filter got;
	socklen_t gl = sizeof got;
	CHECK_OK(getsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &got, &gl));
	CHECK_EQ(gl, sizeof got);
	CHECK_MEMEQ(&got, &flt, sizeof flt);
	int one = 1;
	CHECK_OK(setsockopt(s, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one));
	int hops = 17;
	CHECK_OK(setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops));

	/* The checksum is left to the kernel (the stack drops a wrong one). */
	struct icmp6_hdr h = { .icmp6_type = ICMP6_ECHO_REQUEST };
	h.icmp6_id = htons(0x4343);
	h.icmp6_seq = htons(2);
	char msg[sizeof h + 3];
	memcpy(msg, &h, sizeof h);
	memcpy(msg + sizeof h, "six", 3);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	/* A port other than the protocol: EINVAL. */
	a.sin6_port = htons(1);
	CHECK_ERR(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), EINVAL);
	a.sin6_port = 0;
	CHECK_EQ(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof msg);
	char buf[256];
	struct iovec iov = { buf, sizeof buf };
	union {
		char b[256];
		struct cmsghdr align;
	} u;
	struct sockaddr_in6 from;
	struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
			    .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
	struct pollfd p = { .fd = s, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 2000), 1);
	/* No IPv6 header: the ICMPv6 message only. */
	CHECK_EQ(recvmsg(s, &m, 0), (ssize_t)sizeof msg);
	CHECK_EQ((uint8_t)buf[0], ICMP6_ECHO_REPLY);
	CHECK_MEMEQ(buf + 4, msg + 4, sizeof msg - 4);
	CHECK(IN6_IS_ADDR_LOOPBACK(&from.sin6_addr));
	CHECK_EQ(from.sin6_port, 0);
	int hl = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)
			memcpy(&hl, CMSG_DATA(c), sizeof hl);
	CHECK_EQ(hl, 64);
	/* The request itself was filtered out. */
	CHECK_EQ(recv(s, buf, sizeof buf, MSG_DONTWAIT), -1);
	/* Letting requests through: ours comes back with our hop limit. */
	ICMP6_FILTER_SETPASS(ICMP6_ECHO_REQUEST, &flt);
	CHECK_OK(setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &flt, sizeof flt));
	CHECK_EQ(sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)sizeof msg);
	int req = 0;
	for (int i = 0; i < 2; i++) {
		m.msg_controllen = sizeof u.b;
		CHECK_EQ(poll(&p, 1, 2000), 1);
		CHECK_EQ(recvmsg(s, &m, 0), (ssize_t)sizeof msg);
		if ((uint8_t)buf[0] != ICMP6_ECHO_REQUEST)
			continue;
		req++;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)
				memcpy(&hl, CMSG_DATA(c), sizeof hl);
		CHECK_EQ(hl, 17);
	}
	CHECK_EQ(req, 1);
	close(s);
}

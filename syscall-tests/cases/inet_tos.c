/* The DS field on inet sockets: IP_TOS and IPV6_TCLASS (Linux's rules: TCP keeps the
 * ECN bits, -1 is IPv6's default, range checks, one-byte IP-level values), and that the
 * value set, or given per datagram in an IP_TOS / IPV6_TCLASS control message, is the
 * one a datagram arrives with, as IP_RECVTOS (one byte) / IPV6_RECVTCLASS (an int)
 * report it on loopback. */
#include "harness.h"
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
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

CASE(ip_tos_rules)
{
	int u = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_TOS), 0);
	CHECK_OK(set_int(u, IPPROTO_IP, IP_TOS, 0xb9));
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_TOS), 0xb9);
	/* The byte is kept: -1 is 0xff. */
	CHECK_OK(set_int(u, IPPROTO_IP, IP_TOS, -1));
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_TOS), 0xff);
	/* A value given in one byte, and read back in one. */
	unsigned char c = 0x28;
	CHECK_OK(setsockopt(u, IPPROTO_IP, IP_TOS, &c, 1));
	unsigned char out[4] = { 0xaa, 0xaa, 0xaa, 0xaa };
	socklen_t l = 2;
	CHECK_OK(getsockopt(u, IPPROTO_IP, IP_TOS, out, &l));
	CHECK_EQ(l, 1);
	CHECK_EQ(out[0], 0x28);
	CHECK_EQ(out[1], 0xaa);
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_RECVTOS), 0);
	CHECK_OK(set_int(u, IPPROTO_IP, IP_RECVTOS, 5));
	CHECK_EQ(get_int(u, IPPROTO_IP, IP_RECVTOS), 1);
	close(u);
	/* TCP keeps the ECN bits (the low two) under its own control. */
	int t = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(set_int(t, IPPROTO_IP, IP_TOS, 0xff));
	CHECK_EQ(get_int(t, IPPROTO_IP, IP_TOS), 0xfc);
	CHECK_OK(set_int(t, IPPROTO_IP, IP_TOS, 0x03));
	CHECK_EQ(get_int(t, IPPROTO_IP, IP_TOS), 0);
	close(t);
	/* An IPv6 socket has IP_TOS too (for IPv4-mapped traffic). */
	int s6 = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	CHECK_OK(set_int(s6, IPPROTO_IP, IP_TOS, 0x10));
	CHECK_EQ(get_int(s6, IPPROTO_IP, IP_TOS), 0x10);
	CHECK_EQ(get_int(s6, IPPROTO_IPV6, IPV6_TCLASS), 0);
	close(s6);
}

CASE(ipv6_tclass_rules)
{
	int types[] = { SOCK_STREAM, SOCK_DGRAM };
	for (int i = 0; i < 2; i++) {
		int s = CHECK_OK(socket(AF_INET6, types[i], 0));
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_TCLASS), 0);
		CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_TCLASS, 0xb9));
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_TCLASS), types[i] == SOCK_STREAM ? 0xb8 : 0xb9);
		CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_TCLASS, -1));
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_TCLASS), 0);
		CHECK_ERR(set_int(s, IPPROTO_IPV6, IPV6_TCLASS, 256), EINVAL);
		CHECK_ERR(set_int(s, IPPROTO_IPV6, IPV6_TCLASS, -2), EINVAL);
		unsigned char c = 0x28;
		CHECK_ERR(setsockopt(s, IPPROTO_IPV6, IPV6_TCLASS, &c, 1), EINVAL);
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_TCLASS), 0);
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_RECVTCLASS), 0);
		CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_RECVTCLASS, 7));
		CHECK_EQ(get_int(s, IPPROTO_IPV6, IPV6_RECVTCLASS), 1);
		close(s);
	}
	/* IPv6 options on an IPv4 socket: ENOPROTOOPT. */
	int v4 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_ERR(set_int(v4, IPPROTO_IPV6, IPV6_TCLASS, 5), ENOPROTOOPT);
	CHECK_ERR(set_int(v4, IPPROTO_IPV6, IPV6_RECVTCLASS, 1), ENOPROTOOPT);
	close(v4);
}

/* Send "x" on `s` to `to`, with a (level, type) control message of `len` data bytes
 * holding `v` (none when len is 0). Returns sendmsg's result. */
static ssize_t send_ctl(int s, const void *to, socklen_t tolen, int level, int type, size_t len,
			int v)
{
	struct iovec iov = { "x", 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr m = { .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov,
			    .msg_iovlen = 1 };
	if (len) {
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(len);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = level;
		c->cmsg_type = type;
		c->cmsg_len = CMSG_LEN(len);
		if (len == 1) {
			unsigned char b = v;
			memcpy(CMSG_DATA(c), &b, 1);
		} else {
			memcpy(CMSG_DATA(c), &v, len < sizeof v ? len : sizeof v);
		}
	}
	return sendmsg(s, &m, 0);
}

/* Receive one datagram on `r` with room for `ctl_len` bytes of control data: the value
 * of the (level, type) control message (which must have `size` data bytes), or -1 if
 * there is none; *flags gets msg_flags, *order the types seen in order (up to 4). */
static int recv_ds(int r, size_t ctl_len, int level, int type, size_t size, int *flags,
		   int order[4])
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
	int v = -1, n = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (order && n < 4)
			order[n++] = c->cmsg_type;
		if (c->cmsg_level == level && c->cmsg_type == type) {
			CHECK_EQ(c->cmsg_len, CMSG_LEN(size));
			v = 0;
			if (size == 1)
				v = *(unsigned char *)CMSG_DATA(c);
			else
				memcpy(&v, CMSG_DATA(c), sizeof v);
		}
	}
	return v;
}

static int bound_udp(int family, void *a, socklen_t *al)
{
	int r = CHECK_OK(socket(family, SOCK_DGRAM, 0));
	if (family == AF_INET) {
		struct sockaddr_in *s = a;
		*s = (struct sockaddr_in){ .sin_family = AF_INET };
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*al = sizeof *s;
	} else {
		struct sockaddr_in6 *s = a;
		*s = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		*al = sizeof *s;
	}
	CHECK_OK(bind(r, a, *al));
	CHECK_OK(getsockname(r, a, al));
	return r;
}

CASE(udp_tos_arrives)
{
	struct sockaddr_in a;
	socklen_t al;
	int r = bound_udp(AF_INET, &a, &al);
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int flags, order[4] = { 0 };
	/* Without IP_RECVTOS: no control message. */
	CHECK_OK(set_int(s, IPPROTO_IP, IP_TOS, 0xb8));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), -1);
	CHECK_OK(set_int(r, IPPROTO_IP, IP_RECVTOS, 1));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0xb8);
	CHECK_EQ(flags, 0);
	/* ECN bits go as they are on UDP. */
	CHECK_OK(set_int(s, IPPROTO_IP, IP_TOS, 0x29));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x29);
	/* Per datagram: an int or one byte; the socket's value is back after. */
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IP, IP_TOS, sizeof(int), 0x48), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x48);
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IP, IP_TOS, 1, 0x30), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x30);
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IP, IP_TOS, sizeof(int), 0), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0);
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x29);
	/* Bad control messages: out of range, or neither an int nor a byte. */
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IP, IP_TOS, sizeof(int), 256), EINVAL);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IP, IP_TOS, sizeof(int), -1), EINVAL);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IP, IP_TOS, 2, 1), EINVAL);
	/* An IPV6_TCLASS message means nothing to IPv4: ignored. */
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), 0x48), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x29);
	/* With IP_RECVTTL: the TTL first, then the TOS. */
	CHECK_OK(set_int(r, IPPROTO_IP, IP_RECVTTL, 1));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, order), 0x29);
	CHECK_EQ(order[0], IP_TTL);
	CHECK_EQ(order[1], IP_TOS);
	/* No room for them: MSG_CTRUNC. */
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 0, IPPROTO_IP, IP_TOS, 1, &flags, NULL), -1);
	CHECK_EQ(flags, MSG_CTRUNC);
	/* Connected: the control message still applies. */
	CHECK_OK(connect(s, (struct sockaddr *)&a, al));
	CHECK_EQ(send_ctl(s, NULL, 0, IPPROTO_IP, IP_TOS, sizeof(int), 0x60), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x60);
	close(s);
	close(r);
}

CASE(udp6_tclass_arrives)
{
	struct sockaddr_in6 a;
	socklen_t al;
	int r = bound_udp(AF_INET6, &a, &al);
	CHECK_OK(set_int(r, IPPROTO_IPV6, IPV6_RECVTCLASS, 1));
	int s = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	int flags, order[4] = { 0 };
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), &flags, NULL), 0);
	CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_TCLASS, 0xb9));
	/* IP_TOS does not apply to IPv6 packets. */
	CHECK_OK(set_int(s, IPPROTO_IP, IP_TOS, 0x10));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), &flags, NULL), 0xb9);
	CHECK_EQ(flags, 0);
	/* Per datagram: an int; Linux sends a -1 as it is (not as the socket's value). */
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), 0x2e), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), &flags, NULL), 0x2e);
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), -1), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), &flags, NULL), 0xff);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), 256), EINVAL);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), -2), EINVAL);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IPV6, IPV6_TCLASS, 1, 1), EINVAL);
	/* An IP_TOS message means nothing to IPv6: ignored. */
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IP, IP_TOS, sizeof(int), 0x48), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), &flags, NULL), 0xb9);
	/* With IPV6_RECVHOPLIMIT: the hop limit first, then the class. */
	CHECK_OK(set_int(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1));
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), &flags, order), 0xb9);
	CHECK_EQ(order[0], IPV6_HOPLIMIT);
	CHECK_EQ(order[1], IPV6_TCLASS);
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 0, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), &flags, NULL), -1);
	CHECK_EQ(flags, MSG_CTRUNC);
	close(r);

	/* From the IPv6 socket to an IPv4-mapped address: IP_TOS (and its message), not
	 * IPv6's; an IPv4 receiver sees it with IP_RECVTOS. */
	struct sockaddr_in a4;
	socklen_t al4;
	int r4 = bound_udp(AF_INET, &a4, &al4);
	CHECK_OK(set_int(r4, IPPROTO_IP, IP_RECVTOS, 1));
	struct sockaddr_in6 mapped = { .sin6_family = AF_INET6, .sin6_port = a4.sin_port };
	mapped.sin6_addr.s6_addr[10] = 0xff;
	mapped.sin6_addr.s6_addr[11] = 0xff;
	mapped.sin6_addr.s6_addr[12] = 127;
	mapped.sin6_addr.s6_addr[15] = 1;
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&mapped, sizeof mapped), 1);
	CHECK_EQ(recv_ds(r4, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x10);
	CHECK_EQ(send_ctl(s, &mapped, sizeof mapped, IPPROTO_IP, IP_TOS, 1, 0x88), 1);
	CHECK_EQ(recv_ds(r4, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x88);
	CHECK_EQ(send_ctl(s, &mapped, sizeof mapped, IPPROTO_IPV6, IPV6_TCLASS, sizeof(int), 0x2e), 1);
	CHECK_EQ(recv_ds(r4, 256, IPPROTO_IP, IP_TOS, 1, &flags, NULL), 0x10);
	close(r4);
	close(s);
}

CASE(tcp_tos_of_connections)
{
	for (int v6 = 0; v6 < 2; v6++) {
		int fam = v6 ? AF_INET6 : AF_INET;
		int level = v6 ? IPPROTO_IPV6 : IPPROTO_IP, name = v6 ? IPV6_TCLASS : IP_TOS;
		struct sockaddr_storage a = { 0 };
		socklen_t al;
		if (v6) {
			struct sockaddr_in6 *s = (void *)&a;
			s->sin6_family = AF_INET6;
			s->sin6_addr = in6addr_loopback;
			al = sizeof *s;
		} else {
			struct sockaddr_in *s = (void *)&a;
			s->sin_family = AF_INET;
			s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			al = sizeof *s;
		}
		int l = CHECK_OK(socket(fam, SOCK_STREAM, 0));
		CHECK_OK(set_int(l, level, name, 0x48));
		CHECK_OK(bind(l, (struct sockaddr *)&a, al));
		CHECK_OK(listen(l, 1));
		CHECK_OK(getsockname(l, (struct sockaddr *)&a, &al));
		int c = CHECK_OK(socket(fam, SOCK_STREAM, 0));
		CHECK_OK(set_int(c, level, name, 0xa3));
		CHECK_OK(connect(c, (struct sockaddr *)&a, al));
		int s = CHECK_OK(accept(l, NULL, NULL));
		/* The accepted connection has the listener's. */
		CHECK_EQ(get_int(s, level, name), 0x48);
		CHECK_EQ(get_int(c, level, name), 0xa0);
		CHECK_OK(set_int(c, level, name, 0x20));
		CHECK_EQ(write(c, "x", 1), 1);
		char b;
		CHECK_EQ(read(s, &b, 1), 1);
		CHECK_EQ(get_int(c, level, name), 0x20);
		close(s);
		close(c);
		close(l);
	}
}

/* The hop limit per datagram, sent with the DS field's messages: IP_TTL (1..255) and
 * IPV6_HOPLIMIT (-1 is the socket's). */
CASE(udp_hop_limit_messages)
{
	struct sockaddr_in a;
	socklen_t al;
	int r = bound_udp(AF_INET, &a, &al);
	CHECK_OK(set_int(r, IPPROTO_IP, IP_RECVTTL, 1));
	int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int flags;
	CHECK_EQ(send_ctl(s, &a, al, IPPROTO_IP, IP_TTL, sizeof(int), 7), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TTL, sizeof(int), &flags, NULL), 7);
	CHECK_EQ(sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IP, IP_TTL, sizeof(int), &flags, NULL), 64);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IP, IP_TTL, sizeof(int), 0), EINVAL);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IP, IP_TTL, sizeof(int), 256), EINVAL);
	CHECK_ERR(send_ctl(s, &a, al, IPPROTO_IP, IP_TTL, 1, 5), EINVAL);
	close(s);
	close(r);

	struct sockaddr_in6 a6;
	r = bound_udp(AF_INET6, &a6, &al);
	CHECK_OK(set_int(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1));
	s = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	CHECK_OK(set_int(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 20));
	CHECK_EQ(send_ctl(s, &a6, al, IPPROTO_IPV6, IPV6_HOPLIMIT, sizeof(int), 9), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_HOPLIMIT, sizeof(int), &flags, NULL), 9);
	CHECK_EQ(send_ctl(s, &a6, al, IPPROTO_IPV6, IPV6_HOPLIMIT, sizeof(int), -1), 1);
	CHECK_EQ(recv_ds(r, 256, IPPROTO_IPV6, IPV6_HOPLIMIT, sizeof(int), &flags, NULL), 20);
	CHECK_ERR(send_ctl(s, &a6, al, IPPROTO_IPV6, IPV6_HOPLIMIT, sizeof(int), 256), EINVAL);
	CHECK_ERR(send_ctl(s, &a6, al, IPPROTO_IPV6, IPV6_HOPLIMIT, sizeof(int), -2), EINVAL);
	CHECK_ERR(send_ctl(s, &a6, al, IPPROTO_IPV6, IPV6_HOPLIMIT, 1, 5), EINVAL);
	close(s);
	close(r);
}

/* Ping sockets send their IP_TOS / IPV6_TCLASS (or the message's); the echo reply comes
 * back with the request's, as IP_RECVTOS / IPV6_RECVTCLASS show. In a network namespace
 * of the case's own (natively root only), whose ping_group_range allows the caller. */
CASE(ping_echo_reply_has_the_request_tos)
{
	if (!st_own_netns())
		return;
	char t[64];
	snprintf(t, sizeof t, "%u %u", getegid(), getegid());
	int fd = CHECK_OK(open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY));
	CHECK_EQ(write(fd, t, strlen(t)), (ssize_t)strlen(t));
	close(fd);
	int flags;
	/* An echo request: type, code, checksum (the stack's), identifier, sequence. */
	unsigned char req4[8] = { 8, 0, 0, 0, 0, 0, 0, 1 };
	unsigned char req6[8] = { 128, 0, 0, 0, 0, 0, 0, 1 };
	int p = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	struct sockaddr_in lo = { .sin_family = AF_INET };
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(set_int(p, IPPROTO_IP, IP_RECVTOS, 1));
	CHECK_OK(set_int(p, IPPROTO_IP, IP_TOS, 0x28));
	CHECK_EQ(sendto(p, req4, 8, 0, (struct sockaddr *)&lo, sizeof lo), 8);
	char data[64];
	struct iovec iov = { data, sizeof data };
	union {
		char buf[256];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof u.buf };
	CHECK_EQ(recvmsg(p, &m, 0), 8);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	CHECK(c != NULL);
	CHECK_EQ(c->cmsg_level, IPPROTO_IP);
	CHECK_EQ(c->cmsg_type, IP_TOS);
	CHECK_EQ(c->cmsg_len, CMSG_LEN(1));
	CHECK_EQ(*(unsigned char *)CMSG_DATA(c), 0x28);
	close(p);

	int p6 = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6));
	struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	CHECK_OK(set_int(p6, IPPROTO_IPV6, IPV6_RECVTCLASS, 1));
	/* The class from a control message. */
	struct iovec siov = { req6, 8 };
	memset(&u, 0, sizeof u);
	struct msghdr sm = { .msg_name = &lo6, .msg_namelen = sizeof lo6, .msg_iov = &siov,
			     .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(sizeof(int)) };
	c = CMSG_FIRSTHDR(&sm);
	c->cmsg_level = IPPROTO_IPV6;
	c->cmsg_type = IPV6_TCLASS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	int tc = 0x48;
	memcpy(CMSG_DATA(c), &tc, sizeof tc);
	CHECK_EQ(sendmsg(p6, &sm, 0), 8);
	memset(&u, 0, sizeof u);
	m.msg_controllen = sizeof u.buf;
	CHECK_EQ(recvmsg(p6, &m, 0), 8);
	c = CMSG_FIRSTHDR(&m);
	CHECK(c != NULL);
	CHECK_EQ(c->cmsg_level, IPPROTO_IPV6);
	CHECK_EQ(c->cmsg_type, IPV6_TCLASS);
	CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(int)));
	memcpy(&tc, CMSG_DATA(c), sizeof tc);
	CHECK_EQ(tc, 0x48);
	close(p6);
}

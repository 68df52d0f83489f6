/* IP_RECVERR / IPV6_RECVERR: glibc's resolver sets them and gives up when it fails. */
#include "harness.h"
#include <netinet/in.h>
#include <sys/socket.h>

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	CHECK_OK(getsockopt(fd, level, name, &v, &len));
	CHECK_EQ(len, sizeof v);
	return v;
}

CASE(ip_recverr_is_kept)
{
	int one = 1, zero = 0, v;
	socklen_t len = sizeof v;
	int u4 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_EQ(get_int(u4, IPPROTO_IP, IP_RECVERR), 0);
	CHECK_OK(setsockopt(u4, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
	CHECK_EQ(get_int(u4, IPPROTO_IP, IP_RECVERR), 1);
	int seven = 7;
	CHECK_OK(setsockopt(u4, IPPROTO_IP, IP_RECVERR, &seven, sizeof seven));
	CHECK_EQ(get_int(u4, IPPROTO_IP, IP_RECVERR), 1);
	CHECK_OK(setsockopt(u4, IPPROTO_IP, IP_RECVERR, &zero, sizeof zero));
	CHECK_EQ(get_int(u4, IPPROTO_IP, IP_RECVERR), 0);
	/* The IPv6 option is not an IPv4 socket's. */
	CHECK_ERR(setsockopt(u4, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one), ENOPROTOOPT);
	CHECK_ERR(getsockopt(u4, IPPROTO_IPV6, IPV6_RECVERR, &v, &len), EOPNOTSUPP);
	close(u4);

	int u6 = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	CHECK_EQ(get_int(u6, IPPROTO_IPV6, IPV6_RECVERR), 0);
	CHECK_OK(setsockopt(u6, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one));
	CHECK_EQ(get_int(u6, IPPROTO_IPV6, IPV6_RECVERR), 1);
	CHECK_OK(setsockopt(u6, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
	CHECK_EQ(get_int(u6, IPPROTO_IP, IP_RECVERR), 1);
	close(u6);

	int t4 = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(setsockopt(t4, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
	CHECK_EQ(get_int(t4, IPPROTO_IP, IP_RECVERR), 1);
	close(t4);
}

/* What glibc's resolver does: a connected UDP socket with IP_RECVERR, one query out,
 * the answer back (a loopback echo stands in for the server). */
CASE(udp_with_recverr_round_trip)
{
	int one = 1;
	int srv = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK_OK(bind(srv, (struct sockaddr *)&a, sizeof a));
	socklen_t alen = sizeof a;
	CHECK_OK(getsockname(srv, (struct sockaddr *)&a, &alen));
	int c = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHECK_OK(setsockopt(c, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
	CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
	CHECK_EQ(send(c, "query", 5, 0), 5);
	char buf[16];
	struct sockaddr_in from;
	socklen_t flen = sizeof from;
	CHECK_EQ(recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 5);
	CHECK_EQ(sendto(srv, "answer", 6, 0, (struct sockaddr *)&from, flen), 6);
	CHECK_EQ(recv(c, buf, sizeof buf, 0), 6);
	CHECK_EQ(memcmp(buf, "answer", 6), 0);
	close(c);
	close(srv);
}

/* AF_NETLINK NETLINK_ROUTE sockets and interface ioctls. Natively these run in the
 * host's network namespace, so they assert on structure only: lo exists with index 1
 * and 127.0.0.1/8, dumps end with NLMSG_DONE, errors and ACKs are Linux's. */
#include "harness.h"
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if_arp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static int nl_open(void)
{
	int fd = CHECK_OK(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
	struct sockaddr_nl a = {.nl_family = AF_NETLINK};
	CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
	return fd;
}

static unsigned nl_portid(int fd)
{
	struct sockaddr_nl a;
	socklen_t len = sizeof a;
	CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &len));
	CHECK_EQ(len, sizeof a);
	CHECK_EQ(a.nl_family, AF_NETLINK);
	return a.nl_pid;
}

/* Send one request: header type/flags, then `body` of `blen` bytes. */
static void nl_send(int fd, int type, int flags, unsigned seq, const void *body, size_t blen)
{
	char buf[512];
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	memset(buf, 0, sizeof buf);
	h->nlmsg_len = NLMSG_LENGTH(blen);
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	h->nlmsg_seq = seq;
	memcpy(NLMSG_DATA(h), body, blen);
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};
	CHECK_EQ(sendto(fd, buf, h->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k),
		 (ssize_t)h->nlmsg_len);
}

/* Receive a whole dump into `out` (messages only, DONE excluded); checks every message's
 * seq, pid and NLM_F_MULTI, and that the dump ends with NLMSG_DONE. Returns bytes. */
static size_t nl_dump(int fd, unsigned seq, char *out, size_t cap)
{
	unsigned pid = nl_portid(fd);
	size_t used = 0;
	static char buf[65536];
	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = {buf, sizeof buf};
		struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n = CHECK_OK(recvmsg(fd, &m, 0));
		CHECK_EQ(m.msg_namelen, sizeof from);
		CHECK_EQ(from.nl_pid, 0);
		CHECK_EQ(m.msg_flags & MSG_TRUNC, 0);
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			CHECK_EQ(h->nlmsg_seq, seq);
			CHECK_EQ(h->nlmsg_pid, pid);
			CHECK(h->nlmsg_flags & NLM_F_MULTI);
			CHECK_NE(h->nlmsg_type, NLMSG_ERROR);
			if (h->nlmsg_type == NLMSG_DONE) {
				CHECK_EQ(h->nlmsg_len, NLMSG_LENGTH(sizeof(int)));
				CHECK_EQ(*(int *)NLMSG_DATA(h), 0);
				return used;
			}
			CHECK(used + h->nlmsg_len <= cap);
			memcpy(out + used, h, h->nlmsg_len);
			used += NLMSG_ALIGN(h->nlmsg_len);
		}
	}
}

/* The next message, which must be an NLMSG_ERROR: its error (0 for an ACK). */
static int nl_error(int fd, unsigned seq, int type, char *buf, ssize_t *lenp)
{
	ssize_t n = CHECK_OK(recv(fd, buf, 8192, 0));
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	CHECK(NLMSG_OK(h, (size_t)n));
	CHECK_EQ(h->nlmsg_type, NLMSG_ERROR);
	CHECK_EQ(h->nlmsg_seq, seq);
	CHECK_EQ(h->nlmsg_pid, nl_portid(fd));
	struct nlmsgerr *e = NLMSG_DATA(h);
	CHECK_EQ(e->msg.nlmsg_type, type);
	CHECK_EQ(e->msg.nlmsg_seq, seq);
	if (lenp)
		*lenp = n;
	return e->error;
}

CASE(socket_types_and_unsupported_calls)
{
	CHECK_ERR(socket(AF_NETLINK, SOCK_STREAM, NETLINK_ROUTE), ESOCKTNOSUPPORT);
	CHECK_ERR(socket(AF_NETLINK, SOCK_SEQPACKET, NETLINK_ROUTE), ESOCKTNOSUPPORT);
	CHECK_ERR(socket(AF_NETLINK, SOCK_RAW, 32), EPROTONOSUPPORT);
	CHECK_ERR(socket(AF_NETLINK, SOCK_RAW, -1), EPROTONOSUPPORT);
	int sv[2];
	CHECK_ERR(socketpair(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, sv), EOPNOTSUPP);
	int d = CHECK_OK(socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE));
	int fd = nl_open();
	int v;
	socklen_t len = sizeof v;
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len));
	CHECK_EQ(v, SOCK_RAW);
	CHECK_OK(getsockopt(d, SOL_SOCKET, SO_DOMAIN, &v, &len));
	CHECK_EQ(v, AF_NETLINK);
	CHECK_OK(getsockopt(d, SOL_SOCKET, SO_PROTOCOL, &v, &len));
	CHECK_EQ(v, NETLINK_ROUTE);
	CHECK_ERR(listen(fd, 1), EOPNOTSUPP);
	CHECK_ERR(accept(fd, NULL, NULL), EOPNOTSUPP);
	CHECK_ERR(shutdown(fd, SHUT_RDWR), EOPNOTSUPP);
	/* Nothing queued: a non-blocking receive fails, poll shows only POLLOUT. */
	char b[16];
	CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLOUT);
	close(d);
	close(fd);
}

CASE(bind_port_ids)
{
	int a = CHECK_OK(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	/* Not bound yet: port id 0. */
	CHECK_EQ(nl_portid(a), 0);
	CHECK_ERR(bind(a, (struct sockaddr *)&sa, sizeof sa - 1), EINVAL);
	sa.nl_family = AF_INET;
	CHECK_ERR(bind(a, (struct sockaddr *)&sa, sizeof sa), EINVAL);
	sa.nl_family = AF_NETLINK;
	CHECK_OK(bind(a, (struct sockaddr *)&sa, sizeof sa));
	unsigned pa = nl_portid(a);
	CHECK_NE(pa, 0);
	/* Rebinding to another port id fails; to the same or to 0 is fine. */
	sa.nl_pid = pa + 12345;
	CHECK_ERR(bind(a, (struct sockaddr *)&sa, sizeof sa), EINVAL);
	sa.nl_pid = pa;
	CHECK_OK(bind(a, (struct sockaddr *)&sa, sizeof sa));
	/* A port id in use. */
	int b = CHECK_OK(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
	CHECK_ERR(bind(b, (struct sockaddr *)&sa, sizeof sa), EADDRINUSE);
	sa.nl_pid = 0;
	CHECK_OK(bind(b, (struct sockaddr *)&sa, sizeof sa));
	unsigned pb = nl_portid(b);
	CHECK_NE(pb, 0);
	CHECK_NE(pb, pa);
	/* Closing frees the port id. */
	close(a);
	int c = CHECK_OK(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
	sa.nl_pid = pa;
	CHECK_OK(bind(c, (struct sockaddr *)&sa, sizeof sa));
	CHECK_EQ(nl_portid(c), pa);
	/* The peer is the kernel (port 0) until connect says otherwise. */
	struct sockaddr_nl peer;
	socklen_t len = sizeof peer;
	CHECK_OK(getpeername(c, (struct sockaddr *)&peer, &len));
	CHECK_EQ(len, sizeof peer);
	CHECK_EQ(peer.nl_pid, 0);
	close(b);
	close(c);
}

CASE(dump_links_has_lo)
{
	int fd = nl_open();
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	nl_send(fd, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 7, &ifi, sizeof ifi);
	static char out[1 << 20];
	size_t n = nl_dump(fd, 7, out, sizeof out);
	int found = 0;
	for (struct nlmsghdr *h = (struct nlmsghdr *)out; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		CHECK_EQ(h->nlmsg_type, RTM_NEWLINK);
		struct ifinfomsg *m = NLMSG_DATA(h);
		if (m->ifi_index != 1)
			continue;
		found = 1;
		CHECK_EQ(m->ifi_type, ARPHRD_LOOPBACK);
		CHECK(m->ifi_flags & IFF_UP);
		CHECK(m->ifi_flags & IFF_LOOPBACK);
		int alen = IFLA_PAYLOAD(h), name = 0, mtu = 0;
		for (struct rtattr *a = IFLA_RTA(m); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			if (a->rta_type == IFLA_IFNAME) {
				CHECK_STREQ((char *)RTA_DATA(a), "lo");
				name = 1;
			}
			if (a->rta_type == IFLA_MTU) {
				CHECK_EQ(RTA_PAYLOAD(a), 4);
				mtu = *(int *)RTA_DATA(a);
			}
		}
		CHECK(name);
		CHECK_GT(mtu, 0);
	}
	CHECK(found);
	close(fd);
}

CASE(dump_addrs_by_family)
{
	int fd = nl_open();
	static char out[1 << 20];
	struct ifaddrmsg ifa = {.ifa_family = AF_INET};
	nl_send(fd, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, &ifa, sizeof ifa);
	size_t n = nl_dump(fd, 1, out, sizeof out);
	int lo4 = 0;
	for (struct nlmsghdr *h = (struct nlmsghdr *)out; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		CHECK_EQ(h->nlmsg_type, RTM_NEWADDR);
		struct ifaddrmsg *m = NLMSG_DATA(h);
		CHECK_EQ(m->ifa_family, AF_INET);
		int alen = IFA_PAYLOAD(h);
		for (struct rtattr *a = IFA_RTA(m); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			if (a->rta_type == IFA_LOCAL && m->ifa_index == 1 &&
			    *(uint32_t *)RTA_DATA(a) == htonl(INADDR_LOOPBACK)) {
				CHECK_EQ(m->ifa_prefixlen, 8);
				CHECK_EQ(m->ifa_scope, RT_SCOPE_HOST);
				lo4 = 1;
			}
		}
	}
	CHECK(lo4);
	ifa.ifa_family = AF_INET6;
	nl_send(fd, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 2, &ifa, sizeof ifa);
	n = nl_dump(fd, 2, out, sizeof out);
	int lo6 = 0;
	for (struct nlmsghdr *h = (struct nlmsghdr *)out; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		struct ifaddrmsg *m = NLMSG_DATA(h);
		CHECK_EQ(m->ifa_family, AF_INET6);
		int alen = IFA_PAYLOAD(h);
		for (struct rtattr *a = IFA_RTA(m); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
			if (a->rta_type == IFA_ADDRESS && m->ifa_index == 1 &&
			    memcmp(RTA_DATA(a), &in6addr_loopback, 16) == 0 && m->ifa_prefixlen == 128)
				lo6 = 1;
	}
	CHECK(lo6);
	close(fd);
}

CASE(dump_routes_and_neighbours)
{
	int fd = nl_open();
	static char out[1 << 20];
	struct rtmsg rt = {.rtm_family = AF_INET};
	nl_send(fd, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 3, &rt, sizeof rt);
	size_t n = nl_dump(fd, 3, out, sizeof out);
	int lonet = 0;
	for (struct nlmsghdr *h = (struct nlmsghdr *)out; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		CHECK_EQ(h->nlmsg_type, RTM_NEWROUTE);
		struct rtmsg *m = NLMSG_DATA(h);
		CHECK_EQ(m->rtm_family, AF_INET);
		int alen = RTM_PAYLOAD(h), oif = 0;
		uint32_t dst = 0;
		for (struct rtattr *a = RTM_RTA(m); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			if (a->rta_type == RTA_OIF)
				oif = *(int *)RTA_DATA(a);
			if (a->rta_type == RTA_DST)
				dst = *(uint32_t *)RTA_DATA(a);
		}
		if (m->rtm_type == RTN_LOCAL && m->rtm_dst_len == 8 && dst == htonl(0x7f000000)) {
			CHECK_EQ(oif, 1);
			CHECK_EQ(m->rtm_table, RT_TABLE_LOCAL);
			CHECK_EQ(m->rtm_scope, RT_SCOPE_HOST);
			lonet = 1;
		}
	}
	CHECK(lonet);
	struct ndmsg nd = {.ndm_family = AF_UNSPEC};
	nl_send(fd, RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, 4, &nd, sizeof nd);
	n = nl_dump(fd, 4, out, sizeof out);
	for (struct nlmsghdr *h = (struct nlmsghdr *)out; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
		CHECK_EQ(h->nlmsg_type, RTM_NEWNEIGH);
	close(fd);
}

CASE(get_link_ack_and_errors)
{
	int fd = nl_open();
	char buf[8192];
	ssize_t n;
	/* One link by index, then the ACK asked for. */
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = 1};
	nl_send(fd, RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, 10, &ifi, sizeof ifi);
	n = CHECK_OK(recv(fd, buf, sizeof buf, 0));
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	CHECK(NLMSG_OK(h, (size_t)n));
	CHECK_EQ(h->nlmsg_type, RTM_NEWLINK);
	CHECK_EQ(h->nlmsg_seq, 10);
	CHECK_EQ(h->nlmsg_flags & NLM_F_MULTI, 0);
	CHECK_EQ(((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index, 1);
	CHECK_EQ(nl_error(fd, 10, RTM_GETLINK, buf, &n), 0);
	h = (struct nlmsghdr *)buf;
	/* An ACK echoes only the request's header. */
	CHECK_EQ(h->nlmsg_len, NLMSG_LENGTH(sizeof(struct nlmsgerr)));
	CHECK(h->nlmsg_flags & NLM_F_CAPPED);
	/* No such interface: the error echoes the whole request. */
	ifi.ifi_index = 0x7ffffff0;
	nl_send(fd, RTM_GETLINK, NLM_F_REQUEST, 11, &ifi, sizeof ifi);
	CHECK_EQ(nl_error(fd, 11, RTM_GETLINK, buf, &n), -ENODEV);
	CHECK_EQ(h->nlmsg_len, NLMSG_LENGTH(sizeof(struct nlmsgerr) + sizeof ifi));
	CHECK_EQ(h->nlmsg_flags & NLM_F_CAPPED, 0);
	/* A type beyond RTM_MAX. */
	nl_send(fd, 0x7fff, NLM_F_REQUEST, 12, &ifi, sizeof ifi);
	CHECK_EQ(nl_error(fd, 12, 0x7fff, buf, NULL), -EOPNOTSUPP);
	/* Control messages and non-requests are only ACKed, and only when asked. */
	nl_send(fd, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, 13, &ifi, sizeof ifi);
	CHECK_EQ(nl_error(fd, 13, NLMSG_NOOP, buf, NULL), 0);
	nl_send(fd, RTM_GETLINK, NLM_F_ACK, 14, &ifi, sizeof ifi);
	CHECK_EQ(nl_error(fd, 14, RTM_GETLINK, buf, NULL), 0);
	nl_send(fd, NLMSG_NOOP, NLM_F_REQUEST, 15, &ifi, sizeof ifi);
	CHECK_ERR(recv(fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	/* A short message is not even answered. */
	char x = 0;
	nl_send(fd, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 16, &x, 0);
	CHECK_ERR(recv(fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	close(fd);
}

CASE(changes_need_net_admin)
{
	IN_CHILD({
		st_drop_privileges();
		int fd = nl_open();
		char buf[8192];
		struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_prefixlen = 24, .ifa_index = 1};
		nl_send(fd, RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 20, &ifa, sizeof ifa);
		CHECK_EQ(nl_error(fd, 20, RTM_NEWADDR, buf, NULL), -EPERM);
		struct ifinfomsg ifi = {.ifi_index = 1};
		nl_send(fd, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 21, &ifi, sizeof ifi);
		CHECK_EQ(nl_error(fd, 21, RTM_SETLINK, buf, NULL), -EPERM);
		/* Sending to another port needs CAP_NET_ADMIN for NETLINK_ROUTE too. */
		struct sockaddr_nl to = {.nl_family = AF_NETLINK, .nl_pid = 12345};
		CHECK_ERR(sendto(fd, buf, 16, 0, (struct sockaddr *)&to, sizeof to), EPERM);
		close(fd);
	});
}

CASE(recv_truncates_and_peeks)
{
	int fd = nl_open();
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = 1};
	nl_send(fd, RTM_GETLINK, NLM_F_REQUEST, 30, &ifi, sizeof ifi);
	char buf[8192];
	/* MSG_PEEK|MSG_TRUNC gives the datagram's size and leaves it queued. */
	ssize_t full = CHECK_OK(recv(fd, buf, 4, MSG_PEEK | MSG_TRUNC));
	CHECK_GT(full, (ssize_t)NLMSG_LENGTH(sizeof ifi));
	struct pollfd p = {.fd = fd, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK(p.revents & POLLIN);
	struct iovec iov = {buf, 8};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	CHECK_EQ(recvmsg(fd, &m, 0), 8);
	CHECK(m.msg_flags & MSG_TRUNC);
	/* The rest of that datagram is gone. */
	CHECK_ERR(recv(fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	close(fd);
}

CASE(sockets_talk_to_each_other)
{
	if (!st_is_root())
		return; /* needs CAP_NET_ADMIN (checked in changes_need_net_admin) */
	int a = nl_open(), b = nl_open();
	struct sockaddr_nl to = {.nl_family = AF_NETLINK, .nl_pid = nl_portid(b)};
	CHECK_EQ(sendto(a, "hello", 5, 0, (struct sockaddr *)&to, sizeof to), 5);
	char buf[16];
	struct sockaddr_nl from;
	socklen_t len = sizeof from;
	CHECK_EQ(recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len), 5);
	CHECK_MEMEQ(buf, "hello", 5);
	CHECK_EQ(from.nl_pid, nl_portid(a));
	to.nl_pid = 0x7ffffff3;
	CHECK_ERR(sendto(a, "x", 1, 0, (struct sockaddr *)&to, sizeof to), ECONNREFUSED);
	close(a);
	close(b);
}

CASE(netlink_options)
{
	int fd = nl_open();
	int v = 1;
	socklen_t len = sizeof v;
	CHECK_OK(setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &v, sizeof v));
	v = 0;
	CHECK_OK(getsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &v, &len));
	CHECK_EQ(v, 1);
	v = RTNLGRP_LINK;
	CHECK_OK(setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &v, sizeof v));
	uint32_t groups[2] = {0, 0};
	len = sizeof groups;
	CHECK_OK(getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &len));
	CHECK_EQ(groups[0], 1u << (RTNLGRP_LINK - 1));
	v = 0;
	CHECK_ERR(setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &v, sizeof v), EINVAL);
	CHECK_ERR(setsockopt(fd, SOL_NETLINK, 9999, &v, sizeof v), ENOPROTOOPT);
	CHECK_ERR(setsockopt(fd, SOL_IP, 1, &v, sizeof v), ENOPROTOOPT);
	/* NETLINK_CAP_ACK: errors echo only the header. */
	v = 1;
	CHECK_OK(setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &v, sizeof v));
	struct ifinfomsg ifi = {.ifi_index = 0x7ffffff0};
	nl_send(fd, RTM_GETLINK, NLM_F_REQUEST, 40, &ifi, sizeof ifi);
	char buf[8192];
	ssize_t n;
	CHECK_EQ(nl_error(fd, 40, RTM_GETLINK, buf, &n), -ENODEV);
	CHECK_EQ(((struct nlmsghdr *)buf)->nlmsg_len, NLMSG_LENGTH(sizeof(struct nlmsgerr)));
	close(fd);
}

CASE(getifaddrs_and_if_nameindex)
{
	struct ifaddrs *ifs;
	CHECK_OK(getifaddrs(&ifs));
	int inet = 0, packet = 0;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (strcmp(i->ifa_name, "lo") != 0 || !i->ifa_addr)
			continue;
		CHECK(i->ifa_flags & IFF_LOOPBACK);
		if (i->ifa_addr->sa_family == AF_INET) {
			CHECK_EQ(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
			CHECK_EQ(((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr, htonl(0xff000000));
			inet = 1;
		}
		if (i->ifa_addr->sa_family == AF_PACKET) {
			CHECK_EQ(((struct sockaddr_ll *)i->ifa_addr)->sll_ifindex, 1);
			packet = 1;
		}
	}
	freeifaddrs(ifs);
	CHECK(inet);
	CHECK(packet);
	CHECK_EQ(if_nametoindex("lo"), 1);
	char name[IF_NAMESIZE];
	CHECK_PTR(if_indextoname(1, name));
	CHECK_STREQ(name, "lo");
	CHECK_EQ(if_nametoindex("no-such-if0"), 0);
}

static void ifreq_lo(struct ifreq *r)
{
	memset(r, 0, sizeof *r);
	strcpy(r->ifr_name, "lo");
}

CASE(interface_ioctls)
{
	int fd = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct ifreq r;
	ifreq_lo(&r);
	CHECK_OK(ioctl(fd, SIOCGIFINDEX, &r));
	CHECK_EQ(r.ifr_ifindex, 1);
	memset(&r, 0, sizeof r);
	r.ifr_ifindex = 1;
	CHECK_OK(ioctl(fd, SIOCGIFNAME, &r));
	CHECK_STREQ(r.ifr_name, "lo");
	ifreq_lo(&r);
	CHECK_OK(ioctl(fd, SIOCGIFFLAGS, &r));
	CHECK_EQ(r.ifr_flags & (IFF_UP | IFF_LOOPBACK | IFF_RUNNING), IFF_UP | IFF_LOOPBACK | IFF_RUNNING);
	ifreq_lo(&r);
	CHECK_OK(ioctl(fd, SIOCGIFADDR, &r));
	CHECK_EQ(r.ifr_addr.sa_family, AF_INET);
	CHECK_EQ(((struct sockaddr_in *)&r.ifr_addr)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	ifreq_lo(&r);
	CHECK_OK(ioctl(fd, SIOCGIFNETMASK, &r));
	CHECK_EQ(((struct sockaddr_in *)&r.ifr_netmask)->sin_addr.s_addr, htonl(0xff000000));
	ifreq_lo(&r);
	CHECK_OK(ioctl(fd, SIOCGIFMTU, &r));
	CHECK_GT(r.ifr_mtu, 0);
	ifreq_lo(&r);
	CHECK_OK(ioctl(fd, SIOCGIFHWADDR, &r));
	CHECK_EQ(r.ifr_hwaddr.sa_family, ARPHRD_LOOPBACK);
	strcpy(r.ifr_name, "no-such-if0");
	CHECK_ERR(ioctl(fd, SIOCGIFINDEX, &r), ENODEV);
	CHECK_ERR(ioctl(fd, SIOCGIFADDR, &r), ENODEV);
	memset(&r, 0, sizeof r);
	r.ifr_ifindex = 0x7ffffff0;
	CHECK_ERR(ioctl(fd, SIOCGIFNAME, &r), ENODEV);
	/* SIOCGIFCONF: the size needed, then lo's IPv4 address among the entries. */
	struct ifconf ic = {.ifc_len = 0, .ifc_buf = NULL};
	CHECK_OK(ioctl(fd, SIOCGIFCONF, &ic));
	CHECK_GT(ic.ifc_len, 0);
	CHECK_EQ(ic.ifc_len % sizeof(struct ifreq), 0);
	struct ifreq reqs[64];
	ic.ifc_len = sizeof reqs;
	ic.ifc_req = reqs;
	CHECK_OK(ioctl(fd, SIOCGIFCONF, &ic));
	int lo = 0;
	for (size_t i = 0; i < ic.ifc_len / sizeof(struct ifreq); i++)
		if (strcmp(reqs[i].ifr_name, "lo") == 0 &&
		    ((struct sockaddr_in *)&reqs[i].ifr_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
			lo = 1;
	CHECK(lo);
	/* Room for one entry only: one entry. */
	ic.ifc_len = sizeof(struct ifreq) + 3;
	CHECK_OK(ioctl(fd, SIOCGIFCONF, &ic));
	CHECK_EQ(ic.ifc_len, sizeof(struct ifreq));
	/* Changing an interface needs CAP_NET_ADMIN. */
	IN_CHILD({
		st_drop_privileges();
		struct ifreq q;
		ifreq_lo(&q);
		q.ifr_mtu = 1500;
		CHECK_ERR(ioctl(fd, SIOCSIFMTU, &q), EPERM);
	});
	close(fd);
	/* The device ioctls work on any socket; the IPv4 address ones only on AF_INET. */
	int nl = CHECK_OK(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
	ifreq_lo(&r);
	CHECK_OK(ioctl(nl, SIOCGIFINDEX, &r));
	CHECK_EQ(r.ifr_ifindex, 1);
	close(nl);
	int u = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	ifreq_lo(&r);
	CHECK_OK(ioctl(u, SIOCGIFFLAGS, &r));
	CHECK(r.ifr_flags & IFF_LOOPBACK);
	close(u);
}

CASE(interface_map_ioctl)
{
	/* net-tools' ifconfig: a virtual device has no memory, I/O port, IRQ or DMA. */
	int fd = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct ifreq r;
	ifreq_lo(&r);
	memset(&r.ifr_map, 0xa5, sizeof r.ifr_map);
	CHECK_OK(ioctl(fd, SIOCGIFMAP, &r));
	CHECK_EQ(r.ifr_map.mem_start, 0);
	CHECK_EQ(r.ifr_map.mem_end, 0);
	CHECK_EQ(r.ifr_map.base_addr, 0);
	CHECK_EQ(r.ifr_map.irq, 0);
	CHECK_EQ(r.ifr_map.dma, 0);
	CHECK_EQ(r.ifr_map.port, 0);
	strcpy(r.ifr_name, "no-such-if0");
	CHECK_ERR(ioctl(fd, SIOCGIFMAP, &r), ENODEV);
	close(fd);
}

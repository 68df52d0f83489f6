/* NETLINK_SOCK_DIAG: inet_diag (TCP, UDP), unix_diag, TCPDIAG_GETSOCK, bytecode filters
 * and Linux's errors. Natively these may run in the host's network namespace, so every
 * case looks only for its own sockets (by inode, which must match fstat's). */
#include "harness.h"
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

/* Linux's TCP states (include/net/tcp_states.h). */
enum { TCP_ESTABLISHED = 1, TCP_CLOSE = 7, TCP_LISTEN = 10 };

#ifndef TCPDIAG_GETSOCK
#define TCPDIAG_GETSOCK 18
#endif

static int diag_open(void)
{
	return CHECK_OK(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
}

static void diag_send(int fd, int type, int flags, const void *body, size_t blen)
{
	char buf[1024];
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	memset(buf, 0, sizeof buf);
	h->nlmsg_len = NLMSG_LENGTH(blen);
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	h->nlmsg_seq = 42;
	memcpy(NLMSG_DATA(h), body, blen);
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};
	CHECK_EQ(sendto(fd, buf, h->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k),
		 (ssize_t)h->nlmsg_len);
}

/* Collect a dump's messages into `out` until NLMSG_DONE (returning its int: 0 or
 * -errno) or NLMSG_ERROR (returning its error, stored as 1000 + errno so callers can
 * tell the two apart). */
static int diag_collect(int fd, int type, char *out, size_t cap, size_t *used)
{
	static char buf[65536];
	*used = 0;
	for (;;) {
		ssize_t n = CHECK_OK(recv(fd, buf, sizeof buf, 0));
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			CHECK_EQ(h->nlmsg_seq, 42);
			if (h->nlmsg_type == NLMSG_ERROR) {
				int e = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
				return e == 0 ? 0 : 1000 - e;
			}
			if (h->nlmsg_type == NLMSG_DONE)
				return *(int *)NLMSG_DATA(h);
			CHECK_EQ(h->nlmsg_type, type);
			CHECK(*used + h->nlmsg_len <= cap);
			memcpy(out + *used, h, h->nlmsg_len);
			*used += NLMSG_ALIGN(h->nlmsg_len);
		}
	}
}

static int inet_dump(int family, int proto, unsigned states, int ext, const void *bc, size_t bclen,
		     char *out, size_t cap, size_t *used)
{
	char body[512];
	struct inet_diag_req_v2 r = {.sdiag_family = family, .sdiag_protocol = proto,
				     .idiag_ext = ext, .idiag_states = states};
	memcpy(body, &r, sizeof r);
	size_t len = sizeof r;
	if (bc) {
		struct nlattr *a = (struct nlattr *)(body + len);
		a->nla_type = INET_DIAG_REQ_BYTECODE;
		a->nla_len = NLA_HDRLEN + bclen;
		memcpy(body + len + NLA_HDRLEN, bc, bclen);
		len += NLA_ALIGN(a->nla_len);
	}
	int fd = diag_open();
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, body, len);
	int r2 = diag_collect(fd, SOCK_DIAG_BY_FAMILY, out, cap, used);
	close(fd);
	return r2;
}

static ino_t ino_of(int fd)
{
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	return st.st_ino;
}

/* The message for inode `ino` in a dump, or NULL. */
static struct nlmsghdr *find_ino(char *msgs, size_t used, ino_t ino)
{
	for (size_t off = 0; off < used;) {
		struct nlmsghdr *h = (struct nlmsghdr *)(msgs + off);
		struct inet_diag_msg *m = NLMSG_DATA(h);
		if (m->idiag_inode == ino)
			return h;
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
	return NULL;
}

static struct nlmsghdr *find_unix(char *msgs, size_t used, ino_t ino)
{
	for (size_t off = 0; off < used;) {
		struct nlmsghdr *h = (struct nlmsghdr *)(msgs + off);
		struct unix_diag_msg *m = NLMSG_DATA(h);
		if (m->udiag_ino == ino)
			return h;
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
	return NULL;
}

/* The payload of attribute `type` after a message's fixed part of `fixed` bytes. */
static struct nlattr *find_attr(struct nlmsghdr *h, size_t fixed, int type)
{
	char *p = (char *)NLMSG_DATA(h) + fixed;
	char *end = (char *)h + h->nlmsg_len;
	while (p + NLA_HDRLEN <= end) {
		struct nlattr *a = (struct nlattr *)p;
		if (a->nla_len < NLA_HDRLEN)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		p += NLA_ALIGN(a->nla_len);
	}
	return NULL;
}

static unsigned short port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;
	CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &l));
	return ntohs(a.sin_port);
}

/* A listener on 127.0.0.1 (backlog 5), a client connected to it and the accepted end;
 * the client has sent 5 bytes the accepted end has not read. */
static void tcp_trio(int *l, int *c, int *a)
{
	*l = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK_OK(bind(*l, (struct sockaddr *)&sa, sizeof sa));
	CHECK_OK(listen(*l, 5));
	sa.sin_port = htons(port_of(*l));
	*c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(connect(*c, (struct sockaddr *)&sa, sizeof sa));
	*a = CHECK_OK(accept(*l, NULL, NULL));
	CHECK_EQ(write(*c, "hello", 5), 5);
	struct pollfd p = {.fd = *a, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 5000), 1);
}

static char msgs[1 << 20];

CASE(tcp_dump_lists_own_sockets)
{
	int l, c, a;
	tcp_trio(&l, &c, &a);
	size_t used;
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	struct nlmsghdr *h = find_ino(msgs, used, ino_of(l));
	CHECK(h != NULL);
	struct inet_diag_msg *m = NLMSG_DATA(h);
	CHECK_EQ(m->idiag_family, AF_INET);
	CHECK_EQ(m->idiag_state, TCP_LISTEN);
	CHECK_EQ(ntohs(m->id.idiag_sport), port_of(l));
	CHECK_EQ(m->id.idiag_dport, 0);
	CHECK_EQ(m->id.idiag_src[0], htonl(INADDR_LOOPBACK));
	CHECK_EQ(m->idiag_rqueue, 0);
	CHECK_EQ(m->idiag_wqueue, 5);
	CHECK_EQ(m->idiag_uid, geteuid());

	h = find_ino(msgs, used, ino_of(a));
	CHECK(h != NULL);
	m = NLMSG_DATA(h);
	CHECK_EQ(m->idiag_state, TCP_ESTABLISHED);
	CHECK_EQ(ntohs(m->id.idiag_sport), port_of(l));
	CHECK_EQ(ntohs(m->id.idiag_dport), port_of(c));
	CHECK_EQ(m->id.idiag_dst[0], htonl(INADDR_LOOPBACK));
	CHECK_EQ(m->idiag_rqueue, 5);

	h = find_ino(msgs, used, ino_of(c));
	CHECK(h != NULL);
	m = NLMSG_DATA(h);
	CHECK_EQ(ntohs(m->id.idiag_sport), port_of(c));
	CHECK_EQ(ntohs(m->id.idiag_dport), port_of(l));
	CHECK_EQ(m->idiag_rqueue, 0);

	/* Not in the AF_INET6 dump. */
	CHECK_EQ(inet_dump(AF_INET6, IPPROTO_TCP, ~0u, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(l)) == NULL);
	close(a);
	close(c);
	close(l);
}

CASE(tcp_state_filter)
{
	int l, c, a;
	tcp_trio(&l, &c, &a);
	size_t used;
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, 1 << TCP_LISTEN, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(l)) != NULL);
	CHECK(find_ino(msgs, used, ino_of(a)) == NULL);
	CHECK(find_ino(msgs, used, ino_of(c)) == NULL);
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, 1 << TCP_ESTABLISHED, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(l)) == NULL);
	CHECK(find_ino(msgs, used, ino_of(a)) != NULL);
	CHECK(find_ino(msgs, used, ino_of(c)) != NULL);
	/* A socket that is only bound is in no table. */
	int b = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK_OK(bind(b, (struct sockaddr *)&sa, sizeof sa));
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, 0xfff, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(b)) == NULL);
	close(b);
	close(a);
	close(c);
	close(l);
}

CASE(tcp_extensions)
{
	int l, c, a;
	tcp_trio(&l, &c, &a);
	size_t used;
	int ext = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_MEMINFO - 1)) |
		  (1 << (INET_DIAG_SKMEMINFO - 1));
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, ext, NULL, 0, msgs, sizeof msgs, &used), 0);
	struct nlmsghdr *h = find_ino(msgs, used, ino_of(a));
	CHECK(h != NULL);
	struct nlattr *info = find_attr(h, sizeof(struct inet_diag_msg), INET_DIAG_INFO);
	CHECK(info != NULL);
	CHECK_GE(info->nla_len - NLA_HDRLEN, 104);
	struct tcp_info *ti = (struct tcp_info *)((char *)info + NLA_HDRLEN);
	CHECK_EQ(ti->tcpi_state, TCP_ESTABLISHED);
	struct nlattr *mem = find_attr(h, sizeof(struct inet_diag_msg), INET_DIAG_MEMINFO);
	CHECK(mem != NULL);
	CHECK_EQ(mem->nla_len, NLA_HDRLEN + sizeof(struct inet_diag_meminfo));
	struct nlattr *sk = find_attr(h, sizeof(struct inet_diag_msg), INET_DIAG_SKMEMINFO);
	CHECK(sk != NULL);
	CHECK_EQ(sk->nla_len, NLA_HDRLEN + SK_MEMINFO_VARS * 4);
	unsigned *v = (unsigned *)((char *)sk + NLA_HDRLEN);
	int rcvbuf, sndbuf;
	socklen_t sl = sizeof rcvbuf;
	CHECK_OK(getsockopt(a, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &sl));
	CHECK_OK(getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl));
	CHECK_EQ(v[SK_MEMINFO_RCVBUF], (unsigned)rcvbuf);
	CHECK_EQ(v[SK_MEMINFO_SNDBUF], (unsigned)sndbuf);
	CHECK_GT(v[SK_MEMINFO_RMEM_ALLOC], 0);
	/* Asked for nothing, none of them. */
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	h = find_ino(msgs, used, ino_of(a));
	CHECK(h != NULL);
	CHECK(find_attr(h, sizeof(struct inet_diag_msg), INET_DIAG_INFO) == NULL);
	CHECK(find_attr(h, sizeof(struct inet_diag_msg), INET_DIAG_SKMEMINFO) == NULL);
	close(a);
	close(c);
	close(l);
}

CASE(exact_lookup_and_cookie)
{
	int l, c, a;
	tcp_trio(&l, &c, &a);
	size_t used;
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	struct nlmsghdr *h = find_ino(msgs, used, ino_of(c));
	CHECK(h != NULL);
	struct inet_diag_msg m = *(struct inet_diag_msg *)NLMSG_DATA(h);
	struct inet_diag_req_v2 r = {.sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP,
				     .idiag_states = ~0u, .id = m.id};
	int fd = diag_open();
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &r, sizeof r);
	char buf[4096];
	ssize_t n = CHECK_OK(recv(fd, buf, sizeof buf, 0));
	CHECK_GE(n, NLMSG_LENGTH(sizeof(struct inet_diag_msg)));
	h = (struct nlmsghdr *)buf;
	CHECK_EQ(h->nlmsg_type, SOCK_DIAG_BY_FAMILY);
	CHECK_EQ(h->nlmsg_flags & NLM_F_MULTI, 0);
	CHECK_EQ(((struct inet_diag_msg *)NLMSG_DATA(h))->idiag_inode, ino_of(c));
	/* Another socket's cookie: inet_diag_find_one_icsk says ENOENT. */
	r.id.idiag_cookie[0] ^= 1;
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &r, sizeof r);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, (size_t[]){0}), 1000 + ENOENT);
	/* Nobody there: ENOENT. */
	r.id.idiag_cookie[0] = r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	r.id.idiag_dport = htons(1);
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &r, sizeof r);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, (size_t[]){0}), 1000 + ENOENT);
	close(fd);
	close(a);
	close(c);
	close(l);
}

CASE(udp_dump)
{
	int u = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int unbound = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK_OK(bind(u, (struct sockaddr *)&sa, sizeof sa));
	int k = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	sa.sin_port = htons(port_of(u));
	CHECK_OK(connect(k, (struct sockaddr *)&sa, sizeof sa));
	size_t used;
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_UDP, ~0u, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(unbound)) == NULL);
	struct nlmsghdr *h = find_ino(msgs, used, ino_of(u));
	CHECK(h != NULL);
	struct inet_diag_msg *m = NLMSG_DATA(h);
	CHECK_EQ(m->idiag_state, TCP_CLOSE);
	CHECK_EQ(ntohs(m->id.idiag_sport), port_of(u));
	h = find_ino(msgs, used, ino_of(k));
	CHECK(h != NULL);
	m = NLMSG_DATA(h);
	CHECK_EQ(m->idiag_state, TCP_ESTABLISHED);
	CHECK_EQ(ntohs(m->id.idiag_dport), port_of(u));
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_UDP, 1 << TCP_ESTABLISHED, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(u)) == NULL);
	CHECK(find_ino(msgs, used, ino_of(k)) != NULL);
	close(k);
	close(u);
	close(unbound);
}

CASE(inet6_v6only)
{
	int l = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	CHECK_OK(bind(l, (struct sockaddr *)&sa, sizeof sa));
	CHECK_OK(listen(l, 3));
	int any = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
	sa.sin6_addr = in6addr_any;
	CHECK_OK(bind(any, (struct sockaddr *)&sa, sizeof sa));
	CHECK_OK(listen(any, 3));
	size_t used;
	CHECK_EQ(inet_dump(AF_INET6, IPPROTO_TCP, ~0u, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	struct nlmsghdr *h = find_ino(msgs, used, ino_of(l));
	CHECK(h != NULL);
	CHECK_EQ(((struct inet_diag_msg *)NLMSG_DATA(h))->idiag_family, AF_INET6);
	struct nlattr *v6 = find_attr(h, sizeof(struct inet_diag_msg), INET_DIAG_SKV6ONLY);
	CHECK(v6 != NULL);
	CHECK_EQ(*((unsigned char *)v6 + NLA_HDRLEN), 1);
	h = find_ino(msgs, used, ino_of(any));
	CHECK(h != NULL);
	v6 = find_attr(h, sizeof(struct inet_diag_msg), INET_DIAG_SKV6ONLY);
	CHECK(v6 != NULL);
	CHECK_EQ(*((unsigned char *)v6 + NLA_HDRLEN), 0);
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, NULL, 0, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(l)) == NULL);
	close(l);
	close(any);
}

CASE(bytecode_filters)
{
	int l, c, a;
	tcp_trio(&l, &c, &a);
	/* ss's "sport = :PORT": S_EQ PORT, else jump past the end. */
	struct inet_diag_bc_op bc[2] = {
		{.code = INET_DIAG_BC_S_EQ, .yes = 8, .no = 12},
		{.code = INET_DIAG_BC_NOP, .yes = 0, .no = port_of(l)},
	};
	size_t used;
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, bc, sizeof bc, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(l)) != NULL);
	CHECK(find_ino(msgs, used, ino_of(a)) != NULL);
	CHECK(find_ino(msgs, used, ino_of(c)) == NULL);
	/* "dst 127.0.0.1/32": D_COND with a host condition. */
	struct {
		struct inet_diag_bc_op op;
		struct inet_diag_hostcond cond;
		unsigned addr;
	} d = {{INET_DIAG_BC_D_COND, 16, 20}, {AF_INET, 32, -1}, htonl(INADDR_LOOPBACK)};
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, &d, sizeof d, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(l)) == NULL);
	CHECK(find_ino(msgs, used, ino_of(a)) != NULL);
	CHECK(find_ino(msgs, used, ino_of(c)) != NULL);
	/* Malformed: an unknown op, a jump off an op boundary, a short condition. */
	struct inet_diag_bc_op bad[2] = {{99, 4, 8}, {0, 4, 4}};
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, bad, sizeof bad, msgs, sizeof msgs, &used), 1000 + EINVAL);
	struct inet_diag_bc_op odd[2] = {{INET_DIAG_BC_JMP, 4, 6}, {0, 4, 4}};
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, odd, sizeof odd, msgs, sizeof msgs, &used), 1000 + EINVAL);
	CHECK_EQ(inet_dump(AF_INET, IPPROTO_TCP, ~0u, 0, &d, 8, msgs, sizeof msgs, &used), 1000 + EINVAL);
	close(a);
	close(c);
	close(l);
}

CASE(errors)
{
	int fd = diag_open();
	char buf[4096];
	size_t used;
	struct inet_diag_req_v2 r = {.sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP};
	/* No family byte, a short inet request, an unknown type, a family past AF_MAX. */
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &r, 1);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + EINVAL);
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &r, sizeof r - 4);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + EINVAL);
	diag_send(fd, SOCK_DIAG_BY_FAMILY + 2, NLM_F_REQUEST | NLM_F_DUMP, &r, sizeof r);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + EINVAL);
	r.sdiag_family = AF_MAX;
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &r, sizeof r);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + EINVAL);
	/* A protocol without a handler: the dump ends with -ENOENT in NLMSG_DONE. */
	r.sdiag_family = AF_INET;
	r.sdiag_protocol = 99;
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &r, sizeof r);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), -ENOENT);
	/* unix_diag: short, inode 0, no such inode. */
	struct unix_diag_req u = {.sdiag_family = AF_UNIX, .udiag_states = ~0u,
				  .udiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}};
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &u, sizeof u - 4);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + EINVAL);
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &u, sizeof u);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + EINVAL);
	u.udiag_ino = 0x7ffffff0;
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &u, sizeof u);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + ENOENT);
	/* TCPDIAG_GETSOCK's request is longer. */
	diag_send(fd, TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, &r, 20);
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used), 1000 + EINVAL);
	close(fd);
}

CASE(tcpdiag_getsock)
{
	int l, c, a;
	tcp_trio(&l, &c, &a);
	struct inet_diag_req r = {.idiag_family = AF_INET, .idiag_states = 1 << TCP_LISTEN};
	int fd = diag_open();
	diag_send(fd, TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, &r, sizeof r);
	size_t used;
	CHECK_EQ(diag_collect(fd, TCPDIAG_GETSOCK, msgs, sizeof msgs, &used), 0);
	CHECK(find_ino(msgs, used, ino_of(l)) != NULL);
	CHECK(find_ino(msgs, used, ino_of(a)) == NULL);
	close(fd);
	close(a);
	close(c);
	close(l);
}

static void unix_dump(unsigned show, size_t *used)
{
	struct unix_diag_req u = {.sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_show = show};
	int fd = diag_open();
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &u, sizeof u);
	CHECK_EQ(diag_collect(fd, SOCK_DIAG_BY_FAMILY, msgs, sizeof msgs, used), 0);
	close(fd);
}

static unsigned u32_attr(struct nlmsghdr *h, int type, int i)
{
	struct nlattr *a = find_attr(h, sizeof(struct unix_diag_msg), type);
	CHECK(a != NULL);
	return ((unsigned *)((char *)a + NLA_HDRLEN))[i];
}

CASE(unix_pair_and_listener)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(write(sv[0], "abc", 3), 3);
	int l = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", P("sock"));
	CHECK_OK(bind(l, (struct sockaddr *)&sa, sizeof sa));
	CHECK_OK(listen(l, 4));
	int c = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&sa, sizeof sa));
	size_t used;
	unix_dump(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, &used);

	struct nlmsghdr *h = find_unix(msgs, used, ino_of(sv[1]));
	CHECK(h != NULL);
	struct unix_diag_msg *m = NLMSG_DATA(h);
	CHECK_EQ(m->udiag_type, SOCK_STREAM);
	CHECK_EQ(m->udiag_state, TCP_ESTABLISHED);
	CHECK_EQ(u32_attr(h, UNIX_DIAG_PEER, 0), ino_of(sv[0]));
	CHECK_EQ(u32_attr(h, UNIX_DIAG_RQLEN, 0), 3);
	CHECK(find_attr(h, sizeof *m, UNIX_DIAG_NAME) == NULL);

	h = find_unix(msgs, used, ino_of(l));
	CHECK(h != NULL);
	m = NLMSG_DATA(h);
	CHECK_EQ(m->udiag_state, TCP_LISTEN);
	CHECK_EQ(u32_attr(h, UNIX_DIAG_RQLEN, 0), 1);
	CHECK_EQ(u32_attr(h, UNIX_DIAG_RQLEN, 1), 4);
	struct nlattr *name = find_attr(h, sizeof *m, UNIX_DIAG_NAME);
	CHECK(name != NULL);
	CHECK_EQ(name->nla_len - NLA_HDRLEN, strlen(sa.sun_path) + 1);
	CHECK_STREQ((char *)name + NLA_HDRLEN, sa.sun_path);
	CHECK(find_attr(h, sizeof *m, UNIX_DIAG_PEER) == NULL);

	/* UDIAG_SHOW_VFS: the socket file's inode and device (the kernel's dev_t). */
	unix_dump(UDIAG_SHOW_VFS, &used);
	h = find_unix(msgs, used, ino_of(l));
	CHECK(h != NULL);
	struct stat st;
	CHECK_OK(stat(sa.sun_path, &st));
	CHECK_EQ(u32_attr(h, UNIX_DIAG_VFS, 0), (uint32_t)st.st_ino);
	unsigned kdev = u32_attr(h, UNIX_DIAG_VFS, 1);
	CHECK_EQ(kdev >> 20, major(st.st_dev));
	CHECK_EQ(kdev & 0xfffff, minor(st.st_dev));
	h = find_unix(msgs, used, ino_of(sv[0]));
	CHECK(h != NULL);
	CHECK(find_attr(h, sizeof *m, UNIX_DIAG_VFS) == NULL);
	unix_dump(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, &used);

	/* The client's peer is not accepted yet: it has no inode. */
	h = find_unix(msgs, used, ino_of(c));
	CHECK(h != NULL);
	CHECK_EQ(u32_attr(h, UNIX_DIAG_PEER, 0), 0);
	int a = CHECK_OK(accept(l, NULL, NULL));
	unix_dump(UDIAG_SHOW_PEER, &used);
	h = find_unix(msgs, used, ino_of(c));
	CHECK(h != NULL);
	CHECK_EQ(u32_attr(h, UNIX_DIAG_PEER, 0), ino_of(a));
	/* The accepted socket has the listener's name and socket file. */
	unix_dump(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS, &used);
	h = find_unix(msgs, used, ino_of(a));
	CHECK(h != NULL);
	CHECK(find_attr(h, sizeof(struct unix_diag_msg), UNIX_DIAG_NAME) != NULL);
	CHECK_EQ(u32_attr(h, UNIX_DIAG_VFS, 0), (uint32_t)st.st_ino);

	/* An exact lookup by inode. */
	struct unix_diag_req u = {.sdiag_family = AF_UNIX, .udiag_ino = ino_of(a),
				  .udiag_show = UDIAG_SHOW_PEER,
				  .udiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}};
	int fd = diag_open();
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &u, sizeof u);
	char buf[4096];
	CHECK_OK(recv(fd, buf, sizeof buf, 0));
	h = (struct nlmsghdr *)buf;
	CHECK_EQ(h->nlmsg_type, SOCK_DIAG_BY_FAMILY);
	CHECK_EQ(((struct unix_diag_msg *)NLMSG_DATA(h))->udiag_ino, ino_of(a));
	CHECK_EQ(u32_attr(h, UNIX_DIAG_PEER, 0), ino_of(c));
	/* unix_diag checks the cookie too: ESTALE. */
	struct unix_diag_msg um = *(struct unix_diag_msg *)NLMSG_DATA(h);
	u.udiag_cookie[0] = um.udiag_cookie[0] ^ 1;
	u.udiag_cookie[1] = um.udiag_cookie[1];
	diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &u, sizeof u);
	size_t used2;
	CHECK_EQ(diag_collect(fd, 0, buf, sizeof buf, &used2), 1000 + ESTALE);
	close(fd);
	close(a);
	close(c);
	close(l);
	close(sv[0]);
	close(sv[1]);
}

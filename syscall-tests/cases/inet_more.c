/* More of the inet socket layer: /proc/net's socket tables and interface files. Natively
 * these run in the host's network namespace: they look only for their own sockets and
 * for lo. */
#include "harness.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static int listener(int family, struct sockaddr_storage *ss, socklen_t *len)
{
	int fd = CHECK_OK(socket(family, SOCK_STREAM, 0));
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		*len = sizeof *a;
	}
	CHECK_OK(bind(fd, (struct sockaddr *)ss, *len));
	CHECK_OK(listen(fd, 4));
	CHECK_OK(getsockname(fd, (struct sockaddr *)ss, len));
	return fd;
}

static unsigned long ino_of(int fd)
{
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	return st.st_ino;
}

/* Find the line of /proc/net/FILE whose local address is `local` (as printed) and whose
 * inode is `ino`; returns its state field, or -1. */
static int find_line(const char *file, const char *local, unsigned long ino, char *header, size_t hcap)
{
	static char buf[1 << 20];
	char path[64];
	snprintf(path, sizeof path, "/proc/net/%s", file);
	ssize_t n = st_read_file(path, buf, sizeof buf);
	CHECK_GT(n, 0);
	char *save, *line = strtok_r(buf, "\n", &save);
	CHECK_PTR(line);
	snprintf(header, hcap, "%s", line);
	while ((line = strtok_r(NULL, "\n", &save))) {
		char loc[64], rem[64];
		unsigned st, txq, rxq, tr, retr, uid, timeout;
		unsigned long when, inode;
		int sl;
		int k = sscanf(line, "%d: %63s %63s %X %X:%X %X:%lX %X %u %u %lu", &sl, loc, rem, &st,
			       &txq, &rxq, &tr, &when, &retr, &uid, &timeout, &inode);
		CHECK_EQ(k, 12);
		if (strcmp(loc, local) == 0 && inode == ino)
			return st;
	}
	return -1;
}

CASE(proc_net_tcp_lists_listener_and_connection)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int l = listener(AF_INET, &ss, &len);
	int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	char local[64], header[512];
	snprintf(local, sizeof local, "0100007F:%04X", port);
	CHECK_EQ(find_line("tcp", local, ino_of(l), header, sizeof header), 0x0A);
	/* The header, padded to 149 columns. */
	CHECK_EQ(strlen(header), 149);
	CHECK(strncmp(header, "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", 96) == 0);
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&ss, len));
	int a = CHECK_OK(accept(l, NULL, NULL));
	CHECK_EQ(find_line("tcp", local, ino_of(a), header, sizeof header), 0x01);
	struct sockaddr_in me;
	socklen_t mlen = sizeof me;
	CHECK_OK(getsockname(c, (struct sockaddr *)&me, &mlen));
	snprintf(local, sizeof local, "0100007F:%04X", ntohs(me.sin_port));
	CHECK_EQ(find_line("tcp", local, ino_of(c), header, sizeof header), 0x01);
	/* Closed sockets are gone. */
	unsigned long ino = ino_of(c);
	close(c);
	close(a);
	CHECK_NE(find_line("tcp", local, ino, header, sizeof header), 0x01);
	close(l);
	/* A socket that is not bound is not listed anywhere. */
	int u = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_EQ(find_line("tcp", "00000000:0000", ino_of(u), header, sizeof header), -1);
	close(u);
}

CASE(proc_net_tcp6_and_udp)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int l = listener(AF_INET6, &ss, &len);
	char local[64], header[512];
	snprintf(local, sizeof local, "00000000000000000000000001000000:%04X",
		 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	CHECK_EQ(find_line("tcp6", local, ino_of(l), header, sizeof header), 0x0A);
	CHECK_STREQ(header, "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode");
	close(l);
	int u = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	CHECK_OK(bind(u, (struct sockaddr *)&a, alen));
	CHECK_OK(getsockname(u, (struct sockaddr *)&a, &alen));
	snprintf(local, sizeof local, "0100007F:%04X", ntohs(a.sin_port));
	CHECK_EQ(find_line("udp", local, ino_of(u), header, sizeof header), 0x07);
	CHECK_EQ(strlen(header), 127);
	/* Connected: ESTABLISHED. */
	CHECK_OK(connect(u, (struct sockaddr *)&a, alen));
	CHECK_EQ(find_line("udp", local, ino_of(u), header, sizeof header), 0x01);
	close(u);
}

CASE(proc_net_dev_route_if_inet6)
{
	static char buf[1 << 16];
	CHECK_GT(st_read_file("/proc/net/dev", buf, sizeof buf), 0);
	CHECK(strncmp(buf, "Inter-|   Receive                                                |  Transmit\n"
			   " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n", 200) == 0);
	char *lo = strstr(buf, "    lo:");
	CHECK_PTR(lo);
	unsigned long long v[16];
	CHECK_EQ(sscanf(lo + 7, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
			&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
			&v[12], &v[13], &v[14], &v[15]), 16);
	CHECK_GT(st_read_file("/proc/net/route", buf, sizeof buf), 0);
	CHECK(strncmp(buf, "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT ", 73) == 0);
	CHECK_EQ(strchr(buf, '\n') - buf, 127);
	CHECK_GT(st_read_file("/proc/net/if_inet6", buf, sizeof buf), 0);
	CHECK_PTR(strstr(buf, "00000000000000000000000000000001 01 80 10 80       lo\n"));
	/* /proc/self/net is the same directory. */
	CHECK_GT(st_read_file("/proc/self/net/if_inet6", buf, sizeof buf), 0);
	CHECK_PTR(strstr(buf, "00000000000000000000000000000001 01 80 10 80       lo\n"));
}

CASE(tcp_info_state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct tcp_info ti;
	socklen_t tl = sizeof ti;
	int u = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(getsockopt(u, IPPROTO_TCP, TCP_INFO, &ti, &tl));
	CHECK_EQ(ti.tcpi_state, TCP_CLOSE);
	CHECK_GE(tl, 104);
	int l = listener(AF_INET, &ss, &len);
	tl = sizeof ti;
	CHECK_OK(getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl));
	CHECK_EQ(ti.tcpi_state, TCP_LISTEN);
	CHECK_OK(connect(u, (struct sockaddr *)&ss, len));
	int a = CHECK_OK(accept(l, NULL, NULL));
	tl = sizeof ti;
	CHECK_OK(getsockopt(u, IPPROTO_TCP, TCP_INFO, &ti, &tl));
	CHECK_EQ(ti.tcpi_state, TCP_ESTABLISHED);
	CHECK_GT(ti.tcpi_snd_mss, 0);
	/* A short buffer gets the start of the structure. */
	unsigned char st = 0;
	tl = 1;
	CHECK_OK(getsockopt(a, IPPROTO_TCP, TCP_INFO, &st, &tl));
	CHECK_EQ(tl, 1);
	CHECK_EQ(st, TCP_ESTABLISHED);
	/* Not on UDP sockets. */
	int d = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	tl = sizeof ti;
	CHECK_ERR(getsockopt(d, IPPROTO_TCP, TCP_INFO, &ti, &tl), EOPNOTSUPP);
	close(d);
	close(a);
	close(u);
	close(l);
}

CASE(proc_net_unix_lists_sockets)
{
	static char buf[1 << 20];
	int l = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s", P("srv"));
	CHECK_OK(bind(l, (struct sockaddr *)&a, sizeof a));
	CHECK_OK(listen(l, 1));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	CHECK_GT(st_read_file("/proc/net/unix", buf, sizeof buf), 0);
	CHECK(strncmp(buf, "Num       RefCount Protocol Flags    Type St Inode Path\n", 56) == 0);
	char want[256];
	snprintf(want, sizeof want, " 00000000 00010000 0001 01 %5lu %s\n", ino_of(l), P("srv"));
	CHECK_PTR(strstr(buf, want));
	snprintf(want, sizeof want, " 00000000 00000000 0002 03 %5lu\n", ino_of(sv[0]));
	CHECK_PTR(strstr(buf, want));
	close(l);
	close(sv[0]);
	close(sv[1]);
}

/* The line of a /proc/net file whose inode field is `ino` (copied to `out`), and the
 * file's header line. The inode is the 10th field after the slot. */
static int line_with_ino(const char *file, unsigned long ino, char *out, size_t cap, char *header, size_t hcap)
{
	static char buf[1 << 20];
	char path[64];
	snprintf(path, sizeof path, "/proc/net/%s", file);
	CHECK_GT(st_read_file(path, buf, sizeof buf), 0);
	char *save, *line = strtok_r(buf, "\n", &save);
	CHECK_PTR(line);
	snprintf(header, hcap, "%s", line);
	while ((line = strtok_r(NULL, "\n", &save))) {
		char f[13][80];
		int k = sscanf(line, "%79s %79s %79s %79s %79s %79s %79s %79s %79s %79s %79s %79s %79s", f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]);
		if (k >= 10 && strtoul(f[9], NULL, 10) == ino) {
			snprintf(out, cap, "%s", line);
			return 1;
		}
	}
	return 0;
}

/* The hash slot and the %pK pointer of a table line (neither is predictable). */
static void slot_and_pointer(const char *line, int *slot, char *ptr)
{
	char f[12][80];
	CHECK_EQ(sscanf(line, "%d: %79s %79s %79s %79s %79s %79s %79s %79s %79s %79s %79s", slot, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]), 12);
	snprintf(ptr, 80, "%s", f[10]);
	CHECK_EQ(strlen(ptr), 16);
}

/* Raw and ping sockets in /proc/net/raw, raw6, icmp and icmp6, compared character for
 * character with Linux's formats (the slot and the pointer aside). Root only: raw
 * sockets need CAP_NET_RAW, ping sockets the namespace's ping_group_range. */
CASE(proc_net_raw_and_icmp)
{
	if (!st_is_root()) {
		fprintf(stderr, "SKIP: raw sockets need root\n");
		return;
	}
	if (!st_own_netns())
		return;
	int rf = CHECK_OK(open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY));
	CHECK_EQ(write(rf, "0 0", 3), 3);
	close(rf);
	int r4 = CHECK_OK(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
	int r6 = CHECK_OK(socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
	int p4 = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(77), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK_OK(bind(p4, (struct sockaddr *)&a4, sizeof a4));
	int p6 = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6));
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(78), .sin6_addr = in6addr_loopback};
	CHECK_OK(bind(p6, (struct sockaddr *)&a6, sizeof a6));
	const char *head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";
	const char *head6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";
	char line[512], header[512], want[512], ptr[80];
	int slot;

	CHECK(line_with_ino("raw", ino_of(r4), line, sizeof line, header, sizeof header));
	CHECK_STREQ(header, head);
	slot_and_pointer(line, &slot, ptr);
	snprintf(want, sizeof want, "%4d: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000 %5u %8d %lu 2 %s 0",
		 slot, getuid(), 0, ino_of(r4), ptr);
	CHECK_STREQ(line, want);

	CHECK(line_with_ino("raw6", ino_of(r6), line, sizeof line, header, sizeof header));
	CHECK_STREQ(header, head6);
	slot_and_pointer(line, &slot, ptr);
	snprintf(want, sizeof want, "%5d: 00000000000000000000000000000000:003A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 %5u %8d %lu 2 %s 0",
		 slot, getuid(), 0, ino_of(r6), ptr);
	CHECK_STREQ(line, want);

	/* icmp pads every line to 127 columns. */
	CHECK(line_with_ino("icmp", ino_of(p4), line, sizeof line, header, sizeof header));
	char padded[512];
	snprintf(padded, sizeof padded, "%-127s", head);
	CHECK_STREQ(header, padded);
	slot_and_pointer(line, &slot, ptr);
	snprintf(want, sizeof want, "%5d: 0100007F:004D 00000000:0000 07 00000000:00000000 00:00000000 00000000 %5u %8d %lu 2 %s 0",
		 slot, getuid(), 0, ino_of(p4), ptr);
	snprintf(padded, sizeof padded, "%-127s", want);
	CHECK_STREQ(line, padded);

	CHECK(line_with_ino("icmp6", ino_of(p6), line, sizeof line, header, sizeof header));
	CHECK_STREQ(header, head6);
	slot_and_pointer(line, &slot, ptr);
	snprintf(want, sizeof want, "%5d: 00000000000000000000000001000000:004E 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 %5u %8d %lu 2 %s 0",
		 slot, getuid(), 0, ino_of(p6), ptr);
	CHECK_STREQ(line, want);

	/* A ping socket without an identifier yet is in no table. */
	int unbound = CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
	CHECK(!line_with_ino("icmp", ino_of(unbound), line, sizeof line, header, sizeof header));
	close(unbound);

	/* sockstat counts the raw sockets, per family. */
	char buf[4096];
	CHECK_GT(st_read_file("/proc/net/sockstat", buf, sizeof buf), 0);
	CHECK_PTR(strstr(buf, "\nRAW: inuse 1\n"));
	CHECK_GT(st_read_file("/proc/net/sockstat6", buf, sizeof buf), 0);
	CHECK_PTR(strstr(buf, "\nRAW6: inuse 1\n"));
	close(r4);
	close(r6);
	close(p4);
	close(p6);
}

/* /proc/net/sockstat and sockstat6 in a namespace of the case's own: the lines and the
 * sockets in each protocol's tables. */
CASE(proc_net_sockstat)
{
	if (!st_own_netns())
		return;
	struct sockaddr_storage ss;
	socklen_t len;
	int l = listener(AF_INET, &ss, &len);
	int u = CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
	CHECK_OK(bind(u, (struct sockaddr *)&a6, sizeof a6));
	int unbound = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
	char buf[4096];
	CHECK_GT(st_read_file("/proc/net/sockstat", buf, sizeof buf), 0);
	unsigned used, inuse, orphan, tw, alloc, mem;
	CHECK_EQ(sscanf(buf, "sockets: used %u\nTCP: inuse %u orphan %u tw %u alloc %u mem %u\n", &used, &inuse, &orphan, &tw, &alloc, &mem), 6);
	CHECK_EQ(inuse, 1);
	CHECK_GE(alloc, 1);
	CHECK_GE(used, 3);
	CHECK_PTR(strstr(buf, "\nUDP: inuse 0 mem "));
	CHECK_PTR(strstr(buf, "\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n"));
	CHECK_GT(st_read_file("/proc/net/sockstat6", buf, sizeof buf), 0);
	CHECK_STREQ(buf, "TCP6: inuse 0\nUDP6: inuse 1\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n");
	close(l);
	close(u);
	close(unbound);
}

/* A connection not accepted yet has no inode: /proc/net/unix shows it with inode 0 and
 * SS_CONNECTING; its client holds a reference (3) on it as on any peer. */
CASE(proc_net_unix_pending_connection)
{
	static char buf[1 << 20];
	int l = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s", P("srv"));
	CHECK_OK(bind(l, (struct sockaddr *)&a, sizeof a));
	CHECK_OK(listen(l, 1));
	int c = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
	CHECK_GT(st_read_file("/proc/net/unix", buf, sizeof buf), 0);
	char want[256];
	snprintf(want, sizeof want, ": 00000003 00000000 00000000 0001 02     0 %s\n", P("srv"));
	CHECK_PTR(strstr(buf, want));
	snprintf(want, sizeof want, ": 00000003 00000000 00000000 0001 03 %5lu\n", ino_of(c));
	CHECK_PTR(strstr(buf, want));
	int s = CHECK_OK(accept(l, NULL, NULL));
	CHECK_GT(st_read_file("/proc/net/unix", buf, sizeof buf), 0);
	snprintf(want, sizeof want, ": 00000003 00000000 00000000 0001 03 %5lu %s\n", ino_of(s), P("srv"));
	CHECK_PTR(strstr(buf, want));
	close(s);
	close(c);
	close(l);
}

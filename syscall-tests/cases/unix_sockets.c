/* AF_UNIX sockets: socketpair, stream and datagram, bind/listen/accept, SCM_RIGHTS,
 * SCM_CREDENTIALS, shutdown, abstract names. */
#include "harness.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

static socklen_t unix_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof a->sun_path, "%s", path);
	return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

CASE(socketpair_stream)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(write(sv[0], "ping", 4), 4);
	char buf[8] = { 0 };
	CHECK_EQ(read(sv[1], buf, sizeof buf), 4);
	CHECK_STREQ(buf, "ping");
	CHECK_EQ(send(sv[1], "pong", 4, 0), 4);
	CHECK_EQ(recv(sv[0], buf, 4, 0), 4);
	CHECK_MEMEQ(buf, "pong", 4);
	close(sv[0]);
	CHECK_EQ(read(sv[1], buf, sizeof buf), 0);
	close(sv[1]);
}

CASE(socketpair_dgram_keeps_boundaries)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	CHECK_EQ(send(sv[0], "one", 3, 0), 3);
	CHECK_EQ(send(sv[0], "three", 5, 0), 5);
	char buf[16];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 3);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 5);
	/* A short buffer truncates the datagram; MSG_TRUNC reports the real size. */
	CHECK_EQ(send(sv[0], "abcdef", 6, 0), 6);
	CHECK_EQ(recv(sv[1], buf, 2, MSG_TRUNC), 6);
	close(sv[0]);
	close(sv[1]);
}

CASE(seqpacket)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
	CHECK_EQ(send(sv[0], "ab", 2, 0), 2);
	CHECK_EQ(send(sv[0], "cde", 3, 0), 3);
	char buf[8];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 2);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 3);
	close(sv[0]);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 0);
	close(sv[1]);
}

CASE(socketpair_flags_and_errors)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(fcntl(sv[0], F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(sv[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	char c;
	CHECK_ERR(read(sv[0], &c, 1), EAGAIN);
	close(sv[0]);
	close(sv[1]);
	CHECK_ERR(socketpair(AF_INET, SOCK_STREAM, 0, sv), EOPNOTSUPP);
	CHECK_ERR(socketpair(AF_UNIX, 12345, 0, sv), EINVAL);
	CHECK_ERR(socket(12345, SOCK_STREAM, 0), EAFNOSUPPORT);
}

CASE(bind_listen_connect_accept)
{
	int srv = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un addr;
	socklen_t len = unix_addr(&addr, P("sock"));
	CHECK_OK(bind(srv, (struct sockaddr *)&addr, len));
	struct stat st;
	CHECK_OK(stat(P("sock"), &st));
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_OK(listen(srv, 5));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un a;
		socklen_t l = unix_addr(&a, P("sock"));
		if (connect(c, (struct sockaddr *)&a, l) != 0)
			_exit(1);
		if (write(c, "hello server", 12) != 12)
			_exit(2);
		char buf[16];
		if (read(c, buf, sizeof buf) != 5 || memcmp(buf, "hi yo", 5))
			_exit(3);
		_exit(0);
	}
	int conn = CHECK_OK(accept(srv, NULL, NULL));
	char buf[32] = { 0 };
	CHECK_EQ(read(conn, buf, sizeof buf), 12);
	CHECK_STREQ(buf, "hello server");
	CHECK_EQ(write(conn, "hi yo", 5), 5);
	CHECK_EXITED(st_wait(pid), 0);
	close(conn);
	close(srv);
}

CASE(connect_errors)
{
	int s = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un addr;
	socklen_t len = unix_addr(&addr, P("nobody"));
	CHECK_ERR(connect(s, (struct sockaddr *)&addr, len), ENOENT);
	/* A bound but not listening socket refuses connections. */
	int b = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	len = unix_addr(&addr, P("bound"));
	CHECK_OK(bind(b, (struct sockaddr *)&addr, len));
	CHECK_ERR(connect(s, (struct sockaddr *)&addr, len), ECONNREFUSED);
	/* Binding the same path twice fails. */
	int b2 = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	CHECK_ERR(bind(b2, (struct sockaddr *)&addr, len), EADDRINUSE);
	/* A regular file is not a socket. */
	st_write_file(P("file"), "x");
	len = unix_addr(&addr, P("file"));
	CHECK_ERR(connect(s, (struct sockaddr *)&addr, len), ECONNREFUSED);
	close(s);
	close(b);
	close(b2);
}

CASE(getsockname_getpeername)
{
	int srv = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un addr;
	socklen_t len = unix_addr(&addr, P("s"));
	CHECK_OK(bind(srv, (struct sockaddr *)&addr, len));
	CHECK_OK(listen(srv, 1));
	int c = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&addr, len));
	struct sockaddr_un got;
	socklen_t glen = sizeof got;
	CHECK_OK(getsockname(srv, (struct sockaddr *)&got, &glen));
	CHECK_EQ(glen, len);
	CHECK_STREQ(got.sun_path, P("s"));
	glen = sizeof got;
	CHECK_OK(getpeername(c, (struct sockaddr *)&got, &glen));
	CHECK_STREQ(got.sun_path, P("s"));
	/* The unbound client has an unnamed address. */
	int a = CHECK_OK(accept(srv, NULL, NULL));
	glen = sizeof got;
	CHECK_OK(getpeername(a, (struct sockaddr *)&got, &glen));
	CHECK_EQ(glen, sizeof(sa_family_t));
	CHECK_ERR(getpeername(srv, (struct sockaddr *)&got, &glen), ENOTCONN);
	close(a);
	close(c);
	close(srv);
}

CASE(abstract_namespace)
{
	int srv = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un addr;
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	char name[64];
	int n = snprintf(name, sizeof name, "rvisor-st-%d", getpid());
	memcpy(addr.sun_path + 1, name, n);
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	CHECK_OK(bind(srv, (struct sockaddr *)&addr, len));
	CHECK_OK(listen(srv, 1));
	int c = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&addr, len));
	int a = CHECK_OK(accept(srv, NULL, NULL));
	CHECK_EQ(write(c, "z", 1), 1);
	char ch;
	CHECK_EQ(read(a, &ch, 1), 1);
	close(a);
	close(c);
	close(srv);
}

CASE(scm_rights_passes_fd)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	st_write_file(P("f"), "passed along");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	char data = 'x';
	struct iovec iov = { &data, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	CHECK_EQ(sendmsg(sv[0], &msg, 0), 1);
	close(fd);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char d;
		struct iovec riov = { &d, 1 };
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ru;
		struct msghdr rmsg = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = ru.buf, .msg_controllen = sizeof ru.buf };
		if (recvmsg(sv[1], &rmsg, 0) != 1)
			_exit(1);
		struct cmsghdr *rc = CMSG_FIRSTHDR(&rmsg);
		if (!rc || rc->cmsg_type != SCM_RIGHTS || rc->cmsg_len != CMSG_LEN(sizeof(int)))
			_exit(2);
		int got;
		memcpy(&got, CMSG_DATA(rc), sizeof got);
		char buf[32] = { 0 };
		if (read(got, buf, sizeof buf) != 12 || strcmp(buf, "passed along"))
			_exit(3);
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	close(sv[0]);
	close(sv[1]);
}

CASE(scm_credentials)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	int on = 1;
	CHECK_OK(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on));
	CHECK_EQ(send(sv[0], "c", 1, 0), 1);
	char d;
	struct iovec iov = { &d, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	CHECK_EQ(recvmsg(sv[1], &msg, 0), 1);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	CHECK(cm != NULL);
	CHECK_EQ(cm->cmsg_type, SCM_CREDENTIALS);
	struct ucred cred;
	memcpy(&cred, CMSG_DATA(cm), sizeof cred);
	CHECK_EQ(cred.pid, getpid());
	CHECK_EQ(cred.uid, getuid());
	CHECK_EQ(cred.gid, getgid());
	/* SO_PEERCRED on a connected pair. */
	struct ucred peer;
	socklen_t len = sizeof peer;
	CHECK_OK(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &peer, &len));
	CHECK_EQ(peer.pid, getpid());
	close(sv[0]);
	close(sv[1]);
}

CASE(shutdown_write_gives_eof)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(write(sv[0], "last", 4), 4);
	CHECK_OK(shutdown(sv[0], SHUT_WR));
	char buf[8];
	CHECK_EQ(read(sv[1], buf, sizeof buf), 4);
	CHECK_EQ(read(sv[1], buf, sizeof buf), 0);
	/* The other direction still works. */
	CHECK_EQ(write(sv[1], "back", 4), 4);
	CHECK_EQ(read(sv[0], buf, sizeof buf), 4);
	signal(SIGPIPE, SIG_IGN);
	CHECK_ERR(write(sv[0], "x", 1), EPIPE);
	CHECK_ERR(shutdown(sv[0], 7), EINVAL);
	close(sv[0]);
	close(sv[1]);
}

CASE(send_to_closed_peer_epipe)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	close(sv[1]);
	CHECK_ERR(send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
	close(sv[0]);
}

CASE(poll_socket_readiness)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct pollfd p = { sv[1], POLLIN | POLLOUT, 0 };
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLOUT);
	CHECK_EQ(write(sv[0], "x", 1), 1);
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLIN | POLLOUT);
	close(sv[0]);
	p.events = POLLIN | POLLRDHUP;
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK(p.revents & POLLIN);
	CHECK(p.revents & POLLRDHUP);
	CHECK(p.revents & POLLHUP);
	close(sv[1]);
}

CASE(sockopts)
{
	int s = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	int v = 0;
	socklen_t len = sizeof v;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len));
	CHECK_EQ(v, SOCK_STREAM);
	len = sizeof v;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &len));
	CHECK_EQ(v, AF_UNIX);
	len = sizeof v;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &len));
	CHECK_EQ(v, 0);
	v = 65536;
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
	len = sizeof v;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &len));
	CHECK_GE(v, 65536);
	CHECK_ERR(getsockopt(s, SOL_SOCKET, 12345, &v, &len), ENOPROTOOPT);
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_ERR(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len), ENOTSOCK);
	close(fd);
	close(s);
}

CASE(dgram_sendto_bound_path)
{
	int r = CHECK_OK(socket(AF_UNIX, SOCK_DGRAM, 0));
	struct sockaddr_un addr;
	socklen_t len = unix_addr(&addr, P("dg"));
	CHECK_OK(bind(r, (struct sockaddr *)&addr, len));
	int s = CHECK_OK(socket(AF_UNIX, SOCK_DGRAM, 0));
	struct sockaddr_un saddr;
	socklen_t slen = unix_addr(&saddr, P("sender"));
	CHECK_OK(bind(s, (struct sockaddr *)&saddr, slen));
	CHECK_EQ(sendto(s, "msg", 3, 0, (struct sockaddr *)&addr, len), 3);
	char buf[8];
	struct sockaddr_un from;
	socklen_t flen = sizeof from;
	CHECK_EQ(recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 3);
	CHECK_STREQ(from.sun_path, P("sender"));
	close(r);
	close(s);
}

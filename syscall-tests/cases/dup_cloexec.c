/* dup_cloexec: the close-on-exec flag: F_DUPFD_CLOEXEC, dup3, F_SETFD, every *_CLOEXEC
 * creation flag, MSG_CMSG_CLOEXEC, close_range(CLOSE_RANGE_CLOEXEC/UNSHARE), and what
 * execve really closes. */
#include "harness.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* argv: open_fds FD... ; exits 0 when each FD given as "N" is open and each "-N" closed. */
HELPER(fds_state)
{
	for (int i = 1; i < argc; i++) {
		int n = atoi(argv[i]);
		int want_open = n >= 0;
		if (n < 0)
			n = -n;
		int open_now = fcntl(n, F_GETFD) != -1;
		if (open_now != want_open)
			return 10 + i;
		/* Whatever survived exec has the flag clear. */
		if (open_now && fcntl(n, F_GETFD) != 0)
			return 40 + i;
	}
	return 0;
}

static int exec_check(const char *spec[], int n)
{
	char *argv[32];
	int k = 0;
	argv[k++] = (char *)st_self;
	argv[k++] = "--helper";
	argv[k++] = "fds_state";
	for (int i = 0; i < n; i++)
		argv[k++] = (char *)spec[i];
	argv[k] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork");
	if (pid == 0) {
		execve(st_self, argv, environ);
		_exit(127);
	}
	int s = st_wait(pid);
	if (!WIFEXITED(s))
		FAIL("helper status %#x", s);
	return WEXITSTATUS(s);
}

static const char *num(int fd)
{
	char *b = malloc(16);
	snprintf(b, 16, "%d", fd);
	return b;
}

static const char *neg(int fd)
{
	char *b = malloc(16);
	snprintf(b, 16, "-%d", fd);
	return b;
}

CASE(f_dupfd_cloexec)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	int c = CHECK_OK(fcntl(fd, F_DUPFD_CLOEXEC, 100));
	CHECK_GE(c, 100);
	CHECK_EQ(fcntl(c, F_GETFD), FD_CLOEXEC);
	/* F_DUPFD from a close-on-exec fd gives a plain one. */
	int d = CHECK_OK(fcntl(c, F_DUPFD, 100));
	CHECK_GT(d, c);
	CHECK_EQ(fcntl(d, F_GETFD), 0);
	/* The flag is per descriptor: changing one leaves the other. */
	CHECK_OK(fcntl(d, F_SETFD, FD_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), 0);
	CHECK_OK(fcntl(c, F_SETFD, 0));
	CHECK_EQ(fcntl(d, F_GETFD), FD_CLOEXEC);
	/* Only FD_CLOEXEC is stored. */
	CHECK_OK(fcntl(fd, F_SETFD, 0xff));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	/* The limit: a minimum at or above RLIMIT_NOFILE is EINVAL. */
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
	CHECK_ERR(fcntl(fd, F_DUPFD_CLOEXEC, (int)rl.rlim_cur), EINVAL);
	CHECK_ERR(fcntl(fd, F_DUPFD_CLOEXEC, -1), EINVAL);
	CHECK_ERR(fcntl(9999, F_DUPFD_CLOEXEC, 0), EBADF);
	close(fd);
	close(c);
	close(d);
}

CASE(dup3_and_dup2_flags)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY | O_CLOEXEC));
	/* dup2 always clears the flag on the new descriptor. */
	CHECK_EQ(dup2(fd, 50), 50);
	CHECK_EQ(fcntl(50, F_GETFD), 0);
	/* dup3 sets it only with O_CLOEXEC, and replaces an open target. */
	CHECK_EQ(dup3(fd, 50, O_CLOEXEC), 50);
	CHECK_EQ(fcntl(50, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(dup3(fd, 50, 0), 50);
	CHECK_EQ(fcntl(50, F_GETFD), 0);
	/* dup3 with the same fd is EINVAL (dup2 returns it). */
	CHECK_ERR(dup3(fd, fd, 0), EINVAL);
	CHECK_ERR(dup3(fd, fd, O_CLOEXEC), EINVAL);
	CHECK_EQ(dup2(fd, fd), fd);
	/* dup2 onto itself leaves the flag as it was. */
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	CHECK_ERR(dup3(fd, 51, O_NONBLOCK), EINVAL);
	CHECK_ERR(dup3(fd, -1, 0), EBADF);
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
	CHECK_ERR(dup3(fd, (int)rl.rlim_cur, 0), EBADF);
	CHECK_ERR(dup2(fd, (int)rl.rlim_cur), EBADF);
	/* plain dup clears it. */
	int d = CHECK_OK(dup(fd));
	CHECK_EQ(fcntl(d, F_GETFD), 0);
	close(d);
	close(50);
	close(fd);
}

static void check_cloexec(int fd, const char *what)
{
	if (fd < 0)
		FAIL("%s: %s", what, st_errname(errno));
	int f = fcntl(fd, F_GETFD);
	if (f != FD_CLOEXEC)
		FAIL("%s: F_GETFD = %d, expected FD_CLOEXEC", what, f);
	close(fd);
}

static void check_plain(int fd, const char *what)
{
	if (fd < 0)
		FAIL("%s: %s", what, st_errname(errno));
	int f = fcntl(fd, F_GETFD);
	if (f != 0)
		FAIL("%s: F_GETFD = %d, expected 0", what, f);
	close(fd);
}

CASE(creation_flags_set_cloexec)
{
	check_cloexec(open("/dev/null", O_RDONLY | O_CLOEXEC), "open");
	check_plain(open("/dev/null", O_RDONLY), "open plain");
	check_cloexec(openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC), "openat");
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	check_cloexec(p[0], "pipe2 read end");
	check_cloexec(p[1], "pipe2 write end");
	CHECK_OK(pipe(p));
	check_plain(p[0], "pipe");
	check_plain(p[1], "pipe");
	check_cloexec(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
	check_plain(socket(AF_UNIX, SOCK_STREAM, 0), "socket plain");
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
	check_cloexec(sv[0], "socketpair");
	check_cloexec(sv[1], "socketpair");
	check_cloexec(eventfd(0, EFD_CLOEXEC), "eventfd");
	check_plain(eventfd(0, 0), "eventfd plain");
	check_cloexec(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	check_plain(epoll_create1(0), "epoll_create1 plain");
	check_cloexec(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), "timerfd");
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	check_cloexec(signalfd(-1, &m, SFD_CLOEXEC), "signalfd");
	check_cloexec(memfd_create("x", MFD_CLOEXEC), "memfd_create");
	check_plain(memfd_create("x", 0), "memfd_create plain");
	/* opendir uses O_CLOEXEC. */
	DIR *d = opendir("/");
	CHECK(d != NULL);
	CHECK_EQ(fcntl(dirfd(d), F_GETFD), FD_CLOEXEC);
	closedir(d);
	check_cloexec(inotify_init1(IN_CLOEXEC), "inotify_init1");
}

CASE(accept4_and_scm_rights_cloexec)
{
	int l = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* An abstract name, unique per process. */
	snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "rvisor-st-cloexec-%d", (int)getpid());
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1);
	CHECK_OK(bind(l, (struct sockaddr *)&sa, len));
	CHECK_OK(listen(l, 4));
	int c1 = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	CHECK_OK(connect(c1, (struct sockaddr *)&sa, len));
	check_cloexec(accept4(l, NULL, NULL, SOCK_CLOEXEC), "accept4");
	int c2 = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	CHECK_OK(connect(c2, (struct sockaddr *)&sa, len));
	check_plain(accept(l, NULL, NULL), "accept");
	close(c1);
	close(c2);
	close(l);

	/* A descriptor passed with SCM_RIGHTS arrives without the flag, even when the
	 * sender's had it, unless the receiver asks with MSG_CMSG_CLOEXEC. */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	int pass = CHECK_OK(open("/dev/null", O_RDONLY | O_CLOEXEC));
	for (int round = 0; round < 2; round++) {
		char data = 'x';
		struct iovec iov = { &data, 1 };
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				      .msg_controllen = sizeof u.buf };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass, sizeof(int));
		CHECK_EQ(sendmsg(sv[0], &msg, 0), 1);
		memset(u.buf, 0, sizeof u.buf);
		msg.msg_controllen = sizeof u.buf;
		CHECK_EQ(recvmsg(sv[1], &msg, round ? MSG_CMSG_CLOEXEC : 0), 1);
		cm = CMSG_FIRSTHDR(&msg);
		CHECK(cm != NULL);
		int got;
		memcpy(&got, CMSG_DATA(cm), sizeof(int));
		if (round)
			check_cloexec(got, "MSG_CMSG_CLOEXEC");
		else
			check_plain(got, "SCM_RIGHTS");
	}
	close(pass);
	close(sv[0]);
	close(sv[1]);
}

CASE(close_range_cloexec_and_exec)
{
	int base = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(dup2(base, 60), 60);
	CHECK_EQ(dup2(base, 61), 61);
	CHECK_EQ(dup2(base, 62), 62);
	CHECK_EQ(dup2(base, 70), 70);
	/* Mark 60..62 close-on-exec without closing them. */
	CHECK_EQ(syscall(SYS_close_range, 60, 62, CLOSE_RANGE_CLOEXEC), 0);
	CHECK_EQ(fcntl(60, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(62, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(70, F_GETFD), 0);
	/* An F_DUPFD_CLOEXEC copy and an FIOCLEX-marked one go as well. */
	int dc = CHECK_OK(fcntl(base, F_DUPFD_CLOEXEC, 80));
	CHECK_EQ(dup2(base, 90), 90);
	CHECK_OK(ioctl(90, FIOCLEX));
	CHECK_EQ(fcntl(90, F_GETFD), FD_CLOEXEC);
	/* FIONCLEX undoes it. */
	CHECK_EQ(dup2(base, 91), 91);
	CHECK_OK(fcntl(91, F_SETFD, FD_CLOEXEC));
	CHECK_OK(ioctl(91, FIONCLEX));
	const char *spec[] = { neg(60), neg(61), neg(62), num(70), neg(dc), neg(90), num(91),
			       num(base) };
	CHECK_EQ(exec_check(spec, 8), 0);
	/* Flags are not valid beyond the two defined. */
	CHECK_ERR(syscall(SYS_close_range, 60, 62, 0x80), EINVAL);
	CHECK_EQ(syscall(SYS_close_range, 60, 91, 0), 0);
	CHECK_ERR(fcntl(70, F_GETFD), EBADF);
	close(base);
}

CASE(close_range_unshare_affects_only_caller)
{
	/* Two tasks sharing one fd table (CLONE_FILES): CLOSE_RANGE_UNSHARE in one gives it a
	 * private copy first, so the other keeps its descriptors. */
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(dup2(fd, 100), 100);
	CHECK_EQ(dup2(fd, 101), 101);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		/* A forked child has its own table already: closing affects only it. */
		if (syscall(SYS_close_range, 100, 101, CLOSE_RANGE_UNSHARE) != 0)
			_exit(1);
		_exit(fcntl(100, F_GETFD) == -1 && errno == EBADF ? 0 : 2);
	}
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(fcntl(100, F_GETFD), 0);
	/* With an unshared table UNSHARE is just a close. */
	CHECK_EQ(syscall(SYS_close_range, 100, 100, CLOSE_RANGE_UNSHARE), 0);
	CHECK_ERR(fcntl(100, F_GETFD), EBADF);
	CHECK_EQ(fcntl(101, F_GETFD), 0);
	/* A range past the last open fd is fine. */
	CHECK_EQ(syscall(SYS_close_range, 5000, ~0U, 0), 0);
	close(101);
	close(fd);
}

static void *thread_close_range(void *arg)
{
	(void)arg;
	long r = syscall(SYS_close_range, 110, 110, CLOSE_RANGE_UNSHARE);
	if (r != 0)
		return (void *)1;
	return fcntl(110, F_GETFD) == -1 ? NULL : (void *)2;
}

static void *thread_close_plain(void *arg)
{
	(void)arg;
	return syscall(SYS_close_range, 110, 110, 0) == 0 ? NULL : (void *)1;
}

CASE(close_range_unshare_in_thread)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(dup2(fd, 110), 110);
	pthread_t t;
	void *ret;
	CHECK_PT(pthread_create(&t, NULL, thread_close_range, NULL));
	CHECK_PT(pthread_join(t, &ret));
	CHECK_EQ((long)ret, 0);
	/* The thread closed its private copy: ours is still open. */
	CHECK_EQ(fcntl(110, F_GETFD), 0);
	/* Without UNSHARE a thread's close is everyone's. */
	CHECK_PT(pthread_create(&t, NULL, thread_close_plain, NULL));
	CHECK_PT(pthread_join(t, &ret));
	CHECK_EQ((long)ret, 0);
	CHECK_ERR(fcntl(110, F_GETFD), EBADF);
	close(fd);
}

CASE(cloexec_survives_fork_not_exec)
{
	int a = CHECK_OK(open("/dev/null", O_RDONLY | O_CLOEXEC));
	int b = CHECK_OK(open("/dev/null", O_RDONLY));
	IN_CHILD({
		CHECK_EQ(fcntl(a, F_GETFD), FD_CLOEXEC);
		CHECK_EQ(fcntl(b, F_GETFD), 0);
	});
	const char *spec[] = { neg(a), num(b) };
	CHECK_EQ(exec_check(spec, 2), 0);
	/* A failed execve closes nothing. */
	IN_CHILD({
		char *argv[] = { "x", NULL };
		CHECK_ERR(execve("/nonexistent/x", argv, environ), ENOENT);
		CHECK_EQ(fcntl(a, F_GETFD), FD_CLOEXEC);
	});
	close(a);
	close(b);
}

/* Signal-driven I/O: O_ASYNC / FIOASYNC, F_SETOWN[_EX], F_SETSIG; SIGIO or the chosen
   signal with si_fd and si_band, on pipes, FIFOs, unix and TCP sockets and ptys. */
#include "harness.h"
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define BAND_IN (POLLIN | POLLRDNORM)
#define BAND_OUT (POLLOUT | POLLWRNORM | POLLWRBAND)

/* The caller blocked sig: is it pending (for this thread or the process)? */
static int pending(int sig)
{
	sigset_t s;
	sigpending(&s);
	return sigismember(&s, sig);
}

/* Take the blocked signal sig, waiting up to 2 s; -1 if none came. */
static int take(int sig, siginfo_t *si)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	struct timespec ts = { 2, 0 };
	memset(si, 0, sizeof *si);
	return sigtimedwait(&s, si, &ts);
}

/* O_ASYNC on fd, owned by this process. */
static void own_async(int fd)
{
	CHECK_OK(fcntl(fd, F_SETOWN, getpid()));
	CHECK_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC));
}

CASE(pipe_write_sends_sigio_to_owner)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_block(SIGIO);
	own_async(p[0]);
	CHECK_EQ(fcntl(p[0], F_GETOWN), getpid());
	CHECK(fcntl(p[0], F_GETFL) & O_ASYNC);
	CHECK(!pending(SIGIO));
	CHECK_EQ(write(p[1], "x", 1), 1);
	/* Queued before write returns. */
	CHECK(pending(SIGIO));
	siginfo_t si;
	CHECK_EQ(take(SIGIO, &si), SIGIO);
	CHECK_EQ(si.si_code, SI_KERNEL);
	/* Reading does not signal the reader. */
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	CHECK(!pending(SIGIO));
	close(p[0]);
	close(p[1]);
}

CASE(setsig_gives_fd_and_band)
{
	int p[2];
	CHECK_OK(pipe(p));
	int sig = SIGRTMIN + 1;
	st_block(sig);
	st_block(SIGIO);
	CHECK_EQ(fcntl(p[0], F_GETSIG), 0);
	CHECK_OK(fcntl(p[0], F_SETSIG, sig));
	CHECK_EQ(fcntl(p[0], F_GETSIG), sig);
	own_async(p[0]);
	CHECK_EQ(write(p[1], "ab", 2), 2);
	siginfo_t si;
	CHECK_EQ(take(sig, &si), sig);
	CHECK_EQ(si.si_code, POLL_IN);
	CHECK_EQ(si.si_fd, p[0]);
	CHECK_EQ(si.si_band, BAND_IN);
	CHECK(!pending(SIGIO));
	close(p[0]);
	close(p[1]);
}

CASE(setsig_sigio_has_siginfo)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_block(SIGIO);
	CHECK_OK(fcntl(p[0], F_SETSIG, SIGIO));
	own_async(p[0]);
	CHECK_EQ(write(p[1], "a", 1), 1);
	siginfo_t si;
	CHECK_EQ(take(SIGIO, &si), SIGIO);
	CHECK_EQ(si.si_code, POLL_IN);
	CHECK_EQ(si.si_fd, p[0]);
	close(p[0]);
	close(p[1]);
}

CASE(signal_with_own_codes_gets_si_sigio)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_block(SIGCHLD);
	CHECK_OK(fcntl(p[0], F_SETSIG, SIGCHLD));
	own_async(p[0]);
	CHECK_EQ(write(p[1], "a", 1), 1);
	siginfo_t si;
	CHECK_EQ(take(SIGCHLD, &si), SIGCHLD);
	CHECK_EQ(si.si_code, SI_SIGIO);
	CHECK_EQ(si.si_fd, p[0]);
	close(p[0]);
	close(p[1]);
}

CASE(pipe_writer_gets_poll_out_on_read)
{
	int p[2];
	CHECK_OK(pipe(p));
	int sig = SIGRTMIN + 2;
	st_block(sig);
	CHECK_OK(fcntl(p[1], F_SETSIG, sig));
	own_async(p[1]);
	/* The writer's own write is no event for the write end. */
	CHECK_EQ(write(p[1], "abc", 3), 3);
	CHECK(!pending(sig));
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	siginfo_t si;
	CHECK_EQ(take(sig, &si), sig);
	CHECK_EQ(si.si_code, POLL_OUT);
	CHECK_EQ(si.si_fd, p[1]);
	CHECK_EQ(si.si_band, BAND_OUT);
	/* The last reader going away is one too. */
	close(p[0]);
	CHECK_EQ(take(sig, &si), sig);
	CHECK_EQ(si.si_code, POLL_OUT);
	close(p[1]);
}

CASE(last_writer_close_signals_reader)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_block(SIGIO);
	own_async(p[0]);
	close(p[1]);
	CHECK(pending(SIGIO));
	close(p[0]);
}

CASE(no_signal_without_owner_or_flag)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_block(SIGIO);
	/* O_ASYNC and nobody to tell. */
	CHECK_OK(fcntl(p[0], F_SETFL, O_ASYNC));
	CHECK_EQ(fcntl(p[0], F_GETOWN), 0);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK(!pending(SIGIO));
	/* An owner and no O_ASYNC. */
	CHECK_OK(fcntl(p[0], F_SETFL, 0));
	CHECK_OK(fcntl(p[0], F_SETOWN, getpid()));
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK(!pending(SIGIO));
	/* Both: signalled again; then off through FIOASYNC. */
	int on = 1;
	CHECK_OK(ioctl(p[0], FIOASYNC, &on));
	CHECK(fcntl(p[0], F_GETFL) & O_ASYNC);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK(pending(SIGIO));
	siginfo_t si;
	CHECK_EQ(take(SIGIO, &si), SIGIO);
	on = 0;
	CHECK_OK(ioctl(p[0], FIOASYNC, &on));
	CHECK(!(fcntl(p[0], F_GETFL) & O_ASYNC));
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK(!pending(SIGIO));
	close(p[0]);
	close(p[1]);
}

CASE(owner_errors_and_kinds)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_ERR(fcntl(p[0], F_SETOWN, 0x3ffffff0), ESRCH);
	CHECK_ERR(fcntl(p[0], F_SETOWN, INT_MIN), EINVAL);
	CHECK_ERR(fcntl(p[0], F_SETSIG, 65), EINVAL);
	CHECK_ERR(fcntl(p[0], F_SETSIG, -1), EINVAL);
	struct f_owner_ex ex = { 7, getpid() };
	CHECK_ERR(fcntl(p[0], F_SETOWN_EX, &ex), EINVAL);
	ex.type = F_OWNER_PID;
	ex.pid = 0x3ffffff0;
	CHECK_ERR(fcntl(p[0], F_SETOWN_EX, &ex), ESRCH);
	CHECK_ERR(fcntl(p[0], F_SETOWN_EX, (void *)8), EFAULT);
	/* A process group is negative for F_GETOWN, F_OWNER_PGRP for F_GETOWN_EX. */
	CHECK_OK(fcntl(p[0], F_SETOWN, -getpgrp()));
	CHECK_EQ(fcntl(p[0], F_GETOWN), -getpgrp());
	CHECK_OK(fcntl(p[0], F_GETOWN_EX, &ex));
	CHECK_EQ(ex.type, F_OWNER_PGRP);
	CHECK_EQ(ex.pid, getpgrp());
	ex.type = F_OWNER_TID;
	ex.pid = gettid();
	CHECK_OK(fcntl(p[0], F_SETOWN_EX, &ex));
	memset(&ex, 0, sizeof ex);
	CHECK_OK(fcntl(p[0], F_GETOWN_EX, &ex));
	CHECK_EQ(ex.type, F_OWNER_TID);
	CHECK_EQ(ex.pid, gettid());
	CHECK_EQ(fcntl(p[0], F_GETOWN), gettid());
	CHECK_OK(fcntl(p[0], F_SETOWN, getpid()));
	CHECK_OK(fcntl(p[0], F_GETOWN_EX, &ex));
	CHECK_EQ(ex.type, F_OWNER_PID);
	CHECK_EQ(ex.pid, getpid());
	/* 0 clears the owner. */
	CHECK_OK(fcntl(p[0], F_SETOWN, 0));
	CHECK_EQ(fcntl(p[0], F_GETOWN), 0);
	close(p[0]);
	close(p[1]);
}

CASE(owner_gone_reads_as_zero)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t c = fork();
	if (c == 0) {
		pause();
		_exit(0);
	}
	CHECK_OK(fcntl(p[0], F_SETOWN, c));
	CHECK_EQ(fcntl(p[0], F_GETOWN), c);
	kill(c, SIGKILL);
	CHECK_SIGNALED(st_wait(c), SIGKILL);
	CHECK_EQ(fcntl(p[0], F_GETOWN), 0);
	close(p[0]);
	close(p[1]);
}

CASE(process_group_owner)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_block(SIGIO);
	CHECK_OK(fcntl(p[0], F_SETOWN, -getpgrp()));
	CHECK_OK(fcntl(p[0], F_SETFL, O_ASYNC));
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK(pending(SIGIO));
	close(p[0]);
	close(p[1]);
}

static int tid_pipe[2];
static volatile pid_t helper_tid;
static volatile int helper_got;

static void *tid_helper(void *arg)
{
	(void)arg;
	helper_tid = gettid();
	siginfo_t si;
	helper_got = take(SIGIO, &si) == SIGIO && si.si_fd == tid_pipe[0];
	return NULL;
}

CASE(thread_owner_gets_it_alone)
{
	CHECK_OK(pipe(tid_pipe));
	st_block(SIGIO);
	CHECK_OK(fcntl(tid_pipe[0], F_SETSIG, SIGIO));
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, tid_helper, NULL), 0);
	while (!helper_tid)
		st_sleep_ms(1);
	struct f_owner_ex ex = { F_OWNER_TID, helper_tid };
	CHECK_OK(fcntl(tid_pipe[0], F_SETOWN_EX, &ex));
	CHECK_OK(fcntl(tid_pipe[0], F_SETFL, O_ASYNC));
	CHECK_EQ(write(tid_pipe[1], "x", 1), 1);
	/* Pending for that thread only: not in this thread's or the process's set. */
	CHECK(!pending(SIGIO));
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK(helper_got);
	close(tid_pipe[0]);
	close(tid_pipe[1]);
}

CASE(fd_is_the_one_o_async_was_set_on)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_block(SIGIO);
	CHECK_OK(fcntl(p[0], F_SETSIG, SIGIO));
	own_async(p[0]);
	int d = CHECK_OK(dup(p[0]));
	int old = p[0];
	close(old);
	CHECK_EQ(write(p[1], "x", 1), 1);
	siginfo_t si;
	CHECK_EQ(take(SIGIO, &si), SIGIO);
	CHECK_EQ(si.si_fd, old);
	close(d);
	close(p[1]);
}

CASE(fifo_reader)
{
	CHECK_OK(mkfifo(P("f"), 0600));
	int r = CHECK_OK(open(P("f"), O_RDONLY | O_NONBLOCK));
	int w = CHECK_OK(open(P("f"), O_WRONLY));
	st_block(SIGIO);
	own_async(r);
	CHECK_EQ(write(w, "x", 1), 1);
	CHECK(pending(SIGIO));
	close(r);
	close(w);
}

CASE(unix_socketpair)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	int sig = SIGRTMIN + 3;
	st_block(sig);
	CHECK_OK(fcntl(sv[0], F_SETSIG, sig));
	own_async(sv[0]);
	CHECK_EQ(write(sv[1], "hi", 2), 2);
	siginfo_t si;
	CHECK_EQ(take(sig, &si), sig);
	CHECK_EQ(si.si_code, POLL_IN);
	CHECK_EQ(si.si_fd, sv[0]);
	CHECK(si.si_band & POLLIN);
	close(sv[0]);
	close(sv[1]);
}

CASE(socket_owner_ioctls)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	int pid = getpid(), got = 0;
	CHECK_OK(ioctl(sv[0], FIOSETOWN, &pid));
	CHECK_OK(ioctl(sv[0], FIOGETOWN, &got));
	CHECK_EQ(got, pid);
	CHECK_EQ(fcntl(sv[0], F_GETOWN), pid);
	int pg = -getpgrp();
	CHECK_OK(ioctl(sv[0], SIOCSPGRP, &pg));
	CHECK_OK(ioctl(sv[0], SIOCGPGRP, &got));
	CHECK_EQ(got, -getpgrp());
	st_block(SIGIO);
	int on = 1;
	CHECK_OK(ioctl(sv[0], FIOASYNC, &on));
	CHECK_EQ(send(sv[1], "x", 1, 0), 1);
	siginfo_t si;
	CHECK_EQ(take(SIGIO, &si), SIGIO);
	/* Not a socket: FIOSETOWN is no ioctl of a pipe. */
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_ERR(ioctl(p[0], FIOSETOWN, &pid), ENOTTY);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

CASE(tcp_listener_and_data)
{
	int l = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	CHECK_OK(bind(l, (struct sockaddr *)&a, sizeof a));
	CHECK_OK(listen(l, 4));
	CHECK_OK(getsockname(l, (struct sockaddr *)&a, &al));
	int sig = SIGRTMIN + 4;
	st_block(sig);
	CHECK_OK(fcntl(l, F_SETSIG, sig));
	own_async(l);
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
	siginfo_t si;
	CHECK_EQ(take(sig, &si), sig);
	CHECK_EQ(si.si_fd, l);
	CHECK_EQ(si.si_code, POLL_IN);
	int s = CHECK_OK(accept(l, NULL, NULL));
	CHECK_OK(fcntl(s, F_SETSIG, sig));
	own_async(s);
	CHECK_EQ(write(c, "x", 1), 1);
	for (;;) {
		CHECK_EQ(take(sig, &si), sig);
		if (si.si_fd == s)
			break;
	}
	CHECK_EQ(si.si_code, POLL_IN);
	CHECK(si.si_band & POLLIN);
	close(s);
	close(c);
	close(l);
}

CASE(pty_both_sides)
{
	int m = CHECK_OK(posix_openpt(O_RDWR | O_NOCTTY));
	CHECK_OK(grantpt(m));
	CHECK_OK(unlockpt(m));
	int s = CHECK_OK(open(ptsname(m), O_RDWR | O_NOCTTY));
	int sig = SIGRTMIN + 5;
	st_block(sig);
	CHECK_OK(fcntl(m, F_SETSIG, sig));
	CHECK_OK(fcntl(s, F_SETSIG, sig));
	own_async(m);
	own_async(s);
	/* Drop anything the set-up itself signalled. */
	siginfo_t si;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&set, &si, &zero) == sig) {
	}
	CHECK_EQ(write(m, "ab\n", 3), 3);
	int seen_s = 0, seen_m = 0;
	while (!seen_s || !seen_m) {
		CHECK_EQ(take(sig, &si), sig);
		CHECK_EQ(si.si_code == POLL_IN || si.si_code == POLL_OUT, 1);
		if (si.si_fd == s && si.si_code == POLL_IN)
			seen_s = 1;
		/* The echo comes back to the master. */
		if (si.si_fd == m && si.si_code == POLL_IN)
			seen_m = 1;
	}
	close(s);
	close(m);
}

CASE(eventfd_and_regular_files_have_no_fasync)
{
	int e = CHECK_OK(eventfd(0, 0));
	int on = 1;
	CHECK_ERR(ioctl(e, FIOASYNC, &on), ENOTTY);
	CHECK(!(fcntl(e, F_GETFL) & O_ASYNC));
	/* F_SETFL succeeds but does not keep the flag, and nothing is sent. */
	st_block(SIGIO);
	own_async(e);
	CHECK(!(fcntl(e, F_GETFL) & O_ASYNC));
	uint64_t one = 1;
	CHECK_EQ(write(e, &one, 8), 8);
	st_sleep_ms(50);
	CHECK(!pending(SIGIO));
	close(e);
	int f = CHECK_OK(open(P("r"), O_RDWR | O_CREAT, 0600));
	CHECK_ERR(ioctl(f, FIOASYNC, &on), ENOTTY);
	CHECK_OK(fcntl(f, F_SETFL, O_ASYNC));
	CHECK(!(fcntl(f, F_GETFL) & O_ASYNC));
	close(f);
}

CASE(terminal_names_its_owner)
{
	int m = CHECK_OK(posix_openpt(O_RDWR | O_NOCTTY));
	CHECK_OK(grantpt(m));
	CHECK_OK(unlockpt(m));
	int s = CHECK_OK(open(ptsname(m), O_RDWR | O_NOCTTY));
	/* O_ASYNC on a terminal without an owner: the caller (no foreground group). */
	CHECK_EQ(fcntl(s, F_GETOWN), 0);
	CHECK_OK(fcntl(s, F_SETFL, O_ASYNC));
	CHECK_EQ(fcntl(s, F_GETOWN), getpid());
	CHECK_OK(fcntl(m, F_SETFL, O_ASYNC));
	CHECK_EQ(fcntl(m, F_GETOWN), getpid());
	/* An owner already there stays. */
	int m2 = CHECK_OK(posix_openpt(O_RDWR | O_NOCTTY));
	CHECK_OK(fcntl(m2, F_SETOWN, -getpgrp()));
	CHECK_OK(fcntl(m2, F_SETFL, O_ASYNC));
	CHECK_EQ(fcntl(m2, F_GETOWN), -getpgrp());
	/* Not so for a pipe. */
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(fcntl(p[0], F_SETFL, O_ASYNC));
	CHECK_EQ(fcntl(p[0], F_GETOWN), 0);
	close(p[0]);
	close(p[1]);
	close(m2);
	close(s);
	close(m);
}

CASE(tcp_connect_completion)
{
	int l = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	CHECK_OK(bind(l, (struct sockaddr *)&a, sizeof a));
	CHECK_OK(listen(l, 4));
	CHECK_OK(getsockname(l, (struct sockaddr *)&a, &al));
	int sig = SIGRTMIN + 6;
	st_block(sig);
	int c = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	CHECK_OK(fcntl(c, F_SETSIG, sig));
	own_async(c);
	int r = connect(c, (struct sockaddr *)&a, sizeof a);
	CHECK(r == 0 || errno == EINPROGRESS);
	/* Connected: writable, POLL_OUT. */
	siginfo_t si;
	CHECK_EQ(take(sig, &si), sig);
	CHECK_EQ(si.si_fd, c);
	CHECK_EQ(si.si_code, POLL_OUT);
	CHECK(si.si_band & POLLOUT);
	close(c);
	close(l);
}

/* poll, ppoll, select, pselect. */
#include "harness.h"
#include <poll.h>
#include <sys/select.h>

CASE(poll_readable_after_write)
{
	int p[2];
	CHECK_OK(pipe(p));
	struct pollfd fds[1] = { { p[0], POLLIN, 0 } };
	CHECK_EQ(poll(fds, 1, 0), 0);
	CHECK_EQ(fds[0].revents, 0);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_EQ(poll(fds, 1, 0), 1);
	CHECK_EQ(fds[0].revents, POLLIN);
	close(p[0]);
	close(p[1]);
}

CASE(poll_timeout)
{
	int p[2];
	CHECK_OK(pipe(p));
	struct pollfd fds[1] = { { p[0], POLLIN, 0 } };
	long long t0 = st_mono_ms();
	CHECK_EQ(poll(fds, 1, 50), 0);
	long long dt = st_mono_ms() - t0;
	CHECK_GE(dt, 49);
	CHECK_LT(dt, 5000);
	close(p[0]);
	close(p[1]);
}

CASE(poll_wakes_on_write_from_other_process)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(30);
		(void)!write(p[1], "x", 1);
		_exit(0);
	}
	struct pollfd fds[1] = { { p[0], POLLIN, 0 } };
	CHECK_EQ(poll(fds, 1, 10000), 1);
	CHECK_EQ(fds[0].revents, POLLIN);
	st_wait(pid);
	close(p[0]);
	close(p[1]);
}

CASE(poll_hup_when_writer_closes)
{
	int p[2];
	CHECK_OK(pipe(p));
	close(p[1]);
	struct pollfd fds[1] = { { p[0], POLLIN, 0 } };
	CHECK_EQ(poll(fds, 1, 1000), 1);
	CHECK_EQ(fds[0].revents, POLLHUP);
	close(p[0]);
}

CASE(poll_err_when_reader_closes)
{
	int p[2];
	CHECK_OK(pipe(p));
	close(p[0]);
	struct pollfd fds[1] = { { p[1], POLLOUT, 0 } };
	CHECK_EQ(poll(fds, 1, 1000), 1);
	CHECK_EQ(fds[0].revents, POLLOUT | POLLERR);
	close(p[1]);
}

CASE(poll_nval_for_closed_fd)
{
	int p[2];
	CHECK_OK(pipe(p));
	int closed = p[0];
	close(closed);
	struct pollfd fds[2] = { { closed, POLLIN, 0 }, { -1, POLLIN, 0 } };
	CHECK_EQ(poll(fds, 2, 0), 1);
	CHECK_EQ(fds[0].revents, POLLNVAL);
	/* Negative fds are skipped. */
	CHECK_EQ(fds[1].revents, 0);
	close(p[1]);
}

CASE(poll_writable_and_regular_file)
{
	int p[2];
	CHECK_OK(pipe(p));
	st_write_file(P("f"), "x");
	int fd = CHECK_OK(open(P("f"), O_RDWR));
	struct pollfd fds[2] = { { p[1], POLLOUT, 0 }, { fd, POLLIN | POLLOUT, 0 } };
	CHECK_EQ(poll(fds, 2, 0), 2);
	CHECK_EQ(fds[0].revents, POLLOUT);
	CHECK_EQ(fds[1].revents, POLLIN | POLLOUT);
	close(fd);
	close(p[0]);
	close(p[1]);
}

CASE(poll_errors)
{
	CHECK_ERR(syscall(SYS_poll, 8, 1, 0), EFAULT);
	CHECK_ERR(syscall(SYS_poll, NULL, 1 << 30, 0), EINVAL);
	CHECK_EQ(poll(NULL, 0, 10), 0);
}

static volatile sig_atomic_t hits;
static void on_usr1(int sig)
{
	(void)sig;
	hits++;
}

CASE(ppoll_sigmask_lets_signal_in)
{
	st_handle(SIGUSR1, on_usr1, 0);
	st_block(SIGUSR1);
	raise(SIGUSR1);
	CHECK_EQ(hits, 0);
	int p[2];
	CHECK_OK(pipe(p));
	struct pollfd fds[1] = { { p[0], POLLIN, 0 } };
	sigset_t empty;
	sigemptyset(&empty);
	struct timespec ts = { 5, 0 };
	CHECK_ERR(ppoll(fds, 1, &ts, &empty), EINTR);
	CHECK_EQ(hits, 1);
	close(p[0]);
	close(p[1]);
}

CASE(select_readable_and_writable)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "x", 1), 1);
	fd_set r, w;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(p[0], &r);
	FD_SET(p[1], &w);
	struct timeval tv = { 0, 0 };
	int maxfd = p[0] > p[1] ? p[0] : p[1];
	CHECK_EQ(select(maxfd + 1, &r, &w, NULL, &tv), 2);
	CHECK(FD_ISSET(p[0], &r));
	CHECK(FD_ISSET(p[1], &w));
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	FD_ZERO(&r);
	FD_SET(p[0], &r);
	CHECK_EQ(select(p[0] + 1, &r, NULL, NULL, &tv), 0);
	CHECK(!FD_ISSET(p[0], &r));
	close(p[0]);
	close(p[1]);
}

CASE(select_timeout_updates_timeval)
{
	int p[2];
	CHECK_OK(pipe(p));
	fd_set r;
	FD_ZERO(&r);
	FD_SET(p[0], &r);
	struct timeval tv = { 0, 50000 };
	long long t0 = st_mono_ms();
	CHECK_EQ(select(p[0] + 1, &r, NULL, NULL, &tv), 0);
	CHECK_GE(st_mono_ms() - t0, 49);
	/* Linux writes back the time not slept. */
	CHECK_EQ(tv.tv_sec, 0);
	CHECK_EQ(tv.tv_usec, 0);
	close(p[0]);
	close(p[1]);
}

CASE(select_errors)
{
	int p[2];
	CHECK_OK(pipe(p));
	int closed = p[0];
	close(closed);
	fd_set r;
	FD_ZERO(&r);
	FD_SET(closed, &r);
	struct timeval tv = { 0, 0 };
	CHECK_ERR(select(closed + 1, &r, NULL, NULL, &tv), EBADF);
	CHECK_ERR(select(-1, NULL, NULL, NULL, &tv), EINVAL);
	struct timeval bad = { 0, -1 };
	CHECK_ERR(select(0, NULL, NULL, NULL, &bad), EINVAL);
	close(p[1]);
}

CASE(pselect_sigmask)
{
	st_handle(SIGUSR1, on_usr1, 0);
	st_block(SIGUSR1);
	raise(SIGUSR1);
	sigset_t empty;
	sigemptyset(&empty);
	struct timespec ts = { 5, 0 };
	CHECK_ERR(pselect(0, NULL, NULL, NULL, &ts, &empty), EINTR);
	CHECK_EQ(hits, 1);
}

CASE(select_as_sleep)
{
	struct timeval tv = { 0, 50000 };
	long long t0 = st_mono_ms();
	CHECK_EQ(select(0, NULL, NULL, NULL, &tv), 0);
	CHECK_GE(st_mono_ms() - t0, 49);
}

/* epoll: create, ctl, wait, level/edge triggering, oneshot, nesting. */
#include "harness.h"
#include <sys/epoll.h>

static int pipe_pair(int p[2])
{
	return pipe2(p, O_NONBLOCK);
}

CASE(wait_reports_readable_pipe)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1122334455667788ULL };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	struct epoll_event out[4];
	CHECK_EQ(epoll_wait(ep, out, 4, 0), 0);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_EQ(epoll_wait(ep, out, 4, 1000), 1);
	CHECK_EQ(out[0].events, EPOLLIN);
	CHECK_EQ(out[0].data.u64, 0x1122334455667788ULL);
	/* Level-triggered: still reported while data remains. */
	CHECK_EQ(epoll_wait(ep, out, 4, 0), 1);
	close(ep);
	close(p[0]);
	close(p[1]);
}

CASE(wait_timeout)
{
	int ep = CHECK_OK(epoll_create1(EPOLL_CLOEXEC));
	CHECK_EQ(fcntl(ep, F_GETFD), FD_CLOEXEC);
	struct epoll_event out[1];
	long long t0 = st_mono_ms();
	CHECK_EQ(epoll_wait(ep, out, 1, 50), 0);
	CHECK_GE(st_mono_ms() - t0, 49);
	close(ep);
}

CASE(ctl_errors)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	struct epoll_event ev = { .events = EPOLLIN };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), EEXIST);
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev), ENOENT);
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL), ENOENT);
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL);
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, 9999, &ev), EBADF);
	CHECK_ERR(epoll_ctl(p[0], EPOLL_CTL_ADD, p[1], &ev), EINVAL);
	CHECK_ERR(epoll_ctl(ep, 99, p[0], &ev), EINVAL);
	/* Regular files do not support epoll. */
	st_write_file(P("f"), "x");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EPERM);
	struct epoll_event out[1];
	CHECK_ERR(epoll_wait(ep, out, 0, 0), EINVAL);
	CHECK_ERR(epoll_wait(p[0], out, 1, 0), EINVAL);
	CHECK_ERR(epoll_create(0), EINVAL);
	CHECK_ERR(epoll_create1(0x12345), EINVAL);
	close(fd);
	close(ep);
	close(p[0]);
	close(p[1]);
}

CASE(ctl_mod_and_del)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	CHECK_EQ(write(p[1], "x", 1), 1);
	struct epoll_event ev = { .events = EPOLLOUT, .data.fd = p[0] };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	struct epoll_event out[2];
	CHECK_EQ(epoll_wait(ep, out, 2, 0), 0);
	ev.events = EPOLLIN;
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	CHECK_EQ(epoll_wait(ep, out, 2, 0), 1);
	CHECK_EQ(out[0].data.fd, p[0]);
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	CHECK_EQ(epoll_wait(ep, out, 2, 0), 0);
	close(ep);
	close(p[0]);
	close(p[1]);
}

CASE(edge_triggered)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	CHECK_EQ(write(p[1], "ab", 2), 2);
	struct epoll_event out[1];
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 1);
	/* No new edge: not reported again even though data remains. */
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 0);
	CHECK_EQ(write(p[1], "c", 1), 1);
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 1);
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 0);
	close(ep);
	close(p[0]);
	close(p[1]);
}

CASE(oneshot)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	CHECK_EQ(write(p[1], "a", 1), 1);
	struct epoll_event out[1];
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 1);
	CHECK_EQ(write(p[1], "b", 1), 1);
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 0);
	/* Disabled, not removed: ADD fails, MOD re-arms. */
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), EEXIST);
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 1);
	close(ep);
	close(p[0]);
	close(p[1]);
}

CASE(hup_and_err)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	struct epoll_event ev = { .events = EPOLLIN };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	close(p[1]);
	struct epoll_event out[1];
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 1);
	/* EPOLLHUP is reported even when not requested. */
	CHECK_EQ(out[0].events, EPOLLHUP);
	int q[2];
	CHECK_OK(pipe_pair(q));
	ev.events = EPOLLOUT;
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, q[1], &ev));
	close(q[0]);
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 1);
	CHECK_EQ(out[0].events, EPOLLOUT | EPOLLERR);
	close(ep);
	close(p[0]);
	close(q[1]);
}

CASE(maxevents_limits_results)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[3][2];
	for (int i = 0; i < 3; i++) {
		CHECK_OK(pipe_pair(p[i]));
		CHECK_EQ(write(p[i][1], "x", 1), 1);
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
		CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[i][0], &ev));
	}
	struct epoll_event out[3];
	CHECK_EQ(epoll_wait(ep, out, 2, 0), 2);
	CHECK_EQ(epoll_wait(ep, out, 3, 0), 3);
	int seen = 0;
	for (int i = 0; i < 3; i++)
		seen |= 1 << out[i].data.u32;
	CHECK_EQ(seen, 7);
	close(ep);
}

CASE(closing_fd_removes_registration)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	CHECK_EQ(write(p[1], "x", 1), 1);
	struct epoll_event ev = { .events = EPOLLIN };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	close(p[0]);
	struct epoll_event out[1];
	CHECK_EQ(epoll_wait(ep, out, 1, 0), 0);
	close(ep);
	close(p[1]);
}

CASE(nested_epoll)
{
	int inner = CHECK_OK(epoll_create1(0));
	int outer = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	struct epoll_event ev = { .events = EPOLLIN };
	CHECK_OK(epoll_ctl(inner, EPOLL_CTL_ADD, p[0], &ev));
	ev.data.fd = inner;
	CHECK_OK(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &ev));
	struct epoll_event out[1];
	CHECK_EQ(epoll_wait(outer, out, 1, 0), 0);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_EQ(epoll_wait(outer, out, 1, 0), 1);
	CHECK_EQ(out[0].data.fd, inner);
	/* Loops are refused. */
	ev.data.fd = outer;
	CHECK_ERR(epoll_ctl(inner, EPOLL_CTL_ADD, outer, &ev), ELOOP);
	close(inner);
	close(outer);
	close(p[0]);
	close(p[1]);
}

CASE(wait_wakes_on_event_from_thread_or_process)
{
	int ep = CHECK_OK(epoll_create1(0));
	int p[2];
	CHECK_OK(pipe_pair(p));
	struct epoll_event ev = { .events = EPOLLIN };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(30);
		(void)!write(p[1], "x", 1);
		_exit(0);
	}
	struct epoll_event out[1];
	CHECK_EQ(epoll_wait(ep, out, 1, 10000), 1);
	st_wait(pid);
	close(ep);
	close(p[0]);
	close(p[1]);
}

static volatile sig_atomic_t hits;
static void on_usr1(int sig)
{
	(void)sig;
	hits++;
}

CASE(epoll_pwait_sigmask)
{
	st_handle(SIGUSR1, on_usr1, 0);
	st_block(SIGUSR1);
	raise(SIGUSR1);
	int ep = CHECK_OK(epoll_create1(0));
	sigset_t empty;
	sigemptyset(&empty);
	struct epoll_event out[1];
	CHECK_ERR(epoll_pwait(ep, out, 1, 5000, &empty), EINTR);
	CHECK_EQ(hits, 1);
	close(ep);
}

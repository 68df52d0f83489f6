/* timerfd: one-shot and interval timers, absolute times, gettime, errors. */
#include "harness.h"
#include <poll.h>
#include <sys/timerfd.h>

CASE(oneshot_expires)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, 0));
	struct itimerspec its = { { 0, 0 }, { 0, 50 * 1000000 } };
	long long t0 = st_mono_ms();
	CHECK_OK(timerfd_settime(fd, 0, &its, NULL));
	uint64_t n = 0;
	CHECK_EQ(read(fd, &n, 8), 8);
	CHECK_EQ(n, 1);
	long long dt = st_mono_ms() - t0;
	CHECK_GE(dt, 49);
	CHECK_LT(dt, 5000);
	close(fd);
}

CASE(disarmed_gettime_zero)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	struct itimerspec cur;
	memset(&cur, 0xff, sizeof cur);
	CHECK_OK(timerfd_gettime(fd, &cur));
	CHECK_EQ(cur.it_value.tv_sec, 0);
	CHECK_EQ(cur.it_value.tv_nsec, 0);
	CHECK_EQ(cur.it_interval.tv_sec, 0);
	close(fd);
}

CASE(gettime_counts_down)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, 0));
	struct itimerspec its = { { 2, 0 }, { 10, 0 } };
	CHECK_OK(timerfd_settime(fd, 0, &its, NULL));
	struct itimerspec cur;
	CHECK_OK(timerfd_gettime(fd, &cur));
	CHECK_LE(cur.it_value.tv_sec, 9);
	CHECK_GE(cur.it_value.tv_sec, 8);
	CHECK_EQ(cur.it_interval.tv_sec, 2);
	/* settime returns the old setting. */
	struct itimerspec zero = { { 0, 0 }, { 0, 0 } }, old;
	CHECK_OK(timerfd_settime(fd, 0, &zero, &old));
	CHECK_GE(old.it_value.tv_sec, 8);
	CHECK_EQ(old.it_interval.tv_sec, 2);
	CHECK_OK(timerfd_gettime(fd, &cur));
	CHECK_EQ(cur.it_value.tv_sec + cur.it_value.tv_nsec, 0);
	close(fd);
}

CASE(nonblocking_unexpired_eagain)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
	uint64_t n;
	CHECK_ERR(read(fd, &n, 8), EAGAIN);
	struct itimerspec its = { { 0, 0 }, { 10, 0 } };
	CHECK_OK(timerfd_settime(fd, 0, &its, NULL));
	CHECK_ERR(read(fd, &n, 8), EAGAIN);
	CHECK_ERR(read(fd, &n, 4), EINVAL);
	close(fd);
}

CASE(interval_counts_expirations)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, 0));
	struct itimerspec its = { { 0, 10 * 1000000 }, { 0, 10 * 1000000 } };
	CHECK_OK(timerfd_settime(fd, 0, &its, NULL));
	st_sleep_ms(100);
	uint64_t n = 0;
	CHECK_EQ(read(fd, &n, 8), 8);
	CHECK_GE(n, 5);
	CHECK_LE(n, 100);
	close(fd);
}

CASE(absolute_time_in_past_fires_at_once)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK));
	struct itimerspec its = { { 0, 0 }, { 1, 0 } };
	CHECK_OK(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL));
	struct pollfd pfd = { fd, POLLIN, 0 };
	CHECK_EQ(poll(&pfd, 1, 1000), 1);
	uint64_t n = 0;
	CHECK_EQ(read(fd, &n, 8), 8);
	CHECK_EQ(n, 1);
	close(fd);
}

CASE(absolute_monotonic)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, 0));
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	now.tv_nsec += 50 * 1000000;
	if (now.tv_nsec >= 1000000000) {
		now.tv_sec++;
		now.tv_nsec -= 1000000000;
	}
	struct itimerspec its = { { 0, 0 }, now };
	long long t0 = st_mono_ms();
	CHECK_OK(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL));
	uint64_t n;
	CHECK_EQ(read(fd, &n, 8), 8);
	CHECK_GE(st_mono_ms() - t0, 45);
	close(fd);
}

CASE(errors)
{
	CHECK_ERR(timerfd_create(12345, 0), EINVAL);
	CHECK_ERR(timerfd_create(CLOCK_MONOTONIC, 0x12345), EINVAL);
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, 0));
	struct itimerspec bad = { { 0, 0 }, { 0, 1000000000 } };
	CHECK_ERR(timerfd_settime(fd, 0, &bad, NULL), EINVAL);
	struct itimerspec ok = { { 0, 0 }, { 1, 0 } };
	CHECK_ERR(timerfd_settime(fd, 0x100, &ok, NULL), EINVAL);
	CHECK_ERR(timerfd_settime(0, 0, &ok, NULL), EINVAL);
	close(fd);
}

CASE(poll_readable_on_expiry)
{
	int fd = CHECK_OK(timerfd_create(CLOCK_MONOTONIC, 0));
	struct itimerspec its = { { 0, 0 }, { 0, 30 * 1000000 } };
	CHECK_OK(timerfd_settime(fd, 0, &its, NULL));
	struct pollfd pfd = { fd, POLLIN, 0 };
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	CHECK_EQ(poll(&pfd, 1, 5000), 1);
	CHECK_EQ(pfd.revents, POLLIN);
	close(fd);
}

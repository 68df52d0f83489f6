/* clock_gettime, clock_getres, gettimeofday, time, nanosleep, clock_nanosleep. */
#include "harness.h"
#include <sys/times.h>

CASE(monotonic_never_goes_back)
{
	struct timespec prev, cur;
	CHECK_OK(clock_gettime(CLOCK_MONOTONIC, &prev));
	for (int i = 0; i < 10000; i++) {
		CHECK_OK(clock_gettime(CLOCK_MONOTONIC, &cur));
		CHECK(cur.tv_sec > prev.tv_sec || (cur.tv_sec == prev.tv_sec && cur.tv_nsec >= prev.tv_nsec));
		CHECK(cur.tv_nsec >= 0 && cur.tv_nsec < 1000000000);
		prev = cur;
	}
}

CASE(realtime_agrees_with_time_and_gettimeofday)
{
	struct timespec ts;
	CHECK_OK(clock_gettime(CLOCK_REALTIME, &ts));
	time_t t = time(NULL);
	struct timeval tv;
	CHECK_OK(gettimeofday(&tv, NULL));
	/* time() may read a coarse clock that lags clock_gettime by a tick: allow 1 s either way. */
	CHECK_LE(ts.tv_sec - t, 1);
	CHECK_LE(t - ts.tv_sec, 1);
	CHECK_LE(tv.tv_sec - ts.tv_sec, 1);
	CHECK_GE(tv.tv_sec, ts.tv_sec);
	CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000);
	/* After 2020 (a sanity check that the clock is real). */
	CHECK_GT(ts.tv_sec, 1577836800);
	time_t t2;
	CHECK_EQ(time(&t2), t2);
}

CASE(all_clocks_readable)
{
	clockid_t clocks[] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID,
			       CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE,
			       CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME };
	for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
		struct timespec ts;
		if (clock_gettime(clocks[i], &ts) != 0)
			FAIL("clock_gettime(%d): %s", clocks[i], st_errname(errno));
		CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
	}
	struct timespec mono, boot;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	CHECK_GE(boot.tv_sec, mono.tv_sec);
}

CASE(clock_getres)
{
	struct timespec res;
	CHECK_OK(clock_getres(CLOCK_MONOTONIC, &res));
	CHECK_EQ(res.tv_sec, 0);
	CHECK_GT(res.tv_nsec, 0);
	CHECK_LE(res.tv_nsec, 1000000);
	CHECK_OK(clock_getres(CLOCK_REALTIME, &res));
	CHECK_LE(res.tv_nsec, 1000000);
	CHECK_OK(clock_getres(CLOCK_MONOTONIC, NULL));
}

CASE(invalid_clock_einval)
{
	struct timespec ts;
	CHECK_ERR(syscall(SYS_clock_gettime, 12345, &ts), EINVAL);
	CHECK_ERR(syscall(SYS_clock_getres, 12345, &ts), EINVAL);
	CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)8), EFAULT);
}

CASE(nanosleep_sleeps)
{
	struct timespec req = { 0, 50 * 1000000 }, rem = { 9, 9 };
	long long t0 = st_mono_ms();
	CHECK_OK(nanosleep(&req, &rem));
	long long dt = st_mono_ms() - t0;
	CHECK_GE(dt, 50);
	CHECK_LT(dt, 5000);
}

CASE(nanosleep_invalid)
{
	struct timespec bad = { 0, 1000000000 };
	CHECK_ERR(nanosleep(&bad, NULL), EINVAL);
	struct timespec neg = { -1, 0 };
	CHECK_ERR(nanosleep(&neg, NULL), EINVAL);
	struct timespec zero = { 0, 0 };
	CHECK_OK(nanosleep(&zero, NULL));
}

static void on_alarm(int sig)
{
	(void)sig;
}

CASE(nanosleep_interrupted_reports_remaining)
{
	st_handle(SIGALRM, on_alarm, 0);
	struct itimerval it = { { 0, 0 }, { 0, 50000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	struct timespec req = { 10, 0 }, rem = { 0, 0 };
	CHECK_ERR(nanosleep(&req, &rem), EINTR);
	CHECK_GE(rem.tv_sec, 5);
	CHECK_LE(rem.tv_sec, 10);
}

CASE(clock_nanosleep_absolute)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* A clock may start near zero (e.g. in a fresh sandbox): use the epoch. */
	struct timespec past = { 0, 1 };
	long long t0 = st_mono_ms();
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL), 0);
	CHECK_LT(st_mono_ms() - t0, 1000);
	struct timespec soon = now;
	soon.tv_nsec += 50 * 1000000;
	if (soon.tv_nsec >= 1000000000) {
		soon.tv_sec++;
		soon.tv_nsec -= 1000000000;
	}
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &soon, NULL), 0);
	struct timespec after;
	clock_gettime(CLOCK_MONOTONIC, &after);
	CHECK(after.tv_sec > soon.tv_sec || (after.tv_sec == soon.tv_sec && after.tv_nsec >= soon.tv_nsec));
	/* clock_nanosleep returns the error number instead of setting errno. */
	CHECK_EQ(clock_nanosleep(12345, 0, &soon, NULL), EINVAL);
}

CASE(process_cputime_advances)
{
	struct timespec a, b;
	CHECK_OK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a));
	volatile unsigned long x = 0;
	for (unsigned long i = 0; i < 50000000UL; i++)
		x += i;
	CHECK_OK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b));
	long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
	CHECK_GT(ns, 1000000);
	/* Sleeping does not use CPU time. */
	struct timespec t1, t2;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	st_sleep_ms(100);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t2);
	ns = (t2.tv_sec - t1.tv_sec) * 1000000000LL + (t2.tv_nsec - t1.tv_nsec);
	CHECK_LT(ns, 50 * 1000000);
}

CASE(times_and_clock_ticks)
{
	struct tms t;
	clock_t c = times(&t);
	CHECK_NE(c, (clock_t)-1);
	CHECK_EQ(sysconf(_SC_CLK_TCK), 100);
}

CASE(settimeofday_unprivileged_eperm)
{
	IN_CHILD({
		st_drop_privileges();
		struct timeval tv = { 1000000000, 0 };
		CHECK_ERR(settimeofday(&tv, NULL), EPERM);
		struct timespec ts = { 1000000000, 0 };
		CHECK_ERR(clock_settime(CLOCK_REALTIME, &ts), EPERM);
	});
	struct timespec ts = { 0, 0 };
	CHECK_ERR(clock_settime(CLOCK_MONOTONIC, &ts), EINVAL);
}

/* clock: clock_gettime/getres across clock ids (BOOTTIME, COARSE, CPU clocks of other
 * processes and threads), clock_nanosleep's return convention, TIMER_ABSTIME, EINTR
 * and the remaining time, clock_settime errors. Slack is >= 50 ms everywhere. */
#include "harness.h"

static long long ts_ns(struct timespec t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long now(clockid_t c)
{
	struct timespec t;
	if (clock_gettime(c, &t) != 0)
		FAIL("clock_gettime(%d): %s", (int)c, st_errname(errno));
	if (t.tv_nsec < 0 || t.tv_nsec >= 1000000000L)
		FAIL("clock %d: tv_nsec %ld out of range", (int)c, t.tv_nsec);
	return ts_ns(t);
}

static void burn_ms(long ms)
{
	long long end = now(CLOCK_THREAD_CPUTIME_ID) + ms * 1000000LL;
	while (now(CLOCK_THREAD_CPUTIME_ID) < end) {
	}
}

CASE(boottime_tracks_monotonic)
{
	long long m0 = now(CLOCK_MONOTONIC), b0 = now(CLOCK_BOOTTIME);
	/* Boot time includes suspend: never behind monotonic. */
	CHECK_GE(b0 - m0, -1000000LL);
	st_sleep_ms(200);
	long long m1 = now(CLOCK_MONOTONIC), b1 = now(CLOCK_BOOTTIME);
	CHECK_GE(m1 - m0, 200000000LL);
	/* Both advanced by the same amount (no suspend in between). */
	long long diff = (b1 - b0) - (m1 - m0);
	CHECK_LE(diff < 0 ? -diff : diff, 50000000LL);
	/* The raw monotonic clock advances alike. */
	long long r0 = now(CLOCK_MONOTONIC_RAW);
	st_sleep_ms(100);
	long long r1 = now(CLOCK_MONOTONIC_RAW);
	CHECK_GE(r1 - r0, 90000000LL);
	CHECK_LE(r1 - r0, 1000000000LL);
	/* BOOTTIME agrees with /proc/uptime (seconds since boot). */
	char buf[128];
	st_read_file("/proc/uptime", buf, sizeof buf);
	double up = strtod(buf, NULL);
	double bt = now(CLOCK_BOOTTIME) / 1e9;
	CHECK_LE(bt - up < 0 ? up - bt : bt - up, 1.0);
}

CASE(coarse_clocks)
{
	struct timespec rf, rc;
	CHECK_OK(clock_getres(CLOCK_MONOTONIC, &rf));
	CHECK_OK(clock_getres(CLOCK_MONOTONIC_COARSE, &rc));
	/* Coarse clocks tick at most every 1/HZ (<= 10 ms) and no finer than the fine ones. */
	CHECK_GE(ts_ns(rc), ts_ns(rf));
	CHECK_LE(ts_ns(rc), 10000000LL);
	CHECK_GT(ts_ns(rc), 0);
	CHECK_OK(clock_getres(CLOCK_REALTIME_COARSE, &rc));
	CHECK_LE(ts_ns(rc), 10000000LL);
	/* They read within a tick or so of the fine clocks. */
	long long c = now(CLOCK_MONOTONIC_COARSE), f = now(CLOCK_MONOTONIC);
	CHECK_LE(c, f);
	CHECK_LE(f - c, 50000000LL);
	c = now(CLOCK_REALTIME_COARSE);
	f = now(CLOCK_REALTIME);
	CHECK_LE(f - c, 50000000LL);
	CHECK_GE(f - c, -50000000LL);
	/* The fine clocks have 1 ns resolution. */
	CHECK_EQ(ts_ns(rf), 1);
	CHECK_OK(clock_getres(CLOCK_BOOTTIME, &rf));
	CHECK_EQ(ts_ns(rf), 1);
	/* A NULL res is allowed. */
	CHECK_EQ(clock_getres(CLOCK_MONOTONIC, NULL), 0);
}

CASE(cpu_clocks_of_other_process_and_thread)
{
	int p[2], q[2];
	CHECK_OK(pipe(p));
	CHECK_OK(pipe(q));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		burn_ms(200);
		(void)!write(q[1], "b", 1);
		/* Idle (blocked) from now on. */
		char c;
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	char c;
	CHECK_EQ(read(q[0], &c, 1), 1);
	clockid_t cid;
	CHECK_PT(clock_getcpuclockid(pid, &cid));
	long long t = now(cid);
	CHECK_GE(t, 150000000LL);
	CHECK_LE(t, 2000000000LL);
	/* An idle process's CPU clock stands still. */
	st_sleep_ms(100);
	long long t2 = now(cid);
	CHECK_LE(t2 - t, 20000000LL);
	struct timespec res;
	CHECK_OK(clock_getres(cid, &res));
	CHECK_EQ(ts_ns(res), 1);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_EXITED(st_wait(pid), 0);
	/* The reaped process's clock is gone. */
	struct timespec ts;
	CHECK_ERR(clock_gettime(cid, &ts), EINVAL);
	/* Our own thread clock via pthread_getcpuclockid. */
	clockid_t tc;
	CHECK_PT(pthread_getcpuclockid(pthread_self(), &tc));
	long long a = now(tc);
	burn_ms(100);
	CHECK_GE(now(tc) - a, 90000000LL);
}

CASE(clock_nanosleep_returns_error_numbers)
{
	struct timespec ts = { 0, 1000 };
	/* It returns the error instead of setting errno. */
	errno = 0;
	CHECK_EQ(clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &ts, NULL), EINVAL);
	CHECK_EQ(clock_nanosleep((clockid_t)12345, 0, &ts, NULL), EINVAL);
	struct timespec bad = { 0, 1000000000L };
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL), EINVAL);
	struct timespec neg = { -1, 0 };
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &neg, NULL), EINVAL);
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, (struct timespec *)8, NULL), EFAULT);
	CHECK_EQ(errno, 0);
	/* The raw syscall uses the usual -1/errno; the kernel says the thread CPU clock
	 * cannot sleep with EOPNOTSUPP (glibc turns that case into EINVAL itself). */
	CHECK_ERR(syscall(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &ts, NULL), EOPNOTSUPP);
	CHECK_ERR(syscall(SYS_clock_nanosleep, 12345, 0, &ts, NULL), EINVAL);
	CHECK_ERR(syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &bad, NULL), EINVAL);
}

CASE(absolute_sleeps)
{
	/* TIMER_ABSTIME on BOOTTIME and REALTIME wakes at the given time. */
	clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME };
	for (int i = 0; i < 3; i++) {
		struct timespec t;
		CHECK_OK(clock_gettime(clocks[i], &t));
		long long target = ts_ns(t) + 150000000LL;
		t.tv_sec = target / 1000000000LL;
		t.tv_nsec = target % 1000000000LL;
		CHECK_EQ(clock_nanosleep(clocks[i], TIMER_ABSTIME, &t, NULL), 0);
		long long woke = now(clocks[i]);
		CHECK_GE(woke, target);
		CHECK_LE(woke - target, 100000000LL);
	}
	/* A time in the past returns at once. (Not an absolute small value: the
	 * monotonic clock's origin is unspecified and may be recent.) */
	long long p = now(CLOCK_MONOTONIC) - 10000000LL;
	if (p < 0)
		p = 0;
	struct timespec past = { p / 1000000000LL, p % 1000000000LL };
	long long t0 = st_mono_ms();
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL), 0);
	CHECK_LE(st_mono_ms() - t0, 50);
}

static void noop(int sig)
{
	(void)sig;
}

CASE(interrupted_sleep_remaining_time)
{
	st_handle(SIGALRM, noop, 0);
	struct itimerval it = { { 0, 0 }, { 0, 100000 } };
	/* Relative: EINTR and the remaining time in rem. */
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	struct timespec req = { 2, 0 }, rem = { 0, 0 };
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem), EINTR);
	long long left = ts_ns(rem);
	CHECK_GE(left, 1500000000LL);
	CHECK_LE(left, 1950000000LL);
	/* Absolute: EINTR, and rem is left alone. */
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	struct timespec t;
	CHECK_OK(clock_gettime(CLOCK_MONOTONIC, &t));
	t.tv_sec += 2;
	rem.tv_sec = 77;
	rem.tv_nsec = 7;
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, &rem), EINTR);
	CHECK_EQ(rem.tv_sec, 77);
	CHECK_EQ(rem.tv_nsec, 7);
	/* Sleeps are never restarted after a handler, even with SA_RESTART. */
	st_handle(SIGALRM, noop, SA_RESTART);
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	CHECK_OK(clock_gettime(CLOCK_MONOTONIC, &t));
	t.tv_sec += 2;
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL), EINTR);
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL), EINTR);
}

CASE(sleep_resumes_after_stop_and_continue)
{
	/* A stop signal and SIGCONT (no handler) do not interrupt a sleep: it is restarted
	 * for the time left and completes normally. */
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		long long t0 = now(CLOCK_MONOTONIC);
		struct timespec req = { 0, 400000000L };
		int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
		long long el = now(CLOCK_MONOTONIC) - t0;
		if (r != 0)
			_exit(10);
		if (el < 400000000LL)
			_exit(11);
		struct timespec abs;
		clock_gettime(CLOCK_MONOTONIC, &abs);
		abs.tv_nsec += 300000000L;
		if (abs.tv_nsec >= 1000000000L) {
			abs.tv_sec++;
			abs.tv_nsec -= 1000000000L;
		}
		r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL);
		if (r != 0)
			_exit(12);
		if (now(CLOCK_MONOTONIC) < ts_ns(abs))
			_exit(13);
		_exit(0);
	}
	for (int i = 0; i < 2; i++) {
		st_sleep_ms(100);
		CHECK_OK(kill(pid, SIGSTOP));
		int status;
		CHECK_EQ(waitpid(pid, &status, WUNTRACED), pid);
		CHECK(WIFSTOPPED(status));
		st_sleep_ms(50);
		CHECK_OK(kill(pid, SIGCONT));
		st_sleep_ms(200);
	}
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(settime_errors)
{
	struct timespec t = { 1000, 0 };
	/* The monotonic clocks can never be set. */
	CHECK_ERR(clock_settime(CLOCK_MONOTONIC, &t), EINVAL);
	CHECK_ERR(clock_settime(CLOCK_BOOTTIME, &t), EINVAL);
	CHECK_ERR(clock_settime(CLOCK_PROCESS_CPUTIME_ID, &t), EINVAL);
	CHECK_ERR(clock_settime((clockid_t)12345, &t), EINVAL);
	IN_CHILD({
		st_drop_privileges();
		struct timespec n;
		clock_gettime(CLOCK_REALTIME, &n);
		CHECK_ERR(clock_settime(CLOCK_REALTIME, &n), EPERM);
	});
	struct timespec r;
	CHECK_ERR(clock_gettime((clockid_t)12345, &r), EINVAL);
	CHECK_ERR(clock_getres((clockid_t)12345, &r), EINVAL);
	/* (The raw call: the vDSO would fault instead.) */
	CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (struct timespec *)8), EFAULT);
	CHECK_ERR(syscall(SYS_clock_gettime, (clockid_t)12345, &r), EINVAL);
}

static volatile int spin_stop;

static void *spinner(void *arg)
{
	(void)arg;
	while (!spin_stop)
		burn_ms(10);
	return NULL;
}

CASE(sleep_on_process_cpu_clock)
{
	/* The process's CPU clock advances while another thread burns. */
	pthread_t t;
	spin_stop = 0;
	CHECK_PT(pthread_create(&t, NULL, spinner, NULL));
	long long c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	struct timespec req = { 0, 100000000L };
	CHECK_EQ(clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, 0, &req, NULL), 0);
	CHECK_GE(now(CLOCK_PROCESS_CPUTIME_ID) - c0, 100000000LL);
	/* Absolute, through the encoded id of our own process (clock_getcpuclockid). */
	clockid_t pc;
	CHECK_PT(clock_getcpuclockid(getpid(), &pc));
	long long target = now(pc) + 50000000LL;
	struct timespec abs = { target / 1000000000LL, target % 1000000000LL };
	CHECK_EQ(clock_nanosleep(pc, TIMER_ABSTIME, &abs, NULL), 0);
	CHECK_GE(now(pc), target);
	/* A time already past returns at once. */
	CHECK_EQ(clock_nanosleep(pc, TIMER_ABSTIME, &abs, NULL), 0);
	spin_stop = 1;
	CHECK_PT(pthread_join(t, NULL));
	/* The calling thread's own CPU clock can never advance while it sleeps. */
	clockid_t tc;
	CHECK_PT(pthread_getcpuclockid(pthread_self(), &tc));
	CHECK_EQ(clock_nanosleep(tc, 0, &req, NULL), EINVAL);
	/* Nor can a process that is gone be named. */
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	CHECK_EXITED(st_wait(pid), 0);
	clockid_t gone = ((~(clockid_t)pid) << 3) | 2;
	CHECK_EQ(clock_nanosleep(gone, 0, &req, NULL), EINVAL);
}

/* alarm, setitimer/getitimer, POSIX timers (timer_create). */
#include "harness.h"

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

CASE(alarm_returns_remaining)
{
	CHECK_EQ(alarm(100), 0);
	unsigned left = alarm(50);
	CHECK_GE(left, 99);
	CHECK_LE(left, 100);
	CHECK_GE(alarm(0), 49);
	CHECK_EQ(alarm(0), 0);
}

CASE(alarm_delivers_sigalrm)
{
	st_handle(SIGALRM, on_alarm, 0);
	long long t0 = st_mono_ms();
	CHECK_EQ(alarm(1), 0);
	st_wait_flag(&alarms, 1, SIGALRM);
	long long dt = st_mono_ms() - t0;
	CHECK_GE(dt, 950);
	CHECK_LT(dt, 5000);
}

CASE(setitimer_real_oneshot)
{
	st_handle(SIGALRM, on_alarm, 0);
	struct itimerval it = { { 0, 0 }, { 0, 50000 } }, old;
	long long t0 = st_mono_ms();
	CHECK_OK(setitimer(ITIMER_REAL, &it, &old));
	CHECK_EQ(old.it_value.tv_sec + old.it_value.tv_usec, 0);
	st_wait_flag(&alarms, 1, SIGALRM);
	CHECK_GE(st_mono_ms() - t0, 49);
	struct itimerval cur;
	CHECK_OK(getitimer(ITIMER_REAL, &cur));
	CHECK_EQ(cur.it_value.tv_sec + cur.it_value.tv_usec, 0);
}

CASE(setitimer_interval_repeats)
{
	st_handle(SIGALRM, on_alarm, SA_RESTART);
	struct itimerval it = { { 0, 10000 }, { 0, 10000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	st_wait_flag(&alarms, 5, SIGALRM);
	struct itimerval cur;
	CHECK_OK(getitimer(ITIMER_REAL, &cur));
	CHECK_EQ(cur.it_interval.tv_usec, 10000);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	CHECK_OK(setitimer(ITIMER_REAL, &off, NULL));
	int n = alarms;
	st_sleep_ms(50);
	CHECK_EQ(alarms, n);
}

CASE(itimer_virtual_counts_cpu)
{
	st_handle(SIGVTALRM, on_alarm, 0);
	struct itimerval it = { { 0, 0 }, { 0, 20000 } };
	CHECK_OK(setitimer(ITIMER_VIRTUAL, &it, NULL));
	volatile unsigned long x = 0;
	long long t0 = st_mono_ms();
	while (!alarms && st_mono_ms() - t0 < 5000)
		x++;
	CHECK_EQ(alarms, 1);
}

CASE(itimer_errors)
{
	struct itimerval it = { { 0, 0 }, { 0, 1000000 } };
	CHECK_ERR(setitimer(ITIMER_REAL, &it, NULL), EINVAL);
	struct itimerval ok = { { 0, 0 }, { 1, 0 } };
	CHECK_ERR(setitimer(12345, &ok, NULL), EINVAL);
	CHECK_ERR(getitimer(12345, &ok), EINVAL);
}

CASE(itimer_not_inherited_by_fork)
{
	struct itimerval it = { { 0, 0 }, { 100, 0 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	IN_CHILD({
		struct itimerval cur;
		CHECK_OK(getitimer(ITIMER_REAL, &cur));
		CHECK_EQ(cur.it_value.tv_sec + cur.it_value.tv_usec, 0);
	});
}

static volatile int timer_sival;
static void on_timer(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	alarms++;
	timer_sival = si->si_value.sival_int;
	if (si->si_code != SI_TIMER)
		timer_sival = -1;
}

CASE(posix_timer_signal)
{
	st_handle_info(SIGRTMIN, on_timer, 0);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	sev.sigev_value.sival_int = 4321;
	timer_t t;
	CHECK_OK(timer_create(CLOCK_MONOTONIC, &sev, &t));
	struct itimerspec its = { { 0, 0 }, { 0, 30 * 1000000 } };
	CHECK_OK(timer_settime(t, 0, &its, NULL));
	struct itimerspec cur;
	CHECK_OK(timer_gettime(t, &cur));
	CHECK_LE(cur.it_value.tv_nsec, 30 * 1000000);
	st_wait_flag(&alarms, 1, SIGRTMIN);
	CHECK_EQ(timer_sival, 4321);
	CHECK_EQ(timer_getoverrun(t), 0);
	CHECK_OK(timer_delete(t));
	CHECK_ERR(timer_delete(t), EINVAL);
}

CASE(posix_timer_overrun)
{
	st_block(SIGRTMIN);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	timer_t t;
	CHECK_OK(timer_create(CLOCK_MONOTONIC, &sev, &t));
	struct itimerspec its = { { 0, 5 * 1000000 }, { 0, 5 * 1000000 } };
	CHECK_OK(timer_settime(t, 0, &its, NULL));
	st_sleep_ms(100);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	siginfo_t si;
	CHECK_EQ(sigwaitinfo(&set, &si), SIGRTMIN);
	CHECK_EQ(si.si_code, SI_TIMER);
	/* One signal queued; the other expirations count as overruns. */
	CHECK_GE(si.si_overrun, 5);
	CHECK_OK(timer_delete(t));
}

CASE(timer_create_errors)
{
	timer_t t;
	CHECK_ERR(timer_create(12345, NULL, &t), EINVAL);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = 1000;
	CHECK_ERR(timer_create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
}

/* ITIMER_PROF counts CPU time, not time on the clock: with more spinning processes than
 * CPUs, it fires only once the process itself has used the time (a pure loop, no system
 * calls in it but the clock reads). */
static volatile long long prof_cpu_ns = -1;
static void on_prof(int sig)
{
	(void)sig;
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	prof_cpu_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

CASE(itimer_prof_counts_cpu_not_wall)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	pid_t spinners[16];
	int n = ncpu * 2 > 16 ? 16 : ncpu * 2;
	for (int i = 0; i < n; i++) {
		spinners[i] = fork();
		if (spinners[i] == 0) {
			volatile unsigned long x = 0;
			for (;;)
				x++;
		}
	}
	st_handle(SIGPROF, on_prof, 0);
	long long start = st_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	struct itimerval it = { { 0, 0 }, { 0, 300000 } };
	CHECK_OK(setitimer(ITIMER_PROF, &it, NULL));
	volatile unsigned long x = 0;
	long long t0 = st_mono_ms();
	while (prof_cpu_ns < 0 && st_mono_ms() - t0 < 8000)
		x++;
	for (int i = 0; i < n; i++) {
		kill(spinners[i], SIGKILL);
		st_wait(spinners[i]);
	}
	CHECK_GT(prof_cpu_ns, 0);
	/* About the 300 ms asked for. Linux charges whole ticks to whoever runs at the
	 * tick, so under contention it may fire at ~230 ms of precise CPU time; charging
	 * time on the clock fired at ~30 ms here. */
	CHECK_GE(prof_cpu_ns - start, 150000000LL);
}

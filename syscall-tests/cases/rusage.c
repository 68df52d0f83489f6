/* rusage: getrusage for self, children and threads; times(); accounting moves to the
 * parent only when a child is waited for. Timing slack is generous (>= 50 ms). */
#include "harness.h"

#include <sys/resource.h>
#include <sys/times.h>

static long long tv_ms(struct timeval tv)
{
	return tv.tv_sec * 1000LL + tv.tv_usec / 1000;
}

static long long cpu_ms(const struct rusage *ru)
{
	return tv_ms(ru->ru_utime) + tv_ms(ru->ru_stime);
}

/* Spins in user space until this thread has used ms of CPU time. */
static void burn_ms(long ms)
{
	long long end = st_now_ns(CLOCK_THREAD_CPUTIME_ID) + ms * 1000000LL;
	volatile unsigned long x = 0;
	while (st_now_ns(CLOCK_THREAD_CPUTIME_ID) < end)
		for (int i = 0; i < 10000; i++)
			x += i;
}

static struct rusage ru(int who)
{
	struct rusage r;
	if (getrusage(who, &r) != 0)
		FAIL("getrusage(%d): %s", who, st_errname(errno));
	return r;
}

static long long cpu_ms_of(int who)
{
	struct rusage r = ru(who);
	return cpu_ms(&r);
}

CASE(self_counts_cpu_time)
{
	struct rusage a = ru(RUSAGE_SELF);
	burn_ms(300);
	struct rusage b = ru(RUSAGE_SELF);
	long long d = cpu_ms(&b) - cpu_ms(&a);
	CHECK_GE(d, 250);
	CHECK_LE(d, 2000);
	/* Mostly user time. */
	CHECK_GE(tv_ms(b.ru_utime) - tv_ms(a.ru_utime), 150);
	/* Microseconds stay below a second. */
	CHECK_LT(b.ru_utime.tv_usec, 1000000);
	CHECK_LT(b.ru_stime.tv_usec, 1000000);
	/* Agrees with the process CPU clock. */
	long long clk = st_now_ns(CLOCK_PROCESS_CPUTIME_ID) / 1000000;
	CHECK_LE(cpu_ms(&b), clk + 50);
	CHECK_GE(cpu_ms(&b), clk - 50);
}

CASE(children_counted_only_after_wait)
{
	struct rusage before = ru(RUSAGE_CHILDREN);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		burn_ms(300);
		_exit(0);
	}
	/* The child is a zombie but not yet waited for: not counted. */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PID, pid, &si, WEXITED | WNOWAIT));
	CHECK_EQ(si.si_pid, pid);
	struct rusage mid = ru(RUSAGE_CHILDREN);
	CHECK_LE(cpu_ms(&mid) - cpu_ms(&before), 20);
	/* Our own usage does not include it. */
	struct rusage self = ru(RUSAGE_SELF);
	CHECK_LT(cpu_ms(&self), 250);
	CHECK_EXITED(st_wait(pid), 0);
	struct rusage after = ru(RUSAGE_CHILDREN);
	long long d = cpu_ms(&after) - cpu_ms(&before);
	CHECK_GE(d, 250);
	CHECK_LE(d, 2000);
}

CASE(grandchildren_counted_when_child_waited_for_them)
{
	struct rusage before = ru(RUSAGE_CHILDREN);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		pid_t gc = fork();
		if (gc == 0) {
			burn_ms(200);
			_exit(0);
		}
		int s;
		waitpid(gc, &s, 0);
		burn_ms(100);
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	long long d = cpu_ms_of(RUSAGE_CHILDREN) - cpu_ms(&before);
	CHECK_GE(d, 250);
	CHECK_LE(d, 2000);
}

CASE(unwaited_grandchildren_not_counted)
{
	struct rusage before = ru(RUSAGE_CHILDREN);
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		pid_t gc = fork();
		if (gc == 0) {
			burn_ms(200);
			_exit(0);
		}
		/* Wait until the grandchild is a zombie, but do not reap it. */
		siginfo_t si;
		waitid(P_PID, gc, &si, WEXITED | WNOWAIT);
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	long long d = cpu_ms_of(RUSAGE_CHILDREN) - cpu_ms(&before);
	CHECK_LE(d, 100);
}

static void *burner(void *arg)
{
	(void)arg;
	burn_ms(300);
	struct rusage *r = malloc(sizeof *r);
	getrusage(RUSAGE_THREAD, r);
	return r;
}

CASE(thread_usage)
{
	struct rusage me0 = ru(RUSAGE_THREAD);
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, burner, NULL));
	struct rusage *tr;
	CHECK_PT(pthread_join(t, (void **)&tr));
	/* The thread's own usage counts its burn... */
	CHECK_GE(cpu_ms(tr), 250);
	CHECK_LE(cpu_ms(tr), 2000);
	/* ...the main thread's does not... */
	struct rusage me1 = ru(RUSAGE_THREAD);
	CHECK_LE(cpu_ms(&me1) - cpu_ms(&me0), 100);
	/* ...and the process's includes it, also after the thread exited. */
	CHECK_GE(cpu_ms_of(RUSAGE_SELF), 250);
	free(tr);
}

CASE(times_reports_children_and_elapsed)
{
	long hz = sysconf(_SC_CLK_TCK);
	CHECK_EQ(hz, 100);
	struct tms t0, t1, t2;
	clock_t c0 = times(&t0);
	CHECK_NE(c0, (clock_t)-1);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		burn_ms(300);
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	clock_t c1 = times(&t1);
	long kids = (t1.tms_cutime + t1.tms_cstime) - (t0.tms_cutime + t0.tms_cstime);
	CHECK_GE(kids, 25);
	CHECK_LE(kids, 200);
	/* Elapsed ticks follow real time. */
	st_sleep_ms(200);
	clock_t c2 = times(&t2);
	CHECK_GE(c2 - c1, 15);
	CHECK_LE(c2 - c1, 100);
	CHECK_GE(c1 - c0, 25);
	/* Sleeping costs no CPU. */
	CHECK_LE((t2.tms_utime + t2.tms_stime) - (t1.tms_utime + t1.tms_stime), 5);
	/* A NULL buffer is allowed. */
	CHECK_NE(times(NULL), (clock_t)-1);
}

CASE(memory_and_context_switch_counters)
{
	struct rusage a = ru(RUSAGE_SELF);
	CHECK_GT(a.ru_maxrss, 0);
	/* Touching 64 MiB raises the peak resident size and counts page faults. */
	size_t len = 64 << 20;
	char *m = CHECK_PTR(mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	for (size_t i = 0; i < len; i += 4096)
		m[i] = 1;
	struct rusage b = ru(RUSAGE_SELF);
	CHECK_GE(b.ru_maxrss - a.ru_maxrss, 48 * 1024);
	CHECK_GT(b.ru_minflt, a.ru_minflt);
	/* The peak stays after the memory is released. */
	CHECK_OK(munmap(m, len));
	struct rusage c = ru(RUSAGE_SELF);
	CHECK_GE(c.ru_maxrss, b.ru_maxrss);
	/* Sleeping is a voluntary context switch. */
	for (int i = 0; i < 5; i++)
		st_sleep_ms(2);
	struct rusage d = ru(RUSAGE_SELF);
	CHECK_GE(d.ru_nvcsw - c.ru_nvcsw, 5);
	/* A child's peak shows up in RUSAGE_CHILDREN once it is waited for. */
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char *x = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (size_t i = 0; i < len; i += 4096)
			x[i] = 1;
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_GE(ru(RUSAGE_CHILDREN).ru_maxrss, 48 * 1024);
}

CASE(errors)
{
	struct rusage r;
	CHECK_ERR(getrusage(5, &r), EINVAL);
	CHECK_ERR(getrusage(-3, &r), EINVAL);
	CHECK_ERR(getrusage(RUSAGE_SELF, (struct rusage *)8), EFAULT);
	CHECK_ERR(syscall(SYS_times, (void *)8), EFAULT);
}

/* wait4's rusage is that of the child the call reports, never another one: a stopped
 * child that has used no CPU does not report the usage of a busy child reaped before. */
CASE(wait4_rusage_is_the_reported_childs)
{
	pid_t busy = fork();
	if (busy == 0) {
		burn_ms(300);
		_exit(0);
	}
	struct rusage r;
	int st;
	CHECK_EQ(wait4(busy, &st, 0, &r), busy);
	CHECK_GE(cpu_ms(&r), 250);
	pid_t idle = fork();
	if (idle == 0) {
		raise(SIGSTOP);
		_exit(0);
	}
	memset(&r, 0xff, sizeof r);
	CHECK_EQ(wait4(idle, &st, WUNTRACED, &r), idle);
	CHECK(WIFSTOPPED(st));
	CHECK_LT(cpu_ms(&r), 150);
	CHECK_GE(cpu_ms(&r), 0);
	CHECK_OK(kill(idle, SIGCONT));
	memset(&r, 0xff, sizeof r);
	CHECK_EQ(wait4(idle, &st, 0, &r), idle);
	CHECK_EXITED(st, 0);
	CHECK_LT(cpu_ms(&r), 150);
	CHECK_GE(cpu_ms(&r), 0);
}

/* Two threads reaping two children at the same time each get their own child's usage. */
static pid_t race_pid[2];
static long long race_ms[2];
static void *race_waiter(void *arg)
{
	long i = (long)arg;
	struct rusage r;
	int st;
	if (wait4(race_pid[i], &st, 0, &r) != race_pid[i])
		race_ms[i] = -1;
	else
		race_ms[i] = cpu_ms(&r);
	return NULL;
}

CASE(concurrent_waiters_get_their_own_rusage)
{
	for (int round = 0; round < 5; round++) {
		race_pid[0] = fork();
		if (race_pid[0] == 0) {
			burn_ms(200);
			_exit(0);
		}
		race_pid[1] = fork();
		if (race_pid[1] == 0)
			_exit(0);
		pthread_t t[2];
		for (long i = 0; i < 2; i++)
			CHECK_PT(pthread_create(&t[i], NULL, race_waiter, (void *)i));
		for (int i = 0; i < 2; i++)
			CHECK_PT(pthread_join(t[i], NULL));
		CHECK_GE(race_ms[0], 150);
		CHECK_LT(race_ms[1], 100);
		CHECK_GE(race_ms[1], 0);
	}
}

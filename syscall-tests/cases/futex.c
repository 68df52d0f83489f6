/* futex: wait, wake, timeouts, requeue, shared futexes across processes. */
#include "harness.h"
#include <linux/futex.h>
#include <stdatomic.h>

static long futex(void *uaddr, int op, int val, const struct timespec *ts, void *uaddr2, int val3)
{
	return syscall(SYS_futex, uaddr, op, val, ts, uaddr2, val3);
}

CASE(wait_wrong_value_eagain)
{
	int f = 1;
	CHECK_ERR(futex(&f, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EAGAIN);
	CHECK_ERR(futex(&f, FUTEX_WAIT, 0, NULL, NULL, 0), EAGAIN);
}

CASE(wait_timeout_etimedout)
{
	int f = 0;
	struct timespec ts = { 0, 50 * 1000000 };
	long long t0 = st_mono_ms();
	CHECK_ERR(futex(&f, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0), ETIMEDOUT);
	long long dt = st_mono_ms() - t0;
	CHECK_GE(dt, 49);
	CHECK_LT(dt, 5000);
}

CASE(wait_bitset_absolute_timeout)
{
	int f = 0;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += 50 * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	long long t0 = st_mono_ms();
	CHECK_ERR(futex(&f, FUTEX_WAIT_BITSET_PRIVATE, 0, &ts, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT);
	CHECK_GE(st_mono_ms() - t0, 45);
	/* An absolute time in the past times out at once. */
	struct timespec past = { 0, 1 };
	CHECK_ERR(futex(&f, FUTEX_WAIT_BITSET_PRIVATE, 0, &past, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT);
}

CASE(wake_without_waiters_returns_zero)
{
	int f = 0;
	CHECK_EQ(futex(&f, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0), 0);
	CHECK_EQ(futex(&f, FUTEX_WAKE, INT_MAX, NULL, NULL, 0), 0);
}

CASE(errors)
{
	int f = 0;
	CHECK_ERR(futex((char *)&f + 1, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EINVAL);
	CHECK_ERR(futex((void *)8, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EFAULT);
	struct timespec bad = { 0, 2000000000 };
	CHECK_ERR(futex(&f, FUTEX_WAIT_PRIVATE, 0, &bad, NULL, 0), EINVAL);
	CHECK_ERR(futex(&f, 99, 0, NULL, NULL, 0), ENOSYS);
}

static atomic_int word;
static atomic_int waiter_result = -100;

static void *waiter(void *arg)
{
	(void)arg;
	long r = futex(&word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	atomic_store(&waiter_result, r == 0 ? 0 : errno);
	return NULL;
}

CASE(wake_one_waiter)
{
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, waiter, NULL));
	/* Retry until the thread is actually asleep: then the wake returns 1. */
	long n;
	while ((n = futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)) == 0)
		st_sleep_ms(1);
	CHECK_EQ(n, 1);
	CHECK_PT(pthread_join(t, NULL));
	CHECK_EQ(atomic_load(&waiter_result), 0);
}

static atomic_int woken;
static void *counting_waiter(void *arg)
{
	(void)arg;
	while (futex(&word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0) != 0 && errno == EINTR) {
	}
	atomic_fetch_add(&woken, 1);
	return NULL;
}

CASE(wake_counts)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		CHECK_PT(pthread_create(&t[i], NULL, counting_waiter, NULL));
	/* Wake them one at a time and check that exactly one is woken each time. */
	int total = 0;
	while (total < 4) {
		long n = futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		CHECK_GE(n, 0);
		CHECK_LE(n, 1);
		total += n;
		if (n == 0)
			st_sleep_ms(1);
	}
	for (int i = 0; i < 4; i++)
		CHECK_PT(pthread_join(t[i], NULL));
	CHECK_EQ(atomic_load(&woken), 4);
}

static atomic_int req_src, req_dst;
static atomic_int req_done;
static void *req_waiter(void *arg)
{
	(void)arg;
	futex(&req_src, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	atomic_fetch_add(&req_done, 1);
	return NULL;
}

CASE(cmp_requeue)
{
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_create(&t[i], NULL, req_waiter, NULL));
	/* Wait until all three are asleep on req_src: requeue everyone, waking none,
	 * and count; retry while some are not yet asleep. */
	CHECK_ERR(futex(&req_src, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)(long)INT_MAX, &req_dst, 1), EAGAIN);
	int moved = 0;
	for (int tries = 0; moved < 3 && tries < 5000; tries++) {
		long r = futex(&req_src, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)(long)INT_MAX, &req_dst, 0);
		CHECK_GE(r, 0);
		moved += r;
		if (moved < 3)
			st_sleep_ms(1);
	}
	CHECK_EQ(moved, 3);
	st_sleep_ms(20);
	CHECK_EQ(atomic_load(&req_done), 0);
	/* Waking the old word wakes nobody now; the new one wakes all three. */
	CHECK_EQ(futex(&req_src, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0), 0);
	CHECK_EQ(futex(&req_dst, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0), 3);
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_join(t[i], NULL));
	CHECK_EQ(atomic_load(&req_done), 3);
}

CASE(shared_futex_across_fork)
{
	atomic_int *w = CHECK_PTR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	atomic_store(w, 0);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		while (atomic_load(w) == 0)
			futex(w, FUTEX_WAIT, 0, NULL, NULL, 0);
		_exit(atomic_load(w) == 7 ? 0 : 1);
	}
	/* Wake until the child has been seen asleep. */
	long n;
	while ((n = futex(w, FUTEX_WAKE, 1, NULL, NULL, 0)) == 0) {
		st_sleep_ms(1);
		if (waitpid(pid, NULL, WNOHANG) != 0)
			FAIL("child exited early");
	}
	CHECK_EQ(n, 1);
	atomic_store(w, 7);
	futex(w, FUTEX_WAKE, 1, NULL, NULL, 0);
	CHECK_EXITED(st_wait(pid), 0);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

CASE(wait_interrupted_by_signal)
{
	static int f;
	st_handle(SIGALRM, on_alarm, 0);
	struct itimerval it = { { 0, 0 }, { 0, 30000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	CHECK_ERR(futex(&f, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EINTR);
	CHECK_EQ(alarms, 1);
}

/* pthreads: create/join, mutexes, condition variables, TLS, thread signals, exit. */
#include "harness.h"
#include <stdatomic.h>

static void *return_arg_plus_one(void *arg)
{
	return (void *)((uintptr_t)arg + 1);
}

CASE(create_join_return_value)
{
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, return_arg_plus_one, (void *)41));
	void *ret;
	CHECK_PT(pthread_join(t, &ret));
	CHECK_EQ((uintptr_t)ret, 42);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *incrementer(void *arg)
{
	long n = (long)arg;
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&mu);
		counter++;
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

CASE(mutex_counter)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		CHECK_PT(pthread_create(&t[i], NULL, incrementer, (void *)20000L));
	for (int i = 0; i < 4; i++)
		CHECK_PT(pthread_join(t[i], NULL));
	CHECK_EQ(counter, 80000);
}

static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn, rounds_done;

static void *ping(void *arg)
{
	int me = (int)(long)arg;
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&mu);
		while (turn != me)
			pthread_cond_wait(&cv, &mu);
		turn = 1 - me;
		rounds_done++;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

CASE(condvar_ping_pong)
{
	pthread_t a, b;
	CHECK_PT(pthread_create(&a, NULL, ping, (void *)0L));
	CHECK_PT(pthread_create(&b, NULL, ping, (void *)1L));
	CHECK_PT(pthread_join(a, NULL));
	CHECK_PT(pthread_join(b, NULL));
	CHECK_EQ(rounds_done, 400);
}

CASE(condvar_timedwait_times_out)
{
	pthread_mutex_lock(&mu);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 50000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	long long t0 = st_mono_ms();
	CHECK_EQ(pthread_cond_timedwait(&cv, &mu, &ts), ETIMEDOUT);
	CHECK_GE(st_mono_ms() - t0, 45);
	pthread_mutex_unlock(&mu);
}

static pid_t thread_tid, thread_pid;
static void *ids(void *arg)
{
	(void)arg;
	thread_tid = gettid();
	thread_pid = getpid();
	return NULL;
}

CASE(gettid_differs_getpid_same)
{
	CHECK_EQ(gettid(), getpid());
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, ids, NULL));
	CHECK_PT(pthread_join(t, NULL));
	CHECK_EQ(thread_pid, getpid());
	CHECK_NE(thread_tid, getpid());
	CHECK_GT(thread_tid, 0);
}

static __thread int tls_value = 5;
static void *tls_thread(void *arg)
{
	if (tls_value != 5)
		return (void *)1;
	tls_value = (int)(long)arg;
	st_sleep_ms(10);
	return (void *)(long)(tls_value == (int)(long)arg ? 0 : 2);
}

CASE(thread_local_storage)
{
	tls_value = 100;
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_create(&t[i], NULL, tls_thread, (void *)(long)(i + 10)));
	for (int i = 0; i < 3; i++) {
		void *r;
		CHECK_PT(pthread_join(t[i], &r));
		CHECK_EQ((long)r, 0);
	}
	CHECK_EQ(tls_value, 100);
}

static atomic_int detached_ran;
static void *detached_fn(void *arg)
{
	(void)arg;
	atomic_store(&detached_ran, 1);
	return NULL;
}

CASE(detached_thread)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	CHECK_PT(pthread_create(&t, &attr, detached_fn, NULL));
	for (int i = 0; i < 5000 && !atomic_load(&detached_ran); i++)
		st_sleep_ms(1);
	CHECK_EQ(atomic_load(&detached_ran), 1);
}

static void *exit_whole_process(void *arg)
{
	(void)arg;
	exit(3);
}

static void *spin_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

CASE(exit_from_thread_ends_process)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		pthread_t a, b;
		pthread_create(&a, NULL, spin_forever, NULL);
		pthread_create(&b, NULL, exit_whole_process, NULL);
		for (;;)
			pause();
	}
	CHECK_EXITED(st_wait(pid), 3);
}

CASE(main_thread_pthread_exit_others_continue)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		pthread_t t;
		pthread_create(&t, NULL, exit_whole_process, NULL);
		pthread_exit(NULL);
	}
	CHECK_EXITED(st_wait(pid), 3);
}

static atomic_int handler_tid;
static void record_tid(int sig)
{
	(void)sig;
	atomic_store(&handler_tid, gettid());
}

static atomic_int target_ready, target_tid;
static void *signal_target(void *arg)
{
	(void)arg;
	atomic_store(&target_tid, gettid());
	atomic_store(&target_ready, 1);
	while (atomic_load(&handler_tid) == 0)
		st_sleep_ms(1);
	return NULL;
}

CASE(pthread_kill_targets_thread)
{
	st_handle(SIGUSR1, record_tid, 0);
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, signal_target, NULL));
	while (!atomic_load(&target_ready))
		st_sleep_ms(1);
	CHECK_PT(pthread_kill(t, SIGUSR1));
	CHECK_PT(pthread_join(t, NULL));
	CHECK_EQ(atomic_load(&handler_tid), atomic_load(&target_tid));
}

CASE(tgkill_errors)
{
	CHECK_ERR(syscall(SYS_tgkill, getpid(), 0x3ffffff0, SIGUSR1), ESRCH);
	CHECK_ERR(syscall(SYS_tgkill, getpid(), gettid(), 1000), EINVAL);
	CHECK_OK(syscall(SYS_tgkill, getpid(), gettid(), 0));
	CHECK_OK(syscall(SYS_tkill, gettid(), 0));
}

static void *block_usr1_and_report(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	sigset_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	return (void *)(long)sigismember(&cur, SIGUSR1);
}

CASE(signal_mask_is_per_thread)
{
	pthread_t t;
	void *r;
	CHECK_PT(pthread_create(&t, NULL, block_usr1_and_report, NULL));
	CHECK_PT(pthread_join(t, &r));
	CHECK_EQ((long)r, 1);
	sigset_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	CHECK_EQ(sigismember(&cur, SIGUSR1), 0);
}

static atomic_int process_sig_tid;
static void record_process_sig(int sig)
{
	(void)sig;
	atomic_store(&process_sig_tid, gettid());
}

static void *unblocked_waiter(void *arg)
{
	(void)arg;
	st_unblock(SIGUSR2);
	atomic_store(&target_tid, gettid());
	while (atomic_load(&process_sig_tid) == 0)
		st_sleep_ms(1);
	return NULL;
}

CASE(process_signal_goes_to_unblocked_thread)
{
	st_handle(SIGUSR2, record_process_sig, 0);
	st_block(SIGUSR2);
	pthread_t t;
	atomic_store(&target_tid, 0);
	CHECK_PT(pthread_create(&t, NULL, unblocked_waiter, NULL));
	while (atomic_load(&target_tid) == 0)
		st_sleep_ms(1);
	CHECK_OK(kill(getpid(), SIGUSR2));
	CHECK_PT(pthread_join(t, NULL));
	CHECK_EQ(atomic_load(&process_sig_tid), atomic_load(&target_tid));
}

static void *nothing(void *arg)
{
	return arg;
}

CASE(many_threads)
{
	for (int round = 0; round < 5; round++) {
		pthread_t t[20];
		for (int i = 0; i < 20; i++)
			CHECK_PT(pthread_create(&t[i], NULL, nothing, (void *)(long)i));
		for (int i = 0; i < 20; i++) {
			void *r;
			CHECK_PT(pthread_join(t[i], &r));
			CHECK_EQ((long)r, i);
		}
	}
}

static pthread_barrier_t barrier;
static atomic_int serial_count;
static void *barrier_fn(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10; i++) {
		int r = pthread_barrier_wait(&barrier);
		if (r == PTHREAD_BARRIER_SERIAL_THREAD)
			atomic_fetch_add(&serial_count, 1);
	}
	return NULL;
}

CASE(barrier)
{
	CHECK_PT(pthread_barrier_init(&barrier, NULL, 3));
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_create(&t[i], NULL, barrier_fn, NULL));
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_join(t[i], NULL));
	CHECK_EQ(atomic_load(&serial_count), 10);
}

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long rw_value;
static void *rw_writer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5000; i++) {
		pthread_rwlock_wrlock(&rw);
		rw_value++;
		pthread_rwlock_unlock(&rw);
	}
	return NULL;
}

CASE(rwlock)
{
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_create(&t[i], NULL, rw_writer, NULL));
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_join(t[i], NULL));
	CHECK_PT(pthread_rwlock_rdlock(&rw));
	CHECK_PT(pthread_rwlock_rdlock(&rw));
	CHECK_EQ(pthread_rwlock_trywrlock(&rw), EBUSY);
	pthread_rwlock_unlock(&rw);
	pthread_rwlock_unlock(&rw);
	CHECK_EQ(rw_value, 15000);
}

static void *fork_from_thread(void *arg)
{
	(void)arg;
	pid_t pid = fork();
	if (pid == 0) {
		/* Only the forking thread exists in the child. */
		DIR *d = opendir("/proc/self/task");
		int n = 0;
		if (d) {
			struct dirent *e;
			while ((e = readdir(d)))
				if (e->d_name[0] != '.')
					n++;
			closedir(d);
		}
		_exit(n == 1 ? 0 : 10 + n);
	}
	int status;
	waitpid(pid, &status, 0);
	return (void *)(long)status;
}

CASE(fork_from_thread)
{
	pthread_t t, s;
	CHECK_PT(pthread_create(&s, NULL, signal_target, NULL));
	CHECK_PT(pthread_create(&t, NULL, fork_from_thread, NULL));
	void *r;
	CHECK_PT(pthread_join(t, &r));
	CHECK_EXITED((int)(long)r, 0);
	atomic_store(&handler_tid, 1);
	CHECK_PT(pthread_join(s, NULL));
}

static pthread_mutex_t errchk;
CASE(errorcheck_mutex)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	CHECK_PT(pthread_mutex_init(&errchk, &a));
	CHECK_PT(pthread_mutex_lock(&errchk));
	CHECK_EQ(pthread_mutex_lock(&errchk), EDEADLK);
	CHECK_EQ(pthread_mutex_trylock(&errchk), EBUSY);
	CHECK_PT(pthread_mutex_unlock(&errchk));
	CHECK_EQ(pthread_mutex_unlock(&errchk), EPERM);
}

static void *big_stack_user(void *arg)
{
	(void)arg;
	volatile char buf[1 << 20];
	buf[0] = 1;
	buf[sizeof buf - 1] = 1;
	return (void *)(long)(buf[0] + buf[sizeof buf - 1]);
}

CASE(custom_stack_size)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	CHECK_PT(pthread_attr_setstacksize(&attr, 4 << 20));
	pthread_t t;
	CHECK_PT(pthread_create(&t, &attr, big_stack_user, NULL));
	void *r;
	CHECK_PT(pthread_join(t, &r));
	CHECK_EQ((long)r, 2);
}

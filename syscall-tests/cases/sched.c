/* sched_yield, affinity, scheduler policy, getcpu. */
#include "harness.h"

CASE(sched_yield_succeeds)
{
	for (int i = 0; i < 100; i++)
		CHECK_OK(sched_yield());
}

CASE(getaffinity)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CHECK_OK(sched_getaffinity(0, sizeof set, &set));
	int n = CPU_COUNT(&set);
	CHECK_GE(n, 1);
	CHECK_LE(n, sysconf(_SC_NPROCESSORS_CONF));
	/* The raw syscall returns the size of the kernel's mask in bytes. */
	long r = CHECK_OK(syscall(SYS_sched_getaffinity, 0, sizeof set, &set));
	CHECK_GT(r, 0);
	CHECK_EQ(r % sizeof(long), 0);
	CHECK_ERR(syscall(SYS_sched_getaffinity, 0, 1, &set), EINVAL);
}

CASE(setaffinity_to_one_cpu)
{
	cpu_set_t set;
	CHECK_OK(sched_getaffinity(0, sizeof set, &set));
	int first = -1;
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set)) {
			first = i;
			break;
		}
	CHECK_GE(first, 0);
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	CHECK_OK(sched_setaffinity(0, sizeof one, &one));
	cpu_set_t got;
	CHECK_OK(sched_getaffinity(0, sizeof got, &got));
	CHECK_EQ(CPU_COUNT(&got), 1);
	CHECK(CPU_ISSET(first, &got));
	unsigned cpu = 99;
	CHECK_OK(syscall(SYS_getcpu, &cpu, NULL, NULL));
	CHECK_EQ(cpu, first);
	cpu_set_t none;
	CPU_ZERO(&none);
	CHECK_ERR(sched_setaffinity(0, sizeof none, &none), EINVAL);
}

CASE(scheduler_policy)
{
	CHECK_EQ(sched_getscheduler(0), SCHED_OTHER);
	struct sched_param sp;
	CHECK_OK(sched_getparam(0, &sp));
	CHECK_EQ(sp.sched_priority, 0);
	CHECK_EQ(sched_get_priority_max(SCHED_OTHER), 0);
	CHECK_EQ(sched_get_priority_min(SCHED_OTHER), 0);
	CHECK_EQ(sched_get_priority_max(SCHED_FIFO), 99);
	CHECK_EQ(sched_get_priority_min(SCHED_FIFO), 1);
	CHECK_ERR(sched_get_priority_max(12345), EINVAL);
	CHECK_ERR(sched_getscheduler(0x3ffffff0), ESRCH);
	struct timespec ts;
	CHECK_OK(sched_rr_get_interval(0, &ts));
}

CASE(setscheduler_unprivileged_eperm)
{
	IN_CHILD({
		st_drop_privileges();
		struct sched_param sp = { .sched_priority = 10 };
		CHECK_ERR(sched_setscheduler(0, SCHED_FIFO, &sp), EPERM);
		sp.sched_priority = 0;
		CHECK_OK(sched_setscheduler(0, SCHED_BATCH, &sp));
		CHECK_EQ(sched_getscheduler(0), SCHED_BATCH);
	});
}

CASE(getcpu_in_range)
{
	unsigned cpu = 9999, node = 9999;
	CHECK_OK(syscall(SYS_getcpu, &cpu, &node, NULL));
	CHECK_LT(cpu, (unsigned)sysconf(_SC_NPROCESSORS_CONF));
	CHECK_GE(sched_getcpu(), 0);
	/* Either pointer may be NULL. */
	CHECK_OK(syscall(SYS_getcpu, NULL, NULL, NULL));
}

/* The affinity calls have no negative-pid check: ESRCH (python's test_posix relies on
 * it: an EINVAL makes it try ever larger CPU sets), after the size checks. */
CASE(affinity_negative_pid_esrch)
{
	cpu_set_t set;
	CHECK_ERR(sched_getaffinity(-1, sizeof set, &set), ESRCH);
	CHECK_ERR(syscall(SYS_sched_getaffinity, -1, 4, &set), EINVAL);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	CHECK_ERR(sched_setaffinity(-1, sizeof set, &set), ESRCH);
	/* The other sched calls check for a negative pid: EINVAL. */
	struct sched_param sp;
	CHECK_ERR(sched_getparam(-1, &sp), EINVAL);
	CHECK_ERR(sched_getscheduler(-1), EINVAL);
}

/* ioprio_set and ioprio_get: classes, levels, who, inheritance, permissions. */
#include "harness.h"

#define WHO_PROCESS 1
#define WHO_PGRP 2
#define WHO_USER 3
#define PRIO(class, data) (((class) << 13) | (data))

static long get(int which, int who)
{
	return syscall(SYS_ioprio_get, which, who);
}

static long set(int which, int who, int prio)
{
	return syscall(SYS_ioprio_set, which, who, prio);
}

CASE(set_and_get)
{
	CHECK_EQ(get(WHO_PROCESS, 0), 0);
	CHECK_OK(set(WHO_PROCESS, 0, PRIO(2, 7)));
	CHECK_EQ(get(WHO_PROCESS, 0), PRIO(2, 7));
	CHECK_EQ(get(WHO_PROCESS, gettid()), PRIO(2, 7));
	CHECK_OK(set(WHO_PROCESS, 0, PRIO(3, 0)));
	CHECK_EQ(get(WHO_PROCESS, 0), PRIO(3, 0));
	CHECK_OK(set(WHO_PROCESS, 0, PRIO(0, 0)));
	CHECK_EQ(get(WHO_PROCESS, 0), 0);
}

CASE(errors)
{
	CHECK_ERR(set(WHO_PROCESS, 0, PRIO(0, 5)), EINVAL);
	CHECK_ERR(set(WHO_PROCESS, 0, PRIO(5, 0)), EINVAL);
	CHECK_ERR(set(9, 0, PRIO(2, 0)), EINVAL);
	CHECK_ERR(get(9, 0), EINVAL);
	CHECK_ERR(get(WHO_PROCESS, 0x3ffffff0), ESRCH);
	CHECK_ERR(set(WHO_PROCESS, 0x3ffffff0, PRIO(2, 0)), ESRCH);
	CHECK_ERR(get(WHO_PGRP, 0x3ffffff0), ESRCH);
}

CASE(children_inherit_and_groups_report_the_best)
{
	CHECK_OK(set(WHO_PROCESS, 0, PRIO(2, 3)));
	IN_CHILD({ CHECK_EQ(get(WHO_PROCESS, 0), PRIO(2, 3)); });
	CHECK_GE(get(WHO_PGRP, 0), 0);
	CHECK_GE(get(WHO_USER, 0), 0);
	CHECK_OK(set(WHO_PROCESS, 0, 0));
}

CASE(realtime_needs_privilege)
{
	IN_CHILD({
		int was_root = st_is_root();
		st_drop_privileges();
		CHECK_ERR(set(WHO_PROCESS, 0, PRIO(1, 0)), EPERM);
		CHECK_OK(set(WHO_PROCESS, 0, PRIO(3, 0)));
		CHECK_EQ(get(WHO_PROCESS, 0), PRIO(3, 0));
		/* Someone else's process: EPERM. */
		if (was_root)
			CHECK_ERR(set(WHO_PROCESS, getppid(), PRIO(2, 0)), EPERM);
	});
	if (st_is_root()) {
		CHECK_OK(set(WHO_PROCESS, 0, PRIO(1, 4)));
		CHECK_EQ(get(WHO_PROCESS, 0), PRIO(1, 4));
		CHECK_OK(set(WHO_PROCESS, 0, 0));
	}
}

/* IPC namespaces: CLONE_NEWIPC in unshare and clone gives a set of POSIX message queues
 * (and mqueue sysctls) of its own; an mqueue mount shows its mounter's; setns back.
 * (System V IPC objects per namespace: sysv_shm/limits_per_ipc_namespace.) */
#include "harness.h"
#include <mqueue.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>

static const char *qname(const char *tag)
{
	static char buf[4][64];
	static int n;
	char *b = buf[n++ % 4];
	snprintf(b, 64, "/st_nsipc_%d_%s", (int)getpid(), tag);
	return b;
}

static int need_root(void)
{
	if (!st_is_root()) {
		fprintf(stderr, "SKIP: CLONE_NEWIPC needs CAP_SYS_ADMIN\n");
		return 0;
	}
	return 1;
}

static void make_queue(const char *name)
{
	struct mq_attr a = { 0, 4, 16, 0 };
	mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
	if (q == (mqd_t)-1)
		FAIL("mq_open(%s): %s", name, st_errname(errno));
	mq_close(q);
}

CASE(queues_are_per_namespace)
{
	if (!need_root())
		return;
	const char *outer = qname("outer"), *inner = qname("inner");
	make_queue(outer);
	char link[64];
	ssize_t n = CHECK_OK(readlink("/proc/self/ns/ipc", link, sizeof link - 1));
	link[n] = 0;
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWIPC));
		char l2[64];
		ssize_t m = CHECK_OK(readlink("/proc/self/ns/ipc", l2, sizeof l2 - 1));
		l2[m] = 0;
		CHECK(strcmp(l2, link) != 0);
		CHECK_ERR(mq_open(outer, O_RDONLY), ENOENT);
		make_queue(inner);
		make_queue(outer); /* the same name, another queue */
		CHECK_OK(mq_unlink(outer));
	});
	/* The queue of the child's namespace went with it. */
	CHECK_ERR(mq_open(inner, O_RDONLY), ENOENT);
	mqd_t q = mq_open(outer, O_RDONLY);
	CHECK_NE(q, (mqd_t)-1);
	mq_close(q);
	CHECK_OK(mq_unlink(outer));
}

CASE(clone_newipc_and_setns)
{
	if (!need_root())
		return;
	const char *outer = qname("outer");
	make_queue(outer);
	pid_t pid = CHECK_OK(syscall(SYS_clone, CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0));
	if (pid == 0) {
		if (mq_open(outer, O_RDONLY) != (mqd_t)-1 || errno != ENOENT)
			_exit(1);
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	IN_CHILD({
		int fd = CHECK_OK(open("/proc/self/ns/ipc", O_RDONLY));
		CHECK_OK(unshare(CLONE_NEWIPC));
		CHECK_ERR(mq_open(outer, O_RDONLY), ENOENT);
		CHECK_OK(setns(fd, CLONE_NEWIPC));
		mqd_t q = mq_open(outer, O_RDONLY);
		CHECK_NE(q, (mqd_t)-1);
	});
	CHECK_OK(mq_unlink(outer));
	/* CLONE_SYSVSEM with CLONE_NEWIPC makes no sense. */
	CHECK_ERR(syscall(SYS_clone, CLONE_NEWIPC | CLONE_SYSVSEM | SIGCHLD, 0, 0, 0, 0),
		  EINVAL);
}

CASE(sysctls_are_per_namespace)
{
	if (!need_root())
		return;
	char before[32];
	ssize_t n = CHECK_OK(st_read_file("/proc/sys/fs/mqueue/msg_max", before, sizeof before - 1));
	before[n] = 0;
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWIPC));
		/* A new namespace starts from the defaults. */
		char buf[32];
		ssize_t m = CHECK_OK(st_read_file("/proc/sys/fs/mqueue/msg_max", buf, sizeof buf - 1));
		buf[m] = 0;
		CHECK_STREQ(buf, "10\n");
		st_write_file("/proc/sys/fs/mqueue/msg_max", "7");
		m = CHECK_OK(st_read_file("/proc/sys/fs/mqueue/msg_max", buf, sizeof buf - 1));
		buf[m] = 0;
		CHECK_STREQ(buf, "7\n");
	});
	char after[32];
	n = CHECK_OK(st_read_file("/proc/sys/fs/mqueue/msg_max", after, sizeof after - 1));
	after[n] = 0;
	CHECK_STREQ(after, before);
}

CASE(mqueue_mount_shows_the_mounters_namespace)
{
	if (!need_root())
		return;
	const char *outer = qname("outer");
	make_queue(outer);
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWIPC | CLONE_NEWNS));
		CHECK_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
		CHECK_OK(mkdir(P("mq"), 0755));
		CHECK_OK(mount("mqueue", P("mq"), "mqueue", 0, NULL));
		make_queue(qname("inner"));
		char path[128];
		snprintf(path, sizeof path, "%s%s", P("mq"), qname("inner"));
		CHECK_OK(access(path, F_OK));
		snprintf(path, sizeof path, "%s%s", P("mq"), outer);
		CHECK_ERR(access(path, F_OK), ENOENT);
		CHECK_OK(umount2(P("mq"), 0));
	});
	CHECK_OK(mq_unlink(outer));
}

CASE(unprivileged)
{
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(unshare(CLONE_NEWIPC), EPERM);
		CHECK_ERR(syscall(SYS_clone, CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0), EPERM);
	});
}

/* unshare(2) of the fs context and the fd table in one thread, and its errors. */
#include "harness.h"
#include <sched.h>

static int thread_fd;
static char thread_dir[300];

static void *unshare_fs_thread(void *arg)
{
	(void)arg;
	if (unshare(CLONE_FS) != 0 || chdir(thread_dir) != 0)
		return (void *)1;
	return NULL;
}

CASE(clone_fs_keeps_the_cwd_change_in_the_thread)
{
	char before[4096], after[4096];
	CHECK_PTR(getcwd(before, sizeof before));
	snprintf(thread_dir, sizeof thread_dir, "%s", P(""));
	pthread_t th;
	void *r;
	CHECK_EQ(pthread_create(&th, NULL, unshare_fs_thread, NULL), 0);
	CHECK_EQ(pthread_join(th, &r), 0);
	CHECK(r == NULL);
	CHECK_PTR(getcwd(after, sizeof after));
	CHECK_STREQ(after, before);
}

static void *unshare_files_thread(void *arg)
{
	(void)arg;
	if (unshare(CLONE_FILES) != 0 || close(thread_fd) != 0)
		return (void *)1;
	return NULL;
}

CASE(clone_files_keeps_the_close_in_the_thread)
{
	thread_fd = CHECK_OK(open("/dev/null", O_RDONLY));
	pthread_t th;
	void *r;
	CHECK_EQ(pthread_create(&th, NULL, unshare_files_thread, NULL), 0);
	CHECK_EQ(pthread_join(th, &r), 0);
	CHECK(r == NULL);
	CHECK_OK(fcntl(thread_fd, F_GETFD));
	close(thread_fd);
}

static void *sleeper(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

CASE(errors)
{
	CHECK_ERR(unshare(0x1), EINVAL);
	/* Nothing to undo alone: fine. */
	CHECK_OK(unshare(0));
	CHECK_OK(unshare(CLONE_SIGHAND | CLONE_VM));
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, sleeper, NULL), 0);
	CHECK_ERR(unshare(CLONE_VM), EINVAL);
	CHECK_ERR(unshare(CLONE_THREAD), EINVAL);
	IN_CHILD({
		st_drop_privileges();
		if (geteuid() != 0)
			CHECK_ERR(unshare(CLONE_NEWNS), EPERM);
	});
}

/* getrlimit, setrlimit, prlimit64 and the limits they enforce. */
#include "harness.h"
#include <sys/resource.h>

CASE(getrlimit_nofile_sane)
{
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
	CHECK_GT(rl.rlim_cur, 3);
	CHECK_ULE(rl.rlim_cur, rl.rlim_max);
	CHECK_EQ(sysconf(_SC_OPEN_MAX), (long)rl.rlim_cur);
}

CASE(all_resources_readable)
{
	for (int r = 0; r < RLIM_NLIMITS; r++) {
		struct rlimit rl;
		if (getrlimit(r, &rl) != 0)
			FAIL("getrlimit(%d): %s", r, st_errname(errno));
		CHECK_ULE(rl.rlim_cur, rl.rlim_max);
	}
	struct rlimit rl;
	CHECK_ERR(getrlimit(RLIM_NLIMITS + 5, &rl), EINVAL);
}

CASE(nofile_limit_enforced)
{
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
	rl.rlim_cur = 20;
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
	int last = -1;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd < 0) {
			CHECK_EQ(errno, EMFILE);
			break;
		}
		CHECK_LT(fd, 20);
		last = fd;
	}
	CHECK_EQ(last, 19);
	CHECK_ERR(dup(last), EMFILE);
	CHECK_ERR(dup2(last, 20), EBADF);
	CHECK_ERR(fcntl(last, F_DUPFD, 20), EINVAL);
	int p[2];
	CHECK_ERR(pipe(p), EMFILE);
}

CASE(soft_above_hard_einval)
{
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
	struct rlimit bad = { rl.rlim_max + 1, rl.rlim_max };
	if (rl.rlim_max != RLIM_INFINITY)
		CHECK_ERR(setrlimit(RLIMIT_NOFILE, &bad), EINVAL);
	struct rlimit bad2 = { 100, 50 };
	CHECK_ERR(setrlimit(RLIMIT_CORE, &bad2), EINVAL);
}

CASE(lower_hard_limit_is_permanent_unprivileged)
{
	IN_CHILD({
		st_drop_privileges();
		struct rlimit rl = { 1024, 2048 };
		CHECK_OK(setrlimit(RLIMIT_CORE, &rl));
		struct rlimit up = { 1024, 4096 };
		CHECK_ERR(setrlimit(RLIMIT_CORE, &up), EPERM);
		CHECK_OK(getrlimit(RLIMIT_CORE, &rl));
		CHECK_EQ(rl.rlim_max, 2048);
	});
}

CASE(prlimit_self_matches)
{
	struct rlimit a;
	CHECK_OK(getrlimit(RLIMIT_STACK, &a));
	struct rlimit b;
	CHECK_OK(prlimit(0, RLIMIT_STACK, NULL, &b));
	CHECK_UEQ(a.rlim_cur, b.rlim_cur);
	CHECK_UEQ(a.rlim_max, b.rlim_max);
	CHECK_OK(prlimit(getpid(), RLIMIT_STACK, NULL, &b));
	CHECK_UEQ(a.rlim_cur, b.rlim_cur);
	/* Set a new value and get the old one in one call. */
	struct rlimit before, old, newcore = { 0, 0 };
	CHECK_OK(getrlimit(RLIMIT_CORE, &before));
	CHECK_OK(prlimit(0, RLIMIT_CORE, &newcore, &old));
	CHECK_UEQ(old.rlim_cur, before.rlim_cur);
	CHECK_UEQ(old.rlim_max, before.rlim_max);
	CHECK_OK(prlimit(0, RLIMIT_CORE, NULL, &old));
	CHECK_EQ(old.rlim_cur, 0);
	CHECK_EQ(old.rlim_max, 0);
	CHECK_ERR(prlimit(0x3ffffff0, RLIMIT_CORE, NULL, &old), ESRCH);
}

CASE(limits_inherited_by_child)
{
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
	rl.rlim_cur = 77;
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
	IN_CHILD({
		struct rlimit c;
		CHECK_OK(getrlimit(RLIMIT_NOFILE, &c));
		CHECK_EQ(c.rlim_cur, 77);
	});
}

CASE(fsize_limit_efbig_and_sigxfsz)
{
	int fd = CHECK_OK(open(P("f"), O_WRONLY | O_CREAT, 0644));
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_FSIZE, &rl));
	rl.rlim_cur = 10;
	CHECK_OK(setrlimit(RLIMIT_FSIZE, &rl));
	signal(SIGXFSZ, SIG_IGN);
	/* A write crossing the limit is cut short; one starting at it fails. */
	CHECK_EQ(write(fd, "0123456789abcdef", 16), 10);
	CHECK_ERR(write(fd, "x", 1), EFBIG);
	close(fd);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		signal(SIGXFSZ, SIG_DFL);
		int f = open(P("f"), O_WRONLY | O_APPEND);
		(void)!write(f, "x", 1);
		_exit(0);
	}
	int st = st_wait(pid) & ~0x80;
	CHECK_SIGNALED(st, SIGXFSZ);
}

CASE(as_limit_makes_mmap_fail)
{
	IN_CHILD({
		struct rlimit rl = { 512UL << 20, 512UL << 20 };
		CHECK_OK(setrlimit(RLIMIT_AS, &rl));
		CHECK_ERR((long)mmap(NULL, 1UL << 30, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM);
		void *p = CHECK_PTR(mmap(NULL, 1 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
		munmap(p, 1 << 20);
	});
}

CASE(getrusage_self)
{
	struct rusage ru;
	CHECK_OK(getrusage(RUSAGE_SELF, &ru));
	CHECK_GT(ru.ru_maxrss, 0);
	CHECK_OK(getrusage(RUSAGE_THREAD, &ru));
	CHECK_ERR(getrusage(12345, &ru), EINVAL);
}

CASE(priority_nice)
{
	errno = 0;
	int prio = getpriority(PRIO_PROCESS, 0);
	CHECK_EQ(errno, 0);
	IN_CHILD({
		CHECK_EQ(nice(3), prio + 3);
		errno = 0;
		CHECK_EQ(getpriority(PRIO_PROCESS, 0), prio + 3);
		CHECK_OK(setpriority(PRIO_PROCESS, 0, 19));
		CHECK_EQ(getpriority(PRIO_PROCESS, getpid()), 19);
		st_drop_privileges();
		CHECK_ERR(setpriority(PRIO_PROCESS, 0, 0), EACCES);
	});
}

static void *nproc_thread(void *arg)
{
	return arg;
}

CASE(nproc_limit_fork_and_threads)
{
	IN_CHILD({
		struct rlimit old;
		CHECK_OK(getrlimit(RLIMIT_NPROC, &old));
		struct rlimit none = { 0, old.rlim_max };
		if (geteuid() == 0) {
			/* Root is not bound by it. */
			CHECK_OK(setrlimit(RLIMIT_NPROC, &none));
			IN_CHILD({});
			CHECK_OK(setrlimit(RLIMIT_NPROC, &old));
		}
		st_drop_privileges();
		/* This user has at least this process: no new task past a limit of 0. */
		CHECK_OK(setrlimit(RLIMIT_NPROC, &none));
		CHECK_ERR(fork(), EAGAIN);
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, nproc_thread, NULL), EAGAIN);
		/* Back to the old limit: fork works again. */
		CHECK_OK(setrlimit(RLIMIT_NPROC, &old));
		IN_CHILD({});
	});
}

/* prctl: names, parent-death signals, dumpable, no_new_privs, child subreapers, keepcaps. */
#include "harness.h"

#include <sys/prctl.h>

extern char **environ;

/* Exits with prctl(OPTION) (read into an int when ARG is "ptr"). */
HELPER(prctl_get)
{
	int opt = atoi(argv[1]);
	if (argc > 2 && strcmp(argv[2], "ptr") == 0) {
		int v = -1;
		if (prctl(opt, &v) != 0)
			return 200;
		return v;
	}
	int r = prctl(opt, 0, 0, 0, 0);
	return r < 0 ? 201 : r;
}

static int exec_get(int opt, const char *ptr)
{
	char num[16];
	snprintf(num, sizeof num, "%d", opt);
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", st_errname(errno));
	if (pid == 0) {
		char *argv[] = { (char *)st_self, "--helper", "prctl_get", num, (char *)ptr, NULL };
		execve(st_self, argv, environ);
		_exit(127);
	}
	int status = st_wait(pid);
	if (!WIFEXITED(status))
		FAIL("helper status %#x", status);
	return WEXITSTATUS(status);
}

static void *name_thread(void *arg)
{
	(void)arg;
	if (prctl(PR_SET_NAME, "worker-thread") != 0)
		return (void *)1;
	char name[16] = { 0 };
	prctl(PR_GET_NAME, name);
	return strcmp(name, "worker-thread") ? (void *)2 : NULL;
}

CASE(name_is_per_thread)
{
	CHECK_OK(prctl(PR_SET_NAME, "main-name"));
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, name_thread, NULL));
	void *ret;
	CHECK_PT(pthread_join(t, &ret));
	CHECK_EQ((long)ret, 0);
	char name[16] = { 0 };
	CHECK_OK(prctl(PR_GET_NAME, name));
	CHECK_STREQ(name, "main-name");
	/* Writing /proc/self/comm is the same as PR_SET_NAME. */
	int fd = CHECK_OK(open("/proc/self/comm", O_WRONLY));
	CHECK_EQ(write(fd, "via-comm", 8), 8);
	close(fd);
	CHECK_OK(prctl(PR_GET_NAME, name));
	CHECK_STREQ(name, "via-comm");
	/* A forked child inherits the name. */
	IN_CHILD({
		char n[16] = { 0 };
		CHECK_OK(prctl(PR_GET_NAME, n));
		CHECK_STREQ(n, "via-comm");
	});
}

CASE(name_reset_by_exec)
{
	/* execve sets the name to the file name's last component (15 bytes at most). */
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		prctl(PR_SET_NAME, "before-exec");
		dup2(p[1], 1);
		char *argv[] = { "cat", "/proc/self/comm", NULL };
		execve("/bin/cat", argv, environ);
		_exit(127);
	}
	close(p[1]);
	char buf[64] = { 0 };
	size_t off = 0;
	ssize_t r;
	while ((r = read(p[0], buf + off, sizeof buf - 1 - off)) > 0)
		off += r;
	close(p[0]);
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_STREQ(buf, "cat\n");
}

CASE(pdeathsig_delivered_when_parent_exits)
{
	/* We are the subreaper, so the orphan comes back to us to be waited for. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	int ready[2], gcpid[2];
	CHECK_OK(pipe(ready));
	CHECK_OK(pipe(gcpid));
	pid_t mid = CHECK_OK(fork());
	if (mid == 0) {
		pid_t gc = fork();
		if (gc == 0) {
			pid_t parent = getppid();
			if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0)
				_exit(10);
			if (getppid() != parent)
				_exit(11);
			(void)!write(ready[1], "r", 1);
			for (;;)
				pause();
		}
		(void)!write(gcpid[1], &gc, sizeof gc);
		char c;
		if (read(ready[0], &c, 1) != 1)
			_exit(12);
		/* Exit while the grandchild waits: it gets SIGUSR1 (default action kills). */
		_exit(0);
	}
	pid_t gc;
	CHECK_EQ(read(gcpid[0], &gc, sizeof gc), (ssize_t)sizeof gc);
	CHECK_EXITED(st_wait(mid), 0);
	CHECK_SIGNALED(st_wait(gc), SIGUSR1);
}

static volatile sig_atomic_t pdeath_got;
static volatile pid_t pdeath_ppid_in_handler;
static void pdeath_handler(int sig)
{
	pdeath_got = sig;
	pdeath_ppid_in_handler = getppid();
}

CASE(pdeathsig_handler_sees_new_parent)
{
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	pid_t me = getpid();
	int ready[2], gcpid[2];
	CHECK_OK(pipe(ready));
	CHECK_OK(pipe(gcpid));
	pid_t mid = CHECK_OK(fork());
	if (mid == 0) {
		pid_t gc = fork();
		if (gc == 0) {
			st_handle(SIGUSR2, pdeath_handler, 0);
			/* Blocked until sigsuspend: with pause(), a signal handled between
			 * the check and the call would leave it waiting forever. */
			sigset_t usr2, none;
			sigemptyset(&usr2);
			sigemptyset(&none);
			sigaddset(&usr2, SIGUSR2);
			sigprocmask(SIG_BLOCK, &usr2, NULL);
			if (prctl(PR_SET_PDEATHSIG, SIGUSR2) != 0)
				_exit(10);
			(void)!write(ready[1], "r", 1);
			while (!pdeath_got)
				sigsuspend(&none);
			/* The handler runs after the reparenting. */
			_exit(pdeath_ppid_in_handler == me ? 42 : 43);
		}
		(void)!write(gcpid[1], &gc, sizeof gc);
		char c;
		if (read(ready[0], &c, 1) != 1)
			_exit(12);
		_exit(0);
	}
	pid_t gc;
	CHECK_EQ(read(gcpid[0], &gc, sizeof gc), (ssize_t)sizeof gc);
	CHECK_EXITED(st_wait(mid), 0);
	CHECK_EXITED(st_wait(gc), 42);
}

CASE(dumpable)
{
	CHECK_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
	IN_CHILD({
		CHECK_EQ(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
		/* Only 0 and 1 may be set. */
		CHECK_ERR(prctl(PR_SET_DUMPABLE, 2, 0, 0, 0), EINVAL);
		CHECK_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
		/* Inherited by fork... */
		IN_CHILD(CHECK_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0));
		/* ...and reset to 1 by execve of an ordinary program. */
		CHECK_EQ(exec_get(PR_GET_DUMPABLE, NULL), 1);
		CHECK_EQ(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
	});
}

CASE(no_new_privs_is_sticky)
{
	IN_CHILD({
		CHECK_EQ(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 0);
		/* The unused arguments must be zero. */
		CHECK_ERR(prctl(PR_SET_NO_NEW_PRIVS, 1, 1, 0, 0), EINVAL);
		CHECK_ERR(prctl(PR_GET_NO_NEW_PRIVS, 1, 0, 0, 0), EINVAL);
		CHECK_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1);
		/* It cannot be unset. */
		CHECK_ERR(prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0), EINVAL);
		/* Inherited by fork and kept across execve. */
		IN_CHILD(CHECK_EQ(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1));
		CHECK_EQ(exec_get(PR_GET_NO_NEW_PRIVS, NULL), 1);
		/* /proc/self/status shows it. */
		char buf[4096];
		st_read_file("/proc/self/status", buf, sizeof buf);
		CHECK(strstr(buf, "\nNoNewPrivs:\t1\n") != NULL);
	});
}

CASE(child_subreaper_flag)
{
	int v = -1;
	CHECK_OK(prctl(PR_GET_CHILD_SUBREAPER, &v));
	CHECK_EQ(v, 0);
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	CHECK_OK(prctl(PR_GET_CHILD_SUBREAPER, &v));
	CHECK_EQ(v, 1);
	/* Not inherited by fork, kept across execve. */
	IN_CHILD({
		int c = -1;
		CHECK_OK(prctl(PR_GET_CHILD_SUBREAPER, &c));
		CHECK_EQ(c, 0);
	});
	IN_CHILD({
		CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
		CHECK_EQ(exec_get(PR_GET_CHILD_SUBREAPER, "ptr"), 0);
	});
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 0));
	CHECK_OK(prctl(PR_GET_CHILD_SUBREAPER, &v));
	CHECK_EQ(v, 0);
}

CASE(subreaper_reaps_grandchildren)
{
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	pid_t me = getpid();
	int p[2];
	CHECK_OK(pipe(p));
	pid_t mid = CHECK_OK(fork());
	if (mid == 0) {
		for (int i = 0; i < 3; i++) {
			pid_t gc = fork();
			if (gc == 0) {
				/* Wait to be reparented, then report and exit with a code. */
				while (getppid() != me)
					st_sleep_ms(5);
				_exit(20 + i);
			}
			(void)!write(p[1], &gc, sizeof gc);
		}
		_exit(7);
	}
	close(p[1]);
	pid_t gcs[3];
	for (int i = 0; i < 3; i++)
		CHECK_EQ(read(p[0], &gcs[i], sizeof gcs[i]), (ssize_t)sizeof gcs[i]);
	CHECK_EXITED(st_wait(mid), 7);
	/* All three orphans are our children now. */
	int seen = 0;
	for (int i = 0; i < 3; i++) {
		int status;
		pid_t r = waitpid(-1, &status, 0);
		int k;
		for (k = 0; k < 3; k++)
			if (r == gcs[k])
				break;
		CHECK_LT(k, 3);
		CHECK_EXITED(status, 20 + k);
		seen |= 1 << k;
	}
	CHECK_EQ(seen, 7);
	CHECK_ERR(waitpid(-1, NULL, WNOHANG), ECHILD);
}

CASE(keepcaps_and_timerslack)
{
	IN_CHILD({
		CHECK_EQ(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0), 1);
		CHECK_ERR(prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0), EINVAL);
		/* Reset by execve. */
		CHECK_EQ(exec_get(PR_GET_KEEPCAPS, NULL), 0);

		CHECK_GT(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_SET_TIMERSLACK, 12345, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), 12345);
		/* Inherited by fork. */
		IN_CHILD(CHECK_EQ(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), 12345));
	});
}

CASE(errors)
{
	CHECK_ERR(prctl(PR_SET_PDEATHSIG, -1), EINVAL);
	CHECK_ERR(prctl(PR_SET_PDEATHSIG, 65), EINVAL);
	CHECK_ERR(prctl(PR_GET_PDEATHSIG, (void *)8), EFAULT);
	CHECK_ERR(prctl(PR_GET_NAME, (void *)8), EFAULT);
	CHECK_ERR(prctl(PR_CAPBSET_READ, 1000, 0, 0, 0), EINVAL);
	CHECK_EQ(prctl(PR_CAPBSET_READ, 0 /* CAP_CHOWN */, 0, 0, 0) >= 0, 1);
	CHECK_ERR(prctl(-1, 0, 0, 0, 0), EINVAL);
}

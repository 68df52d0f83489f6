/* getpid, getppid, process groups, sessions, prctl, credentials. */
#include "harness.h"
#include <sys/prctl.h>

CASE(getpid_consistent)
{
	pid_t p = getpid();
	CHECK_GT(p, 0);
	CHECK_EQ(syscall(SYS_getpid), p);
	CHECK_EQ(syscall(SYS_gettid), p);
	/* The first process of a pid namespace (pid 1) has parent 0. */
	if (p == 1)
		CHECK_EQ(getppid(), 0);
	else
		CHECK_GT(getppid(), 0);
	CHECK_NE(getppid(), p);
}

CASE(child_pid_distinct)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		pid_t me = getpid();
		_exit(write(p[1], &me, sizeof me) == sizeof me ? 0 : 1);
	}
	pid_t reported = 0;
	CHECK_EQ(read(p[0], &reported, sizeof reported), sizeof reported);
	CHECK_EQ(reported, pid);
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(getpgrp_and_getpgid)
{
	CHECK_EQ(getpgrp(), getpgid(0));
	CHECK_EQ(getpgid(getpid()), getpgrp());
	CHECK_ERR(getpgid(0x3ffffff0), ESRCH);
	CHECK_EQ(getsid(0), getsid(getpid()));
	CHECK_ERR(getsid(0x3ffffff0), ESRCH);
}

CASE(setpgid_child_from_parent)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		close(p[1]);
		(void)!read(p[0], &c, 1);
		_exit(getpgrp() == getpid() ? 0 : 1);
	}
	CHECK_OK(setpgid(pid, pid));
	CHECK_EQ(getpgid(pid), pid);
	close(p[1]);
	CHECK_EXITED(st_wait(pid), 0);
	close(p[0]);
}

CASE(setpgid_errors)
{
	CHECK_ERR(setpgid(0, -1), EINVAL);
	CHECK_ERR(setpgid(0x3ffffff0, 0), ESRCH);
	IN_CHILD({
		CHECK_OK(setsid());
		/* A session leader cannot change its group. */
		CHECK_ERR(setpgid(0, 0), EPERM);
	});
}

CASE(setsid_new_session)
{
	IN_CHILD({
		pid_t me = getpid();
		/* Not a group leader (fork child): setsid succeeds. */
		CHECK_EQ(setsid(), me);
		CHECK_EQ(getsid(0), me);
		CHECK_EQ(getpgrp(), me);
		/* Now a group leader: setsid fails. */
		CHECK_ERR(setsid(), EPERM);
		/* A new session has no controlling terminal. */
		CHECK_ERR(open("/dev/tty", O_RDWR), ENXIO);
	});
}

CASE(child_joins_parents_group)
{
	IN_CHILD({
		CHECK_OK(setpgid(0, 0));
		pid_t leader = getpid();
		pid_t pid = CHECK_OK(fork());
		if (pid == 0)
			_exit(getpgrp() == leader ? 0 : 1);
		CHECK_EXITED(st_wait(pid), 0);
	});
}

CASE(prctl_name)
{
	CHECK_OK(prctl(PR_SET_NAME, "st-name-test"));
	char name[17] = { 0 };
	CHECK_OK(prctl(PR_GET_NAME, name));
	CHECK_STREQ(name, "st-name-test");
	/* Truncated to 15 characters. */
	CHECK_OK(prctl(PR_SET_NAME, "0123456789abcdefghij"));
	CHECK_OK(prctl(PR_GET_NAME, name));
	CHECK_STREQ(name, "0123456789abcde");
	char buf[64];
	st_read_file("/proc/self/comm", buf, sizeof buf);
	CHECK_STREQ(buf, "0123456789abcde\n");
}

CASE(prctl_pdeathsig)
{
	CHECK_OK(prctl(PR_SET_PDEATHSIG, SIGUSR1));
	int sig = -1;
	CHECK_OK(prctl(PR_GET_PDEATHSIG, &sig));
	CHECK_EQ(sig, SIGUSR1);
	/* Cleared in a forked child. */
	IN_CHILD({
		int s = -1;
		CHECK_OK(prctl(PR_GET_PDEATHSIG, &s));
		CHECK_EQ(s, 0);
	});
	CHECK_ERR(prctl(PR_SET_PDEATHSIG, 1000), EINVAL);
}

CASE(prctl_misc)
{
	CHECK_EQ(prctl(PR_GET_DUMPABLE), 1);
	CHECK_EQ(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) >= 0, 1);
	IN_CHILD({
		CHECK_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
		CHECK_EQ(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1);
	});
	CHECK_ERR(prctl(0x7fffffff, 0, 0, 0, 0), EINVAL);
}

CASE(parent_death_reparents_orphan)
{
	/* A grandchild whose parent exits gets a new parent (init or a subreaper). */
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	pid_t me = getpid();
	pid_t child = CHECK_OK(fork());
	if (child == 0) {
		pid_t gc = fork();
		if (gc == 0) {
			close(p[0]);
			while (getppid() != me)
				st_sleep_ms(1);
			(void)!write(p[1], "k", 1);
			_exit(0);
		}
		_exit(0);
	}
	close(p[1]);
	CHECK_EXITED(st_wait(child), 0);
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	/* The orphan is now our child: we can reap it. */
	int status;
	pid_t r = CHECK_OK(wait(&status));
	CHECK_NE(r, child);
	CHECK_EXITED(status, 0);
	close(p[0]);
}

CASE(credentials_consistent)
{
	uid_t r, e, s;
	CHECK_OK(getresuid(&r, &e, &s));
	CHECK_EQ(r, getuid());
	CHECK_EQ(e, geteuid());
	gid_t gr, ge, gs;
	CHECK_OK(getresgid(&gr, &ge, &gs));
	CHECK_EQ(gr, getgid());
	CHECK_EQ(ge, getegid());
}

CASE(exit_group_status)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		syscall(SYS_exit_group, 33);
	CHECK_EXITED(st_wait(pid), 33);
}

CASE(personality_query)
{
	long p = syscall(SYS_personality, 0xffffffff);
	CHECK_GE(p, 0);
	CHECK_EQ(p & 0xff, 0);
}

struct pdeath_thread {
	int ready[2];
	pid_t child;
};

static void *pdeath_forker(void *arg)
{
	struct pdeath_thread *p = arg;
	pid_t me = getpid();
	pid_t c = fork();
	if (c == 0) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGUSR1);
		sigprocmask(SIG_BLOCK, &s, NULL);
		if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0 || getppid() != me)
			_exit(10);
		(void)!write(p->ready[1], "r", 1);
		siginfo_t si;
		struct timespec to = { 5, 0 };
		if (sigtimedwait(&s, &si, &to) != SIGUSR1)
			_exit(11);
		/* The process of the thread that died is still our parent. */
		_exit(getppid() == me ? 0 : 12);
	}
	p->child = c;
	char ch;
	(void)!read(p->ready[0], &ch, 1);
	/* This thread, the child's "parent" for PR_SET_PDEATHSIG, exits. */
	return NULL;
}

CASE(pdeathsig_when_the_parent_thread_exits)
{
	/* prctl(2): the parent is the thread that created the process: its exit sends the
	 * signal, though the rest of the parent process lives on. */
	struct pdeath_thread p = { .child = 0 };
	CHECK_OK(pipe(p.ready));
	pthread_t th;
	CHECK_PT(pthread_create(&th, NULL, pdeath_forker, &p));
	CHECK_PT(pthread_join(th, NULL));
	CHECK_EXITED(st_wait(p.child), 0);
}

extern char **environ;

/* The helper reports its own comm: its exit status is 0 when it matches argv[1]. */
HELPER(comm_is)
{
	char buf[64];
	st_read_file("/proc/self/comm", buf, sizeof buf);
	char want[64];
	snprintf(want, sizeof want, "%s\n", argv[1]);
	return strcmp(buf, want) == 0 ? 0 : 1;
}

CASE(execve_comm_is_the_name_given)
{
	/* comm is the last component of the path passed to execve, not of the file a
	 * symlink leads to. */
	CHECK_OK(symlink(st_self, P("a-link-name")));
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", st_errname(errno));
	if (pid == 0) {
		char *argv[] = { P("a-link-name"), "--helper", "comm_is", "a-link-name", NULL };
		execve(argv[0], argv, environ);
		_exit(127);
	}
	CHECK_EXITED(st_wait(pid), 0);
}

/* waitid: WEXITED/WSTOPPED/WCONTINUED/WNOWAIT/WNOHANG, the siginfo it fills,
 * P_PID/P_PGID/P_ALL/P_PIDFD, __WCLONE/__WALL, errors. */
#include "harness.h"

#include <sys/prctl.h>

extern char **environ;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* A child that stops itself and, once continued, waits for SIGTERM... */
static pid_t stopping_child(void)
{
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork");
	if (pid == 0) {
		raise(SIGSTOP);
		for (;;)
			pause();
	}
	return pid;
}

static siginfo_t wid(idtype_t type, id_t id, int options)
{
	siginfo_t si;
	memset(&si, 0x5a, sizeof si);
	int r;
	do
		r = waitid(type, id, &si, options);
	while (r < 0 && errno == EINTR);
	if (r != 0)
		FAIL("waitid(%d, %d, %#x): %s", type, (int)id, options, st_errname(errno));
	return si;
}

CASE(exited_siginfo_fields)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(300 & 0xff);
	siginfo_t si = wid(P_PID, pid, WEXITED);
	CHECK_EQ(si.si_signo, SIGCHLD);
	CHECK_EQ(si.si_errno, 0);
	CHECK_EQ(si.si_code, CLD_EXITED);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_uid, getuid());
	CHECK_EQ(si.si_status, 44);
	/* Reaped: a second wait finds no child. */
	CHECK_ERR(waitid(P_PID, pid, &si, WEXITED), ECHILD);
}

CASE(stopped_continued_killed)
{
	pid_t pid = stopping_child();
	siginfo_t si = wid(P_PID, pid, WSTOPPED);
	CHECK_EQ(si.si_signo, SIGCHLD);
	CHECK_EQ(si.si_code, CLD_STOPPED);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, SIGSTOP);
	CHECK_OK(kill(pid, SIGCONT));
	si = wid(P_PID, pid, WCONTINUED);
	CHECK_EQ(si.si_code, CLD_CONTINUED);
	CHECK_EQ(si.si_status, SIGCONT);
	CHECK_EQ(si.si_pid, pid);
	CHECK_OK(kill(pid, SIGTERM));
	si = wid(P_PID, pid, WEXITED);
	CHECK_EQ(si.si_code, CLD_KILLED);
	CHECK_EQ(si.si_status, SIGTERM);
	CHECK_EQ(si.si_pid, pid);
}

CASE(wnohang_with_nothing_to_report_zeroes_siginfo)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		close(p[1]);
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	siginfo_t si;
	memset(&si, 0x5a, sizeof si);
	CHECK_EQ(waitid(P_PID, pid, &si, WEXITED | WNOHANG), 0);
	/* Linux fills the siginfo with zeros: si_pid 0 means "no child changed state". */
	CHECK_EQ(si.si_pid, 0);
	CHECK_EQ(si.si_signo, 0);
	CHECK_EQ(si.si_status, 0);
	memset(&si, 0x5a, sizeof si);
	CHECK_EQ(waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WCONTINUED | WNOHANG), 0);
	CHECK_EQ(si.si_pid, 0);
	close(p[1]);
	si = wid(P_PID, pid, WEXITED);
	CHECK_EQ(si.si_code, CLD_EXITED);
}

CASE(wnowait_leaves_stop_reportable)
{
	pid_t pid = stopping_child();
	siginfo_t a = wid(P_PID, pid, WSTOPPED | WNOWAIT);
	siginfo_t b = wid(P_PID, pid, WSTOPPED | WNOWAIT);
	CHECK_EQ(a.si_code, CLD_STOPPED);
	CHECK_EQ(b.si_code, CLD_STOPPED);
	CHECK_EQ(b.si_status, SIGSTOP);
	/* Consuming it for real... */
	siginfo_t c = wid(P_PID, pid, WSTOPPED);
	CHECK_EQ(c.si_code, CLD_STOPPED);
	/* ...leaves nothing to report. */
	siginfo_t d;
	memset(&d, 0x5a, sizeof d);
	CHECK_EQ(waitid(P_PID, pid, &d, WSTOPPED | WNOHANG), 0);
	CHECK_EQ(d.si_pid, 0);
	/* waitpid with WUNTRACED agrees. */
	int status;
	CHECK_EQ(waitpid(pid, &status, WUNTRACED | WNOHANG), 0);
	CHECK_OK(kill(pid, SIGKILL));
	siginfo_t e = wid(P_PID, pid, WEXITED | WNOWAIT);
	CHECK_EQ(e.si_code, CLD_KILLED);
	CHECK_EQ(e.si_status, SIGKILL);
	/* Still a zombie: waitpid can reap it and sees the same. */
	CHECK_SIGNALED(st_wait(pid), SIGKILL);
}

CASE(exited_not_reported_without_wexited)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(3);
	/* Wait for the exit without reaping. */
	wid(P_PID, pid, WEXITED | WNOWAIT);
	siginfo_t si;
	memset(&si, 0x5a, sizeof si);
	/* Asking only for stops and continues does not report the exit: a zombie can
	 * never stop or continue, so Linux says there is no such child. */
	CHECK_ERR(waitid(P_PID, pid, &si, WSTOPPED | WCONTINUED | WNOHANG), ECHILD);
	CHECK_ERR(waitid(P_PID, pid, &si, WSTOPPED | WCONTINUED), ECHILD);
	si = wid(P_PID, pid, WEXITED);
	CHECK_EQ(si.si_status, 3);
}

CASE(p_pgid_selects_group)
{
	int go[2];
	CHECK_OK(pipe(go));
	pid_t a = CHECK_OK(fork());
	if (a == 0) {
		setpgid(0, 0);
		char c;
		close(go[1]);
		(void)!read(go[0], &c, 1);
		_exit(1);
	}
	CHECK_OK(setpgid(a, a));
	pid_t b = CHECK_OK(fork());
	if (b == 0) {
		char c;
		close(go[1]);
		(void)!read(go[0], &c, 1);
		_exit(2);
	}
	close(go[0]);
	/* Only a is in group a. */
	siginfo_t si;
	memset(&si, 0x5a, sizeof si);
	CHECK_EQ(waitid(P_PGID, a, &si, WEXITED | WNOHANG), 0);
	CHECK_EQ(si.si_pid, 0);
	close(go[1]);
	si = wid(P_PGID, a, WEXITED);
	CHECK_EQ(si.si_pid, a);
	CHECK_EQ(si.si_status, 1);
	CHECK_ERR(waitid(P_PGID, a, &si, WEXITED), ECHILD);
	/* P_PGID with id 0 means our own group, where b is. */
	si = wid(P_PGID, 0, WEXITED);
	CHECK_EQ(si.si_pid, b);
	CHECK_EQ(si.si_status, 2);
}

CASE(p_all_reaps_each_child_once)
{
	pid_t pids[4];
	for (int i = 0; i < 4; i++) {
		pids[i] = CHECK_OK(fork());
		if (pids[i] == 0)
			_exit(10 + i);
	}
	int seen = 0;
	for (int n = 0; n < 4; n++) {
		siginfo_t si = wid(P_ALL, 0, WEXITED);
		int k;
		for (k = 0; k < 4; k++)
			if (si.si_pid == pids[k])
				break;
		CHECK_LT(k, 4);
		CHECK_EQ(si.si_status, 10 + k);
		CHECK_EQ(seen & (1 << k), 0);
		seen |= 1 << k;
	}
	siginfo_t si;
	CHECK_ERR(waitid(P_ALL, 0, &si, WEXITED), ECHILD);
}

CASE(p_pidfd)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(50);
		_exit(9);
	}
	int pfd = CHECK_OK(syscall(SYS_pidfd_open, pid, 0));
	CHECK_EQ(fcntl(pfd, F_GETFD), FD_CLOEXEC);
	siginfo_t si = wid(P_PIDFD, pfd, WEXITED);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_code, CLD_EXITED);
	CHECK_EQ(si.si_status, 9);
	CHECK_ERR(waitid(P_PIDFD, pfd, &si, WEXITED), ECHILD);
	close(pfd);
	CHECK_ERR(waitid(P_PIDFD, pfd, &si, WEXITED), EBADF);
	/* A pidfd of a process that is not our child. */
	int self = CHECK_OK(syscall(SYS_pidfd_open, getpid(), 0));
	CHECK_ERR(waitid(P_PIDFD, self, &si, WEXITED), ECHILD);
	close(self);
	CHECK_ERR(syscall(SYS_pidfd_open, pid, 0), ESRCH);
}

static int clone_child(void *arg)
{
	(void)arg;
	return 5;
}

CASE(clone_children_need_wclone)
{
	/* A child whose exit signal is not SIGCHLD is only seen with __WCLONE or __WALL. */
	size_t sz = 64 * 1024;
	char *stack = malloc(sz);
	st_block(SIGUSR1);
	pid_t pid = CHECK_OK(clone(clone_child, stack + sz, SIGUSR1, NULL));
	siginfo_t si;
	memset(&si, 0, sizeof si);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	/* Its exit is announced with SIGUSR1, not SIGCHLD. */
	struct timespec to = { 5, 0 };
	CHECK_EQ(sigtimedwait(&s, &si, &to), SIGUSR1);
	CHECK_EQ(si.si_code, CLD_EXITED);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, 5);
	CHECK_ERR(waitid(P_PID, pid, &si, WEXITED | WNOHANG), ECHILD);
	int status;
	CHECK_ERR(waitpid(pid, &status, WNOHANG), ECHILD);
	si = wid(P_PID, pid, WEXITED | WNOWAIT | __WCLONE);
	CHECK_EQ(si.si_pid, pid);
	si = wid(P_PID, pid, WEXITED | __WALL);
	CHECK_EQ(si.si_status, 5);
	free(stack);
}

CASE(errors)
{
	siginfo_t si;
	/* No children at all. */
	CHECK_ERR(waitid(P_ALL, 0, &si, WEXITED), ECHILD);
	CHECK_ERR(waitid(P_ALL, 0, &si, WEXITED | WNOHANG), ECHILD);
	/* Options must ask for something. */
	CHECK_ERR(waitid(P_ALL, 0, &si, 0), EINVAL);
	CHECK_ERR(waitid(P_ALL, 0, &si, WNOHANG), EINVAL);
	CHECK_ERR(waitid((idtype_t)42, 0, &si, WEXITED), EINVAL);
	CHECK_ERR(waitid(P_PID, 0, &si, WEXITED), EINVAL);
	/* A pid that is not our child. */
	CHECK_ERR(waitid(P_PID, getpid(), &si, WEXITED), ECHILD);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	CHECK_ERR(waitid(P_PID, pid, &si, WEXITED | 0x10000000), EINVAL);
	siginfo_t ok = wid(P_PID, pid, WEXITED);
	CHECK_EQ(ok.si_pid, pid);
}

/* A thread that forks a child waiting on a pipe, reports its pid, and exits when told. */
struct forker {
	int child_pipe[2];
	int quit_pipe[2];
	pid_t child;
	int wnothread_found;
};

static void *forker_thread(void *arg)
{
	struct forker *f = arg;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(f->child_pipe[1]);
		(void)!read(f->child_pipe[0], &c, 1);
		_exit(6);
	}
	f->child = pid;
	/* Our own child is visible to us with __WNOTHREAD. */
	int status;
	f->wnothread_found = waitpid(pid, &status, WNOHANG | __WNOTHREAD) == 0;
	char c;
	(void)!read(f->quit_pipe[0], &c, 1);
	return NULL;
}

CASE(wnothread_sees_only_the_threads_own_children)
{
	struct forker f = { .child = 0 };
	CHECK_OK(pipe(f.child_pipe));
	CHECK_OK(pipe(f.quit_pipe));
	pthread_t th;
	CHECK_PT(pthread_create(&th, NULL, forker_thread, &f));
	while (__atomic_load_n(&f.child, __ATOMIC_SEQ_CST) == 0)
		st_sleep_ms(1);
	pid_t pid = f.child;
	int status;
	/* The child belongs to the other thread: invisible to us with __WNOTHREAD... */
	CHECK_ERR(waitpid(pid, &status, WNOHANG | __WNOTHREAD), ECHILD);
	siginfo_t si;
	CHECK_ERR(waitid(P_PID, pid, &si, WEXITED | WNOHANG | __WNOTHREAD), ECHILD);
	/* ...but any thread of the process may wait for it without. */
	CHECK_EQ(waitpid(pid, &status, WNOHANG), 0);
	/* When its thread exits, the child passes to another thread of the process: us. */
	CHECK_EQ(write(f.quit_pipe[1], "q", 1), 1);
	CHECK_PT(pthread_join(th, NULL));
	CHECK_EQ(f.wnothread_found, 1);
	/* (The join may return before the exiting thread has handed its children on.) */
	long long end = st_mono_ms() + 3000;
	while (waitpid(pid, &status, WNOHANG | __WNOTHREAD) < 0) {
		CHECK_EQ(errno, ECHILD);
		CHECK_LT(st_mono_ms(), end);
		st_sleep_ms(5);
	}
	close(f.child_pipe[1]);
	CHECK_EQ(waitpid(pid, &status, __WNOTHREAD), pid);
	CHECK_EXITED(status, 6);
}

CASE(wait4_clone_child_with_no_exit_signal)
{
	/* A child with no exit signal at all is a "clone" child too. */
	size_t sz = 64 * 1024;
	char *stack = malloc(sz);
	pid_t pid = CHECK_OK(clone(clone_child, stack + sz, 0, NULL));
	int status;
	/* waitpid/wait4 without __WCLONE/__WALL do not see it (and would block: WNOHANG). */
	CHECK_ERR(waitpid(pid, &status, WNOHANG), ECHILD);
	CHECK_ERR(waitpid(-1, &status, WNOHANG), ECHILD);
	CHECK_EQ(waitpid(pid, &status, __WCLONE), pid);
	CHECK_EXITED(status, 5);
	free(stack);
}

static volatile sig_atomic_t chld_count;
static void count_chld(int s)
{
	(void)s;
	chld_count++;
}

CASE(sa_nocldwait_with_handler_still_signals)
{
	/* SA_NOCLDWAIT: children leave no zombie, but SIGCHLD is still sent and handled. */
	chld_count = 0;
	st_handle(SIGCHLD, count_chld, SA_NOCLDWAIT);
	st_block(SIGCHLD);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	siginfo_t si;
	struct timespec to = { 5, 0 };
	CHECK_EQ(sigtimedwait(&s, &si, &to), SIGCHLD);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_code, CLD_EXITED);
	int status;
	CHECK_ERR(waitpid(pid, &status, 0), ECHILD);
}

static int clone_grandchild(void *arg)
{
	(void)arg;
	return 7;
}

CASE(reparented_clone_child_reports_with_sigchld)
{
	/* A child whose exit signal is SIGUSR1 is given SIGCHLD when it is reparented: its
	 * new parent (us, the subreaper) waits for it like any child. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	int p[2];
	CHECK_OK(pipe(p));
	pid_t mid = CHECK_OK(fork());
	if (mid == 0) {
		size_t sz = 64 * 1024;
		char *stack = malloc(sz);
		/* The grandchild's exit would otherwise kill us with SIGUSR1. */
		signal(SIGUSR1, SIG_IGN);
		pid_t gc = clone(clone_grandchild, stack + sz, SIGUSR1, NULL);
		(void)!write(p[1], &gc, sizeof gc);
		/* Leave it a zombie (or running) and go. */
		_exit(0);
	}
	close(p[1]);
	pid_t gc;
	CHECK_EQ(read(p[0], &gc, sizeof gc), (ssize_t)sizeof gc);
	CHECK_GT(gc, 0);
	CHECK_EXITED(st_wait(mid), 0);
	int status;
	CHECK_EQ(waitpid(gc, &status, 0), gc);
	CHECK_EXITED(status, 7);
}

HELPER(exit_3)
{
	(void)argc;
	(void)argv;
	return 3;
}

static int clone_then_exec(void *arg)
{
	(void)arg;
	char *argv[] = { (char *)st_self, "--helper", "exit_3", NULL };
	execve(st_self, argv, environ);
	return 127;
}

CASE(exec_makes_a_clone_child_an_ordinary_child)
{
	/* execve resets the exit signal to SIGCHLD ("we have changed execution domain"):
	 * a child cloned with no exit signal reports its exit with SIGCHLD once it has
	 * exec'ed, and plain waitpid sees it. */
	size_t sz = 64 * 1024;
	char *stack = malloc(sz);
	st_block(SIGCHLD);
	pid_t pid = CHECK_OK(clone(clone_then_exec, stack + sz, 0, NULL));
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	siginfo_t si;
	struct timespec to = { 5, 0 };
	CHECK_EQ(sigtimedwait(&s, &si, &to), SIGCHLD);
	CHECK_EQ(si.si_pid, pid);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_EXITED(status, 3);
	free(stack);
}

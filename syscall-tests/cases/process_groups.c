/* process_groups: setpgid's rules (EACCES after exec, EPERM across sessions, ESRCH),
 * kill(0)/kill(-pgid)/killpg, getsid/getpgid of others, orphaned process groups
 * (SIGHUP+SIGCONT to stopped members, job-control stops discarded). */
#include "harness.h"

#include <sys/prctl.h>

extern char **environ;

/* Waits until its stdin (a pipe) reaches EOF, then exits 0. */
HELPER(wait_stdin)
{
	(void)argc;
	(void)argv;
	char c;
	while (read(0, &c, 1) > 0) {
	}
	return 0;
}

static pid_t child_waiting_on(int rfd, int wfd_to_close)
{
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork");
	if (pid == 0) {
		char c;
		close(wfd_to_close);
		(void)!read(rfd, &c, 1);
		_exit(0);
	}
	return pid;
}

CASE(setpgid_after_exec_eacces)
{
	int p[2], sync[2];
	CHECK_OK(pipe(p));
	CHECK_OK(pipe2(sync, O_CLOEXEC));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		char *argv[] = { (char *)st_self, "--helper", "wait_stdin", NULL };
		execve(st_self, argv, environ);
		_exit(127);
	}
	close(p[0]);
	close(sync[1]);
	/* The sync pipe is close-on-exec: EOF means the child has exec'ed. */
	char c;
	CHECK_EQ(read(sync[0], &c, 1), 0);
	CHECK_ERR(setpgid(pid, pid), EACCES);
	CHECK_EQ(getpgid(pid), getpgrp());
	close(p[1]);
	CHECK_EXITED(st_wait(pid), 0);
}

static void setpgid_rules_body(void)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t a = child_waiting_on(p[0], p[1]);
	/* The parent may move a child into a new group, and into an existing one. */
	CHECK_EQ(setpgid(a, 0), 0);
	CHECK_EQ(getpgid(a), a);
	pid_t b = child_waiting_on(p[0], p[1]);
	CHECK_EQ(setpgid(b, a), 0);
	CHECK_EQ(getpgid(b), a);
	/* Back to our own group. */
	CHECK_EQ(setpgid(b, getpgrp()), 0);
	CHECK_EQ(getpgid(b), getpgrp());
	/* A group that does not exist (the pid of a reaped child): EPERM. */
	pid_t gone = CHECK_OK(fork());
	if (gone == 0)
		_exit(0);
	CHECK_EXITED(st_wait(gone), 0);
	CHECK_ERR(setpgid(b, gone), EPERM);
	/* Negative pgid: EINVAL. */
	CHECK_ERR(setpgid(b, -5), EINVAL);
	/* Not our child (our parent): ESRCH. */
	CHECK_ERR(setpgid(getppid(), 0), ESRCH);
	close(p[1]);
	CHECK_EXITED(st_wait(a), 0);
	CHECK_EXITED(st_wait(b), 0);
	/* A reaped child no longer exists. */
	CHECK_ERR(setpgid(a, a), ESRCH);
	CHECK_ERR(getpgid(a), ESRCH);
	CHECK_ERR(getsid(a), ESRCH);
}

CASE(setpgid_rules)
{
	/* Run in a child that leads its own group, so that "our group" is a group of this
	 * pid namespace (a namespace's first process may sit in an outside group). */
	IN_CHILD({
		CHECK_OK(setpgid(0, 0));
		setpgid_rules_body();
	});
}

CASE(setpgid_across_sessions_eperm)
{
	int p[2], ready[2];
	CHECK_OK(pipe(p));
	CHECK_OK(pipe(ready));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		close(p[1]);
		if (setsid() < 0)
			_exit(10);
		(void)!write(ready[1], "s", 1);
		char c;
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	char c;
	CHECK_EQ(read(ready[0], &c, 1), 1);
	CHECK_EQ(getsid(pid), pid);
	CHECK_EQ(getpgid(pid), pid);
	/* The child is in another session: we can no longer change its group... */
	CHECK_ERR(setpgid(pid, pid), EPERM);
	CHECK_ERR(setpgid(pid, getpgrp()), EPERM);
	/* ...nor move ourselves into its group. */
	IN_CHILD(CHECK_ERR(setpgid(0, pid), EPERM));
	close(p[1]);
	CHECK_EXITED(st_wait(pid), 0);
}

static volatile sig_atomic_t usr1_count;
static void count_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

CASE(kill_zero_signals_whole_group)
{
	/* A leader with two members in a new group; one member sends kill(0, SIGUSR1).
	 * Everyone in the group, the sender included, gets it; we (outside) do not. */
	st_handle(SIGUSR1, count_usr1, 0);
	pid_t leader = CHECK_OK(fork());
	if (leader == 0) {
		setpgid(0, 0);
		pid_t kids[2];
		int go[2];
		if (pipe(go) != 0)
			_exit(20);
		for (int i = 0; i < 2; i++) {
			kids[i] = fork();
			if (kids[i] == 0) {
				sigset_t s, old;
				sigemptyset(&s);
				sigaddset(&s, SIGUSR1);
				sigprocmask(SIG_BLOCK, &s, &old);
				close(go[1]);
				char c;
				(void)!read(go[0], &c, 1);
				if (i == 0)
					kill(0, SIGUSR1);
				/* Wait for the signal with it unblocked. */
				struct timespec to = { 5, 0 };
				siginfo_t si;
				int r = sigtimedwait(&s, &si, &to);
				pid_t sender = i == 0 ? getpid() : kids[0];
				_exit(r == SIGUSR1 && si.si_pid == sender ? 0 : 30 + i);
			}
		}
		close(go[0]);
		close(go[1]);
		int ok = 0;
		for (int i = 0; i < 2; i++) {
			int s;
			while (waitpid(kids[i], &s, 0) < 0)
				if (errno != EINTR)
					_exit(41);
			if (WIFEXITED(s) && WEXITSTATUS(s) == 0)
				ok++;
		}
		/* The leader got one too (its handler counted it). */
		st_wait_flag(&usr1_count, 1, SIGUSR1);
		_exit(ok == 2 ? 0 : 40);
	}
	CHECK_EXITED(st_wait(leader), 0);
	CHECK_EQ(usr1_count, 0);
}

CASE(kill_negative_pgid_and_killpg)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t a = child_waiting_on(p[0], p[1]);
	CHECK_OK(setpgid(a, a));
	pid_t b = child_waiting_on(p[0], p[1]);
	CHECK_OK(setpgid(b, a));
	pid_t c = child_waiting_on(p[0], p[1]);
	/* c stays in our group; SIGTERM to group a hits a and b only. */
	CHECK_EQ(kill(-a, SIGTERM), 0);
	CHECK_SIGNALED(st_wait(a), SIGTERM);
	CHECK_SIGNALED(st_wait(b), SIGTERM);
	/* No members left: ESRCH, for both kill and killpg. */
	CHECK_ERR(kill(-a, SIGTERM), ESRCH);
	CHECK_ERR(killpg(a, 0), ESRCH);
	/* Signal 0 probes a group with members. */
	pid_t d = child_waiting_on(p[0], p[1]);
	CHECK_OK(setpgid(d, d));
	CHECK_EQ(killpg(d, 0), 0);
	CHECK_EQ(killpg(d, SIGKILL), 0);
	CHECK_SIGNALED(st_wait(d), SIGKILL);
	close(p[1]);
	CHECK_EXITED(st_wait(c), 0);
}

CASE(getsid_and_getpgid_of_others)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t a = child_waiting_on(p[0], p[1]);
	/* A child starts in our session and group. */
	CHECK_EQ(getsid(a), getsid(0));
	CHECK_EQ(getpgid(a), getpgid(0));
	CHECK_EQ(getpgid(0), getpgrp());
	CHECK_ERR(getsid(-1), ESRCH);
	CHECK_ERR(getpgid(-1), ESRCH);
	close(p[1]);
	CHECK_EXITED(st_wait(a), 0);
	/* After setsid in a child: its own session, group and no terminal. */
	IN_CHILD({
		pid_t me = getpid();
		CHECK_EQ(setsid(), me);
		CHECK_EQ(getsid(0), me);
		CHECK_EQ(getpgrp(), me);
		/* Its children inherit the new session. */
		IN_CHILD({
			CHECK_EQ(getsid(0), me);
			CHECK_EQ(getpgrp(), me);
			/* A non-leader can start yet another session. */
			CHECK_EQ(setsid(), getpid());
		});
	});
}

/* The orphaned-group scenarios: a child becomes a session leader (a session we are
 * not in) and starts a grandchild in a new group of that session. While the child
 * lives, the grandchild's group is not orphaned (its parent is in another group of the
 * same session); when the child exits, the grandchild is reparented to us (the
 * subreaper, in another session) and its group becomes orphaned. */
/* Waits up to ms for pid to exit or be killed (or, with WUNTRACED, to stop). On timeout
 * the process is killed and the case fails with msg. */
static int wait_or_kill(pid_t pid, int options, long ms, const char *msg)
{
	long long end = st_mono_ms() + ms;
	for (;;) {
		int s;
		pid_t r = waitpid(pid, &s, WNOHANG | options);
		if (r == pid)
			return s;
		if (r < 0 && errno != EINTR)
			FAIL("waitpid(%d): %s", (int)pid, st_errname(errno));
		if (st_mono_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &s, 0);
			FAIL("%s", msg);
		}
		st_sleep_ms(10);
	}
}

/* Forks the middle process (a session leader) and the grandchild (leader of a new group
 * in that session) running gc_body; the middle process exits once the grandchild is
 * stopped (when wait_stop) or at once. Returns the grandchild's pid, now our child. */
static pid_t case_pid;

static pid_t orphan_grandchild(void (*gc_body)(void), int wait_stop)
{
	case_pid = getpid();
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	int gp[2];
	CHECK_OK(pipe(gp));
	pid_t mid = CHECK_OK(fork());
	if (mid == 0) {
		if (setsid() < 0)
			_exit(10);
		pid_t gc = fork();
		if (gc == 0) {
			setpgid(0, 0);
			gc_body();
			_exit(0);
		}
		setpgid(gc, gc);
		(void)!write(gp[1], &gc, sizeof gc);
		int s;
		/* Exit only once the grandchild is stopped. */
		if (wait_stop && (waitpid(gc, &s, WUNTRACED) != gc || !WIFSTOPPED(s)))
			_exit(11);
		_exit(0);
	}
	pid_t gc;
	CHECK_EQ(read(gp[0], &gc, sizeof gc), (ssize_t)sizeof gc);
	close(gp[0]);
	close(gp[1]);
	CHECK_EXITED(st_wait(mid), 0);
	return gc;
}

static void stop_then_exit_50(void)
{
	raise(SIGSTOP);
	/* Continued by the orphaning, but SIGHUP (default: terminate) came first. */
	_exit(50);
}

CASE(orphaned_group_with_stopped_member_gets_sighup)
{
	pid_t gc = orphan_grandchild(stop_then_exit_50, 1);
	int s = wait_or_kill(gc, 0, 3000, "the stopped member of the orphaned group got no SIGHUP/SIGCONT");
	CHECK_SIGNALED(s, SIGHUP);
}

static volatile sig_atomic_t got_hup, got_cont;
static void on_hup(int s)
{
	(void)s;
	got_hup = 1;
}
static void on_cont(int s)
{
	(void)s;
	got_cont = 1;
}

static void stop_and_catch_hup_cont(void)
{
	st_handle(SIGHUP, on_hup, 0);
	st_handle(SIGCONT, on_cont, 0);
	/* Blocked until sigsuspend: a handler running between the test and pause() would
	   leave pause() waiting for a signal that has already come. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCONT);
	sigprocmask(SIG_BLOCK, &block, &old);
	raise(SIGSTOP);
	while (!got_hup || !got_cont)
		sigsuspend(&old);
	_exit(0);
}

CASE(orphaned_group_sighup_then_sigcont_handled)
{
	pid_t gc = orphan_grandchild(stop_and_catch_hup_cont, 1);
	int s = wait_or_kill(gc, 0, 3000, "the stopped member of the orphaned group got no SIGHUP/SIGCONT");
	CHECK_EXITED(s, 0);
}

static void tstp_when_orphaned(void)
{
	/* Wait until reparented to the case (the subreaper), i.e. until our group is
	 * orphaned. */
	while (getppid() != case_pid)
		st_sleep_ms(5);
	/* Job-control stop signals to an orphaned group are discarded (their default
	 * action would stop the process with no one to continue it). */
	raise(SIGTSTP);
	raise(SIGTTIN);
	raise(SIGTTOU);
	_exit(0);
}

CASE(orphaned_group_discards_job_control_stops)
{
	pid_t gc = orphan_grandchild(tstp_when_orphaned, 0);
	int s = wait_or_kill(gc, WUNTRACED, 3000, "the orphaned process neither stopped nor exited");
	if (WIFSTOPPED(s)) {
		kill(gc, SIGKILL);
		st_wait(gc);
		FAIL("the orphaned process stopped on signal %d", WSTOPSIG(s));
	}
	CHECK_EXITED(s, 0);
}

static void run_300ms_without_hup(void)
{
	st_handle(SIGHUP, on_hup, 0);
	/* Running, not stopped: no SIGHUP when the group is orphaned. */
	long long end = st_mono_ms() + 300;
	while (st_mono_ms() < end)
		st_sleep_ms(10);
	_exit(got_hup ? 1 : 0);
}

CASE(orphaned_group_without_stopped_members_left_alone)
{
	pid_t gc = orphan_grandchild(run_300ms_without_hup, 0);
	CHECK_EXITED(st_wait(gc), 0);
}

CASE(orphaned_when_the_groups_last_link_exits)
{
	/* Session leader L; its child P leads group G and has a child S in G that stops.
	 * P (whose parent L is in another group of the session) is G's only link: when P
	 * exits, G is orphaned with a stopped member and S gets SIGHUP+SIGCONT. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	int sp[2], hold[2], reaped[2];
	CHECK_OK(pipe(sp));
	CHECK_OK(pipe(hold));
	CHECK_OK(pipe(reaped));
	pid_t l = CHECK_OK(fork());
	if (l == 0) {
		close(hold[1]);
		if (setsid() < 0)
			_exit(10);
		pid_t p = fork();
		if (p == 0) {
			setpgid(0, 0);
			pid_t s = fork();
			if (s == 0) {
				raise(SIGSTOP);
				_exit(50);
			}
			int st;
			if (waitpid(s, &st, WUNTRACED) != s || !WIFSTOPPED(st))
				_exit(11);
			(void)!write(sp[1], &s, sizeof s);
			_exit(0);
		}
		int st;
		if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			_exit(12);
		/* P is gone: S has been reparented to the case. */
		(void)!write(reaped[1], "r", 1);
		/* Stay alive (P's parent, in the session) until told. */
		char c;
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(hold[0]);
	close(sp[1]);
	close(reaped[1]);
	pid_t s;
	CHECK_EQ(read(sp[0], &s, sizeof s), (ssize_t)sizeof s);
	char c;
	CHECK_EQ(read(reaped[0], &c, 1), 1);
	int st = wait_or_kill(s, 0, 3000, "the stopped member of the orphaned group got no SIGHUP/SIGCONT");
	CHECK_SIGNALED(st, SIGHUP);
	close(hold[1]);
	CHECK_EXITED(st_wait(l), 0);
}

CASE(zombie_keeps_its_group_and_session)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		setpgid(0, 0);
		_exit(0);
	}
	/* Wait for the exit without reaping: a zombie still has its ids. */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PID, pid, &si, WEXITED | WNOWAIT));
	CHECK_EQ(getpgid(pid), pid);
	CHECK_EQ(getsid(pid), getsid(0));
	/* The group still exists for kill(): sending to a zombie succeeds. */
	CHECK_EQ(kill(pid, SIGTERM), 0);
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_ERR(getpgid(pid), ESRCH);
	CHECK_ERR(getsid(pid), ESRCH);
}

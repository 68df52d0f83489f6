/* fork, vfork, clone, wait4, waitpid, waitid, exit statuses. */
#include "harness.h"
#include <sys/resource.h>

CASE(fork_exit_status)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(42);
	CHECK_GT(pid, 0);
	CHECK_NE(pid, getpid());
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 42);
	CHECK_EQ(status, 42 << 8);
}

CASE(exit_status_truncated_to_8_bits)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(256 + 7);
	CHECK_EXITED(st_wait(pid), 7);
}

CASE(wait_killed_by_signal)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		kill(getpid(), SIGKILL);
		_exit(0);
	}
	int status = st_wait(pid);
	CHECK(WIFSIGNALED(status));
	CHECK_EQ(WTERMSIG(status), SIGKILL);
	CHECK(!WIFEXITED(status));
}

CASE(waitpid_wnohang)
{
	int pfd[2];
	CHECK_OK(pipe(pfd));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		close(pfd[1]);
		(void)!read(pfd[0], &c, 1);
		_exit(3);
	}
	close(pfd[0]);
	int status = -1;
	CHECK_EQ(waitpid(pid, &status, WNOHANG), 0);
	close(pfd[1]);
	CHECK_EXITED(st_wait(pid), 3);
}

CASE(wait_no_children_echild)
{
	int status;
	CHECK_ERR(wait(&status), ECHILD);
	CHECK_ERR(waitpid(-1, &status, WNOHANG), ECHILD);
	CHECK_ERR(waitpid(getpid(), &status, 0), ECHILD);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	st_wait(pid);
	/* A reaped child cannot be waited for again. */
	CHECK_ERR(waitpid(pid, &status, 0), ECHILD);
}

CASE(wait4_rusage)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		volatile unsigned long x = 0;
		for (unsigned long i = 0; i < 20000000UL; i++)
			x += i;
		_exit(0);
	}
	int status;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	CHECK_EQ(wait4(pid, &status, 0, &ru), pid);
	CHECK_EXITED(status, 0);
	CHECK_GT(ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1000000 +
			 ru.ru_stime.tv_usec,
		 0);
	struct rusage children;
	CHECK_OK(getrusage(RUSAGE_CHILDREN, &children));
	CHECK_GT(children.ru_utime.tv_sec * 1000000 + children.ru_utime.tv_usec +
			 children.ru_stime.tv_sec * 1000000 + children.ru_stime.tv_usec,
		 0);
}

CASE(waitid_exited)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(9);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PID, pid, &si, WEXITED));
	CHECK_EQ(si.si_signo, SIGCHLD);
	CHECK_EQ(si.si_code, CLD_EXITED);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, 9);
	CHECK_EQ(si.si_uid, getuid());
}

CASE(waitid_wnowait_leaves_zombie)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(5);
	siginfo_t si;
	CHECK_OK(waitid(P_PID, pid, &si, WEXITED | WNOWAIT));
	CHECK_EQ(si.si_pid, pid);
	/* Still waitable. */
	CHECK_EXITED(st_wait(pid), 5);
}

CASE(waitid_killed)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		pause();
		_exit(0);
	}
	CHECK_OK(kill(pid, SIGTERM));
	siginfo_t si;
	CHECK_OK(waitid(P_PID, pid, &si, WEXITED));
	CHECK_EQ(si.si_code, CLD_KILLED);
	CHECK_EQ(si.si_status, SIGTERM);
}

CASE(fork_copies_memory)
{
	volatile int value = 1;
	char *heap = malloc(100);
	strcpy(heap, "parent");
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		if (value != 1 || strcmp(heap, "parent") != 0)
			_exit(1);
		value = 2;
		strcpy(heap, "child");
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(value, 1);
	CHECK_STREQ(heap, "parent");
}

CASE(fork_shares_file_offset)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "ab", 2), 2);
	IN_CHILD({
		CHECK_EQ(lseek(fd, 0, SEEK_CUR), 2);
		CHECK_EQ(write(fd, "cd", 2), 2);
	});
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 4);
	char buf[8] = { 0 };
	CHECK_EQ(pread(fd, buf, 8, 0), 4);
	CHECK_STREQ(buf, "abcd");
	close(fd);
}

CASE(many_children)
{
	pid_t pids[32];
	for (int i = 0; i < 32; i++) {
		pids[i] = CHECK_OK(fork());
		if (pids[i] == 0)
			_exit(i);
	}
	int seen[32] = { 0 };
	for (int i = 0; i < 32; i++) {
		int status;
		pid_t r = CHECK_OK(wait(&status));
		int k = -1;
		for (int j = 0; j < 32; j++)
			if (pids[j] == r)
				k = j;
		CHECK_GE(k, 0);
		CHECK_EQ(seen[k], 0);
		seen[k] = 1;
		CHECK_EXITED(status, k);
	}
	int status;
	CHECK_ERR(wait(&status), ECHILD);
}

CASE(waitpid_specific_child)
{
	pid_t a = CHECK_OK(fork());
	if (a == 0)
		_exit(1);
	pid_t b = CHECK_OK(fork());
	if (b == 0)
		_exit(2);
	CHECK_EXITED(st_wait(b), 2);
	CHECK_EXITED(st_wait(a), 1);
}

CASE(vfork_child_runs_first)
{
	volatile int flag = 0;
	pid_t pid = vfork();
	if (pid == 0) {
		flag = 1; /* Shared memory with the parent, which is suspended. */
		_exit(4);
	}
	CHECK_GT(pid, 0);
	CHECK_EQ(flag, 1);
	CHECK_EXITED(st_wait(pid), 4);
}

static volatile sig_atomic_t got_sigchld;
static volatile pid_t sigchld_pid;
static void on_sigchld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	got_sigchld++;
	sigchld_pid = si->si_pid;
}

CASE(sigchld_on_child_exit)
{
	st_block(SIGCHLD);
	st_handle_info(SIGCHLD, on_sigchld, 0);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	sigset_t empty;
	sigemptyset(&empty);
	while (!got_sigchld)
		sigsuspend(&empty);
	CHECK_EQ(sigchld_pid, pid);
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(stopped_and_continued)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		for (;;)
			pause();
	}
	CHECK_OK(kill(pid, SIGSTOP));
	int status;
	CHECK_EQ(waitpid(pid, &status, WUNTRACED), pid);
	CHECK(WIFSTOPPED(status));
	CHECK_EQ(WSTOPSIG(status), SIGSTOP);
	CHECK_OK(kill(pid, SIGCONT));
	CHECK_EQ(waitpid(pid, &status, WCONTINUED), pid);
	CHECK(WIFCONTINUED(status));
	CHECK_OK(kill(pid, SIGKILL));
	CHECK_SIGNALED(st_wait(pid), SIGKILL);
}

CASE(getppid_in_child)
{
	pid_t parent = getpid();
	IN_CHILD({
		CHECK_EQ(getppid(), parent);
		CHECK_NE(getpid(), parent);
	});
}

CASE(sigchld_ignored_autoreaps)
{
	st_handle(SIGCHLD, SIG_IGN, 0);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	int status;
	/* With SIGCHLD ignored children are reaped automatically: wait blocks until
	 * they are gone, then fails with ECHILD. */
	CHECK_ERR(waitpid(pid, &status, 0), ECHILD);
}

CASE(clone_raw_like_fork)
{
	long pid = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	if (pid == 0)
		_exit(11);
	CHECK_GT(pid, 0);
	CHECK_EXITED(st_wait(pid), 11);
}

CASE(exit_closes_pipe_for_parent)
{
	int pfd[2];
	CHECK_OK(pipe(pfd));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		close(pfd[0]);
		(void)!write(pfd[1], "bye", 3);
		_exit(0);
	}
	close(pfd[1]);
	char buf[8];
	CHECK_EQ(read(pfd[0], buf, 8), 3);
	CHECK_EQ(read(pfd[0], buf, 8), 0);
	CHECK_EXITED(st_wait(pid), 0);
	close(pfd[0]);
}

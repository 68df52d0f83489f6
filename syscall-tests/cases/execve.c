/* execve: arguments, environment, close-on-exec, signal dispositions, scripts, errors. */
#include "harness.h"

extern char **environ;

/* Runs argv (argv[0] is the path) in a child and returns its wait status. */
static int run(const char *path, char *const argv[], char *const envp[])
{
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", st_errname(errno));
	if (pid == 0) {
		execve(path, argv, envp);
		_exit(127);
	}
	return st_wait(pid);
}

HELPER(check_args)
{
	/* argv: check_args a "b c" "" */
	if (argc != 4)
		return 10 + argc;
	if (strcmp(argv[1], "a") || strcmp(argv[2], "b c") || strcmp(argv[3], ""))
		return 20;
	const char *foo = getenv("FOO");
	if (!foo || strcmp(foo, "bar=baz"))
		return 21;
	if (getenv("HOME") != NULL)
		return 22;
	return 0;
}

HELPER(check_fds)
{
	/* argv: check_fds CLOEXEC_FD KEPT_FD */
	int cfd = atoi(argv[1]), kfd = atoi(argv[2]);
	if (fcntl(cfd, F_GETFD) != -1 || errno != EBADF)
		return 30;
	if (fcntl(kfd, F_GETFD) != 0)
		return 31;
	char buf[8] = { 0 };
	if (pread(kfd, buf, 5, 0) != 5 || strcmp(buf, "kept!"))
		return 32;
	return 0;
}

HELPER(check_signals)
{
	struct sigaction sa;
	sigaction(SIGUSR1, NULL, &sa);
	if (sa.sa_handler != SIG_DFL)
		return 40;
	sigaction(SIGUSR2, NULL, &sa);
	if (sa.sa_handler != SIG_IGN)
		return 41;
	sigset_t mask;
	sigprocmask(SIG_SETMASK, NULL, &mask);
	if (!sigismember(&mask, SIGINT) || sigismember(&mask, SIGUSR1))
		return 42;
	sigset_t pend;
	sigpending(&pend);
	if (!sigismember(&pend, SIGINT))
		return 43;
	return 0;
}

HELPER(print_pid)
{
	printf("%d %d\n", (int)getpid(), (int)getppid());
	return 0;
}

HELPER(exit_with)
{
	return atoi(argv[1]);
}

static void noop(int sig)
{
	(void)sig;
}

CASE(exec_true)
{
	char *argv[] = { "/bin/true", NULL };
	CHECK_EXITED(run("/bin/true", argv, environ), 0);
	char *argv2[] = { "/bin/false", NULL };
	CHECK_EXITED(run("/bin/false", argv2, environ), 1);
}

CASE(exec_passes_argv_and_envp)
{
	char *argv[] = { (char *)st_self, "--helper", "check_args", "a", "b c", "", NULL };
	char *envp[] = { "FOO=bar=baz", "OTHER=1", NULL };
	CHECK_EXITED(run(st_self, argv, envp), 0);
}

CASE(exec_exit_status)
{
	char *argv[] = { (char *)st_self, "--helper", "exit_with", "77", NULL };
	CHECK_EXITED(run(st_self, argv, environ), 77);
}

CASE(exec_keeps_pid_and_parent)
{
	int pfd[2];
	CHECK_OK(pipe(pfd));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		char *argv[] = { (char *)st_self, "--helper", "print_pid", NULL };
		execve(st_self, argv, environ);
		_exit(127);
	}
	close(pfd[1]);
	char buf[64] = { 0 };
	size_t off = 0;
	ssize_t r;
	while ((r = read(pfd[0], buf + off, sizeof buf - 1 - off)) > 0)
		off += r;
	close(pfd[0]);
	CHECK_EXITED(st_wait(pid), 0);
	int cpid = 0, cppid = 0;
	CHECK_EQ(sscanf(buf, "%d %d", &cpid, &cppid), 2);
	CHECK_EQ(cpid, pid);
	CHECK_EQ(cppid, getpid());
}

CASE(exec_closes_cloexec_fds)
{
	st_write_file(P("f"), "kept!");
	int cfd = CHECK_OK(open(P("f"), O_RDONLY | O_CLOEXEC));
	int kfd = CHECK_OK(open(P("f"), O_RDONLY));
	char a[16], b[16];
	snprintf(a, sizeof a, "%d", cfd);
	snprintf(b, sizeof b, "%d", kfd);
	char *argv[] = { (char *)st_self, "--helper", "check_fds", a, b, NULL };
	CHECK_EXITED(run(st_self, argv, environ), 0);
	close(cfd);
	close(kfd);
}

CASE(exec_resets_handlers_keeps_mask)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_handle(SIGUSR1, noop, 0);
		signal(SIGUSR2, SIG_IGN);
		st_block(SIGINT);
		raise(SIGINT);
		char *argv[] = { (char *)st_self, "--helper", "check_signals", NULL };
		execve(st_self, argv, environ);
		_exit(127);
	}
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(exec_shell_script)
{
	int fd = CHECK_OK(open(P("script.sh"), O_WRONLY | O_CREAT, 0755));
	const char *s = "#!/bin/sh\nexit $(( $1 + 1 ))\n";
	CHECK_EQ(write(fd, s, strlen(s)), (long)strlen(s));
	close(fd);
	char *path = P("script.sh");
	char *argv[] = { path, "6", NULL };
	CHECK_EXITED(run(path, argv, environ), 7);
}

CASE(exec_interpreter_gets_script_path)
{
	/* The interpreter gets its optional argument, then the script's path as $0. */
	int fd = CHECK_OK(open(P("s"), O_WRONLY | O_CREAT, 0755));
	const char *s = "#!/bin/sh -e\ncase \"$0\" in */s) exit 3;; *) exit 4;; esac\n";
	CHECK_EQ(write(fd, s, strlen(s)), (long)strlen(s));
	close(fd);
	char *path = P("s");
	char *argv[] = { "ignored-argv0", NULL };
	CHECK_EXITED(run(path, argv, environ), 3);
}

CASE(exec_errors)
{
	char *argv[] = { "x", NULL };
	CHECK_ERR(execve(P("missing"), argv, environ), ENOENT);
	st_write_file(P("noexec"), "#!/bin/sh\nexit 0\n");
	CHECK_OK(chmod(P("noexec"), 0644));
	CHECK_ERR(execve(P("noexec"), argv, environ), EACCES);
	CHECK_ERR(execve(st_tmpdir(), argv, environ), EACCES);
	st_write_file(P("garbage"), "\x01\x02\x03\x04 this is not an executable\n");
	CHECK_OK(chmod(P("garbage"), 0755));
	CHECK_ERR(execve(P("garbage"), argv, environ), ENOEXEC);
	st_write_file(P("badinterp"), "#!/nonexistent/interpreter\n");
	CHECK_OK(chmod(P("badinterp"), 0755));
	CHECK_ERR(execve(P("badinterp"), argv, environ), ENOENT);
}

CASE(exec_with_empty_envp)
{
	char *argv[] = { "/usr/bin/env", NULL };
	char *envp[] = { NULL };
	int pfd[2];
	CHECK_OK(pipe(pfd));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execve("/usr/bin/env", argv, envp);
		_exit(127);
	}
	close(pfd[1]);
	char buf[64];
	CHECK_EQ(read(pfd[0], buf, sizeof buf), 0);
	close(pfd[0]);
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(execvp_searches_path)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		setenv("PATH", "/nonexistent:/usr/bin:/bin", 1);
		char *argv[] = { "true", NULL };
		execvp("true", argv);
		_exit(127);
	}
	CHECK_EXITED(st_wait(pid), 0);
}

static void *thread_sleep(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

CASE(exec_from_multithreaded_process)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		pthread_t t;
		for (int i = 0; i < 3; i++)
			pthread_create(&t, NULL, thread_sleep, NULL);
		char *argv[] = { (char *)st_self, "--helper", "exit_with", "12", NULL };
		execve(st_self, argv, environ);
		_exit(127);
	}
	CHECK_EXITED(st_wait(pid), 12);
}

/* fexecve: execveat(fd, "", ..., AT_EMPTY_PATH) runs the file the descriptor names. */
CASE(fexecve_runs_the_descriptors_file)
{
	int fd = CHECK_OK(open(st_self, O_RDONLY | O_CLOEXEC));
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = { (char *)st_self, "--helper", "exit_with", "7", NULL };
		fexecve(fd, argv, environ);
		_exit(100 + errno);
	}
	CHECK_EXITED(st_wait(pid), 7);
	/* Without AT_EMPTY_PATH an empty path is ENOENT. */
	char *argv[] = { "x", NULL };
	CHECK_ERR(syscall(SYS_execveat, fd, "", argv, environ, 0), ENOENT);
	close(fd);
}

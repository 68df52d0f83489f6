/* pidfd: pidfd_open, CLONE_PIDFD (clone and clone3), pidfd_send_signal, pidfd_getfd,
 * waitid(P_PIDFD), poll/epoll readiness when the process exits, /proc fdinfo. */
#include "harness.h"

#include <poll.h>
#include <sys/epoll.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

static int pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned flags)
{
	return (int)syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}

static int pidfd_getfd(int fd, int target, unsigned flags)
{
	return (int)syscall(SYS_pidfd_getfd, fd, target, flags);
}

/* A child that exits (status 0) once the write end of *p is closed by us. */
static pid_t child_until_eof(int p[2])
{
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		close(p[1]);
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	return pid;
}

CASE(open_flags_and_errors)
{
	int p[2];
	pid_t pid = child_until_eof(p);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	/* Always close-on-exec; O_RDWR like any pidfd. */
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDWR);
	int nb = CHECK_OK(pidfd_open(pid, PIDFD_NONBLOCK));
	CHECK_EQ(fcntl(nb, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	/* The symlink in /proc names the anonymous inode. */
	char path[64], link[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = CHECK_OK(readlink(path, link, sizeof link - 1));
	link[n] = 0;
	CHECK_STREQ(link, "anon_inode:[pidfd]");
	/* Reading a pidfd is not a thing. */
	char buf[8];
	CHECK_ERR(read(fd, buf, sizeof buf), EINVAL);
	CHECK_ERR(pidfd_open(pid, 1), EINVAL);
	CHECK_ERR(pidfd_open(0, 0), EINVAL);
	CHECK_ERR(pidfd_open(-1, 0), EINVAL);
	close(p[1]);
	CHECK_EXITED(st_wait(pid), 0);
	/* Reaped: the pid names nothing any more. */
	CHECK_ERR(pidfd_open(pid, 0), ESRCH);
	close(fd);
	close(nb);
}

static void *sleeper(void *arg)
{
	pid_t *tid = arg;
	*tid = (pid_t)syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

CASE(open_of_a_non_leader_thread_fails)
{
	pthread_t th;
	volatile pid_t tid = 0;
	CHECK_PT(pthread_create(&th, NULL, sleeper, (void *)&tid));
	while (tid == 0)
		st_sleep_ms(1);
	/* A thread that does not lead its group has no pidfd without PIDFD_THREAD: EINVAL
	 * (Linux 6.8), ENOENT since pidfs (6.9). */
	errno = 0;
	CHECK_EQ(pidfd_open(tid, 0), -1);
	CHECK(errno == EINVAL || errno == ENOENT);
	int fd = CHECK_OK(pidfd_open(getpid(), 0));
	close(fd);
}

CASE(poll_readable_when_process_exits)
{
	int p[2];
	pid_t pid = child_until_eof(p);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	CHECK_EQ(poll(&pf, 1, 0), 0);
	CHECK_EQ(pf.revents, 0);
	close(p[1]);
	/* The exit makes it readable, before and after the zombie is reaped. */
	CHECK_EQ(poll(&pf, 1, 5000), 1);
	CHECK(pf.revents & POLLIN);
	CHECK_EXITED(st_wait(pid), 0);
	pf.revents = 0;
	CHECK_EQ(poll(&pf, 1, 0), 1);
	CHECK(pf.revents & POLLIN);
	close(fd);
}

CASE(epoll_reports_exit)
{
	int p[2];
	pid_t pid = child_until_eof(p);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	int ep = CHECK_OK(epoll_create1(EPOLL_CLOEXEC));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	struct epoll_event out;
	CHECK_EQ(epoll_wait(ep, &out, 1, 0), 0);
	close(p[1]);
	CHECK_EQ(epoll_wait(ep, &out, 1, 5000), 1);
	CHECK_EQ(out.data.u64, 77);
	CHECK(out.events & EPOLLIN);
	CHECK_EXITED(st_wait(pid), 0);
	close(ep);
	close(fd);
}

/* The value of the "Pid:" line of /proc/self/fdinfo/fd (LLONG_MIN if none). */
static long long fdinfo_pid(int fd)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	st_read_file(path, buf, sizeof buf);
	char *l = strstr(buf, "\nPid:\t");
	if (!l)
		return LLONG_MIN;
	return strtoll(l + 6, NULL, 10);
}

CASE(fdinfo_shows_pid)
{
	int p[2];
	pid_t pid = child_until_eof(p);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	CHECK_EQ(fdinfo_pid(fd), pid);
	close(p[1]);
	/* A zombie still has its pid... */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PID, pid, &si, WEXITED | WNOWAIT));
	CHECK_EQ(fdinfo_pid(fd), pid);
	/* ...a reaped process has none: -1. */
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(fdinfo_pid(fd), -1);
	close(fd);
}

CASE(send_signal)
{
	int p[2];
	pid_t pid = child_until_eof(p);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	CHECK_EQ(pidfd_send_signal(fd, 0, NULL, 0), 0);
	/* Unknown flags (Linux 6.9 added bits 0-2). */
	CHECK_ERR(pidfd_send_signal(fd, SIGTERM, NULL, 1 << 4), EINVAL);
	CHECK_ERR(pidfd_send_signal(fd, 1000, NULL, 0), EINVAL);
	/* Not a pidfd. */
	CHECK_ERR(pidfd_send_signal(p[1], SIGTERM, NULL, 0), EBADF);
	CHECK_ERR(pidfd_send_signal(-1, SIGTERM, NULL, 0), EBADF);
	/* A made-up siginfo must match the signal, and only a process signalling itself
	 * may claim to be the kernel or kill(). */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGUSR1;
	si.si_code = SI_QUEUE;
	CHECK_ERR(pidfd_send_signal(fd, SIGTERM, &si, 0), EINVAL);
	si.si_signo = SIGTERM;
	si.si_code = SI_USER;
	CHECK_ERR(pidfd_send_signal(fd, SIGTERM, &si, 0), EPERM);
	CHECK_OK(pidfd_send_signal(fd, SIGTERM, NULL, 0));
	CHECK_SIGNALED(st_wait(pid), SIGTERM);
	/* Reaped: ESRCH. */
	CHECK_ERR(pidfd_send_signal(fd, SIGTERM, NULL, 0), ESRCH);
	CHECK_ERR(pidfd_send_signal(fd, 0, NULL, 0), ESRCH);
	close(p[1]);
	close(fd);
}

CASE(send_signal_with_siginfo)
{
	int ready[2];
	CHECK_OK(pipe(ready));
	st_block(SIGUSR1);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGUSR1);
		(void)!write(ready[1], "r", 1);
		siginfo_t si;
		struct timespec to = { 5, 0 };
		if (sigtimedwait(&s, &si, &to) != SIGUSR1)
			_exit(1);
		_exit(si.si_code == SI_QUEUE && si.si_value.sival_int == 1234 &&
				      si.si_pid == getppid()
			      ? 0
			      : 2);
	}
	char c;
	CHECK_EQ(read(ready[0], &c, 1), 1);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGUSR1;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = 1234;
	CHECK_OK(pidfd_send_signal(fd, SIGUSR1, &si, 0));
	CHECK_EXITED(st_wait(pid), 0);
	/* To ourselves, anything goes. */
	int self = CHECK_OK(pidfd_open(getpid(), 0));
	si.si_code = SI_USER;
	CHECK_OK(pidfd_send_signal(self, SIGUSR1, &si, 0));
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	siginfo_t got;
	struct timespec to = { 5, 0 };
	CHECK_EQ(sigtimedwait(&s, &got, &to), SIGUSR1);
	CHECK_EQ(got.si_code, SI_USER);
	close(self);
	close(fd);
}

CASE(send_signal_to_zombie_succeeds)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(4);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PIDFD, fd, &si, WEXITED | WNOWAIT));
	CHECK_EQ(pidfd_send_signal(fd, SIGKILL, NULL, 0), 0);
	CHECK_OK(waitid(P_PIDFD, fd, &si, WEXITED));
	CHECK_EQ(si.si_code, CLD_EXITED);
	CHECK_EQ(si.si_status, 4);
	close(fd);
}

CASE(nonblocking_pidfd_waitid_eagain)
{
	int p[2];
	pid_t pid = child_until_eof(p);
	int fd = CHECK_OK(pidfd_open(pid, PIDFD_NONBLOCK));
	siginfo_t si;
	CHECK_ERR(waitid(P_PIDFD, fd, &si, WEXITED), EAGAIN);
	/* With WNOHANG spelled out: 0 and an empty siginfo. */
	memset(&si, 0x5a, sizeof si);
	CHECK_EQ(waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG), 0);
	CHECK_EQ(si.si_pid, 0);
	close(p[1]);
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	CHECK_EQ(poll(&pf, 1, 5000), 1);
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PIDFD, fd, &si, WEXITED));
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_code, CLD_EXITED);
	close(fd);
}

CASE(clone_pidfd)
{
	int pidfd = -1;
	/* Legacy clone returns the pidfd through the parent_tid pointer. */
	long pid = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, NULL, &pidfd, NULL, NULL);
	if (pid == 0)
		/* Our copy of memory was made before the pidfd was stored. */
		_exit(pidfd == -1 ? 0 : 1);
	CHECK_GT(pid, 0);
	CHECK_GE(pidfd, 0);
	CHECK_EQ(fcntl(pidfd, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fdinfo_pid(pidfd), pid);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PIDFD, pidfd, &si, WEXITED));
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, 0);
	close(pidfd);
	/* CLONE_PIDFD and CLONE_PARENT_SETTID share the pointer: EINVAL. */
	CHECK_ERR(syscall(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, NULL, &pidfd,
			  NULL, NULL),
		  EINVAL);
}

CASE(getfd_duplicates_another_process_descriptor)
{
	int data[2], ready[2], done[2];
	CHECK_OK(pipe(data));
	CHECK_OK(pipe(ready));
	CHECK_OK(pipe(done));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		/* A descriptor only the child has. */
		int m = memfd_create("getfd", 0);
		if (m < 0 || write(m, "secret", 6) != 6)
			_exit(1);
		(void)!write(ready[1], &m, sizeof m);
		char c;
		close(done[1]);
		(void)!read(done[0], &c, 1);
		_exit(0);
	}
	close(done[0]);
	int m;
	CHECK_EQ(read(ready[0], &m, sizeof m), (ssize_t)sizeof m);
	int fd = CHECK_OK(pidfd_open(pid, 0));
	CHECK_ERR(pidfd_getfd(fd, m, 1), EINVAL);
	CHECK_ERR(pidfd_getfd(fd, 999, 0), EBADF);
	CHECK_ERR(pidfd_getfd(data[0], m, 0), EBADF);
	int got = CHECK_OK(pidfd_getfd(fd, m, 0));
	CHECK_EQ(fcntl(got, F_GETFD), FD_CLOEXEC);
	/* The same open file description: it shares the offset. */
	char buf[8] = { 0 };
	CHECK_EQ(pread(got, buf, 6, 0), 6);
	CHECK_MEMEQ(buf, "secret", 6);
	CHECK_EQ(lseek(got, 0, SEEK_CUR), 6);
	close(done[1]);
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_ERR(pidfd_getfd(fd, m, 0), ESRCH);
	close(got);
	close(fd);
}

/* pidfd_send_signal also takes a /proc/PID directory descriptor (python's test_signal). */
static volatile int procdir_got;
static void procdir_handler(int s)
{
	(void)s;
	procdir_got = 1;
}

CASE(send_signal_through_proc_pid_directory)
{
	st_handle(SIGUSR1, procdir_handler, 0);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d", (int)getpid());
	int d = CHECK_OK(open(path, O_DIRECTORY | O_RDONLY));
	CHECK_OK(syscall(SYS_pidfd_send_signal, d, SIGUSR1, NULL, 0));
	CHECK_EQ(procdir_got, 1);
	close(d);
	/* Other directories and files are not process descriptors. */
	d = CHECK_OK(open("/proc", O_DIRECTORY | O_RDONLY));
	CHECK_ERR(syscall(SYS_pidfd_send_signal, d, SIGUSR1, NULL, 0), EBADF);
	close(d);
	CHECK_ERR(syscall(SYS_pidfd_send_signal, 0x7fff, SIGUSR1, NULL, 0), EBADF);
	/* A reaped process: ESRCH. */
	pid_t pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	d = CHECK_OK(open(path, O_DIRECTORY | O_RDONLY));
	kill(pid, SIGKILL);
	st_wait(pid);
	CHECK_ERR(syscall(SYS_pidfd_send_signal, d, SIGUSR1, NULL, 0), ESRCH);
	close(d);
}

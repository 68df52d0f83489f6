/* signalfd: reading signals as data, masks, readiness. */
#include "harness.h"
#include <poll.h>
#include <sys/signalfd.h>

CASE(read_pending_signal)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = CHECK_OK(signalfd(-1, &set, SFD_NONBLOCK));
	struct signalfd_siginfo si;
	CHECK_ERR(read(fd, &si, sizeof si), EAGAIN);
	CHECK_OK(kill(getpid(), SIGUSR1));
	CHECK_EQ(read(fd, &si, sizeof si), sizeof si);
	CHECK_EQ(si.ssi_signo, SIGUSR1);
	CHECK_EQ(si.ssi_pid, getpid());
	CHECK_EQ(si.ssi_uid, getuid());
	CHECK_EQ(si.ssi_code, SI_USER);
	/* Consumed: no longer pending. */
	sigset_t pend;
	sigpending(&pend);
	CHECK_EQ(sigismember(&pend, SIGUSR1), 0);
	close(fd);
}

CASE(sigqueue_value_and_multiple)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = CHECK_OK(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	union sigval v = { .sival_int = 77 };
	CHECK_OK(sigqueue(getpid(), SIGRTMIN, v));
	CHECK_OK(sigqueue(getpid(), SIGRTMIN, v));
	raise(SIGUSR2);
	struct signalfd_siginfo si[4];
	/* Several records in one read. */
	ssize_t n = CHECK_OK(read(fd, si, sizeof si));
	CHECK_EQ(n, 3 * (ssize_t)sizeof si[0]);
	CHECK_EQ(si[0].ssi_signo, SIGUSR2);
	CHECK_EQ(si[1].ssi_signo, SIGRTMIN);
	CHECK_EQ(si[1].ssi_code, SI_QUEUE);
	CHECK_EQ(si[1].ssi_int, 77);
	close(fd);
}

CASE(poll_and_small_buffer)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = CHECK_OK(signalfd(-1, &set, 0));
	struct pollfd p = { fd, POLLIN, 0 };
	CHECK_EQ(poll(&p, 1, 0), 0);
	raise(SIGUSR1);
	CHECK_EQ(poll(&p, 1, 0), 1);
	char small[8];
	CHECK_ERR(read(fd, small, sizeof small), EINVAL);
	close(fd);
}

CASE(update_mask)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigset_t only1;
	sigemptyset(&only1);
	sigaddset(&only1, SIGUSR1);
	int fd = CHECK_OK(signalfd(-1, &only1, SFD_NONBLOCK));
	raise(SIGUSR2);
	struct signalfd_siginfo si;
	CHECK_ERR(read(fd, &si, sizeof si), EAGAIN);
	CHECK_EQ(signalfd(fd, &set, 0), fd);
	CHECK_EQ(read(fd, &si, sizeof si), sizeof si);
	CHECK_EQ(si.ssi_signo, SIGUSR2);
	int notsfd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_ERR(signalfd(notsfd, &set, 0), EINVAL);
	close(notsfd);
	close(fd);
}

CASE(blocking_read_wakes_on_child_signal)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = CHECK_OK(signalfd(-1, &set, 0));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(20);
		_exit(6);
	}
	struct signalfd_siginfo si;
	CHECK_EQ(read(fd, &si, sizeof si), sizeof si);
	CHECK_EQ(si.ssi_signo, SIGCHLD);
	CHECK_EQ(si.ssi_code, CLD_EXITED);
	CHECK_EQ((pid_t)si.ssi_pid, pid);
	CHECK_EQ(si.ssi_status, 6);
	CHECK_EXITED(st_wait(pid), 6);
	close(fd);
}

/* mqueue: POSIX message queues (mq_open and friends) and the mqueue file system. */
#include "harness.h"
#include <mqueue.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/vfs.h>

#define MQUEUE_MAGIC 0x19800202

/* A queue name unique to this process. */
static const char *mq_name(const char *tag)
{
	static char buf[8][64];
	static int n;
	char *b = buf[n++ % 8];
	snprintf(b, 64, "/st_mq_%d_%s", (int)getpid(), tag);
	return b;
}

static mqd_t mq_make(const char *name, int flags, long maxmsg, long msgsize)
{
	struct mq_attr a = { 0, maxmsg, msgsize, 0 };
	mqd_t q = mq_open(name, O_CREAT | O_EXCL | flags, 0600, &a);
	if (q == (mqd_t)-1)
		FAIL("mq_open(%s): %s", name, st_errname(errno));
	return q;
}

static long long realtime_plus_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
	return 0;
}

CASE(open_send_receive_priorities)
{
	const char *n = mq_name("prio");
	mqd_t q = mq_make(n, O_RDWR, 8, 32);
	CHECK_OK(mq_send(q, "low1", 4, 1));
	CHECK_OK(mq_send(q, "high", 4, 9));
	CHECK_OK(mq_send(q, "low2", 5, 1));
	CHECK_OK(mq_send(q, "zero", 4, 0));
	char buf[32];
	unsigned prio = 99;
	CHECK_EQ(mq_receive(q, buf, sizeof buf, &prio), 4);
	CHECK_MEMEQ(buf, "high", 4);
	CHECK_EQ(prio, 9);
	CHECK_EQ(mq_receive(q, buf, sizeof buf, &prio), 4);
	CHECK_MEMEQ(buf, "low1", 4);
	CHECK_EQ(prio, 1);
	CHECK_EQ(mq_receive(q, buf, sizeof buf, &prio), 5);
	CHECK_EQ(prio, 1);
	CHECK_EQ(mq_receive(q, buf, sizeof buf, NULL), 4);
	CHECK_MEMEQ(buf, "zero", 4);
	/* A zero-length message is a message. */
	CHECK_OK(mq_send(q, "", 0, 3));
	CHECK_EQ(mq_receive(q, buf, sizeof buf, &prio), 0);
	CHECK_EQ(prio, 3);
	CHECK_OK(mq_close(q));
	CHECK_OK(mq_unlink(n));
}

CASE(attributes_and_defaults)
{
	const char *n = mq_name("attr");
	mqd_t q = mq_open(n, O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0640, NULL);
	CHECK(q != (mqd_t)-1);
	struct mq_attr a;
	CHECK_OK(mq_getattr(q, &a));
	CHECK_EQ(a.mq_flags, O_NONBLOCK);
	CHECK_EQ(a.mq_curmsgs, 0);
	/* The defaults are /proc/sys/fs/mqueue/msg_default and msgsize_default (capped by the maxima). */
	char buf[64];
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/msg_default", buf, sizeof buf), 0);
	long msg_default = atol(buf);
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/msg_max", buf, sizeof buf), 0);
	long msg_max = atol(buf);
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/msgsize_default", buf, sizeof buf), 0);
	long msgsize_default = atol(buf);
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/msgsize_max", buf, sizeof buf), 0);
	long msgsize_max = atol(buf);
	CHECK_EQ(a.mq_maxmsg, msg_default < msg_max ? msg_default : msg_max);
	CHECK_EQ(a.mq_msgsize, msgsize_default < msgsize_max ? msgsize_default : msgsize_max);
	/* mq_setattr changes only O_NONBLOCK; other flags are EINVAL. */
	struct mq_attr na = { 0, 1, 1, 5 }, old;
	CHECK_OK(mq_setattr(q, &na, &old));
	CHECK_EQ(old.mq_flags, O_NONBLOCK);
	CHECK_OK(mq_getattr(q, &a));
	CHECK_EQ(a.mq_flags, 0);
	CHECK_EQ(a.mq_maxmsg, old.mq_maxmsg);
	CHECK_EQ(fcntl(q, F_GETFL) & O_NONBLOCK, 0);
	na.mq_flags = O_APPEND;
	CHECK_ERR(mq_setattr(q, &na, NULL), EINVAL);
	/* The descriptor is close-on-exec and a regular file of 80 bytes. */
	CHECK_EQ(fcntl(q, F_GETFD), FD_CLOEXEC);
	struct stat st;
	CHECK_OK(fstat(q, &st));
	CHECK_EQ(st.st_mode, S_IFREG | 0640);
	CHECK_EQ(st.st_size, 80);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK_OK(mq_close(q));
	CHECK_ERR(mq_getattr(q, &a), EBADF);
	CHECK_OK(mq_unlink(n));
}

CASE(open_errors)
{
	const char *n = mq_name("err");
	struct mq_attr a = { 0, 4, 16, 0 };
	CHECK_ERR(mq_open(n, O_RDWR), ENOENT);
	mqd_t q = mq_make(n, O_RDWR, 4, 16);
	CHECK_ERR(mq_open(n, O_RDWR | O_CREAT | O_EXCL, 0600, &a), EEXIST);
	/* O_CREAT without O_EXCL opens the existing queue (its attributes stay). */
	struct mq_attr other = { 0, 2, 8, 0 };
	mqd_t q2 = mq_open(n, O_RDONLY | O_CREAT, 0600, &other);
	CHECK(q2 != (mqd_t)-1);
	CHECK_OK(mq_getattr(q2, &other));
	CHECK_EQ(other.mq_maxmsg, 4);
	CHECK_EQ(other.mq_msgsize, 16);
	CHECK_ERR(mq_open(n, O_RDWR | O_WRONLY), EINVAL);
	/* Names: the kernel sees what follows the leading slash. */
	CHECK_ERR(syscall(SYS_mq_open, "", O_RDWR | O_CREAT, 0600, NULL), ENOENT);
	CHECK_ERR(syscall(SYS_mq_open, "a/b", O_RDWR | O_CREAT, 0600, NULL), EACCES);
	CHECK_ERR(syscall(SYS_mq_open, "..", O_RDWR | O_CREAT, 0600, NULL), EACCES);
	char longname[300];
	memset(longname, 'x', sizeof longname);
	longname[299] = 0;
	CHECK_ERR(syscall(SYS_mq_open, longname, O_RDWR | O_CREAT, 0600, NULL), ENAMETOOLONG);
	CHECK_ERR(syscall(SYS_mq_open, (char *)1, O_RDWR, 0600, NULL), EFAULT);
	/* Bad attributes at creation. */
	const char *n2 = mq_name("err2");
	struct mq_attr bad = { 0, 0, 16, 0 };
	CHECK_ERR(mq_open(n2, O_RDWR | O_CREAT, 0600, &bad), EINVAL);
	bad.mq_maxmsg = 4;
	bad.mq_msgsize = -1;
	CHECK_ERR(mq_open(n2, O_RDWR | O_CREAT, 0600, &bad), EINVAL);
	CHECK_ERR(mq_open(n2, O_RDWR | O_CREAT, 0600, (struct mq_attr *)1), EFAULT);
	CHECK_ERR(mq_open(n2, O_RDWR), ENOENT);
	/* A descriptor that is not a queue. */
	int fd = CHECK_OK(open("/dev/null", O_RDWR));
	CHECK_ERR(mq_send(fd, "x", 1, 0), EBADF);
	CHECK_ERR(mq_getattr(fd, &a), EBADF);
	close(fd);
	CHECK_OK(mq_close(q2));
	CHECK_OK(mq_close(q));
	CHECK_OK(mq_unlink(n));
	CHECK_ERR(mq_unlink(n), ENOENT);
	CHECK_ERR(mq_unlink("noslash"), EINVAL);
}

CASE(send_receive_errors)
{
	const char *n = mq_name("sre");
	mqd_t q = mq_make(n, O_RDWR | O_NONBLOCK, 2, 8);
	char buf[16];
	CHECK_ERR(mq_send(q, "123456789", 9, 0), EMSGSIZE);
	CHECK_ERR(mq_send(q, "x", 1, 32768), EINVAL);
	CHECK_ERR(mq_receive(q, buf, 7, NULL), EMSGSIZE);
	CHECK_ERR(mq_receive(q, buf, 8, NULL), EAGAIN);
	CHECK_OK(mq_send(q, "a", 1, 32767));
	CHECK_OK(mq_send(q, "b", 1, 0));
	CHECK_ERR(mq_send(q, "c", 1, 0), EAGAIN);
	CHECK_ERR(mq_send(q, (char *)1, 1, 0), EFAULT);
	/* Access modes. */
	mqd_t r = mq_open(n, O_RDONLY);
	mqd_t w = mq_open(n, O_WRONLY);
	CHECK_ERR(mq_send(r, "x", 1, 0), EBADF);
	CHECK_ERR(mq_receive(w, buf, sizeof buf, NULL), EBADF);
	/* An invalid timeout is EINVAL even when nothing would block. */
	struct timespec ts = { 0, 1000000000L };
	CHECK_ERR(mq_timedreceive(r, buf, sizeof buf, NULL, &ts), EINVAL);
	ts.tv_nsec = -1;
	CHECK_ERR(mq_timedsend(w, "x", 1, 0, &ts), EINVAL);
	/* An expired timeout does not matter when no wait is needed. */
	ts.tv_sec = 0;
	ts.tv_nsec = 0;
	unsigned prio;
	CHECK_EQ(mq_timedreceive(r, buf, sizeof buf, &prio, &ts), 1);
	CHECK_EQ(prio, 32767);
	mq_close(r);
	mq_close(w);
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

CASE(timeouts)
{
	const char *n = mq_name("tmo");
	mqd_t q = mq_make(n, O_RDWR, 1, 8);
	char buf[8];
	struct timespec ts;
	realtime_plus_ms(&ts, 100);
	long long t0 = st_mono_ms();
	CHECK_ERR(mq_timedreceive(q, buf, sizeof buf, NULL, &ts), ETIMEDOUT);
	CHECK_GE(st_mono_ms() - t0, 90);
	CHECK_OK(mq_send(q, "x", 1, 0));
	realtime_plus_ms(&ts, 100);
	t0 = st_mono_ms();
	CHECK_ERR(mq_timedsend(q, "y", 1, 0, &ts), ETIMEDOUT);
	CHECK_GE(st_mono_ms() - t0, 90);
	/* A timeout in the past with a full queue fails at once. */
	ts.tv_sec = 1;
	ts.tv_nsec = 0;
	CHECK_ERR(mq_timedsend(q, "y", 1, 0, &ts), ETIMEDOUT);
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

CASE(blocking_receive_woken_by_sender)
{
	const char *n = mq_name("blk");
	mqd_t q = mq_make(n, O_RDWR, 4, 16);
	pid_t pid = fork();
	if (pid == 0) {
		st_sleep_ms(100);
		mqd_t w = mq_open(n, O_WRONLY);
		if (w == (mqd_t)-1 || mq_send(w, "wake", 4, 2) != 0)
			_exit(1);
		_exit(0);
	}
	char buf[16];
	unsigned prio;
	CHECK_EQ(mq_receive(q, buf, sizeof buf, &prio), 4);
	CHECK_MEMEQ(buf, "wake", 4);
	CHECK_EQ(prio, 2);
	CHECK_EXITED(st_wait(pid), 0);
	/* A full queue blocks the sender until a receive makes room. */
	for (int i = 0; i < 4; i++)
		CHECK_OK(mq_send(q, "f", 1, 0));
	pid = fork();
	if (pid == 0) {
		st_sleep_ms(100);
		char b[16];
		_exit(mq_receive(q, b, sizeof b, NULL) == 1 ? 0 : 1);
	}
	CHECK_OK(mq_send(q, "g", 1, 0));
	CHECK_EXITED(st_wait(pid), 0);
	struct mq_attr a;
	CHECK_OK(mq_getattr(q, &a));
	CHECK_EQ(a.mq_curmsgs, 4);
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

static volatile int got_sig;
static void on_sig(int s)
{
	(void)s;
	got_sig++;
}

CASE(signal_interrupts_receive)
{
	const char *n = mq_name("intr");
	mqd_t q = mq_make(n, O_RDWR, 4, 16);
	st_handle(SIGALRM, on_sig, 0);
	/* Periodic, so that a signal that comes before the call blocks cannot hang the case. */
	struct itimerval it = { { 0, 100000 }, { 0, 100000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	char buf[16];
	CHECK_ERR(mq_receive(q, buf, sizeof buf, NULL), EINTR);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	CHECK_OK(setitimer(ITIMER_REAL, &off, NULL));
	CHECK_GE(got_sig, 1);
	got_sig = 1;
	/* With SA_RESTART the receive is restarted and gets the message sent later. */
	st_handle(SIGUSR1, on_sig, SA_RESTART);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		st_sleep_ms(100);
		kill(parent, SIGUSR1);
		st_sleep_ms(100);
		mqd_t w = mq_open(n, O_WRONLY);
		_exit(mq_send(w, "late", 4, 0) == 0 ? 0 : 1);
	}
	CHECK_EQ(mq_receive(q, buf, sizeof buf, NULL), 4);
	CHECK_EQ(got_sig, 2);
	CHECK_EXITED(st_wait(pid), 0);
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

static volatile siginfo_t notify_info;
static void on_notify(int s, siginfo_t *si, void *uc)
{
	(void)s;
	(void)uc;
	memcpy((void *)&notify_info, si, sizeof *si);
}

CASE(notify_signal)
{
	const char *n = mq_name("ntf");
	mqd_t q = mq_make(n, O_RDWR | O_NONBLOCK, 4, 16);
	st_handle_info(SIGUSR2, on_notify, 0);
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGUSR2;
	ev.sigev_value.sival_int = 4242;
	CHECK_OK(mq_notify(q, &ev));
	/* One registration per queue. */
	CHECK_ERR(mq_notify(q, &ev), EBUSY);
	IN_CHILD({
		struct sigevent e2 = ev;
		CHECK_ERR(mq_notify(q, &e2), EBUSY);
		/* Removing someone else's registration does nothing. */
		CHECK_OK(mq_notify(q, NULL));
	});
	CHECK_ERR(mq_notify(q, &ev), EBUSY);
	/* A message from another process: the signal carries its pid and our value. */
	pid_t pid = fork();
	if (pid == 0) {
		_exit(mq_send(q, "m", 1, 0) == 0 ? 0 : 1);
	}
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(notify_info.si_signo, SIGUSR2);
	CHECK_EQ(notify_info.si_code, SI_MESGQ);
	CHECK_EQ(notify_info.si_pid, pid);
	CHECK_EQ(notify_info.si_uid, getuid());
	CHECK_EQ(notify_info.si_value.sival_int, 4242);
	/* The registration is gone after one notification. */
	memset((void *)&notify_info, 0, sizeof notify_info);
	char buf[16];
	CHECK_EQ(mq_receive(q, buf, sizeof buf, NULL), 1);
	CHECK_OK(mq_send(q, "m", 1, 0));
	CHECK_EQ(notify_info.si_signo, 0);
	/* Only a send to an empty queue notifies. */
	CHECK_OK(mq_notify(q, &ev));
	CHECK_OK(mq_send(q, "m", 1, 0));
	CHECK_EQ(notify_info.si_signo, 0);
	CHECK_OK(mq_notify(q, NULL));
	CHECK_OK(mq_notify(q, &ev));
	CHECK_OK(mq_notify(q, NULL));
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

CASE(notify_none_and_errors)
{
	const char *n = mq_name("ntn");
	mqd_t q = mq_make(n, O_RDWR | O_NONBLOCK, 4, 16);
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_NONE;
	CHECK_OK(mq_notify(q, &ev));
	CHECK_ERR(mq_notify(q, &ev), EBUSY);
	CHECK_OK(mq_send(q, "m", 1, 0));
	/* SIGEV_NONE registers but signals nothing; the registration is used up. */
	char buf[16];
	CHECK_EQ(mq_receive(q, buf, sizeof buf, NULL), 1);
	CHECK_OK(mq_notify(q, &ev));
	CHECK_OK(mq_notify(q, NULL));
	ev.sigev_notify = 77;
	CHECK_ERR(mq_notify(q, &ev), EINVAL);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = 65;
	CHECK_ERR(mq_notify(q, &ev), EINVAL);
	ev.sigev_signo = SIGUSR1;
	CHECK_ERR(mq_notify(-1, &ev), EBADF);
	CHECK_ERR(syscall(SYS_mq_notify, q, (void *)1), EFAULT);
	/* SIGEV_THREAD in the raw call wants a netlink socket in sigev_signo. */
	char cookie[32] = { 0 };
	ev.sigev_notify = SIGEV_THREAD;
	ev.sigev_value.sival_ptr = cookie;
	ev.sigev_signo = -1;
	CHECK_ERR(syscall(SYS_mq_notify, q, &ev), EBADF);
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	ev.sigev_signo = fd;
	CHECK_ERR(syscall(SYS_mq_notify, q, &ev), ENOTSOCK);
	close(fd);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	ev.sigev_signo = sv[0];
	CHECK_ERR(syscall(SYS_mq_notify, q, &ev), EINVAL);
	close(sv[0]);
	close(sv[1]);
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

CASE(poll_readiness)
{
	const char *n = mq_name("poll");
	mqd_t q = mq_make(n, O_RDWR | O_NONBLOCK, 1, 8);
	struct pollfd p = { q, POLLIN | POLLOUT, 0 };
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLOUT);
	CHECK_OK(mq_send(q, "x", 1, 0));
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLIN);
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

CASE(unlinked_queue_lives_while_open)
{
	const char *n = mq_name("unl");
	mqd_t q = mq_make(n, O_RDWR | O_NONBLOCK, 2, 8);
	CHECK_OK(mq_unlink(n));
	CHECK_ERR(mq_open(n, O_RDWR), ENOENT);
	CHECK_OK(mq_send(q, "still", 5, 0));
	char buf[8];
	CHECK_EQ(mq_receive(q, buf, sizeof buf, NULL), 5);
	/* A new queue of the same name is another queue. */
	mqd_t q2 = mq_make(n, O_RDWR | O_NONBLOCK, 2, 8);
	CHECK_ERR(mq_receive(q2, buf, sizeof buf, NULL), EAGAIN);
	mq_close(q2);
	mq_close(q);
	CHECK_OK(mq_unlink(n));
}

CASE(permissions)
{
	const char *n = mq_name("perm");
	struct mq_attr a = { 0, 2, 8, 0 };
	mqd_t q = mq_open(n, O_CREAT | O_EXCL | O_RDWR, 0644, &a);
	CHECK(q != (mqd_t)-1);
	IN_CHILD({
		st_drop_privileges();
		if (geteuid() == 0)
			break;
		mqd_t r = mq_open(n, O_RDONLY);
		CHECK(r != (mqd_t)-1);
		CHECK_ERR(mq_open(n, O_WRONLY), EACCES);
		CHECK_ERR(mq_open(n, O_RDWR), EACCES);
		/* /dev/mqueue is sticky: only the owner may unlink (glibc maps EPERM). */
		CHECK_ERR(mq_unlink(n), EACCES);
		CHECK_ERR(syscall(SYS_mq_unlink, n + 1), EPERM);
	});
	/* The mode is masked by the umask. */
	const char *n2 = mq_name("perm2");
	umask(077);
	mqd_t q2 = mq_open(n2, O_CREAT | O_EXCL | O_RDWR, 0666, &a);
	umask(022);
	CHECK(q2 != (mqd_t)-1);
	struct stat st;
	CHECK_OK(fstat(q2, &st));
	CHECK_EQ(st.st_mode & 07777, 0600);
	mq_close(q2);
	mq_close(q);
	CHECK_OK(mq_unlink(n2));
	CHECK_OK(mq_unlink(n));
}

CASE(limits_for_unprivileged)
{
	char buf[64];
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/msg_max", buf, sizeof buf), 0);
	long msg_max = atol(buf);
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/msgsize_max", buf, sizeof buf), 0);
	long msgsize_max = atol(buf);
	const char *n = mq_name("lim");
	IN_CHILD({
		st_drop_privileges();
		if (geteuid() == 0)
			break;
		struct mq_attr a = { 0, msg_max + 1, 8, 0 };
		CHECK_ERR(mq_open(n, O_CREAT | O_RDWR, 0600, &a), EINVAL);
		a.mq_maxmsg = 1;
		a.mq_msgsize = msgsize_max + 1;
		CHECK_ERR(mq_open(n, O_CREAT | O_RDWR, 0600, &a), EINVAL);
		a.mq_msgsize = msgsize_max;
		mqd_t q = mq_open(n, O_CREAT | O_RDWR, 0600, &a);
		CHECK(q != (mqd_t)-1);
		mq_close(q);
		CHECK_OK(mq_unlink(n));
	});
}

/* RLIMIT_MSGQUEUE counts maxmsg * (msgsize + 2 * 48) bytes per queue (Linux's msg_msg and tree node). */
CASE(rlimit_msgqueue)
{
	const char *n1 = mq_name("rl1");
	const char *n2 = mq_name("rl2");
	IN_CHILD({
		st_drop_privileges();
		long bytes = 4 * (100 + 48 + 48);
		struct rlimit rl = { bytes, bytes };
		CHECK_OK(setrlimit(RLIMIT_MSGQUEUE, &rl));
		struct mq_attr a = { 0, 4, 101, 0 };
		CHECK_ERR(mq_open(n1, O_CREAT | O_RDWR, 0600, &a), EMFILE);
		a.mq_msgsize = 100;
		mqd_t q = mq_open(n1, O_CREAT | O_RDWR, 0600, &a);
		CHECK(q != (mqd_t)-1);
		a.mq_maxmsg = 1;
		a.mq_msgsize = 1;
		CHECK_ERR(mq_open(n2, O_CREAT | O_RDWR, 0600, &a), EMFILE);
		/* Unlinked but open: still counted. Closed too: released. */
		CHECK_OK(mq_unlink(n1));
		CHECK_ERR(mq_open(n2, O_CREAT | O_RDWR, 0600, &a), EMFILE);
		mq_close(q);
		mqd_t q2 = mq_open(n2, O_CREAT | O_RDWR, 0600, &a);
		CHECK(q2 != (mqd_t)-1);
		mq_close(q2);
		CHECK_OK(mq_unlink(n2));
	});
}

/*
 * The mqueue file system: /dev/mqueue, or (natively, where it is not mounted) a mount
 * in mount and IPC namespaces of the child's own, so that nothing is left mounted
 * whatever happens and the host's queues are not touched.
 */
static const char *mqueue_dir(void)
{
	struct statfs sf;
	if (statfs("/dev/mqueue", &sf) == 0 && sf.f_type == MQUEUE_MAGIC)
		return "/dev/mqueue";
	const char *d = P("mq");
	if (mkdir(d, 0755) != 0 && errno != EEXIST)
		FAIL("mkdir: %s", st_errname(errno));
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0)
		FAIL("no /dev/mqueue and unshare(CLONE_NEWNS|CLONE_NEWIPC): %s", st_errname(errno));
	CHECK_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	if (mount("mqueue", d, "mqueue", 0, NULL) != 0)
		FAIL("no /dev/mqueue and mount(mqueue): %s", st_errname(errno));
	return d;
}

static void filesystem_shows_queues(void);
CASE(filesystem_shows_queues)
{
	IN_CHILD(filesystem_shows_queues());
}

static void filesystem_shows_queues(void)
{
	const char *d = mqueue_dir();
	struct statfs sf;
	CHECK_OK(statfs(d, &sf));
	CHECK_EQ(sf.f_type, MQUEUE_MAGIC);
	struct stat st;
	CHECK_OK(stat(d, &st));
	CHECK_EQ(st.st_mode, S_IFDIR | 01777);
	const char *n = mq_name("fs");
	mqd_t q = mq_make(n, O_RDWR | O_NONBLOCK, 4, 16);
	char path[128], buf[128];
	snprintf(path, sizeof path, "%s%s", d, n);
	CHECK_OK(stat(path, &st));
	CHECK_EQ(st.st_mode, S_IFREG | 0600);
	CHECK_EQ(st.st_size, 80);
	/* st_size is 80, the text is shorter. */
	CHECK_EQ(st_read_file(path, buf, sizeof buf), 60);
	CHECK_STREQ(buf, "QSIZE:0          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n");
	CHECK_OK(mq_send(q, "hello", 5, 1));
	CHECK_OK(mq_send(q, "abc", 3, 1));
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGUSR1;
	CHECK_EQ(st_read_file(path, buf, sizeof buf), 60);
	CHECK_STREQ(buf, "QSIZE:8          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n");
	CHECK_OK(mq_notify(q, &ev));
	char want[128];
	snprintf(want, sizeof want, "QSIZE:8          NOTIFY:0     SIGNO:10    NOTIFY_PID:%-6d\n",
		 (int)getpid());
	/* The queue descriptor reads the same text, from its offset. */
	CHECK_EQ(pread(q, buf, sizeof buf, 0), 60);
	CHECK_MEMEQ(buf, want, 60);
	CHECK_EQ(pread(q, buf, sizeof buf, 54), 6);
	CHECK_EQ(lseek(q, 0, SEEK_END), 80);
	/* Closing any descriptor of the queue in the registered process drops the registration. */
	CHECK_EQ(st_read_file(path, buf, sizeof buf), 60);
	CHECK_EQ(pread(q, buf, sizeof buf, 0), 60);
	CHECK_MEMEQ(buf, "QSIZE:8          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n", 60);
	CHECK_OK(mq_notify(q, &ev));
	CHECK_ERR(write(q, "x", 1), EINVAL);
	/* The listing has the queue; unlink through the file system removes it. */
	DIR *dir = opendir(d);
	CHECK(dir != NULL);
	int found = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL)
		if (strcmp(e->d_name, n + 1) == 0)
			found = (e->d_type == DT_REG);
	closedir(dir);
	CHECK_EQ(found, 1);
	char sub[128];
	snprintf(sub, sizeof sub, "%s/sub", d);
	CHECK_ERR(mkdir(sub, 0755), EPERM);
	CHECK_OK(unlink(path));
	CHECK_ERR(mq_unlink(n), ENOENT);
	/* Creating a file there makes a queue with the default attributes. */
	int fd = CHECK_OK(open(path, O_CREAT | O_EXCL | O_RDWR, 0600));
	close(fd);
	mqd_t q2 = mq_open(n, O_RDWR);
	CHECK(q2 != (mqd_t)-1);
	struct mq_attr a;
	CHECK_OK(mq_getattr(q2, &a));
	CHECK_GT(a.mq_maxmsg, 0);
	mq_close(q2);
	CHECK_OK(mq_unlink(n));
	mq_close(q);
}

CASE(proc_sys_limits)
{
	char buf[64];
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/queues_max", buf, sizeof buf), 0);
	CHECK_GT(atol(buf), 0);
	CHECK_GT(st_read_file("/proc/sys/fs/mqueue/msg_max", buf, sizeof buf), 0);
	CHECK_GT(atol(buf), 0);
	struct stat st;
	CHECK_OK(stat("/proc/sys/fs/mqueue/msg_max", &st));
	CHECK_EQ(st.st_mode, S_IFREG | 0644);
	/* Writing out of range is EINVAL (msg_max: 1..65536). */
	if (st_is_root()) {
		int fd = CHECK_OK(open("/proc/sys/fs/mqueue/msg_max", O_WRONLY));
		CHECK_ERR(write(fd, "0\n", 2), EINVAL);
		CHECK_ERR(write(fd, "65537\n", 6), EINVAL);
		close(fd);
	}
}

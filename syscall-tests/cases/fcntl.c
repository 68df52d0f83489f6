/* fcntl: descriptor flags, status flags, F_DUPFD, record locks, OFD locks, flock. */
#include "harness.h"
#include <sys/file.h>

CASE(fd_flags_cloexec)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(fcntl(fd, F_GETFD), 0);
	CHECK_OK(fcntl(fd, F_SETFD, FD_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	CHECK_OK(fcntl(fd, F_SETFD, 0));
	CHECK_EQ(fcntl(fd, F_GETFD), 0);
	close(fd);
	fd = CHECK_OK(open("/dev/null", O_RDONLY | O_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	close(fd);
}

CASE(status_flags)
{
	st_write_file(P("f"), "abc");
	int fd = CHECK_OK(open(P("f"), O_RDWR));
	int fl = CHECK_OK(fcntl(fd, F_GETFL));
	CHECK_EQ(fl & O_ACCMODE, O_RDWR);
	CHECK_EQ(fl & (O_APPEND | O_NONBLOCK), 0);
	CHECK_OK(fcntl(fd, F_SETFL, fl | O_APPEND | O_NONBLOCK));
	fl = CHECK_OK(fcntl(fd, F_GETFL));
	CHECK_EQ(fl & (O_APPEND | O_NONBLOCK), O_APPEND | O_NONBLOCK);
	/* The access mode cannot be changed. */
	CHECK_OK(fcntl(fd, F_SETFL, O_RDONLY));
	fl = CHECK_OK(fcntl(fd, F_GETFL));
	CHECK_EQ(fl & O_ACCMODE, O_RDWR);
	CHECK_EQ(fl & O_APPEND, 0);
	/* O_APPEND set by fcntl takes effect. */
	CHECK_OK(fcntl(fd, F_SETFL, O_APPEND));
	CHECK_EQ(pwrite(fd, "", 0, 0), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	CHECK_EQ(write(fd, "d", 1), 1);
	char buf[8] = { 0 };
	CHECK_EQ(pread(fd, buf, 8, 0), 4);
	CHECK_STREQ(buf, "abcd");
	close(fd);
}

CASE(status_flags_shared_by_dup)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	int fd2 = CHECK_OK(dup(fd));
	CHECK_OK(fcntl(fd, F_SETFL, O_NONBLOCK));
	CHECK_EQ(fcntl(fd2, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	/* Descriptor flags are not shared. */
	CHECK_OK(fcntl(fd, F_SETFD, FD_CLOEXEC));
	CHECK_EQ(fcntl(fd2, F_GETFD), 0);
	close(fd);
	close(fd2);
}

CASE(dupfd_minimum)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	int d = CHECK_OK(fcntl(fd, F_DUPFD, 100));
	CHECK_GE(d, 100);
	CHECK_EQ(fcntl(d, F_GETFD), 0);
	int d2 = CHECK_OK(fcntl(fd, F_DUPFD, 100));
	CHECK_EQ(d2, d + 1);
	int c = CHECK_OK(fcntl(fd, F_DUPFD_CLOEXEC, 200));
	CHECK_GE(c, 200);
	CHECK_EQ(fcntl(c, F_GETFD), FD_CLOEXEC);
	CHECK_ERR(fcntl(fd, F_DUPFD, -1), EINVAL);
	close(d);
	close(d2);
	close(c);
	close(fd);
}

CASE(errors)
{
	CHECK_ERR(fcntl(9999, F_GETFD), EBADF);
	CHECK_ERR(fcntl(-1, F_GETFL), EBADF);
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_ERR(fcntl(fd, 0x7fff), EINVAL);
	close(fd);
}

CASE(record_lock_conflicts_across_processes)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_OK(ftruncate(fd, 100));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 20 };
	CHECK_OK(fcntl(fd, F_SETLK, &fl));
	pid_t parent = getpid();
	IN_CHILD({
		int cfd = CHECK_OK(open(P("f"), O_RDWR));
		struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
		CHECK_OK(fcntl(cfd, F_GETLK, &q));
		CHECK_EQ(q.l_type, F_WRLCK);
		CHECK_EQ(q.l_pid, parent);
		CHECK_EQ(q.l_start, 10);
		CHECK_EQ(q.l_len, 20);
		struct flock w = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 15, .l_len = 1 };
		CHECK_ERR(fcntl(cfd, F_SETLK, &w), EAGAIN);
		struct flock r = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 29, .l_len = 1 };
		CHECK_ERR(fcntl(cfd, F_SETLK, &r), EAGAIN);
		/* A non-overlapping range is free. */
		struct flock ok = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 30, .l_len = 10 };
		CHECK_OK(fcntl(cfd, F_SETLK, &ok));
		struct flock free_q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10 };
		CHECK_OK(fcntl(cfd, F_GETLK, &free_q));
		CHECK_EQ(free_q.l_type, F_UNLCK);
	});
	/* Unlock, then the child can take it. */
	fl.l_type = F_UNLCK;
	CHECK_OK(fcntl(fd, F_SETLK, &fl));
	IN_CHILD({
		int cfd = CHECK_OK(open(P("f"), O_RDWR));
		struct flock w = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 15, .l_len = 1 };
		CHECK_OK(fcntl(cfd, F_SETLK, &w));
	});
	close(fd);
}

CASE(record_lock_released_on_close)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	CHECK_OK(fcntl(fd, F_SETLK, &fl));
	/* Closing any descriptor of the file drops the process's locks. */
	int other = CHECK_OK(open(P("f"), O_RDONLY));
	close(other);
	IN_CHILD({
		int cfd = CHECK_OK(open(P("f"), O_RDWR));
		struct flock w = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		CHECK_OK(fcntl(cfd, F_SETLK, &w));
	});
	close(fd);
}

CASE(setlkw_waits_for_unlock)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	CHECK_OK(fcntl(fd, F_SETLK, &fl));
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		int cfd = open(P("f"), O_RDWR);
		struct flock w = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		(void)!write(p[1], "s", 1);
		int r = fcntl(cfd, F_SETLKW, &w);
		_exit(r == 0 ? 0 : 1);
	}
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	st_sleep_ms(30);
	CHECK_EQ(waitpid(pid, NULL, WNOHANG), 0);
	fl.l_type = F_UNLCK;
	CHECK_OK(fcntl(fd, F_SETLK, &fl));
	CHECK_EXITED(st_wait(pid), 0);
	close(fd);
}

CASE(ofd_locks_per_open_file)
{
	int a = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	int b = CHECK_OK(open(P("f"), O_RDWR));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_pid = 0 };
	CHECK_OK(fcntl(a, F_OFD_SETLK, &fl));
	/* Same process, different open file description: conflict. */
	struct flock fl2 = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_pid = 0 };
	CHECK_ERR(fcntl(b, F_OFD_SETLK, &fl2), EAGAIN);
	struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_pid = 0 };
	CHECK_OK(fcntl(b, F_OFD_GETLK, &q));
	CHECK_EQ(q.l_type, F_WRLCK);
	CHECK_EQ(q.l_pid, -1);
	close(a);
	CHECK_OK(fcntl(b, F_OFD_SETLK, &fl2));
	close(b);
}

CASE(flock_exclusive_and_shared)
{
	int a = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	int b = CHECK_OK(open(P("f"), O_RDWR));
	CHECK_OK(flock(a, LOCK_EX));
	CHECK_ERR(flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	CHECK_ERR(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK);
	/* A dup shares the lock. */
	int a2 = CHECK_OK(dup(a));
	CHECK_OK(flock(a2, LOCK_EX | LOCK_NB));
	CHECK_OK(flock(a, LOCK_UN));
	CHECK_OK(flock(b, LOCK_SH | LOCK_NB));
	CHECK_OK(flock(a, LOCK_SH | LOCK_NB));
	CHECK_ERR(flock(a, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	CHECK_ERR(flock(a, 0), EINVAL);
	close(a);
	close(a2);
	close(b);
}

CASE(f_getown_setown)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(fcntl(p[0], F_GETOWN), 0);
	CHECK_OK(fcntl(p[0], F_SETOWN, getpid()));
	CHECK_EQ(fcntl(p[0], F_GETOWN), getpid());
	close(p[0]);
	close(p[1]);
}

static volatile int dn_sigio;
static void dn_on_sigio(int s)
{
	(void)s;
	dn_sigio++;
}

/* dnotify: F_NOTIFY sends SIGIO for the events asked for, once unless DN_MULTISHOT. */
CASE(f_notify_dnotify)
{
	st_handle(SIGIO, dn_on_sigio, 0);
	CHECK_OK(mkdir(P("d"), 0755));
	int d = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	/* No event bits: nothing to remove, no error (python's test_fcntl_64_bit). */
	CHECK_EQ(fcntl(d, F_NOTIFY, DN_MULTISHOT), 0);
	CHECK_EQ(fcntl(d, F_NOTIFY, 0), 0);
	CHECK_EQ(fcntl(d, F_NOTIFY, DN_CREATE), 0);
	st_write_file(P("d/a"), "x");
	CHECK_EQ(dn_sigio, 1);
	/* One shot: the next create signals nothing. */
	st_write_file(P("d/b"), "x");
	CHECK_EQ(dn_sigio, 1);
	/* Events not asked for signal nothing. */
	CHECK_EQ(fcntl(d, F_NOTIFY, DN_DELETE | DN_MULTISHOT), 0);
	st_write_file(P("d/c"), "x");
	CHECK_EQ(dn_sigio, 1);
	CHECK_OK(unlink(P("d/a")));
	CHECK_EQ(dn_sigio, 2);
	CHECK_OK(unlink(P("d/b")));
	CHECK_EQ(dn_sigio, 3);
	/* Removing the request. */
	CHECK_EQ(fcntl(d, F_NOTIFY, 0), 0);
	CHECK_OK(unlink(P("d/c")));
	CHECK_EQ(dn_sigio, 3);
	/* Closing the descriptor ends the request too. */
	CHECK_EQ(fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT), 0);
	close(d);
	st_write_file(P("d/e"), "x");
	CHECK_EQ(dn_sigio, 3);
	/* Directories only. */
	int f = CHECK_OK(open(P("d/e"), O_RDONLY));
	CHECK_ERR(fcntl(f, F_NOTIFY, DN_MODIFY), ENOTDIR);
	close(f);
}

/* posix_fadvise: advice is checked, pipes are ESPIPE, bad descriptors EBADF. */
CASE(posix_fadvise_checks)
{
	st_write_file(P("f"), "data");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED), 0);
	CHECK_EQ(posix_fadvise(fd, 0, 4, POSIX_FADV_DONTNEED), 0);
	CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL), 0);
	CHECK_EQ(posix_fadvise(fd, 0, 0, 99), EINVAL);
	CHECK_EQ(posix_fadvise(fd, 0, -1, POSIX_FADV_NORMAL), EINVAL);
	close(fd);
	CHECK_EQ(posix_fadvise(-42, 0, 0, POSIX_FADV_WILLNEED), EBADF);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(posix_fadvise(p[0], 0, 0, POSIX_FADV_NORMAL), ESPIPE);
	close(p[0]);
	close(p[1]);
	int o = CHECK_OK(open(P("f"), O_PATH));
	CHECK_EQ(posix_fadvise(o, 0, 0, POSIX_FADV_NORMAL), EBADF);
	close(o);
}

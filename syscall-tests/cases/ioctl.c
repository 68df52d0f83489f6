/* ioctl: the generic file ioctls (FIONREAD on pipes, sockets, regular files; FIONBIO,
 * FIOASYNC, FIOCLEX/FIONCLEX) and ENOTTY/EBADF for terminal ioctls on non-terminals. */
#include "harness.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>

static int nread(int fd)
{
	int n = -12345;
	if (ioctl(fd, FIONREAD, &n) != 0)
		FAIL("FIONREAD on fd %d: %s", fd, st_errname(errno));
	return n;
}

CASE(fionread_pipe)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(nread(p[0]), 0);
	CHECK_EQ(write(p[1], "hello", 5), 5);
	CHECK_EQ(write(p[1], "world!", 6), 6);
	CHECK_EQ(nread(p[0]), 11);
	char buf[8];
	CHECK_EQ(read(p[0], buf, 4), 4);
	CHECK_EQ(nread(p[0]), 7);
	/* After the writer closes, the rest is still counted. */
	close(p[1]);
	CHECK_EQ(nread(p[0]), 7);
	CHECK_EQ(read(p[0], buf, 8), 7);
	CHECK_EQ(nread(p[0]), 0);
	/* A bad pointer is EFAULT. */
	CHECK_ERR(ioctl(p[0], FIONREAD, (int *)8), EFAULT);
	close(p[0]);
}

CASE(fionread_sockets)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(nread(sv[1]), 0);
	CHECK_EQ(write(sv[0], "abc", 3), 3);
	CHECK_EQ(write(sv[0], "defgh", 5), 5);
	/* A stream counts all queued bytes. */
	CHECK_EQ(nread(sv[1]), 8);
	char buf[16];
	CHECK_EQ(read(sv[1], buf, 2), 2);
	CHECK_EQ(nread(sv[1]), 6);
	/* MSG_PEEK does not consume. */
	CHECK_EQ(recv(sv[1], buf, 3, MSG_PEEK), 3);
	CHECK_EQ(nread(sv[1]), 6);
	close(sv[0]);
	close(sv[1]);
	/* A datagram socket reports the size of the next datagram. */
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	CHECK_EQ(nread(sv[1]), 0);
	CHECK_EQ(write(sv[0], "abc", 3), 3);
	CHECK_EQ(write(sv[0], "defgh", 5), 5);
	CHECK_EQ(nread(sv[1]), 3);
	CHECK_EQ(read(sv[1], buf, sizeof buf), 3);
	CHECK_EQ(nread(sv[1]), 5);
	close(sv[0]);
	close(sv[1]);
}

CASE(fionread_regular_file)
{
	st_write_file(P("f"), "0123456789");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	/* Bytes between the offset and the end of file. */
	CHECK_EQ(nread(fd), 10);
	CHECK_EQ(lseek(fd, 3, SEEK_SET), 3);
	CHECK_EQ(nread(fd), 7);
	CHECK_EQ(lseek(fd, 20, SEEK_SET), 20);
	CHECK_EQ(nread(fd), -10);
	close(fd);
	fd = CHECK_OK(open("/dev/null", O_RDONLY));
	int n = -1;
	/* Character devices without the ioctl: ENOTTY. */
	CHECK_ERR(ioctl(fd, FIONREAD, &n), ENOTTY);
	close(fd);
}

CASE(fionbio_sets_o_nonblock)
{
	int p[2];
	CHECK_OK(pipe(p));
	int on = 1, off = 0;
	CHECK_EQ(ioctl(p[0], FIONBIO, &on), 0);
	CHECK_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	char c;
	CHECK_ERR(read(p[0], &c, 1), EAGAIN);
	/* The flag belongs to the open file description: a dup sees it. */
	int d = CHECK_OK(dup(p[0]));
	CHECK_EQ(fcntl(d, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	CHECK_EQ(ioctl(d, FIONBIO, &off), 0);
	CHECK_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	/* Any nonzero value turns it on. */
	int many = 42;
	CHECK_EQ(ioctl(p[0], FIONBIO, &many), 0);
	CHECK_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	CHECK_ERR(ioctl(p[0], FIONBIO, (int *)8), EFAULT);
	close(d);
	close(p[0]);
	close(p[1]);
	/* On a socket too: a nonblocking recv with nothing queued. */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(ioctl(sv[0], FIONBIO, &on), 0);
	CHECK_ERR(recv(sv[0], &c, 1, 0), EAGAIN);
	close(sv[0]);
	close(sv[1]);
}

CASE(fioasync_and_fioclex)
{
	int p[2];
	CHECK_OK(pipe(p));
	int on = 1, off = 0;
	CHECK_EQ(ioctl(p[0], FIOASYNC, &on), 0);
	CHECK_EQ(fcntl(p[0], F_GETFL) & O_ASYNC, O_ASYNC);
	CHECK_EQ(ioctl(p[0], FIOASYNC, &off), 0);
	CHECK_EQ(fcntl(p[0], F_GETFL) & O_ASYNC, 0);
	/* FIOCLEX / FIONCLEX take no argument. */
	CHECK_EQ(ioctl(p[0], FIOCLEX), 0);
	CHECK_EQ(fcntl(p[0], F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(p[1], F_GETFD), 0);
	CHECK_EQ(ioctl(p[0], FIONCLEX), 0);
	CHECK_EQ(fcntl(p[0], F_GETFD), 0);
	/* They work on any file, a regular one included. */
	st_write_file(P("f"), "x");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_EQ(ioctl(fd, FIOCLEX), 0);
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	close(fd);
	close(p[0]);
	close(p[1]);
}

CASE(terminal_ioctls_on_non_terminals)
{
	int p[2];
	CHECK_OK(pipe(p));
	struct termios t;
	struct winsize ws;
	pid_t pg;
	CHECK_ERR(ioctl(p[0], TCGETS, &t), ENOTTY);
	CHECK_ERR(ioctl(p[0], TIOCGWINSZ, &ws), ENOTTY);
	CHECK_ERR(ioctl(p[0], TIOCGPGRP, &pg), ENOTTY);
	CHECK_ERR(ioctl(p[0], TIOCSCTTY, 0), ENOTTY);
	/* isatty() reports ENOTTY. */
	errno = 0;
	CHECK_EQ(isatty(p[0]), 0);
	CHECK_EQ(errno, ENOTTY);
	CHECK_ERR(tcgetattr(p[1], &t), ENOTTY);
	st_write_file(P("f"), "x");
	int fd = CHECK_OK(open(P("f"), O_RDWR));
	CHECK_ERR(ioctl(fd, TCGETS, &t), ENOTTY);
	CHECK_ERR(ioctl(fd, TIOCGWINSZ, &ws), ENOTTY);
	close(fd);
	int null = CHECK_OK(open("/dev/null", O_RDWR));
	CHECK_ERR(ioctl(null, TCGETS, &t), ENOTTY);
	CHECK_EQ(isatty(null), 0);
	close(null);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_ERR(ioctl(sv[0], TCGETS, &t), ENOTTY);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

CASE(errors)
{
	int n;
	CHECK_ERR(ioctl(-1, FIONREAD, &n), EBADF);
	CHECK_ERR(ioctl(9999, FIONBIO, &n), EBADF);
	int p[2];
	CHECK_OK(pipe(p));
	close(p[1]);
	CHECK_ERR(ioctl(p[1], FIOCLEX), EBADF);
	/* An unknown request. */
	CHECK_ERR(ioctl(p[0], 0x7fff1234, &n), ENOTTY);
	/* O_PATH descriptors accept no ioctls. */
	int op = CHECK_OK(open("/dev/null", O_PATH));
	CHECK_ERR(ioctl(op, FIONBIO, &n), EBADF);
	close(op);
	close(p[0]);
}

/* dup, dup2, dup3 and what duplicated descriptors share. */
#include "harness.h"

CASE(dup_returns_lowest_free)
{
	int a = CHECK_OK(open("/dev/null", O_RDONLY));
	int b = CHECK_OK(open("/dev/null", O_RDONLY));
	close(a);
	int d = CHECK_OK(dup(b));
	CHECK_EQ(d, a);
	close(b);
	close(d);
}

CASE(dup_shares_offset)
{
	st_write_file(P("f"), "0123456789");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	int d = CHECK_OK(dup(fd));
	char buf[4];
	CHECK_EQ(read(fd, buf, 3), 3);
	CHECK_EQ(lseek(d, 0, SEEK_CUR), 3);
	CHECK_EQ(read(d, buf, 2), 2);
	CHECK_MEMEQ(buf, "34", 2);
	close(fd);
	/* The duplicate stays usable after the original is closed. */
	CHECK_EQ(read(d, buf, 1), 1);
	CHECK_EQ(buf[0], '5');
	close(d);
}

CASE(dup_clears_cloexec)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY | O_CLOEXEC));
	int d = CHECK_OK(dup(fd));
	CHECK_EQ(fcntl(d, F_GETFD), 0);
	close(fd);
	close(d);
}

CASE(dup2_onto_open_fd_closes_it)
{
	st_write_file(P("a"), "A");
	st_write_file(P("b"), "B");
	int a = CHECK_OK(open(P("a"), O_RDONLY));
	int b = CHECK_OK(open(P("b"), O_RDONLY));
	CHECK_EQ(dup2(a, b), b);
	char c;
	CHECK_EQ(read(b, &c, 1), 1);
	CHECK_EQ(c, 'A');
	close(a);
	close(b);
}

CASE(dup2_same_fd_is_noop)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY | O_CLOEXEC));
	CHECK_EQ(dup2(fd, fd), fd);
	/* Flags are untouched. */
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	close(fd);
	CHECK_ERR(dup2(fd, fd), EBADF);
}

CASE(dup2_high_number)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(dup2(fd, 500), 500);
	CHECK_EQ(fcntl(500, F_GETFD), 0);
	close(500);
	CHECK_ERR(dup2(fd, -1), EBADF);
	CHECK_ERR(dup2(fd, 1 << 30), EBADF);
	CHECK_ERR(dup2(9999, 600), EBADF);
	close(fd);
}

CASE(dup3_flags)
{
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(dup3(fd, 50, O_CLOEXEC), 50);
	CHECK_EQ(fcntl(50, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(dup3(fd, 50, 0), 50);
	CHECK_EQ(fcntl(50, F_GETFD), 0);
	CHECK_ERR(dup3(fd, fd, 0), EINVAL);
	CHECK_ERR(dup3(fd, 51, 0x4), EINVAL);
	close(50);
	close(fd);
}

CASE(dup_bad_fd)
{
	CHECK_ERR(dup(-1), EBADF);
	CHECK_ERR(dup(9999), EBADF);
}

CASE(redirect_stdout)
{
	int saved = CHECK_OK(dup(1));
	int fd = CHECK_OK(open(P("out"), O_WRONLY | O_CREAT | O_TRUNC, 0644));
	CHECK_EQ(dup2(fd, 1), 1);
	close(fd);
	CHECK_EQ(write(1, "redirected\n", 11), 11);
	CHECK_EQ(dup2(saved, 1), 1);
	close(saved);
	char buf[32];
	st_read_file(P("out"), buf, sizeof buf);
	CHECK_STREQ(buf, "redirected\n");
}

CASE(close_range)
{
	int base = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(dup2(base, 300), 300);
	CHECK_EQ(dup2(base, 301), 301);
	CHECK_EQ(dup2(base, 305), 305);
	CHECK_OK(syscall(SYS_close_range, 300, 302, 0));
	CHECK_ERR(fcntl(300, F_GETFD), EBADF);
	CHECK_ERR(fcntl(301, F_GETFD), EBADF);
	CHECK_EQ(fcntl(305, F_GETFD), 0);
	/* CLOSE_RANGE_CLOEXEC (4) marks instead of closing. */
	CHECK_OK(syscall(SYS_close_range, 305, ~0U, 4));
	CHECK_EQ(fcntl(305, F_GETFD), FD_CLOEXEC);
	CHECK_ERR(syscall(SYS_close_range, 10, 5, 0), EINVAL);
	close(305);
	close(base);
}

/* pipe, pipe2, FIFOs, EPIPE/SIGPIPE, capacity, nonblocking I/O. */
#include "harness.h"
#include <sys/ioctl.h>

CASE(pipe_write_read)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_NE(p[0], p[1]);
	CHECK_EQ(write(p[1], "hello", 5), 5);
	char buf[16] = { 0 };
	CHECK_EQ(read(p[0], buf, sizeof buf), 5);
	CHECK_STREQ(buf, "hello");
	/* Reads return what is there, not the full request. */
	CHECK_EQ(write(p[1], "ab", 2), 2);
	CHECK_EQ(write(p[1], "cd", 2), 2);
	CHECK_EQ(read(p[0], buf, 3), 3);
	CHECK_EQ(read(p[0], buf, 3), 1);
	close(p[0]);
	close(p[1]);
}

CASE(eof_after_writer_closes)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "x", 1), 1);
	close(p[1]);
	char buf[4];
	CHECK_EQ(read(p[0], buf, 4), 1);
	CHECK_EQ(read(p[0], buf, 4), 0);
	CHECK_EQ(read(p[0], buf, 4), 0);
	close(p[0]);
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

CASE(epipe_and_sigpipe_without_readers)
{
	int p[2];
	CHECK_OK(pipe(p));
	close(p[0]);
	st_handle(SIGPIPE, on_sigpipe, 0);
	CHECK_ERR(write(p[1], "x", 1), EPIPE);
	CHECK_EQ(sigpipes, 1);
	signal(SIGPIPE, SIG_IGN);
	CHECK_ERR(write(p[1], "x", 1), EPIPE);
	CHECK_EQ(sigpipes, 1);
	close(p[1]);
}

CASE(wrong_end_ebadf)
{
	int p[2];
	CHECK_OK(pipe(p));
	char c = 0;
	CHECK_ERR(write(p[0], &c, 1), EBADF);
	CHECK_ERR(read(p[1], &c, 1), EBADF);
	close(p[0]);
	close(p[1]);
}

CASE(pipe2_flags)
{
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
	CHECK_EQ(fcntl(p[0], F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(p[1], F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(p[0], F_GETFL) & (O_NONBLOCK | O_ACCMODE), O_NONBLOCK | O_RDONLY);
	CHECK_EQ(fcntl(p[1], F_GETFL) & (O_NONBLOCK | O_ACCMODE), O_NONBLOCK | O_WRONLY);
	close(p[0]);
	close(p[1]);
	CHECK_ERR(pipe2(p, 0x12345678), EINVAL);
	CHECK_OK(pipe2(p, 0));
	CHECK_EQ(fcntl(p[0], F_GETFD), 0);
	close(p[0]);
	close(p[1]);
}

CASE(nonblocking_empty_read_eagain)
{
	int p[2];
	CHECK_OK(pipe2(p, O_NONBLOCK));
	char c;
	CHECK_ERR(read(p[0], &c, 1), EAGAIN);
	close(p[0]);
	close(p[1]);
}

CASE(capacity_and_full_write_eagain)
{
	int p[2];
	CHECK_OK(pipe2(p, O_NONBLOCK));
	CHECK_EQ(fcntl(p[0], F_GETPIPE_SZ), 65536);
	char buf[4096];
	memset(buf, 'x', sizeof buf);
	long total = 0;
	for (;;) {
		ssize_t r = write(p[1], buf, sizeof buf);
		if (r < 0) {
			CHECK_EQ(errno, EAGAIN);
			break;
		}
		total += r;
		CHECK_LE(total, 65536);
	}
	CHECK_EQ(total, 65536);
	int avail = 0;
	CHECK_OK(ioctl(p[0], FIONREAD, &avail));
	CHECK_EQ(avail, 65536);
	close(p[0]);
	close(p[1]);
}

CASE(set_pipe_size)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_GE(fcntl(p[1], F_SETPIPE_SZ, 4096 * 32), 4096 * 32);
	CHECK_EQ(fcntl(p[0], F_GETPIPE_SZ), 4096 * 32);
	/* Sizes are rounded up to a power-of-two number of pages. */
	CHECK_EQ(fcntl(p[1], F_SETPIPE_SZ, 5000), 8192);
	close(p[0]);
	close(p[1]);
}

CASE(fionread_counts_bytes)
{
	int p[2];
	CHECK_OK(pipe(p));
	int n = -1;
	CHECK_OK(ioctl(p[0], FIONREAD, &n));
	CHECK_EQ(n, 0);
	CHECK_EQ(write(p[1], "12345", 5), 5);
	CHECK_OK(ioctl(p[0], FIONREAD, &n));
	CHECK_EQ(n, 5);
	close(p[0]);
	close(p[1]);
}

CASE(pipe_between_processes)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		close(p[0]);
		char buf[1000];
		for (int i = 0; i < 100; i++) {
			memset(buf, 'a' + i % 26, sizeof buf);
			if (write(p[1], buf, sizeof buf) != sizeof buf)
				_exit(1);
		}
		_exit(0);
	}
	close(p[1]);
	static char all[100 * 1000 + 1];
	size_t off = 0;
	ssize_t r;
	while ((r = read(p[0], all + off, sizeof all - off)) > 0)
		off += r;
	CHECK_EQ(off, 100 * 1000);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(all[i * 1000 + 999], 'a' + i % 26);
	CHECK_EXITED(st_wait(pid), 0);
	close(p[0]);
}

CASE(blocking_read_waits_for_writer)
{
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(50);
		(void)!write(p[1], "late", 4);
		_exit(0);
	}
	char buf[8];
	long long t0 = st_mono_ms();
	CHECK_EQ(read(p[0], buf, sizeof buf), 4);
	CHECK_GE(st_mono_ms() - t0, 40);
	st_wait(pid);
	close(p[0]);
	close(p[1]);
}

CASE(large_write_blocks_until_drained)
{
	int p[2];
	CHECK_OK(pipe(p));
	size_t n = 1 << 20;
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		close(p[0]);
		char *buf = malloc(n);
		memset(buf, 7, n);
		/* One write larger than the pipe: blocks and completes in full. */
		_exit(write(p[1], buf, n) == (ssize_t)n ? 0 : 1);
	}
	close(p[1]);
	char buf[8192];
	size_t total = 0;
	ssize_t r;
	while ((r = read(p[0], buf, sizeof buf)) > 0)
		total += r;
	CHECK_EQ(total, n);
	CHECK_EXITED(st_wait(pid), 0);
	close(p[0]);
}

CASE(fstat_is_fifo)
{
	int p[2];
	CHECK_OK(pipe(p));
	struct stat st;
	CHECK_OK(fstat(p[0], &st));
	CHECK(S_ISFIFO(st.st_mode));
	CHECK_ERR(lseek(p[0], 0, SEEK_SET), ESPIPE);
	CHECK_ERR(pread(p[0], &st, 1, 0), ESPIPE);
	close(p[0]);
	close(p[1]);
}

CASE(named_fifo)
{
	CHECK_OK(mkfifo(P("fifo"), 0644));
	struct stat st;
	CHECK_OK(stat(P("fifo"), &st));
	CHECK(S_ISFIFO(st.st_mode));
	/* Opening for writing without a reader fails with ENXIO when nonblocking. */
	CHECK_ERR(open(P("fifo"), O_WRONLY | O_NONBLOCK), ENXIO);
	int r = CHECK_OK(open(P("fifo"), O_RDONLY | O_NONBLOCK));
	int w = CHECK_OK(open(P("fifo"), O_WRONLY | O_NONBLOCK));
	CHECK_EQ(write(w, "fifo", 4), 4);
	char buf[8] = { 0 };
	CHECK_EQ(read(r, buf, sizeof buf), 4);
	CHECK_STREQ(buf, "fifo");
	close(w);
	CHECK_EQ(read(r, buf, sizeof buf), 0);
	close(r);
}

CASE(fifo_blocking_open_rendezvous)
{
	CHECK_OK(mkfifo(P("fifo"), 0644));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		int w = open(P("fifo"), O_WRONLY);
		if (w < 0)
			_exit(1);
		(void)!write(w, "ok", 2);
		_exit(0);
	}
	int r = CHECK_OK(open(P("fifo"), O_RDONLY));
	char buf[4] = { 0 };
	CHECK_EQ(read(r, buf, sizeof buf), 2);
	CHECK_STREQ(buf, "ok");
	CHECK_EXITED(st_wait(pid), 0);
	close(r);
}

CASE(write_small_is_atomic)
{
	/* Writes of at most PIPE_BUF bytes from several writers never interleave. */
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pids[2];
	for (int k = 0; k < 2; k++) {
		pids[k] = CHECK_OK(fork());
		if (pids[k] == 0) {
			char buf[PIPE_BUF];
			memset(buf, 'A' + k, sizeof buf);
			for (int i = 0; i < 50; i++)
				if (write(p[1], buf, sizeof buf) != sizeof buf)
					_exit(1);
			_exit(0);
		}
	}
	close(p[1]);
	static char all[2 * 50 * PIPE_BUF];
	size_t off = 0;
	ssize_t r;
	while ((r = read(p[0], all + off, sizeof all - off)) > 0)
		off += r;
	CHECK_EQ(off, sizeof all);
	for (size_t i = 0; i < sizeof all; i += PIPE_BUF)
		for (size_t j = 1; j < PIPE_BUF; j++)
			if (all[i + j] != all[i])
				FAIL("interleaved write at %zu", i + j);
	st_wait(pids[0]);
	st_wait(pids[1]);
	close(p[0]);
}

CASE(writev_sigpipe_without_readers)
{
	int p[2];
	CHECK_OK(pipe(p));
	close(p[0]);
	sigpipes = 0;
	st_handle(SIGPIPE, on_sigpipe, 0);
	struct iovec w = { "x", 1 };
	CHECK_ERR(writev(p[1], &w, 1), EPIPE);
	CHECK_EQ(sigpipes, 1);
	close(p[1]);
}

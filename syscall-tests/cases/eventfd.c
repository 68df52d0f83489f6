/* eventfd: counter and semaphore modes, blocking, readiness. */
#include "harness.h"
#include <poll.h>
#include <sys/eventfd.h>

CASE(counter_sums_writes)
{
	int fd = CHECK_OK(eventfd(0, EFD_NONBLOCK));
	uint64_t v = 3;
	CHECK_EQ(write(fd, &v, 8), 8);
	v = 4;
	CHECK_EQ(write(fd, &v, 8), 8);
	v = 0;
	CHECK_EQ(read(fd, &v, 8), 8);
	CHECK_EQ(v, 7);
	CHECK_ERR(read(fd, &v, 8), EAGAIN);
	close(fd);
}

CASE(initial_value)
{
	int fd = CHECK_OK(eventfd(5, 0));
	uint64_t v;
	CHECK_EQ(read(fd, &v, 8), 8);
	CHECK_EQ(v, 5);
	close(fd);
}

CASE(semaphore_mode)
{
	int fd = CHECK_OK(eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK));
	uint64_t v;
	CHECK_EQ(read(fd, &v, 8), 8);
	CHECK_EQ(v, 1);
	CHECK_EQ(read(fd, &v, 8), 8);
	CHECK_EQ(v, 1);
	CHECK_ERR(read(fd, &v, 8), EAGAIN);
	close(fd);
}

CASE(bad_sizes_and_values)
{
	int fd = CHECK_OK(eventfd(0, EFD_NONBLOCK));
	uint32_t small = 1;
	CHECK_ERR(read(fd, &small, 4), EINVAL);
	CHECK_ERR(write(fd, &small, 4), EINVAL);
	uint64_t v = UINT64_MAX;
	CHECK_ERR(write(fd, &v, 8), EINVAL);
	/* A larger read buffer is fine: 8 bytes are transferred. */
	uint64_t big[2] = { 9, 9 };
	CHECK_EQ(write(fd, big, 8), 8);
	CHECK_EQ(read(fd, big, 16), 8);
	CHECK_EQ(big[0], 9);
	close(fd);
	CHECK_ERR(eventfd(0, 0x12345), EINVAL);
}

CASE(overflow_would_block)
{
	int fd = CHECK_OK(eventfd(0, EFD_NONBLOCK));
	uint64_t v = UINT64_MAX - 1;
	CHECK_EQ(write(fd, &v, 8), 8);
	v = 1;
	CHECK_ERR(write(fd, &v, 8), EAGAIN);
	/* Writing zero always succeeds. */
	v = 0;
	CHECK_EQ(write(fd, &v, 8), 8);
	close(fd);
}

CASE(poll_readiness)
{
	int fd = CHECK_OK(eventfd(0, EFD_NONBLOCK));
	struct pollfd pfd = { fd, POLLIN | POLLOUT, 0 };
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLOUT);
	uint64_t v = 1;
	CHECK_EQ(write(fd, &v, 8), 8);
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLIN | POLLOUT);
	close(fd);
}

static void *delayed_signal(void *arg)
{
	int fd = (int)(long)arg;
	st_sleep_ms(30);
	uint64_t v = 42;
	(void)!write(fd, &v, 8);
	return NULL;
}

CASE(blocking_read_wakes_on_write)
{
	int fd = CHECK_OK(eventfd(0, EFD_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, delayed_signal, (void *)(long)fd));
	uint64_t v = 0;
	CHECK_EQ(read(fd, &v, 8), 8);
	CHECK_EQ(v, 42);
	CHECK_PT(pthread_join(t, NULL));
	close(fd);
}

CASE(shared_across_fork)
{
	int fd = CHECK_OK(eventfd(0, 0));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		uint64_t v = 11;
		_exit(write(fd, &v, 8) == 8 ? 0 : 1);
	}
	uint64_t v = 0;
	CHECK_EQ(read(fd, &v, 8), 8);
	CHECK_EQ(v, 11);
	CHECK_EXITED(st_wait(pid), 0);
	close(fd);
}

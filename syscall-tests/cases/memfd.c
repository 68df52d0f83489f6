/* memfd_create, seals, shared memory through memfds. */
#include "harness.h"
#include <sys/mman.h>

CASE(create_write_read)
{
	int fd = CHECK_OK(memfd_create("st-memfd", 0));
	CHECK_EQ(write(fd, "memory", 6), 6);
	char buf[8] = { 0 };
	CHECK_EQ(pread(fd, buf, sizeof buf, 0), 6);
	CHECK_STREQ(buf, "memory");
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_size, 6);
	char link[64], target[128];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = CHECK_OK(readlink(link, target, sizeof target - 1));
	target[n] = 0;
	CHECK_EQ(strncmp(target, "/memfd:st-memfd", 15), 0);
	close(fd);
}

CASE(flags_and_errors)
{
	int fd = CHECK_OK(memfd_create("x", MFD_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	/* Without MFD_ALLOW_SEALING the only seal is F_SEAL_SEAL. */
	CHECK_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
	CHECK_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EPERM);
	close(fd);
	CHECK_ERR(memfd_create("x", 0x1000), EINVAL);
	char longname[300];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	CHECK_ERR(memfd_create(longname, 0), EINVAL);
}

CASE(seal_write)
{
	int fd = CHECK_OK(memfd_create("sealed", MFD_ALLOW_SEALING));
	CHECK_EQ(fcntl(fd, F_GET_SEALS), 0);
	CHECK_EQ(write(fd, "abc", 3), 3);
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
	CHECK_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_WRITE);
	CHECK_ERR(write(fd, "d", 1), EPERM);
	CHECK_ERR((long)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EPERM);
	/* Reading and read-only mappings still work. */
	char *p = CHECK_PTR(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0));
	CHECK_MEMEQ(p, "abc", 3);
	munmap(p, 4096);
	close(fd);
}

CASE(seal_shrink_grow_seal)
{
	int fd = CHECK_OK(memfd_create("sealed", MFD_ALLOW_SEALING));
	CHECK_OK(ftruncate(fd, 8192));
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	CHECK_ERR(ftruncate(fd, 4096), EPERM);
	CHECK_ERR(ftruncate(fd, 16384), EPERM);
	CHECK_OK(ftruncate(fd, 8192));
	CHECK_ERR(pwrite(fd, "x", 1, 8192), EPERM);
	CHECK_EQ(pwrite(fd, "x", 1, 100), 1);
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL));
	CHECK_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EPERM);
	close(fd);
}

CASE(shared_mapping_between_processes)
{
	int fd = CHECK_OK(memfd_create("shm", 0));
	CHECK_OK(ftruncate(fd, 4096));
	volatile char *p = CHECK_PTR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	IN_CHILD({
		volatile char *q = CHECK_PTR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
		q[0] = 'c';
	});
	CHECK_EQ(p[0], 'c');
	char c;
	CHECK_EQ(pread(fd, &c, 1, 0), 1);
	CHECK_EQ(c, 'c');
	close(fd);
}

CASE(two_mappings_alias)
{
	int fd = CHECK_OK(memfd_create("alias", 0));
	CHECK_OK(ftruncate(fd, 4096));
	volatile char *a = CHECK_PTR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	volatile char *b = CHECK_PTR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	CHECK_NE((uintptr_t)a, (uintptr_t)b);
	a[100] = 'q';
	CHECK_EQ(b[100], 'q');
	close(fd);
}

CASE(shm_open_in_dev_shm)
{
	char name[64];
	snprintf(name, sizeof name, "/rvisor-st-%d", getpid());
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 && errno == ENOENT)
		return; /* No /dev/shm on this system. */
	CHECK_GE(fd, 0);
	CHECK_OK(ftruncate(fd, 4096));
	char *p = CHECK_PTR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	strcpy(p, "shm");
	int fd2 = CHECK_OK(shm_open(name, O_RDONLY, 0));
	char buf[4] = { 0 };
	CHECK_EQ(pread(fd2, buf, 3, 0), 3);
	CHECK_STREQ(buf, "shm");
	CHECK_OK(shm_unlink(name));
	CHECK_ERR(shm_open(name, O_RDONLY, 0), ENOENT);
	close(fd);
	close(fd2);
}

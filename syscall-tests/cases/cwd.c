/* chdir, fchdir, getcwd, relative paths, chroot. */
#include "harness.h"

CASE(getcwd_after_chdir)
{
	char real[PATH_MAX];
	CHECK(realpath(st_tmpdir(), real) != NULL);
	CHECK_OK(chdir(st_tmpdir()));
	char buf[PATH_MAX];
	CHECK(getcwd(buf, sizeof buf) != NULL);
	CHECK_STREQ(buf, real);
	/* The raw syscall returns the length including the NUL. */
	CHECK_EQ(syscall(SYS_getcwd, buf, sizeof buf), (long)strlen(real) + 1);
}

CASE(relative_paths_use_cwd)
{
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(chdir(P("d")));
	st_write_file("rel", "relative");
	char buf[16];
	st_read_file(P("d/rel"), buf, sizeof buf);
	CHECK_STREQ(buf, "relative");
	CHECK_OK(chdir(".."));
	st_read_file("d/rel", buf, sizeof buf);
	CHECK_STREQ(buf, "relative");
	int fd = CHECK_OK(openat(AT_FDCWD, "d/rel", O_RDONLY));
	close(fd);
}

CASE(chdir_errors)
{
	st_write_file(P("f"), "x");
	CHECK_ERR(chdir(P("f")), ENOTDIR);
	CHECK_ERR(chdir(P("missing")), ENOENT);
	CHECK_ERR(chdir(""), ENOENT);
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(fchdir(fd), ENOTDIR);
	close(fd);
	CHECK_ERR(fchdir(9999), EBADF);
}

CASE(fchdir_to_directory_fd)
{
	CHECK_OK(mkdir(P("d"), 0755));
	int fd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	CHECK_OK(fchdir(fd));
	close(fd);
	char buf[PATH_MAX], real[PATH_MAX];
	CHECK(realpath(P("d"), real) != NULL);
	CHECK(getcwd(buf, sizeof buf) != NULL);
	CHECK_STREQ(buf, real);
	/* O_PATH descriptors work too. */
	fd = CHECK_OK(open(st_tmpdir(), O_PATH));
	CHECK_OK(fchdir(fd));
	close(fd);
	CHECK(getcwd(buf, sizeof buf) != NULL);
	CHECK(realpath(st_tmpdir(), real) != NULL);
	CHECK_STREQ(buf, real);
}

CASE(getcwd_small_buffer_erange)
{
	CHECK_OK(chdir(st_tmpdir()));
	char buf[4];
	CHECK_ERR(syscall(SYS_getcwd, buf, sizeof buf), ERANGE);
	CHECK_ERR(syscall(SYS_getcwd, buf, 0), ERANGE);
}

CASE(getcwd_of_removed_directory)
{
	CHECK_OK(mkdir(P("gone"), 0755));
	CHECK_OK(chdir(P("gone")));
	CHECK_OK(rmdir(P("gone")));
	char buf[PATH_MAX];
	CHECK_ERR(syscall(SYS_getcwd, buf, sizeof buf), ENOENT);
	/* Creating entries in a removed directory fails. */
	CHECK_ERR(open("x", O_CREAT | O_WRONLY, 0644), ENOENT);
	CHECK_OK(chdir("/"));
}

CASE(cwd_is_per_process)
{
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(chdir(st_tmpdir()));
	IN_CHILD({
		CHECK_OK(chdir("d"));
	});
	char buf[PATH_MAX], real[PATH_MAX];
	CHECK(getcwd(buf, sizeof buf) != NULL);
	CHECK(realpath(st_tmpdir(), real) != NULL);
	CHECK_STREQ(buf, real);
}

static void *chdir_thread(void *arg)
{
	return (void *)(long)chdir((const char *)arg);
}

CASE(cwd_is_shared_by_threads)
{
	CHECK_OK(mkdir(P("d"), 0755));
	pthread_t t;
	CHECK_PT(pthread_create(&t, NULL, chdir_thread, P("d")));
	void *r;
	CHECK_PT(pthread_join(t, &r));
	CHECK_EQ((long)r, 0);
	char buf[PATH_MAX], real[PATH_MAX];
	CHECK(getcwd(buf, sizeof buf) != NULL);
	CHECK(realpath(P("d"), real) != NULL);
	CHECK_STREQ(buf, real);
}

CASE(chdir_through_symlink)
{
	CHECK_OK(mkdir(P("real"), 0755));
	CHECK_OK(symlink("real", P("link")));
	CHECK_OK(chdir(P("link")));
	char buf[PATH_MAX], real[PATH_MAX];
	CHECK(getcwd(buf, sizeof buf) != NULL);
	CHECK(realpath(P("real"), real) != NULL);
	/* The kernel's cwd is the resolved directory. */
	CHECK_STREQ(buf, real);
}

CASE(chroot_changes_root)
{
	if (!st_is_root())
		return;
	CHECK_OK(mkdir(P("root"), 0755));
	CHECK_OK(mkdir(P("root/sub"), 0755));
	st_write_file(P("root/sub/f"), "jailed");
	IN_CHILD({
		CHECK_OK(chroot(P("root")));
		CHECK_OK(chdir("/"));
		char buf[16];
		st_read_file("/sub/f", buf, sizeof buf);
		CHECK_STREQ(buf, "jailed");
		/* ".." at the new root stays there. */
		st_read_file("/../../sub/f", buf, sizeof buf);
		CHECK_STREQ(buf, "jailed");
		char cwd[64];
		CHECK(getcwd(cwd, sizeof cwd) != NULL);
		CHECK_STREQ(cwd, "/");
	});
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(chroot(P("root")), EPERM);
	});
}

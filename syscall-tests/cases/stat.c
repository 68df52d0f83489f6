/* stat, fstat, lstat, fstatat, statx, utimensat, statfs. */
#include "harness.h"
#include <sys/statfs.h>
#include <sys/sysmacros.h>

CASE(stat_regular_file)
{
	umask(022);
	st_write_file(P("f"), "0123456789");
	struct stat st;
	CHECK_OK(stat(P("f"), &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0644);
	CHECK_EQ(st.st_size, 10);
	CHECK_EQ(st.st_nlink, 1);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK_EQ(st.st_gid, getegid());
	CHECK_GT(st.st_blksize, 0);
	CHECK_NE(st.st_ino, 0);
}

CASE(fstat_matches_stat)
{
	st_write_file(P("f"), "abc");
	struct stat a, b;
	CHECK_OK(stat(P("f"), &a));
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_OK(fstat(fd, &b));
	CHECK_EQ(a.st_ino, b.st_ino);
	CHECK_EQ(a.st_dev, b.st_dev);
	CHECK_EQ(a.st_size, b.st_size);
	CHECK_EQ(a.st_mode, b.st_mode);
	close(fd);
}

CASE(distinct_files_distinct_inodes)
{
	st_write_file(P("a"), "1");
	st_write_file(P("b"), "2");
	struct stat a, b;
	CHECK_OK(stat(P("a"), &a));
	CHECK_OK(stat(P("b"), &b));
	CHECK_EQ(a.st_dev, b.st_dev);
	CHECK_NE(a.st_ino, b.st_ino);
}

CASE(lstat_symlink)
{
	st_write_file(P("target"), "0123456789");
	CHECK_OK(symlink("target", P("link")));
	struct stat st;
	CHECK_OK(lstat(P("link"), &st));
	CHECK(S_ISLNK(st.st_mode));
	CHECK_EQ(st.st_size, 6);
	CHECK_OK(stat(P("link"), &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_size, 10);
}

CASE(stat_directory)
{
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(mkdir(P("d/sub"), 0755));
	struct stat st;
	CHECK_OK(stat(P("d"), &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0755);
	/* ".", its entry in the parent, and "sub/.." */
	CHECK_EQ(st.st_nlink, 3);
}

CASE(stat_errors)
{
	struct stat st;
	st_write_file(P("f"), "x");
	CHECK_ERR(stat(P("missing"), &st), ENOENT);
	CHECK_ERR(stat(P("f/x"), &st), ENOTDIR);
	CHECK_ERR(stat("", &st), ENOENT);
	CHECK_ERR(fstat(-1, &st), EBADF);
	CHECK_ERR(stat(P("f"), (struct stat *)8), EFAULT);
}

CASE(fstatat_variants)
{
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("d/f"), "abcd");
	CHECK_OK(symlink("f", P("d/l")));
	int dfd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	struct stat st;
	CHECK_OK(fstatat(dfd, "f", &st, 0));
	CHECK_EQ(st.st_size, 4);
	CHECK_OK(fstatat(dfd, "l", &st, AT_SYMLINK_NOFOLLOW));
	CHECK(S_ISLNK(st.st_mode));
	CHECK_OK(fstatat(dfd, "l", &st, 0));
	CHECK(S_ISREG(st.st_mode));
	CHECK_OK(fstatat(dfd, "", &st, AT_EMPTY_PATH));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_ERR(fstatat(dfd, "", &st, 0), ENOENT);
	CHECK_ERR(fstatat(dfd, "f", &st, 0x12345678), EINVAL);
	close(dfd);
}

CASE(statx_basic)
{
	st_write_file(P("f"), "hello");
	struct statx sx;
	memset(&sx, 0xff, sizeof sx);
	CHECK_OK(statx(AT_FDCWD, P("f"), 0, STATX_BASIC_STATS, &sx));
	CHECK_EQ(sx.stx_mask & (STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_INO | STATX_NLINK),
		 STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_INO | STATX_NLINK);
	CHECK_EQ(sx.stx_size, 5);
	CHECK(S_ISREG(sx.stx_mode));
	CHECK_EQ(sx.stx_nlink, 1);
	struct stat st;
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(sx.stx_ino, st.st_ino);
	CHECK_EQ(sx.stx_mtime.tv_sec, st.st_mtim.tv_sec);
	CHECK_EQ(sx.stx_mtime.tv_nsec, st.st_mtim.tv_nsec);
}

CASE(utimensat_sets_times)
{
	st_write_file(P("f"), "x");
	struct timespec ts[2] = { { 1000000000, 123456789 }, { 1200000000, 987654321 } };
	CHECK_OK(utimensat(AT_FDCWD, P("f"), ts, 0));
	struct stat st;
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(st.st_atim.tv_sec, 1000000000);
	CHECK_EQ(st.st_atim.tv_nsec, 123456789);
	CHECK_EQ(st.st_mtim.tv_sec, 1200000000);
	CHECK_EQ(st.st_mtim.tv_nsec, 987654321);
	/* UTIME_OMIT leaves a time alone; UTIME_NOW sets it to now. */
	struct timespec ts2[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };
	CHECK_OK(utimensat(AT_FDCWD, P("f"), ts2, 0));
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(st.st_atim.tv_sec, 1000000000);
	CHECK_GE(st.st_mtim.tv_sec, time(NULL) - 5);
	struct timespec bad[2] = { { 0, 1000000000 }, { 0, 0 } };
	CHECK_ERR(utimensat(AT_FDCWD, P("f"), bad, 0), EINVAL);
}

CASE(write_updates_mtime)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	CHECK_OK(futimens(fd, old));
	CHECK_EQ(write(fd, "x", 1), 1);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000);
	CHECK_GT(st.st_ctim.tv_sec, 1000);
	close(fd);
}

CASE(dev_null_is_char_device)
{
	struct stat st;
	CHECK_OK(stat("/dev/null", &st));
	CHECK(S_ISCHR(st.st_mode));
	CHECK_EQ(major(st.st_rdev), 1);
	CHECK_EQ(minor(st.st_rdev), 3);
}

CASE(statfs_tmp)
{
	struct statfs sf;
	CHECK_OK(statfs(st_tmpdir(), &sf));
	CHECK_GT(sf.f_bsize, 0);
	CHECK_GT(sf.f_namelen, 0);
	int fd = CHECK_OK(open(st_tmpdir(), O_RDONLY));
	struct statfs sf2;
	CHECK_OK(fstatfs(fd, &sf2));
	CHECK_EQ(sf.f_type, sf2.f_type);
	close(fd);
	CHECK_ERR(statfs(P("missing"), &sf), ENOENT);
}

CASE(size_tracks_writes)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	struct stat st;
	for (int i = 1; i <= 5; i++) {
		CHECK_EQ(write(fd, "abc", 3), 3);
		CHECK_OK(fstat(fd, &st));
		CHECK_EQ(st.st_size, 3 * i);
	}
	close(fd);
}

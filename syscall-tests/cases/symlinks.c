/* symlink, readlink, following and not following links in path walks. */
#include "harness.h"

CASE(symlink_readlink)
{
	CHECK_OK(symlink("some/target/path", P("l")));
	char buf[64];
	memset(buf, 'X', sizeof buf);
	CHECK_EQ(readlink(P("l"), buf, sizeof buf), 16);
	/* readlink does not NUL-terminate. */
	CHECK_EQ(buf[16], 'X');
	CHECK_MEMEQ(buf, "some/target/path", 16);
}

CASE(readlink_truncates)
{
	CHECK_OK(symlink("0123456789", P("l")));
	char buf[4];
	CHECK_EQ(readlink(P("l"), buf, 4), 4);
	CHECK_MEMEQ(buf, "0123", 4);
	CHECK_ERR(readlink(P("l"), buf, 0), EINVAL);
}

CASE(readlink_errors)
{
	st_write_file(P("f"), "x");
	char buf[16];
	CHECK_ERR(readlink(P("f"), buf, sizeof buf), EINVAL);
	CHECK_ERR(readlink(P("missing"), buf, sizeof buf), ENOENT);
	CHECK_ERR(readlink(st_tmpdir(), buf, sizeof buf), EINVAL);
}

CASE(open_follows_symlink)
{
	st_write_file(P("target"), "through the link");
	CHECK_OK(symlink("target", P("l")));
	char buf[64];
	CHECK_EQ(st_read_file(P("l"), buf, sizeof buf), 16);
	CHECK_STREQ(buf, "through the link");
	/* Writing through the link writes the target. */
	st_write_file(P("l"), "new");
	st_read_file(P("target"), buf, sizeof buf);
	CHECK_STREQ(buf, "new");
}

CASE(o_nofollow_eloop)
{
	st_write_file(P("target"), "x");
	CHECK_OK(symlink("target", P("l")));
	CHECK_ERR(open(P("l"), O_RDONLY | O_NOFOLLOW), ELOOP);
	/* O_NOFOLLOW only applies to the last component. */
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("d/f"), "y");
	CHECK_OK(symlink("d", P("dl")));
	int fd = CHECK_OK(open(P("dl/f"), O_RDONLY | O_NOFOLLOW));
	close(fd);
}

CASE(symlink_loop_eloop)
{
	CHECK_OK(symlink("b", P("a")));
	CHECK_OK(symlink("a", P("b")));
	CHECK_ERR(open(P("a"), O_RDONLY), ELOOP);
	struct stat st;
	CHECK_ERR(stat(P("a"), &st), ELOOP);
	CHECK_OK(lstat(P("a"), &st));
	CHECK_OK(symlink("self", P("self")));
	CHECK_ERR(open(P("self/x"), O_RDONLY), ELOOP);
}

CASE(dangling_symlink)
{
	CHECK_OK(symlink("nowhere", P("l")));
	struct stat st;
	CHECK_ERR(stat(P("l"), &st), ENOENT);
	CHECK_OK(lstat(P("l"), &st));
	CHECK(S_ISLNK(st.st_mode));
	/* O_CREAT through a dangling link creates the target. */
	int fd = CHECK_OK(open(P("l"), O_WRONLY | O_CREAT, 0644));
	close(fd);
	CHECK_OK(stat(P("nowhere"), &st));
	CHECK(S_ISREG(st.st_mode));
}

CASE(o_creat_excl_on_symlink_eexist)
{
	CHECK_OK(symlink("nowhere", P("l")));
	CHECK_ERR(open(P("l"), O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
	struct stat st;
	CHECK_ERR(stat(P("nowhere"), &st), ENOENT);
}

CASE(symlink_existing_eexist)
{
	st_write_file(P("f"), "x");
	CHECK_ERR(symlink("anything", P("f")), EEXIST);
	CHECK_ERR(symlink("anything", P("missing/l")), ENOENT);
	CHECK_ERR(symlink("", P("empty")), ENOENT);
}

CASE(relative_target_resolves_from_link_dir)
{
	CHECK_OK(mkdir(P("a"), 0755));
	CHECK_OK(mkdir(P("b"), 0755));
	st_write_file(P("b/target"), "in b");
	CHECK_OK(symlink("../b/target", P("a/l")));
	char buf[16];
	st_read_file(P("a/l"), buf, sizeof buf);
	CHECK_STREQ(buf, "in b");
}

CASE(absolute_target)
{
	st_write_file(P("target"), "abs");
	CHECK_OK(symlink(P("target"), P("l")));
	char buf[16];
	st_read_file(P("l"), buf, sizeof buf);
	CHECK_STREQ(buf, "abs");
}

CASE(symlink_to_directory_in_path)
{
	CHECK_OK(mkdir(P("real"), 0755));
	st_write_file(P("real/f"), "inside");
	CHECK_OK(symlink("real", P("dl")));
	char buf[16];
	st_read_file(P("dl/f"), buf, sizeof buf);
	CHECK_STREQ(buf, "inside");
	/* ".." after a symlinked directory goes to the real directory's parent. */
	CHECK_OK(mkdir(P("real/sub"), 0755));
	CHECK_OK(symlink("real/sub", P("sl")));
	st_read_file(P("sl/../f"), buf, sizeof buf);
	CHECK_STREQ(buf, "inside");
	/* A trailing slash forces following. */
	struct stat st;
	CHECK_OK(lstat(P("dl/"), &st));
	CHECK(S_ISDIR(st.st_mode));
}

CASE(unlink_removes_link_not_target)
{
	st_write_file(P("target"), "x");
	CHECK_OK(symlink("target", P("l")));
	CHECK_OK(unlink(P("l")));
	struct stat st;
	CHECK_ERR(lstat(P("l"), &st), ENOENT);
	CHECK_OK(stat(P("target"), &st));
}

CASE(readlinkat_and_symlinkat)
{
	CHECK_OK(mkdir(P("d"), 0755));
	int dfd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	CHECK_OK(symlinkat("tgt", dfd, "l"));
	char buf[16];
	CHECK_EQ(readlinkat(dfd, "l", buf, sizeof buf), 3);
	CHECK_MEMEQ(buf, "tgt", 3);
	close(dfd);
}

CASE(o_path_nofollow_on_symlink)
{
	CHECK_OK(symlink("target", P("l")));
	int fd = CHECK_OK(open(P("l"), O_PATH | O_NOFOLLOW));
	struct stat st;
	CHECK_OK(fstatat(fd, "", &st, AT_EMPTY_PATH));
	CHECK(S_ISLNK(st.st_mode));
	char buf[16];
	CHECK_EQ(readlinkat(fd, "", buf, sizeof buf), 6);
	CHECK_MEMEQ(buf, "target", 6);
	/* O_PATH descriptors cannot be read. */
	CHECK_ERR(read(fd, buf, 1), EBADF);
	close(fd);
}

CASE(lchown_and_fchownat_nofollow)
{
	st_write_file(P("target"), "x");
	CHECK_OK(symlink("target", P("l")));
	CHECK_OK(lchown(P("l"), geteuid(), getegid()));
	CHECK_OK(fchownat(AT_FDCWD, P("l"), geteuid(), getegid(), AT_SYMLINK_NOFOLLOW));
	struct stat st;
	CHECK_OK(lstat(P("l"), &st));
	CHECK_EQ(st.st_uid, geteuid());
}

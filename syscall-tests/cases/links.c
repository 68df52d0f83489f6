/* link, unlink, rename, renameat2. */
#include "harness.h"
#include <linux/fs.h>

static nlink_t nlink_of(const char *p)
{
	struct stat st;
	if (stat(p, &st) != 0)
		FAIL("stat(%s): %s", p, st_errname(errno));
	return st.st_nlink;
}

static void expect_content(const char *p, const char *want)
{
	char buf[256];
	st_read_file(p, buf, sizeof buf);
	if (strcmp(buf, want) != 0)
		FAIL("%s contains \"%s\", expected \"%s\"", p, buf, want);
}

CASE(link_shares_inode)
{
	st_write_file(P("a"), "data");
	CHECK_OK(link(P("a"), P("b")));
	CHECK_EQ(nlink_of(P("a")), 2);
	struct stat sa, sb;
	CHECK_OK(stat(P("a"), &sa));
	CHECK_OK(stat(P("b"), &sb));
	CHECK_EQ(sa.st_ino, sb.st_ino);
	/* A write through one name is seen through the other. */
	st_write_file(P("a"), "new");
	expect_content(P("b"), "new");
	CHECK_OK(unlink(P("a")));
	CHECK_EQ(nlink_of(P("b")), 1);
	expect_content(P("b"), "new");
}

CASE(link_errors)
{
	st_write_file(P("a"), "x");
	st_write_file(P("b"), "y");
	CHECK_ERR(link(P("a"), P("b")), EEXIST);
	CHECK_ERR(link(P("missing"), P("c")), ENOENT);
	CHECK_ERR(link(P("a"), P("nodir/c")), ENOENT);
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_ERR(link(P("d"), P("d2")), EPERM);
}

CASE(unlink_errors)
{
	CHECK_ERR(unlink(P("missing")), ENOENT);
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_ERR(unlink(P("d")), EISDIR);
	st_write_file(P("f"), "x");
	CHECK_ERR(unlink(P("f/x")), ENOTDIR);
}

CASE(unlinked_open_file_stays_usable)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(write(fd, "abc", 3), 3);
	CHECK_OK(unlink(P("f")));
	struct stat st;
	CHECK_ERR(stat(P("f"), &st), ENOENT);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_nlink, 0);
	CHECK_EQ(write(fd, "de", 2), 2);
	char buf[8] = { 0 };
	CHECK_EQ(pread(fd, buf, sizeof buf, 0), 5);
	CHECK_STREQ(buf, "abcde");
	/* The name can be reused for a new, different file. */
	st_write_file(P("f"), "zz");
	expect_content(P("f"), "zz");
	close(fd);
}

CASE(rename_file_replaces_target)
{
	st_write_file(P("a"), "from-a");
	st_write_file(P("b"), "from-b");
	struct stat sa;
	CHECK_OK(stat(P("a"), &sa));
	CHECK_OK(rename(P("a"), P("b")));
	struct stat st;
	CHECK_ERR(stat(P("a"), &st), ENOENT);
	CHECK_OK(stat(P("b"), &st));
	CHECK_EQ(st.st_ino, sa.st_ino);
	expect_content(P("b"), "from-a");
}

CASE(rename_keeps_open_fd_valid)
{
	st_write_file(P("a"), "content");
	int fd = CHECK_OK(open(P("a"), O_RDONLY));
	CHECK_OK(rename(P("a"), P("b")));
	char buf[16] = { 0 };
	CHECK_EQ(read(fd, buf, sizeof buf), 7);
	CHECK_STREQ(buf, "content");
	close(fd);
}

CASE(rename_across_directories)
{
	CHECK_OK(mkdir(P("d1"), 0755));
	CHECK_OK(mkdir(P("d2"), 0755));
	st_write_file(P("d1/f"), "moved");
	CHECK_OK(rename(P("d1/f"), P("d2/g")));
	expect_content(P("d2/g"), "moved");
	CHECK_OK(mkdir(P("d1/sub"), 0755));
	CHECK_OK(rename(P("d1/sub"), P("d2/sub")));
	CHECK_EQ(nlink_of(P("d1")), 2);
	CHECK_EQ(nlink_of(P("d2")), 3);
	struct stat a, b;
	CHECK_OK(stat(P("d2/sub/.."), &a));
	CHECK_OK(stat(P("d2"), &b));
	CHECK_EQ(a.st_ino, b.st_ino);
}

CASE(rename_dir_onto_nonempty_enotempty)
{
	CHECK_OK(mkdir(P("a"), 0755));
	CHECK_OK(mkdir(P("b"), 0755));
	st_write_file(P("b/f"), "x");
	CHECK_ERR(rename(P("a"), P("b")), ENOTEMPTY);
	/* Both are unchanged. */
	expect_content(P("b/f"), "x");
	struct stat st;
	CHECK_OK(stat(P("a"), &st));
}

CASE(rename_dir_onto_empty_dir)
{
	CHECK_OK(mkdir(P("a"), 0755));
	st_write_file(P("a/f"), "x");
	CHECK_OK(mkdir(P("b"), 0755));
	CHECK_OK(rename(P("a"), P("b")));
	expect_content(P("b/f"), "x");
	struct stat st;
	CHECK_ERR(stat(P("a"), &st), ENOENT);
}

CASE(rename_type_mismatch)
{
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("f"), "x");
	CHECK_ERR(rename(P("f"), P("d")), EISDIR);
	CHECK_ERR(rename(P("d"), P("f")), ENOTDIR);
	CHECK_ERR(rename(P("missing"), P("g")), ENOENT);
}

CASE(rename_into_own_subdir_einval)
{
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(mkdir(P("d/sub"), 0755));
	CHECK_ERR(rename(P("d"), P("d/sub/x")), EINVAL);
	CHECK_ERR(rename(P("d"), P("d/x")), EINVAL);
}

CASE(rename_to_itself_is_noop)
{
	st_write_file(P("a"), "x");
	CHECK_OK(rename(P("a"), P("a")));
	expect_content(P("a"), "x");
	/* Two hard links to the same inode: rename does nothing, both names stay. */
	CHECK_OK(link(P("a"), P("b")));
	CHECK_OK(rename(P("a"), P("b")));
	struct stat st;
	CHECK_OK(stat(P("a"), &st));
	CHECK_OK(stat(P("b"), &st));
	CHECK_EQ(st.st_nlink, 2);
}

CASE(renameat2_noreplace)
{
	st_write_file(P("a"), "a");
	st_write_file(P("b"), "b");
	CHECK_ERR(renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("b"), RENAME_NOREPLACE), EEXIST);
	expect_content(P("b"), "b");
	CHECK_OK(renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("c"), RENAME_NOREPLACE));
	expect_content(P("c"), "a");
}

CASE(renameat2_exchange)
{
	st_write_file(P("a"), "first");
	CHECK_OK(mkdir(P("b"), 0755));
	CHECK_OK(renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("b"), RENAME_EXCHANGE));
	expect_content(P("b"), "first");
	struct stat st;
	CHECK_OK(stat(P("a"), &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_ERR(renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("missing"), RENAME_EXCHANGE), ENOENT);
	CHECK_ERR(renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("b"), RENAME_EXCHANGE | RENAME_NOREPLACE),
		  EINVAL);
}

CASE(linkat_and_unlinkat_with_dirfds)
{
	CHECK_OK(mkdir(P("d1"), 0755));
	CHECK_OK(mkdir(P("d2"), 0755));
	st_write_file(P("d1/f"), "x");
	int d1 = CHECK_OK(open(P("d1"), O_RDONLY | O_DIRECTORY));
	int d2 = CHECK_OK(open(P("d2"), O_RDONLY | O_DIRECTORY));
	CHECK_OK(linkat(d1, "f", d2, "g", 0));
	CHECK_EQ(nlink_of(P("d1/f")), 2);
	CHECK_OK(renameat(d2, "g", d1, "h"));
	CHECK_OK(unlinkat(d1, "h", 0));
	CHECK_EQ(nlink_of(P("d1/f")), 1);
	CHECK_ERR(unlinkat(d1, "f", 0x4000), EINVAL);
	close(d1);
	close(d2);
}

/* xattr: extended attributes in the user. namespace (set/get/list/remove, flags, limits). */
#include "harness.h"

#include <sys/xattr.h>

/* Counts the user.* names in a listxattr buffer and checks that `want` is among them. */
static int list_has(const char *list, ssize_t len, const char *want, int *nuser)
{
	int found = 0;
	*nuser = 0;
	for (ssize_t off = 0; off < len;) {
		const char *name = list + off;
		size_t n = strnlen(name, len - off);
		if (n == (size_t)(len - off))
			FAIL("listxattr: name not NUL-terminated at offset %zd", off);
		if (strncmp(name, "user.", 5) == 0)
			(*nuser)++;
		if (strcmp(name, want) == 0)
			found = 1;
		off += n + 1;
	}
	return found;
}

CASE(set_get_roundtrip)
{
	st_write_file(P("f"), "data");
	CHECK_EQ(setxattr(P("f"), "user.greeting", "hello", 5, 0), 0);
	/* Size 0 asks for the value's length. */
	CHECK_EQ(getxattr(P("f"), "user.greeting", NULL, 0), 5);
	char buf[32] = { 0 };
	CHECK_EQ(getxattr(P("f"), "user.greeting", buf, sizeof buf), 5);
	CHECK_MEMEQ(buf, "hello", 5);
	/* Values are binary: embedded NULs are kept. */
	CHECK_EQ(setxattr(P("f"), "user.bin", "a\0b\0", 4, 0), 0);
	memset(buf, 0x55, sizeof buf);
	CHECK_EQ(getxattr(P("f"), "user.bin", buf, sizeof buf), 4);
	CHECK_MEMEQ(buf, "a\0b\0", 4);
	/* An empty value is allowed. */
	CHECK_EQ(setxattr(P("f"), "user.empty", "", 0, 0), 0);
	CHECK_EQ(getxattr(P("f"), "user.empty", buf, sizeof buf), 0);
	/* The file's contents are untouched. */
	st_read_file(P("f"), buf, sizeof buf);
	CHECK_STREQ(buf, "data");
}

CASE(create_and_replace_flags)
{
	st_write_file(P("f"), "");
	CHECK_ERR(setxattr(P("f"), "user.k", "v1", 2, XATTR_REPLACE), ENODATA);
	CHECK_EQ(setxattr(P("f"), "user.k", "v1", 2, XATTR_CREATE), 0);
	CHECK_ERR(setxattr(P("f"), "user.k", "v2", 2, XATTR_CREATE), EEXIST);
	char buf[8] = { 0 };
	CHECK_EQ(getxattr(P("f"), "user.k", buf, sizeof buf), 2);
	CHECK_MEMEQ(buf, "v1", 2);
	CHECK_EQ(setxattr(P("f"), "user.k", "value3", 6, XATTR_REPLACE), 0);
	CHECK_EQ(getxattr(P("f"), "user.k", buf, sizeof buf), 6);
	CHECK_MEMEQ(buf, "value3", 6);
	/* Flags 0 replaces too, and may shrink the value. */
	CHECK_EQ(setxattr(P("f"), "user.k", "x", 1, 0), 0);
	CHECK_EQ(getxattr(P("f"), "user.k", NULL, 0), 1);
	CHECK_ERR(setxattr(P("f"), "user.k", "x", 1, XATTR_CREATE | XATTR_REPLACE | 4), EINVAL);
}

CASE(get_errors)
{
	st_write_file(P("f"), "");
	CHECK_ERR(getxattr(P("f"), "user.missing", NULL, 0), ENODATA);
	CHECK_ERR(getxattr(P("nofile"), "user.x", NULL, 0), ENOENT);
	CHECK_EQ(setxattr(P("f"), "user.long", "0123456789", 10, 0), 0);
	char buf[16];
	/* A buffer that is too small fails with ERANGE. */
	CHECK_ERR(getxattr(P("f"), "user.long", buf, 9), ERANGE);
	CHECK_EQ(getxattr(P("f"), "user.long", buf, 10), 10);
	/* Unknown namespaces are not supported; an empty name is out of range. */
	CHECK_ERR(setxattr(P("f"), "bogus.name", "v", 1, 0), EOPNOTSUPP);
	CHECK_ERR(getxattr(P("f"), "bogus.name", buf, sizeof buf), EOPNOTSUPP);
	CHECK_ERR(setxattr(P("f"), "", "v", 1, 0), ERANGE);
	/* Names longer than XATTR_NAME_MAX (255) are out of range. */
	char name[300];
	memset(name, 'a', sizeof name);
	memcpy(name, "user.", 5);
	name[299] = 0;
	CHECK_ERR(setxattr(P("f"), name, "v", 1, 0), ERANGE);
	CHECK_ERR(getxattr(P("f"), name, buf, sizeof buf), ERANGE);
	/* Values larger than XATTR_SIZE_MAX (64 KiB) are too big. */
	size_t big = 65537;
	char *v = calloc(1, big);
	CHECK_ERR(setxattr(P("f"), "user.big", v, big, 0), E2BIG);
	free(v);
}

CASE(list_names)
{
	st_write_file(P("f"), "");
	char list[1024];
	int nuser;
	ssize_t base = CHECK_OK(listxattr(P("f"), list, sizeof list));
	list_has(list, base, "", &nuser);
	CHECK_EQ(nuser, 0);
	CHECK_EQ(setxattr(P("f"), "user.alpha", "1", 1, 0), 0);
	CHECK_EQ(setxattr(P("f"), "user.beta", "22", 2, 0), 0);
	/* Size 0 returns the length the list needs. */
	ssize_t need = CHECK_OK(listxattr(P("f"), NULL, 0));
	CHECK_EQ(need, base + (ssize_t)sizeof "user.alpha" + (ssize_t)sizeof "user.beta");
	CHECK_ERR(listxattr(P("f"), list, need - 1), ERANGE);
	CHECK_EQ(listxattr(P("f"), list, sizeof list), need);
	CHECK_EQ(list_has(list, need, "user.alpha", &nuser), 1);
	CHECK_EQ(list_has(list, need, "user.beta", &nuser), 1);
	CHECK_EQ(nuser, 2);
}

CASE(remove)
{
	st_write_file(P("f"), "");
	CHECK_EQ(setxattr(P("f"), "user.a", "1", 1, 0), 0);
	CHECK_EQ(setxattr(P("f"), "user.b", "2", 1, 0), 0);
	CHECK_EQ(removexattr(P("f"), "user.a"), 0);
	CHECK_ERR(getxattr(P("f"), "user.a", NULL, 0), ENODATA);
	CHECK_ERR(removexattr(P("f"), "user.a"), ENODATA);
	CHECK_EQ(getxattr(P("f"), "user.b", NULL, 0), 1);
	char list[256];
	int nuser;
	ssize_t n = CHECK_OK(listxattr(P("f"), list, sizeof list));
	CHECK_EQ(list_has(list, n, "user.a", &nuser), 0);
	CHECK_EQ(list_has(list, n, "user.b", &nuser), 1);
	CHECK_EQ(nuser, 1);
	/* After a remove, XATTR_CREATE works again. */
	CHECK_EQ(setxattr(P("f"), "user.a", "3", 1, XATTR_CREATE), 0);
}

CASE(fd_variants)
{
	int fd = CHECK_OK(open(P("f"), O_RDWR | O_CREAT, 0644));
	CHECK_EQ(fsetxattr(fd, "user.fd", "via-fd", 6, 0), 0);
	char buf[16] = { 0 };
	CHECK_EQ(fgetxattr(fd, "user.fd", buf, sizeof buf), 6);
	CHECK_MEMEQ(buf, "via-fd", 6);
	/* The same attribute through the path. */
	CHECK_EQ(getxattr(P("f"), "user.fd", buf, sizeof buf), 6);
	char list[256];
	int nuser;
	ssize_t n = CHECK_OK(flistxattr(fd, list, sizeof list));
	CHECK_EQ(list_has(list, n, "user.fd", &nuser), 1);
	CHECK_EQ(fremovexattr(fd, "user.fd"), 0);
	CHECK_ERR(fgetxattr(fd, "user.fd", buf, sizeof buf), ENODATA);
	/* An O_RDONLY descriptor is enough to set attributes of one's own file. */
	int ro = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_EQ(fsetxattr(ro, "user.ro", "1", 1, 0), 0);
	close(ro);
	close(fd);
	CHECK_ERR(fgetxattr(fd, "user.ro", buf, sizeof buf), EBADF);
}

CASE(symlinks_and_directories)
{
	st_write_file(P("target"), "");
	CHECK_OK(symlink("target", P("link")));
	/* getxattr/setxattr follow the link; l* variants act on the link itself. */
	CHECK_EQ(setxattr(P("link"), "user.t", "T", 1, 0), 0);
	char buf[8];
	CHECK_EQ(getxattr(P("target"), "user.t", buf, sizeof buf), 1);
	CHECK_ERR(lgetxattr(P("link"), "user.t", buf, sizeof buf), ENODATA);
	/* user.* attributes are not permitted on symbolic links. */
	CHECK_ERR(lsetxattr(P("link"), "user.t", "L", 1, 0), EPERM);
	/* Directories can carry them. */
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_EQ(setxattr(P("d"), "user.dir", "D", 1, 0), 0);
	CHECK_EQ(getxattr(P("d"), "user.dir", buf, sizeof buf), 1);
	CHECK_EQ(buf[0], 'D');
}

CASE(attributes_belong_to_the_inode)
{
	st_write_file(P("f"), "");
	CHECK_EQ(setxattr(P("f"), "user.x", "42", 2, 0), 0);
	/* A hard link shares them, a rename keeps them. */
	CHECK_OK(link(P("f"), P("hard")));
	char buf[8];
	CHECK_EQ(getxattr(P("hard"), "user.x", buf, sizeof buf), 2);
	CHECK_OK(rename(P("f"), P("renamed")));
	CHECK_EQ(getxattr(P("renamed"), "user.x", buf, sizeof buf), 2);
	CHECK_MEMEQ(buf, "42", 2);
	/* A changed value is seen through the other name. */
	CHECK_EQ(setxattr(P("hard"), "user.x", "7", 1, 0), 0);
	CHECK_EQ(getxattr(P("renamed"), "user.x", buf, sizeof buf), 1);
	CHECK_EQ(buf[0], '7');
	/* A new file with the old name starts with none. */
	st_write_file(P("f"), "");
	CHECK_ERR(getxattr(P("f"), "user.x", buf, sizeof buf), ENODATA);
}

CASE(setxattr_updates_ctime)
{
	st_write_file(P("f"), "");
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	CHECK_OK(utimensat(AT_FDCWD, P("f"), old, 0));
	struct stat before, after;
	CHECK_OK(stat(P("f"), &before));
	st_sleep_ms(20);
	CHECK_EQ(setxattr(P("f"), "user.c", "c", 1, 0), 0);
	CHECK_OK(stat(P("f"), &after));
	/* ctime changes; mtime does not. */
	CHECK(after.st_ctim.tv_sec > before.st_ctim.tv_sec ||
	      (after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
	       after.st_ctim.tv_nsec > before.st_ctim.tv_nsec));
	CHECK_EQ(after.st_mtim.tv_sec, 1000000000);
}

CASE(unprivileged_needs_write_permission)
{
	/* Setting a user.* attribute needs write permission on the file; reading needs
	 * read permission. */
	st_write_file(P("ro"), "");
	CHECK_OK(chmod(P("ro"), 0444));
	st_write_file(P("none"), "");
	CHECK_EQ(setxattr(P("none"), "user.s", "s", 1, 0), 0);
	CHECK_OK(chmod(P("none"), 0));
	if (st_is_root()) {
		/* Owned by root: the unprivileged user is "other". */
		IN_CHILD({
			st_drop_privileges();
			char b[4];
			CHECK_ERR(setxattr(P("ro"), "user.s", "s", 1, 0), EACCES);
			CHECK_ERR(getxattr(P("none"), "user.s", b, sizeof b), EACCES);
		});
	} else {
		char b[4];
		CHECK_ERR(setxattr(P("ro"), "user.s", "s", 1, 0), EACCES);
		CHECK_ERR(getxattr(P("none"), "user.s", b, sizeof b), EACCES);
	}
}

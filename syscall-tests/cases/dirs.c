/* mkdir, rmdir, getdents64, readdir. */
#include "harness.h"

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Lists a directory with raw getdents64 using a buffer of bufsize bytes; returns
 * the number of entries and fills names (newline separated) and types. */
static int list_dir(const char *path, size_t bufsize, char names[][64], unsigned char *types, int max)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		FAIL("open(%s): %s", path, st_errname(errno));
	char *buf = malloc(bufsize);
	int n = 0;
	for (;;) {
		long r = syscall(SYS_getdents64, fd, buf, bufsize);
		if (r < 0)
			FAIL("getdents64: %s", st_errname(errno));
		if (r == 0)
			break;
		for (long off = 0; off < r;) {
			struct linux_dirent64 *d = (void *)(buf + off);
			if (d->d_reclen == 0 || d->d_reclen % 8 != 0)
				FAIL("bad d_reclen %u", d->d_reclen);
			if (n >= max)
				FAIL("too many entries");
			snprintf(names[n], 64, "%s", d->d_name);
			types[n] = d->d_type;
			n++;
			off += d->d_reclen;
		}
	}
	free(buf);
	close(fd);
	return n;
}

static int find(char names[][64], int n, const char *name)
{
	int idx = -1;
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0) {
			if (idx >= 0)
				FAIL("duplicate entry %s", name);
			idx = i;
		}
	return idx;
}

CASE(mkdir_rmdir)
{
	CHECK_OK(mkdir(P("d"), 0755));
	struct stat st;
	CHECK_OK(stat(P("d"), &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_OK(rmdir(P("d")));
	CHECK_ERR(stat(P("d"), &st), ENOENT);
}

CASE(mkdir_existing_eexist)
{
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_ERR(mkdir(P("d"), 0755), EEXIST);
	st_write_file(P("f"), "x");
	CHECK_ERR(mkdir(P("f"), 0755), EEXIST);
	CHECK_ERR(mkdir(P("missing/d"), 0755), ENOENT);
	CHECK_ERR(mkdir(P("f/d"), 0755), ENOTDIR);
}

CASE(mkdir_mode_and_umask)
{
	umask(027);
	CHECK_OK(mkdir(P("d"), 0777));
	struct stat st;
	CHECK_OK(stat(P("d"), &st));
	CHECK_EQ(st.st_mode & 07777, 0750);
}

CASE(rmdir_errors)
{
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("d/f"), "x");
	CHECK_ERR(rmdir(P("d")), ENOTEMPTY);
	CHECK_ERR(rmdir(P("d/f")), ENOTDIR);
	CHECK_ERR(rmdir(P("missing")), ENOENT);
	CHECK_ERR(rmdir(P("d/.")), EINVAL);
	CHECK_OK(unlink(P("d/f")));
	CHECK_OK(rmdir(P("d")));
}

CASE(getdents64_lists_entries)
{
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("d/a"), "1");
	st_write_file(P("d/bb"), "2");
	CHECK_OK(mkdir(P("d/sub"), 0755));
	CHECK_OK(symlink("a", P("d/lnk")));
	char names[16][64];
	unsigned char types[16];
	int n = list_dir(P("d"), 4096, names, types, 16);
	CHECK_EQ(n, 6);
	int i;
	CHECK_GE(i = find(names, n, "."), 0);
	CHECK_EQ(types[i], DT_DIR);
	CHECK_GE(i = find(names, n, ".."), 0);
	CHECK_EQ(types[i], DT_DIR);
	CHECK_GE(i = find(names, n, "a"), 0);
	CHECK_EQ(types[i], DT_REG);
	CHECK_GE(i = find(names, n, "bb"), 0);
	CHECK_EQ(types[i], DT_REG);
	CHECK_GE(i = find(names, n, "sub"), 0);
	CHECK_EQ(types[i], DT_DIR);
	CHECK_GE(i = find(names, n, "lnk"), 0);
	CHECK_EQ(types[i], DT_LNK);
}

CASE(getdents64_inode_matches_stat)
{
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("d/file"), "1");
	struct stat st;
	CHECK_OK(stat(P("d/file"), &st));
	int fd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	char buf[4096];
	long r = CHECK_OK(syscall(SYS_getdents64, fd, buf, sizeof buf));
	int found = 0;
	for (long off = 0; off < r;) {
		struct linux_dirent64 *d = (void *)(buf + off);
		if (strcmp(d->d_name, "file") == 0) {
			CHECK_EQ(d->d_ino, st.st_ino);
			found = 1;
		}
		off += d->d_reclen;
	}
	CHECK(found);
	close(fd);
}

CASE(getdents64_small_buffers)
{
	CHECK_OK(mkdir(P("d"), 0755));
	char name[64];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "d/file-with-a-longish-name-%02d", i);
		st_write_file(P(name), "");
	}
	/* A buffer too small for any entry is EINVAL. */
	int fd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	char tiny[8];
	CHECK_ERR(syscall(SYS_getdents64, fd, tiny, sizeof tiny), EINVAL);
	close(fd);
	/* A buffer that holds one or two entries at a time still sees all of them. */
	static char names[64][64];
	unsigned char types[64];
	int n = list_dir(P("d"), 64, names, types, 64);
	CHECK_EQ(n, 22);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "file-with-a-longish-name-%02d", i);
		CHECK_GE(find(names, n, name), 0);
	}
}

CASE(readdir_many_entries)
{
	CHECK_OK(mkdir(P("d"), 0755));
	char name[64];
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "d/%d", i);
		int fd = CHECK_OK(open(P(name), O_CREAT | O_WRONLY, 0644));
		close(fd);
	}
	DIR *d = opendir(P("d"));
	CHECK(d != NULL);
	static char seen[300];
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		count++;
		if (e->d_name[0] == '.')
			continue;
		int k = atoi(e->d_name);
		CHECK(k >= 0 && k < 300);
		CHECK_EQ(seen[k], 0);
		seen[k] = 1;
	}
	closedir(d);
	CHECK_EQ(count, 302);
}

CASE(rewind_directory)
{
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("d/x"), "");
	int fd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	char buf[4096];
	long first = CHECK_OK(syscall(SYS_getdents64, fd, buf, sizeof buf));
	CHECK_GT(first, 0);
	CHECK_EQ(syscall(SYS_getdents64, fd, buf, sizeof buf), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	CHECK_EQ(syscall(SYS_getdents64, fd, buf, sizeof buf), first);
	close(fd);
}

CASE(getdents64_on_file_enotdir)
{
	st_write_file(P("f"), "x");
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	char buf[4096];
	CHECK_ERR(syscall(SYS_getdents64, fd, buf, sizeof buf), ENOTDIR);
	close(fd);
	CHECK_ERR(syscall(SYS_getdents64, -1, buf, sizeof buf), EBADF);
}

CASE(unlinked_entry_disappears)
{
	CHECK_OK(mkdir(P("d"), 0755));
	st_write_file(P("d/a"), "");
	st_write_file(P("d/b"), "");
	CHECK_OK(unlink(P("d/a")));
	char names[8][64];
	unsigned char types[8];
	int n = list_dir(P("d"), 4096, names, types, 8);
	CHECK_EQ(n, 3);
	CHECK_EQ(find(names, n, "a"), -1);
	CHECK_GE(find(names, n, "b"), 0);
}

CASE(mkdirat_and_unlinkat_dir)
{
	CHECK_OK(mkdir(P("d"), 0755));
	int dfd = CHECK_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	CHECK_OK(mkdirat(dfd, "sub", 0700));
	struct stat st;
	CHECK_OK(stat(P("d/sub"), &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_ERR(unlinkat(dfd, "sub", 0), EISDIR);
	CHECK_OK(unlinkat(dfd, "sub", AT_REMOVEDIR));
	CHECK_ERR(stat(P("d/sub"), &st), ENOENT);
	close(dfd);
}

CASE(dot_and_dotdot_resolve)
{
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(mkdir(P("d/e"), 0755));
	st_write_file(P("d/f"), "x");
	struct stat a, b;
	CHECK_OK(stat(P("d/e/../f"), &a));
	CHECK_OK(stat(P("d/./f"), &b));
	CHECK_EQ(a.st_ino, b.st_ino);
	CHECK_OK(stat(P("d/e/.."), &a));
	CHECK_OK(stat(P("d"), &b));
	CHECK_EQ(a.st_ino, b.st_ino);
	/* ".." of the root is the root. */
	CHECK_OK(stat("/..", &a));
	CHECK_OK(stat("/", &b));
	CHECK_EQ(a.st_ino, b.st_ino);
}

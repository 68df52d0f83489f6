/* umask_modes: the umask applied to every creating call (open, mkdir, mknod, mkfifo,
 * unix socket bind), what it does not apply to, special mode bits on creation, the
 * set-group-ID directory rules and privilege-bit clearing on write and chmod. */
#include "harness.h"

#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

static mode_t mode_of(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		FAIL("lstat(%s): %s", path, st_errname(errno));
	return st.st_mode;
}

CASE(umask_value_semantics)
{
	/* Only the permission bits are kept. */
	CHECK_EQ(umask(0777 | 07000), 022);
	CHECK_EQ(umask(0), 0777);
	CHECK_EQ(umask(077), 0);
	CHECK_EQ(umask(022), 077);
	/* /proc/self/status reports it. */
	umask(027);
	char buf[4096];
	st_read_file("/proc/self/status", buf, sizeof buf);
	CHECK(strstr(buf, "\nUmask:\t0027\n") != NULL);
	/* A forked child inherits it; its changes stay its own. */
	IN_CHILD(CHECK_EQ(umask(0), 027));
	CHECK_EQ(umask(022), 027);
}

CASE(umask_applies_to_all_creating_calls)
{
	umask(027);
	int fd = CHECK_OK(open(P("file"), O_CREAT | O_WRONLY, 0666));
	close(fd);
	CHECK_EQ(mode_of(P("file")) & 07777, 0640);
	fd = CHECK_OK(openat(AT_FDCWD, P("file2"), O_CREAT | O_WRONLY, 0777));
	close(fd);
	CHECK_EQ(mode_of(P("file2")) & 07777, 0750);
	CHECK_OK(mkdir(P("dir"), 0777));
	CHECK_EQ(mode_of(P("dir")) & 07777, 0750);
	CHECK_OK(mkfifo(P("fifo"), 0666));
	CHECK_EQ(mode_of(P("fifo")), S_IFIFO | 0640);
	CHECK_OK(mknod(P("node"), S_IFREG | 0666, 0));
	CHECK_EQ(mode_of(P("node")), S_IFREG | 0640);
	CHECK_OK(mknodat(AT_FDCWD, P("fifo2"), S_IFIFO | 0606, 0));
	CHECK_EQ(mode_of(P("fifo2")), S_IFIFO | 0600);
	/* A unix socket bound to a path gets 0777 & ~umask. */
	int s = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", P("sock"));
	CHECK_OK(bind(s, (struct sockaddr *)&sa, sizeof sa));
	CHECK_EQ(mode_of(P("sock")), S_IFSOCK | 0750);
	close(s);
	/* Symlinks are always 0777. */
	CHECK_OK(symlink("file", P("link")));
	CHECK_EQ(mode_of(P("link")), S_IFLNK | 0777);
}

CASE(umask_not_applied_to_chmod_or_existing_files)
{
	umask(077);
	st_write_file(P("f"), "x");
	CHECK_EQ(mode_of(P("f")) & 07777, 0600);
	CHECK_OK(chmod(P("f"), 0777));
	CHECK_EQ(mode_of(P("f")) & 07777, 0777);
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_OK(fchmod(fd, 0755));
	close(fd);
	CHECK_EQ(mode_of(P("f")) & 07777, 0755);
	/* Opening an existing file with O_CREAT keeps its mode. */
	fd = CHECK_OK(open(P("f"), O_CREAT | O_WRONLY, 0600));
	close(fd);
	CHECK_EQ(mode_of(P("f")) & 07777, 0755);
	/* fchmodat too. */
	CHECK_OK(fchmodat(AT_FDCWD, P("f"), 0704, 0));
	CHECK_EQ(mode_of(P("f")) & 07777, 0704);
}

CASE(special_bits_on_creation)
{
	umask(022);
	/* open keeps set-user-ID and sticky bits from the mode argument. */
	int fd = CHECK_OK(open(P("suid"), O_CREAT | O_WRONLY, 04777));
	close(fd);
	CHECK_EQ(mode_of(P("suid")) & 07777, 04755);
	/* mkdir keeps the sticky bit but ignores set-user-ID. */
	CHECK_OK(mkdir(P("sticky"), 01777));
	CHECK_EQ(mode_of(P("sticky")) & 07777, 01755);
	CHECK_OK(mkdir(P("nosuid"), 04777));
	CHECK_EQ(mode_of(P("nosuid")) & 07777, 0755);
	/* chmod can set them on one's own files. */
	CHECK_OK(chmod(P("nosuid"), 03755));
	CHECK_EQ(mode_of(P("nosuid")) & 07777, 03755);
	/* Bits above 07777 in chmod are ignored; the type never changes. */
	CHECK_OK(chmod(P("suid"), S_IFDIR | 0644));
	CHECK_EQ(mode_of(P("suid")), S_IFREG | 0644);
}

CASE(setgid_directory_inheritance)
{
	CHECK_OK(mkdir(P("sg"), 0775));
	gid_t want = getegid();
	if (st_is_root()) {
		/* Give the directory a group we are not in to show where the gid comes from. */
		CHECK_OK(chown(P("sg"), 0, 4321));
		want = 4321;
	}
	CHECK_OK(chmod(P("sg"), 02775));
	CHECK_EQ(mode_of(P("sg")) & 07777, 02775);
	int fd = CHECK_OK(open(P("sg/file"), O_CREAT | O_WRONLY, 0644));
	close(fd);
	CHECK_OK(mkdir(P("sg/sub"), 0755));
	struct stat st;
	/* New files take the directory's group... */
	CHECK_OK(stat(P("sg/file"), &st));
	CHECK_EQ(st.st_gid, want);
	CHECK_EQ(st.st_mode & 07777, 0644);
	/* ...and new directories also inherit the set-group-ID bit. */
	CHECK_OK(stat(P("sg/sub"), &st));
	CHECK_EQ(st.st_gid, want);
	CHECK_EQ(st.st_mode & 07777, 02755);
	/* Outside the directory, files get our egid. */
	fd = CHECK_OK(open(P("plain"), O_CREAT | O_WRONLY, 0644));
	close(fd);
	CHECK_OK(stat(P("plain"), &st));
	CHECK_EQ(st.st_gid, getegid());
}

CASE(chmod_setgid_dropped_for_non_member)
{
	/* A non-root owner who is not in the file's group cannot set set-group-ID:
	 * chmod succeeds and silently drops the bit. Needs root to set up the group. */
	if (!st_is_root())
		return;
	st_write_file(P("f"), "x");
	CHECK_OK(chown(P("f"), 65534, 4321));
	IN_CHILD({
		st_drop_privileges();
		CHECK_OK(chmod(P("f"), 02755));
		CHECK_EQ(mode_of(P("f")) & 07777, 0755);
		CHECK_OK(chmod(P("f"), 04755));
		CHECK_EQ(mode_of(P("f")) & 07777, 04755);
	});
	/* Root can set it regardless of group membership. */
	CHECK_OK(chmod(P("f"), 02755));
	CHECK_EQ(mode_of(P("f")) & 07777, 02755);
}

CASE(unprivileged_write_clears_setuid_setgid)
{
	st_write_file(P("f"), "x");
	/* setgid with group execute, setuid, writable by anyone. */
	CHECK_OK(chmod(P("f"), 06777));
	CHECK_EQ(mode_of(P("f")) & 07777, 06777);
	IN_CHILD({
		st_drop_privileges();
		int fd = CHECK_OK(open(P("f"), O_WRONLY));
		CHECK_EQ(write(fd, "y", 1), 1);
		close(fd);
	});
	CHECK_EQ(mode_of(P("f")) & 07777, 0777);
	/* Truncation by an unprivileged writer clears them too. */
	CHECK_OK(chmod(P("f"), 04777));
	IN_CHILD({
		st_drop_privileges();
		CHECK_OK(truncate(P("f"), 0));
	});
	CHECK_EQ(mode_of(P("f")) & 07777, 0777);
}

CASE(root_write_keeps_setuid)
{
	if (!st_is_root())
		return;
	st_write_file(P("f"), "x");
	CHECK_OK(chmod(P("f"), 06755));
	int fd = CHECK_OK(open(P("f"), O_WRONLY));
	CHECK_EQ(write(fd, "y", 1), 1);
	close(fd);
	CHECK_EQ(mode_of(P("f")) & 07777, 06755);
}

/* mount(2) and umount2(2) in a mount namespace of the case's own: tmpfs with options,
 * bind mounts (MS_REC), bind remounts (MS_RDONLY, MS_NOEXEC, MS_NODEV), proc, sysfs,
 * devpts and mqueue again, MNT_DETACH, EBUSY, EINVAL, EPERM; and /proc/self/mounts,
 * mountinfo. Natively each case first makes its own namespace private (root only). */
#include "harness.h"
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#define TMPFS_MAGIC 0x01021994
#define PROC_SUPER_MAGIC 0x9fa0

/* A mount namespace of the case's own, nothing shared with the host's. Returns 0 (the
 * case is skipped, said so) where there cannot be one: an ordinary user natively. */
static int own_mntns(void)
{
	if (unshare(CLONE_NEWNS) != 0) {
		fprintf(stderr, "SKIP: no mount namespace of the case's own (%s)\n",
			st_errname(errno));
		return 0;
	}
	CHECK_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	return 1;
}

/* The line of `file` (/proc/self/mounts or mountinfo) naming `path`, in buf. */
static int mount_line(const char *file, const char *path, char *buf, size_t n)
{
	static char all[65536];
	ssize_t r = st_read_file(file, all, sizeof all - 1);
	CHECK_GT(r, 0);
	all[r] = 0;
	char pat[300];
	snprintf(pat, sizeof pat, " %s ", path);
	int found = 0;
	/* The last one: the mount on top. */
	for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, pat)) {
			snprintf(buf, n, "%s", line);
			found = 1;
		}
	}
	return found;
}

static void mkdirs(const char *a)
{
	CHECK_OK(mkdir(a, 0755));
}

CASE(tmpfs_with_options)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	CHECK_OK(mount("scratch", P("m"), "tmpfs", MS_NOSUID, "size=1m,mode=700"));
	struct stat st;
	CHECK_OK(stat(P("m"), &st));
	CHECK_EQ(st.st_mode, S_IFDIR | 0700);
	struct statfs sf;
	CHECK_OK(statfs(P("m"), &sf));
	CHECK_EQ(sf.f_type, TMPFS_MAGIC);
	CHECK_EQ((long long)sf.f_blocks * sf.f_bsize, 1 << 20);
	st_write_file(P("m/f"), "x");
	char line[512];
	CHECK(mount_line("/proc/self/mounts", P("m"), line, sizeof line));
	CHECK(strstr(line, "scratch ") == line);
	CHECK(strstr(line, " tmpfs rw,nosuid,"));
	CHECK(strstr(line, "size=1024k"));
	CHECK(strstr(line, "mode=700"));
	CHECK(mount_line("/proc/self/mountinfo", P("m"), line, sizeof line));
	CHECK(strstr(line, " rw,nosuid"));
	CHECK(strstr(line, " - tmpfs scratch rw,"));
	CHECK_OK(umount2(P("m"), 0));
	CHECK_ERR(access(P("m/f"), F_OK), ENOENT);
	CHECK(!mount_line("/proc/self/mounts", P("m"), line, sizeof line));
	/* Beyond size=: ENOSPC. */
	CHECK_OK(mount("none", P("m"), "tmpfs", 0, "size=64k"));
	int fd = CHECK_OK(open(P("m/big"), O_WRONLY | O_CREAT, 0600));
	static char buf[128 << 10];
	CHECK_EQ(write(fd, buf, sizeof buf), 64 << 10);
	CHECK_ERR(write(fd, buf, 1), ENOSPC);
	close(fd);
	CHECK_OK(umount2(P("m"), 0));
}

CASE(mount_errors)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	st_write_file(P("f"), "x");
	CHECK_ERR(mount("none", P("f"), "tmpfs", 0, NULL), ENOTDIR);
	CHECK_ERR(mount("none", P("m"), "nosuchfs", 0, NULL), ENODEV);
	CHECK_ERR(mount("none", P("nothere"), "tmpfs", 0, NULL), ENOENT);
	CHECK_ERR(mount("none", P("m"), "tmpfs", 0, "bogus=1"), EINVAL);
	CHECK_ERR(mount(P("nothere"), P("m"), NULL, MS_BIND, NULL), ENOENT);
	/* Not a mount point. */
	CHECK_ERR(umount2(P("m"), 0), EINVAL);
	CHECK_ERR(mount(NULL, P("m"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), EINVAL);
	CHECK_ERR(mount(NULL, P("m"), NULL, MS_PRIVATE, NULL), EINVAL);
	CHECK_ERR(umount2(P("nothere"), 0), ENOENT);
	CHECK_OK(mount("none", P("m"), "tmpfs", 0, NULL));
	CHECK_ERR(umount2(P("m"), 0x100), EINVAL);
	CHECK_ERR(umount2(P("m"), MNT_EXPIRE | MNT_DETACH), EINVAL);
	/* Two propagation types at once. */
	CHECK_ERR(mount(NULL, P("m"), NULL, MS_PRIVATE | MS_SLAVE, NULL), EINVAL);
	CHECK_OK(mount(NULL, P("m"), NULL, MS_PRIVATE, NULL));
	CHECK_OK(umount2(P("m"), 0));
}

CASE(eperm_without_cap_sys_admin)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	CHECK_OK(mount("none", P("m"), "tmpfs", 0, NULL));
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(mount("none", P("m"), "tmpfs", 0, NULL), EPERM);
		CHECK_ERR(umount2(P("m"), 0), EPERM);
		CHECK_ERR(mount(NULL, P("m"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), EPERM);
		CHECK_ERR(unshare(CLONE_NEWNS), EPERM);
	});
	CHECK_OK(umount2(P("m"), 0));
}

CASE(bind_mount_shares_the_tree)
{
	if (!own_mntns())
		return;
	mkdirs(P("a"));
	mkdirs(P("b"));
	st_write_file(P("a/f"), "hello");
	CHECK_OK(mount(P("a"), P("b"), NULL, MS_BIND, NULL));
	char buf[16] = { 0 };
	CHECK_EQ(st_read_file(P("b/f"), buf, sizeof buf), 5);
	CHECK_STREQ(buf, "hello");
	st_write_file(P("b/g"), "x");
	CHECK_OK(access(P("a/g"), F_OK));
	/* A file on a file. */
	st_write_file(P("one"), "1");
	st_write_file(P("two"), "2");
	CHECK_OK(mount(P("one"), P("two"), NULL, MS_BIND, NULL));
	CHECK_EQ(st_read_file(P("two"), buf, sizeof buf), 1);
	CHECK_EQ(buf[0], '1');
	CHECK_ERR(mount(P("one"), P("a"), NULL, MS_BIND, NULL), ENOTDIR);
	CHECK_OK(umount2(P("two"), 0));
	CHECK_OK(umount2(P("b"), 0));
	CHECK_ERR(access(P("b/f"), F_OK), ENOENT);
}

CASE(bind_rec_takes_submounts)
{
	if (!own_mntns())
		return;
	mkdirs(P("a"));
	mkdirs(P("a/sub"));
	mkdirs(P("b"));
	mkdirs(P("c"));
	CHECK_OK(mount("none", P("a/sub"), "tmpfs", 0, NULL));
	st_write_file(P("a/sub/f"), "x");
	CHECK_OK(mount(P("a"), P("b"), NULL, MS_BIND, NULL));
	CHECK_ERR(access(P("b/sub/f"), F_OK), ENOENT);
	CHECK_OK(mount(P("a"), P("c"), NULL, MS_BIND | MS_REC, NULL));
	CHECK_OK(access(P("c/sub/f"), F_OK));
	char line[512];
	CHECK(mount_line("/proc/self/mounts", P("c/sub"), line, sizeof line));
	CHECK(strstr(line, " tmpfs "));
	/* The parent of a mount is busy; MNT_DETACH takes both. */
	CHECK_ERR(umount2(P("c"), 0), EBUSY);
	CHECK_OK(umount2(P("c"), MNT_DETACH));
	CHECK(!mount_line("/proc/self/mounts", P("c/sub"), line, sizeof line));
	CHECK_OK(umount2(P("b"), 0));
	CHECK_OK(umount2(P("a/sub"), 0));
}

CASE(bind_remount_read_only)
{
	if (!own_mntns())
		return;
	mkdirs(P("a"));
	mkdirs(P("b"));
	st_write_file(P("a/f"), "x");
	CHECK_OK(mount(P("a"), P("b"), NULL, MS_BIND, NULL));
	CHECK_OK(mount(NULL, P("b"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL));
	CHECK_ERR(open(P("b/f"), O_WRONLY), EROFS);
	CHECK_ERR(mkdir(P("b/d"), 0755), EROFS);
	CHECK_ERR(unlink(P("b/f")), EROFS);
	struct statvfs sv;
	CHECK_OK(statvfs(P("b"), &sv));
	CHECK(sv.f_flag & ST_RDONLY);
	char line[512];
	CHECK(mount_line("/proc/self/mounts", P("b"), line, sizeof line));
	CHECK(strstr(line, " ro"));
	/* The same files through the other path stay writable. */
	int fd = CHECK_OK(open(P("a/f"), O_WRONLY));
	close(fd);
	CHECK_OK(mount(NULL, P("b"), NULL, MS_REMOUNT | MS_BIND, NULL));
	fd = CHECK_OK(open(P("b/f"), O_WRONLY));
	/* Read-only while a file is open for writing through it: EBUSY. */
	CHECK_ERR(mount(NULL, P("b"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), EBUSY);
	close(fd);
	CHECK_OK(umount2(P("b"), 0));
}

CASE(noexec_refuses_exec_and_exec_mappings)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	CHECK_OK(mount("none", P("m"), "tmpfs", MS_NOEXEC, NULL));
	/* A copy of this (static) program. */
	int in = CHECK_OK(open("/proc/self/exe", O_RDONLY));
	int out = CHECK_OK(open(P("m/prog"), O_WRONLY | O_CREAT, 0755));
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		CHECK_EQ(write(out, buf, n), n);
	close(in);
	close(out);
	char line[512];
	CHECK(mount_line("/proc/self/mounts", P("m"), line, sizeof line));
	CHECK(strstr(line, "noexec"));
	char *argv[] = { P("m/prog"), "--list", NULL };
	CHECK_ERR(execve(P("m/prog"), argv, environ), EACCES);
	int fd = CHECK_OK(open(P("m/prog"), O_RDONLY));
	CHECK(mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED);
	CHECK_EQ(errno, EPERM);
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(p != MAP_FAILED);
	munmap(p, 4096);
	close(fd);
	/* Remounted without it, the program runs. */
	CHECK_OK(mount(NULL, P("m"), NULL, MS_REMOUNT | MS_BIND, NULL));
	pid_t c = fork();
	if (c == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execve(P("m/prog"), argv, environ);
		_exit(99);
	}
	CHECK_EXITED(st_wait(c), 0);
	CHECK_OK(umount2(P("m"), 0));
}

CASE(nodev_refuses_device_opens)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	CHECK_OK(mount("none", P("m"), "tmpfs", MS_NODEV, NULL));
	CHECK_OK(mknod(P("m/null"), S_IFCHR | 0666, makedev(1, 3)));
	CHECK_ERR(open(P("m/null"), O_RDONLY), EACCES);
	CHECK_OK(mount(NULL, P("m"), NULL, MS_REMOUNT | MS_BIND, NULL));
	int fd = CHECK_OK(open(P("m/null"), O_RDONLY));
	close(fd);
	CHECK_OK(umount2(P("m"), 0));
}

CASE(umount_busy_and_detach)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	CHECK_OK(mount("none", P("m"), "tmpfs", 0, NULL));
	st_write_file(P("m/f"), "kept");
	int fd = CHECK_OK(open(P("m/f"), O_RDONLY));
	CHECK_ERR(umount2(P("m"), 0), EBUSY);
	close(fd);
	/* A working directory inside keeps it busy too. */
	char cwd[4096];
	CHECK_PTR(getcwd(cwd, sizeof cwd));
	CHECK_OK(chdir(P("m")));
	CHECK_ERR(umount2(P("m"), 0), EBUSY);
	CHECK_OK(chdir(cwd));
	CHECK_OK(umount2(P("m"), 0));
	/* MNT_DETACH: gone from the tree at once, still there for an open file. */
	CHECK_OK(mount("none", P("m"), "tmpfs", 0, NULL));
	st_write_file(P("m/f"), "kept");
	fd = CHECK_OK(open(P("m/f"), O_RDONLY));
	CHECK_OK(umount2(P("m"), MNT_DETACH));
	CHECK_ERR(access(P("m/f"), F_OK), ENOENT);
	char buf[8] = { 0 };
	CHECK_EQ(read(fd, buf, sizeof buf), 4);
	CHECK_STREQ(buf, "kept");
	close(fd);
	/* Mounts stack: the top one goes first. */
	CHECK_OK(mount("one", P("m"), "tmpfs", 0, NULL));
	st_write_file(P("m/one"), "1");
	CHECK_OK(mount("two", P("m"), "tmpfs", 0, NULL));
	CHECK_ERR(access(P("m/one"), F_OK), ENOENT);
	CHECK_OK(umount2(P("m"), 0));
	CHECK_OK(access(P("m/one"), F_OK));
	CHECK_OK(umount2(P("m"), 0));
}

CASE(kernel_file_systems_again)
{
	if (!own_mntns())
		return;
	mkdirs(P("p"));
	CHECK_OK(mount("proc", P("p"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
	struct statfs sf;
	CHECK_OK(statfs(P("p"), &sf));
	CHECK_EQ(sf.f_type, PROC_SUPER_MAGIC);
	char path[300], buf[64];
	snprintf(path, sizeof path, "%s/%d/comm", P("p"), getpid());
	CHECK_GT(st_read_file(path, buf, sizeof buf), 0);
	char line[512];
	CHECK(mount_line("/proc/self/mounts", P("p"), line, sizeof line));
	CHECK(strstr(line, "proc ") == line);
	CHECK(strstr(line, " proc rw,nosuid,nodev,noexec"));
	CHECK_OK(umount2(P("p"), 0));
	CHECK_OK(mount("sysfs", P("p"), "sysfs", 0, NULL));
	CHECK_OK(access(P("p/devices/system"), F_OK));
	CHECK_OK(statfs(P("p"), &sf));
	CHECK_EQ(sf.f_type, 0x62656572);
	CHECK_OK(umount2(P("p"), 0));
	CHECK_OK(mount("devpts", P("p"), "devpts", 0, NULL));
	CHECK_OK(access(P("p/ptmx"), F_OK));
	CHECK_OK(umount2(P("p"), 0));
	CHECK_OK(mount("mqueue", P("p"), "mqueue", 0, NULL));
	CHECK_OK(statfs(P("p"), &sf));
	CHECK_EQ(sf.f_type, 0x19800202);
	CHECK_OK(umount2(P("p"), 0));
}

CASE(namespaces_are_separate)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWNS));
		CHECK_OK(mount("none", P("m"), "tmpfs", 0, NULL));
		st_write_file(P("m/f"), "x");
		char line[512];
		CHECK(mount_line("/proc/self/mounts", P("m"), line, sizeof line));
	});
	CHECK_ERR(access(P("m/f"), F_OK), ENOENT);
	char line[512];
	CHECK(!mount_line("/proc/self/mounts", P("m"), line, sizeof line));
	/* A mount made before unshare is in the copy, and unmounting it there leaves
	 * this one. */
	CHECK_OK(mount("none", P("m"), "tmpfs", 0, NULL));
	st_write_file(P("m/f"), "x");
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWNS));
		CHECK_OK(access(P("m/f"), F_OK));
		CHECK_OK(umount2(P("m"), 0));
		CHECK_ERR(access(P("m/f"), F_OK), ENOENT);
	});
	CHECK_OK(access(P("m/f"), F_OK));
	CHECK_OK(umount2(P("m"), 0));
}

static int clone_child(void *arg)
{
	const char *dir = arg;
	if (mount("none", dir, "tmpfs", 0, NULL) != 0)
		return 2;
	char line[512];
	return mount_line("/proc/self/mounts", dir, line, sizeof line) ? 0 : 3;
}

CASE(clone_newns)
{
	if (!own_mntns())
		return;
	mkdirs(P("m"));
	static char stack[65536];
	pid_t c = CHECK_OK(clone(clone_child, stack + sizeof stack, CLONE_NEWNS | SIGCHLD, P("m")));
	CHECK_EXITED(st_wait(c), 0);
	char line[512];
	CHECK(!mount_line("/proc/self/mounts", P("m"), line, sizeof line));
	errno = 0;
	CHECK_ERR(clone(clone_child, stack + sizeof stack, CLONE_NEWNS | CLONE_FS | SIGCHLD, P("m")), EINVAL);
}

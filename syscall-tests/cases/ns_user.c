/* User namespaces: CLONE_NEWUSER unprivileged (unshare, clone), uid_map, gid_map and
 * setgroups with Linux's write rules, ids seen through the maps (getuid, stat, the
 * overflow id 65534 for unmapped ones), full capabilities inside for the namespaces the
 * user namespace owns and none over the rest, NS_GET_PARENT/NS_GET_OWNER_UID, setns.
 * Each case works as an ordinary user (root drops to 65534 first). */
#include "harness.h"
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

/* An ordinary user whose /proc/self files are its own (changing ids made the process
 * not dumpable, and /proc of such a process belongs to root). */
static void drop(void)
{
	st_drop_privileges();
	CHECK_OK(prctl(PR_SET_DUMPABLE, 1));
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Into a new user namespace with the caller's ids mapped to 0 (as `unshare -r`). */
static void become_ns_root(void)
{
	uid_t u = geteuid();
	gid_t g = getegid();
	CHECK_OK(unshare(CLONE_NEWUSER));
	char map[64];
	CHECK_OK(write_text("/proc/self/setgroups", "deny"));
	snprintf(map, sizeof map, "0 %u 1\n", u);
	CHECK_OK(write_text("/proc/self/uid_map", map));
	snprintf(map, sizeof map, "0 %u 1\n", g);
	CHECK_OK(write_text("/proc/self/gid_map", map));
}

static int has_cap(int cap)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	CHECK_OK(syscall(SYS_capget, &h, d));
	return (d[cap / 32].effective >> (cap % 32)) & 1;
}

static unsigned long long ino_of(const char *path)
{
	struct stat st;
	CHECK_OK(stat(path, &st));
	return st.st_ino;
}

CASE(unshare_unprivileged_then_map)
{
	/* A file of root's (when the case runs as root), mode 0600. */
	int outside_root = st_is_root();
	st_write_file(P("root-only"), "x");
	CHECK_OK(chmod(P("root-only"), 0600));
	CHECK_OK(chmod(st_tmpdir(), 0777));
	IN_CHILD({
		drop();
		uid_t u = geteuid();
		gid_t g = getegid();
		st_write_file(P("mine"), "x");
		unsigned long long outer = ino_of("/proc/self/ns/user");
		CHECK_OK(unshare(CLONE_NEWUSER));
		CHECK_NE(ino_of("/proc/self/ns/user"), outer);
		/* Nothing mapped yet: the overflow ids. */
		CHECK_EQ(getuid(), 65534);
		CHECK_EQ(getegid(), 65534);
		CHECK(has_cap(CAP_SYS_ADMIN));
		CHECK(has_cap(CAP_SETUID));
		char buf[128];
		CHECK_EQ(st_read_file("/proc/self/uid_map", buf, sizeof buf), 0);
		CHECK_OK(write_text("/proc/self/setgroups", "deny"));
		char map[64];
		snprintf(map, sizeof map, "0 %u 1\n", u);
		CHECK_OK(write_text("/proc/self/uid_map", map));
		snprintf(map, sizeof map, "0 %u 1\n", g);
		CHECK_OK(write_text("/proc/self/gid_map", map));
		CHECK_EQ(getuid(), 0);
		CHECK_EQ(geteuid(), 0);
		CHECK_EQ(getgid(), 0);
		uid_t r, e, s;
		CHECK_OK(getresuid(&r, &e, &s));
		CHECK_EQ(r + e + s, 0);
		/* The reader inside sees the lower ids as its parent numbers them. */
		ssize_t n = CHECK_OK(st_read_file("/proc/self/uid_map", buf, sizeof buf - 1));
		buf[n] = 0;
		char want[64];
		snprintf(want, sizeof want, "%10u %10u %10u\n", 0, u, 1);
		CHECK_STREQ(buf, want);
		struct stat st;
		CHECK_OK(stat(P("mine"), &st));
		CHECK_EQ(st.st_uid, 0);
		CHECK_EQ(st.st_gid, 0);
		/* Root's files outside are not mapped. */
		CHECK_OK(stat("/proc/1", &st));
		CHECK_EQ(st.st_uid, 65534);
		/* Root inside overrides permissions on files whose ids are mapped, not on
		 * others. */
		CHECK_OK(chmod(P("mine"), 0));
		int fd = CHECK_OK(open(P("mine"), O_RDWR));
		close(fd);
		if (outside_root)
			CHECK_ERR(open(P("root-only"), O_RDONLY), EACCES);
		/* chown takes the namespace's ids: its own, or EINVAL for unmapped ones. */
		CHECK_OK(chown(P("mine"), 0, 0));
		CHECK_ERR(chown(P("mine"), 5, -1), EINVAL);
		/* /proc/PID/status shows them too. */
		char status[4096];
		ssize_t sn = CHECK_OK(st_read_file("/proc/self/status", status, sizeof status - 1));
		status[sn] = 0;
		CHECK(strstr(status, "\nUid:\t0\t0\t0\t0\n") != NULL);
		CHECK(strstr(status, "\nGid:\t0\t0\t0\t0\n") != NULL);
	});
}

CASE(map_write_rules)
{
	IN_CHILD({
		drop();
		uid_t u = geteuid();
		gid_t g = getegid();
		CHECK_OK(unshare(CLONE_NEWUSER));
		char map[64];
		/* Not one's own id, nor more than one, without CAP_SETUID in the parent. */
		CHECK_ERR(write_text("/proc/self/uid_map", "0 0 1\n"), EPERM);
		snprintf(map, sizeof map, "0 %u 1\n1 %u 1\n", u, u + 1);
		CHECK_ERR(write_text("/proc/self/uid_map", map), EPERM);
		CHECK_ERR(write_text("/proc/self/uid_map", "x y z\n"), EINVAL);
		CHECK_ERR(write_text("/proc/self/uid_map", "0 1 0\n"), EINVAL);
		CHECK_ERR(write_text("/proc/self/uid_map", "0 1\n"), EINVAL);
		/* gid_map: only after setgroups is denied. */
		snprintf(map, sizeof map, "0 %u 1\n", g);
		CHECK_ERR(write_text("/proc/self/gid_map", map), EPERM);
		CHECK_ERR(write_text("/proc/self/setgroups", "maybe"), EINVAL);
		CHECK_OK(write_text("/proc/self/setgroups", "deny\n"));
		CHECK_ERR(write_text("/proc/self/setgroups", "allow"), EPERM);
		CHECK_OK(write_text("/proc/self/gid_map", map));
		CHECK_ERR(write_text("/proc/self/setgroups", "deny"), EPERM);
		char buf[16];
		ssize_t n = CHECK_OK(st_read_file("/proc/self/setgroups", buf, sizeof buf - 1));
		buf[n] = 0;
		CHECK_STREQ(buf, "deny\n");
		snprintf(map, sizeof map, "0 %u 1\n", u);
		/* Not at an offset; once only. */
		int fd = CHECK_OK(open("/proc/self/uid_map", O_WRONLY));
		CHECK_OK(lseek(fd, 1, SEEK_SET));
		CHECK_ERR(write(fd, map, strlen(map)), EINVAL);
		CHECK_OK(lseek(fd, 0, SEEK_SET));
		CHECK_EQ(write(fd, map, strlen(map)), (ssize_t)strlen(map));
		/* The write moved the offset. */
		CHECK_ERR(write(fd, map, strlen(map)), EINVAL);
		close(fd);
		CHECK_ERR(write_text("/proc/self/uid_map", map), EPERM);
		/* setgroups(2) stays refused where setgroups is denied. */
		CHECK_ERR(setgroups(0, NULL), EPERM);
		/* Ids outside the map are invalid. */
		CHECK_ERR(setuid(5), EINVAL);
		CHECK_OK(setuid(0));
	});
}

CASE(the_first_namespace_maps)
{
	char buf[128];
	ssize_t n = CHECK_OK(st_read_file("/proc/self/uid_map", buf, sizeof buf - 1));
	buf[n] = 0;
	/* The first namespace (or the one the case runs in) maps something. */
	CHECK_GT(n, 0);
	IN_CHILD({
		drop();
		CHECK_ERR(write_text("/proc/self/uid_map", "0 0 1\n"), EPERM);
	});
}

CASE(capabilities_where_the_namespace_owns)
{
	IN_CHILD({
		drop();
		struct utsname before;
		CHECK_OK(uname(&before));
		become_ns_root();
		/* The UTS namespace is still the first one's: no. */
		CHECK_ERR(sethostname("x", 1), EPERM);
		/* A new one is this user namespace's: yes. */
		CHECK_OK(unshare(CLONE_NEWUTS));
		CHECK_OK(sethostname("inside", 6));
		struct utsname u;
		CHECK_OK(uname(&u));
		CHECK_STREQ(u.nodename, "inside");
		CHECK_OK(unshare(CLONE_NEWIPC));
		/* NS_GET_USERNS of the new UTS namespace is this user namespace. */
		int uts = CHECK_OK(open("/proc/self/ns/uts", O_RDONLY));
		int owner = CHECK_OK(ioctl(uts, NS_GET_USERNS));
		struct stat st;
		CHECK_OK(fstat(owner, &st));
		CHECK_EQ(st.st_ino, ino_of("/proc/self/ns/user"));
	});
}

CASE(clone_newuser_mapped_by_parent)
{
	IN_CHILD({
		drop();
		uid_t u = geteuid();
		int p[2], q[2];
		CHECK_OK(pipe(p));
		CHECK_OK(pipe(q));
		pid_t pid = CHECK_OK(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
		if (pid == 0) {
			char c;
			int before = getuid() == 65534;
			if (write(q[1], "r", 1) != 1 || read(p[0], &c, 1) != 1)
				_exit(3);
			_exit(before && getuid() == 0 && geteuid() == 0 ? 0 : 4);
		}
		char c, path[64], map[64];
		CHECK_EQ(read(q[0], &c, 1), 1);
		snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
		snprintf(map, sizeof map, "0 %u 1", u);
		CHECK_OK(write_text(path, map));
		/* The parent reads the lower ids in its own numbering. */
		char buf[64], want[64];
		ssize_t n = CHECK_OK(st_read_file(path, buf, sizeof buf - 1));
		buf[n] = 0;
		snprintf(want, sizeof want, "%10u %10u %10u\n", 0, u, 1);
		CHECK_STREQ(buf, want);
		CHECK_EQ(write(p[1], "g", 1), 1);
		CHECK_EXITED(st_wait(pid), 0);
		/* Not with a shared fs context, nor as a thread. */
		CHECK_ERR(syscall(SYS_clone, CLONE_NEWUSER | CLONE_FS | SIGCHLD, 0, 0, 0, 0), EINVAL);
	});
}

static void *idle(void *a)
{
	pause();
	return a;
}

CASE(unshare_refused_when_threaded)
{
	IN_CHILD({
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, idle, NULL), 0);
		CHECK_ERR(unshare(CLONE_NEWUSER), EINVAL);
	});
}

/* A child in a user namespace of its own (uid mapped to 0), waiting for `p` to close;
 * returns when the maps are written. */
static pid_t child_in_userns(int p[2])
{
	CHECK_OK(pipe(p));
	int ready[2];
	CHECK_OK(pipe(ready));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		become_ns_root();
		close(p[1]);
		close(ready[0]);
		write(ready[1], "r", 1);
		read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	close(ready[1]);
	char c;
	CHECK_EQ(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

CASE(parent_and_owner_ioctls)
{
	IN_CHILD({
		drop();
		uid_t u = geteuid();
		unsigned long long outer = ino_of("/proc/self/ns/user");
		int p[2];
		pid_t pid = child_in_userns(p);
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
		int fd = CHECK_OK(open(path, O_RDONLY));
		int parent = CHECK_OK(ioctl(fd, NS_GET_PARENT));
		struct stat st;
		CHECK_OK(fstat(parent, &st));
		CHECK_EQ(st.st_ino, outer);
		uid_t owner = 1;
		CHECK_OK(ioctl(fd, NS_GET_OWNER_UID, &owner));
		CHECK_EQ(owner, u);
		close(p[1]);
		CHECK_EXITED(st_wait(pid), 0);
		/* Inside: the owner is seen through the map; the parent is out of reach. */
		become_ns_root();
		int me = CHECK_OK(open("/proc/self/ns/user", O_RDONLY));
		CHECK_OK(ioctl(me, NS_GET_OWNER_UID, &owner));
		CHECK_EQ(owner, 0);
		CHECK_ERR(ioctl(me, NS_GET_PARENT), EPERM);
	});
}

CASE(exec_keeps_root_capabilities)
{
	IN_CHILD({
		drop();
		become_ns_root();
		char *argv[] = { (char *)st_self, "--helper", "ns_root_caps", NULL };
		execv(st_self, argv);
		_exit(99);
	});
}

HELPER(ns_root_caps)
{
	(void)argc;
	(void)argv;
	if (getuid() != 0)
		return 2;
	if (!has_cap(CAP_SYS_ADMIN))
		return 3;
	return unshare(CLONE_NEWUTS) == 0 ? 0 : 4;
}

CASE(setns_into_a_child_user_namespace)
{
	IN_CHILD({
		drop();
		int p[2];
		pid_t pid = child_in_userns(p);
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
		int fd = CHECK_OK(open(path, O_RDONLY));
		/* Its owner (this process's uid) holds every capability there. */
		CHECK_OK(setns(fd, CLONE_NEWUSER));
		CHECK_EQ(getuid(), 0);
		CHECK(has_cap(CAP_SYS_ADMIN));
		close(p[1]);
		CHECK_EXITED(st_wait(pid), 0);
	});
}

CASE(mounts_in_a_user_namespaces_own_mount_namespace)
{
	CHECK_OK(mkdir(P("m"), 0777));
	CHECK_OK(chmod(P("m"), 0777));
	IN_CHILD({
		drop();
		become_ns_root();
		/* The mount namespace is still the first user namespace's. */
		CHECK_ERR(mount("none", P("m"), "tmpfs", 0, NULL), EPERM);
		CHECK_OK(unshare(CLONE_NEWNS));
		CHECK_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
		/* The new mount namespace is this user namespace's. */
		int mnt = CHECK_OK(open("/proc/self/ns/mnt", O_RDONLY));
		int owner = CHECK_OK(ioctl(mnt, NS_GET_USERNS));
		struct stat ost;
		CHECK_OK(fstat(owner, &ost));
		CHECK_EQ(ost.st_ino, ino_of("/proc/self/ns/user"));
		close(owner);
		close(mnt);
		CHECK_OK(mount("none", P("m"), "tmpfs", 0, "size=64k"));
		st_write_file(P("m/f"), "x");
		CHECK_OK(umount2(P("m"), 0));
		/* proc and sysfs belong to PID and network namespaces it does not own. */
		CHECK_ERR(mount("proc", P("m"), "proc", 0, NULL), EPERM);
		CHECK_ERR(mount("sysfs", P("m"), "sysfs", 0, NULL), EPERM);
		/* Mounts that came from outside are locked: not unmounted alone, not
		 * remounted but as a bind that keeps their flags. */
		CHECK_ERR(umount2("/proc", 0), EINVAL);
		CHECK_ERR(mount(NULL, "/proc", NULL, MS_REMOUNT, NULL), EPERM);
		CHECK_OK(mount(P("m"), P("m"), NULL, MS_BIND, NULL));
		CHECK_OK(mount(NULL, P("m"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL));
		CHECK_ERR(mkdir(P("m/d"), 0755), EROFS);
		CHECK_OK(umount2(P("m"), 0));
	});
}

/* /proc/PID/ns: the links (TYPE:[INODE]), what stat and open reach through them (nsfs
 * files), the NS_GET_* ioctls, setns(2) into one's own namespaces, and who may look. */
#include "harness.h"
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>

static const char *names[] = { "cgroup", "ipc",	 "mnt",	 "net",	 "pid", "pid_for_children",
			       "time",	 "time_for_children", "user", "uts" };

static unsigned long long ns_ino(const char *path)
{
	struct stat st;
	CHECK_OK(stat(path, &st));
	return st.st_ino;
}

CASE(links_name_the_namespace_inode)
{
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		char path[64], link[64], want[64];
		snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
		struct stat st;
		CHECK_OK(lstat(path, &st));
		CHECK_EQ(st.st_mode, S_IFLNK | 0777);
		ssize_t n = CHECK_OK(readlink(path, link, sizeof link - 1));
		link[n] = 0;
		/* pid_for_children reads pid:[...], time_for_children time:[...]. */
		size_t tl = strcspn(names[i], "_");
		snprintf(want, sizeof want, "%.*s:[%llu]", (int)tl, names[i], ns_ino(path));
		CHECK_STREQ(link, want);
	}
	/* Different kinds are different namespaces. */
	CHECK_NE(ns_ino("/proc/self/ns/uts"), ns_ino("/proc/self/ns/ipc"));
	CHECK_NE(ns_ino("/proc/self/ns/user"), ns_ino("/proc/self/ns/mnt"));
	CHECK_EQ(ns_ino("/proc/self/ns/pid"), ns_ino("/proc/self/ns/pid_for_children"));
}

CASE(nsfs_files)
{
	struct stat a, b;
	CHECK_OK(stat("/proc/self/ns/uts", &a));
	CHECK_OK(stat("/proc/self/ns/net", &b));
	CHECK_EQ(a.st_mode, S_IFREG | 0444);
	CHECK_EQ(a.st_dev, b.st_dev);
	CHECK_EQ(a.st_nlink, 1);
	int fd = CHECK_OK(open("/proc/self/ns/uts", O_RDONLY));
	struct stat f;
	CHECK_OK(fstat(fd, &f));
	CHECK_EQ(f.st_ino, a.st_ino);
	CHECK_EQ(f.st_dev, a.st_dev);
	char buf[8];
	CHECK_ERR(read(fd, buf, sizeof buf), EINVAL);
	close(fd);
	/* The directory: dr-x--x--x. */
	CHECK_OK(stat("/proc/self/ns", &a));
	CHECK_EQ(a.st_mode, S_IFDIR | 0511);
}

CASE(shared_with_children)
{
	char mine[64], theirs[64], path[64];
	ssize_t n = CHECK_OK(readlink("/proc/self/ns/uts", mine, sizeof mine - 1));
	mine[n] = 0;
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		close(p[1]);
		read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	snprintf(path, sizeof path, "/proc/%d/ns/uts", pid);
	n = CHECK_OK(readlink(path, theirs, sizeof theirs - 1));
	theirs[n] = 0;
	CHECK_STREQ(theirs, mine);
	CHECK_EQ(ns_ino(path), ns_ino("/proc/self/ns/uts"));
	close(p[1]);
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(ioctls)
{
	static const struct {
		const char *name;
		int type;
	} kinds[] = { { "uts", CLONE_NEWUTS },	 { "ipc", CLONE_NEWIPC },
		      { "mnt", CLONE_NEWNS },	 { "net", CLONE_NEWNET },
		      { "user", CLONE_NEWUSER }, { "pid", CLONE_NEWPID },
		      { "cgroup", CLONE_NEWCGROUP } };
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i].name);
		int fd = CHECK_OK(open(path, O_RDONLY));
		CHECK_EQ(ioctl(fd, NS_GET_NSTYPE), kinds[i].type);
		close(fd);
	}
	/* The owning user namespace of one the case did not make: its own. */
	int uts = CHECK_OK(open("/proc/self/ns/uts", O_RDONLY));
	int u = CHECK_OK(ioctl(uts, NS_GET_USERNS));
	struct stat st;
	CHECK_OK(fstat(u, &st));
	CHECK_EQ(st.st_ino, ns_ino("/proc/self/ns/user"));
	CHECK(fcntl(u, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(ioctl(u, NS_GET_NSTYPE), CLONE_NEWUSER);
	/* Only user and PID namespaces have parents. */
	CHECK_ERR(ioctl(uts, NS_GET_PARENT), EINVAL);
	CHECK_ERR(ioctl(uts, NS_GET_OWNER_UID, &(uid_t){ 0 }), EINVAL);
	CHECK_ERR(ioctl(uts, TCGETS, &(char[64]){ 0 }), ENOTTY);
	close(u);
	close(uts);
}

CASE(setns_checks)
{
	int uts = CHECK_OK(open("/proc/self/ns/uts", O_RDONLY));
	CHECK_ERR(setns(uts, CLONE_NEWIPC), EINVAL);
	int reg = CHECK_OK(open("/proc/self/stat", O_RDONLY));
	CHECK_ERR(setns(reg, 0), EINVAL);
	CHECK_ERR(setns(999, 0), EBADF);
	close(reg);
	if (st_is_root()) {
		CHECK_OK(setns(uts, 0));
		CHECK_OK(setns(uts, CLONE_NEWUTS));
	}
	/* Joining one's own user namespace is refused. */
	int user = CHECK_OK(open("/proc/self/ns/user", O_RDONLY));
	CHECK_ERR(setns(user, CLONE_NEWUSER), EINVAL);
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(setns(uts, CLONE_NEWUTS), EPERM);
	});
	close(user);
	close(uts);
}

CASE(another_users_process)
{
	if (!st_is_root()) {
		fprintf(stderr, "SKIP: needs root to become another user\n");
		return;
	}
	char path[64], buf[64];
	snprintf(path, sizeof path, "/proc/%d/ns/uts", getpid());
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(readlink(path, buf, sizeof buf), EACCES);
		CHECK_ERR(open(path, O_RDONLY), EACCES);
		struct stat st;
		CHECK_ERR(stat(path, &st), EACCES);
		/* One's own are fine. */
		CHECK_OK(readlink("/proc/self/ns/uts", buf, sizeof buf));
		CHECK_OK(lstat(path, &st));
	});
}

CASE(unprivileged_namespaces_refused)
{
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(unshare(CLONE_NEWUTS), EPERM);
		CHECK_ERR(unshare(CLONE_NEWIPC), EPERM);
		CHECK_ERR(unshare(CLONE_NEWNET), EPERM);
		CHECK_ERR(unshare(CLONE_NEWNS), EPERM);
	});
}

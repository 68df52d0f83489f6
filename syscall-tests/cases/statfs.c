/* statfs: file system types (f_type) of the standard mounts and of pipes, sockets,
 * memfds and anonymous inodes; field consistency; statvfs; errors. */
#include "harness.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#define PROC_SUPER_MAGIC 0x9fa0
#define TMPFS_MAGIC 0x01021994
#define SYSFS_MAGIC 0x62656572
#define DEVPTS_SUPER_MAGIC 0x1cd1
#define PIPEFS_MAGIC 0x50495045
#define SOCKFS_MAGIC 0x534F434B
#define ANON_INODE_FS_MAGIC 0x09041934

static struct statfs sfs(const char *path)
{
	struct statfs s;
	if (statfs(path, &s) != 0)
		FAIL("statfs(%s): %s", path, st_errname(errno));
	return s;
}

static struct statfs fsfs(int fd)
{
	struct statfs s;
	if (fstatfs(fd, &s) != 0)
		FAIL("fstatfs(%d): %s", fd, st_errname(errno));
	return s;
}

CASE(proc_and_sys_types)
{
	CHECK_EQ(sfs("/proc").f_type, PROC_SUPER_MAGIC);
	CHECK_EQ(sfs("/proc/self").f_type, PROC_SUPER_MAGIC);
	CHECK_EQ(sfs("/proc/self/fd").f_type, PROC_SUPER_MAGIC);
	CHECK_EQ(sfs("/proc/sys/kernel").f_type, PROC_SUPER_MAGIC);
	CHECK_EQ(sfs("/sys").f_type, SYSFS_MAGIC);
	int fd = CHECK_OK(open("/proc/self/status", O_RDONLY));
	CHECK_EQ(fsfs(fd).f_type, PROC_SUPER_MAGIC);
	close(fd);
	/* Both report a 255-byte name limit. */
	CHECK_EQ(sfs("/proc").f_namelen, 255);
}

CASE(dev_shm_and_pts_types)
{
	struct statfs s = sfs("/dev/shm");
	CHECK_EQ(s.f_type, TMPFS_MAGIC);
	CHECK_EQ(s.f_namelen, 255);
	CHECK_EQ(s.f_bsize, sysconf(_SC_PAGESIZE));
	CHECK_GT(s.f_blocks, 0);
	CHECK_EQ(sfs("/dev/pts").f_type, DEVPTS_SUPER_MAGIC);
	/* A file created in /dev/shm is on that tmpfs. */
	char name[64];
	snprintf(name, sizeof name, "/dev/shm/rvisor-st-statfs-%d", (int)getpid());
	int fd = CHECK_OK(open(name, O_CREAT | O_RDWR | O_EXCL, 0600));
	CHECK_OK(unlink(name));
	CHECK_EQ(fsfs(fd).f_type, TMPFS_MAGIC);
	close(fd);
}

CASE(pseudo_file_types)
{
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(fsfs(p[0]).f_type, PIPEFS_MAGIC);
	CHECK_EQ(fsfs(p[1]).f_type, PIPEFS_MAGIC);
	close(p[0]);
	close(p[1]);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(fsfs(sv[0]).f_type, SOCKFS_MAGIC);
	close(sv[0]);
	close(sv[1]);
	int m = CHECK_OK(memfd_create("statfs", 0));
	CHECK_EQ(fsfs(m).f_type, TMPFS_MAGIC);
	close(m);
	int e = CHECK_OK(eventfd(0, 0));
	CHECK_EQ(fsfs(e).f_type, ANON_INODE_FS_MAGIC);
	close(e);
	int ep = CHECK_OK(epoll_create1(0));
	CHECK_EQ(fsfs(ep).f_type, ANON_INODE_FS_MAGIC);
	close(ep);
}

CASE(fields_consistent)
{
	const char *paths[] = { st_tmpdir(), "/", "/dev/shm" };
	for (unsigned i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		struct statfs s = sfs(paths[i]);
		CHECK_GT(s.f_bsize, 0);
		CHECK_GT(s.f_frsize, 0);
		CHECK_EQ(s.f_namelen, 255);
		CHECK_ULE(s.f_bfree, s.f_blocks);
		CHECK_ULE(s.f_bavail, s.f_bfree);
		CHECK_ULE(s.f_ffree, s.f_files);
		/* statvfs agrees. */
		struct statvfs v;
		CHECK_OK(statvfs(paths[i], &v));
		CHECK_UEQ(v.f_bsize, s.f_bsize);
		CHECK_UEQ(v.f_blocks, s.f_blocks);
		CHECK_UEQ(v.f_namemax, 255);
		CHECK_UEQ(v.f_files, s.f_files);
	}
	/* A file and its directory are on the same file system. */
	st_write_file(P("f"), "x");
	struct statfs a = sfs(st_tmpdir()), b = sfs(P("f"));
	CHECK_EQ(a.f_type, b.f_type);
	CHECK_EQ(a.f_blocks, b.f_blocks);
	CHECK_EQ(a.f_bsize, b.f_bsize);
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_EQ(fsfs(fd).f_type, a.f_type);
	close(fd);
}

CASE(writes_consume_free_space_on_tmpfs)
{
	/* A memfd is on the internal shm mount; /dev/shm is a tmpfs we can measure. */
	char name[64];
	snprintf(name, sizeof name, "/dev/shm/rvisor-st-space-%d", (int)getpid());
	struct statfs before = sfs("/dev/shm");
	int fd = CHECK_OK(open(name, O_CREAT | O_RDWR | O_EXCL, 0600));
	CHECK_OK(unlink(name));
	size_t len = 8 << 20;
	char *buf = malloc(len);
	memset(buf, 1, len);
	CHECK_EQ(write(fd, buf, len), (ssize_t)len);
	struct statfs after = fsfs(fd);
	/* Other processes may use /dev/shm too: allow slack, but the 2048 pages must show. */
	long long used = (long long)before.f_bfree - (long long)after.f_bfree;
	CHECK_GE(used, 1024);
	close(fd);
	free(buf);
}

CASE(errors)
{
	struct statfs s;
	CHECK_ERR(statfs("/nonexistent/path", &s), ENOENT);
	CHECK_ERR(statfs("/proc/self/status/x", &s), ENOTDIR);
	CHECK_ERR(statfs("", &s), ENOENT);
	CHECK_ERR(statfs("/proc", (struct statfs *)8), EFAULT);
	CHECK_ERR(fstatfs(-1, &s), EBADF);
	CHECK_ERR(fstatfs(9999, &s), EBADF);
	/* O_PATH descriptors are fine for fstatfs. */
	int op = CHECK_OK(open("/proc", O_PATH));
	CHECK_OK(fstatfs(op, &s));
	CHECK_EQ(s.f_type, PROC_SUPER_MAGIC);
	close(op);
	/* Search permission is needed along the path. */
	CHECK_OK(mkdir(P("locked"), 0700));
	CHECK_OK(mkdir(P("locked/in"), 0755));
	if (st_is_root()) {
		IN_CHILD({
			st_drop_privileges();
			struct statfs t;
			CHECK_ERR(statfs(P("locked/in"), &t), EACCES);
		});
	} else {
		CHECK_OK(chmod(P("locked"), 0));
		CHECK_ERR(statfs(P("locked/in"), &s), EACCES);
		CHECK_OK(chmod(P("locked"), 0700));
	}
}

/* The root file system is a real disk: something is used and the counts are
 * consistent (python's shutil.disk_usage test asks for used > 0). */
CASE(root_reports_used_blocks)
{
	struct statvfs sv;
	CHECK_OK(statvfs("/usr", &sv));
	CHECK_GT(sv.f_blocks, 0);
	CHECK_GT(sv.f_blocks, sv.f_bfree);
	CHECK_GE(sv.f_bfree, sv.f_bavail);
	CHECK_GT(sv.f_files, 0);
	CHECK_GE(sv.f_files, sv.f_ffree);
}

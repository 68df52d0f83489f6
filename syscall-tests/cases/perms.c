/* umask, chmod, fchmod, chown, access, permission checks for unprivileged users. */
#include "harness.h"

static mode_t mode_of(const char *p)
{
	struct stat st;
	if (stat(p, &st) != 0)
		FAIL("stat(%s): %s", p, st_errname(errno));
	return st.st_mode & 07777;
}

CASE(umask_returns_previous)
{
	umask(022);
	CHECK_EQ(umask(077), 022);
	CHECK_EQ(umask(0), 077);
	CHECK_EQ(umask(01777), 0);
	/* Only the permission bits are kept. */
	CHECK_EQ(umask(022), 0777);
}

CASE(umask_applies_to_creat)
{
	umask(027);
	int fd = CHECK_OK(open(P("f"), O_CREAT | O_WRONLY, 0777));
	close(fd);
	CHECK_EQ(mode_of(P("f")), 0750);
	umask(0);
	fd = CHECK_OK(open(P("g"), O_CREAT | O_WRONLY, 0666));
	close(fd);
	CHECK_EQ(mode_of(P("g")), 0666);
}

CASE(umask_inherited_by_child)
{
	umask(0017);
	IN_CHILD({
		CHECK_EQ(umask(0), 0017);
	});
}

CASE(chmod_and_fchmod)
{
	st_write_file(P("f"), "x");
	CHECK_OK(chmod(P("f"), 0600));
	CHECK_EQ(mode_of(P("f")), 0600);
	int fd = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_OK(fchmod(fd, 0640));
	CHECK_EQ(mode_of(P("f")), 0640);
	/* umask does not apply to chmod. */
	umask(077);
	CHECK_OK(chmod(P("f"), 0777));
	CHECK_EQ(mode_of(P("f")), 0777);
	CHECK_OK(fchmodat(AT_FDCWD, P("f"), 04755, 0));
	CHECK_EQ(mode_of(P("f")), 04755);
	CHECK_ERR(chmod(P("missing"), 0644), ENOENT);
	close(fd);
}

CASE(chmod_updates_ctime_not_mtime)
{
	st_write_file(P("f"), "x");
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	CHECK_OK(utimensat(AT_FDCWD, P("f"), old, 0));
	CHECK_OK(chmod(P("f"), 0600));
	struct stat st;
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(st.st_mtim.tv_sec, 1000);
	CHECK_GT(st.st_ctim.tv_sec, 1000);
}

CASE(access_checks)
{
	st_write_file(P("f"), "x");
	CHECK_OK(chmod(P("f"), 0644));
	CHECK_OK(access(P("f"), F_OK));
	CHECK_OK(access(P("f"), R_OK));
	CHECK_OK(access(P("f"), R_OK | W_OK));
	/* Even root needs an execute bit to pass X_OK on a regular file. */
	CHECK_ERR(access(P("f"), X_OK), EACCES);
	CHECK_OK(chmod(P("f"), 0744));
	CHECK_OK(access(P("f"), X_OK));
	CHECK_ERR(access(P("missing"), F_OK), ENOENT);
	CHECK_ERR(access(P("f"), 0x40), EINVAL);
	CHECK_OK(faccessat(AT_FDCWD, P("f"), R_OK, AT_EACCESS));
	/* Directories are always searchable for root, and by the owner with 0700. */
	CHECK_OK(access(st_tmpdir(), X_OK));
}

CASE(unprivileged_open_denied)
{
	/* Modes that deny even the owner, so the case also works when not run as root. */
	st_write_file(P("secret"), "x");
	CHECK_OK(chmod(P("secret"), 0000));
	st_write_file(P("public"), "y");
	CHECK_OK(chmod(P("public"), 0444));
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(open(P("secret"), O_RDONLY), EACCES);
		CHECK_ERR(access(P("secret"), R_OK), EACCES);
		CHECK_ERR(open(P("public"), O_WRONLY), EACCES);
		CHECK_ERR(access(P("public"), W_OK), EACCES);
		int fd = CHECK_OK(open(P("public"), O_RDONLY));
		close(fd);
	});
}

CASE(unprivileged_create_in_readonly_dir)
{
	CHECK_OK(mkdir(P("ro"), 0755));
	st_write_file(P("ro/f"), "x");
	CHECK_OK(chmod(P("ro"), 0555));
	CHECK_OK(mkdir(P("rw"), 0777));
	CHECK_OK(chmod(P("rw"), 0777));
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(open(P("ro/new"), O_CREAT | O_WRONLY, 0644), EACCES);
		CHECK_ERR(unlink(P("ro/f")), EACCES);
		CHECK_ERR(mkdir(P("ro/sub"), 0755), EACCES);
		int fd = CHECK_OK(open(P("rw/new"), O_CREAT | O_WRONLY, 0644));
		struct stat st;
		CHECK_OK(fstat(fd, &st));
		CHECK_EQ(st.st_uid, geteuid());
		close(fd);
	});
}

CASE(unprivileged_search_permission)
{
	CHECK_OK(mkdir(P("noexec"), 0755));
	st_write_file(P("noexec/f"), "x");
	CHECK_OK(chmod(P("noexec"), 0644));
	IN_CHILD({
		st_drop_privileges();
		struct stat st;
		CHECK_ERR(stat(P("noexec/f"), &st), EACCES);
		CHECK_ERR(chdir(P("noexec")), EACCES);
	});
}

CASE(unprivileged_chmod_not_owner_eperm)
{
	st_write_file(P("f"), "x");
	CHECK_OK(chmod(P("f"), 0666));
	IN_CHILD({
		st_drop_privileges();
		if (geteuid() != 0 && geteuid() != getuid())
			FAIL("odd credentials");
		struct stat st;
		CHECK_OK(stat(P("f"), &st));
		if (st.st_uid != geteuid()) {
			CHECK_ERR(chmod(P("f"), 0600), EPERM);
			CHECK_ERR(chown(P("f"), geteuid(), -1), EPERM);
		}
	});
}

CASE(chown_as_root)
{
	if (!st_is_root())
		return;
	st_write_file(P("f"), "x");
	CHECK_OK(chmod(P("f"), 06755));
	CHECK_OK(chown(P("f"), 1234, 5678));
	struct stat st;
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 5678);
	/* chown clears set-user-ID and set-group-ID (with group execute) on files. */
	CHECK_EQ(st.st_mode & 07777, 0755);
	/* -1 leaves a field unchanged. */
	CHECK_OK(chown(P("f"), -1, 42));
	CHECK_OK(stat(P("f"), &st));
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 42);
}

CASE(setuid_changes_credentials)
{
	if (!st_is_root())
		return;
	IN_CHILD({
		CHECK_OK(setresgid(1000, 1001, 1002));
		CHECK_OK(setresuid(2000, 2001, 2002));
		uid_t r, e, s;
		CHECK_OK(getresuid(&r, &e, &s));
		CHECK_EQ(r, 2000);
		CHECK_EQ(e, 2001);
		CHECK_EQ(s, 2002);
		gid_t gr, ge, gs;
		CHECK_OK(getresgid(&gr, &ge, &gs));
		CHECK_EQ(gr, 1000);
		CHECK_EQ(ge, 1001);
		CHECK_EQ(gs, 1002);
		CHECK_EQ(getuid(), 2000);
		CHECK_EQ(geteuid(), 2001);
		/* No way back to root. */
		CHECK_ERR(setuid(0), EPERM);
		/* Swapping among real/effective/saved ids is allowed. */
		CHECK_OK(seteuid(2000));
		CHECK_EQ(geteuid(), 2000);
	});
}

CASE(sticky_directory)
{
	CHECK_OK(mkdir(P("sticky"), 0777));
	CHECK_OK(chmod(P("sticky"), 01777));
	st_write_file(P("sticky/rootfile"), "x");
	CHECK_OK(chmod(P("sticky/rootfile"), 0666));
	IN_CHILD({
		st_drop_privileges();
		if (geteuid() != 0) {
			struct stat st;
			CHECK_OK(stat(P("sticky/rootfile"), &st));
			if (st.st_uid != geteuid())
				CHECK_ERR(unlink(P("sticky/rootfile")), EPERM);
		}
		st_write_file(P("sticky/mine"), "y");
		CHECK_OK(unlink(P("sticky/mine")));
	});
}

CASE(groups)
{
	int n = CHECK_OK(getgroups(0, NULL));
	gid_t *g = malloc(sizeof(gid_t) * (n + 1));
	CHECK_EQ(getgroups(n, g), n);
	if (n >= 2)
		CHECK_ERR(getgroups(n - 1, g), EINVAL);
	CHECK_ERR(syscall(SYS_getgroups, -1, g), EINVAL);
	if (st_is_root()) {
		IN_CHILD({
			gid_t want[3] = { 10, 20, 30 };
			CHECK_OK(setgroups(3, want));
			gid_t got[8];
			CHECK_EQ(getgroups(8, got), 3);
			CHECK_EQ(got[0], 10);
			CHECK_EQ(got[2], 30);
		});
	}
}

/* UTS namespaces: CLONE_NEWUTS in unshare, clone and clone3; a hostname and domain name
 * per namespace (uname, sethostname, setdomainname, /proc/sys/kernel/{hostname,
 * domainname}); setns back and forth; EPERM without CAP_SYS_ADMIN. */
#include "harness.h"
#include <linux/sched.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

static int need_root(void)
{
	if (!st_is_root()) {
		fprintf(stderr, "SKIP: CLONE_NEWUTS needs CAP_SYS_ADMIN\n");
		return 0;
	}
	return 1;
}

static void link_of(const char *path, char *buf, size_t n)
{
	ssize_t r = CHECK_OK(readlink(path, buf, n - 1));
	buf[r] = 0;
}

static void check_hostname(const char *want)
{
	struct utsname u;
	CHECK_OK(uname(&u));
	CHECK_STREQ(u.nodename, want);
	char buf[128], line[130];
	ssize_t n = CHECK_OK(st_read_file("/proc/sys/kernel/hostname", buf, sizeof buf - 1));
	buf[n] = 0;
	snprintf(line, sizeof line, "%s\n", want);
	CHECK_STREQ(buf, line);
}

CASE(unshare_gives_own_hostname)
{
	if (!need_root())
		return;
	struct utsname before;
	CHECK_OK(uname(&before));
	char outer[64];
	link_of("/proc/self/ns/uts", outer, sizeof outer);
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWUTS));
		char inner[64];
		link_of("/proc/self/ns/uts", inner, sizeof inner);
		CHECK(strcmp(inner, outer) != 0);
		/* A copy of the old names to start with. */
		check_hostname(before.nodename);
		CHECK_OK(sethostname("ns-inner", 8));
		CHECK_OK(setdomainname("dom-inner", 9));
		check_hostname("ns-inner");
		struct utsname u;
		CHECK_OK(uname(&u));
		CHECK_STREQ(u.domainname, "dom-inner");
		/* Children share it. */
		IN_CHILD({
			char again[64];
			link_of("/proc/self/ns/uts", again, sizeof again);
			CHECK_STREQ(again, inner);
			check_hostname("ns-inner");
		});
	});
	check_hostname(before.nodename);
	struct utsname after;
	CHECK_OK(uname(&after));
	CHECK_STREQ(after.domainname, before.domainname);
}

CASE(proc_sys_hostname_is_per_namespace)
{
	if (!need_root())
		return;
	struct utsname before;
	CHECK_OK(uname(&before));
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWUTS));
		st_write_file("/proc/sys/kernel/hostname", "via-proc");
		check_hostname("via-proc");
	});
	check_hostname(before.nodename);
}

CASE(clone_newuts)
{
	if (!need_root())
		return;
	struct utsname before;
	CHECK_OK(uname(&before));
	pid_t pid = CHECK_OK(syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0));
	if (pid == 0) {
		if (sethostname("cloned", 6) != 0)
			_exit(1);
		struct utsname u;
		uname(&u);
		_exit(strcmp(u.nodename, "cloned") == 0 ? 0 : 2);
	}
	CHECK_EXITED(st_wait(pid), 0);
	check_hostname(before.nodename);

	struct clone_args a = { .flags = CLONE_NEWUTS, .exit_signal = SIGCHLD };
	pid = CHECK_OK(syscall(SYS_clone3, &a, sizeof a));
	if (pid == 0)
		_exit(sethostname("cloned3", 7) == 0 ? 0 : 1);
	CHECK_EXITED(st_wait(pid), 0);
	check_hostname(before.nodename);
}

CASE(setns_back_and_forth)
{
	if (!need_root())
		return;
	struct utsname before;
	CHECK_OK(uname(&before));
	IN_CHILD({
		int outer = CHECK_OK(open("/proc/self/ns/uts", O_RDONLY));
		CHECK_OK(unshare(CLONE_NEWUTS));
		CHECK_OK(sethostname("inner", 5));
		int inner = CHECK_OK(open("/proc/self/ns/uts", O_RDONLY));
		CHECK_OK(setns(outer, CLONE_NEWUTS));
		check_hostname(before.nodename);
		CHECK_OK(setns(inner, 0));
		check_hostname("inner");
		/* The namespace lives on while a descriptor holds it. */
		CHECK_OK(setns(outer, 0));
		CHECK_OK(setns(inner, CLONE_NEWUTS));
		check_hostname("inner");
	});
}

CASE(unprivileged)
{
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(unshare(CLONE_NEWUTS), EPERM);
		CHECK_ERR(syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0), EPERM);
		CHECK_ERR(sethostname("x", 1), EPERM);
		CHECK_ERR(setdomainname("x", 1), EPERM);
	});
}

CASE(name_length)
{
	if (!need_root())
		return;
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWUTS));
		char name[66];
		memset(name, 'a', sizeof name);
		CHECK_ERR(sethostname(name, 65), EINVAL);
		CHECK_OK(sethostname(name, 64));
		struct utsname u;
		CHECK_OK(uname(&u));
		CHECK_EQ(strlen(u.nodename), 64);
	});
}

CASE(setns_through_a_pidfd)
{
	if (!need_root())
		return;
	struct utsname before;
	CHECK_OK(uname(&before));
	IN_CHILD({
		int p[2], ready[2];
		CHECK_OK(pipe(p));
		CHECK_OK(pipe(ready));
		pid_t pid = CHECK_OK(fork());
		if (pid == 0) {
			char c;
			close(p[1]);
			if (unshare(CLONE_NEWUTS) != 0 || sethostname("by-pidfd", 8) != 0)
				_exit(1);
			write(ready[1], "r", 1);
			read(p[0], &c, 1);
			_exit(0);
		}
		char c;
		CHECK_EQ(read(ready[0], &c, 1), 1);
		int pfd = CHECK_OK(syscall(SYS_pidfd_open, pid, 0));
		CHECK_ERR(setns(pfd, 0), EINVAL);
		CHECK_ERR(setns(pfd, 1), EINVAL);
		check_hostname(before.nodename);
		CHECK_OK(setns(pfd, CLONE_NEWUTS | CLONE_NEWIPC));
		check_hostname("by-pidfd");
		close(p[1]);
		CHECK_EXITED(st_wait(pid), 0);
	});
	check_hostname(before.nodename);
}

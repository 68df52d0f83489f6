/* uname, gethostname, getdomainname, sysinfo. */
#include "harness.h"
#include <sys/sysinfo.h>
#include <sys/utsname.h>

static int terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

CASE(uname_fields)
{
	struct utsname u;
	memset(&u, 'x', sizeof u);
	CHECK_OK(uname(&u));
	CHECK(terminated(u.sysname, sizeof u.sysname));
	CHECK(terminated(u.nodename, sizeof u.nodename));
	CHECK(terminated(u.release, sizeof u.release));
	CHECK(terminated(u.version, sizeof u.version));
	CHECK(terminated(u.machine, sizeof u.machine));
	CHECK_STREQ(u.sysname, "Linux");
#if defined(__x86_64__)
	CHECK_STREQ(u.machine, "x86_64");
#elif defined(__aarch64__)
	CHECK_STREQ(u.machine, "aarch64");
#endif
	/* The release looks like "MAJOR.MINOR...". */
	int major = 0, minor = 0;
	CHECK_EQ(sscanf(u.release, "%d.%d", &major, &minor), 2);
	CHECK_GE(major, 3);
	CHECK_GT(strlen(u.version), 0);
	CHECK_ERR(syscall(SYS_uname, (void *)8), EFAULT);
}

CASE(hostname_matches_nodename)
{
	struct utsname u;
	CHECK_OK(uname(&u));
	char h[HOST_NAME_MAX + 1];
	CHECK_OK(gethostname(h, sizeof h));
	CHECK_STREQ(h, u.nodename);
	char small[1];
	if (strlen(h) > 0)
		CHECK_ERR(gethostname(small, sizeof small), ENAMETOOLONG);
}

CASE(proc_sys_kernel_matches_uname)
{
	struct utsname u;
	CHECK_OK(uname(&u));
	char buf[256];
	st_read_file("/proc/sys/kernel/ostype", buf, sizeof buf);
	CHECK_STREQ(buf, "Linux\n");
	st_read_file("/proc/sys/kernel/hostname", buf, sizeof buf);
	buf[strcspn(buf, "\n")] = 0;
	CHECK_STREQ(buf, u.nodename);
	st_read_file("/proc/sys/kernel/osrelease", buf, sizeof buf);
	buf[strcspn(buf, "\n")] = 0;
	CHECK_STREQ(buf, u.release);
}

CASE(sethostname_unprivileged_eperm)
{
	/* Unprivileged: EPERM. */
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(sethostname("x", 1), EPERM);
	});
}

CASE(sysinfo_sane)
{
	struct sysinfo si;
	CHECK_OK(sysinfo(&si));
	CHECK_GT(si.totalram, 0);
	CHECK_LE(si.freeram, si.totalram);
	CHECK_GT(si.procs, 0);
	CHECK_GT(si.mem_unit, 0);
	CHECK_GE(si.uptime, 0);
}

CASE(sysconf_values)
{
	CHECK_EQ(sysconf(_SC_PAGESIZE), 4096);
	CHECK_GE(sysconf(_SC_NPROCESSORS_ONLN), 1);
	CHECK_GE(sysconf(_SC_NPROCESSORS_CONF), sysconf(_SC_NPROCESSORS_ONLN));
	CHECK_GT(sysconf(_SC_OPEN_MAX), 0);
	CHECK_GT(sysconf(_SC_PHYS_PAGES), 0);
}

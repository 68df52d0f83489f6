/* /proc/self: exe, fd, cmdline, status, stat, maps, cwd, environ. */
#include "harness.h"
#include <sys/prctl.h>

CASE(self_is_own_pid)
{
	char buf[64];
	ssize_t n = CHECK_OK(readlink("/proc/self", buf, sizeof buf - 1));
	buf[n] = 0;
	char want[32];
	snprintf(want, sizeof want, "%d", getpid());
	CHECK_STREQ(buf, want);
	struct stat a, b;
	snprintf(want, sizeof want, "/proc/%d", getpid());
	CHECK_OK(stat("/proc/self", &a));
	CHECK_OK(stat(want, &b));
	CHECK_EQ(a.st_ino, b.st_ino);
}

CASE(self_exe_is_this_program)
{
	char buf[PATH_MAX];
	ssize_t n = CHECK_OK(readlink("/proc/self/exe", buf, sizeof buf - 1));
	buf[n] = 0;
	CHECK_STREQ(buf, st_self);
	struct stat a, b;
	CHECK_OK(stat("/proc/self/exe", &a));
	CHECK_OK(stat(st_self, &b));
	CHECK_EQ(a.st_ino, b.st_ino);
}

CASE(self_fd_links)
{
	int fd = CHECK_OK(open(P("target"), O_CREAT | O_RDWR, 0644));
	char link[64], buf[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = CHECK_OK(readlink(link, buf, sizeof buf - 1));
	buf[n] = 0;
	char real[PATH_MAX];
	CHECK(realpath(P("target"), real) != NULL);
	CHECK_STREQ(buf, real);
	/* Opening the link reopens the file. */
	int fd2 = CHECK_OK(open(link, O_RDONLY));
	struct stat a, b;
	CHECK_OK(fstat(fd, &a));
	CHECK_OK(fstat(fd2, &b));
	CHECK_EQ(a.st_ino, b.st_ino);
	/* Pipes show as pipe:[inode]. */
	int p[2];
	CHECK_OK(pipe(p));
	snprintf(link, sizeof link, "/proc/self/fd/%d", p[0]);
	n = CHECK_OK(readlink(link, buf, sizeof buf - 1));
	buf[n] = 0;
	CHECK_EQ(strncmp(buf, "pipe:[", 6), 0);
	close(p[0]);
	close(p[1]);
	close(fd);
	close(fd2);
}

CASE(self_fd_listing)
{
	int null = CHECK_OK(open("/dev/null", O_RDONLY));
	int fd = CHECK_OK(dup2(null, 123));
	close(null);
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL);
	int found = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, "123") == 0)
			found = 1;
	closedir(d);
	CHECK(found);
	close(fd);
}

CASE(self_cmdline)
{
	char buf[4096];
	int fd = CHECK_OK(open("/proc/self/cmdline", O_RDONLY));
	ssize_t n = CHECK_OK(read(fd, buf, sizeof buf));
	close(fd);
	/* argv[0] NUL argv[1] NUL: the program was run as "prog CASE". */
	CHECK_GT(n, 0);
	CHECK_EQ(buf[n - 1], 0);
	size_t l0 = strlen(buf);
	CHECK_STREQ(buf + l0 + 1, "self_cmdline");
}

static long status_field(const char *name)
{
	char buf[8192];
	st_read_file("/proc/self/status", buf, sizeof buf);
	char key[64];
	snprintf(key, sizeof key, "\n%s:", name);
	char *p = strstr(buf, key);
	if (!p)
		FAIL("no %s in /proc/self/status", name);
	return strtol(p + strlen(key), NULL, 10);
}

CASE(self_status)
{
	CHECK_EQ(status_field("Pid"), getpid());
	CHECK_EQ(status_field("PPid"), getppid());
	CHECK_EQ(status_field("Tgid"), getpid());
	CHECK_EQ(status_field("Threads"), 1);
	char buf[8192];
	st_read_file("/proc/self/status", buf, sizeof buf);
	CHECK_EQ(strncmp(buf, "Name:\t", 6), 0);
}

CASE(self_stat_fields)
{
	char buf[4096];
	st_read_file("/proc/self/stat", buf, sizeof buf);
	int pid;
	CHECK_EQ(sscanf(buf, "%d", &pid), 1);
	CHECK_EQ(pid, getpid());
	/* Fields after the ")" that ends comm: state ppid pgrp session. */
	char *rp = strrchr(buf, ')');
	CHECK(rp != NULL);
	char state;
	int ppid, pgrp, sid;
	CHECK_EQ(sscanf(rp + 2, "%c %d %d %d", &state, &ppid, &pgrp, &sid), 4);
	/* Linux reports R for the reader itself; S is accepted too, no program cares. */
	CHECK(state == 'R' || state == 'S');
	CHECK_EQ(ppid, getppid());
	CHECK_EQ(pgrp, getpgrp());
	CHECK_EQ(sid, getsid(0));
}

CASE(self_maps_shows_mapping)
{
	char *p = CHECK_PTR(mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	static char buf[1 << 16];
	st_read_file("/proc/self/maps", buf, sizeof buf);
	char want[64];
	snprintf(want, sizeof want, "%lx-%lx r--p ", (unsigned long)p, (unsigned long)p + 3 * 4096);
	CHECK(strstr(buf, want) != NULL);
	CHECK(strstr(buf, "[stack]") != NULL);
	munmap(p, 3 * 4096);
	/* A file mapping names the file. */
	st_write_file(P("mapped"), "x");
	int fd = CHECK_OK(open(P("mapped"), O_RDONLY));
	p = CHECK_PTR(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0));
	st_read_file("/proc/self/maps", buf, sizeof buf);
	char real[PATH_MAX];
	CHECK(realpath(P("mapped"), real) != NULL);
	CHECK(strstr(buf, real) != NULL);
	munmap(p, 4096);
	close(fd);
}

CASE(self_cwd_and_root)
{
	CHECK_OK(chdir(st_tmpdir()));
	char buf[PATH_MAX], real[PATH_MAX];
	ssize_t n = CHECK_OK(readlink("/proc/self/cwd", buf, sizeof buf - 1));
	buf[n] = 0;
	CHECK(realpath(st_tmpdir(), real) != NULL);
	CHECK_STREQ(buf, real);
	n = CHECK_OK(readlink("/proc/self/root", buf, sizeof buf - 1));
	buf[n] = 0;
	CHECK_STREQ(buf, "/");
}

CASE(self_environ)
{
	setenv("IGNORED_AFTER_START", "1", 1);
	char buf[65536];
	int fd = CHECK_OK(open("/proc/self/environ", O_RDONLY));
	ssize_t n = CHECK_OK(read(fd, buf, sizeof buf));
	close(fd);
	/* The initial environment, not changes made since. */
	for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1)
		CHECK(strncmp(buf + i, "IGNORED_AFTER_START=", 20) != 0);
}

CASE(proc_thread_dirs)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d", getpid());
	struct stat st;
	CHECK_OK(stat(path, &st));
	CHECK(S_ISDIR(st.st_mode));
	snprintf(path, sizeof path, "/proc/thread-self");
	char buf[64];
	ssize_t n = CHECK_OK(readlink(path, buf, sizeof buf - 1));
	buf[n] = 0;
	char want[64];
	snprintf(want, sizeof want, "%d/task/%d", getpid(), gettid());
	CHECK_STREQ(buf, want);
}

CASE(proc_global_files)
{
	char buf[8192];
	CHECK_GT(st_read_file("/proc/meminfo", buf, sizeof buf), 0);
	CHECK_EQ(strncmp(buf, "MemTotal:", 9), 0);
	CHECK_GT(st_read_file("/proc/cpuinfo", buf, sizeof buf), 0);
	CHECK(strstr(buf, "processor") != NULL);
	CHECK_GT(st_read_file("/proc/uptime", buf, sizeof buf), 0);
	double up = 0, idle = 0;
	CHECK_EQ(sscanf(buf, "%lf %lf", &up, &idle), 2);
	CHECK_GT(st_read_file("/proc/loadavg", buf, sizeof buf), 0);
	CHECK_GT(st_read_file("/proc/version", buf, sizeof buf), 0);
	CHECK_EQ(strncmp(buf, "Linux version ", 14), 0);
	CHECK_GT(st_read_file("/proc/filesystems", buf, sizeof buf), 0);
	CHECK_GT(st_read_file("/proc/sys/kernel/pid_max", buf, sizeof buf), 0);
	CHECK_GT(atoi(buf), 0);
}

CASE(other_process_dir)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		for (;;)
			pause();
	}
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	/* Wait until it is asleep in pause(). */
	for (int i = 0; i < 5000; i++) {
		st_read_file(path, buf, sizeof buf);
		if (strstr(buf, ") S "))
			break;
		st_sleep_ms(1);
	}
	CHECK(strstr(buf, ") S ") != NULL);
	kill(pid, SIGKILL);
	st_wait(pid);
	struct stat st;
	CHECK_ERR(stat(path, &st), ENOENT);
}

/* A zombie stays in /proc (state Z, empty cmdline, its name) until it is reaped. */
CASE(zombie_shown_until_reaped)
{
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_NAME, "st_zombie");
		_exit(3);
	}
	char path[64], buf[1024];
	/* Wait until it has died, without reaping it. */
	siginfo_t si;
	CHECK_OK(waitid(P_PID, pid, &si, WEXITED | WNOWAIT));
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	CHECK_GT(st_read_file(path, buf, sizeof buf), 0);
	char want[64];
	snprintf(want, sizeof want, "%d (st_zombie) Z %d ", (int)pid, (int)getpid());
	CHECK_EQ(strncmp(buf, want, strlen(want)), 0);
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	CHECK_GT(st_read_file(path, buf, sizeof buf), 0);
	CHECK(strstr(buf, "State:\tZ (zombie)\n") != NULL);
	CHECK(strstr(buf, "Name:\tst_zombie\n") != NULL);
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	CHECK_EQ(st_read_file(path, buf, sizeof buf), 0);
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	CHECK_GT(st_read_file(path, buf, sizeof buf), 0);
	CHECK_STREQ(buf, "st_zombie\n");
	/* Listed in /proc. */
	DIR *d = opendir("/proc");
	CHECK(d != NULL);
	int found = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (atoi(e->d_name) == pid)
			found = 1;
	closedir(d);
	CHECK_EQ(found, 1);
	CHECK_EXITED(st_wait(pid), 3);
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	struct stat st;
	CHECK_ERR(stat(path, &st), ENOENT);
}

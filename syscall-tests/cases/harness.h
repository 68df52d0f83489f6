/*
 * harness.h: the shared test harness for rvisor's syscall conformance programs.
 *
 * Each cases/<family>.c includes this header exactly once and defines cases with
 *
 *     CASE(name) { ...assertions... }
 *
 * The compiled program supports:
 *     prog --list                 print the case names, one per line
 *     prog NAME                   run one case in this process: exit 0 = pass,
 *                                 nonzero = fail (a line "FAIL file:line: reason"
 *                                 is written to stderr first)
 *     prog --helper NAME ARGS...  run a helper (HELPER(name)), used by cases that
 *                                 re-execute the program (execve tests)
 *
 * Assertions stop the case (or the forked child they run in) at the first failure.
 * They never use stdio: a failure message is formatted into a buffer and written
 * with one write(2), so they are safe in forked children and signal handlers.
 */
#ifndef RVISOR_SYSCALL_TESTS_HARNESS_H
#define RVISOR_SYSCALL_TESTS_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ registry */

typedef void (*st_case_fn)(void);
typedef int (*st_helper_fn)(int argc, char **argv);

struct st_case {
	const char *name;
	st_case_fn fn;
	int line;
};

struct st_helper {
	const char *name;
	st_helper_fn fn;
};

#define ST_MAX_CASES 512
static struct st_case st_cases[ST_MAX_CASES];
static int st_ncases;
static struct st_helper st_helpers[64];
static int st_nhelpers;

/* argv[0] of this program (the harness runs it by absolute path). */
static const char *st_self;
/* The process that runs the case: only it removes the scratch directory. */
static pid_t st_main_pid;
static char st_tmpdir_buf[64];

static void st_register(const char *name, st_case_fn fn, int line)
{
	if (st_ncases >= ST_MAX_CASES) {
		static const char msg[] = "harness: too many cases\n";
		(void)!write(2, msg, sizeof msg - 1);
		_exit(3);
	}
	st_cases[st_ncases].name = name;
	st_cases[st_ncases].fn = fn;
	st_cases[st_ncases].line = line;
	st_ncases++;
}

static void st_register_helper(const char *name, st_helper_fn fn)
{
	st_helpers[st_nhelpers].name = name;
	st_helpers[st_nhelpers].fn = fn;
	st_nhelpers++;
}

#define CASE(name)                                                         \
	static void st_case_##name(void);                                  \
	__attribute__((constructor)) static void st_reg_##name(void)       \
	{                                                                  \
		st_register(#name, st_case_##name, __LINE__);              \
	}                                                                  \
	static void st_case_##name(void)

#define HELPER(name)                                                       \
	static int st_helper_##name(int argc, char **argv);                \
	__attribute__((constructor)) static void st_regh_##name(void)      \
	{                                                                  \
		st_register_helper(#name, st_helper_##name);               \
	}                                                                  \
	static int st_helper_##name(int argc, char **argv)

/* ------------------------------------------------------------------ failure */

static void st_cleanup(void);

static const char *st_errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

__attribute__((noreturn, format(printf, 3, 4))) static void
st_fail(const char *file, int line, const char *fmt, ...)
{
	char buf[1024];
	const char *base = strrchr(file, '/');
	int n = snprintf(buf, sizeof buf, "FAIL %s:%d: ", base ? base + 1 : file, line);
	va_list ap;
	va_start(ap, fmt);
	if (n < (int)sizeof buf)
		n += vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	(void)!write(2, buf, n);
	if (getpid() == st_main_pid)
		st_cleanup();
	_exit(1);
}

#define FAIL(...) st_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Formats a value for a message: decimal, plus errno (unless err < 0) when it is -1. */
static const char *st_fmt_val(char *buf, size_t cap, long long v, int err)
{
	if (v == -1 && err >= 0)
		snprintf(buf, cap, "-1 (errno %s)", st_errname(err));
	else if (v < -4096 || v > (1LL << 40))
		snprintf(buf, cap, "%lld (%#llx)", v, (unsigned long long)v);
	else
		snprintf(buf, cap, "%lld", v);
	return buf;
}

#define ST_CMP(a, op, b, sa, sb)                                                   \
	do {                                                                       \
		long long st_a_ = (long long)(a);                                  \
		int st_e_ = errno;                                                 \
		long long st_b_ = (long long)(b);                                  \
		if (!(st_a_ op st_b_)) {                                           \
			char st_x_[64], st_y_[64];                                 \
			FAIL("%s %s %s: got %s, expected %s %s", sa, #op, sb,     \
			     st_fmt_val(st_x_, sizeof st_x_, st_a_, st_e_),        \
			     #op, st_fmt_val(st_y_, sizeof st_y_, st_b_, -1));    \
		}                                                                  \
	} while (0)

#define CHECK_EQ(a, b) ST_CMP(a, ==, b, #a, #b)
#define CHECK_NE(a, b) ST_CMP(a, !=, b, #a, #b)
#define CHECK_LT(a, b) ST_CMP(a, <, b, #a, #b)
#define CHECK_LE(a, b) ST_CMP(a, <=, b, #a, #b)
#define CHECK_GT(a, b) ST_CMP(a, >, b, #a, #b)
#define CHECK_GE(a, b) ST_CMP(a, >=, b, #a, #b)

/* Unsigned comparisons, for values such as RLIM_INFINITY. */
#define ST_UCMP(a, op, b, sa, sb)                                                  \
	do {                                                                       \
		unsigned long long st_a_ = (unsigned long long)(a);                \
		unsigned long long st_b_ = (unsigned long long)(b);                \
		if (!(st_a_ op st_b_))                                             \
			FAIL("%s %s %s: got %llu, expected %s %llu", sa, #op, sb, \
			     st_a_, #op, st_b_);                                   \
	} while (0)

#define CHECK_UEQ(a, b) ST_UCMP(a, ==, b, #a, #b)
#define CHECK_ULE(a, b) ST_UCMP(a, <=, b, #a, #b)
#define CHECK_ULT(a, b) ST_UCMP(a, <, b, #a, #b)

#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond))                                                       \
			FAIL("check failed: %s (errno %s)", #cond, st_errname(errno)); \
	} while (0)

/* expr must not return -1; evaluates to its value. */
#define CHECK_OK(expr)                                                             \
	({                                                                         \
		errno = 0;                                                         \
		long long st_r_ = (long long)(expr);                               \
		if (st_r_ == -1)                                                   \
			FAIL("%s failed: errno %s (%s)", #expr, st_errname(errno), \
			     strerror(errno));                                     \
		st_r_;                                                             \
	})

/* expr must return -1 with errno == err. */
#define CHECK_ERR(expr, err)                                                       \
	do {                                                                       \
		errno = 0;                                                         \
		long long st_r_ = (long long)(expr);                               \
		int st_e_ = errno;                                                 \
		if (st_r_ != -1)                                                   \
			FAIL("%s: got %lld, expected -1 with errno %s", #expr,    \
			     st_r_, st_errname(err));                              \
		if (st_e_ != (err))                                                \
			FAIL("%s: got errno %s, expected %s", #expr,               \
			     st_errname(st_e_), st_errname(err));                  \
	} while (0)

/* For functions that return 0 or an error number (pthread_*, posix_*). */
#define CHECK_PT(expr)                                                             \
	do {                                                                       \
		int st_r_ = (expr);                                                \
		if (st_r_ != 0)                                                    \
			FAIL("%s returned %s", #expr, st_errname(st_r_));          \
	} while (0)

#define CHECK_PTR(expr)                                                            \
	({                                                                         \
		errno = 0;                                                         \
		void *st_p_ = (void *)(expr);                                      \
		if (st_p_ == NULL || st_p_ == MAP_FAILED)                          \
			FAIL("%s failed: errno %s", #expr, st_errname(errno));     \
		st_p_;                                                             \
	})

#define CHECK_STREQ(a, b)                                                          \
	do {                                                                       \
		const char *st_a_ = (a), *st_b_ = (b);                             \
		if (strcmp(st_a_, st_b_) != 0)                                     \
			FAIL("%s == %s: got \"%s\", expected \"%s\"", #a, #b,      \
			     st_a_, st_b_);                                        \
	} while (0)

#define CHECK_MEMEQ(a, b, n)                                                       \
	do {                                                                       \
		const unsigned char *st_a_ = (const void *)(a);                    \
		const unsigned char *st_b_ = (const void *)(b);                    \
		size_t st_n_ = (n);                                                \
		for (size_t st_i_ = 0; st_i_ < st_n_; st_i_++)                     \
			if (st_a_[st_i_] != st_b_[st_i_])                          \
				FAIL("%s == %s: differ at byte %zu: %#x != %#x",   \
				     #a, #b, st_i_, st_a_[st_i_], st_b_[st_i_]);   \
	} while (0)

/* ------------------------------------------------------------------ helpers */

static int st_chmod_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	/* Called before nftw reads the directory: make it readable, searchable and
	 * writable again in case the case took permissions away. */
	if (flag == FTW_D || flag == FTW_DNR)
		chmod(path, 0700);
	return 0;
}

static int st_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* A family's own clean-up (e.g. removing SysV IPC objects), run with st_cleanup. */
static void (*st_at_cleanup)(void);

static void st_cleanup(void)
{
	if (st_at_cleanup && getpid() == st_main_pid)
		st_at_cleanup();
	if (st_tmpdir_buf[0] && getpid() == st_main_pid) {
		if (chdir("/") != 0) {
		}
		nftw(st_tmpdir_buf, st_chmod_cb, 16, FTW_PHYS);
		nftw(st_tmpdir_buf, st_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		st_tmpdir_buf[0] = 0;
	}
}

/* A fresh scratch directory (mode 0755), removed when the case ends. */
static const char *st_tmpdir(void)
{
	if (!st_tmpdir_buf[0]) {
		strcpy(st_tmpdir_buf, "/tmp/rvisor-st-XXXXXX");
		if (!mkdtemp(st_tmpdir_buf)) {
			st_tmpdir_buf[0] = 0;
			FAIL("mkdtemp: %s", st_errname(errno));
		}
		if (chmod(st_tmpdir_buf, 0755) != 0)
			FAIL("chmod tmpdir: %s", st_errname(errno));
	}
	return st_tmpdir_buf;
}

/* "<tmpdir>/<name>" in a fresh allocation (leaked: cases are short-lived). */
static char *st_path(const char *name)
{
	const char *d = st_tmpdir();
	size_t n = strlen(d) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		FAIL("malloc");
	snprintf(p, n, "%s/%s", d, name);
	return p;
}
#define P(name) st_path(name)

static void st_write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		FAIL("open(%s): %s", path, st_errname(errno));
	size_t n = strlen(data);
	if (write(fd, data, n) != (ssize_t)n)
		FAIL("write(%s): %s", path, st_errname(errno));
	close(fd);
}

/* Reads up to cap-1 bytes and NUL-terminates; returns the length. */
static ssize_t st_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		FAIL("open(%s): %s", path, st_errname(errno));
	size_t off = 0;
	for (;;) {
		ssize_t r = read(fd, buf + off, cap - 1 - off);
		if (r < 0)
			FAIL("read(%s): %s", path, st_errname(errno));
		if (r == 0)
			break;
		off += r;
		if (off == cap - 1)
			break;
	}
	buf[off] = 0;
	close(fd);
	return off;
}

/* waitpid that retries EINTR and fails the case on error; returns the status. */
static int st_wait(pid_t pid)
{
	int status;
	pid_t r;
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	if (r != pid)
		FAIL("waitpid(%d): got %d errno %s", (int)pid, (int)r, st_errname(errno));
	return status;
}

#define CHECK_EXITED(status, code)                                                 \
	do {                                                                       \
		int st_s_ = (status);                                              \
		if (!WIFEXITED(st_s_))                                             \
			FAIL("%s: expected exit %d, got status %#x (%s%d)",       \
			     #status, (code), st_s_,                               \
			     WIFSIGNALED(st_s_) ? "signal " : "raw ",              \
			     WIFSIGNALED(st_s_) ? WTERMSIG(st_s_) : st_s_);        \
		if (WEXITSTATUS(st_s_) != (code))                                  \
			FAIL("%s: expected exit %d, got exit %d", #status, (code), \
			     WEXITSTATUS(st_s_));                                  \
	} while (0)

#define CHECK_SIGNALED(status, sig)                                                \
	do {                                                                       \
		int st_s_ = (status);                                              \
		if (!WIFSIGNALED(st_s_))                                           \
			FAIL("%s: expected signal %d, got status %#x", #status,    \
			     (sig), st_s_);                                        \
		if (WTERMSIG(st_s_) != (sig))                                      \
			FAIL("%s: expected signal %d, got signal %d", #status,     \
			     (sig), WTERMSIG(st_s_));                              \
	} while (0)

/* Forks; the child runs body and exits 0 (assertions in it exit 1). Waits, checks 0. */
#define IN_CHILD(...)                                                              \
	do {                                                                       \
		pid_t st_pid_ = fork();                                            \
		if (st_pid_ < 0)                                                   \
			FAIL("fork: %s", st_errname(errno));                       \
		if (st_pid_ == 0) {                                                \
			__VA_ARGS__;                                               \
			_exit(0);                                                  \
		}                                                                  \
		CHECK_EXITED(st_wait(st_pid_), 0);                                 \
	} while (0)

static long long st_now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long st_mono_ms(void)
{
	return st_now_ns(CLOCK_MONOTONIC) / 1000000;
}

static void st_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* Installs a handler with sigaction (flags, empty mask). */
static void st_handle(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		FAIL("sigaction(%d): %s", sig, st_errname(errno));
}

static void st_handle_info(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = flags | SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		FAIL("sigaction(%d): %s", sig, st_errname(errno));
}

/* Waits until *flag reaches n, counted by a handler of sig. No wake-up is lost: sig
   stays blocked while the flag is tested and is unblocked only inside sigsuspend (a
   plain `while (!flag) pause();` hangs if the handler runs between test and pause). */
static void st_wait_flag(volatile sig_atomic_t *flag, int n, int sig)
{
	sigset_t block, old, wait;
	sigemptyset(&block);
	sigaddset(&block, sig);
	sigprocmask(SIG_BLOCK, &block, &old);
	wait = old;
	sigdelset(&wait, sig);
	while (*flag < n)
		sigsuspend(&wait);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void st_block(int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	if (sigprocmask(SIG_BLOCK, &s, NULL) != 0)
		FAIL("sigprocmask: %s", st_errname(errno));
}

/* A fresh network namespace with lo up, for cases that change network settings or need
 * a quiet loopback. Returns 0 (and says SKIP) when the case cannot have one of its own
 * (natively as an ordinary user); under rvisor the sandbox's stack is already its own. */
static int st_own_netns(void)
{
	if (unshare(CLONE_NEWNET) == 0) {
		int s = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
		struct ifreq ifr = { 0 };
		strcpy(ifr.ifr_name, "lo");
		CHECK_OK(ioctl(s, SIOCGIFFLAGS, &ifr));
		ifr.ifr_flags |= IFF_UP;
		CHECK_OK(ioctl(s, SIOCSIFFLAGS, &ifr));
		close(s);
		return 1;
	}
	if (errno == ENOSYS || errno == EINVAL)
		return 1;
	fprintf(stderr, "SKIP: no network namespace of the case's own (%s)\n",
		st_errname(errno));
	return 0;
}

static void st_unblock(int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	if (sigprocmask(SIG_UNBLOCK, &s, NULL) != 0)
		FAIL("sigprocmask: %s", st_errname(errno));
}

static int st_is_root(void)
{
	return geteuid() == 0;
}

/* In a child: become an unprivileged user (uid/gid 65534) if running as root. */
static void st_drop_privileges(void)
{
	if (geteuid() != 0)
		return;
	gid_t g = 65534;
	if (setgroups(1, &g) != 0)
		FAIL("setgroups: %s", st_errname(errno));
	if (setresgid(65534, 65534, 65534) != 0)
		FAIL("setresgid: %s", st_errname(errno));
	if (setresuid(65534, 65534, 65534) != 0)
		FAIL("setresuid: %s", st_errname(errno));
}

/* ------------------------------------------------------------------ main */

static int st_case_cmp(const void *a, const void *b)
{
	return ((const struct st_case *)a)->line - ((const struct st_case *)b)->line;
}

static void st_reset_process_state(void)
{
	/* Start every case from default signal dispositions and an empty mask. */
	for (int s = 1; s < NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		signal(s, SIG_DFL);
	}
	sigset_t empty;
	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);
	umask(022);
}

int main(int argc, char **argv)
{
	static char self_buf[PATH_MAX];
	st_self = argv[0];
	if (strchr(argv[0], '/') && realpath(argv[0], self_buf))
		st_self = self_buf;
	qsort(st_cases, st_ncases, sizeof st_cases[0], st_case_cmp);
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (int i = 0; i < st_ncases; i++)
			printf("%s\n", st_cases[i].name);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "--helper") == 0) {
		for (int i = 0; i < st_nhelpers; i++)
			if (strcmp(st_helpers[i].name, argv[2]) == 0)
				return st_helpers[i].fn(argc - 2, argv + 2);
		fprintf(stderr, "no helper named %s\n", argv[2]);
		return 2;
	}
	if (argc == 2) {
		for (int i = 0; i < st_ncases; i++) {
			if (strcmp(st_cases[i].name, argv[1]) != 0)
				continue;
			st_main_pid = getpid();
			st_reset_process_state();
			setvbuf(stdout, NULL, _IONBF, 0);
			st_cases[i].fn();
			st_cleanup();
			return 0;
		}
		fprintf(stderr, "FAIL no case named %s\n", argv[1]);
		return 2;
	}
	fprintf(stderr, "usage: %s --list | CASE | --helper NAME ARGS...\n", argv[0]);
	return 2;
}

#endif

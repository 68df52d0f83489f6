/* vfork_clone: vfork's shared memory and suspended parent, clone flags (CLONE_VM,
 * CLONE_FILES, CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID), clone3,
 * posix_spawn. */
#include "harness.h"

#include <linux/futex.h>
#include <spawn.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

extern char **environ;

struct clone_args_v0 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static volatile int shared_var;

CASE(vfork_child_shares_memory)
{
	shared_var = 0;
	volatile int local = 1;
	pid_t pid = vfork();
	if (pid == 0) {
		shared_var = 42;
		local = 2;
		_exit(0);
	}
	CHECK_GT(pid, 0);
	/* The child ran in our memory: both its writes are visible. */
	CHECK_EQ(shared_var, 42);
	CHECK_EQ(local, 2);
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(vfork_parent_waits_until_exit_or_exec)
{
	shared_var = 0;
	long long t0 = st_mono_ms();
	pid_t pid = vfork();
	if (pid == 0) {
		/* The parent is suspended while we sleep. */
		struct timespec ts = { 0, 150 * 1000000L };
		nanosleep(&ts, NULL);
		shared_var = 7;
		char *argv[] = { "true", NULL };
		execve("/bin/true", argv, environ);
		_exit(127);
	}
	CHECK_GE(st_mono_ms() - t0, 140);
	CHECK_EQ(shared_var, 7);
	CHECK_EXITED(st_wait(pid), 0);
	/* A failed exec in the child is reported through its exit status. */
	pid = vfork();
	if (pid == 0) {
		char *argv[] = { "nope", NULL };
		execve("/nonexistent/nope", argv, environ);
		_exit(127);
	}
	CHECK_EXITED(st_wait(pid), 127);
}

CASE(vfork_child_gets_own_pid)
{
	pid_t parent = getpid();
	volatile pid_t seen_pid = 0, seen_ppid = 0;
	pid_t pid = vfork();
	if (pid == 0) {
		seen_pid = getpid();
		seen_ppid = getppid();
		_exit(0);
	}
	CHECK_EQ(seen_pid, pid);
	CHECK_EQ(seen_ppid, parent);
	CHECK_EQ(getpid(), parent);
	CHECK_EXITED(st_wait(pid), 0);
}

static int set_shared(void *arg)
{
	shared_var = (int)(long)arg;
	return 0;
}

CASE(clone_vm_shares_memory_and_files_table)
{
	size_t sz = 64 * 1024;
	char *stack = malloc(sz);
	shared_var = 0;
	/* CLONE_VM: the child's store lands in our memory. */
	pid_t pid = CHECK_OK(clone(set_shared, stack + sz, CLONE_VM | SIGCHLD, (void *)77L));
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(shared_var, 77);
	/* Without CLONE_VM it lands in the child's copy. */
	pid = CHECK_OK(clone(set_shared, stack + sz, SIGCHLD, (void *)88L));
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(shared_var, 77);
	free(stack);
}

static int close_arg_fd(void *arg)
{
	return close((int)(long)arg) == 0 ? 0 : 1;
}

CASE(clone_files_shares_descriptor_table)
{
	size_t sz = 64 * 1024;
	char *stack = malloc(sz);
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	/* Without CLONE_FILES the child closes its own copy. */
	pid_t pid = CHECK_OK(clone(close_arg_fd, stack + sz, SIGCHLD, (void *)(long)fd));
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(fcntl(fd, F_GETFD), 0);
	/* With CLONE_FILES it closes ours. */
	pid = CHECK_OK(clone(close_arg_fd, stack + sz, CLONE_FILES | SIGCHLD, (void *)(long)fd));
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_ERR(fcntl(fd, F_GETFD), EBADF);
	free(stack);
}

/* A raw thread: it must not touch glibc's TLS (errno, stack protector canary slots are
 * provided by the fake TCB below), so it only uses inline assembly and plain stores. */
static uint64_t fake_tcb[64] __attribute__((aligned(64)));
static volatile uint64_t thread_saw_fs;
static volatile int thread_ctid = -1;
static volatile int thread_ptid = -1;

__attribute__((noinline, no_stack_protector)) static int raw_thread(void *arg)
{
	uint64_t fs0;
	__asm__ volatile("movq %%fs:0, %0" : "=r"(fs0));
	thread_saw_fs = fs0;
	shared_var = (int)(long)arg;
	/* Exit only this thread (SYS_exit), whatever the wrapper would do. */
	__asm__ volatile("syscall" ::"a"(SYS_exit), "D"(0) : "rcx", "r11", "memory");
	return 0;
}

CASE(clone_thread_settls_and_cleartid)
{
	size_t sz = 64 * 1024;
	char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(stack != MAP_FAILED);
	/* x86-64 TLS: %fs:0 holds the thread pointer itself. */
	fake_tcb[0] = (uint64_t)(uintptr_t)fake_tcb;
	fake_tcb[5] = 0x1234; /* the canary slot, in case */
	shared_var = 0;
	thread_ctid = -1;
	int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
		    CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
	int tid = CHECK_OK(clone(raw_thread, stack + sz, flags, (void *)99L, &thread_ptid,
				 fake_tcb, &thread_ctid));
	/* CLONE_PARENT_SETTID stored the tid before clone returned. */
	CHECK_EQ(thread_ptid, tid);
	/* Wait for the kernel to clear the tid and wake us (CLONE_CHILD_CLEARTID). */
	long long deadline = st_mono_ms() + 5000;
	for (;;) {
		int v = thread_ctid;
		if (v == 0)
			break;
		struct timespec to = { 0, 100 * 1000000L };
		long r = syscall(SYS_futex, &thread_ctid, FUTEX_WAIT, v, &to, NULL, 0);
		if (r != 0 && errno != EAGAIN && errno != ETIMEDOUT && errno != EINTR)
			FAIL("futex wait: %s", st_errname(errno));
		if (st_mono_ms() > deadline)
			FAIL("thread never cleared its tid (ctid %d)", thread_ctid);
	}
	CHECK_EQ(shared_var, 99);
	CHECK_EQ(thread_saw_fs, (uintptr_t)fake_tcb);
	/* A thread is in our thread group: not a child to wait for. */
	CHECK_ERR(waitpid(tid, NULL, __WALL | WNOHANG), ECHILD);
	/* And its tid goes away (the clear happens a little before the release). */
	while (syscall(SYS_tgkill, getpid(), tid, 0) == 0 && st_mono_ms() < deadline)
		st_sleep_ms(1);
	CHECK_ERR(syscall(SYS_tgkill, getpid(), tid, 0), ESRCH);
}

CASE(clone3_fork_like)
{
	struct clone_args_v0 ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		syscall(SYS_exit_group, 10);
	CHECK_GT(pid, 0);
	CHECK_EXITED(st_wait(pid), 10);
	/* A larger struct with a zeroed tail is accepted... */
	char big[128];
	memset(big, 0, sizeof big);
	memcpy(big, &ca, sizeof ca);
	pid = syscall(SYS_clone3, big, sizeof big);
	if (pid == 0)
		syscall(SYS_exit_group, 13);
	CHECK_GT(pid, 0);
	CHECK_EXITED(st_wait(pid), 13);
	/* ...but a nonzero byte in the unknown tail is E2BIG. */
	big[sizeof big - 1] = 1;
	CHECK_ERR(syscall(SYS_clone3, big, sizeof big), E2BIG);
	/* Errors: a size below the first version, unknown flags, a bad exit signal. */
	CHECK_ERR(syscall(SYS_clone3, &ca, 32), EINVAL);
	memset(&ca, 0, sizeof ca);
	ca.flags = 1ULL << 40;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = 200;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	/* CLONE_THREAD needs CLONE_SIGHAND, which needs CLONE_VM. */
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_SIGHAND;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	CHECK_ERR(syscall(SYS_clone3, (void *)8, sizeof ca), EFAULT);
	/* CLONE_PARENT_SETTID stores the tid in the parent after the child's copy of memory
	 * was made: the child still sees 0. */
	int ptid = 0;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	ca.flags = CLONE_PARENT_SETTID;
	ca.parent_tid = (uint64_t)(uintptr_t)&ptid;
	pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		syscall(SYS_exit_group, ptid == 0 ? 11 : 12);
	CHECK_GT(pid, 0);
	CHECK_EQ(ptid, pid);
	CHECK_EXITED(st_wait(pid), 11);
}

CASE(clone3_pidfd)
{
	int pidfd = -1;
	struct clone_args_v0 ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		syscall(SYS_exit_group, 12);
	CHECK_GT(pid, 0);
	CHECK_GE(pidfd, 0);
	CHECK_EQ(fcntl(pidfd, F_GETFD), FD_CLOEXEC);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK_OK(waitid(P_PIDFD, pidfd, &si, WEXITED));
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, 12);
	close(pidfd);
}

CASE(posix_spawn_runs_and_reports_exec_failure)
{
	pid_t pid;
	char *argv[] = { "sh", "-c", "exit 17", NULL };
	CHECK_PT(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ));
	CHECK_EXITED(st_wait(pid), 17);
	/* posix_spawn reports a failed exec as its return value (glibc uses CLONE_VFORK). */
	char *bad[] = { "nope", NULL };
	CHECK_EQ(posix_spawn(&pid, "/nonexistent/nope", NULL, NULL, bad, environ), ENOENT);
	/* File actions run in the child. */
	posix_spawn_file_actions_t fa;
	CHECK_PT(posix_spawn_file_actions_init(&fa));
	CHECK_PT(posix_spawn_file_actions_addopen(&fa, 1, P("out"), O_WRONLY | O_CREAT | O_TRUNC, 0644));
	char *echo[] = { "echo", "spawned", NULL };
	CHECK_PT(posix_spawnp(&pid, "echo", &fa, NULL, echo, environ));
	CHECK_EXITED(st_wait(pid), 0);
	posix_spawn_file_actions_destroy(&fa);
	char buf[32];
	st_read_file(P("out"), buf, sizeof buf);
	CHECK_STREQ(buf, "spawned\n");
}

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

static void usr1_handler(int s)
{
	(void)s;
}

CASE(clone3_clear_sighand)
{
	st_handle(SIGUSR1, usr1_handler, 0);
	signal(SIGUSR2, SIG_IGN);
	struct clone_args_v0 ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_CLEAR_SIGHAND;
	ca.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0) {
		/* Handlers are reset to the default; ignored signals stay ignored. */
		struct sigaction a, b;
		sigaction(SIGUSR1, NULL, &a);
		sigaction(SIGUSR2, NULL, &b);
		syscall(SYS_exit_group, a.sa_handler == SIG_DFL && b.sa_handler == SIG_IGN ? 0 : 1);
	}
	CHECK_GT(pid, 0);
	CHECK_EXITED(st_wait(pid), 0);
	/* Ours are untouched. */
	struct sigaction a;
	CHECK_OK(sigaction(SIGUSR1, NULL, &a));
	CHECK(a.sa_handler == usr1_handler);
	/* Clearing handlers one shares makes no sense. */
	ca.flags = CLONE_CLEAR_SIGHAND | CLONE_SIGHAND | CLONE_VM;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	signal(SIGUSR2, SIG_DFL);
}

CASE(clone3_argument_errors)
{
	struct clone_args_v2 ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	/* Larger than a page: E2BIG. */
	CHECK_ERR(syscall(SYS_clone3, &ca, 4097), E2BIG);
	/* The CSIGNAL bits are not flags of clone3; nor is CLONE_DETACHED. */
	ca.flags = SIGCHLD;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	ca.flags = 0x00400000;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	/* An exit signal for a thread or a sibling. */
	ca.flags = CLONE_PARENT;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	/* A stack needs a size, and a size a stack. */
	ca.flags = 0;
	ca.stack_size = 4096;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	ca.stack_size = 0;
	ca.stack = 4096;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	ca.stack = 0;
	/* set_tid and set_tid_size go together, and this is one pid namespace deep. */
	pid_t want = getpid();
	ca.set_tid_size = 1;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 0;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	ca.set_tid_size = 40;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	/* A pid in use: EEXIST (with the privilege to choose pids at all). */
	ca.set_tid_size = 1;
	if (st_is_root())
		CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EEXIST);
	else
		CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EPERM);
	want = 0;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
	/* CLONE_PIDFD and CLONE_PARENT_SETTID may not share the int. */
	int fd = -1;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	ca.flags = CLONE_PIDFD | CLONE_PARENT_SETTID;
	ca.pidfd = ca.parent_tid = (uint64_t)(uintptr_t)&fd;
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
}

CASE(clone3_set_tid_chooses_the_pid)
{
	if (!st_is_root())
		return; /* needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (EPERM: see above) */
	char buf[32];
	st_read_file("/proc/sys/kernel/pid_max", buf, sizeof buf);
	pid_t want = (pid_t)strtol(buf, NULL, 10) - 7;
	/* A pid that names no process and no group. */
	while (kill(want, 0) == 0 || errno != ESRCH || kill(-want, 0) == 0 || errno != ESRCH)
		want--;
	struct clone_args_v2 ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 1;
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		syscall(SYS_exit_group, getpid() == want ? 0 : 1);
	CHECK_EQ(pid, want);
	CHECK_EXITED(st_wait(pid), 0);
	/* pid_max itself is out of range. */
	want = (pid_t)strtol(buf, NULL, 10);
	CHECK_ERR(syscall(SYS_clone3, &ca, sizeof ca), EINVAL);
}

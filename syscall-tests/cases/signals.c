/* Signal delivery, handlers, masks, siginfo, queueing, alternate stacks, EINTR. */
#include "harness.h"
#include <setjmp.h>

static volatile sig_atomic_t hits;
static volatile int last_sig;
static siginfo_t last_info;

static void count_handler(int sig)
{
	hits++;
	last_sig = sig;
}

static void info_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	hits++;
	last_sig = sig;
	last_info = *si;
}

CASE(raise_runs_handler)
{
	st_handle(SIGUSR1, count_handler, 0);
	CHECK_OK(raise(SIGUSR1));
	CHECK_EQ(hits, 1);
	CHECK_EQ(last_sig, SIGUSR1);
	CHECK_OK(kill(getpid(), SIGUSR1));
	CHECK_EQ(hits, 2);
}

CASE(siginfo_from_kill)
{
	st_handle_info(SIGUSR1, info_handler, 0);
	CHECK_OK(kill(getpid(), SIGUSR1));
	CHECK_EQ(hits, 1);
	CHECK_EQ(last_info.si_signo, SIGUSR1);
	CHECK_EQ(last_info.si_code, SI_USER);
	CHECK_EQ(last_info.si_pid, getpid());
	CHECK_EQ(last_info.si_uid, getuid());
}

CASE(siginfo_from_other_process)
{
	st_block(SIGUSR2);
	st_handle_info(SIGUSR2, info_handler, 0);
	pid_t parent = getpid();
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		kill(parent, SIGUSR2);
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	st_unblock(SIGUSR2);
	CHECK_EQ(hits, 1);
	CHECK_EQ(last_info.si_pid, pid);
	CHECK_EQ(last_info.si_code, SI_USER);
}

CASE(sigqueue_carries_value)
{
	st_handle_info(SIGUSR1, info_handler, 0);
	union sigval v = { .sival_int = 1234 };
	CHECK_OK(sigqueue(getpid(), SIGUSR1, v));
	CHECK_EQ(hits, 1);
	CHECK_EQ(last_info.si_code, SI_QUEUE);
	CHECK_EQ(last_info.si_value.sival_int, 1234);
	CHECK_EQ(last_info.si_pid, getpid());
}

CASE(blocked_signal_pends_until_unblocked)
{
	st_handle(SIGUSR1, count_handler, 0);
	st_block(SIGUSR1);
	CHECK_OK(raise(SIGUSR1));
	CHECK_EQ(hits, 0);
	sigset_t pend;
	CHECK_OK(sigpending(&pend));
	CHECK_EQ(sigismember(&pend, SIGUSR1), 1);
	CHECK_EQ(sigismember(&pend, SIGUSR2), 0);
	/* Delivered before sigprocmask returns. */
	st_unblock(SIGUSR1);
	CHECK_EQ(hits, 1);
	CHECK_OK(sigpending(&pend));
	CHECK_EQ(sigismember(&pend, SIGUSR1), 0);
}

CASE(standard_signals_coalesce_rt_signals_queue)
{
	st_handle(SIGUSR1, count_handler, 0);
	st_block(SIGUSR1);
	for (int i = 0; i < 3; i++)
		raise(SIGUSR1);
	st_unblock(SIGUSR1);
	CHECK_EQ(hits, 1);
	hits = 0;
	st_handle(SIGRTMIN, count_handler, 0);
	st_block(SIGRTMIN);
	for (int i = 0; i < 3; i++)
		raise(SIGRTMIN);
	st_unblock(SIGRTMIN);
	CHECK_EQ(hits, 3);
}

static int order[8];
static volatile int norder;
static void order_handler(int sig)
{
	order[norder++] = sig;
}

CASE(rt_signals_delivered_lowest_first)
{
	/* Each handler blocks every signal, so one runs at a time (otherwise frames nest
	 * and the last one set up runs first). */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = order_handler;
	sigfillset(&sa.sa_mask);
	CHECK_OK(sigaction(SIGRTMIN + 1, &sa, NULL));
	CHECK_OK(sigaction(SIGRTMIN + 3, &sa, NULL));
	sigset_t s, old;
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 1);
	sigaddset(&s, SIGRTMIN + 3);
	sigprocmask(SIG_BLOCK, &s, &old);
	raise(SIGRTMIN + 3);
	raise(SIGRTMIN + 1);
	raise(SIGRTMIN + 3);
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK_EQ(norder, 3);
	CHECK_EQ(order[0], SIGRTMIN + 1);
	CHECK_EQ(order[1], SIGRTMIN + 3);
	CHECK_EQ(order[2], SIGRTMIN + 3);
}

CASE(sig_ign_discards)
{
	signal(SIGUSR1, SIG_IGN);
	CHECK_OK(raise(SIGUSR1));
	/* A blocked signal stays pending even when ignored (the disposition may change
	 * before it is unblocked); unblocking it then discards it. */
	st_block(SIGUSR1);
	raise(SIGUSR1);
	sigset_t pend;
	sigpending(&pend);
	CHECK_EQ(sigismember(&pend, SIGUSR1), 1);
	st_unblock(SIGUSR1);
	sigpending(&pend);
	CHECK_EQ(sigismember(&pend, SIGUSR1), 0);
}

CASE(setting_sig_ign_discards_pending)
{
	st_block(SIGUSR1);
	raise(SIGUSR1);
	sigset_t pend;
	sigpending(&pend);
	CHECK_EQ(sigismember(&pend, SIGUSR1), 1);
	signal(SIGUSR1, SIG_IGN);
	sigpending(&pend);
	CHECK_EQ(sigismember(&pend, SIGUSR1), 0);
	signal(SIGUSR1, SIG_DFL);
	st_unblock(SIGUSR1);
}

CASE(default_actions)
{
	int sigs[] = { SIGTERM, SIGUSR1, SIGHUP, SIGINT, SIGALRM };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		pid_t pid = CHECK_OK(fork());
		if (pid == 0) {
			raise(sigs[i]);
			_exit(0);
		}
		CHECK_SIGNALED(st_wait(pid), sigs[i]);
	}
	/* SIGCHLD, SIGURG and SIGWINCH are ignored by default. */
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		raise(SIGCHLD);
		raise(SIGURG);
		raise(SIGWINCH);
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(abort_raises_sigabrt)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		abort();
	}
	/* The core-dump flag depends on RLIMIT_CORE and the host: ignore it. */
	int st = st_wait(pid) & ~0x80;
	CHECK_SIGNALED(st, SIGABRT);
}

static volatile int blocked_in_handler;
static void mask_probe(int sig)
{
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	blocked_in_handler = sigismember(&cur, sig) * 10 + sigismember(&cur, SIGUSR2);
	hits++;
}

CASE(handler_masks_own_signal_and_sa_mask)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = mask_probe;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
	raise(SIGUSR1);
	CHECK_EQ(hits, 1);
	CHECK_EQ(blocked_in_handler, 11);
	/* The mask is restored after the handler returns. */
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	CHECK_EQ(sigismember(&cur, SIGUSR1), 0);
	CHECK_EQ(sigismember(&cur, SIGUSR2), 0);
	/* SA_NODEFER leaves the signal unblocked. */
	sa.sa_flags = SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
	raise(SIGUSR1);
	CHECK_EQ(blocked_in_handler, 0);
}

CASE(sa_resethand)
{
	st_handle(SIGUSR1, count_handler, SA_RESETHAND);
	raise(SIGUSR1);
	CHECK_EQ(hits, 1);
	struct sigaction sa;
	CHECK_OK(sigaction(SIGUSR1, NULL, &sa));
	CHECK(sa.sa_handler == SIG_DFL);
}

CASE(sigaction_returns_old)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = count_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
	CHECK_OK(sigaction(SIGUSR1, NULL, &old));
	CHECK(old.sa_handler == count_handler);
	CHECK(old.sa_flags & SA_RESTART);
	CHECK_EQ(sigismember(&old.sa_mask, SIGINT), 1);
	CHECK_ERR(sigaction(SIGKILL, &sa, NULL), EINVAL);
	CHECK_ERR(sigaction(SIGSTOP, &sa, NULL), EINVAL);
	CHECK_ERR(sigaction(0, &sa, NULL), EINVAL);
	CHECK_ERR(sigaction(_NSIG + 1, &sa, NULL), EINVAL);
	/* SIGKILL's disposition can be queried. */
	CHECK_OK(sigaction(SIGKILL, NULL, &old));
}

CASE(sigprocmask_cannot_block_kill_stop)
{
	sigset_t all, cur;
	sigfillset(&all);
	CHECK_OK(syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8));
	CHECK_OK(syscall(SYS_rt_sigprocmask, SIG_SETMASK, NULL, &cur, 8));
	CHECK_EQ(sigismember(&cur, SIGKILL), 0);
	CHECK_EQ(sigismember(&cur, SIGSTOP), 0);
	CHECK_EQ(sigismember(&cur, SIGUSR1), 1);
	CHECK_ERR(syscall(SYS_rt_sigprocmask, 99, &all, NULL, 8), EINVAL);
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 4), EINVAL);
}

static char *alt_base;
static size_t alt_size;
static volatile int on_alt;
static void alt_handler(int sig)
{
	(void)sig;
	char local;
	on_alt = (&local >= alt_base && &local < alt_base + alt_size);
	stack_t cur;
	sigaltstack(NULL, &cur);
	if (!(cur.ss_flags & SS_ONSTACK))
		on_alt = 0;
}

CASE(sigaltstack_used_with_sa_onstack)
{
	alt_size = 64 * 1024;
	alt_base = malloc(alt_size);
	stack_t ss = { .ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0 };
	CHECK_OK(sigaltstack(&ss, NULL));
	stack_t old;
	CHECK_OK(sigaltstack(NULL, &old));
	CHECK_EQ((uintptr_t)old.ss_sp, (uintptr_t)alt_base);
	CHECK_EQ(old.ss_size, alt_size);
	CHECK_EQ(old.ss_flags, 0);
	st_handle(SIGUSR1, alt_handler, SA_ONSTACK);
	raise(SIGUSR1);
	CHECK_EQ(on_alt, 1);
	/* Without SA_ONSTACK the normal stack is used. */
	st_handle(SIGUSR1, alt_handler, 0);
	raise(SIGUSR1);
	CHECK_EQ(on_alt, 0);
	stack_t small = { .ss_sp = alt_base, .ss_size = 100, .ss_flags = 0 };
	CHECK_ERR(sigaltstack(&small, NULL), ENOMEM);
	stack_t dis = { .ss_flags = SS_DISABLE };
	CHECK_OK(sigaltstack(&dis, NULL));
	CHECK_OK(sigaltstack(NULL, &old));
	CHECK_EQ(old.ss_flags, SS_DISABLE);
}

CASE(read_interrupted_eintr_without_restart)
{
	int pfd[2];
	CHECK_OK(pipe(pfd));
	st_handle(SIGALRM, count_handler, 0);
	struct itimerval it = { { 0, 0 }, { 0, 50000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	char c;
	CHECK_ERR(read(pfd[0], &c, 1), EINTR);
	CHECK_EQ(hits, 1);
	close(pfd[0]);
	close(pfd[1]);
}

CASE(read_restarted_with_sa_restart)
{
	int pfd[2];
	CHECK_OK(pipe(pfd));
	st_handle(SIGUSR1, count_handler, SA_RESTART);
	pid_t parent = getpid();
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(50);
		kill(parent, SIGUSR1);
		st_sleep_ms(100);
		(void)!write(pfd[1], "z", 1);
		_exit(0);
	}
	char c = 0;
	CHECK_EQ(read(pfd[0], &c, 1), 1);
	CHECK_EQ(c, 'z');
	CHECK_EQ(hits, 1);
	CHECK_EXITED(st_wait(pid), 0);
	close(pfd[0]);
	close(pfd[1]);
}

CASE(sigsuspend_waits_for_signal)
{
	st_handle(SIGUSR1, count_handler, 0);
	st_block(SIGUSR1);
	pid_t parent = getpid();
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		st_sleep_ms(20);
		kill(parent, SIGUSR1);
		_exit(0);
	}
	sigset_t empty;
	sigemptyset(&empty);
	CHECK_ERR(sigsuspend(&empty), EINTR);
	CHECK_EQ(hits, 1);
	/* The old mask is back. */
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	CHECK_EQ(sigismember(&cur, SIGUSR1), 1);
	st_wait(pid);
}

CASE(sigtimedwait_takes_pending)
{
	st_block(SIGUSR1);
	union sigval v = { .sival_int = 99 };
	sigqueue(getpid(), SIGUSR1, v);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	siginfo_t si;
	struct timespec ts = { 1, 0 };
	CHECK_EQ(sigtimedwait(&set, &si, &ts), SIGUSR1);
	CHECK_EQ(si.si_code, SI_QUEUE);
	CHECK_EQ(si.si_value.sival_int, 99);
	struct timespec short_ts = { 0, 50000000 };
	long long t0 = st_mono_ms();
	CHECK_ERR(sigtimedwait(&set, &si, &short_ts), EAGAIN);
	CHECK_GE(st_mono_ms() - t0, 45);
	sigpending(&set);
	CHECK_EQ(sigismember(&set, SIGUSR1), 0);
}

CASE(sigwait_consumes_signal)
{
	st_block(SIGUSR2);
	raise(SIGUSR2);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	int sig = 0;
	CHECK_PT(sigwait(&set, &sig));
	CHECK_EQ(sig, SIGUSR2);
}

CASE(kill_errors)
{
	CHECK_ERR(kill(getpid(), 999), EINVAL);
	CHECK_ERR(kill(getpid(), -1), EINVAL);
	CHECK_ERR(kill(0x3ffffff0, SIGUSR1), ESRCH);
	/* Signal 0 only checks that the process exists. */
	CHECK_OK(kill(getpid(), 0));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	st_wait(pid);
	CHECK_ERR(kill(pid, 0), ESRCH);
}

static volatile int fpe_code;
static sigjmp_buf jb;
static void fpe_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	fpe_code = si->si_code;
	siglongjmp(jb, 1);
}

CASE(divide_by_zero_sigfpe)
{
	st_handle_info(SIGFPE, fpe_handler, 0);
	volatile int zero = 0, r = 0;
	if (sigsetjmp(jb, 1) == 0)
		r = 10 / zero;
	(void)r;
	CHECK_EQ(fpe_code, FPE_INTDIV);
}

static volatile int segv_count;
static void segv_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	segv_count++;
	siglongjmp(jb, 1);
}

CASE(handler_reentered_after_longjmp)
{
	st_handle_info(SIGSEGV, segv_handler, 0);
	for (int i = 0; i < 5; i++) {
		if (sigsetjmp(jb, 1) == 0)
			*(volatile int *)8 = 1;
	}
	CHECK_EQ(segv_count, 5);
}

static int wait_for_usr1(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	struct timespec ts = { 5, 0 };
	siginfo_t si;
	return sigtimedwait(&set, &si, &ts) == SIGUSR1;
}

CASE(signal_to_process_group)
{
	/* A new group of two processes; kill(0, ...) from one reaches both. */
	IN_CHILD({
		CHECK_OK(setpgid(0, 0));
		st_block(SIGUSR1);
		pid_t b = CHECK_OK(fork());
		if (b == 0) {
			kill(0, SIGUSR1);
			_exit(wait_for_usr1() ? 0 : 1);
		}
		CHECK(wait_for_usr1());
		CHECK_EXITED(st_wait(b), 0);
		/* kill(-pgid, ...) does the same. */
		CHECK_OK(kill(-getpgrp(), SIGUSR1));
		CHECK(wait_for_usr1());
	});
}

CASE(pause_returns_after_handler)
{
	st_handle(SIGALRM, count_handler, 0);
	struct itimerval it = { { 0, 0 }, { 0, 30000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	CHECK_ERR(pause(), EINTR);
	CHECK_EQ(hits, 1);
}

CASE(sigpipe_default_kills)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		int pfd[2];
		pipe(pfd);
		close(pfd[0]);
		(void)!write(pfd[1], "x", 1);
		_exit(0);
	}
	CHECK_SIGNALED(st_wait(pid), SIGPIPE);
}

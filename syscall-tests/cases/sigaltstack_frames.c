/* sigaltstack_frames: alternate signal stacks (SS_ONSTACK, EPERM while on it, nesting,
 * fork/thread inheritance, stack overflow), and signal frames: sigreturn restores the
 * registers and the mask recorded in the ucontext, SA_NODEFER, nested handlers. */
#include "harness.h"

#include <setjmp.h>
#include <sys/resource.h>
#include <ucontext.h>

#define ALT_SIZE (64 * 1024)
static char *alt_base;

static int on_alt(const void *p)
{
	return (const char *)p >= alt_base && (const char *)p < alt_base + ALT_SIZE;
}

static void install_alt(void)
{
	alt_base = malloc(ALT_SIZE);
	stack_t ss = { .ss_sp = alt_base, .ss_size = ALT_SIZE, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0)
		FAIL("sigaltstack: %s", st_errname(errno));
}

static volatile int h_on_alt, h_flags, h_eperm;

static void query_handler(int sig)
{
	(void)sig;
	int local;
	h_on_alt = on_alt(&local);
	stack_t cur;
	sigaltstack(NULL, &cur);
	h_flags = cur.ss_flags;
	/* Changing the alternate stack while running on it is refused. */
	stack_t other = { .ss_sp = alt_base, .ss_size = ALT_SIZE, .ss_flags = 0 };
	h_eperm = sigaltstack(&other, NULL) == -1 && errno == EPERM;
}

CASE(onstack_flag_and_eperm_inside_handler)
{
	install_alt();
	st_handle(SIGUSR1, query_handler, SA_ONSTACK);
	raise(SIGUSR1);
	CHECK_EQ(h_on_alt, 1);
	CHECK_EQ(h_flags, SS_ONSTACK);
	CHECK_EQ(h_eperm, 1);
	/* Back on the normal stack after sigreturn. */
	stack_t cur;
	CHECK_OK(sigaltstack(NULL, &cur));
	CHECK_EQ(cur.ss_flags, 0);
	CHECK_EQ((uintptr_t)cur.ss_sp, (uintptr_t)alt_base);
	/* Disabling outside a handler works. */
	stack_t dis = { .ss_flags = SS_DISABLE };
	CHECK_OK(sigaltstack(&dis, NULL));
	CHECK_OK(sigaltstack(NULL, &cur));
	CHECK_EQ(cur.ss_flags, SS_DISABLE);
	/* With it disabled, SA_ONSTACK handlers run on the normal stack. */
	raise(SIGUSR1);
	CHECK_EQ(h_on_alt, 0);
	CHECK_EQ(h_flags, SS_DISABLE);
}

CASE(sigaltstack_errors)
{
	stack_t cur;
	CHECK_OK(sigaltstack(NULL, &cur));
	CHECK_EQ(cur.ss_flags, SS_DISABLE);
	char *buf = malloc(ALT_SIZE);
	stack_t bad = { .ss_sp = buf, .ss_size = ALT_SIZE, .ss_flags = 0x77 };
	CHECK_ERR(sigaltstack(&bad, NULL), EINVAL);
	stack_t small = { .ss_sp = buf, .ss_size = 1024, .ss_flags = 0 }; /* below 2048 */
	CHECK_ERR(sigaltstack(&small, NULL), ENOMEM);
	CHECK_ERR(sigaltstack((stack_t *)8, NULL), EFAULT);
	/* Failed calls leave it disabled. */
	CHECK_OK(sigaltstack(NULL, &cur));
	CHECK_EQ(cur.ss_flags, SS_DISABLE);
	/* Setting returns the previous value in the same call. */
	stack_t ok = { .ss_sp = buf, .ss_size = ALT_SIZE, .ss_flags = 0 };
	stack_t old;
	CHECK_OK(sigaltstack(&ok, &old));
	CHECK_EQ(old.ss_flags, SS_DISABLE);
	CHECK_OK(sigaltstack(&ok, &old));
	CHECK_EQ((uintptr_t)old.ss_sp, (uintptr_t)buf);
	CHECK_EQ(old.ss_size, ALT_SIZE);
	/* SS_DISABLE ignores the other fields. */
	stack_t dis = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
	CHECK_OK(sigaltstack(&dis, NULL));
}

static volatile uintptr_t outer_sp, inner_sp;
static volatile int inner_ran_on_alt;

static void inner_handler(int sig)
{
	(void)sig;
	int local;
	inner_sp = (uintptr_t)&local;
	inner_ran_on_alt = on_alt(&local);
}

static void outer_handler(int sig)
{
	(void)sig;
	int local;
	outer_sp = (uintptr_t)&local;
	raise(SIGUSR2);
}

CASE(nested_signal_stays_on_alternate_stack)
{
	install_alt();
	st_handle(SIGUSR1, outer_handler, SA_ONSTACK);
	st_handle(SIGUSR2, inner_handler, SA_ONSTACK);
	raise(SIGUSR1);
	CHECK(on_alt((void *)outer_sp));
	CHECK_EQ(inner_ran_on_alt, 1);
	/* The inner frame is pushed below the outer one, not at the top again. */
	CHECK_LT(inner_sp, outer_sp);
}

static void *thread_query(void *arg)
{
	(void)arg;
	stack_t cur;
	sigaltstack(NULL, &cur);
	return (void *)(long)cur.ss_flags;
}

CASE(inherited_by_fork_not_by_threads)
{
	install_alt();
	IN_CHILD({
		stack_t cur;
		CHECK_OK(sigaltstack(NULL, &cur));
		CHECK_EQ(cur.ss_flags, 0);
		CHECK_EQ((uintptr_t)cur.ss_sp, (uintptr_t)alt_base);
		CHECK_EQ(cur.ss_size, ALT_SIZE);
		st_handle(SIGUSR1, query_handler, SA_ONSTACK);
		raise(SIGUSR1);
		CHECK_EQ(h_on_alt, 1);
	});
	/* A new thread (clone with CLONE_VM) starts without one. */
	pthread_t t;
	void *flags;
	CHECK_PT(pthread_create(&t, NULL, thread_query, NULL));
	CHECK_PT(pthread_join(t, &flags));
	CHECK_EQ((long)flags, SS_DISABLE);
}

static sigjmp_buf overflow_jmp;
static volatile int overflow_sig, overflow_on_alt;

static void segv_handler(int sig)
{
	int local;
	overflow_sig = sig;
	overflow_on_alt = on_alt(&local);
	siglongjmp(overflow_jmp, 1);
}

__attribute__((noinline)) static int recurse(volatile char *prev, int depth)
{
	volatile char pad[1024];
	pad[0] = (char)depth;
	pad[1023] = prev ? prev[0] : 0;
	return recurse(pad, depth + 1) + pad[5];
}

CASE(stack_overflow_handled_on_alternate_stack)
{
	IN_CHILD({
		/* A small stack limit keeps the overflow quick. */
		struct rlimit rl = { 1 << 20, 1 << 20 };
		CHECK_OK(setrlimit(RLIMIT_STACK, &rl));
		install_alt();
		st_handle(SIGSEGV, segv_handler, SA_ONSTACK | SA_NODEFER);
		if (sigsetjmp(overflow_jmp, 1) == 0) {
			recurse(NULL, 0);
			FAIL("recursion returned");
		}
		CHECK_EQ(overflow_sig, SIGSEGV);
		CHECK_EQ(overflow_on_alt, 1);
	});
}

/* Register state: a fault whose handler edits the saved context. */
extern char fault_insn[], fault_resume[];
static volatile greg_t fault_rip;
static volatile int fault_code;

static void fixup_handler(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	ucontext_t *uc = ucv;
	fault_rip = uc->uc_mcontext.gregs[REG_RIP];
	fault_code = si->si_code;
	/* Skip the faulting load and make it "return" 0x1234 in rax. */
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)fault_resume;
	uc->uc_mcontext.gregs[REG_RAX] = 0x1234;
	uc->uc_mcontext.gregs[REG_RBX] = 0x5678;
}

__attribute__((noinline, noclone)) static long faulting_load(long *rbx_out)
{
	long rax, rbx;
	__asm__ volatile("xorl %%eax, %%eax\n\t"
			 "movq $0x1111, %%rbx\n\t"
			 "fault_insn: movq 0(%%rax), %%rax\n\t"
			 "fault_resume:\n\t"
			 : "=a"(rax), "=b"(rbx)
			 :
			 : "memory");
	*rbx_out = rbx;
	return rax;
}

CASE(sigreturn_restores_edited_registers)
{
	st_handle_info(SIGSEGV, fixup_handler, 0);
	long rbx = 0;
	long rax = faulting_load(&rbx);
	CHECK_EQ(fault_rip, (greg_t)(uintptr_t)fault_insn);
	CHECK_EQ(fault_code, SEGV_MAPERR);
	CHECK_EQ(rax, 0x1234);
	CHECK_EQ(rbx, 0x5678);
	/* It works again: the handler was not reset. */
	fault_rip = 0;
	rax = faulting_load(&rbx);
	CHECK_EQ(rax, 0x1234);
	CHECK_EQ(fault_rip, (greg_t)(uintptr_t)fault_insn);
}

static volatile int mask_in_handler_usr2, mask_in_handler_usr1;

static void edit_mask_handler(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ucv;
	sigset_t now;
	sigprocmask(SIG_SETMASK, NULL, &now);
	mask_in_handler_usr1 = sigismember(&now, SIGUSR1);
	mask_in_handler_usr2 = sigismember(&now, SIGUSR2);
	/* The saved mask does not have the handler's additions. */
	if (sigismember(&uc->uc_sigmask, SIGUSR1) || sigismember(&uc->uc_sigmask, SIGUSR2))
		mask_in_handler_usr1 = -1;
	/* What sigreturn restores is what the frame says: add SIGTERM. */
	sigaddset(&uc->uc_sigmask, SIGTERM);
}

CASE(sigreturn_restores_mask_from_frame)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = edit_mask_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
	raise(SIGUSR1);
	/* During the handler: its own signal and sa_mask were blocked. */
	CHECK_EQ(mask_in_handler_usr1, 1);
	CHECK_EQ(mask_in_handler_usr2, 1);
	/* After: the frame's (edited) mask is in force. */
	sigset_t now;
	CHECK_OK(sigprocmask(SIG_SETMASK, NULL, &now));
	CHECK_EQ(sigismember(&now, SIGTERM), 1);
	CHECK_EQ(sigismember(&now, SIGUSR1), 0);
	CHECK_EQ(sigismember(&now, SIGUSR2), 0);
	/* SIGTERM is really blocked: it stays pending. */
	raise(SIGTERM);
	sigset_t pend;
	CHECK_OK(sigpending(&pend));
	CHECK_EQ(sigismember(&pend, SIGTERM), 1);
	st_handle(SIGTERM, SIG_IGN, 0);
}

static volatile int depth, max_depth, order[8], norder;

static void reentrant_handler(int sig)
{
	(void)sig;
	depth++;
	if (depth > max_depth)
		max_depth = depth;
	order[norder++] = depth;
	if (norder < 3)
		raise(SIGUSR1);
	depth--;
}

CASE(sa_nodefer_allows_reentry)
{
	/* With SA_NODEFER the handler is re-entered from inside itself. */
	st_handle(SIGUSR1, reentrant_handler, SA_NODEFER);
	depth = max_depth = norder = 0;
	raise(SIGUSR1);
	CHECK_EQ(max_depth, 3);
	CHECK_EQ(norder, 3);
	/* Without it the signal waits until the handler returns, then runs again. */
	st_handle(SIGUSR1, reentrant_handler, 0);
	depth = max_depth = norder = 0;
	raise(SIGUSR1);
	CHECK_EQ(max_depth, 1);
	/* Three runs one after the other, all at depth 1. */
	CHECK_EQ(norder, 3);
	for (int i = 0; i < norder; i++)
		CHECK_EQ(order[i], 1);
}

static volatile int fpu_ok;

static void clobber_fpu_handler(int sig)
{
	(void)sig;
	/* Clobber xmm0 and the x87/SSE control state the interrupted code uses. */
	__asm__ volatile("pcmpeqd %%xmm0, %%xmm0" ::: "xmm0");
	volatile double d = 1.0;
	d = d / 3.0;
	fpu_ok = d > 0;
}

__attribute__((noinline)) static double fpu_work(void)
{
	long bits;
	__asm__ volatile("movq %1, %%xmm0\n\t"
			 "movl $%c2, %%eax\n\t"
			 "syscall\n\t" /* getpid: a place for the signal to arrive */
			 "movq %%xmm0, %0\n\t"
			 : "=r"(bits)
			 : "r"(0x400921fb54442d18L), "i"(SYS_getpid)
			 : "xmm0", "rax", "rcx", "r11", "memory");
	double x;
	memcpy(&x, &bits, sizeof x);
	return x;
}

CASE(handler_does_not_leak_fpu_state)
{
	/* A signal delivered at a syscall in the middle of SSE code: sigreturn restores xmm0. */
	st_handle(SIGALRM, clobber_fpu_handler, SA_RESTART);
	struct itimerval it = { { 0, 100 }, { 0, 100 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	long long end = st_mono_ms() + 200;
	long n = 0;
	while (st_mono_ms() < end) {
		double v = fpu_work();
		if (v != 3.141592653589793)
			FAIL("xmm0 changed across a signal: %a after %ld rounds", v, n);
		n++;
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	CHECK_OK(setitimer(ITIMER_REAL, &off, NULL));
	CHECK_EQ(fpu_ok, 1);
}

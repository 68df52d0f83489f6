/* rvisor's vDSO: the clocks the Sentry answers, read from the parameter page [vvar]
 * that the Sentry keeps up to date. Whatever it cannot answer (CPU-time clocks, unknown
 * ids, a timezone, no usable TSC) goes to the real system call. The layout of struct
 * vvar is sentry/src/vdso.rs's Params. */

typedef unsigned long u64;
typedef unsigned int u32;
typedef long i64;

struct timespec { i64 tv_sec; i64 tv_nsec; };
struct timeval { i64 tv_sec; i64 tv_usec; };

struct clock { u64 base_ns; u64 mult; };

struct vvar {
	volatile u32 seq;     /* odd while the Sentry writes */
	u32 ok;               /* 1: the TSC can be used */
	u64 tsc_base;
	struct clock mono;    /* the sandbox's uptime: MONOTONIC, BOOTTIME, MONOTONIC_RAW */
	struct clock real;    /* REALTIME, TAI */
	u64 coarse_ns;        /* resolution of the COARSE clocks */
};

/* The page right below the vDSO text (see vdso.lds). Volatile: the Sentry changes it
 * at any time (a const object could be read once and kept by the compiler). */
extern volatile struct vvar vvar_page __attribute__((visibility("hidden")));

#define NSEC 1000000000UL

static long sys2(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a), "S"(b)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline u64 rdtsc_ordered(void)
{
	u32 lo, hi;
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return ((u64)hi << 32) | lo;
}

/* Nanoseconds of clock `which` (0: uptime, 1: realtime), or -1 when unavailable. */
static int read_ns(int which, u64 *ns)
{
	volatile struct vvar *v = &vvar_page;
	volatile struct clock *c = which ? &v->real : &v->mono;
	u32 seq;
	u64 r;
	do {
		seq = v->seq;
		if (!v->ok)
			return -1;
		u64 base = v->tsc_base, base_ns = c->base_ns, mult = c->mult;
		u64 tsc = rdtsc_ordered();
		u64 d = tsc > base ? tsc - base : 0;
		r = base_ns + (u64)(((unsigned __int128)d * mult) >> 32);
	} while ((seq & 1) || seq != v->seq);
	*ns = r;
	return 0;
}

static int clock_ns(int id, u64 *ns)
{
	switch (id) {
	case 0: case 11: /* REALTIME, TAI */
		return read_ns(1, ns);
	case 1: case 4: case 7: /* MONOTONIC, MONOTONIC_RAW, BOOTTIME */
		return read_ns(0, ns);
	case 5: /* REALTIME_COARSE */
		if (read_ns(1, ns))
			return -1;
		*ns -= *ns % vvar_page.coarse_ns;
		return 0;
	case 6: /* MONOTONIC_COARSE */
		if (read_ns(0, ns))
			return -1;
		*ns -= *ns % vvar_page.coarse_ns;
		return 0;
	}
	return -1;
}

int __vdso_clock_gettime(int id, struct timespec *ts)
{
	u64 ns;
	if (clock_ns(id, &ns))
		return sys2(228, id, (long)ts);
	ts->tv_sec = ns / NSEC;
	ts->tv_nsec = ns % NSEC;
	return 0;
}

int __vdso_gettimeofday(struct timeval *tv, void *tz)
{
	u64 ns;
	if (tz || !tv || read_ns(1, &ns))
		return sys2(96, (long)tv, (long)tz);
	tv->tv_sec = ns / NSEC;
	tv->tv_usec = ns % NSEC / 1000;
	return 0;
}

i64 __vdso_time(i64 *t)
{
	u64 ns;
	if (read_ns(1, &ns))
		return sys2(201, (long)t, 0);
	if (t)
		*t = ns / NSEC;
	return ns / NSEC;
}

int __vdso_clock_getres(int id, struct timespec *res)
{
	u64 ns;
	switch (id) {
	case 0: case 1: case 4: case 7: case 11:
		ns = 1;
		break;
	case 5: case 6:
		if (!vvar_page.ok)
			return sys2(229, id, (long)res);
		ns = vvar_page.coarse_ns;
		break;
	default:
		return sys2(229, id, (long)res);
	}
	if (res) {
		res->tv_sec = ns / NSEC;
		res->tv_nsec = ns % NSEC;
	}
	return 0;
}

int clock_gettime(int, struct timespec *) __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct timeval *, void *) __attribute__((weak, alias("__vdso_gettimeofday")));
i64 time(i64 *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(int, struct timespec *) __attribute__((weak, alias("__vdso_clock_getres")));

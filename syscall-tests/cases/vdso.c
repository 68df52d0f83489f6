/* vdso: the vDSO named by AT_SYSINFO_EHDR, its LINUX_2.6 clock functions (found by
 * parsing its dynamic symbols, as Linux's selftests/vDSO/parse_vdso.c) agreeing with the
 * system calls in several threads, COARSE clocks, clock_getres, unknown ids, fork,
 * exec, /proc/self/maps, munmap and mprotect of [vdso] and [vvar]. */
#include "harness.h"
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>

typedef long (*gettime_fn)(clockid_t, struct timespec *);
typedef long (*tod_fn)(struct timeval *, void *);
typedef long (*time_fn)(long *);

static uintptr_t vdso_base(void)
{
	return (uintptr_t)getauxval(AT_SYSINFO_EHDR);
}

/* The address of `name`@`version` in the vDSO, or NULL. */
static void *vdso_sym(const char *name, const char *version)
{
	uintptr_t base = vdso_base();
	if (!base)
		return NULL;
	ElfW(Ehdr) *eh = (ElfW(Ehdr) *)base;
	ElfW(Phdr) *ph = (ElfW(Phdr) *)(base + eh->e_phoff);
	uintptr_t load = 0;
	ElfW(Dyn) *dyn = NULL;
	int have_load = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && !have_load) {
			load = base + ph[i].p_offset - ph[i].p_vaddr;
			have_load = 1;
		} else if (ph[i].p_type == PT_DYNAMIC) {
			dyn = (ElfW(Dyn) *)(base + ph[i].p_offset);
		}
	}
	if (!have_load || !dyn)
		return NULL;
	const char *strtab = NULL;
	ElfW(Sym) *symtab = NULL;
	ElfW(Word) *hash = NULL;
	ElfW(Versym) *versym = NULL;
	ElfW(Verdef) *verdef = NULL;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t p = load + dyn->d_un.d_ptr;
		switch (dyn->d_tag) {
		case DT_STRTAB: strtab = (const char *)p; break;
		case DT_SYMTAB: symtab = (ElfW(Sym) *)p; break;
		case DT_HASH: hash = (ElfW(Word) *)p; break;
		case DT_VERSYM: versym = (ElfW(Versym) *)p; break;
		case DT_VERDEF: verdef = (ElfW(Verdef) *)p; break;
		}
	}
	if (!strtab || !symtab || !hash || !versym || !verdef)
		return NULL;
	ElfW(Word) nsyms = hash[1]; /* nchain */
	for (ElfW(Word) i = 0; i < nsyms; i++) {
		ElfW(Sym) *s = &symtab[i];
		int bind = ELF64_ST_BIND(s->st_info);
		if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF ||
		    (bind != STB_GLOBAL && bind != STB_WEAK) || strcmp(strtab + s->st_name, name))
			continue;
		ElfW(Verdef) *d = verdef;
		for (;;) {
			if ((d->vd_ndx & 0x7fff) == (versym[i] & 0x7fff) && !(d->vd_flags & VER_FLG_BASE)) {
				ElfW(Verdaux) *a = (ElfW(Verdaux) *)((char *)d + d->vd_aux);
				if (!strcmp(strtab + a->vda_name, version))
					return (void *)(load + s->st_value);
			}
			if (!d->vd_next)
				break;
			d = (ElfW(Verdef) *)((char *)d + d->vd_next);
		}
	}
	return NULL;
}

static gettime_fn vgettime(void)
{
	gettime_fn f = (gettime_fn)vdso_sym("__vdso_clock_gettime", "LINUX_2.6");
	if (!f)
		FAIL("no __vdso_clock_gettime@LINUX_2.6");
	return f;
}

static long long ns(struct timespec t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long sys_now(clockid_t c)
{
	struct timespec t;
	if (syscall(SYS_clock_gettime, c, &t) != 0)
		FAIL("clock_gettime(%d): %s", (int)c, st_errname(errno));
	return ns(t);
}

static long long v_now(gettime_fn f, clockid_t c)
{
	struct timespec t;
	long r = f(c, &t);
	if (r != 0)
		FAIL("__vdso_clock_gettime(%d) = %ld", (int)c, r);
	if (t.tv_nsec < 0 || t.tv_nsec >= 1000000000L)
		FAIL("clock %d: tv_nsec %ld out of range", (int)c, t.tv_nsec);
	return ns(t);
}

static const clockid_t fine_clocks[] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW,
					 CLOCK_BOOTTIME, CLOCK_TAI };
#define NFINE (sizeof(fine_clocks) / sizeof(fine_clocks[0]))
/* How far a vDSO read and the system call right after it may be apart. */
#define BOUND_NS 50000000LL

/* vDSO, system call, vDSO, in turn: never going back (which also bounds any offset
 * between them by the time a system call takes), and the closest pair of each kind
 * within BOUND_NS (a thread may be preempted between any two reads). */
static void interleave(gettime_fn f, int rounds)
{
	for (unsigned c = 0; c < NFINE; c++) {
		clockid_t id = fine_clocks[c];
		long long last = v_now(f, id), min_before = BOUND_NS + 1, min_after = BOUND_NS + 1;
		for (int i = 0; i < rounds; i++) {
			long long a = v_now(f, id);
			long long b = sys_now(id);
			long long d = v_now(f, id);
			if (a < last || b < a || d < b)
				FAIL("clock %d went back: %lld, vdso %lld, syscall %lld, vdso %lld",
				     (int)id, last, a, b, d);
			min_before = b - a < min_before ? b - a : min_before;
			min_after = d - b < min_after ? d - b : min_after;
			last = d;
		}
		if (min_before > BOUND_NS || min_after > BOUND_NS)
			FAIL("clock %d: vdso and syscall at least %lld/%lld ns apart", (int)id,
			     min_before, min_after);
	}
}

static void *interleave_thread(void *arg)
{
	interleave((gettime_fn)arg, 300);
	return NULL;
}

static int check_agreement(void)
{
	gettime_fn f = (gettime_fn)vdso_sym("__vdso_clock_gettime", "LINUX_2.6");
	if (!f)
		return 2;
	for (unsigned c = 0; c < NFINE; c++) {
		long long a = v_now(f, fine_clocks[c]);
		long long b = sys_now(fine_clocks[c]);
		if (b < a || b - a > BOUND_NS)
			return 3;
	}
	return 0;
}

CASE(auxv_names_a_linux_vdso)
{
	uintptr_t base = vdso_base();
	CHECK(base != 0);
	CHECK_EQ(base % 4096, 0);
	ElfW(Ehdr) *eh = (ElfW(Ehdr) *)base;
	CHECK_MEMEQ(eh->e_ident, ELFMAG, SELFMAG);
	CHECK_EQ(eh->e_ident[EI_CLASS], ELFCLASS64);
	CHECK_EQ(eh->e_type, ET_DYN);
	CHECK_EQ(eh->e_machine, EM_X86_64);
	const char *names[] = { "__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time",
				"__vdso_clock_getres", "clock_gettime", "gettimeofday",
				"time", "clock_getres" };
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!vdso_sym(names[i], "LINUX_2.6"))
			FAIL("no %s@LINUX_2.6 in the vDSO", names[i]);
	CHECK(vdso_sym("__vdso_clock_gettime", "LINUX_2.5") == NULL);
	CHECK(vdso_sym("__vdso_no_such", "LINUX_2.6") == NULL);
}

CASE(clocks_agree_with_syscalls_in_threads)
{
	gettime_fn f = vgettime();
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_create(&th[i], NULL, interleave_thread, (void *)f));
	interleave(f, 300);
	for (int i = 0; i < 3; i++)
		CHECK_PT(pthread_join(th[i], NULL));
}

CASE(never_back_over_1200_ms)
{
	/* Long enough to span an update of the parameters (rvisor: every second). */
	gettime_fn f = vgettime();
	clockid_t ids[] = { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_MONOTONIC_COARSE };
	long long last[3] = { 0, 0, 0 };
	long long start = v_now(f, CLOCK_MONOTONIC);
	for (long i = 0; last[0] - start < 1200000000LL; i++) {
		for (int c = 0; c < 3; c++) {
			long long t = v_now(f, ids[c]);
			if (i % 1000 == 0) {
				long long s = sys_now(ids[c]);
				if (s < t)
					FAIL("clock %d: syscall %lld before vdso %lld", (int)ids[c], s, t);
				t = s;
			}
			if (t < last[c])
				FAIL("clock %d went back: %lld after %lld", (int)ids[c], t, last[c]);
			last[c] = t;
		}
	}
}

CASE(libc_clock_gettime_agrees)
{
	/* glibc's clock_gettime (through the vDSO where it found one) and the system call. */
	for (unsigned c = 0; c < NFINE; c++) {
		for (int i = 0; i < 200; i++) {
			long long a = st_now_ns(fine_clocks[c]);
			long long b = sys_now(fine_clocks[c]);
			long long d = st_now_ns(fine_clocks[c]);
			CHECK_LE(a, b);
			CHECK_LE(b, d);
			CHECK_LE(b - a, BOUND_NS);
		}
	}
}

CASE(gettimeofday_and_time_follow_realtime)
{
	tod_fn tod = (tod_fn)vdso_sym("__vdso_gettimeofday", "LINUX_2.6");
	time_fn tm = (time_fn)vdso_sym("__vdso_time", "LINUX_2.6");
	CHECK(tod != NULL && tm != NULL);
	for (int i = 0; i < 200; i++) {
		long long r1 = sys_now(CLOCK_REALTIME);
		struct timeval tv;
		CHECK_EQ(tod(&tv, NULL), 0);
		long t2 = -1;
		long t = tm(&t2);
		long long r2 = sys_now(CLOCK_REALTIME);
		long long us = tv.tv_sec * 1000000LL + tv.tv_usec;
		CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000);
		CHECK_LE(r1 / 1000, us);
		CHECK_LE(us, r2 / 1000);
		CHECK_EQ(t, t2);
		/* Linux's time() is the realtime second at the last tick. */
		CHECK_LE(r1 / 1000000000LL - 1, t);
		CHECK_LE(t, r2 / 1000000000LL);
		CHECK_EQ(tm(NULL) >= t, 1);
	}
	/* A timezone is the system call's business; the answer is the same. */
	struct timeval tv;
	struct timezone tz;
	CHECK_EQ(tod(&tv, &tz), 0);
	CHECK_LE(tv.tv_sec, sys_now(CLOCK_REALTIME) / 1000000000LL);
	CHECK_EQ(gettimeofday(&tv, NULL), 0);
	CHECK_LE(tv.tv_sec, time(NULL));
}

CASE(coarse_clocks)
{
	gettime_fn f = vgettime();
	gettime_fn getres = (gettime_fn)vdso_sym("__vdso_clock_getres", "LINUX_2.6");
	CHECK(getres != NULL);
	clockid_t coarse[] = { CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE };
	clockid_t fine[] = { CLOCK_REALTIME, CLOCK_MONOTONIC };
	for (int c = 0; c < 2; c++) {
		struct timespec res;
		CHECK_EQ(getres(coarse[c], &res), 0);
		struct timespec sres;
		CHECK_OK(syscall(SYS_clock_getres, coarse[c], &sres));
		CHECK_EQ(res.tv_sec, sres.tv_sec);
		CHECK_EQ(res.tv_nsec, sres.tv_nsec);
		CHECK(res.tv_sec == 0 && res.tv_nsec >= 1000000);
		long long last = 0;
		for (int i = 0; i < 300; i++) {
			long long a = v_now(f, coarse[c]);
			long long s = sys_now(coarse[c]);
			long long b = v_now(f, fine[c]);
			CHECK_LE(last, a);
			CHECK_LE(a, s);
			/* The coarse clock is the fine one at its last tick. */
			CHECK_LE(a, b);
			CHECK_LE(b - a, res.tv_nsec + BOUND_NS);
			last = s;
		}
	}
}

CASE(clock_getres_and_unknown_ids)
{
	gettime_fn f = vgettime();
	gettime_fn getres = (gettime_fn)vdso_sym("__vdso_clock_getres", "LINUX_2.6");
	CHECK(getres != NULL);
	for (unsigned c = 0; c < NFINE; c++) {
		struct timespec a, b;
		CHECK_EQ(getres(fine_clocks[c], &a), 0);
		CHECK_OK(syscall(SYS_clock_getres, fine_clocks[c], &b));
		CHECK_EQ(a.tv_sec, b.tv_sec);
		CHECK_EQ(a.tv_nsec, b.tv_nsec);
		CHECK_EQ(getres(fine_clocks[c], NULL), 0);
	}
	/* Ids it cannot answer go to the system call: its result, as a negative errno. */
	struct timespec t;
	/* Not 16..23: Linux 6.17+'s vDSO answers its auxiliary clocks even when off. -1 is
	 * a CPU-time clock id with the invalid CPUCLOCK_MAX. */
	clockid_t bad[] = { 12, 13, 24, 1000, -1 };
	for (unsigned i = 0; i < 5; i++) {
		CHECK_EQ(f(bad[i], &t), -EINVAL);
		CHECK_EQ(getres(bad[i], &t), -EINVAL);
		CHECK_ERR(clock_gettime(bad[i], &t), EINVAL);
		CHECK_ERR(clock_getres(bad[i], &t), EINVAL);
	}
	/* CPU-time clocks come from the system call. */
	CHECK_EQ(f(CLOCK_PROCESS_CPUTIME_ID, &t), 0);
	CHECK(t.tv_sec >= 0 && t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
	CHECK_EQ(f(CLOCK_THREAD_CPUTIME_ID, &t), 0);
	CHECK_EQ(getres(CLOCK_PROCESS_CPUTIME_ID, &t), 0);
	/* A bad pointer faults in the vDSO or fails in the system call: not tested. */
}

CASE(works_after_fork)
{
	uintptr_t base = vdso_base();
	IN_CHILD({
		if (vdso_base() != base)
			_exit(4);
		_exit(check_agreement());
	});
	CHECK_EQ(check_agreement(), 0);
}

HELPER(agree)
{
	(void)argc;
	(void)argv;
	return check_agreement();
}

CASE(works_after_exec)
{
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char *argv[] = { (char *)st_self, "--helper", "agree", NULL };
		execv(st_self, argv);
		_exit(99);
	}
	CHECK_EXITED(st_wait(pid), 0);
}

/* The [vdso] and [vvar] lines of /proc/self/maps (or smaps). */
static void find_maps(const char *file, unsigned long *vdso, unsigned long *vdso_end,
		      char *vdso_perm, unsigned long *vvar, char *vvar_perm)
{
	FILE *fp = fopen(file, "r");
	if (!fp)
		FAIL("%s: %s", file, st_errname(errno));
	char line[512];
	*vdso = *vvar = 0;
	while (fgets(line, sizeof(line), fp)) {
		unsigned long a, b;
		char perm[8];
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perm) != 3)
			continue;
		if (strstr(line, "[vdso]")) {
			*vdso = a;
			*vdso_end = b;
			strcpy(vdso_perm, perm);
		} else if (strstr(line, "[vvar]")) {
			*vvar = a;
			strcpy(vvar_perm, perm);
		}
	}
	fclose(fp);
}

CASE(maps_show_vdso_and_vvar)
{
	const char *files[] = { "/proc/self/maps", "/proc/self/smaps" };
	for (int i = 0; i < 2; i++) {
		unsigned long vdso, end, vvar;
		char vp[8], wp[8];
		find_maps(files[i], &vdso, &end, vp, &vvar, wp);
		CHECK_EQ(vdso, vdso_base());
		CHECK(end > vdso);
		CHECK_STREQ(vp, "r-xp");
		CHECK(vvar != 0 && vvar < vdso);
		CHECK_STREQ(wp, "r--p");
	}
}

CASE(munmap_and_mprotect_are_allowed)
{
	unsigned long vdso, end, vvar;
	char vp[8], wp[8];
	find_maps("/proc/self/maps", &vdso, &end, vp, &vvar, wp);
	IN_CHILD({
		/* The parameters can never be made writable; the text can (for debuggers). */
		if (mprotect((void *)vvar, 4096, PROT_READ | PROT_WRITE) != -1 || errno != EACCES)
			_exit(2);
		if (mprotect((void *)vdso, end - vdso, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
			_exit(3);
		if (mprotect((void *)vdso, end - vdso, PROT_READ | PROT_EXEC) != 0)
			_exit(4);
		if (munmap((void *)vvar, vdso - vvar) != 0 || munmap((void *)vdso, end - vdso) != 0)
			_exit(5);
		/* Gone from the maps; the system calls still answer. */
		unsigned long v2, e2, w2;
		char p1[8], p2[8];
		find_maps("/proc/self/maps", &v2, &e2, p1, &w2, p2);
		if (v2 != 0 || w2 != 0)
			_exit(6);
		struct timespec t;
		_exit(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t) == 0 ? 0 : 7);
	});
	CHECK_EQ(check_agreement(), 0);
}

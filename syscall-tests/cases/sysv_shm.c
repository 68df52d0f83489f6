/* System V shared memory: shmget keys and limits, shmat/shmdt and what they map,
 * shmctl's commands, nattch through fork, exec and exit, destroy on last detach. Every
 * segment made is removed at the end of the case, even when it fails. */
#include "harness.h"
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

static int st_ids[16];
static int st_nids;

static void remove_all(void)
{
	for (int i = 0; i < st_nids; i++)
		shmctl(st_ids[i], IPC_RMID, NULL);
	st_nids = 0;
}

/* shmget, remembering the id for the clean-up. */
static int get(key_t key, size_t size, int flg)
{
	int id = shmget(key, size, flg);
	if (id >= 0 && st_nids < 16) {
		st_at_cleanup = remove_all;
		st_ids[st_nids++] = id;
	}
	return id;
}

/* A key unlikely to be used by anything else. */
static key_t key_for(int n)
{
	return (key_t)(0x5f000000 | ((getpid() & 0xffff) << 4) | n);
}

static struct shmid_ds stat_of(int id)
{
	struct shmid_ds d;
	memset(&d, 0xa5, sizeof d);
	CHECK_OK(shmctl(id, IPC_STAT, &d));
	return d;
}

CASE(private_segment_stat)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 5000, 0640));
	struct shmid_ds d = stat_of(id);
	CHECK_EQ(d.shm_perm.__key, 0);
	CHECK_EQ(d.shm_perm.mode, 0640);
	CHECK_EQ(d.shm_perm.uid, geteuid());
	CHECK_EQ(d.shm_perm.cuid, geteuid());
	CHECK_EQ(d.shm_perm.gid, getegid());
	CHECK_EQ(d.shm_segsz, 5000);
	CHECK_EQ(d.shm_nattch, 0);
	CHECK_EQ(d.shm_cpid, getpid());
	CHECK_EQ(d.shm_lpid, 0);
	CHECK_EQ(d.shm_atime, 0);
	CHECK_EQ(d.shm_dtime, 0);
	CHECK_LE(labs(d.shm_ctime - time(NULL)), 5);
	/* Another IPC_PRIVATE segment is another segment. */
	CHECK_NE(CHECK_OK(get(IPC_PRIVATE, 5000, 0640)), id);
	CHECK_ERR(shmget(IPC_PRIVATE, 0, 0600), EINVAL);
	CHECK_ERR(shmctl(-1, IPC_STAT, &d), EINVAL);
	CHECK_ERR(shmctl(id, -1, &d), EINVAL);
	CHECK_ERR(shmctl(id, 99, &d), EINVAL);
	CHECK_ERR(shmctl(id, IPC_STAT, (void *)8), EFAULT);
}

CASE(keys)
{
	key_t k = key_for(1);
	CHECK_ERR(shmget(k, 4096, 0600), ENOENT);
	int id = CHECK_OK(get(k, 8192, IPC_CREAT | IPC_EXCL | 0600));
	CHECK_ERR(shmget(k, 4096, IPC_CREAT | IPC_EXCL | 0600), EEXIST);
	CHECK_EQ(shmget(k, 4096, IPC_CREAT | 0600), id);
	CHECK_EQ(shmget(k, 0, 0), id);
	CHECK_EQ(shmget(k, 8192, 0), id);
	CHECK_ERR(shmget(k, 8193, 0), EINVAL);
	CHECK_EQ(stat_of(id).shm_perm.__key, k);
	/* Removed while attached: the key is free again and the segment is private. */
	void *p = shmat(id, NULL, 0);
	CHECK_NE(p, (void *)-1);
	CHECK_OK(shmctl(id, IPC_RMID, NULL));
	struct shmid_ds d = stat_of(id);
	CHECK_EQ(d.shm_perm.__key, 0);
	CHECK_EQ(d.shm_perm.mode, SHM_DEST | 0600);
	CHECK_EQ(d.shm_nattch, 1);
	CHECK_ERR(shmget(k, 4096, 0600), ENOENT);
	int id2 = CHECK_OK(get(k, 4096, IPC_CREAT | IPC_EXCL | 0600));
	CHECK_NE(id2, id);
	CHECK_OK(shmdt(p));
	/* The last detach destroyed it. */
	CHECK_ERR(shmctl(id, IPC_STAT, &d), EINVAL);
	CHECK_ERR(shmat(id, NULL, 0), EINVAL);
	CHECK_OK(shmctl(id2, IPC_RMID, NULL));
	CHECK_ERR(shmctl(id2, IPC_RMID, NULL), EINVAL);
}

CASE(attach_share_detach)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 3 * 4096 + 1, 0600));
	char *p = shmat(id, NULL, 0);
	CHECK_NE(p, (void *)-1);
	CHECK_EQ((uintptr_t)p % 4096, 0);
	/* Zero-filled, and the whole last page is there. */
	CHECK_EQ(p[0], 0);
	CHECK_EQ(p[4 * 4096 - 1], 0);
	strcpy(p, "hello");
	struct shmid_ds d = stat_of(id);
	CHECK_EQ(d.shm_nattch, 1);
	CHECK_EQ(d.shm_lpid, getpid());
	CHECK_LE(labs(d.shm_atime - time(NULL)), 5);
	/* A second attachment sees the same memory. */
	char *q = shmat(id, NULL, SHM_RDONLY);
	CHECK_NE(q, (void *)-1);
	CHECK_NE(q, p);
	CHECK_STREQ(q, "hello");
	CHECK_EQ(stat_of(id).shm_nattch, 2);
	CHECK_OK(shmdt(q));
	CHECK_EQ(stat_of(id).shm_nattch, 1);
	/* A forked child inherits the attachment; its writes are seen here. */
	int pfd[2];
	CHECK_OK(pipe(pfd));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		close(pfd[0]);
		if (stat_of(id).shm_nattch != 2)
			_exit(2);
		strcpy(p + 4096, "child");
		if (write(pfd[1], "x", 1) != 1)
			_exit(3);
		_exit(0);
	}
	close(pfd[1]);
	char c;
	CHECK_EQ(read(pfd[0], &c, 1), 1);
	CHECK_EXITED(st_wait(pid), 0);
	close(pfd[0]);
	CHECK_STREQ(p + 4096, "child");
	/* The child's exit detached it. */
	CHECK_EQ(stat_of(id).shm_nattch, 1);
	CHECK_ERR(shmdt(p + 1), EINVAL);
	CHECK_ERR(shmdt(p + 4096), EINVAL);
	CHECK_OK(shmdt(p));
	d = stat_of(id);
	CHECK_EQ(d.shm_nattch, 0);
	CHECK_EQ(d.shm_lpid, getpid());
	CHECK_LE(labs(d.shm_dtime - time(NULL)), 5);
	CHECK_ERR(shmdt(p), EINVAL);
	/* Unmapped means unmapped. */
	CHECK_ERR(msync(p, 4096, MS_SYNC), ENOMEM);
	/* The data stays in the segment. */
	char *r = shmat(id, NULL, 0);
	CHECK_NE(r, (void *)-1);
	CHECK_STREQ(r + 4096, "child");
	CHECK_OK(shmdt(r));
}

CASE(maps_name)
{
	key_t k = key_for(2);
	int id = CHECK_OK(get(k, 8192, IPC_CREAT | IPC_EXCL | 0600));
	char *p = shmat(id, NULL, 0);
	CHECK_NE(p, (void *)-1);
	char want[128];
	snprintf(want, sizeof want, "%lx-%lx rw-s 00000000 ", (unsigned long)p,
		 (unsigned long)p + 8192);
	char line[512], found[512] = "";
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK_PTR(f);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, want, strlen(want)) == 0)
			strcpy(found, line);
	fclose(f);
	CHECK_NE(found[0], 0);
	char name[64], tail[64];
	snprintf(name, sizeof name, " %d ", id);
	CHECK_NE(strstr(found, name), NULL);
	snprintf(tail, sizeof tail, "/SYSV%08x (deleted)\n", k);
	CHECK_NE(strstr(found, tail), NULL);
	CHECK_OK(shmdt(p));
}

CASE(attach_flags)
{
	/* x for the owner: SHM_EXEC needs it (without CAP_IPC_OWNER). */
	int id = CHECK_OK(get(IPC_PRIVATE, 8192, 0700));
	CHECK_ERR(shmat(-1, NULL, 0), EINVAL);
	CHECK_ERR(shmat(id + 1000000, NULL, 0), EINVAL);
	CHECK_ERR(shmat(id, NULL, SHM_REMAP), EINVAL);
	/* A free place to attach at. */
	char *base = mmap(NULL, 16 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK_NE(base, MAP_FAILED);
	CHECK_OK(munmap(base, 16 * 4096));
	CHECK_ERR(shmat(id, base + 1, 0), EINVAL);
	char *p = shmat(id, base + 1, SHM_RND);
	CHECK_EQ(p, base);
	p[0] = 'r';
	/* Overlapping another mapping: EINVAL, unless SHM_REMAP. */
	CHECK_ERR(shmat(id, base + 4096, 0), EINVAL);
	char *m = mmap(base + 8 * 4096, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		       -1, 0);
	CHECK_EQ(m, base + 8 * 4096);
	CHECK_ERR(shmat(id, base + 8 * 4096, 0), EINVAL);
	char *q = shmat(id, base + 8 * 4096, SHM_REMAP);
	CHECK_EQ(q, base + 8 * 4096);
	CHECK_EQ(q[0], 'r');
	CHECK_EQ(stat_of(id).shm_nattch, 2);
	CHECK_OK(shmdt(q));
	CHECK_OK(shmdt(p));
	/* SHM_RDONLY: writing faults, and mprotect cannot make it writable. */
	char *ro = shmat(id, NULL, SHM_RDONLY);
	CHECK_NE(ro, (void *)-1);
	CHECK_EQ(ro[0], 'r');
	CHECK_ERR(mprotect(ro, 4096, PROT_READ | PROT_WRITE), EACCES);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		*(volatile char *)ro = 1;
		_exit(0);
	}
	CHECK_SIGNALED(st_wait(pid), SIGSEGV);
	CHECK_OK(shmdt(ro));
	/* SHM_EXEC maps it executable. */
	char *x = shmat(id, NULL, SHM_EXEC);
	CHECK_NE(x, (void *)-1);
	CHECK_OK(mprotect(x, 4096, PROT_READ | PROT_WRITE | PROT_EXEC));
	CHECK_OK(shmdt(x));
	/* A partly unmapped attachment: shmdt finds and removes the rest. */
	char *y = shmat(id, NULL, 0);
	CHECK_OK(munmap(y, 4096));
	CHECK_EQ(stat_of(id).shm_nattch, 1);
	CHECK_OK(shmdt(y));
	CHECK_EQ(stat_of(id).shm_nattch, 0);
	CHECK_ERR(shmdt(y), EINVAL);
}

HELPER(nattch)
{
	(void)argc;
	struct shmid_ds d;
	if (shmctl(atoi(argv[1]), IPC_STAT, &d) != 0)
		return 2;
	return d.shm_nattch == 0 ? 0 : 3;
}

CASE(exec_detaches)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 4096, 0600));
	char ids[16];
	snprintf(ids, sizeof ids, "%d", id);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		if (shmat(id, NULL, 0) == (void *)-1)
			_exit(4);
		execl(st_self, st_self, "--helper", "nattch", ids, (char *)NULL);
		_exit(5);
	}
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(set_and_permissions)
{
	if (!st_is_root()) {
		fprintf(stderr, "SKIP: needs root to test another user's access\n");
		return;
	}
	key_t k = key_for(3);
	int id = CHECK_OK(get(k, 4096, IPC_CREAT | IPC_EXCL | 0600));
	IN_CHILD({
		st_drop_privileges();
		struct shmid_ds d;
		CHECK_ERR(shmget(k, 0, 0600), EACCES);
		CHECK_ERR(shmget(k, 0, 0004), EACCES);
		/* Asking for no access finds it. */
		CHECK_EQ(shmget(k, 0, 0), id);
		CHECK_ERR(shmat(id, NULL, SHM_RDONLY), EACCES);
		CHECK_ERR(shmctl(id, IPC_STAT, &d), EACCES);
		CHECK_ERR(shmctl(id, IPC_RMID, NULL), EPERM);
		CHECK_ERR(shmctl(id, IPC_SET, &d), EPERM);
		CHECK_ERR(shmctl(id, SHM_LOCK, NULL), EPERM);
	});
	/* Read for others: they may attach read-only only. */
	struct shmid_ds d = stat_of(id);
	d.shm_perm.mode = 0604 | SHM_DEST;
	CHECK_OK(shmctl(id, IPC_SET, &d));
	d = stat_of(id);
	CHECK_EQ(d.shm_perm.mode, 0604);
	IN_CHILD({
		st_drop_privileges();
		CHECK_EQ(shmget(k, 0, 0), id);
		CHECK_EQ(shmget(k, 0, 0004), id);
		CHECK_ERR(shmget(k, 0, 0002), EACCES);
		void *p = shmat(id, NULL, SHM_RDONLY);
		CHECK_NE(p, (void *)-1);
		CHECK_ERR(shmat(id, NULL, 0), EACCES);
		struct shmid_ds e;
		CHECK_OK(shmctl(id, IPC_STAT, &e));
		CHECK_EQ(e.shm_nattch, 1);
	});
	/* Given to uid 65534: the new owner may change and remove it. */
	d.shm_perm.uid = 65534;
	CHECK_OK(shmctl(id, IPC_SET, &d));
	d = stat_of(id);
	CHECK_EQ(d.shm_perm.uid, 65534);
	CHECK_EQ(d.shm_perm.cuid, 0);
	IN_CHILD({
		st_drop_privileges();
		struct shmid_ds e;
		CHECK_OK(shmctl(id, IPC_STAT, &e));
		e.shm_perm.mode = 0600;
		CHECK_OK(shmctl(id, IPC_SET, &e));
		CHECK_OK(shmctl(id, IPC_RMID, NULL));
	});
	CHECK_ERR(shmctl(id, IPC_STAT, &d), EINVAL);
}

static unsigned long read_ulong(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		FAIL("%s: %s", path, st_errname(errno));
	unsigned long v = 0;
	if (fscanf(f, "%lu", &v) != 1)
		FAIL("%s: not a number", path);
	fclose(f);
	return v;
}

CASE(info_and_shm_stat)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 3 * 4096, 0600));
	struct shminfo si;
	int max = CHECK_OK(shmctl(0, IPC_INFO, (struct shmid_ds *)&si));
	CHECK_EQ(si.shmmax, read_ulong("/proc/sys/kernel/shmmax"));
	CHECK_EQ(si.shmall, read_ulong("/proc/sys/kernel/shmall"));
	CHECK_EQ(si.shmmni, read_ulong("/proc/sys/kernel/shmmni"));
	CHECK_EQ(si.shmmin, 1);
	struct shm_info in;
	CHECK_EQ(shmctl(0, SHM_INFO, (struct shmid_ds *)&in), max);
	CHECK_GE(in.used_ids, 1);
	CHECK_GE(in.shm_tot, 3);
	/* SHM_STAT takes an index and gives the id. */
	int seen = 0;
	for (int i = 0; i <= max; i++) {
		struct shmid_ds d;
		int r = shmctl(i, SHM_STAT_ANY, &d);
		if (r == id) {
			CHECK_EQ(d.shm_segsz, 3 * 4096);
			CHECK_EQ(shmctl(i, SHM_STAT, &d), id);
			seen = 1;
		}
	}
	CHECK_EQ(seen, 1);
	CHECK_ERR(shmctl(max + 1, SHM_STAT, (struct shmid_ds *)&in), EINVAL);
	/* SHM_LOCK and SHM_UNLOCK as the owner (or with CAP_IPC_LOCK). */
	CHECK_OK(shmctl(id, SHM_LOCK, NULL));
	CHECK_EQ(stat_of(id).shm_perm.mode, SHM_LOCKED | 0600);
	CHECK_OK(shmctl(id, SHM_UNLOCK, NULL));
	CHECK_EQ(stat_of(id).shm_perm.mode, 0600);
}

CASE(proc_sysvipc_shm)
{
	key_t k = key_for(4);
	int id = CHECK_OK(get(k, 5000, IPC_CREAT | IPC_EXCL | 0640));
	char *p = shmat(id, NULL, 0);
	CHECK_NE(p, (void *)-1);
	p[0] = 1;
	FILE *f = fopen("/proc/sysvipc/shm", "r");
	CHECK_PTR(f);
	char line[512];
	CHECK_PTR(fgets(line, sizeof line, f));
	CHECK_STREQ(line, "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n");
	int found = 0;
	while (fgets(line, sizeof line, f)) {
		int key, sid, cpid, lpid;
		unsigned mode, uid, gid, cuid, cgid;
		unsigned long size, nattch, rss, swap;
		long at, dt, ct;
		CHECK_EQ(sscanf(line, "%d %d %o %lu %d %d %lu %u %u %u %u %ld %ld %ld %lu %lu", &key,
				&sid, &mode, &size, &cpid, &lpid, &nattch, &uid, &gid, &cuid, &cgid,
				&at, &dt, &ct, &rss, &swap),
			 16);
		if (sid != id)
			continue;
		found = 1;
		CHECK_EQ(key, k);
		CHECK_EQ(mode, 0640);
		CHECK_EQ(size, 5000);
		CHECK_EQ(cpid, getpid());
		CHECK_EQ(lpid, getpid());
		CHECK_EQ(nattch, 1);
		CHECK_EQ(uid, geteuid());
		CHECK_EQ(rss, 4096);
		CHECK_EQ(dt, 0);
		/* Linux's column widths. */
		char want[64];
		snprintf(want, sizeof want, "%10d %10d  %4o %21lu", k, id, 0640, 5000UL);
		CHECK_EQ(strncmp(line, want, strlen(want)), 0);
	}
	fclose(f);
	CHECK_EQ(found, 1);
	CHECK_OK(shmdt(p));
}

static void write_sysctl(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, v, strlen(v)) != (ssize_t)strlen(v))
		FAIL("write %s: %s", path, st_errname(errno));
	close(fd);
}

CASE(limits_per_ipc_namespace)
{
	if (!st_is_root()) {
		fprintf(stderr, "SKIP: CLONE_NEWIPC needs CAP_SYS_ADMIN\n");
		return;
	}
	key_t k = key_for(5);
	CHECK_OK(get(k, 4096, IPC_CREAT | IPC_EXCL | 0600));
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWIPC));
		/* A fresh namespace: none of the parent's segments, default limits. */
		CHECK_ERR(shmget(k, 0, 0), ENOENT);
		struct shm_info in;
		CHECK_EQ(shmctl(0, SHM_INFO, (struct shmid_ds *)&in), 0);
		CHECK_EQ(in.used_ids, 0);
		CHECK_EQ(read_ulong("/proc/sys/kernel/shmmni"), 4096);
		FILE *f = fopen("/proc/sysvipc/shm", "r");
		CHECK_PTR(f);
		char line[512];
		CHECK_PTR(fgets(line, sizeof line, f));
		CHECK_EQ(fgets(line, sizeof line, f), NULL);
		fclose(f);
		write_sysctl("/proc/sys/kernel/shmmax", "100");
		CHECK_ERR(shmget(IPC_PRIVATE, 101, 0600), EINVAL);
		int a = CHECK_OK(shmget(IPC_PRIVATE, 100, 0600));
		write_sysctl("/proc/sys/kernel/shmmax", "100000");
		write_sysctl("/proc/sys/kernel/shmall", "3");
		CHECK_ERR(shmget(IPC_PRIVATE, 3 * 4096, 0600), ENOSPC);
		int b = CHECK_OK(shmget(IPC_PRIVATE, 2 * 4096, 0600));
		write_sysctl("/proc/sys/kernel/shmall", "100");
		write_sysctl("/proc/sys/kernel/shmmni", "2");
		CHECK_ERR(shmget(IPC_PRIVATE, 4096, 0600), ENOSPC);
		struct shminfo si;
		CHECK_EQ(shmctl(0, IPC_INFO, (struct shmid_ds *)&si), 1);
		CHECK_EQ(si.shmmni, 2);
		CHECK_EQ(si.shmmax, 100000);
		CHECK_EQ(si.shmall, 100);
		CHECK_OK(shmctl(a, IPC_RMID, NULL));
		CHECK_OK(shmctl(b, IPC_RMID, NULL));
	});
	/* The parent's namespace is as it was. */
	CHECK_GE(read_ulong("/proc/sys/kernel/shmmni"), 2);
	CHECK_OK(shmget(k, 0, 0));
}

CASE(exit_detaches)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 4096, 0600));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char *p = shmat(id, NULL, 0);
		if (p == (void *)-1)
			_exit(4);
		p[0] = 'c';
		_exit(0);
	}
	CHECK_EXITED(st_wait(pid), 0);
	/* Detached before the parent heard of the exit; the child was the last op. */
	struct shmid_ds d = stat_of(id);
	CHECK_EQ(d.shm_nattch, 0);
	CHECK_EQ(d.shm_lpid, pid);
	CHECK_NE(d.shm_dtime, 0);
	/* A vfork child's exit leaves its parent's attachments alone. */
	char *p = shmat(id, NULL, 0);
	CHECK_NE(p, (void *)-1);
	CHECK_EQ(p[0], 'c');
	pid = vfork();
	if (pid == 0)
		_exit(0);
	CHECK_GT(pid, 0);
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(stat_of(id).shm_nattch, 1);
	CHECK_EQ(p[0], 'c');
	/* A child's exit is a detach even when it is not the last. */
	pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(0);
	CHECK_EXITED(st_wait(pid), 0);
	d = stat_of(id);
	CHECK_EQ(d.shm_nattch, 1);
	CHECK_EQ(d.shm_lpid, pid);
	CHECK_OK(shmdt(p));
}

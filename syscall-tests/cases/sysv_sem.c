/* System V semaphores: semget keys and limits, semop/semtimedop (atomic sets of
 * operations, IPC_NOWAIT, blocking woken by another process, by a signal (EINTR), by a
 * timeout, by removal (EIDRM)), SEM_UNDO at exit, semctl's commands. Every set made is
 * removed at the end of the case, even when it fails. */
#include "harness.h"
#include <sys/ipc.h>
#include <sys/sem.h>

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
	struct seminfo *__buf;
};

static int st_ids[16];
static int st_nids;

static void remove_all(void)
{
	for (int i = 0; i < st_nids; i++)
		semctl(st_ids[i], 0, IPC_RMID);
	st_nids = 0;
}

static int get(key_t key, int n, int flg)
{
	int id = semget(key, n, flg);
	if (id >= 0 && st_nids < 16) {
		st_at_cleanup = remove_all;
		st_ids[st_nids++] = id;
	}
	return id;
}

static key_t key_for(int n)
{
	return (key_t)(0x5e000000 | ((getpid() & 0xffff) << 4) | n);
}

static int op(int id, int num, int o, int flg)
{
	struct sembuf b = { (unsigned short)num, (short)o, (short)flg };
	return semop(id, &b, 1);
}

/* Wait (up to ~5 s) until semctl(id, num, cmd) is `want`. */
static void wait_for(int id, int num, int cmd, int want)
{
	for (int i = 0; i < 500; i++) {
		if (semctl(id, num, cmd) == want)
			return;
		st_sleep_ms(10);
	}
	FAIL("semctl(%d, %d, %d) never became %d", id, num, cmd, want);
}

CASE(get_and_values)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 3, 0640));
	struct semid_ds d;
	CHECK_OK(semctl(id, 0, IPC_STAT, (union semun){ .buf = &d }));
	CHECK_EQ(d.sem_nsems, 3);
	CHECK_EQ(d.sem_perm.mode, 0640);
	CHECK_EQ(d.sem_perm.__key, 0);
	CHECK_EQ(d.sem_perm.uid, geteuid());
	CHECK_EQ(d.sem_otime, 0);
	CHECK_LE(labs(d.sem_ctime - time(NULL)), 5);
	CHECK_EQ(semctl(id, 1, GETVAL), 0);
	CHECK_OK(semctl(id, 1, SETVAL, (union semun){ .val = 5 }));
	CHECK_EQ(semctl(id, 1, GETVAL), 5);
	CHECK_EQ(semctl(id, 1, GETPID), getpid());
	CHECK_EQ(semctl(id, 0, GETPID), 0);
	CHECK_ERR(semctl(id, 1, SETVAL, (union semun){ .val = -1 }), ERANGE);
	CHECK_ERR(semctl(id, 1, SETVAL, (union semun){ .val = 32768 }), ERANGE);
	CHECK_OK(semctl(id, 1, SETVAL, (union semun){ .val = 32767 }));
	CHECK_ERR(semctl(id, 3, GETVAL), EINVAL);
	CHECK_ERR(semctl(id, 3, SETVAL, (union semun){ .val = 1 }), EINVAL);
	unsigned short all[3] = { 7, 8, 9 }, back[3] = { 0 };
	CHECK_OK(semctl(id, 0, SETALL, (union semun){ .array = all }));
	CHECK_OK(semctl(id, 0, GETALL, (union semun){ .array = back }));
	CHECK_EQ(back[0], 7);
	CHECK_EQ(back[2], 9);
	all[1] = 40000;
	CHECK_ERR(semctl(id, 0, SETALL, (union semun){ .array = all }), ERANGE);
	CHECK_ERR(semctl(id, 0, SETALL, (union semun){ .array = (void *)8 }), EFAULT);
	CHECK_ERR(semctl(id, 0, 99), EINVAL);
	CHECK_ERR(semctl(-1, 0, GETVAL), EINVAL);
	CHECK_ERR(semget(IPC_PRIVATE, 0, 0600), EINVAL);
	CHECK_ERR(semget(IPC_PRIVATE, -1, 0600), EINVAL);
	CHECK_ERR(semget(IPC_PRIVATE, 1000000, 0600), EINVAL);
}

CASE(keys)
{
	key_t k = key_for(1);
	CHECK_ERR(semget(k, 1, 0600), ENOENT);
	int id = CHECK_OK(get(k, 2, IPC_CREAT | IPC_EXCL | 0600));
	CHECK_ERR(semget(k, 1, IPC_CREAT | IPC_EXCL | 0600), EEXIST);
	CHECK_EQ(semget(k, 0, 0), id);
	CHECK_EQ(semget(k, 2, IPC_CREAT | 0600), id);
	CHECK_ERR(semget(k, 3, 0), EINVAL);
	CHECK_OK(semctl(id, 0, IPC_RMID));
	CHECK_ERR(semget(k, 0, 0), ENOENT);
	CHECK_ERR(semctl(id, 0, IPC_RMID), EINVAL);
	CHECK_ERR(semctl(id, 0, GETVAL), EINVAL);
}

CASE(semop_atomic_and_errors)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 2, 0600));
	CHECK_OK(op(id, 0, 2, 0));
	CHECK_OK(op(id, 0, -1, 0));
	CHECK_EQ(semctl(id, 0, GETVAL), 1);
	CHECK_EQ(semctl(id, 0, GETPID), getpid());
	struct semid_ds d;
	CHECK_OK(semctl(id, 0, IPC_STAT, (union semun){ .buf = &d }));
	CHECK_LE(labs(d.sem_otime - time(NULL)), 5);
	CHECK_ERR(op(id, 0, 0, IPC_NOWAIT), EAGAIN);
	CHECK_ERR(op(id, 1, -1, IPC_NOWAIT), EAGAIN);
	CHECK_OK(op(id, 1, 0, 0));
	/* All or nothing. */
	struct sembuf two[2] = { { 0, 5, 0 }, { 1, -1, IPC_NOWAIT } };
	CHECK_ERR(semop(id, two, 2), EAGAIN);
	CHECK_EQ(semctl(id, 0, GETVAL), 1);
	/* Operations apply in order: +1 then -2 on one semaphore works. */
	struct sembuf seq[2] = { { 1, 1, 0 }, { 1, -1, 0 } };
	CHECK_OK(semop(id, seq, 2));
	CHECK_EQ(semctl(id, 1, GETVAL), 0);
	CHECK_ERR(semop(id, two, 0), EINVAL);
	static struct sembuf many[501];
	CHECK_ERR(semop(id, many, 501), E2BIG);
	CHECK_ERR(op(id, 2, 1, 0), EFBIG);
	CHECK_ERR(op(id, 0, 32767, 0), ERANGE);
	CHECK_ERR(semop(id, (void *)8, 1), EFAULT);
	CHECK_ERR(op(-1, 0, 1, 0), EINVAL);
	CHECK_ERR(op(id + 1000000, 0, 1, 0), EINVAL);
}

CASE(blocking_woken_by_another_process)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 2, 0600));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(op(id, 0, -2, 0) == 0 && semctl(id, 0, GETVAL) == 0 ? 0 : 1);
	wait_for(id, 0, GETNCNT, 1);
	CHECK_EQ(semctl(id, 0, GETZCNT), 0);
	/* One is not enough. */
	CHECK_OK(op(id, 0, 1, 0));
	st_sleep_ms(50);
	CHECK_EQ(semctl(id, 0, GETNCNT), 1);
	CHECK_OK(op(id, 0, 1, 0));
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(semctl(id, 0, GETNCNT), 0);
	/* Waiting for zero. */
	CHECK_OK(op(id, 1, 1, 0));
	pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(op(id, 1, 0, 0) == 0 ? 0 : 1);
	wait_for(id, 1, GETZCNT, 1);
	CHECK_OK(op(id, 1, -1, 0));
	CHECK_EXITED(st_wait(pid), 0);
}

static void on_alarm(int s)
{
	(void)s;
}

CASE(signal_interrupts_with_eintr)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 1, 0600));
	/* Even with SA_RESTART: semop is never restarted. */
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	CHECK_OK(sigaction(SIGALRM, &sa, NULL));
	struct itimerval it = { .it_value = { 0, 100000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	CHECK_ERR(op(id, 0, -1, 0), EINTR);
	CHECK_EQ(semctl(id, 0, GETNCNT), 0);
}

CASE(timeout_is_eagain)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 1, 0600));
	struct sembuf b = { 0, -1, 0 };
	struct timespec ts = { 0, 100 * 1000000 };
	long long t0 = st_mono_ms();
	CHECK_ERR(semtimedop(id, &b, 1, &ts), EAGAIN);
	CHECK_GE(st_mono_ms() - t0, 90);
	ts.tv_nsec = 1000000000;
	CHECK_ERR(semtimedop(id, &b, 1, &ts), EINVAL);
	/* A timeout does not matter when the operation can proceed. */
	CHECK_OK(op(id, 0, 1, 0));
	ts.tv_nsec = 0;
	CHECK_OK(semtimedop(id, &b, 1, &ts));
}

CASE(removal_wakes_with_eidrm)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 1, 0600));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(op(id, 0, -1, 0) == -1 && errno == EIDRM ? 0 : 1);
	wait_for(id, 0, GETNCNT, 1);
	CHECK_OK(semctl(id, 0, IPC_RMID));
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(undo_at_exit)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 2, 0600));
	CHECK_OK(semctl(id, 0, SETVAL, (union semun){ .val = 5 }));
	IN_CHILD({
		CHECK_OK(op(id, 0, -2, SEM_UNDO));
		CHECK_OK(op(id, 0, -1, SEM_UNDO));
		CHECK_OK(op(id, 1, 3, SEM_UNDO));
		CHECK_OK(op(id, 1, 1, 0));
		CHECK_EQ(semctl(id, 0, GETVAL), 2);
	});
	/* The adjustments were undone; the operation without SEM_UNDO stays. */
	CHECK_EQ(semctl(id, 0, GETVAL), 5);
	CHECK_EQ(semctl(id, 1, GETVAL), 1);
	/* SETVAL drops the adjustments of that semaphore. */
	int pfd[2], qfd[2];
	CHECK_OK(pipe(pfd));
	CHECK_OK(pipe(qfd));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		if (op(id, 0, -1, SEM_UNDO) != 0 || write(pfd[1], "x", 1) != 1 ||
		    read(qfd[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	char c;
	CHECK_EQ(read(pfd[0], &c, 1), 1);
	CHECK_OK(semctl(id, 0, SETVAL, (union semun){ .val = 10 }));
	CHECK_EQ(write(qfd[1], "x", 1), 1);
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(semctl(id, 0, GETVAL), 10);
	close(pfd[0]);
	close(pfd[1]);
	close(qfd[0]);
	close(qfd[1]);
}

static long read_field(const char *path, int n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		FAIL("%s: %s", path, st_errname(errno));
	long v[4] = { 0 };
	if (fscanf(f, "%ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3]) != 4)
		FAIL("%s: not four numbers", path);
	fclose(f);
	return v[n];
}

CASE(info_stat_and_proc)
{
	key_t k = key_for(2);
	int id = CHECK_OK(get(k, 4, IPC_CREAT | IPC_EXCL | 0640));
	struct seminfo si;
	int max = CHECK_OK(semctl(0, 0, IPC_INFO, (union semun){ .__buf = &si }));
	CHECK_EQ(si.semmsl, read_field("/proc/sys/kernel/sem", 0));
	CHECK_EQ(si.semmns, read_field("/proc/sys/kernel/sem", 1));
	CHECK_EQ(si.semopm, read_field("/proc/sys/kernel/sem", 2));
	CHECK_EQ(si.semmni, read_field("/proc/sys/kernel/sem", 3));
	CHECK_EQ(si.semvmx, 32767);
	CHECK_EQ(semctl(0, 0, SEM_INFO, (union semun){ .__buf = &si }), max);
	CHECK_GE(si.semusz, 1);
	CHECK_GE(si.semaem, 4);
	int seen = 0;
	for (int i = 0; i <= max; i++) {
		struct semid_ds d;
		if (semctl(i, 0, SEM_STAT_ANY, (union semun){ .buf = &d }) == id) {
			CHECK_EQ(d.sem_nsems, 4);
			CHECK_EQ(semctl(i, 0, SEM_STAT, (union semun){ .buf = &d }), id);
			seen = 1;
		}
	}
	CHECK_EQ(seen, 1);
	FILE *f = fopen("/proc/sysvipc/sem", "r");
	CHECK_PTR(f);
	char line[256], want[128];
	CHECK_PTR(fgets(line, sizeof line, f));
	CHECK_STREQ(line, "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n");
	snprintf(want, sizeof want, "%10d %10d  %4o %10u %5u %5u %5u %5u %10u ", k, id, 0640, 4,
		 geteuid(), getegid(), geteuid(), getegid(), 0);
	seen = 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, want, strlen(want)) == 0)
			seen = 1;
	fclose(f);
	CHECK_EQ(seen, 1);
}

CASE(permissions)
{
	if (!st_is_root()) {
		fprintf(stderr, "SKIP: needs root to test another user's access\n");
		return;
	}
	int id = CHECK_OK(get(IPC_PRIVATE, 1, 0604));
	IN_CHILD({
		st_drop_privileges();
		CHECK_EQ(semctl(id, 0, GETVAL), 0);
		CHECK_OK(op(id, 0, 0, IPC_NOWAIT));
		CHECK_ERR(op(id, 0, 1, 0), EACCES);
		CHECK_ERR(semctl(id, 0, SETVAL, (union semun){ .val = 1 }), EACCES);
		CHECK_ERR(semctl(id, 0, IPC_RMID), EPERM);
	});
	struct semid_ds d;
	CHECK_OK(semctl(id, 0, IPC_STAT, (union semun){ .buf = &d }));
	d.sem_perm.mode = 0600;
	CHECK_OK(semctl(id, 0, IPC_SET, (union semun){ .buf = &d }));
	IN_CHILD({
		st_drop_privileges();
		CHECK_ERR(semctl(id, 0, GETVAL), EACCES);
		struct semid_ds e;
		CHECK_ERR(semctl(id, 0, IPC_STAT, (union semun){ .buf = &e }), EACCES);
	});
}

static void write_file(const char *path, const char *v)
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
	key_t k = key_for(3);
	CHECK_OK(get(k, 1, IPC_CREAT | IPC_EXCL | 0600));
	int id = CHECK_OK(semget(k, 0, 0));
	/* Leaving the namespace applies the SEM_UNDO adjustments made there (before the
	 * process exits). */
	int pfd[2], qfd[2];
	CHECK_OK(pipe(pfd));
	CHECK_OK(pipe(qfd));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		if (op(id, 0, 3, SEM_UNDO) != 0 || semctl(id, 0, GETVAL) != 3 ||
		    unshare(CLONE_NEWIPC) != 0 || write(pfd[1], "x", 1) != 1 ||
		    read(qfd[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	char c;
	CHECK_EQ(read(pfd[0], &c, 1), 1);
	CHECK_EQ(semctl(id, 0, GETVAL), 0);
	CHECK_EQ(write(qfd[1], "x", 1), 1);
	CHECK_EXITED(st_wait(pid), 0);
	close(pfd[0]);
	close(pfd[1]);
	close(qfd[0]);
	close(qfd[1]);
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWIPC));
		CHECK_ERR(semget(k, 0, 0), ENOENT);
		CHECK_EQ(read_field("/proc/sys/kernel/sem", 0), 32000);
		write_file("/proc/sys/kernel/sem", "4 6 2 2\n");
		CHECK_EQ(read_field("/proc/sys/kernel/sem", 2), 2);
		CHECK_ERR(semget(IPC_PRIVATE, 5, 0600), EINVAL);
		int a = CHECK_OK(semget(IPC_PRIVATE, 4, 0600));
		CHECK_ERR(semget(IPC_PRIVATE, 3, 0600), ENOSPC);
		int b = CHECK_OK(semget(IPC_PRIVATE, 2, 0600));
		write_file("/proc/sys/kernel/sem", "4 100 2 2\n");
		CHECK_ERR(semget(IPC_PRIVATE, 1, 0600), ENOSPC);
		struct sembuf ops[3] = { { 0, 1, 0 }, { 1, 1, 0 }, { 2, 1, 0 } };
		CHECK_ERR(semop(a, ops, 3), E2BIG);
		CHECK_OK(semop(a, ops, 2));
		CHECK_OK(semctl(a, 0, IPC_RMID));
		CHECK_OK(semctl(b, 0, IPC_RMID));
	});
	CHECK_EQ(semctl(id, 0, GETVAL), 0);
}

/* System V message queues: msgget keys, msgsnd/msgrcv with message types (0, >0, <0,
 * MSG_EXCEPT), MSG_NOERROR and E2BIG, a full queue, blocking woken by another process,
 * by a signal (EINTR) and by removal (EIDRM), msgctl's commands. Every queue made is
 * removed at the end of the case, even when it fails. */
#include "harness.h"
#include <sys/ipc.h>
#include <sys/msg.h>

static int st_ids[16];
static int st_nids;

static void remove_all(void)
{
	for (int i = 0; i < st_nids; i++)
		msgctl(st_ids[i], IPC_RMID, NULL);
	st_nids = 0;
}

static int get(key_t key, int flg)
{
	int id = msgget(key, flg);
	if (id >= 0 && st_nids < 16) {
		st_at_cleanup = remove_all;
		st_ids[st_nids++] = id;
	}
	return id;
}

static key_t key_for(int n)
{
	return (key_t)(0x5d000000 | ((getpid() & 0xffff) << 4) | n);
}

struct m {
	long type;
	char text[64];
};

static int msend(int id, long type, const char *text, int flg)
{
	struct m b = { type, "" };
	strcpy(b.text, text);
	return msgsnd(id, &b, strlen(text), flg);
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		FAIL("%s: %s", path, st_errname(errno));
	long v = 0;
	if (fscanf(f, "%ld", &v) != 1)
		FAIL("%s: not a number", path);
	fclose(f);
	return v;
}

static struct msqid_ds stat_of(int id)
{
	struct msqid_ds d;
	memset(&d, 0xa5, sizeof d);
	CHECK_OK(msgctl(id, IPC_STAT, &d));
	return d;
}

CASE(get_and_stat)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 0640));
	struct msqid_ds d = stat_of(id);
	CHECK_EQ(d.msg_perm.mode, 0640);
	CHECK_EQ(d.msg_perm.uid, geteuid());
	CHECK_EQ(d.msg_qnum, 0);
	CHECK_EQ(d.__msg_cbytes, 0);
	CHECK_EQ(d.msg_qbytes, read_long("/proc/sys/kernel/msgmnb"));
	CHECK_EQ(d.msg_lspid, 0);
	CHECK_EQ(d.msg_stime, 0);
	CHECK_LE(labs(d.msg_ctime - time(NULL)), 5);
	key_t k = key_for(1);
	CHECK_ERR(msgget(k, 0600), ENOENT);
	int q = CHECK_OK(get(k, IPC_CREAT | IPC_EXCL | 0600));
	CHECK_ERR(msgget(k, IPC_CREAT | IPC_EXCL | 0600), EEXIST);
	CHECK_EQ(msgget(k, 0), q);
	CHECK_OK(msgctl(q, IPC_RMID, NULL));
	CHECK_ERR(msgget(k, 0), ENOENT);
	CHECK_ERR(msgctl(q, IPC_STAT, &d), EINVAL);
	CHECK_ERR(msgctl(q, IPC_RMID, NULL), EINVAL);
	CHECK_ERR(msgctl(id, 99, &d), EINVAL);
	CHECK_ERR(msgctl(-1, IPC_STAT, &d), EINVAL);
	CHECK_ERR(msgctl(id, IPC_STAT, (void *)8), EFAULT);
}

CASE(types_and_sizes)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 0600));
	CHECK_OK(msend(id, 3, "three", 0));
	CHECK_OK(msend(id, 1, "one-a", 0));
	CHECK_OK(msend(id, 2, "two", 0));
	CHECK_OK(msend(id, 1, "one-b", 0));
	struct msqid_ds d = stat_of(id);
	CHECK_EQ(d.msg_qnum, 4);
	CHECK_EQ(d.__msg_cbytes, 18);
	CHECK_EQ(d.msg_lspid, getpid());
	CHECK_LE(labs(d.msg_stime - time(NULL)), 5);
	struct m r;
	memset(&r, 0, sizeof r);
	/* Type 0: the first. */
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, 0, 0), 5);
	CHECK_EQ(r.type, 3);
	CHECK_MEMEQ(r.text, "three", 5);
	/* Too small: E2BIG and the message stays; MSG_NOERROR truncates. */
	CHECK_ERR(msgrcv(id, &r, 2, 1, 0), E2BIG);
	CHECK_EQ(msgrcv(id, &r, 3, 1, MSG_NOERROR), 3);
	CHECK_EQ(r.type, 1);
	CHECK_MEMEQ(r.text, "one", 3);
	/* MSG_EXCEPT: the first not of that type. */
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, 1, MSG_EXCEPT), 3);
	CHECK_EQ(r.type, 2);
	/* Negative: the lowest type up to |type|. */
	CHECK_OK(msend(id, 5, "five", 0));
	CHECK_OK(msend(id, 4, "four", 0));
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, -5, 0), 5);
	CHECK_EQ(r.type, 1);
	CHECK_MEMEQ(r.text, "one-b", 5);
	CHECK_ERR(msgrcv(id, &r, sizeof r.text, -3, IPC_NOWAIT), ENOMSG);
	CHECK_ERR(msgrcv(id, &r, sizeof r.text, 6, IPC_NOWAIT), ENOMSG);
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, -5, 0), 4);
	CHECK_EQ(r.type, 4);
	d = stat_of(id);
	CHECK_EQ(d.msg_qnum, 1);
	CHECK_EQ(d.msg_lrpid, getpid());
	CHECK_LE(labs(d.msg_rtime - time(NULL)), 5);
	/* Empty messages are messages. */
	CHECK_OK(msend(id, 7, "", 0));
	CHECK_EQ(msgrcv(id, &r, 0, 7, 0), 0);
	/* Bad sends. */
	CHECK_ERR(msend(id, 0, "x", 0), EINVAL);
	CHECK_ERR(msend(id, -1, "x", 0), EINVAL);
	struct m *big = calloc(1, 8 + 70000);
	big->type = 1;
	CHECK_ERR(msgsnd(id, big, read_long("/proc/sys/kernel/msgmax") + 1, 0), EINVAL);
	free(big);
	CHECK_ERR(msgsnd(id, (void *)8, 1, 0), EFAULT);
	CHECK_ERR(msgrcv(id, &r, (size_t)-1, 0, IPC_NOWAIT), EINVAL);
	CHECK_ERR(msend(id + 1000000, 1, "x", 0), EINVAL);
}

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

CASE(msg_copy)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 0600));
	CHECK_OK(msend(id, 5, "first", 0));
	CHECK_OK(msend(id, 6, "second", 0));
	struct m r;
	memset(&r, 0, sizeof r);
	CHECK_ERR(msgrcv(id, &r, sizeof r.text, 0, MSG_COPY), EINVAL);
	CHECK_ERR(msgrcv(id, &r, sizeof r.text, 0, MSG_COPY | IPC_NOWAIT | MSG_EXCEPT), EINVAL);
	/* By position, and left in the queue. */
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, 1, MSG_COPY | IPC_NOWAIT), 6);
	CHECK_EQ(r.type, 6);
	CHECK_MEMEQ(r.text, "second", 6);
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, 0, MSG_COPY | IPC_NOWAIT), 5);
	CHECK_EQ(r.type, 5);
	CHECK_ERR(msgrcv(id, &r, sizeof r.text, 2, MSG_COPY | IPC_NOWAIT), ENOMSG);
	CHECK_ERR(msgrcv(id, &r, 2, 0, MSG_COPY | IPC_NOWAIT), E2BIG);
	struct msqid_ds d = stat_of(id);
	CHECK_EQ(d.msg_qnum, 2);
	CHECK_EQ(d.msg_lrpid, 0);
}

CASE(full_queue_blocks_sender)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 0600));
	struct msqid_ds d = stat_of(id);
	d.msg_qbytes = 10;
	CHECK_OK(msgctl(id, IPC_SET, &d));
	CHECK_EQ(stat_of(id).msg_qbytes, 10);
	CHECK_OK(msend(id, 1, "12345678", 0));
	CHECK_ERR(msend(id, 1, "abc", IPC_NOWAIT), EAGAIN);
	pid_t pid = CHECK_OK(fork());
	if (pid == 0)
		_exit(msend(id, 2, "abc", 0) == 0 ? 0 : 1);
	st_sleep_ms(100);
	CHECK_EQ(stat_of(id).msg_qnum, 1);
	struct m r;
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, 1, 0), 8);
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(msgrcv(id, &r, sizeof r.text, 0, IPC_NOWAIT), 3);
	CHECK_EQ(r.type, 2);
}

CASE(receiver_woken_by_sender)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 0600));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		struct m r;
		_exit(msgrcv(id, &r, sizeof r.text, 9, 0) == 2 && r.text[0] == 'h' ? 0 : 1);
	}
	st_sleep_ms(50);
	CHECK_OK(msend(id, 8, "no", 0));
	CHECK_OK(msend(id, 9, "hi", 0));
	CHECK_EXITED(st_wait(pid), 0);
	CHECK_EQ(stat_of(id).msg_qnum, 1);
}

static void on_alarm(int s)
{
	(void)s;
}

CASE(signal_interrupts_with_eintr)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 0600));
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	CHECK_OK(sigaction(SIGALRM, &sa, NULL));
	struct itimerval it = { .it_value = { 0, 100000 } };
	CHECK_OK(setitimer(ITIMER_REAL, &it, NULL));
	struct m r;
	CHECK_ERR(msgrcv(id, &r, sizeof r.text, 0, 0), EINTR);
}

CASE(removal_wakes_with_eidrm)
{
	int id = CHECK_OK(get(IPC_PRIVATE, 0600));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		struct m r;
		_exit(msgrcv(id, &r, sizeof r.text, 0, 0) == -1 && errno == EIDRM ? 0 : 1);
	}
	st_sleep_ms(200);
	CHECK_OK(msgctl(id, IPC_RMID, NULL));
	CHECK_EXITED(st_wait(pid), 0);
}

CASE(info_stat_and_proc)
{
	key_t k = key_for(2);
	int id = CHECK_OK(get(k, IPC_CREAT | IPC_EXCL | 0640));
	CHECK_OK(msend(id, 1, "abcd", 0));
	struct msginfo mi;
	int max = CHECK_OK(msgctl(0, IPC_INFO, (struct msqid_ds *)&mi));
	CHECK_EQ(mi.msgmax, read_long("/proc/sys/kernel/msgmax"));
	CHECK_EQ(mi.msgmnb, read_long("/proc/sys/kernel/msgmnb"));
	CHECK_EQ(mi.msgmni, read_long("/proc/sys/kernel/msgmni"));
	CHECK_EQ(mi.msgssz, 16);
	CHECK_EQ(mi.msgseg, 0xffff);
	CHECK_EQ(msgctl(0, MSG_INFO, (struct msqid_ds *)&mi), max);
	CHECK_GE(mi.msgpool, 1);
	CHECK_GE(mi.msgmap, 1);
	CHECK_GE(mi.msgtql, 4);
	int seen = 0;
	for (int i = 0; i <= max; i++) {
		struct msqid_ds d;
		if (msgctl(i, MSG_STAT_ANY, &d) == id) {
			CHECK_EQ(d.msg_qnum, 1);
			CHECK_EQ(msgctl(i, MSG_STAT, &d), id);
			seen = 1;
		}
	}
	CHECK_EQ(seen, 1);
	FILE *f = fopen("/proc/sysvipc/msg", "r");
	CHECK_PTR(f);
	char line[256], want[160];
	CHECK_PTR(fgets(line, sizeof line, f));
	CHECK_STREQ(line, "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n");
	snprintf(want, sizeof want, "%10d %10d  %4o  %10u %10u %5u %5u %5u %5u %5u %5u ", k, id, 0640,
		 4, 1, getpid(), 0, geteuid(), getegid(), geteuid(), getegid());
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
	int id = CHECK_OK(get(IPC_PRIVATE, 0604));
	CHECK_OK(msend(id, 1, "x", 0));
	IN_CHILD({
		st_drop_privileges();
		struct m r;
		CHECK_ERR(msend(id, 1, "y", 0), EACCES);
		CHECK_EQ(msgrcv(id, &r, sizeof r.text, 0, IPC_NOWAIT), 1);
		struct msqid_ds d;
		CHECK_OK(msgctl(id, IPC_STAT, &d));
		CHECK_ERR(msgctl(id, IPC_SET, &d), EPERM);
		CHECK_ERR(msgctl(id, IPC_RMID, NULL), EPERM);
	});
	/* Given to uid 65534, which may not raise qbytes past msgmnb (that needs
	 * CAP_SYS_RESOURCE) but may remove it. */
	struct msqid_ds d = stat_of(id);
	d.msg_perm.uid = 65534;
	d.msg_qbytes = 100;
	CHECK_OK(msgctl(id, IPC_SET, &d));
	IN_CHILD({
		st_drop_privileges();
		struct msqid_ds e;
		CHECK_OK(msgctl(id, IPC_STAT, &e));
		e.msg_qbytes = read_long("/proc/sys/kernel/msgmnb") + 1;
		CHECK_ERR(msgctl(id, IPC_SET, &e), EPERM);
		CHECK_OK(msgctl(id, IPC_RMID, NULL));
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
	CHECK_OK(get(k, IPC_CREAT | IPC_EXCL | 0600));
	IN_CHILD({
		CHECK_OK(unshare(CLONE_NEWIPC));
		CHECK_ERR(msgget(k, 0), ENOENT);
		CHECK_EQ(read_long("/proc/sys/kernel/msgmax"), 8192);
		write_file("/proc/sys/kernel/msgmni", "1");
		write_file("/proc/sys/kernel/msgmax", "4");
		write_file("/proc/sys/kernel/msgmnb", "6");
		int a = CHECK_OK(msgget(IPC_PRIVATE, 0600));
		CHECK_ERR(msgget(IPC_PRIVATE, 0600), ENOSPC);
		CHECK_EQ(stat_of(a).msg_qbytes, 6);
		CHECK_ERR(msend(a, 1, "12345", 0), EINVAL);
		CHECK_OK(msend(a, 1, "1234", 0));
		CHECK_ERR(msend(a, 1, "123", IPC_NOWAIT), EAGAIN);
		CHECK_OK(msgctl(a, IPC_RMID, NULL));
	});
	CHECK_OK(msgget(k, 0));
}

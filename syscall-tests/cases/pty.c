/* Pseudo-terminals: /dev/ptmx, /dev/pts, termios, line discipline, job control. */
#include "harness.h"
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <termios.h>

static int open_pty(int *slave)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0)
		FAIL("posix_openpt: %s", st_errname(errno));
	if (grantpt(m) != 0 || unlockpt(m) != 0)
		FAIL("grantpt/unlockpt: %s", st_errname(errno));
	const char *name = ptsname(m);
	if (!name)
		FAIL("ptsname: %s", st_errname(errno));
	*slave = open(name, O_RDWR | O_NOCTTY);
	if (*slave < 0)
		FAIL("open(%s): %s", name, st_errname(errno));
	return m;
}

CASE(open_master_and_slave)
{
	int s;
	int m = open_pty(&s);
	CHECK_EQ(isatty(m), 1);
	CHECK_EQ(isatty(s), 1);
	const char *name = ptsname(m);
	CHECK_EQ(strncmp(name, "/dev/pts/", 9), 0);
	int n = -1;
	CHECK_OK(ioctl(m, TIOCGPTN, &n));
	char want[32];
	snprintf(want, sizeof want, "/dev/pts/%d", n);
	CHECK_STREQ(name, want);
	char tn[64];
	CHECK_PT(ttyname_r(s, tn, sizeof tn));
	CHECK_STREQ(tn, name);
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_EQ(isatty(fd), 0);
	CHECK_EQ(errno, ENOTTY);
	close(fd);
	close(s);
	close(m);
}

CASE(canonical_mode_line_buffering)
{
	int s;
	int m = open_pty(&s);
	CHECK_EQ(write(m, "hello\n", 6), 6);
	char buf[32] = { 0 };
	CHECK_EQ(read(s, buf, sizeof buf), 6);
	CHECK_STREQ(buf, "hello\n");
	/* Echo goes back to the master. */
	memset(buf, 0, sizeof buf);
	CHECK_EQ(read(m, buf, sizeof buf), 7);
	CHECK_STREQ(buf, "hello\r\n");
	close(s);
	close(m);
}

CASE(slave_output_onlcr)
{
	int s;
	int m = open_pty(&s);
	CHECK_EQ(write(s, "out\n", 4), 4);
	char buf[16] = { 0 };
	CHECK_EQ(read(m, buf, sizeof buf), 5);
	CHECK_STREQ(buf, "out\r\n");
	close(s);
	close(m);
}

CASE(raw_mode)
{
	int s;
	int m = open_pty(&s);
	struct termios t;
	CHECK_OK(tcgetattr(s, &t));
	CHECK(t.c_lflag & ICANON);
	CHECK(t.c_lflag & ECHO);
	cfmakeraw(&t);
	CHECK_OK(tcsetattr(s, TCSANOW, &t));
	struct termios got;
	CHECK_OK(tcgetattr(s, &got));
	CHECK_EQ(got.c_lflag & (ICANON | ECHO), 0);
	CHECK_EQ(write(m, "ab", 2), 2);
	char buf[8] = { 0 };
	CHECK_EQ(read(s, buf, sizeof buf), 2);
	CHECK_STREQ(buf, "ab");
	close(s);
	close(m);
}

CASE(window_size)
{
	int s;
	int m = open_pty(&s);
	struct winsize ws = { .ws_row = 40, .ws_col = 132 };
	CHECK_OK(ioctl(m, TIOCSWINSZ, &ws));
	struct winsize got;
	memset(&got, 0, sizeof got);
	CHECK_OK(ioctl(s, TIOCGWINSZ, &got));
	CHECK_EQ(got.ws_row, 40);
	CHECK_EQ(got.ws_col, 132);
	int fd = CHECK_OK(open("/dev/null", O_RDONLY));
	CHECK_ERR(ioctl(fd, TIOCGWINSZ, &got), ENOTTY);
	close(fd);
	close(s);
	close(m);
}

CASE(hangup_when_master_closes)
{
	int s;
	int m = open_pty(&s);
	close(m);
	/* The slave is hung up: reads see end of file, writes fail. */
	char buf[8];
	CHECK_EQ(read(s, buf, sizeof buf), 0);
	CHECK_ERR(write(s, "x", 1), EIO);
	close(s);
}

CASE(controlling_terminal_and_sigint)
{
	int s;
	int m = open_pty(&s);
	char name[64];
	snprintf(name, sizeof name, "%s", ptsname(m));
	close(s);
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		setsid();
		/* The first terminal a session leader opens without O_NOCTTY becomes its
		 * controlling terminal. */
		int fd = open(name, O_RDWR);
		if (fd < 0)
			_exit(1);
		if (tcgetpgrp(fd) != getpid())
			_exit(2);
		if (tcgetsid(fd) != getpid())
			_exit(3);
		int t = open("/dev/tty", O_RDWR);
		if (t < 0)
			_exit(4);
		(void)!write(p[1], "r", 1);
		for (;;)
			pause();
	}
	char c;
	CHECK_EQ(read(p[0], &c, 1), 1);
	/* ^C typed on the terminal sends SIGINT to the foreground group. */
	CHECK_EQ(write(m, "\003", 1), 1);
	CHECK_SIGNALED(st_wait(pid), SIGINT);
	close(m);
}

/* tty_nr and tpgid of /proc/PID/stat. */
static void stat_tty(pid_t pid, long long *tty_nr, long long *tpgid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	st_read_file(path, buf, sizeof buf);
	char *p = strrchr(buf, ')');
	char state;
	int ppid, pgrp, sid;
	if (!p || sscanf(p + 2, "%c %d %d %d %lld %lld", &state, &ppid, &pgrp, &sid, tty_nr, tpgid) != 6)
		FAIL("cannot parse %s: %s", path, buf);
}

CASE(proc_stat_tty_nr_follows_controlling_terminal)
{
	int s;
	int m = open_pty(&s);
	struct stat st;
	CHECK_OK(fstat(s, &st));
	/* The kernel's encoding of the device number (new_encode_dev). */
	long long dev = (long long)((minor(st.st_rdev) & 0xff) | (major(st.st_rdev) << 8) |
				    ((minor(st.st_rdev) & ~0xffu) << 12));
	IN_CHILD({
		CHECK_OK(setsid());
		long long tty, tpgid;
		/* A new session has no controlling terminal. */
		stat_tty(getpid(), &tty, &tpgid);
		CHECK_EQ(tty, 0);
		CHECK_EQ(tpgid, -1);
		CHECK_OK(ioctl(s, TIOCSCTTY, 0));
		stat_tty(getpid(), &tty, &tpgid);
		CHECK_EQ(tty, dev);
		CHECK_EQ(tpgid, getpid());
		/* A process of the session in another (background) group: the same terminal,
		 * whose foreground group is still ours. */
		pid_t leader = getpid();
		IN_CHILD({
			CHECK_OK(setpgid(0, 0));
			long long t2, g2;
			stat_tty(getpid(), &t2, &g2);
			CHECK_EQ(t2, dev);
			CHECK_EQ(g2, leader);
		});
		/* The leader gives the terminal up (its foreground group, us, gets SIGHUP). */
		signal(SIGHUP, SIG_IGN);
		CHECK_OK(ioctl(s, TIOCNOTTY));
		stat_tty(getpid(), &tty, &tpgid);
		CHECK_EQ(tty, 0);
		CHECK_EQ(tpgid, -1);
	});
	close(s);
	close(m);
}

CASE(tiocnotty_by_a_member_is_inherited_by_its_children)
{
	int s;
	int m = open_pty(&s);
	IN_CHILD({
		CHECK_OK(setsid());
		CHECK_OK(ioctl(s, TIOCSCTTY, 0));
		IN_CHILD({
			/* A member of the session (not its leader) gives the terminal up... */
			CHECK_OK(ioctl(s, TIOCNOTTY));
			CHECK_ERR(open("/dev/tty", O_RDWR), ENXIO);
			long long tty, tpgid;
			stat_tty(getpid(), &tty, &tpgid);
			CHECK_EQ(tty, 0);
			/* ...and the children it forks then have none either. */
			IN_CHILD({
				CHECK_ERR(open("/dev/tty", O_RDWR), ENXIO);
				long long t2, g2;
				stat_tty(getpid(), &t2, &g2);
				CHECK_EQ(t2, 0);
				CHECK_EQ(g2, -1);
			});
		});
		/* The leader keeps it, and so do the children it forks. */
		int t = CHECK_OK(open("/dev/tty", O_RDWR));
		close(t);
		IN_CHILD({
			int t2 = CHECK_OK(open("/dev/tty", O_RDWR));
			close(t2);
		});
	});
	close(s);
	close(m);
}

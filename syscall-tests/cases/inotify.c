/* inotify: instances and watches, the events file system calls generate (on a
 * directory's entries and on watched files themselves), rename cookies, one-shot and
 * added masks, IN_IGNORED, the read format, FIONREAD, poll/epoll and blocking reads. */
#include "harness.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

static const struct {
	uint32_t bit;
	const char *name;
} st_in_names[] = {
	{ IN_ACCESS, "ACCESS" },	 { IN_MODIFY, "MODIFY" },
	{ IN_ATTRIB, "ATTRIB" },	 { IN_CLOSE_WRITE, "CLOSE_WRITE" },
	{ IN_CLOSE_NOWRITE, "CLOSE_NOWRITE" }, { IN_OPEN, "OPEN" },
	{ IN_MOVED_FROM, "MOVED_FROM" }, { IN_MOVED_TO, "MOVED_TO" },
	{ IN_CREATE, "CREATE" },	 { IN_DELETE, "DELETE" },
	{ IN_DELETE_SELF, "DELETE_SELF" }, { IN_MOVE_SELF, "MOVE_SELF" },
	{ IN_Q_OVERFLOW, "Q_OVERFLOW" }, { IN_IGNORED, "IGNORED" },
	{ IN_ISDIR, "ISDIR" },
};

/* Reads every queued event (the descriptor must be non-blocking) and describes them as
 * "wd:MASK[,MASK] [name]" joined by " | ". Cookies of a MOVED_FROM/MOVED_TO pair must
 * match and be nonzero; all other cookies must be 0. */
static const char *drain(int fd)
{
	static char out[4096];
	char buf[4096] __attribute__((aligned(8)));
	uint32_t from_cookie = 0;
	out[0] = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			FAIL("read inotify: %zd errno %s", n, st_errname(errno));
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			char one[256];
			int k = snprintf(one, sizeof one, "%s%d:", out[0] ? " | " : "", ev->wd);
			int first = 1;
			for (unsigned i = 0; i < sizeof st_in_names / sizeof st_in_names[0]; i++) {
				if (ev->mask & st_in_names[i].bit) {
					k += snprintf(one + k, sizeof one - k, "%s%s", first ? "" : ",",
						      st_in_names[i].name);
					first = 0;
				}
			}
			if (ev->len)
				snprintf(one + k, sizeof one - k, " %s", ev->name);
			if (ev->mask & IN_MOVED_FROM) {
				if (ev->cookie == 0)
					FAIL("MOVED_FROM with cookie 0");
				from_cookie = ev->cookie;
			} else if (ev->mask & IN_MOVED_TO) {
				if (ev->cookie != from_cookie)
					FAIL("MOVED_TO cookie %u, MOVED_FROM's %u", ev->cookie, from_cookie);
			} else if (ev->cookie != 0) {
				FAIL("cookie %u on a mask %#x event", ev->cookie, ev->mask);
			}
			strncat(out, one, sizeof out - strlen(out) - 1);
			p += sizeof *ev + ev->len;
		}
	}
	return out;
}

static int new_inotify(void)
{
	return CHECK_OK(inotify_init1(IN_NONBLOCK));
}

CASE(init_flags)
{
	int fd = CHECK_OK(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(fd, F_GETFL) & (O_NONBLOCK | O_ACCMODE), O_NONBLOCK | O_RDONLY);
	close(fd);
	fd = CHECK_OK(inotify_init());
	CHECK_EQ(fcntl(fd, F_GETFD), 0);
	CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	CHECK_ERR(inotify_init1(1), EINVAL);
	CHECK_ERR(inotify_init1(O_RDWR), EINVAL);
	/* The descriptor is read-only: writes are EBADF. */
	fd = new_inotify();
	CHECK_ERR(write(fd, "x", 1), EBADF);
	/* Nothing queued: EAGAIN. */
	char buf[64];
	CHECK_ERR(read(fd, buf, sizeof buf), EAGAIN);
	close(fd);
}

CASE(add_watch_errors)
{
	int fd = new_inotify();
	st_write_file(P("f"), "x");
	CHECK_ERR(inotify_add_watch(fd, P("missing"), IN_ALL_EVENTS), ENOENT);
	CHECK_ERR(inotify_add_watch(fd, P("f"), 0), EINVAL);
	CHECK_ERR(inotify_add_watch(fd, P("f"), IN_MODIFY | IN_MASK_ADD | IN_MASK_CREATE), EINVAL);
	CHECK_ERR(inotify_add_watch(fd, P("f"), IN_MODIFY | IN_ONLYDIR), ENOTDIR);
	CHECK_ERR(inotify_add_watch(-1, P("f"), IN_MODIFY), EBADF);
	int notino = CHECK_OK(open(P("f"), O_RDONLY));
	CHECK_ERR(inotify_add_watch(notino, P("f"), IN_MODIFY), EINVAL);
	CHECK_ERR(inotify_rm_watch(notino, 1), EINVAL);
	close(notino);
	CHECK_ERR(inotify_rm_watch(fd, 12345), EINVAL);
	/* Watching needs read permission on the file. */
	CHECK_OK(chmod(P("f"), 0));
	IN_CHILD({
		st_drop_privileges();
		int i = CHECK_OK(inotify_init1(IN_NONBLOCK));
		CHECK_ERR(inotify_add_watch(i, P("f"), IN_MODIFY), EACCES);
	});
	CHECK_OK(chmod(P("f"), 0644));
	/* The same inode again: the same watch descriptor; IN_MASK_CREATE refuses it. */
	int wd = CHECK_OK(inotify_add_watch(fd, P("f"), IN_MODIFY));
	CHECK_EQ(wd, 1);
	CHECK_EQ(inotify_add_watch(fd, P("f"), IN_ATTRIB), wd);
	CHECK_OK(link(P("f"), P("g")));
	CHECK_EQ(inotify_add_watch(fd, P("g"), IN_ATTRIB), wd);
	CHECK_ERR(inotify_add_watch(fd, P("f"), IN_ATTRIB | IN_MASK_CREATE), EEXIST);
	/* Another inode: the next descriptor. */
	CHECK_EQ(inotify_add_watch(fd, st_tmpdir(), IN_CREATE | IN_ONLYDIR), 2);
	/* Symlinks are followed unless IN_DONT_FOLLOW. */
	CHECK_OK(symlink(P("f"), P("l")));
	CHECK_EQ(inotify_add_watch(fd, P("l"), IN_ATTRIB), wd);
	CHECK_EQ(inotify_add_watch(fd, P("l"), IN_ATTRIB | IN_DONT_FOLLOW), 3);
	close(fd);
}

CASE(directory_entry_events)
{
	CHECK_OK(mkdir(P("d"), 0755));
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, P("d"), IN_ALL_EVENTS), 1);
	int f = CHECK_OK(open(P("d/f"), O_CREAT | O_WRONLY, 0644));
	CHECK_EQ(write(f, "hello", 5), 5);
	CHECK_OK(close(f));
	f = CHECK_OK(open(P("d/f"), O_RDONLY));
	char b[8];
	CHECK_EQ(read(f, b, sizeof b), 5);
	CHECK_EQ(read(f, b, sizeof b), 0);
	CHECK_OK(close(f));
	CHECK_OK(chmod(P("d/f"), 0600));
	CHECK_OK(truncate(P("d/f"), 1));
	CHECK_OK(unlink(P("d/f")));
	CHECK_STREQ(drain(fd), "1:CREATE f | 1:OPEN f | 1:MODIFY f | 1:CLOSE_WRITE f | "
			       "1:OPEN f | 1:ACCESS f | 1:CLOSE_NOWRITE f | 1:ATTRIB f | "
			       "1:MODIFY f | 1:DELETE f");
	/* Directories, symlinks, nodes and hard links. */
	CHECK_OK(mkdir(P("d/sub"), 0755));
	CHECK_OK(symlink("target", P("d/sym")));
	CHECK_OK(mkfifo(P("d/fifo"), 0644));
	CHECK_OK(link(P("d/fifo"), P("d/hard")));
	CHECK_OK(rmdir(P("d/sub")));
	CHECK_OK(unlink(P("d/sym")));
	CHECK_STREQ(drain(fd), "1:CREATE,ISDIR sub | 1:CREATE sym | 1:CREATE fifo | "
			       "1:CREATE hard | 1:DELETE,ISDIR sub | 1:DELETE sym");
	close(fd);
}

CASE(unix_socket_bind_creates_entry)
{
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, st_tmpdir(), IN_CREATE | IN_DELETE), 1);
	int s = CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", P("sock"));
	CHECK_OK(bind(s, (struct sockaddr *)&a, sizeof a));
	close(s);
	CHECK_OK(unlink(P("sock")));
	CHECK_STREQ(drain(fd), "1:CREATE sock | 1:DELETE sock");
	close(fd);
}

CASE(events_on_watched_file)
{
	st_write_file(P("f"), "data");
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, P("f"), IN_ALL_EVENTS), 1);
	int f = CHECK_OK(open(P("f"), O_RDWR));
	char b[4];
	CHECK_EQ(pread(f, b, 4, 0), 4);
	CHECK_EQ(pwrite(f, "x", 1, 0), 1);
	CHECK_OK(ftruncate(f, 2));
	CHECK_OK(fchmod(f, 0600));
	CHECK_OK(close(f));
	/* The write and the truncation merge: identical and unread. */
	CHECK_STREQ(drain(fd), "1:OPEN | 1:ACCESS | 1:MODIFY | 1:ATTRIB | 1:CLOSE_WRITE");
	/* utimensat: both times is IN_ATTRIB. */
	CHECK_OK(utimensat(AT_FDCWD, P("f"), NULL, 0));
	CHECK_STREQ(drain(fd), "1:ATTRIB");
	/* The last link goes: IN_ATTRIB (link count), IN_DELETE_SELF, then the watch
	 * is removed (IN_IGNORED). */
	CHECK_OK(unlink(P("f")));
	CHECK_STREQ(drain(fd), "1:ATTRIB | 1:DELETE_SELF | 1:IGNORED");
	CHECK_ERR(inotify_rm_watch(fd, 1), EINVAL);
	close(fd);
}

CASE(unlinked_while_open_waits_for_last_close)
{
	CHECK_OK(mkdir(P("d"), 0755));
	int f = CHECK_OK(open(P("d/f"), O_CREAT | O_RDWR, 0644));
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, P("d/f"), IN_ALL_EVENTS), 1);
	CHECK_EQ(inotify_add_watch(fd, P("d"), IN_ALL_EVENTS), 2);
	CHECK_OK(unlink(P("d/f")));
	CHECK_STREQ(drain(fd), "1:ATTRIB | 2:DELETE f");
	/* Still open: the watches keep working, the directory still sees the name. */
	CHECK_EQ(write(f, "x", 1), 1);
	CHECK_STREQ(drain(fd), "2:MODIFY f | 1:MODIFY");
	int f2 = CHECK_OK(dup(f));
	CHECK_OK(close(f));
	CHECK_STREQ(drain(fd), "");
	/* The last close of the description: then the inode goes. */
	CHECK_OK(close(f2));
	CHECK_STREQ(drain(fd), "2:CLOSE_WRITE f | 1:CLOSE_WRITE | 1:DELETE_SELF | 1:IGNORED");
	close(fd);
	/* A working directory holds a removed directory too. */
	IN_CHILD({
		int i = new_inotify();
		CHECK_OK(mkdir(P("d/sub"), 0755));
		CHECK_EQ(inotify_add_watch(i, P("d/sub"), IN_DELETE_SELF), 1);
		CHECK_OK(chdir(P("d/sub")));
		CHECK_OK(rmdir(P("d/sub")));
		CHECK_STREQ(drain(i), "");
		CHECK_OK(chdir("/"));
		CHECK_STREQ(drain(i), "1:DELETE_SELF | 1:IGNORED");
	});
}

CASE(rename_cookies)
{
	CHECK_OK(mkdir(P("a"), 0755));
	CHECK_OK(mkdir(P("b"), 0755));
	st_write_file(P("a/f"), "x");
	st_write_file(P("b/victim"), "y");
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, P("a"), IN_MOVE | IN_DELETE), 1);
	CHECK_EQ(inotify_add_watch(fd, P("b"), IN_MOVE | IN_DELETE), 2);
	CHECK_EQ(inotify_add_watch(fd, P("a/f"), IN_MOVE_SELF), 3);
	CHECK_EQ(inotify_add_watch(fd, P("b/victim"), IN_ALL_EVENTS), 4);
	/* Within one directory. */
	CHECK_OK(rename(P("a/f"), P("a/g")));
	CHECK_STREQ(drain(fd), "1:MOVED_FROM f | 1:MOVED_TO g | 3:MOVE_SELF");
	/* Across directories, replacing a file. */
	CHECK_OK(rename(P("a/g"), P("b/victim")));
	CHECK_STREQ(drain(fd), "1:MOVED_FROM g | 2:MOVED_TO victim | 4:ATTRIB | 3:MOVE_SELF | "
			       "4:DELETE_SELF | 4:IGNORED");
	/* A directory. */
	CHECK_OK(mkdir(P("a/dir"), 0755));
	CHECK_OK(rename(P("a/dir"), P("b/dir")));
	CHECK_STREQ(drain(fd), "1:MOVED_FROM,ISDIR dir | 2:MOVED_TO,ISDIR dir");
	close(fd);
}

CASE(watched_directory_removed)
{
	CHECK_OK(mkdir(P("d"), 0755));
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, st_tmpdir(), IN_CREATE | IN_DELETE), 1);
	CHECK_EQ(inotify_add_watch(fd, P("d"), IN_ALL_EVENTS), 2);
	CHECK_OK(rmdir(P("d")));
	CHECK_STREQ(drain(fd), "2:DELETE_SELF | 2:IGNORED | 1:DELETE,ISDIR d");
	close(fd);
}

CASE(directory_and_its_parent_both_watched)
{
	CHECK_OK(mkdir(P("x"), 0755));
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, P("x"), IN_ALL_EVENTS), 1);
	CHECK_EQ(inotify_add_watch(fd, st_tmpdir(), IN_ALL_EVENTS), 2);
	CHECK_OK(chmod(P("x"), 0700));
	int d = CHECK_OK(open(P("x"), O_RDONLY | O_DIRECTORY));
	CHECK_OK(close(d));
	CHECK_OK(rename(P("x"), P("y")));
	CHECK_OK(rmdir(P("y")));
	/* The parent's watch hears first, with the name; IN_ISDIR marks a directory's
	 * events but not IN_MOVE_SELF or IN_DELETE_SELF. */
	CHECK_STREQ(drain(fd), "2:ATTRIB,ISDIR x | 1:ATTRIB,ISDIR | 2:OPEN,ISDIR x | 1:OPEN,ISDIR | "
			       "2:CLOSE_NOWRITE,ISDIR x | 1:CLOSE_NOWRITE,ISDIR | "
			       "2:MOVED_FROM,ISDIR x | 2:MOVED_TO,ISDIR y | 1:MOVE_SELF | "
			       "1:DELETE_SELF | 1:IGNORED | 2:DELETE,ISDIR y");
	close(fd);
}

CASE(oneshot_mask_add_and_rm_watch)
{
	st_write_file(P("f"), "x");
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, P("f"), IN_ATTRIB | IN_ONESHOT), 1);
	CHECK_OK(chmod(P("f"), 0600));
	CHECK_OK(chmod(P("f"), 0640));
	CHECK_STREQ(drain(fd), "1:ATTRIB | 1:IGNORED");
	/* The watch is gone: a new one gets a new descriptor. */
	CHECK_ERR(inotify_rm_watch(fd, 1), EINVAL);
	CHECK_EQ(inotify_add_watch(fd, P("f"), IN_ATTRIB), 2);
	CHECK_EQ(inotify_add_watch(fd, P("f"), IN_MODIFY | IN_MASK_ADD), 2);
	st_write_file(P("f"), "y");
	CHECK_OK(chmod(P("f"), 0644));
	/* O_TRUNC and the write: two IN_MODIFY, merged. */
	CHECK_STREQ(drain(fd), "2:MODIFY | 2:ATTRIB");
	/* Without IN_MASK_ADD the mask is replaced. */
	CHECK_EQ(inotify_add_watch(fd, P("f"), IN_ATTRIB), 2);
	st_write_file(P("f"), "z");
	CHECK_OK(chmod(P("f"), 0600));
	CHECK_STREQ(drain(fd), "2:ATTRIB");
	/* rm_watch queues IN_IGNORED and stops the events. */
	CHECK_OK(inotify_rm_watch(fd, 2));
	CHECK_OK(chmod(P("f"), 0644));
	CHECK_STREQ(drain(fd), "2:IGNORED");
	close(fd);
}

CASE(read_format_and_fionread)
{
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, st_tmpdir(), IN_CREATE), 1);
	int avail = -1;
	CHECK_OK(ioctl(fd, FIONREAD, &avail));
	CHECK_EQ(avail, 0);
	st_write_file(P("a"), "");
	st_write_file(P("0123456789abcdef"), "");
	size_t hdr = sizeof(struct inotify_event);
	CHECK_OK(ioctl(fd, FIONREAD, &avail));
	/* Names are NUL-padded to a multiple of the header size. */
	CHECK_EQ(avail, (int)(hdr + 16 + hdr + 32));
	/* A buffer too small for the first event: EINVAL, and nothing is consumed. */
	char buf[256] __attribute__((aligned(8)));
	CHECK_ERR(read(fd, buf, hdr + 15), EINVAL);
	/* Only whole events are returned. */
	CHECK_EQ(read(fd, buf, hdr + 16 + hdr), (ssize_t)(hdr + 16));
	struct inotify_event *ev = (struct inotify_event *)buf;
	CHECK_EQ(ev->wd, 1);
	CHECK_EQ(ev->mask, IN_CREATE);
	CHECK_EQ(ev->cookie, 0);
	CHECK_EQ(ev->len, 16);
	CHECK_STREQ(ev->name, "a");
	for (int i = 1; i < 16; i++)
		CHECK_EQ(ev->name[i], 0);
	CHECK_EQ(read(fd, buf, sizeof buf), (ssize_t)(hdr + 32));
	CHECK_EQ(ev->len, 32);
	CHECK_STREQ(ev->name, "0123456789abcdef");
	CHECK_OK(ioctl(fd, FIONREAD, &avail));
	CHECK_EQ(avail, 0);
	close(fd);
}

CASE(identical_events_coalesce)
{
	st_write_file(P("f"), "");
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, P("f"), IN_MODIFY), 1);
	int f = CHECK_OK(open(P("f"), O_WRONLY));
	for (int i = 0; i < 10; i++)
		CHECK_EQ(write(f, "x", 1), 1);
	/* Unread identical events merge into one... */
	CHECK_STREQ(drain(fd), "1:MODIFY");
	/* ...but not into one already read. */
	CHECK_EQ(write(f, "x", 1), 1);
	CHECK_STREQ(drain(fd), "1:MODIFY");
	close(f);
	close(fd);
}

CASE(poll_and_epoll)
{
	int fd = new_inotify();
	CHECK_EQ(inotify_add_watch(fd, st_tmpdir(), IN_CREATE), 1);
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	int ep = CHECK_OK(epoll_create1(0));
	struct epoll_event e = { .events = EPOLLIN, .data.u32 = 7 };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e));
	CHECK_EQ(epoll_wait(ep, &e, 1, 0), 0);
	st_write_file(P("f"), "");
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLIN);
	CHECK_EQ(epoll_wait(ep, &e, 1, 1000), 1);
	CHECK_EQ(e.events, EPOLLIN);
	CHECK_EQ(e.data.u32, 7);
	CHECK_STREQ(drain(fd), "1:CREATE f");
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	close(ep);
	close(fd);
}

CASE(blocking_read_woken_by_other_process)
{
	int fd = CHECK_OK(inotify_init());
	CHECK_EQ(inotify_add_watch(fd, st_tmpdir(), IN_CREATE), 1);
	pid_t pid = fork();
	if (pid == 0) {
		st_sleep_ms(100);
		st_write_file(P("late"), "");
		_exit(0);
	}
	char buf[256] __attribute__((aligned(8)));
	ssize_t n = read(fd, buf, sizeof buf);
	CHECK_EQ(n, (ssize_t)(sizeof(struct inotify_event) + 16));
	CHECK_STREQ(((struct inotify_event *)buf)->name, "late");
	CHECK_EXITED(st_wait(pid), 0);
	close(fd);
}

CASE(closing_the_instance_drops_its_watches)
{
	st_write_file(P("f"), "");
	int a = new_inotify();
	int b = new_inotify();
	CHECK_EQ(inotify_add_watch(a, P("f"), IN_ATTRIB), 1);
	CHECK_EQ(inotify_add_watch(b, P("f"), IN_ATTRIB), 1);
	close(a);
	CHECK_OK(chmod(P("f"), 0600));
	CHECK_STREQ(drain(b), "1:ATTRIB");
	close(b);
}

static long read_limit(const char *name)
{
	char path[128], buf[64];
	snprintf(path, sizeof path, "/proc/sys/fs/inotify/%s", name);
	ssize_t n = st_read_file(path, buf, sizeof buf - 1);
	if (n <= 0)
		FAIL("read %s: %zd", path, n);
	buf[n] = 0;
	return atol(buf);
}

CASE(per_user_instance_limit)
{
	long max = read_limit("max_user_instances");
	CHECK_GT(max, 0);
	CHECK_GT(read_limit("max_queued_events"), 0);
	CHECK_GE(read_limit("max_user_watches"), 8192);
	/* Instances count against the user: past the limit, EMFILE (a fresh uid here,
	 * though other processes of it may hold a few). */
	IN_CHILD({
		st_drop_privileges();
		int fds[1024];
		int n = 0;
		while (n < 1024) {
			int fd = inotify_init1(IN_CLOEXEC);
			if (fd < 0) {
				CHECK_EQ(errno, EMFILE);
				break;
			}
			fds[n++] = fd;
		}
		CHECK_LE(n, max);
		CHECK_GE(n, max - 8);
		/* Closing one makes room for one. */
		close(fds[--n]);
		fds[n] = CHECK_OK(inotify_init1(IN_CLOEXEC));
		CHECK_ERR(inotify_init1(0), EMFILE);
	});
}

/* capabilities: capget/capset (v3), the permitted/effective rules, setuid transitions,
 * the bounding set. Cases that need privilege only run their privileged part as root. */
#include "harness.h"

#include <linux/capability.h>
#include <sys/prctl.h>

struct caps {
	uint64_t eff, prm, inh;
};

static int capget_raw(pid_t pid, struct caps *c)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, pid };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	int r = syscall(SYS_capget, &h, d);
	if (r == 0) {
		c->eff = d[0].effective | (uint64_t)d[1].effective << 32;
		c->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
		c->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	}
	return r;
}

static int capset_raw(pid_t pid, const struct caps *c)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, pid };
	struct __user_cap_data_struct d[2];
	d[0].effective = (uint32_t)c->eff;
	d[1].effective = (uint32_t)(c->eff >> 32);
	d[0].permitted = (uint32_t)c->prm;
	d[1].permitted = (uint32_t)(c->prm >> 32);
	d[0].inheritable = (uint32_t)c->inh;
	d[1].inheritable = (uint32_t)(c->inh >> 32);
	return syscall(SYS_capset, &h, d);
}

static struct caps mycaps(void)
{
	struct caps c;
	if (capget_raw(0, &c) != 0)
		FAIL("capget: %s", st_errname(errno));
	return c;
}

#define BIT(cap) (1ULL << (cap))

/* Root with the capabilities a case needs (a container's root may lack some). */
static int privileged_with(uint64_t need)
{
	if (!st_is_root())
		return 0;
	struct caps c = mycaps();
	return (c.eff & need) == need && (c.prm & need) == need;
}

static uint64_t status_field(const char *name)
{
	char buf[8192];
	st_read_file("/proc/self/status", buf, sizeof buf);
	char key[32];
	snprintf(key, sizeof key, "\n%s:\t", name);
	char *p = strstr(buf, key);
	if (!p)
		FAIL("no %s in /proc/self/status", name);
	return strtoull(p + strlen(key), NULL, 16);
}

CASE(version_negotiation)
{
	/* An unknown version with a NULL data pointer is the libcap probe: it succeeds
	 * and reports the preferred version. */
	struct __user_cap_header_struct h = { 0x12345678, 0 };
	CHECK_EQ(syscall(SYS_capget, &h, NULL), 0);
	CHECK_EQ(h.version, _LINUX_CAPABILITY_VERSION_3);
	/* With a data pointer, an unknown version fails with EINVAL (and is reported). */
	struct __user_cap_data_struct d[2];
	h.version = 0x12345678;
	CHECK_ERR(syscall(SYS_capget, &h, d), EINVAL);
	CHECK_EQ(h.version, _LINUX_CAPABILITY_VERSION_3);
	/* A known version with a NULL data pointer succeeds too. */
	h.pid = 0;
	CHECK_EQ(syscall(SYS_capget, &h, NULL), 0);
	/* Version 1 (32 bits) is still accepted. */
	struct __user_cap_header_struct h1 = { _LINUX_CAPABILITY_VERSION_1, 0 };
	struct __user_cap_data_struct d1;
	CHECK_EQ(syscall(SYS_capget, &h1, &d1), 0);
	CHECK_EQ(d1.effective, (uint32_t)mycaps().eff);
	CHECK_ERR(syscall(SYS_capget, &h, (void *)8), EFAULT);
}

CASE(capget_matches_proc_status)
{
	struct caps c = mycaps();
	CHECK_UEQ(c.eff, status_field("CapEff"));
	CHECK_UEQ(c.prm, status_field("CapPrm"));
	CHECK_UEQ(c.inh, status_field("CapInh"));
	/* Effective is always a subset of permitted. */
	CHECK_UEQ(c.eff & ~c.prm, 0);
	if (st_is_root()) {
		CHECK_UEQ(c.eff, c.prm);
		CHECK(c.prm & BIT(CAP_CHOWN));
	}
	IN_CHILD({
		st_drop_privileges();
		struct caps u = mycaps();
		CHECK_UEQ(u.eff, 0);
		CHECK_UEQ(u.prm, 0);
		CHECK_UEQ(status_field("CapEff"), 0);
	});
}

CASE(capget_other_process)
{
	struct caps self = mycaps();
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = CHECK_OK(fork());
	if (pid == 0) {
		char c;
		close(p[1]);
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	struct caps child;
	CHECK_OK(capget_raw(pid, &child));
	CHECK_UEQ(child.eff, self.eff);
	CHECK_UEQ(child.prm, self.prm);
	/* capset on another process is never permitted. */
	CHECK_ERR(capset_raw(pid, &child), EPERM);
	close(p[1]);
	CHECK_EXITED(st_wait(pid), 0);
	/* The reaped child is gone. */
	CHECK_ERR(capget_raw(pid, &child), ESRCH);
}

CASE(drop_effective_then_raise_again)
{
	if (!privileged_with(BIT(CAP_CHOWN) | BIT(CAP_SETPCAP)))
		return;
	st_write_file(P("f"), "x");
	IN_CHILD({
		struct caps c = mycaps();
		c.eff &= ~BIT(CAP_CHOWN);
		CHECK_EQ(capset_raw(0, &c), 0);
		CHECK_UEQ(mycaps().eff & BIT(CAP_CHOWN), 0);
		CHECK_UEQ(mycaps().prm & BIT(CAP_CHOWN), BIT(CAP_CHOWN));
		/* Without CAP_CHOWN in effect, giving the file away fails. */
		CHECK_ERR(chown(P("f"), 1234, -1), EPERM);
		/* Still permitted, so it can be raised again. */
		c.eff |= BIT(CAP_CHOWN);
		CHECK_EQ(capset_raw(0, &c), 0);
		CHECK_OK(chown(P("f"), 1234, -1));
		struct stat st;
		CHECK_OK(stat(P("f"), &st));
		CHECK_EQ(st.st_uid, 1234);
	});
}

CASE(dropped_permitted_cannot_return)
{
	if (!privileged_with(BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE)))
		return;
	IN_CHILD({
		struct caps c = mycaps();
		struct caps want = c;
		want.eff &= ~BIT(CAP_CHOWN);
		want.prm &= ~BIT(CAP_CHOWN);
		CHECK_EQ(capset_raw(0, &want), 0);
		/* Effective must be a subset of permitted. */
		struct caps bad = want;
		bad.eff |= BIT(CAP_CHOWN);
		CHECK_ERR(capset_raw(0, &bad), EPERM);
		/* Permitted can never grow. */
		bad = want;
		bad.prm |= BIT(CAP_CHOWN);
		CHECK_ERR(capset_raw(0, &bad), EPERM);
		/* The failed calls changed nothing. */
		struct caps now = mycaps();
		CHECK_UEQ(now.eff, want.eff);
		CHECK_UEQ(now.prm, want.prm);
		/* A fork inherits the reduced sets. */
		IN_CHILD(CHECK_UEQ(mycaps().prm & BIT(CAP_CHOWN), 0));
	});
}

CASE(unprivileged_capset)
{
	IN_CHILD({
		st_drop_privileges();
		struct caps c = mycaps();
		CHECK_UEQ(c.prm, 0);
		/* Setting the same (empty) sets is allowed. */
		CHECK_EQ(capset_raw(0, &c), 0);
		c.prm = BIT(CAP_CHOWN);
		c.eff = BIT(CAP_CHOWN);
		CHECK_ERR(capset_raw(0, &c), EPERM);
		/* Inheritable cannot gain what the bounding set and permitted lack. */
		c.prm = c.eff = 0;
		c.inh = BIT(CAP_KILL);
		CHECK_ERR(capset_raw(0, &c), EPERM);
		/* A bad version is EINVAL; a bad pointer EFAULT. */
		struct __user_cap_header_struct h = { 0x1, 0 };
		struct __user_cap_data_struct d[2] = { { 0 } };
		CHECK_ERR(syscall(SYS_capset, &h, d), EINVAL);
		h.version = _LINUX_CAPABILITY_VERSION_3;
		CHECK_ERR(syscall(SYS_capset, &h, (void *)8), EFAULT);
	});
}

CASE(setuid_from_root_clears_capabilities)
{
	if (!privileged_with(BIT(CAP_SETUID) | BIT(CAP_SETGID)))
		return;
	IN_CHILD({
		CHECK_OK(setresgid(65534, 65534, 65534));
		CHECK_OK(setresuid(65534, 65534, 65534));
		struct caps c = mycaps();
		CHECK_UEQ(c.eff, 0);
		CHECK_UEQ(c.prm, 0);
		CHECK_ERR(setuid(0), EPERM);
	});
	/* With PR_SET_KEEPCAPS the permitted set survives; effective is still cleared. */
	IN_CHILD({
		uint64_t before = mycaps().prm;
		CHECK_OK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
		CHECK_OK(setresuid(65534, 65534, 65534));
		struct caps c = mycaps();
		CHECK_UEQ(c.eff, 0);
		CHECK_UEQ(c.prm, before);
		/* And can be raised again into effective. */
		c.eff = BIT(CAP_CHOWN);
		CHECK_EQ(capset_raw(0, &c), 0);
		CHECK_UEQ(mycaps().eff, BIT(CAP_CHOWN));
	});
}

CASE(effective_uid_switch_toggles_effective_set)
{
	if (!privileged_with(BIT(CAP_SETUID) | BIT(CAP_CHOWN)))
		return;
	IN_CHILD({
		uint64_t prm = mycaps().prm;
		/* euid 0 -> nonzero clears the effective set, keeps permitted. */
		CHECK_OK(setresuid(-1, 65534, -1));
		struct caps c = mycaps();
		CHECK_UEQ(c.eff, 0);
		CHECK_UEQ(c.prm, prm);
		/* euid nonzero -> 0 copies permitted into effective. */
		CHECK_OK(setresuid(-1, 0, -1));
		c = mycaps();
		CHECK_UEQ(c.eff, prm);
		CHECK_UEQ(c.prm, prm);
	});
}

CASE(bounding_set)
{
	CHECK_EQ(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0), 1);
	CHECK_ERR(prctl(PR_CAPBSET_READ, 64, 0, 0, 0), EINVAL);
	uint64_t bnd = status_field("CapBnd");
	CHECK_UEQ(bnd & BIT(CAP_CHOWN), BIT(CAP_CHOWN));
	IN_CHILD({
		st_drop_privileges();
		/* Dropping from the bounding set needs CAP_SETPCAP. */
		CHECK_ERR(prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0), EPERM);
	});
	if (!privileged_with(BIT(CAP_SETPCAP) | BIT(CAP_CHOWN)))
		return;
	IN_CHILD({
		CHECK_EQ(prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0), 0);
		CHECK_EQ(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0), 0);
		CHECK_UEQ(status_field("CapBnd") & BIT(CAP_CHOWN), 0);
		/* The permitted set is not reduced by dropping from the bounding set. */
		CHECK_UEQ(mycaps().prm & BIT(CAP_CHOWN), BIT(CAP_CHOWN));
		/* Inherited by fork. */
		IN_CHILD(CHECK_EQ(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0), 0));
	});
}

/* Exits with bit 0 = CAP arg in the effective set, bit 1 = in the permitted set. */
HELPER(cap_bits)
{
	int cap = atoi(argv[1]);
	struct caps c = mycaps();
	return (int)(((c.eff >> cap) & 1) | (((c.prm >> cap) & 1) << 1));
}

extern char **environ;

static int exec_cap_bits(int cap)
{
	char num[16];
	snprintf(num, sizeof num, "%d", cap);
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", st_errname(errno));
	if (pid == 0) {
		char *argv[] = { (char *)st_self, "--helper", "cap_bits", num, NULL };
		execve(st_self, argv, environ);
		_exit(127);
	}
	int status = st_wait(pid);
	if (!WIFEXITED(status))
		FAIL("helper status %#x", status);
	return WEXITSTATUS(status);
}

CASE(file_permission_overrides_are_capabilities)
{
	uint64_t need = BIT(CAP_DAC_OVERRIDE) | BIT(CAP_DAC_READ_SEARCH) | BIT(CAP_FOWNER);
	if (!privileged_with(need | BIT(CAP_CHOWN)))
		return;
	st_write_file(P("f"), "x");
	CHECK_OK(chown(P("f"), 1234, 1234));
	CHECK_OK(chmod(P("f"), 0));
	CHECK_OK(mkdir(P("sticky"), 0777));
	CHECK_OK(chmod(P("sticky"), 01777));
	/* (Owned by someone else: the owner of a sticky directory may remove anything.) */
	CHECK_OK(chown(P("sticky"), 4321, 4321));
	st_write_file(P("sticky/theirs"), "y");
	CHECK_OK(chown(P("sticky/theirs"), 1234, 1234));
	IN_CHILD({
		/* Root reads a mode-000 file through CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH. */
		close(CHECK_OK(open(P("f"), O_RDONLY)));
		struct caps c = mycaps();
		c.eff &= ~(BIT(CAP_DAC_OVERRIDE) | BIT(CAP_DAC_READ_SEARCH));
		CHECK_EQ(capset_raw(0, &c), 0);
		/* Still uid 0, but without the overrides the mode bits rule. */
		CHECK_ERR(open(P("f"), O_RDONLY), EACCES);
		/* access() checks as the real uid would: root's permitted set. */
		CHECK_EQ(access(P("f"), R_OK), 0);
		CHECK_ERR(faccessat(AT_FDCWD, P("f"), R_OK, AT_EACCESS), EACCES);
		/* Changing another user's file's mode needs CAP_FOWNER. */
		CHECK_OK(chmod(P("f"), 0));
		c.eff &= ~BIT(CAP_FOWNER);
		CHECK_EQ(capset_raw(0, &c), 0);
		CHECK_ERR(chmod(P("f"), 0644), EPERM);
		/* So does moving another user's file out of a sticky directory. */
		CHECK_ERR(rename(P("sticky/theirs"), P("sticky/mine")), EPERM);
		CHECK_ERR(unlink(P("sticky/theirs")), EPERM);
		c.eff |= BIT(CAP_FOWNER);
		CHECK_EQ(capset_raw(0, &c), 0);
		CHECK_OK(rename(P("sticky/theirs"), P("sticky/mine")));
	});
}

CASE(execve_recomputes_capabilities)
{
	if (!privileged_with(BIT(CAP_CHOWN) | BIT(CAP_SETPCAP) | BIT(CAP_SETUID)))
		return;
	IN_CHILD({
		struct caps c = mycaps();
		c.inh = 0;
		c.eff &= ~BIT(CAP_CHOWN);
		CHECK_EQ(capset_raw(0, &c), 0);
		/* Root's execve gives it the bounding set again, effective too. */
		CHECK_EQ(exec_cap_bits(CAP_CHOWN), 3);
		/* Not what the bounding set lacks, even though it is still permitted here. */
		CHECK_EQ(prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0), 0);
		CHECK_UEQ(mycaps().prm & BIT(CAP_CHOWN), BIT(CAP_CHOWN));
		CHECK_EQ(exec_cap_bits(CAP_CHOWN), 0);
	});
	IN_CHILD({
		/* Capabilities kept across setuid (PR_SET_KEEPCAPS) do not survive execve
		 * of an ordinary program by a non-root user. */
		CHECK_OK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
		CHECK_OK(setresuid(65534, 65534, 65534));
		CHECK_UEQ(mycaps().prm & BIT(CAP_CHOWN), BIT(CAP_CHOWN));
		CHECK_EQ(exec_cap_bits(CAP_CHOWN), 0);
	});
}

/*
 * rvbench: the workloads of `rvisor-bench`, measured from inside the sandbox.
 *
 * Built by rvisor-bench with `gcc -O2 -static -pthread` into its cache directory.
 * Usage: rvbench WORKLOAD [ARGS...]
 * Each run prints exactly one line `rvbench-result VALUE UNIT` on stdout when it
 * succeeds (the `sleep` workload prints `rvbench-ready` first, then sleeps).
 * Errors go to stderr with a non-zero exit status.
 *
 * Per-operation workloads run batches of doubling size until one batch lasts at
 * least MIN_MS milliseconds and report that batch's time per operation, so fast
 * and slow kernels both get a measurement of about the same duration.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *g_path = "/etc/passwd";
static int g_fd = -1;

static void die(const char *what)
{
    fprintf(stderr, "rvbench: %s: %s\n", what, strerror(errno));
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die("clock_gettime");
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void result(double value, const char *unit)
{
    printf("rvbench-result %.6g %s\n", value, unit);
    fflush(stdout);
}

/* ---- one operation of each per-op workload; each returns nothing, dies on error ---- */

static void op_getpid(void)
{
    syscall(SYS_getpid);
}

static void op_read(void)
{
    char c;
    if (read(g_fd, &c, 1) != 1)
        die("read /dev/zero");
}

static void op_open_close(void)
{
    int fd = open(g_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open");
    close(fd);
}

static void op_stat(void)
{
    struct stat st;
    if (stat(g_path, &st) != 0)
        die("stat");
}

static void op_clock_gettime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
}

static void op_fork_exit(void)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0)
        _exit(0);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rvbench: child status 0x%x\n", status);
        exit(2);
    }
}

static void op_fork_exec(void)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        char *argv[] = {"/bin/true", NULL};
        char *envp[] = {NULL};
        execve("/bin/true", argv, envp);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rvbench: /bin/true status 0x%x\n", status);
        exit(2);
    }
}

static void *thread_fn(void *arg)
{
    return arg;
}

static void op_thread(void)
{
    pthread_t t;
    int err = pthread_create(&t, NULL, thread_fn, NULL);
    if (err != 0) {
        errno = err;
        die("pthread_create");
    }
    err = pthread_join(t, NULL);
    if (err != 0) {
        errno = err;
        die("pthread_join");
    }
}

static void op_mmap64k(void)
{
    size_t len = 64 * 1024;
    volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    for (size_t off = 0; off < len; off += 4096)
        p[off] = 1;
    if (munmap((void *)p, len) != 0)
        die("munmap");
}

static int g_ping[2], g_pong[2];

static void op_pingpong(void)
{
    char c = 'x';
    if (write(g_ping[1], &c, 1) != 1)
        die("write ping");
    if (read(g_pong[0], &c, 1) != 1)
        die("read pong");
}

/* Doubling batches until one lasts >= min_ms; returns ns per op of that batch. */
static double per_op_ns(void (*op)(void), double min_ms)
{
    uint64_t min_ns = (uint64_t)(min_ms * 1e6);
    for (uint64_t n = 1;; n *= 2) {
        uint64_t t0 = now_ns();
        for (uint64_t i = 0; i < n; i++)
            op();
        uint64_t dt = now_ns() - t0;
        if (dt >= min_ns || n >= (1ull << 40))
            return (double)dt / (double)n;
    }
}

/* ---- whole workloads ---- */

static void pingpong(double min_ms)
{
    if (pipe(g_ping) != 0 || pipe(g_pong) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(g_ping[1]);
        close(g_pong[0]);
        char c;
        for (;;) {
            ssize_t r = read(g_ping[0], &c, 1);
            if (r == 0)
                _exit(0);
            if (r != 1 || write(g_pong[1], &c, 1) != 1)
                _exit(3);
        }
    }
    close(g_ping[0]);
    close(g_pong[1]);
    double ns = per_op_ns(op_pingpong, min_ms);
    close(g_ping[1]);
    int status;
    waitpid(pid, &status, 0);
    result(ns / 1000.0, "us/rt");
}

static void pipe_throughput(uint64_t mib)
{
    enum { CHUNK = 64 * 1024 };
    uint64_t total = mib << 20;
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(p[0]);
        static char buf[CHUNK];
        memset(buf, 'a', sizeof buf);
        uint64_t left = total;
        while (left > 0) {
            size_t want = left < CHUNK ? left : CHUNK;
            ssize_t w = write(p[1], buf, want);
            if (w <= 0)
                _exit(3);
            left -= (uint64_t)w;
        }
        _exit(0);
    }
    close(p[1]);
    static char buf[CHUNK];
    uint64_t got = 0;
    for (;;) {
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r < 0)
            die("read pipe");
        if (r == 0)
            break;
        got += (uint64_t)r;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    uint64_t dt = now_ns() - t0;
    if (got != total || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rvbench: pipe moved %llu of %llu bytes, writer status 0x%x\n",
                (unsigned long long)got, (unsigned long long)total, status);
        exit(2);
    }
    result((double)total / 1048576.0 / ((double)dt / 1e9), "MiB/s");
}

static void mem_touch(uint64_t mib)
{
    size_t len = (size_t)(mib << 20);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    uint64_t t0 = now_ns();
    for (size_t off = 0; off < len; off += 4096)
        ((volatile char *)p)[off] = 1;
    uint64_t dt = now_ns() - t0;
    munmap(p, len);
    result((double)dt / 1e6, "ms");
}

static void file_io(uint64_t mib)
{
    enum { CHUNK = 1 << 20 };
    char path[64];
    snprintf(path, sizeof path, "/tmp/rvbench-io-%d.dat", (int)getpid());
    static char buf[CHUNK];
    memset(buf, 'b', sizeof buf);
    uint64_t t0 = now_ns();
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        die("create /tmp file");
    for (uint64_t i = 0; i < mib; i++) {
        size_t done = 0;
        while (done < CHUNK) {
            ssize_t w = write(fd, buf + done, CHUNK - done);
            if (w <= 0)
                die("write");
            done += (size_t)w;
        }
    }
    if (fsync(fd) != 0)
        die("fsync");
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("reopen /tmp file");
    uint64_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0)
            die("read");
        if (r == 0)
            break;
        got += (uint64_t)r;
    }
    close(fd);
    uint64_t dt = now_ns() - t0;
    unlink(path);
    if (got != (mib << 20)) {
        fprintf(stderr, "rvbench: read back %llu bytes, wrote %llu\n", (unsigned long long)got,
                (unsigned long long)(mib << 20));
        exit(2);
    }
    result((double)dt / 1e6, "ms");
}

static void many_files(long count)
{
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/rvbench-files-%d", (int)getpid());
    if (mkdir(dir, 0700) != 0)
        die("mkdir");
    uint64_t t0 = now_ns();
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%ld", dir, i);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0)
            die("create");
        close(fd);
    }
    for (long i = 0; i < count; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/f%ld", dir, i);
        if (stat(path, &st) != 0)
            die("stat");
    }
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%ld", dir, i);
        if (unlink(path) != 0)
            die("unlink");
    }
    uint64_t dt = now_ns() - t0;
    rmdir(dir);
    result((double)dt / 1e3 / (double)count, "us/file");
}

static void sleep_ms(long ms)
{
    printf("rvbench-ready\n");
    fflush(stdout);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    result(0, "none");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: rvbench WORKLOAD [ARGS]\n"
            "  getpid|read|open-close|stat|clock-gettime MIN_MS [PATH]\n"
            "  fork-exit|fork-exec|thread|mmap-64k|pingpong MIN_MS\n"
            "  pipe MIB | mem-touch MIB | file-io MIB | files COUNT | sleep MS\n");
    exit(64);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *w = argv[1];
    double arg = strtod(argv[2], NULL);
    if (argc > 3)
        g_path = argv[3];

    struct {
        const char *name;
        void (*op)(void);
        double scale;
        const char *unit;
    } per_op[] = {
        {"getpid", op_getpid, 1, "ns/op"},
        {"read", op_read, 1, "ns/op"},
        {"open-close", op_open_close, 1, "ns/op"},
        {"stat", op_stat, 1, "ns/op"},
        {"clock-gettime", op_clock_gettime, 1, "ns/op"},
        {"fork-exit", op_fork_exit, 1e-3, "us/op"},
        {"fork-exec", op_fork_exec, 1e-3, "us/op"},
        {"thread", op_thread, 1e-3, "us/op"},
        {"mmap-64k", op_mmap64k, 1e-3, "us/op"},
    };
    for (size_t i = 0; i < sizeof per_op / sizeof per_op[0]; i++) {
        if (strcmp(w, per_op[i].name) == 0) {
            if (strcmp(w, "read") == 0) {
                g_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
                if (g_fd < 0)
                    die("open /dev/zero");
            }
            if (strcmp(w, "open-close") == 0 || strcmp(w, "stat") == 0) {
                struct stat st;
                if (stat(g_path, &st) != 0)
                    die(g_path);
            }
            result(per_op_ns(per_op[i].op, arg) * per_op[i].scale, per_op[i].unit);
            return 0;
        }
    }
    if (strcmp(w, "pingpong") == 0)
        pingpong(arg);
    else if (strcmp(w, "pipe") == 0)
        pipe_throughput((uint64_t)arg);
    else if (strcmp(w, "mem-touch") == 0)
        mem_touch((uint64_t)arg);
    else if (strcmp(w, "file-io") == 0)
        file_io((uint64_t)arg);
    else if (strcmp(w, "files") == 0)
        many_files((long)arg);
    else if (strcmp(w, "sleep") == 0)
        sleep_ms((long)arg);
    else
        usage();
    return 0;
}

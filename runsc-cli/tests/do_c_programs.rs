//! Static C programs built by the test (`gcc -static -O2 -pthread`), run natively and
//! under `rvisor do` (issue 2, "What must work").

mod common;

use common::*;

const MUTEX_COUNTER: &str = r#"
#include <pthread.h>
#include <stdio.h>

#define THREADS 8
#define ITERS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < ITERS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0) {
            perror("pthread_create");
            return 2;
        }
    for (int i = 0; i < THREADS; i++)
        if (pthread_join(t[i], NULL) != 0) {
            perror("pthread_join");
            return 3;
        }
    printf("%ld\n", counter);
    return 0;
}
"#;

const SEGV_RECOVER: &str = r#"
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf env;
static volatile int got_signo, got_code;
static void *volatile got_addr = (void *)1;

static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_signo = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    siglongjmp(env, 1);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) {
        perror("sigaction");
        return 2;
    }
    if (sigsetjmp(env, 1) == 0) {
        volatile int *p = NULL;
        *p = 42;
        printf("no fault\n");
        return 1;
    }
    /* SIGSEGV must not stay blocked after siglongjmp (savemask = 1). */
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("signo=%d code=%s addr=%p blocked=%d\n", got_signo,
           got_code == SEGV_MAPERR ? "SEGV_MAPERR" : "other", got_addr,
           sigismember(&cur, SIGSEGV));
    printf("recovered\n");
    return 0;
}
"#;

#[test]
fn static_8_threads_mutex_counter() {
    let dir = TempDir::new("mutex");
    let exe = build_static_c(&dir, "mutex", MUTEX_COUNTER);
    let n = native(&[&exe]);
    assert_eq!(n.stdout, "800000\n", "native run: {}", n.describe());
    let s = sandboxed(&[&exe]);
    assert_eq!(s.stdout, "800000\n", "{}", s.describe());
    assert_same(&n, &s);
}

#[test]
fn static_sigsegv_handler_siglongjmp() {
    let dir = TempDir::new("segv");
    let exe = build_static_c(&dir, "segv", SEGV_RECOVER);
    let n = native(&[&exe]);
    assert_eq!(n.shell_status(), 0, "native run: {}", n.describe());
    let s = sandboxed(&[&exe]);
    assert_eq!(s.shell_status(), 0, "{}", s.describe());
    assert_eq!(
        s.stdout.lines().last(),
        Some("recovered"),
        "{}",
        s.describe()
    );
    // signo, si_code, si_addr and the restored mask as natively
    // ("signo=11 code=SEGV_MAPERR addr=(nil) blocked=0").
    assert_same(&n, &s);
}

/// Narrower reproducer of the mutex test's intermittent SIGSEGV: 8 threads, released
/// together, each read 64 untouched pages of one PROT_READ mapping, so several of them
/// fault on the same page at once.
const CONCURRENT_READ_FAULTS: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>

static volatile int go;
static volatile char *ro;

static void *reader(void *arg) {
    (void)arg;
    while (!go)
        ;
    long sum = 0;
    for (int i = 0; i < 64; i++)
        sum += ro[i * 4096];
    return (void *)sum;
}

int main(void) {
    ro = mmap(NULL, 64 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ro == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    go = 1;
    long total = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (long)r;
    }
    printf("sum=%ld\n", total);
    return 0;
}
"#;

#[test]
fn static_threads_concurrent_read_faults_same_page() {
    let dir = TempDir::new("rofault");
    let exe = build_static_c(&dir, "rofault", CONCURRENT_READ_FAULTS);
    let n = native(&[&exe]);
    assert_eq!(n.stdout, "sum=0\n", "native run: {}", n.describe());
    for _ in 0..5 {
        let s = sandboxed(&[&exe]);
        assert_same(&n, &s);
    }
}

kvm_tests!(
    static_8_threads_mutex_counter,
    static_sigsegv_handler_siglongjmp,
    static_threads_concurrent_read_faults_same_page,
);

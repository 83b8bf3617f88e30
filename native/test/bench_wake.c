/* bench_wake.c — how long a parked receiver takes to wake, against a plain
 * futex wake measured in the same run (issue: doorbells).
 *
 * Two processes on two CPUs. The sender waits ~200 us (so the receiver is
 * surely asleep), stamps CLOCK_MONOTONIC into shared memory and sends; the
 * receiver notes when its call returned. One-way wake latency, three ways:
 *   futex      FUTEX_WAIT / FUTEX_WAKE on a shared word (the reference)
 *   recv park  exipc_recv, wait policy PARK (the ring's own futex)
 *   poll       exipc_poll over 64 channels (the process's doorbell)
 * Prints p50 / p99 / max and each exipc median as a ratio of the futex's. */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../exipc.h"

#define N 2000
#define NCH 64

struct shared {
    volatile uint32_t word;
    volatile int64_t stamp;
    volatile int64_t lat[N];
};

static int64_t now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
        sched_setaffinity(0, sizeof s, &s);
}

static void gap(void)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t report(const char *what, struct shared *sh)
{
    int64_t v[N];
    for (int i = 0; i < N; i++)
        v[i] = sh->lat[i];
    qsort(v, N, sizeof v[0], cmp);
    printf("%-28s %8lld %8lld %8lld\n", what, (long long)v[N / 2], (long long)v[N * 99 / 100], (long long)v[N - 1]);
    return v[N / 2];
}

static void run_futex(struct shared *sh)
{
    sh->word = 0;
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        for (int i = 0; i < N; i++) {
            while (__atomic_load_n(&sh->word, __ATOMIC_ACQUIRE) == (uint32_t)(2 * i))
                syscall(SYS_futex, &sh->word, FUTEX_WAIT, 2 * i, NULL, NULL, 0);
            sh->lat[i] = now() - sh->stamp;
            __atomic_store_n(&sh->word, 2 * i + 2, __ATOMIC_RELEASE); /* ack */
        }
        _exit(0);
    }
    pin(0);
    for (int i = 0; i < N; i++) {
        gap();
        sh->stamp = now();
        __atomic_store_n(&sh->word, 2 * i + 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &sh->word, FUTEX_WAKE, 1, NULL, NULL, 0);
        while (__atomic_load_n(&sh->word, __ATOMIC_ACQUIRE) != (uint32_t)(2 * i + 2))
            sched_yield();
    }
    waitpid(pid, NULL, 0);
}

/* mode 0: one channel, exipc_recv (PARK); mode 1: exipc_poll over NCH. */
static int run_exipc(struct shared *sh, int mode)
{
    char name[64];
    snprintf(name, sizeof name, "bench-wake-%d-%d", (int)getpid(), mode);
    struct exipc_options o = {.size = 1 << 20, .wait_policy = EXIPC_WAIT_PARK};
    exipc_domain_t *d;
    exipc_listener_t *l;
    if (exipc_open(name, &o, &d) != 0 || exipc_listen(d, "wake", &l) != 0)
        return 1;
    sh->word = 0;
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        exipc_domain_t *cd;
        exipc_chan_t *c[NCH];
        if (exipc_open(name, &o, &cd) != 0)
            _exit(1);
        for (int k = 0; k < NCH; k++)
            if (exipc_connect(cd, "wake", 1000000000, &c[k]) != 0)
                _exit(2);
        __atomic_store_n(&sh->word, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < N; i++) {
            while (__atomic_load_n(&sh->word, __ATOMIC_ACQUIRE) != (uint32_t)(2 * i + 1))
                sched_yield();
            gap();
            exipc_handle_t h;
            if (exipc_alloc(cd, 64, &h) != 0)
                _exit(3);
            sh->stamp = now();
            if (exipc_send(c[mode ? i % NCH : 0], h) != 0)
                _exit(4);
        }
        exipc_close(cd);
        _exit(0);
    }
    pin(0);
    exipc_chan_t *c[NCH];
    struct exipc_pollitem it[NCH];
    while (__atomic_load_n(&sh->word, __ATOMIC_ACQUIRE) != 1)
        sched_yield();
    for (int k = 0; k < NCH; k++) {
        if (exipc_accept(l, 1000000000, &c[k]) != 0)
            return 2;
        it[k] = (struct exipc_pollitem){.chan = c[k]};
    }
    for (int i = 0; i < N; i++) {
        __atomic_store_n(&sh->word, 2 * i + 1, __ATOMIC_RELEASE);
        exipc_handle_t h;
        int rc;
        if (mode == 0) {
            rc = exipc_recv(c[0], &h, 5000000000ll);
        } else {
            rc = exipc_poll(d, it, NCH, 5000000000ll);
            sh->lat[i] = now() - sh->stamp;
            rc = rc > 0 ? exipc_recv(c[i % NCH], &h, 0) : rc;
        }
        if (mode == 0)
            sh->lat[i] = now() - sh->stamp;
        if (rc != 0) {
            fprintf(stderr, "recv %d: %s\n", i, exipc_strerror(rc));
            kill(pid, SIGKILL);
            break;
        }
        exipc_free(d, h);
    }
    waitpid(pid, NULL, 0);
    exipc_close(d);
    exipc_unlink(name);
    return 0;
}

int main(void)
{
    struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("one-way wake-up of a parked receiver, ns (%d samples each, sender waits 200 us first)\n", N);
    printf("%-28s %8s %8s %8s\n", "", "p50", "p99", "max");
    int64_t ref[3] = {0}, rp[3] = {0}, po[3] = {0};
    for (int rep = 0; rep < 3; rep++) { /* interleaved: the machine drifts */
        run_futex(sh);
        ref[rep] = report("futex wake (reference)", sh);
        if (run_exipc(sh, 0) != 0)
            return 1;
        rp[rep] = report("exipc_recv, PARK", sh);
        if (run_exipc(sh, 1) != 0)
            return 1;
        po[rep] = report("exipc_poll, 64 channels", sh);
    }
    qsort(ref, 3, 8, cmp);
    qsort(rp, 3, 8, cmp);
    qsort(po, 3, 8, cmp);
    printf("median of medians: futex %lld, recv park %lld (x%.2f), poll %lld (x%.2f)\n", (long long)ref[1],
           (long long)rp[1], (double)rp[1] / (double)ref[1], (long long)po[1], (double)po[1] / (double)ref[1]);
    return 0;
}

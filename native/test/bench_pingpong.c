/*
 * bench_pingpong.c — round trips between two processes, exipc beside its
 * reference points, all measured in the same run (timings on these VMs drift
 * by several times within minutes: compare the ratios, not the absolutes).
 *
 *   bench_pingpong [-r RUNS] [-s SCALE]
 *
 * Two processes (fork), pinned to two different CPUs when there are two:
 *   cache line   a counter bounced through a shared mmap, spinning: the
 *                hardware floor for any shared-memory round trip
 *   futex        a wake through a shared futex word each way, each landing
 *                on a process that is really asleep: what a round trip costs
 *                when both sides sleep (the sum of the two wake latencies)
 *   socketpair   64 B written and read back over an AF_UNIX stream socketpair
 *   exipc        64 B each way: alloc, write, send; the peer receives, reads,
 *                frees and replies the same way. "blocking" receives with a
 *                timeout (exipc spins briefly, then parks on a futex);
 *                "polling" spins on exipc_recv with timeout 0.
 * Each is run RUNS times after a warm-up run, the runs of the different
 * tests interleaved; every round trip is timed
 * (one clock_gettime per round trip is included). The table gives the median
 * and p99 over all round trips and the median of the runs' means.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exipc.h"

#define SEC 1000000000LL
#define MSG 64

enum { T_CACHE, T_FUTEX, T_SOCK, T_EXIPC_BLOCK, T_EXIPC_POLL, NTESTS };

static const char *names[NTESTS] = {
    "cache line (shared mmap, spin)",
    "futex wake, sleeper (shared mmap)",
    "unix socketpair 64 B",
    "exipc 64 B, recv blocking",
    "exipc 64 B, recv polling",
};
static const long base_rounds[NTESTS] = {100000, 4000, 10000, 20000, 50000};

/* The control block both processes map. */
struct shared {
    alignas(64) uint64_t ping;
    alignas(64) uint64_t pong;
    alignas(64) uint32_t fping;
    uint32_t child_asleep;
    int64_t t_wake, lat_child;
    alignas(64) uint32_t fpong;
    uint32_t parent_asleep;
    int64_t t_wake2;
    alignas(64) uint64_t arrivals; /* barrier */
    alignas(64) uint32_t abort;    /* set by a side that failed */
    char errmsg[256];
};

static struct shared *S;
static int is_parent = 1;
static char domain[64];
static int domain_made;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static int one_cpu; /* both processes share one CPU: spinning must yield */

static inline void relax(void)
{
    if (one_cpu) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[200];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "bench_pingpong (%s): %s\n", is_parent ? "parent" : "child", buf);
    if (S) {
        snprintf(S->errmsg, sizeof S->errmsg, "%s", buf);
        __atomic_store_n(&S->abort, 1, __ATOMIC_SEQ_CST);
    }
    if (is_parent && domain_made)
        exipc_unlink(domain);
    _exit(1);
}

/* The other process failed (it said why on stderr): leave too. */
static void check_abort(void)
{
    if (!__atomic_load_n(&S->abort, __ATOMIC_ACQUIRE))
        return;
    if (is_parent && domain_made)
        exipc_unlink(domain);
    _exit(1);
}

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0); /* not PRIVATE: shared across processes */
}

/* Both processes call barrier() the same number of times. */
static uint64_t barrier_gen;
static void barrier(void)
{
    uint64_t target = 2 * ++barrier_gen;
    __atomic_fetch_add(&S->arrivals, 1, __ATOMIC_SEQ_CST);
    int64_t limit = now_ns() + 30 * SEC;
    while (__atomic_load_n(&S->arrivals, __ATOMIC_ACQUIRE) < target) {
        check_abort();
        if (now_ns() > limit)
            die("barrier: the other process did not arrive in 30 s");
        sched_yield();
    }
}

/* ---- the round trips; the parent times them ---------------------------- */

static void spin_until(uint64_t *p, uint64_t v)
{
    unsigned n = 0;
    while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v)
        if ((++n & 0xfffff) == 0)
            check_abort();
        else
            relax();
}

static void spin_until32(uint32_t *p, uint32_t v)
{
    unsigned n = 0;
    while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v)
        if ((++n & 0xfffff) == 0)
            check_abort();
        else
            relax();
}

static void cache_parent(long n, uint32_t *samples, uint64_t base)
{
    int64_t t = now_ns();
    for (long i = 1; i <= n; i++) {
        __atomic_store_n(&S->ping, base + i, __ATOMIC_RELEASE);
        spin_until(&S->pong, base + i);
        int64_t t2 = now_ns();
        samples[i - 1] = (uint32_t)(t2 - t);
        t = t2;
    }
}

static void cache_child(long n, uint64_t base)
{
    for (long i = 1; i <= n; i++) {
        spin_until(&S->ping, base + i);
        __atomic_store_n(&S->pong, base + i, __ATOMIC_RELEASE);
    }
}

static void futex_wait_for(uint32_t *w, uint32_t v)
{
    struct timespec ts = {1, 0};
    uint32_t cur;
    while ((cur = __atomic_load_n(w, __ATOMIC_ACQUIRE)) != v) {
        futex(w, FUTEX_WAIT, cur, &ts);
        check_abort();
    }
}

/* Futex reference: each wake lands on a process that is really asleep. The
 * waker waits until the other side has announced its sleep and then SETTLE_NS
 * more (so it is inside FUTEX_WAIT, not on its way there), stamps the clock
 * and wakes it; the woken side reads the clock. A sample is the sum of the two
 * one-way wake latencies (both processes read the same CLOCK_MONOTONIC); the
 * settling delays are not counted. */
#define SETTLE_NS 30000

static void settle(uint32_t *asleep, uint32_t v)
{
    spin_until32(asleep, v);
    int64_t until = now_ns() + SETTLE_NS;
    while (now_ns() < until)
        relax();
}

static void futex_parent(long n, uint32_t *samples, uint32_t base)
{
    for (long i = 1; i <= n; i++) {
        uint32_t v = base + (uint32_t)i;
        settle(&S->child_asleep, v);
        __atomic_store_n(&S->t_wake, now_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&S->fping, v, __ATOMIC_RELEASE);
        futex(&S->fping, FUTEX_WAKE, 1, NULL);
        __atomic_store_n(&S->parent_asleep, v, __ATOMIC_RELEASE);
        futex_wait_for(&S->fpong, v);
        int64_t back = now_ns() - __atomic_load_n(&S->t_wake2, __ATOMIC_RELAXED);
        int64_t there = __atomic_load_n(&S->lat_child, __ATOMIC_RELAXED);
        samples[i - 1] = (uint32_t)(there + back);
    }
}

static void futex_child(long n, uint32_t base)
{
    for (long i = 1; i <= n; i++) {
        uint32_t v = base + (uint32_t)i;
        __atomic_store_n(&S->child_asleep, v, __ATOMIC_RELEASE);
        futex_wait_for(&S->fping, v);
        __atomic_store_n(&S->lat_child, now_ns() - __atomic_load_n(&S->t_wake, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
        settle(&S->parent_asleep, v);
        __atomic_store_n(&S->t_wake2, now_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&S->fpong, v, __ATOMIC_RELEASE); /* publishes lat_child too */
        futex(&S->fpong, FUTEX_WAKE, 1, NULL);
    }
}

static void full_io(int fd, char *buf, int writing)
{
    size_t done = 0;
    while (done < MSG) {
        ssize_t r = writing ? write(fd, buf + done, MSG - done) : read(fd, buf + done, MSG - done);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            die("socket %s: %s", writing ? "write" : "read", r ? strerror(errno) : "closed");
        }
        done += (size_t)r;
    }
}

static void sock_parent(int fd, long n, uint32_t *samples)
{
    char buf[MSG];
    memset(buf, 'p', sizeof buf);
    int64_t t = now_ns();
    for (long i = 0; i < n; i++) {
        buf[0] = (char)i;
        full_io(fd, buf, 1);
        full_io(fd, buf, 0);
        if (buf[0] != (char)(i + 1))
            die("socket: reply %d to %d", buf[0], (int)(char)i);
        int64_t t2 = now_ns();
        samples[i] = (uint32_t)(t2 - t);
        t = t2;
    }
}

static void sock_child(int fd, long n)
{
    char buf[MSG];
    for (long i = 0; i < n; i++) {
        full_io(fd, buf, 0);
        buf[0]++;
        full_io(fd, buf, 1);
    }
}

/* exipc: one 64 B block each way. Returns the byte the peer wrote. */
static void ex_send(exipc_domain_t *d, exipc_chan_t *c, uint8_t v)
{
    exipc_handle_t h;
    int r;
    while ((r = exipc_alloc(d, MSG, &h)) == -ENOMEM)
        sched_yield();
    if (r < 0)
        die("exipc_alloc: %s", exipc_strerror(r));
    memset(exipc_ptr(d, h, NULL), v, MSG);
    if ((r = exipc_send(c, h)) < 0)
        die("exipc_send: %s", exipc_strerror(r));
}

static uint8_t ex_recv(exipc_domain_t *d, exipc_chan_t *c, int poll)
{
    exipc_handle_t h;
    int r;
    if (poll) {
        unsigned n = 0;
        while ((r = exipc_recv(c, &h, 0)) == -EAGAIN)
            if ((++n & 0xfffff) == 0)
                check_abort();
            else if (one_cpu)
                sched_yield();
    } else {
        r = exipc_recv(c, &h, 10 * SEC);
    }
    if (r < 0)
        die("exipc_recv: %s", exipc_strerror(r));
    size_t len;
    const uint8_t *p = exipc_ptr(d, h, &len);
    if (!p || len != MSG)
        die("exipc_ptr: %p len %zu", (const void *)p, p ? len : 0);
    uint8_t v = p[0];
    unsigned sum = 0;
    for (int i = 0; i < MSG; i++) /* read it all, as a real receiver would */
        sum += p[i];
    if (sum != (unsigned)v * MSG)
        die("exipc: torn message");
    if ((r = exipc_free(d, h)) < 0)
        die("exipc_free: %s", exipc_strerror(r));
    return v;
}

static void ex_parent(exipc_domain_t *d, exipc_chan_t *c, long n, uint32_t *samples, int poll)
{
    int64_t t = now_ns();
    for (long i = 0; i < n; i++) {
        ex_send(d, c, (uint8_t)i);
        uint8_t v = ex_recv(d, c, poll);
        if (v != (uint8_t)(i + 1))
            die("exipc: reply %u to %u", v, (unsigned)(uint8_t)i);
        int64_t t2 = now_ns();
        samples[i] = (uint32_t)(t2 - t);
        t = t2;
    }
}

static void ex_child(exipc_domain_t *d, exipc_chan_t *c, long n, int poll)
{
    for (long i = 0; i < n; i++) {
        uint8_t v = ex_recv(d, c, poll);
        ex_send(d, c, (uint8_t)(v + 1));
    }
}

/* ---- statistics ---------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}
static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct result {
    long rounds;
    double median, p99, mean; /* mean: median of the runs' means */
    int done;
};

/* ---- driver ------------------------------------------------------------- */

static void pin(int which)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0 || CPU_COUNT(&set) < 2)
        return;
    int seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        if (seen++ == which) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}

static int cpu_of_pin(int which, int *count)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return -1;
    *count = CPU_COUNT(&set);
    int seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set) && seen++ == which)
            return cpu;
    return -1;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "bench_pingpong: watchdog expired, giving up\n";
    if (write(2, m, sizeof m - 1) < 0) {
    }
    if (domain_made) {
        char path[128];
        snprintf(path, sizeof path, "/dev/shm/exipc.%s", domain);
        unlink(path);
    }
    _exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_pingpong [-r RUNS] [-s SCALE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int runs = 5;
    double scale = 1.0;
    int opt;
    while ((opt = getopt(argc, argv, "r:s:h")) != -1) {
        if (opt == 'r')
            runs = atoi(optarg);
        else if (opt == 's')
            scale = atof(optarg);
        else
            usage();
    }
    if (runs < 1 || runs > 1000 || !(scale > 0) || scale > 1000)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);

    long rounds[NTESTS];
    long maxn = 0;
    for (int t = 0; t < NTESTS; t++) {
        rounds[t] = (long)(base_rounds[t] * scale);
        if (rounds[t] < 10)
            rounds[t] = 10;
        if (rounds[t] > maxn)
            maxn = rounds[t];
    }

    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(S, 0, sizeof *S);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        return 1;
    }
    snprintf(domain, sizeof domain, "bench-pingpong.%d", (int)getpid());
    exipc_unlink(domain);
    domain_made = 1;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(600 * (scale < 1 ? 1 : scale) * (runs < 5 ? 1 : runs / 5.0)));

    int ncpu = 0;
    int cpu0 = cpu_of_pin(0, &ncpu), cpu1 = cpu_of_pin(1, &ncpu);
    one_cpu = ncpu < 2;
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        is_parent = 0;
        domain_made = 0;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(0);
        close(sv[0]);
    } else {
        close(sv[1]);
    }
    int fd = is_parent ? sv[0] : sv[1];
    pin(is_parent ? 0 : 1);

    /* exipc: each process opens the domain itself, after the fork. */
    exipc_domain_t *d;
    exipc_listener_t *l = NULL;
    exipc_chan_t *c;
    int r;
    if (is_parent) {
        if ((r = exipc_open(domain, NULL, &d)) < 0)
            die("exipc_open: %s", exipc_strerror(r));
        if ((r = exipc_listen(d, "pingpong", &l)) < 0)
            die("exipc_listen: %s", exipc_strerror(r));
        barrier();
        if ((r = exipc_accept(l, 10 * SEC, &c)) < 0)
            die("exipc_accept: %s", exipc_strerror(r));
    } else {
        barrier();
        if ((r = exipc_open(domain, NULL, &d)) < 0)
            die("exipc_open: %s", exipc_strerror(r));
        if ((r = exipc_connect(d, "pingpong", 10 * SEC, &c)) < 0)
            die("exipc_connect: %s", exipc_strerror(r));
    }

    /* Runs are interleaved (run 1 of every test, then run 2, ...) so that a
     * drift of the machine during the benchmark hits every row alike. */
    uint32_t *samples = NULL, *all[NTESTS] = {0};
    double *means[NTESTS] = {0};
    size_t nall[NTESTS] = {0};
    if (is_parent) {
        samples = malloc(sizeof *samples * (size_t)maxn);
        if (!samples)
            die("out of memory");
        for (int t = 0; t < NTESTS; t++) {
            all[t] = malloc(sizeof *all[t] * (size_t)rounds[t] * (size_t)runs);
            means[t] = malloc(sizeof *means[t] * (size_t)runs);
            if (!all[t] || !means[t])
                die("out of memory");
        }
        printf("bench_pingpong: round trips between two processes; %d runs of each, interleaved, after a warm-up run\n",
               runs);
        if (ncpu >= 2)
            printf("parent pinned to CPU %d, child to CPU %d (%d CPUs available)\n", cpu0, cpu1, ncpu);
        else
            printf("one CPU available: not pinned (the two processes share it)\n");
    }

    uint64_t cbase = 0;
    uint32_t fbase = 0;
    for (int run = -1; run < runs; run++) { /* run -1: warm-up */
        for (int t = 0; t < NTESTS; t++) {
            long n = rounds[t];
            barrier();
            if (is_parent) {
                switch (t) {
                case T_CACHE: cache_parent(n, samples, cbase); break;
                case T_FUTEX: futex_parent(n, samples, fbase); break;
                case T_SOCK: sock_parent(fd, n, samples); break;
                case T_EXIPC_BLOCK: ex_parent(d, c, n, samples, 0); break;
                case T_EXIPC_POLL: ex_parent(d, c, n, samples, 1); break;
                }
                if (run >= 0) {
                    double sum = 0;
                    for (long k = 0; k < n; k++)
                        sum += samples[k];
                    means[t][run] = sum / (double)n;
                    memcpy(all[t] + nall[t], samples, sizeof *samples * (size_t)n);
                    nall[t] += (size_t)n;
                }
            } else {
                switch (t) {
                case T_CACHE: cache_child(n, cbase); break;
                case T_FUTEX: futex_child(n, fbase); break;
                case T_SOCK: sock_child(fd, n); break;
                case T_EXIPC_BLOCK: ex_child(d, c, n, 0); break;
                case T_EXIPC_POLL: ex_child(d, c, n, 1); break;
                }
            }
            cbase += (uint64_t)n;
            fbase += (uint32_t)n;
        }
    }

    struct result res[NTESTS];
    memset(res, 0, sizeof res);
    if (is_parent) {
        for (int t = 0; t < NTESTS; t++) {
            qsort(all[t], nall[t], sizeof *all[t], cmp_u32);
            qsort(means[t], (size_t)runs, sizeof *means[t], cmp_dbl);
            res[t].rounds = rounds[t] * runs;
            res[t].median = all[t][nall[t] / 2];
            res[t].p99 = all[t][(size_t)((double)nall[t] * 0.99)];
            res[t].mean = runs % 2 ? means[t][runs / 2] : (means[t][runs / 2 - 1] + means[t][runs / 2]) / 2;
            res[t].done = 1;
        }
    }

    barrier();
    exipc_chan_close(c);
    if (l)
        exipc_listener_close(l);
    exipc_close(d);
    barrier();
    if (!is_parent)
        _exit(0);

    int status;
    waitpid(child, &status, 0);
    exipc_unlink(domain);
    domain_made = 0;
    alarm(0);

    printf("\n%-32s %10s %11s %11s %11s\n", "round trip", "rounds", "median ns", "mean ns", "p99 ns");
    for (int t = 0; t < NTESTS; t++)
        printf("%-32s %10ld %11.0f %11.0f %11.0f\n", names[t], res[t].rounds, res[t].median, res[t].mean, res[t].p99);
    printf("\n%-32s %14s %14s %14s\n", "exipc vs references (medians)", "x cache line", "x futex", "x socketpair");
    for (int t = T_EXIPC_BLOCK; t <= T_EXIPC_POLL; t++)
        printf("%-32s %14.2f %14.3f %14.3f\n", names[t], res[t].median / res[T_CACHE].median,
               res[t].median / res[T_FUTEX].median, res[t].median / res[T_SOCK].median);
    printf("\n(x < 1 means exipc is faster than that reference; each round trip includes one clock_gettime;\n the futex row times only the two wake-ups, not the settling delays between them)\n");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_pingpong: child ended badly (status %#x)\n", status);
        return 1;
    }
    return 0;
}

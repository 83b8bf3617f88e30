/*
 * cbench.c — the C side of `make bench`: the reference points, and the C
 * end of every exipc workload that bench/ (the Go driver) runs C<->C or
 * Go<->C. The driver starts it; it never runs on its own in `make test`.
 *
 *   cbench ROLE key=value...
 *
 * References (one program forks itself; parent on the first allowed CPU,
 * child on the second):
 *   ref-cacheline n= warm= out=   a counter bounced through a shared mmap,
 *                                 spinning: the floor of any shared-memory
 *                                 round trip. out: one uint32 ns per round trip.
 *   ref-futex n= warm= out=       a wake through a shared futex word each
 *                                 way, each landing on a process that is
 *                                 really asleep; a sample is the sum of the
 *                                 two one-way wake latencies.
 *   ref-ring n= batch= cap=       a bare SPSC ring of uint64 each way (the
 *                                 values circulate, as exipc handles do in
 *                                 the "handles" workload): what the rings of
 *                                 exipc cost without their ownership checks.
 * exipc workloads (the driver pins the process; dom= svc= heap= name the domain):
 *   pp-server  size= mode=spin|park warm= [out=]   echo until the peer closes
 *   pp-client  size= mode= n= warm= out=
 *   stream-send size= n= warm= batch=              alloc, write, send
 *   stream-recv size= n= warm= batch=              recv, read, free
 *   handles-send n= warm= batch= pool=             circulate a pool of blocks
 *   handles-recv n= warm= batch=                   ... and send them back
 *
 * Output: "ready" (servers, once listening), then one line
 *   result start_ns=S end_ns=E count=N
 * on stdout; latency samples as little-endian uint32 ns in out=. Timestamps
 * are CLOCK_MONOTONIC, the clock the Go side reads too. Payloads: the sender
 * copies SIZE bytes from a prepared buffer into the block and puts a
 * sequence number (or, in park mode, its clock) in the first 8 bytes; the
 * receiver reads every byte (a sum of 8-byte words) and checks the sequence.
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exipc.h"

#define SEC 1000000000LL
#define PARK_GAP_NS 100000 /* > exipc's 20 us spin: the peer has parked */
#define SETTLE_NS 30000    /* futex reference: the peer is inside FUTEX_WAIT */
#define MAXBATCH 1024

static const char *role = "cbench";

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cbench %s: ", role);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    _exit(1);
}

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void spin_for(int64_t ns)
{
    int64_t until = now_ns() + ns;
    while (now_ns() < until)
        relax();
}

/* ---- arguments: key=value ------------------------------------------------ */

static int nargs;
static char **args;

static const char *arg_s(const char *key, const char *def)
{
    size_t k = strlen(key);
    for (int i = 0; i < nargs; i++)
        if (strncmp(args[i], key, k) == 0 && args[i][k] == '=')
            return args[i] + k + 1;
    if (!def)
        die("missing %s=", key);
    return def;
}

static long long arg_i(const char *key, long long def)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", def);
    const char *s = arg_s(key, buf);
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0)
        die("bad %s=%s", key, s);
    return v;
}

/* ---- payload --------------------------------------------------------------- */

static uint8_t *src; /* what senders copy into blocks */
static volatile uint64_t sink;

static void make_src(size_t size)
{
    src = malloc(size < 8 ? 8 : size);
    if (!src)
        die("out of memory");
    for (size_t i = 0; i < size; i++)
        src[i] = (uint8_t)(i * 7 + 1);
}

static inline void put64(void *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t get64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Reads every byte of p (what a receiver that uses the data does). */
static inline uint64_t touch(const uint8_t *p, size_t n)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 += get64(p + i);
        s1 += get64(p + i + 8);
        s2 += get64(p + i + 16);
        s3 += get64(p + i + 24);
    }
    for (; i < n; i++)
        s0 += p[i];
    return s0 + s1 + s2 + s3;
}

/* ---- samples --------------------------------------------------------------- */

static void write_samples(const char *path, const uint32_t *s, size_t n)
{
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s, sizeof *s, n, f) != n || fclose(f) != 0)
        die("writing %s failed", path);
}

static uint32_t *new_samples(size_t n)
{
    uint32_t *s = calloc(n ? n : 1, sizeof *s);
    if (!s)
        die("out of memory");
    return s;
}

static inline uint32_t clamp32(int64_t v) { return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

/* ---- references: two processes of this program ---------------------------- */

static void pin_nth(int which)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0 || CPU_COUNT(&set) < 2)
        return;
    int seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set) && seen++ == which) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}

struct refshm {
    alignas(64) uint64_t ping;
    alignas(64) uint64_t pong;
    alignas(64) uint32_t fping;
    uint32_t child_asleep;
    int64_t t_wake, lat_child;
    alignas(64) uint32_t fpong;
    uint32_t parent_asleep;
    int64_t t_wake2;
    alignas(64) uint64_t fwd_tail; /* ref-ring: forward ring, producer -> consumer */
    alignas(64) uint64_t fwd_head;
    alignas(64) uint64_t ret_tail; /* return ring, consumer -> producer */
    alignas(64) uint64_t ret_head;
    alignas(64) uint64_t fwd[65536];
    alignas(64) uint64_t ret[65536];
};
static struct refshm *R;

static void spin_until(uint64_t *p, uint64_t v)
{
    while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v)
        relax();
}
static void spin_until32(uint32_t *p, uint32_t v)
{
    while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v)
        relax();
}

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0); /* shared: no PRIVATE flag */
}

static void futex_wait_for(uint32_t *w, uint32_t v)
{
    struct timespec ts = {1, 0};
    uint32_t cur;
    while ((cur = __atomic_load_n(w, __ATOMIC_ACQUIRE)) != v)
        futex(w, FUTEX_WAIT, cur, &ts);
}

static void settle(uint32_t *asleep, uint32_t v)
{
    spin_until32(asleep, v);
    spin_for(SETTLE_NS);
}

/* Forks; returns 1 in the parent (pinned to the first CPU), 0 in the child. */
static pid_t child_pid;
static int fork_pinned(void)
{
    R = mmap(NULL, sizeof *R, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (R == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    fflush(stdout);
    child_pid = fork();
    if (child_pid < 0)
        die("fork: %s", strerror(errno));
    if (child_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin_nth(1);
        return 0;
    }
    pin_nth(0);
    return 1;
}

static void reap_child(void)
{
    int st;
    if (waitpid(child_pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("child ended badly (status %#x)", st);
}

static int ref_cacheline(void)
{
    long n = arg_i("n", 100000), warm = arg_i("warm", n / 10);
    const char *out = arg_s("out", "");
    uint32_t *s = new_samples((size_t)n);
    if (!fork_pinned()) {
        for (uint64_t i = 1; i <= (uint64_t)(n + warm); i++) {
            spin_until(&R->ping, i);
            __atomic_store_n(&R->pong, i, __ATOMIC_RELEASE);
        }
        _exit(0);
    }
    int64_t t = now_ns(), start = 0;
    for (long i = 1; i <= n + warm; i++) {
        __atomic_store_n(&R->ping, (uint64_t)i, __ATOMIC_RELEASE);
        spin_until(&R->pong, (uint64_t)i);
        int64_t t2 = now_ns();
        if (i == warm)
            start = t2;
        if (i > warm)
            s[i - warm - 1] = clamp32(t2 - t);
        t = t2;
    }
    reap_child();
    write_samples(out, s, (size_t)n);
    printf("result start_ns=%" PRId64 " end_ns=%" PRId64 " count=%ld\n", start, t, n);
    return 0;
}

static int ref_futex(void)
{
    long n = arg_i("n", 2000), warm = arg_i("warm", n / 10);
    const char *out = arg_s("out", "");
    uint32_t *s = new_samples((size_t)n);
    if (!fork_pinned()) {
        for (uint32_t v = 1; v <= (uint32_t)(n + warm); v++) {
            __atomic_store_n(&R->child_asleep, v, __ATOMIC_RELEASE);
            futex_wait_for(&R->fping, v);
            __atomic_store_n(&R->lat_child, now_ns() - __atomic_load_n(&R->t_wake, __ATOMIC_RELAXED),
                             __ATOMIC_RELAXED);
            settle(&R->parent_asleep, v);
            __atomic_store_n(&R->t_wake2, now_ns(), __ATOMIC_RELAXED);
            __atomic_store_n(&R->fpong, v, __ATOMIC_RELEASE); /* publishes lat_child too */
            futex(&R->fpong, FUTEX_WAKE, 1, NULL);
        }
        _exit(0);
    }
    int64_t start = now_ns();
    for (uint32_t v = 1; v <= (uint32_t)(n + warm); v++) {
        settle(&R->child_asleep, v);
        __atomic_store_n(&R->t_wake, now_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&R->fping, v, __ATOMIC_RELEASE);
        futex(&R->fping, FUTEX_WAKE, 1, NULL);
        __atomic_store_n(&R->parent_asleep, v, __ATOMIC_RELEASE);
        futex_wait_for(&R->fpong, v);
        int64_t back = now_ns() - __atomic_load_n(&R->t_wake2, __ATOMIC_RELAXED);
        int64_t there = __atomic_load_n(&R->lat_child, __ATOMIC_RELAXED);
        if (v > (uint32_t)warm)
            s[v - warm - 1] = clamp32(there + back);
    }
    reap_child();
    write_samples(out, s, (size_t)n);
    printf("result start_ns=%" PRId64 " end_ns=%" PRId64 " count=%ld\n", start, now_ns(), n);
    return 0;
}

/* Bare rings: the producer sends values from its pool in batches on fwd and
 * takes them back from ret; the consumer reads fwd and returns what it read
 * on ret. Each side caches the other's index, as exipc's rings do. */
static int ref_ring(void)
{
    long n = arg_i("n", 20000000), warm = arg_i("warm", n / 10);
    uint64_t cap = (uint64_t)arg_i("cap", 256), batch = (uint64_t)arg_i("batch", 64);
    if (cap < 2 || cap > 65536 || (cap & (cap - 1)) || batch < 1 || batch > cap)
        die("bad cap/batch");
    uint64_t mask = cap - 1, total = (uint64_t)(n + warm);
    if (!fork_pinned()) { /* consumer */
        uint64_t head = 0, tail_cache = 0, rtail = 0, rhead_cache = 0, got = 0;
        int64_t start = 0;
        while (got < total) {
            if (tail_cache == head) {
                tail_cache = __atomic_load_n(&R->fwd_tail, __ATOMIC_ACQUIRE);
                if (tail_cache == head) {
                    relax();
                    continue;
                }
            }
            uint64_t k = tail_cache - head < batch ? tail_cache - head : batch;
            while (cap - (rtail - rhead_cache) < k) { /* room on ret: always, pool <= cap */
                rhead_cache = __atomic_load_n(&R->ret_head, __ATOMIC_ACQUIRE);
                relax();
            }
            uint64_t sum = 0;
            for (uint64_t i = 0; i < k; i++) {
                uint64_t v = __atomic_load_n(&R->fwd[(head + i) & mask], __ATOMIC_RELAXED);
                sum += v;
                __atomic_store_n(&R->ret[(rtail + i) & mask], v, __ATOMIC_RELAXED);
            }
            sink += sum;
            head += k;
            rtail += k;
            __atomic_store_n(&R->fwd_head, head, __ATOMIC_RELEASE);
            __atomic_store_n(&R->ret_tail, rtail, __ATOMIC_RELEASE);
            if (got < (uint64_t)warm && got + k >= (uint64_t)warm)
                start = now_ns();
            got += k;
        }
        int64_t end = now_ns();
        /* The child reports: it is the receiver, as in the exipc workload. */
        printf("result start_ns=%" PRId64 " end_ns=%" PRId64 " count=%" PRIu64 "\n", start, end,
               got - (uint64_t)warm);
        fflush(stdout);
        _exit(0);
    }
    /* producer */
    uint64_t pool[65536], nfree = cap; /* the pool fills the ring, as exipc's does */
    for (uint64_t i = 0; i < cap; i++)
        pool[i] = i + 1;
    uint64_t tail = 0, head_cache = 0, rhead = 0, rtail_cache = 0, sent = 0;
    while (sent < total) {
        if (nfree == 0) { /* wait for some to come home, take all that did */
            rtail_cache = __atomic_load_n(&R->ret_tail, __ATOMIC_ACQUIRE);
            uint64_t k = rtail_cache - rhead;
            for (uint64_t i = 0; i < k; i++)
                pool[nfree++] = __atomic_load_n(&R->ret[(rhead + i) & mask], __ATOMIC_RELAXED);
            rhead += k;
            if (k)
                __atomic_store_n(&R->ret_head, rhead, __ATOMIC_RELEASE);
            if (nfree == 0) {
                relax();
                continue;
            }
        }
        uint64_t k = nfree < batch ? nfree : batch;
        if (total - sent < k)
            k = total - sent;
        if (cap - (tail - head_cache) < k) /* send what fits, as exipc_send_batch does */
            head_cache = __atomic_load_n(&R->fwd_head, __ATOMIC_ACQUIRE);
        if (cap - (tail - head_cache) < k)
            k = cap - (tail - head_cache);
        if (k == 0) {
            relax();
            continue;
        }
        for (uint64_t i = 0; i < k; i++)
            __atomic_store_n(&R->fwd[(tail + i) & mask], pool[--nfree], __ATOMIC_RELAXED);
        tail += k;
        __atomic_store_n(&R->fwd_tail, tail, __ATOMIC_RELEASE);
        sent += k;
    }
    reap_child();
    return 0;
}

/* ---- exipc workloads ----------------------------------------------------- */

static exipc_domain_t *D;
static exipc_listener_t *L;
static exipc_chan_t *C;

static void ex_open(int server)
{
    struct exipc_options o = {0};
    o.size = (uint64_t)arg_i("heap", 64 << 20);
    o.max_chans = (uint32_t)arg_i("chans", 2048);
    o.max_procs = 64;
    o.ring_capacity = (uint32_t)arg_i("ring", 0); /* 0: the default (256) */
    const char *dom = arg_s("dom", NULL), *svc = arg_s("svc", NULL);
    int r = exipc_open(dom, &o, &D);
    if (r < 0)
        die("exipc_open %s: %s", dom, exipc_strerror(r));
    if (server) {
        if ((r = exipc_listen(D, svc, &L)) < 0)
            die("exipc_listen: %s", exipc_strerror(r));
        printf("ready\n");
        fflush(stdout);
        if ((r = exipc_accept(L, 30 * SEC, &C)) < 0)
            die("exipc_accept: %s", exipc_strerror(r));
    } else if ((r = exipc_connect(D, svc, 30 * SEC, &C)) < 0) {
        die("exipc_connect: %s", exipc_strerror(r));
    }
}

static void ex_close(void)
{
    exipc_chan_close(C);
    if (L)
        exipc_listener_close(L);
    exipc_close(D);
}

/* Allocates SIZE bytes, copies the payload in, stamps it and sends it. */
static void ex_send(size_t size, uint64_t stamp)
{
    exipc_handle_t h;
    int r;
    while ((r = exipc_alloc(D, size, &h)) == -ENOMEM)
        sched_yield();
    if (r < 0)
        die("exipc_alloc: %s", exipc_strerror(r));
    uint8_t *p = exipc_ptr(D, h, NULL);
    memcpy(p, src, size);
    put64(p, stamp);
    while ((r = exipc_send(C, h)) == -EAGAIN)
        sched_yield();
    if (r < 0)
        die("exipc_send: %s", exipc_strerror(r));
}

/* Receives one block (spinning or parking), reads it all, frees it and
 * returns its first 8 bytes. Returns 0 and sets *eof at the peer's close. */
static uint64_t ex_recv(int spin, size_t size, int *eof)
{
    exipc_handle_t h;
    int r;
    if (spin)
        while ((r = exipc_recv(C, &h, 0)) == -EAGAIN)
            ;
    else
        while ((r = exipc_recv(C, &h, 10 * SEC)) == -ETIMEDOUT)
            ;
    if (r == -EPIPE) {
        *eof = 1;
        return 0;
    }
    if (r < 0)
        die("exipc_recv: %s", exipc_strerror(r));
    size_t len;
    const uint8_t *p = exipc_ptr(D, h, &len);
    if (!p || len != size)
        die("exipc_ptr: %p len %zu, want %zu", (const void *)p, p ? len : 0, size);
    sink += touch(p, len);
    uint64_t v = get64(p);
    if ((r = exipc_free(D, h)) < 0)
        die("exipc_free: %s", exipc_strerror(r));
    return v;
}

static int pp_server(void)
{
    size_t size = (size_t)arg_i("size", 64);
    int spin = strcmp(arg_s("mode", "spin"), "park") != 0;
    long warm = arg_i("warm", 0), n = arg_i("n", 0);
    const char *out = arg_s("out", "");
    uint32_t *s = new_samples((size_t)n);
    make_src(size);
    ex_open(1);
    int eof = 0;
    for (long i = 0;; i++) {
        uint64_t v = ex_recv(spin, size, &eof);
        if (eof)
            break;
        if (!spin) { /* v is the sender's clock when it started sending */
            int64_t lat = now_ns() - (int64_t)v;
            if (i >= warm && i - warm < n)
                s[i - warm] = clamp32(lat);
            spin_for(PARK_GAP_NS);
        }
        ex_send(size, spin ? v + 1 : (uint64_t)now_ns());
    }
    write_samples(out, s, (size_t)n);
    ex_close();
    printf("result start_ns=0 end_ns=0 count=%ld\n", n);
    return 0;
}

static int pp_client(void)
{
    size_t size = (size_t)arg_i("size", 64);
    int spin = strcmp(arg_s("mode", "spin"), "park") != 0;
    long n = arg_i("n", 10000), warm = arg_i("warm", n / 10);
    const char *out = arg_s("out", "");
    uint32_t *s = new_samples((size_t)n);
    make_src(size);
    ex_open(0);
    int eof = 0;
    int64_t t = now_ns(), start = t;
    for (long i = 0; i < n + warm; i++) {
        if (i == warm)
            start = now_ns();
        int64_t t0 = now_ns();
        ex_send(size, spin ? (uint64_t)i : (uint64_t)t0);
        uint64_t v = ex_recv(spin, size, &eof);
        if (eof)
            die("the server closed");
        int64_t t2 = now_ns();
        if (spin) {
            if (v != (uint64_t)i + 1)
                die("reply %" PRIu64 " to %ld", v, i);
            if (i >= warm)
                s[i - warm] = clamp32(t2 - t);
        } else {
            if (i >= warm)
                s[i - warm] = clamp32(t2 - (int64_t)v);
            spin_for(PARK_GAP_NS);
            t2 = now_ns();
        }
        t = t2; /* one clock read per round trip */
    }
    write_samples(out, s, (size_t)n);
    ex_close();
    printf("result start_ns=%" PRId64 " end_ns=%" PRId64 " count=%ld\n", start, t, n);
    return 0;
}

static int stream_send(void)
{
    size_t size = (size_t)arg_i("size", 64), batch = (size_t)arg_i("batch", 1);
    long total = arg_i("n", 100000) + arg_i("warm", 0);
    if (batch < 1 || batch > MAXBATCH)
        die("bad batch");
    make_src(size);
    ex_open(0);
    if (batch == 1) {
        for (long i = 0; i < total; i++)
            ex_send(size, (uint64_t)i);
    } else {
        exipc_handle_t hs[MAXBATCH];
        size_t npend = 0;
        long next = 0, sent = 0;
        while (sent < total) {
            while (npend < batch && next < total) {
                /* One call per batch of blocks, as the Go peer (AllocBatch). */
                size_t want = batch - npend < (size_t)(total - next) ? batch - npend : (size_t)(total - next);
                void *ps[MAXBATCH];
                int r = exipc_alloc_batch(D, size, hs + npend, ps, want);
                if (r == -ENOMEM)
                    break;
                if (r < 0)
                    die("exipc_alloc_batch: %s", exipc_strerror(r));
                for (int i = 0; i < r; i++, npend++, next++) {
                    memcpy(ps[i], src, size);
                    put64(ps[i], (uint64_t)next);
                }
            }
            int k = npend ? exipc_send_batch(C, hs, npend) : -EAGAIN;
            if (k > 0) {
                memmove(hs, hs + k, (npend - (size_t)k) * sizeof *hs);
                npend -= (size_t)k;
                sent += k;
            } else if (k == -EAGAIN) {
                sched_yield();
            } else {
                die("exipc_send_batch: %s", exipc_strerror(k));
            }
        }
    }
    ex_close();
    printf("result start_ns=0 end_ns=0 count=%ld\n", total);
    return 0;
}

static int stream_recv(void)
{
    size_t size = (size_t)arg_i("size", 64), batch = (size_t)arg_i("batch", 1);
    long n = arg_i("n", 100000), warm = arg_i("warm", 0), total = n + warm;
    if (batch < 1 || batch > MAXBATCH)
        die("bad batch");
    ex_open(1);
    int64_t start = 0;
    long got = 0;
    if (batch == 1) {
        int eof = 0;
        for (; got < total; got++) {
            if (got == warm)
                start = now_ns();
            uint64_t v = ex_recv(1, size, &eof);
            if (eof)
                die("peer closed after %ld of %ld", got, total);
            if (v != (uint64_t)got)
                die("message %ld has sequence %" PRIu64, got, v);
        }
    } else {
        /* One call to receive a batch with its blocks and one to free it,
         * as the Go peer (RecvBatchBytes, FreeBatch). */
        exipc_handle_t hs[MAXBATCH];
        void *ps[MAXBATCH];
        size_t lens[MAXBATCH];
        while (got < total) {
            int k = exipc_recv_batch_view(C, hs, ps, lens, batch, 10 * SEC);
            if (k < 0)
                die("exipc_recv_batch_view after %ld of %ld: %s", got, total, exipc_strerror(k));
            if (got <= warm && got + k > warm)
                start = now_ns();
            for (int i = 0; i < k; i++, got++) {
                const uint8_t *p = ps[i];
                if (lens[i] != size)
                    die("exipc_recv_batch_view: bad block");
                sink += touch(p, lens[i]);
                if (get64(p) != (uint64_t)got)
                    die("message %ld has sequence %" PRIu64, got, get64(p));
            }
            int r = exipc_free_batch(D, hs, (size_t)k);
            if (r < 0)
                die("exipc_free_batch: %s", exipc_strerror(r));
        }
    }
    int64_t end = now_ns();
    ex_close();
    printf("result start_ns=%" PRId64 " end_ns=%" PRId64 " count=%ld\n", start, end, n);
    return 0;
}

/* The pool of blocks circulates: sent in batches of up to batch; when none
 * is left, wait for the receiver to send some back (take all that are back).
 * Only handles move; the payload is written once. */
static int handles_send(void)
{
    size_t batch = (size_t)arg_i("batch", 64), pool = (size_t)arg_i("pool", 256);
    long total = arg_i("n", 1000000) + arg_i("warm", 0);
    if (batch < 1 || batch > MAXBATCH || pool < 1 || pool > 65536)
        die("bad batch/pool");
    ex_open(0);
    exipc_handle_t *free_hs = malloc(pool * sizeof *free_hs);
    if (!free_hs)
        die("out of memory");
    for (size_t i = 0; i < pool; i++) {
        int r = exipc_alloc(D, 64, &free_hs[i]);
        if (r < 0)
            die("exipc_alloc: %s", exipc_strerror(r));
        memset(exipc_ptr(D, free_hs[i], NULL), 1, 64);
    }
    size_t nfree = pool;
    long sent = 0;
    while (sent < total) {
        if (nfree == 0) {
            int k = exipc_recv_batch(C, free_hs, pool, 10 * SEC);
            if (k < 0)
                die("exipc_recv_batch: %s", exipc_strerror(k));
            nfree = (size_t)k;
        }
        size_t want = nfree < batch ? nfree : batch;
        if ((long)want > total - sent)
            want = (size_t)(total - sent);
        int k = exipc_send_batch(C, free_hs + nfree - want, want);
        if (k > 0) {
            /* hs[nfree-want .. nfree-want+k) went; close the gap */
            memmove(free_hs + nfree - want, free_hs + nfree - want + k, (want - (size_t)k) * sizeof *free_hs);
            nfree -= (size_t)k;
            sent += k;
        } else if (k == -EAGAIN) {
            relax();
        } else {
            die("exipc_send_batch: %s", exipc_strerror(k));
        }
    }
    ex_close();
    printf("result start_ns=0 end_ns=0 count=%ld\n", total);
    return 0;
}

static int handles_recv(void)
{
    size_t batch = (size_t)arg_i("batch", 64);
    long n = arg_i("n", 1000000), warm = arg_i("warm", 0), total = n + warm;
    if (batch < 1 || batch > MAXBATCH)
        die("bad batch");
    ex_open(1);
    exipc_handle_t hs[MAXBATCH];
    long got = 0;
    int64_t start = 0;
    while (got < total) {
        int k = exipc_recv_batch(C, hs, batch, 10 * SEC);
        if (k < 0)
            die("exipc_recv_batch after %ld of %ld: %s", got, total, exipc_strerror(k));
        if (got <= warm && got + k > warm)
            start = now_ns();
        got += k;
        int off = 0;
        while (off < k) { /* the return ring has room: the pool fits it */
            int r = exipc_send_batch(C, hs + off, (size_t)(k - off));
            if (r > 0)
                off += r;
            else if (r == -EPIPE) /* the sender has all it needed and left */
                break;
            else if (r != -EAGAIN)
                die("exipc_send_batch back: %s", exipc_strerror(r));
        }
    }
    int64_t end = now_ns();
    ex_close();
    printf("result start_ns=%" PRId64 " end_ns=%" PRId64 " count=%ld\n", start, end, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cbench ROLE key=value... (see the comment at the top of cbench.c)\n");
        return 2;
    }
    role = argv[1];
    nargs = argc - 2;
    args = argv + 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the driver went: so do we */
    static const struct {
        const char *name;
        int (*fn)(void);
    } roles[] = {
        {"ref-cacheline", ref_cacheline}, {"ref-futex", ref_futex},       {"ref-ring", ref_ring},
        {"pp-server", pp_server},         {"pp-client", pp_client},       {"stream-send", stream_send},
        {"stream-recv", stream_recv},     {"handles-send", handles_send}, {"handles-recv", handles_recv},
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i].name) == 0)
            return roles[i].fn();
    die("unknown role");
}

/* test_heap.c — the page-pool heap with real processes:
 *   - fill/free/refill rotations: a child fills the arena with one size
 *     (every class, large blocks, the largest block), frees everything and
 *     exits; the next child, another size, must fill it again;
 *   - the random mix: 64 B..1 MiB, log-uniform, at most half the arena live,
 *     then filled until the first -ENOMEM; every block carries a pattern
 *     checked before its free (overlapping blocks would break it);
 *   - limits: -EMSGSIZE above max_block, -ENOMEM only when it could fit;
 *   - a hog killed while holding blocks of every class, cached and large;
 *   - a kill inside each step of the pool (its kill points), then the next
 *     process takes the lock over and the reap leaves the heap exact;
 *   - exipc_heap_stat on a read-only mapping of the segment.
 * After every child the parent checks the whole heap (tables.h) and that
 * exipc_heap_stat's free pages are the whole arena again. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "t.h"
#include "tables.h"

static const char *dom;
static struct exipc_options opts = {.size = 16 << 20};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* About log-uniform in [lo, hi]: a power of two picked uniformly, then a
 * uniform size within it. */
static size_t rnd_size(size_t lo, size_t hi)
{
    unsigned l0 = 63 - (unsigned)__builtin_clzll(lo), l1 = 63 - (unsigned)__builtin_clzll(hi);
    unsigned l = l0 + (unsigned)(rnd() % (l1 - l0 + 1));
    size_t n = ((size_t)1 << l) + (size_t)(rnd() % ((size_t)1 << l));
    return n < lo ? lo : n > hi ? hi : n;
}

/* Writes seed at every 64th byte that leaves room for a whole word before
 * the last 8 bytes, and into the last 8 (or fewer) bytes. */
static void pattern(unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i + 16 <= n; i += 64)
        memcpy(p + i, &seed, 8);
    memcpy(p + n - (n < 8 ? n : 8), &seed, n < 8 ? n : 8);
}
static int pattern_ok(const unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i + 16 <= n; i += 64)
        if (memcmp(p + i, &seed, 8) != 0)
            return 0;
    return memcmp(p + n - (n < 8 ? n : 8), &seed, n < 8 ? n : 8) == 0;
}

/* The parent's check after a child: tables consistent, nothing used, the
 * whole arena free in one run. */
static void check_empty(exipc_domain_t *d, const char *after)
{
    struct tables_report r;
    const char *why = tables_check(d, &r);
    struct exipc_heap_stat hs;
    struct exipc_stat st;
    CHECK_RC(exipc_heap_stat(d, &hs), 0);
    CHECK_RC(exipc_stat(d, &st), 0);
    int ok = why == NULL && st.heap_blocks_used == 0 && hs.pages_free == hs.pages_total &&
             hs.largest_free_run == hs.pages_total * hs.page_size && r.slabs == 0 && r.large == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "after %s: %s; blocks used %llu, pages free %llu of %llu, largest run %llu, slabs %llu\n", after,
                why ? why : "tables consistent", (unsigned long long)st.heap_blocks_used,
                (unsigned long long)hs.pages_free, (unsigned long long)hs.pages_total,
                (unsigned long long)hs.largest_free_run, (unsigned long long)r.slabs);
}

static const char *kill_at;
static int kill_after, kill_hits;

static void kill_here(const char *point)
{
    if (kill_at != NULL && strcmp(point, kill_at) == 0 && ++kill_hits >= kill_after)
        raise(SIGKILL);
}

/* Runs fn(arg) in a child with its own domain handle; returns its exit
 * status (or 128 + signal). */
static int in_child(int (*fn)(exipc_domain_t *, long), long arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        exipc__kill_point = kill_here; /* before the open, which reaps */
        exipc_domain_t *d = NULL;
        if (exipc_open(dom, NULL, &d) != 0)
            _exit(90);
        int rc = fn(d, arg);
        exipc_close(d);
        fflush(NULL);
        _exit(rc);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- rotations ------------------------------------------------------------ */

#define MAXH 300000
static exipc_handle_t hs_[MAXH];
static size_t ls_[MAXH];

/* Fills with blocks of `size` until -ENOMEM; frees all; exit 0 if the
 * occupancy (bytes asked / arena) reached the floor for that size. */
static int fill_free(exipc_domain_t *d, long size)
{
    size_t n = 0, bytes = 0;
    int rc;
    while (n < MAXH && (rc = exipc_alloc(d, (size_t)size, &hs_[n])) == 0) {
        unsigned char *p = exipc_ptr(d, hs_[n], NULL);
        if (p == NULL)
            return 10;
        pattern(p, (size_t)size, hs_[n]);
        bytes += (size_t)size;
        n++;
    }
    if (rc != -ENOMEM)
        return 11;
    double occ = (double)bytes / (double)opts.size;
    /* The class rounding costs at most a quarter; page runs of one large
     * size waste at most the tail of the arena. */
    double floor = size < 64 ? 0.01 : size > (4 << 20) ? 0.45 : 0.70;
    printf("# fill %8ld B: %7zu blocks, occupancy %.3f\n", size, n, occ);
    for (size_t i = n; i-- > 0;) {
        size_t k = rnd() % (i + 1);
        exipc_handle_t t = hs_[k];
        hs_[k] = hs_[i];
        hs_[i] = t;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = exipc_ptr(d, hs_[i], NULL);
        if (p == NULL || !pattern_ok(p, (size_t)size, hs_[i]))
            return 12; /* two blocks overlap, or one moved */
        if (exipc_free(d, hs_[i]) != 0)
            return 13;
    }
    return occ >= floor ? 0 : 14;
}

static void test_rotations(void)
{
    /* One size of every class (the class's own size and one byte above the
     * class below), large sizes, and the largest block; then back to small. */
    long sizes[80];
    int ns = 0;
    static const long cls[] = {64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
                               1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288,
                               14336, 16384};
    for (int i = 0; i < 33; i++)
        sizes[ns++] = i % 2 ? cls[i] : (i ? cls[i - 1] + 1 : 1);
    sizes[ns++] = 16385;
    sizes[ns++] = 65536;
    sizes[ns++] = 300000;
    sizes[ns++] = 1 << 20;
    sizes[ns++] = 8 << 20; /* half the arena: two of them */
    sizes[ns++] = 64;      /* and small again after the largest */
    sizes[ns++] = 1000;
    for (int i = 0; i < ns; i++) {
        int rc = in_child(fill_free, sizes[i]);
        CHECK_RC(rc, 0);
        if (rc != 0)
            fprintf(stderr, "fill/free of %ld B: child exit %d\n", sizes[i], rc);
        exipc_domain_t *d = NULL;
        if (exipc_open(dom, NULL, &d) == 0) {
            char what[64];
            snprintf(what, sizeof what, "fill/free of %ld B", sizes[i]);
            check_empty(d, what);
            exipc_close(d);
        }
    }
}

/* ---- the random mix --------------------------------------------------------- */

static int random_mix(exipc_domain_t *d, long ops)
{
    size_t n = 0, live = 0, fails = 0;
    size_t half = opts.size / 2;
    for (long i = 0; i < ops; i++) {
        size_t sz = rnd_size(64, 1 << 20);
        while (n > 0 && live + sz > half) {
            size_t k = rnd() % n;
            unsigned char *p = exipc_ptr(d, hs_[k], NULL);
            if (p == NULL || !pattern_ok(p, ls_[k], hs_[k]) || exipc_free(d, hs_[k]) != 0)
                return 20;
            live -= ls_[k];
            hs_[k] = hs_[--n];
            ls_[k] = ls_[n];
        }
        int rc = exipc_alloc(d, sz, &hs_[n]);
        if (rc == -ENOMEM) {
            fails++;
            continue;
        }
        if (rc != 0)
            return 21;
        pattern(exipc_ptr(d, hs_[n], NULL), sz, hs_[n]);
        ls_[n++] = sz;
        live += sz;
    }
    /* Then fill until the first -ENOMEM. */
    size_t sz;
    for (;;) {
        sz = rnd_size(64, 1 << 20);
        if (n == MAXH || exipc_alloc(d, sz, &hs_[n]) != 0)
            break;
        pattern(exipc_ptr(d, hs_[n], NULL), sz, hs_[n]);
        ls_[n++] = sz;
        live += sz;
    }
    double occ = (double)live / (double)opts.size;
    printf("# random mix: %ld ops at most half live, %zu failed; then filled to occupancy %.3f (%zu blocks) "
           "before the first -ENOMEM (for %zu B)\n",
           ops, fails, occ, n, sz);
    for (size_t k = 0; k < n; k++) {
        unsigned char *p = exipc_ptr(d, hs_[k], NULL);
        if (p == NULL || !pattern_ok(p, ls_[k], hs_[k]) || exipc_free(d, hs_[k]) != 0)
            return 22;
    }
    if (fails > (size_t)ops / 1000) /* the odd 1 MiB ask that finds no run long enough */
        return 23;
    return occ >= 0.90 ? 0 : 24; /* the goal: 90 % of the arena before the first -ENOMEM */
}

static void test_random_mix(void)
{
    int rc = in_child(random_mix, 200000);
    CHECK_RC(rc, 0);
    exipc_domain_t *d = NULL;
    if (exipc_open(dom, NULL, &d) == 0) {
        check_empty(d, "the random mix");
        exipc_close(d);
    }
}

/* ---- limits ------------------------------------------------------------------ */

static void test_limits(void)
{
    exipc_domain_t *d = NULL;
    if (exipc_open(dom, NULL, &d) != 0) {
        CHECK(0);
        return;
    }
    struct exipc_heap_stat hs;
    CHECK_RC(exipc_heap_stat(d, &hs), 0);
    CHECK(hs.largest_block == opts.size / 2); /* default: half the arena */
    CHECK(hs.nclasses == 34 && hs.cls[0].size == 64 && hs.cls[32].size == 16384 && hs.cls[33].size == hs.largest_block);
    /* Every class wastes at most a quarter of its size. */
    for (uint32_t c = 1; c + 1 < hs.nclasses; c++)
        CHECK((double)(hs.cls[c].size - hs.cls[c - 1].size - 1) / (double)hs.cls[c].size < 0.25);
    exipc_handle_t h1 = 0, h2 = 0, h3 = 0;
    CHECK_RC(exipc_alloc(d, hs.largest_block + 1, &h1), -EMSGSIZE);
    CHECK_RC(exipc_alloc(d, hs.largest_block, &h1), 0);
    CHECK_RC(exipc_alloc(d, hs.largest_block, &h2), 0);
    CHECK_RC(exipc_alloc(d, 64, &h3), -ENOMEM); /* fits some day, not now */
    CHECK_RC(exipc_free(d, h1), 0);
    CHECK_RC(exipc_alloc(d, 64, &h3), 0);
    CHECK_RC(exipc_alloc(d, hs.largest_block, &h1), -ENOMEM); /* a slab sits in its half */
    CHECK_RC(exipc_free(d, h3), 0); /* to the cache: the next large alloc flushes it first */
    CHECK_RC(exipc_alloc(d, hs.largest_block, &h1), 0);
    size_t len = 0;
    unsigned char *p1 = exipc_ptr(d, h1, &len), *p2 = exipc_ptr(d, h2, NULL);
    CHECK(p1 != NULL && p2 != NULL && len == hs.largest_block && (p1 + len <= p2 || p2 + len <= p1));
    CHECK_RC(exipc_free(d, h1), 0);
    CHECK_RC(exipc_free(d, h1), -EBADMSG); /* double free of a large block */
    CHECK(exipc_ptr(d, h1, NULL) == NULL);
    CHECK_RC(exipc_free(d, h2), 0);
    /* A handle into the middle of a large run, or of a slab past its last
     * block, is refused. */
    CHECK_RC(exipc_alloc(d, 100000, &h1), 0);
    CHECK(exipc_ptr(d, h1 + 1, NULL) == NULL && exipc_ptr(d, h1 + META_PER_PAGE, NULL) == NULL);
    CHECK_RC(exipc_free(d, h1 + META_PER_PAGE), -EBADMSG);
    CHECK_RC(exipc_free(d, h1), 0);
    CHECK_RC(exipc_alloc(d, 1000, &h1), 0); /* 4 blocks of 1 KiB in a slab of 1 page */
    CHECK(exipc_ptr(d, (h1 & ~0x3full) + 4, NULL) == NULL);
    CHECK_RC(exipc_free(d, h1), 0);
    exipc_close(d);
    /* Options: max_block above the arena or below 64 B is refused. */
    struct exipc_options o = {.size = 1 << 20, .max_block = (1 << 20) + 4096};
    exipc_domain_t *x = NULL;
    CHECK_RC(exipc_open(t_domain("heapopt"), &o, &x), -EINVAL);
    o.max_block = 100000; /* any size, not only powers of two */
    CHECK_RC(exipc_open(t_domain("heapopt"), &o, &x), 0);
    if (x) {
        CHECK_RC(exipc_alloc(x, 100001, &h1), -EMSGSIZE);
        CHECK_RC(exipc_alloc(x, 100000, &h1), 0);
        CHECK_RC(exipc_free(x, h1), 0);
        exipc_close(x);
        exipc_unlink(t_domain("heapopt"));
    }
    d = NULL;
    if (exipc_open(dom, NULL, &d) == 0) {
        check_empty(d, "the limits");
        exipc_close(d);
    }
}

/* ---- kills ------------------------------------------------------------------- */

/* Holds blocks of every class (some freed into its cache) and large ones,
 * and tells the parent through a pipe; then waits to be killed. */
static int hog(exipc_domain_t *d, long fd)
{
    exipc_handle_t h;
    for (size_t sz = 64; sz <= (1 << 20); sz = sz * 5 / 4 + 1)
        for (int k = 0; k < 3; k++) {
            if (exipc_alloc(d, sz, &h) != 0)
                return 30;
            if (k == 2 && exipc_free(d, h) != 0) /* into the cache, for the small ones */
                return 31;
        }
    struct exipc_stat st;
    exipc_stat(d, &st);
    if (write((int)fd, &st.heap_blocks_used, sizeof st.heap_blocks_used) != (ssize_t)sizeof st.heap_blocks_used)
        return 32;
    pause();
    return 0;
}

static void test_hog(void)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        CHECK(0);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        exipc_domain_t *d = NULL;
        if (exipc_open(dom, NULL, &d) != 0)
            _exit(90);
        _exit(hog(d, pfd[1]));
    }
    uint64_t held = 0;
    CHECK(read(pfd[0], &held, sizeof held) == (ssize_t)sizeof held);
    close(pfd[0]);
    close(pfd[1]);
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(dom, NULL, &d), 0);
    if (d == NULL)
        return;
    struct exipc_heap_stat hs;
    exipc_heap_stat(d, &hs);
    uint64_t used = 0, slabs = 0;
    for (uint32_t c = 0; c < hs.nclasses; c++) {
        used += hs.cls[c].blocks_used;
        slabs += hs.cls[c].slabs;
    }
    CHECK(held > 80 && used == held && hs.pages_free < hs.pages_total);
    printf("# hog holds %llu blocks in %llu slabs and large runs; %llu of %llu pages free\n", (unsigned long long)held,
           (unsigned long long)slabs, (unsigned long long)hs.pages_free, (unsigned long long)hs.pages_total);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(exipc_reap(d) == 1);
    check_empty(d, "the hog's kill");
    exipc_close(d);
}

/* A workload that passes every step of the pool: refill, carve, split,
 * large alloc, free, flush, slab return, coalesce. */
static int steps(exipc_domain_t *d, long arg)
{
    (void)arg;
    exipc_handle_t h[200];
    for (int round = 0; round < 50; round++) {
        int n = 0;
        for (int i = 0; i < 200; i++) {
            size_t sz = i % 7 == 0 ? 20000 + (size_t)i * 1000 : 64 + (size_t)(i % 40) * 50;
            if (exipc_alloc(d, sz, &h[n]) == 0)
                n++;
        }
        for (int i = 0; i < n; i++)
            exipc_free(d, h[i]);
        /* A burst of one class: the cache spills into the depot, and the
         * next burst's refills take from it. */
        for (int burst = 0; burst < 2; burst++) {
            n = 0;
            for (int i = 0; i < 200; i++)
                if (exipc_alloc(d, 64, &h[n]) == 0)
                    n++;
            for (int i = 0; i < n; i++)
                exipc_free(d, h[i]);
        }
        heap_cache_flush(d);
    }
    return 40; /* not killed: the point was never reached */
}

/* A second process that meets the dead holder's lock: it takes it over.
 * With kill_at "heap.takeover" it dies inside the takeover itself. */
static int after(exipc_domain_t *d, long arg)
{
    (void)arg;
    exipc_handle_t h;
    if (exipc_alloc(d, 100, &h) != 0 || exipc_free(d, h) != 0)
        return 41;
    return 0;
}

/* A one-way stream's blocks: the receiver's cache spills into the depot
 * and the sender's next refill takes them from there, whole; each check of
 * the tables holds throughout, and everything is free again at the end. */
static void test_depot(void)
{
    exipc_domain_t *rx = NULL, *tx = NULL;
    CHECK_RC(exipc_open(dom, NULL, &rx), 0);
    CHECK_RC(exipc_open(dom, NULL, &tx), 0);
    if (rx == NULL || tx == NULL)
        return;
    exipc_handle_t h[128], g[64];
    void *p[128], *q[64];
    CHECK_RC(exipc_alloc_batch(rx, 64, h, p, 64), 64);
    CHECK_RC(exipc_alloc_batch(rx, 64, h + 64, p + 64, 64), 64);
    for (int i = 0; i < 128; i++) {
        size_t len = 0;
        CHECK(exipc_ptr(rx, h[i], &len) == p[i] && len == 64);
        memset(p[i], i, 64);
    }
    CHECK_RC(exipc_free_batch(rx, h, 128), 128);
    CHECK(exipc_ptr(rx, h[0], NULL) == NULL); /* freed: refused at once */
    CHECK_RC(exipc_free_batch(rx, h, 1), -EBADMSG);
    uint32_t dn = D_HDR(rx)->pool.depot_n[0];
    CHECK(dn >= 64); /* what overflowed the cache went to the depot */
    const char *why = tables_check(rx, NULL);
    CHECK(why == NULL);
    if (why)
        fprintf(stderr, "after the spill: %s\n", why);
    CHECK_RC(exipc_alloc_batch(tx, 64, g, q, 64), 64);
    CHECK(D_HDR(tx)->pool.depot_n[0] < dn); /* the refill drew on the depot */
    int from_rx = 0;
    for (int i = 0; i < 64; i++) {
        size_t len = 0;
        CHECK(exipc_ptr(tx, g[i], &len) == q[i] && len == 64);
        CHECK(exipc_ptr(rx, g[i], NULL) == NULL); /* tx's now, not rx's */
        for (int j = 0; j < 128; j++)
            from_rx += (uint32_t)g[i] == (uint32_t)h[j]; /* the same block, a newer generation */
    }
    CHECK(from_rx == 64);
    why = tables_check(rx, NULL);
    CHECK(why == NULL);
    if (why)
        fprintf(stderr, "after the refill: %s\n", why);
    CHECK_RC(exipc_free_batch(tx, g, 64), 64);
    exipc_close(tx);
    exipc_close(rx); /* a close flushes the cache and the depot */
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(dom, NULL, &d), 0);
    if (d != NULL) {
        check_empty(d, "the depot test");
        exipc_close(d);
    }
}

static void test_kill_points(void)
{
    static const char *points[] = {"heap.split", "heap.carve", "heap.take", "heap.large", "heap.freed",
                                   "heap.slab_return", "heap.coalesce", "heap.takeover", "heap.sweep",
                                   "heap.depot_put",   "heap.depot_take"};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        for (int nth = 1; nth <= 7; nth += 3) {
            kill_hits = 0;
            kill_after = nth;
            int rc;
            if (strcmp(points[i], "heap.takeover") == 0) {
                kill_at = "heap.carve"; /* a holder dies inside the lock ... */
                rc = in_child(steps, 0);
                CHECK_RC(rc, 128 + SIGKILL);
                kill_at = points[i]; /* ... and the one taking it over dies too */
                kill_hits = 0;
                kill_after = 1;
                rc = in_child(after, 0);
            } else if (strcmp(points[i], "heap.sweep") == 0) {
                kill_at = "heap.carve"; /* a holder dies; its reaper dies in the sweep */
                rc = in_child(steps, 0);
                CHECK_RC(rc, 128 + SIGKILL);
                kill_at = points[i];
                kill_hits = 0;
                kill_after = 1;
                rc = in_child(after, 0); /* opening reaps */
            } else {
                kill_at = points[i];
                rc = in_child(steps, 0);
            }
            kill_at = NULL;
            CHECK_RC(rc, 128 + SIGKILL);
            if (rc != 128 + SIGKILL)
                fprintf(stderr, "kill at %s (hit %d): not killed\n", points[i], nth);
            exipc_domain_t *d = NULL;
            CHECK_RC(exipc_open(dom, NULL, &d), 0); /* reaps the dead */
            if (d == NULL)
                continue;
            exipc_reap(d);
            char what[80];
            snprintf(what, sizeof what, "a kill at %s (hit %d)", points[i], nth);
            /* Before anyone allocates: the reap alone made it exact. */
            check_empty(d, what);
            /* And the whole arena serves the largest block again. */
            exipc_handle_t a, b;
            CHECK_RC(exipc_alloc(d, opts.size / 2, &a), 0);
            CHECK_RC(exipc_alloc(d, opts.size / 2, &b), 0);
            exipc_free(d, a);
            exipc_free(d, b);
            exipc_close(d);
        }
    }
}

/* ---- forged pool-lock words ---------------------------------------------------- */

static int sit(exipc_domain_t *d, long fd)
{
    uint32_t id[2] = {d->slot, d->slot_gen};
    if (write((int)fd, id, sizeof id) != (ssize_t)sizeof id)
        return 50;
    pause();
    return 0;
}

static void test_forged_lock(void)
{
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(dom, NULL, &d), 0);
    if (d == NULL)
        return;
    uint64_t *lk = &D_HDR(d)->pool.lock;
    exipc_handle_t h;
    /* A word naming this very handle while none of its threads holds it:
     * taken over (and the pool rebuilt) without waiting for the timeout. */
    uint64_t rebuilds = D_HDR(d)->pool.rebuilds;
    *lk = ((uint64_t)d->slot_gen << 32) | (d->slot + 1);
    CHECK_RC(exipc_alloc(d, 20000, &h), 0);
    CHECK_RC(exipc_free(d, h), 0);
    CHECK(*lk == 0 && D_HDR(d)->pool.rebuilds == rebuilds + 1);
    /* Garbage (a slot out of range): taken over too. */
    *lk = 0xdeadbeefdeadbeefull;
    CHECK_RC(exipc_alloc(d, 20000, &h), 0);
    CHECK_RC(exipc_free(d, h), 0);
    /* A word naming another live process: -EPROTO after the timeout, then
     * at once while it stays; once that process is dead, taken over. */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        exipc_domain_t *c = NULL;
        if (exipc_open(dom, NULL, &c) != 0)
            _exit(90);
        _exit(sit(c, pfd[1]));
    }
    uint32_t id[2] = {0, 0};
    CHECK(read(pfd[0], id, sizeof id) == (ssize_t)sizeof id);
    close(pfd[0]);
    close(pfd[1]);
    *lk = ((uint64_t)id[1] << 32) | (id[0] + 1);
    CHECK_RC(exipc_alloc(d, 20000, &h), -EPROTO);
    CHECK_RC(exipc_alloc(d, 20000, &h), -EPROTO);
    CHECK(*lk == (((uint64_t)id[1] << 32) | (id[0] + 1))); /* nothing taken from a live holder */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK_RC(exipc_alloc(d, 20000, &h), 0);
    CHECK_RC(exipc_free(d, h), 0);
    CHECK(exipc_reap(d) == 1);
    check_empty(d, "forged pool-lock words");
    exipc_close(d);
}

/* ---- a read-only view ------------------------------------------------------------ */

static void test_stat_readonly(void)
{
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(dom, NULL, &d), 0);
    if (d == NULL)
        return;
    exipc_handle_t h[40];
    for (int i = 0; i < 40; i++)
        CHECK_RC(exipc_alloc(d, i < 20 ? 100 : 50000, &h[i]), 0);
    struct exipc_heap_stat a, b;
    CHECK_RC(exipc_heap_stat(d, &a), 0);
    /* The same call on a copy of the domain struct whose base is a PROT_READ
     * mapping: it must not write (a write would SIGSEGV). */
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", dom);
    int fd = open(path, O_RDONLY);
    void *ro = fd >= 0 ? mmap(NULL, d->L.total_size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    CHECK(ro != MAP_FAILED);
    if (ro != MAP_FAILED) {
        exipc_domain_t *v = malloc(sizeof *v);
        memcpy(v, d, sizeof *v);
        v->base = ro;
        CHECK_RC(exipc_heap_stat(v, &b), 0);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
        free(v);
        munmap(ro, d->L.total_size);
    }
    if (fd >= 0)
        close(fd);
    CHECK(a.cls[3].blocks_used == 20 && a.cls[3].size == 112 && a.cls[3].slabs == 1 && a.cls[33].blocks_used == 20);
    CHECK(a.pages_free == a.pages_total - 7 - 20 * 13); /* a slab of 112 B is 7 pages (256 blocks); 50000 B is 13 */
    for (int i = 0; i < 40; i++)
        CHECK_RC(exipc_free(d, h[i]), 0);
    heap_cache_flush(d);
    check_empty(d, "the read-only stat");
    exipc_close(d);
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = "test_heap";
    (void)argv;
    dom = t_domain("heap");
    /* A fixed seed: the random mix is the same trace on every run. */
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(dom, &opts, &d), 0); /* kept open: the domain lives on */
    if (d == NULL)
        DONE();
    check_empty(d, "create");
    test_limits();
    test_rotations();
    test_random_mix();
    test_hog();
    test_depot();
    test_kill_points();
    test_forged_lock();
    test_stat_readonly();
    check_empty(d, "everything");
    exipc_close(d);
    exipc_unlink(dom);
    DONE();
}

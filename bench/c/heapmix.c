/* heapmix.c — the heap under a random size mix, beside glibc malloc on the
 * same trace; and a small alloc/free loop for callgrind.
 *
 *   heapmix [-size BYTES] [-ops N] [-seed S] [-live F] [-min B] [-max B]
 *     Phase 1: N allocations of sizes log-uniform in [min, max]; before each,
 *     random live blocks are freed until the new one keeps the live bytes
 *     under F * size. Phase 2: allocate (same size law) without freeing until
 *     the first -ENOMEM. Prints the occupancy reached (bytes asked and live /
 *     arena) and how many phase-1 allocations failed. The same trace (every
 *     size, every free, in order, up to that first -ENOMEM) then runs through
 *     glibc malloc; its occupancy is the live bytes over what malloc holds
 *     from the system then (mallinfo2: arena + mmapped), its own footprint.
 *   heapmix -loop N [-bytes B]
 *     N x (exipc_alloc + exipc_free) of B bytes (default 64) in one process:
 *     run under `valgrind --tool=callgrind` and divide the instructions by N.
 *
 * One line of key=value per figure, for the bench report and for people. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../native/exipc.h"

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* About log-uniform: a power of two picked uniformly, then uniform inside. */
static size_t rnd_size(size_t lo, size_t hi)
{
    unsigned l0 = 63 - (unsigned)__builtin_clzll(lo), l1 = 63 - (unsigned)__builtin_clzll(hi);
    unsigned l = l0 + (unsigned)(rnd() % (l1 - l0 + 1));
    size_t n = ((size_t)1 << l) + (size_t)(rnd() % ((size_t)1 << l));
    return n < lo ? lo : n > hi ? hi : n;
}

/* The trace: op >= 0 allocates op bytes into the next slot; op < 0 frees
 * the block in slot -op-1 (slots are never reused). */
static long long *trace;
static size_t ntrace, captrace;
static void rec(long long op)
{
    if (ntrace == captrace) {
        captrace = captrace ? captrace * 2 : 1 << 20;
        trace = realloc(trace, captrace * sizeof *trace);
        if (trace == NULL)
            exit(2);
    }
    trace[ntrace++] = op;
}

int main(int argc, char **argv)
{
    uint64_t size = 16 << 20, seed = 1, ops = 200000, loop = 0, bytes = 64, lo = 64, hi = 1 << 20;
    double livef = 0.5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "-size"))
            size = strtoull(v, NULL, 0);
        else if (!strcmp(k, "-ops"))
            ops = strtoull(v, NULL, 0);
        else if (!strcmp(k, "-seed"))
            seed = strtoull(v, NULL, 0);
        else if (!strcmp(k, "-live"))
            livef = strtod(v, NULL);
        else if (!strcmp(k, "-loop"))
            loop = strtoull(v, NULL, 0);
        else if (!strcmp(k, "-bytes"))
            bytes = strtoull(v, NULL, 0);
        else if (!strcmp(k, "-min"))
            lo = strtoull(v, NULL, 0);
        else if (!strcmp(k, "-max"))
            hi = strtoull(v, NULL, 0);
        else {
            fprintf(stderr, "heapmix: unknown flag %s\n", k);
            return 2;
        }
    }
    char name[64];
    snprintf(name, sizeof name, "heapmix-%d", (int)getpid());
    struct exipc_options o = {.size = size};
    exipc_domain_t *d = NULL;
    int rc = exipc_open(name, &o, &d);
    if (rc != 0) {
        fprintf(stderr, "heapmix: open: %s\n", exipc_strerror(rc));
        return 1;
    }
    exipc_unlink(name); /* nothing left in /dev/shm whatever happens */
    if (loop) {
        exipc_handle_t h;
        for (uint64_t i = 0; i < loop; i++) {
            if (exipc_alloc(d, bytes, &h) != 0 || exipc_free(d, h) != 0)
                return 1;
        }
        printf("loop=%llu bytes=%llu\n", (unsigned long long)loop, (unsigned long long)bytes);
        exipc_close(d);
        return 0;
    }
    rng = seed * 0x9e3779b97f4a7c15ull | 1;
    size_t cap = ops + (size / lo) + 16;
    exipc_handle_t *hs = malloc(cap * sizeof *hs);
    size_t *ls = malloc(cap * sizeof *ls), *slot = malloc(cap * sizeof *slot);
    size_t n = 0, nslots = 0, live = 0, fails = 0;
    uint64_t bound = (uint64_t)(livef * (double)size);
    for (uint64_t i = 0; i < ops; i++) {
        size_t sz = rnd_size(lo, hi);
        while (n > 0 && live + sz > bound) {
            size_t k = rnd() % n;
            if (exipc_free(d, hs[k]) != 0)
                return 1;
            rec(-(long long)slot[k] - 1);
            live -= ls[k];
            n--;
            hs[k] = hs[n], ls[k] = ls[n], slot[k] = slot[n];
        }
        rc = exipc_alloc(d, sz, &hs[n]);
        if (rc == -ENOMEM) {
            fails++;
            continue;
        }
        if (rc != 0)
            return 1;
        rec((long long)sz);
        ls[n] = sz, slot[n] = nslots++;
        live += sz;
        n++;
    }
    size_t sz = 0;
    for (;;) {
        sz = rnd_size(lo, hi);
        if (n == cap || exipc_alloc(d, sz, &hs[n]) != 0)
            break;
        rec((long long)sz);
        ls[n] = sz, slot[n] = nslots++;
        live += sz;
        n++;
    }
    struct exipc_heap_stat st;
    exipc_heap_stat(d, &st);
    double occ = (double)live / (double)size;
    printf("exipc_occupancy=%.4f live=%zu arena=%llu blocks=%zu phase1_failed=%zu first_enomem_ask=%zu "
           "pages_free=%llu largest_free_run=%llu\n",
           occ, live, (unsigned long long)size, n, fails, sz, (unsigned long long)st.pages_free,
           (unsigned long long)st.largest_free_run);
    exipc_close(d);

    /* The same trace through glibc malloc. */
    void **ps = calloc(nslots + 1, sizeof *ps);
    size_t glive = 0, gslots = 0, peak_fp = 0;
    size_t *gl = calloc(nslots + 1, sizeof *gl);
    for (size_t i = 0; i < ntrace; i++) {
        long long op = trace[i];
        if (op >= 0) {
            ps[gslots] = malloc((size_t)op);
            if (ps[gslots] == NULL)
                return 1;
            memset(ps[gslots], 1, (size_t)op < 64 ? (size_t)op : 64);
            gl[gslots++] = (size_t)op;
            glive += (size_t)op;
        } else {
            size_t k = (size_t)(-op - 1);
            free(ps[k]);
            glive -= gl[k];
        }
        if ((i & 1023) == 0) {
            struct mallinfo2 mi = mallinfo2();
            if (mi.arena + mi.hblkhd > peak_fp)
                peak_fp = mi.arena + mi.hblkhd;
        }
    }
    struct mallinfo2 mi = mallinfo2();
    size_t fp = mi.arena + mi.hblkhd;
    if (fp > peak_fp)
        peak_fp = fp;
    printf("glibc_occupancy=%.4f live=%zu footprint=%zu peak_footprint=%zu peak_occupancy=%.4f\n",
           (double)glive / (double)fp, glive, fp, peak_fp, (double)glive / (double)peak_fp);
    return 0;
}

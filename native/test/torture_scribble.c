/*
 * torture_scribble.c — corruption torture: a hostile process scribbles on a
 * live domain while victim processes run the whole API against it.
 *
 * The promise under test (docs/safety.md, "Safety"): whatever a process that maps
 * the domain writes into it, another exipc process never dies by a signal,
 * never touches memory outside the segment, never hangs past its timeout, and
 * gets from every call either success or a documented error code.
 *
 * The run is cut into epochs. Each epoch creates a fresh domain with random
 * options, picks one region to attack (header, queue-manager lock, tables,
 * ring indices, ring slots, sleeping flags, doorbell bitmaps, free-list
 * heads, slab table, block metadata, payloads, or all of them), and starts:
 *   - one scribbler (`torture_scribble scribble ...`): maps the domain's file
 *     raw and writes random bytes, plausible integers and bit flips into the
 *     region, in bursts with pauses (it never truncates the file: see docs/safety.md,
 *     "Safety", for that limit);
 *   - two victims (`torture_scribble victim ...`): each loops open, listen,
 *     connect, accept, alloc, ptr, send, recv, poll, free, stat, reap and
 *     close, on two domain handles (two process slots), with timeouts.
 * Each victim records every call's result by (call, errno) in a small shared
 * memfd page, and the call it is in with its start time: the parent is the
 * watchdog. A call that runs past its own timeout plus a wide allowance
 * (CALL_SLACK_NS, for the 2 s queue-manager lock and the 5 s wait for a
 * creator) counts as a hang; the parent then kills the victim. At the end of
 * the epoch the scribbler is killed and the victims are asked (SIGUSR1) to
 * finish; each must exit 0 (not by a signal) and report no violation:
 *   - a return value that the call does not document,
 *   - a block pointer outside the arena of the victim's own mapping,
 *   - stat counters beyond the domain's table sizes.
 *
 *   torture_scribble [-t SECONDS] [-e EPOCH_MS] [-s SEED] [-r REGION]
 *
 * SECONDS defaults to $EXIPC_TORTURE_SECONDS, else 30. A failing run prints
 * its seed: -s SEED -r REGION replays the same choices (the interleaving of
 * the processes differs from run to run).
 *
 * Prints one line per epoch and totals (rounds, calls, errors by code),
 * closing with `N passed, N failed` (epochs). Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../exipc_internal.h"
#include "../exipc_testhook.h"

#define SEC 1000000000ll
#define MS 1000000ll
#define CALL_SLACK_NS (15 * SEC)
#define NVICTIMS 2
#define NERR 134

/* ---- calls and their documented results ----------------------------------- */

enum call {
    C_OPEN, C_LISTEN, C_CONNECT, C_ACCEPT, C_ALLOC, C_PTR, C_FREE, C_SEND, C_SEND_BATCH,
    C_RECV, C_RECV_BATCH, C_POLL, C_STAT, C_REAP, C_CHAN_CLOSE, C_LISTENER_CLOSE, C_CLOSE,
    NCALLS
};
static const char *call_name[NCALLS] = {
    "open", "listen", "connect", "accept", "alloc", "ptr", "free", "send", "send_batch",
    "recv", "recv_batch", "poll", "stat", "reap", "chan_close", "listener_close", "close",
};
/* Errors each call may return under corruption (0 / counts always allowed). */
static const int allowed[NCALLS][12] = {
    [C_OPEN] = {EPROTO, ENOTSUP, EMFILE, ETIMEDOUT, EACCES},
    [C_LISTEN] = {EEXIST, EMFILE, ETIMEDOUT, EPROTO},
    [C_CONNECT] = {ENOENT, EMFILE, ETIMEDOUT, EPROTO},
    [C_ACCEPT] = {EAGAIN, ETIMEDOUT, EPROTO},
    [C_ALLOC] = {ENOMEM, EPROTO},
    [C_PTR] = {EBADMSG},
    [C_FREE] = {EBADMSG},
    [C_SEND] = {EAGAIN, EPIPE, EBADMSG, EPROTO},
    [C_SEND_BATCH] = {EAGAIN, EPIPE, EBADMSG, EPROTO},
    [C_RECV] = {EAGAIN, ETIMEDOUT, EPIPE, EBADMSG, EPROTO},
    [C_RECV_BATCH] = {EAGAIN, ETIMEDOUT, EPIPE, EBADMSG, EPROTO},
    [C_POLL] = {EAGAIN, ETIMEDOUT},
    [C_STAT] = {0},
    [C_REAP] = {ETIMEDOUT, EPROTO},
    [C_CHAN_CLOSE] = {0},
    [C_LISTENER_CLOSE] = {0},
    [C_CLOSE] = {0},
};

/* Shared between a victim and the parent (a memfd, inherited across exec). */
struct board {
    volatile int64_t call_start; /* 0: not in a call */
    volatile int64_t call_budget;
    volatile int32_t call;
    volatile int32_t done;
    volatile uint64_t rounds;
    volatile uint64_t violations;
    volatile uint64_t garbled;   /* payloads that changed under us: expected */
    volatile uint64_t counts[NCALLS][NERR];
    char first_violation[512];
};

/* ---- regions ---------------------------------------------------------------- */

enum region {
    R_PARAMS, R_COUNTERS, R_LOCK, R_FREELIST, R_PROCS, R_SERVICES, R_CHANS, R_RING_IDX,
    R_RING_SLOTS, R_RING_SLEEP, R_READY, R_SLABS, R_META, R_ARENA, R_ALL, NREGIONS
};
static const char *region_name[NREGIONS] = {
    "params", "counters", "lock", "freelist", "procs", "services", "chans", "ring-idx",
    "ring-slots", "ring-sleep", "ready", "slabs", "meta", "arena", "all",
};

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static uint64_t rndn(uint64_t n) { return n ? rnd() % n : 0; }

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / SEC, ns % SEC};
    nanosleep(&ts, NULL);
}

static void parse_opts(const char *s, struct exipc_options *o)
{
    unsigned long long size;
    unsigned procs, chans, ring, maxb;
    memset(o, 0, sizeof *o);
    if (sscanf(s, "%llu,%u,%u,%u,%u", &size, &procs, &chans, &ring, &maxb) == 5) {
        o->size = size;
        o->max_procs = procs;
        o->max_chans = chans;
        o->ring_capacity = ring;
        o->max_block = maxb;
    }
}

/* ---- scribbler ---------------------------------------------------------------- */

struct span {
    uint64_t off, len;
    unsigned align; /* 4 or 8: width of the words of this region */
};

/* The byte spans of region r. */
static int region_spans(const struct exipc__layout *L, enum region r, struct span *sp)
{
    int n = 0;
    switch (r) {
    case R_PARAMS:
        sp[n++] = (struct span){0, L->hdr_params_size, 8};
        break;
    case R_COUNTERS:
        sp[n++] = (struct span){L->hdr_counters, L->hdr_slabs_carved - L->hdr_counters, 4};
        break;
    case R_LOCK:
        sp[n++] = (struct span){L->hdr_lock, L->hdr_lock_size, 4};
        break;
    case R_FREELIST:
        /* The heap's page pool: its lock word, counters, bins, partial lists. */
        sp[n++] = (struct span){L->hdr_slabs_carved, L->hdr_pool_size, 4};
        sp[n++] = (struct span){L->hdr_freelist, L->hdr_pool_size - (L->hdr_freelist - L->hdr_slabs_carved), 4};
        break;
    case R_PROCS:
        sp[n++] = (struct span){L->off_procs, L->max_procs * L->proc_size, 4};
        break;
    case R_SERVICES:
        sp[n++] = (struct span){L->off_services, L->max_chans * L->svc_size, 4};
        break;
    case R_CHANS:
        sp[n++] = (struct span){L->off_chans, L->max_chans * L->chan_size, 4};
        break;
    case R_RING_IDX:
    case R_RING_SLOTS:
    case R_RING_SLEEP:
        for (uint64_t i = 0; i < 2 * L->max_chans && n < 64; i++) {
            uint64_t base = L->off_rings + i * L->ring_stride;
            if (r == R_RING_IDX) {
                sp[n++] = (struct span){base + L->ring_tail, 8, 8};
                sp[n++] = (struct span){base + L->ring_head, 8, 8};
            } else if (r == R_RING_SLOTS) {
                sp[n++] = (struct span){base + L->ring_slots, L->ring_capacity * 8, 8};
            } else {
                sp[n++] = (struct span){base + L->ring_sleeping, 4, 4};
            }
        }
        break;
    case R_READY:
        sp[n++] = (struct span){L->off_ready, L->max_procs * L->ready_stride, 8};
        break;
    case R_SLABS:
        sp[n++] = (struct span){L->off_slabs, L->nslabs * L->page_desc_size, 4}; /* the page table */
        break;
    case R_META:
        sp[n++] = (struct span){L->off_meta, L->ngranules * L->meta_size, 8};
        break;
    case R_ARENA:
        sp[n++] = (struct span){L->off_arena, L->arena_size, 8};
        break;
    case R_ALL:
    default:
        sp[n++] = (struct span){L->hdr_counters, L->off_arena - L->hdr_counters, 8};
        break;
    }
    return n;
}

/* A value a buggy or hostile peer might plausibly write into a word. */
static uint64_t plausible(const struct exipc__layout *L, uint64_t cur)
{
    switch (rndn(14)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 2;
    case 3: return ~0ull;
    case 4: return 0x7fffffffull;
    case 5: return 0x80000000ull;
    case 6: return cur + 1;
    case 7: return cur - 1;
    case 8: return cur + L->ring_capacity;
    case 9: return cur ^ (1ull << rndn(64));
    case 10: return rndn(L->max_chans + 2);
    case 11: return rndn(L->ngranules + 2) | (rndn(4) << 32); /* handle- or link-like */
    case 12: return (rndn(3) << 30) | rndn(2 * L->max_chans + 2); /* owner-like */
    default: return rnd();
    }
}

static int scribbler_main(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    const char *name = argv[2];
    struct exipc_options o;
    parse_opts(argv[3], &o);
    enum region region = (enum region)atoi(argv[4]);
    rng_state = strtoull(argv[5], NULL, 0) | 1;
    struct exipc__layout L;
    if (exipc__layout_of(&o, &L) != 0)
        return 2;
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 2;
    uint8_t *m = mmap(NULL, L.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return 2;
    uint8_t params[4096];
    memcpy(params, m, L.hdr_params_size);
    struct span sp[64];
    for (uint64_t burst = 0;; burst++) {
        enum region r = region == R_ALL && rndn(2) ? (enum region)rndn(R_ALL) : region;
        int n = region_spans(&L, r, sp);
        uint64_t writes = 1 + rndn(rndn(4) == 0 ? 200 : 8);
        for (uint64_t w = 0; w < writes; w++) {
            struct span s = sp[rndn((uint64_t)n)];
            if (s.len == 0)
                continue;
            uint64_t off = s.off + rndn(s.len);
            switch (rndn(4)) {
            case 0: { /* random bytes */
                uint64_t k = 1 + rndn(16);
                for (uint64_t i = 0; i < k && off + i < s.off + s.len; i++)
                    m[off + i] = (uint8_t)rnd();
                break;
            }
            case 1: { /* bit flip */
                m[off] ^= (uint8_t)(1u << rndn(8));
                break;
            }
            default: { /* a plausible word */
                off &= ~(uint64_t)(s.align - 1);
                if (off + s.align > s.off + s.len)
                    break;
                if (s.align == 8) {
                    uint64_t *p = (uint64_t *)(m + off);
                    __atomic_store_n(p, plausible(&L, __atomic_load_n(p, __ATOMIC_RELAXED)), __ATOMIC_RELAXED);
                } else {
                    uint32_t *p = (uint32_t *)(m + off);
                    __atomic_store_n(p, (uint32_t)plausible(&L, __atomic_load_n(p, __ATOMIC_RELAXED)),
                                     __ATOMIC_RELAXED);
                }
                break;
            }
            }
        }
        /* Attacks on the header alternate with repairs, so that opens both
         * fail and succeed. */
        if (r == R_PARAMS && rndn(2))
            memcpy(m, params, L.hdr_params_size);
        /* Mostly short pauses; now and then a quiet spell for the victims. */
        if (rndn(16) == 0)
            sleep_ns((int64_t)rndn(20) * MS);
        else
            sleep_ns((int64_t)rndn(300) * 1000);
    }
}

/* ---- victim --------------------------------------------------------------------- */

static struct board *B;
static volatile sig_atomic_t stop_flag;
static int victim_id;

static void on_usr1(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (B->violations++ == 0)
        snprintf(B->first_violation, sizeof B->first_violation, "%s", buf);
    if (B->violations <= 10)
        fprintf(stderr, "victim %d: VIOLATION: %s\n", victim_id, buf);
}

static void enter(enum call c, int64_t timeout_ns)
{
    B->call = c;
    B->call_budget = (timeout_ns > 0 ? timeout_ns : 0) + CALL_SLACK_NS;
    __atomic_store_n(&B->call_start, mono(), __ATOMIC_SEQ_CST);
}

/* Records rc of call c and checks it is documented. Returns rc. */
static int leave(enum call c, int rc)
{
    __atomic_store_n(&B->call_start, 0, __ATOMIC_SEQ_CST);
    if (rc >= 0) {
        B->counts[c][0]++;
        return rc;
    }
    int e = -rc;
    B->counts[c][e < NERR ? e : NERR - 1]++;
    for (int i = 0; i < 12 && allowed[c][i] != 0; i++)
        if (allowed[c][i] == e)
            return rc;
    violation("%s returned %d (%s), not a documented error", call_name[c], rc, exipc_strerror(rc));
    return rc;
}

/* exipc_ptr, checked: the block must lie inside d's arena. */
static uint8_t *vptr(exipc_domain_t *d, exipc_handle_t h, size_t *len)
{
    enter(C_PTR, 0);
    size_t n = 0;
    uint8_t *p = exipc_ptr(d, h, &n);
    leave(C_PTR, p ? 0 : -EBADMSG);
    if (p == NULL)
        return NULL;
    uint8_t *lo = d->base + d->L.off_arena, *hi = d->base + d->L.total_size;
    if (p < lo || p >= hi || n == 0 || n > d->L.max_block || n > (size_t)(hi - p)) {
        violation("ptr(%#" PRIx64 ") = %p len %zu, outside the arena [%p, %p)", h, (void *)p, n, (void *)lo,
                  (void *)hi);
        return NULL;
    }
    *len = n;
    return p;
}

static void fill(uint8_t *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(tag + i * 31);
}

static bool intact(const uint8_t *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(tag + i * 31))
            return false;
    return true;
}

static int64_t pick_timeout(void)
{
    static const int64_t t[] = {0, 0, 100000, 1 * MS, 3 * MS};
    return t[rndn(sizeof t / sizeof t[0])];
}

static int vopen(const char *name, const struct exipc_options *o, exipc_domain_t **d)
{
    enter(C_OPEN, 0);
    return leave(C_OPEN, exipc_open(name, rndn(2) ? o : NULL, d));
}

static void vclose(exipc_domain_t *d)
{
    enter(C_CLOSE, 0);
    leave(C_CLOSE, exipc_close(d));
}

/* Receives what is there on c (domain d) and frees it. */
static void drain(exipc_domain_t *d, exipc_chan_t *c, int64_t timeout)
{
    exipc_handle_t hs[16];
    int n;
    if (rndn(2)) {
        enter(C_RECV_BATCH, timeout);
        n = leave(C_RECV_BATCH, exipc_recv_batch(c, hs, 1 + rndn(16), timeout));
    } else {
        enter(C_RECV, timeout);
        n = leave(C_RECV, exipc_recv(c, hs, timeout));
        if (n == 0)
            n = 1;
    }
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        uint8_t *p = vptr(d, hs[i], &len);
        if (p == NULL)
            continue;
        uint64_t tag;
        if (len >= 8 && (memcpy(&tag, p, 8), !intact(p + 8, len - 8, tag)))
            B->garbled++;
        enter(C_FREE, 0);
        leave(C_FREE, exipc_free(d, hs[i]));
    }
}

/* Allocates up to k blocks on d and sends them on c. */
static void pump(exipc_domain_t *d, exipc_chan_t *c, uint32_t max_block, int k)
{
    exipc_handle_t hs[16];
    int n = 0;
    for (int i = 0; i < k && n < 16; i++) {
        size_t size = 1 + rndn(rndn(4) == 0 ? max_block : 256);
        exipc_handle_t h;
        enter(C_ALLOC, 0);
        if (leave(C_ALLOC, exipc_alloc(d, size, &h)) != 0)
            break;
        size_t len = 0;
        uint8_t *p = vptr(d, h, &len);
        if (p != NULL && len >= 8) {
            uint64_t tag = rnd();
            memcpy(p, &tag, 8);
            fill(p + 8, len - 8, tag);
        }
        hs[n++] = h;
    }
    int sent = 0;
    if (n > 0 && rndn(2)) {
        enter(C_SEND_BATCH, 0);
        int rc = leave(C_SEND_BATCH, exipc_send_batch(c, hs, (size_t)n));
        sent = rc > 0 ? rc : 0;
    } else {
        for (; sent < n; sent++) {
            enter(C_SEND, 0);
            if (leave(C_SEND, exipc_send(c, hs[sent])) != 0)
                break;
        }
    }
    for (int i = sent; i < n; i++) {
        enter(C_FREE, 0);
        leave(C_FREE, exipc_free(d, hs[i]));
    }
}

static void check_stat(exipc_domain_t *d)
{
    struct exipc_stat st;
    enter(C_STAT, 0);
    if (leave(C_STAT, exipc_stat(d, &st)) != 0)
        return;
    if (st.procs_alive > d->L.max_procs || st.chans_bound > d->L.max_chans || st.services > d->L.max_chans ||
        st.heap_bytes_total != d->L.arena_size || st.heap_blocks_used > d->L.nmeta ||
        st.heap_bytes_used > d->L.arena_size)
        violation("stat out of range: procs %u chans %u services %u blocks %" PRIu64 " bytes %" PRIu64,
                  st.procs_alive, st.chans_bound, st.services, st.heap_blocks_used, st.heap_bytes_used);
}

static void victim_round(const char *name, const struct exipc_options *o, uint64_t round)
{
    exipc_domain_t *a = NULL, *b = NULL;
    if (vopen(name, o, &a) != 0) {
        sleep_ns(1 * MS);
        return;
    }
    if (vopen(name, o, &b) != 0) {
        vclose(a);
        sleep_ns(1 * MS);
        return;
    }
    char svc[48];
    snprintf(svc, sizeof svc, "v%d-%u", victim_id, (unsigned)(round % 3));
    exipc_listener_t *l = NULL;
    exipc_chan_t *cc = NULL, *sc = NULL;
    enter(C_LISTEN, 0);
    leave(C_LISTEN, exipc_listen(a, svc, &l));
    int64_t t = pick_timeout();
    enter(C_CONNECT, t);
    leave(C_CONNECT, exipc_connect(b, svc, t, &cc));
    if (l != NULL) {
        t = pick_timeout();
        enter(C_ACCEPT, t);
        leave(C_ACCEPT, exipc_accept(l, t, &sc));
    }
    uint32_t maxb = a->L.max_block < 4096 ? a->L.max_block : 4096;
    for (int it = 0; it < 8 && !stop_flag; it++) {
        if (cc != NULL)
            pump(b, cc, maxb, 1 + (int)rndn(it == 0 ? 40 : 6)); /* sometimes fill the ring */
        if (sc != NULL) {
            drain(a, sc, pick_timeout());
            pump(a, sc, maxb, 1 + (int)rndn(3));
        }
        if (cc != NULL)
            drain(b, cc, pick_timeout());
        if (rndn(4) == 0 && (cc != NULL || l != NULL)) {
            struct exipc_pollitem items[2];
            size_t n = 0;
            if (cc != NULL)
                items[n++] = (struct exipc_pollitem){.chan = cc};
            /* A listener only in a's poll: b's items belong to b. */
            t = pick_timeout();
            enter(C_POLL, t);
            int rc = leave(C_POLL, exipc_poll(b, items, n, t));
            (void)rc;
            if (l != NULL) {
                items[0] = (struct exipc_pollitem){.listener = l};
                n = 1;
                if (sc != NULL)
                    items[n++] = (struct exipc_pollitem){.chan = sc};
                enter(C_POLL, t);
                leave(C_POLL, exipc_poll(a, items, n, t));
            }
        }
        /* Handles that are not ours, or not blocks at all. */
        if (rndn(4) == 0) {
            exipc_handle_t h = rnd() & 0x7fffffffffffffffull;
            size_t len;
            vptr(a, h, &len);
            enter(C_FREE, 0);
            leave(C_FREE, exipc_free(a, h));
        }
    }
    check_stat(a);
    enter(C_REAP, 0);
    int n = leave(C_REAP, exipc_reap(b));
    if (n > (int)b->L.max_procs)
        violation("reap cleaned %d > max_procs %u", n, b->L.max_procs);
    if (rndn(2) && sc != NULL) { /* sometimes leave ends open for close to clean */
        enter(C_CHAN_CLOSE, 0);
        leave(C_CHAN_CLOSE, exipc_chan_close(sc));
    }
    if (rndn(2) && cc != NULL) {
        enter(C_CHAN_CLOSE, 0);
        leave(C_CHAN_CLOSE, exipc_chan_close(cc));
    }
    if (rndn(2) && l != NULL) {
        enter(C_LISTENER_CLOSE, 0);
        leave(C_LISTENER_CLOSE, exipc_listener_close(l));
    }
    vclose(b);
    vclose(a);
}

static int victim_main(int argc, char **argv)
{
    if (argc < 6)
        return 2;
    const char *name = argv[2];
    struct exipc_options o;
    parse_opts(argv[3], &o);
    int fd = atoi(argv[4]);
    victim_id = atoi(argv[5]);
    rng_state = strtoull(argv[6], NULL, 0) | 1;
    B = mmap(NULL, sizeof *B, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (B == MAP_FAILED)
        return 2;
    close(fd);
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    for (uint64_t round = 0; !stop_flag; round++) {
        victim_round(name, &o, round);
        B->rounds++;
    }
    B->done = 1;
    return 0;
}

/* ---- parent ------------------------------------------------------------------------- */

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    return pid;
}

struct totals {
    uint64_t rounds, calls, violations, hangs, crashes, garbled;
    uint64_t counts[NCALLS][NERR];
};

static const char *errname(int e)
{
    switch (e) {
    case 0: return "ok";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENOMEM: return "ENOMEM";
    case EBADMSG: return "EBADMSG";
    case EPROTO: return "EPROTO";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ENOTSUP: return "ENOTSUP";
    case EMFILE: return "EMFILE";
    case EACCES: return "EACCES";
    default: return NULL;
    }
}

/* One epoch. Returns true if it passed. */
static bool epoch(int k, enum region region, int64_t ms, uint64_t seed, const char *self, struct totals *tot)
{
    rng_state = seed;
    static const uint64_t sizes[] = {64 << 10, 256 << 10, 1 << 20};
    static const uint32_t procs[] = {4, 6, 16}, chans[] = {2, 4, 8, 16}, rings[] = {2, 4, 8, 64};
    struct exipc_options o = {
        .size = sizes[rndn(3)],
        .max_procs = procs[rndn(3)],
        .max_chans = chans[rndn(4)],
        .ring_capacity = rings[rndn(4)],
        .max_block = rndn(2) ? 4096 : 64 << 10,
    };
    char oarg[128], name[96], seedarg[3][32], fdarg[NVICTIMS][16], idarg[NVICTIMS][16], rarg[16];
    snprintf(oarg, sizeof oarg, "%llu,%u,%u,%u,%u", (unsigned long long)o.size, o.max_procs, o.max_chans,
             o.ring_capacity, o.max_block);
    snprintf(name, sizeof name, "torture-%d-%d", (int)getpid(), k);
    exipc_domain_t *d = NULL;
    int rc = exipc_open(name, &o, &d);
    if (rc != 0) {
        printf("epoch %d: cannot create the domain: %s\n", k, exipc_strerror(rc));
        return false;
    }
    struct board *boards[NVICTIMS];
    pid_t vp[NVICTIMS];
    for (int v = 0; v < NVICTIMS; v++) {
        int fd = memfd_create("torture-board", 0);
        if (fd < 0 || ftruncate(fd, sizeof(struct board)) != 0) {
            perror("memfd");
            exit(1);
        }
        boards[v] = mmap(NULL, sizeof(struct board), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        snprintf(fdarg[v], sizeof fdarg[v], "%d", fd);
        snprintf(idarg[v], sizeof idarg[v], "%d", v);
        snprintf(seedarg[v], sizeof seedarg[v], "%" PRIu64, rnd());
        char *argv[] = {(char *)self, "victim", name, oarg, fdarg[v], idarg[v], seedarg[v], NULL};
        vp[v] = spawn(argv);
        close(fd);
    }
    snprintf(rarg, sizeof rarg, "%d", (int)region);
    snprintf(seedarg[2], sizeof seedarg[2], "%" PRIu64, rnd());
    char *sargv[] = {(char *)self, "scribble", name, oarg, rarg, seedarg[2], NULL};
    pid_t sp = spawn(sargv);

    bool ok = true;
    bool exited[NVICTIMS] = {false};
    int status[NVICTIMS] = {0};
    int64_t start = mono(), end = start + ms * MS, give_up = end + 60 * SEC;
    bool stopping = false;
    for (;;) {
        int64_t now = mono();
        if (!stopping && now >= end) {
            kill(sp, SIGKILL);
            waitpid(sp, NULL, 0);
            for (int v = 0; v < NVICTIMS; v++)
                kill(vp[v], SIGUSR1);
            stopping = true;
        }
        int alive = 0;
        for (int v = 0; v < NVICTIMS; v++) {
            if (exited[v])
                continue;
            if (waitpid(vp[v], &status[v], WNOHANG) == vp[v]) {
                exited[v] = true;
                continue;
            }
            alive++;
            int64_t cs = __atomic_load_n(&boards[v]->call_start, __ATOMIC_SEQ_CST);
            if (cs != 0 && now - cs > boards[v]->call_budget) {
                printf("epoch %d (%s): HANG: victim %d in %s for %.1f s\n", k, region_name[region], v,
                       call_name[boards[v]->call], (double)(now - cs) / SEC);
                tot->hangs++;
                ok = false;
                kill(vp[v], SIGABRT);
            } else if (stopping && now > give_up) {
                printf("epoch %d: victim %d did not stop\n", k, v);
                tot->hangs++;
                ok = false;
                kill(vp[v], SIGKILL);
            }
        }
        if (stopping && alive == 0)
            break;
        sleep_ns(10 * MS);
    }
    uint64_t rounds = 0, calls = 0, errs = 0, viol = 0;
    for (int v = 0; v < NVICTIMS; v++) {
        struct board *b = boards[v];
        if (WIFSIGNALED(status[v])) {
            printf("epoch %d (%s): CRASH: victim %d killed by signal %d (%s)\n", k, region_name[region], v,
                   WTERMSIG(status[v]), strsignal(WTERMSIG(status[v])));
            tot->crashes++;
            ok = false;
        } else if (WEXITSTATUS(status[v]) != 0) {
            printf("epoch %d: victim %d exited %d\n", k, v, WEXITSTATUS(status[v]));
            ok = false;
        }
        if (b->violations) {
            printf("epoch %d (%s): victim %d: %" PRIu64 " violations, first: %s\n", k, region_name[region], v,
                   (uint64_t)b->violations, b->first_violation);
            ok = false;
        }
        rounds += b->rounds;
        viol += b->violations;
        tot->garbled += b->garbled;
        for (int c = 0; c < NCALLS; c++)
            for (int e = 0; e < NERR; e++) {
                calls += b->counts[c][e];
                if (e)
                    errs += b->counts[c][e];
                tot->counts[c][e] += b->counts[c][e];
            }
        munmap(b, sizeof *b);
    }
    tot->rounds += rounds;
    tot->calls += calls;
    tot->violations += viol;
    exipc_close(d);
    exipc_unlink(name);
    printf("%s epoch %2d %-10s opts %-28s %6" PRIu64 " rounds %8" PRIu64 " calls %7" PRIu64 " errors\n",
           ok ? "ok  " : "FAIL", k, region_name[region], oarg, rounds, calls, errs);
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "victim") == 0)
        return victim_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "scribble") == 0)
        return scribbler_main(argc, argv);
    int64_t seconds = getenv("EXIPC_TORTURE_SECONDS") ? atoll(getenv("EXIPC_TORTURE_SECONDS")) : 30, epoch_ms = 0;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int only = -1;
    int opt;
    while ((opt = getopt(argc, argv, "t:e:s:r:")) != -1) {
        switch (opt) {
        case 't': seconds = atoll(optarg); break;
        case 'e': epoch_ms = atoll(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'r':
            for (int r = 0; r < NREGIONS; r++)
                if (strcmp(optarg, region_name[r]) == 0)
                    only = r;
            if (only < 0) {
                fprintf(stderr, "unknown region %s\n", optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: %s [-t SECONDS] [-e EPOCH_MS] [-s SEED] [-r REGION]\n", argv[0]);
            return 2;
        }
    }
    if (epoch_ms <= 0) /* every region at least once, epochs of 1-4 s */
        epoch_ms = seconds * 1000 / NREGIONS < 1000 ? 1000 : seconds * 1000 / NREGIONS > 4000 ? 4000 : seconds * 1000 / NREGIONS;
    signal(SIGPIPE, SIG_IGN);
    printf("torture_scribble: seed %#" PRIx64 ", %" PRId64 " s, epochs of %" PRId64 " ms, %d victims\n", seed,
           seconds, epoch_ms, NVICTIMS);
    static struct totals tot;
    int passed = 0, failed = 0;
    int64_t end = mono() + seconds * SEC;
    rng_state = seed | 1;
    for (int k = 0; k == 0 || mono() < end; k++) {
        enum region r = only >= 0 ? (enum region)only : (enum region)(k % NREGIONS);
        uint64_t s = rnd() | 1;
        if (epoch(k, r, epoch_ms, s, argv[0], &tot))
            passed++;
        else
            failed++;
        rng_state = s * 0x9E3779B97F4A7C15ull | 1;
    }
    printf("totals: %" PRIu64 " rounds, %" PRIu64 " calls, %" PRIu64 " violations, %" PRIu64 " hangs, %" PRIu64
           " crashes, %" PRIu64 " garbled payloads\n",
           tot.rounds, tot.calls, tot.violations, tot.hangs, tot.crashes, tot.garbled);
    for (int c = 0; c < NCALLS; c++) {
        char line[1024];
        int n = snprintf(line, sizeof line, "  %-14s", call_name[c]);
        for (int e = 0; e < NERR; e++) {
            if (tot.counts[c][e] == 0)
                continue;
            const char *en = errname(e);
            if (en)
                n += snprintf(line + n, sizeof line - (size_t)n, " %s=%" PRIu64, en, tot.counts[c][e]);
            else
                n += snprintf(line + n, sizeof line - (size_t)n, " errno%d=%" PRIu64, e, tot.counts[c][e]);
            if (n >= (int)sizeof line - 40)
                break;
        }
        printf("%s\n", line);
    }
    printf("torture_scribble: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/*
 * heap.c — the heap: a page pool, slabs of size classes carved from it,
 * large blocks as runs of pages, per-process caches, handles.
 *
 * Invariants:
 *   - The arena is a pool of HEAP_PAGE pages, described by the page table
 *     (struct page_desc, see exipc_internal.h): a chain of runs, each free,
 *     a slab of one class, or one large block. Free runs sit in bins by
 *     length; neighbouring free runs are merged when a run is freed, so
 *     after every block is freed the arena is one free run again.
 *   - Every change to the page table, the bins, the partial-slab lists and
 *     the slabs' free lists is made by the holder of the pool lock
 *     (hdr.pool.lock = {slot gen | slot+1}), and so is every move of a block
 *     to or from free. Each step leaves a chain the rebuild can walk; a
 *     locker that finds the holder dead takes the lock over and rebuilds
 *     the bins, lists and counts from the chain and the block words, which
 *     are the truth: a block is free iff its word says so. So a process
 *     killed anywhere loses nothing; the reaper frees what it owned.
 *   - A block's owner changes outside the lock only by CAS between owned,
 *     cached (free, kept in its process's cache) and in flight, never to
 *     or from free.
 *   - Nothing read here from shared memory is used before a range check: a
 *     scribbled link, count, kind or word yields -EPROTO / -EBADMSG / NULL,
 *     or, under the lock, a rebuild; every loop over shared lists is bounded.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"

#define GEN_MAX 0x7fffffffu
#define BIN_SCAN 32 /* runs looked at per bin for the best fit */
#define POOL_LOCK_TIMEOUT_NS 2000000000ll /* a live holder never keeps the pool this long */

/* Size classes: four per doubling, 64 B .. 16 KiB. A slab is the fewest
 * pages (1..7) that its blocks fill exactly: small slabs strand little
 * memory in partly used slabs of many classes. */
static const uint32_t class_size[NSLAB_CLASSES] = {
    64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
    1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384};
static const uint8_t class_pages[NSLAB_CLASSES] = {
    1, 5, 3, 7, 1, 5, 3, 7, 1, 5, 3, 7, 1, 5, 3, 7, 1, 5, 3, 7, 1, 5, 3, 7, 1, 5, 3, 7, 2, 5, 3, 7, 4};
static const uint16_t class_nblk[NSLAB_CLASSES] = {
    64, 256, 128, 256, 32, 128, 64, 128, 16, 64, 32, 64, 8, 32, 16, 32, 4,
    16, 8, 16, 2, 8, 4, 8, 1, 4, 2, 4, 1, 2, 1, 2, 1};

/* Smallest class whose blocks hold n bytes (1 <= n <= SMALL_MAX). */
static inline uint32_t class_of(size_t n)
{
    if (n <= GRANULE)
        return 0;
    uint64_t m = n - 1;
    uint32_t top = 63u - (uint32_t)__builtin_clzll(m);
    return 4 * (top - 6) + (uint32_t)(m >> (top - 2)) - 3;
}

uint32_t heap_nclasses(uint32_t max_block)
{
    return max_block > SMALL_MAX ? NSLAB_CLASSES : class_of(max_block) + 1;
}

/* Blocks a process's cache of class c holds at most: HEAP_CACHE_MAX, or
 * fewer so that it holds no more than HEAP_CACHE_BYTES. */
static const uint8_t cache_caps[HEAP_CACHE_CLASSES] = {
    32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 25, 21, 18, 16};
static inline uint32_t cache_cap(uint32_t c) { return cache_caps[c]; }
/* Blocks the depot of class c holds at most. */
static inline uint32_t depot_cap(uint32_t c)
{
    uint32_t n = HEAP_DEPOT_BYTES / class_size[c];
    return n < HEAP_DEPOT_MAX ? n : HEAP_DEPOT_MAX;
}

static inline uint64_t pack_word(uint32_t gen, uint32_t owner) { return ((uint64_t)gen << 32) | owner; }
static inline uint32_t next_gen(uint32_t gen) { return gen >= GEN_MAX ? 1 : gen + 1; }
static inline uint32_t fresh_gen(uint64_t w)
{
    uint32_t gen = (uint32_t)(w >> 32);
    return gen == 0 || gen > GEN_MAX ? 1 : gen;
}

static inline struct page_desc *PG(exipc_domain_t *d, uint64_t p) { return &D_PAGES(d)[p]; }

#define DEPOT_OWNER OWNER(OWN_CACHED, OWN_DEPOT_ID) /* a block in the depot (pool.depot) */

/* ---- finding a block from its index ------------------------------------ */

struct blk {
    uint64_t head;  /* first page of its run */
    int32_t cls;    /* slab class, or -1 for a large block */
    uint64_t cap;   /* bytes */
    uint64_t off;   /* offset in the arena */
};

/* Finds the block whose meta index is e: 0, or -1 if e is not a block start
 * of a live slab or large run (or the page table is scribbled). */
static inline __attribute__((always_inline)) int block_find(exipc_domain_t *d, uint64_t e, struct blk *b)
{
    uint64_t np = d->L.npages;
    uint64_t pg = e / META_PER_PAGE;
    if (pg >= np)
        return -1;
    struct page_desc *h = PG(d, pg);
    uint64_t hd = ATOM_LOAD_RELAXED(&h->head);
    if (hd != pg) {
        if (hd > pg)
            return -1;
        h = PG(d, hd);
    }
    uint32_t kind = ATOM_LOAD_RELAXED(&h->kind);
    uint64_t n = ATOM_LOAD_RELAXED(&h->npages);
    if (n > np - hd)
        return -1;
    /* i bounds the page too: a slab's blocks fit its pages, and a large
     * block is only its run's first entry. */
    uint64_t i = e - hd * META_PER_PAGE;
    b->head = hd;
    if (kind == PG_LARGE) {
        if (i != 0 || n == 0)
            return -1;
        b->cls = -1;
        b->cap = n * HEAP_PAGE;
        b->off = hd * HEAP_PAGE;
        return 0;
    }
    uint32_t c = kind - PG_SLAB;
    if (kind < PG_SLAB || c >= NSLAB_CLASSES || n != class_pages[c] || i >= class_nblk[c])
        return -1;
    b->cls = (int32_t)c;
    b->cap = class_size[c];
    b->off = hd * HEAP_PAGE + i * class_size[c];
    return 0;
}

/* Splits a handle and checks that it names a block start. */
static inline __attribute__((always_inline)) int handle_parts(exipc_domain_t *d, exipc_handle_t h, uint32_t *gen, uint64_t *e, struct blk *b)
{
    *gen = (uint32_t)(h >> 32);
    *e = (uint32_t)h;
    if (*gen == 0 || *gen > GEN_MAX)
        return -EBADMSG;
    return block_find(d, *e, b) != 0 ? -EBADMSG : 0;
}

/* ---- the pool lock ------------------------------------------------------- */

static void pool_rebuild(exipc_domain_t *d);

/* The lock word of this process: its slot and the slot's generation, or, for
 * a process without a slot (a reaper registering into a full table, which
 * holds the CQM lock throughout), its pid and NO_PROC. */
static inline uint64_t lock_me(exipc_domain_t *d)
{
    if (d->slot == NO_PROC)
        return ((uint64_t)(uint32_t)getpid() << 32) | NO_PROC;
    return ((uint64_t)d->slot_gen << 32) | (d->slot + 1u);
}

/* True if the holder named by lock word w is certainly gone: garbage, a slot
 * since reused, or a slot whose liveness lock has dropped. */
static bool holder_dead(exipc_domain_t *d, uint64_t w)
{
    uint32_t s1 = (uint32_t)w, gen = (uint32_t)(w >> 32);
    if (s1 == NO_PROC) /* a slotless reaper: pid in the high half */
        return gen == 0 || (kill((pid_t)gen, 0) != 0 && errno == ESRCH);
    if (s1 == 0 || s1 - 1 >= d->L.max_procs)
        return true;
    uint32_t slot = s1 - 1;
    if (slot == d->slot)
        return gen != d->slot_gen; /* another thread of ours, or a dead predecessor in our slot */
    struct proc_slot *p = D_PROC(d, slot);
    if (ATOM_LOAD_RELAXED(&p->gen) != gen)
        return true;
    return !slot_alive(d, slot);
}

/* Takes the pool lock. 0, or -EPROTO if a live holder kept it over the
 * timeout (and then, for a second, at once for as long as the same word
 * stays there: a stuck or forged holder costs one wait, not one per call).
 * A dead holder's lock is taken over and the pool rebuilt; so is a word
 * naming this very handle while none of its threads holds or takes it. */
static int pool_lock(exipc_domain_t *d)
{
    uint64_t *lk = &D_HDR(d)->pool.lock;
    uint64_t me = lock_me(d);
    int64_t deadline = 0;
    ATOM_FETCH_ADD(&d->pool_held, 1u); /* before the CAS: a thread of ours that sees `me` sees this */
    for (uint32_t i = 1;; i++) {
        uint64_t old = 0;
        if (ATOM_CAS(lk, &old, me)) /* P1 -> P1': pool state before the next holder */
            return 0;
        if (i == 1 && old == ATOM_LOAD_RELAXED(&d->pool_stuck) && now_ns() < ATOM_LOAD_RELAXED(&d->pool_stuck_until) &&
            !holder_dead(d, old)) {
            ATOM_FETCH_ADD(&d->pool_held, (uint32_t)-1);
            return -EPROTO;
        }
        bool dead = false;
        if ((i & 127) == 0) {
            if (old == me) /* ours: another thread of this handle, unless none holds it */
                dead = ATOM_LOAD_SEQCST(&d->pool_held) == 1;
            else
                dead = holder_dead(d, old);
        }
        if (dead) {
            if (ATOM_CAS(lk, &old, me)) { /* P1 -> P1': pool state before the next holder */
                KILL_POINT("heap.takeover");
                ATOM_FETCH_ADD_RELAXED(&D_HDR(d)->pool.rebuilds, 1);
                pool_rebuild(d);
                return 0;
            }
            continue;
        }
        if ((i & 127) == 0) {
            int64_t now = now_ns();
            if (deadline == 0) {
                deadline = now + POOL_LOCK_TIMEOUT_NS;
            } else if (now > deadline) {
                ATOM_STORE_RELAXED(&d->pool_stuck, old);
                ATOM_STORE_RELAXED(&d->pool_stuck_until, now + POOL_LOCK_TIMEOUT_NS / 2);
                ATOM_FETCH_ADD(&d->pool_held, (uint32_t)-1);
                return -EPROTO;
            }
            /* Yield first; past a few rounds the holder is likely off its
             * CPU (more runnable threads than CPUs): sleep a little, so the
             * spinners do not keep it from running. */
            if (i < 128 * 8) {
                sched_yield();
            } else {
                struct timespec ts = {0, 20000};
                nanosleep(&ts, NULL);
            }
        } else {
            cpu_relax();
        }
    }
}

static void pool_unlock(exipc_domain_t *d)
{
    ATOM_STORE_RELEASE(&D_HDR(d)->pool.lock, 0ull); /* P1 -> P1': pool state before the next holder */
    ATOM_FETCH_ADD(&d->pool_held, (uint32_t)-1);
}

/* ---- free runs (locked) ------------------------------------------------- */

static uint32_t bin_of(uint64_t n)
{
    if (n < 16)
        return (uint32_t)n - 1;
    uint32_t fl = 63u - (uint32_t)__builtin_clzll(n);
    uint32_t b = 15 + (fl - 4) * 4 + (uint32_t)((n >> (fl - 2)) & 3);
    return b < POOL_BINS ? b : POOL_BINS - 1;
}

/* Unlinks run p from list *headp (links in page_desc next/prev). -1 if the
 * links are scribbled. */
static int list_unlink(exipc_domain_t *d, uint32_t *headp, uint64_t p)
{
    uint64_t np = d->L.npages;
    struct page_desc *r = PG(d, p);
    uint32_t prev = r->prev, next = r->next;
    if (prev > np || next > np)
        return -1;
    if (prev) {
        if (PG(d, prev - 1)->next != p + 1)
            return -1;
        PG(d, prev - 1)->next = next;
    } else {
        if (*headp != p + 1)
            return -1;
        *headp = next;
    }
    if (next) {
        if (PG(d, next - 1)->prev != p + 1)
            return -1;
        PG(d, next - 1)->prev = prev;
    }
    r->next = r->prev = 0;
    return 0;
}

static void list_push(exipc_domain_t *d, uint32_t *headp, uint64_t p)
{
    uint32_t old = *headp;
    struct page_desc *r = PG(d, p);
    r->prev = 0;
    r->next = old;
    if (old && old <= d->L.npages)
        PG(d, old - 1)->prev = (uint32_t)(p + 1);
    *headp = (uint32_t)(p + 1);
}

static void bin_push(exipc_domain_t *d, uint32_t b, uint64_t p)
{
    list_push(d, &D_HDR(d)->pool.bin[b], p);
    D_HDR(d)->pool.binmap[b / 64] |= 1ull << (b % 64);
}

static int bin_unlink(exipc_domain_t *d, uint32_t b, uint64_t p)
{
    struct seg_hdr *h = D_HDR(d);
    if (list_unlink(d, &h->pool.bin[b], p) != 0)
        return -1;
    if (h->pool.bin[b] == 0)
        h->pool.binmap[b / 64] &= ~(1ull << (b % 64));
    return 0;
}

/* Makes pages [p, p+n) one free run in its bin (its first page's other
 * fields already say nothing else). */
static void run_put(exipc_domain_t *d, uint64_t p, uint64_t n)
{
    struct page_desc *r = PG(d, p);
    r->head = (uint32_t)p;
    PG(d, p + n - 1)->head = (uint32_t)p;
    r->used = r->nfree = r->free1 = 0;
    bin_push(d, bin_of(n), p);
}

/* Takes a run of n pages out of the pool: its first page, -ENOMEM, or
 * -EPROTO (scribbled bins: the caller rebuilds). The run's first page keeps
 * kind PG_FREE until the caller sets it. */
static int64_t run_take(exipc_domain_t *d, uint64_t n, bool top)
{
    uint64_t np = d->L.npages;
    uint32_t *bins = D_HDR(d)->pool.bin;
    if (n == 0 || n > np)
        return -ENOMEM;
    /* Bounded address-ordered fit: among the first BIN_SCAN runs of every
     * bin from n's own up that hold n, the lowest for a large block, the
     * highest for a slab (carved from that run's top). Large blocks gather
     * at the bottom of the arena and slabs at its top, so the free space
     * between them stays in long runs. */
    int64_t found = -1;
    const uint64_t *map = D_HDR(d)->pool.binmap;
    for (uint32_t b = bin_of(n); b < POOL_BINS; b++) {
        uint64_t bits = map[b / 64] >> (b % 64);
        if (bits == 0) {
            b = (b / 64 + 1) * 64 - 1; /* nothing more in this word */
            continue;
        }
        b += (uint32_t)__builtin_ctzll(bits);
        if (b >= POOL_BINS)
            break;
        uint32_t x = bins[b];
        for (int k = 0; x != 0 && k < BIN_SCAN; k++) {
            if (x > np)
                return -EPROTO;
            struct page_desc *r = PG(d, x - 1);
            uint64_t len = r->npages;
            if (r->kind != PG_FREE || len == 0 || len > np - (x - 1))
                return -EPROTO;
            int64_t at = (int64_t)(x - 1);
            if (len >= n && (found < 0 || (top ? at > found : at < found)))
                found = at;
            x = r->next;
        }
    }
    if (found < 0)
        return -ENOMEM;
    uint64_t p = (uint64_t)found;
    struct page_desc *r = PG(d, p);
    uint64_t len = r->npages;
    if (r->kind != PG_FREE || len < n || len > np - p || bin_unlink(d, bin_of(len), p) != 0)
        return -EPROTO;
    if (len > n && top) {
        /* Slabs from the top of a run, large blocks from its bottom: the
         * two kinds meet less, so a freed large block leaves a longer hole.
         * The new run first, then the shorter free one: the chain stays
         * whole. */
        struct page_desc *t = PG(d, p + len - n);
        t->kind = PG_FREE;
        t->npages = (uint32_t)n;
        KILL_POINT("heap.split");
        r->npages = (uint32_t)(len - n);
        run_put(d, p, len - n);
        return (int64_t)(p + len - n);
    }
    if (len > n) {
        struct page_desc *t = PG(d, p + n);
        t->kind = PG_FREE;
        t->npages = (uint32_t)(len - n);
        KILL_POINT("heap.split");
        r->npages = (uint32_t)n;
        run_put(d, p + n, len - n);
    }
    return (int64_t)p;
}

/* Returns run p (first page, kind already PG_FREE, npages set) to the pool,
 * merged with free neighbours. -EPROTO if a neighbour's links are
 * scribbled (the caller rebuilds). */
static int run_free(exipc_domain_t *d, uint64_t p)
{
    uint64_t np = d->L.npages;
    struct page_desc *r = PG(d, p);
    uint64_t n = r->npages;
    if (n == 0 || n > np - p)
        return -EPROTO;
    uint64_t q = p + n;
    if (q < np) {
        struct page_desc *rq = PG(d, q);
        uint64_t nq = rq->npages;
        if (rq->kind == PG_FREE && rq->head == q && nq != 0 && nq <= np - q) {
            if (bin_unlink(d, bin_of(nq), q) != 0)
                return -EPROTO;
            KILL_POINT("heap.coalesce");
            n += nq;
            r->npages = (uint32_t)n;
        }
    }
    if (p > 0) {
        uint64_t l = PG(d, p - 1)->head;
        if (l < p) {
            struct page_desc *rl = PG(d, l);
            uint64_t nl = rl->npages;
            if (rl->kind == PG_FREE && rl->head == l && l + nl == p) {
                if (bin_unlink(d, bin_of(nl), l) != 0)
                    return -EPROTO;
                KILL_POINT("heap.coalesce");
                rl->npages = (uint32_t)(nl + n);
                p = l;
                n += nl;
            }
        }
    }
    run_put(d, p, n);
    return 0;
}

/* ---- slabs (locked) ----------------------------------------------------- */

/* Carves a slab of class c: its first page, -ENOMEM or -EPROTO. */
static int64_t slab_carve(exipc_domain_t *d, uint32_t c)
{
    uint64_t k = class_pages[c];
    int64_t p = run_take(d, k, true);
    if (p < 0)
        return p;
    struct page_desc *r = PG(d, (uint64_t)p);
    struct block_meta *m = D_META(d);
    uint64_t e0 = (uint64_t)p * META_PER_PAGE;
    uint32_t nb = class_nblk[c];
    /* Blocks first (free, in one list), then the pages, then the kind: a
     * holder killed before the kind leaves a free run for the rebuild. */
    for (uint32_t i = 0; i < nb; i++) {
        uint64_t e = e0 + i;
        ATOM_STORE_RELAXED(&m[e].word, pack_word(fresh_gen(ATOM_LOAD_RELAXED(&m[e].word)), OWN_FREE));
        m[e].next = i + 1 < nb ? (uint32_t)(e + 2) : 0;
    }
    for (uint64_t i = 0; i < k; i++)
        PG(d, (uint64_t)p + i)->head = (uint32_t)p;
    r->free1 = (uint32_t)(e0 + 1);
    r->nfree = nb;
    r->used = 0;
    KILL_POINT("heap.carve");
    r->kind = PG_SLAB + c;
    list_push(d, &D_HDR(d)->pool.partial[c], (uint64_t)p);
    return p;
}

/* Takes up to want free blocks of class c, each moved to owner `owner` with
 * len (len 0: leave it); stores their indices in out[] and, if offs is not
 * NULL, their offsets in the arena in offs[]. Returns how many (>0), -ENOMEM
 * or -EPROTO. */
static int slab_take(exipc_domain_t *d, uint32_t c, uint32_t owner, uint32_t len, uint32_t *out, uint64_t *offs,
                     uint32_t want)
{
    uint32_t *part = &D_HDR(d)->pool.partial[c];
    struct block_meta *m = D_META(d);
    uint64_t np = d->L.npages;
    uint32_t got = 0;
    for (uint32_t round = 0; got < want && round < 64; round++) {
        uint32_t s1 = *part;
        if (s1 == 0) {
            if (got > 0)
                break;
            int64_t p = slab_carve(d, c);
            if (p < 0)
                return (int)p;
            s1 = (uint32_t)p + 1;
        }
        if (s1 > np)
            return -EPROTO;
        uint64_t p = s1 - 1;
        struct page_desc *r = PG(d, p);
        uint64_t e0 = p * META_PER_PAGE;
        if (r->kind != PG_SLAB + c || r->npages != class_pages[c] || r->nfree > class_nblk[c] ||
            r->used > class_nblk[c])
            return -EPROTO;
        while (got < want && r->nfree > 0) {
            uint64_t e1 = r->free1;
            if (e1 <= e0 || e1 - 1 - e0 >= class_nblk[c])
                return -EPROTO;
            uint64_t e = e1 - 1;
            uint64_t w = ATOM_LOAD_RELAXED(&m[e].word);
            if ((uint32_t)w != OWN_FREE)
                return -EPROTO;
            r->free1 = m[e].next;
            r->nfree--;
            r->used++;
            if (len != 0)
                ATOM_STORE_RELAXED(&m[e].len, len);
            KILL_POINT("heap.take");
            if (!ATOM_CAS(&m[e].word, &w, pack_word(fresh_gen(w), owner))) /* H3 -> H3': len before ownership moves */
                return -EPROTO;
            if (offs != NULL)
                offs[got] = p * HEAP_PAGE + (e - e0) * class_size[c];
            out[got++] = (uint32_t)e;
        }
        if (r->nfree == 0 && list_unlink(d, part, p) != 0)
            return -EPROTO;
    }
    return got > 0 ? (int)got : -ENOMEM;
}

/* Puts block e (already free in its word) back into its slab b; a slab left
 * empty goes back to the pool. 0 or -EPROTO. */
static int slab_put(exipc_domain_t *d, uint64_t e, const struct blk *b)
{
    uint32_t c = (uint32_t)b->cls;
    struct page_desc *r = PG(d, b->head);
    if (r->nfree >= class_nblk[c] || r->used == 0 || r->used > class_nblk[c])
        return -EPROTO;
    D_META(d)[e].next = r->free1;
    r->free1 = (uint32_t)(e + 1);
    r->nfree++;
    r->used--;
    uint32_t *part = &D_HDR(d)->pool.partial[c];
    if (r->nfree == 1)
        list_push(d, part, b->head);
    if (r->used == 0) {
        if (list_unlink(d, part, b->head) != 0)
            return -EPROTO;
        KILL_POINT("heap.slab_return");
        r->kind = PG_FREE;
        return run_free(d, b->head);
    }
    return 0;
}

/* Frees block e (found as b) whose word was w: the word to free (gen bumped
 * unless it was cached, whose gen was bumped on its way in), then the slab
 * or the run. Locked. -EBADMSG if the word moved, -EPROTO. */
static int block_free_locked(exipc_domain_t *d, uint64_t e, const struct blk *b, uint64_t w, bool bump)
{
    uint32_t gen = (uint32_t)(w >> 32);
    if (!ATOM_CAS(&D_META(d)[e].word, &w, pack_word(bump ? next_gen(gen) : gen, OWN_FREE))) /* H3 -> H3': len before ownership moves */
        return -EBADMSG;
    KILL_POINT("heap.freed");
    if (b->cls >= 0)
        return slab_put(d, e, b);
    PG(d, b->head)->kind = PG_FREE;
    return run_free(d, b->head);
}

/* ---- rebuild (locked) ---------------------------------------------------- */

/* Rebuilds bins, partial lists and slab lists from the page chain and the
 * block words. Bounded: one pass over the pages and the blocks of slabs. */
static void pool_rebuild(exipc_domain_t *d)
{
    struct seg_hdr *h = D_HDR(d);
    struct block_meta *m = D_META(d);
    uint64_t np = d->L.npages;
    memset(h->pool.bin, 0, sizeof h->pool.bin);
    memset(h->pool.binmap, 0, sizeof h->pool.binmap);
    memset(h->pool.partial, 0, sizeof h->pool.partial);
    memset(h->pool.depot_n, 0, sizeof h->pool.depot_n); /* its blocks are freed below */
    uint64_t fstart = 0, flen = 0;
    for (uint64_t p = 0; p < np;) {
        struct page_desc *r = PG(d, p);
        uint64_t n = r->npages;
        uint32_t kind = r->kind;
        if (n == 0 || n > np - p) {
            n = 1; /* a broken chain: the page becomes a run of its own */
            kind = PG_FREE;
        }
        bool free_run = true;
        if (kind == PG_LARGE) {
            free_run = (uint32_t)ATOM_LOAD_RELAXED(&m[p * META_PER_PAGE].word) == OWN_FREE;
            if (!free_run) {
                r->head = (uint32_t)p;
                PG(d, p + n - 1)->head = (uint32_t)p;
            }
        } else if (kind >= PG_SLAB && kind - PG_SLAB < NSLAB_CLASSES && n == class_pages[kind - PG_SLAB]) {
            uint32_t c = kind - PG_SLAB;
            uint64_t e0 = p * META_PER_PAGE;
            uint32_t used = 0, nfree = 0, first = 0;
            for (uint32_t i = class_nblk[c]; i-- > 0;) {
                uint64_t w = ATOM_LOAD_RELAXED(&m[e0 + i].word);
                if ((uint32_t)w == DEPOT_OWNER) {
                    /* In the depot, emptied above: free (only the pool
                     * lock's holder moves a depot word). */
                    w = pack_word((uint32_t)(w >> 32), OWN_FREE);
                    ATOM_STORE_RELAXED(&m[e0 + i].word, w);
                }
                if ((uint32_t)w != OWN_FREE) {
                    used++;
                } else {
                    m[e0 + i].next = first;
                    first = (uint32_t)(e0 + i + 1);
                    nfree++;
                }
            }
            if (used > 0) {
                free_run = false;
                for (uint64_t i = 0; i < n; i++)
                    PG(d, p + i)->head = (uint32_t)p;
                r->used = used;
                r->nfree = nfree;
                r->free1 = first;
                r->next = r->prev = 0;
                if (nfree > 0)
                    list_push(d, &h->pool.partial[c], p);
            }
        }
        if (free_run) {
            if (flen == 0)
                fstart = p;
            flen += n;
            r->kind = PG_FREE;
        } else if (flen > 0) {
            PG(d, fstart)->kind = PG_FREE;
            PG(d, fstart)->npages = (uint32_t)flen;
            run_put(d, fstart, flen);
            flen = 0;
        }
        r->npages = (uint32_t)n;
        p += n;
    }
    if (flen > 0) {
        PG(d, fstart)->kind = PG_FREE;
        PG(d, fstart)->npages = (uint32_t)flen;
        run_put(d, fstart, flen);
    }
}

void heap_init(exipc_domain_t *d)
{
    struct seg_hdr *h = D_HDR(d);
    memset(&h->pool, 0, sizeof h->pool);
    struct page_desc *r = PG(d, 0);
    r->kind = PG_FREE;
    r->npages = (uint32_t)d->L.npages;
    run_put(d, 0, d->L.npages);
}

/* Runs op under the pool lock; an -EPROTO from op (scribbled lists) costs a
 * rebuild and one more try. */
#define LOCKED_RETRY(d, rc, op)                                                   \
    do {                                                                          \
        rc = pool_lock(d);                                                        \
        if (rc != 0)                                                              \
            break;                                                                \
        rc = (op);                                                                \
        if (rc == -EPROTO) {                                                      \
            ATOM_FETCH_ADD_RELAXED(&D_HDR(d)->pool.rebuilds, 1);                  \
            pool_rebuild(d);                                                      \
            rc = (op);                                                            \
        }                                                                         \
        pool_unlock(d);                                                           \
    } while (0)

/* ---- the local cache ------------------------------------------------------ */

static void cache_lock(exipc_domain_t *d)
{
    while (ATOM_XCHG_SEQCST(&d->cache_lock, 1u) != 0) /* L1 -> L1': local cache before the next taker */
        cpu_relax();
}

static void cache_unlock(exipc_domain_t *d) { ATOM_STORE_RELEASE(&d->cache_lock, 0u); } /* L1 -> L1': local cache before the next taker */

/* Makes cached block e ours with len size: its handle, or 0 if it changed
 * behind our back (then it is dropped: the reaper's or a rebuild's
 * business). */
static inline exipc_handle_t cache_claim(exipc_domain_t *d, uint64_t e, uint32_t size)
{
    struct block_meta *m = &D_META(d)[e];
    uint64_t w = ATOM_LOAD_ACQUIRE(&m->word); /* H3 -> H3': len before ownership moves */
    uint32_t gen = (uint32_t)(w >> 32);
    if ((uint32_t)w != OWNER(OWN_CACHED, d->slot) || gen == 0 || gen > GEN_MAX)
        return 0;
    ATOM_STORE_RELAXED(&m->len, size);
    /* H3 -> H3': len before ownership moves */
    if (!ATOM_CAS(&m->word, &w, pack_word(gen, OWNER(OWN_PROC, d->slot))))
        return 0;
    return ((uint64_t)gen << 32) | e;
}

/* Takes up to want blocks from the local cache of class c (newest first,
 * in one hold of its lock) and makes them ours: their handles in hs[] and
 * their offsets in offs[]. Returns how many were made ours; *popped says
 * how many left the cache (more when some had changed behind our back). */
static uint32_t cache_take_many(exipc_domain_t *d, uint32_t c, uint32_t size, exipc_handle_t *hs, uint64_t *offs,
                                uint32_t want, uint32_t *popped)
{
    uint32_t es[HEAP_CACHE_MAX];
    uint64_t os[HEAP_CACHE_MAX];
    if (want > HEAP_CACHE_MAX)
        want = HEAP_CACHE_MAX;
    cache_lock(d);
    uint32_t n = d->cache[c].n, k = n < want ? n : want;
    for (uint32_t i = 0; i < k; i++) {
        es[i] = d->cache[c].g[n - 1 - i];
        os[i] = d->cache[c].off[n - 1 - i];
    }
    d->cache[c].n = n - k;
    cache_unlock(d);
    *popped = k;
    uint32_t got = 0;
    for (uint32_t i = 0; i < k; i++) {
        exipc_handle_t h = cache_claim(d, es[i], size);
        if (h != 0) {
            hs[got] = h;
            offs[got++] = os[i];
        }
    }
    return got;
}

/* Takes a block from the local cache of class c and makes it ours. Returns
 * its handle with its offset in *offp, or 0 if the cache is empty. */
static exipc_handle_t cache_take(exipc_domain_t *d, uint32_t c, uint32_t size, uint64_t *offp)
{
    for (;;) {
        exipc_handle_t h;
        uint32_t popped;
        if (cache_take_many(d, c, size, &h, offp, 1, &popped) == 1)
            return h;
        if (popped == 0)
            return 0;
    }
}

/* Returns cached blocks es[0..n) of this process to their slabs. Locked. */
/* Returns cached blocks es[0..n) of this process to the pool: first, with
 * to_depot, into the depot of class c as far as it has room (word cached ->
 * depot; the next refill takes them whole), the rest to their slabs. Locked.
 * 0 or -EPROTO (the caller rebuilds: the words say the truth). */
static int cache_return_locked(exipc_domain_t *d, uint32_t c, const uint32_t *es, uint32_t n, bool to_depot)
{
    struct block_meta *m = D_META(d);
    struct seg_hdr *h = D_HDR(d);
    uint32_t mine = OWNER(OWN_CACHED, d->slot);
    int rc = 0;
    uint32_t i = 0;
    if (to_depot && c < HEAP_CACHE_CLASSES) {
        uint32_t dn = h->pool.depot_n[c];
        if (dn > HEAP_DEPOT_MAX) {
            dn = HEAP_DEPOT_MAX; /* scribbled: no room; the rebuild empties it */
            rc = -EPROTO;
        }
        for (uint32_t cap = depot_cap(c); i < n && dn < cap; i++) {
            uint64_t e = es[i];
            uint64_t w = ATOM_LOAD_RELAXED(&m[e].word);
            if ((uint32_t)w != mine)
                continue; /* changed behind our back: not ours to return */
            h->pool.depot[c][dn] = (uint32_t)e;
            /* The entry first, then the word: a holder killed in between
             * leaves an entry past depot_n (ignored) or a depot word with
             * no entry (the rebuild after it frees every depot word). */
            if (ATOM_CAS(&m[e].word, &w, pack_word((uint32_t)(w >> 32), DEPOT_OWNER))) /* H3 -> H3': len before ownership moves */
                dn++;
        }
        KILL_POINT("heap.depot_put");
        if (rc == 0)
            h->pool.depot_n[c] = dn;
    }
    for (; i < n; i++) {
        uint64_t e = es[i];
        struct blk b;
        uint64_t w = ATOM_LOAD_RELAXED(&m[e].word);
        if ((uint32_t)w != mine || block_find(d, e, &b) != 0 || b.cls < 0)
            continue; /* changed behind our back: not ours to return */
        int r = block_free_locked(d, e, &b, w, false);
        if (r == -EPROTO)
            rc = r;
    }
    return rc;
}

/* Takes up to want blocks of class c from the depot, each moved to owner
 * `owner` (this process's cache): indices in es[], offsets in offs[].
 * Locked. Returns how many (0 when empty). An entry that names no depot
 * block of class c is dropped. */
static uint32_t depot_take_locked(exipc_domain_t *d, uint32_t c, uint32_t owner, uint32_t *es, uint64_t *offs,
                                  uint32_t want)
{
    struct seg_hdr *h = D_HDR(d);
    struct block_meta *m = D_META(d);
    uint32_t dn = h->pool.depot_n[c], k = 0;
    if (dn > HEAP_DEPOT_MAX)
        dn = HEAP_DEPOT_MAX; /* scribbled: what is there is checked entry by entry */
    while (dn > 0 && k < want) {
        uint64_t e = h->pool.depot[c][--dn];
        struct blk b;
        if (e >= d->L.nmeta || block_find(d, e, &b) != 0 || b.cls != (int32_t)c)
            continue;
        uint64_t w = ATOM_LOAD_RELAXED(&m[e].word);
        uint32_t gen = (uint32_t)(w >> 32);
        if ((uint32_t)w != DEPOT_OWNER || gen == 0 || gen > GEN_MAX)
            continue;
        if (!ATOM_CAS(&m[e].word, &w, pack_word(gen, owner))) /* H3 -> H3': len before ownership moves */
            continue;
        es[k] = (uint32_t)e;
        offs[k++] = b.off;
    }
    KILL_POINT("heap.depot_take");
    h->pool.depot_n[c] = dn;
    return k;
}

/* A refill of the local cache of class c, locked: from the depot first,
 * then from the slabs. Returns how many (>0), -ENOMEM or -EPROTO. */
static int refill_locked(exipc_domain_t *d, uint32_t c, uint32_t *es, uint64_t *offs, uint32_t want)
{
    uint32_t owner = OWNER(OWN_CACHED, d->slot);
    uint32_t k = depot_take_locked(d, c, owner, es, offs, want);
    if (k == want)
        return (int)k;
    int got = slab_take(d, c, owner, 0, es + k, offs + k, want - k);
    if (got < 0)
        return k > 0 ? (int)k : got;
    return (int)(k + (uint32_t)got);
}

/* Frees every block of the depot to its slab. Locked. 0 or -EPROTO. */
static int depot_drain_locked(exipc_domain_t *d)
{
    struct block_meta *m = D_META(d);
    int rc = 0;
    for (uint32_t c = 0; c < HEAP_CACHE_CLASSES; c++) {
        uint32_t es[HEAP_DEPOT_MAX];
        uint64_t offs[HEAP_DEPOT_MAX];
        uint32_t k = depot_take_locked(d, c, DEPOT_OWNER, es, offs, HEAP_DEPOT_MAX);
        for (uint32_t i = 0; i < k; i++) {
            struct blk b;
            uint64_t w = ATOM_LOAD_RELAXED(&m[es[i]].word);
            if (block_find(d, es[i], &b) == 0 && block_free_locked(d, es[i], &b, w, false) == -EPROTO)
                rc = -EPROTO;
        }
    }
    return rc;
}

static int cache_return(exipc_domain_t *d, uint32_t c, const uint32_t *es, uint32_t n, bool to_depot)
{
    int rc = pool_lock(d);
    if (rc != 0)
        return rc;
    rc = es != NULL ? cache_return_locked(d, c, es, n, to_depot) : depot_drain_locked(d);
    if (rc == -EPROTO) {
        ATOM_FETCH_ADD_RELAXED(&D_HDR(d)->pool.rebuilds, 1);
        pool_rebuild(d); /* the blocks are free in their words: the rebuild files them */
    }
    pool_unlock(d);
    return 0;
}

/* Puts cached blocks es[0..n) (offsets offs, n <= 2 * HEAP_CACHE_MAX) of
 * class c, already OWN_CACHED by us in their words, into the local cache.
 * Past its cap the oldest go back to the pool at once, in one hold of the
 * pool lock, until half the cap is left. */
static void cache_put(exipc_domain_t *d, uint32_t c, const uint32_t *es, const uint64_t *offs, uint32_t n)
{
    uint32_t spill[3 * HEAP_CACHE_MAX];
    uint32_t nspill = 0, cap = cache_cap(c);
    cache_lock(d);
    uint32_t have = d->cache[c].n;
    if (have + n > cap) {
        /* Spill the oldest, those in the cache first, then the new ones,
         * until half the cap is left. */
        uint32_t over = have + n - cap / 2;
        uint32_t drop = over < have ? over : have, skip = over - drop;
        memcpy(spill, d->cache[c].g, drop * sizeof spill[0]);
        memmove(d->cache[c].g, d->cache[c].g + drop, (have - drop) * sizeof d->cache[c].g[0]);
        memmove(d->cache[c].off, d->cache[c].off + drop, (have - drop) * sizeof d->cache[c].off[0]);
        have -= drop;
        memcpy(spill + drop, es, skip * sizeof spill[0]);
        nspill = drop + skip;
        es += skip;
        offs += skip;
        n -= skip;
    }
    for (uint32_t i = 0; i < n; i++) {
        d->cache[c].g[have + i] = es[i];
        d->cache[c].off[have + i] = offs[i];
    }
    d->cache[c].n = have + n;
    cache_unlock(d);
    if (nspill)
        cache_return(d, c, spill, nspill, true);
}

void heap_cache_flush(exipc_domain_t *d)
{
    uint32_t es[HEAP_CACHE_MAX];
    for (uint32_t c = 0; c < HEAP_CACHE_CLASSES; c++) {
        cache_lock(d);
        uint32_t n = d->cache[c].n;
        memcpy(es, d->cache[c].g, n * sizeof es[0]);
        d->cache[c].n = 0;
        cache_unlock(d);
        if (n)
            cache_return(d, c, es, n, false);
    }
    /* And the depot: a flush (close, or an allocation about to fail) gives
     * every free block back to its slab, so empty slabs go back to the
     * pool. */
    cache_return(d, 0, NULL, 0, false);
}

/* ---- alloc / ptr / free ---------------------------------------------------- */

/* Allocates from the pool (locked): a large run, a block of an uncached
 * class, or a refill of the local cache of class c. */
static int alloc_locked(exipc_domain_t *d, size_t size, uint32_t c, uint32_t *refill, uint64_t *refill_off,
                        uint32_t nrefill, uint64_t *e_out, uint64_t *off_out)
{
    struct block_meta *m = D_META(d);
    uint32_t me = OWNER(OWN_PROC, d->slot);
    if (size > SMALL_MAX) {
        uint64_t n = (size + HEAP_PAGE - 1) / HEAP_PAGE;
        int64_t p = run_take(d, n, false);
        if (p < 0)
            return (int)p;
        uint64_t e = (uint64_t)p * META_PER_PAGE;
        struct page_desc *r = PG(d, (uint64_t)p);
        uint64_t w = ATOM_LOAD_RELAXED(&m[e].word);
        ATOM_STORE_RELAXED(&m[e].word, pack_word(fresh_gen(w), OWN_FREE));
        ATOM_STORE_RELAXED(&m[e].len, (uint32_t)size);
        PG(d, (uint64_t)p + n - 1)->head = (uint32_t)p;
        r->head = (uint32_t)p;
        KILL_POINT("heap.large");
        r->kind = PG_LARGE;
        w = ATOM_LOAD_RELAXED(&m[e].word);
        if (!ATOM_CAS(&m[e].word, &w, pack_word(fresh_gen(w), me))) /* H3 -> H3': len before ownership moves */
            return -EPROTO;
        *e_out = e;
        *off_out = (uint64_t)p * HEAP_PAGE;
        return 0;
    }
    if (c >= HEAP_CACHE_CLASSES) {
        uint32_t e;
        int got = slab_take(d, c, me, (uint32_t)size, &e, off_out, 1);
        if (got < 0)
            return got;
        *e_out = e;
        return 0;
    }
    /* Refill: the first block is the caller's, the rest go to the cache. */
    int got = refill_locked(d, c, refill, refill_off, nrefill);
    if (got < 0)
        return got;
    uint64_t e = refill[0];
    uint64_t w = ATOM_LOAD_RELAXED(&m[e].word);
    ATOM_STORE_RELAXED(&m[e].len, (uint32_t)size);
    if (!ATOM_CAS(&m[e].word, &w, pack_word((uint32_t)(w >> 32), me))) /* H3 -> H3': len before ownership moves */
        return -EPROTO;
    *e_out = e;
    *off_out = refill_off[0];
    return got;
}

/* Allocates one block: its handle in *out and its offset in the arena in
 * *offp (every path knows it: the cache keeps it, the pool just chose it). */
static int alloc_block(exipc_domain_t *d, size_t size, exipc_handle_t *out, uint64_t *offp)
{
    if (d == NULL || out == NULL || size == 0)
        return -EINVAL;
    if (size > d->L.max_block)
        return -EMSGSIZE;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    uint32_t c = size <= SMALL_MAX ? class_of(size) : NSLAB_CLASSES;
    if (c < HEAP_CACHE_CLASSES) {
        exipc_handle_t h = cache_take(d, c, (uint32_t)size, offp);
        if (h != 0) {
            *out = h;
            return 0;
        }
    }
    uint32_t refill[HEAP_CACHE_MAX];
    uint64_t refill_off[HEAP_CACHE_MAX];
    uint32_t nrefill = c < HEAP_CACHE_CLASSES ? cache_cap(c) / 2 : 0;
    if (nrefill == 0)
        nrefill = 1;
    uint64_t e = 0;
    for (int attempt = 0;; attempt++) {
        LOCKED_RETRY(d, rc, alloc_locked(d, size, c, refill, refill_off, nrefill, &e, offp));
        if (rc != -ENOMEM || attempt > 0)
            break;
        heap_cache_flush(d); /* our own cache first, before saying no */
    }
    if (rc < 0)
        return rc;
    if (rc > 1)
        cache_put(d, c, refill + 1, refill_off + 1, (uint32_t)(rc - 1)); /* what does not fit goes back */
    uint32_t gen = (uint32_t)(ATOM_LOAD_RELAXED(&D_META(d)[e].word) >> 32);
    *out = ((uint64_t)gen << 32) | e;
    return 0;
}

/* exipc_alloc, and the block's address: the block was just taken by this
 * process, so only its place is looked up, not its owner. */
/* Is this process at its quota? What it owns, plus what it sent that is
 * still queued on its rings: the queued part is read from the shared heads
 * only here, when the count it owns alone does not settle it (checked, a
 * scribbled head counts as a full ring). */
bool quota_full(exipc_domain_t *d)
{
    uint64_t q = d->L.proc_quota, held = ATOM_LOAD_RELAXED(&d->held);
    if (held >= q)
        return true;
    uint64_t queued = 0;
    pthread_mutex_lock(&d->objs_lock);
    for (exipc_chan_t *c = d->chans; c != NULL && held + queued < q; c = c->next) {
        uint64_t tail = ATOM_LOAD_RELAXED(&c->tx_tail);
        uint64_t head = ATOM_LOAD_ACQUIRE(&c->tx->head); /* R2 -> A2: slot consumed before head */
        uint64_t cap = c->mask + 1;
        queued += head > tail || tail - head > cap ? cap : tail - head;
    }
    pthread_mutex_unlock(&d->objs_lock);
    return held + queued >= q;
}

/* exipc_alloc: the block, counted against the process's quota when the
 * domain has one (-ENOMEM at once past it, whatever the heap holds). */
int exipc_alloc(exipc_domain_t *d, size_t size, exipc_handle_t *out)
{
    if (d != NULL && d->L.proc_quota != 0 && size != 0 && out != NULL && quota_full(d))
        return -ENOMEM;
    uint64_t off;
    int rc = alloc_block(d, size, out, &off);
    if (rc == 0)
        quota_add(d, 1);
    return rc;
}

/* exipc_alloc, and the block's address: the offset alloc_block found it at
 * (inside the arena: computed from the local layout, not read from shared
 * memory), so the page table is not looked up again. */
int heap_alloc_ptr(exipc_domain_t *d, size_t size, exipc_handle_t *out, void **p)
{
    uint64_t off;
    if (d != NULL && d->L.proc_quota != 0 && size != 0 && out != NULL && quota_full(d)) {
        *p = NULL;
        return -ENOMEM;
    }
    int rc = alloc_block(d, size, out, &off);
    if (rc == 0)
        quota_add(d, 1);
    *p = rc == 0 ? (void *)(D_ARENA(d) + off) : NULL;
    return rc;
}

void *exipc_ptr(exipc_domain_t *d, exipc_handle_t h, size_t *len)
{
    uint32_t gen;
    uint64_t e;
    struct blk b;
    if (d == NULL || check_fork(d) != 0 || handle_parts(d, h, &gen, &e, &b) != 0)
        return NULL;
    struct block_meta *m = &D_META(d)[e];
    if (ATOM_LOAD_ACQUIRE(&m->word) != pack_word(gen, OWNER(OWN_PROC, d->slot))) /* H3 -> H3': len before ownership moves */
        return NULL;
    uint32_t n = ATOM_LOAD_RELAXED(&m->len);
    if (n == 0 || n > b.cap)
        return NULL;
    if (len != NULL)
        *len = n;
    return D_ARENA(d) + b.off;
}

/* Moves h from owner `from` to owner `to` (same generation), by CAS: a send,
 * which another thread of the owner may race with a free of the same handle.
 * -EBADMSG if h is not a live block owned by `from`. As in heap_take, the
 * word alone decides: an entry that is not a block start is always free, so
 * no page-table lookup is needed to refuse one. */
/* The owner word of h's meta entry, NULL for a generation no block has or
 * an index past the table: the check that send and take need (the word
 * itself says the rest). */
static inline uint64_t *handle_word(exipc_domain_t *d, exipc_handle_t h, uint32_t *gen)
{
    *gen = (uint32_t)(h >> 32);
    uint64_t e = (uint32_t)h;
    if (*gen == 0 || *gen > GEN_MAX || e >= d->L.nmeta)
        return NULL;
    return &D_META(d)[e].word;
}

int heap_transfer(exipc_domain_t *d, exipc_handle_t h, uint32_t from, uint32_t to)
{
    uint32_t gen;
    uint64_t *w = handle_word(d, h, &gen);
    if (w == NULL)
        return -EBADMSG;
    uint64_t want = pack_word(gen, from);
    return ATOM_CAS(w, &want, pack_word(gen, to)) ? 0 : -EBADMSG; /* H3 -> H3': len before ownership moves */
}

/* Takes h out of flight on ring owner `from` into owner `to` (the receiving
 * side of a ring): a checked load and a plain store, not a CAS. Sound because
 * a block in flight on a ring has one writer at a time: that ring's consumer
 * (this process, which takes only slots in [head, tail)), or once the
 * consumer is gone, its reaper or its own close draining the ring. The
 * producer's reaper frees only blocks in flight outside the ring's window
 * [head, tail) (reap.c), which the consumer never reads; the sender's own
 * words move only by CAS from "owned", never from "in flight". Without the
 * lock prefix the loads of a batch overlap their cache misses instead of
 * taking them one after another. The handle is checked for its generation
 * and index range only: an entry that is not a block start is always free
 * (heap_init, slab_carve and slab returns leave it so), so its word never
 * matches; exipc_ptr and every later call check the block itself. -EBADMSG
 * if h is not in flight on `from`. */
int heap_take(exipc_domain_t *d, exipc_handle_t h, uint32_t from, uint32_t to)
{
    uint32_t gen;
    uint64_t *w = handle_word(d, h, &gen);
    if (w == NULL || ATOM_LOAD_ACQUIRE(w) != pack_word(gen, from)) /* H3 -> H3': len before ownership moves */
        return -EBADMSG;
    ATOM_STORE_RELEASE(w, pack_word(gen, to)); /* H3 -> H3': len before ownership moves */
    return 0;
}

/* Starts fetching the word of h for writing (ring_take, before a batch). */
void heap_prefetch(exipc_domain_t *d, exipc_handle_t h)
{
    uint32_t gen;
    uint64_t *w = handle_word(d, h, &gen);
    if (w != NULL)
        __builtin_prefetch(w, 1);
}

/* Frees h to the pool if `owner` owns it. Locked inside. */
static int free_locked(exipc_domain_t *d, exipc_handle_t h, uint32_t owner)
{
    uint32_t gen;
    uint64_t e;
    struct blk b;
    if (handle_parts(d, h, &gen, &e, &b) != 0)
        return -EBADMSG;
    return block_free_locked(d, e, &b, pack_word(gen, owner), true);
}

int heap_free_owned(exipc_domain_t *d, exipc_handle_t h, uint32_t owner)
{
    int rc = pool_lock(d);
    if (rc != 0)
        return rc;
    rc = free_locked(d, h, owner);
    if (rc == -EPROTO) {
        ATOM_FETCH_ADD_RELAXED(&D_HDR(d)->pool.rebuilds, 1);
        pool_rebuild(d); /* the word is free: the rebuild files the block */
    }
    pool_unlock(d);
    return rc == -EPROTO ? 0 : rc;
}

static int free_block(exipc_domain_t *d, exipc_handle_t h)
{
    if (d == NULL)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    uint32_t gen;
    uint64_t e;
    struct blk b;
    if (handle_parts(d, h, &gen, &e, &b) != 0)
        return -EBADMSG;
    uint32_t c = (uint32_t)b.cls;
    if (b.cls < 0 || c >= HEAP_CACHE_CLASSES)
        return heap_free_owned(d, h, OWNER(OWN_PROC, d->slot));
    /* Into the local cache: the new generation refuses the old handle at
     * once, and the block stays off the pool. */
    uint64_t want = pack_word(gen, OWNER(OWN_PROC, d->slot));
    /* H3 -> H3': len before ownership moves */
    if (!ATOM_CAS(&D_META(d)[e].word, &want, pack_word(next_gen(gen), OWNER(OWN_CACHED, d->slot))))
        return -EBADMSG;
    uint32_t e32 = (uint32_t)e;
    cache_put(d, c, &e32, &b.off, 1);
    return 0;
}

int exipc_free(exipc_domain_t *d, exipc_handle_t h)
{
    int rc = free_block(d, h);
    if (rc == 0)
        quota_add(d, -1);
    return rc;
}

/* ---- batches ----------------------------------------------------------------- */

/* Refills the local cache of class c from the pool: up to its cap, in one
 * hold of the pool lock. 0, or -ENOMEM / -EPROTO. */
static int cache_refill(exipc_domain_t *d, uint32_t c)
{
    uint32_t es[HEAP_CACHE_MAX];
    uint64_t offs[HEAP_CACHE_MAX];
    int rc;
    LOCKED_RETRY(d, rc, refill_locked(d, c, es, offs, cache_cap(c)));
    if (rc < 0)
        return rc;
    cache_put(d, c, es, offs, (uint32_t)rc);
    return 0;
}

int heap_alloc_batch(exipc_domain_t *d, size_t size, exipc_handle_t *hs, void **ptrs, size_t n)
{
    if (d == NULL || hs == NULL || ptrs == NULL || n == 0 || n > INT32_MAX)
        return -EINVAL;
    uint32_t c = size != 0 && size <= SMALL_MAX ? class_of(size) : NSLAB_CLASSES;
    if (d->L.proc_quota != 0 || c >= HEAP_CACHE_CLASSES || size > d->L.max_block) {
        /* A quota counts block by block; large and uncached blocks take
         * the pool lock each anyway: one call per block. */
        size_t k = 0;
        for (; k < n; k++) {
            int rc = heap_alloc_ptr(d, size, &hs[k], &ptrs[k]);
            if (rc < 0) {
                if (k == 0)
                    return rc;
                break; /* a partial batch is a success */
            }
        }
        return (int)k;
    }
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    uint8_t *arena = D_ARENA(d);
    size_t k = 0, refills = 0;
    bool flushed = false;
    while (k < n) {
        uint64_t offs[HEAP_CACHE_MAX];
        uint32_t popped;
        size_t want = n - k < HEAP_CACHE_MAX ? n - k : HEAP_CACHE_MAX;
        uint32_t got = cache_take_many(d, c, (uint32_t)size, hs + k, offs, (uint32_t)want, &popped);
        for (uint32_t i = 0; i < got; i++)
            ptrs[k + i] = arena + offs[i];
        k += got;
        if (popped != 0)
            continue; /* the cache may hold more */
        if (++refills > n + 1)
            break; /* refills that all changed behind our back: scribbled; bounded */
        rc = cache_refill(d, c);
        if (rc == -ENOMEM && !flushed) {
            heap_cache_flush(d); /* our own cache first, before saying no (as exipc_alloc) */
            flushed = true;
            continue;
        }
        if (rc < 0)
            break;
    }
    if (k == 0)
        return rc < 0 ? rc : -ENOMEM;
    return (int)k;
}

/* Frees cached-to-be blocks es/offs of class c into the local cache (their
 * words already moved). */
static void free_flush(exipc_domain_t *d, uint32_t c, const uint32_t *es, const uint64_t *offs, uint32_t n)
{
    if (n)
        cache_put(d, c, es, offs, n);
}

int heap_free_batch(exipc_domain_t *d, const exipc_handle_t *hs, size_t n)
{
    if (d == NULL || (n != 0 && hs == NULL) || n > INT32_MAX)
        return -EINVAL;
    if (n == 0)
        return 0;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    uint32_t es[2 * HEAP_CACHE_MAX];
    uint64_t offs[2 * HEAP_CACHE_MAX];
    uint32_t np = 0, pc = 0;
    uint32_t me = OWNER(OWN_PROC, d->slot), cached = OWNER(OWN_CACHED, d->slot);
    size_t i = 0;
    for (; i < n; i++) {
        uint32_t gen;
        uint64_t e;
        struct blk b;
        if (handle_parts(d, hs[i], &gen, &e, &b) != 0) {
            rc = -EBADMSG;
            break;
        }
        uint32_t c = (uint32_t)b.cls;
        if (b.cls < 0 || c >= HEAP_CACHE_CLASSES) {
            free_flush(d, pc, es, offs, np); /* in order: those before it first */
            np = 0;
            rc = heap_free_owned(d, hs[i], me);
            if (rc < 0)
                break;
            continue;
        }
        /* Into the local cache, as exipc_free: the new generation refuses
         * the old handle at once. */
        uint64_t want = pack_word(gen, me);
        /* H3 -> H3': len before ownership moves */
        if (!ATOM_CAS(&D_META(d)[e].word, &want, pack_word(next_gen(gen), cached))) {
            rc = -EBADMSG;
            break;
        }
        if (np == 2 * HEAP_CACHE_MAX || (np > 0 && c != pc)) {
            free_flush(d, pc, es, offs, np);
            np = 0;
        }
        pc = c;
        es[np] = (uint32_t)e;
        offs[np++] = b.off;
    }
    free_flush(d, pc, es, offs, np);
    quota_add(d, -(int64_t)i);
    return i == n ? (int)n : rc;
}

/* ---- walking the heap (reaper, stat) ------------------------------------- */

/* Calls body for every block start of every live slab and large run,
 * following the page chain; bounded by the local layout whatever the shared
 * page table says (a broken link ends the walk). cls is -1 for a large
 * block. */
#define FOR_EACH_BLOCK(d, e, cls, cap, body)                                            \
    do {                                                                                \
        uint64_t np_ = (d)->L.npages;                                                   \
        for (uint64_t p_ = 0; p_ < np_;) {                                              \
            struct page_desc *r_ = PG(d, p_);                                           \
            uint64_t n_ = ATOM_LOAD_RELAXED(&r_->npages);                               \
            uint32_t k_ = ATOM_LOAD_RELAXED(&r_->kind);                                 \
            if (n_ == 0 || n_ > np_ - p_)                                               \
                break;                                                                  \
            if (k_ == PG_LARGE) {                                                       \
                uint64_t e = p_ * META_PER_PAGE;                                        \
                int32_t cls = -1;                                                       \
                uint64_t cap = n_ * HEAP_PAGE;                                          \
                (void)cls;                                                              \
                (void)cap;                                                              \
                body                                                                    \
            } else if (k_ >= PG_SLAB && k_ - PG_SLAB < NSLAB_CLASSES &&                 \
                       n_ == class_pages[k_ - PG_SLAB]) {                               \
                int32_t cls = (int32_t)(k_ - PG_SLAB);                                  \
                uint64_t cap = class_size[cls];                                         \
                (void)cap;                                                              \
                for (uint64_t i_ = 0; i_ < class_nblk[cls]; i_++) {                     \
                    uint64_t e = p_ * META_PER_PAGE + i_;                               \
                    body                                                                \
                }                                                                       \
            }                                                                           \
            p_ += n_;                                                                   \
        }                                                                               \
    } while (0)

/* Frees every block whose owner is OWNER(kind, id). Returns how many. */
uint64_t heap_release_owner(exipc_domain_t *d, uint32_t kind, uint32_t id)
{
    uint64_t n = 0;
    uint32_t owner = OWNER(kind, id);
    struct block_meta *m = D_META(d);
    if (pool_lock(d) != 0)
        return 0;
    KILL_POINT("heap.sweep");
    FOR_EACH_BLOCK(d, e, cls, cap, {
        uint64_t w = ATOM_LOAD_ACQUIRE(&m[e].word); /* H3 -> H3': len before ownership moves */
        if ((uint32_t)w == owner) {
            uint32_t gen = fresh_gen(w);
            if (ATOM_CAS(&m[e].word, &w, pack_word(kind == OWN_CACHED ? gen : next_gen(gen), OWN_FREE)))
                n++;
        }
    });
    /* Every freed word is the truth now: file the blocks, return empty
     * slabs, merge runs. */
    if (n)
        pool_rebuild(d);
    pool_unlock(d);
    return n;
}

/* Frees every block, not free, for which doomed(arg, owner, handle) is true:
 * the reaper's one pass over the heap. The CAS from the word that was read
 * means a block that moved in between (received, sent) is left alone.
 * Returns how many were freed. */
uint64_t heap_reclaim(exipc_domain_t *d, bool (*doomed)(void *arg, uint32_t owner, exipc_handle_t h), void *arg)
{
    uint64_t n = 0;
    struct block_meta *m = D_META(d);
    if (pool_lock(d) != 0)
        return 0;
    KILL_POINT("heap.sweep");
    FOR_EACH_BLOCK(d, e, cls, cap, {
        /* Acquire: whatever the owner's writer did before its CAS (binding
         * the channel it sends on) is visible to doomed(). */
        uint64_t w = ATOM_LOAD_ACQUIRE(&m[e].word); /* H3 -> H3': len before ownership moves */
        uint32_t owner = (uint32_t)w;
        uint32_t gen = (uint32_t)(w >> 32);
        exipc_handle_t h = ((uint64_t)gen << 32) | e;
        if (owner != OWN_FREE && gen != 0 && gen <= GEN_MAX && doomed(arg, owner, h) &&
            ATOM_CAS(&m[e].word, &w, pack_word(OWN_KIND(owner) == OWN_CACHED ? gen : next_gen(gen), OWN_FREE)))
            n++;
    });
    /* The rebuild also empties the depot: after a reap, every free block is
     * on its slab's free list and every empty slab back in the pool. */
    bool depot = false;
    for (uint32_t c = 0; c < HEAP_CACHE_CLASSES; c++)
        depot |= D_HDR(d)->pool.depot_n[c] != 0;
    if (n || depot)
        pool_rebuild(d);
    pool_unlock(d);
    return n;
}

void heap_count(exipc_domain_t *d, uint64_t *blocks, uint64_t *bytes)
{
    uint64_t nb = 0, by = 0;
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, e, cls, cap, {
        uint32_t o = (uint32_t)ATOM_LOAD_RELAXED(&m[e].word);
        if (o != OWN_FREE && OWN_KIND(o) != OWN_CACHED) { /* a cached block is free, kept near its process */
            nb++;
            by += cap;
        }
    });
    *blocks = nb;
    *bytes = by;
}

/* Allocations and frees so far, derived from the block words (a block's
 * generation grows on every free), without a counter on the hot path. Only
 * blocks of live slabs and large runs count: a slab returned to the pool
 * takes its history with it, so the figures are a lower bound that can step
 * back when a slab goes; rates taken from them clamp at zero (cmd/exipc). */
void heap_gen_counts(exipc_domain_t *d, uint64_t *allocs, uint64_t *frees)
{
    uint64_t fr = 0, used = 0;
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, e, cls, cap, {
        uint64_t w = ATOM_LOAD_RELAXED(&m[e].word);
        uint32_t gen = (uint32_t)(w >> 32);
        uint32_t o = (uint32_t)w;
        if (gen != 0 && gen <= GEN_MAX)
            fr += gen - 1;
        if (o != OWN_FREE && OWN_KIND(o) != OWN_CACHED)
            used++;
    });
    *frees = fr;
    *allocs = fr + used;
}

/* Blocks owned (OWN_PROC) and cached (OWN_CACHED) per process slot, into
 * owned[0..nslots) and cached[0..nslots) (zeroed by the caller). Reads only. */
void heap_owner_counts(exipc_domain_t *d, uint64_t *owned, uint64_t *cached, uint32_t nslots)
{
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, e, cls, cap, {
        uint32_t o = (uint32_t)ATOM_LOAD_RELAXED(&m[e].word);
        uint32_t id = OWN_ID(o);
        if (id < nslots) {
            if (OWN_KIND(o) == OWN_PROC)
                owned[id]++;
            else if (OWN_KIND(o) == OWN_CACHED)
                cached[id]++;
        }
    });
}

int exipc_heap_stat(exipc_domain_t *d, struct exipc_heap_stat *st)
{
    if (d == NULL || st == NULL)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    memset(st, 0, sizeof *st);
    _Static_assert(NSLAB_CLASSES + 1 <= EXIPC_MAX_CLASSES, "stat has room for every class and large blocks");
    struct block_meta *m = D_META(d);
    uint64_t np = d->L.npages;
    st->page_size = HEAP_PAGE;
    st->pages_total = np;
    st->largest_block = d->L.max_block;
    st->nclasses = NSLAB_CLASSES + 1;
    for (uint32_t c = 0; c < NSLAB_CLASSES; c++)
        st->cls[c].size = class_size[c];
    struct exipc_class_stat *large = &st->cls[NSLAB_CLASSES];
    large->size = d->L.max_block;
    uint64_t p = 0;
    while (p < np) {
        struct page_desc *r = PG(d, p);
        uint64_t n = ATOM_LOAD_RELAXED(&r->npages);
        uint32_t k = ATOM_LOAD_RELAXED(&r->kind);
        if (n == 0 || n > np - p)
            return -EPROTO;
        if (k == PG_FREE) {
            st->pages_free += n;
            if (n * HEAP_PAGE > st->largest_free_run)
                st->largest_free_run = n * HEAP_PAGE;
        } else if (k == PG_LARGE) {
            uint32_t o = (uint32_t)ATOM_LOAD_RELAXED(&m[p * META_PER_PAGE].word);
            if (o != OWN_FREE) {
                large->blocks_used++;
                large->slabs += n;
            } else {
                st->pages_free += n; /* half made or half freed: the next locker's rebuild frees it */
            }
        } else if (k >= PG_SLAB && k - PG_SLAB < NSLAB_CLASSES && n == class_pages[k - PG_SLAB]) {
            uint32_t c = k - PG_SLAB;
            st->cls[c].slabs++;
            for (uint64_t i = 0; i < class_nblk[c]; i++) {
                uint32_t o = (uint32_t)ATOM_LOAD_RELAXED(&m[p * META_PER_PAGE + i].word);
                if (o == OWN_FREE || OWN_KIND(o) == OWN_CACHED)
                    st->cls[c].blocks_free++;
                else
                    st->cls[c].blocks_used++;
            }
        } else {
            return -EPROTO;
        }
        p += n;
    }
    return 0;
}

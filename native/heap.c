/*
 * heap.c — the slab heap: size classes, lock-free free lists, handles.
 *
 * Invariants:
 *   - The arena is cut into 64 KiB slabs, carved in order by a bump index
 *     (hdr.slabs_carved, CAS). A carved slab serves one size class for the
 *     life of the domain; classes above 64 KiB take a run of slabs per block,
 *     the run's later slabs marked SLAB_CONT. slab_class[] is written once per
 *     slab, before any of its blocks is published on a free list.
 *   - Free lists: one Treiber stack per class; head = {tag:32 | granule+1:32};
 *     every successful CAS bumps the tag, so a head that was popped and pushed
 *     back in between (ABA) no longer matches. Links live in block_meta.next,
 *     out of line: a payload overrun cannot touch the allocator.
 *   - A block's owner changes only by CAS of block_meta.word, so exactly one
 *     process wins each transition; the generation grows on every free.
 *   - Nothing read here from shared memory is used before a range check: a
 *     scribbled head, link, class or word yields -EPROTO / -EBADMSG / NULL.
 */
#include <errno.h>
#include <string.h>

#include "exipc_internal.h"

#define GRANULES_PER_SLAB (SLAB_SIZE / GRANULE)
#define GEN_MAX 0x7fffffffu
#define CAS_RETRY_LIMIT (1u << 20) /* bounded: a peer hammering a head cannot hang us */

static inline uint64_t class_bytes(uint32_t c) { return (uint64_t)GRANULE << c; }

static inline int class_of(size_t n)
{
    if (n <= GRANULE)
        return 0;
    return 64 - __builtin_clzll((unsigned long long)(n - 1)) - GRANULE_SHIFT;
}

static inline uint64_t pack_word(uint32_t gen, uint32_t owner) { return ((uint64_t)gen << 32) | owner; }
static inline uint32_t next_gen(uint32_t gen) { return gen >= GEN_MAX ? 1 : gen + 1; }

void heap_init(exipc_domain_t *d)
{
    struct seg_hdr *h = D_HDR(d);
    ATOM_STORE_RELAXED(&h->slabs_carved, 0);
    for (int c = 0; c < MAX_CLASSES; c++)
        ATOM_STORE_RELAXED(&h->freelist[c].head, 0);
}

/* Class of the block starting at granule g, or -1 if g is not a block start
 * of a carved slab (or the slab table is scribbled). */
static int block_class(exipc_domain_t *d, uint64_t g)
{
    if (g >= d->L.ngranules)
        return -1;
    uint32_t sc = ATOM_LOAD_ACQUIRE(&D_SLABS(d)[g / GRANULES_PER_SLAB]); /* S1 -> S1': class before blocks */
    if (sc == 0 || (sc & SLAB_CONT))
        return -1;
    uint32_t c = sc - 1;
    if (c >= d->L.nclasses)
        return -1;
    uint64_t cb = class_bytes(c);
    uint64_t within = g % GRANULES_PER_SLAB;
    if (cb <= SLAB_SIZE ? within % (cb / GRANULE) != 0 : within != 0)
        return -1;
    if (g * GRANULE + cb > d->L.arena_size)
        return -1;
    return (int)c;
}

/* Splits a handle and checks that it names a block start. */
static int handle_parts(exipc_domain_t *d, exipc_handle_t h, uint32_t *gen, uint64_t *g, int *cls)
{
    *gen = (uint32_t)(h >> 32);
    *g = (uint32_t)h;
    if (*gen == 0 || *gen > GEN_MAX)
        return -EBADMSG;
    *cls = block_class(d, *g);
    return *cls < 0 ? -EBADMSG : 0;
}

/* Pushes the chain first..last (linked through next) on class c. */
static void push_chain(exipc_domain_t *d, uint32_t c, uint64_t first, uint64_t last)
{
    uint64_t *head = &D_HDR(d)->freelist[c].head;
    struct block_meta *m = D_META(d);
    uint64_t old = ATOM_LOAD_ACQUIRE(head); /* H1 -> H1': links before head */
    for (uint32_t i = 0; i < CAS_RETRY_LIMIT; i++) {
        ATOM_STORE_RELAXED(&m[last].next, (uint32_t)old);
        uint64_t nw = ((uint64_t)((uint32_t)(old >> 32) + 1) << 32) | (first + 1);
        if (ATOM_CAS(head, &old, nw)) /* H1 -> H1': links before head */
            return;
    }
    /* Only a peer rewriting the head without pause gets here; the chain is
     * lost to the heap (counted free, unreachable) rather than hanging. */
}

/* Pops a block of class c: its granule, -ENOMEM when empty, -EPROTO. */
static int64_t pop(exipc_domain_t *d, uint32_t c)
{
    uint64_t *head = &D_HDR(d)->freelist[c].head;
    struct block_meta *m = D_META(d);
    uint64_t old = ATOM_LOAD_ACQUIRE(head); /* H1 -> H1': links before head */
    for (uint32_t i = 0; i < CAS_RETRY_LIMIT; i++) {
        uint32_t idx1 = (uint32_t)old;
        if (idx1 == 0)
            return -ENOMEM;
        uint64_t g = idx1 - 1;
        if (g >= d->L.ngranules)
            return -EPROTO;
        uint32_t next = ATOM_LOAD_RELAXED(&m[g].next);
        uint64_t nw = ((uint64_t)((uint32_t)(old >> 32) + 1) << 32) | next;
        if (ATOM_CAS(head, &old, nw)) { /* H1 -> H1': links before head */
            if (block_class(d, g) != (int)c)
                return -EPROTO;
            return (int64_t)g;
        }
    }
    return -EPROTO;
}

/* Carves a fresh slab (or run of slabs) for class c. Keeps the first block
 * for the caller, pushes the rest. Returns its granule or -ENOMEM. */
static int64_t carve(exipc_domain_t *d, uint32_t c)
{
    uint64_t cb = class_bytes(c);
    uint64_t k = cb > SLAB_SIZE ? cb / SLAB_SIZE : 1;
    uint64_t *carved = &D_HDR(d)->slabs_carved;
    uint64_t s = ATOM_LOAD_RELAXED(carved);
    for (;;) {
        if (s > d->L.nslabs || d->L.nslabs - s < k)
            return -ENOMEM;
        if (ATOM_CAS(carved, &s, s + k))
            break;
    }
    struct block_meta *m = D_META(d);
    uint64_t stride = cb / GRANULE;
    uint64_t g0 = s * GRANULES_PER_SLAB;
    uint64_t nblocks = cb >= SLAB_SIZE ? 1 : SLAB_SIZE / cb;
    for (uint64_t b = 0; b < nblocks; b++) {
        uint64_t g = g0 + b * stride;
        uint32_t gen = (uint32_t)(ATOM_LOAD_RELAXED(&m[g].word) >> 32);
        if (gen == 0 || gen > GEN_MAX)
            gen = 1;
        ATOM_STORE_RELAXED(&m[g].word, pack_word(gen, OWN_FREE));
        ATOM_STORE_RELAXED(&m[g].next, b + 1 < nblocks ? (uint32_t)(g + stride + 1) : 0);
    }
    for (uint64_t i = 1; i < k; i++)
        ATOM_STORE_RELEASE(&D_SLABS(d)[s + i], (c + 1) | SLAB_CONT); /* S1 -> S1': class before blocks */
    ATOM_STORE_RELEASE(&D_SLABS(d)[s], c + 1); /* S1 -> S1': class before blocks */
    if (nblocks > 1)
        push_chain(d, c, g0 + stride, g0 + (nblocks - 1) * stride);
    return (int64_t)g0;
}

static void cache_lock(exipc_domain_t *d)
{
    while (ATOM_XCHG_SEQCST(&d->cache_lock, 1u) != 0) /* L1 -> L1: cache before unlock */
        cpu_relax();
}

static void cache_unlock(exipc_domain_t *d) { ATOM_STORE_RELEASE(&d->cache_lock, 0u); } /* L1 -> L1: cache before unlock */

/* Takes a block from the local cache of class c and makes it ours. Returns
 * its granule and generation, or -1 if the cache is empty (or the block was
 * changed behind our back: it is dropped, the shared path takes over). */
static int64_t cache_take(exipc_domain_t *d, uint32_t c, uint32_t size, uint32_t *genp)
{
    if (c >= HEAP_CACHE_CLASSES)
        return -1;
    for (;;) {
        cache_lock(d);
        uint32_t n = d->cache[c].n;
        uint64_t g = n ? d->cache[c].g[n - 1] : 0;
        d->cache[c].n = n ? n - 1 : 0;
        cache_unlock(d);
        if (n == 0)
            return -1;
        struct block_meta *m = &D_META(d)[g];
        uint64_t w = ATOM_LOAD_ACQUIRE(&m->word); /* H3 -> H3': len before ownership moves */
        uint32_t gen = (uint32_t)(w >> 32);
        if ((uint32_t)w != OWNER(OWN_CACHED, d->slot) || gen == 0 || gen > GEN_MAX)
            continue;
        ATOM_STORE_RELAXED(&m->len, size);
        if (!ATOM_CAS(&m->word, &w, pack_word(gen, OWNER(OWN_PROC, d->slot)))) /* H3 -> H3': len before ownership moves */
            continue;
        *genp = gen;
        return (int64_t)g;
    }
}

/* Returns n cached blocks gs[] of class c to the shared free list as one
 * chain (one CAS on the shared head for all of them). */
static void cache_return(exipc_domain_t *d, uint32_t c, const uint32_t *gs, uint32_t n)
{
    struct block_meta *m = D_META(d);
    int64_t first = -1, last = -1;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t g = gs[i];
        uint64_t w = ATOM_LOAD_ACQUIRE(&m[g].word); /* H3 -> H3': len before ownership moves */
        if ((uint32_t)w != OWNER(OWN_CACHED, d->slot) ||
            !ATOM_CAS(&m[g].word, &w, pack_word((uint32_t)(w >> 32), OWN_FREE))) /* H3 -> H3': len before ownership moves */
            continue; /* changed behind our back: not ours to push */
        if (last >= 0)
            ATOM_STORE_RELAXED(&m[last].next, (uint32_t)(g + 1));
        else
            first = (int64_t)g;
        last = (int64_t)g;
    }
    if (first >= 0)
        push_chain(d, c, (uint64_t)first, (uint64_t)last);
}

int exipc_alloc(exipc_domain_t *d, size_t size, exipc_handle_t *out)
{
    if (d == NULL || out == NULL || size == 0 || size > d->L.max_block)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    uint32_t c = (uint32_t)class_of(size);
    uint32_t cgen;
    int64_t cg = cache_take(d, c, (uint32_t)size, &cgen);
    if (cg >= 0) {
        *out = ((uint64_t)cgen << 32) | (uint64_t)cg;
        return 0;
    }
    int64_t g = pop(d, c);
    if (g == -ENOMEM)
        g = carve(d, c);
    if (g < 0)
        return (int)g;
    struct block_meta *m = &D_META(d)[g];
    uint64_t w = ATOM_LOAD_ACQUIRE(&m->word); /* H3 -> H3': len before ownership moves */
    uint32_t gen = (uint32_t)(w >> 32);
    if ((uint32_t)w != OWN_FREE || gen == 0 || gen > GEN_MAX)
        return -EPROTO; /* a block on a free list that is not free: scribbled */
    ATOM_STORE_RELAXED(&m->len, (uint32_t)size);
    if (!ATOM_CAS(&m->word, &w, pack_word(gen, OWNER(OWN_PROC, d->slot)))) /* H3 -> H3': len before ownership moves */
        return -EPROTO;
    *out = ((uint64_t)gen << 32) | (uint64_t)g;
    return 0;
}

void *exipc_ptr(exipc_domain_t *d, exipc_handle_t h, size_t *len)
{
    uint32_t gen;
    uint64_t g;
    int c;
    if (d == NULL || check_fork(d) != 0 || handle_parts(d, h, &gen, &g, &c) != 0)
        return NULL;
    struct block_meta *m = &D_META(d)[g];
    if (ATOM_LOAD_ACQUIRE(&m->word) != pack_word(gen, OWNER(OWN_PROC, d->slot))) /* H3 -> H3': len before ownership moves */
        return NULL;
    uint32_t n = ATOM_LOAD_RELAXED(&m->len);
    if (n == 0 || n > class_bytes((uint32_t)c))
        return NULL;
    if (len != NULL)
        *len = n;
    return D_ARENA(d) + g * GRANULE;
}

/* Moves h from owner `from` to owner `to` (same generation). -EBADMSG if h is
 * not a live block owned by `from`. */
int heap_transfer(exipc_domain_t *d, exipc_handle_t h, uint32_t from, uint32_t to)
{
    uint32_t gen;
    uint64_t g;
    int c;
    if (handle_parts(d, h, &gen, &g, &c) != 0)
        return -EBADMSG;
    uint64_t want = pack_word(gen, from);
    return ATOM_CAS(&D_META(d)[g].word, &want, pack_word(gen, to)) ? 0 : -EBADMSG; /* H3 -> H3': len before ownership moves */
}

/* Frees h if `owner` owns it. */
/* Frees block g (class c, generation gen) to the shared list if `owner`
 * owns it; the parts are already checked. */
static int free_shared(exipc_domain_t *d, uint64_t g, uint32_t gen, uint32_t c, uint32_t owner)
{
    uint64_t want = pack_word(gen, owner);
    if (!ATOM_CAS(&D_META(d)[g].word, &want, pack_word(next_gen(gen), OWN_FREE))) /* H3 -> H3': len before ownership moves */
        return -EBADMSG;
    push_chain(d, c, g, g);
    return 0;
}

int heap_free_owned(exipc_domain_t *d, exipc_handle_t h, uint32_t owner)
{
    uint32_t gen;
    uint64_t g;
    int c;
    if (handle_parts(d, h, &gen, &g, &c) != 0)
        return -EBADMSG;
    return free_shared(d, g, gen, (uint32_t)c, owner);
}

int exipc_free(exipc_domain_t *d, exipc_handle_t h)
{
    if (d == NULL)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    uint32_t gen;
    uint64_t g;
    int c;
    if (handle_parts(d, h, &gen, &g, &c) != 0)
        return -EBADMSG;
    if ((uint32_t)c >= HEAP_CACHE_CLASSES)
        return free_shared(d, g, gen, (uint32_t)c, OWNER(OWN_PROC, d->slot));
    /* Into the local cache: the new generation refuses the old handle at
     * once, and the block stays off the shared head. */
    uint64_t want = pack_word(gen, OWNER(OWN_PROC, d->slot));
    if (!ATOM_CAS(&D_META(d)[g].word, &want, pack_word(next_gen(gen), OWNER(OWN_CACHED, d->slot)))) /* H3 -> H3': len before ownership moves */
        return -EBADMSG;
    uint32_t spill[HEAP_CACHE_FLUSH];
    uint32_t nspill = 0;
    cache_lock(d);
    if (d->cache[c].n == HEAP_CACHE_MAX) {
        /* Full: hand the oldest half back in one chain. */
        nspill = HEAP_CACHE_FLUSH;
        memcpy(spill, d->cache[c].g, sizeof spill);
        memmove(d->cache[c].g, d->cache[c].g + HEAP_CACHE_FLUSH,
                (HEAP_CACHE_MAX - HEAP_CACHE_FLUSH) * sizeof spill[0]);
        d->cache[c].n -= HEAP_CACHE_FLUSH;
    }
    d->cache[c].g[d->cache[c].n++] = (uint32_t)g;
    cache_unlock(d);
    if (nspill)
        cache_return(d, (uint32_t)c, spill, nspill);
    return 0;
}

/* Calls fn on every block start of every carved slab; bounded by the local
 * layout, whatever the shared counters say. */
#define FOR_EACH_BLOCK(d, g, c, body)                                              \
    do {                                                                           \
        uint64_t ns_ = ATOM_LOAD_RELAXED(&D_HDR(d)->slabs_carved);                 \
        if (ns_ > (d)->L.nslabs)                                                   \
            ns_ = (d)->L.nslabs;                                                   \
        for (uint64_t s_ = 0; s_ < ns_; s_++) {                                    \
            uint32_t sc_ = ATOM_LOAD_ACQUIRE(&D_SLABS(d)[s_]); /* S1 -> S1': class before blocks */ \
            if (sc_ == 0 || (sc_ & SLAB_CONT) || sc_ - 1 >= (d)->L.nclasses)       \
                continue;                                                          \
            uint32_t c = sc_ - 1;                                                  \
            uint64_t cb_ = class_bytes(c);                                         \
            uint64_t nb_ = cb_ >= SLAB_SIZE ? 1 : SLAB_SIZE / cb_;                 \
            if (s_ * SLAB_SIZE + (cb_ > SLAB_SIZE ? cb_ : SLAB_SIZE) > (d)->L.arena_size) \
                continue;                                                          \
            for (uint64_t b_ = 0; b_ < nb_; b_++) {                                \
                uint64_t g = s_ * GRANULES_PER_SLAB + b_ * (cb_ / GRANULE);        \
                body                                                               \
            }                                                                      \
        }                                                                          \
    } while (0)

/* Frees every block whose owner is OWNER(kind, id). Returns how many. */
uint64_t heap_release_owner(exipc_domain_t *d, uint32_t kind, uint32_t id)
{
    uint64_t n = 0;
    uint32_t owner = OWNER(kind, id);
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, g, c, {
        uint64_t w = ATOM_LOAD_ACQUIRE(&m[g].word); /* H3 -> H3': len before ownership moves */
        if ((uint32_t)w == owner) {
            uint32_t gen = (uint32_t)(w >> 32);
            if (gen == 0 || gen > GEN_MAX)
                gen = 1;
            if (ATOM_CAS(&m[g].word, &w, pack_word(next_gen(gen), OWN_FREE))) { /* H3 -> H3': len before ownership moves */
                push_chain(d, c, g, g);
                n++;
            }
        }
    });
    return n;
}

/* Frees every block, not free, for which doomed(arg, owner, handle) is true:
 * the reaper's one pass over the heap. The CAS from the word that was read
 * means a block that moved in between (received, sent, freed) is left
 * alone. Returns how many were freed. */
uint64_t heap_reclaim(exipc_domain_t *d, bool (*doomed)(void *arg, uint32_t owner, exipc_handle_t h), void *arg)
{
    uint64_t n = 0;
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, g, c, {
        /* Acquire: whatever the owner's writer did before its CAS (binding
         * the channel it sends on) is visible to doomed(). */
        uint64_t w = ATOM_LOAD_ACQUIRE(&m[g].word); /* H3 -> H3': len before ownership moves */
        uint32_t owner = (uint32_t)w;
        uint32_t gen = (uint32_t)(w >> 32);
        exipc_handle_t h = ((uint64_t)gen << 32) | g;
        if (owner != OWN_FREE && gen != 0 && gen <= GEN_MAX && doomed(arg, owner, h) &&
            ATOM_CAS(&m[g].word, &w, pack_word(next_gen(gen), OWN_FREE))) { /* H3 -> H3': len before ownership moves */
            push_chain(d, c, g, g);
            n++;
        }
    });
    return n;
}

void heap_count(exipc_domain_t *d, uint64_t *blocks, uint64_t *bytes)
{
    uint64_t nb = 0, by = 0;
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, g, c, {
        uint32_t o = (uint32_t)ATOM_LOAD_RELAXED(&m[g].word);
        if (o != OWN_FREE && OWN_KIND(o) != OWN_CACHED) { /* a cached block is free, kept near its process */
            nb++;
            by += class_bytes(c);
        }
    });
    *blocks = nb;
    *bytes = by;
}

/* ---- figures (read-only) ----------------------------------------------------- */

/* Provisional, against the heap above (slabs carved once per class): the
 * page pool is the run of slabs not carved yet. Reads only, so it serves an
 * inspector's read-only mapping too. */
int exipc_heap_stat(exipc_domain_t *d, struct exipc_heap_stat *st)
{
    if (d == NULL || st == NULL)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    memset(st, 0, sizeof *st);
    uint32_t nc = d->L.nclasses <= EXIPC_MAX_CLASSES ? d->L.nclasses : EXIPC_MAX_CLASSES;
    st->page_size = SLAB_SIZE;
    st->pages_total = d->L.nslabs;
    uint64_t carved = ATOM_LOAD_RELAXED(&D_HDR(d)->slabs_carved);
    if (carved > d->L.nslabs)
        carved = d->L.nslabs;
    st->pages_free = d->L.nslabs - carved;
    st->largest_free_run = st->pages_free;
    st->nclasses = nc;
    for (uint32_t c = 0; c < nc; c++)
        st->cls[c].size = class_bytes(c);
    for (uint64_t s = 0; s < carved; s++) {
        uint32_t sc = ATOM_LOAD_RELAXED(&D_SLABS(d)[s]);
        if (sc != 0 && !(sc & SLAB_CONT) && sc - 1 < nc)
            st->cls[sc - 1].slabs += class_bytes(sc - 1) > SLAB_SIZE ? class_bytes(sc - 1) / SLAB_SIZE : 1;
    }
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, g, c, {
        if (c < nc) {
            uint32_t o = (uint32_t)ATOM_LOAD_RELAXED(&m[g].word);
            if (o == OWN_FREE || OWN_KIND(o) == OWN_CACHED)
                st->cls[c].blocks_free++;
            else
                st->cls[c].blocks_used++;
        }
    });
    for (uint32_t c = 0; c < nc; c++) {
        uint64_t need = class_bytes(c) > SLAB_SIZE ? class_bytes(c) / SLAB_SIZE : 1;
        if (st->cls[c].blocks_free > 0 || need <= st->pages_free)
            st->largest_block = class_bytes(c);
    }
    return 0;
}

/* Allocations and frees so far, derived from the block generations (each
 * free bumps its block's generation once; an allocation makes a free block
 * owned), so counting costs the data plane nothing. Wraps of a generation
 * and the blocks lost to a kill (see cqm.c) make it approximate. */
void heap_gen_counts(exipc_domain_t *d, uint64_t *allocs, uint64_t *frees)
{
    uint64_t fr = 0, used = 0;
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, g, c, {
        (void)c;
        uint64_t w = ATOM_LOAD_RELAXED(&m[g].word);
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
 * owned[0..nslots) and cached[0..nslots) (zeroed by the caller). */
void heap_owner_counts(exipc_domain_t *d, uint64_t *owned, uint64_t *cached, uint32_t nslots)
{
    struct block_meta *m = D_META(d);
    FOR_EACH_BLOCK(d, g, c, {
        (void)c;
        uint32_t o = (uint32_t)ATOM_LOAD_RELAXED(&m[g].word);
        uint32_t id = OWN_ID(o);
        if (id < nslots) {
            if (OWN_KIND(o) == OWN_PROC)
                owned[id]++;
            else if (OWN_KIND(o) == OWN_CACHED)
                cached[id]++;
        }
    });
}

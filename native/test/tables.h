/* tables.h — checks a quiescent domain's shared tables from the inside, for
 * the crash tests (test_crash, test_kill_torture). "Quiescent": no process
 * is inside an exipc call, so every table, ring and block owner is stable.
 *
 * tables_check() returns NULL when everything holds, else a description of
 * the first thing that does not:
 *   - no slot is REAPING, no ALIVE slot is dead, no commit record is left;
 *   - every listening service and every open channel end belongs to a live
 *     slot of the right generation; no channel is closed at both ends yet
 *     not FREE; no end is held;
 *   - every block is free, owned by a live slot, or in flight on a ring of a
 *     channel that is not FREE and sits in that ring's slots [head, tail):
 *     a block in flight anywhere else is a leak.
 *   - the heap's pages form one chain of runs; free runs are coalesced, in
 *     their bins, and nothing else is; no slab is empty; each slab's counts
 *     match its blocks and its free list reaches exactly its free blocks;
 *     the pool lock is free.
 * The class sizes are computed here independently of heap.c's table. */
#ifndef EXIPC_TABLES_H
#define EXIPC_TABLES_H

#include <stdio.h>
#include <stdlib.h>

#include "../exipc_internal.h"

struct tables_report {
    uint64_t blocks_used;       /* owned or in flight */
    uint64_t blocks_in_flight;  /* in a ring */
    uint64_t blocks_free;       /* free in the metadata */
    uint64_t free_reachable;    /* free and on a free list */
    uint64_t free_cached;       /* free in a live process's local cache */
    uint64_t pages_free;        /* pages in free runs */
    uint64_t slabs, large;      /* slabs and large blocks in the chain */
    uint32_t procs_alive, chans_open, services;
};

static inline uint64_t tables_class_size(uint32_t c)
{
    return (64u << (c / 4)) + (c % 4) * (16u << (c / 4));
}

static inline int tables_live(exipc_domain_t *d, uint32_t slot, uint32_t gen)
{
    if (slot >= d->L.max_procs)
        return 0;
    struct proc_slot *p = D_PROC(d, slot);
    return p->state == PROC_ALIVE && p->gen == gen && slot_alive(d, slot);
}

static inline int tables_in_ring(exipc_domain_t *d, uint32_t id, exipc_handle_t h)
{
    struct ring *rg = D_RING(d, id / 2, id % 2);
    uint64_t head = rg->head, tail = rg->tail, cap = d->L.ring_capacity;
    if (tail - head > cap)
        return 0;
    for (uint64_t i = head; i != tail; i++)
        if (rg->slots[i & (cap - 1)] == h)
            return 1;
    return 0;
}

static const char *tables_check(exipc_domain_t *d, struct tables_report *r)
{
    static char why[256];
    struct tables_report z = {0};
    if (r == NULL)
        r = &z;
    memset(r, 0, sizeof *r);
    struct seg_hdr *hdr = D_HDR(d);
    if (hdr->commit_slot1 != 0)
        return "a reaper's commit record is left";
    for (uint32_t i = 0; i < d->L.max_procs; i++) {
        struct proc_slot *p = D_PROC(d, i);
        if (p->state == PROC_REAPING) {
            snprintf(why, sizeof why, "slot %u is still REAPING (reaper %u)", i, p->reaper);
            return why;
        }
        if (p->state == PROC_ALIVE) {
            if (!slot_alive(d, i)) {
                snprintf(why, sizeof why, "slot %u (pid %d) is dead but ALIVE", i, p->pid);
                return why;
            }
            r->procs_alive++;
        } else if (p->state != PROC_FREE) {
            snprintf(why, sizeof why, "slot %u in state %u", i, p->state);
            return why;
        }
    }
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct service *sv = D_SVC(d, i);
        if (sv->state == SVC_LISTENING) {
            if (!tables_live(d, sv->owner, sv->owner_gen)) {
                snprintf(why, sizeof why, "service %u (%s) of a dead slot %u", i, sv->name, sv->owner);
                return why;
            }
            r->services++;
        }
        struct chan *ch = D_CHAN(d, i);
        if (ch->state == CHAN_FREE)
            continue;
        if (ch->end[0].held || ch->end[1].held) {
            snprintf(why, sizeof why, "channel %u is still held", i);
            return why;
        }
        if (ch->end[0].closed && ch->end[1].closed) {
            snprintf(why, sizeof why, "channel %u closed at both ends but not free", i);
            return why;
        }
        r->chans_open++;
        for (uint32_t s = 0; s < 2; s++) {
            if (ch->end[s].closed)
                continue;
            if (s == SIDE_SERVER && ch->state == CHAN_PENDING && ch->end[s].proc == NO_PROC)
                continue;
            if (!tables_live(d, ch->end[s].proc, ch->end[s].proc_gen)) {
                snprintf(why, sizeof why, "channel %u: open end %u of a dead slot %u", i, s, ch->end[s].proc);
                return why;
            }
        }
    }
    /* The page pool: a chain of runs covering the arena, as heap.c walks it. */
    struct block_meta *m = D_META(d);
    uint64_t np = d->L.npages;
    if (hdr->pool.lock != 0) {
        snprintf(why, sizeof why, "the heap's pool lock is held (%#llx)", (unsigned long long)hdr->pool.lock);
        return why;
    }
    /* The depot: counts in range; every entry is checked below, from its
     * block (a depot block is listed exactly once in its class's depot). */
    uint64_t depot_listed = 0, depot_found = 0;
    for (uint32_t c = 0; c < HEAP_CACHE_CLASSES; c++) {
        if (hdr->pool.depot_n[c] > HEAP_DEPOT_MAX) {
            snprintf(why, sizeof why, "depot of class %u holds %u (max %u)", c, hdr->pool.depot_n[c], HEAP_DEPOT_MAX);
            return why;
        }
        depot_listed += hdr->pool.depot_n[c];
    }
    bool prev_free = false;
    for (uint64_t p = 0; p < np;) {
        struct page_desc *pd = D_PAGES(d) + p;
        uint64_t n = pd->npages;
        if (n == 0 || n > np - p) {
            snprintf(why, sizeof why, "page %llu starts a run of %llu pages (arena %llu)", (unsigned long long)p,
                     (unsigned long long)n, (unsigned long long)np);
            return why;
        }
        uint32_t kind = pd->kind;
        if (kind == PG_FREE) {
            if (prev_free) {
                snprintf(why, sizeof why, "free runs meet at page %llu (not coalesced)", (unsigned long long)p);
                return why;
            }
            if (pd->head != p || D_PAGES(d)[p + n - 1].head != p) {
                snprintf(why, sizeof why, "free run at page %llu: boundary tags wrong", (unsigned long long)p);
                return why;
            }
            r->pages_free += n;
            prev_free = true;
            p += n;
            continue;
        }
        prev_free = false;
        uint64_t nb = 1, e0 = p * META_PER_PAGE;
        uint32_t c = 0;
        if (kind >= PG_SLAB && kind - PG_SLAB < NSLAB_CLASSES) {
            c = kind - PG_SLAB;
            nb = (n * HEAP_PAGE) / tables_class_size(c);
            if (nb > n * META_PER_PAGE)
                nb = n * META_PER_PAGE;
            r->slabs++;
        } else if (kind != PG_LARGE) {
            snprintf(why, sizeof why, "page %llu of kind %#x", (unsigned long long)p, kind);
            return why;
        } else {
            r->large++;
        }
        uint64_t nfree = 0;
        for (uint64_t b = 0; b < nb; b++) {
            uint64_t g = e0 + b;
            uint32_t owner = (uint32_t)m[g].word, gen = (uint32_t)(m[g].word >> 32);
            exipc_handle_t h = ((uint64_t)gen << 32) | g;
            if (owner == OWN_FREE) {
                if (kind == PG_LARGE) {
                    snprintf(why, sizeof why, "large block at page %llu is free but not in the pool", (unsigned long long)p);
                    return why;
                }
                r->blocks_free++;
                nfree++;
                continue;
            }
            if (owner == OWNER(OWN_CACHED, OWN_DEPOT_ID)) { /* free, in the depot of its class */
                uint32_t hits = 0;
                if (kind != PG_LARGE && c < HEAP_CACHE_CLASSES)
                    for (uint32_t i = 0; i < hdr->pool.depot_n[c]; i++)
                        hits += hdr->pool.depot[c][i] == g;
                if (hits != 1) {
                    snprintf(why, sizeof why, "block %llu is in the depot by its word, listed %u times in it",
                             (unsigned long long)g, hits);
                    return why;
                }
                depot_found++;
                r->free_cached++;
                continue;
            }
            if (OWN_KIND(owner) == OWN_CACHED) { /* free, in a live process's local cache */
                struct proc_slot *ps = OWN_ID(owner) < d->L.max_procs ? D_PROC(d, OWN_ID(owner)) : NULL;
                if (ps == NULL || ps->state != PROC_ALIVE) {
                    snprintf(why, sizeof why, "block %llu cached by slot %u, which is not alive", (unsigned long long)g,
                             OWN_ID(owner));
                    return why;
                }
                r->free_cached++;
                continue;
            }
            r->blocks_used++;
            if (OWN_KIND(owner) == OWN_PROC) {
                struct proc_slot *ps = OWN_ID(owner) < d->L.max_procs ? D_PROC(d, OWN_ID(owner)) : NULL;
                if (ps == NULL || ps->state != PROC_ALIVE) {
                    snprintf(why, sizeof why, "block %llu owned by slot %u, which is not alive", (unsigned long long)g,
                             OWN_ID(owner));
                    return why;
                }
            } else if (OWN_KIND(owner) == OWN_FLIGHT) {
                uint32_t id = OWN_ID(owner);
                if (id / 2 >= d->L.max_chans || D_CHAN(d, id / 2)->state == CHAN_FREE || !tables_in_ring(d, id, h)) {
                    snprintf(why, sizeof why, "block %llu in flight on ring %u but in no ring (leaked)",
                             (unsigned long long)g, id);
                    return why;
                }
                r->blocks_in_flight++;
            } else {
                snprintf(why, sizeof why, "block %llu has owner %#x", (unsigned long long)g, owner);
                return why;
            }
        }
        if (kind != PG_LARGE) {
            if (nfree == nb) {
                snprintf(why, sizeof why, "slab at page %llu (class %u) is empty but not returned", (unsigned long long)p, c);
                return why;
            }
            if (pd->nfree != nfree || pd->used != nb - nfree) {
                snprintf(why, sizeof why, "slab at page %llu: counts %u free %u used, blocks say %llu free",
                         (unsigned long long)p, pd->nfree, pd->used, (unsigned long long)nfree);
                return why;
            }
            /* Its free list reaches exactly its free blocks. */
            uint64_t x = pd->free1, steps = 0;
            for (; x != 0 && steps <= nb; steps++) {
                uint64_t g = x - 1;
                if (g < e0 || g >= e0 + nb || (uint32_t)m[g].word != OWN_FREE) {
                    snprintf(why, sizeof why, "free list of slab %llu reaches block %llu, which is not one of its free blocks",
                             (unsigned long long)p, (unsigned long long)g);
                    return why;
                }
                r->free_reachable++;
                x = m[g].next;
            }
            if (steps != nfree) {
                snprintf(why, sizeof why, "free list of slab %llu has %llu blocks, %llu are free", (unsigned long long)p,
                         (unsigned long long)steps, (unsigned long long)nfree);
                return why;
            }
            for (uint64_t i = 0; i < n; i++)
                if (D_PAGES(d)[p + i].head != p) {
                    snprintf(why, sizeof why, "page %llu of slab %llu does not name it", (unsigned long long)(p + i),
                             (unsigned long long)p);
                    return why;
                }
        }
        p += n;
    }
    if (depot_found != depot_listed) {
        snprintf(why, sizeof why, "the depot lists %llu blocks, %llu are in it by their words",
                 (unsigned long long)depot_listed, (unsigned long long)depot_found);
        return why;
    }
    /* Every free run is in its bin, and the bins hold nothing else. */
    uint64_t inbins = 0;
    for (uint32_t b = 0; b < POOL_BINS; b++) {
        uint64_t x = hdr->pool.bin[b], prev = 0;
        for (uint64_t steps = 0; x != 0; steps++) {
            if (x > np || steps > np || D_PAGES(d)[x - 1].kind != PG_FREE || D_PAGES(d)[x - 1].prev != prev) {
                snprintf(why, sizeof why, "bin %u reaches page %llu, which is not a free run", b, (unsigned long long)(x - 1));
                return why;
            }
            inbins += D_PAGES(d)[x - 1].npages;
            prev = x;
            x = D_PAGES(d)[x - 1].next;
        }
    }
    if (inbins != r->pages_free) {
        snprintf(why, sizeof why, "bins hold %llu pages, %llu are free", (unsigned long long)inbins,
                 (unsigned long long)r->pages_free);
        return why;
    }
    return NULL;
}

#endif

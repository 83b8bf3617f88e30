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
 * It also counts the free blocks the free lists reach: a free block they do
 * not reach was lost by a process killed between a pop or push and its
 * owner change (see cqm.c, "Not recovered"). */
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
    uint32_t procs_alive, chans_open, services;
};

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
    /* Blocks, as heap.c walks them. */
    struct block_meta *m = D_META(d);
    uint64_t ns = hdr->slabs_carved < d->L.nslabs ? hdr->slabs_carved : d->L.nslabs;
    for (uint64_t s = 0; s < ns; s++) {
        uint32_t sc = D_SLABS(d)[s];
        if (sc == 0 || (sc & SLAB_CONT) || sc - 1 >= d->L.nclasses)
            continue;
        uint64_t cb = (uint64_t)GRANULE << (sc - 1);
        uint64_t nb = cb >= SLAB_SIZE ? 1 : SLAB_SIZE / cb;
        for (uint64_t b = 0; b < nb; b++) {
            uint64_t g = s * (SLAB_SIZE / GRANULE) + b * (cb / GRANULE);
            uint32_t owner = (uint32_t)m[g].word, gen = (uint32_t)(m[g].word >> 32);
            exipc_handle_t h = ((uint64_t)gen << 32) | g;
            if (owner == OWN_FREE) {
                r->blocks_free++;
                continue;
            }
            if (OWN_KIND(owner) == OWN_CACHED) { /* free, in a live process's local cache */
                struct proc_slot *p = OWN_ID(owner) < d->L.max_procs ? D_PROC(d, OWN_ID(owner)) : NULL;
                if (p == NULL || p->state != PROC_ALIVE) {
                    snprintf(why, sizeof why, "block %llu cached by slot %u, which is not alive", (unsigned long long)g,
                             OWN_ID(owner));
                    return why;
                }
                r->free_cached++;
                continue;
            }
            r->blocks_used++;
            if (OWN_KIND(owner) == OWN_PROC) {
                struct proc_slot *p = OWN_ID(owner) < d->L.max_procs ? D_PROC(d, OWN_ID(owner)) : NULL;
                if (p == NULL || p->state != PROC_ALIVE) {
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
    }
    /* Free lists: each bounded by the number of granules. */
    for (uint32_t c = 0; c < d->L.nclasses; c++) {
        uint32_t idx1 = (uint32_t)hdr->freelist[c].head;
        for (uint64_t steps = 0; idx1 != 0 && steps < d->L.ngranules; steps++) {
            uint64_t g = idx1 - 1;
            if (g >= d->L.ngranules || (uint32_t)m[g].word != OWN_FREE) {
                snprintf(why, sizeof why, "free list %u reaches granule %llu, which is not free", c,
                         (unsigned long long)g);
                return why;
            }
            r->free_reachable++;
            idx1 = m[g].next;
        }
    }
    return NULL;
}

#endif

/*
 * ring.c — the data plane: SPSC rings of handles, send and receive, waiting.
 *
 * Invariants (see struct ring in exipc_internal.h for the index rules):
 *   - A handle is moved owned -> in flight (heap CAS) before its slot is
 *     written, and the slot before tail is published; the consumer moves it
 *     in flight -> owned after reading the slot, before publishing head
 *     (a checked plain store: only the consumer writes a word in flight on
 *     its ring, see heap_take).
 *   - A closing end publishes everything it sent before it sets closed; a
 *     receiver that sees closed re-reads tail, so nothing sent is lost and
 *     -EPIPE comes only after the ring is drained.
 *   - The consumer parks with the Dekker pattern: sleeping := 1 (seq_cst),
 *     re-check tail and closed (seq_cst), then futex-wait on sleeping == 1.
 *     The producer stores tail (seq_cst), then loads sleeping (seq_cst), and
 *     only if it is set clears it and calls futex_wake. One of the two always
 *     sees the other, so no wake-up is lost, and no system call is made while
 *     the consumer is awake.
 *   - Every index read from the other side is checked: 0 <= tail - head <=
 *     capacity, else -EPROTO. Waits are sliced (WAIT_SLICE_NS) so a peer
 *     that dies without a word is noticed through its liveness lock.
 */
#include <errno.h>
#include <sched.h>

#include "exipc_internal.h"

void ring_reset(exipc_domain_t *d, uint32_t chan)
{
    for (uint32_t r = 0; r < 2; r++) {
        struct ring *rg = D_RING(d, chan, r);
        ATOM_STORE_RELAXED(&rg->tail, 0);
        ATOM_STORE_RELAXED(&rg->head, 0);
        ATOM_STORE_RELAXED(&rg->sleeping, 0);
        ATOM_STORE_RELAXED(&rg->full_refusals, 0);
        ATOM_STORE_RELAXED(&rg->wakeups, 0);
        ATOM_STORE_RELAXED(&rg->last_idx, LAST_NONE);
        ATOM_STORE_RELAXED(&rg->last_h, 0);
    }
}

/* Sets `bit` in slot's ready bitmap and rings its doorbell (wait.c). */
void doorbell_ring(exipc_domain_t *d, uint32_t slot, uint32_t bit)
{
    if (slot >= d->L.max_procs || bit >= d->L.ready_words * 64u)
        return;
    uint64_t *words = D_READY(d, slot);
    __atomic_fetch_or(&words[bit / 64], 1ull << (bit % 64), __ATOMIC_SEQ_CST);
    struct proc_slot *p = D_PROC(d, slot);
    doorbell_bump(&p->doorbell); /* D1 -> D1: work before doorbell */
}

/* Called by connect after it queued a channel on service si. */
void listener_bell(exipc_domain_t *d, uint32_t si)
{
    struct service *sv = D_SVC(d, si);
    if (ATOM_LOAD_SEQCST(&sv->armed) != 0 && ATOM_XCHG_SEQCST(&sv->armed, 0u) != 0)
        doorbell_ring(d, ATOM_LOAD_RELAXED(&sv->owner), 2 * d->L.max_chans + si);
}

/* The producer side of the Dekker pair: called after publishing tail (or
 * closed). Costs one load of a line the consumer writes only when it parks;
 * a system call only if the consumer is parked. */
void ring_wake(exipc_domain_t *d, uint32_t chan, uint32_t r)
{
    struct ring *rg = D_RING(d, chan, r);
    if (ATOM_LOAD_SEQCST(&rg->sleeping) == 0)
        return;
    uint32_t how = ATOM_XCHG_SEQCST(&rg->sleeping, 0u);
    if (how == 0)
        return;
    /* Counted only here, on the path that makes a system call anyway. */
    ATOM_STORE_RELAXED(&rg->wakeups, ATOM_LOAD_RELAXED(&rg->wakeups) + 1);
    if (how != SLEEP_DOORBELL) /* SLEEP_FUTEX, or a scribbled value: wake both ways */
        futex_wake(&rg->sleeping, 1);
    if (how != SLEEP_FUTEX) {
        /* Ring r is consumed by side 1 - r. */
        uint32_t proc = ATOM_LOAD_RELAXED(&D_CHAN(d, chan)->end[1 - r].proc);
        doorbell_ring(d, proc, chan * 2 + (1 - r));
    }
}

/* Frees every handle still in ring r of channel `chan` (its consumer is
 * gone). Called under the CQM lock. */
void ring_drain_free(exipc_domain_t *d, uint32_t chan, uint32_t r)
{
    struct ring *rg = D_RING(d, chan, r);
    uint64_t head = ATOM_LOAD_ACQUIRE(&rg->head); /* R2 -> A2: slot consumed before head */
    uint64_t tail = ATOM_LOAD_ACQUIRE(&rg->tail); /* R1 -> A1: slot before tail */
    uint64_t cap = d->L.ring_capacity;
    if (tail - head > cap) /* scribbled: free what the heap says is in flight here */
        head = tail - cap;
    uint32_t owner = OWNER(OWN_FLIGHT, chan * 2 + r);
    for (uint64_t i = head; i != tail; i++)
        heap_free_owned(d, ATOM_LOAD_RELAXED(&rg->slots[i & (cap - 1)]), owner);
    ATOM_STORE_RELEASE(&rg->head, tail); /* R2 -> A2: slot consumed before head */
}

int exipc_send_batch(exipc_chan_t *c, const exipc_handle_t *hs, size_t n)
{
    if (c == NULL || hs == NULL || n == 0)
        return -EINVAL;
    exipc_domain_t *d = c->d;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    struct chan *ch = D_CHAN(d, c->idx);
    if (c->peer_dead || ATOM_LOAD_ACQUIRE(&ch->end[1 - c->side].closed)) /* C1 -> A1 */
        return -EPIPE;
    uint64_t cap = c->mask + 1;
    uint64_t tail = c->tx_tail;
    uint64_t room = cap - (tail - c->tx_head_cache);
    if (room < n) {
        uint64_t head = ATOM_LOAD_ACQUIRE(&c->tx->head); /* R2 -> A2: slot consumed before head */
        if (head > tail || tail - head > cap)
            return -EPROTO;
        c->tx_head_cache = head;
        room = cap - (tail - head);
        if (room == 0) {
            if (chan_peer_gone(c))
                return -EPIPE;
            /* Only the producer writes this word (off the fast path). */
            ATOM_STORE_RELAXED(&c->tx->full_refusals, ATOM_LOAD_RELAXED(&c->tx->full_refusals) + 1);
            return -EAGAIN;
        }
    }
    size_t k = n < room ? n : (size_t)room;
    uint32_t me = OWNER(OWN_PROC, d->slot);
    for (size_t i = 0; i < k; i++) {
        if (heap_transfer(d, hs[i], me, c->tx_owner) != 0) {
            if (i == 0)
                return -EBADMSG;
            k = i;
            break;
        }
        ATOM_STORE_RELAXED(&c->tx->slots[(tail + i) & c->mask], hs[i]);
    }
    /* The seqlock copy of the last handle (see struct ring): invalid first,
     * so a reader that sees the new handle cannot see the old index. */
    ATOM_STORE_RELAXED(&c->tx->last_idx, LAST_NONE);
    ATOM_STORE_RELEASE(&c->tx->last_h, hs[k - 1]);       /* R3 -> A3: last_idx invalid before last_h */
    ATOM_STORE_RELEASE(&c->tx->last_idx, tail + k - 1); /* R4 -> A4: last_h before last_idx */
    KILL_POINT("send.unpublished"); /* in flight, in no ring yet: the reaper's stragglers */
    ATOM_STORE_RELAXED(&c->tx_tail, tail + k); /* process-local; quota_full reads it from other threads */
    ATOM_STORE_SEQCST(&c->tx->tail, tail + k); /* R1 -> A1: slot before tail */
    quota_add(d, -(int64_t)k);
    ring_wake(d, c->idx, c->side);
    return (int)k;
}

int exipc_send(exipc_chan_t *c, exipc_handle_t h)
{
    int rc = exipc_send_batch(c, &h, 1);
    return rc < 0 ? rc : 0;
}

/* Re-reads tail; returns how many are ready, or -EPROTO. */
int64_t ring_refresh_tail(exipc_chan_t *c)
{
    uint64_t tail = ATOM_LOAD_SEQCST(&c->rx->tail); /* R1 -> A1: slot before tail */
    if (tail < c->rx_head || tail - c->rx_head > c->mask + 1)
        return -EPROTO;
    c->rx_tail_cache = tail;
    return (int64_t)(tail - c->rx_head);
}

/* The handle in slot `idx`, the last one published: from the copy on the
 * tail's line when it is still that slot's (no miss on the slot's line),
 * else from the slot. */
static inline exipc_handle_t ring_last(exipc_chan_t *c, uint64_t idx)
{
    struct ring *rg = c->rx;
    uint64_t i1 = ATOM_LOAD_ACQUIRE(&rg->last_idx); /* R4 -> A4: last_h before last_idx */
    exipc_handle_t h = ATOM_LOAD_ACQUIRE(&rg->last_h); /* R3 -> A3: last_idx invalid before last_h */
    if (i1 == idx && ATOM_LOAD_RELAXED(&rg->last_idx) == idx)
        return h;
    return ATOM_LOAD_RELAXED(&rg->slots[idx & c->mask]);
}

/* Takes up to max of the `avail` handles ready in c's receive ring (avail > 0,
 * as ring_refresh_tail or the tail cache said), moving each from in flight
 * to owned by this process. Returns how many, or -EBADMSG for a slot that
 * held no block in flight here (the slot is skipped). */
int ring_take(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t avail)
{
    exipc_domain_t *d = c->d;
    uint64_t head = c->rx_head;
    size_t k = (uint64_t)avail < max ? (size_t)avail : max;
    uint32_t me = OWNER(OWN_PROC, d->slot);
    /* Start every block word of the batch on its way first: each was last
     * written by the producer, so each is a miss, and they overlap. */
    if (k > 1)
        for (size_t i = 0; i < k; i++)
            heap_prefetch(d, ATOM_LOAD_RELAXED(&c->rx->slots[(head + i) & c->mask]));
    for (size_t i = 0; i < k; i++) {
        exipc_handle_t h = k == 1 && avail == 1 ? ring_last(c, head) : ATOM_LOAD_RELAXED(&c->rx->slots[(head + i) & c->mask]);
        if (heap_take(d, h, c->rx_owner, me) != 0) {
            if (i == 0) {
                /* Not a block in flight here: skip the slot, report it. */
                c->rx_head = head + 1;
                ATOM_STORE_RELEASE(&c->rx->head, head + 1); /* R2 -> A2: slot consumed before head */
                return -EBADMSG;
            }
            k = i;
            break;
        }
        hs[i] = h;
    }
    c->rx_head = head + k;
    ATOM_STORE_RELEASE(&c->rx->head, head + k); /* R2 -> A2: slot consumed before head */
    quota_add(d, (int64_t)k);
    return (int)k;
}

/* The data plane's one question about its peer: has it closed, died, or
 * lost the channel? (A pending channel's peer is the service's owner.) */
bool chan_peer_gone(exipc_chan_t *c)
{
    exipc_domain_t *d = c->d;
    struct chan *ch = D_CHAN(d, c->idx);
    if (ATOM_LOAD_RELAXED(&ch->gen) != c->gen || ATOM_LOAD_ACQUIRE(&ch->state) == CHAN_FREE) /* K1 -> K1': channel fields before state */
        return true;
    uint32_t peer = 1 - c->side;
    if (ATOM_LOAD_ACQUIRE(&ch->end[peer].closed)) /* C1 -> A1 */
        return true;
    if (ATOM_LOAD_ACQUIRE(&ch->state) == CHAN_PENDING) { /* K1 -> K1': channel fields before state */
        /* Not accepted yet: the peer is whoever listens on the service. */
        uint32_t si = ATOM_LOAD_RELAXED(&ch->service);
        if (si >= d->L.max_chans)
            return true;
        struct service *sv = D_SVC(d, si);
        if (ATOM_LOAD_ACQUIRE(&sv->state) != SVC_LISTENING || ATOM_LOAD_RELAXED(&sv->gen) != ATOM_LOAD_RELAXED(&ch->service_gen)) /* V1 -> V1': service fields before state */
            return true;
        return !proc_alive(d, ATOM_LOAD_RELAXED(&sv->owner), ATOM_LOAD_RELAXED(&sv->owner_gen));
    }
    return !proc_alive(d, ATOM_LOAD_RELAXED(&ch->end[peer].proc), ATOM_LOAD_RELAXED(&ch->end[peer].proc_gen));
}

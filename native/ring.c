/*
 * ring.c — the data plane: SPSC rings of handles, send and receive, waiting.
 *
 * Invariants (see struct ring in exipc_internal.h for the index rules):
 *   - A handle is moved owned -> in flight (heap CAS) before its slot is
 *     written, and the slot before tail is published; the consumer moves it
 *     in flight -> owned after reading the slot, before publishing head.
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

#define SPIN_NS SPIN_BEFORE_PARK_NS

int ncpus(void)
{
    static int n; /* benign race: every thread computes the same value */
    int v = ATOM_LOAD_RELAXED(&n);
    if (v == 0) {
        cpu_set_t set;
        v = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
        ATOM_STORE_RELAXED(&n, v);
    }
    return v;
}

void ring_reset(exipc_domain_t *d, uint32_t chan)
{
    for (uint32_t r = 0; r < 2; r++) {
        struct ring *rg = D_RING(d, chan, r);
        ATOM_STORE_RELAXED(&rg->tail, 0);
        ATOM_STORE_RELAXED(&rg->head, 0);
        ATOM_STORE_RELAXED(&rg->sleeping, 0);
        ATOM_STORE_RELAXED(&rg->full_refusals, 0);
        ATOM_STORE_RELAXED(&rg->wakeups, 0);
    }
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
    uint64_t head = ATOM_LOAD_ACQUIRE(&rg->head);
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
    KILL_POINT("send.unpublished"); /* in flight, in no ring yet: the reaper's stragglers */
    c->tx_tail = tail + k;
    ATOM_STORE_SEQCST(&c->tx->tail, tail + k); /* R1 -> A1: slot before tail */
    ring_wake(d, c->idx, c->side);
    return (int)k;
}

int exipc_send(exipc_chan_t *c, exipc_handle_t h)
{
    int rc = exipc_send_batch(c, &h, 1);
    return rc < 0 ? rc : 0;
}

/* Re-reads tail; returns how many are ready, or -EPROTO. */
static int64_t refresh_tail(exipc_chan_t *c)
{
    uint64_t tail = ATOM_LOAD_SEQCST(&c->rx->tail); /* R1 -> A1: slot before tail */
    if (tail < c->rx_head || tail - c->rx_head > c->mask + 1)
        return -EPROTO;
    c->rx_tail_cache = tail;
    return (int64_t)(tail - c->rx_head);
}

/* Has the peer closed (or died)? Then whatever it sent before is in the ring
 * already (C1), so re-read tail to decide between data and -EPIPE. */
static int64_t closed_or_ready(exipc_chan_t *c, bool check_liveness)
{
    struct chan *ch = D_CHAN(c->d, c->idx);
    bool gone = c->peer_dead || ATOM_LOAD_SEQCST(&ch->end[1 - c->side].closed); /* C1 -> A1 */
    if (!gone && check_liveness && chan_peer_gone(c)) {
        gone = true;
        cqm_reap_all(c->d, false, NULL); /* clean up after it now (a reaper already at it is not waited for) */
    }
    int64_t avail = refresh_tail(c);
    if (avail != 0)
        return avail;
    if (gone) {
        c->peer_dead = 1;
        return -EPIPE;
    }
    return 0;
}

/* Waits until something is in the ring. Returns the count ready or an error. */
static int64_t wait_ready(exipc_chan_t *c, int64_t timeout_ns)
{
    int64_t avail = closed_or_ready(c, false);
    if (avail != 0)
        return avail;
    if (timeout_ns == 0) {
        /* A poller that never parks still notices a silent death, rarely
         * enough that polling stays free of system calls. */
        avail = (++c->empty_polls & 4095) == 0 ? closed_or_ready(c, true) : 0;
        return avail != 0 ? avail : -EAGAIN;
    }
    int64_t start = now_ns();
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
    /* With one CPU the producer cannot run while we spin: park at once. */
    int64_t spin = ncpus() > 1 ? SPIN_NS : 0;
    if (c->d->wait_policy == EXIPC_WAIT_PARK)
        spin = 0;
    else if (c->d->wait_policy == EXIPC_WAIT_SPIN)
        spin = INT64_MAX / 2; /* until the deadline; the loop below still parks past it */
    int64_t spin_end = start + (timeout_ns > 0 && timeout_ns < spin ? timeout_ns : spin);
    int64_t next_check = start + WAIT_SLICE_NS;
    for (uint32_t i = 1;; i++) {
        cpu_relax();
        if (ATOM_LOAD_RELAXED(&c->rx->tail) != c->rx_head)
            return closed_or_ready(c, false);
        if ((i & 63) != 0)
            continue;
        int64_t now = now_ns();
        if (now >= spin_end)
            break;
        if (now >= next_check) { /* a long spin still notices a closed or dead peer */
            next_check = now + WAIT_SLICE_NS;
            avail = closed_or_ready(c, true);
            if (avail != 0)
                return avail;
        }
    }
    for (;;) {
        ATOM_STORE_SEQCST(&c->rx->sleeping, 1u);
        avail = closed_or_ready(c, false);
        if (avail != 0) {
            ATOM_STORE_RELAXED(&c->rx->sleeping, 0u);
            return avail;
        }
        int64_t now = now_ns();
        if (now >= deadline) {
            ATOM_STORE_RELAXED(&c->rx->sleeping, 0u);
            return -ETIMEDOUT;
        }
        int64_t slice = deadline - now < WAIT_SLICE_NS ? deadline - now : WAIT_SLICE_NS;
        int w = futex_wait(&c->rx->sleeping, 1u, slice);
        ATOM_STORE_RELAXED(&c->rx->sleeping, 0u);
        avail = closed_or_ready(c, w == -ETIMEDOUT);
        if (avail != 0)
            return avail;
    }
}

int exipc_recv_batch(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t timeout_ns)
{
    if (c == NULL || hs == NULL || max == 0)
        return -EINVAL;
    exipc_domain_t *d = c->d;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    uint64_t head = c->rx_head;
    int64_t avail = (int64_t)(c->rx_tail_cache - head);
    if ((uint64_t)avail < max)
        avail = refresh_tail(c);
    if (avail == 0)
        avail = wait_ready(c, timeout_ns);
    if (avail < 0)
        return (int)avail;
    size_t k = (uint64_t)avail < max ? (size_t)avail : max;
    uint32_t me = OWNER(OWN_PROC, d->slot);
    for (size_t i = 0; i < k; i++) {
        exipc_handle_t h = ATOM_LOAD_RELAXED(&c->rx->slots[(head + i) & c->mask]);
        if (heap_transfer(d, h, c->rx_owner, me) != 0) {
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
    return (int)k;
}

int exipc_recv(exipc_chan_t *c, exipc_handle_t *h, int64_t timeout_ns)
{
    int rc = exipc_recv_batch(c, h, 1, timeout_ns);
    return rc < 0 ? rc : 0;
}

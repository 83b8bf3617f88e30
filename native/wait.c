/*
 * wait.c — waiting on many channels at once: per-process doorbells and ready
 * bitmaps.
 *
 * Invariants:
 *   - proc_slot.doorbell is a futex word whose count (bits 1..) only grows.
 *     A waiter reads it (D1), then looks for work (ready bits, ring
 *     indices), then sets DOORBELL_ASLEEP with a CAS from the value read, and
 *     sleeps only while the word holds that value with the bit. A producer
 *     makes its work visible first, then bumps the count (D1, seq_cst) and
 *     makes the futex_wake system call only if the bit was set: a ring
 *     between the waiter's read and its CAS fails the CAS (look again), one
 *     after it finds the bit. So nobody pays a system call to ring a
 *     process whose waiters are awake (a busy poller, or none at all).
 *     A scribbled bit costs one needless system call, or (cleared by a
 *     hostile peer) a wake-up it could as well have withheld.
 *   - ring.sleeping == SLEEP_DOORBELL means "the consumer is armed": the
 *     producer that clears it (exchange, so exactly one does) sets the
 *     channel's bit in the consumer's ready bitmap and rings its doorbell.
 *     Arming is the consumer's half of the same Dekker pair as SLEEP_FUTEX
 *     (ring.c): store sleeping (seq_cst), then re-check tail and closed.
 *   - service.armed is the same for a listener, cleared by connect.
 *   - Ready bits are hints, never trusted: a bit maps to a local object only
 *     through the caller's own table, and a scribbled word costs a spurious
 *     wake-up, not a crash or a lost one (the armed flags and ring indices
 *     are re-checked after every wake).
 */
#include <errno.h>
#include <stdlib.h>

#include "exipc_internal.h"

static bool chan_ready(exipc_chan_t *c)
{
    if (c->peer_dead || ATOM_LOAD_SEQCST(&c->rx->tail) != c->rx_head)
        return true;
    struct chan *ch = D_CHAN(c->d, c->idx);
    return ATOM_LOAD_SEQCST(&ch->end[1 - c->side].closed) != 0 || ATOM_LOAD_RELAXED(&ch->gen) != c->gen;
}

static bool listener_ready(exipc_listener_t *l)
{
    exipc_domain_t *d = l->d;
    struct service *sv = D_SVC(d, l->idx);
    if (ATOM_LOAD_ACQUIRE(&sv->state) != SVC_LISTENING || ATOM_LOAD_RELAXED(&sv->gen) != l->gen) /* V1 -> V1': service fields before state */
        return true; /* gone: accept will say so */
    /* The same test accept applies, read without the lock: a hint. */
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        if (chan_pending_on(D_CHAN(d, i), l->idx, l->gen))
            return true;
    }
    return false;
}

int exipc_chan_arm(exipc_chan_t *c)
{
    if (c == NULL)
        return -EINVAL;
    int rc = check_fork(c->d);
    if (rc != 0)
        return rc;
    ATOM_STORE_SEQCST(&c->rx->sleeping, SLEEP_DOORBELL);
    if (!chan_ready(c))
        return 0;
    ATOM_STORE_RELAXED(&c->rx->sleeping, 0u);
    return 1;
}

int exipc_listener_arm(exipc_listener_t *l)
{
    if (l == NULL)
        return -EINVAL;
    int rc = check_fork(l->d);
    if (rc != 0)
        return rc;
    struct service *sv = D_SVC(l->d, l->idx);
    ATOM_STORE_SEQCST(&sv->armed, 1u);
    if (!listener_ready(l))
        return 0;
    ATOM_STORE_RELAXED(&sv->armed, 0u);
    return 1;
}

uint32_t exipc_chan_id(const exipc_chan_t *c) { return c ? c->idx * 2 + c->side : 0; }
uint32_t exipc_listener_id(const exipc_listener_t *l) { return l ? 2 * l->d->L.max_chans + l->idx : 0; }
size_t exipc_ready_words(const exipc_domain_t *d) { return d ? d->L.ready_words : 0; }

int exipc_wake(exipc_domain_t *d)
{
    if (d == NULL)
        return -EINVAL;
    struct proc_slot *p = D_PROC(d, d->slot);
    ATOM_STORE_SEQCST(&d->wake_pending, 1u);
    doorbell_bump(&p->doorbell); /* D1 -> D1: work before doorbell */
    return 0;
}

/* The waiter's half of the doorbell's Dekker pair: sleeps while the doorbell
 * still holds `seen` (read before the caller looked for work), as
 * futex_wait_slice does. */
static int doorbell_sleep(struct proc_slot *p, uint32_t seen, int64_t deadline, int64_t slice)
{
    uint32_t want = seen | DOORBELL_ASLEEP;
    if (seen != want && !__atomic_compare_exchange_n(&p->doorbell, &seen, want, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return WAIT_WOKEN; /* rung since `seen`: look again */
    return futex_wait_slice(&p->doorbell, want, deadline, slice);
}

int exipc_wait_ready(exipc_domain_t *d, uint64_t *bits, size_t words, int64_t timeout_ns)
{
    if (d == NULL || bits == NULL || words < d->L.ready_words)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    struct proc_slot *p = D_PROC(d, d->slot);
    uint64_t *mine = D_READY(d, d->slot);
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : now_ns() + timeout_ns;
    for (int slept = 0;; slept = 1) {
        if (domain_gone(d))
            return -EIDRM;
        uint32_t seen = ATOM_LOAD_SEQCST(&p->doorbell); /* D1 -> D1: work before doorbell */
        int n = 0;
        for (uint32_t w = 0; w < d->L.ready_words; w++) {
            uint64_t v = ATOM_LOAD_RELAXED(&mine[w]) ? ATOM_XCHG_SEQCST(&mine[w], 0ull) : 0;
            bits[w] = v;
            n += __builtin_popcountll(v);
        }
        if (n > 0 || slept)
            return n;
        if (timeout_ns == 0)
            return -EAGAIN;
        /* An exipc_wake before we read `seen` bumped a doorbell value we
         * would now sleep on: it left wake_pending set, so return. */
        if (ATOM_XCHG_SEQCST(&d->wake_pending, 0u) != 0)
            return 0;
        if (now_ns() >= deadline)
            return -ETIMEDOUT;
        doorbell_sleep(p, seen, deadline, INT64_MAX);
    }
}

int exipc_poll(exipc_domain_t *d, struct exipc_pollitem *items, size_t n, int64_t timeout_ns)
{
    if (d == NULL || (items == NULL && n > 0))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((items[i].chan == NULL) == (items[i].listener == NULL))
            return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    struct proc_slot *p = D_PROC(d, d->slot);
    int64_t start = now_ns();
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
    /* Spin first, as the wait policy says (the budget of a blocking
     * receive: a process pinned to one CPU spins too, its peers run on the
     * others), WITHOUT arming: an armed item makes every producer pay a
     * futex wake, spinning or not. */
    int64_t spin = recv_spin_ns(d);
    if (timeout_ns != 0 && spin > 0) {
        int64_t spin_end = spin >= INT64_MAX / 2 ? deadline : start + spin;
        for (uint32_t k = 1;; k++) {
            int ready = 0;
            for (size_t i = 0; i < n; i++) {
                /* a listener's test scans the channel table: look less often */
                bool r = items[i].chan ? chan_ready(items[i].chan) : (k & 15) == 0 && listener_ready(items[i].listener);
                items[i].ready = r;
                ready += r;
            }
            if (ready > 0)
                return ready;
            cpu_relax();
            if ((k & 15) == 0 && now_ns() >= spin_end)
                break;
        }
    }
    for (int slept = 0;; slept = 1) {
        if (domain_gone(d))
            return -EIDRM;
        uint32_t seen = ATOM_LOAD_SEQCST(&p->doorbell); /* D1 -> D1: work before doorbell */
        int ready = 0;
        for (size_t i = 0; i < n; i++) {
            int r = items[i].chan ? exipc_chan_arm(items[i].chan) : exipc_listener_arm(items[i].listener);
            items[i].ready = r == 1;
            ready += r == 1;
        }
        if (ready > 0)
            return ready;
        if (slept && ATOM_XCHG_SEQCST(&d->wake_pending, 0u) != 0)
            return 0; /* woken by exipc_wake */
        if (timeout_ns == 0)
            return -EAGAIN;
        int w = doorbell_sleep(p, seen, deadline, wait_slice_ns(d));
        if (w == WAIT_DEADLINE)
            return -ETIMEDOUT;
        if (w == WAIT_SLICE) {
            cqm_reap_all(d, false, NULL); /* a peer that died without a word shows up as a closed end */
            watch_check_unlink(d);
        }
    }
}

/* ---- blocking receive ------------------------------------------------------ */

/* Has the peer closed (or died)? Then whatever it sent before is in the ring
 * already (C1), so re-read tail to decide between data and -EPIPE. */
static int64_t closed_or_ready(exipc_chan_t *c, bool check_liveness)
{
    if (domain_gone(c->d))
        return -EIDRM;
    struct chan *ch = D_CHAN(c->d, c->idx);
    bool gone = c->peer_dead || ATOM_LOAD_SEQCST(&ch->end[1 - c->side].closed); /* C1 -> A1 */
    if (check_liveness)
        watch_check_unlink(c->d);
    if (!gone && check_liveness && chan_peer_gone(c)) {
        gone = true;
        cqm_reap_all(c->d, false, NULL); /* clean up after it now (a reaper already at it is not waited for) */
    }
    int64_t avail = ring_refresh_tail(c);
    if (avail != 0)
        return avail;
    if (gone) {
        c->peer_dead = 1;
        return -EPIPE;
    }
    return 0;
}

int64_t recv_spin_ns(exipc_domain_t *d)
{
    if (d->wait_policy == EXIPC_WAIT_PARK)
        return 0;
    if (d->wait_policy == EXIPC_WAIT_SPIN)
        return INT64_MAX / 2; /* until the deadline; wait_ready still parks past it */
    /* On a machine with one CPU the producer cannot run while we spin: park
     * at once. The producer is another process, so what counts is the CPUs
     * of the machine, not the ones this process may use: two processes
     * pinned to one CPU each still answer each other while they spin. */
    return online_cpus() > 1 ? SPIN_BEFORE_PARK_NS : 0;
}

/* Waits until something is in the ring. Returns the count ready or an error.
 * nospin: park at once (the caller has spun already, or must not spin). */
static int64_t wait_ready(exipc_chan_t *c, int64_t timeout_ns, bool nospin)
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
    int64_t spin = nospin ? 0 : recv_spin_ns(c->d);
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
        int w = futex_wait_slice(&c->rx->sleeping, 1u, deadline, wait_slice_ns(c->d));
        ATOM_STORE_RELAXED(&c->rx->sleeping, 0u);
        if (w == WAIT_DEADLINE)
            return -ETIMEDOUT;
        avail = closed_or_ready(c, w == WAIT_SLICE);
        if (avail != 0)
            return avail;
    }
}

static int recv_batch(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t timeout_ns, bool nospin)
{
    if (c == NULL || hs == NULL || max == 0)
        return -EINVAL;
    int rc = check_fork(c->d);
    if (rc != 0)
        return rc;
    int64_t avail = (int64_t)(c->rx_tail_cache - c->rx_head);
    if ((uint64_t)avail < max)
        avail = ring_refresh_tail(c);
    if (avail == 0)
        avail = wait_ready(c, timeout_ns, nospin);
    if (avail < 0)
        return (int)avail;
    return ring_take(c, hs, max, avail);
}

int exipc_recv_batch(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t timeout_ns)
{
    return recv_batch(c, hs, max, timeout_ns, false);
}

int ring_recv_batch_nospin(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t timeout_ns)
{
    return recv_batch(c, hs, max, timeout_ns, true);
}

int ring_recv_nospin(exipc_chan_t *c, exipc_handle_t *h, int64_t timeout_ns)
{
    int rc = recv_batch(c, h, 1, timeout_ns, true);
    return rc < 0 ? rc : 0;
}

int exipc_recv(exipc_chan_t *c, exipc_handle_t *h, int64_t timeout_ns)
{
    int rc = exipc_recv_batch(c, h, 1, timeout_ns);
    return rc < 0 ? rc : 0;
}

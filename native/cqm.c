/*
 * cqm.c — the central queue manager: process slots, services, channels,
 * binding, unbinding and cleanup after dead processes.
 *
 * Invariants:
 *   - Every table change happens under the CQM lock, taken with a timeout
 *     and released inside the same C call: an OFD write lock on byte
 *     CQM_LOCK_BYTE of the domain's file (exclusive between open file
 *     descriptions, so between processes and between domain handles; the
 *     kernel drops it when the holder dies), and, for the threads that share
 *     one handle's file description, the handle's local cqm_mu. hdr.lock.dirty
 *     is 1 while a holder is inside a change: whoever takes the lock and finds
 *     it set runs cqm_repair() (the holder died, or a peer scribbled it; both
 *     are harmless to repair). hdr.lock.wake is a futex bumped after every
 *     unlock, so waiters sleep instead of polling; it is only a hint.
 *     No pthread mutex lives in shared memory: glibc trusts its contents
 *     (kind, owner, robust-list pointers), so a scribbled one could make its
 *     holder abort or write through a peer-chosen pointer.
 *   - A change fills every field, then writes `state` last (release). So a
 *     holder killed mid-change leaves the old entry or a complete new one.
 *     The multi-step changes are closing a channel end (closed flag, drain,
 *     free when both ends are closed and no reaper holds it) and a reaper's
 *     commit; cqm_repair() finishes both (the commit through its record).
 *   - A process slot is ALIVE only while its owner holds the slot's liveness
 *     lock (an OFD lock on byte LIVENESS_BASE + slot of the domain file): the
 *     lock is taken before state := ALIVE and dropped after state := FREE.
 *   - A slot's gen grows on every registration; channel ends and services
 *     record it, so a reused slot never matches an old end.
 *   - Process-local objects (listeners, channels) carry the entry's gen and
 *     are checked against it before every use.
 *   - A channel is freed only when both ends are closed and neither is held.
 *
 * The reaper: a state machine on the dead process's slot.
 *
 *     ALIVE --(liveness lock gone: claim, locked)--------------> REAPING{me}
 *     REAPING{r} --(r dead or gave up: take over, locked)------> REAPING{me}
 *     REAPING{me} --(commit, locked)---------------------------> FREE
 *
 *   One reap of slot P (gen G) by reaper R, in three steps:
 *   1. claim (locked): state := REAPING with {reaper, reaper_gen} = R's slot
 *      and gen. Stop P's services. For every channel end P holds: set held,
 *      close it (its peer is woken; it drains what P sent, then gets
 *      -EPIPE), free what is queued towards P, and copy the handles in
 *      slots [head, tail) of the ring P produced on (the snapshot).
 *   2. sweep (unlocked, one pass over the heap): free every block owned by
 *      P; every block in flight on a ring P produced on that is not in that
 *      ring's snapshot (a straggler: P was killed in send after moving it to
 *      in flight, before publishing tail, so it is in no ring); and every
 *      block in flight on a FREE channel (a straggler that escaped).
 *   3. commit (locked): clear P's holds, draining again what a live
 *      producer queued towards P since step 1; a channel closed at both
 *      ends is freed now. Then write the commit record {P, G, count},
 *      reaped_procs := count, P := FREE, clear the record.
 *   Outcomes for a slot: CLEANED (this call did it), ALREADY (someone else
 *   did, or it was not dead), BUSY (a live reaper holds the claim), ALIVE.
 *   exipc_reap returns how many it CLEANED, after waiting (bounded by
 *   CQM_LOCK_TIMEOUT_NS) for BUSY ones, so when it returns every process
 *   found dead has been cleaned. The implicit reaps (a receive or poll that
 *   finds its peer dead, open, connect and listen finding a dead listener)
 *   do not wait: the closed ends they need are set in step 1.
 *
 *   Why the sweep is exact while everyone else runs:
 *   - only P can move a block to "owned by P" or "in flight on a ring P
 *     produces on", and P's slot is not reused before the commit;
 *   - held keeps the channel from being freed and re-bound, so the snapshot
 *     stays true: tail cannot grow (its producer is dead) and the live
 *     consumer only takes blocks out of flight, so a block in flight on
 *     that ring but not in the snapshot is in no ring;
 *   - a block read as "in flight on channel C" was sent after C was bound,
 *     and is freed only if C is FREE afterwards (acquire on the owner word,
 *     then on C's state); chan_free drained C's rings first, so a block that
 *     was in a ring has moved on and the CAS below fails;
 *   - every free is a CAS from the word that was read.
 *   A reaper that dies holding the lock (steps 1 and 3) leaves a claim that
 *   the next reaper takes over (every step is idempotent), and, if it died
 *   inside a commit, a record that cqm_repair() finishes. One that dies in
 *   step 2 is simply taken over. A reaper without a slot (registration into
 *   a full table) claims with reaper NO_PROC and holds the lock throughout,
 *   so nobody sees that claim while it lives.
 *
 *   Not recovered (bounded; counted free, so stat stays exact): a process
 *   killed between popping a block off a free list and owning it (alloc),
 *   between freeing a block and pushing it (free), or inside carve() after
 *   claiming a slab, leaves those free blocks off every free list: one
 *   block per such kill, or one slab run for a kill inside carve. Telling a
 *   dead carver from a live one would need a record per slab, and these
 *   windows are a few instructions long (carve: one slab's init).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"

void (*exipc__kill_point)(const char *point);

static void cqm_repair(exipc_domain_t *d);

static int ofd_cqm(exipc_domain_t *d, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = CQM_LOCK_BYTE, .l_len = 1};
    return fcntl(d->fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

#define CQM_LOCK_SLICE_NS 5000000ll /* a waiter re-tries at least this often (a dead holder rings no one) */

int cqm_lock(exipc_domain_t *d)
{
    return cqm_lock_until(d, now_ns() + CQM_LOCK_TIMEOUT_NS);
}

/* The lock for a call that has its own deadline: wait no longer than that
 * deadline (at least CQM_LOCK_FLOOR_NS, so a call with timeout 0 still gets
 * a lock held for the usual microseconds), and never longer than
 * CQM_LOCK_TIMEOUT_NS. A peer sitting on the lock then delays a call by
 * at most its own timeout. */
static int cqm_lock_for(exipc_domain_t *d, int64_t call_deadline)
{
    int64_t now = now_ns();
    int64_t dl = now + CQM_LOCK_TIMEOUT_NS;
    if (call_deadline < dl)
        dl = call_deadline > now + CQM_LOCK_FLOOR_NS ? call_deadline : now + CQM_LOCK_FLOOR_NS;
    return cqm_lock_until(d, dl);
}

int cqm_lock_until(exipc_domain_t *d, int64_t deadline)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t left0 = deadline - now_ns();
    if (left0 < 0)
        left0 = 0;
    ts.tv_sec += left0 / 1000000000ll;
    ts.tv_nsec += left0 % 1000000000ll;
    if (ts.tv_nsec >= 1000000000l) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000l;
    }
    int rc = pthread_mutex_timedlock(&d->cqm_mu, &ts); /* process-local memory: trusted */
    if (rc != 0)
        return rc == ETIMEDOUT ? -ETIMEDOUT : -EPROTO;
    struct seg_hdr *h = D_HDR(d);
    for (;;) {
        uint32_t seen = ATOM_LOAD_RELAXED(&h->lock.wake);
        rc = ofd_cqm(d, F_WRLCK);
        if (rc == 0)
            break;
        int64_t now = now_ns();
        if ((rc != -EAGAIN && rc != -EACCES && rc != -EINTR) || now >= deadline) {
            pthread_mutex_unlock(&d->cqm_mu);
            return rc == -EAGAIN || rc == -EACCES || rc == -EINTR ? -ETIMEDOUT : -EPROTO;
        }
        int64_t left = deadline - now;
        futex_wait(&h->lock.wake, seen, left < CQM_LOCK_SLICE_NS ? left : CQM_LOCK_SLICE_NS);
    }
    /* Q1 -> Q1: tables before the lock passes. The previous holder left
     * dirty set if it died inside a change: finish or undo it. */
    if (ATOM_XCHG_SEQCST(&h->lock.dirty, 1u) != 0) {
        ATOM_STORE_RELAXED(&h->lock_repairs, ATOM_LOAD_RELAXED(&h->lock_repairs) + 1);
        cqm_repair(d);
    }
    KILL_POINT("lock");
    return 0;
}

void cqm_unlock(exipc_domain_t *d)
{
    struct seg_hdr *h = D_HDR(d);
    ATOM_STORE_SEQCST(&h->lock.dirty, 0u); /* Q1 -> Q1: tables before the lock passes */
    ofd_cqm(d, F_UNLCK);
    ATOM_FETCH_ADD(&h->lock.wake, 1u);
    futex_wake(&h->lock.wake, 0x7fffffff);
    pthread_mutex_unlock(&d->cqm_mu);
}

/* Is slot `slot`, registered with generation `gen`, a live process? */
static bool proc_alive(exipc_domain_t *d, uint32_t slot, uint32_t gen)
{
    if (slot >= d->L.max_procs)
        return false;
    struct proc_slot *p = D_PROC(d, slot);
    return ATOM_LOAD_ACQUIRE(&p->state) == PROC_ALIVE && ATOM_LOAD_RELAXED(&p->gen) == gen &&
           slot_alive(d, slot);
}

/* Channel i is unused by both ends: free what is left in its rings. */
static void chan_free(exipc_domain_t *d, uint32_t i)
{
    ring_drain_free(d, i, 0);
    ring_drain_free(d, i, 1);
    ATOM_STORE_RELEASE(&D_CHAN(d, i)->state, (uint32_t)CHAN_FREE);
}

/* Frees channel i if both ends are closed and no reaper holds it. */
static void chan_free_if_done(exipc_domain_t *d, uint32_t i)
{
    struct chan *ch = D_CHAN(d, i);
    if (ATOM_LOAD_RELAXED(&ch->end[0].closed) && ATOM_LOAD_RELAXED(&ch->end[1].closed) &&
        !ATOM_LOAD_RELAXED(&ch->end[0].held) && !ATOM_LOAD_RELAXED(&ch->end[1].held))
        chan_free(d, i);
}

/* Closes side s of channel i: the peer is told (C1), and blocks in flight
 * towards s are freed. A channel closed at both ends is freed (unless a
 * reaper holds it); one whose client closed before it was accepted stays in
 * the backlog, so the server still receives what was sent, then -EPIPE.
 * Idempotent, so the repair pass may run it again. */
static void end_close(exipc_domain_t *d, uint32_t i, uint32_t s)
{
    ATOM_STORE_SEQCST(&D_CHAN(d, i)->end[s].closed, 1u); /* C1 -> A1: closed after last publication */
    KILL_POINT("end_close");
    ring_wake(d, i, s);                                  /* the peer consumes ring s */
    ring_drain_free(d, i, 1 - s);
    chan_free_if_done(d, i);
}

/* Releases slot i: no claim, FREE. */
static void slot_free(exipc_domain_t *d, uint32_t i)
{
    struct proc_slot *p = D_PROC(d, i);
    ATOM_STORE_RELAXED(&p->reaper, NO_PROC);
    ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_FREE);
}

/* Runs after a holder of the lock died inside a change. Every change is
 * either one final store (state) or idempotent, so finishing means: finish
 * a reaper's commit that had begun; redo the drain of a closing end (a
 * closed end consumes nothing, so its incoming ring may always be drained);
 * free channels closed at both ends and not held. Claims of a dead reaper
 * are left to the next reaper, which takes them over. */
static void cqm_repair(exipc_domain_t *d)
{
    struct seg_hdr *h = D_HDR(d);
    uint32_t cs = ATOM_LOAD_RELAXED(&h->commit_slot1);
    if (cs != 0) {
        if (cs - 1 < d->L.max_procs) {
            struct proc_slot *p = D_PROC(d, cs - 1);
            if (ATOM_LOAD_RELAXED(&p->state) == PROC_REAPING && ATOM_LOAD_RELAXED(&p->gen) == ATOM_LOAD_RELAXED(&h->commit_gen)) {
                ATOM_STORE_RELAXED(&h->reaped_procs, ATOM_LOAD_RELAXED(&h->commit_count));
                slot_free(d, cs - 1);
            }
        }
        ATOM_STORE_RELAXED(&h->commit_slot1, 0u);
    }
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct chan *ch = D_CHAN(d, i);
        if (ATOM_LOAD_RELAXED(&ch->state) == CHAN_FREE)
            continue;
        for (uint32_t s = 0; s < 2; s++)
            if (ATOM_LOAD_RELAXED(&ch->end[s].closed))
                ring_drain_free(d, i, 1 - s);
        chan_free_if_done(d, i);
    }
}

/* Stops service i: pending (unaccepted) channels lose their server end. */
static void service_stop(exipc_domain_t *d, uint32_t i)
{
    struct service *sv = D_SVC(d, i);
    uint32_t gen = ATOM_LOAD_RELAXED(&sv->gen);
    for (uint32_t k = 0; k < d->L.max_chans; k++) {
        struct chan *ch = D_CHAN(d, k);
        if (ATOM_LOAD_RELAXED(&ch->state) == CHAN_PENDING && ATOM_LOAD_RELAXED(&ch->service) == i &&
            ATOM_LOAD_RELAXED(&ch->service_gen) == gen && !ATOM_LOAD_RELAXED(&ch->end[1].closed))
            end_close(d, k, SIDE_SERVER);
    }
    ATOM_STORE_RELEASE(&sv->state, (uint32_t)SVC_FREE);
    ATOM_FETCH_ADD(&sv->accept_futex, 1u);
    futex_wake(&sv->accept_futex, 0x7fffffff);
}

/* Stops every service of slot `slot` registered as `gen`. Locked. */
static void services_stop(exipc_domain_t *d, uint32_t slot, uint32_t gen)
{
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct service *sv = D_SVC(d, i);
        if (ATOM_LOAD_RELAXED(&sv->state) == SVC_LISTENING && ATOM_LOAD_RELAXED(&sv->owner) == slot &&
            ATOM_LOAD_RELAXED(&sv->owner_gen) == gen)
            service_stop(d, i);
    }
}

/* A live process leaves (exipc_close): its services, channel ends and
 * blocks, then its slot. It sends nothing any more, so nothing of its own
 * is in flight outside a ring. Locked. */
void cqm_release_slot(exipc_domain_t *d, uint32_t slot)
{
    uint32_t gen = ATOM_LOAD_RELAXED(&D_PROC(d, slot)->gen);
    services_stop(d, slot, gen);
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct chan *ch = D_CHAN(d, i);
        for (uint32_t s = 0; s < 2; s++) {
            if (ATOM_LOAD_RELAXED(&ch->state) != CHAN_FREE && ATOM_LOAD_RELAXED(&ch->end[s].proc) == slot &&
                ATOM_LOAD_RELAXED(&ch->end[s].proc_gen) == gen && !ATOM_LOAD_RELAXED(&ch->end[s].closed))
                end_close(d, i, s);
        }
    }
    heap_release_owner(d, OWN_PROC, slot);
    heap_release_owner(d, OWN_CACHED, slot); /* its local cache of free blocks */
    slot_free(d, slot);
}

/* ---- the reaper ------------------------------------------------------------ */

struct flight {
    uint32_t owner;
    exipc_handle_t h;
};

/* One reap of one slot, in this process's memory. */
struct reap_job {
    exipc_domain_t *d;
    bool locked;              /* the lock is held throughout (no slot to claim with) */
    uint32_t me, me_gen;      /* the claim: our slot, or NO_PROC when locked */
    uint32_t slot, gen;       /* the dead process */
    uint8_t *tx;              /* bit per ring (chan*2 + side): P produced on it */
    uint32_t *rings;          /* those rings, in order */
    size_t nrings;
    struct flight *snap;      /* sorted: blocks in slots [head, tail) of those rings */
    size_t nsnap, capsnap;
    uint64_t stragglers;      /* step 2 found in flight but in no ring */
};

static int flight_cmp(const void *a, const void *b)
{
    const struct flight *x = a, *y = b;
    if (x->owner != y->owner)
        return x->owner < y->owner ? -1 : 1;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* Copies the handles in slots [head, tail) of ring r of channel i. */
static int snapshot_ring(struct reap_job *j, uint32_t i, uint32_t r)
{
    exipc_domain_t *d = j->d;
    struct ring *rg = D_RING(d, i, r);
    uint64_t head = ATOM_LOAD_ACQUIRE(&rg->head); /* R2 -> A2: slot consumed before head */
    uint64_t tail = ATOM_LOAD_ACQUIRE(&rg->tail); /* R1 -> A1: slot before tail */
    uint64_t cap = d->L.ring_capacity;
    if (tail - head > cap) /* scribbled: the last capacity slots are all a ring can hold */
        head = tail - cap;
    if (j->nsnap + (tail - head) > j->capsnap) {
        size_t want = j->capsnap * 2 + (size_t)(tail - head) + 64;
        struct flight *f = realloc(j->snap, want * sizeof *f);
        if (f == NULL)
            return -ENOMEM;
        j->snap = f;
        j->capsnap = want;
    }
    uint32_t owner = OWNER(OWN_FLIGHT, i * 2 + r);
    for (uint64_t k = head; k != tail; k++)
        j->snap[j->nsnap++] = (struct flight){owner, ATOM_LOAD_RELAXED(&rg->slots[k & (cap - 1)])};
    return 0;
}

/* Step 2's verdict on one block that is not free. */
static bool doomed(void *arg, uint32_t owner, exipc_handle_t h)
{
    struct reap_job *j = arg;
    exipc_domain_t *d = j->d;
    if (owner == OWNER(OWN_PROC, j->slot) || owner == OWNER(OWN_CACHED, j->slot))
        return true; /* its blocks, and the free ones in its local cache */
    if (OWN_KIND(owner) != OWN_FLIGHT)
        return false;
    uint32_t id = OWN_ID(owner);
    bool lost;
    if (id / 2 >= d->L.max_chans) {
        lost = true; /* in flight on no channel at all: scribbled, and in no ring */
    } else if (j->tx[id / 8] & (1u << (id % 8))) {
        struct flight key = {owner, h};
        lost = j->nsnap == 0 || bsearch(&key, j->snap, j->nsnap, sizeof key, flight_cmp) == NULL;
    } else {
        lost = ATOM_LOAD_ACQUIRE(&D_CHAN(d, id / 2)->state) == CHAN_FREE;
    }
    j->stragglers += lost;
    return lost;
}

static void job_free(struct reap_job *j)
{
    free(j->tx);
    free(j->rings);
    free(j->snap);
}

/* Step 1, locked. REAP_CLEANED means "claimed, go on". */
static int reap_claim(struct reap_job *j, uint32_t slot, struct reap_tally *t)
{
    exipc_domain_t *d = j->d;
    struct proc_slot *p = D_PROC(d, slot);
    uint32_t st = ATOM_LOAD_ACQUIRE(&p->state);
    if (st == PROC_ALIVE) {
        if (slot == d->slot || slot_alive(d, slot))
            return REAP_ALIVE;
    } else if (st == PROC_REAPING) {
        uint32_t r = ATOM_LOAD_RELAXED(&p->reaper), rg = ATOM_LOAD_RELAXED(&p->reaper_gen);
        if (r != NO_PROC && proc_alive(d, r, rg))
            return REAP_BUSY; /* another process, or another thread of ours */
        struct seg_hdr *h = D_HDR(d);
        ATOM_STORE_RELAXED(&h->reap_takeovers, ATOM_LOAD_RELAXED(&h->reap_takeovers) + 1);
        if (t != NULL)
            t->takeovers++;
    } else {
        return REAP_ALREADY; /* FREE (or scribbled: nothing we can claim) */
    }
    ATOM_STORE_RELAXED(&p->reaper, j->me);
    ATOM_STORE_RELAXED(&p->reaper_gen, j->me_gen);
    ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_REAPING);
    KILL_POINT("reap.claimed");

    uint32_t gen = ATOM_LOAD_RELAXED(&p->gen);
    j->slot = slot;
    j->gen = gen;
    j->tx = calloc(((size_t)d->L.max_chans * 2 + 7) / 8, 1);
    j->rings = malloc((size_t)d->L.max_chans * 2 * sizeof *j->rings);
    if (j->tx == NULL || j->rings == NULL)
        goto nomem;
    services_stop(d, slot, gen);
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct chan *ch = D_CHAN(d, i);
        if (ATOM_LOAD_RELAXED(&ch->state) == CHAN_FREE)
            continue;
        for (uint32_t s = 0; s < 2; s++) {
            if (ATOM_LOAD_RELAXED(&ch->end[s].proc) != slot || ATOM_LOAD_RELAXED(&ch->end[s].proc_gen) != gen)
                continue;
            ATOM_STORE_RELAXED(&ch->end[s].held, 1u);
            if (!ATOM_LOAD_RELAXED(&ch->end[s].closed))
                end_close(d, i, s);
            else
                ring_drain_free(d, i, 1 - s); /* a close that a dead holder began */
            if (snapshot_ring(j, i, s) != 0)
                goto nomem;
            uint32_t id = i * 2 + s;
            j->tx[id / 8] |= (uint8_t)(1u << (id % 8));
            j->rings[j->nrings++] = id;
        }
    }
    if (j->nsnap > 1)
        qsort(j->snap, j->nsnap, sizeof *j->snap, flight_cmp);
    KILL_POINT("reap.closed");
    return REAP_CLEANED;
nomem:
    /* Give the claim up: anyone may take it over (every step is idempotent). */
    ATOM_STORE_RELAXED(&p->reaper, NO_PROC);
    return -ENOMEM;
}

/* Step 3, locked. */
static int reap_commit(struct reap_job *j)
{
    exipc_domain_t *d = j->d;
    struct seg_hdr *h = D_HDR(d);
    struct proc_slot *p = D_PROC(d, j->slot);
    if (ATOM_LOAD_RELAXED(&p->state) != PROC_REAPING || ATOM_LOAD_RELAXED(&p->gen) != j->gen ||
        ATOM_LOAD_RELAXED(&p->reaper) != j->me || ATOM_LOAD_RELAXED(&p->reaper_gen) != j->me_gen)
        return REAP_ALREADY; /* not our claim any more (scribbled?): leave it */
    KILL_POINT("reap.release");
    for (size_t k = 0; k < j->nrings; k++) {
        uint32_t i = j->rings[k] / 2, s = j->rings[k] % 2;
        struct chan *ch = D_CHAN(d, i);
        if (ATOM_LOAD_RELAXED(&ch->state) == CHAN_FREE || ATOM_LOAD_RELAXED(&ch->end[s].proc) != j->slot ||
            ATOM_LOAD_RELAXED(&ch->end[s].proc_gen) != j->gen)
            continue;
        ATOM_STORE_RELAXED(&ch->end[s].held, 0u);
        ring_drain_free(d, i, 1 - s); /* sent towards P by a producer that had not seen closed */
        chan_free_if_done(d, i);
    }
    uint64_t count = ATOM_LOAD_RELAXED(&h->reaped_procs) + 1;
    ATOM_STORE_RELAXED(&h->commit_gen, j->gen);
    ATOM_STORE_RELAXED(&h->commit_count, count);
    ATOM_STORE_RELAXED(&h->commit_slot1, j->slot + 1);
    ATOM_STORE_RELAXED(&h->reaped_procs, count);
    KILL_POINT("reap.commit");
    slot_free(d, j->slot);
    ATOM_STORE_RELAXED(&h->commit_slot1, 0u);
    return REAP_CLEANED;
}

/* One reap of `slot`; `locked`: the caller holds the lock and has no slot. */
static int reap_one(exipc_domain_t *d, uint32_t slot, bool locked, struct reap_tally *t)
{
    struct reap_job j = {.d = d, .locked = locked};
    j.me = locked ? NO_PROC : d->slot;
    j.me_gen = locked ? 0 : d->slot_gen;
    int rc = locked ? 0 : cqm_lock(d);
    if (rc != 0)
        return rc;
    rc = reap_claim(&j, slot, t);
    if (rc == REAP_CLEANED) {
        if (!locked)
            cqm_unlock(d);
        KILL_POINT("reap.sweep");
        heap_reclaim(d, doomed, &j);
        if (j.stragglers != 0)
            ATOM_FETCH_ADD(&D_HDR(d)->reap_stragglers, j.stragglers);
        int lrc = locked ? 0 : cqm_lock(d);
        if (lrc != 0) {
            /* Give the claim up (a single store; the lock is not ours, but
             * nobody else writes a live reaper's claim). */
            ATOM_STORE_RELAXED(&D_PROC(d, slot)->reaper, NO_PROC);
            job_free(&j);
            return lrc;
        }
        rc = reap_commit(&j);
    }
    if (!locked)
        cqm_unlock(d);
    job_free(&j);
    return rc;
}

int cqm_reap_slot(exipc_domain_t *d, uint32_t slot, struct reap_tally *t)
{
    if (slot >= d->L.max_procs)
        return -EINVAL;
    return reap_one(d, slot, false, t);
}

/* Is slot i worth a locked look: dead but ALIVE, or claimed? */
static bool reap_candidate(exipc_domain_t *d, uint32_t i)
{
    uint32_t st = ATOM_LOAD_ACQUIRE(&D_PROC(d, i)->state);
    return st == PROC_REAPING || (st == PROC_ALIVE && i != d->slot && !slot_alive(d, i));
}

int cqm_reap_all(exipc_domain_t *d, bool wait_busy, struct reap_tally *t)
{
    struct reap_tally local = {0};
    if (t == NULL)
        t = &local;
    uint8_t busy[MAX_PROCS] = {0};
    int n = 0, err = 0;
    int64_t deadline = 0;
    for (;;) {
        bool any_busy = false;
        for (uint32_t i = 0; i < d->L.max_procs; i++) {
            if (!reap_candidate(d, i)) {
                if (busy[i]) { /* the other reaper finished */
                    busy[i] = 0;
                    t->already++;
                }
                continue;
            }
            int o = reap_one(d, i, false, t);
            if (o == REAP_BUSY) {
                any_busy = true;
                if (!busy[i])
                    t->busy++;
                busy[i] = 1;
                continue;
            }
            if (busy[i] && o != REAP_CLEANED)
                o = REAP_ALREADY;
            busy[i] = 0;
            if (o == REAP_CLEANED) {
                t->cleaned++;
                n++;
            } else if (o == REAP_ALREADY) {
                t->already++;
            } else if (o == REAP_ALIVE) {
                t->alive++;
            } else if (o < 0) {
                err = o;
            }
        }
        if (!any_busy || !wait_busy)
            break;
        int64_t now = now_ns();
        if (deadline == 0)
            deadline = now + CQM_LOCK_TIMEOUT_NS;
        else if (now >= deadline)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return n > 0 || err == 0 ? n : err;
}

int exipc_reap(exipc_domain_t *d)
{
    if (d == NULL)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    return cqm_reap_all(d, true, NULL);
}

/* Takes a FREE slot for this process. Locked. -EMFILE if there is none. */
static int take_slot(exipc_domain_t *d)
{
    for (uint32_t i = 0; i < d->L.max_procs; i++) {
        struct proc_slot *p = D_PROC(d, i);
        if (ATOM_LOAD_ACQUIRE(&p->state) != PROC_FREE)
            continue;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = LIVENESS_BASE + i, .l_len = 1};
        if (fcntl(d->fd, F_OFD_SETLK, &fl) != 0)
            continue; /* its last owner has not closed its file yet */
        KILL_POINT("register");
        uint32_t gen = ATOM_LOAD_RELAXED(&p->gen) + 1;
        if (gen == 0)
            gen = 1;
        ATOM_STORE_RELAXED(&p->gen, gen);
        ATOM_STORE_RELAXED(&p->pid, (int32_t)getpid());
        ATOM_STORE_RELAXED(&p->doorbell, 0u);
        ATOM_STORE_RELAXED(&p->reaper, NO_PROC);
        ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_ALIVE);
        d->slot = i;
        d->slot_gen = gen;
        return 0;
    }
    return -EMFILE;
}

int cqm_register(exipc_domain_t *d)
{
    d->slot = NO_PROC;
    int rc = cqm_lock(d);
    if (rc != 0)
        return rc;
    rc = take_slot(d);
    if (rc == -EMFILE) {
        /* Every slot is taken: reap the dead now, with the lock held, as we
         * have no slot to claim with. */
        for (uint32_t i = 0; i < d->L.max_procs; i++)
            if (reap_candidate(d, i))
                reap_one(d, i, true, NULL);
        rc = take_slot(d);
    }
    cqm_unlock(d);
    if (rc == 0)
        cqm_reap_all(d, false, NULL); /* a segment left by crashed processes is cleaned on attach */
    return rc;
}

int cqm_reap_unregistered(exipc_domain_t *d)
{
    int rc = cqm_lock(d);
    if (rc != 0)
        return rc;
    int n = 0;
    for (uint32_t i = 0; i < d->L.max_procs; i++)
        if (reap_candidate(d, i) && reap_one(d, i, true, NULL) == REAP_CLEANED)
            n++;
    cqm_unlock(d);
    return n;
}

bool chan_peer_gone(exipc_chan_t *c)
{
    exipc_domain_t *d = c->d;
    struct chan *ch = D_CHAN(d, c->idx);
    if (ATOM_LOAD_ACQUIRE(&ch->gen) != c->gen || ATOM_LOAD_ACQUIRE(&ch->state) == CHAN_FREE)
        return true;
    uint32_t peer = 1 - c->side;
    if (ATOM_LOAD_ACQUIRE(&ch->end[peer].closed)) /* C1 -> A1 */
        return true;
    if (ATOM_LOAD_ACQUIRE(&ch->state) == CHAN_PENDING) {
        /* Not accepted yet: the peer is whoever listens on the service. */
        uint32_t si = ATOM_LOAD_RELAXED(&ch->service);
        if (si >= d->L.max_chans)
            return true;
        struct service *sv = D_SVC(d, si);
        if (ATOM_LOAD_ACQUIRE(&sv->state) != SVC_LISTENING || ATOM_LOAD_RELAXED(&sv->gen) != ATOM_LOAD_RELAXED(&ch->service_gen))
            return true;
        return !proc_alive(d, ATOM_LOAD_RELAXED(&sv->owner), ATOM_LOAD_RELAXED(&sv->owner_gen));
    }
    return !proc_alive(d, ATOM_LOAD_RELAXED(&ch->end[peer].proc), ATOM_LOAD_RELAXED(&ch->end[peer].proc_gen));
}

/* ---- local object lists ---------------------------------------------------- */

static void chan_link(exipc_domain_t *d, exipc_chan_t *c)
{
    pthread_mutex_lock(&d->objs_lock);
    c->prev = NULL;
    c->next = d->chans;
    if (d->chans)
        d->chans->prev = c;
    d->chans = c;
    pthread_mutex_unlock(&d->objs_lock);
}

static void chan_unlink(exipc_domain_t *d, exipc_chan_t *c)
{
    pthread_mutex_lock(&d->objs_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        d->chans = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&d->objs_lock);
}

static void chan_init(exipc_domain_t *d, exipc_chan_t *c, uint32_t idx, uint32_t gen, uint32_t side)
{
    memset(c, 0, sizeof *c);
    c->d = d;
    c->idx = idx;
    c->gen = gen;
    c->side = side;
    c->tx = D_RING(d, idx, side);
    c->rx = D_RING(d, idx, 1 - side);
    c->tx_owner = OWNER(OWN_FLIGHT, idx * 2 + side);
    c->rx_owner = OWNER(OWN_FLIGHT, idx * 2 + 1 - side);
    c->mask = d->L.ring_capacity - 1;
    chan_link(d, c);
}

/* ---- services ---------------------------------------------------------------- */

static bool name_is(struct service *sv, const char *name, size_t n)
{
    return memcmp(sv->name, name, n + 1) == 0;
}

/* Finds the listening service NAME. One whose owner is dead is stopped
 * here, and *dead set: the caller reaps the owner once it has unlocked.
 * Locked. */
static int find_service(exipc_domain_t *d, const char *name, size_t n, bool *dead)
{
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct service *sv = D_SVC(d, i);
        if (ATOM_LOAD_ACQUIRE(&sv->state) != SVC_LISTENING || !name_is(sv, name, n))
            continue;
        if (proc_alive(d, ATOM_LOAD_RELAXED(&sv->owner), ATOM_LOAD_RELAXED(&sv->owner_gen)))
            return (int)i;
        service_stop(d, i);
        *dead = true;
    }
    return -1;
}

int exipc_listen(exipc_domain_t *d, const char *service, exipc_listener_t **out)
{
    if (d == NULL || out == NULL || !valid_name(service, EXIPC_SERVICE_MAX))
        return -EINVAL;
    *out = NULL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    exipc_listener_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    size_t n = strlen(service);
    rc = cqm_lock(d);
    if (rc != 0) {
        free(l);
        return rc;
    }
    bool dead = false;
    if (find_service(d, service, n, &dead) >= 0) {
        rc = -EEXIST;
    } else {
        rc = -EMFILE;
        for (uint32_t i = 0; i < d->L.max_chans; i++) {
            struct service *sv = D_SVC(d, i);
            if (ATOM_LOAD_RELAXED(&sv->state) != SVC_FREE)
                continue;
            memset(sv->name, 0, sizeof sv->name);
            memcpy(sv->name, service, n);
            uint32_t gen = ATOM_LOAD_RELAXED(&sv->gen) + 1;
            ATOM_STORE_RELAXED(&sv->gen, gen);
            ATOM_STORE_RELAXED(&sv->owner, d->slot);
            ATOM_STORE_RELAXED(&sv->owner_gen, d->slot_gen);
            ATOM_STORE_RELEASE(&sv->state, (uint32_t)SVC_LISTENING);
            l->d = d;
            l->idx = i;
            l->gen = gen;
            rc = 0;
            break;
        }
    }
    if (rc == 0) {
        ATOM_FETCH_ADD(&D_HDR(d)->services_epoch, 1u);
        futex_wake(&D_HDR(d)->services_epoch, 0x7fffffff);
    }
    cqm_unlock(d);
    if (dead)
        cqm_reap_all(d, false, NULL);
    if (rc != 0) {
        free(l);
        return rc;
    }
    pthread_mutex_lock(&d->objs_lock);
    l->next = d->listeners;
    if (d->listeners)
        d->listeners->prev = l;
    d->listeners = l;
    pthread_mutex_unlock(&d->objs_lock);
    *out = l;
    return 0;
}

/* Is the listener's service entry still ours? Locked. */
static bool listener_valid(exipc_listener_t *l)
{
    exipc_domain_t *d = l->d;
    struct service *sv = D_SVC(d, l->idx);
    return ATOM_LOAD_RELAXED(&sv->state) == SVC_LISTENING && ATOM_LOAD_RELAXED(&sv->gen) == l->gen &&
           ATOM_LOAD_RELAXED(&sv->owner) == d->slot && ATOM_LOAD_RELAXED(&sv->owner_gen) == d->slot_gen;
}

int exipc_accept(exipc_listener_t *l, int64_t timeout_ns, exipc_chan_t **out)
{
    if (l == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    exipc_domain_t *d = l->d;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    exipc_chan_t *c = malloc(sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : now_ns() + timeout_ns;
    struct service *sv = D_SVC(d, l->idx);
    for (;;) {
        rc = cqm_lock(d);
        if (rc != 0)
            break;
        if (!listener_valid(l)) {
            cqm_unlock(d);
            rc = -EPROTO;
            break;
        }
        uint32_t seen = ATOM_LOAD_ACQUIRE(&sv->accept_futex);
        int64_t best = -1;
        uint64_t best_seq = UINT64_MAX;
        for (uint32_t i = 0; i < d->L.max_chans; i++) {
            struct chan *ch = D_CHAN(d, i);
            if (ATOM_LOAD_RELAXED(&ch->state) == CHAN_PENDING && ATOM_LOAD_RELAXED(&ch->service) == l->idx &&
                ATOM_LOAD_RELAXED(&ch->service_gen) == l->gen && !ATOM_LOAD_RELAXED(&ch->end[1].closed) &&
                ATOM_LOAD_RELAXED(&ch->seq) < best_seq) {
                best = i;
                best_seq = ATOM_LOAD_RELAXED(&ch->seq);
            }
        }
        if (best >= 0) {
            struct chan *ch = D_CHAN(d, (uint32_t)best);
            ATOM_STORE_RELAXED(&ch->end[1].proc, d->slot);
            ATOM_STORE_RELAXED(&ch->end[1].proc_gen, d->slot_gen);
            ATOM_STORE_RELEASE(&ch->state, (uint32_t)CHAN_BOUND);
            chan_init(d, c, (uint32_t)best, ATOM_LOAD_RELAXED(&ch->gen), SIDE_SERVER);
            cqm_unlock(d);
            *out = c;
            return 0;
        }
        cqm_unlock(d);
        if (timeout_ns == 0) {
            rc = -EAGAIN;
            break;
        }
        int64_t now = now_ns();
        if (now >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        int64_t slice = deadline - now < WAIT_SLICE_NS ? deadline - now : WAIT_SLICE_NS;
        futex_wait(&sv->accept_futex, seen, slice);
    }
    free(c);
    return rc;
}

int exipc_listener_close(exipc_listener_t *l)
{
    if (l == NULL)
        return -EINVAL;
    exipc_domain_t *d = l->d;
    if (check_fork(d) == 0 && cqm_lock(d) == 0) {
        if (listener_valid(l))
            service_stop(d, l->idx);
        cqm_unlock(d);
    }
    pthread_mutex_lock(&d->objs_lock);
    if (l->prev)
        l->prev->next = l->next;
    else
        d->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&d->objs_lock);
    free(l);
    return 0;
}

int exipc_connect(exipc_domain_t *d, const char *service, int64_t timeout_ns, exipc_chan_t **out)
{
    if (d == NULL || out == NULL || !valid_name(service, EXIPC_SERVICE_MAX))
        return -EINVAL;
    *out = NULL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    exipc_chan_t *c = malloc(sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    size_t n = strlen(service);
    struct seg_hdr *h = D_HDR(d);
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : now_ns() + timeout_ns;
    for (;;) {
        uint32_t epoch = ATOM_LOAD_ACQUIRE(&h->services_epoch);
        rc = cqm_lock_for(d, deadline);
        if (rc != 0)
            break;
        bool dead = false;
        int si = find_service(d, service, n, &dead);
        if (si >= 0) {
            rc = -EMFILE;
            for (uint32_t i = 0; i < d->L.max_chans; i++) {
                struct chan *ch = D_CHAN(d, i);
                if (ATOM_LOAD_RELAXED(&ch->state) != CHAN_FREE)
                    continue;
                struct service *sv = D_SVC(d, (uint32_t)si);
                ring_reset(d, i);
                uint32_t gen = ATOM_LOAD_RELAXED(&ch->gen) + 1;
                ATOM_STORE_RELAXED(&ch->gen, gen);
                ATOM_STORE_RELAXED(&ch->service, (uint32_t)si);
                ATOM_STORE_RELAXED(&ch->service_gen, ATOM_LOAD_RELAXED(&sv->gen));
                ATOM_STORE_RELAXED(&ch->seq, ++h->chan_seq);
                ATOM_STORE_RELAXED(&ch->end[0].proc, d->slot);
                ATOM_STORE_RELAXED(&ch->end[0].proc_gen, d->slot_gen);
                ATOM_STORE_RELAXED(&ch->end[0].closed, 0u);
                ATOM_STORE_RELAXED(&ch->end[1].proc, NO_PROC);
                ATOM_STORE_RELAXED(&ch->end[1].proc_gen, 0u);
                ATOM_STORE_RELAXED(&ch->end[1].closed, 0u);
                ATOM_STORE_RELAXED(&ch->end[0].held, 0u);
                ATOM_STORE_RELAXED(&ch->end[1].held, 0u);
                KILL_POINT("connect");
                ATOM_STORE_RELEASE(&ch->state, (uint32_t)CHAN_PENDING);
                chan_init(d, c, i, gen, SIDE_CLIENT);
                ATOM_FETCH_ADD(&sv->accept_futex, 1u);
                futex_wake(&sv->accept_futex, 0x7fffffff);
                listener_bell(d, (uint32_t)si);
                rc = 0;
                break;
            }
            cqm_unlock(d);
            if (dead)
                cqm_reap_all(d, false, NULL);
            if (rc == 0) {
                *out = c;
                return 0;
            }
            break;
        }
        cqm_unlock(d);
        if (dead)
            cqm_reap_all(d, false, NULL);
        int64_t now = now_ns();
        if (timeout_ns == 0 || now >= deadline) {
            rc = -ENOENT;
            break;
        }
        int64_t slice = deadline - now < WAIT_SLICE_NS ? deadline - now : WAIT_SLICE_NS;
        futex_wait(&h->services_epoch, epoch, slice);
    }
    free(c);
    return rc;
}

int exipc_chan_close(exipc_chan_t *c)
{
    if (c == NULL)
        return -EINVAL;
    exipc_domain_t *d = c->d;
    if (check_fork(d) == 0 && cqm_lock(d) == 0) {
        struct chan *ch = D_CHAN(d, c->idx);
        if (ATOM_LOAD_RELAXED(&ch->gen) == c->gen && ATOM_LOAD_RELAXED(&ch->state) != CHAN_FREE &&
            ATOM_LOAD_RELAXED(&ch->end[c->side].proc) == d->slot && !ATOM_LOAD_RELAXED(&ch->end[c->side].closed))
            end_close(d, c->idx, c->side);
        cqm_unlock(d);
    }
    chan_unlink(d, c);
    free(c);
    return 0;
}

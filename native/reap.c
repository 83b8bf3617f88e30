/*
 * reap.c — cleanup after dead processes: the reaper's state machine.
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
 *   The heap loses nothing to a kill either: every move of a block to or
 *   from free and every change to the page pool is made under the pool's
 *   lock, which a locker that finds its holder dead takes over and rebuilds
 *   from the page table and the block words (heap.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"
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
        lost = ATOM_LOAD_ACQUIRE(&D_CHAN(d, id / 2)->state) == CHAN_FREE; /* K1 -> K1': channel fields before state */
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
    uint32_t st = ATOM_LOAD_ACQUIRE(&p->state); /* P1 -> P1': slot fields before state */
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
    ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_REAPING); /* P1 -> P1': slot fields before state */
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

#ifdef EXIPC_TESTING
int cqm_reap_slot(exipc_domain_t *d, uint32_t slot, struct reap_tally *t)
{
    if (slot >= d->L.max_procs)
        return -EINVAL;
    return reap_one(d, slot, false, t);
}
#endif

/* Is slot i worth a locked look: dead but ALIVE, or claimed? */
static bool reap_candidate(exipc_domain_t *d, uint32_t i)
{
    uint32_t st = ATOM_LOAD_ACQUIRE(&D_PROC(d, i)->state); /* P1 -> P1': slot fields before state */
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

int reap_dead_locked(exipc_domain_t *d)
{
    int n = 0;
    for (uint32_t i = 0; i < d->L.max_procs; i++)
        if (reap_candidate(d, i) && reap_one(d, i, true, NULL) == REAP_CLEANED)
            n++;
    return n;
}

int cqm_reap_unregistered(exipc_domain_t *d)
{
    int rc = cqm_lock(d);
    if (rc != 0)
        return rc;
    int n = reap_dead_locked(d);
    cqm_unlock(d);
    return n;
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

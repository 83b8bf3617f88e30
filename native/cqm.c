/*
 * cqm.c — the central queue manager's lock and tables: process slots,
 * services and channels, and the primitive changes the binding calls
 * (bind.c) and the reaper (reap.c) are made of.
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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"


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
int cqm_lock_for(exipc_domain_t *d, int64_t call_deadline)
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
    if (ATOM_XCHG_SEQCST(&h->lock.dirty, 1u) != 0) { /* Q1 -> Q1: tables before the lock passes */
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
    bump_wake(&h->lock.wake);
    pthread_mutex_unlock(&d->cqm_mu);
}
/* Channel i is unused by both ends: free what is left in its rings. */
static void chan_free(exipc_domain_t *d, uint32_t i)
{
    ring_drain_free(d, i, 0);
    ring_drain_free(d, i, 1);
    ATOM_STORE_RELEASE(&D_CHAN(d, i)->state, (uint32_t)CHAN_FREE); /* K1 -> K1': channel fields before state */
}

/* Frees channel i if both ends are closed and no reaper holds it. */
void chan_free_if_done(exipc_domain_t *d, uint32_t i)
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
void end_close(exipc_domain_t *d, uint32_t i, uint32_t s)
{
    ATOM_STORE_SEQCST(&D_CHAN(d, i)->end[s].closed, 1u); /* C1 -> A1: closed after last publication */
    KILL_POINT("end_close");
    ring_wake(d, i, s);                                  /* the peer consumes ring s */
    ring_drain_free(d, i, 1 - s);
    chan_free_if_done(d, i);
}

/* Releases slot i: no claim, FREE. */
void slot_free(exipc_domain_t *d, uint32_t i)
{
    struct proc_slot *p = D_PROC(d, i);
    ATOM_STORE_RELAXED(&p->reaper, NO_PROC);
    ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_FREE); /* P1 -> P1': slot fields before state */
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
void service_stop(exipc_domain_t *d, uint32_t i)
{
    struct service *sv = D_SVC(d, i);
    uint32_t gen = ATOM_LOAD_RELAXED(&sv->gen);
    for (uint32_t k = 0; k < d->L.max_chans; k++) {
        if (chan_pending_on(D_CHAN(d, k), i, gen))
            end_close(d, k, SIDE_SERVER);
    }
    ATOM_STORE_RELEASE(&sv->state, (uint32_t)SVC_FREE); /* V1 -> V1': service fields before state */
    bump_wake(&sv->accept_futex); /* B1 -> B1: backlog before accept_futex */
}

/* Stops every service of slot `slot` registered as `gen`. Locked. */
void services_stop(exipc_domain_t *d, uint32_t slot, uint32_t gen)
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

/* Takes a FREE slot for this process. Locked. -EMFILE if there is none. */
int cqm_take_slot(exipc_domain_t *d)
{
    for (uint32_t i = 0; i < d->L.max_procs; i++) {
        struct proc_slot *p = D_PROC(d, i);
        if (ATOM_LOAD_ACQUIRE(&p->state) != PROC_FREE) /* P1 -> P1': slot fields before state */
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
        ATOM_STORE_RELAXED(&p->pidns, d->watch.pidns);
        ATOM_STORE_RELAXED(&p->doorbell, 0u);
        ATOM_STORE_RELAXED(&p->reaper, NO_PROC);
        ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_ALIVE); /* P1 -> P1': slot fields before state */
        d->slot = i;
        d->slot_gen = gen;
        return 0;
    }
    return -EMFILE;
}

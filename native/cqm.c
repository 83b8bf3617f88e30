/*
 * cqm.c — the central queue manager: process slots, services, channels,
 * binding, unbinding and cleanup after dead processes.
 *
 * Invariants:
 *   - Every table change happens under hdr.lock, a process-shared robust
 *     mutex, taken with a timeout and released inside the same C call (a
 *     robust mutex belongs to a thread; Go may move a goroutine between
 *     threads between calls).
 *   - A change fills every field, then writes `state` last (release). So a
 *     holder killed mid-change leaves the old entry or a complete new one.
 *     The one multi-step change is closing a channel end (closed flag, drain,
 *     free when both ends are closed); cqm_repair() finishes it.
 *   - A process slot is ALIVE only while its owner holds the slot's liveness
 *     lock (an OFD lock on byte LIVENESS_BASE + slot of the domain file): the
 *     lock is taken before state := ALIVE and dropped after state := FREE.
 *   - A slot's gen grows on every registration; channel ends and services
 *     record it, so a reused slot never matches an old end.
 *   - Process-local objects (listeners, channels) carry the entry's gen and
 *     are checked against it before every use.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"

#define NO_PROC 0xffffffffu

static void cqm_repair(exipc_domain_t *d);

int cqm_lock(exipc_domain_t *d)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += CQM_LOCK_TIMEOUT_NS / 1000000000ll;
    int rc = pthread_mutex_timedlock(&D_HDR(d)->lock, &ts);
    if (rc == 0)
        return 0;
    if (rc == EOWNERDEAD) {
        /* The previous holder died inside a change: finish or undo it. */
        cqm_repair(d);
        pthread_mutex_consistent(&D_HDR(d)->lock);
        return 0;
    }
    return rc == ETIMEDOUT ? -ETIMEDOUT : -EPROTO;
}

void cqm_unlock(exipc_domain_t *d)
{
    pthread_mutex_unlock(&D_HDR(d)->lock);
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

/* Closes side s of channel i: the peer is told (C1), and blocks in flight
 * towards s are freed. A channel closed at both ends is freed; one whose
 * client closed before it was accepted stays in the backlog, so the server
 * still receives what was sent, then -EPIPE. Idempotent, so the repair pass
 * may run it again. */
static void end_close(exipc_domain_t *d, uint32_t i, uint32_t s)
{
    struct chan *ch = D_CHAN(d, i);
    ATOM_STORE_SEQCST(&ch->end[s].closed, 1u); /* C1 -> A1: closed after last publication */
    ring_wake(d, i, s);                        /* the peer consumes ring s */
    ring_drain_free(d, i, 1 - s);
    if (ATOM_LOAD_RELAXED(&ch->end[1 - s].closed) != 0)
        chan_free(d, i);
}

static void cqm_repair(exipc_domain_t *d)
{
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct chan *ch = D_CHAN(d, i);
        uint32_t st = ATOM_LOAD_RELAXED(&ch->state);
        if (st != CHAN_FREE && ATOM_LOAD_RELAXED(&ch->end[0].closed) && ATOM_LOAD_RELAXED(&ch->end[1].closed))
            chan_free(d, i);
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

/* Releases everything process slot `slot` holds: services, channel ends,
 * blocks, then the slot. `dead`: a reaper cleaning for a dead process. */
void cqm_release_slot(exipc_domain_t *d, uint32_t slot, bool dead)
{
    struct proc_slot *p = D_PROC(d, slot);
    uint32_t gen = ATOM_LOAD_RELAXED(&p->gen);
    if (dead)
        ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_REAPING);
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct service *sv = D_SVC(d, i);
        if (ATOM_LOAD_RELAXED(&sv->state) == SVC_LISTENING && ATOM_LOAD_RELAXED(&sv->owner) == slot &&
            ATOM_LOAD_RELAXED(&sv->owner_gen) == gen)
            service_stop(d, i);
    }
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct chan *ch = D_CHAN(d, i);
        for (uint32_t s = 0; s < 2; s++) {
            if (ATOM_LOAD_RELAXED(&ch->state) != CHAN_FREE && ATOM_LOAD_RELAXED(&ch->end[s].proc) == slot &&
                ATOM_LOAD_RELAXED(&ch->end[s].proc_gen) == gen && !ATOM_LOAD_RELAXED(&ch->end[s].closed))
                end_close(d, i, s);
        }
    }
    heap_release_owner(d, OWN_PROC, slot);
    if (dead)
        ATOM_FETCH_ADD(&D_HDR(d)->reaped_procs, 1u);
    ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_FREE);
}

/* Reaps every dead slot. Called with the lock held. */
static int reap_locked(exipc_domain_t *d)
{
    int n = 0;
    for (uint32_t i = 0; i < d->L.max_procs; i++) {
        if (i == d->slot)
            continue;
        uint32_t st = ATOM_LOAD_ACQUIRE(&D_PROC(d, i)->state);
        if ((st == PROC_ALIVE || st == PROC_REAPING) && !slot_alive(d, i)) {
            cqm_release_slot(d, i, true);
            n++;
        }
    }
    return n;
}

int exipc_reap(exipc_domain_t *d)
{
    if (d == NULL)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    /* Pollers call this every few tens of ms: look without the lock first,
     * so an idle domain with nobody dead costs a few reads and F_OFD_GETLKs. */
    bool any = false;
    for (uint32_t i = 0; i < d->L.max_procs && !any; i++) {
        uint32_t st = ATOM_LOAD_ACQUIRE(&D_PROC(d, i)->state);
        any = i != d->slot && (st == PROC_REAPING || (st == PROC_ALIVE && !slot_alive(d, i)));
    }
    if (!any)
        return 0;
    rc = cqm_lock(d);
    if (rc != 0)
        return rc;
    int n = reap_locked(d);
    cqm_unlock(d);
    return n;
}

int cqm_register(exipc_domain_t *d)
{
    d->slot = NO_PROC;
    int rc = cqm_lock(d);
    if (rc != 0)
        return rc;
    reap_locked(d); /* a segment left by crashed processes is cleaned on attach */
    rc = -EMFILE;
    for (uint32_t i = 0; i < d->L.max_procs; i++) {
        struct proc_slot *p = D_PROC(d, i);
        if (ATOM_LOAD_ACQUIRE(&p->state) != PROC_FREE)
            continue;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = LIVENESS_BASE + i, .l_len = 1};
        if (fcntl(d->fd, F_OFD_SETLK, &fl) != 0)
            continue; /* its last owner has not closed its file yet */
        uint32_t gen = ATOM_LOAD_RELAXED(&p->gen) + 1;
        if (gen == 0)
            gen = 1;
        ATOM_STORE_RELAXED(&p->gen, gen);
        ATOM_STORE_RELAXED(&p->pid, (int32_t)getpid());
        ATOM_STORE_RELAXED(&p->doorbell, 0u);
        ATOM_STORE_RELEASE(&p->state, (uint32_t)PROC_ALIVE);
        d->slot = i;
        d->slot_gen = gen;
        rc = 0;
        break;
    }
    cqm_unlock(d);
    return rc;
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

/* Finds the listening service NAME; reaps its owner if it died. Locked. */
static int find_service(exipc_domain_t *d, const char *name, size_t n)
{
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct service *sv = D_SVC(d, i);
        if (ATOM_LOAD_ACQUIRE(&sv->state) != SVC_LISTENING || !name_is(sv, name, n))
            continue;
        uint32_t owner = ATOM_LOAD_RELAXED(&sv->owner);
        if (proc_alive(d, owner, ATOM_LOAD_RELAXED(&sv->owner_gen)))
            return (int)i;
        if (owner < d->L.max_procs && owner != d->slot && !slot_alive(d, owner))
            cqm_release_slot(d, owner, true);
        else
            service_stop(d, i);
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
    if (find_service(d, service, n) >= 0) {
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
        rc = cqm_lock(d);
        if (rc != 0)
            break;
        int si = find_service(d, service, n);
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
                ATOM_STORE_RELEASE(&ch->state, (uint32_t)CHAN_PENDING);
                chan_init(d, c, i, gen, SIDE_CLIENT);
                ATOM_FETCH_ADD(&sv->accept_futex, 1u);
                futex_wake(&sv->accept_futex, 0x7fffffff);
                listener_bell(d, (uint32_t)si);
                rc = 0;
                break;
            }
            cqm_unlock(d);
            if (rc == 0) {
                *out = c;
                return 0;
            }
            break;
        }
        cqm_unlock(d);
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

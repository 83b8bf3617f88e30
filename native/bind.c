/*
 * bind.c — the binding calls: registering a process, listening, accepting,
 * connecting and closing, and the process-local lists of channels and
 * listeners.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"
int cqm_register(exipc_domain_t *d)
{
    d->slot = NO_PROC;
    int rc = cqm_lock(d);
    if (rc != 0)
        return rc;
    rc = cqm_take_slot(d);
    if (rc == -EMFILE) {
        /* Every slot is taken: reap the dead now, with the lock held, as we
         * have no slot to claim with. */
        reap_dead_locked(d);
        rc = cqm_take_slot(d);
    }
    cqm_unlock(d);
    if (rc == 0)
        cqm_reap_all(d, false, NULL); /* a segment left by crashed processes is cleaned on attach */
    return rc;
}
/* ---- local object lists ---------------------------------------------------- */

/* Links o at the head of the list `head` (d->chans or d->listeners). */
#define OBJ_LINK(d, head, o)                                                    \
    do {                                                                        \
        pthread_mutex_lock(&(d)->objs_lock);                                    \
        (o)->prev = NULL;                                                       \
        (o)->next = (head);                                                     \
        if ((head) != NULL)                                                     \
            (head)->prev = (o);                                                 \
        (head) = (o);                                                           \
        pthread_mutex_unlock(&(d)->objs_lock);                                  \
    } while (0)

/* Unlinks o from the list `head`. */
#define OBJ_UNLINK(d, head, o)                                                  \
    do {                                                                        \
        pthread_mutex_lock(&(d)->objs_lock);                                    \
        if ((o)->prev != NULL)                                                  \
            (o)->prev->next = (o)->next;                                        \
        else                                                                    \
            (head) = (o)->next;                                                 \
        if ((o)->next != NULL)                                                  \
            (o)->next->prev = (o)->prev;                                        \
        pthread_mutex_unlock(&(d)->objs_lock);                                  \
    } while (0)

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
    OBJ_LINK(d, d->chans, c);
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
        if (ATOM_LOAD_ACQUIRE(&sv->state) != SVC_LISTENING || !name_is(sv, name, n)) /* V1 -> V1': service fields before state */
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
            ATOM_STORE_RELEASE(&sv->state, (uint32_t)SVC_LISTENING); /* V1 -> V1': service fields before state */
            l->d = d;
            l->idx = i;
            l->gen = gen;
            rc = 0;
            break;
        }
    }
    if (rc == 0) {
        bump_wake(&D_HDR(d)->services_epoch); /* E1 -> E1: service before services_epoch */
    }
    cqm_unlock(d);
    if (dead)
        cqm_reap_all(d, false, NULL);
    if (rc != 0) {
        free(l);
        return rc;
    }
    OBJ_LINK(d, d->listeners, l);
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
        if (domain_gone(d)) {
            rc = -EIDRM;
            break;
        }
        rc = cqm_lock(d);
        if (rc != 0)
            break;
        if (!listener_valid(l)) {
            cqm_unlock(d);
            rc = -EPROTO;
            break;
        }
        uint32_t seen = ATOM_LOAD_ACQUIRE(&sv->accept_futex); /* B1 -> B1: backlog before accept_futex */
        int64_t best = -1;
        uint64_t best_seq = UINT64_MAX;
        for (uint32_t i = 0; i < d->L.max_chans; i++) {
            struct chan *ch = D_CHAN(d, i);
            if (chan_pending_on(ch, l->idx, l->gen) && ATOM_LOAD_RELAXED(&ch->seq) < best_seq) {
                best = i;
                best_seq = ATOM_LOAD_RELAXED(&ch->seq);
            }
        }
        if (best >= 0) {
            struct chan *ch = D_CHAN(d, (uint32_t)best);
            ATOM_STORE_RELAXED(&ch->end[1].proc, d->slot);
            ATOM_STORE_RELAXED(&ch->end[1].proc_gen, d->slot_gen);
            ATOM_STORE_RELEASE(&ch->state, (uint32_t)CHAN_BOUND); /* K1 -> K1': channel fields before state */
            chan_init(d, c, (uint32_t)best, ATOM_LOAD_RELAXED(&ch->gen), SIDE_SERVER);
            uint32_t peer = ATOM_LOAD_RELAXED(&ch->end[0].proc), peer_gen = ATOM_LOAD_RELAXED(&ch->end[0].proc_gen);
            cqm_unlock(d);
            watch_peer(d, peer, peer_gen); /* its death is heard from the kernel */
            *out = c;
            return 0;
        }
        cqm_unlock(d);
        if (timeout_ns == 0) {
            rc = -EAGAIN;
            break;
        }
        if (futex_wait_slice(&sv->accept_futex, seen, deadline, wait_slice_ns(d)) == WAIT_DEADLINE) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    free(c);
    return rc;
}

int exipc_listener_close(exipc_listener_t *l)
{
    if (l == NULL)
        return -EINVAL;
    exipc_domain_t *d = l->d;
    if (!forked(d) && cqm_lock(d) == 0) {
        if (listener_valid(l))
            service_stop(d, l->idx);
        cqm_unlock(d);
    }
    OBJ_UNLINK(d, d->listeners, l);
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
        if (domain_gone(d)) {
            rc = -EIDRM;
            break;
        }
        uint32_t epoch = ATOM_LOAD_ACQUIRE(&h->services_epoch); /* E1 -> E1: service before services_epoch */
        rc = cqm_lock_for(d, deadline);
        if (rc != 0)
            break;
        bool dead = false;
        int si = find_service(d, service, n, &dead);
        if (si >= 0) {
            uint32_t peer = ATOM_LOAD_RELAXED(&D_SVC(d, (uint32_t)si)->owner);
            uint32_t peer_gen = ATOM_LOAD_RELAXED(&D_SVC(d, (uint32_t)si)->owner_gen);
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
                ATOM_STORE_RELEASE(&ch->state, (uint32_t)CHAN_PENDING); /* K1 -> K1': channel fields before state */
                chan_init(d, c, i, gen, SIDE_CLIENT);
                bump_wake(&sv->accept_futex); /* B1 -> B1: backlog before accept_futex */
                listener_bell(d, (uint32_t)si);
                rc = 0;
                break;
            }
            cqm_unlock(d);
            if (dead)
                cqm_reap_all(d, false, NULL);
            if (rc == 0) {
                watch_peer(d, peer, peer_gen); /* its death is heard from the kernel */
                *out = c;
                return 0;
            }
            break;
        }
        cqm_unlock(d);
        if (dead)
            cqm_reap_all(d, false, NULL);
        if (timeout_ns == 0 || futex_wait_slice(&h->services_epoch, epoch, deadline, wait_slice_ns(d)) == WAIT_DEADLINE) {
            rc = -ENOENT;
            break;
        }
    }
    free(c);
    return rc;
}

int exipc_chan_close(exipc_chan_t *c)
{
    if (c == NULL)
        return -EINVAL;
    exipc_domain_t *d = c->d;
    if (!forked(d) && cqm_lock(d) == 0) {
        struct chan *ch = D_CHAN(d, c->idx);
        if (ATOM_LOAD_RELAXED(&ch->gen) == c->gen && ATOM_LOAD_RELAXED(&ch->state) != CHAN_FREE &&
            ATOM_LOAD_RELAXED(&ch->end[c->side].proc) == d->slot && !ATOM_LOAD_RELAXED(&ch->end[c->side].closed))
            end_close(d, c->idx, c->side);
        cqm_unlock(d);
    }
    OBJ_UNLINK(d, d->chans, c);
    free(c);
    return 0;
}

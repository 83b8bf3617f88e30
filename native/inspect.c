/*
 * inspect.c — looking at a domain from outside: read-only inspection, and a
 * reap that needs no process slot.
 *
 * Invariants:
 *   - An inspector writes nothing shared. Its file is opened O_RDONLY and
 *     mapped PROT_READ, from offset 0 up to the arena (the payload is never
 *     looked at), only after the file's size was checked against the header
 *     that was read with pread(2): a file too short for its header is refused
 *     before anything is mapped, so no access can fall beyond its end.
 *   - It takes no process slot and no lock. Tables are read while others
 *     change them: an entry is read between two loads (seq_cst) of its
 *     generation and state and read again if those moved (a bounded number
 *     of times), so a figure is that of one life of the entry; figures are
 *     a snapshot, not a consistent cut across entries. Every slot index, service index and ring
 *     index is range-checked against the inspector's own copy of the layout
 *     (computed from the checked header, never read again), and every loop
 *     is bounded by it.
 *   - A state word outside its enum cannot come from a live writer (states
 *     are whole words written once per change): it makes the call return
 *     -EPROTO. Other odd values (a slot index out of range, a ring whose
 *     tail - head exceeds its capacity twice in a row) are shown as they
 *     can be (none, clamped) or, for rings, as -EPROTO.
 *   - exipc_inspect_reap is the one writer here: it maps the segment
 *     read-write and reaps with the queue manager's lock held throughout, as
 *     a member without a slot does (cqm.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exipc_internal.h"

_Static_assert(EXIPC_MAX_CLASSES >= NSLAB_CLASSES + 1, "the public class table holds the heap's classes and the large blocks");
_Static_assert(sizeof(((struct exipc_service_info *)0)->name) >= EXIPC_SERVICE_MAX + 1, "service names fit");

#define READ_TRIES 8 /* re-reads of an entry that changed under us */

struct exipc_inspector {
    exipc_domain_t d;      /* base: PROT_READ mapping of [0, off_arena); slot NO_PROC */
    size_t map_len;
    struct seg_params p;   /* the header as checked at open */
};

/* Opens /dev/shm/exipc.NAME with flags and checks the header against the
 * file: fills *L, *p and the fd. Nothing is mapped. */
static int open_checked(const char *name, int flags, int *fdp, struct layout *L, struct seg_params *p)
{
    char path[sizeof(EXIPC_PATH_PREFIX) + EXIPC_NAME_MAX + 1];
    if (!valid_name(name, EXIPC_NAME_MAX))
        return -EINVAL;
    snprintf(path, sizeof path, "%s%s", EXIPC_PATH_PREFIX, name);
    int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ELOOP ? -EPROTO : -errno; /* a symlink is no domain */
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof(struct seg_hdr)) {
        rc = -EPROTO;
        goto fail;
    }
    struct seg_hdr h;
    ssize_t n = pread(fd, &h, sizeof h, 0);
    if (n != (ssize_t)sizeof h) {
        rc = n < 0 ? -errno : -EPROTO;
        goto fail;
    }
    if (h.p.magic != EXIPC_MAGIC || h.p.ready != 1) {
        rc = -EPROTO; /* not a domain, or one whose creator has not finished */
        goto fail;
    }
    rc = layout_from_params(&h.p, L);
    if (rc != 0)
        goto fail;
    if ((uint64_t)st.st_size != L->total_size) {
        rc = -EPROTO;
        goto fail;
    }
    *p = h.p;
    *fdp = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

static void domain_init(exipc_domain_t *d, int fd, const struct layout *L)
{
    d->fd = fd;
    d->L = *L;
    d->slot = NO_PROC;
    d->slot_gen = 0;
    d->fork_gen = exipc_fork_generation();
    pthread_mutex_init(&d->cqm_mu, NULL);
    pthread_mutex_init(&d->objs_lock, NULL);
}

int exipc_inspect_open(const char *name, exipc_inspector_t **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    struct layout L;
    struct seg_params p;
    int fd;
    int rc = open_checked(name, O_RDONLY, &fd, &L, &p);
    if (rc != 0)
        return rc;
    exipc_inspector_t *in = calloc(1, sizeof *in);
    if (in == NULL) {
        close(fd);
        return -ENOMEM;
    }
    in->map_len = L.off_arena;
    void *base = mmap(NULL, in->map_len, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        close(fd);
        free(in);
        return rc;
    }
    domain_init(&in->d, fd, &L);
    in->d.base = base;
    in->p = p;
    *out = in;
    return 0;
}

int exipc_inspect_close(exipc_inspector_t *in)
{
    if (in == NULL)
        return -EINVAL;
    munmap(in->d.base, in->map_len);
    close(in->d.fd);
    pthread_mutex_destroy(&in->d.cqm_mu);
    pthread_mutex_destroy(&in->d.objs_lock);
    free(in);
    return 0;
}

int exipc_inspect_info(exipc_inspector_t *in, struct exipc_inspect_info *info)
{
    if (in == NULL || info == NULL)
        return -EINVAL;
    exipc_domain_t *d = &in->d;
    struct seg_hdr *h = D_HDR(d);
    memset(info, 0, sizeof *info);
    info->total_size = d->L.total_size;
    info->arena_size = d->L.arena_size;
    info->max_procs = d->L.max_procs;
    info->max_chans = d->L.max_chans;
    info->ring_capacity = d->L.ring_capacity;
    info->max_block = d->L.max_block;
    info->creator_uid = in->p.creator_uid;
    info->layout_version = in->p.version;
    info->reaped_procs = ATOM_LOAD_RELAXED(&h->reaped_procs);
    info->reap_takeovers = ATOM_LOAD_RELAXED(&h->reap_takeovers);
    info->reap_stragglers = ATOM_LOAD_RELAXED(&h->reap_stragglers);
    info->lock_repairs = ATOM_LOAD_RELAXED(&h->lock_repairs);
    heap_gen_counts(d, &info->allocs, &info->frees);
    return 0;
}

int exipc_inspect_stat(exipc_inspector_t *in, struct exipc_stat *st)
{
    if (in == NULL || st == NULL)
        return -EINVAL;
    return exipc_stat(&in->d, st);
}

int exipc_inspect_heap(exipc_inspector_t *in, struct exipc_heap_stat *st)
{
    if (in == NULL || st == NULL)
        return -EINVAL;
    return exipc_heap_stat(&in->d, st);
}

/* pid recorded in slot i, 0 if i is no slot. */
static int32_t slot_pid(exipc_domain_t *d, uint32_t i)
{
    return i < d->L.max_procs ? ATOM_LOAD_RELAXED(&D_PROC(d, i)->pid) : 0;
}

/* One stable read of process slot i: state (PROC_*), gen, pid. Returns 0,
 * 1 if the slot is free, -EPROTO for a state no writer stores. */
static int read_proc(exipc_domain_t *d, uint32_t i, uint32_t *state, uint32_t *gen, int32_t *pid)
{
    struct proc_slot *p = D_PROC(d, i);
    for (int t = 0;; t++) {
        uint32_t g0 = ATOM_LOAD_SEQCST(&p->gen);
        uint32_t s = ATOM_LOAD_SEQCST(&p->state);
        int32_t pd = ATOM_LOAD_SEQCST(&p->pid);
        if ((ATOM_LOAD_SEQCST(&p->gen) != g0 || ATOM_LOAD_SEQCST(&p->state) != s) && t < READ_TRIES)
            continue;
        if (s == PROC_FREE)
            return 1;
        if (s != PROC_ALIVE && s != PROC_REAPING)
            return -EPROTO;
        *state = s;
        *gen = g0;
        *pid = pd;
        return 0;
    }
}

int exipc_inspect_procs(exipc_inspector_t *in, struct exipc_proc_info *out, size_t max)
{
    if (in == NULL || (out == NULL && max > 0))
        return -EINVAL;
    exipc_domain_t *d = &in->d;
    uint32_t np = d->L.max_procs;
    uint64_t *owned = calloc(np, sizeof *owned), *cached = calloc(np, sizeof *cached);
    if (owned == NULL || cached == NULL) {
        free(owned);
        free(cached);
        return -ENOMEM;
    }
    heap_owner_counts(d, owned, cached, np);
    int n = 0, rc = 0;
    for (uint32_t i = 0; i < np; i++) {
        uint32_t st, gen;
        int32_t pid;
        int r = read_proc(d, i, &st, &gen, &pid);
        if (r == 1)
            continue;
        if (r < 0) {
            rc = r;
            break;
        }
        if ((size_t)n < max) {
            struct exipc_proc_info *pi = &out[n];
            memset(pi, 0, sizeof *pi);
            pi->slot = i;
            pi->gen = gen;
            pi->pid = pid;
            if (st == PROC_REAPING)
                pi->state = EXIPC_PROC_REAPING;
            else
                pi->state = slot_alive(d, i) ? EXIPC_PROC_ALIVE : EXIPC_PROC_DEAD;
            for (uint32_t k = 0; k < d->L.max_chans; k++) {
                struct chan *ch = D_CHAN(d, k);
                uint32_t cs = ATOM_LOAD_RELAXED(&ch->state);
                if (cs != CHAN_PENDING && cs != CHAN_BOUND)
                    continue;
                for (uint32_t s = 0; s < 2; s++)
                    if (ATOM_LOAD_RELAXED(&ch->end[s].proc) == i && ATOM_LOAD_RELAXED(&ch->end[s].proc_gen) == gen &&
                        !ATOM_LOAD_RELAXED(&ch->end[s].closed))
                        pi->chans++;
            }
            for (uint32_t k = 0; k < d->L.max_chans; k++) {
                struct service *sv = D_SVC(d, k);
                if (ATOM_LOAD_RELAXED(&sv->state) == SVC_LISTENING && ATOM_LOAD_RELAXED(&sv->owner) == i &&
                    ATOM_LOAD_RELAXED(&sv->owner_gen) == gen)
                    pi->services++;
            }
            pi->blocks_owned = owned[i];
            pi->blocks_cached = cached[i];
            pi->doorbell = ATOM_LOAD_RELAXED(&D_PROC(d, i)->doorbell) / DOORBELL_STEP;
        }
        n++;
    }
    free(owned);
    free(cached);
    return rc < 0 ? rc : n;
}

/* Copies service i's name if it is a valid one; "" otherwise. */
static void copy_name(struct service *sv, char *dst, size_t n)
{
    char buf[EXIPC_SERVICE_MAX + 1];
    memcpy(buf, sv->name, sizeof buf); /* a racing listen may tear it: checked below */
    buf[EXIPC_SERVICE_MAX] = '\0';
    if (!valid_name(buf, EXIPC_SERVICE_MAX))
        buf[0] = '\0';
    snprintf(dst, n, "%s", buf);
}

int exipc_inspect_services(exipc_inspector_t *in, struct exipc_service_info *out, size_t max)
{
    if (in == NULL || (out == NULL && max > 0))
        return -EINVAL;
    exipc_domain_t *d = &in->d;
    uint32_t nc = d->L.max_chans;
    uint32_t *pending = calloc(nc, sizeof *pending);
    if (pending == NULL)
        return -ENOMEM;
    for (uint32_t k = 0; k < nc; k++) {
        struct chan *ch = D_CHAN(d, k);
        if (ATOM_LOAD_RELAXED(&ch->state) != CHAN_PENDING)
            continue;
        uint32_t si = ATOM_LOAD_RELAXED(&ch->service);
        if (si < nc && ATOM_LOAD_RELAXED(&ch->service_gen) == ATOM_LOAD_RELAXED(&D_SVC(d, si)->gen) &&
            !ATOM_LOAD_RELAXED(&ch->end[1].closed))
            pending[si]++;
    }
    int n = 0, rc = 0;
    for (uint32_t i = 0; i < nc; i++) {
        struct service *sv = D_SVC(d, i);
        uint32_t st = ATOM_LOAD_RELAXED(&sv->state);
        if (st == SVC_FREE)
            continue;
        if (st != SVC_LISTENING) {
            rc = -EPROTO;
            break;
        }
        if ((size_t)n < max) {
            struct exipc_service_info *si = &out[n];
            memset(si, 0, sizeof *si);
            si->index = i;
            si->owner_slot = ATOM_LOAD_RELAXED(&sv->owner);
            si->owner_pid = slot_pid(d, si->owner_slot);
            if (si->owner_slot >= d->L.max_procs)
                si->owner_slot = NO_PROC;
            si->pending = pending[i];
            copy_name(sv, si->name, sizeof si->name);
        }
        n++;
    }
    free(pending);
    return rc < 0 ? rc : n;
}

/* Head and tail of ring r of channel k, read so that head <= tail: head,
 * tail, head again, until head held still. -EPROTO if a stable pair is more
 * than the capacity apart (a scribbled index). */
static int read_ring(exipc_domain_t *d, uint32_t k, uint32_t r, uint64_t *head, uint64_t *tail)
{
    struct ring *rg = D_RING(d, k, r);
    uint64_t cap = d->L.ring_capacity;
    for (int t = 0;; t++) {
        uint64_t h0 = ATOM_LOAD_ACQUIRE(&rg->head); /* R2 -> A2: slot consumed before head */
        uint64_t tl = ATOM_LOAD_ACQUIRE(&rg->tail); /* R1 -> A1: slot before tail */
        uint64_t h1 = ATOM_LOAD_ACQUIRE(&rg->head); /* R2 -> A2: slot consumed before head */
        bool ok = h0 == h1 && h0 <= tl && tl - h0 <= cap;
        if (ok || (h0 == h1 && t >= 1) || t >= READ_TRIES) {
            if (!ok && h0 == h1)
                return -EPROTO;
            *head = h1 < tl ? h1 : tl;
            *tail = tl;
            if (*tail - *head > cap)
                *head = *tail - cap;
            return 0;
        }
    }
}

int exipc_inspect_chans(exipc_inspector_t *in, struct exipc_chan_info *out, size_t max)
{
    if (in == NULL || (out == NULL && max > 0))
        return -EINVAL;
    exipc_domain_t *d = &in->d;
    int n = 0;
    for (uint32_t k = 0; k < d->L.max_chans; k++) {
        struct chan *ch = D_CHAN(d, k);
        struct exipc_chan_info ci;
        bool freed = false;
        int t;
        for (t = 0; t <= READ_TRIES; t++) {
            uint32_t g0 = ATOM_LOAD_SEQCST(&ch->gen);
            uint32_t st = ATOM_LOAD_SEQCST(&ch->state);
            if (st == CHAN_FREE) {
                freed = true;
                break;
            }
            if (st != CHAN_PENDING && st != CHAN_BOUND)
                return -EPROTO;
            memset(&ci, 0, sizeof ci);
            ci.index = k;
            ci.state = st == CHAN_BOUND ? EXIPC_CHAN_BOUND : EXIPC_CHAN_PENDING;
            ci.ring_capacity = d->L.ring_capacity;
            uint32_t si = ATOM_LOAD_RELAXED(&ch->service);
            ci.service_index = si;
            if (si < d->L.max_chans && ATOM_LOAD_RELAXED(&D_SVC(d, si)->gen) == ATOM_LOAD_RELAXED(&ch->service_gen))
                copy_name(D_SVC(d, si), ci.service, sizeof ci.service);
            else
                ci.service_index = NO_PROC;
            uint64_t head[2], tail[2];
            for (uint32_t r = 0; r < 2; r++) {
                int rc = read_ring(d, k, r, &head[r], &tail[r]);
                if (rc != 0)
                    return rc;
                ci.queued[r] = tail[r] - head[r];
            }
            for (uint32_t s = 0; s < 2; s++) {
                struct exipc_chan_end_info *e = &ci.end[s];
                uint32_t p = ATOM_LOAD_RELAXED(&ch->end[s].proc);
                uint32_t pg = ATOM_LOAD_RELAXED(&ch->end[s].proc_gen);
                e->slot = p < d->L.max_procs ? p : NO_PROC;
                e->pid = slot_pid(d, e->slot);
                e->closed = ATOM_LOAD_RELAXED(&ch->end[s].closed) != 0;
                e->alive = e->slot != NO_PROC && ATOM_LOAD_RELAXED(&D_PROC(d, p)->state) == PROC_ALIVE &&
                           ATOM_LOAD_RELAXED(&D_PROC(d, p)->gen) == pg && slot_alive(d, p);
                /* Side s produces on ring s and consumes ring 1 - s. */
                e->sent = tail[s];
                e->received = head[1 - s];
                struct ring *rg = D_RING(d, k, s);
                e->full_refusals = ATOM_LOAD_RELAXED(&rg->full_refusals);
                e->wakeups = ATOM_LOAD_RELAXED(&rg->wakeups);
            }
            if (ATOM_LOAD_SEQCST(&ch->gen) == g0 && ATOM_LOAD_SEQCST(&ch->state) == st)
                break;
        }
        /* Decided by the loop's own reads: a state read again here could say
         * "bound" after the loop saw "free" and filled nothing in. */
        if (t > READ_TRIES || freed)
            continue; /* kept changing, or freed: not shown this time */
        if ((size_t)n < max)
            out[n] = ci;
        n++;
    }
    return n;
}

int exipc_inspect_reap(const char *name)
{
    struct layout L;
    struct seg_params p;
    int fd;
    int rc = open_checked(name, O_RDWR, &fd, &L, &p);
    if (rc != 0)
        return rc;
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_uid != geteuid() && (st.st_mode & 0066) == 0)) {
        close(fd);
        return -EACCES; /* the same trust rule as an attach */
    }
    exipc_domain_t *d = calloc(1, sizeof *d);
    if (d == NULL) {
        close(fd);
        return -ENOMEM;
    }
    void *base = mmap(NULL, L.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        close(fd);
        free(d);
        return rc;
    }
    domain_init(d, fd, &L);
    d->base = base;
    rc = cqm_reap_unregistered(d);
    munmap(base, L.total_size);
    close(fd);
    pthread_mutex_destroy(&d->cqm_mu);
    pthread_mutex_destroy(&d->objs_lock);
    free(d);
    return rc;
}

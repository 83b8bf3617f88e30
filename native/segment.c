/*
 * segment.c — creating, attaching, sizing and removing a domain's segment.
 *
 * Invariants:
 *   - The creator holds CREATE_LOCK_BYTE (an OFD lock) from O_EXCL creation
 *     until it has written every parameter and stored `ready` (release). An
 *     attacher reads the parameters only after seeing `ready` (acquire), and
 *     recomputes the whole layout from them; a segment whose stored offsets or
 *     size differ from the recomputed ones is refused.
 *   - After attach, region bounds come from the process-local `struct layout`
 *     only, never again from shared memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"

_Static_assert(sizeof(struct proc_slot) == EXIPC_CACHELINE, "one line per process slot");
_Static_assert(sizeof(struct service) % EXIPC_CACHELINE == 0, "services on whole lines");
_Static_assert(sizeof(struct chan) % EXIPC_CACHELINE == 0, "channels on whole lines");
_Static_assert(offsetof(struct ring, head) - offsetof(struct ring, tail) >= EXIPC_CACHELINE,
               "head and tail on separate lines");
_Static_assert(offsetof(struct ring, sleeping) - offsetof(struct ring, head) >= EXIPC_CACHELINE,
               "sleeping flag off the head line");
_Static_assert(offsetof(struct ring, slots) % EXIPC_CACHELINE == 0, "slots start on a line");
_Static_assert(sizeof(struct block_meta) == 16, "block metadata is 16 bytes");
_Static_assert(offsetof(struct seg_hdr, lock) % EXIPC_CACHELINE == 0, "lock on its own line");
_Static_assert((1u << GRANULE_SHIFT) == GRANULE, "granule shift");
_Static_assert(sizeof(struct page_desc) == 32, "page descriptor is 32 bytes");
_Static_assert(HEAP_PAGE / GRANULE == META_PER_PAGE, "a page holds META_PER_PAGE blocks of the smallest class");

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
static bool pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

/* Fills L from options (zero = default). Returns 0 or -EINVAL. */
int layout_compute(const struct exipc_options *o, struct layout *L)
{
    struct exipc_options z = {0};
    if (o == NULL)
        o = &z;
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
        if (o->reserved[i] != 0)
            return -EINVAL;
    if ((o->flags & ~(EXIPC_ATTACH_ONLY | EXIPC_TRUST_UID | EXIPC_TRUST_GID | EXIPC_TRUST_ANY)) != 0)
        return -EINVAL;
    if (o->wait_policy > EXIPC_WAIT_PARK)
        return -EINVAL;
    memset(L, 0, sizeof *L);
    L->arena_size = o->size ? round_up(o->size, HEAP_PAGE) : DEF_ARENA;
    L->max_procs = o->max_procs ? o->max_procs : DEF_PROCS;
    L->max_chans = o->max_chans ? o->max_chans : DEF_CHANS;
    L->ring_capacity = o->ring_capacity ? o->ring_capacity : DEF_RING;
    L->proc_quota = o->proc_quota;
    L->max_block = o->max_block;
    if (L->max_block == 0)
        L->max_block = L->arena_size / 2 > MAX_MAX_BLOCK ? MAX_MAX_BLOCK : (uint32_t)(L->arena_size / 2);
    if (L->arena_size < MIN_ARENA || L->arena_size > MAX_ARENA || L->max_procs > MAX_PROCS ||
        L->max_chans > MAX_CHANS || L->ring_capacity < 2 || L->ring_capacity > MAX_RING ||
        !pow2(L->ring_capacity) || L->max_block < GRANULE || L->max_block > MAX_MAX_BLOCK ||
        L->max_block > L->arena_size)
        return -EINVAL;
    L->nclasses = heap_nclasses(L->max_block);
    L->npages = L->arena_size / HEAP_PAGE;
    L->nmeta = L->npages * META_PER_PAGE;
    uint64_t off = round_up(sizeof(struct seg_hdr), EXIPC_CACHELINE);
    L->off_procs = off;
    off += (uint64_t)L->max_procs * sizeof(struct proc_slot);
    L->off_services = off;
    off += (uint64_t)L->max_chans * sizeof(struct service);
    L->off_chans = off;
    off += (uint64_t)L->max_chans * sizeof(struct chan);
    L->off_rings = off;
    L->ring_stride = round_up(sizeof(struct ring) + (uint64_t)L->ring_capacity * sizeof(uint64_t), EXIPC_CACHELINE);
    off += (uint64_t)L->max_chans * 2 * L->ring_stride;
    /* Bits [0, 2*max_chans): channel ends (index*2 + side: one process may
     * hold both ends); [2*max_chans, 3*max_chans): listeners (by service
     * index). One bitmap per process slot. */
    L->ready_words = (uint32_t)((3ull * L->max_chans + 63) / 64);
    L->ready_stride = round_up((uint64_t)L->ready_words * 8, EXIPC_CACHELINE);
    L->off_ready = off;
    off += (uint64_t)L->max_procs * L->ready_stride;
    L->off_slabs = off;
    off = round_up(off + L->npages * sizeof(struct page_desc), EXIPC_CACHELINE);
    L->off_meta = off;
    off += L->nmeta * sizeof(struct block_meta);
    L->off_arena = round_up(off, 4096);
    L->total_size = L->off_arena + L->arena_size;
    return 0;
}

static void params_from_layout(struct seg_params *p, const struct layout *L)
{
    p->magic = EXIPC_MAGIC;
    p->version = EXIPC_LAYOUT_VERSION;
    p->cacheline = EXIPC_CACHELINE;
    p->total_size = L->total_size;
    p->arena_size = L->arena_size;
    p->max_procs = L->max_procs;
    p->max_chans = L->max_chans;
    p->ring_capacity = L->ring_capacity;
    p->max_block = L->max_block;
    p->page_size = HEAP_PAGE;
    p->nclasses = L->nclasses;
    p->npages = L->npages;
    p->nmeta = L->nmeta;
    p->off_procs = L->off_procs;
    p->off_services = L->off_services;
    p->off_chans = L->off_chans;
    p->off_rings = L->off_rings;
    p->ring_stride = L->ring_stride;
    p->off_slabs = L->off_slabs;
    p->off_meta = L->off_meta;
    p->off_arena = L->off_arena;
    p->off_ready = L->off_ready;
    p->ready_stride = L->ready_stride;
    p->creator_uid = (uint32_t)geteuid();
    p->proc_quota = L->proc_quota;
}

/* Validates a header copied out of shared memory and derives the layout. */
int layout_from_params(const struct seg_params *p, struct layout *L)
{
    if (p->magic != EXIPC_MAGIC)
        return -EPROTO;
    if (p->version != EXIPC_LAYOUT_VERSION || p->cacheline != EXIPC_CACHELINE || p->page_size != HEAP_PAGE)
        return -ENOTSUP;
    struct exipc_options o = {
        .size = p->arena_size,
        .max_procs = p->max_procs,
        .max_chans = p->max_chans,
        .ring_capacity = p->ring_capacity,
        .max_block = p->max_block,
        .proc_quota = p->proc_quota,
    };
    if (p->arena_size == 0 || p->max_procs == 0 || p->max_chans == 0 || p->ring_capacity == 0 ||
        p->max_block == 0 || layout_compute(&o, L) != 0)
        return -EPROTO;
    struct seg_params want;
    memset(&want, 0, sizeof want);
    params_from_layout(&want, L);
    want.creator_uid = p->creator_uid;
    want.ready = p->ready;
    if (memcmp(&want, p, sizeof want) != 0)
        return -EPROTO;
    return 0;
}

static int make_path(const char *name, char *buf, size_t n)
{
    if (!valid_name(name, EXIPC_NAME_MAX))
        return -EINVAL;
    snprintf(buf, n, "%s%s", EXIPC_PATH_PREFIX, name);
    return 0;
}

static int ofd_lock(int fd, off_t byte, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

static bool ofd_held_by_other(int fd, off_t byte)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
        return true;
    return fl.l_type != F_UNLCK;
}

static int create_segment(int fd, const struct layout *L, uint8_t **basep)
{
    int rc = ofd_lock(fd, CREATE_LOCK_BYTE, F_WRLCK);
    if (rc != 0)
        return rc;
    /* Reserve the pages now: running out of /dev/shm must fail here, not as
     * a SIGBUS on some later first touch. */
    rc = posix_fallocate(fd, 0, (off_t)L->total_size);
    if (rc != 0)
        return rc == ENOSPC || rc == EFBIG ? -ENOSPC : -rc;
    void *base = mmap(NULL, L->total_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    struct seg_hdr *h = base;
    params_from_layout(&h->p, L);
    /* The CQM lock's words start at zero, as fallocate left them (cqm.c). */
    *basep = base;
    return 0;
}

/* Is the opened domain file one this caller may trust (exipc_options.flags)?
 * Asked of the descriptor, so the file checked is the file read. */
static int check_trust(int fd, const struct exipc_options *o)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    uint32_t flags = o ? o->flags : 0;
    if (st.st_uid == geteuid() || (flags & EXIPC_TRUST_ANY))
        return 0;
    if ((flags & EXIPC_TRUST_UID) && st.st_uid == o->trust_uid)
        return 0;
    if ((flags & EXIPC_TRUST_GID) && st.st_gid == o->trust_gid)
        return 0;
    return -EACCES;
}

/* Maps the first page to wait for `ready`, then checks and maps the rest. */
static int attach_segment(int fd, struct layout *L, uint8_t **basep)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EPROTO;
    int64_t deadline = now_ns() + 5000000000ll;
    struct seg_params p;
    bool creator_gone = false;
    for (;;) {
        if (fstat(fd, &st) != 0)
            return -errno;
        if ((uint64_t)st.st_size >= sizeof(struct seg_hdr)) {
            void *m = mmap(NULL, sizeof(struct seg_hdr), PROT_READ, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED)
                return -errno;
            struct seg_hdr *h = m;
            uint32_t ready = ATOM_LOAD_ACQUIRE(&h->p.ready); /* R0 -> A0: params before ready */
            if (ready == 1)
                memcpy(&p, &h->p, sizeof p);
            munmap(m, sizeof(struct seg_hdr));
            if (ready == 1)
                break;
            if (ready != 0)
                return -EPROTO;
        }
        if (!ofd_held_by_other(fd, CREATE_LOCK_BYTE)) {
            /* The creator stores ready and then drops its lock: seen in that
             * order from here, ready was 0 and the lock is gone, yet the
             * segment may be ready now. Look once more before giving up. */
            if (!creator_gone) {
                creator_gone = true;
                continue;
            }
            return (uint64_t)st.st_size == 0 ? -EAGAIN : -EPROTO; /* creator gone before ready */
        }
        creator_gone = false;
        if (now_ns() > deadline)
            return -ETIMEDOUT;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    int rc = layout_from_params(&p, L);
    if (rc != 0)
        return rc;
    if (fstat(fd, &st) != 0)
        return -errno;
    if ((uint64_t)st.st_size != L->total_size)
        return -EPROTO;
    void *base = mmap(NULL, L->total_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    *basep = base;
    return 0;
}

/* A fresh handle: no file, no mapping, local locks ready. */
static void domain_init(exipc_domain_t *d, uint32_t wait_policy)
{
    d->fork_gen = exipc_fork_generation();
    d->fd = -1;
    d->wait_policy = wait_policy;
    watch_init(d);
    pthread_mutex_init(&d->cqm_mu, NULL);
    pthread_mutex_init(&d->objs_lock, NULL);
}

/* Undoes domain_init and whatever open added: the mapping (unless it is
 * borrowed), the file (and with it the liveness lock), the handle. */
static void domain_free(exipc_domain_t *d)
{
    bool own_map = d->base != NULL;
#ifdef EXIPC_TESTING
    own_map = own_map && !d->borrowed_map;
#endif
    if (own_map)
        munmap(d->base, d->L.total_size);
    watch_stop(d); /* in a forked child: only its copies of the descriptors */
    if (d->fd >= 0)
        close(d->fd);
    pthread_mutex_destroy(&d->watch.mu);
    pthread_mutex_destroy(&d->cqm_mu);
    pthread_mutex_destroy(&d->objs_lock);
    free(d);
}

int exipc_open(const char *name, const struct exipc_options *opt, exipc_domain_t **out)
{
    char path[sizeof(EXIPC_PATH_PREFIX) + EXIPC_NAME_MAX + 1];
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    int rc = make_path(name, path, sizeof path);
    if (rc != 0)
        return rc;
    struct layout want;
    rc = layout_compute(opt, &want);
    if (rc != 0)
        return rc;
    mode_t mode = opt && opt->mode ? opt->mode : 0600;
    if ((mode & ~0666u) != 0 || (mode & 0600) != 0600)
        return -EINVAL;

    exipc_domain_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    domain_init(d, opt ? opt->wait_policy : EXIPC_WAIT_ADAPTIVE);
    memcpy(d->path, path, sizeof d->path);

    bool attach_only = opt && (opt->flags & EXIPC_ATTACH_ONLY);
    for (int attempt = 0;; attempt++) {
        int fd = attach_only ? -1 : open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0) {
            /* A shared group, then the mode: the umask may have cleared
             * group bits asked for. */
            if (opt && (opt->flags & EXIPC_TRUST_GID) && fchown(fd, (uid_t)-1, opt->trust_gid) != 0) {
                rc = -errno;
                close(fd);
                unlink(path);
                goto fail;
            }
            fchmod(fd, mode);
            d->fd = fd;
            d->L = want;
            rc = create_segment(fd, &want, &d->base);
            if (rc != 0) {
                unlink(path);
                goto fail;
            }
            heap_init(d);
            ATOM_STORE_RELEASE(&D_HDR(d)->p.ready, 1u); /* R0 -> A0: params before ready */
            ofd_lock(fd, CREATE_LOCK_BYTE, F_UNLCK);
            break;
        }
        if (!attach_only && errno != EEXIST) {
            rc = errno == ELOOP ? -EACCES : -errno;
            goto fail;
        }
        fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT && attempt < 8 && !attach_only)
                continue; /* unlinked between our two opens: try creating again */
            rc = errno == ELOOP ? -EACCES : -errno;
            goto fail;
        }
        d->fd = fd;
        rc = check_trust(fd, opt);
        if (rc != 0)
            goto fail;
        rc = attach_segment(fd, &d->L, &d->base);
        if (rc == -EAGAIN && attempt < 8) {
            /* an empty file whose creator died before sizing it */
            close(fd);
            d->fd = -1;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (rc == -EAGAIN)
            rc = -EPROTO; /* still empty and nobody creating it: not a domain */
        if (rc != 0)
            goto fail;
        break;
    }
    rc = cqm_register(d);
    if (rc != 0)
        goto fail;
    *out = d;
    return 0;
fail:
    domain_free(d);
    return rc;
}

/* Is the file at d->path still the one we have open? */
static bool path_is_ours(exipc_domain_t *d)
{
    struct stat a, b;
    return fstat(d->fd, &a) == 0 && stat(d->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Live process slots: ALIVE and holding their liveness lock (ours counts:
 * slot_alive answers it from local knowledge, a released one is FREE). */
static uint32_t procs_alive(exipc_domain_t *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->L.max_procs; i++)
        if (ATOM_LOAD_ACQUIRE(&D_PROC(d, i)->state) == PROC_ALIVE && slot_alive(d, i)) /* P1 -> P1': slot fields before state */
            n++;
    return n;
}

/* Closes d; with leave, also removes the domain's name when no other live
 * process is attached, decided under the table lock so that of two
 * processes leaving at once exactly the last one does. Returns 1 if it
 * removed the name, else 0. */
static int domain_close(exipc_domain_t *d, bool leave)
{
    if (d == NULL)
        return -EINVAL;
    int removed = 0;
    if (!forked(d))
        watch_stop(d); /* before the slot and the mapping go: it reaps */
    if (!forked(d) && cqm_lock(d) == 0) {
        cqm_release_slot(d, d->slot);
        if (leave && !domain_gone(d)) {
            if (procs_alive(d) == 0 && path_is_ours(d) && unlink(d->path) == 0)
                removed = 1;
        }
        cqm_unlock(d);
    }
    /* A forked child only drops its copies: the slot is its parent's. */
    while (d->chans != NULL) {
        exipc_chan_t *c = d->chans;
        d->chans = c->next;
        free(c);
    }
    while (d->listeners != NULL) {
        exipc_listener_t *l = d->listeners;
        d->listeners = l->next;
        free(l);
    }
    domain_free(d); /* closing the file drops the liveness lock */
    return removed;
}

int exipc_close(exipc_domain_t *d)
{
    int rc = domain_close(d, false);
    return rc < 0 ? rc : 0;
}

int exipc_leave(exipc_domain_t *d) { return domain_close(d, true); }

#ifdef EXIPC_TESTING
int exipc__open_same_map(exipc_domain_t *d, const char *name, exipc_domain_t **out)
{
    char path[sizeof(EXIPC_PATH_PREFIX) + EXIPC_NAME_MAX + 1];
    int rc = make_path(name, path, sizeof path);
    if (rc != 0)
        return rc;
    exipc_domain_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    domain_init(e, d->wait_policy);
    memcpy(e->path, path, sizeof e->path);
    e->fork_gen = d->fork_gen;
    e->base = d->base;
    e->L = d->L;
    e->borrowed_map = true;
    e->fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (e->fd < 0) {
        rc = -errno;
        domain_free(e);
        return rc;
    }
    rc = cqm_register(e);
    if (rc != 0) {
        domain_free(e);
        return rc;
    }
    *out = e;
    return 0;
}
#endif

int exipc_unlink(const char *name)
{
    char path[sizeof(EXIPC_PATH_PREFIX) + EXIPC_NAME_MAX + 1];
    int rc = make_path(name, path, sizeof path);
    if (rc != 0)
        return rc;
    return unlink(path) == 0 ? 0 : -errno;
}

int exipc_stat(exipc_domain_t *d, struct exipc_stat *st)
{
    if (d == NULL || st == NULL)
        return -EINVAL;
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    memset(st, 0, sizeof *st);
    st->procs_alive = procs_alive(d);
    for (uint32_t i = 0; i < d->L.max_chans; i++) {
        struct chan *ch = D_CHAN(d, i);
        if (ATOM_LOAD_ACQUIRE(&ch->state) != CHAN_FREE && /* K1 -> K1': channel fields before state */
            !(ATOM_LOAD_ACQUIRE(&ch->end[0].closed) && ATOM_LOAD_ACQUIRE(&ch->end[1].closed))) /* C1 -> A1: closed after last publication */
            st->chans_bound++;
        if (ATOM_LOAD_ACQUIRE(&D_SVC(d, i)->state) == SVC_LISTENING) /* V1 -> V1': service fields before state */
            st->services++;
    }
    st->heap_bytes_total = d->L.arena_size;
    heap_count(d, &st->heap_blocks_used, &st->heap_bytes_used);
    st->reaped_procs = ATOM_LOAD_RELAXED(&D_HDR(d)->reaped_procs);
    return 0;
}

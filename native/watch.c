/*
 * watch.c — learning of a peer's death and of the domain's unlink from the
 * kernel, at no cost while nothing happens.
 *
 * One watcher thread per domain handle, started by the first channel bound
 * to a peer process, blocks in epoll_wait on:
 *   - a pidfd per peer process (pidfd_open(2)), readable once that process
 *     has exited: the watcher reaps it at once (reap.c), and the reaper's
 *     claim closes every channel end the dead process held, which wakes the
 *     receivers parked on them (ring.c's ring_wake: futex or doorbell);
 *   - an inotify watch on the domain's file (IN_ATTRIB): when its name is
 *     removed (or replaced) and our descriptor's file has no link left, the
 *     domain is gone: every later call returns -EIDRM, and the watcher wakes
 *     every wait of this handle so that blocked calls return it too;
 *   - an eventfd, to stop (exipc_close).
 * While nothing happens it makes no system call, and nobody else pays one:
 * the waits it covers sleep without a timeout.
 *
 * Where the kernel cannot tell (a peer in another pid namespace: its pid means
 * nothing here; pidfd_open or inotify unavailable), the peer is left
 * unwatched and the waits fall back to re-checking every WAIT_SLICE_NS
 * (wait_slice_ns).
 *
 * Invariants:
 *   - A pidfd names the peer only if the peer's slot is still alive (its OFD
 *     liveness lock held, generation unchanged) after pidfd_open: a pid cannot
 *     be reused while its process lives, so a pidfd opened before that check
 *     refers to the slot's owner. Otherwise the peer is already dead: reap.
 *   - proc_slot.pidns is the owner's pid namespace (inode of /proc/self/ns/pid),
 *     written at registration; a peer whose pidns differs from ours is not
 *     watched by pid. Nothing read from the slot is trusted beyond choosing
 *     whom to watch: a scribbled pid costs a missed notice (the fallback
 *     slices still apply once the peer counts as unwatched) or a spurious reap
 *     attempt (which checks the liveness lock).
 *   - w->gone only goes 0 -> 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exipc_internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define TAG_STOP 0xffffffffffffffffull
#define TAG_INOTIFY 0xfffffffffffffffeull
#define REAP_RETRY_MS 10 /* while a reap another process claimed is pending */

static uint64_t watch_pidns(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* The domain's name is gone (or names another file): mark it, then wake every
 * wait of this handle, each of which re-checks domain_gone(). */
static void mark_gone(exipc_domain_t *d)
{
    struct watch *w = &d->watch;
    if (ATOM_XCHG_SEQCST(&w->gone, 1u) != 0)
        return;
    struct seg_hdr *h = D_HDR(d);
    pthread_mutex_lock(&d->objs_lock);
    for (exipc_chan_t *c = d->chans; c != NULL; c = c->next)
        futex_wake(&c->rx->sleeping, INT_MAX);
    for (exipc_listener_t *l = d->listeners; l != NULL; l = l->next)
        bump_wake(&D_SVC(d, l->idx)->accept_futex); /* B1 -> B1: backlog before accept_futex */
    pthread_mutex_unlock(&d->objs_lock);
    doorbell_bump(&D_PROC(d, d->slot)->doorbell); /* D1 -> D1: work before doorbell */
    bump_wake(&h->services_epoch);           /* E1 -> E1: service before services_epoch */
    bump_wake(&h->lock.wake);
}

static bool file_unlinked(exipc_domain_t *d)
{
    struct stat st;
    return fstat(d->fd, &st) == 0 && st.st_nlink == 0;
}

void watch_check_unlink(exipc_domain_t *d)
{
    if (!domain_gone(d) && file_unlinked(d))
        mark_gone(d);
}

/* Reaps what died; returns how many reaps other processes hold claimed. */
static uint32_t reap_now(exipc_domain_t *d)
{
    struct reap_tally t = {0};
    cqm_reap_all(d, false, &t);
    return t.busy;
}

static void *watcher(void *arg)
{
    exipc_domain_t *d = arg;
    struct watch *w = &d->watch;
    int timeout = -1;
    for (;;) {
        struct epoll_event ev[16];
        int n = epoll_wait(w->epfd, ev, 16, timeout);
        if (n < 0 && errno != EINTR)
            break;
        bool reap = n == 0; /* a pending reap's retry */
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;
            if (tag == TAG_STOP)
                return NULL;
            if (tag == TAG_INOTIFY) {
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                while (read(w->inofd, buf, sizeof buf) > 0)
                    ;
                if (file_unlinked(d))
                    mark_gone(d);
                continue;
            }
            pthread_mutex_lock(&w->mu);
            if (tag < w->npeers && w->peers[tag].pidfd >= 0) {
                epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->peers[tag].pidfd, NULL);
                close(w->peers[tag].pidfd);
                w->peers[tag].pidfd = -1;
            }
            pthread_mutex_unlock(&w->mu);
            reap = true;
        }
        if (reap && !domain_gone(d))
            timeout = reap_now(d) != 0 ? REAP_RETRY_MS : -1;
    }
    return NULL;
}

/* One more thing the kernel will not tell us of: waits fall back to slices.
 * A poller parked without a timeout (Go's) is woken to take a slice. */
static void note_unwatched(exipc_domain_t *d)
{
    ATOM_FETCH_ADD(&d->watch.unwatched, 1u);
    doorbell_bump(&D_PROC(d, d->slot)->doorbell); /* D1 -> D1: work before doorbell */
}

/* Starts the watcher: epoll set, stop eventfd, inotify on the domain's name.
 * Called with w->mu held. */
static int watch_start(exipc_domain_t *d)
{
    struct watch *w = &d->watch;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->epfd < 0 || w->stopfd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_STOP};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stopfd, &ev) != 0)
        goto fail;
    /* On the file itself: IN_ATTRIB comes when its link count drops (unlink,
     * or a rename over it), and nothing else in /dev/shm wakes us. */
    w->inofd = d->path[0] != '\0' ? inotify_init1(IN_CLOEXEC | IN_NONBLOCK) : -1;
    if (w->inofd >= 0) {
        ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = TAG_INOTIFY};
        if (inotify_add_watch(w->inofd, d->path, IN_ATTRIB | IN_DELETE_SELF) < 0 ||
            epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->inofd, &ev) != 0) {
            close(w->inofd);
            w->inofd = -1;
        }
    }
    if (w->inofd < 0)
        note_unwatched(d); /* the unlink is noticed by the slices' fstat */
    if (pthread_create(&w->thread, NULL, watcher, d) != 0)
        goto fail;
    ATOM_STORE_RELEASE(&w->running, 1u); /* W1 -> W1: watcher set up before running */
    if (file_unlinked(d)) /* unlinked before the watch was in place */
        mark_gone(d);
    return 0;
fail:
    if (w->inofd >= 0)
        close(w->inofd);
    if (w->stopfd >= 0)
        close(w->stopfd);
    if (w->epfd >= 0)
        close(w->epfd);
    w->inofd = w->stopfd = w->epfd = -1;
    return -errno;
}

/* Starts the watcher if it is not running; false if it cannot run. Called
 * with w->mu held. */
static bool watch_ensure(exipc_domain_t *d)
{
    struct watch *w = &d->watch;
    if (ATOM_LOAD_RELAXED(&w->running))
        return true;
    if (ATOM_LOAD_RELAXED(&w->failed))
        return false;
#ifdef EXIPC_TESTING
    if (ATOM_LOAD_RELAXED(&exipc__no_watch)) {
        ATOM_STORE_RELAXED(&w->failed, 1u);
        note_unwatched(d);
        return false;
    }
#endif
    if (watch_start(d) != 0) {
        ATOM_STORE_RELAXED(&w->failed, 1u);
        note_unwatched(d);
        return false;
    }
    return true;
}

int64_t wait_slice_ns(exipc_domain_t *d)
{
    struct watch *w = &d->watch;
    if (!ATOM_LOAD_ACQUIRE(&w->running) && !ATOM_LOAD_RELAXED(&w->failed)) { /* W1 -> W1: watcher set up before running */
        pthread_mutex_lock(&w->mu);
        watch_ensure(d);
        pthread_mutex_unlock(&w->mu);
    }
    return ATOM_LOAD_RELAXED(&w->unwatched) != 0 || !ATOM_LOAD_RELAXED(&w->running) ? WAIT_SLICE_NS : INT64_MAX;
}

void watch_init(exipc_domain_t *d)
{
    struct watch *w = &d->watch;
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    w->epfd = w->stopfd = w->inofd = -1;
    w->pidns = watch_pidns();
}

void watch_peer(exipc_domain_t *d, uint32_t slot, uint32_t gen)
{
    struct watch *w = &d->watch;
    if (slot >= d->L.max_procs || slot == d->slot)
        return;
    pthread_mutex_lock(&w->mu);
    if (!watch_ensure(d))
        goto out;
    uint32_t k = w->npeers; /* an entry of a peer gone since, or a new one */
    for (uint32_t i = 0; i < w->npeers; i++) {
        if (w->peers[i].slot == slot && w->peers[i].gen == gen)
            goto out; /* watched already (or known unwatchable) */
        if (k == w->npeers && w->peers[i].pidfd < 0 && !w->peers[i].unwatched)
            k = i; /* its pidfd fired and was closed: reuse it, so the list stays as long as the peers alive */
    }
    if (k == w->npeers && w->npeers == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 8;
        void *p = realloc(w->peers, cap * sizeof *w->peers);
        if (p == NULL) {
            note_unwatched(d);
            goto out;
        }
        w->peers = p;
        w->cap = cap;
    }
    if (k == w->npeers)
        w->npeers++;
    w->peers[k] = (struct watched){.slot = slot, .gen = gen, .pidfd = -1};
    struct proc_slot *p = D_PROC(d, slot);
    int32_t pid = ATOM_LOAD_RELAXED(&p->pid);
    uint64_t ns = ATOM_LOAD_RELAXED(&p->pidns);
    if (pid <= 0 || ns == 0 || ns != w->pidns) {
        w->peers[k].unwatched = true; /* another pid namespace: slices it is */
        note_unwatched(d);
        goto out;
    }
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        if (errno == ESRCH) { /* gone already */
            pthread_mutex_unlock(&w->mu);
            reap_now(d);
            return;
        }
        w->peers[k].unwatched = true;
        note_unwatched(d);
        goto out;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (!proc_alive(d, slot, gen)) { /* died (or the pid was reused) before the check */
        close(fd);
        pthread_mutex_unlock(&w->mu);
        reap_now(d);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = k};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        w->peers[k].unwatched = true;
        note_unwatched(d);
        goto out;
    }
    w->peers[k].pidfd = fd;
out:
    pthread_mutex_unlock(&w->mu);
}

/* Stops the watcher and closes its descriptors. In a forked child the
 * thread is the parent's (it was not copied): only the child's copies of
 * the descriptors are closed, which leaves the parent's epoll set alone
 * (an entry goes only when every descriptor of its file is closed). */
void watch_stop(exipc_domain_t *d)
{
    struct watch *w = &d->watch;
    if (ATOM_LOAD_RELAXED(&w->running) && !forked(d)) {
        uint64_t one = 1;
        if (write(w->stopfd, &one, sizeof one) == sizeof one)
            pthread_join(w->thread, NULL);
        else
            pthread_detach(w->thread);
    }
    ATOM_STORE_RELAXED(&w->running, 0u);
    for (uint32_t i = 0; i < w->npeers; i++)
        if (w->peers[i].pidfd >= 0)
            close(w->peers[i].pidfd);
    free(w->peers);
    w->peers = NULL;
    w->npeers = w->cap = 0;
    int *fds[] = {&w->inofd, &w->stopfd, &w->epfd};
    for (size_t i = 0; i < 3; i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}

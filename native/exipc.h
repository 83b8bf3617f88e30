/*
 * exipc.h — the public C API of exipc, a shared-memory IPC layer for Linux.
 *
 * Two or more processes map one domain (a POSIX shared-memory segment at
 * /dev/shm/exipc.NAME). A sender allocates a block of the domain's heap,
 * writes into it and sends only its 64-bit handle on a channel; the receiver
 * gets the handle and reads the block in place.
 *
 * Conventions, for every function below:
 *   - Returns 0 (or a count) on success and a negative errno on failure.
 *     exipc_strerror() turns that value into text.
 *   - Timeouts are nanoseconds: 0 = never block, negative = wait without limit.
 *   - Error values: -EAGAIN ring full / nothing to receive, -EPIPE peer dead or
 *     closed (after everything it sent was received), -ETIMEDOUT a wait ran
 *     out, -ENOMEM heap full, -EBADMSG bad handle, -EPROTO shared state failed
 *     a check, -ENOENT no such service, -EEXIST service taken, -EINVAL bad
 *     argument, -ENOTSUP segment of another layout, -ENOSPC no room in
 *     /dev/shm, -EMFILE a table (processes, services, channels) is full,
 *     -EBADF a forked child used its parent's domain.
 *   - Thread-safety: a domain may be used from many threads. On one channel,
 *     one thread may send while another receives; two threads must not send
 *     (or receive) on the same channel at the same time. A listener serves one
 *     accepting thread at a time.
 */
#ifndef EXIPC_H
#define EXIPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EXIPC_API __attribute__((visibility("default")))
#else
#define EXIPC_API
#endif

/* A reference to a heap block, valid in every process of the domain. 0 is
 * never a valid handle. The top bit is always clear. */
typedef uint64_t exipc_handle_t;

typedef struct exipc_domain exipc_domain_t;
typedef struct exipc_listener exipc_listener_t;
typedef struct exipc_chan exipc_chan_t;

/* Options for creating a domain. Zeroed fields take defaults. When a domain
 * already exists, its own values win and these are ignored (except mode,
 * which is unused on attach). */
struct exipc_options {
    uint64_t size;          /* bytes of heap arena; default 32 MiB, min 64 KiB */
    uint32_t max_procs;     /* process slots; default 64, max 1024 */
    uint32_t max_chans;     /* channels (and services); default 256, max 65536 */
    uint32_t ring_capacity; /* handles per ring, power of two 2..65536; default 256 */
    uint32_t mode;          /* file mode of a new domain; default 0600; only 0600/0660/0666-style bits */
    uint32_t max_block;     /* largest block, power of two 64 B..64 MiB; default 1 MiB */
    uint32_t reserved[3];   /* must be zero */
};

/* Domain-wide counters (see exipc_stat). */
struct exipc_stat {
    uint32_t procs_alive;   /* process slots in use by live processes */
    uint32_t chans_bound;   /* channels with at least one open end */
    uint32_t services;      /* listening services */
    uint64_t heap_bytes_total; /* bytes of heap arena */
    uint64_t heap_bytes_used;  /* bytes of blocks not free (whole size classes) */
    uint64_t heap_blocks_used; /* blocks not free: owned or in flight */
    uint64_t reaped_procs;     /* dead processes cleaned so far (cumulative) */
};

/* ---- domains ---------------------------------------------------------- */

/* exipc_open creates the domain NAME, or attaches to it if it exists, and
 * registers the calling process in it. opt may be NULL.
 * Names: 1-200 of [A-Za-z0-9._-], not starting with '.'.
 * Returns 0 and sets *out. Errors: -EINVAL (name, options), -ENOTSUP (layout
 * version or cache-line size differ), -EPROTO (header fails its checks),
 * -EACCES (owner or mode), -ENOSPC (no room in /dev/shm), -EMFILE (no free
 * process slot), -ETIMEDOUT (a creator never finished). Thread-safe. */
EXIPC_API int exipc_open(const char *name, const struct exipc_options *opt, exipc_domain_t **out);

/* exipc_close unregisters the process: closes every channel and listener
 * still open on d (their pointers become invalid), frees every block the
 * process owns, and unmaps the domain. The segment stays until
 * exipc_unlink. Returns 0. Not to be called while other threads use d. */
EXIPC_API int exipc_close(exipc_domain_t *d);

/* exipc_unlink removes the domain's name; processes that have it mapped keep
 * working. Returns 0, -ENOENT if there is no such domain, -EINVAL for a bad
 * name. */
EXIPC_API int exipc_unlink(const char *name);

/* ---- binding ---------------------------------------------------------- */

/* exipc_listen starts listening on SERVICE (1-47 of [A-Za-z0-9._-]).
 * Errors: -EINVAL, -EEXIST (taken by a live process), -EMFILE (table full),
 * -ETIMEDOUT (queue manager lock not obtained). Thread-safe. */
EXIPC_API int exipc_listen(exipc_domain_t *d, const char *service, exipc_listener_t **out);

/* exipc_accept takes the oldest channel connected to the listener's service.
 * Returns 0 and sets *out. Errors: -EAGAIN (timeout 0 and none pending),
 * -ETIMEDOUT, -EPROTO. One accepting thread per listener. */
EXIPC_API int exipc_accept(exipc_listener_t *l, int64_t timeout_ns, exipc_chan_t **out);

/* exipc_listener_close stops listening. Channels connected but not yet
 * accepted are closed from the server's side (their clients see -EPIPE).
 * Returns 0. */
EXIPC_API int exipc_listener_close(exipc_listener_t *l);

/* exipc_connect binds a new channel to SERVICE at once (the listener's
 * backlog holds it until accepted). If the service is not there it waits for
 * it up to timeout_ns. Errors: -ENOENT (no such service when the timeout ran
 * out), -EMFILE (channel table full), -EINVAL. Thread-safe. */
EXIPC_API int exipc_connect(exipc_domain_t *d, const char *service, int64_t timeout_ns, exipc_chan_t **out);

/* exipc_chan_close closes this end. The peer receives everything sent so
 * far, then -EPIPE. Handles in flight towards this end are freed. The
 * channel's slot is reused once both ends are closed. Returns 0, also when
 * the peer died. Not to be called while another thread uses c. */
EXIPC_API int exipc_chan_close(exipc_chan_t *c);

/* ---- heap ------------------------------------------------------------- */

/* exipc_alloc allocates a block of at least SIZE bytes (1..max_block), owned
 * by the calling process. Errors: -EINVAL (size), -ENOMEM (no free block of
 * that class), -EPROTO. Thread-safe, lock-free. */
EXIPC_API int exipc_alloc(exipc_domain_t *d, size_t size, exipc_handle_t *out);

/* exipc_ptr returns the block's address in this process and, if len is not
 * NULL, the size asked for at alloc. Returns NULL if h is not a live block
 * owned by this process (0, forged, freed, stale, in flight). Thread-safe. */
EXIPC_API void *exipc_ptr(exipc_domain_t *d, exipc_handle_t h, size_t *len);

/* exipc_free returns a block owned by this process to the heap. Errors:
 * -EBADMSG (not a live block owned by this process: double free, stale,
 * forged, in flight). Thread-safe, lock-free. */
EXIPC_API int exipc_free(exipc_domain_t *d, exipc_handle_t h);

/* ---- data plane ------------------------------------------------------- */

/* exipc_send enqueues h towards the peer; on success h belongs to the
 * receiver. Never blocks. Errors: -EAGAIN (ring full), -EPIPE (peer closed or
 * dead), -EBADMSG (h is not a live block owned by this process), -EPROTO.
 * On any error h still belongs to the caller. */
EXIPC_API int exipc_send(exipc_chan_t *c, exipc_handle_t h);

/* exipc_recv dequeues one handle, which then belongs to the caller. Spins
 * briefly, then sleeps on a futex until a handle arrives, the peer goes, or
 * the timeout runs out. Errors: -EAGAIN (timeout 0, empty), -ETIMEDOUT,
 * -EPIPE (peer closed or dead and the ring is drained), -EBADMSG (the peer
 * enqueued something that is not a block in flight on this channel; it was
 * skipped), -EPROTO. */
EXIPC_API int exipc_recv(exipc_chan_t *c, exipc_handle_t *h, int64_t timeout_ns);

/* exipc_send_batch sends hs[0..n) in order with one publication. Returns how
 * many were sent (k); hs[k..n) still belong to the caller. Errors when none
 * was sent: -EAGAIN, -EPIPE, -EBADMSG (hs[0] is bad), -EINVAL (n == 0). */
EXIPC_API int exipc_send_batch(exipc_chan_t *c, const exipc_handle_t *hs, size_t n);

/* exipc_recv_batch receives up to max handles into hs, waiting like
 * exipc_recv for the first. Returns how many. Errors when none: as
 * exipc_recv, and -EINVAL (max == 0). */
EXIPC_API int exipc_recv_batch(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t timeout_ns);

/* ---- housekeeping ----------------------------------------------------- */

/* exipc_reap cleans up after every dead process of the domain: its blocks,
 * channels, services and slot. Returns how many this call cleaned (0 if
 * there were none or another process cleaned them). Thread-safe. */
EXIPC_API int exipc_reap(exipc_domain_t *d);

/* exipc_stat fills *st with domain-wide counters. Returns 0. Thread-safe. */
EXIPC_API int exipc_stat(exipc_domain_t *d, struct exipc_stat *st);

/* exipc_strerror describes an exipc return value (negative errno). Never
 * returns NULL. Thread-safe. */
EXIPC_API const char *exipc_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* EXIPC_H */

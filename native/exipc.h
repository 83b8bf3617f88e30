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
    uint32_t wait_policy;   /* EXIPC_WAIT_*: how this process's receives wait; default adaptive */
    uint32_t reserved[2];   /* must be zero */
};

/* How a blocking receive waits (exipc_options.wait_policy). A property of the
 * process that opens, not of the domain: each process picks its own.
 *   ADAPTIVE  spin about 20 us (two futex round trips), then sleep on a futex.
 *             Low latency for busy channels, no CPU burnt on idle ones.
 *   SPIN      never sleep: lowest latency, one CPU busy per waiting thread.
 *             For a dedicated core per receiver.
 *   PARK      sleep at once: least CPU, a futex wake-up (~13 us here) per
 *             message that finds the receiver idle. For many idle channels. */
#define EXIPC_WAIT_ADAPTIVE 0u
#define EXIPC_WAIT_SPIN 1u
#define EXIPC_WAIT_PARK 2u

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

/* ---- waiting on many channels ------------------------------------------- */

/* One entry of exipc_poll: set exactly one of chan or listener; ready is set
 * by the call (1: a receive or accept would not block, or the peer is gone). */
struct exipc_pollitem {
    exipc_chan_t *chan;
    exipc_listener_t *listener;
    uint32_t ready;
};

/* exipc_poll waits until at least one item is ready, like poll(2): a channel
 * has a handle to receive or its peer has gone, a listener has a channel to
 * accept. The wait is one futex on the process's doorbell, whatever n is; a
 * producer rings it only if it finds the consumer parked. Returns how many
 * items are ready (0 if woken by exipc_wake), -EAGAIN (timeout 0, none
 * ready), -ETIMEDOUT, -EINVAL. Thread-safe; spurious readiness is possible
 * (a later receive may still return -EAGAIN). */
EXIPC_API int exipc_poll(exipc_domain_t *d, struct exipc_pollitem *items, size_t n, int64_t timeout_ns);

/* exipc_chan_arm asks for the doorbell to be rung when c becomes ready.
 * Returns 1 if it is ready already (nothing armed), 0 if armed. For event
 * loops built on exipc_wait_ready; the receiving thread calls it. */
EXIPC_API int exipc_chan_arm(exipc_chan_t *c);

/* exipc_listener_arm: the same for a listener (ready = a channel to accept). */
EXIPC_API int exipc_listener_arm(exipc_listener_t *l);

/* exipc_chan_id / exipc_listener_id: the bit that stands for c or l in the
 * words filled by exipc_wait_ready. Stable while the object is open. */
EXIPC_API uint32_t exipc_chan_id(const exipc_chan_t *c);
EXIPC_API uint32_t exipc_listener_id(const exipc_listener_t *l);

/* exipc_ready_words: how many 64-bit words exipc_wait_ready fills. */
EXIPC_API size_t exipc_ready_words(const exipc_domain_t *d);

/* exipc_wait_ready sleeps on the process's doorbell until an armed channel
 * or listener becomes ready, then takes the ready bits (bit exipc_chan_id(c)
 * or exipc_listener_id(l) set in bits[]; words must be at least
 * exipc_ready_words(d)). Returns how many bits it took, 0 when woken with
 * none (exipc_wake, or a spurious ring), -EAGAIN (timeout 0 and none),
 * -ETIMEDOUT, -EINVAL. Bits are hints: re-check with a non-blocking call. */
EXIPC_API int exipc_wait_ready(exipc_domain_t *d, uint64_t *bits, size_t words, int64_t timeout_ns);

/* exipc_wake makes a concurrent exipc_wait_ready or exipc_poll of this
 * process return early (with 0). Thread-safe, async-signal-safe. */
EXIPC_API int exipc_wake(exipc_domain_t *d);

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

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
 *     out, -ENOMEM heap full, -EMSGSIZE larger than any block the domain can
 *     give, -EBADMSG bad handle, -EPROTO shared state failed
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
    uint32_t max_block;     /* largest block exipc_alloc gives, 64 B..min(size, 2 GiB); default half the
                             * arena (16 MiB at the default size). Larger asks get -EMSGSIZE */
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

/* Per-class and page-pool figures of a domain's heap (see exipc_heap_stat).
 * The heap is a pool of pages: slabs of 1-7 pages serve one size class
 * each (64 B to 16 KiB, four classes per doubling, so a block wastes at most
 * a quarter of its size), and larger blocks are runs of pages of their own.
 * An empty slab goes back to the pool at once, and free runs coalesce. */
#define EXIPC_MAX_CLASSES 64 /* entries of exipc_heap_stat.cls; nclasses are used */
struct exipc_class_stat {
    uint64_t size;        /* block size of the class, bytes; in the last entry, max_block (large blocks) */
    uint64_t blocks_used; /* blocks owned or in flight */
    uint64_t blocks_free; /* blocks free in the class's slabs, in process caches included */
    uint64_t slabs;       /* slabs of the class; in the last entry, the pages of large blocks */
};
struct exipc_heap_stat {
    uint64_t page_size;        /* bytes of one page of the pool */
    uint64_t pages_total;      /* pages of the arena */
    uint64_t pages_free;       /* pages in free runs (not in any slab or large block) */
    uint64_t largest_free_run; /* bytes of the longest free run: the largest block that fits now */
    uint64_t largest_block;    /* bytes: the largest block the domain can ever give (max_block);
                                * larger asks get -EMSGSIZE */
    uint32_t nclasses;         /* entries used in cls: the slab classes, then one for large blocks */
    uint32_t _pad;
    struct exipc_class_stat cls[EXIPC_MAX_CLASSES];
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
 * out), -EMFILE (channel table full), -EINVAL, -ETIMEDOUT (the queue
 * manager's lock stayed busy for the whole timeout, at least 1 ms).
 * Thread-safe. */
EXIPC_API int exipc_connect(exipc_domain_t *d, const char *service, int64_t timeout_ns, exipc_chan_t **out);

/* exipc_chan_close closes this end. The peer receives everything sent so
 * far, then -EPIPE. Handles in flight towards this end are freed. The
 * channel's slot is reused once both ends are closed. Returns 0, also when
 * the peer died. Not to be called while another thread uses c. */
EXIPC_API int exipc_chan_close(exipc_chan_t *c);

/* ---- heap ------------------------------------------------------------- */

/* exipc_alloc allocates a block of at least SIZE bytes (1..max_block), owned
 * by the calling process. Blocks are 16-byte aligned (64-byte from 256 B up).
 * Returns 0 and sets *out. Errors: -EINVAL (size 0), -EMSGSIZE (size above
 * max_block: no block this large can ever be given), -ENOMEM (it could fit
 * but does not now; this process's own cache of free blocks was returned
 * first), -EPROTO (shared state failed a check, or the heap's page pool was
 * held over 2 s by a live process; while that same holder stays, for a
 * second, at once). Thread-safe. Blocks of up to 4 KiB come
 * from a per-process cache without a lock; a refill, a larger block or a
 * full cache takes the pool's lock briefly (a CAS; a holder that died is
 * taken over and the pool rebuilt). */
EXIPC_API int exipc_alloc(exipc_domain_t *d, size_t size, exipc_handle_t *out);

/* exipc_ptr returns the block's address in this process and, if len is not
 * NULL, the size asked for at alloc. Returns NULL if h is not a live block
 * owned by this process (0, forged, freed, stale, in flight). Thread-safe. */
EXIPC_API void *exipc_ptr(exipc_domain_t *d, exipc_handle_t h, size_t *len);

/* exipc_free returns a block owned by this process to the heap. Returns 0.
 * Errors: -EBADMSG (not a live block owned by this process: double free,
 * stale, forged, in flight), -EPROTO. Thread-safe; blocks of up to 4 KiB go
 * to the process's cache without a lock (as exipc_alloc). */
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
 * channels, services and slot. Exactly one reaper cleans each dead process;
 * one that another process (or thread) is cleaning already is waited for,
 * up to 2 s, so that on return every process found dead has been cleaned.
 * Returns how many this call cleaned (0 if there were none or others
 * cleaned them). Errors (only when it cleaned none): -ETIMEDOUT (queue
 * manager lock), -ENOMEM, -EBADF. Thread-safe. Receives, polls and opens
 * reap by themselves; calling this is never required. */
EXIPC_API int exipc_reap(exipc_domain_t *d);

/* exipc_stat fills *st with domain-wide counters. Returns 0. Thread-safe. */
EXIPC_API int exipc_stat(exipc_domain_t *d, struct exipc_stat *st);

/* exipc_heap_stat fills *st with the heap's page-pool and per-class figures.
 * It only reads the segment (no lock, no write: it works on a read-only
 * mapping), with bounded loops; figures read while others allocate are a
 * snapshot that may be slightly off, and exact when the heap is quiet.
 * Returns 0. Errors: -EINVAL (NULL), -EBADF (forked child), -EPROTO (the
 * page table fails its checks). Thread-safe. */
EXIPC_API int exipc_heap_stat(exipc_domain_t *d, struct exipc_heap_stat *st);

/* exipc_strerror describes an exipc return value (negative errno). Never
 * returns NULL. Thread-safe. */
EXIPC_API const char *exipc_strerror(int err);

/* ---- stubs: request/response over a channel ------------------------------ */

/* A stub is a protocol's request/response layer on a channel (the seed's
 * expop). Every message is ONE heap block: a 32-byte little-endian header,
 * then the body in the same block, so the body is never copied through a
 * socket or a second buffer.
 *
 *   offset size field
 *   0      4    magic     EXIPC_STUB_MAGIC (bytes "xstb")
 *   4      2    version   EXIPC_STUB_VERSION
 *   6      1    kind      EXIPC_STUB_REQUEST / _RESPONSE / _ERROR
 *   7      1    flags     0
 *   8      8    id        correlation id, chosen by the client, echoed back
 *   16     4    op        method, echoed back
 *   20     4    status    0 in requests and responses; an error's code (int32)
 *   24     4    body_len  bytes of body after the header (<= block - 32)
 *   28     4    reserved  0
 *
 * An error reply's body is its message text (UTF-8, no NUL). Many requests
 * may be in flight on one channel; replies may come back in any order and
 * are matched by id. A server answers every well-formed request exactly once
 * (unless the client has gone); a client that stops waiting (timeout,
 * cancellation) drops the late reply when it arrives. Status codes below 0
 * are the stub's (negative errno: -ENOSYS no handler for op, -EPROTO
 * malformed request, -ENOMEM no heap for the reply); codes above 0 belong to
 * the service. */
#define EXIPC_STUB_MAGIC 0x62747378u /* "xstb" */
#define EXIPC_STUB_VERSION 1u
#define EXIPC_STUB_HDR_SIZE 32u
#define EXIPC_STUB_REQUEST 1u
#define EXIPC_STUB_RESPONSE 2u
#define EXIPC_STUB_ERROR 3u

/* The header, decoded (host byte order). */
struct exipc_stub_hdr {
    uint32_t magic;
    uint16_t version;
    uint8_t kind;
    uint8_t flags;
    uint64_t id;
    uint32_t op;
    int32_t status;
    uint32_t body_len;
    uint32_t reserved;
};

/* A received message: its block (owned by the caller until freed), the
 * decoded header and the body, in place in the shared heap. */
struct exipc_stub_msg {
    exipc_handle_t handle;
    struct exipc_stub_hdr hdr;
    void *body;
};

/* exipc_stub_msg_alloc allocates a block of EXIPC_STUB_HDR_SIZE +
 * hdr->body_len bytes, writes the header (magic and version filled in) and
 * sets *body to where the body goes, to be filled in place. Returns 0.
 * Errors: as exipc_alloc. Thread-safe. */
EXIPC_API int exipc_stub_msg_alloc(exipc_domain_t *d, const struct exipc_stub_hdr *hdr,
                                   exipc_handle_t *h, void **body);

/* exipc_stub_msg_parse checks the block h (owned by the caller) and decodes
 * it into *m. Returns 0. Errors: -EBADMSG (not a live block of ours),
 * -EPROTO (shorter than a header, wrong magic, version or kind, body_len
 * beyond the block). The block is not freed on error. Thread-safe. */
EXIPC_API int exipc_stub_msg_parse(exipc_domain_t *d, exipc_handle_t h, struct exipc_stub_msg *m);

/* exipc_stub_msg_free frees m's block and clears *m. Returns 0 or
 * -EBADMSG (already freed). Freeing a zeroed message is a no-op. */
EXIPC_API int exipc_stub_msg_free(exipc_domain_t *d, struct exipc_stub_msg *m);

/* -- server side -- */
typedef struct exipc_stub_server exipc_stub_server_t;
typedef struct exipc_stub_reply exipc_stub_reply_t; /* valid during a handler call */

/* A request as a handler sees it. body points into the request's block and
 * is valid until the handler returns. conn names the channel it came on
 * (unique for the server's life; see exipc_stub_server_on_close). */
struct exipc_stub_req {
    uint64_t conn;
    uint64_t id;
    uint32_t op;
    uint32_t body_len;
    const void *body;
};

/* A handler builds its reply with exipc_stub_reply_alloc (a response) or
 * exipc_stub_reply_error, and returns 0. A handler that returns a negative
 * errno without having called exipc_stub_reply_error sends an error reply
 * with that status and exipc_strerror's text. Returning 0 without a reply
 * sends an empty response. */
typedef int (*exipc_stub_handler_fn)(void *arg, const struct exipc_stub_req *req,
                                     exipc_stub_reply_t *rep);

/* exipc_stub_server_open listens on SERVICE. Returns 0 and sets *out.
 * Errors: as exipc_listen, -ENOMEM (malloc). */
EXIPC_API int exipc_stub_server_open(exipc_domain_t *d, const char *service, exipc_stub_server_t **out);

/* exipc_stub_server_handle registers fn for op (replacing any earlier one).
 * Requests for an op with no handler get an error reply -ENOSYS. Returns 0,
 * -ENOMEM. */
EXIPC_API int exipc_stub_server_handle(exipc_stub_server_t *s, uint32_t op, exipc_stub_handler_fn fn, void *arg);

/* exipc_stub_server_on_close sets fn, called with a conn id when that
 * channel's client closed or died (to drop per-connection state). Returns 0. */
EXIPC_API int exipc_stub_server_on_close(exipc_stub_server_t *s, void (*fn)(void *arg, uint64_t conn), void *arg);

/* exipc_stub_serve accepts new channels and handles the requests waiting on
 * all of them, waiting up to timeout_ns for something to do (one
 * exipc_poll over the listener and every channel). Replies that find the
 * client's ring full wait in a per-channel outbox and no more requests are
 * taken from that channel until it drains (backpressure: the client then
 * sees a full queue, never a stalled server). Returns how many requests were
 * handled (0 if woken with none), -EAGAIN (timeout 0, nothing to do),
 * -ETIMEDOUT, or another negative errno from exipc_poll. Call it in a loop
 * from one thread. */
EXIPC_API int exipc_stub_serve(exipc_stub_server_t *s, int64_t timeout_ns);

/* exipc_stub_server_close closes the listener and every channel (calling
 * on_close for each) and frees s. Returns 0. */
EXIPC_API int exipc_stub_server_close(exipc_stub_server_t *s);

/* exipc_stub_reply_alloc makes the reply a response whose body has room for
 * cap bytes and sets *body to it (in the shared heap: write in place). The
 * body length is cap unless exipc_stub_reply_set_len shortens it. Calling
 * it again replaces the earlier body. Returns 0. Errors: as exipc_alloc. */
EXIPC_API int exipc_stub_reply_alloc(exipc_stub_reply_t *r, size_t cap, void **body);

/* exipc_stub_reply_set_len sets the body length of an allocated response
 * (len <= cap). Returns 0, -EINVAL. */
EXIPC_API int exipc_stub_reply_set_len(exipc_stub_reply_t *r, size_t len);

/* exipc_stub_reply_error makes the reply an error with STATUS (nonzero) and
 * the message MSG (may be NULL), dropping any response body. Returns 0. */
EXIPC_API int exipc_stub_reply_error(exipc_stub_reply_t *r, int32_t status, const char *msg);

/* -- client side -- */
typedef struct exipc_stub_client exipc_stub_client_t;

/* exipc_stub_connect connects a client to SERVICE (waiting up to timeout_ns
 * for it to appear, like exipc_connect). Returns 0. Errors: as
 * exipc_connect, -ENOMEM. One thread at a time per client. */
EXIPC_API int exipc_stub_connect(exipc_domain_t *d, const char *service, int64_t timeout_ns,
                                 exipc_stub_client_t **out);

/* exipc_stub_client_close closes the channel, frees every reply still held
 * and frees c. Returns 0. */
EXIPC_API int exipc_stub_client_close(exipc_stub_client_t *c);

/* exipc_stub_start sends a request (op, a copy of len bytes of body) without
 * waiting and sets *id for exipc_stub_wait. Never blocks. Errors: -EAGAIN
 * (the server's queue is full: retry later), -ENOMEM (heap full), -EPIPE
 * (server gone), -EINVAL (len too big for a block). */
EXIPC_API int exipc_stub_start(exipc_stub_client_t *c, uint32_t op, const void *body, size_t len, uint64_t *id);

/* exipc_stub_wait waits up to timeout_ns for the reply to request id; replies
 * to other requests in flight that arrive meanwhile are kept for their own
 * wait. Returns 0 with a response in *reply, or -EREMOTEIO with an error reply
 * in *reply (hdr.status, body = message); either way the caller frees it with
 * exipc_stub_msg_free. Other errors: -ETIMEDOUT (id is cancelled: its reply
 * will be dropped), -EAGAIN (timeout 0, not there yet; id stays pending),
 * -EPIPE (server gone before replying), -ENOENT (id not pending). */
EXIPC_API int exipc_stub_wait(exipc_stub_client_t *c, uint64_t id, int64_t timeout_ns, struct exipc_stub_msg *reply);

/* exipc_stub_cancel stops waiting for id: its reply is dropped (freed) now
 * or when it arrives. Returns 0, -ENOENT. */
EXIPC_API int exipc_stub_cancel(exipc_stub_client_t *c, uint64_t id);

/* exipc_stub_call is exipc_stub_start then exipc_stub_wait. */
EXIPC_API int exipc_stub_call(exipc_stub_client_t *c, uint32_t op, const void *body, size_t len,
                              int64_t timeout_ns, struct exipc_stub_msg *reply);

#ifdef __cplusplus
}
#endif
#endif /* EXIPC_H */

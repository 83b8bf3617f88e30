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
    uint32_t flags;         /* EXIPC_ATTACH_ONLY, EXIPC_TRUST_UID, EXIPC_TRUST_GID, EXIPC_TRUST_ANY */
    uint32_t trust_uid;     /* with EXIPC_TRUST_UID: a domain owned by this uid is accepted too */
    uint32_t trust_gid;     /* with EXIPC_TRUST_GID: a domain of this group is accepted too, and a new one gets it */
    uint32_t proc_quota;    /* a new domain: blocks each process may hold (owned, or sent and still queued);
                             * past it exipc_alloc returns -ENOMEM at once; 0: no limit */
    uint32_t reserved[4];   /* must be zero */
};

/* exipc_options.flags.
 *   ATTACH_ONLY  attach to an existing domain only: -ENOENT, and nothing is
 *                created, if there is none.
 *   TRUST_UID    also accept a domain owned by trust_uid.
 *   TRUST_GID    also accept a domain whose group is trust_gid (its mode must
 *                let the group in: create it with mode 0660); a domain this
 *                call creates is given that group.
 *   TRUST_ANY    accept a domain whatever its owner (tools that inspect
 *                other users' domains; never for a server or a client).
 * Trust: by default exipc_open attaches only to a domain whose file is owned
 * by the caller's effective uid, checked with fstat on the opened file, not
 * on the path. Anything else is -EACCES before a byte of it is read: another
 * local user could otherwise create the name first (/dev/shm is shared by
 * all users) and read every message and hand out every block. root is no
 * exception. The same holds when the caller means to create the domain and
 * finds the name taken. */
#define EXIPC_ATTACH_ONLY 1u
#define EXIPC_TRUST_UID 2u
#define EXIPC_TRUST_GID 4u
#define EXIPC_TRUST_ANY 8u

/* How a blocking receive waits (exipc_options.wait_policy). A property of the
 * process that opens, not of the domain: each process picks its own.
 *   ADAPTIVE  spin about 20 us (two futex round trips), then sleep on a futex.
 *             Low latency for busy channels, no CPU burnt on idle ones.
 *   SPIN      never sleep: lowest latency, one CPU busy per waiting thread.
 *             For a dedicated core per receiver.
 *   PARK      sleep at once: least CPU, a futex wake-up (tens of us on a
 *             VM) per message that finds the receiver idle. For many idle channels. */
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
    uint64_t blocks_free; /* blocks free in the class's slabs, in process caches and the depot included */
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
 * -EACCES (the domain's file belongs to a user or group not trusted, see
 * exipc_options.flags; or its mode refuses us), -ENOENT (EXIPC_ATTACH_ONLY
 * and no such domain), -ENOSPC (no room in /dev/shm), -EMFILE (no free
 * process slot), -ETIMEDOUT (a creator never finished). Thread-safe. */
EXIPC_API int exipc_open(const char *name, const struct exipc_options *opt, exipc_domain_t **out);

/* exipc_close unregisters the process: closes every channel and listener
 * still open on d (their pointers become invalid), frees every block the
 * process owns, and unmaps the domain. The segment stays until
 * exipc_unlink. Returns 0. Not to be called while other threads use d. */
EXIPC_API int exipc_close(exipc_domain_t *d);

/* exipc_leave is exipc_close, and, when no other live process is attached
 * any more, also removes the domain's name (decided under the table lock,
 * so of two processes leaving at once exactly the last one removes it; a
 * name that meanwhile names another domain is left alone). The way for the
 * last process out to clean up: a server that unlinks on an ordinary exit
 * while clients are attached strands them (they see -EIDRM). Returns 1 if
 * it removed the name, 0 if not, -EINVAL. Not to be called while other
 * threads use d. */
EXIPC_API int exipc_leave(exipc_domain_t *d);

/* exipc_unlink removes the domain's name at once. Processes attached to it
 * learn of it (their watcher sees the file go) and get -EIDRM from then on,
 * blocked calls included; they must close and reopen the name. Use
 * exipc_leave for an ordinary exit. Returns 0, -ENOENT if there is no such
 * domain, -EINVAL for a bad name. */
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
 * to the process's cache without a lock (as exipc_alloc). A full cache
 * hands its older half to the domain's depot, where the next refill of any
 * process (the sender of a stream, typically) takes them whole, without
 * their slabs' free lists; what does not fit there goes to the slabs. */
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

/* exipc_strerror describes an exipc return value (negative errno): every code
 * an exipc call returns has its own text; an errno passed through from a
 * system call gets the C library's text. Go's error texts come from the same
 * table. Never returns NULL. Thread-safe. */
EXIPC_API const char *exipc_strerror(int err);

/* ---- inspection: read-only, without registering ---------------------------- */

/* An inspector looks at a domain without taking part in it: it opens the
 * file read-only and maps it PROT_READ, never creates a file, never takes a
 * process slot, never takes the queue manager's lock. Tables are read
 * optimistically (they may change while being read); every value is checked
 * before use and every loop is bounded by the inspector's own copy of the
 * layout, so a scribbled domain yields -EPROTO or odd figures, never a
 * crash or a hang. Each call reads the domain anew. */
typedef struct exipc_inspector exipc_inspector_t;

/* The domain's shape and its cumulative counters. */
struct exipc_inspect_info {
    uint64_t total_size;      /* bytes of the segment */
    uint64_t arena_size;      /* bytes of heap arena */
    uint32_t max_procs, max_chans, ring_capacity, max_block;
    uint32_t creator_uid;     /* as recorded in the header */
    uint32_t layout_version;
    uint64_t reaped_procs;    /* dead processes cleaned (cumulative) */
    uint64_t reap_takeovers;  /* claims taken over from a dead reaper */
    uint64_t reap_stragglers; /* blocks reapers found in flight in no ring */
    uint64_t lock_repairs;    /* times a locker found the lock's holder dead */
    uint64_t allocs;          /* blocks allocated so far (derived from block generations) */
    uint64_t frees;           /* blocks freed so far (the same) */
};

/* Process slot states, as exipc_proc_info.state. */
#define EXIPC_PROC_FREE 0u
#define EXIPC_PROC_ALIVE 1u    /* registered and its liveness lock is held */
#define EXIPC_PROC_DEAD 2u     /* registered, but its process is gone: to reap */
#define EXIPC_PROC_REAPING 3u  /* being cleaned by a reaper */

/* One process slot that is not free. */
struct exipc_proc_info {
    uint32_t slot, state, gen;
    int32_t pid;           /* as the process recorded it (its pid namespace) */
    uint32_t chans;        /* channel ends it holds open */
    uint32_t services;     /* services it listens on */
    uint64_t blocks_owned; /* heap blocks it owns */
    uint64_t blocks_cached;/* free blocks in its local cache */
    uint64_t doorbell;     /* times its doorbell was rung (wake-ups for its polls) */
};

/* One listening service. */
struct exipc_service_info {
    uint32_t index, owner_slot;
    int32_t owner_pid;
    uint32_t pending;      /* channels connected, not yet accepted */
    char name[48];
};

/* One end of a channel: side 0 is the client (connect), 1 the server. */
struct exipc_chan_end_info {
    uint32_t slot;         /* process slot, 0xffffffff: none yet (pending) */
    int32_t pid;           /* 0: none */
    uint32_t closed;       /* the end was closed (or its process reaped) */
    uint32_t alive;        /* the end's process is alive */
    uint64_t sent;         /* handles this end sent (its ring's tail) */
    uint64_t received;     /* handles this end received (the other ring's head) */
    uint64_t full_refusals;/* sends refused because the ring was full */
    uint64_t wakeups;      /* wake-ups this end issued to a parked peer */
};

/* Channel states, as exipc_chan_info.state. */
#define EXIPC_CHAN_PENDING 1u  /* connected, not accepted */
#define EXIPC_CHAN_BOUND 2u    /* accepted */

/* One channel that is not free. queued[0]: handles queued client -> server,
 * queued[1]: server -> client. */
struct exipc_chan_info {
    uint32_t index, state, service_index, ring_capacity;
    char service[48];      /* the service it was connected to ("" if gone) */
    uint64_t queued[2];
    struct exipc_chan_end_info end[2];
};

/* exipc_inspect_open opens the domain NAME read-only. Returns 0 and sets
 * *out. Errors: -EINVAL (name), -ENOENT (no such domain), -EACCES (the file
 * may not be read), -EPROTO (not a domain: too short, bad magic, header or
 * size inconsistent, half created), -ENOTSUP (another layout version or
 * cache-line size), -ENOMEM. Thread-safe. */
EXIPC_API int exipc_inspect_open(const char *name, exipc_inspector_t **out);

/* exipc_inspect_close unmaps and frees in. Returns 0. */
EXIPC_API int exipc_inspect_close(exipc_inspector_t *in);

/* exipc_inspect_info fills *info. Returns 0, -EINVAL. */
EXIPC_API int exipc_inspect_info(exipc_inspector_t *in, struct exipc_inspect_info *info);

/* exipc_inspect_stat fills *st as exipc_stat does for a member. Returns 0,
 * -EINVAL. */
EXIPC_API int exipc_inspect_stat(exipc_inspector_t *in, struct exipc_stat *st);

/* exipc_inspect_procs, _services, _chans fill out[0..max) with the entries
 * that are not free, in table order, and return how many there are (which
 * may exceed max: call again with more room; max_procs and max_chans from
 * exipc_inspect_info bound them). Errors: -EINVAL (in NULL, or out NULL with
 * max > 0), -ENOMEM. One heap pass per call for the blocks owned. */
EXIPC_API int exipc_inspect_procs(exipc_inspector_t *in, struct exipc_proc_info *out, size_t max);
EXIPC_API int exipc_inspect_services(exipc_inspector_t *in, struct exipc_service_info *out, size_t max);
EXIPC_API int exipc_inspect_chans(exipc_inspector_t *in, struct exipc_chan_info *out, size_t max);

/* exipc_inspect_heap fills *st as exipc_heap_stat does. Returns 0, -EINVAL. */
EXIPC_API int exipc_inspect_heap(exipc_inspector_t *in, struct exipc_heap_stat *st);

/* exipc_inspect_reap cleans up after every dead process of the domain NAME
 * without registering in it: it opens the file read-write, takes the queue
 * manager's lock and reaps with the lock held throughout (as a member does
 * when every slot is taken), so it works even when dead processes fill the
 * process table, and it never creates a domain. Returns how many processes
 * it cleaned. Errors: as exipc_inspect_open, -ETIMEDOUT (the lock stayed
 * busy for 2 s), -ENOMEM. Thread-safe. */
EXIPC_API int exipc_inspect_reap(const char *name);

/* ---- stubs: request/response over a channel ------------------------------ */

/* A stub is a protocol's request/response layer on a channel (Exchange
 * 2000's expop). Every message is ONE heap block: a 32-byte little-endian header,
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

/* ---- fused calls: several of the calls above in one ----------------------
 * Each does what the named sequence of calls does, with all of their checks;
 * it exists for callers that pay per call (from Go, one cgo crossing each). */

/* exipc_send_copy allocates a block of alen + blen bytes, copies a[0..alen)
 * then b[0..blen) into it and sends it on c: exipc_alloc, two memcpy,
 * exipc_send. Either piece may be empty (NULL with length 0). Returns 0 and,
 * if out is not NULL, the handle sent in *out (it belongs to the receiver).
 * Errors: as exipc_alloc (-EINVAL for a total of 0 or above max_block,
 * -ENOMEM) and as exipc_send (-EAGAIN, -EPIPE, -EPROTO); on any error
 * nothing was sent and nothing stays allocated. Thread-safety: as exipc_send
 * (one sending thread per channel at a time). */
EXIPC_API int exipc_send_copy(exipc_chan_t *c, const void *a, size_t alen, const void *b, size_t blen,
                              exipc_handle_t *out);

/* exipc_recv_view receives one handle like exipc_recv and returns with it
 * the block's address in *p and its length in *len (as exipc_ptr). The block
 * belongs to the caller, which frees it or sends it on. flags: 0, or
 * EXIPC_RECV_NOSPIN: when the ring is empty, sleep at once instead of
 * spinning first as the wait policy says (for a caller that has spun
 * already). Errors: as exipc_recv; -EINVAL for an unknown flag; and -EBADMSG
 * when the received block fails exipc_ptr's checks (it is freed, *h is 0).
 * Thread-safety: as exipc_recv (one receiving thread per channel at a time). */
#define EXIPC_RECV_NOSPIN 1u
EXIPC_API int exipc_recv_view(exipc_chan_t *c, exipc_handle_t *h, void **p, size_t *len, int64_t timeout_ns,
                              unsigned flags);

/* exipc_alloc_batch allocates up to n blocks of size bytes each, as
 * exipc_alloc, into hs[0..k) with their addresses in ptrs[0..k), and returns
 * k (1..n): fewer than n when the heap ran out part way. Errors when none:
 * as exipc_alloc (-EINVAL, -ENOMEM, -EPROTO), and -EINVAL for n == 0.
 * Thread-safe. Blocks of up to 4 KiB come from the process's cache in one
 * pass (one hold of its lock per 32 blocks, no page-table lookup); a refill
 * takes the pool's lock once for up to a cache's worth, from the domain's
 * depot of blocks other processes freed first, then from the slabs. With a
 * proc_quota, or for larger blocks, it is the loop of exipc_alloc calls. */
EXIPC_API int exipc_alloc_batch(exipc_domain_t *d, size_t size, exipc_handle_t *hs, void **ptrs, size_t n);

/* exipc_recv_batch_view receives like exipc_recv_batch and returns with each
 * handle hs[i] its block's address ptrs[i] and length lens[i] (as exipc_ptr).
 * A received block that fails exipc_ptr's checks is freed and left out.
 * Returns how many (k >= 1); the blocks belong to the caller. Errors when
 * none: as exipc_recv_batch, and -EBADMSG when every block received failed
 * the checks. Thread-safety: as exipc_recv_batch. */
EXIPC_API int exipc_recv_batch_view(exipc_chan_t *c, exipc_handle_t *hs, void **ptrs, size_t *lens, size_t max,
                                    int64_t timeout_ns);

/* exipc_free_batch frees hs[0..n) in order, as exipc_free each. Returns n,
 * or the error of the first that is refused (-EBADMSG: those before it are
 * freed, those after it untouched); -EINVAL for a NULL hs with n > 0.
 * Thread-safe. Blocks of up to 4 KiB go to the process's cache in one pass
 * (one hold of its lock per run of one class); what overflows the cache goes
 * to the domain's depot (for the next refill of any process) or its slab in
 * one hold of the pool's lock. */
EXIPC_API int exipc_free_batch(exipc_domain_t *d, const exipc_handle_t *hs, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* EXIPC_H */

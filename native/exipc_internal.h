/*
 * exipc_internal.h — the shared layout of a domain and the process-local
 * objects that point into it. Not installed; C hosts use exipc.h only.
 *
 * Segment layout (every region starts on a cache line; offsets are computed
 * from the header's parameters by layout_compute() in every process and never
 * trusted from shared memory):
 *
 *   struct seg_hdr                  header, CQM lock, heap pool heads
 *   struct proc_slot[max_procs]     one line each
 *   struct service[max_chans]       two lines each
 *   struct chan[max_chans]          two lines each
 *   rings: 2 per channel            struct ring + capacity handles, each
 *   uint64_t ready[max_procs][w]    per-process ready bitmap (doorbells)
 *   struct page_desc[npages]        one per 4 KiB page of the arena
 *   struct block_meta[nmeta]        META_PER_PAGE per page of the arena
 *   arena                           the blocks (payload only, no metadata)
 *
 * Invariants (whole segment):
 *   - Holds integers, offsets and handles only, never a pointer.
 *   - Tables (procs, services, chans) change only under the CQM lock (an
 *     OFD write lock on a byte of the domain file, plus hdr.lock.dirty; see
 *     cqm.c). A change fills every field first and writes `state` last
 *     (release), so a holder killed half-way leaves either the old entry or
 *     a complete new one; the repair pass run when the lock is taken after a
 *     holder died finishes channel-end closes, channel frees and reaper
 *     commits.
 *   - The data plane (rings, heap) never takes the lock.
 */
#ifndef EXIPC_INTERNAL_H
#define EXIPC_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "atomics.h"
#include "exipc.h"

#define EXIPC_CACHELINE 64
#define EXIPC_MAGIC 0x314d4f4443504958ULL /* "XIPCDOM1" little-endian */
#define EXIPC_LAYOUT_VERSION 8u /* 2: CQM lock is an OFD lock, not a pthread mutex; 3: reaper claims, channel holds, commit record; 4: page pool heap; 5: proc_slot.pidns; 6: ring.last_idx/last_h; 7: the doorbell's asleep bit; 8: the heap's depot */

#define EXIPC_NAME_MAX 200
#define EXIPC_SERVICE_MAX 47
#define EXIPC_PATH_PREFIX "/dev/shm/exipc."

#define DEF_ARENA (32ull << 20)
#define DEF_PROCS 64u
#define DEF_CHANS 256u
#define DEF_RING 256u
#define DEF_MAX_BLOCK 0u /* 0: half the arena (capped at MAX_MAX_BLOCK) */
#define MIN_ARENA (64ull << 10)
#define MAX_ARENA (64ull << 30)
#define MAX_PROCS 1024u
#define MAX_CHANS 65536u
#define MAX_RING 65536u
#define MAX_MAX_BLOCK (1u << 31)

/* Heap geometry (heap.c). The arena is a pool of 4 KiB pages; a slab is a
 * run of 1-7 pages serving one size class, a large block a run of pages
 * of its own. Block metadata is a table of META_PER_PAGE entries per page: a
 * block's index (the low half of its handle) is its slab's first page *
 * META_PER_PAGE + its number in the slab. */
#define HEAP_PAGE 4096u
#define HEAP_PAGE_SHIFT 12
#define META_PER_PAGE 64u      /* a page holds at most 64 blocks of the smallest class */
#define GRANULE 64u            /* smallest block */
#define GRANULE_SHIFT 6
#define SLAB_PAGES_MAX 7u
#define NSLAB_CLASSES 33       /* 64 B .. 16 KiB, four classes per doubling */
#define SMALL_MAX 16384u       /* above: a large block (a run of pages) */
#define POOL_BINS 132          /* free runs binned by length: 15 exact, then 4 per doubling */
#define HEAP_CACHE_CLASSES 25  /* classes 64 B .. 4 KiB are cached per process */
#define HEAP_CACHE_MAX 32      /* blocks per class in a process's cache (fewer for big classes) */
#define HEAP_CACHE_FLUSH 16    /* a full cache returns half of itself at once */
#define HEAP_CACHE_BYTES (64u << 10) /* a class's cache holds at most this many bytes */
#define HEAP_DEPOT_MAX 256     /* free blocks per class in the domain's depot (pool.depot) ... */
#define HEAP_DEPOT_BYTES (256u << 10) /* ... and at most this many bytes of them */

/* Byte of the domain file, far beyond its end, whose OFD write lock a process
 * holds while its slot is alive (slot i locks LIVENESS_BASE + i). */
#define LIVENESS_BASE (1ll << 40)
/* Held by the creator until the segment is ready. */
#define CREATE_LOCK_BYTE ((1ll << 40) - 1)
/* Held by whoever holds the CQM lock. */
#define CQM_LOCK_BYTE ((1ll << 40) - 2)

#define CQM_LOCK_TIMEOUT_NS 2000000000ll  /* never wait longer for the table lock */
#define CQM_LOCK_FLOOR_NS 1000000ll       /* a call with a shorter timeout still waits this long */
#define WAIT_SLICE_NS 20000000ll          /* re-check peer liveness this often while parked */

/* ---- header ------------------------------------------------------------ */

/* Written once by the creator before `ready`; read-only afterwards. */
struct seg_params {
    uint64_t magic;
    uint32_t version;
    uint32_t cacheline;
    uint64_t total_size;
    uint64_t arena_size;
    uint32_t max_procs, max_chans, ring_capacity, max_block;
    uint32_t page_size, nclasses;
    uint64_t npages, nmeta;
    uint64_t off_procs, off_services, off_chans, off_rings, ring_stride;
    uint64_t off_slabs, off_meta, off_arena;
    uint64_t off_ready, ready_stride;
    uint32_t creator_uid;
    uint32_t proc_quota; /* blocks one process may hold (owned, or sent and still queued); 0: no limit */
    uint32_t _pad0;
    uint32_t ready; /* R0 -> A0: params before ready; store-release last */
};

struct seg_hdr {
    alignas(EXIPC_CACHELINE) struct seg_params p;
    /* Written under the CQM lock, read anywhere (stat). */
    alignas(EXIPC_CACHELINE) uint64_t reaped_procs;
    uint64_t chan_seq;        /* accept order */
    uint32_t services_epoch;  /* futex: bumped on listen; connect waits on it */
    uint32_t lock_repairs;    /* times a locker found the previous holder dead */
    uint32_t reap_takeovers;  /* claims taken over from a dead reaper */
    uint64_t reap_stragglers; /* blocks a reaper found in flight but in no ring (fetch-add) */
    /* The reaper's commit record: slot commit_slot1 - 1 (gen commit_gen) is
     * being released and reaped_procs becomes commit_count. Set only inside
     * a commit, so the repair pass can finish one whose reaper died half-way.
     * commit_slot1 == 0: none (a fresh segment is zeroed). */
    uint32_t commit_slot1, commit_gen;
    uint64_t commit_count;
    /* The heap's page pool (heap.c). Changed only by the holder of `lock`,
     * {slot gen:32 | slot+1:32} of the holding process (0 = free), taken by
     * CAS. A locker that finds the holder dead (or the word garbage) takes
     * the lock over and rebuilds everything below from the page table and
     * the block words, which every step keeps valid. */
    alignas(EXIPC_CACHELINE) struct {
        uint64_t lock;     /* P1 -> P1': pool state before the next holder */
        uint64_t rebuilds; /* times a locker rebuilt the pool after a dead holder or a failed check */
        uint64_t binmap[(POOL_BINS + 63) / 64]; /* bit b: bin b may be non-empty (a hint) */
        uint32_t bin[POOL_BINS];          /* free runs by length: first page + 1, 0 = empty */
        uint32_t partial[NSLAB_CLASSES];  /* slabs with free blocks, per class: first page + 1 */
        /* The depot: free blocks of the cached classes that a process's
         * cache spilled, kept whole for the next process's refill, so a
         * stream's blocks go from the receiver's cache to the sender's
         * without their slabs' free lists and counts. A block here has the
         * word {gen, OWN_CACHED | OWN_DEPOT_ID}: not free for the slabs
         * (their used counts keep it), owned by no process (no reaper
         * frees it). depot[c][0..depot_n[c]) are hints, each checked
         * against its word; a rebuild frees every depot word and empties
         * the depot, so a holder killed half-way loses nothing. */
        uint32_t depot_n[HEAP_CACHE_CLASSES];
        uint32_t depot[HEAP_CACHE_CLASSES][HEAP_DEPOT_MAX]; /* block indices */
    } pool;
    /* The CQM lock (see cqm.c): an OFD write lock on CQM_LOCK_BYTE of the
     * domain's file, which the kernel drops when its holder dies, and these
     * two words, on a line of their own. Not a pthread mutex: glibc trusts a
     * mutex's memory (kind, owner, robust-list pointers), so a peer that
     * scribbles on one can make its holder abort or write through a pointer
     * of the peer's choosing. Nothing here is trusted: a scribbled word costs
     * a repair pass or a spurious wake-up. */
    alignas(EXIPC_CACHELINE) struct {
        uint32_t dirty; /* 1 while a holder is inside a change: Q1 */
        uint32_t wake;  /* futex: bumped after every unlock */
    } lock;
};

/* ---- CQM tables ---------------------------------------------------------- */

/* Slot states (the reaper's state machine, see cqm.c):
 *   FREE     unused; registration takes it (ALIVE).
 *   ALIVE    registered; its owner holds the slot's liveness lock. When the
 *            lock is gone the owner is dead and a reaper claims it (REAPING).
 *   REAPING  claimed by the reaper {reaper, reaper_gen}; the reaper's commit
 *            makes it FREE. A claim whose reaper is dead is taken over. */
enum { PROC_FREE = 0, PROC_ALIVE = 1, PROC_REAPING = 2 };

/* Writer: the CQM lock holder. Readers: anyone (liveness, stat). */
struct proc_slot {
    alignas(EXIPC_CACHELINE) uint32_t state;
    uint32_t gen;      /* bumped on each registration; channels record it */
    int32_t pid;       /* informational only (pid namespaces differ) */
    uint32_t doorbell; /* futex word, rung by producers: count in bits 1.., DOORBELL_ASLEEP in bit 0 (wait.c) */
    uint32_t reaper, reaper_gen; /* REAPING: the claim (slot, gen); NO_PROC = a reaper that had no slot */
    uint64_t pidns;    /* the owner's pid namespace (inode): its pid means something only there (watch.c) */
};

enum { SVC_FREE = 0, SVC_LISTENING = 1 };

/* Writer: the CQM lock holder (listen, service_stop), except accept_futex
 * (bumped by connect and service_stop, under the lock) and armed (set by
 * the owner, cleared by connect). Readers: connect and the owner without
 * the lock (state, gen, owner: checked, never trusted), stat. */
struct service {
    alignas(EXIPC_CACHELINE) uint32_t state;
    uint32_t gen;
    uint32_t owner, owner_gen; /* proc slot listening */
    uint32_t accept_futex;     /* bumped by connect; accept waits on it */
    uint32_t armed;            /* owner asked for its doorbell on the next connect */
    char name[EXIPC_SERVICE_MAX + 1];
    uint8_t pad_[EXIPC_CACHELINE];
};

enum { CHAN_FREE = 0, CHAN_PENDING = 1, CHAN_BOUND = 2 };
enum { SIDE_CLIENT = 0, SIDE_SERVER = 1 };

/* Ring r of channel i: ring i*2+r. Ring 0 carries client -> server, ring 1
 * server -> client; so side s produces on ring s and consumes ring 1-s. */
struct chan_end {
    uint32_t proc, proc_gen;
    uint32_t closed; /* C1 -> A1: closed after last publication (see ring.c) */
    uint32_t held;   /* 1: the reaper of this end's dead process still scans for its
                      * blocks; the channel is not freed (nor reused) until it clears this */
};

/* Writer: the CQM lock holder (connect, accept, end_close, chan_free, the
 * reaper). Readers: both ends' data planes without the lock (gen, state,
 * end[].closed, end[].proc: to tell a closed or dead peer), the reaper, stat.
 * end[s].closed is written once per life (0 -> 1) by end s's close or its
 * reaper. */
struct chan {
    alignas(EXIPC_CACHELINE) uint32_t state;
    uint32_t gen;
    uint32_t service, service_gen;
    uint64_t seq; /* connect order, for FIFO accept */
    struct chan_end end[2];
    uint8_t pad_[EXIPC_CACHELINE];
};

/* ---- rings --------------------------------------------------------------- */

/*
 * Invariants (one ring, one producer P, one consumer C):
 *   - tail: written by P only, read by C. head: written by C only, read by P.
 *     Both only grow; 0 <= tail - head <= capacity. Slot of index i is
 *     slots[i & (capacity-1)]; a slot is written by P only while
 *     i - head < capacity, and read by C only while i < tail.
 *   - sleeping: set to 1 by C before it parks, cleared by whoever wakes it.
 *     Futex word of the ring.
 *   - Each side keeps its own index and a cache of the other's in process
 *     memory, so a scribbled shared index can only yield -EPROTO.
 */
struct ring {
    alignas(EXIPC_CACHELINE) uint64_t tail;
    /* On the producer's own line, written by the producer only (plain
     * relaxed stores of its own count, never on the fast path), read by
     * inspectors: sends refused because the ring was full (-EAGAIN), and
     * wake-ups issued (futex or doorbell) for a parked consumer. */
    uint64_t full_refusals;
    uint64_t wakeups;
    /* A copy of the last handle published and its index, on the line the
     * consumer reads tail from: a consumer that is one message behind takes
     * it from here instead of missing on the slot's line as well. Written
     * by P: last_idx := LAST_NONE, last_h, then last_idx (release each),
     * before tail; read by C as a seqlock (last_idx, last_h, last_idx
     * again: equal and = tail - 1, else the slot). A hint: the handle is
     * checked as any slot's. */
    uint64_t last_idx;
    uint64_t last_h;
    alignas(EXIPC_CACHELINE) uint64_t head;
    alignas(EXIPC_CACHELINE) uint32_t sleeping;
    alignas(EXIPC_CACHELINE) uint64_t slots[];
};

/* ---- heap ----------------------------------------------------------------- */

/* Block owner, low 32 bits of block_meta.word: kind in the top 2 bits. */
#define OWN_KIND_SHIFT 30
#define OWN_FREE 0u
#define OWN_PROC 1u     /* id = process slot */
#define OWN_FLIGHT 2u   /* id = channel*2 + ring (in flight on that ring) */
#define OWN_CACHED 3u   /* id = process slot: free, in that process's local cache; or OWN_DEPOT_ID */
#define OWN_DEPOT_ID ((1u << 30) - 1) /* with OWN_CACHED: free, in the domain's depot (pool.depot) */
#define OWN_KIND(o) ((o) >> OWN_KIND_SHIFT)
#define OWN_ID(o) ((o) & ((1u << OWN_KIND_SHIFT) - 1))
#define OWNER(kind, id) (((uint32_t)(kind) << OWN_KIND_SHIFT) | (uint32_t)(id))

/* Page kinds, page_desc.kind of a run's first page. */
#define PG_FREE 0u
#define PG_LARGE 1u
#define PG_SLAB 0x100u /* | class */

/*
 * Invariants (one entry per page of the arena; all written under the pool
 * lock, read anywhere but trusted nowhere):
 *   - The arena is a chain of runs: page 0 starts one, and a run starting at
 *     page p is followed by one starting at p + npages[p]. Every step of the
 *     pool rewrites this chain with single stores that each leave a valid
 *     chain, so a holder killed half-way leaves one the rebuild can walk.
 *   - kind/npages: meaningful on a run's first page. head: the run's first
 *     page, on the first and last page of every run (boundary tags, for
 *     coalescing) and on every page of a slab (to find it from a block).
 *   - next/prev: links (page + 1) in a free-run bin or a class's partial list.
 *   - free1/used/nfree: slab's first free block (meta index + 1), blocks not
 *     free, blocks on its free list. A slab whose used falls to 0 returns to
 *     the pool at once.
 */
struct page_desc {
    uint32_t kind, npages, head, next, prev, free1, used, nfree;
};

/*
 * Invariants (one entry per block index; only entries that are block starts
 * of a live slab or large run are used):
 *   - word = {gen:32 | owner:32}; changes only by CAS, so exactly one process
 *     wins a transition (owned->in flight, in flight->owned, owned->cached,
 *     cached->owned). Moves to or from free happen only under the pool lock
 *     (and the reaper's sweeps, which also hold it). gen is in 1..2^31-1 and
 *     grows on every free, so a handle {gen, index} names one life of one
 *     block, whatever the page is later carved into.
 *   - next: free-list link in its slab (meta index + 1, 0 = end), meaningful
 *     while free.
 *   - len: bytes asked at alloc, meaningful while not free.
 */
struct block_meta {
    uint64_t word;
    uint32_t next;
    uint32_t len;
};

/* ---- process-local objects ------------------------------------------------ */

struct layout {
    uint64_t total_size, arena_size;
    uint32_t max_procs, max_chans, ring_capacity, max_block;
    uint32_t nclasses;         /* slab classes in use (those not above max_block) */
    uint64_t npages, nmeta;    /* arena pages; block metadata entries */
    uint64_t off_procs, off_services, off_chans, off_rings, ring_stride;
    uint64_t off_slabs, off_meta, off_arena;
    uint64_t off_ready, ready_stride; /* per-slot ready bitmaps */
    uint32_t ready_words;             /* 64-bit words in one bitmap */
    uint32_t proc_quota;              /* blocks one process may hold; 0: no limit */
};

struct exipc_chan {
    exipc_domain_t *d;
    struct ring *tx, *rx;      /* tx: this side produces; rx: consumes */
    uint64_t tx_tail;          /* own index, the truth */
    uint64_t tx_head_cache;    /* last head seen */
    uint64_t rx_head;          /* own index, the truth */
    uint64_t rx_tail_cache;    /* last tail seen */
    uint64_t mask;
    uint32_t idx, gen, side;
    uint32_t tx_owner, rx_owner; /* OWN_FLIGHT owners of the two rings */
    uint32_t peer_dead;        /* local: peer seen closed or dead */
    uint32_t empty_polls;      /* local: non-blocking receives that found nothing */
    struct exipc_chan *next, *prev;
};

struct exipc_listener {
    exipc_domain_t *d;
    uint32_t idx, gen;
    struct exipc_listener *next, *prev;
};

/* One peer process a domain handle's watcher knows of (watch.c). */
struct watched {
    uint32_t slot, gen;
    int pidfd;      /* -1: not (or no longer) watched */
    bool unwatched; /* the kernel cannot tell us of its death: slices */
};

/* The watcher of one domain handle (watch.c). Process-local. */
struct watch {
    pthread_mutex_t mu; /* peers, starting */
    pthread_t thread;
    uint32_t running;   /* atomic: the watcher thread runs */
    uint32_t gone;      /* atomic, 0 -> 1: the domain's name was removed */
    uint32_t unwatched; /* atomic: peers (or the name) the kernel cannot tell us about */
    uint32_t failed;    /* atomic, 0 -> 1: the watcher cannot start: slices for everything */
    int epfd, stopfd, inofd;
    uint64_t pidns;     /* ours */
    struct watched *peers;
    uint32_t npeers, cap;
};

struct exipc_domain {
    uint8_t *base;
    int fd;
    uint32_t slot, slot_gen;
    uint64_t fork_gen;
#ifdef EXIPC_TESTING
    bool borrowed_map;        /* test hook: base belongs to another handle */
#endif
    uint32_t wait_policy;     /* EXIPC_WAIT_*, this process's choice */
    uint32_t wake_pending;    /* exipc_wake was called (atomic) */
    /* Local cache of free blocks per small class (heap.c): alloc and free
     * stay off the shared free-list heads while a process both allocates
     * and frees. Blocks here are OWN_CACHED(slot) in the segment. */
    uint32_t cache_lock;      /* spinlock (atomic), uncontended in practice */
    uint32_t pool_held;       /* threads of this handle holding or taking the pool lock (atomic) */
    uint64_t pool_stuck;      /* pool lock word that outlasted the timeout (atomic) ... */
    int64_t pool_stuck_until; /* ... and until when calls meeting it fail at once (atomic) */
    struct {
        uint32_t n;
        uint32_t g[HEAP_CACHE_MAX];   /* block indices, oldest first */
        uint64_t off[HEAP_CACHE_MAX]; /* their offsets in the arena, found when they came in:
                                       * a block taken from here needs no page-table lookup */
    } cache[HEAP_CACHE_CLASSES];
    struct layout L;
    char path[sizeof(EXIPC_PATH_PREFIX) + EXIPC_NAME_MAX + 1]; /* the domain's file */
    struct watch watch;        /* peer deaths and unlink, from the kernel (watch.c) */
    uint64_t held;             /* atomic: blocks this process owns, counted only under a quota (quota.c) */
    pthread_mutex_t cqm_mu;    /* local: threads sharing fd take the CQM lock in turn */
    pthread_mutex_t objs_lock; /* local: the lists below */
    struct exipc_chan *chans;
    struct exipc_listener *listeners;
};

/* ---- internal functions ----------------------------------------------------- */

static inline struct seg_hdr *D_HDR(exipc_domain_t *d) { return (struct seg_hdr *)d->base; }
static inline struct proc_slot *D_PROC(exipc_domain_t *d, uint32_t i)
{
    return (struct proc_slot *)(d->base + d->L.off_procs) + i;
}
static inline struct service *D_SVC(exipc_domain_t *d, uint32_t i)
{
    return (struct service *)(d->base + d->L.off_services) + i;
}
static inline struct chan *D_CHAN(exipc_domain_t *d, uint32_t i)
{
    return (struct chan *)(d->base + d->L.off_chans) + i;
}
static inline struct ring *D_RING(exipc_domain_t *d, uint32_t chan, uint32_t r)
{
    return (struct ring *)(d->base + d->L.off_rings + ((uint64_t)chan * 2 + r) * d->L.ring_stride);
}
static inline uint64_t *D_READY(exipc_domain_t *d, uint32_t slot)
{
    return (uint64_t *)(d->base + d->L.off_ready + (uint64_t)slot * d->L.ready_stride);
}
static inline struct page_desc *D_PAGES(exipc_domain_t *d) { return (struct page_desc *)(d->base + d->L.off_slabs); }
static inline struct block_meta *D_META(exipc_domain_t *d) { return (struct block_meta *)(d->base + d->L.off_meta); }
static inline uint8_t *D_ARENA(exipc_domain_t *d) { return d->base + d->L.off_arena; }

#ifdef EXIPC_TESTING
/* Test hook: a second handle (own file description, own process slot) on
 * the SAME mapping as d, so TSan sees both sides of the rings at one
 * address. Close it before d. */
int exipc__open_same_map(exipc_domain_t *d, const char *name, exipc_domain_t **out);
#endif

/* Layers (each file calls only the ones above it; check_layers.sh):
 *   util.c     clocks, futexes, names, liveness locks, fork, errors
 *   heap.c     the slab heap
 *   ring.c     rings, send, take, doorbells, "is the peer gone"
 *   cqm.c      the table lock and the table primitives
 *   reap.c     the reaper
 *   watch.c    peer deaths and unlink from the kernel (pidfd, inotify)
 *   wait.c     blocking receive, poll, doorbell waits
 *   bind.c     register, listen, accept, connect, close
 *   segment.c  open, close, unlink, stat
 *   stub.c     the C stubs, over the public API */

/* util.c */
int64_t now_ns(void);
int futex_wait(uint32_t *addr, uint32_t val, int64_t timeout_ns);
void futex_wake(uint32_t *addr, int n);
/* What one sliced wait ended with (futex_wait_slice). */
enum { WAIT_WOKEN = 0, WAIT_SLICE = 1, WAIT_DEADLINE = 2 };
/* Sleeps on *addr while it holds `seen`, for at most `slice` ns and never
 * past `deadline` (now_ns() clock): WAIT_DEADLINE if the deadline had passed
 * (no sleep), WAIT_SLICE if the slice ran out (time to re-check liveness),
 * else WAIT_WOKEN (woken, value changed, or a signal). slice: wait_slice_ns. */
int futex_wait_slice(uint32_t *addr, uint32_t seen, int64_t deadline, int64_t slice);
/* Bumps the futex word *addr (acq_rel) and wakes every waiter on it. */
void bump_wake(uint32_t *addr);
/* A process doorbell: bits 1.. count the rings, bit 0 says that a waiter
 * sleeps (or is about to) on the word. A ringer bumps the count and makes the
 * futex_wake system call only if it found the bit set (and clears it). */
#define DOORBELL_ASLEEP 1u
#define DOORBELL_STEP 2u
void doorbell_bump(uint32_t *db);
int ncpus(void); /* CPUs this process may run on (cached) */
int online_cpus(void); /* CPUs online on the machine (cached): where a peer may run */
bool valid_name(const char *s, size_t max);
bool slot_alive(exipc_domain_t *d, uint32_t slot);
bool proc_alive(exipc_domain_t *d, uint32_t slot, uint32_t gen);
/* Bumped in a forked child (util.c); a handle opened before the fork is
 * the parent's. */
extern uint64_t exipc__fork_generation;
static inline bool forked(exipc_domain_t *d) { return d->fork_gen != ATOM_LOAD_RELAXED(&exipc__fork_generation); }
/* The domain's name was removed while we are attached (watch.c sets it). */
static inline bool domain_gone(exipc_domain_t *d) { return ATOM_LOAD_RELAXED(&d->watch.gone) != 0; }
/* 0, -EBADF in a forked child, -EIDRM once the domain was unlinked: the
 * check at the top of every call (inline: it is on every data-plane call). */
static inline int check_fork(exipc_domain_t *d)
{
    if (forked(d))
        return -EBADF;
    return domain_gone(d) ? -EIDRM : 0;
}

uint64_t exipc_fork_generation(void);

/* segment.c */
int layout_compute(const struct exipc_options *o, struct layout *L);
int layout_from_params(const struct seg_params *p, struct layout *L);

/* heap.c */
uint32_t heap_nclasses(uint32_t max_block); /* slab classes a domain with this max_block uses */
void heap_init(exipc_domain_t *d);
int heap_transfer(exipc_domain_t *d, exipc_handle_t h, uint32_t from, uint32_t to);
int heap_take(exipc_domain_t *d, exipc_handle_t h, uint32_t from, uint32_t to); /* in flight -> owned: the ring's consumer only */
void heap_prefetch(exipc_domain_t *d, exipc_handle_t h);
int heap_free_owned(exipc_domain_t *d, exipc_handle_t h, uint32_t owner);
uint64_t heap_release_owner(exipc_domain_t *d, uint32_t owner_kind, uint32_t id);
uint64_t heap_reclaim(exipc_domain_t *d, bool (*doomed)(void *arg, uint32_t owner, exipc_handle_t h), void *arg);
void heap_count(exipc_domain_t *d, uint64_t *blocks, uint64_t *bytes);
void heap_gen_counts(exipc_domain_t *d, uint64_t *allocs, uint64_t *frees);
void heap_owner_counts(exipc_domain_t *d, uint64_t *owned, uint64_t *cached, uint32_t nslots);
void heap_cache_flush(exipc_domain_t *d); /* returns this process's cached blocks */
int heap_alloc_ptr(exipc_domain_t *d, size_t size, exipc_handle_t *out, void **p); /* exipc_alloc + the address */
/* exipc_alloc_batch and exipc_free_batch (fused.c calls them): one fork
 * check, one cache-lock hold and at most one pool-lock hold per refill or
 * spill for the whole batch, and no page-table lookup for a block the cache
 * gives. Same results and checks as the loops of single calls. */
int heap_alloc_batch(exipc_domain_t *d, size_t size, exipc_handle_t *hs, void **ptrs, size_t n);
int heap_free_batch(exipc_domain_t *d, const exipc_handle_t *hs, size_t n);

/* ring.c */
#define SLEEP_FUTEX 1u    /* ring.sleeping: consumer parked on the ring's futex */
#define SLEEP_DOORBELL 2u /* ring.sleeping: consumer waits on its doorbell */
#define LAST_NONE UINT64_MAX /* ring.last_idx while last_h is being rewritten */
void ring_reset(exipc_domain_t *d, uint32_t chan);
void ring_drain_free(exipc_domain_t *d, uint32_t chan, uint32_t r);
void ring_wake(exipc_domain_t *d, uint32_t chan, uint32_t r);
int64_t ring_refresh_tail(exipc_chan_t *c);
int ring_take(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t avail);
void doorbell_ring(exipc_domain_t *d, uint32_t slot, uint32_t bit);
void listener_bell(exipc_domain_t *d, uint32_t service);
bool chan_peer_gone(exipc_chan_t *c);
#define SPIN_BEFORE_PARK_NS 20000ll /* adaptive waits spin this long: about two futex round trips */

/* Is channel ch waiting in the backlog of service `svc` (generation gen),
 * with its client end still open? The test accept, listener readiness and
 * service_stop share. */
static inline bool chan_pending_on(const struct chan *ch, uint32_t svc, uint32_t gen)
{
    return ATOM_LOAD_RELAXED(&ch->state) == CHAN_PENDING && ATOM_LOAD_RELAXED(&ch->service) == svc &&
           ATOM_LOAD_RELAXED(&ch->service_gen) == gen && !ATOM_LOAD_RELAXED(&ch->end[1].closed);
}

/* cqm.c */
#define NO_PROC 0xffffffffu
int cqm_lock(exipc_domain_t *d);
int cqm_lock_for(exipc_domain_t *d, int64_t call_deadline);
int cqm_lock_until(exipc_domain_t *d, int64_t deadline_ns);
void cqm_unlock(exipc_domain_t *d);
int cqm_take_slot(exipc_domain_t *d);
void cqm_release_slot(exipc_domain_t *d, uint32_t slot);
void slot_free(exipc_domain_t *d, uint32_t i);
void end_close(exipc_domain_t *d, uint32_t i, uint32_t s);
void chan_free_if_done(exipc_domain_t *d, uint32_t i);
void service_stop(exipc_domain_t *d, uint32_t i);
void services_stop(exipc_domain_t *d, uint32_t slot, uint32_t gen);

/* wait.c */
/* exipc_recv that parks at once when the ring is empty, whatever the wait
 * policy (for exipc_recv_view's EXIPC_RECV_NOSPIN). */
int ring_recv_nospin(exipc_chan_t *c, exipc_handle_t *h, int64_t timeout_ns);
/* exipc_recv_batch without the spin before parking (a Go waiter has spun). */
int ring_recv_batch_nospin(exipc_chan_t *c, exipc_handle_t *hs, size_t max, int64_t timeout_ns);
/* How long a blocking receive of this process spins before it parks, by its
 * wait policy (INT64_MAX / 2: until its deadline). */
int64_t recv_spin_ns(exipc_domain_t *d);

/* watch.c */
void watch_init(exipc_domain_t *d);
/* Watches the process in slot (gen) for its death; reaps it at once if it is
 * dead already. Any thread. */
void watch_peer(exipc_domain_t *d, uint32_t slot, uint32_t gen);
/* Stops the watcher and closes its descriptors (not from the watcher). */
void watch_stop(exipc_domain_t *d);
/* How long a blocking wait may sleep before it re-checks liveness itself:
 * without a limit (INT64_MAX) when the watcher hears of every peer's death
 * and of the unlink from the kernel, else WAIT_SLICE_NS. Starts the watcher
 * on the first call. */
int64_t wait_slice_ns(exipc_domain_t *d);
/* Has the domain's file lost its name? Then mark it gone (the fallback for
 * when inotify cannot tell us: called where a slice ran out). */
void watch_check_unlink(exipc_domain_t *d);

/* bind.c */
int cqm_register(exipc_domain_t *d);

/* The per-process quota (exipc_options.proc_quota): blocks a process holds,
 * owned or sent and still queued on its rings. Counted in process memory
 * only, and only when the domain has a quota. heap.c and ring.c adjust it;
 * quota_full (heap.c) decides an allocation, reading the queued from the
 * process's channels. */
static inline void quota_add(exipc_domain_t *d, int64_t n)
{
    if (d->L.proc_quota != 0)
        ATOM_FETCH_ADD_RELAXED(&d->held, (uint64_t)n);
}
bool quota_full(exipc_domain_t *d);

/* reap.c */
/* What one reaper found for one slot (see cqm.c, "The reaper"). */
enum reap_outcome {
    REAP_CLEANED = 0, /* this call cleaned it */
    REAP_ALREADY = 1, /* someone else had cleaned it (or nothing was dead) */
    REAP_BUSY = 2,    /* another live reaper is cleaning it now */
    REAP_ALIVE = 3,   /* its owner is alive */
};
struct reap_tally {
    uint32_t cleaned, already, busy, alive, takeovers;
};
#ifdef EXIPC_TESTING
/* Reaps slot `slot` if its owner is dead. Returns an outcome or a negative
 * errno (-ETIMEDOUT: lock, -ENOMEM). */
int cqm_reap_slot(exipc_domain_t *d, uint32_t slot, struct reap_tally *t);
#endif
/* Reaps every dead slot with the lock held, for a caller without a slot to
 * claim with (registration into a full table). */
int reap_dead_locked(exipc_domain_t *d);
/* Reaps every dead slot; with wait_busy, also waits (bounded) until reapers
 * active in other threads or processes are done. Returns how many this call
 * cleaned, or a negative errno if it cleaned none and a lock failed. */
int cqm_reap_all(exipc_domain_t *d, bool wait_busy, struct reap_tally *t);
/* Reaps every dead slot for a caller that has no slot, holding the lock
 * throughout. Returns how many it cleaned, or -ETIMEDOUT (lock). */
int cqm_reap_unregistered(exipc_domain_t *d);

/* Kill points: in test builds (-DEXIPC_TESTING) a test sets exipc__kill_point
 * and is called at the named points of the queue manager, the reaper and send
 * ("lock", "reap.claimed", "send.unpublished", ...), so it can SIGKILL the
 * process exactly there. The product compiles them to nothing. */
#ifdef EXIPC_TESTING
extern void (*exipc__kill_point)(const char *point);
/* Test hook: when set, no watcher starts, so a test decides who reaps whom
 * (the waits fall back to their slices). */
extern int exipc__no_watch;
#define KILL_POINT(name)                                                        \
    do {                                                                        \
        void (*kp_)(const char *) = ATOM_LOAD_RELAXED(&exipc__kill_point);      \
        if (__builtin_expect(kp_ != NULL, 0))                                   \
            kp_(name);                                                          \
    } while (0)
#else
#define KILL_POINT(name) ((void)0)
#endif

#endif /* EXIPC_INTERNAL_H */

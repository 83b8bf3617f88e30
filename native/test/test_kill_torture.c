/* test_kill_torture.c — SIGKILL random processes of a busy domain, again and
 * again, and check after every kill that cleanup was exact.
 *
 * Workers (forked; each opens the domain itself): NSERVERS servers, each
 * listening on its service "svcN", accepting channels and answering every
 * message (forwarding the block back, or freeing it and allocating a new
 * reply); NCLIENTS clients, each streaming on CLIENT_CHANS channels to
 * random services: numbered messages in blocks of random sizes, sent in
 * batches, at most WINDOW unanswered, a FIN after a random number, then a
 * close and a new connect. Both sides check every message they receive: the
 * stream it belongs to, its sequence number (order: exactly one more than
 * the last) and every byte. Workers keep a few blocks aside for a while, so
 * what they hold at any moment is not trivial.
 *
 * The parent, in rounds: lets them run a random while (0-20 ms), SIGKILLs one
 * worker (sometimes two) at whatever point it is, reaps, then quiesces the
 * survivors: STOP (no more sends), DRAIN (receive everything queued; close
 * channels whose peer is gone). Then it checks, exactly:
 *   - heap_blocks_used == the sum of the blocks the live workers hold (each
 *     counts its own from the calls' results), and, from the inside
 *     (tables.h), no block is in flight outside a ring, no slot is left
 *     dead or half reaped, no channel end or service belongs to the dead;
 *   - procs_alive == live workers + 1, services == live servers,
 *     chans_bound == channels the clients hold == channels the servers hold,
 *     reaped_procs == the workers killed so far;
 *   - every stream a kill cut short was received by its server exactly up to
 *     what the dead client had published (it records, before each send, the
 *     range the send may publish): nothing sent is lost, then -EPIPE;
 *   - no worker saw anything wrong (a message out of order or damaged, an
 *     unexpected error), and no call hung: every wait has a timeout, and the
 *     parent gives every phase one too.
 * Then it restarts the dead and goes on. At the end the workers close and
 * the domain must be empty.
 *
 *   EXIPC_TORTURE_KILLS    rounds (default 200; `make torture` runs 10000)
 *   EXIPC_TORTURE_SEED     random seed (default: time and pid; printed)
 *   EXIPC_TORTURE_TIMEOUT  seconds for the whole run (default 100)
 * Exit 0 pass, 1 fail; prints the figures and `N passed, N failed` last. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "t.h"
#include "tables.h"

#define NSERVERS 3
#define NCLIENTS 5
#define NW (NSERVERS + NCLIENTS)
#define CLIENT_CHANS 2
#define SERVER_CHANS 16
#define WINDOW 24
#define BATCH 8
#define STASH 12
#define REPLYQ 64
#define MAXCUTS 64
#define MS 1000000ll
#define SEC 1000000000ll
#define PHASE_TIMEOUT (20 * SEC) /* a phase that takes longer is a hang */

static struct exipc_options opts = {
    .size = 4 << 20, .max_procs = 32, .max_chans = 64, .ring_capacity = 64, .max_block = 256 << 10}; /* above 16 KiB: large blocks, runs of pages */

/* ---- shared control region (anonymous, shared with every worker) ---------- */

enum { C_RUN = 1, C_STOP, C_DRAIN, C_EXIT };
enum { W_EMPTY = 0, W_STARTING, W_READY, W_DEAD };
enum { K_DATA = 1, K_FIN, K_REPLY, K_REPLY_FIN };

/* A client's current stream on one of its channels, kept for the server in
 * case the client is killed. */
struct stream_rec {
    uint64_t uid;
    uint64_t sent;         /* published: send returned */
    uint64_t sending_upto; /* at most this many once the send in progress returns */
};

struct wctl {
    int32_t pid;
    uint32_t incarnation;
    uint32_t state; /* W_* */
    uint32_t ack;   /* the last command (cmd_seq) handled */
    uint32_t reaping; /* between the claim and the commit of a reap (a target for a second kill) */
    /* reported at DRAIN */
    uint64_t owned;
    uint32_t client_ends, server_ends, listening;
    /* figures, cumulative over this incarnation */
    uint64_t msgs_sent, msgs_recv, replies_recv, streams_done, streams_cut, cuts_checked, enomem;
    uint64_t max_call_ns;
    char max_call[64]; /* which */
    uint32_t errors;
    char err[240];
    struct stream_rec streams[CLIENT_CHANS];
};

struct ctl {
    uint32_t cmd_seq; /* futex: bumped with each command */
    uint32_t cmd;
    struct wctl w[NW];
};

static struct ctl *ctl;
static const char *domain_name;

static void futex_wake_all(uint32_t *w) { syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }
static void futex_wait_for(uint32_t *w, uint32_t v, int64_t ns)
{
    struct timespec ts = {ns / SEC, ns % SEC};
    syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0);
}

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / SEC, ns % SEC};
    nanosleep(&ts, NULL);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ---- messages ------------------------------------------------------------------ */

struct msg_hdr {
    uint64_t uid, seq;
    uint32_t kind, len;
};
#define HDR ((uint32_t)sizeof(struct msg_hdr))

static inline uint8_t pattern(uint64_t uid, uint64_t seq, size_t k)
{
    return (uint8_t)(uid * 0x9e3779b1u + seq * 131 + k * 7);
}

/* ---- a worker ---------------------------------------------------------------------- */

static struct wctl *me;
static int wi;
static exipc_domain_t *d;
static uint64_t owned; /* blocks this worker holds, counted from the calls' results */
static exipc_handle_t stash[STASH];
static int nstash;
static uint32_t mode;

static void werr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void werr(const char *fmt, ...)
{
    if (me->errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(me->err, sizeof me->err, fmt, ap);
        va_end(ap);
    }
}

/* Every exipc call goes through T: the longest one is a figure. */
static int64_t t_call;
#define T(expr) (t_call = mono(), t_ret = (expr), t_call = mono() - t_call, t_slow(#expr), t_ret)
static int t_ret;
static void t_slow(const char *what)
{
    if ((uint64_t)t_call > me->max_call_ns) {
        me->max_call_ns = (uint64_t)t_call;
        snprintf(me->max_call, sizeof me->max_call, "%s = %d", what, t_ret);
    }
}

static void fill_msg(exipc_handle_t h, uint64_t uid, uint64_t seq, uint32_t kind)
{
    size_t n = 0;
    uint8_t *p = exipc_ptr(d, h, &n);
    if (p == NULL || n < HDR) {
        werr("fill: exipc_ptr refused a block we own");
        return;
    }
    struct msg_hdr mh = {uid, seq, kind, (uint32_t)n};
    memcpy(p, &mh, sizeof mh);
    for (size_t k = HDR; k < n; k++)
        p[k] = pattern(uid, seq, k);
}

/* Checks a received block; returns its header (kind 0 if bad). */
static struct msg_hdr check_msg(exipc_handle_t h, const char *who)
{
    struct msg_hdr mh = {0};
    size_t n = 0;
    uint8_t *p = exipc_ptr(d, h, &n);
    if (p == NULL || n < HDR) {
        werr("%s: received handle %#" PRIx64 " is not a block we own", who, h);
        return mh;
    }
    memcpy(&mh, p, sizeof mh);
    if (mh.len != n) {
        werr("%s: length %u, block says %u", who, (unsigned)n, mh.len);
        mh.kind = 0;
        return mh;
    }
    for (size_t k = HDR; k < n; k++)
        if (p[k] != pattern(mh.uid, mh.seq, k)) {
            werr("%s: stream %#" PRIx64 " message %" PRIu64 ": byte %zu damaged", who, mh.uid, mh.seq, k);
            mh.kind = 0;
            return mh;
        }
    return mh;
}

static void drop(exipc_handle_t h)
{
    if (T(exipc_free(d, h)) != 0)
        werr("free of a block we own: %s", exipc_strerror(t_ret));
    else
        owned--;
}

/* Received and checked: keep it aside for a while, or free it. */
static void keep_or_drop(exipc_handle_t h)
{
    if (nstash < STASH && rnd() % 4 == 0) {
        stash[nstash++] = h;
        return;
    }
    drop(h);
    if (nstash > 0 && rnd() % 3 == 0)
        drop(stash[--nstash]);
}

static size_t rand_size(void)
{
    uint64_t r = rnd();
    if (r % 64 == 0)
        return HDR + (r >> 8) % (opts.max_block - HDR + 1); /* now and then a big one */
    return HDR + (r >> 8) % 600;
}

/* ---- client ---- */

struct cchan {
    exipc_chan_t *c;
    uint64_t uid, next_seq, sent, next_reply, target;
    int fin_queued;
    exipc_handle_t pend[BATCH]; /* made, not sent yet: seq sent .. sent+npend-1 */
    int npend;
};
static struct cchan cch[CLIENT_CHANS];
static uint32_t conn_count;

static void client_close(struct cchan *cc, int k, int cut)
{
    for (int i = 0; i < cc->npend; i++)
        drop(cc->pend[i]);
    cc->npend = 0;
    if (T(exipc_chan_close(cc->c)) != 0)
        werr("chan_close: %s", exipc_strerror(t_ret));
    cc->c = NULL;
    ATOM_STORE_SEQCST(&me->streams[k].uid, 0);
    if (cut)
        me->streams_cut++;
    else
        me->streams_done++;
}

/* Receives replies: >0 progress, 0 nothing, -EPIPE the server is gone (and
 * everything it sent was received). */
static int client_pull(struct cchan *cc, int64_t timeout)
{
    exipc_handle_t hs[16];
    int r = T(exipc_recv_batch(cc->c, hs, 16, timeout));
    if (r == -EAGAIN || r == -ETIMEDOUT)
        return 0;
    if (r == -EPIPE)
        return r;
    if (r < 0) {
        werr("client recv: %s", exipc_strerror(r));
        return 0;
    }
    owned += (uint64_t)r;
    me->replies_recv += (uint64_t)r;
    for (int i = 0; i < r; i++) {
        struct msg_hdr mh = check_msg(hs[i], "client");
        int fin = cc->fin_queued && cc->next_reply + 1 == cc->next_seq;
        if (mh.kind != 0 && (mh.uid != cc->uid || mh.seq != cc->next_reply || mh.kind != (fin ? K_REPLY_FIN : K_REPLY)))
            werr("client: stream %#" PRIx64 ": got reply %#" PRIx64 "/%" PRIu64 " kind %u, want %" PRIu64, cc->uid, mh.uid,
                 mh.seq, mh.kind, cc->next_reply);
        cc->next_reply++;
        keep_or_drop(hs[i]);
    }
    return r;
}

static int client_channel(struct cchan *cc, int k)
{
    struct stream_rec *sr = &me->streams[k];
    if (cc->c == NULL) {
        char svc[16];
        snprintf(svc, sizeof svc, "svc%u", (unsigned)(rnd() % NSERVERS));
        exipc_chan_t *c;
        int rc = T(exipc_connect(d, svc, 2 * MS, &c));
        if (rc == -ENOENT || rc == -EMFILE || rc == -ETIMEDOUT)
            return 0; /* its server is dead, not restarted yet; or the table lock was busy (a reap) */
        if (rc != 0) {
            werr("connect: %s", exipc_strerror(rc));
            return 0;
        }
        *cc = (struct cchan){.c = c, .target = rnd() % 4 == 0 ? rnd() % 8 : 10 + rnd() % 300};
        cc->uid = ((uint64_t)wi << 56) | ((uint64_t)(me->incarnation & 0xffffff) << 32) | ++conn_count;
        ATOM_STORE_SEQCST(&sr->sent, 0);
        ATOM_STORE_SEQCST(&sr->sending_upto, 0);
        ATOM_STORE_SEQCST(&sr->uid, cc->uid);
        return 1;
    }
    int progress = 0;
    while (!cc->fin_queued && cc->npend < BATCH && cc->sent + (uint64_t)cc->npend - cc->next_reply < WINDOW) {
        int fin = cc->next_seq >= cc->target;
        exipc_handle_t h;
        int rc = T(exipc_alloc(d, fin ? HDR : rand_size(), &h));
        if (rc == -ENOMEM) {
            me->enomem++;
            break;
        }
        if (rc != 0) {
            werr("alloc: %s", exipc_strerror(rc));
            break;
        }
        owned++;
        fill_msg(h, cc->uid, cc->next_seq++, fin ? K_FIN : K_DATA);
        cc->pend[cc->npend++] = h;
        cc->fin_queued = fin;
    }
    if (cc->npend > 0) {
        int n = 1 + (int)(rnd() % (uint64_t)cc->npend);
        ATOM_STORE_SEQCST(&sr->sending_upto, cc->sent + (uint64_t)n);
        int r = T(exipc_send_batch(cc->c, cc->pend, (size_t)n));
        if (r > 0) {
            owned -= (uint64_t)r;
            cc->sent += (uint64_t)r;
            me->msgs_sent += (uint64_t)r;
            memmove(cc->pend, cc->pend + r, (size_t)(cc->npend - r) * sizeof cc->pend[0]);
            cc->npend -= r;
            progress = 1;
        } else if (r != -EAGAIN && r != -EPIPE) {
            werr("send: %s", exipc_strerror(r));
        }
        ATOM_STORE_SEQCST(&sr->sent, cc->sent);
        ATOM_STORE_SEQCST(&sr->sending_upto, cc->sent);
        /* -EPIPE: the server is gone; its replies are still to be drained. */
    }
    int r = client_pull(cc, 0);
    if (r == -EPIPE) {
        client_close(cc, k, 1);
        return 1;
    }
    if (cc->fin_queued && cc->npend == 0 && cc->next_reply == cc->next_seq) {
        client_close(cc, k, 0); /* every message answered, FIN included */
        return 1;
    }
    return progress || r > 0;
}

static int client_step(void)
{
    int progress = 0;
    for (int k = 0; k < CLIENT_CHANS; k++)
        progress |= client_channel(&cch[k], k);
    if (!progress) { /* wait a little on one channel: the blocking path */
        int k = (int)(rnd() % CLIENT_CHANS);
        if (cch[k].c != NULL && client_pull(&cch[k], 2 * MS) == -EPIPE)
            client_close(&cch[k], k, 1);
        else if (cch[k].c == NULL)
            sleep_ns(MS);
    }
    return progress;
}

static void client_drain(void)
{
    for (int k = 0; k < CLIENT_CHANS; k++) {
        struct cchan *cc = &cch[k];
        int r = 1;
        while (cc->c != NULL && r > 0)
            r = client_pull(cc, 0);
        if (r == -EPIPE)
            client_close(cc, k, 1);
        /* A finished stream is closed in RUN, not here: its server may have
         * drained already, and would count an end that we no longer hold. */
    }
}

/* ---- server ---- */

struct schan {
    exipc_chan_t *c;
    uint64_t uid, expect;
    int have_uid, fin_seen;
    exipc_handle_t rep[REPLYQ];
    int nrep;
};
static struct schan sch[SERVER_CHANS];
static int nsch;
static exipc_listener_t *lis;
struct cut {
    uint64_t uid, received;
};
static struct cut cuts[MAXCUTS];
static int ncuts;

/* Receives messages and queues the answers: >0 progress, 0 nothing, -EPIPE
 * the client is gone and everything it published was received. */
static int server_pull(struct schan *sc, int64_t timeout)
{
    exipc_handle_t hs[16];
    int r = T(exipc_recv_batch(sc->c, hs, 16, timeout));
    if (r == -EAGAIN || r == -ETIMEDOUT)
        return 0;
    if (r == -EPIPE)
        return r;
    if (r < 0) {
        werr("server recv: %s", exipc_strerror(r));
        return 0;
    }
    owned += (uint64_t)r;
    me->msgs_recv += (uint64_t)r;
    for (int i = 0; i < r; i++) {
        exipc_handle_t h = hs[i];
        struct msg_hdr mh = check_msg(h, "server");
        if (mh.kind != 0 && !sc->have_uid) {
            sc->uid = mh.uid;
            sc->have_uid = 1;
        }
        if (mh.kind != 0 && (mh.uid != sc->uid || mh.seq != sc->expect || (mh.kind != K_DATA && mh.kind != K_FIN) ||
                             sc->fin_seen || (mh.uid >> 56) < NSERVERS || (mh.uid >> 56) >= NW))
            werr("server: stream %#" PRIx64 ": got %#" PRIx64 "/%" PRIu64 " kind %u, want seq %" PRIu64, sc->uid, mh.uid,
                 mh.seq, mh.kind, sc->expect);
        sc->expect++;
        sc->fin_seen |= mh.kind == K_FIN;
        uint32_t kind = mh.kind == K_FIN ? K_REPLY_FIN : K_REPLY;
        exipc_handle_t reply = h;
        if (rnd() % 2 == 0) {
            exipc_handle_t n;
            int rc = T(exipc_alloc(d, HDR + rnd() % 300, &n));
            if (rc == 0) {
                owned++;
                fill_msg(n, mh.uid, mh.seq, kind);
                drop(h);
                reply = n;
            } else if (rc == -ENOMEM) {
                me->enomem++;
            } else {
                werr("server alloc: %s", exipc_strerror(rc));
            }
        }
        if (reply == h) { /* answer with the block itself */
            struct msg_hdr *p = exipc_ptr(d, h, NULL);
            if (p != NULL)
                p->kind = kind;
        }
        if (sc->nrep == REPLYQ) {
            werr("server: reply queue full (client over its window)");
            drop(reply);
        } else {
            sc->rep[sc->nrep++] = reply;
        }
    }
    return r;
}

/* The client is gone: note what to check, free the answers, close. */
static void server_close(int i)
{
    struct schan *sc = &sch[i];
    if (!sc->fin_seen && sc->have_uid) {
        if (ncuts < MAXCUTS)
            cuts[ncuts++] = (struct cut){sc->uid, sc->expect};
        else
            werr("server: too many cut streams between two checks");
    }
    for (int k = 0; k < sc->nrep; k++)
        drop(sc->rep[k]);
    if (T(exipc_chan_close(sc->c)) != 0)
        werr("chan_close: %s", exipc_strerror(t_ret));
    sch[i] = sch[--nsch];
}

static int server_push(struct schan *sc)
{
    if (sc->nrep == 0)
        return 0;
    int r = T(exipc_send_batch(sc->c, sc->rep, (size_t)sc->nrep));
    if (r > 0) {
        owned -= (uint64_t)r;
        memmove(sc->rep, sc->rep + r, (size_t)(sc->nrep - r) * sizeof sc->rep[0]);
        sc->nrep -= r;
        return 1;
    }
    if (r != -EAGAIN && r != -EPIPE)
        werr("server send: %s", exipc_strerror(r));
    return 0;
}

static int server_accept(int64_t timeout)
{
    if (nsch == SERVER_CHANS)
        return 0;
    exipc_chan_t *c;
    int rc = T(exipc_accept(lis, timeout, &c));
    if (rc == -EAGAIN || rc == -ETIMEDOUT)
        return 0;
    if (rc != 0) {
        werr("accept: %s", exipc_strerror(rc));
        return 0;
    }
    sch[nsch++] = (struct schan){.c = c};
    return 1;
}

static int server_step(void)
{
    int progress = server_accept(0);
    for (int i = 0; i < nsch; i++) {
        int r = server_pull(&sch[i], 0);
        if (r == -EPIPE) {
            server_close(i--);
            progress = 1;
            continue;
        }
        progress |= r > 0;
        progress |= server_push(&sch[i]);
    }
    if (!progress) {
        if (nsch == 0) {
            server_accept(2 * MS);
        } else {
            int i = (int)(rnd() % (uint64_t)nsch);
            if (server_pull(&sch[i], 2 * MS) == -EPIPE)
                server_close(i);
        }
    }
    return progress;
}

/* Streams cut short by a kill: the parent has marked their clients dead by
 * now, and has not restarted them. */
static void check_cuts(void)
{
    for (int i = 0; i < ncuts; i++) {
        uint64_t uid = cuts[i].uid, got = cuts[i].received;
        struct wctl *w = &ctl->w[uid >> 56];
        const struct stream_rec *sr = NULL;
        for (int k = 0; k < CLIENT_CHANS; k++)
            if (w->streams[k].uid == uid)
                sr = &w->streams[k];
        if (ATOM_LOAD_ACQUIRE(&w->state) != W_DEAD || (w->incarnation & 0xffffff) != ((uid >> 32) & 0xffffff))
            werr("stream %#" PRIx64 " ended without FIN, its client alive", uid);
        else if (sr == NULL)
            werr("stream %#" PRIx64 " ended without FIN, and its dead client has no record of it", uid);
        else if (got < sr->sent || got > sr->sending_upto)
            werr("stream %#" PRIx64 ": received %" PRIu64 " of a dead client that had published %" PRIu64 "..%" PRIu64, uid,
                 got, sr->sent, sr->sending_upto);
        else
            me->cuts_checked++;
    }
    ncuts = 0;
}

static void server_drain(void)
{
    while (server_accept(0))
        ;
    for (int i = 0; i < nsch; i++) {
        int r = 1;
        while (r > 0)
            r = server_pull(&sch[i], 0);
        if (r == -EPIPE)
            server_close(i--);
    }
    check_cuts();
}

/* ---- the worker's loop ---- */

static int is_server(void) { return wi < NSERVERS; }

static void report(void)
{
    uint64_t held = (uint64_t)nstash;
    for (int i = 0; i < nstash; i++)
        if (exipc_ptr(d, stash[i], NULL) == NULL)
            werr("a block kept aside is not ours any more");
    me->client_ends = me->server_ends = 0;
    if (is_server()) {
        for (int i = 0; i < nsch; i++)
            held += (uint64_t)sch[i].nrep;
        me->server_ends = (uint32_t)nsch;
    } else {
        for (int k = 0; k < CLIENT_CHANS; k++) {
            held += (uint64_t)cch[k].npend;
            me->client_ends += cch[k].c != NULL;
        }
    }
    if (held != owned)
        werr("holds %" PRIu64 " blocks but counted %" PRIu64, held, owned);
    me->owned = owned;
}

static void worker_exit(void)
{
    /* Close the way a program would: channels, listener, domain. */
    for (int k = 0; k < CLIENT_CHANS; k++)
        if (cch[k].c != NULL)
            exipc_chan_close(cch[k].c);
    for (int i = 0; i < nsch; i++)
        exipc_chan_close(sch[i].c);
    if (lis != NULL)
        exipc_listener_close(lis);
    exipc_close(d);
    _exit(0);
}

/* The kill points of the queue manager and the reaper (cqm.c): linger there
 * now and then, so that more kills land inside the lock and inside reaps. */
static void widen(const char *point)
{
    if (strcmp(point, "send.unpublished") == 0) { /* every send passes here */
        if (rnd() % 64 == 0)
            sleep_ns((int64_t)(rnd() % 200000));
        return;
    }
    if (strncmp(point, "heap.", 5) == 0) { /* inside the heap's pool lock: often passed */
        if (rnd() % 32 == 0)
            sleep_ns((int64_t)(rnd() % 200000));
        return;
    }
    if (strcmp(point, "reap.claimed") == 0)
        ATOM_STORE_RELEASE(&me->reaping, 1u);
    if (rnd() % 4 == 0)
        sleep_ns((int64_t)(rnd() % (strncmp(point, "reap.", 5) == 0 ? 2000000 : 300000)));
    if (strcmp(point, "reap.commit") == 0)
        ATOM_STORE_RELEASE(&me->reaping, 0u);
}

static void worker(int index)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    wi = index;
    me = &ctl->w[wi];
    rng_state = ((uint64_t)getpid() << 32) ^ (uint64_t)mono() ^ 0x9e3779b97f4a7c15ull;
    exipc__kill_point = widen;
    int rc = T(exipc_open(domain_name, NULL, &d));
    if (rc != 0) {
        werr("open: %s", exipc_strerror(rc));
        _exit(1);
    }
    if (is_server()) {
        char svc[16];
        snprintf(svc, sizeof svc, "svc%d", wi);
        rc = T(exipc_listen(d, svc, &lis));
        if (rc != 0)
            werr("listen %s: %s", svc, exipc_strerror(rc));
        me->listening = rc == 0;
    }
    uint32_t seen = ATOM_LOAD_ACQUIRE(&ctl->cmd_seq);
    mode = ATOM_LOAD_RELAXED(&ctl->cmd);
    ATOM_STORE_RELEASE(&me->ack, seen);
    ATOM_STORE_RELEASE(&me->state, (uint32_t)W_READY);
    for (;;) {
        uint32_t s = ATOM_LOAD_ACQUIRE(&ctl->cmd_seq);
        if (s != seen) {
            seen = s;
            mode = ATOM_LOAD_RELAXED(&ctl->cmd);
            if (mode == C_EXIT)
                worker_exit();
            if (mode == C_DRAIN) {
                if (is_server())
                    server_drain();
                else
                    client_drain();
                report();
            }
            ATOM_STORE_RELEASE(&me->ack, seen);
        }
        if (mode == C_RUN) {
            if (is_server())
                server_step();
            else
                client_step();
        } else {
            futex_wait_for(&ctl->cmd_seq, seen, 100 * MS);
        }
    }
}

/* ---- the parent ------------------------------------------------------------------- */

static volatile sig_atomic_t cleaning;

/* On timeout or SIGTERM: kill every worker, remove the domain, fail. */
static void bail(int sig)
{
    if (cleaning++)
        _exit(1);
    for (int i = 0; i < NW; i++)
        if (ctl->w[i].pid > 0)
            kill(ctl->w[i].pid, SIGKILL);
    exipc_unlink(domain_name);
    static const char msg[] = "test_kill_torture: timed out or terminated; workers killed, domain removed\n"
                              "test_kill_torture: 0 passed, 1 failed\n";
    if (write(1, msg, sizeof msg - 1) < 0)
        _exit(1);
    (void)sig;
    _exit(1);
}

static void command(uint32_t cmd)
{
    ATOM_STORE_RELAXED(&ctl->cmd, cmd);
    ATOM_FETCH_ADD(&ctl->cmd_seq, 1u);
    futex_wake_all(&ctl->cmd_seq);
}

static int live(int i) { return ATOM_LOAD_ACQUIRE(&ctl->w[i].state) == W_READY; }

static void dump_workers(void)
{
    for (int i = 0; i < NW; i++) {
        struct wctl *w = &ctl->w[i];
        fprintf(stderr, "  worker %d (%s) pid %d state %u ack %u/%u, ends %u+%u, owned %" PRIu64 ", longest call %.1f ms (%s); errors %u %s\n",
                i, i < NSERVERS ? "server" : "client", w->pid, w->state, w->ack, ctl->cmd_seq, w->client_ends,
                w->server_ends, w->owned, (double)w->max_call_ns / 1e6, w->max_call, w->errors, w->err);
    }
}

/* Waits until every live worker has handled the last command. */
static int wait_acks(const char *what)
{
    uint32_t seq = ATOM_LOAD_RELAXED(&ctl->cmd_seq);
    int64_t end = mono() + PHASE_TIMEOUT;
    for (;;) {
        int missing = 0;
        for (int i = 0; i < NW; i++) {
            if (!live(i) || ATOM_LOAD_ACQUIRE(&ctl->w[i].ack) == seq)
                continue;
            int st;
            if (waitpid(ctl->w[i].pid, &st, WNOHANG) == ctl->w[i].pid) {
                fprintf(stderr, "%s: worker %d (pid %d) died by itself (status %#x): %s\n", what, i, ctl->w[i].pid, st,
                        ctl->w[i].err);
                ctl->w[i].state = W_DEAD;
                return -1;
            }
            missing++;
        }
        if (missing == 0)
            return 0;
        if (mono() > end) {
            fprintf(stderr, "%s: %d workers did not answer within %lld s (a call hung?)\n", what, missing,
                    (long long)(PHASE_TIMEOUT / SEC));
            dump_workers();
            return -1;
        }
        sleep_ns(100000);
    }
}

static void start_worker(int i)
{
    struct wctl *w = &ctl->w[i];
    uint32_t inc = w->incarnation + 1;
    memset(w, 0, sizeof *w);
    w->incarnation = inc;
    w->state = W_STARTING;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        bail(0);
    }
    if (pid == 0) {
        signal(SIGALRM, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        alarm(0);
        worker(i);
    }
    w->pid = pid;
}

static int wait_started(void)
{
    int64_t end = mono() + PHASE_TIMEOUT;
    for (int i = 0; i < NW; i++) {
        while (ATOM_LOAD_ACQUIRE(&ctl->w[i].state) == W_STARTING) {
            int st;
            if (waitpid(ctl->w[i].pid, &st, WNOHANG) == ctl->w[i].pid) {
                fprintf(stderr, "worker %d died while starting: %s\n", i, ctl->w[i].err);
                return -1;
            }
            if (mono() > end) {
                fprintf(stderr, "worker %d did not start within %lld s\n", i, (long long)(PHASE_TIMEOUT / SEC));
                return -1;
            }
            sleep_ns(100000);
        }
    }
    return 0;
}

/* Totals carried over from the workers' dead incarnations. */
static struct {
    uint64_t msgs_sent, msgs_recv, replies_recv, streams_done, streams_cut, cuts_checked, enomem, max_call_ns;
    char max_call[64];
} tot;

static void add_figures(struct wctl *w)
{
    tot.msgs_sent += w->msgs_sent;
    tot.msgs_recv += w->msgs_recv;
    tot.replies_recv += w->replies_recv;
    tot.streams_done += w->streams_done;
    tot.streams_cut += w->streams_cut;
    tot.cuts_checked += w->cuts_checked;
    tot.enomem += w->enomem;
    if (w->max_call_ns > tot.max_call_ns) {
        tot.max_call_ns = w->max_call_ns;
        memcpy(tot.max_call, w->max_call, sizeof tot.max_call);
    }
    w->msgs_sent = w->msgs_recv = w->replies_recv = w->streams_done = w->streams_cut = w->cuts_checked = w->enomem = 0;
}

static uint32_t worker_errors(void)
{
    uint32_t n = 0;
    for (int i = 0; i < NW; i++)
        if (ctl->w[i].errors) {
            if (n == 0)
                fprintf(stderr, "worker %d (pid %d): %u errors, first: %s\n", i, ctl->w[i].pid, ctl->w[i].errors,
                        ctl->w[i].err);
            n += ctl->w[i].errors;
            ctl->w[i].errors = 0;
        }
    return n;
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    const char *e = getenv("EXIPC_TORTURE_KILLS");
    long kills = e && *e ? strtol(e, NULL, 10) : 200;
    e = getenv("EXIPC_TORTURE_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 0) : ((uint64_t)mono() ^ ((uint64_t)getpid() << 20));
    e = getenv("EXIPC_TORTURE_TIMEOUT");
    long timeout_s = e && *e ? strtol(e, NULL, 10) : 100;
    rng_state = seed | 1;
    printf("# %ld kills, seed %#" PRIx64 ", %d servers + %d clients, timeout %ld s\n", kills, seed, NSERVERS, NCLIENTS,
           timeout_s);

    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ctl == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(ctl, 0, sizeof *ctl);
    domain_name = t_domain("torture");
    exipc_domain_t *pd = NULL;
    CHECK_RC(exipc_open(domain_name, &opts, &pd), 0);
    if (pd == NULL)
        DONE();
    signal(SIGALRM, bail);
    signal(SIGTERM, bail);
    signal(SIGINT, bail);
    alarm((unsigned)timeout_s);

    ctl->cmd = C_STOP;
    for (int i = 0; i < NW; i++)
        start_worker(i);
    int ok = wait_started() == 0;
    CHECK(ok);
    struct seg_hdr *hdr = D_HDR(pd);
    uint32_t repairs0 = hdr->lock_repairs, takeovers0 = hdr->reap_takeovers;
    uint64_t stragglers0 = hdr->reap_stragglers;
    uint64_t victims = 0, victim_servers = 0, reaped_by_parent = 0, rounds = 0, unreachable_max = 0,
             large_max = 0;
    uint64_t rebuilds0 = hdr->pool.rebuilds;
    uint64_t leaks_seen = 0, bad_checks = 0, reaper_kills = 0;
    int64_t t0 = mono();
    command(C_RUN);

    for (long round = 0; ok && round < kills; round++) {
        /* Run a random while (a quarter of the rounds not at all: kills
         * then land in reconnects and restarts). */
        if (rnd() % 4 != 0)
            sleep_ns((int64_t)(rnd() % (20 * MS)));
        /* One victim, or two: at once, or the second a moment later, by
         * preference one that is reaping the first by then. */
        int vic[2], nv = rnd() % 4 == 0 ? 2 : 1;
        vic[0] = (int)(rnd() % NW);
        vic[1] = (vic[0] + 1 + (int)(rnd() % (NW - 1))) % NW;
        kill(ctl->w[vic[0]].pid, SIGKILL);
        if (nv == 2 && rnd() % 2 == 0) {
            int64_t until = mono() + (int64_t)(rnd() % (8 * MS));
            for (int found = 0; !found && mono() < until; sleep_ns(50000))
                for (int i = 0; i < NW && !found; i++)
                    if (i != vic[0] && ATOM_LOAD_ACQUIRE(&ctl->w[i].reaping)) {
                        vic[1] = i;
                        found = 1;
                        reaper_kills++;
                    }
        }
        if (nv == 2)
            kill(ctl->w[vic[1]].pid, SIGKILL);
        for (int k = 0; k < nv; k++) {
            struct wctl *w = &ctl->w[vic[k]];
            int st = 0;
            if (waitpid(w->pid, &st, 0) != w->pid || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
                fprintf(stderr, "round %ld: worker %d did not die of SIGKILL (status %#x): %s\n", round, vic[k], st, w->err);
                ok = 0;
            }
            ATOM_STORE_RELEASE(&w->state, (uint32_t)W_DEAD);
            victims++;
            victim_servers += vic[k] < NSERVERS;
        }
        /* Reap: ours, or a worker's that found the death first (exipc_reap
         * waits for reapers active elsewhere). Half the time the workers get
         * a head start: their timed waits notice the death. */
        if (rnd() % 2 == 0)
            sleep_ns((int64_t)(rnd() % (10 * MS)));
        struct exipc_stat st;
        int64_t reap_end = mono() + PHASE_TIMEOUT;
        do {
            int n = exipc_reap(pd);
            if (n < 0) {
                fprintf(stderr, "round %ld: exipc_reap: %s\n", round, exipc_strerror(n));
                ok = 0;
            } else {
                reaped_by_parent += (uint64_t)n;
            }
            exipc_stat(pd, &st);
        } while (ok && st.reaped_procs < victims && mono() < reap_end);
        if (st.reaped_procs != victims) {
            fprintf(stderr, "round %ld: reaped_procs %" PRIu64 " after %" PRIu64 " kills\n", round, (uint64_t)st.reaped_procs,
                    victims);
            ok = 0;
        }
        /* Quiesce the survivors. */
        command(C_STOP);
        if (wait_acks("stop") != 0)
            ok = 0;
        command(C_DRAIN);
        if (ok && wait_acks("drain") != 0)
            ok = 0;
        if (!ok)
            break;
        /* The exact check. */
        uint64_t held = 0;
        uint32_t procs = 1, servers = 0, cends = 0, sends = 0;
        for (int i = 0; i < NW; i++) {
            if (!live(i))
                continue;
            procs++;
            held += ctl->w[i].owned;
            servers += ctl->w[i].listening;
            cends += ctl->w[i].client_ends;
            sends += ctl->w[i].server_ends;
        }
        exipc_stat(pd, &st);
        struct tables_report tr;
        const char *why = tables_check(pd, &tr);
        struct exipc_heap_stat hs;
        if (why == NULL && exipc_heap_stat(pd, &hs) != 0)
            why = "exipc_heap_stat failed";
        else if (why == NULL && hs.pages_free != tr.pages_free)
            why = "exipc_heap_stat's free pages differ from the page chain's";
        else if (why == NULL && tr.blocks_free != tr.free_reachable)
            why = "free blocks off their slab's free list (lost by a kill)";
        uint32_t werrs = worker_errors();
        int good = why == NULL && st.heap_blocks_used == held && st.procs_alive == procs && st.services == servers &&
                   st.chans_bound == cends && cends == sends && st.reaped_procs == victims && werrs == 0;
        if (!good) {
            bad_checks++;
            if (st.heap_blocks_used != held)
                leaks_seen += st.heap_blocks_used > held ? st.heap_blocks_used - held : 0;
            fprintf(stderr,
                    "round %ld (victims %d%s%d): %s\n  heap_blocks_used %" PRIu64 ", the live hold %" PRIu64
                    "; procs_alive %u (want %u); services %u (want %u); chans_bound %u, client ends %u, server ends %u; "
                    "reaped %" PRIu64 " (want %" PRIu64 "); worker errors %u\n",
                    round, vic[0], nv > 1 ? " and " : "", nv > 1 ? vic[1] : -1, why ? why : "tables consistent",
                    (uint64_t)st.heap_blocks_used, held, st.procs_alive, procs, st.services, servers, st.chans_bound, cends,
                    sends, (uint64_t)st.reaped_procs, victims, werrs);
            dump_workers();
            ok = 0;
            break;
        }
        if (tr.blocks_free - tr.free_reachable > unreachable_max)
            unreachable_max = tr.blocks_free - tr.free_reachable;
        if (tr.large > large_max)
            large_max = tr.large;
        rounds++;
        /* Restart the dead, then run again. */
        for (int k = 0; k < nv; k++) {
            add_figures(&ctl->w[vic[k]]);
            start_worker(vic[k]);
        }
        if (wait_started() != 0) {
            ok = 0;
            break;
        }
        command(C_RUN);
        if (kills >= 2000 && (round + 1) % 1000 == 0)
            printf("# %ld kills, %.0f s\n", round + 1, (double)(mono() - t0) / 1e9);
    }
    double secs = (double)(mono() - t0) / 1e9;
    CHECK(ok);
    CHECK(rounds == (uint64_t)kills);
    CHECK(bad_checks == 0);

    /* The end: everyone closes; the domain must be empty. */
    command(C_EXIT);
    int64_t end = mono() + PHASE_TIMEOUT;
    for (int i = 0; i < NW; i++) {
        struct wctl *w = &ctl->w[i];
        if (w->state == W_DEAD || w->pid <= 0)
            continue;
        int st = 0;
        pid_t r = 0;
        while ((r = waitpid(w->pid, &st, WNOHANG)) == 0 && mono() < end)
            sleep_ns(MS);
        if (r != w->pid) {
            kill(w->pid, SIGKILL);
            waitpid(w->pid, &st, 0);
        }
        CHECK(r == w->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        add_figures(w);
        w->state = W_DEAD;
    }
    CHECK(worker_errors() == 0);
    struct exipc_stat st;
    CHECK_RC(exipc_reap(pd), 0);
    CHECK_RC(exipc_stat(pd, &st), 0);
    CHECK(st.procs_alive == 1 && st.chans_bound == 0 && st.services == 0 && st.heap_blocks_used == 0 &&
          st.reaped_procs == victims);
    const char *why = tables_check(pd, NULL);
    CHECK(why == NULL);
    if (why)
        fprintf(stderr, "at the end: %s\n", why);
    uint32_t repairs = hdr->lock_repairs - repairs0, takeovers = hdr->reap_takeovers - takeovers0;
    uint64_t stragglers = hdr->reap_stragglers - stragglers0;
    uint64_t rebuilds = hdr->pool.rebuilds - rebuilds0;
    alarm(0);
    exipc_close(pd);
    CHECK_RC(exipc_unlink(domain_name), 0);

    printf("# %" PRIu64 " kills in %.1f s: %" PRIu64 " victims (%" PRIu64 " servers, %" PRIu64 " clients), each round checked\n",
           rounds, secs, victims, victim_servers, victims - victim_servers);
    printf("# messages: %" PRIu64 " sent, %" PRIu64 " received and checked by servers, %" PRIu64
           " replies checked by clients\n",
           tot.msgs_sent, tot.msgs_recv, tot.replies_recv);
    printf("# streams: %" PRIu64 " finished with FIN, %" PRIu64 " cut by a kill; %" PRIu64
           " cut streams of a dead client checked: received == what it published\n",
           tot.streams_done, tot.streams_cut, tot.cuts_checked);
    printf("# leaked blocks: %" PRIu64 " (after every kill: heap_blocks_used == blocks the live hold, none in flight "
           "outside a ring)\n",
           leaks_seen);
    printf("# reaps: %" PRIu64 " (%" PRIu64 " by the parent, %" PRIu64 " by workers), %u claims taken over from a dead "
           "reaper, %u lock repairs (holder killed inside)\n",
           victims, reaped_by_parent, victims - reaped_by_parent, takeovers, repairs);
    printf("# reapers killed while reaping: %" PRIu64 "\n", reaper_kills);
    printf("# stragglers freed: %" PRIu64 " (blocks a killed sender had moved to in flight but not published)\n",
           stragglers);
    printf("# free blocks off their slab's free list after a reap: at most %" PRIu64 " (must be 0); heap full %" PRIu64
           " times; large blocks held at a check: up to %" PRIu64 "\n",
           unreachable_max, tot.enomem, large_max);
    printf("# heap pool rebuilds (a holder killed inside the pool lock, taken over): %" PRIu64 "\n",
           rebuilds);
    printf("# longest exipc call: %.1f ms (%s)\n", (double)tot.max_call_ns / 1e6, tot.max_call);
    DONE();
}

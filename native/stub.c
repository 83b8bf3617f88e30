/*
 * stub.c — request/response stubs over channels (Exchange 2000's expop and drviis).
 *
 * Every message is one heap block: the 32-byte little-endian header of
 * exipc.h, then the body. Only public calls are used here: a stub is a C
 * host of the core like any other, so a hostile peer can at worst send
 * garbage blocks, which exipc_stub_msg_parse refuses.
 *
 * Invariants:
 *   - A block read from a channel is owned by us: parse it, use it, then free
 *     it or send it; on every path exactly one of those happens.
 *   - Header fields are checked (magic, version, kind, body_len <= block - 32)
 *     before the body is touched.
 *   - Server: a reply goes to the channel its request came on. While a
 *     channel's outbox is not empty no request is taken from it, so the
 *     outbox never holds more than one batch of replies.
 *   - Client: an id is pending from start until its reply is returned or it
 *     is cancelled; a reply to an id that is not pending is freed.
 * Server and client are single-threaded objects (one thread at a time).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exipc.h"

/* ---- wire format ---------------------------------------------------------- */

static void put16(unsigned char *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

static void encode_hdr(unsigned char *p, const struct exipc_stub_hdr *h)
{
    put32(p + 0, EXIPC_STUB_MAGIC);
    put16(p + 4, EXIPC_STUB_VERSION);
    p[6] = h->kind;
    p[7] = 0;
    put64(p + 8, h->id);
    put32(p + 16, h->op);
    put32(p + 20, (uint32_t)h->status);
    put32(p + 24, h->body_len);
    put32(p + 28, 0);
}

int exipc_stub_msg_alloc(exipc_domain_t *d, const struct exipc_stub_hdr *hdr, exipc_handle_t *h,
                         void **body)
{
    if (!d || !hdr || !h)
        return -EINVAL;
    if ((uint64_t)hdr->body_len + EXIPC_STUB_HDR_SIZE > (uint64_t)SIZE_MAX)
        return -EINVAL;
    exipc_handle_t nh;
    int r = exipc_alloc(d, EXIPC_STUB_HDR_SIZE + (size_t)hdr->body_len, &nh);
    if (r < 0)
        return r;
    unsigned char *p = exipc_ptr(d, nh, NULL);
    if (!p) {
        exipc_free(d, nh);
        return -EPROTO;
    }
    encode_hdr(p, hdr);
    *h = nh;
    if (body)
        *body = p + EXIPC_STUB_HDR_SIZE;
    return 0;
}

int exipc_stub_msg_parse(exipc_domain_t *d, exipc_handle_t h, struct exipc_stub_msg *m)
{
    if (!d || !m)
        return -EINVAL;
    size_t len;
    const unsigned char *p = exipc_ptr(d, h, &len);
    if (!p)
        return -EBADMSG;
    if (len < EXIPC_STUB_HDR_SIZE)
        return -EPROTO;
    struct exipc_stub_hdr hd = {
        .magic = get32(p + 0),
        .version = get16(p + 4),
        .kind = p[6],
        .flags = p[7],
        .id = get64(p + 8),
        .op = get32(p + 16),
        .status = (int32_t)get32(p + 20),
        .body_len = get32(p + 24),
        .reserved = get32(p + 28),
    };
    if (hd.magic != EXIPC_STUB_MAGIC || hd.version != EXIPC_STUB_VERSION)
        return -EPROTO;
    if (hd.kind < EXIPC_STUB_REQUEST || hd.kind > EXIPC_STUB_ERROR)
        return -EPROTO;
    if (hd.body_len > len - EXIPC_STUB_HDR_SIZE)
        return -EPROTO;
    m->handle = h;
    m->hdr = hd;
    m->body = (void *)(p + EXIPC_STUB_HDR_SIZE);
    return 0;
}

int exipc_stub_msg_free(exipc_domain_t *d, struct exipc_stub_msg *m)
{
    if (!d || !m)
        return -EINVAL;
    int r = 0;
    if (m->handle)
        r = exipc_free(d, m->handle);
    memset(m, 0, sizeof *m);
    return r;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- server ----------------------------------------------------------------- */

#define OUTBOX_MAX 64 /* >= RECV_BATCH: one batch of replies always fits */
#define RECV_BATCH 32

struct handler {
    uint32_t op;
    exipc_stub_handler_fn fn;
    void *arg;
};

struct conn {
    exipc_chan_t *ch;
    uint64_t id;
    size_t nout;
    exipc_handle_t out[OUTBOX_MAX];
};

struct exipc_stub_server {
    exipc_domain_t *d;
    exipc_listener_t *l;
    struct handler *hs;
    size_t nhs;
    struct conn **conns;
    size_t nconns, capconns;
    uint64_t next_conn;
    void (*on_close)(void *, uint64_t);
    void *on_close_arg;
    struct exipc_pollitem *items;
    size_t capitems;
};

struct exipc_stub_reply {
    exipc_domain_t *d;
    exipc_handle_t h;   /* response block, 0 if none */
    size_t cap;
    int32_t err_status; /* nonzero: an error reply */
    char err_msg[256];
};

int exipc_stub_server_open(exipc_domain_t *d, const char *service, exipc_stub_server_t **out)
{
    if (!d || !service || !out)
        return -EINVAL;
    exipc_stub_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int r = exipc_listen(d, service, &s->l);
    if (r < 0) {
        free(s);
        return r;
    }
    s->d = d;
    s->next_conn = 1;
    *out = s;
    return 0;
}

int exipc_stub_server_handle(exipc_stub_server_t *s, uint32_t op, exipc_stub_handler_fn fn, void *arg)
{
    if (!s || !fn)
        return -EINVAL;
    for (size_t i = 0; i < s->nhs; i++) {
        if (s->hs[i].op == op) {
            s->hs[i].fn = fn;
            s->hs[i].arg = arg;
            return 0;
        }
    }
    struct handler *n = realloc(s->hs, (s->nhs + 1) * sizeof *n);
    if (!n)
        return -ENOMEM;
    s->hs = n;
    s->hs[s->nhs++] = (struct handler){op, fn, arg};
    return 0;
}

int exipc_stub_server_on_close(exipc_stub_server_t *s, void (*fn)(void *arg, uint64_t conn), void *arg)
{
    if (!s)
        return -EINVAL;
    s->on_close = fn;
    s->on_close_arg = arg;
    return 0;
}

static void drop_conn(exipc_stub_server_t *s, size_t i)
{
    struct conn *c = s->conns[i];
    for (size_t k = 0; k < c->nout; k++)
        exipc_free(s->d, c->out[k]);
    exipc_chan_close(c->ch);
    if (s->on_close)
        s->on_close(s->on_close_arg, c->id);
    free(c);
    s->conns[i] = s->conns[--s->nconns];
}

/* Sends what waits in c's outbox, in order. Returns 0, or -EPIPE. */
static int flush_outbox(struct conn *c)
{
    if (c->nout == 0)
        return 0;
    int n = exipc_send_batch(c->ch, c->out, c->nout);
    if (n == -EAGAIN)
        return 0;
    if (n < 0)
        return n;
    memmove(c->out, c->out + n, (c->nout - (size_t)n) * sizeof c->out[0]);
    c->nout -= (size_t)n;
    return 0;
}

/* Queues a reply block towards c: sent at once if nothing waits before it. */
static void post_reply(exipc_stub_server_t *s, struct conn *c, exipc_handle_t h)
{
    if (c->nout == 0) {
        int r = exipc_send(c->ch, h);
        if (r == 0)
            return;
        if (r != -EAGAIN) { /* client gone: nobody to answer */
            exipc_free(s->d, h);
            return;
        }
    }
    if (c->nout < OUTBOX_MAX)
        c->out[c->nout++] = h;
    else
        exipc_free(s->d, h); /* cannot happen: see Invariants */
}

static const struct handler *find_handler(const exipc_stub_server_t *s, uint32_t op)
{
    for (size_t i = 0; i < s->nhs; i++)
        if (s->hs[i].op == op)
            return &s->hs[i];
    return NULL;
}

/* Builds an error reply block; returns its handle or 0 if the heap is full. */
static exipc_handle_t error_block(exipc_domain_t *d, uint64_t id, uint32_t op, int32_t status, const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    struct exipc_stub_hdr hd = {.kind = EXIPC_STUB_ERROR, .id = id, .op = op, .status = status,
                                .body_len = (uint32_t)n};
    exipc_handle_t h;
    void *body;
    if (exipc_stub_msg_alloc(d, &hd, &h, &body) < 0)
        return 0;
    if (n)
        memcpy(body, msg, n);
    return h;
}

static void handle_request(exipc_stub_server_t *s, struct conn *c, exipc_handle_t h)
{
    struct exipc_stub_msg m;
    if (exipc_stub_msg_parse(s->d, h, &m) < 0 || m.hdr.kind != EXIPC_STUB_REQUEST) {
        exipc_free(s->d, h); /* garbage, or not a request: no id to answer */
        return;
    }
    struct exipc_stub_req req = {.conn = c->id, .id = m.hdr.id, .op = m.hdr.op,
                                 .body_len = m.hdr.body_len, .body = m.body};
    const struct handler *hd = find_handler(s, m.hdr.op);
    struct exipc_stub_reply rep = {.d = s->d};
    int r;
    if (!hd)
        r = exipc_stub_reply_error(&rep, -ENOSYS, "no handler for this op");
    else
        r = hd->fn(hd->arg, &req, &rep);
    exipc_free(s->d, h);

    exipc_handle_t out = 0;
    if (r < 0 && rep.err_status == 0)
        exipc_stub_reply_error(&rep, r, exipc_strerror(r));
    if (rep.err_status != 0) {
        if (rep.h)
            exipc_free(s->d, rep.h);
        out = error_block(s->d, req.id, req.op, rep.err_status, rep.err_msg);
    } else if (rep.h) {
        unsigned char *p = exipc_ptr(s->d, rep.h, NULL);
        struct exipc_stub_hdr rh = {.kind = EXIPC_STUB_RESPONSE, .id = req.id, .op = req.op,
                                    .body_len = (uint32_t)rep.cap};
        encode_hdr(p, &rh);
        out = rep.h;
    } else {
        struct exipc_stub_hdr rh = {.kind = EXIPC_STUB_RESPONSE, .id = req.id, .op = req.op};
        if (exipc_stub_msg_alloc(s->d, &rh, &out, NULL) < 0)
            out = 0;
    }
    if (!out) /* no heap even for the reply: say so with a small block if we can */
        out = error_block(s->d, req.id, req.op, -ENOMEM, "no heap for the reply");
    if (out)
        post_reply(s, c, out);
}

static int accept_all(exipc_stub_server_t *s)
{
    for (;;) {
        exipc_chan_t *ch;
        int r = exipc_accept(s->l, 0, &ch);
        if (r < 0)
            return r == -EAGAIN ? 0 : r;
        if (s->nconns == s->capconns) {
            size_t nc = s->capconns ? s->capconns * 2 : 8;
            struct conn **n = realloc(s->conns, nc * sizeof *n);
            if (!n) {
                exipc_chan_close(ch);
                return -ENOMEM;
            }
            s->conns = n;
            s->capconns = nc;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            exipc_chan_close(ch);
            return -ENOMEM;
        }
        c->ch = ch;
        c->id = s->next_conn++;
        s->conns[s->nconns++] = c;
    }
}

/* One pass over everything without waiting. Returns requests handled. */
static int serve_pass(exipc_stub_server_t *s, int *pending_out)
{
    int handled = 0;
    *pending_out = 0;
    accept_all(s);
    for (size_t i = 0; i < s->nconns;) {
        struct conn *c = s->conns[i];
        if (flush_outbox(c) == -EPIPE) {
            drop_conn(s, i);
            continue;
        }
        if (c->nout > 0) { /* backpressure: the client is not reading */
            (*pending_out)++;
            i++;
            continue;
        }
        exipc_handle_t hs[RECV_BATCH];
        int n = exipc_recv_batch(c->ch, hs, RECV_BATCH, 0);
        if (n == -EPIPE) {
            drop_conn(s, i);
            continue;
        }
        for (int k = 0; k < n; k++)
            handle_request(s, c, hs[k]);
        if (n > 0)
            handled += n;
        if (c->nout > 0)
            (*pending_out)++;
        i++;
    }
    return handled;
}

int exipc_stub_serve(exipc_stub_server_t *s, int64_t timeout_ns)
{
    if (!s)
        return -EINVAL;
    int pending;
    int n = serve_pass(s, &pending);
    if (n > 0)
        return n;
    if (timeout_ns == 0)
        return -EAGAIN;
    size_t ni = s->nconns + 1;
    if (ni > s->capitems) {
        struct exipc_pollitem *it = realloc(s->items, ni * sizeof *it);
        if (!it)
            return -ENOMEM;
        s->items = it;
        s->capitems = ni;
    }
    memset(s->items, 0, ni * sizeof *s->items);
    s->items[0].listener = s->l;
    for (size_t i = 0; i < s->nconns; i++)
        s->items[i + 1].chan = s->conns[i]->ch;
    /* With replies waiting in an outbox nothing rings when the client makes
     * room: look again soon. */
    int64_t t = timeout_ns;
    if (pending && (t < 0 || t > 1000000))
        t = 1000000;
    int r = exipc_poll(s->d, s->items, ni, t);
    if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN)
        return r;
    n = serve_pass(s, &pending);
    if (n > 0)
        return n;
    return r < 0 ? r : 0;
}

int exipc_stub_server_close(exipc_stub_server_t *s)
{
    if (!s)
        return -EINVAL;
    while (s->nconns)
        drop_conn(s, s->nconns - 1);
    exipc_listener_close(s->l);
    free(s->conns);
    free(s->hs);
    free(s->items);
    free(s);
    return 0;
}

int exipc_stub_reply_alloc(exipc_stub_reply_t *r, size_t cap, void **body)
{
    if (!r || cap > UINT32_MAX)
        return -EINVAL;
    if (r->h) {
        exipc_free(r->d, r->h);
        r->h = 0;
    }
    exipc_handle_t h;
    int e = exipc_alloc(r->d, EXIPC_STUB_HDR_SIZE + cap, &h);
    if (e < 0)
        return e;
    unsigned char *p = exipc_ptr(r->d, h, NULL);
    if (!p) {
        exipc_free(r->d, h);
        return -EPROTO;
    }
    r->h = h;
    r->cap = cap;
    if (body)
        *body = p + EXIPC_STUB_HDR_SIZE;
    return 0;
}

int exipc_stub_reply_set_len(exipc_stub_reply_t *r, size_t len)
{
    if (!r || !r->h || len > r->cap)
        return -EINVAL;
    r->cap = len; /* the block stays as allocated; body_len says what counts */
    return 0;
}

int exipc_stub_reply_error(exipc_stub_reply_t *r, int32_t status, const char *msg)
{
    if (!r || status == 0)
        return -EINVAL;
    r->err_status = status;
    r->err_msg[0] = 0;
    if (msg) {
        size_t n = strlen(msg);
        if (n >= sizeof r->err_msg)
            n = sizeof r->err_msg - 1;
        memcpy(r->err_msg, msg, n);
        r->err_msg[n] = 0;
    }
    return 0;
}

/* ---- client ------------------------------------------------------------------- */

struct pending {
    uint64_t id;
    int got;
    struct exipc_stub_msg msg;
};

struct exipc_stub_client {
    exipc_domain_t *d;
    exipc_chan_t *ch;
    uint64_t next_id;
    struct pending *p;
    size_t np, capp;
};

int exipc_stub_connect(exipc_domain_t *d, const char *service, int64_t timeout_ns, exipc_stub_client_t **out)
{
    if (!d || !service || !out)
        return -EINVAL;
    exipc_stub_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int r = exipc_connect(d, service, timeout_ns, &c->ch);
    if (r < 0) {
        free(c);
        return r;
    }
    c->d = d;
    c->next_id = 1;
    *out = c;
    return 0;
}

int exipc_stub_client_close(exipc_stub_client_t *c)
{
    if (!c)
        return -EINVAL;
    for (size_t i = 0; i < c->np; i++)
        if (c->p[i].got)
            exipc_stub_msg_free(c->d, &c->p[i].msg);
    exipc_chan_close(c->ch);
    free(c->p);
    free(c);
    return 0;
}

static struct pending *find_pending(exipc_stub_client_t *c, uint64_t id)
{
    for (size_t i = 0; i < c->np; i++)
        if (c->p[i].id == id)
            return &c->p[i];
    return NULL;
}

static void remove_pending(exipc_stub_client_t *c, struct pending *p)
{
    *p = c->p[--c->np];
}

int exipc_stub_start(exipc_stub_client_t *c, uint32_t op, const void *body, size_t len, uint64_t *id)
{
    if (!c || !id || (len && !body) || len > UINT32_MAX)
        return -EINVAL;
    if (c->np == c->capp) {
        size_t nc = c->capp ? c->capp * 2 : 16;
        struct pending *n = realloc(c->p, nc * sizeof *n);
        if (!n)
            return -ENOMEM;
        c->p = n;
        c->capp = nc;
    }
    struct exipc_stub_hdr hd = {.kind = EXIPC_STUB_REQUEST, .id = c->next_id, .op = op,
                                .body_len = (uint32_t)len};
    exipc_handle_t h;
    void *b;
    int r = exipc_stub_msg_alloc(c->d, &hd, &h, &b);
    if (r < 0)
        return r;
    if (len)
        memcpy(b, body, len);
    r = exipc_send(c->ch, h);
    if (r < 0) {
        exipc_free(c->d, h); /* refused: still ours */
        return r;
    }
    c->p[c->np++] = (struct pending){.id = c->next_id};
    *id = c->next_id++;
    return 0;
}

/* Files one received block: kept for its pending id, or freed. Returns 1 if
 * it was the reply to want. */
static int file_reply(exipc_stub_client_t *c, exipc_handle_t h, uint64_t want)
{
    struct exipc_stub_msg m;
    if (exipc_stub_msg_parse(c->d, h, &m) < 0 || m.hdr.kind == EXIPC_STUB_REQUEST) {
        exipc_free(c->d, h);
        return 0;
    }
    struct pending *p = find_pending(c, m.hdr.id);
    if (!p || p->got) { /* cancelled, unknown or duplicate */
        exipc_free(c->d, h);
        return 0;
    }
    p->got = 1;
    p->msg = m;
    return m.hdr.id == want;
}

int exipc_stub_wait(exipc_stub_client_t *c, uint64_t id, int64_t timeout_ns, struct exipc_stub_msg *reply)
{
    if (!c || !reply)
        return -EINVAL;
    struct pending *p = find_pending(c, id);
    if (!p)
        return -ENOENT;
    int64_t deadline = timeout_ns > 0 ? mono_ns() + timeout_ns : 0;
    while (!p->got) {
        int64_t t = timeout_ns;
        if (timeout_ns > 0) {
            t = deadline - mono_ns();
            if (t <= 0) {
                remove_pending(c, p);
                return -ETIMEDOUT;
            }
        }
        exipc_handle_t h;
        int r = exipc_recv(c->ch, &h, t);
        if (r == -EBADMSG)
            continue;
        if (r < 0) {
            if (r == -ETIMEDOUT || r == -EPIPE)
                remove_pending(c, p);
            return r;
        }
        file_reply(c, h, id);
        p = find_pending(c, id); /* the table did not move, but say so */
    }
    *reply = p->msg;
    remove_pending(c, p);
    return reply->hdr.kind == EXIPC_STUB_ERROR ? -EREMOTEIO : 0;
}

int exipc_stub_cancel(exipc_stub_client_t *c, uint64_t id)
{
    if (!c)
        return -EINVAL;
    struct pending *p = find_pending(c, id);
    if (!p)
        return -ENOENT;
    if (p->got)
        exipc_stub_msg_free(c->d, &p->msg);
    remove_pending(c, p);
    return 0;
}

int exipc_stub_call(exipc_stub_client_t *c, uint32_t op, const void *body, size_t len, int64_t timeout_ns,
                    struct exipc_stub_msg *reply)
{
    uint64_t id;
    int r = exipc_stub_start(c, op, body, len, &id);
    if (r < 0)
        return r;
    return exipc_stub_wait(c, id, timeout_ns, reply);
}

/*
 * store.c — the mail store: a C host of exipc keeping mailboxes in SQLite and
 * serving them through the C stub (the store process of Exchange 2000's ExIPC, and its expop).
 *
 *   store seed DB                              create the demo mailboxes
 *   store gen DB USER PASS COUNT SIZE [SEED]   (re)create USER with COUNT messages of about SIZE bytes
 *   store serve DB DOMAIN [SERVICE]            serve over exipc (service default "pop3store")
 *   store serve-unix DB SOCKET                 serve the same ops over a Unix socket (for the benchmark)
 *
 * Build: cc -o store store.c $(pkg-config --cflags --libs exipc) -lsqlite3
 *
 * Ops (a request body is little-endian: u64 session, then u32 arguments):
 *   1 AUTH   "user\0pass"        -> u64 session, u32 count, u64 octets; locks the maildrop
 *   2 STAT   session             -> u32 count, u64 octets (messages not marked deleted)
 *   3 LIST   session, u32 msg    -> text: "msg octets" (msg 0: one "n octets\r\n" line per message)
 *   4 UIDL   session, u32 msg    -> text: "msg uid"    (msg 0: one line per message)
 *   5 RETR   session, u32 msg    -> the message, as stored (CRLF lines)
 *   6 TOP    session, u32 msg, u32 lines -> the header, the blank line, the first lines of the body
 *   7 DELE   session, u32 msg    -> empty; marks the message deleted
 *   8 RSET   session             -> u32 count, u64 octets; unmarks every message
 *   9 NOOP   session             -> empty
 *   10 QUIT  session             -> u32 deleted; removes the marked messages, ends the session
 *   11 LOGOUT session            -> empty; ends the session, removes nothing
 * Error statuses: 1 no session, 2 authentication failed, 3 maildrop locked,
 * 4 no such message, 5 message deleted, 6 message too large, 7 bad request,
 * 8 database error. A session ends when its channel's client goes.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <exipc.h>

enum { OP_AUTH = 1, OP_STAT, OP_LIST, OP_UIDL, OP_RETR, OP_TOP, OP_DELE, OP_RSET, OP_NOOP, OP_QUIT, OP_LOGOUT };
enum { E_NOSESSION = 1, E_AUTH, E_LOCKED, E_NOMSG, E_DELETED, E_TOOBIG, E_BADREQ, E_DB };

/* The domain's shape; pop3d asks for the same (whoever creates it wins). */
#define DOMAIN_SIZE (64ull << 20)
#define DOMAIN_MAX_BLOCK 0u /* the default: half the arena, 32 MiB */
/* The largest message served: what fits in one block after the stub header.
 * Over exipc, the domain's largest block says (exipc_heap_stat); over the
 * socket, the same figure for the default shape. */
static size_t max_message = DOMAIN_SIZE / 2 - EXIPC_STUB_HDR_SIZE;
#define MAX_MESSAGE max_message

/* "-ERR" text for a message above the limit, naming both sizes. */
static const char *too_big(uint64_t size)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "message of %llu octets is above this store's limit of %zu octets (its largest block)",
             (unsigned long long)size, max_message);
    return buf;
}

/* ---- the store: sessions over SQLite ------------------------------------------ */

struct msg {
    int64_t rowid;
    uint32_t size;
    uint8_t deleted;
    char uid[71]; /* RFC 1939: 1-70 characters */
};

struct session {
    uint64_t id, conn;
    char *user;
    struct msg *m;
    uint32_t n;
};

static sqlite3 *db;
static struct session *sessions;
static size_t nsessions;

/* Where a handler puts its reply: a stub reply in the shared heap, or a
 * buffer for the socket transport. */
struct out {
    void *ctx;
    int (*alloc)(void *ctx, size_t cap, void **body);
    int (*set_len)(void *ctx, size_t len);
    int (*error)(void *ctx, int32_t status, const char *msg);
};

static int fail(struct out *o, int32_t status, const char *msg)
{
    o->error(o->ctx, status, msg);
    return 0;
}

static int db_open(const char *path)
{
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "store: %s: %s\n", path, sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_busy_timeout(db, 2000);
    const char *schema = "PRAGMA journal_mode=WAL;"
                         "CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, pass TEXT NOT NULL);"
                         "CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY, user TEXT NOT NULL,"
                         " uid TEXT NOT NULL, body BLOB NOT NULL);"
                         "CREATE INDEX IF NOT EXISTS messages_user ON messages(user, id);";
    char *err = NULL;
    if (sqlite3_exec(db, schema, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "store: schema: %s\n", err);
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static struct session *find_session(uint64_t id)
{
    for (size_t i = 0; i < nsessions; i++)
        if (sessions[i].id == id)
            return &sessions[i];
    return NULL;
}

static void end_session(struct session *s)
{
    free(s->user);
    free(s->m);
    *s = sessions[--nsessions];
}

/* The stub calls this when a front end's channel goes: its sessions end
 * without an update (RFC 1939: no QUIT, no deletions). */
static void on_conn_close(void *arg, uint64_t conn)
{
    (void)arg;
    for (size_t i = 0; i < nsessions;)
        if (sessions[i].conn == conn)
            end_session(&sessions[i]);
        else
            i++;
}

static void totals(const struct session *s, uint32_t *count, uint64_t *octets)
{
    *count = 0;
    *octets = 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (!s->m[i].deleted) {
            (*count)++;
            *octets += s->m[i].size;
        }
}

static int reply_totals(struct out *o, const struct session *s, int with_session)
{
    uint32_t count;
    uint64_t octets;
    totals(s, &count, &octets);
    unsigned char *b;
    size_t n = with_session ? 20 : 12, k = 0;
    if (o->alloc(o->ctx, n, (void **)&b) < 0)
        return -ENOMEM;
    if (with_session) {
        uint64_t v = htole64(s->id);
        memcpy(b, &v, 8);
        k = 8;
    }
    uint32_t c = htole32(count);
    uint64_t t = htole64(octets);
    memcpy(b + k, &c, 4);
    memcpy(b + k + 4, &t, 8);
    return 0;
}

static int op_auth(uint64_t conn, const unsigned char *body, uint32_t len, struct out *o)
{
    const unsigned char *nul = memchr(body, 0, len);
    if (!nul || nul == body || len - (uint32_t)(nul - body) - 1 > 255 || nul - body > 255)
        return fail(o, E_BADREQ, "malformed AUTH");
    char user[256], pass[256];
    memcpy(user, body, (size_t)(nul - body));
    user[nul - body] = 0;
    size_t plen = len - (size_t)(nul - body) - 1;
    memcpy(pass, nul + 1, plen);
    pass[plen] = 0;

    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT pass FROM users WHERE name=?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), pass) == 0;
    sqlite3_finalize(st);
    if (!ok)
        return fail(o, E_AUTH, "authentication failed");
    for (size_t i = 0; i < nsessions; i++)
        if (strcmp(sessions[i].user, user) == 0)
            return fail(o, E_LOCKED, "maildrop already locked");

    struct session s = {.conn = conn, .user = strdup(user)};
    sqlite3_prepare_v2(db, "SELECT id, length(body), uid FROM messages WHERE user=? ORDER BY id", -1, &st, NULL);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    uint32_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (s.n == cap) {
            cap = cap ? cap * 2 : 64;
            s.m = realloc(s.m, cap * sizeof *s.m);
        }
        struct msg *m = &s.m[s.n++];
        memset(m, 0, sizeof *m);
        m->rowid = sqlite3_column_int64(st, 0);
        m->size = (uint32_t)sqlite3_column_int64(st, 1);
        snprintf(m->uid, sizeof m->uid, "%s", (const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(s.user);
        free(s.m);
        return fail(o, E_DB, "database error");
    }
    do {
        if (getrandom(&s.id, sizeof s.id, 0) != sizeof s.id)
            s.id = (uint64_t)random() << 32 ^ (uint64_t)random();
    } while (s.id == 0 || find_session(s.id));
    sessions = realloc(sessions, (nsessions + 1) * sizeof *sessions);
    sessions[nsessions++] = s;
    return reply_totals(o, &sessions[nsessions - 1], 1);
}

/* The message numbered msg (1-based) of s, or an error reply. */
static struct msg *get_msg(struct session *s, uint32_t msg, struct out *o)
{
    if (msg == 0 || msg > s->n) {
        fail(o, E_NOMSG, "no such message");
        return NULL;
    }
    if (s->m[msg - 1].deleted) {
        fail(o, E_DELETED, "message already deleted");
        return NULL;
    }
    return &s->m[msg - 1];
}

static int op_list(struct session *s, uint32_t msg, int uidl, struct out *o)
{
    char *b;
    if (msg) {
        struct msg *m = get_msg(s, msg, o);
        if (!m)
            return 0;
        if (o->alloc(o->ctx, 96, (void **)&b) < 0)
            return -ENOMEM;
        int n = uidl ? snprintf(b, 96, "%u %s", msg, m->uid) : snprintf(b, 96, "%u %u", msg, m->size);
        return o->set_len(o->ctx, (size_t)n);
    }
    size_t cap = (size_t)s->n * (uidl ? 84 : 24) + 1;
    if (o->alloc(o->ctx, cap, (void **)&b) < 0)
        return fail(o, E_TOOBIG, "listing too large");
    size_t k = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->m[i].deleted)
            continue;
        k += (size_t)(uidl ? snprintf(b + k, cap - k, "%u %s\r\n", i + 1, s->m[i].uid)
                           : snprintf(b + k, cap - k, "%u %u\r\n", i + 1, s->m[i].size));
    }
    return o->set_len(o->ctx, k);
}

/* Reads message m straight into the reply (sqlite3_blob_read writes into
 * the shared heap block: no buffer in between). TOP keeps the header and
 * the first `lines` lines of the body. */
static int op_retr(struct session *s, uint32_t msg, int top, uint32_t lines, struct out *o)
{
    struct msg *m = get_msg(s, msg, o);
    if (!m)
        return 0;
    if (m->size > MAX_MESSAGE)
        return fail(o, E_TOOBIG, too_big(m->size));
    sqlite3_blob *blob;
    if (sqlite3_blob_open(db, "main", "messages", "body", m->rowid, 0, &blob) != SQLITE_OK)
        return fail(o, E_DB, "message unreadable");
    int n = sqlite3_blob_bytes(blob);
    if (n < 0 || (uint32_t)n > MAX_MESSAGE) {
        sqlite3_blob_close(blob);
        return fail(o, E_TOOBIG, too_big((uint64_t)n));
    }
    char *b;
    if (o->alloc(o->ctx, (size_t)n, (void **)&b) < 0) {
        sqlite3_blob_close(blob);
        return fail(o, E_TOOBIG, "no room for the message now, try again");
    }
    int rc = n ? sqlite3_blob_read(blob, b, n, 0) : SQLITE_OK;
    sqlite3_blob_close(blob);
    if (rc != SQLITE_OK)
        return fail(o, E_DB, "message unreadable");
    if (!top)
        return 0;
    /* The end of the header is the first empty line; then count lines. */
    size_t k = 0, len = (size_t)n;
    while (k < len) {
        char *nl = memchr(b + k, '\n', len - k);
        size_t end = nl ? (size_t)(nl - b) + 1 : len;
        int empty = end - k == 1 || (end - k == 2 && b[k] == '\r');
        k = end;
        if (empty)
            break;
    }
    for (uint32_t i = 0; i < lines && k < len; i++) {
        char *nl = memchr(b + k, '\n', len - k);
        k = nl ? (size_t)(nl - b) + 1 : len;
    }
    return o->set_len(o->ctx, k);
}

static int op_quit(struct session *s, struct out *o)
{
    uint32_t deleted = 0;
    int ok = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_stmt *st = NULL;
    if (ok)
        ok = sqlite3_prepare_v2(db, "DELETE FROM messages WHERE id=?", -1, &st, NULL) == SQLITE_OK;
    for (uint32_t i = 0; ok && i < s->n; i++) {
        if (!s->m[i].deleted)
            continue;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, s->m[i].rowid);
        ok = sqlite3_step(st) == SQLITE_DONE;
        deleted++;
    }
    sqlite3_finalize(st);
    ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    end_session(s);
    if (!ok)
        return fail(o, E_DB, "some deleted messages not removed");
    unsigned char *b;
    if (o->alloc(o->ctx, 4, (void **)&b) < 0)
        return -ENOMEM;
    deleted = htole32(deleted);
    memcpy(b, &deleted, 4);
    return 0;
}

/* Dispatches one request, whatever the transport. */
static int dispatch(uint64_t conn, uint32_t op, const unsigned char *body, uint32_t len, struct out *o)
{
    if (op == OP_AUTH)
        return op_auth(conn, body, len, o);
    if (op < OP_AUTH || op > OP_LOGOUT)
        return fail(o, E_BADREQ, "unknown op");
    uint64_t sid;
    uint32_t a1 = 0, a2 = 0;
    if (len < 8)
        return fail(o, E_BADREQ, "no session in request");
    memcpy(&sid, body, 8);
    sid = le64toh(sid);
    if (len >= 12) {
        memcpy(&a1, body + 8, 4);
        a1 = le32toh(a1);
    }
    if (len >= 16) {
        memcpy(&a2, body + 12, 4);
        a2 = le32toh(a2);
    }
    struct session *s = find_session(sid);
    if (!s)
        return fail(o, E_NOSESSION, "no such session (the store restarted?)");
    switch (op) {
    case OP_STAT: return reply_totals(o, s, 0);
    case OP_LIST: return op_list(s, a1, 0, o);
    case OP_UIDL: return op_list(s, a1, 1, o);
    case OP_RETR: return op_retr(s, a1, 0, 0, o);
    case OP_TOP: return op_retr(s, a1, 1, a2, o);
    case OP_DELE:
        if (!get_msg(s, a1, o))
            return 0;
        s->m[a1 - 1].deleted = 1;
        return 0;
    case OP_RSET:
        for (uint32_t i = 0; i < s->n; i++)
            s->m[i].deleted = 0;
        return reply_totals(o, s, 0);
    case OP_NOOP: return 0;
    case OP_QUIT: return op_quit(s, o);
    case OP_LOGOUT: end_session(s); return 0;
    }
    return fail(o, E_BADREQ, "unknown op");
}

/* ---- exipc transport: the C stub ------------------------------------------------ */

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int stub_alloc(void *ctx, size_t cap, void **body) { return exipc_stub_reply_alloc(ctx, cap, body); }
static int stub_set_len(void *ctx, size_t len) { return exipc_stub_reply_set_len(ctx, len); }
static int stub_error(void *ctx, int32_t st, const char *msg) { return exipc_stub_reply_error(ctx, st, msg); }

static int stub_handler(void *arg, const struct exipc_stub_req *req, exipc_stub_reply_t *rep)
{
    (void)arg;
    struct out o = {rep, stub_alloc, stub_set_len, stub_error};
    return dispatch(req->conn, req->op, req->body, req->body_len, &o);
}

static int serve_exipc(const char *domain, const char *service)
{
    struct exipc_options opt = {.size = DOMAIN_SIZE, .max_block = DOMAIN_MAX_BLOCK};
    exipc_domain_t *d;
    int r = exipc_open(domain, &opt, &d);
    if (r < 0) {
        fprintf(stderr, "store: exipc_open %s: %s\n", domain, exipc_strerror(r));
        return 1;
    }
    struct exipc_heap_stat hs;
    if (exipc_heap_stat(d, &hs) == 0 && hs.largest_block > EXIPC_STUB_HDR_SIZE)
        max_message = hs.largest_block - EXIPC_STUB_HDR_SIZE;
    exipc_stub_server_t *s;
    if ((r = exipc_stub_server_open(d, service, &s)) < 0) {
        fprintf(stderr, "store: listen %s: %s\n", service, exipc_strerror(r));
        exipc_close(d);
        return 1;
    }
    for (uint32_t op = OP_AUTH; op <= OP_LOGOUT; op++)
        exipc_stub_server_handle(s, op, stub_handler, NULL);
    exipc_stub_server_on_close(s, on_conn_close, NULL);
    printf("store: serving %s on exipc domain %s\n", service, domain);
    fflush(stdout);
    while (!stop) {
        r = exipc_stub_serve(s, 100000000); /* wake at least every 100 ms to see stop */
        if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR) {
            fprintf(stderr, "store: serve: %s\n", exipc_strerror(r));
            break;
        }
    }
    exipc_stub_server_close(s);
    exipc_leave(d); /* the last process out (pop3d may stay) removes the name */
    return 0;
}

/* ---- Unix socket transport: the same frames on a stream ------------------------------ */

struct sockout {
    unsigned char *buf; /* header + body */
    size_t cap, len;
    int32_t status;
    char msg[256];
};

static int sock_alloc(void *ctx, size_t cap, void **body)
{
    struct sockout *so = ctx;
    if (cap > MAX_MESSAGE)
        return -ENOMEM;
    if (EXIPC_STUB_HDR_SIZE + cap > so->cap) {
        unsigned char *n = realloc(so->buf, EXIPC_STUB_HDR_SIZE + cap);
        if (!n)
            return -ENOMEM;
        so->buf = n;
        so->cap = EXIPC_STUB_HDR_SIZE + cap;
    }
    so->len = cap;
    *body = so->buf + EXIPC_STUB_HDR_SIZE;
    return 0;
}
static int sock_set_len(void *ctx, size_t len) { ((struct sockout *)ctx)->len = len; return 0; }
static int sock_error(void *ctx, int32_t st, const char *msg)
{
    struct sockout *so = ctx;
    so->status = st;
    snprintf(so->msg, sizeof so->msg, "%s", msg ? msg : "");
    return 0;
}

static int read_full(int fd, void *p, size_t n)
{
    for (size_t k = 0; k < n;) {
        ssize_t r = read(fd, (char *)p + k, n - k);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        k += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
    for (size_t k = 0; k < n;) {
        ssize_t r = write(fd, (const char *)p + k, n - k);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        k += (size_t)r;
    }
    return 0;
}

static void put_hdr(unsigned char *p, uint8_t kind, uint64_t id, uint32_t op, int32_t status, uint32_t len)
{
    uint32_t v32;
    uint16_t v16 = htole16(EXIPC_STUB_VERSION);
    uint64_t v64 = htole64(id);
    memset(p, 0, EXIPC_STUB_HDR_SIZE);
    v32 = htole32(EXIPC_STUB_MAGIC), memcpy(p, &v32, 4);
    memcpy(p + 4, &v16, 2);
    p[6] = kind;
    memcpy(p + 8, &v64, 8);
    v32 = htole32(op), memcpy(p + 16, &v32, 4);
    v32 = htole32((uint32_t)status), memcpy(p + 20, &v32, 4);
    v32 = htole32(len), memcpy(p + 24, &v32, 4);
}

/* Serves one request frame from fd. Returns -1 when the connection ends. */
static int serve_frame(int fd, uint64_t conn, struct sockout *so, unsigned char **req, size_t *reqcap)
{
    unsigned char h[EXIPC_STUB_HDR_SIZE];
    if (read_full(fd, h, sizeof h) < 0)
        return -1;
    uint32_t magic, op, len;
    uint64_t id;
    memcpy(&magic, h, 4);
    memcpy(&id, h + 8, 8);
    memcpy(&op, h + 16, 4);
    memcpy(&len, h + 24, 4);
    magic = le32toh(magic), id = le64toh(id), op = le32toh(op), len = le32toh(len);
    if (magic != EXIPC_STUB_MAGIC || h[6] != EXIPC_STUB_REQUEST || len > MAX_MESSAGE)
        return -1;
    if (len > *reqcap) {
        unsigned char *n = realloc(*req, len);
        if (!n)
            return -1;
        *req = n;
        *reqcap = len;
    }
    if (read_full(fd, *req, len) < 0)
        return -1;
    so->status = 0;
    so->len = 0;
    if (sock_alloc(so, 0, &(void *){0}) < 0)
        return -1;
    struct out o = {so, sock_alloc, sock_set_len, sock_error};
    int r = dispatch(conn, op, *req, len, &o);
    if (r < 0 && so->status == 0)
        sock_error(so, r, "store error");
    if (so->status) {
        size_t n = strlen(so->msg);
        unsigned char eh[EXIPC_STUB_HDR_SIZE];
        put_hdr(eh, EXIPC_STUB_ERROR, id, op, so->status, (uint32_t)n);
        return write_full(fd, eh, sizeof eh) < 0 || write_full(fd, so->msg, n) < 0 ? -1 : 0;
    }
    put_hdr(so->buf, EXIPC_STUB_RESPONSE, id, op, 0, (uint32_t)so->len);
    return write_full(fd, so->buf, EXIPC_STUB_HDR_SIZE + so->len);
}

static int serve_unix(const char *path)
{
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 64) < 0) {
        perror("store: unix socket");
        return 1;
    }
    printf("store: serving on unix socket %s\n", path);
    fflush(stdout);
    struct pollfd fds[257];
    uint64_t conns[257];
    uint64_t next_conn = 1;
    size_t n = 1;
    fds[0] = (struct pollfd){.fd = ls, .events = POLLIN};
    struct sockout so = {0};
    unsigned char *req = NULL;
    size_t reqcap = 0;
    while (!stop) {
        int r = poll(fds, n, 100);
        if (r <= 0)
            continue;
        if ((fds[0].revents & POLLIN) && n < 257) {
            int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                fds[n] = (struct pollfd){.fd = c, .events = POLLIN};
                conns[n++] = next_conn++;
            }
        }
        for (size_t i = 1; i < n;) {
            if (fds[i].revents && serve_frame(fds[i].fd, conns[i], &so, &req, &reqcap) < 0) {
                close(fds[i].fd);
                on_conn_close(NULL, conns[i]);
                fds[i] = fds[n - 1];
                conns[i] = conns[--n];
                continue;
            }
            i++;
        }
    }
    close(ls);
    unlink(path);
    free(so.buf);
    free(req);
    return 0;
}

/* ---- seeding ------------------------------------------------------------------------- */

static int add_user(const char *user, const char *pass)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "DELETE FROM messages WHERE user=?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO users(name, pass) VALUES(?, ?)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pass, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int add_message(const char *user, const char *uid, const char *body, size_t len)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO messages(user, uid, body) VALUES(?, ?, ?)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, body, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* A deterministic message of about `size` bytes: a header, a blank line,
 * CRLF lines of up to 76 characters, some starting with '.' (so RETR must
 * dot-stuff them). */
static char *make_message(const char *user, uint32_t i, size_t size, uint64_t *rng, size_t *len)
{
    size_t cap = size + 512;
    char *b = malloc(cap);
    size_t k = (size_t)snprintf(b, cap,
                                "From: sender%u@example.org\r\nTo: %s@example.org\r\n"
                                "Subject: message %u\r\nMessage-ID: <%u.%s@store.example>\r\n\r\n",
                                i % 97, user, i, i, user);
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789.,;:!-";
    while (k < size) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t line = (size_t)(*rng >> 33) % 77;
        if (k + line + 2 > size && size > k + 2)
            line = size - k - 2;
        for (size_t j = 0; j < line; j++) {
            *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
            b[k + j] = alpha[(*rng >> 33) % (sizeof alpha - 1)];
        }
        if (line > 0 && ((*rng >> 20) & 7) == 0)
            b[k] = '.'; /* a line that starts with a dot */
        k += line;
        b[k++] = '\r';
        b[k++] = '\n';
    }
    *len = k;
    return b;
}

static int gen(const char *user, const char *pass, uint32_t count, size_t size, uint64_t seed)
{
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (add_user(user, pass) < 0)
        return -1;
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 1;
    for (uint32_t i = 1; i <= count; i++) {
        size_t len;
        char *b = make_message(user, i, size, &rng, &len);
        char uid[64];
        snprintf(uid, sizeof uid, "%s-%llu-%u", user, (unsigned long long)seed, i);
        int rc = add_message(user, uid, b, len);
        free(b);
        if (rc < 0)
            return -1;
    }
    return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int seed_demo(void)
{
    static const char *hello =
        "From: postmaster@example.org\r\nTo: alice@example.org\r\nSubject: Welcome to exipc mail\r\n\r\n"
        "Hello Alice,\r\n\r\nthis message came from a C store, through a shared heap, to a Go POP3 server.\r\n"
        ".this line starts with a dot: POP3 sends it as '..this'\r\n.\r\nThe line above is a lone dot.\r\n";
    if (gen("alice", "wonderland", 0, 0, 0) < 0 || add_message("alice", "alice-welcome", hello, strlen(hello)) < 0)
        return -1;
    if (gen("bob", "builder", 25, 2000, 2) < 0 || gen("carol", "secret", 3, 300000, 3) < 0)
        return -1;
    printf("store: seeded alice/wonderland (1 message), bob/builder (25), carol/secret (3 of 300 kB)\n");
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 3 && strcmp(argv[1], "seed") == 0) {
        if (db_open(argv[2]) < 0 || seed_demo() < 0)
            return 1;
        return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
    }
    if (argc >= 7 && strcmp(argv[1], "gen") == 0) {
        if (db_open(argv[2]) < 0)
            return 1;
        uint64_t seed = argc >= 8 ? strtoull(argv[7], NULL, 10) : 1;
        if (gen(argv[3], argv[4], (uint32_t)strtoul(argv[5], NULL, 10), strtoul(argv[6], NULL, 10), seed) < 0) {
            fprintf(stderr, "store: gen: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
    }
    if (argc >= 4 && strcmp(argv[1], "serve") == 0) {
        if (db_open(argv[2]) < 0)
            return 1;
        int r = serve_exipc(argv[3], argc >= 5 ? argv[4] : "pop3store");
        sqlite3_close(db);
        return r;
    }
    if (argc >= 4 && strcmp(argv[1], "serve-unix") == 0) {
        if (db_open(argv[2]) < 0)
            return 1;
        int r = serve_unix(argv[3]);
        sqlite3_close(db);
        return r;
    }
    fprintf(stderr,
            "usage: %s seed DB | gen DB USER PASS COUNT SIZE [SEED] | serve DB DOMAIN [SERVICE] | "
            "serve-unix DB SOCKET\n",
            argv[0]);
    return 2;
}

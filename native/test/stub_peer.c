/*
 * stub_peer.c — a C stub server and client for the cross-language stub tests
 * (stub/xlang_test.go) and test_stub.c, which includes this file.
 *
 *   stub_peer server DOMAIN SERVICE         serve the test ops until SIGTERM (or 120 s)
 *   stub_peer client DOMAIN SERVICE N       call a server N times, pipelined; check every reply
 *
 * Ops (the same numbers as stub/xlang_test.go):
 *   1 ECHO   reply = the request body
 *   2 FAIL   error reply, status 42, message "failed: BODY"
 *   3 SLEEP  body = u32 LE milliseconds; sleep, then reply empty
 *   4 SUM    reply = u64 LE sum of the body's bytes
 * Prints `stub_peer: ... ok` and exits 0 on success.
 */
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../exipc.h"

enum { OP_ECHO = 1, OP_FAIL = 2, OP_SLEEP = 3, OP_SUM = 4, OP_NONE = 99 };

static volatile sig_atomic_t peer_stop;
static void peer_on_signal(int sig) { (void)sig; peer_stop = 1; }

static int h_echo(void *arg, const struct exipc_stub_req *req, exipc_stub_reply_t *rep)
{
    (void)arg;
    void *b;
    int r = exipc_stub_reply_alloc(rep, req->body_len, &b);
    if (r < 0)
        return r;
    memcpy(b, req->body, req->body_len);
    return 0;
}

static int h_fail(void *arg, const struct exipc_stub_req *req, exipc_stub_reply_t *rep)
{
    (void)arg;
    char msg[128];
    snprintf(msg, sizeof msg, "failed: %.*s", (int)(req->body_len > 64 ? 64 : req->body_len),
             (const char *)req->body);
    return exipc_stub_reply_error(rep, 42, msg);
}

static int h_sleep(void *arg, const struct exipc_stub_req *req, exipc_stub_reply_t *rep)
{
    (void)arg;
    (void)rep;
    uint32_t ms = 0;
    if (req->body_len >= 4) {
        memcpy(&ms, req->body, 4);
        ms = le32toh(ms);
    }
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return 0;
}

static int h_sum(void *arg, const struct exipc_stub_req *req, exipc_stub_reply_t *rep)
{
    (void)arg;
    uint64_t sum = 0;
    const unsigned char *p = req->body;
    for (uint32_t i = 0; i < req->body_len; i++)
        sum += p[i];
    void *b;
    int r = exipc_stub_reply_alloc(rep, 8, &b);
    if (r < 0)
        return r;
    sum = htole64(sum);
    memcpy(b, &sum, 8);
    return 0;
}

/* Serves until SIGTERM/SIGINT, or seconds have passed. */
static int peer_server(const char *domain, const char *service, int seconds)
{
    signal(SIGTERM, peer_on_signal);
    signal(SIGINT, peer_on_signal);
    exipc_domain_t *d;
    int r = exipc_open(domain, NULL, &d);
    if (r < 0) {
        fprintf(stderr, "stub_peer: open: %s\n", exipc_strerror(r));
        return 1;
    }
    exipc_stub_server_t *s;
    if ((r = exipc_stub_server_open(d, service, &s)) < 0) {
        fprintf(stderr, "stub_peer: listen: %s\n", exipc_strerror(r));
        exipc_close(d);
        return 1;
    }
    exipc_stub_server_handle(s, OP_ECHO, h_echo, NULL);
    exipc_stub_server_handle(s, OP_FAIL, h_fail, NULL);
    exipc_stub_server_handle(s, OP_SLEEP, h_sleep, NULL);
    exipc_stub_server_handle(s, OP_SUM, h_sum, NULL);
    printf("stub_peer: serving %s\n", service);
    fflush(stdout);
    time_t end = time(NULL) + seconds;
    while (!peer_stop && time(NULL) < end) {
        r = exipc_stub_serve(s, 50000000);
        if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR) {
            fprintf(stderr, "stub_peer: serve: %s\n", exipc_strerror(r));
            break;
        }
    }
    exipc_stub_server_close(s);
    exipc_close(d);
    return 0;
}

/* Fills b with a pattern that depends on i. */
static void pattern(unsigned char *b, size_t n, unsigned i)
{
    for (size_t k = 0; k < n; k++)
        b[k] = (unsigned char)(i * 31 + k * 7);
}

#define SEC(n) ((int64_t)(n) * 1000000000)

/* Calls the server: n pipelined ECHOs of sizes 0..64 KiB checked byte for
 * byte, answered out of order; then FAIL, an unknown op, SUM and a SLEEP
 * that times out. Returns the number of failed checks (0 = ok). */
static int peer_client(const char *domain, const char *service, unsigned n)
{
    int bad = 0;
#define PCHECK(c)                                                                           \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            bad++;                                                                          \
            fprintf(stderr, "stub_peer client: %s:%d: %s\n", __FILE__, __LINE__, #c);       \
        }                                                                                   \
    } while (0)
    exipc_domain_t *d;
    int r = exipc_open(domain, NULL, &d);
    if (r < 0) {
        fprintf(stderr, "stub_peer: open: %s\n", exipc_strerror(r));
        return 1;
    }
    exipc_stub_client_t *c;
    if ((r = exipc_stub_connect(d, service, SEC(10), &c)) < 0) {
        fprintf(stderr, "stub_peer: connect: %s\n", exipc_strerror(r));
        exipc_close(d);
        return 1;
    }
    static unsigned char buf[65536];
    const unsigned window = 6; /* within the smallest ring the tests use (8) */
    uint64_t ids[16];
    size_t sizes[16];
    for (unsigned base = 0; base < n; base += window) {
        unsigned k = n - base < window ? n - base : window;
        for (unsigned j = 0; j < k; j++) {
            unsigned i = base + j;
            sizes[j] = (size_t)(i * 4099u) % sizeof buf;
            pattern(buf, sizes[j], i);
            r = exipc_stub_start(c, OP_ECHO, buf, sizes[j], &ids[j]);
            PCHECK(r == 0);
            if (r < 0)
                goto out;
        }
        for (unsigned jj = k; jj-- > 0;) { /* wait in reverse: replies are matched by id */
            struct exipc_stub_msg m;
            r = exipc_stub_wait(c, ids[jj], SEC(10), &m);
            PCHECK(r == 0);
            if (r < 0)
                goto out;
            pattern(buf, sizes[jj], base + jj);
            PCHECK(m.hdr.kind == EXIPC_STUB_RESPONSE && m.hdr.op == OP_ECHO && m.hdr.id == ids[jj]);
            PCHECK(m.hdr.body_len == sizes[jj] && memcmp(m.body, buf, sizes[jj]) == 0);
            exipc_stub_msg_free(d, &m);
        }
    }
    struct exipc_stub_msg m;
    r = exipc_stub_call(c, OP_FAIL, "boom", 4, SEC(10), &m);
    PCHECK(r == -EREMOTEIO);
    if (r == -EREMOTEIO) {
        PCHECK(m.hdr.kind == EXIPC_STUB_ERROR && m.hdr.status == 42);
        PCHECK(m.hdr.body_len == 12 && memcmp(m.body, "failed: boom", 12) == 0);
        exipc_stub_msg_free(d, &m);
    }
    r = exipc_stub_call(c, OP_NONE, NULL, 0, SEC(10), &m);
    PCHECK(r == -EREMOTEIO);
    if (r == -EREMOTEIO) {
        PCHECK(m.hdr.status == -ENOSYS);
        exipc_stub_msg_free(d, &m);
    }
    pattern(buf, 1000, 7);
    uint64_t want = 0;
    for (int i = 0; i < 1000; i++)
        want += buf[i];
    r = exipc_stub_call(c, OP_SUM, buf, 1000, SEC(10), &m);
    PCHECK(r == 0);
    if (r == 0) {
        uint64_t got;
        memcpy(&got, m.body, 8);
        PCHECK(m.hdr.body_len == 8 && le64toh(got) == want);
        exipc_stub_msg_free(d, &m);
    }
    /* A deadline: the reply comes after we stop waiting and is dropped. */
    uint32_t ms = htole32(300);
    r = exipc_stub_call(c, OP_SLEEP, &ms, 4, 50000000, &m);
    PCHECK(r == -ETIMEDOUT);
    r = exipc_stub_call(c, OP_ECHO, "after", 5, SEC(10), &m); /* the late reply is skipped */
    PCHECK(r == 0 && m.hdr.body_len == 5 && memcmp(m.body, "after", 5) == 0);
    if (r == 0)
        exipc_stub_msg_free(d, &m);
out:
    exipc_stub_client_close(c);
    struct exipc_stat st;
    exipc_stat(d, &st);
    exipc_close(d);
    if (!bad)
        printf("stub_peer: client %u calls ok\n", n);
    return bad;
#undef PCHECK
}

#ifndef STUB_PEER_LIB
int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "server") == 0)
        return peer_server(argv[2], argv[3], 120);
    if (argc >= 5 && strcmp(argv[1], "client") == 0)
        return peer_client(argv[2], argv[3], (unsigned)atoi(argv[4])) ? 1 : 0;
    fprintf(stderr, "usage: %s server DOMAIN SERVICE | client DOMAIN SERVICE N\n", argv[0]);
    return 2;
}
#endif

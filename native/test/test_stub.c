/* test_stub.c — request/response stubs (stub.c): the wire format and its
 * checks in one process; then a C client against a C server in another
 * process (pipelining, error replies, unknown ops, deadlines), garbage on
 * the wire, backpressure (a full queue is an error, never a stall) and the
 * server killed mid-request (the client sees -EPIPE, nothing leaks). */
#define STUB_PEER_LIB
#include "stub_peer.c"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

static void test_wire(void)
{
    const char *name = t_domain("stubwire");
    exipc_domain_t *d;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    struct exipc_stub_hdr hd = {.kind = EXIPC_STUB_REQUEST, .id = 0x0102030405060708ull, .op = 77,
                                .status = -5, .body_len = 3};
    exipc_handle_t h;
    void *body;
    CHECK_RC(exipc_stub_msg_alloc(d, &hd, &h, &body), 0);
    memcpy(body, "abc", 3);
    const unsigned char *p = exipc_ptr(d, h, NULL);
    /* Little-endian on the wire, whatever the host. */
    static const unsigned char want[32] = {'x', 's', 't', 'b', 1, 0, 1, 0, 8, 7, 6, 5, 4, 3, 2, 1,
                                           77, 0, 0, 0, 0xfb, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 0, 0, 0};
    CHECK(memcmp(p, want, 32) == 0);
    struct exipc_stub_msg m;
    CHECK_RC(exipc_stub_msg_parse(d, h, &m), 0);
    CHECK(m.hdr.id == hd.id && m.hdr.op == 77 && m.hdr.status == -5 && m.hdr.body_len == 3);
    CHECK(memcmp(m.body, "abc", 3) == 0);
    unsigned char *w = exipc_ptr(d, h, NULL);
    w[24] = 4; /* body_len past the block */
    CHECK_RC(exipc_stub_msg_parse(d, h, &m), -EPROTO);
    w[24] = 3;
    w[6] = 9; /* unknown kind */
    CHECK_RC(exipc_stub_msg_parse(d, h, &m), -EPROTO);
    w[6] = 1;
    w[0] ^= 1; /* magic */
    CHECK_RC(exipc_stub_msg_parse(d, h, &m), -EPROTO);
    CHECK_RC(exipc_free(d, h), 0);
    CHECK_RC(exipc_stub_msg_parse(d, h, &m), -EBADMSG);
    CHECK_RC(exipc_alloc(d, 16, &h), 0); /* shorter than a header */
    CHECK_RC(exipc_stub_msg_parse(d, h, &m), -EPROTO);
    exipc_free(d, h);
    exipc_close(d);
    exipc_unlink(name);
}

static pid_t start_server(const char *name)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) /* quiet; and fd 1 stays taken */
            _exit(1);
        _exit(peer_server(name, "stubsvc", 60));
    }
    return pid;
}

static void test_xproc(void)
{
    const char *name = t_domain("stubx");
    struct exipc_options o = {.ring_capacity = 8};
    exipc_domain_t *d;
    CHECK_RC(exipc_open(name, &o, &d), 0); /* the shape: small rings */
    pid_t pid = start_server(name);

    /* Pipelined calls, errors, unknown op, deadline: the shared client. */
    CHECK_RC(peer_client(name, "stubsvc", 300), 0);

    exipc_stub_client_t *c;
    CHECK_RC(exipc_stub_connect(d, "stubsvc", SEC(10), &c), 0);

    /* Garbage on a raw channel does not disturb the server. */
    exipc_chan_t *raw;
    CHECK_RC(exipc_connect(d, "stubsvc", SEC(10), &raw), 0);
    exipc_handle_t g;
    CHECK_RC(exipc_alloc(d, 40, &g), 0);
    memset(exipc_ptr(d, g, NULL), 0xa5, 40);
    CHECK_RC(exipc_send(raw, g), 0);
    struct exipc_stub_hdr bogus = {.kind = EXIPC_STUB_RESPONSE, .id = 1, .body_len = 0};
    CHECK_RC(exipc_stub_msg_alloc(d, &bogus, &g, NULL), 0);
    CHECK_RC(exipc_send(raw, g), 0);
    struct exipc_stub_msg m;
    CHECK_RC(exipc_stub_call(c, OP_ECHO, "still", 5, SEC(10), &m), 0);
    exipc_stub_msg_free(d, &m);
    exipc_chan_close(raw);

    /* Backpressure: while the server sleeps, requests fill the ring of 8 and
     * the next start says -EAGAIN at once; every one sent is answered. */
    uint32_t ms = htole32(200);
    uint64_t ids[64];
    int sent = 0, r = 0;
    CHECK_RC(exipc_stub_start(c, OP_SLEEP, &ms, 4, &ids[sent++]), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (sent < 64 && (r = exipc_stub_start(c, OP_ECHO, "x", 1, &ids[sent])) == 0)
        sent++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_RC(r, -EAGAIN);
    CHECK(sent <= 8 + 1 + 32); /* the ring, plus what the server took before sleeping */
    CHECK((t1.tv_sec - t0.tv_sec) * 1000000000l + (t1.tv_nsec - t0.tv_nsec) < 100000000l);
    for (int i = 0; i < sent; i++) {
        CHECK_RC(exipc_stub_wait(c, ids[i], SEC(10), &m), 0);
        exipc_stub_msg_free(d, &m);
    }
    CHECK_RC(exipc_stub_wait(c, 12345, SEC(1), &m), -ENOENT);

    /* Cancel: the reply of a cancelled id is dropped on arrival. */
    uint64_t id;
    CHECK_RC(exipc_stub_start(c, OP_ECHO, "gone", 4, &id), 0);
    CHECK_RC(exipc_stub_cancel(c, id), 0);
    CHECK_RC(exipc_stub_call(c, OP_ECHO, "kept", 4, SEC(10), &m), 0);
    CHECK(m.hdr.body_len == 4 && memcmp(m.body, "kept", 4) == 0);
    exipc_stub_msg_free(d, &m);

    /* The server dies mid-request: the client sees -EPIPE, within bounds. */
    ms = htole32(5000);
    CHECK_RC(exipc_stub_start(c, OP_SLEEP, &ms, 4, &id), 0);
    usleep(50000);
    kill(pid, SIGKILL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_RC(exipc_stub_wait(c, id, SEC(5), &m), -EPIPE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK((t1.tv_sec - t0.tv_sec) * 1000000000l + (t1.tv_nsec - t0.tv_nsec) < 2000000000l);
    CHECK_RC(exipc_stub_start(c, OP_ECHO, "x", 1, &id), -EPIPE);
    int status;
    waitpid(pid, &status, 0);
    exipc_stub_client_close(c);
    exipc_reap(d);
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.heap_blocks_used == 0);
    if (st.heap_blocks_used)
        fprintf(stderr, "blocks still used: %llu\n", (unsigned long long)st.heap_blocks_used);

    /* A new server on the same service: clients connect again. */
    pid = start_server(name);
    CHECK_RC(exipc_stub_connect(d, "stubsvc", SEC(10), &c), 0);
    CHECK_RC(exipc_stub_call(c, OP_ECHO, "again", 5, SEC(10), &m), 0);
    exipc_stub_msg_free(d, &m);
    exipc_stub_client_close(c);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    exipc_close(d);
    exipc_unlink(name);
}

int main(void)
{
    t_prog = "test_stub";
    test_wire();
    test_xproc();
    DONE();
}

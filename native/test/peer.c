/*
 * peer.c — the C end of the exipc stream protocol, used by the C<->C stream
 * test (test_stream_xproc.c) and by the Go tests (Go->C, C->Go; they find it
 * through EXIPC_C_PEER). The Go peer implements the same protocol.
 *
 *   peer send DOMAIN SERVICE NSMALL NBIG
 *   peer recv DOMAIN SERVICE NSMALL NBIG
 *
 * The protocol:
 *   - Both ends exipc_open DOMAIN with {.size = 64 MiB} (create or attach).
 *     Neither unlinks it: whoever runs the test does.
 *   - recv: exipc_listen(SERVICE), exipc_accept one channel (30 s).
 *     send: exipc_connect(SERVICE), waiting up to 10 s for the service.
 *   - Message i, for i in 0 .. NSMALL+NBIG-1, has length L(i) = 8 + i % 57
 *     if i < NSMALL, else 65536. Its bytes: [0,8) = i as little-endian
 *     uint64; byte j in [8,L) = (uint8_t)(i*131 + j*7).
 *   - send: exipc_alloc, fill, exipc_send_batch (<= 64 handles); on -EAGAIN
 *     or -ENOMEM retry after sched_yield (refused handles stay ours). After
 *     the last message: exipc_chan_close.
 *   - recv: receive every message, check length, sequence and every byte,
 *     exipc_free it. Then the next receive must return -EPIPE.
 *   - Both print one line on stdout:  checksum=%016llx count=%llu
 *     checksum: FNV-1a 64 over all payload bytes of all messages in order;
 *     count: the number of messages. Then exipc_close and exit 0.
 *   - On any error: the first error on stderr, exit 1 (2 for bad usage).
 *     A side that makes no progress for 30 s gives up.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exipc.h"

#define SEC 1000000000LL
#define BATCH 64
#define BIG_LEN 65536u
#define STALL_NS (30 * SEC)

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static const char *role = "peer";

static uint64_t msg_len(uint64_t i, uint64_t nsmall)
{
    return i < nsmall ? 8 + i % 57 : BIG_LEN;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        h ^= p[k];
        h *= FNV_PRIME;
    }
    return h;
}

static void fill(uint8_t *p, uint64_t i, uint64_t len)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(i >> (8 * k));
    uint8_t v = (uint8_t)(i * 131 + 8 * 7);
    for (uint64_t j = 8; j < len; j++, v += 7)
        p[j] = v;
}

/* Returns the index of the first wrong byte, or len if all are right. */
static uint64_t check(const uint8_t *p, uint64_t i, uint64_t len)
{
    for (int k = 0; k < 8; k++)
        if (p[k] != (uint8_t)(i >> (8 * k)))
            return (uint64_t)k;
    uint8_t v = (uint8_t)(i * 131 + 8 * 7);
    for (uint64_t j = 8; j < len; j++, v += 7)
        if (p[j] != v)
            return j;
    return len;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "peer %s: %s: %s\n", role, what, exipc_strerror(err));
    return 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int do_send(exipc_domain_t *d, const char *service, uint64_t nsmall, uint64_t nbig)
{
    exipc_chan_t *c;
    int r = exipc_connect(d, service, 10 * SEC, &c);
    if (r < 0)
        return fail("connect", r);

    const uint64_t total = nsmall + nbig;
    exipc_handle_t pend[BATCH]; /* allocated and filled, not yet sent, in order */
    size_t npend = 0;
    uint64_t next = 0, sent = 0, sum = FNV_OFFSET;
    int64_t last_progress = now_ns();

    while (sent < total) {
        while (npend < BATCH && next < total) {
            uint64_t len = msg_len(next, nsmall);
            exipc_handle_t h;
            r = exipc_alloc(d, len, &h);
            if (r == -ENOMEM)
                break; /* heap full: send what we have, or wait for frees */
            if (r < 0)
                return fail("alloc", r);
            size_t got = 0;
            uint8_t *p = exipc_ptr(d, h, &got);
            if (!p || got != len) {
                fprintf(stderr, "peer send: exipc_ptr(alloc'd handle %#" PRIx64 ") = %p len %zu, want len %" PRIu64 "\n",
                        h, (void *)p, got, len);
                return 1;
            }
            fill(p, next, len);
            sum = fnv1a(sum, p, len);
            pend[npend++] = h;
            next++;
        }
        if (npend > 0) {
            r = exipc_send_batch(c, pend, npend);
            if (r > 0) {
                memmove(pend, pend + r, (npend - (size_t)r) * sizeof pend[0]);
                npend -= (size_t)r;
                sent += (uint64_t)r;
                last_progress = now_ns();
                continue;
            }
            if (r != -EAGAIN)
                return fail("send", r);
        }
        if (now_ns() - last_progress > STALL_NS) {
            fprintf(stderr, "peer send: no progress for 30 s after %" PRIu64 " of %" PRIu64 " messages (ring or heap stays full)\n",
                    sent, total);
            return 1;
        }
        sched_yield();
    }

    r = exipc_chan_close(c);
    if (r < 0)
        return fail("chan_close", r);
    printf("checksum=%016llx count=%llu\n", (unsigned long long)sum, (unsigned long long)total);
    fflush(stdout);
    return 0;
}

static int do_recv(exipc_domain_t *d, const char *service, uint64_t nsmall, uint64_t nbig)
{
    exipc_listener_t *l;
    exipc_chan_t *c;
    int r = exipc_listen(d, service, &l);
    if (r < 0)
        return fail("listen", r);
    r = exipc_accept(l, 30 * SEC, &c);
    if (r < 0)
        return fail("accept", r);

    const uint64_t total = nsmall + nbig;
    uint64_t seq = 0, sum = FNV_OFFSET;
    exipc_handle_t hs[BATCH];

    while (seq < total) {
        r = exipc_recv_batch(c, hs, BATCH, 30 * SEC);
        if (r < 0) {
            fprintf(stderr, "peer recv: receiving message %" PRIu64 " of %" PRIu64 ": %s\n", seq, total,
                    exipc_strerror(r));
            return 1;
        }
        for (int k = 0; k < r; k++, seq++) {
            if (seq >= total) {
                fprintf(stderr, "peer recv: got more than %" PRIu64 " messages\n", total);
                return 1;
            }
            size_t len = 0;
            const uint8_t *p = exipc_ptr(d, hs[k], &len);
            uint64_t want = msg_len(seq, nsmall);
            if (!p) {
                fprintf(stderr, "peer recv: message %" PRIu64 ": exipc_ptr(%#" PRIx64 ") = NULL\n", seq, hs[k]);
                return 1;
            }
            if (len != want) {
                fprintf(stderr, "peer recv: message %" PRIu64 ": length %zu, want %" PRIu64 "\n", seq, len, want);
                return 1;
            }
            uint64_t bad = check(p, seq, len);
            if (bad < len) {
                if (bad < 8) {
                    uint64_t got = 0;
                    memcpy(&got, p, 8); /* little-endian hosts only, like the sender */
                    fprintf(stderr, "peer recv: message %" PRIu64 ": sequence field is %" PRIu64 " (out of order?)\n",
                            seq, got);
                } else {
                    fprintf(stderr, "peer recv: message %" PRIu64 ": byte %" PRIu64 " is 0x%02x, want 0x%02x\n", seq,
                            bad, p[bad], (uint8_t)(seq * 131 + bad * 7));
                }
                return 1;
            }
            sum = fnv1a(sum, p, len);
            int fr = exipc_free(d, hs[k]);
            if (fr < 0)
                return fail("free", fr);
        }
    }

    exipc_handle_t h;
    r = exipc_recv(c, &h, 30 * SEC);
    if (r != -EPIPE) {
        if (r == 0)
            fprintf(stderr, "peer recv: a message after the last one, want -EPIPE\n");
        else
            fprintf(stderr, "peer recv: after the last message: %s, want -EPIPE (%s)\n", exipc_strerror(r),
                    exipc_strerror(-EPIPE));
        return 1;
    }
    exipc_chan_close(c);
    exipc_listener_close(l);
    printf("checksum=%016llx count=%llu\n", (unsigned long long)sum, (unsigned long long)total);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t nsmall, nbig;
    if (argc != 6 || (strcmp(argv[1], "send") && strcmp(argv[1], "recv")) || parse_u64(argv[4], &nsmall) ||
        parse_u64(argv[5], &nbig) || nsmall + nbig < nsmall) {
        fprintf(stderr, "usage: peer send|recv DOMAIN SERVICE NSMALL NBIG\n");
        return 2;
    }
    role = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct exipc_options opt = {.size = 64ull << 20};
    exipc_domain_t *d;
    int r = exipc_open(argv[2], &opt, &d);
    if (r < 0)
        return fail("open", r);
    int rc = role[0] == 's' ? do_send(d, argv[3], nsmall, nbig) : do_recv(d, argv[3], nsmall, nbig);
    exipc_close(d);
    return rc;
}

/*
 * cclient.c — a C stub client for the bridge tests, written against <exipc.h>.
 *
 *   cclient DOMAIN SERVICE N MAXLEN    N pipelined ECHOs of 0..MAXLEN-1 bytes,
 *                                      each reply checked byte for byte
 *
 * Prints `cclient: N calls ok` and exits 0 when every reply matched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exipc.h"

#define SEC(n) ((int64_t)(n) * 1000000000)
enum { OP_ECHO = 1, WINDOW = 6 };

static void pattern(unsigned char *b, size_t n, unsigned i)
{
    for (size_t k = 0; k < n; k++)
        b[k] = (unsigned char)(i * 131 + k * 7 + (k >> 8));
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: cclient DOMAIN SERVICE N MAXLEN\n");
        return 2;
    }
    unsigned n = (unsigned)strtoul(argv[3], NULL, 10);
    size_t maxlen = strtoul(argv[4], NULL, 10);
    if (maxlen == 0 || maxlen > (1u << 20))
        return 2;
    exipc_domain_t *d;
    int r = exipc_open(argv[1], NULL, &d);
    if (r < 0) {
        fprintf(stderr, "cclient: open: %s\n", exipc_strerror(r));
        return 1;
    }
    exipc_stub_client_t *c;
    if ((r = exipc_stub_connect(d, argv[2], SEC(10), &c)) < 0) {
        fprintf(stderr, "cclient: connect: %s\n", exipc_strerror(r));
        return 1;
    }
    unsigned char *buf = malloc(maxlen);
    uint64_t ids[WINDOW];
    size_t sizes[WINDOW];
    unsigned bad = 0, ok = 0;
    for (unsigned base = 0; base < n && bad == 0; base += WINDOW) {
        unsigned k = n - base < WINDOW ? n - base : WINDOW;
        for (unsigned j = 0; j < k; j++) {
            unsigned i = base + j;
            sizes[j] = (size_t)(i * 4099u) % maxlen;
            pattern(buf, sizes[j], i);
            for (;;) {
                r = exipc_stub_start(c, OP_ECHO, buf, sizes[j], &ids[j]);
                if (r != -EAGAIN)
                    break;
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
            if (r < 0) {
                fprintf(stderr, "cclient: start %u: %s\n", i, exipc_strerror(r));
                return 1;
            }
        }
        for (unsigned j = 0; j < k; j++) {
            struct exipc_stub_msg m;
            r = exipc_stub_wait(c, ids[j], SEC(10), &m);
            if (r < 0) {
                fprintf(stderr, "cclient: wait %u: %s\n", base + j, exipc_strerror(r));
                return 1;
            }
            pattern(buf, sizes[j], base + j);
            if (m.hdr.kind != EXIPC_STUB_RESPONSE || m.hdr.id != ids[j] || m.hdr.body_len != sizes[j] ||
                memcmp(m.body, buf, sizes[j]) != 0) {
                fprintf(stderr, "cclient: reply %u differs (kind %u, %u bytes, want %zu)\n", base + j,
                        m.hdr.kind, m.hdr.body_len, sizes[j]);
                bad++;
            } else {
                ok++;
            }
            exipc_stub_msg_free(d, &m);
        }
    }
    exipc_stub_client_close(c);
    exipc_close(d);
    free(buf);
    if (bad || ok != n) {
        fprintf(stderr, "cclient: %u of %u calls ok\n", ok, n);
        return 1;
    }
    printf("cclient: %u calls ok\n", ok);
    return 0;
}

/*
 * chost.c — a C host for the exipc command's tests:
 *
 *   chost DOMAIN SERVICE NQUEUED NOWNED
 *
 * Opens DOMAIN, listens on SERVICE, connects to it and accepts (one bound
 * channel, both ends here), sends NQUEUED blocks client -> server that it
 * does not receive, keeps NOWNED more blocks, prints "ready" and waits until
 * stdin closes (or it is killed). Exit 0, or 1 with the error on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "exipc.h"

#define SEC 1000000000LL

static int fail(const char *what, int rc)
{
    fprintf(stderr, "chost: %s: %s\n", what, exipc_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: chost DOMAIN SERVICE NQUEUED NOWNED\n");
        return 2;
    }
    int nq = atoi(argv[3]), no = atoi(argv[4]);
    exipc_domain_t *d;
    exipc_listener_t *l;
    exipc_chan_t *c, *s;
    exipc_handle_t h;
    int rc;
    if ((rc = exipc_open(argv[1], NULL, &d)) != 0)
        return fail("open", rc);
    if ((rc = exipc_listen(d, argv[2], &l)) != 0)
        return fail("listen", rc);
    if ((rc = exipc_connect(d, argv[2], SEC, &c)) != 0)
        return fail("connect", rc);
    if ((rc = exipc_accept(l, SEC, &s)) != 0)
        return fail("accept", rc);
    for (int i = 0; i < nq; i++) {
        if ((rc = exipc_alloc(d, 200, &h)) != 0 || (rc = exipc_send(c, h)) != 0)
            return fail("send", rc);
    }
    for (int i = 0; i < no; i++)
        if ((rc = exipc_alloc(d, 3000, &h)) != 0)
            return fail("alloc", rc);
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    exipc_close(d);
    return 0;
}

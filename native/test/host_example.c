/*
 * host_example.c — a minimal C host of exipc, written from <exipc.h> alone.
 *
 *   host_example server DOMAIN    listen on "greet", answer one message
 *   host_example client DOMAIN    connect to "greet", send "hello", print the reply
 *
 * Build against an installed exipc:
 *   cc -o host_example host_example.c $(pkg-config --cflags --libs exipc)
 */
#include <exipc.h>
#include <stdio.h>
#include <string.h>

#define SECONDS(n) ((int64_t)(n) * 1000000000)

static int fail(const char *what, int err)
{
    fprintf(stderr, "%s: %s\n", what, exipc_strerror(err));
    return 1;
}

/* Put a string in a heap block and send the block's handle. */
static int send_text(exipc_domain_t *d, exipc_chan_t *c, const char *text)
{
    exipc_handle_t h;
    int r = exipc_alloc(d, strlen(text), &h);
    if (r < 0)
        return r;
    memcpy(exipc_ptr(d, h, NULL), text, strlen(text));
    r = exipc_send(c, h);   /* on success the block belongs to the peer */
    if (r < 0)
        exipc_free(d, h);   /* refused: it is still ours */
    return r;
}

/* Receive one block and print it; the block is ours until we free it. */
static int recv_text(exipc_domain_t *d, exipc_chan_t *c, const char *who)
{
    exipc_handle_t h;
    int r = exipc_recv(c, &h, SECONDS(10));
    if (r < 0)
        return r;
    size_t len;
    const char *text = exipc_ptr(d, h, &len);
    printf("%s got: %.*s\n", who, (int)len, text);
    return exipc_free(d, h);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
        fprintf(stderr, "usage: %s server|client DOMAIN\n", argv[0]);
        return 2;
    }
    int server = strcmp(argv[1], "server") == 0;

    exipc_domain_t *d;                        /* create or attach, default options */
    int r = exipc_open(argv[2], NULL, &d);
    if (r < 0)
        return fail("exipc_open", r);

    exipc_listener_t *l = NULL;
    exipc_chan_t *c;
    if (server) {
        if ((r = exipc_listen(d, "greet", &l)) < 0)
            return fail("exipc_listen", r);
        if ((r = exipc_accept(l, SECONDS(10), &c)) < 0)
            return fail("exipc_accept", r);
        if ((r = recv_text(d, c, "server")) < 0)
            return fail("receive", r);
        if ((r = send_text(d, c, "hello yourself")) < 0)
            return fail("reply", r);
    } else {
        if ((r = exipc_connect(d, "greet", SECONDS(10), &c)) < 0)
            return fail("exipc_connect", r);
        if ((r = send_text(d, c, "hello")) < 0)
            return fail("send", r);
        if ((r = recv_text(d, c, "client")) < 0)
            return fail("receive reply", r);
    }

    exipc_chan_close(c);                      /* the peer still gets what we sent */
    if (l)
        exipc_listener_close(l);
    exipc_close(d);
    if (server)
        exipc_unlink(argv[2]);                /* the segment goes once both have closed */
    return 0;
}

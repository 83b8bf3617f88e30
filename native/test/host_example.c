#include <exipc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECONDS(n) ((int64_t)(n) * 1000000000)

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
static int recv_text(exipc_domain_t *d, exipc_chan_t *c, const char *who, int64_t timeout)
{
    exipc_handle_t h;
    int r = exipc_recv(c, &h, timeout);
    if (r < 0)
        return r;
    size_t len;
    const char *text = exipc_ptr(d, h, &len);
    printf("%s got: %.*s\n", who, (int)len, text);
    return exipc_free(d, h);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
        fprintf(stderr, "usage: %s server|client DOMAIN [TIMEOUT_SECONDS]\n", argv[0]);
        return 2;
    }
    int server = strcmp(argv[1], "server") == 0;
    int64_t timeout = SECONDS(argc == 4 ? atoi(argv[3]) : 10);

    exipc_domain_t *d;                        /* create or attach, default options */
    int r = exipc_open(argv[2], NULL, &d);
    if (r < 0) {
        fprintf(stderr, "exipc_open %s: %s\n", argv[2], exipc_strerror(r));
        return 1;
    }
    exipc_listener_t *l = NULL;
    exipc_chan_t *c = NULL;
    const char *step;
    if (server) {
        if ((r = exipc_listen(d, "greet", &l)) < 0) { step = "exipc_listen"; goto out; }
        if ((r = exipc_accept(l, timeout, &c)) < 0) { step = "exipc_accept"; goto out; }
        if ((r = recv_text(d, c, "server", timeout)) < 0) { step = "receive"; goto out; }
        if ((r = send_text(d, c, "hello yourself")) < 0) { step = "reply"; goto out; }
    } else {
        if ((r = exipc_connect(d, "greet", timeout, &c)) < 0) { step = "exipc_connect"; goto out; }
        if ((r = send_text(d, c, "hello")) < 0) { step = "send"; goto out; }
        if ((r = recv_text(d, c, "client", timeout)) < 0) { step = "receive reply"; goto out; }
    }
out:
    if (r < 0)
        fprintf(stderr, "%s: %s\n", step, exipc_strerror(r));
    if (c)
        exipc_chan_close(c);                  /* the peer still gets what we sent */
    if (l)
        exipc_listener_close(l);
    /* Close; the last process out also removes the name, on success and on
     * failure alike. A server that others may still use leaves it. */
    exipc_leave(d);
    return r < 0 ? 1 : 0;
}

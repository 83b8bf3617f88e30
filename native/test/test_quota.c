/* test_quota.c — the per-process heap quota (exipc_options.proc_quota), real
 * processes: a hog that allocates without end, and sends to a store that
 * does not read, stops at its quota with -ENOMEM at once; a second client
 * in another process allocates and sends on meanwhile; what the store takes
 * off the hog's ring gives the hog room again. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "exipc.h"
#include "t.h"

#define SEC 1000000000ll
#define QUOTA 40

static int up[2], down[2];

static void say(char ch)
{
    if (write(up[1], &ch, 1) != 1)
        _exit(90);
}

static char hear(void)
{
    struct pollfd p = {.fd = up[0], .events = POLLIN};
    char ch = 0;
    if (poll(&p, 1, 20000) != 1 || read(up[0], &ch, 1) != 1)
        return 0;
    return ch;
}

static void wait_go(void)
{
    char ch;
    if (read(down[0], &ch, 1) != 1)
        _exit(91);
}

/* The hog: owns QUOTA blocks, then sends 16 of them to the store, which does
 * not read: still at its quota. Once the store has taken them, 16 more. */
static int hog(const char *name)
{
    exipc_domain_t *d;
    exipc_chan_t *c;
    exipc_handle_t h[QUOTA + 16];
    if (exipc_open(name, NULL, &d) != 0 || exipc_connect(d, "store", 5 * SEC, &c) != 0)
        return 10;
    int n = 0;
    while (n < QUOTA + 16 && exipc_alloc(d, 1000, &h[n]) == 0)
        n++;
    if (n != QUOTA)
        return 11; /* stopped exactly at its quota */
    if (exipc_alloc(d, 64, &h[n]) != -ENOMEM)
        return 12; /* any size */
    if (exipc_send_batch(c, h, 16) != 16)
        return 13;
    if (exipc_alloc(d, 1000, &h[n]) != -ENOMEM)
        return 14; /* what it sent still counts while it waits in the ring */
    say('h');
    wait_go(); /* the store has received the 16 */
    int more = 0;
    while (more < 17 && exipc_alloc(d, 1000, &h[n + more % 16]) == 0)
        more++;
    if (more != 16)
        return 15;
    say('m');
    wait_go();
    return 0;
}

/* The other client: allocates and sends 200 blocks to the store while the
 * hog sits at its quota. */
static int client(const char *name)
{
    exipc_domain_t *d;
    exipc_chan_t *c;
    if (exipc_open(name, NULL, &d) != 0 || exipc_connect(d, "other", 5 * SEC, &c) != 0)
        return 20;
    for (int i = 0; i < 200; i++) {
        exipc_handle_t h;
        int rc;
        /* Its own quota counts what it sent until the store takes it: when
         * the store lags by 40, wait for it (bounded), as any sender would. */
        for (int tries = 0; (rc = exipc_alloc(d, 2000, &h)) == -ENOMEM && tries < 100000; tries++) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
        if (rc != 0)
            return 21;
        memcpy(exipc_ptr(d, h, NULL), &i, sizeof i);
        while ((rc = exipc_send(c, h)) == -EAGAIN) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
        if (rc != 0)
            return 22;
    }
    say('c');
    wait_go();
    return 0;
}

static pid_t spawn(int (*fn)(const char *), const char *name)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(fn(name));
    }
    return pid;
}

static int reap(pid_t pid)
{
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = "test_quota";
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    if (pipe(up) != 0 || pipe(down) != 0)
        return 1;
    const char *name = t_domain("quota");
    exipc_domain_t *d = NULL;
    struct exipc_options o = {.size = 8 << 20, .proc_quota = QUOTA};
    CHECK_RC(exipc_open(name, &o, &d), 0);
    if (d == NULL)
        DONE();
    exipc_listener_t *ls, *lo;
    CHECK_RC(exipc_listen(d, "store", &ls), 0);
    CHECK_RC(exipc_listen(d, "other", &lo), 0);

    pid_t h = spawn(hog, name);
    exipc_chan_t *hc = NULL, *oc = NULL;
    CHECK_RC(exipc_accept(ls, 5 * SEC, &hc), 0);
    CHECK(hear() == 'h'); /* the hog is at its quota, 16 of its blocks queued */

    pid_t c = spawn(client, name);
    CHECK_RC(exipc_accept(lo, 5 * SEC, &oc), 0);
    int got = 0, order_ok = 1;
    while (oc && got < 200) {
        exipc_handle_t b;
        if (exipc_recv(oc, &b, 5 * SEC) != 0)
            break;
        int v = -1;
        memcpy(&v, exipc_ptr(d, b, NULL), sizeof v);
        order_ok &= v == got;
        exipc_free(d, b);
        got++;
    }
    CHECK(got == 200 && order_ok); /* the other client went on, unhurt */
    CHECK(hear() == 'c');

    /* The store takes the hog's 16: it may allocate 16 more, no more. */
    exipc_handle_t hb[16];
    int n = hc ? exipc_recv_batch(hc, hb, 16, 5 * SEC) : -1;
    CHECK_RC(n, 16);
    for (int i = 0; i < n; i++)
        exipc_free(d, hb[i]);
    if (write(down[1], "gg", 2) != 2)
        return 1;
    CHECK(hear() == 'm');
    /* The quota is the domain's: an attacher with its own options gets it. */
    exipc_domain_t *e = NULL;
    struct exipc_options other = {.proc_quota = 1000};
    CHECK_RC(exipc_open(name, &other, &e), 0);
    if (e) {
        exipc_handle_t x[QUOTA + 1];
        int k = 0;
        while (k < QUOTA + 1 && exipc_alloc(e, 64, &x[k]) == 0)
            k++;
        CHECK(k == QUOTA);
        for (int i = 0; i < k; i++)
            exipc_free(e, x[i]);
        exipc_close(e);
    }
    if (write(down[1], "gg", 2) != 2)
        return 1;
    CHECK_RC(reap(h), 0);
    CHECK_RC(reap(c), 0);
    exipc_chan_close(hc);
    exipc_chan_close(oc);
    exipc_listener_close(ls);
    exipc_listener_close(lo);
    exipc_close(d);
    exipc_unlink(name);
    DONE();
}

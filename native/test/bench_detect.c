/* bench_detect.c — how long a receiver blocked in exipc_recv (or waiting in
 * exipc_poll) takes to learn that its peer was SIGKILLed, when no other
 * process of the domain is alive to tell it. A benchmark, not a test: it
 * prints numbers and asserts nothing.
 *
 * Three processes: this driver (which never opens the domain), a receiver R
 * that stays, and a peer P forked afresh for every sample. P connects to R
 * and sends one message; R receives it, tells the driver it is about to
 * block, and blocks; the driver waits a random 30-70 ms (so R is asleep, at
 * a random phase of its wait slices), reads CLOCK_MONOTONIC, SIGKILLs P.
 * R's call returns -EPIPE; R reads the clock and reports. The latency is the
 * difference: what a user sees, kill to error, including the kernel's
 * teardown of P and the reap R runs on the way out.
 *
 *   bench_detect [SAMPLES [recv|poll|both]]     default 200 both
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../exipc_internal.h"

#define SEC 1000000000ll

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void put(int fd, const void *p, size_t n)
{
    if (write(fd, p, n) != (ssize_t)n)
        _exit(3);
}

static int get(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* The receiver: per sample, accept, receive the first message, say 'b',
 * block until -EPIPE, report the time (or a negative error). */
static void receiver(const char *name, int use_poll, int up, int down)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    exipc_domain_t *d;
    exipc_listener_t *l;
    if (exipc_open(name, NULL, &d) != 0 || exipc_listen(d, "detect", &l) != 0)
        _exit(2);
    put(up, "r", 1);
    char go;
    while (get(down, &go, 1) == 0) {
        exipc_chan_t *c;
        exipc_handle_t h;
        int64_t t = -1;
        if (exipc_accept(l, 10 * SEC, &c) == 0) {
            if (exipc_recv(c, &h, 10 * SEC) == 0)
                exipc_free(d, h);
            put(up, "b", 1);
            int rc;
            if (use_poll) {
                struct exipc_pollitem it = {.chan = c};
                rc = exipc_poll(d, &it, 1, 10 * SEC);
                if (rc == 1)
                    rc = exipc_recv(c, &h, 0);
            } else {
                rc = exipc_recv(c, &h, 10 * SEC);
            }
            t = rc == -EPIPE ? mono() : rc < 0 ? rc : -1;
            exipc_chan_close(c);
        }
        put(up, &t, sizeof t);
    }
    exipc_close(d);
    _exit(0);
}

static void peer(const char *name)
{
    exipc_domain_t *d;
    exipc_chan_t *c;
    exipc_handle_t h;
    if (exipc_open(name, NULL, &d) != 0 || exipc_connect(d, "detect", 10 * SEC, &c) != 0 || exipc_alloc(d, 64, &h) != 0 ||
        exipc_send(c, h) != 0)
        _exit(2);
    for (;;)
        pause();
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int run(const char *mode, int use_poll, int n)
{
    char name[64];
    snprintf(name, sizeof name, "bench-detect-%d", (int)getpid());
    int a[2], b[2];
    if (pipe(a) != 0 || pipe(b) != 0)
        return 1;
    pid_t r = fork();
    if (r == 0) {
        close(a[0]);
        close(b[1]);
        receiver(name, use_poll, a[1], b[0]);
    }
    close(a[1]);
    close(b[0]);
    int up = a[0], down = b[1];
    char ch;
    if (get(up, &ch, 1) != 0) {
        fprintf(stderr, "receiver did not start\n");
        return 1;
    }
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    int got = 0, bad = 0;
    unsigned seed = (unsigned)getpid();
    for (int i = 0; i < n; i++) {
        put(down, "g", 1);
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            close(up);
            close(down);
            peer(name);
        }
        int64_t t1 = 0;
        if (get(up, &ch, 1) != 0 || ch != 'b') {
            kill(p, SIGKILL);
            waitpid(p, NULL, 0);
            bad++;
            break;
        }
        struct timespec ts = {0, (30 + rand_r(&seed) % 41) * 1000000l};
        nanosleep(&ts, NULL);
        int64_t t0 = mono();
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        if (get(up, &t1, sizeof t1) != 0)
            break;
        if (t1 > t0)
            lat[got++] = t1 - t0;
        else
            bad++;
    }
    close(down);
    waitpid(r, NULL, 0);
    close(up);
    exipc_unlink(name);
    if (got == 0) {
        printf("%-5s no samples (%d failed)\n", mode, bad);
        free(lat);
        return 1;
    }
    /* EXIPC_DETECT_OUT=FILE: the samples too, as little-endian uint32 ns
     * (make bench's detect/exipc-c cells read them). */
    const char *out = getenv("EXIPC_DETECT_OUT");
    if (out != NULL) {
        FILE *f = fopen(out, "wb");
        for (int i = 0; f != NULL && i < got; i++) {
            uint32_t v = lat[i] > 0xffffffffll ? 0xffffffffu : (uint32_t)lat[i];
            fwrite(&v, sizeof v, 1, f);
        }
        if (f != NULL)
            fclose(f);
    }
    qsort(lat, (size_t)got, sizeof *lat, cmp64);
    double sum = 0;
    for (int i = 0; i < got; i++)
        sum += (double)lat[i];
    int p99 = (int)((got * 99 + 99) / 100) - 1;
    printf("%-5s samples %d (failed %d): min %.1f ms, p50 %.1f ms, mean %.1f ms, p99 %.1f ms, max %.1f ms\n", mode, got, bad,
           (double)lat[0] / 1e6, (double)lat[got / 2] / 1e6, sum / got / 1e6, (double)lat[p99] / 1e6,
           (double)lat[got - 1] / 1e6);
    free(lat);
    return bad != 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    const char *which = argc > 2 ? argv[2] : "both";
    if (n <= 0)
        n = 200;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("# peer SIGKILLed -> blocked receiver returns -EPIPE, no third process alive; the watcher's pidfd "
           "tells (fallback slice %lld ms where it cannot); target p99 10 ms\n",
           (long long)(WAIT_SLICE_NS / 1000000));
    int rc = 0;
    if (strcmp(which, "poll") != 0)
        rc |= run("recv", 0, n);
    if (strcmp(which, "recv") != 0)
        rc |= run("poll", 1, n);
    return rc;
}

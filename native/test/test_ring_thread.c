/* test_ring_thread.c — a producer and a consumer thread on one channel (each
 * through its own domain handle, so its own process slot), to run the rings
 * and the heap under TSan. Checks order and a checksum of every payload, in
 * a busy phase and in a phase where the consumer keeps parking. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

#include "../exipc_internal.h"
#include "t.h"

struct side {
    exipc_domain_t *d;
    exipc_chan_t *c;
    uint64_t n;
    int pause_every; /* producer: sleep now and then so the consumer parks */
    uint64_t sum;
    int err;
};

static int consumer_done; /* set (atomically) when the consumer stops */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    return x ^ (x >> 29);
}

static void *producer(void *arg)
{
    struct side *s = arg;
    exipc_handle_t batch[16];
    uint64_t i = 0;
    while (i < s->n) {
        int k = 0;
        for (; k < 16 && i + (uint64_t)k < s->n; k++) {
            int rc;
            while ((rc = exipc_alloc(s->d, 9 + (size_t)((i + k) % 120), &batch[k])) == -ENOMEM)
                sched_yield();
            if (rc != 0) {
                s->err = rc;
                return NULL;
            }
            size_t len;
            uint64_t *p = exipc_ptr(s->d, batch[k], &len);
            p[0] = i + (uint64_t)k;
            ((unsigned char *)p)[len - 1] = (unsigned char)mix(i + (uint64_t)k);
            s->sum += mix(i + (uint64_t)k);
        }
        int sent = 0;
        while (sent < k) {
            int rc = exipc_send_batch(s->c, batch + sent, (size_t)(k - sent));
            if (rc == -EAGAIN) {
                if (__atomic_load_n(&consumer_done, __ATOMIC_ACQUIRE)) {
                    s->err = -EPIPE;
                    return NULL;
                }
                sched_yield();
                continue;
            }
            if (rc < 0) {
                s->err = rc;
                return NULL;
            }
            sent += rc;
        }
        i += (uint64_t)k;
        if (s->pause_every && (i / 16) % (uint64_t)s->pause_every == 0) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    exipc_chan_close(s->c);
    return NULL;
}

static void *consume(struct side *s);

static void *consumer(void *arg)
{
    void *r = consume(arg);
    __atomic_store_n(&consumer_done, 1, __ATOMIC_RELEASE);
    return r;
}

static void *consume(struct side *s)
{
    exipc_handle_t hs[32];
    uint64_t want = 0;
    for (;;) {
        int n = exipc_recv_batch(s->c, hs, 32, 5000000000ll);
        if (n == -EPIPE)
            break;
        if (n < 0) {
            s->err = n;
            return NULL;
        }
        for (int k = 0; k < n; k++) {
            size_t len;
            uint64_t *p = exipc_ptr(s->d, hs[k], &len);
            if (p == NULL || p[0] != want || len != 9 + want % 120 ||
                ((unsigned char *)p)[len - 1] != (unsigned char)mix(want)) {
                fprintf(stderr, "message %llu: ptr %p len %zu first %llu\n", (unsigned long long)want, (void *)p,
                        len, p ? (unsigned long long)p[0] : 0ull);
                s->err = -EBADMSG;
                return NULL;
            }
            s->sum += mix(want);
            want++;
            if (exipc_free(s->d, hs[k]) != 0) {
                s->err = -EPROTO;
                return NULL;
            }
        }
    }
    s->n = want;
    return NULL;
}

static void run(const char *tag, uint64_t n, int pause_every)
{
    const char *name = t_domain(tag);
    struct exipc_options o = {.size = 4 << 20, .ring_capacity = 64};
    struct side p = {.n = n, .pause_every = pause_every}, c = {0};
    __atomic_store_n(&consumer_done, 0, __ATOMIC_RELAXED);
    CHECK_RC(exipc_open(name, &o, &p.d), 0);
    /* Same mapping for both threads: TSan tracks addresses, and two mmaps of
     * one file would hide every race from it. */
    CHECK_RC(exipc__open_same_map(p.d, name, &c.d), 0);
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(c.d, "ring", &l), 0);
    CHECK_RC(exipc_connect(p.d, "ring", 0, &p.c), 0);
    CHECK_RC(exipc_accept(l, 0, &c.c), 0);
    pthread_t tp, tc;
    pthread_create(&tc, NULL, consumer, &c);
    pthread_create(&tp, NULL, producer, &p);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    CHECK_RC(p.err, 0);
    CHECK_RC(c.err, 0);
    CHECK(c.n == n);
    CHECK(p.sum == c.sum);
    struct exipc_stat st;
    exipc_chan_close(c.c);
    exipc_stat(c.d, &st);
    CHECK(st.heap_blocks_used == 0 && st.chans_bound == 0);
    printf("%s: %llu messages, checksum %016llx\n", tag, (unsigned long long)c.n, (unsigned long long)c.sum);
    exipc_close(c.d);
    exipc_close(p.d);
    exipc_unlink(name);
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *q = getenv("EXIPC_TEST_QUICK");
    uint64_t n = q && *q == '1' ? 100000 : 1000000;
    run("busy", n, 0);
    run("parking", n / 10, 4);
    DONE();
}

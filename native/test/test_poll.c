/* test_poll.c — waiting on many channels: exipc_poll, arm / wait_ready and
 * the doorbell. Semantics in one process, then real processes: a wave of
 * messages to random channels, and a lost-wake-up stress of 10 million
 * send/recv pairs with random pauses on both sides (a lost wake-up shows as
 * a poll that times out while a message waits). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>

#include "../exipc.h"
#include "../exipc_internal.h"
#include "t.h"

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000l, ns % 1000000000l};
    nanosleep(&ts, NULL);
}

static void *waker(void *arg)
{
    sleep_ns(20000000);
    exipc_wake(arg);
    return NULL;
}

static void test_semantics(void)
{
    const char *name = t_domain("poll");
    exipc_domain_t *a = NULL, *b = NULL;
    CHECK_RC(exipc_open(name, NULL, &a), 0);
    CHECK_RC(exipc_open(name, NULL, &b), 0);
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(a, "p", &l), 0);
    exipc_chan_t *cli[3], *srv[3];
    struct exipc_pollitem it[4] = {{0}};
    it[0].listener = l;
    CHECK_RC(exipc_poll(a, it, 1, 0), -EAGAIN);
    CHECK_RC(exipc_connect(b, "p", 0, &cli[0]), 0);
    CHECK_RC(exipc_poll(a, it, 1, 0), 1); /* a channel to accept */
    CHECK(it[0].ready == 1);
    CHECK_RC(exipc_accept(l, 0, &srv[0]), 0);
    for (int i = 1; i < 3; i++) {
        CHECK_RC(exipc_connect(b, "p", 0, &cli[i]), 0);
        CHECK_RC(exipc_accept(l, 0, &srv[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        it[i + 1].chan = srv[i];
    CHECK_RC(exipc_poll(a, it, 4, 0), -EAGAIN);
    CHECK_RC(exipc_poll(a, it, 4, 10000000), -ETIMEDOUT);
    exipc_handle_t h;
    CHECK_RC(exipc_alloc(b, 64, &h), 0);
    CHECK_RC(exipc_send(cli[2], h), 0);
    CHECK_RC(exipc_poll(a, it, 4, -1), 1);
    CHECK(it[3].ready == 1 && it[0].ready == 0 && it[1].ready == 0 && it[2].ready == 0);
    CHECK_RC(exipc_recv(srv[2], &h, 0), 0);
    CHECK_RC(exipc_free(a, h), 0);
    /* Bad items. */
    struct exipc_pollitem bad = {0};
    CHECK_RC(exipc_poll(a, &bad, 1, 0), -EINVAL);
    /* exipc_wake ends a wait with 0. */
    pthread_t t;
    pthread_create(&t, NULL, waker, a);
    CHECK_RC(exipc_poll(a, it, 4, 5000000000ll), 0);
    pthread_join(t, NULL);
    /* A peer that closes makes its channel ready. */
    CHECK_RC(exipc_chan_close(cli[1]), 0);
    CHECK_RC(exipc_poll(a, it, 4, 1000000000), 1);
    CHECK(it[2].ready == 1);
    CHECK_RC(exipc_recv(srv[1], &h, 0), -EPIPE);
    /* arm / wait_ready: the bit of the channel that got a message. */
    uint64_t bits[64] = {0};
    CHECK(exipc_ready_words(a) <= 64);
    exipc_wait_ready(a, bits, 64, 0); /* bits left by the polls above are hints: take them */
    CHECK_RC(exipc_wait_ready(a, bits, 64, 0), -EAGAIN);
    CHECK_RC(exipc_chan_arm(srv[0]), 0);
    CHECK_RC(exipc_listener_arm(l), 0);
    CHECK_RC(exipc_wait_ready(a, bits, exipc_ready_words(a) - 1 + (exipc_ready_words(a) == 0), 0),
             exipc_ready_words(a) > 1 ? -EINVAL : -EAGAIN);
    CHECK_RC(exipc_alloc(b, 64, &h), 0);
    CHECK_RC(exipc_send(cli[0], h), 0);
    CHECK_RC(exipc_wait_ready(a, bits, 64, 1000000000), 1);
    uint32_t id = exipc_chan_id(srv[0]);
    CHECK((bits[id / 64] >> (id % 64)) & 1);
    CHECK_RC(exipc_chan_arm(srv[0]), 1); /* ready now: nothing armed */
    exipc_chan_t *c4;
    CHECK_RC(exipc_connect(b, "p", 0, &c4), 0);
    CHECK_RC(exipc_wait_ready(a, bits, 64, 1000000000), 1);
    id = exipc_listener_id(l);
    CHECK((bits[id / 64] >> (id % 64)) & 1);
    exipc_close(b);
    exipc_close(a);
    exipc_unlink(name);
}

/* The doorbell's asleep bit: a ring while nobody sleeps on the doorbell
 * finds the bit clear (and so makes no system call); a waiter that sleeps
 * leaves it set; the next ring clears it (it made the futex_wake), and a
 * sleeping waiter is woken. */
struct ring_later {
    exipc_domain_t *d;
    exipc_chan_t *c;
};

static void *send_later(void *arg)
{
    struct ring_later *r = arg;
    sleep_ns(20000000);
    exipc_handle_t h;
    if (exipc_alloc(r->d, 64, &h) == 0 && exipc_send(r->c, h) != 0)
        exipc_free(r->d, h);
    return NULL;
}

static void test_doorbell_asleep(void)
{
    const char *name = t_domain("bell");
    exipc_domain_t *a = NULL, *b = NULL;
    CHECK_RC(exipc_open(name, NULL, &a), 0);
    CHECK_RC(exipc_open(name, NULL, &b), 0);
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(a, "p", &l), 0);
    exipc_chan_t *cli, *srv;
    CHECK_RC(exipc_connect(b, "p", 0, &cli), 0);
    CHECK_RC(exipc_accept(l, 0, &srv), 0);
    uint32_t *db = &D_PROC(a, a->slot)->doorbell;
    uint64_t bits[64] = {0};
    CHECK(exipc_ready_words(a) <= 64);
    exipc_wait_ready(a, bits, 64, 0); /* take what connect left */
    exipc_handle_t h;

    /* Nobody asleep: the ring counts, the bit stays clear. */
    CHECK((ATOM_LOAD_SEQCST(db) & DOORBELL_ASLEEP) == 0);
    uint32_t before = ATOM_LOAD_SEQCST(db);
    CHECK_RC(exipc_chan_arm(srv), 0);
    CHECK_RC(exipc_alloc(b, 64, &h), 0);
    CHECK_RC(exipc_send(cli, h), 0);
    uint32_t after = ATOM_LOAD_SEQCST(db);
    CHECK((after & DOORBELL_ASLEEP) == 0);
    CHECK(after - before >= DOORBELL_STEP);
    CHECK_RC(exipc_wait_ready(a, bits, 64, 0), 1);
    CHECK_RC(exipc_recv(srv, &h, 0), 0);
    CHECK_RC(exipc_free(a, h), 0);

    /* A waiter that slept (and timed out) leaves the bit; the next ring
     * clears it. */
    CHECK_RC(exipc_wait_ready(a, bits, 64, 2000000), 0);
    CHECK((ATOM_LOAD_SEQCST(db) & DOORBELL_ASLEEP) != 0);
    CHECK_RC(exipc_chan_arm(srv), 0);
    CHECK_RC(exipc_alloc(b, 64, &h), 0);
    CHECK_RC(exipc_send(cli, h), 0);
    CHECK((ATOM_LOAD_SEQCST(db) & DOORBELL_ASLEEP) == 0);
    CHECK_RC(exipc_wait_ready(a, bits, 64, 0), 1);
    CHECK_RC(exipc_recv(srv, &h, 0), 0);
    CHECK_RC(exipc_free(a, h), 0);

    /* A sleeping waiter is woken by the ring, with wait_ready and poll. */
    for (int k = 0; k < 2; k++) {
        struct ring_later r = {b, cli};
        pthread_t t;
        pthread_create(&t, NULL, send_later, &r);
        if (k == 0) {
            CHECK_RC(exipc_chan_arm(srv), 0);
            CHECK_RC(exipc_wait_ready(a, bits, 64, 5000000000ll), 1);
        } else {
            struct exipc_pollitem it = {.chan = srv};
            CHECK_RC(exipc_poll(a, &it, 1, 5000000000ll), 1);
        }
        pthread_join(t, NULL);
        CHECK_RC(exipc_recv(srv, &h, 0), 0);
        CHECK_RC(exipc_free(a, h), 0);
    }
    exipc_close(b);
    exipc_close(a);
    exipc_unlink(name);
}

#define NCHAN 64

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Child: connects NCHAN channels and sends `total` messages to random
 * channels, each carrying its channel's sequence number, pausing at random. */
static int sender(const char *name, uint64_t total, uint64_t seed)
{
    rnd_state = seed;
    exipc_domain_t *d = NULL;
    if (exipc_open(name, NULL, &d) != 0)
        return 2;
    exipc_chan_t *c[NCHAN];
    uint64_t seq[NCHAN] = {0};
    for (int i = 0; i < NCHAN; i++)
        if (exipc_connect(d, "wave", 5000000000ll, &c[i]) != 0)
            return 3;
    for (uint64_t n = 0; n < total; n++) {
        int k = (int)(rnd() % NCHAN);
        exipc_handle_t h;
        int rc;
        while ((rc = exipc_alloc(d, 64, &h)) == -ENOMEM)
            sched_yield();
        if (rc != 0)
            return 4;
        uint64_t *p = exipc_ptr(d, h, NULL);
        p[0] = seq[k]++;
        p[1] = (uint64_t)k;
        while ((rc = exipc_send(c[k], h)) == -EAGAIN)
            sched_yield();
        if (rc != 0)
            return 5;
        uint64_t r = rnd();
        if (r % 1024 == 0)
            sleep_ns((long)(r >> 40) % 200000); /* up to 200 us: the receiver parks */
    }
    for (int i = 0; i < NCHAN; i++)
        exipc_chan_close(c[i]);
    exipc_close(d);
    return 0;
}

static void stress(const char *tag, uint64_t total)
{
    const char *name = t_domain(tag);
    struct exipc_options o = {.size = 8 << 20, .ring_capacity = 64, .max_chans = 128};
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, &o, &d), 0);
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(d, "wave", &l), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(sender(name, total, 0x9e3779b97f4a7c15ull));
    struct exipc_pollitem it[NCHAN];
    exipc_chan_t *c[NCHAN];
    uint64_t want[NCHAN] = {0};
    int ok = 1;
    for (int i = 0; i < NCHAN && ok; i++) {
        ok = exipc_accept(l, 5000000000ll, &c[i]) == 0;
        it[i] = (struct exipc_pollitem){.chan = c[i]};
    }
    CHECK(ok);
    uint64_t got = 0, polls = 0, parks = 0;
    int open_chans = NCHAN;
    rnd_state = 12345;
    while (ok && open_chans > 0) {
        int n = exipc_poll(d, it, NCHAN, 5000000000ll);
        polls++;
        if (n == -ETIMEDOUT) {
            fprintf(stderr, "%s: poll timed out after %llu messages: lost wake-up\n", tag, (unsigned long long)got);
            ok = 0;
            break;
        }
        if (n < 0) {
            fprintf(stderr, "%s: poll: %s\n", tag, exipc_strerror(n));
            ok = 0;
            break;
        }
        for (int i = 0; i < NCHAN && ok; i++) {
            if (!it[i].ready || it[i].chan == NULL)
                continue;
            exipc_handle_t hs[32];
            int r = exipc_recv_batch(c[i], hs, 32, 0);
            if (r == -EPIPE) {
                it[i].chan = NULL;
                it[i].listener = l; /* keep the slot valid; the listener stays idle */
                open_chans--;
                continue;
            }
            if (r == -EAGAIN)
                continue;
            if (r < 0) {
                ok = 0;
                break;
            }
            for (int k = 0; k < r; k++) {
                uint64_t *p = exipc_ptr(d, hs[k], NULL);
                if (p == NULL || p[0] != want[i] || p[1] != (uint64_t)i) {
                    fprintf(stderr, "%s: channel %d: bad message\n", tag, i);
                    ok = 0;
                    break;
                }
                want[i]++;
                got++;
                exipc_free(d, hs[k]);
            }
        }
        uint64_t r = rnd();
        if (r % 512 == 0) {
            parks++;
            sleep_ns((long)(r >> 40) % 100000);
        }
    }
    if (!ok)
        kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(ok);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(got == total);
    printf("%s: %llu messages on %d channels, %llu polls, %llu receiver pauses\n", tag, (unsigned long long)got,
           NCHAN, (unsigned long long)polls, (unsigned long long)parks);
    for (int i = 0; i < NCHAN; i++)
        exipc_chan_close(c[i]);
    struct exipc_stat st;
    exipc_stat(d, &st);
    CHECK(st.heap_blocks_used == 0 && st.chans_bound == 0);
    exipc_close(d);
    exipc_unlink(name);
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    test_semantics();
    test_doorbell_asleep();
    const char *q = getenv("EXIPC_TEST_QUICK");
    stress("wave", 200000);
    stress("wakeups", q && *q == '1' ? 1000000 : 10000000);
    DONE();
}

/* test_crash.c — crash cleanup, one scenario at a time, with real processes
 * killed by SIGKILL at exact points (the exipc__kill_point hook):
 *
 *   - a process killed while it holds the queue manager's lock (in listen,
 *     in a channel close, while registering, half-way through connect): the
 *     next locker repairs the tables, and everything still works;
 *   - a reaper killed at each step of a reap (claimed, ends closed, sweeping
 *     the heap outside the lock, releasing, committing): the next reaper
 *     takes the claim over and the result is exact;
 *   - a sender killed inside send after moving blocks to "in flight" but
 *     before publishing them (the straggler): they are freed, and what it
 *     did publish is still delivered, then -EPIPE;
 *   - the segment's last processes die and a new one attaches: it reaps them
 *     (also when every process slot was taken by a dead process);
 *   - the reaper's outcomes: another reaper active (busy), already cleaned;
 *   - a forked child that outlives its parent keeps the parent's slot alive.
 *
 * After each: the tables are consistent (tables.h), the heap holds exactly
 * what the survivors hold, reaped_procs is exact, and listen / connect /
 * send / recv still work. Exit 0 pass, 1 fail. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "t.h"
#include "tables.h"

#define SEC 1000000000ll

static struct exipc_options opts = {.size = 1 << 20, .max_procs = 16, .max_chans = 16, .ring_capacity = 16, .max_block = 4096};

/* ---- the kill-point hook, in a child -------------------------------------- */

static const char *kp_target;
static int kp_fd = -1;     /* written 'k' when the point is reached */
static int kp_release = -1; /* if >= 0: read one byte there and go on instead of waiting to die */

static void kp_hook(const char *point)
{
    if (kp_target == NULL || strcmp(point, kp_target) != 0)
        return;
    kp_target = NULL; /* once */
    char c = 'k';
    if (write(kp_fd, &c, 1) != 1)
        _exit(90);
    if (kp_release >= 0) {
        if (read(kp_release, &c, 1) != 1)
            _exit(91);
        return;
    }
    for (;;)
        pause(); /* until SIGKILL */
}

static void kp_arm(const char *target, int fd)
{
    kp_target = target;
    kp_fd = fd;
    exipc__kill_point = kp_hook;
}

/* ---- small helpers ---------------------------------------------------------- */

struct child {
    pid_t pid;
    int up;   /* child -> parent */
    int down; /* parent -> child */
};

/* Forks a child running fn(arg, up, down); it dies with us. */
static struct child spawn(void (*fn)(void *arg, int up, int down), void *arg)
{
    int a[2], b[2];
    if (pipe(a) != 0 || pipe(b) != 0)
        abort();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(a[0]);
        close(b[1]);
        fn(arg, a[1], b[0]);
        _exit(0);
    }
    close(a[1]);
    close(b[0]);
    return (struct child){pid, a[0], b[1]};
}

/* Reads the child's next signal byte, 10 s at most. */
static char hear(struct child *c)
{
    struct pollfd p = {.fd = c->up, .events = POLLIN};
    char ch = 0;
    if (poll(&p, 1, 10000) != 1 || read(c->up, &ch, 1) != 1)
        return 0;
    return ch;
}

static void tell(struct child *c)
{
    char ch = 'g';
    if (write(c->down, &ch, 1) != 1)
        abort();
}

static void say(int fd, char ch)
{
    if (write(fd, &ch, 1) != 1)
        _exit(92);
}

static void wait_go(int fd)
{
    char ch;
    if (read(fd, &ch, 1) != 1)
        _exit(93);
}

/* Waits for the child's exit; returns its exit code, or 128+signal. */
static int reap_child(struct child *c)
{
    int st = 0;
    close(c->up);
    close(c->down);
    if (waitpid(c->pid, &st, 0) != c->pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void kill_child(struct child *c)
{
    kill(c->pid, SIGKILL);
    CHECK_RC(reap_child(c), 128 + SIGKILL);
}

/* Message i of a stream: its bytes say who and which. */
static void fill(exipc_domain_t *d, exipc_handle_t h, uint32_t tag, uint32_t i)
{
    size_t n = 0;
    uint8_t *p = exipc_ptr(d, h, &n);
    for (size_t k = 0; p && k < n; k++)
        p[k] = (uint8_t)(tag * 31 + i * 7 + k);
}

static int intact(exipc_domain_t *d, exipc_handle_t h, uint32_t tag, uint32_t i)
{
    size_t n = 0;
    uint8_t *p = exipc_ptr(d, h, &n);
    if (p == NULL)
        return 0;
    for (size_t k = 0; k < n; k++)
        if (p[k] != (uint8_t)(tag * 31 + i * 7 + k))
            return 0;
    return 1;
}

static int send_msgs(exipc_domain_t *d, exipc_chan_t *c, uint32_t tag, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        exipc_handle_t h;
        if (exipc_alloc(d, 100 + i, &h) != 0)
            return -1;
        fill(d, h, tag, i);
        if (exipc_send(c, h) != 0)
            return -1;
    }
    return 0;
}

/* Receives n messages of stream tag, checks them and keeps them (held). */
static void recv_msgs(exipc_domain_t *d, exipc_chan_t *c, uint32_t tag, uint32_t n, exipc_handle_t *held)
{
    for (uint32_t i = 0; i < n; i++) {
        exipc_handle_t h = 0;
        CHECK_RC(exipc_recv(c, &h, 5 * SEC), 0);
        CHECK(intact(d, h, tag, i));
        held[i] = h;
    }
}

/* Simulates a send killed after it moved blocks to "in flight" and before it
 * published tail: the state exipc_send_batch leaves at that instant. */
static int make_stragglers(exipc_domain_t *d, exipc_chan_t *c, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        exipc_handle_t h;
        if (exipc_alloc(d, 64, &h) != 0 || heap_transfer(d, h, OWNER(OWN_PROC, d->slot), c->tx_owner) != 0)
            return -1;
    }
    return 0;
}

static void expect_clean(exipc_domain_t *d, const char *what, uint64_t blocks, uint32_t procs, uint32_t services,
                         uint64_t reaped)
{
    struct tables_report r;
    const char *why = tables_check(d, &r);
    if (why != NULL)
        fprintf(stderr, "%s: tables: %s\n", what, why);
    CHECK(why == NULL);
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    if (st.heap_blocks_used != blocks || st.procs_alive != procs || st.services != services || st.reaped_procs != reaped)
        fprintf(stderr, "%s: blocks %llu (want %llu) procs %u (want %u) services %u (want %u) reaped %llu (want %llu)\n",
                what, (unsigned long long)st.heap_blocks_used, (unsigned long long)blocks, st.procs_alive, procs,
                st.services, services, (unsigned long long)st.reaped_procs, (unsigned long long)reaped);
    CHECK(st.heap_blocks_used == blocks && st.procs_alive == procs && st.services == services && st.reaped_procs == reaped);
    CHECK(why != NULL || r.free_reachable == r.blocks_free); /* nobody died inside alloc or free here */
}

/* A client that connects to SVC, sends "ping", expects "pong" back. */
static void pinger(void *arg, int up, int down)
{
    (void)down;
    const char *name = arg;
    exipc_domain_t *d;
    exipc_chan_t *c;
    exipc_handle_t h;
    if (exipc_open(name, NULL, &d) != 0 || exipc_connect(d, "svc", 5 * SEC, &c) != 0)
        _exit(10);
    if (send_msgs(d, c, 77, 1) != 0 || exipc_recv(c, &h, 5 * SEC) != 0 || !intact(d, h, 78, 0) || exipc_free(d, h) != 0)
        _exit(11);
    say(up, 'd');
    exipc_chan_close(c);
    exipc_close(d);
    _exit(0);
}

/* Everything still works: a new process connects, a round trip, clean. */
static void round_trip(exipc_domain_t *d, exipc_listener_t *l, const char *name)
{
    struct child p = spawn(pinger, (void *)name);
    exipc_chan_t *c = NULL;
    exipc_handle_t h = 0;
    CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    if (c == NULL) {
        kill_child(&p);
        return;
    }
    CHECK_RC(exipc_recv(c, &h, 5 * SEC), 0);
    CHECK(intact(d, h, 77, 0));
    CHECK_RC(exipc_free(d, h), 0);
    CHECK_RC(send_msgs(d, c, 78, 1), 0);
    CHECK(hear(&p) == 'd');
    CHECK_RC(reap_child(&p), 0);
    CHECK_RC(exipc_recv(c, &h, 5 * SEC), -EPIPE);
    CHECK_RC(exipc_chan_close(c), 0);
}

/* ---- 1. a process killed while it holds the lock ------------------------------ */

struct victim_arg {
    const char *name;
    const char *point;
};

/* Connects to svc, sends 3 (stream 1), owns 2 more, then waits for "go";
 * then dies at `point` inside: "lock" -> listen, "end_close" -> chan_close,
 * "connect" -> a second connect. */
static void lock_victim(void *arg, int up, int down)
{
    struct victim_arg *a = arg;
    exipc_domain_t *d;
    exipc_chan_t *c, *c2;
    exipc_listener_t *l;
    exipc_handle_t h;
    if (exipc_open(a->name, NULL, &d) != 0 || exipc_connect(d, "svc", 5 * SEC, &c) != 0)
        _exit(10);
    if (send_msgs(d, c, 1, 3) != 0 || exipc_alloc(d, 64, &h) != 0 || exipc_alloc(d, 64, &h) != 0)
        _exit(11);
    say(up, 'r');
    wait_go(down);
    kp_arm(a->point, up);
    if (strcmp(a->point, "end_close") == 0)
        exipc_chan_close(c);
    else if (strcmp(a->point, "connect") == 0)
        exipc_connect(d, "svc", 0, &c2);
    else
        exipc_listen(d, "victim", &l);
    _exit(12); /* the hook did not fire */
}

static void test_lock_holder_killed(const char *point)
{
    char what[64];
    snprintf(what, sizeof what, "lock holder killed at %s", point);
    const char *name = t_domain("crash-lock");
    exipc_domain_t *d = NULL;
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_open(name, &opts, &d), 0);
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    struct victim_arg a = {name, point};
    struct child v = spawn(lock_victim, &a);
    CHECK(hear(&v) == 'r');
    exipc_chan_t *c = NULL;
    CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    /* Two blocks in flight towards the victim: freed when it is cleaned. */
    CHECK_RC(send_msgs(d, c, 2, 2), 0);
    uint32_t repairs = D_HDR(d)->lock_repairs;
    tell(&v);
    CHECK(hear(&v) == 'k');
    kill_child(&v);
    /* The next locker finds the holder dead and repairs. */
    struct exipc_stat st;
    CHECK_RC(exipc_reap(d), 1);
    CHECK(D_HDR(d)->lock_repairs == repairs + 1);
    exipc_handle_t held[3];
    recv_msgs(d, c, 1, 3, held);
    exipc_handle_t h;
    CHECK_RC(exipc_recv(c, &h, 5 * SEC), -EPIPE);
    CHECK_RC(exipc_chan_close(c), 0);
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.chans_bound == 0);
    expect_clean(d, what, 3, 1, 1, 1);
    for (int i = 0; i < 3; i++)
        CHECK_RC(exipc_free(d, held[i]), 0);
    round_trip(d, l, name);
    expect_clean(d, what, 0, 1, 1, 1);
    CHECK_RC(exipc_listen(d, "victim", &l), 0); /* its half-made service never existed */
    exipc_close(d);
    exipc_unlink(name);
}

/* Dies while registering (inside exipc_open, lock held). */
static void register_victim(void *arg, int up, int down)
{
    (void)down;
    exipc_domain_t *d;
    kp_arm("register", up);
    exipc_open(arg, NULL, &d);
    _exit(12);
}

static void test_register_killed(void)
{
    const char *name = t_domain("crash-reg");
    exipc_domain_t *d = NULL;
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_open(name, &opts, &d), 0);
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    struct child v = spawn(register_victim, (void *)name);
    CHECK(hear(&v) == 'k');
    kill_child(&v);
    uint32_t repairs = D_HDR(d)->lock_repairs;
    CHECK_RC(exipc_reap(d), 0); /* it never became a process of the domain */
    exipc_listener_t *l2 = NULL;
    CHECK_RC(exipc_listen(d, "after", &l2), 0); /* the next locker repairs */
    CHECK(D_HDR(d)->lock_repairs == repairs + 1);
    expect_clean(d, "killed while registering", 0, 1, 2, 0);
    round_trip(d, l, name);
    expect_clean(d, "killed while registering", 0, 1, 2, 0);
    exipc_close(d);
    exipc_unlink(name);
}

/* ---- 2. a reaper killed at each step --------------------------------------------- */

/* The process to be reaped: a client of svc with 3 messages sent, 2 blocks
 * owned, 1 straggler, and a service of its own. Waits to be killed. */
static void doomed_proc(void *arg, int up, int down)
{
    (void)down;
    exipc_domain_t *d;
    exipc_chan_t *c;
    exipc_listener_t *l;
    exipc_handle_t h;
    if (exipc_open(arg, NULL, &d) != 0 || exipc_connect(d, "svc", 5 * SEC, &c) != 0 || exipc_listen(d, "doomed", &l) != 0)
        _exit(10);
    if (send_msgs(d, c, 3, 3) != 0 || exipc_alloc(d, 64, &h) != 0 || exipc_alloc(d, 1000, &h) != 0 ||
        make_stragglers(d, c, 1) != 0)
        _exit(11);
    say(up, 'r');
    for (;;)
        pause();
}

/* A process whose exipc_open reaps the dead one, and dies at `point` of it
 * (or, with a release pipe, stops there until told to go on). */
static int reaper_release = -1;
static void reaper_proc(void *arg, int up, int down)
{
    struct victim_arg *a = arg;
    exipc_domain_t *d;
    if (reaper_release >= 0)
        kp_release = down;
    kp_arm(a->point, up);
    int rc = exipc_open(a->name, NULL, &d);
    say(up, rc == 0 ? 'o' : 'e');
    if (rc == 0)
        exipc_close(d);
    _exit(rc == 0 ? 0 : 13);
}

static void test_reaper_killed(const char *point)
{
    char what[64];
    snprintf(what, sizeof what, "reaper killed at %s", point ? point : "(none)");
    const char *name = t_domain("crash-reaper");
    exipc_domain_t *d = NULL;
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_open(name, &opts, &d), 0);
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    struct child x = spawn(doomed_proc, (void *)name);
    CHECK(hear(&x) == 'r');
    exipc_chan_t *c = NULL;
    CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    CHECK_RC(send_msgs(d, c, 4, 2), 0); /* towards the doomed one */
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.heap_blocks_used == 3 + 2 + 1 + 2);
    kill_child(&x);

    uint32_t repairs = D_HDR(d)->lock_repairs, takeovers = D_HDR(d)->reap_takeovers;
    int want_cleaned = 1;
    if (point != NULL) {
        struct victim_arg a = {name, point};
        struct child r = spawn(reaper_proc, &a);
        CHECK(hear(&r) == 'k');
        kill_child(&r);
        want_cleaned = 2; /* the doomed one and the reaper (it had registered) */
        if (strcmp(point, "reap.commit") == 0)
            want_cleaned = 1; /* the commit record finishes the doomed one's release */
    }
    struct reap_tally t = {0};
    CHECK_RC(cqm_reap_all(d, true, &t), want_cleaned);
    int under_lock = point != NULL && strcmp(point, "reap.sweep") != 0;
    CHECK(D_HDR(d)->lock_repairs == repairs + (under_lock ? 1 : 0));
    int taken_over = point != NULL && strcmp(point, "reap.commit") != 0;
    CHECK(D_HDR(d)->reap_takeovers == takeovers + (taken_over ? 1 : 0));
    CHECK(t.takeovers == (taken_over ? 1u : 0u));
    /* What the dead one sent is delivered, then -EPIPE. */
    exipc_handle_t held[3], h;
    recv_msgs(d, c, 3, 3, held);
    CHECK_RC(exipc_recv(c, &h, 5 * SEC), -EPIPE);
    CHECK_RC(exipc_chan_close(c), 0);
    uint64_t reaped = point != NULL ? 2 : 1;
    expect_clean(d, what, 3, 1, 1, reaped);
    for (int i = 0; i < 3; i++)
        CHECK_RC(exipc_free(d, held[i]), 0);
    round_trip(d, l, name);
    expect_clean(d, what, 0, 1, 1, reaped);
    exipc_close(d);
    exipc_unlink(name);
}

/* A straggler on a channel whose live end had already closed: the reaper
 * holds the channel, frees the straggler, then frees the channel. */
static void test_straggler_closed_channel(void)
{
    const char *name = t_domain("crash-strag");
    exipc_domain_t *d = NULL;
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_open(name, &opts, &d), 0);
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    struct child x = spawn(doomed_proc, (void *)name);
    CHECK(hear(&x) == 'r');
    exipc_chan_t *c = NULL;
    CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    CHECK_RC(exipc_chan_close(c), 0); /* frees the 3 queued towards us */
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.heap_blocks_used == 3 && st.chans_bound == 1);
    kill_child(&x);
    CHECK_RC(exipc_reap(d), 1);
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.chans_bound == 0);
    expect_clean(d, "straggler on a closed channel", 0, 1, 1, 1);
    exipc_close(d);
    exipc_unlink(name);
}

/* ---- 3. the reaper's outcomes ------------------------------------------------------ */

static void *release_later(void *arg)
{
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    tell(arg);
    return NULL;
}

static void test_outcomes(void)
{
    const char *name = t_domain("crash-busy");
    exipc_domain_t *d = NULL;
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_open(name, &opts, &d), 0);
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    struct child x = spawn(doomed_proc, (void *)name);
    CHECK(hear(&x) == 'r');
    exipc_chan_t *c = NULL;
    CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    kill_child(&x);
    /* A reaper that stops (alive) in its sweep, claim held. */
    reaper_release = 1;
    struct victim_arg a = {name, "reap.sweep"};
    struct child r = spawn(reaper_proc, &a);
    reaper_release = -1;
    CHECK(hear(&r) == 'k');
    struct reap_tally t = {0};
    CHECK_RC(cqm_reap_all(d, false, &t), 0); /* another reaper is active */
    CHECK(t.busy == 1 && t.cleaned == 0);
    CHECK_RC(cqm_reap_slot(d, d->slot, NULL), REAP_ALIVE);
    pthread_t th;
    pthread_create(&th, NULL, release_later, &r);
    /* Waits for it (2 s at most per call; a loaded machine may need more
     * calls): already cleaned. */
    memset(&t, 0, sizeof t);
    int n = 0, calls = 0;
    struct exipc_stat st = {0};
    for (; calls < 10 && n == 0 && st.reaped_procs == 0; calls++) {
        n = cqm_reap_all(d, true, &t);
        exipc_stat(d, &st);
    }
    CHECK_RC(n, 0);
    CHECK(st.reaped_procs == 1);
    CHECK(t.busy >= 1 && t.cleaned == 0 && (t.already == 1 || calls > 1));
    pthread_join(th, NULL);
    CHECK(hear(&r) == 'o');
    CHECK_RC(reap_child(&r), 0);
    exipc_handle_t held[3], h;
    recv_msgs(d, c, 3, 3, held);
    CHECK_RC(exipc_recv(c, &h, 5 * SEC), -EPIPE);
    CHECK_RC(exipc_chan_close(c), 0);
    for (int i = 0; i < 3; i++)
        CHECK_RC(exipc_free(d, held[i]), 0);
    expect_clean(d, "busy, then already cleaned", 0, 1, 1, 1);
    CHECK_RC(exipc_reap(d), 0);
    exipc_close(d);
    exipc_unlink(name);
}

/* ---- 4. the last processes die; a new one attaches --------------------------------- */

/* Creates the domain, listens on "a", talks to itself and to a peer, owns
 * blocks, leaves a straggler; then waits to be killed. */
static void last_a(void *arg, int up, int down)
{
    exipc_domain_t *d;
    exipc_listener_t *l;
    exipc_chan_t *cc, *sc;
    exipc_handle_t h;
    if (exipc_open(arg, &opts, &d) != 0 || exipc_listen(d, "svc", &l) != 0 || exipc_connect(d, "svc", 0, &cc) != 0 ||
        exipc_accept(l, 0, &sc) != 0)
        _exit(10);
    if (send_msgs(d, cc, 5, 4) != 0 || send_msgs(d, sc, 6, 3) != 0 || exipc_alloc(d, 500, &h) != 0 ||
        make_stragglers(d, cc, 1) != 0)
        _exit(11);
    say(up, 'r');
    wait_go(down); /* b connected */
    exipc_chan_t *bc;
    if (exipc_accept(l, 5 * SEC, &bc) != 0 || send_msgs(d, bc, 7, 2) != 0)
        _exit(12);
    say(up, 'r');
    for (;;)
        pause();
}

static void last_b(void *arg, int up, int down)
{
    (void)down;
    exipc_domain_t *d;
    exipc_chan_t *c;
    exipc_handle_t h;
    if (exipc_open(arg, NULL, &d) != 0 || exipc_connect(d, "svc", 5 * SEC, &c) != 0 || send_msgs(d, c, 8, 2) != 0 ||
        exipc_alloc(d, 64, &h) != 0)
        _exit(10);
    say(up, 'r');
    for (;;)
        pause();
}

static void test_last_process_dies(void)
{
    const char *name = t_domain("crash-last");
    struct child a = spawn(last_a, (void *)name);
    CHECK(hear(&a) == 'r');
    struct child b = spawn(last_b, (void *)name);
    CHECK(hear(&b) == 'r');
    tell(&a);
    CHECK(hear(&a) == 'r');
    kill_child(&a);
    kill_child(&b);
    /* Nobody is attached now. Open reaps on attach. */
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.chans_bound == 0);
    expect_clean(d, "attach after the last processes died", 0, 1, 0, 2);
    exipc_close(d);
    exipc_unlink(name);
}

static void opener(void *arg, int up, int down)
{
    (void)down;
    exipc_domain_t *d;
    exipc_handle_t h;
    if (exipc_open(arg, NULL, &d) != 0 || exipc_alloc(d, 64, &h) != 0)
        _exit(10);
    say(up, 'r');
    for (;;)
        pause();
}

/* Every slot taken by a dead process: the attacher reaps with the lock held
 * (it has no slot to claim with yet). */
static void test_full_table_of_dead(void)
{
    const char *name = t_domain("crash-full");
    struct exipc_options o = opts;
    o.max_procs = 4;
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, &o, &d), 0);
    exipc_close(d); /* the domain stays */
    struct child k[4];
    for (int i = 0; i < 4; i++) {
        k[i] = spawn(opener, (void *)name);
        CHECK(hear(&k[i]) == 'r');
    }
    for (int i = 0; i < 4; i++)
        kill_child(&k[i]);
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    expect_clean(d, "attach to a table full of the dead", 0, 1, 0, 4);
    exipc_close(d);
    exipc_unlink(name);
}

/* ---- 5. fork ------------------------------------------------------------------------- */

/* Opens the domain, then forks a child that only sleeps: the child shares
 * the open file description, hence the liveness lock. */
static void forking_parent(void *arg, int up, int down)
{
    (void)down;
    exipc_domain_t *d;
    exipc_handle_t h;
    if (exipc_open(arg, NULL, &d) != 0 || exipc_alloc(d, 64, &h) != 0)
        _exit(10);
    pid_t g = fork();
    if (g == 0) {
        /* The grandchild: its copy of d is refused. It outlives its parent
         * (30 s at most, should the test fail before it kills it). */
        alarm(30);
        if (exipc_alloc(d, 64, &h) != -EBADF)
            _exit(20);
        char pid[16] = {0};
        snprintf(pid, sizeof pid, "g%d", (int)getpid());
        if (write(up, pid, sizeof pid) != (ssize_t)sizeof pid)
            _exit(11);
    }
    for (;;)
        pause();
}

static void test_fork_outlives_parent(void)
{
    const char *name = t_domain("crash-fork");
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, &opts, &d), 0);
    struct child p = spawn(forking_parent, (void *)name);
    char buf[16] = {0};
    struct pollfd pf = {.fd = p.up, .events = POLLIN};
    CHECK(poll(&pf, 1, 10000) == 1 && read(p.up, buf, sizeof buf) == (ssize_t)sizeof buf && buf[0] == 'g');
    pid_t g = (pid_t)atoi(buf + 1);
    kill_child(&p);
    /* The grandchild still holds its parent's liveness lock. */
    struct exipc_stat st;
    CHECK_RC(exipc_reap(d), 0);
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.procs_alive == 2 && st.heap_blocks_used == 1);
    if (g > 0)
        kill(g, SIGKILL); /* not our child: its lock goes when it has exited */
    int n = 0;
    for (int i = 0; i < 500 && n == 0; i++) {
        n = exipc_reap(d);
        if (n == 0) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK_RC(n, 1);
    expect_clean(d, "forked child outlived its parent", 0, 1, 0, 1);
    exipc_close(d);
    exipc_unlink(name);
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Every reap here is made by the process the test names: no watcher
     * reaps behind its back (test_watch.c tests the watcher). */
    exipc__no_watch = 1;
    const char *lock_points[] = {"lock", "end_close", "connect"};
    for (size_t i = 0; i < sizeof lock_points / sizeof *lock_points; i++)
        test_lock_holder_killed(lock_points[i]);
    test_register_killed();
    test_reaper_killed(NULL);
    const char *reap_points[] = {"reap.claimed", "reap.closed", "reap.sweep", "reap.release", "reap.commit"};
    for (size_t i = 0; i < sizeof reap_points / sizeof *reap_points; i++)
        test_reaper_killed(reap_points[i]);
    test_straggler_closed_channel();
    test_outcomes();
    test_last_process_dies();
    test_full_table_of_dead();
    test_fork_outlives_parent();
    DONE();
}

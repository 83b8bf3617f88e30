/* test_core.c — the C API, one process (two domain handles act as two
 * processes: each open takes its own process slot) plus forked children
 * where a real second process is the point. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "../exipc_internal.h"
#include "t.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void test_names(void)
{
    exipc_domain_t *d = NULL;
    char long_name[202];
    memset(long_name, 'a', 201);
    long_name[201] = 0;
    const char *bad[] = {"", ".x", "..", "a/b", "a b", "a\nb", "é", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_RC(exipc_open(bad[i], NULL, &d), -EINVAL);
    CHECK_RC(exipc_open(NULL, NULL, &d), -EINVAL);
    CHECK_RC(exipc_unlink("a/b"), -EINVAL);
    CHECK_RC(exipc_unlink(t_domain("absent")), -ENOENT);
    long_name[200] = 0; /* 200 characters is allowed */
    CHECK_RC(exipc_open(long_name, NULL, &d), 0);
    if (d) {
        exipc_close(d);
        CHECK_RC(exipc_unlink(long_name), 0);
    }
    struct exipc_options o = {.ring_capacity = 3};
    CHECK_RC(exipc_open(t_domain("opt"), &o, &d), -EINVAL);
    o = (struct exipc_options){.max_block = 63}; /* below the smallest block */
    CHECK_RC(exipc_open(t_domain("opt"), &o, &d), -EINVAL);
    o = (struct exipc_options){.size = 1 << 20, .max_block = (1 << 20) + 1}; /* above the arena */
    CHECK_RC(exipc_open(t_domain("opt"), &o, &d), -EINVAL);
    o = (struct exipc_options){.mode = 0777};
    CHECK_RC(exipc_open(t_domain("opt"), &o, &d), -EINVAL);
    CHECK(access("/dev/shm/exipc.t-opt", F_OK) != 0);
}

static void test_open_stat(void)
{
    const char *name = t_domain("stat");
    exipc_domain_t *a = NULL, *b = NULL;
    CHECK_RC(exipc_open(name, NULL, &a), 0);
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    struct exipc_stat s;
    CHECK_RC(exipc_stat(a, &s), 0);
    CHECK(s.procs_alive == 1 && s.heap_blocks_used == 0 && s.chans_bound == 0 && s.services == 0);
    CHECK(s.heap_bytes_total == 32ull << 20);
    struct exipc_options other = {.size = 1 << 20, .ring_capacity = 8};
    CHECK_RC(exipc_open(name, &other, &b), 0); /* attach: the domain's values win */
    CHECK_RC(exipc_stat(b, &s), 0);
    CHECK(s.procs_alive == 2 && s.heap_bytes_total == 32ull << 20);
    exipc_close(b);
    CHECK_RC(exipc_stat(a, &s), 0);
    CHECK(s.procs_alive == 1 && s.reaped_procs == 0);
    exipc_close(a);
    CHECK_RC(exipc_unlink(name), 0);
    CHECK(stat(path, &st) != 0);
}

static void test_heap(void)
{
    const char *name = t_domain("heap");
    struct exipc_options o = {.size = 1 << 20, .max_block = 64 << 10};
    exipc_domain_t *a = NULL, *b = NULL;
    CHECK_RC(exipc_open(name, &o, &a), 0);
    CHECK_RC(exipc_open(name, NULL, &b), 0);
    exipc_handle_t h = 0;
    CHECK_RC(exipc_alloc(a, 0, &h), -EINVAL);
    CHECK_RC(exipc_alloc(a, (64 << 10) + 1, &h), -EMSGSIZE); /* above max_block: never */
    size_t sizes[] = {1, 63, 64, 65, 100, 4096, 4097, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        CHECK_RC(exipc_alloc(a, sizes[i], &h), 0);
        size_t len = 0;
        unsigned char *p = exipc_ptr(a, h, &len);
        CHECK(p != NULL && len == sizes[i] && h != 0 && (h >> 63) == 0);
        if (p)
            memset(p, 0xab, len);
        CHECK(exipc_ptr(b, h, NULL) == NULL); /* owned by a, not b */
        CHECK_RC(exipc_free(b, h), -EBADMSG);
        CHECK_RC(exipc_free(a, h), 0);
        CHECK(exipc_ptr(a, h, NULL) == NULL); /* freed */
        CHECK_RC(exipc_free(a, h), -EBADMSG); /* double free */
    }
    /* Stale: the block is reused with a new generation. */
    exipc_handle_t h1, h2;
    CHECK_RC(exipc_alloc(a, 64, &h1), 0);
    CHECK_RC(exipc_free(a, h1), 0);
    CHECK_RC(exipc_alloc(a, 64, &h2), 0);
    CHECK((uint32_t)h1 == (uint32_t)h2 && h1 != h2);
    CHECK(exipc_ptr(a, h1, NULL) == NULL);
    CHECK_RC(exipc_free(a, h1), -EBADMSG);
    CHECK(exipc_ptr(a, h2, NULL) != NULL);
    /* Forged and flipped. */
    CHECK(exipc_ptr(a, 0, NULL) == NULL);
    CHECK_RC(exipc_free(a, 0), -EBADMSG);
    int refused = 0;
    for (int bit = 0; bit < 64; bit++)
        refused += exipc_ptr(a, h2 ^ (1ull << bit), NULL) == NULL;
    CHECK(refused == 64);
    srand(7);
    refused = 0;
    for (int i = 0; i < 100000; i++) {
        exipc_handle_t r = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
        refused += exipc_ptr(a, r, NULL) == NULL && exipc_free(a, r) == -EBADMSG;
    }
    CHECK(refused == 100000);
    CHECK_RC(exipc_free(a, h2), 0);
    /* Exhaustion, then everything back. */
    static exipc_handle_t hs[20000];
    int n = 0, rc;
    while (n < 20000 && (rc = exipc_alloc(a, 1000, &hs[n])) == 0)
        n++;
    CHECK(n > 0 && n < 20000);
    CHECK_RC(exipc_alloc(a, 1000, &h), -ENOMEM);
    struct exipc_stat s;
    exipc_stat(b, &s);
    CHECK(s.heap_blocks_used == (uint64_t)n && s.heap_bytes_used == (uint64_t)n * 1024);
    for (int i = 0; i < n; i++)
        CHECK_RC(exipc_free(a, hs[i]), 0);
    exipc_stat(b, &s);
    CHECK(s.heap_blocks_used == 0);
    CHECK_RC(exipc_alloc(a, 1000, &h), 0);
    /* Closing a domain handle frees what it owned. */
    for (int i = 0; i < 10; i++)
        CHECK_RC(exipc_alloc(b, 64, &hs[i]), 0);
    exipc_stat(a, &s);
    CHECK(s.heap_blocks_used == 11);
    exipc_close(b);
    exipc_stat(a, &s);
    CHECK(s.heap_blocks_used == 1 && s.procs_alive == 1);
    exipc_close(a);
    exipc_unlink(name);
}

static void test_binding(void)
{
    const char *name = t_domain("bind");
    struct exipc_options o = {.ring_capacity = 8, .max_chans = 4};
    exipc_domain_t *srv = NULL, *cli = NULL;
    CHECK_RC(exipc_open(name, &o, &srv), 0);
    CHECK_RC(exipc_open(name, NULL, &cli), 0);
    exipc_listener_t *l = NULL, *l2 = NULL;
    exipc_chan_t *cc = NULL, *sc = NULL;
    CHECK_RC(exipc_connect(cli, "svc", 0, &cc), -ENOENT);
    int64_t t0 = mono_ns();
    CHECK_RC(exipc_connect(cli, "svc", 30000000, &cc), -ENOENT);
    CHECK(mono_ns() - t0 >= 30000000);
    CHECK_RC(exipc_listen(srv, "bad/name", &l), -EINVAL);
    CHECK_RC(exipc_listen(srv, "svc", &l), 0);
    CHECK_RC(exipc_listen(cli, "svc", &l2), -EEXIST);
    CHECK_RC(exipc_accept(l, 0, &sc), -EAGAIN);
    CHECK_RC(exipc_accept(l, 10000000, &sc), -ETIMEDOUT);
    CHECK_RC(exipc_connect(cli, "svc", 0, &cc), 0);
    exipc_handle_t h, hs[16];
    /* Connect binds at once: sending before accept works. */
    CHECK_RC(exipc_alloc(cli, 64, &h), 0);
    strcpy(exipc_ptr(cli, h, NULL), "early");
    CHECK_RC(exipc_send(cc, h), 0);
    CHECK(exipc_ptr(cli, h, NULL) == NULL);   /* in flight: not the sender's any more */
    CHECK_RC(exipc_free(cli, h), -EBADMSG);
    CHECK_RC(exipc_accept(l, 0, &sc), 0);
    struct exipc_stat s;
    exipc_stat(srv, &s);
    CHECK(s.chans_bound == 1 && s.services == 1 && s.heap_blocks_used == 1);
    exipc_handle_t got = 0;
    CHECK_RC(exipc_recv(sc, &got, 0), 0);
    CHECK(got == h);
    char *p = exipc_ptr(srv, got, NULL);
    CHECK(p != NULL && strcmp(p, "early") == 0);
    CHECK_RC(exipc_recv(sc, &got, 0), -EAGAIN);
    t0 = mono_ns();
    CHECK_RC(exipc_recv(sc, &got, 5000000), -ETIMEDOUT);
    CHECK(mono_ns() - t0 >= 5000000);
    CHECK_RC(exipc_send(sc, h), 0); /* send it back */
    CHECK_RC(exipc_recv(cc, &got, -1), 0);
    CHECK_RC(exipc_free(cli, got), 0);
    /* A ring holds exactly its capacity. */
    for (int i = 0; i < 9; i++)
        CHECK_RC(exipc_alloc(cli, 64, &hs[i]), 0);
    for (int i = 0; i < 8; i++)
        CHECK_RC(exipc_send(cc, hs[i]), 0);
    CHECK_RC(exipc_send(cc, hs[8]), -EAGAIN);
    CHECK(exipc_ptr(cli, hs[8], NULL) != NULL); /* refused: still the sender's */
    CHECK_RC(exipc_recv_batch(sc, hs, 3, 0), 3);
    for (int i = 0; i < 3; i++)
        CHECK_RC(exipc_free(srv, hs[i]), 0);
    /* Batch: 3 slots free, 5 offered: 3 go, 2 stay. */
    exipc_handle_t more[5];
    more[0] = hs[8];
    for (int i = 1; i < 5; i++)
        CHECK_RC(exipc_alloc(cli, 64, &more[i]), 0);
    CHECK_RC(exipc_send_batch(cc, more, 5), 3);
    CHECK(exipc_ptr(cli, more[2], NULL) == NULL && exipc_ptr(cli, more[3], NULL) != NULL);
    CHECK_RC(exipc_send_batch(cc, more + 3, 2), -EAGAIN);
    CHECK_RC(exipc_send_batch(cc, more, 0), -EINVAL);
    /* A bad handle in a batch stops it there. */
    CHECK_RC(exipc_recv_batch(sc, hs, 16, 0), 8);
    for (int i = 0; i < 8; i++)
        CHECK_RC(exipc_free(srv, hs[i]), 0);
    exipc_handle_t mixed[3] = {more[3], 12345, more[4]};
    CHECK_RC(exipc_send_batch(cc, mixed, 3), 1);
    CHECK_RC(exipc_send_batch(cc, mixed + 1, 2), -EBADMSG);
    CHECK_RC(exipc_send(cc, more[4]), 0);
    /* Close: the peer drains, then -EPIPE; sending to a closed end: -EPIPE. */
    CHECK_RC(exipc_chan_close(cc), 0);
    CHECK_RC(exipc_recv_batch(sc, hs, 16, -1), 2);
    CHECK_RC(exipc_recv(sc, &got, -1), -EPIPE);
    CHECK_RC(exipc_recv(sc, &got, 0), -EPIPE);
    CHECK_RC(exipc_send(sc, hs[0]), -EPIPE);
    CHECK_RC(exipc_free(srv, hs[0]), 0);
    CHECK_RC(exipc_free(srv, hs[1]), 0);
    CHECK_RC(exipc_chan_close(sc), 0);
    exipc_stat(srv, &s);
    CHECK(s.chans_bound == 0 && s.heap_blocks_used == 0);
    /* Channel slots are reused: many more binds than max_chans. */
    int ok = 0;
    for (int i = 0; i < 50; i++) {
        exipc_chan_t *a = NULL, *b = NULL;
        if (exipc_connect(cli, "svc", 0, &a) == 0 && exipc_accept(l, 0, &b) == 0) {
            exipc_handle_t x;
            exipc_alloc(srv, 100, &x);
            ok += exipc_send(b, x) == 0; /* left in flight: closing frees it */
            exipc_chan_close(b);
            exipc_chan_close(a);
        }
    }
    CHECK(ok == 50);
    exipc_stat(srv, &s);
    CHECK(s.chans_bound == 0 && s.heap_blocks_used == 0);
    /* Table full. */
    exipc_chan_t *many[5];
    for (int i = 0; i < 4; i++)
        CHECK_RC(exipc_connect(cli, "svc", 0, &many[i]), 0);
    CHECK_RC(exipc_connect(cli, "svc", 0, &many[4]), -EMFILE);
    /* Listener close: unaccepted clients see -EPIPE. */
    CHECK_RC(exipc_listener_close(l), 0);
    CHECK_RC(exipc_recv(many[0], &got, -1), -EPIPE);
    exipc_stat(srv, &s);
    CHECK(s.services == 0);
    for (int i = 0; i < 4; i++)
        exipc_chan_close(many[i]);
    exipc_stat(srv, &s);
    CHECK(s.chans_bound == 0);
    CHECK_RC(exipc_listen(cli, "svc", &l2), 0); /* the name is free again */
    exipc_close(cli);                          /* closes l2 with it */
    exipc_stat(srv, &s);
    CHECK(s.services == 0 && s.procs_alive == 1);
    exipc_close(srv);
    exipc_unlink(name);
}

static void test_incompatible(void)
{
    const char *name = t_domain("bad");
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    exipc_domain_t *d = NULL;
    /* Not an exipc segment. */
    int fd = open(path, O_CREAT | O_RDWR | O_EXCL, 0600);
    CHECK(fd >= 0);
    char junk[sizeof(struct seg_hdr) + 8192]; /* longer than a header: the version check is reached */
    memset(junk, 0x5a, sizeof junk);
    CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    CHECK_RC(exipc_open(name, NULL, &d), -EPROTO);
    /* Another layout version, otherwise well formed. */
    memset(junk, 0, sizeof junk);
    uint64_t magic = 0x314d4f4443504958ULL;
    uint32_t version = 99, line = 64;
    memcpy(junk, &magic, 8);
    memcpy(junk + 8, &version, 4);
    memcpy(junk + 12, &line, 4);
    uint32_t one = 1;
    memcpy(junk + offsetof(struct seg_params, ready), &one, 4);
    CHECK(pwrite(fd, junk, sizeof junk, 0) == (ssize_t)sizeof junk);
    CHECK_RC(exipc_open(name, NULL, &d), -ENOTSUP);
    close(fd);
    unlink(path);
    /* A symlink planted at the path is refused. */
    CHECK(symlink("/tmp/exipc-symlink-target", path) == 0);
    CHECK_RC(exipc_open(name, NULL, &d), -EACCES);
    CHECK(access("/tmp/exipc-symlink-target", F_OK) != 0);
    unlink(path);
}

/* A forked child must not use its parent's domain; a child that dies
 * holding blocks, a service and a channel is reaped. */
static void test_fork_and_reap(void)
{
    const char *name = t_domain("reap");
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(d, "parent", &l), 0);
    pid_t pid = fork();
    if (pid == 0) {
        exipc_handle_t h;
        int rc = exipc_alloc(d, 64, &h);
        _exit(rc == -EBADF ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid = fork();
    if (pid == 0) {
        exipc_domain_t *cd = NULL;
        exipc_listener_t *cl = NULL;
        exipc_chan_t *cc = NULL;
        exipc_handle_t h;
        if (exipc_open(name, NULL, &cd) != 0 || exipc_listen(cd, "child", &cl) != 0 ||
            exipc_connect(cd, "parent", 0, &cc) != 0)
            _exit(2);
        for (int i = 0; i < 5; i++)
            if (exipc_alloc(cd, 200, &h) != 0)
                _exit(3);
        for (int i = 0; i < 3; i++)
            if (exipc_alloc(cd, 64, &h) != 0 || exipc_send(cc, h) != 0)
                _exit(4);
        if (write(pfd[1], "r", 1) != 1)
            _exit(5);
        pause();
        _exit(6);
    }
    char ch;
    CHECK(read(pfd[0], &ch, 1) == 1);
    struct exipc_stat s;
    exipc_stat(d, &s);
    CHECK(s.procs_alive == 2 && s.services == 2 && s.chans_bound == 1 && s.heap_blocks_used == 8);
    exipc_chan_t *sc = NULL;
    CHECK_RC(exipc_accept(l, 1000000000, &sc), 0);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    /* The receiver drains what the dead peer sent, then learns of the death
     * (it reaps on the way). */
    exipc_handle_t hs[8];
    int64_t t0 = mono_ns();
    CHECK_RC(exipc_recv_batch(sc, hs, 8, 2000000000), 3);
    for (int i = 0; i < 3; i++)
        CHECK_RC(exipc_free(d, hs[i]), 0);
    CHECK_RC(exipc_recv(sc, hs, 2000000000), -EPIPE);
    CHECK(mono_ns() - t0 < 1000000000);
    /* Someone reaped it already: recv on its way, or the watcher, whose claim
     * closed our end (that may be what woke us) and which may still be at
     * it. exipc_reap waits for a reaper at work, so the counts below are
     * its commit's. */
    CHECK_RC(exipc_reap(d), 0);
    exipc_stat(d, &s);
    CHECK(s.procs_alive == 1 && s.services == 1 && s.heap_blocks_used == 0 && s.reaped_procs == 1);
    exipc_chan_close(sc);
    exipc_stat(d, &s);
    CHECK(s.chans_bound == 0);
    exipc_close(d);
    exipc_unlink(name);
    close(pfd[0]);
    close(pfd[1]);
}

/* A receiver pinned to one CPU still spins before it parks when the machine
 * has another CPU for its producer (the bench pins every C peer; so do many
 * deployments): only the policy decides, not the process's own affinity.
 * Run first, in a child that pins itself before anything asks for the CPUs. */
static void test_spin_when_pinned(void)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        fprintf(stderr, "test_spin_when_pinned: one CPU online, skipped\n");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(sched_getcpu(), &set);
        int bad = sched_setaffinity(0, sizeof set, &set) != 0;
        exipc_domain_t *d = NULL;
        const char *name = t_domain("spin");
        struct exipc_options o = {.size = 1 << 20};
        bad |= exipc_open(name, &o, &d) != 0;
        if (!bad) {
            bad |= recv_spin_ns(d) != SPIN_BEFORE_PARK_NS; /* adaptive, pinned: spins */
            d->wait_policy = EXIPC_WAIT_PARK;
            bad |= recv_spin_ns(d) != 0;
            exipc_close(d);
            exipc_unlink(name);
        }
        _exit(bad);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The copy of the last handle on the tail's line (ring.last_idx/last_h): a
 * receiver one message behind takes the handle from it, but only while the
 * index says it is that slot's; a copy that names another slot, or a forged
 * handle in it, costs nothing but -EBADMSG for that slot. */
static void test_last_copy(void)
{
    const char *name = t_domain("last");
    struct exipc_options o = {.size = 1 << 20, .ring_capacity = 8, .max_chans = 2};
    exipc_domain_t *srv = NULL, *cli = NULL;
    CHECK_RC(exipc_open(name, &o, &srv), 0);
    CHECK_RC(exipc_open(name, NULL, &cli), 0);
    exipc_listener_t *l = NULL;
    exipc_chan_t *cc = NULL, *sc = NULL;
    CHECK_RC(exipc_listen(srv, "svc", &l), 0);
    CHECK_RC(exipc_connect(cli, "svc", 0, &cc), 0);
    CHECK_RC(exipc_accept(l, 0, &sc), 0);
    if (cc == NULL || sc == NULL)
        return;
    struct ring *rg = cc->tx;
    exipc_handle_t h1, h2, got = 0;
    CHECK_RC(exipc_alloc(cli, 64, &h1), 0);
    CHECK_RC(exipc_alloc(cli, 64, &h2), 0);
    /* The plain case: the copy is the slot's. */
    CHECK_RC(exipc_send(cc, h1), 0);
    CHECK(ATOM_LOAD_RELAXED(&rg->last_idx) == 0 && ATOM_LOAD_RELAXED(&rg->last_h) == h1);
    CHECK_RC(exipc_recv(sc, &got, 0), 0);
    CHECK(got == h1);
    /* A copy naming another slot is not used, whatever handle it holds. */
    CHECK_RC(exipc_send(cc, h2), 0);
    ATOM_STORE_RELAXED(&rg->last_idx, 7u);
    ATOM_STORE_RELAXED(&rg->last_h, h1);
    CHECK_RC(exipc_recv(sc, &got, 0), 0);
    CHECK(got == h2);
    /* A forged handle under the right index is checked like a slot: refused,
     * the slot skipped, and the ring goes on. */
    CHECK_RC(exipc_send(sc, h1), 0);
    CHECK_RC(exipc_recv(cc, &h1, 0), 0);
    CHECK_RC(exipc_send(cc, h1), 0);
    ATOM_STORE_RELAXED(&rg->last_h, h2); /* the receiver's own block, not in flight */
    CHECK_RC(exipc_recv(sc, &got, 0), -EBADMSG);
    CHECK_RC(exipc_recv(sc, &got, 0), -EAGAIN);
    CHECK(exipc_ptr(srv, h2, NULL) != NULL); /* untouched: still the receiver's */
    /* The same through the slots, in a batch: a slot forged to hold a block
     * not in flight on this ring is refused and skipped, the next one taken. */
    exipc_handle_t h3, hs[4];
    CHECK_RC(exipc_alloc(cli, 64, &h3), 0);
    CHECK_RC(exipc_alloc(cli, 64, &h1), 0);
    uint64_t at = cc->tx_tail;
    CHECK_RC(exipc_send(cc, h3), 0);
    CHECK_RC(exipc_send(cc, h1), 0);
    ATOM_STORE_RELAXED(&rg->slots[at & cc->mask], h2);
    CHECK_RC(exipc_recv_batch(sc, hs, 4, 0), -EBADMSG);
    CHECK_RC(exipc_recv_batch(sc, hs, 4, 0), 1);
    CHECK(hs[0] == h1);
    CHECK(exipc_ptr(srv, h2, NULL) != NULL);
    CHECK_RC(exipc_free(srv, h2), 0);
    exipc_chan_close(cc);
    exipc_chan_close(sc);
    exipc_listener_close(l);
    exipc_close(cli);
    exipc_close(srv);
    exipc_unlink(name);
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    test_spin_when_pinned();
    test_names();
    test_open_stat();
    test_heap();
    test_binding();
    test_last_copy();
    test_incompatible();
    test_fork_and_reap();
    DONE();
}

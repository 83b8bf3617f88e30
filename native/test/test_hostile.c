/* test_hostile.c — a buggy or hostile peer: regression tests for what the
 * fuzzers and the scribbler found, planted files and names, and a peer that
 * takes every block, channel, service or process slot.
 *
 * The peer is a forked child (or a second domain handle) that writes into
 * the segment through its own raw mapping, as any process that maps the
 * domain can. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "../exipc_internal.h"
#include "../exipc_testhook.h"
#include "t.h"

#define MS 1000000ll

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* A raw read-write mapping of domain NAME's file, as a hostile peer has. */
static uint8_t *raw_map(const char *name, uint64_t len)
{
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return NULL;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

/* ---- the CQM lock ---------------------------------------------------------- */

struct scribble_arg {
    uint8_t *lock;
    size_t len;
    volatile int stop;
};

static void *scribble_lock(void *p)
{
    struct scribble_arg *a = p;
    uint64_t x = 0x1234567;
    while (!a->stop) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t off = x % a->len;
        __atomic_store_n(&a->lock[off], (uint8_t)(x >> 24), __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Regression (torture_scribble, region "lock"): the CQM lock was a robust
 * pthread mutex in the segment. A peer that scribbled on it made its holder
 * abort in glibc (assertions in pthread_mutex_timedlock.c and tpp.c: a PI
 * kind with a dead owner, a priority-protect kind with a bad ceiling), and
 * glibc writes through the robust-list pointers stored in a held mutex when
 * unlocking it. The lock is now an OFD lock plus two untrusted words: any
 * bytes there leave every call working. */
static void test_lock_scribbled(void)
{
    const char *name = t_domain("lock");
    struct exipc_options o = {.size = 64 << 10, .max_procs = 4, .max_chans = 4, .ring_capacity = 4, .max_block = 4096};
    struct exipc__layout L;
    CHECK_RC(exipc__layout_of(&o, &L), 0);
    exipc_domain_t *d = NULL, *e = NULL;
    CHECK_RC(exipc_open(name, &o, &d), 0);
    CHECK_RC(exipc_open(name, &o, &e), 0);
    uint8_t *m = raw_map(name, L.total_size);
    CHECK(m != NULL);
    if (d == NULL || e == NULL || m == NULL)
        return;
    /* Patterns that crashed glibc, then random ones, written while idle. */
    static const uint8_t fill[] = {0x00, 0xff, 0x10, 0x20, 0x40, 0x7f, 0x80, 0x33};
    int bad = 0;
    for (int i = 0; i < 400; i++) {
        uint8_t *lk = m + L.hdr_lock;
        for (size_t k = 0; k < L.hdr_lock_size; k++)
            lk[k] = i < 8 ? fill[i] : (uint8_t)rnd();
        exipc_listener_t *l = NULL;
        exipc_chan_t *c = NULL, *s = NULL;
        bad += exipc_listen(d, "svc", &l) != 0;
        bad += exipc_connect(e, "svc", 0, &c) != 0;
        bad += l && exipc_accept(l, 0, &s) != 0;
        bad += exipc_reap(e) != 0;
        if (s)
            exipc_chan_close(s);
        if (c)
            exipc_chan_close(c);
        if (l)
            exipc_listener_close(l);
    }
    CHECK(bad == 0);
    /* And while another thread scribbles on it without pause. */
    struct scribble_arg a = {.lock = m + L.hdr_lock, .len = L.hdr_lock_size};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, scribble_lock, &a) == 0);
    bad = 0;
    for (int i = 0; i < 2000; i++) {
        exipc_listener_t *l = NULL;
        int rc = exipc_listen(d, "svc2", &l);
        bad += rc != 0 && rc != -ETIMEDOUT;
        if (l)
            exipc_listener_close(l);
        rc = exipc_reap(e);
        bad += rc != 0 && rc != -ETIMEDOUT;
    }
    a.stop = 1;
    pthread_join(th, NULL);
    CHECK(bad == 0);
    munmap(m, L.total_size);
    exipc_close(e);
    exipc_close(d);
    exipc_unlink(name);
}

/* A holder that dies inside a change: the lock passes on at once (the
 * kernel drops the OFD lock), and the next holder repairs the change. */
static void test_lock_holder_dies(void)
{
    const char *name = t_domain("lockdie");
    struct exipc_options o = {.size = 64 << 10, .max_procs = 4, .max_chans = 4, .ring_capacity = 4, .max_block = 4096};
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, &o, &d), 0);
    if (d == NULL)
        return;
    exipc_listener_t *l = NULL;
    exipc_chan_t *c = NULL;
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        exipc_domain_t *cd = NULL;
        exipc_chan_t *cc = NULL;
        if (exipc_open(name, &o, &cd) != 0 || exipc_connect(cd, "svc", MS * 1000, &cc) != 0)
            _exit(2);
        /* Half a close: both ends marked closed, the channel not yet freed,
         * and the lock still held when the process dies. */
        if (cqm_lock(cd) != 0)
            _exit(3);
        struct chan *ch = D_CHAN(cd, cc->idx);
        ATOM_STORE_SEQCST(&ch->end[0].closed, 1u);
        ATOM_STORE_SEQCST(&ch->end[1].closed, 1u);
        char idx = (char)cc->idx;
        if (write(pfd[1], &idx, 1) != 1)
            _exit(4);
        pause(); /* killed here, holding the lock */
        _exit(5);
    }
    char idx = -1;
    CHECK(read(pfd[0], &idx, 1) == 1);
    CHECK(idx >= 0 && idx < 4);
    /* While the child holds the lock, a call with a timeout gives up. */
    int arc = exipc_accept(l, 0, &c);
    CHECK(arc == -ETIMEDOUT || arc == -EAGAIN);
    /* A connect gives up within its own timeout (plus slack), not the
     * lock's 2 s. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_RC(exipc_connect(d, "nobody", 20000000, &c), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec) < 1500000000ll);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    CHECK(exipc_reap(d) == 1); /* the lock passed on, the child is reaped */
    if (idx >= 0 && idx < 4)
        CHECK(ATOM_LOAD_ACQUIRE(&D_CHAN(d, (uint32_t)idx)->state) == CHAN_FREE); /* repaired */
    CHECK(ATOM_LOAD_RELAXED(&D_HDR(d)->lock.dirty) == 0);
    close(pfd[0]);
    close(pfd[1]);
    exipc_listener_close(l);
    exipc_close(d);
    exipc_unlink(name);
}

/* ---- planted files and names ------------------------------------------------- */

static void test_planted(void)
{
    const char *name = t_domain("plant"), *other = t_domain("plant-target");
    char path[256], opath[256];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    snprintf(opath, sizeof opath, "/dev/shm/exipc.%s", other);
    exipc_domain_t *d = NULL, *t = NULL;

    /* A symlink to another domain: refused, and the target not attached. */
    CHECK_RC(exipc_open(other, NULL, &t), 0);
    CHECK(symlink(opath, path) == 0);
    CHECK_RC(exipc_open(name, NULL, &d), -EACCES);
    struct exipc_stat st;
    if (t) {
        exipc_stat(t, &st);
        CHECK(st.procs_alive == 1);
    }
    unlink(path);
    /* A symlink to a file that does not exist: refused, nothing created. */
    CHECK(symlink("/dev/shm/exipc-planted-nothing", path) == 0);
    CHECK_RC(exipc_open(name, NULL, &d), -EACCES);
    CHECK(access("/dev/shm/exipc-planted-nothing", F_OK) != 0);
    unlink(path);
    /* A hard link to another domain's file is that domain: attaching works
     * (the file is the same); only its owner and mode decide. */
    /* A FIFO, a directory: refused, no hang. */
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_RC(exipc_open(name, NULL, &d), -EPROTO);
    unlink(path);
    CHECK(mkdir(path, 0700) == 0);
    CHECK(exipc_open(name, NULL, &d) < 0 && d == NULL);
    rmdir(path);
    /* Regression (FuzzAttach, empty input): an empty file nobody is creating
     * gave -EAGAIN, which exipc_open does not document. */
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
    CHECK(fd >= 0);
    close(fd);
    CHECK_RC(exipc_open(name, NULL, &d), -EPROTO);
    /* A short file with a header claiming ready. */
    fd = open(path, O_RDWR);
    uint32_t one = 1;
    CHECK(pwrite(fd, &one, 4, offsetof(struct seg_params, ready)) == 4);
    close(fd);
    CHECK_RC(exipc_open(name, NULL, &d), -EPROTO);
    unlink(path);
    if (t)
        exipc_close(t);
    exipc_unlink(other);
}

static void test_names(void)
{
    exipc_domain_t *d = NULL;
    char n201[202], s48[49];
    memset(n201, 'n', 201);
    n201[201] = 0;
    memset(s48, 's', 48);
    s48[48] = 0;
    const char *bad[] = {"", ".", "..", "../x", "x/..", "a/b", "/abs", ".hidden", "a\\b", "a b", "a:b",
                         "a*", "a\tb", "\xc3\xa9", n201};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(exipc_open(bad[i], NULL, &d), -EINVAL);
        CHECK_RC(exipc_unlink(bad[i]), -EINVAL);
    }
    CHECK(access("/dev/shm/exipc.", F_OK) != 0 && access("/dev/shm/x", F_OK) != 0);
    const char *name = t_domain("names");
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    if (d == NULL)
        return;
    exipc_listener_t *l = NULL;
    exipc_chan_t *c = NULL;
    const char *sbad[] = {"", "a/b", "..", "a b", s48, "\xff"};
    for (size_t i = 0; i < sizeof sbad / sizeof sbad[0]; i++) {
        CHECK_RC(exipc_listen(d, sbad[i], &l), -EINVAL);
        CHECK_RC(exipc_connect(d, sbad[i], 0, &c), -EINVAL);
    }
    s48[47] = 0; /* 47 is the longest service name */
    CHECK_RC(exipc_listen(d, s48, &l), 0);
    if (l)
        exipc_listener_close(l);
    exipc_close(d);
    exipc_unlink(name);
}

/* ---- exhaustion: a peer takes everything ---------------------------------------- */

/* The hog: a child that opens the domain and takes every block of one
 * class, every service slot left, every channel slot left and every process
 * slot left (through extra handles), then tells the parent and waits. */
static void hog(const char *name, const struct exipc_options *o, int wfd)
{
    exipc_domain_t *d = NULL;
    if (exipc_open(name, o, &d) != 0)
        _exit(2);
    exipc_handle_t h;
    int blocks = 0;
    while (exipc_alloc(d, 100, &h) == 0) /* class 112 B (slabs of 7 pages), until the arena is gone */
        blocks++;
    while (exipc_alloc(d, 64, &h) == 0) /* and the last page (slabs of 1 page) */
        blocks++;
    exipc_listener_t *l;
    char svc[48];
    int services = 0;
    for (int i = 0;; i++) {
        snprintf(svc, sizeof svc, "hog%d", i);
        if (exipc_listen(d, svc, &l) != 0)
            break;
        services++;
    }
    exipc_chan_t *c;
    int chans = 0;
    while (exipc_connect(d, "hog0", 0, &c) == 0)
        chans++;
    int procs = 1;
    exipc_domain_t *x;
    while (exipc_open(name, o, &x) == 0)
        procs++;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "%d %d %d %d", blocks, services, chans, procs);
    if (write(wfd, msg, (size_t)n) != n)
        _exit(3);
    pause();
    _exit(0);
}

static void test_exhaustion(void)
{
    const char *name = t_domain("hog");
    struct exipc_options o = {.size = 256 << 10, .max_procs = 6, .max_chans = 8, .ring_capacity = 4,
                              .max_block = 4096};
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, &o, &d), 0);
    if (d == NULL)
        return;
    exipc_listener_t *mine = NULL;
    CHECK_RC(exipc_listen(d, "mine", &mine), 0);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        hog(name, &o, pfd[1]);
    }
    close(pfd[1]);
    char msg[64] = {0};
    CHECK(read(pfd[0], msg, sizeof msg - 1) > 0);
    int blocks = 0, services = 0, chans = 0, procs = 0;
    CHECK(sscanf(msg, "%d %d %d %d", &blocks, &services, &chans, &procs) == 4);
    /* 64 pages: 9 slabs of 256 blocks of 112 B (7 pages each), then one of
     * 64 blocks of 64 B. */
    CHECK(blocks == 9 * 256 + 64 && services == 7 && chans == 8 && procs == 5);
    /* Everyone else gets a clear error, at once, and nothing breaks. */
    exipc_handle_t h;
    CHECK_RC(exipc_alloc(d, 100, &h), -ENOMEM);
    CHECK_RC(exipc_alloc(d, 4096, &h), -ENOMEM);
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(d, "another", &l), -EMFILE);
    exipc_chan_t *c = NULL;
    CHECK_RC(exipc_connect(d, "mine", MS, &c), -EMFILE);
    exipc_domain_t *x = NULL;
    CHECK_RC(exipc_open(name, &o, &x), -EMFILE);
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.procs_alive == 6 && st.services == 8 && st.chans_bound == 8);
    CHECK(st.heap_blocks_used == (uint64_t)blocks);
    /* The hog dies: its reaper gets everything back. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK_RC(exipc_reap(d), procs);
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.procs_alive == 1 && st.services == 1 && st.chans_bound == 0 && st.heap_blocks_used == 0);
    CHECK_RC(exipc_alloc(d, 100, &h), 0);
    CHECK_RC(exipc_free(d, h), 0);
    CHECK_RC(exipc_connect(d, "mine", MS, &c), 0);
    if (c)
        exipc_chan_close(c);
    close(pfd[0]);
    exipc_listener_close(mine);
    exipc_close(d);
    exipc_unlink(name);
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    test_lock_scribbled();
    test_lock_holder_dies();
    test_planted();
    test_names();
    test_exhaustion();
    DONE();
}

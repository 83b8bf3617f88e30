/*
 * test_inspect.c — the read-only inspector (exipc_inspect_*) and the reap
 * without a slot (exipc_inspect_reap), with real processes:
 *   - an absent name gives -ENOENT and creates nothing;
 *   - figures of a live domain: processes, services (pending connects),
 *     channels (queued each way, sent/received, full-ring refusals,
 *     wake-ups), heap by size class, allocations; the inspector takes no
 *     slot (procs_alive does not move while it is open);
 *   - a SIGKILLed member is seen dead, exipc_inspect_reap cleans it (1) and
 *     a second reap cleans none;
 *   - garbage, empty and truncated files named exipc.* give -EPROTO, and a
 *     domain whose tables a child scribbles on concurrently never crashes
 *     or hangs the inspector (alarm).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "exipc.h"
#include "t.h"

#define SEC 1000000000LL

static char path_buf[256];
static const char *shm_path(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "/dev/shm/exipc.%s", name);
    return path_buf;
}

static int find_proc(exipc_inspector_t *in, int32_t pid, struct exipc_proc_info *out)
{
    struct exipc_proc_info ps[64];
    int n = exipc_inspect_procs(in, ps, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (ps[i].pid == pid) {
            *out = ps[i];
            return 1;
        }
    return 0;
}

static void test_absent(void)
{
    const char *name = t_domain("absent");
    exipc_inspector_t *in = NULL;
    CHECK_RC(exipc_inspect_open(name, &in), -ENOENT);
    CHECK(in == NULL);
    CHECK(access(shm_path(name), F_OK) != 0); /* nothing created */
    CHECK_RC(exipc_inspect_reap(name), -ENOENT);
    CHECK(access(shm_path(name), F_OK) != 0);
    CHECK_RC(exipc_inspect_open("../etc", &in), -EINVAL);
}

static void test_figures(void)
{
    const char *name = t_domain("fig");
    struct exipc_options o = {.ring_capacity = 8};
    exipc_domain_t *d;
    CHECK_RC(exipc_open(name, &o, &d), 0);
    exipc_listener_t *l, *l2;
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    CHECK_RC(exipc_listen(d, "idle", &l2), 0);
    exipc_chan_t *cc, *sc, *pend;
    CHECK_RC(exipc_connect(d, "svc", SEC, &cc), 0);
    CHECK_RC(exipc_accept(l, SEC, &sc), 0);
    CHECK_RC(exipc_connect(d, "svc", SEC, &pend), 0); /* left pending */
    /* Fill the client's ring (8), then one refused send. */
    exipc_handle_t h;
    for (int i = 0; i < 8; i++) {
        CHECK_RC(exipc_alloc(d, 100, &h), 0);
        CHECK_RC(exipc_send(cc, h), 0);
    }
    CHECK_RC(exipc_alloc(d, 100, &h), 0);
    CHECK_RC(exipc_send(cc, h), -EAGAIN);
    CHECK_RC(exipc_send(cc, h), -EAGAIN);
    exipc_handle_t r[3];
    CHECK_RC(exipc_recv_batch(sc, r, 3, 0), 3);
    exipc_handle_t big;
    CHECK_RC(exipc_alloc(d, 5000, &big), 0);

    struct exipc_stat before;
    CHECK_RC(exipc_stat(d, &before), 0);
    exipc_inspector_t *in;
    CHECK_RC(exipc_inspect_open(name, &in), 0);
    struct exipc_stat st;
    CHECK_RC(exipc_inspect_stat(in, &st), 0);
    CHECK(st.procs_alive == 1 && before.procs_alive == 1); /* the inspector took no slot */
    CHECK(st.services == 2);
    CHECK(st.heap_blocks_used == before.heap_blocks_used);

    struct exipc_inspect_info info;
    CHECK_RC(exipc_inspect_info(in, &info), 0);
    CHECK(info.ring_capacity == 8 && info.max_procs == 64 && info.max_chans == 256);
    CHECK(info.creator_uid == (uint32_t)geteuid());
    CHECK(info.allocs == 10 && info.frees == 0);

    struct exipc_proc_info pi;
    CHECK(find_proc(in, getpid(), &pi));
    CHECK(pi.state == EXIPC_PROC_ALIVE);
    CHECK(pi.services == 2);
    CHECK(pi.chans == 3); /* client and server end of one channel, client end of the pending one */
    CHECK(pi.blocks_owned == 1 + 3 + 1); /* h, the three received, big */
    CHECK_RC(exipc_inspect_procs(in, NULL, 0), 1);

    struct exipc_service_info sv[4];
    CHECK_RC(exipc_inspect_services(in, sv, 4), 2);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        CHECK(sv[i].owner_pid == getpid());
        if (strcmp(sv[i].name, "svc") == 0) {
            CHECK(sv[i].pending == 1);
            seen |= 1;
        } else if (strcmp(sv[i].name, "idle") == 0) {
            CHECK(sv[i].pending == 0);
            seen |= 2;
        }
    }
    CHECK(seen == 3);

    struct exipc_chan_info ch[4];
    CHECK_RC(exipc_inspect_chans(in, ch, 4), 2);
    int bound = ch[0].state == EXIPC_CHAN_BOUND ? 0 : 1;
    struct exipc_chan_info *b = &ch[bound], *p = &ch[1 - bound];
    CHECK(b->state == EXIPC_CHAN_BOUND && p->state == EXIPC_CHAN_PENDING);
    CHECK(strcmp(b->service, "svc") == 0);
    CHECK(b->ring_capacity == 8);
    CHECK(b->queued[0] == 5 && b->queued[1] == 0);
    CHECK(b->end[0].sent == 8 && b->end[1].received == 3);
    CHECK(b->end[0].full_refusals == 2 && b->end[1].full_refusals == 0);
    CHECK(b->end[0].pid == getpid() && b->end[1].pid == getpid());
    CHECK(b->end[0].alive && b->end[1].alive && !b->end[0].closed);
    CHECK(p->end[1].slot == 0xffffffffu && p->end[1].pid == 0);

    struct exipc_heap_stat hs;
    CHECK_RC(exipc_inspect_heap(in, &hs), 0);
    /* 33 slab classes (64 B .. 16 KiB) and the large blocks' entry. 100 B
     * blocks take class 112 (slabs of 7 pages, 256 blocks); 5000 B, class
     * 5120 (slabs of 5 pages, 4 blocks). 32 MiB of 4 KiB pages; the largest
     * block is half the arena. */
    CHECK(hs.nclasses == 34);
    CHECK(hs.cls[3].size == 112 && hs.cls[3].blocks_used == 9 && hs.cls[3].slabs == 1);
    CHECK(hs.cls[3].blocks_free == 256 - 9);
    CHECK(hs.cls[25].size == 5120 && hs.cls[25].blocks_used == 1 && hs.cls[25].blocks_free == 3);
    CHECK(hs.page_size == 4096 && hs.pages_total == 8192 && hs.pages_free == 8192 - 7 - 5);
    CHECK(hs.largest_block == 16u << 20);
    struct exipc_heap_stat hd;
    CHECK_RC(exipc_heap_stat(d, &hd), 0);
    CHECK(memcmp(&hs, &hd, sizeof hs) == 0); /* a member's view is the same */

    exipc_inspect_close(in);

    exipc_unlink(name);
    exipc_close(d);
}

/* A child joins, allocates, and is SIGKILLed: dead, then reaped. */
static void test_killed(void)
{
    const char *name = t_domain("kill");
    exipc_domain_t *d;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        exipc_domain_t *cd;
        exipc_listener_t *cl;
        exipc_handle_t h;
        if (exipc_open(name, NULL, &cd) != 0 || exipc_listen(cd, "victim", &cl) != 0 ||
            exipc_alloc(cd, 64, &h) != 0)
            _exit(1);
        if (write(pfd[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    CHECK(read(pfd[0], &c, 1) == 1);
    close(pfd[0]);
    close(pfd[1]);
    exipc_inspector_t *in;
    CHECK_RC(exipc_inspect_open(name, &in), 0);
    struct exipc_proc_info pi;
    CHECK(find_proc(in, pid, &pi) && pi.state == EXIPC_PROC_ALIVE && pi.blocks_owned == 1 && pi.services == 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(find_proc(in, pid, &pi) && pi.state == EXIPC_PROC_DEAD);
    CHECK_RC(exipc_inspect_reap(name), 1);
    CHECK(!find_proc(in, pid, &pi));
    struct exipc_inspect_info info;
    CHECK_RC(exipc_inspect_info(in, &info), 0);
    CHECK(info.reaped_procs == 1);
    CHECK_RC(exipc_inspect_services(in, NULL, 0), 0);
    CHECK_RC(exipc_inspect_reap(name), 0);
    exipc_inspect_close(in);
    exipc_unlink(name);
    exipc_close(d);
}

/* A child parks in a receive; our send wakes it: one wake-up counted on the
 * sender's end, and the child's doorbell-free futex path left untouched. */
static void test_wakeup(void)
{
    const char *name = t_domain("wake");
    exipc_domain_t *d;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    exipc_listener_t *l;
    CHECK_RC(exipc_listen(d, "wk", &l), 0);
    pid_t pid = fork();
    if (pid == 0) {
        exipc_domain_t *cd;
        exipc_chan_t *c;
        exipc_handle_t h;
        struct exipc_options po = {.wait_policy = EXIPC_WAIT_PARK};
        if (exipc_open(name, &po, &cd) != 0 || exipc_connect(cd, "wk", SEC, &c) != 0)
            _exit(1);
        _exit(exipc_recv(c, &h, 10 * SEC) == 0 ? 0 : 2);
    }
    exipc_chan_t *sc;
    CHECK_RC(exipc_accept(l, 5 * SEC, &sc), 0);
    struct timespec ts = {0, 200000000}; /* the child parks meanwhile */
    nanosleep(&ts, NULL);
    exipc_handle_t h;
    CHECK_RC(exipc_alloc(d, 64, &h), 0);
    CHECK_RC(exipc_send(sc, h), 0);
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    exipc_inspector_t *in;
    CHECK_RC(exipc_inspect_open(name, &in), 0);
    struct exipc_chan_info ci[2];
    int n = exipc_inspect_chans(in, ci, 2);
    CHECK(n >= 1);
    if (n >= 1) {
        CHECK(ci[0].end[1].sent == 1 && ci[0].end[0].received == 1);
        CHECK(ci[0].end[1].wakeups == 1);
        CHECK(ci[0].end[0].wakeups == 0);
    }
    exipc_inspect_close(in);
    exipc_unlink(name);
    exipc_close(d);
}

static void write_file(const char *path, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (n > 0 && write(fd, buf, n) != (ssize_t)n))
        fprintf(stderr, "write %s failed\n", path);
    close(fd);
}

static void test_not_domains(void)
{
    const char *name = t_domain("garbage");
    exipc_inspector_t *in = NULL;
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 131 + 7);
    write_file(shm_path(name), junk, sizeof junk);
    CHECK_RC(exipc_inspect_open(name, &in), -EPROTO);
    CHECK_RC(exipc_inspect_reap(name), -EPROTO);
    write_file(shm_path(name), junk, 0);
    CHECK_RC(exipc_inspect_open(name, &in), -EPROTO);
    unlink(shm_path(name));

    /* A real domain cut short: the header is fine, the size is not. */
    const char *dn = t_domain("trunc");
    exipc_domain_t *d;
    CHECK_RC(exipc_open(dn, NULL, &d), 0);
    exipc_close(d);
    CHECK_RC(exipc_inspect_open(dn, &in), 0);
    if (in)
        exipc_inspect_close(in);
    CHECK(truncate(shm_path(dn), 100000) == 0);
    CHECK_RC(exipc_inspect_open(dn, &in), -EPROTO);
    CHECK(truncate(shm_path(dn), 64) == 0);
    CHECK_RC(exipc_inspect_open(dn, &in), -EPROTO);
    exipc_unlink(dn);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* A child scribbles random words over the tables (and, now and then, the
 * header) of a live domain while we inspect it over and over. Every call
 * must return, with 0/a count or a negative errno. */
static void test_scribbled(void)
{
    const char *name = t_domain("scrib");
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t member = fork();
    if (member == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a crashed inspector leaves nothing running */
        exipc_domain_t *d;
        exipc_listener_t *l;
        exipc_chan_t *cc, *sc;
        exipc_handle_t h;
        struct exipc_options o = {.max_chans = 16, .max_procs = 8, .size = 1 << 20, .max_block = 1 << 16};
        if (exipc_open(name, &o, &d) != 0 || exipc_listen(d, "s", &l) != 0 ||
            exipc_connect(d, "s", SEC, &cc) != 0 || exipc_accept(l, SEC, &sc) != 0)
            _exit(1);
        for (int i = 0; i < 4; i++)
            if (exipc_alloc(d, 64 << i, &h) != 0 || exipc_send(cc, h) != 0)
                _exit(1);
        if (write(pfd[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    CHECK(read(pfd[0], &c, 1) == 1);
    close(pfd[0]);
    close(pfd[1]);
    exipc_inspector_t *in;
    CHECK_RC(exipc_inspect_open(name, &in), 0);
    struct exipc_inspect_info info;
    CHECK_RC(exipc_inspect_info(in, &info), 0);
    exipc_inspect_close(in);
    int fd = open(shm_path(name), O_RDWR);
    struct stat sb;
    CHECK(fd >= 0 && fstat(fd, &sb) == 0);
    size_t len = (size_t)sb.st_size;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED);
    size_t tables = len - info.arena_size; /* everything before the arena */
    uint8_t hdr[256];
    memcpy(hdr, m, sizeof hdr);
    /* The whole table area as it was: a scribble stays until overwritten, so
     * once the process table is hit every later read of it is refused; put
     * it back after each refusal, so reads of partly scribbled tables keep
     * happening whatever the two processes' timing (under a loaded ASan run
     * the scribbler could hit it before the first read, and every read was
     * refused). */
    uint8_t *snap = malloc(tables);
    CHECK(snap != NULL);
    if (snap == NULL)
        return;
    memcpy(snap, m, tables);

    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            uint64_t v = rnd();
            size_t off = sizeof hdr + (size_t)(v % (tables - sizeof hdr - 8)) / 8 * 8;
            uint64_t w = rnd();
            switch (v >> 60) {
            case 0: w = 0; break;
            case 1: w = ~0ull; break;
            case 2: w &= 0xff; break;
            case 3: w = (w & 0xffffffff) | 0x100000000ull; break;
            case 4: case 5: case 6: w = (w & 3) | (w & 0x300000000ull); break; /* plausible states */
            default: break;
            }
            if ((v >> 36 & 0xffffff) == 0)
                off = (size_t)(v >> 20) % sizeof hdr / 8 * 8; /* the header, rarely */
            __atomic_store_n((uint64_t *)(m + off), w, __ATOMIC_RELAXED);
        }
    }
    alarm(60); /* a hang fails the test (SIGALRM kills it) */
    int calls = 0, errs = 0, tables_ok = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int rc = exipc_inspect_open(name, &in);
        calls++;
        if (rc != 0) {
            errs++;
            CHECK(rc == -EPROTO || rc == -ENOTSUP);
            memcpy(m, hdr, sizeof hdr); /* the header was hit: restore it, go on */
            continue;
        }
        struct exipc_stat st;
        struct exipc_proc_info ps[8];
        struct exipc_service_info ss[16];
        struct exipc_chan_info cs[16];
        struct exipc_heap_stat hs;
        int r;
        r = exipc_inspect_info(in, &info);
        CHECK(r == 0);
        r = exipc_inspect_stat(in, &st);
        CHECK(r == 0);
        r = exipc_inspect_procs(in, ps, 8);
        errs += r < 0;
        tables_ok += r >= 0;
        if (r < 0)
            memcpy(m, snap, tables);
        CHECK(r == -EPROTO || (r >= 0 && r <= 8));
        r = exipc_inspect_services(in, ss, 16);
        errs += r < 0;
        CHECK(r == -EPROTO || (r >= 0 && r <= 16));
        for (int i = 0; i < r && i < 16; i++)
            CHECK(memchr(ss[i].name, 0, sizeof ss[i].name) != NULL);
        r = exipc_inspect_chans(in, cs, 16);
        errs += r < 0;
        CHECK(r == -EPROTO || (r >= 0 && r <= 16));
        for (int i = 0; i < r && i < 16; i++) {
            CHECK(cs[i].queued[0] <= cs[i].ring_capacity && cs[i].queued[1] <= cs[i].ring_capacity);
            CHECK(memchr(cs[i].service, 0, sizeof cs[i].service) != NULL);
        }
        r = exipc_inspect_heap(in, &hs); /* a scribbled page table is -EPROTO */
        errs += r < 0;
        CHECK(r == -EPROTO || (r == 0 && hs.nclasses <= EXIPC_MAX_CLASSES));
        exipc_inspect_close(in);
    } while ((t1.tv_sec - t0.tv_sec) * SEC + (t1.tv_nsec - t0.tv_nsec) < 2 * SEC);
    alarm(0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    kill(member, SIGKILL);
    waitpid(member, NULL, 0);
    printf("scribbled: %d inspections, %d errors, %d table reads\n", calls, errs, tables_ok);
    CHECK(calls > 10);
    CHECK(errs > 0); /* the scribbles did reach the checks */
    CHECK(tables_ok > 0);
    free(snap);
    munmap(m, len);
    close(fd);
    exipc_unlink(name);
}

int main(void)
{
    t_prog = "test_inspect";
    test_absent();
    test_figures();
    test_killed();
    test_wakeup();
    test_not_domains();
    test_scribbled();
    DONE();
}

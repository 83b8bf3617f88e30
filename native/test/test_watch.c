/* test_watch.c — death and unlink heard from the kernel (watch.c), real
 * processes.
 *
 *   - a peer SIGKILLed while we are parked in exipc_recv, exipc_recv_batch
 *     or exipc_poll, as server and as client: the call returns -EPIPE, and
 *     it could only have heard of it from the watcher: the domain is fully
 *     watched, so its waits sleep without a slice (checked), and the timeout
 *     is 20 s;
 *   - the domain unlinked while we are parked in recv, accept, connect and
 *     poll: each returns -EIDRM, and so does every later call; opening the
 *     name again reaches the new domain;
 *   - a peer in another pid namespace (`unshare --pid --fork`, as root):
 *     the kernel cannot tell us by pid, the peer counts as unwatched, the
 *     waits fall back to their slices, and its death is still noticed.
 *   - a forked child that closes its copy of the handle closes its copies
 *     of the watcher's descriptors too (pidfds, epoll, eventfd, inotify, the
 *     domain file), and the parent's watcher still hears its peer die.
 * Detection times are printed, never asserted (these machines are noisy).
 */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "../exipc_internal.h"
#include "t.h"

#define SEC 1000000000ll

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* The peer process: attaches, then serves ("server": listen, accept) or
 * connects ("client"), says 'r' on stdout-pipe fd, and waits to be killed. */
static int peer_main(const char *role, const char *name, int up)
{
    exipc_domain_t *d;
    if (exipc_open(name, NULL, &d) != 0)
        return 10;
    exipc_chan_t *c = NULL;
    if (strcmp(role, "server") == 0) {
        exipc_listener_t *l;
        if (exipc_listen(d, "svc", &l) != 0)
            return 11;
        if (write(up, "l", 1) != 1)
            return 12;
        if (exipc_accept(l, 10 * SEC, &c) != 0)
            return 13;
    } else if (exipc_connect(d, "svc", 10 * SEC, &c) != 0) {
        return 14;
    }
    if (write(up, "r", 1) != 1)
        return 15;
    for (;;)
        pause();
}

struct peer {
    pid_t pid;
    int up;
};

/* Starts a peer process: forked, or exec'd under `unshare --pid --fork`. */
static struct peer start_peer(const char *self, const char *role, const char *name, bool other_ns)
{
    int p[2];
    if (pipe(p) != 0)
        abort();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (other_ns) {
            char fd[16];
            snprintf(fd, sizeof fd, "%d", p[1]);
            execlp("unshare", "unshare", "--pid", "--fork", "--kill-child", self, "peer", role, name, fd, (char *)NULL);
            _exit(127);
        }
        _exit(peer_main(role, name, p[1]));
    }
    close(p[1]);
    return (struct peer){pid, p[0]};
}

static char hear(struct peer *p)
{
    struct pollfd pf = {.fd = p->up, .events = POLLIN};
    char ch = 0;
    if (poll(&pf, 1, 10000) != 1 || read(p->up, &ch, 1) != 1)
        return 0;
    return ch;
}

static void stop_peer(struct peer *p)
{
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    close(p->up);
}

/* SIGKILLs victim after 50 ms, from another process (so that we are parked
 * by then); returns that process, for waitpid. */
static pid_t kill_soon(pid_t victim)
{
    fflush(stdout);
    pid_t killer = fork();
    if (killer == 0) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
        kill(victim, SIGKILL);
        _exit(0);
    }
    return killer;
}

/* Opens NAME, listens on "svc", starts a client peer (in another pid
 * namespace if other_ns) and accepts it. False if any step failed (the
 * checks say which); *d, *l, *c and *p are set as far as it got. */
static bool serve_one_client(const char *self, const char *name, bool other_ns, exipc_domain_t **d,
                             exipc_listener_t **l, exipc_chan_t **c, struct peer *p)
{
    *d = NULL, *l = NULL, *c = NULL;
    CHECK_RC(exipc_open(name, NULL, d), 0);
    if (*d == NULL)
        return false;
    CHECK_RC(exipc_listen(*d, "svc", l), 0);
    *p = start_peer(self, "client", name, other_ns);
    CHECK(hear(p) == 'r');
    CHECK_RC(exipc_accept(*l, 5 * SEC, c), 0);
    return *c != NULL;
}

static bool fully_watched(exipc_domain_t *d)
{
    return ATOM_LOAD_RELAXED(&d->watch.running) && ATOM_LOAD_RELAXED(&d->watch.unwatched) == 0 &&
           wait_slice_ns(d) == INT64_MAX;
}

/* mode 0: exipc_recv; 1: exipc_recv_batch; 2: exipc_poll then recv. */
static void test_peer_killed(const char *self, const char *our_role, int mode)
{
    const char *name = t_domain(our_role[0] == 's' ? "watch-srv" : "watch-cli");
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    if (d == NULL)
        return;
    exipc_listener_t *l = NULL;
    exipc_chan_t *c = NULL;
    struct peer p;
    if (strcmp(our_role, "server") == 0) {
        CHECK_RC(exipc_listen(d, "svc", &l), 0);
        p = start_peer(self, "client", name, false);
        CHECK(hear(&p) == 'r');
        CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    } else {
        p = start_peer(self, "server", name, false);
        CHECK(hear(&p) == 'l');
        CHECK_RC(exipc_connect(d, "svc", 5 * SEC, &c), 0);
        CHECK(hear(&p) == 'r');
    }
    CHECK(fully_watched(d)); /* so only the watcher can end the waits below */
    if (c == NULL) {
        stop_peer(&p);
        exipc_close(d);
        exipc_unlink(name);
        return;
    }
    /* Kill it a moment after we park. */
    pid_t killer = kill_soon(p.pid);
    int64_t t0 = mono();
    exipc_handle_t hs[4];
    int rc;
    if (mode == 0) {
        rc = exipc_recv(c, hs, 20 * SEC);
    } else if (mode == 1) {
        rc = exipc_recv_batch(c, hs, 4, 20 * SEC);
    } else {
        struct exipc_pollitem it = {.chan = c};
        rc = exipc_poll(d, &it, 1, 20 * SEC);
        CHECK_RC(rc, 1);
        CHECK(it.ready);
        rc = exipc_recv(c, hs, 0);
    }
    int64_t dt = mono() - t0 - 50 * 1000000;
    CHECK_RC(rc, -EPIPE);
    static const char *how[] = {"exipc_recv", "exipc_recv_batch", "exipc_poll"};
    printf("test_watch: %s as %s: peer's SIGKILL seen after %.2f ms\n", how[mode], our_role, (double)dt / 1e6);
    waitpid(killer, NULL, 0);
    waitpid(p.pid, NULL, 0);
    close(p.up);
    /* The watcher reaped it: its claim closed our end (that woke us); wait
     * for its commit, then count. */
    CHECK_RC(exipc_reap(d), 0);
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.procs_alive == 1 && st.reaped_procs == 1);
    exipc_chan_close(c);
    if (l)
        exipc_listener_close(l);
    exipc_close(d);
    exipc_unlink(name);
}

/* Unlinks NAME after 50 ms, from another process. */
static pid_t unlink_soon(const char *name)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
        _exit(exipc_unlink(name) == 0 ? 0 : 1);
    }
    return pid;
}

static void test_unlinked(int mode)
{
    static const char *how[] = {"exipc_recv", "exipc_accept", "exipc_connect", "exipc_poll"};
    const char *name = t_domain("watch-unlink");
    exipc_domain_t *d = NULL, *e = NULL;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    CHECK_RC(exipc_open(name, NULL, &e), 0); /* a second handle: its own watcher */
    if (d == NULL || e == NULL)
        return;
    exipc_listener_t *l = NULL;
    exipc_chan_t *c = NULL, *s = NULL;
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    CHECK_RC(exipc_connect(e, "svc", 5 * SEC, &c), 0);
    CHECK_RC(exipc_accept(l, 5 * SEC, &s), 0);
    pid_t u = unlink_soon(name);
    int64_t t0 = mono();
    exipc_handle_t h;
    int rc;
    exipc_chan_t *c2 = NULL;
    if (mode == 0) {
        rc = exipc_recv(c, &h, 20 * SEC);
    } else if (mode == 1) {
        rc = exipc_accept(l, 20 * SEC, &c2);
    } else if (mode == 2) {
        rc = exipc_connect(e, "nobody-listens", 20 * SEC, &c2);
    } else {
        struct exipc_pollitem it = {.chan = c};
        rc = exipc_poll(e, &it, 1, 20 * SEC);
    }
    int64_t dt = mono() - t0 - 50 * 1000000;
    CHECK_RC(rc, -EIDRM);
    printf("test_watch: %s: unlink seen after %.2f ms\n", how[mode], (double)dt / 1e6);
    int st = 0;
    waitpid(u, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The other handle hears of it on its own (its watcher thread): wait
     * for that, bounded (either handle may be the one that saw it: the
     * accept waits on d, the others on e). Then later calls say so too, on
     * both handles; closing still works. */
    struct exipc_stat dst;
    for (int i = 0; i < 5000 && (exipc_stat(d, &dst) == 0 || exipc_stat(e, &dst) == 0); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    exipc_handle_t b;
    CHECK_RC(exipc_alloc(d, 8, &b), -EIDRM);
    CHECK_RC(exipc_send(s, 1), -EIDRM);
    CHECK_RC(exipc_recv(c, &h, 0), -EIDRM);
    exipc_chan_t *c3 = NULL;
    CHECK_RC(exipc_connect(e, "svc", 0, &c3), -EIDRM);
    /* Reopening the name reaches a new domain. */
    exipc_domain_t *f = NULL;
    CHECK_RC(exipc_open(name, NULL, &f), 0);
    if (f) {
        struct exipc_stat fs;
        CHECK_RC(exipc_stat(f, &fs), 0);
        CHECK(fs.procs_alive == 1 && fs.services == 0); /* not the old one */
        exipc_close(f);
    }
    exipc_chan_close(c);
    exipc_chan_close(s);
    exipc_listener_close(l);
    CHECK_RC(exipc_close(e), 0);
    CHECK_RC(exipc_close(d), 0);
    exipc_unlink(name);
}

/* A client in another pid namespace: not watchable by pid; its death is
 * still noticed, by the slices. */
static void test_other_pidns(const char *self)
{
    if (geteuid() != 0 || system("unshare --pid --fork true >/dev/null 2>&1") != 0) {
        printf("test_watch: skipped the pid-namespace case: needs root and unshare --pid\n");
        return;
    }
    const char *name = t_domain("watch-ns");
    exipc_domain_t *d;
    exipc_listener_t *l;
    exipc_chan_t *c;
    struct peer p;
    serve_one_client(self, name, true, &d, &l, &c, &p);
    if (d == NULL)
        return;
    CHECK(ATOM_LOAD_RELAXED(&d->watch.unwatched) != 0); /* the kernel cannot tell us */
    CHECK(wait_slice_ns(d) == WAIT_SLICE_NS);           /* so the waits are sliced */
    if (c != NULL) {
        pid_t killer = kill_soon(p.pid); /* unshare: --kill-child takes its child along */
        int64_t t0 = mono();
        exipc_handle_t h;
        CHECK_RC(exipc_recv(c, &h, 20 * SEC), -EPIPE);
        printf("test_watch: peer in another pid namespace: SIGKILL seen after %.2f ms (timed fallback)\n",
               (double)(mono() - t0 - 50 * 1000000) / 1e6);
        waitpid(killer, NULL, 0);
        exipc_chan_close(c);
    }
    waitpid(p.pid, NULL, 0);
    close(p.up);
    exipc_listener_close(l);
    exipc_close(d);
    exipc_unlink(name);
}

static void *idle_recv(void *arg)
{
    exipc_handle_t h;
    return (void *)(intptr_t)exipc_recv(arg, &h, 30 * SEC); /* ends with -EPIPE when the peer goes */
}

/* A process parked in exipc_recv, its peer alive, makes no system call:
 * strace -c -f over 2 s counts what its threads (the receiver, the watcher)
 * do. Attaching restarts each blocked call once; a 20 ms slice would be a
 * hundred calls. */
static void test_idle_syscalls(const char *self)
{
    if (system("command -v strace >/dev/null 2>&1") != 0) {
        printf("test_watch: skipped the idle system-call count: strace is not installed\n");
        return;
    }
    const char *name = t_domain("watch-idle");
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(name, NULL, &d), 0);
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    struct peer p = start_peer(self, "client", name, false); /* connects, then sleeps */
    CHECK(hear(&p) == 'r');
    exipc_chan_t *c = NULL;
    CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, idle_recv, c) == 0);
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    char out[128], cmd[512];
    snprintf(out, sizeof out, "/tmp/test_watch_strace.%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "timeout -s INT 2 strace -f -c -o %s -p %d -e trace=all >/dev/null 2>&1", out,
             (int)getpid());
    (void)!system(cmd);
    long calls = -1;
    FILE *f = fopen(out, "r");
    if (f) {
        char line[256];
        calls = 0;
        while (fgets(line, sizeof line, f)) {
            long sec_us, n;
            double pct, secs;
            char sys[64];
            if (strstr(line, "total") == NULL && sscanf(line, "%lf %lf %ld %ld %63s", &pct, &secs, &sec_us, &n, sys) == 5)
                calls += n;
        }
        fclose(f);
        unlink(out);
    }
    printf("test_watch: system calls of a process parked in exipc_recv over 2 s (strace -c): %ld\n", calls);
    CHECK(calls >= 0 && calls <= 12);
    stop_peer(&p);
    pthread_join(t, NULL);
    exipc_chan_close(c);
    exipc_listener_close(l);
    exipc_close(d);
    exipc_unlink(name);
}

/* Descriptors of this process that are the watcher's kind of file, or the
 * domain's file at `path`. */
static int watcher_fds(const char *path)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char fdp[300], to[4096];
        snprintf(fdp, sizeof fdp, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(fdp, to, sizeof to - 1);
        if (k <= 0)
            continue;
        to[k] = '\0';
        if (strcmp(to, "anon_inode:[pidfd]") == 0 || strcmp(to, "anon_inode:[eventpoll]") == 0 ||
            strcmp(to, "anon_inode:[eventfd]") == 0 || strcmp(to, "anon_inode:inotify") == 0 || strcmp(to, path) == 0)
            n++;
    }
    closedir(dir);
    return n;
}

static void test_forked_close(const char *self)
{
    const char *name = t_domain("watch-fork");
    exipc_domain_t *d;
    exipc_listener_t *l;
    exipc_chan_t *c;
    struct peer p;
    serve_one_client(self, name, false, &d, &l, &c, &p);
    if (d == NULL)
        return;
    CHECK(fully_watched(d));
    char path[EXIPC_NAME_MAX + 32];
    snprintf(path, sizeof path, EXIPC_PATH_PREFIX "%s", name);
    int before = watcher_fds(path);
    CHECK(before >= 4); /* the file, epoll, the stop eventfd, inotify, the peer's pidfd */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        int had = watcher_fds(path);
        exipc_close(d); /* the forked child's copy: local resources only */
        int left = watcher_fds(path);
        _exit(had == before && left == 0 ? 0 : 10 + (left > 9 ? 9 : left));
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        printf("test_watch: forked child kept %d watcher descriptors after exipc_close\n", WEXITSTATUS(status) - 10);
    /* Ours are untouched: the peer's death still reaches a parked receive. */
    CHECK(fully_watched(d));
    pid_t killer = kill_soon(p.pid);
    exipc_handle_t h;
    CHECK_RC(exipc_recv(c, &h, 20 * SEC), -EPIPE);
    waitpid(killer, NULL, 0);
    waitpid(p.pid, NULL, 0);
    close(p.up);
    exipc_chan_close(c);
    exipc_listener_close(l);
    exipc_close(d);
    exipc_unlink(name);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "peer") == 0)
        return peer_main(argv[2], argv[3], atoi(argv[4]));
    t_prog = "test_watch";
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    for (int mode = 0; mode < 3; mode++) {
        test_peer_killed(self, "server", mode);
        test_peer_killed(self, "client", mode);
    }
    for (int mode = 0; mode < 4; mode++)
        test_unlinked(mode);
    test_other_pidns(self);
    test_idle_syscalls(self);
    test_forked_close(self);
    DONE();
}

/*
 * test_stream_xproc.c — C<->C stream across two real processes.
 *
 * Runs `peer recv` and `peer send` (native/test/peer.c, protocol described
 * there) as two exec'd processes on a fresh domain, then checks that both
 * exit 0, that both print the same checksum and count, and that these match
 * the checksum this driver computes from the protocol itself. Afterwards the
 * domain must be clean (no blocks used, no channels bound, only us alive),
 * and the driver unlinks it. Three streams: "tiny" (1 message: the sender
 * connects, sends, closes and exits before the receiver gets round to
 * accepting), "sender-first" (the sender starts 50 ms before the receiver and
 * waits for the service), and the main one.
 *
 *   test_stream_xproc [NSMALL [NBIG]]     defaults 1000000 and 1000
 *   EXIPC_C_PEER=path/to/peer             default: "peer" beside this program
 *
 * Exit 0 pass, 1 fail. Prints `N passed, N failed` last.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exipc.h"

#define SEC 1000000000LL
#define DEADLINE_NS (300 * SEC)

static int passed, failed;

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s - ", cond ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (cond)
        passed++;
    else
        failed++;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* The checksum line the protocol says both peers must print. */
static void expected(uint64_t nsmall, uint64_t nbig, char *out, size_t cap)
{
    uint64_t h = 0xcbf29ce484222325ULL, total = nsmall + nbig;
    for (uint64_t i = 0; i < total; i++) {
        uint64_t len = i < nsmall ? 8 + i % 57 : 65536;
        for (uint64_t j = 0; j < len; j++) {
            uint8_t b = j < 8 ? (uint8_t)(i >> (8 * j)) : (uint8_t)(i * 131 + j * 7);
            h ^= b;
            h *= 0x100000001b3ULL;
        }
    }
    snprintf(out, cap, "checksum=%016llx count=%llu", (unsigned long long)h, (unsigned long long)total);
}

struct child {
    const char *role;
    pid_t pid;
    int out;       /* read end of its stdout */
    int status;
    int done;
    char line[256];
};

static int spawn(struct child *c, const char *peer, const char *domain, const char *service, const char *ns,
                 const char *nb)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(peer, peer, c->role, domain, service, ns, nb, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", peer, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    c->pid = pid;
    c->out = p[0];
    return 0;
}

static void read_line(struct child *c)
{
    size_t n = 0;
    ssize_t r;
    while (n < sizeof c->line - 1 && (r = read(c->out, c->line + n, sizeof c->line - 1 - n)) > 0)
        n += (size_t)r;
    c->line[n] = 0;
    char *nl = strchr(c->line, '\n');
    if (nl)
        *nl = 0;
    close(c->out);
}

static const char *describe(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, cap, "status %#x", status);
    return buf;
}

/* One stream between two peer processes, checked end to end. */
static void run_stream(const char *what, const char *peer, uint64_t nsmall, uint64_t nbig, int sender_first,
                       int64_t deadline_ns)
{
    char domain[64], ns[32], nb[32], want[128];
    static int run;
    snprintf(domain, sizeof domain, "test-stream-xproc.%d.%d", (int)getpid(), ++run);
    snprintf(ns, sizeof ns, "%" PRIu64, nsmall);
    snprintf(nb, sizeof nb, "%" PRIu64, nbig);
    expected(nsmall, nbig, want, sizeof want);
    printf("# %s: %s small + %s big messages, %s starts first, domain %s\n", what, ns, nb, sender_first ? "sender" : "receiver", domain);

    struct child ch[2] = {{.role = "recv"}, {.role = "send"}};
    int64_t t0 = now_ns();
    for (int k = 0; k < 2; k++) {
        int i = sender_first ? 1 - k : k;
        if (k == 1 && sender_first) {
            struct timespec ts = {0, 50000000}; /* let the sender wait for the service */
            nanosleep(&ts, NULL);
        }
        if (spawn(&ch[i], peer, domain, "stream", ns, nb) < 0) {
            perror("spawn");
            if (k == 1) {
                kill(ch[1 - i].pid, SIGKILL);
                waitpid(ch[1 - i].pid, NULL, 0);
            }
            exipc_unlink(domain);
            exit(1);
        }
    }

    /* Wait for both, within the deadline. */
    int64_t t_end = 0;
    int timed_out = 0;
    while (!ch[0].done || !ch[1].done) {
        for (int i = 0; i < 2; i++) {
            if (ch[i].done)
                continue;
            pid_t r = waitpid(ch[i].pid, &ch[i].status, WNOHANG);
            if (r == ch[i].pid) {
                ch[i].done = 1;
                t_end = now_ns();
            }
        }
        if (!ch[0].done || !ch[1].done) {
            if (now_ns() - t0 > deadline_ns) {
                timed_out = 1;
                for (int i = 0; i < 2; i++)
                    if (!ch[i].done) {
                        kill(ch[i].pid, SIGKILL);
                        waitpid(ch[i].pid, &ch[i].status, 0);
                        ch[i].done = 1;
                    }
                break;
            }
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
    double secs = (double)(t_end - t0) / 1e9;
    for (int i = 0; i < 2; i++)
        read_line(&ch[i]);

    char sb[64];
    ok(!timed_out, "%s: both peers finished within %lld s", what, (long long)(deadline_ns / SEC));
    for (int i = 0; i < 2; i++)
        ok(WIFEXITED(ch[i].status) && WEXITSTATUS(ch[i].status) == 0, "%s: peer %s: %s", what, ch[i].role,
           describe(ch[i].status, sb, sizeof sb));
    ok(strcmp(ch[0].line, ch[1].line) == 0, "%s: same line from both: recv \"%s\", send \"%s\"", what, ch[0].line, ch[1].line);
    ok(strcmp(ch[1].line, want) == 0, "%s: sender's line is the protocol's: \"%s\"", what, want);

    /* After both are gone the domain must be clean. */
    exipc_domain_t *d;
    int r = exipc_open(domain, NULL, &d);
    ok(r == 0, "%s: attach after the peers left: %s", what, exipc_strerror(r));
    if (r == 0) {
        struct exipc_stat st;
        memset(&st, 0xff, sizeof st);
        r = exipc_stat(d, &st);
        ok(r == 0 && st.procs_alive == 1 && st.chans_bound == 0 && st.services == 0 && st.heap_blocks_used == 0,
           "%s: domain clean afterwards: procs_alive %u chans_bound %u services %u heap_blocks_used %llu", what, st.procs_alive,
           st.chans_bound, st.services, (unsigned long long)st.heap_blocks_used);
        exipc_close(d);
    }
    r = exipc_unlink(domain);
    ok(r == 0, "%s: unlink: %s", what, exipc_strerror(r));
    char path[128];
    struct stat sst;
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", domain);
    ok(stat(path, &sst) < 0 && errno == ENOENT, "%s: %s is gone", what, path);

    uint64_t total = nsmall + nbig;
    double bytes = 0;
    for (uint64_t i = 0; i < nsmall; i++)
        bytes += (double)(8 + i % 57);
    bytes += (double)nbig * 65536;
    if (!timed_out && secs > 0)
        printf("# %s: %" PRIu64 " messages, %.1f MB in %.2f s: %.0f messages/s, %.0f MB/s\n", what, total, bytes / 1e6, secs,
               (double)total / secs, bytes / 1e6 / secs);
}

int main(int argc, char **argv)
{
    uint64_t nsmall = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    uint64_t nbig = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
    setvbuf(stdout, NULL, _IOLBF, 0);

    char peer[PATH_MAX];
    const char *env = getenv("EXIPC_C_PEER");
    if (env && *env) {
        snprintf(peer, sizeof peer, "%s", env);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0) {
            perror("readlink /proc/self/exe");
            return 1;
        }
        self[n] = 0;
        snprintf(peer, sizeof peer, "%s/peer", dirname(self));
    }
    if (access(peer, X_OK) != 0) {
        printf("FAIL - peer program %s: %s (set EXIPC_C_PEER)\n", peer, strerror(errno));
        printf("0 passed, 1 failed\n");
        return 1;
    }

    /* A sender that is done (and gone) before the receiver accepts: the
     * channel waits in the backlog and nothing sent is lost. */
    run_stream("tiny", peer, 1, 0, 0, 60 * SEC);
    /* A sender that starts first waits for the service. */
    run_stream("sender-first", peer, 1000, 10, 1, 60 * SEC);
    run_stream("stream", peer, nsmall, nbig, 0, DEADLINE_NS);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

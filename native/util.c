/*
 * util.c — clocks, futexes, names, liveness locks, fork detection, errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"

#ifdef EXIPC_TESTING
void (*exipc__kill_point)(const char *point); /* see KILL_POINT */
int exipc__no_watch; /* see watch_peer */
#endif

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Sleeps while *addr == val, at most timeout_ns (< 0: no limit). The word is
 * in shared memory, so no FUTEX_PRIVATE_FLAG. Returns 0 when woken or the
 * value differed, -ETIMEDOUT, or -EINTR. */
int futex_wait(uint32_t *addr, uint32_t val, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000ll;
        ts.tv_nsec = timeout_ns % 1000000000ll;
        tsp = &ts;
    }
    long rc = syscall(SYS_futex, addr, FUTEX_WAIT, val, tsp, NULL, 0);
    if (rc == 0 || errno == EAGAIN)
        return 0;
    return -errno;
}

void futex_wake(uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* CPUs this process may run on, computed once. */
int ncpus(void)
{
    static int n; /* benign race: every thread computes the same value */
    int v = ATOM_LOAD_RELAXED(&n);
    if (v == 0) {
        cpu_set_t set;
        v = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
        ATOM_STORE_RELAXED(&n, v);
    }
    return v;
}

/* CPUs online on the machine, computed once: where a peer process may run,
 * whatever this process's own affinity. */
int online_cpus(void)
{
    static int n; /* benign race: every thread computes the same value */
    int v = ATOM_LOAD_RELAXED(&n);
    if (v == 0) {
        long k = sysconf(_SC_NPROCESSORS_ONLN);
        v = k > 0 && k < 1 << 20 ? (int)k : 2;
        ATOM_STORE_RELAXED(&n, v);
    }
    return v;
}

int futex_wait_slice(uint32_t *addr, uint32_t seen, int64_t deadline, int64_t slice)
{
    int64_t now = now_ns();
    if (now >= deadline)
        return WAIT_DEADLINE;
    int64_t left = deadline - now;
    bool sliced = slice < left;
    int rc = futex_wait(addr, seen, !sliced ? (deadline == INT64_MAX ? -1 : left) : slice);
    if (rc == -ETIMEDOUT && !sliced)
        return now_ns() >= deadline ? WAIT_DEADLINE : WAIT_WOKEN;
    return rc == -ETIMEDOUT ? WAIT_SLICE : WAIT_WOKEN;
}

void bump_wake(uint32_t *addr)
{
    ATOM_FETCH_ADD(addr, 1u);
    futex_wake(addr, 0x7fffffff);
}

/* The ringer's half of the doorbell's Dekker pair (the waiter's is
 * doorbell_sleep in wait.c): the work is visible before the seq_cst bump,
 * and a waiter that set DOORBELL_ASLEEP before the bump is woken; one that
 * sets it after sees the new count and does not sleep. */
void doorbell_bump(uint32_t *db)
{
    uint32_t old = __atomic_fetch_add(db, DOORBELL_STEP, __ATOMIC_SEQ_CST);
    if ((old & DOORBELL_ASLEEP) == 0)
        return;
    __atomic_fetch_and(db, ~DOORBELL_ASLEEP, __ATOMIC_SEQ_CST);
    futex_wake(db, 0x7fffffff);
}

bool valid_name(const char *s, size_t max)
{
    if (s == NULL || s[0] == '\0' || s[0] == '.')
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == '-';
        if (!ok || n >= max)
            return false;
    }
    return true;
}

/* Is process slot `slot` held by a live process other than ourselves? The
 * kernel drops an OFD lock when the last descriptor of its open file goes,
 * which happens when the process dies, whatever its pid namespace. F_OFD_GETLK
 * does not report our own description's lock, so our own slot is answered
 * from local knowledge. */
bool slot_alive(exipc_domain_t *d, uint32_t slot)
{
    if (slot >= d->L.max_procs)
        return false;
    if (slot == d->slot)
        return true;
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = LIVENESS_BASE + slot,
        .l_len = 1,
    };
    if (fcntl(d->fd, F_OFD_GETLK, &fl) != 0)
        return true; /* cannot tell: assume alive, never reap on doubt */
    return fl.l_type != F_UNLCK;
}

/* Is slot `slot`, registered with generation `gen`, a live process? */
bool proc_alive(exipc_domain_t *d, uint32_t slot, uint32_t gen)
{
    if (slot >= d->L.max_procs)
        return false;
    struct proc_slot *p = D_PROC(d, slot);
    return ATOM_LOAD_ACQUIRE(&p->state) == PROC_ALIVE && ATOM_LOAD_RELAXED(&p->gen) == gen && /* P1 -> P1': slot fields before state */
           slot_alive(d, slot);
}

/* fork() gives the child the parent's mapping and the parent's open file
 * description, hence its liveness lock: a child that used the domain would
 * pass for its parent. Every CQM call and the data plane check this counter,
 * bumped in the child by pthread_atfork, and refuse with -EBADF. */
uint64_t exipc__fork_generation; /* hidden (not exported): check_fork reads it inline */

static void on_fork_child(void)
{
    ATOM_FETCH_ADD(&exipc__fork_generation, 1);
}

__attribute__((constructor)) static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

uint64_t exipc_fork_generation(void)
{
    return ATOM_LOAD_RELAXED(&exipc__fork_generation);
}

/* The one table of error texts: exipc_strerror in C, and the Go errors'
 * texts (native/errors.go takes them from here). Every code an exipc call
 * returns has its own line. */
static const struct {
    int code;
    const char *text;
} error_texts[] = {
    {0, "success"},
    {-EAGAIN, "would block: ring full, or nothing to receive or accept"},
    {-EPIPE, "peer closed or dead"},
    {-ETIMEDOUT, "timed out"},
    {-ENOMEM, "heap full"},
    {-EMSGSIZE, "larger than the largest block this domain can give"},
    {-EBADMSG, "bad handle"},
    {-EPROTO, "malformed data from another process (shared state or message failed a check)"},
    {-ENOENT, "no such service or domain"},
    {-EEXIST, "service already exists"},
    {-EINVAL, "invalid argument"},
    {-ENOTSUP, "incompatible domain layout (version or cache-line size)"},
    {-ENOSPC, "no space left in /dev/shm"},
    {-EMFILE, "domain table full (processes, services or channels)"},
    {-EBADF, "domain used in a forked child"},
    {-EACCES, "permission denied: the domain belongs to another user or its mode refuses us"},
    {-EIDRM, "domain unlinked while attached: reopen it by name"},
    {-EREMOTEIO, "the stub server answered with an error reply"},
    {-ENOSYS, "no stub handler for this op"},
    {-EIO, "the stub handler failed"},
    {-EINTR, "interrupted"},
};

const char *exipc_strerror(int err)
{
    for (size_t i = 0; i < sizeof error_texts / sizeof error_texts[0]; i++)
        if (error_texts[i].code == err)
            return error_texts[i].text;
    if (err > 0)
        return "not an error code";
    /* A system call's errno passed through (open, mmap, ...): the C
     * library's text, which is thread-safe (unlike strerror). */
    const char *sys = strerrordesc_np(-err);
    return sys != NULL ? sys : "unknown error";
}

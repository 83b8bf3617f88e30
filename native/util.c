/*
 * util.c — clocks, futexes, names, liveness locks, fork detection, errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "exipc_internal.h"

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

/* fork() gives the child the parent's mapping and the parent's open file
 * description, hence its liveness lock: a child that used the domain would
 * pass for its parent. Every CQM call and the data plane check this counter,
 * bumped in the child by pthread_atfork, and refuse with -EBADF. */
static uint64_t fork_generation;

static void on_fork_child(void)
{
    ATOM_FETCH_ADD(&fork_generation, 1);
}

__attribute__((constructor)) static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

uint64_t exipc_fork_generation(void)
{
    return ATOM_LOAD_RELAXED(&fork_generation);
}

int check_fork(exipc_domain_t *d)
{
    return d->fork_gen == ATOM_LOAD_RELAXED(&fork_generation) ? 0 : -EBADF;
}

const char *exipc_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case -EAGAIN: return "would block (ring full or empty)";
    case -EPIPE: return "peer closed or dead";
    case -ETIMEDOUT: return "timed out";
    case -ENOMEM: return "heap full";
    case -EMSGSIZE: return "larger than the largest block the domain can give";
    case -EBADMSG: return "bad handle";
    case -EPROTO: return "shared state corrupt";
    case -ENOENT: return "no such service or domain";
    case -EEXIST: return "service exists";
    case -EINVAL: return "invalid argument";
    case -ENOTSUP: return "incompatible segment layout";
    case -ENOSPC: return "no space in /dev/shm";
    case -EMFILE: return "table full (processes, services or channels)";
    case -EBADF: return "domain used in a forked child";
    case -EACCES: return "permission denied";
    default: break;
    }
    if (err > 0)
        return "not an error code";
    return "unknown error";
}

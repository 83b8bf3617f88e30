/* test_perm.c — file modes and owners across real users.
 *
 * Runs only as root (exit 77 otherwise): it creates the unprivileged system
 * user `exipc-test` if it does not exist (useradd; the user is left in place,
 * so that concurrent runs do not race to delete it) and runs the other side
 * of each check in a forked child that has dropped to that user. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "exipc.h"
#include "t.h"

#define USER "exipc-test"
#define SEC 1000000000ll

static uid_t uid;
static gid_t gid;

/* Runs fn(arg) in a child that has become USER (with the supplementary
 * groups given, none by default); returns fn's result (or -1000 - signal). */
static int as_user(int (*fn)(const char *), const char *arg, const gid_t *groups, int ngroups)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups((size_t)ngroups, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
            _exit(200);
        if (getuid() != uid || geteuid() != uid)
            _exit(201);
        int rc = fn(arg);
        _exit(rc < 0 ? -rc : rc == 0 ? 0 : 202);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        return -1000 - WTERMSIG(st);
    return WEXITSTATUS(st) == 0 ? 0 : -WEXITSTATUS(st);
}

static int try_open(const char *name)
{
    exipc_domain_t *d = NULL;
    int rc = exipc_open(name, NULL, &d);
    if (rc == 0)
        exipc_close(d);
    return rc;
}

/* Attaches, connects to the creator's service "svc" and sends one block. */
static int open_and_send(const char *name)
{
    exipc_domain_t *d = NULL;
    int rc = exipc_open(name, NULL, &d);
    if (rc != 0)
        return rc;
    exipc_chan_t *c = NULL;
    exipc_handle_t h;
    rc = exipc_connect(d, "svc", 5 * SEC, &c);
    if (rc == 0)
        rc = exipc_alloc(d, 5, &h);
    if (rc == 0) {
        memcpy(exipc_ptr(d, h, NULL), "hello", 5);
        rc = exipc_send(c, h);
    }
    if (c)
        exipc_chan_close(c);
    exipc_close(d);
    return rc;
}

static int try_unlink(const char *name) { return exipc_unlink(name); }

static int create_own(const char *name)
{
    exipc_domain_t *d = NULL;
    int rc = exipc_open(name, NULL, &d);
    if (rc == 0)
        exipc_close(d);
    return rc;
}

static bool file_is(const char *name, uid_t owner, mode_t mode)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    return stat(path, &st) == 0 && st.st_uid == owner && (st.st_mode & 0777) == mode;
}

int main(int argc, char **argv)
{
    (void)argc;
    t_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (geteuid() != 0) {
        printf("test_perm: skipped: needs root to create and become the user " USER "\n");
        return 77;
    }
    struct passwd *pw = getpwnam(USER);
    if (pw == NULL) {
        /* May race with a concurrent run: whoever loses sees the user anyway. */
        if (system("useradd --system --no-create-home --shell /usr/sbin/nologin " USER " >/dev/null 2>&1") != 0)
            (void)0;
        pw = getpwnam(USER);
    }
    if (pw == NULL) {
        printf("test_perm: skipped: cannot create the user " USER " (useradd missing or failed)\n");
        return 77;
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    printf("test_perm: other user %s uid %d gid %d\n", USER, (int)uid, (int)gid);
    umask(077); /* the asked mode wins over the umask */

    /* Default mode 0600: the other user cannot attach nor unlink. */
    const char *priv = t_domain("perm-0600");
    exipc_domain_t *d = NULL;
    CHECK_RC(exipc_open(priv, NULL, &d), 0);
    CHECK(file_is(priv, 0, 0600));
    CHECK_RC(as_user(try_open, priv, NULL, 0), -EACCES);
    CHECK_RC(as_user(try_unlink, priv, NULL, 0), -EPERM); /* /dev/shm is sticky */
    CHECK(file_is(priv, 0, 0600));
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.procs_alive == 1);
    if (d)
        exipc_close(d);
    exipc_unlink(priv);

    /* Mode 0666: the other user attaches and talks to the creator. */
    const char *pub = t_domain("perm-0666");
    struct exipc_options o = {.mode = 0666};
    CHECK_RC(exipc_open(pub, &o, &d), 0);
    CHECK(file_is(pub, 0, 0666));
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    CHECK_RC(as_user(open_and_send, pub, NULL, 0), 0);
    exipc_chan_t *c = NULL;
    exipc_handle_t h = 0;
    CHECK_RC(exipc_accept(l, 5 * SEC, &c), 0);
    if (c) {
        CHECK_RC(exipc_recv(c, &h, 5 * SEC), 0);
        size_t len = 0;
        const char *p = exipc_ptr(d, h, &len);
        CHECK(p != NULL && len == 5 && memcmp(p, "hello", 5) == 0);
        exipc_free(d, h);
        exipc_chan_close(c);
    }
    CHECK_RC(as_user(try_unlink, pub, NULL, 0), -EPERM);
    if (l)
        exipc_listener_close(l);
    exipc_close(d);
    exipc_unlink(pub);

    /* Mode 0660: only members of the file's group (root's group here). */
    const char *grp = t_domain("perm-0660");
    o.mode = 0660;
    CHECK_RC(exipc_open(grp, &o, &d), 0);
    CHECK(file_is(grp, 0, 0660));
    CHECK_RC(as_user(try_open, grp, NULL, 0), -EACCES);
    gid_t root_group = 0;
    CHECK_RC(as_user(try_open, grp, &root_group, 1), 0);
    if (d)
        exipc_close(d);
    exipc_unlink(grp);

    /* The other way round: a domain the other user created 0600 is refused
     * even to root (which the kernel would let open it): the owner check. */
    const char *theirs = t_domain("perm-theirs");
    CHECK_RC(as_user(create_own, theirs, NULL, 0), 0);
    CHECK(file_is(theirs, uid, 0600));
    CHECK_RC(exipc_open(theirs, NULL, &d), -EACCES);
    CHECK_RC(exipc_unlink(theirs), 0);

    /* A mode with bits beyond rw, or without the owner's rw, is refused. */
    o.mode = 0644 | 01000;
    CHECK_RC(exipc_open(t_domain("perm-bad"), &o, &d), -EINVAL);
    o.mode = 0066;
    CHECK_RC(exipc_open(t_domain("perm-bad"), &o, &d), -EINVAL);
    DONE();
}

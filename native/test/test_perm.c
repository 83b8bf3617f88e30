/* test_perm.c — trust, file modes and owners across real users.
 *
 * Runs only as root (exit 77 otherwise): it creates the unprivileged system
 * user `exipc-test` if it does not exist (useradd; the user is left in place,
 * so that concurrent runs do not race to delete it) and runs the other side
 * of each check in a forked child that has dropped to that user.
 *
 * Trust (exipc_options.flags): a domain, or a garbage file, that another
 * user created under the name first is refused with -EACCES whether we mean
 * to create or to attach, root included; a trusted uid or group is accepted
 * only with the option; EXIPC_ATTACH_ONLY creates nothing. */
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

/* Attaches trusting root, connects to the creator's service "svc" and sends
 * one block. */
static int open_trusting_root_and_send(const char *name)
{
    exipc_domain_t *d = NULL;
    struct exipc_options o = {.flags = EXIPC_TRUST_UID, .trust_uid = 0};
    int rc = exipc_open(name, &o, &d);
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

/* Options for the *_opts helpers (set before the fork). */
static struct exipc_options child_opts;

static int try_open_opts(const char *name)
{
    exipc_domain_t *d = NULL;
    int rc = exipc_open(name, &child_opts, &d);
    if (rc == 0)
        exipc_close(d);
    return rc;
}

/* Creates the domain with child_opts and keeps it (a squatter's domain). */
static int create_keep(const char *name)
{
    exipc_domain_t *d = NULL;
    int rc = exipc_open(name, &child_opts, &d);
    if (rc == 0)
        exipc_close(d);
    return rc;
}

/* Writes a garbage file, mode 0666, where a domain would be. */
static int squat_garbage(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0666);
    if (fd < 0)
        return -errno;
    fchmod(fd, 0666);
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 131 + 7);
    ssize_t n = write(fd, junk, sizeof junk);
    close(fd);
    return n == (ssize_t)sizeof junk ? 0 : -EIO;
}

static bool exists(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", name);
    return access(path, F_OK) == 0;
}

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

    /* Mode 0666 is not trust: the other user's open is refused until it
     * trusts us (root) by uid; then it attaches and talks to the creator. */
    const char *pub = t_domain("perm-0666");
    struct exipc_options o = {.mode = 0666};
    CHECK_RC(exipc_open(pub, &o, &d), 0);
    CHECK(file_is(pub, 0, 0666));
    exipc_listener_t *l = NULL;
    CHECK_RC(exipc_listen(d, "svc", &l), 0);
    CHECK_RC(as_user(try_open, pub, NULL, 0), -EACCES);
    child_opts = (struct exipc_options){.flags = EXIPC_TRUST_UID, .trust_uid = 0};
    CHECK_RC(as_user(try_open_opts, pub, NULL, 0), 0);
    CHECK_RC(as_user(open_trusting_root_and_send, pub, NULL, 0), 0);
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

    /* A group-shared domain: created 0660 with the other user's group as the
     * trusted group. Members who trust that group attach; the same user
     * without the option, or outside the group, does not. */
    const char *grp = t_domain("perm-0660");
    o = (struct exipc_options){.mode = 0660, .flags = EXIPC_TRUST_GID, .trust_gid = gid};
    CHECK_RC(exipc_open(grp, &o, &d), 0);
    CHECK(file_is(grp, 0, 0660));
    {
        char path[256];
        struct stat fst;
        snprintf(path, sizeof path, "/dev/shm/exipc.%s", grp);
        CHECK(stat(path, &fst) == 0 && fst.st_gid == gid);
    }
    CHECK_RC(as_user(try_open, grp, NULL, 0), -EACCES); /* its group, but not trusted */
    child_opts = (struct exipc_options){.flags = EXIPC_TRUST_GID, .trust_gid = gid};
    CHECK_RC(as_user(try_open_opts, grp, NULL, 0), 0);
    child_opts = (struct exipc_options){.flags = EXIPC_TRUST_GID, .trust_gid = gid + 1};
    CHECK_RC(as_user(try_open_opts, grp, NULL, 0), -EACCES); /* trusts another group */
    if (d)
        exipc_close(d);
    exipc_unlink(grp);

    /* Squatting: the other user creates the name first, a valid domain of
     * mode 0666. Root meaning to create (or reach) its own domain with
     * default options is refused, and so is a client; with the other uid
     * trusted it attaches. */
    const char *squat = t_domain("perm-squat");
    child_opts = (struct exipc_options){.mode = 0666};
    CHECK_RC(as_user(create_keep, squat, NULL, 0), 0);
    CHECK(file_is(squat, uid, 0666));
    CHECK_RC(exipc_open(squat, NULL, &d), -EACCES);
    o = (struct exipc_options){.flags = EXIPC_ATTACH_ONLY};
    CHECK_RC(exipc_open(squat, &o, &d), -EACCES);
    o = (struct exipc_options){.flags = EXIPC_TRUST_UID, .trust_uid = uid + 1};
    CHECK_RC(exipc_open(squat, &o, &d), -EACCES);
    o = (struct exipc_options){.flags = EXIPC_TRUST_UID, .trust_uid = uid};
    CHECK_RC(exipc_open(squat, &o, &d), 0);
    if (d) {
        struct exipc_stat sst;
        CHECK_RC(exipc_stat(d, &sst), 0);
        CHECK(sst.procs_alive == 1);
        exipc_close(d);
    }
    CHECK_RC(exipc_unlink(squat), 0);

    /* Squatting with a garbage file: refused as not trusted (-EACCES), before
     * a byte of it is read (not -EPROTO); the file is left as it was. */
    const char *junk = t_domain("perm-junk");
    CHECK_RC(as_user(squat_garbage, junk, NULL, 0), 0);
    CHECK(file_is(junk, uid, 0666));
    CHECK_RC(exipc_open(junk, NULL, &d), -EACCES);
    o = (struct exipc_options){.flags = EXIPC_TRUST_UID, .trust_uid = uid};
    CHECK_RC(exipc_open(junk, &o, &d), -EPROTO); /* trusted, but not a domain */
    CHECK(file_is(junk, uid, 0666));
    CHECK_RC(exipc_unlink(junk), 0);

    /* The other way round: a domain the other user created 0600 is refused
     * even to root (which the kernel would let open it): the owner check. */
    const char *theirs = t_domain("perm-theirs");
    CHECK_RC(as_user(create_own, theirs, NULL, 0), 0);
    CHECK(file_is(theirs, uid, 0600));
    CHECK_RC(exipc_open(theirs, NULL, &d), -EACCES);
    o = (struct exipc_options){.flags = EXIPC_TRUST_ANY};
    CHECK_RC(exipc_open(theirs, &o, &d), 0); /* explicit: any owner */
    if (d)
        exipc_close(d);
    CHECK_RC(exipc_unlink(theirs), 0);

    /* Attach only: no domain, no file. */
    const char *none = t_domain("perm-none");
    o = (struct exipc_options){.flags = EXIPC_ATTACH_ONLY};
    CHECK_RC(exipc_open(none, &o, &d), -ENOENT);
    CHECK(!exists(none));
    CHECK_RC(as_user(create_own, none, NULL, 0), 0);
    CHECK_RC(exipc_open(none, &o, &d), -EACCES); /* exists now, but not ours */
    CHECK_RC(exipc_unlink(none), 0);
    o = (struct exipc_options){.flags = 0x100};
    CHECK_RC(exipc_open(none, &o, &d), -EINVAL); /* unknown flag */
    CHECK(!exists(none));

    /* A mode with bits beyond rw, or without the owner's rw, is refused. */
    o.mode = 0644 | 01000;
    CHECK_RC(exipc_open(t_domain("perm-bad"), &o, &d), -EINVAL);
    o.mode = 0066;
    CHECK_RC(exipc_open(t_domain("perm-bad"), &o, &d), -EINVAL);
    DONE();
}

/* t.h — the tiny harness of the C tests: CHECK counts, DONE prints the
 * closing line `N passed, N failed` and exits 0 pass / 1 fail. */
#ifndef EXIPC_T_H
#define EXIPC_T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_pass, t_fail;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (cond) {                                                                     \
            t_pass++;                                                                   \
        } else {                                                                        \
            t_fail++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)

#define CHECK_RC(expr, want)                                                            \
    do {                                                                                \
        long t_rc_ = (long)(expr);                                                      \
        if (t_rc_ == (long)(want)) {                                                    \
            t_pass++;                                                                   \
        } else {                                                                        \
            t_fail++;                                                                   \
            fprintf(stderr, "%s:%d: %s = %ld (%s), want %ld\n", __FILE__, __LINE__,     \
                    #expr, t_rc_, exipc_strerror((int)t_rc_), (long)(want));            \
        }                                                                               \
    } while (0)

#define DONE()                                                                          \
    do {                                                                                \
        printf("%s: %d passed, %d failed\n", t_name(), t_pass, t_fail);                 \
        return t_fail ? 1 : 0;                                                          \
    } while (0)

static const char *t_prog = "test";
static inline const char *t_name(void) { return t_prog; }

/* A unique domain name for this test run. */
static inline const char *t_domain(const char *tag)
{
    static char buf[8][96];
    static int n;
    char *b = buf[n++ & 7];
    snprintf(b, 96, "t-%s-%d", tag, (int)getpid());
    return b;
}
#endif

/* fuzz_handle.c — libFuzzer harness: exipc_ptr and exipc_free with arbitrary
 * handles. Exactly the handles of live blocks this process owns pass; the
 * rest (0, forged, flipped, stale, freed, another process's) are refused. */
#include "fuzz_common.h"

#define NLIVE 6

static exipc_domain_t *d, *other;
static exipc_handle_t live[NLIVE];
static size_t live_len[NLIVE];

static char handle_domain[64];
static void unlink_handle_domain(void) { exipc_unlink(handle_domain); }

static void setup(void)
{
    const char *name = fz_name();
    char keep[64];
    snprintf(keep, sizeof keep, "%s", name);
    if (exipc_open(keep, &fz_opts, &d) != 0 || exipc_open(keep, &fz_opts, &other) != 0)
        fz_fail("cannot open a fresh domain");
    snprintf(handle_domain, sizeof handle_domain, "%s", keep);
    atexit(unlink_handle_domain); /* not before: an unlinked domain is gone (-EIDRM) */
    static const size_t sizes[NLIVE] = {1, 64, 65, 1000, 4096, 4000};
    for (int i = 0; i < NLIVE; i++) {
        live_len[i] = sizes[i];
        if (exipc_alloc(d, sizes[i], &live[i]) != 0)
            fz_fail("alloc");
    }
    exipc_handle_t h;
    exipc_alloc(other, 100, &h); /* a block owned by someone else */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (d == NULL)
        setup();
    struct fz_in in = {data, size, 0};
    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in);
        exipc_handle_t h;
        /* A live handle, a neighbour of one, or 8 raw bytes. */
        switch (op % 4) {
        case 0: h = live[fz_u8(&in) % NLIVE]; break;
        case 1: h = live[fz_u8(&in) % NLIVE] ^ (1ull << (fz_u8(&in) % 64)); break;
        case 2: h = live[fz_u8(&in) % NLIVE] + ((uint64_t)(int8_t)fz_u8(&in) << (fz_u8(&in) & 1 ? 32 : 0)); break;
        default: h = fz_u64(&in); break;
        }
        int k = -1;
        for (int i = 0; i < NLIVE; i++)
            if (live[i] == h)
                k = i;
        size_t len = 0;
        void *p = exipc_ptr(d, h, &len);
        if (k >= 0 && (p == NULL || len != live_len[k]))
            fz_fail("exipc_ptr refuses live %#llx", (unsigned long long)h);
        if (k < 0 && p != NULL)
            fz_fail("exipc_ptr accepts %#llx, not a live block of ours", (unsigned long long)h);
        if (p)
            fz_in_arena(d, p, len);
        if (op & 0x80) {
            int rc = exipc_free(d, h);
            if (k >= 0) {
                if (rc != 0 || exipc_alloc(d, live_len[k], &live[k]) != 0)
                    fz_fail("free/alloc of live %#llx: %d", (unsigned long long)h, rc);
            } else if (rc != -EBADMSG) {
                fz_fail("free(%#llx) = %d, want -EBADMSG", (unsigned long long)h, rc);
            }
        }
    }
    return 0;
}

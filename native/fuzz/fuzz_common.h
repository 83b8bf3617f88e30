/*
 * fuzz_common.h — the hostile-peer interpreter shared by the libFuzzer
 * harnesses (native/fuzz/fuzz_*.c), built with clang -fsanitize=fuzzer,
 * address,undefined by `make fuzz`, and replayed over their corpus plus
 * deterministic random inputs by driver.c (gcc, ASan+UBSan) in `make test`.
 *
 * An input is a stream of operations: calls of the C API on two domain
 * handles (two process slots) of one fresh domain, and writes of a peer into
 * one family of regions of the segment (rings, heap metadata, queue-manager
 * tables). Every call must return success or an error its documentation
 * names; every pointer the core returns must lie in the arena; no call may
 * crash or touch memory outside the segment (ASan, SIGSEGV) or hang
 * (libFuzzer -timeout). A violation aborts, so the fuzzer keeps the input.
 */
#ifndef EXIPC_FUZZ_COMMON_H
#define EXIPC_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../exipc_internal.h"
#include "../exipc_testhook.h"

/* Each harness uses only some of the helpers below. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define FZ_MS 1000000ll

static const struct exipc_options fz_opts = {
    .size = 256 << 10, .max_procs = 4, .max_chans = 4, .ring_capacity = 8, .max_block = 4096,
};

__attribute__((noreturn, format(printf, 1, 2))) static void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "exipc fuzz: VIOLATION: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* rc must be >= 0 or minus one of the errnos listed (0-terminated). */
static int fz_check(const char *op, int rc, ...)
{
    if (rc >= 0)
        return rc;
    va_list ap;
    va_start(ap, rc);
    for (int e; (e = va_arg(ap, int)) != 0;)
        if (rc == -e) {
            va_end(ap);
            return rc;
        }
    va_end(ap);
    fz_fail("%s returned %d (%s), not a documented error", op, rc, exipc_strerror(rc));
}

static const char *fz_name(void)
{
    static char buf[64];
    static unsigned n;
    snprintf(buf, sizeof buf, "lf-%d-%u", (int)getpid(), n++);
    return buf;
}

/* ---- input ------------------------------------------------------------------ */

struct fz_in {
    const uint8_t *b;
    size_t n, i;
};
static bool fz_more(struct fz_in *in) { return in->i < in->n; }
static uint8_t fz_u8(struct fz_in *in) { return in->i < in->n ? in->b[in->i++] : (in->i++, 0); }
static uint32_t fz_u32(struct fz_in *in)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++)
        v |= (uint32_t)fz_u8(in) << (8 * k);
    return v;
}
static uint64_t fz_u64(struct fz_in *in) { return fz_u32(in) | (uint64_t)fz_u32(in) << 32; }

/* ---- regions ------------------------------------------------------------------ */

struct fz_span {
    uint64_t off, len, width;
};

enum fz_family { FZ_RINGS, FZ_HEAP, FZ_TABLES };

static int fz_spans(const struct exipc__layout *L, enum fz_family f, struct fz_span *s)
{
    int n = 0;
    switch (f) {
    case FZ_RINGS:
        for (uint64_t r = 0; r < 2 * L->max_chans; r++) {
            uint64_t b = L->off_rings + r * L->ring_stride;
            s[n++] = (struct fz_span){b + L->ring_tail, 8, 8};
            s[n++] = (struct fz_span){b + L->ring_head, 8, 8};
            s[n++] = (struct fz_span){b + L->ring_sleeping, 4, 4};
            s[n++] = (struct fz_span){b + L->ring_slots, L->ring_capacity * 8, 8};
        }
        break;
    case FZ_HEAP:
        s[n++] = (struct fz_span){L->hdr_slabs_carved, L->hdr_pool_size, 4}; /* page pool: lock, bins, lists */
        s[n++] = (struct fz_span){L->hdr_freelist, L->hdr_pool_size - (L->hdr_freelist - L->hdr_slabs_carved), 4};
        s[n++] = (struct fz_span){L->off_slabs, L->nslabs * L->page_desc_size, 4}; /* page table */
        s[n++] = (struct fz_span){L->off_slabs, 64 * L->page_desc_size, 4}; /* its first runs, often hit */
        s[n++] = (struct fz_span){L->off_meta, L->ngranules * L->meta_size, 8};
        s[n++] = (struct fz_span){L->off_meta, L->ngranules * L->meta_size, 4};
        s[n++] = (struct fz_span){L->off_arena, L->arena_size, 8};
        break;
    case FZ_TABLES:
        s[n++] = (struct fz_span){L->hdr_counters, L->hdr_slabs_carved - L->hdr_counters, 4};
        s[n++] = (struct fz_span){L->hdr_lock, L->hdr_lock_size, 4};
        s[n++] = (struct fz_span){L->off_procs, L->max_procs * L->proc_size, 4};
        s[n++] = (struct fz_span){L->off_services, L->max_chans * L->svc_size, 4};
        s[n++] = (struct fz_span){L->off_chans, L->max_chans * L->chan_size, 4};
        s[n++] = (struct fz_span){L->off_ready, L->max_procs * L->ready_stride, 8};
        break;
    }
    return n;
}

/* A peer writes one word: the input picks the span, the offset and a value
 * (often a plausible one: near the current value, a handle, an owner). */
static void fz_scribble(uint8_t *m, const struct exipc__layout *L, const struct fz_span *sp, int nsp,
                        struct fz_in *in)
{
    struct fz_span s = sp[fz_u8(in) % nsp];
    uint64_t off = (s.off + fz_u32(in) % s.len) & ~(s.width - 1);
    uint8_t kind = fz_u8(in);
    uint64_t raw = fz_u64(in);
    if (off + s.width > s.off + s.len)
        return;
    uint64_t cur = s.width == 8 ? __atomic_load_n((uint64_t *)(m + off), __ATOMIC_RELAXED)
                                : __atomic_load_n((uint32_t *)(m + off), __ATOMIC_RELAXED);
    uint64_t v;
    switch (kind % 12) {
    case 0: v = 0; break;
    case 1: v = cur + 1; break;
    case 2: v = cur - 1; break;
    case 3: v = cur + L->ring_capacity + raw % 3; break;
    case 4: v = cur ^ (1ull << (raw % 64)); break;
    case 5: v = raw % 16; break;
    case 6: v = ((raw >> 32) % 4) << 32 | (raw & 0xffffffffu) % (L->ngranules + 2); break;
    case 7: v = ((raw >> 40) % 4) << 30 | raw % (2 * L->max_chans + 2); break;
    case 8: v = ~0ull; break;
    case 9: v = 0x80000000u; break;
    case 10: v = cur & ~0xffffffffull; break;
    default: v = raw; break;
    }
    if (s.width == 8)
        __atomic_store_n((uint64_t *)(m + off), v, __ATOMIC_RELAXED);
    else
        __atomic_store_n((uint32_t *)(m + off), (uint32_t)v, __ATOMIC_RELAXED);
}

/* ---- the world: two handles, a listener, a channel ----------------------------- */

#define FZ_OWN 64

struct fz_world {
    exipc_domain_t *d[2]; /* d[0] listens (server end sc), d[1] connects (client end cc) */
    exipc_listener_t *l;
    exipc_chan_t *end[2]; /* end[i]: d[i]'s end of the channel */
    exipc_handle_t own[2][FZ_OWN];
    int nown[2];
    bool strict; /* block metadata untouched: ownership is exact */
    uint8_t *m;
    struct exipc__layout L;
    char name[64]; /* unlinked at close, not before: an unlinked domain is gone (-EIDRM) */
};

static void fz_in_arena(exipc_domain_t *d, const void *p, size_t len)
{
    const uint8_t *lo = d->base + d->L.off_arena, *hi = d->base + d->L.total_size;
    if ((const uint8_t *)p < lo || (const uint8_t *)p >= hi || len == 0 || len > d->L.max_block ||
        len > (size_t)(hi - (const uint8_t *)p))
        fz_fail("block %p len %zu outside the arena [%p, %p)", p, len, (const void *)lo, (const void *)hi);
}

static bool fz_world_open(struct fz_world *w, bool strict)
{
    memset(w, 0, sizeof *w);
    w->strict = strict;
    const char *name = fz_name();
    char *keep = w->name;
    snprintf(keep, sizeof w->name, "%s", name);
    if (exipc_open(keep, &fz_opts, &w->d[0]) != 0)
        return false;
    if (exipc_open(keep, &fz_opts, &w->d[1]) != 0) {
        exipc_close(w->d[0]);
        exipc_unlink(keep);
        return false;
    }
    exipc__layout_of(&fz_opts, &w->L);
    w->m = w->d[0]->base; /* the peer writes through the same shared pages */
    if (exipc_listen(w->d[0], "s", &w->l) != 0 || exipc_connect(w->d[1], "s", 0, &w->end[1]) != 0 ||
        exipc_accept(w->l, 0, &w->end[0]) != 0)
        fz_fail("cannot set up a channel on a fresh domain");
    return true;
}

static void fz_world_close(struct fz_world *w)
{
    exipc_close(w->d[1]);
    exipc_close(w->d[0]);
    exipc_unlink(w->name);
}

static void fz_own_add(struct fz_world *w, int i, exipc_handle_t h)
{
    if (w->nown[i] < FZ_OWN)
        w->own[i][w->nown[i]++] = h;
    else
        exipc_free(w->d[i], h);
}

static void fz_own_drop(struct fz_world *w, int i, exipc_handle_t h)
{
    for (int k = 0; k < w->nown[i]; k++)
        if (w->own[i][k] == h) {
            w->own[i][k] = w->own[i][--w->nown[i]];
            return;
        }
}

/* One of d[i]'s handles (taken off its list if take), or an arbitrary value. */
static exipc_handle_t fz_pick(struct fz_world *w, int i, struct fz_in *in, bool take, bool *mine)
{
    uint8_t sel = fz_u8(in);
    if (w->nown[i] == 0 || sel >= 200) {
        *mine = false;
        return fz_u64(in);
    }
    int k = sel % w->nown[i];
    exipc_handle_t h = w->own[i][k];
    if (take)
        w->own[i][k] = w->own[i][--w->nown[i]];
    *mine = true;
    return h;
}

static void fz_received(struct fz_world *w, int i, exipc_handle_t h)
{
    size_t len = 0;
    void *p = exipc_ptr(w->d[i], h, &len);
    if (p == NULL) {
        if (w->strict)
            fz_fail("received %#llx but exipc_ptr refuses it", (unsigned long long)h);
        return;
    }
    fz_in_arena(w->d[i], p, len);
    fz_own_add(w, i, h);
}

static int64_t fz_timeout(struct fz_in *in)
{
    static const int64_t t[] = {0, 100000, 1 * FZ_MS, 2 * FZ_MS};
    return t[fz_u8(in) % 4];
}

static void fz_run(struct fz_world *w, struct fz_in *in, const struct fz_span *sp, int nsp)
{
    for (int n = 0; fz_more(in) && n < 256; n++) {
        uint8_t op = fz_u8(in) % 16;
        int i = fz_u8(in) & 1;
        exipc_domain_t *d = w->d[i];
        exipc_chan_t *c = w->end[i];
        bool mine;
        switch (op) {
        case 0: case 1: case 2:
            fz_scribble(w->m, &w->L, sp, nsp, in);
            break;
        case 3: {
            exipc_handle_t h;
            size_t size = 1 + (size_t)fz_u8(in) * 16;
            if (fz_check("alloc", exipc_alloc(d, size, &h), ENOMEM, EPROTO, 0) == 0) {
                size_t len = 0;
                void *p = exipc_ptr(d, h, &len);
                if (p == NULL) {
                    if (w->strict)
                        fz_fail("alloc gave %#llx that exipc_ptr refuses", (unsigned long long)h);
                } else {
                    fz_in_arena(d, p, len);
                    memset(p, 0xa5, len);
                }
                fz_own_add(w, i, h);
            }
            break;
        }
        case 4: {
            exipc_handle_t h = fz_pick(w, i, in, true, &mine);
            int rc = fz_check("free", exipc_free(d, h), EBADMSG, 0);
            if (w->strict && mine && rc != 0)
                fz_fail("free of our own %#llx: %d", (unsigned long long)h, rc);
            if (rc == 0 && !mine)
                fz_own_drop(w, i, h);
            break;
        }
        case 5: {
            exipc_handle_t h = fz_pick(w, i, in, false, &mine);
            size_t len = 0;
            void *p = exipc_ptr(d, h, &len);
            if (p != NULL)
                fz_in_arena(d, p, len);
            else if (w->strict && mine)
                fz_fail("exipc_ptr refuses our own %#llx", (unsigned long long)h);
            break;
        }
        case 6: {
            if (c == NULL)
                break;
            exipc_handle_t h = fz_pick(w, i, in, true, &mine);
            int rc = fz_check("send", exipc_send(c, h), EAGAIN, EPIPE, EBADMSG, EPROTO, 0);
            if (rc != 0 && mine)
                fz_own_add(w, i, h);
            else if (rc == 0 && !mine)
                fz_own_drop(w, i, h);
            break;
        }
        case 7: {
            if (c == NULL)
                break;
            exipc_handle_t hs[6];
            bool m[6];
            int k = 1 + fz_u8(in) % 6;
            for (int j = 0; j < k; j++)
                hs[j] = fz_pick(w, i, in, true, &m[j]);
            int rc = fz_check("send_batch", exipc_send_batch(c, hs, (size_t)k), EAGAIN, EPIPE, EBADMSG, EPROTO, 0);
            int sent = rc > 0 ? rc : 0;
            if (sent > k)
                fz_fail("send_batch(%d) = %d", k, rc);
            for (int j = 0; j < k; j++) {
                if (j >= sent && m[j])
                    fz_own_add(w, i, hs[j]);
                else if (j < sent && !m[j])
                    fz_own_drop(w, i, hs[j]);
            }
            break;
        }
        case 8: case 9: {
            if (c == NULL)
                break;
            exipc_handle_t h;
            int64_t t = op == 8 ? 0 : fz_timeout(in);
            if (fz_check("recv", exipc_recv(c, &h, t), EAGAIN, ETIMEDOUT, EPIPE, EBADMSG, EPROTO, 0) == 0)
                fz_received(w, i, h);
            break;
        }
        case 10: {
            if (c == NULL)
                break;
            exipc_handle_t hs[8];
            size_t max = 1 + fz_u8(in) % 8;
            int rc = fz_check("recv_batch", exipc_recv_batch(c, hs, max, fz_timeout(in)), EAGAIN, ETIMEDOUT,
                              EPIPE, EBADMSG, EPROTO, 0);
            if (rc > (int)max)
                fz_fail("recv_batch(%zu) = %d", max, rc);
            for (int j = 0; j < rc; j++)
                fz_received(w, i, hs[j]);
            break;
        }
        case 11: {
            char svc[8];
            snprintf(svc, sizeof svc, "x%d", fz_u8(in) % 4);
            exipc_listener_t *l = NULL;
            if (fz_check("listen", exipc_listen(d, svc, &l), EEXIST, EMFILE, ETIMEDOUT, EPROTO, 0) != 0)
                break;
            exipc_chan_t *cc = NULL, *sc = NULL;
            fz_check("connect", exipc_connect(w->d[fz_u8(in) & 1], svc, fz_timeout(in), &cc), ENOENT, EMFILE,
                     ETIMEDOUT, EPROTO, 0);
            fz_check("accept", exipc_accept(l, fz_timeout(in), &sc), EAGAIN, ETIMEDOUT, EPROTO, 0);
            struct exipc_pollitem it[2] = {{.listener = l}};
            size_t ni = 1;
            if (sc)
                it[ni++] = (struct exipc_pollitem){.chan = sc};
            fz_check("poll", exipc_poll(d, it, ni, fz_timeout(in)), EAGAIN, ETIMEDOUT, 0);
            if (sc)
                fz_check("chan_close", exipc_chan_close(sc), 0);
            if (cc)
                fz_check("chan_close", exipc_chan_close(cc), 0);
            fz_check("listener_close", exipc_listener_close(l), 0);
            break;
        }
        case 12: {
            if (c == NULL)
                break;
            struct exipc_pollitem it = {.chan = c};
            fz_check("poll", exipc_poll(d, &it, 1, fz_timeout(in)), EAGAIN, ETIMEDOUT, 0);
            break;
        }
        case 13: {
            struct exipc_stat st;
            fz_check("stat", exipc_stat(d, &st), 0);
            if (st.procs_alive > d->L.max_procs || st.chans_bound > d->L.max_chans ||
                st.services > d->L.max_chans || st.heap_blocks_used > d->L.nmeta ||
                st.heap_bytes_used > d->L.arena_size || st.heap_bytes_total != d->L.arena_size)
                fz_fail("stat out of range");
            break;
        }
        case 14: {
            int rc = fz_check("reap", exipc_reap(d), ETIMEDOUT, EPROTO, 0);
            if (rc > (int)d->L.max_procs)
                fz_fail("reap = %d", rc);
            break;
        }
        case 15:
            if (c != NULL) {
                fz_check("chan_close", exipc_chan_close(c), 0);
                w->end[i] = NULL;
            }
            break;
        }
    }
}

#endif /* EXIPC_FUZZ_COMMON_H */

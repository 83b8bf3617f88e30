/*
 * fused.c — one call for what a program otherwise does in several: allocate,
 * copy and send; receive and view; free many. Each is the same sequence of
 * the public calls (so every check of exipc_alloc, exipc_send, exipc_recv,
 * exipc_ptr and exipc_free still applies), made once so that a caller that
 * pays per call (Go pays ~25 ns per cgo crossing) pays once.
 *
 * Invariants:
 *   - No shared state of its own: everything goes through the calls above.
 *   - On every error, a block this file allocated is freed again, and a
 *     block received is either returned to the caller or freed: nothing leaks.
 */
#include <errno.h>
#include <string.h>

#include "exipc_internal.h"

int exipc_send_copy(exipc_chan_t *c, const void *a, size_t alen, const void *b, size_t blen,
                    exipc_handle_t *out)
{
    if (c == NULL || (alen != 0 && a == NULL) || (blen != 0 && b == NULL) || alen + blen < alen)
        return -EINVAL;
    exipc_domain_t *d = c->d;
    exipc_handle_t h;
    void *vp;
    int rc = heap_alloc_ptr(d, alen + blen, &h, &vp); /* the block and its address (heap.c) */
    if (rc < 0)
        return rc;
    uint8_t *p = vp;
    if (alen != 0)
        memcpy(p, a, alen);
    if (blen != 0)
        memcpy(p + alen, b, blen);
    rc = exipc_send(c, h);
    if (rc < 0) {
        exipc_free(d, h); /* refused: still ours */
        return rc;
    }
    if (out != NULL)
        *out = h;
    return 0;
}

int exipc_recv_view(exipc_chan_t *c, exipc_handle_t *h, void **p, size_t *len, int64_t timeout_ns,
                    unsigned flags)
{
    if (c == NULL || h == NULL || p == NULL || len == NULL || (flags & ~EXIPC_RECV_NOSPIN) != 0)
        return -EINVAL;
    int rc = (flags & EXIPC_RECV_NOSPIN) ? ring_recv_nospin(c, h, timeout_ns) : exipc_recv(c, h, timeout_ns);
    if (rc < 0)
        return rc;
    *p = exipc_ptr(c->d, *h, len);
    if (*p == NULL) {
        /* Received, so ours, but its length fails the check: refuse it. */
        exipc_free(c->d, *h);
        *h = 0;
        return -EBADMSG;
    }
    return 0;
}

int exipc_free_batch(exipc_domain_t *d, const exipc_handle_t *hs, size_t n)
{
    return heap_free_batch(d, hs, n); /* the loop of exipc_free, in one pass (heap.c) */
}

int exipc_alloc_batch(exipc_domain_t *d, size_t size, exipc_handle_t *hs, void **ptrs, size_t n)
{
    return heap_alloc_batch(d, size, hs, ptrs, n); /* the loop of exipc_alloc, in one pass (heap.c) */
}

int exipc_recv_batch_view(exipc_chan_t *c, exipc_handle_t *hs, void **ptrs, size_t *lens, size_t max,
                          int64_t timeout_ns)
{
    if (c == NULL || hs == NULL || ptrs == NULL || lens == NULL || max == 0 || max > INT32_MAX)
        return -EINVAL;
    int rc = exipc_recv_batch(c, hs, max, timeout_ns);
    if (rc <= 0)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < (size_t)rc; i++) {
        void *p = exipc_ptr(c->d, hs[i], &lens[k]);
        if (p == NULL) {
            /* Received, so ours, but its length fails the check: refuse it. */
            exipc_free(c->d, hs[i]);
            continue;
        }
        hs[k] = hs[i];
        ptrs[k++] = p;
    }
    return k > 0 ? (int)k : -EBADMSG;
}

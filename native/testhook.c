/*
 * testhook.c — test-only views of the shared layout (see exipc_testhook.h).
 * Compiled only with -DEXIPC_TESTING. Reads nothing from shared memory: offsets come from layout_compute() and
 * the struct definitions, as in every process.
 */
#ifdef EXIPC_TESTING
#include <stddef.h>

#include "exipc_internal.h"
#include "exipc_testhook.h"

int exipc__layout_of(const struct exipc_options *o, struct exipc__layout *out)
{
    struct layout L;
    int rc = layout_compute(o, &L);
    if (rc != 0)
        return rc;
    *out = (struct exipc__layout){
        .total_size = L.total_size,
        .arena_size = L.arena_size,
        .nslabs = L.npages,
        .ngranules = L.nmeta,
        .max_procs = L.max_procs,
        .max_chans = L.max_chans,
        .ring_capacity = L.ring_capacity,
        .max_block = L.max_block,
        .nclasses = L.nclasses,
        .off_procs = L.off_procs,
        .off_services = L.off_services,
        .off_chans = L.off_chans,
        .off_rings = L.off_rings,
        .ring_stride = L.ring_stride,
        .off_ready = L.off_ready,
        .ready_stride = L.ready_stride,
        .off_slabs = L.off_slabs,
        .off_meta = L.off_meta,
        .off_arena = L.off_arena,
        .hdr_size = sizeof(struct seg_hdr),
        .hdr_params_size = sizeof(struct seg_params),
        .hdr_ready = offsetof(struct seg_hdr, p.ready),
        .hdr_counters = offsetof(struct seg_hdr, reaped_procs),
        .hdr_slabs_carved = offsetof(struct seg_hdr, pool),
        .hdr_freelist = offsetof(struct seg_hdr, pool.bin),
        .hdr_freelist_stride = sizeof(uint32_t),
        .hdr_lock = offsetof(struct seg_hdr, lock),
        .hdr_lock_size = sizeof(((struct seg_hdr *)0)->lock),
        .proc_size = sizeof(struct proc_slot),
        .svc_size = sizeof(struct service),
        .chan_size = sizeof(struct chan),
        .ring_tail = offsetof(struct ring, tail),
        .ring_head = offsetof(struct ring, head),
        .ring_sleeping = offsetof(struct ring, sleeping),
        .ring_slots = offsetof(struct ring, slots),
        .meta_size = sizeof(struct block_meta),
        .page_desc_size = sizeof(struct page_desc),
        .hdr_pool_size = sizeof(((struct seg_hdr *)0)->pool),
    };
    return 0;
}

void exipc__mapping(exipc_domain_t *d, void **base, uint64_t *len)
{
    *base = d->base;
    *len = d->L.total_size;
}

#endif /* EXIPC_TESTING */

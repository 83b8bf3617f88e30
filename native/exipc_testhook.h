/*
 * exipc_testhook.h — test-only views of a domain's shared layout.
 *
 * Compiled only into test builds (-DEXIPC_TESTING; Go: the build tag
 * exipc_testing, native/testhooks.go): the Go fuzz targets, the C fuzz
 * harnesses and the corruption torture use it to find the regions of a
 * domain's file that they scribble on, without hard-coding offsets. Not
 * installed; the product libraries have none of it.
 */
#ifndef EXIPC_TESTHOOK_H
#define EXIPC_TESTHOOK_H

#include <stdint.h>

#include "exipc.h"

#ifndef EXIPC_TESTING
#error "exipc_testhook.h is for test builds: compile with -DEXIPC_TESTING"
#endif

/* Every offset is in bytes from the start of the segment (or of the struct
 * named in the field's prefix); every size in bytes. */
struct exipc__layout {
    uint64_t total_size, arena_size;
    uint64_t nslabs;    /* heap pages (4 KiB): entries of the page table at off_slabs */
    uint64_t ngranules; /* block metadata entries at off_meta */
    uint64_t max_procs, max_chans, ring_capacity, max_block, nclasses;
    /* regions */
    uint64_t off_procs, off_services, off_chans, off_rings, ring_stride;
    uint64_t off_ready, ready_stride; /* per-process ready bitmaps (doorbells) */
    uint64_t off_slabs, off_meta, off_arena;
    /* struct seg_hdr */
    uint64_t hdr_size, hdr_params_size, hdr_ready, hdr_counters;
    uint64_t hdr_slabs_carved; /* the heap's page pool: lock, counters, bins, partial lists */
    uint64_t hdr_freelist, hdr_freelist_stride; /* the pool's bins (uint32_t each) */
    uint64_t hdr_lock, hdr_lock_size;
    /* table entries */
    uint64_t proc_size, svc_size, chan_size;
    /* struct ring */
    uint64_t ring_tail, ring_head, ring_sleeping, ring_slots;
    /* struct block_meta */
    uint64_t meta_size;
    /* struct page_desc; the heap's page pool in struct seg_hdr */
    uint64_t page_desc_size, hdr_pool_size;
};

/* Fills *out with the layout a domain created with options o (NULL =
 * defaults) has. Returns 0 or -EINVAL. */
int exipc__layout_of(const struct exipc_options *o, struct exipc__layout *out);

/* The address and length of d's mapping of the segment, so a test can check
 * that a pointer the core returned lies inside it. */
void exipc__mapping(exipc_domain_t *d, void **base, uint64_t *len);

#endif /* EXIPC_TESTHOOK_H */

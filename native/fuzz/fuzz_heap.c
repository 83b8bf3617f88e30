/* fuzz_heap.c — libFuzzer harness: a peer writes into the heap of a live
 * domain between calls of the whole API (see fuzz_common.h). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_world w;
    if (!fz_world_open(&w, false))
        return 0;
    struct fz_span sp[64];
    int nsp = fz_spans(&w.L, FZ_HEAP, sp);
    struct fz_in in = {data, size, 0};
    fz_run(&w, &in, sp, nsp);
    fz_world_close(&w);
    return 0;
}

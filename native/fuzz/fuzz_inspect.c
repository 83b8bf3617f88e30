/* fuzz_inspect.c — libFuzzer harness: a peer writes into every region of a
 * live domain (header, tables, rings, heap) while the read-only inspector
 * and the slotless reaper look at it. Every call must return a documented
 * result, every figure must be within its bounds, and nothing may crash or
 * hang (see fuzz_common.h). */
#include "fuzz_common.h"

static void fz_inspect(const char *name, const struct exipc__layout *L)
{
    exipc_inspector_t *in;
    if (fz_check("inspect_open", exipc_inspect_open(name, &in), EPROTO, ENOTSUP, 0) != 0)
        return;
    struct exipc_inspect_info info;
    struct exipc_stat st;
    struct exipc_heap_stat hs;
    struct exipc_proc_info ps[4];
    struct exipc_service_info ss[4];
    struct exipc_chan_info cs[4];
    fz_check("inspect_info", exipc_inspect_info(in, &info), 0);
    fz_check("inspect_stat", exipc_inspect_stat(in, &st), 0);
    if (st.procs_alive > L->max_procs || st.services > L->max_chans || st.chans_bound > L->max_chans)
        fz_fail("stat out of bounds: %u procs, %u services, %u chans", st.procs_alive, st.services, st.chans_bound);
    int n = fz_check("inspect_procs", exipc_inspect_procs(in, ps, 4), EPROTO, 0);
    if (n > (int)L->max_procs)
        fz_fail("%d procs of %llu slots", n, (unsigned long long)L->max_procs);
    for (int i = 0; i < n && i < 4; i++)
        if (ps[i].slot >= L->max_procs || ps[i].state < EXIPC_PROC_ALIVE || ps[i].state > EXIPC_PROC_REAPING)
            fz_fail("proc slot %u state %u", ps[i].slot, ps[i].state);
    n = fz_check("inspect_services", exipc_inspect_services(in, ss, 4), EPROTO, 0);
    for (int i = 0; i < n && i < 4; i++)
        if (memchr(ss[i].name, 0, sizeof ss[i].name) == NULL || ss[i].pending > L->max_chans)
            fz_fail("service %d: name unterminated or %u pending", i, ss[i].pending);
    n = fz_check("inspect_chans", exipc_inspect_chans(in, cs, 4), EPROTO, 0);
    for (int i = 0; i < n && i < 4; i++)
        if (cs[i].queued[0] > L->ring_capacity || cs[i].queued[1] > L->ring_capacity ||
            memchr(cs[i].service, 0, sizeof cs[i].service) == NULL ||
            (cs[i].end[0].slot != 0xffffffffu && cs[i].end[0].slot >= L->max_procs))
            fz_fail("chan %u: queued %llu/%llu of %llu", cs[i].index, (unsigned long long)cs[i].queued[0],
                    (unsigned long long)cs[i].queued[1], (unsigned long long)L->ring_capacity);
    if (fz_check("inspect_heap", exipc_inspect_heap(in, &hs), EPROTO, 0) == 0 && /* a scribbled page table: -EPROTO */
        (hs.nclasses > EXIPC_MAX_CLASSES || hs.pages_free > hs.pages_total))
        fz_fail("heap: %u classes, %llu of %llu pages free", hs.nclasses, (unsigned long long)hs.pages_free,
                (unsigned long long)hs.pages_total);
    exipc_inspect_close(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[64];
    snprintf(name, sizeof name, "%s", fz_name());
    exipc_domain_t *d;
    if (exipc_open(name, &fz_opts, &d) != 0)
        return 0;
    exipc_listener_t *l;
    exipc_chan_t *cc, *sc;
    exipc_handle_t h;
    if (exipc_listen(d, "s", &l) != 0 || exipc_connect(d, "s", 0, &cc) != 0 || exipc_accept(l, 0, &sc) != 0)
        fz_fail("cannot set up a channel on a fresh domain");
    for (int i = 0; i < 3; i++)
        if (exipc_alloc(d, 64u << i, &h) == 0 && exipc_send(cc, h) != 0)
            exipc_free(d, h);
    struct exipc__layout L;
    exipc__layout_of(&fz_opts, &L);
    struct fz_span sp[256];
    int nsp = fz_spans(&L, FZ_TABLES, sp);
    nsp += fz_spans(&L, FZ_RINGS, sp + nsp);
    nsp += fz_spans(&L, FZ_HEAP, sp + nsp) - 1; /* not the arena: the inspector never reads it */
    sp[nsp++] = (struct fz_span){0, L.hdr_params_size, 4};
    uint8_t *m = d->base;
    struct fz_in in = {data, size, 0};
    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in) % 8;
        if (op < 6)
            fz_scribble(m, &L, sp, nsp, &in);
        else if (op == 6)
            fz_inspect(name, &L);
        else
            fz_check("inspect_reap", exipc_inspect_reap(name), EPROTO, ENOTSUP, ETIMEDOUT, ENOMEM, 0);
    }
    fz_inspect(name, &L);
    exipc_unlink(name);
    exipc_close(d);
    return 0;
}

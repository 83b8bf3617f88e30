/* test_heap_thread.c — threads of one process share a domain handle (one
 * process slot, one local cache, one pool-lock name): they allocate blocks
 * of every size, write a pattern, check it, pass blocks to each other and
 * free them. A block handed out twice, or two blocks that overlap, break
 * a pattern. Also built with TSan (make test-tsan). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "t.h"
#include "tables.h"

#define NT 4
#define ROUNDS 20000
#define HOLD 64

static exipc_domain_t *d;
static int bad[NT];
static exipc_handle_t mailbox[NT];
static uint32_t mailbox_lock;

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(unsigned char *p, size_t n, uint64_t v)
{
    for (size_t i = 0; i + 8 <= n; i += 8)
        memcpy(p + i, &v, 8);
}

static int check(const unsigned char *p, size_t n, uint64_t v)
{
    for (size_t i = 0; i + 8 <= n; i += 8)
        if (memcmp(p + i, &v, 8) != 0)
            return 0;
    return 1;
}

static void *run(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);
    exipc_handle_t h[HOLD] = {0};
    size_t n[HOLD] = {0};
    for (int r = 0; r < ROUNDS; r++) {
        int k = (int)(xs(&s) % HOLD);
        if (h[k]) {
            size_t len = 0;
            unsigned char *p = exipc_ptr(d, h[k], &len);
            if (p == NULL || len != n[k] || !check(p, len, h[k]) || exipc_free(d, h[k]) != 0)
                bad[me]++;
            h[k] = 0;
        }
        uint64_t x = xs(&s);
        size_t sz = x % 8 == 0 ? 16385 + x % 100000 : 1 + (x >> 8) % 5000;
        int rc = exipc_alloc(d, sz, &h[k]);
        if (rc == -ENOMEM) {
            h[k] = 0;
            continue;
        }
        if (rc != 0) {
            bad[me]++;
            continue;
        }
        n[k] = sz;
        unsigned char *p = exipc_ptr(d, h[k], NULL);
        if (p == NULL) {
            bad[me]++;
            continue;
        }
        fill(p, sz, h[k]);
        /* Now and then, swap a block with another thread's (a block freed
         * by a thread that did not allocate it). */
        if (x % 16 == 1) {
            while (__atomic_exchange_n(&mailbox_lock, 1u, __ATOMIC_ACQUIRE))
                ;
            int j = (int)((x >> 32) % NT);
            exipc_handle_t t = mailbox[j];
            mailbox[j] = h[k];
            __atomic_store_n(&mailbox_lock, 0u, __ATOMIC_RELEASE);
            h[k] = t;
            if (t) {
                size_t len = 0;
                if (exipc_ptr(d, t, &len) == NULL)
                    bad[me]++;
                n[k] = len;
            }
        }
    }
    for (int k = 0; k < HOLD; k++)
        if (h[k]) {
            size_t len = 0;
            unsigned char *p = exipc_ptr(d, h[k], &len);
            if (p == NULL || !check(p, len, h[k]) || exipc_free(d, h[k]) != 0)
                bad[me]++;
        }
    return NULL;
}

int main(void)
{
    t_prog = "test_heap_thread";
    const char *name = t_domain("heapthr");
    struct exipc_options o = {.size = 8 << 20};
    CHECK_RC(exipc_open(name, &o, &d), 0);
    if (d == NULL)
        DONE();
    pthread_t th[NT];
    for (int i = 0; i < NT; i++)
        pthread_create(&th[i], NULL, run, (void *)(intptr_t)i);
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) {
        CHECK(bad[i] == 0);
        if (bad[i])
            fprintf(stderr, "thread %d: %d bad blocks (overlap, lost or refused)\n", i, bad[i]);
        if (mailbox[i]) {
            size_t len = 0;
            unsigned char *p = exipc_ptr(d, mailbox[i], &len);
            CHECK(p != NULL && check(p, len, mailbox[i]));
            CHECK_RC(exipc_free(d, mailbox[i]), 0);
        }
    }
    struct exipc_stat st;
    CHECK_RC(exipc_stat(d, &st), 0);
    CHECK(st.heap_blocks_used == 0);
    if (st.heap_blocks_used) {
        fprintf(stderr, "%llu blocks still used\n", (unsigned long long)st.heap_blocks_used);
        for (uint64_t p = 0; p < d->L.npages;) {
            struct page_desc *pd = D_PAGES(d) + p;
            uint64_t nb = pd->kind == PG_LARGE ? 1 : pd->kind >= PG_SLAB ? pd->npages * 4096 / tables_class_size(pd->kind - PG_SLAB) : 0;
            for (uint64_t b = 0; b < nb; b++) {
                uint64_t w = D_META(d)[p * 64 + b].word;
                if ((uint32_t)w != OWN_FREE && OWN_KIND((uint32_t)w) != OWN_CACHED)
                    fprintf(stderr, "  page %llu kind %#x block %llu word %#llx len %u\n", (unsigned long long)p, pd->kind,
                            (unsigned long long)b, (unsigned long long)w, D_META(d)[p * 64 + b].len);
            }
            p += pd->npages;
        }
    }
    const char *why = tables_check(d, NULL);
    CHECK(why == NULL);
    if (why)
        fprintf(stderr, "tables: %s (pool rebuilds %llu)\n", why, (unsigned long long)D_HDR(d)->pool.rebuilds);
    exipc_close(d);
    exipc_unlink(name);
    DONE();
}
